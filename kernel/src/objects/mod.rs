//! Kernel objects, capabilities, the scheduler and the system calls.
//!
//! # Object model
//!
//! Every object is created once, by [`Kernel::new`], from the boot-info blob; nothing is
//! created or destroyed at run time, and every table is a fixed array sized by the
//! `bootinfo::MAX_*` constants (the kernel has no heap).
//!
//! - **Thread** (one per component; vCPUs below are threads too): saved registers
//!   ([`UserContext`]), priority, the CPU it is pinned to, an address space, an IPC
//!   buffer page, a capability table and a fault endpoint. Its context starts at the
//!   entry point with the stack pointer at the stack top and everything else zero.
//! - **Endpoint**: a FIFO queue of blocked senders or of blocked receivers (never both).
//!   A message is a [`ipc::MessageInfo`] (label, length), words 0-3 in `x2..=x5` and
//!   words 4 and up in the IPC buffer, plus the badge of the sender's capability.
//! - **Notification**: a word that `Signal` ORs badges into, and a FIFO queue of waiters.
//!   It may be *bound* to one thread (boot-info `Tcb::bound_notification`): that thread's
//!   `Recv` and `ReplyRecv`, on any endpoint, also end when the word is non-zero, with
//!   `x1` = [`ipc::NOTIFIED`] and no words, `x2..=x5` = 0 and the word in `x6` (then
//!   cleared, as `Wait` does). A queued sender goes before a word already non-zero when
//!   the receive starts (so a server that signals itself to resume background work serves
//!   every waiting request first); a signal while the thread waits in its receive takes it off the
//!   endpoint's queue and wakes it, from any CPU, unless a thread in `Wait` on the
//!   notification takes the word first.
//! - **IRQ handler**: a physical interrupt that signals a notification with a badge. The
//!   interrupt stays active (masked) in the GIC until the component invokes `IRQ_ACK`.
//! - **Control**: the right to print the result line and power the machine off.
//! - **Console**: the right to put raw bytes on the console (`CONSOLE_WRITE`: a guest's
//!   UART output, exactly as written, under the console lock).
//! - **VM**: a guest's routes (guest-physical ranges whose MMIO faults go to an endpoint
//!   with a badge), its fault endpoint and badge (HVC, SMC, trapped system registers), its
//!   optional vgic endpoint and badge (vGIC events, SGI writes) and its policy for
//!   accesses nobody claims. Its stage-2 table is the shell's business.
//! - **vCPU** (one per boot-info `Vcpu` record): a thread like any other (priority, CPU,
//!   run queues, endpoint queues) whose context is a guest's: [`UserContext`] holds its
//!   general registers, PC and PSTATE, and the shell keeps its EL1 system-register, FP,
//!   timer and GIC state. It starts at the record's entry with `x0` from the record and
//!   PSTATE EL1h with D, A, I, F masked: ready at boot if `start_running`, else stopped
//!   until a `VCPU_START` invocation (words: entry, `x0`) on a VCPU capability, which also
//!   asks the shell to reset its EL1 state; `VCPU_START` on a vCPU that is not stopped is
//!   [`ipc::Error::IllegalOperation`]. `VCPU_SYNC` (no words) *holds* the vCPU (it does
//!   not enter the guest again, though it may block and wake) and answers with its folded
//!   virtual CPU interface state ([`ipc::vcpu::GicSnapshot`]); a vCPU running or lazily
//!   loaded on another CPU is stopped there by the kernel's stop SGI and the caller waits
//!   (`BlockedSync`) until that CPU has folded it ([`Kernel::complete_syncs`]): no CPU
//!   waits for another under the big lock. `VCPU_WRITE_LRS` ([`ipc::vcpu::LrWrite`])
//!   replaces its list registers and UIE/NPIE for its next run and ends the hold (on a
//!   vCPU not held: only while it runs nowhere and is loaded on no other CPU).
//!   `VCPU_KICK` (no words) ends its WFI. `VCPU_STOP` (no words) stops it wherever it is
//!   (by the stop SGI when it runs on another CPU, the caller waiting in `BlockedSync`),
//!   dropping any trap it forwarded (see `vcpu/stop.rs`); other lengths are
//!   [`ipc::Error::InvalidArgument`]. VCPU and console capabilities carry no rights. See
//!   `vcpu.rs` for its traps and vGIC events.
//!
//! A thread's capability table is its slice of `bootinfo::Cap` records, read-only, slot
//! `i` at record `i`. Lookup errors: index out of range or empty slot
//! [`ipc::Error::InvalidCapability`]; wrong kind [`ipc::Error::WrongObjectType`]; missing
//! right [`ipc::Error::NoRights`]. An unknown system call or invocation label is
//! [`ipc::Error::IllegalOperation`], a malformed `MessageInfo` or byte count
//! [`ipc::Error::InvalidArgument`]. A failing call changes nothing but the caller's `x0`.
//!
//! # Thread states
//!
//! | State | Entered by | Left by |
//! |---|---|---|
//! | `Ready` | boot, wake-up, preemption, slice end, `Yield` | `schedule` picks it |
//! | `Running` | `schedule`, fast-path hand-off | blocking, preemption, slice end, fault |
//! | `BlockedSend(ep)` | `Send`, `Call` or a fault, no receiver | a receiver takes the message |
//! | `BlockedRecv(ep)` | `Recv`, `ReplyRecv`, no sender, no bound word | a message arrives, its bound notification is signalled |
//! | `BlockedReply` | its `Call` was taken | the reply |
//! | `BlockedWait(n)` | `Wait` on a zero word | a `Signal` or IRQ |
//! | `BlockedWfi` | a vCPU's WFI | its timer deadline passes, a timer or maintenance interrupt for it, `VCPU_KICK` |
//! | `BlockedSync` | `VCPU_SYNC` or `VCPU_STOP` of a vCPU live on another CPU | that CPU folded or stopped the vCPU |
//! | `Held` | a vCPU held by `VCPU_SYNC` chosen from a run queue, or running when its CPU stopped it | `VCPU_WRITE_LRS` |
//! | `Stopped` | boot (a vCPU not started), a `STOP` reply to its fault, `VCPU_STOP` | `VCPU_START` |
//! | `Inactive` | a fault | never |
//!
//! A woken thread is `Ready`, except a taken `Call`, which goes on to `BlockedReply`,
//! and a taken fault message, whose thread becomes `Inactive`. A vCPU's forwarded trap
//! is a `Call` (`BlockedSend` until taken, then `BlockedReply`).
//!
//! Results come back in the caller's registers: `x0` = 0 or an error code, then a
//! received message in `x1..=x6` (see [`ipc`]), or for calls that return no message an
//! empty `MessageInfo` in `x1` and in `x6` the notification word (`Wait`, `Poll`) or 0.
//! `DebugWrite` prints whole lines tagged `[name] `, which no component can make look
//! like the kernel's own `[kernel] ` lines.
//!
//! A Call that a receiver takes leaves the caller in `BlockedReply` and makes it the
//! receiver's *reply target*: one implicit reply slot per thread, as in seL4 before MCS.
//! `Reply` (or the reply half of `ReplyRecv`) delivers to it and empties the slot; a
//! later `Recv` also empties it, which leaves a caller that was never answered blocked for
//! good (as seL4 does when a reply capability is deleted).
//!
//! A faulting thread becomes `Inactive`. With a fault endpoint it first delivers one
//! [`ipc::fault::COMPONENT_FAULT`] message (words ESR, FAR, PC, thread index) with its
//! fault badge, queueing as a sender if nobody waits; it never becomes anybody's reply
//! target, so a reply to a fault is answered with `NoReplyTarget`.
//!
//! # Scheduling
//!
//! Each CPU has 256 FIFO run queues (a higher priority number runs first) and a bitmap of
//! the non-empty ones. A thread only runs on the CPU it is pinned to. The running thread
//! is not in a run queue: when a higher priority becomes ready it goes back to the front
//! of its queue; when its time slice ends ([`Kernel::timer_tick`]) or it yields, to the
//! back. Operations set a per-CPU *reschedule* flag only when the choice may change (the
//! current thread blocked, a thread of higher priority became ready, the slice ended), so
//! [`Kernel::schedule`] is one test when nothing happened. Waking a thread on another CPU
//! that should run there at once kicks that CPU, at most once per kernel entry.
//!
//! # The IPC fast path
//!
//! [`Kernel::fast_ipc`] (which the shell calls straight from the exception vector for
//! every `Call` and `ReplyRecv`, with the argument registers it did not save) and
//! [`Kernel::fast_syscall`] (the same with the arguments in the saved context, which
//! [`Kernel::handle_syscall`] tries first) try two direct hand-offs that skip the run
//! queues:
//!
//! - `Call` on an endpoint whose first queued receiver is on the same CPU;
//! - `ReplyRecv` whose reply target is on the same CPU, on an endpoint with no queued
//!   sender, by a thread whose bound notification (if any) has a zero word;
//!
//! in both cases only if the woken thread's priority is above every ready thread's on the
//! CPU (one comparison with a per-CPU bar kept with the run queues) and no reschedule is
//! pending, exactly when the slow path followed by [`Kernel::schedule`] would pick the
//! woken thread. It then writes the message into the woken thread's saved registers
//! (from the caller's argument registers; words past four from IPC buffer to IPC buffer),
//! blocks the caller, and makes the woken thread current. It never reads the caller's
//! saved `x0..=x5` after it blocked, nor lets it run again before they hold a result.
//! Anything else (errors included) changes nothing and takes the slow path
//! ([`Kernel::slow_syscall`]), which is the reference semantics: the tests run the same
//! sequences with and without the fast path (entered as the shell enters it, with the
//! unsaved arguments poisoned) and compare every thread, queue and register.

