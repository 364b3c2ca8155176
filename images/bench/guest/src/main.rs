//! bench-guest: the bench system's bare-metal EL1 guest. It times, in retired instructions
//! (PMU event counter 0, which the kernel programs in `pmu-for-components` systems to count
//! EL0, EL1 and EL2 and leaves readable from EL1), three trap paths: an MMIO read routed
//! to `bench-vm-server` and answered at once, a PSCI_VERSION HVC through the VM's fault
//! endpoint (the same server), and a read of an address nothing claims, which the kernel
//! answers alone. Each figure is the mean of `ITERATIONS` in a loop shaped like
//! `bench-floor`'s, loop branch included, so the two divide cleanly.
//!
//! It first waits (HVC `BENCH_READY`) until the bench-runner has finished, so that it
//! measures alone: its vCPU shares CPU 0 with the runner and the other CPU is idle. The
//! figures go to the server (HVC `BENCH_REPORT`), which prints them; `BENCH_DONE` lets the
//! runner end the run. The vCPU enters guest-rt's `_start` with the MMU off (Device memory:
//! every access is a single aligned load or store).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

guest_rt::entry!(el1::main);

/// The guest program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el1 {
    use bench_vm_server::{BENCH_DONE, BENCH_READY, BENCH_REPORT, PSCI_VERSION, ROWS};
    use core::arch::asm;

    /// Round trips timed per figure; the figure is their mean.
    const ITERATIONS: u32 = 1000;
    /// The bench device: `system.toml` routes this page to `bench-vm-server`.
    const BENCH_DEVICE: u64 = 0x0a00_0000;
    /// A page that nothing maps or routes (QEMU virt's virtio-mmio area): the VM's
    /// `unclaimed = "read-zero"` policy answers in the kernel.
    const UNCLAIMED: u64 = 0x0a00_1000;

    /// Times `$operation` (asm lines) `ITERATIONS` times in a `subs`/`b.ne` loop, after one
    /// untimed run; the remaining arguments are the operands it names.
    macro_rules! mean_instructions {
        ($($operation:literal),+; $($operands:tt)*) => {{
            let before: u64;
            let after: u64;
            // SAFETY: the caller's operation is a trapped access or HVC that the hypervisor
            // answers; the counter reads touch no memory.
            unsafe {
                asm!(
                    $($operation),+,
                    "isb",
                    "mrs {before}, pmevcntr0_el0",
                    "1:",
                    $($operation),+,
                    "subs {count}, {count}, #1",
                    "b.ne 1b",
                    "mrs {after}, pmevcntr0_el0",
                    before = out(reg) before,
                    after = out(reg) after,
                    count = inout(reg) u64::from(ITERATIONS) => _,
                    $($operands)*
                    options(nostack),
                );
            }
            // Event counters may be 32 bits wide: differences wrap.
            u64::from((after as u32).wrapping_sub(before as u32) / ITERATIONS)
        }};
    }

    /// A hypervisor call to `bench-vm-server` (its functions are SMC32 identifiers).
    fn hvc(function: u64, args: &[u64]) {
        guest_rt::hvc(function as u32, args);
    }

    /// Unclaimed reads before the timed ones: the kernel logs the 1st, 2nd, 4th, 8th, ...
    /// access, so after these (and the macro's untimed one, 1024 in all) none of the timed
    /// accesses, the 1025th to the 2024th, is logged.
    fn settle_unclaimed_log() {
        // SAFETY: reads of an unclaimed address, which the kernel answers with zero.
        unsafe {
            asm!(
                "1: ldr {value:w}, [{address}]",
                "subs {count}, {count}, #1",
                "b.ne 1b",
                address = in(reg) UNCLAIMED,
                value = out(reg) _,
                count = inout(reg) 1023u64 => _,
                options(nostack),
            );
        }
    }

    /// Waits for the runner, measures, reports, and lets the run end.
    pub(crate) extern "C" fn main() -> ! {
        hvc(BENCH_READY, &[]);
        let mmio_read = mean_instructions!(
            "ldr {value:w}, [{address}]";
            address = in(reg) BENCH_DEVICE, value = out(reg) _,
        );
        let hvc_to_server = mean_instructions!(
            "mov x0, {function}", "hvc #0";
            function = in(reg) PSCI_VERSION, out("x0") _, out("x1") _, out("x2") _, out("x3") _,
        );
        settle_unclaimed_log();
        let unclaimed_read = mean_instructions!(
            "ldr {value:w}, [{address}]";
            address = in(reg) UNCLAIMED, value = out(reg) _,
        );
        let figures: [u64; ROWS.len()] = [mmio_read, hvc_to_server, unclaimed_read];
        for (index, figure) in figures.into_iter().enumerate() {
            hvc(BENCH_REPORT, &[index as u64, figure]);
        }
        hvc(BENCH_DONE, &[]);
        // The server stops this vCPU at BENCH_DONE; nothing runs past it.
        guest_rt::wait_forever()
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        guest_rt::wait_forever()
    }
}
