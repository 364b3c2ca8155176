//! Guest exits and exceptions, as pure functions of register values: decoding the
//! ESR_EL2 syndrome of a vCPU's trap, writing a load's result back with the width and
//! extension the instruction asked for, the EL1 state an injected exception leaves, when
//! a vCPU waiting in WFI must wake (what its virtual CPU interface signals), and when the
//! kernel deactivates a physical timer PPI it held for a guest. The shell reads and writes the registers; the
//! core (`objects::vcpu`) decides what happens.
//!
//! References: Arm ARM D17.2.37 (ESR_EL2 and its ISS encodings), D1.10 (exception entry),
//! D11.2 (the generic timer's conditions); Arm IHI 0069 (GICv3) 12.4 for the virtual CPU
//! interface registers.

use ipc::vcpu::GicSnapshot;

/// The syndrome registers of one trap from a guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trap {
    /// ESR_EL2.
    pub esr: u64,
    /// FAR_EL2 (the guest virtual address of an abort).
    pub far: u64,
    /// HPFAR_EL2 (the faulting IPA's page of a stage-2 abort).
    pub hpfar: u64,
}

/// Exception classes (ESR_ELx.EC) that guests cause or the kernel injects.
pub mod ec {
    /// Unknown reason: what an undefined instruction reports.
    pub const UNKNOWN: u64 = 0x00;
    /// WFI or WFE (trapped by HCR_EL2.TWI/TWE).
    pub const WFX: u64 = 0x01;
    /// HVC from AArch64.
    pub const HVC64: u64 = 0x16;
    /// SMC from AArch64 (trapped by HCR_EL2.TSC).
    pub const SMC64: u64 = 0x17;
    /// MSR, MRS or a system instruction from AArch64.
    pub const SYSREG: u64 = 0x18;
    /// Instruction abort from a lower exception level.
    pub const INSTRUCTION_ABORT_LOWER: u64 = 0x20;
    /// Instruction abort at the same exception level.
    pub const INSTRUCTION_ABORT_SAME: u64 = 0x21;
    /// Data abort from a lower exception level.
    pub const DATA_ABORT_LOWER: u64 = 0x24;
    /// Data abort at the same exception level.
    pub const DATA_ABORT_SAME: u64 = 0x25;
    /// SError (an asynchronous external abort), taken to EL2 by HCR_EL2.AMO.
    pub const SERROR: u64 = 0x2f;
}

/// ESR IL: the trapped instruction is 32 bits long (RES1 for most classes).
const ESR_IL: u64 = 1 << 25;
/// Data abort ISS: the syndrome fields below are valid.
const ISS_ISV: u64 = 1 << 24;
/// Data abort ISS: the load sign-extends.
const ISS_SSE: u64 = 1 << 21;
/// Data abort ISS: the register is 64 bits wide (Xt rather than Wt).
const ISS_SF: u64 = 1 << 15;
/// Data abort ISS: a cache maintenance instruction (or address translation) faulted.
const ISS_CM: u64 = 1 << 8;
/// Abort ISS: the fault happened on a stage-1 table walk.
const ISS_S1PTW: u64 = 1 << 7;
/// Data abort ISS: a write.
const ISS_WNR: u64 = 1 << 6;
/// Abort ISS: the fault status code.
const ISS_FSC: u64 = 0x3f;
/// Fault status codes up to this one are address-size (0..=3) and translation faults
/// (4..=7) at some level: the IPA is simply not mapped.
const FSC_LAST_TRANSLATION: u64 = 0x07;
/// Fault status code of a synchronous external abort (not on a table walk).
const FSC_EXTERNAL_ABORT: u64 = 0x10;
/// WFx ISS: TI bit 0 set for WFE (and WFET), clear for WFI (and WFIT).
const ISS_WFX_WFE: u64 = 1;

/// ESR_EL2.EC of `esr`.
pub const fn exception_class(esr: u64) -> u64 {
    (esr >> 26) & 0x3f
}

/// Length in bytes of the instruction that trapped (ESR.IL: 4, or 2 for a 16-bit T32
/// instruction of a guest's AArch32 EL0).
pub const fn instruction_length(esr: u64) -> u64 {
    // IL is bit 25: 2 + 2 * IL, without a branch.
    2 + ((esr & ESR_IL) >> 24)
}

/// A load or store to an unmapped guest-physical address with a full syndrome: what an
/// emulating server needs, and what the kernel needs to finish the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioTrap {
    /// Guest-physical address.
    pub ipa: u64,
    /// Guest virtual address (for an injected abort's FAR_EL1).
    pub far: u64,
    /// Access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// A store rather than a load.
    pub write: bool,
    /// The transfer register; 31 is XZR/WZR.
    pub register: u8,
    /// A load that sign-extends.
    pub sign_extend: bool,
    /// The register is 64 bits wide (Xt); a 32-bit one (Wt) has its upper half cleared.
    pub sixty_four: bool,
}

/// A trapped MSR or MRS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegTrap {
    /// `op0 << 14 | op1 << 11 | CRn << 7 | CRm << 3 | op2`, as in the instruction.
    pub encoding: u16,
    /// The transfer register; 31 is XZR.
    pub register: u8,
    /// MSR (a write) rather than MRS.
    pub write: bool,
}

impl SysRegTrap {
    /// Whether the register is a debug register (op0 = 2: MDSCR_EL1, the OS lock, the
    /// breakpoints, DCC) or a PMU register (op0 = 3 with CRn = 9, CRm = 12..=14, or
    /// CRn = 14, CRm = 8..=15): the kernel answers these itself, reads as zero and writes
    /// ignored, as MDCR_EL2.TDA/TDOSA/TDRA/TPM make them trap.
    pub const fn is_debug_or_pmu(&self) -> bool {
        let op0 = self.encoding >> 14;
        let crn = (self.encoding >> 7) & 0xf;
        let crm = (self.encoding >> 3) & 0xf;
        op0 == 2 || (op0 == 3 && ((crn == 9 && crm >= 12 && crm <= 14) || (crn == 14 && crm >= 8)))
    }
}

/// Why a guest data access cannot be emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortCause {
    /// A load or store without instruction syndrome (ISV = 0: pairs, writeback, SIMD
    /// structures, atomics): the kernel decodes no instructions.
    NoSyndrome,
    /// The guest's own stage-1 table walk touched an unmapped IPA.
    TableWalk,
    /// A permission, access-flag or external abort on mapped memory.
    Other,
}

