//! A GICv3 driver for the checks, on QEMU virt's addresses: distributor set-up, each
//! vCPU's redistributor and CPU interface (system registers), SGIs, and the IRQ handler,
//! which acknowledges (ICC_IAR1_EL1), counts deliveries per vCPU and INTID, runs a check's
//! hook, drops priority (ICC_EOIR1_EL1) and, with EOImode = 1, deactivates
//! (ICC_DIR_EL1) unless a check keeps that INTID active.

use super::cpus::this_cpu;
use super::{delay, wait_for};
use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTV_CTL_EL0, CNTVCT_EL0, Readable, Writeable};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use guest_rt::mmio;
use guest_test::gic::{
    COUNTED_INTIDS, CPUS, ICC_CTLR_EOI_MODE, PerCpu, SPURIOUS, SgiTargets, bit_register, expect_per_cpu,
    gicd, gicr, sgi1r, tally_index,
};
use guest_test::{Outcome, expect_eq, fail};

/// The distributor.
const GICD_BASE: u64 = 0x0800_0000;
/// The first redistributor.
const GICR_BASE: u64 = 0x080a_0000;
/// The most redistributor frames walked looking for the vCPUs' own.
const MAX_REDISTRIBUTORS: u64 = 32;

/// The SGI that wakes a secondary vCPU for a request (see `cpus`).
const DOORBELL_SGI: u32 = 15;
/// The virtual timer's PPI.
pub(super) const VIRTUAL_TIMER_PPI: u32 = 27;
/// The EL1 physical timer's PPI.
pub(super) const PHYSICAL_TIMER_PPI: u32 = 30;
/// Priority of every interrupt a check does not set otherwise.
pub(super) const DEFAULT_PRIORITY: u8 = 0xa0;
/// The lowest priority the PMR lets through everything above.
const PMR_OPEN: u64 = 0xff;
/// Timer control: enabled, interrupt not masked.
const TIMER_ENABLE: u64 = 1;

/// How long to wait for deliveries that must not come, in microseconds.
const SETTLE_US: u64 = 5_000;

/// Each vCPU's redistributor (RD_base), found by affinity.
static REDISTRIBUTORS: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// Each vCPU's redistributor's Processor_Number (the ITS's target).
static PROCESSOR_NUMBERS: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// The distributor and every redistributor were found and set up.
static READY: AtomicBool = AtomicBool::new(false);
/// SPIs the distributor implements (GICD_TYPER.ITLinesNumber).
static SPI_LIMIT: AtomicU32 = AtomicU32::new(0);

/// Deliveries per vCPU and counted INTID (each written only by its vCPU's handler).
static DELIVERIES: [[AtomicU32; COUNTED_INTIDS]; CPUS] =
    [const { [const { AtomicU32::new(0) }; COUNTED_INTIDS] }; CPUS];
/// Deliveries of INTIDs that are not counted one by one.
static OTHER_DELIVERIES: [AtomicU32; CPUS] = [const { AtomicU32::new(0) }; CPUS];
/// The virtual counter when each vCPU's handler last acknowledged an interrupt.
static LAST_ACKNOWLEDGED: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// The INTID whose deliveries run [`HOOK`] (`u32::MAX`: none).
static HOOK_INTID: AtomicU32 = AtomicU32::new(u32::MAX);
/// A check's `fn()` run inside the handler for [`HOOK_INTID`], as an address.
static HOOK: AtomicUsize = AtomicUsize::new(0);
/// With EOImode = 1, the INTID the handler leaves active (`u32::MAX`: none).
static LEAVE_ACTIVE: AtomicU32 = AtomicU32::new(u32::MAX);

/// Reads system register `$name`.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading a GIC CPU interface or PSTATE register has no effect on memory
        // (an acknowledge changes only GIC state, which the checks own).
        unsafe { asm!(concat!("mrs {value}, ", $name), value = out(reg) value, options(nomem, nostack)) };
        value
    }};
}

/// Writes system register `$name` and synchronizes.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the registers written here (GIC CPU interface registers, and ELR_EL1 and
        // SPSR_EL1 restored to values just read) affect only this vCPU's interrupt
        // handling, which the checks own; no memory is touched.
        unsafe { asm!(concat!("msr ", $name, ", {value}"), "isb", value = in(reg) value, options(nomem, nostack)) };
    }};
}

