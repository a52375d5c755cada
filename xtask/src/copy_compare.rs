//! The `copy` phase of `cargo xtask compare`: `sgmap copy` beside sg3_utils'
//! `sg_dd` (indirect, `dio=1`) and `sgm_dd` (mmap) in the same boot, on the
//! same disk, with the same command lines' sizes.
//!
//! Inside the bed one shell job first puts random bytes on the disk's first
//! 64 MiB (so the copies carry data, not zeros), then, for each round, each
//! transfer size (64 KiB and 1 MiB: `bs=4096 bpt=16|256`, the disk having
//! 4096-byte blocks), each mode and each destination (`/dev/null`, a file on
//! the guest's tmpfs), runs the peer and `sgmap copy` in the matching mode
//! one after the other (who goes first alternates by round), each copying
//! those 64 MiB. Each run is timed from outside, process start to exit, the
//! same way for both; a run that fails ends the job. Where a file was
//! written, the two files are compared with `cmp` and must be identical.
//! The job writes one line per run to `/run/out/copy.tsv`; [`table`] turns
//! them into a markdown table of medians and ratios.

use std::collections::BTreeMap;
use std::path::Path;

use crate::testbed::{sh_quote, BootReport, Job, Phase};
use crate::Result;

/// The phase's name (and its file in the guest's /run/out: `copy.tsv`).
pub(crate) const NAME: &str = "copy";

/// The disk: 4096-byte blocks as the comparison's other phases, no delay.
const SCSI_DEBUG: &str = "dev_size_mb=256 delay=0 sector_size=4096";
/// The disk's block size, sg_dd's `bs=`.
const BLOCK: u64 = 4096;
/// Bytes each run copies.
const BYTES: u64 = 64 << 20;
/// Transfer sizes (bytes per command: bs x bpt).
const SIZES: [u64; 2] = [64 << 10, 1 << 20];

/// The `copy` phase of one boot: `rounds` interleaved rounds.
pub(crate) fn phase(sgmap: &Path, rounds: u32) -> Phase {
    Phase {
        name: NAME.into(),
        scsi_debug: SCSI_DEBUG.into(),
        allow_dio: true,
        jobs: vec![Job {
            name: "sgmap copy beside sg_dd and sgm_dd".into(),
            argv: vec!["/bin/sh".into(), "-c".into(), script(sgmap, rounds)],
            env: vec![],
            timeout_s: 1800,
        }],
    }
}

/// The job's shell script.
fn script(sgmap: &Path, rounds: u32) -> String {
    let sizes = SIZES.map(|s| s.to_string()).join(" ");
    format!(
        r#"set -u
S={sgmap}
D="$SGMAP_TEST_DEVICE"
T=/run/tmp/copy-compare
O=/run/out/{NAME}.tsv
mkdir -p "$T"; : > "$O"
command -v sg_dd >/dev/null && command -v sgm_dd >/dev/null || {{ echo "sg_dd or sgm_dd missing (package sg3-utils)"; exit 1; }}
[ -x /usr/bin/cmp ] || {{ echo "/usr/bin/cmp missing (package diffutils)"; exit 1; }}
# GNU date for nanoseconds (a busybox date prints %N as it is).
case "$(/bin/date +%N)" in *N*|'') echo "/bin/date has no %N (nanoseconds)"; exit 1 ;; esac
count=$(({BYTES} / {BLOCK}))
"$S" copy if=/dev/urandom of="$D" bs=1m count=$(({BYTES} >> 20)) --quiet >/dev/null || exit 1
# run ROUND TOOL MODE SIZE DEST CMD...: times one run, appends its line.
run() {{
  r=$1 tool=$2 mode=$3 size=$4 dest=$5; shift 5
  t0=$(/bin/date +%s%N)
  "$@" > "$T/log" 2>&1 || {{ echo "failed: $*"; cat "$T/log"; exit 1; }}
  t1=$(/bin/date +%s%N)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$tool" "$mode" "$size" "$dest" $((t1 - t0)) >> "$O"
}}
for r in $(seq 1 {rounds}); do
  for size in {sizes}; do
    bpt=$((size / {BLOCK}))
    for mode in indirect direct mmap; do
      case $mode in
        indirect) peer=sg_dd; extra= ;;
        direct) peer=sg_dd; extra=dio=1 ;;
        mmap) peer=sgm_dd; extra= ;;
      esac
      for dest in null file; do
        if [ $dest = null ]; then po=/dev/null; so=/dev/null; else po="$T/peer.bin"; so="$T/sgmap.bin"; rm -f "$po" "$so"; fi
        p() {{ run $r $peer $mode $size $dest $peer if="$D" of="$po" bs={BLOCK} bpt=$bpt count=$count $extra; }}
        s() {{ run $r sgmap $mode $size $dest "$S" copy if="$D" of="$so" bs={BLOCK} bpt=$bpt count=$count --mode $mode --quiet; }}
        if [ $((r % 2)) = 1 ]; then p; s; else s; p; fi
        if [ $dest = file ]; then
          /usr/bin/cmp "$po" "$so" || {{ echo "cmp: $peer and sgmap copy wrote different bytes ($mode, $size)"; exit 1; }}
          [ "$(wc -c < "$so")" = {BYTES} ] || {{ echo "sgmap copy wrote $(wc -c < "$so") bytes, not {BYTES}"; exit 1; }}
          rm -f "$po" "$so"
        fi
      done
    done
  done
