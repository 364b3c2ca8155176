//! two-vms-attacker's logic that needs no hardware: a seeded generator and what it makes,
//! the hostile ITS commands, GITS register writes, MMIO accesses, SGI register values and
//! hypervisor calls that the guest (`main.rs`) performs. Everything follows from the seed,
//! so a failing run repeats exactly.
//!
//! What the flood may touch is decided here, and tested: everything the attacker VM's own
//! emulated devices answer (GICD, GICR, GITS), every guest-physical address nothing claims
//! (including the victim's RAM range, which is not mapped for this VM, and addresses past
//! the VM's IPA size), and its own RAM for reads. Excluded, so the attacker can still
//! report: writes to its own RAM (its code, stack and command queue), writes to its
//! PL011's control registers, and the hypervisor calls that stop it or end the run.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

use core::ops::Range;

/// The seed of every run (change it to explore; a failure names the seed it ran with).
pub const SEED: u64 = 0x7e57_f100d;

/// Guest-physical layout of the attacker VM (images/two-vms/system.toml).
pub mod layout {
    use core::ops::Range;

    /// GICD frame (64 KiB), routed to the attacker's vgic-server.
    pub const GICD: u64 = 0x0800_0000;
    /// ITS frames (128 KiB), routed to the attacker's its-server.
    pub const GITS: u64 = 0x0808_0000;
    /// GICR frames of the attacker's one vCPU (128 KiB); the space above, up to
    /// [`GIC_END`], is unclaimed.
    pub const GICR: u64 = 0x080a_0000;
    /// End of the GIC's part of QEMU virt's address map.
    pub const GIC_END: u64 = 0x0900_0000;
    /// The emulated PL011 (the VMM's).
    pub const PL011: u64 = 0x0900_0000;
    /// The attacker's RAM.
    pub const RAM: Range<u64> = 0x4000_0000..0x4040_0000;
    /// The victim VM's RAM range: in the attacker's guest-physical space, nothing.
    pub const VICTIM_RAM: Range<u64> = 0x4040_0000..0x4100_0000;
    /// Addresses at or above this are past any IPA size the kernel configures (the
    /// access faults at stage 1, in the guest, or at stage 2 with an address size fault).
    pub const FAR_IPA: u64 = 1 << 44;
}

/// A SplitMix64 generator: small, fast and well mixed, which is all a flood needs.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started at `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0); the slight bias of a modulo does not matter.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// True once in `n` times on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// One of `items` (non-empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A value that is often an edge case (0, all ones, single bits, small numbers),
    /// otherwise random.
    pub fn hostile_value(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => u64::MAX,
            2 => 1 << self.below(64),
            3 => self.below(64),
            4 => self.next_u64() & 0xffff_ffff,
            _ => self.next_u64(),
        }
    }

    /// A guest-physical address that is never in the attacker's RAM: the victim's range,
    /// just past the attacker's RAM, low unclaimed space, or far away.
    pub fn foreign_address(&mut self) -> u64 {
        match self.below(4) {
            0 => layout::VICTIM_RAM.start + self.below(layout::VICTIM_RAM.end - layout::VICTIM_RAM.start),
            1 => layout::RAM.end + self.below(0x1000),
            2 => self.below(layout::GICD),
            _ => layout::VICTIM_RAM.end + self.below(layout::FAR_IPA),
        }
    }
}

/// Bytes of one ITS command.
pub const COMMAND_BYTES: u64 = 32;

/// ITS command numbers (GICv3 architecture specification, 5.3).
pub mod command {
    /// MOVI.
    pub const MOVI: u8 = 0x01;
    /// INT.
    pub const INT: u8 = 0x03;
    /// CLEAR.
    pub const CLEAR: u8 = 0x04;
    /// SYNC.
    pub const SYNC: u8 = 0x05;
    /// MAPD.
    pub const MAPD: u8 = 0x08;
    /// MAPC.
    pub const MAPC: u8 = 0x09;
    /// MAPTI.
    pub const MAPTI: u8 = 0x0a;
    /// MAPI.
    pub const MAPI: u8 = 0x0b;
    /// INV.
    pub const INV: u8 = 0x0c;
    /// INVALL.
    pub const INVALL: u8 = 0x0d;
    /// MOVALL.
    pub const MOVALL: u8 = 0x0e;
    /// DISCARD.
    pub const DISCARD: u8 = 0x0f;
    /// Every command the architecture defines.
    pub const ALL: [u8; 12] = [MOVI, INT, CLEAR, SYNC, MAPD, MAPC, MAPTI, MAPI, INV, INVALL, MOVALL, DISCARD];
}

