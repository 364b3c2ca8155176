//! Command effects on the vgic-server, errors, quotas, budgets and MAPD teardowns.

use super::*;
use crate::MsiDropped;
use crate::fakes::{CONFIG, Harness, Message, RAM_BASE, RAM_SIZE, cmd};
use crate::registers::{Width, offset};

use Message::*;

const VALID: u64 = 1 << 63;

/// Collection 0 on vCPU 0; device 0 with 16 events, device 1 with 4 (2 bits); event
/// 0 of device 0 is LPI 8192.
fn mapped() -> Harness<4, 16, 4> {
    let mut harness = Harness::new();
    harness.run(&[
        cmd::mapc(0, 0, true),
        cmd::mapd(0, 4, true),
        cmd::mapd(1, 2, true),
        cmd::mapti(0, 0, 8192, 0),
    ]);
    harness
}

#[test]
fn mapc_maps_and_unmaps_a_collection() {
    let mut harness = Harness::new();
    let messages = harness.run(&[cmd::mapc(1, 1, true), cmd::mapc(1, 0, false)]);
    assert_eq!(
        messages,
        [CollectionTarget { icid: 1, vcpu: Some(1) }, CollectionTarget { icid: 1, vcpu: None }]
    );
}

#[test]
fn an_lpi_lives_from_mapti_to_discard() {
    let mut harness = Harness::new();
    let messages = harness.run(&[
        cmd::mapc(0, 1, true),
        cmd::mapd(2, 4, true),
        cmd::mapti(2, 3, 8200, 0),
        cmd::int(2, 3),
        cmd::clear(2, 3),
        cmd::inv(2, 3),
        cmd::discard(2, 3),
        cmd::int(2, 3),
    ]);
    assert_eq!(
        messages,
        [
            CollectionTarget { icid: 0, vcpu: Some(1) },
            LpiMap { vintid: 8200, icid: 0 },
            LpiSetPending { vintid: 8200 },
            LpiClearPending { vintid: 8200 },
            ReloadConfig(Reload::Lpi(8200)),
            LpiUnmap { vintid: 8200 },
        ]
    );
    assert_eq!(harness.msi(2, 3), Err(MsiDropped::Untranslated(CommandError::EventUnmapped(3))));
}

#[test]
fn mapi_uses_the_event_id_as_the_lpi() {
    let config = Config { max_devices: 1, max_events_per_device: 8200, ..CONFIG };
    let mut harness = Harness::<1, 8200, 4>::with_config(config);
    let messages = harness.run(&[cmd::mapd(0, 14, true), cmd::mapi(0, 8195, 2)]);
    assert_eq!(messages, [LpiMap { vintid: 8195, icid: 2 }]);
}

#[test]
fn movi_moves_an_lpi_to_a_mapped_collection_only() {
    let mut harness = mapped();
    let messages =
        harness.run(&[cmd::mapc(1, 1, true), cmd::movi(0, 0, 1), cmd::movi(0, 0, 2), cmd::int(0, 0)]);
    assert_eq!(
        messages,
        [
            CollectionTarget { icid: 1, vcpu: Some(1) },
            LpiMove { vintid: 8192, icid: 1 },
            LpiSetPending { vintid: 8192 },
        ]
    );
    // The LPI's collection is now 1: unmapping 1 stops delivery.
    harness.run(&[cmd::mapc(1, 0, false)]);
    assert_eq!(harness.msi(0, 0), Err(MsiDropped::Untranslated(CommandError::CollectionUnmapped(1))));
}

#[test]
fn invall_sync_and_movall_name_their_targets() {
    let mut harness = mapped();
    let messages = harness.run(&[
        cmd::mapc(2, 1, true),
        cmd::invall(2),
        cmd::sync(1),
        cmd::movall(0, 1),
        cmd::movall(1, 1),
    ]);
    assert_eq!(
        messages,
        [
            CollectionTarget { icid: 2, vcpu: Some(1) },
            ReloadConfig(Reload::Collection(2)),
            Sync { vcpu: 1 },
            MoveAll { from_vcpu: 0, to_vcpu: 1 },
        ]
    );
}

