//! The msi-device component: serves its register page (MMIO faults of the VM's route) with
//! the [`msi_device`] library and sends each MSI to the VM's its-server.
//!
//! Capabilities (names in `system.toml`): `requests` (recv on the endpoint of the VM's
//! route to the device) and `its` (call on the its-server's endpoint; its badge,
//! `ipc::its::badge::device(DeviceID)`, is the device's DeviceID).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

component_rt::entry!(el0::main);

/// The component proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el0 {
    use super::{ITS, REQUESTS};
    use ipc::Message;
    use ipc::its::{DELIVERED, Msi};
    use ipc::vcpu::{INJECT_DATA_ABORT, MMIO, MmioAccess, RESUME};
    use msi_device::Device;

    /// Bytes of the register page: the route is page aligned, so an address's offset in
    /// the page is its register offset.
    const PAGE_SIZE: u64 = 4096;

    /// One MSI to the its-server: whether it was delivered.
    fn send(event_id: u32) -> bool {
        match ITS.call(&Msi { event_id }.encode()) {
            Ok(reply) => reply.label() == DELIVERED,
            Err(error) => {
                log::warn!("MSI {event_id} to the its-server failed: {error:?}");
                false
            }
        }
    }

    /// Serves the device forever.
    pub fn main() -> ! {
        let mut device = Device::new();
        let (mut message, _) = REQUESTS.recv().expect("recv on REQUESTS");
        loop {
            let reply = match MmioAccess::decode(&message) {
                Some(access) if message.label() == MMIO => {
                    let offset = access.ipa % PAGE_SIZE;
                    if access.write {
                        device.write(offset, access.size, access.value, send);
                        Message::new(RESUME)
                    } else {
                        Message::new(RESUME).with_words(&[device.read(offset, access.size)])
                    }
                }
                _ => {
                    log::info!("message {:#x} ignored", message.label().0);
                    Message::new(INJECT_DATA_ABORT)
                }
            };
            (message, _) = REQUESTS.reply_recv(&reply).expect("receiving on REQUESTS");
        }
    }
}
