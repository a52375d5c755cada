//! Replays the kept inputs of the fuzz target `capi_args` (the C API's
//! argument checks, `tests/fuzz_capi/`) on stable Rust, as part of the host
//! tests: every file under `fuzz/corpus/capi_args/` and
//! `fuzz/regressions/capi_args/`.
//!
//! The C API crate builds no rlib, so its source is compiled in here, as it
//! is in the fuzz target. This test has no libtest harness (see `[[test]]`
//! in Cargo.toml): rustc then leaves the C API's own `#[test]` functions
//! out instead of running them a second time here; libtest-mimic gives it
//! the usual command line and summary.

#[allow(dead_code, unused_imports, unreachable_pub, missing_docs, clippy::all)]
#[path = "../../capi/src/lib.rs"]
mod capi;
// The C API's modules name each other from their crate root.
use capi::{args, command, device, error};

mod fuzz_capi;
mod fuzz_replay;

use libtest_mimic::{Arguments, Failed, Trial};

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let trials = vec![Trial::test("capi_args_corpus_and_regressions", || {
        fuzz_replay::replay_in(&fuzz_replay::fuzz_dir(), "capi_args", fuzz_capi::capi_args)
            .map(|_| ())
            .map_err(Failed::from)
    })];
    libtest_mimic::run(&args, trials).exit_code()
}