#[test]
fn mapd_v0_unmaps_each_event_then_forgets_the_device() {
    let mut harness = mapped();
    harness.run(&[cmd::mapti(0, 5, 8300, 0), cmd::mapti(0, 15, 8301, 3)]);
    let messages = harness.run(&[cmd::mapd(0, 4, false)]);
    assert_eq!(messages, [LpiUnmap { vintid: 8192 }, LpiUnmap { vintid: 8300 }, LpiUnmap { vintid: 8301 }]);
    assert_eq!(harness.msi(0, 5), Err(MsiDropped::Untranslated(CommandError::DeviceUnmapped(0))));
    // The LPIs are free again, for any device.
    let messages =
        harness.run(&[cmd::mapti(1, 0, 8300, 0), cmd::mapd(0, 1, true), cmd::mapti(0, 1, 8192, 0)]);
    assert_eq!(messages, [LpiMap { vintid: 8300, icid: 0 }, LpiMap { vintid: 8192, icid: 0 }]);
}

#[test]
fn mapd_v1_over_a_mapped_device_first_discards_its_events() {
    let mut harness = mapped();
    harness.run(&[cmd::mapti(0, 9, 8209, 0)]);
    let messages =
        harness.run(&[cmd::mapd(0, 2, true), cmd::mapti(0, 3, 8203, 0), cmd::mapti(0, 4, 8204, 0)]);
    assert_eq!(
        messages,
        [LpiUnmap { vintid: 8192 }, LpiUnmap { vintid: 8209 }, LpiMap { vintid: 8203, icid: 0 }]
    );
    assert_eq!(harness.msi(0, 3), Ok(()));
}

#[test]
fn mapd_v0_of_an_unmapped_device_does_nothing() {
    let mut harness = Harness::new();
    assert_eq!(harness.run(&[cmd::mapd(3, 4, false), cmd::sync(0)]), [Sync { vcpu: 0 }]);
}

#[test]
fn mapti_to_an_unmapped_collection_takes_effect_when_it_is_mapped() {
    let mut harness = mapped();
    let messages = harness.run(&[cmd::mapti(0, 1, 8193, 3), cmd::int(0, 1)]);
    assert_eq!(messages, [LpiMap { vintid: 8193, icid: 3 }]);
    assert_eq!(harness.msi(0, 1), Err(MsiDropped::Untranslated(CommandError::CollectionUnmapped(3))));
    let messages = harness.run(&[cmd::mapc(3, 1, true), cmd::int(0, 1)]);
    assert_eq!(messages, [CollectionTarget { icid: 3, vcpu: Some(1) }, LpiSetPending { vintid: 8193 }]);
    assert_eq!(harness.msi(0, 1), Ok(()));
    assert_eq!(harness.vgic.take(), [LpiSetPending { vintid: 8193 }]);
}

#[test]
fn an_lpi_mapped_from_another_event_is_refused() {
    let mut harness = mapped();
    let messages = harness.run(&[cmd::mapti(1, 0, 8192, 0), cmd::mapti(0, 1, 8192, 0), cmd::int(1, 0)]);
    assert_eq!(messages, []);
    assert_eq!(harness.msi(0, 0), Ok(()));
}

#[test]
fn a_discarded_event_can_be_mapped_to_a_new_lpi() {
    let mut harness = mapped();
    let messages = harness.run(&[
        cmd::discard(0, 0),
        cmd::mapti(0, 0, 8300, 0),
        cmd::int(0, 0),
        cmd::mapti(1, 1, 8192, 0),
        cmd::int(1, 1),
    ]);
    assert_eq!(
        messages,
        [
            LpiUnmap { vintid: 8192 },
            LpiMap { vintid: 8300, icid: 0 },
            LpiSetPending { vintid: 8300 },
            LpiMap { vintid: 8192, icid: 0 },
            LpiSetPending { vintid: 8192 },
        ]
    );
}

