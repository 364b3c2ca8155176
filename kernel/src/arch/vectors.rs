//! The EL2 exception vectors and the return to EL0.
//!
//! While a thread runs, SP_EL2 points at its [`UserContext`], so an exception from EL0
//! stores the thread's registers straight into it with no scratch register, then loads
//! this CPU's kernel stack from [`PerCpu`](super::boot::PerCpu) (TPIDR_EL2) and calls the
//! Rust handler, which returns the context to resume. [`exit_to_user`] loads that context
//! and returns to EL0 with SP_EL2 pointing at it again.
//!
//! The synchronous slot from AArch64 first saves only what the IPC fast path needs
//! (`x6`, `x7`, `x18..=x30`, SP_EL0, ELR, SPSR, TPIDR_EL0). An `svc` with `Call` or
//! `ReplyRecv` in `x7` then goes straight to `fast_ipc_entry` for it with its
//! arguments still in `x0..=x5` and `x6` = the `PerCpu`. Every other
//! exception, and a fast path that declines (having stored `x0..=x5` itself), finishes
//! the save (`x8..=x17`, TPIDRRO_EL0) and takes the generic handler. So after a fast
//! hand-off the caller's saved `x0..=x5` and `x8..=x17` are stale: its `x0..=x6` get the
//! reply or message before it runs again, and the ABI lets `Call` and `ReplyRecv` clobber
//! `x8..=x17` (they come back with values of the same thread). TPIDRRO_EL0 needs no save
//! there: EL0 cannot write it, so a component's saved copy is still the live value.
//!
//! A vCPU's context has the same layout (its general registers, PC and PSTATE, and the
//! EL0 registers it shares with components), so guests use the same paths; the handlers
//! tell the two apart by the CPU's mode. Only a guest's EL0 can run AArch32, so the
//! AArch32 slots lead to the same handlers.
//!
//! Exceptions taken at EL2 itself are kernel bugs: they reset SP to the top of the kernel
//! stack (which also copes with a stack overflow into the guard page) and panic.

use core::arch::global_asm;
use core::mem::offset_of;
use kernel::UserContext;

/// What a vector slot that cannot happen in a correct kernel reports (its index).
pub const KERNEL_EXCEPTION_KINDS: [&str; 8] = [
    "synchronous (EL2, SP_EL0)",
    "IRQ (EL2, SP_EL0)",
    "FIQ (EL2, SP_EL0)",
    "SError (EL2, SP_EL0)",
    "synchronous (EL2)",
    "IRQ (EL2)",
    "FIQ (EL2)",
    "SError (EL2)",
];

