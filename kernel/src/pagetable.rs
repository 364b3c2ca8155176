//! Translation tables: 4 KiB granule, 4 levels from level 0, 48-bit input addresses.
//!
//! The kernel builds every table once at boot: its own linear map (TTBR1_EL2), one
//! stage-1 table per component address space (TTBR0_EL2) and one stage-2 table per VM
//! (VTTBR_EL2, guest-physical addresses below [`IPA_LIMIT`], walked from level 0 as
//! [`VTCR`] says). [`PageTable::map`] maps a range with the largest leaves its alignment
//! allows (1 GiB and 2 MiB blocks, 4 KiB pages) and never replaces an existing mapping.
//! Table frames come from a [`TableMemory`], so host tests build real tables in heap pages.
//!
//! All descriptor bits are defined here, including the `MAIR_EL2` value stage-1 attribute
//! indexes refer to. The walker only knows valid, table and output-address bits, the same
//! in both stages; only the leaf attributes differ ([`LeafAttributes::guest`] for stage 2).

use crate::address::{PAGE_SIZE, Pa, Va};
use bootinfo::map_flags;

/// Descriptors per table (one 4 KiB frame of 8-byte entries).
pub const ENTRIES: usize = 512;

/// One translation table.
pub type Table = [u64; ENTRIES];

/// Attribute index of normal write-back cacheable memory in [`MAIR`].
const ATTR_NORMAL: u64 = 0;
/// Attribute index of Device-nGnRE memory in [`MAIR`].
const ATTR_DEVICE: u64 = 1;
/// `MAIR_EL2`: attribute 0 = normal inner/outer write-back read/write-allocate,
/// attribute 1 = Device-nGnRE.
pub const MAIR: u64 = (0xff << (8 * ATTR_NORMAL)) | (0x04 << (8 * ATTR_DEVICE));

/// Descriptor bits (Arm ARM D8.3, VMSAv8-64 translation table format).
mod bits {
    /// The descriptor is valid.
    pub const VALID: u64 = 1 << 0;
    /// At levels 0-2: a table descriptor (clear: a block). At level 3: must be set (page).
    pub const TABLE_OR_PAGE: u64 = 1 << 1;
    /// Position of AttrIndx, the MAIR attribute index.
    pub const ATTR_INDEX_SHIFT: u32 = 2;
    /// AP[1]: EL0 may access.
    pub const AP_EL0: u64 = 1 << 6;
    /// AP[2]: read-only at every level.
    pub const AP_READ_ONLY: u64 = 1 << 7;
    /// SH = inner shareable.
    pub const INNER_SHAREABLE: u64 = 3 << 8;
    /// Access flag: set so the first access does not fault.
    pub const ACCESS_FLAG: u64 = 1 << 10;
    /// Not global: the TLB tags the entry with the current ASID.
    pub const NOT_GLOBAL: u64 = 1 << 11;
    /// Privileged (EL2) execute-never.
    pub const PXN: u64 = 1 << 53;
    /// Unprivileged (EL0) execute-never.
    pub const UXN: u64 = 1 << 54;
    /// Output address bits of table, block and page descriptors.
    pub const ADDRESS: u64 = 0x0000_ffff_ffff_f000;
    /// Stage 2: position of MemAttr[3:0] (the memory type, no MAIR indirection).
    pub const S2_MEMATTR_SHIFT: u32 = 2;
    /// Stage 2 MemAttr: Normal, outer and inner write-back cacheable.
    pub const S2_MEMATTR_NORMAL_WB: u64 = 0b1111;
    /// Stage 2 MemAttr: Device-nGnRE.
    pub const S2_MEMATTR_DEVICE_NGNRE: u64 = 0b0001;
    /// Stage 2 S2AP[0]: the guest may read.
    pub const S2AP_READ: u64 = 1 << 6;
    /// Stage 2 S2AP[1]: the guest may write.
    pub const S2AP_WRITE: u64 = 1 << 7;
    /// Stage 2 XN[1] (XN = 0b10): the guest may not execute, at EL1 or EL0.
    pub const S2_EXECUTE_NEVER: u64 = 1 << 54;
}

