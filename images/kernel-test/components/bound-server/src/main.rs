//! bound-server: receives calls from bound-client (same CPU) on an endpoint while its
//! bound notification, signalled by bound-signaller on the other CPU, ends its `Recv` or
//! `ReplyRecv` with label `ipc::NOTIFIED`. The signaller waits for an acknowledgement
//! before each next signal, so every signal is exactly one delivery, with the badge bit
//! of its round (alternating, as in system.toml). Reports
//! `[failures, notifications, calls]`.
#![no_std]
#![no_main]

component_rt::entry!(main);

use ipc::{Label, Message};

/// Signals bound-signaller sends, and calls bound-client makes.
const SIGNALS: u64 = 200;
const CALLS: u64 = 200;
/// Badge bits of even and odd signal rounds (bound-signaller's caps).
const ROUND_BITS: [u64; 2] = [0b01, 0b10];
/// Badge of bound-client's cap on the endpoint.
const CLIENT_BADGE: u64 = 0x5eed;

fn main() -> ! {
    let (mut notifications, mut calls, mut failures) = (0u64, 0u64, 0u64);
    let mut reply: Option<Message> = None;
    while notifications < SIGNALS || calls < CALLS {
        let received = match reply.take() {
            Some(answer) => REQUESTS.reply_recv(&answer),
            None => REQUESTS.recv(),
        };
        let (message, badge) = received.expect("receive on REQUESTS");
        if message.label() == ipc::NOTIFIED {
            let expected = ROUND_BITS[(notifications % 2) as usize];
            if badge.0 != expected || !message.body().is_empty() {
                log::warn!("notification {notifications}: word {:#x}, expected {expected:#x}", badge.0);
                failures += 1;
            }
            notifications += 1;
            ACK.signal().expect("signal ACK");
            continue;
        }
        let body = message.body();
        let expected = [calls, !calls];
        if message.label() != Label(1) || body != expected || badge.0 != CLIENT_BADGE {
            log::warn!("call {calls}: label {:?}, words {body:?}, badge {:#x}", message.label(), badge.0);
            failures += 1;
        }
        calls += 1;
        reply = Some(Message::new(Label(2)).with_words(&[body.first().map_or(0, |word| word + 1)]));
    }
    if let Some(answer) = reply {
        ipc::reply(&answer).expect("answer the last call");
    }
    log::info!("{notifications} notifications and {calls} calls received, {failures} failures");
    let _ = RESULTS.call(&Message::new(Label(0)).with_words(&[failures, notifications, calls]));
    unreachable!("the supervisor never replies")
}