/// Reads the distributor register at `offset`.
pub(super) fn gicd_read(offset: u64) -> u32 {
    // SAFETY: GICD is QEMU virt's distributor (or the VM's emulation of it) and `offset`
    // one of its 32-bit registers.
    unsafe { mmio::read32(GICD_BASE + offset) }
}

/// Writes the distributor register at `offset`.
fn gicd_write(offset: u64, value: u32) {
    // SAFETY: as in `gicd_read`.
    unsafe { mmio::write32(GICD_BASE + offset, value) }
}

/// vCPU `cpu`'s redistributor (RD_base).
fn redistributor(cpu: usize) -> u64 {
    REDISTRIBUTORS[cpu].load(Ordering::Relaxed)
}

/// vCPU `cpu`'s redistributor's Processor_Number.
pub(super) fn processor_number(cpu: usize) -> u64 {
    PROCESSOR_NUMBERS[cpu].load(Ordering::Relaxed)
}

/// Reads the 32-bit register at `offset` of vCPU `cpu`'s redistributor frames.
pub(super) fn gicr_read(cpu: usize, offset: u64) -> u32 {
    // SAFETY: the redistributor was found by walking the frames; `offset` is one of its
    // 32-bit registers.
    unsafe { mmio::read32(redistributor(cpu) + offset) }
}

/// Writes the 32-bit register at `offset` of vCPU `cpu`'s redistributor frames.
pub(super) fn gicr_write(cpu: usize, offset: u64, value: u32) {
    // SAFETY: as in `gicr_read`.
    unsafe { mmio::write32(redistributor(cpu) + offset, value) }
}

/// Writes the 64-bit register at `offset` of vCPU `cpu`'s redistributor.
pub(super) fn gicr_write64(cpu: usize, offset: u64, value: u64) {
    // SAFETY: as in `gicr_read`, for a 64-bit register.
    unsafe { mmio::write64(redistributor(cpu) + offset, value) }
}

/// Whether the distributor register bit for `intid` in the array at `base` is set.
pub(super) fn gicd_bit(base: u64, intid: u32) -> bool {
    let (offset, mask) = bit_register(base, intid);
    gicd_read(offset) & mask != 0
}

/// Writes the bit for `intid` to the write-one array at `base` (set/clear registers).
pub(super) fn gicd_set_bit(base: u64, intid: u32) {
    let (offset, mask) = bit_register(base, intid);
    gicd_write(offset, mask);
}

/// Sets SPI `intid`'s priority (a read-modify-write of its IPRIORITYR word).
pub(super) fn set_spi_priority(intid: u32, priority: u8) {
    let offset = gicd::IPRIORITYR + u64::from(intid & !3);
    let shift = 8 * (intid % 4);
    let word = gicd_read(offset) & !(0xff << shift) | u32::from(priority) << shift;
    gicd_write(offset, word);
}

/// Routes SPI `intid` to vCPU `cpu` (Aff0 = `cpu`, the other affinity levels zero).
pub(super) fn route_spi(intid: u32, cpu: usize) {
    // SAFETY: GICD_IROUTER<n> is a 64-bit register of the distributor.
    unsafe { mmio::write64(GICD_BASE + gicd::IROUTER + 8 * u64::from(intid), cpu as u64) }
}

/// SPIs are INTIDs 32..this.
pub(super) fn spi_limit() -> u32 {
    SPI_LIMIT.load(Ordering::Relaxed)
}

fn wait_distributor() -> bool {
    wait_for(|| gicd_read(gicd::CTLR) & gicd::CTLR_RWP == 0)
}

/// Finds every vCPU's redistributor by walking the frames until GICR_TYPER.Last.
fn find_redistributors() -> Outcome {
    let mut found = 0;
    for index in 0..MAX_REDISTRIBUTORS {
        let base = GICR_BASE + index * gicr::STRIDE;
        // SAFETY: frames are walked only up to the one that says it is the last.
        let typer = unsafe { mmio::read64(base + gicr::TYPER) };
        let affinity = gicr::affinity(typer);
        if let Ok(cpu) = usize::try_from(affinity)
            && cpu < CPUS
        {
            REDISTRIBUTORS[cpu].store(base, Ordering::Relaxed);
            PROCESSOR_NUMBERS[cpu].store(gicr::processor_number(typer), Ordering::Relaxed);
            found += 1;
        }
        if typer & gicr::TYPER_LAST != 0 {
            break;
        }
    }
    expect_eq("redistributors of vCPUs 0..4", CPUS as u64, found)
}

