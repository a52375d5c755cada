//! Typed helpers for the common commands: readiness, INQUIRY, READ CAPACITY,
//! and block reads and writes in each transfer mode.

use std::time::Duration;

use crate::cdb::{self, Cdb};
use crate::command::{Command, Data, Direction};
use crate::device::Device;
use crate::error::{Error, Incomplete, Result};
use crate::mmap::MappedDevice;
use crate::outcome::{Fallback, Mode, Outcome};
use crate::response::{Capacity, Inquiry, ResponseError};

/// How many times the typed helpers repeat a command that got UNIT ATTENTION
/// (power on, reset, parameters changed) before giving up.
pub const UNIT_ATTENTION_RETRIES: u32 = 3;

/// Caller-buffer transfer modes for [`Device::read_blocks`] and
/// [`Device::write_blocks`] (mmap-ed IO lives on [`MappedDevice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BufferMode {
    /// The kernel copies through its own buffers.
    #[default]
    Indirect,
    /// Ask for direct IO into the caller's pages (use a [`DirectBuf`](crate::DirectBuf)).
    Direct,
}

/// What to do with a transfer longer than one command can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Split {
    /// Split it into several commands of at most [`Device::max_transfer`] bytes.
    #[default]
    Allow,
    /// Refuse it with [`Error::InvalidRequest`], before anything is sent.
    Refuse,
}

/// Options of a block transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockIo {
    /// Indirect or direct.
    pub mode: BufferMode,
    /// Splitting policy.
    pub split: Split,
    /// Timeout of each command.
    pub timeout: Duration,
}

impl Default for BlockIo {
    fn default() -> Self {
        Self {
            mode: BufferMode::Indirect,
            split: Split::Allow,
            timeout: crate::DEFAULT_TIMEOUT,
        }
    }
}

impl BlockIo {
    /// Indirect IO, splitting allowed.
    pub fn indirect() -> Self {
        Self::default()
    }

    /// Direct IO, splitting allowed.
    pub fn direct() -> Self {
        Self {
            mode: BufferMode::Direct,
            ..Self::default()
        }
    }

    /// Sets the splitting policy.
    pub fn split(mut self, split: Split) -> Self {
        self.split = split;
        self
    }

    /// Sets the per-command timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What a block transfer did, across all its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Bytes moved.
    pub bytes: usize,
    /// Commands sent.
    pub commands: usize,
    /// The mode that really ran; if commands differed, the least direct one.
    pub mode: Mode,
    /// Why direct IO fell back, when it did.
    pub fallback: Option<Fallback>,
}

/// Runs `f` again while it fails with UNIT ATTENTION, at most `UNIT_ATTENTION_RETRIES` times.
fn retry_unit_attention<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e) if e.is_unit_attention() && tries < UNIT_ATTENTION_RETRIES => tries += 1,
            other => return other,
        }
    }
}

impl Device {
    fn response_error(&self, command: &str, source: ResponseError) -> Error {
        Error::Response {
            device: self.path().to_path_buf(),
            command: command.into(),
            source,
        }
    }

    /// TEST UNIT READY, once: `Ok` when the device is ready. A UNIT ATTENTION
    /// comes back as an error ([`Error::is_unit_attention`]).
    pub fn test_unit_ready(&self) -> Result<()> {
        self.execute(&Command::new(Cdb::test_unit_ready()), Data::None)?
            .check(self.path())?;
        Ok(())
    }

    /// TEST UNIT READY until the device answers GOOD, passing over the UNIT
    /// ATTENTIONs a device reports after power on or reset.
    pub fn wait_ready(&self) -> Result<()> {
        retry_unit_attention(|| self.test_unit_ready())
    }

    /// Standard INQUIRY data: type, vendor, product, revision.
    pub fn inquiry(&self) -> Result<Inquiry> {
        let mut buf = [0u8; 96];
        let out = retry_unit_attention(|| {
            self.execute(&Command::new(Cdb::inquiry(96)), Data::FromDevice(&mut buf))?
                .check(self.path())
        })?;
        Inquiry::parse(&buf[..out.transferred()]).map_err(|e| self.response_error("INQUIRY", e))
    }

