//! Streaming a range of blocks with many commands in flight, in order.
//!
//! [`read()`] and [`write()`] move a range of LBAs in transfers of a chosen size,
//! keeping `depth` commands in flight all the time, and hand the data to (or
//! take it from) a callback strictly in LBA order, whatever order the device
//! finishes in:
//! - [`StreamMode::Mmap`]: a [`Pool`] of `depth` fds, each with its mapped
//!   reserved buffer; the callback sees the mapped bytes themselves;
//! - [`StreamMode::Direct`] and [`StreamMode::Indirect`]: one [`Queue`] with
//!   `depth` (at most 16) page-aligned buffers.
//!
//! ```no_run
//! use sgmap::stream::{self, Options, StreamMode};
//!
//! let opts = Options::new(StreamMode::Mmap).transfer_bytes(512 * 1024).depth(8);
//! let mut sum = 0u64;
//! let totals = stream::read("/dev/sg0", 0..100_000, opts, |_lba, data: &[u8]| {
//!     sum += data.iter().map(|&b| u64::from(b)).sum::<u64>();
//!     Ok::<_, sgmap::Error>(())
//! })?;
//! println!("{} bytes in {} commands, {} IO", totals.bytes, totals.commands, totals.mode);
//! # Ok::<(), sgmap::Error>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::buffer::DirectBuf;
use crate::cdb::Cdb;
use crate::command::{Command, Direction, DEFAULT_TIMEOUT};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::helpers::UNIT_ATTENTION_RETRIES;
use crate::outcome::{Fallback, Mode, Outcome};
use crate::pool::Pool;
use crate::queue::{IoBuf, Payload, Queue, Ticket, MAX_IN_FLIGHT};

/// The most fds (each with its own mapped reserved buffer, which is kernel
/// memory) an mmap stream opens, whatever depth is asked: far more commands
/// than a device's queue takes at once add no speed.
pub const MAX_MMAP_DEPTH: usize = 64;

/// How a stream moves its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StreamMode {
    /// mmap-ed IO: one fd and mapped reserved buffer per command in flight.
    #[default]
    Mmap,
    /// Direct IO into page-aligned buffers (the totals say if the kernel
    /// fell back to indirect).
    Direct,
    /// Indirect IO: the kernel copies through its own buffers.
    Indirect,
}

impl StreamMode {
    /// The three modes.
    pub const ALL: [StreamMode; 3] = [StreamMode::Mmap, StreamMode::Direct, StreamMode::Indirect];

    /// Lower-case name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            StreamMode::Mmap => "mmap",
            StreamMode::Direct => "direct",
            StreamMode::Indirect => "indirect",
        }
    }

    /// The [`Mode`] a command in this stream mode reports when the kernel did
    /// what was asked.
    pub fn mode(self) -> Mode {
        match self {
            StreamMode::Mmap => Mode::Mmap,
            StreamMode::Direct => Mode::Direct,
            StreamMode::Indirect => Mode::Indirect,
        }
    }
}

impl fmt::Display for StreamMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How to stream: mode, transfer size per command, commands in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The transfer mode.
    pub mode: StreamMode,
    /// Bytes per command, rounded down to whole blocks and capped at what one
    /// command can carry (the queue's limit; for mmap, the granted buffer).
    pub transfer_bytes: usize,
    /// Commands kept in flight (at least 1; at most 16 for direct and
    /// indirect IO, which share one fd; for mmap, the number of fds, at most
    /// [`MAX_MMAP_DEPTH`] and the device's queue depth).
    /// [`Totals::depth`] says what was used.
    pub depth: usize,
    /// Timeout of each command.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: StreamMode::Mmap,
            transfer_bytes: 256 * 1024,
            depth: 8,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl Options {
    /// The defaults (256 KiB transfers, depth 8) with `mode`.
    pub fn new(mode: StreamMode) -> Self {
        Options {
            mode,
            ..Options::default()
        }
    }

    /// Sets the bytes per command.
    pub fn transfer_bytes(mut self, bytes: usize) -> Self {
        self.transfer_bytes = bytes;
        self
    }

    /// Sets the commands in flight.
    pub fn depth(mut self, depth: usize) -> Self {
        self.depth = depth;
        self
    }

    /// Sets the per-command timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What a stream did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Bytes moved.
    pub bytes: u64,
    /// Commands completed (not counting repeats after a UNIT ATTENTION).
    pub commands: u64,
    /// The mode that really ran; if commands differed, the least direct one.
    pub mode: Mode,
    /// Why direct IO fell back, when it did.
    pub fallback: Option<Fallback>,
    /// The bytes per command really used (after rounding and capping).
    pub transfer_bytes: usize,
    /// The depth really used.
    pub depth: usize,
    /// The most commands that were in the kernel at once.
    pub peak_in_flight: usize,
}

