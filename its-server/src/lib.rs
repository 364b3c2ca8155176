//! its-server: the emulated GICv3 Interrupt Translation Service (ITS) of one VM, as a
//! `no_std` library that the server's IPC shell drives and host tests drive directly.
//!
//! ```ignore
//! let mut its = Its::<DEVICES, EVENTS, COLLECTIONS>::new(config)?;
//! // An MMIO fault from a vCPU (or `its.read(offset, width)`):
//! let mut progress = its.write(offset, width, value);
//! // Commands run in bounded batches; CREADR lags until they are done.
//! while progress == Progress::MoreWork {
//!     progress = its.process(&mut vgic, &memory, BATCH); // between other messages
//! }
//! // An MSI from a device (DeviceID from the sender's badge):
//! let _ = its.msi(&mut vgic, device_id, event_id);
//! ```
//!
//! # What this server owns, and what it never owns
//!
//! It owns the ITS's translation state and nothing else: the GITS_* registers, the
//! command queue's position, which DeviceIDs are mapped and with what ITT size, what each
//! (DeviceID, EventID) translates to (an LPI INTID and a collection), and which vCPU
//! each collection targets. It reads the command queue from guest memory.
//!
//! It never owns interrupt state: whether an LPI is pending, active, enabled, its
//! priority and its place in a list register all belong to the vgic-server. Every effect
//! a command or an MSI has on an interrupt is a message to the vgic-server, expressed
//! here as the [`Vgic`] trait (the shell implements it with synchronous IPC Calls, tests
//! with an in-memory recorder). This crate holds no pointer into that state and no
//! copy of it.
//!
//! | ITS command | translation state here | [`Vgic`] calls, in order |
//! |---|---|---|
//! | MAPD V=1 | device recorded with its ITT size; a mapped device first loses every event | `lpi_unmap` per old event |
//! | MAPD V=0 | every event removed, then the device forgotten | `lpi_unmap` per event |
//! | MAPC V=1 / V=0 | collection mapped to a vCPU / unmapped | `collection_target` |
//! | MAPTI / MAPI | event recorded (its collection may be unmapped) | `lpi_map` |
//! | INT, or [`Its::msi`] | translated (collection must be mapped) | `lpi_set_pending` |
//! | CLEAR | translated | `lpi_clear_pending` |
//! | DISCARD | event removed | `lpi_unmap` |
//! | MOVI | event's collection changed (new one must be mapped) | `lpi_move` |
//! | MOVALL | nothing | `move_all` (none when both targets are the same) |
//! | INV / INVALL | translated / collection checked | `reload_config` |
//! | SYNC | nothing | `sync` |
//!
//! # Translation state is internal
//!
//! The formats of the device table, collection table and ITTs are IMPLEMENTATION
//! DEFINED, so an ITS may keep their contents anywhere. This one keeps them only in its
//! own memory, in fixed-capacity arrays bounded by the VM's quotas ([`Config`] and the
//! `DEVICES`/`EVENTS`/`COLLECTIONS` capacities), as KVM does until userspace saves the
//! state. It never writes the guest's tables or ITTs, so a guest that rewrites them
//! under the server changes nothing here, and the server never allocates.
//!
//! GITS_BASER0 (devices) and GITS_BASER1 (collections) are still honoured as the
//! architecture requires: MAPD and MAPC fail for an ID the guest's table could not hold
//! (table not valid, ID beyond a flat table, or no valid level-1 entry in a two-level
//! table; level-1 entries are the one part of the format the architecture defines, and
//! are read from guest memory). MAPD V=1's ITT (`2^Size` entries of GITS_TYPER's entry
//! size at ITT_addr) must lie inside the VM's RAM, as every table the guest points at
//! must, but it is never accessed.
//!
//! # Why DISCARD and MAPD V=0 cannot race with delivery
//!
//! The server is single-threaded: a command and an MSI are never handled at the same
//! time, and every [`Vgic`] call is a Call whose reply ends that step of the command.
//! DISCARD removes the translation first, so any MSI handled afterwards for that
//! (DeviceID, EventID) fails to translate and sends nothing; then `lpi_unmap` asks the
//! vgic-server, which drops the pending state and (after syncing the vCPU that holds the
//! LPI in a list register) retracts it before replying. Only after that reply does
//! GITS_CREADR move past the DISCARD, and CREADR passing a command is what "completed"
//! means to the guest: after completion no delivery of that LPI can start (one already
//! active may finish). An `lpi_set_pending` sent before the DISCARD reached the
//! vgic-server before the `lpi_unmap` did, since both come from this one thread and
//! each Call completes before the next begins. List registers hold interrupt numbers,
//! not pointers, so a stale copy can never reach freed state. MAPD V=0 (and V=1 over a
//! mapped device) is a sequence of such DISCARDs, each event untranslatable from the
//! moment its `lpi_unmap` is sent, and CREADR passes the MAPD only after the last reply.
//!
//! # Command processing
//!
//! Commands run only while GITS_CTLR.Enabled and GITS_CBASER.Valid are set, in batches of
//! at most `budget` steps per [`Its::process`] call so one guest cannot hold a CPU: one
//! step is one command or one event of a MAPD teardown (a MAPD over a device with many
//! events spans batches and CREADR stays on it until it is done). A command with an error
//! (see [`CommandError`]), including one that cannot be read because the queue lies
//! outside the VM's RAM, is dropped with a `warn` log line and the queue goes on, as in
//! KVM: a guest can neither stall nor crash the server.
//!
//! # Choices where the architecture leaves freedom
//!
//! - MAPTI/MAPI over an event that is already mapped, or of an LPI that another event of
//!   the VM maps, is a command error (the first mapping stays).
//! - INT and MSIs on an event whose collection is unmapped are dropped (no target);
//!   MAPTI to an unmapped collection is accepted and the LPI becomes deliverable once
//!   MAPC maps it. DISCARD, CLEAR and INV do not need a mapped collection.
//! - GITS_CTLR.Quiescent reads 1 whenever the ITS is disabled and no MAPD teardown is
//!   in progress: a disabled ITS runs no commands, so none is in progress. GITS_CBASER
//!   and `GITS_BASER<n>` writes are ignored unless the ITS is quiescent. A CBASER write
//!   resets both CREADR and CWRITER to 0.
//! - A vCPU's own write to GITS_TRANSLATER carries no DeviceID, so it is ignored and
//!   logged; devices signal through [`Its::msi`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod command;
mod config;
mod mapped;
pub mod registers;
pub mod remote;
mod server;
mod translation;

