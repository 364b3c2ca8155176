//! ITS commands as a guest writes them into the command queue, encoded from the GICv3
//! specification's field positions (independently of the its-server's decoder).

use crate::fakes::RAM_BASE;

/// Where MAPD says the ITT is; the its-server never reads it.
const ITT: u64 = RAM_BASE + 0xb_0000;
const VALID: u64 = 1 << 63;

/// One ITS command with the fields the tests use; targets (RDbase) are vCPU numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// MAPD: V=1 with an ITT of `2^bits` events (`Some(bits)`), or V=0 (`None`).
    Mapd {
        device: u32,
        event_id_bits: Option<u8>,
    },
    /// MAPC V=1.
    Mapc {
        icid: u16,
        vcpu: u16,
    },
    Mapti {
        device: u32,
        event: u32,
        lpi: u32,
        icid: u16,
    },
    Movi {
        device: u32,
        event: u32,
        icid: u16,
    },
    Int {
        device: u32,
        event: u32,
    },
    Clear {
        device: u32,
        event: u32,
    },
    Inv {
        device: u32,
        event: u32,
    },
    Discard {
        device: u32,
        event: u32,
    },
    Movall {
        from: u16,
        to: u16,
    },
    Sync {
        vcpu: u16,
    },
}

impl Command {
    /// The command's four doublewords.
    pub fn encode(self) -> [u64; 4] {
        let device_word = |number: u64, device: u32| number | u64::from(device) << 32;
        let event_command = |number, device, event: u32| [device_word(number, device), event.into(), 0, 0];
        match self {
            Self::Mapd { device, event_id_bits: Some(bits) } => {
                [device_word(0x08, device), u64::from(bits) - 1, ITT | VALID, 0]
            }
            Self::Mapd { device, event_id_bits: None } => [device_word(0x08, device), 0, ITT, 0],
            Self::Mapc { icid, vcpu } => [0x09, 0, u64::from(icid) | u64::from(vcpu) << 16 | VALID, 0],
            Self::Mapti { device, event, lpi, icid } => {
                [device_word(0x0a, device), u64::from(event) | u64::from(lpi) << 32, icid.into(), 0]
            }
            Self::Movi { device, event, icid } => [device_word(0x01, device), event.into(), icid.into(), 0],
            Self::Int { device, event } => event_command(0x03, device, event),
            Self::Clear { device, event } => event_command(0x04, device, event),
            Self::Inv { device, event } => event_command(0x0c, device, event),
            Self::Discard { device, event } => event_command(0x0f, device, event),
            Self::Movall { from, to } => [0x0e, 0, u64::from(from) << 16, u64::from(to) << 16],
            Self::Sync { vcpu } => [0x05, 0, u64::from(vcpu) << 16, 0],
        }
    }
}
