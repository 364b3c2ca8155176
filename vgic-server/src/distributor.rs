//! The GICD_* register file (one 64 KiB frame), as GICv3 defines it for a single security
//! state with affinity routing (GICD_CTLR.DS = 1, ARE = 1).
//!
//! 32-bit registers take 32-bit accesses, and IPRIORITYR/ITARGETSR byte accesses too;
//! `GICD_IROUTER<n>` takes 64-bit accesses and 32-bit accesses to either half. Any other
//! access (another size, misaligned, an unassigned or unimplemented offset) reads as zero
//! and ignores writes, with a log line. Writes to read-only registers are ignored.

use ipc::GUEST_EVENT;
use log::info;

use crate::Vcpus;
use crate::config::FIRST_SPI;
use crate::registers::{
    Bank, DOUBLEWORD_OR_HALVES, Field, IIDR, Width, fits, id_offset, id_register, read_part,
};
use crate::server::{ROUTE_WRITABLE, Vgic};

/// Offsets of the GICD_* registers that are not per-interrupt banks.
pub mod offset {
    /// GICD_CTLR.
    pub const CTLR: u64 = 0x0000;
    /// GICD_TYPER (read-only).
    pub const TYPER: u64 = 0x0004;
    /// GICD_IIDR (read-only).
    pub const IIDR: u64 = 0x0008;
    /// GICD_TYPER2 (read-only, zero: no virtual LPI or nASSGI features).
    pub const TYPER2: u64 = 0x000c;
    /// GICD_STATUSR (RAZ/WI: no errors are reported).
    pub const STATUSR: u64 = 0x0010;
    /// `GICD_IROUTER<n>` of SPI n is at `IROUTER + 8 * n`.
    pub const IROUTER: u64 = 0x6000;
}

/// Bytes of the distributor's MMIO frame.
pub const DISTRIBUTOR_SIZE: u64 = 0x1_0000;

const CTLR_ENABLE_GROUP0: u32 = 1 << 0;
const CTLR_ENABLE_GROUP1: u32 = 1 << 1;
/// Affinity routing, always on (RAO/WI).
const CTLR_ARE: u32 = 1 << 4;
/// Single security state, always (RAO/WI).
const CTLR_DS: u32 = 1 << 6;

/// The IROUTER registers of SPIs 32..1020.
const IROUTER_RANGE: core::ops::Range<u64> =
    offset::IROUTER + 8 * FIRST_SPI as u64..offset::IROUTER + 8 * 1020;

impl<const VCPUS: usize, const LPIS: usize, const COLLECTIONS: usize> Vgic<VCPUS, LPIS, COLLECTIONS> {
    /// A guest read of `width` at `offset` in the distributor frame.
    pub fn read_distributor(&mut self, vcpus: &mut impl Vcpus, offset: u64, width: Width) -> u64 {
        let value = match offset {
            offset::CTLR..=offset::STATUSR if fits(offset, width, &[Width::Word]) => match offset {
                offset::CTLR => {
                    let mut ctlr = CTLR_ARE | CTLR_DS;
                    if self.enable_group0 {
                        ctlr |= CTLR_ENABLE_GROUP0;
                    }
                    if self.enable_group1 {
                        ctlr |= CTLR_ENABLE_GROUP1;
                    }
                    ctlr as u64
                }
                offset::TYPER => self.config.distributor_typer() as u64,
                offset::IIDR => IIDR as u64,
                _ => 0,
            },
            _ => match Field::at(offset) {
                Some((field, first)) if fits(offset, width, field.widths()) => {
                    self.read_field(vcpus, Bank::Shared, field, first, width)
                }
                _ if IROUTER_RANGE.contains(&offset) && fits(offset, width, &DOUBLEWORD_OR_HALVES) => {
                    let intid = ((offset - offset::IROUTER) / 8) as u32;
                    match self.spi_id(intid) {
                        Some(_) => {
                            read_part(self.spi_routes[(intid - FIRST_SPI) as usize] as u64, offset % 8, width)
                        }
                        None => 0,
                    }
                }
                _ if offset >= id_offset::FIRST && fits(offset, width, &[Width::Word]) => id_register(offset),
                _ => {
                    info!(target: GUEST_EVENT, "GICD read of {width:?} at {offset:#x} is not a register access: zero");
                    0
                }
            },
        };
        self.commit(vcpus);
        value
    }

    /// A guest write of `value` (`width` wide) at `offset` in the distributor frame.
    pub fn write_distributor(&mut self, vcpus: &mut impl Vcpus, offset: u64, width: Width, value: u64) {
        match offset {
            offset::CTLR if fits(offset, width, &[Width::Word]) => {
                let ctlr = value as u32;
                self.enable_group0 = ctlr & CTLR_ENABLE_GROUP0 != 0;
                let enable_group1 = ctlr & CTLR_ENABLE_GROUP1 != 0;
                if enable_group1 != self.enable_group1 {
                    self.enable_group1 = enable_group1;
                    self.reforward_all(vcpus);
                }
            }
            offset::TYPER..=offset::STATUSR if fits(offset, width, &[Width::Word]) => {}
            _ => match Field::at(offset) {
                Some((field, first)) if fits(offset, width, field.widths()) => {
                    self.write_field(vcpus, Bank::Shared, field, first, width, value)
                }
                _ if IROUTER_RANGE.contains(&offset) && fits(offset, width, &DOUBLEWORD_OR_HALVES) => {
                    // The upper word holds only Aff3, which is RES0 (GICD_TYPER.A3V = 0).
                    let intid = ((offset - offset::IROUTER) / 8) as u32;
                    if let (Some(id), 0) = (self.spi_id(intid), offset % 8) {
                        let route = value as u32 & ROUTE_WRITABLE;
                        self.spi_routes[(intid - FIRST_SPI) as usize] = route;
                        let target = self.route_target(route);
                        self.modify(vcpus, id, |irq| irq.target = target);
                    }
                }
                _ if offset >= id_offset::FIRST && fits(offset, width, &[Width::Word]) => {}
                _ => {
                    info!(target: GUEST_EVENT, "GICD write of {width:?} at {offset:#x} is not a register access: ignored")
                }
            },
        }
        self.commit(vcpus);
    }
}
