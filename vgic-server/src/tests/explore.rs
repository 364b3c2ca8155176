//! Exhaustive exploration of the real its-server and this server, wired by the host
//! transport: every ITS request is encoded as an `ipc::vgic` message by
//! [`RemoteVgic`], decoded and delivered by [`deliver`] as the vgic-server's shell does.
//! Only the list registers and the guest's acknowledge/EOI are modelled
//! ([`FakeVcpus`]).
//!
//! # What is explored
//!
//! A [`Scenario`] is a script of ITS commands the guest queued at once (CWRITER past the
//! last), with the ITS enabled, three vCPUs with LPIs enabled, and each LPI's property
//! entry in guest RAM. From there a [`World`] takes [`Step`]s in every order:
//!
//! - the its-server runs one step of its queue ([`Its::process`] with a budget of one: a
//!   command, or one event of a MAPD teardown), its requests delivered over the transport;
//! - a device sends an MSI for one of its events (at most `msis` in all);
//! - the guest on a vCPU reads ICC_IAR1_EL1 (acknowledges), or writes ICC_EOIR1_EL1 for
//!   the interrupt it took last.
//!
//! Each step is atomic, as the servers are single-threaded and every request is a Call
//! whose reply ends it; a maintenance interrupt is answered before the vCPU takes its
//! next step, as the kernel forwards it on the exit it causes.
//!
//! # Properties checked
//!
//! After every step:
//!
//! - delivered (returned by ICC_IAR1_EL1) at most once per pending edge: an INT or MSI
//!   that reached the vgic-server makes one edge, acknowledging consumes it, CLEAR, DISCARD
//!   and MAPD drop it;
//! - never delivered once CREADR has passed the DISCARD or MAPD that unmapped it (until a
//!   later MAPTI maps the number again);
//! - never delivered to, nor offered in a pending list register of, a vCPU it no longer
//!   targets (a copy already active on its old vCPU may finish there: EOIs are not
//!   deliveries);
//! - every effect of every completed request is visible: the server's view of each
//!   LPI (existence, target, pending state in the server or in a list register) is what
//!   the requests replied so far say. This holds after each step, so in particular after
//!   each SYNC;
//! - after MAPD (V=0, or V=1 over a mapped device) no state of the device remains: the
//!   its-server translates none of its events (probed with MSIs whenever it is between
//!   commands: every (DeviceID, EventID) translates as the script says), and the
//!   vgic-server has no existence, pending state or queue place for its LPIs;
//!
//! and where no step changes anything any more (the queue done, the MSIs spent, the guests
//! idle): every pending edge was delivered, and no list register holds an unmapped LPI.
//!
//! # What is not explored
//!
//! Maintenance events are answered at once, with the vCPU's live list registers. In the
//! system a `VGIC_EVENT` carries the snapshot taken when the kernel raised it and may
//! wait at the vgic-server's endpoint while the server syncs and rewrites the same vCPU
//! for another request; such a stale snapshot loses a newly listed interrupt (see
//! docs/architecture.md), which is the kernel's to prevent. Also left out: EnableLPIs
//! cleared, MAPC V=0, and a guest rewriting property entries other than the scenario's.
//!
//! # Why a search of our own
//!
//! A depth-first search over states deduplicated by a 128-bit hash of a canonical encoding
//! (collision odds about n²/2¹²⁹, negligible for millions of states), in about a hundred
//! lines: stateright would bring its own model trait, actor runtime and dependencies for a
//! search this small, and could not drive the two real servers more directly. The
//! encoding is:
//!
//! - the its-server: the number of its productive steps. Its state changes only in
//!   [`Its::process`] (an MSI takes `&self`), which reads a fixed script, and the vgic-server's
//!   replies carry nothing back, so the state after n steps is always the same;
//! - the vgic-server: the full state of the scenario's LPIs (queue links included), the
//!   collection targets, and what it last wrote into each list register; nothing else
//!   changes after the setup;
//! - the list registers and running priority of each vCPU, and its pending maintenance
//!   requests (UIE/NPIE);
//! - the bookkeeping: what each guest is handling, the expected state of each LPI, and
//!   the MSIs left.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use ipc::Message;
use ipc::vgic::{DONE, ItsRequest, REJECTED};
use its_server::registers::offset;
use its_server::remote::{RemoteVgic, deliver};
use its_server::{CommandError, Its, MsiDropped, Progress};

