//! Manifest loading and validation: the fixture and the documented example load, and each
//! rule of docs/manifest.md rejects a small manifest with its expected message.

use std::path::Path;
use xtask::manifest::{self, CapObject, Perms, System, Trigger};

/// Where the inline manifests of these tests pretend to live.
const PATH: &str = "images/t/system.toml";

/// The `[system]` table of the inline manifests (lines 1-4).
const SYSTEM: &str = "[system]\nname = \"t\"\ncpus = 2\nmemory = \"64M\"\n";

/// A valid system: a client calling a server of higher priority (lines 5-23).
const PAIR: &str = r#"[[endpoint]]
name = "ping"

[[component]]
name = "client"
priority = 1
cpu = 0
  [[component.cap]]
  name = "ping"
  endpoint = "ping"
  rights = ["call"]

[[component]]
name = "server"
priority = 2
cpu = 1
  [[component.cap]]
  name = "ping"
  endpoint = "ping"
  rights = ["recv"]
"#;

fn parse(text: &str) -> anyhow::Result<System> {
    manifest::parse(text, Path::new(PATH))
}

/// The first line of each diagnostic (the others show the source).
fn errors(text: &str) -> String {
    let error = parse(text).expect_err("the manifest was accepted");
    let message = error.to_string();
    let lines: Vec<&str> = message.lines().filter(|line| line.starts_with(PATH)).collect();
    lines.join("\n")
}

/// [`PAIR`] with `from` replaced by `to` (which must occur).
fn pair_with(from: &str, to: &str) -> String {
    assert!(PAIR.contains(from), "{from:?}");
    format!("{SYSTEM}{}", PAIR.replacen(from, to, 1))
}

/// [`PAIR`] followed by `more`.
fn pair_and(more: &str) -> String {
    format!("{SYSTEM}{PAIR}{more}")
}

#[test]
fn the_fixture_loads_with_defaults_and_placements() {
    let system = manifest::load(Path::new("tests/fixtures/demo/system.toml")).unwrap();
    assert_eq!((system.name.as_str(), system.cpus, system.memory), ("demo", 2, 128 << 20));
    assert_eq!((system.timeslice_us, system.timeout_seconds), (2000, 60));
    let [pinger, ponger] = &system.components[..] else { panic!("two components") };
    assert_eq!(
        (pinger.crate_name.as_str(), pinger.stack_size, pinger.heap_size),
        ("pinger", 16 << 10, 64 << 10)
    );
    assert_eq!(
        (ponger.crate_name.as_str(), ponger.stack_size, ponger.heap_size),
        ("ponger-server", 32 << 10, 0)
    );
    assert_eq!((pinger.fault_endpoint, pinger.fault_badge, ponger.fault_endpoint), (Some(1), 3, None));
    assert_eq!(pinger.caps[0].object, CapObject::Endpoint { index: 0, rights: ipc::endpoint_rights::CALL });
    assert_eq!(pinger.caps[0].badge, 7);
    assert_eq!(pinger.caps[1].object, CapObject::Control);
    assert_eq!(ponger.caps[3].object, CapObject::Irq { index: 0 });
    // Maps without a vaddr start at REGIONS_BASE; named after their region by default.
    assert_eq!((pinger.maps[0].name.as_str(), pinger.maps[0].vaddr), ("shared", ipc::layout::REGIONS_BASE));
    assert_eq!((ponger.maps[0].vaddr, ponger.maps[0].perms), (0x5000_0000, Perms::Rw));
    assert_eq!(
        (ponger.maps[1].name.as_str(), ponger.maps[1].vaddr),
        ("shared-view", ipc::layout::REGIONS_BASE)
    );
    // The IRQ goes to the CPU of the component holding its cap.
    let irq = &system.irqs[0];
    assert_eq!((irq.intid, irq.trigger, irq.notification, irq.badge, irq.cpu), (34, Trigger::Level, 0, 2, 1));
    assert_eq!(system.regions[0].phys_addr, Some(0x0901_0000));
    assert_eq!(system.regions[1].phys_addr, None);
}

#[test]
fn the_documented_example_is_valid() {
    let docs = std::fs::read_to_string("../docs/manifest.md").unwrap();
    let start =
        docs.find("```toml\n[system]").expect("docs/manifest.md has a complete example") + "```toml\n".len();
    let end = start + docs[start..].find("```").unwrap();
    let system = manifest::parse(&docs[start..end], Path::new("images/demo/system.toml")).unwrap();
    assert!(!system.components.is_empty());
}

