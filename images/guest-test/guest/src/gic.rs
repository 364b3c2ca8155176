//! GICv3 facts the checks use: register offsets, field encodings, the INTIDs the checks
//! claim and the bookkeeping of interrupts received per CPU. (GICv3/GICv4 architecture
//! specification, IHI 0069.)

/// Virtual CPUs (or CPUs, on bare metal) the GIC checks use: MPIDR Aff0 0..CPUS.
pub const CPUS: usize = 4;

/// Distributor registers, by offset from GICD's base.
pub mod gicd {
    /// Control: RWP (31), ARE (4, with DS = 1), EnableGrp1 (1).
    pub const CTLR: u64 = 0x0000;
    /// Type: ITLinesNumber (4:0), LPIS (17), IDbits (23:19).
    pub const TYPER: u64 = 0x0004;
    /// Group registers, one bit per INTID.
    pub const IGROUPR: u64 = 0x0080;
    /// Set-enable registers, one bit per INTID.
    pub const ISENABLER: u64 = 0x0100;
    /// Clear-enable registers.
    pub const ICENABLER: u64 = 0x0180;
    /// Set-pending registers.
    pub const ISPENDR: u64 = 0x0200;
    /// Clear-pending registers.
    pub const ICPENDR: u64 = 0x0280;
    /// Set-active registers.
    pub const ISACTIVER: u64 = 0x0300;
    /// Clear-active registers.
    pub const ICACTIVER: u64 = 0x0380;
    /// Priority registers, one byte per INTID.
    pub const IPRIORITYR: u64 = 0x0400;
    /// Configuration registers, two bits per INTID (bit 1 of a pair: edge-triggered).
    pub const ICFGR: u64 = 0x0c00;
    /// Routing registers, 64 bits per SPI (from INTID 32): affinity, IRM (31).
    pub const IROUTER: u64 = 0x6000;
    /// CTLR.RWP: a register write is still taking effect.
    pub const CTLR_RWP: u32 = 1 << 31;
    /// CTLR.ARE (affinity routing; ARE_NS when the GIC has two security states).
    pub const CTLR_ARE: u32 = 1 << 4;
    /// CTLR.EnableGrp1 (EnableGrp1NS with two security states).
    pub const CTLR_ENABLE_GRP1: u32 = 1 << 1;
}

/// Redistributor registers, by offset from a redistributor's frames.
pub mod gicr {
    /// Bytes from one redistributor to the next (RD_base and SGI_base frames).
    pub const STRIDE: u64 = 0x2_0000;
    /// Control: EnableLPIs (0), RWP (3).
    pub const CTLR: u64 = 0x0000;
    /// Type (64 bits): affinity (63:32), Processor_Number (23:8), Last (4), PLPIS (0).
    pub const TYPER: u64 = 0x0008;
    /// Wake: ProcessorSleep (1), ChildrenAsleep (2).
    pub const WAKER: u64 = 0x0014;
    /// LPI configuration table (64 bits): address, IDbits (4:0).
    pub const PROPBASER: u64 = 0x0070;
    /// LPI pending table (64 bits): address (51:16), PTZ (62).
    pub const PENDBASER: u64 = 0x0078;
    /// The SGI_base frame's offset: the SGI and PPI registers, laid out as GICD's first.
    pub const SGI_FRAME: u64 = 0x1_0000;
    /// CTLR.EnableLPIs.
    pub const CTLR_ENABLE_LPIS: u32 = 1 << 0;
    /// CTLR.RWP.
    pub const CTLR_RWP: u32 = 1 << 3;
    /// TYPER.Last: the last redistributor.
    pub const TYPER_LAST: u64 = 1 << 4;
    /// WAKER.ProcessorSleep.
    pub const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
    /// WAKER.ChildrenAsleep.
    pub const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

    /// The affinity (Aff3.Aff2.Aff1.Aff0, as MPIDR packs Aff2..Aff0) of a TYPER value.
    pub const fn affinity(typer: u64) -> u64 {
        let affinity = typer >> 32;
        (affinity & 0xff_ffff) | (affinity >> 24) << 32
    }

    /// The Processor_Number of a TYPER value (the ITS's target with GITS_TYPER.PTA = 0).
    pub const fn processor_number(typer: u64) -> u64 {
        (typer >> 8) & 0xffff
    }
}

/// Bit `intid % 32` of the 32-bit register for `intid` in a one-bit-per-INTID array at
/// `base`: (offset, mask).
pub const fn bit_register(base: u64, intid: u32) -> (u64, u32) {
    (base + 4 * (intid / 32) as u64, 1 << (intid % 32))
}

