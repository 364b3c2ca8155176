//! EL1 exception vectors that hand every exception to one Rust function.
//!
//! [`exception_vectors!`](crate::exception_vectors) defines the table: each of its sixteen
//! entries saves `x0`/`x1`, puts its index (0-15, in the architecture's order: current EL
//! with SP_EL0, current EL with SP_ELx, lower EL AArch64, lower EL AArch32; synchronous,
//! IRQ, FIQ, SError in each) in `x0`, saves the other caller-saved registers and calls the
//! handler, then restores them and returns with `eret`. The handler returns for an
//! exception it has dealt with (having moved ELR_EL1 past an instruction it skips); the
//! frames nest, so a handler that unmasks interrupts saves ELR_EL1 and SPSR_EL1 first.
//! [`install`] points VBAR_EL1 at the table.
//!
//! ```ignore
//! guest_rt::exception_vectors!(exception);
//! extern "C" fn exception(vector: u64) { /* ... */ }
//! guest_rt::vectors::install();
//! ```

/// Names of the sixteen vectors, by index.
pub const NAMES: [&str; 16] = [
    "sync (EL1t)",
    "IRQ (EL1t)",
    "FIQ (EL1t)",
    "SError (EL1t)",
    "sync",
    "IRQ",
    "FIQ",
    "SError",
    "sync (from EL0, AArch64)",
    "IRQ (from EL0, AArch64)",
    "FIQ (from EL0, AArch64)",
    "SError (from EL0, AArch64)",
    "sync (from EL0, AArch32)",
    "IRQ (from EL0, AArch32)",
    "FIQ (from EL0, AArch32)",
    "SError (from EL0, AArch32)",
];

/// Index of the synchronous vector taken at EL1 on SP_EL1, where these programs run.
pub const SYNC_CURRENT: u64 = 4;
/// Index of the IRQ vector taken at EL1 on SP_EL1.
pub const IRQ_CURRENT: u64 = 5;

/// Defines the vector table (see the module docs), calling `$handler`, an
/// `extern "C" fn(vector: u64)`, for every exception. Invoke it once per program, at the
/// crate root or in any module; [`install`] then finds the table by its symbol.
#[macro_export]
macro_rules! exception_vectors {
    ($handler:path) => {
        #[cfg(target_os = "none")]
        const _: extern "C" fn(u64) = $handler;
        #[cfg(target_os = "none")]
        core::arch::global_asm!(
            ".macro GUEST_RT_VECTOR index",
            "    .balign 0x80",
            "    sub sp, sp, #176",
            "    stp x0, x1, [sp, #0]",
            "    mov x0, #\\index",
            "    b guest_rt_exception_common",
            ".endm",
            ".section .text.vectors, \"ax\"",
            ".balign 2048",
            ".global guest_rt_exception_vectors",
            "guest_rt_exception_vectors:",
            "    .irp index, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15",
            "    GUEST_RT_VECTOR \\index",
            "    .endr",
            "guest_rt_exception_common:",
            "    stp x2, x3, [sp, #16]",
            "    stp x4, x5, [sp, #32]",
            "    stp x6, x7, [sp, #48]",
            "    stp x8, x9, [sp, #64]",
            "    stp x10, x11, [sp, #80]",
            "    stp x12, x13, [sp, #96]",
            "    stp x14, x15, [sp, #112]",
            "    stp x16, x17, [sp, #128]",
            "    stp x18, x29, [sp, #144]",
            "    str x30, [sp, #160]",
            "    bl {handler}",
            "    ldp x2, x3, [sp, #16]",
            "    ldp x4, x5, [sp, #32]",
            "    ldp x6, x7, [sp, #48]",
            "    ldp x8, x9, [sp, #64]",
            "    ldp x10, x11, [sp, #80]",
            "    ldp x12, x13, [sp, #96]",
            "    ldp x14, x15, [sp, #112]",
            "    ldp x16, x17, [sp, #128]",
            "    ldp x18, x29, [sp, #144]",
            "    ldr x30, [sp, #160]",
            "    ldp x0, x1, [sp, #0]",
            "    add sp, sp, #176",
            "    eret",
            handler = sym $handler,
        );
    };
}

/// Points VBAR_EL1 at the table that [`exception_vectors!`](crate::exception_vectors)
/// defined (a program that installs without defining one does not link).
#[cfg(target_os = "none")]
pub extern "C" fn install() {
    unsafe extern "C" {
        /// The table (2 KiB aligned), defined by `exception_vectors!`.
        static guest_rt_exception_vectors: u8;
    }
    // SAFETY: the table is code laid out as VBAR_EL1 requires (2 KiB aligned, sixteen
    // 128-byte entries); installing it changes only where this CPU's exceptions go.
    unsafe {
        core::arch::asm!(
            "msr vbar_el1, {table}",
            "isb",
            table = in(reg) &raw const guest_rt_exception_vectors,
            options(nostack)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_table_layout() {
        assert_eq!(NAMES[SYNC_CURRENT as usize], "sync");
        assert_eq!(NAMES[IRQ_CURRENT as usize], "IRQ");
        assert_eq!(NAMES[8], "sync (from EL0, AArch64)");
    }
}
