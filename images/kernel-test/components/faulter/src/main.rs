//! faulter: stores to an unmapped address. The kernel stops it and reports the data
//! abort to its fault endpoint; the supervisor checks the report while others go on.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Unmapped in every component's address space (the first page is never mapped).
const UNMAPPED: usize = 0x10;

fn main() -> ! {
    log::info!("storing to {UNMAPPED:#x}");
    // SAFETY: deliberately unsound: the store faults, and that fault is what this test
    // component exists to cause. It never returns from the fault.
    unsafe { core::ptr::write_volatile(UNMAPPED as *mut u64, 1) };
    unreachable!("the store above faults")
}
