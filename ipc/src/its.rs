//! The its-server's protocol for devices: MSIs.
//!
//! A device model (a component emulating an MSI-capable device for the VM) calls the VM's
//! its-server with [`Msi`] for each message it writes to GITS_TRANSLATER. The DeviceID is
//! never in the message: it is the sender's badge ([`badge::device`]), which the
//! manifest gives the device's call cap, so a device can raise only its own interrupts,
//! as a PCIe requester ID is set by the bus, not by the device.
//!
//! ```ignore
//! // The device with the cap `ITS` (badge `badge::device(5)`) sends EventID 3:
//! let delivered = ITS.call(&Msi { event_id: 3 }.encode())?.label() == DELIVERED;
//! ```

use crate::{Label, Message};

/// Badges on an its-server's endpoint.
pub mod badge {
    /// The VM's VMM, the only sender of [`super::RESET`] (not a device's: no
    /// [`DEVICE`] bit).
    pub const VMM: u64 = 2;
    /// The bit that marks a device's badge; the low 32 bits are its DeviceID.
    pub const DEVICE: u64 = 1 << 32;

    /// The badge of the device with DeviceID `device_id`.
    pub const fn device(device_id: u32) -> u64 {
        DEVICE | device_id as u64
    }

    /// The DeviceID a badge carries, if it is a device's.
    pub const fn device_id(badge: u64) -> Option<u32> {
        if badge & !(u32::MAX as u64) == DEVICE { Some(badge as u32) } else { None }
    }
}

/// Only from [`badge::VMM`]: the VM resets (PSCI SYSTEM_RESET, every vCPU stopped): the
/// ITS goes back to its reset state, nothing mapped, without telling the vgic-server
/// (which resets too). No words; the reply is [`DELIVERED`].
pub const RESET: Label = Label(0x230);

/// [`Msi`]. Words: EventID.
pub const MSI: Label = Label(0x220);

/// Reply label: the MSI translated and its LPI is pending. No words.
pub const DELIVERED: Label = Label(0);
/// Reply label: the MSI was dropped (ITS disabled, DeviceID or EventID not mapped, its
/// collection unmapped) or the request was malformed. No words.
pub const DROPPED: Label = Label(1);

/// An MSI from the sender's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    /// The EventID the device wrote to GITS_TRANSLATER.
    pub event_id: u32,
}

impl Msi {
    /// The request as a message.
    pub fn encode(&self) -> Message {
        Message::new(MSI).with_words(&[self.event_id.into()])
    }

    /// Decodes an MSI; `None` for another label, a wrong number of words or an EventID
    /// wider than 32 bits.
    pub fn decode(message: &Message) -> Option<Self> {
        match *message.body() {
            [event_id] if message.label() == MSI => Some(Self { event_id: u32::try_from(event_id).ok()? }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_msi_round_trips_and_nothing_else_decodes() {
        for event_id in [0, 7, u32::MAX] {
            assert_eq!(Msi::decode(&Msi { event_id }.encode()), Some(Msi { event_id }));
        }
        assert_eq!(Msi::decode(&Message::new(MSI).with_words(&[1 << 32])), None);
        assert_eq!(Msi::decode(&Message::new(MSI).with_words(&[1, 2])), None);
        assert_eq!(Msi::decode(&Message::new(Label(0x221)).with_words(&[1])), None);
    }

    #[test]
    fn a_device_badge_carries_its_device_id() {
        assert_eq!(badge::device_id(badge::device(5)), Some(5));
        assert_eq!(badge::device_id(badge::device(u32::MAX)), Some(u32::MAX));
        assert_eq!(badge::device_id(1), None, "the GITS route's badge is no device");
        assert_eq!(badge::device_id(badge::DEVICE << 1 | 5), None);
    }
}
