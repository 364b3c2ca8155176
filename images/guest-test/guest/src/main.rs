//! guest-test: a bare-metal EL1 guest that checks what the hypervisor shows a VM: PSCI
//! over HVC and SMC (CPU_ON of the second vCPU, AFFINITY_INFO, CPU_OFF, errors), the
//! emulated PL011, the virtual timer waking a WFI, the read-as-zero policy for unclaimed
//! addresses, the data abort for an access the hypervisor cannot decode, and an
//! undefined-instruction exception for a semihosting call.
//!
//! It prints `check <name>: ok|FAILED <detail>` per check and a summary line, reports the
//! number of failures with the VMM's vendor hypervisor call (`vmm::psci::REPORT_STATUS`)
//! and powers the VM off with PSCI SYSTEM_OFF, which ends the run with that status.
//!
//! The boot vCPU enters at guest-rt's `_start` (0x4008_0000, `guest.ld`) with the MMU off,
//! so every data access is to Device memory: the target's `+strict-align` keeps them
//! aligned; device registers are accessed with single `ldr`/`str` instructions that the
//! hypervisor can decode (`guest_rt::mmio`); and the vCPUs share memory with plain
//! acquire/release loads and stores, since exclusives on Device memory are
//! IMPLEMENTATION DEFINED.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

guest_rt::entry!(el1::boot_main);

#[cfg(target_os = "none")]
mod gic_registers;

