//! The machine a guest sees and what its RAM holds when it starts.
//!
//! The guest platform is a subset of QEMU's `virt` machine at the same addresses (GICv3
//! distributor, ITS and redistributors, a PL011 UART, the architected timer, PSCI over
//! HVC), so that software built for `virt` runs unchanged. The device tree
//! ([`crate::devicetree`]) describes exactly these devices; the manifest's routes say
//! which component emulates each.
//!
//! [`prepare`] loads a guest image as its format says, puts the initrd and the device tree
//! at the top of guest RAM, and returns the page-aligned contents of guest RAM with the
//! boot vCPU's entry point and `x0`:
//!
//! ```text
//! ram_base                                                              ram_base + memory
//! | image (binary: +0x80000; linux: +text_offset; elf: its addresses) ... | initrd | DTB |
//! ```

use crate::devicetree;
use crate::manifest::{ImageFormat, PAGE_SIZE, Vm, hex, size_text};
use anyhow::{Context, bail, ensure};
use object::elf::{EM_AARCH64, ET_EXEC, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _};
use object::{Endianness, Object as _};
use std::collections::BTreeMap;
use std::ops::Range;

/// Guest-physical base of the GIC distributor.
pub const GICD_BASE: u64 = 0x0800_0000;
/// Size of the GIC distributor's registers.
pub const GICD_SIZE: u64 = 0x1_0000;
/// Guest-physical base of the ITS.
pub const GITS_BASE: u64 = 0x0808_0000;
/// Size of the ITS's registers.
pub const GITS_SIZE: u64 = 0x2_0000;
/// Guest-physical base of the redistributors: one `RD_base` + `SGI_base` frame pair per
/// vCPU, in vCPU order.
pub const GICR_BASE: u64 = 0x080A_0000;
/// Size of one vCPU's redistributor frames.
pub const GICR_SIZE_PER_VCPU: u64 = 0x2_0000;
/// Guest-physical base of the PL011 UART.
pub const PL011_BASE: u64 = 0x0900_0000;
/// Size of the PL011's registers.
pub const PL011_SIZE: u64 = 0x1000;
/// Offset from the start of guest RAM at which a raw binary is loaded (as QEMU does).
pub const BINARY_OFFSET: u64 = 0x8_0000;

/// A device that the guest's device tree describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Device {
    /// What it is, for messages.
    pub name: &'static str,
    /// Guest-physical base of its registers.
    pub base: u64,
    /// Size of its registers.
    pub size: u64,
}

impl Device {
    /// Its guest-physical range.
    pub fn range(&self) -> Range<u64> {
        self.base..self.base + self.size
    }
}

/// The devices of a guest with `vcpus` vCPUs, in address order.
pub fn devices(vcpus: usize) -> [Device; 4] {
    [
        Device { name: "the GIC distributor (GICD)", base: GICD_BASE, size: GICD_SIZE },
        Device { name: "the ITS (GITS)", base: GITS_BASE, size: GITS_SIZE },
        redistributors(vcpus),
        Device { name: "the PL011 UART", base: PL011_BASE, size: PL011_SIZE },
    ]
}

/// The redistributors of a guest with `vcpus` vCPUs.
pub fn redistributors(vcpus: usize) -> Device {
    Device { name: "the redistributors (GICR)", base: GICR_BASE, size: GICR_SIZE_PER_VCPU * vcpus as u64 }
}

/// The MPIDR affinity of vCPU `index` (its VMPIDR_EL2 and device-tree `reg`): Aff0 is
/// `index % 16` and Aff1 `index / 16`, so that one GICv3 SGI target list (16 bits of
/// Aff0) reaches sixteen vCPUs.
pub fn mpidr(index: usize) -> u64 {
    (index % 16) as u64 | ((index / 16) as u64) << 8
}

