//! `sgmap read` and `sgmap write`: moving data between a device and a file (or
//! a pattern) in the chosen mode, timing it, and optionally reading every
//! transfer back through a second fd to check it.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use sgmap::stream::{self, StreamMode, Transfers, Until};
use sgmap::{BlockIo, Device};
use sgmap_benches::uring::{kernel_has_uring, kernel_release, MAX_URING_DEPTH};
use sgmap_benches::{CpuTime, DeviceFacts, Dir, ModeCounts, Session, UringSession, Way};

use crate::size::{human, parse_bytes, parse_duration, parse_usize};
use crate::{print_json, progress, Failure, Output, Result};

/// The most mapped fds `--mode mmap --depth N` opens.
const MAX_MMAP_DEPTH: usize = 256;

/// What `--mode` asks for: one transport, or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ModeArg {
    /// io_uring on bsg where the kernel has it (Linux 7.1+), else mmap (the
    /// mmap fd pool at depth > 1).
    Auto,
    /// Exactly this transport.
    Way(Way),
}

impl ModeArg {
    /// The name as `--mode` spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ModeArg::Auto => "auto",
            ModeArg::Way(w) => w.name(),
        }
    }
}

impl std::str::FromStr for ModeArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(ModeArg::Auto);
        }
        s.parse::<Way>()
            .map(ModeArg::Way)
            .map_err(|e| format!("{e}, or auto"))
    }
}

/// Options shared by `read` and `write`.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// The sg device, e.g. /dev/sg0.
    pub device: PathBuf,
    /// How data moves: mmap (the fd's reserved buffer mapped into sgmap),
    /// direct (the kernel pins sgmap's pages), indirect (the kernel copies),
    /// uring (io_uring on the bsg node with registered buffers, Linux 7.1+)
    /// or auto (uring where the kernel has it, else mmap).
    #[arg(long, default_value = "mmap")]
    pub mode: ModeArg,
    /// Bytes per command (suffixes k, m: 64k, 1m); a whole number of blocks.
    #[arg(long, default_value = "64k", value_parser = parse_usize)]
    pub bs: usize,
    /// Number of transfers of --bs bytes (with --runtime: at most that many).
    #[arg(long, conflicts_with = "size")]
    pub count: Option<u64>,
    /// Total bytes to move (the last transfer may be shorter than --bs; with
    /// --runtime: at most that many).
    #[arg(long, value_parser = parse_bytes)]
    pub size: Option<u64>,
    /// Commands in flight at once. 1: synchronous SG_IO; more: sgmap's
    /// streaming helper (mmap: one mapped fd per command, at most 64 however
    /// many are asked; direct and indirect: the asynchronous queue on one fd,
    /// at most 16), data still in LBA order. The report's `depth` is what ran.
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    /// Where on the device to start, in bytes (a whole number of blocks).
    #[arg(long, default_value = "0", value_parser = parse_bytes)]
    pub offset: u64,
    /// Cycle over this many bytes from --offset instead of moving on, at any
    /// --depth and in every --mode: with --span equal to --bs every command
    /// moves the same blocks, as sg_read does. The run goes round until
    /// --count or --size (one of them) or --runtime, the first reached, says
    /// stop; with none of them it makes one pass over the span. The last transfer of each pass
    /// is shorter when --span is not a multiple of --bs. Not with --out or --in.
    #[arg(long, value_parser = parse_bytes)]
    pub span: Option<u64>,
    /// Run for this long (10s, 500ms, 1.5s, 2m, 100us; a bare number is
    /// seconds), as fio's --time_based
    /// --runtime: no command starts once the time is up, those in flight
    /// finish, no transfer is cut. The run cycles over --span, else over the
    /// region from --offset (--count or --size of it, else to the device's
    /// end); with --count or --size it stops at whichever comes first.
    /// Not with --out or --in.
    #[arg(long, value_parser = parse_duration)]
    pub runtime: Option<Duration>,
    /// Read every transfer back through a second fd (indirect IO) and compare.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub output: Output,
}

/// `sgmap read`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReadArgs {
    #[command(flatten)]
    pub common: Common,
    /// Write the data read to this file (`-` for stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `sgmap write`.
