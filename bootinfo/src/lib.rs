//! bootinfo: the blob that `cargo xtask` generates from a system manifest and the kernel
//! reads once at boot to create every object. There is no other configuration channel.
//!
//! Layout: a [`Header`] at offset 0, the string area, then tables of fixed-size `#[repr(C)]` records that
//! the header locates with [`Table`]s (byte offset from the blob start and record count),
//! Component segments are separate pieces of the image. Every record derives
//! zerocopy's traits, so the writer is `IntoBytes` and the reader `FromBytes` with no
//! parsing code:
//!
//! ```ignore
//! let blob = BootInfo::parse(bytes)?;
//! for tcb in blob.tcbs()? { /* create the thread */ }
//! ```
//!
//! The blob is loaded at [`blob_address`] of the kernel's end: the first 2 MiB boundary
//! at or after the highest physical byte of the kernel image (including `.bss`).
//! Physical addresses in the records are absolute; xtask computes them knowing that rule.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(any(test, feature = "writer"))]
extern crate alloc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// First word of every blob: `b"HYPBOOT1"` little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"HYPBOOT1");
/// Alignment of the blob's load address.
pub const BLOB_ALIGN: u64 = 2 << 20;
/// Marks an absent optional index (`u32` fields).
pub const NONE: u32 = u32::MAX;
/// Most CPUs the kernel supports.
pub const MAX_CPUS: usize = 8;
/// Most threads in one system (the kernel's object arrays have this many slots).
pub const MAX_THREADS: usize = 64;
/// Most endpoints in one system.
pub const MAX_ENDPOINTS: usize = 128;
/// Most notifications in one system.
pub const MAX_NOTIFICATIONS: usize = 128;
/// Most IRQ handlers in one system.
pub const MAX_IRQS: usize = 64;
/// Most address spaces; ASIDs are 1..=MAX_VSPACES.
pub const MAX_VSPACES: usize = 64;
/// Most VMs in one system; VMIDs are 1..=MAX_VMS.
pub const MAX_VMS: usize = 8;
/// Most vCPUs in one system (all VMs together).
pub const MAX_VCPUS: usize = 32;

/// Physical address where the blob is loaded, given the end of the kernel image.
pub const fn blob_address(kernel_end: u64) -> u64 {
    kernel_end.div_ceil(BLOB_ALIGN) * BLOB_ALIGN
}

/// Location of an array of records inside the blob.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Table {
    /// Byte offset from the start of the blob.
    pub offset: u32,
    /// Number of records.
    pub count: u32,
}

/// A string in the blob's string area (UTF-8, no terminator).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct StrRef {
    /// Byte offset from the start of the blob.
    pub offset: u32,
    /// Length in bytes.
    pub len: u32,
}

/// Start of the blob.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: u64,
    /// Size of the whole blob in bytes.
    pub total_size: u64,
    /// Per-run value printed in the kernel's result line, so output that merely
    /// imitates the line cannot pass a test.
    pub nonce: u64,
    /// Physical RAM the kernel may use: base address.
    pub ram_base: u64,
    /// Physical RAM size in bytes.
    pub ram_size: u64,
    /// First physical byte not used by the kernel image, the blob or any region xtask
    /// placed: the kernel allocates page tables from here up to the end of RAM.
    pub free_base: u64,
    /// Number of CPUs to bring up (CPU 0 boots, the others by PSCI CPU_ON).
    pub cpu_count: u32,
    /// Round-robin time slice in microseconds.
    pub timeslice_us: u32,
    /// [`header_flags`] bits.
    pub flags: u32,
    /// Padding.
    pub _reserved: u32,
    /// System name, for the boot banner.
    pub name: StrRef,
    /// [`Tcb`] records.
    pub tcbs: Table,
    /// [`Endpoint`] records.
    pub endpoints: Table,
    /// [`Notification`] records.
    pub notifications: Table,
    /// [`VSpace`] records.
    pub vspaces: Table,
    /// [`Mapping`] records, grouped per vspace.
    pub mappings: Table,
    /// [`Cap`] records, grouped per thread.
    pub caps: Table,
    /// [`Irq`] records.
    pub irqs: Table,
    /// [`Range`] records: physical memory the kernel zeroes before anything runs.
    pub zero_ranges: Table,
    /// [`Vm`] records.
    pub vms: Table,
    /// [`Vcpu`] records of every VM, grouped per VM (a VCPU capability's `object`
    /// indexes this table).
    pub vcpus: Table,
}

