//! Entry points, EL2 register setup, per-CPU data and kernel stacks.
//!
//! QEMU enters `_start` (at its physical address) on the boot CPU at EL2 with the MMU
//! off; PSCI `CPU_ON` enters [`secondary_entry`] the same way with the CPU's index in x0.
//! Both switch on VHE (HCR_EL2.E2H, TGE), load the translation registers and turn on the
//! MMU while running from the identity map in TTBR0_EL2, then jump to the kernel's linked
//! address in the TTBR1_EL2 linear map, set up their stack and per-CPU pointer, and call
//! `primary_main` (on a larger boot stack) or `secondary_main`.
//!
//! The boot CPU first builds the boot tables: one level-1 table, shared by both halves,
//! that maps physical 0..4 GiB with 1 GiB blocks (device memory below 1 GiB). The kernel
//! soon replaces its TTBR1_EL2 with finer tables (`memory::install_kernel_map`), which
//! the other CPUs load directly; TTBR0_EL2 keeps the identity map until a thread runs.

use super::guest::{HCR_COMPONENT, Mode};
use core::arch::global_asm;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use kernel::address::{PAGE_SIZE, Va};
use kernel::pagetable::{self, LeafAttributes, MemoryType, Table};

/// Size of each CPU's kernel stack (what one kernel entry needs).
const STACK_SIZE: usize = 64 * 1024;
/// Size of the stack CPU 0 boots on: `Kernel::new` builds the kernel objects (under 96
/// KiB, a host test says) in its frame, and the value is copied on its way into the
/// static.
const BOOT_STACK_SIZE: usize = 512 * 1024;

/// A kernel stack with a guard page below it that the kernel map leaves unmapped, so an
/// overflow faults instead of corrupting memory.
#[repr(C, align(4096))]
pub struct GuardedStack<const SIZE: usize> {
    guard: [u8; PAGE_SIZE as usize],
    stack: [u8; SIZE],
}

impl<const SIZE: usize> GuardedStack<SIZE> {
    const ZERO: Self = Self { guard: [0; PAGE_SIZE as usize], stack: [0; SIZE] };
}

/// Every CPU's kernel stack (in `.bss`), used for every exception.
static mut KERNEL_STACKS: [GuardedStack<STACK_SIZE>; bootinfo::MAX_CPUS] =
    [GuardedStack::ZERO; bootinfo::MAX_CPUS];

/// CPU 0's stack from `_start` until it first enters the scheduler.
static mut BOOT_STACK: GuardedStack<BOOT_STACK_SIZE> = GuardedStack::ZERO;

/// Physical addresses of the stacks' guard pages, in ascending order.
pub fn guard_pages() -> [u64; bootinfo::MAX_CPUS + 1] {
    let stacks = (&raw const KERNEL_STACKS).cast::<GuardedStack<STACK_SIZE>>();
    let mut guards = [Va((&raw const BOOT_STACK) as u64).kernel_to_pa().0; bootinfo::MAX_CPUS + 1];
    for (cpu, guard) in guards.iter_mut().skip(1).enumerate() {
        *guard = Va(stacks.wrapping_add(cpu) as u64).kernel_to_pa().0;
    }
    guards.sort_unstable();
    guards
}

/// The boot tables: a level-0 table whose entry 0 points at a level-1 table.
#[repr(C, align(4096))]
struct BootTables {
    level0: Table,
    level1: Table,
}

/// Written by `_start` with the MMU off, then only walked by the MMU.
static mut BOOT_TABLES: BootTables = BootTables { level0: [0; 512], level1: [0; 512] };

/// TTBR1_EL2 for CPUs started after the boot CPU installed the final kernel tables.
/// Secondary CPUs read it with the MMU off, so its writer cleans it to the point of
/// coherency.
pub static KERNEL_TTBR1: AtomicU64 = AtomicU64::new(0);

/// Data private to one CPU, found through TPIDR_EL2.
#[repr(C)]
pub struct PerCpu {
    /// Top of this CPU's kernel stack: the exception vectors load it into SP.
    kernel_stack_top: AtomicU64,
    /// Index of this CPU (0 boots).
    cpu: AtomicUsize,
    /// Whether HCR_EL2 is set for a guest or for components.
    mode: Mode,
    /// The vCPU whose EL1 state is live on this CPU ([`NO_VCPU`] if none).
    loaded_vcpu: AtomicU32,
    /// Timer lines (`ipc::vcpu::LINE_*` bits) whose physical PPI this CPU acknowledged for
    /// its loaded vCPU and may still hold active (the guest's EOI of a hardware-linked
    /// list register may have ended that already).
    timer_ppis_held: AtomicU64,
}

