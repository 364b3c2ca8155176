//! The protocol between the bench guest and `bench-vm-server`, and the server's decision
//! for each fault message, testable on the host.
//!
//! The guest's calls (HVC function identifiers in x0): [`PSCI_VERSION`] is the null HVC
//! that is timed; [`BENCH_READY`] blocks until the bench-runner has finished its rows, so
//! that the guest measures alone on its CPU; [`BENCH_REPORT`] hands over one figure (x1 =
//! index in [`ROWS`], x2 = instructions); [`BENCH_DONE`] ends the guest's part. Reads of the
//! route with badge [`DEVICE_BADGE`] return [`DEVICE_VALUE`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use ipc::vcpu::{self, Call, MmioAccess};
use ipc::{Message, MessageInfo, ShortMessage};

/// PSCI_VERSION (SMC32): the null HVC, answered at once.
pub const PSCI_VERSION: u64 = 0x8400_0000;
/// The answer to [`PSCI_VERSION`]: PSCI 1.1.
pub const PSCI_1_1: u64 = 0x1_0001;
/// PSCI NOT_SUPPORTED, for any other function.
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
/// Vendor-specific hypervisor call: wait until the bench-runner is done.
pub const BENCH_READY: u64 = 0x8600_0010;
/// Vendor-specific hypervisor call: x1 = row index in [`ROWS`], x2 = instructions.
pub const BENCH_REPORT: u64 = 0x8600_0011;
/// Vendor-specific hypervisor call: the guest has reported every row.
pub const BENCH_DONE: u64 = 0x8600_0012;

/// Badge of the VM's fault endpoint (HVC, SMC, system registers).
pub const FAULT_BADGE: u64 = 1;
/// Badge of the bench device's route.
pub const DEVICE_BADGE: u64 = 2;
/// What every read of the bench device returns.
pub const DEVICE_VALUE: u64 = 0x5eed;

/// The guest's figures, in the order of [`BENCH_REPORT`]'s index.
pub const ROWS: [&str; 3] = ["guest-mmio-read", "guest-hvc-to-server", "guest-unclaimed-read"];

/// What the server does with one fault message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reply with this message.
    Reply(Message),
    /// Wait for the bench-runner's go, then resume the vCPU.
    WaitForRunner,
    /// Print `bench <name> <instructions>`, then resume the vCPU.
    Report {
        /// The row's name (from [`ROWS`]).
        name: &'static str,
        /// Its figure.
        instructions: u64,
    },
    /// Tell the bench-runner, and stop the vCPU.
    Done,
}

/// A resume reply carrying `words`.
pub fn resume(words: &[u64]) -> Message {
    Message::new(vcpu::RESUME).with_words(words)
}

/// The answer to a bench-device access received in registers only (the timed MMIO path,
/// which never builds a [`Message`]); `None` for anything else, which [`decide`] handles.
/// Inline: it is most of the server's work per timed access.
#[inline]
pub fn answer_device(message: &ShortMessage, badge: u64) -> Option<ShortMessage> {
    if badge != DEVICE_BADGE {
        return None;
    }
    let access = MmioAccess::decode_short(message)?;
    let value = if access.write { 0 } else { DEVICE_VALUE };
    // One word: the kernel reads no further, so the request's words stay in the other
    // registers rather than being cleared.
    let [_, rest @ ..] = message.words;
    Some(ShortMessage { info: RESUME_ONE_WORD, words: [value, rest[0], rest[1], rest[2]] })
}

/// The header of a resume reply with one word.
const RESUME_ONE_WORD: MessageInfo = MessageInfo::new(vcpu::RESUME, 1).expect("one word fits");

