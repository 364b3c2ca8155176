//! The target-only shell: boot code, exception vectors, system registers and devices of
//! QEMU's `virt` machine. Everything here is thin; the logic it drives lives in the
//! `kernel` library.

pub mod boot;
pub mod console;
pub mod gic;
pub mod guest;
pub mod lock;
pub mod memory;
pub mod mmio;
pub mod pmu;
pub mod psci;
pub mod timer;
pub mod vectors;

pub use lock::SpinLock;
