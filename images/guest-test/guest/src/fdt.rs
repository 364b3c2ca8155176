//! Just enough of the flattened device tree format to read `/chosen/bootargs` (and the
//! options guest-test takes from it) and to find a device node by `compatible`.
//!
//! The header holds big-endian 32-bit words: magic at 0, total size at 4, the structure
//! block's offset at 8 and the strings block's offset at 12. The structure block is a
//! sequence of 4-byte aligned tokens: BEGIN_NODE (name, NUL, padding), END_NODE,
//! PROP (length, name offset, value, padding), NOP and END.

/// The header's magic number.
pub const MAGIC: u32 = 0xd00d_feed;
/// Bytes of the header fields this module reads.
pub const HEADER_SIZE: usize = 16;

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

fn word(blob: &[u8], offset: usize) -> Option<u32> {
    let bytes = blob.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// The NUL-terminated string at `offset`, and its length without the NUL.
fn string_at(blob: &[u8], offset: usize) -> Option<(&str, usize)> {
    let rest = blob.get(offset..)?;
    let length = rest.iter().position(|&byte| byte == 0)?;
    Some((core::str::from_utf8(&rest[..length]).ok()?, length))
}

/// The total size a device tree header at the start of `header` declares, if it has the
/// magic number.
pub fn total_size(header: &[u8]) -> Option<usize> {
    (word(header, 0)? == MAGIC).then_some(word(header, 4)? as usize)
}

/// One token of the structure block, as [`walk`] hands it over.
enum Token<'b> {
    /// A node begins, with this name.
    Begin(&'b str),
    /// The innermost open node ends.
    End,
    /// A property of the innermost open node: its name and value.
    Property(&'b str, &'b [u8]),
}

/// Calls `visit` with each token of the structure block until it returns `Some`; `None`
/// at the end, or if the blob is malformed or truncated.
fn walk<'b, T>(blob: &'b [u8], mut visit: impl FnMut(Token<'b>) -> Option<T>) -> Option<T> {
    total_size(blob)?;
    let structure = word(blob, 8)? as usize;
    let strings = word(blob, 12)? as usize;
    let mut offset = structure;
    loop {
        let token = word(blob, offset)?;
        offset += 4;
        let token = match token {
            BEGIN_NODE => {
                let (name, length) = string_at(blob, offset)?;
                offset = (offset + length + 1).next_multiple_of(4);
                Token::Begin(name)
            }
            END_NODE => Token::End,
            PROP => {
                let length = word(blob, offset)? as usize;
                let name_offset = word(blob, offset + 4)? as usize;
                let value = offset + 8;
                offset = (value + length).next_multiple_of(4);
                Token::Property(string_at(blob, strings + name_offset)?.0, blob.get(value..value + length)?)
            }
            NOP => continue,
            END => return None,
            _ => return None,
        };
        if let Some(found) = visit(token) {
            return Some(found);
        }
    }
}

/// The `bootargs` property of the top-level `chosen` node, without its NUL.
pub fn bootargs(blob: &[u8]) -> Option<&str> {
    let mut depth = 0usize;
    let mut in_chosen = false;
    walk(blob, |token| match token {
        Token::Begin(name) => {
            depth += 1;
            in_chosen = depth == 2 && name == "chosen";
            None
        }
        Token::End => {
            depth = depth.saturating_sub(1);
            in_chosen = false;
            None
        }
        Token::Property("bootargs", value) if in_chosen => {
            core::str::from_utf8(value.strip_suffix(&[0]).unwrap_or(value)).ok()
        }
        Token::Property(..) => None,
    })
}

/// What a device node says about its device (the tree's cells as this guest's are: two
/// address and size cells, three interrupt cells).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceNode {
    /// The first `reg` entry: base and size.
    pub reg: (u64, u64),
    /// The first `interrupts` specifier: type (0 = SPI), number, flags.
    pub interrupts: [u32; 3],
}

/// The first node whose `compatible` list has `compatible` and that has `reg` and
/// `interrupts`.
pub fn device(blob: &[u8], compatible: &str) -> Option<DeviceNode> {
    let be64 = |bytes: &[u8]| bytes.try_into().ok().map(u64::from_be_bytes);
    let be32 = |bytes: &[u8]| bytes.try_into().ok().map(u32::from_be_bytes);
    let (mut matches, mut reg, mut interrupts) = (false, None, None);
    walk(blob, |token| match token {
        Token::Begin(_) => {
            (matches, reg, interrupts) = (false, None, None);
            None
        }
        Token::Property("compatible", value) => {
            matches = value.split(|&byte| byte == 0).any(|name| name == compatible.as_bytes());
            None
        }
        Token::Property("reg", value) => {
            reg = be64(value.get(0..8)?).zip(be64(value.get(8..16)?));
            None
        }
        Token::Property("interrupts", value) => {
            interrupts = Some([be32(value.get(0..4)?)?, be32(value.get(4..8)?)?, be32(value.get(8..12)?)?]);
            None
        }
        Token::Property(..) => None,
        Token::End if matches => Some(DeviceNode { reg: reg?, interrupts: interrupts? }),
        Token::End => None,
    })
}

/// Which optional groups of checks run, from the words of the command line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `gic`: the GIC checks (distributor, redistributors, CPU interface, timers).
    pub gic: bool,
    /// `its`: the ITS checks (they need the GIC checks' set-up, so imply `gic`).
    pub its: bool,
    /// `rtc`: the PL031 RTC's alarm interrupt (passed through; needs the GIC checks'
    /// set-up, so implies `gic`).
    pub rtc: bool,
    /// `msi`: the MSI test device (the hypervisor's; needs the ITS checks' set-up, so
    /// implies `its`).
    pub msi: bool,
}

