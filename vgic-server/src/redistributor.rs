//! The GICR_* register files: one redistributor per vCPU, each an RD_base frame and an
//! SGI_base frame (64 KiB each), at a stride of 128 KiB from the redistributor region's
//! base. Any vCPU may access any redistributor; frames past the last one read as zero.
//!
//! Access sizes follow the same rules as the distributor's: 32-bit registers take 32-bit
//! accesses (IPRIORITYR bytes too); GICR_TYPER, PROPBASER and PENDBASER take 64-bit
//! accesses and 32-bit accesses to either half. Anything else reads as zero and ignores
//! writes, with a log line. There is no DirectLPI (GICR_SETLPIR, CLRLPIR, INVLPIR,
//! INVALLR and SYNCR are not implemented): LPIs come from the ITS.

use ipc::GUEST_EVENT;
use log::info;

use crate::config::FIRST_SPI;
use crate::registers::{
    Bank, DOUBLEWORD_OR_HALVES, Field, IIDR, Width, fits, id_offset, id_register, read_part, write_part,
};
use crate::server::{ROUTE_ANY, Vgic};
use crate::{GuestMemory, Vcpus};

/// Offsets of the registers of one redistributor, from its RD_base.
pub mod offset {
    /// GICR_CTLR: EnableLPIs; RWP reads as zero (every change is complete when the
    /// access returns).
    pub const CTLR: u64 = 0x0000;
    /// GICR_IIDR (read-only).
    pub const IIDR: u64 = 0x0004;
    /// GICR_TYPER (64-bit, read-only).
    pub const TYPER: u64 = 0x0008;
    /// GICR_STATUSR (RAZ/WI: no errors are reported).
    pub const STATUSR: u64 = 0x0010;
    /// GICR_WAKER: ProcessorSleep, with ChildrenAsleep following it.
    pub const WAKER: u64 = 0x0014;
    /// GICR_PROPBASER (64-bit), shared by all redistributors.
    pub const PROPBASER: u64 = 0x0070;
    /// GICR_PENDBASER (64-bit).
    pub const PENDBASER: u64 = 0x0078;
    /// SGI_base: the per-interrupt registers of SGIs and PPIs, at the distributor's
    /// offsets (GICR_IGROUPR0 at `SGI_BASE + 0x80`, ...).
    pub const SGI_BASE: u64 = 0x1_0000;
}

/// Bytes between consecutive redistributors (RD_base and SGI_base frames).
pub const REDISTRIBUTOR_STRIDE: u64 = 0x2_0000;

const CTLR_ENABLE_LPIS: u64 = 1;
const WAKER_PROCESSOR_SLEEP: u64 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u64 = 1 << 2;

const INNER_CACHE: u64 = 0b111 << 7;
const SHAREABILITY: u64 = 0b11 << 10;
const OUTER_CACHE: u64 = 0b111 << 56;
/// GICR_PROPBASER.IDbits: LPI INTID bits of the configuration table, minus one.
pub(crate) const PROPBASER_ID_BITS: u64 = 0x1f;
/// GICR_PROPBASER.Physical_Address, bits `[51:12]`.
pub(crate) const PROPBASER_ADDRESS: u64 = 0x000f_ffff_ffff_f000;
const PROPBASER_WRITABLE: u64 =
    PROPBASER_ID_BITS | INNER_CACHE | SHAREABILITY | PROPBASER_ADDRESS | OUTER_CACHE;
/// GICR_PENDBASER.Physical_Address, bits `[51:16]`.
pub(crate) const PENDBASER_ADDRESS: u64 = 0x000f_ffff_ffff_0000;
const PENDBASER_WRITABLE: u64 = INNER_CACHE | SHAREABILITY | PENDBASER_ADDRESS | OUTER_CACHE;
/// GICR_PENDBASER.PTZ: the pending table is all zeros (write-only).
const PENDBASER_ZEROED: u64 = 1 << 62;

/// Whether `within` falls in the 64-bit register at `register`.
fn is_at(within: u64, register: u64) -> bool {
    (register..register + 8).contains(&within)
}

impl<const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize> Vgic<VCPUS, LPIS, COLLECTIONS> {
    /// The redistributor a region offset falls in, and the offset within it.
    fn redistributor(&self, offset: u64) -> Option<(u16, u64)> {
        let index = offset / REDISTRIBUTOR_STRIDE;
        (index < self.config.vcpus as u64).then_some((index as u16, offset % REDISTRIBUTOR_STRIDE))
    }

    /// A guest read of `width` at `offset` from the redistributor region's base.
    pub fn read_redistributor(&mut self, vcpus: &mut impl Vcpus, offset: u64, width: Width) -> u64 {
        let value = match self.redistributor(offset) {
            Some((vcpu, within)) => self.redistributor_read(vcpus, vcpu, within, width),
            None => {
                info!(target: GUEST_EVENT, "GICR read at {offset:#x} is past the last redistributor: zero");
                0
            }
        };
        self.commit(vcpus);
        value
    }

