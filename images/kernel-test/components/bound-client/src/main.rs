//! bound-client: calls bound-server, which also takes bound-notification deliveries
//! between the calls, and checks every reply. Reports `[failures, calls]`.
#![no_std]
#![no_main]

component_rt::entry!(main);

use ipc::{Label, Message};

/// Calls (bound-server expects as many).
const CALLS: u64 = 200;

fn main() -> ! {
    let mut failures = 0u64;
    for call in 0..CALLS {
        match SERVER.call(&Message::new(Label(1)).with_words(&[call, !call])) {
            Ok(reply) if reply.label() == Label(2) && reply.body() == [call + 1] => {}
            Ok(reply) => {
                log::warn!("call {call}: reply {:?} {:?}", reply.label(), reply.body());
                failures += 1;
            }
            Err(error) => {
                log::warn!("call {call} failed: {error:?}");
                failures += 1;
            }
        }
    }
    log::info!("{CALLS} calls, {failures} failures");
    let _ = RESULTS.call(&Message::new(Label(0)).with_words(&[failures, CALLS]));
    unreachable!("the supervisor never replies")
}
