//! vCPUs: boot states, traps forwarded as calls and finished by replies, the kernel's own
//! answers (unclaimed accesses, debug and PMU registers, injected exceptions), WFI, and
//! the `VCPU_START` and `CONSOLE_WRITE` invocations.

use super::*;
use crate::guest::{Injection, TimerState, Trap, WakeState, ec, is_mmio_access};
use crate::{FastTrap, MESSAGE_REGISTERS, ThreadKind, UserContext, VcpuId, VcpuRequest};
use ipc::endpoint_rights as ep;
use ipc::vcpu as protocol;

/// The MMIO server: CPU 0, priority 20, receives on endpoint 0.
const DEVICE: usize = 0;
/// The VMM: CPU 1, priority 20, receives on endpoint 1, may start vCPU 1 and write the
/// console.
const VMM: usize = 2;
/// A low-priority component on CPU 1 with the same capabilities as the VMM.
const HELPER: usize = 1;
/// vCPU 0 (CPU 0, priority 10, running from boot) and vCPU 1 (CPU 0, stopped).
const VCPU0: usize = 3;
const VCPU1: usize = 4;
const ENTRY: u64 = 0x4008_0000;
const DTB: u64 = 0x4400_0000;
const ROUTE_BADGE: u64 = 0x77;
const FAULT_BADGE: u64 = 0x99;
const UART: u64 = 0x0900_0000;
const NOWHERE: u64 = 0x0a00_0000;

fn system(unclaimed_abort: u8, fault_endpoint: u32) -> System {
    let vmm_caps = [
        endpoint_cap(1, ep::RECV, 0),
        cap_of(cap_kind::VCPU, 1),
        cap_of(cap_kind::CONSOLE, 0),
        cap_of(cap_kind::VCPU, 0),
    ];
    let mut system = System::new(2, 2, 0)
        .with(thread("device", 20, 0, &[endpoint_cap(0, ep::RECV, 0)]))
        .with(thread("helper", 1, 1, &vmm_caps))
        .with(thread("vmm", 20, 1, &vmm_caps));
    let vcpu = |index: u16, start_running: u8| Vcpu {
        index,
        priority: 10,
        cpu: 0,
        mpidr: u64::from(index),
        start_running,
        entry: ENTRY,
        x0: DTB,
        ..Vcpu::default()
    };
    system.vms.push(VmSpec {
        vm: Vm {
            unclaimed_abort,
            fault_endpoint,
            fault_badge: FAULT_BADGE,
            vgic_endpoint: bootinfo::NONE,
            vmid: 1,
            ..Vm::default()
        },
        vcpus: vec![vcpu(0, 1), vcpu(1, 0)],
        routes: vec![Route { ipa: UART, size: 0x1000, endpoint: 0, badge: ROUTE_BADGE, ..Route::default() }],
    });
    system
}

/// Boots with both servers waiting for messages, so vCPU 0 runs on CPU 0.
fn booted(unclaimed_abort: u8, fault_endpoint: u32) -> Harness {
    let mut harness = system(unclaimed_abort, fault_endpoint).boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.syscall(1, Syscall::Recv, 0);
    assert_eq!((harness.current(0), harness.current(1)), (Some(VCPU0), Some(HELPER)));
    harness
}

fn guest() -> Harness {
    booted(0, 1)
}

fn context(harness: &Harness, thread: usize) -> UserContext {
    harness.kernel.threads[thread].context
}

/// A trap of CPU 0's vCPU, entered as the shell enters it: the MMIO fast path first.
fn trap(harness: &mut Harness, trap: Trap) {
    enter_trap(harness, &trap);
    harness.schedule(0);
}

/// The shell's handling of a vCPU trap on CPU 0: [`Kernel::fast_vcpu_trap`] for an MMIO
/// access, and [`Kernel::handle_vcpu_trap`] when it declines or for anything else;
/// returns whether the fast path took it.
fn enter_trap(harness: &mut Harness, trap: &Trap) -> bool {
    let before = harness.current(0);
    if is_mmio_access(trap.esr)
        && let Some(outcome) = harness.kernel.fast_vcpu_trap(0, trap)
    {
        let next = match outcome {
            // The shell's exit loads them into the server's registers.
            FastTrap::Forwarded { server, registers } => {
                harness.kernel.threads[usize::from(server.0)].context.x[..MESSAGE_REGISTERS]
                    .copy_from_slice(&registers);
                server
            }
            FastTrap::Answered(vcpu) => vcpu,
        };
        assert_eq!(harness.current(0), Some(usize::from(next.0)), "the fast path returns who runs");
        let vcpu = harness.kernel.threads[usize::from(next.0)].vcpu;
        assert!(vcpu.is_none() || before == Some(usize::from(next.0)), "a server, or the vCPU itself");
        return true;
    }
    assert_eq!(harness.current(0), before, "a declined fast path changes nothing");
    harness.kernel.handle_vcpu_trap(0, trap, &mut harness.platform);
    false
}

/// A load or store of `1 << sas` bytes through register `srt` at `ipa` (a stage-2
/// translation fault with a full syndrome).
fn access(ipa: u64, sas: u64, srt: u64, sign_extend: bool, sixty_four: bool, write: bool) -> Trap {
    let iss = 1 << 24
        | sas << 22
        | u64::from(sign_extend) << 21
        | srt << 16
        | u64::from(sixty_four) << 15
        | u64::from(write) << 6
        | 0x07;
    Trap {
        esr: ec::DATA_ABORT_LOWER << 26 | 1 << 25 | iss,
        far: 0xffff_0000_0000_0000 | ipa,
        hpfar: (ipa >> 12) << 4,
    }
}

fn class(class: u64, iss: u64) -> Trap {
    Trap { esr: class << 26 | 1 << 25 | iss, ..Trap::default() }
}

fn injected(harness: &mut Harness, vcpu: u16) -> Option<VcpuRequest> {
    harness.kernel.take_vcpu_request(VcpuId(vcpu))
}

#[test]
fn vcpus_boot_ready_or_stopped_in_their_entry_state() {
    let harness = system(0, 1).boot();
    assert_eq!(harness.state(VCPU0), ThreadState::Ready);
    assert_eq!(harness.state(VCPU1), ThreadState::Stopped);
    assert_eq!(harness.kernel.thread_kind(ThreadId(VCPU0 as u16)), ThreadKind::Vcpu(VcpuId(0)));
    assert_eq!(harness.kernel.thread_kind(ThreadId(VCPU1 as u16)), ThreadKind::Vcpu(VcpuId(1)));
    let entry = context(&harness, VCPU0);
    assert_eq!((entry.elr, entry.spsr, entry.x[0], entry.x[1]), (ENTRY, 0x3c5, DTB, 0));
}