use super::commands::Command;
use super::spec::{GICR_CTLR, GICR_PENDBASER, GICR_PROPBASER};
use crate::fakes::{FakeVcpus, Machine, RAM_BASE, Ram, TestVgic};
use crate::irq::{EXISTS, LATCH, NO_VCPU, Place};
use crate::{Config, LrState, Width};

/// vCPUs of the explored VM.
pub const VCPUS: u16 = 3;
/// Devices the its-server takes (DeviceIDs 0 and 1).
const DEVICES: usize = 2;
/// Events per device (EventIDs 0 and 1).
const EVENTS: usize = 2;
/// Collections the its-server takes (ICIDs 0..3).
const COLLECTIONS: usize = 3;
/// The LPIs scenarios may map.
pub const LPIS: [u32; 5] = [8192, 8193, 8194, 8195, 8196];

const PROPERTY_TABLE: u64 = RAM_BASE + 0x1_0000;
const QUEUE: u64 = RAM_BASE + 0x8_0000;
const DEVICE_TABLE: u64 = RAM_BASE + 0x9_0000;
const COLLECTION_TABLE: u64 = RAM_BASE + 0xa_0000;
const VALID: u64 = 1 << 63;
const PENDING_TABLE_ZERO: u64 = 1 << 62;
/// An enabled property entry of priority 0xa0.
pub const LOW: u8 = 0xa0 | 1;
/// An enabled property entry of priority 0x80, which preempts [`LOW`].
pub const HIGH: u8 = 0x80 | 1;
/// A disabled property entry.
pub const DISABLED: u8 = 0xa0;

type ExploredIts = Its<DEVICES, EVENTS, COLLECTIONS>;

/// An event's LPI and collection.
type EventTranslation = (u32, u16);

/// What each event translates to once CREADR has passed some commands: the script's
/// meaning to the guest that wrote it (no script maps an LPI twice or an event over a
/// mapped one).
#[derive(Clone, Copy, Debug, Default)]
struct Translation {
    /// Mapped devices: each event's LPI and collection.
    devices: [Option<[Option<EventTranslation>; EVENTS]>; DEVICES],
    /// Each mapped collection's vCPU.
    collections: [Option<u16>; COLLECTIONS],
}

impl Translation {
    fn after(mut self, command: Command) -> Self {
        fn event(
            translation: &mut Translation,
            device: u32,
            event: u32,
        ) -> Option<&mut Option<EventTranslation>> {
            translation.devices[device as usize].as_mut().map(|events| &mut events[event as usize])
        }
        match command {
            Command::Mapd { device, event_id_bits } => {
                self.devices[device as usize] = event_id_bits.map(|_| [None; EVENTS]);
            }
            Command::Mapc { icid, vcpu } => self.collections[icid as usize] = Some(vcpu),
            Command::Mapti { device, event: id, lpi, icid } => {
                if let Some(slot) = event(&mut self, device, id) {
                    slot.get_or_insert((lpi, icid));
                }
            }
            Command::Movi { device, event: id, icid } => {
                if let Some(Some((_, collection))) = event(&mut self, device, id) {
                    *collection = icid;
                }
            }
            Command::Discard { device, event: id } => {
                if let Some(slot) = event(&mut self, device, id) {
                    *slot = None;
                }
            }
            Command::Int { .. }
            | Command::Clear { .. }
            | Command::Inv { .. }
            | Command::Movall { .. }
            | Command::Sync { .. } => {}
        }
        self
    }

    fn maps(&self, lpi: u32) -> bool {
        self.devices.iter().flatten().flatten().flatten().any(|&(mapped, _)| mapped == lpi)
    }

