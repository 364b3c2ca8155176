//! The VM's ITS quotas, and the GITS_TYPER value derived from them.

/// The first LPI INTID (GICv3: INTIDs 8192 and up are LPIs).
pub const FIRST_LPI: u32 = 8192;

/// The widest LPI INTID this server supports. Linux never uses more than 16 bits
/// (`ITS_MAX_LPI_NRBITS`), and the bound keeps the "LPI in use" bitmap at 8 KiB of fixed
/// server memory.
pub const MAX_LPI_ID_BITS: u8 = 16;

/// The smallest LPI INTID width: 8192 is the first LPI, so 14 bits are the least that
/// leave any LPI.
pub const MIN_LPI_ID_BITS: u8 = 14;

/// Bytes of one ITT entry as GITS_TYPER advertises it. The ITT is never accessed (see the
/// crate docs), so this only sizes the memory the guest sets aside.
pub const ITT_ENTRY_SIZE: u64 = 8;

/// The quotas of one VM's ITS. They bound what the guest may map and, through
/// GITS_TYPER, what it is told it may map. The vgic-server must advertise the same
/// [`Config::lpi_id_bits`] in GICD_TYPER.IDbits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// DeviceIDs `0..max_devices` may be mapped (Devbits covers them).
    pub max_devices: u32,
    /// EventIDs `0..max_events_per_device` may be mapped on a device (ID_bits covers
    /// them); a device's own ITT size (MAPD Size) may be smaller.
    pub max_events_per_device: u32,
    /// ICIDs `0..max_collections` may be used (CIDbits covers them; at most 65536).
    pub max_collections: u32,
    /// Number of vCPUs; a target (RDbase, a processor number since PTA = 0) must be
    /// below it.
    pub vcpus: u16,
    /// LPI INTIDs are `8192..2^lpi_id_bits`; between [`MIN_LPI_ID_BITS`] and
    /// [`MAX_LPI_ID_BITS`].
    pub lpi_id_bits: u8,
}

/// Why [`crate::Its::new`] refused a [`Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `vcpus` is 0.
    NoVcpus,
    /// `max_devices` is 0 or above the `DEVICES` capacity.
    Devices,
    /// `max_events_per_device` is 0 or above the `EVENTS` capacity.
    Events,
    /// `max_collections` is 0, above the `COLLECTIONS` capacity or above 65536.
    Collections,
    /// `lpi_id_bits` is outside `MIN_LPI_ID_BITS..=MAX_LPI_ID_BITS`.
    LpiIdBits,
}

/// Number of bits needed to number `count` identifiers (at least one bit, as the
/// GITS_TYPER fields hold "bits minus one").
const fn id_bits(count: u64) -> u32 {
    if count <= 2 { 1 } else { u64::BITS - (count - 1).leading_zeros() }
}

impl Config {
    /// Checks the quotas against the server's fixed capacities.
    pub(crate) const fn validate(
        &self,
        devices: usize,
        events: usize,
        collections: usize,
    ) -> Result<(), ConfigError> {
        if self.vcpus == 0 {
            Err(ConfigError::NoVcpus)
        } else if self.max_devices == 0 || self.max_devices as usize > devices {
            Err(ConfigError::Devices)
        } else if self.max_events_per_device == 0 || self.max_events_per_device as usize > events {
            Err(ConfigError::Events)
        } else if self.max_collections == 0
            || self.max_collections as usize > collections
            || self.max_collections > 1 << 16
        {
            Err(ConfigError::Collections)
        } else if self.lpi_id_bits < MIN_LPI_ID_BITS || self.lpi_id_bits > MAX_LPI_ID_BITS {
            Err(ConfigError::LpiIdBits)
        } else {
            Ok(())
        }
    }

    /// EventID bits the ITS supports: the largest MAPD Size + 1 accepted.
    pub(crate) const fn event_id_bits(&self) -> u32 {
        id_bits(self.max_events_per_device as u64)
    }

    /// One past the highest LPI INTID.
    pub(crate) const fn lpi_end(&self) -> u32 {
        1 << self.lpi_id_bits
    }

