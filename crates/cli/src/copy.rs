//! `sgmap copy`: dd-style copies between an sg device and a file, or between
//! two sg devices (or two ranges of one), in any of sgmap's modes and at any
//! depth, with an optional read-back check and a precise account of what
//! landed when a copy stops part way.
//!
//! How it runs: a device side reads or writes through the same engines as
//! `sgmap read` and `write` (a synchronous [`Session`] at depth 1,
//! [`sgmap::stream`] beyond, a [`UringSession`] for io_uring); a file side is
//! ordinary `read`/`write`. Device to device runs the two sides on two
//! threads joined by a bounded channel of chunks, so both keep their
//! commands in flight; the chunks are a byte stream, so the two sides may
//! use different transfer sizes and block sizes.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use sgmap::stream::{self, StreamMode};
use sgmap::{BlockIo, Device};
use sgmap_benches::{CpuTime, DeviceFacts, Dir, ModeCounts, Session, UringSession, Way};

use crate::size::{human, parse_bytes, parse_usize};
use crate::xfer::{self, ModeArg, ModesJson, Sink};
use crate::{print_json, progress, Failure, Output, Result};

/// The character major of sg nodes (`SCSI_GENERIC_MAJOR`).
const SG_MAJOR: u64 = 21;

/// The major number of a device number, as glibc's `major()` splits it.
fn dev_major(rdev: u64) -> u64 {
    ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)
}

/// The help after the options: the operands and what they count.
pub(crate) const AFTER_HELP: &str = "\
Operands (dd style, as sg_dd takes them):
  if=SRC      source: an sg device (/dev/sgN), a file, or - for stdin
  of=DST      destination: an sg device, a file (created if missing; an
              existing file is written in place from seek= and never
              truncated, as sg_dd does), or - for stdout
  bs=BYTES    bytes per command (suffixes k, m); the same as --bs. count=
              counts units of bs= in either case
  bpt=N       as in sg_dd: each command moves bs x N bytes (bs=512 bpt=128:
              64 KiB commands, count= in 512-byte units)
  count=N     copy N x bs bytes (the same as --count); or --size BYTES.
              Default: the rest of SRC from skip= (if=- needs one of them)
  skip=N      start N blocks into SRC, seek=N start N blocks into DST. Blocks
              are each side's own logical blocks (as sg_dd counts them); a
              file side counts in the other side's (device) block size

At least one side must be an sg device (for two files use cp or dd).
--mode and --depth apply to every sg side. Sides with different block sizes
(512 and 4096) are fine as long as bs= and the total are whole blocks of
both. The same device on both sides is fine if the two ranges do not overlap.

--verify reads the destination back (a new fd, or the file reopened) and
compares it with the source read again; it needs both sides re-readable (an
sg device or a regular file).

If a copy stops part way, the error says how many bytes and blocks are on
DST and known good (confirmed by the device, or by reading back what was in
flight), where it failed (device, command, LBA), and the skip=/seek=/--size
that resume it; the exit status is 1.

Examples:
  sgmap copy if=/dev/sg0 of=disk.img bs=1m --mode mmap --depth 8
  sgmap copy if=disk.img of=/dev/sg1 --mode direct --verify
  sgmap copy if=/dev/sg0 of=/dev/sg1 bs=512 bpt=128 count=204800 skip=2048
  sgmap copy if=/dev/sg0 of=/dev/null bs=64k count=1000 --json";

/// `sgmap copy`.
#[derive(Debug, Clone, Args)]
pub(crate) struct CopyArgs {
    /// if=SRC of=DST [bs=BYTES] [bpt=N] [count=N] [skip=N] [seek=N] (see below).
    #[arg(value_name = "OPERAND", required = true)]
    pub operands: Vec<String>,
    /// How data moves on each sg side: mmap, direct, indirect, uring (Linux
    /// 7.1+) or auto (uring where the kernel has it, else mmap).
    #[arg(long, default_value = "mmap")]
    pub mode: ModeArg,
    /// Bytes per command (suffixes k, m); the same as bs=. Default 64k.
    #[arg(long, value_parser = parse_usize)]
    pub bs: Option<usize>,
    /// Copy this many units of --bs (the same as count=).
    #[arg(long, conflicts_with = "size")]
    pub count: Option<u64>,
    /// Copy this many bytes (whole blocks of both sides).
    #[arg(long, value_parser = parse_bytes)]
    pub size: Option<u64>,
    /// Commands in flight on each sg side. 1: synchronous SG_IO; more:
    /// sgmap's streaming helper or the io_uring session, data in LBA order.
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    /// After the copy, read the destination back and compare it with the
    /// source; the first differing byte is reported.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub output: Output,
}

/// The dd-style operands.
#[derive(Debug, Default, PartialEq, Eq)]
struct Operands {
    input: Option<String>,
    output: Option<String>,
    bs: Option<usize>,
    bpt: Option<usize>,
    count: Option<u64>,
    skip: u64,
    seek: u64,
}

