//! Bound notifications: a thread's `Recv`/`ReplyRecv` also ends with its bound
//! notification's word (label `NOTIFIED`), whichever comes first, from any CPU.

use super::*;
use ipc::endpoint_rights as ep;
use ipc::notification_rights::{SIGNAL, WAIT};

const SERVER: usize = 0;
const CLIENT: usize = 1;
const SIGNALLER: usize = 2;
const REMOTE: usize = 3;

/// The header of a notification delivery.
const NOTIFIED: u32 = ipc::NOTIFIED.0;

/// CPU 0: a server (30) receiving on endpoint 0 with notification 0 bound, holding a wait
/// cap on it (slot 1); a client (10) calling endpoint 0 (slot 0); a signaller (20) with
/// badges 1 and 2 on notification 0 (slots 0, 1) and a wait cap on notification 1 (slot
/// 2). CPU 1: a remote signaller (10) with badge 4 (slot 0) and a wait cap on notification
/// 0 (slot 1).
fn bound_server() -> System {
    let mut server = thread("server", 30, 0, &[endpoint_cap(0, ep::RECV, 0), notification_cap(0, WAIT, 0)]);
    server.tcb.bound_notification = 0;
    System::new(2, 1, 2)
        .with(server)
        .with(thread("client", 10, 0, &[endpoint_cap(0, ep::CALL, 0xC)]))
        .with(thread(
            "signaller",
            20,
            0,
            &[notification_cap(0, SIGNAL, 1), notification_cap(0, SIGNAL, 2), notification_cap(1, WAIT, 0)],
        ))
        .with(thread("remote", 10, 1, &[notification_cap(0, SIGNAL, 4), notification_cap(0, WAIT, 0)]))
}

/// What a notification delivery of `word` looks like to the receiver.
fn notified(word: u64) -> Received {
    Received { label: NOTIFIED, words: vec![], badge: word }
}

#[test]
fn a_signal_ends_a_blocked_recv_with_the_word() {
    let mut harness = bound_server().boot();
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.state(SERVER), ThreadState::BlockedRecv(0));
    assert_eq!(harness.current(0), Some(SIGNALLER));
    harness.syscall(0, Syscall::Signal, 1);
    assert_eq!(harness.result(SIGNALLER), Ok(()));
    assert_eq!(harness.current(0), Some(SERVER), "the server outranks the signaller");
    assert_eq!(harness.received(SERVER), notified(2));
    assert_eq!(harness.kernel.threads[SERVER].context.x[2..6], [0; 4]);
    assert_eq!(harness.kernel.notifications[0].word(), 0, "taken as Wait takes it");
    assert_eq!(harness.endpoint_queue(0), (false, vec![]), "off the endpoint's queue");
    assert!(harness.platform.kicks.is_empty());
}

#[test]
fn a_queued_sender_goes_before_a_word_set_before_the_recv_which_then_returns_at_once() {
    let mut harness = bound_server().boot();
    // The server and the signaller step aside so that the client queues a call.
    harness.syscall(0, Syscall::Wait, 1);
    harness.syscall(0, Syscall::Wait, 2);
    harness.message(0, Syscall::Call, 0, 5, &[1, 2]);
    assert_eq!(harness.endpoint_queue(0), (true, vec![CLIENT]));
    assert_eq!(harness.state(SERVER), ThreadState::BlockedWait(0));
    // Now the server's wait ends and its bound word is set again before it receives.
    harness.kernel.signal(0, 0, 8);
    assert_eq!(harness.schedule(0), Some(SERVER));
    assert_eq!(harness.received(SERVER).badge, 8, "Wait on the bound notification still works");
    harness.kernel.signal(0, 0, 0x30);
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.current(0), Some(SERVER), "no block");
    assert_eq!(harness.received(SERVER), Received { label: 5, words: vec![1, 2], badge: 0xC });
    assert_eq!(harness.endpoint_queue(0).1, vec![], "the call went first");
    harness.message(0, Syscall::ReplyRecv, 0, 0, &[]);
    assert_eq!(harness.current(0), Some(SERVER), "no block");
    assert_eq!(harness.received(SERVER), notified(0x30));
}