    /// What an MSI for `device`/`event` makes pending.
    fn msi(&self, device: u32, event: u32) -> Result<u32, MsiDropped> {
        let untranslated = |error| Err(MsiDropped::Untranslated(error));
        let Some(events) = self.devices[device as usize] else {
            return untranslated(CommandError::DeviceUnmapped(device));
        };
        let Some((lpi, icid)) = events[event as usize] else {
            return untranslated(CommandError::EventUnmapped(event));
        };
        match self.collections[icid as usize] {
            Some(_) => Ok(lpi),
            None => untranslated(CommandError::CollectionUnmapped(icid)),
        }
    }
}

/// A guest write to an LPI's property entry, made just before the ITS reads a command.
#[derive(Clone, Copy, Debug)]
pub struct PropertyWrite {
    /// The command (index in the script) the guest queued after writing.
    pub before_command: usize,
    pub lpi: u32,
    pub entry: u8,
}

/// A script of ITS commands, the guest RAM it runs on, and what it means.
pub struct Scenario {
    script: Vec<Command>,
    /// The RAM before the guest's property write and from it on.
    rams: [Ram; 2],
    property_write: Option<PropertyWrite>,
    /// `translations[k]`: once CREADR has passed `k` commands.
    translations: Vec<Translation>,
}

impl Scenario {
    /// `script`, with LPI `LPIS[n]`'s property entry `entries[n]`, and the guest's
    /// `property_write` if any.
    pub fn new(script: &[Command], entries: [u8; LPIS.len()], property_write: Option<PropertyWrite>) -> Self {
        let rams = [Ram::new(), Ram::new()];
        for (index, ram) in rams.iter().enumerate() {
            for (&lpi, &entry) in LPIS.iter().zip(&entries) {
                ram.store(PROPERTY_TABLE + u64::from(lpi - 8192), &[entry]);
            }
            if let (1, Some(write)) = (index, property_write) {
                ram.store(PROPERTY_TABLE + u64::from(write.lpi - 8192), &[write.entry]);
            }
            for (position, command) in script.iter().enumerate() {
                for (word_index, word) in command.encode().iter().enumerate() {
                    ram.store(QUEUE + 32 * position as u64 + 8 * word_index as u64, &word.to_le_bytes());
                }
            }
        }
        let mut translations = vec![Translation::default()];
        for &command in script {
            translations.push(translations.last().unwrap().after(command));
        }
        Self { script: script.to_vec(), rams, property_write, translations }
    }

    /// The RAM the servers see while CREADR has passed `completed` commands.
    fn ram(&self, completed: usize) -> &Ram {
        match self.property_write {
            Some(write) if completed >= write.before_command => &self.rams[1],
            _ => &self.rams[0],
        }
    }

    /// Whether LPI `lpi` was unmapped by one of the first `completed` commands and not
    /// mapped again since.
    fn unmapped_by_completed_command(&self, completed: usize, lpi: u32) -> bool {
        let translations = &self.translations[..=completed];
        !translations[completed].maps(lpi) && translations.iter().any(|translation| translation.maps(lpi))
    }
}

/// What the guest and the devices may do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The its-server runs one step of its command queue.
    Its,
    /// A device sends an MSI.
    Msi { device: u32, event: u32 },
    /// The guest on a vCPU reads ICC_IAR1_EL1.
    Ack(u16),
    /// The guest on a vCPU writes ICC_EOIR1_EL1 for the interrupt it took last.
    Eoi(u16),
}

/// What the requests replied so far say about one LPI.
#[derive(Clone, Copy, Debug, Default, Hash)]
struct Lpi {
    mapped: bool,
    collection: u16,
    target: Option<u16>,
    /// An INT or MSI reached the vgic-server and was not yet delivered, cleared or
    /// discarded.
    edge: bool,
}

/// The effects of the its-server's requests, as the vgic-server must make them visible.
#[derive(Clone, Debug, Default, Hash)]
struct Expected {
    lpis: [Lpi; LPIS.len()],
    collections: [Option<u16>; COLLECTIONS],
}

impl Expected {
    fn lpi(&mut self, vintid: u32) -> Result<&mut Lpi, String> {
        let index =
            LPIS.iter().position(|&lpi| lpi == vintid).ok_or(format!("request names LPI {vintid}"))?;
        Ok(&mut self.lpis[index])
    }