/// System-wide options ([`Header::flags`]).
pub mod header_flags {
    /// Benchmark systems only: PMU event counter 0 counts retired instructions at EL0 and
    /// EL2, and EL0 may read it (PMUSERENR_EL0.ER). Off otherwise: the counters would let
    /// components observe each other.
    pub const PMU_FOR_COMPONENTS: u32 = 1;
}

/// A thread (a component's one thread), created runnable at boot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Tcb {
    /// Component name, used in log lines.
    pub name: StrRef,
    /// Scheduling priority: higher runs first (0..=255).
    pub priority: u8,
    /// CPU the thread is pinned to.
    pub cpu: u8,
    /// Padding.
    pub _reserved: [u8; 2],
    /// Index of its [`VSpace`].
    pub vspace: u32,
    /// Its capability table: a slice of the [`Cap`] records, slot `i` = record `offset+i`.
    pub caps: Table,
    /// Endpoint that receives this thread's faults, or [`NONE`]: then the console only.
    pub fault_endpoint: u32,
    /// Notification bound to this thread, or [`NONE`]: its `Recv` and `ReplyRecv` also
    /// return (label `ipc::NOTIFIED`) when that notification's word is non-zero.
    pub bound_notification: u32,
    /// Badge on fault messages.
    pub fault_badge: u64,
    /// Initial PC (EL0 virtual address).
    pub entry: u64,
    /// Initial SP_EL0.
    pub stack_top: u64,
    /// Physical address of its IPC buffer page (mapped in its vspace at the ipc layout's
    /// `IPC_BUFFER_VA`).
    pub ipc_buffer: u64,
}

/// An endpoint object; records exist so that its index is meaningful.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Endpoint {
    /// Name from the manifest.
    pub name: StrRef,
}

/// A notification object.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Notification {
    /// Name from the manifest.
    pub name: StrRef,
}

/// An EL0 address space.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VSpace {
    /// Its mappings: a slice of the [`Mapping`] records.
    pub mappings: Table,
    /// Address-space identifier (1..=255; 0 is the kernel's).
    pub asid: u16,
    /// Padding.
    pub _reserved: [u8; 6],
}

/// Mapping attribute bits ([`Mapping::flags`]).
pub mod map_flags {
    /// Readable at EL0.
    pub const READ: u32 = 1;
    /// Writable at EL0.
    pub const WRITE: u32 = 2;
    /// Executable at EL0.
    pub const EXECUTE: u32 = 4;
    /// Device-nGnRE memory (MMIO) instead of normal write-back cacheable memory.
    pub const DEVICE: u32 = 8;
}

/// One contiguous mapping of physical memory into a vspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Mapping {
    /// Virtual address, page aligned.
    pub va: u64,
    /// Physical address, page aligned.
    pub pa: u64,
    /// Size in bytes, a multiple of 4 KiB.
    pub size: u64,
    /// [`map_flags`] bits.
    pub flags: u32,
    /// Padding.
    pub _reserved: u32,
}

/// Kind of object a [`Cap`] names.
pub mod cap_kind {
    /// Empty slot.
    pub const NULL: u8 = 0;
    /// Endpoint: `object` indexes the endpoints.
    pub const ENDPOINT: u8 = 1;
    /// Notification: `object` indexes the notifications.
    pub const NOTIFICATION: u8 = 2;
    /// IRQ handler: `object` indexes the IRQs.
    pub const IRQ_HANDLER: u8 = 3;
    /// System control (result line and power off); `object` is unused.
    pub const CONTROL: u8 = 4;
    /// A guest vCPU: `object` indexes the vCPUs (all VMs).
    pub const VCPU: u8 = 5;
    /// The console: raw output (a guest's UART bytes, as written); `object` is unused.
    pub const CONSOLE: u8 = 6;
}

