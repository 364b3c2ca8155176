//! An emulated Arm PrimeCell UART (PL011, revision r1p5), as Linux's `amba-pl011` driver
//! and its `earlycon` see it.
//!
//! Transmission is instant: a byte written to DR goes straight to the console, so the
//! transmit FIFO is always empty (FR.TXFE set, TXFF and BUSY clear) and therefore always
//! at or below its trigger level: the transmit interrupt (RIS.TXRIS) is a level that is
//! always raised, and ICR cannot clear it. Linux's driver unmasks it (IMSC.TXIM) only
//! while it has output queued and masks it once the queue is empty, so the line is up
//! exactly while the driver wants to transmit. Received characters come from the host ([`Pl011::receive`]) into a receive FIFO
//! of 32 entries (one while LCR_H.FEN is clear), each with its FE/PE/BE/OE bits as DR
//! returns them. The receive interrupt rises when the FIFO reaches the IFLS trigger
//! level; the receive timeout interrupt rises with every character (from the guest's
//! point of view the line has always been idle long enough since) and falls when the
//! FIFO empties. Modem lines are static: CTS, DSR and DCD asserted, RI not, so modem
//! interrupts never rise. CR is kept but, as in QEMU's model, does not gate transmission
//! or reception; only its loopback bit (LBE) acts, sending written bytes to the receive
//! FIFO instead of the console. Baud rate, line control and DMA control are kept only to
//! read back.
//!
//! Accesses of 1, 2 or 4 bytes at naturally aligned offsets are served; a read narrower
//! than a register returns the addressed bytes (with the register's side effects), a
//! narrower write must start at the register and is zero-extended. Anything else
//! (8-byte or misaligned accesses, unknown offsets, writes to read-only registers,
//! reads of ICR, writes inside a register) is [`Unhandled`]: the caller reads it as zero
//! and ignores the write.

/// Size of the register frame.
pub const FRAME_SIZE: u64 = 0x1000;
/// Entries of the receive FIFO when enabled (LCR_H.FEN).
pub const FIFO_DEPTH: usize = 32;

/// Register offsets.
pub mod reg {
    /// Data.
    pub const DR: u64 = 0x000;
    /// Receive status (read) / error clear (write).
    pub const RSR_ECR: u64 = 0x004;
    /// Flags.
    pub const FR: u64 = 0x018;
    /// IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// Integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// Fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// Line control.
    pub const LCR_H: u64 = 0x02c;
    /// Control.
    pub const CR: u64 = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// Interrupt mask set/clear (1 = enabled).
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x03c;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// Interrupt clear (write 1 to clear).
    pub const ICR: u64 = 0x044;
    /// DMA control.
    pub const DMACR: u64 = 0x048;
    /// First of the eight peripheral and PrimeCell identification registers.
    pub const PERIPH_ID0: u64 = 0xfe0;
}

/// Interrupt bits, the same in IMSC, RIS, MIS and ICR.
pub mod interrupt {
    /// Receive (FIFO at or above its trigger level).
    pub const RX: u32 = 1 << 4;
    /// Transmit (FIFO at or below its trigger level).
    pub const TX: u32 = 1 << 5;
    /// Receive timeout.
    pub const RT: u32 = 1 << 6;
    /// Framing error.
    pub const FE: u32 = 1 << 7;
    /// Parity error.
    pub const PE: u32 = 1 << 8;
    /// Break error.
    pub const BE: u32 = 1 << 9;
    /// Overrun error.
    pub const OE: u32 = 1 << 10;
    /// Every interrupt bit, the four modem ones (bits 0..=3) included.
    pub const ALL: u32 = 0x7ff;
}

/// FR bits.
pub mod flag {
    /// Clear to send.
    pub const CTS: u32 = 1 << 0;
    /// Data set ready.
    pub const DSR: u32 = 1 << 1;
    /// Data carrier detect.
    pub const DCD: u32 = 1 << 2;
    /// Transmitting.
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
}

/// Bits of a received character as DR returns it: data in bits 7:0, then errors.
pub mod data {
    /// Framing error.
    pub const FE: u16 = 1 << 8;
    /// Parity error.
    pub const PE: u16 = 1 << 9;
    /// Break.
    pub const BE: u16 = 1 << 10;
    /// Overrun: characters were lost before this one.
    pub const OE: u16 = 1 << 11;
}