/// Sets up the distributor (affinity routing, group 1, every SPI disabled, edge-triggered,
/// group 1, default priority, routed to vCPU 0) and the boot vCPU's CPU interface.
pub(super) fn init_distributor_and_boot_cpu() -> Outcome {
    find_redistributors()?;
    gicd_write(gicd::CTLR, 0);
    if !wait_distributor() {
        return fail!("GICD_CTLR.RWP stuck");
    }
    let lines = (gicd_read(gicd::TYPER) & 0x1f) + 1;
    let limit = (32 * lines).min(1020);
    SPI_LIMIT.store(limit, Ordering::Relaxed);
    for intid in (32..limit).step_by(32) {
        let word = 4 * u64::from(intid / 32);
        gicd_write(gicd::ICENABLER + word, u32::MAX);
        gicd_write(gicd::ICPENDR + word, u32::MAX);
        gicd_write(gicd::ICACTIVER + word, u32::MAX);
        gicd_write(gicd::IGROUPR + word, u32::MAX);
    }
    let priorities = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
    for intid in (32..limit).step_by(4) {
        gicd_write(gicd::IPRIORITYR + u64::from(intid), priorities);
    }
    for intid in (32..limit).step_by(16) {
        gicd_write(gicd::ICFGR + u64::from(intid / 4), 0xaaaa_aaaa);
    }
    for intid in 32..limit {
        route_spi(intid, 0);
    }
    gicd_write(gicd::CTLR, gicd::CTLR_ARE | gicd::CTLR_ENABLE_GRP1);
    if !wait_distributor() {
        return fail!("GICD_CTLR.RWP stuck after enabling");
    }
    let control = gicd_read(gicd::CTLR);
    if control & gicd::CTLR_ARE == 0 || control & gicd::CTLR_ENABLE_GRP1 == 0 {
        return fail!("GICD_CTLR reads {control:#x}");
    }
    init_cpu_interface();
    READY.store(true, Ordering::Relaxed);
    Ok(())
}

/// Whether the GIC was set up (the GIC checks run and secondaries take interrupts).
pub(super) fn ready() -> bool {
    READY.load(Ordering::Relaxed)
}

/// This vCPU's part: wakes its redistributor, puts its SGIs and PPIs in group 1 at the
/// default priority with the SGIs and the timer PPIs enabled, enables the system register
/// interface and group 1, opens the PMR, EOImode 0.
pub(super) fn init_cpu_interface() {
    let cpu = this_cpu();
    let waker = gicr_read(cpu, gicr::WAKER);
    gicr_write(cpu, gicr::WAKER, waker & !gicr::WAKER_PROCESSOR_SLEEP);
    while gicr_read(cpu, gicr::WAKER) & gicr::WAKER_CHILDREN_ASLEEP != 0 {
        super::pause();
    }
    let sgi = gicr::SGI_FRAME;
    gicr_write(cpu, sgi + gicd::IGROUPR, u32::MAX);
    gicr_write(cpu, sgi + gicd::ICENABLER, u32::MAX);
    gicr_write(cpu, sgi + gicd::ICPENDR, u32::MAX);
    gicr_write(cpu, sgi + gicd::ICACTIVER, u32::MAX);
    let priorities = u32::from_ne_bytes([DEFAULT_PRIORITY; 4]);
    for word in 0..8 {
        gicr_write(cpu, sgi + gicd::IPRIORITYR + 4 * word, priorities);
    }
    gicr_write(cpu, sgi + gicd::ISENABLER, 0xffff | 1 << VIRTUAL_TIMER_PPI | 1 << PHYSICAL_TIMER_PPI);
    write_sysreg!("icc_sre_el1", read_sysreg!("icc_sre_el1") | 1);
    write_sysreg!("icc_pmr_el1", PMR_OPEN);
    write_sysreg!("icc_bpr1_el1", 0);
    set_eoi_mode(false);
    write_sysreg!("icc_igrpen1_el1", 1);
}

