//! The races of the ITS's LPI lifetime, each as one named interleaving of the real
//! its-server and this server over the host transport, with every property of the
//! exhaustive exploration ([`super::explore`]) checked at each step: DISCARD and MAPD
//! (V=0) while the LPI is pending in a list register of another vCPU, while it is active
//! there and while an MSI for it arrives; MOVI and MOVALL while it is pending; INT after
//! DISCARD; a discarded EventID mapped again to a new LPI.

use super::commands::Command::{self, *};
use super::explore::{LOW, LPIS, Scenario, Step, World};
use crate::LrState::*;

use Step::{Ack, Eoi, Its, Msi};

/// Device 0 with events 0 and 1 (LPIs 8192 and 8193) in collection 0 on vCPU 1;
/// collection 1 on vCPU 2. The ITS runs these commands in its first four steps.
const MAPPED: [Command; 5] = [
    Mapd { device: 0, event_id_bits: Some(1) },
    Mapc { icid: 0, vcpu: 1 },
    Mapc { icid: 1, vcpu: 2 },
    Mapti { device: 0, event: 0, lpi: 8192, icid: 0 },
    Mapti { device: 0, event: 1, lpi: 8193, icid: 0 },
];

/// The world after [`MAPPED`] and then `more` commands, taking `steps` in between.
fn run(more: &[Command], msis: u8, steps: &[Step]) -> World {
    let script: Vec<Command> = MAPPED.iter().chain(more).copied().collect();
    let scenario = Scenario::new(&script, [LOW; LPIS.len()], None);
    World::run(&scenario, msis, steps)
}

/// `count` ITS steps.
fn its(count: usize) -> Vec<Step> {
    vec![Its; count]
}

fn steps(parts: &[&[Step]]) -> Vec<Step> {
    parts.concat()
}

#[test]
fn discard_while_pending_in_a_list_register_of_another_vcpu() {
    let commands = [Int { device: 0, event: 0 }, Discard { device: 0, event: 0 }];
    assert_eq!(run(&commands, 0, &its(6)).listed(1), [(8192, Pending)]);
    let world = run(&commands, 0, &its(7));
    assert!(world.listed(1).is_empty(), "retracted before CREADR passed the DISCARD");
    let world = run(&commands, 0, &steps(&[&its(7), &[Ack(1)]]));
    assert!(world.delivered.is_empty());
}

#[test]
fn discard_while_active_on_another_vcpu() {
    let commands = [Int { device: 0, event: 0 }, Discard { device: 0, event: 0 }];
    let world = run(&commands, 1, &steps(&[&its(6), &[Ack(1)], &its(1), &[Msi { device: 0, event: 0 }]]));
    assert_eq!(world.listed(1), [(8192, Active)], "forgotten, not evicted: it may finish");
    let world = run(&commands, 1, &steps(&[&its(6), &[Ack(1)], &its(1), &[Eoi(1), Ack(1)]]));
    assert_eq!(world.delivered, [(1, 8192)], "delivered once, before the DISCARD");
    assert!(world.listed(1).is_empty());
}

#[test]
fn discard_while_an_msi_for_it_arrives() {
    let commands = [Discard { device: 0, event: 0 }];
    let msi = Msi { device: 0, event: 0 };
    // The MSI is handled just before the DISCARD: pending, then dropped by it.
    let world = run(&commands, 1, &steps(&[&its(5), &[msi], &its(1), &[Ack(1)]]));
    assert!(world.delivered.is_empty() && world.listed(1).is_empty());
    // Just after: it no longer translates.
    let world = run(&commands, 1, &steps(&[&its(6), &[msi, Ack(1)]]));
    assert!(world.delivered.is_empty() && world.listed(1).is_empty());
}

