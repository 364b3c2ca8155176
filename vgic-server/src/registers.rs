//! What the distributor and the redistributors share: access-size rules, the
//! per-interrupt register banks (GICD_I*`R<n>` for SPIs, the SGI frame's for SGIs and
//! PPIs), and the identification registers.

use log::debug;

use crate::Vcpus;
use crate::config::FIRST_SPI;
use crate::interface::PRIORITY_MASK;
use crate::irq::{ACTIVE, EDGE, ENABLED, FIXED_CONFIG, Irq, IrqId, LATCH};
use crate::server::Vgic;

pub use its_server::Width;

/// Offsets of the identification registers, the same in GICD and in each GICR's RD_base
/// frame.
pub mod id_offset {
    /// PIDR4, the first of the 32-bit read-only ID registers (PIDR4-7, PIDR0-3, CIDR0-3)
    /// that run to the end of the frame.
    pub const FIRST: u64 = 0xffd0;
    /// PIDR2, whose ArchRev field (bits `[7:4]`) says GICv3.
    pub const PIDR2: u64 = 0xffe8;
}

/// The ID registers from [`id_offset::FIRST`]: 64 KiB frames (PIDR4.SIZE = 4), designer
/// Arm (JEP106 0x43b), part number 0x052, ArchRev 3 in PIDR2, and the CoreSight
/// component preamble in CIDR0-3.
const ID_REGISTERS: [u32; 12] = [0x44, 0, 0, 0, 0x52, 0xb0, 0x3b, 0, 0x0d, 0xf0, 0x05, 0xb1];

/// GICD_IIDR and GICR_IIDR: implementer Arm, ProductID 0x52, revision 0. Linux keys GIC
/// errata on IIDR; this value matches none of them.
pub(crate) const IIDR: u32 = 0x5200_043b;

/// Bytes of an access.
pub(crate) const fn size(width: Width) -> u64 {
    match width {
        Width::Byte => 1,
        Width::Halfword => 2,
        Width::Word => 4,
        Width::Doubleword => 8,
    }
}

/// Whether an access of `width` at `offset` is naturally aligned and one of `allowed`.
pub(crate) fn fits(offset: u64, width: Width, allowed: &[Width]) -> bool {
    allowed.contains(&width) && offset.is_multiple_of(size(width))
}

/// The sizes a 64-bit register takes: all of it, or either 32-bit half.
pub(crate) const DOUBLEWORD_OR_HALVES: [Width; 2] = [Width::Doubleword, Width::Word];

/// Reads the part of 64-bit register `value` that an access at `offset` (relative to the
/// register) of `width` covers.
pub(crate) fn read_part(value: u64, offset: u64, width: Width) -> u64 {
    match width {
        Width::Doubleword => value,
        _ => value >> (offset * 8) & ((1 << (size(width) * 8)) - 1),
    }
}

/// Writes `part` into the part of 64-bit register `old` that an access at `offset`
/// (relative to the register) of `width` covers.
pub(crate) fn write_part(old: u64, offset: u64, width: Width, part: u64) -> u64 {
    match width {
        Width::Doubleword => part,
        _ => {
            let mask = ((1 << (size(width) * 8)) - 1) << (offset * 8);
            (old & !mask) | (part << (offset * 8) & mask)
        }
    }
}

/// The value of the ID register at `offset` (in `id_offset::FIRST..0x10000`).
pub(crate) fn id_register(offset: u64) -> u64 {
    ID_REGISTERS[((offset - id_offset::FIRST) / 4) as usize] as u64
}

/// The per-interrupt registers, by what one field of them means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// I*GROUPR: 1 bit, Group 1 (reads as one, writes ignored).
    Group,
    /// I*SENABLER: 1 bit.
    SetEnable,
    /// I*CENABLER: 1 bit.
    ClearEnable,
    /// I*SPENDR: 1 bit.
    SetPending,
    /// I*CPENDR: 1 bit.
    ClearPending,
    /// I*SACTIVER: 1 bit.
    SetActive,
    /// I*CACTIVER: 1 bit.
    ClearActive,
    /// IPRIORITYR: 8 bits.
    Priority,
    /// GICD_ITARGETSR: 8 bits, RAZ/WI with affinity routing.
    Targets,
    /// ICFGR: 2 bits, bit 1 = edge-triggered.
    Config,
    /// IGRPMODR: 1 bit, RAZ/WI with a single security state.
    GroupModifier,
    /// NSACR: 2 bits, RAZ/WI with a single security state.
    NonSecureAccess,
}