impl Totals {
    fn new(mode: Mode, transfer_bytes: usize, depth: usize) -> Self {
        Totals {
            bytes: 0,
            commands: 0,
            mode,
            fallback: None,
            transfer_bytes,
            depth,
            peak_in_flight: 0,
        }
    }

    fn add(&mut self, out: &Outcome) {
        self.bytes += out.transferred() as u64;
        self.commands += 1;
        self.mode = self.mode.least_direct(out.mode);
        self.fallback = self.fallback.or(out.fallback);
    }
}

/// Reads the blocks `blocks` (LBAs, end exclusive) of `device` and calls
/// `sink(lba, data)` for each transfer in LBA order. `data` is whole blocks;
/// with [`StreamMode::Mmap`] it is the mapped reserved buffer itself.
///
/// Stops at the first failing command (after the commands before it were
/// delivered) or the first error of `sink`, and returns that error; the
/// commands still in flight are collected before this returns. `E` is any
/// error type that an [`Error`] converts into (`sgmap::Error` itself,
/// `Box<dyn Error>`, `anyhow::Error`, ...).
pub fn read<E: From<Error>>(
    device: impl AsRef<Path>,
    blocks: Range<u64>,
    opts: Options,
    mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<Totals, E> {
    run(
        device.as_ref(),
        blocks,
        opts,
        Direction::FromDevice,
        |io| match io {
            Io::Got(lba, data) => sink(lba, data),
            Io::Fill(..) => Ok(()),
        },
    )
}

/// Writes the blocks `blocks` (LBAs, end exclusive) of `device`, calling
/// `source(lba, buf)` in LBA order to fill each transfer's buffer (whole
/// blocks; with [`StreamMode::Mmap`] the mapped reserved buffer itself)
/// just before it is sent.
///
/// Stops at the first failing command or the first error of `source`, and
/// returns that error; the commands still in flight are collected first.
pub fn write<E: From<Error>>(
    device: impl AsRef<Path>,
    blocks: Range<u64>,
    opts: Options,
    mut source: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
) -> Result<Totals, E> {
    run(
        device.as_ref(),
        blocks,
        opts,
        Direction::ToDevice,
        |io| match io {
            Io::Fill(lba, buf) => source(lba, buf),
            Io::Got(..) => Ok(()),
        },
    )
}

/// Reads the blocks `blocks` of `device` into `out`, in order. sgmap errors
/// come back as `io::Error`s (of kind `Other`) wrapping the [`Error`].
pub fn read_to_writer(
    device: impl AsRef<Path>,
    blocks: Range<u64>,
    opts: Options,
    out: &mut impl std::io::Write,
) -> std::io::Result<Totals> {
    read(device, blocks, opts, |_, data| {
        out.write_all(data).map_err(WriterError::Io)
    })
    .map_err(|e| match e {
        WriterError::Io(e) => e,
        WriterError::Sg(e) => std::io::Error::other(e),
    })
}

enum WriterError {
    Sg(Error),
    Io(std::io::Error),
}

impl From<Error> for WriterError {
    fn from(e: Error) -> Self {
        WriterError::Sg(e)
    }
}

/// What the engine asks of the caller's callback.
enum Io<'a> {
    /// Fill the buffer of the write at this LBA.
    Fill(u64, &'a mut [u8]),
    /// The data of the read at this LBA.
    Got(u64, &'a [u8]),
}

/// One transfer in flight.
#[derive(Debug, Clone, Copy)]
struct Pending {
    ticket: Ticket,
    lba: u64,
    blocks: u32,
    tries: u32,
}

/// The checked plan of a stream.
#[derive(Debug)]
struct Plan {
    path: PathBuf,
    block: usize,
    chunk_blocks: u64,
    depth: usize,
    dir: Direction,
    timeout: Duration,
}

impl Plan {
    fn invalid(&self, command: &str, reason: String) -> Error {
        Error::InvalidRequest {
            device: self.path.clone(),
            command: command.into(),
            reason,
        }
    }

    fn command(&self, lba: u64, blocks: u32) -> Result<Command> {
        let cdb = match self.dir {
            Direction::ToDevice => Cdb::write(lba, blocks)?,
            _ => Cdb::read(lba, blocks)?,
        };
        Ok(Command::new(cdb).timeout(self.timeout))
    }

    /// A failing outcome as an error; a short transfer as one too.
    fn check(&self, out: &Outcome) -> Result<()> {
        out.clone().check(&self.path)?;
        if out.resid != 0 {
            return Err(Error::ShortTransfer {
                device: self.path.clone(),
                outcome: Box::new(out.clone()),
            });
        }
        Ok(())
    }

    fn blocks_at(&self, next: u64, end: u64) -> u32 {
        // chunk_blocks fits a u32: it comes from a transfer length < 4 GiB.
        (end - next).min(self.chunk_blocks) as u32
    }
}

fn run<E: From<Error>>(
    path: &Path,
    range: Range<u64>,
    opts: Options,
    dir: Direction,
    mut io: impl FnMut(Io<'_>) -> Result<(), E>,
) -> Result<Totals, E> {
    let dev = Device::open(path)?;
    dev.wait_ready()?;
    let cap = dev.read_capacity()?;
    let block = cap.block_size as usize;
    let what = if dir == Direction::ToDevice {
        "stream write"
    } else {
        "stream read"
    };
    let invalid = |reason: String| Error::InvalidRequest {
        device: path.to_path_buf(),
        command: what.into(),
        reason,
    };
    if range.start > range.end || range.end > cap.blocks {
        return Err(invalid(format!(
            "blocks {}..{} are not a range within the device's {} blocks",
            range.start, range.end, cap.blocks
        ))
        .into());
    }
    if opts.depth == 0 {
        return Err(
            invalid("a depth of 0 keeps no command in flight; use 1 or more".into()).into(),
        );
    }
    let limit = match opts.mode {
        StreamMode::Mmap => usize::MAX,
        _ => dev.max_transfer(),
    };
    let transfer = opts.transfer_bytes.min(limit).min(u32::MAX as usize) / block * block;
    if transfer == 0 {
        return Err(invalid(format!(
            "a transfer of {} bytes is less than one {block}-byte block",
            opts.transfer_bytes
        ))
        .into());
    }
    let mut plan = Plan {
        path: path.to_path_buf(),
        block,
        chunk_blocks: (transfer / block) as u64,
        depth: opts.depth,
        dir,
        timeout: opts.timeout,
    };
    match opts.mode {
        StreamMode::Mmap => {
            // One fd and reserved buffer per command in flight: no more
            // than the device queues at once, nor than MAX_MMAP_DEPTH.
            let queue_depth = dev
                .scsi_id()
                .map_or(MAX_MMAP_DEPTH, |id| usize::from(id.queue_depth).max(1));
            plan.depth = opts.depth.min(MAX_MMAP_DEPTH).min(queue_depth);
            let mut mapped = Vec::with_capacity(plan.depth);
            mapped.push(dev.map_reserved(transfer).map_err(Error::from)?);
            for _ in 1..plan.depth {
                mapped.push(
                    Device::open(path)?
                        .map_reserved(transfer)
                        .map_err(Error::from)?,
                );
            }
            let pool = Pool::from_mapped(mapped)?;
            let granted = pool.buffer_len() / block * block;
            if granted == 0 {
                return Err(plan
                    .invalid(
                        "mmap",
                        format!("the kernel granted a reserved buffer of less than one {block}-byte block"),
                    )
                    .into());
            }
            plan.chunk_blocks = plan.chunk_blocks.min((granted / block) as u64);
            run_pool(&plan, pool, range, &mut io)
        }
        mode => {
            plan.depth = plan.depth.min(MAX_IN_FLIGHT);
            let direct = mode == StreamMode::Direct;
            run_queue(&plan, Queue::new(dev)?, direct, range, &mut io)
        }
    }
}

fn run_queue<E: From<Error>>(
    plan: &Plan,
    mut q: Queue,
    direct: bool,
    range: Range<u64>,
    io: &mut impl FnMut(Io<'_>) -> Result<(), E>,
) -> Result<Totals, E> {
    let requested = if direct { Mode::Direct } else { Mode::Indirect };
    let full = plan.chunk_blocks as usize * plan.block;
    let mut totals = Totals::new(requested, full, plan.depth);
    let mut spare: Vec<IoBuf> = Vec::with_capacity(plan.depth);
    let buffer = |spare: &mut Vec<IoBuf>, len: usize| -> IoBuf {
        match spare.pop() {
            Some(b) if b.len() == len => b,
            _ if direct => DirectBuf::new(len).into(),
            _ => vec![0u8; len].into(),
        }
    };
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(plan.depth);
    let mut next = range.start;
    loop {
        while pending.len() < plan.depth && next < range.end {
            let blocks = plan.blocks_at(next, range.end);
            let mut buf = buffer(&mut spare, blocks as usize * plan.block);
            let payload = if plan.dir == Direction::ToDevice {
                io(Io::Fill(next, &mut buf))?;
                Payload::ToDevice(buf)
            } else {
                Payload::FromDevice(buf)
            };
            let cmd = queue_command(plan, next, blocks, direct)?;
            let ticket = q.submit(&cmd, payload).map_err(Error::from)?;
            pending.push_back(Pending {
                ticket,
                lba: next,
                blocks,
                tries: 0,
            });
            next += u64::from(blocks);
        }
        let Some(mut p) = pending.pop_front() else {
            break;
        };
        let done = q.wait_for(p.ticket)?;
        if done.outcome.failure_kind() == Some(crate::error::ScsiErrorKind::UnitAttention)
            && p.tries < UNIT_ATTENTION_RETRIES
        {
            // Send the same command again, with the same buffer (and data).
            let cmd = queue_command(plan, p.lba, p.blocks, direct)?;
            p.ticket = q.submit(&cmd, done.data).map_err(Error::from)?;
            p.tries += 1;
            pending.push_front(p);
            continue;
        }
        plan.check(&done.outcome)?;
        totals.add(&done.outcome);
        if plan.dir == Direction::FromDevice {
            io(Io::Got(p.lba, done.bytes()))?;
        }
        if let Some(b) = done.into_buffer() {
            if b.len() == full {
                spare.push(b);
            }
        }
    }
    totals.peak_in_flight = q.peak_in_flight();
    Ok(totals)
}

fn queue_command(plan: &Plan, lba: u64, blocks: u32, direct: bool) -> Result<Command> {
    let cmd = plan.command(lba, blocks)?;
    Ok(if direct { cmd.direct() } else { cmd })
}

fn run_pool<E: From<Error>>(
    plan: &Plan,
    mut pool: Pool,
    range: Range<u64>,
    io: &mut impl FnMut(Io<'_>) -> Result<(), E>,
) -> Result<Totals, E> {
    let full = plan.chunk_blocks as usize * plan.block;
    let mut totals = Totals::new(Mode::Mmap, full, pool.len());
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(pool.len());
    let mut next = range.start;
    // The data of a write repeated after a UNIT ATTENTION.
    let mut again: Option<(Pending, Vec<u8>)> = None;
    loop {
        if let Some((mut p, data)) = again.take() {
            let Some(mut lease) = pool.lease() else {
                return Err(plan
                    .invalid("stream", "no free buffer to repeat a command in".into())
                    .into());
            };
            let len = p.blocks as usize * plan.block;
            if let Some(buf) = lease.buffer_mut().filter(|_| data.len() == len) {
                buf[..len].copy_from_slice(&data);
            }
            p.ticket = lease.submit(&plan.command(p.lba, p.blocks)?, plan.dir, len)?;
            p.tries += 1;
            pending.push_front(p);
        }
        while pending.len() < pool.len() && next < range.end {
            let Some(mut lease) = pool.lease() else {
                break;
            };
            let blocks = plan.blocks_at(next, range.end);
            let len = blocks as usize * plan.block;
            if plan.dir == Direction::ToDevice {
                let Some(buf) = lease.buffer_mut() else {
                    return Err(plan
                        .invalid(
                            "mmap",
                            "the buffer is mapped read-only; open the device read-write to write"
                                .into(),
                        )
                        .into());
                };
                io(Io::Fill(next, &mut buf[..len]))?;
            }
            let ticket = lease.submit(&plan.command(next, blocks)?, plan.dir, len)?;
            pending.push_back(Pending {
                ticket,
                lba: next,
                blocks,
                tries: 0,
            });
            next += u64::from(blocks);
        }
        let Some(p) = pending.pop_front() else {
            break;
        };
        let done = pool.wait_for(p.ticket)?;
        let out = done.outcome();
        if out.failure_kind() == Some(crate::error::ScsiErrorKind::UnitAttention)
            && p.tries < UNIT_ATTENTION_RETRIES
        {
            // A write goes again with the same data, in whichever buffer is free.
            let len = p.blocks as usize * plan.block;
            let data = match plan.dir {
                Direction::ToDevice => done.buffer()[..len].to_vec(),
                _ => Vec::new(),
            };
            again = Some((p, data));
            continue;
        }
        plan.check(out)?;
        totals.add(out);
        if plan.dir == Direction::FromDevice {
            io(Io::Got(p.lba, done.data()))?;
        }
    }
    totals.peak_in_flight = pool.peak_in_flight();
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdb::Cdb;

    fn outcome(mode: Mode, requested: usize, fallback: Option<Fallback>) -> Outcome {
        Outcome {
            cdb: Cdb::read_10(0, 1),
            status: 0,
            host_status: 0,
            driver_status: 0,
            info: 0,
            sense: None,
            requested,
            resid: 0,
            duration: Duration::ZERO,
            requested_mode: Mode::Direct,
            mode,
            fallback,
        }
    }

    #[test]
    fn totals_record_the_least_direct_mode_and_the_first_fallback() {
        let mut t = Totals::new(Mode::Direct, 4096, 4);
        t.add(&outcome(Mode::Direct, 4096, None));
        assert_eq!((t.mode, t.bytes, t.commands), (Mode::Direct, 4096, 1));
        t.add(&outcome(Mode::Indirect, 512, Some(Fallback::Misaligned)));
        t.add(&outcome(Mode::Direct, 4096, None));
        assert_eq!(t.mode, Mode::Indirect);
        assert_eq!(t.fallback, Some(Fallback::Misaligned));
        assert_eq!((t.bytes, t.commands), (8704, 3));
    }

    #[test]
    fn options_build_and_modes_name_themselves() {
        let o = Options::new(StreamMode::Direct)
            .transfer_bytes(8192)
            .depth(3);
        assert_eq!(
            (o.mode, o.transfer_bytes, o.depth),
            (StreamMode::Direct, 8192, 3)
        );
        assert_eq!(Options::default().mode, StreamMode::Mmap);
        let names: Vec<_> = StreamMode::ALL.iter().map(|m| m.to_string()).collect();
        assert_eq!(names, ["mmap", "direct", "indirect"]);
        assert_eq!(StreamMode::Indirect.mode(), Mode::Indirect);
    }
}
