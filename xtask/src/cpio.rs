//! A writer of cpio archives in the "newc" format (`070701`), the format Linux unpacks
//! an initramfs from (the kernel's `Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! Each entry is a 110-byte ASCII header (the magic, then thirteen 8-digit hexadecimal
//! fields), the NUL-terminated path padded with NULs so that the data starts at a
//! multiple of 4, and the data padded the same way; the entry named `TRAILER!!!` ends the
//! archive. Every entry belongs to root, has mtime 0 and its own inode number, so the
//! archive depends only on what is put in it.
//!
//! ```
//! let mut archive = xtask::cpio::Archive::default();
//! archive.directory("dev", 0o755);
//! archive.char_device("dev/console", 0o600, 5, 1);
//! archive.file("init", 0o755, b"#!/bin/sh\n");
//! archive.symlink("bin/sh", "busybox");
//! let bytes = archive.finish();
//! assert!(bytes.starts_with(b"070701"));
//! ```

/// The newc magic: the header's first six bytes.
pub const MAGIC: &[u8; 6] = b"070701";
/// The size of a header.
pub const HEADER_SIZE: usize = 110;
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// File-type bits of an entry's mode (as in `st_mode`).
pub mod file_type {
    /// A directory.
    pub const DIRECTORY: u32 = 0o040000;
    /// A regular file.
    pub const REGULAR: u32 = 0o100000;
    /// A symbolic link; its data is the target.
    pub const SYMLINK: u32 = 0o120000;
    /// A character device.
    pub const CHAR_DEVICE: u32 = 0o020000;
}

/// An archive being written. Paths are relative to the archive's root (`bin/busybox`,
/// not `/bin/busybox`), and a directory must be added before the entries inside it.
#[derive(Default)]
pub struct Archive {
    bytes: Vec<u8>,
    entries: u32,
}

/// One entry's header fields that differ between entry kinds.
struct Entry<'a> {
    path: &'a str,
    mode: u32,
    links: u32,
    device: (u32, u32),
    data: &'a [u8],
}

impl Archive {
    /// Adds directory `path` with permission bits `permissions`.
    pub fn directory(&mut self, path: &str, permissions: u32) {
        let mode = file_type::DIRECTORY | permissions;
        self.entry(Entry { path, mode, links: 2, device: (0, 0), data: &[] });
    }

    /// Adds regular file `path` holding `data`.
    pub fn file(&mut self, path: &str, permissions: u32, data: &[u8]) {
        let mode = file_type::REGULAR | permissions;
        self.entry(Entry { path, mode, links: 1, device: (0, 0), data });
    }

