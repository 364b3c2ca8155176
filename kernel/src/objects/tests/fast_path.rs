//! The fast path must be invisible: the same steps run with it and with the slow path
//! alone leave identical kernels (every thread, register, IPC buffer, queue and kick).
//!
//! The fast kernel is entered as the shell enters it: the exception vector does not save
//! a `Call`'s or `ReplyRecv`'s argument registers `x0..=x5`, so they hold poison in the
//! saved context while the fast path runs, and the shell stores them back only when the
//! fast path declines. The poison must never reach a thread that runs.

use super::super::endpoint::PendingSend;
use super::*;
use crate::{FastIpc, IpcArguments, UserContext};
use ipc::endpoint_rights as ep;
use std::collections::HashSet;

/// What the saved `x0..=x5` of a thread hold after the vector skipped them.
const UNSAVED: u64 = 0xDEAD_0000_0000_0000;

/// A thread as the fast path could change it.
#[derive(Debug, PartialEq)]
struct ThreadSnapshot {
    state: ThreadState,
    context: UserContext,
    reply_target: Option<usize>,
    pending: PendingSend,
    ipc_words: Vec<u64>,
}

/// Everything the fast path could change, in comparable form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    threads: Vec<ThreadSnapshot>,
    current: Vec<Option<usize>>,
    run_queues: Vec<Vec<(u8, Vec<usize>)>>,
    endpoints: Vec<(bool, Vec<usize>)>,
    notifications: Vec<u64>,
    kicks: Vec<usize>,
    console: Vec<u8>,
}

/// `harness`'s state; `unsaved` threads' `x0..=x5` are left out (they hold the vector's
/// skipped registers in one twin and the arguments in the other until the kernel writes
/// results there).
fn snapshot(
    harness: &mut Harness,
    threads: usize,
    cpus: usize,
    endpoints: usize,
    unsaved: &HashSet<usize>,
) -> Snapshot {
    let kernel = &harness.kernel;
    let run_queues = (0..cpus)
        .map(|cpu| {
            (0..=255)
                .map(|priority| {
                    (priority, kernel.cpus[cpu].run_queue(&kernel.links, priority).collect::<Vec<_>>())
                })
                .filter(|(_, queue)| !queue.is_empty())
                .collect()
        })
        .collect();
    let current = (0..cpus).map(|cpu| harness.current(cpu)).collect();
    let endpoints = (0..endpoints).map(|endpoint| harness.endpoint_queue(endpoint)).collect();
    let notifications = harness.kernel.notifications.iter().map(|notification| notification.word()).collect();
    let threads = (0..threads)
        .map(|index| {
            let tcb = &harness.kernel.threads[index];
            let (state, mut context, reply_target, pending) =
                (tcb.state, tcb.context, tcb.reply_target.get(), tcb.pending);
            if unsaved.contains(&index) {
                context.x[..6].fill(0);
            }
            let ipc_words = harness.platform.buffer(index).words.to_vec();
            ThreadSnapshot { state, context, reply_target, pending, ipc_words }
        })
        .collect();
    Snapshot {
        threads,
        current,
        run_queues,
        endpoints,
        notifications,
        kicks: harness.platform.kicks.clone(),
        console: harness.platform.console.clone(),
    }
}

/// Two copies of one system: `fast` enters the kernel as the shell does, `slow` skips
/// the fast path.
struct Twins {
    fast: Harness,
    slow: Harness,
    threads: usize,
    cpus: usize,
    endpoints: usize,
    fast_paths: usize,
    /// Threads of `fast` blocked by the fast path, whose saved `x0..=x5` still hold
    /// [`UNSAVED`] (until they run again, by which time the kernel must have written them).
    unsaved: HashSet<usize>,
}

impl Twins {
    fn new(system: &System) -> Self {
        Self {
            fast: system.boot(),
            slow: system.boot(),
            threads: system.threads.len(),
            cpus: system.cpus as usize,
            endpoints: system.endpoints,
            fast_paths: 0,
            unsaved: HashSet::new(),
        }
    }

    /// Both kernels are in the same state. A thread about to run (current on its CPU) is
    /// compared whole: its registers must hold results by now, not [`UNSAVED`].
    fn check(&mut self, what: &str) {
        let (threads, cpus, endpoints) = (self.threads, self.cpus, self.endpoints);
        for cpu in 0..cpus {
            if let Some(current) = self.fast.current(cpu) {
                self.unsaved.remove(&current);
            }
        }
        assert_eq!(
            snapshot(&mut self.fast, threads, cpus, endpoints, &self.unsaved),
            snapshot(&mut self.slow, threads, cpus, endpoints, &self.unsaved),
            "{what}"
        );
    }