fn parse_operands(ops: &[String]) -> Result<Operands> {
    let mut o = Operands::default();
    let bad = |what: String| Failure(format!("copy: {what} (see sgmap copy --help)"));
    for op in ops {
        let Some((key, value)) = op.split_once('=') else {
            return Err(bad(format!(
                "`{op}` is not an operand: write if=SRC of=DST, and options as --mode, --depth, ..."
            )));
        };
        let num = |v: &str| -> Result<u64> {
            v.parse::<u64>()
                .map_err(|_| bad(format!("{key}={v}: not a whole number")))
        };
        match key {
            "if" => o.input = Some(value.to_string()),
            "of" => o.output = Some(value.to_string()),
            "bs" => o.bs = Some(parse_usize(value).map_err(|e| bad(format!("bs=: {e}")))?),
            "bpt" => {
                let n = num(value)?;
                o.bpt = Some(
                    usize::try_from(n)
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or_else(|| bad(format!("bpt={value}: must be at least 1")))?,
                );
            }
            "count" => o.count = Some(num(value)?),
            "skip" => o.skip = num(value)?,
            "seek" => o.seek = num(value)?,
            _ => {
                return Err(bad(format!(
                    "unknown operand `{key}=`: sgmap copy takes if= of= bs= bpt= count= skip= seek="
                )))
            }
        }
    }
    Ok(o)
}

/// What one side of the copy is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An sg device.
    Sg,
    /// A file (regular or not).
    File,
    /// stdin or stdout (`-`).
    Std,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Sg => "sg",
            Kind::File => "file",
            Kind::Std => "stdio",
        }
    }
}

/// One side, as probed.
#[derive(Debug)]
struct End {
    path: PathBuf,
    kind: Kind,
    /// A device's logical block; a file side's the other side's.
    block: u64,
    /// A device's size in blocks.
    blocks: u64,
    /// The largest transfer one command carries.
    max_size: usize,
    /// The device number (sg nodes), to spot the same device on both sides.
    rdev: u64,
    /// Whether the file is a regular file (re-readable, truncatable).
    regular: bool,
    /// A regular source file's length.
    len: u64,
    way: Way,
    auto_fallback: Option<String>,
    uring: Option<UringSession>,
}

impl End {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn probe(spec: &str, is_source: bool) -> Result<End> {
        let path = PathBuf::from(spec);
        let mut end = End {
            path: path.clone(),
            kind: Kind::File,
            block: 0,
            blocks: 0,
            max_size: 0,
            rdev: 0,
            regular: false,
            len: 0,
            way: Way::Mmap,
            auto_fallback: None,
            uring: None,
        };
        if spec == "-" {
            end.kind = Kind::Std;
            return Ok(end);
        }
        match std::fs::metadata(&path) {
            Ok(m) if m.file_type().is_char_device() && dev_major(m.rdev()) == SG_MAJOR => {
                end.kind = Kind::Sg;
                end.rdev = m.rdev();
                let facts = DeviceFacts::probe(&path)?;
                end.block = facts.block_size as u64;
                end.blocks = facts.blocks;
                end.max_size = facts.max_size();
            }
            Ok(m) => {
                end.regular = m.is_file();
                end.len = m.len();
            }
            Err(e) if !is_source && e.kind() == std::io::ErrorKind::NotFound => end.regular = true,
            Err(e) => {
                return Err(Failure(format!(
                    "copy: cannot open the {} {spec}: {e}",
                    if is_source { "source" } else { "destination" }
                )))
            }
        }
        Ok(end)
    }
}

/// Why a copy stopped part way.
#[derive(Debug)]
enum Halt {
    /// Reading the source failed (at this LBA, for a device).
    Source { lba: Option<u64>, msg: String },
    /// Writing the destination failed.
    Dest { lba: Option<u64>, msg: String },
    /// The other thread stopped; its own error says why.
    Peer,
}

/// The first LBA of the READ or WRITE that an error reports, from its CDB.
fn failed_lba(e: &sgmap::Error) -> Option<u64> {
    let b = e.outcome()?.cdb.as_bytes();
    let be = |r: std::ops::Range<usize>| {
        b.get(r)
            .map(|f| f.iter().fold(0u64, |n, &x| n << 8 | u64::from(x)))
    };
    match b.first()? {
        0x28 | 0x2a => be(2..6),
        0x88 | 0x8a => be(2..10),
        _ => None,
    }
}

/// A [`Halt`] carried through a stream of the source (sgmap errors are the
/// source's).
struct OnSrc(Halt);

impl From<sgmap::Error> for OnSrc {
    fn from(e: sgmap::Error) -> Self {
        OnSrc(Halt::Source {
            lba: failed_lba(&e),
            msg: Failure::from(e).0,
        })
    }
}

/// The same for the destination.
struct OnDst(Halt);

impl From<sgmap::Error> for OnDst {
    fn from(e: sgmap::Error) -> Self {
        OnDst(Halt::Dest {
            lba: failed_lba(&e),
            msg: Failure::from(e).0,
        })
    }
}

/// What one device side did.
#[derive(Debug, Default, Clone, Copy)]
struct SideStats {
    commands: u64,
    modes: ModeCounts,
}

fn totals_modes(t: &stream::Totals) -> ModeCounts {
    let mut m = ModeCounts::default();
    match t.mode {
        sgmap::Mode::Mmap => m.mmap = t.commands,
        sgmap::Mode::Direct => m.direct = t.commands,
        sgmap::Mode::Mixed => m.mixed = t.commands,
        _ => m.indirect = t.commands,
    }
    m
}

fn stream_mode(way: Way) -> StreamMode {
    match way {
        Way::Direct => StreamMode::Direct,
        Way::Indirect => StreamMode::Indirect,
        Way::Mmap | Way::Uring => StreamMode::Mmap,
    }
}

/// The shape of the copy.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Bytes per command.
    xfer: usize,
    depth: usize,
    /// The first block of each side (skip=, seek=).
    skip: u64,
    seek: u64,
    total: u64,
}

