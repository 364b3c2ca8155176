//! The server's own translation state: devices, their events, collections and which LPIs
//! are in use, in fixed-capacity arrays. Nothing here is read from or written to guest
//! memory, so a guest rewriting its tables cannot change it.
//!
//! Lookups take raw IDs and answer `None` for an ID beyond the capacity, so a bad ID can
//! never index out of bounds; the quota checks (which decide the error a guest sees)
//! live in the command handlers.

use crate::config::MAX_LPI_ID_BITS;

/// What an event translates to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Event {
    /// The LPI INTID; never 0 for a mapped event, since LPIs start at 8192.
    pub(crate) vintid: u32,
    /// The collection the LPI belongs to (possibly not mapped yet).
    pub(crate) icid: u16,
}

impl Event {
    const UNMAPPED: Self = Self { vintid: 0, icid: 0 };

    const fn is_mapped(&self) -> bool {
        self.vintid != 0
    }
}

/// One DeviceID's ITT.
#[derive(Clone)]
struct Device<const EVENTS: usize> {
    /// `Some(n)`: mapped with an ITT of `2^n` events.
    event_id_bits: Option<u8>,
    /// Indexed by EventID. All unmapped while the device is.
    events: [Event; EVENTS],
}

impl<const EVENTS: usize> Device<EVENTS> {
    const UNMAPPED: Self = Self { event_id_bits: None, events: [Event::UNMAPPED; EVENTS] };
}

/// Words of the "LPI in use" bitmap, indexed by INTID.
const LPI_WORDS: usize = 1 << (MAX_LPI_ID_BITS - 6);

/// Translation state for up to `DEVICES` devices of `EVENTS` events and `COLLECTIONS`
/// collections.
#[derive(Clone)]
pub(crate) struct Translation<const DEVICES: usize, const EVENTS: usize, const COLLECTIONS: usize> {
    devices: [Device<EVENTS>; DEVICES],
    /// Indexed by ICID: the target vCPU of a mapped collection.
    collections: [Option<u16>; COLLECTIONS],
    /// Bit `n` set: INTID `n` is mapped from some event.
    lpis_in_use: [u64; LPI_WORDS],
}

