//! Generated capability constants: the output for the fixtures equals the files beside
//! them, which this test crate also includes as a component would, so that they must
//! compile, pass clippy and hold the right values.

use ipc::CapIdx;
use std::path::Path;
use xtask::{codegen, manifest};

mod pinger {
    include!("fixtures/demo/pinger-caps.rs");
}

mod ponger {
    include!("fixtures/demo/ponger-caps.rs");
}

mod vgic {
    include!("fixtures/vm/vgic-caps.rs");
}

mod vmm {
    include!("fixtures/vm/vmm-caps.rs");
}

#[test]
fn generated_source_matches_the_included_files() {
    for fixture in ["demo", "vm"] {
        let system = manifest::load(Path::new(&format!("tests/fixtures/{fixture}/system.toml"))).unwrap();
        for component in &system.components {
            let path = format!("tests/fixtures/{fixture}/{}-caps.rs", component.name);
            let expected = std::fs::read_to_string(&path).unwrap();
            let generated = codegen::caps_source(&system, component);
            assert_eq!(generated, expected, "{path} differs from the generated source:\n{generated}");
        }
    }
}

#[test]
fn constants_name_the_manifests_slots_and_addresses() {
    assert_eq!(pinger::PONG.index(), CapIdx(0));
    assert_eq!(pinger::CONTROL.index(), CapIdx(1));
    assert_eq!((pinger::SHARED, pinger::SHARED_SIZE), (0x4000_0000, 0x1_0000));
    assert_eq!((pinger::HEAP_BASE, pinger::HEAP_SIZE), (0x2000_0000, 0x1_0000));
    let slots =
        [ponger::PING.index(), ponger::FAULTS.index(), ponger::RTC_EVENTS.index(), ponger::RTC_IRQ.index()];
    assert_eq!(slots, [CapIdx(0), CapIdx(1), CapIdx(2), CapIdx(3)]);
    assert_eq!((ponger::RTC_MMIO, ponger::RTC_MMIO_SIZE), (0x5000_0000, 0x1000));
    assert_eq!((ponger::SHARED_VIEW, ponger::SHARED_VIEW_SIZE), (0x4000_0000, 0x1_0000));
    assert_eq!((ponger::HEAP_BASE, ponger::HEAP_SIZE), (0x2000_0000, 0));
}

#[test]
fn vcpu_and_console_constants_name_consecutive_slots() {
    assert_eq!(vgic::FAULTS.index(), CapIdx(0));
    assert_eq!(vgic::VCPUS.map(|cap| cap.index()), [CapIdx(1), CapIdx(2), CapIdx(3)]);
    assert_eq!((vmm::FAULTS.index(), vmm::BOOT_VCPU.index()), (CapIdx(0), CapIdx(1)));
    assert_eq!(vmm::GUEST_VCPUS.map(|cap| cap.index()), [CapIdx(2), CapIdx(3), CapIdx(4)]);
    assert_eq!((vmm::SPARE_VCPU.index(), vmm::CONSOLE.index()), (CapIdx(5), CapIdx(6)));
    // The VMM (it receives the VM's faults) maps the VM's RAM and image without manifest entries.
    assert_eq!((vmm::VM_RAM, vmm::VM_RAM_SIZE, vmm::VM_RAM_IPA), (0x100_0000_0000, 0x200_0000, 0x4000_0000));
    assert_eq!((vmm::VM_IMAGE, vmm::VM_IMAGE_SIZE), (0x200_0000_0000, 0x200_0000));
    let guest_ram = (vgic::GUEST_RAM, vgic::GUEST_RAM_SIZE, vgic::GUEST_RAM_IPA, vgic::GUEST_RAM_VCPUS);
    assert_eq!(guest_ram, (0x1_0000_0000, 32 << 20, 0x4000_0000, 3));
    let its =
        (vgic::GUEST_RAM_ITS_DEVICES, vgic::GUEST_RAM_ITS_EVENTS_PER_DEVICE, vgic::GUEST_RAM_ITS_COLLECTIONS);
    assert_eq!(its, (64, 64, 8));
    // The types are what the kernel's invocations expect.
    let _: [ipc::Cap<ipc::Vcpu>; 3] = vmm::GUEST_VCPUS;
    let _: ipc::Cap<ipc::Console> = vmm::CONSOLE;
    let _ = (
        vmm::VM_RAM_VCPUS,
        vmm::VM_RAM_ITS_DEVICES,
        vmm::VM_RAM_ITS_EVENTS_PER_DEVICE,
        vmm::VM_RAM_ITS_COLLECTIONS,
    );
    assert_eq!(
        (vgic::HEAP_BASE, vgic::HEAP_SIZE, vmm::HEAP_BASE, vmm::HEAP_SIZE),
        (0x2000_0000, 0, 0x2000_0000, 0)
    );
}

#[test]
fn instances_of_a_crate_share_a_build_only_when_their_constants_are_equal() {
    let text = r#"
[system]
name = "variants"
cpus = 1
memory = "64M"

[[endpoint]]
name = "first"
[[endpoint]]
name = "second"
[[endpoint]]
name = "third"
[[notification]]
name = "events"

[[component]]
name = "server-a"
crate = "server"
priority = 10
cpu = 0
  [[component.cap]]
  name = "requests"
  endpoint = "first"
  rights = ["recv"]

[[component]]
name = "server-b"
crate = "server"
priority = 10
cpu = 0
  [[component.cap]]
  name = "requests"
  endpoint = "second"
  rights = ["recv"]

[[component]]
name = "server-c"
crate = "server"
priority = 10
cpu = 0
  [[component.cap]]
  name = "requests"
  endpoint = "third"
  rights = ["recv"]
  [[component.cap]]
  name = "events"
  notification = "events"
  rights = ["wait"]
"#;
    let system = manifest::parse(text, Path::new("variants/system.toml")).unwrap();
    let variants = codegen::component_variants(&system);
    let names: Vec<(&str, &str)> =
        variants.iter().map(|variant| (variant.crate_name, variant.name)).collect();
    assert_eq!(names, [("server", "server-a"), ("server", "server-c")]);
    assert_eq!(variants[0].source, codegen::caps_source(&system, &system.components[1]));
    assert!(variants[1].source.contains("pub const EVENTS"));
}