#[cfg(test)]
mod fakes;

pub use config::{Config, ConfigError, FIRST_LPI, MAX_LPI_ID_BITS, MIN_LPI_ID_BITS};
pub use mapped::MappedRam;
pub use registers::{TableError, Width};
pub use server::{CommandError, Its, MsiDropped, Progress};

/// The vgic-server as the ITS sees it. Each call is a synchronous IPC Call: when it
/// returns, its effect on the interrupt is complete. Targets are vCPU indices.
pub trait Vgic {
    /// Collection `icid` now targets `vcpu` (`None`: unmapped; its LPIs stay pending
    /// but undelivered until it is mapped again).
    fn collection_target(&mut self, icid: u16, vcpu: Option<u16>);
    /// LPI `vintid` now exists, in collection `icid`; the vgic-server reads its property
    /// table entry now.
    fn lpi_map(&mut self, vintid: u32, icid: u16);
    /// LPI `vintid` no longer exists (DISCARD, MAPD): its pending state is dropped and a
    /// pending copy in a list register retracted before the call returns.
    fn lpi_unmap(&mut self, vintid: u32);
    /// Makes LPI `vintid` pending (INT, or an MSI).
    fn lpi_set_pending(&mut self, vintid: u32);
    /// Makes LPI `vintid` not pending (CLEAR).
    fn lpi_clear_pending(&mut self, vintid: u32);
    /// LPI `vintid` now belongs to collection `icid`; its pending state moves with it
    /// (MOVI).
    fn lpi_move(&mut self, vintid: u32, icid: u16);
    /// Every pending LPI of `from_vcpu` moves to `to_vcpu` (MOVALL).
    fn move_all(&mut self, from_vcpu: u16, to_vcpu: u16);
    /// Re-reads LPI configuration from the property table (INV, INVALL).
    fn reload_config(&mut self, what: Reload);
    /// Every earlier effect on `vcpu` is visible (SYNC).
    fn sync(&mut self, vcpu: u16);
}

/// Which LPIs [`Vgic::reload_config`] re-reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// One LPI (INV).
    Lpi(u32),
    /// Every LPI of a collection (INVALL).
    Collection(u16),
}

/// The VM's RAM as the ITS reads it: the command queue and level-1 table entries. Every
/// access is checked against the VM's RAM; an address outside it is a command error,
/// never an access. There is no `write`: the server keeps its state internally and never
/// writes guest memory.
pub trait GuestMemory {
    /// Fills `buffer` from guest-physical address `ipa`, or fails if any byte of the
    /// range is outside the VM's RAM.
    fn read(&self, ipa: u64, buffer: &mut [u8]) -> Result<(), OutsideRam>;
    /// Whether guest-physical `ipa..ipa + len` lies wholly inside the VM's RAM, without
    /// accessing it (MAPD checks the ITT it is given so).
    fn contains(&self, ipa: u64, len: u64) -> bool;
}

/// A guest-memory access fell (at least partly) outside the VM's RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideRam;
