//! xtask: the project's one build tool. `cargo xtask run [SYSTEM]` assembles a system
//! image from `images/<system>/system.toml` and boots it in QEMU; `cargo xtask test` runs
//! formatting and lint checks, the host unit tests and every QEMU test system.
//!
//! ```text
//! cargo xtask run            # the default system, `hello`: a VM with the vgic-server, its-server and VMM
//! cargo xtask run --kernel my.elf --vcpus 4 # your guest in that VM
//! cargo xtask run demo --gdb # wait for gdb-multiarch on :1234
//! cargo xtask run guest-test --native # its guest on QEMU's own GIC, no hypervisor
//! cargo xtask run vm --kernel Image --initrd rootfs.cpio --append console=ttyAMA0 --vcpus 4
//! cargo xtask test
//! cargo xtask run linux --native     # Debian's Linux on QEMU alone, the VM's device tree
//! cargo xtask test --linux --native  # the Linux test, natively (without --native: the VM)
//! cargo xtask bench linux            # Linux boot times, natively and under the hypervisor
//! cargo xtask explore --bound 5       # the its-server/vgic-server exploration, 5 MSIs
//! ```

mod debian;
mod image;
mod linux;
mod qemu;
mod system;
mod toolchain;

// The manifest and what is generated from it live in the library, which tests/ also use.
use xtask::{codegen, layout, manifest};

use anyhow::{Context, Result, bail, ensure};
use clap::{Args, Parser, Subcommand};
use manifest::GuestOverride;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The system `cargo xtask run` boots when none is named.
const DEFAULT_SYSTEM: &str = "hello";

#[derive(Parser)]
#[command(about = "Build, boot and test the hypervisor's systems")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Build a system image and boot it in QEMU.
    Run {
        /// System name (a directory under images/).
        #[arg(default_value = DEFAULT_SYSTEM)]
        system: String,
        /// Start QEMU halted, waiting for gdb-multiarch on tcp::1234.
        #[arg(long)]
        gdb: bool,
        /// Kill QEMU after this many seconds (default: run until the system powers off).
        #[arg(long)]
        timeout: Option<u64>,
        /// Boot the guest of the system's only VM on QEMU alone (virtualization=off, EL1,
        /// QEMU's own GICv3 and ITS, one CPU per vCPU), without the hypervisor: a file guest
        /// (Linux) with the generated device tree, a crate-built test guest without one.
        #[arg(long)]
        native: bool,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Build a system image without running it; prints its path.
    Build {
        /// System name (a directory under images/).
        #[arg(default_value = DEFAULT_SYSTEM)]
        system: String,
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Boot the benchmark system under deterministic -icount and print its figures.
    Bench {
        /// `linux`: time Linux's boot to a shell and its power-off, natively and under the
        /// hypervisor, instead.
        #[arg(value_enum)]
        what: Option<Benchmark>,
    },
    /// Explore every interleaving of ITS commands, MSIs and guest acknowledges/EOIs over
    /// the real its-server and vgic-server on the host (`cargo xtask test` runs the
    /// default bound), printing the number of states.
    Explore {
        /// MSIs the devices send in each interleaving (the state space grows about fivefold
        /// per MSI).
        #[arg(long, default_value_t = 4)]
        bound: u8,
    },
    /// Check formatting and lints, run host unit tests and every QEMU test system
    /// (except those that boot Debian's Linux: see --linux).
    Test {
        /// Run only the QEMU systems whose names are given.
        #[arg(conflicts_with = "linux")]
        systems: Vec<String>,
        /// Instead, test Linux (images/linux) through its shell: fetches Debian's kernel and
        /// busybox on first use (needs Debian's package registry, and root for apt-get
        /// update).
        #[arg(long)]
        linux: bool,
        /// With --linux: boot Linux on QEMU alone, without the hypervisor.
        #[arg(long, requires = "linux")]
        native: bool,
    },
}

/// What `cargo xtask bench` measures besides the benchmark system.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Benchmark {
    /// Linux's boot to a shell and power-off (images/linux).
    Linux,
}

