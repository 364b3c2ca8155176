//! vCPUs and VMs: a guest's traps become messages, replies become guest state.
//!
//! The shell calls [`Kernel::handle_vcpu_trap`] for every synchronous exception a guest
//! takes to EL2 (interrupts go through the usual paths). What happens:
//!
//! | trap | what the kernel does |
//! |---|---|
//! | load/store to an IPA in a route | `Call` to its endpoint, its badge: [`ipc::vcpu::MmioAccess`] |
//! | load/store to an IPA nobody claims | policy 0: reads return 0, writes ignored; 1: data abort |
//! | load/store without syndrome, on a table walk, permission or external fault | data abort injected |
//! | data cache maintenance on an unmapped IPA | completes, nothing else |
//! | instruction fetch from an unmapped IPA | instruction abort injected |
//! | HVC, SMC | `Call` to the VM's fault endpoint: [`ipc::vcpu::Call`] words, label `HVC`/`SMC` |
//! | MSR/MRS of a debug or PMU register | read as zero, write ignored |
//! | MSR ICC_SGI0R/SGI1R/ASGI1R_EL1, VM with a vgic endpoint | `Send` to it, its badge: [`ipc::vcpu::SysRegAccess`] words, PC advanced |
//! | other MSR/MRS | `Call` to the fault endpoint: [`ipc::vcpu::SysRegAccess`] words |
//! | WFI | sleeps while nothing is deliverable ([`guest::WakeState::wfi`]), or sends a vGIC event |
//! | WFE | ends the time slice |
//! | SError | a diagnostic line; the guest continues (no virtual SError yet) |
//! | anything else | undefined instruction injected |
//!
//! A forwarded trap blocks the vCPU like a `Call` (`BlockedSend`, then `BlockedReply`);
//! the server's reply (`Reply` or `ReplyRecv`, both with the fast path) finishes it:
//! label `RESUME` writes a read's value (word 0, as wide and extended as the instruction
//! says; register 31 is the zero register) or for HVC/SMC words 0..length (at most 4) into
//! x0..x3, and moves the PC past the instruction; `INJECT_DATA_ABORT` makes the guest take
//! a synchronous external abort at the access's address (an undefined instruction for
//! non-MMIO traps); `INJECT_UNDEFINED` (and any unknown label) an undefined instruction;
//! `STOP` stops the vCPU until `VCPU_START`. Without a fault endpoint, HVC, SMC and
//! forwarded system registers are undefined instructions.
//!
//! MMIO has a fast path ([`Kernel::fast_vcpu_trap`], which the shell tries first): an
//! access whose server waits on the vCPU's CPU and may run at once is handed over with
//! no scheduling decision left, and an unclaimed read-zero access whose line is not due
//! is answered with the vCPU going on; it declines everything else, changing nothing.
//! The vCPU keeps the trap's syndrome ([`Forwarded`]), from which the reply's `RESUME`
//! of an MMIO access finishes the instruction inline in the `ReplyRecv` fast path.
//!
//! Changes to EL1 state (an injected exception, the reset of `VCPU_START`) wait in the
//! vCPU as a [`VcpuRequest`] until the shell resumes it on its own CPU, where that state is
//! loaded: a reply may come from a server on another CPU. So does the `LOAD_LRS` answer
//! to a vGIC event ([`Kernel::take_vcpu_lrs`]).
//!
//! vGIC events: a physical interrupt for the vCPU ([`Kernel::vcpu_interrupt`]: the
//! maintenance interrupt, a timer PPI) or its WFI deadline makes a vGIC event *due* in a
//! VM with a vgic endpoint; [`Kernel::next_thread`] then makes the vCPU `Call` the vgic
//! endpoint with [`ipc::vcpu::VGIC_EVENT`] (its interface state now, its index) instead
//! of entering the guest. The reply `LOAD_LRS` loads its list registers and UIE/NPIE; any
//! other reply but `STOP` resumes it unchanged. `VCPU_SYNC` holds a vCPU (the scheduler
//! skips it, see `sched.rs`) and stops it by the shell's stop SGI when it is live on
//! another CPU; the caller waits in `BlockedSync` for [`Kernel::complete_syncs`] there.
//! `VCPU_STOP` stops a vCPU wherever it is, by the same SGI when it runs on another CPU
//! (`stop.rs`).
//!
//! Console lines about a guest are diagnostics, never errors, rate-limited per VM and
//! kind (unclaimed accesses; exceptions the kernel injects or drops on its own): the `n`th of a
//! kind is printed when `n` is a power of two.

mod stop;

use super::console::kernel_line;
use super::endpoint::{PendingSend, SendKind, write_buffer_words};
use super::queue::Link;
use super::syscall::VcpuReply;
use super::{Kernel, ThreadId, ThreadState, thread_id};
use crate::guest::{self, AbortCause, Exit, Injection, LoadExtension, MmioTrap, WfiOutcome};
use crate::{LoadedElsewhere, Platform, UserContext};
use core::fmt;
use ipc::{Label, MessageInfo, REGISTER_WORDS, vcpu as protocol};

/// A vCPU's index among all vCPUs (boot-info `all_vcpus` order, as VCPU capabilities
/// name them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuId(pub u16);

/// Work on a vCPU's EL1 state that the shell does when it next resumes the vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuRequest {
    /// Load the architected reset state (`VCPU_START`): EL1 system registers as out of
    /// reset (SCTLR_EL1 with the MMU and caches off), timers off, FP/SIMD zero.
    Reset,
    /// Make the guest take this exception now (see [`guest::take_exception`]).
    Inject(Injection),
}

/// The system-register encodings of ICC_SGI1R_EL1, ICC_ASGI1R_EL1 and ICC_SGI0R_EL1
/// (op0 3, op1 0, CRn 12, CRm 11, op2 5, 6, 7): writes go to the vgic-server.
const SGI_REGISTERS: [u16; 3] = [0xc65d, 0xc65e, 0xc65f];

/// Longest message a vCPU sends (HVC and SMC: x0..=x7 and the vCPU index; a vGIC event).
const MESSAGE_WORDS: usize = 9;
const _: () = assert!(protocol::VgicEvent::WORDS <= MESSAGE_WORDS);

/// The kind of trap a server handles for a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TrapKind {
    /// An MMIO load.
    Load,
    /// An MMIO store.
    Store,
    /// Nothing forwarded (a restarted vCPU).
    Nothing,
    /// HVC.
    Hvc,
    /// SMC.
    Smc,
    /// MRS.
    SysRegRead,
    /// MSR.
    SysRegWrite,
    /// A vGIC event (nothing to finish: the reply may load list registers).
    VgicEvent,
}

