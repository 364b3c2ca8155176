//! The vGIC of one VM: interrupt state, the list-register copies and their sync, and the
//! entry points for SGIs, PPIs, SPIs and maintenance.

use core::mem::MaybeUninit;

use log::{debug, info, warn};

use crate::config::{
    Config, ConfigError, FIRST_LPI, FIRST_PPI, FIRST_SPI, HARDWARE_PPIS, MAX_SPIS, NotAnSpi,
    PRIVATE_INTERRUPTS, vcpu_with_affinity,
};
use crate::interface::{LIST_REGISTERS, ListRegister, LrState, LrUpdate, Snapshot};
use crate::irq::{
    ACTIVE, EDGE, ENABLED, EXISTS, FIXED_CONFIG, HARDWARE, Irq, IrqId, LATCH, NO_IRQ, NO_VCPU, Place, Queue,
};
use crate::{SgiRegister, Trigger, Vcpus};

/// GICD_IROUTER.Interrupt_Routing_Mode: any participating vCPU (1 of N).
pub(crate) const ROUTE_ANY: u32 = 1 << 31;
/// The GICD_IROUTER bits kept: Aff2.Aff1.Aff0 and Interrupt_Routing_Mode (Aff3 is RES0
/// since GICD_TYPER.A3V = 0).
pub(crate) const ROUTE_WRITABLE: u32 = ROUTE_ANY | 0x00ff_ffff;

const SGI_TARGET_LIST: u64 = 0xffff;
const SGI_AFF1_SHIFT: u32 = 16;
const SGI_INTID_SHIFT: u32 = 24;
const SGI_AFF2_SHIFT: u32 = 32;
const SGI_BROADCAST: u64 = 1 << 40;
const SGI_RANGE_SHIFT: u32 = 44;
const SGI_AFF3_SHIFT: u32 = 48;

/// Writes `value` into the `count` elements from `first`.
///
/// # Safety
///
/// `first..first + count` must be valid for writes.
unsafe fn fill<T: Copy>(first: *mut T, count: usize, value: T) {
    for index in 0..count {
        // SAFETY: `index < count`, inside the range the caller vouches for.
        unsafe { first.add(index).write(value) };
    }
}

/// Whether a vCPU's list registers are in the server's hands during one entry point.
#[derive(Clone, Copy, Debug)]
enum Hold {
    /// Not stopped by the server; its list registers are as last written, advanced by
    /// the guest.
    Free,
    /// Stopped by [`Vcpus::sync`]; released by [`Vcpus::write_lrs`].
    Synced(Snapshot),
    /// Waiting for the reply to its maintenance event.
    Replying,
}

/// Per-vCPU state: the copies in its list registers, its queue, its redistributor.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cpu {
    /// Interrupts waiting for a list register.
    queue: Queue,
    /// The interrupt copied into each list register, or [`NO_IRQ`].
    slots: [IrqId; LIST_REGISTERS],
    /// What the server last wrote into each list register.
    pub(crate) written: [ListRegister; LIST_REGISTERS],
    /// How many queued interrupts are active (listed first).
    queued_active: u16,
    hold: Hold,
    /// An interrupt was queued: its list registers need a look.
    wants_refill: bool,
    /// GICR_CTLR.EnableLPIs.
    pub lpis_enabled: bool,
    /// GICR_WAKER.ProcessorSleep.
    pub asleep: bool,
    /// GICR_PENDBASER (without PTZ).
    pub pendbaser: u64,
    /// PTZ was written with GICR_PENDBASER: the pending table holds no pending bit.
    pub pending_table_zeroed: bool,
}

impl Cpu {
    const RESET: Self = Self {
        queue: Queue::EMPTY,
        slots: [NO_IRQ; LIST_REGISTERS],
        written: [ListRegister::INVALID; LIST_REGISTERS],
        queued_active: 0,
        hold: Hold::Free,
        wants_refill: false,
        lpis_enabled: false,
        asleep: true,
        pendbaser: 0,
        pending_table_zeroed: false,
    };
}