    fn mapped_lpi(&mut self, vintid: u32) -> Result<&mut Lpi, String> {
        let lpi = self.lpi(vintid)?;
        if lpi.mapped { Ok(lpi) } else { Err(format!("the its-server named unmapped LPI {vintid}")) }
    }

    /// Takes in a request the vgic-server is about to handle.
    fn observe(&mut self, request: ItsRequest) -> Result<(), String> {
        match request {
            ItsRequest::CollectionTarget { icid, vcpu } => {
                self.collections[icid as usize] = vcpu;
                for lpi in self.lpis.iter_mut().filter(|lpi| lpi.mapped && lpi.collection == icid) {
                    lpi.target = vcpu;
                }
            }
            ItsRequest::LpiMap { vintid, icid } => {
                let target = self.collections[icid as usize];
                let lpi = self.lpi(vintid)?;
                if lpi.mapped {
                    return Err(format!("LPI {vintid} mapped twice"));
                }
                *lpi = Lpi { mapped: true, collection: icid, target, edge: false };
            }
            ItsRequest::LpiUnmap { vintid } => *self.mapped_lpi(vintid)? = Lpi::default(),
            ItsRequest::LpiSetPending { vintid } => self.mapped_lpi(vintid)?.edge = true,
            ItsRequest::LpiClearPending { vintid } => self.mapped_lpi(vintid)?.edge = false,
            ItsRequest::LpiMove { vintid, icid } => {
                let target = self.collections[icid as usize];
                let lpi = self.mapped_lpi(vintid)?;
                lpi.collection = icid;
                lpi.target = target;
            }
            ItsRequest::MoveAll { from_vcpu, to_vcpu } => {
                for lpi in self.lpis.iter_mut().filter(|lpi| lpi.mapped && lpi.target == Some(from_vcpu)) {
                    lpi.target = Some(to_vcpu);
                }
            }
            ItsRequest::ReloadLpi { vintid } => {
                self.mapped_lpi(vintid)?;
            }
            ItsRequest::ReloadCollection { .. } | ItsRequest::Sync { .. } => {}
        }
        Ok(())
    }
}

/// `vgic` reached over the host transport: each request is encoded as a message,
/// decoded and delivered as the vgic-server's shell does, after `expected` took it in
/// (its first objection lands in `error`).
fn transport<'a>(
    vgic: &'a mut TestVgic<{ VCPUS as usize }>,
    vcpus: &'a mut FakeVcpus,
    ram: &'a Ram,
    expected: &'a mut Expected,
    error: &'a mut Option<String>,
) -> RemoteVgic<impl FnMut(&Message) -> Result<Message, ipc::Error> + 'a> {
    RemoteVgic::new(move |message: &Message| {
        let Some(request) = ItsRequest::decode(message) else {
            error.get_or_insert(format!("undecodable request {message:?}"));
            return Ok(Message::new(REJECTED));
        };
        if let Err(objection) = expected.observe(request) {
            error.get_or_insert(objection);
        }
        deliver(request, &mut vgic.its_link(vcpus, ram));
        Ok(Message::new(DONE))
    })
}

macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// The two servers, the vCPUs, and the bookkeeping of one point of an exploration.
#[derive(Clone)]
pub struct World {
    its: ExploredIts,
    vgic: Box<TestVgic<{ VCPUS as usize }>>,
    vcpus: FakeVcpus,
    /// Productive [`Its::process`] steps so far.
    its_steps: u16,
    /// The its-server has queued work left.
    its_busy: bool,
    /// Commands CREADR has passed.
    completed: usize,
    /// The its-server has run steps of the command at CREADR (a MAPD teardown).
    mid_command: bool,
    /// What the guest on each vCPU acknowledged and has not EOIed yet, innermost last.
    handling: [Vec<u32>; VCPUS as usize],
    expected: Expected,
    msis_left: u8,
    /// Every LPI the guests acknowledged, with the vCPU, in order.
    pub delivered: Vec<(u16, u32)>,
}

