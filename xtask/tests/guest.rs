//! A guest's device tree, parsed back with the `fdt` crate node by node, and the loading of
//! each image format into guest RAM.

use fdt::Fdt;
use fdt::node::FdtNode;
use std::path::Path;
use xtask::guest::{self, GuestRam};
use xtask::manifest::{self, ImageFormat, Passthrough, PassthroughDevice, Trigger, Vm};
use xtask::{devicetree, manifest::System};

mod common;
use common::{Load, PF_R, PF_W, PF_X, elf};

/// The VM fixture's three-vCPU guest (RAM 0x4000_0000, 32M).
fn fixture() -> (System, Vm) {
    let system = manifest::load(Path::new("tests/fixtures/vm/system.toml")).unwrap();
    let vm = system.vms[0].clone();
    (system, vm)
}

fn node<'b, 'a>(tree: &'b Fdt<'a>, path: &str) -> FdtNode<'b, 'a> {
    tree.find_node(path).unwrap_or_else(|| panic!("no node {path}"))
}

fn raw<'a>(node: FdtNode<'_, 'a>, name: &str) -> &'a [u8] {
    node.property(name).unwrap_or_else(|| panic!("{}: no property {name}", node.name)).value
}

/// A property as big-endian 32-bit cells.
fn cells(node: FdtNode, name: &str) -> Vec<u32> {
    raw(node, name).chunks(4).map(|cell| u32::from_be_bytes(cell.try_into().unwrap())).collect()
}

/// A property as pairs of cells (64-bit values with two address and size cells).
fn u64s(node: FdtNode, name: &str) -> Vec<u64> {
    raw(node, name).chunks(8).map(|pair| u64::from_be_bytes(pair.try_into().unwrap())).collect()
}

/// A property as a list of strings.
fn strings<'a>(node: FdtNode<'_, 'a>, name: &str) -> Vec<&'a str> {
    let bytes = raw(node, name);
    std::str::from_utf8(bytes.strip_suffix(&[0]).unwrap()).unwrap().split('\0').collect()
}

/// The names of a node's properties, sorted.
fn property_names<'a>(node: FdtNode<'_, 'a>) -> Vec<&'a str> {
    let mut names: Vec<&str> = node.properties().map(|property| property.name).collect();
    names.sort();
    names
}

