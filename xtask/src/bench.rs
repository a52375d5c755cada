//! `cargo xtask bench [FILTER...]`: the criterion benches of `benches/`, run
//! inside the test bed against scsi_debug, with criterion's reports copied
//! back to `target/criterion`.
//!
//! Two phases in one boot: `sync` (scsi_debug `delay=0`: the modes and the
//! floors) and `latency` (`ndelay=100000`, 100 µs per command: the
//! queue-depth benches). Each bench binary gets `CRITERION_HOME` in the host
//! folder the guest mounts at `/run/out`.

use std::path::Path;

use std::time::Duration;

use crate::testbed::{Job, Phase, Testbed, DEFAULT_SCSI_DEBUG};
use crate::{build, Result};

/// scsi_debug with 100 µs of latency per command, for queue-depth runs.
pub(crate) const LATENCY_SCSI_DEBUG: &str = "dev_size_mb=256 ndelay=100000";

/// Copies the folder `from` into `to`, merging with what is there.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    let mut files = 0;
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            files += copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .map_err(|e| format!("cannot copy {} to {}: {e}", src.display(), dst.display()))?;
            files += 1;
        }
    }
    Ok(files)
}

/// `cargo xtask bench [FILTER...]`.
pub(crate) fn bench(ws: &Path, args: crate::cli::BenchArgs) -> Result<()> {
    for &which in &args.kernel.kernels.0 {
        bench_on(ws, which, &args.filters)?;
    }
    Ok(())
}

/// The benches in one boot of `which` kernel.
fn bench_on(ws: &Path, which: crate::testbed::Kernel, args: &[String]) -> Result<()> {
    if let Some(opt) = args.iter().find(|a| a.starts_with('-')) {
        return Err(format!(
            "unknown option {opt}: `cargo xtask bench [FILTER...]` takes criterion bench filters only"
        )
        .into());
    }
    let benches = build(ws, &["bench", "-p", "sgmap-benches", "--no-run"], "bench")?;
    if benches.is_empty() {
        return Err("no bench executables were built (benches/benches/*.rs)".into());
    }
    let tb = Testbed::ensure(ws, which)?;
    let jobs: Vec<Job> = benches
        .iter()
        .map(|b| {
            let mut argv = vec![b.path.display().to_string(), "--bench".into()];
            argv.extend(args.iter().cloned());
            Job {
                name: b.name.clone(),
                argv,
                env: vec![("CRITERION_HOME".into(), "/run/out/criterion".into())],
                timeout_s: 3000,
            }
        })
        .collect();
    let phases = [
        Phase {
            name: "sync".into(),
            scsi_debug: DEFAULT_SCSI_DEBUG.into(),
            allow_dio: true,
            jobs: jobs.clone(),
        },
        Phase {
            name: "latency".into(),
            scsi_debug: LATENCY_SCSI_DEBUG.into(),
            allow_dio: true,
            jobs,
        },
    ];
    eprintln!(
        "xtask: running {} bench binaries in the test bed on Linux {} (scsi_debug `{DEFAULT_SCSI_DEBUG}`, then `{LATENCY_SCSI_DEBUG}`)",
        benches.len(),
        tb.version()
    );
    let report = tb.boot(&phases, Duration::from_secs(3600))?;
    let mut failed = Vec::new();
    for j in &report.jobs {
        println!(
            "\n===== bench: {} [{}] (exit {}) =====",
            j.name,
            j.phase,
            j.status.map_or("none".into(), |s| s.to_string())
        );
        println!("{}", j.output.trim_end());
        if j.status != Some(0) {
            failed.push(format!("{} [{}]", j.name, j.phase));
        }
    }
    let produced = report.out_dir.join("criterion");
    let dest = crate::target_dir(ws).join("criterion");
    if produced.is_dir() {
        let n = copy_tree(&produced, &dest)?;
        println!(
            "\ncriterion reports: {} ({n} files; open report/index.html)",
            dest.display()
        );
    } else {
        failed.push("no criterion report was written".into());
    }
    println!(
        "xtask: test bed ran {} jobs in {:.1}s",
        report.jobs.len(),
        report.elapsed.as_secs_f64()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("bench runs failed: {}", failed.join(", ")).into())
    }
}
