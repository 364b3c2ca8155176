//! The GIC checks, on four vCPUs that take interrupts (the secondaries idle in WFI): SGIs
//! to a list, to self and to all but self, each delivered exactly once per send and
//! nowhere else (the next send waits for the previous acknowledge, since an SGI still
//! pending merges with a new one); split priority drop and deactivation (ICC_DIR_EL1),
//! and deactivation through GICR_ICACTIVER0 instead; the virtual and EL1 physical timers'
//! PPIs; SPI enable, pending and active state read back; SPI routing; priority masking;
//! preemption; 100 pending SPIs; WFI with IRQs masked waking on a pending interrupt.

use super::cpus::{post, run_on, wait_task};
use super::gic::{self, DEFAULT_PRIORITY, PHYSICAL_TIMER_PPI, VIRTUAL_TIMER_PPI, expect_deliveries, settle};
use super::{delay, now_ticks, ticks_in, wait_for};
use aarch64_cpu::registers::{CNTV_CTL_EL0, Writeable};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use guest_test::gic::{CPUS, PerCpu, SPURIOUS, SgiTargets, expect_per_cpu, gicd, gicr, sgi1r};
use guest_test::{Outcome, Report, expect_eq, fail};

/// Sends of each SGI pattern.
const SENDS: u32 = 5;
/// The SPI of the read-back check.
const READBACK_SPI: u32 = 64;
/// The SPI of the routing check.
const ROUTED_SPI: u32 = 65;
/// The SPI of the priority mask check.
const MASKED_SPI: u32 = 66;
/// The preemption check's low-priority SPI.
const LOW_SPI: u32 = 67;
/// The preemption check's high-priority SPI.
const HIGH_SPI: u32 = 68;
/// The first of the [`MANY`] SPIs pending at once.
const MANY_FIRST: u32 = 100;
/// How many SPIs are pending at once.
const MANY: u32 = 100;
/// The SPIs the checks use end below this INTID.
const SPIS_NEEDED: u32 = MANY_FIRST + MANY;

/// An ICC_SGI1R_EL1 value for [`send_prepared_sgi`] on another vCPU.
static PREPARED_SGI: AtomicU64 = AtomicU64::new(0);
/// A value a task on another vCPU hands back (a timer deadline).
static TASK_VALUE: AtomicU64 = AtomicU64::new(0);
/// What a preemption hook saw ([`NOT_RUN`] until it runs).
static HOOK_VERDICT: AtomicU32 = AtomicU32::new(NOT_RUN);
/// [`HOOK_VERDICT`] before the hook has run.
const NOT_RUN: u32 = u32::MAX;

/// Runs the checks (the GIC is set up; the secondaries are on).
pub(super) fn run(report: &mut Report<guest_rt::Pl011>) {
    gic::unmask_irqs();
    report.check("gic-redistributors-awake", redistributors_awake());
    report.check("sgi-target-list", sgi_target_list());
    report.check("sgi-self", sgi_self());
    report.check("sgi-all-but-self", sgi_all_but_self());
    report.check("eoi-mode-dir", eoi_mode_dir());
    report.check("deactivate-through-icactiver", deactivate_through_icactiver());
    report.check("virtual-timer-ppi", timer_interrupts(VIRTUAL_TIMER_PPI));
    report.check("physical-timer-ppi", timer_interrupts(PHYSICAL_TIMER_PPI));
    report.check("spi-count", spi_count());
    if gic::spi_limit() >= SPIS_NEEDED {
        report.check("spi-enable-pending-active", spi_enable_pending_active());
        report.check("spi-routing", spi_routing());
        report.check("priority-mask", priority_mask());
        report.check("preemption", preemption());
        report.check("hundred-pending-spis", hundred_pending());
    }
    report.check("wfi-masked-wakes", wfi_masked_wakes());
    report.check("no-unexpected-interrupts", expect_eq("other INTIDs", 0, gic::other_deliveries().into()));
}

/// `per_send` deliveries per vCPU, times `sends`.
fn times(per_send: PerCpu, sends: u32) -> PerCpu {
    per_send.map(|count| count * sends)
}

/// Sends the SGI in [`PREPARED_SGI`] (a task for another vCPU).
fn send_prepared_sgi() {
    gic::write_sgi1r(PREPARED_SGI.load(Ordering::Acquire));
}