    /// Applies `action` to both.
    fn both(&mut self, action: impl Fn(&mut Harness)) {
        action(&mut self.fast);
        action(&mut self.slow);
    }

    /// One system call on `cpu` (registers already loaded in both), then the scheduler on
    /// `cpu` and on every kicked CPU; returns whether the fast path took it.
    fn syscall(&mut self, cpu: usize) -> bool {
        let caller = self.fast.current(cpu).expect("a caller");
        let fast = self.shell_entry(cpu, caller);
        self.slow.kernel.slow_path(cpu, caller, &mut self.slow.platform);
        for harness in [&mut self.fast, &mut self.slow] {
            harness.schedule(cpu);
            for kicked in harness.platform.kicks.clone() {
                harness.schedule(kicked);
            }
        }
        self.fast_paths += usize::from(fast);
        fast
    }

    /// The system call of `caller`, the current thread of `cpu`, in `fast` as the shell
    /// makes it: a `Call` or `ReplyRecv` tries the fast path with its arguments in
    /// registers and poison in their saved copies, which go back into the context when it
    /// declines; then (and for every other system call) the slow path. Returns whether the
    /// fast path took it.
    fn shell_entry(&mut self, cpu: usize, caller: usize) -> bool {
        let Harness { kernel, platform } = &mut self.fast;
        let context = &mut kernel.threads[caller].context;
        let syscall = Syscall::from_u64(context.x[7]);
        if let Some(syscall @ (Syscall::Call | Syscall::ReplyRecv)) = syscall {
            let args = IpcArguments::of(context);
            context.x[..6].fill(UNSAVED);
            let handed = match kernel.fast_ipc(cpu, syscall, args, platform) {
                FastIpc::Declined => false,
                FastIpc::Handed(_) => true,
                FastIpc::ReplyToVcpu(reply) => {
                    kernel.finish_reply_to_vcpu(cpu, reply, args, platform).is_some()
                }
            };
            if handed {
                self.unsaved.insert(caller);
                return true;
            }
            args.store(&mut kernel.threads[caller].context);
        }
        kernel.slow_syscall(cpu, platform);
        false
    }

    /// A message system call of `cpu`'s current thread; returns whether it went fast.
    fn message(&mut self, cpu: usize, syscall: Syscall, cap: u32, label: u32, words: &[u64]) -> bool {
        self.both(|harness| {
            harness.load_message(cpu, syscall, cap, label, words);
        });
        let fast = self.syscall(cpu);
        self.check(&format!("{syscall:?} on CPU {cpu} with cap {cap}"));
        fast
    }
}

