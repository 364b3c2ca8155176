//! Runs an image in QEMU with a timeout and reads the kernel's nonce-tagged result line.
//!
//! A run passes only on `[kernel] result nonce=<nonce> status=0` with this run's nonce:
//! the nonce lives in boot-info, which only the kernel reads, so a component or guest
//! printing the same words cannot forge a pass. Semihosting is never enabled: it would let
//! a guest end the run with any status.
//!
//! A run also fails on an error-level line ([`error_lines`]): components log through
//! component-rt as `[<component>] <LEVEL> <message>` with LEVEL one of ERROR, WARN, INFO,
//! DEBUG, TRACE (padded to five characters), a component's panic prints
//! `[<component>] panic: ...` and the kernel's `[kernel] panic: ...`; the kernel's other
//! lines (`[kernel] ...`, such as its rate-limited guest diagnostics and fault reports)
//! carry no level and are not errors. Nothing a guest does may cause an error-level line,
//! so a test system has none. And a run fails when text the manifest's `expect-output`
//! names is missing before the result line.

use crate::toolchain::QEMU;
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How the console is wired.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Console {
    /// Serial on this terminal, input from stdin (`cargo xtask run`).
    Interactive,
    /// Serial captured, no input, echoed as it arrives (`cargo xtask test`).
    Captured,
    /// Serial captured and echoed, input from a pipe that xtask writes (the Linux test).
    Piped,
}

/// Which QEMU machine boots the image.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// EL2 available (`virtualization=on`): the hypervisor, or `bench-floor`.
    Hypervisor,
    /// No EL2: a guest at EL1 on QEMU's own GICv3 and ITS, PSCI over HVC (`--native`).
    BareMetalGuest,
}

impl Machine {
    /// The `-M` argument.
    pub fn argument(self) -> &'static str {
        match self {
            Self::Hypervisor => "virt,virtualization=on,gic-version=3",
            Self::BareMetalGuest => "virt,virtualization=off,gic-version=3,its=on",
        }
    }
}

/// What to boot and how.
pub struct RunConfig<'a> {
    /// The machine.
    pub machine: Machine,
    /// The assembled ELF.
    pub image: &'a Path,
    /// Physical CPUs.
    pub cpus: u32,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// The nonce placed in this image's boot-info.
    pub nonce: u64,
    /// Kill QEMU after this long.
    pub timeout: Duration,
    /// Console wiring.
    pub console: Console,
    /// Extra QEMU arguments (e.g. `-icount`, `-s -S`).
    pub extra_args: Vec<String>,
    /// Text that must appear before the result line (the manifest's `expect-output`).
    pub expect_output: &'a [String],
    /// Text that ends the run as failed as soon as it appears (the manifest's
    /// `fail-output`).
    pub fail_output: &'a [String],
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// Status from the kernel's result line carrying this run's nonce, if one was printed.
    pub status: Option<u32>,
    /// Whether QEMU had to be killed at the timeout.
    pub timed_out: bool,
    /// Everything the serial console printed.
    pub output: String,
    /// The expected text ([`RunConfig::expect_output`]) missing before the result line.
    pub missing_output: Vec<String>,
    /// The [`RunConfig::fail_output`] text that ended the run, if any.
    pub failed_on: Option<String>,
}

impl Outcome {
    /// A one-line explanation of a run that did not pass.
    pub fn failure(&self) -> Option<String> {
        if let Some(text) = &self.failed_on {
            return Some(format!(
                "the console showed {text:?}, so the run was ended (the log above says why)"
            ));
        }
        let verdict = match (self.status, self.timed_out) {
            (Some(0), _) => None,
            (Some(status), _) => Some(format!("the system reported failure status {status}")),
            (None, true) => Some("timed out without a result line from the kernel".into()),
            (None, false) => Some("QEMU exited without a result line from the kernel".into()),
        };
        verdict
            .or_else(|| {
                let errors = error_lines(&self.output);
                let first = errors.first()?;
                Some(format!("{} error-level line(s) on the console, the first: {first}", errors.len()))
            })
            .or_else(|| {
                let missing = self.missing_output.first()?;
                Some(format!("the console never showed {missing:?} before the result line"))
            })
    }
}

