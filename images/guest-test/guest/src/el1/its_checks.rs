//! The ITS checks: LPIs through the ITS's commands, with every table in this program's
//! memory (LPI configuration and pending tables, the device and collection tables, the
//! interrupt translation tables, a one-page command queue). Collection `n` targets vCPU
//! `n`. The pending-table check runs first: it needs redistributors whose LPIs are still
//! disabled (EnableLPIs may not be cleared again once set).
//!
//! A command with an error may be ignored or may stall the queue, as the architecture
//! allows either: the checks accept both, replacing a stalled command with a SYNC and
//! retrying (GITS_CWRITER.Retry), and demand that the queue drains.

use super::cpus::{post, wait_task};
use super::gic;
use super::wait_for;
use aarch64_cpu::registers::Readable;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use guest_rt::mmio;
use guest_test::gic::{CPUS, FIRST_LPI, PerCpu, expect_per_cpu, gicr};
use guest_test::its::{COMMAND_SIZE, Command, baser, cbaser, lpi_config, reg, typer};
use guest_test::{Outcome, Report, expect_eq, fail};

/// The ITS.
const ITS_BASE: u64 = 0x0808_0000;
/// LPI INTID bits programmed in GICR_PROPBASER: LPIs 8192..16384.
const LPI_ID_BITS: u32 = 14;
/// Bytes of the LPI configuration table: one per LPI.
const PROPERTY_BYTES: usize = (1 << LPI_ID_BITS) - FIRST_LPI as usize;
/// Bytes of a pending table: one bit per INTID (the first 1 KiB covers INTIDs below 8192).
const PENDING_BYTES: usize = (1 << LPI_ID_BITS) / 8;
/// Pages of 4 KiB in the command queue.
const QUEUE_PAGES: u64 = 1;
/// Commands the queue holds.
const QUEUE_SLOTS: u64 = QUEUE_PAGES * 4096 / COMMAND_SIZE;
/// Bytes of each device's interrupt translation table.
const ITT_BYTES: usize = 4096;
/// Devices with an ITT here: DeviceIDs 0..DEVICES.
const DEVICES: usize = 6;
/// Priority of every LPI.
const LPI_PRIORITY: u8 = 0xa0;

/// The pending-table check's device: 256 events, LPIs from [`FIRST_LPI`].
const BULK_DEVICE: u32 = 1;
/// Events of [`BULK_DEVICE`].
const BULK_EVENTS: u32 = 256;
/// The other checks' device.
const DEVICE: u32 = 2;
/// The device that is unmapped.
const UNMAPPED_DEVICE: u32 = 3;
/// [`DEVICE`]'s event 0 raises this LPI.
const LPI: u32 = FIRST_LPI + BULK_EVENTS;
/// [`DEVICE`]'s event 1 raises this LPI.
const MOVALL_LPI: u32 = LPI + 1;
/// [`UNMAPPED_DEVICE`]'s event 0 raises this LPI.
const UNMAPPED_LPI: u32 = LPI + 2;
/// The MSI test device's DeviceID (the hypervisor's msi-device component; the manifest
/// gives it as the badge of its its-server cap).
const MSI_DEVICE: u32 = 5;
/// The MSI test device's register page (see the msi-device crate).
const MSI_DEVICE_BASE: u64 = 0x0A01_0000;
/// Its registers: ID, the first EventID of a burst, SEND (a burst of n MSIs), and the
/// counts of MSIs the ITS delivered and dropped.
const MSI_ID: u64 = 0x00;
const MSI_FIRST_EVENT: u64 = 0x08;
const MSI_SEND: u64 = 0x0c;
const MSI_DELIVERED: u64 = 0x10;
const MSI_DROPPED: u64 = 0x14;
/// What ID reads: "MSID".
const MSI_ID_VALUE: u32 = 0x4d53_4944;
/// Events of [`MSI_DEVICE`] mapped: event `e` raises LPI `MSI_FIRST_LPI + e` on vCPU
/// `e % CPUS`.
const MSI_EVENTS: u32 = 8;
/// The LPI of [`MSI_DEVICE`]'s event 0.
const MSI_FIRST_LPI: u32 = LPI + 16;

/// The race checks' device: its event [`RACE_EVENT`] raises [`RACE_LPI`].
const RACE_DEVICE: u32 = 0;
/// The race checks' event (of [`RACE_DEVICE`], and of [`MSI_DEVICE`] in the MSI races).
const RACE_EVENT: u32 = 0;
/// EventID bits of [`RACE_DEVICE`]'s and [`MSI_DEVICE`]'s ITTs.
const RACE_EVENT_BITS: u32 = 4;
/// The LPI the race checks hold pending or active on [`HOLDER`].
const RACE_LPI: u32 = LPI + 32;
/// The LPI [`RACE_EVENT`] is mapped to again after its DISCARD.
const REMAPPED_LPI: u32 = LPI + 33;
/// Priority of the race LPIs: above the doorbell SGI's, so that a late doorbell cannot
/// hide [`RACE_LPI`] from ICC_HPPIR1_EL1 on [`HOLDER`].
const RACE_PRIORITY: u8 = 0x80;
/// The vCPU that holds [`RACE_LPI`] (collection 1) while vCPU 0 issues commands.
const HOLDER: usize = 1;
/// The vCPU that sends MSIs in the MSI races.
const MSI_SENDER: usize = 2;
/// MSIs the MSI races see dropped after the removal completed, at least.
const MSIS_AFTER_REMOVAL: u32 = 8;

/// Memory of 64 KiB alignment (pending, device and collection tables).
#[repr(C, align(65536))]
struct Aligned64K<const N: usize>([u8; N]);

/// Memory of 4 KiB alignment (LPI configuration table, command queue, ITTs).
#[repr(C, align(4096))]
struct Aligned4K<const N: usize>([u8; N]);

static mut PROPERTIES: Aligned4K<PROPERTY_BYTES> = Aligned4K([0; PROPERTY_BYTES]);
static mut PENDING: [Aligned64K<PENDING_BYTES>; CPUS] = [const { Aligned64K([0; PENDING_BYTES]) }; CPUS];
static mut DEVICE_TABLE: Aligned64K<{ baser::PAGE_64K as usize }> = Aligned64K([0; baser::PAGE_64K as usize]);
static mut COLLECTION_TABLE: Aligned64K<{ baser::PAGE_64K as usize }> =
    Aligned64K([0; baser::PAGE_64K as usize]);
static mut QUEUE: Aligned4K<{ (QUEUE_PAGES * 4096) as usize }> =
    Aligned4K([0; (QUEUE_PAGES * 4096) as usize]);
static mut ITTS: [Aligned4K<ITT_BYTES>; DEVICES] = [const { Aligned4K([0; ITT_BYTES]) }; DEVICES];

