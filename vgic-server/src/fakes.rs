//! Test doubles: guest RAM, and vCPUs whose virtual CPU interfaces behave as the GIC
//! architecture defines them (acknowledge, EOI, DIR, maintenance conditions), written
//! from the specification independently of the server, checking every list-register
//! write against the rules; and a machine that owns a server, its vCPUs and its RAM.

use std::cell::RefCell;

use crate::{
    Config, GuestMemory, ItsLink, LIST_REGISTERS, ListRegister, LrState, LrUpdate, OutsideRam,
    REDISTRIBUTOR_STRIDE, SgiRegister, Snapshot, Vcpus, Vgic, Width, redistributor_offset,
};

/// Guest-physical base of the fake RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Bytes of fake RAM.
pub const RAM_SIZE: u64 = 1 << 20;

/// Guest RAM in a vector.
pub struct Ram {
    bytes: RefCell<Vec<u8>>,
}

impl Ram {
    /// Zeroed RAM at [`RAM_BASE`].
    pub fn new() -> Self {
        Self { bytes: RefCell::new(vec![0; RAM_SIZE as usize]) }
    }

    /// Stores `data` at `ipa` (inside RAM), as the guest would.
    pub fn store(&self, ipa: u64, data: &[u8]) {
        GuestMemory::write(self, ipa, data).expect("test data inside RAM");
    }

    /// The byte at `ipa`.
    pub fn byte(&self, ipa: u64) -> u8 {
        self.bytes.borrow()[(ipa - RAM_BASE) as usize]
    }
}

impl its_server::GuestMemory for Ram {
    fn read(&self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam> {
        let start = ipa.checked_sub(RAM_BASE).ok_or(OutsideRam)? as usize;
        let bytes = self.bytes.borrow();
        let source = bytes.get(start..start + buffer.len()).ok_or(OutsideRam)?;
        buffer.copy_from_slice(source);
        Ok(())
    }

    fn contains(&self, ipa: u64, len: u64) -> bool {
        ipa.checked_sub(RAM_BASE).and_then(|start| start.checked_add(len)).is_some_and(|end| end <= RAM_SIZE)
    }
}

impl GuestMemory for Ram {
    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), OutsideRam> {
        let start = ipa.checked_sub(RAM_BASE).ok_or(OutsideRam)? as usize;
        let mut bytes = self.bytes.borrow_mut();
        let target = bytes.get_mut(start..start + data.len()).ok_or(OutsideRam)?;
        target.copy_from_slice(data);
        Ok(())
    }
}

/// ICH_VMCR_EL2 of a guest that enabled Group 1, unmasked all priorities and left the
/// binary point at its minimum, EOImode 0.
pub const VMCR_DEFAULT: u32 = 0xff << 24 | 3 << 18 | 1 << 1;
/// ICH_VMCR_EL2.VEOIM.
pub const VMCR_EOI_MODE: u32 = 1 << 9;

/// One vCPU's virtual CPU interface and what the server did to it.
#[derive(Clone, Debug)]
pub struct Cpu {
    pub lrs: [ListRegister; LIST_REGISTERS],
    pub vmcr: u32,
    pub ap1r0: u32,
    /// ICH_HCR_EL2.UIE and NPIE as last written.
    pub underflow: bool,
    pub no_pending: bool,
    /// Line levels of the hardware-linked PPIs, as the kernel would sample them.
    pub lines: u32,
    stopped: bool,
    pub syncs: usize,
    pub kicks: usize,
    /// EOIs and DIRs that found no list register.
    pub eoi_count: u32,
    /// Physical INTIDs deactivated through hardware-linked list registers.
    pub hardware_deactivations: Vec<u32>,
}

/// vCPUs in memory.
#[derive(Clone)]
pub struct FakeVcpus {
    pub cpus: Vec<Cpu>,
    /// `deactivate_physical` calls.
    pub released: Vec<u32>,
}

impl FakeVcpus {
    pub fn new(count: u16) -> Self {
        let cpu = Cpu {
            lrs: [ListRegister::INVALID; LIST_REGISTERS],
            vmcr: VMCR_DEFAULT,
            ap1r0: 0,
            underflow: false,
            no_pending: false,
            lines: 0,
            stopped: false,
            syncs: 0,
            kicks: 0,
            eoi_count: 0,
            hardware_deactivations: Vec::new(),
        };
        Self { cpus: vec![cpu; count as usize], released: Vec::new() }
    }

    fn cpu(&mut self, vcpu: u16) -> &mut Cpu {
        &mut self.cpus[vcpu as usize]
    }

