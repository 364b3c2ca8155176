//! echo-server: answers every call with its words incremented by one and the caller's
//! badge in the last word, so a client can check both content and routing.
#![no_std]
#![no_main]

component_rt::entry!(main);

fn main() -> ! {
    let (mut request, mut badge) = REQUESTS.recv().expect("recv on REQUESTS");
    loop {
        // The badge takes one word, so the longest request loses its last word.
        let echoed = &request.body()[..request.body().len().min(ipc::MAX_WORDS - 1)];
        let mut words = [0u64; ipc::MAX_WORDS];
        for (out, word) in words.iter_mut().zip(echoed) {
            *out = word.wrapping_add(1);
        }
        words[echoed.len()] = badge.0;
        let reply = ipc::Message::new(request.label()).with_words(&words[..=echoed.len()]);
        (request, badge) = REQUESTS.reply_recv(&reply).expect("reply_recv on REQUESTS");
    }
}
