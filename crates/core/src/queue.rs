//! Many commands in flight on one fd: the sg driver's asynchronous v3
//! interface (`write()` a header to submit, `read()` it back to collect).
//!
//! A [`Queue`] owns one [`Device`] and up to [`MAX_IN_FLIGHT`] commands on
//! it, with their buffers:
//! - [`Queue::submit`] takes the command's buffer by value ([`Payload`]) and
//!   keeps it until the completion is collected, so no program can free,
//!   read or write a buffer the kernel may still write. The buffer comes back
//!   in the [`Completion`], or in the [`Rejected`] error when the driver
//!   refused the command.
//! - Each request carries its slot number as `pack_id`, and the fd has
//!   `SG_SET_FORCE_PACK_ID` on, so [`Queue::wait_for`] reads exactly the
//!   request it asks for and every completion is matched to its request
//!   whatever order the device finishes them in.
//! - The driver takes 16 requests per fd and answers EDOM beyond: the queue
//!   never lets that reach the caller. A submit on a full queue first
//!   collects one completion (kept for the next `wait`), and an EDOM caused
//!   by someone else's requests on the fd is waited out the same way.
//! - Dropping the queue collects every request still in flight before the
//!   buffers are freed and the fd closes.
//!
//! mmap-ed IO has its own home, [`Pool`](crate::Pool): each fd has one
//! reserved buffer, so zero-copy depth needs one fd per command.

use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use sgmap_sys as sys;

use crate::buffer::DirectBuf;
use crate::cdb::Cdb;
use crate::command::{Command, Direction};
use crate::device::{Device, NodeKind, RequestState};
use crate::error::{Error, Result, ScsiError};
use crate::io::{finish, prepare, read_raw, submit_raw, SENSE_LEN};
use crate::outcome::{command_name, Mode, Outcome};
use crate::uring::FixedBuf;

/// The most requests the sg driver holds for one fd (`SG_MAX_QUEUE`); one
/// more is refused with EDOM, which a [`Queue`] turns into waiting.
pub const MAX_IN_FLIGHT: usize = sys::SG_MAX_QUEUE;

/// Identifies one submitted command until its [`Completion`] is collected.
/// Tickets increase with each submission on a queue or pool, so their order
/// is the submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub(crate) u64);

impl Ticket {
    /// The ticket's number: 0 for the first command submitted, then 1, 2, ...
    pub fn id(self) -> u64 {
        self.0
    }
}

impl Ticket {
    /// The `usr_ptr` a request with this ticket carries, checked when its
    /// response comes back. Never NULL: an `SG_IO` header's `usr_ptr` is
    /// usually NULL, so a NULL tag could not tell ticket 0 from an orphaned
    /// `SG_IO` request with the same `pack_id`.
    pub(crate) fn tag(self) -> *mut std::ffi::c_void {
        // Ticket n is tag n + 1; after 2^64 submissions the count wraps to 1.
        (self.0 as usize).wrapping_add(1).max(1) as *mut std::ffi::c_void
    }

    /// Whether a response's `usr_ptr` is this ticket's tag.
    pub(crate) fn is_tag(self, usr_ptr: *mut std::ffi::c_void) -> bool {
        usr_ptr == self.tag()
    }
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A buffer a [`Queue`] can own while the kernel uses it.
///
/// A `Vec<u8>` is enough for indirect IO; direct IO wants the page alignment
/// of a [`DirectBuf`] (with a `Vec` the kernel quietly does indirect IO, and
/// the [`Outcome`] says so).
#[derive(Debug, Clone)]
pub enum IoBuf {
    /// An ordinary heap buffer.
    Heap(Vec<u8>),
    /// A page-aligned buffer, for direct IO.
    Aligned(DirectBuf),
    /// A page-aligned buffer registered with a [`BsgRing`](crate::BsgRing):
    /// zero-copy with no per-command pinning there, ordinary memory elsewhere.
    Registered(FixedBuf),
}

impl IoBuf {
    /// The heap buffer, if this is one.
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self {
            IoBuf::Heap(v) => Some(v),
            _ => None,
        }
    }