    /// A VPD page's bytes (INQUIRY with EVPD), as many as the device returned.
    pub fn inquiry_vpd(&self, page: u8) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; 4096];
        let out = retry_unit_attention(|| {
            self.execute(
                &Command::new(Cdb::inquiry_vpd(page, 4096)),
                Data::FromDevice(&mut buf),
            )?
            .check(self.path())
        })?;
        buf.truncate(out.transferred());
        Ok(buf)
    }

    /// The capacity: READ CAPACITY(10), and (16) when the device is too large
    /// for it. Remembers the block size for [`read_blocks`](Self::read_blocks).
    pub fn read_capacity(&self) -> Result<Capacity> {
        let mut b10 = [0u8; Capacity::LEN_10];
        let out = retry_unit_attention(|| {
            self.execute(
                &Command::new(Cdb::read_capacity_10()),
                Data::FromDevice(&mut b10),
            )?
            .check(self.path())
        })?;
        let cap = match Capacity::parse_10(&b10[..out.transferred()]) {
            Err(ResponseError::NeedsReadCapacity16 { .. }) => {
                let mut b16 = [0u8; Capacity::LEN_16];
                let out = retry_unit_attention(|| {
                    let cdb = Cdb::read_capacity_16(Capacity::LEN_16 as u32);
                    self.execute(&Command::new(cdb), Data::FromDevice(&mut b16))?
                        .check(self.path())
                })?;
                Capacity::parse_16(&b16[..out.transferred()])
                    .map_err(|e| self.response_error("READ CAPACITY(16)", e))?
            }
            other => other.map_err(|e| self.response_error("READ CAPACITY(10)", e))?,
        };
        let _ = self.cached_block_size().set(cap.block_size);
        Ok(cap)
    }

    /// The logical block size, from READ CAPACITY on first use.
    pub fn block_size(&self) -> Result<u32> {
        if let Some(b) = self.cached_block_size().get() {
            return Ok(*b);
        }
        Ok(self.read_capacity()?.block_size)
    }

    /// SYNCHRONIZE CACHE(10) of the whole device.
    pub fn synchronize_cache(&self) -> Result<()> {
        retry_unit_attention(|| {
            self.execute(&Command::new(Cdb::synchronize_cache_10(0, 0)), Data::None)?
                .check(self.path())
        })?;
        Ok(())
    }

    /// Reads `buf.len()` bytes (a whole number of blocks) starting at `lba`.
    ///
    /// A transfer longer than one command is split (unless `io.split` says
    /// [`Split::Refuse`]). A command that moves less than asked fails the
    /// transfer with [`Error::ShortTransfer`]: the rest of the buffer holds
    /// no device data. When a command fails or falls short after earlier
    /// ones moved their data, the error is [`Error::Incomplete`], with that
    /// failure under it. Either way [`Error::progress`] says how many bytes
    /// (from the start of `buf`) really came from the device and how many
    /// commands were sent.
    pub fn read_blocks(&self, lba: u64, buf: &mut [u8], io: BlockIo) -> Result<Transfer> {
        let len = buf.len();
        let block = self.block_size()? as usize;
        let chunk = self.chunk_len(buf.len(), block, io.split, "READ")?;
        // The whole range first: no command goes out for a range that wraps.
        cdb::check_range(lba, (len / block) as u64)?;
        let mut t = Transfer::new(io.mode);
        for (i, piece) in buf.chunks_mut(chunk).enumerate() {
            let start = block_at(lba, i, chunk, block)?;
            let cdb = Cdb::read(start, (piece.len() / block) as u32)?;
            let cmd = command(cdb, io);
            let out = retry_unit_attention(|| {
                self.execute(&cmd, Data::FromDevice(&mut *piece))?
                    .check(self.path())
            })
            .map_err(|e| self.stopped("READ", len, t, e))?;
            t.add(&out);
            if out.resid != 0 {
                return Err(self.stopped("READ", len, t, self.short(&out)));
            }
        }
        Ok(t)
    }

    /// Writes `buf` (a whole number of blocks) starting at `lba`.
    ///
    /// Splitting and failures as for [`read_blocks`](Self::read_blocks): a
    /// failure after part of the data was written is [`Error::Incomplete`],
    /// whose [`progress`](Error::progress) says how far the device got.
    pub fn write_blocks(&self, lba: u64, buf: &[u8], io: BlockIo) -> Result<Transfer> {
        let len = buf.len();
        let block = self.block_size()? as usize;
        let chunk = self.chunk_len(buf.len(), block, io.split, "WRITE")?;
        // The whole range first: no command goes out for a range that wraps.
        cdb::check_range(lba, (len / block) as u64)?;
        let mut t = Transfer::new(io.mode);
        for (i, piece) in buf.chunks(chunk).enumerate() {
            let start = block_at(lba, i, chunk, block)?;
            let cdb = Cdb::write(start, (piece.len() / block) as u32)?;
            let cmd = command(cdb, io);
            let out = retry_unit_attention(|| {
                self.execute(&cmd, Data::ToDevice(piece))?
                    .check(self.path())
            })
            .map_err(|e| self.stopped("WRITE", len, t, e))?;
            t.add(&out);
            if out.resid != 0 {
                return Err(self.stopped("WRITE", len, t, self.short(&out)));
            }
        }
        Ok(t)
    }

    fn short(&self, out: &Outcome) -> Error {
        Error::ShortTransfer {
            device: self.path().to_path_buf(),
            outcome: Box::new(out.clone()),
        }
    }

    /// The error of a block transfer of `requested` bytes that stopped with
    /// `cause` after doing `done`: [`Error::Incomplete`] when earlier
    /// commands had moved data, else the cause itself (a first command that
    /// falls short is its own [`Error::ShortTransfer`], with its progress). A
    /// command that ran and failed counts as sent, and its data as not moved.
    fn stopped(&self, what: &str, requested: usize, done: Transfer, cause: Error) -> Error {
        let mut done = done;
        if matches!(cause, Error::Scsi(_)) {
            done.commands += 1;
        }
        if done.bytes == 0 || done.commands < 2 {
            return cause;
        }
        let command = cause
            .outcome()
            .map_or(what, |o| o.command_name())
            .to_string();
        Error::Incomplete(Box::new(Incomplete {
            device: self.path().to_path_buf(),
            command,
            requested,
            done,
            cause,
        }))
    }

    /// The per-command length for a transfer of `len` bytes.
    fn chunk_len(&self, len: usize, block: usize, split: Split, what: &str) -> Result<usize> {
        if len == 0 || len % block != 0 {
            return Err(self.fd().invalid(
                what,
                format!("{len} bytes is not a whole, non-zero number of {block}-byte blocks"),
            ));
        }
        let max = self.max_transfer() / block * block;
        if len <= max {
            return Ok(len);
        }
        match split {
            Split::Allow if max > 0 => Ok(max),
            _ => Err(self.fd().invalid(
                what,
                format!(
                    "{len} bytes is more than the device takes in one command ({} bytes); \
                     allow splitting (Split::Allow) or transfer less",
                    self.max_transfer()
                ),
            )),
        }
    }
}