impl Field {
    /// The field at register-file offset `offset` and the first INTID its register covers.
    pub(crate) fn at(offset: u64) -> Option<(Self, u32)> {
        let bits = |field: Self, base: u64| Some((field, ((offset - base) * 8 / field.bits() as u64) as u32));
        match offset {
            0x0080..0x0100 => bits(Self::Group, 0x0080),
            0x0100..0x0180 => bits(Self::SetEnable, 0x0100),
            0x0180..0x0200 => bits(Self::ClearEnable, 0x0180),
            0x0200..0x0280 => bits(Self::SetPending, 0x0200),
            0x0280..0x0300 => bits(Self::ClearPending, 0x0280),
            0x0300..0x0380 => bits(Self::SetActive, 0x0300),
            0x0380..0x0400 => bits(Self::ClearActive, 0x0380),
            0x0400..0x0800 => bits(Self::Priority, 0x0400),
            0x0800..0x0c00 => bits(Self::Targets, 0x0800),
            0x0c00..0x0d00 => bits(Self::Config, 0x0c00),
            0x0d00..0x0d80 => bits(Self::GroupModifier, 0x0d00),
            0x0e00..0x0f00 => bits(Self::NonSecureAccess, 0x0e00),
            _ => None,
        }
    }

    /// Bits per interrupt.
    pub(crate) const fn bits(self) -> u32 {
        match self {
            Self::Priority | Self::Targets => 8,
            Self::Config | Self::NonSecureAccess => 2,
            _ => 1,
        }
    }

    /// The access sizes the architecture allows: bytes too for the byte-per-interrupt
    /// registers, words only for the rest.
    pub(crate) const fn widths(self) -> &'static [Width] {
        match self {
            Self::Priority | Self::Targets => &[Width::Byte, Width::Word],
            _ => &[Width::Word],
        }
    }
}

/// Which interrupts a per-interrupt register bank covers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bank {
    /// The distributor's: SPIs (the INTID 0-31 registers are RAZ/WI with affinity routing).
    Shared,
    /// A redistributor's SGI frame: SGIs and PPIs of this vCPU.
    Private(u16),
}

impl<const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize> Vgic<VCPUS, LPIS, COLLECTIONS> {
    fn bank_id(&self, bank: Bank, intid: u32) -> Option<IrqId> {
        match bank {
            Bank::Shared => self.spi_id(intid),
            Bank::Private(vcpu) if intid < FIRST_SPI => self.private_id(vcpu, intid),
            Bank::Private(_) => None,
        }
    }

    /// The interrupts an access of `width` at `field` register INTID `first` covers, by
    /// position in the register (absent ones, RAZ/WI, are `None`), and their count.
    fn covered(&self, bank: Bank, field: Field, first: u32, width: Width) -> ([Option<IrqId>; 32], u32) {
        let count = size(width) as u32 * 8 / field.bits();
        let mut ids = [None; 32];
        for (index, id) in ids.iter_mut().enumerate().take(count as usize) {
            *id = self.bank_id(bank, first + index as u32);
        }
        (ids, count)
    }

    /// Reads a per-interrupt register. Pending and active state is read after syncing
    /// the vCPUs that hold copies, so it includes what the guest did to them.
    pub(crate) fn read_field(
        &mut self,
        vcpus: &mut impl Vcpus,
        bank: Bank,
        field: Field,
        first: u32,
        width: Width,
    ) -> u64 {
        let (ids, count) = self.covered(bank, field, first, width);
        if matches!(field, Field::SetPending | Field::ClearPending | Field::SetActive | Field::ClearActive) {
            self.sync_for_read(vcpus, ids.into_iter().flatten());
        }
        let mut value = 0;
        for (index, id) in ids.into_iter().enumerate().take(count as usize) {
            let Some(id) = id else { continue };
            let irq = self.irq(id);
            let bits: u64 = match field {
                Field::Group => 1,
                Field::SetEnable | Field::ClearEnable => irq.has(ENABLED) as u64,
                Field::SetPending | Field::ClearPending => irq.pending() as u64,
                Field::SetActive | Field::ClearActive => irq.has(ACTIVE) as u64,
                Field::Priority => irq.priority as u64,
                Field::Config => (irq.has(EDGE) as u64) << 1,
                Field::Targets | Field::GroupModifier | Field::NonSecureAccess => 0,
            };
            value |= bits << (index as u32 * field.bits());
        }
        value
    }

