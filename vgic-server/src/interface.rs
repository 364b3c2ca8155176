//! The boundary between the vgic-server and the kernel's VCPU objects: list-register
//! contents, the snapshot of a stopped vCPU's virtual CPU interface, and the answer that
//! replaces its list registers.
//!
//! Everything here is plain data plus the encodings of `ICH_LR<n>_EL2`, ICH_VMCR_EL2 and
//! `ICH_AP<m>R0_EL2` for a GIC with [`LIST_REGISTERS`] list registers and
//! [`PRIORITY_BITS`] priority and preemption bits (ICH_VTR_EL2 = 0x90b80003 on QEMU 7.2).

/// List registers per vCPU (ICH_VTR_EL2.ListRegs + 1).
pub const LIST_REGISTERS: usize = 4;

/// Implemented priority bits, and preemption bits (ICH_VTR_EL2.PRIbits/PREbits + 1).
pub const PRIORITY_BITS: u32 = 5;

/// The priority bits kept by IPRIORITYR, LPI property entries and list registers; the
/// rest read as zero.
pub const PRIORITY_MASK: u8 = !((1u8 << (8 - PRIORITY_BITS)) - 1);

/// The running priority of a CPU interface with no active interrupt.
pub const IDLE_PRIORITY: u8 = 0xff;

/// The smallest binary point for Group 1 (and one more than the smallest for Group 0):
/// below it every priority bit is a preemption bit.
const MIN_BINARY_POINT: u32 = 8 - PRIORITY_BITS;

/// The state field of a list register, as the GIC architecture defines it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LrState {
    /// The list register holds nothing.
    #[default]
    Invalid,
    /// Pending: the guest may acknowledge it.
    Pending,
    /// Acknowledged and not yet deactivated.
    Active,
    /// Active, and pending again behind that (never for a hardware-linked interrupt).
    PendingActive,
}

impl LrState {
    /// The state with these pending and active bits.
    pub const fn new(pending: bool, active: bool) -> Self {
        match (pending, active) {
            (false, false) => Self::Invalid,
            (true, false) => Self::Pending,
            (false, true) => Self::Active,
            (true, true) => Self::PendingActive,
        }
    }

    /// Whether the pending bit is set.
    pub const fn pending(self) -> bool {
        matches!(self, Self::Pending | Self::PendingActive)
    }

    /// Whether the active bit is set.
    pub const fn active(self) -> bool {
        matches!(self, Self::Active | Self::PendingActive)
    }
}

/// The contents of one list register (`ICH_LR<n>_EL2`) as numbers: a copy of an
/// interrupt's state that the guest advances in hardware, never a reference to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ListRegister {
    /// Virtual INTID (32 bits: LPIs go beyond 1023).
    pub vintid: u32,
    /// Pending/active state.
    pub state: LrState,
    /// Priority; only the top [`PRIORITY_BITS`] bits are kept.
    pub priority: u8,
    /// Group 1 (every interrupt of this vGIC is Group 1).
    pub group1: bool,
    /// `Some(pintid)`: hardware-linked (HW = 1); deactivating the virtual interrupt
    /// deactivates physical INTID `pintid`.
    pub hw_pintid: Option<u32>,
    /// Request an EOI maintenance interrupt when the guest deactivates it (HW = 0 only:
    /// with HW = 1 the same bit is part of the physical INTID).
    pub eoi_maintenance: bool,
}

const LR_PHYSICAL_SHIFT: u32 = 32;
const LR_PHYSICAL_MASK: u64 = 0x1fff;
const LR_EOI: u64 = 1 << 41;
const LR_PRIORITY_SHIFT: u32 = 48;
const LR_GROUP: u64 = 1 << 60;
const LR_HW: u64 = 1 << 61;
const LR_PENDING: u64 = 1 << 62;
const LR_ACTIVE: u64 = 1 << 63;

impl ListRegister {
    /// An empty list register.
    pub const INVALID: Self = Self {
        vintid: 0,
        state: LrState::Invalid,
        priority: 0,
        group1: false,
        hw_pintid: None,
        eoi_maintenance: false,
    };

    /// The `ICH_LR<n>_EL2` value.
    pub const fn encode(&self) -> u64 {
        let mut bits = self.vintid as u64 | (self.priority as u64) << LR_PRIORITY_SHIFT;
        if self.group1 {
            bits |= LR_GROUP;
        }
        match self.hw_pintid {
            Some(pintid) => bits |= LR_HW | (pintid as u64 & LR_PHYSICAL_MASK) << LR_PHYSICAL_SHIFT,
            None if self.eoi_maintenance => bits |= LR_EOI,
            None => {}
        }
        if self.state.pending() {
            bits |= LR_PENDING;
        }
        if self.state.active() {
            bits |= LR_ACTIVE;
        }
        bits
    }