    fn redistributor_read(&mut self, vcpus: &mut impl Vcpus, vcpu: u16, within: u64, width: Width) -> u64 {
        let lpis = self.config.lpi_id_bits.is_some();
        let cpu = self.cpus[vcpu as usize];
        let word = fits(within, width, &[Width::Word]);
        let quad = fits(within, width, &DOUBLEWORD_OR_HALVES);
        match within {
            offset::CTLR if word => (cpu.lpis_enabled as u64) * CTLR_ENABLE_LPIS,
            offset::IIDR if word => IIDR as u64,
            _ if is_at(within, offset::TYPER) && quad => {
                read_part(self.config.redistributor_typer(vcpu), within % 8, width)
            }
            offset::STATUSR if word => 0,
            offset::WAKER if word => {
                if cpu.asleep {
                    WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
                } else {
                    0
                }
            }
            _ if is_at(within, offset::PROPBASER) && quad && lpis => {
                read_part(self.propbaser, within % 8, width)
            }
            _ if is_at(within, offset::PENDBASER) && quad && lpis => {
                read_part(cpu.pendbaser, within % 8, width)
            }
            _ if (id_offset::FIRST..offset::SGI_BASE).contains(&within) && word => id_register(within),
            _ => match self.sgi_field(within, width) {
                Some((field, first)) => self.read_field(vcpus, Bank::Private(vcpu), field, first, width),
                None => {
                    info!(target: GUEST_EVENT, "GICR{vcpu} read of {width:?} at {within:#x} is not a register access: zero");
                    0
                }
            },
        }
    }

    /// A guest write of `value` (`width` wide) at `offset` from the redistributor region's
    /// base. Setting GICR_CTLR.EnableLPIs reads the LPI configuration and pending tables
    /// from `memory`; clearing it writes the pending table back.
    pub fn write_redistributor(
        &mut self,
        vcpus: &mut impl Vcpus,
        memory: &impl GuestMemory,
        offset: u64,
        width: Width,
        value: u64,
    ) {
        match self.redistributor(offset) {
            Some((vcpu, within)) => self.redistributor_write(vcpus, memory, vcpu, within, width, value),
            None => {
                info!(target: GUEST_EVENT, "GICR write at {offset:#x} is past the last redistributor: ignored")
            }
        }
        self.commit(vcpus);
    }

    fn redistributor_write(
        &mut self,
        vcpus: &mut impl Vcpus,
        memory: &impl GuestMemory,
        vcpu: u16,
        within: u64,
        width: Width,
        value: u64,
    ) {
        let lpis = self.config.lpi_id_bits.is_some();
        let cpu = self.cpus[vcpu as usize];
        let word = fits(within, width, &[Width::Word]);
        let quad = fits(within, width, &DOUBLEWORD_OR_HALVES);
        match within {
            offset::CTLR if word => {
                let enable = value & CTLR_ENABLE_LPIS != 0;
                if lpis && enable != cpu.lpis_enabled {
                    if enable {
                        self.enable_lpis(vcpus, memory, vcpu);
                    } else {
                        self.disable_lpis(vcpus, memory, vcpu);
                    }
                }
            }
            offset::WAKER if word => {
                let asleep = value & WAKER_PROCESSOR_SLEEP != 0;
                if asleep != cpu.asleep {
                    self.cpus[vcpu as usize].asleep = asleep;
                    self.reroute_any(vcpus);
                }
            }
            _ if (is_at(within, offset::PROPBASER) || is_at(within, offset::PENDBASER))
                && quad
                && lpis
                && cpu.lpis_enabled =>
            {
                info!(target: GUEST_EVENT, "GICR{vcpu}: PROPBASER/PENDBASER write with LPIs enabled ignored");
            }
            _ if is_at(within, offset::PROPBASER) && quad && lpis => {
                self.propbaser = write_part(self.propbaser, within % 8, width, value) & PROPBASER_WRITABLE;
            }
            _ if is_at(within, offset::PENDBASER) && quad && lpis => {
                let written = write_part(cpu.pendbaser, within % 8, width, value);
                let cpu = &mut self.cpus[vcpu as usize];
                cpu.pendbaser = written & PENDBASER_WRITABLE;
                if read_part(PENDBASER_ZEROED, within % 8, width) != 0 {
                    cpu.pending_table_zeroed = written & PENDBASER_ZEROED != 0;
                }
            }
            offset::IIDR | offset::STATUSR if word => {}
            _ if is_at(within, offset::TYPER) && quad => {}
            _ if (id_offset::FIRST..offset::SGI_BASE).contains(&within) && word => {}
            _ => match self.sgi_field(within, width) {
                Some((field, first)) => {
                    self.write_field(vcpus, Bank::Private(vcpu), field, first, width, value)
                }
                None => {
                    info!(target: GUEST_EVENT, "GICR{vcpu} write of {width:?} at {within:#x} is not a register access: ignored")
                }
            },
        }
    }

    /// Re-resolves the targets of SPIs routed 1 of N, after a redistributor woke or went
    /// to sleep.
    fn reroute_any(&mut self, vcpus: &mut impl Vcpus) {
        for index in 0..self.config.spis as usize {
            let route = self.spi_routes[index];
            let Some(id) = self.spi_id(FIRST_SPI + index as u32) else { continue };
            if route & ROUTE_ANY != 0 {
                let target = self.route_target(route);
                self.modify(vcpus, id, |irq| irq.target = target);
            }
        }
    }

    /// The per-interrupt register at `within` in the SGI_base frame, if the access fits
    /// it (the frame holds only the registers of INTIDs 0-31).
    fn sgi_field(&self, within: u64, width: Width) -> Option<(Field, u32)> {
        let (field, first) = Field::at(within.checked_sub(offset::SGI_BASE)?)?;
        (first < FIRST_SPI && field != Field::Targets && fits(within, width, field.widths()))
            .then_some((field, first))
    }
}