#[test]
fn the_device_tree_describes_the_guest_platform() {
    let (_, vm) = fixture();
    let blob = devicetree::build(&vm, Some(0x41ff_e000..0x41ff_e010)).unwrap();
    let tree = Fdt::new(&blob).unwrap();

    let root = node(&tree, "/");
    assert_eq!(
        property_names(root),
        ["#address-cells", "#size-cells", "compatible", "interrupt-parent", "model"]
    );
    assert_eq!(strings(root, "compatible"), ["linux,dummy-virt"]);
    assert_eq!(strings(root, "model"), ["guest (virtual machine)"]);
    assert_eq!((cells(root, "#address-cells"), cells(root, "#size-cells")), (vec![2], vec![2]));
    let mut children: Vec<&str> = root.children().map(|child| child.name).collect();
    children.sort();
    assert_eq!(
        children,
        ["apb-pclk", "chosen", "cpus", "intc@8000000", "memory@40000000", "pl011@9000000", "psci", "timer"]
    );

    let chosen = node(&tree, "/chosen");
    assert_eq!(property_names(chosen), ["bootargs", "linux,initrd-end", "linux,initrd-start", "stdout-path"]);
    assert_eq!(strings(chosen, "bootargs"), ["console=ttyAMA0 earlycon"]);
    assert_eq!(strings(chosen, "stdout-path"), ["/pl011@9000000"]);
    assert_eq!(tree.chosen().stdout().map(|uart| uart.name), Some("pl011@9000000"));
    assert_eq!(u64s(chosen, "linux,initrd-start"), [0x41ff_e000]);
    assert_eq!(u64s(chosen, "linux,initrd-end"), [0x41ff_e010]);

    let memory = node(&tree, "/memory@40000000");
    assert_eq!(property_names(memory), ["device_type", "reg"]);
    assert_eq!(strings(memory, "device_type"), ["memory"]);
    assert_eq!(u64s(memory, "reg"), [0x4000_0000, 32 << 20]);

    let cpus = node(&tree, "/cpus");
    assert_eq!((cells(cpus, "#address-cells"), cells(cpus, "#size-cells")), (vec![1], vec![0]));
    let cpu_names: Vec<&str> = cpus.children().map(|cpu| cpu.name).collect();
    assert_eq!(cpu_names, ["cpu@0", "cpu@1", "cpu@2"]);
    for (index, cpu) in cpus.children().enumerate() {
        assert_eq!(property_names(cpu), ["compatible", "device_type", "enable-method", "reg"]);
        assert_eq!(strings(cpu, "device_type"), ["cpu"]);
        assert_eq!(strings(cpu, "compatible"), ["arm,armv8"]);
        assert_eq!(strings(cpu, "enable-method"), ["psci"]);
        assert_eq!(cells(cpu, "reg"), [index as u32]);
    }

    let psci = node(&tree, "/psci");
    assert_eq!(property_names(psci), ["compatible", "method"]);
    assert_eq!(strings(psci, "compatible"), ["arm,psci-1.0", "arm,psci-0.2"]);
    assert_eq!(strings(psci, "method"), ["hvc"]);

    let gic = node(&tree, "/intc@8000000");
    assert_eq!(
        property_names(gic),
        [
            "#address-cells",
            "#interrupt-cells",
            "#redistributor-regions",
            "#size-cells",
            "compatible",
            "interrupt-controller",
            "interrupts",
            "phandle",
            "ranges",
            "reg"
        ]
    );
    assert_eq!(strings(gic, "compatible"), ["arm,gic-v3"]);
    assert_eq!(cells(gic, "#interrupt-cells"), [3]);
    assert_eq!((cells(gic, "#address-cells"), cells(gic, "#size-cells")), (vec![2], vec![2]));
    assert!(raw(gic, "ranges").is_empty() && raw(gic, "interrupt-controller").is_empty());
    assert_eq!(cells(gic, "#redistributor-regions"), [1]);
    // GICD, then one redistributor frame pair (128K) per vCPU.
    assert_eq!(u64s(gic, "reg"), [0x0800_0000, 0x1_0000, 0x080A_0000, 3 * 0x2_0000]);
    // Maintenance interrupt: PPI 9, level-high.
    assert_eq!(cells(gic, "interrupts"), [1, 9, 4]);
    let gic_phandle = cells(gic, "phandle")[0];
    assert_eq!(cells(root, "interrupt-parent"), [gic_phandle]);

    let its = node(&tree, "/intc@8000000/its@8080000");
    assert_eq!(property_names(its), ["#msi-cells", "compatible", "msi-controller", "phandle", "reg"]);
    assert_eq!(strings(its, "compatible"), ["arm,gic-v3-its"]);
    assert!(raw(its, "msi-controller").is_empty());
    assert_eq!(cells(its, "#msi-cells"), [1]);
    assert_eq!(u64s(its, "reg"), [0x0808_0000, 0x2_0000]);
    assert_ne!(cells(its, "phandle"), [gic_phandle]);

    let timer = node(&tree, "/timer");
    assert_eq!(property_names(timer), ["compatible", "interrupts"]);
    assert_eq!(strings(timer, "compatible"), ["arm,armv8-timer"]);
    // Secure, non-secure, virtual and hypervisor timers: PPIs 13, 14, 11, 10, level-low.
    assert_eq!(cells(timer, "interrupts"), [1, 13, 8, 1, 14, 8, 1, 11, 8, 1, 10, 8]);

    let clock = node(&tree, "/apb-pclk");
    assert_eq!(
        property_names(clock),
        ["#clock-cells", "clock-frequency", "clock-output-names", "compatible", "phandle"]
    );
    assert_eq!(strings(clock, "compatible"), ["fixed-clock"]);
    assert_eq!(cells(clock, "#clock-cells"), [0]);
    assert_eq!(cells(clock, "clock-frequency"), [24_000_000]);
    assert_eq!(strings(clock, "clock-output-names"), ["clk24mhz"]);
    let clock_phandle = cells(clock, "phandle")[0];

    let uart = node(&tree, "/pl011@9000000");
    assert_eq!(property_names(uart), ["clock-names", "clocks", "compatible", "interrupts", "reg"]);
    assert_eq!(strings(uart, "compatible"), ["arm,pl011", "arm,primecell"]);
    assert_eq!(u64s(uart, "reg"), [0x0900_0000, 0x1000]);
    // SPI 1 (INTID 33), level-high.
    assert_eq!(cells(uart, "interrupts"), [0, 1, 4]);
    assert_eq!(cells(uart, "clocks"), [clock_phandle, clock_phandle]);
    assert_eq!(strings(uart, "clock-names"), ["uartclk", "apb_pclk"]);

    // The fixture's routes lie exactly where the tree puts the devices they emulate.
    let reg_ranges = [
        (u64s(gic, "reg")[0], u64s(gic, "reg")[1]),
        (u64s(gic, "reg")[2], u64s(gic, "reg")[3]),
        (u64s(uart, "reg")[0], u64s(uart, "reg")[1]),
    ];
    let routes: Vec<(u64, u64)> = vm.routes.iter().map(|route| (route.base, route.size)).collect();
    assert_eq!(routes, reg_ranges);
    // And so do the devices the manifest checks routes against.
    let devices: Vec<(u64, u64)> =
        guest::devices(3).iter().map(|device| (device.base, device.size)).collect();
    assert_eq!(
        devices,
        [reg_ranges[0], (u64s(its, "reg")[0], u64s(its, "reg")[1]), reg_ranges[1], reg_ranges[2]]
    );
}

