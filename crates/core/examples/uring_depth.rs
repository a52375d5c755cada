//! Commands per second through io_uring on the bsg node ([`BsgRing`],
//! Linux 7.1+) at depth 1, 16 and 64, beside the synchronous mmap path
//! (`SG_IO` with `SG_FLAG_MMAP_IO` on one fd), in one run on one device.
//!
//! ```text
//! cargo build --release -p sgmap --example uring_depth
//! cargo xtask testbed --kernel newest -- $PWD/target/release/examples/uring_depth \
//!     [--transfer BYTES] [--commands N] [--rounds R] [--plain]
//! ```
//!
//! The device comes from `SGMAP_TEST_DEVICE` (set by the test bed) or
//! `--device PATH`. Each configuration runs `N` reads (default 4000) of the
//! transfer size (default 4 KiB) per round, the configurations interleaved
//! round by round (default 9 rounds); the ring keeps `depth` commands in
//! flight with registered buffers (`--plain`: page-aligned plain buffers).
//! Each round's ratio to the mmap path is taken within the round, so a busy
//! moment on the host weighs on both alike; the table shows the median and
//! the spread (min–max) over rounds. Setup happens outside the timed part,
//! and the last read of each configuration is checked against the sync path.
//! Figures from user-mode Linux are ratios within one run, not claims about
//! hardware. (The guest's working folder is `/run/tmp`: give the example's
//! path absolute.)

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use sgmap::cdb::Cdb;
use sgmap::{BsgRing, Command, Device, DirectBuf, FixedBuf, IoBuf, MappedDevice, Payload};

const DEPTHS: [usize; 3] = [1, 16, 64];

struct Args {
    device: PathBuf,
    transfer: usize,
    commands: u64,
    rounds: usize,
    plain: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        device: std::env::var_os("SGMAP_TEST_DEVICE")
            .map(PathBuf::from)
            .unwrap_or_default(),
        transfer: 4096,
        commands: 4000,
        rounds: 9,
        plain: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let num = |v: String, name: &str| v.parse::<u64>().map_err(|e| format!("{name}: {e}"));
        match arg.as_str() {
            "--device" => a.device = value("--device")?.into(),
            "--transfer" => a.transfer = num(value("--transfer")?, "--transfer")? as usize,
            "--commands" => a.commands = num(value("--commands")?, "--commands")?,
            "--rounds" => a.rounds = num(value("--rounds")?, "--rounds")? as usize,
            "--plain" => a.plain = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.device.as_os_str().is_empty() {
        return Err("no device: set SGMAP_TEST_DEVICE or pass --device /dev/sgN".into());
    }
    if a.commands == 0 || a.rounds == 0 {
        return Err("--commands and --rounds must be at least 1".into());
    }
    Ok(a)
}

/// The LBA of read `i`: spread over the first 64 MiB.
fn lba(i: u64, blocks: u64) -> u64 {
    (i * blocks) % ((64 << 20) / 512 / blocks * blocks)
}

/// `n` synchronous mmap-ed reads; returns commands/s and the last data.
fn run_mmap(m: &mut MappedDevice, n: u64, blocks: u32) -> Result<(f64, Vec<u8>), sgmap::Error> {
    let start = Instant::now();
    for i in 0..n {
        m.read_blocks(lba(i, blocks.into()), blocks)?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let last = m.read_blocks(lba(n - 1, blocks.into()), blocks)?.to_vec();
    Ok((rate, last))
}

/// A ring and its buffers, set up once.
struct Ring {
    ring: BsgRing,
    bufs: Vec<IoBuf>,
}

/// `n` reads with `depth` in flight; returns commands/s and read `n - 1`'s data.
fn run_ring(r: &mut Ring, n: u64, blocks: u32) -> Result<(f64, Vec<u8>), sgmap::Error> {
    let start = Instant::now();
    let mut next = 0u64;
    let mut last = Vec::new();
    let mut tickets = std::collections::HashMap::new();
    while next < n || r.ring.pending() > 0 {
        while next < n {
            let Some(buf) = r.bufs.pop() else { break };
            let cmd = Command::new(Cdb::read(lba(next, blocks.into()), blocks)?);
            let t = r.ring.submit(&cmd, Payload::read(buf))?;
            tickets.insert(t, next);
            next += 1;
        }
        let done = r.ring.wait()?.check(r.ring.path())?;
        if tickets.remove(&done.ticket) == Some(n - 1) {
            last = done.bytes().to_vec();
        }
        r.bufs.extend(done.into_buffer());
    }
    Ok((n as f64 / start.elapsed().as_secs_f64(), last))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uring_depth: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let dev = Device::open(&a.device)?;
    dev.wait_ready()?;
    let block = dev.block_size()? as usize;
    let blocks = (a.transfer / block) as u32;
    if blocks == 0 || a.transfer % block != 0 {
        return Err(format!("--transfer must be a multiple of the {block}-byte block").into());
    }
    let mut mapped = dev.map_reserved(a.transfer)?;
    let mut rings = Vec::new();
    for &depth in &DEPTHS {
        let mut ring = BsgRing::options().depth(depth as u32).open(&a.device)?;
        let bufs: Vec<IoBuf> = if a.plain {
            (0..depth)
                .map(|_| IoBuf::from(DirectBuf::new(a.transfer)))
                .collect()
        } else {
            let fixed: Vec<FixedBuf> = ring.register_buffers(depth, a.transfer)?;
            fixed.into_iter().map(IoBuf::from).collect()
        };
        rings.push(Ring { ring, bufs });
    }
    println!(
        "{} reads of {} bytes per configuration and round, {} rounds, {} buffers, on {} ({})",
        a.commands,
        a.transfer,
        a.rounds,
        if a.plain {
            "plain page-aligned"
        } else {
            "registered"
        },
        rings[0].ring.path().display(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    // Warm-up.
    run_mmap(&mut mapped, a.commands.min(200), blocks)?;
    let mut mmap_rates = Vec::new();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); DEPTHS.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); DEPTHS.len()];
    for round in 0..a.rounds {
        // The mmap path first in even rounds, last in odd ones.
        let mut mmap = None;
        if round % 2 == 0 {
            mmap = Some(run_mmap(&mut mapped, a.commands, blocks)?);
        }
        let mut here = Vec::new();
        for r in rings.iter_mut() {
            here.push(run_ring(r, a.commands, blocks)?);
        }
        let (base, want) = match mmap {
            Some(m) => m,
            None => run_mmap(&mut mapped, a.commands, blocks)?,
        };
        mmap_rates.push(base);
        for (k, (rate, got)) in here.into_iter().enumerate() {
            if got != want {
                return Err(format!(
                    "depth {}: the last read differs from the mmap path's",
                    DEPTHS[k]
                )
                .into());
            }
            rates[k].push(rate);
            ratios[k].push(rate / base);
        }
    }
    println!("| path | depth | cmd/s (median) | ÷ sync mmap (median) | ÷ sync mmap (min–max) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut m = mmap_rates.clone();
    println!("| sync SG_IO mmap | 1 | {:.0} | 1.00 | - |", median(&mut m));
    for (k, &depth) in DEPTHS.iter().enumerate() {
        let lo = ratios[k].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios[k].iter().copied().fold(0.0, f64::max);
        println!(
            "| io_uring bsg | {depth} | {:.0} | {:.2} | {lo:.2}–{hi:.2} |",
            median(&mut rates[k]),
            median(&mut ratios[k])
        );
    }
    for r in &rings {
        println!(
            "depth {}: {} io_uring_enter calls in all",
            r.ring.depth(),
            r.ring.enters()
        );
    }
    Ok(())
}
