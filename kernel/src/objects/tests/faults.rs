//! Faults: the thread stops, the console says so, the fault endpoint gets a message.

use super::*;
use ipc::endpoint_rights as ep;

const FAULTER: usize = 0;
const SUPERVISOR: usize = 1;
const ESR: u64 = 0x9200_0046;
const FAR: u64 = 0x10;

/// A faulter on CPU 0 (priority 20), with fault endpoint 0 and badge 99 if `reported`,
/// and a supervisor on `supervisor_cpu` (priority 10) receiving on endpoint 0.
fn system(reported: bool, supervisor_cpu: u8) -> Harness {
    let mut system = System::new(2, 1, 0).with(thread("faulter", 20, 0, &[])).with(thread(
        "supervisor",
        10,
        supervisor_cpu,
        &[endpoint_cap(0, ep::RECV, 0)],
    ));
    if reported {
        system.threads[FAULTER].tcb.fault_endpoint = 0;
        system.threads[FAULTER].tcb.fault_badge = 99;
    }
    let mut harness = system.boot();
    harness.kernel.threads[FAULTER].context.elr = 0x40_0123;
    harness
}

fn fault(harness: &mut Harness) {
    assert_eq!(harness.current(0), Some(FAULTER));
    harness.kernel.handle_fault(0, ESR, FAR, &mut harness.platform);
    harness.schedule(0);
}

fn fault_message() -> Received {
    Received {
        label: ipc::fault::COMPONENT_FAULT.0,
        words: vec![ESR, FAR, 0x40_0123, FAULTER as u64],
        badge: 99,
    }
}

#[test]
fn a_fault_stops_the_thread_for_good_and_prints_one_kernel_line() {
    let mut harness = system(false, 0);
    fault(&mut harness);
    assert_eq!(
        harness.platform.lines(),
        ["[kernel] thread faulter faulted: esr=0x92000046 far=0x10 pc=0x400123"]
    );
    assert_eq!(harness.state(FAULTER), ThreadState::Inactive);
    assert_eq!(harness.current(0), Some(SUPERVISOR));
    for _ in 0..3 {
        harness.kernel.timer_tick(0);
        assert_eq!(harness.schedule(0), Some(SUPERVISOR));
    }
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.current(0), None, "nobody sent anything, and the faulter never runs");
    assert!(harness.platform.kicks.is_empty());
}

#[test]
fn a_waiting_fault_handler_gets_the_fault_at_once() {
    let mut harness = system(true, 1);
    harness.syscall(1, Syscall::Recv, 0);
    fault(&mut harness);
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.schedule(1), Some(SUPERVISOR));
    assert_eq!(harness.received(SUPERVISOR), fault_message());
    assert_eq!(harness.state(FAULTER), ThreadState::Inactive);
    assert_eq!(harness.current(0), None);
    // Nobody waits for an answer to a fault.
    harness.syscall(1, Syscall::Reply, 0);
    assert_eq!(harness.result(SUPERVISOR), Err(Error::NoReplyTarget));
    harness.syscall(1, Syscall::ReplyRecv, 0);
    assert_eq!(harness.state(SUPERVISOR), ThreadState::BlockedRecv(0));
    assert_eq!(harness.state(FAULTER), ThreadState::Inactive);
}

#[test]
fn a_fault_queues_until_the_handler_receives() {
    let mut harness = system(true, 0);
    fault(&mut harness);
    assert_eq!(harness.state(FAULTER), ThreadState::BlockedSend(0));
    assert_eq!(harness.endpoint_queue(0), (true, vec![FAULTER]));
    assert_eq!(harness.current(0), Some(SUPERVISOR));
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.current(0), Some(SUPERVISOR));
    assert_eq!(harness.received(SUPERVISOR), fault_message());
    assert_eq!(harness.state(FAULTER), ThreadState::Inactive);
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.current(0), None);
}

#[test]
fn a_server_that_faults_leaves_its_caller_waiting() {
    let mut harness = System::new(1, 1, 0)
        .with(thread("server", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .with(thread("client", 10, 0, &[endpoint_cap(0, ep::CALL, 0)]))
        .boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.message(0, Syscall::Call, 0, 0, &[]);
    harness.kernel.handle_fault(0, ESR, FAR, &mut harness.platform);
    assert_eq!(harness.schedule(0), None);
    assert_eq!(harness.state(1), ThreadState::BlockedReply);
}
