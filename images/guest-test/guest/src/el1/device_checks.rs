//! Checks of devices behind the GIC: the PL031 RTC's alarm interrupt (SPI 2, INTID 34),
//! which the hypervisor passes through to this VM (its registers mapped at their physical
//! address, its SPI listed hardware-linked by the vgic-server) and which bare metal has
//! anyway; under the hypervisor its device tree must describe it. The handler clears
//! the alarm before its EOI; the EOI (a hardware-linked list register's, under the
//! hypervisor) deactivates the physical SPI, so the second alarm arriving proves that
//! deactivation re-enabled it.

use super::gic::{self, deliveries_since};
use super::wait_up_to;
use guest_test::fdt::{self, DeviceNode};
use guest_test::gic::{expect_per_cpu, gicd};
use guest_test::{Outcome, fail};

/// The PL031's registers (QEMU virt's address, the same in this VM).
const RTC_BASE: usize = 0x0901_0000;
/// Data register: the current time in seconds.
const RTCDR: usize = 0x00;
/// Match register: the alarm fires when RTCDR reaches it.
const RTCMR: usize = 0x04;
/// Interrupt mask set/clear: bit 0 lets the alarm raise the interrupt line.
const RTCIMSC: usize = 0x10;
/// Raw interrupt status.
const RTCRIS: usize = 0x14;
/// Interrupt clear: writing bit 0 clears the alarm.
const RTCICR: usize = 0x1c;
/// The RTC's SPI 2.
const RTC_INTID: u32 = 34;
/// Alarms the check waits for.
const ALARMS: u32 = 2;
/// How long an alarm one second ahead may take (the counter's next tick is at most a
/// second away, and QEMU's RTC follows the host clock).
const ALARM_PATIENCE_US: u64 = 3_000_000;

fn rtc_read(offset: usize) -> u32 {
    // SAFETY: the PL031's 4 KiB register page is device memory at RTC_BASE (identity
    // mapped at EL1; under the hypervisor the VM's stage 2 maps the device there).
    unsafe { core::ptr::read_volatile((RTC_BASE + offset) as *const u32) }
}

fn rtc_write(offset: usize, value: u32) {
    // SAFETY: as in `rtc_read`.
    unsafe { core::ptr::write_volatile((RTC_BASE + offset) as *mut u32, value) }
}

/// The device tree describes the RTC where it is: its registers, and SPI 2 level-high.
pub(super) fn rtc_described(tree: &[u8]) -> Outcome {
    let expected = DeviceNode { reg: (RTC_BASE as u64, 0x1000), interrupts: [0, RTC_INTID - 32, 4] };
    match fdt::device(tree, "arm,pl031") {
        Some(node) if node == expected => Ok(()),
        Some(node) => fail!("the arm,pl031 node says {node:?}, expected {expected:?}"),
        None => fail!("no arm,pl031 node with reg and interrupts"),
    }
}

/// Runs in the handler of the alarm's interrupt, before its EOI: lowers the line.
fn clear_alarm() {
    rtc_write(RTCICR, 1);
}

/// The RTC alarm, twice: each delivered exactly once, to vCPU 0, and inactive after EOI.
pub(super) fn rtc_alarm() -> Outcome {
    gic::route_spi(RTC_INTID, 0);
    gic::set_hook(RTC_INTID, clear_alarm);
    gic::gicd_set_bit(gicd::ISENABLER, RTC_INTID);
    rtc_write(RTCIMSC, 1);
    let outcome = (|| {
        for alarm in 0..ALARMS {
            let before = gic::deliveries(RTC_INTID);
            rtc_write(RTCMR, rtc_read(RTCDR).wrapping_add(1));
            if !wait_up_to(ALARM_PATIENCE_US, || deliveries_since(RTC_INTID, before)[0] > 0) {
                return fail!("alarm {alarm}: no interrupt within {} ms", ALARM_PATIENCE_US / 1000);
            }
            gic::settle();
            expect_per_cpu("alarm deliveries", [1, 0, 0, 0], deliveries_since(RTC_INTID, before))?;
            if rtc_read(RTCRIS) & 1 != 0 {
                return fail!("alarm {alarm}: still raised after the handler cleared it");
            }
            if gic::gicd_bit(gicd::ISACTIVER, RTC_INTID) {
                return fail!("alarm {alarm}: SPI still active after EOI");
            }
        }
        Ok(())
    })();
    rtc_write(RTCIMSC, 0);
    gic::gicd_set_bit(gicd::ICENABLER, RTC_INTID);
    gic::clear_hook();
    outcome
}