/// Where the next command goes, as a byte offset in the queue (only vCPU 0 writes it).
static WRITE_OFFSET: AtomicU64 = AtomicU64::new(0);

fn its_read(offset: u64) -> u32 {
    // SAFETY: the ITS is at QEMU virt's address (or the VM's emulation of it); `offset`
    // is one of its 32-bit registers.
    unsafe { mmio::read32(ITS_BASE + offset) }
}

fn its_write(offset: u64, value: u32) {
    // SAFETY: as in `its_read`.
    unsafe { mmio::write32(ITS_BASE + offset, value) }
}

fn its_read64(offset: u64) -> u64 {
    // SAFETY: as in `its_read`, for a 64-bit register.
    unsafe { mmio::read64(ITS_BASE + offset) }
}

fn its_write64(offset: u64, value: u64) {
    // SAFETY: as in `its_read64`.
    unsafe { mmio::write64(ITS_BASE + offset, value) }
}

/// Sets LPI `intid`'s configuration byte (at the usual priority).
fn configure_lpi(intid: u32, enabled: bool) {
    configure_lpi_at(intid, LPI_PRIORITY, enabled);
}

/// Sets LPI `intid`'s configuration byte.
fn configure_lpi_at(intid: u32, priority: u8, enabled: bool) {
    // SAFETY: the configuration table is this module's, `intid - FIRST_LPI` is within it
    // (LPIs used here are far below 1 << LPI_ID_BITS), and only vCPU 0 writes it.
    unsafe {
        let entry = (&raw mut PROPERTIES.0).cast::<u8>().add((intid - FIRST_LPI) as usize);
        entry.write_volatile(lpi_config(priority, enabled));
    }
}

/// Marks LPI `intid` pending in vCPU `cpu`'s pending table (LPIs disabled there).
fn set_pending_bit(cpu: usize, intid: u32) {
    // SAFETY: the pending table is this module's and `intid / 8` is within it; the
    // redistributor does not use it before EnableLPIs.
    unsafe {
        let byte = (&raw mut PENDING[cpu].0).cast::<u8>().add((intid / 8) as usize);
        byte.write_volatile(byte.read_volatile() | 1 << (intid % 8));
    }
}

/// The guest-physical address of a table (the MMU is off: addresses are physical).
fn address<T>(table: *const T) -> u64 {
    table.addr() as u64
}

/// vCPU `cpu`'s pending table.
fn pending_table(cpu: usize) -> u64 {
    address(&raw const PENDING) + (cpu * size_of::<Aligned64K<PENDING_BYTES>>()) as u64
}

/// Device `device`'s interrupt translation table.
fn itt(device: u32) -> u64 {
    address(&raw const ITTS) + u64::from(device) * ITT_BYTES as u64
}

/// Writes `commands` after the last ones and publishes them with GITS_CWRITER.
fn enqueue(commands: &[Command]) {
    let mut offset = WRITE_OFFSET.load(Ordering::Relaxed);
    for command in commands {
        for (i, word) in command.0.iter().enumerate() {
            // SAFETY: `offset` is a command slot of the queue (a multiple of 32 below its
            // size); the ITS reads only slots between CREADR and CWRITER, which these are
            // not until CWRITER is written below.
            unsafe {
                let slot = (&raw mut QUEUE.0).cast::<u8>().add(offset as usize).cast::<u64>();
                slot.add(i).write_volatile(*word);
            }
        }
        offset = (offset + COMMAND_SIZE) % (QUEUE_SLOTS * COMMAND_SIZE);
    }
    WRITE_OFFSET.store(offset, Ordering::Relaxed);
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
    its_write64(reg::CWRITER, offset);
}

/// How the queue ended up after [`drain`].
enum Drained {
    /// CREADR reached CWRITER.
    Done,
    /// The ITS stalled on the command at this offset.
    Stalled(u64),
    /// Neither, within the patience.
    Stuck(u64),
}

/// Waits until the ITS has read every command written.
fn drain() -> Drained {
    let target = WRITE_OFFSET.load(Ordering::Relaxed);
    let mut read = 0;
    let done = wait_for(|| {
        read = its_read64(reg::CREADR);
        read & reg::STALLED_OR_RETRY != 0 || read & reg::OFFSET_MASK == target
    });
    match (done, read & reg::STALLED_OR_RETRY != 0) {
        (_, true) => Drained::Stalled(read & reg::OFFSET_MASK),
        (true, false) => Drained::Done,
        (false, false) => Drained::Stuck(read & reg::OFFSET_MASK),
    }
}

/// Runs `commands` (valid ones): they must all complete.
fn submit(commands: &[Command]) -> Outcome {
    for batch in commands.chunks(QUEUE_SLOTS as usize - 1) {
        enqueue(batch);
        match drain() {
            Drained::Done => {}
            Drained::Stalled(at) => return fail!("the queue stalled at offset {at:#x}"),
            Drained::Stuck(at) => return fail!("the queue stopped at offset {at:#x}"),
        }
    }
    Ok(())
}

/// Runs `commands`, some of them malformed: a stalled one is replaced by a SYNC and
/// retried. Returns how many stalled.
fn submit_tolerating_stalls(commands: &[Command]) -> Result<u32, guest_test::Text> {
    enqueue(commands);
    let mut stalls = 0;
    loop {
        match drain() {
            Drained::Done => return Ok(stalls),
            Drained::Stuck(at) => return fail!("the queue stopped at offset {at:#x}"),
            Drained::Stalled(at) => {
                stalls += 1;
                if stalls as usize > commands.len() {
                    return fail!("stalled more often than there are commands");
                }
                for (i, word) in Command::sync(0).0.iter().enumerate() {
                    // SAFETY: `at` is the slot of the command the ITS stalled on, which it
                    // reads again only after the Retry below.
                    unsafe {
                        let slot = (&raw mut QUEUE.0).cast::<u8>().add(at as usize).cast::<u64>();
                        slot.add(i).write_volatile(*word);
                    }
                }
                aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
                its_write64(reg::CWRITER, WRITE_OFFSET.load(Ordering::Relaxed) | reg::STALLED_OR_RETRY);
            }
        }
    }
}

/// SYNC on every vCPU's redistributor.
fn sync_all() -> [Command; CPUS] {
    core::array::from_fn(|cpu| Command::sync(gic::processor_number(cpu)))
}

