//! Creating objects from boot-info, and the accessors the shell uses.

use super::super::BootError;
use super::*;
use crate::{SPSR_EL0T, UserContext};
use bootinfo::{Header, ParseError};

#[test]
fn every_thread_starts_ready_and_each_cpu_runs_its_highest_priority() {
    let mut harness = System::new(2, 0, 0)
        .with(thread("low", 5, 0, &[]))
        .with(thread("high", 9, 0, &[]))
        .with(thread("other-cpu", 1, 1, &[]))
        .boot();
    assert_eq!(harness.current(0), Some(1));
    assert_eq!(harness.current(1), Some(2));
    assert_eq!(harness.state(0), ThreadState::Ready);
    assert_eq!(harness.state(1), ThreadState::Running);
    assert_eq!(harness.state(2), ThreadState::Running);
    // Nothing changed: the choice stands.
    assert_eq!(harness.schedule(0), Some(1));
    assert_eq!(harness.schedule(1), Some(2));
}

#[test]
fn initial_context_enters_el0_at_the_entry_with_the_stack_top() {
    let mut harness = System::new(1, 0, 0).with(thread("a", 1, 0, &[])).with(thread("b", 1, 0, &[])).boot();
    let context = harness.kernel.context_ptr(ThreadId(1));
    // SAFETY: the pointer is into the kernel, which is alive and not otherwise borrowed.
    let context = unsafe { *context };
    assert_eq!(
        context,
        UserContext {
            elr: 0x40_0100,
            sp_el0: ipc::layout::STACK_TOP,
            spsr: SPSR_EL0T,
            ..UserContext::default()
        }
    );
}

#[test]
fn context_ptr_is_the_thread_context_that_syscalls_read() {
    let mut harness = System::new(1, 0, 0).with(thread("a", 1, 0, &[])).boot();
    let pointer = harness.kernel.context_ptr(ThreadId(0));
    assert_eq!(pointer, harness.kernel.context_ptr(ThreadId(0)), "stable across calls");
    // The vectors store the registers of a `Yield` straight into the context.
    // SAFETY: as above; no reference into the kernel is alive.
    unsafe {
        (*pointer).x[7] = Syscall::Yield as u64;
        (*pointer).x[0] = 77;
    }
    harness.enter(0);
    // SAFETY: as above.
    assert_eq!(unsafe { (*pointer).x[0] }, 0, "the kernel wrote the result where the vectors load it");
}

#[test]
fn thread_kind_names_the_boot_info_vspace() {
    let mut system = System::new(1, 0, 0).with(thread("a", 1, 0, &[])).with(thread("b", 1, 0, &[]));
    system.vspaces = 3;
    system.threads[1].tcb.vspace = 2;
    let harness = system.boot();
    assert_eq!(harness.kernel.thread_kind(ThreadId(0)), crate::ThreadKind::Component { vspace: 0 });
    assert_eq!(harness.kernel.thread_kind(ThreadId(1)), crate::ThreadKind::Component { vspace: 2 });
}

#[test]
fn a_cpu_without_threads_idles() {
    let mut harness = System::new(2, 0, 0).with(thread("a", 1, 0, &[])).boot();
    assert_eq!(harness.current(1), None);
    assert_eq!(harness.schedule(1), None);
    // Kernel entries on an idle CPU have no thread to act for.
    harness.kernel.handle_syscall(1, &mut harness.platform);
    harness.kernel.handle_fault(1, 0, 0, &mut harness.platform);
    harness.kernel.timer_tick(1);
    assert_eq!(harness.schedule(1), None);
    assert!(harness.platform.console.is_empty());
}

#[test]
fn the_kernel_is_small_enough_for_a_static() {
    // The shell keeps it in a static and builds it once at boot; this bound keeps an eye
    // on its size (threads dominate it, 512 bytes each for the fast paths' addressing).
    assert!(
        core::mem::size_of::<Kernel<'static>>() < 96 * 1024,
        "{}",
        core::mem::size_of::<Kernel<'static>>()
    );
}

