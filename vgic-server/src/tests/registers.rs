//! Register-level behaviour, per register group, with offsets and fields written from the
//! GICv3 specification.

use super::spec::*;
use crate::fakes::{Machine, RAM_BASE};
use crate::{Config, LrState, Width};

fn machine() -> Machine<4> {
    Machine::new(Config { vcpus: 4, spis: 64, lpi_id_bits: Some(14) })
}

#[test]
fn gicd_ctlr_keeps_enables_and_reads_are_and_ds_as_one() {
    let mut m = machine();
    assert_eq!(m.gicd_read(CTLR), 1 << 4 | 1 << 6, "ARE and DS at reset, RWP clear");
    m.gicd_write(CTLR, 0xffff_ffff);
    assert_eq!(m.gicd_read(CTLR), 1 << 4 | 1 << 6 | 0b11);
    m.gicd_write(CTLR, 0);
    assert_eq!(m.gicd_read(CTLR), 1 << 4 | 1 << 6, "ARE and DS cannot be cleared");
}

#[test]
fn gicd_identification_registers() {
    let mut m = machine();
    let typer = m.gicd_read(TYPER);
    assert_eq!(typer & 0x1f, 2, "ITLinesNumber: INTIDs up to 95");
    assert_eq!(typer >> 17 & 1, 1, "LPIS");
    assert_eq!(typer >> 19 & 0x1f, 13, "IDbits: 14 bits");
    assert_eq!(typer >> 25 & 1, 0, "No1N: 1 of N supported");
    assert_eq!(m.gicd_read(IIDR) & 0xfff, 0x43b, "implementer Arm");
    assert_eq!(m.gicd_read(TYPER2), 0);
    assert_eq!(m.gicd_read(PIDR2) >> 4 & 0xf, 3, "ArchRev GICv3");
    m.gicd_write(TYPER, 0);
    assert_eq!(m.gicd_read(TYPER), typer, "read-only");
    m.gicd_write(STATUSR, 0xf);
    assert_eq!(m.gicd_read(STATUSR), 0);
}

#[test]
fn group_registers_read_as_group_1_for_implemented_spis_only() {
    let mut m = machine();
    assert_eq!(m.gicd_read(IGROUPR), 0, "INTIDs 0-31 are the redistributors'");
    assert_eq!(m.gicd_read(IGROUPR + 4), 0xffff_ffff);
    assert_eq!(m.gicd_read(IGROUPR + 8), 0xffff_ffff);
    assert_eq!(m.gicd_read(IGROUPR + 12), 0, "SPIs 96.. are not implemented");
    m.gicd_write(IGROUPR + 4, 0);
    assert_eq!(m.gicd_read(IGROUPR + 4), 0xffff_ffff, "writes ignored");
    assert_eq!(m.gicr_read(1, SGI_BASE + IGROUPR), 0xffff_ffff);
    for offset in [IGRPMODR + 4, NSACR + 8] {
        m.gicd_write(offset, 0xffff_ffff);
        assert_eq!(m.gicd_read(offset), 0, "RAZ/WI with one security state");
    }
    m.gicr_write(0, SGI_BASE + NSACR, 0xffff_ffff);
    assert_eq!(m.gicr_read(0, SGI_BASE + NSACR), 0);
}

#[test]
fn enable_set_and_clear_registers() {
    let mut m = machine();
    m.gicd_write(ISENABLER + 4, 0x8000_0001);
    assert_eq!(m.gicd_read(ISENABLER + 4), 0x8000_0001);
    assert_eq!(m.gicd_read(ICENABLER + 4), 0x8000_0001, "both read the enable state");
    m.gicd_write(ICENABLER + 4, 1);
    assert_eq!(m.gicd_read(ISENABLER + 4), 0x8000_0000);
    m.gicd_write(ISENABLER, 0xffff_ffff);
    assert_eq!(m.gicd_read(ISENABLER), 0, "SGIs/PPIs are enabled in the redistributor");
    m.gicr_write(2, SGI_BASE + ISENABLER, 0x0800_0003);
    assert_eq!(m.gicr_read(2, SGI_BASE + ISENABLER), 0x0800_0003);
    assert_eq!(m.gicr_read(1, SGI_BASE + ISENABLER), 0, "per vCPU");
    m.gicr_write(2, SGI_BASE + ICENABLER, 2);
    assert_eq!(m.gicr_read(2, SGI_BASE + ICENABLER), 0x0800_0001);
}

