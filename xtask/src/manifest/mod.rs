//! The system manifest (`images/<system>/system.toml`): its schema, loading and
//! validation. [`load`] returns a [`System`] that has passed every check in
//! `docs/manifest.md`, with every name resolved to an index, so that the layout and code
//! generators never meet an inconsistent system.
//!
//! Errors name the file, line, column and field, as in
//! `images/demo/system.toml:14:12: component "pinger": field "priority": 300 is out of range 0..=254`,
//! followed by the source line with the value underlined. All errors found are reported
//! at once; checks that relate several objects (priorities of callers, receivers of
//! endpoints, ...) run once every object is valid on its own.

mod check;
mod replace;
mod schema;
mod vmm_maps;

pub use replace::GuestOverride;

use anyhow::Context;
use serde::Deserialize;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Translation granule: sizes and addresses in the manifest are multiples of it.
pub const PAGE_SIZE: u64 = 4096;
/// Physical base of RAM on QEMU's `virt` machine.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Most RAM QEMU's `virt` machine places below its high I/O area (255 GiB).
pub const MAX_MEMORY: u64 = 255 << 30;
/// Physical and EL0 virtual addresses stay below this (48-bit addresses, 4 KiB granule).
pub const ADDRESS_LIMIT: u64 = 1 << 48;
/// RAM kept free at the end for the kernel's page tables and other boot allocations.
pub const KERNEL_FREE_RESERVE: u64 = 16 << 20;
/// Default `stack-size` of a component.
pub const DEFAULT_STACK_SIZE: u64 = 16 << 10;
/// Default `timeslice-us`.
pub const DEFAULT_TIMESLICE_US: u32 = 5000;
/// Default `timeout-seconds`.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 60;
/// Default `ram-base` of a VM (guest-physical), where QEMU's `virt` puts RAM.
pub const DEFAULT_VM_RAM_BASE: u64 = 0x4000_0000;
/// Alignment of a VM's RAM size and of its base, guest-physical and physical: 2 MiB, so
/// that stage 2 can map it with blocks and a Linux image finds a 2 MiB aligned base.
pub const VM_RAM_ALIGN: u64 = 2 << 20;
/// Physical ranges that only the kernel may map: (what, base, size).
///
/// The console PL011 (0x0900_0000) is not one of them: the component that owns console
/// input (the VMM) maps it to read received bytes. The kernel only writes DR and reads
/// FR to print, so the two never touch the same state as long as that component uses
/// only the receive side (DR reads, the receive bits of IMSC and ICR).
pub const KERNEL_DEVICES: &[(&str, u64, u64)] =
    &[("the GIC (distributor, ITS and redistributors)", 0x0800_0000, 0x0100_0000)];

/// A validated system.
#[derive(Clone, Debug)]
pub struct System {
    /// `system.name`, equal to the name of the manifest's directory.
    pub name: String,
    /// The manifest file, as given to [`load`].
    pub path: PathBuf,
    /// Physical CPUs (QEMU `-smp`).
    pub cpus: u32,
    /// RAM size in bytes (QEMU `-m`), a multiple of 1 MiB.
    pub memory: u64,
    /// Round-robin time slice in microseconds.
    pub timeslice_us: u32,
    /// QEMU timeout when the system runs as a test.
    pub timeout_seconds: u64,
    /// Benchmark systems: components may read the instruction counter (PMU counter 0).
    pub pmu_for_components: bool,
    /// Text that a test run's console must show, each on some line before the kernel's
    /// result line, for the run to pass (checks of a system's other guests; as guests can
    /// print anything, these only add conditions to the result line's status).
    pub expect_output: Vec<String>,
    /// Text that, once a console line shows it, ends a run as failed at once (`fail-output`,
    /// e.g. a guest kernel's panic line).
    pub fail_output: Vec<String>,
    /// Endpoints, in manifest order (their index is their boot-info index).
    pub endpoints: Vec<Endpoint>,
    /// Notifications, in manifest order.
    pub notifications: Vec<Notification>,
    /// Memory regions, in manifest order.
    pub regions: Vec<MemoryRegion>,
    /// IRQs, in manifest order.
    pub irqs: Vec<Irq>,
    /// Components, in manifest order (component `i` gets ASID `i + 1`).
    pub components: Vec<Component>,
    /// Virtual machines, in manifest order (VM `i` gets VMID `i + 1`).
    pub vms: Vec<Vm>,
}

