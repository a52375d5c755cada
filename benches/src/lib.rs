//! The workloads behind sgmap's measurements: the criterion benches in
//! `benches/`, `sgmap bench` and `cargo xtask compare` all time the same code.
//!
//! - [`Session`]: one open device prepared for one transfer mode ([`Way`]),
//!   direction ([`Dir`]) and transfer size, moving data one command at a time
//!   with synchronous `SG_IO` (depth 1); [`DeepSession`] keeps more in flight
//!   with sgmap's asynchronous queue or its mmap fd pool; [`Runner`] is
//!   either. Setup (open, reserved buffers, mmap) happens when they are
//!   opened, outside any timing.
//! - [`floors`]: the two bounds any mode is held against: a TEST UNIT READY
//!   round trip (a command with no data) and one memory copy of the transfer
//!   size from a large, cold source.
//! - [`Sample`] and [`CpuTime`]: what one timed run did, with CPU time from
//!   `getrusage`; [`stats`] takes medians over interleaved runs.
//!
//! The criterion benches read the device from `SGMAP_TEST_DEVICE`
//! ([`device_from_env`]) and skip cleanly without it.

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sgmap::cdb::Cdb;
use sgmap::{Command, Data, Device, DirectBuf, Direction, Error, MappedDevice, Mode};

pub mod bare;
mod deep;
pub mod floors;
pub mod stats;
pub mod uring;

pub use deep::DeepSession;
pub use uring::UringSession;

/// The environment variable naming the sg device the benches run against.
pub const DEVICE_ENV: &str = "SGMAP_TEST_DEVICE";

/// The device named by `SGMAP_TEST_DEVICE`, if set and not empty.
pub fn device_from_env() -> Option<PathBuf> {
    std::env::var_os(DEVICE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// How data moves between the device and the program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Way {
    /// The fd's reserved buffer mapped into the program (`SG_FLAG_MMAP_IO`).
    Mmap,
    /// The kernel pins the program's page-aligned buffer (`SG_FLAG_DIRECT_IO`).
    Direct,
    /// The kernel copies through its own buffer.
    Indirect,
    /// SCSI passthrough through io_uring on the bsg node (Linux 7.1+), with
    /// registered buffers: not the sg driver at all ([`UringSession`]).
    Uring,
}

impl Way {
    /// The sg driver's three ways, in the order tables show them
    /// ([`Way::Uring`] goes through bsg, and only on Linux 7.1+).
    pub const ALL: [Way; 3] = [Way::Mmap, Way::Direct, Way::Indirect];

    /// Lower-case name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Way::Mmap => "mmap",
            Way::Direct => "direct",
            Way::Indirect => "indirect",
            Way::Uring => "uring",
        }
    }

    /// The [`Mode`] a command in this way should report when the kernel did
    /// what was asked.
    pub fn expected_mode(self) -> Mode {
        match self {
            Way::Mmap => Mode::Mmap,
            Way::Direct => Mode::Direct,
            Way::Indirect => Mode::Indirect,
            // Registered, page-aligned buffers: the kernel maps them, no copy.
            Way::Uring => Mode::Direct,
        }
    }
}

impl fmt::Display for Way {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Way {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "mmap" => Ok(Way::Mmap),
            "direct" | "dio" => Ok(Way::Direct),
            "indirect" => Ok(Way::Indirect),
            "uring" | "io_uring" => Ok(Way::Uring),
            _ => Err(format!(
                "unknown mode `{s}`: use mmap, direct, indirect or uring"
            )),
        }
    }
}

/// Which way data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    /// From the device (READ).
    Read,
    /// To the device (WRITE).
    Write,
}

impl Dir {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Dir::Read => "read",
            Dir::Write => "write",
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many commands really ran in each mode: the kernel may do direct IO
/// indirectly, and only the completed command says so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModeCounts {
    /// Commands that ran mmap-ed.
    pub mmap: u64,
    /// Commands that ran direct.
    pub direct: u64,
    /// Commands that ran indirect.
    pub indirect: u64,
    /// Commands that ran partly direct, partly indirect.
    pub mixed: u64,
}

