//! Guest RAM mapped into the server's address space (the manifest's `vm-ram` map), as
//! [`GuestMemory`]: every access is range-checked first, and made with volatile byte
//! accesses because the guest (and the other server) write it concurrently.

use crate::{GuestMemory, OutsideRam};

/// A VM's RAM, guest-physical `ipa..ipa + size`, mapped at `base`.
pub struct MappedRam {
    base: *mut u8,
    ipa: u64,
    size: u64,
}

impl MappedRam {
    /// The guest RAM from guest-physical `ipa`, `size` bytes, mapped at `base`.
    ///
    /// # Safety
    ///
    /// `base..base + size` must stay mapped readable (and writable, for
    /// [`MappedRam::locate`]'s callers that store) while the value lives, and no Rust
    /// reference may point into it.
    pub const unsafe fn new(base: *mut u8, ipa: u64, size: u64) -> Self {
        Self { base, ipa, size }
    }

    /// Where guest-physical `ipa..ipa + len` is mapped, or [`OutsideRam`] if any byte of
    /// it is outside the VM's RAM.
    pub fn locate(&self, ipa: u64, len: usize) -> Result<*mut u8, OutsideRam> {
        let offset = ipa.checked_sub(self.ipa).ok_or(OutsideRam)?;
        let end = offset.checked_add(len as u64).ok_or(OutsideRam)?;
        if end > self.size {
            return Err(OutsideRam);
        }
        // `offset < end <= size`, and the mapping is `size` bytes long.
        Ok(self.base.wrapping_add(offset as usize))
    }
}

impl GuestMemory for MappedRam {
    fn contains(&self, ipa: u64, len: u64) -> bool {
        usize::try_from(len).is_ok_and(|len| self.locate(ipa, len).is_ok())
    }

    fn read(&self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam> {
        let source = self.locate(ipa, buffer.len())?;
        for (index, byte) in buffer.iter_mut().enumerate() {
            // SAFETY: `locate` checked that the whole range lies in the mapping, which
            // `new`'s caller keeps readable; a volatile read of a byte the guest may be
            // writing yields some value of that byte, never undefined behaviour.
            *byte = unsafe { source.add(index).read_volatile() };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_inside_the_ram_only() {
        let mut bytes: Vec<u8> = (0..=255).collect();
        // SAFETY: `bytes` outlives `ram` and is only accessed through it meanwhile.
        let ram = unsafe { MappedRam::new(bytes.as_mut_ptr(), 0x4000_0000, 256) };
        let mut buffer = [0; 4];
        assert_eq!(ram.read(0x4000_00fc, &mut buffer), Ok(()));
        assert_eq!(buffer, [252, 253, 254, 255]);
        assert_eq!(ram.read(0x4000_00fd, &mut buffer), Err(OutsideRam), "past the end");
        assert_eq!(ram.read(0x3fff_ffff, &mut buffer), Err(OutsideRam), "below the start");
        assert_eq!(ram.read(u64::MAX - 1, &mut buffer), Err(OutsideRam), "wrapping");
        assert_eq!(ram.locate(0x4000_0100, 0), Ok(bytes.as_mut_ptr().wrapping_add(256)), "empty at the end");
        assert!(ram.contains(0x4000_0000, 256));
        assert!(!ram.contains(0x4000_0001, 256), "one byte past the end");
        assert!(!ram.contains(0x4000_0000, u64::MAX), "wrapping");
    }
}
