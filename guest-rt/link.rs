//! The build script of every program built on guest-rt (its Cargo.toml says
//! `build = "<path to>/guest-rt/link.rs"`): links the bare-metal binary with `guest.ld`
//! beside this file, copied into OUT_DIR. Host builds (where the binary is an empty
//! `main`) link normally.

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
        let script = std::path::Path::new(&out_dir).join("guest.ld");
        // `include_str!` makes cargo rebuild and rerun this script when guest.ld changes.
        std::fs::write(&script, include_str!("guest.ld")).expect("OUT_DIR is writable");
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
