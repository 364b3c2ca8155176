//! Delivery into list registers: priority order, eviction, level and edge triggers,
//! retraction, migration, syncing reads, deactivation, EOImode, WFI wake-up and
//! hardware-linked interrupts.

use super::spec::*;
use crate::fakes::{Machine, VMCR_EOI_MODE};
use crate::{Config, LrState, Trigger, Width};

fn machine() -> Machine<2> {
    let mut m = Machine::new(Config { vcpus: 2, spis: 64, lpi_id_bits: None });
    m.enable_distributor();
    // SPIs 32-63 edge-triggered, 64-95 level-sensitive.
    m.gicd_write(ICFGR + 8, 0xaaaa_aaaa);
    m.gicd_write(ICFGR + 12, 0xaaaa_aaaa);
    m
}

fn lr(m: &Machine<2>, vcpu: u16, intid: u32) -> crate::ListRegister {
    *m.vcpus.cpus[vcpu as usize]
        .lrs
        .iter()
        .find(|lr| lr.vintid == intid && lr.state != LrState::Invalid)
        .unwrap()
}

#[test]
fn the_highest_priorities_are_listed_and_taken_first() {
    let mut m = machine();
    let priorities = [(32, 0xc0), (33, 0x20), (34, 0x80), (35, 0x08), (36, 0xf8), (37, 0x40)];
    for (intid, priority) in priorities {
        m.setup_spi(intid, priority, 0);
    }
    for (intid, _) in priorities {
        m.spi_pulse(intid);
    }
    let mut listed: Vec<u32> = m.listed(0).iter().map(|&(intid, _)| intid).collect();
    listed.sort();
    assert_eq!(listed, vec![33, 34, 35, 37], "the four best of six");
    assert!(m.vcpus.cpus[0].underflow && m.vcpus.cpus[0].no_pending, "two wait: UIE and NPIE");
    assert_eq!(m.drain(0), vec![35, 33, 37, 34, 32, 36]);
    assert!(!m.vcpus.cpus[0].underflow && !m.vcpus.cpus[0].no_pending, "nothing waits");
}

#[test]
fn a_higher_priority_interrupt_displaces_a_pending_copy() {
    let mut m = machine();
    for intid in 32..37 {
        m.setup_spi(intid, 0x80, 0);
    }
    for intid in 32..36 {
        m.spi_pulse(intid);
    }
    m.gicd_write_sized(0x400 + 36, Width::Byte, 0x10);
    m.spi_pulse(36);
    assert!(m.listed(0).contains(&(36, LrState::Pending)));
    assert_eq!(m.listed(0).len(), 4);
    let taken = m.drain(0);
    assert_eq!(taken[0], 36);
    let mut rest = taken[1..].to_vec();
    rest.sort();
    assert_eq!(rest, vec![32, 33, 34, 35], "the displaced one waited and came later");
}

#[test]
fn active_copies_are_never_evicted() {
    let mut m = machine();
    for intid in 32..37 {
        m.setup_spi(intid, 0x80, 0);
    }
    m.gicd_write(ISACTIVER + 4, 0b1111);
    assert_eq!(m.listed(0).len(), 4);
    assert!(m.listed(0).iter().all(|&(_, state)| state == LrState::Active));
    m.gicd_write_sized(0x400 + 36, Width::Byte, 0x00);
    m.spi_pulse(36);
    assert!(!m.listed(0).iter().any(|&(intid, _)| intid == 36), "no room: it waits");
    assert!(m.vcpus.cpus[0].underflow, "UIE while it waits");
    assert!(!m.vcpus.cpus[0].no_pending, "NPIE would fire at once with no pending copy");
    m.gicd_write(ICACTIVER + 4, 0b0001);
    assert!(m.listed(0).contains(&(36, LrState::Pending)));
}

#[test]
fn a_level_sensitive_interrupt_is_sampled_again_after_its_eoi() {
    let mut m = machine();
    m.setup_spi(64, 0x40, 1);
    m.spi_level(64, true);
    assert!(lr(&m, 1, 64).eoi_maintenance, "the server must see the EOI of a level interrupt");
    assert_eq!(m.ack(1), Some(64));
    let before = m.maintenances;
    m.eoi(1, 64);
    assert_eq!(m.maintenances, before + 1, "EOI maintenance");
    assert_eq!(m.listed(1), vec![(64, LrState::Pending)], "line still high: pending again");
    assert_eq!(m.ack(1), Some(64));
    assert_eq!(m.gicd_read(ISPENDR + 8) & 1, 1, "acknowledged with the line high: still pending");
    assert_eq!(m.listed(1), vec![(64, LrState::PendingActive)]);
    m.eoi(1, 64);
    m.spi_level(64, false);
    assert!(m.listed(1).is_empty(), "line dropped: the pending copy is retracted");
    assert_eq!(m.gicd_read(ISPENDR + 8) & 1, 0);
}

