//! ipc: the system-call ABI of the kernel, shared by the kernel and every component.
//!
//! A component holds capabilities in a table indexed by small integers. The names the
//! manifest gave them arrive as generated constants of type [`Cap<T>`], so a component
//! writes
//!
//! ```ignore
//! let reply = PONG.call(&Message::new(Label(1)).with_words(&[41]))?;
//! ```
//!
//! Register convention for `svc #0` (seL4-like): `x7` holds the [`Syscall`] number,
//! `x0` the capability index, `x1` the [`MessageInfo`], `x2..=x5` message words 0-3.
//! The kernel returns an [`Error`] code in `x0` (0 for success), the received
//! [`MessageInfo`] in `x1`, message words 0-3 in `x2..=x5` and the badge in `x6`.
//! `Call` and `ReplyRecv` may also change `x8..=x17` (the kernel's fast path does not
//! save them; they come back holding values of the same thread), which AAPCS64 callers
//! never keep live across a call anyway; every other register is preserved.
//! Words 4 and up travel in the thread's [`IpcBuffer`]. Messages of at most four words
//! can skip [`Message`] altogether: [`ShortMessage`] and the `*_short` endpoint wrappers
//! keep them in registers. A thread with a bound notification may get [`NOTIFIED`] from
//! any receive.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

pub mod its;
mod message;
#[cfg(target_os = "none")]
mod syscall;
pub mod vcpu;
pub mod vgic;
pub mod vm_image;

pub use message::*;
#[cfg(target_os = "none")]
pub use syscall::*;

/// The `log` target of lines that a guest (or a client) causes a component to log by
/// misbehaving: `log::info!(target: ipc::GUEST_EVENT, ...)`. component-rt's logger prints
/// the 1st, 2nd, 4th, 8th, ... occurrence from each call site, with its count, so that no
/// guest can keep the console (shared by every CPU) busy through its servers.
pub const GUEST_EVENT: &str = "guest-event";
