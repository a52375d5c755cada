//! `cargo xtask fuzz`: runs the cargo-fuzz targets under `fuzz/` for a
//! bounded time each and keeps what they find.
//!
//! cargo-fuzz needs nightly compiler flags (`-Z sanitizer`, coverage
//! instrumentation); this machine has only stable Rust, so the runs set
//! `RUSTC_BOOTSTRAP=1`. Each target fuzzes a scratch corpus in the target dir
//! (seeded from the kept `fuzz/corpus/<target>/`, which is only read); a
//! crash input it finds is copied to `fuzz/regressions/<target>/`, where the
//! host test `crates/core/tests/fuzz_regressions.rs` replays it on stable
//! Rust. `--keep` merges the scratch corpus into the kept one and minimises
//! it with `cargo fuzz cmin`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{cargo, cmd_ok, Result};

/// How long each target runs when `--seconds` is not given.
pub(crate) const DEFAULT_SECONDS: u64 = 60;
/// The longest input libFuzzer makes: more than every decoder reads (sense
/// data is cut at 252 bytes, a CDB has at most 32), so the cut-off paths are
/// reached, while the kept files stay small.
const MAX_LEN: usize = 512;
/// A single input taking longer than this (seconds) is a hang.
const UNIT_TIMEOUT: u64 = 10;

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug, PartialEq, Eq)]
struct Options {
    seconds: u64,
    sanitizer: String,
    keep: bool,
    targets: Vec<String>,
}

impl From<crate::cli::FuzzArgs> for Options {
    fn from(a: crate::cli::FuzzArgs) -> Self {
        Options {
            seconds: a.seconds,
            sanitizer: a.sanitizer,
            keep: a.keep,
            targets: a.targets,
        }
    }
}

/// Figures from libFuzzer's `-print_final_stats=1` lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    executions: Option<u64>,
    per_second: Option<u64>,
    new_units: Option<u64>,
}

fn parse_stats(log: &str) -> Stats {
    let mut stats = Stats::default();
    for line in log.lines() {
        let Some((key, value)) = line.trim().rsplit_once(':') else {
            continue;
        };
        let value = value.trim().parse::<u64>().ok();
        match key.trim() {
            "stat::number_of_executed_units" => stats.executions = value,
            "stat::average_exec_per_sec" => stats.per_second = value,
            "stat::new_units_added" => stats.new_units = value,
            _ => {}
        }
    }
    stats
}

/// The lines of a libFuzzer log that say why it stopped: each panic's
/// location and the (up to) three lines of message after it, and
/// libFuzzer's own verdict.
fn failure_lines(log: &str) -> Vec<&str> {
    let lines: Vec<&str> = log.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.contains("panicked at") {
            out.extend(lines.iter().skip(i).take(4).take_while(|l| {
                !l.is_empty()
                    && !l.starts_with("note:")
                    && !l.starts_with("stack backtrace")
                    && !l.starts_with("==")
            }));
        } else if line.starts_with("==") && line.contains("ERROR: libFuzzer") {
            out.push(*line);
        }
    }
    out.truncate(16);
    out
}

