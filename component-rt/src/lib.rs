//! component-rt: what every EL0 component links: the entry point, a panic handler that
//! stops the component (so the kernel reports it as a fault) and a `log` backend that
//! prints through the kernel console (rate-limiting guest-caused lines: [`guest_event`]),
//! and faster `memcpy`/`memset` than the generic ones.
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! component_rt::entry!(main);
//! fn main() -> ! {
//!     log::info!("hello");
//!     loop { let (msg, badge) = ENDPOINT.recv().unwrap(); /* ... */ }
//! }
//! ```
//!
//! The kernel starts the thread at `_start` with SP_EL0 at the top of its stack; xtask
//! links it with `component.ld` beside this file.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod guest_event;
mod line;
#[cfg(target_os = "none")]
mod mem;

pub use line::LineBuffer;

/// Sets up a component crate, invoked at its root: on the bare-metal target, the
/// constants xtask generated from the manifest (its capabilities and maps, the file
/// `HYP_CAPS` names) and `_start`, which installs the logger and calls `$main` (a
/// `fn() -> !`); on the host, where a component with a library is built for its tests,
/// an empty `main`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[cfg(target_os = "none")]
        include!(env!("HYP_CAPS"));

        /// Entry point: the kernel starts the component's thread here.
        #[cfg(target_os = "none")]
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text._start")]
        pub extern "C" fn _start() -> ! {
            $crate::init();
            let main: fn() -> ! = $main;
            main()
        }

        /// Host builds (for the library's tests) have nothing to run.
        #[cfg(not(target_os = "none"))]
        fn main() {}
    };
}

#[cfg(target_os = "none")]
mod target {
    use super::LineBuffer;
    use super::guest_event::SiteCounts;
    use core::fmt::Write;
    use ipc::GUEST_EVENT;

    struct KernelConsole;

    /// Occurrences of guest-caused lines per call site.
    static GUEST_EVENTS: SiteCounts = SiteCounts::new();

    impl log::Log for KernelConsole {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }

        fn log(&self, record: &log::Record) {
            let mut line = LineBuffer::new();
            // A line longer than the buffer is cut, never an error.
            if record.target() == GUEST_EVENT {
                let site = (record.file().unwrap_or(""), record.line().unwrap_or(0));
                let Some(count) = GUEST_EVENTS.admit(site.0, site.1) else { return };
                let _ = write!(line, "{:<5} {} (guest event {count} here)", record.level(), record.args());
            } else {
                let _ = write!(line, "{:<5} {}", record.level(), record.args());
            }
            line.push_newline();
            ipc::debug_write(line.as_bytes());
        }

        fn flush(&self) {}
    }

    static LOGGER: KernelConsole = KernelConsole;

    /// Installs the logger; called by `_start`.
    pub fn init() {
        // Only `_start` calls this, once, so the logger cannot be set already.
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(log::LevelFilter::Info);
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let mut line = LineBuffer::new();
        let _ = write!(line, "panic: {info}");
        line.push_newline();
        ipc::debug_write(line.as_bytes());
        // An undefined instruction stops this thread: the kernel reports the fault to the
        // component's fault endpoint, which is how a supervisor learns of the panic.
        loop {
            // SAFETY: `udf` only raises an exception; it touches no memory or registers.
            unsafe { core::arch::asm!("udf #0") };
        }
    }
}

#[cfg(target_os = "none")]
pub use target::init;
