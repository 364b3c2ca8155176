//! The VMM component: one instance per VM. It receives the VM's HVC/SMC traps and its
//! PL011 accesses on one endpoint, serves them with the [`vmm`] library and answers each
//! with ReplyRecv; the library's documentation has the protocol.
//!
//! Capabilities (names in `system.toml`): `requests` (recv on the endpoint that the VM's
//! fault endpoint and PL011 route name), `vcpus` (every vCPU of the VM), `console`,
//! `control`, `vgic` (call on the vgic-server's endpoint, badge `ipc::vgic::badge::DEVICE`),
//! `host-uart-irq` (SPI 33), and the mapped host PL011 page `host-uart`. The host UART
//! IRQ's notification is bound to this thread: it arrives on `requests` labelled
//! `ipc::NOTIFIED`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(target_os = "none")]
include!(env!("HYP_CAPS"));
#[cfg(target_os = "none")]
component_rt::entry!(el0::main);

/// Host builds (for the library's tests) have nothing to run.
#[cfg(not(target_os = "none"))]
fn main() {}

/// The component proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el0 {
    use super::{CONSOLE, CONTROL, HOST_UART, HOST_UART_IRQ, REQUESTS, VCPUS, VGIC};
    use ipc::NOTIFIED;
    use ipc::vgic::{DONE, SpiRequest};
    use vmm::pl011::{flag, interrupt, reg};
    use vmm::psci::VcpuControl;
    use vmm::{Platform, Vmm};

    /// The receive interrupts of the host UART, the only ones the VMM touches.
    const RX_INTERRUPTS: u32 = interrupt::RX | interrupt::RT;

    /// The VMM's capabilities and the host UART's registers.
    struct Host;

    impl Host {
        fn read(offset: u64) -> u32 {
            // SAFETY: HOST_UART is the host PL011's 4 KiB register page, mapped as device
            // memory in this component for its whole life; `offset` is one of its registers.
            unsafe { core::ptr::read_volatile((HOST_UART + offset as usize) as *const u32) }
        }

        fn write(offset: u64, value: u32) {
            // SAFETY: as in `read`.
            unsafe { core::ptr::write_volatile((HOST_UART + offset as usize) as *mut u32, value) }
        }
    }

    impl VcpuControl for Host {
        fn start(&mut self, vcpu: usize, entry: u64, context_id: u64) -> Result<(), ipc::Error> {
            VCPUS[vcpu].start(entry, context_id)
        }
    }

    impl Platform for Host {
        fn console_write(&mut self, bytes: &[u8]) {
            if let Err(error) = CONSOLE.write(bytes) {
                log::warn!("console write failed: {error:?}");
            }
        }

        fn power_off(&mut self, status: u32) {
            log::info!("guest powered off, status {status}");
            if let Err(error) = CONTROL.shutdown(status) {
                log::warn!("shutdown failed: {error:?}");
            }
        }

        fn set_uart_line(&mut self, asserted: bool) {
            let request = SpiRequest::SetLevel { intid: vmm::PL011_INTID, level: asserted };
            match VGIC.call(&request.encode()) {
                Ok(reply) if reply.label() == DONE => {}
                Ok(reply) => log::warn!("the vgic-server refused {request:?}: label {:#x}", reply.label().0),
                Err(error) => log::warn!("calling the vgic-server failed: {error:?}"),
            }
        }

        fn host_rx_clear_interrupts(&mut self) {
            Self::write(reg::ICR, RX_INTERRUPTS);
        }

        fn host_receive(&mut self) -> Option<u16> {
            if Self::read(reg::FR) & flag::RXFE != 0 {
                return None;
            }
            Some((Self::read(reg::DR) & 0xfff) as u16)
        }

        fn host_rx_ack(&mut self) {
            if let Err(error) = HOST_UART_IRQ.ack() {
                log::warn!("acknowledging the host UART's IRQ failed: {error:?}");
            }
        }
    }

    /// Unmasks the host UART's receive interrupts, then serves the VM forever.
    pub fn main() -> ! {
        // Read-modify-write: the kernel's console never changes IMSC, but keep its bits.
        Host::write(reg::IMSC, Host::read(reg::IMSC) | RX_INTERRUPTS);
        let mut host = Host;
        let mut vmm = Vmm::new(VCPUS.len());
        let (mut message, mut badge) = REQUESTS.recv().expect("recv on REQUESTS");
        loop {
            let received = if message.label() == NOTIFIED {
                vmm.host_input(&mut host);
                REQUESTS.recv()
            } else {
                let reply = vmm.handle(&message, badge, &mut host).message();
                REQUESTS.reply_recv(&reply)
            };
            (message, badge) = received.expect("receiving on REQUESTS");
        }
    }
}
