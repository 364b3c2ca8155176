//! The guest of a system's VM replaced from the command line, as in
//! `cargo xtask run linux --kernel Image --initrd rootfs.cpio --append "console=ttyAMA0" --vcpus 4`.

use super::{CapObject, GuestFile, GuestSource, System, Vm, hex, size_text};
use crate::guest;
use anyhow::{Context, bail, ensure};
use std::io::Read as _;
use std::ops::Range;
use std::path::PathBuf;

/// What the command line gives in place of the manifest's guest. Absent fields keep the
/// manifest's value.
#[derive(Clone, Debug, Default)]
pub struct GuestOverride {
    /// The guest image (`--kernel`); its format is detected from its first bytes.
    pub kernel: Option<PathBuf>,
    /// The initrd (`--initrd`).
    pub initrd: Option<PathBuf>,
    /// The command line (`--append`).
    pub append: Option<String>,
    /// The number of vCPUs (`--vcpus`), pinned round-robin over the physical CPUs.
    pub vcpus: Option<usize>,
}

impl GuestOverride {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.kernel.is_none() && self.initrd.is_none() && self.append.is_none() && self.vcpus.is_none()
    }
}

/// Enough of an image to tell its format ([`guest::detect_format`] looks at 0x3c bytes).
const FORMAT_PROBE_BYTES: u64 = 0x40;

impl System {
    /// Replaces the guest of the system's only VM as `guest` says, and checks what the
    /// change could break.
    pub fn replace_guest(&mut self, guest: &GuestOverride) -> anyhow::Result<()> {
        if guest.is_empty() {
            return Ok(());
        }
        let path = self.path.display().to_string();
        let (components, cpus) = (self.components.len(), self.cpus);
        let [vm] = &mut self.vms[..] else {
            let count = match self.vms.len() {
                0 => "no VM".to_owned(),
                count => format!("{count} VMs"),
            };
            bail!(
                "{path}: --kernel, --initrd, --append and --vcpus replace the guest of the system's only VM, and \
                 system \"{}\" has {count}",
                self.name
            );
        };
        if let Some(kernel) = &guest.kernel {
            let mut head = Vec::new();
            std::fs::File::open(kernel)
                .and_then(|file| file.take(FORMAT_PROBE_BYTES).read_to_end(&mut head))
                .with_context(|| format!("--kernel {}", kernel.display()))?;
            vm.image_format = guest::detect_format(&head);
            vm.source = GuestSource::File(GuestFile::Path(kernel.clone()));
        }
        if let Some(initrd) = &guest.initrd {
            ensure!(initrd.is_file(), "--initrd {}: not a file", initrd.display());
            vm.initrd = Some(GuestFile::Path(initrd.clone()));
        }
        if let Some(append) = &guest.append {
            ensure!(!append.contains('\0'), "--append: the command line contains a NUL character");
            vm.cmdline = Some(append.clone());
        }
        if let Some(count) = guest.vcpus {
            set_vcpu_count(vm, count, cpus, components)
                .with_context(|| format!("{path}: --vcpus {count}"))?;
            // Every vCPU cap names a vCPU of the only VM.
            for component in &self.components {
                for cap in &component.caps {
                    if let CapObject::Vcpu { index, .. } = cap.object
                        && index >= count
                    {
                        bail!(
                            "{path}: --vcpus {count}: component \"{}\": cap \"{}\" names vCPU {index}, which no \
                             longer exists",
                            component.name,
                            cap.name
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

fn range_text(range: &Range<u64>) -> String {
    format!("[{}, {})", hex(range.start), hex(range.end))
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Gives `vm` `count` vCPUs on CPUs 0, 1, ..., `cpus - 1`, 0, ... A route covering exactly
/// the redistributors follows their new size.
fn set_vcpu_count(vm: &mut Vm, count: usize, cpus: u32, components: usize) -> anyhow::Result<()> {
    ensure!(
        (1..=bootinfo::MAX_VCPUS).contains(&count),
        "a VM has 1 to {} vCPUs (bootinfo::MAX_VCPUS)",
        bootinfo::MAX_VCPUS
    );
    ensure!(
        components + count <= bootinfo::MAX_THREADS,
        "{components} components and {count} vCPUs are more threads than the kernel's {} (bootinfo::MAX_THREADS)",
        bootinfo::MAX_THREADS
    );
    let (old, new) = (guest::redistributors(vm.cpus.len()).range(), guest::redistributors(count));
    for route in &mut vm.routes {
        if route.range() == old {
            route.size = new.size;
        }
    }
    let ram = vm.ram();
    if let Some(device) = guest::devices(count).into_iter().find(|device| overlaps(&ram, &device.range())) {
        bail!(
            "vm \"{}\": guest RAM {} overlaps {} at {}",
            vm.name,
            range_text(&ram),
            device.name,
            range_text(&device.range())
        );
    }
    for (index, route) in vm.routes.iter().enumerate() {
        let range = route.range();
        if overlaps(&range, &new.range()) && range != new.range() {
            bail!(
                "vm \"{}\": route \"{}\" {} overlaps {} at {}: give it exactly that range (size {} per vCPU)",
                vm.name,
                route.name,
                range_text(&range),
                new.name,
                range_text(&new.range()),
                size_text(guest::GICR_SIZE_PER_VCPU)
            );
        }
        if let Some(other) = vm.routes[..index].iter().find(|other| overlaps(&range, &other.range())) {
            bail!(
                "vm \"{}\": route \"{}\" {} overlaps route \"{}\" at {}",
                vm.name,
                route.name,
                range_text(&range),
                other.name,
                range_text(&other.range())
            );
        }
    }
    vm.cpus = (0..count).map(|index| index as u32 % cpus).collect();
    Ok(())
}
