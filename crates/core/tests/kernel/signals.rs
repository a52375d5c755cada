//! Signals that hit a synchronous command while it is in the device.
//!
//! The sg driver's `SG_IO` waits interruptibly: a signal with a handler
//! (without `SA_RESTART`) ends the ioctl with EINTR and orphans the request;
//! with `SA_RESTART`, or a SIGSTOP/SIGCONT, the kernel restarts the ioctl,
//! which sends the command again (or, for mmap IO, fails EBUSY because the
//! orphan still owns the reserved buffer). These tests make each command slow
//! (scsi_debug `ndelay`), hit it with each kind of signal in each transfer
//! mode, and check what the rule promises: the call ends in a completed
//! result (or an "interrupted" error), the driver holds nothing for the fd
//! once it returns, the device saw the command exactly once, and the buffer
//! (a `DirectBuf`, a `Vec`, the mapping) holds the right data.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sgmap::{BlockIo, Device, DirectBuf, Error, Mode};
use sgmap_sys as sys;
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 4] = [
    KernelTest::scsi_debug(
        "signal_without_sa_restart_mid_command_completes_once_no_orphan",
        without_restart,
    ),
    KernelTest::scsi_debug(
        "signal_with_sa_restart_mid_command_completes_once_no_orphan",
        with_restart,
    ),
    KernelTest::scsi_debug(
        "signal_stop_and_continue_mid_command_completes_once_no_orphan",
        stop_and_continue,
    ),
    KernelTest::scsi_debug(
        "signal_on_read_only_handle_never_resends_silently_no_orphan",
        read_only_handle,
    ),
];

/// How long each command stays in the device.
const LATENCY_NS: u64 = 300_000_000;
/// When the first signal comes after the command starts, the gap between
/// signals, and how many are sent at most (a bound: a call that restarts its
/// command on every signal would otherwise never finish).
const FIRST_SIGNAL: Duration = Duration::from_millis(60);
const SIGNAL_GAP: Duration = Duration::from_millis(70);
const MAX_SIGNALS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    /// SIGUSR1 with a handler installed without SA_RESTART.
    Handler,
    /// SIGUSR1 with a handler installed with SA_RESTART.
    RestartingHandler,
    /// SIGSTOP then SIGCONT, sent by another process.
    StopContinue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Indirect,
    Direct,
    Mmap,
}

const WAYS: [Way; 3] = [Way::Indirect, Way::Direct, Way::Mmap];

fn without_restart(ctx: &Ctx) -> Result<(), Failed> {
    every_way(ctx, Hit::Handler)
}

fn with_restart(ctx: &Ctx) -> Result<(), Failed> {
    every_way(ctx, Hit::RestartingHandler)
}

fn stop_and_continue(ctx: &Ctx) -> Result<(), Failed> {
    every_way(ctx, Hit::StopContinue)
}

/// A read-only handle cannot `write()` its commands: they go by SG_IO, whose
/// restart sends a command again. That must never pass unreported.
fn read_only_handle(ctx: &Ctx) -> Result<(), Failed> {
    let _stats = Knob::scsi_debug("statistics", 1)?;
    let mut failures = Vec::new();
    for hit in [Hit::Handler, Hit::RestartingHandler, Hit::StopContinue] {
        for (k, way) in WAYS.into_iter().enumerate() {
            let lba = 500_000 + 64 * k as u64;
            if let Err(e) = one(ctx, hit, way, false, true, lba) {
                let what = format!("read-only, {hit:?}, {way:?} read");
                failures.push(format!("{what}: {}", e.message().unwrap_or("failed")));
            }
        }
    }
    ensure(failures.is_empty(), failures.join("\n"))
}

fn every_way(ctx: &Ctx, hit: Hit) -> Result<(), Failed> {
    let _stats = Knob::scsi_debug("statistics", 1)?;
    let mut failures = Vec::new();
    for (k, way) in WAYS.into_iter().enumerate() {
        for write in [false, true] {
            let what = format!("{hit:?}, {way:?} {}", if write { "write" } else { "read" });
            let lba = 520_000 + 64 * (2 * k as u64 + u64::from(write));
            if let Err(e) = one(ctx, hit, way, write, false, lba) {
                failures.push(format!("{what}: {}", e.message().unwrap_or("failed")));
            }
        }
    }
    ensure(failures.is_empty(), failures.join("\n"))
}