/// What a guest trap asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A load or store to unmapped guest-physical memory, with a full syndrome.
    Mmio(MmioTrap),
    /// A data cache maintenance instruction on unmapped guest-physical memory: nothing to
    /// maintain, the instruction completes.
    CacheMaintenance,
    /// A data access the kernel cannot emulate, at `ipa` (valid for `NoSyndrome` and
    /// `TableWalk`) and guest virtual address `far`.
    UnhandledDataAbort {
        /// Why.
        cause: AbortCause,
        /// Guest-physical address.
        ipa: u64,
        /// Guest virtual address.
        far: u64,
        /// A write.
        write: bool,
    },
    /// An instruction fetch from unmapped or unusable guest-physical memory.
    InstructionAbort {
        /// Guest-physical address.
        ipa: u64,
        /// Guest virtual address.
        far: u64,
    },
    /// WFI (or WFIT).
    Wfi,
    /// WFE (or WFET).
    Wfe,
    /// HVC; the return address already points past it.
    Hvc,
    /// SMC; the return address points at it.
    Smc,
    /// MSR or MRS.
    SysReg(SysRegTrap),
    /// An SError the guest caused (a device it reaches through stage 2 aborted
    /// asynchronously); its syndrome.
    SError(u64),
    /// Anything else (the exception class).
    Other(u64),
}

/// The faulting IPA of a stage-2 abort: HPFAR_EL2.FIPA (IPA[51:12] in bits 43:4) and
/// the page offset from FAR.
const fn fault_ipa(trap: &Trap) -> u64 {
    ((trap.hpfar & 0x0fff_ffff_ffff_fff0) << 8) | (trap.far & 0xfff)
}

/// Decodes a trap from a vCPU.
#[inline]
pub const fn decode(trap: &Trap) -> Exit {
    let iss = trap.esr & 0x01ff_ffff;
    match exception_class(trap.esr) {
        ec::DATA_ABORT_LOWER => decode_data_abort(trap, iss),
        ec::INSTRUCTION_ABORT_LOWER => Exit::InstructionAbort { ipa: fault_ipa(trap), far: trap.far },
        ec::WFX if iss & ISS_WFX_WFE != 0 => Exit::Wfe,
        ec::WFX => Exit::Wfi,
        ec::HVC64 => Exit::Hvc,
        ec::SMC64 => Exit::Smc,
        ec::SYSREG => Exit::SysReg(sysreg_access(trap.esr)),
        ec::SERROR => Exit::SError(iss),
        other => Exit::Other(other),
    }
}

/// The MSR or MRS of a trap with exception class [`ec::SYSREG`] (its syndrome `esr`).
pub const fn sysreg_access(esr: u64) -> SysRegTrap {
    let iss = esr & 0x01ff_ffff;
    let op0 = (iss >> 20) & 3;
    let op2 = (iss >> 17) & 7;
    let op1 = (iss >> 14) & 7;
    let crn = (iss >> 10) & 0xf;
    let crm = (iss >> 1) & 0xf;
    SysRegTrap {
        encoding: (op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2) as u16,
        register: ((iss >> 5) & 0x1f) as u8,
        write: iss & 1 == 0,
    }
}

#[inline(always)]
const fn decode_data_abort(trap: &Trap, iss: u64) -> Exit {
    if let Some(access) = mmio_access(trap) {
        return Exit::Mmio(access);
    }
    let ipa = fault_ipa(trap);
    let write = iss & ISS_WNR != 0;
    let cause = if iss & ISS_S1PTW != 0 {
        AbortCause::TableWalk
    } else if iss & ISS_FSC > FSC_LAST_TRANSLATION {
        AbortCause::Other
    } else if iss & ISS_CM != 0 {
        return Exit::CacheMaintenance;
    } else {
        AbortCause::NoSyndrome
    };
    Exit::UnhandledDataAbort { cause, ipa, far: trap.far, write }
}

/// The ESR_EL2 bits that tell an emulable access from every other trap: the exception
/// class, ISV, S1PTW, CM and the fault status code's bits 5:3 (zero for the address-size
/// and translation faults, codes up to [`FSC_LAST_TRANSLATION`]).
const MMIO_SYNDROME_MASK: u64 = 0x3f << 26 | ISS_ISV | ISS_S1PTW | ISS_CM | (ISS_FSC & !FSC_LAST_TRANSLATION);
/// Those bits for a data abort from a lower EL with a full syndrome, not on a table walk,
/// not by cache maintenance, on an unmapped IPA.
const MMIO_SYNDROME: u64 = ec::DATA_ABORT_LOWER << 26 | ISS_ISV;

/// The access of a trap that is a load or store to an unmapped guest-physical address
/// with a full syndrome ([`Exit::Mmio`]); `None` for every other trap. The test is one
/// mask ([`is_mmio_access`]), which is all the shell's MMIO fast path asks first.
#[inline(always)]
pub const fn mmio_access(trap: &Trap) -> Option<MmioTrap> {
    if !is_mmio_access(trap.esr) {
        return None;
    }
    Some(mmio_fields(trap))
}

/// Whether a trap with syndrome `esr` is an access that [`mmio_access`] accepts.
#[inline(always)]
pub const fn is_mmio_access(esr: u64) -> bool {
    esr & MMIO_SYNDROME_MASK == MMIO_SYNDROME
}

/// The access of a trap that [`mmio_access`] accepts, without its test: for the MMIO fast
/// path, whose caller made the test, and for finishing a forwarded access from the trap
/// it kept.
#[inline(always)]
pub const fn mmio_fields(trap: &Trap) -> MmioTrap {
    let iss = trap.esr & 0x01ff_ffff;
    MmioTrap {
        ipa: fault_ipa(trap),
        far: trap.far,
        size: 1 << ((iss >> 22) & 3),
        write: iss & ISS_WNR != 0,
        register: ((iss >> 16) & 0x1f) as u8,
        sign_extend: iss & ISS_SSE != 0,
        sixty_four: iss & ISS_SF != 0,
    }
}

impl MmioTrap {
    /// How a load's value becomes the register's.
    #[inline(always)]
    pub const fn extension(&self) -> LoadExtension {
        LoadExtension::new(self.size, self.sign_extend, self.sixty_four)
    }
}

/// How a load turns the value memory returned into the register's: truncated to the
/// access, sign-extended if the instruction asks, and for a 32-bit register with the upper
/// half clear (two shifts and a 32-bit move).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadExtension {
    /// 64 minus the access's width in bits, modulo 64 (the shifts ignore the other bits).
    shift: u32,
    /// The second shift is arithmetic (sign extension).
    signed: bool,
    /// The register is 64 bits wide (else 32).
    sixty_four: bool,
}