/// Options that replace the guest of the system's only VM.
#[derive(Args)]
struct GuestArgs {
    /// Guest image in place of the manifest's: an ELF, a Linux arm64 Image or a raw binary
    /// (told apart by their contents).
    #[arg(long, value_name = "FILE")]
    kernel: Option<PathBuf>,
    /// Initrd in place of the manifest's.
    #[arg(long, value_name = "FILE")]
    initrd: Option<PathBuf>,
    /// Guest command line (the device tree's bootargs) in place of the manifest's.
    #[arg(long, value_name = "ARGS")]
    append: Option<String>,
    /// Number of vCPUs, pinned round-robin over the physical CPUs.
    #[arg(long, value_name = "N")]
    vcpus: Option<usize>,
}

impl GuestArgs {
    /// The override, with paths made absolute against `cwd` (xtask then moves to the
    /// workspace root).
    fn resolve(self, cwd: &Path) -> GuestOverride {
        GuestOverride {
            kernel: self.kernel.map(|path| cwd.join(path)),
            initrd: self.initrd.map(|path| cwd.join(path)),
            append: self.append,
            vcpus: self.vcpus,
        }
    }
}

fn main() {
    if let Err(error) = run_cli() {
        eprintln!("xtask: error: {error:#}");
        std::process::exit(1);
    }
}

fn run_cli() -> Result<()> {
    let command = Cli::parse().command;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let root = system::workspace_root()?;
    std::env::set_current_dir(&root)?;
    match command {
        Commands::Run { system, gdb, timeout, native: true, guest } => {
            toolchain::ensure_rust_target()?;
            toolchain::ensure_qemu()?;
            let guest = guest.resolve(&cwd);
            if system::vm_boots_file(&system)? {
                ensure!(!gdb && timeout.is_none(), "--native with a guest file takes no --gdb or --timeout");
                if !std::io::stdin().is_terminal() {
                    return linux::run_piped(linux::Host::Native, &system, &guest);
                }
                return run_native_file(&system, &guest);
            }
            ensure!(
                guest.is_empty(),
                "--native with a crate-built guest takes no --kernel, --initrd, --append or --vcpus"
            );
            run_native(&system, gdb, timeout.map_or(Duration::MAX, Duration::from_secs))
        }
        Commands::Run { system, gdb, timeout, native: false, guest } => {
            toolchain::ensure_rust_target()?;
            toolchain::ensure_qemu()?;
            if system::vm_boots_file(&system)? && !gdb && timeout.is_none() && !std::io::stdin().is_terminal()
            {
                return linux::run_piped(linux::Host::Hypervisor, &system, &guest.resolve(&cwd));
            }
            let built = system::build(&system, system::Checks::None, &guest.resolve(&cwd))?;
            let extra_args = if gdb { gdb_args(&built.kernel_elf) } else { Vec::new() };
            let outcome = qemu::run(&built.run_config(
                qemu::Console::Interactive,
                timeout.map_or(Duration::MAX, Duration::from_secs),
                extra_args,
            ))?;
            if let Some(failure) = outcome.failure() {
                eprintln!("xtask: error: system {system}: {failure}");
                std::process::exit(exit_code(outcome.status));
            }
            Ok(())
        }
        Commands::Build { system, guest } => {
            toolchain::ensure_rust_target()?;
            let built = system::build(&system, system::Checks::None, &guest.resolve(&cwd))?;
            println!("{}", built.image.display());
            Ok(())
        }
        Commands::Bench { what } => {
            toolchain::ensure_rust_target()?;
            toolchain::ensure_qemu()?;
            match what {
                None => bench(),
                Some(Benchmark::Linux) => linux::bench(),
            }
        }
        Commands::Explore { bound } => {
            system::cargo(system::EXPLORATION, &[("EXPLORE_BOUND", &bound.to_string())])
        }
        Commands::Test { linux: true, native, .. } => {
            toolchain::ensure_rust_target()?;
            toolchain::ensure_qemu()?;
            linux::test(if native { linux::Host::Native } else { linux::Host::Hypervisor })
        }
        Commands::Test { systems, .. } => {
            toolchain::ensure_rust_target()?;
            toolchain::ensure_qemu()?;
            test(systems)
        }
    }
}

/// QEMU's arguments that make it wait for gdb-multiarch on :1234 (printing how to attach
/// to `elf`).
fn gdb_args(elf: &Path) -> Vec<String> {
    eprintln!("xtask: QEMU waits for gdb: gdb-multiarch {} -ex 'target remote :1234'", elf.display());
    vec!["-s".to_string(), "-S".to_string()]
}