#[test]
fn pending_and_active_set_and_clear_registers() {
    let mut m = machine();
    m.gicd_write(ISPENDR + 4, 0x11);
    assert_eq!(m.gicd_read(ISPENDR + 4), 0x11);
    m.gicd_write(ICPENDR + 4, 0x1);
    assert_eq!(m.gicd_read(ICPENDR + 4), 0x10);
    m.gicd_write(ISACTIVER + 8, 0x4);
    assert_eq!(m.gicd_read(ISACTIVER + 8), 0x4);
    m.gicd_write(ICACTIVER + 8, 0x4);
    assert_eq!(m.gicd_read(ICACTIVER + 8), 0);
    m.gicr_write(3, SGI_BASE + ISPENDR, 0x8001);
    assert_eq!(m.gicr_read(3, SGI_BASE + ISPENDR), 0x8001);
    m.gicr_write(3, SGI_BASE + ICPENDR, 0x8000);
    assert_eq!(m.gicr_read(3, SGI_BASE + ICPENDR), 0x1);
}

#[test]
fn priorities_take_bytes_and_words_and_keep_five_bits() {
    let mut m = machine();
    m.gicd_write(IPRIORITYR + 32, 0xffa1_5f08);
    assert_eq!(m.gicd_read(IPRIORITYR + 32), 0xf8a0_5808);
    m.gicd_write_sized(IPRIORITYR + 35, Width::Byte, 0x47);
    assert_eq!(m.gicd_read_sized(IPRIORITYR + 35, Width::Byte), 0x40);
    assert_eq!(m.gicd_read(IPRIORITYR + 32), 0x40a0_5808);
    m.gicd_write(IPRIORITYR, 0xffff_ffff);
    assert_eq!(m.gicd_read(IPRIORITYR), 0, "INTIDs 0-3 are the redistributors'");
    m.gicr_write_sized(1, SGI_BASE + IPRIORITYR + 27, Width::Byte, 0x88);
    assert_eq!(m.gicr_read(1, SGI_BASE + IPRIORITYR + 24), 0x8800_0000);
    m.gicd_write_sized(IPRIORITYR + 32, Width::Halfword, 0xffff);
    assert_eq!(m.gicd_read(IPRIORITYR + 32), 0x40a0_5808, "halfword accesses are ignored");
}

#[test]
fn targets_registers_are_raz_wi_with_affinity_routing() {
    let mut m = machine();
    m.gicd_write(ITARGETSR + 32, 0x0101_0101);
    assert_eq!(m.gicd_read(ITARGETSR + 32), 0);
    m.gicd_write(SGIR, 0x0001_0001);
    assert!(m.listed(0).is_empty(), "GICD_SGIR generates nothing with ARE");
}

#[test]
fn trigger_configuration() {
    let mut m = machine();
    m.gicd_write(ICFGR + 8, 0xaaaa_aaaa);
    assert_eq!(m.gicd_read(ICFGR + 8), 0xaaaa_aaaa, "SPIs 32-47 edge-triggered");
    m.gicd_write(ICFGR + 8, 0x5555_0002);
    assert_eq!(m.gicd_read(ICFGR + 8), 0x0000_0002, "bit 0 of each field is RES0");
    assert_eq!(m.gicr_read(0, SGI_BASE + ICFGR), 0xaaaa_aaaa, "SGIs are edge-triggered");
    m.gicr_write(0, SGI_BASE + ICFGR, 0);
    assert_eq!(m.gicr_read(0, SGI_BASE + ICFGR), 0xaaaa_aaaa, "and stay so");
    assert_eq!(m.gicr_read(0, SGI_BASE + ICFGR + 4), 0, "PPIs level-sensitive at reset");
    m.gicr_write(0, SGI_BASE + ICFGR + 4, 0xffff_ffff);
    let timers = 0b11 << (2 * 11) | 0b11 << (2 * 14);
    assert_eq!(m.gicr_read(0, SGI_BASE + ICFGR + 4), 0xaaaa_aaaa & !timers, "timer PPIs stay level");
}

