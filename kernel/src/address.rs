//! Address newtypes, so a physical address is never used where a virtual one is meant.

/// A physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pa(pub u64);

/// A virtual address (kernel or EL0, as the context says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Va(pub u64);

/// Size of a translation granule (4 KiB).
pub const PAGE_SIZE: u64 = 4096;

impl Pa {
    /// Whether the address is page aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0 % PAGE_SIZE == 0
    }
}

impl Va {
    /// Whether the address is page aligned.
    pub const fn is_page_aligned(self) -> bool {
        self.0 % PAGE_SIZE == 0
    }
}