#[test]
fn a_routed_read_is_one_call_and_its_reply_finishes_the_load() {
    let mut harness = guest();
    harness.kernel.threads[VCPU0].context.x[5] = 0x5555;
    trap(&mut harness, access(UART + 0x18, 0, 5, true, true, false));
    assert_eq!(harness.current(0), Some(DEVICE), "the fast path hands over at once");
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedReply);
    assert_eq!(
        harness.received(DEVICE),
        Received { label: protocol::MMIO.0, words: vec![UART + 0x18, 0, 0], badge: ROUTE_BADGE }
    );
    harness.message(0, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[0x1_2380]);
    assert_eq!(harness.current(0), Some(VCPU0));
    assert_eq!(harness.state(DEVICE), ThreadState::BlockedRecv(0));
    let after = context(&harness, VCPU0);
    assert_eq!(after.x[5], 0xffff_ffff_ffff_ff80, "LDRSB Xt sign-extends the byte");
    assert_eq!(after.elr, ENTRY + 4);
    assert_eq!(after.x[0], DTB, "no other register changes");
    assert_eq!(injected(&mut harness, 0), None);
}

#[test]
fn a_resumed_load_writes_its_register_as_wide_and_extended_as_the_instruction_says() {
    // (size log2, sign-extends, 64-bit register, register, value replied, register after)
    let cases = [
        (0, false, false, 3, 0xffff_ffff_ffff_ff80, 0x80),
        (0, true, false, 3, 0x80, 0xffff_ff80),
        (0, true, true, 30, 0x80, 0xffff_ffff_ffff_ff80),
        (1, false, true, 0, 0x1_8001, 0x8001),
        (1, true, true, 0, 0x1_8001, 0xffff_ffff_ffff_8001),
        (2, false, false, 9, 0xdead_beef_8000_0000, 0x8000_0000),
        (2, true, true, 9, 0x8000_0000, 0xffff_ffff_8000_0000),
        (3, false, true, 17, 0xfedc_ba98_7654_3210, 0xfedc_ba98_7654_3210),
        (3, true, true, 17, 0xfedc_ba98_7654_3210, 0xfedc_ba98_7654_3210),
    ];
    for (index, (sas, sign_extend, sixty_four, register, value, expected)) in cases.into_iter().enumerate() {
        let mut harness = guest();
        harness.kernel.threads[VCPU0].context.x = [0x5a5a; 31];
        trap(&mut harness, access(UART, sas, register, sign_extend, sixty_four, false));
        assert_eq!(harness.current(0), Some(DEVICE), "case {index}");
        harness.message(0, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[value]);
        let after = context(&harness, VCPU0);
        let mut x = [0x5a5a; 31];
        x[register as usize] = expected;
        assert_eq!((after.x, after.elr), (x, ENTRY + 4), "case {index}");
    }
    // A load into the zero register, and a reply without words (a load of zero).
    let mut harness = guest();
    trap(&mut harness, access(UART, 2, 31, false, false, false));
    harness.message(0, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[0x1234]);
    assert_eq!((context(&harness, VCPU0).x[0], context(&harness, VCPU0).elr), (DTB, ENTRY + 4));
    harness.kernel.threads[VCPU0].context.x[4] = 0x5a5a;
    trap(&mut harness, access(UART, 3, 4, false, true, false));
    harness.message(0, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[]);
    assert_eq!((context(&harness, VCPU0).x[4], context(&harness, VCPU0).elr), (0, ENTRY + 8));
}

#[test]
fn the_mmio_fast_path_declines_what_it_cannot_hand_over_at_once() {
    let mut harness = guest();
    // An unclaimed access whose diagnostic line is due (the 1st, 2nd, 4th...), one without
    // a syndrome, and one with a reschedule pending: the slow path (a server that is not
    // waiting: `a_trap_with_no_server_waiting_queues_as_a_call`). The 3rd unclaimed
    // access is answered at once, the vCPU going on.
    for expected in [false, false, true, false] {
        assert_eq!(enter_trap(&mut harness, &access(NOWHERE, 2, 1, false, false, false)), expected);
        harness.schedule(0);
        assert_eq!(harness.current(0), Some(VCPU0));
    }
    assert_eq!(harness.platform.lines().len(), 3);
    let mut no_syndrome = access(UART, 2, 1, false, false, false);
    no_syndrome.esr &= !(1 << 24);
    assert!(!enter_trap(&mut harness, &no_syndrome));
    harness.schedule(0);
    assert_eq!(harness.current(0), Some(VCPU0));
    harness.kernel.cpus[0].request_reschedule();
    assert!(!enter_trap(&mut harness, &access(UART, 2, 1, false, false, false)));
    harness.schedule(0);
    assert_eq!(harness.current(0), Some(DEVICE), "the slow path hands over too");
    harness.message(0, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[1]);
    assert_eq!(harness.current(0), Some(VCPU0));
}

#[test]
fn a_routed_write_carries_the_stored_bytes_and_resumes_past_the_store() {
    let mut harness = guest();
    harness.kernel.threads[VCPU0].context.x[7] = 0xdead_beef_cafe_f00d;
    trap(&mut harness, access(UART + 4, 1, 7, false, false, true));
    let flags = 1 | 1 << 8;
    assert_eq!(harness.received(DEVICE).words, [UART + 4, flags, 0xf00d]);
    harness.message(0, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[0x1234]);
    let after = context(&harness, VCPU0);
    assert_eq!((after.x[7], after.elr), (0xdead_beef_cafe_f00d, ENTRY + 4));
}

#[test]
fn a_reply_from_a_server_on_another_cpu_wakes_the_vcpu_there() {
    let mut system = system(0, 1);
    system.vms[0].routes[0].endpoint = 1;
    let mut harness = system.boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.syscall(1, Syscall::Recv, 0);
    trap(&mut harness, access(UART, 2, 3, false, false, false));
    assert_eq!(harness.current(0), None, "CPU 0 idles while the VMM works");
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.schedule(1), Some(VMM));
    assert_eq!(harness.received(VMM).badge, ROUTE_BADGE);
    harness.message(1, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[0xffff_ffff_1234_5678]);
    assert_eq!(harness.platform.kicks, [1, 0]);
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).x[3], 0x1234_5678, "LDR Wt keeps 32 bits");
}

#[test]
fn a_trap_with_no_server_waiting_queues_as_a_call() {
    let mut harness = system(0, 1).boot();
    harness.syscall(1, Syscall::Recv, 0);
    // The device server is busy (never received); the vCPU gets CPU 0 once it blocks.
    harness.syscall(0, Syscall::Yield, 0);
    assert_eq!(harness.current(0), Some(DEVICE));
    harness.kernel.threads[DEVICE].priority = 5;
    harness.kernel.timer_tick(0);
    harness.kernel.cpus[0].request_reschedule();
    harness.syscall(0, Syscall::Yield, 0);
    assert_eq!(harness.current(0), Some(VCPU0));
    trap(&mut harness, access(UART, 2, 1, false, false, false));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedSend(0));
    assert_eq!(harness.current(0), Some(DEVICE));
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!(harness.received(DEVICE).words, [UART, 2, 0]);
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedReply);
    harness.message(0, Syscall::Reply, 0, protocol::RESUME.0, &[9]);
    assert_eq!(harness.current(0), Some(VCPU0), "it outranks the server now");
    assert_eq!(context(&harness, VCPU0).x[1], 9);
}

