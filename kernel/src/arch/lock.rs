//! The kernel's spin lock: a test-and-set lock taken with one atomic swap.
//!
//! With the LSE atomics (mandatory from Armv8.1, which VHE needs) taking it is one `swpab`
//! and a branch, and releasing it one `stlrb`: the IPC fast path takes the big kernel lock
//! on every call, where the compare-and-swap loop of a general-purpose mutex costs three
//! more instructions. Waiters spin reading, with the `yield` hint: under QEMU's round-robin
//! TCG (as with `-icount`) it hands the host to the other CPUs, so a waiter does not burn
//! virtual time (and timer deadlines) while the holder is not running; on hardware it is
//! only a hint.
//!
//! ```ignore
//! static COUNTER: SpinLock<u64> = SpinLock::new(0);
//! *COUNTER.lock() += 1;
//! ```

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A value that one CPU at a time may use. The flag first (`repr(C)`), so that code that
/// reaches both finds the value at a small offset from it.
#[repr(C)]
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands the value to one CPU at a time (`lock`'s acquire swap pairs with
// the guard's release store), so sharing the lock shares no `&mut T` between CPUs; the
// value may move to whichever CPU takes the lock, hence `T: Send`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub const fn new(value: T) -> Self {
        Self { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Waits until the lock is free and takes it.
    #[inline(always)]
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        // The waiting stays inline: a call here would cost every holder a stack frame.
        while self.locked.swap(true, Ordering::Acquire) {
            while self.locked.load(Ordering::Relaxed) {
                // SAFETY: `yield` is a hint with no architectural effect.
                unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
            }
        }
        SpinLockGuard { lock: self }
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<SpinLockGuard<'_, T>> {
        (!self.locked.swap(true, Ordering::Acquire)).then_some(SpinLockGuard { lock: self })
    }
}

/// The lock held: the value is this CPU's until the guard drops.
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this CPU holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this CPU holds the lock, and `&mut self`
        // makes this the only reference through it.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}
