//! cap-intruder: uses capabilities it was never granted or lacks the rights for, and
//! checks that each attempt fails with the right error while the system goes on.
#![no_std]
#![no_main]

component_rt::entry!(main);

fn main() -> ! {
    let message = ipc::Message::new(ipc::Label(0));
    let checks: [(&str, ipc::Result<()>, ipc::Error); 5] = [
        // Slot 40 was never granted: this component's table is shorter.
        (
            "unheld slot",
            ipc::Cap::<ipc::Endpoint>::from_index(40).send(&message),
            ipc::Error::InvalidCapability,
        ),
        // RECV_ONLY may receive but not send or call.
        ("send without right", RECV_ONLY.send(&message), ipc::Error::NoRights),
        ("call without right", RECV_ONLY.call(&message).map(|_| ()), ipc::Error::NoRights),
        // A notification capability used as an endpoint.
        (
            "wrong object type",
            ipc::Cap::<ipc::Endpoint>::from_index(SIGNAL_ONLY.index().0).send(&message),
            ipc::Error::WrongObjectType,
        ),
        // SIGNAL_ONLY may signal but not wait.
        ("wait without right", SIGNAL_ONLY.wait().map(|_| ()), ipc::Error::NoRights),
    ];
    let mut failures = 0u64;
    for (name, result, expected) in checks {
        if result != Err(expected) {
            log::warn!("{name}: got {result:?}, expected {expected:?}");
            failures += 1;
        }
    }
    log::info!("{} refused capability uses checked, {failures} failures", checks.len());
    let _ = RESULTS.call(&ipc::Message::new(ipc::Label(0)).with_words(&[failures]));
    unreachable!("the supervisor never replies")
}