/// Where ICC_SGI1R_EL1 sends an SGI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTargets {
    /// The CPUs whose Aff0 bits are set in the mask (Aff3..Aff1 zero, as on QEMU virt
    /// with up to 16 CPUs and in every VM xtask lays out).
    List(u16),
    /// Every CPU but the sender (Interrupt_Routing_Mode = 1).
    AllButSelf,
}

/// The ICC_SGI1R_EL1 value that sends SGI `intid` (0..16) to `targets`: TargetList (15:0),
/// INTID (27:24), IRM (40); affinity fields and range selector zero.
pub const fn sgi1r(intid: u32, targets: SgiTargets) -> u64 {
    let intid = ((intid & 0xf) as u64) << 24;
    match targets {
        SgiTargets::List(mask) => intid | mask as u64,
        SgiTargets::AllButSelf => intid | 1 << 40,
    }
}

/// ICC_CTLR_EL1.EOImode: EOIR drops priority only; DIR deactivates.
pub const ICC_CTLR_EOI_MODE: u64 = 1 << 1;
/// What ICC_IAR1_EL1 returns when nothing is pending.
pub const SPURIOUS: u32 = 1023;
/// The first LPI.
pub const FIRST_LPI: u32 = 8192;

/// INTIDs whose deliveries the IRQ handler counts: SGIs, PPIs and SPIs below 1024, then
/// [`LPIS_COUNTED`] LPIs from [`FIRST_LPI`].
pub const COUNTED_INTIDS: usize = 1024 + LPIS_COUNTED;
/// LPIs whose deliveries are counted.
pub const LPIS_COUNTED: usize = 512;

/// Where a delivery of `intid` is counted, if it is.
pub const fn tally_index(intid: u32) -> Option<usize> {
    match intid {
        0..1020 => Some(intid as usize),
        FIRST_LPI.. if ((intid - FIRST_LPI) as usize) < LPIS_COUNTED => {
            Some(1024 + (intid - FIRST_LPI) as usize)
        }
        _ => None,
    }
}

/// Deliveries per CPU of one INTID, as the checks compare them.
pub type PerCpu = [u32; CPUS];

/// Fails unless `actual` deliveries of `what` per CPU are `expected`.
pub fn expect_per_cpu(what: &str, expected: PerCpu, actual: PerCpu) -> crate::Outcome {
    if expected == actual {
        Ok(())
    } else {
        crate::fail!("{what}: expected {expected:?} per CPU, got {actual:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgi1r_fields() {
        assert_eq!(sgi1r(3, SgiTargets::List(0b1010)), 0x0300_000a);
        assert_eq!(sgi1r(15, SgiTargets::AllButSelf), 0x100_0f00_0000);
    }

    #[test]
    fn bit_registers() {
        assert_eq!(bit_register(gicd::ISPENDR, 5), (0x200, 1 << 5));
        assert_eq!(bit_register(gicd::ISPENDR, 64), (0x208, 1));
        assert_eq!(bit_register(gicd::ISENABLER, 95), (0x108, 1 << 31));
    }

    #[test]
    fn redistributor_typer_fields() {
        let typer = 0x0102_0304_0000_0210;
        assert_eq!(gicr::affinity(typer), 0x01_0002_0304);
        assert_eq!(gicr::processor_number(typer), 2);
        assert_ne!(typer & gicr::TYPER_LAST, 0);
    }

    #[test]
    fn tally_indices() {
        assert_eq!(tally_index(0), Some(0));
        assert_eq!(tally_index(1019), Some(1019));
        assert_eq!(tally_index(SPURIOUS), None);
        assert_eq!(tally_index(FIRST_LPI), Some(1024));
        assert_eq!(tally_index(FIRST_LPI + LPIS_COUNTED as u32 - 1), Some(COUNTED_INTIDS - 1));
        assert_eq!(tally_index(FIRST_LPI + LPIS_COUNTED as u32), None);
        assert_eq!(tally_index(5000), None);
    }

    #[test]
    fn per_cpu_expectation() {
        assert!(expect_per_cpu("x", [1, 0, 0, 1], [1, 0, 0, 1]).is_ok());
        let detail = expect_per_cpu("SGI 3", [1, 0, 0, 0], [1, 1, 0, 0]).unwrap_err();
        assert_eq!(detail.as_str(), "SGI 3: expected [1, 0, 0, 0] per CPU, got [1, 1, 0, 0]");
    }
}