#[test]
fn unclaimed_accesses_read_zero_and_log_at_a_falling_rate() {
    let mut harness = guest();
    harness.kernel.threads[VCPU0].context.x[2] = 0x77;
    trap(&mut harness, access(NOWHERE, 3, 2, false, true, false));
    assert_eq!(context(&harness, VCPU0).x[2], 0);
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 4);
    assert_eq!(harness.current(0), Some(VCPU0), "no message, no switch");
    for _ in 0..6 {
        trap(&mut harness, access(NOWHERE, 2, 2, false, false, true));
    }
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 7 * 4);
    let lines = harness.platform.lines();
    assert_eq!(
        lines,
        [
            "[kernel] vm vm0 vcpu 0: read of 8 bytes at ipa 0xa000000: reads as zero (unclaimed access 1)",
            "[kernel] vm vm0 vcpu 0: write of 4 bytes at ipa 0xa000000: ignored (unclaimed access 2)",
            "[kernel] vm vm0 vcpu 0: write of 4 bytes at ipa 0xa000000: ignored (unclaimed access 4)",
        ]
    );
    assert!(lines.iter().all(|line| !line.contains("error")));
    assert_eq!(injected(&mut harness, 0), None);
}

#[test]
fn with_the_abort_policy_unclaimed_accesses_get_a_data_abort() {
    let mut harness = booted(1, 1);
    trap(&mut harness, access(NOWHERE + 8, 2, 2, false, false, true));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY, "the abort reports the store itself");
    assert_eq!(
        injected(&mut harness, 0),
        Some(VcpuRequest::Inject(Injection::DataAbort { far: 0xffff_0000_0a00_0008, write: true }))
    );
    assert_eq!(injected(&mut harness, 0), None, "a request is taken once");
}

#[test]
fn accesses_without_syndrome_get_a_data_abort_and_a_line() {
    let mut harness = guest();
    let mut pair = access(UART, 3, 0, false, true, false);
    pair.esr &= !(1 << 24);
    trap(&mut harness, pair);
    assert_eq!(harness.current(0), Some(VCPU0), "never forwarded");
    assert_eq!(
        injected(&mut harness, 0),
        Some(VcpuRequest::Inject(Injection::DataAbort { far: 0xffff_0000_0900_0000, write: false }))
    );
    assert_eq!(
        harness.platform.lines(),
        [format!(
            "[kernel] vm vm0 vcpu 0: access without instruction syndrome at ipa 0x9000000 pc {ENTRY:#x}: \
             data abort (guest exception 1)"
        )]
    );
}

#[test]
fn an_hvc_goes_to_the_fault_endpoint_and_its_reply_sets_x0_to_x3() {
    let mut harness = guest();
    let registers: Vec<u64> = (0..10).map(|n| 0x100 + n).collect();
    harness.kernel.threads[VCPU0].context.x[..10].copy_from_slice(&registers);
    harness.kernel.threads[VCPU0].context.elr = ENTRY + 4; // HVC returns past itself
    trap(&mut harness, class(ec::HVC64, 0));
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.schedule(1), Some(VMM));
    let mut words = registers[..8].to_vec();
    words.push(0);
    assert_eq!(harness.received(VMM), Received { label: protocol::HVC.0, words, badge: FAULT_BADGE });
    harness.message(1, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[0, 0xaa]);
    harness.schedule(0);
    let after = context(&harness, VCPU0);
    assert_eq!(&after.x[..4], &[0, 0xaa, 0x102, 0x103], "only the words of the reply");
    assert_eq!(after.elr, ENTRY + 4);
}

#[test]
fn an_smc_resumes_past_the_instruction() {
    let mut harness = guest();
    trap(&mut harness, class(ec::SMC64, 0));
    harness.schedule(1);
    assert_eq!(harness.received(VMM).label, protocol::SMC.0);
    harness.message(1, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[5]);
    assert_eq!((context(&harness, VCPU0).x[0], context(&harness, VCPU0).elr), (5, ENTRY + 4));
}

#[test]
fn an_undefined_reply_to_an_hvc_reports_the_hvc_itself() {
    let mut harness = guest();
    harness.kernel.threads[VCPU0].context.elr = ENTRY + 4;
    trap(&mut harness, class(ec::HVC64, 0));
    harness.schedule(1);
    harness.message(1, Syscall::ReplyRecv, 0, protocol::INJECT_UNDEFINED.0, &[]);
    assert_eq!(context(&harness, VCPU0).elr, ENTRY);
    assert_eq!(injected(&mut harness, 0), Some(VcpuRequest::Inject(Injection::Undefined)));
}

#[test]
fn without_a_fault_endpoint_calls_are_undefined() {
    let mut harness = booted(0, bootinfo::NONE);
    harness.kernel.threads[VCPU0].context.elr = ENTRY + 4;
    trap(&mut harness, class(ec::HVC64, 0));
    assert_eq!(harness.current(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY);
    assert_eq!(injected(&mut harness, 0), Some(VcpuRequest::Inject(Injection::Undefined)));
    assert_eq!(harness.platform.lines().len(), 1);
}

#[test]
fn a_data_abort_reply_injects_at_the_access() {
    let mut harness = guest();
    trap(&mut harness, access(UART, 2, 1, false, false, false));
    harness.message(0, Syscall::ReplyRecv, 0, protocol::INJECT_DATA_ABORT.0, &[]);
    assert_eq!(harness.current(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY);
    assert_eq!(
        injected(&mut harness, 0),
        Some(VcpuRequest::Inject(Injection::DataAbort { far: 0xffff_0000_0900_0000, write: false }))
    );
}

#[test]
fn stop_and_vcpu_start() {
    let mut harness = guest();
    trap(&mut harness, class(ec::HVC64, 0));
    harness.schedule(1);
    harness.message(1, Syscall::ReplyRecv, 0, protocol::STOP.0, &[]);
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
    assert_eq!(harness.schedule(0), None);
    // The helper (same caps as the VMM) starts vCPU 1, then restarts vCPU 0 (slot 3).
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_START.0, &[0x4100_0000, 42]);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.state(VCPU1), ThreadState::Ready);
    assert_eq!(harness.platform.kicks, [1, 0]);
    assert_eq!(harness.schedule(0), Some(VCPU1));
    let started = context(&harness, VCPU1);
    assert_eq!((started.elr, started.spsr, started.x[0]), (0x4100_0000, 0x3c5, 42));
    assert_eq!(injected(&mut harness, 1), Some(VcpuRequest::Reset));
    harness.kernel.threads[VCPU0].context.x[9] = 9;
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_START.0, &[0x4200_0000, 7]);
    assert_eq!(harness.result(HELPER), Ok(()));
    let restarted = context(&harness, VCPU0);
    assert_eq!((restarted.elr, restarted.x[0], restarted.x[9]), (0x4200_0000, 7, 0));
    // Neither is stopped any more.
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_START.0, &[0, 0]);
    assert_eq!(harness.result(HELPER), Err(Error::IllegalOperation));
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_START.0, &[0]);
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
    harness.message(1, Syscall::Call, 1, 9, &[0, 0]);
    assert_eq!(harness.result(HELPER), Err(Error::IllegalOperation));
}