done
echo "copy phase: $(wc -l < "$O") runs, every written file identical to the peer's"
"#,
        sgmap = sh_quote(&sgmap.display().to_string()),
    )
}

/// One run: (round, tool, mode, transfer size, destination, nanoseconds).
type Run = (u32, String, String, u64, String, u64);

fn parse(text: &str) -> std::result::Result<Vec<Run>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let bad = || format!("a bad line in {NAME}.tsv: {l:?}");
            if f.len() != 6 {
                return Err(bad());
            }
            Ok((
                f[0].parse().map_err(|_| bad())?,
                f[1].to_string(),
                f[2].to_string(),
                f[3].parse().map_err(|_| bad())?,
                f[4].to_string(),
                f[5].parse().map_err(|_| bad())?,
            ))
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The markdown table of the runs in `tsv` (the job's `copy.tsv`): per
/// transfer size, mode and destination, each tool's median MB/s and the
/// median of the per-round ratios sgmap ÷ peer, with their spread.
pub(crate) fn render(tsv: &str) -> std::result::Result<String, String> {
    let runs = parse(tsv)?;
    if runs.is_empty() {
        return Err(format!("{NAME}.tsv holds no runs"));
    }
    // (size, mode, dest) -> round -> (peer ns, sgmap ns, peer name)
    type Cell = (Option<u64>, Option<u64>, String);
    let mut cells: BTreeMap<(u64, String, String), BTreeMap<u32, Cell>> = BTreeMap::new();
    for (round, tool, mode, size, dest, ns) in runs {
        let c = cells
            .entry((size, mode, dest))
            .or_default()
            .entry(round)
            .or_insert((None, None, String::new()));
        if tool == "sgmap" {
            c.1 = Some(ns);
        } else {
            c.0 = Some(ns);
            c.2 = tool;
        }
    }
    let mbs = |ns: u64| BYTES as f64 / 1e6 / (ns as f64 / 1e9);
    let mut md = format!(
        "\n### copy: `sgmap copy` beside sg_dd and sgm_dd\n\n\
         Each run copies {} MiB from the disk (4096-byte blocks, `delay=0`) to /dev/null or to a tmpfs file, \
         timed from process start to exit; `bs=4096 bpt=N count={}` for every tool, sgmap with `--mode` matching \
         the peer (sg_dd: indirect, sg_dd `dio=1`: direct, sgm_dd: mmap), depth 1. Medians over the rounds; \
         ÷peer is the median of the per-round ratios sgmap ÷ peer (MB/s), with its lowest and highest. \
         Written files were identical (cmp).\n\n\
         | size | mode | to | peer | peer MB/s | sgmap MB/s | ÷peer | spread |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        BYTES >> 20,
        BYTES / BLOCK
    );
    for ((size, mode, dest), rounds) in &cells {
        let pairs: Vec<(u64, u64)> = rounds
            .values()
            .filter_map(|(p, s, _)| Some(((*p)?, (*s)?)))
            .collect();
        let peer = rounds
            .values()
            .map(|c| c.2.as_str())
            .find(|n| !n.is_empty())
            .unwrap_or("?");
        let mut p: Vec<f64> = pairs.iter().map(|&(p, _)| mbs(p)).collect();
        let mut s: Vec<f64> = pairs.iter().map(|&(_, s)| mbs(s)).collect();
        let mut r: Vec<f64> = pairs.iter().map(|&(p, s)| p as f64 / s as f64).collect();
        let (lo, hi) = (
            r.iter().copied().fold(f64::INFINITY, f64::min),
            r.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        );
        let size = if *size >= 1 << 20 {
            format!("{} MiB", size >> 20)
        } else {
            format!("{} KiB", size >> 10)
        };
        let to = if dest == "null" {
            "/dev/null"
        } else {
            "tmpfs file"
        };
        md += &format!(
            "| {size} | {mode} | {to} | {peer} | {:.0} | {:.0} | {:.2} | {lo:.2}-{hi:.2} |\n",
            median(&mut p),
            median(&mut s),
            median(&mut r)
        );
    }
    Ok(md)
}

/// The phase's table from a boot's report, or why there is none (the job
/// failed: its exit status and output).
pub(crate) fn table(report: &BootReport) -> Result<String> {
    let job = report
        .jobs
        .iter()
        .find(|j| j.phase == NAME)
        .ok_or("the copy phase did not run")?;
    if job.status != Some(0) {
        return Err(format!(
            "the copy phase failed (exit {:?}):\n{}",
            job.status,
            job.output.trim_end()
        )
        .into());
    }
    let tsv = std::fs::read_to_string(report.out_dir.join(format!("{NAME}.tsv")))
        .map_err(|e| format!("the copy phase left no {NAME}.tsv: {e}"))?;
    Ok(render(&tsv)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_pairs_rounds_and_takes_medians() {
        // 64 MiB in 0.1 s is 671 MB/s; in 0.05 s, 1342.
        let tsv = "1\tsg_dd\tindirect\t65536\tnull\t100000000\n\
                   1\tsgmap\tindirect\t65536\tnull\t50000000\n\
                   2\tsgmap\tindirect\t65536\tnull\t100000000\n\
                   2\tsg_dd\tindirect\t65536\tnull\t100000000\n\
                   1\tsgm_dd\tmmap\t1048576\tfile\t100000000\n\
                   1\tsgmap\tmmap\t1048576\tfile\t200000000\n";
        let md = render(tsv).unwrap_or_default();
        assert!(
            md.contains(
                "| 64 KiB | indirect | /dev/null | sg_dd | 671 | 1007 | 1.50 | 1.00-2.00 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| 1 MiB | mmap | tmpfs file | sgm_dd | 671 | 336 | 0.50 | 0.50-0.50 |"),
            "{md}"
        );
        assert!(render("").is_err());
        assert!(render("1\tsgmap\tmmap\n").is_err());
    }

    #[test]
    fn the_script_runs_each_peer_in_its_mode_and_compares_files() {
        let s = script(Path::new("/x/sgmap"), 3);
        for want in [
            "seq 1 3",
            "direct) peer=sg_dd; extra=dio=1",
            "mmap) peer=sgm_dd",
            "--mode $mode",
            "/usr/bin/cmp",
            "bs=4096 bpt=$bpt count=$count",
        ] {
            assert!(s.contains(want), "the script lacks {want}");
        }
    }
}