impl System {
    /// How many capability slots `object` fills: every vCPU of the VM for
    /// [`CapObject::Vcpus`], one otherwise.
    pub fn slot_count(&self, object: CapObject) -> usize {
        match object {
            CapObject::Vcpus { vm } => self.vms[vm].cpus.len(),
            _ => 1,
        }
    }

    /// Each cap of `component` with its first slot.
    pub fn slots<'c>(&self, component: &'c Component) -> Vec<(usize, &'c Cap)> {
        let mut next = 0;
        component
            .caps
            .iter()
            .map(|cap| {
                let first = next;
                next += self.slot_count(cap.object);
                (first, cap)
            })
            .collect()
    }
}

/// An endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its name.
    pub name: String,
}

/// A notification.
#[derive(Clone, Debug)]
pub struct Notification {
    /// Its name.
    pub name: String,
}

/// A memory region: device MMIO at a fixed address, or RAM that the layout allocates.
#[derive(Clone, Debug)]
pub struct MemoryRegion {
    /// Its name.
    pub name: String,
    /// Size in bytes, a multiple of [`PAGE_SIZE`].
    pub size: u64,
    /// `Some`: device memory at this physical address; `None`: zeroed RAM.
    pub phys_addr: Option<u64>,
}

/// How an interrupt line signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Level-sensitive.
    Level,
    /// Edge-triggered.
    Edge,
}

/// A physical interrupt delivered to a notification.
#[derive(Clone, Debug)]
pub struct Irq {
    /// Its name.
    pub name: String,
    /// Physical INTID, an SPI (32..=1019).
    pub intid: u32,
    /// Level or edge.
    pub trigger: Trigger,
    /// Index of the notification it signals.
    pub notification: usize,
    /// Bits ORed into the notification word (non-zero).
    pub badge: u64,
    /// CPU it is routed to (given, or the CPU of the components holding its cap).
    pub cpu: u32,
}

/// A component: one EL0 thread in its own address space.
#[derive(Clone, Debug)]
pub struct Component {
    /// Its name.
    pub name: String,
    /// The workspace package that builds it.
    pub crate_name: String,
    /// Scheduling priority, 0..=254, higher runs first.
    pub priority: u8,
    /// CPU it is pinned to.
    pub cpu: u32,
    /// Stack size in bytes.
    pub stack_size: u64,
    /// Heap size in bytes (may be 0).
    pub heap_size: u64,
    /// Index of the endpoint receiving its faults.
    pub fault_endpoint: Option<usize>,
    /// Badge of its fault messages.
    pub fault_badge: u64,
    /// Index of the notification bound to its thread: its `Recv` and `ReplyRecv` also
    /// return when that notification's word is non-zero.
    pub bound_notification: Option<usize>,
    /// Capability slots; slot `i` is `caps[i]`.
    pub caps: Vec<Cap>,
    /// Memory regions mapped in its address space.
    pub maps: Vec<Map>,
}

/// One capability slot.
#[derive(Clone, Debug)]
pub struct Cap {
    /// Its name (the generated constant is [`constant_name`] of it).
    pub name: String,
    /// What it names.
    pub object: CapObject,
    /// Badge (0 unless it can send, call or signal).
    pub badge: u64,
}

/// The object a capability names, with its rights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapObject {
    /// An endpoint; `rights` are `ipc::endpoint_rights` bits.
    Endpoint {
        /// Index in [`System::endpoints`].
        index: usize,
        /// Rights bits.
        rights: u8,
    },
    /// A notification; `rights` are `ipc::notification_rights` bits.
    Notification {
        /// Index in [`System::notifications`].
        index: usize,
        /// Rights bits.
        rights: u8,
    },
    /// An IRQ handler.
    Irq {
        /// Index in [`System::irqs`].
        index: usize,
    },
    /// The system-control capability.
    Control,
    /// One vCPU of a VM.
    Vcpu {
        /// Index in [`System::vms`].
        vm: usize,
        /// Index of the vCPU in its VM.
        index: usize,
    },
    /// Every vCPU of a VM, in consecutive slots ordered by vCPU index.
    Vcpus {
        /// Index in [`System::vms`].
        vm: usize,
    },
    /// The console (a guest's raw UART output).
    Console,
}

