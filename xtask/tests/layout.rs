//! The physical layout and boot-info blob of the fixture system, built from hand-made ELFs:
//! allocations are disjoint and in RAM, and the blob parses back into the manifest's
//! objects.

use bootinfo::{BootInfo, cap_kind, map_flags};
use ipc::layout::{HEAP_BASE, IMAGE_BASE, IPC_BUFFER_VA, STACK_TOP};
use std::ops::Range;
use std::path::Path;
use xtask::layout::{self, GuestFiles, Layout};
use xtask::manifest::{self, RAM_BASE, System};
use zerocopy::IntoBytes;

mod common;
use common::{Load, PF_R, PF_W, PF_X, elf};

/// A component ELF: code at the image base, data with `.bss` two pages above.
fn component_elf(code: &[u8]) -> Vec<u8> {
    elf(
        IMAGE_BASE + 0x10,
        &[
            Load { vaddr: IMAGE_BASE, flags: PF_R | PF_X, file: code, memsz: code.len() as u64 },
            Load { vaddr: IMAGE_BASE + 0x2010, flags: PF_R | PF_W, file: b"data", memsz: 0x1800 },
        ],
    )
}

fn demo() -> System {
    manifest::load(Path::new("tests/fixtures/demo/system.toml")).unwrap()
}

const KERNEL_END: u64 = 0x4012_3456;

/// The guest files of a system without VMs.
const NO_GUESTS: &[(&str, GuestFiles)] = &[];

fn demo_layout(system: &System) -> Layout {
    let elves = [("pinger", component_elf(&[0xaa; 0x1234])), ("ponger", component_elf(&[0xbb; 0x20]))];
    layout::build(system, KERNEL_END, &elves, NO_GUESTS, 0x5eed).unwrap()
}

/// The blob copied to 8-byte-aligned memory, as the kernel sees it.
fn aligned(blob: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; blob.len().div_ceil(8)];
    words.as_mut_bytes()[..blob.len()].copy_from_slice(blob);
    words
}

fn parse<'a>(words: &'a [u64], layout: &Layout) -> BootInfo<'a> {
    BootInfo::parse(&words.as_bytes()[..layout.blob.len()]).unwrap()
}

#[test]
fn allocations_are_disjoint_page_aligned_and_in_ram() {
    let system = demo();
    let layout = demo_layout(&system);
    assert_eq!(layout.blob_pa, 0x4020_0000);
    let words = aligned(&layout.blob);
    let info = parse(&words, &layout);

    let mut allocations: Vec<(Range<u64>, String)> = vec![
        (RAM_BASE..KERNEL_END, "kernel".into()),
        (layout.blob_pa..layout.blob_pa + layout.blob.len() as u64, "blob".into()),
    ];
    for segment in &layout.segments {
        assert_eq!(segment.pa % 0x1000, 0);
        assert_eq!(segment.data.len() % 0x1000, 0);
        allocations
            .push((segment.pa..segment.pa + segment.data.len() as u64, format!("segment {:#x}", segment.pa)));
    }
    for range in info.zero_ranges().unwrap() {
        assert_eq!((range.base % 0x1000, range.size % 0x1000), (0, 0));
        allocations.push((range.base..range.base + range.size, format!("zeroed {:#x}", range.base)));
    }
    for (i, (a, what_a)) in allocations.iter().enumerate() {
        assert!(a.end <= layout.free_base, "{what_a} ends above free_base");
        for (b, what_b) in &allocations[i + 1..] {
            assert!(a.end <= b.start || b.end <= a.start, "{what_a} overlaps {what_b}");
        }
    }
    let ram_end = RAM_BASE + system.memory;
    assert_eq!(layout.free_base % 0x1000, 0);
    assert!(layout.free_base + manifest::KERNEL_FREE_RESERVE <= ram_end);
    assert_eq!(info.header().free_base, layout.free_base);

    // Every RAM mapping lies inside a placed allocation; device memory is where the manifest says.
    for vspace in info.vspaces().unwrap() {
        for mapping in info.mappings(vspace.mappings).unwrap() {
            let pages = mapping.pa..mapping.pa + mapping.size;
            if mapping.flags & map_flags::DEVICE != 0 {
                assert_eq!((mapping.pa, mapping.size), (0x0901_0000, 0x1000));
                continue;
            }
            let inside = allocations
                .iter()
                .skip(2)
                .any(|(range, _)| range.start <= pages.start && pages.end <= range.end);
            assert!(inside, "mapping {:#x} -> {:#x} is outside every allocation", mapping.va, mapping.pa);
        }
    }
}

