//! GICv3 ITS facts the checks use: register offsets, BASER fields and the 32-byte
//! commands, as doublewords DW0..DW3 (GICv3/GICv4 architecture specification, IHI 0069,
//! ITS commands): the command number is DW0[7:0], DeviceID DW0[63:32], EventID DW1[31:0],
//! pINTID DW1[63:32], MAPD's Size DW1[4:0], ICID DW2[15:0], RDbase DW2[50:16] (a
//! processor number while GITS_TYPER.PTA = 0), MOVALL's second RDbase DW3[50:16], MAPD's
//! ITT_addr DW2[51:8] and the Valid bit DW2[63].

/// ITS registers, by offset from its base.
pub mod reg {
    /// Control: Enabled (0), Quiescent (31).
    pub const CTLR: u64 = 0x0000;
    /// Implementer identification.
    pub const IIDR: u64 = 0x0004;
    /// Type (64 bits).
    pub const TYPER: u64 = 0x0008;
    /// Command queue base (64 bits): Valid (63), address (51:12), Size (7:0, pages - 1).
    pub const CBASER: u64 = 0x0080;
    /// Command queue write offset (64 bits): Retry (0), offset (19:5).
    pub const CWRITER: u64 = 0x0088;
    /// Command queue read offset (64 bits): Stalled (0), offset (19:5).
    pub const CREADR: u64 = 0x0090;
    /// GITS_BASER0 (64 bits); BASER<n> at `BASER + 8 * n`.
    pub const BASER: u64 = 0x0100;
    /// CTLR.Enabled.
    pub const CTLR_ENABLED: u32 = 1 << 0;
    /// CREADR.Stalled and CWRITER.Retry.
    pub const STALLED_OR_RETRY: u64 = 1 << 0;
    /// The offset field of CWRITER and CREADR.
    pub const OFFSET_MASK: u64 = 0xf_ffe0;
}

/// GITS_TYPER fields.
pub mod typer {
    /// Physical: physical LPIs are supported.
    pub const PHYSICAL: u64 = 1 << 0;

    /// Bytes of an interrupt translation table entry (ITT_entry_size, 7:4, plus one).
    pub const fn itt_entry_size(typer: u64) -> u64 {
        ((typer >> 4) & 0xf) + 1
    }

    /// Supported EventID bits (ID_bits, 12:8, plus one).
    pub const fn event_id_bits(typer: u64) -> u32 {
        ((typer >> 8) & 0x1f) as u32 + 1
    }

    /// Supported DeviceID bits (Devbits, 17:13, plus one).
    pub const fn device_id_bits(typer: u64) -> u32 {
        ((typer >> 13) & 0x1f) as u32 + 1
    }

    /// PTA: targets are redistributor addresses (else processor numbers).
    pub const fn physical_target_addresses(typer: u64) -> bool {
        typer & 1 << 19 != 0
    }
}

/// GITS_BASER<n> fields.
pub mod baser {
    /// Valid.
    pub const VALID: u64 = 1 << 63;
    /// Type (58:56): unimplemented.
    pub const TYPE_NONE: u64 = 0;
    /// Type: devices.
    pub const TYPE_DEVICES: u64 = 1;
    /// Type: collections.
    pub const TYPE_COLLECTIONS: u64 = 4;
    /// Page_Size (9:8) for 64 KiB pages.
    pub const PAGE_SIZE_64K: u64 = 0b10 << 8;
    /// The Page_Size field.
    pub const PAGE_SIZE_MASK: u64 = 0b11 << 8;
    /// Bytes of a 64 KiB page.
    pub const PAGE_64K: u64 = 0x1_0000;

    /// The table's type.
    pub const fn table_type(baser: u64) -> u64 {
        (baser >> 56) & 0x7
    }

    /// Bytes per table entry (Entry_Size, 52:48, plus one).
    pub const fn entry_size(baser: u64) -> u64 {
        ((baser >> 48) & 0x1f) + 1
    }

    /// A valid flat table of one 64 KiB page at `address` (64 KiB aligned), keeping the
    /// read-only Type and Entry_Size fields of `current`.
    pub const fn one_page(current: u64, address: u64) -> u64 {
        (current & (0x7 << 56 | 0x1f << 48)) | VALID | address | PAGE_SIZE_64K
    }
}

/// A valid command queue of `pages` 4 KiB pages at `address` (4 KiB aligned).
pub const fn cbaser(address: u64, pages: u64) -> u64 {
    baser::VALID | address | (pages - 1)
}

/// Bytes of one command.
pub const COMMAND_SIZE: u64 = 32;

/// One ITS command, as four doublewords.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command(pub [u64; 4]);

impl Command {
    const fn with(number: u64, device: u32, dw1: u64, dw2: u64) -> Self {
        Self([number | (device as u64) << 32, dw1, dw2, 0])
    }

    const fn rdbase(processor: u64) -> u64 {
        (processor & 0x7_ffff_ffff) << 16
    }

    const VALID: u64 = 1 << 63;