#[test]
fn every_error_is_dropped_and_the_queue_goes_on() {
    use CommandError::*;
    let cases: &[([u64; 4], CommandError)] = &[
        ([0, 0, 0, 0], UnknownCommand(0)),
        ([0x2a, 0, 0, 0], UnknownCommand(0x2a)),
        (cmd::mapd(4, 4, true), DeviceOutOfRange(4)),
        (cmd::mapd(u32::MAX, 4, false), DeviceOutOfRange(u32::MAX)),
        (cmd::mapd(2, 5, true), IttTooLarge(5)),
        (cmd::mapd(2, 32, true), IttTooLarge(32)),
        // ITTs (of 256-byte aligned addresses) from the end of RAM, below it, and at 0.
        (cmd::mapd_at(2, 1, RAM_BASE + RAM_SIZE), IttOutsideRam(RAM_BASE + RAM_SIZE)),
        (cmd::mapd_at(2, 4, RAM_BASE - 0x100), IttOutsideRam(RAM_BASE - 0x100)),
        (cmd::mapd_at(2, 1, 0), IttOutsideRam(0)),
        (cmd::mapc(4, 0, true), CollectionOutOfRange(4)),
        (cmd::mapc(1, 2, true), TargetOutOfRange(2)),
        (cmd::mapc(1, 1 << 34, true), TargetOutOfRange(1 << 34)),
        (cmd::mapti(2, 0, 8193, 0), DeviceUnmapped(2)),
        (cmd::mapti(4, 0, 8193, 0), DeviceOutOfRange(4)),
        (cmd::mapti(0, 16, 8193, 0), EventOutOfRange(16)),
        (cmd::mapti(1, 4, 8193, 0), EventOutOfRange(4)),
        (cmd::mapti(0, 1, 8191, 0), LpiOutOfRange(8191)),
        (cmd::mapti(0, 1, 1 << 16, 0), LpiOutOfRange(1 << 16)),
        (cmd::mapti(0, 1, 8193, 4), CollectionOutOfRange(4)),
        (cmd::mapti(0, 0, 8193, 0), EventAlreadyMapped(0)),
        (cmd::mapti(0, 1, 8192, 0), LpiInUse(8192)),
        (cmd::mapi(0, 1, 0), LpiOutOfRange(1)),
        (cmd::movi(0, 0, 1), CollectionUnmapped(1)),
        (cmd::movi(0, 0, 9), CollectionOutOfRange(9)),
        (cmd::movi(0, 1, 0), EventUnmapped(1)),
        (cmd::discard(0, 1), EventUnmapped(1)),
        (cmd::discard(2, 0), DeviceUnmapped(2)),
        (cmd::discard(1, 7), EventOutOfRange(7)),
        (cmd::int(0, 1), EventUnmapped(1)),
        (cmd::int(0, 16), EventOutOfRange(16)),
        (cmd::int(7, 0), DeviceOutOfRange(7)),
        (cmd::clear(3, 0), DeviceUnmapped(3)),
        (cmd::inv(0, 2), EventUnmapped(2)),
        (cmd::invall(1), CollectionUnmapped(1)),
        (cmd::invall(4), CollectionOutOfRange(4)),
        (cmd::sync(2), TargetOutOfRange(2)),
        (cmd::movall(0, 2), TargetOutOfRange(2)),
        (cmd::movall(5, 0), TargetOutOfRange(5)),
    ];
    for (words, expected) in cases {
        let mut harness = mapped();
        let mut bytes = [0; 32];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let command = Command::decode(&bytes);
        let result = harness.its.execute(command, &mut harness.vgic, &harness.ram);
        assert_eq!(result.err(), Some(*expected), "{command:?}");
        assert_eq!(harness.vgic.take(), [], "{command:?} had an effect");
        let creadr = harness.read64(offset::CREADR);
        assert_eq!(harness.run(&[*words, cmd::sync(0)]), [Sync { vcpu: 0 }], "{command:?}");
        assert_eq!(harness.read64(offset::CREADR), creadr + 64);
        // The state is unchanged: the mapped event still delivers.
        assert_eq!(harness.msi(0, 0), Ok(()), "{command:?}");
    }
}