#[test]
fn blob_describes_the_manifest() {
    let system = demo();
    let layout = demo_layout(&system);
    let words = aligned(&layout.blob);
    let info = parse(&words, &layout);
    let header = info.header();
    assert_eq!((header.nonce, header.ram_base, header.ram_size), (0x5eed, RAM_BASE, 128 << 20));
    assert_eq!((header.cpu_count, header.timeslice_us), (2, 2000));
    assert_eq!(info.string(header.name).unwrap(), "demo");

    let names = |refs: Vec<bootinfo::StrRef>| -> Vec<String> {
        refs.into_iter().map(|name| info.string(name).unwrap().to_owned()).collect()
    };
    assert_eq!(names(info.endpoints().unwrap().iter().map(|e| e.name).collect()), ["ping", "faults"]);
    assert_eq!(names(info.notifications().unwrap().iter().map(|n| n.name).collect()), ["rtc-events"]);
    let irq = &info.irqs().unwrap()[0];
    assert_eq!((irq.intid, irq.notification, irq.badge, irq.edge, irq.cpu), (34, 0, 2, 0, 1));

    let tcbs = info.tcbs().unwrap();
    assert_eq!(names(tcbs.iter().map(|t| t.name).collect()), ["pinger", "ponger"]);
    let (pinger, ponger) = (&tcbs[0], &tcbs[1]);
    assert_eq!((pinger.priority, pinger.cpu, ponger.priority, ponger.cpu), (10, 0, 20, 1));
    assert_eq!((pinger.fault_endpoint, pinger.fault_badge, ponger.fault_endpoint), (1, 3, bootinfo::NONE));
    assert_eq!((pinger.bound_notification, ponger.bound_notification), (bootinfo::NONE, 0));
    for tcb in tcbs {
        assert_eq!((tcb.entry, tcb.stack_top), (IMAGE_BASE + 0x10, STACK_TOP));
    }

    let cap = |kind, rights, object, badge| bootinfo::Cap { kind, rights, _reserved: [0; 2], object, badge };
    use ipc::endpoint_rights::{CALL, RECV};
    assert_eq!(
        info.caps(pinger.caps).unwrap(),
        [cap(cap_kind::ENDPOINT, CALL, 0, 7), cap(cap_kind::CONTROL, 0, 0, 0)]
    );
    assert_eq!(
        info.caps(ponger.caps).unwrap(),
        [
            cap(cap_kind::ENDPOINT, RECV, 0, 0),
            cap(cap_kind::ENDPOINT, RECV, 1, 0),
            cap(cap_kind::NOTIFICATION, ipc::notification_rights::WAIT, 0, 0),
            cap(cap_kind::IRQ_HANDLER, 0, 0, 0),
        ]
    );

    let vspaces = info.vspaces().unwrap();
    assert_eq!((vspaces[0].asid, vspaces[1].asid), (1, 2));
    assert_eq!((pinger.vspace, ponger.vspace), (0, 1));
    let (rw, r, rx) =
        (map_flags::READ | map_flags::WRITE, map_flags::READ, map_flags::READ | map_flags::EXECUTE);
    let shape = |vspace: &bootinfo::VSpace| -> Vec<(u64, u64, u32)> {
        info.mappings(vspace.mappings).unwrap().iter().map(|m| (m.va, m.size, m.flags)).collect()
    };
    assert_eq!(
        shape(&vspaces[0]),
        [
            (IMAGE_BASE, 0x2000, rx),
            (IMAGE_BASE + 0x2000, 0x2000, rw),
            (STACK_TOP - 0x4000, 0x4000, rw),
            (IPC_BUFFER_VA, 0x1000, rw),
            (HEAP_BASE, 0x1_0000, rw),
            (0x4000_0000, 0x1_0000, rw),
        ]
    );
    assert_eq!(
        shape(&vspaces[1]),
        [
            (IMAGE_BASE, 0x1000, rx),
            (IMAGE_BASE + 0x2000, 0x2000, rw),
            (STACK_TOP - 0x8000, 0x8000, rw),
            (IPC_BUFFER_VA, 0x1000, rw),
            (0x5000_0000, 0x1000, rw | map_flags::DEVICE),
            (0x4000_0000, 0x1_0000, r),
        ]
    );
    let pinger_maps = info.mappings(vspaces[0].mappings).unwrap();
    let ponger_maps = info.mappings(vspaces[1].mappings).unwrap();
    assert_eq!(pinger.ipc_buffer, pinger_maps[3].pa);
    assert_eq!(ponger.ipc_buffer, ponger_maps[3].pa);
    // Both components see the same shared region.
    assert_eq!(pinger_maps[5].pa, ponger_maps[5].pa);
}

