//! The checks that need no GIC: PSCI (CPU_ON, CPU_OFF, AFFINITY_INFO and errors, over
//! HVC, and over SMC under the hypervisor), the PL011, the virtual timer waking a WFI,
//! and, under the hypervisor, its policies for unclaimed and undecodable accesses; a
//! semihosting call is undefined everywhere (QEMU runs without `-semihosting`).

use super::cpus::{self, AFFINITY_MASK, affinity_info, cpu_on};
use super::exceptions::catch;
use super::{UART, bare_metal, gic, now_ticks, ticks_in};
use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_CVAL_EL0, MPIDR_EL1, Readable, Writeable};
use core::arch::asm;
use guest_rt::{Registers, hvc, mmio, smc};
use guest_test::{Outcome, Report, expect_data_abort, expect_eq, expect_undefined, fail};
use smccc::psci::{self, AffinityState};
use vmm::PL011_BASE;
use vmm::pl011::{flag, reg};

/// The second vCPU, which the CPU_ON/CPU_OFF checks start and stop.
const SECOND_VCPU: usize = 1;
/// An address QEMU's `virt` uses (virtio-mmio) that the test system neither maps nor
/// routes: the VM's `unclaimed = "read-zero"` policy applies.
const UNCLAIMED: u64 = 0x0a00_0000;

/// Runs the checks; vCPU 1 is off again at the end.
pub(super) fn run(report: &mut Report<guest_rt::Pl011>) {
    let version = 0x1_0001;
    report.check("boot-vcpu-mpidr", expect_eq("MPIDR", 0, MPIDR_EL1.get() & AFFINITY_MASK));
    report.check("psci-version-hvc", expect_eq("VERSION", version, hvc(psci::PSCI_VERSION, &[]) as u64));
    if !bare_metal() {
        // Bare metal has no EL3 (SMC is undefined) and QEMU's HVC conduit knows PSCI only.
        report.check("psci-version-smc", expect_eq("VERSION", version, smc(psci::PSCI_VERSION, &[]) as u64));
        let smccc_version = hvc(smccc::arch::SMCCC_VERSION, &[]) as u64;
        report.check("smccc-version", expect_eq("SMCCC_VERSION", version, smccc_version));
        let unknown = (hvc(0xc600_ffff, &[]), smc(0xc600_ffff, &[]));
        report.check(
            "unknown-call-not-supported",
            expect_eq("HVC", u64::MAX, unknown.0 as u64).and(expect_eq("SMC", u64::MAX, unknown.1 as u64)),
        );
    }
    report.check("psci-features", psci_features());
    report.check("affinity-info-before", affinity_before());
    report.check("cpu-on-second-vcpu", cpus::start(SECOND_VCPU, 1));
    let on = AffinityState::On as u64;
    report.check("affinity-info-after", expect_eq("vCPU 1", on, affinity_info(SECOND_VCPU as u64) as u64));
    let again = cpu_on(SECOND_VCPU);
    report.check("cpu-on-already-on", expect_eq("CPU_ON", psci::error::ALREADY_ON as u64, again as u64));
    let unknown_target = hvc(psci::PSCI_CPU_ON_64, &[0x7, cpus::entry_point(), 0]);
    let invalid = psci::error::INVALID_PARAMETERS as u64;
    report.check("cpu-on-unknown-mpidr", expect_eq("CPU_ON", invalid, unknown_target as u64));
    report.check("cpu-off-and-on-again", cpu_on_again());
    if !bare_metal() {
        // QEMU's PL011 keeps every bit written to IBRD and FBRD.
        report.check("pl011-register-round-trip", pl011_round_trip());
    }
    report.check("pl011-identification", pl011_identification());
    report.check("wfi-virtual-timer", wfi_virtual_timer());
    if !bare_metal() {
        report.check("unclaimed-reads-zero", unclaimed_reads_zero());
        report.check("undecodable-access-aborts", undecodable_access_aborts());
    }
    report.check("semihosting-is-undefined", semihosting_is_undefined());
}

fn psci_features() -> Outcome {
    expect_eq("FEATURES(CPU_ON)", 0, hvc(psci::PSCI_FEATURES, &[psci::PSCI_CPU_ON_64.into()]) as u64)?;
    // QEMU's own PSCI and the VMM both implement SYSTEM_RESET (with `-no-reboot` both end
    // the run).
    let reset = hvc(psci::PSCI_FEATURES, &[psci::PSCI_SYSTEM_RESET.into()]);
    expect_eq("FEATURES(SYSTEM_RESET)", 0, reset as u64)
}

fn affinity_before() -> Outcome {
    expect_eq("vCPU 0", AffinityState::On as u64, affinity_info(0) as u64)?;
    expect_eq("vCPU 1", AffinityState::Off as u64, affinity_info(SECOND_VCPU as u64) as u64)
}

fn cpu_on_again() -> Outcome {
    cpus::stop(SECOND_VCPU)?;
    cpus::start(SECOND_VCPU, 2)?;
    cpus::stop(SECOND_VCPU)
}