impl<const DEVICES: usize, const EVENTS: usize, const COLLECTIONS: usize>
    Translation<DEVICES, EVENTS, COLLECTIONS>
{
    /// Nothing mapped.
    pub(crate) const fn new() -> Self {
        Self {
            devices: [const { Device::UNMAPPED }; DEVICES],
            collections: [None; COLLECTIONS],
            lpis_in_use: [0; LPI_WORDS],
        }
    }

    /// Back to [`Translation::new`], in place (the state is larger than a stack).
    pub(crate) fn reset(&mut self) {
        self.devices.iter_mut().for_each(|device| *device = Device::UNMAPPED);
        self.collections = [None; COLLECTIONS];
        self.lpis_in_use.fill(0);
    }

    /// The ITT size (in EventID bits) of a mapped device.
    pub(crate) fn device_event_id_bits(&self, device: u32) -> Option<u8> {
        self.devices.get(device as usize)?.event_id_bits
    }

    /// Records a device as mapped. Its events must all be unmapped (a remap first tears
    /// them down).
    pub(crate) fn map_device(&mut self, device: u32, event_id_bits: u8) {
        if let Some(slot) = self.devices.get_mut(device as usize) {
            debug_assert!(!slot.events.iter().any(Event::is_mapped));
            slot.event_id_bits = Some(event_id_bits);
        }
    }

    /// Forgets a device whose events are all unmapped.
    pub(crate) fn forget_device(&mut self, device: u32) {
        if let Some(slot) = self.devices.get_mut(device as usize) {
            debug_assert!(!slot.events.iter().any(Event::is_mapped));
            slot.event_id_bits = None;
        }
    }

    /// A mapped event's translation.
    pub(crate) fn event(&self, device: u32, event: u32) -> Option<Event> {
        let event = *self.devices.get(device as usize)?.events.get(event as usize)?;
        event.is_mapped().then_some(event)
    }

    /// Maps an event; the caller checked that neither the event nor the LPI is mapped.
    pub(crate) fn map_event(&mut self, device: u32, event: u32, translation: Event) {
        if let Some(slot) = self.event_slot(device, event) {
            *slot = translation;
            self.set_lpi_in_use(translation.vintid, true);
        }
    }

    /// Moves a mapped event to another collection.
    pub(crate) fn move_event(&mut self, device: u32, event: u32, icid: u16) {
        if let Some(slot) = self.event_slot(device, event) {
            slot.icid = icid;
        }
    }

    /// Unmaps an event, answering the LPI it had.
    pub(crate) fn unmap_event(&mut self, device: u32, event: u32) -> Option<u32> {
        let slot = self.event_slot(device, event)?;
        let vintid = slot.is_mapped().then_some(slot.vintid)?;
        *slot = Event::UNMAPPED;
        self.set_lpi_in_use(vintid, false);
        Some(vintid)
    }

    /// The first mapped EventID of `device` at or after `from`.
    pub(crate) fn next_mapped_event(&self, device: u32, from: u32) -> Option<u32> {
        let events = &self.devices.get(device as usize)?.events;
        let start = events.len().min(from as usize);
        let offset = events[start..].iter().position(Event::is_mapped)?;
        // Below EVENTS, which the configured (u32) quota bounds.
        Some((start + offset) as u32)
    }

    /// The target vCPU of a collection, `None` when unmapped or beyond the capacity.
    pub(crate) fn collection_target(&self, icid: u16) -> Option<u16> {
        *self.collections.get(usize::from(icid))?
    }

    /// Maps (`Some`) or unmaps (`None`) a collection.
    pub(crate) fn set_collection_target(&mut self, icid: u16, vcpu: Option<u16>) {
        if let Some(slot) = self.collections.get_mut(usize::from(icid)) {
            *slot = vcpu;
        }
    }

    /// Whether some event maps to INTID `vintid`.
    pub(crate) fn lpi_in_use(&self, vintid: u32) -> bool {
        let Some(word) = self.lpis_in_use.get(vintid as usize / 64) else { return false };
        word & (1 << (vintid % 64)) != 0
    }

    fn set_lpi_in_use(&mut self, vintid: u32, in_use: bool) {
        if let Some(word) = self.lpis_in_use.get_mut(vintid as usize / 64) {
            let bit = 1 << (vintid % 64);
            if in_use {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }

    fn event_slot(&mut self, device: u32, event: u32) -> Option<&mut Event> {
        self.devices.get_mut(device as usize)?.events.get_mut(event as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_beyond_the_capacity_are_unmapped_and_ignored() {
        let mut translation = Translation::<2, 4, 2>::new();
        translation.map_device(2, 3);
        assert_eq!(translation.device_event_id_bits(2), None);
        translation.map_device(1, 2);
        translation.map_event(1, 4, Event { vintid: 8192, icid: 0 });
        assert_eq!(translation.event(1, 4), None);
        assert!(!translation.lpi_in_use(8192));
        translation.set_collection_target(2, Some(0));
        assert_eq!(translation.collection_target(2), None);
        assert!(!translation.lpi_in_use(u32::MAX));
        assert_eq!(translation.next_mapped_event(1, u32::MAX), None);
    }

    #[test]
    fn map_and_unmap_keep_the_lpi_bitmap_in_step() {
        let mut translation = Translation::<2, 4, 2>::new();
        translation.map_device(0, 2);
        translation.map_event(0, 1, Event { vintid: 8200, icid: 1 });
        translation.map_event(0, 3, Event { vintid: 65535, icid: 0 });
        assert!(translation.lpi_in_use(8200) && translation.lpi_in_use(65535));
        assert!(!translation.lpi_in_use(8201));
        assert_eq!(translation.next_mapped_event(0, 0), Some(1));
        assert_eq!(translation.next_mapped_event(0, 2), Some(3));
        assert_eq!(translation.unmap_event(0, 1), Some(8200));
        assert_eq!(translation.unmap_event(0, 1), None);
        assert!(!translation.lpi_in_use(8200) && translation.lpi_in_use(65535));
        assert_eq!(translation.next_mapped_event(0, 0), Some(3));
    }
}