/// One past the highest guest-physical address (40-bit IPAs, VTCR_EL2.T0SZ = 24).
pub const IPA_LIMIT: u64 = 1 << 40;

/// `VTCR_EL2` without its PS field: 40-bit IPAs (T0SZ = 24), which a 4 KiB granule walks
/// from level 0 (SL0 = 0b10, like a stage-1 table of that size), table walks inner
/// shareable write-back cacheable, 8-bit VMIDs. A level-0 start needs an output size
/// (PS) above 42 bits: the shell sets PS to the CPU's physical address size, which must
/// be at least [`STAGE2_MIN_PA_RANGE`].
pub const VTCR: u64 = 24 // T0SZ
    | 0b10 << 6 // SL0: start at level 0
    | 0b01 << 8 // IRGN0: write-back read/write-allocate
    | 0b01 << 10 // ORGN0
    | 0b11 << 12 // SH0: inner shareable; TG0 (bits 15:14) = 0b00: 4 KiB
    | 1 << 31; // RES1

/// Position of VTCR_EL2.PS, the output (physical) address size.
pub const VTCR_PS_SHIFT: u32 = 16;

/// The smallest ID_AA64MMFR0_EL1.PARange (and VTCR_EL2.PS) encoding with which [`VTCR`]
/// works: 0b0100, 44 bits.
pub const STAGE2_MIN_PA_RANGE: u64 = 0b0100;

/// Width of a virtual address in either half (TCR T0SZ = T1SZ = 16).
const VA_BITS: u32 = 48;
/// Widest physical address a descriptor holds.
const PA_LIMIT: u64 = 1 << 48;
/// The lowest level that holds blocks (1 GiB) with a 4 KiB granule.
const FIRST_BLOCK_LEVEL: usize = 1;
/// The level that holds pages.
const PAGE_LEVEL: usize = 3;

/// Bytes one entry at `level` covers: 512 GiB, 1 GiB, 2 MiB, 4 KiB.
const fn entry_size(level: usize) -> u64 {
    1 << entry_shift(level)
}

const fn entry_shift(level: usize) -> u32 {
    12 + 9 * (PAGE_LEVEL - level) as u32
}

/// Index of `va`'s entry in its table at `level` (the top 16 bits select TTBR0 or TTBR1
/// and take no part).
const fn table_index(va: u64, level: usize) -> usize {
    ((va >> entry_shift(level)) as usize) % ENTRIES
}

/// A table descriptor pointing at the next-level table in frame `table`.
pub const fn table_descriptor(table: Pa) -> u64 {
    (table.0 & bits::ADDRESS) | bits::TABLE_OR_PAGE | bits::VALID
}

/// Kind of memory a mapping refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    /// Normal write-back cacheable RAM, inner shareable.
    Normal,
    /// Device-nGnRE (MMIO): never cached, never executed.
    Device,
}

/// Why a range could not be mapped. After any error but [`MapError::OutOfMemory`] the
/// table is unchanged; after running out of memory it may hold part of the range (the
/// kernel stops booting in either case).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The virtual address, physical address or size is not a multiple of 4 KiB.
    Unaligned,
    /// The range is not canonical, crosses from one half of the address space into the
    /// other, wraps around, or reaches past 48-bit physical addresses.
    BadAddress,
    /// Part of the range is already mapped.
    Overlap,
    /// No frame left for a translation table.
    OutOfMemory,
    /// The bootinfo mapping flags ask for something a translation stage cannot express
    /// (no read access, or executable device memory).
    InvalidFlags,
}

/// Everything in a leaf descriptor except its output address and type bits: memory
/// type, access permissions, shareability, global-ness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafAttributes(u64);

impl LeafAttributes {
    /// A kernel (EL2-only, global) mapping. The kernel executes it only if `execute`.
    pub const fn kernel(memory: MemoryType, write: bool, execute: bool) -> Self {
        let mut descriptor = Self::memory_bits(memory) | bits::UXN;
        if !write {
            descriptor |= bits::AP_READ_ONLY;
        }
        if !execute {
            descriptor |= bits::PXN;
        }
        Self(descriptor)
    }

