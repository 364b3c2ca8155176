//! GIC register checks that need no interrupt delivery: the emulated GICD, GICR and ITS
//! answer reads and keep writes as the GICv3 specification says, through the vgic-server
//! and its-server. Offsets and fields are the specification's; only what QEMU's own GIC
//! shares with the emulation is checked, so the checks also pass natively.

use guest_rt::{Pl011, mmio};
use guest_test::{Outcome, Report, expect_eq, fail};

/// The GIC frames at their QEMU virt addresses (the guest's device tree lists them).
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080a_0000;
const GITS: u64 = 0x0808_0000;
/// Bytes between two redistributors' RD_base frames.
const GICR_STRIDE: u64 = 0x2_0000;
/// The ID register whose ArchRev field (bits [7:4]) names the GIC version, in every frame.
const PIDR2: u64 = 0xffe8;

fn read(address: u64) -> u32 {
    // SAFETY: every address here is a 32-bit register of a GIC frame, which reads have no
    // side effects on.
    unsafe { mmio::read32(address) }
}

fn write(address: u64, value: u32) {
    // SAFETY: every write here goes to a GIC register that holds configuration only (no
    // interrupt is enabled or made pending by these checks).
    unsafe { mmio::write32(address, value) }
}

fn distributor_identification() -> Outcome {
    expect_eq("GICD_PIDR2.ArchRev", 3, (read(GICD + PIDR2) >> 4 & 0xf).into())?;
    let typer = read(GICD + 0x4);
    expect_eq("GICD_TYPER.ITLinesNumber", 7, (typer & 0x1f).into())?;
    expect_eq("GICD_TYPER.LPIS", 1, (typer >> 17 & 1).into())?;
    expect_eq("GICD_TYPER.IDbits", 15, (typer >> 19 & 0x1f).into())
}

/// GICD_IPRIORITYR of SPIs 40-43 keeps the implemented priority bits of each byte, the
/// same top bits in every byte, at least 5 of them (the VM's 5, QEMU's own GIC's 8), and
/// reads the others as zero.
fn distributor_priority_round_trip() -> Outcome {
    let ipriorityr = GICD + 0x400 + 40;
    write(ipriorityr, 0xffff_ffff);
    let all_ones = read(ipriorityr);
    write(ipriorityr, 0x8040_a010);
    let mixed = read(ipriorityr);
    write(ipriorityr, 0);
    let implemented = all_ones as u8;
    if implemented.leading_ones() < 5 || implemented.count_ones() != implemented.leading_ones() {
        return fail!("all ones read {all_ones:#x}: not 5 or more top bits");
    }
    let mask = u32::from_ne_bytes([implemented; 4]);
    expect_eq("all ones", mask.into(), all_ones.into())?;
    expect_eq("mixed", (0x8040_a010 & mask).into(), mixed.into())?;
    expect_eq("cleared", 0, read(ipriorityr).into())
}

/// Redistributor n names vCPU n (Processor_Number and affinity), and the frame walk ends
/// at one marked Last.
fn redistributor_typer() -> Outcome {
    for vcpu in 0..8u64 {
        let rd_base = GICR + vcpu * GICR_STRIDE;
        let (low, high) = (read(rd_base + 0x8), read(rd_base + 0xc));
        expect_eq("GICR_TYPER.Processor_Number", vcpu, (low >> 8 & 0xffff).into())?;
        expect_eq("GICR_TYPER affinity", vcpu, high.into())?;
        expect_eq("GICR_TYPER.PLPIS", 1, (low & 1).into())?;
        if low >> 4 & 1 != 0 {
            return expect_eq("GICR_PIDR2.ArchRev", 3, (read(rd_base + PIDR2) >> 4 & 0xf).into());
        }
    }
    fail!("no redistributor among the first 8 is marked Last")
}

/// Clearing GICR_WAKER.ProcessorSleep wakes the redistributor: ChildrenAsleep follows.
fn redistributor_wakes() -> Outcome {
    let waker = GICR + 0x14;
    write(waker, 0);
    expect_eq("GICR_WAKER after waking", 0, (read(waker) & 0b110).into())
}

fn its_identification() -> Outcome {
    expect_eq("GITS_PIDR2.ArchRev", 3, (read(GITS + PIDR2) >> 4 & 0xf).into())?;
    expect_eq("GITS_TYPER.Physical", 1, (read(GITS + 0x8) & 1).into())?;
    expect_eq("GITS_CTLR (disabled, quiescent)", 1 << 31, read(GITS).into())
}

/// GITS_CBASER takes 32-bit writes to either half, and a write resets CREADR.
fn its_cbaser_round_trip() -> Outcome {
    let (cbaser, creadr) = (GITS + 0x80, GITS + 0x90);
    write(cbaser, 0x4080_0000);
    write(cbaser + 4, 1 << 31);
    let halves = (read(cbaser), read(cbaser + 4), read(creadr));
    write(cbaser + 4, 0);
    write(cbaser, 0);
    expect_eq("CBASER low (address, Size 0)", 0x4080_0000, halves.0.into())?;
    expect_eq("CBASER high (Valid)", 1 << 31, halves.1.into())?;
    expect_eq("CREADR", 0, halves.2.into())
}

/// Runs the checks.
pub fn check(report: &mut Report<Pl011>) {
    report.check("gicd-identification", distributor_identification());
    report.check("gicd-priority-round-trip", distributor_priority_round_trip());
    report.check("gicr-typer", redistributor_typer());
    report.check("gicr-waker", redistributor_wakes());
    report.check("gits-identification", its_identification());
    report.check("gits-cbaser-round-trip", its_cbaser_round_trip());
}