#[test]
fn debug_and_pmu_registers_read_as_zero_without_a_message() {
    let mut harness = guest();
    harness.kernel.threads[VCPU0].context.x[2] = 0x55;
    // MRS x2, MDSCR_EL1.
    trap(&mut harness, class(ec::SYSREG, 2 << 20 | 2 << 17 | 2 << 5 | 2 << 1 | 1));
    // MSR PMUSERENR_EL0, x2.
    trap(&mut harness, class(ec::SYSREG, 3 << 20 | 3 << 14 | 9 << 10 | 2 << 5 | 14 << 1));
    assert_eq!(harness.current(0), Some(VCPU0));
    assert_eq!((context(&harness, VCPU0).x[2], context(&harness, VCPU0).elr), (0, ENTRY + 8));
    assert!(harness.platform.kicks.is_empty() && harness.platform.console.is_empty());
}

#[test]
fn other_system_registers_go_to_the_fault_endpoint() {
    let mut harness = guest();
    harness.kernel.threads[VCPU0].context.x[4] = 0x0100_0001;
    // MSR ICC_SGI1R_EL1, x4.
    trap(&mut harness, class(ec::SYSREG, 3 << 20 | 5 << 17 | 12 << 10 | 4 << 5 | 11 << 1));
    harness.schedule(1);
    let encoding: u64 = 3 << 14 | 12 << 7 | 11 << 3 | 5;
    assert_eq!(harness.received(VMM).words, [encoding | 1 << 16, 0x0100_0001]);
    harness.message(1, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[]);
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 4);
    // MRS x6, an implementation-defined register: the reply's word 0 is the value.
    trap(&mut harness, class(ec::SYSREG, 3 << 20 | 11 << 10 | 6 << 5 | 1));
    harness.schedule(1);
    harness.message(1, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[0xabc]);
    assert_eq!(context(&harness, VCPU0).x[6], 0xabc);
}

#[test]
fn wfi_sleeps_until_the_timer_deadline() {
    let mut harness = guest();
    harness.platform.wake_state = WakeState {
        now: 1_000,
        virtual_timer: TimerState { ctl: 1, cval: 4_000 },
        cntvoff: 100,
        ..WakeState::default()
    };
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedWfi);
    assert_eq!(harness.current(0), None, "the CPU idles");
    assert_eq!(harness.platform.wakeups, [(0, 4_100)]);
    harness.kernel.wake_sleepers(0, 4_099, &mut harness.platform);
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedWfi);
    assert_eq!(harness.platform.wakeups, [(0, 4_100), (0, 4_100)], "the next deadline is set again");
    harness.kernel.wake_sleepers(1, 5_000, &mut harness.platform);
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedWfi, "another CPU's timer does not wake it");
    harness.kernel.wake_sleepers(0, 4_100, &mut harness.platform);
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 4);
}

#[test]
fn wfi_with_something_due_continues_and_wfe_yields() {
    let mut harness = guest();
    harness.platform.wake_state =
        WakeState { now: 1_000, physical_timer: TimerState { ctl: 1, cval: 999 }, ..WakeState::default() };
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!(harness.current(0), Some(VCPU0));
    trap(&mut harness, class(ec::WFX, 1));
    assert_eq!(harness.current(0), Some(VCPU0), "nothing else is ready");
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 8);
    assert!(harness.platform.wakeups.is_empty());
}

#[test]
fn unknown_exceptions_and_bad_fetches_are_injected() {
    let mut harness = guest();
    trap(&mut harness, class(0x0e, 0));
    assert_eq!(injected(&mut harness, 0), Some(VcpuRequest::Inject(Injection::Undefined)));
    let fetch = Trap { esr: ec::INSTRUCTION_ABORT_LOWER << 26 | 1 << 25 | 0x06, far: 0x10, hpfar: 0x10 << 4 };
    trap(&mut harness, fetch);
    assert_eq!(
        injected(&mut harness, 0),
        Some(VcpuRequest::Inject(Injection::InstructionAbort { far: 0x10 }))
    );
    assert_eq!(context(&harness, VCPU0).elr, ENTRY);
    assert_eq!(harness.platform.lines().len(), 2);
}

#[test]
fn a_guest_serror_is_dropped_with_a_line() {
    let mut harness = guest();
    trap(&mut harness, class(ec::SERROR, 0x11));
    assert_eq!(harness.current(0), Some(VCPU0));
    assert_eq!(injected(&mut harness, 0), None);
    assert_eq!(context(&harness, VCPU0).elr, ENTRY);
    assert_eq!(
        harness.platform.lines(),
        [format!(
            "[kernel] vm vm0 vcpu 0: SError (syndrome 0x11) near pc {ENTRY:#x}: dropped (guest exception 1)"
        )]
    );
}

#[test]
fn console_write_puts_raw_bytes_on_the_console() {
    let mut harness = guest();
    harness.platform.buffer(HELPER).debug[..7].copy_from_slice(b"\x1b[0m\r\nx");
    harness.message(1, Syscall::Call, 2, ipc::invocation::CONSOLE_WRITE.0, &[7]);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.platform.console, b"\x1b[0m\r\nx");
    harness.message(
        1,
        Syscall::Call,
        2,
        ipc::invocation::CONSOLE_WRITE.0,
        &[ipc::MAX_DEBUG_BYTES as u64 + 1],
    );
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
}

#[test]
fn boot_rejects_vms_that_name_missing_objects() {
    let mut bad_route = system(0, 1);
    bad_route.vms[0].routes[0].endpoint = 2;
    assert_eq!(bad_route.try_boot().err(), Some(super::super::BootError::BadReference));
    let mut bad_fault_endpoint = system(0, 5);
    bad_fault_endpoint.vms[0].vm.fault_endpoint = 5;
    assert_eq!(bad_fault_endpoint.try_boot().err(), Some(super::super::BootError::BadReference));
    let mut bad_cpu = system(0, 1);
    bad_cpu.vms[0].vcpus[1].cpu = 2;
    assert_eq!(bad_cpu.try_boot().err(), Some(super::super::BootError::BadReference));
    let mut bad_cap = system(0, 1);
    bad_cap.threads[VMM].caps[1].object = 2;
    assert_eq!(bad_cap.try_boot().err(), Some(super::super::BootError::BadReference));
}

