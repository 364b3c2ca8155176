//! bench-vm-server: the bench guest's fault endpoint and device. It answers the guest's
//! MMIO reads (in registers only, `ipc::ShortMessage`) and PSCI_VERSION calls at once, so the guest's figures measure the kernel's
//! trap path; relays the guest's figures as `bench <name> <n>` lines; holds the guest
//! until the bench-runner has finished (notification `go`) and tells the runner when the
//! guest is done (notification `guest-done`), which then ends the run. The protocol is in
//! the library.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

component_rt::entry!(el0::main);

/// The component proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el0 {
    use super::{GO, GUEST_DONE, REQUESTS};
    use bench_vm_server::{Action, answer_device, decide, resume};
    use ipc::{ShortMessage, vcpu};

    /// Serves the guest's faults forever; the bench-runner ends the run. Messages travel in
    /// registers (`ShortMessage`): a bench-device access is answered from them; anything
    /// else is read whole (the rest of a long one is in the IPC buffer) for `decide`.
    pub fn main() -> ! {
        let (mut message, mut badge) = REQUESTS.recv_short().expect("recv on REQUESTS");
        loop {
            let reply = match answer_device(&message, badge.0) {
                Some(reply) => reply,
                None => {
                    let reply = match decide(&message.into_message(), badge.0) {
                        Action::Reply(reply) => reply,
                        Action::WaitForRunner => {
                            GO.wait().expect("wait on GO");
                            resume(&[0])
                        }
                        Action::Report { name, instructions } => {
                            log::info!("bench {name} {instructions}");
                            resume(&[0])
                        }
                        Action::Done => {
                            GUEST_DONE.signal().expect("signal GUEST_DONE");
                            ipc::Message::new(vcpu::STOP)
                        }
                    };
                    ShortMessage::new(reply.label(), reply.body())
                }
            };
            (message, badge) = REQUESTS.reply_recv_short(&reply).expect("reply_recv on REQUESTS");
        }
    }
}
