//! Read and write throughput in each transfer mode (mmap, direct, indirect)
//! at 4 KiB, 64 KiB, 256 KiB, 1 MiB and the granted maximum, one command at a
//! time, against the device named by `SGMAP_TEST_DEVICE` (skipped without
//! it). Every command goes to the same blocks, as sg3_utils' `sg_read` does.
//!
//! And at queue depth 16 (sgmap's asynchronous queue for direct and
//! indirect IO, its mmap fd pool for mmap) beside depth 1, reads and writes
//! at 4 KiB and 64 KiB: one criterion iteration is one command, timed over a
//! whole batch kept 16 deep. On Linux 7.1 and later the depth groups add
//! `uring`: the same commands through io_uring on the bsg node with
//! registered buffers (sgmap's `BsgRing`); older kernels skip it, saying so.
//!
//! `cargo xtask bench` runs this inside the test bed against scsi_debug: the
//! depth-1 groups (`read/sync`, `write/sync`) in its `sync` phase
//! (`delay=0`), the depth groups (`read/depth1`, `read/depth16`, ...) in its
//! `latency` phase (`ndelay=100000`, 100 µs per command), where depth
//! matters. Without a phase (a device given by hand) both run.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use sgmap_benches::uring::{kernel_has_uring, kernel_release};
use sgmap_benches::{device_from_env, Cycle, DeviceFacts, Dir, Runner, Session, Way};

/// Depths compared in the depth groups.
const DEPTHS: [usize; 2] = [1, 16];
/// Transfer sizes of the depth groups.
const DEPTH_SIZES: [usize; 2] = [4 << 10, 64 << 10];

fn modes(c: &mut Criterion) {
    let Some(path) = device_from_env() else {
        eprintln!("modes: SGMAP_TEST_DEVICE is not set: skipped (run `cargo xtask bench`)");
        return;
    };
    let phase = std::env::var("SGMAP_TEST_PHASE").unwrap_or_default();
    let facts = match DeviceFacts::probe(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("modes: skipped: {e}");
            return;
        }
    };
    if phase != "latency" {
        sync_groups(c, &path, &facts);
    }
    if phase != "sync" {
        depth_groups(c, &path, &facts);
    }
}

/// Depth 1 through synchronous SG_IO, every size.
fn sync_groups(c: &mut Criterion, path: &std::path::Path, facts: &DeviceFacts) {
    for dir in [Dir::Read, Dir::Write] {
        let mut group = c.benchmark_group(format!("{dir}/sync"));
        for size in facts.bench_sizes() {
            group.throughput(Throughput::Bytes(size as u64));
            for way in Way::ALL {
                let mut session = match Session::open(path, way, dir, size) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{dir}/sync/{way}/{size}: skipped: {e}");
                        continue;
                    }
                };
                // One checked transfer first: a failing mode is reported and
                // skipped, never timed.
                if let Err(e) = session.transfer(0, size) {
                    eprintln!("{dir}/sync/{way}/{size}: skipped: {e}");
                    continue;
                }
                let mut failed = None;
                group.bench_with_input(BenchmarkId::new(way.name(), size), &size, |b, &size| {
                    b.iter(|| {
                        if let Err(e) = session.transfer(0, size) {
                            failed.get_or_insert(e);
                        }
                    })
                });
                if let Some(e) = failed {
                    eprintln!("{dir}/sync/{way}/{size}: a timed transfer failed: {e}");
                }
                let modes = session.modes();
                if modes.of(way) != modes.total() {
                    eprintln!("{dir}/sync/{way}/{size}: not every command ran {way}: {modes}");
                }
            }
        }
        group.finish();
    }
}

/// Depth 1 and 16 through the queue, the pool and (7.1+) the ring; one iteration is one
/// command, timed over a batch kept `depth` deep.
fn depth_groups(c: &mut Criterion, path: &std::path::Path, facts: &DeviceFacts) {
    let block = facts.block_size;
    let mut ways = Way::ALL.to_vec();
    if kernel_has_uring() == Some(true) {
        ways.push(Way::Uring);
    } else {
        eprintln!(
            "depth groups: uring skipped: Linux {} has no SCSI passthrough through io_uring (7.1+)",
            kernel_release()
        );
    }
    for dir in [Dir::Read, Dir::Write] {
        for depth in DEPTHS {
            let mut group = c.benchmark_group(format!("{dir}/depth{depth}"));
            for size in DEPTH_SIZES
                .into_iter()
                .filter(|s| *s <= facts.max_size() && s % block == 0)
            {
                group.throughput(Throughput::Bytes(size as u64));
                for &way in &ways {
                    let name = format!("{dir}/depth{depth}/{way}/{size}");
                    let mut runner = match Runner::open(path, way, dir, size, depth) {
                        Ok(r) => r,
                        Err(e) => {
                            eprintln!("{name}: skipped: {e}");
                            continue;
                        }
                    };
                    // Each in-flight command at its own blocks, cycling over 16 transfers.
                    let step = (size / block) as u64;
                    let mut cycle = Cycle::new(0, 16 * step, step);
                    if let Err(e) = runner.run(&mut cycle, size, depth as u64, |_| {}) {
                        eprintln!("{name}: skipped: {e}");
                        continue;
                    }
                    let mut failed = None;
                    group.bench_with_input(
                        BenchmarkId::new(way.name(), size),
                        &size,
                        |b, &size| {
                            b.iter_custom(|iters| {
                                match runner.run(&mut cycle, size, iters, |_| {}) {
                                    Ok(s) => s.wall,
                                    Err(e) => {
                                        failed.get_or_insert(e);
                                        Duration::ZERO
                                    }
                                }
                            })
                        },
                    );
                    if let Some(e) = failed {
                        eprintln!("{name}: a timed batch failed: {e}");
                    }
                }
            }
            group.finish();
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    modes(&mut c);
    c.final_summary();
}
