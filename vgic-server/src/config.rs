//! The VM's GIC configuration, the vCPU affinity convention, and the identification
//! register values derived from them.

pub use its_server::{FIRST_LPI, MAX_LPI_ID_BITS, MIN_LPI_ID_BITS};

/// The first SPI INTID.
pub const FIRST_SPI: u32 = 32;

/// The most SPIs a GICv3 distributor has: INTIDs 32..1020 (1020-1023 are special).
pub const MAX_SPIS: usize = 988;

/// SGIs and PPIs per vCPU (INTIDs 0..32).
pub const PRIVATE_INTERRUPTS: usize = 32;

/// The first PPI INTID (0..16 are SGIs).
pub const FIRST_PPI: u32 = 16;

/// PPIs the kernel hands over as hardware-linked list registers with the same physical
/// INTID: the EL1 virtual timer (27) and the EL1 physical timer (30). They are level
/// sensitive, their configuration is fixed, and their line levels arrive sampled in each
/// [`crate::Snapshot`].
pub const HARDWARE_PPIS: [u32; 2] = [27, 30];

/// vCPUs whose Aff0 values share one SGI target list (ICC_SGI1R_EL1.TargetList).
const VCPUS_PER_CLUSTER: u16 = 16;

/// The MPIDR affinity of vCPU `vcpu` in MPIDR_EL1/GICD_IROUTER layout (Aff0 in bits
/// `[7:0]`, Aff1 in `[15:8]`, Aff2 in `[23:16]`; Aff3 is 0): Aff0 = `vcpu % 16`,
/// Aff1 = `vcpu / 16`, so that one SGI target list covers sixteen vCPUs. The kernel sets
/// VMPIDR_EL2 and the device tree's `reg` of each vCPU from this.
pub const fn vcpu_affinity(vcpu: u16) -> u32 {
    (vcpu % VCPUS_PER_CLUSTER) as u32 | ((vcpu / VCPUS_PER_CLUSTER) as u32) << 8
}

/// The vCPU index with affinity `affinity` (layout of [`vcpu_affinity`], Aff3 in bits
/// `[31:24]`), if the convention gives one; the caller checks it against the vCPU count.
pub const fn vcpu_with_affinity(affinity: u32) -> Option<u16> {
    let aff0 = affinity & 0xff;
    let aff1 = affinity >> 8 & 0xff;
    if affinity >> 16 != 0 || aff0 >= VCPUS_PER_CLUSTER as u32 {
        None
    } else {
        Some((aff1 * VCPUS_PER_CLUSTER as u32 + aff0) as u16)
    }
}

/// One VM's GIC as the manifest describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Number of vCPUs (and redistributors).
    pub vcpus: u16,
    /// SPIs `32..32 + spis` exist (at most [`MAX_SPIS`]).
    pub spis: u16,
    /// `Some(bits)`: LPIs `8192..2^bits` exist (an ITS is present); must match the
    /// its-server's `Config::lpi_id_bits`. `None`: no LPIs.
    pub lpi_id_bits: Option<u8>,
}

/// Why [`crate::Vgic::new`] refused a [`Config`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// `vcpus` is 0 or above the `VCPUS` capacity.
    Vcpus,
    /// `spis` is above [`MAX_SPIS`].
    Spis,
    /// `lpi_id_bits` is outside `MIN_LPI_ID_BITS..=MAX_LPI_ID_BITS`, or its LPIs do not
    /// fit the `LPIS` capacity.
    LpiIdBits,
}

/// Why [`crate::Vgic::attach_passthrough_spi`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAnSpi(pub u32);

const TYPER_LPIS: u32 = 1 << 17;
const TYPER_ID_BITS_SHIFT: u32 = 19;
/// INTID bits without LPIs: INTIDs below 1024.
const SPI_ID_BITS: u32 = 10;

