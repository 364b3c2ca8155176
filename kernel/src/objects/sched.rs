//! Per-CPU run queues and the choice of the next thread (see the module docs above).

use super::queue::{Link, Links, Queue};
use super::{Kernel, ThreadId, ThreadState, thread_id};

/// Number of priorities (priority is a `u8`).
const PRIORITIES: usize = 256;

/// Scheduler state of one CPU.
///
/// Aligned to a power of two so that a CPU's state is at its index shifted (see
/// `Thread`).
#[repr(align(1024))]
pub(super) struct Cpu {
    /// The thread running (or last chosen to run) on this CPU; not in a run queue.
    current: Link,
    /// Set when the choice of thread may have changed since the last `schedule`.
    reschedule: bool,
    /// The current thread's time slice ended or it yielded: it goes to the back of its queue.
    slice_ended: bool,
    /// Bit `p` is set when `run_queues[p]` is not empty.
    ready: [u64; PRIORITIES / 64],
    /// Bit `w` is set when `ready[w]` is not zero, so that the highest ready priority takes
    /// two bit scans and no loop.
    ready_words: u8,
    /// The highest ready priority plus one, 0 when nothing is ready: kept up to date with
    /// the run queues so that the fast paths' test is one comparison.
    ready_bar: u16,
    /// Ready threads per priority.
    run_queues: [Queue; PRIORITIES],
}

impl Cpu {
    /// A CPU with nothing to run.
    pub(super) const IDLE: Self = Self {
        current: Link::NONE,
        reschedule: false,
        slice_ended: false,
        ready: [0; PRIORITIES / 64],
        ready_words: 0,
        ready_bar: 0,
        run_queues: [Queue::EMPTY; PRIORITIES],
    };

    /// The current thread, if any.
    #[inline(always)]
    pub(super) const fn current(&self) -> Option<usize> {
        self.current.get()
    }

    /// Makes the next `schedule` choose again.
    #[inline(always)]
    pub(super) fn request_reschedule(&mut self) {
        self.reschedule = true;
    }

    /// Whether the next `schedule` will choose again.
    #[inline(always)]
    pub(super) const fn reschedule_pending(&self) -> bool {
        self.reschedule
    }

    /// The highest priority with a ready thread.
    #[inline(always)]
    fn highest_ready(&self) -> Option<u8> {
        // The bar is at most 256 (priority 255 plus one).
        self.ready_bar.checked_sub(1).map(|priority| priority as u8)
    }

    /// `ready_bar` computed from the bitmaps.
    fn scan_ready_bar(&self) -> u16 {
        if self.ready_words == 0 {
            return 0;
        }
        let word = (u8::BITS - 1 - self.ready_words.leading_zeros()) as usize;
        // `ready_words` only has bits for words of `ready`; the modulo spares a bounds check.
        (word * 64 + 64 - self.ready[word % self.ready.len()].leading_zeros() as usize) as u16
    }

    /// Whether a thread of `priority` runs before every ready thread.
    #[inline(always)]
    pub(super) fn outranks_ready(&self, priority: u8) -> bool {
        u16::from(priority) >= self.ready_bar
    }

    fn queue(&mut self, priority: u8) -> &mut Queue {
        self.ready[usize::from(priority) / 64] |= 1 << (priority % 64);
        self.ready_words |= 1 << (priority / 64);
        self.ready_bar = self.ready_bar.max(u16::from(priority) + 1);
        &mut self.run_queues[usize::from(priority)]
    }

    fn pop_highest(&mut self, links: &mut Links) -> Option<usize> {
        let priority = self.highest_ready()?;
        let queue = &mut self.run_queues[usize::from(priority)];
        let thread = queue.pop_front(links);
        if queue.is_empty() {
            let word = usize::from(priority) / 64;
            self.ready[word] &= !(1 << (priority % 64));
            if self.ready[word] == 0 {
                self.ready_words &= !(1 << word);
            }
            self.ready_bar = self.scan_ready_bar();
        }
        thread
    }

    /// Takes the ready `thread` of `priority` out of its run queue (a vCPU stopped by
    /// `VCPU_STOP`), keeping the bitmaps and the bar in step.
    pub(super) fn remove_ready(&mut self, links: &mut Links, priority: u8, thread: usize) {
        let queue = &mut self.run_queues[usize::from(priority)];
        let removed = queue.remove(links, thread);
        debug_assert!(removed, "a Ready thread is in its priority's run queue");
        if queue.is_empty() {
            let word = usize::from(priority) / 64;
            self.ready[word] &= !(1 << (priority % 64));
            if self.ready[word] == 0 {
                self.ready_words &= !(1 << word);
            }
            self.ready_bar = self.scan_ready_bar();
        }
    }

    /// The ready threads of `priority`, first to last.
    #[cfg(test)]
    pub(super) fn run_queue<'q>(&self, links: &'q Links, priority: u8) -> impl Iterator<Item = usize> + 'q {
        self.run_queues[usize::from(priority)].iter(links)
    }
}

