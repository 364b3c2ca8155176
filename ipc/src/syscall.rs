//! EL0 system-call wrappers: one `svc #0` per call, methods named after the syscall.

use crate::{
    Badge, Cap, Console, Control, Endpoint, Error, IpcBuffer, IrqHandler, Label, MAX_DEBUG_BYTES, Message,
    MessageInfo, Notification, REGISTER_WORDS, Result, ShortMessage, Syscall, Vcpu, invocation, layout,
};
use core::arch::asm;

/// Registers as they go into and come out of `svc #0` (`badge` only comes out).
struct Frame {
    cap: u64,
    info: u64,
    words: [u64; REGISTER_WORDS],
    badge: u64,
}

#[inline]
fn svc(syscall: Syscall, frame: Frame) -> Frame {
    let mut out = frame;
    // SAFETY: `svc #0` enters the kernel, which reads x0-x5 and x7 and writes x0-x6 (and, for
    // `Call` and `ReplyRecv`, x8-x17) per the ABI in the crate documentation; every one of
    // them is declared as an operand here.
    unsafe {
        asm!(
            "svc #0",
            inout("x0") out.cap,
            inout("x1") out.info,
            inout("x2") out.words[0],
            inout("x3") out.words[1],
            inout("x4") out.words[2],
            inout("x5") out.words[3],
            lateout("x6") out.badge,
            in("x7") syscall as u64,
            out("x8") _,
            out("x9") _,
            out("x10") _,
            out("x11") _,
            out("x12") _,
            out("x13") _,
            out("x14") _,
            out("x15") _,
            out("x16") _,
            out("x17") _,
            options(nostack),
        );
    }
    out
}

#[inline]
fn ipc_buffer() -> *mut IpcBuffer {
    layout::IPC_BUFFER_VA as *mut IpcBuffer
}

/// Puts `message` in registers and the IPC buffer, runs `syscall` on `cap`, and returns
/// the received message with its badge.
///
/// Always inlined, with the IPC-buffer copies for long messages kept out of line so that
/// inlining stays cheap: an out-of-line body made every caller pass the message and the
/// result through memory, and each extra copy or clear of a whole `Message` is a `memcpy`
/// or `memset` call on this target, which dominates a short round trip.
#[inline(always)]
fn message_syscall(syscall: Syscall, cap: u32, message: &Message) -> Result<(Message, Badge)> {
    if message.info.length() > REGISTER_WORDS {
        store_buffer_words(message);
    }
    let words = [message.words[0], message.words[1], message.words[2], message.words[3]];
    let out = svc(syscall, Frame { cap: u64::from(cap), info: message.info.raw(), words, badge: 0 });
    if let Some(error) = Error::from_code(out.cap) {
        return Err(error);
    }
    let info = MessageInfo::from_kernel(out.info);
    let mut received = Message::new(info.label());
    received.info = info;
    received.words[..REGISTER_WORDS].copy_from_slice(&out.words);
    if info.length() > REGISTER_WORDS {
        load_buffer_words(&mut received);
    }
    Ok((received, Badge(out.badge)))
}

/// Runs `syscall` on `cap` with `message` in registers only, and returns the received
/// header, register words and badge (see [`ShortMessage`]).
#[inline(always)]
fn short_syscall(syscall: Syscall, cap: u32, message: &ShortMessage) -> Result<(ShortMessage, Badge)> {
    let frame = Frame { cap: u64::from(cap), info: message.info.raw(), words: message.words, badge: 0 };
    let out = svc(syscall, frame);
    if let Some(error) = Error::from_code(out.cap) {
        return Err(error);
    }
    let info = MessageInfo::from_kernel(out.info);
    Ok((ShortMessage { info, words: out.words }, Badge(out.badge)))
}

/// Copies the words of `message` past [`REGISTER_WORDS`] into the IPC buffer.
#[inline(never)]
fn store_buffer_words(message: &Message) {
    let range = REGISTER_WORDS..message.info.length();
    // SAFETY: the kernel maps this thread's IPC buffer at IPC_BUFFER_VA for its whole life,
    // and only this thread and the kernel (while this thread is in a syscall) touch it.
    unsafe { (&mut (*ipc_buffer()).words)[range.clone()].copy_from_slice(&message.words[range]) };
}

