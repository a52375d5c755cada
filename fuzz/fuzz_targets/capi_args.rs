//! Fuzz target `capi_args`: the C API's exported functions called through
//! their Rust paths without a device, with arbitrary NULL and non-NULL
//! pointers, lengths, enum values and flags.
//!
//! The body and the properties it checks are in
//! `crates/capi/tests/fuzz_capi/`, shared with the host regression test
//! `crates/capi/tests/fuzz_capi_regressions.rs`; both call the C API's rlib.

#![no_main]

// The fuzz body names the C API as `crate::capi`.
use sgmap_capi as capi;

#[allow(dead_code)]
#[path = "../../crates/capi/tests/fuzz_capi/mod.rs"]
mod fuzz_capi;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_capi::capi_args(data));