/// The error-level lines of console `output` (see the module's documentation).
pub fn error_lines(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| {
            let Some((source, message)) = line.strip_prefix('[').and_then(|rest| rest.split_once("] "))
            else {
                return false;
            };
            !source.is_empty()
                && !source.contains(' ')
                && (message.starts_with("ERROR ") || message.starts_with("panic: "))
        })
        .collect()
}

/// The entries of `expected` that no line of `output` before the result line tagged with
/// `nonce` contains.
fn missing_output(output: &str, nonce: u64, expected: &[String]) -> Vec<String> {
    let result = format!("[kernel] result nonce={nonce:016x} status=");
    let before_result: Vec<&str> = output.lines().take_while(|line| !line.starts_with(&result)).collect();
    expected
        .iter()
        .filter(|text| !before_result.iter().any(|line| line.contains(text.as_str())))
        .cloned()
        .collect()
}

/// The CPU model of every run, with and without the hypervisor. SVE and SME off: the
/// kernel does not switch their state between vCPUs. Pointer authentication stays on
/// (Linux signs return addresses) with QEMU's own algorithm, which it emulates about twice
/// as fast as the architected QARMA.
pub const CPU_MODEL: &str = "max,sve=off,sme=off,pauth-impdef=on";

/// The QEMU command that boots `config.image` on the hypervisor's machine, with stdin and
/// stdout wired as `config.console` says.
pub fn command(config: &RunConfig) -> Command {
    let mut command = Command::new(QEMU);
    command.args(["-M", config.machine.argument(), "-cpu", CPU_MODEL]);
    command.args(["-smp", &config.cpus.to_string(), "-m", &format!("{}M", config.memory_mib)]);
    command.args(MACHINE_OPTIONS);
    command.arg("-kernel").arg(config.image);
    console_options(&mut command, config.console);
    command.args(&config.extra_args);
    command
}

/// Options of every QEMU machine here, with and without the hypervisor: a reset (PSCI
/// SYSTEM_RESET) ends the run instead of rebooting, and there is no network (nothing
/// uses one, and the default NIC needs a boot ROM package).
pub const MACHINE_OPTIONS: &[&str] = &["-no-reboot", "-nic", "none"];

/// Wires the serial console of `command` as `console` says.
pub fn console_options(command: &mut Command, console: Console) {
    match console {
        Console::Interactive => {
            command.arg("-nographic");
            command.stdin(Stdio::inherit());
        }
        Console::Captured => {
            command.args(["-display", "none", "-monitor", "none", "-serial", "stdio"]);
            command.stdin(Stdio::null());
        }
        Console::Piped => {
            command.args(["-display", "none", "-monitor", "none", "-serial", "stdio"]);
            command.stdin(Stdio::piped());
        }
    }
    command.stdout(Stdio::piped());
}