/// Runs the checks (the GIC checks have run; IRQs are unmasked on every vCPU).
/// `msi_device`: the MSI test device exists (under the hypervisor, with `msi`).
pub(super) fn run(report: &mut Report<guest_rt::Pl011>, msi_device: bool) {
    let ready = init_and_introspect();
    let ok = ready.is_ok();
    report.check("its-init-and-introspection", ready);
    if !ok {
        return;
    }
    report.check("its-pending-tables-at-enable", pending_tables_at_enable());
    report.check("its-int-to-target-only", int_to_target_only());
    report.check("its-disable-inv-enable-invall", disable_inv_enable_invall());
    report.check("its-movi", movi());
    report.check("its-clear", clear());
    report.check("its-movall", movall());
    report.check("its-discard", discard());
    report.check("its-mapd-unmap", mapd_unmap());
    if msi_device {
        report.check("its-msi-device", msi_device_bursts());
    } else {
        println!("its-msi-device: skipped (no MSI test device: it is the hypervisor's msi-device component)");
    }
    report.check("its-queue-wrap-around", queue_wrap_around());
    report.check("its-malformed-commands", malformed_commands());
    let races = [
        (
            Removal::Discard,
            "its-race-discard-pending-elsewhere",
            "its-race-discard-active-elsewhere",
            "its-race-discard-msi-arriving",
        ),
        (
            Removal::Unmap,
            "its-race-unmap-pending-elsewhere",
            "its-race-unmap-active-elsewhere",
            "its-race-unmap-msi-arriving",
        ),
    ];
    for (removal, pending, active, msi_arriving) in races {
        if let (Removal::Unmap, true) = (removal, super::bare_metal()) {
            for name in [pending, active] {
                println!(
                    "{name}: skipped (QEMU's ITS leaves an unmapped device's LPIs pending: its MAPD V=0 only rewrites the device table entry)"
                );
            }
        } else {
            report.check(pending, remove_while_pending(removal));
            report.check(active, remove_while_active(removal));
        }
        if msi_device {
            report.check(msi_arriving, remove_while_msis_arrive(removal));
        } else {
            println!(
                "{msi_arriving}: skipped (no MSI test device: it is the hypervisor's msi-device component)"
            );
        }
    }
    report.check("its-race-movi-pending", move_while_pending(Move::Movi));
    report.check("its-race-movall-pending", move_while_pending(Move::Movall));
}

/// Reads GITS_TYPER, IIDR and the BASERs, gives the device and collection tables one
/// 64 KiB page each and checks they read back so, sets up the command queue, enables the
/// ITS, and points every redistributor at the LPI tables (LPIs still disabled).
fn init_and_introspect() -> Outcome {
    let its_type = its_read64(reg::TYPER);
    if its_type & typer::PHYSICAL == 0 {
        return fail!("GITS_TYPER {its_type:#x}: no physical LPIs");
    }
    if typer::physical_target_addresses(its_type) {
        return fail!("GITS_TYPER.PTA = 1: this guest targets processor numbers");
    }
    let entry = typer::itt_entry_size(its_type);
    if !(3..=16).contains(&entry) || typer::event_id_bits(its_type) < 8 || typer::device_id_bits(its_type) < 2
    {
        return fail!("GITS_TYPER {its_type:#x}: ITT entry size, EventID or DeviceID bits too small");
    }
    if (ITT_BYTES as u64) < u64::from(BULK_EVENTS) * entry {
        return fail!("ITT entries of {entry} bytes do not fit");
    }
    if its_read(reg::IIDR) == 0 {
        return fail!("GITS_IIDR reads 0");
    }
    if its_read(reg::CTLR) & reg::CTLR_ENABLED != 0 {
        return fail!("the ITS is enabled at boot");
    }
    let (mut devices, mut collections) = (false, false);
    for n in 0..8 {
        let offset = reg::BASER + 8 * n;
        let current = its_read64(offset);
        let table = match baser::table_type(current) {
            baser::TYPE_NONE => continue,
            baser::TYPE_DEVICES if !devices => address(&raw const DEVICE_TABLE),
            baser::TYPE_COLLECTIONS if !collections => address(&raw const COLLECTION_TABLE),
            other => return fail!("GITS_BASER{n}: type {other} not used by this guest"),
        };
        its_write64(offset, baser::one_page(current, table));
        let written = its_read64(offset);
        if written & baser::VALID == 0 || written & baser::PAGE_SIZE_MASK != baser::PAGE_SIZE_64K {
            return fail!("GITS_BASER{n} reads {written:#x} after a 64 KiB page");
        }
        let entries = baser::PAGE_64K / baser::entry_size(written);
        if baser::table_type(written) == baser::TYPE_DEVICES {
            devices = true;
            if entries < DEVICES as u64 {
                return fail!("device table entries of {} bytes", baser::entry_size(written));
            }
        } else {
            collections = true;
        }
    }
    if !devices || !collections {
        return fail!("no device table ({devices}) or collection table ({collections})");
    }
    its_write64(reg::CBASER, cbaser(address(&raw const QUEUE), QUEUE_PAGES));
    its_write64(reg::CWRITER, 0);
    its_write(reg::CTLR, reg::CTLR_ENABLED);
    expect_eq("GITS_CTLR.Enabled", 1, (its_read(reg::CTLR) & reg::CTLR_ENABLED).into())?;
    let properties = address(&raw const PROPERTIES);
    for cpu in 0..CPUS {
        let pending = pending_table(cpu);
        gic::gicr_write64(cpu, gicr::PROPBASER, properties | u64::from(LPI_ID_BITS - 1));
        gic::gicr_write64(cpu, gicr::PENDBASER, pending);
        if gic::gicr_read(cpu, gicr::CTLR) & gicr::CTLR_ENABLE_LPIS != 0 {
            return fail!("vCPU {cpu}: LPIs enabled at boot");
        }
    }
    let maps: [Command; CPUS] =
        core::array::from_fn(|cpu| Command::mapc(cpu as u16, gic::processor_number(cpu), true));
    submit(&maps)?;
    submit(&sync_all())
}

/// Enables LPIs at vCPU `cpu`'s redistributor.
fn enable_lpis(cpu: usize) {
    let control = gic::gicr_read(cpu, gicr::CTLR);
    gic::gicr_write(cpu, gicr::CTLR, control | gicr::CTLR_ENABLE_LPIS);
}