#[derive(Debug, Clone, Args)]
pub(crate) struct WriteArgs {
    #[command(flatten)]
    pub common: Common,
    /// Write this file's bytes (its length is the size unless --count or
    /// --size say less); without it, a pattern seeded by --seed.
    #[arg(long = "in")]
    pub input: Option<PathBuf>,
    /// Seed of the pattern written without --in (each block's bytes depend on
    /// the seed and its LBA).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What a read or write did, as `--json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct XferReport {
    device: String,
    command: &'static str,
    /// The transport that really ran: mmap, direct, indirect or uring.
    mode: &'static str,
    /// The same: `uring`, or the sg mode.
    transport: &'static str,
    /// What --mode asked for (`auto`, or a transport).
    mode_requested: &'static str,
    /// Why `--mode auto` did not run uring (`None`: it did, or no auto).
    auto_fallback: Option<String>,
    /// The bsg node io_uring drove (uring only).
    bsg_node: Option<String>,
    /// `--bs`.
    bs: usize,
    /// The longest transfer one command moved: `--bs`, unless `--span` or
    /// the amount is shorter.
    transfer_bytes: u64,
    /// Commands kept in flight: what ran (an mmap stream opens at most 64 fds).
    depth: usize,
    /// `--depth`.
    depth_requested: usize,
    offset: u64,
    bytes: u64,
    commands: u64,
    /// The real wall-clock time of the run (setup included).
    seconds: f64,
    /// Whether --runtime made this a time-based run.
    time_based: bool,
    /// The --runtime asked for, in seconds.
    runtime_requested_s: Option<f64>,
    /// The --span cycled over, in bytes.
    span: Option<u64>,
    /// What ended the run: `end` (of the region or span, one pass),
    /// `runtime`, `count` or `size`.
    ended_by: &'static str,
    mb_per_s: f64,
    commands_per_s: f64,
    cpu_user_s: f64,
    cpu_system_s: f64,
    cpu_ms_per_gb: Option<f64>,
    modes_seen: ModesJson,
    verified: bool,
    file: Option<String>,
}

/// How many commands ran in each mode, for JSON.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, Default, PartialEq, Eq)]
pub(crate) struct ModesJson {
    pub mmap: u64,
    pub direct: u64,
    pub indirect: u64,
    pub mixed: u64,
}

impl From<ModeCounts> for ModesJson {
    fn from(m: ModeCounts) -> Self {
        ModesJson {
            mmap: m.mmap,
            direct: m.direct,
            indirect: m.indirect,
            mixed: m.mixed,
        }
    }
}

/// Where read data goes.
pub(crate) enum Sink {
    /// Nowhere.
    None,
    /// A file (its path for messages).
    File(File, PathBuf),
    /// Standard output.
    Stdout(std::io::StdoutLock<'static>),
    /// The null device (its path for messages): nothing to write, as
    /// sg_dd treats `of=/dev/null`, so a run to it times the device alone.
    Null(PathBuf),
}

impl Sink {
    /// A sink for the opened file `f` at `path`: [`Sink::Null`] when it is
    /// the null device (the same device node as /dev/null), else the file.
    pub(crate) fn file(f: File, path: PathBuf) -> Sink {
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        let null = std::fs::metadata("/dev/null").ok();
        match (f.metadata(), null) {
            (Ok(m), Some(n)) if m.file_type().is_char_device() && m.rdev() == n.rdev() => {
                Sink::Null(path)
            }
            _ => Sink::File(f, path),
        }
    }

    /// Writes `data`; the error says where it could not go.
    pub(crate) fn put(&mut self, data: &[u8]) -> std::result::Result<(), String> {
        match self {
            Sink::None | Sink::Null(_) => Ok(()),
            Sink::File(f, p) => f
                .write_all(data)
                .map_err(|e| format!("cannot write to {}: {e}", p.display())),
            Sink::Stdout(out) => out
                .write_all(data)
                .map_err(|e| format!("cannot write to stdout: {e}")),
        }
    }