    /// Writes a per-interrupt register.
    pub(crate) fn write_field(
        &mut self,
        vcpus: &mut impl Vcpus,
        bank: Bank,
        field: Field,
        first: u32,
        width: Width,
        value: u64,
    ) {
        let (ids, count) = self.covered(bank, field, first, width);
        let per_interrupt = field.bits();
        for (index, id) in ids.into_iter().enumerate().take(count as usize) {
            let Some(id) = id else { continue };
            let index = index as u32;
            let bits = (value >> (index * per_interrupt) & ((1 << per_interrupt) - 1)) as u8;
            let set = bits & 1 != 0;
            let change: Option<fn(&mut Irq, u8)> = match field {
                Field::SetEnable if set => Some(|irq, _| irq.set(ENABLED, true)),
                Field::ClearEnable if set => Some(|irq, _| irq.set(ENABLED, false)),
                Field::SetPending if set => Some(|irq, _| irq.set(LATCH, true)),
                Field::ClearPending if set => Some(clear_pending),
                Field::SetActive if set => Some(|irq, _| irq.set(ACTIVE, true)),
                Field::ClearActive if set => Some(|irq, _| irq.set(ACTIVE, false)),
                Field::Priority => Some(|irq, bits| irq.priority = bits & PRIORITY_MASK),
                Field::Config if self.irq(id).has(FIXED_CONFIG) => {
                    debug!("ICFGR write to fixed INTID {} ignored", Self::intid(id));
                    None
                }
                Field::Config => Some(|irq, bits| irq.set(EDGE, bits & 2 != 0)),
                _ => None,
            };
            if let Some(change) = change {
                self.modify(vcpus, id, |irq| change(irq, bits));
            }
        }
    }
}

/// ICPENDR: clears the latch; a level-sensitive line that is still asserted keeps the
/// interrupt pending. A hardware-linked interrupt's pending state is its physical
/// interrupt, which is released (the device asserts it again if it still wants to).
fn clear_pending(irq: &mut Irq, _: u8) {
    irq.set(LATCH, false);
    if irq.has(crate::irq::HARDWARE) {
        irq.drive(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_cover_the_architected_ranges() {
        assert_eq!(Field::at(0x0084), Some((Field::Group, 32)));
        assert_eq!(Field::at(0x0104), Some((Field::SetEnable, 32)));
        assert_eq!(Field::at(0x01fc), Some((Field::ClearEnable, 992)));
        assert_eq!(Field::at(0x0420), Some((Field::Priority, 32)));
        assert_eq!(Field::at(0x0423), Some((Field::Priority, 35)));
        assert_eq!(Field::at(0x0c08), Some((Field::Config, 32)));
        assert_eq!(Field::at(0x0e04), Some((Field::NonSecureAccess, 16)));
        assert_eq!(Field::at(0x0d80), None);
        assert_eq!(Field::at(0x0f00), None);
    }

    #[test]
    fn halves_of_64_bit_registers_read_and_write_independently() {
        let value = 0x1122_3344_5566_7788;
        assert_eq!(read_part(value, 0, Width::Doubleword), value);
        assert_eq!(read_part(value, 0, Width::Word), 0x5566_7788);
        assert_eq!(read_part(value, 4, Width::Word), 0x1122_3344);
        assert_eq!(write_part(value, 4, Width::Word, 0xaabb_ccdd), 0xaabb_ccdd_5566_7788);
        assert_eq!(write_part(value, 0, Width::Word, 0xffff_ffff_0000_0001), 0x1122_3344_0000_0001);
        assert_eq!(write_part(value, 0, Width::Doubleword, 7), 7);
    }

    #[test]
    fn id_registers_say_gicv3() {
        assert_eq!(id_register(id_offset::PIDR2) >> 4 & 0xf, 3);
        assert_eq!(id_register(0xfffc), 0xb1);
    }
}