/// Access permissions of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Perms {
    /// Read-only.
    R,
    /// Read-write.
    Rw,
    /// Read and execute.
    Rx,
}

impl Perms {
    /// The `bootinfo::map_flags` bits (without `DEVICE`).
    pub fn map_flags(self) -> u32 {
        use bootinfo::map_flags::{EXECUTE, READ, WRITE};
        match self {
            Perms::R => READ,
            Perms::Rw => READ | WRITE,
            Perms::Rx => READ | EXECUTE,
        }
    }

    /// The spelling in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Perms::R => "r",
            Perms::Rw => "rw",
            Perms::Rx => "rx",
        }
    }
}

/// What a component maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// A memory region: index in [`System::regions`].
    Region(usize),
    /// The whole guest RAM of a VM: index in [`System::vms`].
    VmRam(usize),
    /// The initial contents of a VM's RAM (`ipc::vm_image`), for its VMM only (no
    /// manifest form: see `vmm_maps.rs`): index in [`System::vms`].
    VmImage(usize),
}

/// A memory region, or a VM's RAM, mapped into a component.
#[derive(Clone, Debug)]
pub struct Map {
    /// Name of the generated constants (defaults to the region's or the VM's name).
    pub name: String,
    /// What it maps.
    pub mapped: Mapped,
    /// Size in bytes of what it maps (all of it).
    pub size: u64,
    /// Virtual address (given, or placed from `ipc::layout::REGIONS_BASE`).
    pub vaddr: u64,
    /// Permissions.
    pub perms: Perms,
}

/// How a VM's image is loaded into guest RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFormat {
    /// Raw bytes loaded at [`crate::guest::BINARY_OFFSET`] from the start of guest RAM.
    Binary,
    /// An ELF loaded at its physical addresses.
    Elf,
    /// A Linux arm64 `Image`, placed as its header says.
    Linux,
}

impl ImageFormat {
    /// The spelling in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            ImageFormat::Binary => "binary",
            ImageFormat::Elf => "elf",
            ImageFormat::Linux => "linux",
        }
    }
}

/// What a guest access to an address no route or RAM covers does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unclaimed {
    /// Reads return zero, writes are ignored.
    ReadZero,
    /// The guest takes an external abort.
    Abort,
}

/// A guest file that xtask makes from Debian's arm64 packages, named `debian:<name>` in a
/// VM's `image` or `initrd` (fetched and cached by `cargo xtask`, never committed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebianFile {
    /// `debian:linux-image`: the kernel `Image` of bookworm's `linux-image-*-arm64`.
    LinuxImage,
    /// `debian:busybox-initramfs`: an initramfs around `busybox-static`
    /// ([`crate::initramfs`]).
    BusyboxInitramfs,
}

impl DebianFile {
    /// What a manifest value starts with to name one.
    pub const PREFIX: &str = "debian:";

    /// Its spelling in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            DebianFile::LinuxImage => "debian:linux-image",
            DebianFile::BusyboxInitramfs => "debian:busybox-initramfs",
        }
    }
}

/// A file a VM loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestFile {
    /// A path (relative ones resolved against the manifest's directory).
    Path(PathBuf),
    /// A file made from Debian's packages.
    Debian(DebianFile),
}

/// Where a VM's guest image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GuestSource {
    /// A file (the manifest's `image`, or the command line's `--kernel`).
    File(GuestFile),
    /// A workspace package built for the bare-metal target; its ELF is the image.
    Crate(String),
}