    /// MAPD: map `device` with an ITT of `2^event_bits` events at `itt` (256-byte
    /// aligned), or unmap it (`valid` false).
    pub const fn mapd(device: u32, event_bits: u32, itt: u64, valid: bool) -> Self {
        let valid = if valid { Self::VALID } else { 0 };
        Self::with(0x08, device, (event_bits - 1) as u64, valid | (itt & 0xf_ffff_ffff_ff00))
    }

    /// MAPC: map collection `icid` to processor number `processor`, or unmap it.
    pub const fn mapc(icid: u16, processor: u64, valid: bool) -> Self {
        let valid = if valid { Self::VALID } else { 0 };
        Self::with(0x09, 0, 0, valid | Self::rdbase(processor) | icid as u64)
    }

    /// MAPTI: event `event` of `device` raises LPI `intid` in collection `icid`.
    pub const fn mapti(device: u32, event: u32, intid: u32, icid: u16) -> Self {
        Self::with(0x0a, device, event as u64 | (intid as u64) << 32, icid as u64)
    }

    /// MOVI: the event's LPI moves to collection `icid`.
    pub const fn movi(device: u32, event: u32, icid: u16) -> Self {
        Self::with(0x01, device, event as u64, icid as u64)
    }

    /// INT: the event's LPI becomes pending.
    pub const fn int(device: u32, event: u32) -> Self {
        Self::with(0x03, device, event as u64, 0)
    }

    /// CLEAR: the event's LPI stops being pending.
    pub const fn clear(device: u32, event: u32) -> Self {
        Self::with(0x04, device, event as u64, 0)
    }

    /// DISCARD: the event's mapping and its LPI's pending state go.
    pub const fn discard(device: u32, event: u32) -> Self {
        Self::with(0x0f, device, event as u64, 0)
    }

    /// INV: the event's LPI configuration is read again.
    pub const fn inv(device: u32, event: u32) -> Self {
        Self::with(0x0c, device, event as u64, 0)
    }

    /// INVALL: the configuration of every LPI of collection `icid` is read again.
    pub const fn invall(icid: u16) -> Self {
        Self::with(0x0d, 0, 0, icid as u64)
    }

    /// SYNC: every earlier command's effect on `processor` is visible.
    pub const fn sync(processor: u64) -> Self {
        Self::with(0x05, 0, 0, Self::rdbase(processor))
    }

    /// MOVALL: every pending LPI of processor `from` moves to `to`.
    pub const fn movall(from: u64, to: u64) -> Self {
        Self([0x0e, 0, Self::rdbase(from), Self::rdbase(to)])
    }
}

/// The LPI configuration table entry for an LPI of `priority` (its top six bits kept),
/// enabled or not; bit 1 is RES1.
pub const fn lpi_config(priority: u8, enabled: bool) -> u8 {
    (priority & 0xfc) | 0b10 | enabled as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_put_fields_where_the_specification_says() {
        assert_eq!(Command::mapd(7, 8, 0x4010_0100, true).0, [0x7_0000_0008, 7, 0x8000_0000_4010_0100, 0]);
        assert_eq!(Command::mapd(7, 1, 0x4010_0100, false).0[2], 0x4010_0100);
        assert_eq!(Command::mapc(3, 2, true).0, [0x09, 0, 0x8000_0000_0002_0003, 0]);
        assert_eq!(Command::mapti(1, 5, 8200, 3).0, [0x1_0000_000a, 0x2008_0000_0005, 3, 0]);
        assert_eq!(Command::movi(1, 5, 4).0, [0x1_0000_0001, 5, 4, 0]);
        assert_eq!(Command::int(1, 5).0[..2], [0x1_0000_0003, 5]);
        assert_eq!(Command::clear(1, 5).0[0], 0x1_0000_0004);
        assert_eq!(Command::discard(1, 5).0[0], 0x1_0000_000f);
        assert_eq!(Command::inv(1, 5).0[0], 0x1_0000_000c);
        assert_eq!(Command::invall(9).0, [0x0d, 0, 9, 0]);
        assert_eq!(Command::sync(3).0, [0x05, 0, 0x3_0000, 0]);
        assert_eq!(Command::movall(1, 2).0, [0x0e, 0, 0x1_0000, 0x2_0000]);
    }

    #[test]
    fn typer_and_baser_fields() {
        let typer = 0x1f_0001_efb1;
        assert_ne!(typer & typer::PHYSICAL, 0);
        assert_eq!(typer::itt_entry_size(typer), 12);
        assert_eq!(typer::event_id_bits(typer), 16);
        assert_eq!(typer::device_id_bits(typer), 16);
        assert!(!typer::physical_target_addresses(typer));
        let device_table = 0x0107_0000_0000_0000;
        assert_eq!(baser::table_type(device_table), baser::TYPE_DEVICES);
        assert_eq!(baser::entry_size(device_table), 8);
        let written = baser::one_page(device_table | 0x1234, 0x4020_0000);
        assert_eq!(written, 0x8107_0000_4020_0200);
        assert_eq!(cbaser(0x4030_0000, 2), 0x8000_0000_4030_0001);
    }

    #[test]
    fn lpi_configuration_entries() {
        assert_eq!(lpi_config(0xa0, true), 0xa3);
        assert_eq!(lpi_config(0xa3, false), 0xa2);
    }
}
