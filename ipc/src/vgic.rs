//! The vgic-server's protocol: what other components ask the vGIC of a VM to do.
//!
//! One vgic-server per VM receives everything on one endpoint and tells senders apart by
//! badge ([`badge`]): the VM's GICD and GICR routes (MMIO faults, `ipc::vcpu::MMIO`), the
//! VM's vGIC events and trapped SGI writes (the manifest's `vgic-badge`), the its-server's
//! [`ItsRequest`] Calls, and device models' [`SpiRequest`] Calls. Each request is a `Call`
//! with one of the labels below and fixed words; the reply (label [`DONE`], no words) comes
//! once the effect is complete, so that an ITS command's reply means its effect is visible.
//!
//! ```ignore
//! // its-server: DISCARD of an event mapped to LPI 8200.
//! VGIC.call(&ItsRequest::LpiUnmap { vintid: 8200 }.encode())?;
//! // A device model lowers its interrupt line.
//! VGIC.call(&SpiRequest::SetLevel { intid: 40, level: false }.encode())?;
//! ```

use crate::{Cap, IrqHandler, Label, Message};

/// The badges on a vgic-server's endpoint: each names who sends and what it may send.
/// The manifest gives them to the routes and caps (`images/guest-test/system.toml`).
pub mod badge {
    /// The VM's GICD route: MMIO faults at an offset in the distributor frame.
    pub const DISTRIBUTOR: u64 = 1;
    /// The VM's GICR route: MMIO faults at an offset in the redistributor frames.
    pub const REDISTRIBUTORS: u64 = 2;
    /// The VM's `vgic-badge`: vGIC events (a Call the reply to which loads list
    /// registers) and trapped ICC_SGI*R_EL1 writes (a Send).
    pub const VCPU_EVENTS: u64 = 3;
    /// The its-server: [`super::ItsRequest`] Calls.
    pub const ITS: u64 = 4;
    /// Device models: [`super::SpiRequest`] Calls.
    pub const DEVICE: u64 = 5;
    /// The VM's VMM: [`super::SpiRequest`] Calls (its PL011) and [`super::RESET`].
    pub const VMM: u64 = 6;
}

/// [`ItsRequest::CollectionTarget`]. Words: ICID, vCPU or [`NO_VCPU`].
pub const COLLECTION_TARGET: Label = Label(0x200);
/// [`ItsRequest::LpiMap`]. Words: vINTID, ICID.
pub const LPI_MAP: Label = Label(0x201);
/// [`ItsRequest::LpiUnmap`]. Words: vINTID.
pub const LPI_UNMAP: Label = Label(0x202);
/// [`ItsRequest::LpiSetPending`]. Words: vINTID.
pub const LPI_SET_PENDING: Label = Label(0x203);
/// [`ItsRequest::LpiClearPending`]. Words: vINTID.
pub const LPI_CLEAR_PENDING: Label = Label(0x204);
/// [`ItsRequest::LpiMove`]. Words: vINTID, ICID.
pub const LPI_MOVE: Label = Label(0x205);
/// [`ItsRequest::MoveAll`]. Words: from vCPU, to vCPU.
pub const MOVE_ALL: Label = Label(0x206);
/// [`ItsRequest::ReloadLpi`]. Words: vINTID.
pub const RELOAD_LPI: Label = Label(0x207);
/// [`ItsRequest::ReloadCollection`]. Words: ICID.
pub const RELOAD_COLLECTION: Label = Label(0x208);
/// [`ItsRequest::Sync`]. Words: vCPU.
pub const SYNC: Label = Label(0x209);
/// [`SpiRequest::SetLevel`]. Words: INTID, level (0 or 1).
pub const SET_SPI_LEVEL: Label = Label(0x210);
/// [`SpiRequest::Pulse`]. Words: INTID.
pub const PULSE_SPI: Label = Label(0x211);

/// Only from [`badge::VMM`]: the VM resets (PSCI SYSTEM_RESET, every vCPU stopped):
/// every interrupt state goes back to reset, passthrough SPIs stay attached, and every
/// vCPU's list registers are cleared (`VCPU_WRITE_LRS`). No words; the reply is [`DONE`].
pub const RESET: Label = Label(0x212);

/// Reply label: the request's effect is complete. No words.
pub const DONE: Label = Label(0);
/// Reply label: the request was malformed (unknown label, wrong length, a value out of
/// range) or not allowed for the sender's badge, and had no effect. No words.
pub const REJECTED: Label = Label(1);

/// The word that stands for "no vCPU" in [`COLLECTION_TARGET`].
pub const NO_VCPU: u64 = u64::MAX;

