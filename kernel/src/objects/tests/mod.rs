//! Host tests of the kernel core: systems built as boot-info blobs with the writer, run
//! on a fake platform whose IPC buffers live in host memory.

mod boot;
mod bound;
mod console;
mod errors;
mod fast_path;
mod faults;
mod messages;
mod notifications;
mod scheduling;
mod vcpus;

use super::{Kernel, ThreadId, ThreadState};
use crate::{LoadedElsewhere, Platform, VcpuId};
use bootinfo::writer::Builder;
use bootinfo::{BootInfo, Cap, Endpoint, Irq, Notification, Route, Tcb, Vcpu, Vm, cap_kind};
use ipc::vcpu::{GicSnapshot, LrWrite};
use ipc::{Error, IpcBuffer, Label, MAX_WORDS, MessageInfo, REGISTER_WORDS, Syscall};
use std::collections::HashMap;

/// Physical address of thread `index`'s IPC buffer in test systems.
fn ipc_buffer_pa(index: usize) -> u64 {
    0x10_0000 + 0x1000 * index as u64
}

/// Records what the kernel asked of the machine; IPC buffers are heap pages.
#[derive(Default)]
pub(super) struct FakePlatform {
    pub(super) kicks: Vec<usize>,
    pub(super) acks: Vec<u32>,
    pub(super) console: Vec<u8>,
    pub(super) shutdowns: Vec<(u64, u32)>,
    /// What `guest_wake_state` reports.
    pub(super) wake_state: crate::guest::WakeState,
    /// `set_wakeup` calls: (CPU, deadline).
    pub(super) wakeups: Vec<(usize, u64)>,
    /// Saved virtual CPU interface state and ICH_HCR_EL2 bits per vCPU.
    pub(super) gic: HashMap<u16, (GicSnapshot, u64)>,
    /// The vCPU whose state each CPU holds live, with its live interface state.
    pub(super) loaded: HashMap<usize, (u16, GicSnapshot)>,
    /// `stop_vcpus` calls: the CPUs interrupted.
    pub(super) stops: Vec<usize>,
    /// Physical address to page, each from `Box::into_raw`, freed on drop.
    pages: HashMap<u64, *mut IpcBuffer>,
}

impl FakePlatform {
    fn with_buffers(count: usize) -> Self {
        let mut platform = Self::default();
        for index in 0..count {
            let page = Box::new(IpcBuffer { words: [0; MAX_WORDS], debug: [0; ipc::MAX_DEBUG_BYTES] });
            platform.pages.insert(ipc_buffer_pa(index), Box::into_raw(page));
        }
        platform
    }

    /// The IPC buffer of thread `index`.
    pub(super) fn buffer(&mut self, index: usize) -> &mut IpcBuffer {
        // SAFETY: the page came from `Box::into_raw` and lives until `drop`; the kernel only
        // touches it inside calls that borrow this platform, so this borrow is unique.
        unsafe { &mut *self.pages[&ipc_buffer_pa(index)] }
    }

    /// The console output as lines.
    pub(super) fn lines(&self) -> Vec<String> {
        String::from_utf8(self.console.clone()).unwrap().lines().map(str::to_owned).collect()
    }
}

impl FakePlatform {
    /// Saves `vcpu`'s live state if `cpu` holds it; fails if another CPU does.
    fn fold(&mut self, cpu: usize, vcpu: VcpuId) -> Result<&mut (GicSnapshot, u64), LoadedElsewhere> {
        match self.loaded.get(&cpu) {
            Some(&(loaded, live)) if loaded == vcpu.0 => {
                self.loaded.remove(&cpu);
                self.gic.entry(vcpu.0).or_default().0 = live;
            }
            _ if self.loaded.values().any(|&(loaded, _)| loaded == vcpu.0) => return Err(LoadedElsewhere),
            _ => {}
        }
        Ok(self.gic.entry(vcpu.0).or_default())
    }
}

impl Drop for FakePlatform {
    fn drop(&mut self) {
        for &page in self.pages.values() {
            // SAFETY: every page came from `Box::into_raw` and is freed only here, once.
            drop(unsafe { Box::from_raw(page) });
        }
    }
}

