//! `DebugWrite`: every component line is tagged with its name and cannot pass for a
//! kernel line.

use super::*;

fn write(harness: &mut Harness, bytes: &[u8]) -> Vec<String> {
    harness.platform.console.clear();
    let caller = harness.current(0).unwrap();
    harness.platform.buffer(caller).debug[..bytes.len()].copy_from_slice(bytes);
    harness.load(0, Syscall::DebugWrite as u64, 0, bytes.len() as u64, [0; 4]);
    harness.enter(0);
    assert_eq!(harness.received(caller), Received { label: 0, words: vec![], badge: 0 });
    harness.platform.lines()
}

fn pinger() -> Harness {
    System::new(1, 0, 0).with(thread("pinger", 1, 0, &[])).boot()
}

#[test]
fn a_line_is_printed_with_the_thread_name() {
    let mut harness = pinger();
    assert_eq!(write(&mut harness, b"hello\n"), ["[pinger] hello"]);
    assert_eq!(harness.platform.console, b"[pinger] hello\n");
}

#[test]
fn every_piece_is_a_line_of_its_own() {
    let mut harness = pinger();
    assert_eq!(write(&mut harness, b"one\ntwo"), ["[pinger] one", "[pinger] two"]);
    assert_eq!(write(&mut harness, b"a\n\nb\n"), ["[pinger] a", "[pinger] ", "[pinger] b"]);
    assert_eq!(write(&mut harness, b"\n"), ["[pinger] "]);
    assert_eq!(write(&mut harness, b""), Vec::<String>::new());
}

#[test]
fn control_and_non_ascii_bytes_cannot_forge_a_kernel_line() {
    let mut harness = pinger();
    let lines = write(&mut harness, b"\r[kernel] PASS\x1b[2K\xc2\x85\x00\tok\n");
    assert_eq!(lines, ["[pinger] ?[kernel] PASS?[2K???\tok"]);
    let lines = write(&mut harness, b"x\n[kernel] all tests passed\n");
    assert_eq!(lines, ["[pinger] x", "[pinger] [kernel] all tests passed"]);
}

#[test]
fn a_full_buffer_prints_as_one_line() {
    let mut harness = pinger();
    let bytes = [b'z'; ipc::MAX_DEBUG_BYTES];
    let lines = write(&mut harness, &bytes);
    assert_eq!(lines, [format!("[pinger] {}", "z".repeat(ipc::MAX_DEBUG_BYTES))]);
}

#[test]
fn a_long_name_is_cut_but_the_text_is_whole() {
    let name: &'static str = Box::leak("n".repeat(100).into_boxed_str());
    let mut harness = System::new(1, 0, 0).with(thread(name, 1, 0, &[])).boot();
    let bytes = [b'z'; ipc::MAX_DEBUG_BYTES];
    let lines = write(&mut harness, &bytes);
    assert_eq!(lines, [format!("[{}] {}", "n".repeat(64), "z".repeat(ipc::MAX_DEBUG_BYTES))]);
}
