//! Builds one system: its components (each with its generated capability constants), its
//! guests, the kernel, the boot-info blob, and the image that joins them.

use crate::debian;
use crate::image::{self, KernelImage, LoadSegment};
use crate::layout::GuestFiles;
use crate::manifest::{GuestFile, GuestOverride, GuestSource};
use crate::toolchain::TARGET;
use crate::{codegen, layout, manifest, qemu};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The exhaustive exploration of the its-server and vgic-server (an ignored test of
/// vgic-server), optimised by the `explore` profile; `EXPLORE_BOUND` in its environment
/// sets the number of MSIs (`cargo xtask explore --bound N`).
pub const EXPLORATION: &[&str] = &[
    "test",
    "--profile",
    "explore",
    "-p",
    "vgic-server",
    "--lib",
    "tests::explore::",
    "--",
    "--ignored",
    "--nocapture",
];

/// Host-side checks of `cargo xtask test`, in order: (name, cargo arguments).
pub const HOST_CHECKS: &[(&str, &[&str])] = &[
    ("format check", &["fmt", "--all", "--", "--check"]),
    ("clippy (host)", &["clippy", "--all-targets", "--", "-D", "warnings"]),
    (
        "clippy (target)",
        &[
            "clippy",
            "--release",
            "--target",
            TARGET,
            "-p",
            "kernel",
            "-p",
            "ipc",
            "-p",
            "bootinfo",
            "-p",
            "component-rt",
            "--",
            "-D",
            "warnings",
        ],
    ),
    ("host unit tests", &["test"]),
    ("ITS exploration (host, optimised)", EXPLORATION),
];

/// A component whose crate builds no executable: a library without its `src/main.rs`
/// (an IPC shell not written yet), so the system cannot be built.
#[derive(Debug)]
pub struct NoExecutable {
    /// The component.
    pub component: String,
    /// Its crate.
    pub crate_name: String,
}

impl std::fmt::Display for NoExecutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "component {:?}: crate {:?} builds no executable (it is a library without a src/main.rs)",
            self.component, self.crate_name
        )
    }
}

impl std::error::Error for NoExecutable {}

/// Whether system `name` loads files made from Debian's packages (the first build of
/// such a system fetches them, which needs the package registry).
pub fn uses_debian_files(name: &str) -> Result<bool> {
    let system = manifest::load(&PathBuf::from("images").join(name).join("system.toml"))?;
    Ok(system.vms.iter().any(manifest::Vm::uses_debian_files))
}

/// Extra work while building components.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    /// Build only.
    None,
    /// Also run clippy with `-D warnings` on each component (for `cargo xtask test`).
    Clippy,
}

/// A built system, ready to boot.
pub struct Built {
    /// The assembled ELF.
    pub image: PathBuf,
    /// The kernel ELF, for debuggers.
    pub kernel_elf: PathBuf,
    /// Nonce in this image's boot-info.
    pub nonce: u64,
    /// Physical CPUs.
    pub cpus: u32,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// Test timeout from the manifest.
    pub timeout_seconds: u64,
    /// The manifest's `expect-output`.
    pub expect_output: Vec<String>,
    /// The manifest's `fail-output`.
    pub fail_output: Vec<String>,
    /// Held while the image is built and run: a second `cargo xtask` for the same system
    /// waits instead of overwriting this image (whose nonce would then not match).
    _exclusive: std::fs::File,
}

impl Built {
    /// QEMU settings for this system.
    pub fn run_config(
        &self,
        console: qemu::Console,
        timeout: Duration,
        extra_args: Vec<String>,
    ) -> qemu::RunConfig<'_> {
        qemu::RunConfig {
            machine: qemu::Machine::Hypervisor,
            image: &self.image,
            cpus: self.cpus,
            memory_mib: self.memory_mib,
            nonce: self.nonce,
            timeout,
            console,
            extra_args,
            expect_output: &self.expect_output,
            fail_output: &self.fail_output,
        }
    }
}

/// The directory holding the workspace's Cargo.toml (xtask runs from anywhere inside).
pub fn workspace_root() -> Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().map(Path::to_path_buf).context("xtask has no parent directory")
}

