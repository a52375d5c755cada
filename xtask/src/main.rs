//! sgmap's project automation, run as `cargo xtask <command>`.
//!
//! Commands:
//! - `test [--device /dev/sgN] [FILTER]`: host tests, then every in-kernel test
//!   binary inside the user-mode Linux test bed (or against the given device);
//!   ends with `in-kernel: N passed, M failed, K skipped`.
//! - `testbed [--scsi-debug "PARAMS"] [--no-dio] -- CMD [ARGS]`: boot the test
//!   bed and run one command in it, with its output and exit status.
//! - `demo`: the three transfer modes on the built-in scsi_debug disk.
//! - `bench [FILTER...]`: the criterion benches inside the test bed (scsi_debug
//!   `delay=0`, then `ndelay=100000`); reports copied to `target/criterion`.
//! - `compare [--rounds N] [--run-ms MS] [--sizes LIST] [--quick]`: sgmap's
//!   three modes beside sg_read and fio's sg engine in one boot; one table,
//!   plus markdown, JSON and plots in `target/compare`.
//! - `fuzz [--seconds N] [--keep] [TARGET...]`: the cargo-fuzz targets under
//!   `fuzz/`, a bounded time each; crash inputs go to `fuzz/regressions/`.
//! - `codegen [--check]`: regenerate (or check) the C header include/sgmap.h.
//! - `dist [--prefix DIR] [--debug]`: libsgmap.so, libsgmap.a, sgmap.h and
//!   sgmap.pc under a prefix.
//! - `ffi`: build the C and C++ examples and run them inside the test bed.

mod bench;
mod codegen;
mod compare;
mod dist;
mod ffi;
mod fuzz;
mod peers;
mod test;
mod testbed;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Errors are reported as text: xtask is a developer tool.
pub(crate) type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ws = workspace_root();
    let result = match args.first().map(String::as_str) {
        Some("test") => test::test(&ws, &args[1..]),
        Some("testbed") => test::testbed(&ws, &args[1..]),
        Some("demo") => test::demo(&ws, &args[1..]),
        Some("soak") => test::soak(&ws, &args[1..]),
        Some("bench") => bench::bench(&ws, &args[1..]),
        Some("compare") => compare::compare(&ws, &args[1..]),
        Some("codegen") => codegen::codegen(&ws, &args[1..]),
        Some("dist") => dist::dist(&ws, &args[1..]),
        Some("ffi") => ffi::ffi(&ws, &args[1..]),
        Some("fuzz") => fuzz::fuzz(&ws, &args[1..]),
        Some("help") | Some("--help") | Some("-h") | None => {
            eprintln!("{}", USAGE);
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: cargo xtask <command>
  test [--device /dev/sgN] [--kernel-only] [FILTER]   host tests, then in-kernel tests
  testbed [--scsi-debug PARAMS] [--no-dio] -- CMD...  run one command in the test bed
  demo                                               the three transfer modes on scsi_debug
  bench [FILTER...]                                  criterion benches in the test bed -> target/criterion
  compare [--rounds N] [--run-ms MS] [--quick]       sgmap vs sg_read and fio in one boot -> target/compare
  fuzz [--seconds N] [--keep] [TARGET...]            fuzz each target N s (default 60)
  codegen [--check]                                  regenerate (or check) include/sgmap.h
  dist [--prefix DIR] [--debug]                      the C library, header and sgmap.pc under DIR
  ffi                                                build the C/C++ examples, run them in the test bed";

/// The workspace root, found from this crate's manifest folder.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the workspace root")
        .to_path_buf()
}

/// Runs a command, failing with its name when it does not succeed.
pub(crate) fn cmd_ok(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}").into())
    }
}

/// The `cargo` that runs us.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}
