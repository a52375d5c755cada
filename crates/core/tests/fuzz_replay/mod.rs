//! Replaying a fuzz target's kept inputs through its body, shared by the
//! host tests `fuzz_regressions` and `fuzz_capi_regressions`.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The cargo-fuzz project at the workspace root.
pub(crate) fn fuzz_dir() -> PathBuf {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    core.ancestors().nth(2).unwrap_or(core).join("fuzz")
}

/// The files directly in `dir`, sorted; none when `dir` does not exist.
pub(crate) fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// The panic message in a caught payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic without a message)".into())
}

/// Runs `body` on every input of `target` under `root` (a cargo-fuzz
/// project): the kept corpus, which must not be empty, and the kept crash
/// inputs. Gives the number of inputs run, or a report naming every input
/// for which a property failed.
pub(crate) fn replay_in(root: &Path, target: &str, body: fn(&[u8])) -> Result<usize, String> {
    let corpus_dir = root.join("corpus").join(target);
    let corpus = files_in(&corpus_dir);
    if corpus.is_empty() {
        return Err(format!(
            "no seeds in {}: the kept corpus of `{target}` is missing; restore it from git or \
             run `cargo xtask fuzz {target}` and commit a minimised corpus",
            corpus_dir.display()
        ));
    }
    let regressions = files_in(&root.join("regressions").join(target));

    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| body(&data))) {
            let shown = data.get(..64).unwrap_or(&data);
            failures.push(format!(
                "{} ({} bytes, starting {shown:02x?}): {}",
                path.display(),
                data.len(),
                panic_text(payload.as_ref())
            ));
        }
    }
    let total = corpus.len() + regressions.len();
    if failures.is_empty() {
        Ok(total)
    } else {
        Err(format!(
            "fuzz target `{target}`: {} of {total} inputs break a property:\n{}",
            failures.len(),
            failures.join("\n")
        ))
    }
}
