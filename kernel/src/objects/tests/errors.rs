//! Capability lookup and every error code; a failing call changes nothing but `x0`.

use super::*;
use ipc::{endpoint_rights as ep, notification_rights as ntfn};

const NO_RIGHTS_ENDPOINT: u32 = 0;
const EMPTY_SLOT: u32 = 1;
const NO_RIGHTS_NOTIFICATION: u32 = 2;
const IRQ: u32 = 3;
const CONTROL: u32 = 4;
const SEND_ONLY: u32 = 5;
const RECV_ONLY: u32 = 6;
const CALL_ONLY: u32 = 7;
const SIGNAL_ONLY: u32 = 8;
const WAIT_ONLY: u32 = 9;
const SLOTS: u32 = 10;

fn system() -> Harness {
    let mut system = System::new(1, 1, 1).with(thread(
        "caller",
        1,
        0,
        &[
            endpoint_cap(0, 0, 0),
            cap_of(cap_kind::NULL, 0),
            notification_cap(0, 0, 0),
            cap_of(cap_kind::IRQ_HANDLER, 0),
            cap_of(cap_kind::CONTROL, 0),
            endpoint_cap(0, ep::SEND, 0),
            endpoint_cap(0, ep::RECV, 0),
            endpoint_cap(0, ep::CALL, 0),
            notification_cap(0, ntfn::SIGNAL, 1),
            notification_cap(0, ntfn::WAIT, 0),
        ],
    ));
    system.irqs = vec![Irq { intid: 34, notification: 0, badge: 1, ..Irq::default() }];
    system.boot()
}

/// Runs one system call that must fail with `expected` and leave everything else alone.
fn expect_error(harness: &mut Harness, syscall: u64, cap: u64, info: u64, expected: Error) {
    let words = [11, 12, 13, 14];
    let caller = harness.load(0, syscall, cap, info, words);
    harness.kernel.threads[caller].context.x[6] = 66;
    let before = harness.kernel.threads[caller].context;
    harness.enter(0);
    let after = harness.kernel.threads[caller].context;
    let what = format!("syscall {syscall} cap {cap} info {info:#x}");
    assert_eq!(after.x[0], expected as u64, "{what}");
    assert_eq!(after.x[1..], before.x[1..], "{what}: only x0 changes");
    assert_eq!(harness.current(0), Some(caller), "{what}");
    assert_eq!(harness.state(caller), ThreadState::Running, "{what}");
    assert!(harness.platform.kicks.is_empty() && harness.platform.acks.is_empty(), "{what}");
    assert!(harness.platform.console.is_empty() && harness.platform.shutdowns.is_empty(), "{what}");
}

const CAP_SYSCALLS: [Syscall; 7] = [
    Syscall::Call,
    Syscall::Send,
    Syscall::Recv,
    Syscall::ReplyRecv,
    Syscall::Signal,
    Syscall::Wait,
    Syscall::Poll,
];

#[test]
fn unknown_syscall_numbers_are_illegal() {
    let mut harness = system();
    for number in [10, 11, 0x100, u64::MAX] {
        expect_error(&mut harness, number, 0, 0, Error::IllegalOperation);
    }
}

#[test]
fn slots_out_of_range_or_empty_are_invalid_capabilities() {
    let mut harness = system();
    for syscall in CAP_SYSCALLS {
        for cap in [u64::from(EMPTY_SLOT), u64::from(SLOTS), 40, u64::from(u32::MAX), 1 << 40, u64::MAX] {
            expect_error(&mut harness, syscall as u64, cap, 0, Error::InvalidCapability);
        }
    }
}

#[test]
fn capabilities_of_the_wrong_kind_are_refused() {
    let mut harness = system();
    for syscall in [Syscall::Send, Syscall::Recv, Syscall::ReplyRecv] {
        for cap in [NO_RIGHTS_NOTIFICATION, IRQ, CONTROL] {
            expect_error(&mut harness, syscall as u64, cap.into(), 0, Error::WrongObjectType);
        }
    }
    for syscall in [Syscall::Signal, Syscall::Wait, Syscall::Poll] {
        for cap in [NO_RIGHTS_ENDPOINT, IRQ, CONTROL] {
            expect_error(&mut harness, syscall as u64, cap.into(), 0, Error::WrongObjectType);
        }
    }
    // Notifications have no invocations.
    expect_error(&mut harness, Syscall::Call as u64, SIGNAL_ONLY.into(), 0, Error::WrongObjectType);
}

