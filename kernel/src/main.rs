//! The EL2 microkernel for QEMU `virt` (GICv3, VHE): boots every CPU, builds the
//! components' address spaces and the VMs' stage-2 tables from the boot-info blob,
//! creates the [`kernel::Kernel`] and runs it behind one big lock. Components run at EL0
//! (HCR_EL2.TGE set), guests at EL1 (TGE clear, stage 2 on); see `arch::guest`.
//!
//! Boot, on CPU 0 (`arch::boot` has the assembly that comes first):
//! 1. read and check the blob that QEMU loaded at `bootinfo::blob_address(kernel end)`;
//! 2. zero the blob's `zero_ranges`;
//! 3. replace the boot tables with the final kernel map, then build one stage-1 table
//!    per vspace, all from frames taken upward from `free_base`;
//! 4. build one stage-2 table per VM from its `stage2` mappings (guest-physical
//!    addresses below 2^40; RAM normal write-back, devices Device-nGnRE), VMIDs from
//!    boot-info, each VM's virtual counter starting at zero;
//! 5. create the `Kernel`, route the IRQ handlers' SPIs, start the other CPUs by PSCI;
//! 6. every CPU: redistributor, CPU interface, tick, PMU and debug traps, stage-2
//!    control, then the scheduler.
//!
//! Every kernel entry (`kernel_entry`) takes the big lock, runs one `Kernel` operation,
//! asks `Kernel::schedule` for the next thread, prepares it (`System::resume`: for a
//! component its address space, for a vCPU its EL1 state, see `arch::guest`), releases
//! the lock and returns that thread's context to the exception return in `arch::vectors`.
//! A component's `Call` or `ReplyRecv` first tries the IPC fast path (`fast_ipc_entry`),
//! which the vector enters with part of the context saved and the arguments in
//! registers; under the big lock it hands the CPU over directly, so its exit only
//! prepares that thread. A CPU with nothing to run stops its tick (keeping any vCPU's
//! WFI deadline) and waits in `wfi` with IRQs still masked (a pending interrupt ends
//! `wfi` anyway), so the kernel never takes an exception from itself; the next thread
//! starts with a full time slice.
//!
//! Physical memory (QEMU `virt` with 1 GiB at 0x4000_0000):
//!
//! | range | contents |
//! |---|---|
//! | 0x0800_0000 | GICD (64 KiB); GICR from 0x080A_0000, 128 KiB per CPU |
//! | 0x0900_0000 | PL011 UART |
//! | 0x4000_0000 | QEMU's device tree (unused) |
//! | 0x4010_0000 | kernel image (`kernel.ld`), `.bss` and stacks up to `__kernel_end_phys` |
//! | next 2 MiB boundary | boot-info blob, then the regions xtask placed |
//! | `free_base` .. end of RAM | translation tables |
//!
//! The kernel sees all of physical 0..4 GiB at `KERNEL_BASE + PA` (TTBR1_EL2).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(target_os = "none")]
mod arch;

/// Host builds (for the library's tests) have nothing to run.
#[cfg(not(target_os = "none"))]
fn main() {}

#[cfg(target_os = "none")]
pub(crate) use el2::{
    EC_SVC64, fast_ipc_entry, kernel_exception, lower_irq, lower_serror, lower_sync, primary_main,
    secondary_main,
};

/// The kernel program proper (bare-metal target only).
#[cfg(target_os = "none")]
mod el2 {
    use crate::arch::boot::{PER_CPU, PerCpu, secondary_entry, switch_address_space};
    use crate::arch::console::{self, kprintln};
    use crate::arch::guest::{self, El1Context, VmRegisters};
    use crate::arch::lock::SpinLockGuard;
    use crate::arch::memory::{self, BootFrames, KernelImage, RAM_START};
    use crate::arch::vectors::{KERNEL_EXCEPTION_KINDS, exit_to_user, exit_with_message};
    use crate::arch::{SpinLock, gic, pmu, psci, timer};
    use aarch64_cpu::registers::{ELR_EL2, ESR_EL2, FAR_EL2, HPFAR_EL2, Readable};
    use bootinfo::{BootInfo, Header, MAX_CPUS, MAX_VCPUS, MAX_VMS, MAX_VSPACES, ParseError, header_flags};
    use core::fmt;
    use ipc::Syscall;
    use ipc::vcpu::{GicSnapshot, LrWrite};
    use kernel::address::{KERNEL_BASE, LINEAR_MAP_SIZE, Pa, Va};
    use kernel::guest::{Trap, WakeState, timer_lines, timer_ppi_mask, timer_ppis_to_deactivate};
    use kernel::pagetable::{LeafAttributes, MapError, PageTable};
    use kernel::{
        BootError, FastIpc, FastTrap, IpcArguments, Kernel, LoadedElsewhere, Platform, ThreadId, ThreadKind,
        UserContext, VcpuId, VcpuReply, VcpuRequest,
    };

    /// The big kernel lock: every kernel object, and the machine state the kernel's
    /// operations need. Lock order: this lock first, then `arch::console::CONSOLE`. No
    /// CPU ever waits for another while holding it: work for another CPU is an SGI that
    /// CPU handles on its own entry (the reschedule SGI for wake-ups; the stop SGI for a
    /// `VCPU_SYNC` of a vCPU live there, whose caller blocks until that CPU completes it
    /// with `Kernel::complete_syncs`), and state that only one CPU reaches (a loaded
    /// vCPU's registers, its timer PPIs' active state) is read and written only there.
    static KERNEL: SpinLock<Option<System>> = SpinLock::new(None);

    /// Both guest timer lines (`ipc::vcpu::LINE_*` bits).
    const TIMER_LINES: u64 = ipc::vcpu::LINE_VIRTUAL_TIMER | ipc::vcpu::LINE_PHYSICAL_TIMER;

    /// What the big kernel lock protects.
    struct System {
        kernel: Kernel<'static>,
        machine: Machine,
    }

    /// The hardware side of the kernel: the [`Platform`] it calls, and what the trap
    /// paths need to resume a thread.
    struct Machine {
        /// Number of CPUs started.
        cpu_count: usize,
        /// MPIDR affinity of each CPU (index 0 boots).
        affinity: [u64; MAX_CPUS],
        /// Stage 2 and counter offset of each VM.
        vms: [VmRegisters; MAX_VMS],
        /// The state of each vCPU that its CPU does not hold.
        vcpus: [VcpuSlot; MAX_VCPUS],
        /// Each CPU's redistributor.
        redistributors: [Option<gic::Redistributor>; MAX_CPUS],
        /// Each CPU's kernel timer deadlines.
        timers: [CpuTimer; MAX_CPUS],
        /// Length of a time slice in counter ticks.
        timeslice_ticks: u64,
        /// Whether components may read the PMU's instruction counter (benchmarks).
        pmu_for_components: bool,
    }

