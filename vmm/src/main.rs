//! The VMM component: one instance per VM. It receives the VM's HVC/SMC traps and its
//! PL011 accesses on one endpoint, serves them with the [`vmm`] library and answers each
//! with ReplyRecv; the library's documentation has the protocol.
//!
//! Capabilities (names in `system.toml`): `requests` (recv on the endpoint that the VM's
//! fault endpoint and PL011 route name), `vcpus` (every vCPU of the VM), `console`,
//! `control`, `vgic` (call on the vgic-server's endpoint, badge `ipc::vgic::badge::VMM`),
//! `its` (call on the its-server's endpoint, badge `ipc::its::badge::VMM`),
//! `host-uart-irq` (SPI 33), and the mapped host PL011 page `host-uart`. The host UART
//! IRQ's notification is bound to this thread: it arrives on `requests` labelled
//! `ipc::NOTIFIED`. xtask maps two more, without manifest entries, into the component that
//! receives a VM's faults: the VM's RAM (`VM_RAM`, read-write) and its image, the initial
//! RAM contents (`VM_IMAGE`, read-only, [`ipc::vm_image`]), which a reset copies back.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

component_rt::entry!(el0::main);

/// The component proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el0 {
    use super::{
        CONSOLE, CONTROL, HOST_UART, HOST_UART_IRQ, ITS, REQUESTS, VCPUS, VGIC, VM_IMAGE, VM_IMAGE_SIZE,
        VM_RAM, VM_RAM_IPA, VM_RAM_SIZE,
    };
    use ipc::vgic::{DONE, SpiRequest};
    use ipc::vm_image::Boot;
    use ipc::{Message, NOTIFIED};
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

        fn stop(&mut self, vcpu: usize) -> Result<(), ipc::Error> {
            VCPUS[vcpu].stop()
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

        fn reset_servers(&mut self) {
            match ITS.call(&Message::new(ipc::its::RESET)) {
                Ok(reply) if reply.label() == ipc::its::DELIVERED => {}
                Ok(reply) => log::warn!("the its-server refused to reset: label {:#x}", reply.label().0),
                Err(error) => log::warn!("resetting the its-server failed: {error:?}"),
            }
            match VGIC.call(&Message::new(ipc::vgic::RESET)) {
                Ok(reply) if reply.label() == DONE => {}
                Ok(reply) => log::warn!("the vgic-server refused to reset: label {:#x}", reply.label().0),
                Err(error) => log::warn!("resetting the vgic-server failed: {error:?}"),
            }
        }

        fn restore_ram(&mut self) -> Option<Boot> {
            let header = VM_IMAGE as *const u64;
            // SAFETY: xtask maps the VM's image read-only at VM_IMAGE for this component's
            // whole life, and it starts with its magic and length (ipc::vm_image).
            let first_words = unsafe { [header.read_volatile(), header.add(1).read_volatile()] };
            let length = usize::try_from(ipc::vm_image::length(first_words)?).ok()?;
            if length > VM_IMAGE_SIZE {
                return None;
            }
            // SAFETY: the image's length bytes at VM_IMAGE are mapped (xtask maps the whole
            // image, within VM_IMAGE_SIZE as checked), read-only and never written.
            let image = unsafe { core::slice::from_raw_parts(VM_IMAGE as *const u8, length) };
            // SAFETY: the VM's RAM is mapped read-write at VM_RAM (VM_RAM_SIZE bytes) for
            // this component's whole life. Every vCPU is stopped and both servers have
            // answered their reset, so nothing else touches guest RAM while this runs.
            let ram = unsafe { core::slice::from_raw_parts_mut(VM_RAM as *mut u8, VM_RAM_SIZE) };
            vmm::reset::restore(image, ram, VM_RAM_IPA)
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
