//! The GITS_* registers: the MMIO map, access-size rules and register state.
//!
//! 32-bit registers take 32-bit accesses; 64-bit registers take 64-bit accesses and
//! 32-bit accesses to either half; GITS_TRANSLATER takes 16- and 32-bit writes. Any other
//! access (another size, a misaligned or unassigned offset) reads as zero and ignores
//! writes, with a log line. Writes to read-only registers are ignored.

use ipc::GUEST_EVENT;
use log::{debug, info};

use crate::GuestMemory;
use crate::command::COMMAND_SIZE;
use crate::server::{Its, Progress};

/// Offsets of the GITS_* registers from the ITS base (control frame, then translation
/// frame at 64 KiB).
pub mod offset {
    /// GITS_CTLR (32-bit).
    pub const CTLR: u64 = 0x0000;
    /// GITS_IIDR (32-bit, read-only).
    pub const IIDR: u64 = 0x0004;
    /// GITS_TYPER (64-bit, read-only).
    pub const TYPER: u64 = 0x0008;
    /// GITS_CBASER (64-bit).
    pub const CBASER: u64 = 0x0080;
    /// GITS_CWRITER (64-bit).
    pub const CWRITER: u64 = 0x0088;
    /// GITS_CREADR (64-bit, read-only).
    pub const CREADR: u64 = 0x0090;
    /// GITS_BASER0 (64-bit); `GITS_BASER<n>` is at `BASER + 8 * n`, n = 0..=7.
    pub const BASER: u64 = 0x0100;
    /// GITS_PIDR4, the first of the 32-bit read-only ID registers (PIDR4-7, PIDR0-3,
    /// CIDR0-3) that run to the end of the control frame.
    pub const ID_REGISTERS: u64 = 0xffd0;
    /// GITS_PIDR2, whose ArchRev field says GICv3.
    pub const PIDR2: u64 = 0xffe8;
    /// GITS_TRANSLATER (16- or 32-bit, write-only), in the translation frame.
    pub const TRANSLATER: u64 = 0x1_0040;
}

/// Bytes of the ITS's MMIO region: the control frame and the translation frame.
pub const FRAME_SIZE: u64 = 0x2_0000;

/// The size of an MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Halfword,
    /// 32 bits.
    Word,
    /// 64 bits.
    Doubleword,
}

/// GITS_IIDR: Arm's JEP106 code as implementer (as KVM and QEMU use for their emulated
/// ITSes), ProductID 0x52, revision 0. Linux keys ITS errata on IIDR; this value matches
/// none of them (0 would match one).
const IIDR: u64 = 0x5200_043b;

/// The ID registers from [`offset::ID_REGISTERS`] on: a 64 KiB frame (PIDR4.SIZE = 4),
/// designer Arm, part number 0x052, ArchRev 3 (GICv3) in PIDR2, and the standard CoreSight
/// component preamble in CIDR0-3.
const ID_REGISTERS: [u64; 12] = [0x44, 0, 0, 0, 0x52, 0xb0, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1];

const CTLR_ENABLED: u64 = 1;
const CTLR_QUIESCENT: u64 = 1 << 31;

const VALID: u64 = 1 << 63;
const INNER_CACHE: u64 = 0b111 << 59;
const OUTER_CACHE: u64 = 0b111 << 53;
const SHAREABILITY: u64 = 0b11 << 10;
const SIZE: u64 = 0xff;

/// CBASER's physical address field, bits [51:12].
const CBASER_ADDRESS: u64 = 0x000f_ffff_ffff_f000;
const CBASER_WRITABLE: u64 = VALID | INNER_CACHE | OUTER_CACHE | CBASER_ADDRESS | SHAREABILITY | SIZE;
/// The command queue is `Size + 1` pages of 4 KiB.
const QUEUE_PAGE_SIZE: u64 = 4096;
/// CWRITER/CREADR offset field, bits [19:5]. CWRITER.Retry and CREADR.Stalled (bit 0)
/// read as zero: this ITS never stalls.
const QUEUE_OFFSET: u64 = 0xf_ffe0;

