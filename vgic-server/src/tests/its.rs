//! The real its-server wired to this server: ITS commands from a command queue in guest
//! memory, and MSIs, end in list registers.

use its_server::registers::offset;
use its_server::{Its, Progress};

use super::commands::Command::{self, *};
use crate::fakes::{Machine, RAM_BASE};
use crate::{Config, LrState, Width};

const PROPERTY_TABLE: u64 = RAM_BASE + 0x1_0000;
const QUEUE: u64 = RAM_BASE + 0x8_0000;
const DEVICE_TABLE: u64 = RAM_BASE + 0x9_0000;
const COLLECTION_TABLE: u64 = RAM_BASE + 0xa_0000;
const VALID: u64 = 1 << 63;
const PENDING_TABLE_ZERO: u64 = 1 << 62;
const LPI: u32 = 8200;

struct System {
    m: Machine<2>,
    its: Its<4, 16, 4>,
    cwriter: u64,
}

impl System {
    fn new() -> Self {
        let mut m = Machine::new(Config { vcpus: 2, spis: 32, lpi_id_bits: Some(14) });
        m.enable_distributor();
        m.gicr_write_sized(0, 0x70, Width::Doubleword, PROPERTY_TABLE | 13);
        for vcpu in 0..2 {
            m.gicr_write_sized(
                vcpu,
                0x78,
                Width::Doubleword,
                (RAM_BASE + 0x2_0000 * (vcpu as u64 + 1)) | PENDING_TABLE_ZERO,
            );
            m.gicr_write(vcpu, 0, 1);
        }
        m.ram.store(PROPERTY_TABLE + (LPI - 8192) as u64, &[0x40 | 0b11]);
        let config = its_server::Config {
            max_devices: 4,
            max_events_per_device: 16,
            max_collections: 4,
            vcpus: 2,
            lpi_id_bits: 14,
        };
        let mut its = Its::new(config).unwrap();
        for (register, value) in [
            (offset::CBASER, QUEUE | VALID),
            (offset::BASER, DEVICE_TABLE | VALID),
            (offset::BASER + 8, COLLECTION_TABLE | VALID),
        ] {
            assert_eq!(its.write(register, Width::Doubleword, value), Progress::Idle);
        }
        assert_eq!(its.write(offset::CTLR, Width::Word, 1), Progress::Idle);
        Self { m, its, cwriter: 0 }
    }

    /// Queues `commands` and runs them to completion (CREADR passes them).
    fn run(&mut self, commands: &[Command]) {
        for command in commands {
            for (index, word) in command.encode().iter().enumerate() {
                self.m.ram.store(QUEUE + self.cwriter + 8 * index as u64, &word.to_le_bytes());
            }
            self.cwriter += 32;
        }
        let _ = self.its.write(offset::CWRITER, Width::Doubleword, self.cwriter);
        let m = &mut self.m;
        let progress = self.its.process(&mut m.vgic.its_link(&mut m.vcpus, &m.ram), &m.ram, usize::MAX);
        assert_eq!(progress, Progress::Idle);
        assert_eq!(self.its.read(offset::CREADR, Width::Doubleword), self.cwriter);
        self.m.service();
    }

    fn msi(&mut self, device: u32, event: u32) {
        let m = &mut self.m;
        self.its.msi(&mut m.vgic.its_link(&mut m.vcpus, &m.ram), device, event).unwrap();
        self.m.service();
    }
}

#[test]
fn commands_and_msis_reach_the_list_registers() {
    let mut system = System::new();
    system.run(&[
        Mapd { device: 0, event_id_bits: Some(4) },
        Mapc { icid: 0, vcpu: 1 },
        Mapti { device: 0, event: 3, lpi: LPI, icid: 0 },
        Int { device: 0, event: 3 },
    ]);
    assert_eq!(system.m.listed(1), vec![(LPI, LrState::Pending)]);
    assert_eq!(system.m.drain(1), vec![LPI]);
    system.msi(0, 3);
    assert_eq!(system.m.drain(1), vec![LPI]);
}

#[test]
fn a_completed_discard_leaves_nothing_to_deliver() {
    let mut system = System::new();
    system.run(&[
        Mapd { device: 0, event_id_bits: Some(4) },
        Mapc { icid: 0, vcpu: 1 },
        Mapti { device: 0, event: 3, lpi: LPI, icid: 0 },
        Int { device: 0, event: 3 },
    ]);
    assert_eq!(system.m.ack(1), Some(LPI));
    system.msi(0, 3);
    system.run(&[Discard { device: 0, event: 3 }]);
    assert_eq!(system.m.listed(1), vec![(LPI, LrState::Active)], "the active one may finish");
    system.m.eoi(1, LPI);
    assert!(system.m.drain(1).is_empty(), "its pending state was dropped");
}
