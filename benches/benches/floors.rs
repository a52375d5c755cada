//! The two floors that bound any transfer mode: a TEST UNIT READY round trip
//! (a command that moves no data) against the device named by
//! `SGMAP_TEST_DEVICE`, and one memory copy of each transfer size from a
//! large, cold source (no device needed).

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use sgmap_benches::floors::{ColdCopy, TurLoop, COLD_SOURCE_BYTES};
use sgmap_benches::{device_from_env, DeviceFacts};

/// Transfer sizes when there is no device to ask for its maximum.
const DEFAULT_SIZES: [usize; 5] = [4 << 10, 64 << 10, 256 << 10, 1 << 20, 1_310_720];

fn floors(c: &mut Criterion) {
    if std::env::var("SGMAP_TEST_PHASE").is_ok_and(|p| p == "latency") {
        eprintln!("floors: measured in the phase without device latency; skipped");
        return;
    }
    let device = device_from_env();
    let sizes = match device.as_deref().map(DeviceFacts::probe) {
        Some(Ok(f)) => f.bench_sizes(),
        Some(Err(e)) => {
            eprintln!("floor/tur: skipped: {e}");
            DEFAULT_SIZES.to_vec()
        }
        None => {
            eprintln!("floor/tur: SGMAP_TEST_DEVICE is not set: skipped (run `cargo xtask bench`)");
            DEFAULT_SIZES.to_vec()
        }
    };
    if let Some(path) = &device {
        match TurLoop::open(path).and_then(|mut t| t.once().map(|()| t)) {
            Ok(mut tur) => {
                let mut failed = None;
                c.bench_function("floor/tur", |b| {
                    b.iter(|| {
                        if let Err(e) = tur.once() {
                            failed.get_or_insert(e);
                        }
                    })
                });
                if let Some(e) = failed {
                    eprintln!("floor/tur: a timed command failed: {e}");
                }
            }
            Err(e) => eprintln!("floor/tur: skipped: {e}"),
        }
    }
    let mut group = c.benchmark_group("floor/copy");
    for size in sizes {
        let mut copy = ColdCopy::new(size, COLD_SOURCE_BYTES);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| copy.once())
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    floors(&mut c);
    c.final_summary();
}
