//! Guest files made from Debian's arm64 packages (`debian:<name>` in a manifest): the
//! kernel `Image` of bookworm's `linux-image-*-arm64` and an initramfs around
//! `busybox-static`. They are fetched with `apt-get download` (after
//! `dpkg --add-architecture arm64` and `apt-get update`), unpacked with `dpkg-deb`
//! without installing anything, and cached under `target/linux/`: a second run uses the
//! cache and needs no network. Nothing here is committed.

use crate::toolchain::is_root;
use anyhow::{Context, Result, bail, ensure};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use xtask::initramfs;
use xtask::manifest::DebianFile;

/// Where the fetched and generated files are kept.
const CACHE_DIR: &str = "target/linux";
/// The kernel meta-package: it depends on the current ABI's signed image package.
const KERNEL_META_PACKAGE: &str = "linux-image-arm64";
/// The package of the static busybox.
const BUSYBOX_PACKAGE: &str = "busybox-static";
/// The first bytes of a gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The file `file` names, fetching and building what the cache lacks.
pub fn provide(file: DebianFile) -> Result<PathBuf> {
    match file {
        DebianFile::LinuxImage => kernel_image(),
        DebianFile::BusyboxInitramfs => busybox_initramfs(),
    }
}

/// `target/linux/Image`: the kernel, uncompressed.
fn kernel_image() -> Result<PathBuf> {
    let image = Path::new(CACHE_DIR).join("Image");
    if image.is_file() {
        return Ok(image);
    }
    prepare_package_lists()?;
    let package = kernel_package()?;
    let unpacked = unpack(&package, &["./boot"])?;
    let boot = unpacked.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| {
            path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{package} has no /boot/vmlinuz-*"))?;
    let bytes = decompress_if_gzip(std::fs::read(&vmlinuz)?)?;
    write_new(&image, &bytes)?;
    std::fs::remove_dir_all(&unpacked)?;
    eprintln!(
        "xtask: {}: /boot/{} of {package}",
        image.display(),
        vmlinuz.file_name().unwrap_or_default().display()
    );
    Ok(image)
}

/// `target/linux/initramfs.cpio`, rebuilt when [`initramfs`] changes what it holds.
fn busybox_initramfs() -> Result<PathBuf> {
    let busybox = Path::new(CACHE_DIR).join("busybox");
    if !busybox.is_file() {
        prepare_package_lists()?;
        let unpacked = unpack(BUSYBOX_PACKAGE, &["./bin/busybox"])?;
        std::fs::rename(unpacked.join("bin").join("busybox"), &busybox)?;
        std::fs::remove_dir_all(&unpacked)?;
    }
    let archive = initramfs::busybox_initramfs(&std::fs::read(&busybox)?);
    let path = Path::new(CACHE_DIR).join("initramfs.cpio");
    if std::fs::read(&path).ok().as_deref() != Some(archive.as_slice()) {
        write_new(&path, &archive)?;
    }
    Ok(path)
}

/// Writes `bytes` to `path` through a temporary file, so that an interrupted run never
/// leaves a truncated file in the cache.
fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let temporary = path.with_extension("partial");
    std::fs::write(&temporary, bytes).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("writing {}", path.display()))
}

/// Makes apt-get's package lists include Debian's arm64 packages: as root, adds the
/// architecture and updates the lists (so that the versions asked for still exist on the
/// registry); otherwise checks they are there and says what to run when they are not.
fn prepare_package_lists() -> Result<()> {
    // Once per run: the kernel and busybox may both be missing.
    static PREPARED: AtomicBool = AtomicBool::new(false);
    if PREPARED.swap(true, Ordering::Relaxed) {
        return Ok(());
    }
    let has_arm64 = output(Command::new("dpkg").arg("--print-foreign-architectures"))
        .is_ok_and(|text| text.split_whitespace().any(|architecture| architecture == "arm64"));
    let instructions = "fetching Debian's arm64 kernel and busybox needs apt-get's arm64 package lists; as \
                        root, run:\n    dpkg --add-architecture arm64\n    apt-get update\nthen run this again \
                        (downloading itself works without root), or run it as root";
    if !is_root() {
        ensure!(has_arm64, "{instructions}");
        ensure!(
            output(Command::new("apt-cache").args(["show", &format!("{KERNEL_META_PACKAGE}:arm64")])).is_ok(),
            "apt-get does not know package {KERNEL_META_PACKAGE}:arm64: {instructions}"
        );
        return Ok(());
    }
    if !has_arm64 {
        eprintln!("xtask: dpkg --add-architecture arm64");
        run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
    }
    eprintln!("xtask: apt-get update (for Debian's arm64 package lists)");
    run(Command::new("apt-get").arg("update")).context(
        "apt-get update failed: fetching the Linux guest needs Debian's package registry (see the messages above)",
    )
}