mod cap;
mod console;
mod endpoint;
mod notification;
mod queue;
mod sched;
mod syscall;
#[cfg(test)]
mod tests;

mod vcpu;

use crate::address::Pa;
use crate::{Platform, SPSR_EL0T, UserContext, guest};
use bootinfo::{
    BootInfo, MAX_CPUS, MAX_ENDPOINTS, MAX_IRQS, MAX_NOTIFICATIONS, MAX_THREADS, MAX_VCPUS, MAX_VMS,
    MAX_VSPACES,
};
use endpoint::{EndpointObject, PendingSend};
use ipc::{MessageInfo, Syscall};
use notification::NotificationObject;
use queue::{Link, Links};
use sched::Cpu;
pub use syscall::{FastIpc, IpcArguments, VcpuReply};
pub use vcpu::{FastTrap, MESSAGE_REGISTERS, VcpuId, VcpuRequest};
use vcpu::{VcpuObject, VmObject};

/// Thread slots: the components' threads, then the vCPUs.
const THREAD_SLOTS: usize = MAX_THREADS + MAX_VCPUS;

/// Index of a thread in boot-info order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadId(pub u16);

/// Why boot-info could not be turned into objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The blob itself is malformed.
    Parse(bootinfo::ParseError),
    /// More objects of some kind (or CPUs) than the kernel has slots for.
    TooManyObjects,
    /// A record names an object, CPU or vspace that does not exist, a capability of an
    /// unknown kind, or an IPC buffer that is not page aligned; or two threads are bound
    /// to one notification.
    BadReference,
}

