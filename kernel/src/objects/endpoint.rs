//! Endpoints: message transfer, `Send`/`Call`, `Recv`, `Reply`, and fault messages.

use super::console::kernel_line;
use super::notification::NotificationObject;
use super::queue::{Link, Queue};
use super::syscall::{FastIpc, IpcArguments, VcpuReply};
use super::{Kernel, ThreadId, ThreadState, return_empty, thread_id};
use crate::Platform;
use crate::address::Pa;
use ipc::{Error, IpcBuffer, Label, MessageInfo, REGISTER_WORDS, fault};

/// Which kind of thread an endpoint's queue holds (an empty queue holds either).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiters {
    Senders,
    Receivers,
}

/// An endpoint: blocked senders or blocked receivers, first come first served.
///
/// Four bytes (three of them used) so that an endpoint's address is its index shifted.
#[repr(align(4))]
pub(super) struct EndpointObject {
    queue: Queue,
    waiters: Waiters,
}

impl EndpointObject {
    /// An endpoint nobody waits on.
    pub(super) const EMPTY: Self = Self { queue: Queue::EMPTY, waiters: Waiters::Receivers };

    /// The receiver that the next message goes to, if one waits.
    #[inline(always)]
    pub(super) fn first_receiver(&self) -> Option<usize> {
        if self.waiters == Waiters::Receivers { self.queue.front() } else { None }
    }

    /// Dequeues the first thread if the queue holds `waiters`.
    fn pop(&mut self, links: &mut super::Links, waiters: Waiters) -> Option<usize> {
        if self.waiters == waiters { self.queue.pop_front(links) } else { None }
    }

    /// Takes the blocked receiver `thread` out of the queue (its bound notification woke it).
    pub(super) fn remove_receiver(&mut self, links: &mut super::Links, thread: usize) {
        debug_assert_eq!(self.waiters, Waiters::Receivers);
        let removed = self.queue.remove(links, thread);
        debug_assert!(removed, "a thread in BlockedRecv is in its endpoint's queue");
    }

    /// Takes the blocked sender `thread` out of the queue (a vCPU stopped by `VCPU_STOP`).
    pub(super) fn remove_sender(&mut self, links: &mut super::Links, thread: usize) {
        debug_assert_eq!(self.waiters, Waiters::Senders);
        let removed = self.queue.remove(links, thread);
        debug_assert!(removed, "a thread in BlockedSend is in its endpoint's queue");
    }

    /// Whether a sender waits.
    #[inline(always)]
    pub(super) fn has_senders(&self) -> bool {
        self.waiters == Waiters::Senders && !self.queue.is_empty()
    }

    /// The queued threads, first to last, and whether they are senders.
    #[cfg(test)]
    pub(super) fn queued<'q>(&self, links: &'q super::Links) -> (bool, impl Iterator<Item = usize> + 'q) {
        (self.waiters == Waiters::Senders, self.queue.iter(links))
    }
}

/// What happens to a sender once its message is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SendKind {
    /// `Send` (and `Reply`): the sender carries on.
    Send,
    /// `Call`: the sender waits for the receiver's reply.
    Call,
    /// A fault message, words ESR, FAR, PC and the thread index: the sender stays stopped.
    Fault {
        /// ESR_EL2 of the fault.
        esr: u64,
        /// FAR_EL2 of the fault.
        far: u64,
    },
    /// A vCPU's trap, its words in the vCPU object: the vCPU waits for the reply as in
    /// `Call`, and the reply finishes the trapping instruction instead of delivering words.
    Guest,
    /// A vCPU's `Send` (a trapped SGI write), its words in the vCPU object: the vCPU
    /// carries on once the message is taken, its registers untouched.
    GuestSend,
}

/// A message in flight: where its words are, its header and its badge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PendingSend {
    /// Sender's fate, and for faults the words.
    pub(super) kind: SendKind,
    /// Label and length (validated).
    pub(super) info: MessageInfo,
    /// Badge of the capability it was sent through.
    pub(super) badge: u64,
}

impl PendingSend {
    /// Placeholder of threads that are not sending.
    pub(super) const NONE: Self =
        Self { kind: SendKind::Send, info: MessageInfo::new(Label(0), 0).unwrap(), badge: 0 };
}

