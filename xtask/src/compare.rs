//! `cargo xtask compare`: sgmap's three modes and its peers side by side in
//! one boot of the test bed, on the same scsi_debug disk and transfers.
//!
//! - phase `sync` (scsi_debug `delay=0`, 4096-byte blocks: see [`COMPARE_SCSI_DEBUG`]): `sgmap bench --peers` at 4 KiB,
//!   64 KiB, 256 KiB, 1 MiB and the granted maximum, depths 1 and 16: sgmap
//!   mmap, direct and indirect, sg3_utils' `sg_read` (indirect, `dio=1`,
//!   `mmap=1`) and fio's sg engine, against the TEST UNIT READY and
//!   single-copy floors;
//! - phase `latency` (`ndelay=100000`, 100 µs per command): sgmap and fio at
//!   depths 1 and 16;
//! - phase `writes` (`delay=0`): sgmap's writes in every mode beside fio's
//!   sg engine and sg3_utils' `sg_dd` (`dio=1`) and `sgm_dd` (mmap) at
//!   4 KiB, 64 KiB and 1 MiB, every contender cycling over the same 64 MiB
//!   (sg_dd cannot re-write the same blocks as the others do by default);
//! - on Linux 7.1 and later the phases add sgmap's io_uring transport, the
//!   bare io_uring floor (`÷floor`) and fio's io_uring engine on the disk's
//!   block device (`sd_mod` loaded, `--direct=1`), at depths 1, 4 and 16
//!   (sync) and 1, 16 and 64 (latency), and the io_uring targets are judged
//!   on the spread of their per-round ratios (a spread covering the
//!   threshold is a tie).
//!
//! The runs are interleaved and the figures are medians (see `sgmap bench`).
//! Every ratio is printed with its spread (the lowest and highest per-round
//! ratio), and marked a tie when the spread covers 1.0. One table, headed
//! by the kernel it ran on, goes to stdout and to
//! `target/compare/compare.md`, everything to
//! `target/compare/compare.json`, and the plots, drawn on the host from
//! each phase's JSON by `sgmap plot`, to `target/compare/<phase>.{svg,png}`
//! (throughput) and `<phase>-ratios.{svg,png}` (sgmap ÷ sg_read and ÷ fio);
//! with several kernels each gets its own directory, the kernel in the
//! plots' names (`sync-6.1.png`), and `compare.md` holds one table per
//! kernel. sg3-utils and fio are installed first
//! when missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::build;
use crate::target_dir;
use crate::testbed::{sh_quote, Job, Kernel, Phase, Testbed};

/// The disk of the `sync` and `writes` phases. 4096-byte blocks: from 6.12
/// on, scsi_debug handles each logical block of a command on its own, so
/// with 512-byte blocks a 1 MiB command costs 2048 of those steps and every
/// mode and tool ends at the same few hundred commands/s (seen on 6.12.113
/// and 7.2.7: sg_read's mmap loop at 1 MiB moved 443 and 656 MB/s with
/// 512-byte blocks, 3.9 GB/s with 4096 on 6.12; 6.1 moved 14 GB/s with 512).
/// Eight times fewer blocks let the transports, not the simulated disk,
/// make the difference.
const COMPARE_SCSI_DEBUG: &str = "dev_size_mb=256 delay=0 sector_size=4096";
/// The disk of the `latency` phase: the same, with 100 µs per command.
const LATENCY_SCSI_DEBUG: &str = "dev_size_mb=256 ndelay=100000 sector_size=4096";
use crate::Result;

/// Options of `cargo xtask compare`.
#[derive(Debug)]
struct Opts {
    rounds: u32,
    run_ms: u32,
    sizes: String,
}

impl From<&crate::cli::CompareArgs> for Opts {
    fn from(a: &crate::cli::CompareArgs) -> Self {
        let (rounds, run_ms) = if a.quick {
            (3, 80)
        } else {
            (a.rounds, a.run_ms)
        };
        Opts {
            rounds,
            run_ms,
            sizes: a.sizes.clone(),
        }
    }
}

