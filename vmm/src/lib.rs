//! vmm: the virtual machine monitor of one VM: PSCI over HVC and SMC, and the guest's
//! console, an emulated PL011 whose output goes to the console capability and whose input
//! comes from the host's PL011.
//!
//! # Protocol
//!
//! The VMM receives on one endpoint; the kernel sends it, on a vCPU's behalf, the messages
//! of [`ipc::vcpu`] (each a Call: the reply resumes or stops the vCPU). The badge says
//! which manifest entry sent it:
//!
//! | badge | source | messages |
//! |---|---|---|
//! | [`badge::FAULTS`] | the VM's `fault-endpoint` | HVC and SMC: [`psci`]; trapped system registers: an undefined-instruction exception |
//! | [`badge::PL011`] | the route of the guest's UART, [`PL011_BASE`] + 4 KiB | MMIO: [`pl011`] |
//!
//! HVC and SMC get the same service (PSCI, SMCCC and the vendor call
//! [`psci::REPORT_STATUS`]), so a guest may use either conduit; the device tree names HVC.
//!
//! A test guest ends the run with a status: it makes the vendor-specific hypervisor call
//! [`psci::REPORT_STATUS`] (function 0x8600_0001, status in `w1`, 0 = pass), then PSCI
//! `SYSTEM_OFF`, which the VMM turns into the Control capability's shutdown with that
//! status (0 when nothing was reported).
//!
//! # Reset
//!
//! `SYSTEM_RESET` restarts the VM: the VMM stops every vCPU (`VCPU_STOP`, wherever each
//! is; the caller's own call is dropped with it), resets the its-server and the
//! vgic-server (which clears every vCPU's list registers), rewrites guest RAM from the
//! VM's image (the initial RAM contents xtask maps read-only into the VMM,
//! [`ipc::vm_image`]; [`reset::restore`]), starts over with a new PL011 and only the boot
//! vCPU on, and starts that at the image's entry point with `x0` = the device tree. A
//! status reported before the reset stays. The guest's RAM is written through the
//! VMM's cacheable mapping while the restarted guest starts with its MMU off: fine under
//! QEMU, which models no caches; hardware would need the RAM cleaned to the point of
//! coherency first.
//!
//! # Host input
//!
//! The host's PL011 (the kernel's console) raises SPI 33 when a character arrives; the
//! VMM holds that IRQ, whose notification is bound to the VMM's thread, and maps the UART
//! to read characters. The kernel writes its own output to that UART's DR, so the VMM
//! touches only the receive side: DR reads, the RX and RT bits of IMSC and ICR. A signal
//! arrives on the endpoint as a message labelled `ipc::NOTIFIED` ([`Vmm::host_input`]):
//! the VMM clears the host's receive interrupts, moves characters into the emulated FIFO
//! while it has room, and acknowledges the IRQ once the host FIFO is empty. Until then the
//! IRQ stays unacknowledged (masked), so a guest that does not read cannot cause an
//! interrupt storm, and the characters left in the host FIFO follow as soon as the guest
//! makes room: each guest access to the emulated PL011 first tops its FIFO up.
//!
//! # The guest's UART interrupt
//!
//! The emulated PL011's interrupt output ([`pl011::Pl011::interrupt_asserted`]) drives the
//! VM's SPI [`PL011_INTID`] through the vgic-server ([`Platform::set_uart_line`], an
//! `ipc::vgic::SpiRequest::SetLevel` Call), whenever it changes: after host input and
//! after each guest access to the UART. The vgic-server receives at a higher priority
//! than the VMM, so the Call is served at once.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod pl011;
pub mod psci;
pub mod reset;

use core::fmt;
use ipc::vcpu::{self, Call, MmioAccess};
use ipc::{Badge, Message};
use pl011::Pl011;
use psci::{Outcome, Psci, VcpuControl};

/// Badges of the messages the VMM receives; `system.toml` must give the same values.
pub mod badge {
    /// The VM's fault endpoint: HVC, SMC and trapped system registers.
    pub const FAULTS: u64 = 1;
    /// The route covering the guest's PL011.
    pub const PL011: u64 = 2;
}

