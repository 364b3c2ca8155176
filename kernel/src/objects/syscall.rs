//! System-call decoding: the IPC fast path, then the slow path that defines the semantics.

use super::cap::object_with_right;
use super::console::component_lines;
use super::endpoint::{PendingSend, SendKind};
use super::{Kernel, ThreadId, return_empty, thread_id};
use crate::Platform;
use bootinfo::cap_kind;
use ipc::vcpu::LrWrite;
use ipc::{
    Error, IpcBuffer, MAX_DEBUG_BYTES, MAX_WORDS, MessageInfo, REGISTER_WORDS, Syscall, endpoint_rights,
    invocation, notification_rights,
};

/// The argument registers of a `Call` or `ReplyRecv` that the fast path reads: the
/// capability index (`x0`), the `MessageInfo` (`x1`) and message words 0-3 (`x2..=x5`).
#[derive(Clone, Copy, Debug)]
pub struct IpcArguments {
    /// `x0`.
    pub cap: u64,
    /// `x1`.
    pub info: u64,
    /// `x2..=x5`.
    pub words: [u64; REGISTER_WORDS],
}

impl IpcArguments {
    /// The arguments as saved in `context`.
    #[inline(always)]
    pub fn of(context: &crate::UserContext) -> Self {
        let x = &context.x;
        Self { cap: x[0], info: x[1], words: [x[2], x[3], x[4], x[5]] }
    }

    /// Whether the header is well formed with a length that fits in registers.
    #[inline(always)]
    pub fn fits_registers(self) -> bool {
        MessageInfo::from_raw(self.info).is_some_and(MessageInfo::in_registers)
    }
    /// Puts the arguments back into `context` (where the fast path did not save them).
    #[inline(always)]
    pub fn store(self, context: &mut crate::UserContext) {
        context.x[0] = self.cap;
        context.x[1] = self.info;
        context.x[2..2 + REGISTER_WORDS].copy_from_slice(&self.words);
    }
}

/// What the IPC fast path did ([`Kernel::fast_ipc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastIpc {
    /// Nothing changed: the slow path takes the system call.
    Declined,
    /// The message or reply went straight to a component (never a vCPU), which is now
    /// the CPU's current thread.
    Handed(ThreadId),
    /// A `ReplyRecv` that answers a vCPU passed the checks of every fast `ReplyRecv`, and
    /// nothing changed yet: the shell finishes it with [`Kernel::fast_reply_to_vcpu`], out
    /// of line, so that the components' path makes no call and needs no stack frame.
    ReplyToVcpu(VcpuReply),
}

/// A `ReplyRecv` to a vCPU that the fast path took on ([`FastIpc::ReplyToVcpu`]): one
/// register, so that the shell's out-of-line call passes it, the lock's guard, the
/// `PerCpu` and the header and words all in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuReply {
    /// The vCPU's thread.
    pub(super) caller: u8,
    /// The replying thread (the current one).
    pub(super) replier: u8,
    /// The endpoint the replier then waits on.
    pub(super) endpoint: u16,
    /// The capability the replier used (its `x0`, for the slow path if it comes to that).
    pub(super) cap: u32,
}

const _: () = assert!(bootinfo::MAX_ENDPOINTS <= 1 << 16, "a `VcpuReply` holds an endpoint in 16 bits");

impl VcpuReply {
    /// The vCPU's thread, the replier's thread and the endpoint. Only the fast path makes
    /// a `VcpuReply` (its fields are the kernel's), from thread slots and an endpoint
    /// capability's object, which boot checked.
    #[inline(always)]
    pub(super) fn slots(self) -> (usize, usize, usize) {
        let (caller, replier, endpoint) =
            (usize::from(self.caller), usize::from(self.replier), self.endpoint as usize);
        // SAFETY: see above; telling the compiler spares the bounds checks.
        unsafe {
            core::hint::assert_unchecked(
                caller < super::THREAD_SLOTS
                    && replier < super::THREAD_SLOTS
                    && endpoint < bootinfo::MAX_ENDPOINTS,
            )
        };
        (caller, replier, endpoint)
    }

