//! `memcpy` and `memset` for components, replacing the generic ones from compiler-builtins.
//!
//! The component target is `strict-align` without FP/SIMD registers, so LLVM turns every
//! copy or clear of a whole `ipc::Message` (136 bytes) into a call instead of inline
//! stores, and the generic routines move one word per loop turn after a byte-wise
//! alignment prologue. These move four words per turn (`ldp`/`stp`) when both pointers are
//! 8-byte aligned, which every `Message` is, and fall back to bytes otherwise, so they
//! never make an unaligned access.

core::arch::global_asm!(
    ".pushsection .text.memcpy, \"ax\"",
    ".globl memcpy",
    ".type memcpy, %function",
    // x0 = destination (returned unchanged), x1 = source, x2 = length in bytes.
    "memcpy:",
    "    mov x3, x0",
    "    orr x4, x0, x1",
    "    tst x4, #7",
    "    b.ne 3f",
    "    subs x2, x2, #32",
    "    b.lo 2f",
    "1:  ldp x4, x5, [x1], #16",
    "    ldp x6, x7, [x1], #16",
    "    stp x4, x5, [x3], #16",
    "    stp x6, x7, [x3], #16",
    "    subs x2, x2, #32",
    "    b.hs 1b",
    // x2 is now the remainder minus 32, which has the same low five bits as the remainder.
    "2:  tbz x2, #4, 6f",
    "    ldp x4, x5, [x1], #16",
    "    stp x4, x5, [x3], #16",
    "6:  tbz x2, #3, 7f",
    "    ldr x4, [x1], #8",
    "    str x4, [x3], #8",
    "7:  and x2, x2, #7",
    "3:  cbz x2, 5f",
    "4:  ldrb w4, [x1], #1",
    "    strb w4, [x3], #1",
    "    subs x2, x2, #1",
    "    b.ne 4b",
    "5:  ret",
    ".size memcpy, . - memcpy",
    ".popsection",
    "",
    ".pushsection .text.memset, \"ax\"",
    ".globl memset",
    ".type memset, %function",
    // x0 = destination (returned unchanged), w1 = byte value, x2 = length in bytes.
    "memset:",
    "    mov x3, x0",
    "    and x4, x1, #0xff",
    "    tst x0, #7",
    "    b.ne 3f",
    // Replicate the byte into all eight bytes of x4.
    "    orr x4, x4, x4, lsl #8",
    "    orr x4, x4, x4, lsl #16",
    "    orr x4, x4, x4, lsl #32",
    "    subs x2, x2, #32",
    "    b.lo 2f",
    "1:  stp x4, x4, [x3], #16",
    "    stp x4, x4, [x3], #16",
    "    subs x2, x2, #32",
    "    b.hs 1b",
    // As in memcpy: the low five bits of x2 are those of the remainder.
    "2:  tbz x2, #4, 6f",
    "    stp x4, x4, [x3], #16",
    "6:  tbz x2, #3, 7f",
    "    str x4, [x3], #8",
    "7:  and x2, x2, #7",
    "3:  cbz x2, 5f",
    "4:  strb w4, [x3], #1",
    "    subs x2, x2, #1",
    "    b.ne 4b",
    "5:  ret",
    ".size memset, . - memset",
    ".popsection",
);
