//! Timed GIC paths, printed as `bench <key> <nanoseconds>` lines that `cargo xtask bench`
//! reads: a GICD register read, an SGI from the sender's write to the receiver's
//! acknowledge, a virtual timer interrupt from its deadline to the acknowledge, and an EOI.
//! Each is a mean over many runs, measured on the virtual counter (the PMU is not
//! available to a guest under the hypervisor), which every vCPU shares: under
//! `-icount shift=0` a virtual nanosecond is one instruction executed by any CPU, so the
//! figures are system-wide instruction counts (the other vCPUs wait in WFI).

use super::gic::{self, gicd_read};
use super::{now_ticks, wait_for};
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTV_CVAL_EL0, Readable};
use guest_test::gic::{SgiTargets, gicd};
use guest_test::nanoseconds;

/// GICD reads timed.
const READS: u64 = 1000;
/// SGIs, timer interrupts and EOIs timed.
const EVENTS: u64 = 50;
/// The SGI the benchmarks send.
const BENCH_SGI: u32 = 8;

/// Prints one figure: `ticks` of the virtual counter over `count` events.
fn print(key: &str, ticks: u64, count: u64) {
    println!("bench {key} {}", nanoseconds(CNTFRQ_EL0.get(), ticks) / count);
}

/// Runs every benchmark on vCPU 0 (IRQs unmasked, the secondaries idle).
pub(super) fn run() {
    let start = now_ticks();
    for _ in 0..READS {
        gicd_read(gicd::TYPER);
    }
    print("gic-gicd-read", now_ticks() - start, READS);

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
    print("gic-sgi-to-handler", total, EVENTS);

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
    print("gic-timer-to-handler", total, EVENTS);

    let mut total = 0;
    gic::mask_irqs();
    for _ in 0..EVENTS {
        gic::send_sgi(BENCH_SGI, SgiTargets::List(1));
        if !wait_for(|| gic::highest_pending() == BENCH_SGI) {
            println!("bench: SGI {BENCH_SGI} to self did not arrive");
            break;
        }
        let intid = gic::acknowledge();
        let start = now_ticks();
        gic::end_of_interrupt(intid);
        total += now_ticks() - start;
    }
    gic::unmask_irqs();
    print("gic-eoi", total, EVENTS);
}
