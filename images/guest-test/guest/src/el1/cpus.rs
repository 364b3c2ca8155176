//! The secondary vCPUs: started by PSCI CPU_ON, each reports its MPIDR and then serves
//! requests from the boot vCPU: turn itself off, or run a task (a plain function) and say
//! when it is done. With the GIC checks on, a secondary sets up its GIC CPU interface and
//! waits in WFI with IRQs masked between requests, briefly unmasking them after each
//! wake-up so its handler counts what arrived; a request is announced by the doorbell SGI.
//! Without them it polls.

use super::{gic, wait_for};
use aarch64_cpu::registers::{MPIDR_EL1, Readable};
use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use guest_rt::{Stack, hvc};
use guest_test::gic::CPUS;
use guest_test::{Outcome, expect_eq, fail};
use smccc::psci::{self, AffinityState};

/// MPIDR affinity fields (Aff3, Aff2..Aff0).
pub(super) const AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// The secondaries' stacks (index 0, the boot vCPU's, is unused: it has guest-rt's).
static mut STACKS: [Stack; CPUS] = [const { Stack::new() }; CPUS];

/// How many times each vCPU has started (written by it).
static STARTS: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// The MPIDR each vCPU read.
static MPIDRS: [AtomicU64; CPUS] = [const { AtomicU64::new(u64::MAX) }; CPUS];
/// Set by the boot vCPU: that vCPU should call CPU_OFF.
static OFF_REQUESTED: [AtomicBool; CPUS] = [const { AtomicBool::new(false) }; CPUS];
/// What CPU_OFF returned to a vCPU, had it returned.
static OFF_ERRORS: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];
/// The task each vCPU should run (a `fn()` as an address, 0 for none).
static TASKS: [AtomicUsize; CPUS] = [const { AtomicUsize::new(0) }; CPUS];
/// How many tasks each vCPU has finished.
static TASKS_DONE: [AtomicU64; CPUS] = [const { AtomicU64::new(0) }; CPUS];

global_asm!(
    r#"
    .section .text.secondary_entry, "ax"
    .global secondary_entry
    secondary_entry:
        msr spsel, #1
        mov sp, x0
        bl {install_vectors}
        bl {secondary_main}
    "#,
    install_vectors = sym guest_rt::vectors::install,
    secondary_main = sym secondary_main,
);

unsafe extern "C" {
    /// Where a secondary starts (CPU_ON's entry point), with x0 = its stack top.
    fn secondary_entry();
}

/// This vCPU's index: MPIDR Aff0 (xtask's layout, and QEMU virt's up to 8 CPUs).
pub(super) fn this_cpu() -> usize {
    (MPIDR_EL1.get() & 0xff) as usize
}

/// A secondary vCPU: says hello, then serves requests.
extern "C" fn secondary_main() -> ! {
    let cpu = this_cpu();
    let with_gic = gic::ready();
    if with_gic {
        gic::init_cpu_interface();
    }
    let mpidr = MPIDR_EL1.get() & AFFINITY_MASK;
    let starts = STARTS[cpu].load(Ordering::Acquire) + 1;
    println!("vcpu with MPIDR {mpidr:#x}: running (start {starts})");
    MPIDRS[cpu].store(mpidr, Ordering::Relaxed);
    STARTS[cpu].store(starts, Ordering::Release);
    loop {
        gic::mask_irqs();
        if OFF_REQUESTED[cpu].load(Ordering::Acquire) {
            OFF_REQUESTED[cpu].store(false, Ordering::Relaxed);
            let error = hvc(psci::PSCI_CPU_OFF, &[]);
            OFF_ERRORS[cpu].store(error as u64, Ordering::Release);
        }
        let task = TASKS[cpu].load(Ordering::Acquire);
        if task != 0 {
            // SAFETY: `run_on` stored a `fn()` here, the only writer besides this reset.
            let task: fn() = unsafe { core::mem::transmute::<usize, fn()>(task) };
            gic::unmask_irqs();
            task();
            TASKS[cpu].store(0, Ordering::Relaxed);
            TASKS_DONE[cpu].store(TASKS_DONE[cpu].load(Ordering::Relaxed) + 1, Ordering::Release);
        } else if with_gic {
            // With IRQs masked, WFI still wakes on a pending interrupt: none is lost between
            // the checks above and the wait.
            aarch64_cpu::asm::wfi();
            gic::unmask_irqs();
        } else {
            super::pause();
        }
    }
}

