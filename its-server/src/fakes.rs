//! Test doubles: guest RAM, a vgic-server that records every message and checks that the
//! ITS only ever names LPIs it mapped, command encoders written from the specification's
//! field positions (independently of the decoder), and a harness that owns all three.

use std::collections::BTreeMap;

use crate::registers::{Width, offset};
use crate::{Config, GuestMemory, Its, OutsideRam, Progress, Reload, Vgic};

/// Guest-physical base of the fake RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
/// Bytes of fake RAM.
pub const RAM_SIZE: u64 = 1 << 20;
/// Where the harness puts the command queue (one 4 KiB page: 128 commands).
pub const QUEUE_BASE: u64 = RAM_BASE + 0x1_0000;
/// Where the harness puts the flat device table.
pub const DEVICE_TABLE: u64 = RAM_BASE + 0x2_0000;
/// Where the harness puts the flat collection table.
pub const COLLECTION_TABLE: u64 = RAM_BASE + 0x4_0000;

/// Guest RAM in a vector.
pub struct Ram {
    bytes: Vec<u8>,
}

impl Ram {
    /// Zeroed RAM at [`RAM_BASE`].
    pub fn new() -> Self {
        Self { bytes: vec![0; RAM_SIZE as usize] }
    }

    /// Stores `data` at `ipa` (inside RAM), as the guest would.
    pub fn write(&mut self, ipa: u64, data: &[u8]) {
        let start = (ipa - RAM_BASE) as usize;
        self.bytes[start..start + data.len()].copy_from_slice(data);
    }

    /// Stores a little-endian doubleword.
    pub fn write_u64(&mut self, ipa: u64, value: u64) {
        self.write(ipa, &value.to_le_bytes());
    }
}

impl GuestMemory for Ram {
    fn read(&self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam> {
        let start = ipa.checked_sub(RAM_BASE).ok_or(OutsideRam)?;
        let end = start.checked_add(buffer.len() as u64).ok_or(OutsideRam)?;
        let bytes = self.bytes.get(start as usize..end as usize).ok_or(OutsideRam)?;
        buffer.copy_from_slice(bytes);
        Ok(())
    }

    fn contains(&self, ipa: u64, len: u64) -> bool {
        ipa.checked_sub(RAM_BASE).and_then(|start| start.checked_add(len)).is_some_and(|end| end <= RAM_SIZE)
    }
}

/// One call the ITS made on the vgic-server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    CollectionTarget { icid: u16, vcpu: Option<u16> },
    LpiMap { vintid: u32, icid: u16 },
    LpiUnmap { vintid: u32 },
    LpiSetPending { vintid: u32 },
    LpiClearPending { vintid: u32 },
    LpiMove { vintid: u32, icid: u16 },
    MoveAll { from_vcpu: u16, to_vcpu: u16 },
    ReloadConfig(Reload),
    Sync { vcpu: u16 },
}

/// Records messages and panics when the ITS names an LPI it has not mapped (or maps one
/// twice): the ITS's LPI lifecycle as the vgic-server sees it.
#[derive(Default)]
pub struct RecordingVgic {
    pub messages: Vec<Message>,
    /// Mapped LPIs and their collections.
    pub lpis: BTreeMap<u32, u16>,
}

impl RecordingVgic {
    /// The messages since the last call.
    pub fn take(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    fn expect_mapped(&self, vintid: u32) {
        assert!(self.lpis.contains_key(&vintid), "the ITS named LPI {vintid} that it never mapped");
    }
}

impl Vgic for RecordingVgic {
    fn collection_target(&mut self, icid: u16, vcpu: Option<u16>) {
        self.messages.push(Message::CollectionTarget { icid, vcpu });
    }

    fn lpi_map(&mut self, vintid: u32, icid: u16) {
        assert_eq!(self.lpis.insert(vintid, icid), None, "LPI {vintid} mapped twice");
        self.messages.push(Message::LpiMap { vintid, icid });
    }