impl Options {
    /// Every group bare metal on QEMU's own GIC has: all but the MSI test device, which
    /// only the hypervisor provides.
    pub const BARE_METAL: Self = Self { gic: true, its: true, rtc: true, msi: false };

    /// The options named by the words of `bootargs`; unknown words are ignored.
    pub fn parse(bootargs: &str) -> Self {
        let mut options = Self::default();
        for word in bootargs.split_ascii_whitespace() {
            match word {
                "gic" => options.gic = true,
                "its" => (options.gic, options.its) = (true, true),
                "rtc" => (options.gic, options.rtc) = (true, true),
                "msi" => (options.gic, options.its, options.msi) = (true, true, true),
                _ => {}
            }
        }
        options
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device tree blob built token by token.
    #[derive(Default)]
    struct Builder {
        structure: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        fn token(&mut self, token: u32) -> &mut Self {
            self.structure.extend(token.to_be_bytes());
            self
        }

        fn begin(&mut self, name: &str) -> &mut Self {
            self.token(BEGIN_NODE);
            self.structure.extend(name.as_bytes());
            self.structure.push(0);
            self.pad()
        }

        fn property(&mut self, name: &str, value: &[u8]) -> &mut Self {
            let name_offset = self.strings.len() as u32;
            self.strings.extend(name.as_bytes());
            self.strings.push(0);
            self.token(PROP).token(value.len() as u32).token(name_offset);
            self.structure.extend(value);
            self.pad()
        }

        fn pad(&mut self) -> &mut Self {
            while !self.structure.len().is_multiple_of(4) {
                self.structure.push(0);
            }
            self
        }

        fn blob(&mut self) -> Vec<u8> {
            self.token(END);
            let structure = 40u32;
            let strings = structure + self.structure.len() as u32;
            let total = strings + self.strings.len() as u32;
            let mut blob = Vec::new();
            for field in [MAGIC, total, structure, strings, 0, 0, 0, 0, 0, 0] {
                blob.extend(field.to_be_bytes());
            }
            blob.extend(&self.structure);
            blob.extend(&self.strings);
            blob
        }
    }

    #[test]
    fn finds_chosen_bootargs_past_other_nodes() {
        let blob = Builder::default()
            .begin("")
            .property("compatible", b"linux,dummy-virt\0")
            .begin("memory@40000000")
            .property("bootargs", b"not this one\0")
            .token(END_NODE)
            .token(NOP)
            .begin("chosen")
            .property("stdout-path", b"/pl011@9000000\0")
            .property("bootargs", b"gic its\0")
            .token(END_NODE)
            .token(END_NODE)
            .blob();
        assert_eq!(total_size(&blob), Some(blob.len()));
        assert_eq!(bootargs(&blob), Some("gic its"));
    }

    #[test]
    fn finds_a_device_by_compatible() {
        let mut reg = Vec::new();
        for value in [0x0901_0000u64, 0x1000] {
            reg.extend(value.to_be_bytes());
        }
        let interrupts: Vec<u8> = [0u32, 2, 4].iter().flat_map(|cell| cell.to_be_bytes()).collect();
        let blob = Builder::default()
            .begin("")
            .begin("pl011@9000000")
            .property("compatible", b"arm,pl011\0arm,primecell\0")
            .property("interrupts", &[0; 12])
            .property("reg", &[0; 16])
            .token(END_NODE)
            .begin("rtc@9010000")
            .property("compatible", b"arm,pl031\0arm,primecell\0")
            .property("reg", &reg)
            .property("interrupts", &interrupts)
            .token(END_NODE)
            .token(END_NODE)
            .blob();
        let rtc = DeviceNode { reg: (0x0901_0000, 0x1000), interrupts: [0, 2, 4] };
        assert_eq!(device(&blob, "arm,pl031"), Some(rtc));
        assert_eq!(device(&blob, "arm,primecell").map(|node| node.reg), Some((0, 0)), "the first match");
        assert_eq!(device(&blob, "arm,pl03"), None);
    }

    #[test]
    fn no_bootargs_no_magic_or_truncation_is_none() {
        let blob = Builder::default().begin("").begin("chosen").token(END_NODE).token(END_NODE).blob();
        assert_eq!(bootargs(&blob), None);
        let mut wrong = blob.clone();
        wrong[0] = 0;
        assert_eq!(total_size(&wrong), None);
        assert_eq!(bootargs(&wrong), None);
        let cut = Builder::default().begin("").begin("chosen").property("bootargs", b"gic\0").blob();
        assert_eq!(bootargs(&cut[..cut.len() - 12]), None);
    }

    #[test]
    fn options_from_words() {
        assert_eq!(Options::parse(""), Options::default());
        assert_eq!(Options::parse("console=ttyAMA0 gic"), Options { gic: true, ..Options::default() });
        assert_eq!(Options::parse("its"), Options { gic: true, its: true, ..Options::default() });
        assert_eq!(Options::parse("rtc"), Options { gic: true, rtc: true, ..Options::default() });
        assert_eq!(Options::parse("its rtc"), Options::BARE_METAL);
        assert_eq!(Options::parse("rtc msi"), Options { msi: true, ..Options::BARE_METAL });
        assert_eq!(Options::parse("gicx itsy"), Options::default());
    }
}