/// How to finish the instruction of a forwarded trap once its reply comes: its kind and
/// the trap's own syndrome, which says the rest (the register a load or MRS writes, how a
/// load extends, the instruction's length) and is decoded again on the reply. Storing it
/// is two words on the trap's fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Forwarded {
    kind: TrapKind,
    /// ESR_EL2 of the trap (0 for a vGIC event).
    syndrome: u64,
    /// An MMIO access's guest virtual address (for an injected abort).
    far: u64,
}

impl Forwarded {
    /// Nothing forwarded.
    const NOTHING: Self = Self { kind: TrapKind::Nothing, syndrome: 0, far: 0 };

    /// `trap`, of `kind`.
    const fn new(kind: TrapKind, trap: &guest::Trap) -> Self {
        Self { kind, syndrome: trap.esr, far: trap.far }
    }

    /// How far the PC moves on `RESUME`: past the instruction, except for an HVC (whose
    /// return address is past it already) and what is not an instruction.
    const fn advance(&self) -> u64 {
        match self.kind {
            TrapKind::Nothing | TrapKind::Hvc | TrapKind::VgicEvent => 0,
            _ => guest::instruction_length(self.syndrome),
        }
    }

    /// Whether it forwarded an MMIO access (a load or a store).
    #[inline(always)]
    const fn is_mmio(&self) -> bool {
        matches!(self.kind, TrapKind::Load | TrapKind::Store)
    }

    /// The MMIO access it forwarded (meaningful for `Load` and `Store`).
    #[inline(always)]
    const fn mmio(&self) -> MmioTrap {
        guest::mmio_fields(&guest::Trap { esr: self.syndrome, far: self.far, hpfar: 0 })
    }
}

/// What a diagnostic line is about (each kind is rate-limited on its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Diagnostic {
    /// An access nobody claims.
    Unclaimed = 0,
    /// A guest exception the kernel handles without a server (injected, or dropped).
    Exception = 1,
}

/// A VM: where its traps go.
pub(super) struct VmObject<'a> {
    /// Name from the manifest, for console lines.
    pub(super) name: &'a str,
    routes: &'a [bootinfo::Route],
    /// Endpoint for HVC, SMC and system registers, or `bootinfo::NONE`.
    fault_endpoint: u32,
    fault_badge: u64,
    /// Endpoint of its vgic-server (vGIC events, SGI writes), or `bootinfo::NONE`.
    vgic_endpoint: u32,
    vgic_badge: u64,
    /// Unclaimed accesses get a data abort (else reads return zero, writes are ignored).
    unclaimed_abort: bool,
    /// Diagnostics so far per [`Diagnostic`] kind, printed or not (for the rate limit).
    diagnostics: [u64; 2],
}

impl<'a> VmObject<'a> {
    /// An unused slot.
    pub(super) const UNUSED: VmObject<'static> = VmObject {
        name: "",
        routes: &[],
        fault_endpoint: bootinfo::NONE,
        fault_badge: 0,
        vgic_endpoint: bootinfo::NONE,
        vgic_badge: 0,
        unclaimed_abort: false,
        diagnostics: [0; 2],
    };

    /// The VM of boot-info record `vm` with its `routes` (references checked by the caller).
    pub(super) fn new(name: &'a str, vm: &bootinfo::Vm, routes: &'a [bootinfo::Route]) -> Self {
        Self {
            name,
            routes,
            fault_endpoint: vm.fault_endpoint,
            fault_badge: vm.fault_badge,
            vgic_endpoint: vm.vgic_endpoint,
            vgic_badge: vm.vgic_badge,
            unclaimed_abort: vm.unclaimed_abort != 0,
            diagnostics: [0; 2],
        }
    }
}

/// The guest side of a vCPU thread.
///
/// Aligned to a power of two, as [`Thread`](super::Thread) is, so that both fast paths of
/// a guest's MMIO access find it with a shift instead of a multiply.
#[repr(align(256))]
pub(super) struct VcpuObject<'a> {
    /// The trap a server is handling, while blocked on it.
    forwarded: Forwarded,
    /// Its VM's routes (a copy of [`VmObject`]'s, one load closer for the MMIO fast path).
    routes: &'a [bootinfo::Route],
    /// Index of its VM.
    vm: u8,
    /// Index within its VM (in messages and console lines).
    index: u16,
    /// EL1 work for the shell's next resume.
    request: Option<VcpuRequest>,
    /// While in WFI: the physical counter value to wake at, if any.
    wake_at: Option<u64>,
    /// The words of the message it sends (words past the length are stale).
    message: [u64; MESSAGE_WORDS],
    /// The caller of a `VCPU_SYNC` waiting for the vCPU's CPU to fold its state.
    sync_waiter: Link,
    /// The caller of a `VCPU_STOP` waiting for the vCPU's CPU to stop it (`stop.rs`).
    stop_waiter: Link,
    /// The `LOAD_LRS` answer to its last vGIC event, for the shell's next resume (kept
    /// apart from `request`, which an injected exception may hold at the same time).
    load_lrs: protocol::LrWrite,
    /// `load_lrs` waits to be loaded (a flag apart, so that the resume path tests a byte
    /// instead of moving an `Option` of the whole answer).
    lrs_due: bool,
}

impl<'a> VcpuObject<'a> {
    /// An unused slot.
    pub(super) const UNUSED: VcpuObject<'static> = VcpuObject {
        forwarded: Forwarded::NOTHING,
        routes: &[],
        vm: 0,
        index: 0,
        request: None,
        wake_at: None,
        message: [0; MESSAGE_WORDS],
        sync_waiter: Link::NONE,
        stop_waiter: Link::NONE,
        load_lrs: protocol::LrWrite { lrs: [0; protocol::LIST_REGISTERS], hcr: 0 },
        lrs_due: false,
    };

    /// The vCPU of boot-info record `record` in `vm` (its VM index checked by the
    /// caller).
    pub(super) fn new(record: &bootinfo::Vcpu, vm: &VmObject<'a>) -> Self {
        Self { routes: vm.routes, vm: record.vm as u8, index: record.index, ..Self::UNUSED }
    }

    /// The words of the message it sends (as many as its header says).
    pub(super) fn message(&self) -> &[u64; MESSAGE_WORDS] {
        &self.message
    }
}

/// General register `register` of a guest (31 reads as zero: XZR/WZR).
fn register(context: &UserContext, register: u8) -> u64 {
    context.x.get(usize::from(register)).copied().unwrap_or(0)
}

/// Sets general register `register` of a guest (31, the zero register, stays zero).
fn set_register(context: &mut UserContext, register: u8, value: u64) {
    if let Some(slot) = context.x.get_mut(usize::from(register)) {
        *slot = value;
    }
}

/// Moves a guest's PC `bytes` on, past the instruction that trapped (wrapping, as the
/// PC does).
fn skip(context: &mut UserContext, bytes: u64) {
    context.elr = context.elr.wrapping_add(bytes);
}

