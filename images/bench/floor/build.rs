//! Links the bare-metal program with `floor.ld`, at the address where QEMU loads it. Host
//! builds (where the binary is an empty `main`) link normally.

fn main() {
    println!("cargo:rerun-if-changed=floor.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let directory = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{directory}/floor.ld");
    }
}