impl Platform for FakePlatform {
    fn kick_cpu(&mut self, cpu: usize) {
        self.kicks.push(cpu);
    }
    fn irq_ack(&mut self, intid: u32) {
        self.acks.push(intid);
    }
    fn console_write(&mut self, bytes: &[u8]) {
        self.console.extend_from_slice(bytes);
    }
    fn phys_to_virt(&self, pa: u64) -> *mut u8 {
        self.pages[&pa].cast()
    }
    fn shutdown(&mut self, nonce: u64, status: u32) {
        self.shutdowns.push((nonce, status));
    }
    fn guest_wake_state(&mut self, _cpu: usize) -> crate::guest::WakeState {
        self.wake_state
    }
    fn set_wakeup(&mut self, cpu: usize, deadline: u64) {
        self.wakeups.push((cpu, deadline));
    }
    fn vcpu_gic_state(&mut self, cpu: usize, vcpu: VcpuId) -> Result<GicSnapshot, LoadedElsewhere> {
        Ok(self.fold(cpu, vcpu)?.0)
    }
    fn vcpu_event_snapshot(&mut self, cpu: usize, vcpu: VcpuId) -> GicSnapshot {
        match self.loaded.get(&cpu) {
            Some(&(loaded, live)) if loaded == vcpu.0 => live,
            _ => self.gic.get(&vcpu.0).map(|&(saved, _)| saved).unwrap_or_default(),
        }
    }
    fn stop_vcpus(&mut self, cpu: usize) {
        self.stops.push(cpu);
    }
    fn write_vcpu_lrs(&mut self, cpu: usize, vcpu: VcpuId, write: &LrWrite) -> Result<(), LoadedElsewhere> {
        let (saved, hcr) = self.fold(cpu, vcpu)?;
        saved.lrs = write.lrs;
        *hcr = write.hcr;
        Ok(())
    }
}

/// An endpoint capability.
pub(super) fn endpoint_cap(endpoint: u32, rights: u8, badge: u64) -> Cap {
    Cap { kind: cap_kind::ENDPOINT, rights, object: endpoint, badge, ..Cap::default() }
}

/// A notification capability.
pub(super) fn notification_cap(notification: u32, rights: u8, badge: u64) -> Cap {
    Cap { kind: cap_kind::NOTIFICATION, rights, object: notification, badge, ..Cap::default() }
}

/// A capability of another kind on `object`.
pub(super) fn cap_of(kind: u8, object: u32) -> Cap {
    Cap { kind, object, ..Cap::default() }
}

/// Endpoint rights to send, call and receive.
pub(super) const ALL_ENDPOINT_RIGHTS: u8 =
    ipc::endpoint_rights::SEND | ipc::endpoint_rights::CALL | ipc::endpoint_rights::RECV;
/// Notification rights to signal and wait.
pub(super) const ALL_NOTIFICATION_RIGHTS: u8 =
    ipc::notification_rights::SIGNAL | ipc::notification_rights::WAIT;

/// One thread of a test system.
#[derive(Clone)]
pub(super) struct ThreadSpec {
    pub(super) name: &'static str,
    /// Record template: priority, CPU, fault endpoint and so on (name, caps and the
    /// IPC buffer are filled in by [`System::blob`] unless the IPC buffer is set).
    pub(super) tcb: Tcb,
    pub(super) caps: Vec<Cap>,
}

/// A thread at `priority` on `cpu` holding `caps`.
pub(super) fn thread(name: &'static str, priority: u8, cpu: u8, caps: &[Cap]) -> ThreadSpec {
    ThreadSpec {
        name,
        tcb: Tcb {
            priority,
            cpu,
            fault_endpoint: bootinfo::NONE,
            bound_notification: bootinfo::NONE,
            ..Tcb::default()
        },
        caps: caps.to_vec(),
    }
}

/// One VM of a test system.
#[derive(Clone)]
pub(super) struct VmSpec {
    /// Record template: fault endpoint and badge, unclaimed policy (name and tables are
    /// filled in by [`System::blob`]).
    pub(super) vm: Vm,
    pub(super) vcpus: Vec<Vcpu>,
    pub(super) routes: Vec<Route>,
}

