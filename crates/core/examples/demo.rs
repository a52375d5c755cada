//! The three transfer modes on one device: writes a pattern, reads it back
//! with indirect, direct and mmap-ed IO, checks every byte, and reports what
//! the kernel really did and how fast each mode moved the data.
//!
//! Usage: `demo [/dev/sgN]` (default: the first scsi_debug sg node, or
//! `$SGMAP_TEST_DEVICE`). Run it on the built-in scsi_debug disk with
//! `cargo xtask demo`.

use std::path::PathBuf;
use std::time::Instant;

use sgmap::{BlockIo, Device, DirectBuf, Mode};

const TRANSFER: usize = 1 << 20;
const ROUNDS: usize = 200;

fn main() {
    if let Err(e) = run() {
        eprintln!("demo: {e}");
        std::process::exit(1);
    }
}

fn device_path() -> Result<PathBuf, Box<dyn std::error::Error>> {
    if let Some(p) = std::env::args_os()
        .nth(1)
        .or_else(|| std::env::var_os("SGMAP_TEST_DEVICE"))
    {
        return Ok(p.into());
    }
    let list = sgmap::discover::list()?;
    list.iter()
        .find(|d| d.model == "scsi_debug")
        .or(list.first())
        .map(|d| d.path.clone())
        .ok_or_else(|| "no sg device found: give one, e.g. `demo /dev/sg0`".into())
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = device_path()?;
    let dev = Device::open(&path)?;
    dev.wait_ready()?;
    let inq = dev.inquiry()?;
    let cap = dev.read_capacity()?;
    println!(
        "{}: {} {} rev {}, {} blocks of {} bytes ({} MiB), sg driver {}, max transfer {} bytes, allow_dio {:?}",
        path.display(),
        inq.vendor,
        inq.product,
        inq.revision,
        cap.blocks,
        cap.block_size,
        cap.bytes() >> 20,
        dev.driver_version(),
        dev.max_transfer(),
        sgmap::discover::allow_dio(),
    );
    let block = cap.block_size as usize;
    let len = TRANSFER.min(dev.max_transfer() / block * block);
    let blocks = (len / block) as u32;
    let lba = 0;

    // A pattern only this run writes.
    let seed = std::process::id() as u64;
    let mut want = vec![0u8; len];
    for (i, b) in want.iter_mut().enumerate() {
        *b = (i as u64).wrapping_mul(0x9e37_79b9).wrapping_add(seed) as u8 ^ (i >> 9) as u8;
    }
    dev.write_blocks(lba, &want, BlockIo::indirect())?;
    println!("wrote {len} bytes at LBA {lba}; reading them back {ROUNDS} times in each mode:\n");
    println!(
        "{:<9} {:>10} {:>10} {:>9}  what the kernel did",
        "mode", "MB/s", "cmds/s", "vs indir"
    );

    let mut indirect_rate = 0.0;
    // Indirect: the kernel copies into our Vec.
    let mut buf = vec![0u8; len];
    let (rate, did) = timed(|| Ok(dev.read_blocks(lba, &mut buf, BlockIo::indirect())?.mode))?;
    check(&buf, &want, "indirect")?;
    report("indirect", rate, len, &mut indirect_rate, did, None);

    // Direct: the kernel pins our page-aligned pages.
    let mut dbuf = DirectBuf::new(len);
    let mut fallback = None;
    let (rate, did) = timed(|| {
        let t = dev.read_blocks(lba, &mut dbuf, BlockIo::direct())?;
        fallback = t.fallback;
        Ok(t.mode)
    })?;
    check(&dbuf, &want, "direct")?;
    report(
        "direct",
        rate,
        len,
        &mut indirect_rate,
        did,
        fallback.map(|f| f.to_string()),
    );

    // mmap: the device's data lands in the fd's reserved buffer, mapped here.
    let mut mapped = dev.map_reserved(len)?;
    let (rate, did) = timed(|| {
        mapped.read_blocks(lba, blocks)?;
        Ok(Mode::Mmap)
    })?;
    check(&mapped.as_slice()[..len], &want, "mmap")?;
    report(
        "mmap",
        rate,
        len,
        &mut indirect_rate,
        did,
        Some(format!(
            "granted reserved buffer {} bytes",
            mapped.granted()
        )),
    );
    println!("\nall three modes read back exactly what was written.");
    Ok(())
}

/// Commands per second over ROUNDS runs of `f`, and the mode it reported.
fn timed(
    mut f: impl FnMut() -> sgmap::Result<Mode>,
) -> Result<(f64, Mode), Box<dyn std::error::Error>> {
    let mut mode = f()?; // warm-up, and the mode really used
    let start = Instant::now();
    for _ in 0..ROUNDS {
        mode = f()?;
    }
    Ok((ROUNDS as f64 / start.elapsed().as_secs_f64(), mode))
}

fn check(got: &[u8], want: &[u8], what: &str) -> Result<(), Box<dyn std::error::Error>> {
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => Err(format!("{what}: data differs at byte {i}").into()),
        None => Ok(()),
    }
}

fn report(name: &str, rate: f64, len: usize, indirect: &mut f64, did: Mode, note: Option<String>) {
    if *indirect == 0.0 {
        *indirect = rate;
    }
    println!(
        "{name:<9} {:>10.1} {:>10.0} {:>8.2}x  {did} IO{}",
        rate * len as f64 / 1e6,
        rate,
        rate / *indirect,
        note.map(|n| format!(" ({n})")).unwrap_or_default()
    );
}
