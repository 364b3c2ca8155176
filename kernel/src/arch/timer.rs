//! The round-robin tick: the EL2 physical timer (CNTHP, PPI 26). Under HCR_EL2.E2H the
//! CNTP_*_EL0 names reach it from EL2; CNTHCTL_EL2 keeps EL0 away from it.

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTP_CTL_EL0, CNTP_TVAL_EL0, Readable, Writeable};

/// Counter ticks in `microseconds` (at least one).
pub fn ticks(microseconds: u32) -> u64 {
    (CNTFRQ_EL0.get() * u64::from(microseconds) / 1_000_000).max(1)
}

/// Fires the timer interrupt `ticks` from now, enabled and unmasked.
pub fn arm(ticks: u64) {
    CNTP_TVAL_EL0.set(ticks);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
}

/// Stops the timer (an idle CPU has no time slice to end).
pub fn stop() {
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR);
}