/// The kernel package to fetch: the unsigned build of the ABI that the meta-package
/// depends on, or that signed package when no unsigned one exists.
fn kernel_package() -> Result<String> {
    let depends =
        output(Command::new("apt-cache").args(["depends", &format!("{KERNEL_META_PACKAGE}:arm64")]))?;
    let signed = image_dependency(&depends)
        .with_context(|| format!("no linux-image dependency in `apt-cache depends {KERNEL_META_PACKAGE}`"))?;
    let unsigned = format!("{signed}-unsigned");
    let exists = output(Command::new("apt-cache").args(["show", &format!("{unsigned}:arm64")])).is_ok();
    Ok(if exists { unsigned } else { signed })
}

/// The `linux-image-*` package among the `Depends:` lines of `apt-cache depends` output,
/// without its architecture qualifier.
fn image_dependency(depends: &str) -> Option<String> {
    depends.lines().find_map(|line| {
        let package = line.trim().strip_prefix("Depends:")?.trim();
        let package = package.split(':').next()?;
        package.starts_with("linux-image-").then(|| package.to_owned())
    })
}

/// Downloads `package` (arm64) and unpacks `members` of it into a fresh directory under
/// the cache; returns that directory. The package file is deleted once unpacked.
fn unpack(package: &str, members: &[&str]) -> Result<PathBuf> {
    let downloads = Path::new(CACHE_DIR).join("downloads");
    if downloads.exists() {
        std::fs::remove_dir_all(&downloads)?;
    }
    std::fs::create_dir_all(&downloads)?;
    eprintln!("xtask: apt-get download {package}:arm64");
    let mut download = Command::new("apt-get");
    download.arg("download").current_dir(&downloads);
    if is_root() {
        // apt's sandbox user cannot write into this directory; root downloads itself.
        download.args(["-o", "APT::Sandbox::User=root"]);
    }
    run(download.arg(format!("{package}:arm64"))).with_context(|| {
        format!(
            "apt-get download {package}:arm64 failed: Debian's package registry must be reachable (or fill \
             {CACHE_DIR}/ from a machine where it is)"
        )
    })?;
    let deb = std::fs::read_dir(&downloads)?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .find(|path| path.extension().is_some_and(|extension| extension == "deb"))
        .with_context(|| format!("apt-get download left no .deb in {}", downloads.display()))?;
    let unpacked = Path::new(CACHE_DIR).join(format!("{package}.unpacked"));
    if unpacked.exists() {
        std::fs::remove_dir_all(&unpacked)?;
    }
    std::fs::create_dir_all(&unpacked)?;
    eprintln!("xtask: unpacking {} without installing it", deb.display());
    // `dpkg-deb --fsys-tarfile` into tar, so that only `members` are written (the
    // kernel package's modules are some 300 MB that no guest here uses).
    let mut contents = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&unpacked)
        .args(members)
        .stdin(contents.stdout.take().context("dpkg-deb output")?)
        .status()
        .context("running tar")?;
    ensure!(contents.wait()?.success(), "dpkg-deb --fsys-tarfile {} failed", deb.display());
    ensure!(tar.success(), "unpacking {} from {} failed", members.join(" "), deb.display());
    std::fs::remove_dir_all(&downloads)?;
    Ok(unpacked)
}

/// `bytes`, gunzipped if they are a gzip stream (some distributions compress their
/// arm64 kernels; bookworm's is an uncompressed `Image`).
fn decompress_if_gzip(bytes: Vec<u8>) -> Result<Vec<u8>> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes);
    }
    let mut gzip = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running gzip")?;
    let mut input = gzip.stdin.take().context("gzip input")?;
    // Fed from another thread: gzip's output pipe would fill while this one writes.
    let writer = std::thread::spawn(move || input.write_all(&bytes));
    let result = gzip.wait_with_output().context("running gzip")?;
    writer.join().map_err(|_| anyhow::anyhow!("the thread feeding gzip panicked"))??;
    ensure!(result.status.success(), "gzip -d failed: {}", String::from_utf8_lossy(&result.stderr));
    Ok(result.stdout)
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

fn output(command: &mut Command) -> Result<String> {
    let output = command.stderr(Stdio::null()).output().with_context(|| format!("running {command:?}"))?;
    ensure!(output.status.success(), "{command:?} failed ({})", output.status);
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_dependency_is_read_from_apt_cache_depends() {
        let depends = "linux-image-arm64:arm64\n  Depends: linux-image-6.1.0-56-arm64:arm64\n";
        assert_eq!(image_dependency(depends).as_deref(), Some("linux-image-6.1.0-56-arm64"));
        assert_eq!(image_dependency("linux-image-arm64\n  Depends: kmod\n"), None);
    }

    #[test]
    fn gzip_streams_are_decompressed_and_other_bytes_kept() -> Result<()> {
        let original = b"ARM\x64 kernel bytes".repeat(1000);
        let mut gzip = Command::new("gzip").arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
        gzip.stdin.take().context("stdin")?.write_all(&original)?;
        let compressed = gzip.wait_with_output()?.stdout;
        assert!(compressed.starts_with(&GZIP_MAGIC) && compressed.len() < original.len());
        assert_eq!(decompress_if_gzip(compressed)?, original);
        assert_eq!(decompress_if_gzip(original.clone())?, original);
        Ok(())
    }
}