const BASER_INDIRECT: u64 = 1 << 62;
/// With 64 KiB pages, bits [47:16] hold address bits [47:16] and bits [15:12] hold
/// address bits [51:48].
const BASER_ADDRESS: u64 = 0x0000_ffff_ffff_f000;
/// Address bits [47:16] of a 64 KiB-page table, where they are in BASER.
const BASER_ADDRESS_LOW: u64 = 0x0000_ffff_ffff_0000;
/// Where BASER keeps address bits [51:48] of a 64 KiB-page table.
const BASER_ADDRESS_HIGH_SHIFT: u32 = 12;
const BASER_WRITABLE: u64 =
    VALID | BASER_INDIRECT | INNER_CACHE | OUTER_CACHE | BASER_ADDRESS | SHAREABILITY | SIZE;
const BASER_TYPE_SHIFT: u32 = 56;
const BASER_ENTRY_SIZE_SHIFT: u32 = 48;
/// Page_Size is fixed at 64 KiB (0b10); guests read it back and adapt.
const BASER_PAGE_SIZE_64K: u64 = 0b10 << 8;
const TABLE_PAGE_SIZE: u64 = 64 << 10;
/// Bytes of a device- or collection-table entry as BASER.Entry_Size advertises it, and of
/// a level-1 entry of a two-level table (fixed by the architecture).
const TABLE_ENTRY_SIZE: u64 = 8;
const L1_ENTRY_VALID: u64 = 1 << 63;

/// Guest-physical base address of the table a `GITS_BASER<n>` value describes.
const fn table_base(baser: u64) -> u64 {
    (baser & BASER_ADDRESS_LOW) | (baser >> BASER_ADDRESS_HIGH_SHIFT & 0xf) << 48
}

/// The two tables this ITS asks the guest for, in GITS_BASER0 and GITS_BASER1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Table {
    /// GITS_BASER0, Type 1.
    Devices,
    /// GITS_BASER1, Type 4.
    Collections,
}

impl Table {
    const fn type_field(self) -> u64 {
        match self {
            Self::Devices => 1,
            Self::Collections => 4,
        }
    }
}

/// Register state other than what the configuration fixes.
#[derive(Clone)]
pub(crate) struct Registers {
    pub(crate) enabled: bool,
    cbaser: u64,
    cwriter: u64,
    pub(crate) creadr: u64,
    /// Writable bits of GITS_BASER0 and GITS_BASER1.
    device_baser: u64,
    collection_baser: u64,
}

impl Registers {
    /// Reset values: disabled, no queue, no tables.
    pub(crate) const fn new() -> Self {
        Self { enabled: false, cbaser: 0, cwriter: 0, creadr: 0, device_baser: 0, collection_baser: 0 }
    }

    fn queue_size(&self) -> u64 {
        ((self.cbaser & SIZE) + 1) * QUEUE_PAGE_SIZE
    }

    /// Whether commands wait in an enabled ITS's valid queue.
    pub(crate) fn commands_waiting(&self) -> bool {
        self.enabled && self.cbaser & VALID != 0 && self.creadr != self.cwriter
    }

    /// Guest-physical address of the command at CREADR.
    pub(crate) fn next_command_address(&self) -> u64 {
        (self.cbaser & CBASER_ADDRESS) + self.creadr
    }

    /// Moves CREADR past one command, wrapping at the end of the queue.
    pub(crate) fn advance_creadr(&mut self) {
        self.creadr = (self.creadr + COMMAND_SIZE) % self.queue_size();
    }

    fn baser(&self, table: Table) -> u64 {
        match table {
            Table::Devices => self.device_baser,
            Table::Collections => self.collection_baser,
        }
    }