/// One capability slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Cap {
    /// A [`cap_kind`] value.
    pub kind: u8,
    /// Rights bits, per kind (see the ipc crate's `endpoint_rights`, `notification_rights`).
    pub rights: u8,
    /// Padding.
    pub _reserved: [u8; 2],
    /// Index of the object in its table.
    pub object: u32,
    /// Badge stamped on messages (endpoints) or ORed in by `Signal` (notifications).
    pub badge: u64,
}

/// A physical interrupt delivered to a notification.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Irq {
    /// Physical INTID (an SPI, 32..=1019).
    pub intid: u32,
    /// Notification it signals.
    pub notification: u32,
    /// Bits ORed into the notification word when it fires.
    pub badge: u64,
    /// 1 for edge-triggered, 0 for level-sensitive.
    pub edge: u8,
    /// CPU the interrupt is routed to.
    pub cpu: u8,
    /// Padding.
    pub _reserved: [u8; 6],
}

/// A physical address range.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Range {
    /// Base physical address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// A virtual machine: guest RAM behind stage-2 translation, its vCPUs and where its
/// traps go.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Vm {
    /// Name from the manifest.
    pub name: StrRef,
    /// Its [`Vcpu`] records: a slice of the vCPU table.
    pub vcpus: Table,
    /// Its [`Route`] records: guest-physical ranges whose faults go to an endpoint.
    pub routes: Table,
    /// Its stage-2 [`Mapping`] records (`va` holds the IPA): RAM and passed-through
    /// devices. Everything else faults to the routes or the unclaimed policy.
    pub stage2: Table,
    /// Virtual machine identifier (1..=MAX_VMS).
    pub vmid: u16,
    /// 1: an access nobody claims gets a data abort; 0: reads as zero, writes ignored.
    pub unclaimed_abort: u8,
    /// Padding.
    pub _reserved: [u8; 5],
    /// Endpoint for HVC, SMC and trapped system registers (the VMM's).
    pub fault_endpoint: u32,
    /// Endpoint of its vgic-server, or [`NONE`]: vGIC events and trapped SGI writes go
    /// there (`ipc::vcpu::VGIC_EVENT`, `ipc::vcpu::SYSREG`).
    pub vgic_endpoint: u32,
    /// Badge on those messages.
    pub fault_badge: u64,
    /// Guest-physical base of RAM.
    pub ram_ipa: u64,
    /// Size of RAM in bytes.
    pub ram_size: u64,
    /// Badge on the messages to `vgic_endpoint`.
    pub vgic_badge: u64,
}

/// A vCPU: a thread that runs guest code at EL1 instead of a component at EL0.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Vcpu {
    /// Index of its [`Vm`].
    pub vm: u32,
    /// Index within its VM (0 is the boot vCPU).
    pub index: u16,
    /// Scheduling priority.
    pub priority: u8,
    /// Physical CPU it is pinned to.
    pub cpu: u8,
    /// Its VMPIDR_EL2 value, equal to its device-tree `reg` (affinity fields).
    pub mpidr: u64,
    /// 1 if it starts running at boot (the boot vCPU), 0 if it waits for PSCI CPU_ON.
    pub start_running: u8,
    /// Padding.
    pub _reserved: [u8; 7],
    /// Initial PC (guest-physical; the MMU is off at entry).
    pub entry: u64,
    /// Initial x0 (the device tree's address for the boot vCPU).
    pub x0: u64,
}

/// A guest-physical range whose MMIO faults become messages to an endpoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Route {
    /// Guest-physical base.
    pub ipa: u64,
    /// Size in bytes.
    pub size: u64,
    /// Endpoint receiving the faults.
    pub endpoint: u32,
    /// Padding.
    pub _reserved: u32,
    /// Badge on those messages.
    pub badge: u64,
}

