//! The kernel's side of the boundary in its own words: `ipc::vcpu`'s raw list-register
//! words to and from [`Snapshot`] and [`LrUpdate`], and guest RAM mapped into the server
//! ([`its_server::MappedRam`]) as [`GuestMemory`].

use ipc::vcpu::{GicSnapshot, LINE_PHYSICAL_TIMER, LINE_VIRTUAL_TIMER, LrWrite};
use its_server::{MappedRam, OutsideRam};

use crate::{GuestMemory, ListRegister, LrUpdate, Snapshot};

/// The INTIDs of the kernel's hardware-line bits: the virtual timer (PPI 27) and the EL1
/// physical timer (PPI 30).
const TIMER_LINES: [(u64, u32); 2] = [(LINE_VIRTUAL_TIMER, 27), (LINE_PHYSICAL_TIMER, 30)];

impl From<&GicSnapshot> for Snapshot {
    /// A `VCPU_SYNC` reply or a vGIC event's words, with the timer lines moved to their
    /// INTIDs' bits.
    fn from(snapshot: &GicSnapshot) -> Self {
        let hardware_lines = TIMER_LINES
            .iter()
            .filter(|(line, _)| snapshot.hardware_lines & line != 0)
            .fold(0, |lines, (_, intid)| lines | 1 << intid);
        Self {
            lrs: snapshot.lrs.map(ListRegister::decode),
            vmcr: snapshot.vmcr as u32,
            ap0r0: snapshot.ap0r0 as u32,
            ap1r0: snapshot.ap1r0 as u32,
            hardware_lines,
        }
    }
}

impl From<&LrUpdate> for LrWrite {
    /// The words of `VCPU_WRITE_LRS`, and of the reply to a vGIC event.
    fn from(update: &LrUpdate) -> Self {
        Self { lrs: update.lrs.map(|lr| lr.encode()), hcr: update.hcr_bits() }
    }
}

impl GuestMemory for MappedRam {
    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), OutsideRam> {
        let target = self.locate(ipa, data.len())?;
        for (index, &byte) in data.iter().enumerate() {
            // SAFETY: `locate` checked that the whole range lies in the mapping, which
            // `MappedRam::new`'s caller keeps writable; a volatile store races only with
            // the guest's own accesses to its RAM, which see one value or the other.
            unsafe { target.add(index).write_volatile(byte) };
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LrState;
    use ipc::vcpu::{HCR_NPIE, HCR_UIE};

    #[test]
    fn snapshots_take_the_timer_lines_to_their_intids() {
        let pending = ListRegister {
            vintid: 8195,
            state: LrState::Pending,
            priority: 0xa0,
            group1: true,
            ..ListRegister::INVALID
        };
        let raw = GicSnapshot {
            lrs: [pending.encode(), 0, 0, 0],
            vmcr: 0xff00_0002,
            ap0r0: 0,
            ap1r0: 1 << 20,
            hardware_lines: LINE_VIRTUAL_TIMER | LINE_PHYSICAL_TIMER,
        };
        let snapshot = Snapshot::from(&raw);
        assert_eq!(snapshot.lrs[0], pending);
        assert_eq!((snapshot.vmcr, snapshot.ap1r0), (0xff00_0002, 1 << 20));
        assert_eq!(snapshot.hardware_lines, 1 << 27 | 1 << 30);
        let virtual_only = GicSnapshot { hardware_lines: LINE_VIRTUAL_TIMER, ..raw };
        assert_eq!(Snapshot::from(&virtual_only).hardware_lines, 1 << 27);
    }

    #[test]
    fn updates_become_the_kernels_words() {
        let lr = ListRegister {
            vintid: 27,
            state: LrState::Pending,
            group1: true,
            hw_pintid: Some(27),
            ..ListRegister::INVALID
        };
        let update = LrUpdate {
            lrs: [ListRegister::INVALID, lr, ListRegister::INVALID, ListRegister::INVALID],
            underflow: true,
            no_pending: true,
        };
        let write = LrWrite::from(&update);
        assert_eq!(write.lrs, [0, lr.encode(), 0, 0]);
        assert_eq!(write.hcr, HCR_UIE | HCR_NPIE);
        assert_eq!(LrWrite::from_words(&write.words()), Some(write), "the kernel accepts it");
    }

    #[test]
    fn mapped_ram_writes_inside_the_ram_only() {
        let mut bytes = vec![0u8; 64];
        // SAFETY: `bytes` outlives `ram` and is only accessed through it meanwhile.
        let ram = unsafe { MappedRam::new(bytes.as_mut_ptr(), 0x4000_0000, 64) };
        assert_eq!(ram.write(0x4000_003e, &[1, 2]), Ok(()));
        assert_eq!(ram.write(0x4000_003f, &[1, 2]), Err(OutsideRam));
        let mut back = [0; 2];
        its_server::GuestMemory::read(&ram, 0x4000_003e, &mut back).unwrap();
        assert_eq!(back, [1, 2]);
    }
}
