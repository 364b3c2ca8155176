//! The ITS of one VM: command processing, MAPD teardowns and MSIs.

use ipc::GUEST_EVENT;
use log::{debug, warn};

use crate::command::{COMMAND_SIZE, Command};
use crate::config::{Config, ConfigError, FIRST_LPI, ITT_ENTRY_SIZE};
use crate::registers::{Registers, Table, TableError};
use crate::translation::{Event, Translation};
use crate::{GuestMemory, Reload, Vgic};

/// Whether [`Its::process`] has work left.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Nothing to do until the guest writes GITS_CWRITER or GITS_CTLR again.
    Idle,
    /// Commands (or a MAPD teardown) remain: call [`Its::process`] again.
    MoreWork,
}

/// Why a command was dropped. The guest sees only that the command had no effect; the
/// server logs the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// The command at CREADR (at this address) is outside the VM's RAM.
    QueueOutsideRam(u64),
    /// Not a GICv3 physical ITS command number.
    UnknownCommand(u8),
    /// DeviceID at or above the `max_devices` quota.
    DeviceOutOfRange(u32),
    /// The guest's device table has no entry for this DeviceID.
    DeviceTable(u32, TableError),
    /// The DeviceID is not mapped.
    DeviceUnmapped(u32),
    /// MAPD asks for an ITT of more EventID bits than GITS_TYPER.ID_bits allows.
    IttTooLarge(u8),
    /// MAPD V=1's ITT (at this address) does not lie wholly inside the VM's RAM.
    IttOutsideRam(u64),
    /// EventID beyond the device's ITT or the `max_events_per_device` quota.
    EventOutOfRange(u32),
    /// The EventID is not mapped.
    EventUnmapped(u32),
    /// MAPTI/MAPI of an EventID that is already mapped.
    EventAlreadyMapped(u32),
    /// ICID at or above the `max_collections` quota.
    CollectionOutOfRange(u16),
    /// The guest's collection table has no entry for this ICID.
    CollectionTable(u16, TableError),
    /// The collection is not mapped and the command needs a target.
    CollectionUnmapped(u16),
    /// INTID outside `8192..2^lpi_id_bits`.
    LpiOutOfRange(u32),
    /// Another event of the VM already maps this LPI.
    LpiInUse(u32),
    /// RDbase (a processor number) at or above the vCPU count.
    TargetOutOfRange(u64),
}

/// Why [`Its::msi`] delivered nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiDropped {
    /// GITS_CTLR.Enabled is 0.
    Disabled,
    /// The DeviceID/EventID does not translate to a deliverable LPI.
    Untranslated(CommandError),
}

/// A MAPD over a mapped device, unmapping its events one step at a time.
#[derive(Clone, Copy, Debug)]
struct Teardown {
    device: u32,
    /// Events below this are already unmapped.
    next_event: u32,
    /// `Some(bits)`: MAPD V=1, the device is mapped again with a `2^bits`-event ITT
    /// afterwards; `None`: MAPD V=0, the device is forgotten.
    remap: Option<u8>,
}

/// How an executed command ended.
enum Completion {
    /// Its effect is complete: CREADR moves on.
    Done,
    /// A teardown continues it; CREADR moves on when that ends.
    TearingDown,
}

/// The emulated ITS of one VM, with room for `DEVICES` devices of `EVENTS` events each
/// and `COLLECTIONS` collections (the VM's [`Config`] quotas fit in these capacities).
/// A clone is an independent copy of the whole ITS state (host tests explore
/// interleavings from it).
#[derive(Clone)]
pub struct Its<const DEVICES: usize, const EVENTS: usize, const COLLECTIONS: usize> {
    pub(crate) config: Config,
    pub(crate) registers: Registers,
    translation: Translation<DEVICES, EVENTS, COLLECTIONS>,
    teardown: Option<Teardown>,
}

impl<const DEVICES: usize, const EVENTS: usize, const COLLECTIONS: usize> Its<DEVICES, EVENTS, COLLECTIONS> {
    /// An ITS at reset (disabled, nothing mapped) with `config`'s quotas. A `const fn`
    /// so that the shell can place it in a static.
    pub const fn new(config: Config) -> Result<Self, ConfigError> {
        if let Err(error) = config.validate(DEVICES, EVENTS, COLLECTIONS) {
            return Err(error);
        }
        Ok(Self { config, registers: Registers::new(), translation: Translation::new(), teardown: None })
    }

    /// Back to the state of [`Its::new`] with the same quotas, in place (the VM resets:
    /// PSCI SYSTEM_RESET). Nothing is said to the vgic-server, which resets on its own.
    pub fn reset(&mut self) {
        self.registers = Registers::new();
        self.translation.reset();
        self.teardown = None;
    }

