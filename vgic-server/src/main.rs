//! The vgic-server component: one instance per VM, the owner of every interrupt state of
//! that VM. It receives everything on one endpoint and tells senders apart by badge
//! (`ipc::vgic::badge`), serving each message with the [`vgic_server`] library:
//!
//! | badge | message | handling | reply |
//! |---|---|---|---|
//! | `DISTRIBUTOR` (GICD route) | MMIO fault | `read_/write_distributor` | RESUME with the value |
//! | `REDISTRIBUTORS` (GICR route) | MMIO fault | `read_/write_redistributor` | RESUME with the value |
//! | `VCPU_EVENTS` (`vgic-badge`) | `SYSREG` Send (ICC_SGI*R_EL1 write) | `generate_sgi` | none |
//! | `VCPU_EVENTS` | vGIC event Call | `maintenance` | `LOAD_LRS` with the vCPU's list registers |
//! | `ITS` (the its-server) | `ipc::vgic::ItsRequest` Call | its `ItsLink` method | `DONE` |
//! | `DEVICE` (device models), `VMM` | `ipc::vgic::SpiRequest` Call | `set_spi_level`/`pulse_spi` | `DONE` |
//! | `VMM` | `ipc::vgic::RESET` Call (the VM resets) | `Vgic::reset`, passthrough SPIs attached again, every vCPU synced and its list registers cleared | `DONE` |
//! | the bound notification's word | `NOTIFIED`: passthrough SPIs fired | `set_spi_level`/`pulse_spi` | none |
//!
//! Anything else is answered `REJECTED` (to a vCPU: an injected data abort) with a log
//! line. The vCPUs are reached with VCPU invocations ([`KernelVcpus`]); the VM's RAM,
//! where the LPI property and pending tables live, through the `vm-ram` map.
//!
//! Capabilities (names in `system.toml`): `requests` (recv on the endpoint named by the
//! VM's GICD and GICR routes, its `vgic-endpoint`, and the its-server's and device
//! models' call caps), `vcpus` (every vCPU of the VM), and the map `guest-ram` of the
//! VM's RAM. The vGIC (about 800 KiB with 16-bit LPIs) is built in place in the heap.
//!
//! Passthrough SPIs (`[[vm.passthrough]]`, generated as `PASSTHROUGH_SPIS`): the server
//! holds each one's IRQ cap and is bound to the notification its interrupt signals. The
//! kernel acknowledges the physical SPI with a priority drop only and signals; the
//! server reports it to the vGIC (level: line up; edge: a pulse), which lists it
//! hardware-linked, so the guest's EOI (or DIR) deactivates the physical SPI in hardware
//! and the next interrupt can come. Only when the vGIC drops the interrupt without the
//! guest deactivating it (ICPENDR, ICACTIVER) does the server deactivate it itself, with
//! the IRQ cap's `ack`.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

component_rt::entry!(el0::main);

