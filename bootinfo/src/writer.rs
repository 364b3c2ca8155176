//! Builds a blob: add strings and records, then [`Builder::finish`].

use crate::{
    Cap, Endpoint, Header, Irq, MAGIC, Mapping, Notification, Range, Route, StrRef, Table, Tcb, VSpace, Vcpu,
    Vm,
};
use alloc::vec::Vec;
use zerocopy::IntoBytes;

/// Accumulates records; strings go right after the header so their offsets are final at once.
#[derive(Default)]
pub struct Builder {
    /// Header fields the caller sets (nonce, RAM, CPUs, time slice, name); magic, sizes and
    /// table locations are filled in by [`Builder::finish`].
    pub header: Header,
    strings: Vec<u8>,
    tcbs: Vec<Tcb>,
    endpoints: Vec<Endpoint>,
    notifications: Vec<Notification>,
    vspaces: Vec<VSpace>,
    mappings: Vec<Mapping>,
    caps: Vec<Cap>,
    irqs: Vec<Irq>,
    zero_ranges: Vec<Range>,
    vms: Vec<Vm>,
    vcpus: Vec<Vcpu>,
    routes: Vec<Route>,
}

fn index(len: usize) -> u32 {
    u32::try_from(len).expect("more than 2^32 records")
}

impl Builder {
    /// An empty blob.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores `s` and returns its reference.
    pub fn string(&mut self, s: &str) -> StrRef {
        let offset = core::mem::size_of::<Header>() + self.strings.len();
        self.strings.extend_from_slice(s.as_bytes());
        StrRef { offset: index(offset), len: index(s.len()) }
    }

    /// Adds an address space with its mappings; returns its index.
    pub fn vspace(&mut self, asid: u16, mappings: &[Mapping]) -> u32 {
        // Until `finish`, `offset` holds the index of the first mapping record.
        let table = Table { offset: index(self.mappings.len()), count: index(mappings.len()) };
        self.mappings.extend_from_slice(mappings);
        self.vspaces.push(VSpace { mappings: table, asid, _reserved: [0; 6] });
        index(self.vspaces.len() - 1)
    }

    /// Adds a thread with its capability table (`tcb.caps` is filled in); returns its index.
    pub fn tcb(&mut self, mut tcb: Tcb, caps: &[Cap]) -> u32 {
        // Until `finish`, `offset` holds the index of the first cap record.
        tcb.caps = Table { offset: index(self.caps.len()), count: index(caps.len()) };
        self.caps.extend_from_slice(caps);
        self.tcbs.push(tcb);
        index(self.tcbs.len() - 1)
    }

    /// Adds an endpoint; returns its index.
    pub fn endpoint(&mut self, endpoint: Endpoint) -> u32 {
        self.endpoints.push(endpoint);
        index(self.endpoints.len() - 1)
    }

    /// Adds a notification; returns its index.
    pub fn notification(&mut self, notification: Notification) -> u32 {
        self.notifications.push(notification);
        index(self.notifications.len() - 1)
    }

    /// Adds an IRQ; returns its index.
    pub fn irq(&mut self, irq: Irq) -> u32 {
        self.irqs.push(irq);
        index(self.irqs.len() - 1)
    }

    /// Adds a VM with its vCPUs (their `vm` field is filled in), routes and stage-2
    /// mappings (`va` = IPA); returns its index. The first vCPU's global index is
    /// `vcpu_base`: a VCPU capability names vCPU `vcpu_base + index`.
    pub fn vm(&mut self, mut vm: Vm, vcpus: &[Vcpu], routes: &[Route], stage2: &[Mapping]) -> (u32, u32) {
        let vm_index = index(self.vms.len());
        let vcpu_base = index(self.vcpus.len());
        // Until `finish`, each `offset` holds the index of the first record.
        vm.vcpus = Table { offset: vcpu_base, count: index(vcpus.len()) };
        vm.routes = Table { offset: index(self.routes.len()), count: index(routes.len()) };
        vm.stage2 = Table { offset: index(self.mappings.len()), count: index(stage2.len()) };
        self.vcpus.extend(vcpus.iter().map(|vcpu| Vcpu { vm: vm_index, ..*vcpu }));
        self.routes.extend_from_slice(routes);
        self.mappings.extend_from_slice(stage2);
        self.vms.push(vm);
        (vm_index, vcpu_base)
    }

