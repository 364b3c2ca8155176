//! GICv3 physical driver: distributor, redistributors and the system-register CPU
//! interface, all in Group 1 with split priority drop and deactivation
//! (ICC_CTLR_EL1.EOImode = 1).
//!
//! Kernel interrupts (the tick, the reschedule and stop SGIs, the GIC maintenance
//! interrupt) are dropped and deactivated at once. An SPI owned by an IRQ handler
//! capability only gets its priority dropped: it stays active, so it is not delivered
//! again until its handler acknowledges it and [`deactivate_spi`] clears the active bit in
//! the distributor (from any CPU). So do the guest timer PPIs (27, 30): they stay active
//! while the guest owns them (a hardware-linked list register deactivates them on the
//! guest's EOI), and the kernel saves, clears, restores or ends that active state through
//! the redistributor ([`Redistributor::take_active`] and friends).

use super::mmio::Registers;
use core::arch::asm;
use kernel::address::Pa;

/// The SGI that makes a CPU re-run its scheduler.
pub const RESCHEDULE_SGI: u32 = 0;
/// The SGI that makes a CPU stop and fold the vCPUs a `VCPU_SYNC` waits for.
pub const STOP_VCPU_SGI: u32 = 1;
/// The GIC virtual CPU interface's maintenance interrupt.
pub const MAINTENANCE_PPI: u32 = 25;
/// The EL1 virtual timer's PPI.
pub const VIRTUAL_TIMER_PPI: u32 = 27;
/// The EL1 physical timer's PPI.
pub const PHYSICAL_TIMER_PPI: u32 = 30;
/// The EL2 physical timer's PPI.
pub const TIMER_PPI: u32 = 26;
/// The first shared peripheral interrupt.
pub const FIRST_SPI: u32 = 32;
/// INTIDs from here up are special (1023: nothing pending).
pub const FIRST_SPECIAL: u32 = 1020;

/// Priority of the kernel's own interrupts.
const KERNEL_PRIORITY: u8 = 0x80;
/// Priority of SPIs delivered to components.
const SPI_PRIORITY: u8 = 0xa0;

// Distributor registers (QEMU `virt`: 64 KiB at 0x0800_0000).
const GICD_BASE: Pa = Pa(0x0800_0000);
const GICD_SIZE: usize = 0x1_0000;
const GICD_CTLR: usize = 0x0000;
const GICD_TYPER: usize = 0x0004;
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_ICENABLER: usize = 0x0180;
const GICD_ICPENDR: usize = 0x0280;
const GICD_ICACTIVER: usize = 0x0380;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ICFGR: usize = 0x0c00;
const GICD_IROUTER: usize = 0x6000;
/// GICD_CTLR: Group 1 enable (EnableGrp1 / EnableGrp1NS).
const CTLR_ENABLE_GRP1: u32 = 1 << 1;
/// GICD_CTLR: affinity routing enable (ARE / ARE_NS).
const CTLR_ARE: u32 = 1 << 4;
/// GICD_CTLR: register write pending.
const GICD_CTLR_RWP: u32 = 1 << 31;

// Redistributors (QEMU `virt`: from 0x080A_0000, one RD_base + SGI_base pair per CPU).
const GICR_BASE: Pa = Pa(0x080a_0000);
/// Room for the 123 redistributors QEMU's `virt` places below 0x0A00_0000.
const GICR_REGION_SIZE: usize = 0x00f6_0000;
const GICR_FRAME_SIZE: usize = 0x1_0000;
const GICR_CTLR: usize = 0x0000;
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
/// GICR_CTLR: register write pending.
const GICR_CTLR_RWP: u32 = 1 << 3;
/// GICR_TYPER: this is the last redistributor.
const TYPER_LAST: u64 = 1 << 4;
/// GICR_TYPER: virtual LPI frames follow (the stride doubles).
const TYPER_VLPIS: u64 = 1 << 1;
/// GICR_WAKER: the CPU interface is asleep.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER: the redistributor's interfaces are quiescent.
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
// SGI_base frame registers (SGIs and PPIs of one CPU).
const GICR_IGROUPR0: usize = 0x0080;
const GICR_ISENABLER0: usize = 0x0100;
const GICR_ICENABLER0: usize = 0x0180;
const GICR_ISACTIVER0: usize = 0x0300;
const GICR_ICACTIVER0: usize = 0x0380;
const GICR_IPRIORITYR: usize = 0x0400;

fn distributor() -> Registers {
    // SAFETY: QEMU `virt` has its GICv3 distributor here, in the linear map's device range.
    unsafe { Registers::new(GICD_BASE, GICD_SIZE) }
}

/// Number of interrupt IDs the distributor implements (SGIs and PPIs included).
fn interrupt_lines() -> u32 {
    let lines = ((distributor().read32(GICD_TYPER) & 0x1f) + 1) * 32;
    lines.min(FIRST_SPECIAL)
}

fn wait_for_distributor() {
    while distributor().read32(GICD_CTLR) & GICD_CTLR_RWP != 0 {
        core::hint::spin_loop();
    }
}