#[test]
fn placed_maps_leave_a_guard_page_and_avoid_given_addresses() {
    let base = ipc::layout::REGIONS_BASE;
    let text = pair_and(&format!(
        r#"  [[component.map]]
  region = "a"
  perms = "rw"
  [[component.map]]
  region = "b"
  vaddr = {}
  perms = "rw"
  [[component.map]]
  region = "c"
  perms = "r"
[[memory-region]]
name = "a"
size = "8K"
[[memory-region]]
name = "b"
size = "4K"
[[memory-region]]
name = "c"
size = "4K"
"#,
        base + 0x3000
    ));
    let system = parse(&text).unwrap();
    let vaddrs: Vec<u64> = system.components[1].maps.iter().map(|map| map.vaddr).collect();
    assert_eq!(vaddrs, [base, base + 0x3000, base + 0x5000]);
}

#[test]
fn an_endpoint_may_have_several_receivers() {
    let text = pair_and(
        r#"
[[component]]
name = "server2"
priority = 3
cpu = 0
  [[component.cap]]
  name = "ping"
  endpoint = "ping"
  rights = ["recv"]
"#,
    );
    assert_eq!(parse(&text).unwrap().components.len(), 3);
}

#[test]
fn unknown_key() {
    assert_eq!(
        errors(&pair_with("priority = 2", "priority = 2\nprio = 3")),
        "images/t/system.toml:20:1: unknown field `prio`, expected one of `name`, `crate`, `priority`, `cpu`, \
         `stack-size`, `heap-size`, `fault-endpoint`, `fault-badge`, `cap`, `map`"
    );
}

#[test]
fn syntax_error() {
    assert_eq!(
        errors(&pair_with("name = \"ping\"", "name = \"ping")),
        "images/t/system.toml:6:13: invalid basic string"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors(&pair_with("cpu = 0", "cpu = \"0\"")),
        "images/t/system.toml:11:7: invalid type: string \"0\", expected i64"
    );
}

#[test]
fn unknown_enum_value() {
    assert_eq!(
        errors(&pair_and("  [[component.map]]\n  region = \"r\"\n  perms = \"wx\"\n")),
        "images/t/system.toml:27:11: unknown variant `wx`, expected one of `r`, `rw`, `rx`"
    );
}

#[test]
fn missing_field() {
    assert_eq!(
        errors(&pair_with("priority = 1\n", "")),
        "images/t/system.toml:8:1: missing field `priority`"
    );
}

#[test]
fn unknown_names() {
    let text = pair_and(
        r#"  [[component.cap]]
  name = "n"
  notification = "nope"
  rights = ["wait"]
  [[component.cap]]
  name = "i"
  irq = "nope"
  [[component.map]]
  region = "nope"
  perms = "r"
[[irq]]
name = "rtc"
intid = 34
trigger = "edge"
notification = "nope"
badge = 1
"#,
    );
    let text = text.replacen("endpoint = \"ping\"", "endpoint = \"pnig\"", 1);
    let text = text.replacen("cpu = 1", "cpu = 1\nfault-endpoint = \"nope\"", 1);
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:14:14: component \"client\": cap \"ping\": field \"endpoint\": no endpoint named \
             \"pnig\" (endpoints: ping)",
            "images/t/system.toml:21:18: component \"server\": field \"fault-endpoint\": no endpoint named \"nope\" \
             (endpoints: ping)",
            "images/t/system.toml:28:18: component \"server\": cap \"n\": field \"notification\": no notification \
             named \"nope\" (there are no notifications)",
            "images/t/system.toml:32:9: component \"server\": cap \"i\": field \"irq\": no irq named \"nope\" \
             (irqs: rtc)",
            "images/t/system.toml:34:12: component \"server\": map \"nope\": field \"region\": no memory-region \
             named \"nope\" (there are no memory-regions)",
            "images/t/system.toml:40:16: irq \"rtc\": field \"notification\": no notification named \"nope\" \
             (there are no notifications)",
        ]
        .join("\n")
    );
}

/// A complete VM named `name` (lines counted by the caller).
fn vm(name: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\nvcpus = [0]\nmemory = \"16M\"\nimage = \"guest.bin\"\n\
         image-format = \"binary\"\npriority = 0\n"
    )
}