/// Copies the words of `received` past [`REGISTER_WORDS`] out of the IPC buffer.
#[inline(never)]
fn load_buffer_words(received: &mut Message) {
    let range = REGISTER_WORDS..received.info.length();
    // SAFETY: as in `store_buffer_words`; the kernel wrote these words before returning.
    received.words[range.clone()].copy_from_slice(unsafe { &(&(*ipc_buffer()).words)[range] });
}

impl ShortMessage {
    /// The whole message as a [`Message`]: the register words and, for a longer one, the
    /// rest from this thread's IPC buffer, where the kernel left them. Call it before the
    /// next system call, which may overwrite them.
    pub fn into_message(self) -> Message {
        let mut message = Message::new(self.label());
        message.info = self.info;
        message.words[..REGISTER_WORDS].copy_from_slice(&self.words);
        if self.info.length() > REGISTER_WORDS {
            load_buffer_words(&mut message);
        }
        message
    }
}

impl Cap<Endpoint> {
    /// `Call`: send `message` and wait for the reply.
    #[inline]
    pub fn call(self, message: &Message) -> Result<Message> {
        message_syscall(Syscall::Call, self.index().0, message).map(|(reply, _)| reply)
    }

    /// `Send`: send `message`, blocking until a receiver takes it.
    #[inline]
    pub fn send(self, message: &Message) -> Result<()> {
        message_syscall(Syscall::Send, self.index().0, message).map(|_| ())
    }

    /// `Recv`: wait for a message; returns it with the sender's badge.
    #[inline]
    pub fn recv(self) -> Result<(Message, Badge)> {
        message_syscall(Syscall::Recv, self.index().0, &Message::new(Label(0)))
    }

    /// `ReplyRecv`: reply to the last caller with `reply`, then wait for the next message.
    #[inline]
    pub fn reply_recv(self, reply: &Message) -> Result<(Message, Badge)> {
        message_syscall(Syscall::ReplyRecv, self.index().0, reply)
    }

    /// `Call` with a register-only message: send `message`, wait for the reply.
    #[inline]
    pub fn call_short(self, message: &ShortMessage) -> Result<ShortMessage> {
        short_syscall(Syscall::Call, self.index().0, message).map(|(reply, _)| reply)
    }

    /// `Recv` of a register-only message, with the sender's badge.
    #[inline]
    pub fn recv_short(self) -> Result<(ShortMessage, Badge)> {
        short_syscall(Syscall::Recv, self.index().0, &ShortMessage::default())
    }

    /// `ReplyRecv` with register-only messages: reply to the last caller with `reply`,
    /// then wait for the next message.
    #[inline]
    pub fn reply_recv_short(self, reply: &ShortMessage) -> Result<(ShortMessage, Badge)> {
        short_syscall(Syscall::ReplyRecv, self.index().0, reply)
    }
}

/// `Reply`: answer the last caller without blocking.
#[inline]
pub fn reply(message: &Message) -> Result<()> {
    message_syscall(Syscall::Reply, 0, message).map(|_| ())
}

impl Cap<Notification> {
    /// `Signal`: OR this capability's badge into the notification word.
    #[inline]
    pub fn signal(self) -> Result<()> {
        let out =
            svc(Syscall::Signal, Frame { cap: u64::from(self.index().0), info: 0, words: [0; 4], badge: 0 });
        Error::from_code(out.cap).map_or(Ok(()), Err)
    }

    /// `Wait`: block until the word is non-zero, then take and clear it.
    #[inline]
    pub fn wait(self) -> Result<Badge> {
        let out =
            svc(Syscall::Wait, Frame { cap: u64::from(self.index().0), info: 0, words: [0; 4], badge: 0 });
        Error::from_code(out.cap).map_or(Ok(Badge(out.badge)), Err)
    }

    /// `Poll`: take and clear the word without blocking (`Badge(0)` when nothing was signalled).
    #[inline]
    pub fn poll(self) -> Result<Badge> {
        let out =
            svc(Syscall::Poll, Frame { cap: u64::from(self.index().0), info: 0, words: [0; 4], badge: 0 });
        Error::from_code(out.cap).map_or(Ok(Badge(out.badge)), Err)
    }
}

