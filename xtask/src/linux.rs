//! Linux as a guest: the kernel and initramfs of `images/linux` (Debian's, by default),
//! booted natively on QEMU or under the hypervisor, and driven through the serial console.
//!
//! The native boot is the reference: `-M virt,virtualization=off` (Linux at EL1, as a
//! guest), the hypervisor's CPU model, and `-dtb` given the device tree that xtask
//! generates for the VM, so that both boots probe the same devices.
//!
//! - `cargo xtask bench linux`: time to the shell marker and to power-off, natively and
//!   under the hypervisor, in icount virtual time (the guest kernel's clock, exact and
//!   repeatable under `-icount shift=0,sleep=off`) and in wall-clock time.
//! - `cargo xtask test --linux [--native]`: types commands carrying a per-run nonce and
//!   checks the answers (CPUs online, timer and IPIs counting on every CPU, the ITS
//!   probed, pinned work on each CPU), then powers off.
//! - `cargo xtask run <system> --native`: the VM's guest on QEMU alone, interactively.
//! - `... | cargo xtask run linux [--native]`: with stdin a pipe (not a terminal), what
//!   comes through it is typed only once the shell is up ([`run_piped`]): Linux's PL011
//!   driver empties the UART's FIFO when it opens the console, so input typed earlier is
//!   lost, natively as under the hypervisor.

use crate::manifest::{self, GuestOverride, GuestSource, Vm};
use crate::qemu::{self, Console};
use crate::system::{self, Built};
use crate::toolchain::QEMU;
use anyhow::{Context, Result, bail, ensure};
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use xtask::devicetree;
use xtask::initramfs::SHELL_MARKER;

/// The system that runs Linux.
pub const SYSTEM: &str = "linux";

/// What the benchmark types before `poweroff -f`, so that the kernel timestamps the moment
/// the command starts.
const POWER_OFF_MARKER: &str = "xtask-linux: power-off";
/// What Linux prints last when it powers off.
const POWER_DOWN: &str = "reboot: Power down";
/// Time allowed from QEMU's start to the shell marker.
const BOOT_TIMEOUT: Duration = Duration::from_secs(150);
/// Time allowed for one typed command's answer, and for the power-off.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Iterations of the shell loop that each pinned CPU runs in the test.
const PINNED_LOOPS: u32 = 20_000;

/// Where Linux boots.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Host {
    /// On QEMU alone (`virtualization=off`).
    Native,
    /// Under the hypervisor, as the system `images/linux`.
    Hypervisor,
}

impl Host {
    fn name(self) -> &'static str {
        match self {
            Host::Native => "native",
            Host::Hypervisor => "hypervisor",
        }
    }
}

/// A QEMU command line, and the nonce of the kernel's result line when the hypervisor runs.
struct Machine {
    command: Command,
    kernel_nonce: Option<u64>,
    /// Held while the machine runs (the hypervisor's image lock).
    _built: Option<Built>,
}

/// The QEMU that boots system `name`'s guest (as `guest` changes it) natively: its image,
/// initrd and generated device tree.
pub fn native_command(
    name: &str,
    guest: &GuestOverride,
    console: Console,
    extra: &[String],
) -> Result<Command> {
    let mut system = manifest::load(&PathBuf::from("images").join(name).join("system.toml"))?;
    system.replace_guest(guest)?;
    let [vm] = &system.vms[..] else {
        bail!(
            "a native boot runs the guest of a system's only VM, and system {name:?} has {}",
            system.vms.len()
        );
    };
    let GuestSource::File(image) = &vm.source else {
        bail!("vm {:?}: a native boot takes a guest image file, not a crate", vm.name);
    };
    let kernel = system::guest_file_path(image)?;
    let initrd = vm.initrd.as_ref().map(system::guest_file_path).transpose()?;
    let dtb = write_device_tree(name, vm, initrd.as_deref())?;
    let mut command = Command::new(QEMU);
    command.args(["-M", qemu::Machine::BareMetalGuest.argument(), "-cpu", qemu::CPU_MODEL]);
    command.args(["-smp", &vm.cpus.len().to_string(), "-m", &format!("{}M", vm.memory >> 20)]);
    command.args(qemu::MACHINE_OPTIONS);
    command.arg("-kernel").arg(kernel).arg("-dtb").arg(dtb);
    if let Some(initrd) = initrd {
        command.arg("-initrd").arg(initrd);
    }
    qemu::console_options(&mut command, console);
    command.args(extra);
    Ok(command)
}

