//! The its-server component: one instance per VM. It receives the VM's GITS_* accesses on
//! one endpoint, serves them with the [`its_server`] library, and tells the VM's
//! vgic-server what each command changes with `ipc::vgic` Calls
//! ([`its_server::remote::RemoteVgic`]).
//!
//! A GITS_CWRITER (or GITS_CTLR) write runs at most [`BATCH`] commands before the vCPU is
//! resumed; if commands remain, the server signals its own bound notification, and each
//! delivery of it (label `NOTIFIED` on its endpoint) runs the next batch, so a guest that
//! writes CWRITER and waits still sees the queue drained, while other messages on the
//! endpoint get their turn between batches.
//!
//! The VMM calls it with `ipc::its::RESET` (badge `ipc::its::badge::VMM`) when the VM
//! resets: the ITS goes back to its reset state in place ([`its_server::Its::reset`]).
//!
//! Device models call it with `ipc::its::Msi` (badge `ipc::its::badge::device(DeviceID)`):
//! each MSI is translated with `Its::msi` and answered `DELIVERED` or `DROPPED`.
//!
//! Capabilities (names in `system.toml`): `requests` (recv on the endpoint the VM's GITS
//! route names, badge [`GITS_ROUTE`]; device models' and the VMM's calls), `vgic` (call on the vgic-server's endpoint, badge
//! `ipc::vgic::badge::ITS`), `work` (signal on the notification bound to this thread), and
//! the map `guest-ram` of the VM's RAM (`vm-ram`), where the command queue and the
//! level-1 table entries are read. The ITS's capacities and GITS_TYPER come from that
//! VM's `[vm.its]` quotas (generated with the map).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

component_rt::entry!(el0::main);

/// Badge of the VM's GITS route on `requests`.
pub const GITS_ROUTE: u64 = 1;

/// Commands (or MAPD teardown steps) run per trap or notification.
pub const BATCH: usize = 16;

/// The component proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el0 {
    use super::{
        BATCH, GITS_ROUTE, GUEST_RAM, GUEST_RAM_IPA, GUEST_RAM_ITS_COLLECTIONS, GUEST_RAM_ITS_DEVICES,
        GUEST_RAM_ITS_EVENTS_PER_DEVICE, GUEST_RAM_SIZE, GUEST_RAM_VCPUS, REQUESTS, VGIC, WORK,
    };
    use ipc::its::{DELIVERED, DROPPED, Msi};
    use ipc::vcpu::{INJECT_DATA_ABORT, MMIO, MmioAccess, RESUME};
    use ipc::{Badge, Message, NOTIFIED};
    use its_server::remote::RemoteVgic;
    use its_server::{Config, Its, MappedRam, Progress, Width};

    /// DeviceIDs the guest may map (the VM's `[vm.its]` quota).
    const DEVICES: usize = GUEST_RAM_ITS_DEVICES as usize;
    /// EventIDs per device (quota).
    const EVENTS: usize = GUEST_RAM_ITS_EVENTS_PER_DEVICE as usize;
    /// Collections (quota).
    const COLLECTIONS: usize = GUEST_RAM_ITS_COLLECTIONS as usize;
    /// The ITS quotas of the VM, from which GITS_TYPER's Devbits, ID_bits and CIDbits
    /// follow; the LPI range matches the vgic-server's GICD_TYPER.
    const CONFIG: Config = Config {
        max_devices: GUEST_RAM_ITS_DEVICES,
        max_events_per_device: GUEST_RAM_ITS_EVENTS_PER_DEVICE,
        max_collections: GUEST_RAM_ITS_COLLECTIONS,
        vcpus: GUEST_RAM_VCPUS,
        lpi_id_bits: 16,
    };

    /// The ITS: in a static, being too large for the stack.
    static mut ITS: Its<DEVICES, EVENTS, COLLECTIONS> = match Its::new(CONFIG) {
        Ok(its) => its,
        Err(_) => panic!("the ITS quotas exceed the server's capacities"),
    };

    /// The access width of an MMIO message's size.
    fn width(size: u8) -> Width {
        match size {
            1 => Width::Byte,
            2 => Width::Halfword,
            4 => Width::Word,
            _ => Width::Doubleword,
        }
    }

    /// Runs one batch of commands; if work remains, signals `work` so the next batch
    /// runs after whatever else is waiting.
    fn run_batch(
        its: &mut Its<DEVICES, EVENTS, COLLECTIONS>,
        vgic: &mut impl its_server::Vgic,
        ram: &MappedRam,
    ) {
        if its.process(vgic, ram, BATCH) == Progress::MoreWork
            && let Err(error) = WORK.signal()
        {
            log::warn!("its: signalling more work failed: {error:?}");
        }
    }

    /// Serves one message; returns the reply, or `None` for a notification.
    fn serve(
        its: &mut Its<DEVICES, EVENTS, COLLECTIONS>,
        vgic: &mut impl its_server::Vgic,
        ram: &MappedRam,
        message: &Message,
        badge: Badge,
    ) -> Option<Message> {
        if message.label() == NOTIFIED {
            run_batch(its, vgic, ram);
            return None;
        }
        if badge.0 == ipc::its::badge::VMM && message.label() == ipc::its::RESET {
            its.reset();
            return Some(Message::new(DELIVERED));
        }
        if let Some(device_id) = ipc::its::badge::device_id(badge.0) {
            let delivered =
                Msi::decode(message).is_some_and(|msi| its.msi(vgic, device_id, msi.event_id).is_ok());
            return Some(Message::new(if delivered { DELIVERED } else { DROPPED }));
        }
        let access = match MmioAccess::decode(message) {
            Some(access) if badge.0 == GITS_ROUTE && message.label() == MMIO => access,
            _ => {
                log::info!("its: message {:#x} with badge {:#x} ignored", message.label().0, badge.0);
                return Some(Message::new(INJECT_DATA_ABORT));
            }
        };
        let offset = access.ipa.wrapping_sub(super::GITS_BASE);
        if access.write {
            if its.write(offset, width(access.size), access.value) == Progress::MoreWork {
                run_batch(its, vgic, ram);
            }
            Some(Message::new(RESUME))
        } else {
            Some(Message::new(RESUME).with_words(&[its.read(offset, width(access.size))]))
        }
    }

    /// Serves the VM's ITS forever.
    pub fn main() -> ! {
        // SAFETY: the manifest maps the VM's RAM at GUEST_RAM (GUEST_RAM_SIZE bytes, rw)
        // for this component's whole life, and nothing here makes references into it.
        let ram = unsafe { MappedRam::new(GUEST_RAM as *mut u8, GUEST_RAM_IPA, GUEST_RAM_SIZE as u64) };
        // SAFETY: this is the component's only thread and `main` runs once, so this is the
        // only reference to ITS ever made.
        let its = unsafe { (&raw mut ITS).as_mut() }.expect("a static's address is not null");
        let mut vgic = RemoteVgic::new(|message: &Message| VGIC.call(message));
        let (mut message, mut badge) = REQUESTS.recv().expect("recv on REQUESTS");
        loop {
            let received = match serve(its, &mut vgic, &ram, &message, badge) {
                Some(reply) => REQUESTS.reply_recv(&reply),
                None => REQUESTS.recv(),
            };
            (message, badge) = received.expect("receiving on REQUESTS");
        }
    }
}

/// The guest-physical base of the GITS frames (QEMU virt's ITS, as xtask's guest device
/// tree describes it).
#[cfg(target_os = "none")]
const GITS_BASE: u64 = 0x0808_0000;
