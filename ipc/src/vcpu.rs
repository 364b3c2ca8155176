//! The vCPU fault protocol: what the kernel sends, on a guest vCPU's behalf, to the
//! endpoint that handles a trap, and what the handler's reply means.
//!
//! A trapped guest access becomes one `Call` from the vCPU: the vCPU waits while the
//! server works, and the server's reply (`ReplyRecv`) resumes it. For an MMIO read the
//! kernel writes the reply's value into the guest register (sign- or zero-extended as the
//! instruction asks) and advances the PC; for a write it advances the PC; for HVC the
//! return address already points past the instruction; a trapped SMC is advanced past.
//! The badge of the message is the badge of the route (or of the VM's fault endpoint) in
//! the manifest; the vCPU index is in the message.
//!
//! The words of the vCPU invocations that manage its virtual CPU interface
//! (`invocation::VCPU_SYNC`, `VCPU_WRITE_LRS`) are [`GicSnapshot`] and [`LrWrite`]. The
//! same state travels in a [`VGIC_EVENT`] (the vCPU's `Call` to its VM's vGIC endpoint)
//! and its [`LOAD_LRS`] reply.
//!
//! ```ignore
//! let (message, badge) = FAULTS.recv()?;
//! match ipc::vcpu::Fault::decode(&message) {
//!     Some(ipc::vcpu::Fault::Mmio(access)) if !access.write => reply(Reply::Resume([value, 0, 0, 0])),
//!     ...
//! }
//! ```

use crate::{Label, Message, MessageInfo, ShortMessage};

/// Label of an MMIO fault. Words: [`MmioAccess::encode`].
pub const MMIO: Label = Label(0x100);
/// Label of an HVC. Words: x0..=x7, vCPU index.
pub const HVC: Label = Label(0x101);
/// Label of a trapped SMC. Words: x0..=x7, vCPU index.
pub const SMC: Label = Label(0x102);
/// Label of a trapped system-register access. Words: [`SysRegAccess::encode`].
///
/// A write to ICC_SGI0R_EL1, ICC_SGI1R_EL1 or ICC_ASGI1R_EL1 of a VM with a vGIC endpoint
/// goes to that endpoint as a `Send` with the VM's vGIC badge instead: the PC has moved
/// past the MSR, and the vCPU continues as soon as the message is taken (no reply).
pub const SYSREG: Label = Label(0x103);
/// Label of a vGIC event: the vCPU `Call`s its VM's vGIC endpoint (with the VM's vGIC
/// badge) because the vgic-server must look at it: the maintenance interrupt fired, a
/// hardware-linked timer PPI (27 or 30) fired while its timers were loaded, or a timer
/// deadline passed while it slept in WFI. Words: [`VgicEvent::words`] (9 words: the
/// [`GicSnapshot`], then the vCPU index). The vCPU waits for the reply: [`LOAD_LRS`].
pub const VGIC_EVENT: Label = Label(0x104);

/// Reply label: resume the vCPU. Words: the read value (MMIO, system register), or the new
/// x0..=x3 (HVC, SMC).
pub const RESUME: Label = Label(0);
/// Reply label: inject a synchronous external data abort at the faulting address.
pub const INJECT_DATA_ABORT: Label = Label(1);
/// Reply label: inject an undefined-instruction exception.
pub const INJECT_UNDEFINED: Label = Label(2);
/// Reply label: do not resume; the vCPU stops until a `VCPU_START` (PSCI CPU_OFF).
pub const STOP: Label = Label(3);
/// Reply label to a [`VGIC_EVENT`] only: load these list registers and ICH_HCR_EL2
/// UIE/NPIE, then resume. Words: [`LrWrite::words`] (5 words). Any other reply to a
/// vGIC event (but [`STOP`]) resumes the vCPU with its list registers unchanged, as does
/// a malformed `LOAD_LRS`.
pub const LOAD_LRS: Label = Label(4);

/// One decoded guest MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// Guest-physical address.
    pub ipa: u64,
    /// Access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// A store (value valid) rather than a load.
    pub write: bool,
    /// The value stored (zero for loads).
    pub value: u64,
    /// Index of the vCPU in its VM.
    pub vcpu: u16,
}

impl MmioAccess {
    /// Message words: `[ipa, log2(size) | write << 8 | vcpu << 16, value]` (bits 2..=7
    /// of the second word are zero: a receiver decodes the size without a range check).
    pub fn encode(&self) -> Message {
        Message::new(MMIO).with_words(&self.words())
    }