#[test]
fn an_edge_triggered_interrupt_completes_without_a_trap() {
    let mut m = machine();
    m.setup_spi(40, 0x40, 0);
    m.spi_pulse(40);
    assert!(!lr(&m, 0, 40).eoi_maintenance);
    assert_eq!(m.ack(0), Some(40));
    m.spi_pulse(40);
    assert_eq!(m.listed(0), vec![(40, LrState::PendingActive)], "merged into the listed copy");
    let before = m.maintenances;
    m.eoi(0, 40);
    assert_eq!(m.ack(0), Some(40), "pending again in hardware");
    m.eoi(0, 40);
    assert_eq!(m.maintenances, before, "no maintenance for edge EOIs");
    assert!(m.listed(0).is_empty());
}

#[test]
fn disabling_retracts_a_pending_copy_and_keeps_it_pending() {
    let mut m = machine();
    m.setup_spi(40, 0x40, 0);
    m.spi_pulse(40);
    m.gicd_write(ICENABLER + 4, 1 << 8);
    assert!(m.listed(0).is_empty());
    assert_eq!(m.gicd_read(ISPENDR + 4), 1 << 8);
    m.gicd_write(ISENABLER + 4, 1 << 8);
    assert_eq!(m.drain(0), vec![40]);
}

#[test]
fn distributor_disable_retracts_pending_copies_but_not_active_ones() {
    let mut m = machine();
    m.setup_spi(40, 0x40, 0);
    m.setup_spi(41, 0x40, 0);
    m.spi_pulse(40);
    m.spi_pulse(41);
    let first = m.ack(0).unwrap();
    m.gicd_write(0, 0);
    assert_eq!(m.listed(0), vec![(first, LrState::Active)]);
    m.eoi(0, first);
    m.gicd_write(0, 2);
    assert_eq!(m.drain(0), vec![if first == 40 { 41 } else { 40 }]);
}

#[test]
fn retargeting_moves_a_pending_copy() {
    let mut m = machine();
    m.setup_spi(40, 0x40, 0);
    m.spi_pulse(40);
    assert_eq!(m.listed(0), vec![(40, LrState::Pending)]);
    m.gicd_write_sized(IROUTER + 8 * 40, Width::Doubleword, crate::vcpu_affinity(1) as u64);
    assert!(m.listed(0).is_empty(), "retracted after a sync of vCPU 0");
    assert_eq!(m.drain(1), vec![40]);
}

#[test]
fn retargeting_an_active_interrupt_defers_its_new_pending_state_to_its_eoi() {
    let mut m = machine();
    m.setup_spi(40, 0x40, 0);
    m.spi_pulse(40);
    assert_eq!(m.ack(0), Some(40));
    m.gicd_write_sized(IROUTER + 8 * 40, Width::Doubleword, crate::vcpu_affinity(1) as u64);
    m.spi_pulse(40);
    assert_eq!(m.listed(0), vec![(40, LrState::Active)], "it may finish on vCPU 0");
    assert!(lr(&m, 0, 40).eoi_maintenance, "the server must see it finish");
    assert!(m.listed(1).is_empty(), "not pending on one vCPU while active on another");
    m.eoi(0, 40);
    assert_eq!(m.drain(1), vec![40]);
    assert!(m.drain(0).is_empty());
}

#[test]
fn reads_see_what_the_guest_did_to_its_copies() {
    let mut m = machine();
    m.setup_spi(40, 0x40, 0);
    m.spi_pulse(40);
    m.vcpus.acknowledge(0); // in hardware: the server is not told
    let syncs = m.vcpus.cpus[0].syncs;
    assert_eq!(m.gicd_read(ISPENDR + 4), 0);
    assert_eq!(m.gicd_read(ISACTIVER + 4), 1 << 8);
    assert_eq!(m.vcpus.cpus[0].syncs, syncs + 2, "each read synced the vCPU holding the copy");
    assert_eq!(m.vcpus.cpus[1].syncs, 0, "and no other");
    m.vcpus.end_of_interrupt(0, 40);
    assert_eq!(m.gicd_read(ISACTIVER + 4), 0);
    assert!(m.listed(0).is_empty());
}

#[test]
fn icactiver_deactivates_a_listed_copy() {
    let mut m = machine();
    m.setup_spi(40, 0x40, 0);
    m.spi_pulse(40);
    assert_eq!(m.ack(0), Some(40));
    m.gicd_write(ICACTIVER + 4, 1 << 8);
    assert!(m.listed(0).is_empty());
    m.eoi(0, 40);
    assert_eq!(m.vcpus.cpus[0].eoi_count, 1, "the guest's EOI finds no list register");
    assert_eq!(m.vcpus.cpus[0].ap1r0, 0, "but drops its priority");
    m.spi_pulse(40);
    assert_eq!(m.drain(0), vec![40]);
}

