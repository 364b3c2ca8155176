//! LPIs: the its-server's messages, the property and pending tables, and overflow.

use its_server::{Reload, Vgic as _};

use super::spec::*;
use crate::fakes::{Machine, RAM_BASE};
use crate::{Config, LrState, Width};

const PTZ: u64 = 1 << 62;
const PROPERTY_TABLE: u64 = RAM_BASE + 0x1_0000;
const LPI: u32 = 8192;

fn pending_table(vcpu: u16) -> u64 {
    RAM_BASE + 0x2_0000 + vcpu as u64 * 0x1_0000
}

/// Four vCPUs with LPIs enabled, 14 ID bits, collection n on vCPU n.
fn machine() -> Machine<4> {
    let mut m = Machine::new(Config { vcpus: 4, spis: 32, lpi_id_bits: Some(14) });
    m.enable_distributor();
    m.gicr_write_sized(0, GICR_PROPBASER, Width::Doubleword, PROPERTY_TABLE | 13);
    for vcpu in 0..4 {
        m.gicr_write_sized(vcpu, GICR_PENDBASER, Width::Doubleword, pending_table(vcpu) | PTZ);
        m.gicr_write(vcpu, GICR_CTLR, 1);
        m.its().collection_target(vcpu, Some(vcpu));
    }
    m
}

fn property(m: &Machine<4>, intid: u32, priority: u8, enabled: bool) {
    m.ram.store(PROPERTY_TABLE + (intid - LPI) as u64, &[priority | enabled as u8 | 0b10]);
}

fn map(m: &mut Machine<4>, intid: u32, icid: u16, priority: u8) {
    property(m, intid, priority, true);
    m.its().lpi_map(intid, icid);
}

fn pending_bit(m: &Machine<4>, vcpu: u16, intid: u32) -> bool {
    m.ram.byte(pending_table(vcpu) + (intid / 8) as u64) >> (intid % 8) & 1 != 0
}

fn set_pending_bit(m: &Machine<4>, vcpu: u16, intid: u32) {
    let address = pending_table(vcpu) + (intid / 8) as u64;
    m.ram.store(address, &[m.ram.byte(address) | 1 << (intid % 8)]);
}

#[test]
fn mapping_reads_the_property_entry() {
    let mut m = machine();
    map(&mut m, LPI + 5, 1, 0xa4);
    m.its().lpi_set_pending(LPI + 5);
    let listed = m.vcpus.cpus[1].lrs.iter().find(|lr| lr.vintid == LPI + 5).copied().unwrap();
    assert_eq!(listed.priority, 0xa0, "priority bits [7:3] of the entry");
    assert_eq!(listed.state, LrState::Pending);
    assert!(!listed.eoi_maintenance, "an LPI completes without a trap");
    assert_eq!(m.drain(1), vec![LPI + 5]);
}

#[test]
fn a_disabled_lpi_stays_pending_until_inv_enables_it() {
    let mut m = machine();
    property(&m, LPI + 9, 0x40, false);
    m.its().lpi_map(LPI + 9, 2);
    m.its().lpi_set_pending(LPI + 9);
    assert!(m.listed(2).is_empty());
    property(&m, LPI + 9, 0x40, true);
    assert!(m.listed(2).is_empty(), "the table is read only when told");
    m.its().reload_config(Reload::Lpi(LPI + 9));
    assert_eq!(m.drain(2), vec![LPI + 9]);
}

#[test]
fn inv_of_a_now_disabled_lpi_retracts_its_pending_copy() {
    let mut m = machine();
    map(&mut m, LPI + 9, 2, 0x40);
    m.its().lpi_set_pending(LPI + 9);
    assert_eq!(m.listed(2), vec![(LPI + 9, LrState::Pending)]);
    property(&m, LPI + 9, 0x40, false);
    m.its().reload_config(Reload::Collection(2));
    assert!(m.listed(2).is_empty());
    property(&m, LPI + 9, 0x40, true);
    m.its().reload_config(Reload::Collection(2));
    assert_eq!(m.drain(2), vec![LPI + 9], "pending state was kept while disabled");
}

