//! Manifest loading and validation: the fixture and the documented example load, and each
//! rule of docs/manifest.md rejects a small manifest with its expected message.

use std::path::Path;
use std::path::PathBuf;
use xtask::manifest::{
    self, CapObject, DebianFile, GuestFile, GuestOverride, GuestSource, ImageFormat, ItsQuotas, Perms,
    System, Trigger, Unclaimed,
};

/// Where the inline manifests of these tests pretend to live.
const PATH: &str = "tests/fixtures/t/system.toml";

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
    assert_eq!((pinger.bound_notification, ponger.bound_notification), (None, Some(0)));
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
        "tests/fixtures/t/system.toml:20:1: unknown field `prio`, expected one of `name`, `crate`, `priority`, `cpu`, \
         `stack-size`, `heap-size`, `fault-endpoint`, `fault-badge`, `bound-notification`, `cap`, `map`"
    );
}

#[test]
fn syntax_error() {
    assert_eq!(
        errors(&pair_with("name = \"ping\"", "name = \"ping")),
        "tests/fixtures/t/system.toml:6:13: invalid basic string"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        errors(&pair_with("cpu = 0", "cpu = \"0\"")),
        "tests/fixtures/t/system.toml:11:7: invalid type: string \"0\", expected i64"
    );
}

#[test]
fn unknown_enum_value() {
    assert_eq!(
        errors(&pair_and("  [[component.map]]\n  region = \"r\"\n  perms = \"wx\"\n")),
        "tests/fixtures/t/system.toml:27:11: unknown variant `wx`, expected one of `r`, `rw`, `rx`"
    );
}

#[test]
fn missing_field() {
    assert_eq!(
        errors(&pair_with("priority = 1\n", "")),
        "tests/fixtures/t/system.toml:8:1: missing field `priority`"
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
            "tests/fixtures/t/system.toml:14:14: component \"client\": cap \"ping\": field \"endpoint\": no endpoint named \
             \"pnig\" (endpoints: ping)",
            "tests/fixtures/t/system.toml:21:18: component \"server\": field \"fault-endpoint\": no endpoint named \"nope\" \
             (endpoints: ping)",
            "tests/fixtures/t/system.toml:28:18: component \"server\": cap \"n\": field \"notification\": no notification \
             named \"nope\" (there are no notifications)",
            "tests/fixtures/t/system.toml:32:9: component \"server\": cap \"i\": field \"irq\": no irq named \"nope\" \
             (irqs: rtc)",
            "tests/fixtures/t/system.toml:34:12: component \"server\": map \"nope\": field \"region\": no memory-region \
             named \"nope\" (there are no memory-regions)",
            "tests/fixtures/t/system.toml:40:16: irq \"rtc\": field \"notification\": no notification named \"nope\" \
             (there are no notifications)",
        ]
        .join("\n")
    );
}

/// A complete VM named `name` (lines counted by the caller) whose traps go to [`PAIR`]'s
/// server.
fn vm(name: &str) -> String {
    format!(
        "[[vm]]\nname = \"{name}\"\ncpus = [0]\nmemory = \"16M\"\nimage = \"guest.bin\"\n\
         image-format = \"binary\"\npriority = 0\nfault-endpoint = \"ping\"\n"
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
            "tests/fixtures/t/system.toml:26:10: component \"server\": cap \"ping\": duplicate cap name (first at line 22)",
            "tests/fixtures/t/system.toml:29:8: endpoint \"ping\": field \"name\": duplicate name, already used by the \
             endpoint at line 6",
            "tests/fixtures/t/system.toml:31:8: vm \"client\": field \"name\": duplicate name, already used by the \
             component at line 9",
        ]
        .join("\n")
    );
}

#[test]
fn value_out_of_range() {
    assert_eq!(
        errors(&pair_with("priority = 2", "priority = 300")),
        "tests/fixtures/t/system.toml:19:12: component \"server\": field \"priority\": 300 is out of range 0..=254"
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
            "tests/fixtures/t/system.toml:2:8: system: field \"name\": \"other\" must equal the name of the manifest's \
             directory, \"t\"",
            "tests/fixtures/t/system.toml:3:8: system: field \"cpus\": 9 is out of range 1..=8",
            "tests/fixtures/t/system.toml:4:16: system: field \"timeslice-us\": 10 is out of range 100..=1000000",
            "tests/fixtures/t/system.toml:5:19: system: field \"timeout-seconds\": 0 is out of range 1..=3600",
            "tests/fixtures/t/system.toml:6:10: system: field \"memory\": 1000K is not a multiple of 1M",
        ]
        .join("\n")
    );
}

#[test]
fn expected_output_is_non_blank_lines() {
    let text = format!("{SYSTEM}expect-output = [\"done\", \" \", \"two\\nlines\"]\n{PAIR}");
    assert_eq!(
        errors(&text),
        [
            "tests/fixtures/t/system.toml:5:26: system: field \"expect-output\": each entry is one non-blank line of \
             text",
            "tests/fixtures/t/system.toml:5:31: system: field \"expect-output\": each entry is one non-blank line of \
             text",
        ]
        .join("\n")
    );
    let system = parse(&format!("{SYSTEM}expect-output = [\"attacker: done\"]\n{PAIR}")).unwrap();
    assert_eq!(system.expect_output, ["attacker: done"]);
    assert!(parse(&format!("{SYSTEM}{PAIR}")).unwrap().expect_output.is_empty());
}

#[test]
fn names_are_lower_case_identifiers() {
    assert_eq!(
        errors(&pair_with("name = \"client\"", "name = \"Client\"")),
        "tests/fixtures/t/system.toml:9:8: component \"Client\": field \"name\": \"Client\" is not a valid name: use at most \
         64 lower-case letters, digits, \"-\" and \"_\", starting with a letter"
    );
}

#[test]
fn cpu_out_of_range() {
    let text = pair_with("cpu = 1", "cpu = 2");
    assert_eq!(
        errors(&text),
        "tests/fixtures/t/system.toml:20:7: component \"server\": field \"cpu\": 2 is out of range 0..=1: the system has 2 CPUs"
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
            "tests/fixtures/t/system.toml:12:14: component \"client\": field \"stack-size\": must not be zero",
            "tests/fixtures/t/system.toml:22:14: component \"server\": field \"stack-size\": 6K is not a multiple of 4K",
            "tests/fixtures/t/system.toml:23:13: component \"server\": field \"heap-size\": \"1.5M\" is not a size: write a \
             byte count or a number with a K, M or G suffix, such as \"16K\"",
            "tests/fixtures/t/system.toml:30:8: memory-region \"r\": field \"size\": must not be zero",
        ]
        .join("\n")
    );
}

