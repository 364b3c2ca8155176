//! Notifications: a word of badge bits and a queue of waiting threads.
//!
//! A waiter exists only while the word is zero: `Signal` hands a non-zero word to the
//! first waiter at once, and `Wait` takes a non-zero word without blocking.

use super::queue::Queue;
use super::{Kernel, ThreadState, return_empty};

/// A notification object.
pub(super) struct NotificationObject {
    /// Badge bits signalled and not yet taken.
    word: u64,
    /// Threads blocked in `Wait`, first come first served.
    waiters: Queue,
}

impl NotificationObject {
    /// Nothing signalled, nobody waiting.
    pub(super) const EMPTY: Self = Self { word: 0, waiters: Queue::EMPTY };

    /// The signalled bits not yet taken.
    #[cfg(test)]
    pub(super) fn word(&self) -> u64 {
        self.word
    }
}

impl Kernel<'_> {
    /// ORs `badge` into `notification`'s word (from a thread or an IRQ on `cpu`); if the
    /// word is non-zero and a thread waits, that thread takes it (`x6`) and wakes.
    pub(super) fn signal(&mut self, cpu: usize, notification: usize, badge: u64) {
        let object = &mut self.notifications[notification];
        object.word |= badge;
        if object.word == 0 {
            return;
        }
        if let Some(waiter) = object.waiters.pop_front(&mut self.links) {
            return_empty(&mut self.threads[waiter].context, core::mem::take(&mut object.word));
            self.wake(cpu, waiter);
        }
    }

    /// `thread`, the current thread of `cpu`, takes the word of `notification` if it is
    /// non-zero, or blocks until a signal makes it so.
    pub(super) fn wait(&mut self, cpu: usize, thread: usize, notification: usize) {
        let object = &mut self.notifications[notification];
        if object.word != 0 {
            return_empty(&mut self.threads[thread].context, core::mem::take(&mut object.word));
            return;
        }
        object.waiters.push_back(&mut self.links, thread);
        self.threads[thread].state = ThreadState::BlockedWait(notification as u32);
        self.cpus[cpu].request_reschedule();
    }

    /// `thread` takes the word of `notification`, zero or not, without blocking.
    pub(super) fn poll(&mut self, thread: usize, notification: usize) {
        let word = core::mem::take(&mut self.notifications[notification].word);
        return_empty(&mut self.threads[thread].context, word);
    }
}
