//! The hardware side of vCPUs: HCR_EL2 per thread kind, the EL1 state a vCPU keeps in
//! the CPU while it is loaded, stage-2 and timer registers, and what a trap needs read.
//!
//! With VHE the guest's EL1 registers are untouched while the kernel and components
//! run, so they are switched lazily: a vCPU's [`El1Context`] is loaded when it runs on a
//! CPU where another vCPU (or none) was loaded, and saved when the next vCPU replaces
//! it there. A trap that goes to a server and back to the same vCPU switches nothing but
//! the general registers and the EL0 registers in [`kernel::UserContext`], plus HCR_EL2
//! (components run with TGE set, guests with it clear) and ICH_HCR_EL2.En, which is clear
//! whenever the guest does not run (the maintenance conditions it enables are levels that
//! would otherwise keep interrupt 25 asserted while servers run).
//!
//! EL1 registers are reached from EL2 through their `*_EL12`/`*_EL02` encodings (the
//! assembler does not know those names for a v8.0 target, hence the `S3_5_...` forms).

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};
use ipc::vcpu::{GicSnapshot, HCR_NPIE, HCR_UIE, LIST_REGISTERS, LrWrite};
use kernel::guest::{El1Entry, TimerState, WakeState};

/// HCR_EL2 while a component runs: E2H (VHE), RW, TGE (EL0 in the EL2&0 regime), and VM,
/// which TGE makes behave as 0 for everything but a read of HCR_EL2. VM stays set so that
/// switching between a component and a guest never changes it: QEMU flushes a CPU's whole
/// TLB when HCR_EL2.VM changes, and the guest would then refill its two-stage
/// translations after every exit to a server (measured on Linux's boot to its shell under
/// `-icount`: QEMU's CPU time fell from 7-8 s to 4-5.5 s, 3.7 s natively).
pub const HCR_COMPONENT: u64 = HCR_E2H | HCR_RW | 1 << 27 | 1;

/// HCR_EL2 while a guest runs: E2H and RW (EL1 is AArch64), TGE clear; stage 2 on (VM);
/// set/way cache maintenance as clean+invalidate (SWIO); physical FIQ, IRQ and SError to
/// EL2 (FMO, IMO, AMO: which also routes the guest's ICC_* accesses to the virtual CPU
/// interface and traps its SGI writes); SMC, WFI and WFE trap (TSC, TWI, TWE); pointer
/// authentication neither trapped (API) nor its keys (APK).
pub const HCR_GUEST: u64 = HCR_E2H
    | HCR_RW
    | 1 // VM
    | 1 << 1 // SWIO
    | 1 << 3 // FMO
    | 1 << 4 // IMO
    | 1 << 5 // AMO
    | 1 << 13 // TWI
    | 1 << 14 // TWE
    | 1 << 19 // TSC
    | 1 << 40 // APK
    | 1 << 41; // API

const HCR_E2H: u64 = 1 << 34;
const HCR_RW: u64 = 1 << 31;

/// ICH_HCR_EL2.En: the virtual CPU interface is on.
const ICH_HCR_EN: u64 = 1;

/// SCTLR_EL1 out of reset: MMU, caches and alignment checks off; only the bits that are
/// RES1 before later architecture versions gave them meanings (LSMAOE, nTLSMD, SPAN, EIS,
/// TSCXT, EOS) set, as Linux expects of a CPU it boots on.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// The EL1 system registers of a vCPU, in the order `el1_save`/`el1_restore` walk them.
macro_rules! el1_registers {
    () => {
        "S3_5_C1_C0_0, S3_5_C1_C0_2, S3_5_C2_C0_0, S3_5_C2_C0_1, S3_5_C2_C0_2, S3_5_C5_C2_0, \
         S3_5_C5_C1_0, S3_5_C5_C1_1, S3_5_C6_C0_0, S3_5_C10_C2_0, S3_5_C10_C3_0, S3_5_C12_C0_0, \
         S3_5_C13_C0_1, S3_5_C14_C1_0, S3_5_C4_C0_1, S3_5_C4_C0_0, tpidr_el1, sp_el1, par_el1, \
         csselr_el1, S3_5_C14_C3_2, S3_5_C14_C3_1, S3_5_C14_C2_2, S3_5_C14_C2_1, S3_0_C2_C1_0, \
         S3_0_C2_C1_1, S3_0_C2_C1_2, S3_0_C2_C1_3, S3_0_C2_C2_0, S3_0_C2_C2_1, S3_0_C2_C2_2, \
         S3_0_C2_C2_3, S3_0_C2_C3_0, S3_0_C2_C3_1, S3_4_C12_C11_7, S3_4_C12_C8_0, S3_4_C12_C9_0, \
         S3_4_C12_C12_0, S3_4_C12_C12_1, S3_4_C12_C12_2, S3_4_C12_C12_3, S3_3_C4_C4_0, \
         S3_3_C4_C4_1"
    };
}