impl World {
    /// The VM at the start of `scenario`: LPIs enabled on every vCPU, the ITS enabled,
    /// the whole script queued, `msis` MSIs to send.
    pub fn new(scenario: &Scenario, msis: u8) -> Self {
        let mut machine =
            Machine::<{ VCPUS as usize }>::new(Config { vcpus: VCPUS, spis: 32, lpi_id_bits: Some(14) });
        machine.enable_distributor();
        machine.gicr_write_sized(0, GICR_PROPBASER, Width::Doubleword, PROPERTY_TABLE | 13);
        for vcpu in 0..VCPUS {
            let pending_table = RAM_BASE + 0x2_0000 + 0x1_0000 * u64::from(vcpu);
            machine.gicr_write_sized(
                vcpu,
                GICR_PENDBASER,
                Width::Doubleword,
                pending_table | PENDING_TABLE_ZERO,
            );
            machine.gicr_write(vcpu, GICR_CTLR, 1);
        }
        let config = its_server::Config {
            max_devices: DEVICES as u32,
            max_events_per_device: EVENTS as u32,
            max_collections: COLLECTIONS as u32,
            vcpus: VCPUS,
            lpi_id_bits: 14,
        };
        let mut its = Its::new(config).expect("a valid ITS configuration");
        for (register, value) in [
            (offset::CBASER, QUEUE | VALID),
            (offset::BASER, DEVICE_TABLE | VALID),
            (offset::BASER + 8, COLLECTION_TABLE | VALID),
        ] {
            assert_eq!(its.write(register, Width::Doubleword, value), Progress::Idle);
        }
        assert_eq!(its.write(offset::CTLR, Width::Word, 1), Progress::Idle);
        let cwriter = 32 * scenario.script.len() as u64;
        let its_busy = its.write(offset::CWRITER, Width::Doubleword, cwriter) == Progress::MoreWork;
        let Machine { vgic, vcpus, .. } = machine;
        Self {
            its,
            vgic,
            vcpus,
            its_steps: 0,
            its_busy,
            completed: 0,
            mid_command: false,
            handling: Default::default(),
            expected: Expected::default(),
            msis_left: msis,
            delivered: Vec::new(),
        }
    }

    /// Takes `steps` in order from the start of `scenario` with `msis` MSIs, checking
    /// after each what an exploration checks (a step may find nothing to do: an
    /// acknowledge with nothing pending).
    pub fn run(scenario: &Scenario, msis: u8, steps: &[Step]) -> Self {
        let mut world = Self::new(scenario, msis);
        for (index, &step) in steps.iter().enumerate() {
            match world.apply(scenario, step) {
                Ok(_) => {}
                Err(violation) => panic!("{violation}\nat step {index}, {step:?}, of {steps:?}"),
            }
        }
        world
    }

    /// The valid list registers of `vcpu`, by (vINTID, state).
    pub fn listed(&self, vcpu: u16) -> Vec<(u32, LrState)> {
        let lrs = self.vcpus.cpus[vcpu as usize].lrs.iter();
        lrs.filter(|lr| lr.state != LrState::Invalid).map(|lr| (lr.vintid, lr.state)).collect()
    }