/// 256 LPIs mapped half to collection 1 and half to collection 2, their bits set in
/// vCPU 1's and vCPU 2's pending tables while LPIs are disabled there: EnableLPIs makes
/// them pending, and 128 arrive on each, each once. Then every vCPU gets LPIs enabled.
fn pending_tables_at_enable() -> Outcome {
    let itt = itt(BULK_DEVICE);
    submit(&[Command::mapd(BULK_DEVICE, 8, itt, true)])?;
    // In batches: the boot stack (16 KiB) holds one batch, not all 256 commands.
    for first in (0..BULK_EVENTS).step_by(32) {
        let maps: [Command; 32] = core::array::from_fn(|i| {
            let event = first + i as u32;
            let lpi = FIRST_LPI + event;
            let cpu = if event < BULK_EVENTS / 2 { 1 } else { 2 };
            configure_lpi(lpi, true);
            set_pending_bit(cpu, lpi);
            Command::mapti(BULK_DEVICE, event, lpi, cpu as u16)
        });
        submit(&maps)?;
    }
    submit(&sync_all())?;
    let before: [PerCpu; BULK_EVENTS as usize] =
        core::array::from_fn(|i| gic::deliveries(FIRST_LPI + i as u32));
    aarch64_cpu::asm::barrier::dsb(aarch64_cpu::asm::barrier::SY);
    enable_lpis(1);
    enable_lpis(2);
    let all = || {
        (0..BULK_EVENTS)
            .all(|i| gic::deliveries_since(FIRST_LPI + i, before[i as usize]).iter().sum::<u32>() >= 1)
    };
    let arrived = wait_for(all);
    gic::settle();
    enable_lpis(0);
    enable_lpis(3);
    if !arrived {
        let count = (0..BULK_EVENTS)
            .filter(|&i| gic::deliveries_since(FIRST_LPI + i, before[i as usize]).iter().sum::<u32>() >= 1)
            .count();
        return fail!("{count} of {BULK_EVENTS} LPIs arrived");
    }
    for event in 0..BULK_EVENTS {
        let expected = if event < BULK_EVENTS / 2 { [0, 1, 0, 0] } else { [0, 0, 1, 0] };
        expect_per_cpu(
            "a pending-table LPI",
            expected,
            gic::deliveries_since(FIRST_LPI + event, before[event as usize]),
        )?;
    }
    Ok(())
}

/// [`DEVICE`]'s event 0 becomes [`LPI`] in collection 3: INT delivers it on vCPU 3
/// only, once per INT.
fn int_to_target_only() -> Outcome {
    let itt = itt(DEVICE);
    configure_lpi(LPI, true);
    configure_lpi(MOVALL_LPI, true);
    submit(&[Command::mapd(DEVICE, 4, itt, true), Command::mapti(DEVICE, 0, LPI, 3)])?;
    for _ in 0..3 {
        let before = gic::deliveries(LPI);
        submit(&[Command::int(DEVICE, 0), Command::sync(gic::processor_number(3))])?;
        gic::expect_deliveries(LPI, before, [0, 0, 0, 1])?;
    }
    Ok(())
}

fn msi_device_read(offset: u64) -> u32 {
    // SAFETY: the MSI test device's register page is at MSI_DEVICE_BASE in this VM (the
    // caller checked it exists); `offset` is one of its 32-bit registers.
    unsafe { mmio::read32(MSI_DEVICE_BASE + offset) }
}

fn msi_device_write(offset: u64, value: u32) {
    // SAFETY: as in `msi_device_read`.
    unsafe { mmio::write32(MSI_DEVICE_BASE + offset, value) }
}

/// Has the MSI test device send `count` MSIs with EventIDs from `first`; returns how many
/// the ITS delivered and dropped.
fn send_msis(first: u32, count: u32) -> (u32, u32) {
    let (delivered, dropped) = (msi_device_read(MSI_DELIVERED), msi_device_read(MSI_DROPPED));
    msi_device_write(MSI_FIRST_EVENT, first);
    msi_device_write(MSI_SEND, count);
    (msi_device_read(MSI_DELIVERED) - delivered, msi_device_read(MSI_DROPPED) - dropped)
}

/// The MSI test device end to end: MAPD/MAPTI for its DeviceID spread over the vCPUs'
/// collections, then bursts of MSIs with chosen EventIDs, each LPI delivered exactly once
/// to its target vCPU; an EventID not mapped is dropped and delivers nothing.
fn msi_device_bursts() -> Outcome {
    expect_eq("the MSI test device's ID", MSI_ID_VALUE.into(), msi_device_read(MSI_ID).into())?;
    let maps: [Command; MSI_EVENTS as usize] = core::array::from_fn(|event| {
        let event = event as u32;
        configure_lpi(MSI_FIRST_LPI + event, true);
        Command::mapti(MSI_DEVICE, event, MSI_FIRST_LPI + event, (event % CPUS as u32) as u16)
    });
    submit(&[Command::mapd(MSI_DEVICE, 4, itt(MSI_DEVICE), true)])?;
    submit(&maps)?;
    submit(&sync_all())?;
    // Every event, then EventIDs 2..5 again.
    for (first, count) in [(0, MSI_EVENTS), (2, 4)] {
        let before: [PerCpu; MSI_EVENTS as usize] =
            core::array::from_fn(|event| gic::deliveries(MSI_FIRST_LPI + event as u32));
        let (delivered, dropped) = send_msis(first, count);
        if (delivered, dropped) != (count, 0) {
            return fail!("burst of {count} from EventID {first}: {delivered} delivered, {dropped} dropped");
        }
        for event in 0..MSI_EVENTS {
            let sent = (first..first + count).contains(&event);
            let expected: PerCpu =
                core::array::from_fn(|cpu| u32::from(sent && cpu == (event as usize) % CPUS));
            gic::expect_deliveries(MSI_FIRST_LPI + event, before[event as usize], expected)?;
        }
    }
    let (delivered, dropped) = send_msis(MSI_EVENTS, 1);
    if (delivered, dropped) != (0, 1) {
        return fail!("an unmapped EventID: {delivered} delivered, {dropped} dropped");
    }
    Ok(())
}

/// Disabled in the configuration table and INV: INT leaves it pending, undelivered;
/// enabled again and INVALL: it arrives, once.
fn disable_inv_enable_invall() -> Outcome {
    configure_lpi(LPI, false);
    let before = gic::deliveries(LPI);
    submit(&[Command::inv(DEVICE, 0), Command::int(DEVICE, 0), Command::sync(gic::processor_number(3))])?;
    gic::expect_deliveries(LPI, before, [0; CPUS])?;
    configure_lpi(LPI, true);
    submit(&[Command::invall(3), Command::sync(gic::processor_number(3))])?;
    gic::expect_deliveries(LPI, before, [0, 0, 0, 1])
}

/// MOVI to collection 0: INT delivers on vCPU 0.
fn movi() -> Outcome {
    let before = gic::deliveries(LPI);
    submit(&[Command::movi(DEVICE, 0, 0), Command::int(DEVICE, 0), Command::sync(gic::processor_number(0))])?;
    gic::expect_deliveries(LPI, before, [1, 0, 0, 0])
}