impl From<bootinfo::ParseError> for BootError {
    fn from(error: bootinfo::ParseError) -> Self {
        Self::Parse(error)
    }
}

/// What a thread is doing; see the module documentation for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ThreadState {
    /// In its CPU's run queue.
    Ready,
    /// Its CPU's current thread.
    Running,
    /// Queued on an endpoint with a message (see [`Thread::pending`]).
    BlockedSend(u32),
    /// Queued on an endpoint, waiting for a message.
    BlockedRecv(u32),
    /// Sent a Call that was received; waits for the receiver's reply.
    BlockedReply,
    /// Queued on a notification, waiting for a non-zero word.
    BlockedWait(u32),
    /// A vCPU in WFI, until its deadline (or a wake-up).
    BlockedWfi,
    /// Waits for another CPU to fold the state of the vCPU it called `VCPU_SYNC` on.
    BlockedSync,
    /// A vCPU held by `VCPU_SYNC` that would otherwise be ready; not in a run queue.
    Held,
    /// A vCPU that is not running guest code until a `VCPU_START`.
    Stopped,
    /// Stopped by a fault; never runs again.
    Inactive,
}

/// What a thread runs, for the shell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A component at EL0 in boot-info address space `vspace`.
    Component {
        /// Index of its vspace.
        vspace: u32,
    },
    /// A vCPU at EL1 (and its guest's EL0).
    Vcpu(VcpuId),
}

