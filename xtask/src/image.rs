//! Assembles the bootable image: one ELF holding the kernel's loadable segments, the
//! boot-info blob and every component segment at the physical addresses the layout chose.
//! QEMU's `-kernel` loads each PT_LOAD at its physical address and jumps to the entry.

use anyhow::{Context, Result, bail};
use object::elf;
use object::read::elf::{ElfFile64, FileHeader, ProgramHeader};

/// One loadable piece of the image.
#[derive(Clone, Debug)]
pub struct LoadSegment {
    /// Physical (load) address.
    pub pa: u64,
    /// Virtual address recorded for debuggers.
    pub va: u64,
    /// Bytes stored in the file.
    pub data: Vec<u8>,
    /// Size in memory; bytes past `data` are zero.
    pub mem_size: u64,
    /// ELF `p_flags` (PF_R/PF_W/PF_X).
    pub flags: u32,
}

/// The kernel ELF's entry point and segments.
pub struct KernelImage {
    /// Physical entry address.
    pub entry: u64,
    /// Its PT_LOAD segments.
    pub segments: Vec<LoadSegment>,
}

impl KernelImage {
    /// Reads the kernel ELF.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let file = ElfFile64::<object::Endianness>::parse(bytes).context("parsing the kernel ELF")?;
        let endian = file.endian();
        let mut segments = Vec::new();
        for header in file.elf_program_headers() {
            if header.p_type(endian) != elf::PT_LOAD || header.p_memsz(endian) == 0 {
                continue;
            }
            let data = header.data(endian, bytes).ok().context("kernel segment outside the file")?;
            segments.push(LoadSegment {
                pa: header.p_paddr(endian),
                va: header.p_vaddr(endian),
                data: data.to_vec(),
                mem_size: header.p_memsz(endian),
                flags: header.p_flags(endian),
            });
        }
        if segments.is_empty() {
            bail!("the kernel ELF has no loadable segments");
        }
        Ok(Self { entry: file.elf_header().e_entry(endian), segments })
    }

    /// One past the highest physical byte the kernel occupies (its `.bss` included).
    pub fn end_pa(&self) -> u64 {
        self.segments.iter().map(|segment| segment.pa + segment.mem_size).max().unwrap_or(0)
    }
}

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const FILE_ALIGN: usize = 4096;

/// Writes an ELF64 executable with one PT_LOAD per segment and no section headers.
/// Fails if two segments overlap in physical memory.
pub fn write_elf(entry: u64, segments: &[LoadSegment]) -> Result<Vec<u8>> {
    let mut sorted: Vec<&LoadSegment> = segments.iter().collect();
    sorted.sort_by_key(|segment| segment.pa);
    for pair in sorted.windows(2) {
        if pair[0].pa + pair[0].mem_size.max(pair[0].data.len() as u64) > pair[1].pa {
            bail!("image segments overlap at physical {:#x} and {:#x}", pair[0].pa, pair[1].pa);
        }
    }

    let mut out = vec![0u8; EHDR_SIZE + PHDR_SIZE * segments.len()];
    let mut headers = Vec::with_capacity(segments.len());
    for segment in segments {
        out.resize(out.len().next_multiple_of(FILE_ALIGN), 0);
        headers.push(out.len() as u64);
        out.extend_from_slice(&segment.data);
    }

    let put16 =
        |out: &mut Vec<u8>, at: usize, value: u16| out[at..at + 2].copy_from_slice(&value.to_le_bytes());
    let put32 =
        |out: &mut Vec<u8>, at: usize, value: u32| out[at..at + 4].copy_from_slice(&value.to_le_bytes());
    let put64 =
        |out: &mut Vec<u8>, at: usize, value: u64| out[at..at + 8].copy_from_slice(&value.to_le_bytes());
    out[0..4].copy_from_slice(&elf::ELFMAG);
    out[4] = elf::ELFCLASS64;
    out[5] = elf::ELFDATA2LSB;
    out[6] = elf::EV_CURRENT;
    put16(&mut out, 16, elf::ET_EXEC);
    put16(&mut out, 18, elf::EM_AARCH64);
    put32(&mut out, 20, u32::from(elf::EV_CURRENT));
    put64(&mut out, 24, entry);
    put64(&mut out, 32, EHDR_SIZE as u64); // e_phoff
    put16(&mut out, 52, EHDR_SIZE as u16);
    put16(&mut out, 54, PHDR_SIZE as u16);
    put16(&mut out, 56, u16::try_from(segments.len()).context("too many segments")?);
    for (i, (segment, offset)) in segments.iter().zip(headers).enumerate() {
        let at = EHDR_SIZE + i * PHDR_SIZE;
        put32(&mut out, at, elf::PT_LOAD);
        put32(&mut out, at + 4, segment.flags);
        put64(&mut out, at + 8, offset);
        put64(&mut out, at + 16, segment.va);
        put64(&mut out, at + 24, segment.pa);
        put64(&mut out, at + 32, segment.data.len() as u64);
        put64(&mut out, at + 40, segment.mem_size.max(segment.data.len() as u64));
        put64(&mut out, at + 48, FILE_ALIGN as u64);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(pa: u64, data: &[u8], mem_size: u64) -> LoadSegment {
        LoadSegment { pa, va: pa, data: data.to_vec(), mem_size, flags: elf::PF_R }
    }

    #[test]
    fn written_image_parses_back_with_every_segment() {
        let segments = [segment(0x4010_0000, b"kernel", 0x2000), segment(0x4020_0000, b"blob", 4)];
        let bytes = write_elf(0x4010_0000, &segments).unwrap();
        let image = KernelImage::parse(&bytes).unwrap();
        assert_eq!(image.entry, 0x4010_0000);
        assert_eq!(image.segments.len(), 2);
        assert_eq!(image.segments[0].data, b"kernel");
        assert_eq!(image.segments[0].mem_size, 0x2000);
        assert_eq!(image.segments[1].pa, 0x4020_0000);
        assert_eq!(image.segments[1].data, b"blob");
        assert_eq!(image.end_pa(), 0x4020_0004);
    }

    #[test]
    fn overlapping_segments_are_refused() {
        let segments = [segment(0x4010_0000, b"kernel", 0x2000), segment(0x4010_1000, b"x", 1)];
        let error = write_elf(0, &segments).unwrap_err().to_string();
        assert!(error.contains("overlap"), "{error}");
    }
}