impl LoadExtension {
    /// The extension of a load of `size` bytes (1, 2, 4 or 8: other sizes give some
    /// extension, never a panic), sign-extending if `sign_extend`, into a 64-bit register
    /// if `sixty_four`, else a 32-bit one.
    #[inline(always)]
    pub const fn new(size: u8, sign_extend: bool, sixty_four: bool) -> Self {
        // 64 - bits modulo 64, as `apply`'s shifts take it (0 for 8 bytes).
        let shift = 0u32.wrapping_sub(size as u32 * 8);
        Self { shift, signed: sign_extend, sixty_four }
    }

    /// The register value a load leaves when memory returned `value`.
    #[inline(always)]
    pub const fn apply(self, value: u64) -> u64 {
        let shift = self.shift;
        let shifted = value.wrapping_shl(shift);
        let extended = if self.signed {
            (shifted as i64).wrapping_shr(shift) as u64
        } else {
            shifted.wrapping_shr(shift)
        };
        // A 32-bit register's upper half is clear: a truncation, not a mask to build.
        if self.sixty_four { extended } else { extended as u32 as u64 }
    }
}

/// A synchronous exception the kernel makes the guest take at EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Injection {
    /// Synchronous external data abort at guest virtual address `far`.
    DataAbort {
        /// Guest virtual address.
        far: u64,
        /// The access was a write.
        write: bool,
    },
    /// Synchronous external instruction abort at guest virtual address `far`.
    InstructionAbort {
        /// Guest virtual address.
        far: u64,
    },
    /// Undefined instruction (exception class 0, unknown reason).
    Undefined,
}

/// PSTATE/SPSR bits used on exception entry.
mod pstate {
    /// Condition flags N, Z, C, V.
    pub const NZCV: u64 = 0xf << 28;
    /// D, A, I and F masks.
    pub const DAIF: u64 = 0xf << 6;
    /// M[4]: the interrupted code ran in AArch32.
    pub const AARCH32: u64 = 1 << 4;
    /// M[3:0] of EL1 with SP_EL1 (EL1h).
    pub const EL1H: u64 = 0b0101;
    /// M[3:0] of EL1 with SP_EL0 (EL1t).
    pub const EL1T: u64 = 0b0100;
    /// Privileged access never.
    pub const PAN: u64 = 1 << 22;
    /// Speculative store bypass safe.
    pub const SSBS: u64 = 1 << 12;
}

/// SCTLR_EL1.SPAN: clear means exception entry to EL1 sets PSTATE.PAN.
const SCTLR_SPAN: u64 = 1 << 23;
/// SCTLR_EL1.DSSBS: the PSTATE.SSBS value on exception entry to EL1.
const SCTLR_DSSBS: u64 = 1 << 44;

/// SPSR_EL2 of a vCPU entering EL1h with D, A, I and F masked (boot and `VCPU_START`).
pub const SPSR_EL1H_MASKED: u64 = pstate::DAIF | pstate::EL1H;

/// The EL1 registers an injected exception writes, and where the guest continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct El1Entry {
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1, or `None` to leave it (its value is UNKNOWN for this class).
    pub far: Option<u64>,
    /// ELR_EL1: the instruction that took the exception.
    pub elr: u64,
    /// SPSR_EL1: PSTATE when it did.
    pub spsr: u64,
    /// The new PC: the right entry of the guest's vector table.
    pub pc: u64,
    /// The new PSTATE (SPSR_EL2 for the return to the guest).
    pub pstate: u64,
}

/// What taking `injection` at EL1 does when the guest was at `pc` with PSTATE `pstate`,
/// with its vector table at `vbar` and SCTLR_EL1 = `sctlr`, as Arm ARM's
/// AArch64.TakeException does. Every injected syndrome has IL set: class 0 requires it,
/// and aborts without a valid instruction syndrome have it RES1.
pub const fn take_exception(injection: Injection, pc: u64, pstate: u64, vbar: u64, sctlr: u64) -> El1Entry {
    let mode = pstate & 0xf;
    let from_lower = pstate & pstate::AARCH32 != 0 || mode == 0;
    let vector_offset = if pstate & pstate::AARCH32 != 0 {
        0x600
    } else if mode == 0 {
        0x400
    } else if mode == pstate::EL1T {
        0x000
    } else {
        0x200
    };
    let (class, iss, far) = match injection {
        Injection::DataAbort { far, write } => (
            if from_lower { ec::DATA_ABORT_LOWER } else { ec::DATA_ABORT_SAME },
            FSC_EXTERNAL_ABORT | if write { ISS_WNR } else { 0 },
            Some(far),
        ),
        Injection::InstructionAbort { far } => (
            if from_lower { ec::INSTRUCTION_ABORT_LOWER } else { ec::INSTRUCTION_ABORT_SAME },
            FSC_EXTERNAL_ABORT,
            Some(far),
        ),
        Injection::Undefined => (ec::UNKNOWN, 0, None),
    };
    let mut new_pstate = (pstate & pstate::NZCV) | pstate::DAIF | pstate::EL1H;
    if sctlr & SCTLR_SPAN == 0 {
        new_pstate |= pstate::PAN;
    }
    if sctlr & SCTLR_DSSBS != 0 {
        new_pstate |= pstate::SSBS;
    }
    El1Entry {
        esr: class << 26 | ESR_IL | iss,
        far,
        elr: pc,
        spsr: pstate,
        pc: vbar.wrapping_add(vector_offset),
        pstate: new_pstate,
    }
}

/// One EL1 timer's registers (CNTV_* or CNTP_* as the guest set them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerState {
    /// CNTx_CTL: ENABLE (bit 0), IMASK (bit 1), ISTATUS (bit 2, read-only).
    pub ctl: u64,
    /// CNTx_CVAL.
    pub cval: u64,
}

impl TimerState {
    /// Whether the timer can raise its interrupt: enabled and not masked.
    const fn armed(&self) -> bool {
        self.ctl & 0b11 == 0b01
    }

    /// Whether its interrupt line is asserted (ENABLE, ISTATUS and not IMASK) once the
    /// physical counter reaches `now`, for a timer whose counter runs `offset` behind it.
    const fn asserted(&self, now: u64, offset: u64) -> bool {
        self.armed() && self.cval.saturating_add(offset) <= now
    }

    /// Whether the timer is enabled and its condition met at physical counter `now`
    /// (its counter running `offset` behind) while the ISTATUS read says otherwise: the
    /// timer model has not caught up with the counter. QEMU's updates ISTATUS and the
    /// line only in its own timer callback or on a write to the timer, and that callback
    /// can run milliseconds after the kernel, which goes by the counter, has woken the
    /// vCPU and reported the line (measured on a loaded host: the guest then saw the
    /// timer's interrupt pending and ISTATUS clear).
    pub const fn status_lags(&self, now: u64, offset: u64) -> bool {
        self.ctl & TIMER_ENABLE != 0
            && self.ctl & TIMER_ISTATUS == 0
            && self.cval.saturating_add(offset) <= now
    }
}