/// Every system under `images/`, sorted.
pub fn all_systems() -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir("images").context("reading images/")? {
        let entry = entry?;
        if entry.path().join("system.toml").is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Runs cargo with `args` (and `envs`) in the workspace, failing on a non-zero exit.
pub fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result<()> {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// Builds system `name` from `images/<name>/system.toml`, its VM's guest replaced as
/// `guest` says.
pub fn build(name: &str, checks: Checks, guest: &GuestOverride) -> Result<Built> {
    let manifest_path = PathBuf::from("images").join(name).join("system.toml");
    if !manifest_path.is_file() {
        bail!(
            "no system named {name:?}: {} does not exist (systems: {})",
            manifest_path.display(),
            all_systems()?.join(", ")
        );
    }
    let mut system = manifest::load(&manifest_path)?;
    system.replace_guest(guest)?;
    if let (Some(kernel), [vm]) = (&guest.kernel, &system.vms[..]) {
        // The format was guessed from the contents: say which.
        eprintln!(
            "xtask: vm \"{}\": {} is loaded as image-format \"{}\"",
            vm.name,
            kernel.display(),
            vm.image_format.name()
        );
    }
    let out_dir = std::fs::canonicalize(".")?.join("target").join("systems").join(name);
    std::fs::create_dir_all(&out_dir)?;
    let exclusive = std::fs::File::create(out_dir.join(".lock"))?;
    if exclusive.try_lock().is_err() {
        eprintln!("xtask: another cargo xtask is using system {name}; waiting for it");
        exclusive.lock()?;
    }
    let components = build_components(&system, &out_dir, checks)?;
    let guests = guest_files(&system, &out_dir, checks)?;

    // An explicit target directory: a CARGO_TARGET_DIR in the environment must not leave
    // an old kernel at the path read below.
    cargo(&["build", "--release", "--target", TARGET, "--target-dir", "target", "-p", "kernel"], &[])?;
    let kernel_elf = PathBuf::from("target").join(TARGET).join("release").join("kernel");
    let kernel = KernelImage::parse(&std::fs::read(&kernel_elf).context("reading the kernel ELF")?)?;

    let nonce = qemu::new_nonce();
    let layout = layout::build(&system, kernel.end_pa(), &components, &guests, nonce)?;
    let mut segments = kernel.segments.clone();
    segments.push(LoadSegment {
        pa: layout.blob_pa,
        va: layout.blob_pa,
        mem_size: layout.blob.len() as u64,
        data: layout.blob,
        flags: object::elf::PF_R,
    });
    for segment in layout.segments {
        segments.push(LoadSegment {
            pa: segment.pa,
            va: segment.pa,
            mem_size: segment.data.len() as u64,
            data: segment.data,
            flags: object::elf::PF_R,
        });
    }
    let image_path = out_dir.join(format!("{name}.elf"));
    std::fs::write(&image_path, image::write_elf(kernel.entry, &segments)?)
        .with_context(|| format!("writing {}", image_path.display()))?;
    Ok(Built {
        image: image_path,
        kernel_elf,
        nonce,
        cpus: system.cpus,
        memory_mib: system.memory >> 20,
        timeout_seconds: system.timeout_seconds,
        expect_output: system.expect_output,
        fail_output: system.fail_output,
        _exclusive: exclusive,
    })
}

/// Builds every component crate with its generated capability constants; returns each
/// component's name and ELF bytes. Instances of one crate with the same generated source
/// (same slots, maps and heap) share one build. Instances whose sources differ (two VMMs
/// serving VMs of different sizes) are builds of their own: the `n`th variant of each
/// crate gets its own constants file and the target directory `cargo-variant-<n>`
/// (shared by the `n`th variants of all crates, so that their dependencies build once),
/// so that no variant's build invalidates another's and each stays incremental.
fn build_components(
    system: &manifest::System,
    out_dir: &Path,
    checks: Checks,
) -> Result<Vec<(String, Vec<u8>)>> {
    let caps_dir = out_dir.join("caps");
    std::fs::create_dir_all(&caps_dir)?;
    let linker_script = std::fs::canonicalize("component-rt/component.ld")?;
    let rustflags = format!("-C link-arg=-T{} -C force-frame-pointers=yes", linker_script.display());

    let variants = codegen::component_variants(system);
    let mut elves = Vec::new();
    for variant in &variants {
        // The first variant of a crate keeps the plain names of a single-variant build.
        let (caps_file, target_dir) = match variant.ordinal {
            0 => (format!("{}.rs", variant.crate_name), out_dir.join("cargo")),
            n => {
                (format!("{}-variant-{n}.rs", variant.crate_name), out_dir.join(format!("cargo-variant-{n}")))
            }
        };
        let caps_path = caps_dir.join(caps_file);
        // Rewriting an unchanged file would make cargo rebuild the crate.
        if std::fs::read_to_string(&caps_path).ok().as_deref() != Some(variant.source.as_str()) {
            std::fs::write(&caps_path, &variant.source)?;
        }
        let caps = caps_path.to_str().context("non-UTF-8 path")?;
        let target = target_dir.to_str().context("non-UTF-8 target path")?;
        let envs = [("HYP_CAPS", caps), ("RUSTFLAGS", rustflags.as_str())];
        let common = ["--release", "--target", TARGET, "--target-dir", target, "-p", variant.crate_name];
        if checks == Checks::Clippy {
            let mut args = vec!["clippy"];
            args.extend(common);
            args.extend(["--", "-D", "warnings"]);
            cargo(&args, &envs)?;
        }
        let mut args = vec!["build"];
        args.extend(common);
        cargo(&args, &envs)?;
        let elf_path = target_dir.join(TARGET).join("release").join(variant.crate_name);
        if !elf_path.is_file() {
            return Err(NoExecutable {
                component: variant.name.to_owned(),
                crate_name: variant.crate_name.to_owned(),
            }
            .into());
        }
        elves.push(std::fs::read(&elf_path).with_context(|| format!("reading {}", elf_path.display()))?);
    }
    Ok(system
        .components
        .iter()
        .map(|component| {
            let source = codegen::caps_source(system, component);
            let variant = variants
                .iter()
                .position(|variant| variant.crate_name == component.crate_name && variant.source == source)
                .expect("every component has a variant");
            (component.name.clone(), elves[variant].clone())
        })
        .collect())
}

/// Where `file` is, fetching and making it first if it is made from Debian's packages.
pub fn guest_file_path(file: &GuestFile) -> Result<PathBuf> {
    match file {
        GuestFile::Path(path) => Ok(path.clone()),
        GuestFile::Debian(made) => debian::provide(*made),
    }
}

/// Reads each VM's guest image and initrd, building the crates that provide images.
fn guest_files(
    system: &manifest::System,
    out_dir: &Path,
    checks: Checks,
) -> Result<Vec<(String, GuestFiles)>> {
    // Guests link with their own scripts: they get a target directory without the
    // components' RUSTFLAGS, so that neither set of builds invalidates the other.
    let target_dir = out_dir.join("guests");
    let target_dir = target_dir.to_str().context("non-UTF-8 target path")?;
    let read = |file: &GuestFile| {
        let path = guest_file_path(file)?;
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    system
        .vms
        .iter()
        .map(|vm| {
            let image = match &vm.source {
                GuestSource::File(file) => read(file)?,
                GuestSource::Crate(crate_name) => {
                    let elf = build_guest_crate(crate_name, target_dir, checks)?;
                    std::fs::read(&elf).with_context(|| format!("reading {}", elf.display()))?
                }
            };
            let initrd = vm.initrd.as_ref().map(read).transpose()?;
            Ok((vm.name.clone(), GuestFiles { image, initrd }))
        })
        .collect()
}

/// Builds guest crate `crate_name` for the bare-metal target in `target_dir` (after clippy
/// with `Checks::Clippy`); returns its ELF.
fn build_guest_crate(crate_name: &str, target_dir: &str, checks: Checks) -> Result<PathBuf> {
    let common = ["--release", "--target", TARGET, "--target-dir", target_dir, "-p", crate_name];
    if checks == Checks::Clippy {
        let mut args = vec!["clippy"];
        args.extend(common);
        args.extend(["--", "-D", "warnings"]);
        cargo(&args, &[])?;
    }
    let mut args = vec!["build"];
    args.extend(common);
    cargo(&args, &[])?;
    Ok(Path::new(target_dir).join(TARGET).join("release").join(crate_name))
}

/// A system's guest built to run without the hypervisor (`cargo xtask run --native`).
pub struct NativeGuest {
    /// The guest's ELF, which QEMU loads itself (the guest sees `x0` = 0, no device tree).
    pub elf: PathBuf,
    /// CPUs: the VM's vCPU count.
    pub cpus: u32,
    /// RAM in MiB: the system's.
    pub memory_mib: u64,
}

/// Whether system `name` has one VM and it boots a guest file (rather than a crate-built
/// guest).
pub fn vm_boots_file(name: &str) -> Result<bool> {
    let system = manifest::load(&PathBuf::from("images").join(name).join("system.toml"))?;
    Ok(matches!(&system.vms[..], [vm] if matches!(vm.source, GuestSource::File(_))))
}

/// Builds the guest crate of system `name`'s only VM, for a run on QEMU's own GIC.
pub fn build_native_guest(name: &str) -> Result<NativeGuest> {
    let manifest_path = PathBuf::from("images").join(name).join("system.toml");
    let system = manifest::load(&manifest_path)?;
    let [vm] = &system.vms[..] else {
        bail!("--native needs a system with exactly one VM; {name} has {}", system.vms.len());
    };
    let GuestSource::Crate(crate_name) = &vm.source else {
        bail!("--native needs a VM whose guest is a crate; vm {:?} boots a file", vm.name);
    };
    let target_dir = std::fs::canonicalize(".")?.join("target").join("systems").join(name).join("guests");
    let target_dir = target_dir.to_str().context("non-UTF-8 target path")?;
    Ok(NativeGuest {
        elf: build_guest_crate(crate_name, target_dir, Checks::None)?,
        cpus: vm.cpus.len() as u32,
        memory_mib: system.memory >> 20,
    })
}