#[test]
fn segments_carry_file_bytes_at_their_page_offset_then_zeros() {
    let system = demo();
    let layout = demo_layout(&system);
    let pinger_code = &layout.segments[0].data;
    assert_eq!(pinger_code.len(), 0x2000);
    assert!(pinger_code[..0x1234].iter().all(|&b| b == 0xaa));
    assert!(pinger_code[0x1234..].iter().all(|&b| b == 0));
    let pinger_data = &layout.segments[1].data;
    assert_eq!(pinger_data.len(), 0x2000);
    assert_eq!(&pinger_data[0x10..0x14], b"data");
    assert!(pinger_data[..0x10].iter().chain(&pinger_data[0x14..]).all(|&b| b == 0));
    assert_eq!(layout.segments.len(), 4);
    assert_eq!(layout.segments[0].pa, layout.blob_pa + (layout.blob.len() as u64).next_multiple_of(0x1000));
}

fn build_error(system: &System, elves: &[(&str, Vec<u8>)]) -> String {
    let error =
        layout::build(system, KERNEL_END, elves, NO_GUESTS, 0).err().expect("the layout was accepted");
    format!("{error:#}")
}

#[test]
fn images_are_checked() {
    let system = demo();
    let good = component_elf(&[0; 16]);
    let with_pinger = |pinger: Vec<u8>| [("pinger", pinger), ("ponger", good.clone())];

    let wx =
        elf(IMAGE_BASE, &[Load { vaddr: IMAGE_BASE, flags: PF_R | PF_W | PF_X, file: &[0; 4], memsz: 4 }]);
    assert_eq!(
        build_error(&system, &with_pinger(wx)),
        "component \"pinger\": segment at 0x40_0000 is writable and executable"
    );

    let low = elf(0x1000, &[Load { vaddr: 0x1000, flags: PF_R | PF_X, file: &[0; 4], memsz: 4 }]);
    assert_eq!(
        build_error(&system, &with_pinger(low)),
        "component \"pinger\": segment at 0x1000: pages [0x1000, 0x2000) lie outside the image area [0x40_0000, \
         0x2000_0000)"
    );

    let into_heap = elf(
        IMAGE_BASE,
        &[
            Load { vaddr: HEAP_BASE - 0x1000, flags: PF_R | PF_W, file: &[], memsz: 0x2000 },
            Load { vaddr: IMAGE_BASE, flags: PF_R | PF_X, file: &[0; 4], memsz: 4 },
        ],
    );
    assert_eq!(
        build_error(&system, &with_pinger(into_heap)),
        "component \"pinger\": segment at 0x1fff_f000: pages [0x1fff_f000, 0x2000_1000) lie outside the image area \
         [0x40_0000, 0x2000_0000)"
    );

    let shared_page = elf(
        IMAGE_BASE,
        &[
            Load { vaddr: IMAGE_BASE, flags: PF_R | PF_X, file: &[0; 0x10], memsz: 0x10 },
            Load { vaddr: IMAGE_BASE + 0x800, flags: PF_R | PF_W, file: &[0; 0x10], memsz: 0x10 },
        ],
    );
    assert_eq!(
        build_error(&system, &with_pinger(shared_page)),
        "component \"pinger\": segment at 0x40_0800 shares pages with the segment at 0x40_0000: link components \
         with page-aligned segments"
    );

    let bad_entry =
        elf(0x50_0000, &[Load { vaddr: IMAGE_BASE, flags: PF_R | PF_X, file: &[0; 4], memsz: 4 }]);
    assert_eq!(
        build_error(&system, &with_pinger(bad_entry)),
        "component \"pinger\": entry point 0x50_0000 is not in an executable segment"
    );

    assert_eq!(
        build_error(&system, &with_pinger(b"#!/bin/sh\n".to_vec())),
        "component \"pinger\": not an ELF64 file: Invalid ELF header size or alignment"
    );
}