#[test]
fn a_property_entry_outside_ram_reads_as_disabled() {
    let mut m = machine();
    m.gicr_write(0, GICR_CTLR, 0);
    m.gicr_write_sized(0, GICR_PROPBASER, Width::Doubleword, 0x8000_0000 | 13);
    m.gicr_write(0, GICR_CTLR, 1);
    m.its().lpi_map(LPI + 1, 0);
    m.its().lpi_set_pending(LPI + 1);
    assert!(m.listed(0).is_empty());
    assert!(m.drain(0).is_empty());
}

#[test]
fn discard_retracts_a_pending_copy() {
    let mut m = machine();
    map(&mut m, LPI + 3, 0, 0x40);
    m.its().lpi_set_pending(LPI + 3);
    assert_eq!(m.listed(0), vec![(LPI + 3, LrState::Pending)]);
    let syncs = m.vcpus.cpus[0].syncs;
    m.its().lpi_unmap(LPI + 3);
    assert_eq!(m.vcpus.cpus[0].syncs, syncs + 1, "retracted after a sync of its vCPU");
    assert!(m.listed(0).is_empty(), "retracted before the call returned");
    m.its().lpi_set_pending(LPI + 3);
    assert!(m.drain(0).is_empty(), "an unmapped LPI cannot become pending");
}

#[test]
fn discard_of_an_active_lpi_lets_it_finish() {
    let mut m = machine();
    map(&mut m, LPI + 3, 0, 0x40);
    m.its().lpi_set_pending(LPI + 3);
    assert_eq!(m.ack(0), Some(LPI + 3));
    m.its().lpi_unmap(LPI + 3);
    assert_eq!(m.listed(0), vec![(LPI + 3, LrState::Active)], "forgotten, not evicted");
    // The same number mapped again while the old copy is still active: one list register.
    map(&mut m, LPI + 3, 0, 0x40);
    m.its().lpi_set_pending(LPI + 3);
    assert_eq!(m.listed(0), vec![(LPI + 3, LrState::PendingActive)]);
    m.eoi(0, LPI + 3);
    assert_eq!(m.drain(0), vec![LPI + 3]);
    map(&mut m, LPI + 4, 0, 0x40);
    m.its().lpi_set_pending(LPI + 4);
    m.its().lpi_unmap(LPI + 4);
    assert!(m.drain(0).is_empty());
}

#[test]
fn clear_drops_pending_state() {
    let mut m = machine();
    map(&mut m, LPI + 3, 0, 0x40);
    m.its().lpi_set_pending(LPI + 3);
    m.its().lpi_clear_pending(LPI + 3);
    assert!(m.listed(0).is_empty());
    assert!(m.drain(0).is_empty());
}

#[test]
fn movi_moves_pending_state_to_the_new_collection() {
    let mut m = machine();
    map(&mut m, LPI + 20, 0, 0x40);
    m.its().lpi_set_pending(LPI + 20);
    m.its().lpi_move(LPI + 20, 3);
    assert!(m.listed(0).is_empty());
    assert_eq!(m.drain(3), vec![LPI + 20]);
    m.its().lpi_set_pending(LPI + 20);
    assert_eq!(m.drain(3), vec![LPI + 20], "it stays with its new collection");
}

#[test]
fn movall_moves_every_pending_lpi_of_a_redistributor() {
    let mut m = machine();
    for offset in 0..6 {
        map(&mut m, LPI + offset, 1, 0x40 + offset as u8 * 8);
        m.its().lpi_set_pending(LPI + offset);
    }
    m.its().move_all(1, 2);
    assert!(m.listed(1).is_empty());
    assert_eq!(m.drain(2), (0..6).map(|offset| LPI + offset).collect::<Vec<_>>());
}

#[test]
fn lpis_of_an_unmapped_collection_wait_until_it_is_mapped() {
    let mut m = machine();
    map(&mut m, LPI + 7, 1, 0x40);
    m.its().lpi_set_pending(LPI + 7);
    m.its().collection_target(1, None);
    assert!(m.listed(1).is_empty(), "no target: retracted, still pending");
    m.its().collection_target(1, Some(2));
    assert_eq!(m.drain(2), vec![LPI + 7]);
}