/// The image format `bytes` look like: an ELF by its magic, a Linux arm64 `Image` by the
/// `ARM\x64` magic at offset 0x38, anything else a raw binary.
pub fn detect_format(bytes: &[u8]) -> ImageFormat {
    if bytes.starts_with(b"\x7fELF") {
        ImageFormat::Elf
    } else if bytes.get(LINUX_MAGIC_OFFSET..LINUX_MAGIC_OFFSET + 4) == Some(LINUX_MAGIC) {
        ImageFormat::Linux
    } else {
        ImageFormat::Binary
    }
}

/// Where the arm64 boot protocol's `Image` header keeps its magic number.
const LINUX_MAGIC_OFFSET: usize = 0x38;
const LINUX_MAGIC: &[u8] = b"ARM\x64";
/// `text_offset` of kernels older than Linux 3.17, whose header has an `image_size` of 0.
const LINUX_OLD_TEXT_OFFSET: u64 = 0x8_0000;

/// Guest RAM as the boot vCPU finds it.
#[derive(Debug)]
pub struct GuestRam {
    /// The boot vCPU's first instruction (guest-physical; the MMU is off).
    pub entry: u64,
    /// Guest-physical address of the device tree: the boot vCPU's `x0`.
    pub dtb: u64,
    /// Guest-physical range of the initrd, when there is one.
    pub initrd: Option<Range<u64>>,
    /// Non-zero contents: page-aligned runs of whole pages, by guest-physical address, in
    /// address order. The rest of guest RAM is zero.
    pub contents: Vec<(u64, Vec<u8>)>,
}

impl GuestRam {
    /// Its image (`ipc::vm_image`): the boot vCPU's entry and `x0`, then every run of
    /// [`GuestRam::contents`], which a VMM copies back when the guest resets.
    pub fn image(&self) -> Vec<u8> {
        let contents: Vec<(u64, &[u8])> =
            self.contents.iter().map(|(ipa, data)| (*ipa, data.as_slice())).collect();
        ipc::vm_image::pack(ipc::vm_image::Boot { entry: self.entry, x0: self.dtb }, &contents)
    }
}

/// Bytes to place in guest RAM, as one image format says.
struct LoadedImage<'a> {
    entry: u64,
    /// (guest-physical address, bytes) pieces; they do not overlap.
    pieces: Vec<(u64, &'a [u8])>,
    /// Guest-physical memory the running image occupies (its `.bss` included).
    footprint: Range<u64>,
}

/// Lays out `vm`'s RAM: its image, `initrd` and device tree.
pub fn prepare(vm: &Vm, image: &[u8], initrd: Option<&[u8]>) -> anyhow::Result<GuestRam> {
    let ram = vm.ram();
    let loaded = match vm.image_format {
        ImageFormat::Binary => load_binary(image, &ram)?,
        ImageFormat::Elf => load_elf(image, &ram)?,
        ImageFormat::Linux => load_linux(image, &ram)?,
    };
    let initrd_size = initrd.map_or(0, |bytes| bytes.len() as u64);
    // The tree's size depends on whether there is an initrd, not on where it is.
    let placeholder = initrd.map(|_| 0..initrd_size);
    let dtb_size = devicetree::build(vm, placeholder)?.len() as u64;
    let dtb = ram.end - dtb_size.next_multiple_of(PAGE_SIZE);
    let initrd_start = dtb - initrd_size.next_multiple_of(PAGE_SIZE);
    if loaded.footprint.end > initrd_start {
        let initrd_text = match initrd {
            Some(_) => format!("the initrd ({}) and ", size_text(initrd_size)),
            None => String::new(),
        };
        bail!(
            "memory {} is too small: the image occupies {}, and {initrd_text}the device tree ({} bytes) \
             need {} above it",
            size_text(vm.memory),
            range_text(&loaded.footprint),
            dtb_size,
            range_text(&(initrd_start..ram.end))
        );
    }
    let initrd_range = initrd.map(|_| initrd_start..initrd_start + initrd_size);
    let tree = devicetree::build(vm, initrd_range.clone())?;
    debug_assert_eq!(tree.len() as u64, dtb_size);

    let mut pages = Pages::default();
    for (ipa, bytes) in &loaded.pieces {
        pages.write(*ipa, bytes);
    }
    if let Some(initrd) = initrd {
        pages.write(initrd_start, initrd);
    }
    pages.write(dtb, &tree);
    Ok(GuestRam { entry: loaded.entry, dtb, initrd: initrd_range, contents: pages.runs() })
}

