//! bench-peer: on the other CPU, answers each notification from the runner with one back.
#![no_std]
#![no_main]

component_rt::entry!(main);

fn main() -> ! {
    loop {
        MINE.wait().expect("wait on MINE");
        RUNNER.signal().expect("signal RUNNER");
    }
}