/// A virtual machine.
#[derive(Clone, Debug)]
pub struct Vm {
    /// Its name (shares the namespace of components).
    pub name: String,
    /// Physical CPU of each vCPU: vCPU `i` runs on `cpus[i]`.
    pub cpus: Vec<u32>,
    /// Priority of its vCPU threads.
    pub priority: u8,
    /// Guest RAM size in bytes, a multiple of [`VM_RAM_ALIGN`].
    pub memory: u64,
    /// Guest-physical base of its RAM, a multiple of [`VM_RAM_ALIGN`].
    pub ram_base: u64,
    /// The guest image.
    pub source: GuestSource,
    /// Format of the image ([`ImageFormat::Elf`] for a crate).
    pub image_format: ImageFormat,
    /// Initial ramdisk, loaded into guest RAM and named in the device tree.
    pub initrd: Option<GuestFile>,
    /// Kernel command line: the device tree's `/chosen/bootargs`.
    pub cmdline: Option<String>,
    /// Index of the endpoint receiving its HVC, SMC and system-register traps.
    pub fault_endpoint: usize,
    /// Badge of those messages.
    pub fault_badge: u64,
    /// Guest-physical ranges whose faults go to an endpoint.
    pub routes: Vec<Route>,
    /// Accesses nobody claims.
    pub unclaimed: Unclaimed,
    /// Index of the endpoint of its vgic-server: vGIC events and trapped SGI writes.
    pub vgic_endpoint: Option<usize>,
    /// Badge of those messages.
    pub vgic_badge: u64,
    /// Physical SPIs (and device memory) passed through to it.
    pub passthroughs: Vec<Passthrough>,
    /// The quotas of its ITS (its-server and vgic-server capacities, GITS_TYPER).
    pub its: ItsQuotas,
}

/// The quotas of a VM's ITS (`[vm.its]`): what the guest may map, and so GITS_TYPER's
/// Devbits, ID_bits and CIDbits; the its-server and vgic-server are built with them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItsQuotas {
    /// DeviceIDs `0..devices`.
    pub devices: u32,
    /// EventIDs `0..events_per_device` on each device.
    pub events_per_device: u32,
    /// ICIDs `0..collections`.
    pub collections: u32,
}

impl ItsQuotas {
    /// The quotas of a VM that does not give `[vm.its]`.
    pub const DEFAULT: Self = Self { devices: 32, events_per_device: 256, collections: 16 };
    /// The most DeviceIDs a VM may have.
    pub const MAX_DEVICES: u32 = 4096;
    /// The most EventIDs per device.
    pub const MAX_EVENTS_PER_DEVICE: u32 = 65536;
    /// The most collections (the vgic-server tracks each one's target).
    pub const MAX_COLLECTIONS: u32 = 256;
    /// The most (device, event) translations: the its-server's table holds every one,
    /// about 8 bytes each in its image.
    pub const MAX_TRANSLATIONS: u64 = 65536;
}

/// A physical SPI passed through to a VM: the VM's vgic-server, which holds the IRQ's cap
/// and is bound to its notification, lists it hardware-linked with the same INTID.
#[derive(Clone, Debug)]
pub struct Passthrough {
    /// Index of the [`Irq`].
    pub irq: usize,
    /// Its INTID (an SPI, the same for the guest).
    pub intid: u32,
    /// Its trigger.
    pub trigger: Trigger,
    /// The device whose interrupt it is, if its registers are passed through too.
    pub device: Option<PassthroughDevice>,
}

/// Device memory passed through with an SPI: mapped into the VM's stage 2 at its
/// physical address, and described in the guest's device tree.
#[derive(Clone, Debug)]
pub struct PassthroughDevice {
    /// Index of the device [`MemoryRegion`].
    pub region: usize,
    /// The region's name: the device tree node's name.
    pub name: String,
    /// Physical and guest-physical base.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// The device tree node's `compatible` strings (no node without them).
    pub compatible: Vec<String>,
}

impl Vm {
    /// Its guest-physical RAM.
    pub fn ram(&self) -> Range<u64> {
        self.ram_base..self.ram_base + self.memory
    }

    /// Whether it loads a file made from Debian's packages (which may need the network).
    pub fn uses_debian_files(&self) -> bool {
        matches!(self.source, GuestSource::File(GuestFile::Debian(_)))
            || matches!(self.initrd, Some(GuestFile::Debian(_)))
    }
}

