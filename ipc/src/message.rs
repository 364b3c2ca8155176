//! Architecture-independent parts of the ABI: numbers, message layout, capability types.

use core::marker::PhantomData;

/// Number of message words passed in registers (`x2..=x5`).
pub const REGISTER_WORDS: usize = 4;
/// Largest message, in 64-bit words; words past [`REGISTER_WORDS`] live in the IPC buffer.
/// Kept small because a [`Message`] holds them inline and is moved by value.
pub const MAX_WORDS: usize = 16;
// `MessageInfo::from_raw` tests the header's low half against it in one comparison, which
// needs the length field (7 bits) to hold every length up to it.
const _: () = assert!(MAX_WORDS < 0x80);
/// Largest string one [`Syscall::DebugWrite`] prints, in bytes.
pub const MAX_DEBUG_BYTES: usize = 256;

/// System-call numbers, passed in `x7`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// Send to an endpoint and wait for the reply; on other objects, an invocation.
    Call = 0,
    /// Reply to the last caller, then wait on an endpoint.
    ReplyRecv = 1,
    /// Send to an endpoint, blocking until a receiver takes the message.
    Send = 2,
    /// Wait for a message on an endpoint.
    Recv = 3,
    /// Reply to the last caller without blocking.
    Reply = 4,
    /// OR the capability's badge into a notification's word.
    Signal = 5,
    /// Wait until a notification's word is non-zero, then take it.
    Wait = 6,
    /// Take a notification's word without blocking (0 when nothing was signalled).
    Poll = 7,
    /// Give the rest of the time slice to threads of the same priority.
    Yield = 8,
    /// Print bytes from the IPC buffer on the kernel console, tagged with the thread's name.
    DebugWrite = 9,
}

impl Syscall {
    /// Decodes a syscall number, or `None` for an unknown one.
    #[inline]
    pub fn from_u64(number: u64) -> Option<Self> {
        Some(match number {
            0 => Self::Call,
            1 => Self::ReplyRecv,
            2 => Self::Send,
            3 => Self::Recv,
            4 => Self::Reply,
            5 => Self::Signal,
            6 => Self::Wait,
            7 => Self::Poll,
            8 => Self::Yield,
            9 => Self::DebugWrite,
            _ => return None,
        })
    }
}

/// Error codes returned in `x0`; 0 means success.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The capability index is out of range or the slot is empty.
    InvalidCapability = 1,
    /// The capability lacks the right the operation needs.
    NoRights = 2,
    /// The capability names an object of the wrong type for this operation.
    WrongObjectType = 3,
    /// A message length, label or argument is out of range.
    InvalidArgument = 4,
    /// `Reply` with nobody waiting for one.
    NoReplyTarget = 5,
    /// Unknown system call or invocation label.
    IllegalOperation = 6,
}

impl Error {
    /// Decodes a non-zero error code; unknown codes map to [`Error::IllegalOperation`].
    #[inline]
    pub fn from_code(code: u64) -> Option<Self> {
        Some(match code {
            0 => return None,
            1 => Self::InvalidCapability,
            2 => Self::NoRights,
            3 => Self::WrongObjectType,
            4 => Self::InvalidArgument,
            5 => Self::NoReplyTarget,
            _ => Self::IllegalOperation,
        })
    }
}

/// Result of a system call.
pub type Result<T> = core::result::Result<T, Error>;

/// A message label: what the message asks for, chosen by each protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Label(pub u32);

/// Header of every message: label and length in words, packed into one register.
///
/// Bits 0..=6 hold the length (0..=[`MAX_WORDS`]), bits 32..=63 the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MessageInfo(u64);

impl MessageInfo {
    /// A header for `length` words with `label`; `None` if `length` exceeds [`MAX_WORDS`].
    #[inline]
    pub const fn new(label: Label, length: usize) -> Option<Self> {
        if length > MAX_WORDS {
            return None;
        }
        Some(Self(((label.0 as u64) << 32) | length as u64))
    }

    /// Reinterprets a raw register value, rejecting lengths over [`MAX_WORDS`].
    #[inline]
    pub const fn from_raw(raw: u64) -> Option<Self> {
        // Bits 7..=31 must be clear and the length at most `MAX_WORDS` (below 128): both
        // hold exactly when the low half is at most `MAX_WORDS`, one comparison on the
        // kernel's fast path.
        if raw as u32 > MAX_WORDS as u32 {
            return None;
        }
        Some(Self(raw))
    }

