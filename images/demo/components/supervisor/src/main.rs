//! supervisor: waits for every client's report and ends the run with the result.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Clients in the manifest, each calling DONE with its own badge (1, 2, ...).
const CLIENTS: u64 = 2;

fn main() -> ! {
    let mut failed = false;
    let mut seen = 0u64;
    while seen.count_ones() < CLIENTS as u32 {
        let (report, badge) = DONE.recv().expect("recv on DONE");
        let [failures, server_badge] = [report.body()[0], report.body()[1]];
        // The echo server is reached through a cap with the client's own badge.
        let ok = failures == 0 && server_badge == badge.0;
        log::info!(
            "client {} reported {} failures, echo badge {}: {}",
            badge.0,
            failures,
            server_badge,
            if ok { "ok" } else { "FAILED" }
        );
        failed |= !ok;
        seen |= 1 << badge.0;
    }
    let _ = CONTROL.shutdown(u32::from(failed));
    unreachable!("shutdown powers the machine off")
}
