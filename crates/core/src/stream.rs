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
//! [`read_extents()`] and [`write_extents()`] take any sequence of extents
//! (ranges of LBAs) instead of one range, and an [`Until`] that ends the run
//! after a number of commands or bytes or at a deadline: cycling over a few
//! blocks for ten seconds keeps `depth` commands in flight across every
//! wrap-around. [`Transfers`] is the sequence of transfers such a run makes,
//! for callers that drive commands themselves.
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
use std::time::{Duration, Instant};

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

/// When a stream over [`read_extents()`] or [`write_extents()`] (or a
/// [`Transfers`] sequence) ends, besides running out of extents: after a
/// number of commands, after a number of bytes, or at a deadline, whichever
/// comes first. [`Until::none()`] (the default) sets no limit.
///
/// A deadline stops new commands only: those already in flight finish and
/// are delivered, and no transfer is cut short by the clock. A byte limit
/// shortens the last transfer to end on it (rounded down to whole blocks).
///
/// ```
/// use std::time::Duration;
/// use sgmap::stream::Until;
///
/// // Ten seconds, or 1 GiB, whichever comes first.
/// let until = Until::none().runtime(Duration::from_secs(10)).bytes(1 << 30);
/// assert_eq!(until.runtime_limit(), Some(Duration::from_secs(10)));
/// assert_eq!(until.byte_limit(), Some(1 << 30));
/// assert!(until.is_limited());
/// assert!(!Until::none().is_limited());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Until {
    commands: Option<u64>,
    bytes: Option<u64>,
    runtime: Option<Duration>,
    deadline: Option<Instant>,
}

impl Until {
    /// No limit: the run ends when the extents do (or never, for an endless
    /// sequence of extents, until a callback returns an error).
    pub const fn none() -> Self {
        Until {
            commands: None,
            bytes: None,
            runtime: None,
            deadline: None,
        }
    }

    /// Ends after `n` commands (the lowest of the limits set counts).
    pub fn commands(mut self, n: u64) -> Self {
        self.commands = Some(self.commands.map_or(n, |m| m.min(n)));
        self
    }

    /// Ends after `n` bytes, rounded down to whole blocks; the last transfer
    /// is shortened to end there.
    pub fn bytes(mut self, n: u64) -> Self {
        self.bytes = Some(self.bytes.map_or(n, |m| m.min(n)));
        self
    }

    /// Submits no command once `runtime` has passed since the first transfer
    /// was asked for (after the stream's setup: opening fds, mapping
    /// buffers); the commands in flight then finish.
    pub fn runtime(mut self, runtime: Duration) -> Self {
        self.runtime = Some(self.runtime.map_or(runtime, |r| r.min(runtime)));
        self
    }

    /// Submits no command at or after `deadline`; the commands in flight
    /// then finish.
    pub fn deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        self
    }

    /// The command limit, if any.
    pub fn command_limit(&self) -> Option<u64> {
        self.commands
    }

    /// The byte limit, if any.
    pub fn byte_limit(&self) -> Option<u64> {
        self.bytes
    }

    /// The runtime limit, if any.
    pub fn runtime_limit(&self) -> Option<Duration> {
        self.runtime
    }

    /// The deadline, if any.
    pub fn deadline_limit(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether any limit is set (by time or amount).
    pub fn is_limited(&self) -> bool {
        self.commands.is_some()
            || self.bytes.is_some()
            || self.runtime.is_some()
            || self.deadline.is_some()
    }

    /// Whether a clock limit (runtime or deadline) is set.
    pub fn is_time_based(&self) -> bool {
        self.runtime.is_some() || self.deadline.is_some()
    }
}