/// Sets this vCPU's ICC_CTLR_EL1.EOImode (split priority drop and deactivation).
pub(super) fn set_eoi_mode(split: bool) {
    let control = read_sysreg!("icc_ctlr_el1") & !ICC_CTLR_EOI_MODE;
    write_sysreg!("icc_ctlr_el1", if split { control | ICC_CTLR_EOI_MODE } else { control });
}

/// Sets this vCPU's priority mask.
pub(super) fn set_priority_mask(mask: u8) {
    write_sysreg!("icc_pmr_el1", u64::from(mask));
}

/// Opens this vCPU's priority mask.
pub(super) fn open_priority_mask() {
    write_sysreg!("icc_pmr_el1", PMR_OPEN);
}

/// The highest-priority pending interrupt of this vCPU's group 1 ([`SPURIOUS`] if none).
pub(super) fn highest_pending() -> u32 {
    read_sysreg!("icc_hppir1_el1") as u32 & 0xff_ffff
}

/// ISR_EL1 (bit 7: an IRQ is pending here, masked or not) and, once the GIC is set
/// up, the highest pending INTID: what may have ended a WFI.
pub(super) fn pending_state() -> (u64, Option<u32>) {
    (read_sysreg!("isr_el1"), ready().then(highest_pending))
}

/// Acknowledges an interrupt by hand (with IRQs masked), as the handler would.
pub(super) fn acknowledge() -> u32 {
    read_sysreg!("icc_iar1_el1") as u32 & 0xff_ffff
}

/// Ends an interrupt by hand: priority drop (and deactivation with EOImode 0).
pub(super) fn end_of_interrupt(intid: u32) {
    write_sysreg!("icc_eoir1_el1", u64::from(intid));
}

/// Deactivates an interrupt (EOImode 1).
fn deactivate(intid: u32) {
    write_sysreg!("icc_dir_el1", u64::from(intid));
}

/// Sends SGI `intid` to `targets`.
pub(super) fn send_sgi(intid: u32, targets: SgiTargets) {
    write_sgi1r(sgi1r(intid, targets));
}

/// Writes ICC_SGI1R_EL1 (sends the SGI that `value` describes).
pub(super) fn write_sgi1r(value: u64) {
    write_sysreg!("icc_sgi1r_el1", value);
}

/// Wakes vCPU `cpu` for a request (nothing to do before the GIC is set up: secondaries
/// then poll).
pub(super) fn ring_doorbell(cpu: usize) {
    if ready() {
        send_sgi(DOORBELL_SGI, SgiTargets::List(1 << cpu));
    }
}

/// Masks IRQs at this vCPU (PSTATE.I).
pub(super) fn mask_irqs() {
    // SAFETY: masking interrupts has no effect on memory.
    unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
}

