//! Rate limiting of the lines a guest (or any other client) can cause a component to log
//! by misbehaving: wild MMIO, garbage ITS commands, tables outside RAM. Such a line is
//! logged with target [`ipc::GUEST_EVENT`]; the logger prints the 1st, 2nd, 4th, 8th, ...
//! occurrence from each call site with its count, as the kernel and the VMM do with their
//! own guest diagnostics. Without it a guest could keep its servers printing, and every
//! CPU waits on the one console while a line is printed.

use core::sync::atomic::{AtomicU64, Ordering};

/// Call sites counted separately; further ones share the last counter.
pub const SITES: usize = 64;

/// Occurrence counts per call site (a component's thread is its only user, but a
/// `static` must be `Sync`, hence the atomics).
pub struct SiteCounts {
    keys: [AtomicU64; SITES],
    counts: [AtomicU64; SITES],
}

impl SiteCounts {
    /// No site seen yet.
    pub const fn new() -> Self {
        Self { keys: [const { AtomicU64::new(0) }; SITES], counts: [const { AtomicU64::new(0) }; SITES] }
    }

    /// Counts one occurrence at the site `file`:`line`; returns its count if this one is
    /// to be printed (a power of two).
    pub fn admit(&self, file: &str, line: u32) -> Option<u64> {
        let key = site_key(file, line);
        let slot = (0..SITES)
            .find(|&slot| {
                let stored = self.keys[slot].load(Ordering::Relaxed);
                if stored == 0 {
                    self.keys[slot].store(key, Ordering::Relaxed);
                }
                stored == 0 || stored == key
            })
            .unwrap_or(SITES - 1);
        let count = self.counts[slot].fetch_add(1, Ordering::Relaxed) + 1;
        count.is_power_of_two().then_some(count)
    }
}

impl Default for SiteCounts {
    fn default() -> Self {
        Self::new()
    }
}

/// A non-zero key for a call site (FNV-1a of the file name, then the line).
fn site_key(file: &str, line: u32) -> u64 {
    let hash = file
        .bytes()
        .chain(line.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
    hash.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_site_prints_its_powers_of_two() {
        let counts = SiteCounts::new();
        let printed: Vec<u64> = (0..20).filter_map(|_| counts.admit("a.rs", 7)).collect();
        assert_eq!(printed, [1, 2, 4, 8, 16]);
        assert_eq!(counts.admit("a.rs", 8), Some(1), "another line is another site");
        assert_eq!(counts.admit("b.rs", 7), Some(1), "another file is another site");
        assert_eq!(counts.admit("a.rs", 7), None, "the 21st");
    }

    #[test]
    fn sites_beyond_the_table_share_the_last_counter() {
        let counts = SiteCounts::new();
        for line in 0..SITES as u32 - 1 {
            assert_eq!(counts.admit("a.rs", line), Some(1));
        }
        assert_eq!(counts.admit("b.rs", 1), Some(1));
        assert_eq!(counts.admit("b.rs", 2), Some(2), "shares the last slot");
        assert_eq!(counts.admit("b.rs", 3), None);
    }
}