/// Boots `config.image` and waits for QEMU to exit or the timeout.
pub fn run(config: &RunConfig) -> Result<Outcome> {
    let mut child = command(config).spawn().with_context(|| format!("starting {QEMU}"))?;

    let mut stdout = child.stdout.take().context("QEMU stdout")?;
    let (sender, receiver) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buffer) {
            if n == 0 || sender.send(buffer[..n].to_vec()).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut output = Vec::new();
    let mut timed_out = false;
    let mut failed_on = None;
    let mut terminal = std::io::stdout();
    loop {
        let mut received = 0;
        while let Ok(bytes) = receiver.try_recv() {
            terminal.write_all(&bytes)?;
            terminal.flush()?;
            output.extend_from_slice(&bytes);
            received += bytes.len();
        }
        if received > 0 {
            failed_on = shown(&output, received, config.fail_output);
        }
        if failed_on.is_some() {
            child.kill().context("killing QEMU")?;
            child.wait()?;
            break;
        }
        if child.try_wait()?.is_some() {
            break;
        }
        if started.elapsed() > config.timeout {
            timed_out = true;
            child.kill().context("killing QEMU")?;
            child.wait()?;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reader.join().ok();
    for bytes in receiver.try_iter() {
        terminal.write_all(&bytes)?;
        output.extend_from_slice(&bytes);
    }
    let output = String::from_utf8_lossy(&output).replace('\r', "");
    Ok(Outcome {
        status: result_status(&output, config.nonce),
        timed_out,
        missing_output: missing_output(&output, config.nonce, config.expect_output),
        failed_on,
        output,
    })
}

/// The first of `texts` in the last `received` bytes of `output` (and in the text just
/// before them that one of `texts` could straddle).
fn shown(output: &[u8], received: usize, texts: &[String]) -> Option<String> {
    let longest = texts.iter().map(String::len).max()?;
    let recent = &output[output.len().saturating_sub(received + longest)..];
    texts.iter().find(|text| recent.windows(text.len()).any(|window| window == text.as_bytes())).cloned()
}

/// Finds the result line tagged with `nonce`; lines with another nonce are not the kernel's.
pub fn result_status(output: &str, nonce: u64) -> Option<u32> {
    let expected = format!("[kernel] result nonce={nonce:016x} status=");
    output.lines().find_map(|line| line.strip_prefix(&expected)?.trim().parse().ok())
}

/// A fresh value per run, so that no earlier output can pass for this run's result.
pub fn new_nonce() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_line_with_this_runs_nonce_counts() {
        let output = "[client] [kernel] result nonce=00000000000000ff status=0\n\
                      [kernel] result nonce=0000000000000001 status=0\n\
                      [kernel] result nonce=00000000000000ff status=3\n";
        assert_eq!(result_status(output, 0xff), Some(3));
        assert_eq!(result_status(output, 0x1), Some(0));
        assert_eq!(result_status(output, 0x2), None);
    }

    #[test]
    fn nonces_differ_between_runs() {
        assert_ne!(new_nonce(), new_nonce());
    }

    #[test]
    fn failure_explains_each_way_a_run_ends() {
        let outcome = |status, timed_out| Outcome {
            status,
            timed_out,
            output: String::new(),
            missing_output: Vec::new(),
            failed_on: None,
        };
        assert_eq!(outcome(Some(0), false).failure(), None);
        assert!(outcome(Some(2), false).failure().unwrap().contains("status 2"));
        assert!(outcome(None, true).failure().unwrap().contains("timed out"));
        assert!(outcome(None, false).failure().unwrap().contains("exited"));
        let with_error = Outcome { output: "[its-server] ERROR lost\n".into(), ..outcome(Some(0), false) };
        assert!(
            with_error.failure().unwrap().contains("1 error-level line(s) on the console, the first: [its")
        );
        let missing = Outcome { missing_output: vec!["done".into()], ..outcome(Some(0), false) };
        assert!(missing.failure().unwrap().contains("never showed \"done\""));
        let panicked = Outcome { failed_on: Some("Kernel panic".into()), ..outcome(Some(0), false) };
        assert!(panicked.failure().unwrap().contains("showed \"Kernel panic\""), "even before a result line");
    }

    #[test]
    fn fail_output_is_found_in_the_new_bytes_and_across_their_start() {
        let texts = ["Kernel panic - not syncing".to_string()];
        let output = b"[ 1.0] ok\n[ 2.0] Kernel panic - not syncing: VFS\n";
        assert_eq!(shown(output, 20, &texts).as_deref(), Some("Kernel panic - not syncing"), "straddling");
        assert_eq!(shown(output, output.len(), &texts).as_deref(), Some("Kernel panic - not syncing"));
        assert_eq!(shown(b"[ 1.0] all well\n", 5, &texts), None);
        assert_eq!(shown(output, 3, &[]), None, "nothing to look for");
    }

    #[test]
    fn error_level_lines_are_component_errors_and_panics() {
        let output = "[vmm] ERROR gone\n\
                      [vgic-server] WARN  odd access\n\
                      [its-server] INFO  dropped\n\
                      [its-server] panic: index out of bounds\n\
                      [kernel] panic: at kernel/src/main.rs:3\n\
                      [kernel] thread faulter faulted: esr=0x92000046\n\
                      check its: ERROR in the text of a guest line\n\
                      [not a source] ERROR x\n";
        assert_eq!(
            error_lines(output),
            [
                "[vmm] ERROR gone",
                "[its-server] panic: index out of bounds",
                "[kernel] panic: at kernel/src/main.rs:3"
            ]
        );
    }

    #[test]
    fn expected_output_counts_only_before_the_result_line() {
        let output = "attacker: flood done\n[kernel] result nonce=0000000000000007 status=0\nlate line\n";
        let expected = ["attacker: flood".to_string(), "late line".to_string()];
        assert_eq!(missing_output(output, 7, &expected), ["late line"]);
        assert_eq!(missing_output(output, 8, &expected), Vec::<String>::new());
    }
}