    /// GITS_TYPER: a physical-only ITS (no GICv4), PTA = 0 (targets are processor
    /// numbers), no hardware collections (HCC = 0), CIL = 1 with CIDbits from the
    /// collection quota.
    pub(crate) const fn typer(&self) -> u64 {
        const PHYSICAL: u64 = 1;
        const ITT_ENTRY_SIZE_SHIFT: u32 = 4;
        const ID_BITS_SHIFT: u32 = 8;
        const DEVBITS_SHIFT: u32 = 13;
        const CIDBITS_SHIFT: u32 = 32;
        const CIL: u64 = 1 << 36;
        let device_bits = id_bits(self.max_devices as u64) as u64;
        let collection_bits = id_bits(self.max_collections as u64) as u64;
        PHYSICAL
            | (ITT_ENTRY_SIZE - 1) << ITT_ENTRY_SIZE_SHIFT
            | (self.event_id_bits() as u64 - 1) << ID_BITS_SHIFT
            | (device_bits - 1) << DEVBITS_SHIFT
            | (collection_bits - 1) << CIDBITS_SHIFT
            | CIL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: Config =
        Config { max_devices: 8, max_events_per_device: 32, max_collections: 4, vcpus: 2, lpi_id_bits: 16 };

    #[test]
    fn id_bits_round_up_and_never_drop_below_one() {
        assert_eq!(id_bits(1), 1);
        assert_eq!(id_bits(2), 1);
        assert_eq!(id_bits(3), 2);
        assert_eq!(id_bits(256), 8);
        assert_eq!(id_bits(257), 9);
        assert_eq!(id_bits(1 << 32), 32);
    }

    #[test]
    fn typer_fields_follow_the_quotas() {
        let typer = CONFIG.typer();
        assert_eq!(typer & 1, 1, "Physical");
        assert_eq!(typer >> 1 & 1, 0, "Virtual");
        assert_eq!(typer >> 4 & 0xf, 7, "ITT entry size 8 bytes");
        assert_eq!(typer >> 8 & 0x1f, 4, "ID_bits: 5 EventID bits for 32 events");
        assert_eq!(typer >> 13 & 0x1f, 2, "Devbits: 3 DeviceID bits for 8 devices");
        assert_eq!(typer >> 19 & 1, 0, "PTA");
        assert_eq!(typer >> 24 & 0xff, 0, "HCC");
        assert_eq!(typer >> 32 & 0xf, 1, "CIDbits: 2 collection ID bits for 4 collections");
        assert_eq!(typer >> 36 & 1, 1, "CIL");
        assert_eq!(typer >> 37, 0, "no GICv4 or later features");
    }

    #[test]
    fn typer_matches_qemus_host_its_for_the_same_quotas() {
        // QEMU 7.2's GITS_TYPER is 0x1f0001efb1 with 12-byte ITT entries; ours differs
        // only in advertising 8-byte entries (0xb -> 0x7).
        let config = Config {
            max_devices: 1 << 16,
            max_events_per_device: 1 << 16,
            max_collections: 1 << 16,
            vcpus: 4,
            lpi_id_bits: 16,
        };
        assert_eq!(config.typer(), 0x1f_0001_ef71);
    }

    #[test]
    fn validation_rejects_each_bad_quota() {
        assert_eq!(CONFIG.validate(8, 32, 4), Ok(()));
        assert_eq!(Config { vcpus: 0, ..CONFIG }.validate(8, 32, 4), Err(ConfigError::NoVcpus));
        assert_eq!(Config { max_devices: 0, ..CONFIG }.validate(8, 32, 4), Err(ConfigError::Devices));
        assert_eq!(CONFIG.validate(7, 32, 4), Err(ConfigError::Devices));
        assert_eq!(
            Config { max_events_per_device: 0, ..CONFIG }.validate(8, 32, 4),
            Err(ConfigError::Events)
        );
        assert_eq!(CONFIG.validate(8, 31, 4), Err(ConfigError::Events));
        assert_eq!(Config { max_collections: 0, ..CONFIG }.validate(8, 32, 4), Err(ConfigError::Collections));
        assert_eq!(CONFIG.validate(8, 32, 3), Err(ConfigError::Collections));
        let too_many = Config { max_collections: (1 << 16) + 1, ..CONFIG };
        assert_eq!(too_many.validate(8, 32, 1 << 17), Err(ConfigError::Collections));
        assert_eq!(Config { lpi_id_bits: 13, ..CONFIG }.validate(8, 32, 4), Err(ConfigError::LpiIdBits));
        assert_eq!(Config { lpi_id_bits: 17, ..CONFIG }.validate(8, 32, 4), Err(ConfigError::LpiIdBits));
    }
}