    fn lpi_unmap(&mut self, vintid: u32) {
        assert!(self.lpis.remove(&vintid).is_some(), "LPI {vintid} unmapped but not mapped");
        self.messages.push(Message::LpiUnmap { vintid });
    }

    fn lpi_set_pending(&mut self, vintid: u32) {
        self.expect_mapped(vintid);
        self.messages.push(Message::LpiSetPending { vintid });
    }

    fn lpi_clear_pending(&mut self, vintid: u32) {
        self.expect_mapped(vintid);
        self.messages.push(Message::LpiClearPending { vintid });
    }

    fn lpi_move(&mut self, vintid: u32, icid: u16) {
        self.expect_mapped(vintid);
        self.lpis.insert(vintid, icid);
        self.messages.push(Message::LpiMove { vintid, icid });
    }

    fn move_all(&mut self, from_vcpu: u16, to_vcpu: u16) {
        self.messages.push(Message::MoveAll { from_vcpu, to_vcpu });
    }

    fn reload_config(&mut self, what: Reload) {
        if let Reload::Lpi(vintid) = what {
            self.expect_mapped(vintid);
        }
        self.messages.push(Message::ReloadConfig(what));
    }

    fn sync(&mut self, vcpu: u16) {
        self.messages.push(Message::Sync { vcpu });
    }
}

/// Commands encoded from the GICv3 specification's field positions, one function per
/// command, with the command's fields as arguments (`vcpu`, `from`, `to`: RDbase).
pub mod cmd {
    /// An ITT address inside RAM; the ITS never reads it.
    const ITT: u64 = super::RAM_BASE + 0x8_0000;

    fn device_word(number: u64, device: u32) -> u64 {
        number | u64::from(device) << 32
    }

    pub fn mapd(device: u32, event_id_bits: u8, valid: bool) -> [u64; 4] {
        [device_word(0x08, device), u64::from(event_id_bits - 1), ITT | u64::from(valid) << 63, 0]
    }

    /// MAPD V=1 with the ITT at `itt` (256-byte aligned).
    pub fn mapd_at(device: u32, event_id_bits: u8, itt: u64) -> [u64; 4] {
        [device_word(0x08, device), u64::from(event_id_bits - 1), itt | 1 << 63, 0]
    }

    pub fn mapc(icid: u16, vcpu: u64, valid: bool) -> [u64; 4] {
        [0x09, 0, u64::from(icid) | vcpu << 16 | u64::from(valid) << 63, 0]
    }

    pub fn mapti(device: u32, event: u32, vintid: u32, icid: u16) -> [u64; 4] {
        [device_word(0x0a, device), u64::from(event) | u64::from(vintid) << 32, u64::from(icid), 0]
    }

    pub fn mapi(device: u32, event: u32, icid: u16) -> [u64; 4] {
        [device_word(0x0b, device), u64::from(event), u64::from(icid), 0]
    }

    pub fn movi(device: u32, event: u32, icid: u16) -> [u64; 4] {
        [device_word(0x01, device), u64::from(event), u64::from(icid), 0]
    }

    pub fn int(device: u32, event: u32) -> [u64; 4] {
        [device_word(0x03, device), u64::from(event), 0, 0]
    }

    pub fn clear(device: u32, event: u32) -> [u64; 4] {
        [device_word(0x04, device), u64::from(event), 0, 0]
    }

    pub fn inv(device: u32, event: u32) -> [u64; 4] {
        [device_word(0x0c, device), u64::from(event), 0, 0]
    }

    pub fn discard(device: u32, event: u32) -> [u64; 4] {
        [device_word(0x0f, device), u64::from(event), 0, 0]
    }

    pub fn invall(icid: u16) -> [u64; 4] {
        [0x0d, 0, u64::from(icid), 0]
    }