#[test]
fn chosen_has_only_what_the_vm_gives() {
    let (_, mut vm) = fixture();
    vm.cmdline = None;
    let blob = devicetree::build(&vm, None).unwrap();
    let tree = Fdt::new(&blob).unwrap();
    assert_eq!(property_names(node(&tree, "/chosen")), ["stdout-path"]);
}

#[test]
fn cpu_nodes_carry_the_mpidr_affinity() {
    let (_, mut vm) = fixture();
    vm.cpus = vec![0; 18];
    let blob = devicetree::build(&vm, None).unwrap();
    let tree = Fdt::new(&blob).unwrap();
    let regs: Vec<u32> = node(&tree, "/cpus").children().map(|cpu| cells(cpu, "reg")[0]).collect();
    let expected: Vec<u32> = (0..16).chain([0x100, 0x101]).collect();
    assert_eq!(regs, expected);
    assert!(tree.find_node("/cpus/cpu@101").is_some());
    assert_eq!(u64s(node(&tree, "/intc@8000000"), "reg")[3], 18 * 0x2_0000);
}

#[test]
fn a_passed_through_device_with_compatible_strings_gets_a_node() {
    let (_, mut vm) = fixture();
    let device = |name: &str, base: u64, compatible: &[&str]| PassthroughDevice {
        region: 0,
        name: name.to_owned(),
        base,
        size: 0x1000,
        compatible: compatible.iter().map(|text| text.to_string()).collect(),
    };
    vm.passthroughs = vec![
        Passthrough {
            irq: 0,
            intid: 34,
            trigger: Trigger::Level,
            device: Some(device("rtc", 0x0901_0000, &["arm,pl031", "arm,primecell"])),
        },
        Passthrough {
            irq: 1,
            intid: 40,
            trigger: Trigger::Edge,
            device: Some(device("blob", 0x0a00_0000, &[])),
        },
        Passthrough { irq: 2, intid: 41, trigger: Trigger::Edge, device: None },
    ];
    let blob = devicetree::build(&vm, None).unwrap();
    let tree = Fdt::new(&blob).unwrap();
    let rtc = node(&tree, "/rtc@9010000");
    assert_eq!(property_names(rtc), ["clock-names", "clocks", "compatible", "interrupts", "reg"]);
    assert_eq!(strings(rtc, "compatible"), ["arm,pl031", "arm,primecell"]);
    assert_eq!(u64s(rtc, "reg"), [0x0901_0000, 0x1000]);
    // SPI 2 (INTID 34), level-high.
    assert_eq!(cells(rtc, "interrupts"), [0, 2, 4]);
    assert_eq!(cells(rtc, "clocks"), cells(node(&tree, "/apb-pclk"), "phandle"));
    assert_eq!(strings(rtc, "clock-names"), ["apb_pclk"]);
    assert!(tree.find_node("/blob@a000000").is_none(), "no compatible strings, no node");
}