/// Sends SGI `intid` from vCPU `sender` to `targets` [`SENDS`] times, each once the
/// previous one has arrived; demands `per_send` deliveries per vCPU for each.
fn sgi_pattern(sender: usize, intid: u32, targets: SgiTargets, per_send: PerCpu) -> Outcome {
    let before = gic::deliveries(intid);
    PREPARED_SGI.store(sgi1r(intid, targets), Ordering::Release);
    for send in 1..=SENDS {
        run_on(sender, send_prepared_sgi)?;
        let wanted = times(per_send, send);
        let arrived =
            || gic::deliveries_since(intid, before).iter().zip(wanted).all(|(got, want)| *got >= want);
        if !wait_for(arrived) {
            let got = gic::deliveries_since(intid, before);
            return fail!("SGI {intid} from vCPU {sender}, send {send}: expected {wanted:?}, got {got:?}");
        }
    }
    settle();
    let detail = if sender == 0 { "SGI from vCPU 0" } else { "SGI from a secondary" };
    expect_per_cpu(detail, times(per_send, SENDS), gic::deliveries_since(intid, before))
}

fn redistributors_awake() -> Outcome {
    for cpu in 0..CPUS {
        let waker = gic::gicr_read(cpu, gicr::WAKER);
        if waker & (gicr::WAKER_PROCESSOR_SLEEP | gicr::WAKER_CHILDREN_ASLEEP) != 0 {
            return fail!("vCPU {cpu}: GICR_WAKER {waker:#x}");
        }
    }
    Ok(())
}

fn sgi_target_list() -> Outcome {
    sgi_pattern(0, 1, SgiTargets::List(0b1010), [0, 1, 0, 1])?;
    sgi_pattern(2, 2, SgiTargets::List(0b0011), [1, 1, 0, 0])
}

fn sgi_self() -> Outcome {
    sgi_pattern(0, 3, SgiTargets::List(0b0001), [1, 0, 0, 0])?;
    sgi_pattern(3, 3, SgiTargets::List(0b1000), [0, 0, 0, 1])
}

fn sgi_all_but_self() -> Outcome {
    sgi_pattern(0, 4, SgiTargets::AllButSelf, [0, 1, 1, 1])?;
    sgi_pattern(1, 4, SgiTargets::AllButSelf, [1, 0, 1, 1])
}

/// Whether SGI or PPI `intid` is active at vCPU 0 (its redistributor's ISACTIVER0).
fn private_active(intid: u32) -> bool {
    gic::gicr_read(0, gicr::SGI_FRAME + gicd::ISACTIVER) & 1 << intid != 0
}

/// Whether SGI or PPI `intid` is pending at vCPU 0.
fn private_pending(intid: u32) -> bool {
    gic::gicr_read(0, gicr::SGI_FRAME + gicd::ISPENDR) & 1 << intid != 0
}

/// With EOImode 1 the handler drops priority with EOIR and deactivates with DIR: an SGI
/// can be delivered again and again, and is inactive after each.
fn eoi_mode_dir() -> Outcome {
    gic::set_eoi_mode(true);
    let outcome = sgi_pattern(0, 5, SgiTargets::List(0b0001), [1, 0, 0, 0]);
    gic::set_eoi_mode(false);
    outcome?;
    if private_active(5) {
        return fail!("SGI 5 still active after DIR");
    }
    Ok(())
}

/// With EOImode 1 the handler leaves SGI 6 active after its priority drop: it reads as
/// active, a second send stays pending behind it, and clearing the active bit through
/// GICR_ICACTIVER0 lets that one through.
fn deactivate_through_icactiver() -> Outcome {
    const SGI: u32 = 6;
    gic::set_eoi_mode(true);
    gic::leave_active(Some(SGI));
    let outcome = (|| {
        let before = gic::deliveries(SGI);
        gic::send_sgi(SGI, SgiTargets::List(1));
        expect_deliveries(SGI, before, [1, 0, 0, 0])?;
        if !private_active(SGI) {
            return fail!("not active after EOIR with EOImode 1");
        }
        gic::send_sgi(SGI, SgiTargets::List(1));
        if !wait_for(|| private_pending(SGI)) {
            return fail!("the second send is not pending");
        }
        settle();
        expect_per_cpu("while active", [1, 0, 0, 0], gic::deliveries_since(SGI, before))?;
        gic::leave_active(None);
        gic::gicr_write(0, gicr::SGI_FRAME + gicd::ICACTIVER, 1 << SGI);
        expect_deliveries(SGI, before, [2, 0, 0, 0])?;
        if private_active(SGI) || private_pending(SGI) {
            return fail!("still active or pending at the end");
        }
        Ok(())
    })();
    gic::leave_active(None);
    gic::set_eoi_mode(false);
    outcome
}