/// What [`Kernel::fast_vcpu_trap`] did with a guest's MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastTrap {
    /// The access went to `server`, which runs next with `registers` as its
    /// `x0..=x6` (its `ReplyRecv`'s result: success, the header, the words and the
    /// badge). Its saved context does not hold them: the shell's exit loads them from
    /// here, so that they go from the kernel to the server in registers only.
    Forwarded {
        /// The server's thread.
        server: ThreadId,
        /// Its `x0..=x6`.
        registers: [u64; MESSAGE_REGISTERS],
    },
    /// The kernel answered the access itself; this vCPU thread goes on.
    Answered(ThreadId),
}

/// The registers a message hands its receiver: `x0..=x6`.
pub const MESSAGE_REGISTERS: usize = 7;

/// A receiver's `x0..=x6` for a message with header `info`, `words` (zero past its
/// length) and `badge`: 0 for success, the header, the words, the badge.
#[inline(always)]
fn message_registers(
    info: MessageInfo,
    words: [u64; REGISTER_WORDS],
    badge: u64,
) -> [u64; MESSAGE_REGISTERS] {
    let [word0, word1, word2, word3] = words;
    [0, info.raw(), word0, word1, word2, word3, badge]
}

/// The kind of a forwarded MMIO access.
const fn mmio_kind(access: &MmioTrap) -> TrapKind {
    if access.write { TrapKind::Store } else { TrapKind::Load }
}

/// The header of an MMIO message ([`protocol::MmioAccess`]).
const MMIO_INFO: MessageInfo = guest_info(protocol::MMIO, 3);

/// The message header for `words` words with `label` (never more than the maximum).
#[inline(always)]
const fn guest_info(label: Label, words: usize) -> MessageInfo {
    MessageInfo::new(label, words).expect("vCPU messages are at most MESSAGE_WORDS long")
}