impl Kernel<'_> {
    /// Puts `thread` at the back of its priority's run queue on its CPU.
    pub(super) fn enqueue_ready_back(&mut self, thread: usize) {
        let Self { threads, links, cpus, .. } = self;
        let tcb = &mut threads[thread];
        tcb.state = ThreadState::Ready;
        cpus[usize::from(tcb.cpu)].queue(tcb.priority).push_back(links, thread);
    }

    /// Makes the blocked `thread` ready. If it should run before its CPU's current thread,
    /// that CPU reschedules, and is kicked at the end of this kernel entry unless it is
    /// `local_cpu` (which reschedules on its way out anyway).
    pub(super) fn wake(&mut self, local_cpu: usize, thread: usize) {
        self.enqueue_ready_back(thread);
        let tcb = &self.threads[thread];
        let cpu = usize::from(tcb.cpu);
        let preempts = self.cpus[cpu].current().is_none_or(|current| {
            let current = &self.threads[current];
            current.state != ThreadState::Running || tcb.priority > current.priority
        });
        if preempts {
            self.cpus[cpu].request_reschedule();
            if cpu != local_cpu {
                self.pending_kicks |= 1 << cpu;
            }
        }
    }

    /// Fast-path hand-off: `thread`, blocked and in no queue, becomes `cpu`'s current
    /// thread in place of the one that just blocked. The fast path's conditions (no
    /// reschedule pending before, `thread` outranks every ready thread) make this the
    /// scheduler's choice, so nothing is left for [`Kernel::schedule`] to decide.
    #[inline(always)]
    pub(super) fn switch_to(&mut self, cpu: usize, thread: usize) {
        self.threads[thread].state = ThreadState::Running;
        self.cpus[cpu].current = Link::to(thread);
        self.cpus[cpu].reschedule = false;
    }

    /// The time slice of `cpu`'s current thread ended (also used by `Yield`): the next
    /// [`Kernel::schedule`] puts it at the back of its priority's queue.
    pub fn timer_tick(&mut self, cpu: usize) {
        let state = &mut self.cpus[cpu];
        if state.current().is_some() {
            state.slice_ended = true;
            state.reschedule = true;
        }
    }

    /// Chooses the thread to run next on `cpu` (`None`: idle until an interrupt). The
    /// current thread keeps running unless it blocked, its slice ended, or a thread of
    /// higher priority is ready; a preempted thread goes back to the front of its queue.
    ///
    /// A vCPU held by `VCPU_SYNC` that comes up in a run queue leaves it as `Held`.
    ///
    /// Inlined into the shell: when nothing asked for a new choice (a system call that did
    /// not block, an interrupt that woke nobody here) it is one test.
    #[inline]
    pub fn schedule(&mut self, cpu: usize) -> Option<ThreadId> {
        let state = &self.cpus[cpu];
        if !state.reschedule {
            return state.current().map(thread_id);
        }
        self.choose(cpu)
    }

    /// [`Kernel::schedule`] when the choice may change.
    fn choose(&mut self, cpu: usize) -> Option<ThreadId> {
        let Self { threads, links, cpus, .. } = self;
        let state = &mut cpus[cpu];
        state.reschedule = false;
        let slice_ended = core::mem::take(&mut state.slice_ended);
        if let Some(current) = state.current()
            && threads[current].state == ThreadState::Running
        {
            let priority = threads[current].priority;
            if slice_ended {
                state.queue(priority).push_back(links, current);
            } else if state.highest_ready().is_some_and(|highest| highest > priority) {
                state.queue(priority).push_front(links, current);
            } else {
                return Some(thread_id(current));
            }
            threads[current].state = ThreadState::Ready;
        }
        let next = loop {
            let Some(next) = state.pop_highest(links) else { break None };
            // A vCPU held by `VCPU_SYNC` stays off the CPU until `VCPU_WRITE_LRS`.
            if !threads[next].held {
                break Some(next);
            }
            threads[next].state = ThreadState::Held;
        };
        if let Some(next) = next {
            threads[next].state = ThreadState::Running;
        }
        state.current = next.map_or(Link::NONE, Link::to);
        next.map(thread_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::THREAD_SLOTS;

    #[test]
    fn the_ready_bar_follows_the_run_queues() {
        let mut cpu = Cpu::IDLE;
        let mut links = [Link::NONE; THREAD_SLOTS];
        let mut random = fastrand::Rng::with_seed(7);
        let mut ready: Vec<(u8, usize)> = Vec::new();
        let mut idle: Vec<usize> = (0..THREAD_SLOTS).collect();
        for step in 0..20_000 {
            if !idle.is_empty() && (ready.is_empty() || random.bool()) {
                let thread = idle.swap_remove(random.usize(..idle.len()));
                let priority = [0, 1, 62, 63, 64, 65, 127, 128, 191, 192, 254, 255][random.usize(..12)];
                cpu.queue(priority).push_back(&mut links, thread);
                ready.push((priority, thread));
            } else {
                let highest = ready.iter().map(|&(priority, _)| priority).max();
                let thread = cpu.pop_highest(&mut links).expect("a ready thread");
                let at = ready.iter().position(|&(_, queued)| queued == thread).expect("queued");
                assert_eq!(Some(ready.remove(at).0), highest, "step {step}: the highest goes first");
                idle.push(thread);
            }
            let highest = ready.iter().map(|&(priority, _)| priority).max();
            assert_eq!(cpu.highest_ready(), highest, "step {step}");
            for priority in [0, 1, 63, 64, 100, 128, 200, 254, 255] {
                let expected = highest.is_none_or(|highest| priority > highest);
                assert_eq!(cpu.outranks_ready(priority), expected, "step {step}, priority {priority}");
            }
        }
    }
}