#[test]
fn every_component_needs_exactly_its_elf() {
    let system = demo();
    let elf = component_elf(&[0; 16]);
    assert_eq!(
        build_error(&system, &[("pinger", elf.clone())]),
        "component \"ponger\": no ELF was given for it"
    );
    assert_eq!(
        build_error(&system, &[("pinger", elf.clone()), ("ponger", elf.clone()), ("stray", elf)]),
        "no component \"stray\" in tests/fixtures/demo/system.toml"
    );
}

#[test]
fn ram_must_leave_room_for_the_kernel() {
    let mut system = demo();
    system.memory = 18 << 20;
    let elves = [("pinger", component_elf(&[0; 16])), ("ponger", component_elf(&[0; 16]))];
    assert_eq!(
        build_error(&system, &elves),
        "tests/fixtures/demo/system.toml: system \"demo\": RAM [0x4000_0000, 0x4120_0000) is too small: the kernel, \
         boot-info, images and allocations end at 0x4023_5000, and the kernel needs 16M free above that: set memory to \
         at least 19M"
    );
}

/// The VM fixture: a three-vCPU guest from a crate with an initrd, and a spare VM.
fn vm_system() -> System {
    manifest::load(Path::new("tests/fixtures/vm/system.toml")).unwrap()
}

/// The guest's ELF: code at 0x4008_0000, data and `.bss` from 0x4008_2100.
fn guest_elf() -> Vec<u8> {
    elf(
        0x4008_0000,
        &[
            Load { vaddr: 0x4008_0000, flags: PF_R | PF_X, file: &[0xcc; 0x1800], memsz: 0x1800 },
            Load { vaddr: 0x4008_2100, flags: PF_R | PF_W, file: b"data", memsz: 0x3000 },
        ],
    )
}

const INITRD: &[u8] = b"initial ramdisk\n";

