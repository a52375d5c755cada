//! `sgmap bench`: the three modes (and queue depths, and the peers) side by
//! side on one device, against the floors, in one run.
//!
//! Runs are interleaved (every contender once per round, the order reversed
//! on odd rounds) and each figure is the median over the rounds, because the
//! machine is shared and noisy. At each transfer size every contender moves
//! the same bytes in the same number of commands per run, whatever its
//! depth, sized from a short pilot of sgmap's indirect IO so that run lasts
//! about `--run-ms`. Ratios are medians of the per-round ratios, so that each
//! compares runs taken side by side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use sgmap::Device;
use sgmap_benches::bare::BareRing;
use sgmap_benches::floors::{ColdCopy, TurLoop};
use sgmap_benches::uring::MAX_URING_DEPTH;
use sgmap_benches::{supports_depth, supports_depth_in, Cycle, Dir, Runner, UringSession, Way};

use crate::peers::{self, Peer};
use crate::report::{table, BenchDoc, Collected, Key, Skip, Tool};
use crate::size::{parse_bytes, parse_usize};
use crate::{plot, print_json, progress, Failure, Output, Result};

/// `sgmap bench` options.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// The sg device, e.g. /dev/sg0.
    pub device: PathBuf,
    /// Modes to compare: mmap, direct, indirect, and uring (io_uring on the
    /// bsg node, Linux 7.1+, which also brings the bare io_uring floor).
    #[arg(long, value_delimiter = ',', default_value = "mmap,direct,indirect")]
    pub modes: Vec<Way>,
    /// Transfer sizes (suffixes k, m; `max` is the largest the device takes).
    #[arg(long, value_delimiter = ',', default_value = "4k,64k,256k,1m,max")]
    pub sizes: Vec<String>,
    /// Queue depths (1: synchronous SG_IO; more: the async queue for direct
    /// and indirect IO, a pool of mapped fds for mmap, up to 16; uring goes
    /// to 1024).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub depth: Vec<usize>,
    /// Interleaved rounds; figures are medians over them.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Target length of one run, in milliseconds.
    #[arg(long, default_value_t = 250)]
    pub run_ms: u64,
    /// Also benchmark writes. Destroys the data in the blocks written
    /// (--offset, over --span or one transfer).
    #[arg(long)]
    pub writes: bool,
    /// Skip reads (only with --writes).
    #[arg(long, requires = "writes")]
    pub no_reads: bool,
    /// Run these peers beside sgmap, on the same device and transfers:
    /// sg_read (sg3_utils), fio (its sg engine) and fio_uring (fio's
    /// io_uring engine on the disk's block device, --direct=1; needs sd_mod)
    /// and sg_dd (sg3_utils' sg_dd and sgm_dd, writes at depth 1 only, with
    /// --writes). `--peers` alone means sg_read and fio.
    #[arg(long, value_delimiter = ',', num_args = 0..=1, default_missing_value = "sg_read,fio")]
    pub peers: Option<Vec<Peer>>,
    /// Where transfers start, in bytes.
    #[arg(long, default_value = "0", value_parser = parse_bytes)]
    pub offset: u64,
    /// Bytes each contender cycles over (default: one transfer, re-reading the
    /// same blocks every time as sg_read does).
    #[arg(long, value_parser = parse_bytes)]
    pub span: Option<u64>,
    #[command(flatten)]
    pub plots: plot::PlotOpts,
    /// Size of the cold source of the copy floor (suffixes k, m, g).
    #[arg(long, default_value = "128m", value_parser = parse_usize)]
    pub copy_source: usize,
    #[command(flatten)]
    pub output: Output,
}

/// One contender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Contender {
    tool: Tool,
    way: Way,
    depth: usize,
}

