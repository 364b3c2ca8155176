//! notify-ping: two instances on different CPUs bounce notifications. Each round both
//! signal their peer, then wait. A fast instance can run one round ahead, so two of its
//! signals may reach the peer's word before the peer waits; rounds therefore alternate
//! between two capabilities with different badge bits (even and odd rounds), and the
//! receiver counts the bits it takes: Signal ORs, and nothing may be lost or invented.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Rounds across the CPUs.
const ROUNDS: u64 = 200;
/// Badge bits of even and odd rounds (PEER_EVEN and PEER_ODD in system.toml).
const ROUND_BITS: [u64; 2] = [0b01, 0b10];

fn main() -> ! {
    let mut failures = 0u64;
    let mut received = 0u64;
    for round in 0..ROUNDS {
        let peer = if round % 2 == 0 { PEER_EVEN } else { PEER_ODD };
        peer.signal().expect("signal the peer");
        while received <= round {
            let word = MINE.wait().expect("wait on MINE").0;
            // The next expected round's bit must be there; at most one more round's bit
            // (the other parity) may come with it.
            let next = ROUND_BITS[(received % 2) as usize];
            if word & next == 0 || word & !(ROUND_BITS[0] | ROUND_BITS[1]) != 0 {
                log::warn!("round {received}: unexpected notification word {word:#x}");
                failures += 1;
            }
            received += u64::from(word.count_ones());
        }
    }
    log::info!("{ROUNDS} cross-CPU notification rounds, {received} signals received, {failures} failures");
    let _ = RESULTS.call(&ipc::Message::new(ipc::Label(0)).with_words(&[failures, received]));
    unreachable!("the supervisor never replies")
}
