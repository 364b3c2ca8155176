//! Priorities, round robin, Yield, and kicks of other CPUs.

use super::*;
use ipc::endpoint_rights as ep;
use ipc::notification_rights::{SIGNAL, WAIT};

#[test]
fn a_woken_thread_of_higher_priority_preempts_and_the_preempted_keeps_its_place() {
    let mut harness = System::new(1, 0, 1)
        .with(thread("low", 5, 0, &[notification_cap(0, SIGNAL, 1)]))
        .with(thread("low-too", 5, 0, &[]))
        .with(thread("high", 9, 0, &[notification_cap(0, WAIT, 0)]))
        .boot();
    let (low, low_too, high) = (0, 1, 2);
    harness.syscall(0, Syscall::Wait, 0);
    assert_eq!(harness.current(0), Some(low));
    harness.syscall(0, Syscall::Signal, 0);
    assert_eq!(harness.current(0), Some(high));
    assert_eq!(
        harness.kernel.cpus[0].run_queue(&harness.kernel.links, 5).collect::<Vec<_>>(),
        [low, low_too]
    );
    harness.syscall(0, Syscall::Wait, 0);
    assert_eq!(harness.current(0), Some(low), "back at the front of its queue");
}

#[test]
fn waking_a_lower_priority_thread_changes_nothing_now() {
    let mut system = System::new(1, 0, 2)
        .with(thread("waiter", 3, 0, &[notification_cap(0, WAIT, 0)]))
        .with(thread("busy", 5, 0, &[notification_cap(0, SIGNAL, 1), notification_cap(1, WAIT, 0)]));
    system.irqs = vec![Irq { intid: 40, notification: 1, badge: 1, ..Irq::default() }];
    let mut harness = system.boot();
    let (waiter, busy) = (0, 1);
    harness.syscall(0, Syscall::Wait, 1);
    harness.syscall(0, Syscall::Wait, 0);
    assert_eq!(harness.current(0), None);
    harness.kernel.handle_irq(40, &mut harness.platform);
    assert_eq!(harness.schedule(0), Some(busy));

    harness.load(0, Syscall::Signal as u64, 0, 0, [0; 4]);
    harness.kernel.handle_syscall(0, &mut harness.platform);
    assert_eq!(harness.state(waiter), ThreadState::Ready);
    assert!(!harness.kernel.cpus[0].reschedule_pending(), "no new choice: schedule stays a single test");
    assert_eq!(harness.schedule(0), Some(busy));
}

#[test]
fn timer_ticks_rotate_threads_of_the_top_priority() {
    let mut harness = System::new(1, 0, 0)
        .with(thread("a", 5, 0, &[]))
        .with(thread("b", 5, 0, &[]))
        .with(thread("c", 5, 0, &[]))
        .with(thread("below", 4, 0, &[]))
        .boot();
    let mut order = vec![harness.current(0).unwrap()];
    for _ in 0..6 {
        harness.kernel.timer_tick(0);
        order.push(harness.schedule(0).unwrap());
    }
    assert_eq!(order, [0, 1, 2, 0, 1, 2, 0]);
    assert_eq!(harness.state(3), ThreadState::Ready);
}

#[test]
fn a_tick_keeps_a_thread_alone_at_its_priority_running() {
    let mut harness =
        System::new(1, 0, 0).with(thread("a", 5, 0, &[])).with(thread("below", 4, 0, &[])).boot();
    harness.kernel.timer_tick(0);
    assert_eq!(harness.schedule(0), Some(0));
    assert_eq!(harness.state(0), ThreadState::Running);
}

#[test]
fn yield_lets_threads_of_the_same_priority_run() {
    let mut harness = System::new(1, 0, 0).with(thread("a", 5, 0, &[])).with(thread("b", 5, 0, &[])).boot();
    harness.syscall(0, Syscall::Yield, 0);
    assert_eq!(harness.result(0), Ok(()));
    assert_eq!(harness.current(0), Some(1));
    assert_eq!(harness.state(0), ThreadState::Ready);
    harness.syscall(0, Syscall::Yield, 0);
    assert_eq!(harness.current(0), Some(0));
}

#[test]
fn yield_alone_returns_at_once() {
    let mut harness = System::new(1, 0, 0).with(thread("a", 5, 0, &[])).boot();
    harness.syscall(0, Syscall::Yield, 0);
    assert_eq!(harness.current(0), Some(0));
    assert_eq!(harness.received(0), Received { label: 0, words: vec![], badge: 0 });
}

/// A signaller on CPU 0 and a waiter at `waiter_priority` on CPU 1, next to a busy
/// thread at priority 5 there.
fn across_cpus(waiter_priority: u8) -> Harness {
    let mut harness = System::new(2, 0, 1)
        .with(thread("signaller", 5, 0, &[notification_cap(0, SIGNAL, 1)]))
        .with(thread("waiter", waiter_priority, 1, &[notification_cap(0, WAIT, 0)]))
        .with(thread("busy", 5, 1, &[]))
        .boot();
    if harness.current(1) == Some(2) {
        harness.kernel.timer_tick(1);
        harness.schedule(1);
    }
    harness.syscall(1, Syscall::Wait, 0);
    assert_eq!(harness.current(1), Some(2));
    harness
}

#[test]
fn waking_a_thread_that_preempts_on_another_cpu_kicks_it_once() {
    let mut harness = across_cpus(9);
    harness.syscall(0, Syscall::Signal, 0);
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.current(0), Some(0), "the signaller's CPU is not disturbed");
    assert_eq!(harness.schedule(1), Some(1));
    assert_eq!(harness.received(1).badge, 1);
}

#[test]
fn waking_a_thread_that_cannot_run_yet_on_another_cpu_kicks_nobody() {
    let mut harness = across_cpus(5);
    harness.syscall(0, Syscall::Signal, 0);
    assert!(harness.platform.kicks.is_empty());
    assert_eq!(harness.state(1), ThreadState::Ready);
    assert_eq!(harness.schedule(1), Some(2));
    harness.kernel.timer_tick(1);
    assert_eq!(harness.schedule(1), Some(1), "it runs in its turn");
}

#[test]
fn waking_an_idle_cpu_kicks_it_once_even_for_two_threads() {
    let mut harness = System::new(2, 1, 0)
        .with(thread("server", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .with(thread("client", 10, 1, &[endpoint_cap(0, ep::CALL, 1)]))
        .with(thread("sender", 5, 1, &[endpoint_cap(0, ep::SEND, 2)]))
        .boot();
    let (server, client, sender) = (0, 1, 2);
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.current(0), None);
    harness.message(1, Syscall::Call, 0, 1, &[1]);
    assert_eq!(harness.platform.kicks, [0]);
    assert_eq!(harness.schedule(0), Some(server));
    assert_eq!(harness.current(1), Some(sender));
    harness.message(1, Syscall::Send, 0, 2, &[2]);
    assert_eq!(harness.current(1), None);
    harness.platform.kicks.clear();

    // The reply wakes the client and the receive wakes the sender, both on CPU 1.
    harness.message(0, Syscall::ReplyRecv, 0, 3, &[3]);
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.state(client), ThreadState::Ready);
    assert_eq!(harness.state(sender), ThreadState::Ready);
    assert_eq!(harness.schedule(1), Some(client));
}
