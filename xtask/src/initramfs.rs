//! The initramfs that Linux guests boot with: Debian's static busybox, the applet links
//! the tests use, `/dev/console`, and an `/init` that mounts the kernel's file systems,
//! announces the shell and runs it on the console.
//!
//! The announcement goes through `/dev/kmsg`, so the kernel prints it with its timestamp:
//! `[    4.123456] xtask-linux: shell ready`. Under `-icount` that timestamp is virtual
//! time, which `cargo xtask bench linux` reports.

use crate::cpio::Archive;

/// What `/init` writes to the kernel log once the shell is about to start.
pub const SHELL_MARKER: &str = "xtask-linux: shell ready";

/// Busybox applets linked in `/bin`: the shell, what `/init` runs, and what the Linux
/// test and benchmark type.
pub const APPLETS: &[&str] = &[
    "awk", "cat", "cttyhack", "cut", "dmesg", "echo", "grep", "head", "ls", "mount", "nproc", "poweroff",
    "ps", "reboot", "seq", "setsid", "sh", "sleep", "taskset", "uname",
];

/// The `/init` script.
pub const INIT: &str = "#!/bin/sh
# Written by xtask (xtask/src/initramfs.rs).
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo 'xtask-linux: shell ready' > /dev/kmsg
# A session with the console as its controlling terminal, so that Ctrl-C works.
exec setsid cttyhack sh
";

/// The character device of the system console (Linux's `/dev/console` is 5:1).
const CONSOLE_DEVICE: (u32, u32) = (5, 1);

/// The initramfs (a newc cpio archive) around `busybox`, a statically linked arm64
/// busybox binary.
pub fn busybox_initramfs(busybox: &[u8]) -> Vec<u8> {
    let mut archive = Archive::default();
    for directory in ["bin", "dev", "proc", "sys"] {
        archive.directory(directory, 0o755);
    }
    // The kernel opens /dev/console for init before anything mounts devtmpfs.
    archive.char_device("dev/console", 0o600, CONSOLE_DEVICE.0, CONSOLE_DEVICE.1);
    archive.file("bin/busybox", 0o755, busybox);
    for applet in APPLETS {
        archive.symlink(&format!("bin/{applet}"), "busybox");
    }
    archive.file("init", 0o755, INIT.as_bytes());
    archive.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_announces_the_marker_it_is_known_by() {
        assert!(INIT.contains(&format!("echo '{SHELL_MARKER}' > /dev/kmsg")));
        assert!(INIT.starts_with("#!/bin/sh\n"));
    }

    #[test]
    fn init_uses_only_linked_applets() {
        for line in INIT.lines().filter(|line| !line.starts_with('#')) {
            let command = line.split_whitespace().find(|word| *word != "exec").unwrap();
            assert!(APPLETS.contains(&command), "{command} is not linked");
        }
    }

    #[test]
    fn the_archive_holds_busybox_its_links_the_console_and_init() {
        let archive = busybox_initramfs(b"\x7fELF busybox");
        let contains = |needle: &[u8]| archive.windows(needle.len()).any(|window| window == needle);
        assert!(contains(b"bin/busybox\0"));
        assert!(contains(b"\x7fELF busybox"));
        assert!(contains(b"bin/taskset\0"));
        assert!(contains(INIT.as_bytes()));
        // dev/console: mode 020600, rdev 5:1, right after its header's fixed fields.
        let console = archive.windows(12).position(|window| window == b"dev/console\0").unwrap();
        let header = &archive[console - crate::cpio::HEADER_SIZE..console];
        let field = |index: usize| std::str::from_utf8(&header[6 + index * 8..14 + index * 8]).unwrap();
        assert_eq!([field(1), field(9), field(10)], ["00002180", "00000005", "00000001"]);
    }
}
