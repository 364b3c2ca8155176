//! PSCI calls over SMC (QEMU's firmware interface when EL2 is the highest EL).

use core::arch::asm;

/// PSCI `CPU_ON` (SMC64).
const CPU_ON: u64 = 0xC400_0003;
/// PSCI `SYSTEM_OFF`.
const SYSTEM_OFF: u64 = 0x8400_0008;

fn smc(function: u64, arg1: u64, arg2: u64, arg3: u64) -> i64 {
    let result: u64;
    // SAFETY: an SMC enters the PSCI implementation, which follows the SMC calling
    // convention: it may change x0-x17 (declared clobbered) and nothing else we own.
    unsafe {
        asm!(
            "smc #0",
            inout("x0") function => result,
            inout("x1") arg1 => _,
            inout("x2") arg2 => _,
            inout("x3") arg3 => _,
            clobber_abi("C"),
            options(nostack),
        );
    }
    result as i64
}

/// Starts the CPU whose MPIDR affinity is `mpidr` at physical address `entry` with
/// `context` in x0; returns the PSCI error code on failure.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), i64> {
    match smc(CPU_ON, mpidr, entry, context) {
        0 => Ok(()),
        error => Err(error),
    }
}

/// Powers the machine off.
pub fn system_off() -> ! {
    smc(SYSTEM_OFF, 0, 0, 0);
    // SYSTEM_OFF does not return; should it, stay quiet rather than run on.
    loop {
        aarch64_cpu::asm::wfe();
    }
}
