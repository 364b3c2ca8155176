//! test-supervisor: collects every test component's report and the fault report of the
//! component that faults on purpose, then ends the run with the number of failures.
//!
//! Reports arrive on RESULTS as a Call whose badge says who sent it; words are
//! `[failures, detail]`. The supervisor never replies, so a reporter stays blocked.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Who reports, by badge (see system.toml).
const CLIENT_CPU0: u64 = 1;
const CLIENT_CPU1: u64 = 2;
const NOTIFY_CPU0: u64 = 3;
const NOTIFY_CPU1: u64 = 6;
const CAP_INTRUDER: u64 = 4;
const RTC_DRIVER: u64 = 5;
const MEM_CHECK: u64 = 7;
const BOUND_SERVER: u64 = 8;
const BOUND_SIGNALLER: u64 = 9;
const BOUND_CLIENT: u64 = 10;
const FAULTER: u64 = 99;
const EXPECTED: [u64; 11] = [
    CLIENT_CPU0,
    CLIENT_CPU1,
    NOTIFY_CPU0,
    NOTIFY_CPU1,
    CAP_INTRUDER,
    RTC_DRIVER,
    MEM_CHECK,
    BOUND_SERVER,
    BOUND_SIGNALLER,
    BOUND_CLIENT,
    FAULTER,
];
/// Signals and calls of the bound-notification test, each delivered exactly once.
const BOUND_ROUNDS: u64 = 200;

fn main() -> ! {
    let mut failures = 0u32;
    let mut seen = [false; EXPECTED.len()];
    while seen.iter().any(|seen| !seen) {
        let (message, badge) = RESULTS.recv().expect("recv on RESULTS");
        let Some(slot) = EXPECTED.iter().position(|expected| *expected == badge.0) else {
            log::warn!("report from unknown badge {}", badge.0);
            failures += 1;
            continue;
        };
        let body = message.body();
        let ok = match badge.0 {
            FAULTER => {
                // The kernel's fault message: [esr, far, pc, thread]. The faulter stores to
                // address 0x10, a data abort from EL0 (EC 0x24).
                let ec = body.first().map(|esr| esr >> 26);
                message.label() == ipc::fault::COMPONENT_FAULT
                    && ec == Some(0x24)
                    && body.get(1) == Some(&0x10)
            }
            // Clients report the badge the echo server saw, which must be their own.
            CLIENT_CPU0 | CLIENT_CPU1 => body == [0, badge.0],
            // Each notify-ping instance received every one of its peer's 200 signals.
            NOTIFY_CPU0 | NOTIFY_CPU1 => body == [0, 200],
            // The bound server took every signal as one notification and every call.
            BOUND_SERVER => body == [0, BOUND_ROUNDS, BOUND_ROUNDS],
            BOUND_SIGNALLER | BOUND_CLIENT => body == [0, BOUND_ROUNDS],
            _ => body.first() == Some(&0),
        };
        if seen[slot] {
            log::warn!("second report from badge {}", badge.0);
            failures += 1;
        }
        seen[slot] = true;
        log::info!("report from badge {}: {} ({:?})", badge.0, if ok { "ok" } else { "FAILED" }, body);
        failures += u32::from(!ok);
    }
    log::info!("all reports in, {failures} failures");
    let _ = CONTROL.shutdown(failures);
    unreachable!("shutdown powers the machine off")
}