/// CLEAR removes the pending state of a disabled LPI: enabling it delivers nothing.
fn clear() -> Outcome {
    configure_lpi(LPI, false);
    let before = gic::deliveries(LPI);
    submit(&[Command::inv(DEVICE, 0), Command::int(DEVICE, 0), Command::clear(DEVICE, 0)])?;
    configure_lpi(LPI, true);
    submit(&[Command::inv(DEVICE, 0), Command::sync(gic::processor_number(0))])?;
    gic::expect_deliveries(LPI, before, [0; CPUS])
}

/// A disabled LPI pending on vCPU 1, MOVALL to vCPU 2 (and its collection remapped
/// there): once enabled it arrives on vCPU 2 only.
fn movall() -> Outcome {
    let (from, to) = (gic::processor_number(1), gic::processor_number(2));
    configure_lpi(MOVALL_LPI, false);
    let before = gic::deliveries(MOVALL_LPI);
    submit(&[Command::mapti(DEVICE, 1, MOVALL_LPI, 1), Command::inv(DEVICE, 1), Command::int(DEVICE, 1)])?;
    submit(&[Command::sync(from)])?;
    gic::expect_deliveries(MOVALL_LPI, before, [0; CPUS])?;
    submit(&[Command::movall(from, to), Command::mapc(1, to, true), Command::sync(to)])?;
    configure_lpi(MOVALL_LPI, true);
    submit(&[Command::inv(DEVICE, 1), Command::sync(to)])?;
    let outcome = gic::expect_deliveries(MOVALL_LPI, before, [0, 0, 1, 0]);
    submit(&[Command::mapc(1, from, true), Command::sync(from)])?;
    outcome
}

/// A disabled, pending LPI is discarded: enabling its configuration delivers nothing,
/// and INT on the discarded event (a command error) delivers nothing either; mapped
/// again (MAPTI), the event delivers once per INT.
fn discard() -> Outcome {
    configure_lpi(LPI, false);
    let before = gic::deliveries(LPI);
    submit(&[Command::inv(DEVICE, 0), Command::int(DEVICE, 0), Command::discard(DEVICE, 0)])?;
    configure_lpi(LPI, true);
    submit_tolerating_stalls(&[Command::invall(0), Command::int(DEVICE, 0)])?;
    submit(&sync_all())?;
    gic::expect_deliveries(LPI, before, [0; CPUS])?;
    let processor = gic::processor_number(0);
    submit(&[Command::mapti(DEVICE, 0, LPI, 0), Command::int(DEVICE, 0), Command::sync(processor)])?;
    gic::expect_deliveries(LPI, before, [1, 0, 0, 0])
}

/// A device that delivers, then MAPD V=0: INT delivers nothing and the queue goes on.
fn mapd_unmap() -> Outcome {
    let itt = itt(UNMAPPED_DEVICE);
    configure_lpi(UNMAPPED_LPI, true);
    let before = gic::deliveries(UNMAPPED_LPI);
    submit(&[
        Command::mapd(UNMAPPED_DEVICE, 2, itt, true),
        Command::mapti(UNMAPPED_DEVICE, 0, UNMAPPED_LPI, 0),
        Command::int(UNMAPPED_DEVICE, 0),
        Command::sync(gic::processor_number(0)),
    ])?;
    gic::expect_deliveries(UNMAPPED_LPI, before, [1, 0, 0, 0])?;
    submit(&[Command::mapd(UNMAPPED_DEVICE, 2, itt, false)])?;
    submit_tolerating_stalls(&[Command::int(UNMAPPED_DEVICE, 0)])?;
    submit(&sync_all())?;
    gic::expect_deliveries(UNMAPPED_LPI, before, [1, 0, 0, 0])
}

/// Batches that go past the end of the one-page queue, wrapping CWRITER and CREADR
/// around several times, all complete; an INT after them is delivered once.
fn queue_wrap_around() -> Outcome {
    let start = WRITE_OFFSET.load(Ordering::Relaxed);
    let mut wraps = 0;
    for _ in 0..5 {
        let before = WRITE_OFFSET.load(Ordering::Relaxed);
        let batch = [Command::sync(gic::processor_number(0)); 100];
        submit(&batch)?;
        if WRITE_OFFSET.load(Ordering::Relaxed) < before {
            wraps += 1;
        }
    }
    if wraps < 3 {
        return fail!("only {wraps} wrap-arounds from offset {start:#x}");
    }
    let before = gic::deliveries(LPI);
    submit(&[Command::int(DEVICE, 0), Command::sync(gic::processor_number(0))])?;
    gic::expect_deliveries(LPI, before, [1, 0, 0, 0])
}

/// Malformed commands (an unknown number, DeviceIDs and collections out of range, an
/// ITT larger than the ITS supports, INT on a device never mapped, an LPI number below
/// 8192) are ignored or stall; either way the queue drains and a valid INT after them
/// is delivered once.
fn malformed_commands() -> Outcome {
    let before = gic::deliveries(LPI);
    let malformed = [
        Command([0x3f, 0, 0, 0]),
        Command::mapd(u32::MAX, 4, 0, true),
        Command::mapd(DEVICE + 8, 32, 0, true),
        Command::mapc(u16::MAX, 0, true),
        Command::mapti(DEVICE, 5, 40, 0),
        Command::int(7, 0),
        Command::mapc(0, 0xffff, true),
    ];
    submit_tolerating_stalls(&malformed)?;
    let processor = gic::processor_number(0);
    submit(&[Command::mapc(0, processor, true), Command::int(DEVICE, 0), Command::sync(processor)])?;
    gic::expect_deliveries(LPI, before, [1, 0, 0, 0])
}

/// How a race check takes an event's translation away.
#[derive(Clone, Copy)]
enum Removal {
    /// DISCARD of the event.
    Discard,
    /// MAPD V=0 of its device.
    Unmap,
}

impl Removal {
    /// The command removing `device`'s [`RACE_EVENT`] (mapped with [`RACE_EVENT_BITS`]).
    fn command(self, device: u32) -> Command {
        match self {
            Self::Discard => Command::discard(device, RACE_EVENT),
            Self::Unmap => Command::mapd(device, RACE_EVENT_BITS, itt(device), false),
        }
    }
}

/// How far [`HOLDER`] has got holding [`RACE_LPI`] (the values go up as it gets on).
static HOLD: AtomicU32 = AtomicU32::new(HOLD_IDLE);
/// [`HOLD`]: nothing held yet.
const HOLD_IDLE: u32 = 0;
/// [`HOLD`]: IRQs masked, waiting for the LPI to be pending at its CPU interface.
const HOLD_MASKED: u32 = 1;
/// [`HOLD`]: the LPI is the highest pending interrupt there (ICC_HPPIR1_EL1).
const HOLD_PENDING: u32 = 2;
/// [`HOLD`]: it did not become pending there.
const HOLD_MISSED: u32 = 3;
/// [`HOLD`]: the handler acknowledged it and keeps it active.
const HOLD_ACTIVE: u32 = 4;
/// [`HOLD`]: the handler ended it.
const HOLD_ENDED: u32 = 5;
/// Set by vCPU 0: [`HOLDER`] may unmask IRQs, or end the interrupt.
static RELEASE: AtomicBool = AtomicBool::new(false);
/// Set by vCPU 0 while [`MSI_SENDER`] should go on sending MSIs.
static SENDING: AtomicBool = AtomicBool::new(false);
/// MSIs [`MSI_SENDER`] has sent in the current MSI race.
static MSIS_SENT: AtomicU32 = AtomicU32::new(0);