    /// A component (EL0, non-global) mapping, always readable; the kernel never executes it.
    pub const fn user(memory: MemoryType, write: bool, execute: bool) -> Self {
        let mut descriptor = Self::memory_bits(memory) | bits::AP_EL0 | bits::NOT_GLOBAL | bits::PXN;
        if !write {
            descriptor |= bits::AP_READ_ONLY;
        }
        if !execute {
            descriptor |= bits::UXN;
        }
        Self(descriptor)
    }

    /// A stage-2 (guest-physical) mapping, always readable by the guest.
    pub const fn guest(memory: MemoryType, write: bool, execute: bool) -> Self {
        let mut descriptor = bits::ACCESS_FLAG | bits::S2AP_READ;
        descriptor |= match memory {
            MemoryType::Normal => {
                bits::INNER_SHAREABLE | (bits::S2_MEMATTR_NORMAL_WB << bits::S2_MEMATTR_SHIFT)
            }
            MemoryType::Device => bits::S2_MEMATTR_DEVICE_NGNRE << bits::S2_MEMATTR_SHIFT,
        };
        if write {
            descriptor |= bits::S2AP_WRITE;
        }
        if !execute {
            descriptor |= bits::S2_EXECUTE_NEVER;
        }
        Self(descriptor)
    }

    /// The component mapping that bootinfo [`map_flags`] describe.
    pub const fn from_map_flags(flags: u32) -> Result<Self, MapError> {
        match decode_map_flags(flags) {
            Ok((memory, write, execute)) => Ok(Self::user(memory, write, execute)),
            Err(error) => Err(error),
        }
    }

    /// The stage-2 mapping that bootinfo [`map_flags`] describe (a VM's `stage2` record).
    pub const fn from_stage2_flags(flags: u32) -> Result<Self, MapError> {
        match decode_map_flags(flags) {
            Ok((memory, write, execute)) => Ok(Self::guest(memory, write, execute)),
            Err(error) => Err(error),
        }
    }

    /// The same mapping, tagged with the current ASID in the TLB.
    pub const fn not_global(self) -> Self {
        Self(self.0 | bits::NOT_GLOBAL)
    }

    /// Attribute and type bits of a level 1 or 2 block descriptor (OR in the address).
    pub const fn block_bits(self) -> u64 {
        self.0 | bits::VALID
    }

    /// Attribute and type bits of a level 3 page descriptor (OR in the address).
    pub const fn page_bits(self) -> u64 {
        self.0 | bits::TABLE_OR_PAGE | bits::VALID
    }

    const fn memory_bits(memory: MemoryType) -> u64 {
        let common = bits::ACCESS_FLAG;
        match memory {
            MemoryType::Normal => common | bits::INNER_SHAREABLE | (ATTR_NORMAL << bits::ATTR_INDEX_SHIFT),
            // Shareability is ignored for device memory (always outer shareable).
            MemoryType::Device => common | (ATTR_DEVICE << bits::ATTR_INDEX_SHIFT),
        }
    }
}

/// The memory type, write and execute permission that bootinfo [`map_flags`] ask for;
/// reading is always allowed, and device memory is never executable.
const fn decode_map_flags(flags: u32) -> Result<(MemoryType, bool, bool), MapError> {
    let known = map_flags::READ | map_flags::WRITE | map_flags::EXECUTE | map_flags::DEVICE;
    let device = flags & map_flags::DEVICE != 0;
    let execute = flags & map_flags::EXECUTE != 0;
    if flags & !known != 0 || flags & map_flags::READ == 0 || (device && execute) {
        return Err(MapError::InvalidFlags);
    }
    let memory = if device { MemoryType::Device } else { MemoryType::Normal };
    Ok((memory, flags & map_flags::WRITE != 0, execute))
}

/// Frames for translation tables and access to their contents.
pub trait TableMemory {
    /// A zero-filled frame for a new table, or `None` when memory is exhausted.
    fn allocate_table(&mut self) -> Option<Pa>;
    /// The table in a frame that [`TableMemory::allocate_table`] returned.
    fn table(&mut self, frame: Pa) -> &mut Table;
}