/// Runs `trap` and the device server's reply `(label, words)`, through the fast paths or
/// (`slow`) with a reschedule pending at each step, which forces the slow paths. The
/// device server is the VM's fault endpoint too.
fn forward_and_reply(slow: bool, trap: Trap, label: u32, words: &[u64]) -> Harness {
    let mut harness = booted(0, 0);
    harness.kernel.threads[VCPU0].context.x[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    harness.kernel.threads[VCPU0].context.elr = ENTRY + 4;
    if slow {
        harness.kernel.cpus[0].request_reschedule();
        harness.kernel.handle_vcpu_trap(0, &trap, &mut harness.platform);
    } else {
        enter_trap(&mut harness, &trap);
    }
    assert_eq!(harness.current(0) == Some(DEVICE), !slow, "only the fast path hands over at once");
    harness.schedule(0);
    assert_eq!(harness.current(0), Some(DEVICE));
    if slow {
        harness.kernel.cpus[0].request_reschedule();
    }
    harness.load_message(0, Syscall::ReplyRecv, 0, label, words);
    harness.kernel.handle_syscall(0, &mut harness.platform);
    assert_eq!(harness.current(0) == Some(VCPU0), !slow, "only the fast path hands back at once");
    harness.schedule(0);
    assert_eq!(harness.current(0), Some(VCPU0));
    harness
}

#[test]
fn forwarded_traps_end_the_same_with_and_without_the_fast_paths() {
    let msr = class(ec::SYSREG, 3 << 20 | 5 << 17 | 12 << 10 | 4 << 5 | 11 << 1);
    let cases = [
        (access(UART + 8, 1, 6, true, false, false), protocol::RESUME.0, vec![0x8001]),
        (access(UART + 8, 3, 6, false, true, true), protocol::RESUME.0, vec![]),
        (access(UART + 8, 2, 6, false, false, false), protocol::INJECT_DATA_ABORT.0, vec![]),
        (access(UART + 8, 3, 5, false, true, true), protocol::INJECT_DATA_ABORT.0, vec![]),
        (access(UART, 0, 31, false, false, false), protocol::RESUME.0, vec![0x55]),
        (access(UART, 2, 3, true, true, false), protocol::RESUME.0, vec![0x8000_0000, 7]),
        (access(UART, 3, 31, false, true, true), protocol::RESUME.0, vec![1]),
        (access(UART, 2, 5, false, false, false), 7, vec![1]),
        (class(ec::HVC64, 0), protocol::RESUME.0, vec![9, 8, 7]),
        (class(ec::SMC64, 0), protocol::INJECT_UNDEFINED.0, vec![]),
        (msr, protocol::RESUME.0, vec![]),
    ];
    for (index, (trap, label, words)) in cases.into_iter().enumerate() {
        let run = |slow| {
            let mut harness = forward_and_reply(slow, trap, label, &words);
            let request = injected(&mut harness, 0);
            let thread = |index: usize| {
                let tcb = &harness.kernel.threads[index];
                (tcb.state, tcb.context, tcb.reply_target.get())
            };
            (thread(DEVICE), thread(VCPU0), request, harness.received(DEVICE))
        };
        assert_eq!(run(false), run(true), "case {index}");
    }
}

/// A virtual CPU interface state with every field distinct.
fn snapshot(seed: u64) -> protocol::GicSnapshot {
    protocol::GicSnapshot {
        lrs: [seed, seed + 1, seed + 2, seed + 3],
        vmcr: seed + 4,
        ap0r0: seed + 5,
        ap1r0: seed + 6,
        hardware_lines: protocol::LINE_VIRTUAL_TIMER,
    }
}

#[test]
fn sync_and_write_lrs_of_a_stopped_vcpu_use_its_saved_state() {
    let mut harness = guest();
    harness.platform.gic.insert(1, (snapshot(0x10), protocol::HCR_NPIE));
    // Slot 1: vCPU 1, stopped; VCPU capabilities carry no rights.
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_SYNC.0, &[]);
    let received = harness.received(HELPER);
    assert_eq!((received.label, received.badge), (0, 0));
    assert_eq!(protocol::GicSnapshot::from_words(&received.words), Some(snapshot(0x10)));
    let write = protocol::LrWrite { lrs: [1 << 62 | 27, 0, 0, 1 << 62 | 30], hcr: protocol::HCR_UIE };
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_WRITE_LRS.0, &write.words());
    assert_eq!(harness.received(HELPER).words, [] as [u64; 0]);
    let (saved, hcr) = harness.platform.gic[&1];
    assert_eq!((saved.lrs, saved.vmcr, hcr), (write.lrs, 0x14, protocol::HCR_UIE));
    assert_eq!(harness.state(VCPU1), ThreadState::Stopped);
}

#[test]
fn a_vcpu_loaded_on_the_callers_cpu_is_saved_first() {
    let mut harness = guest();
    harness.platform.gic.insert(1, (snapshot(0x10), 0));
    harness.platform.loaded.insert(1, (1, snapshot(0x20)));
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_SYNC.0, &[]);
    assert_eq!(protocol::GicSnapshot::from_words(&harness.received(HELPER).words), Some(snapshot(0x20)));
    assert!(harness.platform.loaded.is_empty(), "its next run loads the saved state");
    harness.platform.loaded.insert(1, (1, snapshot(0x30)));
    let write = protocol::LrWrite { lrs: [7, 8, 9, 10], hcr: 0 };
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_WRITE_LRS.0, &write.words());
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.platform.gic[&1].0, protocol::GicSnapshot { lrs: write.lrs, ..snapshot(0x30) });
}

#[test]
fn a_vcpu_running_on_another_cpu_is_stopped_by_ipi_while_the_caller_waits() {
    let mut harness = guest();
    // Slot 3: vCPU 0, running on CPU 0 with its state live there.
    harness.platform.loaded.insert(0, (0, snapshot(0x40)));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    assert_eq!(harness.state(HELPER), ThreadState::BlockedSync);
    assert_eq!(harness.platform.stops, [0], "CPU 0 gets the stop SGI");
    assert_eq!(harness.current(1), None, "the caller does not spin");
    assert_eq!(harness.current(0), Some(VCPU0), "it runs until its CPU takes the SGI");
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.state(VCPU0), ThreadState::Held);
    assert_eq!(harness.schedule(0), None, "a held vCPU leaves its CPU");
    assert!(harness.platform.loaded.is_empty(), "its state was folded where it was live");
    assert_eq!(harness.platform.kicks, [1], "the caller's CPU runs it again");
    assert_eq!(harness.schedule(1), Some(HELPER));
    assert_eq!(protocol::GicSnapshot::from_words(&harness.received(HELPER).words), Some(snapshot(0x40)));
    // A second sync answers at once, with the same state; the vCPU stays held.
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    assert_eq!(protocol::GicSnapshot::from_words(&harness.received(HELPER).words), Some(snapshot(0x40)));
    assert_eq!(harness.platform.stops, [0]);
    let write = protocol::LrWrite { lrs: [1 << 62 | 33, 0, 0, 0], hcr: protocol::HCR_NPIE };
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_WRITE_LRS.0, &write.words());
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(
        harness.platform.gic[&0],
        (protocol::GicSnapshot { lrs: write.lrs, ..snapshot(0x40) }, write.hcr)
    );
    assert_eq!(harness.state(VCPU0), ThreadState::Ready, "released");
    assert_eq!(harness.schedule(0), Some(VCPU0));
}

#[test]
fn a_held_vcpu_may_wake_but_does_not_run_until_write_lrs() {
    let mut harness = guest();
    trap(&mut harness, access(UART, 2, 1, false, false, false));
    assert_eq!((harness.current(0), harness.state(VCPU0)), (Some(DEVICE), ThreadState::BlockedReply));
    // Not running and not loaded elsewhere: the caller's CPU folds it at once.
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert!(harness.platform.stops.is_empty());
    // The reply goes the slow way (no fast hand-over to a held vCPU) and finishes the load.
    harness.message(0, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[0x42]);
    assert_eq!(harness.current(0), None);
    assert_eq!(harness.state(VCPU0), ThreadState::Held);
    assert_eq!((context(&harness, VCPU0).x[1], context(&harness, VCPU0).elr), (0x42, ENTRY + 4));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_KICK.0, &[]);
    assert_eq!(harness.state(VCPU0), ThreadState::Held, "a kick does not release it");
    harness.message(
        1,
        Syscall::Call,
        3,
        ipc::invocation::VCPU_WRITE_LRS.0,
        &protocol::LrWrite::default().words(),
    );
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.schedule(0), Some(VCPU0));
    // Held while it was ready: it stays in its run queue until it comes up there.
    trap(&mut harness, class(ec::WFX, 0));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_KICK.0, &[]);
    assert_eq!(harness.state(VCPU0), ThreadState::Ready);
    assert_eq!(harness.schedule(0), None, "it comes up in the run queue, and is held");
    assert_eq!(harness.state(VCPU0), ThreadState::Held);
}

