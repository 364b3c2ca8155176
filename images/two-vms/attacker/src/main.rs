//! two-vms-attacker: a bare-metal EL1 guest that attacks its own VM's emulated devices
//! and the hypervisor while another VM runs the test guest (images/two-vms/system.toml).
//!
//! From a fixed seed ([`two_vms_attacker::SEED`]) it runs rounds of: ITS command queues
//! filled with garbage and CWRITER moved wildly, GITS_CBASER and GITS_BASERn pointing
//! outside its RAM (into the victim's guest-physical range, past the end of RAM), writes
//! to every GITS register read-only ones included; random MMIO at every width, aligned or
//! not, single or pair (LDP/STP, which give the hypervisor no syndrome), over its GICD,
//! GICR, the GIC space of vCPUs it does not have, its PL011, the victim's RAM range and
//! unclaimed space anywhere; SGI register writes to vCPUs that do not exist; trapped PMU
//! and debug system-register writes; PSCI and vendor calls with random function IDs.
//! Every exception this causes (injected aborts, undefined instructions, its own
//! alignment faults) is counted and skipped.
//!
//! After [`REPORT_AFTER_ROUNDS`] rounds, and again when the flood stops (after
//! [`ROUNDS`] rounds or [`BUDGET_MS`] of virtual time, whichever comes first), it checks
//! that its servers still answer (the ID registers of its GICD, GICR and GITS, the VMM's
//! PSCI_VERSION) and that no read of the victim's range returned anything but zero,
//! prints the verdict and reports it to its VMM (the vendor call `REPORT_STATUS`: 0 if all
//! held, which the VMM logs as `guest reported status 0`). The first report is the run's
//! `expect-output`: it comes after one round, long before the victim ends the run, so the
//! pass criterion does not race the victim; the later rounds keep the pressure on while
//! the victim runs, and may be cut short by its end. Then it turns its only vCPU off with
//! PSCI CPU_OFF: its VM stops. It never calls SYSTEM_OFF, so the run's status is the
//! victim's.
//!
//! The program runs with the MMU off: every access is to Device memory, so an unaligned
//! one is an alignment fault the guest takes itself, before the hypervisor sees it.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

guest_rt::entry!(el1::main);

/// Rounds before the first report: one, so that it comes well before the victim's end.
#[cfg(target_os = "none")]
const REPORT_AFTER_ROUNDS: u32 = 1;
/// Flood rounds at most.
#[cfg(target_os = "none")]
const ROUNDS: u32 = 8;
/// Virtual time the flood may take at most, in milliseconds.
#[cfg(target_os = "none")]
const BUDGET_MS: u64 = 10_000;