/// Reads `total` bytes from the sg source `end` from block `start` and hands
/// them to `take` in order.
fn read_device(
    end: &mut End,
    s: Shape,
    take: &mut dyn FnMut(&[u8]) -> std::result::Result<(), Halt>,
) -> std::result::Result<SideStats, Halt> {
    let block = end.block;
    let range = s.skip..s.skip + s.total / block;
    let mut next = range.start;
    let at = |next: u64| {
        move |h: Halt| match h {
            Halt::Source { lba: None, msg } => Halt::Source {
                lba: Some(next),
                msg,
            },
            h => h,
        }
    };
    if let Some(session) = end.uring.as_mut() {
        let r = session.stream(
            range,
            s.xfer,
            |_, _| Ok::<(), OnSrc>(()),
            |_, data: &[u8]| {
                take(data).map_err(OnSrc)?;
                next += data.len() as u64 / block;
                Ok(())
            },
        );
        let commands = r.map_err(|OnSrc(h)| at(next)(h))?;
        return Ok(SideStats {
            commands,
            modes: session.modes(),
        });
    }
    if s.depth > 1 {
        let opts = stream::Options::new(stream_mode(end.way))
            .transfer_bytes(s.xfer)
            .depth(s.depth);
        let r = stream::read(&end.path, range, opts, |_, data: &[u8]| {
            take(data).map_err(OnSrc)?;
            next += data.len() as u64 / block;
            Ok(())
        });
        let t = r.map_err(|OnSrc(h)| at(next)(h))?;
        return Ok(SideStats {
            commands: t.commands,
            modes: totals_modes(&t),
        });
    }
    let mut session =
        Session::open(&end.path, end.way, Dir::Read, s.xfer).map_err(|e| OnSrc::from(e).0)?;
    let mut commands = 0;
    while next < range.end {
        let len = ((range.end - next) * block).min(s.xfer as u64) as usize;
        session
            .transfer(next, len)
            .map_err(|e| at(next)(OnSrc::from(e).0))?;
        take(&session.data()[..len])?;
        next += len as u64 / block;
        commands += 1;
    }
    Ok(SideStats {
        commands,
        modes: session.modes(),
    })
}

/// The last transfers handed to a deep destination, so that after a failure
/// the ones that were in flight can be read back and confirmed.
struct History {
    keep: usize,
    chunks: VecDeque<(u64, Vec<u8>)>,
}

impl History {
    fn new(depth: usize) -> History {
        History {
            keep: depth + 1,
            chunks: VecDeque::with_capacity(depth + 1),
        }
    }

    fn push(&mut self, lba: u64, data: &[u8]) {
        let mut v = if self.chunks.len() >= self.keep {
            self.chunks.pop_front().map(|(_, v)| v).unwrap_or_default()
        } else {
            Vec::new()
        };
        v.clear();
        v.extend_from_slice(data);
        self.chunks.push_back((lba, v));
    }

    /// After a deep stream stopped: every block before the oldest kept
    /// transfer was confirmed by the device (the engines check completions
    /// in LBA order and keep at most `depth` in flight); the kept ones are
    /// read back through a new fd and compared, in order. Returns the first
    /// block after the known-good ones.
    fn confirm(&self, path: &Path, first: u64, block: u64) -> u64 {
        let Some((front, _)) = self.chunks.front() else {
            return first;
        };
        let mut good = *front;
        let Ok(dev) = Device::open(path) else {
            return good;
        };
        let mut back = Vec::new();
        for (lba, data) in &self.chunks {
            back.resize(data.len(), 0);
            let same = dev
                .read_blocks(*lba, &mut back, BlockIo::indirect())
                .is_ok()
                && back == *data;
            if !same || *lba != good {
                break;
            }
            good = lba + data.len() as u64 / block;
        }
        good
    }
}

/// Writes `total` bytes to the sg destination `end` from block `seek`,
/// filling each transfer with `fill` in order. `good` ends as the bytes on
/// the destination known good, whatever happens.
fn write_device(
    end: &mut End,
    s: Shape,
    fill: &mut dyn FnMut(&mut [u8]) -> std::result::Result<(), Halt>,
    bar: &mut progress::Meter,
    good: &mut u64,
) -> std::result::Result<SideStats, Halt> {
    let block = end.block;
    let range = s.seek..s.seek + s.total / block;
    let mut hist = History::new(s.depth);
    let mut deep = |r: std::result::Result<SideStats, OnDst>, hist: &History| match r {
        Ok(st) => {
            *good = s.total;
            Ok(st)
        }
        Err(OnDst(h)) => {
            *good = (hist.confirm(&end.path, s.seek, block) - s.seek) * block;
            Err(h)
        }
    };
    if let Some(session) = end.uring.as_mut() {
        let r = session
            .stream(
                range,
                s.xfer,
                |lba, buf: &mut [u8]| {
                    fill(buf).map_err(OnDst)?;
                    hist.push(lba, buf);
                    bar.add(buf.len() as u64);
                    Ok::<(), OnDst>(())
                },
                |_, _| Ok(()),
            )
            .map(|commands| SideStats {
                commands,
                modes: session.modes(),
            });
        return deep(r, &hist);
    }
    if s.depth > 1 {
        let opts = stream::Options::new(stream_mode(end.way))
            .transfer_bytes(s.xfer)
            .depth(s.depth);
        let r = stream::write(&end.path, range, opts, |lba, buf: &mut [u8]| {
            fill(buf).map_err(OnDst)?;
            hist.push(lba, buf);
            bar.add(buf.len() as u64);
            Ok::<(), OnDst>(())
        })
        .map(|t| SideStats {
            commands: t.commands,
            modes: totals_modes(&t),
        });
        return deep(r, &hist);
    }
    let mut session =
        Session::open(&end.path, end.way, Dir::Write, s.xfer).map_err(|e| OnDst::from(e).0)?;
    let mut next = range.start;
    let mut commands = 0;
    while next < range.end {
        let len = ((range.end - next) * block).min(s.xfer as u64) as usize;
        fill(&mut session.data_mut()[..len])?;
        session
            .transfer(next, len)
            .map_err(|e| match OnDst::from(e).0 {
                Halt::Dest { lba: None, msg } => Halt::Dest {
                    lba: Some(next),
                    msg,
                },
                h => h,
            })?;
        next += len as u64 / block;
        *good += len as u64;
        commands += 1;
        bar.add(len as u64);
    }
    Ok(SideStats {
        commands,
        modes: session.modes(),
    })
}

