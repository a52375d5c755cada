//! Zero-copy commands in flight: a pool of fds on one device, each with its
//! own mmap-ed reserved buffer.
//!
//! The sg driver gives each fd one reserved buffer, and at most one mmap-ed
//! request uses it at a time. So N commands in flight without a copy need N
//! fds: a [`Pool`] opens them, maps each buffer, and runs commands through
//! the asynchronous `write()`/`read()` interface with `SG_FLAG_MMAP_IO` and
//! `dxferp = NULL`.
//!
//! The rules, and how the types keep them:
//! - A pool fd carries only mmap-ed commands, one at a time. The driver lends
//!   the reserved buffer to an indirect request that fits it, after which an
//!   mmap-ed request on that fd fails with EBUSY; a pool never sends one, so
//!   that cannot happen. (Use a [`Queue`](crate::Queue) on another fd for
//!   indirect and direct IO.)
//! - A buffer is either free ([`Pool::lease`] lends it for filling, then
//!   [`Lease::submit`] sends it), in flight (nobody can reach it), or holding
//!   a completion ([`PoolCompletion`] lends its bytes and frees the buffer
//!   when dropped).
//! - Dropping the pool collects every command still in flight first.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::PollFlags;

use crate::cdb::Cdb;
use crate::command::{Command, Direction};
use crate::device::{Device, RequestInfo};
use crate::error::{Error, Result, ScsiError};
use crate::io::{finish, prepare, read_raw, submit_raw, SENSE_LEN};
use crate::mmap::MappedDevice;
use crate::outcome::{command_name, Mode, Outcome};
use crate::queue::{poll_until, Ticket};

/// A command in flight on one pool fd.
#[derive(Debug, Clone, Copy)]
struct Flight {
    ticket: Ticket,
    cdb: Cdb,
    len: usize,
}

#[derive(Debug)]
enum State {
    /// Free for a lease.
    Idle,
    /// Submitted; the kernel owns the buffer.
    InFlight(Flight),
    /// Collected, waiting to be handed out.
    Done(Flight, Box<Outcome>),
    /// Handed out in a [`PoolCompletion`].
    Lent,
}

#[derive(Debug)]
struct Slot {
    mapped: MappedDevice,
    state: State,
}

/// N fds on a device, each with its mapped reserved buffer: N mmap-ed
/// (zero-copy) commands in flight at once.
///
/// ```no_run
/// use sgmap::{cdb::Cdb, Command, Direction, Pool};
///
/// // Eight fds, each with a 256 KiB mapped buffer (the kernel may grant less).
/// let mut pool = Pool::open("/dev/sg0", 8, 256 * 1024)?;
/// let blocks = (pool.buffer_len() / 512) as u32;
/// let mut lba = 0;
/// // Keep every buffer busy...
/// while let Some(lease) = pool.lease() {
///     let cmd = Command::new(Cdb::read(lba, blocks)?);
///     lease.submit(&cmd, Direction::FromDevice, blocks as usize * 512)?;
///     lba += u64::from(blocks);
/// }
/// // ...and take each completion's bytes straight from its mapped buffer.
/// while pool.pending() > 0 {
///     let done = pool.wait()?;
///     done.check()?;
///     println!("{}: {} bytes, first {:02x?}", done.ticket(), done.data().len(), &done.data()[..4]);
/// } // dropping `done` frees its buffer for the next lease
/// # Ok::<(), sgmap::Error>(())
/// ```
///
/// A completion lends the buffer: nothing can be submitted into it (or any
/// other) until it is dropped.
///
/// ```compile_fail,E0499
/// let mut pool = sgmap::Pool::open("/dev/sg0", 2, 65536).unwrap();
/// let done = pool.wait().unwrap();
/// let lease = pool.lease(); // error: `pool` is borrowed by `done`
/// let _ = done.data();
/// ```
#[derive(Debug)]
pub struct Pool {
    slots: Vec<Slot>,
    /// Sense buffers, one per slot; allocated once, never resized.
    sense: Vec<[u8; SENSE_LEN]>,
    free: Vec<usize>,
    ready: VecDeque<usize>,
    next_ticket: u64,
    buffer_len: usize,
    peak: usize,
}