    /// Runs at most `budget` steps of queued commands (one step: a command, or one
    /// event of a MAPD teardown), each complete (its [`Vgic`] calls returned) before
    /// CREADR moves past it.
    pub fn process(&mut self, vgic: &mut impl Vgic, memory: &impl GuestMemory, budget: usize) -> Progress {
        for _ in 0..budget {
            if let Some(teardown) = self.teardown {
                self.continue_teardown(teardown, vgic);
            } else if self.registers.commands_waiting() {
                self.run_next_command(vgic, memory);
            } else {
                return Progress::Idle;
            }
        }
        self.progress()
    }

    /// An MSI from a device: translates (`device_id`, `event_id`) and makes the LPI
    /// pending. The shell takes `device_id` from the sender's identity, never from the
    /// message.
    pub fn msi(&self, vgic: &mut impl Vgic, device_id: u32, event_id: u32) -> Result<(), MsiDropped> {
        if !self.registers.enabled {
            debug!("its: MSI {device_id:#x}/{event_id:#x} while the ITS is disabled: dropped");
            return Err(MsiDropped::Disabled);
        }
        match self.deliverable(device_id, event_id) {
            Ok(vintid) => {
                vgic.lpi_set_pending(vintid);
                Ok(())
            }
            Err(error) => {
                debug!("its: MSI {device_id:#x}/{event_id:#x} dropped: {error:?}");
                Err(MsiDropped::Untranslated(error))
            }
        }
    }

    pub(crate) fn progress(&self) -> Progress {
        if self.is_tearing_down() || self.registers.commands_waiting() {
            Progress::MoreWork
        } else {
            Progress::Idle
        }
    }

    pub(crate) fn is_tearing_down(&self) -> bool {
        self.teardown.is_some()
    }

    fn run_next_command(&mut self, vgic: &mut impl Vgic, memory: &impl GuestMemory) {
        let address = self.registers.next_command_address();
        let mut bytes = [0; COMMAND_SIZE as usize];
        let result = match memory.read(address, &mut bytes) {
            Ok(()) => {
                let command = Command::decode(&bytes);
                self.execute(command, vgic, memory).inspect_err(|error| {
                    warn!(target: GUEST_EVENT, "its: {command:?} at CREADR {:#x} dropped: {error:?}", self.registers.creadr);
                })
            }
            Err(_) => {
                let error = CommandError::QueueOutsideRam(address);
                warn!(target: GUEST_EVENT, "its: command at CREADR {:#x} dropped: {error:?}", self.registers.creadr);
                Err(error)
            }
        };
        if !matches!(result, Ok(Completion::TearingDown)) {
            self.registers.advance_creadr();
        }
    }

    fn execute(
        &mut self,
        command: Command,
        vgic: &mut impl Vgic,
        memory: &impl GuestMemory,
    ) -> Result<Completion, CommandError> {
        match command {
            Command::Mapd { device, event_id_bits, itt, valid } => {
                return self.mapd(device, valid.then_some((event_id_bits, itt)), memory);
            }
            Command::Mapc { icid, target, valid } => {
                self.check_collection_id(icid)?;
                self.registers
                    .check_table_entry(Table::Collections, icid.into(), memory)
                    .map_err(|error| CommandError::CollectionTable(icid, error))?;
                let vcpu = if valid { Some(self.vcpu(target)?) } else { None };
                self.translation.set_collection_target(icid, vcpu);
                vgic.collection_target(icid, vcpu);
            }
            Command::Mapti { device, event, vintid, icid } => {
                self.map_event(device, event, vintid, icid, vgic)?
            }
            Command::Mapi { device, event, icid } => self.map_event(device, event, event, icid, vgic)?,
            Command::Movi { device, event, icid } => {
                let vintid = self.translate(device, event)?.vintid;
                self.check_collection_mapped(icid)?;
                self.translation.move_event(device, event, icid);
                vgic.lpi_move(vintid, icid);
            }
            Command::Discard { device, event } => {
                self.translate(device, event)?;
                if let Some(vintid) = self.translation.unmap_event(device, event) {
                    vgic.lpi_unmap(vintid);
                }
            }
            Command::Int { device, event } => vgic.lpi_set_pending(self.deliverable(device, event)?),
            Command::Clear { device, event } => vgic.lpi_clear_pending(self.translate(device, event)?.vintid),
            Command::Inv { device, event } => {
                vgic.reload_config(Reload::Lpi(self.translate(device, event)?.vintid));
            }
            Command::Invall { icid } => {
                self.check_collection_mapped(icid)?;
                vgic.reload_config(Reload::Collection(icid));
            }
            Command::Sync { target } => vgic.sync(self.vcpu(target)?),
            Command::Movall { from, to } => {
                let (from, to) = (self.vcpu(from)?, self.vcpu(to)?);
                if from != to {
                    vgic.move_all(from, to);
                }
            }
            Command::Unknown { number } => return Err(CommandError::UnknownCommand(number)),
        }
        Ok(Completion::Done)
    }

