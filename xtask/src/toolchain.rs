//! Makes sure the tools a build needs are present: the pinned toolchain's cross target and
//! components, and a QEMU new enough for this project.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// Cross-compilation target of the kernel and the components.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";

/// The oldest QEMU this project runs on: Debian bookworm's 7.2+dfsg-7+deb12u18 is upstream
/// 7.2.22; 7.2.0 lacks the 7.2.9 fix for virtual LPIs stuck active+pending in list
/// registers.
const MIN_QEMU: (u32, u32, u32) = (7, 2, 22);

/// QEMU binary name.
pub const QEMU: &str = "qemu-system-aarch64";

/// rustup does not add a toolchain file's targets and components when that toolchain is
/// already installed, so add them (a no-op taking milliseconds when present).
pub fn ensure_rust_target() -> Result<()> {
    run_quiet(Command::new("rustup").args(["target", "add", TARGET]))
        .context("adding the Rust target with rustup")?;
    run_quiet(Command::new("rustup").args(["component", "add", "rust-src", "clippy", "rustfmt"]))
        .context("adding Rust components with rustup")
}

fn run_quiet(command: &mut Command) -> Result<()> {
    let output = command.output().with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// Finds QEMU, installing Debian's qemu-system-arm when missing and running as root, and
/// refuses versions older than [`MIN_QEMU`].
pub fn ensure_qemu() -> Result<()> {
    if qemu_version_output().is_err() {
        if !is_root() {
            bail!(
                "{QEMU} was not found. Install QEMU {}.{}.{} or newer, e.g. on Debian or Ubuntu:\n    \
                 sudo apt-get install qemu-system-arm",
                MIN_QEMU.0,
                MIN_QEMU.1,
                MIN_QEMU.2
            );
        }
        eprintln!("xtask: {QEMU} not found; installing qemu-system-arm with apt-get");
        let status = Command::new("apt-get").arg("update").status().context("running apt-get update")?;
        if !status.success() {
            bail!("apt-get update failed; install qemu-system-arm by hand");
        }
        let status = Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "qemu-system-arm"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get install qemu-system-arm")?;
        if !status.success() {
            bail!("apt-get install qemu-system-arm failed");
        }
    }
    let text = qemu_version_output()?;
    let version = parse_qemu_version(&text)
        .with_context(|| format!("cannot read a version from `{QEMU} --version`: {text}"))?;
    if version < MIN_QEMU {
        bail!(
            "{QEMU} {}.{}.{} is too old: this project needs {}.{}.{} or newer (Debian bookworm's \
             qemu-system-arm 1:7.2+dfsg-7+deb12u18 or later)",
            version.0,
            version.1,
            version.2,
            MIN_QEMU.0,
            MIN_QEMU.1,
            MIN_QEMU.2
        );
    }
    Ok(())
}

fn qemu_version_output() -> Result<String> {
    let output = Command::new(QEMU).arg("--version").output().with_context(|| format!("running {QEMU}"))?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether xtask runs as root (apt-get and dpkg need it to install or add architectures).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// Reads `QEMU emulator version 7.2.22 (Debian ...)` as `(7, 2, 22)`.
fn parse_qemu_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let number = rest.split_whitespace().next()?;
    let mut parts = number.split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_and_upstream_version_lines() {
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"),
            Some((7, 2, 22))
        );
        assert_eq!(parse_qemu_version("QEMU emulator version 9.1\n"), Some((9, 1, 0)));
        assert_eq!(parse_qemu_version("nonsense"), None);
    }

    #[test]
    fn orders_versions_so_old_ones_are_refused() {
        assert!((7, 2, 0) < MIN_QEMU);
        assert!((7, 2, 22) >= MIN_QEMU);
        assert!((8, 0, 0) > MIN_QEMU);
    }
}