/// [`HOLDER`]'s task: with IRQs masked, waits until [`RACE_LPI`] is pending at its CPU
/// interface, then until [`RELEASE`], then unmasks (taking whatever is still pending).
fn hold_pending() {
    gic::mask_irqs();
    HOLD.store(HOLD_MASKED, Ordering::Release);
    let pending = wait_for(|| gic::highest_pending() == RACE_LPI);
    HOLD.store(if pending { HOLD_PENDING } else { HOLD_MISSED }, Ordering::Release);
    wait_for(|| RELEASE.load(Ordering::Acquire));
    gic::unmask_irqs();
}

/// The hook of [`RACE_LPI`]'s handler on [`HOLDER`]: keeps it active until [`RELEASE`].
fn hold_active() {
    HOLD.store(HOLD_ACTIVE, Ordering::Release);
    wait_for(|| RELEASE.load(Ordering::Acquire));
    HOLD.store(HOLD_ENDED, Ordering::Release);
}

/// Waits until [`HOLDER`] has reached `state` (the states go up in order) and demands
/// that it is there.
fn expect_hold(state: u32, what: &str) -> Outcome {
    wait_for(|| HOLD.load(Ordering::Acquire) >= state);
    let reached = HOLD.load(Ordering::Acquire);
    if reached == state { Ok(()) } else { fail!("vCPU {HOLDER}: never {what} (hold state {reached})") }
}

/// (Re)maps [`RACE_DEVICE`] and its [`RACE_EVENT`] to [`RACE_LPI`] on [`HOLDER`].
fn map_race_lpi() -> Outcome {
    configure_lpi_at(RACE_LPI, RACE_PRIORITY, true);
    submit(&[
        Command::mapd(RACE_DEVICE, RACE_EVENT_BITS, itt(RACE_DEVICE), true),
        Command::mapti(RACE_DEVICE, RACE_EVENT, RACE_LPI, HOLDER as u16),
        Command::sync(gic::processor_number(HOLDER)),
    ])
}

/// INT of [`RACE_EVENT`] and a SYNC on [`HOLDER`].
fn raise_race_lpi() -> Outcome {
    submit(&[Command::int(RACE_DEVICE, RACE_EVENT), Command::sync(gic::processor_number(HOLDER))])
}

/// [`RACE_LPI`] is made pending on [`HOLDER`], which has IRQs masked and sees it at its
/// CPU interface (in a list register, under the hypervisor); then vCPU 0 runs `race`
/// (given the deliveries before), then [`HOLDER`] unmasks; then the deliveries since must
/// be `expected`.
fn race_while_pending(race: impl FnOnce(PerCpu) -> Outcome, expected: PerCpu) -> Outcome {
    map_race_lpi()?;
    let before = gic::deliveries(RACE_LPI);
    HOLD.store(HOLD_IDLE, Ordering::Release);
    RELEASE.store(false, Ordering::Release);
    let ticket = post(HOLDER, hold_pending);
    let raced = expect_hold(HOLD_MASKED, "masked IRQs")
        .and_then(|()| raise_race_lpi())
        .and_then(|()| expect_hold(HOLD_PENDING, "saw the LPI pending"))
        .and_then(|()| race(before));
    RELEASE.store(true, Ordering::Release);
    wait_task(HOLDER, ticket)?;
    raced?;
    gic::expect_deliveries(RACE_LPI, before, expected)
}

/// DISCARD or MAPD V=0 (then SYNC) while [`RACE_LPI`] is pending at [`HOLDER`]'s CPU
/// interface with IRQs masked there: once they are unmasked it is not delivered (the
/// command completed before). After a DISCARD, [`RACE_EVENT`] mapped again (MAPTI) to a
/// new LPI delivers that one, once, and INT never brings back the old one.
fn remove_while_pending(removal: Removal) -> Outcome {
    let remove = |_| submit(&[removal.command(RACE_DEVICE), Command::sync(gic::processor_number(HOLDER))]);
    race_while_pending(remove, [0; CPUS])?;
    if let Removal::Unmap = removal {
        return Ok(());
    }
    configure_lpi(REMAPPED_LPI, true);
    let (old, new) = (gic::deliveries(RACE_LPI), gic::deliveries(REMAPPED_LPI));
    let processor = gic::processor_number(0);
    submit(&[
        Command::mapti(RACE_DEVICE, RACE_EVENT, REMAPPED_LPI, 0),
        Command::int(RACE_DEVICE, RACE_EVENT),
        Command::sync(processor),
    ])?;
    gic::expect_deliveries(REMAPPED_LPI, new, [1, 0, 0, 0])?;
    gic::expect_deliveries(RACE_LPI, old, [0; CPUS])
}

/// [`RACE_LPI`] active on [`HOLDER`] (its handler holds it before the EOI) and pending
/// again by a second INT; DISCARD or MAPD V=0 (then SYNC); then the handler ends it: it
/// was delivered exactly once, and the pending second INT never arrives.
fn remove_while_active(removal: Removal) -> Outcome {
    map_race_lpi()?;
    let before = gic::deliveries(RACE_LPI);
    HOLD.store(HOLD_IDLE, Ordering::Release);
    RELEASE.store(false, Ordering::Release);
    gic::set_hook(RACE_LPI, hold_active);
    let raced = raise_race_lpi()
        .and_then(|()| expect_hold(HOLD_ACTIVE, "took the LPI"))
        .and_then(|()| raise_race_lpi())
        .and_then(|()| submit(&[removal.command(RACE_DEVICE), Command::sync(gic::processor_number(HOLDER))]));
    RELEASE.store(true, Ordering::Release);
    let ended = wait_for(|| HOLD.load(Ordering::Acquire) != HOLD_ACTIVE);
    gic::clear_hook();
    raced?;
    if !ended {
        return fail!("vCPU {HOLDER}: the handler did not end the LPI");
    }
    gic::expect_deliveries(RACE_LPI, before, [0, 1, 0, 0])
}