impl Config {
    /// Checks the configuration against the server's capacities.
    pub(crate) const fn validate(&self, vcpus: usize, lpis: usize) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus as usize > vcpus {
            return Err(ConfigError::Vcpus);
        }
        if self.spis as usize > MAX_SPIS {
            return Err(ConfigError::Spis);
        }
        match self.lpi_id_bits {
            Some(bits) if bits < MIN_LPI_ID_BITS || bits > MAX_LPI_ID_BITS => Err(ConfigError::LpiIdBits),
            Some(bits) if (1usize << bits) - FIRST_LPI as usize > lpis => Err(ConfigError::LpiIdBits),
            _ => Ok(()),
        }
    }

    /// One past the highest LPI INTID (8192 when there are no LPIs).
    pub(crate) const fn lpi_end(&self) -> u32 {
        match self.lpi_id_bits {
            Some(bits) => 1 << bits,
            None => FIRST_LPI,
        }
    }

    /// GICD_TYPER: ITLinesNumber covering the SPIs, IDbits, LPIS; no extended SPIs, no
    /// message-based SPIs, no security extension, no Aff3 (A3V = 0), 1 of N routing
    /// supported (No1N = 0), SGI target lists of Aff0 0-15 (RSS = 0).
    pub(crate) const fn distributor_typer(&self) -> u32 {
        let interrupt_lines = (self.spis as u32 + FIRST_SPI).div_ceil(32) - 1;
        match self.lpi_id_bits {
            Some(bits) => interrupt_lines | TYPER_LPIS | (bits as u32 - 1) << TYPER_ID_BITS_SHIFT,
            None => interrupt_lines | (SPI_ID_BITS - 1) << TYPER_ID_BITS_SHIFT,
        }
    }

    /// GICR_TYPER of vCPU `vcpu`'s redistributor: its affinity, Processor_Number = the
    /// vCPU index (the ITS's RDbase with PTA = 0), Last on the last one, PLPIS when
    /// there are LPIs; no DirectLPI (LPIs come from the ITS only), all redistributors
    /// share one LPI configuration table (CommonLPIAff = 0), no extended PPIs.
    pub(crate) const fn redistributor_typer(&self, vcpu: u16) -> u64 {
        const PLPIS: u64 = 1;
        const LAST: u64 = 1 << 4;
        const PROCESSOR_NUMBER_SHIFT: u32 = 8;
        const AFFINITY_SHIFT: u32 = 32;
        let mut typer =
            (vcpu as u64) << PROCESSOR_NUMBER_SHIFT | (vcpu_affinity(vcpu) as u64) << AFFINITY_SHIFT;
        if self.lpi_id_bits.is_some() {
            typer |= PLPIS;
        }
        if vcpu + 1 == self.vcpus {
            typer |= LAST;
        }
        typer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: Config = Config { vcpus: 4, spis: 224, lpi_id_bits: Some(16) };

    #[test]
    fn distributor_typer_describes_the_configuration() {
        // QEMU's host GICD_TYPER for the same shape is 0x037a0007: the same SPI lines, LPIs
        // and 16 ID bits, plus A3V and No1N, which this distributor does not set.
        assert_eq!(CONFIG.distributor_typer(), 0x007a_0007);
        let no_lpis = Config { spis: 0, lpi_id_bits: None, ..CONFIG };
        assert_eq!(no_lpis.distributor_typer(), 9 << 19, "one line, 10 ID bits, no LPIs");
        let odd = Config { spis: 33, ..no_lpis };
        assert_eq!(odd.distributor_typer() & 0x1f, 2, "INTIDs up to 95 cover SPI 64");
        let full = Config { spis: MAX_SPIS as u16, ..no_lpis };
        assert_eq!(full.distributor_typer() & 0x1f, 31);
    }

    #[test]
    fn redistributor_typer_names_the_vcpu_and_marks_the_last() {
        let typer = CONFIG.redistributor_typer(3);
        assert_eq!(typer & 1, 1, "PLPIS");
        assert_eq!(typer >> 4 & 1, 1, "Last");
        assert_eq!(typer >> 8 & 0xffff, 3, "Processor_Number");
        assert_eq!(typer >> 32, 3, "Aff0 = 3");
        assert_eq!(CONFIG.redistributor_typer(0) >> 4 & 1, 0);
        let big = Config { vcpus: 20, spis: 0, lpi_id_bits: None };
        assert_eq!(big.redistributor_typer(17) >> 32, 0x101, "Aff1 = 1, Aff0 = 1");
        assert_eq!(big.redistributor_typer(17) & 1, 0, "no PLPIS without LPIs");
    }

    #[test]
    fn affinity_convention_round_trips() {
        for vcpu in 0..300 {
            assert_eq!(vcpu_with_affinity(vcpu_affinity(vcpu)), Some(vcpu));
        }
        assert_eq!(vcpu_with_affinity(0x10), None, "Aff0 16 is never used");
        assert_eq!(vcpu_with_affinity(1 << 16), None, "Aff2 is always 0");
        assert_eq!(vcpu_with_affinity(1 << 24), None, "Aff3 is always 0");
    }

    #[test]
    fn validation_rejects_each_bad_field() {
        assert_eq!(CONFIG.validate(4, 1 << 16), Ok(()));
        assert_eq!(CONFIG.validate(3, 1 << 16), Err(ConfigError::Vcpus));
        assert_eq!(Config { vcpus: 0, ..CONFIG }.validate(4, 1 << 16), Err(ConfigError::Vcpus));
        assert_eq!(Config { spis: 989, ..CONFIG }.validate(4, 1 << 16), Err(ConfigError::Spis));
        assert_eq!(
            Config { lpi_id_bits: Some(13), ..CONFIG }.validate(4, 1 << 16),
            Err(ConfigError::LpiIdBits)
        );
        assert_eq!(
            Config { lpi_id_bits: Some(17), ..CONFIG }.validate(4, 1 << 17),
            Err(ConfigError::LpiIdBits)
        );
        assert_eq!(CONFIG.validate(4, (1 << 16) - 8193), Err(ConfigError::LpiIdBits), "capacity");
        assert_eq!(Config { lpi_id_bits: None, ..CONFIG }.validate(4, 0), Ok(()));
    }
}
