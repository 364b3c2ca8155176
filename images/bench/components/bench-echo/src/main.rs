//! bench-echo: the server side of the IPC benchmarks; replies to every call at once with
//! the same label and no words, so the round trip measures the kernel alone.
#![no_std]
#![no_main]

include!(env!("HYP_CAPS"));
component_rt::entry!(main);

fn main() -> ! {
    let (mut request, _) = REQUESTS.recv().expect("recv on REQUESTS");
    loop {
        let reply = ipc::Message::new(request.label()).with_words(request.body());
        (request, _) = REQUESTS.reply_recv(&reply).expect("reply_recv on REQUESTS");
    }
}