impl Cap<IrqHandler> {
    /// Invocation `IRQ_ACK`: the interrupt is handled, deliver the next one.
    #[inline]
    pub fn ack(self) -> Result<()> {
        message_syscall(Syscall::Call, self.index().0, &Message::new(invocation::IRQ_ACK)).map(|_| ())
    }
}

impl Cap<Control> {
    /// Invocation `CONTROL_SHUTDOWN`: the kernel prints its result line with `status`
    /// (0 = pass) and powers the machine off. Does not return on success.
    #[inline]
    pub fn shutdown(self, status: u32) -> Result<()> {
        let message = Message::new(invocation::CONTROL_SHUTDOWN).with_words(&[u64::from(status)]);
        message_syscall(Syscall::Call, self.index().0, &message).map(|_| ())
    }
}

impl Cap<Vcpu> {
    /// Invocation `VCPU_START`: start this stopped vCPU at guest-physical `entry` with
    /// `x0 = context` (PSCI CPU_ON).
    #[inline]
    pub fn start(self, entry: u64, context: u64) -> Result<()> {
        let message = Message::new(invocation::VCPU_START).with_words(&[entry, context]);
        message_syscall(Syscall::Call, self.index().0, &message).map(|_| ())
    }

    /// Invocation `VCPU_SYNC`: stops this vCPU wherever it runs and returns its virtual
    /// CPU interface state; it stays held until `write_lrs`.
    #[inline]
    pub fn sync(self) -> Result<crate::vcpu::GicSnapshot> {
        let (reply, _) =
            message_syscall(Syscall::Call, self.index().0, &Message::new(invocation::VCPU_SYNC))?;
        crate::vcpu::GicSnapshot::from_words(reply.body()).ok_or(Error::InvalidArgument)
    }

    /// Invocation `VCPU_WRITE_LRS`: this vCPU runs next with `write`'s list registers and
    /// maintenance bits, and its hold (from `sync`) ends.
    #[inline]
    pub fn write_lrs(self, write: &crate::vcpu::LrWrite) -> Result<()> {
        let message = Message::new(invocation::VCPU_WRITE_LRS).with_words(&write.words());
        message_syscall(Syscall::Call, self.index().0, &message).map(|_| ())
    }

    /// Invocation `VCPU_KICK`: end this vCPU's WFI, if it sleeps in one.
    #[inline]
    pub fn kick(self) -> Result<()> {
        message_syscall(Syscall::Call, self.index().0, &Message::new(invocation::VCPU_KICK)).map(|_| ())
    }

    /// Invocation `VCPU_STOP`: stop this vCPU wherever it is (it returns once it is
    /// stopped); `start` runs it again.
    #[inline]
    pub fn stop(self) -> Result<()> {
        message_syscall(Syscall::Call, self.index().0, &Message::new(invocation::VCPU_STOP)).map(|_| ())
    }
}

impl Cap<Console> {
    /// Invocation `CONSOLE_WRITE`: put `bytes` on the console exactly as given (longer
    /// strings go in pieces of [`MAX_DEBUG_BYTES`]).
    #[inline]
    pub fn write(self, bytes: &[u8]) -> Result<()> {
        for chunk in bytes.chunks(MAX_DEBUG_BYTES) {
            // SAFETY: see `message_syscall`; the buffer is ours while we are not in a syscall.
            unsafe { (&mut (*ipc_buffer()).debug)[..chunk.len()].copy_from_slice(chunk) };
            let message = Message::new(invocation::CONSOLE_WRITE).with_words(&[chunk.len() as u64]);
            message_syscall(Syscall::Call, self.index().0, &message)?;
        }
        Ok(())
    }
}

/// `Yield`: let other threads of the same priority run.
#[inline]
pub fn yield_now() {
    svc(Syscall::Yield, Frame { cap: 0, info: 0, words: [0; 4], badge: 0 });
}

/// `DebugWrite`: print `bytes` on the kernel console (longer strings are cut into pieces).
#[inline]
pub fn debug_write(bytes: &[u8]) {
    for chunk in bytes.chunks(MAX_DEBUG_BYTES) {
        // SAFETY: see `message_syscall`; the buffer is ours while we are not in a syscall.
        unsafe { (&mut (*ipc_buffer()).debug)[..chunk.len()].copy_from_slice(chunk) };
        svc(Syscall::DebugWrite, Frame { cap: 0, info: chunk.len() as u64, words: [0; 4], badge: 0 });
    }
}
