//! Links the bare-metal kernel binary with `kernel.ld`; host builds (tests) need nothing.

fn main() {
    println!("cargo:rerun-if-changed=kernel.ld");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bin=kernel=-T{manifest_dir}/kernel.ld");
    }
}