    /// A header the kernel delivered (a received message's `x1`), taken as it is: the
    /// kernel passes on only headers it checked with [`MessageInfo::from_raw`] (or made
    /// itself), so the receiver does not check again, as seL4's libraries do not. Were it
    /// malformed anyway, a length past [`MAX_WORDS`] could only make a later slice of the
    /// message's words panic.
    #[inline]
    pub const fn from_kernel(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw register value.
    #[inline]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The label.
    #[inline]
    pub const fn label(self) -> Label {
        Label((self.0 >> 32) as u32)
    }

    /// The number of message words.
    #[inline]
    pub const fn length(self) -> usize {
        (self.0 & 0x7f) as usize
    }

    /// Whether every word travels in registers (the length is at most
    /// [`REGISTER_WORDS`]).
    #[inline]
    pub const fn in_registers(self) -> bool {
        // The low half is the length (`new` and `from_raw` keep bits 7..=31 clear); the
        // kernel's fast path makes the same test on the raw register, and the compiler
        // only sees that they agree when both are written this way.
        self.0 as u32 <= REGISTER_WORDS as u32
    }
}

/// The value a capability stamps on every message or signal sent through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Badge(pub u64);

/// Index of a slot in a thread's capability table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapIdx(pub u32);

/// Object type of an endpoint capability.
#[derive(Debug)]
pub enum Endpoint {}
/// Object type of a notification capability.
#[derive(Debug)]
pub enum Notification {}
/// Object type of an IRQ handler capability (a physical interrupt delivered to a notification).
#[derive(Debug)]
pub enum IrqHandler {}
/// Object type of the system-control capability (report a result and power off).
#[derive(Debug)]
pub enum Control {}
/// Object type of a guest vCPU capability.
#[derive(Debug)]
pub enum Vcpu {}
/// Object type of the raw console capability.
#[derive(Debug)]
pub enum Console {}

/// A typed capability: an index into the caller's table that says what it names.
#[derive(Debug)]
pub struct Cap<T> {
    index: CapIdx,
    object: PhantomData<T>,
}

impl<T> Clone for Cap<T> {
    #[inline]
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Cap<T> {}

impl<T> Cap<T> {
    /// Names slot `index`; the manifest's generated constants are the only callers.
    #[inline]
    pub const fn from_index(index: u32) -> Self {
        Self { index: CapIdx(index), object: PhantomData }
    }

