//! hello-guest: the default system's guest, a bare-metal EL1 program that shows a VM's
//! virtual GIC at work. vCPU 0 sets up the distributor, takes a virtual timer interrupt
//! (PPI 27), then starts every other vCPU with PSCI CPU_ON (until one does not exist);
//! each of them takes its own timer interrupt and sends vCPU 0 an SGI, vCPU 0 answers with
//! an SGI, and the secondary says it is done with a last SGI and turns itself off. Every
//! wait is a WFI that one of those interrupts ends. Each step prints one line, in order (a
//! vCPU prints only while the other waits), and the guest powers off with PSCI SYSTEM_OFF
//! and status 0, or reports status 1 first if an interrupt did not come in time.
//!
//! It runs the same on QEMU's own GICv3 (no hypervisor) as in a VM: it uses only the
//! architecture's interfaces (GICD, the GICR frames found by walking them, the ICC system
//! registers, the virtual timer, PSCI over HVC) and no device tree. Up to 16 vCPUs (one
//! SGI target list of Aff0 values, as xtask lays them out).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

guest_rt::entry!(el1::main);

/// The guest program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el1 {
    use aarch64_cpu::asm::barrier;
    use aarch64_cpu::registers::{
        CNTFRQ_EL0, CNTV_CTL_EL0, CNTV_TVAL_EL0, CNTVCT_EL0, MPIDR_EL1, Readable, Writeable,
    };
    use core::arch::{asm, global_asm};
    use core::fmt::Write;
    use core::sync::atomic::{AtomicU32, Ordering};
    use guest_rt::{Pl011, Stack, hvc, mmio};
    use guest_test::gic::{SPURIOUS, SgiTargets, gicd, gicr, sgi1r};
    use smccc::psci;

    /// The most vCPUs this guest drives.
    const MAX_VCPUS: usize = 16;
    /// QEMU virt's distributor, and where a VM's is routed.
    const GICD_BASE: u64 = 0x0800_0000;
    /// The first redistributor.
    const GICR_BASE: u64 = 0x080a_0000;
    /// The SGI vCPUs send each other.
    const HELLO_SGI: u32 = 1;
    /// The virtual timer's PPI.
    const VIRTUAL_TIMER_PPI: u32 = 27;
    /// Priority of both interrupts (any value the PMR lets through).
    const PRIORITY: u8 = 0xa0;
    /// How far ahead each vCPU arms its timer, in milliseconds.
    const TIMER_MS: u64 = 10;
    /// How long to wait for anything, in milliseconds.
    const PATIENCE_MS: u64 = 5000;

    /// The console: the PL011 (the VMM's emulation in a VM).
    const UART: Pl011 = Pl011::new(guest_rt::QEMU_VIRT_PL011);

    /// Each secondary vCPU's stack (index 0 unused: vCPU 0 runs on guest-rt's).
    static mut STACKS: [Stack; MAX_VCPUS] = [const { Stack::new() }; MAX_VCPUS];
    /// Virtual timer interrupts taken per vCPU (each written by its vCPU only).
    static TIMER_TICKS: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
    /// SGIs taken per vCPU.
    static SGIS: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];

    /// Prints a line.
    macro_rules! println {
        ($($arg:tt)*) => {{
            let mut uart = UART;
            // The UART cannot fail.
            let _ = writeln!(uart, $($arg)*);
        }};
    }

    // Every exception goes to `exception`: an IRQ to `handle_irq`, anything else ends the
    // run.
    guest_rt::exception_vectors!(exception);

    // Where a secondary vCPU starts (CPU_ON's entry point), with x0 = its stack top.
    global_asm!(
        r#"
        .section .text.secondary_entry, "ax"
        .global hello_secondary_entry
        hello_secondary_entry:
            msr spsel, #1
            mov sp, x0
            bl {secondary_main}
        "#,
        secondary_main = sym secondary_main,
    );

    unsafe extern "C" {
        /// Where a secondary starts (CPU_ON's entry point), with x0 = its stack top.
        fn hello_secondary_entry();
    }

    /// This vCPU's index: MPIDR Aff0.
    fn this_cpu() -> usize {
        (MPIDR_EL1.get() & 0xff) as usize
    }

    /// The virtual counter in milliseconds.
    fn now_ms() -> u64 {
        barrier::isb(barrier::SY);
        CNTVCT_EL0.get() * 1000 / CNTFRQ_EL0.get()
    }

    /// Sleeps in WFI until `done`: IRQs are masked while it is checked, and WFI wakes on a
    /// pending interrupt even then, so an interrupt that makes it true is never missed.
    fn sleep_until(done: impl Fn() -> bool) {
        loop {
            // SAFETY: masking IRQs has no effect on memory.
            unsafe { asm!("msr daifset, #2", options(nomem, nostack)) };
            if done() {
                break;
            }
            aarch64_cpu::asm::wfi();
            // SAFETY: the handler runs here and writes its counters (no `nomem`).
            unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
        }
        // SAFETY: as above.
        unsafe { asm!("msr daifclr, #2", "isb", options(nostack)) };
    }

    /// Arms this vCPU's virtual timer `ms` milliseconds ahead.
    fn arm_timer(ms: u64) {
        CNTV_TVAL_EL0.set(CNTFRQ_EL0.get() * ms / 1000);
        CNTV_CTL_EL0.set(1);
    }

    /// Sleeps until `done`, which an interrupt makes true, with the virtual timer as a
    /// watchdog [`PATIENCE_MS`] ahead: if it fires first, the run ends with status 1.
    fn wait_for(what: &str, done: impl Fn() -> bool) {
        let ticks = &TIMER_TICKS[this_cpu()];
        let before = ticks.load(Ordering::Acquire);
        arm_timer(PATIENCE_MS);
        sleep_until(|| done() || ticks.load(Ordering::Acquire) != before);
        CNTV_CTL_EL0.set(0);
        if !done() {
            println!("hello: vCPU {}: no {what} within {PATIENCE_MS} ms", this_cpu());
            power_off(1);
        }
    }

    /// Reports `status` to the VMM (ignored on bare metal) and powers off.
    fn power_off(status: u32) -> ! {
        if status != 0 {
            hvc(vmm::psci::REPORT_STATUS, &[status.into()]);
        }
        hvc(psci::PSCI_SYSTEM_OFF, &[]);
        guest_rt::wait_forever()
    }

    /// Every exception: an IRQ is handled, anything else is unexpected.
    extern "C" fn exception(vector: u64) {
        if vector == guest_rt::vectors::IRQ_CURRENT {
            handle_irq();
            return;
        }
        unexpected(vector)
    }

    /// Any exception but an IRQ: nothing here expects one.
    fn unexpected(vector: u64) -> ! {
        let (esr, elr): (u64, u64);
        // SAFETY: reading the syndrome and return address has no effect on memory.
        unsafe { asm!("mrs {esr}, esr_el1", "mrs {elr}, elr_el1", esr = out(reg) esr, elr = out(reg) elr) };
        println!("hello: unexpected exception (vector {vector}, ESR {esr:#x}, ELR {elr:#x})");
        power_off(1)
    }

    /// The IRQ handler: acknowledge, count, end.
    fn handle_irq() {
        let intid: u64;
        // SAFETY: acknowledging changes only this vCPU's GIC state, which this guest owns.
        unsafe { asm!("mrs {intid}, icc_iar1_el1", intid = out(reg) intid, options(nomem, nostack)) };
        let intid = intid as u32 & 0xff_ffff;
        let counter = match intid {
            SPURIOUS => return,
            VIRTUAL_TIMER_PPI => {
                // Its line stays asserted until the timer is stopped.
                CNTV_CTL_EL0.set(0);
                &TIMER_TICKS[this_cpu()]
            }
            _ => &SGIS[this_cpu()],
        };
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
        // SAFETY: ends the interrupt just acknowledged (EOImode 0: drop and deactivate).
        unsafe {
            asm!("msr icc_eoir1_el1, {intid}", "isb", intid = in(reg) u64::from(intid), options(nostack))
        };
    }

    /// Writes the distributor register at `offset`.
    fn gicd_write(offset: u64, value: u32) {
        // SAFETY: GICD_BASE is the distributor and `offset` one of its 32-bit registers.
        unsafe { mmio::write32(GICD_BASE + offset, value) }
    }

    /// Reads the distributor register at `offset`.
    fn gicd_read(offset: u64) -> u32 {
        // SAFETY: as in `gicd_write`.
        unsafe { mmio::read32(GICD_BASE + offset) }
    }

    /// This vCPU's redistributor (RD_base), found by walking the frames until the one
    /// whose affinity is this vCPU's or the last.
    fn own_redistributor() -> u64 {
        let affinity = MPIDR_EL1.get() & 0xff_ffff;
        let mut base = GICR_BASE;
        loop {
            // SAFETY: frames are walked only up to the one that says it is the last.
            let typer = unsafe { mmio::read64(base + gicr::TYPER) };
            if gicr::affinity(typer) == affinity {
                return base;
            }
            if typer & gicr::TYPER_LAST != 0 {
                println!("hello: no redistributor for MPIDR {affinity:#x}");
                power_off(1);
            }
            base += gicr::STRIDE;
        }
    }

    /// Sets up this vCPU: vectors, its redistributor (awake; the SGI and the timer PPI in
    /// group 1 and enabled), its CPU interface (group 1 on, every priority let through),
    /// IRQs unmasked.
    fn init_vcpu() {
        guest_rt::vectors::install();
        let rd = own_redistributor();
        let sgi = rd + gicr::SGI_FRAME;
        // SAFETY: `rd` is this vCPU's redistributor; the offsets are its 32-bit registers.
        unsafe {
            let waker = mmio::read32(rd + gicr::WAKER);
            mmio::write32(rd + gicr::WAKER, waker & !gicr::WAKER_PROCESSOR_SLEEP);
            while mmio::read32(rd + gicr::WAKER) & gicr::WAKER_CHILDREN_ASLEEP != 0 {}
            mmio::write32(sgi + gicd::IGROUPR, u32::MAX);
            for intid in [HELLO_SGI, VIRTUAL_TIMER_PPI] {
                let word = sgi + gicd::IPRIORITYR + u64::from(intid & !3);
                let shift = 8 * (intid % 4);
                let priorities = mmio::read32(word) & !(0xff << shift) | u32::from(PRIORITY) << shift;
                mmio::write32(word, priorities);
            }
            mmio::write32(sgi + gicd::ISENABLER, 1 << HELLO_SGI | 1 << VIRTUAL_TIMER_PPI);
        }
        // SAFETY: the GIC CPU interface registers affect only this vCPU's interrupts; IRQs
        // are unmasked last, once the handler's state is ready (no `nomem`: the handler
        // writes memory).
        unsafe {
            asm!(
                "mrs {scratch}, icc_sre_el1",
                "orr {scratch}, {scratch}, #1",
                "msr icc_sre_el1, {scratch}",
                "isb",
                "msr icc_pmr_el1, {open}",
                "msr icc_igrpen1_el1, {one}",
                "isb",
                "msr daifclr, #2",
                scratch = out(reg) _,
                open = in(reg) 0xffu64,
                one = in(reg) 1u64,
                options(nostack),
            );
        }
    }

    /// Arms this vCPU's virtual timer [`TIMER_MS`] ahead and sleeps until its interrupt.
    fn timer_tick() {
        let cpu = this_cpu();
        let start = now_ms();
        let before = TIMER_TICKS[cpu].load(Ordering::Acquire);
        arm_timer(TIMER_MS);
        sleep_until(|| TIMER_TICKS[cpu].load(Ordering::Acquire) > before);
        println!(
            "hello: vCPU {cpu}: virtual timer interrupt (INTID {VIRTUAL_TIMER_PPI}) after {} ms",
            now_ms() - start
        );
    }

    /// Sends [`HELLO_SGI`] to vCPU `cpu`.
    fn send_sgi(cpu: usize) {
        let value = sgi1r(HELLO_SGI, SgiTargets::List(1 << cpu));
        // SAFETY: sends an SGI; affects only the GIC state of this guest's vCPUs.
        unsafe { asm!("msr icc_sgi1r_el1, {value}", "isb", value = in(reg) value, options(nomem, nostack)) };
    }

    /// vCPU 0: the distributor, its own tick, then each secondary in turn.
    pub(crate) extern "C" fn main() -> ! {
        println!("hello: vCPU 0 running at EL1");
        gicd_write(gicd::CTLR, 0);
        while gicd_read(gicd::CTLR) & gicd::CTLR_RWP != 0 {}
        gicd_write(gicd::CTLR, gicd::CTLR_ARE | gicd::CTLR_ENABLE_GRP1);
        init_vcpu();
        println!("hello: GIC ready (GICD_TYPER {:#x})", gicd_read(gicd::TYPER));
        timer_tick();
        let mut vcpus = 1;
        while vcpus < MAX_VCPUS {
            // SAFETY: only the address of the stack is taken; vCPU `vcpus` alone uses it.
            let stack_top = Stack::top(unsafe { &raw const STACKS[vcpus] });
            let entry = hello_secondary_entry as *const () as u64;
            let result = hvc(psci::PSCI_CPU_ON_64, &[vcpus as u64, entry, stack_top]);
            if result == i64::from(psci::error::INVALID_PARAMETERS) {
                break;
            }
            if result != 0 {
                println!("hello: CPU_ON of vCPU {vcpus} returned {result}");
                power_off(1);
            }
            let sgis = SGIS[0].load(Ordering::Acquire);
            wait_for("SGI from the new vCPU", || SGIS[0].load(Ordering::Acquire) > sgis);
            println!("hello: vCPU 0: SGI {HELLO_SGI} from vCPU {vcpus}, answering");
            send_sgi(vcpus);
            wait_for("SGI answer", || SGIS[0].load(Ordering::Acquire) > sgis + 1);
            vcpus += 1;
        }
        println!("hello: {vcpus} vCPU(s) took their timer interrupts and SGIs; powering off");
        power_off(0)
    }

    /// A secondary vCPU: its tick, an SGI to vCPU 0 and the answer, an SGI to say it is
    /// done printing, then it turns itself off.
    extern "C" fn secondary_main() -> ! {
        let cpu = this_cpu();
        init_vcpu();
        println!("hello: vCPU {cpu} started by PSCI CPU_ON");
        timer_tick();
        send_sgi(0);
        wait_for("SGI from vCPU 0", || SGIS[cpu].load(Ordering::Acquire) > 0);
        println!("hello: vCPU {cpu}: SGI {HELLO_SGI} from vCPU 0; turning off");
        send_sgi(0);
        hvc(psci::PSCI_CPU_OFF, &[]);
        guest_rt::wait_forever()
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        println!("hello: panic: {info}");
        power_off(1)
    }
}
