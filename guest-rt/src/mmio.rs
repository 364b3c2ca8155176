//! 32- and 64-bit device register access by single `ldr`/`str` instructions without writeback,
//! which a hypervisor trapping them can decode from the syndrome.

/// Reads the 32-bit device register at (guest-)physical `address`.
///
/// # Safety
///
/// `address` is a 4-byte aligned device register that may be read.
pub unsafe fn read32(address: u64) -> u32 {
    let value: u32;
    // SAFETY: the caller names a readable register; one `ldr` without writeback.
    unsafe {
        core::arch::asm!(
            "ldr {value:w}, [{address}]",
            value = out(reg) value,
            address = in(reg) address,
            options(nostack, preserves_flags),
        )
    };
    value
}

/// Writes `value` to the 32-bit device register at (guest-)physical `address`.
///
/// # Safety
///
/// `address` is a 4-byte aligned device register that may be written with `value`.
pub unsafe fn write32(address: u64, value: u32) {
    // SAFETY: the caller names a writable register; one `str` without writeback.
    unsafe {
        core::arch::asm!(
            "str {value:w}, [{address}]",
            value = in(reg) value,
            address = in(reg) address,
            options(nostack, preserves_flags),
        )
    };
}

/// Reads the 64-bit device register at (guest-)physical `address`.
///
/// # Safety
///
/// `address` is an 8-byte aligned device register that may be read with a 64-bit access.
pub unsafe fn read64(address: u64) -> u64 {
    let value: u64;
    // SAFETY: the caller names a readable register; one `ldr` without writeback.
    unsafe {
        core::arch::asm!(
            "ldr {value}, [{address}]",
            value = out(reg) value,
            address = in(reg) address,
            options(nostack, preserves_flags),
        )
    };
    value
}

/// Writes `value` to the 64-bit device register at (guest-)physical `address`.
///
/// # Safety
///
/// `address` is an 8-byte aligned device register that may be written with `value` by a
/// 64-bit access.
pub unsafe fn write64(address: u64, value: u64) {
    // SAFETY: the caller names a writable register; one `str` without writeback.
    unsafe {
        core::arch::asm!(
            "str {value}, [{address}]",
            value = in(reg) value,
            address = in(reg) address,
            options(nostack, preserves_flags),
        )
    };
}
