//! bench-echo: the server side of the IPC benchmarks; replies to every call at once with
//! the same label and words, so the round trip measures the kernel alone.
//!
//! It receives and replies with the register-only `ShortMessage` API and answers with the
//! header it received: a message longer than the registers hold left its other words in
//! this thread's IPC buffer, and the kernel takes them from there for the reply, so long
//! messages are echoed whole without being copied at EL0.
#![no_std]
#![no_main]

component_rt::entry!(main);

fn main() -> ! {
    let (mut request, _) = REQUESTS.recv_short().expect("recv on REQUESTS");
    loop {
        (request, _) = REQUESTS.reply_recv_short(&request).expect("reply_recv on REQUESTS");
    }
}