/// Writes `words` into message words `REGISTER_WORDS..` of the IPC buffer at `to`.
pub(super) fn write_buffer_words(platform: &impl Platform, to: Pa, words: &[u64]) {
    let destination = platform.phys_to_virt(to.0).cast::<IpcBuffer>();
    // SAFETY: as in `copy_buffer_words`: the receiver's own buffer page, mapped for the
    // kernel, which the blocked receiver does not touch now; callers pass at most
    // `MAX_WORDS - REGISTER_WORDS` words.
    unsafe {
        core::ptr::copy_nonoverlapping(
            words.as_ptr(),
            (&raw mut (*destination).words).cast::<u64>().add(REGISTER_WORDS),
            words.len(),
        );
    }
}

/// Copies message words `REGISTER_WORDS..length` between IPC buffers.
fn copy_buffer_words(platform: &impl Platform, from: Pa, to: Pa, length: usize) {
    let source = platform.phys_to_virt(from.0).cast::<IpcBuffer>();
    let destination = platform.phys_to_virt(to.0).cast::<IpcBuffer>();
    // SAFETY: boot-info gives every thread its own IPC buffer page and `phys_to_virt` maps
    // it for the kernel; `length <= MAX_WORDS`, the size of `words`. Neither thread runs
    // while the kernel holds the big lock and works on them (the sender is the caller or
    // blocked, the receiver blocked), so nothing else accesses these words now. `copy`
    // stays correct even if a faulty manifest gave both threads the same page.
    unsafe {
        core::ptr::copy(
            (&raw const (*source).words).cast::<u64>().add(REGISTER_WORDS),
            (&raw mut (*destination).words).cast::<u64>().add(REGISTER_WORDS),
            length - REGISTER_WORDS,
        );
    }
}