    /// Flushes (and for a file, syncs) what was written.
    pub(crate) fn flush(&mut self) -> std::result::Result<(), String> {
        match self {
            // EINVAL: a special file (/dev/null, a pipe) that has nothing to sync.
            Sink::File(f, p) => f
                .flush()
                .and_then(|_| match f.sync_data() {
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(()),
                    r => r,
                })
                .map_err(|e| format!("cannot flush {}: {e}", p.display())),
            Sink::Stdout(out) => out.flush().map_err(|e| format!("cannot flush stdout: {e}")),
            Sink::None | Sink::Null(_) => Ok(()),
        }
    }
}

enum Source {
    Pattern(u64),
    File(File, PathBuf),
}

/// Runs `sgmap read`.
pub(crate) fn read(args: &ReadArgs) -> Result<()> {
    let c = &args.common;
    if c.span.is_some() && args.out.is_some() {
        return Err(Failure(format!(
            "{}: read: --span re-reads the same blocks; it cannot be combined with --out",
            c.device.display()
        )));
    }
    if c.runtime.is_some() && args.out.is_some() {
        return Err(Failure(format!(
            "{}: read: --runtime re-reads blocks for as long as it runs; it cannot be combined with --out \
             (use --size or --count to read a region into a file)",
            c.device.display()
        )));
    }
    let sink = match &args.out {
        None => Sink::None,
        Some(p) if p.as_os_str() == "-" => {
            if c.output.json {
                return Err(Failure(format!(
                    "{}: read: --out - writes the data to stdout, where --json goes too; pick one",
                    c.device.display()
                )));
            }
            Sink::Stdout(std::io::stdout().lock())
        }
        Some(p) => Sink::file(
            File::create(p).map_err(|e| {
                Failure(format!(
                    "{}: read: cannot create the --out file {}: {e}",
                    c.device.display(),
                    p.display()
                ))
            })?,
            p.clone(),
        ),
    };
    transfer(c, Dir::Read, sink, Source::Pattern(0), None)
}

/// Runs `sgmap write`.
pub(crate) fn write(args: &WriteArgs) -> Result<()> {
    let c = &args.common;
    if c.span.is_some() && args.input.is_some() {
        return Err(Failure(format!(
            "{}: write: --span rewrites the same blocks; it cannot be combined with --in",
            c.device.display()
        )));
    }
    if c.runtime.is_some() && args.input.is_some() {
        return Err(Failure(format!(
            "{}: write: --runtime rewrites blocks for as long as it runs; it cannot be combined with --in \
             (write the pattern of --seed instead)",
            c.device.display()
        )));
    }
    let (source, file_len) = match &args.input {
        None => (Source::Pattern(args.seed), None),
        Some(p) => {
            let dev = c.device.display();
            let f = File::open(p).map_err(|e| {
                Failure(format!(
                    "{dev}: write: cannot open the --in file {}: {e}",
                    p.display()
                ))
            })?;
            let len = f
                .metadata()
                .map_err(|e| {
                    Failure(format!(
                        "{dev}: write: cannot stat the --in file {}: {e}",
                        p.display()
                    ))
                })?
                .len();
            (Source::File(f, p.clone()), Some(len))
        }
    };
    transfer(c, Dir::Write, Sink::None, source, file_len)
}

/// Reads `expected.len()` bytes at `lba` back through the verifier's own fd
/// (indirect IO) and compares them with what the transfer saw.
fn check_back(
    (vdev, vbuf): &mut (Device, Vec<u8>),
    lba: u64,
    expected: &[u8],
    mode: Way,
    op: &str,
    fail: &dyn Fn(String) -> Failure,
) -> Result<()> {
    if vbuf.len() < expected.len() {
        vbuf.resize(expected.len(), 0);
    }
    let got = &mut vbuf[..expected.len()];
    vdev.read_blocks(lba, got, BlockIo::indirect())?;
    match got.iter().zip(expected).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(fail(format!(
            "verify failed: byte {i} of the transfer at LBA {lba} reads back as {:#04x} through a second fd, \
             but the {mode} {op} saw {:#04x}",
            got[i], expected[i]
        ))),
    }
}

/// What a run walks: a region of blocks, once or over and over, in
/// transfers of `bs_blocks`, until the limits of `until`.
#[derive(Debug, Clone)]
struct Walk {
    region: Range<u64>,
    passes: usize,
    bs_blocks: u32,
    until: Until,
}

impl Walk {
    /// The region once, or endlessly when the run cycles.
    fn extents(&self) -> std::iter::Take<std::iter::Repeat<Range<u64>>> {
        std::iter::repeat(self.region.clone()).take(self.passes)
    }

    /// The transfers `(lba, blocks)` of the run, the same in every mode.
    fn transfers(&self, block: usize) -> Transfers<std::iter::Take<std::iter::Repeat<Range<u64>>>> {
        Transfers::new(self.extents(), self.bs_blocks, block, self.until)
    }
}

/// What a run moved.
#[derive(Debug, Clone, Copy)]
struct Moved {
    commands: u64,
    bytes: u64,
    modes: ModeCounts,
    /// Commands kept in flight: what ran, which may be less than asked.
    depth: usize,
}

