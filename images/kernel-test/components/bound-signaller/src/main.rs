//! bound-signaller: signals bound-server's bound notification from the other CPU, round
//! by round with alternating badge bits, waiting for the server's acknowledgement after
//! each, so the server sees every signal as its own delivery. Reports
//! `[failures, rounds]`.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Rounds (bound-server expects as many).
const ROUNDS: u64 = 200;

fn main() -> ! {
    let mut failures = 0u64;
    for round in 0..ROUNDS {
        let cap = if round % 2 == 0 { EVEN } else { ODD };
        cap.signal().expect("signal the server");
        let word = ACKS.wait().expect("wait on ACKS").0;
        if word != 1 {
            log::warn!("round {round}: acknowledgement word {word:#x}");
            failures += 1;
        }
    }
    log::info!("{ROUNDS} signals acknowledged, {failures} failures");
    let _ = RESULTS.call(&ipc::Message::new(ipc::Label(0)).with_words(&[failures, ROUNDS]));
    unreachable!("the supervisor never replies")
}