/// Signal handler that only counts.
static HANDLED: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    HANDLED.fetch_add(1, Ordering::SeqCst);
}

/// A SIGUSR1 handler for the life of the guard.
struct Handler {
    old: libc::sigaction,
}

impl Handler {
    fn install(restart: bool) -> Result<Self, Failed> {
        // SAFETY: all-zero bytes are a valid sigaction (no handler, no flags).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = count_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = if restart { libc::SA_RESTART } else { 0 };
        // SAFETY: `sa.sa_mask` is a valid sigset_t to clear.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid sigactions; the handler only touches an atomic,
        // which is async-signal-safe.
        if unsafe { libc::sigaction(libc::SIGUSR1, &sa, &mut old) } != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()).into());
        }
        Ok(Self { old })
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        // SAFETY: puts back the disposition saved by `install`.
        unsafe { libc::sigaction(libc::SIGUSR1, &self.old, std::ptr::null_mut()) };
    }
}

/// Runs `op` while signals of kind `hit` arrive. Returns what `op` returned
/// and how many signals hit the process during it.
fn under_signals<T>(hit: Hit, op: impl FnOnce() -> T) -> Result<(T, usize), Failed> {
    match hit {
        Hit::Handler | Hit::RestartingHandler => {
            let _handler = Handler::install(hit == Hit::RestartingHandler)?;
            HANDLED.store(0, Ordering::SeqCst);
            // SAFETY: pthread_self has no preconditions.
            let target = unsafe { libc::pthread_self() };
            let stop = AtomicBool::new(false);
            let out = std::thread::scope(|s| {
                s.spawn(|| {
                    std::thread::sleep(FIRST_SIGNAL);
                    for _ in 0..MAX_SIGNALS {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        // SAFETY: `target` is the scope's owning thread, alive
                        // until this thread has been joined.
                        unsafe { libc::pthread_kill(target, libc::SIGUSR1) };
                        std::thread::sleep(SIGNAL_GAP);
                    }
                });
                let out = op();
                stop.store(true, Ordering::SeqCst);
                out
            });
            Ok((out, HANDLED.load(Ordering::SeqCst)))
        }
        Hit::StopContinue => {
            // SAFETY: getpid has no preconditions.
            let parent = unsafe { libc::getpid() };
            // SAFETY: the child only calls async-signal-safe functions
            // (nanosleep, kill, _exit) before it exits.
            let child = unsafe { libc::fork() };
            if child < 0 {
                return Err(format!("fork: {}", std::io::Error::last_os_error()).into());
            }
            if child == 0 {
                let nap = |ms: i64| {
                    let ts = libc::timespec {
                        tv_sec: 0,
                        tv_nsec: ms * 1_000_000,
                    };
                    // SAFETY: a valid timespec; nanosleep is async-signal-safe.
                    unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
                };
                // Twice: stopped for less than the command's latency, then
                // (the second time) until it would have finished.
                for (first, stopped) in [(60, 60), (40, 250)] {
                    nap(first);
                    // SAFETY: kill and _exit are async-signal-safe.
                    unsafe { libc::kill(parent, libc::SIGSTOP) };
                    nap(stopped);
                    // SAFETY: as above.
                    unsafe { libc::kill(parent, libc::SIGCONT) };
                }
                // SAFETY: ends the child without running the parent's atexit handlers.
                unsafe { libc::_exit(0) };
            }
            let out = op();
            let mut status = 0;
            // SAFETY: `child` is our child; `status` is a valid int.
            let r = unsafe { libc::waitpid(child, &mut status, 0) };
            ensure(
                r == child && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
                format!("the signalling child ended badly (status {status:#x})"),
            )?;
            Ok((out, 2))
        }
    }
}