/// CNTx_CTL.ENABLE.
const TIMER_ENABLE: u64 = 1 << 0;
/// CNTx_CTL.ISTATUS: the timer condition is met.
const TIMER_ISTATUS: u64 = 1 << 2;

/// `ICH_LR<n>_EL2` fields (Arm IHI 0069, 12.4.6).
mod lr {
    /// Physical INTID of a hardware-linked interrupt.
    pub const PINTID_SHIFT: u32 = 32;
    /// Physical INTID field width.
    pub const PINTID_MASK: u64 = 0x1fff;
    /// Priority.
    pub const PRIORITY_SHIFT: u32 = 48;
    /// Group 1 rather than Group 0.
    pub const GROUP1: u64 = 1 << 60;
    /// Hardware-linked: deactivating the virtual interrupt deactivates the physical one.
    pub const HW: u64 = 1 << 61;
    /// State: pending.
    pub const PENDING: u64 = 1 << 62;
    /// State: active.
    pub const ACTIVE: u64 = 1 << 63;
}

/// ICH_VMCR_EL2 fields (Arm IHI 0069, 12.4.10).
mod vmcr {
    /// VENG0: virtual Group 0 enabled.
    pub const ENABLE_GROUP0: u64 = 1 << 0;
    /// VENG1: virtual Group 1 enabled.
    pub const ENABLE_GROUP1: u64 = 1 << 1;
    /// VCBPR: Group 1 uses the Group 0 binary point (plus one, at most 7).
    pub const COMMON_BINARY_POINT: u64 = 1 << 4;
    /// VBPR1.
    pub const BINARY_POINT1_SHIFT: u32 = 18;
    /// VBPR0.
    pub const BINARY_POINT0_SHIFT: u32 = 21;
    /// VPMR.
    pub const PRIORITY_MASK_SHIFT: u32 = 24;
}

/// Priority bits the virtual CPU interface implements (ICH_VTR_EL2.PRIbits + 1 on QEMU
/// 7.2): below `8 - PRIORITY_BITS` every priority bit is a preemption bit, and each bit
/// of `ICH_AP<m>R0_EL2` stands for one priority step of that size.
const PRIORITY_BITS: u32 = 5;
/// The smallest binary point of Group 1 (Group 0's is one less).
const MIN_BINARY_POINT: u64 = 8 - PRIORITY_BITS as u64;

/// The running priority of a virtual CPU interface: the highest active priority in its
/// active-priority registers, or 0x100 (idle, below every priority).
const fn running_priority(interface: &GicSnapshot) -> u16 {
    let active = (interface.ap0r0 | interface.ap1r0) as u32;
    if active == 0 { 0x100 } else { (active.trailing_zeros() << MIN_BINARY_POINT) as u16 }
}

/// `priority` without its subpriority bits, by the binary point of its group.
const fn preemption_level(vmcr_value: u64, priority: u8, group1: bool) -> u16 {
    let binary_point0 = vmcr_value >> vmcr::BINARY_POINT0_SHIFT & 7;
    let binary_point = if !group1 {
        binary_point0 + 1
    } else if vmcr_value & vmcr::COMMON_BINARY_POINT != 0 {
        if binary_point0 + 1 > 7 { 7 } else { binary_point0 + 1 }
    } else {
        vmcr_value >> vmcr::BINARY_POINT1_SHIFT & 7
    };
    let shift = if binary_point > MIN_BINARY_POINT { binary_point } else { MIN_BINARY_POINT };
    (priority & (0xffu32 << shift) as u8) as u16
}

/// Whether the virtual CPU interface `interface` (its list registers, ICH_VMCR_EL2 and
/// active priorities) signals a virtual interrupt: a list register in the Pending state
/// (not active) whose group is enabled, whose priority is above the priority mask and
/// whose preemption level is above the running priority. PSTATE.I does not matter: this
/// is what ends a WFI. The same rule as the vgic-server's `Snapshot::signals`.
pub const fn interface_signals(interface: &GicSnapshot) -> bool {
    let mask = (interface.vmcr >> vmcr::PRIORITY_MASK_SHIFT) as u8;
    let running = running_priority(interface);
    let mut index = 0;
    while index < interface.lrs.len() {
        let value = interface.lrs[index];
        index += 1;
        let group1 = value & lr::GROUP1 != 0;
        let enable = if group1 { vmcr::ENABLE_GROUP1 } else { vmcr::ENABLE_GROUP0 };
        let priority = (value >> lr::PRIORITY_SHIFT) as u8;
        if value & (lr::PENDING | lr::ACTIVE) == lr::PENDING
            && interface.vmcr & enable != 0
            && priority < mask
            && preemption_level(interface.vmcr, priority, group1) < running
        {
            return true;
        }
    }
    false
}

/// [`GicSnapshot::hardware_lines`] bits and the physical timer PPIs they stand for.
pub const TIMER_PPIS: [(u64, u32); 2] =
    [(ipc::vcpu::LINE_VIRTUAL_TIMER, 27), (ipc::vcpu::LINE_PHYSICAL_TIMER, 30)];

/// The PPIs (bit n: INTID n) of the timer lines `lines` ([`TIMER_PPIS`]).
pub const fn timer_ppi_mask(lines: u64) -> u32 {
    let mut mask = 0;
    let mut index = 0;
    while index < TIMER_PPIS.len() {
        if lines & TIMER_PPIS[index].0 != 0 {
            mask |= 1 << TIMER_PPIS[index].1;
        }
        index += 1;
    }
    mask
}

/// The timer lines ([`TIMER_PPIS`]) of the PPIs in `mask` (bit n: INTID n).
pub const fn timer_lines(mask: u32) -> u64 {
    let mut lines = 0;
    let mut index = 0;
    while index < TIMER_PPIS.len() {
        if mask & 1 << TIMER_PPIS[index].1 != 0 {
            lines |= TIMER_PPIS[index].0;
        }
        index += 1;
    }
    lines
}

/// The timer PPIs (as [`GicSnapshot::hardware_lines`] bits) among `held` (the ones the
/// kernel acknowledged and keeps active for the loaded vCPU) that it must deactivate now:
/// no list register holds a hardware-linked copy of it (the guest's deactivation of one
/// would end the physical active state) and its line, `lines`, has dropped (else it would
/// fire again at once).
pub const fn timer_ppis_to_deactivate(held: u64, lines: u64, lrs: &[u64; ipc::vcpu::LIST_REGISTERS]) -> u64 {
    let mut result = held & !lines;
    let mut index = 0;
    while index < lrs.len() {
        let value = lrs[index];
        index += 1;
        if value & lr::HW == 0 || value & (lr::PENDING | lr::ACTIVE) == 0 {
            continue;
        }
        let pintid = (value >> lr::PINTID_SHIFT & lr::PINTID_MASK) as u32;
        let mut timer = 0;
        while timer < TIMER_PPIS.len() {
            if TIMER_PPIS[timer].1 == pintid {
                result &= !TIMER_PPIS[timer].0;
            }
            timer += 1;
        }
    }
    result
}

