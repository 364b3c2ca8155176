//! Helpers shared by the integration tests.

/// ELF segment flag: executable.
pub const PF_X: u32 = 1;
/// ELF segment flag: writable.
pub const PF_W: u32 = 2;
/// ELF segment flag: readable.
pub const PF_R: u32 = 4;

/// A loadable segment of a test ELF.
pub struct Load<'a> {
    /// Virtual and physical address.
    pub vaddr: u64,
    /// `PF_*` bits.
    pub flags: u32,
    /// Bytes in the file.
    pub file: &'a [u8],
    /// Size in memory (at least the file's).
    pub memsz: u64,
}

/// A minimal little-endian AArch64 ELF64 executable with `loads` as PT_LOAD segments
/// (each at the same virtual and physical address).
pub fn elf(entry: u64, loads: &[Load]) -> Vec<u8> {
    const HEADER: usize = 64;
    const PROGRAM_HEADER: usize = 56;
    let mut out = Vec::new();
    out.extend_from_slice(b"\x7fELF");
    out.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, System V ABI
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&entry.to_le_bytes());
    out.extend_from_slice(&(HEADER as u64).to_le_bytes()); // e_phoff
    out.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    out.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [HEADER, PROGRAM_HEADER, loads.len(), 64, 0, 0] {
        out.extend_from_slice(&(half as u16).to_le_bytes());
    }
    let mut offset = (HEADER + PROGRAM_HEADER * loads.len()) as u64;
    for load in loads {
        out.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        out.extend_from_slice(&load.flags.to_le_bytes());
        for word in [offset, load.vaddr, load.vaddr, load.file.len() as u64, load.memsz, 0x1000] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        offset += load.file.len() as u64;
    }
    for load in loads {
        out.extend_from_slice(load.file);
    }
    out
}