/// Guest-physical base of the emulated PL011 (QEMU `virt`'s UART address).
pub const PL011_BASE: u64 = 0x0900_0000;
/// The emulated PL011's interrupt: SPI 1, as the guest's device tree says.
pub const PL011_INTID: u32 = 33;

/// Everything the VMM does outside its own state: invocations on its capabilities and
/// accesses to the host UART.
pub trait Platform: VcpuControl {
    /// Puts the guest's UART output on the console.
    fn console_write(&mut self, bytes: &[u8]);
    /// Ends the run with `status` (0 = pass); returns only if that failed.
    fn power_off(&mut self, status: u32);
    /// Sets the level of the guest's UART interrupt line ([`PL011_INTID`]).
    fn set_uart_line(&mut self, asserted: bool);
    /// Clears the host UART's receive and receive-timeout interrupts.
    fn host_rx_clear_interrupts(&mut self);
    /// Takes one character from the host UART (DR bits 11:0), or `None` when its receive
    /// FIFO is empty.
    fn host_receive(&mut self) -> Option<u16>;
    /// Acknowledges the host UART's IRQ so that the next one is delivered.
    fn host_rx_ack(&mut self);
    /// Resets the VM's its-server and vgic-server (`ipc::its::RESET`, `ipc::vgic::RESET`).
    fn reset_servers(&mut self);
    /// Rewrites guest RAM from the VM's image ([`reset::restore`]); returns how the boot
    /// vCPU starts, or `None` if the image is unusable.
    fn restore_ram(&mut self) -> Option<ipc::vm_image::Boot>;
}

/// How the VMM answers a vCPU (the reply of [`ipc::vcpu`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Resume: the value read (MMIO, system register) or the new x0..=x3 (HVC, SMC).
    Resume([u64; 4]),
    /// Inject a synchronous external data abort.
    InjectDataAbort,
    /// Inject an undefined-instruction exception.
    InjectUndefined,
    /// Do not resume the vCPU.
    Stop,
}

impl Reply {
    /// The reply message.
    pub fn message(&self) -> Message {
        match self {
            Reply::Resume(words) => Message::new(vcpu::RESUME).with_words(words),
            Reply::InjectDataAbort => Message::new(vcpu::INJECT_DATA_ABORT),
            Reply::InjectUndefined => Message::new(vcpu::INJECT_UNDEFINED),
            Reply::Stop => Message::new(vcpu::STOP),
        }
    }
}

/// Counts the warnings a guest causes (odd accesses, unexpected traps) and lets only the
/// 1st, 2nd, 4th, 8th, ... through, so that a guest cannot flood the console.
#[derive(Debug, Default)]
struct Diagnostics {
    count: u64,
}

impl Diagnostics {
    /// Counts one; returns its number if it should be logged.
    fn next(&mut self) -> Option<u64> {
        self.count += 1;
        self.count.is_power_of_two().then_some(self.count)
    }
}

/// The state of one VM's monitor.
#[derive(Debug)]
pub struct Vmm {
    psci: Psci,
    uart: Pl011,
    /// The host UART signalled input that is not all in the emulated FIFO yet; its IRQ
    /// is unacknowledged.
    host_rx_pending: bool,
    /// The level last given to the guest's UART interrupt line.
    uart_line: bool,
    diagnostics: Diagnostics,
}

impl Vmm {
    /// The monitor of a VM with `vcpus` vCPUs, vCPU 0 running.
    pub fn new(vcpus: usize) -> Self {
        Self {
            psci: Psci::new(vcpus),
            uart: Pl011::new(),
            host_rx_pending: false,
            uart_line: false,
            diagnostics: Diagnostics::default(),
        }
    }

    /// Logs a warning the guest caused, rate-limited (see [`Diagnostics`]).
    fn diagnose(&mut self, what: fmt::Arguments) {
        if let Some(count) = self.diagnostics.next() {
            log::warn!("{what} (guest event {count})");
        }
    }

    /// The emulated UART.
    pub fn uart(&self) -> &Pl011 {
        &self.uart
    }