    /// The slot index.
    #[inline]
    pub const fn index(self) -> CapIdx {
        self.index
    }
}

/// Rights bits of endpoint capabilities.
pub mod endpoint_rights {
    /// May `Recv` and `ReplyRecv`.
    pub const RECV: u8 = 1;
    /// May `Send`.
    pub const SEND: u8 = 2;
    /// May `Call` (send and wait for the reply).
    pub const CALL: u8 = 4;
}

/// Rights bits of notification capabilities.
pub mod notification_rights {
    /// May `Wait` and `Poll`.
    pub const WAIT: u8 = 1;
    /// May `Signal`.
    pub const SIGNAL: u8 = 2;
}

/// Invocation labels understood by kernel objects other than endpoints.
pub mod invocation {
    use super::Label;
    /// `IrqHandler`: the interrupt was handled; deliver the next one.
    pub const IRQ_ACK: Label = Label(1);
    /// `Control`: print the result line (word 0: status, 0 = pass) and power off.
    pub const CONTROL_SHUTDOWN: Label = Label(1);
    /// `Vcpu`: start a stopped vCPU (PSCI CPU_ON). Words: entry PC (guest-physical),
    /// x0 (context id). Its EL1 state is reset to the architected entry state (MMU off).
    pub const VCPU_START: Label = Label(1);
    /// `Vcpu`: stop the vCPU and read its virtual CPU interface state, wherever it is
    /// (a vCPU running or loaded on another CPU is stopped by IPI, and the caller waits
    /// until that CPU has folded its state). No words; the reply's words are
    /// [`crate::vcpu::GicSnapshot::words`]. The vCPU is then *held*: it does not enter the
    /// guest again until `VCPU_WRITE_LRS` on it; syncing a held vCPU returns the same
    /// state. A sync of the same vCPU still in progress for another caller is
    /// [`super::Error::IllegalOperation`].
    pub const VCPU_SYNC: Label = Label(2);
    /// `Vcpu`: replace the vCPU's list registers and ICH_HCR_EL2 UIE/NPIE bits, loaded
    /// when it next runs, and release the hold of `VCPU_SYNC`. Words:
    /// [`crate::vcpu::LrWrite::words`]. On a vCPU that is not held this is allowed only
    /// while it runs nowhere and is loaded on no other CPU, else
    /// [`super::Error::IllegalOperation`].
    pub const VCPU_WRITE_LRS: Label = Label(3);
    /// `Vcpu`: wake the vCPU if it sleeps in WFI; nothing otherwise. No words.
    pub const VCPU_KICK: Label = Label(4);
    /// `Vcpu`: stop the vCPU wherever it is (PSCI SYSTEM_RESET): running on another CPU
    /// it is stopped there by IPI while the caller waits; ready, in WFI, held, or waiting
    /// for a server it becomes stopped at once. A trap it forwarded is forgotten: the
    /// server's later reply goes nowhere (as to a reply target that is gone). It then
    /// waits for `VCPU_START`. No words. A stop of a running vCPU that another caller's
    /// stop already waits for is [`super::Error::IllegalOperation`].
    pub const VCPU_STOP: Label = Label(5);
    /// `Console`: write the `IpcBuffer::debug` bytes (count in word 0) to the console
    /// exactly as given (a guest's UART output).
    pub const CONSOLE_WRITE: Label = Label(1);
}

/// Labels of the fault messages the kernel sends to a thread's fault endpoint.
pub mod fault {
    use super::Label;
    /// A component took a synchronous exception. Words: ESR_EL2, FAR_EL2, ELR_EL2 (the PC),
    /// and the index of the faulting thread in boot-info.
    pub const COMPONENT_FAULT: Label = Label(0xFA17);
}

/// Label of what `Recv` and `ReplyRecv` return when the caller's bound notification (the
/// manifest's `bound-notification`) has a non-zero word instead of a message: no words,
/// and the badge is that word, which the kernel cleared as `Wait` does. When a message and
/// the word are both ready at the call, the notification comes first.
pub const NOTIFIED: Label = Label(0xffff_fffe);

/// A message: header plus up to [`MAX_WORDS`] words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Label and length.
    pub info: MessageInfo,
    /// The words; only the first `info.length()` are meaningful.
    pub words: [u64; MAX_WORDS],
}

impl Message {
    /// An empty message with `label`.
    #[inline]
    pub const fn new(label: Label) -> Self {
        Self { info: MessageInfo((label.0 as u64) << 32), words: [0; MAX_WORDS] }
    }

    /// This message with `words` as its body; panics if more than [`MAX_WORDS`].
    #[inline]
    pub fn with_words(mut self, words: &[u64]) -> Self {
        self.words[..words.len()].copy_from_slice(words);
        self.info = MessageInfo::new(self.info.label(), words.len()).expect("message too long");
        self
    }

    /// The meaningful words.
    #[inline]
    pub fn body(&self) -> &[u64] {
        &self.words[..self.info.length()]
    }

    /// The label.
    #[inline]
    pub fn label(&self) -> Label {
        self.info.label()
    }
}

/// A message of at most [`REGISTER_WORDS`] words, sent and received in registers only:
/// the `*_short` syscall wrappers move it without the IPC buffer and without the 16-word
/// [`Message`], which is what a short round trip spends most of its EL0 instructions on.
///
/// The kernel sees the same registers as for a [`Message`], so both ends need not use the
/// same API. A received message longer than [`REGISTER_WORDS`] keeps its true header: its
/// words from [`REGISTER_WORDS`] on are in the receiver's IPC buffer, which these wrappers
/// do not read (and a header sent with a longer length makes the kernel take those words
/// from the sender's IPC buffer, as for any message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ShortMessage {
    /// Label and length.
    pub info: MessageInfo,
    /// Words 0 to 3; past the length, what the sender's registers held ([`ShortMessage::new`]
    /// puts zeros there).
    pub words: [u64; REGISTER_WORDS],
}

