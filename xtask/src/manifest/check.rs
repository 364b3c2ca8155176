//! Validation: turns the manifest as written into a [`System`], or into diagnostics.
//!
//! Two passes. [`Checker::objects`] checks every object on its own (ranges, sizes, names,
//! references) and builds the system; [`Checker::relations`] then checks what involves
//! several objects (who receives what, priorities of calls, IRQ routing, the RAM budget).
//! The second pass runs only on a system without errors, so it never reports a
//! consequence of an earlier mistake; each pass reports every problem it finds.

use super::schema::{self, Int, Right, Size, Text};
use super::{
    ADDRESS_LIMIT, Cap, CapObject, Component, DEFAULT_STACK_SIZE, DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_TIMESLICE_US, DEFAULT_VM_RAM_BASE, DebianFile, Diagnostic, Endpoint, GuestFile, GuestSource,
    ImageFormat, Irq, ItsQuotas, KERNEL_DEVICES, KERNEL_FREE_RESERVE, MAX_MEMORY, Map, Mapped, MemoryRegion,
    Notification, PAGE_SIZE, Passthrough, PassthroughDevice, Perms, RAM_BASE, Route, System, Unclaimed,
    VM_RAM_ALIGN, Vm, constant_name, hex, line_column, size_text,
};
use crate::guest;
use ipc::endpoint_rights::{CALL, RECV, SEND};
use ipc::layout::{HEAP_BASE, IMAGE_BASE, IPC_BUFFER_VA, REGIONS_BASE, STACK_TOP};
use ipc::notification_rights::{SIGNAL, WAIT};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use toml::Spanned;

/// Validates `manifest` (whose source is `text`, in directory `directory`, with relative
/// paths anchored at `base`).
pub(super) fn check(
    manifest: &schema::Manifest,
    text: &str,
    directory: &str,
    base: &Path,
) -> Result<System, Vec<Diagnostic>> {
    let mut checker = Checker { text, errors: Vec::new() };
    let mut system = checker.objects(manifest, directory, base);
    if checker.errors.is_empty() {
        checker.relations(manifest, &mut system);
    }
    if checker.errors.is_empty() { Ok(system) } else { Err(checker.errors) }
}

/// Object names of one kind, with the index of each.
type Names<'m> = BTreeMap<&'m str, usize>;

/// The names every reference is resolved against.
struct Namespaces<'m> {
    endpoints: Names<'m>,
    notifications: Names<'m>,
    regions: Names<'m>,
    irqs: Names<'m>,
    vms: Names<'m>,
    /// vCPUs of each VM, by index.
    vcpu_counts: Vec<usize>,
    /// Guest RAM size of each VM, by index, where it is valid (the VM's own check
    /// reports it otherwise).
    vm_memory: Vec<Option<u64>>,
}

/// The name of a `[[component.map]]`'s constants: its `name`, else what it maps.
fn map_name(map: &schema::Map) -> Option<&Text> {
    map.name.as_ref().or(map.region.as_ref()).or(map.vm_ram.as_ref())
}

/// `[start, end)` in hexadecimal.
fn range_text(range: &Range<u64>) -> String {
    format!("[{}, {})", hex(range.start), hex(range.end))
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Parses `"16K"`, `"2M"`, `"1G"` or `"4096"`.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' => (&text[..text.len() - 1], 10),
        b'M' => (&text[..text.len() - 1], 20),
        b'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: u64 = digits.parse().ok()?;
    value.checked_mul(1 << shift)
}

/// The fixed parts of every component's address space, given its stack and heap sizes.
fn fixed_layout(stack_size: u64, heap_size: u64) -> Vec<(Range<u64>, String)> {
    let stack_bottom = STACK_TOP.saturating_sub(stack_size);
    let mut fixed = vec![
        (0..IMAGE_BASE, "the unmapped low area (null guard)".to_owned()),
        (IMAGE_BASE..HEAP_BASE, "the image area".to_owned()),
        (stack_bottom.saturating_sub(PAGE_SIZE)..stack_bottom, "the stack guard page".to_owned()),
        (stack_bottom..STACK_TOP, "the stack".to_owned()),
        (STACK_TOP..IPC_BUFFER_VA, "the guard page below the IPC buffer".to_owned()),
        (IPC_BUFFER_VA..IPC_BUFFER_VA + PAGE_SIZE, "the IPC buffer".to_owned()),
    ];
    if heap_size > 0 {
        fixed.push((HEAP_BASE..HEAP_BASE + heap_size, "the heap".to_owned()));
    }
    fixed
}

/// Rights a cap may hold on its kind of object, with their `ipc` bits.
const ENDPOINT_RIGHTS: &[(Right, u8)] = &[(Right::Recv, RECV), (Right::Send, SEND), (Right::Call, CALL)];
const NOTIFICATION_RIGHTS: &[(Right, u8)] = &[(Right::Wait, WAIT), (Right::Signal, SIGNAL)];

/// Holders of caps on each object, gathered for the second pass.
#[derive(Default, Clone)]
struct Holders {
    /// (component, cap) pairs that can receive or wait.
    receivers: Vec<(usize, usize)>,
    /// (component, cap) pairs that can send, call or signal.
    senders: Vec<(usize, usize)>,
}

