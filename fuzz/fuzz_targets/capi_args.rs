//! Fuzz target `capi_args`: the C API's exported functions called through
//! their Rust paths without a device, with arbitrary NULL and non-NULL
//! pointers, lengths, enum values and flags.
//!
//! The body and the properties it checks are in
//! `crates/core/tests/fuzz_capi/`, shared with the host regression test
//! `crates/core/tests/fuzz_capi_regressions.rs`. The C API crate builds no
//! rlib, so its source is compiled in here as the module `capi`.

#![no_main]

#[allow(dead_code)]
#[path = "../../crates/capi/src/lib.rs"]
mod capi;
// The C API's modules name each other from their crate root.
use capi::{args, command, device, error};

#[allow(dead_code)]
#[path = "../../crates/core/tests/fuzz_capi/mod.rs"]
mod fuzz_capi;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_capi::capi_args(data));