/// Runs `sgmap bench`.
pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    let path = &args.device;
    let dev_name = path.display().to_string();
    let fail = |what: String| Failure(format!("{dev_name}: bench: {what}"));
    if args.rounds == 0 || args.run_ms == 0 {
        return Err(fail("--rounds and --run-ms must be at least 1".into()));
    }
    if args.depth.iter().any(|d| *d == 0 || *d > MAX_URING_DEPTH) {
        return Err(fail(format!(
            "--depth takes 1 to 16 (the sg driver holds 16 commands per fd), or up to {MAX_URING_DEPTH} with --modes uring"
        )));
    }
    let (block, max_transfer, device_blocks) = {
        let dev = Device::open(path)?;
        dev.wait_ready()?;
        let cap = dev.read_capacity()?;
        let max = dev.max_transfer();
        (cap.block_size as usize, max, cap.blocks)
    };
    if block == 0 || args.offset % block as u64 != 0 {
        return Err(fail(format!(
            "--offset {} is not a multiple of the device's {block}-byte blocks",
            args.offset
        )));
    }
    let page = 4096usize;
    let max_size = max_transfer / page * page / block * block;
    let mut sizes = BTreeSet::new();
    for s in &args.sizes {
        let v = if s == "max" {
            max_size
        } else {
            parse_usize(s).map_err(|e| fail(format!("--sizes: {e}")))?
        };
        if v == 0 || v % block != 0 {
            return Err(fail(format!(
                "transfer size {v} is not a whole, non-zero number of {block}-byte blocks"
            )));
        }
        if v > max_transfer {
            return Err(fail(format!(
                "transfer size {v} is more than the device takes in one command ({max_transfer} bytes); use `max`"
            )));
        }
        sizes.insert(v);
    }
    let sizes: Vec<usize> = sizes.into_iter().collect();
    let largest = *sizes
        .last()
        .ok_or_else(|| fail("--sizes is empty".into()))?;
    let span_for = |bs: usize| args.span.unwrap_or(bs as u64).max(bs as u64);
    let end = args.offset + span_for(largest);
    if end > device_blocks * block as u64 {
        return Err(fail(format!(
            "the runs would reach byte {end}, past the end of the device; lower --offset or --span"
        )));
    }
    let mut dirs = Vec::new();
    if !args.no_reads {
        dirs.push(Dir::Read);
    }
    if args.writes {
        dirs.push(Dir::Write);
    }
    let mut modes: Vec<Way> = args.modes.clone();
    modes.dedup();
    // Contenders, and the skips known up front.
    let mut skipped: Vec<Skip> = Vec::new();
    let depths: BTreeSet<usize> = args.depth.iter().copied().collect();
    // io_uring only where the kernel has it: one probe says, and the reason
    // goes into the report once.
    if modes.contains(&Way::Uring) {
        if let Err(e) = UringSession::open(path, Dir::Read, block, 1) {
            modes.retain(|w| *w != Way::Uring);
            for tool in [Tool::Sgmap, Tool::Bare] {
                skipped.push(Skip {
                    tool,
                    mode: "uring".into(),
                    dir: "-".into(),
                    bs: None,
                    depth: 0,
                    reason: e.report().to_string(),
                });
            }
        }
    }

    let mut contenders = Vec::new();
    for &depth in &depths {
        for &way in &modes {
            if supports_depth_in(way, depth) {
                contenders.push(Contender {
                    tool: Tool::Sgmap,
                    way,
                    depth,
                });
                if way == Way::Uring {
                    contenders.push(Contender {
                        tool: Tool::Bare,
                        way,
                        depth,
                    });
                }
            } else {
                for dir in &dirs {
                    skipped.push(Skip {
                        tool: Tool::Sgmap,
                        mode: way.name().into(),
                        dir: dir.name().into(),
                        bs: None,
                        depth,
                        reason: sgmap_benches::depth_unsupported_reason(depth),
                    });
                }
            }
        }
    }
    let mut programs: BTreeMap<Peer, PathBuf> = BTreeMap::new();
    for peer in args.peers.iter().flatten() {
        match peers::find(peer.name()) {
            Some(p) => {
                programs.insert(*peer, p);
            }
            None => skipped.push(Skip {
                tool: match peer {
                    Peer::SgRead => Tool::SgRead,
                    Peer::Fio => Tool::Fio,
                    Peer::FioUring => Tool::FioUring,
                    Peer::SgDd => Tool::SgDd,
                },
                mode: "-".into(),
                dir: "-".into(),
                bs: None,
                depth: 1,
                reason: format!(
                    "{} is not in PATH; install it (Debian: apt-get install {})",
                    peer.name(),
                    peer.package()
                ),
            }),
        }
    }
    if programs.contains_key(&Peer::SgRead) && depths.contains(&1) {
        for &way in modes.iter().filter(|w| **w != Way::Uring) {
            contenders.push(Contender {
                tool: Tool::SgRead,
                way,
                depth: 1,
            });
        }
    }
    if programs.contains_key(&Peer::SgDd) && depths.contains(&1) && args.writes {
        for &way in modes.iter().filter(|w| **w != Way::Uring) {
            contenders.push(Contender {
                tool: Tool::SgDd,
                way,
                depth: 1,
            });
        }
    }
    if programs.contains_key(&Peer::Fio) {
        for &depth in &depths {
            contenders.push(Contender {
                tool: Tool::Fio,
                way: Way::Indirect,
                depth,
            });
        }
    }
    if programs.contains_key(&Peer::FioUring) {
        for &depth in &depths {
            contenders.push(Contender {
                tool: Tool::FioUring,
                way: Way::Direct,
                depth,
            });
        }
    }

    let runs_per_round = dirs.len() * sizes.len() * contenders.len() + 1 + sizes.len();
    let bar = progress::bar(
        (runs_per_round * args.rounds) as u64,
        progress::Unit::Runs,
        args.output.quiet,
    );
    let run_time = Duration::from_millis(args.run_ms);

    // Pilots: how many commands (and copies) make a run of about --run-ms.
    bar.set_message("pilot runs");
    let mut tur = TurLoop::open(path)?;
    let tur_n = pilot(run_time, |n| tur.run(n).map(|s| s.wall))?;
    let mut copies: BTreeMap<usize, (ColdCopy, u64)> = BTreeMap::new();
    for &bs in &sizes {
        let mut c = ColdCopy::new(bs, args.copy_source);
        let n = pilot(run_time, |n| Ok::<_, Failure>(c.run(n).wall))?;
        copies.insert(bs, (c, n));
    }
    // One pilot per direction, size and depth, with sgmap's indirect IO:
    // every contender at that point then moves the same bytes.
    let mut base: BTreeMap<(Dir, usize, usize), u64> = BTreeMap::new();
    for &dir in &dirs {
        for &bs in &sizes {
            for &depth in &depths {
                // Deeper than the sg driver goes: sgmap's io_uring paces it.
                let (pilot_way, pilot_depth) = if supports_depth(depth) {
                    (Way::Indirect, depth)
                } else if modes.contains(&Way::Uring) {
                    (Way::Uring, depth)
                } else {
                    (Way::Indirect, 1)
                };
                let mut r = Runner::open(path, pilot_way, dir, bs, pilot_depth)?;
                let mut cycle = Cycle::new(
                    args.offset / block as u64,
                    span_for(bs) / block as u64,
                    (bs / block) as u64,
                );
                let n = pilot(run_time, |n| {
                    r.run(&mut cycle, bs, n, |_| {}).map(|s| s.wall)
                })?;
                base.insert((dir, bs, depth), n);
            }
        }
    }

    let mut got = Collected::default();
    let mut dead: BTreeSet<(Dir, usize, Contender)> = BTreeSet::new();
    for round in 0..args.rounds {
        bar.set_message(format!("round {}/{}", round + 1, args.rounds));
        got.tur.push(tur.run(tur_n)?);
        bar.inc(1);
        for (&bs, (c, n)) in copies.iter_mut() {
            got.copy.entry(bs).or_default().push(c.run(*n));
            bar.inc(1);
        }
        let mut order = contenders.clone();
        if round % 2 == 1 {
            order.reverse();
        }
        for &dir in &dirs {
            for &bs in &sizes {
                for &c in &order {
                    bar.inc(1);
                    // sg_read and the bare loop only read; sg_dd is the write peer.
                    if dead.contains(&(dir, bs, c))
                        || (matches!(c.tool, Tool::SgRead | Tool::Bare) && dir == Dir::Write)
                        || (c.tool == Tool::SgDd && dir == Dir::Read)
                    {
                        continue;
                    }
                    let commands = base[&(dir, bs, c.depth)];
                    let result = run_one(
                        path,
                        &programs,
                        c,
                        dir,
                        bs,
                        block,
                        commands,
                        args.offset,
                        span_for(bs),
                    );
                    let key = Key {
                        dir: dir.name(),
                        bs,
                        depth: c.depth,
                        tool: c.tool,
                        mode: c.way.name(),
                    };
                    match result {
                        Ok(sample) => got.runs.entry(key).or_default().push(sample),
                        Err(reason) => {
                            dead.insert((dir, bs, c));
                            got.runs.remove(&key);
                            skipped.push(Skip {
                                tool: c.tool,
                                mode: c.way.name().into(),
                                dir: dir.name().into(),
                                bs: Some(bs),
                                depth: c.depth,
                                reason,
                            });
                        }
                    }
                }
            }
        }
    }
    bar.finish_and_clear();

    let floors = got.floors(args.copy_source.max(2 * largest));
    let doc = BenchDoc {
        device: dev_name.clone(),
        kernel: kernel_release(),
        block_size: block,
        max_transfer: max_size,
        rounds: args.rounds,
        run_ms: args.run_ms,
        offset: args.offset,
        span: args.span,
        results: got.rows(),
        floors,
        skipped,
    };
    let drawn = args.plots.draw_all(&doc).map_err(fail)?;
    if args.output.json {
        print_json(&doc)?;
    } else {
        print!("{}", table(&doc));
        for p in drawn {
            println!("plot: {}", p.display());
        }
    }
    Ok(())
}