    /// The contents of an `ICH_LR<n>_EL2` value.
    pub const fn decode(bits: u64) -> Self {
        let hardware = bits & LR_HW != 0;
        Self {
            vintid: bits as u32,
            state: LrState::new(bits & LR_PENDING != 0, bits & LR_ACTIVE != 0),
            priority: (bits >> LR_PRIORITY_SHIFT) as u8,
            group1: bits & LR_GROUP != 0,
            hw_pintid: if hardware {
                Some((bits >> LR_PHYSICAL_SHIFT & LR_PHYSICAL_MASK) as u32)
            } else {
                None
            },
            eoi_maintenance: !hardware && bits & LR_EOI != 0,
        }
    }
}

const VMCR_ENABLE_GROUP0: u32 = 1 << 0;
const VMCR_ENABLE_GROUP1: u32 = 1 << 1;
const VMCR_COMMON_BINARY_POINT: u32 = 1 << 4;
const VMCR_BINARY_POINT1_SHIFT: u32 = 18;
const VMCR_BINARY_POINT0_SHIFT: u32 = 21;
const VMCR_PRIORITY_MASK_SHIFT: u32 = 24;

/// A stopped vCPU's virtual CPU interface as the kernel folded it, handed to the server
/// by [`crate::Vcpus::sync`] or with a maintenance event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The list registers, in order, as the guest left them.
    pub lrs: [ListRegister; LIST_REGISTERS],
    /// ICH_VMCR_EL2: group enables, binary points, EOImode and priority mask.
    pub vmcr: u32,
    /// ICH_AP0R0_EL2: active Group 0 priorities.
    pub ap0r0: u32,
    /// ICH_AP1R0_EL2: active Group 1 priorities.
    pub ap1r0: u32,
    /// Line levels of the hardware-linked PPIs ([`crate::HARDWARE_PPIS`]), bit n for
    /// INTID n, sampled where the vCPU's timers are loaded when the snapshot was taken
    /// (for a timer: ENABLE && ISTATUS && !IMASK of its CNT*_CTL). Other bits are
    /// ignored.
    pub hardware_lines: u32,
}

impl Snapshot {
    /// Whether the vCPU would take an interrupt from its own list registers: WFI must not
    /// block (or must end).
    pub fn deliverable(&self) -> bool {
        self.signals(&self.lrs)
    }

    /// Whether, with this snapshot's CPU interface state, one of `lrs` is signalled: a
    /// list register in the Pending state whose group is enabled, whose priority is
    /// above the priority mask and whose preemption level is above the running priority.
    /// PSTATE.I does not matter (a WFI wakes regardless).
    pub fn signals(&self, lrs: &[ListRegister; LIST_REGISTERS]) -> bool {
        let mask = (self.vmcr >> VMCR_PRIORITY_MASK_SHIFT) as u8;
        let running = self.running_priority();
        lrs.iter().any(|lr| {
            let enabled = self.vmcr & if lr.group1 { VMCR_ENABLE_GROUP1 } else { VMCR_ENABLE_GROUP0 } != 0;
            lr.state == LrState::Pending
                && enabled
                && lr.priority < mask
                && (self.preemption_level(lr.priority, lr.group1) as u16) < running as u16
        })
    }

    /// The highest active priority from the active-priority registers, or
    /// [`IDLE_PRIORITY`].
    pub fn running_priority(&self) -> u8 {
        let active = self.ap0r0 | self.ap1r0;
        if active == 0 { IDLE_PRIORITY } else { (active.trailing_zeros() << MIN_BINARY_POINT) as u8 }
    }

    /// `priority` without its subpriority bits, by the group's binary point.
    fn preemption_level(&self, priority: u8, group1: bool) -> u8 {
        let binary_point0 = self.vmcr >> VMCR_BINARY_POINT0_SHIFT & 7;
        let binary_point = if !group1 {
            binary_point0 + 1
        } else if self.vmcr & VMCR_COMMON_BINARY_POINT != 0 {
            (binary_point0 + 1).min(7)
        } else {
            self.vmcr >> VMCR_BINARY_POINT1_SHIFT & 7
        };
        priority & (0xffu32 << binary_point.max(MIN_BINARY_POINT)) as u8
    }
}

/// The server's answer for one vCPU: its new list registers and the maintenance
/// interrupts it wants (ICH_HCR_EL2.UIE and NPIE; the kernel owns En).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LrUpdate {
    /// The new list registers, in order.
    pub lrs: [ListRegister; LIST_REGISTERS],
    /// UIE: interrupts wait in the server for a list register; maintenance when at most
    /// one list register is valid.
    pub underflow: bool,
    /// NPIE: interrupts wait and some list register is pending now; maintenance when none
    /// is (every pending one was acknowledged, so the waiting ones are next).
    pub no_pending: bool,
}