impl Kernel<'_> {
    /// Writes `message` from `sender` into `receiver`: `x0` = 0, `x1` = info, words 0-3 in
    /// `x2..=x5`, words 4 and up in its IPC buffer, `x6` = badge.
    pub(super) fn transfer(
        &mut self,
        platform: &impl Platform,
        sender: usize,
        receiver: usize,
        message: PendingSend,
    ) {
        let from = &self.threads[sender];
        let length = message.info.length();
        let to = self.threads[receiver].ipc_buffer;
        let words = match message.kind {
            SendKind::Fault { esr, far } => [esr, far, from.context.elr, sender as u64],
            SendKind::Send | SendKind::Call => {
                self.copy_words_past_registers(platform, sender, receiver, message.info);
                self.transfer_registers(sender, receiver, message.info, message.badge);
                return;
            }
            SendKind::Guest | SendKind::GuestSend => {
                let vcpu = usize::from(from.vcpu.expect("guest messages come from vCPUs"));
                let words = self.vcpus[vcpu].message();
                if length > REGISTER_WORDS {
                    write_buffer_words(platform, to, &words[REGISTER_WORDS..length]);
                }
                [words[0], words[1], words[2], words[3]]
            }
        };
        self.write_message(receiver, message.info, words, message.badge);
    }

    /// Copies the words of a message with header `info` past the registers from
    /// `sender`'s IPC buffer to `receiver`'s (nothing when it fits in registers).
    #[inline(always)]
    fn copy_words_past_registers(
        &self,
        platform: &impl Platform,
        sender: usize,
        receiver: usize,
        info: MessageInfo,
    ) {
        if !info.in_registers() {
            let (from, to) = (self.threads[sender].ipc_buffer, self.threads[receiver].ipc_buffer);
            copy_buffer_words(platform, from, to, info.length());
        }
    }

    /// [`Kernel::transfer`] of a `Send`, `Call` or reply's register part: `receiver` gets
    /// `info`, words 0-3 from `sender`'s `x2..=x5` and `badge`. The fast paths use it alone
    /// for messages that fit in registers.
    #[inline(always)]
    fn transfer_registers(&mut self, sender: usize, receiver: usize, info: MessageInfo, badge: u64) {
        let x = &self.threads[sender].context.x;
        let words = [x[2], x[3], x[4], x[5]];
        self.write_message(receiver, info, words, badge);
    }

    /// Sets the registers of a received message: `x0` = 0, `x1` = `info`, `words` in
    /// `x2..=x5`, `x6` = `badge`.
    ///
    /// All four words go across whatever the length: past it they hold what the sender had
    /// in those registers (as in seL4, nothing of another thread's or the kernel's), and
    /// the IPC libraries send zeros there. Masking them would cost the fast path eight
    /// instructions each way.
    #[inline(always)]
    fn write_message(
        &mut self,
        receiver: usize,
        info: MessageInfo,
        words: [u64; REGISTER_WORDS],
        badge: u64,
    ) {
        let context = &mut self.threads[receiver].context;
        context.x[0] = 0;
        context.x[1] = info.raw();
        context.x[2..2 + REGISTER_WORDS].copy_from_slice(&words);
        context.x[6] = badge;
    }

    /// Queues the current thread of `cpu` on `endpoint`.
    #[inline(always)]
    fn block_on(&mut self, cpu: usize, thread: usize, endpoint: usize, waiters: Waiters) {
        let object = &mut self.endpoints[endpoint];
        object.waiters = waiters;
        object.queue.push_back(&mut self.links, thread);
        self.threads[thread].state = match waiters {
            Waiters::Senders => ThreadState::BlockedSend(endpoint as u32),
            Waiters::Receivers => ThreadState::BlockedRecv(endpoint as u32),
        };
        self.cpus[cpu].request_reschedule();
    }

    /// `sender`, the current thread of `cpu` (or, for a fault message, the thread that just
    /// stopped there), sends `message` on `endpoint`: to the first waiting receiver, or it
    /// queues until a receiver comes.
    pub(super) fn send(
        &mut self,
        cpu: usize,
        sender: usize,
        endpoint: usize,
        message: PendingSend,
        platform: &impl Platform,
    ) {
        let Some(receiver) = self.endpoints[endpoint].pop(&mut self.links, Waiters::Receivers) else {
            self.block_on(cpu, sender, endpoint, Waiters::Senders);
            self.threads[sender].pending = message;
            return;
        };
        self.transfer(platform, sender, receiver, message);
        match message.kind {
            SendKind::Send => return_empty(&mut self.threads[sender].context, 0),
            SendKind::GuestSend => {}
            SendKind::Call | SendKind::Guest => {
                self.threads[sender].state = ThreadState::BlockedReply;
                self.threads[receiver].reply_target = Link::to(sender);
                self.cpus[cpu].request_reschedule();
            }
            SendKind::Fault { .. } => {}
        }
        self.wake(cpu, receiver);
    }

    /// `receiver`, the current thread of `cpu`, takes the first queued message of
    /// `endpoint`, else its bound notification's word if that is non-zero, or queues until
    /// one of them comes. Forgets any reply it still owed. Messages go first so that a
    /// server that signals itself to resume background work (the its-server draining a
    /// command queue) serves every waiting request between two pieces of that work.
    pub(super) fn receive(&mut self, cpu: usize, receiver: usize, endpoint: usize, platform: &impl Platform) {
        self.threads[receiver].reply_target = Link::NONE;
        let Some(sender) = self.endpoints[endpoint].pop(&mut self.links, Waiters::Senders) else {
            if !self.take_bound_notification(receiver) {
                self.block_on(cpu, receiver, endpoint, Waiters::Receivers);
            }
            return;
        };
        let message = self.threads[sender].pending;
        self.transfer(platform, sender, receiver, message);
        match message.kind {
            SendKind::Send => {
                return_empty(&mut self.threads[sender].context, 0);
                self.wake(cpu, sender);
            }
            SendKind::GuestSend => self.wake(cpu, sender),
            SendKind::Call | SendKind::Guest => {
                self.threads[sender].state = ThreadState::BlockedReply;
                self.threads[receiver].reply_target = Link::to(sender);
            }
            SendKind::Fault { .. } => self.threads[sender].state = ThreadState::Inactive,
        }
    }

    /// `replier`, the current thread of `cpu`, answers its reply target with `info` and
    /// the words in its registers and IPC buffer (a vCPU takes register words only).
    pub(super) fn reply(
        &mut self,
        cpu: usize,
        replier: usize,
        info: MessageInfo,
        platform: &impl Platform,
    ) -> Result<(), Error> {
        let target = self.threads[replier].reply_target.take().ok_or(Error::NoReplyTarget)?;
        debug_assert_eq!(self.threads[target].state, ThreadState::BlockedReply);
        let x = &self.threads[replier].context.x;
        let words = [x[2], x[3], x[4], x[5]];
        if self.deliver_reply(platform, replier, target, info, words) {
            self.wake(cpu, target);
        }
        Ok(())
    }

    /// Hands the reply of `replier` (header `info`, `words` from its registers, the rest
    /// in its IPC buffer) to `target`: its registers for a thread, the end of its trap for
    /// a vCPU. Returns whether `target` runs again (a vCPU may stop).
    #[inline(always)]
    fn deliver_reply(
        &mut self,
        platform: &impl Platform,
        replier: usize,
        target: usize,
        info: MessageInfo,
        words: [u64; REGISTER_WORDS],
    ) -> bool {
        if self.threads[target].vcpu.is_none() {
            self.copy_words_past_registers(platform, replier, target, info);
            self.write_message(target, info, words, 0);
            return true;
        }
        self.answer_vcpu(platform, replier, target, info, words)
    }

    /// Fast-path `Call`: hands `message` from `caller`, the current thread of `cpu`, to
    /// the first receiver of `endpoint` and runs it, if that is what the slow path and
    /// the scheduler would do. Returns whether it did.
    #[inline]
    pub(super) fn fast_call(
        &mut self,
        cpu: usize,
        caller: usize,
        endpoint: usize,
        message: PendingSend,
        platform: &impl Platform,
    ) -> bool {
        let Some(receiver) = self.take_fast_receiver(cpu, endpoint) else { return false };
        if message.kind == SendKind::Call && message.info.length() <= REGISTER_WORDS {
            self.transfer_registers(caller, receiver, message.info, message.badge);
        } else {
            self.transfer(platform, caller, receiver, message);
        }
        self.hand_over_call(cpu, caller, receiver);
        true
    }

    /// The first receiver of `endpoint`, dequeued, if a `Call` from the current thread of
    /// `cpu` may hand over to it directly: it runs on `cpu` and outranks every ready
    /// thread there (the caller checked that no reschedule is pending). (A receiver is a
    /// component: vCPUs never receive.)
    #[inline(always)]
    pub(super) fn take_fast_receiver(&mut self, cpu: usize, endpoint: usize) -> Option<usize> {
        let receiver = self.endpoints[endpoint].first_receiver()?;
        let target = &self.threads[receiver];
        if usize::from(target.cpu) != cpu || !self.cpus[cpu].outranks_ready(target.priority) {
            return None;
        }
        self.endpoints[endpoint].queue.pop_front(&mut self.links);
        Some(receiver)
    }

    /// The end of a fast-path `Call` whose message `receiver` has: `caller` waits for the
    /// reply and `receiver` runs.
    #[inline(always)]
    pub(super) fn hand_over_call(&mut self, cpu: usize, caller: usize, receiver: usize) {
        self.threads[caller].state = ThreadState::BlockedReply;
        self.threads[receiver].reply_target = Link::to(caller);
        self.switch_to(cpu, receiver);
    }

    /// Fast-path `Call` of `caller`, the current thread of `cpu`, on `endpoint`: hands
    /// `message` (its header and badge; `words` from the caller's registers, the rest in
    /// its IPC buffer) to the first receiver and runs it, if that is what the slow path
    /// and the scheduler would do (the caller checked that no reschedule is pending).
    /// Returns the receiver if it did.
    #[inline(always)]
    pub(super) fn fast_call_registers(
        &mut self,
        cpu: usize,
        caller: usize,
        endpoint: usize,
        message: PendingSend,
        words: [u64; REGISTER_WORDS],
        platform: &impl Platform,
    ) -> Option<usize> {
        let receiver = self.take_fast_receiver(cpu, endpoint)?;
        let PendingSend { info, badge, .. } = message;
        self.copy_words_past_registers(platform, caller, receiver, info);
        self.write_message(receiver, info, words, badge);
        self.hand_over_call(cpu, caller, receiver);
        Some(receiver)
    }

    /// Fast-path `ReplyRecv`: hands the reply of `replier`, the current thread of `cpu`
    /// (header `info`, `words` from its registers, the rest in its IPC buffer), to its
    /// reply target and runs it while the replier waits on `endpoint`, if that is what
    /// the slow path and the scheduler would do (the caller checked that no reschedule is
    /// pending). A reply to a vCPU only passes the common checks here and is left to
    /// [`Kernel::fast_reply_to_vcpu`] ([`FastIpc::ReplyToVcpu`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments, reason = "the fast path's registers, passed on as they are")]
    pub(super) fn fast_reply_recv(
        &mut self,
        cpu: usize,
        replier: usize,
        cap: usize,
        endpoint: usize,
        info: MessageInfo,
        words: [u64; REGISTER_WORDS],
        platform: &impl Platform,
    ) -> Option<FastIpc> {
        let caller = self.threads[replier].reply_target.get()?;
        let target = &self.threads[caller];
        let bound = self.threads[replier].bound_notification as usize;
        if self.endpoints[endpoint].has_senders()
            || self.notifications.get(bound).is_some_and(NotificationObject::is_signalled)
            || usize::from(target.cpu) != cpu
            || !self.cpus[cpu].outranks_ready(target.priority)
        {
            return None;
        }
        if target.vcpu.is_some() {
            // Thread slots fit in a byte (see `Link`), endpoints in 16 bits (`MAX_ENDPOINTS`)
            // and capability indices in 32 (`fast_path` looked this one up).
            let reply = VcpuReply {
                caller: caller as u8,
                replier: replier as u8,
                endpoint: endpoint as u16,
                cap: cap as u32,
            };
            return Some(FastIpc::ReplyToVcpu(reply));
        }
        self.copy_words_past_registers(platform, replier, caller, info);
        self.write_message(caller, info, words, 0);
        self.finish_fast_reply(cpu, replier, caller, endpoint);
        Some(FastIpc::Handed(thread_id(caller)))
    }

    /// Finishes a fast-path `ReplyRecv` of the current thread of `cpu` that answers a
    /// vCPU ([`FastIpc::ReplyToVcpu`]) with `args`: the vCPU gets the answer and runs,
    /// unless the reply stops it, or it is held or owes its vgic-server an event first.
    /// Returns the vCPU's thread if it did, else nothing changed and the slow path takes
    /// the system call (the shell stores `args` for it).
    #[inline(always)]
    pub fn fast_reply_to_vcpu(
        &mut self,
        cpu: usize,
        reply: VcpuReply,
        args: IpcArguments,
        platform: &impl Platform,
    ) -> Option<ThreadId> {
        let (caller, replier, endpoint) = reply.slots();
        let info = MessageInfo::from_raw(args.info)?;
        let target = &self.threads[caller];
        if info.label() == ipc::vcpu::STOP || target.held || target.vgic_event_due {
            return None;
        }
        self.finish_fast_reply(cpu, replier, caller, endpoint);
        // Last, when little else is live: the answer may call out of line.
        self.answer_vcpu(platform, replier, caller, info, args.words);
        Some(thread_id(caller))
    }

    /// The end of a fast-path `ReplyRecv` whose reply `caller` has: `replier` owes nobody
    /// and waits on `endpoint`, and `caller` runs.
    #[inline(always)]
    pub(super) fn finish_fast_reply(&mut self, cpu: usize, replier: usize, caller: usize, endpoint: usize) {
        self.threads[replier].reply_target = Link::NONE;
        self.block_on(cpu, replier, endpoint, Waiters::Receivers);
        self.switch_to(cpu, caller);
    }

    /// `thread`, the current thread of `cpu`, faulted: it stops for good, the console says
    /// so, and a fault message goes to its fault endpoint if it has one.
    pub(super) fn fault(
        &mut self,
        cpu: usize,
        thread: usize,
        esr: u64,
        far: u64,
        platform: &mut impl Platform,
    ) {
        let tcb = &mut self.threads[thread];
        tcb.state = ThreadState::Inactive;
        tcb.reply_target = Link::NONE;
        let (name, pc) = (tcb.name, tcb.context.elr);
        kernel_line(platform, format_args!("thread {name} faulted: esr={esr:#x} far={far:#x} pc={pc:#x}"));
        self.cpus[cpu].request_reschedule();
        let endpoint = tcb.fault_endpoint;
        if endpoint != bootinfo::NONE {
            let message = PendingSend {
                kind: SendKind::Fault { esr, far },
                info: FAULT_INFO,
                badge: self.threads[thread].fault_badge,
            };
            self.send(cpu, thread, endpoint as usize, message, platform);
        }
    }
}

/// Header of fault messages.
const FAULT_INFO: MessageInfo = MessageInfo::new(fault::COMPONENT_FAULT, 4).unwrap();