/// Moves the transfers of `walk` with `c.depth` commands in flight through
/// sgmap's streaming helper (mmap: a pool of mapped fds; direct and
/// indirect: the asynchronous queue), data in the order of the walk, the
/// pipeline kept full across the wrap-arounds of a cycle.
#[allow(clippy::too_many_arguments)]
fn stream_transfer(
    c: &Common,
    way: Way,
    dir: Dir,
    walk: &Walk,
    block: usize,
    sink: &mut Sink,
    source: &mut Source,
    verifier: &mut Option<(Device, Vec<u8>)>,
    bar: &mut progress::Meter,
    fail: &dyn Fn(String) -> Failure,
) -> Result<Moved> {
    let op = dir.name();
    let mode = match way {
        Way::Direct => StreamMode::Direct,
        Way::Indirect => StreamMode::Indirect,
        Way::Mmap | Way::Uring => StreamMode::Mmap,
    };
    let opts = stream::Options::new(mode)
        .transfer_bytes(c.bs)
        .depth(c.depth);
    let totals = match dir {
        Dir::Read => stream::read_extents(
            &c.device,
            walk.extents(),
            opts,
            walk.until,
            |lba, data: &[u8]| {
                take_data(sink, data, fail)?;
                if let Some(v) = verifier.as_mut() {
                    check_back(v, lba, data, way, op, fail)?;
                }
                bar.add(data.len() as u64);
                Ok::<(), Failure>(())
            },
        )?,
        Dir::Write => {
            // The blocks written: from the region's start, in order, up to
            // its end once the run wrapped.
            let mut written_end = walk.region.start;
            let totals = stream::write_extents(
                &c.device,
                walk.extents(),
                opts,
                walk.until,
                |lba, buf: &mut [u8]| {
                    fill_data(source, lba, block, buf, fail)?;
                    written_end = written_end.max(lba + (buf.len() / block) as u64);
                    bar.add(buf.len() as u64);
                    Ok::<(), Failure>(())
                },
            )?;
            // With several writes in flight, read everything back once they
            // are done; a cycle rewrote the same pattern, so once is enough.
            if let Some(v) = verifier.as_mut() {
                let range = walk.region.start..written_end;
                verify_written(v, range, c.bs, block, source, way, fail)?;
            }
            totals
        }
    };
    let mut modes = ModeCounts::default();
    match totals.mode {
        sgmap::Mode::Mmap => modes.mmap = totals.commands,
        sgmap::Mode::Direct => modes.direct = totals.commands,
        sgmap::Mode::Mixed => modes.mixed = totals.commands,
        _ => modes.indirect = totals.commands,
    }
    Ok(Moved {
        commands: totals.commands,
        bytes: totals.bytes,
        modes,
        depth: totals.depth,
    })
}

/// Hands the data of a read to the --out file or stdout, if any.
fn take_data(sink: &mut Sink, data: &[u8], fail: &dyn Fn(String) -> Failure) -> Result<()> {
    sink.put(data).map_err(fail)
}

/// Fills the buffer of a write at `lba` from the pattern or the --in file.
fn fill_data(
    source: &mut Source,
    lba: u64,
    block: usize,
    buf: &mut [u8],
    fail: &dyn Fn(String) -> Failure,
) -> Result<()> {
    match source {
        Source::Pattern(seed) => pattern(*seed, lba, block, buf),
        Source::File(f, p) => f.read_exact(buf).map_err(|e| {
            fail(format!(
                "cannot read {} bytes from {}: {e}",
                buf.len(),
                p.display()
            ))
        })?,
    }
    Ok(())
}

/// Reads the blocks `range` back through the verifier's fd, `bs` bytes at a
/// time, and compares them with what was written from `source` (the
/// pattern, or the --in file read again from its start).
fn verify_written(
    v: &mut (Device, Vec<u8>),
    range: Range<u64>,
    bs: usize,
    block: usize,
    source: &Source,
    way: Way,
    fail: &dyn Fn(String) -> Failure,
) -> Result<()> {
    let mut file = match source {
        Source::File(_, p) => Some(
            File::open(p)
                .map_err(|e| fail(format!("cannot reopen {} to verify: {e}", p.display())))?,
        ),
        Source::Pattern(_) => None,
    };
    let chunk_blocks = (bs / block).max(1) as u64;
    let mut want = vec![0u8; chunk_blocks as usize * block];
    let mut lba = range.start;
    while lba < range.end {
        let n = (range.end - lba).min(chunk_blocks) as usize * block;
        let want = &mut want[..n];
        match (&mut file, source) {
            (Some(f), _) => f
                .read_exact(want)
                .map_err(|e| fail(format!("cannot reread the --in file: {e}")))?,
            (None, Source::Pattern(seed)) => pattern(*seed, lba, block, want),
            (None, Source::File(..)) => {}
        }
        check_back(v, lba, want, way, "write", fail)?;
        lba += chunk_blocks;
    }
    Ok(())
}

