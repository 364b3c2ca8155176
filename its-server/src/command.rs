//! Decoding of the 32-byte ITS commands.
//!
//! Field positions from the GICv3 architecture specification (ITS command descriptions),
//! in doublewords DW0..DW3 (little-endian): the command number is DW0[7:0], DeviceID
//! DW0[63:32], EventID DW1[31:0], pINTID DW1[63:32], MAPD's Size DW1[4:0], ICID
//! DW2[15:0], RDbase (and MOVALL's RDbase1) DW2[50:16], MOVALL's RDbase2 DW3[50:16], the
//! Valid bit DW2[63], MAPD's ITT_addr DW2[51:8]. Reserved fields are ignored.

/// Bytes of one command in the queue.
pub(crate) const COMMAND_SIZE: u64 = 32;

/// One decoded command. RDbase fields stay raw (`u64`) until they are checked against the
/// vCPU count, so an out-of-range value is reported as it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// MOVI: move an event's LPI to another collection.
    Movi { device: u32, event: u32, icid: u16 },
    /// INT: make an event's LPI pending.
    Int { device: u32, event: u32 },
    /// CLEAR: make an event's LPI not pending.
    Clear { device: u32, event: u32 },
    /// SYNC: every earlier effect on the target becomes visible.
    Sync { target: u64 },
    /// MAPD: map a device with an ITT of `2^event_id_bits` events at guest-physical `itt`,
    /// or unmap it.
    Mapd { device: u32, event_id_bits: u8, itt: u64, valid: bool },
    /// MAPC: map a collection to a target, or unmap it.
    Mapc { icid: u16, target: u64, valid: bool },
    /// MAPTI: map an event to an LPI in a collection.
    Mapti { device: u32, event: u32, vintid: u32, icid: u16 },
    /// MAPI: MAPTI with the LPI INTID equal to the EventID.
    Mapi { device: u32, event: u32, icid: u16 },
    /// INV: reload an event's LPI configuration.
    Inv { device: u32, event: u32 },
    /// INVALL: reload the configuration of every LPI of a collection.
    Invall { icid: u16 },
    /// MOVALL: move every pending LPI from one target to another.
    Movall { from: u64, to: u64 },
    /// DISCARD: remove an event's mapping and its LPI's pending state.
    Discard { device: u32, event: u32 },
    /// Any other command number, including the GICv4 ones (this ITS is physical only).
    Unknown { number: u8 },
}

/// `word[high:low]`.
const fn field(word: u64, high: u32, low: u32) -> u64 {
    (word >> low) & (u64::MAX >> (63 - (high - low)))
}

impl Command {
    /// Decodes the command in `bytes`.
    pub(crate) fn decode(bytes: &[u8; COMMAND_SIZE as usize]) -> Self {
        let mut words = [0u64; 4];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut doubleword = [0; 8];
            doubleword.copy_from_slice(chunk);
            *word = u64::from_le_bytes(doubleword);
        }
        let [dw0, dw1, dw2, dw3] = words;
        // Each cast below takes a field no wider than its type.
        let device = field(dw0, 63, 32) as u32;
        let event = field(dw1, 31, 0) as u32;
        let icid = field(dw2, 15, 0) as u16;
        let target = field(dw2, 50, 16);
        let valid = field(dw2, 63, 63) == 1;
        match field(dw0, 7, 0) {
            0x01 => Self::Movi { device, event, icid },
            0x03 => Self::Int { device, event },
            0x04 => Self::Clear { device, event },
            0x05 => Self::Sync { target },
            0x08 => Self::Mapd {
                device,
                event_id_bits: field(dw1, 4, 0) as u8 + 1,
                itt: field(dw2, 51, 8) << 8,
                valid,
            },
            0x09 => Self::Mapc { icid, target, valid },
            0x0a => Self::Mapti { device, event, vintid: field(dw1, 63, 32) as u32, icid },
            0x0b => Self::Mapi { device, event, icid },
            0x0c => Self::Inv { device, event },
            0x0d => Self::Invall { icid },
            0x0e => Self::Movall { from: target, to: field(dw3, 50, 16) },
            0x0f => Self::Discard { device, event },
            number => Self::Unknown { number: number as u8 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(words: [u64; 4]) -> Command {
        let mut bytes = [0; 32];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Command::decode(&bytes)
    }

    #[test]
    fn decodes_every_command_from_its_specified_fields() {
        // Words as Linux's ITS driver builds them, with every reserved bit also set to
        // show that reserved bits are ignored.
        let reserved = 0x0000_0000_ffff_ff00;
        assert_eq!(
            decode([0x1234_5678_0000_0001 | reserved, 0xffff_ffff_0000_0007, 0xffff_0000_0000_0003, 0]),
            Command::Movi { device: 0x1234_5678, event: 7, icid: 3 }
        );
        assert_eq!(decode([0x0000_0002_0000_0003, 9, 0, 0]), Command::Int { device: 2, event: 9 });
        assert_eq!(decode([0x0000_0002_0000_0004, 9, 0, 0]), Command::Clear { device: 2, event: 9 });
        assert_eq!(decode([0x05, 0, 0x0003_0000, 0]), Command::Sync { target: 3 });
        assert_eq!(
            decode([0x0000_0005_0000_0008, 0x1f, 0x8000_0000_4010_0000, 0]),
            Command::Mapd { device: 5, event_id_bits: 32, itt: 0x4010_0000, valid: true }
        );
        assert_eq!(
            decode([0x0000_0005_0000_0008, 0x04, 0x7ff0_0000_4010_01ff, 0]),
            Command::Mapd { device: 5, event_id_bits: 5, itt: 0x4010_0100, valid: false }
        );
        assert_eq!(
            decode([0x09, 0, 0x8000_0000_0001_0002, 0]),
            Command::Mapc { icid: 2, target: 1, valid: true }
        );
        assert_eq!(
            decode([0x0000_0001_0000_000a, 0x0000_2005_0000_0004, 0x0001, 0]),
            Command::Mapti { device: 1, event: 4, vintid: 0x2005, icid: 1 }
        );
        assert_eq!(
            decode([0x0000_0001_0000_000b, 0x2004, 0x0001, 0]),
            Command::Mapi { device: 1, event: 0x2004, icid: 1 }
        );
        assert_eq!(decode([0x0000_0001_0000_000c, 4, 0, 0]), Command::Inv { device: 1, event: 4 });
        assert_eq!(decode([0x0d, 0, 0xffff, 0]), Command::Invall { icid: 0xffff });
        assert_eq!(
            decode([0x0e, 0, 0x0001_0000, 0x0007_ffff_ffff_0000]),
            Command::Movall { from: 1, to: 0x7_ffff_ffff }
        );
        assert_eq!(decode([0x0000_0003_0000_000f, 2, 0, 0]), Command::Discard { device: 3, event: 2 });
    }

    #[test]
    fn rdbase_stops_at_bit_50() {
        assert_eq!(decode([0x05, 0, 0xfff8_0000_0000_ffff, 0]), Command::Sync { target: 0 });
        assert_eq!(decode([0x05, 0, 0x0004_0000_0000_0000, 0]), Command::Sync { target: 1 << 34 });
    }

    #[test]
    fn unknown_and_gicv4_numbers_are_unknown() {
        for number in [0x00, 0x02, 0x06, 0x07, 0x10, 0x21, 0x2a, 0xff] {
            assert_eq!(decode([number, 0, 0, 0]), Command::Unknown { number: number as u8 });
        }
    }
}