/// The guest program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el1 {
    use super::{BUDGET_MS, REPORT_AFTER_ROUNDS, ROUNDS};
    use core::arch::asm;
    use core::fmt::Write;
    use core::sync::atomic::{AtomicU64, Ordering};
    use guest_rt::{Pl011, hvc, mmio};
    use two_vms_attacker::{
        Access, COMMAND_BYTES, Rng, SEED, Width, call_function, cbaser, cwriter, exception_class, gits,
        its_command, its_register_write, layout, sgi_value, table_address, wild_access,
    };
    use vmm::psci::REPORT_STATUS;

    /// Prints a line on the PL011 (the VMM's emulation).
    macro_rules! println {
        ($($arg:tt)*) => {{
            // The UART cannot fail.
            let _ = writeln!(Pl011::new(layout::PL011), $($arg)*);
        }};
    }

    /// Exceptions taken, by ESR_EL1.EC (written by `exception`).
    static ATTACKER_EXCEPTIONS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

    // Every exception goes to `exception`.
    guest_rt::exception_vectors!(exception);

    /// Every exception: counted by class; a synchronous one (an injected abort or undefined
    /// instruction, or the guest's own alignment fault) also skips the instruction that
    /// caused it. IRQ, FIQ and SError stay masked (DAIF), so only synchronous exceptions
    /// arrive; any other is counted and returned from.
    extern "C" fn exception(vector: u64) {
        let esr: u64;
        // SAFETY: reading the syndrome has no effect on memory.
        unsafe { asm!("mrs {esr}, esr_el1", esr = out(reg) esr, options(nomem, nostack)) };
        ATTACKER_EXCEPTIONS[(esr >> 26) as usize & 0x3f].fetch_add(1, Ordering::Relaxed);
        if vector.is_multiple_of(4) {
            // SAFETY: moves the return address past the 4-byte instruction that trapped;
            // no memory is touched.
            unsafe {
                asm!("mrs {elr}, elr_el1", "add {elr}, {elr}, #4", "msr elr_el1, {elr}", elr = out(reg) _,
                    options(nomem, nostack))
            };
        }
    }

    /// Bytes of the command queue buffer: 16 pages, the most a round uses.
    const QUEUE_BYTES: usize = 16 * 4096;

    /// The command queue, and the buffer that GITS_BASERn point at when they point home.
    #[repr(C, align(65536))]
    struct Buffers {
        queue: [u8; QUEUE_BYTES],
        tables: [u8; QUEUE_BYTES],
    }

    static mut BUFFERS: Buffers = Buffers { queue: [0; QUEUE_BYTES], tables: [0; QUEUE_BYTES] };

    /// Counts of what the flood did.
    #[derive(Default)]
    struct Tally {
        commands: u64,
        register_writes: u64,
        accesses: u64,
        sgis: u64,
        sysregs: u64,
        calls: u64,
        victim_reads_nonzero: u64,
        /// Milliseconds spent in each phase: ITS queues, MMIO, system registers, calls.
        phase_ms: [u64; 4],
    }

    /// Performs one MMIO access; returns the value read (0 for a write).
    fn access(access: Access) -> u64 {
        let mut value: u64 = 0;
        // SAFETY: the flood's accesses touch device registers of this VM's own emulated
        // devices, guest-physical space nothing backs, or this VM's own RAM for reads
        // only (`wild_access` never writes RAM or the PL011's data and control
        // registers). Whatever a device does, the hypervisor answers with a value or an
        // abort, which the vectors skip, leaving `value` as it was.
        unsafe {
            match access {
                Access::Read { address, width: Width::Byte } => {
                    asm!("ldrb {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack))
                }
                Access::Read { address, width: Width::Halfword } => {
                    asm!("ldrh {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack))
                }
                Access::Read { address, width: Width::Word } => {
                    asm!("ldr {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack))
                }
                Access::Read { address, width: Width::Doubleword } => {
                    asm!("ldr {v}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack))
                }
                Access::Write { address, width: Width::Byte, value: stored } => {
                    asm!("strb {v:w}, [{a}]", a = in(reg) address, v = in(reg) stored, options(nostack))
                }
                Access::Write { address, width: Width::Halfword, value: stored } => {
                    asm!("strh {v:w}, [{a}]", a = in(reg) address, v = in(reg) stored, options(nostack))
                }
                Access::Write { address, width: Width::Word, value: stored } => {
                    asm!("str {v:w}, [{a}]", a = in(reg) address, v = in(reg) stored, options(nostack))
                }
                Access::Write { address, width: Width::Doubleword, value: stored } => {
                    asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) stored, options(nostack))
                }
                Access::ReadPair { address } => {
                    let mut high: u64 = 0;
                    asm!(
                        "ldp {v}, {h}, [{a}]",
                        a = in(reg) address,
                        v = inout(reg) value,
                        h = inout(reg) high,
                        options(nostack)
                    );
                    value |= high;
                }
                Access::WritePair { address, value: stored } => {
                    asm!("stp {v}, {v}, [{a}]", a = in(reg) address, v = in(reg) stored, options(nostack))
                }
            }
        }
        value
    }

    /// Writes a GITS register.
    fn gits_write(offset: u64, width: Width, value: u64) {
        access(Access::Write { address: layout::GITS + offset, width, value });
    }

    /// Reads a GITS register.
    fn gits_read(offset: u64, width: Width) -> u64 {
        access(Access::Read { address: layout::GITS + offset, width })
    }

    /// GICR_PROPBASER (RD_base frame offset).
    const GICR_PROPBASER: u64 = 0x70;
    /// GICR_PENDBASER (RD_base frame offset).
    const GICR_PENDBASER: u64 = 0x78;
    /// GICR_CTLR.EnableLPIs.
    const GICR_CTLR_ENABLE_LPIS: u64 = 1;

    /// One batch of commands: a new queue (often outside RAM), tables anywhere, garbage
    /// commands, CWRITER moved wildly.
    fn its_round(rng: &mut Rng, tally: &mut Tally) {
        // `Buffers` is repr(C): the queue first, the tables after it.
        let queue = (&raw const BUFFERS).addr() as u64;
        let tables = queue + QUEUE_BYTES as u64;
        // Mostly full queues: the commands are what costs the server, not the traps.
        let pages = (QUEUE_BYTES / 4096) as u64 - rng.below(4);
        let queue_bytes = pages * 4096;
        gits_write(gits::CTLR, Width::Word, 0);
        let base = table_address(rng, queue);
        let size = if base == queue { pages } else { 1 + rng.below(256) };
        gits_write(gits::CBASER, Width::Doubleword, cbaser(base, size));
        for baser in 0..8 {
            let value =
                1 << 63 | (rng.next_u64() & 1 << 62) | table_address(rng, tables) | (rng.next_u64() & 0x3ff);
            gits_write(gits::BASER + 8 * baser, Width::Doubleword, value);
        }
        // LPIs on, with property and pending tables often outside RAM: the vgic-server
        // reads them when commands map LPIs and make them pending. (Once EnableLPIs is
        // set, the redistributor ignores new table addresses, as the architecture allows.)
        let propbaser = table_address(rng, tables) | rng.below(32);
        access(Access::Write {
            address: layout::GICR + GICR_PROPBASER,
            width: Width::Doubleword,
            value: propbaser,
        });
        let pendbaser = table_address(rng, tables);
        access(Access::Write {
            address: layout::GICR + GICR_PENDBASER,
            width: Width::Doubleword,
            value: pendbaser,
        });
        access(Access::Write { address: layout::GICR, width: Width::Word, value: GICR_CTLR_ENABLE_LPIS });
        access(Access::Write { address: layout::GICD, width: Width::Word, value: rng.below(0x100) });
        gits_write(gits::CTLR, Width::Word, gits::ENABLED);
        if base == queue {
            for command in 0..queue_bytes / COMMAND_BYTES {
                for (index, word) in its_command(rng).into_iter().enumerate() {
                    let address = queue + command * COMMAND_BYTES + 8 * index as u64;
                    // SAFETY: `address` lies in BUFFERS.queue (`command` < the pages in
                    // use, at most QUEUE_BYTES), which only this code writes, and the
                    // its-server only reads.
                    unsafe { core::ptr::write_volatile(address as *mut u64, word) };
                }
                tally.commands += 1;
            }
        }
        for _ in 0..8 {
            gits_write(gits::CWRITER, Width::Doubleword, cwriter(rng, queue_bytes));
            gits_read(gits::CREADR, Width::Doubleword);
        }
    }

    /// Writes `value` to the system register of encoding `name` (an `msr` operand).
    macro_rules! write_sysreg {
        ($name:literal, $value:expr) => {
            // SAFETY: every register written here traps to the hypervisor (ICC_SGI*R_EL1
            // with HCR_EL2.IMO/FMO; PMU and debug registers with MDCR_EL2.TPM/TDA/TDOSA),
            // which emulates it or injects an undefined instruction that the vectors skip;
            // none changes this program's memory or control flow.
            unsafe { asm!(concat!("msr ", $name, ", {v}"), v = in(reg) $value, options(nostack)) }
        };
    }

    /// Trapped system-register writes of random values.
    fn sysreg_round(rng: &mut Rng, tally: &mut Tally) {
        for _ in 0..16 {
            let value = sgi_value(rng);
            match rng.below(3) {
                0 => write_sysreg!("s3_0_c12_c11_5", value), // ICC_SGI1R_EL1
                1 => write_sysreg!("s3_0_c12_c11_6", value), // ICC_ASGI1R_EL1
                _ => write_sysreg!("s3_0_c12_c11_7", value), // ICC_SGI0R_EL1
            }
            tally.sgis += 1;
        }
        for _ in 0..16 {
            let value = rng.hostile_value();
            match rng.below(10) {
                0 => write_sysreg!("s3_3_c9_c12_0", value),  // PMCR_EL0
                1 => write_sysreg!("s3_3_c9_c12_1", value),  // PMCNTENSET_EL0
                2 => write_sysreg!("s3_3_c9_c12_5", value),  // PMSELR_EL0
                3 => write_sysreg!("s3_3_c14_c15_7", value), // PMCCFILTR_EL0
                4 => write_sysreg!("s3_3_c9_c14_0", value),  // PMUSERENR_EL0
                5 => write_sysreg!("s2_0_c0_c2_2", value),   // MDSCR_EL1
                6 => write_sysreg!("s2_0_c0_c0_4", value),   // DBGBVR0_EL1
                7 => write_sysreg!("s2_0_c0_c0_5", value),   // DBGBCR0_EL1
                8 => write_sysreg!("s2_0_c1_c0_4", value),   // OSLAR_EL1
                _ => write_sysreg!("s2_0_c1_c3_4", value),   // OSDLR_EL1
            }
            tally.sysregs += 1;
        }
    }

    /// Random MMIO everywhere; counts reads of the victim's range that were not zero.
    fn mmio_round(rng: &mut Rng, tally: &mut Tally) {
        for _ in 0..64 {
            let (offset, width, value) = its_register_write(rng);
            gits_write(offset, width, value);
            tally.register_writes += 1;
        }
        for _ in 0..192 {
            let wild = wild_access(rng);
            let value = access(wild);
            if !wild.writes() && layout::VICTIM_RAM.contains(&wild.address()) && value != 0 {
                tally.victim_reads_nonzero += 1;
            }
            tally.accesses += 1;
        }
    }

    /// Hypervisor calls with random function IDs and arguments (HVC and SMC).
    fn call_round(rng: &mut Rng, tally: &mut Tally) {
        for _ in 0..8 {
            let function = call_function(rng);
            let args = [rng.hostile_value(), rng.hostile_value(), rng.hostile_value()];
            if rng.one_in(2) {
                hvc(function, &args);
            } else {
                guest_rt::smc(function, &args);
            }
            tally.calls += 1;
        }
    }

    /// Virtual time in milliseconds.
    fn now_ms() -> u64 {
        let (count, frequency): (u64, u64);
        // SAFETY: reading the virtual counter and its frequency has no side effects.
        unsafe {
            asm!("isb", "mrs {c}, cntvct_el0", "mrs {f}, cntfrq_el0", c = out(reg) count, f = out(reg) frequency,
                options(nostack));
        }
        count / (frequency / 1000).max(1)
    }

    /// ArchRev (bits [7:4]) of the PIDR2 register of the frame at `frame`.
    fn architecture_revision(frame: u64) -> u32 {
        // SAFETY: PIDR2 is a read-only ID register of each GIC frame.
        unsafe { mmio::read32(frame + 0xffe8) >> 4 & 0xf }
    }

    /// Whether the attacker's own servers still answer as a GICv3 and a PSCI 1.x VMM.
    fn servers_answer() -> Result<(), &'static str> {
        let before = total_exceptions();
        if architecture_revision(layout::GICD) != 3 {
            return Err("GICD_PIDR2 is not GICv3's");
        }
        if architecture_revision(layout::GICR) != 3 {
            return Err("GICR_PIDR2 is not GICv3's");
        }
        if architecture_revision(layout::GITS) != 3 {
            return Err("GITS_PIDR2 is not GICv3's");
        }
        if gits_read(gits::TYPER, Width::Doubleword) & 1 == 0 {
            return Err("GITS_TYPER.Physical is clear");
        }
        if hvc(0x8400_0000, &[]) >> 16 != 1 {
            return Err("PSCI_VERSION is not 1.x");
        }
        if total_exceptions() != before {
            return Err("a check took an exception");
        }
        Ok(())
    }

    fn total_exceptions() -> u64 {
        ATTACKER_EXCEPTIONS.iter().map(|count| count.load(Ordering::Relaxed)).sum()
    }

    /// Floods, checks, reports, and stops its vCPU.
    pub(crate) extern "C" fn main() -> ! {
        // SAFETY: masks this vCPU's interrupts (the flood makes some pending); no memory is
        // touched.
        unsafe { asm!("msr daifset, #0xf", options(nomem, nostack)) };
        guest_rt::vectors::install();
        println!("attacker: flooding with seed {SEED:#x}: at most {ROUNDS} rounds in {BUDGET_MS} ms");
        let mut flood = Flood { rng: Rng::new(SEED), tally: Tally::default(), start: now_ms(), rounds: 0 };
        flood.run_until(REPORT_AFTER_ROUNDS);
        flood.report();
        flood.run_until(ROUNDS);
        flood.report();
        stop()
    }

    /// The flood's state.
    struct Flood {
        rng: Rng,
        tally: Tally,
        /// Virtual time at its start, in milliseconds.
        start: u64,
        rounds: u32,
    }

    impl Flood {
        /// Runs rounds until `rounds` are done or the time budget is spent.
        fn run_until(&mut self, rounds: u32) {
            let phases: [fn(&mut Rng, &mut Tally); 4] = [its_round, mmio_round, sysreg_round, call_round];
            while self.rounds < rounds && now_ms() - self.start < BUDGET_MS {
                for (index, phase) in phases.iter().enumerate() {
                    let phase_start = now_ms();
                    phase(&mut self.rng, &mut self.tally);
                    self.tally.phase_ms[index] += now_ms() - phase_start;
                }
                self.rounds += 1;
            }
        }

        /// Prints what the flood did so far, checks that the attacker's servers answer and
        /// that the victim's range read as zero, and reports the verdict to the VMM.
        fn report(&self) {
            let Self { tally, rounds, .. } = self;
            let elapsed = now_ms() - self.start;
            let count = |class: u64| ATTACKER_EXCEPTIONS[class as usize].load(Ordering::Relaxed);
            println!(
                "attacker: {rounds} rounds in {elapsed} ms: {} commands, {} GITS register writes, {} MMIO \
                 accesses, {} SGI writes, {} system-register writes, {} calls",
                tally.commands, tally.register_writes, tally.accesses, tally.sgis, tally.sysregs, tally.calls
            );
            let [its_ms, mmio_ms, sysreg_ms, call_ms] = tally.phase_ms;
            println!(
                "attacker: time in ITS queues {its_ms} ms, MMIO {mmio_ms} ms, system registers {sysreg_ms} ms, \
                 calls {call_ms} ms"
            );
            println!(
                "attacker: exceptions taken: {} data aborts, {} undefined instructions, {} in all",
                count(exception_class::DATA_ABORT),
                count(exception_class::UNKNOWN),
                total_exceptions()
            );
            let verdict = if tally.victim_reads_nonzero != 0 {
                Err("a read of the victim's RAM range returned data")
            } else {
                servers_answer()
            };
            let status = match verdict {
                Ok(()) => {
                    println!("attacker: its servers answer and the victim's range reads as zero");
                    0
                }
                Err(problem) => {
                    println!("attacker: FAILED: {problem} (seed {SEED:#x})");
                    1
                }
            };
            // The VMM logs the report as one whole line, which the other VM's UART output
            // cannot cut (a guest's characters reach the console one by one).
            hvc(REPORT_STATUS, &[status]);
        }
    }

    /// PSCI CPU_OFF: the VMM stops this vCPU, the VM's only one, for good.
    fn stop() -> ! {
        hvc(0x8400_0002, &[]);
        guest_rt::wait_forever()
    }

    /// A panic is reported and stops the attacker; its closing line is then missing, which
    /// fails the run.
    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        println!("attacker: panic: {info}");
        stop()
    }
}