/// Names of [`el1_registers!`], for documentation and the count below: SCTLR, CPACR,
/// TTBR0, TTBR1, TCR, ESR, AFSR0, AFSR1, FAR, MAIR, AMAIR, VBAR, CONTEXTIDR, CNTKCTL,
/// ELR, SPSR (all `_EL12`), TPIDR_EL1, SP_EL1, PAR_EL1, CSSELR_EL1, CNTV_CVAL, CNTV_CTL,
/// CNTP_CVAL, CNTP_CTL (`_EL02`; compare values before controls so a restored timer
/// never fires on a stale deadline), the five pointer-authentication key pairs
/// (APIA, APIB, APDA, APDB, APGA, low then high), ICH_VMCR_EL2, ICH_AP0R0_EL2,
/// ICH_AP1R0_EL2, ICH_LR0..3_EL2 (QEMU implements 4 list registers and 5 priority bits,
/// so one active-priority register per group), FPCR, FPSR.
const EL1_REGISTERS: usize = count_items(el1_registers!());

/// Index of SCTLR_EL1 in [`El1Context::registers`].
const SCTLR: usize = 0;
/// Indices of CNTV_CVAL, CNTV_CTL, CNTP_CVAL and CNTP_CTL in [`El1Context::registers`].
const CNTV_CVAL: usize = 20;
const CNTV_CTL: usize = 21;
const CNTP_CVAL: usize = 22;
const CNTP_CTL: usize = 23;
/// Indices of ICH_VMCR_EL2, ICH_AP0R0_EL2, ICH_AP1R0_EL2 and ICH_LR0_EL2 (the other
/// list registers follow it) in [`El1Context::registers`].
const ICH_VMCR: usize = 34;
const ICH_AP0R0: usize = 35;
const ICH_AP1R0: usize = 36;
const ICH_LR0: usize = 37;
const _: () = assert!(EL1_REGISTERS == ICH_LR0 + LIST_REGISTERS + 2, "the indices above follow the list");

/// Number of comma-separated items in `list`.
const fn count_items(list: &str) -> usize {
    let bytes = list.as_bytes();
    let mut count = 1;
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b',' {
            count += 1;
        }
        index += 1;
    }
    count
}

/// The EL1, FP/SIMD, timer and GIC virtual-interface state of a vCPU that is not loaded.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct El1Context {
    /// Q0..Q31 (the assembly stores pairs at the start of the structure).
    fp: [u128; 32],
    /// The system registers of [`el1_registers!`], in order.
    registers: [u64; EL1_REGISTERS],
    /// ICH_HCR_EL2 while the guest runs, En included (the kernel clears the register
    /// whenever the guest does not run; keeping En here spares the resume an OR).
    ich_hcr: u64,
}

impl El1Context {
    /// The architected state a vCPU starts in: MMU off, every other register zero (FP
    /// traps at EL1 until the guest enables it in CPACR_EL1, timers off, no interrupts
    /// in the list registers).
    pub const RESET: Self = {
        let mut registers = [0; EL1_REGISTERS];
        registers[SCTLR] = SCTLR_EL1_RESET;
        Self { fp: [0; 32], registers, ich_hcr: ICH_HCR_EN }
    };

    /// The saved virtual CPU interface state, with the timer lines at physical counter
    /// value `now` for a VM whose virtual counter runs `cntvoff` behind it.
    pub fn gic_snapshot(&self, now: u64, cntvoff: u64) -> GicSnapshot {
        let registers = &self.registers;
        let mut lrs = [0; LIST_REGISTERS];
        lrs.copy_from_slice(&registers[ICH_LR0..ICH_LR0 + LIST_REGISTERS]);
        let state = WakeState {
            now,
            virtual_timer: TimerState { ctl: registers[CNTV_CTL], cval: registers[CNTV_CVAL] },
            physical_timer: TimerState { ctl: registers[CNTP_CTL], cval: registers[CNTP_CVAL] },
            cntvoff,
            interface: GicSnapshot {
                lrs,
                vmcr: registers[ICH_VMCR],
                ap0r0: registers[ICH_AP0R0],
                ap1r0: registers[ICH_AP1R0],
                hardware_lines: 0,
            },
            reported_lines: 0,
        };
        state.snapshot()
    }