/// [`PerCpu::loaded_vcpu`]'s value for none.
const NO_VCPU: u32 = u32::MAX;

impl PerCpu {
    /// Index of this CPU.
    #[inline(always)]
    pub fn cpu(&self) -> usize {
        let cpu = self.cpu.load(Ordering::Relaxed);
        // SAFETY: the boot code stores each CPU's index here once: 0 for the boot CPU, and
        // the index `main` gave PSCI CPU_ON for the others, which is below the CPU count
        // it checked against `MAX_CPUS`. Telling the compiler spares the kernel's per-CPU
        // tables their bounds checks.
        unsafe { core::hint::assert_unchecked(cpu < bootinfo::MAX_CPUS) };
        cpu
    }

    /// Whether a guest or a component runs here, and the switch between them.
    #[inline(always)]
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// The vCPU whose EL1 state is live on this CPU, if any. Here rather than in the
    /// kernel's tables so that the guest fast paths find it beside the CPU's index; like
    /// them, it changes only under the kernel lock, which other CPUs hold to read it.
    #[inline(always)]
    pub fn loaded_vcpu(&self) -> Option<u16> {
        u16::try_from(self.loaded_vcpu.load(Ordering::Relaxed)).ok()
    }

    /// Whether vCPU `vcpu`'s EL1 state is live on this CPU: [`PerCpu::loaded_vcpu`] in one
    /// comparison.
    #[inline(always)]
    pub fn holds_vcpu(&self, vcpu: u16) -> bool {
        self.loaded_vcpu.load(Ordering::Relaxed) == u32::from(vcpu)
    }

    /// Records the vCPU whose EL1 state is live on this CPU (see [`PerCpu::loaded_vcpu`]).
    #[inline(always)]
    pub fn set_loaded_vcpu(&self, vcpu: Option<u16>) {
        self.loaded_vcpu.store(vcpu.map_or(NO_VCPU, u32::from), Ordering::Relaxed);
    }

    /// The timer lines whose PPI this CPU holds active for its loaded vCPU (changed, like
    /// [`PerCpu::loaded_vcpu`], only under the kernel lock).
    #[inline(always)]
    pub fn timer_ppis_held(&self) -> u64 {
        self.timer_ppis_held.load(Ordering::Relaxed)
    }

    /// Records the timer lines whose PPI this CPU holds active for its loaded vCPU.
    #[inline(always)]
    pub fn set_timer_ppis_held(&self, lines: u64) {
        self.timer_ppis_held.store(lines, Ordering::Relaxed);
    }
}

/// Loads `ttbr0` (table root | ASID << 48), a component's address space. Unconditionally:
/// writing the value already loaded is harmless (ASID-tagged tables need no TLB
/// maintenance) and costs less than comparing first. No barrier: the kernel never uses
/// TTBR0 addresses, and the exception return that enters the thread synchronizes the
/// change.
#[inline(always)]
pub fn switch_address_space(ttbr0: u64) {
    // SAFETY: TTBR0_EL2 only translates EL0 addresses once the CPU runs from the linear map;
    // every vspace table is complete before any thread runs.
    unsafe { core::arch::asm!("msr ttbr0_el2, {}", in(reg) ttbr0, options(nostack, preserves_flags)) };
}

/// Per-CPU data of every CPU; each CPU writes only its own entry.
pub static PER_CPU: [PerCpu; bootinfo::MAX_CPUS] = [const {
    PerCpu {
        kernel_stack_top: AtomicU64::new(0),
        cpu: AtomicUsize::new(0),
        mode: Mode::component(),
        loaded_vcpu: AtomicU32::new(NO_VCPU),
        timer_ppis_held: AtomicU64::new(0),
    }
}; bootinfo::MAX_CPUS];

/// Offset of [`PerCpu`]'s stack top, for the exception vectors.
pub const PER_CPU_STACK_TOP: usize = offset_of!(PerCpu, kernel_stack_top);