/// A guest-physical range whose accesses fault to an endpoint.
#[derive(Clone, Debug)]
pub struct Route {
    /// Its name.
    pub name: String,
    /// Guest-physical base.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
    /// Index of the endpoint receiving the faults.
    pub endpoint: usize,
    /// Badge of the fault messages.
    pub badge: u64,
}

impl Route {
    /// Its guest-physical range.
    pub fn range(&self) -> Range<u64> {
        self.base..self.base + self.size
    }
}

/// Reads, parses and validates the manifest at `path`.
pub fn load(path: &Path) -> anyhow::Result<System> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, path)
}

/// Parses and validates manifest `text` as if read from `path` (which names it in errors,
/// supplies the directory name that `system.name` must equal, and anchors VM image paths).
pub fn parse(text: &str, path: &Path) -> anyhow::Result<System> {
    let manifest: schema::Manifest = toml::from_str(text).map_err(|error| {
        let span = error.span().unwrap_or(0..0);
        let diagnostic = Diagnostic { span, message: error.message().trim_end().to_owned() };
        render(path, text, &[diagnostic])
    })?;
    let absolute = std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?;
    let directory = absolute.parent().and_then(Path::file_name).and_then(|name| name.to_str()).unwrap_or("");
    let base = path.parent().unwrap_or(Path::new(""));
    check::check(&manifest, text, directory, base)
        .map(|system| System { path: path.to_owned(), ..system })
        .map_err(|diagnostics| render(path, text, &diagnostics))
}

/// The Rust constant generated for a cap or map name: upper case, `-` becomes `_`.
pub fn constant_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// `value` in hexadecimal with `_` between groups of four digits, as rustfmt and clippy like.
pub fn hex(value: u64) -> String {
    let digits = format!("{value:x}");
    let mut out = String::from("0x");
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(4) {
            out.push('_');
        }
        out.push(digit);
    }
    out
}

/// `bytes` with the largest of the suffixes K, M and G that divides it, as in the manifest.
pub fn size_text(bytes: u64) -> String {
    for (shift, suffix) in [(30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// One problem at one place of the manifest.
struct Diagnostic {
    span: Range<usize>,
    message: String,
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// Formats `diagnostics` in source order, each as `path:line:column: message` followed by
/// the source line with the span underlined.
fn render(path: &Path, text: &str, diagnostics: &[Diagnostic]) -> anyhow::Error {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|diagnostic| diagnostic.span.start);
    let mut out = String::new();
    for diagnostic in sorted {
        let start = diagnostic.span.start.min(text.len());
        let (line, column) = line_column(text, start);
        let line_start = text[..start].rfind('\n').map_or(0, |newline| newline + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |newline| start + newline);
        let source_line = &text[line_start..line_end];
        let underline = text[start..diagnostic.span.end.clamp(start, line_end)].chars().count().max(1);
        let gutter = " ".repeat(line.to_string().len());
        if !out.is_empty() {
            out.push('\n');
        }
        let _ = write!(
            out,
            "{}:{line}:{column}: {}\n {gutter} |\n {line} | {source_line}\n {gutter} | {}{}",
            path.display(),
            diagnostic.message,
            " ".repeat(column - 1),
            "^".repeat(underline),
        );
    }
    anyhow::anyhow!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_groups_digits_by_four() {
        assert_eq!(hex(0), "0x0");
        assert_eq!(hex(0x1000), "0x1000");
        assert_eq!(hex(0x5_0000), "0x5_0000");
        assert_eq!(hex(0x4000_0000), "0x4000_0000");
    }

    #[test]
    fn size_text_uses_the_largest_suffix() {
        assert_eq!(size_text(0), "0");
        assert_eq!(size_text(6 << 10), "6K");
        assert_eq!(size_text(1 << 30), "1G");
        assert_eq!(size_text(1536 << 10), "1536K");
        assert_eq!(size_text(100), "100");
    }

    #[test]
    fn line_column_counts_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('2').unwrap()), (2, 6));
    }

    #[test]
    fn constant_names_are_upper_snake_case() {
        assert_eq!(constant_name("rtc-mmio"), "RTC_MMIO");
        assert_eq!(constant_name("pong2"), "PONG2");
    }
}
