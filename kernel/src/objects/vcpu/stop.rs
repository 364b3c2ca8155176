//! `VCPU_STOP`: a vCPU stops wherever it is, for the VMM's PSCI SYSTEM_RESET.
//!
//! A vCPU that runs on another CPU is stopped there by the stop SGI that `VCPU_SYNC`
//! uses: the caller waits in `BlockedSync` until that CPU's [`Kernel::complete_syncs`]
//! has stopped it. Anywhere else it stops at once: out of its run queue (ready), out of
//! its endpoint's queue (a trap or vGIC event not yet taken), out of its server's reply
//! slot (a trap being served: the server's later reply finds no reply target, so it goes
//! nowhere and `ReplyRecv` is a plain `Recv`), or from WFI or a hold. Its forwarded
//! trap, pending EL1 work, WFI deadline, vGIC event and unloaded `LOAD_LRS` answer are
//! dropped, and its hold ends; `VCPU_START` starts it afresh.

use super::super::queue::Link;
use super::super::{Kernel, ThreadState, return_empty};
use super::Forwarded;
use crate::Platform;

impl Kernel<'_> {
    /// `VCPU_STOP` from `caller` (current on `cpu`) on vCPU `vcpu`: answered at once
    /// unless the vCPU runs on another CPU (then `caller` waits in `BlockedSync` for
    /// [`Kernel::complete_syncs`] there). A second caller while that stop is in progress
    /// gets [`ipc::Error::IllegalOperation`].
    pub(in super::super) fn stop_vcpu(
        &mut self,
        cpu: usize,
        caller: usize,
        vcpu: usize,
        platform: &mut impl Platform,
    ) -> Result<(), ipc::Error> {
        let thread = self.first_vcpu_thread + vcpu;
        // The caller runs on `cpu`, so a running vCPU runs on another CPU.
        if self.threads[thread].state != ThreadState::Running {
            self.halt_vcpu(vcpu);
            return_empty(&mut self.threads[caller].context, 0);
            return Ok(());
        }
        if self.vcpus[vcpu].stop_waiter.get().is_some() {
            return Err(ipc::Error::IllegalOperation);
        }
        self.vcpus[vcpu].stop_waiter = Link::to(caller);
        self.threads[caller].state = ThreadState::BlockedSync;
        self.cpus[cpu].request_reschedule();
        platform.stop_vcpus(usize::from(self.threads[thread].cpu));
        Ok(())
    }

    /// `cpu` got the stop SGI: every vCPU pinned here that a `VCPU_STOP` waits for stops,
    /// and its waiter gets the answer and wakes (the caller flushes the kicks).
    pub(in super::super) fn complete_stops(&mut self, cpu: usize) {
        for vcpu in 0..self.vcpu_count {
            let thread = self.first_vcpu_thread + vcpu;
            if usize::from(self.threads[thread].cpu) != cpu {
                continue;
            }
            let Some(waiter) = self.vcpus[vcpu].stop_waiter.take() else { continue };
            self.halt_vcpu(vcpu);
            return_empty(&mut self.threads[waiter].context, 0);
            self.wake(cpu, waiter);
        }
    }

    /// Stops vCPU `vcpu`, which is running only if it runs on the CPU doing this (see
    /// the module docs).
    fn halt_vcpu(&mut self, vcpu: usize) {
        let thread = self.first_vcpu_thread + vcpu;
        let (own_cpu, priority) = (usize::from(self.threads[thread].cpu), self.threads[thread].priority);
        match self.threads[thread].state {
            ThreadState::Running => self.cpus[own_cpu].request_reschedule(),
            ThreadState::Ready => self.cpus[own_cpu].remove_ready(&mut self.links, priority, thread),
            ThreadState::BlockedSend(endpoint) => {
                self.endpoints[endpoint as usize].remove_sender(&mut self.links, thread)
            }
            ThreadState::BlockedReply => {
                for server in self.threads.iter_mut() {
                    if server.reply_target == Link::to(thread) {
                        server.reply_target = Link::NONE;
                    }
                }
            }
            _ => {}
        }
        let tcb = &mut self.threads[thread];
        tcb.state = ThreadState::Stopped;
        tcb.held = false;
        tcb.vgic_event_due = false;
        let object = &mut self.vcpus[vcpu];
        object.forwarded = Forwarded::NOTHING;
        object.request = None;
        object.wake_at = None;
        object.lrs_due = false;
    }
}