#[test]
fn router_takes_64_bit_and_half_accesses() {
    let mut m = machine();
    let router = IROUTER + 8 * 40;
    m.gicd_write_sized(router, Width::Doubleword, 0xff_8000_0302);
    assert_eq!(m.gicd_read_sized(router, Width::Doubleword), 0x8000_0302, "Aff3 RES0; IRM kept");
    m.gicd_write(router, 0x0000_0003);
    assert_eq!(m.gicd_read_sized(router, Width::Doubleword), 3);
    m.gicd_write(router + 4, 0xff);
    assert_eq!(m.gicd_read(router + 4), 0, "upper word RAZ/WI");
    assert_eq!(m.gicd_read_sized(IROUTER + 8 * 96, Width::Doubleword), 0, "unimplemented SPI");
    assert_eq!(m.gicd_read_sized(router + 4, Width::Doubleword), 0, "misaligned");
}

#[test]
fn other_accesses_read_as_zero_and_are_ignored() {
    let mut m = machine();
    m.gicd_write(CTLR, 2);
    assert_eq!(m.gicd_read_sized(CTLR, Width::Doubleword), 0, "64-bit access to a 32-bit register");
    assert_eq!(m.gicd_read_sized(CTLR, Width::Byte), 0);
    assert_eq!(m.gicd_read(CTLR + 2), 0);
    m.gicd_write_sized(CTLR, Width::Byte, 0);
    assert_eq!(m.gicd_read(CTLR) & 2, 2);
    assert_eq!(m.gicd_read(0x0040), 0, "no message-based SPIs");
    assert_eq!(m.gicr_read(4, GICR_TYPER), 0, "past the last redistributor");
    assert_eq!(m.gicr_read(0, 0x0040), 0, "no DirectLPI");
    assert_eq!(m.gicr_read(0, SGI_BASE + ISENABLER + 4), 0, "the SGI frame has no SPI registers");
}

#[test]
fn redistributor_typer_identifies_each_vcpu() {
    let mut m = machine();
    for vcpu in 0..4 {
        let typer = m.gicr_read_sized(vcpu, GICR_TYPER, Width::Doubleword);
        assert_eq!(typer >> 32, crate::vcpu_affinity(vcpu) as u64);
        assert_eq!(typer >> 8 & 0xffff, vcpu as u64, "Processor_Number");
        assert_eq!(typer >> 4 & 1, (vcpu == 3) as u64, "Last");
        assert_eq!(typer & 1, 1, "PLPIS");
        assert_eq!(m.gicr_read(vcpu, GICR_TYPER + 4) as u64, typer >> 32, "upper half");
        assert_eq!(m.gicr_read(vcpu, GICR_TYPER) as u64, typer & 0xffff_ffff, "lower half");
    }
    assert_eq!(m.gicr_read(0, GICR_IIDR), m.gicd_read(IIDR));
    assert_eq!(m.gicr_read(2, PIDR2) >> 4 & 0xf, 3);
    m.gicr_write(0, GICR_STATUSR, 1);
    assert_eq!(m.gicr_read(0, GICR_STATUSR), 0);
}

#[test]
fn waker_sleeps_at_reset_and_wakes() {
    let mut m = machine();
    assert_eq!(m.gicr_read(1, GICR_WAKER), 0b110, "ProcessorSleep and ChildrenAsleep");
    m.gicr_write(1, GICR_WAKER, 0);
    assert_eq!(m.gicr_read(1, GICR_WAKER), 0);
    assert_eq!(m.gicr_read(0, GICR_WAKER), 0b110, "per redistributor");
}

#[test]
fn lpi_base_registers_are_shared_and_frozen_while_enabled() {
    let mut m = machine();
    let propbaser = 0x0700_0000_4001_0f8d; // OuterCache 7, PA 0x4001_0000, RaWaWb, IDbits 13
    m.gicr_write_sized(0, GICR_PROPBASER, Width::Doubleword, propbaser | 1 << 63 | 1 << 5);
    assert_eq!(m.gicr_read_sized(2, GICR_PROPBASER, Width::Doubleword), propbaser, "shared; RES0 dropped");
    m.gicr_write_sized(1, GICR_PENDBASER, Width::Doubleword, 1 << 62 | 0x4002_0000 | 0x3ff);
    assert_eq!(
        m.gicr_read_sized(1, GICR_PENDBASER, Width::Doubleword),
        0x4002_0000 | 0x380,
        "PTZ reads as zero, RES0 bits dropped"
    );
    m.gicr_write(1, GICR_PENDBASER + 4, 0x0700_0000);
    assert_eq!(m.gicr_read_sized(1, GICR_PENDBASER, Width::Doubleword), 0x0700_0000_4002_0380);
    m.gicr_write(1, GICR_CTLR, 1);
    assert_eq!(m.gicr_read(1, GICR_CTLR), 1, "EnableLPIs; RWP clear");
    m.gicr_write_sized(1, GICR_PENDBASER, Width::Doubleword, RAM_BASE);
    m.gicr_write_sized(1, GICR_PROPBASER, Width::Doubleword, RAM_BASE);
    assert_eq!(m.gicr_read_sized(1, GICR_PENDBASER, Width::Doubleword), 0x0700_0000_4002_0380, "frozen");
    assert_eq!(m.gicr_read_sized(1, GICR_PROPBASER, Width::Doubleword), propbaser, "frozen");
    m.gicr_write(1, GICR_CTLR, 0);
    assert_eq!(m.gicr_read(1, GICR_CTLR), 0, "EnableLPIs can be cleared");
}