    /// The page-aligned buffer, if this is one.
    pub fn into_direct(self) -> Option<DirectBuf> {
        match self {
            IoBuf::Aligned(b) => Some(b),
            _ => None,
        }
    }

    /// The registered buffer, if this is one.
    pub fn into_registered(self) -> Option<FixedBuf> {
        match self {
            IoBuf::Registered(b) => Some(b),
            _ => None,
        }
    }
}

impl Deref for IoBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            IoBuf::Heap(v) => v,
            IoBuf::Aligned(b) => b,
            IoBuf::Registered(b) => b,
        }
    }
}

impl DerefMut for IoBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            IoBuf::Heap(v) => v,
            IoBuf::Aligned(b) => b,
            IoBuf::Registered(b) => b,
        }
    }
}

impl From<Vec<u8>> for IoBuf {
    fn from(v: Vec<u8>) -> Self {
        IoBuf::Heap(v)
    }
}

impl From<DirectBuf> for IoBuf {
    fn from(b: DirectBuf) -> Self {
        IoBuf::Aligned(b)
    }
}

impl From<FixedBuf> for IoBuf {
    fn from(b: FixedBuf) -> Self {
        IoBuf::Registered(b)
    }
}

/// A command's data, owned: what [`Queue::submit`] takes and the
/// [`Completion`] gives back. The owned counterpart of [`Data`](crate::Data).
#[derive(Debug)]
pub enum Payload {
    /// No data phase.
    None,
    /// Read from the device into this buffer (all of it is the transfer length).
    FromDevice(IoBuf),
    /// Write this buffer to the device.
    ToDevice(IoBuf),
}

impl Payload {
    /// Read into `buf`.
    pub fn read(buf: impl Into<IoBuf>) -> Self {
        Payload::FromDevice(buf.into())
    }

    /// Write `buf`.
    pub fn write(buf: impl Into<IoBuf>) -> Self {
        Payload::ToDevice(buf.into())
    }

    /// The direction of the transfer.
    pub fn direction(&self) -> Direction {
        match self {
            Payload::None => Direction::None,
            Payload::FromDevice(_) => Direction::FromDevice,
            Payload::ToDevice(_) => Direction::ToDevice,
        }
    }

    /// The transfer length: the whole buffer.
    pub fn len(&self) -> usize {
        self.buffer().map_or(0, |b| b.len())
    }

    /// True when there is nothing to transfer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer, if there is one.
    pub fn buffer(&self) -> Option<&IoBuf> {
        match self {
            Payload::None => None,
            Payload::FromDevice(b) | Payload::ToDevice(b) => Some(b),
        }
    }

    /// The buffer, given back.
    pub fn into_buffer(self) -> Option<IoBuf> {
        match self {
            Payload::None => None,
            Payload::FromDevice(b) | Payload::ToDevice(b) => Some(b),
        }
    }

    /// The address the kernel gets (null without data). The kernel only
    /// reads a `ToDevice` buffer, so that pointer is never written through.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        match self {
            Payload::None => std::ptr::null_mut(),
            Payload::FromDevice(b) => b.as_mut_ptr(),
            Payload::ToDevice(b) => b.as_ptr().cast_mut(),
        }
    }
}

/// A collected command: who it was, what the kernel reported, and its buffer.
#[derive(Debug)]
pub struct Completion {
    /// The ticket [`Queue::submit`] returned for this command.
    pub ticket: Ticket,
    /// Status, sense, residual, and the transfer mode that really ran.
    pub outcome: Outcome,
    /// The buffer the command was submitted with, given back.
    pub data: Payload,
}

impl Completion {
    /// The bytes the device really transferred: for a read, the data read.
    pub fn bytes(&self) -> &[u8] {
        let n = self.outcome.transferred();
        self.data.buffer().map_or(&[][..], |b| &b[..n.min(b.len())])
    }

