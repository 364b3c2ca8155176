//! bench-runner: times kernel paths in retired instructions (PMU event counter 0, counting
//! EL0 and EL2, which the kernel sets up for systems that enable `pmu-for-components`) and
//! prints one `bench <name> <instructions>` line per figure for `cargo xtask bench`.
//!
//! After its rows it lets the bench guest measure (notification `vm-go`) and ends the run
//! once the guest is done (`guest-done`).
//!
//! Under `-icount shift=0,sleep=off` QEMU counts every CPU's instructions in one global
//! count, so figures that involve the other CPU are system-wide and labelled so.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Iterations per figure; the figure is the mean.
const ITERATIONS: u64 = 1000;

fn instructions() -> u64 {
    let count: u64;
    // SAFETY: reads PMEVCNTR0_EL0, which the kernel lets EL0 read in benchmark systems;
    // no memory is touched.
    unsafe { core::arch::asm!("isb", "mrs {}, pmevcntr0_el0", out(reg) count, options(nomem, nostack)) };
    count
}

/// Mean instructions of `operation` over [`ITERATIONS`], minus the cost of reading the counter.
#[inline(always)]
fn measure(mut operation: impl FnMut()) -> u64 {
    operation();
    let empty_start = instructions();
    let empty = instructions() - empty_start;
    let start = instructions();
    for _ in 0..ITERATIONS {
        operation();
    }
    let total = instructions() - start;
    total.saturating_sub(empty) / ITERATIONS
}

/// Measures `operation` and prints its figure as `name`.
#[inline(always)]
fn figure(name: &str, operation: impl FnMut()) {
    let value = measure(operation);
    log::info!("bench {name} {value}");
}

fn main() -> ! {
    let short = ipc::Message::new(ipc::Label(1)).with_words(&[1, 2]);
    let in_registers = ipc::ShortMessage::new(ipc::Label(1), &[1, 2]);
    let long = ipc::Message::new(ipc::Label(1)).with_words(&[7; 16]);
    // Each figure gets its own instance of `measure` (no `dyn` call in the loop), so that
    // the loop around an operation costs what the floor's loop does.
    figure("null-syscall", || {
        let _ = IDLE.poll();
    });
    figure("ipc-call-fastpath", || {
        let _ = ECHO.call(&short);
    });
    figure("ipc-call-fastpath-registers", || {
        let _ = ECHO.call_short(&in_registers);
    });
    figure("ipc-call-long-message", || {
        let _ = ECHO.call(&long);
    });
    figure("ipc-call-cross-cpu-system-wide", || {
        let _ = REMOTE_ECHO.call(&short);
    });
    figure("signal-cross-cpu-round-trip-system-wide", || {
        PEER.signal().expect("signal PEER");
        MINE.wait().expect("wait on MINE");
    });
    // The bench guest measures now, alone on this CPU while this thread waits.
    VM_GO.signal().expect("signal VM_GO");
    GUEST_DONE.wait().expect("wait on GUEST_DONE");
    let _ = CONTROL.shutdown(0);
    unreachable!("shutdown powers the machine off")
}
