//! Harness for sgmap's in-kernel test binaries.
//!
//! Each crate's `tests/kernel*.rs` is a `harness = false` binary that lists its
//! tests as [`KernelTest`]s and hands them to [`run`]. `cargo xtask test` runs
//! these binaries inside the user-mode Linux test bed with
//! `SGMAP_TEST_DEVICE=/dev/sgN` (the scsi_debug disk) and
//! `SGMAP_TEST_SCSI_DEBUG=1`; on the host, without a device, every test is
//! reported as ignored (a skip, never a pass).
//!
//! Output and exit status are libtest's, so the xtask reads the usual
//! `test result: ... N passed; M failed; K ignored` line.

use std::fmt::Display;
use std::path::{Path, PathBuf};

pub use libtest_mimic::Failed;

/// Environment variable naming the sg node under test.
pub const DEVICE_ENV: &str = "SGMAP_TEST_DEVICE";
/// Environment variable set to 1 when the device is scsi_debug and its knobs may be turned.
pub const SCSI_DEBUG_ENV: &str = "SGMAP_TEST_SCSI_DEBUG";

/// What a test needs from the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Any sg device named by `SGMAP_TEST_DEVICE`.
    Device,
    /// The scsi_debug disk, whose sysfs knobs the test may turn (and restores).
    ScsiDebug,
    /// The scsi_debug disk on Linux `major.minor` or later (for a feature
    /// older kernels lack; skipped, with the reason printed, on them).
    ScsiDebugOnLinux(u32, u32),
}

/// What a test gets: the device under test.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Path of the sg node, e.g. `/dev/sg0`.
    pub device: PathBuf,
    /// Whether the device is scsi_debug (knobs available).
    pub scsi_debug: bool,
}

type TestFn = fn(&Ctx) -> Result<(), Failed>;

/// One in-kernel test.
#[derive(Debug, Clone, Copy)]
pub struct KernelTest {
    /// The test's name as libtest prints it.
    pub name: &'static str,
    /// What it needs; without it the test is skipped (ignored).
    pub needs: Needs,
    /// The test body.
    pub run: TestFn,
}

impl KernelTest {
    /// A test that needs only an sg device.
    pub const fn device(name: &'static str, run: TestFn) -> Self {
        Self {
            name,
            needs: Needs::Device,
            run,
        }
    }

    /// A test that needs the scsi_debug disk and its knobs.
    pub const fn scsi_debug(name: &'static str, run: TestFn) -> Self {
        Self {
            name,
            needs: Needs::ScsiDebug,
            run,
        }
    }

    /// A test that needs the scsi_debug disk on Linux `since` (major, minor)
    /// or later.
    pub const fn scsi_debug_on_linux(name: &'static str, since: (u32, u32), run: TestFn) -> Self {
        Self {
            name,
            needs: Needs::ScsiDebugOnLinux(since.0, since.1),
            run,
        }
    }
}

/// The running kernel's (major, minor), from `/proc/sys/kernel/osrelease`.
pub fn kernel_version() -> Option<(u32, u32)> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    Some((parts.next()?.ok()?, parts.next()?.ok()?))
}

/// The test context from the environment, if a device was given.
pub fn context() -> Option<Ctx> {
    let device = std::env::var_os(DEVICE_ENV).map(PathBuf::from)?;
    let scsi_debug = std::env::var(SCSI_DEBUG_ENV).is_ok_and(|v| v == "1");
    Some(Ctx { device, scsi_debug })
}

