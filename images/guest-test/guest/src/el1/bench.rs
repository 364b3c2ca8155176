//! Timed GIC paths, printed as `bench <key> <nanoseconds>` lines that `cargo xtask bench`
//! reads: a GICD register read, an SGI from the sender's write to the receiver's
//! acknowledge, a virtual timer interrupt from its deadline to the acknowledge, and an EOI.
//! Each is a mean over many runs. The two paths that start and end on one vCPU (the read
//! and the EOI) count that vCPU's retired instructions with PMU event counter 0 where it
//! counts (bare metal under `-icount`; a guest's PMU reads as zero under the hypervisor
//! outside benchmark systems); otherwise, and for the two paths that cross vCPUs or
//! start at a timer deadline, the figure is in nanoseconds of the virtual counter, which
//! every vCPU shares: under `-icount shift=0` a virtual nanosecond is one instruction
//! executed by any CPU, so those figures are system-wide instruction counts (the other
//! vCPUs wait in WFI), in steps of the counter's tick (16 ns at 62.5 MHz).
//!
//! Last, the cost of idle vCPUs: vCPU 0 times a busy loop of [`BUSY_ITERATIONS`] two-
//! instruction iterations (100 ms of virtual time under `-icount shift=0`) in virtual
//! nanoseconds, once while vCPUs 1..3 wait in WFI and once after they are off (PSCI
//! CPU_OFF). Virtual time counts every CPU's instructions, so the difference is what the
//! three idle vCPUs cost the system (their wake-ups, traps and scheduling) while the busy
//! one executed its 100 million instructions; `idle-vcpu-wfi-100ms` is that per idle vCPU
//! (zero if the loop was no slower with them), after the two loops' own figures.

use super::gic::{self, gicd_read};
use super::{cpus, now_ticks, wait_for};
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTV_CVAL_EL0, Readable};
use core::arch::asm;
use guest_test::gic::{CPUS, SgiTargets, gicd};
use guest_test::nanoseconds;

/// GICD reads timed.
const READS: u64 = 1000;
/// SGIs, timer interrupts and EOIs timed.
const EVENTS: u64 = 50;
/// The SGI the benchmarks send.
const BENCH_SGI: u32 = 8;

/// Iterations of the busy loop (`subs`, `b.ne`): 100 million instructions, 100 ms of
/// virtual time under `-icount shift=0`.
const BUSY_ITERATIONS: u64 = 50_000_000;

/// PMEVTYPER0_EL0: INST_RETIRED (0x08) at EL1 and EL0 (P, U and NSH clear).
const INST_RETIRED: u64 = 0x08;

/// What the single-vCPU figures are measured with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Meter {
    /// PMU event counter 0 counting retired instructions.
    Instructions,
    /// The virtual counter, converted to nanoseconds.
    VirtualTime,
}

impl Meter {
    /// Instructions if PMU event counter 0 counts them here (it advances over a few
    /// instructions), else virtual time.
    fn choose() -> Self {
        // SAFETY: programs this vCPU's PMU (event counter 0 only); no memory is touched.
        unsafe {
            asm!(
                "msr pmevtyper0_el0, {event}",
                "msr pmcntenset_el0, {counter0}",
                "mrs {scratch}, pmcr_el0",
                "orr {scratch}, {scratch}, #1",
                "msr pmcr_el0, {scratch}",
                "isb",
                event = in(reg) INST_RETIRED,
                counter0 = in(reg) 1u64,
                scratch = out(reg) _,
                options(nomem, nostack),
            );
        }
        let before = Self::Instructions.read();
        let after = Self::Instructions.read();
        if after != before { Self::Instructions } else { Self::VirtualTime }
    }

    /// The current reading.
    fn read(self) -> u64 {
        match self {
            Self::VirtualTime => now_ticks(),
            Self::Instructions => {
                let count: u64;
                // SAFETY: reading a PMU counter has no effect on memory.
                unsafe {
                    asm!("isb", "mrs {count}, pmevcntr0_el0", count = out(reg) count, options(nomem, nostack))
                };
                // Event counters may be 32 bits wide: only differences of the low half count.
                count & u64::from(u32::MAX)
            }
        }
    }