/// A test system: objects by count, threads in boot order, then VMs (whose vCPUs take
/// the thread slots after the threads').
#[derive(Clone)]
pub(super) struct System {
    pub(super) cpus: u32,
    pub(super) vspaces: usize,
    pub(super) endpoints: usize,
    pub(super) notifications: usize,
    pub(super) irqs: Vec<Irq>,
    pub(super) threads: Vec<ThreadSpec>,
    pub(super) vms: Vec<VmSpec>,
}

/// The nonce of every test system.
pub(super) const NONCE: u64 = 0x5eed_1234;

impl System {
    /// `cpus` CPUs, one vspace, `endpoints` endpoints and `notifications` notifications.
    pub(super) fn new(cpus: u32, endpoints: usize, notifications: usize) -> Self {
        Self {
            cpus,
            vspaces: 1,
            endpoints,
            notifications,
            irqs: Vec::new(),
            threads: Vec::new(),
            vms: Vec::new(),
        }
    }

    /// Adds a thread.
    pub(super) fn with(mut self, thread: ThreadSpec) -> Self {
        self.threads.push(thread);
        self
    }

    /// The blob, in 8-byte aligned memory that lives for the rest of the test run.
    pub(super) fn blob(&self) -> &'static [u8] {
        let mut builder = Builder::new();
        builder.header.nonce = NONCE;
        builder.header.cpu_count = self.cpus;
        builder.header.name = builder.string("test");
        for _ in 0..self.vspaces {
            builder.vspace(1, &[]);
        }
        for index in 0..self.endpoints {
            let name = builder.string(&format!("endpoint-{index}"));
            builder.endpoint(Endpoint { name });
        }
        for index in 0..self.notifications {
            let name = builder.string(&format!("notification-{index}"));
            builder.notification(Notification { name });
        }
        for irq in &self.irqs {
            builder.irq(*irq);
        }
        for (index, spec) in self.threads.iter().enumerate() {
            let name = builder.string(spec.name);
            let tcb = Tcb {
                name,
                entry: 0x40_0000 + 0x100 * index as u64,
                stack_top: ipc::layout::STACK_TOP,
                ipc_buffer: if spec.tcb.ipc_buffer == 0 { ipc_buffer_pa(index) } else { spec.tcb.ipc_buffer },
                ..spec.tcb
            };
            builder.tcb(tcb, &spec.caps);
        }
        for (index, spec) in self.vms.iter().enumerate() {
            let name = builder.string(&format!("vm{index}"));
            builder.vm(Vm { name, ..spec.vm }, &spec.vcpus, &spec.routes, &[]);
        }
        let bytes = builder.finish();
        let words: Vec<u64> = bytes
            .chunks(8)
            .map(|chunk| chunk.iter().rev().fold(0, |word, &byte| word << 8 | u64::from(byte)))
            .collect();
        let words: &'static [u64] = Vec::leak(words);
        // SAFETY: `words` is leaked, so the bytes live forever; a u64 slice is valid as
        // bytes, and `bytes.len()` is at most its size in bytes.
        unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), bytes.len()) }
    }

    /// The kernel's verdict on this system.
    pub(super) fn try_boot(&self) -> Result<Kernel<'static>, super::BootError> {
        Kernel::new(BootInfo::parse(self.blob()).expect("test blobs parse"))
    }

    /// Boots the system and schedules every CPU once, as the shell does at start.
    pub(super) fn boot(&self) -> Harness {
        let mut harness = Harness {
            kernel: self.try_boot().expect("test system boots"),
            platform: FakePlatform::with_buffers(self.threads.len()),
        };
        for cpu in 0..self.cpus as usize {
            harness.kernel.schedule(cpu);
        }
        harness
    }
}

/// A message as a thread saw it on return from a system call.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Received {
    pub(super) label: u32,
    pub(super) words: Vec<u64>,
    pub(super) badge: u64,
}

/// A booted kernel and its platform, driven like the shell drives them.
pub(super) struct Harness {
    pub(super) kernel: Kernel<'static>,
    pub(super) platform: FakePlatform,
}