    pub fn sync(vcpu: u64) -> [u64; 4] {
        [0x05, 0, vcpu << 16, 0]
    }

    pub fn movall(from: u64, to: u64) -> [u64; 4] {
        [0x0e, 0, from << 16, to << 16]
    }
}

/// Capacities the harness's ITS is built with.
pub type TestIts = Its<4, 16, 4>;

/// Quotas equal to [`TestIts`]'s capacities, two vCPUs, 16-bit LPI INTIDs.
pub const CONFIG: Config =
    Config { max_devices: 4, max_events_per_device: 16, max_collections: 4, vcpus: 2, lpi_id_bits: 16 };

/// An ITS with guest RAM and a recording vgic-server.
pub struct Harness<const D: usize, const E: usize, const C: usize> {
    pub its: Its<D, E, C>,
    pub ram: Ram,
    pub vgic: RecordingVgic,
}

impl Harness<4, 16, 4> {
    /// The usual setup: [`CONFIG`], a one-page queue, flat tables, ITS enabled.
    pub fn new() -> Self {
        Self::with_config(CONFIG)
    }
}

impl<const D: usize, const E: usize, const C: usize> Harness<D, E, C> {
    /// `config`, a one-page queue at [`QUEUE_BASE`], one-page flat tables, enabled.
    pub fn with_config(config: Config) -> Self {
        let mut harness =
            Self { its: Its::new(config).unwrap(), ram: Ram::new(), vgic: RecordingVgic::default() };
        const VALID: u64 = 1 << 63;
        for (register, value) in [
            (offset::CBASER, VALID | QUEUE_BASE),
            (offset::BASER, VALID | DEVICE_TABLE),
            (offset::BASER + 8, VALID | COLLECTION_TABLE),
        ] {
            assert_eq!(harness.write64(register, value), Progress::Idle);
        }
        assert_eq!(harness.its.write(offset::CTLR, Width::Word, 1), Progress::Idle);
        harness
    }

    /// A 64-bit register read.
    pub fn read64(&self, offset: u64) -> u64 {
        self.its.read(offset, Width::Doubleword)
    }

    /// A 64-bit register write.
    pub fn write64(&mut self, offset: u64, value: u64) -> Progress {
        self.its.write(offset, Width::Doubleword, value)
    }

    /// Copies `commands` into the queue at CWRITER (wrapping) and moves CWRITER past
    /// them, without processing.
    pub fn queue(&mut self, commands: &[[u64; 4]]) -> Progress {
        let queue_size = ((self.read64(offset::CBASER) & 0xff) + 1) * 4096;
        let base = self.read64(offset::CBASER) & 0x000f_ffff_ffff_f000;
        let mut cwriter = self.read64(offset::CWRITER);
        for command in commands {
            for (index, word) in command.iter().enumerate() {
                self.ram.write_u64(base + cwriter + 8 * index as u64, *word);
            }
            cwriter = (cwriter + 32) % queue_size;
        }
        self.write64(offset::CWRITER, cwriter)
    }

    /// Queues `commands`, processes until idle, checks CREADR caught up with CWRITER and
    /// answers the messages sent.
    pub fn run(&mut self, commands: &[[u64; 4]]) -> Vec<Message> {
        let _ = self.queue(commands);
        assert_eq!(self.its.process(&mut self.vgic, &self.ram, usize::MAX), Progress::Idle);
        assert_eq!(self.read64(offset::CREADR), self.read64(offset::CWRITER));
        self.vgic.take()
    }

    /// [`Its::process`] with the harness's vgic-server and RAM.
    pub fn process(&mut self, budget: usize) -> Progress {
        self.its.process(&mut self.vgic, &self.ram, budget)
    }

    /// [`Its::msi`] with the harness's vgic-server.
    pub fn msi(&mut self, device: u32, event: u32) -> Result<(), crate::MsiDropped> {
        self.its.msi(&mut self.vgic, device, event)
    }
}