/// The commands scsi_debug has seen (`cmnd_count` in
/// /proc/scsi/scsi_debug/HOST; counted while `statistics` is on).
pub(crate) fn command_count() -> Result<u64, Failed> {
    let dir = std::fs::read_dir("/proc/scsi/scsi_debug")
        .map_err(|e| format!("/proc/scsi/scsi_debug: {e}"))?;
    let mut total = 0;
    let mut found = false;
    for entry in dir {
        let text = std::fs::read_to_string(entry?.path())?;
        if let Some(n) = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .find_map(|w| w.strip_prefix("cmnd_count="))
        {
            total += n
                .parse::<u64>()
                .map_err(|e| format!("cmnd_count {n:?}: {e}"))?;
            found = true;
        }
    }
    ensure(found, "no cmnd_count in /proc/scsi/scsi_debug/*")?;
    Ok(total)
}

/// Every request the driver holds for `fd`, in any state (in flight, done,
/// being read), as `(state, pack_id, orphan)`.
fn driver_requests(fd: &impl AsRawFd) -> Result<Vec<(i8, i32, i8)>, Failed> {
    let mut t = [sys::sg_req_info::default(); sys::SG_MAX_QUEUE];
    // SAFETY: `t` has SG_MAX_QUEUE entries, as the ioctl expects.
    unsafe { sys::ioctl::sg_get_request_table(fd.as_raw_fd(), &mut t) }
        .map_err(|e| format!("SG_GET_REQUEST_TABLE: {e}"))?;
    Ok(t.iter()
        .filter(|r| r.req_state != 0)
        .map(|r| (r.req_state, r.pack_id, r.orphan))
        .collect())
}

/// What one interrupted call gave.
struct Ran {
    /// `Ok(bytes)`, or the error.
    result: Result<usize, Error>,
    /// The driver's table for the fd right after the call returned.
    left: Vec<(i8, i32, i8)>,
    /// The buffer's bytes after the call (for a read: what was read).
    bytes: Vec<u8>,
    /// The mode that ran, when the call succeeded.
    mode: Option<Mode>,
}