    /// MAPD: `remap` is `Some((event ID bits, ITT address))` for V=1, `None` for V=0
    /// (whose ITT address means nothing).
    fn mapd(
        &mut self,
        device: u32,
        remap: Option<(u8, u64)>,
        memory: &impl GuestMemory,
    ) -> Result<Completion, CommandError> {
        self.check_device_id(device)?;
        self.registers
            .check_table_entry(Table::Devices, device, memory)
            .map_err(|error| CommandError::DeviceTable(device, error))?;
        if let Some((bits, itt)) = remap {
            if u32::from(bits) > self.config.event_id_bits() {
                return Err(CommandError::IttTooLarge(bits));
            }
            // At most 2^32 entries of 8 bytes: no overflow.
            if !memory.contains(itt, ITT_ENTRY_SIZE << bits) {
                return Err(CommandError::IttOutsideRam(itt));
            }
        }
        let remap = remap.map(|(bits, _)| bits);
        if self.translation.device_event_id_bits(device).is_some() {
            self.teardown = Some(Teardown { device, next_event: 0, remap });
            return Ok(Completion::TearingDown);
        }
        if let Some(bits) = remap {
            self.translation.map_device(device, bits);
        }
        Ok(Completion::Done)
    }

    /// One step of a MAPD teardown: unmaps the next mapped event, or, when none is left,
    /// finishes the MAPD and moves CREADR past it.
    fn continue_teardown(&mut self, teardown: Teardown, vgic: &mut impl Vgic) {
        let Teardown { device, next_event, remap } = teardown;
        let next = self.translation.next_mapped_event(device, next_event);
        if let Some(event) = next
            && let Some(vintid) = self.translation.unmap_event(device, event)
        {
            vgic.lpi_unmap(vintid);
            // `event` is below the u32 quota, so the successor fits.
            self.teardown = Some(Teardown { next_event: event + 1, ..teardown });
            return;
        }
        match remap {
            Some(bits) => self.translation.map_device(device, bits),
            None => self.translation.forget_device(device),
        }
        self.teardown = None;
        self.registers.advance_creadr();
    }

    fn map_event(
        &mut self,
        device: u32,
        event: u32,
        vintid: u32,
        icid: u16,
        vgic: &mut impl Vgic,
    ) -> Result<(), CommandError> {
        self.check_event_id(device, event)?;
        self.check_collection_id(icid)?;
        if !(FIRST_LPI..self.config.lpi_end()).contains(&vintid) {
            return Err(CommandError::LpiOutOfRange(vintid));
        }
        if self.translation.event(device, event).is_some() {
            return Err(CommandError::EventAlreadyMapped(event));
        }
        if self.translation.lpi_in_use(vintid) {
            return Err(CommandError::LpiInUse(vintid));
        }
        self.translation.map_event(device, event, Event { vintid, icid });
        vgic.lpi_map(vintid, icid);
        Ok(())
    }

    fn check_device_id(&self, device: u32) -> Result<(), CommandError> {
        if device < self.config.max_devices { Ok(()) } else { Err(CommandError::DeviceOutOfRange(device)) }
    }

    /// Checks that `event` is a valid EventID of the mapped `device`.
    fn check_event_id(&self, device: u32, event: u32) -> Result<(), CommandError> {
        self.check_device_id(device)?;
        let bits =
            self.translation.device_event_id_bits(device).ok_or(CommandError::DeviceUnmapped(device))?;
        if u64::from(event) < 1 << bits && event < self.config.max_events_per_device {
            Ok(())
        } else {
            Err(CommandError::EventOutOfRange(event))
        }
    }

    /// The translation of a mapped event.
    fn translate(&self, device: u32, event: u32) -> Result<Event, CommandError> {
        self.check_event_id(device, event)?;
        self.translation.event(device, event).ok_or(CommandError::EventUnmapped(event))
    }

    /// The LPI of a mapped event whose collection has a target.
    fn deliverable(&self, device: u32, event: u32) -> Result<u32, CommandError> {
        let Event { vintid, icid } = self.translate(device, event)?;
        self.check_collection_mapped(icid)?;
        Ok(vintid)
    }

    fn check_collection_id(&self, icid: u16) -> Result<(), CommandError> {
        if u32::from(icid) < self.config.max_collections {
            Ok(())
        } else {
            Err(CommandError::CollectionOutOfRange(icid))
        }
    }

    fn check_collection_mapped(&self, icid: u16) -> Result<(), CommandError> {
        self.check_collection_id(icid)?;
        match self.translation.collection_target(icid) {
            Some(_) => Ok(()),
            None => Err(CommandError::CollectionUnmapped(icid)),
        }
    }

    /// The vCPU an RDbase names (a processor number, since GITS_TYPER.PTA = 0).
    fn vcpu(&self, target: u64) -> Result<u16, CommandError> {
        match u16::try_from(target) {
            Ok(vcpu) if vcpu < self.config.vcpus => Ok(vcpu),
            _ => Err(CommandError::TargetOutOfRange(target)),
        }
    }
}

#[cfg(test)]
mod tests;