#[test]
fn quotas_below_the_capacities_bound_the_ids() {
    let config = Config { max_devices: 3, max_events_per_device: 10, max_collections: 3, ..CONFIG };
    let mut harness = Harness::<4, 16, 4>::with_config(config);
    let messages = harness.run(&[
        cmd::mapd(3, 4, true),
        cmd::mapd(2, 4, true),
        cmd::mapti(2, 10, 8200, 0),
        cmd::mapti(2, 9, 8209, 0),
        cmd::mapc(3, 0, true),
        cmd::mapc(2, 0, true),
    ]);
    assert_eq!(messages, [LpiMap { vintid: 8209, icid: 0 }, CollectionTarget { icid: 2, vcpu: Some(0) }]);
}

#[test]
fn lpi_range_follows_lpi_id_bits() {
    let mut harness = Harness::<4, 16, 4>::with_config(Config { lpi_id_bits: 14, ..CONFIG });
    let messages =
        harness.run(&[cmd::mapd(0, 4, true), cmd::mapti(0, 0, 16384, 0), cmd::mapti(0, 1, 16383, 0)]);
    assert_eq!(messages, [LpiMap { vintid: 16383, icid: 0 }]);
}

#[test]
fn commands_outside_ram_are_dropped() {
    let mut harness = Harness::new();
    // A two-page queue whose second page lies beyond the end of RAM.
    let base = RAM_BASE + RAM_SIZE - 4096;
    assert_eq!(harness.its.write(offset::CTLR, Width::Word, 0), Progress::Idle);
    let _ = harness.write64(offset::CBASER, VALID | base | 1);
    assert_eq!(harness.its.write(offset::CTLR, Width::Word, 1), Progress::Idle);
    for (index, word) in cmd::sync(1).iter().enumerate() {
        harness.ram.write_u64(base + 4096 - 32 + 8 * index as u64, *word);
    }
    // 127 all-zero commands (unknown), the SYNC, then two commands outside RAM.
    assert_eq!(harness.write64(offset::CWRITER, 4096 + 64), Progress::MoreWork);
    assert_eq!(harness.process(usize::MAX), Progress::Idle);
    assert_eq!(harness.read64(offset::CREADR), 4096 + 64);
    assert_eq!(harness.vgic.take(), [Sync { vcpu: 1 }]);
}

/// Rewrites GITS_BASER<table> with the ITS briefly disabled.
fn set_baser<const D: usize, const E: usize, const C: usize>(
    harness: &mut Harness<D, E, C>,
    table: u64,
    value: u64,
) {
    let _ = harness.its.write(offset::CTLR, Width::Word, 0);
    let _ = harness.write64(offset::BASER + 8 * table, value);
    let _ = harness.its.write(offset::CTLR, Width::Word, 1);
    assert_eq!(harness.read64(offset::BASER + 8 * table) & VALID, value & VALID);
}