fn range_text(range: &Range<u64>) -> String {
    format!("[{}, {})", hex(range.start), hex(range.end))
}

/// Fails unless `footprint` lies in `ram`.
fn ensure_in_ram(what: &str, footprint: &Range<u64>, ram: &Range<u64>) -> anyhow::Result<()> {
    ensure!(
        ram.start <= footprint.start && footprint.end <= ram.end,
        "{what} {} does not fit in guest RAM {}",
        range_text(footprint),
        range_text(ram)
    );
    Ok(())
}

fn load_binary<'a>(image: &'a [u8], ram: &Range<u64>) -> anyhow::Result<LoadedImage<'a>> {
    ensure!(!image.is_empty(), "the image is empty");
    let start = ram.start + BINARY_OFFSET;
    let footprint = start..start.saturating_add(image.len() as u64);
    ensure_in_ram("the binary image, loaded at RAM + 0x8_0000,", &footprint, ram)?;
    Ok(LoadedImage { entry: start, pieces: vec![(start, image)], footprint })
}

fn load_linux<'a>(image: &'a [u8], ram: &Range<u64>) -> anyhow::Result<LoadedImage<'a>> {
    let header = |offset: usize| {
        image.get(offset..offset + 8).map(|bytes| u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    };
    ensure!(
        image.get(LINUX_MAGIC_OFFSET..LINUX_MAGIC_OFFSET + 4) == Some(LINUX_MAGIC),
        "not a Linux arm64 Image: no \"ARM\\x64\" magic at offset 0x38"
    );
    let (text_offset, image_size, flags) =
        (header(8).context("short header")?, header(16).context("short header")?, header(24).unwrap_or(0));
    ensure!(flags & 1 == 0, "the Linux Image is big-endian (header flags bit 0)");
    // Before Linux 3.17 the header had no size and the offset was fixed.
    let (text_offset, image_size) = match image_size {
        0 => (LINUX_OLD_TEXT_OFFSET, image.len() as u64),
        size => (text_offset, size.max(image.len() as u64)),
    };
    // `ram.start` is 2 MiB aligned (the manifest requires it), as the boot protocol
    // wants the base that `text_offset` counts from.
    let start = ram.start.checked_add(text_offset).context("text_offset overflows")?;
    let footprint = start..start.saturating_add(image_size);
    let what = format!("the Linux Image (text_offset {}, image_size {})", hex(text_offset), hex(image_size));
    ensure_in_ram(&what, &footprint, ram)?;
    Ok(LoadedImage { entry: start, pieces: vec![(start, image)], footprint })
}

fn load_elf<'a>(image: &'a [u8], ram: &Range<u64>) -> anyhow::Result<LoadedImage<'a>> {
    let elf = ElfFile64::<Endianness>::parse(image).context("not an ELF64 file")?;
    let endian = elf.endian();
    let header = elf.elf_header();
    ensure!(
        elf.is_little_endian() && header.e_machine(endian) == EM_AARCH64,
        "not a little-endian AArch64 ELF"
    );
    ensure!(header.e_type(endian) == ET_EXEC, "not a statically linked executable (ELF type ET_EXEC)");
    let mut pieces = Vec::new();
    let mut ranges: Vec<Range<u64>> = Vec::new();
    for program_header in elf.elf_program_headers() {
        let (paddr, memsz) = (program_header.p_paddr(endian), program_header.p_memsz(endian));
        if program_header.p_type(endian) != PT_LOAD || memsz == 0 {
            continue;
        }
        let what = format!("segment at physical {}", hex(paddr));
        let file = program_header
            .data(endian, image)
            .map_err(|_| anyhow::anyhow!("{what}: file bytes out of bounds"))?;
        ensure!(file.len() as u64 <= memsz, "{what}: file size exceeds memory size");
        let range = paddr..paddr.saturating_add(memsz);
        ensure_in_ram(&what, &range, ram)?;
        if let Some(other) = ranges.iter().find(|other| other.start < range.end && range.start < other.end) {
            bail!("{what} overlaps the segment at physical {}", hex(other.start));
        }
        ranges.push(range);
        pieces.push((paddr, file));
    }
    let entry = header.e_entry(endian);
    ensure!(
        ranges.iter().any(|range| range.contains(&entry)),
        "entry point {} is not in a loaded segment (guests start with the MMU off: link them at their \
         physical addresses)",
        hex(entry)
    );
    let start = ranges.iter().map(|range| range.start).min().unwrap_or(entry);
    let end = ranges.iter().map(|range| range.end).max().unwrap_or(entry);
    Ok(LoadedImage { entry, pieces, footprint: start..end })
}