#[test]
fn write_lrs_without_a_hold_needs_a_vcpu_that_runs_nowhere() {
    let mut harness = guest();
    let write = protocol::LrWrite::default().words();
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_WRITE_LRS.0, &write);
    assert_eq!(harness.result(HELPER), Err(Error::IllegalOperation), "running on CPU 0");
    // Asleep in WFI but still loaded on CPU 0.
    trap(&mut harness, class(ec::WFX, 0));
    harness.platform.loaded.insert(0, (0, snapshot(0)));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_WRITE_LRS.0, &write);
    assert_eq!(harness.result(HELPER), Err(Error::IllegalOperation), "loaded on CPU 0");
    assert!(harness.platform.gic.is_empty(), "nothing changed");
}

#[test]
fn a_sync_in_progress_refuses_another_sync_and_write_lrs() {
    let mut harness = system(0, 1).boot();
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!((harness.current(0), harness.current(1)), (Some(VCPU0), Some(VMM)));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    assert_eq!(harness.state(VMM), ThreadState::BlockedSync);
    assert_eq!(harness.current(1), Some(HELPER));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    assert_eq!(harness.result(HELPER), Err(Error::IllegalOperation));
    harness.message(
        1,
        Syscall::Call,
        3,
        ipc::invocation::VCPU_WRITE_LRS.0,
        &protocol::LrWrite::default().words(),
    );
    assert_eq!(harness.result(HELPER), Err(Error::IllegalOperation));
    // The vCPU blocked in WFI before CPU 0 took the SGI: it is folded all the same.
    trap(&mut harness, class(ec::WFX, 0));
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedWfi);
    assert_eq!(harness.state(VMM), ThreadState::Ready);
    assert_eq!(harness.schedule(1), Some(VMM), "it outranks the helper");
    assert_eq!(harness.received(VMM).words.len(), protocol::GicSnapshot::WORDS);
}

#[test]
fn kick_wakes_only_a_vcpu_in_wfi() {
    let mut harness = guest();
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_KICK.0, &[]);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.current(0), Some(VCPU0), "a running vCPU runs on");
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_KICK.0, &[]);
    assert_eq!((harness.result(HELPER), harness.state(VCPU1)), (Ok(()), ThreadState::Stopped));
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!((harness.state(VCPU0), harness.current(0)), (ThreadState::BlockedWfi, None));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_KICK.0, &[]);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.state(VCPU0), ThreadState::Ready);
    assert_eq!(harness.platform.kicks, [0], "its CPU reschedules");
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 4, "past the WFI");
}

#[test]
fn gic_invocations_check_their_lengths() {
    let mut harness = guest();
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_SYNC.0, &[0]);
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_KICK.0, &[0]);
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_WRITE_LRS.0, &[0; 4]);
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_WRITE_LRS.0, &[0; 6]);
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
    // ICH_HCR_EL2.En is the kernel's.
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_WRITE_LRS.0, &[0, 0, 0, 0, 1]);
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
    assert!(harness.platform.gic.is_empty(), "nothing changed");
}

const VGIC_BADGE: u64 = 0x6a;

/// [`booted`] with the VMM's endpoint as the VM's vgic endpoint (and the device server's
/// as its fault endpoint).
fn with_vgic() -> Harness {
    let mut system = system(0, 0);
    system.vms[0].vm.vgic_endpoint = 1;
    system.vms[0].vm.vgic_badge = VGIC_BADGE;
    let mut harness = system.boot();
    harness.syscall(0, Syscall::Recv, 0);
    harness.syscall(1, Syscall::Recv, 0);
    harness
}

/// MSR ICC_SGI1R_EL1, x4 (`read`: MRS x4, ICC_SGI1R_EL1).
fn sgi1r(read: bool) -> Trap {
    class(ec::SYSREG, 3 << 20 | 5 << 17 | 12 << 10 | 4 << 5 | 11 << 1 | u64::from(read))
}

#[test]
fn sgi_writes_are_sent_to_the_vgic_server_and_the_vcpu_runs_on() {
    let mut harness = with_vgic();
    harness.kernel.threads[VCPU0].context.x[..7].copy_from_slice(&[10, 11, 12, 13, 0x0100_0001, 15, 16]);
    trap(&mut harness, sgi1r(false));
    assert_eq!(harness.current(0), Some(VCPU0), "a send: no reply to wait for");
    let after = context(&harness, VCPU0);
    assert_eq!((after.elr, &after.x[..7]), (ENTRY + 4, &[10, 11, 12, 13, 0x0100_0001, 15, 16][..]));
    assert_eq!(harness.platform.kicks, [1]);
    assert_eq!(harness.schedule(1), Some(VMM));
    let encoding: u64 = 3 << 14 | 12 << 7 | 11 << 3 | 5;
    assert_eq!(
        harness.received(VMM),
        Received {
            label: protocol::SYSREG.0,
            words: vec![encoding | 1 << 16, 0x0100_0001],
            badge: VGIC_BADGE
        }
    );
    // The server is busy: the vCPU waits until it takes the message, then runs on.
    for sgi0r in [false, true] {
        let mut trap_sgi = sgi1r(false);
        if sgi0r {
            trap_sgi.esr |= 2 << 17; // op2 7: ICC_SGI0R_EL1
        }
        trap(&mut harness, trap_sgi);
    }
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedSend(1));
    harness.syscall(1, Syscall::Recv, 0);
    assert_eq!(harness.received(VMM).words[0] & 0xffff, encoding);
    assert_eq!(harness.state(VCPU0), ThreadState::Ready);
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 8, "the second write waits unsent");
    assert_eq!(&context(&harness, VCPU0).x[..7], &[10, 11, 12, 13, 0x0100_0001, 15, 16]);
}

#[test]
fn with_a_vgic_other_system_registers_still_go_to_the_fault_endpoint() {
    let mut harness = with_vgic();
    trap(&mut harness, sgi1r(true));
    assert_eq!(harness.current(0), Some(DEVICE));
    assert_eq!(harness.received(DEVICE).badge, FAULT_BADGE);
}

/// vCPU 0 (running on CPU 0 with `live` as its interface state) takes an interrupt that
/// makes a vGIC event; returns the message the VMM got.
fn vgic_event(harness: &mut Harness, live: protocol::GicSnapshot) -> Received {
    harness.platform.loaded.insert(0, (0, live));
    harness.kernel.vcpu_interrupt(0, VcpuId(0));
    harness.kernel.cpus[0].request_reschedule();
    assert_eq!(harness.schedule(0), None, "the vCPU sends its event instead of running");
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedReply);
    assert_eq!(harness.schedule(1), Some(VMM));
    harness.received(VMM)
}