    /// Checks that the guest's `table` has an entry for `id`, as the architecture makes an
    /// ID the table cannot hold a command error: the table must be valid, and `id` within
    /// a flat table's size or, for a two-level table, under a valid level-1 entry (read
    /// from guest memory). Nothing is ever written to the table.
    pub(crate) fn check_table_entry(
        &self,
        table: Table,
        id: u32,
        memory: &impl GuestMemory,
    ) -> Result<(), TableError> {
        let baser = self.baser(table);
        if baser & VALID == 0 {
            return Err(TableError::Invalid);
        }
        let table_bytes = ((baser & SIZE) + 1) * TABLE_PAGE_SIZE;
        let id = u64::from(id);
        if baser & BASER_INDIRECT == 0 {
            return if id < table_bytes / TABLE_ENTRY_SIZE { Ok(()) } else { Err(TableError::TooSmall) };
        }
        let l1_index = id / (TABLE_PAGE_SIZE / TABLE_ENTRY_SIZE);
        if l1_index >= table_bytes / TABLE_ENTRY_SIZE {
            return Err(TableError::TooSmall);
        }
        let l1_address = table_base(baser) + l1_index * TABLE_ENTRY_SIZE;
        let mut entry = [0; TABLE_ENTRY_SIZE as usize];
        memory.read(l1_address, &mut entry).map_err(|_| TableError::OutsideRam(l1_address))?;
        if u64::from_le_bytes(entry) & L1_ENTRY_VALID == 0 {
            return Err(TableError::Unpopulated);
        }
        Ok(())
    }
}

/// Why a guest table has no entry for an ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The table's `GITS_BASER<n>`.Valid is 0.
    Invalid,
    /// The ID is beyond the table's size.
    TooSmall,
    /// The level-1 entry covering the ID is not valid.
    Unpopulated,
    /// The level-1 entry at this address is outside the VM's RAM.
    OutsideRam(u64),
}

/// A register as an access reaches it.
#[derive(Clone, Copy, Debug)]
enum Register {
    Ctlr,
    Iidr,
    Typer,
    Cbaser,
    Cwriter,
    Creadr,
    Baser(Table),
    /// GITS_BASER2..7: no table, the whole register is RES0.
    UnusedBaser,
    Id(u64),
    Translater,
}

/// Which part of a 64-bit register an access covers.
#[derive(Clone, Copy, Debug)]
enum Part {
    Whole,
    Low,
    High,
}

impl Part {
    fn extract(self, value: u64) -> u64 {
        match self {
            Self::Whole => value,
            Self::Low => value & 0xffff_ffff,
            Self::High => value >> 32,
        }
    }

    fn merge(self, old: u64, written: u64) -> u64 {
        match self {
            Self::Whole => written,
            Self::Low => (old & !0xffff_ffff) | (written & 0xffff_ffff),
            Self::High => (old & 0xffff_ffff) | written << 32,
        }
    }
}

/// The register and part an access of `width` at `offset` reaches, if the access is one
/// the architecture allows.
fn decode(offset: u64, width: Width) -> Option<(Register, Part)> {
    let sixty_four_bit = match offset & !0x7 {
        offset::TYPER => Some(Register::Typer),
        offset::CBASER => Some(Register::Cbaser),
        offset::CWRITER => Some(Register::Cwriter),
        offset::CREADR => Some(Register::Creadr),
        baser if (offset::BASER..offset::BASER + 8 * 8).contains(&baser) => {
            Some(match (baser - offset::BASER) / 8 {
                0 => Register::Baser(Table::Devices),
                1 => Register::Baser(Table::Collections),
                _ => Register::UnusedBaser,
            })
        }
        _ => None,
    };
    if let Some(register) = sixty_four_bit {
        return match (width, offset & 0x7) {
            (Width::Doubleword, 0) => Some((register, Part::Whole)),
            (Width::Word, 0) => Some((register, Part::Low)),
            (Width::Word, 4) => Some((register, Part::High)),
            _ => None,
        };
    }
    let register = match offset {
        offset::CTLR => Register::Ctlr,
        offset::IIDR => Register::Iidr,
        offset::TRANSLATER if matches!(width, Width::Word | Width::Halfword) => {
            return Some((Register::Translater, Part::Whole));
        }
        id if (offset::ID_REGISTERS..offset::ID_REGISTERS + 4 * ID_REGISTERS.len() as u64).contains(&id)
            && id % 4 == 0 =>
        {
            Register::Id(ID_REGISTERS[((id - offset::ID_REGISTERS) / 4) as usize])
        }
        _ => return None,
    };
    (width == Width::Word).then_some((register, Part::Whole))
}

