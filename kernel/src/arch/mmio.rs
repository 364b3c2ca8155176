//! Memory-mapped device registers reached through the kernel's linear map.

use core::ptr;
use kernel::address::Pa;

/// A block of device registers: every access is one volatile load or store of the
/// register's width, checked to stay inside the block.
#[derive(Clone, Copy, Debug)]
pub struct Registers {
    base: usize,
    size: usize,
}

impl Registers {
    /// The `size`-byte register block at physical address `pa`.
    ///
    /// # Safety
    ///
    /// `pa..pa + size` must be device registers, mapped as device memory in the linear
    /// map, where any aligned access of the widths used has no effect on memory.
    pub const unsafe fn new(pa: Pa, size: usize) -> Self {
        Self { base: pa.to_kernel_va().0 as usize, size }
    }

    /// The sub-block of `size` bytes at `offset`.
    pub fn block(self, offset: usize, size: usize) -> Self {
        assert!(offset + size <= self.size, "register block {offset:#x}+{size:#x} out of range");
        Self { base: self.base + offset, size }
    }

    fn register<T>(self, offset: usize) -> *mut T {
        let width = core::mem::size_of::<T>();
        assert!(
            offset.is_multiple_of(width) && offset + width <= self.size,
            "register {offset:#x} out of range"
        );
        (self.base + offset) as *mut T
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read32(self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract makes every aligned in-range offset a device register,
        // and `register` checked both.
        unsafe { ptr::read_volatile(self.register(offset)) }
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write32(self, offset: usize, value: u32) {
        // SAFETY: as in `read32`.
        unsafe { ptr::write_volatile(self.register(offset), value) }
    }

    /// Reads the 64-bit register at `offset`.
    pub fn read64(self, offset: usize) -> u64 {
        // SAFETY: as in `read32`.
        unsafe { ptr::read_volatile(self.register(offset)) }
    }

    /// Writes the 64-bit register at `offset`.
    pub fn write64(self, offset: usize, value: u64) {
        // SAFETY: as in `read32`.
        unsafe { ptr::write_volatile(self.register(offset), value) }
    }

    /// Writes the 8-bit register at `offset`.
    pub fn write8(self, offset: usize, value: u8) {
        // SAFETY: as in `read32`.
        unsafe { ptr::write_volatile(self.register(offset), value) }
    }
}