/// Why a blob was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than its header, or a table or string reaches past the end.
    Truncated,
    /// The first word is not [`MAGIC`].
    BadMagic,
    /// A table is misaligned for its record type.
    Misaligned,
    /// A string is not UTF-8.
    BadString,
}

/// A validated view of a blob.
#[derive(Clone, Copy)]
pub struct BootInfo<'a> {
    bytes: &'a [u8],
    header: &'a Header,
}

impl<'a> BootInfo<'a> {
    /// Checks the header and that `bytes` holds the whole blob.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let (header, _) = Header::ref_from_prefix(bytes).map_err(|_| ParseError::Truncated)?;
        if header.magic != MAGIC {
            return Err(ParseError::BadMagic);
        }
        if (bytes.len() as u64) < header.total_size {
            return Err(ParseError::Truncated);
        }
        Ok(Self { bytes, header })
    }

    /// The header.
    pub fn header(&self) -> &'a Header {
        self.header
    }

    fn table<T: FromBytes + Immutable + KnownLayout>(&self, table: Table) -> Result<&'a [T], ParseError> {
        let start = table.offset as usize;
        let len =
            (table.count as usize).checked_mul(core::mem::size_of::<T>()).ok_or(ParseError::Truncated)?;
        let bytes = self
            .bytes
            .get(start..start.checked_add(len).ok_or(ParseError::Truncated)?)
            .ok_or(ParseError::Truncated)?;
        <[T]>::ref_from_bytes(bytes).map_err(|_| ParseError::Misaligned)
    }

    /// The string `s` refers to.
    pub fn string(&self, s: StrRef) -> Result<&'a str, ParseError> {
        let start = s.offset as usize;
        let bytes = self.bytes.get(start..start + s.len as usize).ok_or(ParseError::Truncated)?;
        core::str::from_utf8(bytes).map_err(|_| ParseError::BadString)
    }

    /// The thread records.
    pub fn tcbs(&self) -> Result<&'a [Tcb], ParseError> {
        self.table(self.header.tcbs)
    }
    /// The endpoint records.
    pub fn endpoints(&self) -> Result<&'a [Endpoint], ParseError> {
        self.table(self.header.endpoints)
    }
    /// The notification records.
    pub fn notifications(&self) -> Result<&'a [Notification], ParseError> {
        self.table(self.header.notifications)
    }
    /// The address-space records.
    pub fn vspaces(&self) -> Result<&'a [VSpace], ParseError> {
        self.table(self.header.vspaces)
    }
    /// The mappings in `table` (a vspace's `mappings`).
    pub fn mappings(&self, table: Table) -> Result<&'a [Mapping], ParseError> {
        self.table(table)
    }
    /// The capability slots in `table` (a thread's `caps`).
    pub fn caps(&self, table: Table) -> Result<&'a [Cap], ParseError> {
        self.table(table)
    }
    /// The IRQ records.
    pub fn irqs(&self) -> Result<&'a [Irq], ParseError> {
        self.table(self.header.irqs)
    }
    /// The ranges to zero at boot.
    pub fn zero_ranges(&self) -> Result<&'a [Range], ParseError> {
        self.table(self.header.zero_ranges)
    }
    /// The VM records.
    pub fn vms(&self) -> Result<&'a [Vm], ParseError> {
        self.table(self.header.vms)
    }
    /// Every vCPU record (all VMs).
    pub fn all_vcpus(&self) -> Result<&'a [Vcpu], ParseError> {
        self.table(self.header.vcpus)
    }
    /// The vCPU records in `table` (a VM's `vcpus`).
    pub fn vcpus(&self, table: Table) -> Result<&'a [Vcpu], ParseError> {
        self.table(table)
    }
    /// The route records in `table` (a VM's `routes`).
    pub fn routes(&self, table: Table) -> Result<&'a [Route], ParseError> {
        self.table(table)
    }
}

/// Builds a blob in memory (used by xtask and by tests).
#[cfg(any(test, feature = "writer"))]
pub mod writer;