/// `cargo xtask run <system> --native` for a file guest (Linux): QEMU alone with the
/// generated device tree, the console on the terminal (or pipe).
fn run_native_file(system: &str, guest: &GuestOverride) -> Result<()> {
    let mut command = linux::native_command(system, guest, qemu::Console::Interactive, &[])?;
    let status = command.stdout(std::process::Stdio::inherit()).spawn()?.wait()?;
    ensure!(status.success(), "QEMU exited with {status}");
    Ok(())
}

/// `cargo xtask run <system> --native`: the system's guest alone on QEMU's own GIC. No
/// kernel prints a nonce-tagged result, so the verdict is the guest's own summary line
/// (`summary: N checks, F failed`), which a run without fails.
fn run_native(system: &str, gdb: bool, timeout: Duration) -> Result<()> {
    let outcome = boot_native(system, qemu::Console::Interactive, timeout, gdb, Vec::new())?;
    match guest_failures(&outcome.output) {
        Some(0) => Ok(()),
        None => bail!("system {system} (native): the guest printed no summary line"),
        Some(failed) => {
            eprintln!("xtask: error: system {system} (native): {failed} check(s) failed");
            std::process::exit(exit_code(Some(failed)));
        }
    }
}

/// Builds system `system`'s guest and boots it alone on QEMU's own GIC; a timeout is an
/// error.
fn boot_native(
    system: &str,
    console: qemu::Console,
    timeout: Duration,
    gdb: bool,
    mut extra_args: Vec<String>,
) -> Result<qemu::Outcome> {
    let guest = system::build_native_guest(system)?;
    if gdb {
        extra_args.extend(gdb_args(&guest.elf));
    }
    let outcome = qemu::run(&qemu::RunConfig {
        machine: qemu::Machine::BareMetalGuest,
        image: &guest.elf,
        cpus: guest.cpus,
        memory_mib: guest.memory_mib,
        nonce: qemu::new_nonce(),
        timeout,
        console,
        extra_args,
        expect_output: &[],
        fail_output: &[],
    })?;
    if outcome.timed_out {
        bail!("system {system} (native): timed out");
    }
    Ok(outcome)
}

/// The failure count of a test guest's `summary: N checks, F failed` line.
fn guest_failures(output: &str) -> Option<u32> {
    output.lines().find_map(|line| {
        let (_, counts) = line.split_once("summary: ")?;
        counts.strip_suffix(" failed")?.rsplit_once(", ")?.1.parse().ok()
    })
}

/// The exit code of a `run` that did not pass: the system's own status where it reported
/// one (a test guest's failure code reaches the shell), else 1. Statuses that do not fit
/// in an exit code become 1, so that a failure never exits 0.
fn exit_code(status: Option<u32>) -> i32 {
    match status {
        Some(code @ 1..=255) => code as i32,
        _ => 1,
    }
}

/// The benchmark figures, as `bench-floor` and the `bench-runner` component print them.
const BENCH_ROWS: &[(&str, &str)] = &[
    ("hvc-floor", "floor: null HVC round trip from EL1 to an EL2 `eret`, loop included (bare metal)"),
    ("null-syscall", "null syscall round trip from EL0 (Poll)"),
    ("ipc-call-fastpath", "IPC Call+ReplyRecv round trip, same CPU, 2 words (fast path)"),
    (
        "ipc-call-fastpath-registers",
        "IPC Call+ReplyRecv round trip, same CPU, 2 words, register-only `ShortMessage` API (fast path)",
    ),
    ("ipc-call-long-message", "IPC Call+ReplyRecv round trip, same CPU, 16 words (fast path, IPC buffer)"),
    (
        "ipc-call-cross-cpu-system-wide",
        "IPC Call+ReplyRecv round trip to the other CPU (slow path, system-wide)",
    ),
    (
        "signal-cross-cpu-round-trip-system-wide",
        "Signal + Wait round trip to a thread on the other CPU (system-wide)",
    ),
    ("guest-mmio-read", "guest MMIO read forwarded to a server and back, loop included"),
    ("guest-hvc-to-server", "guest HVC (PSCI_VERSION) forwarded to a server and back, loop included"),
    ("guest-unclaimed-read", "guest read of an unclaimed address, answered by the kernel, loop included"),
];

/// The null HVC round trip from EL1 that issues 2 and 3 state their goals against (91
/// instructions, ../shared/DESIGN.md), not the 4-instruction `hvc-floor` this QEMU gives.
const NULL_HVC_FIGURE: u64 = 91;