/// Unmasks IRQs at this vCPU.
pub(super) fn unmask_irqs() {
    // SAFETY: unmasking lets the handler run, which touches only its own statics; the
    // compiler must not move memory accesses across it (no `nomem`).
    unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Deliveries of `intid` so far, per vCPU.
pub(super) fn deliveries(intid: u32) -> PerCpu {
    let index = tally_index(intid).expect("a counted INTID");
    core::array::from_fn(|cpu| DELIVERIES[cpu][index].load(Ordering::Acquire))
}

/// Deliveries of `intid` since `before` (an earlier [`deliveries`]), per vCPU.
pub(super) fn deliveries_since(intid: u32, before: PerCpu) -> PerCpu {
    let now = deliveries(intid);
    core::array::from_fn(|cpu| now[cpu].wrapping_sub(before[cpu]))
}

/// Waits [`SETTLE_US`], for any delivery that should not happen to show.
pub(super) fn settle() {
    delay(SETTLE_US);
}

/// Waits until `intid` has been delivered at least `expected` times per vCPU since
/// `before`; then, after [`settle`], demands exactly that.
pub(super) fn expect_deliveries(intid: u32, before: PerCpu, expected: PerCpu) -> Outcome {
    let arrived = || deliveries_since(intid, before).iter().zip(expected).all(|(got, want)| *got >= want);
    if !wait_for(arrived) {
        return expect_per_cpu("deliveries (timed out)", expected, deliveries_since(intid, before));
    }
    settle();
    expect_per_cpu("deliveries", expected, deliveries_since(intid, before))
}

/// Deliveries of INTIDs not counted one by one, on every vCPU.
pub(super) fn other_deliveries() -> u32 {
    OTHER_DELIVERIES.iter().map(|count| count.load(Ordering::Acquire)).sum()
}

/// The virtual counter when vCPU `cpu`'s handler last acknowledged an interrupt.
pub(super) fn last_acknowledged(cpu: usize) -> u64 {
    LAST_ACKNOWLEDGED[cpu].load(Ordering::Acquire)
}

/// Runs `hook` inside the handler of every delivery of `intid` until [`clear_hook`].
pub(super) fn set_hook(intid: u32, hook: fn()) {
    HOOK.store(hook as usize, Ordering::Relaxed);
    HOOK_INTID.store(intid, Ordering::Release);
}

/// No hook runs any more.
pub(super) fn clear_hook() {
    HOOK_INTID.store(u32::MAX, Ordering::Release);
}

/// With EOImode 1, the handler leaves `intid` active (`None`: deactivates everything).
pub(super) fn leave_active(intid: Option<u32>) {
    LEAVE_ACTIVE.store(intid.unwrap_or(u32::MAX), Ordering::Release);
}

/// Runs `body` with IRQs unmasked inside a handler (preemption), keeping the interrupted
/// context's ELR_EL1 and SPSR_EL1, which a nested exception overwrites.
pub(super) fn with_preemption(body: impl FnOnce()) {
    let elr = read_sysreg!("elr_el1");
    let spsr = read_sysreg!("spsr_el1");
    unmask_irqs();
    body();
    mask_irqs();
    write_sysreg!("elr_el1", elr);
    write_sysreg!("spsr_el1", spsr);
}

fn count(counter: &AtomicU32) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
}

/// The IRQ handler (from the vectors, IRQs masked).
pub(super) fn handle_irq() {
    let intid = acknowledge();
    let acknowledged = CNTVCT_EL0.get();
    if intid == SPURIOUS {
        return;
    }
    let cpu = this_cpu();
    LAST_ACKNOWLEDGED[cpu].store(acknowledged, Ordering::Release);
    match intid {
        // The timers' lines stay asserted until the timer is stopped.
        VIRTUAL_TIMER_PPI => CNTV_CTL_EL0.set(0),
        PHYSICAL_TIMER_PPI => CNTP_CTL_EL0.set(0),
        _ => {}
    }
    match tally_index(intid) {
        Some(index) => count(&DELIVERIES[cpu][index]),
        None => count(&OTHER_DELIVERIES[cpu]),
    }
    if HOOK_INTID.load(Ordering::Acquire) == intid {
        // SAFETY: `set_hook` stored a `fn()` here before publishing HOOK_INTID.
        let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(HOOK.load(Ordering::Relaxed)) };
        hook();
    }
    end_of_interrupt(intid);
    if read_sysreg!("icc_ctlr_el1") & ICC_CTLR_EOI_MODE != 0 && LEAVE_ACTIVE.load(Ordering::Acquire) != intid
    {
        deactivate(intid);
    }
}

/// Arms this vCPU's virtual timer `micros` from now; returns the deadline.
pub(super) fn arm_virtual_timer(micros: u64) -> u64 {
    let deadline = super::now_ticks() + super::ticks_in(micros);
    aarch64_cpu::registers::CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.set(TIMER_ENABLE);
    deadline
}

/// Arms this vCPU's EL1 physical timer `micros` from now; returns the deadline (in
/// physical counter ticks).
pub(super) fn arm_physical_timer(micros: u64) -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    let deadline = aarch64_cpu::registers::CNTPCT_EL0.get() + super::ticks_in(micros);
    aarch64_cpu::registers::CNTP_CVAL_EL0.set(deadline);
    CNTP_CTL_EL0.set(TIMER_ENABLE);
    deadline
}
