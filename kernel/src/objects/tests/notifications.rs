//! Notifications, IRQ delivery and acknowledgement, and the control capability.

use super::*;
use ipc::notification_rights::{SIGNAL, WAIT};

const WAITER: usize = 0;
const SIGNALLER: usize = 1;

/// A waiter at `waiter_priority` and a signaller at 10 holding badges 1 and 4 (slots 0
/// and 1) on notification 0, a wait capability on notification 1 (slot 2) and one on
/// notification 0 (slot 3).
fn pair(waiter_priority: u8) -> Harness {
    System::new(1, 0, 2)
        .with(thread("waiter", waiter_priority, 0, &[notification_cap(0, WAIT, 0)]))
        .with(thread(
            "signaller",
            10,
            0,
            &[
                notification_cap(0, SIGNAL, 1),
                notification_cap(0, SIGNAL, 4),
                notification_cap(1, WAIT, 0),
                notification_cap(0, WAIT, 0),
            ],
        ))
        .boot()
}

#[test]
fn signals_before_the_wait_accumulate_and_the_wait_takes_them() {
    let mut harness = pair(5);
    assert_eq!(harness.current(0), Some(SIGNALLER));
    harness.syscall(0, Syscall::Signal, 0);
    harness.syscall(0, Syscall::Signal, 1);
    harness.syscall(0, Syscall::Signal, 0);
    assert_eq!(harness.result(SIGNALLER), Ok(()));
    assert_eq!(harness.kernel.notifications[0].word(), 0b101);
    // The signaller gets out of the way; the waiter does not block.
    harness.syscall(0, Syscall::Wait, 2);
    assert_eq!(harness.state(SIGNALLER), ThreadState::BlockedWait(1));
    assert_eq!(harness.current(0), Some(WAITER));
    harness.syscall(0, Syscall::Wait, 0);
    assert_eq!(harness.current(0), Some(WAITER));
    assert_eq!(harness.received(WAITER).badge, 0b101);
    assert_eq!(harness.kernel.notifications[0].word(), 0);
}

#[test]
fn a_signal_wakes_a_waiting_thread_with_the_badge() {
    let mut harness = pair(20);
    harness.syscall(0, Syscall::Wait, 0);
    assert_eq!(harness.state(WAITER), ThreadState::BlockedWait(0));
    assert_eq!(harness.current(0), Some(SIGNALLER));
    harness.syscall(0, Syscall::Signal, 1);
    assert_eq!(harness.result(SIGNALLER), Ok(()));
    // The waiter outranks the signaller and runs at once with the word.
    assert_eq!(harness.current(0), Some(WAITER));
    assert_eq!(harness.received(WAITER), Received { label: 0, words: vec![], badge: 4 });
    assert_eq!(harness.kernel.notifications[0].word(), 0);
    assert_eq!(harness.state(SIGNALLER), ThreadState::Ready);
}

#[test]
fn poll_takes_the_word_without_blocking() {
    let mut harness = pair(5);
    harness.syscall(0, Syscall::Poll, 3);
    assert_eq!(harness.received(SIGNALLER).badge, 0);
    assert_eq!(harness.current(0), Some(SIGNALLER));
    harness.syscall(0, Syscall::Signal, 1);
    harness.syscall(0, Syscall::Signal, 0);
    harness.syscall(0, Syscall::Poll, 3);
    assert_eq!(harness.received(SIGNALLER).badge, 5);
    harness.syscall(0, Syscall::Poll, 3);
    assert_eq!(harness.received(SIGNALLER).badge, 0);
}

#[test]
fn a_zero_badge_wakes_nobody() {
    let mut harness = System::new(1, 0, 1)
        .with(thread("waiter", 20, 0, &[notification_cap(0, WAIT, 0)]))
        .with(thread("signaller", 10, 0, &[notification_cap(0, SIGNAL, 0)]))
        .boot();
    harness.syscall(0, Syscall::Wait, 0);
    harness.syscall(0, Syscall::Signal, 0);
    assert_eq!(harness.state(WAITER), ThreadState::BlockedWait(0));
    assert_eq!(harness.current(0), Some(SIGNALLER));
}