    /// The figure for `elapsed` (a difference of readings) over `count` events.
    fn figure(self, elapsed: u64, count: u64) -> u64 {
        match self {
            Self::VirtualTime => nanoseconds(CNTFRQ_EL0.get(), elapsed) / count,
            Self::Instructions => (elapsed & u64::from(u32::MAX)) / count,
        }
    }

    /// `later - earlier` of two readings.
    fn elapsed(self, earlier: u64, later: u64) -> u64 {
        match self {
            Self::VirtualTime => later - earlier,
            Self::Instructions => (later as u32).wrapping_sub(earlier as u32).into(),
        }
    }
}

/// Prints one figure.
fn print(key: &str, figure: u64) {
    println!("bench {key} {figure}");
}

/// Runs every benchmark on vCPU 0 (IRQs unmasked, the secondaries idle), the ITS's (see
/// `its_checks::bench`) with `its`, those of the MSI test device too with `msi`.
pub(super) fn run(its: bool, msi: bool) {
    let meter = Meter::choose();
    let start = meter.read();
    for _ in 0..READS {
        gicd_read(gicd::TYPER);
    }
    print("gic-gicd-read", meter.figure(meter.elapsed(start, meter.read()), READS));

    let mut total = 0;
    for _ in 0..EVENTS {
        let before = gic::deliveries(BENCH_SGI)[1];
        let sent = now_ticks();
        gic::send_sgi(BENCH_SGI, SgiTargets::List(1 << 1));
        if !wait_for(|| gic::deliveries(BENCH_SGI)[1] > before) {
            println!("bench: SGI {BENCH_SGI} to vCPU 1 did not arrive");
            return;
        }
        total += gic::last_acknowledged(1) - sent;
    }
    print("gic-sgi-to-handler", Meter::VirtualTime.figure(total, EVENTS));

    let mut total = 0;
    for _ in 0..EVENTS {
        let before = gic::deliveries(gic::VIRTUAL_TIMER_PPI)[0];
        gic::arm_virtual_timer(100);
        if !wait_for(|| gic::deliveries(gic::VIRTUAL_TIMER_PPI)[0] > before) {
            println!("bench: the virtual timer did not fire");
            return;
        }
        total += gic::last_acknowledged(0).saturating_sub(CNTV_CVAL_EL0.get());
    }
    print("gic-timer-to-handler", Meter::VirtualTime.figure(total, EVENTS));

    let mut total = 0;
    gic::mask_irqs();
    for _ in 0..EVENTS {
        gic::send_sgi(BENCH_SGI, SgiTargets::List(1));
        if !wait_for(|| gic::highest_pending() == BENCH_SGI) {
            println!("bench: SGI {BENCH_SGI} to self did not arrive");
            break;
        }
        let intid = gic::acknowledge();
        let start = meter.read();
        gic::end_of_interrupt(intid);
        total += meter.elapsed(start, meter.read());
    }
    gic::unmask_irqs();
    print("gic-eoi", meter.figure(total, EVENTS));

    if its {
        super::its_checks::bench(msi);
    }
    let with_idle_vcpus = busy_loop_nanoseconds();
    if let Err(detail) = cpus::stop_all() {
        println!("bench: stopping the secondaries failed: {}", detail.as_str());
        return;
    }
    let alone = busy_loop_nanoseconds();
    print("busy-loop-with-idle-vcpus", with_idle_vcpus);
    print("busy-loop-alone", alone);
    let idle_vcpus = CPUS as u64 - 1;
    print("idle-vcpu-wfi-100ms", with_idle_vcpus.saturating_sub(alone) / idle_vcpus);
}

/// Runs [`BUSY_ITERATIONS`] of a two-instruction loop on this vCPU; returns the virtual
/// nanoseconds it took (system-wide instructions under `-icount shift=0`).
fn busy_loop_nanoseconds() -> u64 {
    let start = now_ticks();
    // SAFETY: a register-only countdown loop.
    unsafe {
        asm!(
            "1: subs {count}, {count}, #1",
            "b.ne 1b",
            count = inout(reg) BUSY_ITERATIONS => _,
            options(nomem, nostack),
        );
    }
    nanoseconds(CNTFRQ_EL0.get(), now_ticks() - start)
}
