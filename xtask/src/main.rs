//! sgmap's project automation, run as `cargo xtask <command>`.
//!
//! The commands and their flags are in [`cli`] (clap), so `cargo xtask
//! --help` and `cargo xtask <command> --help` always say what is accepted:
//! `test`, `testbed`, `demo`, `soak`, `bench`, `compare`, `fuzz`, `codegen`,
//! `dist`, `ffi`, `headers` and `tidy`.

mod bench;
mod cli;
mod codegen;
mod compare;
mod copy_compare;
mod dist;
mod ffi;
mod fuzz;
mod headers;
mod peers;
mod test;
mod testbed;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Errors are reported as text: xtask is a developer tool.
pub(crate) type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

fn main() -> ExitCode {
    use clap::Parser as _;
    use cli::Cmd;
    let cli = cli::Cli::parse();
    let ws = workspace_root();
    let result = match cli.command {
        Cmd::Test(a) => test::test(&ws, a),
        Cmd::Testbed(a) => test::testbed(&ws, a),
        Cmd::Demo(a) => test::demo(&ws, a),
        Cmd::Soak(a) => test::soak(&ws, a),
        Cmd::Bench(a) => bench::bench(&ws, a),
        Cmd::Compare(a) => compare::compare(&ws, a),
        Cmd::Codegen(a) => codegen::codegen(&ws, a),
        Cmd::Dist(a) => dist::dist(&ws, a),
        Cmd::Ffi(a) => ffi::ffi(&ws, a),
        Cmd::Fuzz(a) => fuzz::fuzz(&ws, a),
        Cmd::Headers => headers::headers(&ws),
        Cmd::Tidy => tidy::tidy(&ws),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

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