/// The emulated GICv3 distributor and redistributors of one VM, and the owner of every
/// interrupt state of that VM. See the crate documentation for the ownership rules.
///
/// Capacities are fixed at compile time: `VCPUS` vCPUs, `LPIS` LPI INTIDs from 8192, and
/// `COLLECTIONS` ITS collection IDs; [`Config`] chooses what the guest sees within them.
/// The server never allocates. Every interrupt has a 16-bit index, so
/// `32 * VCPUS + 988 + LPIS` must stay below 65535 (checked when building).
// Host tests clone whole servers to explore interleavings from a shared state.
#[cfg_attr(test, derive(Clone))]
pub struct Vgic<const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize> {
    pub(crate) config: Config,
    /// GICD_CTLR.EnableGrp0 (no interrupt is in Group 0; kept for read-back).
    pub(crate) enable_group0: bool,
    /// GICD_CTLR.EnableGrp1.
    pub(crate) enable_group1: bool,
    private: [[Irq; PRIVATE_INTERRUPTS]; VCPUS],
    spis: [Irq; MAX_SPIS],
    /// `GICD_IROUTER<n>` of each SPI, lower word.
    pub(crate) spi_routes: [u32; MAX_SPIS],
    lpis: [Irq; LPIS],
    /// The ITS collection of each mapped LPI.
    pub(crate) lpi_collections: [u16; LPIS],
    /// The vCPU each ITS collection targets, or [`NO_VCPU`].
    pub(crate) collections: [u16; COLLECTIONS],
    pub(crate) cpus: [Cpu; VCPUS],
    /// GICR_PROPBASER, shared by all redistributors (GICR_TYPER.CommonLPIAff = 0).
    pub(crate) propbaser: u64,
}

impl<const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize> Vgic<VCPUS, LPIS, COLLECTIONS> {
    const SPI_BASE: usize = VCPUS * PRIVATE_INTERRUPTS;
    const LPI_BASE: usize = Self::SPI_BASE + MAX_SPIS;

