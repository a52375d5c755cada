//! Commands per second at queue depth 1, 4 and 16 in each transfer mode, side
//! by side in one run, for the same device and transfer size.
//!
//! Run it in the test bed with a per-command latency, so that depth matters:
//!
//! ```text
//! cargo build --release -p sgmap --example depth
//! cargo xtask testbed --scsi-debug "dev_size_mb=256 ndelay=100000" -- \
//!     target/release/examples/depth [--transfer BYTES] [--commands N] [--rounds R]
//! ```
//!
//! The device comes from `SGMAP_TEST_DEVICE` (set by the test bed) or
//! `--device PATH`. Every configuration runs `N` commands (default 1000) in
//! each of `R` rounds (default 15), the configurations interleaved round by
//! round; the rates are medians over the rounds, and the depth ratios are
//! medians of the ratios taken within each round (so a busy moment on the
//! host weighs on both sides alike). Setup (open, reserved buffers, mmap)
//! happens outside the timed part. Depth 1 is also measured with plain
//! synchronous `SG_IO` (and `SG_IO` with `SG_FLAG_MMAP_IO`), the baselines
//! the queue is held against. Figures from a virtual machine are ratios
//! within one run, not claims about hardware.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use sgmap::cdb::Cdb;
use sgmap::stream::StreamMode;
use sgmap::{
    Command, Data, Device, DirectBuf, Direction, IoBuf, MappedDevice, Payload, Pool, Queue,
};

const DEPTHS: [usize; 3] = [1, 4, 16];