/// A thread control block.
///
/// Aligned to a power of two so that a thread's address is its index shifted, one
/// instruction on the fast paths instead of a multiply and an add.
#[repr(align(512))]
struct Thread<'a> {
    /// Registers saved on kernel entry and restored on exit.
    context: UserContext,
    /// Name from the manifest, for console lines.
    name: &'a str,
    /// Capability table: slot `i` is `caps[i]`.
    caps: &'a [bootinfo::Cap],
    /// Physical address of the IPC buffer page.
    ipc_buffer: Pa,
    /// Index of its address space.
    vspace: u32,
    /// The shell's value for loading its address space ([`Kernel::set_address_spaces`]).
    address_space: u64,
    /// Scheduling priority: higher runs first.
    priority: u8,
    /// The CPU it is pinned to.
    cpu: u8,
    state: ThreadState,
    /// The caller this thread owes a reply, if any.
    reply_target: Link,
    /// The message of a `BlockedSend` thread.
    pending: PendingSend,
    /// Endpoint for fault messages, or `bootinfo::NONE`.
    fault_endpoint: u32,
    /// Badge on fault messages.
    fault_badge: u64,
    /// The notification bound to this thread, or `bootinfo::NONE`.
    bound_notification: u32,
    /// The vCPU this thread is, if it is one.
    vcpu: Option<u8>,
    /// A vCPU held by `VCPU_SYNC`: it does not enter the guest until `VCPU_WRITE_LRS`
    /// (here rather than in its vCPU object, so the scheduler tests one byte).
    held: bool,
    /// A vCPU whose VM's vgic-server must hear from it: it sends a vGIC event before it
    /// next enters the guest (tested on every resume, hence here).
    vgic_event_due: bool,
}

impl Thread<'_> {
    /// An unused slot (past the last boot-info thread).
    const UNUSED: Thread<'static> = Thread {
        context: UserContext { x: [0; 31], sp_el0: 0, elr: 0, spsr: SPSR_EL0T, tpidr_el0: 0, tpidrro_el0: 0 },
        name: "",
        caps: &[],
        ipc_buffer: Pa(0),
        vspace: 0,
        address_space: 0,
        priority: 0,
        cpu: 0,
        state: ThreadState::Inactive,
        reply_target: Link::NONE,
        pending: PendingSend::NONE,
        fault_endpoint: bootinfo::NONE,
        fault_badge: 0,
        bound_notification: bootinfo::NONE,
        vcpu: None,
        held: false,
        vgic_event_due: false,
    };
}