/// Goals against [`NULL_HVC_FIGURE`] printed under the table: (label, row, factor).
const BENCH_HVC_GOALS: &[(&str, &str, u64)] = &[
    ("guest MMIO read round trip / 91-instruction null HVC (goal: under 4x, 364)", "guest-mmio-read", 4),
    (
        "IPC round trip in registers / 91-instruction null HVC (goal: under 3x, 273)",
        "ipc-call-fastpath-registers",
        3,
    ),
];

/// How long the bare-metal floor program may run (it takes well under a second).
const BENCH_FLOOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a guest-test `bench` row has a native figure.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Native {
    /// Measured natively too.
    Measured,
    /// Under the hypervisor only: natively there is no MSI test device (QEMU has none).
    NotAvailable,
}

/// guest-test's `bench` rows, printed natively (on QEMU's own GIC) and under the
/// hypervisor: (key, label, native figure).
const GIC_BENCH_ROWS: &[(&str, &str, Native)] = &[
    ("gic-gicd-read", "GICD register read, loop included", Native::Measured),
    (
        "gic-sgi-to-handler",
        "virtual IPI: the sender's ICC_SGI1R_EL1 write to the receiver's acknowledge",
        Native::Measured,
    ),
    ("gic-timer-to-handler", "virtual timer interrupt: its deadline to the acknowledge", Native::Measured),
    ("gic-eoi", "EOI: ICC_EOIR1_EL1 write and ISB, the counter reads included", Native::Measured),
    (
        "busy-loop-with-idle-vcpus",
        "a busy vCPU's 10^8 instructions (100 ms) while vCPUs 1..3 idle in WFI",
        Native::Measured,
    ),
    ("busy-loop-alone", "the same busy loop after vCPUs 1..3 are off (PSCI CPU_OFF)", Native::Measured),
    (
        "idle-vcpu-wfi-100ms",
        "one vCPU idle in WFI while a busy vCPU executes 100 ms: the difference / 3",
        Native::Measured,
    ),
    ("its-int-to-handler", "ITS INT: the CWRITER write to the target vCPU's acknowledge", Native::Measured),
    (
        "its-msi-to-handler",
        "MSI: the MSI test device's SEND write to the target vCPU's acknowledge",
        Native::NotAvailable,
    ),
    ("its-lpi-stress-per-lpi", "LPI stress, 2 vCPUs x 1 device x 256 events, INT: per LPI", Native::Measured),
    (
        "its-msi-stress-per-lpi",
        "LPI stress, 2 vCPUs x 1 device x 256 events, MSI (bursts of 64): per LPI",
        Native::NotAvailable,
    ),
    ("its-command-sync", "ITS command SYNC, in a batch of 100: per command", Native::Measured),
    ("its-command-mapti", "ITS command MAPTI, in a batch of 100: per command", Native::Measured),
    ("its-command-inv", "ITS command INV, in a batch of 100: per command", Native::Measured),
    ("its-command-int", "ITS command INT (LPI disabled), in a batch of 100: per command", Native::Measured),
    ("its-command-movi", "ITS command MOVI (LPI pending), in a batch of 100: per command", Native::Measured),
    (
        "its-command-discard",
        "ITS command DISCARD (LPI pending), in a batch of 100: per command",
        Native::Measured,
    ),
];

/// The LPI stress rows turned into LPIs per second: (stress key, label, native figure).
const LPI_RATE_ROWS: &[(&str, &str, Native)] = &[
    (
        "its-lpi-stress-per-lpi",
        "LPIs per second of virtual time (10^9 instructions), INT stress",
        Native::Measured,
    ),
    (
        "its-msi-stress-per-lpi",
        "LPIs per second of virtual time (10^9 instructions), MSI stress",
        Native::NotAvailable,
    ),
];

/// The instructions a busy vCPU executes in 100 ms under `-icount shift=0`, against which
/// the idle cost row is a share.
const BUSY_100MS_INSTRUCTIONS: u64 = 100_000_000;

