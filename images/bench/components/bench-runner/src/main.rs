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

include!(env!("HYP_CAPS"));
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

fn report(name: &str, value: u64) {
    log::info!("bench {name} {value}");
}

fn main() -> ! {
    let short = ipc::Message::new(ipc::Label(1)).with_words(&[1, 2]);
    let in_registers = ipc::ShortMessage::new(ipc::Label(1), &[1, 2]);
    let long = ipc::Message::new(ipc::Label(1)).with_words(&[7; 16]);
    let mut null_syscall = || {
        let _ = IDLE.poll();
    };
    let mut call_same_cpu = || {
        let _ = ECHO.call(&short);
    };
    let mut call_in_registers = || {
        let _ = ECHO.call_short(&in_registers);
    };
    let mut call_long = || {
        let _ = ECHO.call(&long);
    };
    let mut call_other_cpu = || {
        let _ = REMOTE_ECHO.call(&short);
    };
    let mut signal_round_trip = || {
        PEER.signal().expect("signal PEER");
        MINE.wait().expect("wait on MINE");
    };
    let figures: [(&str, &mut dyn FnMut()); 6] = [
        ("null-syscall", &mut null_syscall),
        ("ipc-call-fastpath", &mut call_same_cpu),
        ("ipc-call-fastpath-registers", &mut call_in_registers),
        ("ipc-call-long-message", &mut call_long),
        ("ipc-call-cross-cpu-system-wide", &mut call_other_cpu),
        ("signal-cross-cpu-round-trip-system-wide", &mut signal_round_trip),
    ];
    for (name, operation) in figures {
        report(name, measure(operation));
    }
    // The bench guest measures now, alone on this CPU while this thread waits.
    VM_GO.signal().expect("signal VM_GO");
    GUEST_DONE.wait().expect("wait on GUEST_DONE");
    let _ = CONTROL.shutdown(0);
    unreachable!("shutdown powers the machine off")
}
