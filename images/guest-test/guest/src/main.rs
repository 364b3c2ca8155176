//! guest-test: a bare-metal EL1 guest that checks what the hypervisor shows a VM, and runs
//! unchanged on QEMU's own GICv3 without a hypervisor ("bare metal") to show that its
//! checks hold on real hardware semantics.
//!
//! Always: PSCI over HVC (CPU_ON of every vCPU, AFFINITY_INFO, CPU_OFF, errors), the
//! PL011, the virtual timer waking a WFI, a semihosting call being undefined. Under the
//! hypervisor only: PSCI over SMC, the vendor calls, the read-as-zero policy for unclaimed
//! addresses and the data abort for an access the hypervisor cannot decode. With the GIC
//! checks (`el1::gic_checks`): SGIs, PPIs (timers), SPIs, priorities, preemption, active
//! state, WFI; with the ITS checks (`el1::its_checks`): LPIs through the ITS commands.
//!
//! Which ones run: the boot vCPU's `x0` is the device tree's address under the hypervisor
//! and 0 when QEMU loads this ELF itself (`-kernel`), which means bare metal, where every
//! group runs. Under the hypervisor, the words `gic` and `its` of `/chosen/bootargs` (the
//! manifest's `cmdline`) turn on the GIC checks and the GIC plus ITS checks.
//!
//! It prints `check <name>: ok|FAILED <detail>` per check and a summary line. Under the
//! hypervisor it reports the number of failures with the VMM's vendor hypervisor call
//! (`vmm::psci::REPORT_STATUS`) and powers the VM off with PSCI SYSTEM_OFF, which ends the
//! run with that status; on bare metal nobody takes a status, and SYSTEM_OFF ends QEMU.
//!
//! The boot vCPU enters at guest-rt's `_start` (0x4008_0000, `guest.ld`) with the MMU off,
//! so every data access is to Device memory: the target's `+strict-align` keeps them
//! aligned; device registers are accessed with single `ldr`/`str` instructions that the
//! hypervisor can decode (`guest_rt::mmio`); and the vCPUs share memory with plain
//! acquire/release loads and stores, each location written by one vCPU at a time, since
//! exclusives on Device memory are IMPLEMENTATION DEFINED.
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

guest_rt::entry!(el1::boot_main);

#[cfg(target_os = "none")]
mod gic_registers;

/// The guest program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el1;