    /// What the kernel would fold on an exit.
    pub fn snapshot(&self, vcpu: u16) -> Snapshot {
        let cpu = &self.cpus[vcpu as usize];
        Snapshot { lrs: cpu.lrs, vmcr: cpu.vmcr, ap0r0: 0, ap1r0: cpu.ap1r0, hardware_lines: cpu.lines }
    }

    /// Loads `update` into `vcpu`, checking the list-register rules.
    pub fn load(&mut self, vcpu: u16, update: &LrUpdate) {
        let valid: Vec<&ListRegister> = update.lrs.iter().filter(|lr| lr.state != LrState::Invalid).collect();
        for (index, lr) in valid.iter().enumerate() {
            assert!(
                valid[index + 1..].iter().all(|other| other.vintid != lr.vintid),
                "vINTID {} in two list registers of vCPU {vcpu}: {:?}",
                lr.vintid,
                update.lrs
            );
            assert!(lr.group1, "every interrupt is Group 1");
            assert_eq!(lr.priority & 7, 0, "unimplemented priority bits");
            if lr.hw_pintid.is_some() {
                assert_ne!(lr.state, LrState::PendingActive, "hardware-linked LR made active+pending");
                assert!(!lr.eoi_maintenance, "hardware-linked LR cannot request EOI maintenance");
            }
        }
        let cpu = self.cpu(vcpu);
        cpu.lrs = update.lrs;
        cpu.underflow = update.underflow;
        cpu.no_pending = update.no_pending;
    }

    /// Whether the maintenance interrupt is asserted: an EOI (an invalid HW = 0 list
    /// register asking for it), underflow (UIE, at most one valid list register) or no
    /// pending (NPIE, no list register in the pending state).
    pub fn maintenance_due(&self, vcpu: u16) -> bool {
        let cpu = &self.cpus[vcpu as usize];
        let eoi = cpu.lrs.iter().any(|lr| lr.state == LrState::Invalid && lr.eoi_maintenance);
        let valid = cpu.lrs.iter().filter(|lr| lr.state != LrState::Invalid).count();
        let underflow = cpu.underflow && valid <= 1;
        let no_pending = cpu.no_pending && !cpu.lrs.iter().any(|lr| lr.state == LrState::Pending);
        eoi || underflow || no_pending
    }

    /// The guest reads ICC_IAR1_EL1: the highest-priority pending list register that its
    /// priority mask and running priority let through becomes active.
    pub fn acknowledge(&mut self, vcpu: u16) -> Option<u32> {
        let cpu = self.cpu(vcpu);
        let mask = (cpu.vmcr >> 24) as u8;
        let running = if cpu.ap1r0 == 0 { 0x100 } else { (cpu.ap1r0.trailing_zeros() << 3) as u16 };
        let group_enabled = cpu.vmcr & 2 != 0;
        let slot = (0..LIST_REGISTERS)
            .filter(|&slot| cpu.lrs[slot].state == LrState::Pending)
            .min_by_key(|&slot| cpu.lrs[slot].priority)?;
        let lr = &mut cpu.lrs[slot];
        if !group_enabled || lr.priority >= mask || lr.priority as u16 >= running {
            return None;
        }
        lr.state = LrState::Active;
        cpu.ap1r0 |= 1 << (lr.priority >> 3);
        Some(lr.vintid)
    }

    /// The guest writes ICC_EOIR1_EL1: priority drop, and with EOImode 0 (or for an LPI)
    /// deactivation.
    pub fn end_of_interrupt(&mut self, vcpu: u16, intid: u32) {
        let cpu = self.cpu(vcpu);
        if cpu.ap1r0 != 0 {
            cpu.ap1r0 &= cpu.ap1r0 - 1;
        }
        if cpu.vmcr & VMCR_EOI_MODE == 0 || intid >= crate::FIRST_LPI {
            self.deactivate_listed(vcpu, intid);
        } else if !self.cpus[vcpu as usize].lrs.iter().any(|lr| lr.vintid == intid && lr.state.active()) {
            self.cpu(vcpu).eoi_count += 1;
        }
    }

    /// The guest writes ICC_DIR_EL1 (meaningful with EOImode 1).
    pub fn deactivate(&mut self, vcpu: u16, intid: u32) {
        if self.cpus[vcpu as usize].vmcr & VMCR_EOI_MODE != 0 && intid < crate::FIRST_LPI {
            self.deactivate_listed(vcpu, intid);
        }
    }