impl Pool {
    /// Opens `path` `fds` times, read-write, and maps a reserved buffer of
    /// `buffer_bytes` on each (the kernel may grant less: see
    /// [`buffer_len`](Self::buffer_len)). Sends no command.
    pub fn open(path: impl AsRef<Path>, fds: usize, buffer_bytes: usize) -> Result<Pool> {
        let path = path.as_ref();
        if fds == 0 {
            return Err(Error::InvalidRequest {
                device: path.to_path_buf(),
                command: "mmap pool".into(),
                reason: "a pool needs at least one fd".into(),
            });
        }
        let mut mapped = Vec::with_capacity(fds);
        for _ in 0..fds {
            // No READ CAPACITY: pool commands are raw and need no block size.
            mapped.push(Device::open(path)?.map_reserved_inner(
                buffer_bytes,
                crate::Access::ReadWrite,
                false,
            )?);
        }
        Pool::from_mapped(mapped)
    }

    /// A pool of already mapped devices (normally all of the same device).
    /// Each fd must carry no other request meanwhile.
    pub fn from_mapped(devices: Vec<MappedDevice>) -> Result<Pool> {
        let Some(buffer_len) = devices.iter().map(MappedDevice::len).min() else {
            return Err(Error::InvalidRequest {
                device: Default::default(),
                command: "mmap pool".into(),
                reason: "a pool needs at least one mapped device".into(),
            });
        };
        let n = devices.len();
        Ok(Pool {
            slots: devices
                .into_iter()
                .map(|mapped| Slot {
                    mapped,
                    state: State::Idle,
                })
                .collect(),
            sense: vec![[0u8; SENSE_LEN]; n],
            free: (0..n).rev().collect(),
            ready: VecDeque::new(),
            next_ticket: 0,
            buffer_len,
            peak: 0,
        })
    }

    /// Waits for every command in flight and gives the mapped devices back.
    ///
    /// A device comes back only once nothing is in flight on it: the kernel
    /// may write a mapped buffer until its command is collected. When a
    /// command cannot be collected (the driver refuses `read()`, e.g.
    /// EPERM after the process changed its credentials, or a response the
    /// pool did not submit turns up), this fails instead, and every fd of
    /// the pool is closed: the driver keeps what a closed fd still has in
    /// flight to itself.
    pub fn into_mapped(mut self) -> Result<Vec<MappedDevice>> {
        for i in 0..self.slots.len() {
            if let Err(e) = self.collect(i) {
                let ticket = match self.slots[i].state {
                    State::InFlight(f) => f.ticket.to_string(),
                    _ => "?".into(),
                };
                return Err(Error::InvalidRequest {
                    device: self.slots[i].mapped.path().to_path_buf(),
                    command: "into_mapped".into(),
                    reason: format!(
                        "command {ticket} is still in flight on fd #{i} and could not be \
                         collected ({e}), so no device comes back while the kernel may still \
                         write its buffer; the pool's fds are closed"
                    ),
                });
            }
        }
        Ok(std::mem::take(&mut self.slots)
            .into_iter()
            .map(|s| s.mapped)
            .collect())
    }

    /// How many fds (and buffers) the pool has: its depth.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always false: a pool has at least one fd.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The usable length of every buffer: the smallest mapping in the pool.
    pub fn buffer_len(&self) -> usize {
        self.buffer_len
    }

    /// The device path (of the first fd).
    pub fn path(&self) -> &Path {
        self.slots
            .first()
            .map_or(Path::new(""), |s| s.mapped.path())
    }

    /// Commands submitted whose completion has not been handed out yet (in
    /// the kernel, or collected and waiting in the pool).
    pub fn pending(&self) -> usize {
        self.in_flight() + self.ready.len()
    }