    /// Adds symbolic link `path` pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) {
        let mode = file_type::SYMLINK | 0o777;
        self.entry(Entry { path, mode, links: 1, device: (0, 0), data: target.as_bytes() });
    }

    /// Adds character device node `path` for device `major`:`minor`.
    pub fn char_device(&mut self, path: &str, permissions: u32, major: u32, minor: u32) {
        let mode = file_type::CHAR_DEVICE | permissions;
        self.entry(Entry { path, mode, links: 1, device: (major, minor), data: &[] });
    }

    /// Ends the archive with its trailer and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.write(&Entry { path: TRAILER, mode: 0, links: 1, device: (0, 0), data: &[] }, 0);
        self.bytes
    }

    fn entry(&mut self, entry: Entry) {
        assert!(
            !entry.path.is_empty() && !entry.path.starts_with('/') && !entry.path.contains('\0'),
            "cpio paths are relative and not empty: {:?}",
            entry.path
        );
        self.entries += 1;
        // Inode 0 is the trailer's; every other entry has its own, so that no two entries
        // look like hard links of one file.
        self.write(&entry, self.entries);
    }

    fn write(&mut self, entry: &Entry, inode: u32) {
        let name_size = entry.path.len() + 1;
        let fields = [
            inode,
            entry.mode,
            0, // uid
            0, // gid
            entry.links,
            0, // mtime
            u32::try_from(entry.data.len()).expect("a cpio entry holds less than 4 GiB"),
            0, // major of the device holding the file
            0, // minor of the device holding the file
            entry.device.0,
            entry.device.1,
            u32::try_from(name_size).expect("a cpio path is shorter than 4 GiB"),
            0, // checksum: unused in the 070701 format
        ];
        self.bytes.extend_from_slice(MAGIC);
        for field in fields {
            self.bytes.extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.bytes.extend_from_slice(entry.path.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(entry.data);
        self.pad();
    }

    /// NULs up to the next multiple of 4 (headers are 110 bytes, so names need padding).
    fn pad(&mut self) {
        self.bytes.resize(self.bytes.len().next_multiple_of(4), 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry read back: (path, mode, rdev major, rdev minor, data).
    type ReadEntry = (String, u32, u32, u32, Vec<u8>);

    /// Reads `bytes` back as the kernel does, checking magic, alignment and trailer.
    fn read(bytes: &[u8]) -> Vec<ReadEntry> {
        let mut entries = Vec::new();
        let mut at = 0;
        loop {
            assert_eq!(at % 4, 0, "entries start 4-byte aligned");
            let header = &bytes[at..at + HEADER_SIZE];
            assert_eq!(&header[..6], MAGIC);
            let field = |index: usize| {
                let text = std::str::from_utf8(&header[6 + index * 8..14 + index * 8]).unwrap();
                u32::from_str_radix(text, 16).unwrap()
            };
            let (mode, file_size, name_size) = (field(1), field(6) as usize, field(11) as usize);
            let name_start = at + HEADER_SIZE;
            let name = &bytes[name_start..name_start + name_size];
            assert_eq!(name.last(), Some(&0), "names are NUL-terminated");
            let name = std::str::from_utf8(&name[..name_size - 1]).unwrap().to_owned();
            let data_start = (name_start + name_size).next_multiple_of(4);
            assert!(bytes[name_start + name_size..data_start].iter().all(|&byte| byte == 0));
            let data = bytes[data_start..data_start + file_size].to_vec();
            at = (data_start + file_size).next_multiple_of(4);
            if name == TRAILER {
                assert_eq!(at, bytes.len(), "nothing follows the trailer but its padding");
                return entries;
            }
            entries.push((name, mode, field(9), field(10), data));
        }
    }

    #[test]
    fn a_header_is_the_magic_and_thirteen_hex_fields() {
        let mut archive = Archive::default();
        archive.file("init", 0o755, b"hi\n");
        let bytes = archive.finish();
        let expected_header = concat!(
            "070701", "00000001", "000081ed", "00000000", "00000000", "00000001", "00000000", "00000003",
            "00000000", "00000000", "00000000", "00000000", "00000005", "00000000"
        );
        assert_eq!(&bytes[..HEADER_SIZE], expected_header.as_bytes());
        // 110 + 5 name bytes = 115, padded to 116; then 3 data bytes padded to 4.
        assert_eq!(&bytes[HEADER_SIZE..HEADER_SIZE + 6], b"init\0\0");
        assert_eq!(&bytes[116..120], b"hi\n\0");
    }

    #[test]
    fn every_kind_of_entry_reads_back() {
        let mut archive = Archive::default();
        archive.directory("dev", 0o755);
        archive.char_device("dev/console", 0o600, 5, 1);
        archive.file("bin-file", 0o644, b"12345");
        archive.symlink("sh", "busybox");
        let entries = read(&archive.finish());
        assert_eq!(
            entries,
            [
                ("dev".to_owned(), 0o040755, 0, 0, vec![]),
                ("dev/console".to_owned(), 0o020600, 5, 1, vec![]),
                ("bin-file".to_owned(), 0o100644, 0, 0, b"12345".to_vec()),
                ("sh".to_owned(), 0o120777, 0, 0, b"busybox".to_vec()),
            ]
        );
    }

    #[test]
    fn names_and_data_of_every_length_keep_entries_aligned() {
        let mut archive = Archive::default();
        for length in 1..=8 {
            archive.file(&"n".repeat(length), 0o644, &vec![b'x'; length]);
        }
        let entries = read(&archive.finish());
        assert_eq!(entries.len(), 8);
        assert!(entries.iter().all(|(name, _, _, _, data)| name.len() == data.len()));
    }

    #[test]
    fn an_empty_archive_is_only_the_trailer() {
        let bytes = Archive::default().finish();
        assert_eq!(bytes.len(), (HEADER_SIZE + TRAILER.len() + 1).next_multiple_of(4));
        assert!(read(&bytes).is_empty());
    }

    #[test]
    #[should_panic(expected = "relative")]
    fn absolute_paths_are_refused() {
        Archive::default().file("/init", 0o755, b"");
    }
}