/// One guest job: `sgmap bench` writing its JSON and plot into /run/out,
/// after loading `sd_mod` from `sd` when given (fio's io_uring engine runs
/// on the disk's block device).
fn job(sgmap: &Path, phase: &str, bench_args: &[&str], sd: Option<(&Path, &Path)>) -> Job {
    let load = sd.map_or(String::new(), |(busybox, m)| {
        format!(
            "{} insmod {} || echo 'insmod sd_mod failed' >&2; sleep 1; ",
            sh_quote(&busybox.display().to_string()),
            sh_quote(&m.display().to_string())
        )
    });
    let mut cmd = format!(
        "{load}exec {} bench \"$SGMAP_TEST_DEVICE\" --json --quiet",
        sh_quote(&sgmap.display().to_string())
    );
    for a in bench_args {
        cmd.push(' ');
        cmd.push_str(&sh_quote(a));
    }
    cmd += &format!(" > /run/out/{phase}.json");
    Job {
        name: format!("sgmap bench ({phase})"),
        argv: vec!["/bin/sh".into(), "-c".into(), cmd],
        env: vec![],
        timeout_s: 3000,
    }
}

/// `cargo xtask compare`.
pub(crate) fn compare(ws: &Path, args: crate::cli::CompareArgs) -> Result<()> {
    let o = Opts::from(&args);
    let kernels = args.kernel.kernels.0;
    crate::peers::ensure()?;
    let bins = build(
        ws,
        &["build", "--release", "-p", "sgmap-cli", "--bin", "sgmap"],
        "bin",
    )?;
    let sgmap = bins
        .iter()
        .find(|b| b.name == "sgmap")
        .ok_or("building sgmap-cli gave no `sgmap` executable")?
        .path
        .clone();
    let mut failed = Vec::new();
    let mut tables = Vec::new();
    for &which in &kernels {
        let dest = if kernels.len() == 1 {
            target_dir(ws).join("compare")
        } else {
            target_dir(ws).join("compare").join(which.name())
        };
        match compare_on(ws, which, &o, &sgmap, &dest) {
            Ok(md) => tables.push(md),
            Err(e) => {
                eprintln!("xtask: error: {e}");
                failed.push(format!("{}: {e}", which.name()));
            }
        }
    }
    if kernels.len() > 1 && !tables.is_empty() {
        let all = target_dir(ws).join("compare").join("compare.md");
        std::fs::write(&all, tables.join("\n\n"))?;
        println!("\nwritten: {} (one table per kernel)", all.display());
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n").into())
    }
}

