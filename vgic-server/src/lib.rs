//! vgic-server: the emulated GICv3 distributor and redistributors of one VM, and the
//! single owner of every interrupt state of that VM, as a `no_std` library that the
//! server's IPC shell drives and host tests drive directly.
//!
//! ```ignore
//! let mut vgic = Vgic::<VCPUS, LPIS, COLLECTIONS>::new(config)?;
//! vgic.attach_passthrough_spi(34, Trigger::Level)?;           // from the manifest
//! // An MMIO fault on the GICD or GICR region (the kernel replies with the value):
//! let value = vgic.read_distributor(&mut vcpus, offset, width);
//! vgic.write_redistributor(&mut vcpus, &memory, offset, width, value);
//! // A trapped ICC_SGI1R_EL1 write, forwarded with Send:
//! vgic.generate_sgi(&mut vcpus, sender, SgiRegister::Sgi1r, value);
//! // Lines: a device model's SPI, a passthrough SPI's physical interrupt, a timer PPI:
//! vgic.set_spi_level(&mut vcpus, 33, true);
//! vgic.set_ppi_level(&mut vcpus, vcpu, 27, true);
//! // An its-server message (a Call; the reply ends the ITS command):
//! vgic.its_link(&mut vcpus, &memory).lpi_unmap(vintid);
//! // A maintenance event: the vCPU waits for the reply, which carries its new LRs:
//! let update = vgic.maintenance(&mut vcpus, vcpu, &snapshot);
//! ```
//!
//! # Who owns what
//!
//! This server owns, for every interrupt of its VM (SGIs and PPIs of each vCPU, SPIs,
//! LPIs): pending (latch and line level), active, enabled, priority, group (always
//! Group 1), target, and trigger; plus GICD_CTLR and each redistributor's registers.
//! Nobody else holds a copy of that state except the list registers, and those hold
//! numbers: a vINTID and a state, never a reference. The its-server owns ITS translation
//! and tells this server what changes ([`its_server::Vgic`], through [`ItsLink`]); the
//! kernel owns the list registers' hardware and the vCPUs' scheduling, behind [`Vcpus`].
//!
//! # How list-register copies are synced
//!
//! A list register holds a copy that the guest advances without telling anyone:
//! acknowledging (pending -> active) and deactivating (active -> invalid, or
//! active+pending -> pending). The kernel folds the live list registers into the vCPU
//! object on every guest exit. The server therefore treats an interrupt with a listed
//! copy as "state partly in that vCPU": before it changes such an interrupt, or reads
//! ISPENDR/ISACTIVER over it, it calls [`Vcpus::sync`], which stops the vCPU and returns
//! a [`Snapshot`]; it folds the snapshot into its state (a copy that lost its pending bit
//! was acknowledged, an invalid one was completed), makes the change, and at the end of
//! the entry point writes the vCPU's new list registers with [`Vcpus::write_lrs`], which
//! releases it. Each entry point syncs a vCPU at most once and always releases it, so
//! the vCPU is stopped only while the server works for it. A vCPU for which an interrupt
//! becomes deliverable is synced the same way so that the interrupt can be listed.
//!
//! Refills reach the server as [`Vgic::maintenance`] events: the vCPU waits with its
//! snapshot, and the returned [`LrUpdate`] goes back in the reply. The kernel raises one
//! for the maintenance interrupt (EOI, underflow, no pending), which the server requests
//! only where it needs to know:
//!
//! - EOI maintenance for a level-sensitive interrupt (to sample its line again), for a
//!   copy whose new pending state had to wait elsewhere (it moved to another vCPU), and,
//!   while interrupts wait for a list register, for every active copy (its deactivation
//!   frees a list register; such a copy then carries no pending state, which waits in
//!   the server to compete with the others by priority);
//! - UIE while interrupts wait, and NPIE while interrupts wait and some list register is
//!   in the Pending state (the waiting ones have lower priority, so they are next once
//!   every pending copy was acknowledged).
//!
//! An edge-triggered interrupt's or an LPI's EOI costs nothing while no interrupt waits.
//! Hardware-linked copies cannot request EOI maintenance; their list registers free
//! unobserved until UIE (at most one valid list register) or another event looks.
//!
//! List-register rules: one vINTID is never in two list registers of a vCPU (an
//! interrupt has one place: idle, queued for one vCPU, or listed in one list register);
//! a new pending state merges into the listed copy (active becomes active+pending);
//! active interrupts are listed first (the guest's deactivation must find them), then the
//! highest-priority pending ones; a pending-only copy gives way to a higher-priority one
//! (or to an active one), but an active copy is never evicted; a hardware-linked copy is
//! never made active+pending (its pending state waits in the server until the guest
//! deactivates it); the rest wait in per-vCPU priority queues.
//!
//! Because active copies stay in their list registers until the guest deactivates them,
//! the guest's EOI (EOImode 0) and DIR (EOImode 1) always find their list register and
//! complete in hardware: neither needs a trap (ICH_HCR_EL2.TDIR stays clear). The one
//! exception, a guest clearing an active interrupt through ICACTIVER, ends with the
//! guest's later EOI/DIR finding no list register, which only counts in EOIcount and has
//! no architectural effect beyond the priority drop, as on hardware.
//!
//! # Which messages change what
//!
//! | entry point | state changed |
//! |---|---|
//! | [`Vgic::read_distributor`]/[`Vgic::write_distributor`] | GICD_CTLR enables, SPI enable/pending/active/priority/trigger/route |
//! | [`Vgic::read_redistributor`]/[`Vgic::write_redistributor`] | SGI/PPI state of that vCPU, EnableLPIs (reads/writes the LPI tables), WAKER, PROPBASER, PENDBASER |
//! | [`Vgic::generate_sgi`] | SGI pending latch of each target |
//! | [`Vgic::set_ppi_level`], [`Vgic::set_spi_level`], [`Vgic::pulse_spi`] | line level / latch |
//! | [`Vgic::maintenance`] | folds the guest's progress, refills that vCPU |
//! | [`ItsLink`] (`its_server::Vgic`) | LPI existence, collection, target, pending, property |
//!
//! Every entry point completes its effect, including retractions from list registers,
//! before it returns, so an its-server Call's reply (and with it GITS_CREADR passing the
//! command) means the effect is visible: after `lpi_unmap` returns no delivery of that
//! LPI can start.
//!
//! # Choices where the architecture leaves freedom
//!
//! - Every interrupt is Group 1: IGROUPR reads as one and ignores writes; IGRPMODR and
//!   NSACR are RAZ/WI; ICC_SGI0R_EL1 and ICC_ASGI1R_EL1 generate nothing.
//! - GICD_CTLR.RWP and GICR_CTLR.RWP read as zero: every write is complete when the access
//!   returns.
//! - SGIs are edge-triggered and PPIs level-sensitive at reset; SGI triggers and those of
//!   hardware-linked interrupts are fixed, other PPIs' and SPIs' follow ICFGR.
//! - Interrupt_Routing_Mode = 1 routes an SPI to the lowest-numbered vCPU whose
//!   redistributor is awake (GICR_WAKER.ProcessorSleep = 0), vCPU 0 if none is; otherwise
//!   GICR_WAKER has no effect on delivery.
//! - GICR_PROPBASER is one register shared by all redistributors (CommonLPIAff = 0);
//!   PROPBASER and PENDBASER writes are ignored while that redistributor's LPIs are
//!   enabled. EnableLPIs can be cleared again.
//! - vCPU affinities follow [`vcpu_affinity`]; the kernel and device tree use the same.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod config;
mod distributor;
mod interface;
mod irq;
mod kernel;
mod lpi;
mod redistributor;
mod registers;
mod server;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

