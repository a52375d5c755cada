//! Replays the fuzz corpus on stable Rust, as part of the host tests.
//!
//! For every fuzz target (`fuzz/fuzz_targets/<target>.rs`) this runs the
//! target's body (`tests/fuzz_bodies/`, the same code the fuzzer runs) on
//! every kept seed under `fuzz/corpus/<target>/` and every crash input kept
//! under `fuzz/regressions/<target>/`, and fails, naming each file, when a
//! property does not hold for one of them. `cargo xtask fuzz` grows new
//! inputs; this keeps what was found from coming back.

mod fuzz_bodies;
mod fuzz_replay;

use std::fs;

use fuzz_replay::{files_in, fuzz_dir, replay_in};

/// Replays the workspace's corpus and regressions of `target`.
fn replay(target: &str) {
    let body = fuzz_bodies::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|&(_, body)| body)
        .unwrap_or_else(|| panic!("no body for fuzz target `{target}` in tests/fuzz_bodies"));
    if let Err(report) = replay_in(&fuzz_dir(), target, body) {
        panic!("{report}");
    }
}

#[test]
fn sense_corpus_and_regressions() {
    replay("sense");
}

#[test]
fn cdb_corpus_and_regressions() {
    replay("cdb");
}

#[test]
fn response_corpus_and_regressions() {
    replay("response");
}

/// The bodies here and the fuzz targets under `fuzz/fuzz_targets/` are the
/// same set, so no target goes without its regression test.
#[test]
fn every_fuzz_target_has_a_body() {
    let mut on_disk: Vec<String> = files_in(&fuzz_dir().join("fuzz_targets"))
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    on_disk.sort();
    // `capi_args` is replayed by crates/capi/tests/fuzz_capi_regressions.rs,
    // against the C API's rlib.
    let mut bodies: Vec<String> = fuzz_bodies::TARGETS
        .iter()
        .map(|(name, _)| name.to_string())
        .chain(["capi_args".to_owned()])
        .collect();
    bodies.sort();
    assert_eq!(
        on_disk, bodies,
        "fuzz/fuzz_targets/*.rs and tests/fuzz_bodies TARGETS disagree: add the body or the \
         target, and a #[test] that replays it"
    );
}

/// The replay itself: a failing input is reported by name (a passing one
/// is not), kept crash inputs are run too, and a missing corpus is an error
/// rather than a silent pass.
#[test]
fn replay_reports_failing_inputs_and_a_missing_corpus() {
    fn refuses_ff(data: &[u8]) {
        assert_ne!(data.first(), Some(&0xff), "first byte 0xff");
    }
    let root = std::env::temp_dir().join(format!("sgmap-fuzz-replay-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let corpus = root.join("corpus/t");
    let regressions = root.join("regressions/t");
    fs::create_dir_all(&corpus).unwrap();
    fs::create_dir_all(&regressions).unwrap();
    fs::write(corpus.join("good"), [0x00, 0x01]).unwrap();

    assert_eq!(replay_in(&root, "t", refuses_ff), Ok(1));
    fs::write(regressions.join("crash-1"), [0xff, 0x02]).unwrap();
    let report = replay_in(&root, "t", refuses_ff).unwrap_err();
    let missing = replay_in(&root, "absent", refuses_ff).unwrap_err();
    let _ = fs::remove_dir_all(&root);

    assert!(report.contains("1 of 2 inputs"), "{report}");
    assert!(
        report.contains("crash-1") && report.contains("first byte 0xff"),
        "{report}"
    );
    assert!(!report.contains("good"), "{report}");
    assert!(missing.contains("no seeds in"), "{missing}");
}