/// One hostile ITS command (four doublewords): random bytes, or a real command with
/// fields out of every range: DeviceIDs and EventIDs beyond any quota, ITTs outside the
/// VM's RAM (often in the victim's range) or of the largest size, LPI numbers below 8192
/// or far above the LPI range, collections and redistributors that do not exist.
pub fn its_command(rng: &mut Rng) -> [u64; 4] {
    if rng.one_in(4) {
        return [rng.next_u64(), rng.next_u64(), rng.next_u64(), rng.next_u64()];
    }
    let number = rng.pick(&command::ALL);
    // Small identifiers too, so that some commands act on mapped state.
    let device = if rng.one_in(2) { rng.below(4) } else { rng.hostile_value() & 0xffff_ffff };
    let event = if rng.one_in(2) { rng.below(8) } else { rng.hostile_value() & 0xffff_ffff };
    let icid = if rng.one_in(2) { rng.below(4) } else { rng.hostile_value() & 0xffff };
    let rdbase = (if rng.one_in(2) { rng.below(4) } else { rng.hostile_value() } & ((1 << 35) - 1)) << 16;
    let valid = u64::from(!rng.one_in(4)) << 63;
    let dw0 = u64::from(number) | device << 32;
    match number {
        command::MAPD => {
            let size = rng.below(32);
            let itt = if rng.one_in(2) { rng.foreign_address() } else { rng.hostile_value() };
            [dw0, size, valid | (itt & 0x000f_ffff_ffff_ff00), 0]
        }
        command::MAPC => [dw0, 0, valid | rdbase | icid, 0],
        command::MAPTI => {
            let random = rng.next_u64() & 0xffff_ffff;
            let intid = rng.pick(&[0, 1023, 8191, 8192, 0xffff, 0x1_0000, 0xffff_ffff, random]);
            [dw0, event | intid << 32, icid, 0]
        }
        command::MOVALL => [dw0, 0, rdbase, (rng.hostile_value() & ((1 << 35) - 1)) << 16],
        command::SYNC => [dw0, 0, rdbase, 0],
        command::INVALL => [dw0, 0, icid, 0],
        _ => [dw0, event, icid, 0],
    }
}

/// An access width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Halfword,
    /// 32 bits.
    Word,
    /// 64 bits.
    Doubleword,
}

impl Width {
    /// Every width.
    pub const ALL: [Width; 4] = [Width::Byte, Width::Halfword, Width::Word, Width::Doubleword];

    /// Its size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            Width::Byte => 1,
            Width::Halfword => 2,
            Width::Word => 4,
            Width::Doubleword => 8,
        }
    }
}

/// One MMIO access of the flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A single load (one `ldr*`: the hypervisor gets its syndrome).
    Read {
        /// Guest-physical address.
        address: u64,
        /// Width.
        width: Width,
    },
    /// A single store.
    Write {
        /// Guest-physical address.
        address: u64,
        /// Width.
        width: Width,
        /// Value (cut to the width).
        value: u64,
    },
    /// A 128-bit load pair (`ldp`): no instruction syndrome.
    ReadPair {
        /// Guest-physical address.
        address: u64,
    },
    /// A 128-bit store pair (`stp`) of one value twice: no instruction syndrome.
    WritePair {
        /// Guest-physical address.
        address: u64,
        /// Value of both halves.
        value: u64,
    },
}

impl Access {
    /// The address it touches.
    pub fn address(self) -> u64 {
        match self {
            Access::Read { address, .. }
            | Access::Write { address, .. }
            | Access::ReadPair { address }
            | Access::WritePair { address, .. } => address,
        }
    }

    /// Whether it stores.
    pub fn writes(self) -> bool {
        matches!(self, Access::Write { .. } | Access::WritePair { .. })
    }
}

/// PL011 registers that writes may not touch (data, receive status, line and control,
/// interrupt mask and clear): the attacker still prints through this UART.
const PL011_WRITABLE: Range<u64> = 0x00..0x18;
const PL011_CONTROL: Range<u64> = 0x24..0x4c;

