//! The program at EL1: where it runs (hypervisor or bare metal), the order of the checks,
//! the console, the clock, and how the run ends.

/// Prints a line on the PL011.
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut uart = $crate::el1::UART;
        // The UART cannot fail.
        let _ = core::fmt::Write::write_fmt(&mut uart, format_args!("{}\n", format_args!($($arg)*)));
    }};
}

mod basic;
mod bench;
mod cpus;
mod exceptions;
mod gic;
mod gic_checks;
mod its_checks;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTFRQ_EL0, CNTVCT_EL0, Readable};
use core::sync::atomic::{AtomicBool, Ordering};
use guest_rt::{Pl011, hvc};
use guest_test::fdt::{self, Options};
use guest_test::{Report, ticks};
use smccc::psci;
use vmm::{PL011_BASE, psci::REPORT_STATUS};

/// The PL011 at its `virt` address (the VMM's emulation under the hypervisor).
pub(crate) const UART: Pl011 = Pl011::new(PL011_BASE);
/// How long to wait for another vCPU or an interrupt, in microseconds.
const PATIENCE_US: u64 = 1_000_000;
/// Status reported when the guest must stop early (a panic, an unexpected exception).
const ABORTED: u32 = 0xdead;

/// Set at boot when no hypervisor runs this program (no device tree in `x0`).
static BARE_METAL: AtomicBool = AtomicBool::new(false);

/// Whether this program runs on bare metal (QEMU's own GIC, no hypervisor).
fn bare_metal() -> bool {
    BARE_METAL.load(Ordering::Relaxed)
}

/// The check groups to run: all on bare metal, else as the device tree's bootargs say.
fn detect_options() -> Options {
    let dtb = guest_rt::boot_argument();
    if dtb == 0 {
        BARE_METAL.store(true, Ordering::Relaxed);
        return Options::ALL;
    }
    // SAFETY: a non-zero x0 is the device tree the hypervisor placed in this VM's RAM; its
    // header is read first and the blob no further than the size it declares.
    let blob = unsafe {
        let header = core::slice::from_raw_parts(dtb as *const u8, fdt::HEADER_SIZE);
        match fdt::total_size(header) {
            Some(size) => core::slice::from_raw_parts(dtb as *const u8, size),
            None => return Options::default(),
        }
    };
    fdt::bootargs(blob).map(Options::parse).unwrap_or_default()
}

/// Ends the run with `status`: reported to the VMM under the hypervisor, printed on bare
/// metal; then PSCI SYSTEM_OFF.
fn finish(status: u32) -> ! {
    if bare_metal() {
        println!("guest-test: bare metal, status {status}");
    } else {
        hvc(REPORT_STATUS, &[status.into()]);
    }
    hvc(psci::PSCI_SYSTEM_OFF, &[]);
    println!("SYSTEM_OFF returned");
    guest_rt::wait_forever()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("guest panic: {info}");
    finish(ABORTED)
}

/// The virtual counter.
fn now_ticks() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

/// Counter ticks in `micros` microseconds.
fn ticks_in(micros: u64) -> u64 {
    ticks(CNTFRQ_EL0.get(), micros)
}

/// One step of a busy wait: YIELD, which QEMU's single-threaded modes (`-icount`) take as
/// a cue to run another CPU, so that a waiting CPU does not hold up the one it waits for.
fn pause() {
    // SAFETY: YIELD is a hint with no effect on memory or registers.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Waits up to [`PATIENCE_US`] for `done`.
fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    let deadline = now_ticks() + ticks_in(PATIENCE_US);
    while !done() {
        if now_ticks() > deadline {
            return false;
        }
        pause();
    }
    true
}

/// Busy-waits `micros` microseconds (interrupts are taken meanwhile if unmasked).
fn delay(micros: u64) {
    let end = now_ticks() + ticks_in(micros);
    while now_ticks() < end {
        pause();
    }
}

/// The boot vCPU: runs every check, reports and powers off.
pub(crate) extern "C" fn boot_main() -> ! {
    exceptions::install_vectors();
    let options = detect_options();
    let platform = if bare_metal() { "bare metal" } else { "hypervisor" };
    println!("guest-test: boot vCPU running ({platform}, gic {}, its {})", options.gic, options.its);
    let mut report = Report::new(UART);
    crate::gic_registers::check(&mut report);
    let gic = options.gic && {
        report.check("gic-init", gic::init_distributor_and_boot_cpu());
        gic::ready()
    };
    basic::run(&mut report);
    report.check("cpu-on-all-vcpus", cpus::start_all());
    if gic {
        gic_checks::run(&mut report);
        if options.its {
            its_checks::run(&mut report);
        }
        bench::run(options.its);
    } else {
        report.check("cpu-off-all-vcpus", cpus::stop_all());
    }
    finish(report.summary())
}