/// One boot of `which` kernel: the comparison's phases, its table and plots
/// under `dest`; gives the table back.
fn compare_on(ws: &Path, which: Kernel, o: &Opts, sgmap: &Path, dest: &Path) -> Result<String> {
    let rounds = o.rounds.to_string();
    let run_ms = o.run_ms.to_string();
    let tb = Testbed::ensure(ws, which)?;
    // On 7.1+ the io_uring transport, its bare floor and fio's block-layer
    // io_uring join; elsewhere one line says why they are absent.
    let uring = tb.has_uring_passthrough();
    if !uring {
        eprintln!(
            "xtask: no io_uring rows: Linux {} has no SCSI passthrough through io_uring (Linux 7.1+)",
            tb.version()
        );
    }
    let sd_mod = tb.scsi_module("sd_mod.ko");
    let sd = uring.then_some((tb.busybox(), sd_mod.as_path()));
    // With every mode, the floor and the peers at depth 16, the largest
    // transfer (4 MiB on 7.x) takes more memory than the 1 GiB guest has
    // (the bench was OOM-killed at 727 MB): leave it out there.
    let sizes = if uring {
        let kept: Vec<&str> = o.sizes.split(',').filter(|s| *s != "max").collect();
        if kept.len() < o.sizes.split(',').count() {
            eprintln!("xtask: `max` left out of --sizes on this kernel: at 4 MiB with io_uring rows the bench outgrows the guest's 1 GiB");
        }
        kept.join(",")
    } else {
        o.sizes.clone()
    };
    let (modes, sync_peers, sync_depths, lat_peers, lat_depths, write_peers) = if uring {
        (
            "mmap,direct,indirect,uring",
            "sg_read,fio,fio_uring",
            "1,4,16",
            "fio,fio_uring",
            "1,16,64",
            "sg_dd,fio,fio_uring",
        )
    } else {
        (
            "mmap,direct,indirect",
            "sg_read,fio",
            "1,16",
            "fio",
            "1,16",
            "sg_dd,fio",
        )
    };
    let phases = [
        Phase {
            name: "sync".into(),
            scsi_debug: COMPARE_SCSI_DEBUG.into(),
            allow_dio: true,
            jobs: vec![job(
                sgmap,
                "sync",
                &[
                    "--modes",
                    modes,
                    "--peers",
                    sync_peers,
                    "--sizes",
                    &sizes,
                    "--depth",
                    sync_depths,
                    "--rounds",
                    &rounds,
                    "--run-ms",
                    &run_ms,
                ],
                sd,
            )],
        },
        Phase {
            name: "latency".into(),
            scsi_debug: LATENCY_SCSI_DEBUG.into(),
            allow_dio: true,
            jobs: vec![job(
                sgmap,
                "latency",
                &[
                    "--modes", modes, "--peers", lat_peers, "--sizes", "4k,64k", "--depth",
                    lat_depths, "--rounds", &rounds, "--run-ms", &run_ms,
                ],
                sd,
            )],
        },
        Phase {
            name: "writes".into(),
            scsi_debug: COMPARE_SCSI_DEBUG.into(),
            allow_dio: true,
            jobs: vec![job(
                sgmap,
                "writes",
                &[
                    "--modes",
                    modes,
                    "--peers",
                    write_peers,
                    "--writes",
                    "--no-reads",
                    "--span",
                    WRITE_SPAN,
                    "--sizes",
                    WRITE_SIZES,
                    "--depth",
                    sync_depths,
                    "--rounds",
                    &rounds,
                    "--run-ms",
                    &run_ms,
                ],
                sd,
            )],
        },
        crate::copy_compare::phase(sgmap, o.rounds),
    ];
    eprintln!(
        "xtask: comparing sgmap with sg_read and fio in the test bed on Linux {} ({} rounds of ~{} ms runs per contender)",
        tb.version(),
        o.rounds,
        o.run_ms
    );
    let report = tb.boot(&phases, Duration::from_secs(3600))?;
    std::fs::create_dir_all(dest)?;
    let mut docs = serde_json::Map::new();
    let mut failed = Vec::new();
    let mut pictures = Vec::new();
    for (phase, j) in PHASES.iter().zip(&report.jobs) {
        let path = report.out_dir.join(format!("{phase}.json"));
        let doc = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        match (j.status, doc) {
            (Some(0), Some(doc)) => {
                docs.insert((*phase).into(), doc);
            }
            (status, _) => {
                eprintln!(
                    "xtask: the {phase} phase failed (exit {status:?}):\n{}",
                    j.output.trim_end()
                );
                failed.push(*phase);
            }
        }
        if path.is_file() {
            // Per kernel in the names when several kernels ran.
            let tag = if dest.ends_with(which.name()) {
                format!("-{}", which.name())
            } else {
                String::new()
            };
            match plots(sgmap, &path, dest, phase, &tag) {
                Ok(files) => pictures.extend(files),
                Err(e) => eprintln!("xtask: warning: no {phase} plots: {e}"),
            }
        }
    }
    let targets = evaluate(&docs);
    let mut md = markdown(&docs, &targets, o, tb.version(), which.name());
    md += &crate::copy_compare::table(&report).unwrap_or_else(|e| {
        failed.push(crate::copy_compare::NAME);
        format!("\n{e}\n")
    });
    print!("{md}");
    std::fs::write(dest.join("compare.md"), &md)?;
    let all = json!({
        "kernel": tb.version(),
        "rounds": o.rounds,
        "run_ms": o.run_ms,
        "phases": docs,
        "targets": targets,
    });
    std::fs::write(
        dest.join("compare.json"),
        serde_json::to_string_pretty(&all)?,
    )?;
    println!(
        "\nwritten: {0}/compare.md, {0}/compare.json, {2} (test bed: {1:.0} s)",
        dest.display(),
        report.elapsed.as_secs_f64(),
        pictures
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if failed.is_empty() {
        Ok(md)
    } else {
        Err(format!("the comparison's {} phase(s) failed", failed.join(" and ")).into())
    }
}

/// Draws a phase's pictures on the host from its JSON with `sgmap plot`
/// (the guest needs no fonts): throughput `{phase}{tag}.{svg,png}` and
/// ratios `{phase}{tag}-ratios.{svg,png}` in `dest`.
fn plots(sgmap: &Path, json: &Path, dest: &Path, phase: &str, tag: &str) -> Result<Vec<PathBuf>> {
    let label = match phase {
        "sync" => "sync, scsi_debug delay=0".to_string(),
        "latency" => "latency, 100 µs per command (scsi_debug ndelay=100000)".to_string(),
        "writes" => format!("writes, scsi_debug delay=0, over {WRITE_SPAN}"),
        other => other.to_string(),
    };
    let file = |kind: &str, ext: &str| dest.join(format!("{phase}{tag}{kind}.{ext}"));
    let files = [
        ("--plot", file("", "svg")),
        ("--plot", file("", "png")),
        ("--plot-ratios", file("-ratios", "svg")),
        ("--plot-ratios", file("-ratios", "png")),
    ];
    let mut cmd = Command::new(sgmap);
    cmd.arg("plot").arg(json).arg("--plot-label").arg(&label);
    for (flag, f) in &files {
        cmd.arg(flag).arg(f);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {} plot: {e}", sgmap.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} plot {}: {}",
            sgmap.display(),
            json.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(files.into_iter().map(|(_, f)| f).collect())
}

/// The phases, in the order they boot.
const PHASES: [&str; 3] = ["sync", "latency", "writes"];
/// Bytes every contender of the writes phase cycles over: sg_dd cannot
/// re-write one transfer's blocks, so all move through the same 64 MiB.
const WRITE_SPAN: &str = "64m";
/// Transfer sizes of the writes phase.
const WRITE_SIZES: &str = "4k,64k,1m";

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.2} MiB", bytes as f64 / (1 << 20) as f64)
    } else if bytes >= 1024 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} B")
    }
}

