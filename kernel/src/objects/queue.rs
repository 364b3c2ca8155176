//! Intrusive FIFO queues of threads, linked through one next-link per thread.
//!
//! A thread is in at most one queue at a time (a run queue when ready, an endpoint or
//! notification queue when blocked), so one link per thread serves them all. Threads
//! leave a queue at its front, except a receiver whose bound notification wakes it
//! ([`Queue::remove`], a walk: queues hold a few threads).

use super::THREAD_SLOTS;

const _: () = assert!(THREAD_SLOTS < u8::MAX as usize);

/// A thread index or none, in one byte so that per-priority queue heads stay small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Link(u8);

impl Link {
    /// No thread.
    pub(super) const NONE: Self = Self(u8::MAX);

    /// A link to thread slot `index`; panics unless it is below `THREAD_SLOTS`, so that
    /// every link holds a thread slot or [`Link::NONE`] (the check costs nothing where
    /// `index` came from a link or indexed the thread table).
    #[inline(always)]
    pub(super) const fn to(index: usize) -> Self {
        assert!(index < THREAD_SLOTS, "a link names a thread slot");
        Self(index as u8)
    }

    /// The thread slot, if any.
    #[inline(always)]
    pub(super) const fn get(self) -> Option<usize> {
        if self.0 == Self::NONE.0 {
            return None;
        }
        // SAFETY: `Link::to` is the only constructor besides `NONE`, and it only makes
        // links to thread slots. Telling the compiler spares the fast paths their bounds
        // checks on the thread table and the queue links.
        unsafe { core::hint::assert_unchecked((self.0 as usize) < THREAD_SLOTS) };
        Some(self.0 as usize)
    }

    /// The thread slot, leaving this link empty.
    pub(super) fn take(&mut self) -> Option<usize> {
        core::mem::replace(self, Self::NONE).get()
    }
}

/// The next-link of every thread.
pub(super) type Links = [Link; THREAD_SLOTS];

/// A FIFO queue of threads.
#[derive(Clone, Copy, Debug)]
pub(super) struct Queue {
    head: Link,
    tail: Link,
}

impl Queue {
    /// A queue with nobody in it.
    pub(super) const EMPTY: Self = Self { head: Link::NONE, tail: Link::NONE };

    /// Whether nobody is queued.
    #[inline(always)]
    pub(super) const fn is_empty(&self) -> bool {
        self.head.get().is_none()
    }

    /// The first thread, without removing it.
    #[inline(always)]
    pub(super) const fn front(&self) -> Option<usize> {
        self.head.get()
    }

    /// Appends `thread` (which must not be in any queue).
    #[inline(always)]
    pub(super) fn push_back(&mut self, links: &mut Links, thread: usize) {
        links[thread] = Link::NONE;
        match self.tail.get() {
            Some(tail) => links[tail] = Link::to(thread),
            None => self.head = Link::to(thread),
        }
        self.tail = Link::to(thread);
    }

    /// Prepends `thread` (which must not be in any queue).
    pub(super) fn push_front(&mut self, links: &mut Links, thread: usize) {
        links[thread] = self.head;
        if self.head.get().is_none() {
            self.tail = Link::to(thread);
        }
        self.head = Link::to(thread);
    }

    /// Removes and returns the first thread.
    #[inline(always)]
    pub(super) fn pop_front(&mut self, links: &mut Links) -> Option<usize> {
        let head = self.head.get()?;
        // The dequeued thread keeps no stale link.
        self.head = core::mem::replace(&mut links[head], Link::NONE);
        if self.head.get().is_none() {
            self.tail = Link::NONE;
        }
        Some(head)
    }

    /// Removes `thread` wherever it is in this queue; returns whether it was there.
    pub(super) fn remove(&mut self, links: &mut Links, thread: usize) -> bool {
        let mut previous: Option<usize> = None;
        let mut cursor = self.head.get();
        while let Some(current) = cursor {
            if current == thread {
                let next = core::mem::replace(&mut links[current], Link::NONE);
                match previous {
                    Some(previous) => links[previous] = next,
                    None => self.head = next,
                }
                if self.tail == Link::to(current) {
                    self.tail = previous.map_or(Link::NONE, Link::to);
                }
                return true;
            }
            previous = Some(current);
            cursor = links[current].get();
        }
        false
    }

    /// The queued threads, first to last.
    #[cfg(test)]
    pub(super) fn iter<'q>(&self, links: &'q Links) -> impl Iterator<Item = usize> + 'q {
        core::iter::successors(self.head.get(), move |&thread| links[thread].get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_fifo_and_push_front_jumps_the_line() {
        let mut links = [Link::NONE; THREAD_SLOTS];
        let mut queue = Queue::EMPTY;
        assert!(queue.is_empty());
        queue.push_back(&mut links, 3);
        queue.push_back(&mut links, 1);
        queue.push_front(&mut links, 7);
        queue.push_back(&mut links, 0);
        assert_eq!(queue.iter(&links).collect::<Vec<_>>(), [7, 3, 1, 0]);
        assert_eq!(queue.front(), Some(7));
        assert_eq!(queue.pop_front(&mut links), Some(7));
        assert_eq!(queue.pop_front(&mut links), Some(3));
        assert_eq!(queue.pop_front(&mut links), Some(1));
        queue.push_back(&mut links, 5);
        assert_eq!(queue.pop_front(&mut links), Some(0));
        assert_eq!(queue.pop_front(&mut links), Some(5));
        assert_eq!(queue.pop_front(&mut links), None);
        assert!(queue.is_empty());
        queue.push_front(&mut links, 2);
        queue.push_back(&mut links, 4);
        assert_eq!(queue.iter(&links).collect::<Vec<_>>(), [2, 4]);
        assert!(links.iter().enumerate().all(|(i, link)| i == 2 || *link == Link::NONE));
    }

    #[test]
    fn remove_takes_a_thread_from_anywhere_and_keeps_the_order() {
        let mut links = [Link::NONE; THREAD_SLOTS];
        let mut queue = Queue::EMPTY;
        for thread in [1, 2, 3, 4] {
            queue.push_back(&mut links, thread);
        }
        assert!(queue.remove(&mut links, 3));
        assert_eq!(queue.iter(&links).collect::<Vec<_>>(), [1, 2, 4]);
        assert!(queue.remove(&mut links, 4), "the tail");
        queue.push_back(&mut links, 5);
        assert_eq!(queue.iter(&links).collect::<Vec<_>>(), [1, 2, 5]);
        assert!(queue.remove(&mut links, 1), "the head");
        assert!(!queue.remove(&mut links, 1), "not queued any more");
        assert_eq!(queue.iter(&links).collect::<Vec<_>>(), [2, 5]);
        assert!(queue.remove(&mut links, 2));
        assert!(queue.remove(&mut links, 5));
        assert!(queue.is_empty());
        queue.push_back(&mut links, 6);
        assert_eq!(queue.iter(&links).collect::<Vec<_>>(), [6]);
        assert!(links.iter().all(|link| *link == Link::NONE), "removed threads keep no stale link");
    }
}