    /// Commands in the kernel now (submitted, response not yet read).
    pub fn in_flight(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| matches!(s.state, State::InFlight(_)))
            .count()
    }

    /// Free buffers, ready for [`lease`](Self::lease).
    pub fn idle(&self) -> usize {
        self.free.len()
    }

    /// The most commands this pool has had in the kernel at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak
    }

    /// The fds, for the caller's own event loop: one polls readable when its
    /// command is done; [`try_complete`](Self::try_complete) then collects it.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        self.slots.iter().map(|s| s.mapped.as_fd()).collect()
    }

    /// What the driver itself holds for the pool's fds (`SG_GET_REQUEST_TABLE`
    /// of each): one entry per command in flight or done and not yet collected.
    pub fn driver_requests(&mut self) -> Result<Vec<RequestInfo>> {
        let mut all = Vec::new();
        for s in &mut self.slots {
            all.extend(s.mapped.device().requests()?);
        }
        Ok(all)
    }

    /// A free buffer to fill and submit, or `None` when every buffer is in
    /// flight or holds a completion not yet handed out: collect one with
    /// [`wait`](Self::wait) and drop it.
    pub fn lease(&mut self) -> Option<Lease<'_>> {
        let slot = *self.free.last()?;
        Some(Lease { pool: self, slot })
    }

    /// Buffer `index` to fill and submit, or `None` when it is in flight,
    /// holds a completion not yet handed out or dropped, or does not exist.
    /// [`lease`](Self::lease) picks a free buffer itself.
    pub fn lease_at(&mut self, index: usize) -> Option<Lease<'_>> {
        if !self.free.contains(&index) {
            return None;
        }
        Some(Lease {
            pool: self,
            slot: index,
        })
    }

    fn submit_in(&mut self, i: usize, cmd: &Command, dir: Direction, len: usize) -> Result<Ticket> {
        let name = command_name(cmd.cdb());
        let slot = &mut self.slots[i];
        let room = slot.mapped.len();
        let fd = slot.mapped.device().fd();
        if cmd.wants_direct() {
            return Err(fd.invalid(
                name,
                "mmap-ed IO cannot also be direct IO; send direct IO on another fd, through a queue",
            ));
        }
        if len > room {
            return Err(fd.invalid(
                name,
                format!(
                    "{len} bytes do not fit the pool's mapped buffer of {room} bytes; transfer at most that much per command"
                ),
            ));
        }
        slot.mapped.check_owner(name)?;
        let fd = slot.mapped.device().fd();
        let mode = if len == 0 { Mode::NoData } else { Mode::Mmap };
        let ticket = Ticket(self.next_ticket);
        let mut hdr = prepare(
            fd,
            cmd,
            dir,
            std::ptr::null_mut(),
            len,
            mode,
            &mut self.sense[i],
        )
        .map_err(|r| fd.invalid(name, r))?;
        hdr.pack_id = (ticket.0 & i32::MAX as u64) as i32;
        hdr.usr_ptr = ticket.tag();
        // SAFETY: the CDB lives in `cmd` across the call; the sense buffer is
        // the pool's slot `i`, kept until the pool is dropped (which reads
        // every response first); mmap-ed IO has no user data pointer, and the
        // kernel moves the data in its reserved pages, which this slot's fd
        // keeps alive; the slot is marked in flight, so no lease or completion
        // reaches the mapping until the response is read.
        unsafe { submit_raw(fd.as_fd(), &hdr) }.map_err(|e| match e {
            Errno::EBUSY => fd.invalid(
                name,
                "the fd's reserved buffer is in use by another request; a pool fd must carry \
                 nothing but the pool's own commands",
            ),
            e => fd.os_error(name, e),
        })?;
        slot.state = State::InFlight(Flight {
            ticket,
            cdb: *cmd.cdb(),
            len,
        });
        self.next_ticket += 1;
        self.free.retain(|&f| f != i);
        self.peak = self.peak.max(self.in_flight());
        Ok(ticket)
    }

    /// Reads the response of slot `i` (blocking) and marks it done.
    fn collect(&mut self, i: usize) -> Result<()> {
        let State::InFlight(flight) = self.slots[i].state else {
            return Ok(());
        };
        // A forked child must not read the parent's responses off the shared fd.
        self.slots[i].mapped.check_owner("read() of a completion")?;
        let fd = self.slots[i].mapped.device().fd();
        let mut hdr = sgmap_sys::sg_io_hdr::new();
        hdr.pack_id = -1;
        loop {
            // SAFETY: the only request on this fd is this slot's, whose sense
            // buffer the pool keeps; mmap-ed IO writes no user data pointer.
            match unsafe { read_raw(fd.as_fd(), &mut hdr) } {
                Ok(()) => break,
                Err(Errno::EAGAIN) => {
                    poll_until(&[fd.as_fd()], PollFlags::POLLIN, None)
                        .map_err(|e| fd.os_error("poll", e))?;
                }
                Err(e) => return Err(fd.os_error("read() of a completion", e)),
            }
        }
        if !flight.ticket.is_tag(hdr.usr_ptr) {
            return Err(fd.invalid(
                "read() of a completion",
                format!(
                    "the driver returned a response (pack_id {}) that the pool did not submit; \
                     a pool fd must carry nothing but the pool's own commands",
                    hdr.pack_id
                ),
            ));
        }
        let mode = if flight.len == 0 {
            Mode::NoData
        } else {
            Mode::Mmap
        };
        let outcome = finish(
            &hdr,
            flight.cdb,
            &self.sense[i],
            mode,
            std::ptr::null(),
            flight.len,
            // mmap-ed IO never falls back to indirect.
            || None,
        );
        self.slots[i].state = State::Done(flight, Box::new(outcome));
        Ok(())
    }

    /// Collects every command that is done, waiting until `deadline` for at
    /// least one (`None`: no limit). Returns whether any was collected.
    fn harvest(&mut self, deadline: Option<Instant>) -> Result<bool> {
        let busy: Vec<usize> = (0..self.slots.len())
            .filter(|&i| matches!(self.slots[i].state, State::InFlight(_)))
            .collect();
        if busy.is_empty() {
            return Ok(false);
        }
        if let ([i], None) = (busy.as_slice(), deadline) {
            // One command in flight and no time limit: a blocking read()
            // waits for it without a poll() first.
            self.collect(*i)?;
            self.ready.push_back(*i);
            return Ok(true);
        }
        let ready = {
            let fds: Vec<BorrowedFd<'_>> =
                busy.iter().map(|&i| self.slots[i].mapped.as_fd()).collect();
            poll_until(&fds, PollFlags::POLLIN, deadline).map_err(|e| Error::Os {
                device: self.path().to_path_buf(),
                command: "poll".into(),
                errno: e,
                kind: crate::error::OsErrorKind::from_errno(e),
                driver: crate::error::Driver::Sg,
            })?
        };
        for k in &ready {
            let i = busy[*k];
            self.collect(i)?;
            self.ready.push_back(i);
        }
        Ok(!ready.is_empty())
    }

    fn hand_out(&mut self, i: usize) -> Result<PoolCompletion<'_>> {
        match std::mem::replace(&mut self.slots[i].state, State::Lent) {
            State::Done(flight, outcome) => Ok(PoolCompletion {
                pool: self,
                slot: i,
                ticket: flight.ticket,
                outcome: *outcome,
            }),
            other => {
                self.slots[i].state = other;
                Err(self.slots[i].mapped.device().fd().invalid(
                    "wait",
                    "internal: a buffer listed as done holds no completion",
                ))
            }
        }
    }

    /// The next completion, in the order the device finished: blocks until
    /// one is ready. Fails when no command is pending.
    pub fn wait(&mut self) -> Result<PoolCompletion<'_>> {
        if self.ready.is_empty() {
            if self.in_flight() == 0 {
                return Err(self.nothing_pending());
            }
            self.harvest(None)?;
        }
        match self.ready.pop_front() {
            Some(i) => self.hand_out(i),
            None => Err(self.nothing_pending()),
        }
    }

    /// The completion of `ticket`, blocking until that command is done.
    pub fn wait_for(&mut self, ticket: Ticket) -> Result<PoolCompletion<'_>> {
        let found = self.slots.iter().position(|s| match &s.state {
            State::InFlight(f) | State::Done(f, _) => f.ticket == ticket,
            _ => false,
        });
        let Some(i) = found else {
            return Err(Error::InvalidRequest {
                device: self.path().to_path_buf(),
                command: "wait_for".into(),
                reason: format!(
                    "command {ticket} is not pending in this pool: it was never submitted here or was already collected"
                ),
            });
        };
        self.collect(i)?;
        self.ready.retain(|&r| r != i);
        self.hand_out(i)
    }

    /// The next completion if one arrives within `timeout`; `None` when the
    /// time passes first, or when no command is pending.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<PoolCompletion<'_>>> {
        if self.ready.is_empty() {
            self.harvest(Instant::now().checked_add(timeout))?;
        }
        match self.ready.pop_front() {
            Some(i) => self.hand_out(i).map(Some),
            None => Ok(None),
        }
    }

    /// A completion that is ready now, without blocking; `None` if none is.
    pub fn try_complete(&mut self) -> Result<Option<PoolCompletion<'_>>> {
        self.wait_timeout(Duration::ZERO)
    }

    fn nothing_pending(&self) -> Error {
        Error::InvalidRequest {
            device: self.path().to_path_buf(),
            command: "wait".into(),
            reason: "no command is pending in this pool; submit one first".into(),
        }
    }

    /// Reads back every command still in flight. mmap-ed IO only ever writes
    /// the kernel's own reserved pages, so even a failed read leaves no
    /// user memory at risk; reading keeps the driver from holding orphans.
    fn reap(&mut self) {
        for i in 0..self.slots.len() {
            let _ = self.collect(i);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.reap();
    }
}