/// The running kernel's release, as `uname -r` prints it (empty when
/// /proc is not mounted).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// How many commands make a run of about `target`: doubles a short probe
/// until it lasts a tenth of the target, then scales.
fn pilot<E>(target: Duration, mut probe: impl FnMut(u64) -> Result<Duration, E>) -> Result<u64, E> {
    let mut n = 4u64;
    loop {
        let t = probe(n)?;
        if t >= target / 10 || n >= 1 << 24 {
            let per = t.as_secs_f64() / n as f64;
            let want = if per > 0.0 {
                target.as_secs_f64() / per
            } else {
                n as f64 * 10.0
            };
            return Ok((want as u64).clamp(8, 1 << 26));
        }
        n *= 2;
    }
}

/// One timed run of one contender.
#[allow(clippy::too_many_arguments)]
fn run_one(
    path: &Path,
    programs: &BTreeMap<Peer, PathBuf>,
    c: Contender,
    dir: Dir,
    bs: usize,
    block: usize,
    commands: u64,
    offset: u64,
    span: u64,
) -> std::result::Result<sgmap_benches::Sample, String> {
    // The blocks every sgmap contender goes round: `span` bytes from `offset`.
    let cycle = || {
        Cycle::new(
            offset / block as u64,
            span / block as u64,
            (bs / block) as u64,
        )
    };
    match c.tool {
        Tool::Sgmap => {
            let mut r =
                Runner::open(path, c.way, dir, bs, c.depth).map_err(|e| e.report().to_string())?;
            r.run(&mut cycle(), bs, commands, |_| {})
                .map_err(|e| e.report().to_string())
        }
        Tool::SgRead => peers::run_sg_read(
            &programs[&Peer::SgRead],
            path,
            c.way,
            block,
            bs,
            commands,
            offset / block as u64,
        ),
        Tool::SgDd => peers::run_sg_dd(
            &programs[&Peer::SgDd],
            path,
            c.way,
            block,
            bs,
            commands,
            offset / block as u64,
            span,
        ),
        Tool::Bare => {
            let mut r =
                BareRing::open(path, block, bs, c.depth).map_err(|e| e.report().to_string())?;
            r.run(&mut cycle(), commands)
                .map_err(|e| e.report().to_string())
        }
        Tool::FioUring => peers::run_fio_uring(
            &programs[&Peer::FioUring],
            path,
            dir,
            bs,
            c.depth,
            commands,
            offset,
            span,
        ),
        Tool::Fio => peers::run_fio(
            &programs[&Peer::Fio],
            path,
            dir,
            bs,
            c.depth,
            commands,
            offset,
            span,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pilot_scales_a_probe_to_the_target() {
        // 1 ms per command: 250 ms needs 250 commands.
        let n = pilot(Duration::from_millis(250), |n| {
            Ok::<_, ()>(Duration::from_millis(n))
        })
        .unwrap();
        assert_eq!(n, 250);
        // Free commands are capped, never infinite.
        let free = pilot(Duration::from_millis(250), |_| Ok::<_, ()>(Duration::ZERO)).unwrap();
        assert!(free <= 1 << 26);
    }
}
