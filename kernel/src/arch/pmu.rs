//! The performance monitors, for benchmark systems (`header_flags::PMU_FOR_COMPONENTS`):
//! event counter 0 counts retired instructions at EL0 and EL2 and EL0 may read it.
//! Otherwise EL0 gets no PMU access, so components cannot observe each other.

use core::arch::asm;

/// Architectural event INST_RETIRED.
const INST_RETIRED: u64 = 0x08;
/// PMEVTYPER<n>_EL0.NSH: count at EL2 (with MDCR_EL2.HPMD clear).
const COUNT_AT_EL2: u64 = 1 << 27;
/// MDCR_EL2.HPMD: prohibit counting at EL2.
const MDCR_HPMD: u64 = 1 << 17;
/// PMCR_EL0.E: enable the counters.
const PMCR_ENABLE: u64 = 1;
/// PMUSERENR_EL0.ER: EL0 may read the event counters.
const PMUSERENR_ER: u64 = 1 << 3;

/// Sets up this CPU's PMU: the instruction counter readable from EL0 if `for_components`,
/// no EL0 access at all otherwise.
pub fn init(for_components: bool) {
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