#[test]
fn without_lpis_the_lpi_registers_read_as_zero() {
    let mut m = Machine::<2>::new(Config { vcpus: 2, spis: 32, lpi_id_bits: None });
    assert_eq!(m.gicd_read(TYPER) >> 17 & 1, 0);
    assert_eq!(m.gicr_read_sized(0, GICR_TYPER, Width::Doubleword) & 1, 0, "no PLPIS");
    m.gicr_write(0, GICR_CTLR, 1);
    assert_eq!(m.gicr_read(0, GICR_CTLR), 0);
    m.gicr_write_sized(0, GICR_PROPBASER, Width::Doubleword, RAM_BASE);
    assert_eq!(m.gicr_read_sized(0, GICR_PROPBASER, Width::Doubleword), 0);
}

#[test]
fn any_vcpu_may_access_any_redistributor() {
    let mut m = machine();
    m.enable_distributor();
    // The accessing vCPU is not part of an MMIO access: redistributor 3's SGI frame is
    // vCPU 3's interrupts whoever writes it.
    m.setup_private(3, 5, 0x10);
    m.gicr_write(3, SGI_BASE + ISPENDR, 1 << 5);
    assert_eq!(m.listed(3), vec![(5, LrState::Pending)]);
    assert!(m.listed(0).is_empty());
}

#[test]
fn built_in_place_with_sixteen_bit_lpis() {
    use crate::{ConfigError, Vgic};
    type Large = Vgic<4, { (1 << 16) - 8192 }, 16>;
    let mut place = Box::<Large>::new_uninit();
    let config = Config { vcpus: 4, spis: 224, lpi_id_bits: Some(16) };
    let bad = Config { vcpus: 5, ..config };
    assert!(matches!(Large::init_in_place(&mut place, bad), Err(ConfigError::Vcpus)));
    let vgic = Large::init_in_place(&mut place, config).expect("valid configuration");
    let mut vcpus = crate::fakes::FakeVcpus::new(4);
    assert_eq!(vgic.read_distributor(&mut vcpus, TYPER, Width::Word), 0x007a_0007);
    let ipriority_spi_40 = IPRIORITYR + 40;
    vgic.write_distributor(&mut vcpus, ipriority_spi_40, Width::Byte, 0xff);
    assert_eq!(vgic.read_distributor(&mut vcpus, ipriority_spi_40, Width::Byte), 0xf8);
}

#[test]
fn reset_returns_every_register_to_its_reset_value() {
    let mut m = machine();
    let fresh = machine();
    m.gicd_write(CTLR, 0b11);
    m.gicd_write(ISENABLER + 4, 0x8000_0001);
    m.gicd_write(ISPENDR + 4, 0x11);
    m.gicr_write(2, SGI_BASE + ISENABLER, 0x0800_0003);
    m.gicr_write(2, SGI_BASE + ISPENDR, 0x4);
    m.vgic.reset();
    let mut fresh = fresh;
    for offset in [CTLR, ISENABLER + 4, ISPENDR + 4] {
        assert_eq!(m.gicd_read(offset), fresh.gicd_read(offset), "GICD {offset:#x}");
    }
    for offset in [SGI_BASE + ISENABLER, SGI_BASE + ISPENDR] {
        assert_eq!(m.gicr_read(2, offset), fresh.gicr_read(2, offset), "GICR {offset:#x}");
    }
    assert_eq!(m.gicd_read(ISENABLER + 4), 0);
}