#[test]
fn mapd_v0_while_pending_in_a_list_register_of_another_vcpu() {
    let commands =
        [Int { device: 0, event: 0 }, Int { device: 0, event: 1 }, Mapd { device: 0, event_id_bits: None }];
    // Reading the MAPD, unmapping each event, then finishing it.
    let world = run(&commands, 0, &its(7));
    assert_eq!(world.listed(1), [(8192, Pending), (8193, Pending)]);
    let world = run(&commands, 0, &steps(&[&its(11), &[Ack(1)]]));
    assert!(world.delivered.is_empty() && world.listed(1).is_empty());
}

#[test]
fn mapd_v0_while_active_on_another_vcpu() {
    let commands = [Int { device: 0, event: 0 }, Mapd { device: 0, event_id_bits: None }];
    let world = run(&commands, 1, &steps(&[&its(6), &[Ack(1)], &its(4), &[Msi { device: 0, event: 0 }]]));
    assert_eq!(world.listed(1), [(8192, Active)], "it may finish");
    let world = run(&commands, 0, &steps(&[&its(6), &[Ack(1)], &its(4), &[Eoi(1), Ack(1)]]));
    assert_eq!(world.delivered, [(1, 8192)]);
    assert!(world.listed(1).is_empty());
}

#[test]
fn mapd_v0_while_an_msi_for_it_arrives() {
    let commands = [Mapd { device: 0, event_id_bits: None }];
    let (first, second) = (Msi { device: 0, event: 0 }, Msi { device: 0, event: 1 });
    // Mid-teardown: event 0 is unmapped already (dropped), event 1 not yet (pending, then
    // unmapped by the next step).
    let world = run(&commands, 2, &steps(&[&its(7), &[first, second]]));
    assert_eq!(world.listed(1), [(8193, Pending)]);
    let world = run(&commands, 2, &steps(&[&its(7), &[first, second], &its(2), &[Ack(1)]]));
    assert!(world.delivered.is_empty() && world.listed(1).is_empty());
}

#[test]
fn movi_while_pending() {
    let commands = [Int { device: 0, event: 0 }, Movi { device: 0, event: 0, icid: 1 }];
    let world = run(&commands, 0, &steps(&[&its(7), &[Ack(1), Ack(2)]]));
    assert_eq!(world.delivered, [(2, 8192)], "its pending state moved with it");
}

#[test]
fn movall_while_pending() {
    let commands = [Int { device: 0, event: 0 }, Int { device: 0, event: 1 }, Movall { from: 1, to: 2 }];
    assert_eq!(run(&commands, 0, &its(7)).listed(1), [(8192, Pending), (8193, Pending)]);
    let world = run(&commands, 0, &steps(&[&its(8), &[Ack(1)]]));
    assert!(world.delivered.is_empty() && world.listed(1).is_empty());
    assert_eq!(world.listed(2), [(8192, Pending), (8193, Pending)]);
    let world = run(&commands, 0, &steps(&[&its(8), &[Ack(2), Eoi(2), Ack(2)]]));
    assert_eq!(world.delivered, [(2, 8192), (2, 8193)]);
}

#[test]
fn int_after_discard() {
    let commands =
        [Discard { device: 0, event: 0 }, Int { device: 0, event: 0 }, Int { device: 0, event: 1 }];
    let world = run(&commands, 0, &steps(&[&its(8), &[Ack(1), Eoi(1), Ack(1)]]));
    assert_eq!(world.delivered, [(1, 8193)], "the INT on the discarded event is dropped");
}

#[test]
fn a_discarded_event_mapped_again_to_a_new_lpi() {
    let commands = [
        Int { device: 0, event: 0 },
        Discard { device: 0, event: 0 },
        Mapti { device: 0, event: 0, lpi: 8196, icid: 1 },
        Int { device: 0, event: 0 },
    ];
    let world =
        run(&commands, 1, &steps(&[&its(9), &[Ack(1), Ack(2), Msi { device: 0, event: 0 }, Eoi(2), Ack(2)]]));
    assert_eq!(world.delivered, [(2, 8196), (2, 8196)], "only the new LPI, on its own target");
}