/// The guest program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el1 {
    use aarch64_cpu::asm::barrier;
    use aarch64_cpu::registers::{
        CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, CNTVCT_EL0, ELR_EL1, ESR_EL1, FAR_EL1, MPIDR_EL1, Readable,
        Writeable,
    };
    use core::arch::{asm, global_asm};
    use core::fmt::Write;
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use guest_rt::{Pl011, Registers, Stack, hvc, mmio, smc};
    use guest_test::{
        Outcome, Recorded, Report, VECTOR_NAMES, VECTOR_SYNC_CURRENT, expect_data_abort, expect_eq,
        expect_undefined, fail, ticks,
    };
    use smccc::psci::{self, AffinityState};
    use vmm::pl011::{flag, reg};
    use vmm::{PL011_BASE, psci::REPORT_STATUS};

    /// MPIDR affinity fields (Aff3, Aff2..Aff0).
    const AFFINITY_MASK: u64 = 0xff_00ff_ffff;
    /// The second vCPU's MPIDR affinity (xtask's layout: Aff0 = vCPU index).
    const SECOND_VCPU: u64 = 1;
    /// An address QEMU's `virt` uses (virtio-mmio) that the test system neither maps nor
    /// routes: the VM's `unclaimed = "read-zero"` policy applies.
    const UNCLAIMED: u64 = 0x0a00_0000;
    /// How long to wait for the other vCPU, in microseconds.
    const PATIENCE_US: u64 = 1_000_000;
    /// Status reported when the guest must stop early (a panic, an unexpected exception).
    const ABORTED: u32 = 0xdead;

    /// The second vCPU's stack; its top is the CPU_ON context id, which becomes its `sp`.
    static mut SECOND_STACK: Stack = Stack::new();
    /// The PL011 at its `virt` address, through the VMM's emulation.
    const UART: Pl011 = Pl011::new(PL011_BASE);

    global_asm!(
        r#"
        .section .text.secondary_entry, "ax"
        .global secondary_entry
        secondary_entry:
            msr spsel, #1
            mov sp, x0
            bl {install_vectors}
            bl {second_main}
        "#,
        install_vectors = sym install_vectors,
        second_main = sym second_main,
    );

    // The exception vectors: each of the sixteen entries saves x0/x1, puts its index in
    // x0 and joins `exception_common`, which saves the other caller-saved registers and
    // calls `exception` (which returns only for an expected exception, having moved
    // ELR_EL1 past the instruction).
    global_asm!(
        r#"
        .macro VECTOR index
            .balign 0x80
            sub sp, sp, #176
            stp x0, x1, [sp, #0]
            mov x0, #\index
            b exception_common
        .endm

        .section .text.vectors, "ax"
        .balign 2048
        .global exception_vectors
        exception_vectors:
            VECTOR 0
            VECTOR 1
            VECTOR 2
            VECTOR 3
            VECTOR 4
            VECTOR 5
            VECTOR 6
            VECTOR 7
            VECTOR 8
            VECTOR 9
            VECTOR 10
            VECTOR 11
            VECTOR 12
            VECTOR 13
            VECTOR 14
            VECTOR 15

        exception_common:
            stp x2, x3, [sp, #16]
            stp x4, x5, [sp, #32]
            stp x6, x7, [sp, #48]
            stp x8, x9, [sp, #64]
            stp x10, x11, [sp, #80]
            stp x12, x13, [sp, #96]
            stp x14, x15, [sp, #112]
            stp x16, x17, [sp, #128]
            stp x18, x29, [sp, #144]
            str x30, [sp, #160]
            bl {exception}
            ldp x2, x3, [sp, #16]
            ldp x4, x5, [sp, #32]
            ldp x6, x7, [sp, #48]
            ldp x8, x9, [sp, #64]
            ldp x10, x11, [sp, #80]
            ldp x12, x13, [sp, #96]
            ldp x14, x15, [sp, #112]
            ldp x16, x17, [sp, #128]
            ldp x18, x29, [sp, #144]
            ldr x30, [sp, #160]
            ldp x0, x1, [sp, #0]
            add sp, sp, #176
            eret
        "#,
        exception = sym exception,
    );

    unsafe extern "C" {
        /// Where the second vCPU starts (CPU_ON's entry point), with x0 = its stack top.
        fn secondary_entry();
        /// The vector table (2 KiB aligned).
        static exception_vectors: u8;
    }

    /// Points VBAR_EL1 at the vector table.
    extern "C" fn install_vectors() {
        // SAFETY: the table is code in this image, laid out as VBAR_EL1 requires (2 KiB
        // aligned, sixteen 128-byte entries); installing it changes only where this
        // vCPU's exceptions go.
        unsafe {
            asm!("msr vbar_el1, {table}", "isb", table = in(reg) &raw const exception_vectors, options(nostack));
        }
    }

    macro_rules! println {
        ($($arg:tt)*) => {{
            let mut uart = UART;
            // The UART cannot fail.
            let _ = writeln!(uart, $($arg)*);
        }};
    }

    /// Reports `status` to the VMM and powers the VM off.
    fn finish(status: u32) -> ! {
        hvc(REPORT_STATUS, &[status.into()]);
        hvc(psci::PSCI_SYSTEM_OFF, &[]);
        println!("SYSTEM_OFF returned");
        guest_rt::wait_forever()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        println!("guest panic: {info}");
        finish(ABORTED)
    }

    /// Set while a check expects its next instruction to take a synchronous exception.
    static EXPECTING: AtomicBool = AtomicBool::new(false);
    static RECORDED_ESR: AtomicU64 = AtomicU64::new(0);
    static RECORDED_FAR: AtomicU64 = AtomicU64::new(0);
    static RECORDED_ELR: AtomicU64 = AtomicU64::new(0);

    /// Every exception comes here with its vector's index. An expected one is recorded and
    /// skipped; anything else ends the run.
    extern "C" fn exception(vector: u64) {
        let (esr, far, elr) = (ESR_EL1.get(), FAR_EL1.get(), ELR_EL1.get());
        if vector == VECTOR_SYNC_CURRENT && EXPECTING.load(Ordering::Relaxed) {
            EXPECTING.store(false, Ordering::Relaxed);
            RECORDED_ESR.store(esr, Ordering::Relaxed);
            RECORDED_FAR.store(far, Ordering::Relaxed);
            RECORDED_ELR.store(elr, Ordering::Relaxed);
            ELR_EL1.set(elr + 4);
            return;
        }
        let name = VECTOR_NAMES.get(vector as usize).copied().unwrap_or("?");
        println!("unexpected exception: {name}, ESR {esr:#x}, FAR {far:#x}, ELR {elr:#x}");
        finish(ABORTED)
    }

    /// Runs `provoke`, which executes one instruction that should trap and returns that
    /// instruction's address; returns what the vectors recorded, if anything.
    fn catch(provoke: impl FnOnce() -> u64) -> (Option<Recorded>, u64) {
        EXPECTING.store(true, Ordering::Relaxed);
        let pc = provoke();
        let taken = !EXPECTING.load(Ordering::Relaxed);
        EXPECTING.store(false, Ordering::Relaxed);
        let recorded = taken.then(|| Recorded {
            esr: RECORDED_ESR.load(Ordering::Relaxed),
            far: RECORDED_FAR.load(Ordering::Relaxed),
            elr: RECORDED_ELR.load(Ordering::Relaxed),
        });
        (recorded, pc)
    }

    /// How many times the second vCPU has started (written by it).
    static SECOND_STARTS: AtomicU64 = AtomicU64::new(0);
    /// The MPIDR the second vCPU read.
    static SECOND_MPIDR: AtomicU64 = AtomicU64::new(u64::MAX);
    /// Set by the boot vCPU: the second vCPU should call CPU_OFF.
    static SECOND_OFF_REQUESTED: AtomicBool = AtomicBool::new(false);
    /// What CPU_OFF returned to the second vCPU, had it returned.
    static SECOND_OFF_ERROR: AtomicU64 = AtomicU64::new(0);

    /// The second vCPU: says hello, reports its MPIDR, turns itself off when asked.
    extern "C" fn second_main() -> ! {
        let mpidr = MPIDR_EL1.get() & AFFINITY_MASK;
        let starts = SECOND_STARTS.load(Ordering::Acquire) + 1;
        println!("vcpu with MPIDR {mpidr:#x}: running (start {starts})");
        SECOND_MPIDR.store(mpidr, Ordering::Relaxed);
        SECOND_STARTS.store(starts, Ordering::Release);
        loop {
            if SECOND_OFF_REQUESTED.load(Ordering::Acquire) {
                SECOND_OFF_REQUESTED.store(false, Ordering::Relaxed);
                let error = hvc(psci::PSCI_CPU_OFF, &[]);
                SECOND_OFF_ERROR.store(error as u64, Ordering::Release);
            }
            core::hint::spin_loop();
        }
    }

    /// The virtual counter.
    fn now_ticks() -> u64 {
        barrier::isb(barrier::SY);
        CNTVCT_EL0.get()
    }

    /// Waits up to [`PATIENCE_US`] for `done`.
    fn wait_for(mut done: impl FnMut() -> bool) -> bool {
        let deadline = now_ticks() + ticks(CNTFRQ_EL0.get(), PATIENCE_US);
        while !done() {
            if now_ticks() > deadline {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    fn affinity_info(mpidr: u64) -> i64 {
        hvc(psci::PSCI_AFFINITY_INFO_64, &[mpidr, 0])
    }

    fn cpu_on_second() -> i64 {
        let stack_top = Stack::top(&raw const SECOND_STACK);
        hvc(psci::PSCI_CPU_ON_64, &[SECOND_VCPU, secondary_entry as *const () as u64, stack_top])
    }

    /// Starts the second vCPU and waits until it has run `expected_starts` times.
    fn start_second(expected_starts: u64) -> Outcome {
        expect_eq("CPU_ON", 0, cpu_on_second() as u64)?;
        if !wait_for(|| SECOND_STARTS.load(Ordering::Acquire) == expected_starts) {
            return fail!("the second vCPU did not report start {expected_starts}");
        }
        expect_eq("its MPIDR", SECOND_VCPU, SECOND_MPIDR.load(Ordering::Relaxed))
    }

    /// Asks the second vCPU to turn itself off and waits until AFFINITY_INFO says OFF.
    fn stop_second() -> Outcome {
        SECOND_OFF_REQUESTED.store(true, Ordering::Release);
        if !wait_for(|| affinity_info(SECOND_VCPU) == AffinityState::Off as i64) {
            let error = SECOND_OFF_ERROR.load(Ordering::Acquire) as i64;
            return fail!("still on after CPU_OFF (CPU_OFF returned {error})");
        }
        Ok(())
    }

    fn psci_features() -> Outcome {
        expect_eq("FEATURES(CPU_ON)", 0, hvc(psci::PSCI_FEATURES, &[psci::PSCI_CPU_ON_64.into()]) as u64)?;
        let reset = hvc(psci::PSCI_FEATURES, &[psci::PSCI_SYSTEM_RESET.into()]);
        expect_eq("FEATURES(SYSTEM_RESET)", psci::error::NOT_SUPPORTED as u64, reset as u64)
    }

    fn affinity_before() -> Outcome {
        expect_eq("vCPU 0", AffinityState::On as u64, affinity_info(0) as u64)?;
        expect_eq("vCPU 1", AffinityState::Off as u64, affinity_info(SECOND_VCPU) as u64)
    }

    fn cpu_on_again() -> Outcome {
        stop_second()?;
        start_second(2)?;
        stop_second()
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

    fn pl011_identification() -> Outcome {
        let expected = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
        for (i, value) in expected.into_iter().enumerate() {
            let offset = reg::PERIPH_ID0 + 4 * i as u64;
            if UART.read(offset) != value {
                return fail!("ID register {offset:#x}: expected {value:#x}, got {:#x}", UART.read(offset));
            }
        }
        Ok(())
    }

    /// WFI with interrupts masked wakes when the virtual timer's deadline passes: the timer
    /// condition is met (ISTATUS) and the counter has reached the deadline.
    fn wfi_virtual_timer() -> Outcome {
        const ENABLE: u64 = 1;
        const ISTATUS: u64 = 1 << 2;
        let start = now_ticks();
        let deadline = start + ticks(CNTFRQ_EL0.get(), 2000);
        CNTV_CVAL_EL0.set(deadline);
        CNTV_CTL_EL0.set(ENABLE);
        barrier::isb(barrier::SY);
        aarch64_cpu::asm::wfi();
        let (control, woke) = (CNTV_CTL_EL0.get(), now_ticks());
        CNTV_CTL_EL0.set(0);
        if control & ISTATUS == 0 || woke < deadline {
            return fail!(
                "WFI returned {} ticks after the start, {} before the deadline (CNTV_CTL {control:#x})",
                woke - start,
                deadline.saturating_sub(woke)
            );
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

    /// The boot vCPU: runs every check, reports and powers off.
    pub(crate) extern "C" fn boot_main() -> ! {
        install_vectors();
        println!("guest-test: boot vCPU running");
        let mut report = Report::new(UART);
        let version = 0x1_0001;
        report.check("boot-vcpu-mpidr", expect_eq("MPIDR", 0, MPIDR_EL1.get() & AFFINITY_MASK));
        report.check("psci-version-hvc", expect_eq("VERSION", version, hvc(psci::PSCI_VERSION, &[]) as u64));
        report.check("psci-version-smc", expect_eq("VERSION", version, smc(psci::PSCI_VERSION, &[]) as u64));
        let smccc_version = hvc(smccc::arch::SMCCC_VERSION, &[]) as u64;
        report.check("smccc-version", expect_eq("SMCCC_VERSION", version, smccc_version));
        report.check("psci-features", psci_features());
        let unknown = (hvc(0xc600_ffff, &[]), smc(0xc600_ffff, &[]));
        report.check(
            "unknown-call-not-supported",
            expect_eq("HVC", u64::MAX, unknown.0 as u64).and(expect_eq("SMC", u64::MAX, unknown.1 as u64)),
        );
        report.check("affinity-info-before", affinity_before());
        report.check("cpu-on-second-vcpu", start_second(1));
        let on = AffinityState::On as u64;
        report.check("affinity-info-after", expect_eq("vCPU 1", on, affinity_info(SECOND_VCPU) as u64));
        let again = cpu_on_second();
        report.check("cpu-on-already-on", expect_eq("CPU_ON", psci::error::ALREADY_ON as u64, again as u64));
        let unknown_target = hvc(psci::PSCI_CPU_ON_64, &[0x7, secondary_entry as *const () as u64, 0]);
        let invalid = psci::error::INVALID_PARAMETERS as u64;
        report.check("cpu-on-unknown-mpidr", expect_eq("CPU_ON", invalid, unknown_target as u64));
        report.check("cpu-off-and-on-again", cpu_on_again());
        report.check("pl011-register-round-trip", pl011_round_trip());
        report.check("pl011-identification", pl011_identification());
        report.check("wfi-virtual-timer", wfi_virtual_timer());
        report.check("unclaimed-reads-zero", unclaimed_reads_zero());
        report.check("undecodable-access-aborts", undecodable_access_aborts());
        report.check("semihosting-is-undefined", semihosting_is_undefined());
        crate::gic_registers::check(&mut report);
        finish(report.summary())
    }
}