    /// Adds a physical range the kernel zeroes at boot.
    pub fn zero_range(&mut self, range: Range) {
        self.zero_ranges.push(range);
    }

    /// Lays out the blob and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let mut out = alloc::vec![0; core::mem::size_of::<Header>()];
        out.extend_from_slice(&self.strings);

        fn place<T: IntoBytes + zerocopy::Immutable>(out: &mut Vec<u8>, records: &[T]) -> Table {
            out.resize(out.len().next_multiple_of(8), 0);
            let table = Table { offset: index(out.len()), count: index(records.len()) };
            out.extend_from_slice(records.as_bytes());
            table
        }

        let record =
            |table: Table, size: usize, first: u32| index(table.offset as usize + first as usize * size);
        let header = &mut self.header;
        header.mappings = place(&mut out, &self.mappings);
        header.caps = place(&mut out, &self.caps);
        for vspace in &mut self.vspaces {
            vspace.mappings.offset =
                record(header.mappings, core::mem::size_of::<Mapping>(), vspace.mappings.offset);
        }
        for tcb in &mut self.tcbs {
            tcb.caps.offset = record(header.caps, core::mem::size_of::<Cap>(), tcb.caps.offset);
        }
        header.vcpus = place(&mut out, &self.vcpus);
        let routes = place(&mut out, &self.routes);
        for vm in &mut self.vms {
            vm.vcpus.offset = record(header.vcpus, core::mem::size_of::<Vcpu>(), vm.vcpus.offset);
            vm.routes.offset = record(routes, core::mem::size_of::<Route>(), vm.routes.offset);
            vm.stage2.offset = record(header.mappings, core::mem::size_of::<Mapping>(), vm.stage2.offset);
        }
        header.vms = place(&mut out, &self.vms);
        header.vspaces = place(&mut out, &self.vspaces);
        header.tcbs = place(&mut out, &self.tcbs);
        header.endpoints = place(&mut out, &self.endpoints);
        header.notifications = place(&mut out, &self.notifications);
        header.irqs = place(&mut out, &self.irqs);
        header.zero_ranges = place(&mut out, &self.zero_ranges);
        out.resize(out.len().next_multiple_of(8), 0);
        header.magic = MAGIC;
        header.total_size = out.len() as u64;
        out[..core::mem::size_of::<Header>()].copy_from_slice(header.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BootInfo, ParseError, cap_kind};
    use alloc::vec;

