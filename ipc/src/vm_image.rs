//! The initial contents of a VM's RAM, as xtask places them read-only for the VM's VMM,
//! which copies them back over guest RAM when the guest resets (PSCI SYSTEM_RESET).
//!
//! Layout (little-endian 64-bit words, then bytes): [`MAGIC`]; the image's length in
//! bytes (so that a reader of a mapping rounded up to pages knows where it ends, see
//! [`length`]); the boot vCPU's entry point; its `x0` (the device tree's guest-physical address); the number of runs `n`;
//! `n` runs of [`RUN_WORDS`] words (guest-physical address, byte offset of its bytes
//! from the start of the image, length in bytes); then the runs' bytes. Guest RAM outside
//! the runs is zero at boot.

/// The first word: "VMIMAGE1" in ASCII.
pub const MAGIC: u64 = u64::from_le_bytes(*b"VMIMAGE1");
/// Words before the runs: magic, length, entry, `x0`, run count.
pub const HEADER_WORDS: usize = 5;
/// Words per run: guest-physical address, byte offset, length.
pub const RUN_WORDS: usize = 3;

/// How the boot vCPU starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boot {
    /// Its first instruction (guest-physical; the MMU is off).
    pub entry: u64,
    /// Its `x0`: the device tree's guest-physical address.
    pub x0: u64,
}

/// A run of non-zero guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Guest-physical address of its first byte.
    pub ipa: u64,
    /// Offset of its bytes from the start of the image.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

/// The image that starts the boot vCPU as `boot` says with guest RAM holding `contents`
/// (guest-physical address and bytes of each run): what xtask writes and the VMM reads.
#[cfg(any(test, feature = "alloc"))]
pub fn pack(boot: Boot, contents: &[(u64, &[u8])]) -> alloc::vec::Vec<u8> {
    let mut offset = (8 * (HEADER_WORDS + RUN_WORDS * contents.len())) as u64;
    let runs = contents.iter().map(|(ipa, data)| {
        let run = [*ipa, offset, data.len() as u64];
        offset += data.len() as u64;
        run
    });
    let run_words: alloc::vec::Vec<u64> = runs.flatten().collect();
    let header = [MAGIC, offset, boot.entry, boot.x0, contents.len() as u64];
    let mut image: alloc::vec::Vec<u8> =
        header.iter().chain(&run_words).flat_map(|word| word.to_le_bytes()).collect();
    contents.iter().for_each(|(_, data)| image.extend_from_slice(data));
    image
}

/// The length of the image whose first two words are `first_words`, if the magic is
/// right.
pub fn length(first_words: [u64; 2]) -> Option<u64> {
    (first_words[0] == MAGIC).then_some(first_words[1])
}

/// Word `index` of `bytes`, if it is there.
fn word(bytes: &[u8], index: usize) -> Option<u64> {
    let start = index.checked_mul(8)?;
    Some(u64::from_le_bytes(bytes.get(start..start.checked_add(8)?)?.try_into().ok()?))
}

/// A parsed image: its boot values and runs, each checked to lie inside the image.
#[derive(Clone, Copy, Debug)]
pub struct VmImage<'a> {
    bytes: &'a [u8],
    /// How the boot vCPU starts.
    pub boot: Boot,
    runs: usize,
}

impl<'a> VmImage<'a> {
    /// Parses `bytes`; `None` if the magic or the length is wrong or a run lies outside
    /// the image.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        if length([word(bytes, 0)?, word(bytes, 1)?])? != bytes.len() as u64 {
            return None;
        }
        let boot = Boot { entry: word(bytes, 2)?, x0: word(bytes, 3)? };
        let image = Self { bytes, boot, runs: usize::try_from(word(bytes, 4)?).ok()? };
        for index in 0..image.runs {
            let run = image.run(index)?;
            image.bytes_of(&run)?;
        }
        Some(image)
    }

    /// The runs and their bytes, in image order.
    pub fn runs(&self) -> impl Iterator<Item = (Run, &'a [u8])> + '_ {
        (0..self.runs).filter_map(|index| {
            let run = self.run(index)?;
            Some((run, self.bytes_of(&run)?))
        })
    }

    /// Run `index`'s header words.
    fn run(&self, index: usize) -> Option<Run> {
        let base = HEADER_WORDS.checked_add(index.checked_mul(RUN_WORDS)?)?;
        Some(Run {
            ipa: word(self.bytes, base)?,
            offset: word(self.bytes, base + 1)?,
            length: word(self.bytes, base + 2)?,
        })
    }

    /// The bytes of `run`, if they lie inside the image.
    fn bytes_of(&self, run: &Run) -> Option<&'a [u8]> {
        let start = usize::try_from(run.offset).ok()?;
        self.bytes.get(start..start.checked_add(usize::try_from(run.length).ok()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_parses_back_into_its_boot_values_and_runs() {
        let boot = Boot { entry: 0x4008_0000, x0: 0x4ff0_0000 };
        let bytes = pack(boot, &[(0x4008_0000, b"code"), (0x4ff0_0000, b"tree!")]);
        let parsed = VmImage::parse(&bytes).expect("a valid image");
        assert_eq!(parsed.boot, boot);
        let runs: Vec<(u64, &[u8])> = parsed.runs().map(|(run, data)| (run.ipa, data)).collect();
        assert_eq!(runs, [(0x4008_0000, &b"code"[..]), (0x4ff0_0000, &b"tree!"[..])]);
    }

    #[test]
    fn a_wrong_magic_or_a_run_past_the_end_is_refused() {
        let boot = Boot { entry: 1, x0: 2 };
        let mut bytes = pack(boot, &[(0x4000_0000, b"data")]);
        assert!(VmImage::parse(&bytes[..bytes.len() - 1]).is_none(), "the image is cut short");
        let long_length = bytes.len() as u64 + 1;
        bytes[8..16].copy_from_slice(&long_length.to_le_bytes());
        bytes.push(0);
        assert!(VmImage::parse(&bytes).is_some(), "the length fits again");
        bytes[HEADER_WORDS * 8 + 16..HEADER_WORDS * 8 + 24].copy_from_slice(&long_length.to_le_bytes());
        assert!(VmImage::parse(&bytes).is_none(), "the run is longer than the image");
        assert!(VmImage::parse(&bytes[..20]).is_none(), "the header is cut short");
        bytes[0] ^= 1;
        assert!(VmImage::parse(&bytes).is_none());
    }
}
