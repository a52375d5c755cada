//! sgmap's project automation, run as `cargo xtask <command>`.
//!
//! Commands:
//! - `test [--device /dev/sgN] [FILTER]`: host tests, then every in-kernel test
//!   binary inside the user-mode Linux test bed (or against the given device);
//!   ends with `in-kernel: N passed, M failed, K skipped`.
//! - `testbed [--scsi-debug "PARAMS"] [--no-dio] [--timeout SECS] -- CMD [ARGS]`: boot the test
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
//! - `headers`: fetch the newest kernel's user-space headers (sid's
//!   `linux-libc-dev`) for the `bsg_uring_cmd` layout test.

mod bench;
mod codegen;
mod compare;
mod dist;
mod ffi;
mod fuzz;
mod headers;
mod peers;
mod test;
mod testbed;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

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
        Some("headers") => headers::headers(&ws, &args[1..]),
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
  test [--device /dev/sgN] [--kernel-only] [FILTER]   host tests, then in-kernel tests on every kernel
  testbed [--scsi-debug PARAMS] [--no-dio] [--timeout SECS] -- CMD...  run one command in the test bed
  soak [--commands N]                                millions of mixed commands, every byte checked
  demo                                               the three transfer modes on scsi_debug
  bench [FILTER...]                                  criterion benches in the test bed -> target/criterion
  compare [--rounds N] [--run-ms MS] [--quick]       sgmap vs sg_read and fio in one boot -> target/compare
  fuzz [--seconds N] [--keep] [TARGET...]            fuzz each target N s (default 60)
  codegen [--check]                                  regenerate (or check) include/sgmap.h
  dist [--prefix DIR] [--debug]                      the C library, header and sgmap.pc under DIR
  ffi                                                build the C/C++ examples, run them in the test bed
  headers                                            sid's linux-libc-dev, for the bsg_uring_cmd layout test

--kernel 6.1|6.12|newest|all (or a comma-separated list) picks the test bed's
kernels for test (default all), testbed, demo, soak, bench, compare and ffi
(default 6.1).";

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

/// The cargo target folder: `CARGO_TARGET_DIR`, or `target` in the workspace.
pub(crate) fn target_dir(ws: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                ws.join(d)
            }
        }
        _ => ws.join("target"),
    }
}

/// An executable cargo built.
#[derive(Debug, Clone)]
pub(crate) struct Built {
    /// The package the target belongs to.
    pub package: String,
    /// The target's name.
    pub name: String,
    /// Where it is.
    pub path: PathBuf,
}

/// Runs `cargo ARGS --message-format=json-render-diagnostics` and returns the
/// executables of the targets whose kind is `kind` (`bench`, `bin`, `test`, `example`).
pub(crate) fn build(ws: &Path, args: &[&str], kind: &str) -> Result<Vec<Built>> {
    let out = cargo()
        .args(args)
        .arg("--message-format=json-render-diagnostics")
        .current_dir(ws)
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("`cargo {}` failed", args.join(" ")).into());
    }
    let mut built = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-artifact" {
            continue;
        }
        let is_kind = v["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == kind));
        if let (true, Some(exe)) = (is_kind, v["executable"].as_str()) {
            built.push(Built {
                package: package_name(v["package_id"].as_str().unwrap_or_default()).to_string(),
                name: v["target"]["name"].as_str().unwrap_or_default().to_string(),
                path: exe.into(),
            });
        }
    }
    built.sort_by(|a, b| (&a.package, &a.name).cmp(&(&b.package, &b.name)));
    Ok(built)
}

/// The package name from a cargo package id (`path+file:///x/crates/core#sgmap@0.1.0`).
fn package_name(id: &str) -> &str {
    let tail = id.rsplit('#').next().unwrap_or(id);
    tail.split('@').next().unwrap_or(tail)
}

/// The `cargo` that runs us.
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}