/// Arms the virtual timer 1 ms ahead (a task); the deadline goes to [`TASK_VALUE`].
fn arm_virtual_timer_task() {
    TASK_VALUE.store(gic::arm_virtual_timer(1000), Ordering::Release);
}

/// Arms the EL1 physical timer 1 ms ahead (a task); the deadline goes to [`TASK_VALUE`].
fn arm_physical_timer_task() {
    TASK_VALUE.store(gic::arm_physical_timer(1000), Ordering::Release);
}

/// The timer of PPI `ppi` fires once on vCPU 0 and once on vCPU 2 (which shares a
/// physical CPU with vCPU 0 under the hypervisor), each on its own vCPU only, not before
/// its deadline (the virtual timer's, compared on the virtual counter the handler reads).
fn timer_interrupts(ppi: u32) -> Outcome {
    let task = if ppi == VIRTUAL_TIMER_PPI { arm_virtual_timer_task } else { arm_physical_timer_task };
    for (cpu, expected) in [(0, [1, 0, 0, 0]), (2, [0, 0, 1, 0])] {
        let before = gic::deliveries(ppi);
        run_on(cpu, task)?;
        expect_deliveries(ppi, before, expected)?;
        let deadline = TASK_VALUE.load(Ordering::Acquire);
        if ppi == VIRTUAL_TIMER_PPI && gic::last_acknowledged(cpu) < deadline {
            return fail!("vCPU {cpu}: acknowledged before the deadline");
        }
    }
    Ok(())
}

/// The distributor implements the SPIs the checks use (natively 224; a VM's manifest
/// decides its own).
fn spi_count() -> Outcome {
    let limit = gic::spi_limit();
    if limit < SPIS_NEEDED {
        return fail!("INTIDs end at {limit}, the SPI checks need {SPIS_NEEDED}: skipped");
    }
    Ok(())
}

/// Pending, enabled and active state of an SPI read back through GICD as it changes:
/// pending while disabled (not forwarded), cleared by ICPENDR, forwarded once enabled,
/// active once acknowledged by hand (IRQs masked), inactive after EOI.
fn spi_enable_pending_active() -> Outcome {
    const SPI: u32 = READBACK_SPI;
    gic::mask_irqs();
    let outcome = (|| {
        gic::gicd_set_bit(gicd::ISPENDR, SPI);
        if !gic::gicd_bit(gicd::ISPENDR, SPI) || gic::gicd_bit(gicd::ISENABLER, SPI) {
            return fail!("not pending, or enabled, after ISPENDR");
        }
        gic::gicd_set_bit(gicd::ICPENDR, SPI);
        if gic::gicd_bit(gicd::ISPENDR, SPI) {
            return fail!("still pending after ICPENDR");
        }
        gic::gicd_set_bit(gicd::ISPENDR, SPI);
        settle();
        if gic::highest_pending() == SPI {
            return fail!("a disabled SPI is forwarded");
        }
        gic::gicd_set_bit(gicd::ISENABLER, SPI);
        if !gic::gicd_bit(gicd::ISENABLER, SPI) {
            return fail!("not enabled after ISENABLER");
        }
        if !wait_for(|| gic::highest_pending() == SPI) {
            return fail!("not forwarded once enabled (HPPIR1 {})", gic::highest_pending());
        }
        expect_eq("IAR1", SPI.into(), gic::acknowledge().into())?;
        if !gic::gicd_bit(gicd::ISACTIVER, SPI) || gic::gicd_bit(gicd::ISPENDR, SPI) {
            return fail!("not active, or still pending, once acknowledged");
        }
        gic::end_of_interrupt(SPI);
        if gic::gicd_bit(gicd::ISACTIVER, SPI) {
            return fail!("still active after EOI");
        }
        gic::gicd_set_bit(gicd::ICENABLER, SPI);
        if gic::gicd_bit(gicd::ISENABLER, SPI) {
            return fail!("still enabled after ICENABLER");
        }
        expect_eq("HPPIR1 at the end", SPURIOUS.into(), gic::highest_pending().into())
    })();
    gic::unmask_irqs();
    outcome
}