/// Guest RAM contents page by page, so that pieces sharing a page merge.
#[derive(Default)]
struct Pages(BTreeMap<u64, Vec<u8>>);

impl Pages {
    fn write(&mut self, ipa: u64, mut bytes: &[u8]) {
        let mut at = ipa;
        while !bytes.is_empty() {
            let page = at - at % PAGE_SIZE;
            let offset = (at - page) as usize;
            let count = bytes.len().min(PAGE_SIZE as usize - offset);
            let contents = self.0.entry(page).or_insert_with(|| vec![0; PAGE_SIZE as usize]);
            contents[offset..offset + count].copy_from_slice(&bytes[..count]);
            bytes = &bytes[count..];
            at += count as u64;
        }
    }

    /// Contiguous pages joined into runs.
    fn runs(self) -> Vec<(u64, Vec<u8>)> {
        let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
        for (page, contents) in self.0 {
            match runs.last_mut() {
                Some((start, run)) if *start + run.len() as u64 == page => run.extend_from_slice(&contents),
                _ => runs.push((page, contents)),
            }
        }
        runs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_holds_the_boot_values_and_every_run() {
        let guest = GuestRam {
            entry: 0x4008_0000,
            dtb: 0x4fff_f000,
            initrd: None,
            contents: vec![(0x4008_0000, vec![1; 4096]), (0x4fff_f000, vec![2; 4096])],
        };
        let image = guest.image();
        let parsed = ipc::vm_image::VmImage::parse(&image).expect("a valid image");
        assert_eq!((parsed.boot.entry, parsed.boot.x0), (guest.entry, guest.dtb));
        let runs: Vec<(u64, Vec<u8>)> = parsed.runs().map(|(run, data)| (run.ipa, data.to_vec())).collect();
        assert_eq!(runs, guest.contents);
    }

    #[test]
    fn formats_are_detected_by_magic() {
        assert_eq!(detect_format(b"\x7fELF\x02\x01"), ImageFormat::Elf);
        let mut image = vec![0u8; 0x40];
        image[0x38..0x3c].copy_from_slice(b"ARM\x64");
        assert_eq!(detect_format(&image), ImageFormat::Linux);
        image[0x38] = b'X';
        assert_eq!(detect_format(&image), ImageFormat::Binary);
        assert_eq!(detect_format(b"ARM"), ImageFormat::Binary);
    }

    #[test]
    fn mpidr_puts_sixteen_vcpus_in_each_cluster() {
        assert_eq!([mpidr(0), mpidr(1), mpidr(15)], [0, 1, 15]);
        assert_eq!([mpidr(16), mpidr(17), mpidr(31)], [0x100, 0x101, 0x10f]);
    }

    #[test]
    fn pages_merge_pieces_and_join_runs() {
        let mut pages = Pages::default();
        pages.write(0x1ffe, &[1, 2, 3, 4]);
        pages.write(0x2002, &[5]);
        pages.write(0x5000, &[6]);
        let runs = pages.runs();
        assert_eq!(
            runs.iter().map(|(at, run)| (*at, run.len())).collect::<Vec<_>>(),
            [(0x1000, 0x2000), (0x5000, 0x1000)]
        );
        assert_eq!(&runs[0].1[0xffe..0x1003], &[1, 2, 3, 4, 5]);
        assert_eq!(runs[1].1[0], 6);
    }
}