impl Kernel<'_> {
    /// The current thread of `cpu`, a vCPU, took a synchronous exception to EL2 with the
    /// syndrome `trap` (see the module docs for what follows).
    pub fn handle_vcpu_trap(&mut self, cpu: usize, trap: &guest::Trap, platform: &mut impl Platform) {
        let Some(thread) = self.cpus[cpu].current() else { return };
        let Some(vcpu) = self.threads[thread].vcpu.map(usize::from) else { return };
        let length = guest::instruction_length(trap.esr);
        match guest::decode(trap) {
            Exit::Mmio(access) => self.mmio(cpu, thread, vcpu, access, trap, platform),
            Exit::CacheMaintenance => skip(&mut self.threads[thread].context, length),
            Exit::UnhandledDataAbort { cause, ipa, far, write } => {
                let pc = self.threads[thread].context.elr;
                let what = match cause {
                    AbortCause::NoSyndrome => "access without instruction syndrome",
                    AbortCause::TableWalk => "stage-1 table walk",
                    AbortCause::Other => "access",
                };
                self.diagnostic(
                    vcpu,
                    Diagnostic::Exception,
                    platform,
                    format_args!("{what} at ipa {ipa:#x} pc {pc:#x}: data abort"),
                );
                self.vcpus[vcpu].request = Some(VcpuRequest::Inject(Injection::DataAbort { far, write }));
            }
            Exit::InstructionAbort { ipa, far } => {
                self.diagnostic(
                    vcpu,
                    Diagnostic::Exception,
                    platform,
                    format_args!("instruction fetch at ipa {ipa:#x}: abort"),
                );
                self.vcpus[vcpu].request = Some(VcpuRequest::Inject(Injection::InstructionAbort { far }));
            }
            Exit::Wfi => {
                skip(&mut self.threads[thread].context, length);
                self.wait_for_interrupt(cpu, thread, vcpu, platform);
            }
            Exit::Wfe => {
                skip(&mut self.threads[thread].context, length);
                self.timer_tick(cpu);
            }
            Exit::Hvc => self.forward_call(cpu, thread, vcpu, Forwarded::new(TrapKind::Hvc, trap), platform),
            Exit::Smc => self.forward_call(cpu, thread, vcpu, Forwarded::new(TrapKind::Smc, trap), platform),
            Exit::SysReg(access) if access.is_debug_or_pmu() => {
                let context = &mut self.threads[thread].context;
                if !access.write {
                    set_register(context, access.register, 0);
                }
                skip(context, length);
            }
            Exit::SysReg(access)
                if access.write && SGI_REGISTERS.contains(&access.encoding) && self.has_vgic(vcpu) =>
            {
                skip(&mut self.threads[thread].context, length);
                let message = protocol::SysRegAccess {
                    encoding: access.encoding,
                    write: true,
                    value: register(&self.threads[thread].context, access.register),
                    vcpu: self.vcpus[vcpu].index,
                };
                self.send_to_vgic(cpu, thread, vcpu, &message.words(), platform);
            }
            Exit::SysReg(access) => {
                let kind = if access.write { TrapKind::SysRegWrite } else { TrapKind::SysRegRead };
                let forwarded = Forwarded::new(kind, trap);
                let value = register(&self.threads[thread].context, access.register);
                let vcpu_index = self.vcpus[vcpu].index;
                let message = protocol::SysRegAccess {
                    encoding: access.encoding,
                    write: access.write,
                    value: if access.write { value } else { 0 },
                    vcpu: vcpu_index,
                };
                self.forward_to_fault_endpoint(
                    cpu,
                    thread,
                    vcpu,
                    protocol::SYSREG,
                    &message.words(),
                    forwarded,
                    platform,
                );
            }
            Exit::SError(syndrome) => {
                let pc = self.threads[thread].context.elr;
                self.diagnostic(
                    vcpu,
                    Diagnostic::Exception,
                    platform,
                    format_args!("SError (syndrome {syndrome:#x}) near pc {pc:#x}: dropped"),
                );
            }
            Exit::Other(class) => {
                let pc = self.threads[thread].context.elr;
                self.diagnostic(
                    vcpu,
                    Diagnostic::Exception,
                    platform,
                    format_args!("exception class {class:#x} at pc {pc:#x}: undefined"),
                );
                self.vcpus[vcpu].request = Some(VcpuRequest::Inject(Injection::Undefined));
            }
        }
        self.flush_kicks(platform);
    }

    /// An access to an unmapped IPA with a full syndrome: to its route, or the VM's
    /// unclaimed policy.
    fn mmio(
        &mut self,
        cpu: usize,
        thread: usize,
        vcpu: usize,
        access: MmioTrap,
        trap: &guest::Trap,
        platform: &mut impl Platform,
    ) {
        if let Some(route) = self.route(vcpu, access.ipa).copied() {
            let words = self.mmio_words(thread, vcpu, &access);
            let forwarded = Forwarded::new(mmio_kind(&access), trap);
            let endpoint = route.endpoint as usize;
            self.forward(
                cpu,
                thread,
                vcpu,
                endpoint,
                protocol::MMIO,
                &words,
                route.badge,
                forwarded,
                platform,
            );
            return;
        }
        let unclaimed_abort = self.vms[usize::from(self.vcpus[vcpu].vm)].unclaimed_abort;
        let direction = if access.write { "write" } else { "read" };
        let (ipa, size) = (access.ipa, access.size);
        if unclaimed_abort {
            self.diagnostic(
                vcpu,
                Diagnostic::Unclaimed,
                platform,
                format_args!("{direction} of {size} bytes at ipa {ipa:#x}: data abort"),
            );
            let injection = Injection::DataAbort { far: access.far, write: access.write };
            self.vcpus[vcpu].request = Some(VcpuRequest::Inject(injection));
            return;
        }
        let outcome = if access.write { "ignored" } else { "reads as zero" };
        self.diagnostic(
            vcpu,
            Diagnostic::Unclaimed,
            platform,
            format_args!("{direction} of {size} bytes at ipa {ipa:#x}: {outcome}"),
        );
        let context = &mut self.threads[thread].context;
        if !access.write {
            set_register(context, access.register, 0);
        }
        skip(context, guest::instruction_length(trap.esr));
    }

    /// The fast path of a guest's MMIO access, which the shell tries before
    /// [`Kernel::handle_vcpu_trap`] for every trap that [`guest::is_mmio_access`] accepts
    /// (a load or store with a full syndrome; `trap` must be one, the shell tests it
    /// first) by the current thread of `cpu`, a vCPU, when no reschedule is pending:
    ///
    /// - to an IPA in one of its VM's routes, whose server waits on `cpu` and may run at
    ///   once (as for the IPC fast path's `Call`): the access goes to that server in
    ///   registers, the vCPU waits for the reply, and the server is returned;
    /// - to an IPA nobody claims, in a VM whose policy reads zero, when the access's
    ///   diagnostic line is not due: a load reads zero, a store is ignored, and the vCPU,
    ///   returned, goes on.
    ///
    /// The thread returned is current on `cpu`: nothing is left for [`Kernel::schedule`]
    /// to decide. Anything else changes nothing and returns `None`. Either way the outcome
    /// is the one [`Kernel::handle_vcpu_trap`] would have, except that a forwarded
    /// message's registers are returned ([`FastTrap::Forwarded`]) instead of written into
    /// the server's saved context.
    #[inline(always)]
    pub fn fast_vcpu_trap(&mut self, cpu: usize, trap: &guest::Trap) -> Option<FastTrap> {
        debug_assert!(guest::is_mmio_access(trap.esr), "the shell passes MMIO accesses only");
        let access = guest::mmio_fields(trap);
        let state = &self.cpus[cpu];
        if state.reschedule_pending() {
            return None;
        }
        let thread = state.current()?;
        let vcpu = usize::from(self.threads[thread].vcpu?);
        // SAFETY: `Kernel::new` numbers the vCPU threads below the number of vCPUs, at most
        // `MAX_VCPUS`, and a thread's vCPU never changes. Telling the compiler spares the
        // fast path a bounds check.
        unsafe { core::hint::assert_unchecked(vcpu < bootinfo::MAX_VCPUS) };
        let Some(route) = self.route(vcpu, access.ipa).copied() else {
            return self.answer_unclaimed_at_once(thread, vcpu, &access, trap).map(FastTrap::Answered);
        };
        let endpoint = route.endpoint as usize;
        // SAFETY: `Kernel::new` checked every route's endpoint against the number of
        // endpoints, at most `MAX_ENDPOINTS`; routes never change.
        unsafe { core::hint::assert_unchecked(endpoint < bootinfo::MAX_ENDPOINTS) };
        let [ipa, flags, value] = self.mmio_words(thread, vcpu, &access);
        let receiver = self.take_fast_receiver(cpu, endpoint)?;
        self.vcpus[vcpu].forwarded = Forwarded::new(mmio_kind(&access), trap);
        self.hand_over_call(cpu, thread, receiver);
        let registers = message_registers(MMIO_INFO, [ipa, flags, value, 0], route.badge);
        Some(FastTrap::Forwarded { server: thread_id(receiver), registers })
    }

    /// [`Kernel::fast_vcpu_trap`] for an access nobody claims by `thread` (vCPU `vcpu`):
    /// answered here and `thread` returned, or `None` if the VM's policy is a data abort,
    /// its diagnostic line is due, or a vGIC event is.
    #[inline(always)]
    fn answer_unclaimed_at_once(
        &mut self,
        thread: usize,
        vcpu: usize,
        access: &MmioTrap,
        trap: &guest::Trap,
    ) -> Option<ThreadId> {
        let vm = &mut self.vms[usize::from(self.vcpus[vcpu].vm)];
        let count = &mut vm.diagnostics[Diagnostic::Unclaimed as usize];
        // `Kernel::diagnostic` prints the line when the count becomes a power of two.
        let next = *count + 1;
        if vm.unclaimed_abort || next.is_power_of_two() || self.threads[thread].vgic_event_due {
            return None;
        }
        *count = next;
        let context = &mut self.threads[thread].context;
        if !access.write {
            set_register(context, access.register, 0);
        }
        skip(context, guest::instruction_length(trap.esr));
        Some(thread_id(thread))
    }

    /// The route of vCPU `vcpu`'s VM that claims `ipa`, if any.
    #[inline(always)]
    fn route(&self, vcpu: usize, ipa: u64) -> Option<&bootinfo::Route> {
        self.vcpus[vcpu].routes.iter().find(|route| ipa.wrapping_sub(route.ipa) < route.size)
    }

    /// The words of the [`protocol::MmioAccess`] message for `access` by `thread` (vCPU
    /// `vcpu`): a store carries the bytes it stores.
    #[inline(always)]
    fn mmio_words(&self, thread: usize, vcpu: usize, access: &MmioTrap) -> [u64; 3] {
        let value = if access.write {
            let stored = register(&self.threads[thread].context, access.register);
            LoadExtension::new(access.size, false, true).apply(stored)
        } else {
            0
        };
        let message = protocol::MmioAccess {
            ipa: access.ipa,
            size: access.size,
            write: access.write,
            value,
            vcpu: self.vcpus[vcpu].index,
        };
        message.words()
    }

    /// HVC or SMC: x0..=x7 to the fault endpoint.
    fn forward_call(
        &mut self,
        cpu: usize,
        thread: usize,
        vcpu: usize,
        forwarded: Forwarded,
        platform: &mut impl Platform,
    ) {
        let context = &self.threads[thread].context;
        let mut x = [0; 8];
        x.copy_from_slice(&context.x[..8]);
        let call = protocol::Call { x, vcpu: self.vcpus[vcpu].index };
        let label = if forwarded.kind == TrapKind::Hvc { protocol::HVC } else { protocol::SMC };
        self.forward_to_fault_endpoint(cpu, thread, vcpu, label, &call.words(), forwarded, platform);
    }

    /// Sends `words` with `label` to the VM's fault endpoint, or makes the trapping
    /// instruction undefined if the VM has none.
    #[allow(clippy::too_many_arguments)] // One trap's worth of context; a struct would only rename them.
    fn forward_to_fault_endpoint(
        &mut self,
        cpu: usize,
        thread: usize,
        vcpu: usize,
        label: Label,
        words: &[u64],
        forwarded: Forwarded,
        platform: &mut impl Platform,
    ) {
        let vm = &self.vms[usize::from(self.vcpus[vcpu].vm)];
        let (endpoint, badge) = (vm.fault_endpoint, vm.fault_badge);
        if endpoint == bootinfo::NONE {
            let pc = self.threads[thread].context.elr;
            self.diagnostic(
                vcpu,
                Diagnostic::Exception,
                platform,
                format_args!("no fault endpoint for label {:#x} at pc {pc:#x}: undefined", label.0),
            );
            self.finish_forwarded(thread, vcpu, forwarded, protocol::INJECT_UNDEFINED, [0; 4], 0);
            return;
        }
        self.forward(cpu, thread, vcpu, endpoint as usize, label, words, badge, forwarded, platform);
    }

    /// Blocks `thread` (vCPU `vcpu`, current on `cpu`) in a `Call` of `words` with
    /// `label` and `badge` to `endpoint`. When the fast path's conditions hold, a message
    /// that fits in registers goes straight into the waiting server's registers, which
    /// then runs.
    #[allow(clippy::too_many_arguments)] // One trap's worth of context; a struct would only rename them.
    #[inline(always)]
    fn forward(
        &mut self,
        cpu: usize,
        thread: usize,
        vcpu: usize,
        endpoint: usize,
        label: Label,
        words: &[u64],
        badge: u64,
        forwarded: Forwarded,
        platform: &impl Platform,
    ) {
        self.vcpus[vcpu].forwarded = forwarded;
        let info = guest_info(label, words.len());
        if words.len() <= REGISTER_WORDS
            && !self.cpus[cpu].reschedule_pending()
            && let Some(receiver) = self.take_fast_receiver(cpu, endpoint)
        {
            let registers = core::array::from_fn(|index| words.get(index).copied().unwrap_or(0));
            self.hand_over_trap(cpu, thread, receiver, info, registers, badge);
            return;
        }
        self.vcpus[vcpu].message[..words.len()].copy_from_slice(words);
        let message = PendingSend { kind: SendKind::Guest, info, badge };
        if self.cpus[cpu].reschedule_pending() || !self.fast_call(cpu, thread, endpoint, message, platform) {
            self.send(cpu, thread, endpoint, message, platform);
        }
    }

    /// The end of a fast forward: `receiver`, taken from its endpoint by
    /// [`Kernel::take_fast_receiver`], gets the message `info` with `words` (zero past its
    /// length) and `badge` in its registers, `thread` (the current vCPU of `cpu`) waits
    /// for its reply, and `receiver` runs.
    #[inline(always)]
    fn hand_over_trap(
        &mut self,
        cpu: usize,
        thread: usize,
        receiver: usize,
        info: MessageInfo,
        words: [u64; REGISTER_WORDS],
        badge: u64,
    ) {
        let registers = message_registers(info, words, badge);
        self.threads[receiver].context.x[..MESSAGE_REGISTERS].copy_from_slice(&registers);
        self.hand_over_call(cpu, thread, receiver);
    }

    /// `thread`, a vCPU in `BlockedReply`, gets the answer `info` of `replier` (words in
    /// its registers, and for `LOAD_LRS` word 4 in its IPC buffer). Returns whether it
    /// runs again (anything but `STOP`).
    ///
    /// `RESUME` of an MMIO access, the common case, is inline here (a few instructions
    /// with what the trap worked out); everything else is out of line.
    #[inline(always)]
    pub(super) fn answer_vcpu(
        &mut self,
        platform: &impl Platform,
        replier: usize,
        thread: usize,
        info: MessageInfo,
        words: [u64; REGISTER_WORDS],
    ) -> bool {
        let vcpu = usize::from(self.threads[thread].vcpu.expect("only vCPUs wait for a trap's answer"));
        // SAFETY: as in `fast_vcpu_trap`: vCPU threads have indices below `MAX_VCPUS`.
        unsafe { core::hint::assert_unchecked(vcpu < bootinfo::MAX_VCPUS) };
        let forwarded = self.vcpus[vcpu].forwarded;
        if info.label() == protocol::RESUME && forwarded.is_mmio() {
            self.resume_mmio(thread, forwarded, info, words[0]);
            return true;
        }
        self.answer_vcpu_otherwise(platform, replier, thread, vcpu, info, words)
    }

    /// `RESUME` (header `info`, word 0 `value`) of `thread`'s MMIO access `forwarded`: a
    /// load's register gets the value as the instruction extends it, and the PC moves
    /// past the instruction.
    #[inline(always)]
    pub(super) fn resume_mmio(&mut self, thread: usize, forwarded: Forwarded, info: MessageInfo, value: u64) {
        let access = forwarded.mmio();
        let context = &mut self.threads[thread].context;
        if !access.write {
            let value = if info.length() > 0 { value } else { 0 };
            set_register(context, access.register, access.extension().apply(value));
        }
        skip(context, forwarded.advance());
    }

    /// The common case of [`Kernel::fast_reply_to_vcpu`], which makes no call: `RESUME`
    /// (header `info`, word 0 `value`) of an MMIO access, to a vCPU that the shell holds
    /// loaded on `cpu` (`loaded_here` of its index says so) and that needs no EL1 work to
    /// resume ([`Kernel::vcpu_resumes_plainly`]). Returns the vCPU's thread and index if it
    /// did; else nothing changed, and [`Kernel::fast_reply_to_vcpu`] decides.
    #[inline(always)]
    pub fn fast_resume_vcpu(
        &mut self,
        cpu: usize,
        reply: VcpuReply,
        info: u64,
        value: u64,
        loaded_here: impl FnOnce(u16) -> bool,
    ) -> Option<(ThreadId, VcpuId)> {
        let (caller, replier, endpoint) = reply.slots();
        let info = MessageInfo::from_raw(info)?;
        let target = &self.threads[caller];
        let vcpu = target.vcpu?;
        if info.label() != protocol::RESUME
            || target.held
            || target.vgic_event_due
            || !loaded_here(u16::from(vcpu))
        {
            return None;
        }
        // SAFETY: as in `fast_vcpu_trap`: vCPU threads have indices below `MAX_VCPUS`.
        unsafe { core::hint::assert_unchecked(usize::from(vcpu) < bootinfo::MAX_VCPUS) };
        let forwarded = self.vcpus[usize::from(vcpu)].forwarded;
        if !forwarded.is_mmio() || !self.vcpu_resumes_plainly(VcpuId(vcpu.into())) {
            return None;
        }
        self.finish_fast_reply(cpu, replier, caller, endpoint);
        self.resume_mmio(caller, forwarded, info, value);
        Some((thread_id(caller), VcpuId(vcpu.into())))
    }

    /// [`Kernel::answer_vcpu`] for anything but `RESUME` of an MMIO access.
    #[inline(never)]
    fn answer_vcpu_otherwise(
        &mut self,
        platform: &impl Platform,
        replier: usize,
        thread: usize,
        vcpu: usize,
        info: MessageInfo,
        words: [u64; REGISTER_WORDS],
    ) -> bool {
        let forwarded = self.vcpus[vcpu].forwarded;
        let (label, length) = (info.label(), info.length());
        if forwarded.kind == TrapKind::VgicEvent && label != protocol::STOP {
            self.answer_vgic_event(platform, replier, vcpu, info, words);
            return true;
        }
        let word = |index: usize| if index < length { words[index] } else { 0 };
        let words = [word(0), word(1), word(2), word(3)];
        self.finish_forwarded(thread, vcpu, forwarded, label, words, length)
    }

    /// vCPU `vcpu` gets the answer `info` of `replier` to its vGIC event: a well-formed
    /// `LOAD_LRS` is loaded when it resumes; anything else leaves its list registers.
    #[cold]
    #[inline(never)]
    fn answer_vgic_event(
        &mut self,
        platform: &impl Platform,
        replier: usize,
        vcpu: usize,
        info: MessageInfo,
        register_words: [u64; REGISTER_WORDS],
    ) {
        if info.label() != protocol::LOAD_LRS {
            return;
        }
        // The words past the registers are in the replier's IPC buffer; the first ones are
        // the replier's registers as the system call passed them.
        let Some(mut words) = self.message_words::<{ protocol::LrWrite::WORDS }>(replier, info, platform)
        else {
            return;
        };
        words[..REGISTER_WORDS].copy_from_slice(&register_words);
        if let Some(write) = protocol::LrWrite::from_words(&words) {
            self.vcpus[vcpu].load_lrs = write;
            self.vcpus[vcpu].lrs_due = true;
        }
    }

    /// Finishes the trapping instruction of `thread` (vCPU `vcpu`) as `label` says.
    #[inline]
    fn finish_forwarded(
        &mut self,
        thread: usize,
        vcpu: usize,
        forwarded: Forwarded,
        label: Label,
        words: [u64; 4],
        length: usize,
    ) -> bool {
        let context = &mut self.threads[thread].context;
        let injection = match (label, forwarded.kind) {
            (_, TrapKind::Nothing) => return true,
            (protocol::RESUME, kind) => {
                match kind {
                    TrapKind::Load => {
                        let access = forwarded.mmio();
                        set_register(context, access.register, access.extension().apply(words[0]))
                    }
                    TrapKind::SysRegRead => {
                        set_register(context, guest::sysreg_access(forwarded.syndrome).register, words[0])
                    }
                    TrapKind::Hvc | TrapKind::Smc => {
                        let count = length.min(words.len());
                        context.x[..count].copy_from_slice(&words[..count]);
                    }
                    _ => {}
                }
                skip(context, forwarded.advance());
                return true;
            }
            (protocol::STOP, _) => {
                self.threads[thread].state = ThreadState::Stopped;
                return false;
            }
            (protocol::INJECT_DATA_ABORT, TrapKind::Load | TrapKind::Store) => {
                Injection::DataAbort { far: forwarded.far, write: forwarded.kind == TrapKind::Store }
            }
            (_, TrapKind::Hvc) => {
                // The exception reports the HVC itself, whose address is 4 bytes back.
                context.elr = context.elr.wrapping_sub(4);
                Injection::Undefined
            }
            _ => Injection::Undefined,
        };
        self.vcpus[vcpu].request = Some(VcpuRequest::Inject(injection));
        true
    }

    /// WFI of `thread` (vCPU `vcpu`, current on `cpu`, PC already past it): sleeps while
    /// nothing is deliverable ([`guest::WakeState::wfi`]); a vGIC event due is sent first.
    fn wait_for_interrupt(&mut self, cpu: usize, thread: usize, vcpu: usize, platform: &mut impl Platform) {
        let vgic = self.has_vgic(vcpu);
        let outcome = if self.threads[thread].vgic_event_due {
            WfiOutcome::VgicEvent
        } else {
            platform.guest_wake_state(cpu).wfi(vgic)
        };
        let wake_at = match outcome {
            WfiOutcome::Continue => return,
            WfiOutcome::VgicEvent => {
                self.raise_vgic_event(cpu, thread, vcpu, platform);
                return;
            }
            WfiOutcome::SleepUntil(deadline) => {
                platform.set_wakeup(cpu, deadline);
                Some(deadline)
            }
            WfiOutcome::Sleep => None,
        };
        self.vcpus[vcpu].wake_at = wake_at;
        self.threads[thread].state = ThreadState::BlockedWfi;
        self.cpus[cpu].request_reschedule();
    }

    /// The kernel timer of `cpu` fired with the physical counter at `now`: every vCPU of
    /// that CPU whose WFI deadline has passed wakes, and the timer is set for the next
    /// deadline.
    pub fn wake_sleepers(&mut self, cpu: usize, now: u64, platform: &mut impl Platform) {
        let mut next = None::<u64>;
        for vcpu in 0..self.vcpu_count {
            let thread = self.first_vcpu_thread + vcpu;
            let tcb = &self.threads[thread];
            if usize::from(tcb.cpu) != cpu || tcb.state != ThreadState::BlockedWfi {
                continue;
            }
            match self.vcpus[vcpu].wake_at {
                Some(deadline) if deadline <= now => {
                    self.vcpus[vcpu].wake_at = None;
                    // With a vGIC the server hears of the timer before the guest runs.
                    self.threads[thread].vgic_event_due = self.has_vgic(vcpu);
                    self.wake(cpu, thread);
                }
                Some(deadline) => next = Some(next.map_or(deadline, |next| next.min(deadline))),
                None => {}
            }
        }
        if let Some(deadline) = next {
            platform.set_wakeup(cpu, deadline);
        }
    }

    /// `VCPU_START` on vCPU `vcpu` from `cpu`: a stopped vCPU starts at `entry` with
    /// `x0 = context_id`, PSTATE EL1h with D, A, I, F masked, every other general register
    /// zero, and its EL1 state reset on its way in. Fails on a vCPU that is not stopped.
    pub(super) fn start_vcpu(
        &mut self,
        cpu: usize,
        vcpu: usize,
        entry: u64,
        context_id: u64,
    ) -> Result<(), ipc::Error> {
        let thread = self.first_vcpu_thread + vcpu;
        if self.threads[thread].state != ThreadState::Stopped {
            return Err(ipc::Error::IllegalOperation);
        }
        let context = &mut self.threads[thread].context;
        *context = UserContext { elr: entry, spsr: guest::SPSR_EL1H_MASKED, ..UserContext::default() };
        context.x[0] = context_id;
        let object = &mut self.vcpus[vcpu];
        object.request = Some(VcpuRequest::Reset);
        object.forwarded = Forwarded::NOTHING;
        object.lrs_due = false;
        self.threads[thread].vgic_event_due = false;
        self.wake(cpu, thread);
        Ok(())
    }

    /// Whether vCPU `vcpu`'s VM has a vgic-server.
    fn has_vgic(&self, vcpu: usize) -> bool {
        self.vms[usize::from(self.vcpus[vcpu].vm)].vgic_endpoint != bootinfo::NONE
    }

    /// `VCPU_SYNC` from `caller` (current on `cpu`) on vCPU `vcpu`: holds the vCPU and
    /// answers `caller` with its folded state ([`Kernel::answer_sync`]), at once if `cpu`
    /// reaches that state (the vCPU runs nowhere and is loaded here or nowhere), else
    /// once the vCPU's own CPU has stopped and folded it (`caller` waits in
    /// `BlockedSync`; [`Kernel::complete_syncs`] there). A sync of `vcpu` already in
    /// progress is [`ipc::Error::IllegalOperation`].
    pub(super) fn sync_vcpu(
        &mut self,
        cpu: usize,
        caller: usize,
        vcpu: usize,
        platform: &mut impl Platform,
    ) -> Result<(), ipc::Error> {
        if self.vcpus[vcpu].sync_waiter.get().is_some() {
            return Err(ipc::Error::IllegalOperation);
        }
        let thread = self.first_vcpu_thread + vcpu;
        self.threads[thread].held = true;
        if self.threads[thread].state != ThreadState::Running
            && let Ok(snapshot) = self.fold_vcpu(cpu, vcpu, platform)
        {
            self.answer_sync(caller, vcpu, &snapshot, platform);
            return Ok(());
        }
        self.vcpus[vcpu].sync_waiter = Link::to(caller);
        self.threads[caller].state = ThreadState::BlockedSync;
        self.cpus[cpu].request_reschedule();
        platform.stop_vcpus(usize::from(self.threads[thread].cpu));
        Ok(())
    }

    /// Writes the answer to a `VCPU_SYNC` of vCPU `vcpu`, whose state `snapshot` is
    /// folded, into `caller`'s registers and IPC buffer: label 0, the snapshot's words.
    /// The server's view is now complete, so no vGIC event is due any more.
    fn answer_sync(
        &mut self,
        caller: usize,
        vcpu: usize,
        snapshot: &protocol::GicSnapshot,
        platform: &impl Platform,
    ) {
        self.threads[self.first_vcpu_thread + vcpu].vgic_event_due = false;
        let words = snapshot.words();
        let context = &mut self.threads[caller].context;
        context.x[0] = 0;
        context.x[1] = MessageInfo::new(Label(0), words.len()).expect("a snapshot fits a message").raw();
        context.x[2..2 + REGISTER_WORDS].copy_from_slice(&words[..REGISTER_WORDS]);
        context.x[6] = 0;
        write_buffer_words(platform, self.threads[caller].ipc_buffer, &words[REGISTER_WORDS..]);
    }

    /// `cpu` got the kernel's stop SGI: every vCPU pinned here that a `VCPU_SYNC` waits
    /// for stops (if it was running here it leaves the CPU, held), has its state folded
    /// here, and its waiter gets the answer and wakes (on its own CPU).
    pub fn complete_syncs(&mut self, cpu: usize, platform: &mut impl Platform) {
        for vcpu in 0..self.vcpu_count {
            let thread = self.first_vcpu_thread + vcpu;
            if usize::from(self.threads[thread].cpu) != cpu {
                continue;
            }
            let Some(waiter) = self.vcpus[vcpu].sync_waiter.take() else { continue };
            if self.threads[thread].state == ThreadState::Running {
                self.threads[thread].state = ThreadState::Held;
                self.cpus[cpu].request_reschedule();
            }
            // The vCPU is pinned here, so its state is here: the error cannot happen.
            match self.fold_vcpu(cpu, vcpu, platform) {
                Ok(snapshot) => self.answer_sync(waiter, vcpu, &snapshot, platform),
                Err(LoadedElsewhere) => {
                    self.threads[waiter].context.x[0] = ipc::Error::IllegalOperation as u64
                }
            }
            self.wake(cpu, waiter);
        }
        self.complete_stops(cpu);
        self.flush_kicks(platform);
    }

    /// `VCPU_WRITE_LRS` on vCPU `vcpu` from `cpu`: new list registers and maintenance
    /// bits for its next run, and the end of its hold. A vCPU that is not held must run
    /// nowhere and be loaded on no other CPU, else [`ipc::Error::IllegalOperation`]; so
    /// must a held one whose sync is still in progress.
    pub(super) fn write_vcpu_lrs(
        &mut self,
        cpu: usize,
        vcpu: usize,
        write: &protocol::LrWrite,
        platform: &mut impl Platform,
    ) -> Result<(), ipc::Error> {
        let thread = self.first_vcpu_thread + vcpu;
        if self.threads[thread].state == ThreadState::Running || self.vcpus[vcpu].sync_waiter.get().is_some()
        {
            return Err(ipc::Error::IllegalOperation);
        }
        platform
            .write_vcpu_lrs(cpu, VcpuId(vcpu as u16), write)
            .map_err(|LoadedElsewhere| ipc::Error::IllegalOperation)?;
        // Newer than any vGIC event's answer still waiting to be loaded.
        self.vcpus[vcpu].lrs_due = false;
        // A vGIC event still waiting for the server carries a snapshot from before this
        // write: it must show the new list registers, or the server would take the
        // difference for the guest's progress (a listed interrupt "acknowledged").
        // `forwarded` outlives the event it describes: an SGI write queued since is a
        // `GuestSend` whose words must stay.
        if matches!(self.threads[thread].state, ThreadState::BlockedSend(_))
            && self.threads[thread].pending.kind == SendKind::Guest
            && self.vcpus[vcpu].forwarded.kind == TrapKind::VgicEvent
        {
            self.vcpus[vcpu].message[..protocol::LIST_REGISTERS].copy_from_slice(&write.lrs);
        }
        self.threads[thread].held = false;
        if self.threads[thread].state == ThreadState::Held {
            self.wake(cpu, thread);
        }
        Ok(())
    }

    /// A physical interrupt for vCPU `vcpu` reached `cpu`, where its state is loaded: the
    /// maintenance interrupt, or a timer PPI. With a vgic-server, a vGIC event is due
    /// before the vCPU next enters the guest; either way a vCPU asleep in WFI wakes.
    pub fn vcpu_interrupt(&mut self, cpu: usize, vcpu: VcpuId) {
        let vcpu = usize::from(vcpu.0);
        if self.has_vgic(vcpu) {
            self.threads[self.first_vcpu_thread + vcpu].vgic_event_due = true;
        }
        self.kick_vcpu(cpu, vcpu);
    }

    /// The thread to run next on `cpu`, as [`Kernel::schedule`] chooses it, except that a
    /// vCPU with a vGIC event due sends it (and waits for the answer) instead of running.
    #[inline(always)]
    pub fn next_thread(&mut self, cpu: usize, platform: &mut impl Platform) -> Option<ThreadId> {
        let next = self.schedule(cpu)?;
        if self.threads[usize::from(next.0)].vgic_event_due {
            return self.send_due_vgic_events(cpu, next, platform);
        }
        Some(next)
    }

    /// [`Kernel::next_thread`] once `next`, chosen to run, has a vGIC event due: it sends
    /// it, and so on until the choice is a thread without one (or none).
    #[cold]
    #[inline(never)]
    fn send_due_vgic_events(
        &mut self,
        cpu: usize,
        mut next: ThreadId,
        platform: &mut impl Platform,
    ) -> Option<ThreadId> {
        while let Some(vcpu) = self.threads[usize::from(next.0)].vcpu.map(usize::from)
            && self.threads[usize::from(next.0)].vgic_event_due
        {
            self.raise_vgic_event(cpu, usize::from(next.0), vcpu, platform);
            self.flush_kicks(platform);
            next = self.schedule(cpu)?;
        }
        Some(next)
    }

    /// vCPU `vcpu` (`thread`, current on `cpu`, its CPU) `Call`s its vgic-server with a
    /// vGIC event: its interface state now, and its index.
    fn raise_vgic_event(&mut self, cpu: usize, thread: usize, vcpu: usize, platform: &mut impl Platform) {
        self.threads[thread].vgic_event_due = false;
        let vm = &self.vms[usize::from(self.vcpus[vcpu].vm)];
        let (endpoint, badge) = (vm.vgic_endpoint as usize, vm.vgic_badge);
        if core::mem::take(&mut self.vcpus[vcpu].lrs_due) {
            let write = self.vcpus[vcpu].load_lrs;
            // The server's last answer, not loaded yet: the event must show it. The vCPU
            // is pinned to `cpu`, so this cannot fail.
            let _ = platform.write_vcpu_lrs(cpu, VcpuId(vcpu as u16), &write);
        }
        let snapshot = platform.vcpu_event_snapshot(cpu, VcpuId(vcpu as u16));
        let event = protocol::VgicEvent { snapshot, vcpu: self.vcpus[vcpu].index };
        let forwarded = Forwarded { kind: TrapKind::VgicEvent, ..Forwarded::NOTHING };
        self.forward(
            cpu,
            thread,
            vcpu,
            endpoint,
            protocol::VGIC_EVENT,
            &event.words(),
            badge,
            forwarded,
            platform,
        );
    }

    /// vCPU `vcpu` (`thread`, current on `cpu`) `Send`s `words` (a trapped SGI write) to
    /// its vgic-server: it runs on at once if the server waits, else once it takes the
    /// message.
    fn send_to_vgic(
        &mut self,
        cpu: usize,
        thread: usize,
        vcpu: usize,
        words: &[u64],
        platform: &impl Platform,
    ) {
        let vm = &self.vms[usize::from(self.vcpus[vcpu].vm)];
        let (endpoint, badge) = (vm.vgic_endpoint as usize, vm.vgic_badge);
        self.vcpus[vcpu].message[..words.len()].copy_from_slice(words);
        let message =
            PendingSend { kind: SendKind::GuestSend, info: guest_info(protocol::SYSREG, words.len()), badge };
        self.send(cpu, thread, endpoint, message, platform);
    }

    /// `VCPU_KICK` on vCPU `vcpu` from `cpu`: ends its WFI if it sleeps in one.
    pub(super) fn kick_vcpu(&mut self, cpu: usize, vcpu: usize) {
        let thread = self.first_vcpu_thread + vcpu;
        if self.threads[thread].state == ThreadState::BlockedWfi {
            self.vcpus[vcpu].wake_at = None;
            self.wake(cpu, thread);
        }
    }

    /// Whether `vcpu` has no EL1 work waiting for the shell's resume: no request, no list
    /// registers to load (so [`Kernel::take_vcpu_request`] and [`Kernel::take_vcpu_lrs`]
    /// would return `None`).
    #[inline(always)]
    pub fn vcpu_resumes_plainly(&self, vcpu: VcpuId) -> bool {
        let object = &self.vcpus[usize::from(vcpu.0)];
        object.request.is_none() && !object.lrs_due
    }

    /// The EL1 work waiting for the shell's resume of `vcpu` (now taken).
    pub fn take_vcpu_request(&mut self, vcpu: VcpuId) -> Option<VcpuRequest> {
        self.vcpus[usize::from(vcpu.0)].request.take()
    }

    /// The list registers and UIE/NPIE that the shell loads into `vcpu`'s live state on
    /// its next resume (the answer to its vGIC event; now taken).
    #[inline]
    pub fn take_vcpu_lrs(&mut self, vcpu: VcpuId) -> Option<protocol::LrWrite> {
        let object = &mut self.vcpus[usize::from(vcpu.0)];
        if !object.lrs_due {
            return None;
        }
        object.lrs_due = false;
        Some(object.load_lrs)
    }

    /// Folds vCPU `vcpu`'s state as `cpu` reaches it, with any `LOAD_LRS` answer not yet
    /// loaded applied first (the server's view includes it), and returns its interface
    /// state.
    fn fold_vcpu(
        &mut self,
        cpu: usize,
        vcpu: usize,
        platform: &mut impl Platform,
    ) -> Result<protocol::GicSnapshot, LoadedElsewhere> {
        let id = VcpuId(vcpu as u16);
        if self.vcpus[vcpu].lrs_due {
            platform.write_vcpu_lrs(cpu, id, &self.vcpus[vcpu].load_lrs)?;
            self.vcpus[vcpu].lrs_due = false;
        }
        platform.vcpu_gic_state(cpu, id)
    }

    /// Prints a rate-limited diagnostic line of `kind` about vCPU `vcpu`.
    fn diagnostic(
        &mut self,
        vcpu: usize,
        kind: Diagnostic,
        platform: &mut impl Platform,
        args: fmt::Arguments,
    ) {
        let index = self.vcpus[vcpu].index;
        let vm = &mut self.vms[usize::from(self.vcpus[vcpu].vm)];
        let count = &mut vm.diagnostics[kind as usize];
        *count += 1;
        if count.is_power_of_two() {
            let (name, count) = (vm.name, *count);
            let what = match kind {
                Diagnostic::Unclaimed => "unclaimed access",
                Diagnostic::Exception => "guest exception",
            };
            kernel_line(platform, format_args!("vm {name} vcpu {index}: {args} ({what} {count})"));
        }
    }
}