    /// The steps that may come next.
    fn steps(&self) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.its_busy {
            steps.push(Step::Its);
        }
        if self.msis_left > 0 {
            for device in 0..DEVICES as u32 {
                steps.extend((0..EVENTS as u32).map(|event| Step::Msi { device, event }));
            }
        }
        for vcpu in 0..VCPUS {
            steps.push(Step::Ack(vcpu));
            if !self.handling[vcpu as usize].is_empty() {
                steps.push(Step::Eoi(vcpu));
            }
        }
        steps
    }

    /// Takes `step`, then checks every property; `Ok(false)` if the step was not possible
    /// or changed nothing (an acknowledge that returned no interrupt).
    pub fn apply(&mut self, scenario: &Scenario, step: Step) -> Result<bool, String> {
        let mut error = None;
        match step {
            Step::Its => {
                if !self.its_busy {
                    return Ok(false);
                }
                let ram = scenario.ram(self.completed);
                let mut vgic =
                    transport(&mut self.vgic, &mut self.vcpus, ram, &mut self.expected, &mut error);
                self.its_busy = self.its.process(&mut vgic, ram, 1) == Progress::MoreWork;
                drop(vgic);
                self.its_steps += 1;
                let completed = (self.its.read(offset::CREADR, Width::Doubleword) / 32) as usize;
                ensure!(
                    completed == self.completed || completed == self.completed + 1,
                    "CREADR jumped from command {} to {completed}",
                    self.completed
                );
                self.mid_command = completed == self.completed;
                self.completed = completed;
                if !self.mid_command {
                    self.probe_translation(scenario)?;
                }
            }
            Step::Msi { device, event } => {
                if self.msis_left == 0 {
                    return Ok(false);
                }
                self.msis_left -= 1;
                let ram = scenario.ram(self.completed);
                let mut vgic =
                    transport(&mut self.vgic, &mut self.vcpus, ram, &mut self.expected, &mut error);
                let outcome = self.its.msi(&mut vgic, device, event);
                let before = scenario.translations[self.completed].msi(device, event);
                // During a MAPD teardown each event is translated as before or not at all.
                let during = self.mid_command
                    && outcome == Err(MsiDropped::Untranslated(CommandError::EventUnmapped(event)));
                ensure!(
                    outcome == before.map(|_| ()) || during,
                    "MSI {device}/{event}: {outcome:?}, expected {before:?}"
                );
            }
            Step::Ack(vcpu) => {
                let Some(lpi) = self.vcpus.acknowledge(vcpu) else { return Ok(false) };
                self.delivered.push((vcpu, lpi));
                ensure!(
                    !scenario.unmapped_by_completed_command(self.completed, lpi),
                    "LPI {lpi} delivered to vCPU {vcpu} after CREADR passed the command that unmapped it"
                );
                let expected = self.expected.lpi(lpi)?;
                ensure!(
                    expected.mapped && expected.edge,
                    "LPI {lpi} delivered to vCPU {vcpu} without a pending edge"
                );
                ensure!(
                    expected.target == Some(vcpu),
                    "LPI {lpi} delivered to vCPU {vcpu}; it targets {:?}",
                    expected.target
                );
                expected.edge = false;
                self.handling[vcpu as usize].push(lpi);
            }
            Step::Eoi(vcpu) => {
                let Some(lpi) = self.handling[vcpu as usize].pop() else { return Ok(false) };
                self.vcpus.end_of_interrupt(vcpu, lpi);
            }
        }
        if let Some(error) = error {
            return Err(error);
        }
        self.vcpus.service(&mut self.vgic);
        self.check_visible()?;
        Ok(true)
    }

    /// Between commands, every (DeviceID, EventID) translates as the script says, MSIs
    /// sent to a recorder in place of the vgic-server.
    fn probe_translation(&self, scenario: &Scenario) -> Result<(), String> {
        let expected = &scenario.translations[self.completed];
        for device in 0..DEVICES as u32 {
            for event in 0..EVENTS as u32 {
                let mut sent = Vec::new();
                let mut recorder = RemoteVgic::new(|message: &Message| {
                    sent.push(ItsRequest::decode(message));
                    Ok(Message::new(DONE))
                });
                let outcome = self.its.msi(&mut recorder, device, event);
                let expected = expected.msi(device, event);
                let translated = match expected {
                    Ok(lpi) => vec![Some(ItsRequest::LpiSetPending { vintid: lpi })],
                    Err(_) => Vec::new(),
                };
                ensure!(
                    outcome == expected.map(|_| ()) && sent == translated,
                    "after {} commands the its-server translates {device}/{event} to {outcome:?} {sent:?}, \
                     not {expected:?}",
                    self.completed
                );
            }
        }
        Ok(())
    }

    /// The vgic-server's view of each LPI, with the list registers, is what the requests
    /// replied so far say.
    fn check_visible(&self) -> Result<(), String> {
        for (&lpi, expected) in LPIS.iter().zip(&self.expected.lpis) {
            for (vcpu, cpu) in self.vcpus.cpus.iter().enumerate() {
                for lr in cpu.lrs.iter().filter(|lr| lr.vintid == lpi && lr.state.pending()) {
                    ensure!(
                        expected.mapped && expected.edge && expected.target == Some(vcpu as u16),
                        "LPI {lpi} {:?} in a list register of vCPU {vcpu}; expected {expected:?}",
                        lr.state
                    );
                }
            }
            let irq = *self.vgic.irq(self.vgic.lpi_id(lpi).expect("a configured LPI"));
            ensure!(irq.has(EXISTS) == expected.mapped, "LPI {lpi}: server {irq:?}, expected {expected:?}");
            if expected.mapped {
                let target = (irq.target != NO_VCPU).then_some(irq.target);
                // A pending copy the server wrote is the truth (the guest may have taken
                // it since); otherwise the server's latch is (a new pending state waits
                // there while an old copy is active on another vCPU).
                let pending = match irq.place {
                    Place::Listed { vcpu, slot }
                        if self.vgic.cpus[vcpu as usize].written[slot as usize].state.pending() =>
                    {
                        self.vcpus.cpus[vcpu as usize].lrs[slot as usize].state.pending()
                    }
                    _ => irq.has(LATCH),
                };
                ensure!(
                    target == expected.target && pending == expected.edge,
                    "LPI {lpi}: server {irq:?} (pending {pending}), expected {expected:?}"
                );
            } else {
                ensure!(
                    !irq.has(LATCH) && !matches!(irq.place, Place::Queued { .. }),
                    "unmapped LPI {lpi} keeps state: {irq:?}"
                );
            }
        }
        Ok(())
    }

    /// Where nothing can happen any more: every edge was delivered, and no list register
    /// holds an unmapped LPI.
    fn check_final(&self) -> Result<(), String> {
        for (&lpi, expected) in LPIS.iter().zip(&self.expected.lpis) {
            ensure!(
                !(expected.mapped && expected.edge && expected.target.is_some()),
                "LPI {lpi} stays pending and undelivered: {expected:?}"
            );
            // The server may still record the list register of a copy the guest completed
            // (an LPI's EOI does not trap); it learns so when it next syncs that vCPU.
            let listed = self
                .vcpus
                .cpus
                .iter()
                .any(|cpu| cpu.lrs.iter().any(|lr| lr.vintid == lpi && lr.state != LrState::Invalid));
            ensure!(expected.mapped || !listed, "unmapped LPI {lpi} is left in a list register");
        }
        Ok(())
    }

    /// A 128-bit hash of the canonical encoding (see the module docs).
    fn key(&self) -> u128 {
        let hash = |salt: u64| {
            let mut hasher = DefaultHasher::new();
            salt.hash(&mut hasher);
            self.its_steps.hash(&mut hasher);
            for lpi in LPIS {
                let id = self.vgic.lpi_id(lpi).expect("a configured LPI");
                self.vgic.irq(id).hash(&mut hasher);
                self.vgic.lpi_collections[(lpi - 8192) as usize].hash(&mut hasher);
            }
            self.vgic.collections.hash(&mut hasher);
            for vcpu in 0..VCPUS as usize {
                self.vgic.cpus[vcpu].written.hash(&mut hasher);
                let cpu = &self.vcpus.cpus[vcpu];
                (cpu.lrs, cpu.ap1r0, cpu.underflow, cpu.no_pending).hash(&mut hasher);
            }
            (&self.handling, &self.expected, self.msis_left).hash(&mut hasher);
            hasher.finish()
        };
        u128::from(hash(0)) << 64 | u128::from(hash(1))
    }
}

