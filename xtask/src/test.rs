//! `cargo xtask test`, `testbed` and `demo`: running work inside the real kernel.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::testbed::{Job, Kernel, Phase, Testbed, DEFAULT_SCSI_DEBUG};
use crate::{build, cargo, cmd_ok, Built, Result};

/// Counts taken from one or more libtest summaries.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub passed: u64,
    pub failed: u64,
    pub skipped: u64,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.skipped += o.skipped;
    }
}

/// Sums every `test result: ...` line of libtest output; `None` when there is none.
pub(crate) fn parse_libtest(output: &str) -> Option<Counts> {
    let mut total: Option<Counts> = None;
    for line in output
        .lines()
        .filter_map(|l| l.trim().strip_prefix("test result: "))
    {
        let mut c = Counts::default();
        for part in line.split([';', '.']) {
            let mut words = part.split_whitespace();
            if let (Some(n), Some(what)) = (words.next(), words.next()) {
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => c.passed = n,
                    "failed" => c.failed = n,
                    "ignored" => c.skipped = n,
                    _ => {}
                }
            }
        }
        total.get_or_insert_with(Counts::default).add(c);
    }
    total
}

/// How a job's output is judged.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Judge {
    /// A libtest (or libtest-mimic) binary: counts from its summary.
    Libtest,
    /// A program that checks one thing as a whole (the C examples): exit
    /// status 0 is one pass, anything else (or none) one failure.
    ExitStatus,
}

/// Judges one job: its counts, never hiding a crash or a missing summary.
pub(crate) fn judge(kind: Judge, status: Option<i32>, output: &str) -> Counts {
    match kind {
        Judge::Libtest => match (parse_libtest(output), status) {
            (Some(c), Some(0)) => c,
            // A non-zero exit with no failure counted still failed.
            (Some(c), _) => Counts {
                failed: c.failed.max(1),
                ..c
            },
            (None, _) => Counts {
                failed: 1,
                ..Counts::default()
            },
        },
        Judge::ExitStatus => match status {
            Some(0) => Counts {
                passed: 1,
                ..Counts::default()
            },
            _ => Counts {
                failed: 1,
                ..Counts::default()
            },
        },
    }
}

/// Builds the test targets and returns the in-kernel ones (targets named `kernel*`).
fn build_kernel_binaries(ws: &Path) -> Result<Vec<Built>> {
    let all = build(ws, &["test", "--workspace", "--no-run"], "test")?;
    Ok(all
        .into_iter()
        .filter(|b| b.name.starts_with("kernel"))
        .collect())
}

/// The phases every in-kernel run goes through, in one boot.
fn kernel_phases(jobs: Vec<Job>) -> Vec<Phase> {
    // 4096-byte sectors: the data-integrity tests again (their names hold "integrity").
    let jobs_4k = jobs
        .iter()
        .filter(|j| j.argv.len() == 2)
        .map(|j| Job {
            argv: vec![j.argv[0].clone(), j.argv[1].clone(), "integrity".into()],
            ..j.clone()
        })
        .collect();
    vec![
        Phase {
            name: "512".into(),
            scsi_debug: DEFAULT_SCSI_DEBUG.into(),
            allow_dio: true,
            jobs,
        },
        Phase {
            name: "4k".into(),
            scsi_debug: format!("{DEFAULT_SCSI_DEBUG} sector_size=4096"),
            allow_dio: true,
            jobs: jobs_4k,
        },
    ]
}

/// One job's result, ready to be judged and reported.
struct Ran {
    name: String,
    judge: Judge,
    status: Option<i32>,
    output: String,
}