impl ModeCounts {
    /// Counts one command that ran in `mode`.
    pub fn add(&mut self, mode: Mode) {
        match mode {
            Mode::Mmap => self.mmap += 1,
            Mode::Direct => self.direct += 1,
            Mode::Indirect => self.indirect += 1,
            Mode::Mixed => self.mixed += 1,
            _ => {}
        }
    }

    /// The commands counted since `before` was taken from the same counter.
    pub fn since(self, before: ModeCounts) -> ModeCounts {
        ModeCounts {
            mmap: self.mmap - before.mmap,
            direct: self.direct - before.direct,
            indirect: self.indirect - before.indirect,
            mixed: self.mixed - before.mixed,
        }
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, o: ModeCounts) {
        self.mmap += o.mmap;
        self.direct += o.direct;
        self.indirect += o.indirect;
        self.mixed += o.mixed;
    }

    /// All commands counted.
    pub fn total(&self) -> u64 {
        self.mmap + self.direct + self.indirect + self.mixed
    }

    /// How many ran in `way`'s own mode.
    pub fn of(&self, way: Way) -> u64 {
        match way {
            Way::Mmap => self.mmap,
            Way::Direct => self.direct,
            Way::Indirect => self.indirect,
            Way::Uring => self.direct,
        }
    }
}