/// The reading end of the channel between the two threads of a device to
/// device copy: a byte stream over the source's chunks.
struct Pipe {
    rx: mpsc::Receiver<Vec<u8>>,
    back: mpsc::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Pipe {
    fn fill(&mut self, buf: &mut [u8]) -> std::result::Result<(), Halt> {
        let mut off = 0;
        while off < buf.len() {
            if self.pos == self.cur.len() {
                let old = std::mem::take(&mut self.cur);
                if old.capacity() > 0 {
                    let _ = self.back.send(old);
                }
                self.cur = self.rx.recv().map_err(|_| Halt::Peer)?;
                self.pos = 0;
            }
            let n = (buf.len() - off).min(self.cur.len() - self.pos);
            buf[off..off + n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
            off += n;
            self.pos += n;
        }
        Ok(())
    }
}

/// A file source: reads exactly, naming the file and the byte.
struct FileIn {
    f: Box<dyn std::io::Read>,
    name: String,
    at: u64,
}

impl FileIn {
    fn fill(&mut self, buf: &mut [u8]) -> std::result::Result<(), Halt> {
        self.f.read_exact(buf).map_err(|e| Halt::Source {
            lba: None,
            msg: format!(
                "cannot read {} bytes from {} at byte {}: {}",
                buf.len(),
                self.name,
                self.at,
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "it ended early".to_string()
                } else {
                    e.to_string()
                }
            ),
        })?;
        self.at += buf.len() as u64;
        Ok(())
    }
}

/// What `sgmap copy --json` prints.
#[derive(Debug, Serialize)]
struct CopyReport {
    command: &'static str,
    source: String,
    destination: String,
    /// `sg`, `file` or `stdio`.
    source_kind: &'static str,
    destination_kind: &'static str,
    /// What --mode asked for.
    mode_requested: &'static str,
    /// The transport each sg side ran (`None` for a file side).
    source_mode: Option<&'static str>,
    destination_mode: Option<&'static str>,
    /// Why --mode auto did not run uring on a side.
    auto_fallback: Option<String>,
    source_block_size: u64,
    destination_block_size: u64,
    /// Bytes per command.
    bs: usize,
    depth: usize,
    /// skip= and seek=, in each side's blocks.
    skip: u64,
    seek: u64,
    bytes: u64,
    /// Commands on both sides.
    commands: u64,
    source_commands: u64,
    destination_commands: u64,
    seconds: f64,
    mb_per_s: f64,
    cpu_user_s: f64,
    cpu_system_s: f64,
    cpu_ms_per_gb: Option<f64>,
    modes_seen: SidesJson,
    verified: bool,
}

/// Modes seen per side.
#[derive(Debug, Serialize)]
struct SidesJson {
    source: ModesJson,
    destination: ModesJson,
}

/// Runs `sgmap copy`.
pub(crate) fn copy(args: &CopyArgs) -> Result<()> {
    let ops = parse_operands(&args.operands)?;
    let (Some(src_spec), Some(dst_spec)) = (&ops.input, &ops.output) else {
        return Err(Failure(
            "copy: say what to copy: if=SRC of=DST (see sgmap copy --help)".into(),
        ));
    };
    let mut src = End::probe(src_spec, true)?;
    let mut dst = End::probe(dst_spec, false)?;
    let title = format!("copy {} -> {}", src.name(), dst.name());
    let usage = |what: String| Failure(format!("{title}: {what}"));
    if src.kind != Kind::Sg && dst.kind != Kind::Sg {
        return Err(usage(
            "neither side is an sg device (/dev/sgN; `sgmap list` shows them): use cp or dd".into(),
        ));
    }
    if args.depth == 0 {
        return Err(usage("--depth must be at least 1".into()));
    }
    let bs = match (ops.bs, args.bs) {
        (Some(a), Some(b)) if a != b => {
            return Err(usage(format!("bs={a} and --bs {b} disagree: give one")))
        }
        (a, b) => a.or(b).unwrap_or(64 << 10),
    };
    let count = match (ops.count, args.count) {
        (Some(a), Some(b)) if a != b => {
            return Err(usage(format!(
                "count={a} and --count {b} disagree: give one"
            )))
        }
        (a, b) => a.or(b),
    };
    if count.is_some() && args.size.is_some() {
        return Err(usage(
            "count= and --size both say how much: give one".into(),
        ));
    }
    let xfer = bs
        .checked_mul(ops.bpt.unwrap_or(1))
        .ok_or_else(|| usage("bs= x bpt= is too large".into()))?;
    // A file side counts in the other side's blocks.
    if src.kind != Kind::Sg {
        src.block = dst.block;
    }
    if dst.kind != Kind::Sg {
        dst.block = src.block;
    }
    let unit = lcm(src.block, dst.block);
    if xfer == 0 || xfer as u64 % unit != 0 {
        return Err(usage(format!(
            "{xfer} bytes per command is not a whole number of {}; use a multiple of {unit}",
            blocks_phrase(&src, &dst)
        )));
    }
    let (skip_b, seek_b) = (
        ops.skip.saturating_mul(src.block),
        ops.seek.saturating_mul(dst.block),
    );
    let total = match (count, args.size) {
        (Some(n), _) => n.saturating_mul(bs as u64),
        (None, Some(s)) => s,
        (None, None) => match src.kind {
            Kind::Sg => src.blocks.saturating_sub(ops.skip) * src.block,
            Kind::File if src.regular => src.len.saturating_sub(skip_b),
            _ => {
                return Err(usage(
                    "the source has no known size: give count= (units of bs=) or --size".into(),
                ))
            }
        },
    };
    if count == Some(0) || (count.is_none() && args.size == Some(0)) {
        return Err(usage(
            "count=0 (or --size 0) copies nothing; sgmap refuses it where dd would copy nothing and \
             succeed: give at least one block"
                .into(),
        ));
    }
    if total == 0 || total % unit != 0 {
        return Err(usage(format!(
            "{total} bytes is not a whole, non-zero number of {}; give count= or --size \
             (or pad the source file to a multiple of {unit})",
            blocks_phrase(&src, &dst)
        )));
    }
    if src.kind == Kind::Sg && skip_b + total > src.blocks * src.block {
        return Err(usage(format!(
            "reading {total} bytes from skip={} would go past the end of {} ({} blocks of {} bytes); \
             lower count=, --size or skip=",
            ops.skip,
            src.name(),
            src.blocks,
            src.block
        )));
    }
    if src.kind == Kind::File && src.regular && skip_b + total > src.len {
        return Err(usage(format!(
            "{} has {} bytes, fewer than skip={} ({skip_b} bytes) plus the {total} asked for",
            src.name(),
            src.len,
            ops.skip
        )));
    }
    if dst.kind == Kind::Sg && seek_b + total > dst.blocks * dst.block {
        return Err(usage(format!(
            "writing {total} bytes from seek={} would go past the end of {} ({} blocks of {} bytes); \
             lower count=, --size or seek=",
            ops.seek,
            dst.name(),
            dst.blocks,
            dst.block
        )));
    }
    if dst.kind == Kind::Std && args.output.json {
        return Err(usage(
            "of=- writes the data to stdout, where --json goes too; pick one".into(),
        ));
    }
    if dst.kind == Kind::Std && ops.seek != 0 {
        return Err(usage("seek= cannot move on stdout".into()));
    }
    if src.kind == Kind::Sg
        && dst.kind == Kind::Sg
        && src.rdev == dst.rdev
        && skip_b < seek_b + total
        && seek_b < skip_b + total
    {
        return Err(usage(format!(
            "source bytes {skip_b}..{} and destination bytes {seek_b}..{} overlap on the same device; \
             pick skip= and seek= further apart",
            skip_b + total,
            seek_b + total
        )));
    }
    if args.verify {
        for (e, what) in [(&src, "source"), (&dst, "destination")] {
            if e.kind == Kind::Std || (e.kind == Kind::File && !e.regular) {
                return Err(usage(format!(
                    "--verify reads the {what} again, and {} cannot be read back; drop --verify",
                    e.name()
                )));
            }
        }
    }
    // The transport of each sg side.
    let (way, fallback) = xfer::resolve_mode(args.mode);
    for (end, dir) in [(&mut src, Dir::Read), (&mut dst, Dir::Write)] {
        if end.kind != Kind::Sg {
            continue;
        }
        end.way = way;
        end.auto_fallback = fallback.clone();
        let name = end.name();
        if end.way == Way::Uring {
            end.uring = xfer::open_ring(
                args.mode,
                &mut end.way,
                &mut end.auto_fallback,
                &end.path,
                dir,
                xfer,
                args.depth,
            )?;
        }
        xfer::check_depth(&name, "copy", end.way, args.depth)?;
        if (args.depth > 1 || end.way == Way::Uring) && xfer > end.max_size {
            return Err(usage(format!(
                "{xfer} bytes per command is more than one command can carry on {name} ({} bytes); \
                 use a smaller bs=",
                end.max_size
            )));
        }
    }
    let shape = Shape {
        xfer,
        depth: args.depth,
        skip: ops.skip,
        seek: ops.seek,
        total,
    };
    let mode_label = match (src.kind, dst.kind) {
        (Kind::Sg, Kind::Sg) if src.way == dst.way => src.way.to_string(),
        (Kind::Sg, Kind::Sg) => format!("{}->{}", src.way, dst.way),
        (Kind::Sg, _) => src.way.to_string(),
        _ => dst.way.to_string(),
    };
    let mut bar = progress::Meter::bytes(total, args.output.quiet, format!("copy {mode_label}"));
    let cpu0 = CpuTime::now();
    let t0 = Instant::now();
    let mut good = 0u64;
    // Files open before anything moves: a file that does not open is a
    // plain error, not a copy stopped part way.
    let setup = |h: Halt| match h {
        Halt::Source { msg, .. } | Halt::Dest { msg, .. } => usage(msg),
        Halt::Peer => usage("cannot set up".into()),
    };
    let files = match (src.kind, dst.kind) {
        (Kind::Sg, Kind::Sg) => Files::None,
        (Kind::Sg, _) => Files::Sink(open_sink(&dst, shape).map_err(setup)?),
        _ => Files::Source(open_source(&src, shape).map_err(setup)?),
    };
    let result = run(&mut src, &mut dst, files, shape, &mut bar, &mut good);
    bar.finish();
    let (s_stats, d_stats) = match result {
        Ok(v) => v,
        Err(h) => return Err(stopped(&src, &dst, shape, &ops, args, h, good)),
    };
    let wall = t0.elapsed();
    let cpu = CpuTime::now().since(cpu0);
    if args.verify {
        verify(&src, &dst, shape).map_err(usage)?;
    }
    let secs = wall.as_secs_f64();
    let per_s = |v: f64| if secs > 0.0 { v / secs } else { 0.0 };
    let side_mode = |e: &End| (e.kind == Kind::Sg).then(|| e.way.name());
    let report = CopyReport {
        command: "copy",
        source: src.name(),
        destination: dst.name(),
        source_kind: src.kind.name(),
        destination_kind: dst.kind.name(),
        mode_requested: args.mode.name(),
        source_mode: side_mode(&src),
        destination_mode: side_mode(&dst),
        auto_fallback: src.auto_fallback.clone().or(dst.auto_fallback.clone()),
        source_block_size: src.block,
        destination_block_size: dst.block,
        bs: xfer,
        depth: args.depth,
        skip: ops.skip,
        seek: ops.seek,
        bytes: total,
        commands: s_stats.commands + d_stats.commands,
        source_commands: s_stats.commands,
        destination_commands: d_stats.commands,
        seconds: secs,
        mb_per_s: per_s(total as f64 / 1e6),
        cpu_user_s: cpu.user.as_secs_f64(),
        cpu_system_s: cpu.system.as_secs_f64(),
        cpu_ms_per_gb: Some(cpu.total().as_secs_f64() * 1e3 / (total as f64 / 1e9)),
        modes_seen: SidesJson {
            source: s_stats.modes.into(),
            destination: d_stats.modes.into(),
        },
        verified: args.verify,
    };
    if args.output.json {
        return print_json(&report);
    }
    let side = |e: &End, st: &SideStats| match e.kind {
        Kind::Sg => format!("{} ({} commands: {})", e.name(), st.commands, st.modes),
        _ => e.name(),
    };
    let mut text = format!(
        "copied {} from {} to {} in commands of {}: {secs:.3} s, {:.1} MB/s, CPU {} ms/GB{}",
        human(total),
        side(&src, &s_stats),
        side(&dst, &d_stats),
        human(xfer as u64),
        report.mb_per_s,
        report
            .cpu_ms_per_gb
            .map_or("?".to_string(), |v| format!("{v:.1}")),
        if args.verify { "; verified" } else { "" }
    );
    for (e, st) in [(&src, &s_stats), (&dst, &d_stats)] {
        if let Some(why) = &e.auto_fallback {
            text += &format!(
                "\n{}: ran {} (--mode auto fell back: {why})",
                e.name(),
                e.way
            );
        }
        if e.kind == Kind::Sg
            && e.way != Way::Mmap
            && e.way != Way::Uring
            && st.modes.of(e.way) < st.modes.total()
        {
            text += &format!(
                "\n{}:{}",
                e.name(),
                xfer::fallback_note(e.way, st.modes)
                    .trim_start_matches('\n')
                    .trim_start_matches("note:")
            );
        }
    }
    if dst.kind == Kind::Std {
        eprintln!("{text}");
    } else {
        println!("{text}");
    }
    Ok(())
}

fn lcm(a: u64, b: u64) -> u64 {
    fn gcd(a: u64, b: u64) -> u64 {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    if a == 0 || b == 0 {
        a.max(b).max(1)
    } else {
        a / gcd(a, b) * b
    }
}

fn blocks_phrase(src: &End, dst: &End) -> String {
    if src.block == dst.block {
        format!("{}-byte blocks", src.block)
    } else {
        format!(
            "blocks of both sides ({} has {}-byte blocks, {} {}-byte ones)",
            src.name(),
            src.block,
            dst.name(),
            dst.block
        )
    }
}

/// Moves the data; `good` ends as the bytes on the destination known good.
/// The file side of a copy, opened.
enum Files {
    None,
    Sink(Sink),
    Source(FileIn),
}

fn run(
    src: &mut End,
    dst: &mut End,
    files: Files,
    s: Shape,
    bar: &mut progress::Meter,
    good: &mut u64,
) -> std::result::Result<(SideStats, SideStats), Halt> {
    match files {
        Files::None => {
            let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(s.depth.max(2));
            let (back_tx, back_rx) = mpsc::channel::<Vec<u8>>();
            std::thread::scope(|scope| {
                let reader = scope.spawn(move || {
                    read_device(src, s, &mut |data| {
                        let mut v = back_rx.try_recv().unwrap_or_default();
                        v.clear();
                        v.extend_from_slice(data);
                        tx.send(v).map_err(|_| Halt::Peer)
                    })
                });
                let mut pipe = Pipe {
                    rx,
                    back: back_tx,
                    cur: Vec::new(),
                    pos: 0,
                };
                let w = write_device(dst, s, &mut |buf| pipe.fill(buf), bar, good);
                // A writer that stopped lets a reader blocked on the channel go.
                drop(pipe);
                let r = reader.join().unwrap_or(Err(Halt::Source {
                    lba: None,
                    msg: "the reading thread panicked".into(),
                }));
                match (r, w) {
                    (Ok(r), Ok(w)) => Ok((r, w)),
                    // The writer's own failure comes first; a writer that
                    // stopped for want of data reports the reader's.
                    (Err(h), Err(Halt::Peer)) | (_, Err(h)) | (Err(h), _) => Err(h),
                }
            })
        }
        Files::Sink(mut sink) => {
            let r = read_device(src, s, &mut |data| {
                sink.put(data)
                    .map_err(|msg| Halt::Dest { lba: None, msg })?;
                *good += data.len() as u64;
                bar.add(data.len() as u64);
                Ok(())
            });
            // What was written is flushed even when the copy stopped.
            let flushed = sink.flush();
            let st = r?;
            flushed.map_err(|msg| {
                *good = 0;
                Halt::Dest { lba: None, msg }
            })?;
            Ok((st, SideStats::default()))
        }
        Files::Source(mut input) => {
            let st = write_device(dst, s, &mut |buf| input.fill(buf), bar, good)?;
            Ok((SideStats::default(), st))
        }
    }
}

fn open_sink(dst: &End, s: Shape) -> std::result::Result<Sink, Halt> {
    let dest = |msg: String| Halt::Dest { lba: None, msg };
    if dst.kind == Kind::Std {
        return Ok(Sink::Stdout(std::io::stdout().lock()));
    }
    let at = s.seek * dst.block;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&dst.path)
        .map_err(|e| dest(format!("cannot open {} to write: {e}", dst.name())))?;
    // Written in place, as sg_dd does: bytes of an existing file beyond
    // what is copied stay (dd's truncation would cut an image's tail off).
    if at > 0 {
        f.seek(SeekFrom::Start(at))
            .map_err(|e| dest(format!("cannot seek {} to byte {at}: {e}", dst.name())))?;
    }
    Ok(Sink::file(f, dst.path.clone()))
}

fn open_source(src: &End, s: Shape) -> std::result::Result<FileIn, Halt> {
    let source = |msg: String| Halt::Source { lba: None, msg };
    let skip = s.skip * src.block;
    let mut f: Box<dyn std::io::Read> = if src.kind == Kind::Std {
        Box::new(std::io::stdin().lock())
    } else {
        let mut f = File::open(&src.path)
            .map_err(|e| source(format!("cannot open {}: {e}", src.name())))?;
        if skip > 0 {
            f.seek(SeekFrom::Start(skip))
                .map_err(|e| source(format!("cannot seek {} to byte {skip}: {e}", src.name())))?;
        }
        return Ok(FileIn {
            f: Box::new(f),
            name: src.name(),
            at: skip,
        });
    };
    // stdin: skip= is read and dropped.
    if skip > 0 {
        let n = std::io::copy(&mut (&mut f).take(skip), &mut std::io::sink())
            .map_err(|e| source(format!("cannot skip {skip} bytes of stdin: {e}")))?;
        if n < skip {
            return Err(source(format!(
                "stdin ended after {n} bytes, before skip= ({skip} bytes)"
            )));
        }
    }
    Ok(FileIn {
        f,
        name: "stdin".into(),
        at: skip,
    })
}

/// The error of a copy that stopped part way: what failed, what is known
/// good on the destination, and how to resume.
fn stopped(
    src: &End,
    dst: &End,
    s: Shape,
    ops: &Operands,
    args: &CopyArgs,
    h: Halt,
    good: u64,
) -> Failure {
    let cause = match h {
        Halt::Source { lba, msg } => format!(
            "reading {}{} failed: {msg}",
            src.name(),
            lba.map_or(String::new(), |l| format!(" at LBA {l}"))
        ),
        Halt::Dest { lba, msg } => format!(
            "writing {}{} failed: {msg}",
            dst.name(),
            lba.map_or(String::new(), |l| format!(" at LBA {l}"))
        ),
        Halt::Peer => "a side stopped without saying why".into(),
    };
    let dst_where = match dst.kind {
        Kind::Sg if good > 0 => format!(
            " = {} blocks of {} bytes, LBAs {}..={}",
            good / dst.block,
            dst.block,
            s.seek,
            s.seek + good / dst.block - 1
        ),
        Kind::Sg => String::new(),
        _ if good > 0 => format!(
            ", file bytes {}..{}",
            s.seek * dst.block,
            s.seek * dst.block + good
        ),
        _ => String::new(),
    };
    let mut text = format!(
        "copy {} -> {} stopped: {cause}\n{good} of {} bytes ({}) are on {} and known good{dst_where}; \
         the rest was not copied",
        src.name(),
        dst.name(),
        s.total,
        human(good),
        dst.name()
    );
    let unit = lcm(src.block, dst.block);
    let resume = good / unit * unit;
    if src.kind != Kind::Std && dst.kind != Kind::Std {
        text += &format!(
            "\nto resume: sgmap copy if={} of={} skip={} seek={} --size {} --mode {} --depth {}",
            src.name(),
            dst.name(),
            ops.skip + resume / src.block,
            ops.seek + resume / dst.block,
            s.total - resume,
            args.mode.name(),
            s.depth
        );
    }
    Failure(text)
}

/// One side read back for --verify.
enum Back {
    Dev(Device, u64, u64),
    File(File),
}

impl Back {
    fn open(e: &End, first: u64) -> std::result::Result<Back, String> {
        match e.kind {
            Kind::Sg => {
                let d = Device::open(&e.path).map_err(|x| Failure::from(x).0)?;
                d.wait_ready().map_err(|x| Failure::from(x).0)?;
                Ok(Back::Dev(d, first, e.block))
            }
            _ => {
                let mut f = File::open(&e.path)
                    .map_err(|x| format!("cannot reopen {} to verify: {x}", e.name()))?;
                f.seek(SeekFrom::Start(first * e.block))
                    .map_err(|x| format!("cannot seek {} to verify: {x}", e.name()))?;
                Ok(Back::File(f))
            }
        }
    }