/// The transfers a stream makes: each extent (a range of LBAs, end
/// exclusive) in turn, cut into transfers of at most `transfer_blocks`
/// blocks (the last of an extent may be shorter), until the extents run out
/// or the [`Until`] says stop. Yields `(lba, blocks)`; empty extents are
/// skipped.
///
/// The engine of [`read_extents()`] and [`write_extents()`] walks one of
/// these; it is public for callers that send the commands themselves (a
/// [`Pool`], a [`Queue`], a ring) and want the same sequence. The clock of
/// a runtime limit starts at the first call of `next`, and is read once per
/// transfer only when a clock limit is set.
///
/// ```
/// use sgmap::stream::{Transfers, Until};
///
/// // Cycle over 24 blocks in transfers of 16, for five transfers.
/// let t = Transfers::new(std::iter::repeat(100..124), 16, 512, Until::none().commands(5));
/// let got: Vec<(u64, u32)> = t.collect();
/// assert_eq!(got, [(100, 16), (116, 8), (100, 16), (116, 8), (100, 16)]);
/// ```
#[derive(Debug, Clone)]
pub struct Transfers<I> {
    extents: I,
    current: Range<u64>,
    chunk: u64,
    commands_left: Option<u64>,
    blocks_left: Option<u64>,
    runtime: Option<Duration>,
    deadline: Option<Instant>,
    started: bool,
    done: bool,
    timed_out: bool,
    commands: u64,
    blocks: u64,
}

impl<I: Iterator<Item = Range<u64>>> Transfers<I> {
    /// The transfers of at most `transfer_blocks` blocks (0 counts as 1) over
    /// `extents`, on a device of `block_size`-byte blocks (for the byte
    /// limit of `until`).
    pub fn new(
        extents: impl IntoIterator<IntoIter = I>,
        transfer_blocks: u32,
        block_size: usize,
        until: Until,
    ) -> Self {
        let block = block_size.max(1) as u64;
        Transfers {
            extents: extents.into_iter(),
            current: 0..0,
            chunk: u64::from(transfer_blocks.max(1)),
            commands_left: until.commands,
            blocks_left: until.bytes.map(|b| b / block),
            runtime: until.runtime,
            deadline: until.deadline,
            started: false,
            done: false,
            timed_out: false,
            commands: 0,
            blocks: 0,
        }
    }

    /// Transfers handed out so far.
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// Blocks handed out so far.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// Whether the sequence ended because its time was up.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    /// Whether the time is up (and marks the sequence done if so).
    fn out_of_time(&mut self) -> bool {
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                self.timed_out = true;
                self.done = true;
                return true;
            }
        }
        false
    }
}

impl<I: Iterator<Item = Range<u64>>> Iterator for Transfers<I> {
    type Item = (u64, u32);