#[test]
fn lpis_to_a_redistributor_with_lpis_disabled_are_dropped() {
    let mut m = machine();
    map(&mut m, LPI + 7, 1, 0x40);
    m.gicr_write(1, GICR_CTLR, 0);
    m.its().lpi_set_pending(LPI + 7);
    m.gicr_write(1, GICR_CTLR, 1);
    assert!(m.drain(1).is_empty());
}

#[test]
fn enabling_lpis_loads_the_pending_table() {
    let mut m = machine();
    m.gicr_write(1, GICR_CTLR, 0);
    map(&mut m, LPI + 3, 1, 0x40);
    map(&mut m, LPI + 200, 1, 0x48);
    map(&mut m, LPI + 201, 2, 0x48);
    for intid in [LPI + 3, LPI + 200, LPI + 201, LPI + 900] {
        set_pending_bit(&m, 1, intid);
    }
    m.gicr_write(1, GICR_CTLR, 1);
    assert_eq!(m.drain(1), vec![LPI + 3, LPI + 200], "mapped LPIs of this redistributor only");
    assert!(m.drain(2).is_empty());
}

#[test]
fn pending_table_zero_skips_the_scan() {
    let mut m = machine();
    m.gicr_write(1, GICR_CTLR, 0);
    map(&mut m, LPI + 3, 1, 0x40);
    set_pending_bit(&m, 1, LPI + 3);
    m.gicr_write_sized(1, GICR_PENDBASER, Width::Doubleword, pending_table(1) | PTZ);
    m.gicr_write(1, GICR_CTLR, 1);
    assert!(m.drain(1).is_empty(), "PTZ: the table is known to be zero");
}

#[test]
fn disabling_lpis_writes_the_pending_table_back() {
    let mut m = machine();
    map(&mut m, LPI + 10, 1, 0x40);
    property(&m, LPI + 11, 0x40, false);
    m.its().lpi_map(LPI + 11, 1);
    map(&mut m, LPI + 12, 1, 0x40);
    m.its().lpi_set_pending(LPI + 10);
    m.its().lpi_set_pending(LPI + 11);
    set_pending_bit(&m, 1, LPI + 12); // stale: LPI 12 is not pending
    assert_eq!(m.listed(1), vec![(LPI + 10, LrState::Pending)]);
    m.gicr_write(1, GICR_CTLR, 0);
    assert!(m.listed(1).is_empty(), "no LPI pending state while disabled");
    assert!(pending_bit(&m, 1, LPI + 10), "listed copy written back");
    assert!(pending_bit(&m, 1, LPI + 11), "disabled LPI written back");
    assert!(!pending_bit(&m, 1, LPI + 12), "not pending: cleared");
    property(&m, LPI + 11, 0x40, true);
    m.gicr_write(1, GICR_CTLR, 1);
    assert_eq!(m.drain(1), vec![LPI + 10, LPI + 11], "read back in");
}

#[test]
fn many_pending_lpis_are_each_delivered_once_in_priority_order() {
    let mut m = machine();
    let lpis: Vec<u32> = (0..128).map(|offset| LPI + 1000 + offset).collect();
    for (index, &intid) in lpis.iter().enumerate() {
        map(&mut m, intid, 0, ((index * 37 % 32) as u8) << 3);
    }
    for &intid in &lpis {
        m.its().lpi_set_pending(intid);
    }
    let taken = m.drain(0);
    let mut sorted = taken.clone();
    sorted.sort();
    assert_eq!(sorted, lpis, "each exactly once");
    let priority = |intid: u32| ((intid - LPI - 1000) * 37 % 32) as u8;
    assert!(taken.windows(2).all(|pair| priority(pair[0]) <= priority(pair[1])), "highest priority first");
    assert!(m.maintenances >= 128 / 4, "refills came from maintenance: {}", m.maintenances);
    assert!(!m.vcpus.cpus[0].underflow && !m.vcpus.cpus[0].no_pending);
}