#[test]
fn duplicate_names() {
    let text = pair_and(&format!("[[endpoint]]\nname = \"ping\"\n{}", vm("client")));
    let text = text.replacen("  [[component.cap]]\n  name = \"ping\"\n  endpoint = \"ping\"\n  rights = [\"recv\"]\n",
        "  [[component.cap]]\n  name = \"ping\"\n  endpoint = \"ping\"\n  rights = [\"recv\"]\n  [[component.cap]]\n  name = \"ping\"\n  control = true\n", 1);
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:26:10: component \"server\": cap \"ping\": duplicate cap name (first at line 22)",
            "images/t/system.toml:29:8: endpoint \"ping\": field \"name\": duplicate name, already used by the \
             endpoint at line 6",
            "images/t/system.toml:31:8: vm \"client\": field \"name\": duplicate name, already used by the \
             component at line 9",
        ]
        .join("\n")
    );
}

#[test]
fn value_out_of_range() {
    assert_eq!(
        errors(&pair_with("priority = 2", "priority = 300")),
        "images/t/system.toml:19:12: component \"server\": field \"priority\": 300 is out of range 0..=254"
    );
}

#[test]
fn system_fields() {
    let text = format!("{SYSTEM}{PAIR}")
        .replacen("name = \"t\"", "name = \"other\"", 1)
        .replacen("cpus = 2", "cpus = 9\ntimeslice-us = 10\ntimeout-seconds = 0", 1)
        .replacen("memory = \"64M\"", "memory = \"1000K\"", 1);
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:2:8: system: field \"name\": \"other\" must equal the name of the manifest's \
             directory, \"t\"",
            "images/t/system.toml:3:8: system: field \"cpus\": 9 is out of range 1..=8",
            "images/t/system.toml:4:16: system: field \"timeslice-us\": 10 is out of range 100..=1000000",
            "images/t/system.toml:5:19: system: field \"timeout-seconds\": 0 is out of range 1..=3600",
            "images/t/system.toml:6:10: system: field \"memory\": 1000K is not a multiple of 1M",
        ]
        .join("\n")
    );
}

#[test]
fn names_are_lower_case_identifiers() {
    assert_eq!(
        errors(&pair_with("name = \"client\"", "name = \"Client\"")),
        "images/t/system.toml:9:8: component \"Client\": field \"name\": \"Client\" is not a valid name: use at most \
         64 lower-case letters, digits, \"-\" and \"_\", starting with a letter"
    );
}

#[test]
fn cpu_out_of_range() {
    let text = pair_with("cpu = 1", "cpu = 2");
    assert_eq!(
        errors(&text),
        "images/t/system.toml:20:7: component \"server\": field \"cpu\": 2 is out of range 0..=1: the system has 2 CPUs"
    );
}

#[test]
fn bad_sizes() {
    let text = pair_with("cpu = 1", "cpu = 1\nstack-size = \"6K\"\nheap-size = \"1.5M\"").replacen(
        "cpu = 0",
        "cpu = 0\nstack-size = 0",
        1,
    );
    let text = format!("{text}[[memory-region]]\nname = \"r\"\nsize = \"0\"\n");
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:12:14: component \"client\": field \"stack-size\": must not be zero",
            "images/t/system.toml:22:14: component \"server\": field \"stack-size\": 6K is not a multiple of 4K",
            "images/t/system.toml:23:13: component \"server\": field \"heap-size\": \"1.5M\" is not a size: write a \
             byte count or a number with a K, M or G suffix, such as \"16K\"",
            "images/t/system.toml:30:8: memory-region \"r\": field \"size\": must not be zero",
        ]
        .join("\n")
    );
}

#[test]
fn heap_and_stack_must_fit_between_their_bases() {
    assert_eq!(
        errors(&pair_with("cpu = 1", "cpu = 1\nheap-size = \"256M\"")),
        "images/t/system.toml:21:13: component \"server\": field \"heap-size\": the heap [0x2000_0000, 0x3000_0000) \
         and the stack with its guard page [0x2fff_b000, 0x3000_0000) do not fit between 0x2000_0000 and 0x3000_0000"
    );
}