/// The ratio `name` of row `r`, with the spread of its per-round ratios
/// and `tie` when that spread covers 1.0.
fn ratio(r: &Value, name: &str) -> String {
    let Some(x) = num(&r[name]) else {
        return "-".into();
    };
    let sp = &r["spreads"][name];
    match (num(&sp[0]), num(&sp[1])) {
        (Some(lo), Some(hi)) if lo <= 1.0 && hi >= 1.0 => {
            format!("{x:.2} ({lo:.2}–{hi:.2}) tie")
        }
        (Some(lo), Some(hi)) => format!("{x:.2} ({lo:.2}–{hi:.2})"),
        _ => format!("{x:.2}"),
    }
}

/// The rows of `phase` matching `pred`.
fn rows<'a>(
    docs: &'a serde_json::Map<String, Value>,
    phase: &str,
    pred: impl Fn(&Value) -> bool + 'a,
) -> impl Iterator<Item = &'a Value> + 'a {
    docs.get(phase)
        .and_then(|d| d["results"].as_array())
        .into_iter()
        .flatten()
        .filter(move |r| pred(r))
}

fn is(r: &Value, tool: &str, dir: &str, depth: u64) -> bool {
    r["tool"] == tool && r["dir"] == dir && r["depth"] == depth
}

/// Checks the targets against the measured rows.
fn evaluate(docs: &serde_json::Map<String, Value>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |name: &str, met: Option<bool>, detail: String| {
        out.push(json!({ "target": name, "met": met, "detail": detail }));
    };
    // 1. Each sgmap mode at least matches sg_read's same mode at every size.
    let vs: Vec<(String, u64, f64)> = rows(docs, "sync", |r| is(r, "sgmap", "read", 1))
        .filter_map(|r| {
            Some((
                r["mode"].as_str()?.to_string(),
                r["bs"].as_u64()?,
                num(&r["vs_sg_read"])?,
            ))
        })
        .collect();
    let misses: Vec<String> = vs
        .iter()
        .filter(|(_, _, x)| *x < 1.0)
        .map(|(m, b, x)| format!("{m} at {}: {x:.2}", size(*b)))
        .collect();
    push(
        "every sgmap mode >= sg_read's same mode at every size (ratio >= 1.00)",
        (!vs.is_empty()).then_some(misses.is_empty()),
        if vs.is_empty() {
            "not measured (no sg_read rows)".into()
        } else if misses.is_empty() {
            format!(
                "all {} ratios >= 1.00 (lowest {:.2})",
                vs.len(),
                vs.iter().map(|v| v.2).fold(f64::MAX, f64::min)
            )
        } else {
            format!("below 1.00: {}", misses.join("; "))
        },
    );
    let at = |mode: &str, bs: u64, key: &str| {
        rows(docs, "sync", |r| is(r, "sgmap", "read", 1))
            .find(|r| r["mode"] == mode && r["bs"] == bs)
            .and_then(|r| num(&r[key]))
    };
    // 2. mmap beats indirect by >= 1.5x at 1 MiB.
    let m = at("mmap", 1 << 20, "vs_indirect");
    push(
        "mmap >= 1.5x indirect at 1 MiB",
        m.map(|x| x >= 1.5),
        m.map_or("not measured".into(), |x| {
            format!("mmap / indirect = {x:.2}")
        }),
    );
    // 3. mmap at 1 MiB reaches >= 85% of the single-copy floor.
    let c = at("mmap", 1 << 20, "vs_copy");
    push(
        "mmap at 1 MiB >= 85% of one memory copy",
        c.map(|x| x >= 0.85),
        c.map_or("not measured".into(), |x| {
            format!("mmap / copy = {:.0}%", x * 100.0)
        }),
    );
    // 4. Every mode at 4 KiB reaches >= 90% of the TUR round-trip rate.
    let t: Vec<(String, f64)> = ["mmap", "direct", "indirect"]
        .iter()
        .filter_map(|m| Some((m.to_string(), at(m, 4096, "vs_tur")?)))
        .collect();
    push(
        "every mode at 4 KiB >= 90% of TEST UNIT READY round trips",
        (!t.is_empty()).then(|| t.iter().all(|(_, x)| *x >= 0.9)),
        t.iter()
            .map(|(m, x)| format!("{m} {:.0}%", x * 100.0))
            .collect::<Vec<_>>()
            .join(", "),
    );
    // 5. At depth 16 with 100 us latency, sgmap beats fio in commands/s.
    let d16: Vec<(String, u64, f64)> = rows(docs, "latency", |r| is(r, "sgmap", "read", 16))
        .filter_map(|r| {
            Some((
                r["mode"].as_str()?.to_string(),
                r["bs"].as_u64()?,
                num(&r["vs_fio"])?,
            ))
        })
        .collect();
    let reason = docs
        .get("latency")
        .and_then(|d| d["skipped"].as_array())
        .and_then(|s| {
            s.iter()
                .find(|k| k["tool"] == "sgmap" && k["depth"] == 16)
                .and_then(|k| k["reason"].as_str())
        })
        .unwrap_or("no depth-16 rows")
        .to_string();
    push(
        "sgmap at depth 16 beats fio's sg engine at depth 16 (100 us latency) in commands/s",
        (!d16.is_empty()).then(|| d16.iter().all(|(_, _, x)| *x > 1.0)),
        if d16.is_empty() {
            format!("not measured: {reason}")
        } else {
            d16.iter()
                .map(|(m, b, x)| format!("{m} {}: {x:.2}", size(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    uring_targets(docs, &mut push);
    out
}

/// Per-round ratios of row `a` to row `b` (their runs are interleaved, so
/// round `i` of each ran side by side): (median, lowest, highest).
fn paired_spread(a: &Value, b: &Value) -> Option<(f64, f64, f64)> {
    let xs = a["samples_commands_per_s"].as_array()?;
    let ys = b["samples_commands_per_s"].as_array()?;
    if xs.len() != ys.len() || xs.is_empty() {
        return None;
    }
    let mut r: Vec<f64> = xs
        .iter()
        .zip(ys)
        .filter_map(|(x, y)| Some(x.as_f64()? / y.as_f64().filter(|y| *y > 0.0)?))
        .collect();
    if r.is_empty() {
        return None;
    }
    r.sort_by(f64::total_cmp);
    let n = r.len();
    let median = if n % 2 == 1 {
        r[n / 2]
    } else {
        (r[n / 2 - 1] + r[n / 2]) / 2.0
    };
    Some((median, r[0], r[n - 1]))
}

/// A ratio target judged on its spread: met when even the lowest round
/// reaches `at_least`, missed when even the highest falls short, and a tie
/// (`None`) when the spread covers it.
fn judge_spread(spread: Option<(f64, f64, f64)>, at_least: f64) -> (Option<bool>, String) {
    match spread {
        None => (None, "not measured".into()),
        Some((m, lo, hi)) => {
            let verdict = if lo >= at_least {
                "met"
            } else if hi < at_least {
                "missed"
            } else {
                "TIE: the spread covers the threshold"
            };
            (
                (lo >= at_least || hi < at_least).then_some(lo >= at_least),
                format!("{m:.2} (rounds {lo:.2}–{hi:.2}): {verdict}"),
            )
        }
    }
}

/// The io_uring transport's targets (Linux 7.1+ only).
fn uring_targets(
    docs: &serde_json::Map<String, Value>,
    push: &mut impl FnMut(&str, Option<bool>, String),
) {
    let find =
        |phase: &'static str, tool: &'static str, mode: &'static str, bs: u64, depth: u64| {
            rows(docs, phase, move |r| {
                is(r, tool, "read", depth) && r["mode"] == mode && r["bs"] == bs
            })
            .next()
        };
    if find("sync", "sgmap", "uring", 4096, 16).is_none() {
        push(
            "io_uring targets",
            None,
            "not measured: no uring rows (the kernel lacks SCSI passthrough through io_uring, Linux 7.1+)".into(),
        );
        return;
    }
    let both = |a: Option<&Value>, b: Option<&Value>| paired_spread(a?, b?);
    let u16 = find("sync", "sgmap", "uring", 4096, 16);
    let (met, d) = judge_spread(both(u16, find("sync", "sg_read", "mmap", 4096, 1)), 3.0);
    push(
        "(a) 4 KiB depth 16 uring >= 3x sg_read mmap (delay=0)",
        met,
        d,
    );
    let (met, d) = judge_spread(both(u16, find("sync", "bare", "uring", 4096, 16)), 0.9);
    push(
        "(a) 4 KiB depth 16 uring >= 0.9x the bare io_uring loop",
        met,
        d,
    );
    let (met, d) = judge_spread(
        both(
            find("latency", "sgmap", "uring", 4096, 64),
            find("latency", "sgmap", "mmap", 4096, 16),
        ),
        2.0,
    );
    push(
        "(b) ndelay=100000: 4 KiB uring depth 64 >= 2x sgmap mmap pool depth 16",
        met,
        d,
    );
    let (met, d) = judge_spread(
        both(
            find("sync", "sgmap", "uring", 1 << 20, 4),
            find("sync", "sgmap", "mmap", 1 << 20, 1),
        ),
        1.0,
    );
    push(
        "(c) 1 MiB uring (registered) depth 4 >= sgmap mmap depth 1",
        met,
        d,
    );
}

/// The comparison as markdown: floors, one table of every row, the targets.
fn markdown(
    docs: &serde_json::Map<String, Value>,
    targets: &[Value],
    o: &Opts,
    kernel: &str,
    which: &str,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# sgmap against sg3_utils and fio on Linux {kernel}\n\nOne boot of the test bed (user-mode Linux, Debian's {which} kernel {kernel}, sg over scsi_debug); medians of {} interleaved runs of ~{} ms per contender. \
         Ratios compare commands per second at the same transfer size, direction and depth (÷sg_read: sg_read in the same mode, reads; ÷sg_dd: sg_dd or sgm_dd in the same mode, writes; ÷fio: fio's sg engine, indirect IO), \
         as the median of the ratios within each round; every contender moves the same bytes per run (sg_dd: the same rate measure over its own runs). \
         In brackets: the lowest and highest per-round ratio; `tie` marks a spread that covers 1.0 (neither side ahead in every round). \
         Numbers are for ratios within this boot, not claims about hardware.\n",
        o.rounds, o.run_ms
    );
    for (phase, doc) in docs {
        let f = &doc["floors"];
        let _ = write!(
            s,
            "- `{phase}` (scsi_debug `{}`): TEST UNIT READY {} cmd/s; one copy from a cold source:",
            if phase == "latency" {
                LATENCY_SCSI_DEBUG
            } else {
                COMPARE_SCSI_DEBUG
            },
            num(&f["tur_commands_per_s"]).map_or("?".into(), |v| format!("{v:.0}"))
        );
        for c in f["copy"].as_array().into_iter().flatten() {
            let _ = write!(
                s,
                " {} {:.0} MB/s;",
                size(c["bs"].as_u64().unwrap_or(0)),
                num(&c["mb_per_s"]).unwrap_or(0.0)
            );
        }
        s.push('\n');
    }
    s.push_str(
        "\n| phase | dir | size | depth | contender | MB/s | cmd/s | CPU ms/GB | ÷indirect | ÷TUR | ÷copy | ÷sg_read | ÷sg_dd | ÷fio | ÷floor |\n\
         | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (phase, doc) in docs {
        for r in doc["results"].as_array().into_iter().flatten() {
            let _ = writeln!(
                s,
                "| {phase} | {} | {} | {} | {} {} | {:.1} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r["dir"].as_str().unwrap_or("?"),
                size(r["bs"].as_u64().unwrap_or(0)),
                r["depth"],
                r["tool"].as_str().unwrap_or("?"),
                r["mode"].as_str().unwrap_or("?"),
                num(&r["mb_per_s"]).unwrap_or(0.0),
                num(&r["commands_per_s"]).unwrap_or(0.0),
                num(&r["cpu_ms_per_gb"]).map_or("-".into(), |v| format!("{v:.0}")),
                ratio(r, "vs_indirect"),
                ratio(r, "vs_tur"),
                ratio(r, "vs_copy"),
                ratio(r, "vs_sg_read"),
                ratio(r, "vs_sg_dd"),
                ratio(r, "vs_fio"),
                ratio(r, "vs_floor"),
            );
        }
    }
    let mut skipped = Vec::new();
    for (phase, doc) in docs {
        for k in doc["skipped"].as_array().into_iter().flatten() {
            let line = format!(
                "- {phase}: {} {} depth {}: {}",
                k["tool"].as_str().unwrap_or("?"),
                k["mode"].as_str().unwrap_or("?"),
                k["depth"],
                k["reason"].as_str().unwrap_or("?")
            );
            if !skipped.contains(&line) {
                skipped.push(line);
            }
        }
    }
    if !skipped.is_empty() {
        s.push_str("\nNot measured:\n");
        for l in skipped {
            let _ = writeln!(s, "{l}");
        }
    }
    s.push_str("\n## Targets\n\n");
    for t in targets {
        let mark = match t["met"].as_bool() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None if t["detail"].as_str().is_some_and(|d| d.contains("TIE")) => "tie",
            None => "not measured",
        };
        let _ = writeln!(
            s,
            "- **{mark}**: {} — {}",
            t["target"].as_str().unwrap_or("?"),
            t["detail"].as_str().unwrap_or("")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_targets_are_judged_on_their_spread() {
        let a = json!({ "samples_commands_per_s": [300.0, 330.0, 360.0] });
        let b = json!({ "samples_commands_per_s": [100.0, 100.0, 100.0] });
        let s = paired_spread(&a, &b).unwrap();
        assert_eq!(s, (3.3, 3.0, 3.6));
        assert_eq!(judge_spread(Some(s), 3.0).0, Some(true));
        assert_eq!(judge_spread(Some(s), 4.0).0, Some(false));
        let (met, detail) = judge_spread(Some(s), 3.5);
        assert_eq!(met, None);
        assert!(
            detail.contains("TIE") && detail.contains("3.00–3.60"),
            "{detail}"
        );
        // Unpaired rows (different round counts) give no ratio at all.
        let c = json!({ "samples_commands_per_s": [1.0] });
        assert_eq!(paired_spread(&a, &c), None);
        assert_eq!(judge_spread(None, 1.0).0, None);
    }

    fn row(tool: &str, mode: &str, bs: u64, depth: u64, extra: Value) -> Value {
        let mut r = json!({
            "tool": tool, "mode": mode, "dir": "read", "bs": bs, "depth": depth,
            "mb_per_s": 100.0, "commands_per_s": 1000.0, "cpu_ms_per_gb": null,
        });
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                r.insert(k.clone(), v.clone());
            }
        }
        r
    }

    #[test]
    fn targets_are_judged_from_the_rows() {
        let sync = json!({
            "floors": {"tur_commands_per_s": 50000.0, "copy": []},
            "results": [
                row("sgmap", "mmap", 4096, 1, json!({"vs_sg_read": 1.1, "vs_tur": 0.95})),
                row("sgmap", "indirect", 4096, 1, json!({"vs_sg_read": 0.97, "vs_tur": 0.85})),
                row("sgmap", "mmap", 1 << 20, 1, json!({"vs_sg_read": 1.2, "vs_indirect": 1.8, "vs_copy": 0.7,
                    "spreads": {"vs_sg_read": [1.1, 1.3], "vs_indirect": [0.9, 2.0]}})),
            ],
            "skipped": [],
        });
        let latency = json!({
            "floors": {"copy": []},
            "results": [row("fio", "indirect", 4096, 16, json!({}))],
            "skipped": [{"tool": "sgmap", "mode": "mmap", "depth": 16, "reason": "no queue yet"}],
        });
        let mut docs = serde_json::Map::new();
        docs.insert("sync".into(), sync);
        docs.insert("latency".into(), latency);
        let t = evaluate(&docs);
        assert_eq!(t[0]["met"], false);
        assert!(t[0]["detail"]
            .as_str()
            .unwrap()
            .contains("indirect at 4 KiB: 0.97"));
        assert_eq!(t[1]["met"], true);
        assert_eq!(t[2]["met"], false);
        assert!(t[2]["detail"].as_str().unwrap().contains("70%"));
        assert_eq!(t[3]["met"], false);
        assert_eq!(t[4]["met"], Value::Null);
        assert!(t[4]["detail"].as_str().unwrap().contains("no queue yet"));
        let md = markdown(
            &docs,
            &t,
            &Opts {
                rounds: 3,
                run_ms: 100,
                sizes: String::new(),
            },
            "6.12.113",
            "6.12",
        );
        assert!(
            md.contains("| sync | read | 1 MiB | 1 | sgmap mmap |"),
            "{md}"
        );
        // The kernel heads the table; ratios carry their spread, and one
        // whose spread covers 1.0 says tie.
        assert!(
            md.starts_with("# sgmap against sg3_utils and fio on Linux 6.12.113"),
            "{md}"
        );
        assert!(md.contains("| 1.20 (1.10–1.30) |"), "{md}");
        assert!(md.contains("| 1.80 (0.90–2.00) tie |"), "{md}");
        assert!(
            md.contains("**MISSED**") && md.contains("**not measured**"),
            "{md}"
        );
        assert!(
            md.contains("- latency: sgmap mmap depth 16: no queue yet"),
            "{md}"
        );
    }

    #[test]
    fn quick_means_three_short_rounds() {
        use clap::Parser as _;
        let parse = |s: &str| match crate::cli::Cli::parse_from(s.split_whitespace()).command {
            crate::cli::Cmd::Compare(c) => Opts::from(&c),
            other => panic!("{other:?}"),
        };
        let o = parse("xtask compare --quick");
        assert_eq!((o.rounds, o.run_ms), (3, 80));
        let o = parse("xtask compare --rounds 9 --run-ms 200");
        assert_eq!((o.rounds, o.run_ms), (9, 200));
    }
}