#[test]
fn heap_and_stack_must_fit_between_their_bases() {
    assert_eq!(
        errors(&pair_with("cpu = 1", "cpu = 1\nheap-size = \"256M\"")),
        "tests/fixtures/t/system.toml:21:13: component \"server\": field \"heap-size\": the heap [0x2000_0000, 0x3000_0000) \
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
            "tests/fixtures/t/system.toml:46:13: memory-region \"unaligned\": field \"phys-addr\": 0x901_0800 is not a \
             multiple of 4K (page aligned)",
            "tests/fixtures/t/system.toml:50:13: memory-region \"in-ram\": field \"phys-addr\": device memory [0x4100_0000, \
             0x4100_1000) overlaps RAM at [0x4000_0000, 0x4400_0000)",
            "tests/fixtures/t/system.toml:54:13: memory-region \"gic\": field \"phys-addr\": device memory [0x800_0000, \
             0x801_0000) overlaps the GIC (distributor, ITS and redistributors), which only the kernel maps, at \
             [0x800_0000, 0x900_0000)",
            "tests/fixtures/t/system.toml:66:13: memory-region \"second\": field \"phys-addr\": device memory [0xa00_1000, \
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
        "tests/fixtures/t/system.toml:27:11: component \"server\": map \"d\": field \"perms\": device memory cannot be executable"
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
            "tests/fixtures/t/system.toml:33:11: component \"server\": map \"b\": field \"vaddr\": [0x5000_1000, 0x5000_3000) \
             overlaps map \"a\" at [0x5000_0000, 0x5000_2000)",
            "tests/fixtures/t/system.toml:38:11: component \"server\": map \"on-stack\": field \"vaddr\": [0x2fff_f000, \
             0x3000_0000) overlaps the stack at [0x2fff_c000, 0x3000_0000)",
            "tests/fixtures/t/system.toml:43:11: component \"server\": map \"on-ipc-buffer\": field \"vaddr\": [0x3000_1000, \
             0x3000_2000) overlaps the IPC buffer at [0x3000_1000, 0x3000_2000)",
            "tests/fixtures/t/system.toml:48:11: component \"server\": map \"on-image\": field \"vaddr\": [0x50_0000, \
             0x50_1000) overlaps the image area at [0x40_0000, 0x2000_0000)",
            "tests/fixtures/t/system.toml:53:11: component \"server\": map \"on-null\": field \"vaddr\": [0x0, 0x1000) \
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
            "tests/fixtures/t/system.toml:26:10: component \"server\": cap \"heap-base\": its constant HEAP_BASE is already \
             generated for the heap",
            "tests/fixtures/t/system.toml:29:12: component \"server\": map \"buf\": its constant BUF_SIZE is already \
             generated for cap \"buf-size\"",
            "tests/fixtures/t/system.toml:35:12: component \"server\": map \"buf\": duplicate map name (first at line 29); \
             give one of them a \"name\"",
        ]
        .join("\n")
    );
}

#[test]
fn calls_must_go_up_in_priority() {
    assert_eq!(
        errors(&pair_with("priority = 2", "priority = 1")),
        "tests/fixtures/t/system.toml:15:12: component \"client\": cap \"ping\": field \"rights\": calls endpoint \"ping\", \
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
            "tests/fixtures/t/system.toml:12:18: component \"client\": field \"fault-endpoint\": faults go to endpoint \
             \"ping\", but no component can receive from it (no cap on it has \"recv\")",
            "tests/fixtures/t/system.toml:16:12: component \"client\": cap \"ping\": field \"rights\": can send on endpoint \
             \"ping\", but no component can receive from it (no cap on it has \"recv\")",
        ]
        .join("\n")
    );
}

#[test]
fn a_component_cannot_handle_its_own_faults() {
    assert_eq!(
        errors(&pair_with("cpu = 1", "cpu = 1\nfault-endpoint = \"ping\"")),
        "tests/fixtures/t/system.toml:21:18: component \"server\": field \"fault-endpoint\": only \"server\" itself receives \
         from endpoint \"ping\", and a faulted component cannot handle its own fault"
    );
}

#[test]
fn fault_badge_needs_a_fault_endpoint() {
    assert_eq!(
        errors(&pair_with("cpu = 1", "cpu = 1\nfault-badge = 1")),
        "tests/fixtures/t/system.toml:21:15: component \"server\": field \"fault-badge\": has no effect without \
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
        "tests/fixtures/t/system.toml:19:12: component \"client\": cap \"events\": field \"rights\": can signal notification \
         \"events\", but no component waits on it (no cap on it has \"wait\" and no component binds it)"
    );
}

#[test]
fn a_bound_notification_is_a_waiter() {
    let bound = signalled("  rights = [\"signal\"]\n  badge = 2\n").replacen(
        "cpu = 1\n",
        "cpu = 1\nbound-notification = \"events\"\n",
        1,
    );
    let system = parse(&bound).unwrap();
    assert_eq!(
        (system.components[0].bound_notification, system.components[1].bound_notification),
        (None, Some(0))
    );
}

#[test]
fn a_bound_notification_must_exist() {
    assert_eq!(
        errors(&pair_with("cpu = 1", "cpu = 1\nbound-notification = \"nope\"")),
        "tests/fixtures/t/system.toml:21:22: component \"server\": field \"bound-notification\": no notification named \
         \"nope\" (there are no notifications)"
    );
}

