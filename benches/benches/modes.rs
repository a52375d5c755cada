//! Read and write throughput in each transfer mode (mmap, direct, indirect)
//! at 4 KiB, 64 KiB, 256 KiB, 1 MiB and the granted maximum, one command at a
//! time, against the device named by `SGMAP_TEST_DEVICE` (skipped without
//! it). Every command goes to the same blocks, as sg3_utils' `sg_read` does.
//!
//! `cargo xtask bench` runs this inside the test bed against scsi_debug with
//! `delay=0`; in its `latency` phase (`ndelay=100000`) only queue-depth
//! benches run, and this build has none yet (depth 1 only).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use sgmap_benches::{device_from_env, DeviceFacts, Dir, Session, Way};

fn modes(c: &mut Criterion) {
    let Some(path) = device_from_env() else {
        eprintln!("modes: SGMAP_TEST_DEVICE is not set: skipped (run `cargo xtask bench`)");
        return;
    };
    if std::env::var("SGMAP_TEST_PHASE").is_ok_and(|p| p == "latency") {
        eprintln!(
            "modes: latency phase: {}; skipped",
            sgmap_benches::depth_unsupported_reason(16)
        );
        return;
    }
    let facts = match DeviceFacts::probe(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("modes: skipped: {e}");
            return;
        }
    };
    for dir in [Dir::Read, Dir::Write] {
        let mut group = c.benchmark_group(format!("{dir}/sync"));
        for size in facts.bench_sizes() {
            group.throughput(Throughput::Bytes(size as u64));
            for way in Way::ALL {
                let mut session = match Session::open(&path, way, dir, size) {
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

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    modes(&mut c);
    c.final_summary();
}
