//! guest-rt: what the bare-metal AArch64 programs link (the EL1 guests of the `guest-test`
//! and `bench` systems, and `bench-floor`, which QEMU starts at EL2): the `_start` entry
//! point with its stack and zeroed BSS, the link script (`guest.ld`, applied by `link.rs`,
//! the programs' build script), EL1 exception vectors that call one Rust function
//! ([`vectors`]), PL011 output through single aligned `ldr`/`str` instructions, and
//! HVC/SMC calls.
//!
//! ```ignore
//! #![cfg_attr(target_os = "none", no_std, no_main)]
//! guest_rt::entry!(bare_metal::main);
//! #[cfg(target_os = "none")]
//! mod bare_metal {
//!     pub(crate) extern "C" fn main() -> ! {
//!         let _ = writeln!(guest_rt::Pl011::new(guest_rt::QEMU_VIRT_PL011), "hello");
//!         guest_rt::wait_forever()
//!     }
//! }
//! ```
//!
//! The programs run with the MMU off, so every data access is to Device memory. A trapped
//! device access must be one load or store without writeback, or the hypervisor gets no
//! instruction syndrome and cannot emulate it; a compiler's `read_volatile` may pick
//! post-indexed or pair forms, so `mmio` uses hand-written `ldr`/`str`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(target_arch = "aarch64")]
pub mod mmio;
pub mod pl011;
pub mod vectors;

#[cfg(target_arch = "aarch64")]
pub use pl011::Pl011;
pub use pl011::Registers;

/// QEMU virt's PL011 (the host UART), also where a VM's emulated PL011 is routed.
pub const QEMU_VIRT_PL011: u64 = 0x0900_0000;

/// Bytes of a [`Stack`].
pub const STACK_SIZE: usize = 16 * 1024;

/// A stack for one CPU, 16-byte aligned as AArch64's SP requires.
#[repr(C, align(16))]
pub struct Stack([u8; STACK_SIZE]);

impl Stack {
    /// A zeroed stack (for a `static mut`, which only its CPU then uses).
    pub const fn new() -> Self {
        Self([0; STACK_SIZE])
    }

    /// The initial SP for `stack`: its end (the stack grows down). Only the address is used.
    pub fn top(stack: *const Stack) -> u64 {
        (stack.addr() + STACK_SIZE) as u64
    }
}

impl Default for Stack {
    fn default() -> Self {
        Self::new()
    }
}

/// The boot CPU's stack; only the `_start` of [`entry!`] names it.
#[doc(hidden)]
pub static mut BOOT_STACK: Stack = Stack::new();

/// `x0` as the program was entered; `_start` stores it once the BSS is zeroed.
#[doc(hidden)]
pub static BOOT_X0: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The boot CPU's `x0` at entry: a loader's device tree address (a hypervisor's, or QEMU's
/// for a raw binary), 0 when QEMU loaded an ELF with `-kernel`. Meaningless after an
/// `el2_to_el1` routine that uses `x0`.
pub fn boot_argument() -> u64 {
    BOOT_X0.load(core::sync::atomic::Ordering::Relaxed)
}

/// Defines, on the bare-metal target, `_start`, where the program starts with the MMU off:
/// it selects SP_EL1, points it at the top of the boot stack, zeroes the BSS, keeps `x0`
/// for [`boot_argument`] and calls `$main` (an `extern "C" fn() -> !`). Host builds (workspace checks and tests) get an
/// empty `main` instead. Invoke it at the crate root.
///
/// A program that QEMU starts at EL2 names, with `el2_to_el1 = $drop`, a routine that
/// `_start` calls first: it sets up EL2 and returns to its caller at EL1 (`eret` with
/// ELR_EL2 = x30 and SPSR_EL2 = EL1h), where the EL1 start-up continues. It runs before
/// any stack is set up, so it must not use one.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::entry!(@start "", $main,);
    };
    ($main:path, el2_to_el1 = $drop:path) => {
        $crate::entry!(@start "bl {drop}", $main, drop = sym $drop,);
    };
    // The shared expansion; `$prelude` is asm run first, at the level QEMU started in.
    (@start $prelude:literal, $main:path, $($operands:tt)*) => {
        /// Host builds have nothing to run.
        #[cfg(not(target_os = "none"))]
        fn main() {}

        #[cfg(target_os = "none")]
        const _: extern "C" fn() -> ! = $main;
        #[cfg(target_os = "none")]
        core::arch::global_asm!(
            ".section .text._start, \"ax\"",
            ".global _start",
            "_start:",
            $prelude,
            "    msr spsel, #1",
            "    adrp x1, {stack}",
            "    add x1, x1, :lo12:{stack}",
            "    add sp, x1, #{stack_size}",
            "    adrp x1, __bss_start",
            "    add x1, x1, :lo12:__bss_start",
            "    adrp x2, __bss_end",
            "    add x2, x2, :lo12:__bss_end",
            "0:  cmp x1, x2",
            "    b.hs 1f",
            "    stp xzr, xzr, [x1], #16",
            "    b 0b",
            "1:  adrp x1, {boot_x0}",
            "    str x0, [x1, :lo12:{boot_x0}]",
            "    bl {main}",
            stack = sym $crate::BOOT_STACK,
            boot_x0 = sym $crate::BOOT_X0,
            stack_size = const $crate::STACK_SIZE,
            main = sym $main,
            $($operands)*
        );
    };
}

/// A hypervisor call with the SMC calling convention (function in w0, `args` in x1..);
/// returns x0, signed as SMCCC's error codes are.
#[cfg(target_arch = "aarch64")]
pub fn hvc(function: u32, args: &[u64]) -> i64 {
    smccc::hvc64(function, registers(args))[0] as i64
}

/// A secure monitor call (a hypervisor traps it; bare metal reaches QEMU's PSCI), as
/// [`hvc`].
#[cfg(target_arch = "aarch64")]
pub fn smc(function: u32, args: &[u64]) -> i64 {
    smccc::smc64(function, registers(args))[0] as i64
}

/// x1..=x17 of a call: `args`, then zeroes.
#[cfg(any(target_arch = "aarch64", test))]
fn registers(args: &[u64]) -> [u64; 17] {
    let mut registers = [0; 17];
    registers[..args.len()].copy_from_slice(args);
    registers
}

/// Waits for interrupts forever: where a program ends when nothing else may run.
#[cfg(target_arch = "aarch64")]
pub fn wait_forever() -> ! {
    loop {
        // SAFETY: waiting for an interrupt has no effect on memory.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_registers_hold_the_arguments_then_zeroes() {
        let registers = registers(&[1, 2, 3]);
        assert_eq!(registers[..4], [1, 2, 3, 0]);
        assert!(registers[3..].iter().all(|&register| register == 0));
        assert_eq!(super::registers(&[7; 17]), [7; 17]);
    }

    #[test]
    fn stack_top_is_its_end() {
        let stack = Stack::new();
        let start = (&raw const stack).addr() as u64;
        assert_eq!(Stack::top(&raw const stack), start + STACK_SIZE as u64);
        assert_eq!(Stack::top(&raw const stack) % 16, 0, "SP must be 16-byte aligned");
    }
}
