//! Register offsets written from the GICv3 specification, shared by the tests. They are
//! kept apart from the crate's own `offset` constants on purpose, so a wrong constant in
//! the code shows up as a failing test instead of agreeing with itself.

/// GICD_CTLR.
pub const CTLR: u64 = 0x0000;
/// GICD_TYPER.
pub const TYPER: u64 = 0x0004;
/// GICD_IIDR.
pub const IIDR: u64 = 0x0008;
/// GICD_TYPER2.
pub const TYPER2: u64 = 0x000c;
/// GICD_STATUSR.
pub const STATUSR: u64 = 0x0010;
/// GICD_IGROUPR<n> (GICR_IGROUPR0 at SGI_BASE + this).
pub const IGROUPR: u64 = 0x0080;
/// GICD_ISENABLER<n>.
pub const ISENABLER: u64 = 0x0100;
/// GICD_ICENABLER<n>.
pub const ICENABLER: u64 = 0x0180;
/// GICD_ISPENDR<n>.
pub const ISPENDR: u64 = 0x0200;
/// GICD_ICPENDR<n>.
pub const ICPENDR: u64 = 0x0280;
/// GICD_ISACTIVER<n>.
pub const ISACTIVER: u64 = 0x0300;
/// GICD_ICACTIVER<n>.
pub const ICACTIVER: u64 = 0x0380;
/// GICD_IPRIORITYR<n>.
pub const IPRIORITYR: u64 = 0x0400;
/// GICD_ITARGETSR<n>.
pub const ITARGETSR: u64 = 0x0800;
/// GICD_ICFGR<n>.
pub const ICFGR: u64 = 0x0c00;
/// GICD_IGRPMODR<n>.
pub const IGRPMODR: u64 = 0x0d00;
/// GICD_NSACR<n>.
pub const NSACR: u64 = 0x0e00;
/// GICD_SGIR.
pub const SGIR: u64 = 0x0f00;
/// GICD_IROUTER<n>.
pub const IROUTER: u64 = 0x6000;
/// GICD_PIDR2 (and GICR_PIDR2).
pub const PIDR2: u64 = 0xffe8;

/// GICR_CTLR.
pub const GICR_CTLR: u64 = 0x0000;
/// GICR_IIDR.
pub const GICR_IIDR: u64 = 0x0004;
/// GICR_TYPER.
pub const GICR_TYPER: u64 = 0x0008;
/// GICR_STATUSR.
pub const GICR_STATUSR: u64 = 0x0010;
/// GICR_WAKER.
pub const GICR_WAKER: u64 = 0x0014;
/// GICR_PROPBASER.
pub const GICR_PROPBASER: u64 = 0x0070;
/// GICR_PENDBASER.
pub const GICR_PENDBASER: u64 = 0x0078;
/// The SGI_base frame of a redistributor, from its RD_base.
pub const SGI_BASE: u64 = 0x1_0000;