struct Args {
    device: PathBuf,
    transfer: usize,
    commands: u64,
    rounds: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        device: std::env::var_os("SGMAP_TEST_DEVICE")
            .map(PathBuf::from)
            .unwrap_or_default(),
        transfer: 4096,
        commands: 1000,
        rounds: 15,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--device" => a.device = value("--device")?.into(),
            "--transfer" => {
                a.transfer = value("--transfer")?
                    .parse()
                    .map_err(|e| format!("--transfer: {e}"))?
            }
            "--commands" => {
                a.commands = value("--commands")?
                    .parse()
                    .map_err(|e| format!("--commands: {e}"))?
            }
            "--rounds" => {
                a.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            other => {
                return Err(format!(
                    "unknown argument {other}; see the top of examples/depth.rs"
                ))
            }
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

/// One way of keeping commands in flight, set up before timing.
enum Engine {
    /// Synchronous SG_IO, one command at a time (depth 1 only).
    Sync(Device, DirectBuf),
    /// Synchronous SG_IO with SG_FLAG_MMAP_IO (depth 1 only).
    SyncMapped(MappedDevice),
    /// The async queue with its buffers.
    Queue(Queue, Vec<IoBuf>, bool),
    /// The mmap fd pool.
    Pool(Pool),
}

struct Config {
    label: String,
    depth: usize,
    engine: Engine,
    samples: Vec<f64>,
}

fn setup(a: &Args, mode: Option<StreamMode>, depth: usize) -> Result<Engine, sgmap::Error> {
    Ok(match mode {
        None if depth == 0 => {
            Engine::SyncMapped(Device::open(&a.device)?.map_reserved(a.transfer)?)
        }
        None => Engine::Sync(Device::open(&a.device)?, DirectBuf::new(a.transfer)),
        Some(StreamMode::Mmap) => Engine::Pool(Pool::open(&a.device, depth, a.transfer)?),
        Some(m) => {
            let direct = m == StreamMode::Direct;
            let bufs = (0..depth)
                .map(|_| -> IoBuf {
                    if direct {
                        DirectBuf::new(a.transfer).into()
                    } else {
                        vec![0u8; a.transfer].into()
                    }
                })
                .collect();
            Engine::Queue(Queue::open(&a.device)?, bufs, direct)
        }
    })
}

/// Runs `n` reads of `blocks` blocks, cycling over `span` blocks, keeping
/// `depth` in flight; returns the time taken.
fn run(
    engine: &mut Engine,
    depth: usize,
    n: u64,
    (blocks, block): (u32, usize),
    span: u64,
) -> Result<Duration, sgmap::Error> {
    let lba = |i: u64| (i * u64::from(blocks)) % span;
    let len = blocks as usize * block;
    let t0 = Instant::now();
    match engine {
        Engine::Sync(dev, buf) => {
            for i in 0..n {
                let cmd = Command::new(Cdb::read(lba(i), blocks)?);
                dev.execute(&cmd, Data::FromDevice(&mut buf[..len]))?
                    .check(dev.path())?;
            }
        }
        Engine::SyncMapped(m) => {
            for i in 0..n {
                let cmd = Command::new(Cdb::read(lba(i), blocks)?);
                let path = m.path().to_path_buf();
                m.execute(&cmd, Direction::FromDevice, len)?.check(&path)?;
            }
        }
        Engine::Queue(q, bufs, direct) => {
            let (mut sent, mut done) = (0, 0);
            while done < n {
                while q.pending() < depth && sent < n {
                    let Some(buf) = bufs.pop() else { break };
                    let cmd = Command::new(Cdb::read(lba(sent), blocks)?);
                    let cmd = if *direct { cmd.direct() } else { cmd };
                    q.submit(&cmd, Payload::FromDevice(buf))?;
                    sent += 1;
                }
                let c = q.wait()?.check(q.path())?;
                bufs.extend(c.into_buffer());
                done += 1;
            }
        }
        Engine::Pool(pool) => {
            let (mut sent, mut done) = (0, 0);
            while done < n {
                while sent < n {
                    let Some(lease) = pool.lease() else { break };
                    lease.submit(
                        &Command::new(Cdb::read(lba(sent), blocks)?),
                        Direction::FromDevice,
                        len,
                    )?;
                    sent += 1;
                }
                pool.wait()?.check()?;
                done += 1;
            }
        }
    }
    Ok(t0.elapsed())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("depth: {e}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let dev = Device::open(&a.device)?;
    dev.wait_ready()?;
    let block = dev.block_size()? as usize;
    if a.transfer % block != 0 || a.transfer == 0 {
        return Err(format!(
            "--transfer {} is not a whole number of {block}-byte blocks",
            a.transfer
        )
        .into());
    }
    let blocks = (a.transfer / block) as u32;
    // Cycle over the first 64 MiB (or the whole device if smaller).
    let span = dev.read_capacity()?.blocks.min((64 << 20) / block as u64) / u64::from(blocks)
        * u64::from(blocks);
    drop(dev);
    let knob = |name: &str| {
        std::fs::read_to_string(format!("/sys/bus/pseudo/drivers/scsi_debug/{name}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    println!(
        "device {}, transfer {} bytes, {} commands x {} rounds per configuration, scsi_debug ndelay={} delay={}",
        a.device.display(),
        a.transfer,
        a.commands,
        a.rounds,
        knob("ndelay"),
        knob("delay")
    );
    // Depth 0 below marks the mmap-ed SG_IO baseline (it runs one at a time).
    let mut configs = vec![
        Config {
            label: "sync SG_IO".into(),
            depth: 1,
            engine: setup(&a, None, 1)?,
            samples: Vec::new(),
        },
        Config {
            label: "sync SG_IO mmap".into(),
            depth: 1,
            engine: setup(&a, None, 0)?,
            samples: Vec::new(),
        },
    ];
    for mode in StreamMode::ALL {
        for depth in DEPTHS {
            configs.push(Config {
                label: mode.name().into(),
                depth,
                engine: setup(&a, Some(mode), depth)?,
                samples: Vec::new(),
            });
        }
    }
    // Warm up every engine once, then interleave the timed rounds.
    for c in &mut configs {
        run(
            &mut c.engine,
            c.depth,
            (a.commands / 10).max(1),
            (blocks, block),
            span,
        )?;
    }
    for round in 0..a.rounds {
        let n = configs.len();
        for k in 0..n {
            let c = &mut configs[(k + round) % n];
            let took = run(&mut c.engine, c.depth, a.commands, (blocks, block), span)?;
            c.samples.push(a.commands as f64 / took.as_secs_f64());
        }
    }
    println!();
    println!("| mode | depth 1 | depth 4 | depth 16 | 4 vs 1 | 16 vs 1 |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for c in configs.iter_mut().take(2) {
        let rate = median(&mut c.samples.clone());
        println!("| {} | {rate:.0} cmd/s | | | | |", c.label);
    }
    for mode in StreamMode::ALL {
        let mut rows: Vec<Vec<f64>> = Vec::new();
        for depth in DEPTHS {
            let c = configs
                .iter()
                .find(|c| c.label == mode.name() && c.depth == depth)
                .ok_or("missing configuration")?;
            rows.push(c.samples.clone());
        }
        // Ratios are taken within each round, then the median: the rounds
        // share the machine's load of the moment.
        let ratio = |d: usize| {
            let mut r: Vec<f64> = rows[d]
                .iter()
                .zip(&rows[0])
                .map(|(x, one)| x / one)
                .collect();
            median(&mut r)
        };
        println!(
            "| {} | {:.0} cmd/s | {:.0} cmd/s | {:.0} cmd/s | {:.2}x | {:.2}x |",
            mode.name(),
            median(&mut rows[0].clone()),
            median(&mut rows[1].clone()),
            median(&mut rows[2].clone()),
            ratio(1),
            ratio(2)
        );
    }
    Ok(())
}