/// A request of the its-server, one per method of `its_server::Vgic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItsRequest {
    /// Collection `icid` now targets `vcpu` (`None`: unmapped).
    CollectionTarget {
        /// The collection.
        icid: u16,
        /// Its target vCPU, if mapped.
        vcpu: Option<u16>,
    },
    /// LPI `vintid` now exists, in collection `icid`.
    LpiMap {
        /// The LPI.
        vintid: u32,
        /// Its collection.
        icid: u16,
    },
    /// LPI `vintid` no longer exists.
    LpiUnmap {
        /// The LPI.
        vintid: u32,
    },
    /// LPI `vintid` becomes pending.
    LpiSetPending {
        /// The LPI.
        vintid: u32,
    },
    /// LPI `vintid` stops being pending.
    LpiClearPending {
        /// The LPI.
        vintid: u32,
    },
    /// LPI `vintid` moves to collection `icid`.
    LpiMove {
        /// The LPI.
        vintid: u32,
        /// Its new collection.
        icid: u16,
    },
    /// Every pending LPI of `from_vcpu` moves to `to_vcpu`.
    MoveAll {
        /// The vCPU they leave.
        from_vcpu: u16,
        /// The vCPU they go to.
        to_vcpu: u16,
    },
    /// LPI `vintid`'s property entry is read again (INV).
    ReloadLpi {
        /// The LPI.
        vintid: u32,
    },
    /// The property entries of collection `icid`'s LPIs are read again (INVALL).
    ReloadCollection {
        /// The collection.
        icid: u16,
    },
    /// Every earlier effect on `vcpu` is visible (SYNC).
    Sync {
        /// The vCPU.
        vcpu: u16,
    },
}

/// Narrows a word to `T`, or `None` if it does not fit.
fn narrow<T: TryFrom<u64>>(word: u64) -> Option<T> {
    T::try_from(word).ok()
}

impl ItsRequest {
    /// The request as a message.
    pub fn encode(&self) -> Message {
        let (label, words): (Label, &[u64]) = match *self {
            Self::CollectionTarget { icid, vcpu } => {
                (COLLECTION_TARGET, &[icid.into(), vcpu.map_or(NO_VCPU, u64::from)])
            }
            Self::LpiMap { vintid, icid } => (LPI_MAP, &[vintid.into(), icid.into()]),
            Self::LpiUnmap { vintid } => (LPI_UNMAP, &[vintid.into()]),
            Self::LpiSetPending { vintid } => (LPI_SET_PENDING, &[vintid.into()]),
            Self::LpiClearPending { vintid } => (LPI_CLEAR_PENDING, &[vintid.into()]),
            Self::LpiMove { vintid, icid } => (LPI_MOVE, &[vintid.into(), icid.into()]),
            Self::MoveAll { from_vcpu, to_vcpu } => (MOVE_ALL, &[from_vcpu.into(), to_vcpu.into()]),
            Self::ReloadLpi { vintid } => (RELOAD_LPI, &[vintid.into()]),
            Self::ReloadCollection { icid } => (RELOAD_COLLECTION, &[icid.into()]),
            Self::Sync { vcpu } => (SYNC, &[vcpu.into()]),
        };
        Message::new(label).with_words(words)
    }

    /// Decodes an its-server request; `None` for another label, a wrong number of words
    /// or a value that does not fit its field.
    pub fn decode(message: &Message) -> Option<Self> {
        let label = message.label();
        match *message.body() {
            [icid, vcpu] if label == COLLECTION_TARGET => Some(Self::CollectionTarget {
                icid: narrow(icid)?,
                vcpu: if vcpu == NO_VCPU { None } else { Some(narrow(vcpu)?) },
            }),
            [vintid, icid] if label == LPI_MAP => {
                Some(Self::LpiMap { vintid: narrow(vintid)?, icid: narrow(icid)? })
            }
            [vintid] if label == LPI_UNMAP => Some(Self::LpiUnmap { vintid: narrow(vintid)? }),
            [vintid] if label == LPI_SET_PENDING => Some(Self::LpiSetPending { vintid: narrow(vintid)? }),
            [vintid] if label == LPI_CLEAR_PENDING => Some(Self::LpiClearPending { vintid: narrow(vintid)? }),
            [vintid, icid] if label == LPI_MOVE => {
                Some(Self::LpiMove { vintid: narrow(vintid)?, icid: narrow(icid)? })
            }
            [from, to] if label == MOVE_ALL => {
                Some(Self::MoveAll { from_vcpu: narrow(from)?, to_vcpu: narrow(to)? })
            }
            [vintid] if label == RELOAD_LPI => Some(Self::ReloadLpi { vintid: narrow(vintid)? }),
            [icid] if label == RELOAD_COLLECTION => Some(Self::ReloadCollection { icid: narrow(icid)? }),
            [vcpu] if label == SYNC => Some(Self::Sync { vcpu: narrow(vcpu)? }),
            _ => None,
        }
    }
}

/// A request of a device model: drive the line of one of the VM's SPIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpiRequest {
    /// The line of SPI `intid` is now at `level`.
    SetLevel {
        /// The SPI's INTID (32..1020).
        intid: u32,
        /// Asserted.
        level: bool,
    },
    /// The line of SPI `intid` pulses (an edge).
    Pulse {
        /// The SPI's INTID (32..1020).
        intid: u32,
    },
}