#[test]
fn mapd_and_mapc_need_an_entry_in_the_guests_tables() {
    use CommandError::*;
    use TableError::*;
    let mut harness = Harness::new();
    set_baser(&mut harness, 0, 0);
    set_baser(&mut harness, 1, 0);
    let check = |harness: &mut Harness<4, 16, 4>, command: [u64; 4], error: CommandError| {
        let mut bytes = [0; 32];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(command) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        let result = harness.its.execute(Command::decode(&bytes), &mut harness.vgic, &harness.ram);
        assert_eq!(result.err(), Some(error));
    };
    check(&mut harness, cmd::mapd(0, 4, true), DeviceTable(0, Invalid));
    check(&mut harness, cmd::mapd(0, 4, false), DeviceTable(0, Invalid));
    check(&mut harness, cmd::mapc(0, 0, true), CollectionTable(0, Invalid));
    check(&mut harness, cmd::mapc(0, 0, false), CollectionTable(0, Invalid));
    // Two-level tables: level-1 entry 0 (IDs 0..8192) valid in RAM, then a table outside
    // RAM.
    let l1 = RAM_BASE + 0x6_0000;
    harness.ram.write_u64(l1, VALID | (RAM_BASE + 0x7_0000));
    set_baser(&mut harness, 0, VALID | 1 << 62 | l1);
    set_baser(&mut harness, 1, VALID | 1 << 62 | (RAM_BASE + RAM_SIZE));
    assert_eq!(
        harness.run(&[cmd::mapd(3, 1, true), cmd::mapti(3, 1, 8193, 0)]),
        [LpiMap { vintid: 8193, icid: 0 }]
    );
    check(&mut harness, cmd::mapc(2, 0, true), CollectionTable(2, OutsideRam(RAM_BASE + RAM_SIZE)));
    harness.ram.write_u64(l1, 0);
    check(&mut harness, cmd::mapd(2, 4, true), DeviceTable(2, Unpopulated));
}

#[test]
fn flat_and_two_level_tables_bound_device_ids() {
    use CommandError::*;
    use TableError::*;
    let config = Config { max_devices: 8200, max_events_per_device: 1, ..CONFIG };
    let mut harness = Harness::<8200, 1, 4>::with_config(config);
    // A one-page flat table holds 8192 entries of 8 bytes.
    assert_eq!(
        harness.run(&[cmd::mapd(8191, 1, true), cmd::mapd(8192, 1, true), cmd::sync(0)]),
        [Sync { vcpu: 0 }]
    );
    assert_eq!(harness.its.translation.device_event_id_bits(8191), Some(1));
    assert_eq!(harness.its.translation.device_event_id_bits(8192), None);
    // Two levels: each level-1 entry covers 8192 DeviceIDs.
    let l1 = RAM_BASE + 0x6_0000;
    harness.ram.write_u64(l1 + 8, VALID);
    set_baser(&mut harness, 0, VALID | 1 << 62 | l1);
    let mut bytes = [0; 32];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(cmd::mapd(8191, 1, true)) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let result = harness.its.execute(Command::decode(&bytes), &mut harness.vgic, &harness.ram);
    assert_eq!(result.err(), Some(DeviceTable(8191, Unpopulated)));
    harness.run(&[cmd::mapd(8199, 1, true)]);
    assert_eq!(harness.its.translation.device_event_id_bits(8199), Some(1));
}

#[test]
fn a_budget_bounds_each_batch_and_creadr_lags() {
    let mut harness = Harness::new();
    assert_eq!(harness.queue(&[cmd::sync(0); 10]), Progress::MoreWork);
    assert_eq!(harness.process(3), Progress::MoreWork);
    assert_eq!(harness.read64(offset::CREADR), 3 * 32);
    assert_eq!(harness.vgic.take().len(), 3);
    assert_eq!(harness.process(7), Progress::Idle);
    assert_eq!(harness.read64(offset::CREADR), 10 * 32);
    assert_eq!(harness.vgic.take().len(), 7);
    assert_eq!(harness.process(5), Progress::Idle);
    assert_eq!(harness.process(0), Progress::Idle);
    assert_eq!(harness.vgic.take(), []);
}