    fn deactivate_listed(&mut self, vcpu: u16, intid: u32) {
        let cpu = self.cpu(vcpu);
        match cpu.lrs.iter_mut().find(|lr| lr.vintid == intid && lr.state.active()) {
            Some(lr) => {
                lr.state = if lr.state.pending() { LrState::Pending } else { LrState::Invalid };
                if let Some(pintid) = lr.hw_pintid {
                    cpu.hardware_deactivations.push(pintid);
                }
            }
            None if intid < crate::FIRST_LPI => cpu.eoi_count += 1,
            None => {}
        }
    }

    /// Answers every maintenance interrupt that is asserted, as the kernel would on the
    /// exit it causes (the vCPU takes no step before its reply is loaded), and checks that
    /// the server left every vCPU running. Returns how many events were answered.
    pub fn service<const VCPUS: usize>(&mut self, vgic: &mut TestVgic<VCPUS>) -> usize {
        let mut answered = 0;
        for vcpu in 0..self.cpus.len() as u16 {
            let mut rounds = 0;
            while self.maintenance_due(vcpu) {
                rounds += 1;
                assert!(rounds < 8, "maintenance storm on vCPU {vcpu}: {:?}", self.cpus[vcpu as usize]);
                answered += 1;
                let snapshot = self.snapshot(vcpu);
                let update = vgic.maintenance(self, vcpu, &snapshot);
                self.load(vcpu, &update);
            }
        }
        self.assert_released();
        answered
    }

    /// Panics if the server left a vCPU stopped.
    pub fn assert_released(&self) {
        for (vcpu, cpu) in self.cpus.iter().enumerate() {
            assert!(!cpu.stopped, "vCPU {vcpu} left stopped");
        }
    }
}

impl Vcpus for FakeVcpus {
    fn sync(&mut self, vcpu: u16) -> Snapshot {
        let cpu = self.cpu(vcpu);
        assert!(!cpu.stopped, "vCPU {vcpu} synced twice without write_lrs");
        cpu.stopped = true;
        cpu.syncs += 1;
        self.snapshot(vcpu)
    }

    fn write_lrs(&mut self, vcpu: u16, update: &LrUpdate) {
        assert!(self.cpus[vcpu as usize].stopped, "write_lrs for vCPU {vcpu}, which was not synced");
        self.load(vcpu, update);
        self.cpu(vcpu).stopped = false;
    }

    fn kick(&mut self, vcpu: u16) {
        self.cpu(vcpu).kicks += 1;
    }

    fn deactivate_physical(&mut self, pintid: u32) {
        self.released.push(pintid);
    }
}

/// The vGIC the tests use: 8192 LPIs (14 ID bits), 16 collections.
pub type TestVgic<const VCPUS: usize> = Vgic<VCPUS, 8192, 16>;

/// A server with its vCPUs (running a simulated guest) and RAM.
pub struct Machine<const VCPUS: usize> {
    pub vgic: Box<TestVgic<VCPUS>>,
    pub vcpus: FakeVcpus,
    pub ram: Ram,
    /// Maintenance events answered.
    pub maintenances: usize,
}

impl<const VCPUS: usize> Machine<VCPUS> {
    pub fn new(config: Config) -> Self {
        Self {
            vgic: Box::new(Vgic::new(config).expect("valid test configuration")),
            vcpus: FakeVcpus::new(config.vcpus),
            ram: Ram::new(),
            maintenances: 0,
        }
    }

    /// Answers every maintenance interrupt that is asserted, as the kernel would on the
    /// exit it causes.
    pub fn service(&mut self) {
        self.maintenances += self.vcpus.service(&mut self.vgic);
    }

    /// The guest on `vcpu` acknowledges.
    pub fn ack(&mut self, vcpu: u16) -> Option<u32> {
        let intid = self.vcpus.acknowledge(vcpu);
        self.service();
        intid
    }

    /// The guest on `vcpu` writes EOIR for `intid`.
    pub fn eoi(&mut self, vcpu: u16, intid: u32) {
        self.vcpus.end_of_interrupt(vcpu, intid);
        self.service();
    }

    /// The guest on `vcpu` writes DIR for `intid`.
    pub fn dir(&mut self, vcpu: u16, intid: u32) {
        self.vcpus.deactivate(vcpu, intid);
        self.service();
    }

    /// Acknowledges and completes every interrupt `vcpu` can take, returning them in order
    /// (at most 1000: a level-sensitive line that stays asserted is taken again and again).
    pub fn drain(&mut self, vcpu: u16) -> Vec<u32> {
        let mut taken = Vec::new();
        while let Some(intid) = self.ack(vcpu) {
            taken.push(intid);
            assert!(taken.len() <= 1000, "vCPU {vcpu} keeps taking interrupts: {:?}", &taken[..10]);
            self.eoi(vcpu, intid);
        }
        taken
    }