impl SpiRequest {
    /// The request as a message.
    pub fn encode(&self) -> Message {
        match *self {
            Self::SetLevel { intid, level } => {
                Message::new(SET_SPI_LEVEL).with_words(&[intid.into(), level.into()])
            }
            Self::Pulse { intid } => Message::new(PULSE_SPI).with_words(&[intid.into()]),
        }
    }

    /// Decodes a device model's request; `None` for another label, a wrong number of
    /// words, or a level other than 0 or 1.
    pub fn decode(message: &Message) -> Option<Self> {
        let label = message.label();
        match *message.body() {
            [intid, level @ (0 | 1)] if label == SET_SPI_LEVEL => {
                Some(Self::SetLevel { intid: narrow(intid)?, level: level == 1 })
            }
            [intid] if label == PULSE_SPI => Some(Self::Pulse { intid: narrow(intid)? }),
            _ => None,
        }
    }
}

/// A physical SPI passed through to the VM, as xtask generates it for the VM's
/// vgic-server (`PASSTHROUGH_SPIS`) from the manifest's `[[vm.passthrough]]`: the guest
/// sees SPI `intid` (the same number), listed hardware-linked.
#[derive(Clone, Copy, Debug)]
pub struct PassthroughSpi {
    /// The IRQ handler cap: its `ack` deactivates the physical SPI, which the kernel left
    /// active (priority dropped) when it signalled the notification.
    pub irq: Cap<IrqHandler>,
    /// The SPI's INTID, physical and virtual.
    pub intid: u32,
    /// Edge-triggered (else level-sensitive).
    pub edge: bool,
    /// The bits its interrupt sets in the server's bound notification word.
    pub badge: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITS_REQUESTS: [ItsRequest; 11] = [
        ItsRequest::CollectionTarget { icid: 3, vcpu: Some(1) },
        ItsRequest::CollectionTarget { icid: 0xffff, vcpu: None },
        ItsRequest::LpiMap { vintid: 8192, icid: 2 },
        ItsRequest::LpiUnmap { vintid: 0xffff_ffff },
        ItsRequest::LpiSetPending { vintid: 8200 },
        ItsRequest::LpiClearPending { vintid: 8201 },
        ItsRequest::LpiMove { vintid: 9000, icid: 7 },
        ItsRequest::MoveAll { from_vcpu: 0, to_vcpu: 3 },
        ItsRequest::ReloadLpi { vintid: 8193 },
        ItsRequest::ReloadCollection { icid: 5 },
        ItsRequest::Sync { vcpu: 2 },
    ];

    #[test]
    fn its_requests_round_trip_with_distinct_labels() {
        for (index, request) in ITS_REQUESTS.iter().enumerate() {
            let message = request.encode();
            assert_eq!(ItsRequest::decode(&message), Some(*request));
            assert_eq!(SpiRequest::decode(&message), None, "{request:?} is not a device request");
            if index > 1 {
                assert_ne!(message.label(), ITS_REQUESTS[index - 1].encode().label());
            }
        }
    }

    #[test]
    fn its_request_words_are_fixed() {
        let message = ItsRequest::CollectionTarget { icid: 3, vcpu: None }.encode();
        assert_eq!((message.label(), message.body()), (COLLECTION_TARGET, &[3, NO_VCPU][..]));
        let message = ItsRequest::LpiMove { vintid: 8195, icid: 4 }.encode();
        assert_eq!((message.label(), message.body()), (LPI_MOVE, &[8195, 4][..]));
    }

    #[test]
    fn malformed_its_requests_are_refused() {
        let short = Message::new(LPI_MAP).with_words(&[8192]);
        assert_eq!(ItsRequest::decode(&short), None);
        let long = Message::new(LPI_UNMAP).with_words(&[8192, 0]);
        assert_eq!(ItsRequest::decode(&long), None);
        let wide_icid = Message::new(LPI_MAP).with_words(&[8192, 0x1_0000]);
        assert_eq!(ItsRequest::decode(&wide_icid), None);
        let wide_vcpu = Message::new(COLLECTION_TARGET).with_words(&[0, 0x1_0000]);
        assert_eq!(ItsRequest::decode(&wide_vcpu), None);
        let wide_intid = Message::new(LPI_SET_PENDING).with_words(&[1 << 32]);
        assert_eq!(ItsRequest::decode(&wide_intid), None);
        assert_eq!(ItsRequest::decode(&Message::new(Label(0x20f)).with_words(&[1])), None);
    }

    #[test]
    fn spi_requests_round_trip_and_refuse_other_levels() {
        for request in [
            SpiRequest::SetLevel { intid: 40, level: true },
            SpiRequest::SetLevel { intid: 1019, level: false },
            SpiRequest::Pulse { intid: 33 },
        ] {
            let message = request.encode();
            assert_eq!(SpiRequest::decode(&message), Some(request));
            assert_eq!(ItsRequest::decode(&message), None);
        }
        let level_two = Message::new(SET_SPI_LEVEL).with_words(&[40, 2]);
        assert_eq!(SpiRequest::decode(&level_two), None);
        let no_level = Message::new(SET_SPI_LEVEL).with_words(&[40]);
        assert_eq!(SpiRequest::decode(&no_level), None);
    }
}