/// The component proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el0 {
    use super::{
        GUEST_RAM, GUEST_RAM_IPA, GUEST_RAM_ITS_COLLECTIONS, GUEST_RAM_SIZE, HEAP_BASE, HEAP_SIZE,
        PASSTHROUGH_SPIS, REQUESTS, VCPUS,
    };
    use core::mem::MaybeUninit;
    use ipc::vcpu::{
        INJECT_DATA_ABORT, LIST_REGISTERS, LOAD_LRS, LrWrite, MMIO, MmioAccess, RESUME, SYSREG, SysRegAccess,
        VGIC_EVENT, VgicEvent,
    };
    use ipc::vgic::{DONE, ItsRequest, REJECTED, RESET, SpiRequest, badge};
    use ipc::{Badge, Message, NOTIFIED, ShortMessage};
    use its_server::MappedRam;
    use vgic_server::{Config, FIRST_LPI, LrUpdate, SgiRegister, Snapshot, Trigger, Vcpus, Vgic, Width};

    /// vCPUs of the VM.
    const VCPU_COUNT: usize = VCPUS.len();
    /// LPI INTID bits: 16, as Linux uses at most; the its-server advertises the same.
    const LPI_ID_BITS: u8 = 16;
    /// LPI capacity: every LPI INTID of [`LPI_ID_BITS`].
    const LPIS: usize = (1 << LPI_ID_BITS) - FIRST_LPI as usize;
    /// ITS collections the server tracks (the VM's `[vm.its]` quota, as the its-server's).
    const COLLECTIONS: usize = GUEST_RAM_ITS_COLLECTIONS as usize;
    /// SPIs 32..256, as QEMU virt's own GIC has, which the guest's device tree lists.
    const SPIS: u16 = 224;
    /// The guest-physical bases of the GICD and GICR frames (QEMU virt's, as xtask's guest
    /// device tree describes them).
    const DISTRIBUTOR_BASE: u64 = 0x0800_0000;
    const REDISTRIBUTORS_BASE: u64 = 0x080a_0000;

    type Server = Vgic<VCPU_COUNT, LPIS, COLLECTIONS>;

    const _: () = assert!(size_of::<Server>() <= HEAP_SIZE, "the heap must hold the vGIC");

    /// ICC_SGI1R_EL1, ICC_ASGI1R_EL1 and ICC_SGI0R_EL1 in `SysRegAccess::encoding` form
    /// (op0 3, op1 0, CRn 12, CRm 11, op2 5/6/7).
    const SGI_REGISTERS: [(u16, SgiRegister); 3] =
        [(0xc65d, SgiRegister::Sgi1r), (0xc65e, SgiRegister::Asgi1r), (0xc65f, SgiRegister::Sgi0r)];

    /// The VM's vCPUs through VCPU invocations.
    struct KernelVcpus;

    impl Vcpus for KernelVcpus {
        fn sync(&mut self, vcpu: u16) -> Snapshot {
            match VCPUS[vcpu as usize].sync() {
                Ok(snapshot) => Snapshot::from(&snapshot),
                Err(error) => {
                    // Without the live state the server assumes empty list registers: the
                    // copies it wrote count as completed.
                    log::warn!("VCPU_SYNC of vCPU {vcpu} failed: {error:?}");
                    Snapshot::default()
                }
            }
        }

        fn write_lrs(&mut self, vcpu: u16, update: &LrUpdate) {
            if let Err(error) = VCPUS[vcpu as usize].write_lrs(&LrWrite::from(update)) {
                log::warn!("VCPU_WRITE_LRS of vCPU {vcpu} failed: {error:?}");
            }
        }

        fn kick(&mut self, vcpu: u16) {
            if let Err(error) = VCPUS[vcpu as usize].kick() {
                log::warn!("VCPU_KICK of vCPU {vcpu} failed: {error:?}");
            }
        }

        fn deactivate_physical(&mut self, pintid: u32) {
            // The vGIC marks only the attached passthrough SPIs hardware-linked.
            let Some(spi) = PASSTHROUGH_SPIS.iter().find(|spi| spi.intid == pintid) else {
                log::warn!("deactivation of physical INTID {pintid}, which is not passed through");
                return;
            };
            if let Err(error) = spi.irq.ack() {
                log::warn!("IRQ_ACK of passthrough SPI {pintid} failed: {error:?}");
            }
        }
    }

    /// The access width of an MMIO message's size.
    fn width(size: u8) -> Width {
        match size {
            1 => Width::Byte,
            2 => Width::Halfword,
            4 => Width::Word,
            _ => Width::Doubleword,
        }
    }

    /// The server's state and what it acts on.
    struct Shell<'a> {
        vgic: &'a mut Server,
        vcpus: KernelVcpus,
        ram: MappedRam,
    }

    /// A received message: in registers only, as every message is received first, or
    /// whole, as a `ReplyRecv` with a long reply receives the next one.
    enum Request {
        Short(ShortMessage),
        Whole(Message),
    }

    /// A reply: in registers only (MMIO values), or a long one.
    enum Reply {
        Short(ShortMessage),
        Whole(Message),
    }

    impl Shell<'_> {
        /// Serves one message; returns the reply, or `None` for a Send. A GICD or GICR
        /// access received in registers is answered in registers, without a `Message`
        /// (the guests' most frequent request).
        fn serve(&mut self, request: Request, badge: Badge) -> Option<Reply> {
            let message = match request {
                Request::Short(short) => {
                    if short.label() == MMIO
                        && matches!(badge.0, badge::DISTRIBUTOR | badge::REDISTRIBUTORS)
                        && let Some(access) = MmioAccess::decode_short(&short)
                    {
                        return Some(Reply::Short(ShortMessage::new(RESUME, &[self.mmio(badge.0, &access)])));
                    }
                    // Before any system call, which may overwrite the IPC buffer.
                    short.into_message()
                }
                Request::Whole(message) => message,
            };
            self.serve_message(&message, badge).map(Reply::Whole)
        }

        /// [`Shell::serve`] for a message read whole.
        fn serve_message(&mut self, message: &Message, badge: Badge) -> Option<Message> {
            let label = message.label();
            if label == NOTIFIED {
                self.passthrough_interrupts(badge.0);
                return None;
            }
            let reply = match badge.0 {
                badge::DISTRIBUTOR | badge::REDISTRIBUTORS if label == MMIO => MmioAccess::decode(message)
                    .map(|access| Message::new(RESUME).with_words(&[self.mmio(badge.0, &access)])),
                badge::VCPU_EVENTS if label == SYSREG => {
                    match SysRegAccess::decode(message) {
                        Some(access) => self.sysreg(&access),
                        None => log::info!("malformed system-register message ignored"),
                    }
                    return None;
                }
                badge::VCPU_EVENTS if label == VGIC_EVENT => self.vgic_event(message),
                badge::ITS => ItsRequest::decode(message).map(|request| {
                    its_server::remote::deliver(request, &mut self.vgic.its_link(&mut self.vcpus, &self.ram));
                    Message::new(DONE)
                }),
                badge::VMM if label == RESET => Some(self.reset()),
                badge::DEVICE | badge::VMM => SpiRequest::decode(message).map(|request| {
                    match request {
                        SpiRequest::SetLevel { intid, level } => {
                            self.vgic.set_spi_level(&mut self.vcpus, intid, level)
                        }
                        SpiRequest::Pulse { intid } => self.vgic.pulse_spi(&mut self.vcpus, intid),
                    }
                    Message::new(DONE)
                }),
                _ => None,
            };
            Some(reply.unwrap_or_else(|| {
                log::info!("message {:#x} with badge {:#x} refused", label.0, badge.0);
                const _: () = assert!(REJECTED.0 == INJECT_DATA_ABORT.0, "a vCPU's refusal is an abort");
                Message::new(REJECTED)
            }))
        }

        /// The VM resets (its VMM stopped every vCPU first): the vGIC's state, and every
        /// vCPU's list registers, as at boot.
        fn reset(&mut self) -> Message {
            self.vgic.reset();
            attach_passthrough_spis(self.vgic);
            let empty = LrWrite { lrs: [0; LIST_REGISTERS], hcr: 0 };
            for (vcpu, cap) in VCPUS.iter().enumerate() {
                // A stopped vCPU's interface may still be loaded on its CPU: the sync folds
                // it there, so that the write that follows (and ends the hold) can land.
                if let Err(error) = cap.sync().and_then(|_| cap.write_lrs(&empty)) {
                    log::warn!("clearing the list registers of vCPU {vcpu} failed: {error:?}");
                }
            }
            Message::new(DONE)
        }

        /// The bound notification's word: the passthrough SPIs whose badge bits it has
        /// fired (the kernel keeps each active until the guest or the server deactivates it).
        fn passthrough_interrupts(&mut self, word: u64) {
            for spi in PASSTHROUGH_SPIS.iter().filter(|spi| spi.badge & word != 0) {
                if spi.edge {
                    self.vgic.pulse_spi(&mut self.vcpus, spi.intid);
                } else {
                    self.vgic.set_spi_level(&mut self.vcpus, spi.intid, true);
                }
            }
        }

        /// A GICD or GICR access by a vCPU; returns the value its RESUME reply carries.
        fn mmio(&mut self, route: u64, access: &MmioAccess) -> u64 {
            let width = width(access.size);
            let Shell { vgic, vcpus, ram } = self;
            match (route, access.write) {
                (badge::DISTRIBUTOR, false) => {
                    vgic.read_distributor(vcpus, access.ipa.wrapping_sub(DISTRIBUTOR_BASE), width)
                }
                (badge::DISTRIBUTOR, true) => {
                    let offset = access.ipa.wrapping_sub(DISTRIBUTOR_BASE);
                    vgic.write_distributor(vcpus, offset, width, access.value);
                    0
                }
                (_, false) => {
                    vgic.read_redistributor(vcpus, access.ipa.wrapping_sub(REDISTRIBUTORS_BASE), width)
                }
                (_, true) => {
                    let offset = access.ipa.wrapping_sub(REDISTRIBUTORS_BASE);
                    vgic.write_redistributor(vcpus, ram, offset, width, access.value);
                    0
                }
            }
        }

        /// A trapped ICC_SGI*R_EL1 write (a Send: the vCPU already went on).
        fn sysreg(&mut self, access: &SysRegAccess) {
            match SGI_REGISTERS.iter().find(|(encoding, _)| *encoding == access.encoding) {
                Some(&(_, register)) if access.write && usize::from(access.vcpu) < VCPU_COUNT => {
                    self.vgic.generate_sgi(&mut self.vcpus, access.vcpu, register, access.value)
                }
                _ => log::info!(
                    "vCPU {}: system register {:#x} is not an SGI write",
                    access.vcpu,
                    access.encoding
                ),
            }
        }

        /// A vGIC event: the vCPU waits for its new list registers.
        fn vgic_event(&mut self, message: &Message) -> Option<Message> {
            let VgicEvent { snapshot, vcpu } = VgicEvent::decode(message)?;
            let update = self.vgic.maintenance(&mut self.vcpus, vcpu, &Snapshot::from(&snapshot));
            Some(Message::new(LOAD_LRS).with_words(&LrWrite::from(&update).words()))
        }
    }

    /// Attaches the VM's passthrough SPIs to `vgic` (at boot and after a reset).
    fn attach_passthrough_spis(vgic: &mut Server) {
        for spi in &PASSTHROUGH_SPIS {
            let trigger = if spi.edge { Trigger::Edge } else { Trigger::Level };
            vgic.attach_passthrough_spi(spi.intid, trigger).expect("the manifest passes through SPIs only");
        }
    }

    /// Builds the vGIC in the heap and serves the VM forever.
    pub fn main() -> ! {
        let config = Config { vcpus: VCPU_COUNT as u16, spis: SPIS, lpi_id_bits: Some(LPI_ID_BITS) };
        // SAFETY: the heap is HEAP_SIZE bytes of zeroed RAM at HEAP_BASE (page aligned,
        // so aligned for the server), mapped rw for this component's whole life, holds the
        // server (checked above) and nothing else refers to it.
        let place = unsafe { &mut *(HEAP_BASE as *mut MaybeUninit<Server>) };
        let vgic = Server::init_in_place(place, config).expect("the VM's GIC fits the server's capacities");
        attach_passthrough_spis(vgic);
        // SAFETY: the manifest maps the VM's RAM at GUEST_RAM (GUEST_RAM_SIZE bytes, rw)
        // for this component's whole life, and nothing here makes references into it.
        let ram = unsafe { MappedRam::new(GUEST_RAM as *mut u8, GUEST_RAM_IPA, GUEST_RAM_SIZE as u64) };
        let mut shell = Shell { vgic, vcpus: KernelVcpus, ram };
        let receive_short = || REQUESTS.recv_short().map(|(message, badge)| (Request::Short(message), badge));
        let (mut request, mut badge) = receive_short().expect("recv on REQUESTS");
        loop {
            let received = match shell.serve(request, badge) {
                Some(Reply::Short(reply)) => {
                    REQUESTS.reply_recv_short(&reply).map(|(message, badge)| (Request::Short(message), badge))
                }
                Some(Reply::Whole(reply)) => {
                    REQUESTS.reply_recv(&reply).map(|(message, badge)| (Request::Whole(message), badge))
                }
                None => receive_short(),
            };
            (request, badge) = received.expect("receiving on REQUESTS");
        }
    }
}