/// The contents of `ram` at guest-physical `ipa`, `len` bytes (zeros where nothing is).
fn read(ram: &GuestRam, ipa: u64, len: usize) -> Vec<u8> {
    (ipa..ipa + len as u64)
        .map(|at| {
            ram.contents
                .iter()
                .find(|(start, run)| (*start..*start + run.len() as u64).contains(&at))
                .map_or(0, |(start, run)| run[(at - start) as usize])
        })
        .collect()
}

fn prepare(vm: &Vm, format: ImageFormat, image: &[u8], initrd: Option<&[u8]>) -> anyhow::Result<GuestRam> {
    let vm = Vm { image_format: format, ..vm.clone() };
    guest::prepare(&vm, image, initrd)
}

fn prepare_error(vm: &Vm, format: ImageFormat, image: &[u8]) -> String {
    format!("{:#}", prepare(vm, format, image, None).expect_err("the guest was accepted"))
}

/// A Linux arm64 Image header followed by `body`.
fn linux_image(text_offset: u64, image_size: u64, flags: u64, body: &[u8]) -> Vec<u8> {
    let mut image = vec![0u8; 0x40];
    image[8..16].copy_from_slice(&text_offset.to_le_bytes());
    image[16..24].copy_from_slice(&image_size.to_le_bytes());
    image[24..32].copy_from_slice(&flags.to_le_bytes());
    image[0x38..0x3c].copy_from_slice(b"ARM\x64");
    image.extend_from_slice(body);
    image
}

#[test]
fn each_format_is_placed_as_it_says() {
    let (_, vm) = fixture();
    let ram_end = 0x4000_0000 + (32 << 20);

    let binary = prepare(&vm, ImageFormat::Binary, b"raw code", None).unwrap();
    assert_eq!((binary.entry, binary.dtb, binary.initrd.clone()), (0x4008_0000, ram_end - 0x1000, None));
    assert_eq!(read(&binary, 0x4008_0000, 9), b"raw code\0");
    // Only the image's page and the device tree's are carried.
    let runs: Vec<(u64, usize)> = binary.contents.iter().map(|(ipa, run)| (*ipa, run.len())).collect();
    assert_eq!(runs, [(0x4008_0000, 0x1000), (ram_end - 0x1000, 0x1000)]);

    let image = linux_image(0x20_0000, 0x100_0000, 0b1010, b"kernel");
    let linux = prepare(&vm, ImageFormat::Linux, &image, Some(b"rootfs")).unwrap();
    assert_eq!(linux.entry, 0x4020_0000);
    assert_eq!(read(&linux, 0x4020_0040, 6), b"kernel");
    assert_eq!(linux.initrd, Some(ram_end - 0x2000..ram_end - 0x2000 + 6));
    assert_eq!(read(&linux, ram_end - 0x2000, 6), b"rootfs");
    let tree = read(&linux, linux.dtb, 0x1000);
    assert!(Fdt::new(&tree).is_ok());

    // Before Linux 3.17: no image_size, and the image goes 512K into RAM.
    let old = prepare(&vm, ImageFormat::Linux, &linux_image(0x1234, 0, 0, b""), None).unwrap();
    assert_eq!(old.entry, 0x4008_0000);

    let elf_image = elf(
        0x4010_0010,
        &[
            Load { vaddr: 0x4010_0000, flags: PF_R | PF_X, file: &[0xcc; 0x20], memsz: 0x20 },
            // Shares the code's page: both land in it.
            Load { vaddr: 0x4010_0800, flags: PF_R | PF_W, file: b"data", memsz: 0x1_0000 },
        ],
    );
    let loaded = prepare(&vm, ImageFormat::Elf, &elf_image, None).unwrap();
    assert_eq!(loaded.entry, 0x4010_0010);
    assert_eq!(read(&loaded, 0x4010_0000, 0x20), [0xcc; 0x20]);
    assert_eq!(read(&loaded, 0x4010_0800, 4), b"data");
    assert_eq!(loaded.contents[0], (0x4010_0000, read(&loaded, 0x4010_0000, 0x1000)));
}