    /// Copies `bytes` into 8-byte-aligned storage, as the blob is in memory at boot.
    fn aligned(bytes: &[u8]) -> Vec<u64> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        words.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
        words
    }

    #[test]
    fn round_trips_every_table() {
        let mut builder = Builder::new();
        builder.header.nonce = 0x1234;
        builder.header.name = builder.string("demo");
        let name = builder.string("pinger");
        let mapping = Mapping { va: 0x40_0000, pa: 0x4100_0000, size: 0x2000, flags: 5, _reserved: 0 };
        let vspace = builder.vspace(1, &[mapping, mapping]);
        builder.endpoint(Endpoint { name });
        let cap = Cap { kind: cap_kind::ENDPOINT, rights: 4, _reserved: [0; 2], object: 0, badge: 7 };
        let tcb = builder.tcb(Tcb { name, vspace, priority: 3, ..Tcb::default() }, &[cap, Cap::default()]);
        let blob = builder.finish();
        let words = aligned(&blob);
        let info = BootInfo::parse(&words.as_bytes()[..blob.len()]).unwrap();

        assert_eq!(info.header().nonce, 0x1234);
        assert_eq!(info.string(info.header().name).unwrap(), "demo");
        let tcbs = info.tcbs().unwrap();
        assert_eq!(tcbs.len(), 1);
        assert_eq!(tcb, 0);
        assert_eq!(info.string(tcbs[0].name).unwrap(), "pinger");
        assert_eq!(info.caps(tcbs[0].caps).unwrap(), &[cap, Cap::default()]);
        let vspaces = info.vspaces().unwrap();
        assert_eq!(vspaces[0].asid, 1);
        let mappings = info.mappings(vspaces[0].mappings).unwrap();
        assert_eq!(mappings.len(), 2);
        assert_eq!(mappings[1].pa, 0x4100_0000);
        assert_eq!(info.endpoints().unwrap().len(), 1);
        assert!(info.irqs().unwrap().is_empty());
    }

    #[test]
    fn round_trips_vms_with_vcpus_routes_and_stage2() {
        let mut builder = Builder::new();
        let name = builder.string("guest");
        builder
            .vspace(1, &[Mapping { va: 0x40_0000, pa: 0x4100_0000, size: 0x1000, flags: 5, _reserved: 0 }]);
        let ram = Mapping { va: 0x4000_0000, pa: 0x5000_0000, size: 0x100_0000, flags: 7, _reserved: 0 };
        let route = Route { ipa: 0x0800_0000, size: 0x1_0000, endpoint: 2, _reserved: 0, badge: 9 };
        let vcpus =
            [Vcpu { index: 0, start_running: 1, ..Vcpu::default() }, Vcpu { index: 1, ..Vcpu::default() }];
        let vm = Vm { name, vmid: 1, ram_ipa: 0x4000_0000, ram_size: 0x100_0000, ..Vm::default() };
        assert_eq!(builder.vm(vm, &vcpus, &[route], &[ram]), (0, 0));
        let vm2 = Vm { name, vmid: 2, ..Vm::default() };
        assert_eq!(builder.vm(vm2, &vcpus[..1], &[], &[]), (1, 2));
        let blob = builder.finish();
        let words = aligned(&blob);
        let info = BootInfo::parse(&words.as_bytes()[..blob.len()]).unwrap();

        let vms = info.vms().unwrap();
        assert_eq!(vms.len(), 2);
        assert_eq!(info.string(vms[0].name).unwrap(), "guest");
        let first = info.vcpus(vms[0].vcpus).unwrap();
        assert_eq!((first.len(), first[1].index, first[1].vm), (2, 1, 0));
        assert_eq!(info.vcpus(vms[1].vcpus).unwrap()[0].vm, 1);
        assert_eq!(info.all_vcpus().unwrap().len(), 3);
        assert_eq!(info.routes(vms[0].routes).unwrap()[0].badge, 9);
        assert_eq!(info.mappings(vms[0].stage2).unwrap()[0].pa, 0x5000_0000);
        // Component mappings and stage-2 mappings share the table without mixing.
        assert_eq!(info.mappings(info.vspaces().unwrap()[0].mappings).unwrap()[0].pa, 0x4100_0000);
    }

    #[test]
    fn rejects_bad_magic_and_truncation() {
        let blob = Builder::new().finish();
        let mut words = aligned(&blob);
        assert!(BootInfo::parse(&words.as_bytes()[..blob.len()]).is_ok());
        assert_eq!(BootInfo::parse(&words.as_bytes()[..blob.len() - 8]).err(), Some(ParseError::Truncated));
        words[0] ^= 1;
        assert_eq!(BootInfo::parse(words.as_bytes()).err(), Some(ParseError::BadMagic));
    }

    #[test]
    fn blob_address_rounds_up_to_two_mebibytes() {
        assert_eq!(crate::blob_address(0x4010_0000), 0x4020_0000);
        assert_eq!(crate::blob_address(0x4020_0000), 0x4020_0000);
    }
}
