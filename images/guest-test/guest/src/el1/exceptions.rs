//! The exception vectors: IRQs go to the GIC's handler; a synchronous exception that a
//! check expects is recorded and skipped ([`catch`]); anything else ends the run.

use super::{ABORTED, finish, gic};
use aarch64_cpu::registers::{ELR_EL1, ESR_EL1, FAR_EL1, Readable, Writeable};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use guest_rt::vectors::{IRQ_CURRENT, NAMES, SYNC_CURRENT};
use guest_test::Recorded;

// Every exception goes to `exception`, which returns for an IRQ, or for an expected
// exception having moved ELR_EL1 past the instruction (`guest_rt::vectors`). An IRQ handler
// that unmasks IRQs (preemption) saves ELR_EL1 and SPSR_EL1 itself first.
guest_rt::exception_vectors!(exception);

/// Set while a check expects its next instruction to take a synchronous exception.
static EXPECTING: AtomicBool = AtomicBool::new(false);
static RECORDED_ESR: AtomicU64 = AtomicU64::new(0);
static RECORDED_FAR: AtomicU64 = AtomicU64::new(0);
static RECORDED_ELR: AtomicU64 = AtomicU64::new(0);

/// Every exception comes here with its vector's index.
extern "C" fn exception(vector: u64) {
    if vector == IRQ_CURRENT {
        gic::handle_irq();
        return;
    }
    let (esr, far, elr) = (ESR_EL1.get(), FAR_EL1.get(), ELR_EL1.get());
    if vector == SYNC_CURRENT && EXPECTING.load(Ordering::Relaxed) {
        EXPECTING.store(false, Ordering::Relaxed);
        RECORDED_ESR.store(esr, Ordering::Relaxed);
        RECORDED_FAR.store(far, Ordering::Relaxed);
        RECORDED_ELR.store(elr, Ordering::Relaxed);
        ELR_EL1.set(elr + 4);
        return;
    }
    let name = NAMES.get(vector as usize).copied().unwrap_or("?");
    println!("unexpected exception: {name}, ESR {esr:#x}, FAR {far:#x}, ELR {elr:#x}");
    finish(ABORTED)
}

/// Runs `provoke`, which executes one instruction that should trap and returns that
/// instruction's address; returns what the vectors recorded, if anything.
pub(super) fn catch(provoke: impl FnOnce() -> u64) -> (Option<Recorded>, u64) {
    EXPECTING.store(true, Ordering::Relaxed);
    let pc = provoke();
    let taken = !EXPECTING.load(Ordering::Relaxed);
    EXPECTING.store(false, Ordering::Relaxed);
    let recorded = taken.then(|| Recorded {
        esr: RECORDED_ESR.load(Ordering::Relaxed),
        far: RECORDED_FAR.load(Ordering::Relaxed),
        elr: RECORDED_ELR.load(Ordering::Relaxed),
    });
    (recorded, pc)
}
