//! msi-device: a virtual MSI-capable test device. Its one 4 KiB register page (a route of
//! the VM) lets the guest send bursts of MSIs with EventIDs it chooses; each MSI goes to
//! the VM's its-server as an `ipc::its::Msi` Call, under the DeviceID the manifest gave
//! the device's cap (its badge), as GITS_TRANSLATER writes from a real device would.
//!
//! Registers (32-bit; other widths and offsets read as zero and ignore writes):
//!
//! | offset | name | access | meaning |
//! |---|---|---|---|
//! | 0x00 | ID | r | [`ID_VALUE`] |
//! | 0x08 | FIRST_EVENT | rw | the EventID of the next burst's first MSI |
//! | 0x0c | SEND | w | sends a burst of `value` MSIs (at most [`MAX_BURST`]), EventIDs FIRST_EVENT, FIRST_EVENT + 1, ...; the write completes once the its-server took them all |
//! | 0x10 | DELIVERED | r | MSIs the its-server translated, since boot |
//! | 0x14 | DROPPED | r | MSIs the its-server dropped, since boot |
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

/// Offset of ID.
pub const ID: u64 = 0x00;
/// Offset of FIRST_EVENT.
pub const FIRST_EVENT: u64 = 0x08;
/// Offset of SEND.
pub const SEND: u64 = 0x0c;
/// Offset of DELIVERED.
pub const DELIVERED: u64 = 0x10;
/// Offset of DROPPED.
pub const DROPPED: u64 = 0x14;
/// What ID reads: "MSID".
pub const ID_VALUE: u32 = 0x4d53_4944;
/// The most MSIs one SEND write sends: a guest cannot keep the device busy for long.
pub const MAX_BURST: u32 = 64;

/// The device's registers.
#[derive(Debug, Default)]
pub struct Device {
    first_event: u32,
    delivered: u32,
    dropped: u32,
}

impl Device {
    /// The device at reset.
    pub const fn new() -> Self {
        Self { first_event: 0, delivered: 0, dropped: 0 }
    }

    /// A read of `size` bytes at `offset`.
    pub fn read(&self, offset: u64, size: u8) -> u64 {
        let value = match (offset, size) {
            (ID, 4) => ID_VALUE,
            (FIRST_EVENT, 4) => self.first_event,
            (DELIVERED, 4) => self.delivered,
            (DROPPED, 4) => self.dropped,
            _ => 0,
        };
        value.into()
    }

    /// A write of `size` bytes at `offset`; `send(event_id)` sends one MSI and returns
    /// whether the its-server delivered it.
    pub fn write(&mut self, offset: u64, size: u8, value: u64, mut send: impl FnMut(u32) -> bool) {
        match (offset, size) {
            (FIRST_EVENT, 4) => self.first_event = value as u32,
            (SEND, 4) => {
                let count = (value as u32).min(MAX_BURST);
                for event_id in (0..count).map(|n| self.first_event.wrapping_add(n)) {
                    if send(event_id) {
                        self.delivered = self.delivered.wrapping_add(1);
                    } else {
                        self.dropped = self.dropped.wrapping_add(1);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_sends_consecutive_event_ids_and_counts_the_outcomes() {
        let mut device = Device::new();
        assert_eq!(device.read(ID, 4), u64::from(ID_VALUE));
        device.write(FIRST_EVENT, 4, 6, |_| panic!("no MSI yet"));
        assert_eq!(device.read(FIRST_EVENT, 4), 6);
        let mut sent = Vec::new();
        device.write(SEND, 4, 3, |event_id| {
            sent.push(event_id);
            event_id != 7
        });
        assert_eq!(sent, [6, 7, 8]);
        assert_eq!((device.read(DELIVERED, 4), device.read(DROPPED, 4)), (2, 1));
    }

    #[test]
    fn a_burst_is_bounded_and_odd_accesses_do_nothing() {
        let mut device = Device::new();
        let mut count = 0;
        device.write(SEND, 4, u64::from(u32::MAX), |_| {
            count += 1;
            true
        });
        assert_eq!(count, MAX_BURST);
        device.write(SEND, 8, 1, |_| panic!("a 64-bit write sends nothing"));
        device.write(FIRST_EVENT, 1, 9, |_| unreachable!());
        assert_eq!((device.read(FIRST_EVENT, 4), device.read(ID, 2), device.read(0x40, 4)), (0, 0, 0));
    }
}