/// Whether a write at `address` would disturb what the attacker needs to report: its own
/// RAM, and the PL011's data and control registers.
pub fn write_forbidden(address: u64) -> bool {
    let in_uart = address.wrapping_sub(layout::PL011);
    layout::RAM.contains(&address) || PL011_WRITABLE.contains(&in_uart) || PL011_CONTROL.contains(&in_uart)
}

/// A random access of the flood: mostly into the GIC frames (its own, those of vCPUs it
/// does not have, the gaps between), then the PL011, the victim's RAM range, unclaimed
/// space anywhere, its own RAM (reads only). Widths and alignment are random too (one in
/// eight is unaligned, which the guest's own MMU-off rules fault), and one in eight is a
/// load or store pair. Never a write [`write_forbidden`] refuses.
pub fn wild_access(rng: &mut Rng) -> Access {
    let address = match rng.below(10) {
        0..=2 => layout::GICD + rng.below(0x1_0000),
        3 => layout::GITS + rng.below(0x2_0000),
        4 | 5 => layout::GICR + rng.below(0x4_0000),
        6 => layout::GICD + rng.below(layout::GIC_END - layout::GICD),
        7 => layout::PL011 + rng.below(0x1000),
        8 => layout::RAM.start + rng.below(layout::RAM.end - layout::RAM.start),
        _ => rng.foreign_address(),
    };
    let width = rng.pick(&Width::ALL);
    let address = if rng.one_in(8) { address } else { address & !(width.bytes() - 1) };
    let write = rng.one_in(2) && !write_forbidden(address);
    let pair = rng.one_in(8);
    match (write, pair) {
        (false, false) => Access::Read { address, width },
        (true, false) => Access::Write { address, width, value: rng.hostile_value() },
        (false, true) => Access::ReadPair { address: address & !7 },
        (true, true) => {
            let address = address & !7;
            if write_forbidden(address) || write_forbidden(address + 8) {
                Access::ReadPair { address }
            } else {
                Access::WritePair { address, value: rng.hostile_value() }
            }
        }
    }
}

/// GITS register offsets (GICv3 architecture specification, 12.19).
pub mod gits {
    /// GITS_CTLR.
    pub const CTLR: u64 = 0x0000;
    /// GITS_TYPER.
    pub const TYPER: u64 = 0x0008;
    /// GITS_CBASER.
    pub const CBASER: u64 = 0x0080;
    /// GITS_CWRITER.
    pub const CWRITER: u64 = 0x0088;
    /// GITS_CREADR.
    pub const CREADR: u64 = 0x0090;
    /// GITS_BASER0 (BASER1..7 follow, 8 bytes apart).
    pub const BASER: u64 = 0x0100;
    /// GITS_TRANSLATER (in the second 64 KiB frame).
    pub const TRANSLATER: u64 = 0x1_0040;
    /// GITS_PIDR2.
    pub const PIDR2: u64 = 0xffe8;
    /// Offsets worth hitting: every register (and the upper halves of 64-bit ones),
    /// read-only ones included.
    pub const HOT: [u64; 16] = [
        CTLR,
        0x4,
        TYPER,
        TYPER + 4,
        CBASER,
        CBASER + 4,
        CWRITER,
        CWRITER + 4,
        CREADR,
        CREADR + 4,
        BASER,
        BASER + 8,
        BASER + 0x10,
        BASER + 0x38,
        TRANSLATER,
        PIDR2,
    ];
    /// GITS_CTLR.Enabled.
    pub const ENABLED: u64 = 1;
}

/// A hostile GITS register write: offset from the frame, width, value. Hits the registers
/// (read-only ones too) at every width, or any offset of the two frames.
pub fn its_register_write(rng: &mut Rng) -> (u64, Width, u64) {
    let offset = if rng.one_in(4) { rng.below(0x2_0000) } else { rng.pick(&gits::HOT) };
    let width = rng.pick(&Width::ALL);
    (offset & !(width.bytes() - 1), width, rng.hostile_value())
}

/// Where a GITS_CBASER or GITS_BASERn write points its table: usually `own` (a buffer in
/// the attacker's RAM), else outside the attacker's RAM (often the victim's range), or
/// straddling the end of its RAM.
pub fn table_address(rng: &mut Rng, own: u64) -> u64 {
    let address = match rng.below(8) {
        0..=4 => own,
        5 => layout::RAM.end - 0x1000,
        _ => rng.foreign_address(),
    };
    address & 0x000f_ffff_ffff_f000
}