/// PSCI AFFINITY_INFO of the vCPU with MPIDR `mpidr`.
pub(super) fn affinity_info(mpidr: u64) -> i64 {
    hvc(psci::PSCI_AFFINITY_INFO_64, &[mpidr, 0])
}

/// PSCI CPU_ON of vCPU `cpu` at `secondary_entry` with its stack.
pub(super) fn cpu_on(cpu: usize) -> i64 {
    // SAFETY: only the address of the stack is taken; vCPU `cpu` alone uses it.
    let stack_top = Stack::top(unsafe { &raw const STACKS[cpu] });
    hvc(psci::PSCI_CPU_ON_64, &[cpu as u64, secondary_entry as *const () as u64, stack_top])
}

/// The secondaries' entry point, for the CPU_ON error checks.
pub(super) fn entry_point() -> u64 {
    secondary_entry as *const () as u64
}

/// Starts vCPU `cpu` and waits until it has run `expected_starts` times.
pub(super) fn start(cpu: usize, expected_starts: u64) -> Outcome {
    expect_eq("CPU_ON", 0, cpu_on(cpu) as u64)?;
    if !wait_for(|| STARTS[cpu].load(Ordering::Acquire) == expected_starts) {
        return fail!("vCPU {cpu} did not report start {expected_starts}");
    }
    expect_eq("its MPIDR", cpu as u64, MPIDRS[cpu].load(Ordering::Relaxed))
}

/// Asks vCPU `cpu` to turn itself off and waits until AFFINITY_INFO says OFF.
pub(super) fn stop(cpu: usize) -> Outcome {
    OFF_REQUESTED[cpu].store(true, Ordering::Release);
    gic::ring_doorbell(cpu);
    if !wait_for(|| affinity_info(cpu as u64) == AffinityState::Off as i64) {
        let error = OFF_ERRORS[cpu].load(Ordering::Acquire) as i64;
        return fail!("vCPU {cpu} still on after CPU_OFF (CPU_OFF returned {error})");
    }
    Ok(())
}

/// Starts every secondary vCPU that is off (for the GIC checks, or to check they start).
pub(super) fn start_all() -> Outcome {
    for (cpu, starts) in STARTS.iter().enumerate().skip(1) {
        if affinity_info(cpu as u64) != AffinityState::On as i64 {
            start(cpu, starts.load(Ordering::Acquire) + 1)?;
        }
    }
    Ok(())
}

/// Stops every secondary vCPU, so that none spins while nothing needs it.
pub(super) fn stop_all() -> Outcome {
    (1..CPUS).try_for_each(stop)
}

/// Asks vCPU `cpu` to run `task`, without waiting; [`wait_task`] waits for it.
pub(super) fn post(cpu: usize, task: fn()) -> u64 {
    let done = TASKS_DONE[cpu].load(Ordering::Acquire);
    TASKS[cpu].store(task as usize, Ordering::Release);
    gic::ring_doorbell(cpu);
    done + 1
}

/// Waits until vCPU `cpu` has finished task number `ticket` (from [`post`]).
pub(super) fn wait_task(cpu: usize, ticket: u64) -> Outcome {
    if wait_for(|| TASKS_DONE[cpu].load(Ordering::Acquire) >= ticket) {
        Ok(())
    } else {
        fail!("vCPU {cpu} did not finish its task")
    }
}

/// Runs `task` on vCPU `cpu` (here if it is this one) and waits for it.
pub(super) fn run_on(cpu: usize, task: fn()) -> Outcome {
    if cpu == this_cpu() {
        task();
        return Ok(());
    }
    let ticket = post(cpu, task);
    wait_task(cpu, ticket)
}