/// A region `name` of `size`, at `phys_addr` if given, mapped by the server.
fn region(name: &str, size: &str, phys_addr: Option<u64>) -> String {
    let phys_addr = phys_addr.map_or(String::new(), |address| format!("phys-addr = {address:#x}\n"));
    format!("[[memory-region]]\nname = \"{name}\"\nsize = \"{size}\"\n{phys_addr}")
}

#[test]
fn device_regions() {
    let maps: String = ["unaligned", "in-ram", "gic", "uart", "first", "second"]
        .iter()
        .map(|name| format!("  [[component.map]]\n  region = \"{name}\"\n  perms = \"rw\"\n"))
        .collect();
    let regions = [
        region("unaligned", "4K", Some(0x0901_0800)),
        region("in-ram", "4K", Some(0x4100_0000)),
        region("gic", "64K", Some(0x0800_0000)),
        region("uart", "4K", Some(0x0900_0000)),
        region("first", "8K", Some(0x0a00_0000)),
        region("second", "4K", Some(0x0a00_1000)),
    ];
    let text = pair_and(&(maps + &regions.concat()));
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:46:13: memory-region \"unaligned\": field \"phys-addr\": 0x901_0800 is not a \
             multiple of 4K (page aligned)",
            "images/t/system.toml:50:13: memory-region \"in-ram\": field \"phys-addr\": device memory [0x4100_0000, \
             0x4100_1000) overlaps RAM at [0x4000_0000, 0x4400_0000)",
            "images/t/system.toml:54:13: memory-region \"gic\": field \"phys-addr\": device memory [0x800_0000, \
             0x801_0000) overlaps the GIC (distributor, ITS and redistributors), which only the kernel maps, at \
             [0x800_0000, 0x900_0000)",
            "images/t/system.toml:58:13: memory-region \"uart\": field \"phys-addr\": device memory [0x900_0000, \
             0x900_1000) overlaps the kernel console's PL011 UART, which only the kernel maps, at [0x900_0000, \
             0x900_1000)",
            "images/t/system.toml:66:13: memory-region \"second\": field \"phys-addr\": device memory [0xa00_1000, \
             0xa00_2000) overlaps memory-region \"first\" at [0xa00_0000, 0xa00_2000)",
        ]
        .join("\n")
    );
}

#[test]
fn device_memory_is_never_executable() {
    let text = pair_and(&format!(
        "  [[component.map]]\n  region = \"d\"\n  perms = \"rx\"\n{}",
        region("d", "4K", Some(0x0a00_0000))
    ));
    assert_eq!(
        errors(&text),
        "images/t/system.toml:27:11: component \"server\": map \"d\": field \"perms\": device memory cannot be executable"
    );
}

#[test]
fn overlapping_mappings() {
    let map = |name: &str, region: &str, vaddr: u64| {
        format!(
            "  [[component.map]]\n  name = \"{name}\"\n  region = \"{region}\"\n  vaddr = {vaddr:#x}\n  perms = \"rw\"\n"
        )
    };
    let maps = [
        map("a", "two-pages", 0x5000_0000),
        map("b", "two-pages", 0x5000_1000),
        map("on-stack", "page", ipc::layout::STACK_TOP - 0x1000),
        map("on-ipc-buffer", "page", ipc::layout::IPC_BUFFER_VA),
        map("on-image", "page", ipc::layout::IMAGE_BASE + 0x10_0000),
        map("on-null", "page", 0),
    ];
    let text = pair_and(&(maps.concat() + &region("two-pages", "8K", None) + &region("page", "4K", None)));
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:33:11: component \"server\": map \"b\": field \"vaddr\": [0x5000_1000, 0x5000_3000) \
             overlaps map \"a\" at [0x5000_0000, 0x5000_2000)",
            "images/t/system.toml:38:11: component \"server\": map \"on-stack\": field \"vaddr\": [0x2fff_f000, \
             0x3000_0000) overlaps the stack at [0x2fff_c000, 0x3000_0000)",
            "images/t/system.toml:43:11: component \"server\": map \"on-ipc-buffer\": field \"vaddr\": [0x3000_1000, \
             0x3000_2000) overlaps the IPC buffer at [0x3000_1000, 0x3000_2000)",
            "images/t/system.toml:48:11: component \"server\": map \"on-image\": field \"vaddr\": [0x50_0000, \
             0x50_1000) overlaps the image area at [0x40_0000, 0x2000_0000)",
            "images/t/system.toml:53:11: component \"server\": map \"on-null\": field \"vaddr\": [0x0, 0x1000) \
             overlaps the unmapped low area (null guard) at [0x0, 0x40_0000)",
        ]
        .join("\n")
    );
}

