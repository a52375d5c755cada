//! Fuzz target `cdb`: `sgmap::cdb::Cdb::new` on arbitrary bytes, and the CDB
//! builders on integers read from them.
//!
//! The body and the properties it checks are in
//! `crates/core/tests/fuzz_bodies/`, shared with the host regression test.

#![no_main]

#[allow(dead_code)]
#[path = "../../crates/core/tests/fuzz_bodies/mod.rs"]
mod bodies;

libfuzzer_sys::fuzz_target!(|data: &[u8]| bodies::cdb(data));