/// The targets: every `fuzz/fuzz_targets/*.rs`, sorted.
fn all_targets(fuzz: &Path) -> Result<Vec<String>> {
    let dir = fuzz.join("fuzz_targets");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some(p.file_stem()?.to_str()?.to_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// The names of the `crash-*` files in `dir` (none if it does not exist).
fn crash_files(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("crash-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Installs cargo-fuzz from crates.io unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = cargo()
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        eprintln!("fuzz: cargo-fuzz is missing; installing it with `cargo install cargo-fuzz`");
        cmd_ok(cargo().args(["install", "--locked", "cargo-fuzz"]))?;
    }
    Ok(())
}

/// `cargo fuzz <subcommand>` with the build settings every run shares.
fn cargo_fuzz(ws: &Path, subcommand: &str, build_dir: &Path, sanitizer: &str) -> Command {
    let mut cmd = cargo();
    cmd.current_dir(ws)
        // cargo-fuzz's flags are nightly-only; stable accepts them with this.
        .env("RUSTC_BOOTSTRAP", "1")
        // Under AddressSanitizer an impossible allocation must fail, not
        // abort: capi_args asks for one on purpose.
        .env("ASAN_OPTIONS", "allocator_may_return_null=1")
        .args(["fuzz", subcommand, "--release", "--debug-assertions"])
        .args(["--sanitizer", sanitizer])
        .arg("--target-dir")
        .arg(build_dir);
    cmd
}

/// The result of fuzzing one target.
#[derive(Debug)]
struct Run {
    target: String,
    stats: Stats,
    /// Crash inputs copied to `fuzz/regressions/<target>/`.
    crashes: Vec<PathBuf>,
    /// Why libFuzzer stopped early, when it did without a crash file.
    trouble: Option<String>,
}

fn fuzz_one(ws: &Path, build_dir: &Path, opts: &Options, target: &str) -> Result<Run> {
    let fuzz = ws.join("fuzz");
    let kept = fuzz.join("corpus").join(target);
    let scratch = build_dir.join("corpus").join(target);
    let artifacts = build_dir.join("artifacts").join(target);
    let logs = build_dir.join("logs");
    for dir in [&scratch, &artifacts, &logs] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log_file = fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let before = crash_files(&artifacts);

    eprintln!(
        "fuzz: {target} for {} s (log: {})",
        opts.seconds,
        log_path.display()
    );
    // libFuzzer writes new inputs to the first corpus folder only, so the
    // kept corpus is read, never grown, by a run.
    let mut artifact_prefix = artifacts.clone().into_os_string();
    artifact_prefix.push("/");
    let status = cargo_fuzz(ws, "run", build_dir, &opts.sanitizer)
        .arg(target)
        .arg(&scratch)
        .arg(&kept)
        .arg("--")
        .arg(format!("-max_total_time={}", opts.seconds))
        .arg(format!("-max_len={MAX_LEN}"))
        .arg(format!("-timeout={UNIT_TIMEOUT}"))
        .arg("-print_final_stats=1")
        .arg({
            let mut a = std::ffi::OsString::from("-artifact_prefix=");
            a.push(&artifact_prefix);
            a
        })
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let log = fs::read_to_string(&log_path).unwrap_or_default();

    let regressions = fuzz.join("regressions").join(target);
    let mut crashes = Vec::new();
    for name in crash_files(&artifacts).difference(&before) {
        fs::create_dir_all(&regressions)?;
        let to = regressions.join(name);
        fs::copy(artifacts.join(name), &to)
            .map_err(|e| format!("cannot copy {name} to {}: {e}", to.display()))?;
        crashes.push(to);
    }
    let stats = parse_stats(&log);
    let trouble = if status.success() || !crashes.is_empty() {
        None
    } else if stats.executions.is_none() {
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Some(format!(
            "cargo fuzz failed ({status}) before fuzzing; the end of {}:\n{}",
            log_path.display(),
            tail.join("\n")
        ))
    } else {
        Some(format!(
            "libFuzzer stopped with {status} without a crash file (a timeout or running out of \
             memory?): see {}",
            log_path.display()
        ))
    };
    if !crashes.is_empty() || trouble.is_some() {
        for line in failure_lines(&log) {
            eprintln!("fuzz: {target}: {line}");
        }
    }
    Ok(Run {
        target: target.to_owned(),
        stats,
        crashes,
        trouble,
    })
}

/// Merges the scratch corpus into `fuzz/corpus/<target>/` and minimises the
/// union with `cargo fuzz cmin` on edge coverage alone (`-use_counters=0`:
/// hit counts would keep hundreds of inputs that reach no new code), so the
/// kept corpus stays small; the scratch corpus keeps everything.
fn keep(ws: &Path, build_dir: &Path, opts: &Options, target: &str) -> Result<()> {
    let kept = ws.join("fuzz").join("corpus").join(target);
    let scratch = build_dir.join("corpus").join(target);
    let before = fs::read_dir(&kept).map(|d| d.count()).unwrap_or(0);
    for entry in fs::read_dir(&scratch)? {
        let entry = entry?;
        if entry.path().is_file() {
            fs::copy(entry.path(), kept.join(entry.file_name()))?;
        }
    }
    cmd_ok(
        cargo_fuzz(ws, "cmin", build_dir, &opts.sanitizer)
            .arg(target)
            .arg(&kept)
            .arg("--")
            .arg(format!("-max_len={MAX_LEN}"))
            .arg("-use_counters=0")
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )?;
    let after = fs::read_dir(&kept).map(|d| d.count()).unwrap_or(0);
    eprintln!(
        "fuzz: {target}: kept corpus {before} -> {after} files in {}",
        kept.display()
    );
    Ok(())
}

/// `cargo xtask fuzz [--seconds N] [--sanitizer S] [--keep] [TARGET...]`.
pub(crate) fn fuzz(ws: &Path, args: crate::cli::FuzzArgs) -> Result<()> {
    let opts = Options::from(args);
    let known = all_targets(&ws.join("fuzz"))?;
    let targets = if opts.targets.is_empty() {
        known.clone()
    } else {
        opts.targets.clone()
    };
    if let Some(unknown) = targets.iter().find(|t| !known.contains(t)) {
        return Err(format!(
            "no fuzz target `{unknown}`; the targets are: {}",
            known.join(", ")
        )
        .into());
    }
    ensure_cargo_fuzz()?;
    let build_dir = crate::target_dir(ws).join("cargo-fuzz");

    let mut runs = Vec::new();
    for target in &targets {
        let run = fuzz_one(ws, &build_dir, &opts, target)?;
        if opts.keep && run.crashes.is_empty() && run.trouble.is_none() {
            keep(ws, &build_dir, &opts, target)?;
        }
        runs.push(run);
    }

    eprintln!("fuzz: target        executions     exec/s  new units  crashes");
    for r in &runs {
        let show = |v: Option<u64>| v.map_or_else(|| "?".into(), |v| v.to_string());
        eprintln!(
            "fuzz: {:<12} {:>11} {:>10} {:>10} {:>8}",
            r.target,
            show(r.stats.executions),
            show(r.stats.per_second),
            show(r.stats.new_units),
            r.crashes.len()
        );
    }
    let mut problems = Vec::new();
    for r in &runs {
        for c in &r.crashes {
            problems.push(format!(
                "{}: crash input kept as {}; replay it with `cargo test -p sgmap --test \
                 fuzz_regressions`",
                r.target,
                c.display()
            ));
        }
        if let Some(t) = &r.trouble {
            problems.push(format!("{}: {t}", r.target));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        use clap::Parser as _;
        let parse = |s: &str| {
            crate::cli::Cli::try_parse_from(s.split_whitespace()).map(|c| match c.command {
                crate::cli::Cmd::Fuzz(f) => Options::from(f),
                other => panic!("{other:?}"),
            })
        };
        assert_eq!(
            parse("xtask fuzz --seconds 300 sense --keep cdb").unwrap(),
            Options {
                seconds: 300,
                sanitizer: "none".into(),
                keep: true,
                targets: vec!["sense".into(), "cdb".into()],
            }
        );
        assert_eq!(parse("xtask fuzz").unwrap().seconds, DEFAULT_SECONDS);
        for bad in ["--seconds", "--seconds 0", "--seconds x", "--fast"] {
            assert!(parse(&format!("xtask fuzz {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn final_stats() {
        let log = "#2 INITED cov: 10\nDone 254318 runs in 11 second(s)\n\
                   stat::number_of_executed_units: 254318\n\
                   stat::average_exec_per_sec:     23119\n\
                   stat::new_units_added:          538\n\
                   stat::slowest_unit_time_sec:    0\n";
        assert_eq!(
            parse_stats(log),
            Stats {
                executions: Some(254318),
                per_second: Some(23119),
                new_units: Some(538),
            }
        );
        assert_eq!(parse_stats("error: could not compile"), Stats::default());
    }

    #[test]
    fn failure_lines_pick_the_panic() {
        let log = "#100 NEW cov: 3\n\
                   thread '<unnamed>' panicked at src/x.rs:1:2:\n\
                   assertion `left == right` failed: key\n  left: 1\n right: 2\n\
                   ==123== ERROR: libFuzzer: deadly signal\n#200 pulse\n";
        let lines = failure_lines(log);
        assert_eq!(lines.len(), 5, "{lines:?}");
        assert!(lines[0].contains("panicked at src/x.rs:1:2"));
        assert!(lines[1].contains("failed: key"));
        assert!(lines[4].contains("deadly signal"));
        let log = "thread '<unnamed>' panicked at a.rs:3:4:\nplanted\nnote: run with \
                   `RUST_BACKTRACE=1`\n==9== ERROR: libFuzzer: deadly signal\n";
        assert_eq!(
            failure_lines(log),
            [
                "thread '<unnamed>' panicked at a.rs:3:4:",
                "planted",
                "==9== ERROR: libFuzzer: deadly signal"
            ]
        );
    }
}