/// An SPI goes where GICD_IROUTER sends it, and nowhere else.
fn spi_routing() -> Outcome {
    const SPI: u32 = ROUTED_SPI;
    gic::gicd_set_bit(gicd::ISENABLER, SPI);
    let outcome = (|| {
        for (cpu, expected) in [(2, [0, 0, 1, 0]), (3, [0, 0, 0, 1]), (0, [1, 0, 0, 0])] {
            gic::route_spi(SPI, cpu);
            let before = gic::deliveries(SPI);
            gic::gicd_set_bit(gicd::ISPENDR, SPI);
            expect_deliveries(SPI, before, expected)?;
        }
        Ok(())
    })();
    gic::gicd_set_bit(gicd::ICENABLER, SPI);
    gic::route_spi(SPI, 0);
    outcome
}

/// An SPI of the default priority waits while the PMR is at or above it (numerically at
/// or below) and arrives once it is opened.
fn priority_mask() -> Outcome {
    const SPI: u32 = MASKED_SPI;
    gic::gicd_set_bit(gicd::ISENABLER, SPI);
    let before = gic::deliveries(SPI);
    let outcome = (|| {
        for mask in [DEFAULT_PRIORITY - 0x20, DEFAULT_PRIORITY] {
            gic::set_priority_mask(mask);
            gic::gicd_set_bit(gicd::ISPENDR, SPI);
            settle();
            expect_per_cpu("masked", [0; CPUS], gic::deliveries_since(SPI, before))?;
            if !gic::gicd_bit(gicd::ISPENDR, SPI) {
                return fail!("not pending behind PMR {mask:#x}");
            }
        }
        gic::open_priority_mask();
        expect_deliveries(SPI, before, [1, 0, 0, 0])
    })();
    gic::open_priority_mask();
    gic::gicd_set_bit(gicd::ICENABLER, SPI);
    outcome
}

/// In the low-priority SPI's handler: makes the high-priority one pending, lets it
/// preempt, and records whether it arrived meanwhile.
fn preempted_by_high() {
    let before = gic::deliveries(HIGH_SPI);
    gic::with_preemption(|| {
        gic::gicd_set_bit(gicd::ISPENDR, HIGH_SPI);
        let arrived = wait_for(|| gic::deliveries_since(HIGH_SPI, before)[0] == 1);
        HOOK_VERDICT.store(arrived.into(), Ordering::Release);
    });
}

/// In the high-priority SPI's handler: makes the low-priority one pending and records
/// whether it (wrongly) preempted.
fn not_preempted_by_low() {
    let before = gic::deliveries(LOW_SPI);
    gic::with_preemption(|| {
        gic::gicd_set_bit(gicd::ISPENDR, LOW_SPI);
        settle();
        HOOK_VERDICT.store(gic::deliveries_since(LOW_SPI, before)[0], Ordering::Release);
    });
}

/// A higher-priority SPI preempts a lower one's handler; a lower one does not preempt a
/// higher one's, and arrives after it.
fn preemption() -> Outcome {
    gic::set_spi_priority(LOW_SPI, 0xc0);
    gic::set_spi_priority(HIGH_SPI, 0x40);
    gic::gicd_set_bit(gicd::ISENABLER, LOW_SPI);
    gic::gicd_set_bit(gicd::ISENABLER, HIGH_SPI);
    let outcome = (|| {
        HOOK_VERDICT.store(NOT_RUN, Ordering::Release);
        gic::set_hook(LOW_SPI, preempted_by_high);
        let (low, high) = (gic::deliveries(LOW_SPI), gic::deliveries(HIGH_SPI));
        gic::gicd_set_bit(gicd::ISPENDR, LOW_SPI);
        expect_deliveries(LOW_SPI, low, [1, 0, 0, 0])?;
        expect_per_cpu("high", [1, 0, 0, 0], gic::deliveries_since(HIGH_SPI, high))?;
        expect_eq("high inside low's handler (1 = yes)", 1, HOOK_VERDICT.load(Ordering::Acquire).into())?;

        HOOK_VERDICT.store(NOT_RUN, Ordering::Release);
        gic::set_hook(HIGH_SPI, not_preempted_by_low);
        let (low, high) = (gic::deliveries(LOW_SPI), gic::deliveries(HIGH_SPI));
        gic::gicd_set_bit(gicd::ISPENDR, HIGH_SPI);
        expect_deliveries(HIGH_SPI, high, [1, 0, 0, 0])?;
        expect_eq("low deliveries inside high's handler", 0, HOOK_VERDICT.load(Ordering::Acquire).into())?;
        expect_deliveries(LOW_SPI, low, [1, 0, 0, 0])
    })();
    gic::clear_hook();
    gic::gicd_set_bit(gicd::ICENABLER, LOW_SPI);
    gic::gicd_set_bit(gicd::ICENABLER, HIGH_SPI);
    gic::set_spi_priority(LOW_SPI, DEFAULT_PRIORITY);
    gic::set_spi_priority(HIGH_SPI, DEFAULT_PRIORITY);
    outcome
}