/// [`MSI_SENDER`]'s task: MSIs for [`MSI_DEVICE`]'s [`RACE_EVENT`], one per SEND, while
/// [`SENDING`].
fn send_msis_while_sending() {
    while SENDING.load(Ordering::Acquire) {
        send_msis(RACE_EVENT, 1);
        MSIS_SENT.store(MSIS_SENT.load(Ordering::Relaxed) + 1, Ordering::Release);
    }
}

/// [`MSI_DEVICE`] mapped (again), its [`RACE_EVENT`] raising [`MSI_FIRST_LPI`] on vCPU 0.
fn map_msi_race_event() -> Outcome {
    submit(&[
        Command::mapd(MSI_DEVICE, RACE_EVENT_BITS, itt(MSI_DEVICE), true),
        Command::mapti(MSI_DEVICE, RACE_EVENT, MSI_FIRST_LPI, 0),
        Command::sync(gic::processor_number(0)),
    ])
}

/// MSIs for [`MSI_DEVICE`]'s [`RACE_EVENT`] ([`MSI_FIRST_LPI`] on vCPU 0) arrive from the
/// MSI test device, sent by [`MSI_SENDER`], while vCPU 0 (with IRQs masked, once one is
/// pending at its CPU interface) issues DISCARD or MAPD V=0 and a SYNC:
/// once unmasked, no delivery comes after the SYNC completed, the device sees later MSIs
/// dropped, and every delivery was on vCPU 0.
fn remove_while_msis_arrive(removal: Removal) -> Outcome {
    map_msi_race_event()?;
    let lpi = MSI_FIRST_LPI;
    let before = gic::deliveries(lpi);
    let dropped = msi_device_read(MSI_DROPPED);
    MSIS_SENT.store(0, Ordering::Release);
    SENDING.store(true, Ordering::Release);
    let ticket = post(MSI_SENDER, send_msis_while_sending);
    let raced = (|| {
        if !wait_for(|| gic::deliveries_since(lpi, before)[0] >= 1) {
            return fail!("no MSI delivered before the removal");
        }
        gic::mask_irqs();
        let held = wait_for(|| gic::highest_pending() == lpi);
        let removed = submit(&[removal.command(MSI_DEVICE), Command::sync(gic::processor_number(0))]);
        let at_completion = gic::deliveries_since(lpi, before);
        let sent = MSIS_SENT.load(Ordering::Acquire);
        gic::unmask_irqs();
        if !held {
            return fail!("no MSI pending at vCPU 0 (IRQs masked) when the removal was issued");
        }
        removed?;
        if !wait_for(|| MSIS_SENT.load(Ordering::Acquire) >= sent + MSIS_AFTER_REMOVAL) {
            return fail!("the MSI device stopped sending");
        }
        gic::settle();
        expect_per_cpu("deliveries (after the SYNC: none)", at_completion, gic::deliveries_since(lpi, before))
    })();
    SENDING.store(false, Ordering::Release);
    wait_task(MSI_SENDER, ticket)?;
    raced?;
    let delivered = gic::deliveries_since(lpi, before);
    if delivered[1..].iter().any(|&count| count != 0) {
        return expect_per_cpu("deliveries (vCPU 0 only)", [delivered[0], 0, 0, 0], delivered);
    }
    let dropped = msi_device_read(MSI_DROPPED) - dropped;
    if dropped < MSIS_AFTER_REMOVAL {
        return fail!("{dropped} MSIs dropped after the removal");
    }
    map_msi_race_event()
}

/// How a race check moves [`RACE_LPI`] off [`HOLDER`].
#[derive(Clone, Copy)]
enum Move {
    /// MOVI of [`RACE_EVENT`] to collection 2.
    Movi,
    /// MOVALL from [`HOLDER`]'s redistributor to vCPU 2's.
    Movall,
}

/// MOVI or MOVALL (then SYNC) to vCPU 2 while [`RACE_LPI`] is pending at [`HOLDER`]'s CPU
/// interface with IRQs masked there: it is delivered on vCPU 2 while [`HOLDER`] still
/// masks IRQs, and exactly once: never on [`HOLDER`] once it unmasks.
fn move_while_pending(how: Move) -> Outcome {
    const NEW_TARGET: usize = 2;
    let to = gic::processor_number(NEW_TARGET);
    let command = match how {
        Move::Movi => Command::movi(RACE_DEVICE, RACE_EVENT, NEW_TARGET as u16),
        Move::Movall => Command::movall(gic::processor_number(HOLDER), to),
    };
    let race = |before| {
        submit(&[command, Command::sync(to)])?;
        if !wait_for(|| gic::deliveries_since(RACE_LPI, before)[NEW_TARGET] >= 1) {
            return fail!("not delivered on vCPU {NEW_TARGET} while vCPU {HOLDER} masked IRQs");
        }
        Ok(())
    };
    race_while_pending(race, [0, 0, 1, 0])
}

/// INTs and MSIs timed for `its-int-to-handler` and `its-msi-to-handler`.
const BENCH_INTS: u32 = 50;
/// Commands per timed batch (`its-command-*`).
const BENCH_BATCH: usize = 100;
/// The device whose commands are timed one kind per batch: events 0..[`BENCH_BATCH`],
/// mapped to LPIs from [`BENCH_FIRST_LPI`].
const BENCH_DEVICE: u32 = 4;
/// LPIs of [`BENCH_DEVICE`]'s events: disabled in the configuration table (never written
/// for them), so an INT leaves them pending and nothing is delivered.
const BENCH_FIRST_LPI: u32 = FIRST_LPI + 1024;
/// A command on one of [`BENCH_DEVICE`]'s events, by EventID.
type EventCommand = fn(u32) -> Command;
/// MSIs the MSI test device sends per SEND write in the MSI stress (its most).
const MSI_BURST: u32 = 64;

/// The ITS figures, after the checks, in virtual nanoseconds (system-wide instructions
/// under `-icount shift=0`; the other vCPUs wait in WFI):
/// - `its-int-to-handler`: one INT from the CWRITER write to the target's acknowledge
///   ([`DEVICE`]'s event 0, [`LPI`] on vCPU 0);
/// - `its-msi-to-handler` (with the MSI test device, `msi_device`): one MSI from the
///   device's SEND write to the target's acknowledge ([`MSI_DEVICE`]'s event 0, on vCPU 0);
/// - `its-lpi-stress-per-lpi`: in the shape of KVM's vgic_lpi_stress, 2 vCPUs x 1 device x
///   256 events: an INT for each of [`BULK_DEVICE`]'s 256 events (128 on vCPU 1, 128 on
///   vCPU 2) from the first CWRITER write until every one was acknowledged, per LPI;
/// - `its-msi-stress-per-lpi` (with the MSI test device): the same shape with MSIs, the
///   MSI test device (one DeviceID) remapped to 256 events on the same LPIs and vCPUs,
///   from the first register write until every one was acknowledged, per LPI;
/// - `its-command-<kind>`: a batch of [`BENCH_BATCH`] commands of one kind from the
///   CWRITER write until CREADR passed them, per command (SYNC; then MAPTI, INV, INT, MOVI
///   and DISCARD on [`BENCH_DEVICE`]'s disabled LPIs).
pub(super) fn bench(msi_device: bool) {
    if let Err(detail) = bench_figures(msi_device) {
        println!("bench: {}", detail.as_str());
    }
}

