//! bench-floor: the floor of every trap path, a null HVC round trip from EL1 to an EL2
//! handler that is nothing but `eret`, in retired instructions (PMU event counter 0,
//! INST_RETIRED at EL1 and EL2). `cargo xtask bench` boots it alone in QEMU, under the
//! same `-icount` mode as the bench system, and divides the hypervisor's guest rows by it.
//!
//! QEMU enters `_start` at EL2 with the MMU off. The program installs a vector table whose
//! lower-EL synchronous entry is `eret` (ELR_EL2 already points past the `hvc`), drops to
//! EL1, times `ITERATIONS` HVCs, prints `bench hvc-floor <instructions per round trip>`
//! on the PL011 and powers the machine off with PSCI SYSTEM_OFF over SMC.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// Host builds (workspace checks) have nothing to run.
#[cfg(not(target_os = "none"))]
fn main() {}

/// The program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod bare_metal {
    use core::arch::{asm, global_asm};
    use core::fmt::{self, Write};

    /// HVC round trips timed; the figure is their mean, loop branch included.
    const ITERATIONS: u32 = 1000;
    /// Bytes of the EL1 stack.
    const STACK_SIZE: usize = 16 * 1024;
    /// QEMU virt's PL011 data register and flag register.
    const UART_DR: usize = 0x0900_0000;
    const UART_FR: usize = 0x0900_0018;
    /// PL011 FR.TXFF: the transmit FIFO is full.
    const UART_TX_FULL: u32 = 1 << 5;
    /// PSCI SYSTEM_OFF (SMC32).
    const PSCI_SYSTEM_OFF: u64 = 0x8400_0008;
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

    #[repr(C, align(16))]
    struct Stack([u8; STACK_SIZE]);

    /// The EL1 stack (only `_start` names it).
    static mut STACK: Stack = Stack([0; STACK_SIZE]);

    // EL2: vectors, traps and PMU access for EL1, then `eret` to EL1 with the stack set.
    global_asm!(
        r#"
        .section .text._start, "ax"
        .global _start
        _start:
            adr x0, floor_vectors
            msr vbar_el2, x0
            ldr x0, ={hcr}
            msr hcr_el2, x0
            mrs x0, mdcr_el2
            ldr x1, ={mdcr_clear}
            bic x0, x0, x1
            msr mdcr_el2, x0
            ldr x0, ={sctlr}
            msr sctlr_el1, x0
            ldr x0, ={spsr}
            msr spsr_el2, x0
            adr x0, 0f
            msr elr_el2, x0
            isb
            eret
        0:  adrp x0, {stack}
            add x0, x0, :lo12:{stack}
            add sp, x0, #{stack_size}
            bl {el1_main}

        // Sixteen entries of 0x80 bytes; only "lower EL, AArch64, synchronous" (0x400) is
        // expected, and returns at once. Anything else stops here and the run times out.
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
        "#,
        hcr = const HCR_EL2_RW,
        mdcr_clear = const MDCR_EL2_CLEAR,
        sctlr = const SCTLR_EL1_RES1,
        spsr = const SPSR_EL1H_MASKED,
        stack = sym STACK,
        stack_size = const STACK_SIZE,
        el1_main = sym el1_main,
    );

    /// EL1: measure, print, power off.
    extern "C" fn el1_main() -> ! {
        let instructions = measure_null_hvc();
        // Nothing to do if the UART fails; the run's timeout reports the missing figure.
        let _ = writeln!(Uart, "bench hvc-floor {}", instructions / ITERATIONS);
        // SAFETY: PSCI SYSTEM_OFF ends the machine; it touches no memory of this program.
        unsafe { asm!("smc #0", in("x0") PSCI_SYSTEM_OFF, options(nomem, nostack)) };
        loop {
            // SAFETY: waiting for an interrupt has no effect on memory.
            unsafe { asm!("wfi", options(nomem, nostack)) };
        }
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

    /// The PL011 at its physical address (the MMU is off).
    struct Uart;

    impl Write for Uart {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            for byte in text.bytes() {
                // SAFETY: UART_FR and UART_DR are QEMU virt's PL011 registers, Device
                // memory with the MMU off; aligned 32-bit accesses.
                unsafe {
                    while (UART_FR as *const u32).read_volatile() & UART_TX_FULL != 0 {}
                    (UART_DR as *mut u32).write_volatile(u32::from(byte));
                }
            }
            Ok(())
        }
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        loop {
            // SAFETY: waiting for an interrupt has no effect on memory.
            unsafe { asm!("wfi", options(nomem, nostack)) };
        }
    }
}
