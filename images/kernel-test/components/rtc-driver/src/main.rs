//! rtc-driver: programs the PL031 RTC's alarm one second ahead, waits for its interrupt
//! (SPI 2, INTID 34) through an IRQ handler capability and a notification, clears and
//! acknowledges it, and does so again, proving the ack re-enables delivery.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// PL031 registers (byte offsets).
const RTCDR: usize = 0x00;
const RTCMR: usize = 0x04;
const RTCIMSC: usize = 0x10;
const RTCRIS: usize = 0x14;
const RTCICR: usize = 0x1c;

/// Alarms to receive.
const ALARMS: u32 = 2;

fn read(offset: usize) -> u32 {
    // SAFETY: RTC is the PL031's 4 KiB MMIO page, mapped device memory in this component.
    unsafe { core::ptr::read_volatile((RTC + offset) as *const u32) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as in `read`.
    unsafe { core::ptr::write_volatile((RTC + offset) as *mut u32, value) }
}

fn main() -> ! {
    let mut failures = 0u64;
    write(RTCIMSC, 1);
    for alarm in 0..ALARMS {
        write(RTCMR, read(RTCDR) + 1);
        let word = IRQ.wait().expect("wait on IRQ");
        let raised = read(RTCRIS) & 1 == 1;
        log::info!("alarm {alarm}: notification word {:#x}, raw interrupt {raised}", word.0);
        if word.0 != 1 || !raised {
            failures += 1;
        }
        write(RTCICR, 1);
        RTC_IRQ.ack().expect("ack RTC_IRQ");
    }
    write(RTCIMSC, 0);
    let _ = RESULTS.call(&ipc::Message::new(ipc::Label(0)).with_words(&[failures]));
    unreachable!("the supervisor never replies")
}