#[test]
fn an_interrupt_for_the_vcpu_is_a_vgic_event_and_load_lrs_answers_it() {
    let mut harness = with_vgic();
    let received = vgic_event(&mut harness, snapshot(0x50));
    let mut words = snapshot(0x50).words().to_vec();
    words.push(0);
    assert_eq!(received, Received { label: protocol::VGIC_EVENT.0, words, badge: VGIC_BADGE });
    let write =
        protocol::LrWrite { lrs: [1 << 62 | 27 | 1 << 61 | 27 << 32, 2, 3, 4], hcr: protocol::HCR_UIE };
    harness.message(1, Syscall::ReplyRecv, 0, protocol::LOAD_LRS.0, &write.words());
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY, "nothing to skip");
    assert_eq!(harness.kernel.take_vcpu_lrs(VcpuId(0)), Some(write));
    assert_eq!(injected(&mut harness, 0), None);
    // Malformed or other answers resume it unchanged.
    for (label, words) in
        [(protocol::LOAD_LRS, vec![0, 0, 0, 0, 1]), (protocol::LOAD_LRS, vec![]), (protocol::RESUME, vec![])]
    {
        vgic_event(&mut harness, snapshot(0x60));
        harness.message(1, Syscall::ReplyRecv, 0, label.0, &words);
        assert_eq!(harness.schedule(0), Some(VCPU0));
        assert_eq!(harness.kernel.take_vcpu_lrs(VcpuId(0)), None, "{label:?} {words:?}");
    }
    vgic_event(&mut harness, snapshot(0x60));
    harness.message(1, Syscall::ReplyRecv, 0, protocol::STOP.0, &[]);
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
}

#[test]
fn a_vgic_event_waiting_for_the_server_shows_list_registers_written_meanwhile() {
    let mut harness = with_vgic();
    vgic_event(&mut harness, snapshot(0x50));
    // The server answers with Reply and stays busy: the next event waits for it.
    harness.message(1, Syscall::Reply, 0, protocol::LOAD_LRS.0, &protocol::LrWrite::default().words());
    assert_eq!(harness.schedule(0), Some(VCPU0));
    harness.platform.loaded.insert(0, (0, snapshot(0x60)));
    harness.kernel.vcpu_interrupt(0, VcpuId(0));
    harness.kernel.cpus[0].request_reschedule();
    assert_eq!(harness.schedule(0), None);
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedSend(1));
    // Meanwhile the server syncs the vCPU and lists an interrupt in it.
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.schedule(1), Some(VMM));
    let listed = protocol::LrWrite { lrs: [0, 1 << 62 | 8197, 0, 0], hcr: 0 };
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_WRITE_LRS.0, &listed.words());
    harness.syscall(1, Syscall::Recv, 0);
    let event = harness.received(VMM);
    assert_eq!(event.label, protocol::VGIC_EVENT.0);
    let shown = protocol::GicSnapshot::from_words(&event.words[..8]).unwrap();
    assert_eq!(shown, protocol::GicSnapshot { lrs: listed.lrs, ..snapshot(0x60) });
}

#[test]
fn a_queued_sgi_write_after_a_vgic_event_keeps_its_words_through_write_lrs() {
    let mut harness = with_vgic();
    vgic_event(&mut harness, snapshot(0x50));
    // The server answers with Reply and stays busy: the next SGI write waits for it.
    harness.message(1, Syscall::Reply, 0, protocol::LOAD_LRS.0, &protocol::LrWrite::default().words());
    assert_eq!(harness.schedule(0), Some(VCPU0));
    harness.kernel.threads[VCPU0].context.x[4] = 0x0100_0001;
    trap(&mut harness, sgi1r(false));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedSend(1));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.schedule(1), Some(VMM));
    let listed = protocol::LrWrite { lrs: [1 << 62 | 1, 0, 0, 0], hcr: 0 };
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_WRITE_LRS.0, &listed.words());
    assert_eq!(harness.result(VMM), Ok(()));
    harness.syscall(1, Syscall::Recv, 0);
    let encoding: u64 = 3 << 14 | 12 << 7 | 11 << 3 | 5;
    assert_eq!(harness.received(VMM).words, [encoding | 1 << 16, 0x0100_0001]);
}

#[test]
fn without_a_vgic_endpoint_an_interrupt_only_ends_wfi() {
    let mut harness = guest();
    harness.kernel.vcpu_interrupt(0, VcpuId(0));
    harness.kernel.cpus[0].request_reschedule();
    assert_eq!(harness.schedule(0), Some(VCPU0), "it runs on, nothing sent");
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedWfi);
    harness.kernel.vcpu_interrupt(0, VcpuId(0));
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert!(harness.platform.kicks.is_empty() && harness.platform.console.is_empty());
}

#[test]
fn with_a_vgic_wfi_reports_an_unreported_timer_line_and_sleeps_on_a_reported_one() {
    use protocol::LINE_VIRTUAL_TIMER;
    let mut harness = with_vgic();
    let due =
        WakeState { now: 1_000, virtual_timer: TimerState { ctl: 1, cval: 900 }, ..WakeState::default() };
    harness.platform.wake_state = due;
    harness.platform.loaded.insert(0, (0, snapshot(0x70)));
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedReply, "a vGIC event, past the WFI");
    assert_eq!(harness.schedule(1), Some(VMM));
    assert_eq!(harness.received(VMM).label, protocol::VGIC_EVENT.0);
    harness.message(1, Syscall::ReplyRecv, 0, protocol::LOAD_LRS.0, &protocol::LrWrite::default().words());
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(context(&harness, VCPU0).elr, ENTRY + 4);
    // The server did not list it (the guest disabled the PPI): WFI sleeps.
    harness.platform.wake_state = WakeState { reported_lines: LINE_VIRTUAL_TIMER, ..due };
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedWfi);
    assert!(harness.platform.wakeups.is_empty(), "no deadline ahead");
}

#[test]
fn with_a_vgic_a_timer_deadline_in_wfi_wakes_the_vcpu_into_a_vgic_event() {
    let mut harness = with_vgic();
    harness.platform.wake_state =
        WakeState { now: 1_000, physical_timer: TimerState { ctl: 1, cval: 3_000 }, ..WakeState::default() };
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!(harness.platform.wakeups, [(0, 3_000)]);
    harness.platform.gic.insert(0, (snapshot(0x80), 0));
    harness.kernel.wake_sleepers(0, 3_000, &mut harness.platform);
    assert_eq!(harness.schedule(0), None, "it sends the event first");
    assert_eq!(harness.schedule(1), Some(VMM));
    assert_eq!(harness.received(VMM).words[..8], snapshot(0x80).words(), "its saved state");
}

#[test]
fn a_sync_makes_a_due_vgic_event_unnecessary() {
    let mut harness = with_vgic();
    trap(&mut harness, class(ec::WFX, 0));
    harness.kernel.vcpu_interrupt(0, VcpuId(0));
    assert_eq!(harness.state(VCPU0), ThreadState::Ready, "woken with an event due");
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    harness.message(
        1,
        Syscall::Call,
        3,
        ipc::invocation::VCPU_WRITE_LRS.0,
        &protocol::LrWrite::default().words(),
    );
    assert_eq!(harness.schedule(0), Some(VCPU0), "the server saw its state: no event");
}

