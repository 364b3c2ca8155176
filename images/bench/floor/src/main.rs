//! bench-floor: the floor of every trap path, a null HVC round trip from EL1 to an EL2
//! handler that is nothing but `eret`, in retired instructions (PMU event counter 0,
//! INST_RETIRED at EL1 and EL2). `cargo xtask bench` boots it alone in QEMU, under the
//! same `-icount` mode as the bench system, and divides the hypervisor's guest rows by it.
//!
//! QEMU enters guest-rt's `_start` at EL2 with the MMU off. The program installs a vector table whose
//! lower-EL synchronous entry is `eret` (ELR_EL2 already points past the `hvc`), drops to
//! EL1, times `ITERATIONS` HVCs, prints `bench hvc-floor <instructions per round trip>`
//! on the PL011 and powers the machine off with PSCI SYSTEM_OFF over SMC.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

guest_rt::entry!(bare_metal::el1_main, el2_to_el1 = bare_metal::drop_to_el1);

/// The program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod bare_metal {
    use core::arch::{asm, naked_asm};
    use core::fmt::Write;
    use guest_rt::{Pl011, QEMU_VIRT_PL011};

    /// HVC round trips timed; the figure is their mean, loop branch included.
    const ITERATIONS: u32 = 1000;
    /// PSCI SYSTEM_OFF (SMC32).
    const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
    /// PMEVTYPER0_EL0: event INST_RETIRED (0x08), counted at EL2 too (NSH, bit 27); the
    /// clear P and U bits keep EL1 and EL0 counted.
    const INST_RETIRED_EL1_AND_EL2: u64 = 0x08 | 1 << 27;
    /// MDCR_EL2 bits cleared: HPMD (17, EL2 would not count), TPM (6) and TPMCR (5) (EL1's
    /// PMU accesses would trap).
    const MDCR_EL2_CLEAR: u64 = 1 << 17 | 1 << 6 | 1 << 5;
    /// HCR_EL2: RW only (EL1 is AArch64); nothing traps but HVC, which always does.
    const HCR_EL2_RW: u64 = 1 << 31;
    /// SCTLR_EL1: its RES1 bits, MMU and caches off.
    const SCTLR_EL1_RES1: u64 = 0x30d0_0800;
    /// SPSR_EL2 for the drop: EL1h with D, A, I and F masked.
    const SPSR_EL1H_MASKED: u64 = 0x3c5;

    /// EL2, called first by `_start`: vectors, traps and PMU access for EL1, then `eret` to
    /// the caller's return address at EL1.
    #[unsafe(naked)]
    pub(crate) extern "C" fn drop_to_el1() {
        naked_asm!(
            "adr x0, floor_vectors",
            "msr vbar_el2, x0",
            "ldr x0, ={hcr}",
            "msr hcr_el2, x0",
            "mrs x0, mdcr_el2",
            "ldr x1, ={mdcr_clear}",
            "bic x0, x0, x1",
            "msr mdcr_el2, x0",
            "ldr x0, ={sctlr}",
            "msr sctlr_el1, x0",
            "ldr x0, ={spsr}",
            "msr spsr_el2, x0",
            "msr elr_el2, x30",
            "isb",
            "eret",
            hcr = const HCR_EL2_RW,
            mdcr_clear = const MDCR_EL2_CLEAR,
            sctlr = const SCTLR_EL1_RES1,
            spsr = const SPSR_EL1H_MASKED,
        );
    }

    // Sixteen entries of 0x80 bytes; only "lower EL, AArch64, synchronous" (0x400) is
    // expected, and returns at once. Anything else stops here and the run times out.
    core::arch::global_asm!(
        r#"
        .section .text.vectors, "ax"
        .balign 2048
        floor_vectors:
        .rept 8
            .balign 0x80
            b .
        .endr
            .balign 0x80
            eret
        .rept 7
            .balign 0x80
            b .
        .endr
        "#
    );

    /// EL1: measure, print, power off.
    pub(crate) extern "C" fn el1_main() -> ! {
        let instructions = measure_null_hvc();
        // Nothing to do if the UART fails; the run's timeout reports the missing figure.
        let _ = writeln!(Pl011::new(QEMU_VIRT_PL011), "bench hvc-floor {}", instructions / ITERATIONS);
        // PSCI SYSTEM_OFF ends the machine and does not return.
        guest_rt::smc(PSCI_SYSTEM_OFF, &[]);
        guest_rt::wait_forever()
    }

    /// Instructions retired at EL1 and EL2 over `ITERATIONS` HVCs and their loop.
    fn measure_null_hvc() -> u32 {
        let before: u64;
        let after: u64;
        // SAFETY: programs this CPU's PMU and takes HVCs, whose handler only returns; no
        // memory is touched.
        unsafe {
            asm!(
                "msr pmevtyper0_el0, {event}",
                "msr pmcntenset_el0, {counter0}",
                "mrs {scratch}, pmcr_el0",
                "orr {scratch}, {scratch}, #1",
                "msr pmcr_el0, {scratch}",
                "isb",
                "mrs {before}, pmevcntr0_el0",
                "1: hvc #0",
                "subs {count}, {count}, #1",
                "b.ne 1b",
                "mrs {after}, pmevcntr0_el0",
                event = in(reg) INST_RETIRED_EL1_AND_EL2,
                counter0 = in(reg) 1u64,
                scratch = out(reg) _,
                before = out(reg) before,
                after = out(reg) after,
                count = inout(reg) u64::from(ITERATIONS) => _,
                options(nomem, nostack),
            );
        }
        // The counter is 32 bits wide (without PMUv3p5's long counters): differences wrap.
        (after as u32).wrapping_sub(before as u32)
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        guest_rt::wait_forever()
    }
}