/// What a descriptor at a table level holds.
enum Entry {
    Invalid,
    Table(Pa),
    Leaf,
}

fn decode(descriptor: u64, level: usize) -> Entry {
    if descriptor & bits::VALID == 0 {
        Entry::Invalid
    } else if level < PAGE_LEVEL && descriptor & bits::TABLE_OR_PAGE != 0 {
        Entry::Table(Pa(descriptor & bits::ADDRESS))
    } else {
        Entry::Leaf
    }
}

/// Calls `step(va, pa, level)` for each leaf that maps the range, largest first.
fn for_each_leaf(
    va: Va,
    pa: Pa,
    size: u64,
    mut step: impl FnMut(u64, u64, usize) -> Result<(), MapError>,
) -> Result<(), MapError> {
    let mut offset = 0;
    while offset < size {
        let (leaf_va, leaf_pa, remaining) = (va.0 + offset, pa.0 + offset, size - offset);
        let level = (FIRST_BLOCK_LEVEL..PAGE_LEVEL)
            .find(|&level| {
                (leaf_va | leaf_pa).is_multiple_of(entry_size(level)) && remaining >= entry_size(level)
            })
            .unwrap_or(PAGE_LEVEL);
        step(leaf_va, leaf_pa, level)?;
        offset += entry_size(level);
    }
    Ok(())
}

/// A four-level translation table rooted in one frame.
#[derive(Debug)]
pub struct PageTable {
    root: Pa,
}

impl PageTable {
    /// An empty table with a freshly allocated root.
    pub fn new(memory: &mut impl TableMemory) -> Result<Self, MapError> {
        Ok(Self { root: memory.allocate_table().ok_or(MapError::OutOfMemory)? })
    }

    /// The root frame (the base address for TTBR0_EL2, TTBR1_EL2 or VTTBR_EL2).
    pub fn root(&self) -> Pa {
        self.root
    }