pub use config::{
    Config, ConfigError, FIRST_LPI, FIRST_PPI, FIRST_SPI, HARDWARE_PPIS, MAX_SPIS, NotAnSpi, vcpu_affinity,
    vcpu_with_affinity,
};
pub use distributor::{DISTRIBUTOR_SIZE, offset as distributor_offset};
pub use interface::{
    IDLE_PRIORITY, LIST_REGISTERS, ListRegister, LrState, LrUpdate, PRIORITY_BITS, PRIORITY_MASK, Snapshot,
};
pub use its_server::{OutsideRam, Width};
pub use lpi::ItsLink;
pub use redistributor::{REDISTRIBUTOR_STRIDE, offset as redistributor_offset};
pub use registers::id_offset;
pub use server::Vgic;

/// The kernel's VCPU objects as the server sees them. The shell implements it with VCPU
/// invocations; tests implement it in memory with a simulated guest.
///
/// Contract: within one entry point of [`Vgic`], the server calls [`Vcpus::sync`] at most
/// once per vCPU and then exactly one [`Vcpus::write_lrs`] for that vCPU before the entry
/// point returns; it never syncs the vCPU whose maintenance event it is answering.
pub trait Vcpus {
    /// Stops `vcpu` if it runs (by IPI when it runs on another CPU), folds its list
    /// registers, and returns its virtual CPU interface state with the line levels of
    /// its hardware-linked PPIs sampled where its timers are loaded. The vCPU does not
    /// run again until [`Vcpus::write_lrs`] for it (a vCPU blocked in WFI stays blocked).
    fn sync(&mut self, vcpu: u16) -> Snapshot;

    /// Replaces `vcpu`'s list registers with `update.lrs` and its ICH_HCR_EL2.UIE/NPIE
    /// with `update`'s, then lets it run again. Does not wake it from WFI.
    fn write_lrs(&mut self, vcpu: u16, update: &LrUpdate);

    /// Something became deliverable to `vcpu` (see [`Snapshot::signals`]): if it is
    /// blocked in WFI, wake it. Harmless otherwise.
    fn kick(&mut self, vcpu: u16);

    /// The server dropped the pending state of passthrough SPI `pintid` without the
    /// guest deactivating it (ICPENDR): deactivate the physical interrupt, which the host
    /// held active for the guest since it reported it. (The timer PPIs' physical state is
    /// the kernel's own: it samples their lines and knows their list registers.)
    fn deactivate_physical(&mut self, pintid: u32);
}

/// The VM's RAM as the server reads and writes it: LPI property and pending tables.
/// Reads are the its-server's ([`its_server::GuestMemory`]); an access outside RAM fails
/// and is never made. Writes take `&self` because guest RAM is shared with the guest
/// (and the its-server) anyway.
pub trait GuestMemory: its_server::GuestMemory {
    /// Stores `data` at guest-physical address `ipa`, or fails if any byte of the range
    /// is outside the VM's RAM.
    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), OutsideRam>;
}

/// The system register a trapped SGI write went to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiRegister {
    /// ICC_SGI0R_EL1: Group 0 SGIs.
    Sgi0r,
    /// ICC_SGI1R_EL1: Group 1 SGIs.
    Sgi1r,
    /// ICC_ASGI1R_EL1: the other security state's Group 1, which with one security
    /// state means Group 0.
    Asgi1r,
}

/// How a passthrough SPI's line is sensed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Edge-triggered: report each occurrence with [`Vgic::pulse_spi`].
    Edge,
    /// Level-sensitive: report each physical interrupt with
    /// [`Vgic::set_spi_level`]`(intid, true)`.
    Level,
}
