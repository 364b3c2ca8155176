//! Endpoints: Call/ReplyRecv, Send/Recv in both orders, FIFO queues, long messages,
//! and the one implicit reply slot.

use super::*;
use ipc::endpoint_rights as ep;

const CLIENT: usize = 0;
const SERVER: usize = 1;

/// A client (priority 10) calling a server (priority 20) on one CPU through endpoint 0.
fn client_server(client_badge: u64) -> Harness {
    System::new(1, 1, 0)
        .with(thread("client", 10, 0, &[endpoint_cap(0, ep::CALL | ep::SEND, client_badge)]))
        .with(thread("server", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .boot()
}

fn words(count: usize, seed: u64) -> Vec<u64> {
    (0..count as u64).map(|index| seed * 1000 + index).collect()
}

#[test]
fn call_and_reply_recv_round_trip_long_messages_with_badges() {
    let mut harness = client_server(0xB1);
    assert_eq!(harness.current(0), Some(SERVER));
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.state(SERVER), ThreadState::BlockedRecv(0));
    assert_eq!(harness.current(0), Some(CLIENT));

    for round in 1..=3 {
        let request = words(10, round);
        harness.message(0, Syscall::Call, 0, 7, &request);
        assert_eq!(harness.state(CLIENT), ThreadState::BlockedReply);
        assert_eq!(harness.current(0), Some(SERVER));
        assert_eq!(harness.received(SERVER), Received { label: 7, words: request, badge: 0xB1 });

        let reply = words(6, round + 100);
        harness.message(0, Syscall::ReplyRecv, 0, 8, &reply);
        assert_eq!(harness.state(SERVER), ThreadState::BlockedRecv(0));
        assert_eq!(harness.current(0), Some(CLIENT));
        assert_eq!(harness.received(CLIENT), Received { label: 8, words: reply, badge: 0 });
    }
    assert!(harness.platform.kicks.is_empty());
}

#[test]
fn the_longest_message_arrives_whole() {
    let mut harness = client_server(1);
    harness.syscall(0, Syscall::Recv, 0);
    let request = words(ipc::MAX_WORDS, 3);
    harness.message(0, Syscall::Call, 0, 1, &request);
    assert_eq!(harness.received(SERVER).words, request);
    let reply = words(ipc::MAX_WORDS, 4);
    harness.message(0, Syscall::Reply, 0, 2, &reply);
    assert_eq!(harness.received(CLIENT).words, reply);
}

#[test]
fn registers_past_the_message_length_carry_the_senders_registers() {
    let mut harness = client_server(1);
    harness.syscall(0, Syscall::Recv, 0);
    let info = MessageInfo::new(Label(1), 2).unwrap().raw();
    harness.load(0, Syscall::Call as u64, 0, info, [1, 2, 0xdead, 0xbeef]);
    harness.enter(0);
    assert_eq!(harness.kernel.threads[SERVER].context.x[2..6], [1, 2, 0xdead, 0xbeef]);
}

#[test]
fn send_then_recv_delivers_and_resumes_the_sender() {
    let mut harness = System::new(1, 1, 0)
        .with(thread("sender", 20, 0, &[endpoint_cap(0, ep::SEND, 0x5E)]))
        .with(thread("receiver", 10, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .boot();
    let (sender, receiver) = (0, 1);
    harness.message(0, Syscall::Send, 0, 3, &words(5, 1));
    assert_eq!(harness.state(sender), ThreadState::BlockedSend(0));
    assert_eq!(harness.endpoint_queue(0), (true, vec![sender]));
    assert_eq!(harness.current(0), Some(receiver));

    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.received(receiver), Received { label: 3, words: words(5, 1), badge: 0x5E });
    // The sender has the higher priority: it resumes with success at once.
    assert_eq!(harness.current(0), Some(sender));
    assert_eq!(harness.received(sender), Received { label: 0, words: vec![], badge: 0 });
    assert_eq!(harness.state(receiver), ThreadState::Ready);
    assert_eq!(harness.endpoint_queue(0), (true, vec![]));
}

#[test]
fn recv_then_send_delivers_and_the_sender_carries_on() {
    let mut harness = System::new(1, 1, 0)
        .with(thread("sender", 10, 0, &[endpoint_cap(0, ep::SEND, 0x5E)]))
        .with(thread("receiver", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .boot();
    let (sender, receiver) = (0, 1);
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.endpoint_queue(0), (false, vec![receiver]));
    harness.message(0, Syscall::Send, 0, 3, &words(2, 9));
    assert_eq!(harness.received(receiver), Received { label: 3, words: words(2, 9), badge: 0x5E });
    assert_eq!(harness.received(sender), Received { label: 0, words: vec![], badge: 0 });
    // The receiver outranks the sender, which goes back to the front of its queue.
    assert_eq!(harness.current(0), Some(receiver));
    assert_eq!(harness.state(sender), ThreadState::Ready);
    // A Send is not a Call: there is nobody to reply to.
    harness.syscall(0, Syscall::Reply, 0);
    assert_eq!(harness.result(receiver), Err(Error::NoReplyTarget));
}

#[test]
fn senders_are_received_first_come_first_served() {
    let mut system = System::new(1, 1, 0);
    for (name, priority, badge) in [("first", 30, 1), ("second", 29, 2), ("third", 28, 3)] {
        system = system.with(thread(name, priority, 0, &[endpoint_cap(0, ep::CALL, badge)]));
    }
    let mut harness = system.with(thread("receiver", 1, 0, &[endpoint_cap(0, ep::RECV, 0)])).boot();
    for sender in 0..3 {
        assert_eq!(harness.current(0), Some(sender));
        harness.message(0, Syscall::Call, 0, 0, &[sender as u64]);
    }
    assert_eq!(harness.endpoint_queue(0), (true, vec![0, 1, 2]));
    let receiver = 3;
    for sender in 0..3 {
        harness.syscall(0, Syscall::Recv, 0);
        assert_eq!(harness.current(0), Some(receiver));
        let received = harness.received(receiver);
        assert_eq!((received.badge, received.words), (sender as u64 + 1, vec![sender as u64]));
        assert_eq!(harness.state(sender), ThreadState::BlockedReply);
    }
    // Each Recv forgot the previous caller: only the last one can be answered.
    harness.message(0, Syscall::Reply, 0, 0, &[]);
    assert_eq!(harness.current(0), Some(2));
    assert_eq!(harness.state(0), ThreadState::BlockedReply);
    assert_eq!(harness.state(1), ThreadState::BlockedReply);
}

#[test]
fn receivers_are_served_first_come_first_served() {
    let mut system = System::new(1, 1, 0);
    for (name, priority) in [("first", 30), ("second", 29), ("third", 28)] {
        system = system.with(thread(name, priority, 0, &[endpoint_cap(0, ep::RECV, 0)]));
    }
    let mut harness = system.with(thread("sender", 1, 0, &[endpoint_cap(0, ep::SEND, 0)])).boot();
    for receiver in 0..3 {
        harness.syscall(0, Syscall::Recv, 0);
        assert_eq!(harness.state(receiver), ThreadState::BlockedRecv(0));
    }
    assert_eq!(harness.endpoint_queue(0), (false, vec![0, 1, 2]));
    let sender = 3;
    for (message, receiver) in [(10, 0), (11, 1), (12, 2), (13, 0)] {
        assert_eq!(harness.current(0), Some(sender));
        harness.message(0, Syscall::Send, 0, 0, &[message]);
        // The woken receiver runs, then queues again at the back.
        assert_eq!(harness.current(0), Some(receiver));
        assert_eq!(harness.received(receiver).words, [message]);
        harness.syscall(0, Syscall::Recv, 0);
    }
    assert_eq!(harness.endpoint_queue(0), (false, vec![1, 2, 0]));
}

#[test]
fn reply_wakes_the_caller_and_the_replier_carries_on() {
    let mut harness = client_server(1);
    harness.syscall(0, Syscall::Recv, 0);
    harness.message(0, Syscall::Call, 0, 1, &[5]);
    harness.message(0, Syscall::Reply, 0, 2, &[6]);
    assert_eq!(harness.received(SERVER), Received { label: 0, words: vec![], badge: 0 });
    assert_eq!(harness.current(0), Some(SERVER));
    assert_eq!(harness.state(CLIENT), ThreadState::Ready);
    assert_eq!(harness.received(CLIENT), Received { label: 2, words: vec![6], badge: 0 });
    // The slot is empty again.
    harness.syscall(0, Syscall::Reply, 0);
    assert_eq!(harness.result(SERVER), Err(Error::NoReplyTarget));
}

#[test]
fn reply_recv_without_a_caller_just_receives() {
    let mut harness = client_server(4);
    harness.message(0, Syscall::ReplyRecv, 0, 9, &[1, 2]);
    assert_eq!(harness.state(SERVER), ThreadState::BlockedRecv(0));
    harness.message(0, Syscall::Call, 0, 1, &[3]);
    assert_eq!(harness.received(SERVER), Received { label: 1, words: vec![3], badge: 4 });
}

#[test]
fn reply_recv_takes_a_queued_sender_after_replying() {
    let mut harness = System::new(2, 1, 0)
        .with(thread("client", 10, 0, &[endpoint_cap(0, ep::CALL, 1)]))
        .with(thread("server", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .with(thread("sender", 10, 1, &[endpoint_cap(0, ep::SEND, 2)]))
        .boot();
    let sender = 2;
    harness.syscall(0, Syscall::Recv, 0);
    harness.message(0, Syscall::Call, 0, 1, &[40]);
    assert_eq!(harness.current(0), Some(SERVER));
    // While the server works, a sender on the other CPU queues.
    harness.message(1, Syscall::Send, 0, 5, &[50]);
    assert_eq!(harness.state(sender), ThreadState::BlockedSend(0));
    assert_eq!(harness.current(1), None);

    harness.message(0, Syscall::ReplyRecv, 0, 2, &[41]);
    assert_eq!(harness.received(CLIENT), Received { label: 2, words: vec![41], badge: 0 });
    assert_eq!(harness.state(CLIENT), ThreadState::Ready);
    // The server took the queued message without blocking.
    assert_eq!(harness.current(0), Some(SERVER));
    assert_eq!(harness.received(SERVER), Received { label: 5, words: vec![50], badge: 2 });
    // The sender resumes on its idle CPU, which is kicked once.
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.schedule(1), Some(sender));
    assert_eq!(harness.received(sender), Received { label: 0, words: vec![], badge: 0 });
}