    fn read(&mut self, buf: &mut [u8], name: &str) -> std::result::Result<(), String> {
        match self {
            Back::Dev(d, lba, block) => {
                d.read_blocks(*lba, buf, BlockIo::indirect())
                    .map_err(|x| format!("verify: {}", Failure::from(x).0))?;
                *lba += buf.len() as u64 / *block;
                Ok(())
            }
            Back::File(f) => f.read_exact(buf).map_err(|x| {
                format!(
                    "verify: cannot read {} bytes of {name} back: {x}",
                    buf.len()
                )
            }),
        }
    }
}

/// Reads both sides again (new fds, reopened files) and compares them.
fn verify(src: &End, dst: &End, s: Shape) -> std::result::Result<(), String> {
    let mut a = Back::open(src, s.skip)?;
    let mut b = Back::open(dst, s.seek)?;
    let chunk = s.xfer;
    let (mut x, mut y) = (vec![0u8; chunk], vec![0u8; chunk]);
    let mut done = 0u64;
    while done < s.total {
        let n = (s.total - done).min(chunk as u64) as usize;
        a.read(&mut x[..n], &src.name())?;
        b.read(&mut y[..n], &dst.name())?;
        if let Some(i) = x[..n].iter().zip(&y[..n]).position(|(p, q)| p != q) {
            let off = done + i as u64;
            let place = |e: &End, first: u64| {
                let byte = first * e.block + off;
                match e.kind {
                    Kind::Sg => format!("{} (byte {byte}, LBA {})", e.name(), byte / e.block),
                    _ => format!("{} (byte {byte})", e.name()),
                }
            };
            return Err(format!(
                "verify failed: byte {off} of the copy differs: {} has {:#04x}, {} reads back {:#04x}",
                place(src, s.skip),
                x[i],
                place(dst, s.seek),
                y[i]
            ));
        }
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(v: &[&str]) -> Result<Operands> {
        parse_operands(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn operands_parse_as_dd_spells_them() {
        let o = ops(&[
            "if=/dev/sg0",
            "of=-",
            "bs=64k",
            "bpt=2",
            "count=10",
            "skip=3",
            "seek=4",
        ])
        .unwrap_or_default();
        assert_eq!(
            o,
            Operands {
                input: Some("/dev/sg0".into()),
                output: Some("-".into()),
                bs: Some(65536),
                bpt: Some(2),
                count: Some(10),
                skip: 3,
                seek: 4,
            }
        );
        for bad in [
            &["/dev/sg0"][..],
            &["conv=notrunc"],
            &["count=x"],
            &["bpt=0"],
        ] {
            assert!(ops(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn majors_split_as_glibc_does() {
        // /dev/sg0 is 21:0, /dev/null 1:3; a large major spans both fields.
        assert_eq!(dev_major(21 << 8), 21);
        assert_eq!(dev_major((1 << 8) | 3), 1);
        assert_eq!(
            dev_major((0x1234u64 >> 12 << 44) | ((0x1234 & 0xfff) << 8)),
            0x1234
        );
    }

    #[test]
    fn lcm_of_block_sizes() {
        assert_eq!(lcm(512, 4096), 4096);
        assert_eq!(lcm(512, 512), 512);
        assert_eq!(lcm(0, 512), 512);
        assert_eq!(lcm(4096, 520), 266_240);
    }

    #[test]
    fn a_pipe_is_a_byte_stream_over_chunks_of_any_size() {
        let (tx, rx) = mpsc::sync_channel(8);
        let (back, _back_rx) = mpsc::channel();
        let data: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        for c in data.chunks(700) {
            tx.send(c.to_vec()).unwrap_or_default();
        }
        drop(tx);
        let mut p = Pipe {
            rx,
            back,
            cur: Vec::new(),
            pos: 0,
        };
        let mut got = vec![0u8; 3000];
        for c in got.chunks_mut(512) {
            assert!(p.fill(c).is_ok());
        }
        assert_eq!(got, data);
        assert!(matches!(p.fill(&mut [0u8; 1]), Err(Halt::Peer)));
    }

    #[test]
    fn the_failed_lba_comes_from_the_cdb() {
        let e = sgmap::Error::ShortTransfer {
            device: "/dev/sg9".into(),
            outcome: Box::new(sgmap::Outcome {
                cdb: sgmap::cdb::Cdb::read_10(4660, 8),
                status: 0,
                host_status: 0,
                driver_status: 0,
                info: 0,
                sense: None,
                requested: 4096,
                resid: 512,
                duration: std::time::Duration::ZERO,
                requested_mode: sgmap::Mode::Indirect,
                mode: sgmap::Mode::Indirect,
                fallback: None,
            }),
        };
        assert_eq!(failed_lba(&e), Some(4660));
    }
}