fn one(
    ctx: &Ctx,
    hit: Hit,
    way: Way,
    write: bool,
    read_only: bool,
    lba: u64,
) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    // `lba` counts 512-byte blocks: the same bytes whatever the sector size.
    let lba = lba * 512 / block as u64;
    let len = 8 * block;
    let before = data(lba ^ 0x5157, lba, block, len);
    let new = data(lba ^ 0xa5a5, lba, block, len);
    dev.write_blocks(lba, &before, BlockIo::indirect())?;
    let handle = || -> Result<Device, Failed> {
        let d = Device::options().read_only(read_only).open(&ctx.device)?;
        d.wait_ready()?;
        d.block_size()?;
        Ok(d)
    };
    let dev = handle()?;
    // Every handle is ready (and its block size known) before counting: the
    // call under test then sends nothing but its one command.
    let mut mapped = match way {
        Way::Mmap => {
            let mut m = handle()?.map_reserved(len)?;
            if write {
                m.as_mut_slice().ok_or("read-write mapping")?[..len].copy_from_slice(&new);
            }
            Some(m)
        }
        _ => None,
    };
    let (ran, signals, count, took) = {
        let _latency = Knob::latency_ns(LATENCY_NS)?;
        let count0 = command_count()?;
        let t0 = Instant::now();
        let (ran, signals) = match way {
            Way::Indirect => {
                let mut buf = if write { new.clone() } else { vec![0u8; len] };
                under_signals(hit, || {
                    let r = if write {
                        dev.write_blocks(lba, &buf, BlockIo::indirect())
                    } else {
                        dev.read_blocks(lba, &mut buf, BlockIo::indirect())
                    };
                    let left = driver_requests(&dev);
                    (r, left)
                })
                .and_then(|((r, left), n)| {
                    Ok((
                        Ran {
                            mode: r.as_ref().ok().map(|t| t.mode),
                            result: r.map(|t| t.bytes),
                            left: left?,
                            bytes: buf,
                        },
                        n,
                    ))
                })?
            }
            Way::Direct => {
                let mut buf = if write {
                    DirectBuf::from_slice(&new)
                } else {
                    DirectBuf::new(len)
                };
                under_signals(hit, || {
                    let r = if write {
                        dev.write_blocks(lba, &buf, BlockIo::direct())
                    } else {
                        dev.read_blocks(lba, &mut buf, BlockIo::direct())
                    };
                    let left = driver_requests(&dev);
                    (r, left)
                })
                .and_then(|((r, left), n)| {
                    Ok((
                        Ran {
                            mode: r.as_ref().ok().map(|t| t.mode),
                            result: r.map(|t| t.bytes),
                            left: left?,
                            // Dropping the buffer here is what a caller may do
                            // once the call has returned.
                            bytes: buf.to_vec(),
                        },
                        n,
                    ))
                })?
            }
            Way::Mmap => {
                let m = mapped.as_mut().ok_or("mapped device")?;
                let blocks = (len / block) as u32;
                let ((r, left), n) = under_signals(hit, || {
                    let r = if write {
                        m.write_blocks(lba, blocks)
                            .map(|o| (o.transferred(), o.mode))
                    } else {
                        m.read_blocks(lba, blocks).map(|d| (d.len(), Mode::Mmap))
                    };
                    let left = driver_requests(&*m);
                    (r, left)
                })?;
                (
                    Ran {
                        mode: r.as_ref().ok().map(|t| t.1),
                        result: r.map(|t| t.0),
                        left: left?,
                        bytes: m.as_slice()[..len].to_vec(),
                    },
                    n,
                )
            }
        };
        let took = t0.elapsed();
        // Anything still in the device lands before counting.
        std::thread::sleep(Duration::from_nanos(2 * LATENCY_NS));
        (ran, signals, command_count()? - count0, took)
    };
    ensure(
        signals > 0,
        "no signal was sent while the command ran; the test proves nothing",
    )?;
    ensure(
        ran.left.is_empty(),
        format!(
            "after the call returned ({}), the driver still holds requests for the fd \
             (state, pack_id, orphan): {:?}",
            describe(&ran.result),
            ran.left
        ),
    )?;
    match &ran.result {
        Ok(bytes) => {
            ensure_eq(count, 1, "commands the device received for one call")?;
            ensure_eq(*bytes, len, "bytes moved")?;
            let want_mode = match way {
                Way::Indirect => Mode::Indirect,
                Way::Direct => Mode::Direct,
                Way::Mmap => Mode::Mmap,
            };
            ensure_eq(ran.mode, Some(want_mode), "mode that ran")?;
            if write {
                same(&ran.bytes, &new, "the buffer of the write")?;
            } else {
                same(&ran.bytes, &before, "the data read")?;
            }
        }
        Err(Error::Interrupted { sent, .. }) => {
            // Only a read-only handle's SG_IO can be restarted into sending
            // a command again, and then the error must say so, truly.
            ensure(
                read_only,
                format!(
                    "a read-write handle must give the command's own result, not: {}",
                    describe(&ran.result)
                ),
            )?;
            ensure_eq(
                count,
                u64::from(*sent),
                "commands the device received, against what the error says",
            )?;
            ensure(
                *sent > 1,
                format!(
                    "only the result was lost, yet nothing turned keep-orphan off: {}",
                    describe(&ran.result)
                ),
            )?;
        }
        Err(e) => {
            return Err(
                format!("the call failed with something other than \"interrupted\": {e}").into(),
            )
        }
    }
    ensure(
        took >= Duration::from_nanos(LATENCY_NS / 2),
        format!("the call returned after {took:?}, before the command could have completed"),
    )?;
    // What is on the medium now.
    let mut now = vec![0u8; len];
    open(ctx)?.read_blocks(lba, &mut now, BlockIo::indirect())?;
    match (&ran.result, write) {
        (Ok(_), true) => same(&now, &new, "the medium after the write"),
        (_, false) => same(&now, &before, "the medium after the read"),
        (Err(_), true) => Ok(()),
    }
}

fn describe(r: &Result<usize, Error>) -> String {
    match r {
        Ok(n) => format!("Ok, {n} bytes"),
        Err(e) => format!("Err: {e}"),
    }
}
