//! kernel: the EL2 microkernel's architecture-independent core, tested on the host.
//!
//! The target binary (`main.rs` and `arch/`) is a thin shell: it saves a thread's
//! registers into its [`UserContext`], takes the big kernel lock, calls one of the
//! [`Kernel`] entry points, asks [`Kernel::schedule`] which thread runs next on this CPU,
//! prepares it (a component's address space; a vCPU's EL1 state and the
//! [`VcpuRequest`] waiting for it, see [`Kernel::thread_kind`]), and restores that
//! thread's context. Everything that touches hardware goes through the [`Platform`]
//! trait, which tests fake; the decoding of guest traps and the EL1 state of injected
//! exceptions are pure functions in [`guest`].
//!
//! ```ignore
//! let mut kernel = Kernel::new(boot_info)?;
//! kernel.handle_syscall(cpu, &mut platform);         // a component's `svc`
//! kernel.handle_vcpu_trap(cpu, &trap, &mut platform); // a guest's trap to EL2
//! let next = kernel.schedule(cpu);
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod address;
pub mod guest;
pub mod pagetable;

// The object model, capability lookup, scheduler and syscalls (see `objects` module docs).
mod objects;
pub use objects::*;

/// A thread's saved register state: a component's EL0 registers, or a vCPU's general
/// registers, PC and PSTATE (at EL1 or its EL0) with the EL0 registers guests share with
/// components.
///
/// The exception vectors store and load this layout directly: keep the field order and
/// offsets in step with `arch/vectors.rs`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    /// General registers x0..=x30.
    pub x: [u64; 31],
    /// SP_EL0.
    pub sp_el0: u64,
    /// Return address (ELR_EL2).
    pub elr: u64,
    /// Saved program status (SPSR_EL2).
    pub spsr: u64,
    /// TPIDR_EL0 (thread pointer, shared between EL0 components and guests).
    pub tpidr_el0: u64,
    /// TPIDRRO_EL0.
    pub tpidrro_el0: u64,
}

/// SPSR value for a component entering EL0 (EL0t, AArch64, DAIF clear).
pub const SPSR_EL0T: u64 = 0;

/// What the core needs from the machine. The target shell implements it on the real
/// hardware; tests implement it with recorders.
pub trait Platform {
    /// Interrupt `cpu` so it re-runs the scheduler (an SGI on the target).
    fn kick_cpu(&mut self, cpu: usize);
    /// Lets the physical interrupt `intid` be delivered again (deactivates it).
    fn irq_ack(&mut self, intid: u32);
    /// Writes bytes to the kernel console.
    fn console_write(&mut self, bytes: &[u8]);
    /// The kernel-virtual address of the physical page `pa` (an IPC buffer).
    fn phys_to_virt(&self, pa: u64) -> *mut u8;
    /// Prints the result line with the boot-info nonce and powers the machine off.
    /// The real platform does not return; a test platform records the status.
    fn shutdown(&mut self, nonce: u64, status: u32);
    /// What could end a WFI of the vCPU that just trapped on the calling CPU (its timer
    /// and GIC state are loaded there), with the timer lines whose physical PPIs the
    /// kernel holds active there.
    fn guest_wake_state(&mut self, cpu: usize) -> guest::WakeState;
    /// The virtual CPU interface state and timer lines now of `vcpu`, which is pinned to
    /// the calling CPU `cpu`: live if loaded there, else saved (what a vGIC event carries).
    fn vcpu_event_snapshot(&mut self, cpu: usize, vcpu: VcpuId) -> ipc::vcpu::GicSnapshot;
    /// Interrupts `cpu` (another CPU) so that it calls [`Kernel::complete_syncs`] (the
    /// kernel's own SGI for stopping vCPUs, on the target).
    fn stop_vcpus(&mut self, cpu: usize);
    /// Makes `cpu` (the calling CPU) call [`Kernel::wake_sleepers`] once the physical
    /// counter reaches `deadline`, if it does not already by then.
    fn set_wakeup(&mut self, cpu: usize, deadline: u64);
    /// The virtual CPU interface state of `vcpu`, which runs nowhere now, with its timer
    /// lines at this moment: from its saved state, which first takes in the live state if
    /// the calling CPU `cpu` holds it loaded.
    fn vcpu_gic_state(&mut self, cpu: usize, vcpu: VcpuId)
    -> Result<ipc::vcpu::GicSnapshot, LoadedElsewhere>;
    /// Replaces the list registers and ICH_HCR_EL2 UIE/NPIE of `vcpu`, which runs nowhere
    /// now, as [`Platform::vcpu_gic_state`] finds them; the vCPU runs with them next.
    fn write_vcpu_lrs(
        &mut self,
        cpu: usize,
        vcpu: VcpuId,
        write: &ipc::vcpu::LrWrite,
    ) -> Result<(), LoadedElsewhere>;
}

/// A vCPU's state is live on a CPU other than the caller's, which cannot reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedElsewhere;