/// TCR_EL2 in its E2H (TCR_EL1) layout, IPS left to fill in: 48-bit VAs in both halves
/// (T0SZ = T1SZ = 16), 4 KiB granules, walks inner shareable write-back cacheable, 16-bit
/// ASIDs taken from TTBR0.
const TCR: u64 = 16 // T0SZ
    | 0b01 << 8 // IRGN0: write-back read/write-allocate
    | 0b01 << 10 // ORGN0
    | 0b11 << 12 // SH0: inner shareable; TG0 (bits 15:14) = 0b00: 4 KiB
    | 16 << 16 // T1SZ
    | 0b01 << 24 // IRGN1
    | 0b01 << 26 // ORGN1
    | 0b11 << 28 // SH1
    | 0b10 << 30 // TG1: 4 KiB
    | 1 << 36; // AS: 16-bit ASIDs

/// SCTLR_EL2 in its E2H (SCTLR_EL1) layout. MMU, data and instruction caches on; EL0
/// stack alignment checked (SA0) but not EL2's (SA): SP points at a thread's
/// `UserContext` on exception entry, which needs only 8-byte alignment. UMA = 0 so EL0
/// cannot mask interrupts; WFI/WFE at EL0 trap (nTWI = nTWE = 0); EL0 may read CTR_EL0
/// and use DC ZVA. Exception entry and return are context synchronizing (EIS, EOS); PAN
/// is left alone (SPAN); the rest are RES1 bits of older architecture versions.
const SCTLR: u64 = 1 // M
    | 1 << 2 // C
    | 1 << 4 // SA0
    | 1 << 11 // EOS
    | 1 << 12 // I
    | 1 << 14 // DZE
    | 1 << 15 // UCT
    | 1 << 20 // TSCXT
    | 1 << 22 // EIS
    | 1 << 23 // SPAN
    | 1 << 28 // nTLSMD
    | 1 << 29; // LSMAOE

/// CPTR_EL2 in its E2H (CPACR_EL1) layout: FPEN = 0b01, so FP/SIMD traps at EL0 while
/// HCR_EL2.TGE is set (components, which are soft-float) and never while it is clear
/// (guests, at EL1 and EL0); SVE and SME trap (QEMU runs with them off).
const CPTR: u64 = 0b01 << 20;

/// CNTHCTL_EL2 in its E2H layout: EL0 may read the counters (EL0PCTEN, EL0VCTEN) but not
/// touch either timer (EL0PTEN, EL0VTEN clear: the physical one is the kernel's tick);
/// EL1 may use the physical counter and timer (EL1PCTEN, EL1PCEN).
const CNTHCTL: u64 = 1 | 1 << 1 | 1 << 10 | 1 << 11;

/// Boot-table entry for physical 0..1 GiB: device memory, kernel only, never executed.
/// Not global, like every boot-table entry: the same table serves as the TTBR0_EL2
/// identity map, and its entries must not hit for components' ASIDs later.
const BOOT_DEVICE_BLOCK: u64 =
    LeafAttributes::kernel(MemoryType::Device, true, false).not_global().block_bits();
/// Boot-table entry for RAM: normal memory, kernel read/write/execute.
const BOOT_NORMAL_BLOCK: u64 =
    LeafAttributes::kernel(MemoryType::Normal, true, true).not_global().block_bits();

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    msr     daifset, #0xf
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.ne    9f

    // Zero .bss (PC-relative addresses are physical while the MMU is off).
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b

    // Boot tables: level-0 entry 0 -> level-1 table; level-1 entries 0..3 map 0..4 GiB.
