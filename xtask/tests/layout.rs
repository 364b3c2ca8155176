//! The physical layout and boot-info blob of the fixture system, built from hand-made ELFs:
//! allocations are disjoint and in RAM, and the blob parses back into the manifest's
//! objects.

use bootinfo::{BootInfo, cap_kind, map_flags};
use ipc::layout::{HEAP_BASE, IMAGE_BASE, IPC_BUFFER_VA, STACK_TOP};
use std::ops::Range;
use std::path::Path;
use xtask::layout::{self, Layout};
use xtask::manifest::{self, RAM_BASE, System};
use zerocopy::IntoBytes;

const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// A loadable segment of a test ELF.
struct Load<'a> {
    vaddr: u64,
    flags: u32,
    file: &'a [u8],
    memsz: u64,
}

/// A minimal little-endian AArch64 ELF64 executable with `loads` as PT_LOAD segments.
fn elf(entry: u64, loads: &[Load]) -> Vec<u8> {
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

fn demo_layout(system: &System) -> Layout {
    let elves = [("pinger", component_elf(&[0xaa; 0x1234])), ("ponger", component_elf(&[0xbb; 0x20]))];
    layout::build(system, KERNEL_END, &elves, 0x5eed).unwrap()
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
    let error = layout::build(system, KERNEL_END, elves, 0).err().expect("the layout was accepted");
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
         boot-info, images and allocations end at 0x4023_5000, and the kernel needs 16M free above that"
    );
}

#[test]
fn vms_are_not_built_yet() {
    let text = std::fs::read_to_string("tests/fixtures/demo/system.toml").unwrap()
        + "[[vm]]\nname = \"guest\"\nvcpus = [0]\nmemory = \"16M\"\nimage = \"guest.bin\"\nimage-format = \"binary\"\n\
           priority = 0\n";
    let system = manifest::parse(&text, Path::new("images/demo/system.toml")).unwrap();
    assert_eq!(
        build_error(&system, &[] as &[(&str, Vec<u8>)]),
        "images/demo/system.toml: vm \"guest\": VMs are not supported yet"
    );
}
