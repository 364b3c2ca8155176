//! The target-only shell: boot code, exception vectors, system registers and devices of
//! QEMU's `virt` machine. Everything here is thin; the logic it drives lives in the
//! `kernel` library.

pub mod boot;
pub mod console;
pub mod gic;
pub mod guest;
pub mod memory;
pub mod mmio;
pub mod pmu;
pub mod psci;
pub mod timer;
pub mod vectors;

/// How a CPU waits for a contended spin lock: the `yield` hint. Under QEMU's round-robin
/// TCG (as with `-icount`) it hands the host to the other CPUs, so a waiter does not burn
/// virtual time (and timer deadlines) while the lock holder is not running; on hardware
/// it is only a hint.
pub struct YieldHint;

impl spin::RelaxStrategy for YieldHint {
    #[inline(always)]
    fn relax() {
        // SAFETY: `yield` is a hint with no architectural effect.
        unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
    }
}

/// The kernel's spin lock (big kernel lock and console lock).
pub type SpinLock<T> = spin::mutex::Mutex<T, YieldHint>;