/// Runs `tests` with libtest's command line and output; returns the process exit code.
pub fn run(tests: &[KernelTest]) -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let ctx = context();
    if ctx.is_none() {
        eprintln!(
            "note: {DEVICE_ENV} is not set: in-kernel tests are skipped (run `cargo xtask test`)"
        );
    }
    let kernel = kernel_version();
    let mut too_old = Vec::new();
    let trials = tests
        .iter()
        .map(|t| {
            let t = *t;
            let available = match (&ctx, t.needs) {
                (None, _) => false,
                (Some(_), Needs::Device) => true,
                (Some(c), Needs::ScsiDebug) => c.scsi_debug,
                (Some(c), Needs::ScsiDebugOnLinux(major, minor)) => {
                    let new_enough = kernel.is_some_and(|k| k >= (major, minor));
                    if c.scsi_debug && !new_enough {
                        too_old.push(format!("{} (needs Linux {major}.{minor}+)", t.name));
                    }
                    c.scsi_debug && new_enough
                }
            };
            let ctx = ctx.clone();
            libtest_mimic::Trial::test(t.name, move || match ctx {
                Some(c) => (t.run)(&c),
                None => Err("no device".into()),
            })
            .with_ignored_flag(!available)
        })
        .collect();
    if !too_old.is_empty() {
        let k = kernel.map_or("unknown".into(), |(a, b)| format!("{a}.{b}"));
        eprintln!(
            "note: skipped on Linux {k}, too old for them: {}",
            too_old.join(", ")
        );
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// Fails with `msg` unless `cond` holds.
pub fn ensure(cond: bool, msg: impl Display) -> Result<(), Failed> {
    if cond {
        Ok(())
    } else {
        Err(msg.to_string().into())
    }
}

/// Fails unless `left == right`, showing both and `what`.
pub fn ensure_eq<T: PartialEq + std::fmt::Debug>(
    left: T,
    right: T,
    what: impl Display,
) -> Result<(), Failed> {
    if left == right {
        Ok(())
    } else {
        Err(format!("{what}: left {left:?} != right {right:?}").into())
    }
}

/// Where scsi_debug's live knobs are.
pub const SCSI_DEBUG_SYSFS: &str = "/sys/bus/pseudo/drivers/scsi_debug";
/// The sg driver's `allow_dio` parameter.
pub const ALLOW_DIO_SYSFS: &str = "/sys/module/sg/parameters/allow_dio";

/// scsi_debug's `opts` bits (drivers/scsi/scsi_debug.c, Linux 6.1), for
/// [`Knob::scsi_debug`]`("opts", ...)` and [`Knob::inject`].
pub mod sdebug_opts {
    /// Reads of LBAs `0x1234..0x1234+10` fail with MEDIUM ERROR (no every_nth needed).
    pub const MEDIUM_ERR: u32 = 0x2;
    /// The injected command is dropped: it times out.
    pub const TIMEOUT: u32 = 0x4;
    /// RECOVERED ERROR sense on the injected read or write.
    pub const RECOVERED_ERR: u32 = 0x8;
    /// ABORTED COMMAND, transport problem (deferred commands only).
    pub const TRANSPORT_ERR: u32 = 0x10;
    /// The injected read or write transfers half its length.
    pub const SHORT_TRANSFER: u32 = 0x100;
    /// TASK SET FULL when the device queue is full but for this command.
    pub const RARE_TSF: u32 = 0x800;
    /// queuecommand answers "host busy" for the injected command.
    pub const HOST_BUSY: u32 = 0x8000;
    /// The first LBA that [`MEDIUM_ERR`] fails.
    pub const MEDIUM_ERR_LBA: u64 = 0x1234;
}

/// A sysfs value set for the life of the guard, restored on drop.
#[derive(Debug)]
pub struct Knob {
    path: PathBuf,
    old: String,
}

impl Knob {
    /// Writes `value` to the file at `path`, remembering the old value.
    pub fn set(path: impl AsRef<Path>, value: impl Display) -> Result<Self, Failed> {
        let path = path.as_ref().to_path_buf();
        let old = std::fs::read_to_string(&path)
            .map_err(|e| format!("read {}: {e}", path.display()))?
            .trim()
            .to_string();
        std::fs::write(&path, value.to_string())
            .map_err(|e| format!("write {value} to {}: {e}", path.display()))?;
        Ok(Self { path, old })
    }

    /// Sets the scsi_debug knob `name` (e.g. `opts`, `every_nth`, `ndelay`, `wp`).
    pub fn scsi_debug(name: &str, value: impl Display) -> Result<Self, Failed> {
        Self::set(Path::new(SCSI_DEBUG_SYSFS).join(name), value)
    }

    /// Sets a scsi_debug module parameter that has no driver attribute (e.g. `wp`).
    pub fn scsi_debug_param(name: &str, value: impl Display) -> Result<Self, Failed> {
        Self::set(
            Path::new("/sys/module/scsi_debug/parameters").join(name),
            value,
        )
    }

    /// Turns on one of scsi_debug's injected faults (`opts` bits) for every
    /// command: injection needs `statistics=1` and `every_nth=1` as well.
    /// Returns the guards; dropping them restores all three.
    pub fn inject(opts: u32) -> Result<[Self; 3], Failed> {
        let stats = Self::scsi_debug("statistics", 1)?;
        let nth = Self::scsi_debug("every_nth", 1)?;
        let opts = Self::scsi_debug("opts", opts)?;
        // Dropped in array order: the fault goes first.
        Ok([opts, nth, stats])
    }

    /// Gives every scsi_debug command `ns` nanoseconds of latency (`ndelay`).
    /// Dropping the guards restores `ndelay` and then `delay`: setting
    /// `ndelay` back to 0 makes the driver fall back to a one-jiffy `delay`,
    /// which the second guard undoes.
    pub fn latency_ns(ns: u64) -> Result<[Self; 2], Failed> {
        let delay = Self::scsi_debug("delay", 0)?;
        let ndelay = Self::scsi_debug("ndelay", ns)?;
        Ok([ndelay, delay])
    }

    /// Sets the sg driver's `allow_dio`.
    pub fn allow_dio(on: bool) -> Result<Self, Failed> {
        Self::set(ALLOW_DIO_SYSFS, u8::from(on))
    }
}

impl Drop for Knob {
    fn drop(&mut self) {
        // every_nth counts down from the value written, so restore by writing back.
        // scsi_debug refuses to change its delays (EBUSY) while a command is
        // queued, e.g. one a test left in flight on a closed fd: wait for it,
        // or every later test runs with the old latency.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match std::fs::write(&self.path, &self.old) {
                Err(e)
                    if e.raw_os_error() == Some(16) // EBUSY
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => {
                    eprintln!(
                        "testkit: could not restore {} to {:?}: {e}",
                        self.path.display(),
                        self.old
                    );
                    return;
                }
                Ok(()) => return,
            }
        }
    }
}

/// A deterministic byte pattern for block `lba` of a transfer tagged `seed`,
/// so each block of each write is distinguishable when read back.
pub fn pattern(seed: u64, lba: u64, block: usize, out: &mut [u8]) {
    for (i, chunk) in out.chunks_mut(block.max(1)).enumerate() {
        let mut x = seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add((lba + i as u64).wrapping_mul(0xbf58_476d_1ce4_e5b9));
        for b in chunk.iter_mut() {
            x ^= x >> 31;
            x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
            *b = (x >> 56) as u8;
        }
    }
}
