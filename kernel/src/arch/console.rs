//! The kernel console: polled output on QEMU's PL011 UART.
//!
//! Lock order: the big kernel lock (`KERNEL` in `main.rs`) first, then [`CONSOLE`]. Code
//! holding the console lock never takes the kernel lock, so threads printing through
//! `Platform::console_write` (kernel lock held) and boot or panic messages (kernel lock
//! not held) cannot deadlock.

use super::SpinLock;
use super::mmio::Registers;
use core::fmt::{self, Write};
use kernel::address::Pa;

/// The PL011's data register.
const UARTDR: usize = 0x00;
/// The PL011's flag register.
const UARTFR: usize = 0x18;
/// UARTFR: transmit FIFO full.
const TXFF: u32 = 1 << 5;

/// A PL011 used for output only (QEMU's UART needs no setup to transmit).
pub struct Pl011(Registers);

impl Pl011 {
    /// The `virt` machine's UART at 0x0900_0000.
    pub const fn new() -> Self {
        // SAFETY: QEMU `virt` has a PL011 (4 KiB of registers) at 0x0900_0000, inside the
        // linear map's device range.
        Self(unsafe { Registers::new(Pa(0x0900_0000), 0x1000) })
    }

    /// Sends `bytes`, waiting for room in the FIFO.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &byte in bytes {
            while self.0.read32(UARTFR) & TXFF != 0 {
                core::hint::spin_loop();
            }
            self.0.write32(UARTDR, u32::from(byte));
        }
    }
}

impl Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// The UART plus whether output is at the start of a line, so kernel lines always start
/// on a line of their own even after a component's unterminated output.
pub struct Console {
    uart: Pl011,
    at_line_start: bool,
}

impl Console {
    /// Sends `bytes` as they are.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        if let Some(&last) = bytes.last() {
            self.uart.write_bytes(bytes);
            self.at_line_start = last == b'\n';
        }
    }

    /// Sends one `[kernel] ` line, after a line break if the output is mid-line.
    fn write_line(&mut self, args: fmt::Arguments) {
        if !self.at_line_start {
            self.write_bytes(b"\n");
        }
        // The PL011 cannot fail; a formatting error would only cut the line short.
        let _ = writeln!(self, "[kernel] {args}");
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// The console lock: serializes lines from different CPUs (see the lock order above).
pub static CONSOLE: SpinLock<Console> = SpinLock::new(Console { uart: Pl011::new(), at_line_start: true });

/// Prints one `[kernel] ` line.
pub fn print_line(args: fmt::Arguments) {
    CONSOLE.lock().write_line(args);
}

/// Prints a `[kernel] ` line: `kprintln!("format", args...)`.
macro_rules! kprintln {
    ($($arg:tt)*) => {
        $crate::arch::console::print_line(format_args!($($arg)*))
    };
}
pub(crate) use kprintln;

/// Prints a line even if another CPU, or this one, holds the console lock: for the panic
/// handler, which must not wait forever for a lock held by the code that panicked.
pub fn print_line_unlocked(args: fmt::Arguments) {
    const ATTEMPTS: u32 = 1 << 20;
    match (0..ATTEMPTS).find_map(|_| CONSOLE.try_lock()) {
        Some(mut console) => console.write_line(args),
        // The UART has no state in memory: a second handle only interleaves bytes.
        None => {
            let _ = writeln!(Pl011::new(), "\n[kernel] {args}");
        }
    }
}