fn vm_guests(guest: Vec<u8>, initrd: &[u8]) -> [(&'static str, GuestFiles); 2] {
    [
        ("guest", GuestFiles { image: guest, initrd: Some(initrd.to_vec()) }),
        ("spare", GuestFiles { image: vec![0, 0, 0, 0x14], initrd: None }),
    ]
}

fn vm_layout(system: &System) -> Layout {
    let elves = [("vgic", component_elf(&[0xaa; 0x100])), ("vmm", component_elf(&[0xbb; 0x100]))];
    layout::build(system, KERNEL_END, &elves, &vm_guests(guest_elf(), INITRD), 0x5eed).unwrap()
}

/// `len` bytes at physical `pa` as the image carries them (zeros where it carries nothing).
fn read(layout: &Layout, pa: u64, len: usize) -> Vec<u8> {
    (pa..pa + len as u64)
        .map(|at| {
            layout
                .segments
                .iter()
                .find(|segment| (segment.pa..segment.pa + segment.data.len() as u64).contains(&at))
                .map_or(0, |segment| segment.data[(at - segment.pa) as usize])
        })
        .collect()
}

#[test]
fn guest_ram_is_aligned_placed_after_the_components_and_zeroed_around_its_contents() {
    let system = vm_system();
    let layout = vm_layout(&system);
    let words = aligned(&layout.blob);
    let info = parse(&words, &layout);
    let vms = info.vms().unwrap();
    let zero_ranges = info.zero_ranges().unwrap();
    let components_zeroed = &zero_ranges[0];
    let mut previous_end = components_zeroed.base + components_zeroed.size;
    for (vm, manifest_vm) in vms.iter().zip(&system.vms) {
        let stage2 = info.mappings(vm.stage2).unwrap();
        assert_eq!(stage2.len(), 1);
        let ram = &stage2[0];
        let rwx = map_flags::READ | map_flags::WRITE | map_flags::EXECUTE;
        assert_eq!((ram.va, ram.size, ram.flags), (manifest_vm.ram_base, manifest_vm.memory, rwx));
        assert_eq!((vm.ram_ipa, vm.ram_size), (ram.va, ram.size));
        // 2 MiB aligned, after everything before it, below free_base.
        assert_eq!(ram.pa % (2 << 20), 0);
        assert!(ram.pa >= previous_end);
        assert!(ram.pa + ram.size <= layout.free_base);
        previous_end = ram.pa + ram.size;

        // The carried pages and the zeroed gaps tile guest RAM exactly.
        let host_ram = ram.pa..ram.pa + ram.size;
        let mut pieces: Vec<(u64, u64)> = layout
            .segments
            .iter()
            .filter(|segment| host_ram.contains(&segment.pa))
            .map(|segment| (segment.pa, segment.data.len() as u64))
            .chain(
                zero_ranges.iter().filter(|range| host_ram.contains(&range.base)).map(|r| (r.base, r.size)),
            )
            .collect();
        pieces.sort();
        let mut cursor = host_ram.start;
        for (pa, size) in pieces {
            assert_eq!(pa, cursor, "gap or overlap in the RAM of vm {}", manifest_vm.name);
            assert_eq!((pa % 0x1000, size % 0x1000), (0, 0));
            cursor = pa + size;
        }
        assert_eq!(cursor, host_ram.end);
    }
    assert!(layout.free_base + manifest::KERNEL_FREE_RESERVE <= RAM_BASE + system.memory);
    // The vgic component maps all of the first VM's RAM, rw, as normal memory.
    let guest_ram = info.mappings(vms[0].stage2).unwrap()[0];
    let vgic_vspace = &info.vspaces().unwrap()[info.tcbs().unwrap()[0].vspace as usize];
    let vgic_maps = info.mappings(vgic_vspace.mappings).unwrap();
    let mapped = vgic_maps.iter().find(|mapping| mapping.va == 0x1_0000_0000).expect("the vm-ram map");
    let rw = map_flags::READ | map_flags::WRITE;
    assert_eq!((mapped.pa, mapped.size, mapped.flags), (guest_ram.pa, guest_ram.size, rw));
}

#[test]
fn vm_records_describe_the_manifest() {
    let system = vm_system();
    let layout = vm_layout(&system);
    let words = aligned(&layout.blob);
    let info = parse(&words, &layout);
    let vms = info.vms().unwrap();
    assert_eq!(vms.len(), 2);
    let (guest, spare) = (&vms[0], &vms[1]);
    assert_eq!(info.string(guest.name).unwrap(), "guest");
    assert_eq!((guest.vmid, guest.unclaimed_abort, guest.fault_endpoint, guest.fault_badge), (1, 1, 1, 5));
    assert_eq!((guest.ram_ipa, guest.ram_size), (0x4000_0000, 32 << 20));
    assert_eq!(info.string(spare.name).unwrap(), "spare");
    assert_eq!((spare.vmid, spare.unclaimed_abort, spare.fault_endpoint, spare.fault_badge), (2, 0, 1, 0));
    assert_eq!((spare.ram_ipa, spare.ram_size), (0x8000_0000, 4 << 20));

    let routes: Vec<(u64, u64, u32, u64)> =
        info.routes(guest.routes).unwrap().iter().map(|r| (r.ipa, r.size, r.endpoint, r.badge)).collect();
    assert_eq!(
        routes,
        [(0x0800_0000, 0x1_0000, 0, 1), (0x080A_0000, 0x6_0000, 0, 2), (0x0900_0000, 0x1000, 1, 3)]
    );
    assert!(info.routes(spare.routes).unwrap().is_empty());

    // The boot vCPU starts at the entry with the device tree in x0; the others wait.
    let vcpus = info.vcpus(guest.vcpus).unwrap();
    let dtb = vcpus[0].x0;
    let shape: Vec<_> = vcpus
        .iter()
        .map(|v| (v.vm, v.index, v.priority, v.cpu, v.mpidr, v.start_running, v.entry, v.x0))
        .collect();
    assert_eq!(
        shape,
        [(0, 0, 10, 0, 0, 1, 0x4008_0000, dtb), (0, 1, 10, 1, 1, 0, 0, 0), (0, 2, 10, 0, 2, 0, 0, 0)]
    );
    // The device tree sits in the last page of guest RAM.
    assert_eq!(dtb, 0x4000_0000 + (32 << 20) - 0x1000);
    let spare_vcpu = &info.vcpus(spare.vcpus).unwrap()[0];
    assert_eq!((spare_vcpu.vm, spare_vcpu.cpu, spare_vcpu.start_running), (1, 1, 1));
    assert_eq!((spare_vcpu.entry, spare_vcpu.x0), (0x8008_0000, 0x8000_0000 + (4 << 20) - 0x1000));
    assert_eq!(info.all_vcpus().unwrap().len(), 4);

    // VCPU caps index every VM's vCPUs together; the console cap has no object.
    let cap = |kind, rights, object| bootinfo::Cap { kind, rights, _reserved: [0; 2], object, badge: 0 };
    let recv = ipc::endpoint_rights::RECV;
    let tcbs = info.tcbs().unwrap();
    assert_eq!(
        info.caps(tcbs[0].caps).unwrap(),
        [
            cap(cap_kind::ENDPOINT, recv, 0),
            cap(cap_kind::VCPU, 0, 0),
            cap(cap_kind::VCPU, 0, 1),
            cap(cap_kind::VCPU, 0, 2)
        ]
    );
    assert_eq!(
        info.caps(tcbs[1].caps).unwrap(),
        [
            cap(cap_kind::ENDPOINT, recv, 1),
            cap(cap_kind::VCPU, 0, 0),
            cap(cap_kind::VCPU, 0, 0),
            cap(cap_kind::VCPU, 0, 1),
            cap(cap_kind::VCPU, 0, 2),
            cap(cap_kind::VCPU, 0, 3),
            cap(cap_kind::CONSOLE, 0, 0),
        ]
    );
}

#[test]
fn guest_ram_carries_the_image_initrd_and_device_tree() {
    let system = vm_system();
    let layout = vm_layout(&system);
    let words = aligned(&layout.blob);
    let info = parse(&words, &layout);
    let vm = &info.vms().unwrap()[0];
    let ram_pa = info.mappings(vm.stage2).unwrap()[0].pa;
    let pa = |ipa: u64| ram_pa + (ipa - 0x4000_0000);
    assert_eq!(read(&layout, pa(0x4008_0000), 0x1800), [0xcc; 0x1800]);
    assert_eq!(read(&layout, pa(0x4008_2100), 8), b"data\0\0\0\0");
    // `.bss` is not carried: the kernel zeroes it.
    assert!(read(&layout, pa(0x4008_2104), 0x2ffc).iter().all(|&b| b == 0));

    // The initrd lies right below the device tree, which names it.
    let dtb_ipa = info.vcpus(vm.vcpus).unwrap()[0].x0;
    let dtb = read(&layout, pa(dtb_ipa), 0x1000);
    let tree = fdt::Fdt::new(&dtb).unwrap();
    let chosen = tree.find_node("/chosen").unwrap();
    let cell = |name: &str| u64::from_be_bytes(chosen.property(name).unwrap().value.try_into().unwrap());
    let (start, end) = (cell("linux,initrd-start"), cell("linux,initrd-end"));
    assert_eq!((start, end), (dtb_ipa - 0x1000, dtb_ipa - 0x1000 + INITRD.len() as u64));
    assert_eq!(read(&layout, pa(start), INITRD.len()), INITRD);
    assert_eq!(chosen.property("bootargs").unwrap().as_str(), Some("console=ttyAMA0 earlycon"));

    // The spare VM's raw binary sits 512K into its RAM.
    let spare = &info.vms().unwrap()[1];
    let spare_pa = info.mappings(spare.stage2).unwrap()[0].pa;
    assert_eq!(read(&layout, spare_pa + 0x8_0000, 8), [0, 0, 0, 0x14, 0, 0, 0, 0]);
}

fn vm_build_error(system: &System, guests: &[(&str, GuestFiles)]) -> String {
    let elves = [("vgic", component_elf(&[0; 16])), ("vmm", component_elf(&[0; 16]))];
    let error = layout::build(system, KERNEL_END, &elves, guests, 0).err().expect("the layout was accepted");
    format!("{error:#}")
}

#[test]
fn guests_must_fit_their_ram_and_the_system_its_vms() {
    let system = vm_system();
    let big_initrd = vec![7; 32 << 20];
    let dtb_size = xtask::devicetree::build(&system.vms[0], Some(0..1)).unwrap().len();
    assert_eq!(
        vm_build_error(&system, &vm_guests(guest_elf(), &big_initrd)),
        format!(
            "tests/fixtures/vm/system.toml: vm \"guest\": memory 32M is too small: the image occupies [0x4008_0000, \
             0x4008_5100), and the initrd (32M) and the device tree ({dtb_size} bytes) need [0x3fff_f000, 0x4200_0000) \
             above it"
        )
    );
    let outside =
        elf(0x3000_0000, &[Load { vaddr: 0x3000_0000, flags: PF_R | PF_X, file: &[0; 4], memsz: 4 }]);
    assert_eq!(
        vm_build_error(&system, &vm_guests(outside, INITRD)),
        "tests/fixtures/vm/system.toml: vm \"guest\": segment at physical 0x3000_0000 [0x3000_0000, 0x3000_0004) does \
         not fit in guest RAM [0x4000_0000, 0x4200_0000)"
    );
    let [guest, _] = vm_guests(guest_elf(), INITRD);
    assert_eq!(
        vm_build_error(&system, &[guest]),
        "tests/fixtures/vm/system.toml: vm \"spare\": no guest image was given for it"
    );
    let mut guests = Vec::from(vm_guests(guest_elf(), INITRD));
    guests.push(("stray", GuestFiles { image: vec![1], initrd: None }));
    assert_eq!(vm_build_error(&system, &guests), "no vm \"stray\" in tests/fixtures/vm/system.toml");

    let mut small = vm_system();
    small.memory = 48 << 20;
    assert_eq!(
        vm_build_error(&small, &vm_guests(guest_elf(), INITRD)),
        "tests/fixtures/vm/system.toml: system \"vm\": RAM [0x4000_0000, 0x4300_0000) is too small: the kernel, \
             boot-info, images and allocations (VM RAM from 0x4040_0000) end at 0x4280_9000, and the kernel needs 16M \
         free above that: set memory to at least 57M"
    );
}