/// The first LBA of piece `i` (of `chunk` bytes each) of a transfer at
/// `lba`, in checked arithmetic.
fn block_at(lba: u64, i: usize, chunk: usize, block: usize) -> Result<u64> {
    let blocks = i
        .checked_mul(chunk / block)
        .and_then(|b| u64::try_from(b).ok());
    blocks.and_then(|b| lba.checked_add(b)).ok_or_else(|| {
        cdb::CdbError::RangeWraps {
            lba,
            blocks: blocks.unwrap_or(u64::MAX),
        }
        .into()
    })
}

fn command(cdb: Cdb, io: BlockIo) -> Command {
    let cmd = Command::new(cdb).timeout(io.timeout);
    match io.mode {
        BufferMode::Direct => cmd.direct(),
        BufferMode::Indirect => cmd,
    }
}

impl Transfer {
    fn new(mode: BufferMode) -> Self {
        Self::empty(match mode {
            BufferMode::Direct => Mode::Direct,
            BufferMode::Indirect => Mode::Indirect,
        })
    }

    /// Nothing done yet, in `mode`.
    pub(crate) fn empty(mode: Mode) -> Self {
        Self {
            bytes: 0,
            commands: 0,
            mode,
            fallback: None,
        }
    }

    /// Counts one more command that ran, and the bytes it really moved.
    pub(crate) fn add(&mut self, out: &Outcome) {
        self.bytes += out.transferred();
        self.commands += 1;
        self.mode = self.mode.least_direct(out.mode);
        self.fallback = self.fallback.or(out.fallback);
    }
}

impl MappedDevice {
    /// Reads `blocks` blocks at `lba` into the mapped buffer with mmap-ed IO
    /// and returns the bytes read. Refuses (before sending anything) a read
    /// that does not fit the buffer. Sends nothing but the READ itself: the
    /// block size comes from [`MappedDevice::block_size`].
    pub fn read_blocks(&mut self, lba: u64, blocks: u32) -> Result<&[u8]> {
        let out = self.block_command(lba, blocks, Direction::FromDevice)?;
        Ok(&self.as_slice()[..out.transferred()])
    }

    /// Writes `blocks` blocks at `lba` from the start of the mapped buffer
    /// (fill it first with [`as_mut_slice`](Self::as_mut_slice)).
    pub fn write_blocks(&mut self, lba: u64, blocks: u32) -> Result<Outcome> {
        self.block_command(lba, blocks, Direction::ToDevice)
    }

    /// The block size, never asked for on this fd: READ CAPACITY here would
    /// move its data through the reserved buffer, over bytes the caller may
    /// have filled for the next write. It was learnt when mapping.
    fn block_len(&self) -> Result<usize> {
        Ok(self.block_size()? as usize)
    }

    fn block_command(&mut self, lba: u64, blocks: u32, dir: Direction) -> Result<Outcome> {
        let block = self.block_len()?;
        let len = usize::try_from(blocks)
            .ok()
            .and_then(|b| b.checked_mul(block))
            .ok_or_else(|| Error::InvalidRequest {
                device: self.path().to_path_buf(),
                command: if dir == Direction::ToDevice {
                    "WRITE"
                } else {
                    "READ"
                }
                .into(),
                reason: format!(
                    "{blocks} blocks of {block} bytes are more bytes than memory can address; \
                     transfer at most the mapped buffer's {} bytes per command",
                    self.len()
                ),
            })?;
        let cdb = match dir {
            Direction::ToDevice => Cdb::write(lba, blocks)?,
            _ => Cdb::read(lba, blocks)?,
        };
        let path = self.path().to_path_buf();
        let cmd = Command::new(cdb);
        let out = retry_unit_attention(|| self.execute(&cmd, dir, len)?.check(&path))?;
        if out.resid != 0 {
            return Err(self.device().short(&out));
        }
        Ok(out)
    }
}