    /// `Ok(self)` when the command succeeded, else the [`Error::Scsi`] naming
    /// `device` (the buffer is dropped with the error).
    pub fn check(self, device: &Path) -> Result<Completion> {
        match self.outcome.failure_kind() {
            None => Ok(self),
            Some(kind) => Err(Error::Scsi(Box::new(ScsiError {
                device: device.to_path_buf(),
                kind,
                outcome: self.outcome,
            }))),
        }
    }

    /// The buffer, given back.
    pub fn into_buffer(self) -> Option<IoBuf> {
        self.data.into_buffer()
    }
}

/// A command the queue could not submit, with its buffer given back.
///
/// Converts into [`Error`] (so `?` works where the buffer is not wanted back).
#[derive(Debug)]
pub struct Rejected(Box<(Error, Payload)>);

impl Rejected {
    pub(crate) fn new(error: Error, data: Payload) -> Self {
        Rejected(Box::new((error, data)))
    }

    /// Why: the driver's errno, or sgmap's refusal before asking it.
    pub fn error(&self) -> &Error {
        &self.0 .0
    }

    /// The buffer the command came with; the kernel did not keep it.
    pub fn data(&self) -> &Payload {
        &self.0 .1
    }

    /// Whether the command was refused only because the queue was full
    /// ([`Queue::try_submit`]): submit it again once a completion is collected.
    pub fn is_full(&self) -> bool {
        matches!(
            &self.0 .0,
            Error::Os {
                errno: Errno::EAGAIN,
                ..
            }
        )
    }

    /// The error and the buffer.
    pub fn into_parts(self) -> (Error, Payload) {
        *self.0
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error().fmt(f)
    }
}

impl std::error::Error for Rejected {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

impl From<Rejected> for Error {
    fn from(r: Rejected) -> Error {
        r.into_parts().0
    }
}

/// One command in flight: what the kernel may still use, kept until its
/// response has been read.
#[derive(Debug)]
struct Slot {
    ticket: Ticket,
    cdb: Cdb,
    mode: Mode,
    timeout_ms: u32,
    data: Payload,
}

/// Up to [`MAX_IN_FLIGHT`] commands in flight on one sg fd, through the
/// driver's asynchronous `write()`/`read()` interface, with indirect or direct
/// IO (as [`Command::direct`] asks) and the same [`Outcome`] per command as
/// [`Device::execute`].
///
/// ```no_run
/// use sgmap::{cdb::Cdb, Command, DirectBuf, Payload, Queue};
///
/// let mut q = Queue::open("/dev/sg0")?;
/// q.device().wait_ready()?;
/// // Eight 64 KiB reads in flight at once, straight into page-aligned buffers.
/// let mut tickets = Vec::new();
/// for i in 0..8u64 {
///     let cmd = Command::new(Cdb::read(i * 128, 128)?).direct();
///     tickets.push(q.submit(&cmd, Payload::read(DirectBuf::new(128 * 512)))?);
/// }
/// // Collect in any order the device finishes them...
/// while let Some(done) = q.wait_timeout(std::time::Duration::from_secs(5))? {
///     let done = done.check(q.path())?;
///     println!("{} done, {} bytes ({} IO)", done.ticket, done.bytes().len(), done.outcome.mode);
/// }
/// # Ok::<(), sgmap::Error>(())
/// ```
///
/// The queue keeps each buffer until the kernel is done with it: nothing
/// else can reach it meanwhile.
///
/// ```compile_fail,E0382
/// use sgmap::{cdb::Cdb, Command, Payload, Queue};
/// let mut q = Queue::open("/dev/sg0").unwrap();
/// let buf = vec![0u8; 4096];
/// q.submit(&Command::new(Cdb::read_10(0, 8)), Payload::read(buf)).unwrap();
/// let _ = buf[0]; // error: `buf` moved into the queue
/// ```
///
/// The fd works in the caller's own event loop ([`AsFd`]): it polls readable
/// when a completion is ready, then [`try_complete`](Queue::try_complete)
/// collects it without blocking.
#[derive(Debug)]
pub struct Queue {
    dev: Device,
    slots: Vec<Option<Slot>>,
    /// The kernel writes sense data for slot `i` here when its response is
    /// read. Allocated once; never resized, so the addresses stay valid.
    sense: Vec<[u8; SENSE_LEN]>,
    free: Vec<usize>,
    ready: VecDeque<Completion>,
    next_ticket: u64,
    peak: usize,
}

impl Queue {
    /// Opens `path` read-write and makes a queue of it.
    pub fn open(path: impl AsRef<Path>) -> Result<Queue> {
        Queue::new(Device::open(path)?)
    }