global_asm!(
    r#"
    .macro KERNEL_EXCEPTION kind
    mrs     x0, tpidr_el2
    ldr     x1, [x0, #{stack_top}]
    mov     sp, x1
    mov     x0, #\kind
    b       {kernel_exception}
    .endm

    // Saves the interrupted thread's registers into the UserContext at SP, leaves x0 =
    // this CPU's PerCpu and SP = its kernel stack top.
    .macro SAVE_USER_CONTEXT
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x0, sp_el0
    stp     x30, x0, [sp, #{sp_el0} - 8]
    mrs     x0, elr_el2
    mrs     x1, spsr_el2
    stp     x0, x1, [sp, #{elr}]
    mrs     x0, tpidr_el0
    mrs     x1, tpidrro_el0
    stp     x0, x1, [sp, #{tpidr_el0}]
    mrs     x0, tpidr_el2
    ldr     x1, [x0, #{stack_top}]
    mov     sp, x1
    .endm

    // The part of SAVE_USER_CONTEXT that the IPC fast path needs: everything but x0..x5
    // (its arguments, which it stores itself if it declines), x8..x17 (which Call and
    // ReplyRecv may clobber) and TPIDRRO_EL0 (which EL0 cannot change); leaves SP at the
    // UserContext.
    .macro SAVE_FOR_FAST_PATH
    stp     x6, x7, [sp, #16 * 3]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x19, sp_el0
    stp     x30, x19, [sp, #{sp_el0} - 8]
    mrs     x19, elr_el2
    mrs     x20, spsr_el2
    stp     x19, x20, [sp, #{elr}]
    mrs     x19, tpidr_el0
    str     x19, [sp, #{tpidr_el0}]
    .endm

    .section .text.vectors, "ax"
    .balign 2048
    .global exception_vectors
exception_vectors:
    .org exception_vectors + 0x000
    KERNEL_EXCEPTION 0
    .org exception_vectors + 0x080
    KERNEL_EXCEPTION 1
    .org exception_vectors + 0x100
    KERNEL_EXCEPTION 2
    .org exception_vectors + 0x180
    KERNEL_EXCEPTION 3
    .org exception_vectors + 0x200
    KERNEL_EXCEPTION 4
    .org exception_vectors + 0x280
    KERNEL_EXCEPTION 5
    .org exception_vectors + 0x300
    KERNEL_EXCEPTION 6
    .org exception_vectors + 0x380
    KERNEL_EXCEPTION 7

    // Lower EL, AArch64: components and guests.
    .org exception_vectors + 0x400
    SAVE_FOR_FAST_PATH
    // A Call or ReplyRecv (x7 = 0 or 1) by svc goes to its fast path with x0..x5 as they
    // are and x6 = PerCpu; x20 keeps the UserContext.
    mrs     x19, esr_el2
    ubfx    x19, x19, #26, #6
    cmp     x19, #{ec_svc64}
    ccmp    x7, #{reply_recv}, #0b0010, eq
    b.hi    save_arguments_lower_sync
    mov     x20, sp
    mrs     x6, tpidr_el2
    ldr     x19, [x6, #{stack_top}]
    mov     sp, x19
    b.eq    fast_reply_recv_entry
    bl      {fast_call}
    cbnz    x0, exit_to_user
    mov     sp, x20
    b       finish_save_lower_sync
    .org exception_vectors + 0x480
    SAVE_USER_CONTEXT
    bl      {lower_irq}
    b       exit_to_user
    .org exception_vectors + 0x500
    SAVE_USER_CONTEXT
    bl      {lower_irq}
    b       exit_to_user
    .org exception_vectors + 0x580
    SAVE_USER_CONTEXT
    bl      {lower_serror}
    b       exit_to_user

    // Lower EL, AArch32: a guest's EL0 (r0-r14 are x0-x14).
    .org exception_vectors + 0x600
    SAVE_USER_CONTEXT
    bl      {lower_sync}
    b       exit_to_user
    .org exception_vectors + 0x680
    SAVE_USER_CONTEXT
    bl      {lower_irq}
    b       exit_to_user
    .org exception_vectors + 0x700
    SAVE_USER_CONTEXT
    bl      {lower_irq}
    b       exit_to_user
    .org exception_vectors + 0x780
    SAVE_USER_CONTEXT
    bl      {lower_serror}
    b       exit_to_user
    .org exception_vectors + 0x800

    // The ReplyRecv leg of the 0x400 vector (out of its slot for lack of room).
fast_reply_recv_entry:
    bl      {fast_reply_recv}
    cbnz    x0, exit_to_user
    mov     sp, x20
    b       finish_save_lower_sync

    // The rest of SAVE_USER_CONTEXT after SAVE_FOR_FAST_PATH (SP at the UserContext),
    // then the generic synchronous handler.
save_arguments_lower_sync:
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
finish_save_lower_sync:
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    mrs     x0, tpidrro_el0
    str     x0, [sp, #{tpidr_el0} + 8]
    mrs     x0, tpidr_el2
    ldr     x1, [x0, #{stack_top}]
    mov     sp, x1
    bl      {lower_sync}
    b       exit_to_user

    // With SP at a UserContext: loads its system registers and x30, using the two
    // scratch registers given.
    .macro RESTORE_SYSTEM_REGISTERS a, b
    ldp     \a, \b, [sp, #{elr}]
    msr     elr_el2, \a
    msr     spsr_el2, \b
    ldp     \a, \b, [sp, #{tpidr_el0}]
    msr     tpidr_el0, \a
    msr     tpidrro_el0, \b
    ldp     x30, \a, [sp, #{sp_el0} - 8]
    msr     sp_el0, \a
    .endm

    // With SP at a UserContext: loads x8..x29 and returns to it.
    .macro RESTORE_FROM_X8_AND_RETURN
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    eret
    .endm

    // x0: the UserContext to resume at EL0.
    .global exit_to_user
exit_to_user:
    mov     sp, x0
    RESTORE_SYSTEM_REGISTERS x0, x1
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    RESTORE_FROM_X8_AND_RETURN

    // x0..x6: the first registers of the thread to resume (a message handed to it, which
    // its context does not hold); x7: its UserContext.
    .global exit_with_message
exit_with_message:
    mov     sp, x7
    RESTORE_SYSTEM_REGISTERS x7, x8
    ldr     x7, [sp, #8 * 7]
    RESTORE_FROM_X8_AND_RETURN
    "#,
    stack_top = const super::boot::PER_CPU_STACK_TOP,
    sp_el0 = const offset_of!(UserContext, sp_el0),
    elr = const offset_of!(UserContext, elr),
    tpidr_el0 = const offset_of!(UserContext, tpidr_el0),
    kernel_exception = sym crate::kernel_exception,
    lower_sync = sym crate::lower_sync,
    fast_call = sym crate::fast_ipc_entry::<false>,
    fast_reply_recv = sym crate::fast_ipc_entry::<true>,
    reply_recv = const ipc::Syscall::ReplyRecv as u64,
    ec_svc64 = const crate::EC_SVC64,
    lower_irq = sym crate::lower_irq,
    lower_serror = sym crate::lower_serror,
);

// The vector's test for a fast-path candidate (`x7` at most ReplyRecv, and which) relies on
// these numbers.
const _: () = assert!(ipc::Syscall::Call as u64 == 0 && ipc::Syscall::ReplyRecv as u64 == 1);

// The assembly relies on this layout: x0..x30 first, SP_EL0 right after x30, ELR then
// SPSR, TPIDR_EL0 then TPIDRRO_EL0.
const _: () = {
    assert!(offset_of!(UserContext, x) == 0);
    assert!(offset_of!(UserContext, sp_el0) == 31 * 8);
    assert!(offset_of!(UserContext, spsr) == offset_of!(UserContext, elr) + 8);
    assert!(offset_of!(UserContext, tpidrro_el0) == offset_of!(UserContext, tpidr_el0) + 8);
};

unsafe extern "C" {
    /// Resumes the thread whose saved registers `context` holds (a component at EL0, a
    /// vCPU at EL1 or its EL0).
    pub fn exit_to_user(context: *mut UserContext) -> !;

    /// Resumes the component whose saved registers `context` holds with `x0..=x6` as given
    /// instead of its saved ones: a message handed to it in registers only.
    #[allow(clippy::too_many_arguments, reason = "the seven registers, each in its own")]
    pub fn exit_with_message(
        x0: u64,
        x1: u64,
        x2: u64,
        x3: u64,
        x4: u64,
        x5: u64,
        x6: u64,
        context: *mut UserContext,
    ) -> !;
}
