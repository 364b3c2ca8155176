//! The physical layout of a system and its boot-info blob.
//!
//! RAM from the kernel's end upwards holds, in order: the blob at
//! `bootinfo::blob_address(kernel_end)`; each component's loadable ELF segments (page
//! aligned, bytes the final image carries); then zeroed memory: each component's stack,
//! IPC buffer page and heap, then each RAM memory region. The kernel zeroes that memory
//! at boot (one `zero_ranges` record covers it), so the image does not carry it. Then,
//! from the next 2 MiB boundary, each VM's guest RAM, contiguous and 2 MiB aligned: the
//! image carries the pages that hold its guest image, initrd and device tree
//! ([`crate::guest::prepare`]), and `zero_ranges` records cover the rest of it. Above
//! that, from `free_base`, the kernel allocates its page tables; at least
//! [`KERNEL_FREE_RESERVE`] must remain there.
//!
//! ```ignore
//! let layout = layout::build(&system, kernel_end, &[("pinger", elf_bytes)], &guests, nonce)?;
//! // one PT_LOAD for layout.blob at layout.blob_pa, one per layout.segments entry
//! ```

use crate::guest::{self, GuestRam};
use crate::manifest::{
    CapObject, KERNEL_FREE_RESERVE, Mapped, PAGE_SIZE, RAM_BASE, System, Trigger, Unclaimed, VM_RAM_ALIGN,
    hex, size_text,
};
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
    /// Component image segments, placed after the blob, then the non-zero pages of each
    /// VM's guest RAM.
    pub segments: Vec<Segment>,
    /// First physical byte above everything placed: the kernel's allocator starts here.
    pub free_base: u64,
}

/// The files of one VM's guest.
pub struct GuestFiles {
    /// The image, in the VM's `image-format`.
    pub image: Vec<u8>,
    /// The initrd, if the VM has one.
    pub initrd: Option<Vec<u8>>,
}