    /// Serves one message from the endpoint and says how to answer the vCPU.
    pub fn handle(&mut self, message: &Message, badge: Badge, platform: &mut impl Platform) -> Reply {
        let label = message.label();
        match badge.0 {
            badge::FAULTS if label == vcpu::HVC || label == vcpu::SMC => match Call::decode(message) {
                Some(call) => self.call(&call, platform),
                None => {
                    self.diagnose(format_args!("malformed call message ({} words)", message.info.length()));
                    Reply::InjectUndefined
                }
            },
            badge::FAULTS if label == vcpu::SYSREG => {
                let access = vcpu::SysRegAccess::decode(message);
                self.diagnose(format_args!("system register access not emulated: {access:x?}"));
                Reply::InjectUndefined
            }
            badge::PL011 if label == vcpu::MMIO => match MmioAccess::decode(message) {
                Some(access) => self.uart_access(&access, platform),
                None => {
                    self.diagnose(format_args!("malformed MMIO message ({} words)", message.info.length()));
                    Reply::InjectDataAbort
                }
            },
            _ => {
                self.diagnose(format_args!("unexpected message: badge {:#x}, label {:#x}", badge.0, label.0));
                if label == vcpu::MMIO { Reply::InjectDataAbort } else { Reply::InjectUndefined }
            }
        }
    }

    fn call(&mut self, call: &Call, platform: &mut impl Platform) -> Reply {
        match self.psci.call(usize::from(call.vcpu), &call.x, platform) {
            Outcome::Return(value) => Reply::Resume([value as u64, 0, 0, 0]),
            Outcome::Stop => Reply::Stop,
            Outcome::PowerOff { status } => {
                platform.power_off(status);
                log::warn!("powering off failed; vCPU {} stops", call.vcpu);
                Reply::Stop
            }
            Outcome::Reset => self.reset(call.vcpu, platform),
        }
    }

    /// SYSTEM_RESET from vCPU `caller`: every vCPU stops (the caller too, so the reply
    /// goes nowhere), the servers reset, guest RAM is as at boot, the UART is new, and
    /// the boot vCPU starts at the image's entry point.
    fn reset(&mut self, caller: u16, platform: &mut impl Platform) -> Reply {
        log::info!("vCPU {caller} reset the VM: it restarts");
        for vcpu in 0..self.psci.vcpus() {
            if let Err(error) = platform.stop(vcpu) {
                log::warn!("stopping vCPU {vcpu} failed: {error:?}");
            }
        }
        platform.reset_servers();
        self.uart = Pl011::new();
        self.uart_line = false;
        self.psci.reset();
        let Some(boot) = platform.restore_ram() else {
            log::warn!("the VM's image is unusable: the run ends");
            platform.power_off(1);
            return Reply::Stop;
        };
        if let Err(error) = platform.start(0, boot.entry, boot.x0) {
            log::warn!("starting the boot vCPU failed: {error:?}");
        }
        Reply::Stop
    }

    /// The host UART's IRQ notification arrived: takes its input (see the crate
    /// documentation).
    pub fn host_input(&mut self, platform: &mut impl Platform) {
        self.host_rx_pending = true;
        self.receive_host_input(platform);
        self.update_uart_line(platform);
    }

    fn uart_access(&mut self, access: &MmioAccess, platform: &mut impl Platform) -> Reply {
        self.receive_host_input(platform);
        let reply = self.serve_uart_access(access, platform);
        self.update_uart_line(platform);
        reply
    }

    fn serve_uart_access(&mut self, access: &MmioAccess, platform: &mut impl Platform) -> Reply {
        let offset = access.ipa.wrapping_sub(PL011_BASE);
        let result = if access.write {
            self.uart.write(offset, access.size, access.value).map(|transmitted| {
                if let Some(byte) = transmitted {
                    platform.console_write(&[byte]);
                }
                0
            })
        } else {
            self.uart.read(offset, access.size)
        };
        match result {
            Ok(value) => Reply::Resume([value, 0, 0, 0]),
            Err(pl011::Unhandled) => {
                let kind = if access.write { "write" } else { "read" };
                self.diagnose(format_args!(
                    "vCPU {}: PL011 {kind} of {} bytes at offset {offset:#x} ignored (reads as zero)",
                    access.vcpu, access.size
                ));
                Reply::Resume([0; 4])
            }
        }
    }