/// A GITS_CBASER value: Valid, `address`, and a size of `pages` 4 KiB pages (1..=256).
pub fn cbaser(address: u64, pages: u64) -> u64 {
    1 << 63 | address & 0x000f_ffff_ffff_f000 | (pages - 1) & 0xff
}

/// A GITS_CWRITER value for a queue of `queue_bytes`: a command boundary inside it, or
/// anything (past the end, unaligned, all ones).
pub fn cwriter(rng: &mut Rng, queue_bytes: u64) -> u64 {
    if rng.one_in(3) { rng.hostile_value() } else { rng.below(queue_bytes / COMMAND_BYTES) * COMMAND_BYTES }
}

/// A value for ICC_SGI1R_EL1, ICC_ASGI1R_EL1 or ICC_SGI0R_EL1: random target lists and
/// affinities (this VM has one vCPU, 0.0.0.0), the broadcast mode, reserved bits.
pub fn sgi_value(rng: &mut Rng) -> u64 {
    match rng.below(3) {
        0 => rng.next_u64(),
        // Targets 1..15 of affinity 0.0.0: none exist but vCPU 0 (bit 0).
        1 => rng.below(16) << 24 | (rng.next_u64() & 0xfffe),
        // Broadcast to every other vCPU: there is none.
        _ => 1 << 40 | rng.below(16) << 24,
    }
}

/// PSCI and vendor functions the attacker never calls: they stop its only vCPU
/// (CPU_OFF, CPU_SUSPEND), end or reset the whole run (SYSTEM_OFF, SYSTEM_RESET,
/// SYSTEM_RESET2), or set the status its VMM would report (REPORT_STATUS).
pub const FORBIDDEN_CALLS: [u32; 8] = [
    0x8400_0001, // CPU_SUSPEND (32-bit)
    0xc400_0001, // CPU_SUSPEND (64-bit)
    0x8400_0002, // CPU_OFF
    0x8400_0008, // SYSTEM_OFF
    0x8400_0009, // SYSTEM_RESET
    0x8400_0012, // SYSTEM_RESET2 (32-bit)
    0xc400_0012, // SYSTEM_RESET2 (64-bit)
    vmm::psci::REPORT_STATUS,
];

/// A hypervisor call's function ID: PSCI, SMCCC, vendor or random, never one of
/// [`FORBIDDEN_CALLS`].
pub fn call_function(rng: &mut Rng) -> u32 {
    let function = match rng.below(4) {
        0 => 0x8400_0000 | rng.below(0x20) as u32,
        1 => 0xc400_0000 | rng.below(0x20) as u32,
        2 => 0x8600_0000 | rng.below(4) as u32,
        _ => rng.next_u64() as u32,
    };
    if FORBIDDEN_CALLS.contains(&function) { vmm::psci::REPORT_STATUS + 1 } else { function }
}

