//! Address newtypes, so a physical address is never used where a virtual one is meant,
//! and the kernel's linear map of physical memory.

/// A physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pa(pub u64);

/// A virtual address (kernel or EL0, as the context says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Va(pub u64);

/// Size of a translation granule (4 KiB).
pub const PAGE_SIZE: u64 = 4096;

/// Start of the kernel's linear map: physical address `pa` is visible to the kernel at
/// `KERNEL_BASE + pa` (through TTBR1_EL2). `kernel.ld` links the kernel at the same offset.
pub const KERNEL_BASE: u64 = 0xFFFF_0000_0000_0000;

/// Size of the physical range the linear map covers (0..4 GiB: devices below 1 GiB, RAM above).
pub const LINEAR_MAP_SIZE: u64 = 4 << 30;

impl Pa {
    /// Whether the address is page aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }

    /// Where the kernel sees this physical address through its linear map.
    pub const fn to_kernel_va(self) -> Va {
        Va(KERNEL_BASE + self.0)
    }
}

impl Va {
    /// Whether the address is page aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }

    /// The physical address behind a kernel linear-map address.
    pub const fn kernel_to_pa(self) -> Pa {
        Pa(self.0 - KERNEL_BASE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_map_round_trips() {
        let pa = Pa(0x4010_0000);
        assert_eq!(pa.to_kernel_va(), Va(0xFFFF_0000_4010_0000));
        assert_eq!(pa.to_kernel_va().kernel_to_pa(), pa);
    }
}