impl fmt::Display for ModeCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, n) in [
            ("mmap", self.mmap),
            ("direct", self.direct),
            ("indirect", self.indirect),
            ("mixed", self.mixed),
        ] {
            if n > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{n} {name}")?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Where the data of a [`Session`] lives.
#[derive(Debug)]
enum Backend {
    /// The mapped reserved buffer.
    Mapped(MappedDevice),
    /// A page-aligned buffer of the program's.
    Buffered { dev: Device, buf: DirectBuf },
}

/// One open device prepared to move data in one way and direction, with
/// transfers of up to [`capacity`](Session::capacity) bytes, one command at a
/// time.
///
/// ```no_run
/// use sgmap_benches::{Dir, Session, Way};
///
/// let mut s = Session::open("/dev/sg0".as_ref(), Way::Mmap, Dir::Read, 64 * 1024)?;
/// s.transfer(0, 64 * 1024)?; // READ of 64 KiB at LBA 0 into the mapped buffer
/// println!("first bytes {:02x?}, ran {}", &s.data()[..4], s.modes());
/// # Ok::<(), sgmap::Error>(())
/// ```
#[derive(Debug)]
pub struct Session {
    backend: Backend,
    path: PathBuf,
    way: Way,
    dir: Dir,
    block: usize,
    capacity: usize,
    blocks_on_device: u64,
    seen: ModeCounts,
}

impl Session {
    /// Opens `path` read-write, passes over a pending UNIT ATTENTION, and
    /// prepares buffers for transfers of up to `capacity` bytes (a whole
    /// number of blocks):
    /// - mmap: maps the reserved buffer, asked for `capacity` bytes; fails when
    ///   the kernel grants less (the error says how much it granted);
    /// - indirect: sizes the fd's reserved buffer to `capacity`, so the kernel
    ///   copies through it rather than allocating a buffer per command (as
    ///   sg3_utils' `sg_read` does);
    /// - direct: allocates a page-aligned buffer.
    pub fn open(path: &Path, way: Way, dir: Dir, capacity: usize) -> Result<Session, Error> {
        let mut dev = Device::open(path)?;
        dev.wait_ready()?;
        let cap = dev.read_capacity()?;
        let block = cap.block_size as usize;
        let what = format!("{dir} setup");
        if capacity == 0 || block == 0 || capacity % block != 0 {
            return Err(invalid(
                path,
                &what,
                format!(
                    "a transfer of {capacity} bytes is not a whole, non-zero number of the device's {block}-byte blocks; pick a multiple of {block}"
                ),
            ));
        }
        let backend = match way {
            Way::Mmap => {
                let mapped = dev.map_reserved(capacity)?;
                if mapped.len() < capacity {
                    return Err(invalid(
                        path,
                        "mmap",
                        format!(
                            "the kernel granted a reserved buffer of {} bytes, less than the {capacity}-byte transfer; \
                             use a transfer of at most {} bytes (the queue's limit, max_sectors_kb)",
                            mapped.granted(),
                            mapped.len() / block * block
                        ),
                    ));
                }
                Backend::Mapped(mapped)
            }
            Way::Indirect => {
                // Best effort: a smaller grant only means per-command buffers.
                let _ = dev.set_reserved_size(capacity);
                Backend::Buffered {
                    dev,
                    buf: DirectBuf::new(capacity),
                }
            }
            Way::Direct => Backend::Buffered {
                dev,
                buf: DirectBuf::new(capacity),
            },
            Way::Uring => {
                return Err(invalid(
                    path,
                    &what,
                    "io_uring is not a synchronous SG_IO mode: open a UringSession (or a Runner)"
                        .into(),
                ))
            }
        };
        Ok(Session {
            backend,
            path: path.to_path_buf(),
            way,
            dir,
            block,
            capacity,
            blocks_on_device: cap.blocks,
            seen: ModeCounts::default(),
        })
    }

    /// The device's logical block size.
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// The device's size in blocks.
    pub fn blocks_on_device(&self) -> u64 {
        self.blocks_on_device
    }

    /// The longest transfer this session can do.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The way data moves.
    pub fn way(&self) -> Way {
        self.way
    }

    /// The direction.
    pub fn dir(&self) -> Dir {
        self.dir
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many commands ran in each mode so far.
    pub fn modes(&self) -> ModeCounts {
        self.seen
    }

    /// The transfer buffer: after a read, the data read.
    pub fn data(&self) -> &[u8] {
        match &self.backend {
            Backend::Mapped(m) => &m.as_slice()[..self.capacity],
            Backend::Buffered { buf, .. } => buf,
        }
    }

    /// The transfer buffer, to fill before a write.
    pub fn data_mut(&mut self) -> &mut [u8] {
        match &mut self.backend {
            Backend::Mapped(m) => match m.as_mut_slice() {
                Some(s) => &mut s[..self.capacity],
                // `open` maps read-write: a read-write fd gives a writable map.
                None => &mut [],
            },
            Backend::Buffered { buf, .. } => buf,
        }
    }

    /// One READ or WRITE of `len` bytes (a whole number of blocks, at most
    /// [`capacity`](Self::capacity)) at `lba`, through the start of the
    /// buffer. Fails on any SCSI error or short transfer, naming the device
    /// and the command.
    pub fn transfer(&mut self, lba: u64, len: usize) -> Result<(), Error> {
        check_len(&self.path, self.dir, len, self.block, self.capacity)?;
        let blocks = (len / self.block) as u32;
        let (cdb, direction) = match self.dir {
            Dir::Read => (Cdb::read(lba, blocks)?, Direction::FromDevice),
            Dir::Write => (Cdb::write(lba, blocks)?, Direction::ToDevice),
        };
        let outcome = match &mut self.backend {
            Backend::Mapped(m) => m.execute(&Command::new(cdb), direction, len)?,
            Backend::Buffered { dev, buf } => {
                let cmd = match self.way {
                    Way::Direct => Command::new(cdb).direct(),
                    _ => Command::new(cdb),
                };
                let data = match self.dir {
                    Dir::Read => Data::FromDevice(&mut buf[..len]),
                    Dir::Write => Data::ToDevice(&buf[..len]),
                };
                dev.execute(&cmd, data)?
            }
        };
        let outcome = outcome.check(&self.path)?;
        if outcome.resid != 0 {
            // The command ran and moved less (check the device's size and
            // --offset): a short transfer with its outcome, not a refusal.
            return Err(Error::ShortTransfer {
                device: self.path.clone(),
                outcome: Box::new(outcome),
            });
        }
        self.seen.add(outcome.mode);
        Ok(())
    }
}

/// An [`Error::InvalidRequest`] naming `path` and `command`.
pub fn invalid(path: &Path, command: &str, reason: String) -> Error {
    Error::InvalidRequest {
        device: path.to_path_buf(),
        command: command.to_string(),
        reason,
    }
}

/// Refuses a transfer length that is not a whole, non-zero number of `block`s
/// of at most `capacity` bytes, naming the device and the command.
pub fn check_len(
    path: &Path,
    dir: Dir,
    len: usize,
    block: usize,
    capacity: usize,
) -> Result<(), Error> {
    if len == 0 || len > capacity || len % block != 0 {
        return Err(invalid(
            path,
            dir.name(),
            format!(
                "a transfer of {len} bytes must be a whole number of {block}-byte blocks and at most {capacity} bytes"
            ),
        ));
    }
    Ok(())
}

/// CPU time a process used, from `getrusage`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    /// Time in user mode.
    pub user: Duration,
    /// Time in the kernel on the process's behalf.
    pub system: Duration,
}

impl CpuTime {
    /// This process's CPU time so far (all threads).
    pub fn now() -> CpuTime {
        rusage(UsageWho::RUSAGE_SELF)
    }

    /// CPU time of the waited-for children of this process so far.
    pub fn children() -> CpuTime {
        rusage(UsageWho::RUSAGE_CHILDREN)
    }

    /// User plus system time.
    pub fn total(&self) -> Duration {
        self.user + self.system
    }

    /// The time used since `earlier`.
    pub fn since(&self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

fn rusage(who: UsageWho) -> CpuTime {
    let Ok(ru) = getrusage(who) else {
        return CpuTime::default();
    };
    let tv = |t: TimeVal| {
        Duration::from_secs(t.tv_sec().max(0) as u64)
            + Duration::from_micros(t.tv_usec().max(0) as u64)
    };
    CpuTime {
        user: tv(ru.user_time()),
        system: tv(ru.system_time()),
    }
}

/// What one timed run did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// Commands completed.
    pub commands: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Wall-clock time of the timed loop.
    pub wall: Duration,
    /// CPU time of the timed loop, when known.
    pub cpu: Option<CpuTime>,
    /// The modes the commands really ran in.
    pub modes: ModeCounts,
}

impl Sample {
    /// Throughput in MB/s (10^6 bytes per second, as sg_read and fio print).
    pub fn mb_per_s(&self) -> f64 {
        per_second(self.bytes as f64 / 1e6, self.wall)
    }

    /// Commands per second.
    pub fn commands_per_s(&self) -> f64 {
        per_second(self.commands as f64, self.wall)
    }

    /// CPU milliseconds per GB (10^9 bytes) moved, when CPU time is known and
    /// bytes moved.
    pub fn cpu_ms_per_gb(&self) -> Option<f64> {
        let cpu = self.cpu?;
        (self.bytes > 0).then(|| cpu.total().as_secs_f64() * 1e3 / (self.bytes as f64 / 1e9))
    }
}

fn per_second(amount: f64, wall: Duration) -> f64 {
    let s = wall.as_secs_f64();
    if s > 0.0 {
        amount / s
    } else {
        0.0
    }
}

/// Which LBAs a run visits: `span_blocks` blocks from `start`, one transfer
/// after the other, wrapping back to `start`. A span of one transfer re-reads
/// the same blocks every time, as sg3_utils' `sg_read` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    start: u64,
    span_blocks: u64,
    step: u64,
    next: u64,
}

impl Cycle {
    /// Transfers of `step_blocks` blocks over `span_blocks` blocks from `start`
    /// (the span is rounded down to whole transfers, and is at least one).
    pub fn new(start: u64, span_blocks: u64, step_blocks: u64) -> Cycle {
        let step = step_blocks.max(1);
        let span = (span_blocks / step).max(1) * step;
        Cycle {
            start,
            span_blocks: span,
            step,
            next: 0,
        }
    }

    /// The LBA of the next transfer.
    pub fn next_lba(&mut self) -> u64 {
        let lba = self.start + self.next;
        self.next += self.step;
        if self.next >= self.span_blocks {
            self.next = 0;
        }
        lba
    }

    /// The last block the cycle touches, plus one.
    pub fn end(&self) -> u64 {
        self.start + self.span_blocks
    }
}

/// Runs `commands` transfers of `len` bytes in `session`, at the LBAs `cycle`
/// gives, and times them; `tick` is called after each command with the
/// number done so far (for progress bars; keep it cheap).
pub fn run(
    session: &mut Session,
    cycle: &mut Cycle,
    len: usize,
    commands: u64,
    mut tick: impl FnMut(u64),
) -> Result<Sample, Error> {
    let before_modes = session.modes();
    let cpu0 = CpuTime::now();
    let t0 = Instant::now();
    for i in 0..commands {
        session.transfer(cycle.next_lba(), len)?;
        tick(i + 1);
    }
    let wall = t0.elapsed();
    let cpu = CpuTime::now().since(cpu0);
    let modes = session.modes().since(before_modes);
    Ok(Sample {
        commands,
        bytes: commands * len as u64,
        wall,
        cpu: Some(cpu),
        modes,
    })
}

/// What the benches need to know about a device before timing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFacts {
    /// Logical block size in bytes.
    pub block_size: usize,
    /// Size in blocks.
    pub blocks: u64,
    /// The largest transfer one command can carry (and the largest reserved
    /// buffer the kernel grants), in bytes.
    pub max_transfer: usize,
}