    /// A vGIC in its reset state: every interrupt disabled, inactive, not pending, priority
    /// 0, Group 1, SPIs level-sensitive and routed to vCPU 0, SGIs edge-triggered, PPIs
    /// level-sensitive, redistributors asleep, LPIs disabled, no collection mapped.
    /// Returned by value: a server with many LPIs builds in place with
    /// [`Vgic::init_in_place`] instead.
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        let mut vgic = MaybeUninit::uninit();
        Self::init_in_place(&mut vgic, config)?;
        // SAFETY: `init_in_place` succeeded, so it initialized every field.
        Ok(unsafe { vgic.assume_init() })
    }

    /// Back to the state of [`Vgic::new`] with the same configuration, in place (the VM
    /// resets: PSCI SYSTEM_RESET). Passthrough SPIs must be attached again, and the
    /// vCPUs' list registers are the caller's to clear.
    pub fn reset(&mut self) {
        let config = self.config;
        // SAFETY: `MaybeUninit<Self>` has the layout of `Self`, and `Self` holds plain
        // data only, so overwriting it without dropping loses nothing. The configuration
        // was accepted when `self` was built, so `init_in_place` writes every field.
        let place = unsafe { &mut *core::ptr::from_mut(self).cast::<MaybeUninit<Self>>() };
        let rebuilt = Self::init_in_place(place, config);
        debug_assert!(rebuilt.is_ok(), "the configuration was accepted before");
    }

    /// Builds the vGIC of [`Vgic::new`] in `place` (static or heap memory: with 16-bit
    /// LPIs it is about 800 KiB, more than a component's stack), without a temporary.
    pub fn init_in_place(place: &mut MaybeUninit<Self>, config: Config) -> Result<&mut Self, ConfigError> {
        const { assert!(Self::LPI_BASE + LPIS < NO_IRQ as usize, "interrupt indices must fit 16 bits") };
        config.validate(VCPUS, LPIS)?;
        let this = place.as_mut_ptr();
        // SAFETY: `this` comes from `place`, valid for writes of a whole `Self`. Each write
        // goes through a raw field pointer (no reference to uninitialized memory is made),
        // and together they initialize every field; `fill` writes exactly the elements of
        // the array it is given.
        unsafe {
            (&raw mut (*this).config).write(config);
            (&raw mut (*this).enable_group0).write(false);
            (&raw mut (*this).enable_group1).write(false);
            fill((&raw mut (*this).private).cast::<Irq>(), VCPUS * PRIVATE_INTERRUPTS, Irq::ABSENT);
            fill((&raw mut (*this).spis).cast::<Irq>(), MAX_SPIS, Irq::ABSENT);
            fill((&raw mut (*this).spi_routes).cast::<u32>(), MAX_SPIS, 0);
            fill((&raw mut (*this).lpis).cast::<Irq>(), LPIS, Irq::ABSENT);
            fill((&raw mut (*this).lpi_collections).cast::<u16>(), LPIS, 0);
            fill((&raw mut (*this).collections).cast::<u16>(), COLLECTIONS, NO_VCPU);
            fill((&raw mut (*this).cpus).cast::<Cpu>(), VCPUS, Cpu::RESET);
            (&raw mut (*this).propbaser).write(0);
        }
        // SAFETY: every field was written above.
        let vgic = unsafe { place.assume_init_mut() };
        for vcpu in 0..config.vcpus {
            for (intid, irq) in vgic.private[vcpu as usize].iter_mut().enumerate() {
                let intid = intid as u32;
                irq.set(EXISTS, true);
                irq.target = vcpu;
                let sgi = intid < FIRST_PPI;
                irq.set(EDGE, sgi);
                irq.set(HARDWARE, HARDWARE_PPIS.contains(&intid));
                irq.set(FIXED_CONFIG, sgi || irq.has(HARDWARE));
            }
        }
        for irq in &mut vgic.spis[..config.spis as usize] {
            irq.set(EXISTS, true);
            irq.target = 0;
        }
        Ok(vgic)
    }

    /// The configuration this vGIC was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Declares SPI `intid` a passthrough of the physical SPI with the same number, with
    /// the trigger its owner configured: it is listed hardware-linked, the guest cannot
    /// change its trigger, and [`Vgic::set_spi_level`]/[`Vgic::pulse_spi`] report the
    /// physical interrupt, which the host keeps active until the guest deactivates it
    /// (or until the server calls [`Vcpus::deactivate_physical`]). Call before the guest
    /// runs.
    pub fn attach_passthrough_spi(&mut self, intid: u32, trigger: Trigger) -> Result<(), NotAnSpi> {
        let id = self.spi_id(intid).ok_or(NotAnSpi(intid))?;
        let irq = self.irq_mut(id);
        irq.set(HARDWARE, true);
        irq.set(FIXED_CONFIG, true);
        irq.set(EDGE, trigger == Trigger::Edge);
        Ok(())
    }

    // ---- Interrupt indices ----

    /// Whether `id` is an LPI.
    pub(crate) const fn is_lpi(id: IrqId) -> bool {
        id as usize >= Self::LPI_BASE
    }

    /// The index of SGI/PPI `intid` of `vcpu`, if both exist.
    pub(crate) fn private_id(&self, vcpu: u16, intid: u32) -> Option<IrqId> {
        (vcpu < self.config.vcpus && intid < PRIVATE_INTERRUPTS as u32)
            .then(|| (vcpu as usize * PRIVATE_INTERRUPTS + intid as usize) as IrqId)
    }

    /// The index of SPI `intid`, if it exists.
    pub(crate) fn spi_id(&self, intid: u32) -> Option<IrqId> {
        (FIRST_SPI..FIRST_SPI + self.config.spis as u32)
            .contains(&intid)
            .then(|| (Self::SPI_BASE + (intid - FIRST_SPI) as usize) as IrqId)
    }

    /// The index of LPI INTID `intid`, if the configuration has it (mapped or not).
    pub(crate) fn lpi_id(&self, intid: u32) -> Option<IrqId> {
        (FIRST_LPI..self.config.lpi_end())
            .contains(&intid)
            .then(|| (Self::LPI_BASE + (intid - FIRST_LPI) as usize) as IrqId)
    }

    /// The INTID of `id`.
    pub(crate) const fn intid(id: IrqId) -> u32 {
        let index = id as usize;
        if index < Self::SPI_BASE {
            (index % PRIVATE_INTERRUPTS) as u32
        } else if index < Self::LPI_BASE {
            FIRST_SPI + (index - Self::SPI_BASE) as u32
        } else {
            FIRST_LPI + (index - Self::LPI_BASE) as u32
        }
    }

    /// The state of `id`.
    pub(crate) fn irq(&self, id: IrqId) -> &Irq {
        let index = id as usize;
        if index < Self::SPI_BASE {
            &self.private[index / PRIVATE_INTERRUPTS][index % PRIVATE_INTERRUPTS]
        } else if index < Self::LPI_BASE {
            &self.spis[index - Self::SPI_BASE]
        } else {
            &self.lpis[index - Self::LPI_BASE]
        }
    }

    fn irq_mut(&mut self, id: IrqId) -> &mut Irq {
        let index = id as usize;
        if index < Self::SPI_BASE {
            &mut self.private[index / PRIVATE_INTERRUPTS][index % PRIVATE_INTERRUPTS]
        } else if index < Self::LPI_BASE {
            &mut self.spis[index - Self::SPI_BASE]
        } else {
            &mut self.lpis[index - Self::LPI_BASE]
        }
    }

    /// Every LPI index of the configuration, mapped or not.
    pub(crate) fn lpi_ids(&self) -> impl Iterator<Item = IrqId> + use<VCPUS, LPIS, COLLECTIONS> {
        let count = (self.config.lpi_end() - FIRST_LPI) as usize;
        (Self::LPI_BASE..Self::LPI_BASE + count).map(|index| index as IrqId)
    }

    /// Every SGI, PPI and SPI index of the configuration.
    fn wired_ids(&self) -> impl Iterator<Item = IrqId> + use<VCPUS, LPIS, COLLECTIONS> {
        let private = 0..self.config.vcpus as usize * PRIVATE_INTERRUPTS;
        let spis = Self::SPI_BASE..Self::SPI_BASE + self.config.spis as usize;
        private.chain(spis).map(|index| index as IrqId)
    }

    // ---- Forwarding rules ----

    /// Whether the distributor forwards `id`'s pending state to its target now.
    fn forwardable(&self, id: IrqId) -> bool {
        let irq = self.irq(id);
        irq.pending()
            && irq.has(EXISTS)
            && irq.has(ENABLED)
            && self.enable_group1
            && irq.target != NO_VCPU
            && (!Self::is_lpi(id) || self.cpus[irq.target as usize].lpis_enabled)
    }

    /// The vCPU whose list registers `id` needs, if it needs one.
    fn queue_target(&self, id: IrqId) -> Option<u16> {
        let irq = self.irq(id);
        (irq.has(EXISTS) && irq.target != NO_VCPU && (irq.has(ACTIVE) || self.forwardable(id)))
            .then_some(irq.target)
    }

    /// The state `id` should have in a list register of `vcpu`: its active state, and its
    /// pending state if forwarded to this vCPU (never behind an active hardware-linked
    /// interrupt, whose pending state is the physical GIC's).
    fn desired_state(&self, vcpu: u16, id: IrqId) -> LrState {
        let irq = self.irq(id);
        let active = irq.has(ACTIVE);
        let pending = self.forwardable(id) && irq.target == vcpu && !(irq.has(HARDWARE) && active);
        LrState::new(pending, active)
    }

    /// The list register for `id` in `vcpu`. EOI maintenance is requested only where the
    /// server must see the deactivation: a level-sensitive interrupt (to sample its line
    /// again) and an interrupt with pending state this list register cannot carry (it
    /// moved to another vCPU). Edge-triggered interrupts and LPIs complete without a trap.
    fn list_register(&self, vcpu: u16, id: IrqId) -> ListRegister {
        let irq = self.irq(id);
        let intid = Self::intid(id);
        let state = self.desired_state(vcpu, id);
        let hardware = irq.has(HARDWARE);
        let deferred = self.forwardable(id) && !state.pending();
        ListRegister {
            vintid: intid,
            state,
            priority: irq.priority,
            group1: true,
            hw_pintid: hardware.then_some(intid),
            eoi_maintenance: !hardware && (!irq.has(EDGE) || deferred),
        }
    }

    /// The vCPU an SPI with GICD_IROUTER value `route` goes to: the one with that
    /// affinity, or with Interrupt_Routing_Mode = 1 the lowest-numbered vCPU whose
    /// redistributor is awake (vCPU 0 if none is).
    pub(crate) fn route_target(&self, route: u32) -> u16 {
        let vcpus = self.config.vcpus;
        if route & ROUTE_ANY != 0 {
            (0..vcpus).find(|&vcpu| !self.cpus[vcpu as usize].asleep).unwrap_or(0)
        } else {
            vcpu_with_affinity(route & !ROUTE_ANY).filter(|&vcpu| vcpu < vcpus).unwrap_or(NO_VCPU)
        }
    }

    // ---- Queues ----

    fn enqueue(&mut self, id: IrqId, vcpu: u16) {
        let level = self.irq(id).level();
        let active = self.irq(id).has(ACTIVE) as u16;
        let cpu = &mut self.cpus[vcpu as usize];
        cpu.queued_active += active;
        let queue = &mut cpu.queue;
        let tail = queue.tails[level];
        queue.tails[level] = id;
        queue.levels |= 1 << level;
        if tail == NO_IRQ {
            queue.heads[level] = id;
        } else {
            self.irq_mut(tail).next = id;
        }
        let irq = self.irq_mut(id);
        irq.prev = tail;
        irq.next = NO_IRQ;
        irq.place = Place::Queued { vcpu };
    }

    /// Takes `id` out of its queue, if it is queued. Its priority has not changed since it
    /// was queued: every change goes through [`Self::restate`], which calls this first.
    fn dequeue(&mut self, id: IrqId) {
        let Place::Queued { vcpu } = self.irq(id).place else { return };
        let Irq { prev, next, .. } = *self.irq(id);
        let level = self.irq(id).level();
        if prev == NO_IRQ {
            self.cpus[vcpu as usize].queue.heads[level] = next;
        } else {
            self.irq_mut(prev).next = next;
        }
        if next == NO_IRQ {
            self.cpus[vcpu as usize].queue.tails[level] = prev;
        } else {
            self.irq_mut(next).prev = prev;
        }
        let active = self.irq(id).has(ACTIVE) as u16;
        let cpu = &mut self.cpus[vcpu as usize];
        cpu.queued_active -= active;
        if cpu.queue.heads[level] == NO_IRQ {
            cpu.queue.levels &= !(1 << level);
        }
        self.irq_mut(id).place = Place::Idle;
    }

    /// Queues `id` where it needs a list register, unless it is listed (a listed
    /// interrupt's list register is rewritten from its state when its vCPU is released).
    fn settle(&mut self, id: IrqId) {
        if self.irq(id).place != Place::Idle {
            return;
        }
        if let Some(vcpu) = self.queue_target(id) {
            self.enqueue(id, vcpu);
            self.cpus[vcpu as usize].wants_refill = true;
        }
    }

    // ---- Changing interrupt state ----

    /// Changes `id`'s state. If a list register holds a copy, its vCPU is synced first so
    /// that the change applies to the live state; the list registers are rewritten when
    /// the entry point ends ([`Self::commit`]).
    pub(crate) fn modify(&mut self, vcpus: &mut impl Vcpus, id: IrqId, change: impl FnOnce(&mut Irq)) {
        if let Place::Listed { vcpu, .. } = self.irq(id).place {
            self.hold(vcpus, vcpu);
        }
        self.restate(vcpus, id, false, change);
    }

    /// Syncs what the pending and active state of `ids` depends on before it is read:
    /// the vCPUs holding their listed copies, and for a hardware-linked PPI its vCPU,
    /// whose snapshot samples the live line.
    pub(crate) fn sync_for_read(&mut self, vcpus: &mut impl Vcpus, ids: impl Iterator<Item = IrqId>) {
        for id in ids {
            let irq = *self.irq(id);
            if let Place::Listed { vcpu, .. } = irq.place {
                self.hold(vcpus, vcpu);
            } else if irq.has(HARDWARE) && (id as usize) < Self::SPI_BASE {
                self.hold(vcpus, irq.target);
            }
        }
    }

    /// Applies `change` to `id`, whose listed copy (if any) is synced, and re-queues it.
    /// A passthrough SPI that stops being pending or active without the guest
    /// deactivating it has its physical interrupt released.
    fn restate(
        &mut self,
        vcpus: &mut impl Vcpus,
        id: IrqId,
        completed_by_guest: bool,
        change: impl FnOnce(&mut Irq),
    ) {
        self.dequeue(id);
        let was_busy = self.irq(id).busy();
        change(self.irq_mut(id));
        let irq = *self.irq(id);
        let passthrough = irq.has(HARDWARE) && id as usize >= Self::SPI_BASE;
        if passthrough && was_busy && !irq.busy() && !completed_by_guest {
            vcpus.deactivate_physical(Self::intid(id));
        }
        self.settle(id);
    }

    // ---- List registers ----

    /// Stops `vcpu` (once per entry point) and folds its list registers into the state.
    pub(crate) fn hold(&mut self, vcpus: &mut impl Vcpus, vcpu: u16) {
        if !matches!(self.cpus[vcpu as usize].hold, Hold::Free) {
            return;
        }
        let snapshot = vcpus.sync(vcpu);
        self.cpus[vcpu as usize].hold = Hold::Synced(snapshot);
        self.fold(vcpus, vcpu, &snapshot);
    }

    /// Takes what the guest did to its copies into the server's state: a copy that lost
    /// its pending bit was acknowledged (the latch is consumed), the active bit is the
    /// guest's, and an invalid list register means the interrupt was completed and the
    /// copy is gone. Then the hardware-linked PPIs take their sampled line levels.
    fn fold(&mut self, vcpus: &mut impl Vcpus, vcpu: u16, snapshot: &Snapshot) {
        for slot in 0..LIST_REGISTERS {
            let id = self.cpus[vcpu as usize].slots[slot];
            if id == NO_IRQ {
                continue;
            }
            let written = self.cpus[vcpu as usize].written[slot];
            let live = snapshot.lrs[slot];
            let same = live.vintid == written.vintid;
            if !same && live.state != LrState::Invalid {
                warn!(
                    "vCPU {vcpu} list register {slot} holds vINTID {} instead of {}",
                    live.vintid, written.vintid
                );
            }
            let state = if same { live.state } else { LrState::Invalid };
            let acknowledged = written.state.pending() && !state.pending();
            let completed = state == LrState::Invalid;
            if completed {
                self.cpus[vcpu as usize].slots[slot] = NO_IRQ;
                self.irq_mut(id).place = Place::Idle;
            }
            self.restate(vcpus, id, completed && written.hw_pintid.is_some(), |irq| {
                irq.set(ACTIVE, state.active());
                if acknowledged {
                    irq.set(LATCH, false);
                    if irq.has(HARDWARE) {
                        // The physical interrupt was consumed with it; a new assertion
                        // comes as a new physical interrupt (or a new sample).
                        irq.drive(false);
                    }
                }
            });
        }
        for intid in HARDWARE_PPIS {
            let Some(id) = self.private_id(vcpu, intid) else { continue };
            let level = snapshot.hardware_lines >> intid & 1 != 0;
            self.restate(vcpus, id, false, |irq| irq.drive(level));
        }
    }

    /// Frees `vcpu`'s list registers whose copies should no longer be there (retracts
    /// pending copies of interrupts disabled, cleared, moved or unmapped), re-queueing
    /// what still needs a list register elsewhere.
    fn prune(&mut self, vcpu: u16) {
        for slot in 0..LIST_REGISTERS {
            let id = self.cpus[vcpu as usize].slots[slot];
            if id != NO_IRQ && self.desired_state(vcpu, id) == LrState::Invalid {
                self.cpus[vcpu as usize].slots[slot] = NO_IRQ;
                self.irq_mut(id).place = Place::Idle;
                self.settle(id);
            }
        }
    }

    /// Fills `vcpu`'s list registers from its queue: active interrupts first (the guest's
    /// deactivation must find them), then pending ones, each by priority; into free list
    /// registers, then in place of copies that are only pending and of lower priority (any
    /// priority, for an active one), never an active copy. Returns the new contents.
    fn fill(&mut self, vcpu: u16) -> LrUpdate {
        let (best, count) = self.best_waiting(vcpu);
        for &candidate in &best[..count] {
            let Some(slot) = self.free_slot(vcpu).or_else(|| self.evict(vcpu, candidate)) else {
                break;
            };
            self.dequeue(candidate);
            self.cpus[vcpu as usize].slots[slot] = candidate;
            self.irq_mut(candidate).place = Place::Listed { vcpu, slot: slot as u8 };
        }
        let slots = self.cpus[vcpu as usize].slots;
        let waiting = !self.cpus[vcpu as usize].queue.is_empty();
        let lrs = core::array::from_fn(|slot| match slots[slot] {
            NO_IRQ => ListRegister::INVALID,
            id => {
                let mut lr = self.list_register(vcpu, id);
                if waiting && lr.hw_pintid.is_none() && lr.state.active() {
                    // Its deactivation frees a list register for the waiting interrupts,
                    // which its own pending state must then compete with.
                    lr.state = LrState::Active;
                    lr.eoi_maintenance = true;
                }
                lr
            }
        });
        self.cpus[vcpu as usize].written = lrs;
        // NP is asserted while no list register is in the Pending state: ask for it only
        // when one is, or it would fire at once.
        let no_pending = waiting && lrs.iter().any(|lr| lr.state == LrState::Pending);
        LrUpdate { lrs, underflow: waiting, no_pending }
    }

    /// The (at most [`LIST_REGISTERS`]) interrupts waiting for `vcpu` that deserve a list
    /// register most: active ones, then by priority, first come first served within one.
    fn best_waiting(&self, vcpu: u16) -> ([IrqId; LIST_REGISTERS], usize) {
        let cpu = &self.cpus[vcpu as usize];
        let mut best = [NO_IRQ; LIST_REGISTERS];
        let mut count = 0;
        let passes: &[bool] = if cpu.queued_active > 0 { &[true, false] } else { &[false] };
        for &active in passes {
            let mut levels = cpu.queue.levels;
            while levels != 0 && count < LIST_REGISTERS {
                let level = levels.trailing_zeros() as usize;
                levels &= levels - 1;
                let mut id = cpu.queue.heads[level];
                while id != NO_IRQ && count < LIST_REGISTERS {
                    if self.irq(id).has(ACTIVE) == active {
                        best[count] = id;
                        count += 1;
                    }
                    id = self.irq(id).next;
                }
            }
        }
        (best, count)
    }

    fn free_slot(&self, vcpu: u16) -> Option<usize> {
        self.cpus[vcpu as usize].slots.iter().position(|&id| id == NO_IRQ)
    }

    /// Returns the lowest-priority copy in `vcpu`'s list registers that is only pending
    /// and that `candidate` may displace to the queue, and frees its list register.
    fn evict(&mut self, vcpu: u16, candidate: IrqId) -> Option<usize> {
        let Irq { priority, .. } = *self.irq(candidate);
        let active = self.irq(candidate).has(ACTIVE);
        let slots = self.cpus[vcpu as usize].slots;
        let slot = (0..LIST_REGISTERS)
            .filter(|&slot| {
                let id = slots[slot];
                id != NO_IRQ
                    && self.desired_state(vcpu, id) == LrState::Pending
                    && (active || self.irq(id).priority > priority)
            })
            .max_by_key(|&slot| self.irq(slots[slot]).priority)?;
        let id = slots[slot];
        self.cpus[vcpu as usize].slots[slot] = NO_IRQ;
        self.irq_mut(id).place = Place::Idle;
        self.settle(id);
        Some(slot)
    }

    /// Ends an entry point: syncs every vCPU that has newly queued interrupts, prunes and
    /// fills the list registers of every vCPU the entry point stopped, writes them back
    /// (kicking a vCPU that now has something deliverable out of WFI), and returns the
    /// contents for the vCPU waiting for a maintenance reply, if any.
    fn finish(&mut self, vcpus: &mut impl Vcpus) -> Option<LrUpdate> {
        let count = self.config.vcpus;
        loop {
            for vcpu in 0..count {
                if !matches!(self.cpus[vcpu as usize].hold, Hold::Free) {
                    self.prune(vcpu);
                }
            }
            let mut stopped_more = false;
            for vcpu in 0..count {
                let cpu = &self.cpus[vcpu as usize];
                if cpu.wants_refill && matches!(cpu.hold, Hold::Free) {
                    self.hold(vcpus, vcpu);
                    stopped_more = true;
                }
            }
            if !stopped_more {
                break;
            }
        }
        let mut reply = None;
        for vcpu in 0..count {
            let cpu = &mut self.cpus[vcpu as usize];
            // Most entry points stop no vCPU: no copy of a `Hold` for those.
            if matches!(cpu.hold, Hold::Free) {
                cpu.wants_refill = false;
                continue;
            }
            let hold = core::mem::replace(&mut cpu.hold, Hold::Free);
            match hold {
                Hold::Free => {}
                Hold::Synced(snapshot) => {
                    let update = self.fill(vcpu);
                    vcpus.write_lrs(vcpu, &update);
                    if snapshot.signals(&update.lrs) {
                        vcpus.kick(vcpu);
                    }
                }
                Hold::Replying => reply = Some(self.fill(vcpu)),
            }
            self.cpus[vcpu as usize].wants_refill = false;
        }
        reply
    }

    /// Ends an entry point that no vCPU waits on.
    pub(crate) fn commit(&mut self, vcpus: &mut impl Vcpus) {
        let reply = self.finish(vcpus);
        debug_assert!(reply.is_none(), "only a maintenance event has a vCPU waiting for its reply");
    }

    /// Re-applies the forwarding rules to every interrupt (after a global change such as
    /// GICD_CTLR.EnableGrp1).
    pub(crate) fn reforward_all(&mut self, vcpus: &mut impl Vcpus) {
        for id in self.wired_ids().chain(self.lpi_ids()) {
            self.modify(vcpus, id, |_| {});
        }
    }

    // ---- Entry points ----

    /// A maintenance event from `vcpu` (an EOI, underflow or no-pending maintenance
    /// interrupt, or any exit where the kernel wants a refill), with the list registers
    /// as the kernel folded them. The vCPU waits; the returned contents go into its list
    /// registers with the reply.
    pub fn maintenance(&mut self, vcpus: &mut impl Vcpus, vcpu: u16, snapshot: &Snapshot) -> LrUpdate {
        if vcpu >= self.config.vcpus {
            warn!("maintenance event from vCPU {vcpu}, which does not exist");
            return LrUpdate::default();
        }
        self.cpus[vcpu as usize].hold = Hold::Replying;
        self.fold(vcpus, vcpu, snapshot);
        self.finish(vcpus).unwrap_or_default()
    }

    /// A trapped write of `value` to ICC_SGI0R_EL1, ICC_SGI1R_EL1 or ICC_ASGI1R_EL1 by
    /// vCPU `sender`: makes the SGI pending on each target (merging with a pending one).
    /// Every SGI is Group 1, so only ICC_SGI1R_EL1 generates any: with a single security
    /// state ICC_ASGI1R_EL1 generates Group 0 SGIs like ICC_SGI0R_EL1.
    pub fn generate_sgi(&mut self, vcpus: &mut impl Vcpus, sender: u16, register: SgiRegister, value: u64) {
        let intid = (value >> SGI_INTID_SHIFT & 0xf) as u32;
        if register != SgiRegister::Sgi1r {
            debug!("vCPU {sender}: {register:?} for Group 1 SGI {intid} generates nothing");
            return;
        }
        if value & SGI_BROADCAST != 0 {
            for vcpu in (0..self.config.vcpus).filter(|&vcpu| vcpu != sender) {
                self.raise_sgi(vcpus, vcpu, intid);
            }
        } else {
            let field = |shift: u32| (value >> shift & 0xff) as u32;
            let cluster =
                field(SGI_AFF3_SHIFT) << 24 | field(SGI_AFF2_SHIFT) << 16 | field(SGI_AFF1_SHIFT) << 8;
            let first_aff0 = (value >> SGI_RANGE_SHIFT & 0xf) as u32 * 16;
            let mut targets = value & SGI_TARGET_LIST;
            while targets != 0 {
                let aff0 = first_aff0 + targets.trailing_zeros();
                targets &= targets - 1;
                match vcpu_with_affinity(cluster | aff0) {
                    Some(vcpu) if vcpu < self.config.vcpus => self.raise_sgi(vcpus, vcpu, intid),
                    _ => debug!(
                        "vCPU {sender}: SGI {intid} to affinity {:#x}, which no vCPU has",
                        cluster | aff0
                    ),
                }
            }
        }
        self.commit(vcpus);
    }

    fn raise_sgi(&mut self, vcpus: &mut impl Vcpus, vcpu: u16, intid: u32) {
        if let Some(id) = self.private_id(vcpu, intid) {
            self.modify(vcpus, id, |irq| irq.set(LATCH, true));
        }
    }

    /// Drives the line of PPI `intid` (16..32) of `vcpu`. For the hardware-linked timer
    /// PPIs this reports an assertion the kernel saw between snapshots (a physical timer
    /// interrupt, or a deadline it armed for a blocked vCPU); their level is otherwise
    /// refreshed from every [`Snapshot`].
    pub fn set_ppi_level(&mut self, vcpus: &mut impl Vcpus, vcpu: u16, intid: u32, level: bool) {
        match self.private_id(vcpu, intid).filter(|_| intid >= FIRST_PPI) {
            Some(id) => {
                self.modify(vcpus, id, |irq| irq.drive(level));
                self.commit(vcpus);
            }
            None => info!("line of PPI {intid} of vCPU {vcpu}, which does not exist"),
        }
    }

    /// Drives the line of SPI `intid` (a device model's interrupt, or a passthrough SPI's
    /// physical interrupt).
    pub fn set_spi_level(&mut self, vcpus: &mut impl Vcpus, intid: u32, level: bool) {
        match self.spi_id(intid) {
            Some(id) => {
                self.modify(vcpus, id, |irq| irq.drive(level));
                self.commit(vcpus);
            }
            None => info!("line of SPI {intid}, which does not exist"),
        }
    }

    /// Pulses the line of SPI `intid` (an edge): latches it if it is edge-triggered; a
    /// level-sensitive SPI does not keep a pulse that no CPU saw.
    pub fn pulse_spi(&mut self, vcpus: &mut impl Vcpus, intid: u32) {
        match self.spi_id(intid) {
            Some(id) => {
                self.modify(vcpus, id, |irq| {
                    irq.drive(true);
                    irq.drive(false);
                });
                self.commit(vcpus);
            }
            None => info!("pulse on SPI {intid}, which does not exist"),
        }
    }
}
