//! guest-test's logic that needs no hardware: the report of named checks, the text of
//! their details, the decoding of the exceptions its vectors record, the device tree's
//! command line, and GIC and ITS encodings.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod fdt;
pub mod gic;
pub mod its;

use core::fmt::{self, Write};

/// Bytes a [`Text`] holds; longer text is cut (with its length, under the 128 bytes at
/// which clippy finds an `Outcome` error too large to return).
pub const TEXT_CAPACITY: usize = 112;

/// A short piece of text built with `write!` and no allocator (a check's failure detail).
#[derive(Clone)]
pub struct Text {
    bytes: [u8; TEXT_CAPACITY],
    len: usize,
}

impl Text {
    /// Empty text.
    pub const fn new() -> Self {
        Self { bytes: [0; TEXT_CAPACITY], len: 0 }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever appended (see `write_str`).
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Default for Text {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            let mut buffer = [0; 4];
            let encoded = c.encode_utf8(&mut buffer).as_bytes();
            if self.len + encoded.len() > TEXT_CAPACITY {
                break;
            }
            self.bytes[self.len..self.len + encoded.len()].copy_from_slice(encoded);
            self.len += encoded.len();
        }
        Ok(())
    }
}

/// The outcome of a check: `Err` carries what went wrong.
pub type Outcome = Result<(), Text>;

/// Fails the current check with a formatted detail: `return fail!("got {x:#x}")`.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {{
        let mut text = $crate::Text::new();
        // A detail longer than the buffer is cut, never an error.
        let _ = core::fmt::Write::write_fmt(&mut text, format_args!($($arg)*));
        Err(text)
    }};
}

/// Fails with a detail unless `expected == actual` (both printed in hex).
pub fn expect_eq(what: &str, expected: u64, actual: u64) -> Outcome {
    if expected == actual { Ok(()) } else { fail!("{what}: expected {expected:#x}, got {actual:#x}") }
}

/// Prints one line per check and a summary, counting failures.
pub struct Report<W> {
    out: W,
    checks: u32,
    failures: u32,
}

impl<W: Write> Report<W> {
    /// A report printing to `out`.
    pub fn new(out: W) -> Self {
        Self { out, checks: 0, failures: 0 }
    }

    /// Records check `name`: prints `check <name>: ok` or `check <name>: FAILED <detail>`.
    pub fn check(&mut self, name: &str, outcome: Outcome) {
        self.checks += 1;
        // The console cannot fail; an error would only cut the line short.
        let _ = match outcome {
            Ok(()) => writeln!(self.out, "check {name}: ok"),
            Err(detail) => {
                self.failures += 1;
                writeln!(self.out, "check {name}: FAILED {}", detail.as_str())
            }
        };
    }

    /// Prints the summary line; returns the number of failed checks (the run's status).
    pub fn summary(&mut self) -> u32 {
        let _ = writeln!(self.out, "summary: {} checks, {} failed", self.checks, self.failures);
        self.failures
    }
}

/// Decoding ESR_EL1 (syndrome of an exception taken to EL1).
pub mod esr {
    /// Exception class: unknown reason (an UNDEFINED instruction such as `hlt` without a
    /// debugger).
    pub const EC_UNKNOWN: u64 = 0x00;
    /// Exception class: data abort taken without a change of exception level.
    pub const EC_DATA_ABORT_SAME_EL: u64 = 0x25;
    /// Data fault status code: synchronous external abort, not on a table walk.
    pub const DFSC_EXTERNAL: u64 = 0x10;

    /// The exception class, bits 31:26.
    pub const fn class(esr: u64) -> u64 {
        (esr >> 26) & 0x3f
    }

    /// A data abort's fault status code, bits 5:0.
    pub const fn fault_status(esr: u64) -> u64 {
        esr & 0x3f
    }

    /// Whether FAR holds the faulting address (a data abort's FnV, bit 10, is clear).
    pub const fn far_valid(esr: u64) -> bool {
        esr & (1 << 10) == 0
    }
}

/// A synchronous exception that the vectors recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1.
    pub far: u64,
    /// ELR_EL1: the instruction that took it.
    pub elr: u64,
}

/// Checks that the instruction at `pc` took a data abort at `address`: an external abort
/// (what the hypervisor injects for an access it cannot emulate), with FAR valid.
pub fn expect_data_abort(recorded: Option<Recorded>, pc: u64, address: u64) -> Outcome {
    let Some(exception) = recorded else {
        return fail!("no exception");
    };
    expect_eq("exception class", esr::EC_DATA_ABORT_SAME_EL, esr::class(exception.esr))?;
    expect_eq("ELR", pc, exception.elr)?;
    expect_eq("fault status", esr::DFSC_EXTERNAL, esr::fault_status(exception.esr))?;
    if esr::far_valid(exception.esr) {
        expect_eq("FAR", address, exception.far)?;
    }
    Ok(())
}

