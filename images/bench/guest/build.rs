//! Links the bare-metal guest with `guest.ld`, at its guest-physical address. Host
//! builds (where the binary is an empty `main`) link normally.

fn main() {
    println!("cargo:rerun-if-changed=guest.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let directory = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{directory}/guest.ld");
    }
}
