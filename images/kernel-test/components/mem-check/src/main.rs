//! mem-check: checks component-rt's assembly `memcpy` and `memset` on the target, for
//! every length 0..80 at every source and destination offset 0..8 (so both the word path
//! and the byte path run), including that nothing outside the destination changes.
#![no_std]
#![no_main]

component_rt::entry!(main);

/// Bytes around each destination that must stay untouched.
const GUARD: usize = 16;
/// Longest length checked.
const LENGTHS: usize = 80;

/// A pattern byte that differs between positions and buffers.
fn pattern(index: usize, salt: u8) -> u8 {
    (index as u8).wrapping_mul(31).wrapping_add(salt)
}

fn main() -> ! {
    let mut failures = 0u64;
    let mut checks = 0u64;
    let mut source = [0u8; LENGTHS + 8];
    for (index, byte) in source.iter_mut().enumerate() {
        *byte = pattern(index, 7);
    }
    for length in 0..LENGTHS {
        for source_offset in 0..8 {
            for destination_offset in 0..8 {
                let mut buffer = [0xa5u8; LENGTHS + 8 + 2 * GUARD];
                let start = GUARD + destination_offset;
                // SAFETY: both ranges lie inside their arrays and do not overlap.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        core::hint::black_box(source.as_ptr().add(source_offset)),
                        buffer.as_mut_ptr().add(start),
                        core::hint::black_box(length),
                    )
                };
                let copied = buffer[start..start + length] == source[source_offset..source_offset + length];
                let outside_intact =
                    buffer[..start].iter().chain(&buffer[start + length..]).all(|byte| *byte == 0xa5);
                // SAFETY: the range lies inside `buffer`.
                unsafe {
                    core::ptr::write_bytes(
                        buffer.as_mut_ptr().add(start),
                        core::hint::black_box(0x3c),
                        core::hint::black_box(length),
                    )
                };
                let set = buffer[start..start + length].iter().all(|byte| *byte == 0x3c);
                let still_intact =
                    buffer[..start].iter().chain(&buffer[start + length..]).all(|byte| *byte == 0xa5);
                checks += 1;
                if !(copied && outside_intact && set && still_intact) {
                    failures += 1;
                    if failures <= 4 {
                        log::warn!("length {length}, offsets {source_offset}/{destination_offset}: wrong");
                    }
                }
            }
        }
    }
    log::info!("{checks} memcpy/memset checks, {failures} failures");
    let _ = RESULTS.call(&ipc::Message::new(ipc::Label(0)).with_words(&[failures]));
    unreachable!("the supervisor never replies")
}