2:  adrp    x9, {boot_tables}
    add     x9, x9, :lo12:{boot_tables}
    add     x10, x9, #4096
    ldr     x11, ={table}
    orr     x11, x11, x10
    str     x11, [x9]
    ldr     x11, ={device_block}
    str     x11, [x10]
    ldr     x11, ={normal_block}
    mov     x12, #(1 << 30)
    add     x11, x11, x12
    str     x11, [x10, #8]
    add     x11, x11, x12
    str     x11, [x10, #16]
    add     x11, x11, x12
    str     x11, [x10, #24]
    dsb     ish
    mov     x0, #0
    mov     x1, x9
    b       3f

    .global secondary_entry
secondary_entry:
    msr     daifset, #0xf
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.ne    9f
    adrp    x1, {kernel_ttbr1}
    ldr     x1, [x1, :lo12:{kernel_ttbr1}]

    // Common EL2 setup. x0: CPU index, x1: TTBR1_EL2.
3:  ldr     x9, ={hcr}
    msr     hcr_el2, x9
    isb
    ldr     x9, ={mair}
    msr     mair_el2, x9
    ldr     x9, ={tcr}
    mrs     x10, id_aa64mmfr0_el1
    and     x10, x10, #0xf
    mov     x11, #5                 // IPS: the CPU's PA size, at most 48 bits
    cmp     x10, x11
    csel    x10, x10, x11, lo
    bfi     x9, x10, #32, #3
    msr     tcr_el2, x9
    adrp    x9, {boot_tables}
    add     x9, x9, :lo12:{boot_tables}
    msr     ttbr0_el2, x9
    msr     S3_4_C2_C0_1, x1    // TTBR1_EL2 (VHE; the assembler lacks the name)
    ldr     x9, ={cptr}
    msr     cptr_el2, x9
    ldr     x9, ={cnthctl}
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    msr     spsel, #1
    isb
    tlbi    alle2
    dsb     nsh
    isb
    ldr     x9, ={sctlr}
    msr     sctlr_el2, x9
    isb
    ldr     x9, =4f
    br      x9

    // Running at the linked address. TPIDR_EL2 = &PER_CPU[x0]; SP = its stack top.
4:  adrp    x9, {per_cpu}
    add     x9, x9, :lo12:{per_cpu}
    mov     x10, #{per_cpu_size}
    madd    x9, x0, x10, x9
    msr     tpidr_el2, x9
    adrp    x10, {stacks}
    add     x10, x10, :lo12:{stacks}
    ldr     x11, ={stack_stride}
    add     x12, x0, #1
    madd    x10, x12, x11, x10
    str     x10, [x9, #{stack_top}]
    str     x0, [x9, #{cpu_index}]
    adrp    x11, exception_vectors
    add     x11, x11, :lo12:exception_vectors
    msr     vbar_el2, x11
    isb
    cbnz    x0, 5f
    adrp    x10, {boot_stack}
    add     x10, x10, :lo12:{boot_stack}
    ldr     x11, ={boot_stack_size}
    add     sp, x10, x11
    b       {primary}
5:  mov     sp, x10
    b       {secondary}

9:  wfe                             // not entered at EL2: nothing can be done
    b       9b

    // Loads TTBR1_EL2 (x0) and flushes this CPU's TLB; called at its physical address
    // through the identity map, so no translation it uses changes under it.
    .global switch_kernel_tables
switch_kernel_tables:
    msr     S3_4_C2_C0_1, x0    // TTBR1_EL2
    isb
    tlbi    alle2
    dsb     nsh
    isb
    ret
    .ltorg
    "#,
    boot_tables = sym BOOT_TABLES,
    kernel_ttbr1 = sym KERNEL_TTBR1,
    per_cpu = sym PER_CPU,
    stacks = sym KERNEL_STACKS,
    boot_stack = sym BOOT_STACK,
    primary = sym crate::primary_main,
    secondary = sym crate::secondary_main,
    table = const pagetable::table_descriptor(kernel::address::Pa(0)),
    device_block = const BOOT_DEVICE_BLOCK,
    normal_block = const BOOT_NORMAL_BLOCK,
    hcr = const HCR_COMPONENT,
    mair = const pagetable::MAIR,
    tcr = const TCR,
    cptr = const CPTR,
    cnthctl = const CNTHCTL,
    sctlr = const SCTLR,
    per_cpu_size = const core::mem::size_of::<PerCpu>(),
    stack_stride = const core::mem::size_of::<GuardedStack<STACK_SIZE>>(),
    boot_stack_size = const core::mem::size_of::<GuardedStack<BOOT_STACK_SIZE>>(),
    stack_top = const PER_CPU_STACK_TOP,
    cpu_index = const offset_of!(PerCpu, cpu),
);

unsafe extern "C" {
    /// Boot code entry of CPUs started by PSCI `CPU_ON` (called at its physical address).
    pub fn secondary_entry() -> !;
    /// The TTBR1_EL2 switch (see the assembly); only ever called at its physical address.
    pub fn switch_kernel_tables(ttbr1: u64);
}