/// Tallies of the guest's exceptions by exception class (ESR_EL1.EC).
pub mod exception_class {
    /// Unknown reason: an undefined instruction (the hypervisor injects one for a trapped
    /// system register nobody emulates).
    pub const UNKNOWN: u64 = 0x00;
    /// Data abort at the current EL: injected by the hypervisor, or the guest's own
    /// alignment fault.
    pub const DATA_ABORT: u64 = 0x25;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws<T>(count: usize, mut make: impl FnMut(&mut Rng) -> T) -> Vec<T> {
        let mut rng = Rng::new(SEED);
        (0..count).map(|_| make(&mut rng)).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_flood() {
        assert_eq!(draws(100, its_command), draws(100, its_command));
        assert_eq!(draws(100, wild_access), draws(100, wild_access));
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn below_stays_below() {
        assert!(draws(1000, |rng| rng.below(7)).iter().all(|&value| value < 7));
    }

    #[test]
    fn foreign_addresses_are_never_the_attackers_ram() {
        let addresses = draws(10_000, Rng::foreign_address);
        assert!(addresses.iter().all(|address| !layout::RAM.contains(address)));
        assert!(addresses.iter().any(|address| layout::VICTIM_RAM.contains(address)));
        assert!(addresses.iter().any(|&address| address >= layout::VICTIM_RAM.end));
    }

    #[test]
    fn commands_are_hostile_in_every_way() {
        let commands = draws(10_000, its_command);
        let numbered = |number: u8| commands.iter().filter(move |command| command[0] as u8 == number);
        assert!(numbered(command::MAPTI).any(|command| command[1] >> 32 < 8192));
        assert!(numbered(command::MAPTI).any(|command| command[1] >> 32 >= 1 << 16));
        assert!(numbered(command::MAPD).any(|command| command[1] == 31), "the largest ITT");
        assert!(numbered(command::MAPD).any(|command| {
            let itt = command[2] & 0x000f_ffff_ffff_ff00;
            layout::VICTIM_RAM.contains(&itt)
        }));
        assert!(numbered(command::MAPC).any(|command| command[0] >> 32 < 4 && command[2] >> 63 == 1));
        assert!(commands.iter().any(|command| !command::ALL.contains(&(command[0] as u8))), "unknown ones");
    }

    #[test]
    fn wild_accesses_spare_only_what_the_attacker_needs() {
        let accesses = draws(20_000, wild_access);
        assert!(
            accesses.iter().filter(|access| access.writes()).all(|access| !write_forbidden(access.address()))
        );
        assert!(accesses.iter().all(|access| match access {
            Access::WritePair { address, .. } => !write_forbidden(address + 8),
            _ => true,
        }));
        let kinds = |wanted: fn(&Access) -> bool| accesses.iter().any(wanted);
        assert!(kinds(|access| matches!(access, Access::WritePair { .. })));
        assert!(kinds(|access| matches!(access, Access::Read { width: Width::Byte, .. })));
        assert!(
            kinds(|access| match access {
                Access::Read { address, width } | Access::Write { address, width, .. } =>
                    address % width.bytes() != 0,
                _ => false,
            }),
            "unaligned ones"
        );
        assert!(kinds(|access| access.writes() && layout::VICTIM_RAM.contains(&access.address())));
        assert!(kinds(|access| access.writes() && access.address() >= layout::VICTIM_RAM.end));
        assert!(kinds(|access| access.writes()
            && (layout::GICR + 0x2_0000..layout::GIC_END).contains(&access.address())));
        assert!(kinds(|access| !access.writes() && layout::RAM.contains(&access.address())));
    }

    #[test]
    fn the_uart_and_the_attackers_ram_are_never_written() {
        assert!(write_forbidden(layout::PL011));
        assert!(write_forbidden(layout::PL011 + 0x30), "UARTCR");
        assert!(write_forbidden(layout::PL011 + 0x44), "UARTICR");
        assert!(!write_forbidden(layout::PL011 + 0x18), "UARTFR is read-only");
        assert!(!write_forbidden(layout::PL011 + 0xfe0), "an ID register");
        assert!(write_forbidden(layout::RAM.start) && write_forbidden(layout::RAM.end - 1));
        assert!(!write_forbidden(layout::VICTIM_RAM.start));
    }

    #[test]
    fn no_call_stops_the_attacker_or_ends_the_run() {
        let functions = draws(20_000, call_function);
        assert!(functions.iter().all(|function| !FORBIDDEN_CALLS.contains(function)));
        assert!(functions.contains(&0x8400_0003), "CPU_ON");
    }

    #[test]
    fn register_values_cover_the_registers_and_the_queue() {
        let writes = draws(1000, its_register_write);
        assert!(writes.iter().all(|(offset, width, _)| offset % width.bytes() == 0 && *offset < 0x2_0000));
        assert!(writes.iter().any(|&(offset, _, _)| offset == gits::TYPER));
        assert_eq!(cbaser(0x4010_0000, 16), 1 << 63 | 0x4010_0000 | 15);
        let cwriters = draws(1000, |rng| cwriter(rng, 0x1000));
        assert!(cwriters.iter().any(|value| value % COMMAND_BYTES == 0 && *value < 0x1000));
        assert!(cwriters.iter().any(|&value| value >= 0x1000 || value % COMMAND_BYTES != 0));
        let tables = draws(1000, |rng| table_address(rng, 0x4010_0000));
        assert!(
            tables.contains(&0x4010_0000)
                && tables.iter().any(|address| layout::VICTIM_RAM.contains(address))
        );
    }
}
