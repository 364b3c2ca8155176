//! Console output: components' `DebugWrite` lines and the kernel's own lines.
//!
//! Every line a component prints starts with `[name] `, and its bytes other than
//! printable ASCII and tab become `?`: a carriage return, escape sequence or non-ASCII
//! line separator could otherwise make a component's text pass for a kernel line (which
//! starts with `[kernel] `). Each `DebugWrite` prints complete lines: every piece that
//! ends in a newline, and an unterminated last piece, is one line (the component runtime
//! writes a whole line per call). Each line reaches the platform in one write.

use crate::Platform;
use core::fmt;
use ipc::MAX_DEBUG_BYTES;

/// Longest thread name shown in full in a line prefix.
const NAME_CAPACITY: usize = 64;
/// Room for a whole console line: `[`, a name, `] `, the bytes of one `DebugWrite`, `\n`.
const OUTPUT_CAPACITY: usize = NAME_CAPACITY + MAX_DEBUG_BYTES + 4;

/// Prints the bytes of one `DebugWrite` by thread `name` as lines (see the module docs).
pub(super) fn component_lines(name: &str, bytes: &mut [u8], platform: &mut impl Platform) {
    if bytes.is_empty() {
        return;
    }
    for byte in bytes.iter_mut() {
        if !matches!(byte, b' '..=b'~' | b'\t' | b'\n') {
            *byte = b'?';
        }
    }
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for piece in bytes.split(|&byte| byte == b'\n') {
        let mut line = LineWriter::new();
        line.push(b"[");
        line.push(&name.as_bytes()[..name.len().min(NAME_CAPACITY)]);
        line.push(b"] ");
        line.push(piece);
        line.finish(platform);
    }
}

/// Prints one kernel line, `[kernel] ` followed by `args`.
pub(super) fn kernel_line(platform: &mut impl Platform, args: fmt::Arguments) {
    let mut line = LineWriter::new();
    line.push(b"[kernel] ");
    // Writing to a `LineWriter` never fails; it truncates instead.
    let _ = fmt::Write::write_fmt(&mut line, args);
    line.finish(platform);
}

/// Assembles one console line on the stack, truncating what does not fit.
struct LineWriter {
    len: usize,
    bytes: [u8; OUTPUT_CAPACITY],
}

impl LineWriter {
    fn new() -> Self {
        Self { len: 0, bytes: [0; OUTPUT_CAPACITY] }
    }

    /// Appends as much of `bytes` as fits before the final newline.
    fn push(&mut self, bytes: &[u8]) {
        let taken = bytes.len().min(OUTPUT_CAPACITY - 1 - self.len);
        self.bytes[self.len..self.len + taken].copy_from_slice(&bytes[..taken]);
        self.len += taken;
    }

    /// Ends the line and writes it.
    fn finish(mut self, platform: &mut impl Platform) {
        self.bytes[self.len] = b'\n';
        platform.console_write(&self.bytes[..=self.len]);
    }
}

impl fmt::Write for LineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}