    /// A vCPU as the hardware sees it.
    ///
    /// Aligned to a power of two, so that the MMIO reply's fast path finds its ICH_HCR_EL2
    /// value with a shift instead of a multiply.
    #[derive(Clone, Copy)]
    #[repr(align(1024))]
    struct VcpuSlot {
        /// EL1, FP/SIMD, timer and GIC state while not loaded.
        context: El1Context,
        /// Its VM.
        vm: u8,
        /// VMPIDR_EL2 (affinity fields).
        mpidr: u64,
        /// Timer lines whose physical PPI was active when it left its CPU (restored when
        /// it comes back).
        timer_active: u64,
    }

    /// What one CPU's kernel timer waits for: the end of the running thread's time slice
    /// and the earliest WFI deadline of its sleeping vCPUs (`u64::MAX`: none), both in
    /// physical counter ticks.
    #[derive(Clone, Copy)]
    struct CpuTimer {
        slice_end: u64,
        wake_at: u64,
    }

    impl CpuTimer {
        /// Nothing to wake; the slice the boot tick (`timer::arm`) started ends at its
        /// first interrupt.
        const START: Self = Self { slice_end: 0, wake_at: u64::MAX };

        /// Programs this CPU's timer for the earlier deadline (the caller's CPU).
        fn program(&self) {
            match self.slice_end.min(self.wake_at) {
                u64::MAX => timer::stop(),
                deadline => timer::arm_at(deadline),
            }
        }

        /// A thread starts a slice of `ticks` on this CPU.
        fn start_slice(&mut self, ticks: u64) {
            self.slice_end = timer::now() + ticks;
            self.program();
        }

        /// This CPU idles: no slice to end.
        fn stop_slice(&mut self) {
            self.slice_end = u64::MAX;
            self.program();
        }
    }

    impl Platform for Machine {
        fn kick_cpu(&mut self, cpu: usize) {
            if cpu < self.cpu_count {
                gic::send_sgi(self.affinity[cpu], gic::RESCHEDULE_SGI);
            }
        }

        fn irq_ack(&mut self, intid: u32) {
            gic::deactivate_spi(intid);
        }

        fn console_write(&mut self, bytes: &[u8]) {
            console::CONSOLE.lock().write_bytes(bytes);
        }

        fn phys_to_virt(&self, pa: u64) -> *mut u8 {
            Pa(pa).to_kernel_va().0 as *mut u8
        }

        fn shutdown(&mut self, nonce: u64, status: u32) {
            kprintln!("result nonce={nonce:016x} status={status}");
            psci::system_off()
        }

        fn guest_wake_state(&mut self, cpu: usize) -> WakeState {
            guest::wake_state(PER_CPU[cpu].timer_ppis_held())
        }

        fn vcpu_event_snapshot(&mut self, cpu: usize, vcpu: VcpuId) -> GicSnapshot {
            if PER_CPU[cpu].holds_vcpu(vcpu.0) {
                return guest::wake_state(PER_CPU[cpu].timer_ppis_held()).snapshot();
            }
            let slot = &self.vcpus[usize::from(vcpu.0)];
            slot.context.gic_snapshot(timer::now(), self.vms[usize::from(slot.vm)].cntvoff)
        }

        fn stop_vcpus(&mut self, cpu: usize) {
            if cpu < self.cpu_count {
                gic::send_sgi(self.affinity[cpu], gic::STOP_VCPU_SGI);
            }
        }

        fn set_wakeup(&mut self, cpu: usize, deadline: u64) {
            let timer = &mut self.timers[cpu];
            timer.wake_at = timer.wake_at.min(deadline);
            timer.program();
        }

        fn vcpu_gic_state(&mut self, cpu: usize, vcpu: VcpuId) -> Result<GicSnapshot, LoadedElsewhere> {
            self.unload_vcpu(cpu, vcpu)?;
            let slot = &self.vcpus[usize::from(vcpu.0)];
            Ok(slot.context.gic_snapshot(timer::now(), self.vms[usize::from(slot.vm)].cntvoff))
        }

        fn write_vcpu_lrs(
            &mut self,
            cpu: usize,
            vcpu: VcpuId,
            write: &LrWrite,
        ) -> Result<(), LoadedElsewhere> {
            self.unload_vcpu(cpu, vcpu)?;
            self.vcpus[usize::from(vcpu.0)].context.write_lrs(write);
            Ok(())
        }
    }

    /// Why the machine could not boot.
    enum BootFailure {
        Blob { address: u64, error: ParseError },
        Layout(&'static str),
        Cpus { requested: u32, available: usize },
        ZeroRange(usize),
        IpcBuffer(usize),
        Asid(usize),
        Mapping { vspace: usize, mapping: usize, error: MapError },
        ReservedMapping { vspace: usize, mapping: usize },
        KernelMap(MapError),
        Irq(usize),
        Vmid(usize),
        Stage2 { vm: usize, mapping: usize, error: MapError },
        ReservedStage2 { vm: usize, mapping: usize },
        Kernel(BootError),
        CpuOn { cpu: usize, error: i64 },
    }

