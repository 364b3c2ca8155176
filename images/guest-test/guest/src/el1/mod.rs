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
mod device_checks;
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
/// How long to wait for another vCPU or an interrupt, in microseconds: generous, since
/// a wait that succeeds ends at once, and with four vCPUs on two CPUs of a loaded host the
/// awaited vCPU may get little of the virtual time that passes.
const PATIENCE_US: u64 = 5_000_000;
/// Status reported when the guest must stop early (a panic, an unexpected exception).
const ABORTED: u32 = 0xdead;

/// Set at boot when no hypervisor runs this program (no device tree in `x0`).
static BARE_METAL: AtomicBool = AtomicBool::new(false);

/// Whether this program runs on bare metal (QEMU's own GIC, no hypervisor).
fn bare_metal() -> bool {
    BARE_METAL.load(Ordering::Relaxed)
}

/// The device tree the hypervisor placed in this VM's RAM (`x0` at boot); `None` on bare
/// metal (`x0` is 0, which this records) or if `x0` points at no device tree header.
fn device_tree() -> Option<&'static [u8]> {
    let dtb = guest_rt::boot_argument();
    if dtb == 0 {
        BARE_METAL.store(true, Ordering::Relaxed);
        return None;
    }
    // SAFETY: a non-zero x0 is the device tree the hypervisor placed in this VM's RAM,
    // which nothing writes; its header is read first and the blob no further than the
    // size it declares.
    unsafe {
        let header = core::slice::from_raw_parts(dtb as *const u8, fdt::HEADER_SIZE);
        fdt::total_size(header).map(|size| core::slice::from_raw_parts(dtb as *const u8, size))
    }
}

/// The check groups to run: all that bare metal has, else as the device tree's bootargs
/// say.
fn detect_options(tree: Option<&[u8]>) -> Options {
    if bare_metal() {
        return Options::BARE_METAL;
    }
    tree.and_then(fdt::bootargs).map(Options::parse).unwrap_or_default()
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

/// One step of a busy wait: WFE, as spin-wait loops use it, so that a waiting CPU does not
/// hold up the one it waits for: under the hypervisor a trapped WFE ends the vCPU's time
/// slice (its sibling on the same physical CPU runs), and QEMU takes it as a cue to run
/// another CPU (it never sleeps there: QEMU implements WFE as YIELD).
fn pause() {
    // SAFETY: WFE is a hint with no effect on memory or registers.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack, preserves_flags)) };
}

/// Waits up to [`PATIENCE_US`] for `done`.
fn wait_for(done: impl FnMut() -> bool) -> bool {
    wait_up_to(PATIENCE_US, done)
}

/// Waits up to `micros` microseconds for `done`.
fn wait_up_to(micros: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = now_ticks() + ticks_in(micros);
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
    guest_rt::vectors::install();
    let tree = device_tree();
    let options = detect_options(tree);
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
        if options.rtc {
            if let Some(tree) = tree {
                report.check("rtc-in-device-tree", device_checks::rtc_described(tree));
            }
            report.check("rtc-alarm-spi", device_checks::rtc_alarm());
        }
        if options.its {
            its_checks::run(&mut report, options.msi);
        }
        bench::run(options.its, options.msi);
    } else {
        report.check("cpu-off-all-vcpus", cpus::stop_all());
    }
    finish(report.summary())
}
