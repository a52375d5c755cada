//! What signal safety costs a synchronous command: sgmap's commands against
//! the one-`SG_IO`-per-command baseline, 4 KiB reads, in each mode, on one
//! fd, interleaved.
//!
//! A plain `SG_IO` can be orphaned or sent twice by a signal, so sgmap
//! sends caller-buffer commands (indirect, direct) on a read-write fd with
//! `write()` and collects them with `read()`: two system calls. mmap-ed
//! commands keep one `SG_IO` (made safe by `SG_SET_KEEP_ORPHAN`). This bench
//! times, in alternating rounds on the same fd, `COMMANDS` reads through
//! sgmap ("new") and `COMMANDS` reads by a bare `SG_IO` ioctl ("old": the
//! path sgmap took before, less its few nanoseconds of header and outcome
//! work), and prints, per mode, the median ratio new/old of commands per
//! second with its spread over the rounds (min..max).
//!
//! `cargo xtask bench signal_cost` runs it in the test bed (its `sync`
//! phase, scsi_debug `delay=0`); elsewhere it needs `SGMAP_TEST_DEVICE`.

use std::os::fd::AsRawFd;
use std::time::Instant;

use sgmap::cdb::Cdb;
use sgmap::{Command, Data, Device, DirectBuf, Direction};
use sgmap_benches::{device_from_env, stats};
use sgmap_sys as sys;

const LEN: usize = 4096;
const COMMANDS: usize = 3000;
const ROUNDS: usize = 15;

/// One READ of `LEN` bytes at LBA 0 by a bare SG_IO on `fd`.
fn raw_read(fd: i32, cdb: &Cdb, flags: u32, data: *mut u8) -> Result<(), String> {
    let mut sense = [0u8; 32];
    let mut hdr = sys::sg_io_hdr::new();
    let bytes = cdb.as_bytes();
    hdr.cmd_len = bytes.len() as u8;
    hdr.cmdp = bytes.as_ptr().cast_mut();
    hdr.mx_sb_len = sense.len() as u8;
    hdr.sbp = sense.as_mut_ptr();
    hdr.dxfer_direction = sys::SG_DXFER_FROM_DEV;
    hdr.dxfer_len = LEN as u32;
    hdr.dxferp = data.cast();
    hdr.flags = flags;
    hdr.timeout = 10_000;
    // SAFETY: the header points at live CDB, sense and data buffers of the
    // lengths it gives (or a null data pointer for mmap IO).
    unsafe { sys::ioctl::sg_io(fd, &mut hdr) }.map_err(|e| format!("SG_IO: {e}"))?;
    if hdr.status != 0 || hdr.host_status != 0 || hdr.resid != 0 {
        return Err(format!(
            "SG_IO: status {:#x}, host {:#x}, resid {}",
            hdr.status, hdr.host_status, hdr.resid
        ));
    }
    Ok(())
}

/// Commands per second of `n` calls of `f`.
fn rate(n: usize, mut f: impl FnMut() -> Result<(), String>) -> Result<f64, String> {
    let t0 = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// Per round: commands per second new, old, and their ratio.
type Rounds = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Alternating rounds of `new` and `old`; the ratios new/old per round.
fn compare(
    mut new: impl FnMut() -> Result<(), String>,
    mut old: impl FnMut() -> Result<(), String>,
) -> Result<Rounds, String> {
    // Warm-up.
    rate(COMMANDS / 4, &mut new)?;
    rate(COMMANDS / 4, &mut old)?;
    let (mut news, mut olds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (n, o) = if round % 2 == 0 {
            let n = rate(COMMANDS, &mut new)?;
            (n, rate(COMMANDS, &mut old)?)
        } else {
            let o = rate(COMMANDS, &mut old)?;
            (rate(COMMANDS, &mut new)?, o)
        };
        news.push(n);
        olds.push(o);
        ratios.push(n / o);
    }
    Ok((news, olds, ratios))
}

fn run(path: &std::path::Path) -> Result<(), String> {
    let e = |e: sgmap::Error| e.to_string();
    let cdb = Cdb::read(0, (LEN / 512) as u32).map_err(|e| e.to_string())?;
    println!(
        "signal_cost: 4 KiB reads, {ROUNDS} alternating rounds of {COMMANDS} commands each way, one boot"
    );
    println!("| mode | new cmd/s | old cmd/s | new/old median | min..max |");
    println!("| --- | ---: | ---: | ---: | --- |");
    let report = |mode: &str, (news, olds, ratios): Rounds| {
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        println!(
            "| {mode} | {:.0} | {:.0} | {:.3} | {lo:.3}..{hi:.3} |",
            stats::median(&news).unwrap_or(0.0),
            stats::median(&olds).unwrap_or(0.0),
            stats::median(&ratios).unwrap_or(0.0),
        );
    };
    for direct in [false, true] {
        let mut dev = Device::open(path).map_err(e)?;
        dev.wait_ready().map_err(e)?;
        // As the modes bench does: an indirect command copies through the
        // fd's reserved buffer rather than a buffer of its own.
        let _ = dev.set_reserved_size(LEN);
        let fd = dev.as_raw_fd();
        let mut buf = DirectBuf::new(LEN);
        let ptr = buf.as_mut_ptr();
        let cmd = if direct {
            Command::new(cdb).direct()
        } else {
            Command::new(cdb)
        };
        let flags = if direct { sys::SG_FLAG_DIRECT_IO } else { 0 };
        let dev = &dev;
        let buf = std::cell::RefCell::new(&mut buf);
        let out = compare(
            || {
                let mut b = buf.borrow_mut();
                let o = dev.execute(&cmd, Data::FromDevice(&mut b[..])).map_err(e)?;
                o.check(dev.path()).map(|_| ()).map_err(e)
            },
            || raw_read(fd, &cdb, flags, ptr),
        )?;
        report(if direct { "direct" } else { "indirect" }, out);
    }
    let dev = Device::open(path).map_err(e)?;
    dev.wait_ready().map_err(e)?;
    let m = std::cell::RefCell::new(dev.map_reserved(LEN).map_err(|x| x.to_string())?);
    let fd = m.borrow().as_raw_fd();
    let out = compare(
        || {
            let mut m = m.borrow_mut();
            let o = m
                .execute(&Command::new(cdb), Direction::FromDevice, LEN)
                .map_err(e)?;
            o.check(m.path()).map(|_| ()).map_err(e)
        },
        || raw_read(fd, &cdb, sys::SG_FLAG_MMAP_IO, std::ptr::null_mut()),
    )?;
    report("mmap", out);
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !args.is_empty() && !args.iter().any(|f| "signal_cost".contains(f.as_str())) {
        return;
    }
    if std::env::var("SGMAP_TEST_PHASE").is_ok_and(|p| p != "sync") {
        return;
    }
    let Some(path) = device_from_env() else {
        eprintln!("signal_cost: SGMAP_TEST_DEVICE is not set: skipped (run `cargo xtask bench signal_cost`)");
        return;
    };
    if let Err(err) = run(&path) {
        eprintln!("signal_cost: {err}");
        std::process::exit(1);
    }
}