    fn next(&mut self) -> Option<(u64, u32)> {
        if self.done {
            return None;
        }
        if !self.started {
            self.started = true;
            if let Some(r) = self.runtime {
                // A runtime too long for the clock is no limit.
                if let Some(d) = Instant::now().checked_add(r) {
                    self.deadline = Some(self.deadline.map_or(d, |e| e.min(d)));
                }
            }
        }
        if self.commands_left == Some(0) || self.blocks_left == Some(0) {
            self.done = true;
            return None;
        }
        if self.out_of_time() {
            return None;
        }
        while self.current.start >= self.current.end {
            match self.extents.next() {
                Some(r) => self.current = r,
                None => {
                    self.done = true;
                    return None;
                }
            }
            // Endless empty extents still end at the deadline.
            if self.current.start >= self.current.end && self.out_of_time() {
                return None;
            }
        }
        let mut n = (self.current.end - self.current.start).min(self.chunk);
        if let Some(left) = self.blocks_left.as_mut() {
            n = n.min(*left);
            *left -= n;
        }
        if let Some(left) = self.commands_left.as_mut() {
            *left -= 1;
        }
        let lba = self.current.start;
        self.current.start += n;
        self.commands += 1;
        self.blocks += n;
        // n <= chunk, which came from a u32.
        Some((lba, n as u32))
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
    sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<Totals, E> {
    let one = Walk::Once(blocks);
    run(
        device.as_ref(),
        one,
        opts,
        Direction::FromDevice,
        reader(sink),
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
    source: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
) -> Result<Totals, E> {
    let one = Walk::Once(blocks);
    run(
        device.as_ref(),
        one,
        opts,
        Direction::ToDevice,
        writer(source),
    )
}

/// Reads the extents `extents` (ranges of LBAs, end exclusive, one after the
/// other, as [`Transfers`] cuts them) of `device` until they run out or
/// `until` says stop, and calls `sink(lba, data)` for each transfer in the
/// order of the extents, with `opts.depth` commands in flight all the time:
/// across the end of one extent and the start of the next too, so an
/// endless `std::iter::repeat(range)` cycles over `range` with the pipeline
/// full. With a deadline, the commands in flight when it passes finish and
/// are delivered; none is cut short.
///
/// Errors as [`read()`]; an extent that does not lie within the device is
/// refused (an [`Error::InvalidRequest`]) when the stream reaches it, after
/// the transfers before it were delivered.
///
/// ```no_run
/// use std::time::Duration;
/// use sgmap::stream::{self, Options, StreamMode, Until};
///
/// // Re-read the same 64 KiB with 16 commands in flight for ten seconds.
/// let opts = Options::new(StreamMode::Direct).transfer_bytes(64 * 1024).depth(16);
/// let until = Until::none().runtime(Duration::from_secs(10));
/// let totals = stream::read_extents(
///     "/dev/sg0",
///     std::iter::repeat(0..128),
///     opts,
///     until,
///     |_lba, _data: &[u8]| Ok::<_, sgmap::Error>(()),
/// )?;
/// println!("{} commands, at most {} in flight", totals.commands, totals.peak_in_flight);
/// # Ok::<(), sgmap::Error>(())
/// ```
pub fn read_extents<E: From<Error>>(
    device: impl AsRef<Path>,
    extents: impl IntoIterator<Item = Range<u64>>,
    opts: Options,
    until: Until,
    sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<Totals, E> {
    let walk = Walk::Many(Box::new(extents.into_iter()), until);
    run(
        device.as_ref(),
        walk,
        opts,
        Direction::FromDevice,
        reader(sink),
    )
}

/// Writes the extents `extents` of `device` until they run out or `until`
/// says stop, calling `source(lba, buf)` in the order of the extents to
/// fill each transfer just before it is sent; `opts.depth` commands stay in
/// flight across extents, as in [`read_extents()`].
///
/// ```no_run
/// use std::time::Duration;
/// use sgmap::stream::{self, Options, StreamMode, Until};
///
/// // Rewrite 1 MiB of zeros over and over for half a second, or 64 MiB.
/// let opts = Options::new(StreamMode::Mmap).transfer_bytes(256 * 1024).depth(8);
/// let until = Until::none().runtime(Duration::from_millis(500)).bytes(64 << 20);
/// let totals = stream::write_extents(
///     "/dev/sg0",
///     std::iter::repeat(0..2048),
///     opts,
///     until,
///     |_lba, buf: &mut [u8]| {
///         buf.fill(0);
///         Ok::<_, sgmap::Error>(())
///     },
/// )?;
/// println!("{} bytes in {} commands", totals.bytes, totals.commands);
/// # Ok::<(), sgmap::Error>(())
/// ```
pub fn write_extents<E: From<Error>>(
    device: impl AsRef<Path>,
    extents: impl IntoIterator<Item = Range<u64>>,
    opts: Options,
    until: Until,
    source: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
) -> Result<Totals, E> {
    let walk = Walk::Many(Box::new(extents.into_iter()), until);
    run(
        device.as_ref(),
        walk,
        opts,
        Direction::ToDevice,
        writer(source),
    )
}

fn reader<E>(
    mut sink: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> impl FnMut(Io<'_>) -> Result<(), E> {
    move |io| match io {
        Io::Got(lba, data) => sink(lba, data),
        Io::Fill(..) => Ok(()),
    }
}

fn writer<E>(
    mut source: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
) -> impl FnMut(Io<'_>) -> Result<(), E> {
    move |io| match io {
        Io::Fill(lba, buf) => source(lba, buf),
        Io::Got(..) => Ok(()),
    }
}

/// What a stream walks: one range (checked whole before any IO), or
/// extents with limits.
enum Walk<'a> {
    Once(Range<u64>),
    Many(Box<dyn Iterator<Item = Range<u64>> + 'a>, Until),
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

/// The transfers an engine walks.
type Steps<'a> = Transfers<Box<dyn Iterator<Item = Range<u64>> + 'a>>;

/// The checked plan of a stream.
#[derive(Debug)]
struct Plan {
    path: PathBuf,
    block: usize,
    chunk_blocks: u64,
    depth: usize,
    dir: Direction,
    timeout: Duration,
    device_blocks: u64,
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

    /// The transfers of `walk`, in this plan's transfer size.
    fn transfers<'a>(&self, walk: Walk<'a>) -> Steps<'a> {
        // chunk_blocks fits a u32: it comes from a transfer length < 4 GiB.
        let chunk = self.chunk_blocks as u32;
        match walk {
            Walk::Once(r) => Transfers::new(
                Box::new(std::iter::once(r)) as Box<dyn Iterator<Item = Range<u64>>>,
                chunk,
                self.block,
                Until::none(),
            ),
            Walk::Many(extents, until) => Transfers::new(extents, chunk, self.block, until),
        }
    }

    /// The next transfer of `steps`, refused when it leaves the device.
    fn next(&self, steps: &mut Steps<'_>) -> Result<Option<(u64, u32)>> {
        let Some((lba, blocks)) = steps.next() else {
            return Ok(None);
        };
        match lba.checked_add(u64::from(blocks)) {
            Some(end) if end <= self.device_blocks => Ok(Some((lba, blocks))),
            _ => Err(self.invalid(
                "stream",
                format!(
                    "a transfer of {blocks} blocks at LBA {lba} is not within the device's {} blocks; \
                     give extents that end by LBA {}",
                    self.device_blocks, self.device_blocks
                ),
            )),
        }
    }
}

fn run<E: From<Error>>(
    path: &Path,
    walk: Walk<'_>,
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
    if let Walk::Once(range) = &walk {
        if range.start > range.end || range.end > cap.blocks {
            return Err(invalid(format!(
                "blocks {}..{} are not a range within the device's {} blocks",
                range.start, range.end, cap.blocks
            ))
            .into());
        }
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
        device_blocks: cap.blocks,
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
            let mut walk = plan.transfers(walk);
            run_pool(&plan, pool, &mut walk, &mut io)
        }
        mode => {
            plan.depth = plan.depth.min(MAX_IN_FLIGHT);
            let direct = mode == StreamMode::Direct;
            let mut walk = plan.transfers(walk);
            run_queue(&plan, Queue::new(dev)?, direct, &mut walk, &mut io)
        }
    }
}

fn run_queue<E: From<Error>>(
    plan: &Plan,
    mut q: Queue,
    direct: bool,
    walk: &mut Steps<'_>,
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
    // A transfer refused before it was sent: reported once those before it
    // were delivered.
    let mut refused: Option<Error> = None;
    loop {
        while refused.is_none() && pending.len() < plan.depth {
            let (next, blocks) = match plan.next(walk) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            };
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
    if let Some(e) = refused {
        return Err(e.into());
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
    walk: &mut Steps<'_>,
    io: &mut impl FnMut(Io<'_>) -> Result<(), E>,
) -> Result<Totals, E> {
    let full = plan.chunk_blocks as usize * plan.block;
    let mut totals = Totals::new(Mode::Mmap, full, pool.len());
    let mut pending: VecDeque<Pending> = VecDeque::with_capacity(pool.len());
    // The data of a write repeated after a UNIT ATTENTION.
    let mut again: Option<(Pending, Vec<u8>)> = None;
    // A transfer refused before it was sent: reported once those before it
    // were delivered.
    let mut refused: Option<Error> = None;
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
        while refused.is_none() && pending.len() < pool.len() {
            let Some(mut lease) = pool.lease() else {
                break;
            };
            let (next, blocks) = match plan.next(walk) {
                Ok(Some(t)) => t,
                Ok(None) => break,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            };
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
    if let Some(e) = refused {
        return Err(e.into());
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

    fn all<I: Iterator<Item = Range<u64>>>(t: Transfers<I>) -> Vec<(u64, u32)> {
        t.collect()
    }

    #[test]
    fn transfers_cut_each_extent_and_keep_going_across_them() {
        let t = Transfers::new([0..10, 10..10, 40..43], 4, 512, Until::none());
        assert_eq!(all(t), [(0, 4), (4, 4), (8, 2), (40, 3)]);
        // One range, as read() walks it; an empty one gives nothing.
        assert_eq!(
            all(Transfers::new(std::iter::once(5..5), 8, 512, Until::none())),
            []
        );
        // A transfer size of 0 counts as one block.
        assert_eq!(
            all(Transfers::new(std::iter::once(0..2), 0, 512, Until::none())),
            [(0, 1), (1, 1)]
        );
    }

    #[test]
    fn a_cycle_wraps_with_the_same_lbas_each_pass() {
        // A span of one transfer: the same blocks every time.
        let same = Transfers::new(
            std::iter::repeat(64..80),
            16,
            512,
            Until::none().commands(4),
        );
        assert_eq!(all(same), [(64, 16); 4]);
        // A span that is not whole transfers: the last of each pass is short.
        let mut t = Transfers::new(std::iter::repeat(0..10), 4, 512, Until::none().commands(7));
        let got: Vec<_> = t.by_ref().collect();
        assert_eq!(
            got,
            [(0, 4), (4, 4), (8, 2), (0, 4), (4, 4), (8, 2), (0, 4)]
        );
        assert_eq!((t.commands(), t.blocks(), t.timed_out()), (7, 24, false));
        // Done stays done.
        assert_eq!(t.next(), None);
    }

    #[test]
    fn a_byte_limit_shortens_the_last_transfer_to_whole_blocks() {
        let until = Until::none().bytes(5 * 512 + 100);
        let t = Transfers::new(std::iter::repeat(0..3), 2, 512, until);
        assert_eq!(all(t), [(0, 2), (2, 1), (0, 2)]);
        // The lower of two limits counts, whichever kind.
        let until = Until::none().bytes(1 << 20).commands(9).commands(2);
        assert_eq!(until.command_limit(), Some(2));
        assert_eq!(
            all(Transfers::new(std::iter::repeat(0..8), 8, 4096, until)),
            [(0, 8), (0, 8)]
        );
        let until = Until::none().commands(100).bytes(4096 * 3);
        assert_eq!(
            all(Transfers::new(std::iter::repeat(0..8), 2, 4096, until)),
            [(0, 2), (2, 1)]
        );
        // Less than a block moves nothing.
        let until = Until::none().bytes(100);
        assert_eq!(
            all(Transfers::new(std::iter::once(0..8), 2, 512, until)),
            []
        );
    }

    #[test]
    fn a_deadline_stops_the_sequence_and_says_so() {
        let past = Instant::now();
        let mut t = Transfers::new(
            std::iter::repeat(0..8),
            4,
            512,
            Until::none().deadline(past),
        );
        assert_eq!(t.next(), None);
        assert!(t.timed_out());
        // Endless empty extents still end at the deadline.
        let mut empty = Transfers::new(
            std::iter::repeat(3..3),
            4,
            512,
            Until::none().runtime(Duration::from_millis(20)),
        );
        assert_eq!(empty.next(), None);
        assert!(empty.timed_out());
        // A runtime counts from the first transfer asked for, and an endless
        // cycle really ends once it has passed.
        let runtime = Duration::from_millis(30);
        let t = Transfers::new(
            std::iter::repeat(0..8),
            8,
            512,
            Until::none().runtime(runtime),
        );
        std::thread::sleep(Duration::from_millis(40));
        let t0 = Instant::now();
        let mut t = t;
        let mut n = 0u64;
        while t.next().is_some() {
            n += 1;
        }
        assert!(t0.elapsed() >= runtime, "ended before its time");
        assert!(n > 1 && t.timed_out() && t.commands() == n);
        // A runtime too long for the clock is no limit.
        let long = Until::none().runtime(Duration::MAX).commands(3);
        assert_eq!(
            all(Transfers::new(std::iter::repeat(0..1), 1, 512, long)).len(),
            3
        );
    }

    #[test]
    fn until_records_its_limits() {
        let d = Instant::now() + Duration::from_secs(5);
        let u = Until::none()
            .runtime(Duration::from_secs(9))
            .runtime(Duration::from_secs(3))
            .deadline(d);
        assert_eq!(u.runtime_limit(), Some(Duration::from_secs(3)));
        assert_eq!(u.deadline_limit(), Some(d));
        assert!(u.is_time_based() && u.is_limited());
        assert_eq!(Until::default(), Until::none());
        assert!(!Until::none().bytes(1).is_time_based());
    }
}