#[test]
fn generated_constants_must_be_distinct() {
    let text = pair_and(
        "  [[component.cap]]\n  name = \"heap-base\"\n  control = true\n  [[component.map]]\n  region = \"buf\"\n  \
         perms = \"r\"\n  [[component.cap]]\n  name = \"buf-size\"\n  control = true\n  [[component.map]]\n  region = \
         \"buf\"\n  perms = \"r\"\n",
    ) + &region("buf", "4K", None);
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:26:10: component \"server\": cap \"heap-base\": its constant HEAP_BASE is already \
             generated for the heap",
            "images/t/system.toml:29:12: component \"server\": map \"buf\": its constant BUF_SIZE is already \
             generated for cap \"buf-size\"",
            "images/t/system.toml:35:12: component \"server\": map \"buf\": duplicate map name (first at line 29); \
             give one of them a \"name\"",
        ]
        .join("\n")
    );
}

#[test]
fn calls_must_go_up_in_priority() {
    assert_eq!(
        errors(&pair_with("priority = 2", "priority = 1")),
        "images/t/system.toml:15:12: component \"client\": cap \"ping\": field \"rights\": calls endpoint \"ping\", \
         received by \"server\" at priority 1, which is not above \"client\"'s 1: a call must go to a higher priority"
    );
}

#[test]
fn sends_need_a_receiver() {
    let text = pair_with("rights = [\"recv\"]", "rights = [\"send\"]").replacen(
        "cpu = 0",
        "cpu = 0\nfault-endpoint = \"ping\"",
        1,
    );
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:12:18: component \"client\": field \"fault-endpoint\": faults go to endpoint \
             \"ping\", but no component can receive from it (no cap on it has \"recv\")",
            "images/t/system.toml:16:12: component \"client\": cap \"ping\": field \"rights\": can send on endpoint \
             \"ping\", but no component can receive from it (no cap on it has \"recv\")",
        ]
        .join("\n")
    );
}

#[test]
fn a_component_cannot_handle_its_own_faults() {
    assert_eq!(
        errors(&pair_with("cpu = 1", "cpu = 1\nfault-endpoint = \"ping\"")),
        "images/t/system.toml:21:18: component \"server\": field \"fault-endpoint\": only \"server\" itself receives \
         from endpoint \"ping\", and a faulted component cannot handle its own fault"
    );
}

#[test]
fn fault_badge_needs_a_fault_endpoint() {
    assert_eq!(
        errors(&pair_with("cpu = 1", "cpu = 1\nfault-badge = 1")),
        "images/t/system.toml:21:15: component \"server\": field \"fault-badge\": has no effect without \
         \"fault-endpoint\""
    );
}

/// A notification `events`, signalled by the client; `server_fields` complete the server's cap on it.
fn signalled(server_fields: &str) -> String {
    let text = pair_and(&format!(
        "  [[component.cap]]\n  name = \"events\"\n  notification = \"events\"\n{server_fields}\
         [[notification]]\nname = \"events\"\n"
    ));
    text.replacen(
        "  rights = [\"call\"]\n",
        "  rights = [\"call\"]\n  [[component.cap]]\n  name = \"events\"\n  notification = \"events\"\n  rights = \
         [\"signal\"]\n  badge = 1\n",
        1,
    )
}

#[test]
fn signals_need_a_waiter() {
    assert!(parse(&signalled("  rights = [\"wait\"]\n")).is_ok());
    assert_eq!(
        errors(&signalled("  rights = [\"signal\"]\n  badge = 2\n")),
        "images/t/system.toml:19:12: component \"client\": cap \"events\": field \"rights\": can signal notification \
         \"events\", but no component waits on it (no cap on it has \"wait\")"
    );
}

/// [`PAIR`] plus an IRQ on notification `irq-events`, then `more`.
fn with_irq(irq_fields: &str, more: &str) -> String {
    pair_and(&format!(
        "[[notification]]\nname = \"irq-events\"\n[[irq]]\nname = \"rtc\"\nintid = 34\ntrigger = \"level\"\n\
         notification = \"irq-events\"\nbadge = 1\n{irq_fields}{more}"
    ))
}