#[test]
fn a_sync_sees_a_load_lrs_answer_not_yet_loaded_and_write_lrs_supersedes_it() {
    let mut harness = with_vgic();
    vgic_event(&mut harness, snapshot(0x90));
    let answer = protocol::LrWrite { lrs: [1 << 62 | 40, 0, 0, 0], hcr: protocol::HCR_NPIE };
    harness.message(1, Syscall::ReplyRecv, 0, protocol::LOAD_LRS.0, &answer.words());
    // Before vCPU 0 runs again (its state live on CPU 0), the helper syncs it.
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    assert_eq!(harness.state(HELPER), ThreadState::BlockedSync);
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.schedule(1), Some(HELPER));
    let synced = protocol::GicSnapshot::from_words(&harness.received(HELPER).words).unwrap();
    assert_eq!(synced, protocol::GicSnapshot { lrs: answer.lrs, ..snapshot(0x90) });
    assert_eq!(harness.kernel.take_vcpu_lrs(VcpuId(0)), None, "loaded into its saved state");
    let newer = protocol::LrWrite { lrs: [0, 1 << 62 | 41, 0, 0], hcr: 0 };
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_WRITE_LRS.0, &newer.words());
    assert_eq!(harness.platform.gic[&0].0.lrs, newer.lrs);
    assert_eq!(harness.schedule(0), Some(VCPU0));
}

fn stop(harness: &mut Harness, cpu: usize, slot: u32) {
    harness.message(cpu, Syscall::Call, slot, ipc::invocation::VCPU_STOP.0, &[]);
}

#[test]
fn stop_of_a_vcpu_running_on_another_cpu_waits_for_the_stop_sgi() {
    let mut harness = guest();
    // Slot 3: vCPU 0, running on CPU 0.
    stop(&mut harness, 1, 3);
    assert_eq!(harness.state(HELPER), ThreadState::BlockedSync);
    assert_eq!(harness.platform.stops, [0]);
    assert_eq!(harness.current(0), Some(VCPU0), "it runs until its CPU takes the SGI");
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
    assert_eq!(harness.schedule(0), None);
    assert_eq!(harness.platform.kicks, [1], "the caller's CPU runs it again");
    assert_eq!(harness.schedule(1), Some(HELPER));
    assert_eq!(harness.result(HELPER), Ok(()));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_START.0, &[0x4200_0000, 7]);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.schedule(0), Some(VCPU0));
    assert_eq!(injected(&mut harness, 0), Some(VcpuRequest::Reset));
}

#[test]
fn a_vcpu_that_blocks_before_the_stop_sgi_stops_at_once_and_both_callers_return() {
    let mut harness = guest();
    stop(&mut harness, 1, 3);
    assert_eq!(harness.state(HELPER), ThreadState::BlockedSync);
    // The VMM (same CPU, same caps) gets a message and tries too.
    harness.kernel.threads[VCPU0].context.elr = ENTRY + 4;
    harness.kernel.handle_vcpu_trap(0, &class(ec::HVC64, 0), &mut harness.platform);
    assert_eq!(harness.schedule(1), Some(VMM));
    stop(&mut harness, 1, 3);
    assert_eq!(harness.result(VMM), Ok(()), "blocked in its call, the vCPU stops at once");
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.state(HELPER), ThreadState::Ready, "the first stop is answered too");
}

#[test]
fn a_vcpu_stopped_in_a_call_ignores_the_late_reply() {
    let mut harness = guest();
    harness.kernel.threads[VCPU0].context.elr = ENTRY + 4;
    trap(&mut harness, class(ec::HVC64, 0));
    assert_eq!(harness.schedule(1), Some(VMM));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedReply);
    stop(&mut harness, 1, 3);
    assert_eq!(harness.result(VMM), Ok(()));
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
    harness.message(1, Syscall::Reply, 0, protocol::RESUME.0, &[5]);
    assert_eq!(harness.result(VMM), Err(Error::NoReplyTarget));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_START.0, &[0x4200_0000, 7]);
    harness.kernel.threads[VCPU0].context.x[1] = 0x11;
    // A ReplyRecv after the stop is a plain Recv: the restarted vCPU keeps its registers.
    harness.message(1, Syscall::ReplyRecv, 0, protocol::RESUME.0, &[5, 6]);
    assert_eq!(harness.state(VMM), ThreadState::BlockedRecv(1));
    assert_eq!(harness.schedule(0), Some(VCPU0));
    let restarted = context(&harness, VCPU0);
    assert_eq!((restarted.elr, restarted.x[0], restarted.x[1]), (0x4200_0000, 7, 0x11));
}

#[test]
fn a_vcpu_stopped_while_queued_on_its_server_is_never_delivered() {
    let mut harness = system(0, 1).boot();
    harness.syscall(0, Syscall::Recv, 0);
    assert_eq!((harness.current(0), harness.current(1)), (Some(VCPU0), Some(VMM)));
    trap(&mut harness, class(ec::HVC64, 0));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedSend(1));
    stop(&mut harness, 1, 3);
    assert_eq!(harness.result(VMM), Ok(()));
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
    harness.syscall(1, Syscall::Recv, 0);
    assert_eq!(harness.state(VMM), ThreadState::BlockedRecv(1), "nothing queued any more");
}

#[test]
fn ready_and_sleeping_vcpus_stop_at_once() {
    let mut harness = guest();
    harness.message(1, Syscall::Call, 1, ipc::invocation::VCPU_START.0, &[0x4100_0000, 42]);
    assert_eq!(harness.state(VCPU1), ThreadState::Ready);
    stop(&mut harness, 1, 1);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.state(VCPU1), ThreadState::Stopped);
    assert_eq!(injected(&mut harness, 1), None, "its reset is dropped with it");
    harness.platform.wake_state =
        WakeState { now: 1_000, virtual_timer: TimerState { ctl: 1, cval: 4_000 }, ..WakeState::default() };
    trap(&mut harness, class(ec::WFX, 0));
    assert_eq!(harness.state(VCPU0), ThreadState::BlockedWfi);
    stop(&mut harness, 1, 3);
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
    harness.kernel.wake_sleepers(0, 5_000, &mut harness.platform);
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_KICK.0, &[]);
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped, "neither its deadline nor a kick wakes it");
    assert_eq!(harness.schedule(0), None, "CPU 0's run queue is empty");
    stop(&mut harness, 1, 3);
    assert_eq!(harness.result(HELPER), Ok(()), "stopping a stopped vCPU changes nothing");
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_STOP.0, &[1]);
    assert_eq!(harness.result(HELPER), Err(Error::InvalidArgument));
}

#[test]
fn a_held_vcpu_stops_and_its_hold_ends() {
    let mut harness = guest();
    harness.platform.loaded.insert(0, (0, snapshot(0x40)));
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_SYNC.0, &[]);
    harness.kernel.complete_syncs(0, &mut harness.platform);
    assert_eq!(harness.state(VCPU0), ThreadState::Held);
    harness.schedule(1);
    stop(&mut harness, 1, 3);
    assert_eq!(harness.result(HELPER), Ok(()));
    assert_eq!(harness.state(VCPU0), ThreadState::Stopped);
    harness.message(1, Syscall::Call, 3, ipc::invocation::VCPU_START.0, &[ENTRY, DTB]);
    assert_eq!(harness.schedule(0), Some(VCPU0), "no hold left: it runs without VCPU_WRITE_LRS");
}