impl Harness {
    /// The thread running on `cpu`.
    pub(super) fn current(&self, cpu: usize) -> Option<usize> {
        self.kernel.current(cpu).map(|thread| usize::from(thread.0))
    }

    /// Runs the scheduler on `cpu`.
    pub(super) fn schedule(&mut self, cpu: usize) -> Option<usize> {
        self.kernel.next_thread(cpu, &mut self.platform).map(|thread| usize::from(thread.0))
    }

    /// The state of thread `index`.
    pub(super) fn state(&self, index: usize) -> ThreadState {
        self.kernel.threads[index].state
    }

    /// Loads the syscall registers of `cpu`'s current thread; returns that thread.
    pub(super) fn load(&mut self, cpu: usize, syscall: u64, cap: u64, info: u64, words: [u64; 4]) -> usize {
        let caller = self.current(cpu).expect("a thread runs on this CPU");
        let x = &mut self.kernel.threads[caller].context.x;
        x[7] = syscall;
        x[0] = cap;
        x[1] = info;
        x[2..6].copy_from_slice(&words);
        // Garbage where the badge comes back, so a return that forgets it shows.
        x[6] = 0x6666;
        caller
    }

    /// Loads `message` into `cpu`'s current thread (words past 4 into its IPC buffer).
    pub(super) fn load_message(
        &mut self,
        cpu: usize,
        syscall: Syscall,
        cap: u32,
        label: u32,
        words: &[u64],
    ) -> usize {
        let info = MessageInfo::new(Label(label), words.len()).expect("test message fits");
        let mut registers = [0; REGISTER_WORDS];
        let in_registers = words.len().min(REGISTER_WORDS);
        registers[..in_registers].copy_from_slice(&words[..in_registers]);
        let caller = self.load(cpu, syscall as u64, cap.into(), info.raw(), registers);
        if words.len() > REGISTER_WORDS {
            self.platform.buffer(caller).words[REGISTER_WORDS..words.len()]
                .copy_from_slice(&words[REGISTER_WORDS..]);
        }
        caller
    }

    /// Enters the kernel for a system call on `cpu` and schedules `cpu` on the way out.
    pub(super) fn enter(&mut self, cpu: usize) {
        self.kernel.handle_syscall(cpu, &mut self.platform);
        self.schedule(cpu);
    }

    /// A system call without message from `cpu`'s current thread; returns the caller.
    pub(super) fn syscall(&mut self, cpu: usize, syscall: Syscall, cap: u32) -> usize {
        let caller = self.load(cpu, syscall as u64, cap.into(), 0, [0; 4]);
        self.enter(cpu);
        caller
    }

    /// A message system call from `cpu`'s current thread; returns the caller.
    pub(super) fn message(
        &mut self,
        cpu: usize,
        syscall: Syscall,
        cap: u32,
        label: u32,
        words: &[u64],
    ) -> usize {
        let caller = self.load_message(cpu, syscall, cap, label, words);
        self.enter(cpu);
        caller
    }

    /// The error code thread `index` got back (`Ok` for 0).
    pub(super) fn result(&self, index: usize) -> Result<(), Error> {
        Error::from_code(self.kernel.threads[index].context.x[0]).map_or(Ok(()), Err)
    }

    /// The message thread `index` got back, read as the EL0 wrappers read it.
    pub(super) fn received(&mut self, index: usize) -> Received {
        assert_eq!(self.result(index), Ok(()), "thread {index} got an error");
        let x = self.kernel.threads[index].context.x;
        let info = MessageInfo::from_raw(x[1]).expect("the kernel returns a valid MessageInfo");
        let mut words = x[2..2 + info.length().min(REGISTER_WORDS)].to_vec();
        words.extend_from_slice(
            &self.platform.buffer(index).words[REGISTER_WORDS.min(info.length())..info.length()],
        );
        Received { label: info.label().0, words, badge: x[6] }
    }

    /// The threads queued on `endpoint` and whether they are senders.
    pub(super) fn endpoint_queue(&self, endpoint: usize) -> (bool, Vec<usize>) {
        let (senders, queue) = self.kernel.endpoints[endpoint].queued(&self.kernel.links);
        (senders, queue.collect())
    }
}