const HOLD_IRQ: &str = "  [[component.cap]]\n  name = \"rtc\"\n  irq = \"rtc\"\n";
const WAIT_IRQ: &str =
    "  [[component.cap]]\n  name = \"irq-events\"\n  notification = \"irq-events\"\n  rights = [\"wait\"]\n";

#[test]
fn an_irq_needs_a_waiter_and_a_holder() {
    assert!(
        parse(&with_irq(
            "",
            &format!("[[component]]\nname = \"driver\"\npriority = 3\ncpu = 0\n{HOLD_IRQ}{WAIT_IRQ}")
        ))
        .is_ok()
    );
    assert_eq!(
        errors(&with_irq(
            "",
            &format!("[[component]]\nname = \"driver\"\npriority = 3\ncpu = 0\n{HOLD_IRQ}")
        )),
        "images/t/system.toml:31:16: irq \"rtc\": field \"notification\": signals notification \"irq-events\", but \
         no component waits on it (no cap on it has \"wait\")"
    );
    assert_eq!(
        errors(&with_irq(
            "",
            &format!("[[component]]\nname = \"driver\"\npriority = 3\ncpu = 0\n{WAIT_IRQ}")
        )),
        "images/t/system.toml:28:8: irq \"rtc\": no component holds a cap to it, so nobody can acknowledge it"
    );
}

#[test]
fn an_irq_goes_to_its_holders_cpu_unless_given() {
    // The server (CPU 1) and the client (CPU 0) both hold the IRQ.
    let text = with_irq("", &format!("{HOLD_IRQ}{WAIT_IRQ}")).replacen(
        "  rights = [\"call\"]\n",
        &format!("  rights = [\"call\"]\n{HOLD_IRQ}"),
        1,
    );
    assert_eq!(
        errors(&text),
        "images/t/system.toml:31:8: irq \"rtc\": its holders \"client\" (CPU 0) and \"server\" (CPU 1) disagree on \
         its CPU: set \"cpu\""
    );
    let text = text.replacen("badge = 1\n", "badge = 1\ncpu = 0\n", 1);
    assert_eq!(parse(&text).unwrap().irqs[0].cpu, 0);
    let system = parse(&with_irq("", &format!("{HOLD_IRQ}{WAIT_IRQ}"))).unwrap();
    assert_eq!(system.irqs[0].cpu, 1);
}

#[test]
fn irq_fields() {
    let text = with_irq("cpu = 2\n", &format!("{HOLD_IRQ}{WAIT_IRQ}"))
        .replacen("intid = 34", "intid = 27", 1)
        .replacen("badge = 1\n", "badge = 0\n", 1);
    let text = format!(
        "{text}[[irq]]\nname = \"twin\"\nintid = 40\ntrigger = \"edge\"\nnotification = \"irq-events\"\nbadge = 2\n\
         [[irq]]\nname = \"twin2\"\nintid = 40\ntrigger = \"edge\"\nnotification = \"irq-events\"\nbadge = 4\n"
    );
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:29:9: irq \"rtc\": field \"intid\": 27 is out of range 32..=1019",
            "images/t/system.toml:32:9: irq \"rtc\": field \"badge\": must not be zero: the interrupt ORs the badge \
             into the notification word, and waiters need a non-zero word",
            "images/t/system.toml:33:7: irq \"rtc\": field \"cpu\": 2 is out of range 0..=1: the system has 2 CPUs",
            "images/t/system.toml:49:9: irq \"twin2\": field \"intid\": INTID 40 is already irq \"twin\"",
        ]
        .join("\n")
    );
}

/// [`PAIR`] with one more cap for the server, written as `fields`.
fn server_cap(fields: &str) -> String {
    pair_and(&format!("  [[component.cap]]\n  name = \"extra\"\n{fields}[[notification]]\nname = \"n\"\n"))
}