/// Checks that the instruction at `pc` was undefined (exception class 0).
pub fn expect_undefined(recorded: Option<Recorded>, pc: u64) -> Outcome {
    let Some(exception) = recorded else {
        return fail!("no exception");
    };
    expect_eq("exception class", esr::EC_UNKNOWN, esr::class(exception.esr))?;
    expect_eq("ELR", pc, exception.elr)
}

/// Counter ticks in `micros` microseconds at `frequency` Hz (CNTFRQ_EL0), at least 1.
pub const fn ticks(frequency: u64, micros: u64) -> u64 {
    let ticks = frequency / 1_000_000 * micros + frequency % 1_000_000 * micros / 1_000_000;
    if ticks == 0 { 1 } else { ticks }
}

/// Nanoseconds in `ticks` of a counter running at `frequency` Hz.
pub const fn nanoseconds(frequency: u64, ticks: u64) -> u64 {
    (ticks as u128 * 1_000_000_000 / frequency as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_prints_lines_and_counts_failures() {
        let mut out = String::new();
        let mut report = Report::new(&mut out);
        report.check("first", Ok(()));
        report.check("second", fail!("x is {}", 3));
        report.check("third", expect_eq("y", 1, 2));
        assert_eq!(report.summary(), 2);
        assert_eq!(
            out,
            "check first: ok\ncheck second: FAILED x is 3\ncheck third: FAILED y: expected 0x1, got 0x2\n\
             summary: 3 checks, 2 failed\n"
        );
    }

    #[test]
    fn text_cuts_long_details_at_a_character_boundary() {
        let mut text = Text::new();
        let _ = write!(text, "{}", "é".repeat(TEXT_CAPACITY));
        assert_eq!(text.as_str().len(), TEXT_CAPACITY);
        let _ = write!(text, "more");
        assert_eq!(text.as_str(), "é".repeat(TEXT_CAPACITY / 2));
    }

    /// ESR values as QEMU reports them.
    const DATA_ABORT_EXTERNAL: u64 = 0x9600_0010;
    const DATA_ABORT_EXTERNAL_NO_FAR: u64 = 0x9600_0410;
    const UNDEFINED: u64 = 0x0200_0000;

    #[test]
    fn data_abort_expectations() {
        let abort = Recorded { esr: DATA_ABORT_EXTERNAL, far: 0x0900_0000, elr: 0x4008_1234 };
        assert!(expect_data_abort(Some(abort), 0x4008_1234, 0x0900_0000).is_ok());
        assert!(expect_data_abort(Some(abort), 0x4008_1238, 0x0900_0000).is_err(), "other PC");
        assert!(expect_data_abort(Some(abort), 0x4008_1234, 0x0900_0008).is_err(), "other address");
        let no_far = Recorded { esr: DATA_ABORT_EXTERNAL_NO_FAR, far: 0, ..abort };
        assert!(expect_data_abort(Some(no_far), 0x4008_1234, 0x0900_0000).is_ok(), "FAR not valid");
        let translation = Recorded { esr: 0x9600_0004, ..abort };
        assert!(expect_data_abort(Some(translation), 0x4008_1234, 0x0900_0000).is_err());
        let undefined = Recorded { esr: UNDEFINED, ..abort };
        assert!(expect_data_abort(Some(undefined), 0x4008_1234, 0x0900_0000).is_err());
        assert_eq!(expect_data_abort(None, 0, 0).unwrap_err().as_str(), "no exception");
    }

    #[test]
    fn undefined_expectations() {
        let undefined = Recorded { esr: UNDEFINED, far: 0, elr: 0x4008_0100 };
        assert!(expect_undefined(Some(undefined), 0x4008_0100).is_ok());
        assert!(expect_undefined(Some(undefined), 0x4008_0104).is_err());
        let abort = Recorded { esr: DATA_ABORT_EXTERNAL, ..undefined };
        let detail = expect_undefined(Some(abort), 0x4008_0100).unwrap_err();
        assert_eq!(detail.as_str(), "exception class: expected 0x0, got 0x25");
    }

    #[test]
    fn ticks_convert_without_overflow() {
        assert_eq!(ticks(62_500_000, 2000), 125_000);
        assert_eq!(ticks(1_000_000_000, 1), 1000);
        assert_eq!(ticks(24_000_000, 1_000_000), 24_000_000);
        assert_eq!(ticks(1000, 1), 1, "never zero");
        let huge = u64::MAX / 3;
        assert_eq!(
            u128::from(ticks(huge, 2)),
            u128::from(huge) * 2 / 1_000_000,
            "exact past 64-bit products"
        );
    }

    #[test]
    fn nanoseconds_from_ticks() {
        assert_eq!(nanoseconds(62_500_000, 1), 16);
        assert_eq!(nanoseconds(62_500_000, 62_500_000), 1_000_000_000);
        assert_eq!(nanoseconds(1_000_000_000, u64::MAX), u64::MAX, "no overflow");
    }
}