/// `cargo xtask bench`: the floor program, the bench system, and guest-test natively and
/// under the hypervisor; two tables.
fn bench() -> Result<()> {
    // Instruction counting: exact and repeatable, and virtual time never follows the host.
    let icount = || vec!["-icount".to_string(), "shift=0,sleep=off".to_string()];
    let floor_output = bench_floor(icount())?;
    let native_output = bench_native_gic(icount())?;
    let hypervisor_output = bench_hypervisor_gic(icount())?;
    let built = system::build("bench", system::Checks::None, &GuestOverride::default())?;
    let outcome = qemu::run(&built.run_config(
        qemu::Console::Captured,
        Duration::from_secs(built.timeout_seconds),
        icount(),
    ))?;
    if let Some(failure) = outcome.failure() {
        bail!("bench system: {failure}");
    }
    let figure = |key: &str| bench_figure(&[&floor_output, &outcome.output], key);
    println!();
    println!("| path | instructions |");
    println!("|---|---:|");
    for (key, label) in BENCH_ROWS {
        println!("| {label} | {} |", figure(key)?);
    }
    for (label, key, factor) in BENCH_HVC_GOALS {
        let value = figure(key)?;
        let ratio = value as f64 / NULL_HVC_FIGURE as f64;
        let verdict = if value < factor * NULL_HVC_FIGURE { "met" } else { "not met" };
        println!("| {label} | {ratio:.1}x ({verdict}) |");
    }
    println!();
    println!("| guest-test, 4 vCPUs (system-wide instructions) | native | under the hypervisor | ratio |");
    println!("|---|---:|---:|---:|");
    for (key, label, native) in GIC_BENCH_ROWS {
        let hypervisor = bench_figure(&[&hypervisor_output], key)?;
        match native {
            Native::Measured => {
                let native = bench_figure(&[&native_output], key)?;
                let ratio = hypervisor as f64 / native.max(1) as f64;
                println!("| {label} | {native} | {hypervisor} | {ratio:.1}x |");
            }
            Native::NotAvailable => println!("| {label} | n/a | {hypervisor} | n/a |"),
        }
    }
    let idle = bench_figure(&[&hypervisor_output], "idle-vcpu-wfi-100ms")?;
    let share = idle as f64 * 100.0 / BUSY_100MS_INSTRUCTIONS as f64;
    let verdict = if idle * 100 < BUSY_100MS_INSTRUCTIONS { "met" } else { "not met" };
    println!(
        "| idle vCPU under the hypervisor / busy vCPU's 10^8 (goal: under 1%) | | {share:.4}% ({verdict}) | |"
    );
    let per_second = |per_lpi: u64| 1_000_000_000 / per_lpi.max(1);
    for (key, label, native) in LPI_RATE_ROWS {
        let hypervisor = per_second(bench_figure(&[&hypervisor_output], key)?);
        let native = match native {
            Native::Measured => per_second(bench_figure(&[&native_output], key)?).to_string(),
            Native::NotAvailable => "n/a".to_string(),
        };
        println!("| {label} | {native} | {hypervisor} | |");
    }
    Ok(())
}

/// The figure of the first `bench <key> <n>` line in `outputs`.
fn bench_figure(outputs: &[&str], key: &str) -> Result<u64> {
    let value = outputs.iter().flat_map(|output| output.lines()).find_map(|line| {
        let rest = line.split_once(&format!("bench {key} "))?.1;
        rest.trim().parse::<u64>().ok()
    });
    value.with_context(|| format!("the bench run printed no figure for {key}"))
}

/// Boots the guest-test system (the same guest under the hypervisor, 4 vCPUs on 2 CPUs,
/// GIC and ITS checks on) under `icount`: it must pass, and its `bench` lines are the
/// hypervisor's GIC figures. Returns its console output.
fn bench_hypervisor_gic(icount: Vec<String>) -> Result<String> {
    let built = system::build("guest-test", system::Checks::None, &GuestOverride::default())?;
    let outcome = qemu::run(&built.run_config(qemu::Console::Captured, BENCH_NATIVE_TIMEOUT, icount))?;
    match outcome.failure() {
        Some(failure) => bail!("guest-test (hypervisor): {failure}"),
        None => Ok(outcome.output),
    }
}

/// How long guest-test may run under `-icount`, natively or under the hypervisor (about a
/// minute on a busy machine).
const BENCH_NATIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Boots guest-test natively (`run --native`) under `icount`: its checks must pass, and its
/// `bench gic-*` lines are the GIC paths on QEMU's own GIC, in virtual nanoseconds (one
/// instruction each under `shift=0`). Returns its console output.
fn bench_native_gic(icount: Vec<String>) -> Result<String> {
    let outcome = boot_native("guest-test", qemu::Console::Captured, BENCH_NATIVE_TIMEOUT, false, icount)?;
    match guest_failures(&outcome.output) {
        Some(0) => Ok(outcome.output),
        _ => bail!("guest-test (native): its checks did not all pass"),
    }
}