/// The names of the tests that failed in one job's output: libtest's
/// `test NAME ... FAILED` lines, or the job itself when it names none (a
/// crash, a C example, a missing summary).
pub(crate) fn failed_tests(kind: Judge, status: Option<i32>, output: &str) -> Vec<String> {
    let mut names: Vec<String> = output
        .lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("test ")?;
            let (name, verdict) = rest.split_once(" ... ")?;
            (verdict.trim_end().ends_with("FAILED")).then(|| name.trim().to_string())
        })
        .collect();
    // A failing libtest-mimic test prints its own output between the name
    // and the verdict: a line that is just `FAILED` closes it.
    let mut pending: Option<&str> = None;
    for l in output.lines() {
        if let Some(rest) = l.trim_start().strip_prefix("test ") {
            pending = rest.split_once(" ... ").map(|(n, _)| n.trim());
        } else if l.trim() == "FAILED" {
            if let Some(n) = pending.take() {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
    }
    if let Some(name) = running_when_killed(status, output) {
        if !names.contains(&name) {
            names.push(format!("{name} (no verdict: killed while it ran)"));
        }
    }
    if names.is_empty() && judge(kind, status, output).failed > 0 {
        names.push(format!(
            "(the job itself: exit {})",
            status.map_or("none".into(), |s| s.to_string())
        ));
    }
    names
}

/// The libtest test that had started but given no verdict when its job was
/// killed (no exit status): the one that hung.
fn running_when_killed(status: Option<i32>, output: &str) -> Option<String> {
    if status.is_some() {
        return None;
    }
    let mut running = None;
    for l in output.lines() {
        if let Some((name, verdict)) = l
            .trim_start()
            .strip_prefix("test ")
            .and_then(|rest| rest.split_once(" ... "))
        {
            let verdict = verdict.trim_end();
            let done = ["ok", "FAILED", "ignored"]
                .iter()
                .any(|v| verdict.ends_with(v));
            running = (!done).then(|| name.trim().to_string());
        } else if matches!(l.trim(), "ok" | "FAILED" | "ignored") {
            running = None;
        }
    }
    running
}

pub(crate) fn test(ws: &Path, args: crate::cli::TestArgs) -> Result<()> {
    crate::tidy::tidy(ws)?;
    if !args.kernel_only {
        eprintln!("xtask: host tests (in-kernel tests report as ignored here)");
        cmd_ok(cargo().args(["test", "--workspace"]).current_dir(ws))?;
    }
    let bins = build_kernel_binaries(ws)?;
    if bins.is_empty() {
        return Err("no in-kernel test binaries (test targets named kernel*) were built".into());
    }
    // The C and C++ examples (xtask/src/ffi.rs): built on the host, run as
    // jobs judged by their exit status.
    let ffi_built = crate::ffi::build(ws)?;
    crate::ffi::host_checks(&ffi_built)?;
    let ffi_jobs = crate::ffi::jobs(&ffi_built, &args.filter);
    // One entry per kernel (or the real device): its label and its jobs' results.
    let mut runs: Vec<(String, Vec<Ran>)> = Vec::new();
    let mut unbootable: Vec<String> = Vec::new();
    if let Some(device) = &args.device {
        eprintln!("xtask: running the in-kernel tests against {device} on this machine");
        let mut ran = Vec::new();
        for b in &bins {
            let out = Command::new(&b.path)
                .arg("--test-threads=1")
                .args(&args.filter)
                .env("SGMAP_TEST_DEVICE", device)
                .output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran.push(Ran {
                name: format!("{}/{}", b.package, b.name),
                judge: Judge::Libtest,
                status: out.status.code(),
                output: text,
            });
        }
        for (name, status, output) in crate::ffi::run_on_host(&ffi_jobs, device)? {
            ran.push(Ran {
                name,
                judge: Judge::ExitStatus,
                status,
                output,
            });
        }
        runs.push((device.clone(), ran));
    } else {
        for &which in &args.kernels.0 {
            let tb = match Testbed::ensure(ws, which) {
                Ok(tb) => tb,
                Err(e) => {
                    eprintln!("xtask: error: {e}");
                    unbootable.push(format!("{}: {e}", which.name()));
                    continue;
                }
            };
            let jobs = bins
                .iter()
                .map(|b| {
                    let mut argv = vec![b.path.display().to_string(), "--test-threads=1".into()];
                    argv.extend(args.filter.iter().cloned());
                    Job {
                        name: format!("{}/{}", b.package, b.name),
                        argv,
                        env: vec![],
                        timeout_s: 900,
                    }
                })
                .collect();
            let mut phases = kernel_phases(jobs);
            if !ffi_jobs.is_empty() {
                phases.push(crate::ffi::phase(ffi_jobs.clone()));
            }
            eprintln!(
                "xtask: booting the test bed on Linux {} ({}): user-mode Linux, sg over scsi_debug",
                tb.version(),
                which.name()
            );
            let report = match tb.boot(&phases, Duration::from_secs(3000)) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("xtask: error: {e}");
                    unbootable.push(format!("{} ({}): {e}", which.name(), tb.version()));
                    continue;
                }
            };
            eprintln!(
                "xtask: Linux {} ran {} jobs in {:.1}s (kernel up in {})",
                tb.version(),
                report.jobs.len(),
                report.elapsed.as_secs_f64(),
                report.boot_s.map_or("?".into(), |s| format!("{s:.2}s"))
            );
            let ran = report
                .jobs
                .into_iter()
                .map(|j| Ran {
                    judge: if j.phase == crate::ffi::PHASE {
                        Judge::ExitStatus
                    } else {
                        Judge::Libtest
                    },
                    name: format!("{} [{}]", j.name, j.phase),
                    status: j.status,
                    output: j.output,
                })
                .collect();
            runs.push((tb.version().to_string(), ran));
        }
    }
    let mut total = Counts::default();
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for (label, ran) in &runs {
        let mut counts = Counts::default();
        for r in ran {
            let c = judge(r.judge, r.status, &r.output);
            println!(
                "\n===== in-kernel [{label}]: {} (exit {}) =====",
                r.name,
                r.status.map_or("none".into(), |s| s.to_string())
            );
            println!("{}", r.output.trim_end());
            for t in failed_tests(r.judge, r.status, &r.output) {
                failures.push(format!("[{label}] {}: {t}", r.name));
            }
            counts.add(c);
        }
        lines.push(format!(
            "in-kernel [{label}]: {} passed, {} failed, {} skipped",
            counts.passed, counts.failed, counts.skipped
        ));
        total.add(counts);
    }
    println!();
    for f in &failures {
        println!("FAILED {f}");
    }
    for u in &unbootable {
        println!("NOT RUN {}", u.lines().next().unwrap_or_default());
    }
    for l in &lines {
        println!("{l}");
    }
    // A kernel that could not be fetched or booted counts as one failure.
    total.failed += unbootable.len() as u64;
    println!(
        "in-kernel: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.skipped
    );
    if total.failed > 0 {
        return Err(format!(
            "{} in-kernel test(s) failed{}",
            total.failed,
            if unbootable.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} kernel(s) could not run; `--kernel 6.1` runs one)",
                    unbootable.len()
                )
            }
        )
        .into());
    }
    if total.passed == 0 {
        return Err("no in-kernel test passed: nothing ran in the kernel".into());
    }
    Ok(())
}

