//! A fixed-size line buffer for formatting log lines without allocation.

/// Size of one console line, matching what one `DebugWrite` prints.
const CAPACITY: usize = ipc::MAX_DEBUG_BYTES;

/// Collects formatted text up to [`CAPACITY`] bytes; the rest is cut (never split inside
/// a UTF-8 character), keeping room for the final newline.
pub struct LineBuffer {
    bytes: [u8; CAPACITY],
    len: usize,
}

impl LineBuffer {
    /// An empty line.
    pub const fn new() -> Self {
        Self { bytes: [0; CAPACITY], len: 0 }
    }

    /// Ends the line with `\n` (replacing the last byte if the buffer is full).
    pub fn push_newline(&mut self) {
        if self.len == CAPACITY {
            self.len -= 1;
        }
        self.bytes[self.len] = b'\n';
        self.len += 1;
    }

    /// The text so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = CAPACITY - 1 - self.len.min(CAPACITY - 1);
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take -= 1;
        }
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    #[test]
    fn formats_and_terminates_a_line() {
        let mut line = LineBuffer::new();
        write!(line, "x={}", 5).unwrap();
        line.push_newline();
        assert_eq!(line.as_bytes(), b"x=5\n");
    }

    #[test]
    fn cuts_long_lines_on_a_character_boundary() {
        let mut line = LineBuffer::new();
        let long = "é".repeat(CAPACITY);
        line.write_str(&long).unwrap();
        line.push_newline();
        assert!(line.as_bytes().len() <= CAPACITY);
        assert_eq!(line.as_bytes().last(), Some(&b'\n'));
        assert!(core::str::from_utf8(line.as_bytes()).is_ok());
    }
}