/// Decides what to do with a fault message that arrived with `badge`.
pub fn decide(message: &Message, badge: u64) -> Action {
    if badge == DEVICE_BADGE
        && let Some(access) = MmioAccess::decode(message)
    {
        let value = if access.write { 0 } else { DEVICE_VALUE };
        return Action::Reply(resume(&[value]));
    }
    if badge != FAULT_BADGE {
        return Action::Reply(Message::new(vcpu::INJECT_DATA_ABORT));
    }
    let Some(call) = Call::decode(message) else {
        return Action::Reply(Message::new(vcpu::INJECT_UNDEFINED));
    };
    match call.x[0] {
        PSCI_VERSION => Action::Reply(resume(&[PSCI_1_1])),
        BENCH_READY => Action::WaitForRunner,
        BENCH_REPORT => match ROWS.get(call.x[1] as usize) {
            Some(name) => Action::Report { name, instructions: call.x[2] },
            None => Action::Reply(resume(&[NOT_SUPPORTED])),
        },
        BENCH_DONE => Action::Done,
        _ => Action::Reply(resume(&[NOT_SUPPORTED])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hvc(x: [u64; 3]) -> Message {
        Call { x: [x[0], x[1], x[2], 0, 0, 0, 0, 0], vcpu: 0 }.encode(vcpu::HVC)
    }

    #[test]
    fn device_reads_return_the_constant_and_writes_resume() {
        let read = MmioAccess { ipa: 0x0a00_0000, size: 4, write: false, value: 0, vcpu: 0 };
        assert_eq!(decide(&read.encode(), DEVICE_BADGE), Action::Reply(resume(&[DEVICE_VALUE])));
        let write = MmioAccess { write: true, value: 7, ..read };
        assert_eq!(decide(&write.encode(), DEVICE_BADGE), Action::Reply(resume(&[0])));
    }

    #[test]
    fn device_accesses_in_registers_are_answered_without_a_message() {
        // The reply's meaningful part: its header and its one word.
        let body = |reply: Option<ShortMessage>| reply.map(|reply| (reply.info, reply.body().to_vec()));
        let read = MmioAccess { ipa: 0x0a00_0000, size: 4, write: false, value: 0, vcpu: 0 };
        let short = ShortMessage::new(vcpu::MMIO, &read.words());
        let resume = |value| Some((MessageInfo::new(vcpu::RESUME, 1).unwrap(), vec![value]));
        assert_eq!(body(answer_device(&short, DEVICE_BADGE)), resume(DEVICE_VALUE));
        let write = MmioAccess { write: true, value: 7, ..read };
        let short_write = ShortMessage::new(vcpu::MMIO, &write.words());
        assert_eq!(body(answer_device(&short_write, DEVICE_BADGE)), resume(0));
        assert_eq!(answer_device(&short, FAULT_BADGE), None);
        let reserved_bits = [0x0a00_0000, 2 | 1 << 5, 0];
        assert_eq!(answer_device(&ShortMessage::new(vcpu::MMIO, &reserved_bits), DEVICE_BADGE), None);
    }

    #[test]
    fn psci_version_is_answered_at_once_and_unknown_calls_are_not_supported() {
        assert_eq!(decide(&hvc([PSCI_VERSION, 0, 0]), FAULT_BADGE), Action::Reply(resume(&[PSCI_1_1])));
        assert_eq!(decide(&hvc([0x8400_0009, 0, 0]), FAULT_BADGE), Action::Reply(resume(&[NOT_SUPPORTED])));
    }

    #[test]
    fn the_bench_calls_wait_report_and_finish() {
        assert_eq!(decide(&hvc([BENCH_READY, 0, 0]), FAULT_BADGE), Action::WaitForRunner);
        assert_eq!(
            decide(&hvc([BENCH_REPORT, 1, 1056]), FAULT_BADGE),
            Action::Report { name: "guest-hvc-to-server", instructions: 1056 }
        );
        assert_eq!(
            decide(&hvc([BENCH_REPORT, ROWS.len() as u64, 1]), FAULT_BADGE),
            Action::Reply(resume(&[NOT_SUPPORTED]))
        );
        assert_eq!(decide(&hvc([BENCH_DONE, 0, 0]), FAULT_BADGE), Action::Done);
    }

    #[test]
    fn anything_else_gets_an_exception() {
        let read = MmioAccess { ipa: 0x0a00_0000, size: 4, write: false, value: 0, vcpu: 0 };
        assert_eq!(decide(&read.encode(), 9), Action::Reply(Message::new(vcpu::INJECT_DATA_ABORT)));
        let sysreg = vcpu::SysRegAccess { encoding: 0xc000, write: false, value: 0, vcpu: 0 }.encode();
        assert_eq!(decide(&sysreg, FAULT_BADGE), Action::Reply(Message::new(vcpu::INJECT_UNDEFINED)));
    }
}