/// CPU 0: client (10), server (20), peer (10); CPU 1: remote client (10). Endpoint 0 is
/// the server's; the peer waits on endpoint 1.
fn scripted_system() -> System {
    System::new(2, 2, 0)
        .with(thread("client", 10, 0, &[endpoint_cap(0, ep::CALL, 7)]))
        .with(thread("server", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .with(thread("peer", 10, 0, &[endpoint_cap(1, ep::RECV, 0)]))
        .with(thread("remote", 10, 1, &[endpoint_cap(0, ep::CALL, 9)]))
}

#[test]
fn scripted_calls_take_the_fast_path_exactly_when_allowed() {
    const CLIENT: usize = 0;
    const SERVER: usize = 1;
    const PEER: usize = 2;
    let mut twins = Twins::new(&scripted_system());
    twins.check("boot");
    assert!(!twins.message(0, Syscall::Recv, 0, 0, &[]), "Recv is never fast");
    assert_eq!(twins.fast.current(0), Some(CLIENT));
    assert!(twins.message(0, Syscall::Call, 0, 1, &[1, 2, 3, 4, 5, 6]), "server outranks the peer");
    assert_eq!(twins.fast.current(0), Some(SERVER));
    assert!(
        !twins.message(0, Syscall::ReplyRecv, 0, 2, &[7; 9]),
        "the peer is ready at the client's priority"
    );
    assert_eq!(twins.fast.current(0), Some(PEER));
    assert!(!twins.message(0, Syscall::Recv, 0, 0, &[]), "peer blocks");
    assert_eq!(twins.fast.current(0), Some(CLIENT));
    for round in 0..3 {
        assert!(twins.message(0, Syscall::Call, 0, round, &[round.into(); 5]), "call {round}");
        assert!(twins.message(0, Syscall::ReplyRecv, 0, round, &[round.into(); 3]), "reply {round}");
    }
    assert!(!twins.message(0, Syscall::Call, 3, 1, &[]), "errors go the slow way");
    assert!(!twins.message(1, Syscall::Call, 0, 1, &[1]), "receiver on another CPU");
    assert_eq!(twins.fast.platform.kicks, [0]);
    assert_eq!(twins.fast.current(0), Some(SERVER));
    assert!(!twins.message(0, Syscall::ReplyRecv, 0, 1, &[]), "reply target on another CPU");
    assert_eq!(twins.fast.current(0), Some(CLIENT));
    twins.both(|harness| harness.kernel.timer_tick(0));
    assert!(!twins.message(0, Syscall::Call, 0, 1, &[]), "a reschedule is pending");
    assert_eq!(twins.fast.current(0), Some(SERVER));
}

#[test]
fn reply_recv_with_a_queued_sender_goes_the_slow_way() {
    let mut twins = Twins::new(&scripted_system());
    twins.message(0, Syscall::Recv, 0, 0, &[]);
    twins.message(0, Syscall::Yield, 0, 0, &[]);
    twins.message(0, Syscall::Recv, 0, 0, &[]);
    assert_eq!(twins.fast.state(2), ThreadState::BlockedRecv(1), "the peer is out of the way");
    assert!(twins.message(0, Syscall::Call, 0, 1, &[]));
    assert!(!twins.message(1, Syscall::Call, 0, 1, &[]), "the remote client queues");
    assert!(!twins.message(0, Syscall::ReplyRecv, 0, 1, &[]));
    assert_eq!(twins.fast.current(0), Some(1), "the server took the queued call at once");
}

#[test]
fn handle_syscall_hands_over_before_schedule_runs() {
    let mut harness = scripted_system().boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.load_message(0, Syscall::Call, 0, 1, &[]);
    harness.kernel.handle_syscall(0, &mut harness.platform);
    assert_eq!(harness.current(0), Some(1));
    assert!(!harness.kernel.cpus[0].reschedule_pending(), "schedule has nothing to do");
    assert_eq!(harness.schedule(0), Some(1));
}

#[test]
fn a_ready_bound_word_keeps_reply_recv_off_the_fast_path() {
    let mut server = thread("server", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]);
    server.tcb.bound_notification = 0;
    let system = System::new(1, 1, 1)
        .with(thread(
            "client",
            10,
            0,
            &[endpoint_cap(0, ep::CALL, 7), notification_cap(0, ipc::notification_rights::SIGNAL, 1)],
        ))
        .with(server);
    let mut twins = Twins::new(&system);
    assert!(!twins.message(0, Syscall::Recv, 0, 0, &[]));
    assert!(twins.message(0, Syscall::Call, 0, 1, &[1]), "a bound receiver takes calls fast");
    assert!(twins.message(0, Syscall::ReplyRecv, 0, 2, &[2]), "nothing signalled");
    assert!(!twins.message(0, Syscall::Signal, 1, 0, &[]), "the signal wakes the server");
    assert_eq!(twins.fast.received(1).label, ipc::NOTIFIED.0);
    assert!(!twins.message(0, Syscall::Recv, 0, 0, &[]));
    assert!(twins.message(0, Syscall::Call, 0, 3, &[3]));
    twins.both(|harness| harness.kernel.signal(0, 0, 4));
    assert!(!twins.message(0, Syscall::ReplyRecv, 0, 4, &[4]), "the word is ready");
    assert_eq!(twins.fast.current(0), Some(1));
    assert_eq!(twins.fast.received(1), Received { label: ipc::NOTIFIED.0, words: vec![], badge: 4 });
}

/// Capability slots of the random system's threads; the next slot is empty.
const RANDOM_CAPS: u64 = 5;

/// Two CPUs (four threads on CPU 0, two on CPU 1) at a few priorities, two endpoints and
/// three notifications: notification 0 is signalled by an IRQ too, notification 1 is
/// bound to thread 1 (CPU 0) and signalled by an IRQ routed to CPU 1, notification 2 is
/// bound to thread 4 (CPU 1). Every thread holds every capability (slots 0-4) and some
/// report faults to endpoint 1.
fn random_system(random: &mut fastrand::Rng) -> System {
    let mut system = System::new(2, 2, 3);
    for index in 0..6u64 {
        let caps = [
            endpoint_cap(0, ALL_ENDPOINT_RIGHTS, index + 1),
            endpoint_cap(1, ALL_ENDPOINT_RIGHTS, index + 100),
            notification_cap(0, ALL_NOTIFICATION_RIGHTS, 1 << index),
            notification_cap(1, ALL_NOTIFICATION_RIGHTS, 1 << (index + 8)),
            notification_cap(2, ALL_NOTIFICATION_RIGHTS, 1 << (index + 16)),
        ];
        let priority = [5, 10, 20][random.u64(..3) as usize];
        let mut spec = thread("t", priority, u8::from(index >= 4), &caps);
        if index % 3 == 0 {
            spec.tcb.fault_endpoint = 1;
            spec.tcb.fault_badge = 0xF0 + index;
        }
        spec.tcb.bound_notification = match index {
            1 => 1,
            4 => 2,
            _ => bootinfo::NONE,
        };
        system = system.with(spec);
    }
    system.irqs = vec![
        Irq { intid: 40, notification: 0, badge: 1 << 40, cpu: 1, ..Irq::default() },
        Irq { intid: 41, notification: 1, badge: 1 << 41, cpu: 1, ..Irq::default() },
    ];
    system
}

/// Bit `i` set: thread `i`'s last system call returned a bound notification's word.
fn notified_threads(harness: &Harness) -> u32 {
    let notified = MessageInfo::new(ipc::NOTIFIED, 0).unwrap().raw();
    let threads = harness.kernel.threads.iter().take(6).enumerate();
    threads
        .filter(|(_, thread)| thread.context.x[1] == notified)
        .fold(0, |bits, (index, _)| bits | 1 << index)
}

#[test]
fn random_system_calls_agree_with_and_without_the_fast_path() {
    let mut fast_paths = 0;
    let mut steps = 0;
    let mut notifications_delivered = 0;
    for seed in 1..=400u64 {
        let mut random = fastrand::Rng::with_seed(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let system = random_system(&mut random);
        let mut twins = Twins::new(&system);
        let mut notified = 0;
        for step in 0..300u64 {
            let now_notified = notified_threads(&twins.fast);
            notifications_delivered += (now_notified & !notified).count_ones();
            notified = now_notified;
            let busy: Vec<usize> = (0..2).filter(|&cpu| twins.fast.current(cpu).is_some()).collect();
            let roll = random.u64(..100);
            if busy.is_empty() || roll < 3 {
                let intid = 40 + random.u32(..2);
                twins.both(|harness| {
                    harness.kernel.handle_irq(intid, &mut harness.platform);
                    harness.schedule(1);
                    harness.schedule(0);
                });
                twins.check(&format!("seed {seed} step {step}: irq"));
                if busy.is_empty() && twins.fast.current(0).is_none() && twins.fast.current(1).is_none() {
                    break;
                }
                continue;
            }
            let cpu = busy[random.u64(..busy.len() as u64) as usize];
            if roll < 6 {
                twins.both(|harness| harness.kernel.timer_tick(cpu));
                twins.check(&format!("seed {seed} step {step}: tick"));
                continue;
            }
            if roll < 7 {
                twins.both(|harness| {
                    harness.kernel.handle_fault(cpu, 0x9200_0000 + step, step, &mut harness.platform);
                    harness.schedule(cpu);
                });
                twins.check(&format!("seed {seed} step {step}: fault"));
                continue;
            }
            let syscall = match random.u64(..12) {
                0..=3 => Syscall::Call,
                4..=7 => Syscall::ReplyRecv,
                8 => Syscall::Send,
                9 => Syscall::Recv,
                10 => Syscall::Reply,
                _ => {
                    [Syscall::Signal, Syscall::Wait, Syscall::Poll, Syscall::Yield][random.u64(..4) as usize]
                }
            };
            let cap = if random.u64(..10) == 0 { RANDOM_CAPS } else { random.u64(..RANDOM_CAPS) } as u32;
            let length = random.u64(..9) as usize;
            let words: Vec<u64> = (0..length).map(|_| random.u64(..)).collect();
            let label = random.u64(..4) as u32;
            twins.message(cpu, syscall, cap, label, &words);
            steps += 1;
        }
        fast_paths += twins.fast_paths;
    }
    assert!(steps > 5000, "{steps} system calls, {fast_paths} fast");
    assert!(fast_paths > 300, "only {fast_paths} of {steps} system calls took the fast path");
    assert!(notifications_delivered > 150, "only {notifications_delivered} bound notifications delivered");
}
