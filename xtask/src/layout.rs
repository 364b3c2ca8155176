//! The physical layout of a system and its boot-info blob.
//!
//! RAM from the kernel's end upwards holds, in order: the blob at
//! `bootinfo::blob_address(kernel_end)`; each component's loadable ELF segments (page
//! aligned, bytes the final image carries); then zeroed memory: each component's stack,
//! IPC buffer page and heap, then each RAM memory region. The kernel zeroes that memory
//! at boot (one `zero_ranges` record covers it), so the image does not carry it. Above
//! it, from `free_base`, the kernel allocates its page tables; at least
//! [`KERNEL_FREE_RESERVE`] must remain there.
//!
//! ```ignore
//! let layout = layout::build(&system, kernel_end, &[("pinger", elf_bytes)], nonce)?;
//! // one PT_LOAD for layout.blob at layout.blob_pa, one per layout.segments entry
//! ```

use crate::manifest::{CapObject, KERNEL_FREE_RESERVE, PAGE_SIZE, RAM_BASE, System, Trigger, hex, size_text};
use anyhow::{Context, bail, ensure};
use bootinfo::map_flags::{DEVICE, EXECUTE, READ, WRITE};
use bootinfo::writer::Builder;
use ipc::layout::{HEAP_BASE, IMAGE_BASE, IPC_BUFFER_VA, STACK_TOP};
use object::elf::{EM_AARCH64, ET_EXEC, PF_R, PF_W, PF_X, PT_LOAD};
use object::read::elf::{ElfFile64, FileHeader as _, ProgramHeader as _};
use object::{Endianness, Object as _};
use std::ops::Range;

/// Bytes to load at a physical address.
pub struct Segment {
    /// Physical load address, page aligned.
    pub pa: u64,
    /// Contents; the length is a multiple of the page size.
    pub data: Vec<u8>,
}

/// Everything the final image must contain besides the kernel.
pub struct Layout {
    /// Physical address of the blob (`bootinfo::blob_address` of the kernel's end).
    pub blob_pa: u64,
    /// The boot-info blob.
    pub blob: Vec<u8>,
    /// Component image segments, placed after the blob.
    pub segments: Vec<Segment>,
    /// First physical byte above everything placed: the kernel's allocator starts here.
    pub free_base: u64,
}