/// `cargo xtask testbed [--scsi-debug PARAMS] [--no-dio] [--timeout SECS] -- CMD ARGS`.
pub(crate) fn testbed(ws: &Path, args: crate::cli::TestbedArgs) -> Result<()> {
    let job = (args.scsi_debug.as_str(), !args.no_dio, args.timeout);
    run_on_kernels(ws, &args.kernel.kernels.0, job, "the command", args.command)
}

/// How long a job given to the test bed may run, unless told otherwise.
pub(crate) const JOB_TIMEOUT_S: u32 = 3000;

/// Runs one job on each of `kernels`, one boot each, whatever the one
/// before did; fails naming every kernel where it did not exit 0.
fn run_on_kernels(
    ws: &Path,
    kernels: &[Kernel],
    (scsi_debug, allow_dio, timeout_s): (&str, bool, u32),
    name: &str,
    argv: Vec<String>,
) -> Result<()> {
    let mut failed = Vec::new();
    for &which in kernels {
        let job = Job {
            name: name.into(),
            argv: argv.clone(),
            env: vec![],
            timeout_s,
        };
        match run_in_testbed(ws, which, scsi_debug, allow_dio, job) {
            Ok(Some(0)) => {}
            Ok(status) => failed.push(format!("{}: exit {status:?}", which.name())),
            Err(e) => failed.push(format!("{}: {e}", which.name())),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("{name} failed inside the test bed on {}", failed.join("; ")).into())
    }
}

/// Boots the test bed, runs one job, prints its output; returns its exit status.
pub(crate) fn run_in_testbed(
    ws: &Path,
    which: Kernel,
    scsi_debug: &str,
    allow_dio: bool,
    job: Job,
) -> Result<Option<i32>> {
    let tb = Testbed::ensure(ws, which)?;
    eprintln!(
        "xtask: test bed on Linux {} ({})",
        tb.version(),
        which.name()
    );
    let phase = Phase {
        name: "default".into(),
        scsi_debug: scsi_debug.into(),
        allow_dio,
        jobs: vec![job],
    };
    let limit = Duration::from_secs(u64::from(timeout_s_of(&phase)) + 300);
    let report = tb.boot(&[phase], limit)?;
    let job = &report.jobs[0];
    print!("{}", job.output);
    eprintln!(
        "xtask: test bed done in {:.1}s (kernel up in {}), exit status {}",
        report.elapsed.as_secs_f64(),
        report.boot_s.map_or("?".into(), |s| format!("{s:.2}s")),
        job.status
            .map_or("none (killed?)".into(), |s| s.to_string())
    );
    if job.status.is_none() {
        eprintln!("kernel console:\n{}", report.console);
    }
    Ok(job.status)
}

fn timeout_s_of(phase: &Phase) -> u32 {
    phase.jobs.iter().map(|j| j.timeout_s).sum()
}