/// 100 SPIs of four priorities made pending while IRQs are masked all arrive, each
/// exactly once, on vCPU 0 only.
fn hundred_pending() -> Outcome {
    let spis = MANY_FIRST..MANY_FIRST + MANY;
    let before: [PerCpu; MANY as usize] = core::array::from_fn(|i| gic::deliveries(MANY_FIRST + i as u32));
    for spi in spis.clone() {
        gic::set_spi_priority(spi, 0x80 + 0x10 * (spi % 4) as u8);
        gic::gicd_set_bit(gicd::ISENABLER, spi);
    }
    gic::mask_irqs();
    for spi in spis.clone() {
        gic::gicd_set_bit(gicd::ISPENDR, spi);
    }
    let pending = spis.clone().filter(|&spi| gic::gicd_bit(gicd::ISPENDR, spi)).count();
    gic::unmask_irqs();
    let all_arrived =
        || spis.clone().enumerate().all(|(i, spi)| gic::deliveries_since(spi, before[i])[0] >= 1);
    let arrived = wait_for(all_arrived);
    settle();
    for spi in spis.clone() {
        gic::gicd_set_bit(gicd::ICENABLER, spi);
        gic::set_spi_priority(spi, DEFAULT_PRIORITY);
    }
    expect_eq("pending before unmasking", MANY.into(), pending as u64)?;
    if !arrived {
        return fail!("not all arrived");
    }
    for (i, spi) in spis.enumerate() {
        expect_per_cpu("an SPI's deliveries", [1, 0, 0, 0], gic::deliveries_since(spi, before[i]))?;
    }
    Ok(())
}

/// The SGI that [`send_wake_up_later`] sends to vCPU 0.
const WAKE_UP_SGI: u32 = 7;

/// A task: waits 2 ms, then sends [`WAKE_UP_SGI`] to vCPU 0; the send time goes to
/// [`TASK_VALUE`].
fn send_wake_up_later() {
    delay(2000);
    TASK_VALUE.store(now_ticks(), Ordering::Release);
    gic::send_sgi(WAKE_UP_SGI, SgiTargets::List(1));
}

/// vCPU 0 waits in WFI with IRQs masked while vCPU 1 sends it an SGI 2 ms later: the
/// WFI ends once the SGI is pending (long before the backstop timer, which only keeps a
/// hypervisor that never wakes the vCPU from hanging the run), and the SGI is delivered
/// once IRQs are unmasked.
fn wfi_masked_wakes() -> Outcome {
    const BACKSTOP_US: u64 = 500_000;
    let before = gic::deliveries(WAKE_UP_SGI);
    gic::mask_irqs();
    TASK_VALUE.store(u64::MAX, Ordering::Release);
    let start = now_ticks();
    let ticket = post(1, send_wake_up_later);
    gic::arm_virtual_timer(BACKSTOP_US);
    while gic::highest_pending() != WAKE_UP_SGI && now_ticks() < start + ticks_in(BACKSTOP_US) {
        aarch64_cpu::asm::wfi();
    }
    let woke = now_ticks();
    let pending = gic::highest_pending();
    CNTV_CTL_EL0.set(0);
    gic::unmask_irqs();
    wait_task(1, ticket)?;
    let sent = TASK_VALUE.load(Ordering::Acquire);
    expect_eq("pending after WFI", WAKE_UP_SGI.into(), pending.into())?;
    if woke < sent || woke - start >= ticks_in(BACKSTOP_US) {
        return fail!("woke {} ticks after the start, the SGI was sent after {}", woke - start, sent - start);
    }
    expect_deliveries(WAKE_UP_SGI, before, [1, 0, 0, 0])
}
