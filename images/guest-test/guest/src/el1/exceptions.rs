//! The exception vectors: IRQs go to the GIC's handler; a synchronous exception that a
//! check expects is recorded and skipped ([`catch`]); anything else ends the run.

use super::{ABORTED, finish, gic};
use aarch64_cpu::registers::{ELR_EL1, ESR_EL1, FAR_EL1, Readable, Writeable};
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use guest_test::{Recorded, VECTOR_NAMES, VECTOR_SYNC_CURRENT};

/// Index of the IRQ vector taken at EL1 on SP_EL1 (the program runs there only).
const VECTOR_IRQ_CURRENT: u64 = 5;

// Each of the sixteen entries saves x0/x1, puts its index in x0 and joins
// `exception_common`, which saves the other caller-saved registers and calls `exception`
// (which returns for an IRQ, or for an expected exception having moved ELR_EL1 past the
// instruction). The frames nest: an IRQ handler that unmasks IRQs (preemption) saves
// ELR_EL1 and SPSR_EL1 itself first.
global_asm!(
    r#"
    .macro VECTOR index
        .balign 0x80
        sub sp, sp, #176
        stp x0, x1, [sp, #0]
        mov x0, #\index
        b exception_common
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global exception_vectors
    exception_vectors:
        VECTOR 0
        VECTOR 1
        VECTOR 2
        VECTOR 3
        VECTOR 4
        VECTOR 5
        VECTOR 6
        VECTOR 7
        VECTOR 8
        VECTOR 9
        VECTOR 10
        VECTOR 11
        VECTOR 12
        VECTOR 13
        VECTOR 14
        VECTOR 15

    exception_common:
        stp x2, x3, [sp, #16]
        stp x4, x5, [sp, #32]
        stp x6, x7, [sp, #48]
        stp x8, x9, [sp, #64]
        stp x10, x11, [sp, #80]
        stp x12, x13, [sp, #96]
        stp x14, x15, [sp, #112]
        stp x16, x17, [sp, #128]
        stp x18, x29, [sp, #144]
        str x30, [sp, #160]
        bl {exception}
        ldp x2, x3, [sp, #16]
        ldp x4, x5, [sp, #32]
        ldp x6, x7, [sp, #48]
        ldp x8, x9, [sp, #64]
        ldp x10, x11, [sp, #80]
        ldp x12, x13, [sp, #96]
        ldp x14, x15, [sp, #112]
        ldp x16, x17, [sp, #128]
        ldp x18, x29, [sp, #144]
        ldr x30, [sp, #160]
        ldp x0, x1, [sp, #0]
        add sp, sp, #176
        eret
    "#,
    exception = sym exception,
);

unsafe extern "C" {
    /// The vector table (2 KiB aligned).
    static exception_vectors: u8;
}

/// Points VBAR_EL1 at the vector table.
pub(super) extern "C" fn install_vectors() {
    // SAFETY: the table is code in this image, laid out as VBAR_EL1 requires (2 KiB
    // aligned, sixteen 128-byte entries); installing it changes only where this vCPU's
    // exceptions go.
    unsafe {
        asm!("msr vbar_el1, {table}", "isb", table = in(reg) &raw const exception_vectors, options(nostack));
    }
}

/// Set while a check expects its next instruction to take a synchronous exception.
static EXPECTING: AtomicBool = AtomicBool::new(false);
static RECORDED_ESR: AtomicU64 = AtomicU64::new(0);
static RECORDED_FAR: AtomicU64 = AtomicU64::new(0);
static RECORDED_ELR: AtomicU64 = AtomicU64::new(0);

/// Every exception comes here with its vector's index.
extern "C" fn exception(vector: u64) {
    if vector == VECTOR_IRQ_CURRENT {
        gic::handle_irq();
        return;
    }
    let (esr, far, elr) = (ESR_EL1.get(), FAR_EL1.get(), ELR_EL1.get());
    if vector == VECTOR_SYNC_CURRENT && EXPECTING.load(Ordering::Relaxed) {
        EXPECTING.store(false, Ordering::Relaxed);
        RECORDED_ESR.store(esr, Ordering::Relaxed);
        RECORDED_FAR.store(far, Ordering::Relaxed);
        RECORDED_ELR.store(elr, Ordering::Relaxed);
        ELR_EL1.set(elr + 4);
        return;
    }
    let name = VECTOR_NAMES.get(vector as usize).copied().unwrap_or("?");
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