/// A depth-first search over every state reachable from a [`World`].
struct Search<'a> {
    scenario: &'a Scenario,
    seen: HashSet<u128>,
    /// States where nothing could happen any more.
    final_states: usize,
    /// The steps from the start to the state being expanded.
    path: Vec<Step>,
}

impl Search<'_> {
    fn visit(&mut self, world: &World) {
        let mut moved = false;
        for step in world.steps() {
            let mut next = world.clone();
            let outcome =
                catch_unwind(AssertUnwindSafe(|| next.apply(self.scenario, step))).unwrap_or_else(|panic| {
                    let message = panic.downcast_ref::<String>().map(String::as_str);
                    Err(format!(
                        "panic: {}",
                        message.or(panic.downcast_ref::<&str>().copied()).unwrap_or("?")
                    ))
                });
            match outcome {
                Ok(false) => continue,
                Ok(true) => moved = true,
                Err(violation) => self.fail(step, &violation),
            }
            if self.seen.insert(next.key()) {
                self.path.push(step);
                self.visit(&next);
                self.path.pop();
            }
        }
        if !moved {
            self.final_states += 1;
            if let Err(violation) = world.check_final() {
                self.fail(Step::Its, &format!("(final state) {violation}"));
            }
        }
    }

    fn fail(&self, step: Step, violation: &str) -> ! {
        panic!("{violation}\nafter the steps {:?}\nthen {step:?}", self.path);
    }
}