fn pl011_round_trip() -> Outcome {
    let saved = (UART.read(reg::IBRD), UART.read(reg::FBRD));
    UART.write(reg::IBRD, 0x1234_abcd);
    UART.write(reg::FBRD, 0xff);
    let read = (UART.read(reg::IBRD), UART.read(reg::FBRD));
    UART.write(reg::IBRD, saved.0);
    UART.write(reg::FBRD, saved.1);
    expect_eq("IBRD (16 bits)", 0xabcd, read.0.into())?;
    expect_eq("FBRD (6 bits)", 0x3f, read.1.into())?;
    expect_eq("FR.TXFE", flag::TXFE.into(), (UART.read(reg::FR) & flag::TXFE).into())
}

/// PeriphID2 holds the revision: 3 in the VMM's PL011, 1 in QEMU's.
fn pl011_identification() -> Outcome {
    let revision = if bare_metal() { 0x14 } else { 0x34 };
    let expected = [0x11, 0x10, revision, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
    for (i, value) in expected.into_iter().enumerate() {
        let offset = reg::PERIPH_ID0 + 4 * i as u64;
        if UART.read(offset) != value {
            return fail!("ID register {offset:#x}: expected {value:#x}, got {:#x}", UART.read(offset));
        }
    }
    Ok(())
}

/// WFI with interrupts masked sleeps until the virtual timer's deadline: when it returns
/// the timer condition is met (ISTATUS) and the counter has reached the deadline.
///
/// A WFI also returns, without trapping, when a physical interrupt for the hypervisor
/// arrives just as it executes (a pending wake-up event completes it at once; QEMU checks
/// for one before the trap), so the guest waits again, as every guest's idle loop does.
/// That takes an interrupt at that very instant, so a few such returns are allowed; a WFI
/// that only yielded would return hundreds of times in these 2 ms.
fn wfi_virtual_timer() -> Outcome {
    const ENABLE: u64 = 1;
    const ISTATUS: u64 = 1 << 2;
    const EARLY_RETURNS_ALLOWED: u32 = 3;
    let start = now_ticks();
    let deadline = start + ticks_in(2000);
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.set(ENABLE);
    barrier::isb(barrier::SY);
    let mut early_returns = 0;
    let mut first_early_return = None;
    loop {
        aarch64_cpu::asm::wfi();
        if CNTV_CTL_EL0.get() & ISTATUS != 0 || early_returns == EARLY_RETURNS_ALLOWED {
            break;
        }
        early_returns += 1;
        first_early_return.get_or_insert_with(|| (now_ticks() - start, gic::pending_state()));
    }
    let (control, woke) = (CNTV_CTL_EL0.get(), now_ticks());
    CNTV_CTL_EL0.set(0);
    if control & ISTATUS == 0 {
        let (after, (isr, pending)) = first_early_return.unwrap_or_default();
        return fail!(
            "WFI returned {} times before the deadline, first after {after} ticks \
             (ISR_EL1 {isr:#x}, pending INTID {pending:?})",
            early_returns + 1
        );
    }
    if woke < deadline {
        return fail!("the timer condition held {} ticks before the deadline", deadline - woke);
    }
    Ok(())
}

fn unclaimed_reads_zero() -> Outcome {
    // SAFETY: nothing is at this guest-physical address; the hypervisor's policy
    // makes reads return zero and ignores writes (a data abort would be recorded as an
    // unexpected exception and end the run).
    let (before, after) = unsafe {
        let before = mmio::read32(UNCLAIMED);
        mmio::write32(UNCLAIMED, 0xdead_beef);
        (before, mmio::read32(UNCLAIMED))
    };
    expect_eq("first read", 0, before.into())?;
    expect_eq("read after a write", 0, after.into())
}

/// LDP cannot be described in ESR's syndrome (ISV = 0), so the hypervisor cannot
/// forward it to the VMM and injects a data abort.
fn undecodable_access_aborts() -> Outcome {
    let (recorded, pc) = catch(|| {
        let pc: u64;
        // SAFETY: a load pair from the PL011's first registers; the hypervisor aborts
        // it and the vector moves past it, so x2/x3 get no defined values and are
        // declared clobbered.
        unsafe {
            asm!(
                "adr {pc}, 0f",
                "0: ldp {first}, {second}, [{address}]",
                pc = out(reg) pc,
                first = out(reg) _,
                second = out(reg) _,
                address = in(reg) PL011_BASE,
                options(nostack),
            );
        }
        pc
    });
    expect_data_abort(recorded, pc, PL011_BASE)?;
    // The UART still works: this check's own line is printed through it.
    expect_eq("FR.TXFE afterwards", flag::TXFE.into(), (UART.read(reg::FR) & flag::TXFE).into())
}

/// With semihosting off, `hlt #0xf000` is an undefined instruction at EL1; had QEMU
/// serviced it, it would have printed the message and no exception would be recorded.
fn semihosting_is_undefined() -> Outcome {
    const SYS_WRITE0: u64 = 0x04;
    let message = c"semihosting reached the host\n";
    let (recorded, pc) = catch(|| {
        let pc: u64;
        // SAFETY: HLT traps as undefined (the vector skips it); were it serviced as a
        // semihosting SYS_WRITE0, it would only read the NUL-terminated `message` and
        // write x0.
        unsafe {
            asm!(
                "adr {pc}, 0f",
                "0: hlt #0xf000",
                pc = out(reg) pc,
                inout("x0") SYS_WRITE0 => _,
                in("x1") message.as_ptr(),
                options(nostack),
            );
        }
        pc
    });
    expect_undefined(recorded, pc)
}