/// Moves the transfers of `walk` through io_uring on the bsg node
/// (`session`, `c.depth` registered buffers in flight, across the
/// wrap-arounds of a cycle too), data in the order of the walk.
#[allow(clippy::too_many_arguments)]
fn uring_transfer(
    c: &Common,
    session: &mut UringSession,
    dir: Dir,
    walk: &Walk,
    block: usize,
    sink: &mut Sink,
    source: &mut Source,
    verifier: &mut Option<(Device, Vec<u8>)>,
    bar: &mut progress::Meter,
    fail: &dyn Fn(String) -> Failure,
) -> Result<Moved> {
    let op = dir.name();
    let bar = std::cell::RefCell::new(bar);
    let mut written_end = walk.region.start;
    let (commands, bytes) = {
        let mut verifier_r = verifier.as_mut();
        session.stream_transfers(
            walk.transfers(block),
            |lba, buf: &mut [u8]| {
                fill_data(source, lba, block, buf, fail)?;
                written_end = written_end.max(lba + (buf.len() / block) as u64);
                bar.borrow_mut().add(buf.len() as u64);
                Ok::<(), Failure>(())
            },
            |lba, data: &[u8]| {
                take_data(sink, data, fail)?;
                if let Some(v) = verifier_r.as_mut() {
                    check_back(v, lba, data, Way::Uring, op, fail)?;
                }
                bar.borrow_mut().add(data.len() as u64);
                Ok::<(), Failure>(())
            },
        )?
    };
    if dir == Dir::Write {
        if let Some(v) = verifier.as_mut() {
            let range = walk.region.start..written_end;
            verify_written(v, range, c.bs, block, source, Way::Uring, fail)?;
        }
    }
    Ok(Moved {
        commands,
        bytes,
        modes: session.modes(),
        depth: c.depth,
    })
}

/// Fills `buf` with the pattern of `seed` for blocks from `lba`.
pub(crate) fn pattern(seed: u64, lba: u64, block: usize, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(block.max(1)).enumerate() {
        let mut x = (seed ^ 0x6a09_e667_f3bc_c909)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add((lba + i as u64).wrapping_mul(0xd1b5_4a32_d192_ed03))
            | 1;
        for word in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            word.copy_from_slice(&b[..word.len()]);
        }
    }
}

/// What `--mode` runs: a transport as asked, or for `auto` io_uring where
/// the kernel has it (else mmap, with the reason for the report).
pub(crate) fn resolve_mode(mode: ModeArg) -> (Way, Option<String>) {
    match mode {
        ModeArg::Way(w) => (w, None),
        ModeArg::Auto => match kernel_has_uring() {
            Some(true) => (Way::Uring, None),
            _ => (
                Way::Mmap,
                Some(format!(
                    "Linux {} has no SCSI passthrough through io_uring on bsg ({} or later needed)",
                    kernel_release(),
                    sgmap::RING_NEEDS_KERNEL
                )),
            ),
        },
    }
}

/// Opens the io_uring session of `device` for `way == Uring`; under
/// `--mode auto` a ring that does not open turns `way` into mmap and says
/// why in `auto_fallback`.
pub(crate) fn open_ring(
    mode: ModeArg,
    way: &mut Way,
    auto_fallback: &mut Option<String>,
    device: &std::path::Path,
    dir: Dir,
    bs: usize,
    depth: usize,
) -> Result<Option<UringSession>> {
    match UringSession::open(device, dir, bs, depth) {
        Ok(s) => Ok(Some(s)),
        Err(e) if mode == ModeArg::Auto => {
            *way = Way::Mmap;
            *auto_fallback = Some(format!("io_uring on bsg did not open: {}", e.report()));
            Ok(None)
        }
        Err(e) => Err(Failure(format!(
            "{}: {}: --mode uring: {}",
            device.display(),
            dir.name(),
            Failure::from(e).0
        ))),
    }
}

/// Refuses a `--depth` more than `way` keeps in flight.
pub(crate) fn check_depth(dev_name: &str, op: &str, way: Way, depth: usize) -> Result<()> {
    let most = match way {
        Way::Mmap => MAX_MMAP_DEPTH,
        Way::Uring => MAX_URING_DEPTH,
        _ => sgmap::MAX_IN_FLIGHT,
    };
    if depth > most {
        return Err(Failure(format!(
            "{dev_name}: {op}: --depth {depth}: {way} IO keeps at most {most} commands in flight{}",
            if way == Way::Mmap {
                " (one fd and mapped buffer each)"
            } else {
                " on one fd (the sg driver's limit); --mode mmap uses one fd per command"
            }
        )));
    }
    Ok(())
}