/// A free buffer of a [`Pool`], lent for filling and submitting.
#[derive(Debug)]
pub struct Lease<'p> {
    pool: &'p mut Pool,
    slot: usize,
}

impl Lease<'_> {
    /// The buffer's usable length.
    pub fn len(&self) -> usize {
        self.pool.slots[self.slot].mapped.len()
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's bytes (what its last command left there).
    pub fn buffer(&self) -> &[u8] {
        self.pool.slots[self.slot].mapped.as_slice()
    }

    /// The buffer's bytes for filling before a write; `None` for a read-only
    /// mapping.
    pub fn buffer_mut(&mut self) -> Option<&mut [u8]> {
        self.pool.slots[self.slot].mapped.as_mut_slice()
    }

    /// Which of the pool's fds this buffer belongs to (0-based).
    pub fn index(&self) -> usize {
        self.slot
    }

    /// Submits `cmd` as mmap-ed IO moving `len` bytes in this buffer
    /// (`SG_FLAG_MMAP_IO`, `dxferp = NULL`), returning at once. `len` must
    /// fit the buffer. On failure the buffer stays free.
    pub fn submit(self, cmd: &Command, direction: Direction, len: usize) -> Result<Ticket> {
        self.pool.submit_in(self.slot, cmd, direction, len)
    }
}