#[test]
fn waiters_are_woken_first_come_first_served() {
    let mut harness = System::new(1, 0, 1)
        .with(thread("first", 20, 0, &[notification_cap(0, WAIT, 0)]))
        .with(thread("second", 20, 0, &[notification_cap(0, WAIT, 0)]))
        .with(thread("signaller", 10, 0, &[notification_cap(0, SIGNAL, 8)]))
        .boot();
    harness.syscall(0, Syscall::Wait, 0);
    harness.syscall(0, Syscall::Wait, 0);
    harness.syscall(0, Syscall::Signal, 0);
    assert_eq!(harness.state(0), ThreadState::Running);
    assert_eq!(harness.state(1), ThreadState::BlockedWait(0));
    assert_eq!(harness.received(0).badge, 8);
}

/// A driver on CPU `driver_cpu` holding notification 0 (slot 0) and IRQ handler 0 (slot
/// 1) for INTID 34, routed to CPU 0 with badge 0x10.
fn driver(driver_cpu: u8) -> Harness {
    let mut system = System::new(2, 0, 1).with(thread(
        "driver",
        20,
        driver_cpu,
        &[notification_cap(0, WAIT, 0), cap_of(cap_kind::IRQ_HANDLER, 0)],
    ));
    system.irqs = vec![Irq { intid: 34, notification: 0, badge: 0x10, edge: 0, cpu: 0, _reserved: [0; 6] }];
    system.boot()
}

#[test]
fn an_irq_signals_its_notification_and_the_ack_reaches_the_gic() {
    let mut harness = driver(0);
    harness.syscall(0, Syscall::Wait, 0);
    assert_eq!(harness.current(0), None);
    harness.kernel.handle_irq(34, &mut harness.platform);
    assert_eq!(harness.schedule(0), Some(0));
    assert_eq!(harness.received(0).badge, 0x10);
    assert!(harness.platform.kicks.is_empty(), "the IRQ's own CPU reschedules without a kick");
    assert!(harness.platform.acks.is_empty());
    harness.message(0, Syscall::Call, 1, ipc::invocation::IRQ_ACK.0, &[]);
    assert_eq!(harness.received(0), Received { label: 0, words: vec![], badge: 0 });
    assert_eq!(harness.platform.acks, [34]);
}

#[test]
fn an_irq_before_the_wait_is_kept_in_the_word() {
    let mut harness = driver(0);
    harness.kernel.handle_irq(34, &mut harness.platform);
    harness.kernel.handle_irq(99, &mut harness.platform);
    assert_eq!(harness.kernel.notifications[0].word(), 0x10);
    harness.syscall(0, Syscall::Wait, 0);
    assert_eq!(harness.received(0).badge, 0x10);
}

#[test]
fn an_irq_for_a_driver_on_another_cpu_kicks_that_cpu() {
    let mut harness = driver(1);
    harness.syscall(1, Syscall::Wait, 0);
    harness.kernel.handle_irq(34, &mut harness.platform);
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.schedule(1), Some(0));
    assert_eq!(harness.received(0).badge, 0x10);
}

#[test]
fn unknown_interrupts_are_ignored() {
    let mut harness = driver(0);
    harness.syscall(0, Syscall::Wait, 0);
    harness.kernel.handle_irq(35, &mut harness.platform);
    assert_eq!(harness.schedule(0), None);
    assert_eq!(harness.kernel.notifications[0].word(), 0);
}

#[test]
fn the_control_capability_shuts_down_with_the_nonce_and_status() {
    let mut harness =
        System::new(1, 0, 0).with(thread("supervisor", 1, 0, &[cap_of(cap_kind::CONTROL, 0)])).boot();
    harness.message(0, Syscall::Call, 0, ipc::invocation::CONTROL_SHUTDOWN.0, &[(7 << 32) | 3]);
    assert_eq!(harness.platform.shutdowns, [(NONCE, 3)]);
    assert_eq!(harness.result(0), Ok(()));
}