    pub fn gicd_read(&mut self, offset: u64) -> u32 {
        self.gicd_read_sized(offset, Width::Word) as u32
    }

    pub fn gicd_read_sized(&mut self, offset: u64, width: Width) -> u64 {
        let value = self.vgic.read_distributor(&mut self.vcpus, offset, width);
        self.after_access();
        value
    }

    pub fn gicd_write(&mut self, offset: u64, value: u32) {
        self.gicd_write_sized(offset, Width::Word, value as u64);
    }

    pub fn gicd_write_sized(&mut self, offset: u64, width: Width, value: u64) {
        self.vgic.write_distributor(&mut self.vcpus, offset, width, value);
        self.after_access();
    }

    pub fn gicr_read(&mut self, vcpu: u16, offset: u64) -> u32 {
        self.gicr_read_sized(vcpu, offset, Width::Word) as u32
    }

    pub fn gicr_read_sized(&mut self, vcpu: u16, offset: u64, width: Width) -> u64 {
        let value =
            self.vgic.read_redistributor(&mut self.vcpus, vcpu as u64 * REDISTRIBUTOR_STRIDE + offset, width);
        self.after_access();
        value
    }

    pub fn gicr_write(&mut self, vcpu: u16, offset: u64, value: u32) {
        self.gicr_write_sized(vcpu, offset, Width::Word, value as u64);
    }

    pub fn gicr_write_sized(&mut self, vcpu: u16, offset: u64, width: Width, value: u64) {
        let offset = vcpu as u64 * REDISTRIBUTOR_STRIDE + offset;
        self.vgic.write_redistributor(&mut self.vcpus, &self.ram, offset, width, value);
        self.after_access();
    }

    fn after_access(&mut self) {
        self.vcpus.assert_released();
        self.service();
    }

    /// The its-server's side of the vGIC.
    pub fn its(&mut self) -> ItsLink<'_, FakeVcpus, Ram, VCPUS, 8192, 16> {
        self.vgic.its_link(&mut self.vcpus, &self.ram)
    }

    /// A trapped ICC_SGI1R_EL1 write by `sender`.
    pub fn sgi(&mut self, sender: u16, value: u64) {
        self.vgic.generate_sgi(&mut self.vcpus, sender, SgiRegister::Sgi1r, value);
        self.after_access();
    }

    pub fn spi_level(&mut self, intid: u32, level: bool) {
        self.vgic.set_spi_level(&mut self.vcpus, intid, level);
        self.after_access();
    }

    pub fn spi_pulse(&mut self, intid: u32) {
        self.vgic.pulse_spi(&mut self.vcpus, intid);
        self.after_access();
    }

    pub fn ppi_level(&mut self, vcpu: u16, intid: u32, level: bool) {
        self.vgic.set_ppi_level(&mut self.vcpus, vcpu, intid, level);
        self.after_access();
    }

    /// The guest enables Group 1 forwarding in GICD_CTLR.
    pub fn enable_distributor(&mut self) {
        self.gicd_write(crate::distributor_offset::CTLR, 2);
    }

    /// The guest enables SPI `intid` with `priority`, routed to `vcpu`.
    pub fn setup_spi(&mut self, intid: u32, priority: u8, vcpu: u16) {
        self.gicd_write_sized(0x400 + intid as u64, Width::Byte, priority as u64);
        self.gicd_write_sized(
            crate::distributor_offset::IROUTER + 8 * intid as u64,
            Width::Doubleword,
            crate::vcpu_affinity(vcpu) as u64,
        );
        self.gicd_write(0x100 + (intid / 32) as u64 * 4, 1 << (intid % 32));
    }

    /// The guest enables SGI/PPI `intid` of `vcpu` with `priority`.
    pub fn setup_private(&mut self, vcpu: u16, intid: u32, priority: u8) {
        let sgi_base = redistributor_offset::SGI_BASE;
        self.gicr_write_sized(vcpu, sgi_base + 0x400 + intid as u64, Width::Byte, priority as u64);
        self.gicr_write(vcpu, sgi_base + 0x100, 1 << intid);
    }

    /// The valid list registers of `vcpu`, by (vINTID, state).
    pub fn listed(&self, vcpu: u16) -> Vec<(u32, LrState)> {
        self.vcpus.cpus[vcpu as usize]
            .lrs
            .iter()
            .filter(|lr| lr.state != LrState::Invalid)
            .map(|lr| (lr.vintid, lr.state))
            .collect()
    }
}