/// A collected command of a [`Pool`], lending its buffer's bytes. Dropping
/// it frees the buffer for the next [`Pool::lease`].
#[derive(Debug)]
pub struct PoolCompletion<'p> {
    pool: &'p mut Pool,
    slot: usize,
    ticket: Ticket,
    outcome: Outcome,
}

impl PoolCompletion<'_> {
    /// The ticket [`Lease::submit`] returned for this command.
    pub fn ticket(&self) -> Ticket {
        self.ticket
    }

    /// Status, sense, residual and mode ([`Mode::Mmap`]).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// The bytes the device transferred, in the mapped buffer: for a read,
    /// the data read, with no copy made.
    pub fn data(&self) -> &[u8] {
        let buf = self.buffer();
        &buf[..self.outcome.transferred().min(buf.len())]
    }

    /// The whole mapped buffer.
    pub fn buffer(&self) -> &[u8] {
        self.pool.slots[self.slot].mapped.as_slice()
    }

    /// Which of the pool's fds ran the command (0-based).
    pub fn index(&self) -> usize {
        self.slot
    }

    /// `Ok` when the command succeeded, else the [`Error::Scsi`] naming the
    /// device.
    pub fn check(&self) -> Result<()> {
        match self.outcome.failure_kind() {
            None => Ok(()),
            Some(kind) => Err(Error::Scsi(Box::new(ScsiError {
                device: self.pool.slots[self.slot].mapped.path().to_path_buf(),
                kind,
                outcome: self.outcome.clone(),
            }))),
        }
    }
}

impl Drop for PoolCompletion<'_> {
    fn drop(&mut self) {
        self.pool.slots[self.slot].state = State::Idle;
        self.pool.free.push(self.slot);
    }
}