    /// Makes a queue of an open device: turns `SG_SET_FORCE_PACK_ID` on and
    /// clears `O_NONBLOCK` (the queue waits with blocking `read()`s and
    /// `poll()`).
    ///
    /// Only a `/dev/sgN` node ([`NodeKind::Sg`]) takes the driver's
    /// `write()`/`read()` interface: on a block device a `write()` of a
    /// header would be data for the medium. Any other node is refused with
    /// [`Error::NotSg`] before anything is done to it.
    pub fn new(dev: Device) -> Result<Queue> {
        if dev.kind() != NodeKind::Sg {
            return Err(Error::NotSg {
                path: dev.path().to_path_buf(),
                reason: "a queue submits with write(2), which on a block device writes to the \
                         medium; use the /dev/sgN node of the same device (/sys/class/scsi_generic \
                         lists them)"
                    .into(),
            });
        }
        let fd = dev.fd();
        fd.set_int("SG_SET_FORCE_PACK_ID", sys::ioctl::sg_set_force_pack_id, 1)?;
        let flags = nix::fcntl::fcntl(fd.as_fd().as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map_err(|e| fd.os_error("fcntl(F_GETFL)", e))?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags);
        if flags.contains(nix::fcntl::OFlag::O_NONBLOCK) {
            nix::fcntl::fcntl(
                fd.as_fd().as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(flags - nix::fcntl::OFlag::O_NONBLOCK),
            )
            .map_err(|e| fd.os_error("fcntl(F_SETFL)", e))?;
        }
        Ok(Queue {
            dev,
            slots: (0..MAX_IN_FLIGHT).map(|_| None).collect(),
            sense: vec![[0u8; SENSE_LEN]; MAX_IN_FLIGHT],
            free: (0..MAX_IN_FLIGHT).rev().collect(),
            ready: VecDeque::new(),
            next_ticket: 0,
            peak: 0,
        })
    }

    /// The device, e.g. for [`Device::requests`] or the typed helpers
    /// (their commands carry `pack_id`s of 0x40000000 and up and are read
    /// back before the call returns, so the queue's `read()`s never see them).
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        self.dev.path()
    }

    /// Commands submitted whose completion has not been handed out yet
    /// (in flight in the kernel, or collected and waiting in the queue).
    pub fn pending(&self) -> usize {
        self.in_flight() + self.ready.len()
    }

    /// Commands the kernel holds for this queue right now (submitted, response
    /// not yet read): at most [`MAX_IN_FLIGHT`].
    pub fn in_flight(&self) -> usize {
        MAX_IN_FLIGHT - self.free.len()
    }