impl DeviceFacts {
    /// Opens `path`, passes over a pending UNIT ATTENTION and reads the facts.
    pub fn probe(path: &Path) -> Result<DeviceFacts, Error> {
        let dev = Device::open(path)?;
        dev.wait_ready()?;
        let cap = dev.read_capacity()?;
        Ok(DeviceFacts {
            block_size: cap.block_size as usize,
            blocks: cap.blocks,
            max_transfer: dev.max_transfer(),
        })
    }

    /// The granted maximum as a transfer size: whole pages and whole blocks.
    pub fn max_size(&self) -> usize {
        let page = 4096;
        self.max_transfer / page * page / self.block_size.max(1) * self.block_size.max(1)
    }

    /// The benches' transfer sizes: 4 KiB, 64 KiB, 256 KiB, 1 MiB and the
    /// granted maximum, leaving out what the device cannot take in one
    /// command or in whole blocks.
    pub fn bench_sizes(&self) -> Vec<usize> {
        let mut v: Vec<usize> = [4 << 10, 64 << 10, 256 << 10, 1 << 20, self.max_size()]
            .into_iter()
            .filter(|&s| s > 0 && s <= self.max_size() && s % self.block_size.max(1) == 0)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Whether sgmap can keep `depth` commands in flight in every mode: 1
/// (synchronous `SG_IO`) to 16 (the sg driver's limit per fd, which the
/// queue of direct and indirect IO shares).
pub fn supports_depth(depth: usize) -> bool {
    (1..=sgmap::MAX_IN_FLIGHT).contains(&depth)
}

/// Whether sgmap keeps `depth` commands in flight in `way`: the sg modes as
/// [`supports_depth`], io_uring 1 to [`uring::MAX_URING_DEPTH`].
pub fn supports_depth_in(way: Way, depth: usize) -> bool {
    match way {
        Way::Uring => (1..=uring::MAX_URING_DEPTH).contains(&depth),
        _ => supports_depth(depth),
    }
}

/// Why [`supports_depth`] refuses `depth`, for messages and reports.
pub fn depth_unsupported_reason(depth: usize) -> String {
    format!(
        "queue depth {depth}: sgmap keeps 1 to {} commands in flight (the sg driver's limit per fd; --modes uring goes deeper)",
        sgmap::MAX_IN_FLIGHT
    )
}

/// A device prepared for timed runs at some depth: a [`Session`] at depth 1
/// (synchronous `SG_IO`), a [`DeepSession`] beyond, a [`UringSession`] for
/// [`Way::Uring`] at any depth.
#[derive(Debug)]
pub enum Runner {
    /// One command at a time.
    Sync(Session),
    /// Several in flight.
    Deep(DeepSession),
    /// Through io_uring on the bsg node (boxed: the ring is large).
    Uring(Box<UringSession>),
}

impl Runner {
    /// Opens `path` for transfers of up to `capacity` bytes with `depth` in flight.
    pub fn open(
        path: &Path,
        way: Way,
        dir: Dir,
        capacity: usize,
        depth: usize,
    ) -> Result<Runner, Error> {
        Ok(if way == Way::Uring {
            Runner::Uring(Box::new(UringSession::open(path, dir, capacity, depth)?))
        } else if depth <= 1 {
            Runner::Sync(Session::open(path, way, dir, capacity)?)
        } else {
            Runner::Deep(DeepSession::open(path, way, dir, capacity, depth)?)
        })
    }

    /// Times `commands` transfers of `len` bytes at the LBAs `cycle` gives.
    pub fn run(
        &mut self,
        cycle: &mut Cycle,
        len: usize,
        commands: u64,
        tick: impl FnMut(u64),
    ) -> Result<Sample, Error> {
        match self {
            Runner::Sync(s) => run(s, cycle, len, commands, tick),
            Runner::Deep(d) => d.run(cycle, len, commands, tick),
            Runner::Uring(u) => u.run(cycle, len, commands, tick),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_wraps_and_one_transfer_span_repeats() {
        let mut c = Cycle::new(100, 32, 8);
        let lbas: Vec<u64> = (0..6).map(|_| c.next_lba()).collect();
        assert_eq!(lbas, [100, 108, 116, 124, 100, 108]);
        assert_eq!(c.end(), 132);
        let mut same = Cycle::new(7, 8, 8);
        assert_eq!([same.next_lba(), same.next_lba()], [7, 7]);
        // A span shorter than one transfer still covers one transfer.
        let mut short = Cycle::new(0, 3, 8);
        assert_eq!([short.next_lba(), short.next_lba()], [0, 0]);
        assert_eq!(short.end(), 8);
    }

    #[test]
    fn bench_sizes_stop_at_the_granted_maximum() {
        let f = DeviceFacts {
            block_size: 512,
            blocks: 1 << 19,
            max_transfer: 1_310_720,
        };
        assert_eq!(f.bench_sizes(), [4096, 65536, 262_144, 1 << 20, 1_310_720]);
        let small = DeviceFacts {
            max_transfer: 128 * 1024 + 512,
            ..f
        };
        assert_eq!(small.bench_sizes(), [4096, 65536, 131_072]);
        let four_k = DeviceFacts {
            block_size: 4096,
            ..f
        };
        assert_eq!(four_k.bench_sizes().len(), 5);
    }

    #[test]
    fn ways_parse_and_print() {
        for w in Way::ALL {
            assert_eq!(w.name().parse::<Way>(), Ok(w));
        }
        assert_eq!("DIO".parse::<Way>(), Ok(Way::Direct));
        assert!("zero-copy"
            .parse::<Way>()
            .unwrap_err()
            .contains("mmap, direct, indirect or uring"));
        assert_eq!("io_uring".parse::<Way>(), Ok(Way::Uring));
        assert_eq!(Way::Uring.name().parse::<Way>(), Ok(Way::Uring));
    }

    #[test]
    fn sample_rates() {
        let s = Sample {
            commands: 1000,
            bytes: 64_000_000,
            wall: Duration::from_millis(500),
            cpu: Some(CpuTime {
                user: Duration::from_millis(10),
                system: Duration::from_millis(22),
            }),
            modes: ModeCounts::default(),
        };
        assert!((s.mb_per_s() - 128.0).abs() < 1e-9);
        assert!((s.commands_per_s() - 2000.0).abs() < 1e-9);
        assert!((s.cpu_ms_per_gb().unwrap() - 500.0).abs() < 1e-9);
        assert_eq!(Sample::default().mb_per_s(), 0.0);
        assert_eq!(Sample::default().cpu_ms_per_gb(), None);
    }

    #[test]
    fn mode_counts_print_what_ran() {
        let mut m = ModeCounts::default();
        assert_eq!(m.to_string(), "none");
        m.add(Mode::Direct);
        m.add(Mode::Indirect);
        m.add(Mode::Indirect);
        assert_eq!(m.to_string(), "1 direct, 2 indirect");
        assert_eq!(m.of(Way::Indirect), 2);
        assert_eq!(m.total(), 3);
    }
}
