//! Output through a PL011 UART: wait while the transmit FIFO is full, then write the byte
//! to the data register. The registers are behind [`Registers`] so the logic is tested on
//! the host; `Pl011` (AArch64 only) is the real device.

/// Offset of the data register.
pub const DR: u64 = 0x000;
/// Offset of the flag register.
pub const FR: u64 = 0x018;
/// FR.TXFF: the transmit FIFO is full.
pub const FR_TXFF: u32 = 1 << 5;

/// A PL011's 32-bit registers, by offset from its base.
pub trait Registers {
    /// Reads the register at `offset`.
    fn read(&self, offset: u64) -> u32;
    /// Writes `value` to the register at `offset`.
    fn write(&self, offset: u64, value: u32);
}

/// Writes `text` byte by byte, each once FR.TXFF is clear.
pub fn write_text(uart: &impl Registers, text: &str) {
    for byte in text.bytes() {
        while uart.read(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        uart.write(DR, byte.into());
    }
}

/// A PL011 at a (guest-)physical address, accessed with the MMU off through [`crate::mmio`].
#[cfg(target_arch = "aarch64")]
#[derive(Clone, Copy, Debug)]
pub struct Pl011 {
    base: u64,
}

#[cfg(target_arch = "aarch64")]
impl Pl011 {
    /// The PL011 whose registers start at `base` (a device this program may use, such as
    /// [`crate::QEMU_VIRT_PL011`]).
    pub const fn new(base: u64) -> Self {
        Self { base }
    }
}

#[cfg(target_arch = "aarch64")]
impl Registers for Pl011 {
    fn read(&self, offset: u64) -> u32 {
        // SAFETY: `base` is a PL011 (see `new`) and `offset` one of its 4-byte registers.
        unsafe { crate::mmio::read32(self.base + offset) }
    }

    fn write(&self, offset: u64, value: u32) {
        // SAFETY: as in `read`.
        unsafe { crate::mmio::write32(self.base + offset, value) }
    }
}

#[cfg(target_arch = "aarch64")]
impl core::fmt::Write for Pl011 {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        write_text(self, text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A UART whose FIFO reports full for the first `busy_polls` reads of FR.
    struct FakeUart {
        busy_polls: Cell<u32>,
        written: RefCell<Vec<(u64, u32)>>,
    }

    impl Registers for FakeUart {
        fn read(&self, offset: u64) -> u32 {
            assert_eq!(offset, FR, "only FR is read");
            let busy = self.busy_polls.get();
            self.busy_polls.set(busy.saturating_sub(1));
            if busy > 0 { FR_TXFF } else { 0 }
        }

        fn write(&self, offset: u64, value: u32) {
            assert_eq!(self.busy_polls.get(), 0, "written while the FIFO was full");
            self.written.borrow_mut().push((offset, value));
        }
    }

    #[test]
    fn bytes_go_to_dr_once_the_fifo_has_room() {
        let uart = FakeUart { busy_polls: Cell::new(3), written: RefCell::new(Vec::new()) };
        write_text(&uart, "hé\n");
        let expected: Vec<_> = "hé\n".bytes().map(|byte| (DR, u32::from(byte))).collect();
        assert_eq!(*uart.written.borrow(), expected);
    }
}
