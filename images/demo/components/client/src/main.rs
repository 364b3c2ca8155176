//! client: calls the echo server with messages of every length, checks each reply, and
//! reports the outcome to the supervisor.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Calls made per message length.
const ROUNDS: u64 = 10;

fn main() -> ! {
    let mut failures = 0u64;
    let mut badge_seen = 0;
    for length in 0..ipc::MAX_WORDS {
        for round in 0..ROUNDS {
            let words: [u64; ipc::MAX_WORDS] = core::array::from_fn(|i| round * 1000 + i as u64);
            let request = ipc::Message::new(ipc::Label(7)).with_words(&words[..length]);
            match ECHO.call(&request) {
                Ok(reply) => {
                    let body = reply.body();
                    let content_ok = body.len() == length + 1
                        && body[..length].iter().zip(&words).all(|(got, sent)| *got == sent + 1)
                        && reply.label() == ipc::Label(7);
                    badge_seen = body.last().copied().unwrap_or(0);
                    if !content_ok {
                        failures += 1;
                    }
                }
                Err(error) => {
                    log::warn!("call failed: {error:?}");
                    failures += 1;
                }
            }
        }
    }
    log::info!(
        "{} calls, {} failures, server saw badge {}",
        ROUNDS * ipc::MAX_WORDS as u64,
        failures,
        badge_seen
    );
    let report = ipc::Message::new(ipc::Label(0)).with_words(&[failures, badge_seen]);
    // The supervisor never replies: this thread's work is done and it stays blocked.
    let _ = DONE.call(&report);
    unreachable!("the supervisor never replies")
}