/// Resets every SPI to disabled, inactive, Group 1, then enables affinity routing and
/// Group 1. Run once, on the boot CPU, before any redistributor.
pub fn init_distributor() {
    let gicd = distributor();
    gicd.write32(GICD_CTLR, 0);
    wait_for_distributor();
    let lines = interrupt_lines();
    for first in (FIRST_SPI..lines).step_by(32) {
        let register = (first / 32) as usize * 4;
        gicd.write32(GICD_ICENABLER + register, u32::MAX);
        gicd.write32(GICD_ICPENDR + register, u32::MAX);
        gicd.write32(GICD_ICACTIVER + register, u32::MAX);
        gicd.write32(GICD_IGROUPR + register, u32::MAX);
    }
    for intid in FIRST_SPI..lines {
        gicd.write8(GICD_IPRIORITYR + intid as usize, SPI_PRIORITY);
    }
    wait_for_distributor();
    gicd.write32(GICD_CTLR, CTLR_ARE);
    wait_for_distributor();
    gicd.write32(GICD_CTLR, CTLR_ARE | CTLR_ENABLE_GRP1);
    wait_for_distributor();
}

/// Why an SPI could not be configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoSuchSpi;

/// Routes SPI `intid` to the CPU with MPIDR affinity `affinity` and enables it.
pub fn enable_spi(intid: u32, edge: bool, affinity: u64) -> Result<(), NoSuchSpi> {
    if !(FIRST_SPI..interrupt_lines()).contains(&intid) {
        return Err(NoSuchSpi);
    }
    let gicd = distributor();
    let (word, bit) = ((intid / 32) as usize * 4, 1 << (intid % 32));
    let config = GICD_ICFGR + (intid / 16) as usize * 4;
    let edge_bit = 2 << ((intid % 16) * 2);
    let old = gicd.read32(config);
    gicd.write32(config, if edge { old | edge_bit } else { old & !edge_bit });
    gicd.write8(GICD_IPRIORITYR + intid as usize, SPI_PRIORITY);
    // IROUTER holds Aff3 in bits 39:32 and Aff2.Aff1.Aff0 in bits 23:0, as MPIDR does.
    gicd.write64(GICD_IROUTER + intid as usize * 8, affinity);
    gicd.write32(GICD_ISENABLER + word, bit);
    Ok(())
}

/// Deactivates SPI `intid` so it can be delivered again. Works from any CPU.
pub fn deactivate_spi(intid: u32) {
    if (FIRST_SPI..FIRST_SPECIAL).contains(&intid) {
        distributor().write32(GICD_ICACTIVER + (intid / 32) as usize * 4, 1 << (intid % 32));
    }
}

/// One redistributor: its RD_base and SGI_base frames.
#[derive(Clone, Copy, Debug)]
pub struct Redistributor {
    frames: Registers,
    typer: u64,
}

impl Redistributor {
    /// The MPIDR affinity (Aff3 in bits 39:32, Aff2.Aff1.Aff0 in bits 23:0) of its CPU.
    pub fn affinity(&self) -> u64 {
        let affinity = self.typer >> 32;
        (affinity & 0x00ff_ffff) | ((affinity >> 24) << 32)
    }

    fn rd(&self) -> Registers {
        self.frames.block(0, GICR_FRAME_SIZE)
    }

    fn sgi(&self) -> Registers {
        self.frames.block(GICR_FRAME_SIZE, GICR_FRAME_SIZE)
    }

    fn wait_for_writes(&self) {
        while self.rd().read32(GICR_CTLR) & GICR_CTLR_RWP != 0 {
            core::hint::spin_loop();
        }
    }