struct Checker<'a> {
    text: &'a str,
    errors: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: String) {
        self.errors.push(Diagnostic { span, message });
    }

    /// An error about `field` of the object described by `context`, at `value`.
    fn field<T>(&mut self, context: &str, field: &str, value: &Spanned<T>, problem: impl Display) {
        self.error(value.span(), format!("{context}: field \"{field}\": {problem}"));
    }

    fn line(&self, span: Range<usize>) -> usize {
        line_column(self.text, span.start).0
    }

    fn int(&mut self, context: &str, field: &str, value: &Int, range: RangeInclusive<i64>) -> Option<i64> {
        let number = *value.get_ref();
        if range.contains(&number) {
            return Some(number);
        }
        self.field(
            context,
            field,
            value,
            format!("{number} is out of range {}..={}", range.start(), range.end()),
        );
        None
    }

    /// A CPU number below `cpus` (when the CPU count itself is valid).
    fn cpu(&mut self, context: &str, field: &str, value: &Int, cpus: Option<u32>) -> Option<u32> {
        let cpus = cpus?;
        let number = *value.get_ref();
        if (0..i64::from(cpus)).contains(&number) {
            return u32::try_from(number).ok();
        }
        let plural = if cpus == 1 { "" } else { "s" };
        self.field(
            context,
            field,
            value,
            format!("{number} is out of range 0..={}: the system has {cpus} CPU{plural}", cpus - 1),
        );
        None
    }

    /// A badge: any value TOML can hold except negative ones, and non-zero if `nonzero`.
    fn badge(&mut self, context: &str, field: &str, value: &Int, why_nonzero: Option<&str>) -> Option<u64> {
        let number = *value.get_ref();
        if number < 0 {
            self.field(context, field, value, format!("{number} is negative"));
            return None;
        }
        if number == 0
            && let Some(why) = why_nonzero
        {
            self.field(context, field, value, format!("must not be zero: {why}"));
            return None;
        }
        u64::try_from(number).ok()
    }

    /// A page-aligned address below [`ADDRESS_LIMIT`].
    fn address(&mut self, context: &str, field: &str, value: &Int) -> Option<u64> {
        let number = *value.get_ref();
        let Ok(address) = u64::try_from(number) else {
            self.field(context, field, value, format!("{number} is negative"));
            return None;
        };
        if address >= ADDRESS_LIMIT {
            self.field(
                context,
                field,
                value,
                format!("{} is not below the 48-bit limit {}", hex(address), hex(ADDRESS_LIMIT)),
            );
            return None;
        }
        if !address.is_multiple_of(PAGE_SIZE) {
            self.field(
                context,
                field,
                value,
                format!("{} is not a multiple of 4K (page aligned)", hex(address)),
            );
            return None;
        }
        Some(address)
    }

    /// A size in bytes: a multiple of `unit`, non-zero unless `zero_allowed`.
    fn size(
        &mut self,
        context: &str,
        field: &str,
        value: &Spanned<Size>,
        unit: u64,
        zero_allowed: bool,
    ) -> Option<u64> {
        let (bytes, written) = match value.get_ref() {
            Size::Bytes(bytes) => (u64::try_from(*bytes).ok(), bytes.to_string()),
            Size::Text(text) => (parse_size(text), format!("\"{text}\"")),
        };
        let Some(bytes) = bytes.filter(|&bytes| bytes < ADDRESS_LIMIT) else {
            let problem = format!(
                "{written} is not a size: write a byte count or a number with a K, M or G suffix, such as \"16K\""
            );
            self.field(context, field, value, problem);
            return None;
        };
        if bytes == 0 && !zero_allowed {
            self.field(context, field, value, "must not be zero");
            return None;
        }
        if !bytes.is_multiple_of(unit) {
            let problem = format!("{} is not a multiple of {}", size_text(bytes), size_text(unit));
            self.field(context, field, value, problem);
            return None;
        }
        Some(bytes)
    }

    /// Checks a name's spelling: it becomes a Rust constant, a crate name or a log tag.
    fn name_syntax(&mut self, context: &str, name: &Text) {
        let text = name.get_ref();
        let mut chars = text.chars();
        let valid = chars.next().is_some_and(|first| first.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
            && text.len() <= 64;
        if !valid {
            let problem = format!(
                "\"{text}\" is not a valid name: use at most 64 lower-case letters, digits, \"-\" and \"_\", starting with a letter"
            );
            self.field(context, "name", name, problem);
        }
    }

    /// Checks the names of objects sharing a namespace (each given with its kind) and
    /// returns the index of each name.
    fn names<'m>(&mut self, items: impl IntoIterator<Item = (&'static str, &'m Text)>) -> Names<'m> {
        let mut names = Names::new();
        let mut first: Vec<(&'static str, Range<usize>)> = Vec::new();
        for (index, (kind, name)) in items.into_iter().enumerate() {
            let context = format!("{kind} \"{}\"", name.get_ref());
            self.name_syntax(&context, name);
            if let Some(&earlier) = names.get(name.get_ref().as_str()) {
                let (earlier_kind, earlier_span): (&str, Range<usize>) = first[earlier].clone();
                let problem = format!(
                    "duplicate name, already used by the {earlier_kind} at line {}",
                    self.line(earlier_span)
                );
                self.field(&context, "name", name, problem);
            } else {
                names.insert(name.get_ref().as_str(), index);
            }
            first.push((kind, name.span()));
        }
        names
    }

    /// Resolves a reference to an object of `kind`.
    fn lookup(
        &mut self,
        context: &str,
        field: &str,
        kind: &str,
        names: &Names,
        value: &Text,
    ) -> Option<usize> {
        if let Some(&index) = names.get(value.get_ref().as_str()) {
            return Some(index);
        }
        let known = match names.len() {
            0 => format!(" (there are no {kind}s)"),
            1..=12 => format!(" ({kind}s: {})", names.keys().copied().collect::<Vec<_>>().join(", ")),
            _ => String::new(),
        };
        self.field(context, field, value, format!("no {kind} named \"{}\"{known}", value.get_ref()));
        None
    }

    /// Reports the first item at which the running total of `items` exceeds `max`.
    fn limit<'m>(
        &mut self,
        items: impl IntoIterator<Item = (&'static str, &'m Text, usize)>,
        max: usize,
        what: &str,
    ) {
        let mut total = 0;
        for (kind, name, weight) in items {
            total += weight;
            if total > max {
                let problem = format!(
                    "{kind} \"{}\": too many {what}: the kernel supports at most {max}",
                    name.get_ref()
                );
                self.error(name.span(), problem);
                return;
            }
        }
    }

    /// First pass: every object on its own.
    fn objects(&mut self, manifest: &schema::Manifest, directory: &str, base: &Path) -> System {
        let table = &manifest.system;
        self.name_syntax("system", &table.name);
        if table.name.get_ref() != directory {
            let problem = format!(
                "\"{}\" must equal the name of the manifest's directory, \"{directory}\"",
                table.name.get_ref()
            );
            self.field("system", "name", &table.name, problem);
        }
        let max_cpus = bootinfo::MAX_CPUS as i64;
        let cpus =
            self.int("system", "cpus", &table.cpus, 1..=max_cpus).and_then(|cpus| u32::try_from(cpus).ok());
        let memory = self.size("system", "memory", &table.memory, 1 << 20, false).filter(|&memory| {
            let fits = memory <= MAX_MEMORY;
            if !fits {
                let problem = format!(
                    "{} is more than the 255G of RAM QEMU's virt machine has room for",
                    size_text(memory)
                );
                self.field("system", "memory", &table.memory, problem);
            }
            fits
        });
        let timeslice_us = match &table.timeslice_us {
            Some(value) => self.int("system", "timeslice-us", value, 100..=1_000_000).unwrap_or(0) as u32,
            None => DEFAULT_TIMESLICE_US,
        };
        let timeout_seconds = match &table.timeout_seconds {
            Some(value) => self.int("system", "timeout-seconds", value, 1..=3600).unwrap_or(0) as u64,
            None => DEFAULT_TIMEOUT_SECONDS,
        };
        for (field, lines) in [("expect-output", &table.expect_output), ("fail-output", &table.fail_output)] {
            for line in lines {
                if line.get_ref().trim().is_empty() || line.get_ref().contains('\n') {
                    self.field("system", field, line, "each entry is one non-blank line of text");
                }
            }
        }

        let names = Namespaces {
            endpoints: self.names(manifest.endpoint.iter().map(|object| ("endpoint", &object.name))),
            notifications: self
                .names(manifest.notification.iter().map(|object| ("notification", &object.name))),
            regions: self.names(manifest.memory_region.iter().map(|region| ("memory-region", &region.name))),
            irqs: self.names(manifest.irq.iter().map(|irq| ("irq", &irq.name))),
            // Checked with the components' names below.
            vms: manifest
                .vm
                .iter()
                .enumerate()
                .map(|(index, vm)| (vm.name.get_ref().as_str(), index))
                .collect(),
            vcpu_counts: manifest.vm.iter().map(|vm| vm.cpus.get_ref().len()).collect(),
            vm_memory: manifest
                .vm
                .iter()
                .map(|vm| {
                    let bytes = match vm.memory.get_ref() {
                        Size::Bytes(bytes) => u64::try_from(*bytes).ok(),
                        Size::Text(text) => parse_size(text),
                    };
                    bytes.filter(|&bytes| {
                        bytes > 0 && bytes < ADDRESS_LIMIT && bytes.is_multiple_of(VM_RAM_ALIGN)
                    })
                })
                .collect(),
        };
        // Components and VMs share one namespace: both are named in log lines and faults.
        let components = manifest.component.iter().map(|component| ("component", &component.name));
        self.names(components.chain(manifest.vm.iter().map(|vm| ("vm", &vm.name))));
        self.limits(manifest);

        let regions = self.regions(manifest, memory);
        let irqs = self.irqs(manifest, &names, cpus);
        let components: Vec<Component> = manifest
            .component
            .iter()
            .map(|component| self.component(component, &names, &regions, cpus))
            .collect();
        self.bindings_are_unique(manifest, &components);
        let vms: Vec<Vm> =
            manifest.vm.iter().map(|vm| self.vm(vm, &names, &regions, &irqs, cpus, base)).collect();
        let mut components = components;
        super::vmm_maps::add(&mut components, &vms);
        let endpoints =
            manifest.endpoint.iter().map(|object| Endpoint { name: object.name.get_ref().clone() });
        let notifications =
            manifest.notification.iter().map(|object| Notification { name: object.name.get_ref().clone() });
        System {
            name: table.name.get_ref().clone(),
            path: Default::default(),
            cpus: cpus.unwrap_or(0),
            memory: memory.unwrap_or(0),
            timeslice_us,
            timeout_seconds,
            pmu_for_components: table.pmu_for_components.unwrap_or(false),
            expect_output: table.expect_output.iter().map(|line| line.get_ref().clone()).collect(),
            fail_output: table.fail_output.iter().map(|line| line.get_ref().clone()).collect(),
            endpoints: endpoints.collect(),
            notifications: notifications.collect(),
            regions,
            irqs,
            components,
            vms,
        }
    }

    /// A notification is bound to at most one thread: the kernel wakes that one thread's
    /// `Recv` when the notification is signalled.
    fn bindings_are_unique(&mut self, manifest: &schema::Manifest, components: &[Component]) {
        let mut bound_by: BTreeMap<usize, &str> = BTreeMap::new();
        for (raw, component) in manifest.component.iter().zip(components) {
            let (Some(index), Some(value)) = (component.bound_notification, &raw.bound_notification) else {
                continue;
            };
            if let Some(first) = bound_by.insert(index, &component.name) {
                let context = format!("component \"{}\"", component.name);
                let problem =
                    format!("notification \"{}\" is already bound to component \"{first}\"", value.get_ref());
                self.field(&context, "bound-notification", value, problem);
                bound_by.insert(index, first);
            }
        }
    }

    /// The `bootinfo::MAX_*` limits on object counts.
    fn limits(&mut self, manifest: &schema::Manifest) {
        let endpoints = manifest.endpoint.iter().map(|object| ("endpoint", &object.name, 1));
        self.limit(endpoints, bootinfo::MAX_ENDPOINTS, "endpoints (bootinfo::MAX_ENDPOINTS)");
        let notifications = manifest.notification.iter().map(|object| ("notification", &object.name, 1));
        self.limit(notifications, bootinfo::MAX_NOTIFICATIONS, "notifications (bootinfo::MAX_NOTIFICATIONS)");
        let irqs = manifest.irq.iter().map(|irq| ("irq", &irq.name, 1));
        self.limit(irqs, bootinfo::MAX_IRQS, "IRQs (bootinfo::MAX_IRQS)");
        let components = manifest.component.iter().map(|component| ("component", &component.name, 1));
        let vcpus = manifest.vm.iter().map(|vm| ("vm", &vm.name, vm.cpus.get_ref().len()));
        let what = "threads (bootinfo::MAX_THREADS), counting components and vCPUs";
        self.limit(components.clone().chain(vcpus.clone()), bootinfo::MAX_THREADS, what);
        self.limit(vcpus, bootinfo::MAX_VCPUS, "vCPUs (bootinfo::MAX_VCPUS), counting every VM's");
        let vms = manifest.vm.iter().map(|vm| ("vm", &vm.name, 1));
        self.limit(vms.clone(), bootinfo::MAX_VMS, "VMs (bootinfo::MAX_VMS)");
        let what = "address spaces (bootinfo::MAX_VSPACES), counting components and VMs";
        self.limit(components.chain(vms), bootinfo::MAX_VSPACES, what);
    }

    fn regions(&mut self, manifest: &schema::Manifest, memory: Option<u64>) -> Vec<MemoryRegion> {
        let mut regions: Vec<MemoryRegion> = Vec::new();
        for region in &manifest.memory_region {
            let context = format!("memory-region \"{}\"", region.name.get_ref());
            let size = self.size(&context, "size", &region.size, PAGE_SIZE, false);
            let phys_addr = region.phys_addr.as_ref().and_then(|value| {
                let base = self.address(&context, "phys-addr", value)?;
                let device = base..base + size?;
                let mut conflicts: Vec<(String, Range<u64>)> = Vec::new();
                if let Some(memory) = memory {
                    conflicts.push(("RAM".to_owned(), RAM_BASE..RAM_BASE + memory));
                }
                for &(what, start, len) in KERNEL_DEVICES {
                    conflicts.push((format!("{what}, which only the kernel maps,"), start..start + len));
                }
                for earlier in &regions {
                    if let Some(start) = earlier.phys_addr {
                        conflicts.push((
                            format!("memory-region \"{}\"", earlier.name),
                            start..start + earlier.size,
                        ));
                    }
                }
                let problem = if device.end > ADDRESS_LIMIT {
                    Some(format!("{} ends past the 48-bit limit {}", range_text(&device), hex(ADDRESS_LIMIT)))
                } else {
                    conflicts.iter().find(|(_, other)| overlaps(&device, other)).map(|(what, other)| {
                        format!(
                            "device memory {} overlaps {what} at {}",
                            range_text(&device),
                            range_text(other)
                        )
                    })
                };
                match problem {
                    Some(problem) => {
                        self.field(&context, "phys-addr", value, problem);
                        None
                    }
                    None => Some(base),
                }
            });
            regions.push(MemoryRegion {
                name: region.name.get_ref().clone(),
                size: size.unwrap_or(0),
                phys_addr,
            });
        }
        regions
    }

    fn irqs(&mut self, manifest: &schema::Manifest, names: &Namespaces, cpus: Option<u32>) -> Vec<Irq> {
        let mut intids: BTreeMap<i64, &str> = BTreeMap::new();
        let mut irqs = Vec::new();
        for irq in &manifest.irq {
            let context = format!("irq \"{}\"", irq.name.get_ref());
            let intid = self.int(&context, "intid", &irq.intid, 32..=1019);
            if let Some(intid) = intid
                && let Some(other) = intids.insert(intid, irq.name.get_ref())
            {
                self.field(
                    &context,
                    "intid",
                    &irq.intid,
                    format!("INTID {intid} is already irq \"{other}\""),
                );
            }
            let notification = self.lookup(
                &context,
                "notification",
                "notification",
                &names.notifications,
                &irq.notification,
            );
            let why =
                "the interrupt ORs the badge into the notification word, and waiters need a non-zero word";
            let badge = self.badge(&context, "badge", &irq.badge, Some(why));
            // Without a `cpu`, the second pass routes it to the CPU of its cap holders.
            let cpu = irq.cpu.as_ref().and_then(|value| self.cpu(&context, "cpu", value, cpus));
            irqs.push(Irq {
                name: irq.name.get_ref().clone(),
                intid: intid.unwrap_or(0) as u32,
                trigger: irq.trigger,
                notification: notification.unwrap_or(0),
                badge: badge.unwrap_or(0),
                cpu: cpu.unwrap_or(0),
            });
        }
        irqs
    }

    fn component(
        &mut self,
        component: &schema::Component,
        names: &Namespaces,
        regions: &[MemoryRegion],
        cpus: Option<u32>,
    ) -> Component {
        let name = component.name.get_ref();
        let context = format!("component \"{name}\"");
        let crate_name = match &component.crate_name {
            Some(value) => self.package_name(&context, value),
            None => name.clone(),
        };
        let priority = self.int(&context, "priority", &component.priority, 0..=254);
        let cpu = self.cpu(&context, "cpu", &component.cpu, cpus);
        let stack_size = match &component.stack_size {
            Some(value) => self.size(&context, "stack-size", value, PAGE_SIZE, false),
            None => Some(DEFAULT_STACK_SIZE),
        };
        let heap_size = match &component.heap_size {
            Some(value) => self.size(&context, "heap-size", value, PAGE_SIZE, true),
            None => Some(0),
        };
        let fault_endpoint = component
            .fault_endpoint
            .as_ref()
            .and_then(|value| self.lookup(&context, "fault-endpoint", "endpoint", &names.endpoints, value));
        let fault_badge = component.fault_badge.as_ref().and_then(|value| {
            if component.fault_endpoint.is_none() {
                self.field(&context, "fault-badge", value, "has no effect without \"fault-endpoint\"");
            }
            self.badge(&context, "fault-badge", value, None)
        });
        let bound_notification = component.bound_notification.as_ref().and_then(|value| {
            self.lookup(&context, "bound-notification", "notification", &names.notifications, value)
        });
        let caps = component.cap.iter().filter_map(|cap| self.cap(&context, cap, names)).collect();
        let maps = match (stack_size, heap_size) {
            (Some(stack_size), Some(heap_size))
                if self.stack_and_heap(&context, component, stack_size, heap_size) =>
            {
                self.maps(&context, component, names, regions, &fixed_layout(stack_size, heap_size))
            }
            _ => Vec::new(),
        };
        self.constants(&context, component);
        Component {
            name: name.clone(),
            crate_name,
            priority: priority.unwrap_or(0) as u8,
            cpu: cpu.unwrap_or(0),
            stack_size: stack_size.unwrap_or(0),
            heap_size: heap_size.unwrap_or(0),
            fault_endpoint,
            fault_badge: fault_badge.unwrap_or(0),
            bound_notification,
            caps,
            maps,
        }
    }

    /// The `crate` field: the name of a cargo package.
    fn package_name(&mut self, context: &str, value: &Text) -> String {
        let text = value.get_ref();
        let valid = text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            self.field(context, "crate", value, format!("\"{text}\" is not a cargo package name"));
        }
        text.clone()
    }

    /// The heap grows up from `HEAP_BASE` and the stack (with its guard page) down from
    /// `STACK_TOP`: they must not meet. Returns whether they fit.
    fn stack_and_heap(
        &mut self,
        context: &str,
        component: &schema::Component,
        stack_size: u64,
        heap_size: u64,
    ) -> bool {
        let heap = HEAP_BASE..HEAP_BASE.saturating_add(heap_size);
        let stack = (STACK_TOP.saturating_sub(stack_size + PAGE_SIZE))..STACK_TOP;
        if heap.end <= stack.start && stack.start >= HEAP_BASE {
            return true;
        }
        let problem = format!(
            "the heap {} and the stack with its guard page {} do not fit between {} and {}",
            range_text(&heap),
            range_text(&stack),
            hex(HEAP_BASE),
            hex(STACK_TOP)
        );
        match (&component.heap_size, &component.stack_size) {
            (Some(value), _) if heap_size > 0 => self.field(context, "heap-size", value, problem),
            (_, Some(value)) => self.field(context, "stack-size", value, problem),
            _ => self.error(component.name.span(), format!("{context}: {problem}")),
        }
        false
    }

    fn cap(&mut self, component: &str, cap: &schema::Cap, names: &Namespaces) -> Option<Cap> {
        let context = format!("{component}: cap \"{}\"", cap.name.get_ref());
        for (field, flag) in [("control", &cap.control), ("console", &cap.console)] {
            if let Some(flag) = flag
                && !flag.get_ref()
            {
                self.field(
                    &context,
                    field,
                    flag,
                    format!("write \"{field} = true\", or leave the field out"),
                );
                return None;
            }
        }
        let mut given: Vec<(&str, Range<usize>)> = Vec::new();
        for (field, value) in [
            ("endpoint", &cap.endpoint),
            ("notification", &cap.notification),
            ("irq", &cap.irq),
            ("vcpu", &cap.vcpu),
            ("vcpus", &cap.vcpus),
        ] {
            if let Some(value) = value {
                given.push((field, value.span()));
            }
        }
        for (field, flag) in [("control", &cap.control), ("console", &cap.console)] {
            if let Some(flag) = flag {
                given.push((field, flag.span()));
            }
        }
        given.sort_by_key(|(_, span)| span.start);
        match given.as_slice() {
            [] => {
                let problem = format!(
                    "{context}: needs one of the fields \"endpoint\", \"notification\", \"irq\", \"control\", \
                     \"vcpu\", \"vcpus\" or \"console\""
                );
                self.error(cap.name.span(), problem);
                return None;
            }
            [_] => {}
            [(first, _), (second, span), ..] => {
                let problem = format!(
                    "{context}: field \"{second}\": a cap names one object, and this one already has \"{first}\""
                );
                self.error(span.clone(), problem);
                return None;
            }
        }

        let badge = match &cap.badge {
            Some(value) => Some(self.badge(&context, "badge", value, None)?),
            None => None,
        };
        let object = if let Some(endpoint) = &cap.endpoint {
            let index = self.lookup(&context, "endpoint", "endpoint", &names.endpoints, endpoint);
            let rights = self.rights(&context, cap, "an endpoint", ENDPOINT_RIGHTS)?;
            CapObject::Endpoint { index: index?, rights }
        } else if let Some(notification) = &cap.notification {
            let index =
                self.lookup(&context, "notification", "notification", &names.notifications, notification);
            let rights = self.rights(&context, cap, "a notification", NOTIFICATION_RIGHTS)?;
            CapObject::Notification { index: index?, rights }
        } else if let Some(irq) = &cap.irq {
            self.no_rights(&context, cap, "an irq")?;
            CapObject::Irq { index: self.lookup(&context, "irq", "irq", &names.irqs, irq)? }
        } else if let Some(vcpu) = &cap.vcpu {
            self.no_rights(&context, cap, "a vcpu")?;
            self.vcpu_reference(&context, vcpu, names)?
        } else if let Some(vm) = &cap.vcpus {
            self.no_rights(&context, cap, "a vcpus")?;
            CapObject::Vcpus { vm: self.lookup(&context, "vcpus", "vm", &names.vms, vm)? }
        } else if cap.console.is_some() {
            self.no_rights(&context, cap, "the console")?;
            CapObject::Console
        } else {
            self.no_rights(&context, cap, "the control")?;
            CapObject::Control
        };

        let sends = match object {
            CapObject::Endpoint { rights, .. } => rights & (SEND | CALL) != 0,
            CapObject::Notification { rights, .. } => rights & SIGNAL != 0,
            CapObject::Irq { .. }
            | CapObject::Control
            | CapObject::Vcpu { .. }
            | CapObject::Vcpus { .. }
            | CapObject::Console => false,
        };
        let signals = matches!(object, CapObject::Notification { rights, .. } if rights & SIGNAL != 0);
        match (&cap.badge, badge) {
            (Some(value), Some(_)) if !sends => {
                let problem = "only caps with the send, call or signal right carry a badge";
                self.field(&context, "badge", value, problem);
                None
            }
            (Some(value), Some(0)) if signals => {
                let problem = "must not be zero: Signal ORs the badge into the notification word";
                self.field(&context, "badge", value, problem);
                None
            }
            (None, _) if signals => {
                let problem = format!(
                    "{context}: field \"badge\" is missing: Signal ORs the badge into the notification word, \
                     so a cap with the signal right needs a non-zero one"
                );
                self.error(cap.name.span(), problem);
                None
            }
            _ => Some(Cap { name: cap.name.get_ref().clone(), object, badge: badge.unwrap_or(0) }),
        }
    }

    /// A `vcpu` field: `"<vm>:<vCPU index>"`.
    fn vcpu_reference(&mut self, context: &str, value: &Text, names: &Namespaces) -> Option<CapObject> {
        let text = value.get_ref();
        let parsed = text.split_once(':').and_then(|(vm, index)| {
            let digits = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
            Some((vm, index.parse::<usize>().ok().filter(|_| digits)?))
        });
        let Some((vm_name, index)) = parsed else {
            let problem = format!(
                "\"{text}\" does not name one vCPU: write \"<vm>:<vCPU index>\" (or use \"vcpus\" for all of a VM's)"
            );
            self.field(context, "vcpu", value, problem);
            return None;
        };
        let vm_text = Spanned::new(value.span(), vm_name.to_owned());
        let vm = self.lookup(context, "vcpu", "vm", &names.vms, &vm_text)?;
        let count = names.vcpu_counts[vm];
        if index >= count {
            let problem = match count {
                0 => format!("vm \"{vm_name}\" has no vCPUs"),
                _ => format!("vm \"{vm_name}\" has {count} vCPU(s), 0..={}", count - 1),
            };
            self.field(context, "vcpu", value, problem);
            return None;
        }
        Some(CapObject::Vcpu { vm, index })
    }

    /// The rights bits of a cap on an object whose valid rights are `allowed`.
    fn rights(
        &mut self,
        context: &str,
        cap: &schema::Cap,
        kind: &str,
        allowed: &[(Right, u8)],
    ) -> Option<u8> {
        let allowed_names: Vec<&str> = allowed.iter().map(|(right, _)| right.name()).collect();
        let allowed_names = allowed_names.join(", ");
        let Some(rights) = cap.rights.as_ref().filter(|rights| !rights.get_ref().is_empty()) else {
            let problem = format!("{kind} cap needs at least one of the rights {allowed_names}");
            match &cap.rights {
                Some(rights) => self.field(context, "rights", rights, problem),
                None => {
                    self.error(cap.name.span(), format!("{context}: field \"rights\" is missing: {problem}"))
                }
            }
            return None;
        };
        let mut bits = 0;
        let mut valid = true;
        for right in rights.get_ref() {
            let name = right.get_ref().name();
            match allowed.iter().find(|(allowed, _)| allowed == right.get_ref()) {
                None => {
                    self.field(
                        context,
                        "rights",
                        right,
                        format!("\"{name}\" is not a right of {kind} cap ({allowed_names})"),
                    );
                    valid = false;
                }
                Some((_, bit)) if bits & bit != 0 => {
                    self.field(context, "rights", right, format!("\"{name}\" is listed twice"));
                    valid = false;
                }
                Some((_, bit)) => bits |= bit,
            }
        }
        valid.then_some(bits)
    }

    /// Caps on IRQs, vCPUs, the control object and the console have no rights.
    fn no_rights(&mut self, context: &str, cap: &schema::Cap, kind: &str) -> Option<()> {
        match &cap.rights {
            Some(rights) => {
                self.field(
                    context,
                    "rights",
                    rights,
                    format!("{kind} cap has no rights; leave the field out"),
                );
                None
            }
            None => Some(()),
        }
    }

    /// Resolves the component's mappings and places those without a `vaddr`.
    fn maps(
        &mut self,
        component: &str,
        raw: &schema::Component,
        names: &Namespaces,
        regions: &[MemoryRegion],
        fixed: &[(Range<u64>, String)],
    ) -> Vec<Map> {
        let mut taken: Vec<(Range<u64>, String)> = fixed.to_vec();
        let mut maps: Vec<(Map, Option<u64>)> = Vec::new();
        for map in &raw.map {
            let Some(name) = map_name(map).filter(|_| map.region.is_some() || map.vm_ram.is_some()) else {
                let what = map.name.as_ref().map_or(String::new(), |name| format!(" \"{}\"", name.get_ref()));
                let span = map.name.as_ref().map_or_else(|| map.perms.span(), |name| name.span());
                let problem = format!(
                    "{component}: map{what}: needs \"region\" (a memory region) or \"vm-ram\" (a VM)"
                );
                self.error(span, problem);
                continue;
            };
            let name = name.get_ref();
            let context = format!("{component}: map \"{name}\"");
            let perms = *map.perms.get_ref();
            let (mapped, size) = match (&map.region, &map.vm_ram) {
                (Some(region), None) => {
                    let Some(region) =
                        self.lookup(&context, "region", "memory-region", &names.regions, region)
                    else {
                        continue;
                    };
                    let (device, size) = (regions[region].phys_addr.is_some(), regions[region].size);
                    if device && perms == Perms::Rx {
                        self.field(&context, "perms", &map.perms, "device memory cannot be executable");
                    }
                    (Mapped::Region(region), size)
                }
                (None, Some(vm)) => {
                    let Some(vm) = self.lookup(&context, "vm-ram", "vm", &names.vms, vm) else { continue };
                    if perms == Perms::Rx {
                        self.field(
                            &context,
                            "perms",
                            &map.perms,
                            "guest RAM cannot be executable in a component",
                        );
                    }
                    let Some(size) = names.vm_memory[vm] else { continue };
                    (Mapped::VmRam(vm), size)
                }
                (Some(_), Some(vm)) => {
                    self.field(&context, "vm-ram", vm, "a map has either \"region\" or \"vm-ram\", not both");
                    continue;
                }
                (None, None) => continue,
            };
            let vaddr = match &map.vaddr {
                Some(value) => {
                    let Some(vaddr) = self.address(&context, "vaddr", value) else { continue };
                    let range = vaddr..vaddr + size;
                    let conflict = taken.iter().find(|(other, _)| overlaps(&range, other));
                    if range.end > ADDRESS_LIMIT {
                        let problem = format!(
                            "{} ends past the 48-bit limit {}",
                            range_text(&range),
                            hex(ADDRESS_LIMIT)
                        );
                        self.field(&context, "vaddr", value, problem);
                    } else if let Some((other, what)) = conflict {
                        let problem =
                            format!("{} overlaps {what} at {}", range_text(&range), range_text(other));
                        self.field(&context, "vaddr", value, problem);
                    }
                    taken.push((range, format!("map \"{name}\"")));
                    Some(vaddr)
                }
                None => None,
            };
            maps.push((Map { name: name.clone(), mapped, vaddr: vaddr.unwrap_or(0), perms, size }, vaddr));
        }
        // Each placed mapping starts one unmapped page after anything below it, so that
        // running off the end of one region faults instead of reaching the next.
        let mut cursor = REGIONS_BASE;
        for (map, given) in &mut maps {
            if given.is_some() {
                continue;
            }
            let size = map.size;
            while let Some((other, _)) =
                taken.iter().find(|(other, _)| overlaps(&(cursor..cursor + size), other))
            {
                cursor = other.end + PAGE_SIZE;
            }
            map.vaddr = cursor;
            taken.push((cursor..cursor + size, format!("map \"{}\"", map.name)));
            cursor += size + PAGE_SIZE;
        }
        maps.into_iter().map(|(map, _)| map).collect()
    }

    /// The generated constants of a component must be distinct.
    fn constants(&mut self, component: &str, raw: &schema::Component) {
        let mut defined: BTreeMap<String, (String, Option<Range<usize>>)> = BTreeMap::new();
        for constant in ["HEAP_BASE", "HEAP_SIZE"] {
            defined.insert(constant.to_owned(), ("the heap".to_owned(), None));
        }
        defined.insert("PASSTHROUGH_SPIS".to_owned(), ("a vgic-server's passthrough SPIs".to_owned(), None));
        let caps = raw.cap.iter().map(|cap| ("cap", &cap.name, vec![String::new()]));
        let maps = raw.map.iter().filter_map(|map| {
            let mut suffixes = vec![String::new(), "_SIZE".to_owned()];
            if map.vm_ram.is_some() {
                let vm_constants =
                    ["_IPA", "_VCPUS", "_ITS_DEVICES", "_ITS_EVENTS_PER_DEVICE", "_ITS_COLLECTIONS"];
                suffixes.extend(vm_constants.map(str::to_owned));
            }
            map_name(map).map(|name| ("map", name, suffixes))
        });
        for (kind, name, suffixes) in caps.chain(maps) {
            let owner = format!("{kind} \"{}\"", name.get_ref());
            let context = format!("{component}: {owner}");
            for suffix in suffixes {
                let constant = constant_name(name.get_ref()) + &suffix;
                match defined.get(&constant) {
                    Some((other, Some(span))) if *other == owner => {
                        let problem =
                            format!("duplicate {kind} name (first at line {})", self.line(span.clone()));
                        let hint = if kind == "map" { "; give one of them a \"name\"" } else { "" };
                        self.error(name.span(), format!("{context}: {problem}{hint}"));
                        break;
                    }
                    Some((other, _)) => {
                        let problem =
                            format!("{context}: its constant {constant} is already generated for {other}");
                        self.error(name.span(), problem);
                        break;
                    }
                    None => {
                        defined.insert(constant, (owner.clone(), Some(name.span())));
                    }
                }
            }
        }
    }

    fn vm(
        &mut self,
        vm: &schema::Vm,
        names: &Namespaces,
        regions: &[MemoryRegion],
        irqs: &[Irq],
        cpus: Option<u32>,
        base: &Path,
    ) -> Vm {
        let context = format!("vm \"{}\"", vm.name.get_ref());
        if vm.cpus.get_ref().is_empty() {
            self.field(&context, "cpus", &vm.cpus, "needs at least one vCPU: list the physical CPU of each");
        }
        let vcpus: Vec<u32> =
            vm.cpus.get_ref().iter().map(|cpu| self.cpu(&context, "cpus", cpu, cpus).unwrap_or(0)).collect();
        let priority = self.int(&context, "priority", &vm.priority, 0..=254);
        let memory = self.size(&context, "memory", &vm.memory, VM_RAM_ALIGN, false);
        let ram_base = match &vm.ram_base {
            Some(value) => self.address(&context, "ram-base", value).filter(|&base| {
                let aligned = base.is_multiple_of(VM_RAM_ALIGN);
                if !aligned {
                    let problem = format!("{} is not a multiple of 2M", hex(base));
                    self.field(&context, "ram-base", value, problem);
                }
                aligned
            }),
            None => Some(DEFAULT_VM_RAM_BASE),
        };
        // Devices are checked only with a valid vCPU count: the redistributors' size needs it.
        let devices = (!vcpus.is_empty()).then(|| guest::devices(vcpus.len()));
        let ram = ram_base.zip(memory).map(|(base, memory)| base..base + memory);
        if let Some(ram) = &ram {
            // Blame the base if it was given, else the size.
            let (field, span) = match &vm.ram_base {
                Some(value) => ("ram-base", value.span()),
                None => ("memory", vm.memory.span()),
            };
            let device = devices.iter().flatten().find(|device| overlaps(ram, &device.range()));
            if ram.end > ADDRESS_LIMIT {
                let problem = format!(
                    "{context}: field \"{field}\": guest RAM {} ends past the 48-bit limit {}",
                    range_text(ram),
                    hex(ADDRESS_LIMIT)
                );
                self.error(span, problem);
            } else if let Some(device) = device {
                let problem = format!(
                    "{context}: field \"{field}\": guest RAM {} overlaps {} at {} in the guest's device tree",
                    range_text(ram),
                    device.name,
                    range_text(&device.range())
                );
                self.error(span, problem);
            }
        }
        let (source, image_format) = self.guest_source(&context, vm, base);
        let initrd = vm
            .initrd
            .as_ref()
            .map(|initrd| self.guest_file(&context, "initrd", initrd, base, DebianFile::BusyboxInitramfs));
        if let Some(cmdline) = &vm.cmdline
            && cmdline.get_ref().contains('\0')
        {
            self.field(&context, "cmdline", cmdline, "contains a NUL character");
        }
        let fault_endpoint =
            self.lookup(&context, "fault-endpoint", "endpoint", &names.endpoints, &vm.fault_endpoint);
        let fault_badge =
            vm.fault_badge.as_ref().and_then(|value| self.badge(&context, "fault-badge", value, None));
        let vgic_endpoint = vm
            .vgic_endpoint
            .as_ref()
            .and_then(|value| self.lookup(&context, "vgic-endpoint", "endpoint", &names.endpoints, value));
        let vgic_badge = vm.vgic_badge.as_ref().and_then(|value| {
            if vm.vgic_endpoint.is_none() {
                self.field(&context, "vgic-badge", value, "has no effect without \"vgic-endpoint\"");
            }
            self.badge(&context, "vgic-badge", value, None)
        });
        let routes = self.routes(&context, vm, names, ram.clone(), devices);
        let mut taken: Vec<(Range<u64>, String)> =
            ram.into_iter().map(|ram| (ram, "guest RAM".to_owned())).collect();
        taken.extend(routes.iter().map(|route| (route.range(), format!("route \"{}\"", route.name))));
        taken.extend(devices.into_iter().flatten().map(|device| (device.range(), device.name.to_owned())));
        let passthroughs = vm
            .passthrough
            .iter()
            .filter_map(|passthrough| {
                self.passthrough(&context, passthrough, names, (regions, irqs), &mut taken)
            })
            .collect();
        let its = vm.its.as_ref().map_or(ItsQuotas::DEFAULT, |its| self.its_quotas(&context, its));
        Vm {
            name: vm.name.get_ref().clone(),
            cpus: vcpus,
            priority: priority.unwrap_or(0) as u8,
            memory: memory.unwrap_or(0),
            ram_base: ram_base.unwrap_or(0),
            source,
            image_format,
            initrd,
            cmdline: vm.cmdline.as_ref().map(|cmdline| cmdline.get_ref().clone()),
            fault_endpoint: fault_endpoint.unwrap_or(0),
            fault_badge: fault_badge.unwrap_or(0),
            routes,
            unclaimed: vm.unclaimed.unwrap_or(Unclaimed::ReadZero),
            vgic_endpoint,
            vgic_badge: vgic_badge.unwrap_or(0),
            passthroughs,
            its,
        }
    }

    /// `[vm.its]`: each quota in range (defaults for those not given), and the
    /// translations they allow within what the its-server holds.
    fn its_quotas(&mut self, vm_context: &str, its: &Spanned<schema::ItsTable>) -> ItsQuotas {
        let context = format!("{vm_context}: its");
        let mut quota = |field: &str, value: &Option<schema::Int>, max: u32, default: u32| match value {
            Some(value) => {
                self.int(&context, field, value, 1..=i64::from(max)).map_or(default, |value| value as u32)
            }
            None => default,
        };
        let default = ItsQuotas::DEFAULT;
        let table = its.get_ref();
        let quotas = ItsQuotas {
            devices: quota("devices", &table.devices, ItsQuotas::MAX_DEVICES, default.devices),
            events_per_device: quota(
                "events-per-device",
                &table.events_per_device,
                ItsQuotas::MAX_EVENTS_PER_DEVICE,
                default.events_per_device,
            ),
            collections: quota(
                "collections",
                &table.collections,
                ItsQuotas::MAX_COLLECTIONS,
                default.collections,
            ),
        };
        let translations = u64::from(quotas.devices) * u64::from(quotas.events_per_device);
        if translations > ItsQuotas::MAX_TRANSLATIONS {
            let problem = format!(
                "{context}: devices x events-per-device = {translations} translations, more than the its-server \
                 holds ({})",
                ItsQuotas::MAX_TRANSLATIONS
            );
            self.error(its.span(), problem);
        }
        quotas
    }

    /// A `[[vm.passthrough]]`: an irq, and a device region at a guest-physical range
    /// nothing else of the VM (`taken`) uses.
    fn passthrough(
        &mut self,
        vm_context: &str,
        passthrough: &schema::Passthrough,
        names: &Namespaces,
        (regions, irqs): (&[MemoryRegion], &[Irq]),
        taken: &mut Vec<(Range<u64>, String)>,
    ) -> Option<Passthrough> {
        let context = format!("{vm_context}: passthrough \"{}\"", passthrough.irq.get_ref());
        let irq = self.lookup(&context, "irq", "irq", &names.irqs, &passthrough.irq);
        let compatible = passthrough.compatible.as_ref().map(|value| {
            if passthrough.region.is_none() {
                self.field(
                    &context,
                    "compatible",
                    value,
                    "needs \"region\": a device tree node has registers",
                );
            }
            value.get_ref().iter().map(|text| text.get_ref().clone()).collect()
        });
        let device = match &passthrough.region {
            Some(value) => {
                let index = self.lookup(&context, "region", "memory-region", &names.regions, value)?;
                let region = &regions[index];
                let Some(base) = region.phys_addr else {
                    let problem = format!(
                        "memory-region \"{}\" is RAM: a passthrough needs a device (phys-addr)",
                        region.name
                    );
                    self.field(&context, "region", value, problem);
                    return None;
                };
                let range = base..base + region.size;
                if let Some((other, what)) = taken.iter().find(|(other, _)| overlaps(&range, other)) {
                    let problem = format!(
                        "{} overlaps {what} at {} in the guest",
                        range_text(&range),
                        range_text(other)
                    );
                    self.field(&context, "region", value, problem);
                }
                taken.push((range, format!("memory-region \"{}\"", region.name)));
                Some(PassthroughDevice {
                    region: index,
                    name: region.name.clone(),
                    base,
                    size: region.size,
                    compatible: compatible.unwrap_or_default(),
                })
            }
            None => None,
        };
        let irq = irq?;
        Some(Passthrough { irq, intid: irqs[irq].intid, trigger: irqs[irq].trigger, device })
    }

    /// The guest image: a file with its format, or a crate (an ELF).
    fn guest_source(&mut self, context: &str, vm: &schema::Vm, base: &Path) -> (GuestSource, ImageFormat) {
        let format = vm.image_format.as_ref();
        match (&vm.image, &vm.crate_name) {
            (Some(image), crate_name) => {
                if let Some(crate_name) = crate_name {
                    let problem = "a VM has one guest, and this one already has an \"image\"";
                    self.field(context, "crate", crate_name, problem);
                }
                let file = self.guest_file(context, "image", image, base, DebianFile::LinuxImage);
                let format = match format {
                    Some(format) => {
                        if file == GuestFile::Debian(DebianFile::LinuxImage)
                            && *format.get_ref() != ImageFormat::Linux
                        {
                            let problem = "debian:linux-image is a Linux arm64 Image: write \"linux\"";
                            self.field(context, "image-format", format, problem);
                        }
                        *format.get_ref()
                    }
                    None => {
                        let problem = format!(
                            "{context}: field \"image-format\" is missing: write \"binary\", \"elf\" or \"linux\""
                        );
                        self.error(image.span(), problem);
                        ImageFormat::Binary
                    }
                };
                (GuestSource::File(file), format)
            }
            (None, Some(crate_name)) => {
                if let Some(format) = format
                    && *format.get_ref() != ImageFormat::Elf
                {
                    let problem = "a crate builds an ELF: write \"elf\", or leave the field out";
                    self.field(context, "image-format", format, problem);
                }
                (GuestSource::Crate(self.package_name(context, crate_name)), ImageFormat::Elf)
            }
            (None, None) => {
                let problem = format!(
                    "{context}: needs a guest: field \"image\" (a file) or \"crate\" (a workspace package)"
                );
                self.error(vm.name.span(), problem);
                (GuestSource::Crate(String::new()), ImageFormat::Elf)
            }
        }
    }

    /// A VM's `image` or `initrd`: an existing file, or `debian:<name>` where `debian` is
    /// the one Debian file that the field takes.
    fn guest_file(
        &mut self,
        context: &str,
        field: &str,
        value: &Text,
        base: &Path,
        debian: DebianFile,
    ) -> GuestFile {
        let text = value.get_ref();
        if text.starts_with(DebianFile::PREFIX) {
            if text != debian.name() {
                let problem = format!(
                    "unknown Debian file {text:?}: the {field} made from Debian's packages is \"{}\"",
                    debian.name()
                );
                self.field(context, field, value, problem);
            }
            return GuestFile::Debian(debian);
        }
        let path = base.join(text);
        if text.is_empty() {
            self.field(context, field, value, "must name a file");
        } else if !path.is_file() {
            self.field(context, field, value, format!("{} is not a file", path.display()));
        }
        GuestFile::Path(path)
    }

    /// The VM's routes: each within the address limit, clear of RAM and of each other, and
    /// covering exactly the registers of any device of the guest's device tree it touches.
    fn routes(
        &mut self,
        vm_context: &str,
        vm: &schema::Vm,
        names: &Namespaces,
        ram: Option<Range<u64>>,
        devices: Option<[guest::Device; 4]>,
    ) -> Vec<Route> {
        self.names(vm.route.iter().map(|route| ("route", &route.name)));
        let mut taken: Vec<(Range<u64>, String)> =
            ram.into_iter().map(|ram| (ram, "guest RAM".to_owned())).collect();
        let mut routes = Vec::new();
        for route in &vm.route {
            let context = format!("{vm_context}: route \"{}\"", route.name.get_ref());
            let start = self.address(&context, "base", &route.base);
            let size = self.size(&context, "size", &route.size, PAGE_SIZE, false);
            let endpoint = self.lookup(&context, "endpoint", "endpoint", &names.endpoints, &route.endpoint);
            let badge = route.badge.as_ref().and_then(|value| self.badge(&context, "badge", value, None));
            if let (Some(start), Some(size)) = (start, size) {
                let range = start..start + size;
                let device = devices
                    .iter()
                    .flatten()
                    .find(|device| overlaps(&range, &device.range()) && range != device.range());
                if range.end > ADDRESS_LIMIT {
                    let problem =
                        format!("{} ends past the 48-bit limit {}", range_text(&range), hex(ADDRESS_LIMIT));
                    self.field(&context, "size", &route.size, problem);
                } else if let Some((other, what)) = taken.iter().find(|(other, _)| overlaps(&range, other)) {
                    let problem = format!("{} overlaps {what} at {}", range_text(&range), range_text(other));
                    self.field(&context, "base", &route.base, problem);
                } else if let Some(device) = device {
                    let problem = format!(
                        "{} overlaps {} at {} in the guest's device tree: a route to a device covers exactly its \
                         registers",
                        range_text(&range),
                        device.name,
                        range_text(&device.range())
                    );
                    self.field(&context, "base", &route.base, problem);
                }
                taken.push((range, format!("route \"{}\"", route.name.get_ref())));
            }
            routes.push(Route {
                name: route.name.get_ref().clone(),
                base: start.unwrap_or(0),
                size: size.unwrap_or(0),
                endpoint: endpoint.unwrap_or(0),
                badge: badge.unwrap_or(0),
            });
        }
        routes
    }

    /// Second pass: relations between valid objects. Indices of `system` are those of
    /// `manifest`, which supplies the positions.
    fn relations(&mut self, manifest: &schema::Manifest, system: &mut System) {
        let mut endpoints = vec![Holders::default(); system.endpoints.len()];
        let mut notifications = vec![Holders::default(); system.notifications.len()];
        let mut irq_holders: Vec<Vec<usize>> = vec![Vec::new(); system.irqs.len()];
        let mut mapped = vec![false; system.regions.len()];
        for (component_index, component) in system.components.iter().enumerate() {
            for (cap_index, cap) in component.caps.iter().enumerate() {
                let holder = (component_index, cap_index);
                let (holders, receives, sends) = match cap.object {
                    CapObject::Endpoint { index, rights } => {
                        (&mut endpoints[index], rights & RECV, rights & (SEND | CALL))
                    }
                    CapObject::Notification { index, rights } => {
                        (&mut notifications[index], rights & WAIT, rights & SIGNAL)
                    }
                    CapObject::Irq { index } => {
                        irq_holders[index].push(component_index);
                        continue;
                    }
                    CapObject::Control
                    | CapObject::Vcpu { .. }
                    | CapObject::Vcpus { .. }
                    | CapObject::Console => continue,
                };
                if receives != 0 {
                    holders.receivers.push(holder);
                }
                if sends != 0 {
                    holders.senders.push(holder);
                }
            }
            for map in &component.maps {
                if let Mapped::Region(region) = map.mapped {
                    mapped[region] = true;
                }
            }
        }
        for passthrough in system.vms.iter().flat_map(|vm| &vm.passthroughs) {
            if let Some(device) = &passthrough.device {
                mapped[device.region] = true;
            }
        }
        let fault_users =
            |endpoint: usize| system.components.iter().filter(move |c| c.fault_endpoint == Some(endpoint));
        let route_users = |endpoint: usize| {
            system.vms.iter().flat_map(|vm| &vm.routes).filter(move |route| route.endpoint == endpoint)
        };

        for (index, holders) in endpoints.iter().enumerate() {
            let name = &manifest.endpoint[index].name;
            let used = !holders.receivers.is_empty()
                || !holders.senders.is_empty()
                || fault_users(index).next().is_some()
                || route_users(index).next().is_some()
                || system.vms.iter().any(|vm| vm.fault_endpoint == index || vm.vgic_endpoint == Some(index));
            if !used {
                let problem = format!(
                    "endpoint \"{}\": no cap, fault-endpoint, vgic-endpoint or route refers to it",
                    name.get_ref()
                );
                self.error(name.span(), problem);
            }
        }
        for (index, holders) in notifications.iter().enumerate() {
            let name = &manifest.notification[index].name;
            let signalled = system.irqs.iter().any(|irq| irq.notification == index);
            if holders.receivers.is_empty() && holders.senders.is_empty() && !signalled {
                self.error(
                    name.span(),
                    format!("notification \"{}\": no cap or irq refers to it", name.get_ref()),
                );
            }
        }
        for (index, mapped) in mapped.iter().enumerate() {
            if !mapped {
                let name = &manifest.memory_region[index].name;
                self.error(
                    name.span(),
                    format!(
                        "memory-region \"{}\": no component maps it and no VM has it passed through",
                        name.get_ref()
                    ),
                );
            }
        }

        self.senders_have_receivers(manifest, system, &endpoints, &notifications);
        self.calls_go_up(manifest, system, &endpoints);
        self.route_irqs(manifest, system, &irq_holders);
        self.passthroughs_are_served(manifest, system, &endpoints);
        self.ram_budget(manifest, system);
    }

    /// A passed-through SPI reaches its VM's vgic-server: the VM has a `vgic-endpoint`,
    /// and a component receiving on it holds the irq's cap and is bound to its
    /// notification (so the interrupt arrives with the server's other messages).
    fn passthroughs_are_served(
        &mut self,
        manifest: &schema::Manifest,
        system: &System,
        endpoints: &[Holders],
    ) {
        for (raw_vm, vm) in manifest.vm.iter().zip(&system.vms) {
            for (index, (raw, passthrough)) in raw_vm.passthrough.iter().zip(&vm.passthroughs).enumerate() {
                let context = format!("vm \"{}\": passthrough \"{}\"", vm.name, raw.irq.get_ref());
                let Some(vgic_endpoint) = vm.vgic_endpoint else {
                    let problem = "the VM has no \"vgic-endpoint\": nobody would inject the interrupt";
                    self.field(&context, "irq", &raw.irq, problem);
                    continue;
                };
                let irq = &system.irqs[passthrough.irq];
                let mut earlier = vm.passthroughs[..index].iter().map(|other| &system.irqs[other.irq]);
                if let Some(other) = earlier
                    .find(|other| other.notification == irq.notification && other.badge & irq.badge != 0)
                {
                    let problem = format!(
                        "irqs \"{}\" and \"{}\" share badge bits {} on notification \"{}\": the vgic-server could \
                         not tell them apart",
                        other.name,
                        irq.name,
                        hex(other.badge & irq.badge),
                        system.notifications[irq.notification].name
                    );
                    self.field(&context, "irq", &raw.irq, problem);
                }
                let served = endpoints[vgic_endpoint].receivers.iter().any(|&(holder, _)| {
                    let component = &system.components[holder];
                    component.bound_notification == Some(irq.notification)
                        && component.caps.iter().any(
                            |cap| matches!(cap.object, CapObject::Irq { index } if index == passthrough.irq),
                        )
                });
                if !served {
                    let problem = format!(
                        "the component receiving on the VM's vgic-endpoint \"{}\" must hold a cap to irq \"{}\" and be \
                         bound to its notification \"{}\"",
                        system.endpoints[vgic_endpoint].name,
                        irq.name,
                        system.notifications[irq.notification].name
                    );
                    self.field(&context, "irq", &raw.irq, problem);
                }
            }
        }
    }

    /// Whatever can be sent or signalled must have someone to receive or wait for it.
    fn senders_have_receivers(
        &mut self,
        manifest: &schema::Manifest,
        system: &System,
        endpoints: &[Holders],
        notifications: &[Holders],
    ) {
        let cap_context = |(component, cap): (usize, usize)| {
            let raw = &manifest.component[component];
            let context =
                format!("component \"{}\": cap \"{}\"", raw.name.get_ref(), raw.cap[cap].name.get_ref());
            (
                context,
                raw.cap[cap].rights.as_ref().map_or_else(|| raw.cap[cap].name.span(), |rights| rights.span()),
            )
        };
        for (index, holders) in endpoints.iter().enumerate() {
            if !holders.receivers.is_empty() {
                continue;
            }
            let endpoint = &system.endpoints[index].name;
            let nobody = format!(
                "endpoint \"{endpoint}\", but no component can receive from it (no cap on it has \"recv\")"
            );
            if let Some(&holder) = holders.senders.first() {
                let (context, span) = cap_context(holder);
                self.error(span, format!("{context}: field \"rights\": can send on {nobody}"));
            }
            for (raw, component) in manifest.component.iter().zip(&system.components) {
                if component.fault_endpoint == Some(index)
                    && let Some(value) = &raw.fault_endpoint
                {
                    let context = format!("component \"{}\"", component.name);
                    self.field(&context, "fault-endpoint", value, format!("faults go to {nobody}"));
                }
            }
            for (raw_vm, vm) in manifest.vm.iter().zip(&system.vms) {
                let context = format!("vm \"{}\"", vm.name);
                if vm.fault_endpoint == index {
                    let problem = format!("traps go to {nobody}");
                    self.field(&context, "fault-endpoint", &raw_vm.fault_endpoint, problem);
                }
                if vm.vgic_endpoint == Some(index)
                    && let Some(value) = &raw_vm.vgic_endpoint
                {
                    self.field(&context, "vgic-endpoint", value, format!("vGIC events go to {nobody}"));
                }
                for (raw, route) in raw_vm.route.iter().zip(&vm.routes) {
                    if route.endpoint == index {
                        let context = format!("{context}: route \"{}\"", route.name);
                        self.field(&context, "endpoint", &raw.endpoint, format!("faults go to {nobody}"));
                    }
                }
            }
        }
        for (index, holders) in notifications.iter().enumerate() {
            let bound = system.components.iter().any(|component| component.bound_notification == Some(index));
            if !holders.receivers.is_empty() || bound {
                continue;
            }
            let notification = &system.notifications[index].name;
            let nobody = format!(
                "notification \"{notification}\", but no component waits on it (no cap on it has \"wait\" \
                 and no component binds it)"
            );
            if let Some(&holder) = holders.senders.first() {
                let (context, span) = cap_context(holder);
                self.error(span, format!("{context}: field \"rights\": can signal {nobody}"));
            }
            for (raw, irq) in manifest.irq.iter().zip(&system.irqs) {
                if irq.notification == index {
                    let context = format!("irq \"{}\"", irq.name);
                    self.field(&context, "notification", &raw.notification, format!("signals {nobody}"));
                }
            }
        }
        for (raw, component) in manifest.component.iter().zip(&system.components) {
            let (Some(index), Some(value)) = (component.fault_endpoint, &raw.fault_endpoint) else {
                continue;
            };
            let receivers = &endpoints[index].receivers;
            let this = system.components.iter().position(|c| c.name == component.name);
            if !receivers.is_empty() && receivers.iter().all(|&(receiver, _)| Some(receiver) == this) {
                let context = format!("component \"{}\"", component.name);
                let problem = format!(
                    "only \"{}\" itself receives from endpoint \"{}\", and a faulted component cannot handle its own fault",
                    component.name, system.endpoints[index].name
                );
                self.field(&context, "fault-endpoint", value, problem);
            }
        }
    }

    /// A caller blocks until the receiver replies, so the receiver must run at a higher
    /// priority than the caller (as in seL4 Microkit): otherwise a component of a
    /// priority in between can starve the call.
    fn calls_go_up(&mut self, manifest: &schema::Manifest, system: &System, endpoints: &[Holders]) {
        for (raw, component) in manifest.component.iter().zip(&system.components) {
            for (raw_cap, cap) in raw.cap.iter().zip(&component.caps) {
                let CapObject::Endpoint { index, rights } = cap.object else { continue };
                if rights & CALL == 0 {
                    continue;
                }
                let lowest = endpoints[index]
                    .receivers
                    .iter()
                    .map(|&(receiver, _)| &system.components[receiver])
                    .min_by_key(|receiver| receiver.priority);
                if let (Some(receiver), Some(rights)) = (lowest, &raw_cap.rights)
                    && receiver.priority <= component.priority
                {
                    let context = format!("component \"{}\": cap \"{}\"", component.name, cap.name);
                    let problem = format!(
                        "calls endpoint \"{}\", received by \"{}\" at priority {}, which is not above \"{}\"'s {}: \
                         a call must go to a higher priority",
                        system.endpoints[index].name,
                        receiver.name,
                        receiver.priority,
                        component.name,
                        component.priority
                    );
                    self.field(&context, "rights", rights, problem);
                }
            }
        }
        for (raw_vm, vm) in manifest.vm.iter().zip(&system.vms) {
            let vm_context = format!("vm \"{}\"", vm.name);
            let fault = (vm_context.clone(), "fault-endpoint", vm.fault_endpoint, &raw_vm.fault_endpoint);
            let vgic = vm
                .vgic_endpoint
                .zip(raw_vm.vgic_endpoint.as_ref())
                .map(|(endpoint, value)| (vm_context.clone(), "vgic-endpoint", endpoint, value));
            let routes = raw_vm.route.iter().zip(&vm.routes).map(|(raw, route)| {
                (format!("{vm_context}: route \"{}\"", route.name), "endpoint", route.endpoint, &raw.endpoint)
            });
            for (context, field, endpoint, value) in std::iter::once(fault).chain(vgic).chain(routes) {
                let lowest = endpoints[endpoint]
                    .receivers
                    .iter()
                    .map(|&(receiver, _)| &system.components[receiver])
                    .min_by_key(|receiver| receiver.priority);
                if let Some(receiver) = lowest
                    && receiver.priority <= vm.priority
                {
                    let problem = format!(
                        "endpoint \"{}\" is received by \"{}\" at priority {}, which is not above the VM's {}: \
                         a fault is a call and must go to a higher priority",
                        system.endpoints[endpoint].name, receiver.name, receiver.priority, vm.priority
                    );
                    self.field(&context, field, value, problem);
                }
            }
        }
    }

    /// Every IRQ needs a holder (to acknowledge it); without a `cpu` it goes to the CPU of
    /// its holders, which must then agree.
    fn route_irqs(&mut self, manifest: &schema::Manifest, system: &mut System, holders: &[Vec<usize>]) {
        for ((raw, irq), holders) in manifest.irq.iter().zip(&mut system.irqs).zip(holders) {
            let context = format!("irq \"{}\"", irq.name);
            let Some(&first) = holders.first() else {
                let problem =
                    format!("{context}: no component holds a cap to it, so nobody can acknowledge it");
                self.error(raw.name.span(), problem);
                continue;
            };
            if raw.cpu.is_some() {
                continue;
            }
            let first = &system.components[first];
            match holders
                .iter()
                .map(|&holder| &system.components[holder])
                .find(|other| other.cpu != first.cpu)
            {
                Some(other) => {
                    let problem = format!(
                        "{context}: its holders \"{}\" (CPU {}) and \"{}\" (CPU {}) disagree on its CPU: set \"cpu\"",
                        first.name, first.cpu, other.name, other.cpu
                    );
                    self.error(raw.name.span(), problem);
                }
                None => irq.cpu = first.cpu,
            }
        }
    }

    /// A first check that the RAM the manifest asks for fits; the layout repeats it
    /// exactly once the kernel and component images are known.
    fn ram_budget(&mut self, manifest: &schema::Manifest, system: &System) {
        let components: u64 = system
            .components
            .iter()
            .map(|component| component.stack_size + component.heap_size + PAGE_SIZE)
            .sum();
        let regions: u64 =
            system.regions.iter().filter(|region| region.phys_addr.is_none()).map(|r| r.size).sum();
        // VM RAM starts at a 2M boundary: up to 2M of padding below the first VM.
        let vm_alignment = if system.vms.is_empty() { 0 } else { VM_RAM_ALIGN };
        let vms: u64 = system.vms.iter().map(|vm| vm.memory).sum::<u64>() + vm_alignment;
        let needed = components + regions + vms;
        if needed + KERNEL_FREE_RESERVE > system.memory {
            let problem = format!(
                "{} cannot hold the {} that stacks, heaps, IPC buffers, RAM regions and VMs need plus the {} kept free for the kernel",
                size_text(system.memory),
                size_text(needed),
                size_text(KERNEL_FREE_RESERVE)
            );
            self.field("system", "memory", &manifest.system.memory, problem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("16K"), Some(16 << 10));
        assert_eq!(parse_size("2M"), Some(2 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        for bad in ["", "K", "16k", "1.5M", "-4K", "16KB", " 4K", "99999999999999999999G"] {
            assert_eq!(parse_size(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fixed_layout_has_no_overlaps() {
        let fixed = fixed_layout(DEFAULT_STACK_SIZE, 1 << 20);
        for (i, (a, what_a)) in fixed.iter().enumerate() {
            for (b, what_b) in &fixed[i + 1..] {
                assert!(!overlaps(a, b), "{what_a} and {what_b}");
            }
        }
    }
}
