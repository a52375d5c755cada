//! Gives libsgmap.so its SONAME.
//!
//! The SONAME carries the ABI version: `libsgmap.so.MAJOR` from 1.0 on, and
//! `libsgmap.so.0.MINOR` before, because a 0.x minor release may break the
//! ABI (the semver rule cargo applies). A program linked against 0.1 then
//! refuses to start with a 0.2 library instead of misbehaving.

fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_default();
    let minor = std::env::var("CARGO_PKG_VERSION_MINOR").unwrap_or_default();
    let abi = if major == "0" {
        format!("0.{minor}")
    } else {
        major
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsgmap.so.{abi}");
    println!("cargo:rerun-if-changed=build.rs");
}