#[test]
fn every_operation_needs_its_right() {
    let mut harness = system();
    let cases = [
        (Syscall::Call, [NO_RIGHTS_ENDPOINT, SEND_ONLY, RECV_ONLY]),
        (Syscall::Send, [NO_RIGHTS_ENDPOINT, CALL_ONLY, RECV_ONLY]),
        (Syscall::Recv, [NO_RIGHTS_ENDPOINT, SEND_ONLY, CALL_ONLY]),
        (Syscall::ReplyRecv, [NO_RIGHTS_ENDPOINT, SEND_ONLY, CALL_ONLY]),
        (Syscall::Signal, [NO_RIGHTS_NOTIFICATION, WAIT_ONLY, WAIT_ONLY]),
        (Syscall::Wait, [NO_RIGHTS_NOTIFICATION, SIGNAL_ONLY, SIGNAL_ONLY]),
        (Syscall::Poll, [NO_RIGHTS_NOTIFICATION, SIGNAL_ONLY, SIGNAL_ONLY]),
    ];
    for (syscall, caps) in cases {
        for cap in caps {
            expect_error(&mut harness, syscall as u64, cap.into(), 0, Error::NoRights);
        }
    }
}

#[test]
fn each_right_suffices_for_its_operation() {
    let mut harness = system();
    // Signal, then Poll and Wait take the word; none of them blocks.
    for (syscall, cap) in
        [(Syscall::Signal, SIGNAL_ONLY), (Syscall::Poll, WAIT_ONLY), (Syscall::Signal, SIGNAL_ONLY)]
    {
        let caller = harness.syscall(0, syscall, cap);
        assert_eq!(harness.result(caller), Ok(()));
    }
    let caller = harness.syscall(0, Syscall::Wait, WAIT_ONLY);
    assert_eq!(harness.received(caller).badge, 1);
    // The lone thread blocks in Send, Call and Recv, so those are checked in `messages`.
}

#[test]
fn malformed_message_info_is_an_invalid_argument() {
    let mut harness = system();
    let too_long = ipc::MAX_WORDS as u64 + 1;
    let reserved_bit = 1 << 8;
    for info in [too_long, reserved_bit, 0x7f, 1 << 31] {
        for (syscall, cap) in [
            (Syscall::Call, CALL_ONLY),
            (Syscall::Send, SEND_ONLY),
            (Syscall::ReplyRecv, RECV_ONLY),
            (Syscall::Reply, 0),
            (Syscall::Call, IRQ),
            (Syscall::Call, CONTROL),
        ] {
            expect_error(&mut harness, syscall as u64, cap.into(), info, Error::InvalidArgument);
        }
    }
}

#[test]
fn debug_write_longer_than_the_buffer_is_an_invalid_argument() {
    let mut harness = system();
    for count in [ipc::MAX_DEBUG_BYTES as u64 + 1, 1 << 32, u64::MAX] {
        expect_error(&mut harness, Syscall::DebugWrite as u64, 0, count, Error::InvalidArgument);
    }
}

#[test]
fn unknown_invocation_labels_are_illegal() {
    let mut harness = system();
    for (cap, label) in [(IRQ, 0), (IRQ, 2), (CONTROL, 0), (CONTROL, 2), (IRQ, u32::MAX)] {
        let info = MessageInfo::new(Label(label), 1).unwrap().raw();
        expect_error(&mut harness, Syscall::Call as u64, cap.into(), info, Error::IllegalOperation);
    }
}

#[test]
fn shutdown_needs_its_status_word() {
    let mut harness = system();
    let info = MessageInfo::new(ipc::invocation::CONTROL_SHUTDOWN, 0).unwrap().raw();
    expect_error(&mut harness, Syscall::Call as u64, CONTROL.into(), info, Error::InvalidArgument);
}

#[test]
fn reply_without_a_caller_has_no_reply_target() {
    let mut harness = system();
    expect_error(&mut harness, Syscall::Reply as u64, 0, 0, Error::NoReplyTarget);
}