    /// The replier's arguments: its capability index from this, the rest as given.
    #[inline(always)]
    pub fn arguments(self, info: u64, words: [u64; REGISTER_WORDS]) -> IpcArguments {
        IpcArguments { cap: u64::from(self.cap), info, words }
    }
}

/// Decodes a message header register.
fn message_info(raw: u64) -> Result<MessageInfo, Error> {
    MessageInfo::from_raw(raw).ok_or(Error::InvalidArgument)
}

impl Kernel<'_> {
    /// The fast path of a `Call` (`syscall` [`Syscall::Call`]) or `ReplyRecv` of the
    /// current thread of `cpu` with argument registers `args`, when the module docs'
    /// conditions hold; returns what it did (`None`: declined). Anything unusual, errors
    /// included, is left to the slow path, with nothing changed.
    #[inline(always)]
    pub(super) fn fast_path(
        &mut self,
        cpu: usize,
        syscall: Syscall,
        args: IpcArguments,
        platform: &impl Platform,
    ) -> Option<FastIpc> {
        let state = &self.cpus[cpu];
        if state.reschedule_pending() {
            return None;
        }
        let caller = state.current()?;
        let right = if syscall == Syscall::Call { endpoint_rights::CALL } else { endpoint_rights::RECV };
        let index = usize::try_from(args.cap).ok()?;
        let cap = *self.threads[caller].caps.get(index)?;
        let endpoint = object_with_right(cap, cap_kind::ENDPOINT, right).ok()?;
        // SAFETY: `Kernel::new` checked the object of every endpoint capability against
        // the number of endpoints (`validate_caps`), at most `MAX_ENDPOINTS`, and capability
        // tables never change. Telling the compiler spares the fast path's bounds checks.
        unsafe { core::hint::assert_unchecked(endpoint < bootinfo::MAX_ENDPOINTS) };
        let info = MessageInfo::from_raw(args.info)?;
        if syscall == Syscall::Call {
            let message = PendingSend { kind: SendKind::Call, info, badge: cap.badge };
            let receiver = self.fast_call_registers(cpu, caller, endpoint, message, args.words, platform)?;
            Some(FastIpc::Handed(thread_id(receiver)))
        } else {
            // SAFETY: `index` is below the length of a capability table, which boot-info
            // counts in 32 bits (`bootinfo::Table`). Telling the compiler lets a reply to
            // a vCPU carry it in 32 bits without a test.
            unsafe { core::hint::assert_unchecked(index <= u32::MAX as usize) };
            self.fast_reply_recv(cpu, caller, index, endpoint, info, args.words, platform)
        }
    }

    /// Runs the system call of `caller` (the current thread of `cpu`): on success the
    /// operation sets its results or blocks the caller; an error only sets `x0`.
    pub(super) fn slow_path(&mut self, cpu: usize, caller: usize, platform: &mut impl Platform) {
        let result = match Syscall::from_u64(self.threads[caller].context.x[7]) {
            Some(syscall) => self.dispatch(cpu, caller, syscall, platform),
            None => Err(Error::IllegalOperation),
        };
        if let Err(error) = result {
            self.threads[caller].context.x[0] = error as u64;
        }
        self.flush_kicks(platform);
    }

    fn dispatch(
        &mut self,
        cpu: usize,
        caller: usize,
        syscall: Syscall,
        platform: &mut impl Platform,
    ) -> Result<(), Error> {
        let context = &self.threads[caller].context;
        let (cap_index, raw_info) = (context.x[0], context.x[1]);
        match syscall {
            Syscall::Call => {
                let cap = self.lookup(caller, cap_index)?;
                if cap.kind != cap_kind::ENDPOINT {
                    return self.invoke(cpu, caller, cap, message_info(raw_info)?, platform);
                }
                let endpoint = object_with_right(cap, cap_kind::ENDPOINT, endpoint_rights::CALL)?;
                let message =
                    PendingSend { kind: SendKind::Call, info: message_info(raw_info)?, badge: cap.badge };
                self.send(cpu, caller, endpoint, message, platform);
            }
            Syscall::Send => {
                let cap = self.lookup(caller, cap_index)?;
                let endpoint = object_with_right(cap, cap_kind::ENDPOINT, endpoint_rights::SEND)?;
                let message =
                    PendingSend { kind: SendKind::Send, info: message_info(raw_info)?, badge: cap.badge };
                self.send(cpu, caller, endpoint, message, platform);
            }
            Syscall::Recv => {
                let cap = self.lookup(caller, cap_index)?;
                let endpoint = object_with_right(cap, cap_kind::ENDPOINT, endpoint_rights::RECV)?;
                self.receive(cpu, caller, endpoint, platform);
            }
            Syscall::Reply => {
                self.reply(cpu, caller, message_info(raw_info)?, platform)?;
                return_empty(&mut self.threads[caller].context, 0);
            }
            Syscall::ReplyRecv => {
                let cap = self.lookup(caller, cap_index)?;
                let endpoint = object_with_right(cap, cap_kind::ENDPOINT, endpoint_rights::RECV)?;
                let info = message_info(raw_info)?;
                // With nobody to answer, ReplyRecv is a plain Recv.
                if self.threads[caller].reply_target.get().is_some() {
                    self.reply(cpu, caller, info, platform)?;
                }
                self.receive(cpu, caller, endpoint, platform);
            }
            Syscall::Signal => {
                let cap = self.lookup(caller, cap_index)?;
                let notification =
                    object_with_right(cap, cap_kind::NOTIFICATION, notification_rights::SIGNAL)?;
                self.signal(cpu, notification, cap.badge);
                return_empty(&mut self.threads[caller].context, 0);
            }
            Syscall::Wait => {
                let cap = self.lookup(caller, cap_index)?;
                let notification = object_with_right(cap, cap_kind::NOTIFICATION, notification_rights::WAIT)?;
                self.wait(cpu, caller, notification);
            }
            Syscall::Poll => {
                let cap = self.lookup(caller, cap_index)?;
                let notification = object_with_right(cap, cap_kind::NOTIFICATION, notification_rights::WAIT)?;
                self.poll(caller, notification);
            }
            Syscall::Yield => {
                // Yielding ends the time slice early.
                self.timer_tick(cpu);
                return_empty(&mut self.threads[caller].context, 0);
            }
            Syscall::DebugWrite => self.debug_write(caller, raw_info, platform)?,
        }
        Ok(())
    }

    /// `Call` on a capability other than an endpoint: an invocation chosen by the label.
    fn invoke(
        &mut self,
        cpu: usize,
        caller: usize,
        cap: bootinfo::Cap,
        info: MessageInfo,
        platform: &mut impl Platform,
    ) -> Result<(), Error> {
        let words = &self.threads[caller].context.x[2..6];
        let (word0, word1) = (words[0], words[1]);
        match (cap.kind, info.label()) {
            (cap_kind::IRQ_HANDLER, invocation::IRQ_ACK) => {
                platform.irq_ack(self.irqs[cap.object as usize].intid)
            }
            (cap_kind::CONTROL, invocation::CONTROL_SHUTDOWN) => {
                if info.length() < 1 {
                    return Err(Error::InvalidArgument);
                }
                // The status is a 32-bit word by the protocol; higher bits are ignored.
                let status = self.threads[caller].context.x[2] as u32;
                platform.shutdown(self.nonce, status);
            }
            (cap_kind::VCPU, invocation::VCPU_START) => {
                if info.length() < 2 {
                    return Err(Error::InvalidArgument);
                }
                self.start_vcpu(cpu, cap.object as usize, word0, word1)?;
            }
            (cap_kind::VCPU, invocation::VCPU_SYNC) => {
                if info.length() != 0 {
                    return Err(Error::InvalidArgument);
                }
                // Answers the caller, or blocks it until the vCPU's CPU has folded it.
                return self.sync_vcpu(cpu, caller, cap.object as usize, platform);
            }
            (cap_kind::VCPU, invocation::VCPU_WRITE_LRS) => {
                let write = self
                    .message_words::<{ LrWrite::WORDS }>(caller, info, platform)
                    .and_then(|words| LrWrite::from_words(&words))
                    .ok_or(Error::InvalidArgument)?;
                self.write_vcpu_lrs(cpu, cap.object as usize, &write, platform)?;
            }
            (cap_kind::VCPU, invocation::VCPU_STOP) => {
                if info.length() != 0 {
                    return Err(Error::InvalidArgument);
                }
                // Answers the caller, or blocks it until the vCPU's CPU has stopped it.
                return self.stop_vcpu(cpu, caller, cap.object as usize, platform);
            }
            (cap_kind::VCPU, invocation::VCPU_KICK) => {
                if info.length() != 0 {
                    return Err(Error::InvalidArgument);
                }
                self.kick_vcpu(cpu, cap.object as usize);
            }
            (cap_kind::CONSOLE, invocation::CONSOLE_WRITE) => {
                if info.length() < 1 {
                    return Err(Error::InvalidArgument);
                }
                let mut bytes = [0; MAX_DEBUG_BYTES];
                let bytes = self.read_debug_bytes(caller, word0, &mut bytes, platform)?;
                platform.console_write(bytes);
            }
            (cap_kind::IRQ_HANDLER | cap_kind::CONTROL | cap_kind::VCPU | cap_kind::CONSOLE, _) => {
                return Err(Error::IllegalOperation);
            }
            // Notifications have no invocations.
            _ => return Err(Error::WrongObjectType),
        }
        return_empty(&mut self.threads[caller].context, 0);
        Ok(())
    }

    /// The `N` words of the message `thread` sends with header `info`: registers, then its
    /// IPC buffer; `None` unless the message is exactly `N` words long (every caller
    /// decodes a fixed layout, and this copies no more than it needs).
    pub(super) fn message_words<const N: usize>(
        &self,
        thread: usize,
        info: MessageInfo,
        platform: &impl Platform,
    ) -> Option<[u64; N]> {
        const { assert!(N > REGISTER_WORDS && N <= MAX_WORDS, "a message with words in the IPC buffer") };
        if info.length() != N {
            return None;
        }
        let mut words = [0; N];
        words[..REGISTER_WORDS].copy_from_slice(&self.threads[thread].context.x[2..2 + REGISTER_WORDS]);
        let buffer = platform.phys_to_virt(self.threads[thread].ipc_buffer.0).cast::<IpcBuffer>();
        // SAFETY: boot-info gives the thread its own IPC buffer page and `phys_to_virt`
        // maps it for the kernel; `REGISTER_WORDS < N <= MAX_WORDS`, the size of the
        // buffer's array. The thread is in this system call, so nothing else writes the
        // page now.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (&raw const (*buffer).words).cast::<u64>().add(REGISTER_WORDS),
                words.as_mut_ptr().add(REGISTER_WORDS),
                N - REGISTER_WORDS,
            );
        }
        Some(words)
    }

    /// `DebugWrite` of `count` bytes from the IPC buffer's `debug` field.
    fn debug_write(&mut self, thread: usize, count: u64, platform: &mut impl Platform) -> Result<(), Error> {
        let mut bytes = [0; MAX_DEBUG_BYTES];
        let bytes = self.read_debug_bytes(thread, count, &mut bytes, platform)?;
        let tcb = &mut self.threads[thread];
        component_lines(tcb.name, bytes, platform);
        return_empty(&mut tcb.context, 0);
        Ok(())
    }

    /// The first `count` bytes of `thread`'s IPC buffer `debug` field, copied into `bytes`;
    /// more than `MAX_DEBUG_BYTES` is [`Error::InvalidArgument`].
    fn read_debug_bytes<'b>(
        &self,
        thread: usize,
        count: u64,
        bytes: &'b mut [u8; MAX_DEBUG_BYTES],
        platform: &impl Platform,
    ) -> Result<&'b mut [u8], Error> {
        let length = usize::try_from(count)
            .ok()
            .filter(|&length| length <= MAX_DEBUG_BYTES)
            .ok_or(Error::InvalidArgument)?;
        let buffer = platform.phys_to_virt(self.threads[thread].ipc_buffer.0).cast::<IpcBuffer>();
        // SAFETY: boot-info gives the thread its own IPC buffer page and `phys_to_virt` maps
        // it for the kernel; `length` is at most the size of `debug`. The thread is in this
        // system call, so nothing else writes the page now.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (&raw const (*buffer).debug).cast::<u8>(),
                bytes.as_mut_ptr(),
                length,
            );
        }
        Ok(&mut bytes[..length])
    }
}