#[test]
fn a_mapd_teardown_spans_batches_and_finishes_while_disabled() {
    let mut harness = mapped();
    harness.run(&[cmd::mapti(0, 1, 8193, 0), cmd::mapti(0, 2, 8194, 0), cmd::mapti(0, 3, 8195, 0)]);
    let start = harness.read64(offset::CREADR);
    let _ = harness.queue(&[cmd::mapd(0, 4, false), cmd::sync(0)]);
    // Step 1 reads the MAPD and starts the teardown; steps 2 and 3 unmap two events.
    assert_eq!(harness.process(3), Progress::MoreWork);
    assert_eq!(harness.vgic.take(), [LpiUnmap { vintid: 8192 }, LpiUnmap { vintid: 8193 }]);
    assert_eq!(harness.read64(offset::CREADR), start, "CREADR stays on the MAPD");
    assert_eq!(harness.msi(0, 1), Err(MsiDropped::Untranslated(CommandError::EventUnmapped(1))));
    assert_eq!(harness.msi(0, 3), Ok(()), "not unmapped yet");
    assert_eq!(harness.vgic.take(), [LpiSetPending { vintid: 8195 }]);
    // Disabling does not abandon the MAPD: the ITS is not quiescent until it is done.
    assert_eq!(harness.its.write(offset::CTLR, Width::Word, 0), Progress::MoreWork);
    assert_eq!(harness.its.read(offset::CTLR, Width::Word), 0);
    assert_eq!(harness.process(usize::MAX), Progress::Idle);
    assert_eq!(harness.vgic.take(), [LpiUnmap { vintid: 8194 }, LpiUnmap { vintid: 8195 }]);
    assert_eq!(harness.read64(offset::CREADR), start + 32, "the SYNC waits for the ITS to be enabled");
    assert_eq!(harness.its.read(offset::CTLR, Width::Word), 1 << 31);
    assert_eq!(harness.its.write(offset::CTLR, Width::Word, 1), Progress::MoreWork);
    assert_eq!(harness.process(usize::MAX), Progress::Idle);
    assert_eq!(harness.vgic.take(), [Sync { vcpu: 0 }]);
}

#[test]
fn a_disabled_its_runs_no_commands_and_takes_no_msis() {
    let mut harness = mapped();
    assert_eq!(harness.its.write(offset::CTLR, Width::Word, 0), Progress::Idle);
    assert_eq!(harness.queue(&[cmd::int(0, 0)]), Progress::Idle);
    assert_eq!(harness.process(usize::MAX), Progress::Idle);
    assert_eq!(harness.msi(0, 0), Err(MsiDropped::Disabled));
    assert_eq!(harness.vgic.take(), []);
    assert_eq!(harness.its.write(offset::CTLR, Width::Word, 1), Progress::MoreWork);
    assert_eq!(harness.process(usize::MAX), Progress::Idle);
    assert_eq!(harness.vgic.take(), [LpiSetPending { vintid: 8192 }]);
}

#[test]
fn msis_translate_with_the_servers_own_state_only() {
    let mut harness = mapped();
    // The guest scribbles over its device table, collection table, ITT and old commands.
    let garbage = vec![0xff; 0x9_0000];
    harness.ram.write(RAM_BASE + 0x1_0000, &garbage);
    assert_eq!(harness.msi(0, 0), Ok(()));
    assert_eq!(harness.msi(0, 1), Err(MsiDropped::Untranslated(CommandError::EventUnmapped(1))));
    assert_eq!(harness.msi(5, 0), Err(MsiDropped::Untranslated(CommandError::DeviceOutOfRange(5))));
    assert_eq!(harness.msi(1, 4), Err(MsiDropped::Untranslated(CommandError::EventOutOfRange(4))));
    assert_eq!(harness.vgic.take(), [LpiSetPending { vintid: 8192 }]);
}