/// Lays out `system` after a kernel image ending at `kernel_end_pa`, given the ELF of
/// each component by name, and builds its boot-info blob carrying `nonce`.
pub fn build<N: AsRef<str>, E: AsRef<[u8]>>(
    system: &System,
    kernel_end_pa: u64,
    components: &[(N, E)],
    nonce: u64,
) -> anyhow::Result<Layout> {
    if let Some(vm) = system.vms.first() {
        bail!("{}: vm \"{}\": VMs are not supported yet", system.path.display(), vm.name);
    }
    let ram = RAM_BASE..RAM_BASE + system.memory;
    ensure!(
        ram.start < kernel_end_pa && kernel_end_pa <= ram.end,
        "the kernel's end {} is not in RAM {}",
        hex(kernel_end_pa),
        range_text(&ram)
    );
    for (name, _) in components {
        let name = name.as_ref();
        ensure!(
            system.components.iter().any(|c| c.name == name),
            "no component \"{name}\" in {}",
            system.path.display()
        );
    }
    let images = system
        .components
        .iter()
        .map(|component| {
            let elf = components
                .iter()
                .find(|(name, _)| name.as_ref() == component.name)
                .with_context(|| format!("component \"{}\": no ELF was given for it", component.name))?;
            Image::parse(elf.1.as_ref()).with_context(|| format!("component \"{}\"", component.name))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let blob_pa = bootinfo::blob_address(kernel_end_pa);
    // The blob's size depends on the number of records and the names only, so a blob
    // built for any placement tells where the placement after it starts.
    let blob_size = blob(system, &images, &Placement::new(system, &images, blob_pa), nonce).len() as u64;
    let placement = Placement::new(system, &images, (blob_pa + blob_size).next_multiple_of(PAGE_SIZE));
    let free = placement.free_base..ram.end;
    if free.start > ram.end || free.end - free.start < KERNEL_FREE_RESERVE {
        bail!(
            "{}: system \"{}\": RAM {} is too small: the kernel, boot-info, images and allocations end at {}, \
             and the kernel needs {} free above that",
            system.path.display(),
            system.name,
            range_text(&ram),
            hex(placement.free_base),
            size_text(KERNEL_FREE_RESERVE)
        );
    }
    let blob = blob(system, &images, &placement, nonce);
    debug_assert_eq!(blob.len() as u64, blob_size);
    let segments = images
        .into_iter()
        .zip(&placement.segments)
        .flat_map(|(image, pas)| image.segments.into_iter().zip(pas))
        .map(|(segment, &pa)| Segment { pa, data: segment.data })
        .collect();
    Ok(Layout { blob_pa, blob, segments, free_base: placement.free_base })
}

fn range_text(range: &Range<u64>) -> String {
    format!("[{}, {})", hex(range.start), hex(range.end))
}

/// A loadable segment of a component, widened to whole pages.
struct ImageSegment {
    /// Virtual address of its first page.
    va: u64,
    /// Page-aligned contents: file bytes at their page offset, zeros elsewhere.
    data: Vec<u8>,
    /// `bootinfo::map_flags` bits.
    flags: u32,
}

/// A component's ELF, checked and cut into pages.
struct Image {
    entry: u64,
    segments: Vec<ImageSegment>,
}

impl Image {
    fn parse(bytes: &[u8]) -> anyhow::Result<Image> {
        let elf = ElfFile64::<Endianness>::parse(bytes).context("not an ELF64 file")?;
        let endian = elf.endian();
        let header = elf.elf_header();
        ensure!(
            elf.is_little_endian() && header.e_machine(endian) == EM_AARCH64,
            "not a little-endian AArch64 ELF"
        );
        ensure!(header.e_type(endian) == ET_EXEC, "not a statically linked executable (ELF type ET_EXEC)");
        let mut segments: Vec<ImageSegment> = Vec::new();
        for program_header in elf.elf_program_headers() {
            let (vaddr, memsz) = (program_header.p_vaddr(endian), program_header.p_memsz(endian));
            if program_header.p_type(endian) != PT_LOAD || memsz == 0 {
                continue;
            }
            let what = format!("segment at {}", hex(vaddr));
            let p_flags = program_header.p_flags(endian);
            ensure!(p_flags & PF_W == 0 || p_flags & PF_X == 0, "{what} is writable and executable");
            let file = program_header
                .data(endian, bytes)
                .map_err(|_| anyhow::anyhow!("{what}: file bytes out of bounds"))?;
            ensure!(file.len() as u64 <= memsz, "{what}: file size exceeds memory size");
            let start = vaddr - vaddr % PAGE_SIZE;
            let end = vaddr.checked_add(memsz).map(|end| end.next_multiple_of(PAGE_SIZE));
            let pages = start..end.unwrap_or(u64::MAX);
            ensure!(
                IMAGE_BASE <= pages.start && pages.end <= HEAP_BASE,
                "{what}: pages {} lie outside the image area {}",
                range_text(&pages),
                range_text(&(IMAGE_BASE..HEAP_BASE))
            );
            if let Some(other) =
                segments.iter().find(|other| other.va < pages.end && pages.start < other.va + other.size())
            {
                bail!(
                    "{what} shares pages with the segment at {}: link components with page-aligned segments",
                    hex(other.va)
                );
            }
            let mut data = vec![0; (pages.end - pages.start) as usize];
            let offset = (vaddr - start) as usize;
            data[offset..offset + file.len()].copy_from_slice(file);
            let flags = [(PF_R, READ), (PF_W, WRITE), (PF_X, EXECUTE)]
                .iter()
                .filter(|(elf_flag, _)| p_flags & elf_flag != 0)
                .fold(0, |flags, (_, flag)| flags | flag);
            segments.push(ImageSegment { va: start, data, flags });
        }
        let entry = header.e_entry(endian);
        ensure!(
            segments.iter().any(|s| s.flags & EXECUTE != 0 && (s.va..s.va + s.size()).contains(&entry)),
            "entry point {} is not in an executable segment",
            hex(entry)
        );
        Ok(Image { entry, segments })
    }
}

impl ImageSegment {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Physical addresses of everything placed in RAM, indexed like the system's components
/// and regions.
struct Placement {
    /// Per component, the address of each image segment.
    segments: Vec<Vec<u64>>,
    stacks: Vec<u64>,
    ipc_buffers: Vec<u64>,
    heaps: Vec<u64>,
    /// Device regions at their own address, RAM regions where they were allocated.
    regions: Vec<u64>,
    /// The zeroed allocations (stacks, IPC buffers, heaps, RAM regions), contiguous.
    zeroed: Range<u64>,
    free_base: u64,
}

impl Placement {
    /// Places everything from the page-aligned address `start` upwards.
    fn new(system: &System, images: &[Image], start: u64) -> Placement {
        let mut cursor = start;
        let mut allocate = |size: u64| {
            let pa = cursor;
            cursor += size;
            pa
        };
        let segments = images
            .iter()
            .map(|image| image.segments.iter().map(|segment| allocate(segment.size())).collect())
            .collect();
        let zeroed_start = allocate(0);
        let stacks = system.components.iter().map(|component| allocate(component.stack_size)).collect();
        let ipc_buffers = system.components.iter().map(|_| allocate(PAGE_SIZE)).collect();
        let heaps = system.components.iter().map(|component| allocate(component.heap_size)).collect();
        let regions = system
            .regions
            .iter()
            .map(|region| region.phys_addr.unwrap_or_else(|| allocate(region.size)))
            .collect();
        let free_base = allocate(0);
        Placement {
            segments,
            stacks,
            ipc_buffers,
            heaps,
            regions,
            zeroed: zeroed_start..free_base,
            free_base,
        }
    }
}

/// The boot-info blob of `system` placed as `placement` says.
fn blob(system: &System, images: &[Image], placement: &Placement, nonce: u64) -> Vec<u8> {
    use bootinfo::{Cap, Endpoint, Irq, Mapping, Notification, Range, Tcb, cap_kind};
    let mapping = |va: u64, pa: u64, size: u64, flags: u32| Mapping { va, pa, size, flags, _reserved: 0 };
    let mut builder = Builder::new();
    builder.header.nonce = nonce;
    builder.header.ram_base = RAM_BASE;
    builder.header.ram_size = system.memory;
    builder.header.free_base = placement.free_base;
    builder.header.cpu_count = system.cpus;
    builder.header.timeslice_us = system.timeslice_us;
    if system.pmu_for_components {
        builder.header.flags |= bootinfo::header_flags::PMU_FOR_COMPONENTS;
    }
    builder.header.name = builder.string(&system.name);
    for (index, (component, image)) in system.components.iter().zip(images).enumerate() {
        let mut mappings: Vec<Mapping> = image
            .segments
            .iter()
            .zip(&placement.segments[index])
            .map(|(segment, &pa)| mapping(segment.va, pa, segment.size(), segment.flags))
            .collect();
        let stack = component.stack_size;
        mappings.push(mapping(STACK_TOP - stack, placement.stacks[index], stack, READ | WRITE));
        mappings.push(mapping(IPC_BUFFER_VA, placement.ipc_buffers[index], PAGE_SIZE, READ | WRITE));
        if component.heap_size > 0 {
            mappings.push(mapping(HEAP_BASE, placement.heaps[index], component.heap_size, READ | WRITE));
        }
        for map in &component.maps {
            let region = &system.regions[map.region];
            let device = if region.phys_addr.is_some() { DEVICE } else { 0 };
            mappings.push(mapping(
                map.vaddr,
                placement.regions[map.region],
                region.size,
                map.perms.map_flags() | device,
            ));
        }
        let asid = u16::try_from(index + 1).expect("the manifest limits components to bootinfo::MAX_VSPACES");
        let vspace = builder.vspace(asid, &mappings);
        let caps: Vec<Cap> = component
            .caps
            .iter()
            .map(|cap| {
                let (kind, object, rights) = match cap.object {
                    CapObject::Endpoint { index, rights } => (cap_kind::ENDPOINT, index, rights),
                    CapObject::Notification { index, rights } => (cap_kind::NOTIFICATION, index, rights),
                    CapObject::Irq { index } => (cap_kind::IRQ_HANDLER, index, 0),
                    CapObject::Control => (cap_kind::CONTROL, 0, 0),
                };
                Cap { kind, rights, _reserved: [0; 2], object: index_u32(object), badge: cap.badge }
            })
            .collect();
        let tcb = Tcb {
            name: builder.string(&component.name),
            priority: component.priority,
            cpu: u8::try_from(component.cpu).expect("the manifest limits CPUs to bootinfo::MAX_CPUS"),
            vspace,
            fault_endpoint: component.fault_endpoint.map_or(bootinfo::NONE, index_u32),
            fault_badge: component.fault_badge,
            entry: image.entry,
            stack_top: STACK_TOP,
            ipc_buffer: placement.ipc_buffers[index],
            ..Tcb::default()
        };
        builder.tcb(tcb, &caps);
    }
    for endpoint in &system.endpoints {
        let name = builder.string(&endpoint.name);
        builder.endpoint(Endpoint { name });
    }
    for notification in &system.notifications {
        let name = builder.string(&notification.name);
        builder.notification(Notification { name });
    }
    for irq in &system.irqs {
        builder.irq(Irq {
            intid: irq.intid,
            notification: index_u32(irq.notification),
            badge: irq.badge,
            edge: u8::from(irq.trigger == Trigger::Edge),
            cpu: u8::try_from(irq.cpu).expect("the manifest limits CPUs to bootinfo::MAX_CPUS"),
            _reserved: [0; 6],
        });
    }
    if !placement.zeroed.is_empty() {
        let zeroed = &placement.zeroed;
        builder.zero_range(Range { base: zeroed.start, size: zeroed.end - zeroed.start });
    }
    builder.finish()
}

/// An object index as boot-info stores it; the manifest's limits keep indices small.
fn index_u32(index: usize) -> u32 {
    u32::try_from(index).expect("object counts are limited by bootinfo::MAX_*")
}
