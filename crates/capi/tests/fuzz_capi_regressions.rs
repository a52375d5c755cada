//! Replays the kept inputs of the fuzz target `capi_args` (the C API's
//! argument checks, `tests/fuzz_capi/`) on stable Rust, as part of the host
//! tests: every file under `fuzz/corpus/capi_args/` and
//! `fuzz/regressions/capi_args/`, against the C API's rlib.

// The fuzz body names the C API as `crate::capi`, here as in the fuzz target.
use sgmap_capi as capi;

mod fuzz_capi;
#[path = "../../core/tests/fuzz_replay/mod.rs"]
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