/// Writes `vm`'s device tree for a native boot; returns its path. QEMU rewrites the
/// memory node's size (to `-m`, the VM's memory) and the initrd's place in `/chosen`.
fn write_device_tree(system: &str, vm: &Vm, initrd: Option<&Path>) -> Result<PathBuf> {
    let initrd_size = initrd.map(std::fs::metadata).transpose()?.map_or(0, |metadata| metadata.len());
    let ram = vm.ram();
    let tree = devicetree::build(vm, initrd.map(|_| ram.end - initrd_size..ram.end))?;
    let directory = PathBuf::from("target").join("systems").join(system);
    std::fs::create_dir_all(&directory)?;
    let path = directory.join(format!("{}-native.dtb", vm.name));
    std::fs::write(&path, tree).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The machine that boots system `system` (its guest as `guest` changes it) on `host`,
/// with `extra` QEMU arguments and the console piped.
fn machine(host: Host, system: &str, guest: &GuestOverride, extra: &[String]) -> Result<Machine> {
    Ok(match host {
        Host::Native => Machine {
            command: native_command(system, guest, Console::Piped, extra)?,
            kernel_nonce: None,
            _built: None,
        },
        Host::Hypervisor => {
            let built = system::build(system, system::Checks::None, guest)?;
            let command = qemu::command(&built.run_config(Console::Piped, Duration::MAX, extra.to_vec()));
            Machine { command, kernel_nonce: Some(built.nonce), _built: Some(built) }
        }
    })
}

/// A running QEMU whose console xtask reads (echoing it to the terminal) and types into.
struct Session {
    child: Child,
    input: ChildStdin,
    chunks: mpsc::Receiver<Vec<u8>>,
    /// Everything the console printed so far, without carriage returns.
    output: String,
    started: Instant,
}

impl Session {
    fn start(mut command: Command) -> Result<Session> {
        let mut child = command.spawn().with_context(|| format!("starting {QEMU}"))?;
        let input = child.stdin.take().context("QEMU stdin")?;
        let mut stdout = child.stdout.take().context("QEMU stdout")?;
        let (sender, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(count @ 1..) = stdout.read(&mut buffer) {
                if sender.send(buffer[..count].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ok(Session { child, input, chunks, output: String::new(), started: Instant::now() })
    }

    /// Takes what the console printed until `deadline`, or until something arrives;
    /// false once QEMU has exited and everything it printed is taken.
    fn receive(&mut self, deadline: Instant) -> Result<bool> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.chunks.recv_timeout(wait) {
            Ok(bytes) => {
                let mut terminal = std::io::stdout();
                terminal.write_all(&bytes)?;
                terminal.flush()?;
                // Lossy per chunk: a character split between chunks only garbles itself.
                self.output.push_str(&String::from_utf8_lossy(&bytes).replace('\r', ""));
                Ok(true)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(true),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(false),
        }
    }

    /// Waits until a complete line printed after byte `from` of the output gives a value
    /// to `matches`; returns the first such value.
    fn wait_for<T>(
        &mut self,
        from: usize,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let complete = self.output[from..].rfind('\n').map_or(from, |end| from + end);
            if let Some(value) = self.output[from..complete].lines().find_map(&matches) {
                return Ok(value);
            }
            // With panic=-1 a panicking guest resets and boots again: say so at once
            // rather than wait through a loop of boots.
            if let Some(panic) =
                self.output[from..complete].lines().find(|line| line.contains("Kernel panic"))
            {
                bail!("Linux panicked while xtask waited for {what}: {}", panic.trim());
            }
            if !self.receive(deadline)? {
                bail!("QEMU exited before {what}{}", self.panic_text());
            }
            if Instant::now() >= deadline {
                bail!("timed out after {timeout:?} waiting for {what}{}", self.panic_text());
            }
        }
    }

    /// `: <the panic line>` when the kernel panicked, else nothing.
    fn panic_text(&self) -> String {
        let panic = self.output.lines().find(|line| line.contains("Kernel panic"));
        panic.map(|line| format!(": Linux panicked: {}", line.trim())).unwrap_or_default()
    }

    /// Types `line` and a newline; returns where the output stood, so that answers are
    /// looked for only after it.
    fn type_line(&mut self, line: &str) -> Result<usize> {
        let from = self.output.len();
        self.input.write_all(format!("{line}\n").as_bytes()).context("typing into QEMU")?;
        self.input.flush()?;
        Ok(from)
    }

    /// Waits for QEMU to exit; returns the CPU time it used (user and system, all its
    /// threads), read from /proc after its output ended and before it is reaped.
    fn wait_exit(&mut self, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        while self.receive(deadline)? {
            if Instant::now() >= deadline {
                bail!("QEMU did not exit within {timeout:?} of the power-off");
            }
        }
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"));
        self.child.wait()?;
        stat.and_then(|stat| cpu_time(&stat).with_context(|| format!("no CPU times in {path}")))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Ends a QEMU left running by an error; one that has exited ignores the kill.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `[    4.123456] <message>` read as 4.123456 seconds when `message` is the whole text.
fn kernel_timestamp(line: &str, message: &str) -> Option<f64> {
    let (time, rest) = line.trim().strip_prefix('[')?.split_once(']')?;
    (rest.trim() == message).then(|| time.trim().parse().ok()).flatten()
}

/// The user plus system time of a `/proc/<pid>/stat` line: fields 14 and 15, counted
/// after the parenthesized command name (which may hold spaces), in USER_HZ ticks (100 per
/// second in Linux's ABI).
fn cpu_time(stat: &str) -> Option<Duration> {
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = |field: usize| fields.get(field - 3)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// One boot's figures.
struct BootTimes {
    /// Kernel clock at the shell marker (seconds).
    marker_virtual: f64,
    /// Kernel clock at the shell marker plus the power-off's duration (seconds).
    power_off_virtual: f64,
    /// Host time from QEMU's start to the shell marker.
    marker_wall: Duration,
    /// Host time from QEMU's start to its exit, less the wait before the command was typed.
    power_off_wall: Duration,
    /// QEMU's CPU time for the whole run: unlike wall-clock time, it does not grow with
    /// other jobs' load on the host.
    cpu: Duration,
}

/// `cargo xtask run` of a Linux system with stdin a pipe: boots `host`'s machine (native:
/// `system`'s guest as `guest` changes it), echoes the console, and once the shell marker
/// is printed copies stdin to the console until it ends; returns when QEMU exits (the
/// guest powers off). Under the hypervisor the kernel's result line must say status 0.
pub fn run_piped(host: Host, system: &str, guest: &GuestOverride) -> Result<()> {
    let machine = machine(host, system, guest, &[])?;
    let mut session = Session::start(machine.command)?;
    session.wait_for(0, "the shell marker", BOOT_TIMEOUT, |line| kernel_timestamp(line, SHELL_MARKER))?;
    let mut input = std::fs::File::from(session.input.as_fd().try_clone_to_owned().context("QEMU stdin")?);
    std::thread::spawn(move || std::io::copy(&mut std::io::stdin().lock(), &mut input));
    while session.receive(Instant::now() + COMMAND_TIMEOUT)? {}
    session.child.wait()?;
    match machine.kernel_nonce {
        Some(nonce) => check_result_line(&session.output, nonce),
        None => Ok(()),
    }
}

/// Boots, waits for the shell, types the power-off and times both.
fn measure(machine: Machine) -> Result<BootTimes> {
    let mut session = Session::start(machine.command)?;
    let marker_virtual =
        session.wait_for(0, "the shell marker", BOOT_TIMEOUT, |line| kernel_timestamp(line, SHELL_MARKER))?;
    let marker_wall = session.started.elapsed();
    let from = session.type_line(&format!("echo '{POWER_OFF_MARKER}' > /dev/kmsg; poweroff -f"))?;
    let typed = Instant::now();
    let command_start = session.wait_for(from, "the power-off marker", COMMAND_TIMEOUT, |line| {
        kernel_timestamp(line, POWER_OFF_MARKER)
    })?;
    let power_down = session
        .wait_for(from, "the power-off", COMMAND_TIMEOUT, |line| kernel_timestamp(line, POWER_DOWN))?;
    let cpu = session.wait_exit(COMMAND_TIMEOUT)?;
    let power_off_wall = marker_wall + typed.elapsed();
    if let Some(nonce) = machine.kernel_nonce {
        check_result_line(&session.output, nonce)?;
    }
    Ok(BootTimes {
        marker_virtual,
        power_off_virtual: marker_virtual + (power_down - command_start),
        marker_wall,
        power_off_wall,
        cpu,
    })
}

fn check_result_line(output: &str, nonce: u64) -> Result<()> {
    match qemu::result_status(output, nonce) {
        Some(0) => Ok(()),
        Some(status) => bail!("the hypervisor reported failure status {status}"),
        None => bail!("the hypervisor printed no result line for this run"),
    }
}

/// `cargo xtask bench linux`: both boots under `-icount shift=0,sleep=off`, one table.
pub fn bench() -> Result<()> {
    let icount = ["-icount".to_string(), "shift=0,sleep=off".to_string()];
    let mut rows = Vec::new();
    for host in [Host::Native, Host::Hypervisor] {
        // A failed boot still leaves the other row to print.
        let times = machine(host, SYSTEM, &GuestOverride::default(), &icount).and_then(measure);
        if let Err(error) = &times {
            eprintln!("xtask: error: Linux boot ({}): {error:#}", host.name());
        }
        rows.push((host, times));
    }
    println!();
    println!(
        "Linux boot, images/linux ({} vCPUs), virtual = the guest kernel's clock under icount",
        vcpus()?
    );
    println!();
    println!(
        "| boot | shell marker (virtual) | power-off (virtual) | shell marker (wall-clock) | power-off (wall-clock) \
         | QEMU's CPU time |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (host, times) in &rows {
        let label = match host {
            Host::Native => "native (QEMU, virtualization=off)",
            Host::Hypervisor => "under the hypervisor",
        };
        match times {
            Ok(times) => println!(
                "| {label} | {:.6} s | {:.6} s | {:.1} s | {:.1} s | {:.1} s |",
                times.marker_virtual,
                times.power_off_virtual,
                times.marker_wall.as_secs_f64(),
                times.power_off_wall.as_secs_f64(),
                times.cpu.as_secs_f64()
            ),
            Err(_) => println!("| {label} | failed (see above) | | | | |"),
        }
    }
    match &rows[..] {
        [(_, Ok(native)), (_, Ok(hypervisor))] => println!(
            "| hypervisor / native (goal: at most 1.3x) | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            hypervisor.marker_virtual / native.marker_virtual,
            hypervisor.power_off_virtual / native.power_off_virtual,
            hypervisor.marker_wall.as_secs_f64() / native.marker_wall.as_secs_f64(),
            hypervisor.power_off_wall.as_secs_f64() / native.power_off_wall.as_secs_f64(),
            hypervisor.cpu.as_secs_f64() / native.cpu.as_secs_f64()
        ),
        _ => bail!("a Linux boot failed"),
    }
    Ok(())
}

/// The number of vCPUs of `images/linux`'s VM.
fn vcpus() -> Result<usize> {
    let system = manifest::load(&PathBuf::from("images").join(SYSTEM).join("system.toml"))?;
    Ok(system.vms.first().map_or(0, |vm| vm.cpus.len()))
}

/// `cargo xtask test --linux [--native]`: boots Linux on `host`, checks it through its
/// shell, and powers it off. Every answer must carry a value computed from this run's
/// nonce, so that nothing Linux prints unprompted can pass a check.
pub fn test(host: Host) -> Result<()> {
    let started = Instant::now();
    let machine = machine(host, SYSTEM, &GuestOverride::default(), &[])?;
    let mut passed = Vec::new();
    let result = check_through_shell(host, machine, &mut passed);
    println!();
    for check in &passed {
        println!("xtask: linux ({}): ok: {check}", host.name());
    }
    eprintln!("xtask: finished in {:.0?}", started.elapsed());
    let failed = usize::from(result.is_err());
    println!("{} passed, {failed} failed", passed.len());
    result
}

/// The checks of [`test`], in order; each one passed is added to `passed`, and the first
/// failure ends them.
fn check_through_shell(host: Host, machine: Machine, passed: &mut Vec<String>) -> Result<()> {
    let nonce = qemu::new_nonce() % 1_000_000_000;
    let cpus = vcpus()?;
    let mut session = Session::start(machine.command)?;
    session.wait_for(0, "the shell marker", BOOT_TIMEOUT, |line| kernel_timestamp(line, SHELL_MARKER))?;

    let command = format!("echo \"cpus $(({nonce}+1)) $(cat /sys/devices/system/cpu/online) $(nproc)\"");
    let expected = format!("cpus {} {} {cpus}", nonce + 1, online_list(cpus));
    ask(&mut session, &command, &expected, "every CPU online")?;
    passed.push(format!("all {cpus} CPUs online"));

    let command = format!(
        "echo \"its $(({nonce}+2)) $(dmesg | grep -c 'ITS@0x0000000008080000: allocated [0-9]* Devices') $(dmesg \
         | grep -c -e 'ITS queue timeout' -e 'ITS cmd')\""
    );
    let expected = format!("its {} 1 0", nonce + 2);
    ask(&mut session, &command, &expected, "the ITS probed once, no ITS command failed")?;
    passed.push("the ITS probed (dmesg), no ITS command timed out".to_owned());

    let before = interrupts(&mut session, nonce, 3)?;
    for cpu in 0..cpus {
        let command = format!(
            "taskset -c {cpu} sh -c 'i=0; while [ $i -lt {PINNED_LOOPS} ]; do i=$((i+1)); done; echo \
             \"pinned-{cpu} $(({nonce}+{})) $i $(cut -d\" \" -f39 /proc/self/stat)\"'",
            10 + cpu
        );
        let expected = format!("pinned-{cpu} {} {PINNED_LOOPS} {cpu}", nonce + 10 + cpu as u64);
        ask(&mut session, &command, &expected, &format!("the loop pinned to CPU {cpu} finished there"))?;
    }
    passed.push(format!("taskset-pinned work finished on each of the {cpus} CPUs"));
    let after = interrupts(&mut session, nonce, 4)?;
    for (row, needle, must_grow) in [
        ("timer", "arch_timer", true),
        ("rescheduling IPI", "Rescheduling interrupts", false),
        ("function-call IPI", "Function call interrupts", false),
    ] {
        let counts = |table: &str| {
            interrupt_row(table, cpus, needle)
                .with_context(|| format!("/proc/interrupts has no {needle} row"))
        };
        let (first, last) = (counts(&before)?, counts(&after)?);
        for cpu in 0..cpus {
            ensure!(last[cpu] > 0, "no {row} counted on CPU {cpu}: /proc/interrupts row {needle}: {last:?}");
            ensure!(
                !must_grow || last[cpu] > first[cpu],
                "the {row} did not tick on CPU {cpu} during the pinned work: {first:?} then {last:?}"
            );
        }
        let growth = if must_grow { ", and ticking" } else { "" };
        passed.push(format!("{row} interrupts counted on every CPU{growth}: {last:?}"));
    }

    if host == Host::Hypervisor {
        reboot(&mut session, nonce, cpus)?;
        passed.push(
            "`reboot -f` restarted the VM: a new boot to the shell, every CPU online, the ITS probed"
                .to_owned(),
        );
    }

    session.type_line("poweroff -f")?;
    session.wait_for(0, "the power-off", COMMAND_TIMEOUT, |line| kernel_timestamp(line, POWER_DOWN))?;
    session.wait_exit(COMMAND_TIMEOUT)?;
    if let Some(nonce) = machine.kernel_nonce {
        check_result_line(&session.output, nonce)?;
        passed.push("the hypervisor's result line for this run says status 0".to_owned());
    }
    passed.push("powered off".to_owned());
    Ok(())
}

/// Reboots Linux (PSCI SYSTEM_RESET, which restarts the VM; natively QEMU's
/// `-no-reboot` would end the run instead) and checks that the new boot reaches the
/// shell with every CPU online and the ITS probed once in its own log.
fn reboot(session: &mut Session, nonce: u64, cpus: usize) -> Result<()> {
    let from = session.type_line("reboot -f")?;
    session.wait_for(from, "the restart", COMMAND_TIMEOUT, |line| {
        line.contains("reboot: Restarting system").then_some(())
    })?;
    let restarted = session.output.len();
    session.wait_for(restarted, "the shell marker after the reboot", BOOT_TIMEOUT, |line| {
        kernel_timestamp(line, SHELL_MARKER)
    })?;
    let command = format!(
        "echo \"rebooted $(({nonce}+5)) $(cat /sys/devices/system/cpu/online) $(dmesg | grep -c \
         'ITS@0x0000000008080000: allocated [0-9]* Devices')\""
    );
    let expected = format!("rebooted {} {} 1", nonce + 5, online_list(cpus));
    ask(session, &command, &expected, "the rebooted Linux has every CPU online and probed the ITS")
}

/// Types `command` and checks its answer: the first line whose first two words (a name
/// and a value computed from the nonce) are those of `expected` must equal `expected`.
fn ask(session: &mut Session, command: &str, expected: &str, what: &str) -> Result<()> {
    let key: Vec<&str> = expected.split_whitespace().take(2).collect();
    let from = session.type_line(command)?;
    let answer =
        session.wait_for(from, &format!("the answer {expected:?} ({what})"), COMMAND_TIMEOUT, |line| {
            let line = line.trim();
            (line.split_whitespace().take(2).collect::<Vec<_>>() == key).then(|| line.to_owned())
        })?;
    ensure!(answer == expected, "{what}: expected {expected:?}, Linux answered {answer:?}");
    Ok(())
}

/// `/sys/devices/system/cpu/online` of `cpus` CPUs all online: `0` or `0-<last>`.
fn online_list(cpus: usize) -> String {
    match cpus {
        1 => "0".to_owned(),
        _ => format!("0-{}", cpus - 1),
    }
}

/// Types `cat /proc/interrupts` between two lines carrying `nonce + offset` and returns
/// the table.
fn interrupts(session: &mut Session, nonce: u64, offset: u64) -> Result<String> {
    let tag = nonce + offset;
    let (begin, end) = (format!("interrupts-begin {tag}"), format!("interrupts-end {tag}"));
    let from = session.type_line(&format!(
        "echo \"interrupts-begin $(({nonce}+{offset}))\"; cat /proc/interrupts; echo \"interrupts-end \
         $(({nonce}+{offset}))\""
    ))?;
    session.wait_for(from, "/proc/interrupts", COMMAND_TIMEOUT, |line| (line.trim() == end).then_some(()))?;
    let text = &session.output[from..];
    let start = text.lines().position(|line| line.trim() == begin).context("no interrupts-begin line")?;
    let table: Vec<&str> = text.lines().skip(start + 1).take_while(|line| line.trim() != end).collect();
    Ok(table.join("\n"))
}

/// The per-CPU counts of the `/proc/interrupts` row whose description (the text after
/// the counts) contains `needle`.
fn interrupt_row(table: &str, cpus: usize, needle: &str) -> Option<Vec<u64>> {
    table.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words.next().filter(|label| label.ends_with(':'))?;
        let counts: Vec<u64> =
            words.by_ref().take(cpus).map(|word| word.parse().ok()).collect::<Option<_>>()?;
        let description = words.collect::<Vec<_>>().join(" ");
        (counts.len() == cpus && description.contains(needle)).then_some(counts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_timestamps_are_read_only_for_the_whole_message() {
        assert_eq!(kernel_timestamp("[    4.123456] xtask-linux: shell ready", SHELL_MARKER), Some(4.123456));
        assert_eq!(kernel_timestamp("[   12.000001] reboot: Power down\n", POWER_DOWN), Some(12.000001));
        assert_eq!(kernel_timestamp("~ # echo 'xtask-linux: shell ready' > /dev/kmsg", SHELL_MARKER), None);
        assert_eq!(kernel_timestamp("[    4.1] xtask-linux: shell ready, not", SHELL_MARKER), None);
        assert_eq!(kernel_timestamp("xtask-linux: shell ready", SHELL_MARKER), None);
    }

    #[test]
    fn interrupt_rows_are_found_by_description() {
        let table = "           CPU0       CPU1\n\
                     \x20 11:       2187       2203     GICv3  27 Level     arch_timer\n\
                     \x20 13:          5          0     GICv3  33 Level     uart-pl011\n\
                     IPI0:       159        174       Rescheduling interrupts\n\
                     IPI1:        30         34       Function call interrupts\n\
                     Err:          0\n";
        assert_eq!(interrupt_row(table, 2, "arch_timer"), Some(vec![2187, 2203]));
        assert_eq!(interrupt_row(table, 2, "Rescheduling interrupts"), Some(vec![159, 174]));
        assert_eq!(interrupt_row(table, 2, "Function call interrupts"), Some(vec![30, 34]));
        assert_eq!(interrupt_row(table, 2, "Timer broadcast"), None);
        assert_eq!(interrupt_row(table, 3, "arch_timer"), None);
    }

    #[test]
    fn cpu_time_is_utime_plus_stime_after_the_command_name() {
        let stat = "4242 (qemu-system (x)) S 1 2 3 4 5 6 7 8 9 10 250 125 0 0 20 0 3 0 100";
        assert_eq!(cpu_time(stat), Some(Duration::from_millis(3750)));
        assert_eq!(cpu_time("4242 (qemu) S 1 2"), None);
        assert_eq!(cpu_time("no command name"), None);
    }

    #[test]
    fn online_lists_name_every_cpu() {
        assert_eq!(online_list(1), "0");
        assert_eq!(online_list(2), "0-1");
        assert_eq!(online_list(4), "0-3");
    }
}