#[test]
fn cap_rights_and_badges_depend_on_the_kind() {
    let cases = [
        (
            "  endpoint = \"ping\"\n  rights = [\"wait\"]\n",
            "images/t/system.toml:28:13: component \"server\": cap \"extra\": field \"rights\": \"wait\" is not a \
             right of an endpoint cap (recv, send, call)",
        ),
        (
            "  notification = \"n\"\n  rights = [\"wait\", \"call\"]\n",
            "images/t/system.toml:28:21: component \"server\": cap \"extra\": field \"rights\": \"call\" is not a \
             right of a notification cap (wait, signal)",
        ),
        (
            "  endpoint = \"ping\"\n  rights = [\"recv\", \"recv\"]\n",
            "images/t/system.toml:28:21: component \"server\": cap \"extra\": field \"rights\": \"recv\" is listed twice",
        ),
        (
            "  endpoint = \"ping\"\n  rights = []\n",
            "images/t/system.toml:28:12: component \"server\": cap \"extra\": field \"rights\": an endpoint cap needs \
             at least one of the rights recv, send, call",
        ),
        (
            "  notification = \"n\"\n",
            "images/t/system.toml:26:10: component \"server\": cap \"extra\": field \"rights\" is missing: a \
             notification cap needs at least one of the rights wait, signal",
        ),
        (
            "  irq = \"i\"\n  rights = [\"recv\"]\n",
            "images/t/system.toml:28:12: component \"server\": cap \"extra\": field \"rights\": an irq cap has no \
             rights; leave the field out",
        ),
        (
            "  control = true\n  rights = [\"call\"]\n",
            "images/t/system.toml:28:12: component \"server\": cap \"extra\": field \"rights\": the control cap has no \
             rights; leave the field out",
        ),
        (
            "  endpoint = \"ping\"\n  rights = [\"recv\"]\n  badge = 5\n",
            "images/t/system.toml:29:11: component \"server\": cap \"extra\": field \"badge\": only caps with the \
             send, call or signal right carry a badge",
        ),
        (
            "  notification = \"n\"\n  rights = [\"wait\", \"signal\"]\n  badge = 0\n",
            "images/t/system.toml:29:11: component \"server\": cap \"extra\": field \"badge\": must not be zero: \
             Signal ORs the badge into the notification word",
        ),
        (
            "  notification = \"n\"\n  rights = [\"wait\", \"signal\"]\n",
            "images/t/system.toml:26:10: component \"server\": cap \"extra\": field \"badge\" is missing: Signal ORs \
             the badge into the notification word, so a cap with the signal right needs a non-zero one",
        ),
        (
            "  endpoint = \"ping\"\n  rights = [\"send\"]\n  badge = -1\n",
            "images/t/system.toml:29:11: component \"server\": cap \"extra\": field \"badge\": -1 is negative",
        ),
        (
            "  endpoint = \"ping\"\n  notification = \"n\"\n  rights = [\"wait\"]\n",
            "images/t/system.toml:28:18: component \"server\": cap \"extra\": field \"notification\": a cap names one \
             object, and this one already names an endpoint",
        ),
        (
            "  rights = [\"wait\"]\n",
            "images/t/system.toml:26:10: component \"server\": cap \"extra\": needs one of the fields \"endpoint\", \
             \"notification\", \"irq\" or \"control\"",
        ),
        (
            "  control = false\n",
            "images/t/system.toml:27:13: component \"server\": cap \"extra\": field \"control\": write \"control = \
             true\", or leave the field out",
        ),
    ];
    for (fields, expected) in cases {
        assert_eq!(errors(&server_cap(fields)), expected, "{fields}");
    }
}

#[test]
fn declared_objects_must_be_used() {
    let text = pair_and(&format!(
        "[[endpoint]]\nname = \"spare\"\n[[notification]]\nname = \"quiet\"\n{}",
        region("unmapped", "4K", None)
    ));
    assert_eq!(
        errors(&text),
        [
            "images/t/system.toml:26:8: endpoint \"spare\": no cap, fault-endpoint or route refers to it",
            "images/t/system.toml:28:8: notification \"quiet\": no cap or irq refers to it",
            "images/t/system.toml:30:8: memory-region \"unmapped\": no component maps it",
        ]
        .join("\n")
    );
}

#[test]
fn ram_must_hold_what_the_manifest_asks_for() {
    let text = pair_and(&format!(
        "  [[component.map]]\n  region = \"big\"\n  perms = \"rw\"\n{}",
        region("big", "48M", None)
    ));
    assert_eq!(
        errors(&text),
        "images/t/system.toml:4:10: system: field \"memory\": 64M cannot hold the 49192K that stacks, heaps, IPC \
         buffers, RAM regions and VMs need plus the 16M kept free for the kernel"
    );
}