#[test]
fn images_that_do_not_fit_or_parse_are_refused() {
    let (_, vm) = fixture();
    let cases: Vec<(ImageFormat, Vec<u8>, &str)> = vec![
        (ImageFormat::Binary, vec![], "the image is empty"),
        (
            ImageFormat::Binary,
            vec![1; 32 << 20],
            "the binary image, loaded at RAM + 0x8_0000, [0x4008_0000, 0x4208_0000) does not fit in guest RAM \
             [0x4000_0000, 0x4200_0000)",
        ),
        (ImageFormat::Linux, vec![0; 0x40], "not a Linux arm64 Image: no \"ARM\\x64\" magic at offset 0x38"),
        (
            ImageFormat::Linux,
            linux_image(0, 0x1000, 1, b""),
            "the Linux Image is big-endian (header flags bit 0)",
        ),
        (
            ImageFormat::Linux,
            linux_image(0x20_0000, 0x200_0000, 0, b""),
            "the Linux Image (text_offset 0x20_0000, image_size 0x200_0000) [0x4020_0000, 0x4220_0000) does not fit \
             in guest RAM [0x4000_0000, 0x4200_0000)",
        ),
        (ImageFormat::Elf, b"MZ".to_vec(), "not an ELF64 file: Invalid ELF header size or alignment"),
        (
            ImageFormat::Elf,
            elf(
                0x4010_0000,
                &[
                    Load { vaddr: 0x4010_0000, flags: PF_R | PF_X, file: &[0; 0x10], memsz: 0x2000 },
                    Load { vaddr: 0x4010_1000, flags: PF_R | PF_W, file: &[0; 0x10], memsz: 0x10 },
                ],
            ),
            "segment at physical 0x4010_1000 overlaps the segment at physical 0x4010_0000",
        ),
        (
            ImageFormat::Elf,
            elf(
                0x4020_0000,
                &[Load { vaddr: 0x4010_0000, flags: PF_R | PF_X, file: &[0; 0x10], memsz: 0x10 }],
            ),
            "entry point 0x4020_0000 is not in a loaded segment (guests start with the MMU off: link them at their \
             physical addresses)",
        ),
    ];
    for (format, image, expected) in cases {
        assert_eq!(prepare_error(&vm, format, &image), expected);
    }
    let mut shared_object =
        elf(0x4010_0000, &[Load { vaddr: 0x4010_0000, flags: PF_R | PF_X, file: &[0; 0x10], memsz: 0x10 }]);
    shared_object[16] = 3; // ET_DYN
    assert_eq!(
        prepare_error(&vm, ImageFormat::Elf, &shared_object),
        "not a statically linked executable (ELF type ET_EXEC)"
    );
    // The initrd and the device tree must fit above the image.
    let image = linux_image(0, 0x1f0_0000, 0, b"");
    let error = prepare(&vm, ImageFormat::Linux, &image, Some(&[0; 0x10_0000])).unwrap_err();
    assert!(
        format!("{error:#}").starts_with(
            "memory 32M is too small: the image occupies [0x4000_0000, 0x41f0_0000), and the initrd (1M) and the \
             device tree ("
        ),
        "{error:#}"
    );
}
