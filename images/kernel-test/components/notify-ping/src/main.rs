//! notify-ping: two instances on different CPUs bounce notifications. Each round both
//! signal their peer, then wait for the peer's signal, so at most one signal is in
//! flight per direction and none can merge with another. Each reports the notification
//! word it saw; the supervisor checks it is the peer's badge.
#![no_std]
#![no_main]

include!(env!("HYP_CAPS"));
component_rt::entry!(main);

/// Round trips across the CPUs.
const ROUNDS: u32 = 200;

fn main() -> ! {
    let mut failures = 0u64;
    let mut first_word = None;
    for _ in 0..ROUNDS {
        PEER.signal().expect("signal PEER");
        match MINE.wait() {
            Ok(word) if *first_word.get_or_insert(word.0) == word.0 => {}
            Ok(word) => {
                log::warn!("notification word changed to {:#x}", word.0);
                failures += 1;
            }
            Err(error) => {
                log::warn!("wait failed: {error:?}");
                failures += 1;
            }
        }
    }
    let word = first_word.unwrap_or(0);
    log::info!("{ROUNDS} cross-CPU notification rounds, word {word:#x}, {failures} failures");
    let _ = RESULTS.call(&ipc::Message::new(ipc::Label(0)).with_words(&[failures, word]));
    unreachable!("the supervisor never replies")
}