/// What could end a vCPU's WFI, read on the CPU that holds its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeState {
    /// The physical counter now (CNTPCT).
    pub now: u64,
    /// The EL1 virtual timer, which counts CNTPCT - `cntvoff`.
    pub virtual_timer: TimerState,
    /// The EL1 physical timer, which counts CNTPCT.
    pub physical_timer: TimerState,
    /// The VM's CNTVOFF_EL2.
    pub cntvoff: u64,
    /// The virtual CPU interface: list registers, ICH_VMCR_EL2 and active priorities (its
    /// `hardware_lines` are not read: [`WakeState::snapshot`] computes them).
    pub interface: GicSnapshot,
    /// Timer lines (as [`GicSnapshot::hardware_lines`] bits) whose physical PPI the
    /// kernel acknowledged and holds active on this CPU: already reported to the
    /// vgic-server, so they do not end a WFI by themselves.
    pub reported_lines: u64,
}

/// How a WFI ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WfiOutcome {
    /// Something is due already: the guest continues at once.
    Continue,
    /// The vgic-server must look at the vCPU first: a timer line is up that it was not
    /// told about (the vCPU sends a vGIC event).
    VgicEvent,
    /// Sleep until the physical counter reaches the deadline.
    SleepUntil(u64),
    /// Sleep until something else wakes the vCPU.
    Sleep,
}

impl WakeState {
    /// When a WFI executed now ends. A list register the interface signals ends it at
    /// once. Without a vGIC (`vgic` false), so does a timer whose deadline has passed,
    /// and otherwise the earlier armed timer's deadline (in physical counter ticks) ends
    /// it. With a vGIC a timer is an interrupt only once the vgic-server lists it: an
    /// asserted line not yet reported makes a vGIC event, a reported one waits for the
    /// server, and only deadlines still ahead are waited for.
    pub const fn wfi(&self, vgic: bool) -> WfiOutcome {
        if interface_signals(&self.interface) {
            return WfiOutcome::Continue;
        }
        let lines = self.hardware_lines();
        if vgic && lines & !self.reported_lines != 0 {
            return WfiOutcome::VgicEvent;
        }
        let virtual_deadline = self.virtual_timer.cval.saturating_add(self.cntvoff);
        // With a vGIC, an asserted timer waits for the server, not for its deadline.
        let virtual_armed =
            self.virtual_timer.armed() && !(vgic && lines & ipc::vcpu::LINE_VIRTUAL_TIMER != 0);
        let physical_armed =
            self.physical_timer.armed() && !(vgic && lines & ipc::vcpu::LINE_PHYSICAL_TIMER != 0);
        let deadline = match (virtual_armed, physical_armed) {
            (false, false) => return WfiOutcome::Sleep,
            (true, false) => virtual_deadline,
            (false, true) => self.physical_timer.cval,
            (true, true) if virtual_deadline < self.physical_timer.cval => virtual_deadline,
            (true, true) => self.physical_timer.cval,
        };
        if deadline <= self.now { WfiOutcome::Continue } else { WfiOutcome::SleepUntil(deadline) }
    }

    /// The virtual CPU interface with the timer lines now: what a vGIC event carries.
    pub const fn snapshot(&self) -> GicSnapshot {
        GicSnapshot { hardware_lines: self.hardware_lines(), ..self.interface }
    }

    /// The timers whose ISTATUS lags their condition ([`TimerState::status_lags`]), as
    /// [`ipc::vcpu::LINE_VIRTUAL_TIMER`] and [`ipc::vcpu::LINE_PHYSICAL_TIMER`] bits.
    pub const fn lagging_timers(&self) -> u64 {
        line_bits(
            self.virtual_timer.status_lags(self.now, self.cntvoff),
            self.physical_timer.status_lags(self.now, 0),
        )
    }

    /// The timers' interrupt lines now, as [`ipc::vcpu::LINE_VIRTUAL_TIMER`] and
    /// [`ipc::vcpu::LINE_PHYSICAL_TIMER`] bits (a saved timer's ISTATUS is stale, so the
    /// deadline is compared with the counter).
    pub const fn hardware_lines(&self) -> u64 {
        line_bits(
            self.virtual_timer.asserted(self.now, self.cntvoff),
            self.physical_timer.asserted(self.now, 0),
        )
    }
}

