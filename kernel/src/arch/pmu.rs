//! The performance monitors and debug registers as lower ELs see them.
//!
//! Benchmark systems (`header_flags::PMU_FOR_COMPONENTS`): event counter 0 counts retired
//! instructions at EL0 and EL2, EL0 may read it, and guests may use the PMU (a benchmark
//! guest reads the counter; it also shares PMUSERENR_EL0 with components). Otherwise EL0
//! gets no PMU access, so components cannot observe each other, and a guest's PMU
//! accesses trap (MDCR_EL2.TPM, TPMCR): the kernel reads them as zero and ignores writes.
//! Guests' debug register accesses always trap the same way (TDA, TDOSA, TDRA).

use core::arch::asm;

/// Architectural event INST_RETIRED.
const INST_RETIRED: u64 = 0x08;
/// PMEVTYPER<n>_EL0.NSH: count at EL2 (with MDCR_EL2.HPMD clear).
const COUNT_AT_EL2: u64 = 1 << 27;
/// MDCR_EL2.HPMD: prohibit counting at EL2.
const MDCR_HPMD: u64 = 1 << 17;
/// MDCR_EL2 TDRA, TDOSA, TDA: debug ROM, OS lock and debug register accesses trap.
const MDCR_TRAP_DEBUG: u64 = 1 << 11 | 1 << 10 | 1 << 9;
/// MDCR_EL2 TPM, TPMCR: PMU accesses from EL1 and EL0 trap.
const MDCR_TRAP_PMU: u64 = 1 << 6 | 1 << 5;
/// PMCR_EL0.E: enable the counters.
const PMCR_ENABLE: u64 = 1;
/// PMUSERENR_EL0.ER: EL0 may read the event counters.
const PMUSERENR_ER: u64 = 1 << 3;

/// Sets up this CPU's PMU: the instruction counter readable from EL0 if `for_components`,
/// no EL0 access at all otherwise; debug (and unless `for_components`, PMU) accesses of
/// guests trap.
pub fn init(for_components: bool) {
    let traps = if for_components { MDCR_TRAP_DEBUG } else { MDCR_TRAP_DEBUG | MDCR_TRAP_PMU };
    // SAFETY: only makes lower-EL debug and PMU register accesses trap to EL2.
    unsafe {
        asm!(
            "mrs {scratch}, mdcr_el2",
            "orr {scratch}, {scratch}, {traps}",
            "msr mdcr_el2, {scratch}",
            scratch = out(reg) _,
            traps = in(reg) traps,
            options(nostack, preserves_flags),
        );
    }
    if !for_components {
        // SAFETY: denies EL0 every PMU register; nothing else changes.
        unsafe { asm!("msr pmuserenr_el0, xzr", options(nostack, preserves_flags)) };
        return;
    }
    // SAFETY: programs this CPU's PMU only: counter 0 counts retired instructions at EL0
    // and EL2 and EL0 may read (not write) it. No memory is touched.
    unsafe {
        asm!(
            "mrs {scratch}, mdcr_el2",
            "bic {scratch}, {scratch}, #{hpmd}",
            "msr mdcr_el2, {scratch}",
            "msr pmevtyper0_el0, {event}",
            "msr pmcntenset_el0, {counter0}",
            "mrs {scratch}, pmcr_el0",
            "orr {scratch}, {scratch}, #{enable}",
            "msr pmcr_el0, {scratch}",
            "msr pmuserenr_el0, {user}",
            "isb",
            scratch = out(reg) _,
            hpmd = const MDCR_HPMD,
            event = in(reg) INST_RETIRED | COUNT_AT_EL2,
            counter0 = in(reg) 1u64,
            enable = const PMCR_ENABLE,
            user = in(reg) PMUSERENR_ER,
            options(nostack, preserves_flags),
        );
    }
}
