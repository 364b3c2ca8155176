//! The kernel's timer: the EL2 physical timer (CNTHP, PPI 26), for the round-robin tick
//! and for waking vCPUs sleeping in WFI. Under HCR_EL2.E2H the CNTP_*_EL0 names reach it
//! from EL2; CNTHCTL_EL2 keeps EL0 away from it.

use aarch64_cpu::registers::{
    CNTFRQ_EL0, CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0, CNTPCT_EL0, Readable, Writeable,
};

/// Counter ticks in `microseconds` (at least one).
pub fn ticks(microseconds: u32) -> u64 {
    (CNTFRQ_EL0.get() * u64::from(microseconds) / 1_000_000).max(1)
}

/// Fires the timer interrupt `ticks` from now, enabled and unmasked.
pub fn arm(ticks: u64) {
    CNTP_TVAL_EL0.set(ticks);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
}

/// Fires the timer interrupt when the physical counter reaches `deadline`.
pub fn arm_at(deadline: u64) {
    CNTP_CVAL_EL0.set(deadline);
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
}

/// The physical counter now (possibly read a little early: no barrier orders it after
/// the instructions before, which deadlines of a time slice do not need).
pub fn now() -> u64 {
    CNTPCT_EL0.get()
}

/// Stops the timer (an idle CPU has no time slice to end).
pub fn stop() {
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR);
}