/// All kernel objects. Lives in one static behind the big kernel lock; it must not move
/// once [`Kernel::context_ptr`] has been handed out.
///
/// In declaration order (`repr(C)`): the small fields the fast paths use, then the thread
/// table, which starts close enough that every field of a thread is an immediate offset
/// from the thread's index shifted (see `Thread`), then the rest, whose arrays start at
/// whole pages or are reached through one more addition.
#[repr(C)]
pub struct Kernel<'a> {
    /// Per-run value for the result line.
    nonce: u64,
    /// CPUs to kick when the current kernel entry ends (bit `n` = CPU `n`).
    pending_kicks: u32,
    /// Number of vCPUs.
    vcpu_count: usize,
    /// Thread slot of vCPU 0 (the number of components).
    first_vcpu_thread: usize,
    irqs: &'a [bootinfo::Irq],
    /// Queue links of the threads (run, endpoint and notification queues).
    links: Links,
    endpoints: [EndpointObject; MAX_ENDPOINTS],
    /// Components' threads from slot 0, then vCPUs from `first_vcpu_thread`.
    threads: [Thread<'a>; THREAD_SLOTS],
    notifications: [NotificationObject; MAX_NOTIFICATIONS],
    cpus: [Cpu; MAX_CPUS],
    /// Right after the CPUs, whose 1 KiB alignment starts it on a whole page (one
    /// addition from the kernel's base on the MMIO fast paths).
    vcpus: [VcpuObject<'a>; MAX_VCPUS],
    vms: [VmObject<'a>; MAX_VMS],
}

const _: () = assert!(MAX_CPUS <= u32::BITS as usize);

/// The shell keeps the kernel in a static shared by every CPU.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<Kernel<'static>>();
};

/// Fails with [`BootError::BadReference`] unless `condition` holds.
fn require(condition: bool) -> Result<(), BootError> {
    if condition { Ok(()) } else { Err(BootError::BadReference) }
}

/// How many objects of each kind boot-info creates.
struct ObjectCounts {
    endpoints: usize,
    notifications: usize,
    irqs: usize,
    vcpus: usize,
}

/// Checks that every capability names an existing object of its kind.
fn validate_caps(caps: &[bootinfo::Cap], counts: &ObjectCounts) -> Result<(), BootError> {
    use bootinfo::cap_kind;
    caps.iter().try_for_each(|cap| {
        let object = cap.object as usize;
        require(match cap.kind {
            cap_kind::NULL | cap_kind::CONTROL | cap_kind::CONSOLE => true,
            cap_kind::ENDPOINT => object < counts.endpoints,
            cap_kind::NOTIFICATION => object < counts.notifications,
            cap_kind::IRQ_HANDLER => object < counts.irqs,
            cap_kind::VCPU => object < counts.vcpus,
            _ => false,
        })
    })
}

/// Checks that `endpoint` is [`bootinfo::NONE`] (if `optional`) or an endpoint.
fn validate_endpoint(endpoint: u32, optional: bool, endpoints: usize) -> Result<(), BootError> {
    require((optional && endpoint == bootinfo::NONE) || (endpoint as usize) < endpoints)
}

impl<'a> Kernel<'a> {
    /// Creates every object from boot-info; every component thread and every vCPU that
    /// starts running is ready on its CPU, components first, each in boot-info order
    /// within a priority; the other vCPUs are stopped.
    pub fn new(boot: BootInfo<'a>) -> Result<Self, BootError> {
        let header = boot.header();
        let tcbs = boot.tcbs()?;
        let endpoints = boot.endpoints()?.len();
        let notifications = boot.notifications()?.len();
        let vspaces = boot.vspaces()?.len();
        let irqs = boot.irqs()?;
        let vms = boot.vms()?;
        let vcpus = boot.all_vcpus()?;
        let cpu_count = header.cpu_count as usize;
        if tcbs.len() > MAX_THREADS
            || endpoints > MAX_ENDPOINTS
            || notifications > MAX_NOTIFICATIONS
            || vspaces > MAX_VSPACES
            || irqs.len() > MAX_IRQS
            || vms.len() > MAX_VMS
            || vcpus.len() > MAX_VCPUS
            || cpu_count > MAX_CPUS
        {
            return Err(BootError::TooManyObjects);
        }
        let counts = ObjectCounts { endpoints, notifications, irqs: irqs.len(), vcpus: vcpus.len() };
        for irq in irqs {
            require((irq.notification as usize) < notifications && usize::from(irq.cpu) < cpu_count)?;
        }

        let mut kernel = Kernel {
            nonce: header.nonce,
            threads: [Thread::UNUSED; THREAD_SLOTS],
            links: [Link::NONE; THREAD_SLOTS],
            endpoints: [EndpointObject::EMPTY; MAX_ENDPOINTS],
            notifications: [NotificationObject::EMPTY; MAX_NOTIFICATIONS],
            irqs,
            vms: [VmObject::UNUSED; MAX_VMS],
            vcpus: [VcpuObject::UNUSED; MAX_VCPUS],
            vcpu_count: vcpus.len(),
            first_vcpu_thread: tcbs.len(),
            cpus: [Cpu::IDLE; MAX_CPUS],
            pending_kicks: 0,
        };
        for (index, tcb) in tcbs.iter().enumerate() {
            let caps = boot.caps(tcb.caps)?;
            validate_caps(caps, &counts)?;
            require(usize::from(tcb.cpu) < cpu_count && (tcb.vspace as usize) < vspaces)?;
            validate_endpoint(tcb.fault_endpoint, true, endpoints)?;
            require(Pa(tcb.ipc_buffer).is_page_aligned())?;
            if tcb.bound_notification != bootinfo::NONE {
                let notification = kernel
                    .notifications
                    .get_mut(tcb.bound_notification as usize)
                    .filter(|_| (tcb.bound_notification as usize) < notifications)
                    .ok_or(BootError::BadReference)?;
                require(notification.bound_thread().is_none())?;
                notification.bind(index);
            }
            let context = UserContext { elr: tcb.entry, sp_el0: tcb.stack_top, ..Thread::UNUSED.context };
            kernel.threads[index] = Thread {
                context,
                name: boot.string(tcb.name)?,
                caps,
                ipc_buffer: Pa(tcb.ipc_buffer),
                vspace: tcb.vspace,
                address_space: 0,
                priority: tcb.priority,
                cpu: tcb.cpu,
                fault_endpoint: tcb.fault_endpoint,
                fault_badge: tcb.fault_badge,
                bound_notification: tcb.bound_notification,
                ..Thread::UNUSED
            };
            kernel.enqueue_ready_back(index);
        }
        for (index, vm) in vms.iter().enumerate() {
            validate_endpoint(vm.fault_endpoint, true, endpoints)?;
            validate_endpoint(vm.vgic_endpoint, true, endpoints)?;
            let routes = boot.routes(vm.routes)?;
            for route in routes {
                validate_endpoint(route.endpoint, false, endpoints)?;
            }
            kernel.vms[index] = VmObject::new(boot.string(vm.name)?, vm, routes);
        }
        for (index, record) in vcpus.iter().enumerate() {
            require((record.vm as usize) < vms.len() && usize::from(record.cpu) < cpu_count)?;
            let thread = kernel.first_vcpu_thread + index;
            let mut context =
                UserContext { elr: record.entry, spsr: guest::SPSR_EL1H_MASKED, ..UserContext::default() };
            context.x[0] = record.x0;
            kernel.threads[thread] = Thread {
                context,
                name: kernel.vms[record.vm as usize].name,
                priority: record.priority,
                cpu: record.cpu,
                state: ThreadState::Stopped,
                vcpu: Some(index as u8),
                ..Thread::UNUSED
            };
            kernel.vcpus[index] = VcpuObject::new(record, &kernel.vms[record.vm as usize]);
            if record.start_running != 0 {
                kernel.enqueue_ready_back(thread);
            }
        }
        for cpu in &mut kernel.cpus[..cpu_count] {
            cpu.request_reschedule();
        }
        Ok(kernel)
    }

    /// The thread currently chosen to run on `cpu`, if any.
    pub fn current(&self, cpu: usize) -> Option<ThreadId> {
        self.cpus[cpu].current().map(thread_id)
    }

    /// A stable pointer to a thread's saved registers (the vectors save and load it directly).
    pub fn context_ptr(&mut self, thread: ThreadId) -> *mut UserContext {
        &raw mut self.threads[usize::from(thread.0)].context
    }

    /// The saved registers of `cpu`'s current thread, if it has one.
    pub fn current_context(&mut self, cpu: usize) -> Option<&mut UserContext> {
        let thread = self.cpus[cpu].current()?;
        Some(&mut self.threads[thread].context)
    }

    /// What `thread` runs: a component in its vspace, or a vCPU.
    #[inline(always)]
    pub fn thread_kind(&self, thread: ThreadId) -> ThreadKind {
        let thread = &self.threads[usize::from(thread.0)];
        match thread.vcpu {
            Some(vcpu) => ThreadKind::Vcpu(VcpuId(vcpu.into())),
            None => ThreadKind::Component { vspace: thread.vspace },
        }
    }

    /// Gives each component thread the value that loads its address space, `roots[i]` for
    /// vspace `i` (for the shell, its TTBR0_EL2 value), which [`Kernel::address_space`]
    /// returns. Kept in the thread, so that switching to it takes one load.
    pub fn set_address_spaces(&mut self, roots: &[u64; MAX_VSPACES]) {
        for thread in self.threads.iter_mut().filter(|thread| thread.vcpu.is_none()) {
            thread.address_space = roots[thread.vspace as usize];
        }
    }

    /// The value that loads the address space of component `thread`
    /// ([`Kernel::set_address_spaces`]).
    #[inline(always)]
    pub fn address_space(&self, thread: ThreadId) -> u64 {
        self.threads[usize::from(thread.0)].address_space
    }

    /// The current thread of `cpu` executed `svc #0`; its context holds the arguments and
    /// receives the results (or the thread blocks): [`Kernel::fast_syscall`], else
    /// [`Kernel::slow_syscall`].
    pub fn handle_syscall(&mut self, cpu: usize, platform: &mut impl Platform) {
        if self.fast_syscall(cpu, platform).is_none() {
            self.slow_syscall(cpu, platform);
        }
    }

    /// The IPC fast path alone (see the module docs): completes the system call of `cpu`'s
    /// current thread, with its arguments in its saved context, by a direct hand-off and
    /// returns the thread that now runs on `cpu` (nothing is left for
    /// [`Kernel::schedule`] to decide), or changes nothing and returns `None`.
    #[inline]
    pub fn fast_syscall(&mut self, cpu: usize, platform: &impl Platform) -> Option<ThreadId> {
        let context = &self.threads[self.cpus[cpu].current()?].context;
        let args = IpcArguments::of(context);
        let syscall = match Syscall::from_u64(context.x[7])? {
            syscall @ (Syscall::Call | Syscall::ReplyRecv) => syscall,
            _ => return None,
        };
        match self.fast_ipc(cpu, syscall, args, platform) {
            FastIpc::Declined => None,
            FastIpc::Handed(thread) => Some(thread),
            FastIpc::ReplyToVcpu(reply) => self.finish_reply_to_vcpu(cpu, reply, args, platform),
        }
    }

    /// A [`FastIpc::ReplyToVcpu`] finished as the shell finishes it: first
    /// [`Kernel::fast_resume_vcpu`] (taking every vCPU to be loaded on `cpu`: the shell's
    /// test, which decides only whether it can skip its own EL1 work), then
    /// [`Kernel::fast_reply_to_vcpu`].
    fn finish_reply_to_vcpu(
        &mut self,
        cpu: usize,
        reply: VcpuReply,
        args: IpcArguments,
        platform: &impl Platform,
    ) -> Option<ThreadId> {
        match self.fast_resume_vcpu(cpu, reply, args.info, args.words[0], |_| true) {
            Some((thread, _)) => Some(thread),
            None => self.fast_reply_to_vcpu(cpu, reply, args, platform),
        }
    }

    /// [`Kernel::fast_syscall`] for `syscall` ([`Syscall::Call`] or
    /// [`Syscall::ReplyRecv`]) with argument registers `args` that are not in the saved
    /// context: the shell calls it straight from the exception vector, which saves as
    /// little as it can, and unless it handed over stores `args` into the context, for the
    /// slow path or [`Kernel::fast_reply_to_vcpu`].
    #[inline(always)]
    pub fn fast_ipc(
        &mut self,
        cpu: usize,
        syscall: Syscall,
        args: IpcArguments,
        platform: &impl Platform,
    ) -> FastIpc {
        self.fast_path(cpu, syscall, args, platform).unwrap_or(FastIpc::Declined)
    }

    /// The system call of `cpu`'s current thread by the slow path, the reference
    /// semantics (after [`Kernel::fast_syscall`] declined it).
    pub fn slow_syscall(&mut self, cpu: usize, platform: &mut impl Platform) {
        let Some(caller) = self.cpus[cpu].current() else { return };
        self.slow_path(cpu, caller, platform);
    }

    /// The current thread of `cpu` took a synchronous exception other than `svc`: it stops
    /// for good, the console says so, and its fault endpoint (if any) gets a message.
    pub fn handle_fault(&mut self, cpu: usize, esr: u64, far: u64, platform: &mut impl Platform) {
        let Some(thread) = self.cpus[cpu].current() else { return };
        self.fault(cpu, thread, esr, far, platform);
        self.flush_kicks(platform);
    }

    /// Physical interrupt `intid` (an SPI owned by an IRQ handler) fired on the CPU it is
    /// routed to (`bootinfo::Irq::cpu`): its notification is signalled with its badge.
    /// Interrupts without a handler are ignored.
    pub fn handle_irq(&mut self, intid: u32, platform: &mut impl Platform) {
        let Some(irq) = self.irqs.iter().find(|irq| irq.intid == intid) else { return };
        self.signal(usize::from(irq.cpu), irq.notification as usize, irq.badge);
        self.flush_kicks(platform);
    }

    /// Kicks the CPUs that operations of this kernel entry asked to reschedule.
    fn flush_kicks(&mut self, platform: &mut impl Platform) {
        let mut kicks = core::mem::take(&mut self.pending_kicks);
        while kicks != 0 {
            platform.kick_cpu(kicks.trailing_zeros() as usize);
            kicks &= kicks - 1;
        }
    }
}

/// The public name of thread slot `index` (always below `THREAD_SLOTS`).
fn thread_id(index: usize) -> ThreadId {
    ThreadId(index as u16)
}

/// Registers of a successful call that returns no message: `x0` = 0, an empty
/// `MessageInfo` in `x1`, and `badge` in `x6`.
fn return_empty(context: &mut UserContext, badge: u64) {
    context.x[0] = 0;
    context.x[1] = MessageInfo::default().raw();
    context.x[6] = badge;
}
