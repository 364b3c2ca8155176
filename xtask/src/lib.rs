//! xtask's library: the system manifest and everything generated from it. The `xtask`
//! binary (build, run, test, bench) drives these modules; tests in `tests/` use them
//! directly.
//!
//! ```ignore
//! let system = manifest::load(Path::new("images/demo/system.toml"))?;
//! let caps = codegen::caps_source(&system, &system.components[0]);
//! let layout = layout::build(&system, kernel_end, &[("pinger", elf_bytes)], &guests, nonce)?;
//! ```

pub mod codegen;
pub mod cpio;
pub mod devicetree;
pub mod guest;
pub mod initramfs;
pub mod layout;
pub mod manifest;
