//! Physical memory at boot: the kernel image's layout, the frame allocator for
//! translation tables, and the kernel's final linear map.

use super::boot;
use kernel::address::{KERNEL_BASE, LINEAR_MAP_SIZE, PAGE_SIZE, Pa, Va};
use kernel::pagetable::{self, LeafAttributes, MapError, MemoryType, PageTable, TableMemory};

/// Where physical RAM may start: everything below is devices in the linear map.
pub const RAM_START: u64 = 1 << 30;

unsafe extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __kernel_end: u8;
}

/// Physical address of a linker symbol (linked at KERNEL_BASE + its physical address).
fn symbol_pa(symbol: *const u8) -> u64 {
    Va(symbol as u64).kernel_to_pa().0
}

/// Physical layout of the kernel image, from the linker script's symbols.
#[derive(Clone, Copy, Debug)]
pub struct KernelImage {
    /// First byte of the image (code).
    pub start: u64,
    /// End of code (page aligned).
    pub text_end: u64,
    /// End of read-only data (page aligned).
    pub rodata_end: u64,
    /// End of everything, `.bss` included (page aligned).
    pub end: u64,
}

impl KernelImage {
    /// The running kernel's layout.
    pub fn current() -> Self {
        Self {
            start: symbol_pa(&raw const __kernel_start),
            text_end: symbol_pa(&raw const __text_end),
            rodata_end: symbol_pa(&raw const __rodata_end),
            end: symbol_pa(&raw const __kernel_end),
        }
    }
}

/// Hands out zeroed page frames upward from `next` to `end` (physical RAM, reached
/// through the linear map); frames are never freed.
pub struct BootFrames {
    start: u64,
    next: u64,
    end: u64,
}

impl BootFrames {
    /// Frames from `start` (rounded up to a page) to `end`, both in the linear map's RAM.
    pub fn new(start: u64, end: u64) -> Self {
        let start = start.next_multiple_of(PAGE_SIZE);
        Self { start, next: start, end }
    }

    /// The frames handed out so far (`start..next`).
    pub fn used(&self) -> (u64, u64) {
        (self.start, self.next)
    }
}

impl TableMemory for BootFrames {
    fn allocate_table(&mut self) -> Option<Pa> {
        if self.end.checked_sub(self.next)? < PAGE_SIZE {
            return None;
        }
        let frame = Pa(self.next);
        self.next += PAGE_SIZE;
        // SAFETY: the frame is RAM in the linear map that nothing else uses: it lies
        // between the boot-info's free base and the end of RAM, and was never handed out.
        unsafe { core::ptr::write_bytes(frame.to_kernel_va().0 as *mut u8, 0, PAGE_SIZE as usize) };
        Some(frame)
    }

    fn table(&mut self, frame: Pa) -> &mut pagetable::Table {
        assert!((self.start..self.next).contains(&frame.0) && frame.is_page_aligned(), "not a table frame");
        // SAFETY: the frame was handed out by this allocator (checked above) for a
        // translation table, so only this allocator's user reaches it; the returned
        // borrow of `self` keeps it unique.
        unsafe { &mut *(frame.to_kernel_va().0 as *mut pagetable::Table) }
    }
}

/// Builds the kernel's final TTBR1_EL2 tables: physical 0..4 GiB at KERNEL_BASE + PA,
/// devices below 1 GiB; the kernel's code read-only and executable, its read-only data
/// read-only, the kernel stacks' guard pages unmapped, everything else read/write and
/// never executed.
pub fn build_kernel_map(frames: &mut BootFrames, image: &KernelImage) -> Result<PageTable, MapError> {
    let mut table = PageTable::new(frames)?;
    let data = LeafAttributes::kernel(MemoryType::Normal, true, false);
    let mut map = |start: u64, end: u64, attributes| {
        table.map(frames, Pa(start).to_kernel_va(), Pa(start), end - start, attributes)
    };
    map(0, RAM_START, LeafAttributes::kernel(MemoryType::Device, true, false))?;
    map(RAM_START, image.start, data)?;
    map(image.start, image.text_end, LeafAttributes::kernel(MemoryType::Normal, false, true))?;
    map(image.text_end, image.rodata_end, LeafAttributes::kernel(MemoryType::Normal, false, false))?;
    let mut data_start = image.rodata_end;
    for guard in boot::guard_pages() {
        map(data_start, guard, data)?;
        data_start = guard + PAGE_SIZE;
    }
    map(data_start, image.end, data)?;
    map(image.end, LINEAR_MAP_SIZE, data)?;
    Ok(table)
}

/// Switches this CPU to the final kernel tables and publishes them for the CPUs that
/// start later.
pub fn install_kernel_map(table: &PageTable) {
    let ttbr1 = table.root().0;
    boot::KERNEL_TTBR1.store(ttbr1, core::sync::atomic::Ordering::Relaxed);
    // Secondary CPUs read KERNEL_TTBR1 with their MMU (and so their caches) off.
    // SAFETY: cleans one cache line of a kernel variable; no memory changes.
    unsafe {
        core::arch::asm!(
            "dc cvac, {line}",
            "dsb sy",
            line = in(reg) &raw const boot::KERNEL_TTBR1,
            options(nostack, preserves_flags),
        );
    }
    // The switch runs at its physical address, in the identity map that TTBR0_EL2 still
    // holds, so the translations it replaces never cover the code doing it.
    let trampoline = boot::switch_kernel_tables as *const () as u64 - KERNEL_BASE;
    // SAFETY: `switch_kernel_tables` only loads TTBR1_EL2 and flushes the TLB (clobbering
    // nothing but x0 and x30). The new tables map the kernel image, stacks and linear map
    // at the same addresses as the boot tables, so everything live stays valid.
    unsafe {
        core::arch::asm!(
            "blr {trampoline}",
            trampoline = in(reg) trampoline,
            inout("x0") ttbr1 => _,
            out("x30") _,
            options(nostack),
        );
    }
}