#[test]
fn eoi_mode_1_deactivates_with_dir_in_hardware() {
    let mut m = machine();
    m.vcpus.cpus[0].vmcr |= VMCR_EOI_MODE;
    m.setup_spi(40, 0x40, 0);
    m.spi_pulse(40);
    assert_eq!(m.ack(0), Some(40));
    m.eoi(0, 40);
    assert_eq!(m.listed(0), vec![(40, LrState::Active)], "priority dropped, still active");
    m.spi_pulse(40);
    assert_eq!(m.listed(0), vec![(40, LrState::PendingActive)]);
    let before = m.maintenances;
    m.dir(0, 40);
    assert_eq!(m.listed(0), vec![(40, LrState::Pending)]);
    assert_eq!(m.maintenances, before, "DIR of an edge interrupt needs no trap");
    assert_eq!(m.vcpus.cpus[0].eoi_count, 0);
}

#[test]
fn a_vcpu_is_kicked_only_for_an_interrupt_it_would_take() {
    let mut m = machine();
    m.setup_spi(40, 0x80, 1);
    m.setup_spi(41, 0x40, 1);
    m.vcpus.cpus[1].vmcr = m.vcpus.cpus[1].vmcr & 0x00ff_ffff | 0x60 << 24;
    m.spi_pulse(40);
    assert_eq!(m.listed(1), vec![(40, LrState::Pending)]);
    assert_eq!(m.vcpus.cpus[1].kicks, 0, "masked by its priority mask: WFI stays blocked");
    m.spi_pulse(41);
    assert_eq!(m.vcpus.cpus[1].kicks, 1);
    assert_eq!(m.vcpus.cpus[0].kicks, 0);
}

#[test]
fn timer_ppis_are_hardware_linked_and_never_active_pending() {
    let mut m = machine();
    m.setup_private(0, 27, 0x20);
    m.vcpus.cpus[0].lines = 1 << 27;
    m.ppi_level(0, 27, true);
    let listed = lr(&m, 0, 27);
    assert_eq!(listed.hw_pintid, Some(27));
    assert!(!listed.eoi_maintenance);
    assert_eq!(m.ack(0), Some(27));
    m.ppi_level(0, 27, true);
    assert_eq!(m.listed(0), vec![(27, LrState::Active)], "a hardware-linked copy is never A+P");
    m.vcpus.cpus[0].lines = 0; // the guest reprogrammed its timer
    m.eoi(0, 27);
    assert_eq!(m.vcpus.cpus[0].hardware_deactivations, vec![27], "deactivated in hardware");
    assert_eq!(m.gicr_read(0, SGI_BASE + ISPENDR) >> 27 & 1, 0);
    assert!(m.listed(0).is_empty());
}

#[test]
fn a_disabled_timer_ppi_shows_its_live_line_as_pending() {
    let mut m = machine();
    m.vcpus.cpus[1].lines = 1 << 30;
    m.ppi_level(1, 30, true);
    assert!(m.listed(1).is_empty(), "disabled");
    assert_eq!(m.gicr_read(1, SGI_BASE + ISPENDR), 1 << 30);
    m.vcpus.cpus[1].lines = 0;
    assert_eq!(m.gicr_read(1, SGI_BASE + ISPENDR), 0, "the sync sampled the line");
    assert!(m.vcpus.released.is_empty(), "a timer's physical state is the kernel's");
}

#[test]
fn passthrough_spis_are_hardware_linked_and_released_when_cleared() {
    let mut m = machine();
    m.vgic.attach_passthrough_spi(34, Trigger::Level).unwrap();
    assert_eq!(m.vgic.attach_passthrough_spi(96, Trigger::Edge), Err(crate::NotAnSpi(96)));
    m.setup_spi(34, 0x40, 0);
    m.gicd_write(ICFGR + 8, 0xaaaa_aaaa);
    assert_eq!(m.gicd_read(ICFGR + 8) >> 4 & 3, 0, "the owner's level trigger stays");
    m.spi_level(34, true);
    assert_eq!(lr(&m, 0, 34).hw_pintid, Some(34));
    assert_eq!(m.ack(0), Some(34));
    m.eoi(0, 34);
    assert_eq!(m.vcpus.cpus[0].hardware_deactivations, vec![34]);
    assert!(m.listed(0).is_empty(), "consumed: a new physical interrupt asserts it again");
    m.spi_level(34, true);
    m.gicd_write(ICPENDR + 4, 1 << 2);
    assert!(m.listed(0).is_empty());
    assert_eq!(m.vcpus.released, vec![34], "the physical interrupt is released");
}

#[test]
fn a_passthrough_spi_completed_by_the_guest_is_never_released_by_the_server() {
    let mut m = machine();
    m.vgic.attach_passthrough_spi(34, Trigger::Level).unwrap();
    m.setup_spi(34, 0x40, 0);
    for delivery in 1..=2 {
        // The kernel signalled the server: the physical SPI is active until deactivated.
        m.spi_level(34, true);
        assert_eq!(m.ack(0), Some(34), "delivery {delivery}");
        m.eoi(0, 34);
        assert_eq!(m.vcpus.cpus[0].hardware_deactivations, vec![34; delivery]);
    }
    // Another event looks at vCPU 0 and folds the completed copies.
    m.spi_level(34, false);
    assert!(m.listed(0).is_empty());
    assert!(m.vcpus.released.is_empty(), "an IRQ_ACK would deactivate the next physical interrupt");
}