impl<const DEVICES: usize, const EVENTS: usize, const COLLECTIONS: usize> Its<DEVICES, EVENTS, COLLECTIONS> {
    /// The value an MMIO read of `width` at `offset` (from the ITS base) returns.
    pub fn read(&self, offset: u64, width: Width) -> u64 {
        let Some((register, part)) = decode(offset, width) else {
            info!(target: GUEST_EVENT, "its: {width:?} read at {offset:#x} is not a register access: reads as zero");
            return 0;
        };
        let registers = &self.registers;
        let value = match register {
            Register::Ctlr => {
                let enabled = if registers.enabled { CTLR_ENABLED } else { 0 };
                let quiescent = if self.is_quiescent() { CTLR_QUIESCENT } else { 0 };
                enabled | quiescent
            }
            Register::Iidr => IIDR,
            Register::Typer => self.config.typer(),
            Register::Cbaser => registers.cbaser,
            Register::Cwriter => registers.cwriter,
            Register::Creadr => registers.creadr,
            Register::Baser(table) => {
                table.type_field() << BASER_TYPE_SHIFT
                    | (TABLE_ENTRY_SIZE - 1) << BASER_ENTRY_SIZE_SHIFT
                    | BASER_PAGE_SIZE_64K
                    | registers.baser(table)
            }
            Register::UnusedBaser => 0,
            Register::Id(value) => value,
            Register::Translater => {
                info!(target: GUEST_EVENT, "its: GITS_TRANSLATER is write-only: reads as zero");
                0
            }
        };
        part.extract(value)
    }

    /// An MMIO write of `value` (of `width`) at `offset` from the ITS base. The answer says
    /// whether [`Its::process`] has work: after a write to GITS_CWRITER or GITS_CTLR the
    /// shell calls it to run the new commands.
    pub fn write(&mut self, offset: u64, width: Width, value: u64) -> Progress {
        match decode(offset, width) {
            None => {
                info!(target: GUEST_EVENT, "its: {width:?} write at {offset:#x} is not a register access: ignored")
            }
            Some((Register::Ctlr, _)) => self.registers.enabled = value & CTLR_ENABLED != 0,
            Some((register @ (Register::Iidr | Register::Typer | Register::Creadr | Register::Id(_)), _)) => {
                debug!("its: write to read-only {register:?} ignored");
            }
            Some((Register::UnusedBaser, _)) => debug!("its: write to an unused GITS_BASER ignored"),
            Some((Register::Translater, _)) => {
                info!(target: GUEST_EVENT, "its: a vCPU's GITS_TRANSLATER write carries no DeviceID: ignored");
            }
            Some((Register::Cbaser | Register::Baser(_), _)) if !self.is_quiescent() => {
                info!(target: GUEST_EVENT, "its: GITS_CBASER/GITS_BASER write while the ITS is enabled or busy: ignored");
            }
            Some((Register::Cbaser, part)) => {
                let registers = &mut self.registers;
                registers.cbaser = part.merge(registers.cbaser, value) & CBASER_WRITABLE;
                registers.creadr = 0;
                registers.cwriter = 0;
            }
            Some((Register::Baser(table), part)) => {
                let registers = &mut self.registers;
                let slot = match table {
                    Table::Devices => &mut registers.device_baser,
                    Table::Collections => &mut registers.collection_baser,
                };
                *slot = part.merge(*slot, value) & BASER_WRITABLE;
            }
            Some((Register::Cwriter, part)) => {
                let registers = &mut self.registers;
                let cwriter = part.merge(registers.cwriter, value) & QUEUE_OFFSET;
                if cwriter < registers.queue_size() {
                    registers.cwriter = cwriter;
                } else {
                    info!(target: GUEST_EVENT, "its: GITS_CWRITER {cwriter:#x} beyond the command queue: ignored");
                }
            }
        }
        self.progress()
    }