/// [`ipc::vcpu::LINE_VIRTUAL_TIMER`] and [`ipc::vcpu::LINE_PHYSICAL_TIMER`] for the
/// timers for which a condition holds (`virtual_timer`, `physical_timer`).
const fn line_bits(virtual_timer: bool, physical_timer: bool) -> u64 {
    (if virtual_timer { ipc::vcpu::LINE_VIRTUAL_TIMER } else { 0 })
        | if physical_timer { ipc::vcpu::LINE_PHYSICAL_TIMER } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ESR of a stage-2 data abort from a lower EL with `iss`.
    fn data_abort(iss: u64) -> u64 {
        ec::DATA_ABORT_LOWER << 26 | ESR_IL | iss
    }

    /// ISS of a translation fault at level 3 with a valid syndrome.
    fn mmio_iss(sas: u64, sse: bool, srt: u64, sf: bool, write: bool) -> u64 {
        ISS_ISV
            | sas << 22
            | u64::from(sse) << 21
            | srt << 16
            | u64::from(sf) << 15
            | u64::from(write) << 6
            | 0x07
    }

    #[test]
    fn stage2_loads_and_stores_decode_with_ipa_size_and_register() {
        let trap = Trap {
            esr: data_abort(mmio_iss(2, false, 3, false, false)),
            far: 0xffff_8000_0901_0abc,
            hpfar: 0x9010 << 4,
        };
        assert_eq!(
            decode(&trap),
            Exit::Mmio(MmioTrap {
                ipa: 0x0901_0abc,
                far: 0xffff_8000_0901_0abc,
                size: 4,
                write: false,
                register: 3,
                sign_extend: false,
                sixty_four: false,
            })
        );
        let store = Trap {
            esr: data_abort(mmio_iss(3, false, 31, true, true)),
            far: 0x10,
            hpfar: 0xff_ffff_f000 << 4,
        };
        let Exit::Mmio(access) = decode(&store) else { panic!("a store decodes as MMIO") };
        assert_eq!(
            (access.ipa, access.size, access.write, access.register),
            (0x000f_ffff_ff00_0010, 8, true, 31)
        );
        let byte = Trap { esr: data_abort(mmio_iss(0, true, 7, true, false)), ..trap };
        let Exit::Mmio(access) = decode(&byte) else { panic!("a byte load decodes as MMIO") };
        assert_eq!((access.size, access.sign_extend, access.sixty_four), (1, true, true));
    }

    #[test]
    fn aborts_the_kernel_cannot_emulate_are_classified() {
        let trap = |iss| decode(&Trap { esr: data_abort(iss), far: 0x1234, hpfar: 0x8000 << 4 });
        assert_eq!(
            trap(ISS_WNR | 0x06),
            Exit::UnhandledDataAbort {
                cause: AbortCause::NoSyndrome,
                ipa: 0x800_0234,
                far: 0x1234,
                write: true
            }
        );
        assert_eq!(
            trap(ISS_S1PTW | 0x07),
            Exit::UnhandledDataAbort {
                cause: AbortCause::TableWalk,
                ipa: 0x800_0234,
                far: 0x1234,
                write: false
            }
        );
        assert!(matches!(
            trap(mmio_iss(2, false, 1, false, false) & !0x3f | 0x0f),
            Exit::UnhandledDataAbort { cause: AbortCause::Other, .. }
        ));
        assert_eq!(trap(ISS_CM | ISS_WNR | 0x05), Exit::CacheMaintenance);
        let fetch =
            Trap { esr: ec::INSTRUCTION_ABORT_LOWER << 26 | ESR_IL | 0x06, far: 0x50, hpfar: 0x40 << 4 };
        assert_eq!(decode(&fetch), Exit::InstructionAbort { ipa: 0x4_0050, far: 0x50 });
    }

    #[test]
    fn calls_waits_and_system_registers_decode() {
        let esr = |class: u64, iss: u64| Trap { esr: class << 26 | ESR_IL | iss, ..Trap::default() };
        assert_eq!(decode(&esr(ec::HVC64, 0)), Exit::Hvc);
        assert_eq!(decode(&esr(ec::SMC64, 0)), Exit::Smc);
        assert_eq!(decode(&esr(ec::WFX, 0)), Exit::Wfi);
        assert_eq!(decode(&esr(ec::WFX, 1)), Exit::Wfe);
        assert_eq!(decode(&esr(0x0e, 0)), Exit::Other(0x0e));
        assert_eq!(decode(&esr(ec::SERROR, 0x11)), Exit::SError(0x11));
        // MSR ICC_SGI1R_EL1, x5: op0 3, op1 0, CRn 12, CRm 11, op2 5.
        let sgi = 3 << 20 | 5 << 17 | 12 << 10 | 5 << 5 | 11 << 1;
        assert_eq!(
            decode(&esr(ec::SYSREG, sgi)),
            Exit::SysReg(SysRegTrap { encoding: 0xc65d, register: 5, write: true })
        );
        // MRS x2, MDSCR_EL1: op0 2, op1 0, CRn 0, CRm 2, op2 2; direction 1 = read.
        let Exit::SysReg(mdscr) = decode(&esr(ec::SYSREG, 2 << 20 | 2 << 17 | 2 << 5 | 2 << 1 | 1)) else {
            panic!("MRS decodes as a system register access")
        };
        assert_eq!((mdscr.encoding, mdscr.register, mdscr.write), (0x8012, 2, false));
        assert_eq!(instruction_length(ESR_IL), 4);
        assert_eq!(instruction_length(0), 2);
    }

    #[test]
    fn debug_and_pmu_registers_are_recognised() {
        let register = |op0: u16, op1: u16, crn: u16, crm: u16, op2: u16| SysRegTrap {
            encoding: op0 << 14 | op1 << 11 | crn << 7 | crm << 3 | op2,
            register: 0,
            write: false,
        };
        assert!(register(2, 0, 0, 2, 2).is_debug_or_pmu(), "MDSCR_EL1");
        assert!(register(2, 0, 1, 0, 4).is_debug_or_pmu(), "OSLAR_EL1");
        assert!(register(3, 3, 9, 12, 0).is_debug_or_pmu(), "PMCR_EL0");
        assert!(register(3, 3, 9, 14, 0).is_debug_or_pmu(), "PMUSERENR_EL0");
        assert!(register(3, 0, 9, 14, 1).is_debug_or_pmu(), "PMINTENSET_EL1");
        assert!(register(3, 3, 14, 15, 7).is_debug_or_pmu(), "PMCCFILTR_EL0");
        assert!(register(3, 3, 14, 8, 0).is_debug_or_pmu(), "PMEVCNTR0_EL0");
        assert!(!register(3, 0, 12, 11, 5).is_debug_or_pmu(), "ICC_SGI1R_EL1");
        assert!(!register(3, 3, 14, 3, 1).is_debug_or_pmu(), "CNTV_CTL_EL0");
        assert!(!register(3, 0, 14, 1, 0).is_debug_or_pmu(), "CNTKCTL_EL1");
        assert!(!register(3, 0, 9, 9, 0).is_debug_or_pmu(), "PMSCR_EL1 (SPE) is not the PMU");
    }

    #[test]
    fn load_results_follow_size_sign_and_register_width() {
        let load_result = |value, size, sign_extend, sixty_four| {
            LoadExtension::new(size, sign_extend, sixty_four).apply(value)
        };
        assert_eq!(load_result(0x1234_5678_9abc_def0, 8, false, true), 0x1234_5678_9abc_def0);
        assert_eq!(load_result(0x1234_5678_9abc_def0, 8, true, true), 0x1234_5678_9abc_def0);
        assert_eq!(load_result(0x1234_5678_9abc_def0, 4, false, false), 0x9abc_def0);
        assert_eq!(load_result(0xffff_ffff_ffff_ff80, 1, false, false), 0x80, "LDRB zero-extends");
        assert_eq!(load_result(0xffff_ffff_ffff_ff80, 1, false, true), 0x80, "LDRB into Xt");
        assert_eq!(load_result(0x80, 1, true, true), 0xffff_ffff_ffff_ff80, "LDRSB Xt");
        assert_eq!(load_result(0x80, 1, true, false), 0xffff_ff80, "LDRSB Wt");
        assert_eq!(load_result(0x7fff, 2, true, true), 0x7fff);
        assert_eq!(load_result(0x1_8000, 2, true, true), 0xffff_ffff_ffff_8000, "LDRSH ignores upper bits");
        assert_eq!(load_result(0x1_8000, 2, false, false), 0x8000, "LDRH");
        assert_eq!(load_result(0x8000_0000, 4, true, true), 0xffff_ffff_8000_0000, "LDRSW");
        assert_eq!(load_result(0xffff_ffff_8000_0000, 4, false, false), 0x8000_0000, "LDR Wt");
    }

    #[test]
    fn only_emulable_accesses_pass_the_mmio_fast_test() {
        let trap = |esr: u64| Trap { esr, far: 0x1234, hpfar: 0x0a00_0000 >> 8 };
        let lower = ec::DATA_ABORT_LOWER << 26 | ESR_IL;
        for fsc in 0..0x40 {
            for flags in [ISS_ISV, ISS_ISV | ISS_S1PTW, ISS_ISV | ISS_CM, 0, ISS_ISV | ISS_WNR | ISS_SF] {
                let trap = trap(lower | flags | fsc);
                let decoded = match decode(&trap) {
                    Exit::Mmio(access) => Some(access),
                    _ => None,
                };
                assert_eq!(mmio_access(&trap), decoded, "fsc {fsc:#x} flags {flags:#x}");
            }
        }
        let same_el = ec::DATA_ABORT_SAME << 26 | ESR_IL | ISS_ISV | 0x07;
        assert_eq!(mmio_access(&trap(same_el)), None);
        assert_eq!(mmio_access(&trap(ec::INSTRUCTION_ABORT_LOWER << 26 | ISS_ISV | 0x07)), None);
        assert_eq!(mmio_access(&trap(lower | ISS_ISV | 0x07)).map(|access| access.ipa), Some(0x0a00_0234));
    }

    #[test]
    fn injected_exceptions_enter_el1h_at_the_right_vector() {
        const VBAR: u64 = 0xffff_8000_1000_0000;
        // From EL1h with flags set, SPAN clear: current EL with SP_ELx, PAN set.
        let entry = take_exception(
            Injection::DataAbort { far: 0xdead, write: true },
            0x4000_1000,
            0x6000_0005,
            VBAR,
            0,
        );
        assert_eq!(entry.pc, VBAR + 0x200);
        assert_eq!(entry.elr, 0x4000_1000);
        assert_eq!(entry.spsr, 0x6000_0005);
        assert_eq!(entry.pstate, 0x6000_0000 | 0x3c0 | 0x5 | pstate::PAN);
        assert_eq!(entry.esr, 0x25 << 26 | ESR_IL | ISS_WNR | 0x10);
        assert_eq!(entry.far, Some(0xdead));
        // From EL0: lower EL, AArch64; SPAN set and DSSBS set.
        let entry = take_exception(
            Injection::InstructionAbort { far: 0x88 },
            0x8000,
            0x0,
            VBAR,
            SCTLR_SPAN | SCTLR_DSSBS,
        );
        assert_eq!(entry.pc, VBAR + 0x400);
        assert_eq!(entry.esr, 0x20 << 26 | ESR_IL | 0x10);
        assert_eq!(entry.pstate, 0x3c5 | pstate::SSBS);
        // From EL1t and from AArch32 EL0.
        assert_eq!(take_exception(Injection::Undefined, 0, 0x4, VBAR, 0).pc, VBAR);
        let undefined = take_exception(Injection::Undefined, 0x100, 0x10, VBAR, SCTLR_SPAN);
        assert_eq!(undefined.pc, VBAR + 0x600);
        assert_eq!(undefined.esr, ESR_IL, "class 0 with IL set");
        assert_eq!(undefined.far, None);
    }

    /// A list register: `state` bits (62 pending, 63 active), group 1, `priority`.
    fn list_register(state: u64, priority: u8) -> u64 {
        state << 62 | lr::GROUP1 | u64::from(priority) << lr::PRIORITY_SHIFT | 27
    }

    /// An interface with Group 1 enabled, priority mask 0xf8, nothing active, and `lrs`.
    fn interface(lrs: [u64; 4]) -> GicSnapshot {
        GicSnapshot { lrs, vmcr: 0xf8 << 24 | vmcr::ENABLE_GROUP1, ..GicSnapshot::default() }
    }

    #[test]
    fn a_met_condition_with_istatus_clear_lags() {
        let state = |virtual_ctl, physical_ctl| WakeState {
            now: 1_000,
            cntvoff: 300,
            virtual_timer: TimerState { ctl: virtual_ctl, cval: 700 },
            physical_timer: TimerState { ctl: physical_ctl, cval: 1_000 },
            ..WakeState::default()
        };
        assert_eq!(
            state(1, 1).lagging_timers(),
            ipc::vcpu::LINE_VIRTUAL_TIMER | ipc::vcpu::LINE_PHYSICAL_TIMER
        );
        assert_eq!(state(1 | TIMER_ISTATUS, 1 | TIMER_ISTATUS).lagging_timers(), 0, "caught up");
        assert_eq!(state(0, 0).lagging_timers(), 0, "disabled: ISTATUS stays clear");
        assert_eq!(
            state(0b11, 1 | TIMER_ISTATUS).lagging_timers(),
            ipc::vcpu::LINE_VIRTUAL_TIMER,
            "IMASK does not matter"
        );
        let early = WakeState { now: 999, ..state(1, 1) };
        assert_eq!(early.lagging_timers(), 0, "one tick before both deadlines");
    }

    #[test]
    fn wfi_sleeps_until_the_earliest_armed_timer() {
        let enabled = |cval| TimerState { ctl: 1, cval };
        let state = WakeState { now: 1_000, cntvoff: 300, ..WakeState::default() };
        assert_eq!(state.wfi(false), WfiOutcome::Sleep, "no timer armed");
        let virtual_only = WakeState { virtual_timer: enabled(2_000), ..state };
        assert_eq!(
            virtual_only.wfi(false),
            WfiOutcome::SleepUntil(2_300),
            "virtual time runs CNTVOFF behind"
        );
        let both = WakeState { physical_timer: enabled(2_100), ..virtual_only };
        assert_eq!(both.wfi(false), WfiOutcome::SleepUntil(2_100));
        assert_eq!(both.wfi(true), WfiOutcome::SleepUntil(2_100), "future deadlines count with a vGIC too");
        let masked = WakeState { physical_timer: TimerState { ctl: 0b11, cval: 1_500 }, ..virtual_only };
        assert_eq!(masked.wfi(false), WfiOutcome::SleepUntil(2_300), "IMASK keeps a timer from waking");
        let due = WakeState { virtual_timer: enabled(700), ..state };
        assert_eq!(due.wfi(false), WfiOutcome::Continue);
        let pending = WakeState { interface: interface([list_register(1, 0x80), 0, 0, 0]), ..virtual_only };
        assert_eq!(pending.wfi(false), WfiOutcome::Continue);
        assert_eq!(pending.wfi(true), WfiOutcome::Continue);
        let far_future = WakeState { virtual_timer: enabled(u64::MAX), ..state };
        assert_eq!(far_future.wfi(false), WfiOutcome::SleepUntil(u64::MAX));
    }

    #[test]
    fn with_a_vgic_an_asserted_timer_is_reported_once_then_waits_for_the_server() {
        let enabled = |cval| TimerState { ctl: 1, cval };
        let due = WakeState { now: 1_000, virtual_timer: enabled(700), ..WakeState::default() };
        assert_eq!(due.wfi(true), WfiOutcome::VgicEvent, "the server does not know yet");
        let reported = WakeState { reported_lines: ipc::vcpu::LINE_VIRTUAL_TIMER, ..due };
        assert_eq!(reported.wfi(true), WfiOutcome::Sleep, "a disabled PPI does not wake the guest");
        assert_eq!(reported.wfi(false), WfiOutcome::Continue, "without a vGIC the deadline wakes");
        let and_later = WakeState { physical_timer: enabled(5_000), ..reported };
        assert_eq!(and_later.wfi(true), WfiOutcome::SleepUntil(5_000));
        let listed = WakeState { interface: interface([0, 0, 0, list_register(1, 0x40)]), ..reported };
        assert_eq!(listed.wfi(true), WfiOutcome::Continue);
        assert_eq!(due.snapshot().hardware_lines, ipc::vcpu::LINE_VIRTUAL_TIMER);
    }

    #[test]
    fn only_a_pending_list_register_the_interface_would_signal_ends_wfi() {
        let pending = list_register(1, 0x80);
        assert!(interface_signals(&interface([0, pending, 0, 0])));
        assert!(!interface_signals(&interface([0; 4])), "nothing listed");
        assert!(!interface_signals(&interface([list_register(2, 0x80); 4])), "active only");
        assert!(!interface_signals(&interface([list_register(3, 0x80), 0, 0, 0])), "active and pending");
        let group0 = pending & !lr::GROUP1;
        assert!(!interface_signals(&interface([group0, 0, 0, 0])), "Group 0 disabled");
        let both_groups =
            GicSnapshot { vmcr: interface([0; 4]).vmcr | vmcr::ENABLE_GROUP0, ..interface([group0; 4]) };
        assert!(interface_signals(&both_groups));
        assert!(!interface_signals(&interface([list_register(1, 0xf8), 0, 0, 0])), "masked by VPMR");
        assert!(interface_signals(&interface([list_register(1, 0xf0), 0, 0, 0])), "just above VPMR");
        // Active at priority 0x80 (bit 16 of AP1R0: 0x80 >> 3): only a higher priority preempts.
        let busy = |lrs| GicSnapshot { ap1r0: 1 << 16, ..interface(lrs) };
        assert!(!interface_signals(&busy([pending, 0, 0, 0])), "same priority");
        assert!(interface_signals(&busy([list_register(1, 0x78), 0, 0, 0])));
        // Binary point 4 for Group 1: 0x78 preempts as 0x70, 0x88 as 0x80 (not above 0x80).
        let coarse = GicSnapshot { vmcr: busy([0; 4]).vmcr | 4 << vmcr::BINARY_POINT1_SHIFT, ..busy([0; 4]) };
        let coarse = |lrs| GicSnapshot { lrs, ..coarse };
        assert!(interface_signals(&coarse([list_register(1, 0x78), 0, 0, 0])));
        assert!(!interface_signals(&coarse([list_register(1, 0x88), 0, 0, 0])));
    }

    #[test]
    fn timer_lines_and_ppi_masks_convert_both_ways() {
        use ipc::vcpu::{LINE_PHYSICAL_TIMER, LINE_VIRTUAL_TIMER};
        assert_eq!(timer_ppi_mask(LINE_VIRTUAL_TIMER | LINE_PHYSICAL_TIMER), 1 << 27 | 1 << 30);
        assert_eq!(timer_ppi_mask(LINE_PHYSICAL_TIMER), 1 << 30);
        assert_eq!(timer_lines(1 << 27 | 1 << 26 | 1), LINE_VIRTUAL_TIMER);
        assert_eq!(timer_lines(timer_ppi_mask(LINE_PHYSICAL_TIMER)), LINE_PHYSICAL_TIMER);
    }

    #[test]
    fn held_timer_ppis_are_deactivated_once_unlisted_and_down() {
        use ipc::vcpu::{LINE_PHYSICAL_TIMER, LINE_VIRTUAL_TIMER};
        let both = LINE_VIRTUAL_TIMER | LINE_PHYSICAL_TIMER;
        let hardware = |state: u64, pintid: u64| state << 62 | lr::HW | pintid << lr::PINTID_SHIFT | 27;
        assert_eq!(timer_ppis_to_deactivate(both, 0, &[0; 4]), both);
        assert_eq!(timer_ppis_to_deactivate(both, LINE_VIRTUAL_TIMER, &[0; 4]), LINE_PHYSICAL_TIMER);
        assert_eq!(timer_ppis_to_deactivate(LINE_VIRTUAL_TIMER, 0, &[0; 4]), LINE_VIRTUAL_TIMER);
        let listed = [0, hardware(2, 27), 0, hardware(1, 30)];
        assert_eq!(timer_ppis_to_deactivate(both, 0, &listed), 0, "the guest's EOI deactivates them");
        let invalid = [hardware(0, 27), 0, 0, 0];
        assert_eq!(timer_ppis_to_deactivate(both, 0, &invalid), both, "an invalid LR holds nothing");
        let software = [2 << 62 | 27, 0, 0, 0];
        assert_eq!(timer_ppis_to_deactivate(both, 0, &software), both, "HW = 0 is not the physical one");
    }

    #[test]
    fn timer_lines_are_up_when_enabled_unmasked_and_due() {
        use ipc::vcpu::{LINE_PHYSICAL_TIMER, LINE_VIRTUAL_TIMER};
        let timer = |ctl, cval| TimerState { ctl, cval };
        let state = WakeState { now: 1_000, cntvoff: 300, ..WakeState::default() };
        assert_eq!(state.hardware_lines(), 0, "both timers off");
        let virtual_due = WakeState { virtual_timer: timer(1, 700), ..state };
        assert_eq!(virtual_due.hardware_lines(), LINE_VIRTUAL_TIMER);
        let virtual_not_yet = WakeState { virtual_timer: timer(1, 701), ..state };
        assert_eq!(virtual_not_yet.hardware_lines(), 0, "virtual time runs CNTVOFF behind");
        let physical_due = WakeState { physical_timer: timer(1, 1_000), ..virtual_due };
        assert_eq!(physical_due.hardware_lines(), LINE_VIRTUAL_TIMER | LINE_PHYSICAL_TIMER);
        let masked = WakeState { physical_timer: timer(0b11, 0), ..state };
        assert_eq!(masked.hardware_lines(), 0, "IMASK holds the line down");
    }
}