    /// Tells the vgic-server the UART's interrupt level if it changed.
    fn update_uart_line(&mut self, platform: &mut impl Platform) {
        let asserted = self.uart.interrupt_asserted();
        if asserted != self.uart_line {
            self.uart_line = asserted;
            platform.set_uart_line(asserted);
        }
    }

    /// Moves characters the host UART received into the emulated FIFO (see the crate
    /// documentation).
    fn receive_host_input(&mut self, platform: &mut impl Platform) {
        if !self.host_rx_pending {
            return;
        }
        // Clearing first: a character arriving after the last read raises the interrupt
        // again, so none is left behind unsignalled.
        platform.host_rx_clear_interrupts();
        while self.uart.can_receive() {
            let Some(character) = platform.host_receive() else {
                self.host_rx_pending = false;
                platform.host_rx_ack();
                return;
            };
            self.uart.receive(character);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pl011::{flag, interrupt, reg};
    use std::collections::VecDeque;

    /// What the VMM did through its capabilities and the host UART.
    #[derive(Default)]
    struct FakePlatform {
        started: Vec<(usize, u64, u64)>,
        console: Vec<u8>,
        powered_off: Option<u32>,
        /// Every level given to the guest's UART line, in order.
        uart_lines: Vec<bool>,
        host_fifo: VecDeque<u16>,
        clears: usize,
        acks: usize,
        /// vCPU starts and stops, server resets and RAM restores, in order.
        events: Vec<String>,
        /// What `restore_ram` returns.
        image: Option<ipc::vm_image::Boot>,
    }

    impl VcpuControl for FakePlatform {
        fn start(&mut self, vcpu: usize, entry: u64, context_id: u64) -> Result<(), ipc::Error> {
            self.events.push(format!("start {vcpu}"));
            self.started.push((vcpu, entry, context_id));
            Ok(())
        }

        fn stop(&mut self, vcpu: usize) -> Result<(), ipc::Error> {
            self.events.push(format!("stop {vcpu}"));
            Ok(())
        }
    }

    impl Platform for FakePlatform {
        fn console_write(&mut self, bytes: &[u8]) {
            self.console.extend_from_slice(bytes);
        }
        fn power_off(&mut self, status: u32) {
            self.powered_off = Some(status);
        }
        fn set_uart_line(&mut self, asserted: bool) {
            self.uart_lines.push(asserted);
        }
        fn host_rx_clear_interrupts(&mut self) {
            self.clears += 1;
        }
        fn host_receive(&mut self) -> Option<u16> {
            self.host_fifo.pop_front()
        }
        fn host_rx_ack(&mut self) {
            self.acks += 1;
        }
        fn reset_servers(&mut self) {
            self.events.push("reset servers".to_owned());
        }
        fn restore_ram(&mut self) -> Option<ipc::vm_image::Boot> {
            self.events.push("restore ram".to_owned());
            self.image
        }
    }

    impl FakePlatform {
        /// Characters arrive at the host UART.
        fn type_in(&mut self, text: &[u8]) {
            self.host_fifo.extend(text.iter().map(|&byte| u16::from(byte)));
        }
    }

    const FAULTS: Badge = Badge(badge::FAULTS);
    const UART: Badge = Badge(badge::PL011);

    fn hvc(x: &[u64], vcpu: u16) -> Message {
        let mut registers = [0; 8];
        registers[..x.len()].copy_from_slice(x);
        Call { x: registers, vcpu }.encode(vcpu::HVC)
    }

    fn mmio(offset: u64, size: u8, write: Option<u64>) -> Message {
        let access = MmioAccess {
            ipa: PL011_BASE + offset,
            size,
            write: write.is_some(),
            value: write.unwrap_or(0),
            vcpu: 0,
        };
        access.encode()
    }

    fn uart_read(vmm: &mut Vmm, platform: &mut FakePlatform, offset: u64) -> u64 {
        match vmm.handle(&mmio(offset, 4, None), UART, platform) {
            Reply::Resume([value, ..]) => value,
            other => panic!("read of {offset:#x}: {other:?}"),
        }
    }

    fn uart_write(vmm: &mut Vmm, platform: &mut FakePlatform, offset: u64, value: u64) {
        assert_eq!(vmm.handle(&mmio(offset, 4, Some(value)), UART, platform), Reply::Resume([0; 4]));
    }

    #[test]
    fn diagnostics_are_logged_at_powers_of_two() {
        let mut diagnostics = Diagnostics::default();
        let logged: Vec<Option<u64>> = (0..9).map(|_| diagnostics.next()).collect();
        assert_eq!(logged, [Some(1), Some(2), None, Some(4), None, None, None, Some(8), None]);
    }

    #[test]
    fn replies_encode_the_vcpu_protocol() {
        let resume = Reply::Resume([1, 2, 3, 4]).message();
        assert_eq!((resume.label(), resume.body()), (vcpu::RESUME, &[1, 2, 3, 4][..]));
        assert_eq!(Reply::InjectDataAbort.message().label(), vcpu::INJECT_DATA_ABORT);
        assert_eq!(Reply::InjectUndefined.message().label(), vcpu::INJECT_UNDEFINED);
        assert_eq!(Reply::Stop.message().label(), vcpu::STOP);
    }

    #[test]
    fn hvc_and_smc_get_psci() {
        let (mut vmm, mut platform) = (Vmm::new(2), FakePlatform::default());
        let version = u64::from(smccc::psci::PSCI_VERSION);
        assert_eq!(
            vmm.handle(&hvc(&[version], 0), FAULTS, &mut platform),
            Reply::Resume([0x1_0001, 0, 0, 0])
        );
        let smc = Call { x: [version, 0, 0, 0, 0, 0, 0, 0], vcpu: 0 }.encode(vcpu::SMC);
        assert_eq!(vmm.handle(&smc, FAULTS, &mut platform), Reply::Resume([0x1_0001, 0, 0, 0]));
        let unknown = hvc(&[0xc600_0000], 0);
        assert_eq!(vmm.handle(&unknown, FAULTS, &mut platform), Reply::Resume([u64::MAX, 0, 0, 0]));
    }

    #[test]
    fn cpu_on_invokes_the_target_vcpu_and_cpu_off_stops_the_caller() {
        let (mut vmm, mut platform) = (Vmm::new(2), FakePlatform::default());
        let cpu_on = u64::from(smccc::psci::PSCI_CPU_ON_64);
        let reply = vmm.handle(&hvc(&[cpu_on, 1, 0x4008_2000, 0x4010_0000], 0), FAULTS, &mut platform);
        assert_eq!(reply, Reply::Resume([0; 4]));
        assert_eq!(platform.started, [(1, 0x4008_2000, 0x4010_0000)]);
        let cpu_off = u64::from(smccc::psci::PSCI_CPU_OFF);
        assert_eq!(vmm.handle(&hvc(&[cpu_off], 1), FAULTS, &mut platform), Reply::Stop);
        let affinity = u64::from(smccc::psci::PSCI_AFFINITY_INFO_64);
        let off = smccc::psci::AffinityState::Off as u64;
        assert_eq!(
            vmm.handle(&hvc(&[affinity, 1, 0], 0), FAULTS, &mut platform),
            Reply::Resume([off, 0, 0, 0])
        );
    }

    #[test]
    fn system_off_powers_off_with_the_reported_status() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        let report = u64::from(psci::REPORT_STATUS);
        assert_eq!(vmm.handle(&hvc(&[report, 2], 0), FAULTS, &mut platform), Reply::Resume([0; 4]));
        let off = u64::from(smccc::psci::PSCI_SYSTEM_OFF);
        assert_eq!(vmm.handle(&hvc(&[off], 0), FAULTS, &mut platform), Reply::Stop);
        assert_eq!(platform.powered_off, Some(2));
    }

    #[test]
    fn system_reset_stops_every_vcpu_then_restarts_the_boot_vcpu_from_the_image() {
        let (mut vmm, mut platform) = (Vmm::new(3), FakePlatform::default());
        let boot = ipc::vm_image::Boot { entry: 0x4020_0000, x0: 0x4fff_0000 };
        platform.image = Some(boot);
        let cpu_on = u64::from(smccc::psci::PSCI_CPU_ON_64);
        assert_eq!(
            vmm.handle(&hvc(&[cpu_on, 1, 0x4008_0000], 0), FAULTS, &mut platform),
            Reply::Resume([0; 4])
        );
        assert_eq!(uart_read(&mut vmm, &mut platform, pl011::reg::CR), 0x300);
        vmm.handle(&mmio(pl011::reg::CR, 4, Some(0x301)), UART, &mut platform);
        platform.events.clear();
        let reset = u64::from(smccc::psci::PSCI_SYSTEM_RESET);
        assert_eq!(vmm.handle(&hvc(&[reset], 1), FAULTS, &mut platform), Reply::Stop);
        assert_eq!(
            platform.events,
            ["stop 0", "stop 1", "stop 2", "reset servers", "restore ram", "start 0"]
        );
        assert_eq!(platform.started.last(), Some(&(0, boot.entry, boot.x0)));
        assert_eq!(platform.powered_off, None);
        assert_eq!(uart_read(&mut vmm, &mut platform, pl011::reg::CR), 0x300, "a new UART");
        // Only the boot vCPU is on: vCPU 1 can be started again.
        assert_eq!(
            vmm.handle(&hvc(&[cpu_on, 1, 0x4008_0000], 0), FAULTS, &mut platform),
            Reply::Resume([0; 4])
        );
    }

    #[test]
    fn a_reset_without_a_usable_image_ends_the_run() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        let reset = u64::from(smccc::psci::PSCI_SYSTEM_RESET);
        assert_eq!(vmm.handle(&hvc(&[reset], 0), FAULTS, &mut platform), Reply::Stop);
        assert_eq!(platform.powered_off, Some(1));
        assert!(!platform.events.contains(&"start 0".to_owned()));
    }