/// Builds and boots `images/bench/floor` (bare metal, no kernel) on one CPU; returns its
/// console output. The program prints a figure, not a verdict, and no kernel runs to print
/// a nonce-tagged result line: the caller takes the figure from the output and a missing
/// one is an error, so only the timeout is checked here, never the result status.
fn bench_floor(icount: Vec<String>) -> Result<String> {
    // Its own target directory: it links with its own script and no component RUSTFLAGS.
    let target_dir = "target/systems/bench/floor";
    system::cargo(
        &[
            "build",
            "--release",
            "--target",
            toolchain::TARGET,
            "--target-dir",
            target_dir,
            "-p",
            "bench-floor",
        ],
        &[],
    )?;
    let image = Path::new(target_dir).join(toolchain::TARGET).join("release").join("bench-floor");
    let outcome = qemu::run(&qemu::RunConfig {
        machine: qemu::Machine::Hypervisor,
        image: &image,
        cpus: 1,
        memory_mib: 128,
        nonce: qemu::new_nonce(),
        timeout: BENCH_FLOOR_TIMEOUT,
        console: qemu::Console::Captured,
        extra_args: icount,
        expect_output: &[],
        fail_output: &[],
    })?;
    if outcome.timed_out {
        bail!("bench-floor: timed out");
    }
    Ok(outcome.output)
}

/// `cargo xtask test`: every check, then a closing `N passed, M failed` line.
fn test(only: Vec<String>) -> Result<()> {
    let started = Instant::now();
    let mut passed = 0;
    let mut failed = Vec::new();
    if only.is_empty() {
        for (name, args) in system::HOST_CHECKS {
            eprintln!("xtask: {name}");
            match system::cargo(args, &[]) {
                Ok(()) => passed += 1,
                Err(error) => failed.push(format!("{name}: {error:#}")),
            }
        }
    }
    let systems = if only.is_empty() { system::all_systems()? } else { only.clone() };
    for name in systems {
        // Those fetch Debian's packages and answer through a shell, not a result line.
        if system::uses_debian_files(&name).unwrap_or(false) {
            if only.contains(&name) {
                bail!("system {name} boots Debian's Linux: test it with `cargo xtask test --linux`");
            }
            eprintln!("xtask: system {name}: skipped (Debian's Linux: `cargo xtask test --linux`)");
            continue;
        }
        eprintln!("xtask: system {name}");
        let result =
            system::build(&name, system::Checks::Clippy, &GuestOverride::default()).and_then(|built| {
                let outcome = qemu::run(&built.run_config(
                    qemu::Console::Captured,
                    Duration::from_secs(built.timeout_seconds),
                    Vec::new(),
                ))?;
                match outcome.failure() {
                    Some(failure) => bail!("{failure}"),
                    None => Ok(()),
                }
            });
        match result {
            Ok(()) => passed += 1,
            Err(error) => failed.push(format!("system {name}: {error:#}")),
        }
    }
    eprintln!("xtask: finished in {:.0?}", started.elapsed());
    for failure in &failed {
        eprintln!("xtask: FAILED {failure}");
    }
    println!("{passed} passed, {} failed", failed.len());
    if !failed.is_empty() {
        bail!("{} check(s) failed", failed.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{exit_code, guest_failures};

    #[test]
    fn a_native_runs_verdict_is_the_guests_summary() {
        assert_eq!(guest_failures("check a: ok\nsummary: 41 checks, 0 failed\n"), Some(0));
        assert_eq!(guest_failures("summary: 41 checks, 3 failed"), Some(3));
        assert_eq!(guest_failures("no summary\n"), None);
    }

    #[test]
    fn a_failing_run_exits_with_the_systems_status_or_one() {
        assert_eq!(exit_code(Some(3)), 3);
        assert_eq!(exit_code(Some(255)), 255);
        assert_eq!(exit_code(Some(256)), 1);
        assert_eq!(exit_code(Some(57005)), 1);
        assert_eq!(exit_code(None), 1);
    }
}