#[test]
fn a_notification_is_bound_to_one_component_at_most() {
    let text = signalled("  rights = [\"wait\"]\n")
        .replacen("cpu = 0\n", "cpu = 0\nbound-notification = \"events\"\n", 1)
        .replacen("cpu = 1\n", "cpu = 1\nbound-notification = \"events\"\n", 1);
    assert_eq!(
        errors(&text),
        "tests/fixtures/t/system.toml:27:22: component \"server\": field \"bound-notification\": notification \
         \"events\" is already bound to component \"client\""
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
        "tests/fixtures/t/system.toml:31:16: irq \"rtc\": field \"notification\": signals notification \"irq-events\", but \
         no component waits on it (no cap on it has \"wait\" and no component binds it)"
    );
    assert_eq!(
        errors(&with_irq(
            "",
            &format!("[[component]]\nname = \"driver\"\npriority = 3\ncpu = 0\n{WAIT_IRQ}")
        )),
        "tests/fixtures/t/system.toml:28:8: irq \"rtc\": no component holds a cap to it, so nobody can acknowledge it"
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
        "tests/fixtures/t/system.toml:31:8: irq \"rtc\": its holders \"client\" (CPU 0) and \"server\" (CPU 1) disagree on \
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
            "tests/fixtures/t/system.toml:29:9: irq \"rtc\": field \"intid\": 27 is out of range 32..=1019",
            "tests/fixtures/t/system.toml:32:9: irq \"rtc\": field \"badge\": must not be zero: the interrupt ORs the badge \
             into the notification word, and waiters need a non-zero word",
            "tests/fixtures/t/system.toml:33:7: irq \"rtc\": field \"cpu\": 2 is out of range 0..=1: the system has 2 CPUs",
            "tests/fixtures/t/system.toml:49:9: irq \"twin2\": field \"intid\": INTID 40 is already irq \"twin\"",
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
            "tests/fixtures/t/system.toml:28:13: component \"server\": cap \"extra\": field \"rights\": \"wait\" is not a \
             right of an endpoint cap (recv, send, call)",
        ),
        (
            "  notification = \"n\"\n  rights = [\"wait\", \"call\"]\n",
            "tests/fixtures/t/system.toml:28:21: component \"server\": cap \"extra\": field \"rights\": \"call\" is not a \
             right of a notification cap (wait, signal)",
        ),
        (
            "  endpoint = \"ping\"\n  rights = [\"recv\", \"recv\"]\n",
            "tests/fixtures/t/system.toml:28:21: component \"server\": cap \"extra\": field \"rights\": \"recv\" is listed twice",
        ),
        (
            "  endpoint = \"ping\"\n  rights = []\n",
            "tests/fixtures/t/system.toml:28:12: component \"server\": cap \"extra\": field \"rights\": an endpoint cap needs \
             at least one of the rights recv, send, call",
        ),
        (
            "  notification = \"n\"\n",
            "tests/fixtures/t/system.toml:26:10: component \"server\": cap \"extra\": field \"rights\" is missing: a \
             notification cap needs at least one of the rights wait, signal",
        ),
        (
            "  irq = \"i\"\n  rights = [\"recv\"]\n",
            "tests/fixtures/t/system.toml:28:12: component \"server\": cap \"extra\": field \"rights\": an irq cap has no \
             rights; leave the field out",
        ),
        (
            "  control = true\n  rights = [\"call\"]\n",
            "tests/fixtures/t/system.toml:28:12: component \"server\": cap \"extra\": field \"rights\": the control cap has no \
             rights; leave the field out",
        ),
        (
            "  endpoint = \"ping\"\n  rights = [\"recv\"]\n  badge = 5\n",
            "tests/fixtures/t/system.toml:29:11: component \"server\": cap \"extra\": field \"badge\": only caps with the \
             send, call or signal right carry a badge",
        ),
        (
            "  notification = \"n\"\n  rights = [\"wait\", \"signal\"]\n  badge = 0\n",
            "tests/fixtures/t/system.toml:29:11: component \"server\": cap \"extra\": field \"badge\": must not be zero: \
             Signal ORs the badge into the notification word",
        ),
        (
            "  notification = \"n\"\n  rights = [\"wait\", \"signal\"]\n",
            "tests/fixtures/t/system.toml:26:10: component \"server\": cap \"extra\": field \"badge\" is missing: Signal ORs \
             the badge into the notification word, so a cap with the signal right needs a non-zero one",
        ),
        (
            "  endpoint = \"ping\"\n  rights = [\"send\"]\n  badge = -1\n",
            "tests/fixtures/t/system.toml:29:11: component \"server\": cap \"extra\": field \"badge\": -1 is negative",
        ),
        (
            "  endpoint = \"ping\"\n  notification = \"n\"\n  rights = [\"wait\"]\n",
            "tests/fixtures/t/system.toml:28:18: component \"server\": cap \"extra\": field \"notification\": a cap names one \
             object, and this one already has \"endpoint\"",
        ),
        (
            "  rights = [\"wait\"]\n",
            "tests/fixtures/t/system.toml:26:10: component \"server\": cap \"extra\": needs one of the fields \"endpoint\", \
             \"notification\", \"irq\", \"control\", \"vcpu\", \"vcpus\" or \"console\"",
        ),
        (
            "  control = false\n",
            "tests/fixtures/t/system.toml:27:13: component \"server\": cap \"extra\": field \"control\": write \"control = \
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
            "tests/fixtures/t/system.toml:26:8: endpoint \"spare\": no cap, fault-endpoint, vgic-endpoint or route refers to it",
            "tests/fixtures/t/system.toml:28:8: notification \"quiet\": no cap or irq refers to it",
            "tests/fixtures/t/system.toml:30:8: memory-region \"unmapped\": no component maps it and no VM has it passed through",
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
        "tests/fixtures/t/system.toml:4:10: system: field \"memory\": 64M cannot hold the 49192K that stacks, heaps, IPC \
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

/// [`PAIR`] and a VM "guest" (lines 25-32) with `from` replaced by `to` (which must occur),
/// followed by `more`.
fn guest_with(from: &str, to: &str, more: &str) -> String {
    let vm = vm("guest");
    assert!(vm.contains(from), "{from:?}");
    pair_and(&(vm.replacen(from, to, 1) + more))
}

/// A route of the VM to [`PAIR`]'s server, for the PL011 UART.
const UART_ROUTE: &str = "  [[vm.route]]\n  name = \"uart\"\n  base = 0x0900_0000\n  size = \"4K\"\n  endpoint = \"ping\"\n  badge = 3\n";

#[test]
fn a_vm_loads_with_its_defaults() {
    let text = guest_with(
        "priority = 0\n",
        "priority = 1\ninitrd = \"initrd.img\"\ncmdline = \"quiet\"\n",
        UART_ROUTE,
    );
    let system = parse(&text).unwrap();
    let guest = &system.vms[0];
    assert_eq!((guest.name.as_str(), &guest.cpus[..], guest.priority), ("guest", &[0][..], 1));
    assert_eq!(guest.source, GuestSource::File(GuestFile::Path(PathBuf::from("tests/fixtures/t/guest.bin"))));
    assert_eq!(
        (guest.image_format, guest.ram_base, guest.memory),
        (ImageFormat::Binary, 0x4000_0000, 16 << 20)
    );
    assert_eq!(guest.initrd, Some(GuestFile::Path(PathBuf::from("tests/fixtures/t/initrd.img"))));
    assert_eq!(guest.cmdline.as_deref(), Some("quiet"));
    assert_eq!((guest.fault_endpoint, guest.fault_badge, guest.unclaimed), (0, 0, Unclaimed::ReadZero));
    let route = &guest.routes[0];
    assert_eq!(
        (route.name.as_str(), route.base, route.size, route.endpoint, route.badge),
        ("uart", 0x0900_0000, 0x1000, 0, 3)
    );

    let text = guest_with(
        "image = \"guest.bin\"\nimage-format = \"binary\"\n",
        "crate = \"test-guest\"\nram-base = 0x8000_0000\nunclaimed = \"abort\"\nfault-badge = 9\n",
        "",
    );
    let guest = &parse(&text).unwrap().vms[0];
    assert_eq!(
        (&guest.source, guest.image_format),
        (&GuestSource::Crate("test-guest".into()), ImageFormat::Elf)
    );
    assert_eq!((guest.ram_base, guest.unclaimed, guest.fault_badge), (0x8000_0000, Unclaimed::Abort, 9));
    assert!(!guest.uses_debian_files());

    let text = guest_with(
        "image = \"guest.bin\"\nimage-format = \"binary\"\n",
        "image = \"debian:linux-image\"\nimage-format = \"linux\"\ninitrd = \"debian:busybox-initramfs\"\n",
        "",
    );
    let guest = &parse(&text).unwrap().vms[0];
    assert_eq!(guest.source, GuestSource::File(GuestFile::Debian(DebianFile::LinuxImage)));
    assert_eq!(guest.initrd, Some(GuestFile::Debian(DebianFile::BusyboxInitramfs)));
    assert!(guest.uses_debian_files());
}

#[test]
fn vm_cpus_memory_and_ram_base() {
    let cases = [
        (
            "cpus = [0]",
            "cpus = []",
            "27:8: vm \"guest\": field \"cpus\": needs at least one vCPU: list the physical CPU of each",
        ),
        (
            "cpus = [0]",
            "cpus = [0, 2]",
            "27:12: vm \"guest\": field \"cpus\": 2 is out of range 0..=1: the system has 2 CPUs",
        ),
        (
            "memory = \"16M\"",
            "memory = \"17M\"",
            "28:10: vm \"guest\": field \"memory\": 17M is not a multiple of 2M",
        ),
        (
            "memory = \"16M\"",
            "memory = \"16M\"\nram-base = 0x4010_0000",
            "29:12: vm \"guest\": field \"ram-base\": 0x4010_0000 is not a multiple of 2M",
        ),
        (
            "memory = \"16M\"",
            "memory = \"16M\"\nram-base = 0x0800_0000",
            "29:12: vm \"guest\": field \"ram-base\": guest RAM [0x800_0000, 0x900_0000) overlaps the GIC distributor \
             (GICD) at [0x800_0000, 0x801_0000) in the guest's device tree",
        ),
        (
            "memory = \"16M\"",
            "memory = \"256T\"",
            "28:10: vm \"guest\": field \"memory\": \"256T\" is not a size: write a byte count or a number with a K, M or G \
             suffix, such as \"16K\"",
        ),
        (
            "memory = \"16M\"",
            "memory = \"16M\"\nram-base = 0xffff_ffe0_0000",
            "29:12: vm \"guest\": field \"ram-base\": guest RAM [0xffff_ffe0_0000, 0x1_0000_00e0_0000) ends past the \
             48-bit limit 0x1_0000_0000_0000",
        ),
    ];
    for (from, to, expected) in cases {
        assert_eq!(errors(&guest_with(from, to, "")), format!("{PATH}:{expected}"), "{to}");
    }
}

#[test]
fn vm_guest_image() {
    let image = "image = \"guest.bin\"\nimage-format = \"binary\"\n";
    let cases = [
        (
            image,
            "image = \"missing.bin\"\nimage-format = \"binary\"\n",
            "29:9: vm \"guest\": field \"image\": tests/fixtures/t/missing.bin is not a file",
        ),
        (
            image,
            "image = \"\"\nimage-format = \"binary\"\n",
            "29:9: vm \"guest\": field \"image\": must name a file",
        ),
        (
            image,
            "image = \"guest.bin\"\n",
            "29:9: vm \"guest\": field \"image-format\" is missing: write \"binary\", \"elf\" or \"linux\"",
        ),
        (
            image,
            "image = \"guest.bin\"\nimage-format = \"binary\"\ncrate = \"test-guest\"\n",
            "31:9: vm \"guest\": field \"crate\": a VM has one guest, and this one already has an \"image\"",
        ),
        (
            image,
            "",
            "26:8: vm \"guest\": needs a guest: field \"image\" (a file) or \"crate\" (a workspace package)",
        ),
        (
            image,
            "crate = \"test-guest\"\nimage-format = \"linux\"\n",
            "30:16: vm \"guest\": field \"image-format\": a crate builds an ELF: write \"elf\", or leave the field out",
        ),
        (
            image,
            "crate = \"test guest\"\n",
            "29:9: vm \"guest\": field \"crate\": \"test guest\" is not a cargo package name",
        ),
        (
            "priority = 0\n",
            "priority = 0\ninitrd = \"nowhere.img\"\n",
            "32:10: vm \"guest\": field \"initrd\": tests/fixtures/t/nowhere.img is not a file",
        ),
        (
            image,
            "image = \"debian:linux\"\nimage-format = \"linux\"\n",
            "29:9: vm \"guest\": field \"image\": unknown Debian file \"debian:linux\": the image made from \
             Debian's packages is \"debian:linux-image\"",
        ),
        (
            image,
            "image = \"debian:linux-image\"\nimage-format = \"binary\"\n",
            "30:16: vm \"guest\": field \"image-format\": debian:linux-image is a Linux arm64 Image: write \"linux\"",
        ),
        (
            "priority = 0\n",
            "priority = 0\ninitrd = \"debian:linux-image\"\n",
            "32:10: vm \"guest\": field \"initrd\": unknown Debian file \"debian:linux-image\": the initrd made \
             from Debian's packages is \"debian:busybox-initramfs\"",
        ),
        (
            "priority = 0\n",
            "priority = 0\ncmdline = \"a\\u0000b\"\n",
            "32:11: vm \"guest\": field \"cmdline\": contains a NUL character",
        ),
    ];
    for (from, to, expected) in cases {
        assert_eq!(errors(&guest_with(from, to, "")), format!("{PATH}:{expected}"), "{to}");
    }
    assert_eq!(
        errors(&guest_with("image-format = \"binary\"", "image-format = \"pe\"", "")),
        format!("{PATH}:30:16: unknown variant `pe`, expected one of `binary`, `elf`, `linux`")
    );
}

#[test]
fn vm_fault_endpoint() {
    let fault = "fault-endpoint = \"ping\"\n";
    assert_eq!(
        errors(&guest_with(fault, "fault-endpoint = \"pong\"\n", "")),
        format!(
            "{PATH}:32:18: vm \"guest\": field \"fault-endpoint\": no endpoint named \"pong\" (endpoints: ping)"
        )
    );
    assert_eq!(errors(&guest_with(fault, "", "")), format!("{PATH}:25:1: missing field `fault-endpoint`"));
    assert_eq!(
        errors(&guest_with("priority = 0\n", "priority = 2\n", "")),
        format!(
            "{PATH}:32:18: vm \"guest\": field \"fault-endpoint\": endpoint \"ping\" is received by \"server\" at priority \
             2, which is not above the VM's 2: a fault is a call and must go to a higher priority"
        )
    );
    let unreceived = guest_with(fault, "fault-endpoint = \"traps\"\n", "[[endpoint]]\nname = \"traps\"\n");
    assert_eq!(
        errors(&unreceived),
        format!(
            "{PATH}:32:18: vm \"guest\": field \"fault-endpoint\": traps go to endpoint \"traps\", but no component can \
             receive from it (no cap on it has \"recv\")"
        )
    );
    assert_eq!(
        errors(&guest_with(fault, "fault-endpoint = \"ping\"\nfault-badge = -2\n", "")),
        format!("{PATH}:33:15: vm \"guest\": field \"fault-badge\": -2 is negative")
    );
}

#[test]
fn vm_vgic_endpoint() {
    let fault = "fault-endpoint = \"ping\"\n";
    let with = |more: &str| guest_with(fault, &format!("{fault}{more}"), "");
    let guest = &parse(&with("vgic-endpoint = \"ping\"\nvgic-badge = 5\n")).unwrap().vms[0];
    assert_eq!((guest.vgic_endpoint, guest.vgic_badge), (Some(0), 5));
    let guest = &parse(&with("")).unwrap().vms[0];
    assert_eq!((guest.vgic_endpoint, guest.vgic_badge), (None, 0));
    assert_eq!(
        errors(&with("vgic-endpoint = \"pong\"\n")),
        format!(
            "{PATH}:33:17: vm \"guest\": field \"vgic-endpoint\": no endpoint named \"pong\" (endpoints: ping)"
        )
    );
    assert_eq!(
        errors(&with("vgic-badge = 5\n")),
        format!("{PATH}:33:14: vm \"guest\": field \"vgic-badge\": has no effect without \"vgic-endpoint\"")
    );
    let unreceived = guest_with(
        fault,
        &format!("{fault}vgic-endpoint = \"events\"\n"),
        "[[endpoint]]\nname = \"events\"\n",
    );
    assert_eq!(
        errors(&unreceived),
        format!(
            "{PATH}:33:17: vm \"guest\": field \"vgic-endpoint\": vGIC events go to endpoint \"events\", but no \
             component can receive from it (no cap on it has \"recv\")"
        )
    );
}

/// A route of the VM (lines 33-37) to [`PAIR`]'s server.
fn route(name: &str, base: u64, size: &str) -> String {
    format!(
        "  [[vm.route]]\n  name = \"{name}\"\n  base = {base:#x}\n  size = \"{size}\"\n  endpoint = \"ping\"\n"
    )
}

#[test]
fn vm_routes() {
    let guest = |routes: String| guest_with("priority = 0\n", "priority = 0\n", &routes);
    let cases = [
        (
            route("ram", 0x4080_0000, "4K"),
            "35:10: vm \"guest\": route \"ram\": field \"base\": [0x4080_0000, 0x4080_1000) overlaps guest RAM at \
             [0x4000_0000, 0x4100_0000)",
        ),
        (
            route("a", 0x1000_0000, "8K") + &route("b", 0x1000_1000, "4K"),
            "40:10: vm \"guest\": route \"b\": field \"base\": [0x1000_1000, 0x1000_2000) overlaps route \"a\" at \
             [0x1000_0000, 0x1000_2000)",
        ),
        (
            route("gicd", 0x0800_0000, "4K"),
            "35:10: vm \"guest\": route \"gicd\": field \"base\": [0x800_0000, 0x800_1000) overlaps the GIC distributor \
             (GICD) at [0x800_0000, 0x801_0000) in the guest's device tree: a route to a device covers exactly its \
             registers",
        ),
        (
            route("gicr", 0x080A_0000, "256K"),
            "35:10: vm \"guest\": route \"gicr\": field \"base\": [0x80a_0000, 0x80e_0000) overlaps the redistributors \
             (GICR) at [0x80a_0000, 0x80c_0000) in the guest's device tree: a route to a device covers exactly its \
             registers",
        ),
        (
            route("odd", 0x1000_0800, "4K"),
            "35:10: vm \"guest\": route \"odd\": field \"base\": 0x1000_0800 is not a multiple of 4K (page aligned)",
        ),
        (
            route("empty", 0x1000_0000, "0"),
            "36:10: vm \"guest\": route \"empty\": field \"size\": must not be zero",
        ),
        (
            route("high", 0xffff_ffff_f000, "8K"),
            "36:10: vm \"guest\": route \"high\": field \"size\": [0xffff_ffff_f000, 0x1_0000_0000_1000) ends past the \
             48-bit limit 0x1_0000_0000_0000",
        ),
        (
            route("uart", 0x0900_0000, "4K").replace("\"ping\"", "\"nope\""),
            "37:14: vm \"guest\": route \"uart\": field \"endpoint\": no endpoint named \"nope\" (endpoints: ping)",
        ),
        (
            route("uart", 0x0900_0000, "4K") + &route("uart", 0x0901_0000, "4K"),
            "39:10: route \"uart\": field \"name\": duplicate name, already used by the route at line 34",
        ),
        (
            route("uart", 0x0900_0000, "4K") + "  badge = -1\n",
            "38:11: vm \"guest\": route \"uart\": field \"badge\": -1 is negative",
        ),
    ];
    for (routes, expected) in cases {
        assert_eq!(errors(&guest(routes.clone())), format!("{PATH}:{expected}"), "{routes}");
    }
    // Each device of the device tree may have its route.
    let devices = route("gicd", 0x0800_0000, "64K")
        + &route("gits", 0x0808_0000, "128K")
        + &route("gicr", 0x080A_0000, "128K")
        + &route("uart", 0x0900_0000, "4K");
    assert_eq!(parse(&guest(devices)).unwrap().vms[0].routes.len(), 4);
    // Route endpoints need a receiver above the VM.
    let unreceived = guest(
        route("uart", 0x0900_0000, "4K").replace("\"ping\"", "\"uart\"") + "[[endpoint]]\nname = \"uart\"\n",
    );
    assert_eq!(
        errors(&unreceived),
        format!(
            "{PATH}:37:14: vm \"guest\": route \"uart\": field \"endpoint\": faults go to endpoint \"uart\", but no \
             component can receive from it (no cap on it has \"recv\")"
        )
    );
    assert_eq!(
        errors(&guest_with("priority = 0\n", "priority = 3\n", &route("uart", 0x0900_0000, "4K"))),
        [
            format!(
                "{PATH}:32:18: vm \"guest\": field \"fault-endpoint\": endpoint \"ping\" is received by \"server\" at \
                 priority 2, which is not above the VM's 3: a fault is a call and must go to a higher priority"
            ),
            format!(
                "{PATH}:37:14: vm \"guest\": route \"uart\": field \"endpoint\": endpoint \"ping\" is received by \"server\" \
                 at priority 2, which is not above the VM's 3: a fault is a call and must go to a higher priority"
            ),
        ]
        .join("\n")
    );
}

#[test]
fn vcpu_and_console_caps() {
    let system = parse(&server_cap_and_guest("  vcpus = \"guest\"\n  [[component.cap]]\n  name = \"one\"\n  vcpu = \"guest:1\"\n  [[component.cap]]\n  name = \"out\"\n  console = true\n")).unwrap();
    let caps: Vec<CapObject> = system.components[1].caps.iter().map(|cap| cap.object).collect();
    assert_eq!(
        caps[1..],
        [CapObject::Vcpus { vm: 0 }, CapObject::Vcpu { vm: 0, index: 1 }, CapObject::Console]
    );
    let slots: Vec<usize> = system.slots(&system.components[1]).iter().map(|(slot, _)| *slot).collect();
    assert_eq!(slots, [0, 1, 3, 4]);

    let cases = [
        (
            "  vcpu = \"guest\"\n",
            "27:10: component \"server\": cap \"extra\": field \"vcpu\": \"guest\" does not name one vCPU: write \"<vm>:<vCPU index>\" (or use \"vcpus\" for all of a VM's)",
        ),
        (
            "  vcpu = \"guest:x\"\n",
            "27:10: component \"server\": cap \"extra\": field \"vcpu\": \"guest:x\" does not name one vCPU: write \"<vm>:<vCPU index>\" (or use \"vcpus\" for all of a VM's)",
        ),
        (
            "  vcpu = \"host:0\"\n",
            "27:10: component \"server\": cap \"extra\": field \"vcpu\": no vm named \"host\" (vms: guest)",
        ),
        (
            "  vcpu = \"guest:2\"\n",
            "27:10: component \"server\": cap \"extra\": field \"vcpu\": vm \"guest\" has 2 vCPU(s), 0..=1",
        ),
        (
            "  vcpus = \"host\"\n",
            "27:11: component \"server\": cap \"extra\": field \"vcpus\": no vm named \"host\" (vms: guest)",
        ),
        (
            "  vcpus = \"guest\"\n  rights = [\"recv\"]\n",
            "28:12: component \"server\": cap \"extra\": field \"rights\": a vcpus cap has no rights; leave the field out",
        ),
        (
            "  console = false\n",
            "27:13: component \"server\": cap \"extra\": field \"console\": write \"console = true\", or leave the field out",
        ),
        (
            "  console = true\n  control = true\n",
            "28:13: component \"server\": cap \"extra\": field \"control\": a cap names one object, and this one already has \"console\"",
        ),
    ];
    for (fields, expected) in cases {
        assert_eq!(errors(&server_cap_and_guest(fields)), format!("{PATH}:{expected}"), "{fields}");
    }
}

/// [`PAIR`] with the server's cap "extra" given `fields` (from line 27), and a VM "guest"
/// of two vCPUs after it.
fn server_cap_and_guest(fields: &str) -> String {
    let guest = vm("guest").replace("cpus = [0]", "cpus = [0, 1]");
    pair_and(&format!("  [[component.cap]]\n  name = \"extra\"\n{fields}{guest}"))
}

#[test]
fn vm_counts_stay_within_the_kernel_limits() {
    let cpus = vec!["0"; bootinfo::MAX_VCPUS + 1].join(", ");
    assert_eq!(
        errors(&guest_with("cpus = [0]", &format!("cpus = [{cpus}]"), "")),
        format!(
            "{PATH}:26:8: vm \"guest\": too many vCPUs (bootinfo::MAX_VCPUS), counting every VM's: the kernel supports at most 32"
        )
    );
    let vms: String =
        (0..=bootinfo::MAX_VMS).map(|index| vm(&format!("g{index}")).replace("16M", "2M")).collect();
    let last_name_line = 26 + 8 * bootinfo::MAX_VMS;
    assert_eq!(
        errors(&pair_and(&vms).replace("memory = \"64M\"", "memory = \"1G\"")),
        format!(
            "{PATH}:{last_name_line}:8: vm \"g8\": too many VMs (bootinfo::MAX_VMS): the kernel supports at most 8"
        )
    );
}

#[test]
fn vm_ram_counts_against_system_memory_with_its_alignment() {
    // 46M of guest RAM, 2M of alignment, 2 * 20K for the components and 16M for the kernel.
    assert_eq!(
        errors(&guest_with("memory = \"16M\"", "memory = \"46M\"", "")),
        format!(
            "{PATH}:4:10: system: field \"memory\": 64M cannot hold the 49192K that stacks, heaps, IPC buffers, RAM \
             regions and VMs need plus the 16M kept free for the kernel"
        )
    );
    assert!(parse(&guest_with("memory = \"16M\"", "memory = \"44M\"", "")).is_ok());
}

#[test]
fn every_error_is_shown_with_its_source_line() {
    let message = parse(&pair_with("priority = 2", "priority = 300")).unwrap_err().to_string();
    assert_eq!(
        message,
        "tests/fixtures/t/system.toml:19:12: component \"server\": field \"priority\": 300 is out of range 0..=254\n    |\n \
         19 | priority = 300\n    |            ^^^"
    );
}

#[test]
fn the_documented_vm_example_is_valid() {
    let docs = std::fs::read_to_string("../docs/manifest.md").unwrap();
    let section = &docs[docs.find("## A system with a VM").expect("docs/manifest.md has a VM example")..];
    let start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + section[start..].find("```").unwrap();
    let system = manifest::parse(&section[start..end], Path::new("images/guest-demo/system.toml")).unwrap();
    let guest = &system.vms[0];
    assert_eq!((&guest.cpus[..], guest.routes.len()), (&[0, 1][..], 4));
    let vmm = &system.components[2];
    let slots: Vec<usize> = system.slots(vmm).iter().map(|(slot, _)| *slot).collect();
    assert_eq!(slots, [0, 1, 2, 4]);
}

/// A VM with a route to its two redistributors and a cap on vCPU 1.
fn replaceable_guest() -> System {
    let guest =
        vm("guest").replace("cpus = [0]", "cpus = [0, 1]").replace("memory = \"16M\"", "memory = \"8M\"")
            + &route("gicr", 0x080A_0000, "256K")
            + &route("uart", 0x0900_0000, "4K");
    parse(&pair_and(&guest)).unwrap()
}

#[test]
fn the_command_line_replaces_the_guest() {
    let mut system = replaceable_guest();
    let replacement = GuestOverride {
        kernel: Some("tests/fixtures/t/Image".into()),
        initrd: Some("tests/fixtures/t/initrd.img".into()),
        append: Some("console=ttyAMA0".into()),
        vcpus: Some(5),
    };
    system.replace_guest(&replacement).unwrap();
    let guest = &system.vms[0];
    assert_eq!(
        (&guest.source, guest.image_format),
        (&GuestSource::File(GuestFile::Path("tests/fixtures/t/Image".into())), ImageFormat::Linux)
    );
    assert_eq!(guest.initrd, Some(GuestFile::Path(PathBuf::from("tests/fixtures/t/initrd.img"))));
    assert_eq!(guest.cmdline.as_deref(), Some("console=ttyAMA0"));
    // Round-robin over the system's two CPUs; the redistributors' route follows.
    assert_eq!(guest.cpus, [0, 1, 0, 1, 0]);
    assert_eq!((guest.routes[0].base, guest.routes[0].size), (0x080A_0000, 5 * 0x2_0000));
    assert_eq!((guest.routes[1].base, guest.routes[1].size), (0x0900_0000, 0x1000));

    // What is not given stays; a raw binary is told by the absence of magic numbers.
    let mut system = replaceable_guest();
    let binary =
        GuestOverride { kernel: Some("tests/fixtures/t/initrd.img".into()), ..GuestOverride::default() };
    system.replace_guest(&binary).unwrap();
    let guest = &system.vms[0];
    assert_eq!(
        (guest.image_format, guest.cpus.len(), guest.cmdline.as_deref()),
        (ImageFormat::Binary, 2, None)
    );
}

#[test]
fn the_command_line_cannot_break_the_system() {
    let replace = |system: &mut System, replacement: GuestOverride| {
        system.replace_guest(&replacement).map(|_| ()).map_err(|error| format!("{error:#}"))
    };
    let vcpus = |count| GuestOverride { vcpus: Some(count), ..GuestOverride::default() };
    assert_eq!(
        replace(&mut replaceable_guest(), vcpus(0)),
        Err(format!("{PATH}: --vcpus 0: a VM has 1 to 32 vCPUs (bootinfo::MAX_VCPUS)"))
    );
    assert_eq!(
        replace(&mut replaceable_guest(), vcpus(33)),
        Err(format!("{PATH}: --vcpus 33: a VM has 1 to 32 vCPUs (bootinfo::MAX_VCPUS)"))
    );
    let mut with_cap = parse(&pair_and(&format!(
        "  [[component.cap]]\n  name = \"second\"\n  vcpu = \"guest:1\"\n{}",
        vm("guest").replace("[0]", "[0, 1]")
    )))
    .unwrap();
    assert_eq!(
        replace(&mut with_cap, vcpus(1)),
        Err(format!(
            "{PATH}: --vcpus 1: component \"server\": cap \"second\" names vCPU 1, which no longer exists"
        ))
    );
    let mut crowded = parse(&pair_and(
        &(vm("guest") + &route("gicr", 0x080A_0000, "128K") + &route("next", 0x080C_0000, "4K")),
    ))
    .unwrap();
    assert_eq!(
        replace(&mut crowded, vcpus(2)),
        Err(format!(
            "{PATH}: --vcpus 2: vm \"guest\": route \"next\" [0x80c_0000, 0x80c_1000) overlaps the redistributors (GICR) \
             at [0x80a_0000, 0x80e_0000): give it exactly that range (size 128K per vCPU)"
        ))
    );
    let missing = GuestOverride { kernel: Some("tests/fixtures/t/none".into()), ..GuestOverride::default() };
    let error = replace(&mut replaceable_guest(), missing).unwrap_err();
    assert!(error.starts_with("--kernel tests/fixtures/t/none: No such file"), "{error}");
    let missing = GuestOverride { initrd: Some("tests/fixtures/t/none".into()), ..GuestOverride::default() };
    assert_eq!(
        replace(&mut replaceable_guest(), missing),
        Err("--initrd tests/fixtures/t/none: not a file".into())
    );
    let two = pair_and(&(vm("one") + &vm("two")));
    assert_eq!(
        replace(&mut parse(&two).unwrap(), vcpus(1)),
        Err(format!(
            "{PATH}: --kernel, --initrd, --append and --vcpus replace the guest of the system's only VM, and system \
             \"t\" has 2 VMs"
        ))
    );
    // Without options nothing changes, whatever the system.
    assert_eq!(replace(&mut parse(&two).unwrap(), GuestOverride::default()), Ok(()));
}

/// A `[[component.map]]` of [`PAIR`]'s server with `fields` (one per line).
fn server_map(fields: &[&str]) -> String {
    let fields: Vec<String> = fields.iter().map(|field| format!("  {field}\n")).collect();
    format!("  [[component.map]]\n{}", fields.concat())
}

#[test]
fn a_vm_ram_map_covers_the_whole_guest_ram() {
    let map = server_map(&["vm-ram = \"guest\"", "vaddr = 0x1_0000_0000", "perms = \"rw\""]);
    let placed = server_map(&["name = \"again\"", "vm-ram = \"guest\"", "perms = \"r\""]);
    let system = parse(&pair_and(&(map + &placed + &vm("guest")))).unwrap();
    let maps = &system.components[1].maps;
    assert_eq!(
        (maps[0].name.as_str(), maps[0].mapped, maps[0].vaddr, maps[0].size, maps[0].perms),
        ("guest", manifest::Mapped::VmRam(0), 0x1_0000_0000, 16 << 20, Perms::Rw)
    );
    assert_eq!((maps[1].name.as_str(), maps[1].vaddr, maps[1].perms), ("again", 0x4000_0000, Perms::R));
}

#[test]
fn vm_ram_map_errors() {
    let unknown = server_map(&["vm-ram = \"nothing\"", "perms = \"rw\""]);
    let executable = server_map(&["name = \"x\"", "vm-ram = \"guest\"", "perms = \"rx\""]);
    let both = server_map(&["name = \"both\"", "vm-ram = \"guest\"", "region = \"page\"", "perms = \"r\""]);
    let neither = server_map(&["name = \"neither\"", "perms = \"r\""]);
    let overlap =
        server_map(&["name = \"over\"", "vm-ram = \"guest\"", "vaddr = 0x2000_0000", "perms = \"r\""]);
    let constant = server_map(&["name = \"heap\"", "vm-ram = \"guest\"", "perms = \"r\""]);
    let maps = [unknown, executable, both, neither, overlap, constant].concat();
    // The server gets a heap (line 19) for the overlap.
    let text = pair_and(&(maps + &region("page", "4K", None) + &vm("guest"))).replacen(
        "name = \"server\"\n",
        "name = \"server\"\nheap-size = \"4K\"\n",
        1,
    );
    assert_eq!(
        errors(&text),
        [
            "tests/fixtures/t/system.toml:27:12: component \"server\": map \"nothing\": field \"vm-ram\": no vm named \
             \"nothing\" (vms: guest)",
            "tests/fixtures/t/system.toml:32:11: component \"server\": map \"x\": field \"perms\": guest RAM cannot be \
             executable in a component",
            "tests/fixtures/t/system.toml:35:12: component \"server\": map \"both\": field \"vm-ram\": a map has either \
             \"region\" or \"vm-ram\", not both",
            "tests/fixtures/t/system.toml:39:10: component \"server\": map \"neither\": needs \"region\" (a memory \
             region) or \"vm-ram\" (a VM)",
            "tests/fixtures/t/system.toml:44:11: component \"server\": map \"over\": field \"vaddr\": [0x2000_0000, \
             0x2100_0000) overlaps the heap at [0x2000_0000, 0x2000_1000)",
            "tests/fixtures/t/system.toml:47:10: component \"server\": map \"heap\": its constant HEAP_SIZE is already \
             generated for the heap",
        ]
        .join("\n")
    );
}

/// [`PAIR`] whose server is the vgic-server of a VM with the PL031 RTC passed through
/// (the server bound to the RTC's notification, holding its irq cap).
fn passthrough_system() -> String {
    let server_cap = "  name = \"ping\"\n  endpoint = \"ping\"\n  rights = [\"recv\"]\n";
    let pair = PAIR.replacen("cpu = 1\n", "cpu = 1\nbound-notification = \"irqs\"\n", 1).replacen(
        server_cap,
        &format!("{server_cap}  [[component.cap]]\n  name = \"rtc-irq\"\n  irq = \"rtc\"\n"),
        1,
    );
    let vm = vm("guest").replacen(
        "fault-endpoint = \"ping\"\n",
        "fault-endpoint = \"ping\"\nvgic-endpoint = \"ping\"\n",
        1,
    );
    format!(
        "{SYSTEM}{pair}[[notification]]\nname = \"irqs\"\n[[memory-region]]\nname = \"rtc\"\nsize = \"4K\"\n\
         phys-addr = 0x0901_0000\n[[irq]]\nname = \"rtc\"\nintid = 34\ntrigger = \"level\"\nnotification = \"irqs\"\n\
         badge = 1\n{vm}  [[vm.passthrough]]\n  irq = \"rtc\"\n  region = \"rtc\"\n  compatible = [\"arm,pl031\"]\n"
    )
}

#[test]
fn vm_passthrough() {
    let text = passthrough_system();
    let system = parse(&text).unwrap();
    let [passthrough] = &system.vms[0].passthroughs[..] else { panic!("one passthrough") };
    assert_eq!((passthrough.irq, passthrough.intid, passthrough.trigger), (0, 34, Trigger::Level));
    let device = passthrough.device.as_ref().unwrap();
    assert_eq!((device.name.as_str(), device.base, device.size), ("rtc", 0x0901_0000, 0x1000));
    assert_eq!(device.compatible, ["arm,pl031"]);
    let check = |from: &str, to: &str| {
        assert!(text.contains(from), "{from:?}");
        errors(&text.replacen(from, to, 1))
    };
    assert_eq!(
        check("phys-addr = 0x0901_0000\n", ""),
        format!(
            "{PATH}:51:12: vm \"guest\": passthrough \"rtc\": field \"region\": memory-region \"rtc\" is RAM: a \
             passthrough needs a device (phys-addr)"
        )
    );
    assert_eq!(
        check("phys-addr = 0x0901_0000\n", "phys-addr = 0x0900_0000\n"),
        format!(
            "{PATH}:52:12: vm \"guest\": passthrough \"rtc\": field \"region\": [0x900_0000, 0x900_1000) overlaps \
             the PL011 UART at [0x900_0000, 0x900_1000) in the guest"
        )
    );
    assert_eq!(
        check("  region = \"rtc\"\n", ""),
        format!(
            "{PATH}:52:16: vm \"guest\": passthrough \"rtc\": field \"compatible\": needs \"region\": a device tree \
             node has registers"
        )
    );
    assert_eq!(
        check("vgic-endpoint = \"ping\"\n", ""),
        format!(
            "{PATH}:50:9: vm \"guest\": passthrough \"rtc\": field \"irq\": the VM has no \"vgic-endpoint\": \
             nobody would inject the interrupt"
        )
    );
    let second = text.replacen(
        "[[irq]]\n",
        "[[irq]]\nname = \"other\"\nintid = 35\ntrigger = \"edge\"\nnotification = \"irqs\"\nbadge = 3\n[[irq]]\n",
        1,
    ) + "  [[vm.passthrough]]\n  irq = \"other\"\n";
    let second = second.replacen(
        "  irq = \"rtc\"\n[[",
        "  irq = \"rtc\"\n  [[component.cap]]\n  name = \"other-irq\"\n  irq = \"other\"\n[[",
        1,
    );
    assert_eq!(
        errors(&second),
        format!(
            "{PATH}:64:9: vm \"guest\": passthrough \"other\": field \"irq\": irqs \"rtc\" and \"other\" share badge \
             bits 0x1 on notification \"irqs\": the vgic-server could not tell them apart"
        )
    );
    let apart = second.replacen("badge = 3\n", "badge = 2\n", 1);
    let [_, other] = &parse(&apart).unwrap().vms[0].passthroughs[..] else { panic!("two passthroughs") };
    assert_eq!((other.intid, other.trigger, other.device.is_none()), (35, Trigger::Edge, true));
    let client_bound = text.replacen("bound-notification = \"irqs\"\n", "", 1).replacen(
        "cpu = 0\n",
        "cpu = 0\nbound-notification = \"irqs\"\n",
        1,
    );
    assert_eq!(
        errors(&client_bound),
        format!(
            "{PATH}:51:9: vm \"guest\": passthrough \"rtc\": field \"irq\": the component receiving on the VM's \
             vgic-endpoint \"ping\" must hold a cap to irq \"rtc\" and be bound to its notification \"irqs\""
        )
    );
}

#[test]
fn vm_its_quotas() {
    let with = |its: &str| guest_with("", "", &format!("[vm.its]\n{its}"));
    let quotas = parse(&with("devices = 8\ncollections = 4\n")).unwrap().vms[0].its;
    assert_eq!(quotas, ItsQuotas { devices: 8, events_per_device: 256, collections: 4 });
    assert_eq!(parse(&guest_with("", "", UART_ROUTE)).unwrap().vms[0].its, ItsQuotas::DEFAULT);
    assert_eq!(
        errors(&with("collections = 0\n")),
        format!("{PATH}:34:15: vm \"guest\": its: field \"collections\": 0 is out of range 1..=256")
    );
    assert_eq!(
        errors(&with("devices = 1024\nevents-per-device = 1024\n")),
        format!(
            "{PATH}:33:1: vm \"guest\": its: devices x events-per-device = 1048576 translations, more than the \
             its-server holds (65536)"
        )
    );
}