    /// The words of [`MmioAccess::encode`], without building a [`Message`] (the kernel's
    /// trap path).
    pub fn words(&self) -> [u64; 3] {
        let size_log2 = u64::from(self.size.trailing_zeros() & 3);
        let flags = size_log2 | u64::from(self.write) << 8 | u64::from(self.vcpu) << 16;
        [self.ipa, flags, self.value]
    }

    /// Decodes an [`MMIO`] message; `None` if it is malformed.
    pub fn decode(message: &Message) -> Option<Self> {
        Self::from_body(message.label(), message.body())
    }

    /// Decodes an [`MMIO`] message received as a [`ShortMessage`] (its three words travel
    /// in registers); `None` if it is malformed or longer. Inline, so that a server's
    /// check of an access it answers at once is a few instructions.
    #[inline]
    pub fn decode_short(message: &ShortMessage) -> Option<Self> {
        // Label and length in one comparison of the header.
        if message.info != Self::INFO {
            return None;
        }
        let [ipa, flags, value, _] = message.words;
        Self::from_words(ipa, flags, value)
    }

    /// The header of an [`MMIO`] message.
    const INFO: MessageInfo = MessageInfo::new(MMIO, 3).expect("three words fit");

    #[inline]
    fn from_body(label: Label, body: &[u64]) -> Option<Self> {
        let [ipa, flags, value] = body.try_into().ok()?;
        if label != MMIO {
            return None;
        }
        Self::from_words(ipa, flags, value)
    }

    /// The access of an [`MMIO`] message's words; `None` if the reserved bits 2..=7 of
    /// `flags` are not zero.
    #[inline]
    fn from_words(ipa: u64, flags: u64, value: u64) -> Option<Self> {
        if flags & 0xfc != 0 {
            return None;
        }
        let size = 1 << (flags & 3);
        Some(Self { ipa, size, write: flags & (1 << 8) != 0, value, vcpu: (flags >> 16) as u16 })
    }
}

/// A trapped MSR/MRS (ESR_EL2 EC 0x18), identified by its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    /// `op0 << 14 | op1 << 11 | CRn << 7 | CRm << 3 | op2`, as in the MRS instruction.
    pub encoding: u16,
    /// MSR (value valid) rather than MRS.
    pub write: bool,
    /// The value written.
    pub value: u64,
    /// Index of the vCPU in its VM.
    pub vcpu: u16,
}

impl SysRegAccess {
    /// Message words: `[encoding | write << 16 | vcpu << 32, value]`.
    pub fn encode(&self) -> Message {
        Message::new(SYSREG).with_words(&self.words())
    }

    /// The words of [`SysRegAccess::encode`], without building a [`Message`].
    pub fn words(&self) -> [u64; 2] {
        let id = u64::from(self.encoding) | u64::from(self.write) << 16 | u64::from(self.vcpu) << 32;
        [id, self.value]
    }

    /// Decodes a [`SYSREG`] message.
    pub fn decode(message: &Message) -> Option<Self> {
        let [id, value] = message.body().try_into().ok()?;
        if message.label() != SYSREG {
            return None;
        }
        Some(Self { encoding: id as u16, write: id & (1 << 16) != 0, value, vcpu: (id >> 32) as u16 })
    }
}

/// A hypervisor or secure monitor call: the guest's x0..=x7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// x0..=x7 at the call.
    pub x: [u64; 8],
    /// Index of the vCPU in its VM.
    pub vcpu: u16,
}

impl Call {
    /// Message words: x0..=x7, vCPU, under `label` ([`HVC`] or [`SMC`]).
    pub fn encode(&self, label: Label) -> Message {
        Message::new(label).with_words(&self.words())
    }

    /// The words of [`Call::encode`], without building a [`Message`].
    pub fn words(&self) -> [u64; 9] {
        let mut words = [0u64; 9];
        words[..8].copy_from_slice(&self.x);
        words[8] = u64::from(self.vcpu);
        words
    }

    /// Decodes an [`HVC`] or [`SMC`] message.
    pub fn decode(message: &Message) -> Option<Self> {
        let body: &[u64; 9] = message.body().try_into().ok()?;
        if message.label() != HVC && message.label() != SMC {
            return None;
        }
        let mut x = [0; 8];
        x.copy_from_slice(&body[..8]);
        Some(Self { x, vcpu: body[8] as u16 })
    }
}

/// Number of list registers a vCPU has (ICH_LR0..3_EL2, as QEMU implements).
pub const LIST_REGISTERS: usize = 4;

/// [`GicSnapshot::hardware_lines`] bit: the virtual timer's output is asserted
/// (CNTV_CTL: ENABLE, ISTATUS set, IMASK clear).
pub const LINE_VIRTUAL_TIMER: u64 = 1 << 0;
/// [`GicSnapshot::hardware_lines`] bit: the EL1 physical timer's output is asserted.
pub const LINE_PHYSICAL_TIMER: u64 = 1 << 1;