/// LCR_H: FIFOs enabled.
const LCR_H_FEN: u32 = 1 << 4;
/// CR: loopback.
const CR_LBE: u32 = 1 << 7;
/// RSR: overrun error (bits 0..=2 are FE, PE, BE as in DR bits 8..=10).
const RSR_OE: u32 = 1 << 3;

/// PeriphID0..3 (part 0x011, designer Arm 0x41, revision 3 = r1p5) and PCellID0..3.
const ID_REGISTERS: [u32; 8] = [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// An access the model does not serve; it reads as zero and writes are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unhandled;

/// The receive FIFO: characters with their error bits.
#[derive(Debug)]
struct RxFifo {
    entries: [u16; FIFO_DEPTH],
    head: usize,
    len: usize,
}

impl RxFifo {
    const fn new() -> Self {
        Self { entries: [0; FIFO_DEPTH], head: 0, len: 0 }
    }

    fn push(&mut self, character: u16) {
        self.entries[(self.head + self.len) % FIFO_DEPTH] = character;
        self.len += 1;
    }

    fn pop(&mut self) -> Option<u16> {
        if self.len == 0 {
            return None;
        }
        let character = self.entries[self.head];
        self.head = (self.head + 1) % FIFO_DEPTH;
        self.len -= 1;
        Some(character)
    }
}

/// The state of one emulated PL011.
#[derive(Debug)]
pub struct Pl011 {
    rx: RxFifo,
    /// An overrun happened; the next character received carries DR.OE.
    overrun: bool,
    rsr: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    imsc: u32,
    /// The latched interrupts of RIS (every bit but the transmit level).
    ris: u32,
    dmacr: u32,
}

impl Default for Pl011 {
    fn default() -> Self {
        Self::new()
    }
}

impl Pl011 {
    /// A UART in its reset state: TXE and RXE set in CR, FIFOs off, trigger levels 1/2,
    /// every interrupt masked.
    pub const fn new() -> Self {
        Self {
            rx: RxFifo::new(),
            overrun: false,
            rsr: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: 0x300,
            ifls: 0x12,
            imsc: 0,
            ris: 0,
            dmacr: 0,
        }
    }

    /// The interrupt line (the PL011's UARTINTR): some raised interrupt is unmasked.
    pub fn interrupt_asserted(&self) -> bool {
        self.raw_status() & self.imsc != 0
    }

    /// RIS: the latched receive and error interrupts, and the transmit level.
    fn raw_status(&self) -> u32 {
        self.ris | interrupt::TX
    }

    /// Whether the receive FIFO can take another character.
    pub fn can_receive(&self) -> bool {
        self.rx.len < self.depth()
    }

    /// A character arrives on the line: `character` is DR's view (data in bits 7:0,
    /// FE/PE/BE/OE in bits 11:8, as the host UART reported them). With the FIFO full it is
    /// lost and an overrun is flagged on the next one.
    pub fn receive(&mut self, character: u16) {
        if !self.can_receive() {
            self.overrun = true;
            self.rsr |= RSR_OE;
            self.ris |= interrupt::OE;
            return;
        }
        let mut character = character & 0xfff;
        if core::mem::take(&mut self.overrun) {
            character |= data::OE;
        }
        if character & data::OE != 0 {
            self.rsr |= RSR_OE;
        }
        self.rx.push(character);
        let errors = [
            (data::FE, interrupt::FE),
            (data::PE, interrupt::PE),
            (data::BE, interrupt::BE),
            (data::OE, interrupt::OE),
        ];
        for (error, raised) in errors {
            if character & error != 0 {
                self.ris |= raised;
            }
        }
        self.ris |= interrupt::RT;
        if self.rx.len >= self.rx_trigger() {
            self.ris |= interrupt::RX;
        }
    }

    /// A guest read of `size` bytes at `offset` in the register frame.
    pub fn read(&mut self, offset: u64, size: u8) -> Result<u64, Unhandled> {
        Self::check(offset, size)?;
        let value = self.read_register(offset & !3).ok_or(Unhandled)?;
        let shifted = u64::from(value) >> ((offset & 3) * 8);
        Ok(shifted & (u64::MAX >> (64 - u32::from(size) * 8)))
    }

    /// A guest write of `size` bytes of `value` at `offset`; returns the byte to put on the
    /// console, if it transmits one.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Result<Option<u8>, Unhandled> {
        Self::check(offset, size)?;
        if offset & 3 != 0 {
            return Err(Unhandled);
        }
        let value = (value & (u64::MAX >> (64 - u32::from(size) * 8))) as u32;
        self.write_register(offset, value)
    }

    /// Accepts naturally aligned 1-, 2- and 4-byte accesses inside the frame.
    fn check(offset: u64, size: u8) -> Result<(), Unhandled> {
        let served =
            matches!(size, 1 | 2 | 4) && offset.is_multiple_of(u64::from(size)) && offset < FRAME_SIZE;
        if served { Ok(()) } else { Err(Unhandled) }
    }

    fn depth(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 { FIFO_DEPTH } else { 1 }
    }

    /// How many characters raise the receive interrupt (IFLS.RXIFLSEL: 1/8 to 7/8 full).
    fn rx_trigger(&self) -> usize {
        if self.lcr_h & LCR_H_FEN == 0 {
            return 1;
        }
        match (self.ifls >> 3) & 7 {
            0 => FIFO_DEPTH / 8,
            1 => FIFO_DEPTH / 4,
            3 => FIFO_DEPTH * 3 / 4,
            4 => FIFO_DEPTH * 7 / 8,
            // 1/2, and the reserved encodings.
            _ => FIFO_DEPTH / 2,
        }
    }

    fn flags(&self) -> u32 {
        let mut flags = flag::TXFE | flag::CTS | flag::DSR | flag::DCD;
        if self.rx.len == 0 {
            flags |= flag::RXFE;
        }
        if self.rx.len == self.depth() {
            flags |= flag::RXFF;
        }
        flags
    }

    fn read_register(&mut self, register: u64) -> Option<u32> {
        Some(match register {
            reg::DR => self.read_data(),
            reg::RSR_ECR => self.rsr,
            reg::FR => self.flags(),
            reg::ILPR => self.ilpr,
            reg::IBRD => self.ibrd,
            reg::FBRD => self.fbrd,
            reg::LCR_H => self.lcr_h,
            reg::CR => self.cr,
            reg::IFLS => self.ifls,
            reg::IMSC => self.imsc,
            reg::RIS => self.raw_status(),
            reg::MIS => self.raw_status() & self.imsc,
            reg::DMACR => self.dmacr,
            reg::PERIPH_ID0..=0xffc => ID_REGISTERS[((register - reg::PERIPH_ID0) / 4) as usize],
            _ => return None,
        })
    }

    /// Takes the oldest received character; RSR then holds its FE/PE/BE bits.
    fn read_data(&mut self) -> u32 {
        let Some(character) = self.rx.pop() else {
            return 0;
        };
        self.rsr = (self.rsr & RSR_OE) | u32::from(character >> 8) & 0b111;
        if self.rx.len < self.rx_trigger() {
            self.ris &= !interrupt::RX;
        }
        if self.rx.len == 0 {
            self.ris &= !interrupt::RT;
        }
        u32::from(character)
    }

    fn write_register(&mut self, register: u64, value: u32) -> Result<Option<u8>, Unhandled> {
        match register {
            reg::DR => {
                let byte = value as u8;
                if self.cr & CR_LBE != 0 {
                    self.receive(byte.into());
                    return Ok(None);
                }
                return Ok(Some(byte));
            }
            reg::RSR_ECR => self.rsr = 0,
            reg::ILPR => self.ilpr = value & 0xff,
            reg::IBRD => self.ibrd = value & 0xffff,
            reg::FBRD => self.fbrd = value & 0x3f,
            reg::LCR_H => {
                // Switching the FIFOs on or off empties the receive FIFO, as in QEMU.
                if (self.lcr_h ^ value) & LCR_H_FEN != 0 {
                    self.rx = RxFifo::new();
                    self.ris &= !(interrupt::RX | interrupt::RT);
                }
                self.lcr_h = value & 0xff;
            }
            // Bits 6:3 are reserved.
            reg::CR => self.cr = value & 0xff87,
            reg::IFLS => self.ifls = value & 0x3f,
            reg::IMSC => self.imsc = value & interrupt::ALL,
            reg::ICR => self.ris &= !value,
            reg::DMACR => self.dmacr = value & 0x7,
            _ => return Err(Unhandled),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(uart: &mut Pl011, offset: u64) -> u64 {
        uart.read(offset, 4).expect("a register")
    }

    fn write(uart: &mut Pl011, offset: u64, value: u64) -> Option<u8> {
        uart.write(offset, 4, value).expect("a register")
    }

    fn enable_fifos(uart: &mut Pl011) {
        write(uart, reg::LCR_H, LCR_H_FEN.into());
    }

    #[test]
    fn identification_registers_are_pl011_r1p5() {
        let mut uart = Pl011::new();
        let ids: Vec<u64> = (0..8).map(|i| read(&mut uart, 0xfe0 + 4 * i)).collect();
        assert_eq!(ids, [0x11, 0x10, 0x34, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // The AMBA bus builds the peripheral ID from the low bytes; Linux wants 0x00341011
        // (revision 3 gives 32-entry FIFOs) and the PrimeCell ID 0xb105f00d.
        let periph = ids[..4].iter().enumerate().fold(0, |id, (i, byte)| id | byte << (8 * i));
        let cell = ids[4..].iter().enumerate().fold(0, |id, (i, byte)| id | byte << (8 * i));
        assert_eq!((periph, cell), (0x0034_1011, 0xb105_f00d));
    }

    #[test]
    fn reset_state_matches_the_manual() {
        let mut uart = Pl011::new();
        let expected = [
            (reg::RSR_ECR, 0),
            (reg::FR, u64::from(flag::TXFE | flag::RXFE | flag::CTS | flag::DSR | flag::DCD)),
            (reg::ILPR, 0),
            (reg::IBRD, 0),
            (reg::FBRD, 0),
            (reg::LCR_H, 0),
            (reg::CR, 0x300),
            (reg::IFLS, 0x12),
            (reg::IMSC, 0),
            (reg::RIS, u64::from(interrupt::TX)),
            (reg::MIS, 0),
            (reg::DMACR, 0),
        ];
        for (offset, value) in expected {
            assert_eq!(read(&mut uart, offset), value, "offset {offset:#x}");
        }
        assert!(!uart.interrupt_asserted());
    }

    #[test]
    fn control_registers_round_trip_within_their_widths() {
        let mut uart = Pl011::new();
        let cases = [
            (reg::ILPR, 0xffff_ffff, 0xff),
            (reg::IBRD, 0xffff_ffff, 0xffff),
            (reg::IBRD, 0x1234, 0x1234),
            (reg::FBRD, 0xff, 0x3f),
            (reg::LCR_H, 0x1_ff, 0xff),
            (reg::CR, 0xffff_ffff, 0xff87),
            (reg::IFLS, 0xff, 0x3f),
            (reg::IMSC, 0xffff, 0x7ff),
            (reg::DMACR, 0xff, 0x7),
        ];
        for (offset, written, expected) in cases {
            assert_eq!(write(&mut uart, offset, written), None);
            assert_eq!(read(&mut uart, offset), expected, "offset {offset:#x}");
        }
    }

    #[test]
    fn transmitted_bytes_go_to_the_console() {
        let mut uart = Pl011::new();
        assert_eq!(write(&mut uart, reg::DR, 0x141), Some(b'A'));
        assert_eq!(uart.write(reg::DR, 1, u64::from(b'B')), Ok(Some(b'B')));
        let fr = read(&mut uart, reg::FR) as u32;
        assert_eq!(fr & (flag::TXFE | flag::TXFF | flag::BUSY), flag::TXFE);
    }

    #[test]
    fn the_transmit_interrupt_is_a_level_that_only_its_mask_gates() {
        let mut uart = Pl011::new();
        assert_eq!(read(&mut uart, reg::RIS), u64::from(interrupt::TX), "an empty FIFO is below any level");
        assert!(!uart.interrupt_asserted(), "masked");
        // The driver unmasks TXIM when it queues output the FIFO did not take at once.
        write(&mut uart, reg::IMSC, interrupt::TX.into());
        assert!(uart.interrupt_asserted());
        assert_eq!(read(&mut uart, reg::MIS), u64::from(interrupt::TX));
        // Clearing does not lower a level whose condition holds; writing does not either.
        write(&mut uart, reg::ICR, interrupt::TX.into());
        write(&mut uart, reg::DR, u64::from(b'x'));
        assert!(uart.interrupt_asserted());
        // Its queue empty, the driver masks TXIM again: the line drops.
        write(&mut uart, reg::IMSC, 0);
        assert!(!uart.interrupt_asserted());
        assert_eq!(read(&mut uart, reg::MIS), 0);
    }

    #[test]
    fn the_line_is_raw_status_under_the_mask() {
        let mut uart = Pl011::new();
        enable_fifos(&mut uart);
        let receive = interrupt::RX | interrupt::RT;
        // Every single unmasked source raises the line; masked ones do not.
        uart.receive(data::FE | u16::from(b'a'));
        for (mask, asserted) in [
            (0, false),
            (interrupt::RT, true),
            (interrupt::RX, false),
            (interrupt::FE, true),
            (interrupt::OE, false),
            (interrupt::TX, true),
            (interrupt::ALL & !(interrupt::TX | interrupt::RT | interrupt::FE), false),
        ] {
            write(&mut uart, reg::IMSC, mask.into());
            assert_eq!(uart.interrupt_asserted(), asserted, "IMSC {mask:#x}");
            assert_eq!(read(&mut uart, reg::MIS) != 0, asserted, "IMSC {mask:#x}");
        }
        write(&mut uart, reg::IMSC, (receive | interrupt::FE).into());
        write(&mut uart, reg::ICR, interrupt::FE.into());
        assert!(uart.interrupt_asserted(), "RT still raised");
        read(&mut uart, reg::DR);
        assert!(!uart.interrupt_asserted(), "the FIFO emptied: RT fell");
    }

    #[test]
    fn without_fifos_one_character_fills_the_holding_register() {
        let mut uart = Pl011::new();
        assert!(uart.can_receive());
        uart.receive(u16::from(b'x'));
        assert!(!uart.can_receive());
        let fr = read(&mut uart, reg::FR) as u32;
        assert_eq!(fr & (flag::RXFE | flag::RXFF), flag::RXFF);
        assert_eq!(read(&mut uart, reg::RIS), u64::from(interrupt::RX | interrupt::RT | interrupt::TX));
        write(&mut uart, reg::IMSC, (interrupt::RX | interrupt::RT).into());
        assert!(uart.interrupt_asserted());
        assert_eq!(read(&mut uart, reg::DR), u64::from(b'x'));
        assert!(!uart.interrupt_asserted(), "reading the character ends both interrupts");
        assert_eq!(read(&mut uart, reg::FR) as u32 & flag::RXFE, flag::RXFE);
        assert_eq!(read(&mut uart, reg::DR), 0, "an empty FIFO reads as zero");
    }

    #[test]
    fn the_fifo_keeps_order_and_the_trigger_level_follows_ifls() {
        let mut uart = Pl011::new();
        enable_fifos(&mut uart);
        write(&mut uart, reg::IFLS, 0b001 << 3); // RX at 1/4 full: 8 characters
        for (i, byte) in (b'a'..).take(7).enumerate() {
            uart.receive(byte.into());
            assert_eq!(uart.rx.len, i + 1);
        }
        assert_eq!(read(&mut uart, reg::RIS) as u32 & (interrupt::RX | interrupt::RT), interrupt::RT);
        uart.receive(u16::from(b'h'));
        assert_eq!(read(&mut uart, reg::RIS) as u32 & interrupt::RX, interrupt::RX);
        assert_eq!(read(&mut uart, reg::DR), u64::from(b'a'));
        assert_eq!(read(&mut uart, reg::RIS) as u32 & interrupt::RX, 0, "below the trigger again");
        let rest: Vec<u8> = (0..7).map(|_| read(&mut uart, reg::DR) as u8).collect();
        assert_eq!(rest, b"bcdefgh");
        assert_eq!(read(&mut uart, reg::RIS), u64::from(interrupt::TX));
    }

    #[test]
    fn a_full_fifo_overruns_and_flags_the_next_character() {
        let mut uart = Pl011::new();
        enable_fifos(&mut uart);
        for i in 0..FIFO_DEPTH {
            uart.receive(i as u16);
        }
        assert_eq!(read(&mut uart, reg::FR) as u32 & flag::RXFF, flag::RXFF);
        uart.receive(0xee);
        assert_eq!(read(&mut uart, reg::RIS) as u32 & interrupt::OE, interrupt::OE);
        assert_eq!(read(&mut uart, reg::RSR_ECR), u64::from(RSR_OE));
        for i in 0..FIFO_DEPTH {
            assert_eq!(read(&mut uart, reg::DR), i as u64, "0xee was lost");
        }
        uart.receive(u16::from(b'z'));
        assert_eq!(read(&mut uart, reg::DR), u64::from(data::OE | u16::from(b'z')));
        write(&mut uart, reg::RSR_ECR, 0);
        assert_eq!(read(&mut uart, reg::RSR_ECR), 0);
        // An overrun the host UART saw comes through the same way.
        write(&mut uart, reg::ICR, interrupt::ALL.into());
        uart.receive(data::OE | u16::from(b'y'));
        assert_eq!(read(&mut uart, reg::RIS) as u32 & interrupt::OE, interrupt::OE);
        assert_eq!(read(&mut uart, reg::RSR_ECR), u64::from(RSR_OE));
        assert_eq!(read(&mut uart, reg::DR), u64::from(data::OE | u16::from(b'y')));
    }

    #[test]
    fn receive_errors_reach_dr_rsr_and_the_error_interrupts() {
        let mut uart = Pl011::new();
        enable_fifos(&mut uart);
        uart.receive(data::BE);
        uart.receive(data::FE | data::PE | u16::from(b'q'));
        let ris = read(&mut uart, reg::RIS) as u32;
        assert_eq!(
            ris & (interrupt::FE | interrupt::PE | interrupt::BE),
            interrupt::FE | interrupt::PE | interrupt::BE
        );
        assert_eq!(read(&mut uart, reg::DR), u64::from(data::BE));
        assert_eq!(read(&mut uart, reg::RSR_ECR), 0b100);
        assert_eq!(read(&mut uart, reg::DR), u64::from(data::FE | data::PE | u16::from(b'q')));
        assert_eq!(read(&mut uart, reg::RSR_ECR), 0b011);
        write(&mut uart, reg::ICR, interrupt::ALL.into());
        assert_eq!(read(&mut uart, reg::RIS), u64::from(interrupt::TX));
    }

    #[test]
    fn switching_fifos_empties_the_receive_fifo() {
        let mut uart = Pl011::new();
        enable_fifos(&mut uart);
        uart.receive(1);
        uart.receive(2);
        write(&mut uart, reg::LCR_H, 0x60); // 8 bits, FIFOs off
        assert_eq!(read(&mut uart, reg::FR) as u32 & flag::RXFE, flag::RXFE);
        assert_eq!(read(&mut uart, reg::RIS), u64::from(interrupt::TX));
        uart.receive(3);
        write(&mut uart, reg::LCR_H, 0x60); // unchanged FEN keeps the character
        assert_eq!(read(&mut uart, reg::DR), 3);
    }

    #[test]
    fn loopback_sends_transmitted_bytes_to_the_receiver() {
        let mut uart = Pl011::new();
        write(&mut uart, reg::CR, 0x381); // UARTEN, LBE, TXE, RXE
        assert_eq!(write(&mut uart, reg::DR, 0), None);
        assert_eq!(read(&mut uart, reg::FR) as u32 & flag::RXFE, 0);
        assert_eq!(read(&mut uart, reg::DR), 0);
        write(&mut uart, reg::CR, 0x301);
        assert_eq!(write(&mut uart, reg::DR, 0x55), Some(0x55));
    }

    #[test]
    fn narrow_reads_return_the_addressed_bytes() {
        let mut uart = Pl011::new();
        write(&mut uart, reg::IBRD, 0xbeef);
        assert_eq!(uart.read(reg::IBRD, 1), Ok(0xef));
        assert_eq!(uart.read(reg::IBRD + 1, 1), Ok(0xbe));
        assert_eq!(uart.read(reg::IBRD, 2), Ok(0xbeef));
        assert_eq!(uart.read(reg::FR, 2), Ok(u64::from(flag::TXFE | flag::RXFE | 0b111)));
        assert_eq!(uart.write(reg::IBRD, 2, 0x1_2345), Ok(None));
        assert_eq!(read(&mut uart, reg::IBRD), 0x2345, "zero-extended from 16 bits");
    }

    #[test]
    fn odd_accesses_are_unhandled() {
        let mut uart = Pl011::new();
        assert_eq!(uart.read(reg::DR, 8), Err(Unhandled));
        assert_eq!(uart.read(reg::IBRD + 2, 4), Err(Unhandled), "misaligned");
        assert_eq!(uart.read(reg::IBRD + 1, 2), Err(Unhandled), "misaligned");
        assert_eq!(uart.read(0x080, 4), Err(Unhandled), "test registers are not modelled");
        assert_eq!(uart.read(reg::ICR, 4), Err(Unhandled), "write-only");
        assert_eq!(uart.read(FRAME_SIZE, 4), Err(Unhandled));
        assert_eq!(uart.write(reg::FR, 4, 0), Err(Unhandled), "read-only");
        assert_eq!(uart.write(reg::PERIPH_ID0, 4, 0), Err(Unhandled));
        assert_eq!(uart.write(reg::IBRD + 1, 1, 0x12), Err(Unhandled), "inside a register");
        assert_eq!(uart.write(reg::DR, 3, 0x41), Err(Unhandled));
        assert_eq!(read(&mut uart, reg::IBRD), 0);
    }

    /// Linux's `amba-pl011` probe, console setup and startup, as register accesses.
    #[test]
    fn linux_probe_and_startup_sequence() {
        let mut uart = Pl011::new();
        // The AMBA bus reads the identification registers; the driver masks and clears
        // every interrupt.
        for i in 0..8 {
            read(&mut uart, reg::PERIPH_ID0 + 4 * i);
        }
        uart.write(reg::IMSC, 2, 0).unwrap();
        uart.write(reg::ICR, 2, 0xffff).unwrap();
        // Console setup: UARTEN is clear, so the driver programs 115200 8N1 with FIFOs.
        assert_eq!(uart.read(reg::CR, 2).unwrap() & 1, 0);
        uart.write(reg::IBRD, 2, 13).unwrap();
        uart.write(reg::FBRD, 2, 1).unwrap();
        uart.write(reg::LCR_H, 2, 0x70).unwrap();
        uart.write(reg::CR, 2, 0x301).unwrap();
        // Startup: clear, set trigger levels, enable, drain stale input, unmask RX and RT.
        uart.write(reg::ICR, 2, 0x7ff).unwrap();
        uart.write(reg::IFLS, 2, 0x12).unwrap();
        uart.write(reg::CR, 2, 0x301).unwrap();
        uart.receive(u16::from(b'!'));
        uart.write(reg::ICR, 2, u64::from(interrupt::RX | interrupt::RT)).unwrap();
        for _ in 0..FIFO_DEPTH * 2 {
            if uart.read(reg::FR, 2).unwrap() as u32 & flag::RXFE != 0 {
                break;
            }
            uart.read(reg::DR, 2).unwrap();
        }
        uart.write(reg::IMSC, 2, u64::from(interrupt::RX | interrupt::RT)).unwrap();
        assert!(!uart.interrupt_asserted());
        // Typing one character raises the receive timeout interrupt (below the 1/2 level).
        uart.receive(u16::from(b'l'));
        assert!(uart.interrupt_asserted());
        assert_eq!(uart.read(reg::MIS, 2), Ok(u64::from(interrupt::RT)));
        assert_eq!(uart.read(reg::DR, 2), Ok(u64::from(b'l')));
        assert!(!uart.interrupt_asserted());
        // The console's polled output: FR says there is room and nothing is busy.
        for &byte in b"ok\n" {
            assert_eq!(uart.read(reg::FR, 2).unwrap() as u32 & flag::TXFF, 0);
            assert_eq!(uart.write(reg::DR, 2, byte.into()), Ok(Some(byte)));
        }
        assert_eq!(uart.read(reg::FR, 2).unwrap() as u32 & flag::BUSY, 0);
        // The baud rate programmed above reads back for the next console_setup.
        assert_eq!((uart.read(reg::IBRD, 2), uart.read(reg::FBRD, 2)), (Ok(13), Ok(1)));
    }
}