/// Builds `crates/core/examples/NAME.rs` (release) and runs it in the test
/// bed on the default scsi_debug disk with `args`; fails unless it exits 0.
fn run_example(ws: &Path, name: &str, kernels: &[Kernel], args: &[String]) -> Result<()> {
    let built = build(
        ws,
        &["build", "--release", "-p", "sgmap", "--example", name],
        "example",
    )?;
    let exe = built
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| format!("cargo built no example named {name}"))?;
    let mut argv = vec![exe.path.display().to_string()];
    argv.extend(args.iter().cloned());
    run_on_kernels(
        ws,
        kernels,
        (DEFAULT_SCSI_DEBUG, true, JOB_TIMEOUT_S),
        name,
        argv,
    )
}

/// `cargo xtask demo`: the three modes on the built-in scsi_debug disk.
pub(crate) fn demo(ws: &Path, args: crate::cli::KernelArgs) -> Result<()> {
    run_example(ws, "demo", &args.kernels.0, &[])
}

/// `cargo xtask soak [--commands N]`: the bounded soak of
/// `crates/core/examples/soak.rs` on the built-in scsi_debug disk.
pub(crate) fn soak(ws: &Path, args: crate::cli::SoakArgs) -> Result<()> {
    let extra: Vec<String> = args
        .commands
        .map(|n| vec!["--commands".to_string(), n.to_string()])
        .unwrap_or_default();
    run_example(ws, "soak", &args.kernel.kernels.0, &extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package_name;

    #[test]
    fn libtest_summaries_are_summed() {
        let out = "test a ... ok\ntest result: ok. 3 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.1s\n\
                   test result: FAILED. 1 passed; 4 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(
            parse_libtest(out),
            Some(Counts {
                passed: 4,
                failed: 4,
                skipped: 2
            })
        );
        assert_eq!(parse_libtest("no summary here"), None);
    }

    #[test]
    fn a_crash_is_never_a_pass() {
        let ok = "test result: ok. 3 passed; 0 failed; 0 ignored;";
        assert_eq!(
            judge(Judge::Libtest, Some(0), ok),
            Counts {
                passed: 3,
                failed: 0,
                skipped: 0
            }
        );
        assert_eq!(judge(Judge::Libtest, Some(101), ok).failed, 1);
        assert_eq!(judge(Judge::Libtest, None, ok).failed, 1);
        assert_eq!(judge(Judge::Libtest, Some(0), "").failed, 1);
        assert_eq!(judge(Judge::ExitStatus, Some(0), "").passed, 1);
        assert_eq!(judge(Judge::ExitStatus, Some(1), ok).failed, 1);
        assert_eq!(judge(Judge::ExitStatus, None, "").failed, 1);
    }

    #[test]
    fn failed_tests_are_named() {
        let out = "test a_passes ... ok\ntest b_fails ... some output\nmore\nFAILED\n\
                   test c_fails ... FAILED\ntest result: FAILED. 1 passed; 2 failed; 0 ignored;";
        assert_eq!(
            failed_tests(Judge::Libtest, Some(101), out),
            vec!["c_fails".to_string(), "b_fails".to_string()]
        );
        assert_eq!(
            failed_tests(
                Judge::Libtest,
                Some(0),
                "test result: ok. 1 passed; 0 failed;"
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            failed_tests(Judge::ExitStatus, None, ""),
            vec!["(the job itself: exit none)".to_string()]
        );
    }

    #[test]
    fn a_test_killed_while_it_ran_is_named() {
        let out = "test a_passes ... ok\ntest b_prints ... line\nok\ntest c_hangs ... half\n\
                   xtask: HUNG kernel: no signal ended it";
        assert_eq!(
            failed_tests(Judge::Libtest, None, out),
            vec!["c_hangs (no verdict: killed while it ran)".to_string()]
        );
        // Every test gave a verdict: nothing was running, the job is named.
        assert_eq!(
            failed_tests(Judge::Libtest, None, "test a ... ok\ntest b ... \nFAILED\n"),
            vec!["b".to_string()]
        );
        // An exit status means the job was not killed.
        assert_eq!(
            failed_tests(Judge::Libtest, Some(1), "test a ... "),
            vec!["(the job itself: exit 1)".to_string()]
        );
    }

    #[test]
    fn kernel_flags_parse() {
        assert_eq!(Kernel::parse("all").unwrap(), Kernel::ALL.to_vec());
        assert_eq!(
            Kernel::parse("newest,6.1,6.1").unwrap(),
            vec![Kernel::Newest, Kernel::V6_1]
        );
        assert!(Kernel::parse("5.10").is_err());
    }

    #[test]
    fn package_names_come_from_ids() {
        assert_eq!(
            package_name("path+file:///w/crates/core#sgmap@0.1.0"),
            "sgmap"
        );
        assert_eq!(
            package_name("path+file:///w/crates/sys#sgmap-sys@0.1.0"),
            "sgmap-sys"
        );
    }
}