/// ICH_HCR_EL2.UIE: maintenance interrupt when at most one list register is valid.
pub const HCR_UIE: u64 = 1 << 1;
/// ICH_HCR_EL2.NPIE: maintenance interrupt when no list register is pending.
pub const HCR_NPIE: u64 = 1 << 3;

/// A vCPU's virtual CPU interface state: the reply to `VCPU_SYNC`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GicSnapshot {
    /// ICH_LR0..3_EL2, raw.
    pub lrs: [u64; LIST_REGISTERS],
    /// ICH_VMCR_EL2.
    pub vmcr: u64,
    /// ICH_AP0R0_EL2.
    pub ap0r0: u64,
    /// ICH_AP1R0_EL2.
    pub ap1r0: u64,
    /// [`LINE_VIRTUAL_TIMER`] and [`LINE_PHYSICAL_TIMER`].
    pub hardware_lines: u64,
}

impl GicSnapshot {
    /// Number of words of [`GicSnapshot::words`].
    pub const WORDS: usize = LIST_REGISTERS + 4;

    /// The reply words: `[lr0, lr1, lr2, lr3, vmcr, ap0r0, ap1r0, hardware_lines]`.
    pub fn words(&self) -> [u64; Self::WORDS] {
        let [lr0, lr1, lr2, lr3] = self.lrs;
        [lr0, lr1, lr2, lr3, self.vmcr, self.ap0r0, self.ap1r0, self.hardware_lines]
    }

    /// Decodes the reply words; `None` if there are not exactly [`GicSnapshot::WORDS`].
    pub fn from_words(words: &[u64]) -> Option<Self> {
        let [lr0, lr1, lr2, lr3, vmcr, ap0r0, ap1r0, hardware_lines]: [u64; Self::WORDS] =
            words.try_into().ok()?;
        Some(Self { lrs: [lr0, lr1, lr2, lr3], vmcr, ap0r0, ap1r0, hardware_lines })
    }
}

/// New list registers and maintenance settings for a vCPU: the words of `VCPU_WRITE_LRS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LrWrite {
    /// ICH_LR0..3_EL2, raw.
    pub lrs: [u64; LIST_REGISTERS],
    /// The ICH_HCR_EL2 bits to set: only [`HCR_UIE`] and [`HCR_NPIE`].
    pub hcr: u64,
}

impl LrWrite {
    /// Number of words of [`LrWrite::words`].
    pub const WORDS: usize = LIST_REGISTERS + 1;

    /// The invocation's words: `[lr0, lr1, lr2, lr3, hcr]`.
    pub fn words(&self) -> [u64; Self::WORDS] {
        let [lr0, lr1, lr2, lr3] = self.lrs;
        [lr0, lr1, lr2, lr3, self.hcr]
    }

    /// Decodes the invocation's words; `None` if there are not exactly [`LrWrite::WORDS`]
    /// or `hcr` has bits other than UIE and NPIE.
    pub fn from_words(words: &[u64]) -> Option<Self> {
        let [lr0, lr1, lr2, lr3, hcr]: [u64; Self::WORDS] = words.try_into().ok()?;
        if hcr & !(HCR_UIE | HCR_NPIE) != 0 {
            return None;
        }
        Some(Self { lrs: [lr0, lr1, lr2, lr3], hcr })
    }
}

/// The words of a [`VGIC_EVENT`]: the vCPU's virtual CPU interface state at the event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicEvent {
    /// Its list registers, VMCR, active priorities and timer lines, live at the event.
    pub snapshot: GicSnapshot,
    /// Index of the vCPU in its VM.
    pub vcpu: u16,
}

impl VgicEvent {
    /// Number of words of [`VgicEvent::words`].
    pub const WORDS: usize = GicSnapshot::WORDS + 1;

    /// Message words: [`GicSnapshot::words`], then the vCPU index.
    pub fn words(&self) -> [u64; Self::WORDS] {
        let mut words = [0; Self::WORDS];
        words[..GicSnapshot::WORDS].copy_from_slice(&self.snapshot.words());
        words[GicSnapshot::WORDS] = u64::from(self.vcpu);
        words
    }

    /// Message of [`VgicEvent::words`] under [`VGIC_EVENT`].
    pub fn encode(&self) -> Message {
        Message::new(VGIC_EVENT).with_words(&self.words())
    }