impl ShortMessage {
    /// A message with `label` and `words`; panics if more than [`REGISTER_WORDS`].
    #[inline]
    pub fn new(label: Label, words: &[u64]) -> Self {
        let mut message = Self {
            info: MessageInfo::new(label, words.len()).expect("message too long"),
            words: [0; REGISTER_WORDS],
        };
        assert!(words.len() <= REGISTER_WORDS, "a short message has at most {REGISTER_WORDS} words");
        message.words[..words.len()].copy_from_slice(words);
        message
    }

    /// The label.
    #[inline]
    pub fn label(&self) -> Label {
        self.info.label()
    }

    /// The meaningful words held in registers (at most [`REGISTER_WORDS`]).
    #[inline]
    pub fn body(&self) -> &[u64] {
        &self.words[..self.info.length().min(REGISTER_WORDS)]
    }
}

/// A thread's IPC buffer: one page the kernel and the thread share.
#[repr(C, align(4096))]
pub struct IpcBuffer {
    /// Message words; slots `0..REGISTER_WORDS` are unused because those travel in registers.
    pub words: [u64; MAX_WORDS],
    /// Bytes for [`Syscall::DebugWrite`].
    pub debug: [u8; MAX_DEBUG_BYTES],
}

const _: () = assert!(core::mem::size_of::<IpcBuffer>() == 4096);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_info_round_trips_label_and_length() {
        let info = MessageInfo::new(Label(0xdead_beef), MAX_WORDS).unwrap();
        assert_eq!(info.label(), Label(0xdead_beef));
        assert_eq!(info.length(), MAX_WORDS);
        assert_eq!(MessageInfo::from_raw(info.raw()), Some(info));
    }

    #[test]
    fn message_info_rejects_oversized_length_and_reserved_bits() {
        assert_eq!(MessageInfo::new(Label(0), MAX_WORDS + 1), None);
        assert_eq!(MessageInfo::from_raw(MAX_WORDS as u64 + 1), None);
        assert_eq!(MessageInfo::from_raw(1 << 8), None);
    }

    #[test]
    fn short_messages_hold_up_to_four_words() {
        let message = ShortMessage::new(Label(9), &[1, 2]);
        assert_eq!((message.label(), message.body(), message.words), (Label(9), &[1, 2][..], [1, 2, 0, 0]));
        let full = ShortMessage::new(Label(1), &[1, 2, 3, 4]);
        assert_eq!(full.body(), [1, 2, 3, 4]);
        let long = ShortMessage { info: MessageInfo::new(Label(1), 9).unwrap(), words: [5; 4] };
        assert_eq!(long.body(), [5; 4], "the rest of a long message is in the IPC buffer");
        assert!(std::panic::catch_unwind(|| ShortMessage::new(Label(1), &[0; 5])).is_err());
    }

    #[test]
    fn syscall_numbers_decode() {
        for n in 0..10 {
            assert_eq!(Syscall::from_u64(n).unwrap() as u64, n);
        }
        assert_eq!(Syscall::from_u64(10), None);
    }

    #[test]
    fn error_codes_decode() {
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Error::from_code(2), Some(Error::NoRights));
        assert_eq!(Error::from_code(99), Some(Error::IllegalOperation));
    }
}

/// The fixed virtual-address layout of every component's address space.
pub mod layout {
    /// Where the component's ELF is linked (its first loadable segment).
    pub const IMAGE_BASE: u64 = 0x0040_0000;
    /// Start of the heap region (size from the manifest).
    pub const HEAP_BASE: u64 = 0x2000_0000;
    /// One past the top of the stack; the stack grows down from here (size from the manifest),
    /// with an unmapped guard page below it.
    pub const STACK_TOP: u64 = 0x3000_0000;
    /// The thread's IPC buffer page, with an unmapped page between it and the stack.
    pub const IPC_BUFFER_VA: u64 = 0x3000_1000;
    /// Where shared and device memory regions are mapped from, in manifest order unless
    /// the mapping names its own address.
    pub const REGIONS_BASE: u64 = 0x4000_0000;
}