    /// Whether the ITS is disabled with no operation in progress (GITS_CTLR.Quiescent).
    /// Commands do not run while the ITS is disabled, so only a MAPD teardown can keep
    /// it busy.
    fn is_quiescent(&self) -> bool {
        !self.registers.enabled && !self.is_tearing_down()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{CONFIG, Harness, QUEUE_BASE, RAM_BASE, Ram, TestIts, cmd};
    use crate::{GuestMemory, OutsideRam};

    fn its() -> TestIts {
        TestIts::new(CONFIG).unwrap()
    }

    const ALL_WIDTHS: [Width; 4] = [Width::Byte, Width::Halfword, Width::Word, Width::Doubleword];

    #[test]
    fn ctlr_enables_and_reports_quiescence() {
        let mut its = its();
        assert_eq!(its.read(offset::CTLR, Width::Word), CTLR_QUIESCENT);
        assert_eq!(its.write(offset::CTLR, Width::Word, 0xffff_ffff), Progress::Idle);
        assert_eq!(its.read(offset::CTLR, Width::Word), CTLR_ENABLED);
        let _ = its.write(offset::CTLR, Width::Word, 0xffff_fffe);
        assert_eq!(its.read(offset::CTLR, Width::Word), CTLR_QUIESCENT);
        // A 64-bit access to a 32-bit register reads as zero and is ignored.
        let _ = its.write(offset::CTLR, Width::Doubleword, 1);
        assert_eq!(its.read(offset::CTLR, Width::Doubleword), 0);
        assert_eq!(its.read(offset::CTLR, Width::Word), CTLR_QUIESCENT);
    }

    #[test]
    fn identification_registers_read_their_values_and_ignore_writes() {
        let mut its = its();
        let typer = CONFIG.typer();
        let expected = [
            (offset::IIDR, IIDR),
            (offset::TYPER, typer & 0xffff_ffff),
            (offset::TYPER + 4, typer >> 32),
            (offset::PIDR2, 0x3b),
            (0xffd0, 0x44),
            (0xffe0, 0x52),
            (0xffe4, 0xb0),
            (0xfff0, 0x0d),
            (0xfff4, 0xf0),
            (0xfff8, 0x05),
            (0xfffc, 0xb1),
        ];
        for (offset, value) in expected {
            let _ = its.write(offset, Width::Word, !value);
            assert_eq!(its.read(offset, Width::Word), value, "{offset:#x}");
        }
        assert_eq!(its.read(offset::PIDR2, Width::Word) >> 4 & 0xf, 3, "ArchRev: GICv3");
        let _ = its.write(offset::TYPER, Width::Doubleword, 0);
        assert_eq!(its.read(offset::TYPER, Width::Doubleword), typer);
        // The ID registers are 32-bit only.
        assert_eq!(its.read(offset::PIDR2, Width::Doubleword), 0);
        assert_eq!(its.read(offset::PIDR2, Width::Byte), 0);
    }

    #[test]
    fn cbaser_keeps_its_writable_fields_and_resets_the_queue() {
        let mut harness = Harness::new();
        harness.run(&[cmd::sync(0), cmd::sync(1)]);
        assert_eq!(harness.read64(offset::CREADR), 64);
        // Ignored while enabled.
        let _ = harness.write64(offset::CBASER, 0);
        assert_eq!(harness.read64(offset::CBASER), VALID | QUEUE_BASE);
        let _ = harness.its.write(offset::CTLR, Width::Word, 0);
        let _ = harness.write64(offset::CBASER, u64::MAX);
        assert_eq!(harness.read64(offset::CBASER), CBASER_WRITABLE);
        assert_eq!(harness.read64(offset::CREADR), 0);
        assert_eq!(harness.read64(offset::CWRITER), 0);
        // 32-bit halves read and write independently.
        let _ = harness.its.write(offset::CBASER, Width::Word, 0x1234_5003);
        assert_eq!(harness.its.read(offset::CBASER, Width::Word), 0x1234_5003);
        assert_eq!(harness.its.read(offset::CBASER + 4, Width::Word), CBASER_WRITABLE >> 32);
        let _ = harness.its.write(offset::CBASER + 4, Width::Word, 0x8000_0000);
        assert_eq!(harness.read64(offset::CBASER), VALID | 0x1234_5003);
        // Narrow and misaligned accesses are not register accesses.
        let _ = harness.its.write(offset::CBASER, Width::Halfword, 0);
        let _ = harness.its.write(offset::CBASER + 2, Width::Word, 0);
        let _ = harness.its.write(offset::CBASER + 4, Width::Doubleword, 0);
        assert_eq!(harness.read64(offset::CBASER), VALID | 0x1234_5003);
        assert_eq!(harness.its.read(offset::CBASER + 4, Width::Doubleword), 0);
    }

    #[test]
    fn cwriter_takes_offsets_inside_the_queue_only() {
        let mut harness = Harness::new();
        let _ = harness.its.write(offset::CTLR, Width::Word, 0);
        assert_eq!(harness.write64(offset::CWRITER, 0x7e0 | 1), Progress::Idle);
        assert_eq!(harness.read64(offset::CWRITER), 0x7e0, "Retry is RAZ/WI");
        // The queue is one page: 0x1000 is beyond it.
        let _ = harness.write64(offset::CWRITER, 0x1000);
        assert_eq!(harness.read64(offset::CWRITER), 0x7e0);
        let _ = harness.its.write(offset::CWRITER + 4, Width::Word, 0xffff_ffff);
        let _ = harness.its.write(offset::CWRITER, Width::Word, 0x20);
        assert_eq!(harness.read64(offset::CWRITER), 0x20);
        // CREADR is read-only.
        let _ = harness.write64(offset::CREADR, 0x40);
        let _ = harness.its.write(offset::CREADR, Width::Word, 0x40);
        assert_eq!(harness.read64(offset::CREADR), 0);
        assert_eq!(harness.its.write(offset::CTLR, Width::Word, 1), Progress::MoreWork);
    }

    #[test]
    fn creadr_wraps_around_the_queue() {
        let mut harness = Harness::new();
        assert_eq!(harness.run(&[cmd::sync(0); 100]).len(), 100);
        assert_eq!(harness.read64(offset::CREADR), 100 * 32);
        // 40 more commands: 28 to the end of the page, 12 from its start.
        let messages = harness.run(&[cmd::sync(1); 40]);
        assert_eq!(messages.len(), 40);
        assert_eq!(harness.read64(offset::CREADR), 12 * 32);
        assert_eq!(harness.its.read(offset::CREADR, Width::Word), 12 * 32);
        assert_eq!(harness.its.read(offset::CREADR + 4, Width::Word), 0);
    }

    #[test]
    fn basers_describe_a_device_and_a_collection_table() {
        let mut its = its();
        let fixed = |table_type: u64| table_type << 56 | 7 << 48 | 0b10 << 8;
        assert_eq!(its.read(offset::BASER, Width::Doubleword), fixed(1));
        assert_eq!(its.read(offset::BASER + 8, Width::Doubleword), fixed(4));
        for n in 2..8 {
            let _ = its.write(offset::BASER + 8 * n, Width::Doubleword, u64::MAX);
            assert_eq!(its.read(offset::BASER + 8 * n, Width::Doubleword), 0, "GITS_BASER{n}");
        }
        // Type, Entry_Size and Page_Size are read-only.
        let _ = its.write(offset::BASER, Width::Doubleword, u64::MAX);
        assert_eq!(its.read(offset::BASER, Width::Doubleword), BASER_WRITABLE | fixed(1));
        let _ = its.write(offset::BASER + 8, Width::Doubleword, 0);
        let _ = its.write(offset::BASER + 8, Width::Word, 0x0001_0003);
        let _ = its.write(offset::BASER + 12, Width::Word, 0x8000_0000);
        assert_eq!(its.read(offset::BASER + 8, Width::Doubleword), VALID | 0x0001_0003 | fixed(4));
        assert_eq!(its.read(offset::BASER + 12, Width::Word), (VALID | fixed(4)) >> 32);
        // Ignored while enabled.
        let _ = its.write(offset::CTLR, Width::Word, 1);
        let _ = its.write(offset::BASER + 8, Width::Doubleword, 0);
        assert_eq!(its.read(offset::BASER + 8, Width::Doubleword), VALID | 0x0001_0003 | fixed(4));
    }

    #[test]
    fn other_accesses_read_as_zero_and_are_ignored() {
        let mut its = its();
        let _ = its.write(offset::CTLR, Width::Word, 1);
        let offsets =
            [0x2, 0x10, 0x20, 0x40, 0x48, 0x98, 0x140, 0xc000, 0xffcc, 0x1_0000, 0x1_0044, FRAME_SIZE - 4];
        for offset in offsets {
            for width in ALL_WIDTHS {
                let _ = its.write(offset, width, u64::MAX);
                assert_eq!(its.read(offset, width), 0, "{width:?} at {offset:#x}");
            }
        }
        for width in [Width::Byte, Width::Halfword] {
            assert_eq!(its.read(offset::CTLR, width), 0);
            let _ = its.write(offset::CTLR, width, 0);
        }
        assert_eq!(its.read(offset::CTLR, Width::Word), CTLR_ENABLED);
        assert_eq!(its.read(offset::TYPER + 2, Width::Halfword), 0);
    }

    #[test]
    fn a_vcpus_translater_write_is_ignored() {
        let mut harness = Harness::new();
        harness.run(&[cmd::mapc(0, 0, true), cmd::mapd(0, 4, true), cmd::mapti(0, 0, 8192, 0)]);
        for width in ALL_WIDTHS {
            assert_eq!(harness.its.write(offset::TRANSLATER, width, 0), Progress::Idle);
            assert_eq!(harness.its.read(offset::TRANSLATER, width), 0);
        }
        assert_eq!(harness.vgic.take(), []);
    }

    /// Memory that records the address of every read and answers all-ones.
    struct Probe(std::cell::Cell<Option<u64>>);

    impl GuestMemory for Probe {
        fn read(&self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam> {
            self.0.set(Some(ipa));
            buffer.fill(0xff);
            Ok(())
        }

        fn contains(&self, _: u64, _: u64) -> bool {
            true
        }
    }

    #[test]
    fn two_level_tables_index_level_one_by_64k_pages() {
        let mut registers = Registers::new();
        let probe = Probe(std::cell::Cell::new(None));
        // Address bits [15:12] of a 64 KiB-page BASER hold address bits [51:48].
        registers.device_baser = VALID | BASER_INDIRECT | 0x0000_1234_5678_0000 | 0x3 << 12;
        assert_eq!(registers.check_table_entry(Table::Devices, 3 * 8192 + 5, &probe), Ok(()));
        assert_eq!(probe.0.get(), Some(0x0003_1234_5678_0000 + 3 * 8));
        // One page of level 1 holds 8192 entries, each covering 8192 IDs.
        let beyond = 8192 * 8192;
        assert_eq!(registers.check_table_entry(Table::Devices, beyond - 1, &probe), Ok(()));
        assert_eq!(registers.check_table_entry(Table::Devices, beyond, &probe), Err(TableError::TooSmall));
        registers.device_baser |= 1;
        assert_eq!(registers.check_table_entry(Table::Devices, beyond, &probe), Ok(()));
        // A level-1 read outside RAM is an error, never an access.
        registers.collection_baser = VALID | BASER_INDIRECT | RAM_BASE;
        assert_eq!(
            registers.check_table_entry(Table::Collections, 0, &Ram::new()),
            Err(TableError::Unpopulated)
        );
        registers.collection_baser = VALID | BASER_INDIRECT;
        assert_eq!(
            registers.check_table_entry(Table::Collections, 8192, &Ram::new()),
            Err(TableError::OutsideRam(8))
        );
    }

    #[test]
    fn flat_tables_hold_size_pages_of_8_byte_entries() {
        let mut registers = Registers::new();
        let ram = Ram::new();
        assert_eq!(registers.check_table_entry(Table::Devices, 0, &ram), Err(TableError::Invalid));
        registers.device_baser = VALID | 2;
        assert_eq!(registers.check_table_entry(Table::Devices, 3 * 8192 - 1, &ram), Ok(()));
        assert_eq!(registers.check_table_entry(Table::Devices, 3 * 8192, &ram), Err(TableError::TooSmall));
    }
}