    /// Wakes the redistributor and enables this CPU's kernel interrupts in Group 1: the
    /// tick, the reschedule and stop SGIs, the maintenance interrupt and the guest timer
    /// PPIs; every other SGI and PPI stays disabled.
    pub fn init(&self) {
        let rd = self.rd();
        rd.write32(GICR_WAKER, rd.read32(GICR_WAKER) & !WAKER_PROCESSOR_SLEEP);
        while rd.read32(GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {
            core::hint::spin_loop();
        }
        let sgi = self.sgi();
        sgi.write32(GICR_ICENABLER0, u32::MAX);
        self.wait_for_writes();
        sgi.write32(GICR_IGROUPR0, u32::MAX);
        let kernel_interrupts = [
            RESCHEDULE_SGI,
            STOP_VCPU_SGI,
            MAINTENANCE_PPI,
            TIMER_PPI,
            VIRTUAL_TIMER_PPI,
            PHYSICAL_TIMER_PPI,
        ];
        for intid in kernel_interrupts {
            sgi.write8(GICR_IPRIORITYR + intid as usize, KERNEL_PRIORITY);
        }
        sgi.write32(GICR_ISENABLER0, kernel_interrupts.iter().fold(0, |bits, intid| bits | 1 << intid));
        self.wait_for_writes();
    }

    /// Which of the SGIs and PPIs in `mask` (bit n: INTID n) are active; those are
    /// deactivated.
    pub fn take_active(&self, mask: u32) -> u32 {
        let active = self.sgi().read32(GICR_ISACTIVER0) & mask;
        self.deactivate(active);
        active
    }

    /// Makes the SGIs and PPIs in `bits` active (restoring [`Redistributor::take_active`]).
    pub fn activate(&self, bits: u32) {
        if bits != 0 {
            self.sgi().write32(GICR_ISACTIVER0, bits);
        }
    }

    /// Deactivates the SGIs and PPIs in `bits` (harmless for inactive ones).
    pub fn deactivate(&self, bits: u32) {
        if bits != 0 {
            self.sgi().write32(GICR_ICACTIVER0, bits);
        }
    }
}

/// Every redistributor, in frame order (reading past the last one would fault).
pub fn redistributors() -> impl Iterator<Item = Redistributor> {
    // SAFETY: QEMU `virt` has its redistributor region here, in the linear map's device
    // range; the walk below stops at the frame marked Last.
    let region = unsafe { Registers::new(GICR_BASE, GICR_REGION_SIZE) };
    let mut next = Some(0);
    core::iter::from_fn(move || {
        let offset = next?;
        let typer = region.block(offset, GICR_FRAME_SIZE).read64(GICR_TYPER);
        let stride = if typer & TYPER_VLPIS != 0 { 4 * GICR_FRAME_SIZE } else { 2 * GICR_FRAME_SIZE };
        next = (typer & TYPER_LAST == 0).then_some(offset + stride);
        Some(Redistributor { frames: region.block(offset, 2 * GICR_FRAME_SIZE), typer })
    })
}

/// The redistributor of the CPU with MPIDR affinity `affinity`.
pub fn redistributor_of(affinity: u64) -> Option<Redistributor> {
    redistributors().find(|redistributor| redistributor.affinity() == affinity)
}

/// This CPU's MPIDR affinity fields, laid out as in MPIDR_EL1.
pub fn current_affinity() -> u64 {
    use aarch64_cpu::registers::{MPIDR_EL1, Readable};
    MPIDR_EL1.get() & 0xff_00ff_ffff
}

/// Enables this CPU's system-register interface: all priorities unmasked, Group 1 on,
/// EOImode = 1 (EOIR drops priority, DIR deactivates).
pub fn init_cpu_interface() {
    use aarch64_cpu::registers::{ICC_SRE_EL2, Writeable};
    ICC_SRE_EL2.write(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    // SAFETY: writes to this CPU's GIC interface registers, which only affect which
    // interrupts it signals and how they complete; IRQs stay masked in PSTATE while the
    // kernel runs.
    unsafe {
        asm!(
            "msr icc_pmr_el1, {all}",
            "msr icc_bpr1_el1, xzr",
            "mrs {ctlr}, icc_ctlr_el1",
            "orr {ctlr}, {ctlr}, #(1 << 1)", // EOImode
            "msr icc_ctlr_el1, {ctlr}",
            "msr icc_igrpen1_el1, {on}",
            "isb",
            all = in(reg) 0xffu64,
            ctlr = out(reg) _,
            on = in(reg) 1u64,
            options(nostack, preserves_flags),
        );
    }
}

/// Acknowledges the highest-priority pending interrupt ([`FIRST_SPECIAL`] or above:
/// none).
pub fn acknowledge() -> u32 {
    let intid: u64;
    // SAFETY: reading IAR1 acknowledges an interrupt at this CPU's interface; callers
    // complete every INTID below FIRST_SPECIAL with `drop_priority`.
    unsafe { asm!("mrs {intid}, icc_iar1_el1", intid = out(reg) intid, options(nostack, preserves_flags)) };
    intid as u32
}

/// Drops the running priority after [`acknowledge`] (EOImode 1: it stays active).
pub fn drop_priority(intid: u32) {
    // SAFETY: completes an interrupt this CPU acknowledged.
    unsafe {
        asm!("msr icc_eoir1_el1, {intid}", intid = in(reg) u64::from(intid), options(nostack, preserves_flags))
    };
}

/// Deactivates an interrupt this CPU acknowledged and dropped.
pub fn deactivate_local(intid: u32) {
    // SAFETY: deactivates an interrupt this CPU acknowledged.
    unsafe {
        asm!("msr icc_dir_el1, {intid}", intid = in(reg) u64::from(intid), options(nostack, preserves_flags))
    };
}

/// Sends software-generated interrupt `sgi` to the CPU with MPIDR affinity `affinity`.
pub fn send_sgi(affinity: u64, sgi: u32) {
    let aff0 = affinity & 0xff;
    let value = ((affinity >> 32) & 0xff) << 48 // Aff3
        | (aff0 / 16) << 44 // RS: which group of 16 Aff0 values TargetList covers
        | ((affinity >> 16) & 0xff) << 32 // Aff2
        | u64::from(sgi & 0xf) << 24
        | ((affinity >> 8) & 0xff) << 16 // Aff1
        | 1 << (aff0 % 16);
    // SAFETY: raises an SGI; the target only re-runs its scheduler.
    unsafe {
        asm!("msr icc_sgi1r_el1, {value}", "isb", value = in(reg) value, options(nostack, preserves_flags))
    };
}
