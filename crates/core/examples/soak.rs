//! A bounded soak: millions of commands mixed across the three modes,
//! transfer sizes and queue depths, with every byte written checked when read
//! back in another mode, and the process's fds and resident memory sampled
//! before and after. Exits non-zero on any mismatch or growth.
//!
//! Usage: `soak [--commands N] [DEVICE]` (default 2,000,000 commands, the
//! device from `$SGMAP_TEST_DEVICE`). `cargo xtask soak` runs it in the test
//! bed against scsi_debug.

use std::path::PathBuf;
use std::time::Instant;

use sgmap::stream::{self, Options, StreamMode};

const SIZES: [usize; 3] = [4096, 32 * 1024, 128 * 1024];
const DEPTHS: [usize; 3] = [1, 4, 16];

fn main() {
    if let Err(e) = run() {
        eprintln!("soak: {e}");
        std::process::exit(1);
    }
}

/// Open fds of this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident set size in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Pseudo-random bytes the blocks' contents are cut from.
const NOISE_LEN: usize = 1 << 20;

fn noise() -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..NOISE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// What block `lba` holds after round `round` wrote it: a slice of the noise
/// at a place that depends on both, so a block from another round or LBA,
/// or a stale buffer, does not match.
fn expected(noise: &[u8], round: u64, lba: u64, block: usize) -> &[u8] {
    let key = round.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ lba.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let at = (key % (NOISE_LEN - block) as u64) as usize;
    &noise[at..at + block]
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut commands: u64 = 2_000_000;
    let mut device: Option<PathBuf> = std::env::var_os("SGMAP_TEST_DEVICE").map(PathBuf::from);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--commands" => commands = args.next().ok_or("--commands needs a number")?.parse()?,
            other => device = Some(other.into()),
        }
    }
    let device = device.ok_or("give a device, e.g. `soak /dev/sg0`")?;
    let dev = sgmap::Device::open(&device)?;
    dev.wait_ready()?;
    let block = dev.block_size()? as usize;
    let capacity = dev.read_capacity()?.blocks;
    drop(dev);

    let noise = noise();
    let mut done: u64 = 0;
    let mut written: u64 = 0;
    let mut verified: u64 = 0;
    let mut round: u64 = 0;
    let mut baseline = None;
    let started = Instant::now();
    while done < commands {
        let write_mode = StreamMode::ALL[(round % 3) as usize];
        let read_mode = StreamMode::ALL[((round / 3 + round + 1) % 3) as usize];
        let size = SIZES[((round / 9) % 3) as usize];
        let depth = DEPTHS[((round / 27) % 3) as usize];
        // Each round covers 64 transfers, at a place that moves through the disk.
        let blocks_per = (size / block) as u64;
        let span = 64 * blocks_per;
        let start = (round * 7919 * blocks_per) % (capacity - span);
        let range = start..start + span;
        let w = stream::write(
            &device,
            range.clone(),
            Options::new(write_mode).transfer_bytes(size).depth(depth),
            |lba, buf: &mut [u8]| {
                for (i, chunk) in buf.chunks_mut(block).enumerate() {
                    chunk.copy_from_slice(expected(&noise, round, lba + i as u64, block));
                }
                Ok::<(), sgmap::Error>(())
            },
        )?;
        let mut bad: Option<String> = None;
        let r = stream::read(
            &device,
            range,
            Options::new(read_mode).transfer_bytes(size).depth(depth),
            |lba, data: &[u8]| {
                for (i, chunk) in data.chunks(block).enumerate() {
                    let want = expected(&noise, round, lba + i as u64, block);
                    if chunk != want {
                        let o = chunk
                            .iter()
                            .zip(want)
                            .position(|(a, b)| a != b)
                            .unwrap_or(0);
                        bad.get_or_insert_with(|| {
                            format!(
                                "round {round}: block {} byte {o} differs \
                                 ({write_mode} write, {read_mode} read, {size} bytes, depth {depth})",
                                lba + i as u64
                            )
                        });
                    }
                }
                verified += data.len() as u64;
                Ok::<(), sgmap::Error>(())
            },
        )?;
        if let Some(b) = bad {
            return Err(b.into());
        }
        written += w.bytes;
        done += w.commands + r.commands;
        round += 1;
        if round == 81 {
            // Every mode, size and depth have run: take the baseline.
            baseline = Some((fds(), rss()));
        }
    }
    let (fd0, rss0) = baseline.unwrap_or((fds(), rss()));
    let (fd1, rss1) = (fds(), rss());
    let secs = started.elapsed().as_secs_f64();
    println!(
        "soak: {done} commands in {round} rounds ({:.0} cmd/s), {} MiB written and {} MiB read back and verified byte for byte",
        done as f64 / secs,
        written >> 20,
        verified >> 20
    );
    println!(
        "soak: fds {fd0} -> {fd1}, RSS {} KiB -> {} KiB",
        rss0 >> 10,
        rss1 >> 10
    );
    if fd1 > fd0 {
        return Err(format!("fds grew from {fd0} to {fd1}").into());
    }
    // Allow the allocator some slack, but not growth with the command count.
    if rss1 > rss0 + 4 * 1024 * 1024 {
        return Err(format!("RSS grew from {} KiB to {} KiB", rss0 >> 10, rss1 >> 10).into());
    }
    println!("soak: no fd or memory growth, nothing lost");
    Ok(())
}