    impl fmt::Display for BootFailure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Self::Blob { address, error } => write!(f, "bad boot-info blob at {address:#x}: {error:?}"),
                Self::Layout(what) => write!(f, "bad memory layout in boot-info: {what}"),
                Self::Cpus { requested, available } => {
                    write!(f, "boot-info asks for {requested} CPUs; this machine has {available}")
                }
                Self::ZeroRange(index) => write!(f, "zero range {index} is not free RAM"),
                Self::IpcBuffer(index) => write!(f, "thread {index}'s IPC buffer is not free RAM"),
                Self::Asid(index) => write!(f, "vspace {index} has ASID 0 or one used by another vspace"),
                Self::Mapping { vspace, mapping, error } => {
                    write!(f, "vspace {vspace} mapping {mapping} cannot be mapped: {error:?}")
                }
                Self::ReservedMapping { vspace, mapping } => {
                    write!(f, "vspace {vspace} mapping {mapping} covers kernel memory")
                }
                Self::KernelMap(error) => write!(f, "cannot build the kernel's tables: {error:?}"),
                Self::Irq(index) => write!(f, "IRQ {index} names no SPI of this GIC or no started CPU"),
                Self::Vmid(index) => {
                    write!(f, "VM {index} has a VMID outside 1..={MAX_VMS} or one used by another VM")
                }
                Self::Stage2 { vm, mapping, error } => {
                    write!(f, "VM {vm} stage-2 mapping {mapping} cannot be mapped: {error:?}")
                }
                Self::ReservedStage2 { vm, mapping } => {
                    write!(f, "VM {vm} stage-2 mapping {mapping} covers kernel memory")
                }
                Self::Kernel(error) => write!(f, "cannot create the kernel objects: {error:?}"),
                Self::CpuOn { cpu, error } => write!(f, "PSCI CPU_ON for CPU {cpu} failed: {error}"),
            }
        }
    }

    impl From<ParseError> for BootFailure {
        fn from(error: ParseError) -> Self {
            Self::Kernel(BootError::Parse(error))
        }
    }

    /// Whether `a_start..a_end` and `b_start..b_end` share a byte.
    fn overlaps(a_start: u64, a_end: u64, b_start: u64, b_end: u64) -> bool {
        a_start < b_end && b_start < a_end
    }

    /// Physical memory as the linker and boot-info lay it out.
    struct MemoryLayout {
        image: KernelImage,
        blob_start: u64,
        blob_end: u64,
        ram_start: u64,
        ram_end: u64,
        free_base: u64,
    }

    impl MemoryLayout {
        fn new(image: KernelImage, blob_start: u64, header: &Header) -> Result<Self, BootFailure> {
            let ram_start = header.ram_base;
            let ram_end = ram_start.checked_add(header.ram_size).ok_or(BootFailure::Layout("RAM wraps"))?;
            if ram_start < RAM_START || ram_end > LINEAR_MAP_SIZE {
                return Err(BootFailure::Layout("RAM outside 1..4 GiB"));
            }
            let blob_end = blob_start + header.total_size;
            if image.start < ram_start || blob_end > ram_end {
                return Err(BootFailure::Layout("kernel or blob outside RAM"));
            }
            if header.free_base < blob_end || header.free_base > ram_end {
                return Err(BootFailure::Layout("free_base not between the blob and the end of RAM"));
            }
            Ok(Self { image, blob_start, blob_end, ram_start, ram_end, free_base: header.free_base })
        }

        /// Whether `start..start + size` is RAM that xtask gave to components: below the
        /// table frames, outside the kernel image.
        fn is_component_ram(&self, start: u64, size: u64) -> bool {
            start.checked_add(size).is_some_and(|end| {
                start >= self.ram_start
                    && end <= self.free_base
                    && !overlaps(start, end, self.image.start, self.image.end)
            })
        }

        /// Whether a component may map `pa..pa + size`: component RAM, or anything
        /// outside RAM (devices).
        fn user_may_map(&self, pa: u64, size: u64) -> bool {
            self.is_component_ram(pa, size)
                || pa.checked_add(size).is_some_and(|end| !overlaps(pa, end, self.ram_start, self.ram_end))
        }

        /// Whether the kernel may zero `base..base + size` at boot: component RAM outside
        /// the blob (which the kernel reads through a shared reference).
        fn may_zero(&self, base: u64, size: u64) -> bool {
            self.is_component_ram(base, size) && !overlaps(base, base + size, self.blob_start, self.blob_end)
        }
    }

    /// Reads the blob QEMU loaded after the kernel image.
    fn read_boot_info(image: &KernelImage) -> Result<(BootInfo<'static>, u64), BootFailure> {
        let address = bootinfo::blob_address(image.end);
        let header_size = size_of::<Header>() as u64;
        let truncated = BootFailure::Blob { address, error: ParseError::Truncated };
        if address + header_size > LINEAR_MAP_SIZE {
            return Err(truncated);
        }
        let blob = Pa(address).to_kernel_va().0 as *const u8;
        // SAFETY: the header lies in the linear map's RAM (checked above) and is plain
        // integers, valid for any bytes; the blob address is 2 MiB aligned.
        let header = unsafe { blob.cast::<Header>().read() };
        if header.total_size > LINEAR_MAP_SIZE - address {
            return Err(truncated);
        }
        // SAFETY: the blob lies in the linear map's RAM (checked above). The kernel never
        // writes it: `MemoryLayout` keeps zero ranges off it and table frames above it.
        let bytes = unsafe { core::slice::from_raw_parts(blob, header.total_size as usize) };
        let boot = BootInfo::parse(bytes).map_err(|error| BootFailure::Blob { address, error })?;
        Ok((boot, address))
    }

    /// MPIDR affinities of the CPUs this kernel will run: the boot CPU first, then the
    /// other redistributors in frame order.
    fn cpu_affinities(requested: u32) -> Result<[u64; MAX_CPUS], BootFailure> {
        let boot_cpu = gic::current_affinity();
        let mut affinity = [boot_cpu; MAX_CPUS];
        let mut available = usize::from(gic::redistributor_of(boot_cpu).is_some());
        for redistributor in gic::redistributors().filter(|r| r.affinity() != boot_cpu).take(MAX_CPUS - 1) {
            affinity[available] = redistributor.affinity();
            available += 1;
        }
        if requested == 0 || requested as usize > available {
            return Err(BootFailure::Cpus { requested, available });
        }
        Ok(affinity)
    }

    /// Builds every vspace's stage-1 table; returns their TTBR0_EL2 values.
    fn build_address_spaces(
        boot: &BootInfo<'static>,
        layout: &MemoryLayout,
        frames: &mut BootFrames,
    ) -> Result<[u64; MAX_VSPACES], BootFailure> {
        let vspaces = boot.vspaces()?;
        if vspaces.len() > MAX_VSPACES {
            return Err(BootFailure::Kernel(BootError::TooManyObjects));
        }
        let mut ttbr0 = [0; MAX_VSPACES];
        for (index, vspace) in vspaces.iter().enumerate() {
            if vspace.asid == 0 || vspaces[..index].iter().any(|other| other.asid == vspace.asid) {
                return Err(BootFailure::Asid(index));
            }
            let mut table = PageTable::new(frames).map_err(BootFailure::KernelMap)?;
            for (number, mapping) in boot.mappings(vspace.mappings)?.iter().enumerate() {
                let failed = |error| BootFailure::Mapping { vspace: index, mapping: number, error };
                if !layout.user_may_map(mapping.pa, mapping.size) {
                    return Err(BootFailure::ReservedMapping { vspace: index, mapping: number });
                }
                if mapping.va >= KERNEL_BASE {
                    return Err(failed(MapError::BadAddress));
                }
                let attributes = LeafAttributes::from_map_flags(mapping.flags).map_err(failed)?;
                table
                    .map(frames, Va(mapping.va), Pa(mapping.pa), mapping.size, attributes)
                    .map_err(failed)?;
            }
            ttbr0[index] = table.root().0 | u64::from(vspace.asid) << 48;
        }
        Ok(ttbr0)
    }

    /// Builds every VM's stage-2 table; returns their VTTBR_EL2 values and counter
    /// offsets (each VM's virtual counter starts at zero now).
    fn build_stage2_tables(
        boot: &BootInfo<'static>,
        layout: &MemoryLayout,
        frames: &mut BootFrames,
    ) -> Result<[VmRegisters; MAX_VMS], BootFailure> {
        let vms = boot.vms()?;
        if vms.len() > MAX_VMS {
            return Err(BootFailure::Kernel(BootError::TooManyObjects));
        }
        if !vms.is_empty() && guest::pa_range() < kernel::pagetable::STAGE2_MIN_PA_RANGE {
            return Err(BootFailure::Layout(
                "stage 2 needs a CPU with physical addresses of 44 bits or more",
            ));
        }
        let mut registers = [VmRegisters::default(); MAX_VMS];
        for (index, vm) in vms.iter().enumerate() {
            let vmid = usize::from(vm.vmid);
            if !(1..=MAX_VMS).contains(&vmid) || vms[..index].iter().any(|other| other.vmid == vm.vmid) {
                return Err(BootFailure::Vmid(index));
            }
            let mut table = PageTable::new(frames).map_err(BootFailure::KernelMap)?;
            for (number, mapping) in boot.mappings(vm.stage2)?.iter().enumerate() {
                let failed = |error| BootFailure::Stage2 { vm: index, mapping: number, error };
                if !layout.user_may_map(mapping.pa, mapping.size) {
                    return Err(BootFailure::ReservedStage2 { vm: index, mapping: number });
                }
                let attributes = LeafAttributes::from_stage2_flags(mapping.flags).map_err(failed)?;
                table
                    .map_guest(frames, mapping.va, Pa(mapping.pa), mapping.size, attributes)
                    .map_err(failed)?;
            }
            registers[index] =
                VmRegisters { vttbr: table.root().0 | (vmid as u64) << 48, cntvoff: timer::now() };
        }
        Ok(registers)
    }

    /// Every vCPU's hardware state: reset, with its VM and MPIDR.
    fn vcpu_slots(boot: &BootInfo<'static>) -> Result<[VcpuSlot; MAX_VCPUS], BootFailure> {
        let mut slots =
            [VcpuSlot { context: El1Context::RESET, vm: 0, mpidr: 0, timer_active: 0 }; MAX_VCPUS];
        let vcpus = boot.all_vcpus()?;
        if vcpus.len() > MAX_VCPUS {
            return Err(BootFailure::Kernel(BootError::TooManyObjects));
        }
        for (slot, vcpu) in slots.iter_mut().zip(vcpus) {
            // `Kernel::new` checks the VM index.
            slot.vm = vcpu.vm as u8;
            slot.mpidr = vcpu.mpidr;
        }
        Ok(slots)
    }

    /// Everything CPU 0 does before the scheduler runs.
    fn boot() -> Result<(), BootFailure> {
        let image = KernelImage::current();
        let (boot, blob_start) = read_boot_info(&image)?;
        let header = boot.header();
        let name = boot.string(header.name)?;
        kprintln!("booting system {name} on {} CPUs", header.cpu_count);

        let affinity = cpu_affinities(header.cpu_count)?;
        let cpu_count = header.cpu_count as usize;
        if header.timeslice_us == 0 {
            return Err(BootFailure::Layout("time slice of 0 us"));
        }
        let layout = MemoryLayout::new(image, blob_start, header)?;
        for (index, range) in boot.zero_ranges()?.iter().enumerate() {
            if !layout.may_zero(range.base, range.size) {
                return Err(BootFailure::ZeroRange(index));
            }
            // SAFETY: the range is RAM in the linear map outside the kernel image, the
            // blob and the table frames (checked above), and nothing runs on it yet.
            unsafe {
                core::ptr::write_bytes(Pa(range.base).to_kernel_va().0 as *mut u8, 0, range.size as usize)
            };
        }
        for (index, tcb) in boot.tcbs()?.iter().enumerate() {
            if !layout.is_component_ram(tcb.ipc_buffer, kernel::address::PAGE_SIZE) {
                return Err(BootFailure::IpcBuffer(index));
            }
        }

        let mut frames = BootFrames::new(layout.free_base, layout.ram_end);
        let kernel_map = memory::build_kernel_map(&mut frames, &image).map_err(BootFailure::KernelMap)?;
        memory::install_kernel_map(&kernel_map);
        let vspace_ttbr0 = build_address_spaces(&boot, &layout, &mut frames)?;
        let vms = build_stage2_tables(&boot, &layout, &mut frames)?;
        let (tables_start, tables_end) = frames.used();
        kprintln!("{} KiB of translation tables at {tables_start:#x}", (tables_end - tables_start) / 1024);

        let mut kernel = Kernel::new(boot).map_err(BootFailure::Kernel)?;
        kernel.set_address_spaces(&vspace_ttbr0);
        gic::init_distributor();
        for (index, irq) in boot.irqs()?.iter().enumerate() {
            let cpu = usize::from(irq.cpu);
            let routed = cpu < cpu_count && gic::enable_spi(irq.intid, irq.edge != 0, affinity[cpu]).is_ok();
            if !routed {
                return Err(BootFailure::Irq(index));
            }
        }
        let timeslice_ticks = timer::ticks(header.timeslice_us);
        let pmu_for_components = header.flags & header_flags::PMU_FOR_COMPONENTS != 0;
        let machine = Machine {
            cpu_count,
            affinity,
            vms,
            vcpus: vcpu_slots(&boot)?,
            redistributors: core::array::from_fn(|cpu| {
                if cpu < cpu_count { gic::redistributor_of(affinity[cpu]) } else { None }
            }),
            timers: [CpuTimer::START; MAX_CPUS],
            timeslice_ticks,
            pmu_for_components,
        };
        *KERNEL.lock() = Some(System { kernel, machine });

        init_local(timeslice_ticks, pmu_for_components);
        let entry = Va(secondary_entry as *const () as u64).kernel_to_pa().0;
        for (cpu, &mpidr) in affinity.iter().enumerate().take(cpu_count).skip(1) {
            psci::cpu_on(mpidr, entry, cpu as u64).map_err(|error| BootFailure::CpuOn { cpu, error })?;
        }
        Ok(())
    }

    /// This CPU's redistributor, CPU interface, tick, PMU and debug traps, and stage 2.
    fn init_local(timeslice_ticks: u64, pmu_for_components: bool) {
        let redistributor = gic::redistributor_of(gic::current_affinity());
        redistributor.expect("CPU 0 started this CPU by its redistributor's affinity").init();
        gic::init_cpu_interface();
        timer::arm(timeslice_ticks);
        pmu::init(pmu_for_components);
        guest::init_cpu();
    }

    /// Rust entry of the boot CPU (from `arch::boot`, on the boot stack).
    pub extern "C" fn primary_main() -> ! {
        if let Err(failure) = boot() {
            kprintln!("boot failed: {failure}");
            psci::system_off();
        }
        enter_scheduler(&PER_CPU[0])
    }

    /// Rust entry of the other CPUs, once CPU 0 has published the kernel.
    pub extern "C" fn secondary_main(cpu: usize) -> ! {
        let (timeslice_ticks, pmu_for_components) = {
            let mut guard = KERNEL.lock();
            let machine = &system(&mut guard).machine;
            (machine.timeslice_ticks, machine.pmu_for_components)
        };
        init_local(timeslice_ticks, pmu_for_components);
        enter_scheduler(&PER_CPU[cpu])
    }

    /// The kernel state behind the lock (present once any CPU can enter the kernel).
    #[inline(always)]
    fn system(guard: &mut KernelGuard) -> &mut System {
        // SAFETY: CPU 0 stores the kernel before it starts the other CPUs or runs any
        // thread (`boot`), so no exception from a lower EL, and no scheduler, comes
        // earlier; nothing takes it out again.
        unsafe { guard.as_mut().unwrap_unchecked() }
    }

    fn enter_scheduler(per_cpu: &PerCpu) -> ! {
        let context = kernel_entry(per_cpu, |_, _| {});
        // SAFETY: `kernel_entry` returns the context of a thread the kernel chose for this
        // CPU, with its vspace loaded.
        unsafe { exit_to_user(context) }
    }

    type KernelGuard = SpinLockGuard<'static, Option<System>>;

    /// One kernel entry: under the big lock, runs `handle`, picks the thread to run on
    /// this CPU (idling while there is none) and prepares it, then releases the lock and
    /// loads a component's address space; returns the thread's context for
    /// `exit_to_user`.
    #[inline(always)]
    fn kernel_entry(per_cpu: &PerCpu, handle: impl FnOnce(&mut System, usize)) -> *mut UserContext {
        let mut guard = KERNEL.lock();
        handle(system(&mut guard), per_cpu.cpu());
        leave_kernel(per_cpu, guard)
    }

    /// The end of [`kernel_entry`], after its operation: picks and prepares the next
    /// thread, releases `guard` and loads the thread's address space; returns its context.
    #[inline(always)]
    fn leave_kernel(per_cpu: &PerCpu, mut guard: KernelGuard) -> *mut UserContext {
        let cpu = per_cpu.cpu();
        let system = system(&mut guard);
        let (context, address_space) = match system.kernel.next_thread(cpu, &mut system.machine) {
            Some(thread) => {
                let next = system.resume(per_cpu, thread);
                drop(guard);
                next
            }
            None => idle(per_cpu, guard),
        };
        if let Some(ttbr0) = address_space {
            switch_address_space(ttbr0);
        }
        context
    }

    impl System {
        /// Prepares `thread`, which is to run next on this CPU: HCR_EL2 for its kind, and
        /// for a vCPU its EL1 state and pending requests; returns its context and, for a
        /// component, the TTBR0_EL2 value of its address space (a vCPU does not use
        /// TTBR0_EL2).
        #[inline(always)]
        fn resume(&mut self, per_cpu: &PerCpu, thread: ThreadId) -> (*mut UserContext, Option<u64>) {
            match self.kernel.thread_kind(thread) {
                ThreadKind::Component { .. } => {
                    per_cpu.mode().enter(false);
                    (self.kernel.context_ptr(thread), Some(self.kernel.address_space(thread)))
                }
                ThreadKind::Vcpu(vcpu) => {
                    // SAFETY: `Kernel::new` gives vCPU threads indices below the number of
                    // vCPUs, at most `MAX_VCPUS`. Telling the compiler spares this path its
                    // bounds checks.
                    unsafe { core::hint::assert_unchecked(usize::from(vcpu.0) < MAX_VCPUS) };
                    // The common case, the vCPU this CPU holds loaded with no EL1 work
                    // waiting (a trap answered by a server), only turns the virtual CPU
                    // interface back on, without a call.
                    let context = if per_cpu.holds_vcpu(vcpu.0) && self.kernel.vcpu_resumes_plainly(vcpu) {
                        guest::enable_virtual_interface(&self.machine.vcpus[usize::from(vcpu.0)].context);
                        per_cpu.mode().enter(true);
                        self.kernel.context_ptr(thread)
                    } else {
                        self.resume_vcpu(per_cpu, thread, vcpu)
                    };
                    (context, None)
                }
            }
        }

        /// [`System::resume`] for vCPU `vcpu` when it has EL1 work waiting or is not the
        /// one loaded here (kept out of line, so the components' paths
        /// stay short).
        #[inline(never)]
        fn resume_vcpu(&mut self, per_cpu: &PerCpu, thread: ThreadId, vcpu: VcpuId) -> *mut UserContext {
            let request = self.kernel.take_vcpu_request(vcpu);
            let lrs = self.kernel.take_vcpu_lrs(vcpu);
            let context = self.kernel.context_ptr(thread);
            // SAFETY: `context_ptr` points into the kernel, which this entry holds locked;
            // nothing else refers to the thread's context now.
            self.machine.load_vcpu(per_cpu.cpu(), vcpu, request, lrs, unsafe { &mut *context });
            per_cpu.mode().enter(true);
            context
        }
    }

    impl Machine {
        /// Makes `vcpu`'s EL1 state the live one on `cpu` (saving the vCPU it replaces),
        /// after doing `request` and loading `lrs`; `context` is its general-register
        /// context. The common case, the same vCPU again with nothing to do, only turns
        /// the virtual CPU interface back on.
        #[inline(always)]
        fn load_vcpu(
            &mut self,
            cpu: usize,
            vcpu: VcpuId,
            request: Option<VcpuRequest>,
            lrs: Option<LrWrite>,
            context: &mut UserContext,
        ) {
            if request.is_some() || lrs.is_some() || !PER_CPU[cpu].holds_vcpu(vcpu.0) {
                self.prepare_vcpu(cpu, vcpu, request, lrs, context);
            }
            guest::enable_virtual_interface(&self.vcpus[usize::from(vcpu.0)].context);
        }

        /// [`Machine::load_vcpu`] when there is something to do: a reset, a switch from
        /// another vCPU, an injected exception, list registers from the vgic-server.
        #[cold]
        #[inline(never)]
        fn prepare_vcpu(
            &mut self,
            cpu: usize,
            vcpu: VcpuId,
            request: Option<VcpuRequest>,
            lrs: Option<LrWrite>,
            context: &mut UserContext,
        ) {
            let index = usize::from(vcpu.0);
            if request == Some(VcpuRequest::Reset) {
                self.vcpus[index].context = El1Context::RESET;
                self.vcpus[index].timer_active = 0;
                if PER_CPU[cpu].holds_vcpu(vcpu.0) {
                    PER_CPU[cpu].set_loaded_vcpu(None);
                    if let Some(redistributor) = &self.redistributors[cpu] {
                        redistributor.deactivate(timer_ppi_mask(TIMER_LINES));
                    }
                }
            }
            if !PER_CPU[cpu].holds_vcpu(vcpu.0) {
                self.switch_vcpu(cpu, index);
            }
            if let Some(VcpuRequest::Inject(injection)) = request {
                let (vbar, sctlr) = guest::vector_state();
                let entry = kernel::guest::take_exception(injection, context.elr, context.spsr, vbar, sctlr);
                guest::write_exception_registers(&entry);
                context.elr = entry.pc;
                context.spsr = entry.pstate;
            }
            if let Some(write) = lrs {
                guest::load_lrs(&mut self.vcpus[index].context, &write);
            }
        }

        /// Makes `vcpu`'s saved state its whole state: if `cpu` (the calling CPU) holds it
        /// loaded, saves it and forgets it there, so that its next run loads it afresh
        /// (with whatever the kernel changed); fails if another CPU holds it.
        fn unload_vcpu(&mut self, cpu: usize, vcpu: VcpuId) -> Result<(), LoadedElsewhere> {
            if PER_CPU[cpu].holds_vcpu(vcpu.0) {
                self.save_vcpu(cpu, usize::from(vcpu.0));
                guest::park_timers();
                PER_CPU[cpu].set_loaded_vcpu(None);
            } else if PER_CPU.iter().any(|other| other.holds_vcpu(vcpu.0)) {
                return Err(LoadedElsewhere);
            }
            Ok(())
        }

        /// Saves the vCPU `cpu` holds and loads vCPU `index` there, with the physical
        /// active state of its timer PPIs.
        fn switch_vcpu(&mut self, cpu: usize, index: usize) {
            if let Some(previous) = PER_CPU[cpu].loaded_vcpu() {
                self.save_vcpu(cpu, usize::from(previous));
            }
            let slot = &self.vcpus[index];
            guest::load(&slot.context, &self.vms[usize::from(slot.vm)], slot.mpidr);
            if let Some(redistributor) = &self.redistributors[cpu] {
                redistributor.activate(timer_ppi_mask(slot.timer_active));
            }
            PER_CPU[cpu].set_timer_ppis_held(slot.timer_active);
            PER_CPU[cpu].set_loaded_vcpu(Some(index as u16));
        }

        /// Saves vCPU `index`, loaded on `cpu` (the calling CPU), with the physical active
        /// state of its timer PPIs, which it clears for the next vCPU.
        fn save_vcpu(&mut self, cpu: usize, index: usize) {
            let slot = &mut self.vcpus[index];
            guest::save(&mut slot.context);
            let active = self.redistributors[cpu]
                .map_or(0, |redistributor| redistributor.take_active(timer_ppi_mask(TIMER_LINES)));
            slot.timer_active = timer_lines(active);
            PER_CPU[cpu].set_timer_ppis_held(0);
        }

        /// A guest exit on `cpu`: ends the physical active state of timer PPIs held for its
        /// loaded vCPU that no list register holds any more and whose line dropped.
        #[inline(always)]
        fn release_timer_ppis(&mut self, cpu: usize) {
            if PER_CPU[cpu].timer_ppis_held() != 0 {
                self.release_timer_ppis_now(cpu);
            }
        }

        /// [`Machine::release_timer_ppis`] when some are held.
        #[cold]
        #[inline(never)]
        fn release_timer_ppis_now(&mut self, cpu: usize) {
            let held = PER_CPU[cpu].timer_ppis_held();
            let state = guest::wake_state(held);
            let release = timer_ppis_to_deactivate(held, state.hardware_lines(), &state.interface.lrs);
            if let Some(redistributor) = &self.redistributors[cpu] {
                redistributor.deactivate(timer_ppi_mask(release));
            }
            PER_CPU[cpu].set_timer_ppis_held(held & !release);
        }
    }

    /// Waits with the lock released until an interrupt makes a thread runnable on this
    /// CPU; returns what [`System::resume`] does, with the lock released. The tick stops
    /// while the CPU idles (there is no slice to end; a sleeping vCPU's deadline stays
    /// armed), and the thread found gets a full slice.
    #[cold]
    #[inline(never)]
    fn idle(per_cpu: &PerCpu, mut guard: KernelGuard) -> (*mut UserContext, Option<u64>) {
        let cpu = per_cpu.cpu();
        loop {
            // Inside the loop: a tick acknowledged below re-arms the timer.
            system(&mut guard).machine.timers[cpu].stop_slice();
            drop(guard);
            // IRQs stay masked: a pending interrupt ends `wfi` all the same, and the loop
            // acknowledges it, so the kernel never takes an exception from itself.
            aarch64_cpu::asm::wfi();
            guard = KERNEL.lock();
            let system = system(&mut guard);
            acknowledge_interrupts(system, cpu);
            if let Some(thread) = system.kernel.next_thread(cpu, &mut system.machine) {
                let ticks = system.machine.timeslice_ticks;
                system.machine.timers[cpu].start_slice(ticks);
                return system.resume(per_cpu, thread);
            }
        }
    }

    /// Takes every pending interrupt of this CPU to the kernel.
    #[inline(always)]
    fn acknowledge_interrupts(system: &mut System, cpu: usize) {
        loop {
            let intid = gic::acknowledge();
            if intid >= gic::FIRST_SPECIAL {
                return;
            }
            gic::drop_priority(intid);
            if intid >= gic::FIRST_SPI {
                // Stays active until its handler's IRQ_ACK (`Platform::irq_ack`).
                system.kernel.handle_irq(intid, &mut system.machine);
                continue;
            }
            if intid == gic::VIRTUAL_TIMER_PPI || intid == gic::PHYSICAL_TIMER_PPI {
                guest_timer_interrupt(system, cpu, intid);
                continue;
            }
            gic::deactivate_local(intid);
            match intid {
                gic::TIMER_PPI => timer_interrupt(system, cpu),
                gic::STOP_VCPU_SGI => system.kernel.complete_syncs(cpu, &mut system.machine),
                _ => {}
            }
        }
    }

    /// A guest timer's PPI fired: the loaded vCPU's timer (no other is live here). It
    /// stays active, so it does not fire again, until the guest's EOI of the
    /// hardware-linked list register the vgic-server makes for it, or until the kernel
    /// sees it unlisted with its line down (`Machine::release_timer_ppis`).
    #[cold]
    #[inline(never)]
    fn guest_timer_interrupt(system: &mut System, cpu: usize, intid: u32) {
        let Some(vcpu) = PER_CPU[cpu].loaded_vcpu() else {
            // A line that stayed up from a vCPU saved since: nobody's.
            gic::deactivate_local(intid);
            return;
        };
        PER_CPU[cpu].set_timer_ppis_held(PER_CPU[cpu].timer_ppis_held() | timer_lines(1 << intid));
        system.kernel.vcpu_interrupt(cpu, VcpuId(vcpu));
    }

    /// The kernel timer fired: the time slice ended, a sleeping vCPU's deadline passed,
    /// or both.
    #[cold]
    #[inline(never)]
    fn timer_interrupt(system: &mut System, cpu: usize) {
        let now = timer::now();
        let timer = &mut system.machine.timers[cpu];
        if now >= timer.slice_end {
            timer.slice_end = now + system.machine.timeslice_ticks;
            system.kernel.timer_tick(cpu);
        }
        let timer = &mut system.machine.timers[cpu];
        if now >= timer.wake_at {
            timer.wake_at = u64::MAX;
            system.kernel.wake_sleepers(cpu, now, &mut system.machine);
        }
        system.machine.timers[cpu].program();
    }

    /// ESR_EL2.EC of `svc` from AArch64.
    pub const EC_SVC64: u64 = 0x15;
    /// ESR_EL2.EC values for which FAR_EL2 holds the faulting address: instruction abort,
    /// PC alignment, data abort and watchpoint, from a lower EL.
    const EC_WITH_FAR: [u64; 4] = [0x20, 0x22, 0x24, 0x34];

    /// ESR_EL2.EC values for which HPFAR_EL2 holds the faulting IPA's page: instruction
    /// and data aborts from a lower EL.
    const EC_WITH_HPFAR: [u64; 2] = [0x20, 0x24];

    /// The IPC fast path of a component's `Call` (`REPLY_RECV` false) or `ReplyRecv`,
    /// straight from the exception vector: `cap`, `info` and the words are the thread's
    /// argument registers `x0..=x5`, which the vector did not save into its context (it
    /// saved only what the fast path's hand-off needs; see `arch::vectors`). A direct
    /// hand-off leaves nothing for the scheduler to decide, so the exit only prepares the
    /// thread handed over to, whose context it returns. When the fast path declines,
    /// nothing has changed: the arguments go into the thread's context, it returns null,
    /// and the vector finishes the save and takes the generic path ([`lower_sync`]).
    pub extern "C" fn fast_ipc_entry<const REPLY_RECV: bool>(
        cap: u64,
        info: u64,
        word0: u64,
        word1: u64,
        word2: u64,
        word3: u64,
        per_cpu: &PerCpu,
    ) -> *mut UserContext {
        let args = IpcArguments { cap, info, words: [word0, word1, word2, word3] };
        if !args.fits_registers() {
            return fast_ipc_long::<REPLY_RECV>(cap, info, word0, word1, word2, word3, per_cpu);
        }
        fast_ipc(per_cpu, ipc_syscall(REPLY_RECV), args)
    }

    /// [`fast_ipc_entry`] for a header that does not promise a message in registers
    /// (words in the IPC buffer, or a malformed header): out of line, and reached by a
    /// tail call, so that the copy between IPC buffers it may call leaves
    /// [`fast_ipc_entry`] without a stack frame.
    #[inline(never)]
    extern "C" fn fast_ipc_long<const REPLY_RECV: bool>(
        cap: u64,
        info: u64,
        word0: u64,
        word1: u64,
        word2: u64,
        word3: u64,
        per_cpu: &PerCpu,
    ) -> *mut UserContext {
        let args = IpcArguments { cap, info, words: [word0, word1, word2, word3] };
        fast_ipc(per_cpu, ipc_syscall(REPLY_RECV), args)
    }

    /// `ReplyRecv` if `reply_recv`, else `Call`.
    const fn ipc_syscall(reply_recv: bool) -> Syscall {
        if reply_recv { Syscall::ReplyRecv } else { Syscall::Call }
    }

    /// The fast path proper: `syscall` with `args`, from this CPU's current thread.
    #[inline(always)]
    fn fast_ipc(per_cpu: &PerCpu, syscall: Syscall, args: IpcArguments) -> *mut UserContext {
        let mut guard = KERNEL.lock();
        let system = system(&mut guard);
        // Only a component's `svc` reaches EL2 (a guest's goes to its own EL1), and a vCPU
        // thread holds no capabilities anyway, so the caller is a component.
        let cpu = per_cpu.cpu();
        let outcome = system.kernel.fast_ipc(cpu, syscall, args, &system.machine);
        if let FastIpc::Handed(thread) = outcome {
            // A component's `svc` brought the CPU here, so it is in component mode already,
            // which the component handed over to needs.
            let (context, ttbr0) = (system.kernel.context_ptr(thread), system.kernel.address_space(thread));
            drop(guard);
            switch_address_space(ttbr0);
            return context;
        }
        if let FastIpc::ReplyToVcpu(reply) = outcome {
            // The common case, `RESUME` of an MMIO access by the vCPU still loaded here
            // with no EL1 work waiting, is finished here with no call; anything else out
            // of line.
            let loaded_here = |vcpu| per_cpu.holds_vcpu(vcpu);
            if let Some((thread, vcpu)) =
                system.kernel.fast_resume_vcpu(cpu, reply, args.info, args.words[0], loaded_here)
            {
                guest::enable_virtual_interface(&system.machine.vcpus[usize::from(vcpu.0)].context);
                // A component's `svc` brought the CPU here.
                per_cpu.mode().leave_component();
                let context = system.kernel.context_ptr(thread);
                drop(guard);
                return context;
            }
            let [word0, word1, word2, word3] = args.words;
            return finish_reply_to_vcpu(reply, args.info, word0, word1, word2, word3, per_cpu, guard);
        }
        decline(system, per_cpu, args)
    }

    /// The fast path declined: the arguments go into the caller's saved context, where the
    /// slow path reads them (the caller is this CPU's current thread: it made the `svc`),
    /// and null says so to the vector.
    #[inline(always)]
    fn decline(system: &mut System, per_cpu: &PerCpu, args: IpcArguments) -> *mut UserContext {
        if let Some(context) = system.kernel.current_context(per_cpu.cpu()) {
            args.store(context);
        }
        core::ptr::null_mut()
    }

    /// The rest of a fast `ReplyRecv` that answers a vCPU ([`FastIpc::ReplyToVcpu`]) with
    /// header `info` and the words, when [`fast_ipc`] could not finish it as a plain
    /// `RESUME` of an MMIO access (`Kernel::fast_resume_vcpu`): `Kernel::fast_reply_to_vcpu`,
    /// then the generic resume of the vCPU. Out of line and reached by a tail call (the
    /// lock's guard and every argument in registers), so that the components' fast path
    /// makes no call; returns the vCPU's context, or null if the slow path must take the
    /// system call after all.
    #[inline(never)]
    #[allow(clippy::too_many_arguments, reason = "the fast path's registers, passed on as they are")]
    fn finish_reply_to_vcpu(
        reply: VcpuReply,
        info: u64,
        word0: u64,
        word1: u64,
        word2: u64,
        word3: u64,
        per_cpu: &PerCpu,
        mut guard: KernelGuard,
    ) -> *mut UserContext {
        let system = system(&mut guard);
        let args = reply.arguments(info, [word0, word1, word2, word3]);
        let Some(thread) = system.kernel.fast_reply_to_vcpu(per_cpu.cpu(), reply, args, &system.machine)
        else {
            return decline(system, per_cpu, args);
        };
        let (context, address_space) = system.resume(per_cpu, thread);
        drop(guard);
        if let Some(ttbr0) = address_space {
            switch_address_space(ttbr0);
        }
        context
    }

    /// Every synchronous exception from a lower EL that [`fast_ipc_entry`] did not take:
    /// a guest's trap, a system call, a fault.
    pub extern "C" fn lower_sync(per_cpu: &PerCpu) -> *mut UserContext {
        let esr = ESR_EL2.get();
        if per_cpu.mode().is_guest() {
            if kernel::guest::is_mmio_access(esr) {
                return guest_mmio(per_cpu, esr);
            }
            return guest_trap(per_cpu, esr);
        }
        component_sync(per_cpu, esr)
    }

    /// [`lower_sync`] for a component (apart, so that a guest's trap reaches
    /// [`guest_trap`] or [`guest_mmio`] without this path's stack frame).
    #[inline(never)]
    fn component_sync(per_cpu: &PerCpu, esr: u64) -> *mut UserContext {
        kernel_entry(per_cpu, |system, cpu| {
            if (esr >> 26) & 0x3f == EC_SVC64 {
                system.kernel.slow_syscall(cpu, &mut system.machine);
            } else {
                fault(system, cpu, esr);
            }
        })
    }

    /// A synchronous exception other than `svc`: a fault of the running thread.
    #[cold]
    #[inline(never)]
    fn fault(system: &mut System, cpu: usize, esr: u64) {
        // Elsewhere FAR_EL2 is stale (maybe another thread's fault): never pass it on.
        let far = if EC_WITH_FAR.contains(&((esr >> 26) & 0x3f)) { FAR_EL2.get() } else { 0 };
        system.kernel.handle_fault(cpu, esr, far, &mut system.machine);
    }

    /// A synchronous exception (or SError) of the running vCPU other than an MMIO access
    /// (kept out of line, so the components' paths stay short): the whole kernel entry.
    #[inline(never)]
    fn guest_trap(per_cpu: &PerCpu, esr: u64) -> *mut UserContext {
        guest::disable_virtual_interface();
        guest_trap_locked(per_cpu, KERNEL.lock(), esr)
    }

    /// A load or store of the running vCPU to an unmapped IPA with a full syndrome
    /// (`kernel::guest::is_mmio_access`): `Kernel::fast_vcpu_trap` first, where a waiting
    /// server on this CPU takes it at once or (unclaimed) the kernel answers it, and only
    /// that thread's context is prepared; what it declines (changing nothing) is the whole
    /// kernel entry.
    #[inline(never)]
    fn guest_mmio(per_cpu: &PerCpu, esr: u64) -> *mut UserContext {
        guest::disable_virtual_interface();
        let (far, hpfar) = (FAR_EL2.get(), HPFAR_EL2.get());
        let mut guard = KERNEL.lock();
        let cpu = per_cpu.cpu();
        let system = system(&mut guard);
        if per_cpu.timer_ppis_held() == 0
            && let Some(outcome) = system.kernel.fast_vcpu_trap(cpu, &Trap { esr, far, hpfar })
        {
            let (server, registers) = match outcome {
                FastTrap::Forwarded { server, registers } => (server, registers),
                FastTrap::Answered(vcpu) => return resume_answered_vcpu(per_cpu, guard, vcpu),
            };
            // The server of a forwarded access (`System::resume` for a component, which
            // knows that a guest ran here), with its message in registers.
            per_cpu.mode().leave_guest();
            let (context, ttbr0) = (system.kernel.context_ptr(server), system.kernel.address_space(server));
            drop(guard);
            switch_address_space(ttbr0);
            let [x0, x1, x2, x3, x4, x5, x6] = registers;
            // SAFETY: `context` is the saved state of `server`, current on this CPU with its
            // address space loaded, which nothing else uses now that the lock is released;
            // `registers` are the rest of what it resumes with.
            unsafe { exit_with_message(x0, x1, x2, x3, x4, x5, x6, context) }
        }
        guest_mmio_slowly(per_cpu, guard, esr)
    }

    /// [`guest_mmio`] for an access the kernel answered at once: the vCPU `thread` goes on
    /// (out of line, so that the fast path keeps its registers).
    #[inline(never)]
    fn resume_answered_vcpu(per_cpu: &PerCpu, mut guard: KernelGuard, thread: ThreadId) -> *mut UserContext {
        let (context, _) = system(&mut guard).resume(per_cpu, thread);
        drop(guard);
        context
    }

    /// [`guest_mmio`] for what its fast path declines (out of line, so that the fast path
    /// keeps its registers).
    #[inline(never)]
    fn guest_mmio_slowly(per_cpu: &PerCpu, guard: KernelGuard, esr: u64) -> *mut UserContext {
        guest_trap_locked(per_cpu, guard, esr)
    }

    /// The kernel entry of a vCPU's trap with syndrome `esr`, under the lock `guard`
    /// holds, the virtual CPU interface already off.
    #[inline(always)]
    fn guest_trap_locked(per_cpu: &PerCpu, mut guard: KernelGuard, esr: u64) -> *mut UserContext {
        let trap = if EC_WITH_HPFAR.contains(&((esr >> 26) & 0x3f)) {
            Trap { esr, far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() }
        } else {
            Trap { esr, far: 0, hpfar: 0 }
        };
        let cpu = per_cpu.cpu();
        let system = system(&mut guard);
        system.machine.release_timer_ppis(cpu);
        system.kernel.handle_vcpu_trap(cpu, &trap, &mut system.machine);
        leave_kernel(per_cpu, guard)
    }

    /// IRQ (or FIQ) while a component or a guest ran.
    pub extern "C" fn lower_irq(per_cpu: &PerCpu) -> *mut UserContext {
        if !per_cpu.mode().is_guest() {
            return kernel_entry(per_cpu, acknowledge_interrupts);
        }
        guest_irq(per_cpu)
    }

    /// IRQ while a guest ran: a maintenance condition (read before the interface goes
    /// off, which ends it and so the maintenance interrupt) means a vGIC event for it.
    #[inline(never)]
    fn guest_irq(per_cpu: &PerCpu) -> *mut UserContext {
        let maintenance = guest::maintenance_status() != 0;
        guest::disable_virtual_interface();
        kernel_entry(per_cpu, |system, cpu| {
            system.machine.release_timer_ppis(cpu);
            acknowledge_interrupts(system, cpu);
            if maintenance && let Some(vcpu) = PER_CPU[cpu].loaded_vcpu() {
                system.kernel.vcpu_interrupt(cpu, VcpuId(vcpu));
            }
        })
    }

    /// SError while a lower EL ran (an external abort from a device it accessed): a
    /// fault of the running component, or for a guest an exception it takes (a rate
    /// limited console line says so).
    pub extern "C" fn lower_serror(per_cpu: &PerCpu) -> *mut UserContext {
        let esr = ESR_EL2.get();
        if per_cpu.mode().is_guest() {
            return guest_trap(per_cpu, esr);
        }
        kernel_entry(per_cpu, |system, cpu| system.kernel.handle_fault(cpu, esr, 0, &mut system.machine))
    }

    /// An exception the kernel took from itself (or from AArch32): a kernel bug.
    pub extern "C" fn kernel_exception(kind: usize) -> ! {
        panic!(
            "{} exception: ESR_EL2 {:#x}, ELR_EL2 {:#x}, FAR_EL2 {:#x}",
            KERNEL_EXCEPTION_KINDS[kind],
            ESR_EL2.get(),
            ELR_EL2.get(),
            FAR_EL2.get()
        );
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        match info.location() {
            Some(at) => console::print_line_unlocked(format_args!("panic: {} at {at}", info.message())),
            None => console::print_line_unlocked(format_args!("panic: {}", info.message())),
        }
        psci::system_off()
    }
}
