//! SGIs from trapped ICC_SGI*R_EL1 writes: targeting and merging.

use crate::fakes::Machine;
use crate::{Config, LrState, SgiRegister};

/// ICC_SGI1R_EL1 fields.
fn sgi1r(intid: u64, aff1: u64, target_list: u64) -> u64 {
    intid << 24 | aff1 << 16 | target_list
}
const IRM: u64 = 1 << 40;
const RS_SHIFT: u32 = 44;

/// 20 vCPUs: 0-15 have Aff1 = 0, 16-19 have Aff1 = 1.
fn machine() -> Machine<20> {
    let mut m = Machine::new(Config { vcpus: 20, spis: 0, lpi_id_bits: None });
    m.enable_distributor();
    for vcpu in 0..20 {
        m.setup_private(vcpu, 3, 0x80);
        m.setup_private(vcpu, 7, 0x80);
    }
    m
}

fn receivers(m: &Machine<20>, intid: u32) -> Vec<u16> {
    (0..20).filter(|&vcpu| m.listed(vcpu).contains(&(intid, LrState::Pending))).collect()
}

#[test]
fn the_target_list_selects_aff0_within_the_named_cluster() {
    let mut m = machine();
    m.sgi(2, sgi1r(3, 0, 0b1010_0000_0000_0001));
    assert_eq!(receivers(&m, 3), vec![0, 13, 15]);
    let mut m = machine();
    m.sgi(2, sgi1r(3, 1, 0b1001));
    assert_eq!(receivers(&m, 3), vec![16, 19]);
    m.sgi(2, sgi1r(7, 1, 0b1_0000));
    assert_eq!(receivers(&m, 7), vec![], "Aff1 = 1, Aff0 = 4: no such vCPU");
}

#[test]
fn the_range_selector_offsets_aff0() {
    let mut m = machine();
    m.sgi(0, sgi1r(3, 0, 0xffff) | 1 << RS_SHIFT);
    assert_eq!(receivers(&m, 3), vec![], "Aff0 16-31: no vCPU has them");
}

#[test]
fn routing_mode_1_targets_everyone_but_the_sender() {
    let mut m = machine();
    m.sgi(5, sgi1r(7, 0, 0) | IRM);
    let expected: Vec<u16> = (0..20).filter(|&vcpu| vcpu != 5).collect();
    assert_eq!(receivers(&m, 7), expected);
}

#[test]
fn a_vcpu_can_interrupt_itself() {
    let mut m = machine();
    m.sgi(5, sgi1r(3, 0, 1 << 5));
    assert_eq!(receivers(&m, 3), vec![5]);
    assert_eq!(m.drain(5), vec![3]);
}

#[test]
fn group_0_sgi_registers_generate_nothing() {
    let mut m = machine();
    for register in [SgiRegister::Sgi0r, SgiRegister::Asgi1r] {
        m.vgic.generate_sgi(&mut m.vcpus, 0, register, sgi1r(3, 0, 0xffff));
    }
    assert_eq!(receivers(&m, 3), vec![]);
}

#[test]
fn an_sgi_merges_with_a_pending_one_and_queues_behind_an_active_one() {
    let mut m = machine();
    m.sgi(1, sgi1r(3, 0, 1));
    m.sgi(2, sgi1r(3, 0, 1));
    assert_eq!(m.drain(0), vec![3], "two SGIs before it was taken: one interrupt");
    m.sgi(1, sgi1r(3, 0, 1));
    assert_eq!(m.ack(0), Some(3));
    m.sgi(2, sgi1r(3, 0, 1));
    assert_eq!(m.listed(0), vec![(3, LrState::PendingActive)]);
    m.eoi(0, 3);
    assert_eq!(m.drain(0), vec![3], "taken again after the first completed");
}

#[test]
fn a_disabled_sgi_stays_pending() {
    let mut m = machine();
    m.sgi(1, sgi1r(4, 0, 1));
    assert_eq!(m.listed(0), vec![]);
    assert_eq!(m.gicr_read(0, 0x1_0000 + 0x200), 1 << 4);
}
