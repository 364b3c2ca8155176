//! Notifications: a word of badge bits, a queue of waiting threads, and at most one bound
//! thread.
//!
//! A waiter exists only while the word is zero: `Signal` hands a non-zero word to the
//! first waiter at once, and `Wait` takes a non-zero word without blocking. The same holds
//! for the bound thread while it waits in `Recv`/`ReplyRecv`: a signal that no `Wait`
//! waiter takes ends its receive with the word (label [`ipc::NOTIFIED`]), and a receive
//! that finds the word non-zero returns it at once. So a thread blocked in a receive
//! always has a zero bound word, which the fast path relies on.

use super::queue::{Link, Queue};
use super::{Kernel, ThreadState, UserContext, return_empty};
use ipc::MessageInfo;

/// What a receive returns for a bound notification's word.
const NOTIFIED_INFO: MessageInfo = MessageInfo::new(ipc::NOTIFIED, 0).unwrap();

/// A notification object.
pub(super) struct NotificationObject {
    /// Badge bits signalled and not yet taken.
    word: u64,
    /// Threads blocked in `Wait`, first come first served.
    waiters: Queue,
    /// The thread this notification is bound to, if any.
    bound_thread: Link,
}

impl NotificationObject {
    /// Nothing signalled, nobody waiting, bound to nobody.
    pub(super) const EMPTY: Self = Self { word: 0, waiters: Queue::EMPTY, bound_thread: Link::NONE };

    /// The signalled bits not yet taken.
    #[cfg(test)]
    pub(super) fn word(&self) -> u64 {
        self.word
    }

    /// Whether signalled bits wait to be taken.
    #[inline(always)]
    pub(super) const fn is_signalled(&self) -> bool {
        self.word != 0
    }

    /// The bound thread, if any.
    pub(super) const fn bound_thread(&self) -> Option<usize> {
        self.bound_thread.get()
    }

    /// Binds `thread` (boot only).
    pub(super) fn bind(&mut self, thread: usize) {
        self.bound_thread = Link::to(thread);
    }
}

/// Registers of a receive that returns the bound notification's `word`: `x0` = 0, a
/// [`ipc::NOTIFIED`] header with no words in `x1`, `x2..=x5` = 0 and the word in `x6`.
fn return_notified(context: &mut UserContext, word: u64) {
    context.x[0] = 0;
    context.x[1] = NOTIFIED_INFO.raw();
    context.x[2..6].fill(0);
    context.x[6] = word;
}

impl Kernel<'_> {
    /// ORs `badge` into `notification`'s word (from a thread or an IRQ on `cpu`); if the
    /// word is non-zero, the first thread in `Wait` takes it (`x6`) and wakes, or else the
    /// bound thread, if it waits in a receive, leaves its endpoint with the word and wakes
    /// (on its own CPU: a kick at the end of this kernel entry if that is another).
    pub(super) fn signal(&mut self, cpu: usize, notification: usize, badge: u64) {
        let object = &mut self.notifications[notification];
        object.word |= badge;
        if object.word == 0 {
            return;
        }
        if let Some(waiter) = object.waiters.pop_front(&mut self.links) {
            return_empty(&mut self.threads[waiter].context, core::mem::take(&mut object.word));
            self.wake(cpu, waiter);
            return;
        }
        let Some(bound) = object.bound_thread() else { return };
        let ThreadState::BlockedRecv(endpoint) = self.threads[bound].state else { return };
        self.endpoints[endpoint as usize].remove_receiver(&mut self.links, bound);
        let word = core::mem::take(&mut self.notifications[notification].word);
        return_notified(&mut self.threads[bound].context, word);
        self.wake(cpu, bound);
    }

    /// The receive of `thread` ends at once with its bound notification's word, if it has
    /// one and the word is non-zero; returns whether it did.
    #[inline]
    pub(super) fn take_bound_notification(&mut self, thread: usize) -> bool {
        let Some(object) = self.notifications.get_mut(self.threads[thread].bound_notification as usize)
        else {
            return false;
        };
        if object.word == 0 {
            return false;
        }
        return_notified(&mut self.threads[thread].context, core::mem::take(&mut object.word));
        true
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