const HCR_UIE: u64 = 1 << 1;
const HCR_NPIE: u64 = 1 << 3;

impl LrUpdate {
    /// The UIE and NPIE bits to OR into ICH_HCR_EL2.
    pub const fn hcr_bits(&self) -> u64 {
        (if self.underflow { HCR_UIE } else { 0 }) | if self.no_pending { HCR_NPIE } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_register_encoding_matches_the_architecture() {
        let virtual_lpi = ListRegister {
            vintid: 8195,
            state: LrState::Pending,
            priority: 0xa0,
            group1: true,
            hw_pintid: None,
            eoi_maintenance: true,
        };
        assert_eq!(virtual_lpi.encode(), 1 << 62 | 1 << 60 | 0xa0 << 48 | 1 << 41 | 8195);
        let timer = ListRegister {
            vintid: 27,
            state: LrState::Active,
            priority: 0x08,
            group1: true,
            hw_pintid: Some(27),
            eoi_maintenance: false,
        };
        assert_eq!(timer.encode(), 1 << 63 | 1 << 61 | 1 << 60 | 0x08 << 48 | 27 << 32 | 27);
        for lr in [virtual_lpi, timer, ListRegister::INVALID] {
            assert_eq!(ListRegister::decode(lr.encode()), lr);
        }
    }

    #[test]
    fn a_hardware_link_cannot_request_eoi_maintenance() {
        let lr = ListRegister {
            vintid: 34,
            state: LrState::Pending,
            priority: 0,
            group1: true,
            hw_pintid: Some(34),
            eoi_maintenance: true,
        };
        assert_eq!(lr.encode() & 1 << 41, 0, "bit 41 is pINTID bit 9 with HW = 1");
        assert!(!ListRegister::decode(lr.encode()).eoi_maintenance);
    }

    fn pending(priority: u8) -> ListRegister {
        ListRegister { vintid: 40, state: LrState::Pending, priority, group1: true, ..ListRegister::INVALID }
    }

    fn snapshot(lr: ListRegister, vmcr: u32, ap1r0: u32) -> Snapshot {
        let mut lrs = [ListRegister::INVALID; LIST_REGISTERS];
        lrs[2] = lr;
        Snapshot { lrs, vmcr, ap1r0, ..Snapshot::default() }
    }

    const ENABLED_UNMASKED: u32 = 0xff << 24 | VMCR_ENABLE_GROUP1;

    #[test]
    fn deliverable_needs_group_enable_and_priority_above_the_mask() {
        assert!(snapshot(pending(0x80), ENABLED_UNMASKED, 0).deliverable());
        assert!(!snapshot(pending(0x80), 0xff << 24, 0).deliverable(), "group 1 disabled");
        assert!(!snapshot(pending(0x80), 0x80 << 24 | VMCR_ENABLE_GROUP1, 0).deliverable(), "masked");
        assert!(snapshot(pending(0x78), 0x80 << 24 | VMCR_ENABLE_GROUP1, 0).deliverable());
        let active = ListRegister { state: LrState::Active, ..pending(0x10) };
        assert!(!snapshot(active, ENABLED_UNMASKED, 0).deliverable());
        let behind_active = ListRegister { state: LrState::PendingActive, ..pending(0x10) };
        assert!(!snapshot(behind_active, ENABLED_UNMASKED, 0).deliverable());
    }

    #[test]
    fn deliverable_needs_preemption_of_the_running_priority() {
        // Priority 0x40 active: AP1R0 bit 0x40 >> 3 = 8.
        let running_0x40 = 1 << 8;
        assert_eq!(snapshot(pending(0), 0, running_0x40).running_priority(), 0x40);
        assert!(snapshot(pending(0x38), ENABLED_UNMASKED, running_0x40).deliverable());
        assert!(!snapshot(pending(0x40), ENABLED_UNMASKED, running_0x40).deliverable());
        assert!(!snapshot(pending(0x50), ENABLED_UNMASKED, running_0x40).deliverable());
        // Binary point 7: the group priority is bit 7 alone, so 0x50 is in group 0x00.
        let coarse = ENABLED_UNMASKED | 7 << VMCR_BINARY_POINT1_SHIFT;
        assert!(snapshot(pending(0x50), coarse, running_0x40).deliverable());
        assert!(!snapshot(pending(0x80), coarse, running_0x40).deliverable());
        assert!(snapshot(pending(0x80), coarse, 0).deliverable(), "idle CPU interface");
    }

    #[test]
    fn update_requests_the_maintenance_bits_it_names() {
        let update = LrUpdate { underflow: true, no_pending: true, ..LrUpdate::default() };
        assert_eq!(update.hcr_bits(), 0b1010);
        assert_eq!(LrUpdate::default().hcr_bits(), 0);
    }
}