    /// Replaces the saved list registers and ICH_HCR_EL2 UIE/NPIE bits.
    pub fn write_lrs(&mut self, write: &LrWrite) {
        self.registers[ICH_LR0..ICH_LR0 + LIST_REGISTERS].copy_from_slice(&write.lrs);
        self.ich_hcr = self.ich_hcr & !(HCR_UIE | HCR_NPIE) | write.hcr;
    }
}

global_asm!(
    concat!(
        r#"
    .arch_extension fp
    .arch_extension simd

    // x0: *mut El1Context. Saves the loaded vCPU's state; clobbers x1-x2.
    .global el1_save
el1_save:
    stp     q0, q1, [x0, #32 * 0]
    stp     q2, q3, [x0, #32 * 1]
    stp     q4, q5, [x0, #32 * 2]
    stp     q6, q7, [x0, #32 * 3]
    stp     q8, q9, [x0, #32 * 4]
    stp     q10, q11, [x0, #32 * 5]
    stp     q12, q13, [x0, #32 * 6]
    stp     q14, q15, [x0, #32 * 7]
    stp     q16, q17, [x0, #32 * 8]
    stp     q18, q19, [x0, #32 * 9]
    stp     q20, q21, [x0, #32 * 10]
    stp     q22, q23, [x0, #32 * 11]
    stp     q24, q25, [x0, #32 * 12]
    stp     q26, q27, [x0, #32 * 13]
    stp     q28, q29, [x0, #32 * 14]
    stp     q30, q31, [x0, #32 * 15]
    add     x2, x0, #{registers}
    .irp    register, "#,
        el1_registers!(),
        r#"
    mrs     x1, \register
    str     x1, [x2], #8
    .endr
    ret

    // x0: *const El1Context. Loads a vCPU's state; clobbers x1-x2.
    .global el1_restore
el1_restore:
    ldp     q0, q1, [x0, #32 * 0]
    ldp     q2, q3, [x0, #32 * 1]
    ldp     q4, q5, [x0, #32 * 2]
    ldp     q6, q7, [x0, #32 * 3]
    ldp     q8, q9, [x0, #32 * 4]
    ldp     q10, q11, [x0, #32 * 5]
    ldp     q12, q13, [x0, #32 * 6]
    ldp     q14, q15, [x0, #32 * 7]
    ldp     q16, q17, [x0, #32 * 8]
    ldp     q18, q19, [x0, #32 * 9]
    ldp     q20, q21, [x0, #32 * 10]
    ldp     q22, q23, [x0, #32 * 11]
    ldp     q24, q25, [x0, #32 * 12]
    ldp     q26, q27, [x0, #32 * 13]
    ldp     q28, q29, [x0, #32 * 14]
    ldp     q30, q31, [x0, #32 * 15]
    add     x2, x0, #{registers}
    .irp    register, "#,
        el1_registers!(),
        r#"
    ldr     x1, [x2], #8
    msr     \register, x1
    .endr
    ret

    .arch_extension nosimd
    .arch_extension nofp
    "#
    ),
    registers = const core::mem::offset_of!(El1Context, registers),
);

unsafe extern "C" {
    /// Stores the CPU's EL1, FP/SIMD, timer and list-register state into `context`.
    fn el1_save(context: *mut El1Context);
    /// Loads `context` into the CPU's EL1, FP/SIMD, timer and list registers.
    fn el1_restore(context: *const El1Context);
}

/// Where a vCPU's VM lives: the stage-2 table and the virtual counter offset.
#[derive(Clone, Copy, Debug, Default)]
pub struct VmRegisters {
    /// VTTBR_EL2: VMID << 48 | stage-2 root.
    pub vttbr: u64,
    /// CNTVOFF_EL2: the VM's virtual counter runs this far behind the physical one.
    pub cntvoff: u64,
}

/// Makes `context` the CPU's live EL1 state, with the VM's stage 2 and counter offset and
/// the vCPU's MPIDR.
pub fn load(context: &El1Context, vm: &VmRegisters, mpidr: u64) {
    // SAFETY: `el1_restore` only writes EL1 system registers, FP/SIMD registers and the
    // GIC virtual interface, which the kernel and components never use (soft-float, EL2
    // and EL0 regimes); it reads `context`, a valid reference, and clobbers x1-x2 (and
    // the link register through the call).
    unsafe {
        asm!(
            "bl {restore}",
            "msr vttbr_el2, {vttbr}",
            "msr cntvoff_el2, {cntvoff}",
            "msr vmpidr_el2, {mpidr}",
            restore = sym el1_restore,
            vttbr = in(reg) vm.vttbr,
            cntvoff = in(reg) vm.cntvoff,
            mpidr = in(reg) mpidr | 1 << 31,
            inout("x0") context as *const El1Context => _,
            out("x1") _,
            out("x2") _,
            out("x30") _,
            options(nostack, preserves_flags),
        );
    }
}

/// Loads `write`'s list registers into the CPU, where `context`'s vCPU is loaded, and its
/// UIE/NPIE into `context` (set in ICH_HCR_EL2 when the guest next runs).
pub fn load_lrs(context: &mut El1Context, write: &LrWrite) {
    let [lr0, lr1, lr2, lr3] = write.lrs;
    // SAFETY: writes the list registers of the vCPU loaded on this CPU, which only its
    // guest uses; the interface stays off (En clear) until the guest runs.
    unsafe {
        asm!(
            "msr S3_4_C12_C12_0, {lr0}",
            "msr S3_4_C12_C12_1, {lr1}",
            "msr S3_4_C12_C12_2, {lr2}",
            "msr S3_4_C12_C12_3, {lr3}",
            lr0 = in(reg) lr0,
            lr1 = in(reg) lr1,
            lr2 = in(reg) lr2,
            lr3 = in(reg) lr3,
            options(nostack, preserves_flags),
        );
    }
    context.ich_hcr = context.ich_hcr & !(HCR_UIE | HCR_NPIE) | write.hcr;
}

/// Turns the CPU's EL1 timers off after their vCPU's state was saved, so that their
/// lines drop while no vCPU (or another one, which loads its own) holds them.
pub fn park_timers() {
    // SAFETY: writes CNTV_CTL_EL02 and CNTP_CTL_EL02 of a vCPU whose state is saved;
    // the next vCPU loaded on this CPU restores its own.
    unsafe {
        asm!("msr S3_5_C14_C3_1, xzr", "msr S3_5_C14_C2_1, xzr", options(nostack, preserves_flags));
    }
}

/// ICH_MISR_EL2: the maintenance conditions that hold for the running guest (read before
/// [`disable_virtual_interface`], which ends them).
#[inline(always)]
pub fn maintenance_status() -> u64 {
    let misr: u64;
    // SAFETY: reads a status register of the virtual CPU interface.
    unsafe {
        asm!("mrs {misr}, S3_4_C12_C11_2", misr = out(reg) misr, options(nomem, nostack, preserves_flags))
    };
    misr
}

/// Saves the CPU's live EL1 state into `context`.
pub fn save(context: &mut El1Context) {
    // SAFETY: `el1_save` only reads registers and writes `context`, a valid exclusive
    // reference; it clobbers x1-x2 (and the link register through the call).
    unsafe {
        asm!(
            "bl {save}",
            save = sym el1_save,
            inout("x0") context as *mut El1Context => _,
            out("x1") _,
            out("x2") _,
            out("x30") _,
            options(nostack, preserves_flags),
        );
    }
}

/// ID_AA64MMFR0_EL1.PARange: the CPU's physical address size (0b0101: 48 bits).
pub fn pa_range() -> u64 {
    let mmfr0: u64;
    // SAFETY: reads an identification register.
    unsafe {
        asm!(
            "mrs {mmfr0}, id_aa64mmfr0_el1",
            mmfr0 = out(reg) mmfr0,
            options(nomem, nostack, preserves_flags),
        )
    };
    mmfr0 & 0xf
}

/// This CPU's side of guests, once at start: VTCR_EL2 (with PS the CPU's physical
/// address size, at most 48 bits), VPIDR_EL2 = MIDR_EL1, and no stale EL1&0 TLB entries
/// of any VMID.
pub fn init_cpu() {
    let vtcr = kernel::pagetable::VTCR | pa_range().min(0b0101) << kernel::pagetable::VTCR_PS_SHIFT;
    // SAFETY: configures stage-2 translation (unused until a guest runs with HCR_EL2.VM)
    // and the MIDR guests read; invalidates TLB entries of the EL1&0 regime, which the
    // kernel does not use.
    unsafe {
        asm!(
            "msr vtcr_el2, {vtcr}",
            "mrs {midr}, midr_el1",
            "msr vpidr_el2, {midr}",
            "tlbi alle1",
            "dsb nsh",
            "isb",
            vtcr = in(reg) vtcr,
            midr = out(reg) _,
            options(nostack, preserves_flags),
        );
    }
}

/// Switches HCR_EL2 between component and guest settings; remembers the mode per CPU
/// so that a switch between threads of the same kind writes nothing.
pub struct Mode(AtomicBool);

impl Mode {
    /// Components (HCR_EL2 as the boot code sets it).
    pub const fn component() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Whether a guest runs (or last ran) on this CPU: exceptions from a lower EL are
    /// the guest's.
    #[inline(always)]
    pub fn is_guest(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets HCR_EL2 for a guest (`guest`) or a component, unless it is set already. No
    /// barrier: the exception return that enters the thread synchronizes the change.
    #[inline(always)]
    pub fn enter(&self, guest: bool) {
        if self.is_guest() != guest {
            self.0.store(guest, Ordering::Relaxed);
            let hcr = if guest { HCR_GUEST } else { HCR_COMPONENT };
            // SAFETY: switches the lower EL between the EL2&0 regime for components and
            // the EL1&0 regime with stage 2 for guests; the kernel's own EL2 translation
            // does not depend on it.
            unsafe { asm!("msr hcr_el2, {hcr}", hcr = in(reg) hcr, options(nostack, preserves_flags)) };
        }
    }

    /// Sets HCR_EL2 for a component on a CPU where a guest ran (the caller knows): what
    /// [`Mode::enter`] does then, without its test.
    #[inline(always)]
    pub fn leave_guest(&self) {
        debug_assert!(self.is_guest());
        self.0.store(false, Ordering::Relaxed);
        // SAFETY: as in `enter`: components run in the EL2&0 regime.
        unsafe { write_hcr::<HCR_COMPONENT>() };
    }

    /// Sets HCR_EL2 for a guest on a CPU where a component ran (the caller knows): what
    /// [`Mode::enter`] does then, without its test.
    #[inline(always)]
    pub fn leave_component(&self) {
        debug_assert!(!self.is_guest());
        self.0.store(true, Ordering::Relaxed);
        // SAFETY: as in `enter`: guests run in the EL1&0 regime with stage 2.
        unsafe { write_hcr::<HCR_GUEST>() };
    }
}

/// Writes `HCR` to HCR_EL2, loaded from a literal (one load where building the constant
/// takes three moves: this is on both legs of every forwarded guest access).
///
/// # Safety
///
/// As for any HCR_EL2 write: the next return to a lower EL must suit `HCR`.
#[inline(always)]
unsafe fn write_hcr<const HCR: u64>() {
    // SAFETY: the caller vouches for the value; the literal is in the kernel's text.
    unsafe {
        asm!(
            "ldr {value}, ={hcr}",
            "msr hcr_el2, {value}",
            hcr = const HCR,
            value = out(reg) _,
            options(nostack, preserves_flags),
        )
    };
}

/// Turns the virtual CPU interface on with the vCPU's ICH_HCR_EL2 settings, just before
/// the guest runs.
#[inline(always)]
pub fn enable_virtual_interface(context: &El1Context) {
    // SAFETY: the list registers and settings loaded belong to the vCPU about to run.
    unsafe {
        asm!(
            "msr S3_4_C12_C11_0, {hcr}",
            hcr = in(reg) context.ich_hcr,
            options(nostack, preserves_flags),
        )
    };
}

/// Turns the virtual CPU interface off on a guest exit.
#[inline(always)]
pub fn disable_virtual_interface() {
    // SAFETY: stops virtual interrupt signalling and maintenance interrupts until the
    // guest runs again; the list registers keep their contents.
    unsafe { asm!("msr S3_4_C12_C11_0, xzr", options(nostack, preserves_flags)) };
}

/// Makes the loaded guest take the exception `entry` describes (computed from
/// [`vector_state`]): the EL1 syndrome registers now, the new PC and PSTATE through the
/// caller's context.
pub fn write_exception_registers(entry: &El1Entry) {
    // SAFETY: writes the loaded vCPU's EL1 exception registers, which only the guest uses.
    unsafe {
        asm!(
            "msr S3_5_C5_C2_0, {esr}",
            "msr S3_5_C4_C0_1, {elr}",
            "msr S3_5_C4_C0_0, {spsr}",
            esr = in(reg) entry.esr,
            elr = in(reg) entry.elr,
            spsr = in(reg) entry.spsr,
            options(nostack, preserves_flags),
        );
        if let Some(far) = entry.far {
            asm!("msr S3_5_C6_C0_0, {far}", far = in(reg) far, options(nostack, preserves_flags));
        }
    }
}

/// VBAR_EL1 and SCTLR_EL1 of the loaded guest: where and how it takes exceptions.
pub fn vector_state() -> (u64, u64) {
    let (vbar, sctlr): (u64, u64);
    // SAFETY: reads two of the loaded vCPU's EL1 registers.
    unsafe {
        asm!(
            "mrs {vbar}, S3_5_C12_C0_0",
            "mrs {sctlr}, S3_5_C1_C0_0",
            vbar = out(reg) vbar,
            sctlr = out(reg) sctlr,
            options(nomem, nostack, preserves_flags),
        );
    }
    (vbar, sctlr)
}

/// What could end a WFI of the loaded guest: its timers and virtual CPU interface, now;
/// `reported_lines` are the timer lines whose PPIs the kernel holds active here. A timer
/// whose ISTATUS lags its condition is made to catch up first (`catch_up_timers`).
pub fn wake_state(reported_lines: u64) -> WakeState {
    let (now, cntvoff, vctl, vcval, pctl, pcval): (u64, u64, u64, u64, u64, u64);
    let (lr0, lr1, lr2, lr3, vmcr, ap0r0, ap1r0): (u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: reads the physical counter and the loaded vCPU's timer and virtual CPU
    // interface registers.
    unsafe {
        asm!(
            "isb",
            "mrs {now}, cntpct_el0",
            "mrs {cntvoff}, cntvoff_el2",
            "mrs {vctl}, S3_5_C14_C3_1",
            "mrs {vcval}, S3_5_C14_C3_2",
            "mrs {pctl}, S3_5_C14_C2_1",
            "mrs {pcval}, S3_5_C14_C2_2",
            now = out(reg) now,
            cntvoff = out(reg) cntvoff,
            vctl = out(reg) vctl,
            vcval = out(reg) vcval,
            pctl = out(reg) pctl,
            pcval = out(reg) pcval,
            options(nomem, nostack, preserves_flags),
        );
        asm!(
            "mrs {lr0}, S3_4_C12_C12_0",
            "mrs {lr1}, S3_4_C12_C12_1",
            "mrs {lr2}, S3_4_C12_C12_2",
            "mrs {lr3}, S3_4_C12_C12_3",
            "mrs {vmcr}, S3_4_C12_C11_7",
            "mrs {ap0r0}, S3_4_C12_C8_0",
            "mrs {ap1r0}, S3_4_C12_C9_0",
            lr0 = out(reg) lr0,
            lr1 = out(reg) lr1,
            lr2 = out(reg) lr2,
            lr3 = out(reg) lr3,
            vmcr = out(reg) vmcr,
            ap0r0 = out(reg) ap0r0,
            ap1r0 = out(reg) ap1r0,
            options(nomem, nostack, preserves_flags),
        );
    }
    let state = WakeState {
        now,
        virtual_timer: TimerState { ctl: vctl, cval: vcval },
        physical_timer: TimerState { ctl: pctl, cval: pcval },
        cntvoff,
        interface: GicSnapshot { lrs: [lr0, lr1, lr2, lr3], vmcr, ap0r0, ap1r0, hardware_lines: 0 },
        reported_lines,
    };
    let lagging = state.lagging_timers();
    if lagging != 0 {
        catch_up_timers(&state, lagging);
    }
    state
}

/// Makes the timer model recompute the status of the loaded vCPU's timers in `lagging`
/// (as [`WakeState::lagging_timers`] finds them) before the kernel reports their lines
/// from the counter: each compare value is written back unchanged, which recomputes
/// ISTATUS and the line in QEMU and changes nothing on hardware, where both are live.
#[cold]
fn catch_up_timers(state: &WakeState, lagging: u64) {
    // SAFETY: writes the loaded vCPU's timer compare values with the values they hold.
    unsafe {
        if lagging & ipc::vcpu::LINE_VIRTUAL_TIMER != 0 {
            asm!("msr S3_5_C14_C3_2, {cval}", cval = in(reg) state.virtual_timer.cval, options(nostack, preserves_flags));
        }
        if lagging & ipc::vcpu::LINE_PHYSICAL_TIMER != 0 {
            asm!("msr S3_5_C14_C2_2, {cval}", cval = in(reg) state.physical_timer.cval, options(nostack, preserves_flags));
        }
    }
}