#[test]
fn reply_recv_replies_then_returns_a_ready_word() {
    let mut harness = bound_server().boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.syscall(0, Syscall::Wait, 2);
    harness.message(0, Syscall::Call, 0, 1, &[7]);
    assert_eq!(harness.current(0), Some(SERVER));
    harness.kernel.signal(0, 0, 1);
    harness.message(0, Syscall::ReplyRecv, 0, 2, &[8, 9]);
    assert_eq!(harness.current(0), Some(SERVER));
    assert_eq!(harness.received(SERVER), notified(1));
    assert_eq!(harness.state(CLIENT), ThreadState::Ready);
    assert_eq!(harness.received(CLIENT), Received { label: 2, words: vec![8, 9], badge: 0 });
    assert_eq!(harness.kernel.threads[SERVER].reply_target.get(), None);
}

#[test]
fn a_signal_from_another_cpu_kicks_the_bound_threads_cpu() {
    let mut harness = bound_server().boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.syscall(0, Syscall::Wait, 2);
    assert_eq!(harness.current(0), Some(CLIENT));
    assert_eq!(harness.current(1), Some(REMOTE));
    harness.syscall(1, Syscall::Signal, 0);
    assert_eq!(harness.platform.kicks, [0]);
    assert_eq!(harness.state(SERVER), ThreadState::Ready);
    assert_eq!(harness.schedule(0), Some(SERVER));
    assert_eq!(harness.received(SERVER), notified(4));
}

#[test]
fn an_irq_on_a_bound_notification_wakes_the_receiver() {
    let mut system = bound_server();
    system.irqs = vec![Irq { intid: 34, notification: 0, badge: 0x100, cpu: 1, ..Irq::default() }];
    let mut harness = system.boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.kernel.handle_irq(34, &mut harness.platform);
    assert_eq!(harness.platform.kicks, [0]);
    assert_eq!(harness.schedule(0), Some(SERVER));
    assert_eq!(harness.received(SERVER), notified(0x100));
}

#[test]
fn a_thread_in_wait_takes_the_word_before_the_bound_receiver() {
    let mut harness = bound_server().boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.syscall(1, Syscall::Wait, 1);
    assert_eq!(harness.state(REMOTE), ThreadState::BlockedWait(0));
    harness.syscall(0, Syscall::Signal, 0);
    assert_eq!(harness.state(SERVER), ThreadState::BlockedRecv(0));
    assert_eq!(harness.state(REMOTE), ThreadState::Ready);
    assert_eq!(harness.received(REMOTE).badge, 1);
    harness.syscall(0, Syscall::Signal, 1);
    assert_eq!(harness.current(0), Some(SERVER), "with no waiter left, the receiver gets the next");
    assert_eq!(harness.received(SERVER), notified(2));
}

#[test]
fn a_woken_receiver_leaves_the_middle_of_its_endpoints_queue() {
    let mut system = System::new(1, 1, 1);
    for index in 0..3 {
        let mut spec = thread("receiver", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]);
        if index == 1 {
            spec.tcb.bound_notification = 0;
        }
        system = system.with(spec);
    }
    let mut harness = system
        .with(thread("sender", 10, 0, &[endpoint_cap(0, ep::SEND, 3), notification_cap(0, SIGNAL, 1)]))
        .boot();
    for _ in 0..3 {
        harness.syscall(0, Syscall::Recv, 0);
    }
    assert_eq!(harness.endpoint_queue(0), (false, vec![0, 1, 2]));
    harness.syscall(0, Syscall::Signal, 1);
    assert_eq!(harness.received(1), notified(1));
    assert_eq!(harness.endpoint_queue(0), (false, vec![0, 2]));
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.endpoint_queue(0), (false, vec![0, 2, 1]));
    for receiver in [0, 2, 1] {
        harness.message(0, Syscall::Send, 0, 4, &[u64::try_from(receiver).unwrap()]);
        assert_eq!(harness.received(receiver).words, [receiver as u64]);
        harness.syscall(0, Syscall::Recv, 0);
    }
}

#[test]
fn a_thread_without_a_binding_ignores_other_words() {
    let mut harness = bound_server().boot();
    harness.kernel.signal(0, 1, 1);
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.state(SERVER), ThreadState::BlockedRecv(0), "notification 1 is not the server's");
    harness.syscall(0, Syscall::Wait, 2);
    assert_eq!(harness.received(SIGNALLER).badge, 1);
}