/// A command that is often valid: a real command number with fields near the quotas,
/// or (one time in eight) 32 random bytes.
fn random_command(random: &mut fastrand::Rng) -> [u64; 4] {
    if random.u64(..8) == 0 {
        return [random.u64(..), random.u64(..), random.u64(..), random.u64(..)];
    }
    let device = random.u64(..6) as u32;
    let event = random.u64(..20) as u32;
    let icid = random.u64(..6) as u16;
    let vcpu = random.u64(..3);
    let vintid = if random.u64(..16) == 0 { random.u64(..) as u32 } else { 8190 + random.u64(..40) as u32 };
    match random.u64(..12) {
        0 => cmd::mapd(device, 1 + random.u64(..6) as u8, random.u64(..4) != 0),
        1 => cmd::mapc(icid, vcpu, random.u64(..4) != 0),
        2 => cmd::mapti(device, event, vintid, icid),
        3 => cmd::mapi(device, event, icid),
        4 => cmd::movi(device, event, icid),
        5 => cmd::discard(device, event),
        6 => cmd::int(device, event),
        7 => cmd::clear(device, event),
        8 => cmd::inv(device, event),
        9 => cmd::invall(icid),
        10 => cmd::sync(vcpu),
        _ => cmd::movall(vcpu, random.u64(..3)),
    }
}

#[test]
fn random_commands_never_panic_and_always_advance_creadr() {
    let mut random = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
    let mut harness = Harness::new();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let count = 1 + random.u64(..40) as usize;
        let commands: Vec<_> = (0..count).map(|_| random_command(&mut random)).collect();
        let _ = harness.queue(&commands);
        // Small budgets: a batch always moves, and the queue drains in bounded calls
        // (a command plus, for a MAPD, one step per event and one to finish).
        let mut calls = 0;
        while harness.process(1 + random.u64(..4) as usize) == Progress::MoreWork {
            calls += 1;
            assert!(calls <= count * (16 + 2), "the queue does not drain");
            if random.u64(..4) == 0 {
                let _ = harness.msi(random.u64(..6) as u32, random.u64(..20) as u32);
            }
        }
        assert_eq!(harness.read64(offset::CREADR), harness.read64(offset::CWRITER));
        // The vgic-server's view of which LPIs exist matches the ITS's.
        for vintid in (8190..8230).chain(harness.vgic.lpis.keys().copied()) {
            assert_eq!(
                harness.its.translation.lpi_in_use(vintid),
                harness.vgic.lpis.contains_key(&vintid),
                "LPI {vintid}"
            );
        }
        for message in harness.vgic.take() {
            seen.insert(core::mem::discriminant(&message));
        }
    }
    assert_eq!(seen.len(), 9, "the commands reached every kind of vgic-server message");
}

#[test]
fn reset_forgets_every_mapping_register_and_teardown() {
    let mut harness = mapped();
    // A MAPD V=0 teardown of device 0 left half done.
    let _ = harness.queue(&[cmd::mapd(0, 4, false)]);
    let _ = harness.process(2);
    harness.vgic.take();
    harness.its.reset();
    let fresh = crate::fakes::TestIts::new(CONFIG).unwrap();
    for register in [offset::CTLR, offset::CBASER, offset::CWRITER, offset::CREADR, offset::BASER] {
        assert_eq!(harness.read64(register), fresh.read(register, Width::Doubleword), "{register:#x}");
    }
    assert_eq!(harness.msi(0, 0), Err(MsiDropped::Disabled));
    assert_eq!(harness.process(usize::MAX), Progress::Idle, "no teardown goes on");
    assert!(harness.vgic.take().is_empty());
    // Set up again, the ITS has no device, collection or LPI left from before.
    let mut again = Harness::new();
    again.its = harness.its.clone();
    let fresh = Harness::new();
    for register in [offset::CBASER, offset::BASER, offset::BASER + 8] {
        let _ = again.write64(register, fresh.read64(register));
    }
    let _ = again.its.write(offset::CTLR, Width::Word, 1);
    assert_eq!(again.msi(1, 0), Err(MsiDropped::Untranslated(CommandError::DeviceUnmapped(1))));
    assert_eq!(
        again.run(&[cmd::mapd(0, 4, true), cmd::mapti(0, 0, 8192, 1)]),
        [LpiMap { vintid: 8192, icid: 1 }]
    );
}