    /// The most commands this queue has had in the kernel at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak
    }

    /// The `pack_id` the driver knows the in-flight command `ticket` by, to
    /// find it in [`Device::requests`]; `None` once it has been collected.
    pub fn pack_id(&self, ticket: Ticket) -> Option<i32> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.ticket == ticket))
            .map(|i| i as i32)
    }

    /// Submits `cmd` with `data`: a `write()` of its header, returning at once.
    ///
    /// The queue owns `data` until the command is collected. With
    /// [`MAX_IN_FLIGHT`] commands already in the kernel, this first waits for
    /// one of them to complete and keeps that completion for the next
    /// [`wait`](Self::wait): a full queue is back-pressure, never an error.
    /// Indirect IO unless [`Command::direct`] asks for direct; the completion
    /// says which really ran.
    ///
    /// On failure the buffer comes back in [`Rejected`]; the kernel never saw
    /// it, or gave it up when it refused the request.
    pub fn submit(&mut self, cmd: &Command, data: Payload) -> Result<Ticket, Rejected> {
        if self.free.is_empty() {
            if let Err(error) = self.collect_any() {
                return Err(Rejected::new(error, data));
            }
        }
        let Some(i) = self.free.pop() else {
            let error = self.dev.fd().invalid(
                command_name(cmd.cdb()),
                "no request slot is free although a completion was just collected",
            );
            return Err(Rejected::new(error, data));
        };
        match self.submit_in(i, cmd, data) {
            Ok(t) => Ok(t),
            Err(r) => {
                self.free.push(i);
                Err(r)
            }
        }
    }

    /// Submits `cmd` with `data` like [`submit`](Self::submit), but never
    /// blocks: when [`MAX_IN_FLIGHT`] commands are already in flight (or the
    /// driver's slots on this fd are full), the buffer comes straight back
    /// in a [`Rejected`] whose [`is_full`](Rejected::is_full) is true
    /// (errno `EAGAIN`); collect a completion, or poll the fd, and submit
    /// again. Completions are never collected here.
    pub fn try_submit(&mut self, cmd: &Command, data: Payload) -> Result<Ticket, Rejected> {
        let Some(i) = self.free.pop() else {
            let error = self
                .dev
                .fd()
                .os_error(command_name(cmd.cdb()), Errno::EAGAIN);
            return Err(Rejected::new(error, data));
        };
        match self.submit_at(i, cmd, data, false) {
            Ok(t) => Ok(t),
            Err(r) => {
                self.free.push(i);
                Err(r)
            }
        }
    }

    fn submit_in(&mut self, i: usize, cmd: &Command, data: Payload) -> Result<Ticket, Rejected> {
        self.submit_at(i, cmd, data, true)
    }

    /// Writes the request into slot `i`; when the driver's slots are full
    /// (EDOM), waits for room if `block`, else gives the buffer back with EAGAIN.
    fn submit_at(
        &mut self,
        i: usize,
        cmd: &Command,
        mut data: Payload,
        block: bool,
    ) -> Result<Ticket, Rejected> {
        let name = command_name(cmd.cdb());
        let mode = Mode::requested(cmd, data.len());
        let (dir, len, ptr) = (data.direction(), data.len(), data.as_mut_ptr());
        let ticket = Ticket(self.next_ticket);
        let mut hdr = match prepare(self.dev.fd(), cmd, dir, ptr, len, mode, &mut self.sense[i]) {
            Ok(h) => h,
            Err(reason) => {
                let error = self.dev.fd().invalid(name, reason);
                return Err(Rejected::new(error, data));
            }
        };
        hdr.pack_id = i as i32;
        // Never dereferenced by the kernel: a cross-check on the way back.
        hdr.usr_ptr = ticket.tag();
        loop {
            // SAFETY: the CDB lives in `cmd` across the call (the kernel copies
            // it during write()); the sense buffer is this queue's slot `i`,
            // which lives until the queue is dropped, and the drop reads every
            // response first; the data pointer is `data`'s heap buffer, which
            // the slot keeps, untouched, until the response is read.
            match unsafe { submit_raw(self.dev.fd().as_fd(), &hdr) } {
                Ok(()) => break,
                Err(Errno::EDOM) if !block => {
                    let error = self.dev.fd().os_error(name, Errno::EAGAIN);
                    return Err(Rejected::new(error, data));
                }
                Err(Errno::EDOM) => {
                    // Someone else's requests fill the fd: wait for room.
                    if let Err(error) = self.wait_for_room(name, cmd.timeout_ms()) {
                        return Err(Rejected::new(error, data));
                    }
                }
                Err(e) => {
                    let error = self.dev.fd().os_error(name, e);
                    return Err(Rejected::new(error, data));
                }
            }
        }
        self.next_ticket += 1;
        self.slots[i] = Some(Slot {
            ticket,
            cdb: *cmd.cdb(),
            mode,
            timeout_ms: cmd.timeout_ms(),
            data,
        });
        self.peak = self.peak.max(self.in_flight());
        Ok(ticket)
    }

    /// EDOM with room in our own table: other requests on the fd (an `SG_IO`
    /// through [`device`](Self::device)) hold the driver's slots. Collect one
    /// of ours if we have any, else wait until the driver says writable.
    fn wait_for_room(&mut self, name: &str, timeout_ms: u32) -> Result<()> {
        if self.in_flight() > 0 {
            return self.collect_any();
        }
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        let writable = poll_until(&[self.dev.fd().as_fd()], PollFlags::POLLOUT, Some(deadline))
            .map_err(|e| self.dev.fd().os_error("poll", e))?;
        if writable.is_empty() {
            return Err(self.dev.fd().os_error(name, Errno::EDOM));
        }
        Ok(())
    }

    /// Reads one response (`pack_id` -1 for any), blocking, and keeps it in
    /// the ready list.
    fn collect_any(&mut self) -> Result<()> {
        let c = self.collect(-1)?;
        self.ready.push_back(c);
        Ok(())
    }

    /// Reads the response of `pack_id` (or any, -1), blocking.
    fn collect(&mut self, pack_id: i32) -> Result<Completion> {
        let mut hdr = sys::sg_io_hdr::new();
        hdr.pack_id = pack_id;
        loop {
            // SAFETY: every request on this fd that the read can return was
            // submitted by this queue, whose slots keep its sense and data
            // buffers alive and untouched until this read returns it.
            match unsafe { read_raw(self.dev.fd().as_fd(), &mut hdr) } {
                Ok(()) => break,
                // The fd is blocking (see `new`), unless a caller changed it
                // through `as_fd`: wait for readiness, then read again.
                Err(Errno::EAGAIN) => {
                    poll_until(&[self.dev.fd().as_fd()], PollFlags::POLLIN, None)
                        .map_err(|e| self.dev.fd().os_error("poll", e))?;
                }
                Err(e) => return Err(self.dev.fd().os_error("read() of a completion", e)),
            }
        }
        self.complete(&hdr)
    }

    /// Matches a response to its slot, frees the slot, builds the completion.
    fn complete(&mut self, hdr: &sys::sg_io_hdr) -> Result<Completion> {
        let ours = usize::try_from(hdr.pack_id).ok().filter(|&i| {
            self.slots
                .get(i)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.ticket.is_tag(hdr.usr_ptr))
        });
        let Some((i, mut slot)) = ours.and_then(|i| Some((i, self.slots[i].take()?))) else {
            return Err(self.dev.fd().invalid(
                "read() of a completion",
                format!(
                    "the driver returned a response (pack_id {}) that this queue did not submit; \
                     do not write() to a queue's fd yourself",
                    hdr.pack_id
                ),
            ));
        };
        self.free.push(i);
        let (len, ptr) = (slot.data.len(), slot.data.as_mut_ptr());
        let fd = self.dev.fd();
        let outcome = finish(hdr, slot.cdb, &self.sense[i], slot.mode, ptr, len, || {
            fd.dma_alignment()
        });
        Ok(Completion {
            ticket: slot.ticket,
            outcome,
            data: slot.data,
        })
    }

    /// The next completion, in the order the device finished: blocks until one
    /// is ready. Fails when no command is pending.
    pub fn wait(&mut self) -> Result<Completion> {
        if let Some(c) = self.ready.pop_front() {
            return Ok(c);
        }
        if self.in_flight() == 0 {
            return Err(self.nothing_pending("wait"));
        }
        self.collect(-1)
    }

    /// The completion of `ticket`, blocking until that command is done; the
    /// kernel keeps the others meanwhile.
    pub fn wait_for(&mut self, ticket: Ticket) -> Result<Completion> {
        let pos = self.ready.iter().position(|c| c.ticket == ticket);
        if let Some(c) = pos.and_then(|p| self.ready.remove(p)) {
            return Ok(c);
        }
        let slot = self
            .slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.ticket == ticket));
        match slot {
            Some(i) => self.collect(i as i32),
            None => Err(self.dev.fd().invalid(
                "wait_for",
                format!("command {ticket} is not pending on this queue: it was never submitted here or was already collected"),
            )),
        }
    }

    /// The next completion if one arrives within `timeout`; `None` when the
    /// time passes first, or when no command is pending.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<Completion>> {
        if let Some(c) = self.ready.pop_front() {
            return Ok(Some(c));
        }
        if self.in_flight() == 0 {
            return Ok(None);
        }
        let deadline = Instant::now().checked_add(timeout);
        let ready = poll_until(&[self.dev.fd().as_fd()], PollFlags::POLLIN, deadline)
            .map_err(|e| self.dev.fd().os_error("poll", e))?;
        if ready.is_empty() {
            return Ok(None);
        }
        // POLLIN: a response of ours is done, so this read does not block.
        self.collect(-1).map(Some)
    }

    /// A completion that is ready now, without blocking; `None` if none is.
    pub fn try_complete(&mut self) -> Result<Option<Completion>> {
        self.wait_timeout(Duration::ZERO)
    }

    /// Waits for every pending command and returns their completions, in the
    /// order they were collected.
    pub fn drain(&mut self) -> Result<Vec<Completion>> {
        let mut all: Vec<Completion> = self.ready.drain(..).collect();
        while self.in_flight() > 0 {
            all.push(self.collect(-1)?);
        }
        Ok(all)
    }

    fn nothing_pending(&self, what: &str) -> Error {
        self.dev.fd().invalid(
            what,
            "no command is pending on this queue; submit one first",
        )
    }

    /// Reads back every request still in flight, so that no buffer is freed
    /// while the kernel may write it. Bounded by the commands' timeouts.
    fn reap(&mut self) {
        let mut waited_for_readers = 0u32;
        while self.in_flight() > 0 {
            // The driver's own table says which of ours it still holds, in
            // every state: a response another reader of the fd is taking
            // right now ("being read") still has the kernel writing its
            // sense and data into this queue's buffers.
            let held: Vec<(i32, RequestState)> = match self.dev.requests() {
                Ok(t) => t
                    .iter()
                    .filter(|r| !r.sg_io_owned)
                    .map(|r| (r.pack_id, r.state))
                    .collect(),
                Err(_) => return self.abandon(),
            };
            for i in 0..MAX_IN_FLIGHT {
                if self.slots[i].is_some() && !held.iter().any(|&(p, _)| p == i as i32) {
                    // The kernel no longer has it (a failed read removed it).
                    self.slots[i] = None;
                    self.free.push(i);
                }
            }
            let ours = |p: i32| {
                usize::try_from(p).is_ok_and(|i| i < MAX_IN_FLIGHT && self.slots[i].is_some())
            };
            let next = held
                .iter()
                .find(|&&(p, st)| st != RequestState::BeingRead && ours(p))
                .map(|&(p, _)| p);
            let any_ours = held.iter().any(|&(p, _)| ours(p));
            if let Some(pack_id) = next {
                if self.collect(pack_id).is_err() {
                    return self.abandon();
                }
            } else if any_ours {
                // Only responses someone else is reading are left: wait
                // until the driver has finished handing them out.
                waited_for_readers += 1;
                if waited_for_readers > 10_000 {
                    return self.abandon();
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
    }

    /// The responses cannot be read: wait until the driver has finished
    /// every request and no response is being read (after that it never
    /// writes to user memory again), and leak the buffers of any it still
    /// holds rather than free them.
    fn abandon(&mut self) {
        let longest = self
            .slots
            .iter()
            .flatten()
            .map(|s| u64::from(s.timeout_ms))
            .max()
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_millis(longest.saturating_add(5_000));
        while Instant::now() < deadline {
            match self.dev.requests() {
                Ok(t) if t.iter().all(|r| r.state == RequestState::Done) => {
                    return self.slots.iter_mut().for_each(|s| *s = None);
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(1)),
                Err(_) => break,
            }
        }
        for s in self.slots.iter_mut() {
            if let Some(slot) = s.take() {
                std::mem::forget(slot.data);
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        self.reap();
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dev.as_fd()
    }
}

/// The sg fd, for `poll`/`epoll` in the caller's event loop: it becomes
/// readable when a completion is ready.
impl std::os::fd::AsRawFd for Queue {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.dev.as_raw_fd()
    }
}

/// Polls `fds` for `events` until `deadline` (`None`: no limit), through
/// EINTR. Returns the indices of the fds that are ready (empty on timeout).
pub(crate) fn poll_until(
    fds: &[BorrowedFd<'_>],
    events: PollFlags,
    deadline: Option<Instant>,
) -> nix::Result<Vec<usize>> {
    let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|fd| PollFd::new(*fd, events)).collect();
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up, so a short wait is not a busy loop.
                let ms = left.as_nanos().div_ceil(1_000_000);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        match nix::poll::poll(&mut pfds, timeout) {
            Ok(_) => {
                let ready = pfds
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        p.revents().is_some_and(|r| {
                            r.intersects(events | PollFlags::POLLERR | PollFlags::POLLHUP)
                        })
                    })
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>();
                if ready.is_empty() && deadline.is_some_and(|d| Instant::now() < d) {
                    continue;
                }
                return Ok(ready);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_reports_direction_length_and_gives_the_buffer_back() {
        let p = Payload::read(vec![0u8; 4096]);
        assert_eq!((p.direction(), p.len()), (Direction::FromDevice, 4096));
        let p = Payload::write(DirectBuf::new(512));
        assert_eq!((p.direction(), p.len()), (Direction::ToDevice, 512));
        assert!(matches!(p.into_buffer(), Some(IoBuf::Aligned(_))));
        assert_eq!(
            (Payload::None.direction(), Payload::None.len()),
            (Direction::None, 0)
        );
        assert!(Payload::None.is_empty() && Payload::None.into_buffer().is_none());
        let v = IoBuf::from(vec![1, 2, 3]);
        assert_eq!(&v[..], &[1, 2, 3]);
        assert_eq!(v.into_vec(), Some(vec![1, 2, 3]));
    }

    #[test]
    fn rejected_keeps_the_buffer_and_converts_to_the_error() {
        let err = Error::InvalidRequest {
            device: "/dev/sg9".into(),
            command: "READ(10)".into(),
            reason: "too long".into(),
        };
        let r = Rejected::new(err, Payload::read(vec![7u8; 8]));
        assert_eq!(r.to_string(), "/dev/sg9: READ(10): too long");
        assert_eq!(r.data().len(), 8);
        let e: Error = r.into();
        assert!(matches!(e, Error::InvalidRequest { .. }));
    }

    #[test]
    fn ticket_order_is_submission_order() {
        assert!(Ticket(1) < Ticket(2));
        assert_eq!(Ticket(5).to_string(), "#5");
        assert_eq!(Ticket(5).id(), 5);
    }

    #[test]
    fn no_ticket_is_tagged_like_an_sg_io_header() {
        for t in [0, 1, 2, u64::from(u32::MAX), u64::MAX] {
            let t = Ticket(t);
            assert!(!t.tag().is_null(), "{t}");
            assert!(t.is_tag(t.tag()));
            assert!(!t.is_tag(std::ptr::null_mut()), "{t}");
        }
        assert_ne!(Ticket(0).tag(), Ticket(1).tag());
    }
}