#[test]
fn too_many_objects_are_refused() {
    let mut many_threads = System::new(1, 0, 0);
    for _ in 0..=bootinfo::MAX_THREADS {
        many_threads = many_threads.with(thread("t", 1, 0, &[]));
    }
    assert_eq!(many_threads.try_boot().err(), Some(BootError::TooManyObjects));
    let many_cpus = System::new(bootinfo::MAX_CPUS as u32 + 1, 0, 0);
    assert_eq!(many_cpus.try_boot().err(), Some(BootError::TooManyObjects));
    let many_endpoints = System::new(1, bootinfo::MAX_ENDPOINTS + 1, 0);
    assert_eq!(many_endpoints.try_boot().err(), Some(BootError::TooManyObjects));
    let many_notifications = System::new(1, 0, bootinfo::MAX_NOTIFICATIONS + 1);
    assert_eq!(many_notifications.try_boot().err(), Some(BootError::TooManyObjects));
    let mut many_vspaces = System::new(1, 0, 0);
    many_vspaces.vspaces = bootinfo::MAX_VSPACES + 1;
    assert_eq!(many_vspaces.try_boot().err(), Some(BootError::TooManyObjects));
    let mut many_irqs = System::new(1, 0, 1);
    many_irqs.irqs = vec![Irq::default(); bootinfo::MAX_IRQS + 1];
    assert_eq!(many_irqs.try_boot().err(), Some(BootError::TooManyObjects));
}

/// A named way to break a valid system.
type Breakage = (&'static str, fn(&mut System));

#[test]
fn references_to_missing_objects_are_refused() {
    let base = System::new(2, 1, 1).with(thread("a", 1, 0, &[]));
    assert!(base.try_boot().is_ok());
    let broken: [Breakage; 13] = [
        ("endpoint cap", |s| s.threads[0].caps = vec![endpoint_cap(1, 0, 0)]),
        ("notification cap", |s| s.threads[0].caps = vec![notification_cap(1, 0, 0)]),
        ("irq cap", |s| s.threads[0].caps = vec![cap_of(cap_kind::IRQ_HANDLER, 0)]),
        ("unknown kind", |s| s.threads[0].caps = vec![cap_of(9, 0)]),
        ("cpu", |s| s.threads[0].tcb.cpu = 2),
        ("vspace", |s| s.threads[0].tcb.vspace = 1),
        ("fault endpoint", |s| s.threads[0].tcb.fault_endpoint = 1),
        ("misaligned ipc buffer", |s| s.threads[0].tcb.ipc_buffer = 0x10_0008),
        ("irq notification", |s| s.irqs = vec![Irq { intid: 34, notification: 1, ..Irq::default() }]),
        ("irq cpu", |s| s.irqs = vec![Irq { intid: 34, cpu: 2, ..Irq::default() }]),
        ("thread cpu beyond MAX_CPUS", |s| s.threads[0].tcb.cpu = 200),
        ("bound notification", |s| s.threads[0].tcb.bound_notification = 1),
        ("notification bound twice", |s| {
            s.threads[0].tcb.bound_notification = 0;
            s.threads.push(s.threads[0].clone());
        }),
    ];
    for (what, breaks) in broken {
        let mut system = base.clone();
        breaks(&mut system);
        assert_eq!(system.try_boot().err(), Some(BootError::BadReference), "{what}");
    }
    // Kinds whose object index means nothing, and empty slots, are fine.
    let mut system = base.clone();
    system.threads[0].caps = vec![cap_of(cap_kind::CONTROL, 1234), cap_of(cap_kind::NULL, 99)];
    assert!(system.try_boot().is_ok());
}

#[test]
fn a_table_past_the_end_of_the_blob_is_a_parse_error() {
    let blob = System::new(1, 0, 0).with(thread("a", 1, 0, &[])).blob();
    let mut words: Vec<u64> = blob
        .chunks(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("blobs are 8-byte multiples")))
        .collect();
    // Claim 1000 thread records.
    let count_offset = core::mem::offset_of!(Header, tcbs) + 4;
    let word = &mut words[count_offset / 8];
    let shift = (count_offset % 8) * 8;
    *word = (*word & !(0xffff_ffff << shift)) | (1000 << shift);
    let words = Vec::leak(words);
    // SAFETY: leaked u64s, viewed as bytes, live forever.
    let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), blob.len()) };
    let result = Kernel::new(BootInfo::parse(bytes).unwrap());
    assert_eq!(result.err(), Some(BootError::Parse(ParseError::Truncated)));
}