    #[test]
    fn system_registers_and_strays_get_exceptions() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        let sysreg = vcpu::SysRegAccess { encoding: 0xc000, write: false, value: 0, vcpu: 0 }.encode();
        assert_eq!(vmm.handle(&sysreg, FAULTS, &mut platform), Reply::InjectUndefined);
        assert_eq!(vmm.handle(&mmio(0, 4, None), FAULTS, &mut platform), Reply::InjectDataAbort);
        assert_eq!(vmm.handle(&hvc(&[0], 0), UART, &mut platform), Reply::InjectUndefined);
        assert_eq!(vmm.handle(&mmio(0, 4, None), Badge(7), &mut platform), Reply::InjectDataAbort);
        let mut short = hvc(&[0], 0);
        short.info = ipc::MessageInfo::new(vcpu::HVC, 3).unwrap();
        assert_eq!(vmm.handle(&short, FAULTS, &mut platform), Reply::InjectUndefined);
        let mut reserved_bits = mmio(0, 4, None);
        reserved_bits.words[1] |= 1 << 2;
        assert_eq!(vmm.handle(&reserved_bits, UART, &mut platform), Reply::InjectDataAbort);
        assert_eq!(platform.powered_off, None);
        assert!(platform.started.is_empty());
    }

    #[test]
    fn guest_output_reaches_the_console() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        for &byte in b"hi\n" {
            assert_eq!(uart_read(&mut vmm, &mut platform, reg::FR) as u32 & flag::TXFF, 0);
            uart_write(&mut vmm, &mut platform, reg::DR, byte.into());
        }
        let byte_write = mmio(reg::DR, 1, Some(u64::from(b'!')));
        assert_eq!(vmm.handle(&byte_write, UART, &mut platform), Reply::Resume([0; 4]));
        assert_eq!(platform.console, b"hi\n!");
    }

    #[test]
    fn unhandled_uart_accesses_read_as_zero_and_are_ignored() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        uart_write(&mut vmm, &mut platform, reg::IBRD, 0x77);
        assert_eq!(vmm.handle(&mmio(reg::IBRD, 8, None), UART, &mut platform), Reply::Resume([0; 4]));
        assert_eq!(vmm.handle(&mmio(reg::FR, 4, Some(0xff)), UART, &mut platform), Reply::Resume([0; 4]));
        assert_eq!(vmm.handle(&mmio(0x800, 4, None), UART, &mut platform), Reply::Resume([0; 4]));
        assert_eq!(uart_read(&mut vmm, &mut platform, reg::IBRD), 0x77);
        let outside = MmioAccess { ipa: PL011_BASE - 4, size: 4, write: false, value: 0, vcpu: 0 };
        assert_eq!(vmm.handle(&outside.encode(), UART, &mut platform), Reply::Resume([0; 4]));
    }

    #[test]
    fn host_input_is_taken_when_the_host_irq_notifies() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        uart_write(&mut vmm, &mut platform, reg::LCR_H, 0x70);
        platform.type_in(b"a");
        assert_eq!(uart_read(&mut vmm, &mut platform, reg::FR) as u32 & flag::RXFE, flag::RXFE);
        assert_eq!((platform.clears, platform.acks), (0, 0), "no notification, no host access");
        vmm.host_input(&mut platform);
        assert_eq!((platform.clears, platform.acks), (1, 1));
        assert_eq!(uart_read(&mut vmm, &mut platform, reg::DR), u64::from(b'a'));
        assert_eq!(uart_read(&mut vmm, &mut platform, reg::FR) as u32 & flag::RXFE, flag::RXFE);
        assert_eq!((platform.clears, platform.acks), (1, 1));
        assert!(platform.uart_lines.is_empty(), "every interrupt is masked");
    }

    #[test]
    fn host_input_waits_in_the_host_fifo_while_the_guest_fifo_is_full() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        // FIFOs off: the guest UART holds one character at a time.
        platform.type_in(b"xyz");
        vmm.host_input(&mut platform);
        let mut received = Vec::new();
        for _ in 0..3 {
            assert_eq!(platform.acks, 0, "the IRQ stays masked while input waits");
            received.push(uart_read(&mut vmm, &mut platform, reg::DR) as u8);
        }
        assert_eq!(received, b"xyz");
        assert_eq!(platform.acks, 0, "the host FIFO is empty but that is not known yet");
        assert_eq!(uart_read(&mut vmm, &mut platform, reg::FR) as u32 & flag::RXFE, flag::RXFE);
        assert_eq!(platform.acks, 1);
        assert!(vmm.uart().can_receive());
    }

    #[test]
    fn host_input_raises_the_guest_uart_line_and_reading_lowers_it() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        uart_write(&mut vmm, &mut platform, reg::LCR_H, 0x70);
        uart_write(&mut vmm, &mut platform, reg::IMSC, u64::from(interrupt::RX | interrupt::RT));
        assert!(platform.uart_lines.is_empty());
        platform.type_in(b"ls\n");
        vmm.host_input(&mut platform);
        assert_eq!(platform.uart_lines, [true], "raised by the notification, before any guest access");
        assert_eq!(uart_read(&mut vmm, &mut platform, reg::MIS), u64::from(interrupt::RT));
        let line: Vec<u8> = (0..3).map(|_| uart_read(&mut vmm, &mut platform, reg::DR) as u8).collect();
        assert_eq!(line, b"ls\n");
        assert_eq!(platform.uart_lines, [true, false], "told once per change");
        assert_eq!(platform.acks, 1);
        // Characters typed while the guest handles the interrupt raise it again.
        platform.type_in(b"x");
        vmm.host_input(&mut platform);
        assert_eq!(platform.uart_lines, [true, false, true]);
    }

    #[test]
    fn the_transmit_interrupt_follows_the_guest_mask() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        uart_write(&mut vmm, &mut platform, reg::IMSC, u64::from(interrupt::TX | interrupt::RT));
        assert_eq!(platform.uart_lines, [true], "an empty transmit FIFO asks for data");
        uart_write(&mut vmm, &mut platform, reg::DR, u64::from(b'!'));
        uart_write(&mut vmm, &mut platform, reg::IMSC, u64::from(interrupt::RT));
        assert_eq!(platform.uart_lines, [true, false]);
        assert_eq!(platform.console, b"!");
    }

    #[test]
    fn psci_calls_leave_the_host_uart_alone() {
        let (mut vmm, mut platform) = (Vmm::new(1), FakePlatform::default());
        platform.type_in(b"b");
        vmm.handle(&hvc(&[u64::from(smccc::psci::PSCI_VERSION)], 0), FAULTS, &mut platform);
        assert_eq!((platform.host_fifo.len(), platform.clears, platform.uart_lines.len()), (1, 0, 0));
    }
}