    /// Decodes a [`VGIC_EVENT`] message; `None` if it is malformed.
    pub fn decode(message: &Message) -> Option<Self> {
        let body = message.body();
        if message.label() != VGIC_EVENT || body.len() != Self::WORDS {
            return None;
        }
        let snapshot = GicSnapshot::from_words(&body[..GicSnapshot::WORDS])?;
        Some(Self { snapshot, vcpu: body[GicSnapshot::WORDS] as u16 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_access_round_trips() {
        let access = MmioAccess { ipa: 0x0800_0004, size: 4, write: true, value: 0xdead, vcpu: 3 };
        assert_eq!(access.words()[1], 2 | 1 << 8 | 3 << 16);
        for size in [1, 2, 4, 8] {
            let access = MmioAccess { size, ..access };
            assert_eq!(MmioAccess::decode(&access.encode()), Some(access));
        }
        assert_eq!(MmioAccess::decode(&access.encode()), Some(access));
    }

    #[test]
    fn mmio_access_rejects_bad_sizes_and_labels() {
        let mut message = MmioAccess { ipa: 0, size: 4, write: false, value: 0, vcpu: 0 }.encode();
        message.words[1] = 1 << 2;
        assert_eq!(MmioAccess::decode(&message), None, "reserved bits set");
        let other = Message::new(HVC).with_words(&[0, 4, 0]);
        assert_eq!(MmioAccess::decode(&other), None);
    }

    #[test]
    fn mmio_access_decodes_from_registers_only_when_it_fits() {
        let access = MmioAccess { ipa: 0x0a00_0000, size: 8, write: false, value: 0, vcpu: 1 };
        let short = ShortMessage::new(MMIO, &access.words());
        assert_eq!(MmioAccess::decode_short(&short), Some(access));
        let long = ShortMessage { info: MessageInfo::new(MMIO, 9).unwrap(), ..short };
        assert_eq!(MmioAccess::decode_short(&long), None);
        for length in [0, 2, 4] {
            let other_length = ShortMessage { info: MessageInfo::new(MMIO, length).unwrap(), ..short };
            assert_eq!(MmioAccess::decode_short(&other_length), None, "length {length}");
        }
        let other_label = ShortMessage { info: MessageInfo::new(HVC, 3).unwrap(), ..short };
        assert_eq!(MmioAccess::decode_short(&other_label), None);
        let reserved = ShortMessage::new(MMIO, &[0x0a00_0000, 3 | 1 << 7, 0]);
        assert_eq!(MmioAccess::decode_short(&reserved), None);
    }

    #[test]
    fn sysreg_and_calls_round_trip() {
        let access = SysRegAccess { encoding: 0xc5e2, write: false, value: 0, vcpu: 1 };
        assert_eq!(SysRegAccess::decode(&access.encode()), Some(access));
        let call = Call { x: [0x8400_0000, 1, 2, 3, 4, 5, 6, 7], vcpu: 2 };
        assert_eq!(Call::decode(&call.encode(SMC)), Some(call));
        assert_eq!(Call::decode(&call.encode(MMIO)), None);
    }

    #[test]
    fn gic_snapshot_round_trips() {
        let snapshot = GicSnapshot {
            lrs: [1 << 62 | 27, 0, 1 << 63 | 30, 5],
            vmcr: 0xf0_0003,
            ap0r0: 1,
            ap1r0: 1 << 31,
            hardware_lines: LINE_VIRTUAL_TIMER | LINE_PHYSICAL_TIMER,
        };
        assert_eq!(GicSnapshot::from_words(&snapshot.words()), Some(snapshot));
        assert_eq!(GicSnapshot::from_words(&snapshot.words()[..7]), None);
    }

    #[test]
    fn vgic_event_round_trips_and_rejects_other_labels_and_lengths() {
        let snapshot = GicSnapshot { lrs: [1, 2, 3, 4], vmcr: 5, ap0r0: 6, ap1r0: 7, hardware_lines: 1 };
        let event = VgicEvent { snapshot, vcpu: 3 };
        assert_eq!(event.words(), [1, 2, 3, 4, 5, 6, 7, 1, 3]);
        assert_eq!(VgicEvent::decode(&event.encode()), Some(event));
        assert_eq!(VgicEvent::decode(&Message::new(SYSREG).with_words(&event.words())), None);
        assert_eq!(VgicEvent::decode(&Message::new(VGIC_EVENT).with_words(&event.words()[..8])), None);
    }

    #[test]
    fn lr_write_round_trips_and_rejects_other_hcr_bits() {
        let write = LrWrite { lrs: [1 << 62 | 27, 2, 3, 4], hcr: HCR_UIE | HCR_NPIE };
        assert_eq!(LrWrite::from_words(&write.words()), Some(write));
        assert_eq!(LrWrite::from_words(&write.words()[..4]), None);
        let enable = LrWrite { hcr: 1, ..write };
        assert_eq!(LrWrite::from_words(&enable.words()), None);
    }
}
