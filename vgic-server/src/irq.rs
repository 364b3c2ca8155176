//! The state of one interrupt, and the per-vCPU queues of interrupts waiting for a list
//! register.

use crate::interface::PRIORITY_BITS;

/// An index naming one interrupt of the VM: an SGI or PPI of one vCPU, an SPI or an LPI.
/// Indices fit 16 bits so that queue links stay small (see [`crate::Vgic`]).
pub(crate) type IrqId = u16;

/// No interrupt (end of a queue, free list register).
pub(crate) const NO_IRQ: IrqId = IrqId::MAX;

/// No vCPU: the interrupt has no target (unmapped collection, unmatched affinity).
pub(crate) const NO_VCPU: u16 = u16::MAX;

/// Distinct priority levels, one queue each.
pub(crate) const PRIORITY_LEVELS: usize = 1 << PRIORITY_BITS;

/// Where an interrupt's pending/active state lives besides the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Place {
    /// Nowhere else: the server's state is the whole truth.
    Idle,
    /// Waiting in `vcpu`'s queue for a list register (see [`Irq::wants_list_register`]).
    Queued { vcpu: u16 },
    /// Copied into list register `slot` of `vcpu`; the guest may have advanced that copy
    /// since the server last looked.
    Listed { vcpu: u16, slot: u8 },
}

/// A flag of [`Irq`].
#[derive(Clone, Copy)]
pub(crate) struct Flag(u8);

/// The interrupt exists: an SGI/PPI of an existing vCPU, a configured SPI, or a mapped
/// LPI.
pub(crate) const EXISTS: Flag = Flag(1 << 0);
/// Forwarding enabled (GICD/GICR_ISENABLER, or the LPI property entry).
pub(crate) const ENABLED: Flag = Flag(1 << 1);
/// Edge-triggered (else level-sensitive).
pub(crate) const EDGE: Flag = Flag(1 << 2);
/// Pending latch: an edge, an SGI, an ISPENDR write, an MSI.
pub(crate) const LATCH: Flag = Flag(1 << 3);
/// The input line is asserted.
pub(crate) const LINE: Flag = Flag(1 << 4);
/// Active.
pub(crate) const ACTIVE: Flag = Flag(1 << 5);
/// Hardware-linked: listed with HW = 1 and pINTID = INTID; its pending state stands for a
/// physical interrupt that the host keeps active until the guest deactivates it.
pub(crate) const HARDWARE: Flag = Flag(1 << 6);
/// ICFGR cannot change the trigger (SGIs, hardware-linked interrupts).
pub(crate) const FIXED_CONFIG: Flag = Flag(1 << 7);

/// The state of one interrupt, owned by the server.
#[derive(Clone, Copy, Debug, Hash)]
pub(crate) struct Irq {
    /// Priority (top [`PRIORITY_BITS`] bits).
    pub priority: u8,
    flags: u8,
    /// The vCPU it is forwarded to, or [`NO_VCPU`].
    pub target: u16,
    /// Where its state is copied.
    pub place: Place,
    /// Queue links while [`Place::Queued`].
    pub prev: IrqId,
    /// Queue links while [`Place::Queued`].
    pub next: IrqId,
}

impl Irq {
    /// An interrupt that does not exist.
    pub const ABSENT: Self =
        Self { priority: 0, flags: 0, target: NO_VCPU, place: Place::Idle, prev: NO_IRQ, next: NO_IRQ };

    /// Whether `flag` is set.
    pub const fn has(&self, flag: Flag) -> bool {
        self.flags & flag.0 != 0
    }

    /// Sets or clears `flag`.
    pub fn set(&mut self, flag: Flag, on: bool) {
        if on {
            self.flags |= flag.0;
        } else {
            self.flags &= !flag.0;
        }
    }

    /// The architectural pending state: the latch, or an asserted level-sensitive line.
    pub const fn pending(&self) -> bool {
        self.has(LATCH) || (!self.has(EDGE) && self.has(LINE))
    }

    /// Whether the state holds anything the guest could still see (pending or active).
    pub const fn busy(&self) -> bool {
        self.pending() || self.has(ACTIVE)
    }

    /// Drives the input line: a rising edge of an edge-triggered interrupt latches it.
    pub fn drive(&mut self, level: bool) {
        if self.has(EDGE) && level && !self.has(LINE) {
            self.set(LATCH, true);
        }
        self.set(LINE, level);
    }

    /// The queue (priority level) it belongs to.
    pub const fn level(&self) -> usize {
        (self.priority >> (8 - PRIORITY_BITS)) as usize
    }
}

/// The interrupts waiting for one vCPU's list registers: one FIFO per priority level,
/// linked through [`Irq::prev`]/[`Irq::next`], so that queueing, removal and finding
/// the best waiting interrupts take no scan of the VM's interrupts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Queue {
    /// First interrupt of each level.
    pub heads: [IrqId; PRIORITY_LEVELS],
    /// Last interrupt of each level.
    pub tails: [IrqId; PRIORITY_LEVELS],
    /// Bit n: level n is not empty.
    pub levels: u32,
}

impl Queue {
    /// No interrupt waits.
    pub const EMPTY: Self =
        Self { heads: [NO_IRQ; PRIORITY_LEVELS], tails: [NO_IRQ; PRIORITY_LEVELS], levels: 0 };

    /// Whether no interrupt waits.
    pub const fn is_empty(&self) -> bool {
        self.levels == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn irq(flags: &[Flag]) -> Irq {
        let mut irq = Irq::ABSENT;
        for &flag in flags {
            irq.set(flag, true);
        }
        irq
    }

    #[test]
    fn level_sensitive_pending_follows_line_or_latch() {
        let mut level = irq(&[EXISTS]);
        level.drive(true);
        assert!(level.pending() && !level.has(LATCH));
        level.drive(false);
        assert!(!level.pending());
        level.set(LATCH, true);
        assert!(level.pending(), "ISPENDR latches a level-sensitive interrupt");
    }

    #[test]
    fn edge_triggered_pending_latches_rising_edges_only() {
        let mut edge = irq(&[EXISTS, EDGE]);
        edge.drive(true);
        assert!(edge.pending());
        edge.set(LATCH, false);
        edge.drive(true);
        assert!(!edge.pending(), "a held line is not a new edge");
        edge.drive(false);
        assert!(!edge.pending());
        edge.drive(true);
        assert!(edge.pending());
    }

    #[test]
    fn priority_levels_use_the_implemented_bits() {
        let mut irq = Irq::ABSENT;
        irq.priority = 0xf8;
        assert_eq!(irq.level(), 31);
        irq.priority = 0x08;
        assert_eq!(irq.level(), 1);
    }
}