fn transfer(
    c: &Common,
    dir: Dir,
    mut sink: Sink,
    mut source: Source,
    file_len: Option<u64>,
) -> Result<()> {
    let op = dir.name();
    let dev_name = c.device.display().to_string();
    if c.depth == 0 {
        return Err(Failure(format!(
            "{dev_name}: {op}: --depth must be at least 1"
        )));
    }
    // What runs: --mode auto takes io_uring where the kernel has it (and the
    // ring really opens), else mmap; the reason goes into the report.
    let (mut way, mut auto_fallback) = resolve_mode(c.mode);
    let mut uring = None;
    if way == Way::Uring {
        if c.depth > MAX_URING_DEPTH {
            return Err(Failure(format!(
                "{dev_name}: {op}: --depth {}: the io_uring transport keeps at most {MAX_URING_DEPTH} commands in flight",
                c.depth
            )));
        }
        uring = open_ring(
            c.mode,
            &mut way,
            &mut auto_fallback,
            &c.device,
            dir,
            c.bs,
            c.depth,
        )?;
    }
    check_depth(&dev_name, op, way, c.depth)?;
    let facts = DeviceFacts::probe(&c.device)?;
    let block = facts.block_size as u64;
    let device_blocks = facts.blocks;
    let fail = |what: String| Failure(format!("{dev_name}: {op}: {what}"));
    if c.offset % block != 0 {
        return Err(fail(format!(
            "--offset {} is not a multiple of the device's {block}-byte blocks",
            c.offset
        )));
    }
    let start = c.offset / block;
    if start >= device_blocks {
        return Err(fail(format!(
            "--offset {} is past the end of the device ({} bytes)",
            c.offset,
            device_blocks * block
        )));
    }
    let bs_blocks = c.bs as u64 / block;
    if c.bs as u64 % block != 0 || bs_blocks == 0 {
        return Err(fail(format!(
            "--bs {} is not a whole, non-zero number of the device's {block}-byte blocks",
            c.bs
        )));
    }
    // How much: --count transfers or --size bytes (or the --in file).
    let amount: Option<u64> = match (c.count, c.size, file_len) {
        (Some(n), _, _) => Some(n.saturating_mul(c.bs as u64)),
        (None, Some(s), _) => Some(s),
        (None, None, len) => len,
    };
    if c.count == Some(0) {
        return Err(fail(
            "--count 0 moves nothing: give at least 1 transfer".into(),
        ));
    }
    if let Some(total) = amount {
        if total == 0 || total % block != 0 {
            return Err(fail(format!(
                "{total} bytes is not a whole, non-zero number of {block}-byte blocks; adjust --size{}",
                if file_len.is_some() {
                    format!(" (or pad the --in file to a multiple of {block})")
                } else {
                    String::new()
                }
            )));
        }
    }
    if let (Some(len), Some(total)) = (file_len, amount) {
        if len < total {
            return Err(fail(format!(
                "the --in file has only {len} bytes, less than the {total} asked for"
            )));
        }
    }
    // Where: the span, else the amount from --offset, else the rest of the
    // device (a read, or a time-based run).
    let time_based = c.runtime.is_some();
    let region_blocks = match (c.span, amount) {
        (Some(s), _) if s % block != 0 || s == 0 => {
            return Err(fail(format!(
                "--span {s} is not a whole, non-zero number of {block}-byte blocks"
            )))
        }
        (Some(s), _) => s / block,
        (None, Some(total)) => total / block,
        (None, None) if dir == Dir::Read || time_based => device_blocks - start,
        (None, None) => {
            return Err(fail(
                "say how much to write: --count N (transfers of --bs), --size BYTES, --runtime TIME, or --in FILE"
                    .into(),
            ))
        }
    };
    let region = start..start.saturating_add(region_blocks);
    if region.end > device_blocks {
        return Err(fail(format!(
            "the {op} would end at byte {}, past the end of the device ({} bytes); lower --offset, --count, --size or --span",
            region.end.saturating_mul(block),
            device_blocks * block
        )));
    }
    // A run cycles over its region when it is time-based, or when --span
    // comes with an amount; otherwise it makes one pass.
    let cycles = time_based || (c.span.is_some() && amount.is_some());
    let mut until = Until::none();
    if cycles {
        match (c.count, amount) {
            (Some(n), _) => until = until.commands(n),
            (None, Some(total)) => until = until.bytes(total),
            (None, None) => {}
        }
        if let Some(rt) = c.runtime {
            until = until.runtime(rt);
        }
    }
    let walk = Walk {
        region: region.clone(),
        passes: if cycles { usize::MAX } else { 1 },
        bs_blocks: u32::try_from(bs_blocks).unwrap_or(u32::MAX),
        until,
    };
    if c.depth > 1 && c.bs > facts.max_size() {
        return Err(fail(format!(
            "--bs {} is more than one command can carry on this device ({} bytes); use a smaller --bs",
            c.bs,
            facts.max_size()
        )));
    }
    let mut verifier = if c.verify {
        let v = Device::open(&c.device)?;
        v.wait_ready()?;
        Some((v, vec![0u8; c.bs]))
    } else {
        None
    };
    // What the bar counts to: unknown for a run against the clock.
    let planned = match (time_based, cycles, amount) {
        (true, _, _) => None,
        (false, true, Some(total)) => Some(total),
        (false, _, _) => Some(region_blocks * block),
    };
    let mut bar = match planned {
        Some(total) => progress::Meter::bytes(total, c.output.quiet, format!("{op} {way}")),
        None => progress::Meter::open_ended(c.output.quiet, format!("{op} {way}")),
    };
    let block = block as usize;
    let cpu0 = CpuTime::now();
    let t0 = Instant::now();
    let moved = if let Some(session) = uring.as_mut() {
        uring_transfer(
            c,
            session,
            dir,
            &walk,
            block,
            &mut sink,
            &mut source,
            &mut verifier,
            &mut bar,
            &fail,
        )?
    } else if c.depth > 1 {
        stream_transfer(
            c,
            way,
            dir,
            &walk,
            block,
            &mut sink,
            &mut source,
            &mut verifier,
            &mut bar,
            &fail,
        )?
    } else {
        let mut session = Session::open(&c.device, way, dir, c.bs)?;
        let (mut commands, mut bytes) = (0u64, 0u64);
        for (lba, blocks) in walk.transfers(block) {
            let len = blocks as usize * block;
            if dir == Dir::Write {
                fill_data(
                    &mut source,
                    lba,
                    block,
                    &mut session.data_mut()[..len],
                    &fail,
                )?;
            }
            session.transfer(lba, len)?;
            if dir == Dir::Read {
                take_data(&mut sink, &session.data()[..len], &fail)?;
            }
            if let Some(v) = &mut verifier {
                check_back(v, lba, &session.data()[..len], way, op, &fail)?;
            }
            commands += 1;
            bytes += len as u64;
            bar.add(len as u64);
        }
        Moved {
            commands,
            bytes,
            modes: session.modes(),
            depth: 1,
        }
    };
    let Moved {
        commands,
        bytes: total,
        modes,
        depth,
    } = moved;
    // The longest transfer: --bs, unless the span or the amount is shorter.
    let transfer = (c.bs as u64)
        .min(region_blocks * block as u64)
        .min(amount.unwrap_or(u64::MAX));
    let all_full = total == commands.saturating_mul(transfer);
    // What ended it: the clock, unless the amount was reached first.
    let ended_by = match (cycles, c.count, amount) {
        (false, _, _) => "end",
        (true, Some(n), _) if commands >= n => "count",
        (true, None, Some(a)) if total >= a => "size",
        _ if time_based => "runtime",
        _ => "end",
    };
    sink.flush().map_err(&fail)?;
    let wall = t0.elapsed();
    let cpu = CpuTime::now().since(cpu0);
    bar.finish();
    let secs = wall.as_secs_f64();
    let per_s = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
    let file = match (&sink, &source) {
        (Sink::File(_, p) | Sink::Null(p), _) | (_, Source::File(_, p)) => {
            Some(p.display().to_string())
        }
        (Sink::Stdout(_), _) => Some("-".into()),
        _ => None,
    };
    let report = XferReport {
        device: dev_name.clone(),
        command: op,
        mode: way.name(),
        transport: way.name(),
        mode_requested: c.mode.name(),
        auto_fallback: auto_fallback.clone(),
        bsg_node: uring.as_ref().map(|u| u.bsg_path().display().to_string()),
        bs: c.bs,
        transfer_bytes: transfer,
        depth,
        depth_requested: c.depth,
        offset: c.offset,
        bytes: total,
        commands,
        seconds: secs,
        time_based,
        runtime_requested_s: c.runtime.map(|d| d.as_secs_f64()),
        span: c.span,
        ended_by,
        mb_per_s: per_s(total as f64 / 1e6),
        commands_per_s: per_s(commands as f64),
        cpu_user_s: cpu.user.as_secs_f64(),
        cpu_system_s: cpu.system.as_secs_f64(),
        cpu_ms_per_gb: (total > 0).then(|| cpu.total().as_secs_f64() * 1e3 / (total as f64 / 1e9)),
        modes_seen: modes.into(),
        verified: c.verify,
        file,
    };
    if c.output.json {
        print_json(&report)?;
    } else {
        // With the data on stdout, the summary goes to stderr.
        let mut text = format!(
            "{op} {} {} {} at offset {} in {commands} commands of {}{}: {secs:.3} s, {:.1} MB/s, {:.0} commands/s, CPU {} ms/GB; ran as: {modes}{}",
            human(total),
            if dir == Dir::Read { "from" } else { "to" },
            dev_name,
            c.offset,
            if all_full { "" } else { "up to " },
            human(transfer),
            report.mb_per_s,
            report.commands_per_s,
            report
                .cpu_ms_per_gb
                .map_or("?".to_string(), |v| format!("{v:.1}")),
            if c.verify { "; verified" } else { "" }
        );
        if let Some(rt) = c.runtime {
            text += &format!(
                "\ntime-based: --runtime {:.3} s, ran {secs:.3} s, ended by the {}{}",
                rt.as_secs_f64(),
                match ended_by {
                    "count" => "--count",
                    "size" => "--size",
                    _ => "runtime",
                },
                c.span.map_or(String::new(), |s| format!(
                    "; cycled over --span {}",
                    human(s)
                ))
            );
        } else if cycles {
            text += &format!(
                "\ncycled over --span {} until the {}",
                human(c.span.unwrap_or(0)),
                if c.count.is_some() {
                    "--count"
                } else {
                    "--size"
                }
            );
        }
        match (&uring, &auto_fallback) {
            (Some(u), _) => {
                text += &format!(
                    "\ntransport: io_uring on {} ({} registered buffers{})",
                    u.bsg_path().display(),
                    c.depth,
                    if c.mode == ModeArg::Auto {
                        "; --mode auto chose it"
                    } else {
                        ""
                    }
                )
            }
            (None, Some(why)) => {
                text += &format!("\ntransport: {way} (--mode auto fell back: {why})")
            }
            (None, None) => {}
        }
        if way != Way::Mmap && way != Way::Uring && modes.of(way) < modes.total() {
            text += &fallback_note(way, modes);
        }
        if matches!(sink, Sink::Stdout(_)) {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
    Ok(())
}

/// Says why direct IO ran otherwise, when it did.
pub(crate) fn fallback_note(way: Way, modes: ModeCounts) -> String {
    let why = match sgmap::discover::allow_dio() {
        Some(false) => "allow_dio is off (echo 1 > /sys/module/sg/parameters/allow_dio)",
        _ => "the kernel chose indirect IO (alignment or a host limit)",
    };
    format!(
        "\nnote: {} of {} commands asked for {way} IO did not get it: {why}",
        modes.total() - modes.of(way),
        modes.total()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_device_is_a_sink_with_nothing_to_write() {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        let mut s = Sink::file(null, "/dev/null".into());
        assert!(matches!(s, Sink::Null(_)));
        assert_eq!(s.put(&[1, 2, 3]), Ok(()));
        let dir = std::env::temp_dir().join(format!("sgmap-sink-{}", std::process::id()));
        let f = File::create(&dir).unwrap();
        let mut s = Sink::file(f, dir.clone());
        assert!(matches!(s, Sink::File(..)));
        s.put(&[7; 10]).unwrap();
        s.flush().unwrap();
        assert_eq!(std::fs::read(&dir).unwrap(), [7; 10]);
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn pattern_differs_per_block_and_seed_and_repeats() {
        let mut a = vec![0u8; 1024];
        let mut b = vec![0u8; 1024];
        pattern(1, 10, 512, &mut a);
        pattern(1, 10, 512, &mut b);
        assert_eq!(a, b);
        assert_ne!(a[..512], a[512..]);
        pattern(2, 10, 512, &mut b);
        assert_ne!(a, b);
        // Block 11 of a transfer at LBA 10 is block 0 of one at LBA 11.
        let mut c = vec![0u8; 512];
        pattern(1, 11, 512, &mut c);
        assert_eq!(&a[512..], &c[..]);
    }
}