/// The virtual nanoseconds in `ticks` of the virtual counter.
fn virtual_nanoseconds(ticks: u64) -> u64 {
    guest_test::nanoseconds(aarch64_cpu::registers::CNTFRQ_EL0.get(), ticks)
}

/// Prints `bench <key> <figure>`.
fn print_figure(key: &str, figure: u64) {
    println!("bench {key} {figure}");
}

/// The figures of [`bench`]; the first failure ends them.
fn bench_figures(msi_device: bool) -> Outcome {
    let per_int = to_handler(LPI, || enqueue(&[Command::int(DEVICE, 0)]))?;
    if !matches!(drain(), Drained::Done) {
        return fail!("the ITS queue did not drain");
    }
    print_figure("its-int-to-handler", per_int);
    if msi_device {
        msi_device_write(MSI_FIRST_EVENT, 0);
        print_figure("its-msi-to-handler", to_handler(MSI_FIRST_LPI, || msi_device_write(MSI_SEND, 1))?);
    }

    let per_int = stress(|| {
        // In batches that fit the stack and the queue; the ITS runs each while the next is
        // written.
        for first in (0..BULK_EVENTS).step_by(32) {
            let ints: [Command; 32] = core::array::from_fn(|i| Command::int(BULK_DEVICE, first + i as u32));
            submit(&ints)?;
        }
        Ok(())
    })?;
    print_figure("its-lpi-stress-per-lpi", per_int);
    if msi_device {
        print_figure("its-msi-stress-per-lpi", msi_stress()?);
    }

    let sync = [Command::sync(gic::processor_number(0)); BENCH_BATCH];
    print_figure("its-command-sync", per_command(&sync)?);
    submit(&[Command::mapd(BENCH_DEVICE, 8, itt(BENCH_DEVICE), true)])?;
    let batch = |command: EventCommand| -> [Command; BENCH_BATCH] {
        core::array::from_fn(|event| command(event as u32))
    };
    let kinds: [(&str, EventCommand); 5] = [
        ("its-command-mapti", |event| Command::mapti(BENCH_DEVICE, event, BENCH_FIRST_LPI + event, 0)),
        ("its-command-inv", |event| Command::inv(BENCH_DEVICE, event)),
        ("its-command-int", |event| Command::int(BENCH_DEVICE, event)),
        ("its-command-movi", |event| Command::movi(BENCH_DEVICE, event, 1)),
        ("its-command-discard", |event| Command::discard(BENCH_DEVICE, event)),
    ];
    for (key, command) in kinds {
        print_figure(key, per_command(&batch(command))?);
    }
    submit(&[Command::mapd(BENCH_DEVICE, 8, itt(BENCH_DEVICE), false)])?;
    submit(&sync_all())
}

/// [`BENCH_INTS`] times: `send` makes `lpi` (targeting vCPU 0) pending; the mean virtual
/// nanoseconds from just before `send` to vCPU 0's acknowledge.
fn to_handler(lpi: u32, mut send: impl FnMut()) -> Result<u64, guest_test::Text> {
    let mut total = 0;
    for _ in 0..BENCH_INTS {
        let before = gic::deliveries(lpi)[0];
        let start = super::now_ticks();
        send();
        if !wait_for(|| gic::deliveries(lpi)[0] > before) {
            return fail!("LPI {lpi} did not arrive");
        }
        total += gic::last_acknowledged(0) - start;
    }
    Ok(virtual_nanoseconds(total) / u64::from(BENCH_INTS))
}

/// The LPI stress: `send` makes each of the LPIs [`FIRST_LPI`]..+[`BULK_EVENTS`] pending
/// once (the first half targeting vCPU 1, the second vCPU 2, as [`pending_tables_at_enable`]
/// mapped them); the virtual nanoseconds from just before `send` until the last of them
/// was acknowledged, per LPI.
fn stress(send: impl FnOnce() -> Outcome) -> Result<u64, guest_test::Text> {
    let before: [PerCpu; BULK_EVENTS as usize] =
        core::array::from_fn(|i| gic::deliveries(FIRST_LPI + i as u32));
    let start = super::now_ticks();
    send()?;
    let all = || {
        (0..BULK_EVENTS)
            .all(|i| gic::deliveries_since(FIRST_LPI + i, before[i as usize]).iter().sum::<u32>() >= 1)
    };
    if !wait_for(all) {
        return fail!("not every LPI of the stress arrived");
    }
    let last = [1, 2].map(gic::last_acknowledged).into_iter().max().unwrap_or(start);
    Ok(virtual_nanoseconds(last - start) / u64::from(BULK_EVENTS))
}

/// The LPI stress with MSIs: [`BULK_DEVICE`] unmapped, the MSI test device remapped (MAPD
/// V=1 discards its events) with 256 events raising the stress's LPIs on the same vCPUs,
/// then bursts of [`MSI_BURST`] MSIs from its register page.
fn msi_stress() -> Result<u64, guest_test::Text> {
    submit(&[
        Command::mapd(BULK_DEVICE, 8, itt(BULK_DEVICE), false),
        Command::mapd(MSI_DEVICE, 8, itt(MSI_DEVICE), true),
    ])?;
    for first in (0..BULK_EVENTS).step_by(32) {
        let maps: [Command; 32] = core::array::from_fn(|i| {
            let event = first + i as u32;
            let cpu = if event < BULK_EVENTS / 2 { 1 } else { 2 };
            Command::mapti(MSI_DEVICE, event, FIRST_LPI + event, cpu)
        });
        submit(&maps)?;
    }
    submit(&sync_all())?;
    stress(|| {
        for first in (0..BULK_EVENTS).step_by(MSI_BURST as usize) {
            let (delivered, dropped) = send_msis(first, MSI_BURST);
            if (delivered, dropped) != (MSI_BURST, 0) {
                return fail!("burst from EventID {first}: {delivered} delivered, {dropped} dropped");
            }
        }
        Ok(())
    })
}

/// Runs `commands` (one batch, valid); the virtual nanoseconds from the CWRITER write until
/// CREADR passed them, per command.
fn per_command(commands: &[Command]) -> Result<u64, guest_test::Text> {
    let start = super::now_ticks();
    submit(commands)?;
    Ok(virtual_nanoseconds(super::now_ticks() - start) / commands.len() as u64)
}