/// `count` components, each calling the next one of higher priority.
fn chain(count: usize) -> String {
    let mut text = format!("{SYSTEM}[[endpoint]]\nname = \"e\"\n");
    for index in 0..count {
        let rights = if index == 0 { "recv" } else { "call" };
        let priority = 200 - index;
        text += &format!(
            "[[component]]\nname = \"c{index}\"\npriority = {priority}\ncpu = 0\n  [[component.cap]]\n  name = \"e\"\n  \
             endpoint = \"e\"\n  rights = [\"{rights}\"]\n"
        );
    }
    text.replace("memory = \"64M\"", "memory = \"1G\"")
}

#[test]
fn object_counts_stay_within_the_kernel_limits() {
    assert!(parse(&chain(bootinfo::MAX_THREADS)).is_ok());
    let name_line_of_last = 8 + 8 * bootinfo::MAX_THREADS;
    assert_eq!(
        errors(&chain(bootinfo::MAX_THREADS + 1)),
        [
            format!(
                "{PATH}:{name_line_of_last}:8: component \"c64\": too many threads (bootinfo::MAX_THREADS), counting \
                 components and vCPUs: the kernel supports at most 64"
            ),
            format!(
                "{PATH}:{name_line_of_last}:8: component \"c64\": too many address spaces (bootinfo::MAX_VSPACES), \
                 counting components and VMs: the kernel supports at most 64"
            ),
        ]
        .join("\n")
    );
    // With PAIR's endpoint, one too many.
    let endpoints: String =
        (0..bootinfo::MAX_ENDPOINTS).map(|index| format!("[[endpoint]]\nname = \"e{index}\"\n")).collect();
    assert_eq!(
        errors(&pair_and(&endpoints)),
        format!(
            "{PATH}:280:8: endpoint \"e127\": too many endpoints (bootinfo::MAX_ENDPOINTS): the kernel supports at \
             most 128"
        )
    );
}

#[test]
fn vm_fields_are_checked_although_vms_cannot_be_built_yet() {
    let vm = vm("guest")
        .replace("vcpus = [0]", "vcpus = []")
        .replace("priority = 0\n", "priority = 5\ninitrd = \"initrd.img\"\n")
        + "  [[vm.route]]\n  name = \"uart\"\n  base = 0x4000_0000\n  size = \"4K\"\n  endpoint = \"ping\"\n";
    assert_eq!(
        errors(&pair_and(&vm)),
        [
            "images/t/system.toml:27:9: vm \"guest\": field \"vcpus\": needs at least one vCPU",
            "images/t/system.toml:32:10: vm \"guest\": field \"initrd\": only a \"linux\" image-format takes it",
            "images/t/system.toml:35:10: vm \"guest\": route \"uart\": field \"base\": [0x4000_0000, 0x4000_1000) \
             overlaps guest RAM at [0x4000_0000, 0x4100_0000)",
        ]
        .join("\n")
    );
    let vm = vm.replace("vcpus = []", "vcpus = [1, 0]").replace("base = 0x4000_0000", "base = 0x900_0000");
    assert_eq!(
        errors(&pair_and(&vm.replace("initrd", "cmdline"))),
        "images/t/system.toml:32:11: vm \"guest\": field \"cmdline\": only a \"linux\" image-format takes it"
    );
    let vm = vm.replace("initrd = \"initrd.img\"\n", "");
    assert_eq!(
        errors(&pair_and(&vm)),
        "images/t/system.toml:36:14: vm \"guest\": route \"uart\": field \"endpoint\": endpoint \"ping\" is received \
         by \"server\" at priority 2, which is not above the VM's 5: a fault is a call and must go to a higher priority"
    );
    let vm = vm.replace("priority = 5", "priority = 1");
    let system = parse(&pair_and(&vm)).unwrap();
    let guest = &system.vms[0];
    assert_eq!(guest.vcpus, [1, 0]);
    assert_eq!(guest.image, Path::new("images/t/guest.bin"));
    assert_eq!((guest.ram_base, guest.memory), (0x4000_0000, 16 << 20));
}

#[test]
fn every_error_is_shown_with_its_source_line() {
    let message = parse(&pair_with("priority = 2", "priority = 300")).unwrap_err().to_string();
    assert_eq!(
        message,
        "images/t/system.toml:19:12: component \"server\": field \"priority\": 300 is out of range 0..=254\n    |\n \
         19 | priority = 300\n    |            ^^^"
    );
}