    /// Maps `size` bytes at `va` to `pa` with `attributes`, using the largest block each
    /// step's alignment allows. Fails without changing anything if part of the range is
    /// already mapped.
    pub fn map(
        &mut self,
        memory: &mut impl TableMemory,
        va: Va,
        pa: Pa,
        size: u64,
        attributes: LeafAttributes,
    ) -> Result<(), MapError> {
        if !va.is_page_aligned() || !pa.is_page_aligned() || !size.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Unaligned);
        }
        if size == 0 {
            return Ok(());
        }
        let last_va = va.0.checked_add(size - 1).ok_or(MapError::BadAddress)?;
        let pa_end = pa.0.checked_add(size).ok_or(MapError::BadAddress)?;
        let half = va.0 >> VA_BITS;
        if (half != 0 && half != 0xffff) || last_va >> VA_BITS != half || pa_end > PA_LIMIT {
            return Err(MapError::BadAddress);
        }
        // Walk once without writing so an overlap leaves the table as it was.
        for_each_leaf(va, pa, size, |leaf_va, _, level| self.check_free(memory, leaf_va, level))?;
        for_each_leaf(va, pa, size, |leaf_va, leaf_pa, level| {
            self.map_leaf(memory, leaf_va, leaf_pa, level, attributes)
        })
    }

    /// Maps `size` bytes of guest-physical addresses at `ipa` to `pa` in a stage-2 table,
    /// as [`PageTable::map`] does; the range must lie below [`IPA_LIMIT`].
    pub fn map_guest(
        &mut self,
        memory: &mut impl TableMemory,
        ipa: u64,
        pa: Pa,
        size: u64,
        attributes: LeafAttributes,
    ) -> Result<(), MapError> {
        if ipa.checked_add(size).is_none_or(|end| end > IPA_LIMIT) {
            return Err(MapError::BadAddress);
        }
        self.map(memory, Va(ipa), pa, size, attributes)
    }

    /// Fails if a leaf at `level` for `va` would cover anything already mapped.
    fn check_free(&self, memory: &mut impl TableMemory, va: u64, leaf_level: usize) -> Result<(), MapError> {
        let mut table = self.root;
        for level in 0..=leaf_level {
            match decode(memory.table(table)[table_index(va, level)], level) {
                Entry::Invalid => return Ok(()),
                Entry::Table(next) if level < leaf_level => table = next,
                Entry::Table(_) | Entry::Leaf => return Err(MapError::Overlap),
            }
        }
        Ok(())
    }

    /// Installs one leaf, creating the tables above it.
    fn map_leaf(
        &self,
        memory: &mut impl TableMemory,
        va: u64,
        pa: u64,
        leaf_level: usize,
        attributes: LeafAttributes,
    ) -> Result<(), MapError> {
        let mut table = self.root;
        for level in 0..leaf_level {
            let index = table_index(va, level);
            table = match decode(memory.table(table)[index], level) {
                Entry::Table(next) => next,
                Entry::Invalid => {
                    let next = memory.allocate_table().ok_or(MapError::OutOfMemory)?;
                    memory.table(table)[index] = table_descriptor(next);
                    next
                }
                Entry::Leaf => return Err(MapError::Overlap),
            };
        }
        let slot = &mut memory.table(table)[table_index(va, leaf_level)];
        if *slot & bits::VALID != 0 {
            return Err(MapError::Overlap);
        }
        let type_bits =
            if leaf_level == PAGE_LEVEL { attributes.page_bits() } else { attributes.block_bits() };
        *slot = (pa & bits::ADDRESS) | type_bits;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Table frames on the heap, at made-up physical addresses from `BASE` up.
    struct HeapMemory {
        frames: Vec<Box<Table>>,
        limit: usize,
    }

    const BASE: u64 = 0x8000_0000;

    impl HeapMemory {
        fn new() -> Self {
            Self::with_limit(usize::MAX)
        }

        fn with_limit(limit: usize) -> Self {
            Self { frames: Vec::new(), limit }
        }
    }

    impl TableMemory for HeapMemory {
        fn allocate_table(&mut self) -> Option<Pa> {
            if self.frames.len() == self.limit {
                return None;
            }
            self.frames.push(Box::new([0; ENTRIES]));
            Some(Pa(BASE + (self.frames.len() as u64 - 1) * PAGE_SIZE))
        }

        fn table(&mut self, frame: Pa) -> &mut Table {
            &mut self.frames[((frame.0 - BASE) / PAGE_SIZE) as usize]
        }
    }

    /// Walks the table like the MMU: the leaf descriptor for `va` and its level.
    fn lookup(memory: &mut HeapMemory, table: &PageTable, va: u64) -> Option<(u64, usize)> {
        let mut frame = table.root();
        for level in 0..=PAGE_LEVEL {
            let descriptor = memory.table(frame)[table_index(va, level)];
            match decode(descriptor, level) {
                Entry::Invalid => return None,
                Entry::Table(next) => frame = next,
                Entry::Leaf => return Some((descriptor, level)),
            }
        }
        None
    }

    /// The physical address `va` translates to.
    fn translate(memory: &mut HeapMemory, table: &PageTable, va: u64) -> Option<u64> {
        let (descriptor, level) = lookup(memory, table, va)?;
        Some((descriptor & bits::ADDRESS) + va % entry_size(level))
    }

    fn rw_user() -> LeafAttributes {
        LeafAttributes::user(MemoryType::Normal, true, false)
    }

    #[test]
    fn maps_pages_and_translates_each() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        table.map(&mut memory, Va(0x40_0000), Pa(0x4100_3000), 0x3000, rw_user()).unwrap();
        for page in 0..3 {
            let va = 0x40_0000 + page * PAGE_SIZE + 0x123;
            assert_eq!(translate(&mut memory, &table, va), Some(0x4100_3123 + page * PAGE_SIZE));
            assert_eq!(lookup(&mut memory, &table, va).unwrap().1, PAGE_LEVEL);
        }
        assert_eq!(translate(&mut memory, &table, 0x40_3000), None);
        assert_eq!(translate(&mut memory, &table, 0x3f_f000), None);
        // Root, level 1, level 2 and level 3 tables.
        assert_eq!(memory.frames.len(), 4);
    }

    #[test]
    fn uses_the_largest_block_alignment_allows() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        // Pages up to the 2 MiB boundary, 2 MiB blocks up to 1 GiB, then one 1 GiB block.
        let start = 0x4000_0000 - 0x20_0000 - 0x1000;
        let size = 0x1000 + 0x20_0000 + (1 << 30);
        let attributes = LeafAttributes::kernel(MemoryType::Normal, true, false);
        table.map(&mut memory, Va(start), Pa(start), size, attributes).unwrap();
        assert_eq!(lookup(&mut memory, &table, start).unwrap().1, 3);
        assert_eq!(lookup(&mut memory, &table, start + 0x1000).unwrap().1, 2);
        assert_eq!(lookup(&mut memory, &table, 0x4000_0000).unwrap().1, 1);
        assert_eq!(translate(&mut memory, &table, 0x7fff_ffff), Some(0x7fff_ffff));
        let (block, _) = lookup(&mut memory, &table, 0x4000_0000).unwrap();
        assert_eq!(block & 0b11, 0b01, "blocks have the table bit clear");
    }

    #[test]
    fn blocks_need_both_addresses_aligned() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        table.map(&mut memory, Va(0x20_0000), Pa(0x4000_1000), 0x20_0000, rw_user()).unwrap();
        assert_eq!(lookup(&mut memory, &table, 0x20_0000).unwrap().1, PAGE_LEVEL);
        assert_eq!(translate(&mut memory, &table, 0x3f_ffff), Some(0x4020_0fff));
    }

    #[test]
    fn upper_half_addresses_index_like_lower_half_ones() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        let pa = Pa(0x4010_0000);
        let attributes = LeafAttributes::kernel(MemoryType::Normal, false, true);
        table.map(&mut memory, pa.to_kernel_va(), pa, PAGE_SIZE, attributes).unwrap();
        assert_eq!(translate(&mut memory, &table, pa.to_kernel_va().0), Some(pa.0));
        assert_eq!(translate(&mut memory, &table, pa.0), Some(pa.0), "the MMU ignores the top 16 bits");
    }

    #[test]
    fn rejects_unaligned_input() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        let mut map = |va, pa, size| table.map(&mut memory, Va(va), Pa(pa), size, rw_user());
        assert_eq!(map(0x1001, 0x4000_0000, 0x1000), Err(MapError::Unaligned));
        assert_eq!(map(0x1000, 0x4000_0800, 0x1000), Err(MapError::Unaligned));
        assert_eq!(map(0x1000, 0x4000_0000, 0x1800), Err(MapError::Unaligned));
        assert_eq!(map(0x1000, 0x4000_0000, 0), Ok(()));
    }

    #[test]
    fn rejects_bad_addresses() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        let mut map = |va, pa, size| table.map(&mut memory, Va(va), Pa(pa), size, rw_user());
        assert_eq!(map(0x0001_0000_0000_0000, 0, 0x1000), Err(MapError::BadAddress), "non-canonical");
        assert_eq!(map(0x0000_ffff_ffff_f000, 0, 0x2000), Err(MapError::BadAddress), "leaves the lower half");
        assert_eq!(map(0xffff_ffff_ffff_f000, 0, 0x2000), Err(MapError::BadAddress), "wraps");
        assert_eq!(map(0x1000, 0xffff_ffff_f000, 0x2000), Err(MapError::BadAddress), "PA past 48 bits");
        assert_eq!(map(0x1000, !0xfff, 0x2000), Err(MapError::BadAddress), "PA wraps");
    }

    #[test]
    fn rejects_overlaps_and_leaves_the_table_unchanged() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        table.map(&mut memory, Va(0x40_2000), Pa(0x5000_0000), 0x1000, rw_user()).unwrap();
        table.map(&mut memory, Va(0x60_0000), Pa(0x5020_0000), 0x20_0000, rw_user()).unwrap();
        let frames = memory.frames.len();
        let snapshot: Vec<Table> = memory.frames.iter().map(|frame| **frame).collect();

        let mut map = |va, size| table.map(&mut memory, Va(va), Pa(0x6000_0000), size, rw_user());
        assert_eq!(map(0x40_0000, 0x3000), Err(MapError::Overlap), "page over a page");
        assert_eq!(map(0x40_0000, 0x20_0000), Err(MapError::Overlap), "block over a table of pages");
        assert_eq!(map(0x70_0000, 0x1000), Err(MapError::Overlap), "page inside a block");
        assert_eq!(map(0, 1 << 30), Err(MapError::Overlap), "1 GiB block over everything");

        assert_eq!(memory.frames.len(), frames);
        assert!(memory.frames.iter().zip(&snapshot).all(|(frame, old)| **frame == *old));
        table.map(&mut memory, Va(0x40_3000), Pa(0x6000_0000), 0x1000, rw_user()).unwrap();
    }

    #[test]
    fn reports_exhausted_memory() {
        let mut memory = HeapMemory::with_limit(3);
        let mut table = PageTable::new(&mut memory).unwrap();
        assert_eq!(
            table.map(&mut memory, Va(0x40_0000), Pa(0x4000_0000), 0x1000, rw_user()),
            Err(MapError::OutOfMemory)
        );
        assert_eq!(PageTable::new(&mut HeapMemory::with_limit(0)).err(), Some(MapError::OutOfMemory));
    }

    #[test]
    fn user_permissions_follow_the_map_flags() {
        use map_flags::{DEVICE, EXECUTE, READ, WRITE};
        let text = LeafAttributes::from_map_flags(READ | EXECUTE).unwrap().page_bits();
        assert_eq!(text & (bits::AP_EL0 | bits::AP_READ_ONLY), bits::AP_EL0 | bits::AP_READ_ONLY);
        assert_eq!(text & (bits::UXN | bits::PXN), bits::PXN);
        assert_ne!(text & bits::NOT_GLOBAL, 0);

        let data = LeafAttributes::from_map_flags(READ | WRITE).unwrap().page_bits();
        assert_eq!(data & (bits::AP_EL0 | bits::AP_READ_ONLY), bits::AP_EL0);
        assert_eq!(data & (bits::UXN | bits::PXN), bits::UXN | bits::PXN);
        assert_eq!((data >> bits::ATTR_INDEX_SHIFT) & 7, ATTR_NORMAL);

        let mmio = LeafAttributes::from_map_flags(READ | WRITE | DEVICE).unwrap().page_bits();
        assert_eq!((mmio >> bits::ATTR_INDEX_SHIFT) & 7, ATTR_DEVICE);
        assert_eq!(mmio & (bits::UXN | bits::PXN), bits::UXN | bits::PXN);

        assert_eq!(LeafAttributes::from_map_flags(WRITE), Err(MapError::InvalidFlags));
        assert_eq!(LeafAttributes::from_map_flags(READ | EXECUTE | DEVICE), Err(MapError::InvalidFlags));
        assert_eq!(LeafAttributes::from_map_flags(READ | 16), Err(MapError::InvalidFlags));
    }

    #[test]
    fn kernel_mappings_are_global_and_hidden_from_el0() {
        let text = LeafAttributes::kernel(MemoryType::Normal, false, true).block_bits();
        assert_eq!(text & (bits::AP_EL0 | bits::NOT_GLOBAL | bits::PXN), 0);
        assert_ne!(text & bits::UXN, 0);
        assert_ne!(text & bits::AP_READ_ONLY, 0);
        let data = LeafAttributes::kernel(MemoryType::Normal, true, false).not_global().block_bits();
        assert_eq!(data & (bits::AP_READ_ONLY | bits::AP_EL0), 0);
        assert_ne!(data & bits::PXN, 0);
        assert_ne!(data & bits::NOT_GLOBAL, 0);
        assert_ne!(data & bits::ACCESS_FLAG, 0);
    }

    #[test]
    fn guest_mappings_carry_stage2_attributes() {
        use map_flags::{DEVICE, EXECUTE, READ, WRITE};
        let ram = LeafAttributes::from_stage2_flags(READ | WRITE | EXECUTE).unwrap().block_bits();
        assert_eq!(ram & (bits::S2AP_READ | bits::S2AP_WRITE), bits::S2AP_READ | bits::S2AP_WRITE);
        assert_eq!((ram >> bits::S2_MEMATTR_SHIFT) & 0xf, 0b1111, "normal write-back");
        assert_eq!(ram & bits::INNER_SHAREABLE, bits::INNER_SHAREABLE);
        assert_eq!(ram & (3 << 53), 0, "executable at EL1 and EL0");
        assert_ne!(ram & bits::ACCESS_FLAG, 0);
        assert_eq!(ram & (bits::NOT_GLOBAL | 1 << 55), 0, "no stage-1 or software bits");

        let rom = LeafAttributes::from_stage2_flags(READ).unwrap().page_bits();
        assert_eq!(rom & (bits::S2AP_READ | bits::S2AP_WRITE), bits::S2AP_READ);
        assert_eq!(rom & (3 << 53), bits::S2_EXECUTE_NEVER);

        let device = LeafAttributes::from_stage2_flags(READ | WRITE | DEVICE).unwrap().page_bits();
        assert_eq!((device >> bits::S2_MEMATTR_SHIFT) & 0xf, 0b0001, "Device-nGnRE");
        assert_eq!(device & bits::INNER_SHAREABLE, 0);
        assert_eq!(device & (3 << 53), bits::S2_EXECUTE_NEVER);
        assert_eq!(device & 0b11, 0b11, "a page descriptor");

        assert_eq!(LeafAttributes::from_stage2_flags(WRITE), Err(MapError::InvalidFlags));
        assert_eq!(LeafAttributes::from_stage2_flags(READ | EXECUTE | DEVICE), Err(MapError::InvalidFlags));
    }

    #[test]
    fn guest_tables_take_40_bit_ipas_walked_from_level_0() {
        let mut memory = HeapMemory::new();
        let mut table = PageTable::new(&mut memory).unwrap();
        let ram = LeafAttributes::guest(MemoryType::Normal, true, true);
        table.map_guest(&mut memory, 0x4000_0000, Pa(0x5000_0000), 0x20_0000, ram).unwrap();
        let top = IPA_LIMIT - PAGE_SIZE;
        table.map_guest(&mut memory, top, Pa(0x6000_0000), PAGE_SIZE, ram).unwrap();
        assert_eq!(translate(&mut memory, &table, 0x4012_3456), Some(0x5012_3456));
        assert_eq!(lookup(&mut memory, &table, 0x4000_0000).unwrap().1, 2);
        assert_eq!(translate(&mut memory, &table, top + 8), Some(0x6000_0008));
        // A 40-bit IPA uses level-0 entries 0 and 1 only, as T0SZ = 24 requires.
        let root = *memory.table(table.root());
        assert!(root[2..].iter().all(|&entry| entry == 0) && root[1] != 0);
        let mut map = |ipa, size| table.map_guest(&mut memory, ipa, Pa(0x7000_0000), size, ram);
        assert_eq!(map(IPA_LIMIT, PAGE_SIZE), Err(MapError::BadAddress));
        assert_eq!(map(IPA_LIMIT - PAGE_SIZE, 2 * PAGE_SIZE), Err(MapError::BadAddress));
        assert_eq!(map(!0xfff, PAGE_SIZE), Err(MapError::BadAddress));
        assert_eq!(VTCR & 0x3f, 64 - 40);
        assert_eq!((VTCR >> 6) & 3, 0b10, "SL0: level 0 with a 4 KiB granule");
    }

    #[test]
    fn mair_indexes_match_the_memory_types() {
        let attribute = |index: u64| (MAIR >> (8 * index)) & 0xff;
        assert_eq!(attribute(ATTR_NORMAL), 0xff);
        assert_eq!(attribute(ATTR_DEVICE), 0x04);
        assert_eq!(table_descriptor(Pa(0x4000_1000)), 0x4000_1003);
    }
}