/// Lays out `system` after a kernel image ending at `kernel_end_pa`, given the ELF of
/// each component and the guest files of each VM by name, and builds its boot-info blob
/// carrying `nonce`.
pub fn build<N: AsRef<str>, E: AsRef<[u8]>, G: AsRef<str>>(
    system: &System,
    kernel_end_pa: u64,
    components: &[(N, E)],
    guests: &[(G, GuestFiles)],
    nonce: u64,
) -> anyhow::Result<Layout> {
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
    for (name, _) in guests {
        let name = name.as_ref();
        ensure!(system.vms.iter().any(|vm| vm.name == name), "no vm \"{name}\" in {}", system.path.display());
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
    let guest_rams = system
        .vms
        .iter()
        .map(|vm| {
            let context = || format!("{}: vm \"{}\"", system.path.display(), vm.name);
            let (_, files) = guests
                .iter()
                .find(|(name, _)| name.as_ref() == vm.name)
                .with_context(|| format!("{}: no guest image was given for it", context()))?;
            guest::prepare(vm, &files.image, files.initrd.as_deref()).with_context(context)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let vm_images: Vec<Vec<u8>> = guest_rams.iter().map(GuestRam::image).collect();
    let blob_pa = bootinfo::blob_address(kernel_end_pa);
    // The blob's size depends on the number of records and the names only, so a blob
    // built for any placement tells where the placement after it starts.
    let blob_size = blob(
        system,
        &images,
        &guest_rams,
        &Placement::new(system, &images, &vm_images, blob_pa),
        nonce,
    )
    .len() as u64;
    let placement =
        Placement::new(system, &images, &vm_images, (blob_pa + blob_size).next_multiple_of(PAGE_SIZE));
    let free = placement.free_base..ram.end;
    if free.start > ram.end || free.end - free.start < KERNEL_FREE_RESERVE {
        let needed = (placement.free_base + KERNEL_FREE_RESERVE - RAM_BASE).next_multiple_of(1 << 20);
        let vms = match system.vms.len() {
            0 => String::new(),
            _ => format!(" (VM RAM from {})", hex(placement.vm_ram.first().copied().unwrap_or_default())),
        };
        bail!(
            "{}: system \"{}\": RAM {} is too small: the kernel, boot-info, images and allocations{vms} end at {}, \
             and the kernel needs {} free above that: set memory to at least {}",
            system.path.display(),
            system.name,
            range_text(&ram),
            hex(placement.free_base),
            size_text(KERNEL_FREE_RESERVE),
            size_text(needed)
        );
    }
    let blob = blob(system, &images, &guest_rams, &placement, nonce);
    debug_assert_eq!(blob.len() as u64, blob_size);
    let component_segments = images
        .into_iter()
        .zip(&placement.segments)
        .flat_map(|(image, pas)| image.segments.into_iter().zip(pas))
        .map(|(segment, &pa)| Segment { pa, data: segment.data });
    let guest_segments =
        system.vms.iter().zip(guest_rams).zip(&placement.vm_ram).flat_map(|((vm, guest), &ram_pa)| {
            guest
                .contents
                .into_iter()
                .map(move |(ipa, data)| Segment { pa: ram_pa + (ipa - vm.ram_base), data })
        });
    let image_segments =
        vm_images.into_iter().zip(&placement.vm_images).map(|(data, &(pa, _))| Segment { pa, data });
    let segments = component_segments.chain(guest_segments).chain(image_segments).collect();
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
    /// Per VM, the physical base of its guest RAM.
    vm_ram: Vec<u64>,
    /// Per VM, the physical base and the page-rounded size of its image (its VMM's
    /// `VM_IMAGE`).
    vm_images: Vec<(u64, u64)>,
    free_base: u64,
}

impl Placement {
    /// Places everything from the page-aligned address `start` upwards.
    fn new(system: &System, images: &[Image], vm_images: &[Vec<u8>], start: u64) -> Placement {
        let mut cursor = start;
        let mut allocate = |size: u64, align: u64| {
            let pa = cursor.next_multiple_of(align);
            cursor = pa + size;
            pa
        };
        let segments = images
            .iter()
            .map(|image| image.segments.iter().map(|segment| allocate(segment.size(), PAGE_SIZE)).collect())
            .collect();
        let zeroed_start = allocate(0, PAGE_SIZE);
        let stacks =
            system.components.iter().map(|component| allocate(component.stack_size, PAGE_SIZE)).collect();
        let ipc_buffers = system.components.iter().map(|_| allocate(PAGE_SIZE, PAGE_SIZE)).collect();
        let heaps =
            system.components.iter().map(|component| allocate(component.heap_size, PAGE_SIZE)).collect();
        let regions = system
            .regions
            .iter()
            .map(|region| region.phys_addr.unwrap_or_else(|| allocate(region.size, PAGE_SIZE)))
            .collect();
        let zeroed = zeroed_start..allocate(0, PAGE_SIZE);
        let vm_ram = system.vms.iter().map(|vm| allocate(vm.memory, VM_RAM_ALIGN)).collect();
        let vm_images = vm_images
            .iter()
            .map(|image| {
                let size = (image.len() as u64).next_multiple_of(PAGE_SIZE);
                (allocate(size, PAGE_SIZE), size)
            })
            .collect();
        let free_base = allocate(0, PAGE_SIZE);
        Placement { segments, stacks, ipc_buffers, heaps, regions, zeroed, vm_ram, vm_images, free_base }
    }
}

/// The boot-info blob of `system` placed as `placement` says.
fn blob(
    system: &System,
    images: &[Image],
    guests: &[GuestRam],
    placement: &Placement,
    nonce: u64,
) -> Vec<u8> {
    use bootinfo::{Cap, Endpoint, Irq, Mapping, Notification, Range, Route, Tcb, Vcpu, Vm, cap_kind};
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
    // VCPU caps name vCPUs by their index among every VM's, in VM order.
    let first_vcpu: Vec<usize> = system
        .vms
        .iter()
        .scan(0, |next, vm| {
            let first = *next;
            *next += vm.cpus.len();
            Some(first)
        })
        .collect();
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
            let (pa, size, device) = match map.mapped {
                Mapped::Region(region) => {
                    let device = if system.regions[region].phys_addr.is_some() { DEVICE } else { 0 };
                    (placement.regions[region], map.size, device)
                }
                Mapped::VmRam(vm) => (placement.vm_ram[vm], map.size, 0),
                // The image, not all the room the map has for it.
                Mapped::VmImage(vm) => (placement.vm_images[vm].0, placement.vm_images[vm].1, 0),
            };
            mappings.push(mapping(map.vaddr, pa, size, map.perms.map_flags() | device));
        }
        let asid = u16::try_from(index + 1).expect("the manifest limits components to bootinfo::MAX_VSPACES");
        let vspace = builder.vspace(asid, &mappings);
        let caps: Vec<Cap> = component
            .caps
            .iter()
            .flat_map(|cap| {
                let (kind, objects, rights) = match cap.object {
                    CapObject::Endpoint { index, rights } => (cap_kind::ENDPOINT, index..index + 1, rights),
                    CapObject::Notification { index, rights } => {
                        (cap_kind::NOTIFICATION, index..index + 1, rights)
                    }
                    CapObject::Irq { index } => (cap_kind::IRQ_HANDLER, index..index + 1, 0),
                    CapObject::Control => (cap_kind::CONTROL, 0..1, 0),
                    CapObject::Vcpu { vm, index } => {
                        let vcpu = first_vcpu[vm] + index;
                        (cap_kind::VCPU, vcpu..vcpu + 1, 0)
                    }
                    CapObject::Vcpus { vm } => {
                        (cap_kind::VCPU, first_vcpu[vm]..first_vcpu[vm] + system.vms[vm].cpus.len(), 0)
                    }
                    CapObject::Console => (cap_kind::CONSOLE, 0..1, 0),
                };
                objects.map(move |object| Cap {
                    kind,
                    rights,
                    _reserved: [0; 2],
                    object: index_u32(object),
                    badge: cap.badge,
                })
            })
            .collect();
        let tcb = Tcb {
            name: builder.string(&component.name),
            priority: component.priority,
            cpu: u8::try_from(component.cpu).expect("the manifest limits CPUs to bootinfo::MAX_CPUS"),
            vspace,
            fault_endpoint: component.fault_endpoint.map_or(bootinfo::NONE, index_u32),
            fault_badge: component.fault_badge,
            bound_notification: component.bound_notification.map_or(bootinfo::NONE, index_u32),
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
    for (index, ((vm, guest), &ram_pa)) in system.vms.iter().zip(guests).zip(&placement.vm_ram).enumerate() {
        let vcpus: Vec<Vcpu> = vm
            .cpus
            .iter()
            .enumerate()
            .map(|(index, &cpu)| {
                let boot = index == 0;
                Vcpu {
                    index: u16::try_from(index).expect("the manifest limits vCPUs to bootinfo::MAX_VCPUS"),
                    priority: vm.priority,
                    cpu: u8::try_from(cpu).expect("the manifest limits CPUs to bootinfo::MAX_CPUS"),
                    mpidr: guest::mpidr(index),
                    start_running: u8::from(boot),
                    entry: if boot { guest.entry } else { 0 },
                    x0: if boot { guest.dtb } else { 0 },
                    ..Vcpu::default()
                }
            })
            .collect();
        let routes: Vec<Route> = vm
            .routes
            .iter()
            .map(|route| Route {
                ipa: route.base,
                size: route.size,
                endpoint: index_u32(route.endpoint),
                _reserved: 0,
                badge: route.badge,
            })
            .collect();
        let ram = mapping(vm.ram_base, ram_pa, vm.memory, READ | WRITE | EXECUTE);
        let record = Vm {
            name: builder.string(&vm.name),
            vmid: u16::try_from(index + 1).expect("the manifest limits VMs to bootinfo::MAX_VMS"),
            unclaimed_abort: u8::from(vm.unclaimed == Unclaimed::Abort),
            fault_endpoint: index_u32(vm.fault_endpoint),
            fault_badge: vm.fault_badge,
            vgic_endpoint: vm.vgic_endpoint.map_or(bootinfo::NONE, index_u32),
            vgic_badge: vm.vgic_badge,
            ram_ipa: vm.ram_base,
            ram_size: vm.memory,
            ..Vm::default()
        };
        // Passed-through device memory sits at its physical address in the guest too.
        let devices = vm.passthroughs.iter().filter_map(|passthrough| passthrough.device.as_ref());
        let devices =
            devices.map(|device| mapping(device.base, device.base, device.size, READ | WRITE | DEVICE));
        let stage2: Vec<_> = [ram].into_iter().chain(devices).collect();
        builder.vm(record, &vcpus, &routes, &stage2);
    }
    if !placement.zeroed.is_empty() {
        let zeroed = &placement.zeroed;
        builder.zero_range(Range { base: zeroed.start, size: zeroed.end - zeroed.start });
    }
    // Guest RAM is zero except for the pages the image carries.
    for ((vm, guest), &ram_pa) in system.vms.iter().zip(guests).zip(&placement.vm_ram) {
        let mut cursor = vm.ram_base;
        let ends = guest.contents.iter().map(|(ipa, data)| (*ipa, *ipa + data.len() as u64));
        for (start, end) in ends.chain([(vm.ram().end, vm.ram().end)]) {
            if cursor < start {
                builder.zero_range(Range { base: ram_pa + (cursor - vm.ram_base), size: start - cursor });
            }
            cursor = end;
        }
    }
    builder.finish()
}

/// An object index as boot-info stores it; the manifest's limits keep indices small.
fn index_u32(index: usize) -> u32 {
    u32::try_from(index).expect("object counts are limited by bootinfo::MAX_*")
}