/// Explores every interleaving of `scenario` with `msis` MSIs; answers the numbers of
/// states and of final states.
pub fn explore(scenario: &Scenario, msis: u8) -> (usize, usize) {
    let world = World::new(scenario, msis);
    let mut search =
        Search { scenario, seen: HashSet::from([world.key()]), final_states: 0, path: Vec::new() };
    search.visit(&world);
    (search.seen.len(), search.final_states)
}

/// The script every command kind appears in: two devices of two events, three vCPUs.
fn every_command() -> Scenario {
    use Command::*;
    let script = [
        Mapd { device: 0, event_id_bits: Some(1) },
        Mapd { device: 1, event_id_bits: Some(1) },
        Mapc { icid: 0, vcpu: 0 },
        Mapc { icid: 1, vcpu: 1 },
        Mapti { device: 0, event: 0, lpi: 8192, icid: 0 },
        Mapti { device: 0, event: 1, lpi: 8193, icid: 1 },
        Mapti { device: 1, event: 0, lpi: 8194, icid: 0 },
        Mapti { device: 1, event: 1, lpi: 8195, icid: 1 },
        Int { device: 0, event: 0 },
        Movi { device: 0, event: 0, icid: 1 },
        Inv { device: 1, event: 0 },
        Clear { device: 0, event: 1 },
        Movall { from: 1, to: 2 },
        Discard { device: 0, event: 0 },
        Int { device: 0, event: 0 },
        Mapti { device: 0, event: 0, lpi: 8196, icid: 0 },
        Sync { vcpu: 2 },
        Mapd { device: 1, event_id_bits: None },
        Mapd { device: 0, event_id_bits: Some(1) },
    ];
    // LPI 8194 is mapped disabled; the guest enables it before the INV.
    let enable = PropertyWrite { before_command: 10, lpi: 8194, entry: HIGH };
    Scenario::new(&script, [HIGH, LOW, DISABLED, LOW, HIGH], Some(enable))
}

/// MSIs in the run of `cargo xtask test`; `EXPLORE_BOUND` (`cargo xtask explore --bound
/// N`) sets another.
const DEFAULT_MSIS: u8 = 3;

#[test]
#[ignore = "exhaustive: `cargo xtask test` runs it optimised (`cargo xtask explore`)"]
fn every_interleaving_of_commands_msis_and_guests_keeps_the_lpi_lifetime_rules() {
    let msis = std::env::var("EXPLORE_BOUND")
        .map_or(DEFAULT_MSIS, |bound| bound.parse().expect("EXPLORE_BOUND is a number of MSIs"));
    // Deep searches recurse once per step.
    let explorer = std::thread::Builder::new().stack_size(256 << 20).spawn(move || {
        let started = Instant::now();
        let (states, final_states) = explore(&every_command(), msis);
        println!(
            "explored {states} states ({final_states} final) of every interleaving with {msis} MSIs \
             in {:.1?}",
            started.elapsed()
        );
    });
    explorer.expect("a thread for the search").join().expect("no property violated");
}
