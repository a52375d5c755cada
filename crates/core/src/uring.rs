//! SCSI passthrough through io_uring on the bsg node (Linux 7.1 and later):
//! many commands per system call, any depth, registered buffers.
//!
//! A [`BsgRing`] owns the bsg node of one SCSI device (`/dev/bsg/H:C:T:L`,
//! found from `/dev/sgN` through sysfs) and an io_uring set up with 128-byte
//! submission and 32-byte completion entries. Each command is one
//! `IORING_OP_URING_CMD` entry carrying a [`bsg_uring_cmd`](sgmap_sys::bsg_uring_cmd):
//!
//! - [`BsgRing::submit`] takes the buffer by value ([`Payload`], as
//!   [`Queue`](crate::Queue) does) and only queues the entry in the ring:
//!   no system call. [`BsgRing::flush`], or any wait, hands every queued
//!   entry to the kernel in one `io_uring_enter`. The entry is written once,
//!   when it is queued, and never touched again (a kernel fix after 7.1
//!   closed an out-of-bounds write that a changed entry could cause).
//! - Depth is bounded only by the ring ([`RingOptions::depth`]); a submit on
//!   a full ring first collects a completion (kept for the next wait).
//! - Completions are matched to their command by `user_data` (slot and
//!   ticket), whatever order the device finishes in.
//! - The buffer, the CDB and the sense buffer of a command stay owned by the
//!   ring until its completion has been reaped, and come back in the
//!   [`Completion`] (or in [`Refused`] when the kernel refused the command):
//!   nothing in flight can be touched or freed. Dropping the ring waits for
//!   every command it handed to the kernel; a signal interrupting a wait
//!   (`EINTR`) is retried and never orphans a buffer.
//! - [`BsgRing::register_buffers`] registers page-aligned buffers once
//!   (`IORING_REGISTER_BUFFERS`); a command on one of them
//!   ([`FixedBuf`]) names it with `IORING_URING_CMD_FIXED` and its index,
//!   so the kernel does not pin pages per command.
//! - Status, sense and residual arrive in the completion's extra word and are
//!   decoded into the same [`Outcome`] as every other transport; each
//!   command's timeout ([`Command::timeout`]) goes to the kernel with it.
//!
//! On kernels without it (6.1, 6.12), [`BsgRing::open`] fails with an
//! [`Error::Open`] that names the kernel and says Linux 7.1 is needed.

use std::collections::VecDeque;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use nix::errno::Errno;
use nix::sys::eventfd::{EfdFlags, EventFd};
use sgmap_sys as sys;

use crate::buffer::DirectBuf;
use crate::cdb::{Cdb, MAX_CDB_LEN};
use crate::command::{Command, Direction};
use crate::discover::SYSFS_ROOT;
use crate::error::{Error, Result};
use crate::io::{page_size, Fd, SENSE_LEN};
use crate::outcome::{command_name, Fallback, Mode, Outcome};
use crate::queue::{Completion, IoBuf, Payload, Rejected, Ticket};
use crate::sense::Sense;

/// The depth [`BsgRing::open`] gives a ring: commands in flight at once.
pub const DEFAULT_DEPTH: u32 = 64;

/// The deepest ring the kernel sets up (`IORING_MAX_ENTRIES`).
pub const MAX_DEPTH: u32 = 32_768;

/// The first kernel with SCSI passthrough through io_uring on bsg.
pub const NEEDS_KERNEL: &str = "Linux 7.1";

/// `user_data` of the probe entry [`BsgRing::open`] sends; never a slot's.
const PROBE: u64 = u64::MAX;

/// Ring identities, so a [`FixedBuf`] is used as registered only on its own ring.
static NEXT_RING: AtomicU64 = AtomicU64::new(1);

/// A page-aligned buffer registered with one [`BsgRing`]
/// ([`BsgRing::register_buffers`]).
///
/// It owns its memory; on its own ring a command on it is zero-copy with no
/// per-command pinning (`IORING_URING_CMD_FIXED`). Anywhere else (another
/// ring, a [`Queue`](crate::Queue)) it is ordinary page-aligned memory. Its
/// length, the transfer length of a command on it, can be set anywhere up
/// to its [`capacity`](FixedBuf::capacity).
///
/// ```compile_fail,E0382
/// # fn f(mut ring: sgmap::BsgRing) -> Result<(), Box<dyn std::error::Error>> {
/// use sgmap::{cdb::Cdb, Command, Payload};
/// let mut bufs = ring.register_buffers(1, 4096)?;
/// let buf = bufs.pop().unwrap();
/// ring.submit(&Command::new(Cdb::read_10(0, 8)), Payload::read(buf))?;
/// let _ = buf[0]; // error: the ring owns the buffer until its completion
/// # Ok(()) }
/// ```
pub struct FixedBuf {
    buf: DirectBuf,
    len: usize,
    /// The ring it is registered with (0: none, e.g. a clone).
    ring: u64,
    index: u16,
}

impl FixedBuf {
    /// Bytes registered: the most one command on this buffer can move.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Sets the length (the transfer length of the next command on it).
    ///
    /// # Panics
    ///
    /// When `len` exceeds [`capacity`](FixedBuf::capacity).
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.capacity(),
            "FixedBuf::set_len({len}) beyond its registered capacity of {} bytes",
            self.capacity()
        );
        self.len = len;
    }

    /// Its index in the ring's registered buffers.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Whether it is registered with `ring`.
    pub fn is_registered_with(&self, ring: &BsgRing) -> bool {
        self.ring != 0 && self.ring == ring.id
    }
}

impl Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl Clone for FixedBuf {
    /// A copy in new, unregistered memory: ordinary page-aligned memory on
    /// every ring.
    fn clone(&self) -> Self {
        let mut buf = DirectBuf::new(self.capacity());
        buf.copy_from_slice(&self.buf);
        FixedBuf {
            buf,
            len: self.len,
            ring: 0,
            index: 0,
        }
    }
}

impl fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedBuf")
            .field("ptr", &self.buf.as_ptr())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("index", &self.index)
            .field("registered", &(self.ring != 0))
            .finish()
    }
}

/// What a wait on a [`BsgRing`] gives instead of a [`Completion`]: a command
/// the kernel refused after it was submitted (the completion's result was an
/// errno: the command did not run), with its ticket and its buffer given
/// back, or a failure of the ring itself (no ticket, no buffer).
///
/// Converts into [`Error`] (so `?` works where the buffer is not wanted back).
#[derive(Debug)]
pub struct Refused(Box<(Error, Option<Ticket>, Payload)>);

impl Refused {
    fn command(error: Error, ticket: Ticket, data: Payload) -> Self {
        Refused(Box::new((error, Some(ticket), data)))
    }

    fn ring(error: Error) -> Self {
        Refused(Box::new((error, None, Payload::None)))
    }

    /// Why.
    pub fn error(&self) -> &Error {
        &self.0 .0
    }

    /// The refused command, or `None` when the ring itself failed.
    pub fn ticket(&self) -> Option<Ticket> {
        self.0 .1
    }

    /// The refused command's buffer; the kernel no longer uses it.
    pub fn data(&self) -> &Payload {
        &self.0 .2
    }

    /// The error, the ticket and the buffer.
    pub fn into_parts(self) -> (Error, Option<Ticket>, Payload) {
        *self.0
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ticket() {
            Some(t) => write!(f, "command {t}: {}", self.error()),
            None => self.error().fmt(f),
        }
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error())
    }
}

impl From<Refused> for Error {
    fn from(r: Refused) -> Error {
        r.into_parts().0
    }
}

/// How to open a [`BsgRing`].
#[derive(Debug, Clone, Copy)]
pub struct RingOptions {
    depth: u32,
    read_only: bool,
    timed: bool,
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions {
            depth: DEFAULT_DEPTH,
            read_only: false,
            timed: false,
        }
    }
}

impl RingOptions {
    /// Read-write, [`RING_DEFAULT_DEPTH`](crate::RING_DEFAULT_DEPTH).
    pub fn new() -> Self {
        Self::default()
    }

    /// Commands in flight at once, 1 to [`RING_MAX_DEPTH`](crate::RING_MAX_DEPTH).
    pub fn depth(mut self, depth: u32) -> Self {
        self.depth = depth;
        self
    }

    /// Opens the bsg node read-only. sgmap then submits only what the kernel
    /// counts as read-safe and nothing that sends data to the device, and
    /// refuses the rest before the kernel sees it, even for a caller with
    /// CAP_SYS_RAWIO (root), whom the kernel's own gate lets through.
    pub fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Measures each command's [`Outcome::duration`], from the
    /// `io_uring_enter` that handed it to the kernel to the reap that saw it
    /// done. The bsg interface reports no duration, and the two clock reads
    /// per system call are not free everywhere (about 9 µs each in
    /// user-mode Linux, which has no vDSO), so it is off by default and the
    /// duration is then zero.
    pub fn measure_duration(mut self, yes: bool) -> Self {
        self.timed = yes;
        self
    }

    /// Opens the bsg node of `path` (an sg node, a SCSI disk's block device,
    /// or the bsg node itself) and sets up the ring.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<BsgRing> {
        BsgRing::open_with(path.as_ref(), *self)
    }
}

/// One command handed to the ring: what the kernel may still use.
#[derive(Debug)]
struct Slot {
    ticket: Ticket,
    cdb: Cdb,
    requested_mode: Mode,
    mode: Mode,
    /// When `io_uring_enter` passed it to the kernel (`None`: still queued).
    entered: Option<Instant>,
    data: Payload,
}

/// SCSI commands through io_uring on a device's bsg node (Linux 7.1+):
/// batched submission, any depth, plain or registered buffers, and the same
/// [`Completion`] and [`Outcome`] as [`Queue`](crate::Queue).
///
/// ```no_run
/// use sgmap::{cdb::Cdb, BsgRing, Command, Payload};
///
/// let mut ring = BsgRing::options().depth(128).open("/dev/sg0")?;
/// let mut bufs = ring.register_buffers(64, 4096)?;
/// // 64 reads of 4 KiB queued, then handed to the kernel in one system call.
/// for (i, buf) in bufs.drain(..).enumerate() {
///     ring.submit(&Command::new(Cdb::read(i as u64 * 8, 8)?), Payload::read(buf))?;
/// }
/// ring.flush()?;
/// while ring.pending() > 0 {
///     let done = ring.wait()?.check(ring.path())?;
///     println!("{}: {} bytes", done.ticket, done.bytes().len());
///     bufs.push(done.into_buffer().and_then(|b| b.into_registered()).unwrap());
/// }
/// # Ok::<(), sgmap::Error>(())
/// ```
///
/// Collect completions from the thread that submitted. The kernel finishes
/// an io_uring command (and frees its block request) in work that runs on
/// the submitting thread when it next enters the ring or returns to user
/// space. So while commands are in flight, anything on that thread that
/// waits in the kernel for the device's requests to drain never returns:
/// seen on 7.2.7, writing `1` to the device's sysfs `delete` from the
/// submitting thread with 8 reads in flight hung past 60 s, while the same
/// write from another thread, with this one in [`BsgRing::wait`], ended at
/// once with every read complete.
///
/// A buffer belongs to the ring from submit to completion:
///
/// ```compile_fail,E0382
/// use sgmap::{cdb::Cdb, BsgRing, Command, Payload};
/// let mut ring = BsgRing::open("/dev/sg0").unwrap();
/// let buf = vec![0u8; 4096];
/// ring.submit(&Command::new(Cdb::read_10(0, 8)), Payload::read(buf)).unwrap();
/// buf[0] = 1; // error: `buf` moved into the ring
/// ```
pub struct BsgRing {
    ring: IoUring<squeue::Entry128, cqueue::Entry32>,
    /// The eventfd registered with the ring (IORING_REGISTER_EVENTFD),
    /// once asked for; closed after the ring.
    event_fd: Option<EventFd>,
    fd: Fd,
    origin: PathBuf,
    id: u64,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// The CDB of slot `i`, which the kernel reads when it issues the
    /// command. Allocated once, never resized: the addresses stay valid.
    cdbs: Box<[[u8; MAX_CDB_LEN]]>,
    /// Where the kernel writes slot `i`'s sense data when it completes.
    sense: Box<[[u8; SENSE_LEN]]>,
    ready: VecDeque<std::result::Result<Completion, Refused>>,
    /// Slots whose entry is in the submission queue but not yet consumed
    /// by `io_uring_enter`, in queue order.
    queued: VecDeque<u32>,
    /// Reaped completion entries, reused: (user_data, res, res2).
    cqes: Vec<(u64, i32, u64)>,
    /// The queue's DMA alignment mask: buffers passing it are mapped, not copied.
    dma_mask: usize,
    registered: Option<(usize, usize)>,
    /// Whether to read the clock for [`Outcome::duration`].
    timed: bool,
    next_ticket: u64,
    peak: usize,
    enters: u64,
}

impl fmt::Debug for BsgRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BsgRing")
            .field("path", &self.fd.path())
            .field("origin", &self.origin)
            .field("depth", &self.slots.len())
            .field("in_flight", &self.in_flight())
            .field("queued", &self.queued.len())
            .field("ready", &self.ready.len())
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

impl BsgRing {
    /// Opens the bsg node of `path` read-write with a ring of
    /// [`RING_DEFAULT_DEPTH`](crate::RING_DEFAULT_DEPTH). `path` may be an sg node (`/dev/sgN`), the block
    /// device of a SCSI disk, or the bsg node (`/dev/bsg/H:C:T:L`).
    pub fn open(path: impl AsRef<Path>) -> Result<BsgRing> {
        Self::open_with(path.as_ref(), RingOptions::default())
    }

    /// Options for opening a ring.
    pub fn options() -> RingOptions {
        RingOptions::new()
    }

    fn open_with(path: &Path, opts: RingOptions) -> Result<BsgRing> {
        if opts.depth == 0 || opts.depth > MAX_DEPTH {
            return Err(Error::InvalidRequest {
                device: path.to_path_buf(),
                command: "io_uring setup".into(),
                reason: format!(
                    "a ring depth of {} is out of range: use 1 to {MAX_DEPTH}",
                    opts.depth
                ),
            });
        }
        let node = bsg_node(path)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!opts.read_only)
            .custom_flags(nix::fcntl::OFlag::O_CLOEXEC.bits())
            .open(&node)
            .map_err(|source| Error::Open {
                path: node.clone(),
                hint: match source.raw_os_error().map(Errno::from_raw) {
                    Some(Errno::EACCES | Errno::EPERM) => {
                        "permission denied: bsg nodes are usually root-only (mode 0600); run as root \
                         or give your user access to the node (a udev rule for /dev/bsg/*)"
                    }
                    Some(Errno::ENOENT) => "the bsg node is gone: the device may have been removed",
                    _ => "check the node",
                },
                source,
            })?;
        let fd = Fd::new(OwnedFd::from(file), node.clone(), opts.read_only).on_bsg();
        let ring = IoUring::<squeue::Entry128, cqueue::Entry32>::builder()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(opts.depth.saturating_mul(2))
            .build(opts.depth)
            .map_err(|source| ring_setup_error(&node, source))?;
        let depth = opts.depth as usize;
        let mut ring = BsgRing {
            ring,
            event_fd: None,
            fd,
            origin: path.to_path_buf(),
            id: NEXT_RING.fetch_add(1, Ordering::Relaxed),
            slots: (0..depth).map(|_| None).collect(),
            free: (0..opts.depth).rev().collect(),
            cdbs: vec![[0u8; MAX_CDB_LEN]; depth].into_boxed_slice(),
            sense: vec![[0u8; SENSE_LEN]; depth].into_boxed_slice(),
            ready: VecDeque::new(),
            queued: VecDeque::new(),
            cqes: Vec::with_capacity(depth),
            dma_mask: dma_mask(&node),
            registered: None,
            timed: opts.timed,
            next_ticket: 0,
            peak: 0,
            enters: 0,
        };
        ring.probe()?;
        ring.learn_block_size();
        Ok(ring)
    }

    /// Asks the device its block size with READ CAPACITY(10) through the
    /// ring (passing over a UNIT ATTENTION or two), so that `submit` can
    /// refuse a READ or WRITE whose buffer is short of its blocks on a disk
    /// of 4096-byte blocks too. A device that does not answer (not a disk,
    /// a fault) leaves it unknown: the check then counts 512 bytes a block.
    /// The ring's tickets, peak and `enters` start over afterwards.
    fn learn_block_size(&mut self) {
        let cmd =
            Command::new(crate::cdb::Cdb::read_capacity_10()).timeout(Duration::from_secs(10));
        for _ in 0..3 {
            if self.submit(&cmd, Payload::read(vec![0u8; 8])).is_err() {
                break;
            }
            let Ok(c) = self.wait() else { break };
            if c.outcome.is_good() {
                let size = match crate::response::Capacity::parse_10(c.bytes()) {
                    Ok(cap) => Some(cap.block_size),
                    Err(crate::response::ResponseError::NeedsReadCapacity16 { block_size }) => {
                        Some(block_size)
                    }
                    Err(_) => None,
                };
                if let Some(b) = size.filter(|b| *b >= 512) {
                    let _ = self.fd.block_size().set(b);
                }
                break;
            }
        }
        self.next_ticket = 0;
        self.peak = 0;
        self.enters = 1;
    }

    /// Sends one command without a CDB: Linux 7.1+ refuses it with EINVAL
    /// after finding its io_uring handler; older kernels' bsg has none and
    /// answer EOPNOTSUPP. No SCSI command reaches the device.
    fn probe(&mut self) -> Result<()> {
        let cmd = sys::bsg_uring_cmd {
            protocol: sys::bsg::BSG_PROTOCOL_SCSI,
            subprotocol: sys::bsg::BSG_SUB_PROTOCOL_SCSI_CMD,
            ..Default::default()
        };
        let entry = opcode::UringCmd80::new(types::Fd(self.fd.as_fd().as_raw_fd()), 0)
            .cmd(cmd.to_bytes())
            .build()
            .user_data(PROBE);
        // SAFETY: the command carries no address at all (no CDB, no sense,
        // no data), so the kernel reads nothing beyond the entry itself.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| {
            self.fd
                .invalid("io_uring probe", "the new ring has no free entry")
        })?;
        let res = loop {
            match self.ring.submitter().submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(Errno::EINTR as i32) => {}
                Err(e) => return Err(self.fd.os_error("io_uring_enter (probe)", errno_of(&e))),
            }
            let mut cq = self.ring.completion();
            if let Some(c) = cq.find(|c| c.user_data() == PROBE) {
                break c.result();
            }
        };
        self.enters += 1;
        if res != -(Errno::EOPNOTSUPP as i32) && res != -(Errno::ENOTTY as i32) {
            // EINVAL (no CDB) from 7.1+; anything else also came from a handler.
            return Ok(());
        }
        Err(Error::Open {
            path: self.fd.path().to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "{}'s bsg driver has no SCSI passthrough through io_uring \
                     (IORING_OP_URING_CMD on the bsg node answered {:?})",
                    kernel_release(),
                    Errno::from_raw(-res)
                ),
            ),
            hint: "SCSI passthrough through io_uring on bsg needs Linux 7.1 or later; on \
                   this kernel use sgmap's Queue or Pool (the sg driver's v3 interface)",
        })
    }

    /// The bsg node the ring drives, e.g. `/dev/bsg/0:0:0:0`.
    pub fn path(&self) -> &Path {
        self.fd.path()
    }

    /// The path the ring was opened from (an sg node, say).
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The most commands in flight at once.
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// Commands submitted whose completion has not been handed out yet.
    pub fn pending(&self) -> usize {
        self.in_flight() + self.ready.len()
    }

    /// Commands the ring holds: queued or in the kernel, not yet reaped.
    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Commands queued in the ring that no `io_uring_enter` has passed to
    /// the kernel yet.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// The most commands this ring has held at once.
    pub fn peak_in_flight(&self) -> usize {
        self.peak
    }

    /// `io_uring_enter` calls made so far: how many system calls the
    /// commands cost. A fresh ring shows 1: opening sends one probe (a
    /// command without a CDB, which never reaches the device) to learn that
    /// the kernel takes SCSI commands through io_uring, then a READ
    /// CAPACITY for the block size, which is not counted.
    pub fn enters(&self) -> u64 {
        self.enters
    }

    /// The queue's DMA alignment rule, as a mask: a buffer whose address and
    /// length pass it is mapped (pinned) by the kernel, else copied.
    /// From the block device's `queue/dma_alignment` in sysfs when the
    /// device has one, else the SCSI midlayer's default (3 on x86, where
    /// [`Device::dma_alignment`](crate::Device::dma_alignment) gives 4 by
    /// the same rule), else 511 (the block layer's default).
    pub fn dma_alignment_mask(&self) -> usize {
        self.dma_mask
    }

    /// Registers an eventfd with the ring (`IORING_REGISTER_EVENTFD`), once,
    /// and returns it, for the caller's own event loop (`poll`, `epoll`):
    /// it polls readable when a completion has been posted.
    ///
    /// The rule: poll it only after [`try_complete`](Self::try_complete)
    /// has returned `None`; when it is readable, call `try_complete` until
    /// it returns `None` again. `try_complete` resets the eventfd whenever
    /// it finds nothing ready, so the fd never stays readable for
    /// completions already handed out (at worst one wake-up finds nothing),
    /// and the caller need not read it. The ring keeps owning the fd: do not
    /// close it or read it.
    ///
    /// Completions are posted by task work of the thread that submitted the
    /// commands (see the module's notes): a submitting thread blocked in
    /// `poll` is woken for it; a thread polling for commands another thread
    /// submitted sees them only once that thread enters the kernel.
    /// A second call returns the same fd.
    pub fn register_event_fd(&mut self) -> Result<BorrowedFd<'_>> {
        if self.event_fd.is_none() {
            let what = "IORING_REGISTER_EVENTFD";
            let efd =
                EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                    .map_err(|e| self.fd.os_error("eventfd", e))?;
            self.ring
                .submitter()
                .register_eventfd(efd.as_raw_fd())
                .map_err(|e| self.fd.os_error(what, errno_of(&e)))?;
            self.event_fd = Some(efd);
        }
        Ok(self.event_fd().expect("registered just above"))
    }

    /// The eventfd from [`register_event_fd`](Self::register_event_fd), if
    /// one was registered.
    pub fn event_fd(&self) -> Option<BorrowedFd<'_>> {
        self.event_fd.as_ref().map(|f| f.as_fd())
    }

    /// Resets the eventfd's counter, if there is one (a non-blocking read;
    /// EAGAIN means it was already zero).
    fn clear_event_fd(&self) {
        if let Some(efd) = &self.event_fd {
            let _ = efd.read();
        }
    }

    /// Registers `count` page-aligned buffers of `len` bytes each (rounded
    /// up to a page) with the kernel, once per ring, and hands them out.
    /// Their pages stay pinned until the ring is dropped.
    pub fn register_buffers(&mut self, count: usize, len: usize) -> Result<Vec<FixedBuf>> {
        let what = "IORING_REGISTER_BUFFERS";
        if self.registered.is_some() {
            return Err(self.fd.invalid(
                what,
                "this ring's buffers are already registered (once per ring); reuse those, or open another ring",
            ));
        }
        if count == 0 || count > 16_384 || len == 0 || len > 1 << 30 {
            return Err(self.fd.invalid(
                what,
                format!(
                    "{count} buffers of {len} bytes: the kernel takes 1 to 16384 buffers of 1 byte to 1 GiB"
                ),
            ));
        }
        let cap = len.div_ceil(page_size()) * page_size();
        let mut bufs: Vec<FixedBuf> = (0..count)
            .map(|i| FixedBuf {
                buf: DirectBuf::new(cap),
                len,
                ring: self.id,
                index: i as u16,
            })
            .collect();
        let iov: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.buf.as_mut_ptr().cast(),
                iov_len: cap,
            })
            .collect();
        // SAFETY: each iovec covers one live DirectBuf allocation of `cap`
        // bytes. The kernel pins those pages and holds them until the ring
        // is dropped; it reads or writes them only for a command that names
        // the buffer, and such a command owns the FixedBuf until it is reaped.
        unsafe { self.ring.submitter().register_buffers(&iov) }.map_err(|e| {
            let errno = errno_of(&e);
            if errno == Errno::ENOMEM {
                self.fd.invalid(
                    what,
                    format!(
                        "the kernel could not pin {count} × {cap} bytes (ENOMEM): RLIMIT_MEMLOCK \
                         (ulimit -l) is too low without CAP_IPC_LOCK; raise it or register less"
                    ),
                )
            } else {
                self.fd.os_error(what, errno)
            }
        })?;
        self.registered = Some((count, cap));
        Ok(bufs)
    }

    /// Queues `cmd` with `data` in the ring and returns at once, without a
    /// system call: [`flush`](Self::flush) or any wait hands the queued
    /// commands to the kernel, all in one `io_uring_enter`.
    ///
    /// The ring owns `data` until the command is collected. With
    /// [`depth`](Self::depth) commands already held, this first waits for one
    /// of them to complete and keeps that completion for the next wait.
    /// A [`FixedBuf`] registered with this ring goes as a registered buffer;
    /// any other buffer is mapped by the kernel for the command (pinned when
    /// it passes the queue's DMA alignment, else copied: the outcome's
    /// [`mode`](Outcome::mode) says which, by the same rule).
    ///
    /// On failure the buffer comes back in [`Rejected`]; the kernel never saw it.
    pub fn submit(&mut self, cmd: &Command, mut data: Payload) -> Result<Ticket, Rejected> {
        let name = command_name(cmd.cdb());
        if self.fd.read_only() {
            if let Some(why) = crate::io::read_only_refusal(cmd.cdb().opcode(), data.direction()) {
                return Err(Rejected::new(self.fd.invalid(name, why), data));
            }
        }
        if cmd.queues_at_tail() {
            let e = self.fd.invalid(
                name,
                "struct bsg_uring_cmd has no queueing flag, so at_tail() cannot be honoured \
                 through io_uring; submit without it",
            );
            return Err(Rejected::new(e, data));
        }
        let len = data.len();
        let known = self.fd.block_size().get().copied();
        if let Some(why) = crate::io::transfer_refusal(cmd.cdb(), data.direction(), len, known) {
            return Err(Rejected::new(self.fd.invalid(name, why), data));
        }
        let Ok(len32) = u32::try_from(len) else {
            let e = self.fd.invalid(
                name,
                format!("a transfer of {len} bytes is too long: a bsg command carries less than 4 GiB; split it"),
            );
            return Err(Rejected::new(e, data));
        };
        if self.free.is_empty() {
            if let Err(e) = self.wait_for_room() {
                return Err(Rejected::new(e.into(), data));
            }
        }
        let Some(i) = self.free.pop() else {
            let e = self.fd.invalid(
                name,
                "no slot is free although a completion was just reaped",
            );
            return Err(Rejected::new(e, data));
        };
        let slot = i as usize;
        let ticket = Ticket(self.next_ticket);
        let bytes = cmd.cdb().as_bytes();
        self.cdbs[slot][..bytes.len()].copy_from_slice(bytes);
        let fixed = match data.buffer() {
            Some(IoBuf::Registered(b)) if b.ring == self.id => Some(b.index),
            _ => None,
        };
        let mode = self.mode_for(&data);
        let addr = data.as_mut_ptr() as u64;
        let mut c = sys::bsg_uring_cmd {
            request: self.cdbs[slot].as_ptr() as u64,
            request_len: bytes.len() as u32,
            protocol: sys::bsg::BSG_PROTOCOL_SCSI,
            subprotocol: sys::bsg::BSG_SUB_PROTOCOL_SCSI_CMD,
            max_response_len: SENSE_LEN as u32,
            response: self.sense[slot].as_mut_ptr() as u64,
            timeout_ms: cmd.timeout_ms(),
            ..Default::default()
        };
        match data.direction() {
            Direction::FromDevice => (c.din_xferp, c.din_xfer_len) = (addr, len32),
            Direction::ToDevice => (c.dout_xferp, c.dout_xfer_len) = (addr, len32),
            Direction::None => {}
        }
        let entry = opcode::UringCmd80::new(types::Fd(self.fd.as_fd().as_raw_fd()), 0)
            .cmd(c.to_bytes())
            .buf_index(fixed)
            .build()
            .user_data(user_data(slot, ticket));
        // SAFETY: the entry points at this ring's CDB and sense arrays for
        // slot `i` (allocated once, freed only after every command has been
        // reaped, or leaked) and at `data`'s buffer, which slot `i` owns,
        // untouched, until the completion is reaped; a registered index
        // names a buffer this ring registered, and the address lies inside it.
        if unsafe { self.ring.submission().push(&entry) }.is_err() {
            self.free.push(i);
            let e = self.fd.invalid(
                name,
                "the submission queue is full although a slot is free; this is a bug in sgmap",
            );
            return Err(Rejected::new(e, data));
        }
        self.next_ticket += 1;
        self.slots[slot] = Some(Slot {
            ticket,
            cdb: *cmd.cdb(),
            requested_mode: Mode::requested(cmd, len),
            mode,
            entered: None,
            data,
        });
        self.queued.push_back(i);
        self.peak = self.peak.max(self.in_flight());
        Ok(ticket)
    }

    /// Hands every queued command to the kernel in one `io_uring_enter`
    /// (retried through signals) and returns how many went. Completions
    /// already posted are collected on the way and kept for the next wait.
    pub fn flush(&mut self) -> Result<usize> {
        let before = self.queued.len();
        let mut idle = 0;
        while !self.queued.is_empty() {
            let left = self.queued.len();
            self.enter(0, None)?;
            self.reap();
            if self.queued.len() < left {
                idle = 0;
                continue;
            }
            // Interrupted, or the kernel short of resources: try again, a while.
            idle += 1;
            if idle == 1000 {
                return Err(self.fd.invalid(
                    "io_uring_enter",
                    format!(
                        "the kernel took none of {left} queued commands in 1000 tries; they stay queued \
                         (a later flush or wait hands them over)"
                    ),
                ));
            }
        }
        Ok(before)
    }

    /// The next completion, in the order the kernel posted them: hands the
    /// queued commands to the kernel and blocks until one is done. Fails
    /// (with no ticket) when nothing is pending.
    pub fn wait(&mut self) -> std::result::Result<Completion, Refused> {
        loop {
            if self.ready.is_empty() {
                self.reap();
            }
            if let Some(c) = self.ready.pop_front() {
                return c;
            }
            if self.in_flight() == 0 {
                return Err(Refused::ring(self.nothing_pending("wait")));
            }
            self.enter(1, None).map_err(Refused::ring)?;
        }
    }

    /// The completion of `ticket`, blocking until that command is done; the
    /// others are kept for later waits. A ticket that is not pending here
    /// (never submitted on this ring, or already collected) gives a
    /// [`Refused`] without a ticket, like a failure of the ring, though the
    /// ring is unharmed: it names the ticket in its message.
    pub fn wait_for(&mut self, ticket: Ticket) -> std::result::Result<Completion, Refused> {
        let is = |c: &std::result::Result<Completion, Refused>| match c {
            Ok(c) => c.ticket == ticket,
            Err(r) => r.ticket() == Some(ticket),
        };
        loop {
            if let Some(p) = self.ready.iter().position(is) {
                if let Some(c) = self.ready.remove(p) {
                    return c;
                }
            }
            if !self.slots.iter().flatten().any(|s| s.ticket == ticket) {
                return Err(Refused::ring(self.fd.invalid(
                    "wait_for",
                    format!("command {ticket} is not pending on this ring: it was never submitted here or was already collected"),
                )));
            }
            self.enter(1, None).map_err(Refused::ring)?;
            self.reap();
        }
    }

    /// The next completion if one arrives within `timeout`; `None` when the
    /// time passes first, or when nothing is pending.
    pub fn wait_timeout(
        &mut self,
        timeout: Duration,
    ) -> std::result::Result<Option<Completion>, Refused> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(c) = self.ready.pop_front() {
                return c.map(Some);
            }
            if self.in_flight() == 0 {
                return Ok(None);
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let timed_out = self.enter(1, left).map_err(Refused::ring)?;
            self.reap();
            if timed_out && self.ready.is_empty() {
                return Ok(None);
            }
        }
    }

    /// A completion that is ready now, without blocking (queued commands are
    /// handed to the kernel); `None` if none is.
    ///
    /// With an [`event_fd`](Self::event_fd), finding nothing ready also
    /// resets it (before looking), so it next polls readable only for a
    /// completion posted after this call looked.
    pub fn try_complete(&mut self) -> std::result::Result<Option<Completion>, Refused> {
        if self.ready.is_empty() {
            self.clear_event_fd();
            if self.in_flight() > 0 {
                // Runs the task work that posts finished commands' completions.
                self.enter(0, None).map_err(Refused::ring)?;
                self.reap();
            }
        }
        self.ready.pop_front().transpose()
    }

    /// Waits for every pending command and returns their completions (or
    /// refusals), in the order they were collected. A failure of the ring
    /// itself ends the list.
    pub fn drain(&mut self) -> Vec<std::result::Result<Completion, Refused>> {
        let mut all: Vec<_> = self.ready.drain(..).collect();
        while self.in_flight() > 0 {
            if let Err(e) = self.enter(1, None) {
                all.push(Err(Refused::ring(e)));
                break;
            }
            self.reap();
            all.extend(self.ready.drain(..));
        }
        all
    }

    fn nothing_pending(&self, what: &str) -> Error {
        self.fd
            .invalid(what, "no command is pending on this ring; submit one first")
    }

    /// Every slot is taken: reap until one is free.
    fn wait_for_room(&mut self) -> std::result::Result<(), Refused> {
        while self.free.is_empty() {
            self.enter(1, None).map_err(Refused::ring)?;
            self.reap();
        }
        Ok(())
    }

    /// One `io_uring_enter`: passes every queued entry and waits for `want`
    /// completions (0: none), at most `timeout`. Returns whether the wait
    /// timed out. A signal (EINTR) returns normally: the caller reaps and
    /// decides again, and nothing queued or in flight is lost.
    fn enter(&mut self, want: usize, timeout: Option<Duration>) -> Result<bool> {
        // Completions already posted count toward `want`.
        let want = if self.ring.completion().is_empty() {
            want
        } else {
            0
        };
        self.enters += 1;
        // Taken before: a waiting enter returns long after it submitted.
        let now = self.timed.then(Instant::now);
        let r = match timeout {
            None => self.ring.submitter().submit_and_wait(want),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
        };
        match r {
            Ok(n) => {
                self.entered(n, now);
                Ok(false)
            }
            Err(e) => match errno_of(&e) {
                Errno::ETIME => Ok(true),
                // Interrupted before anything was consumed, or the kernel
                // is short of resources: the entries stay queued.
                Errno::EINTR | Errno::EAGAIN | Errno::EBUSY => Ok(false),
                errno => Err(self.fd.os_error("io_uring_enter", errno)),
            },
        }
    }

    /// `n` queued entries were consumed by the kernel, at `now`.
    fn entered(&mut self, n: usize, now: Option<Instant>) {
        for _ in 0..n {
            let Some(i) = self.queued.pop_front() else {
                break;
            };
            if let Some(s) = self.slots[i as usize].as_mut() {
                s.entered = now;
            }
        }
    }

    /// Moves every posted completion into the ready list.
    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.big_cqe()[0])),
        );
        if !cqes.is_empty() {
            let now = self.timed.then(Instant::now);
            for (ud, res, res2) in cqes.drain(..) {
                if ud == PROBE {
                    continue;
                }
                let done = self.complete(ud, res, res2, now);
                self.ready.push_back(done);
            }
        }
        self.cqes = cqes;
    }

    /// Matches a completion to its slot, frees the slot, decodes the status.
    fn complete(
        &mut self,
        ud: u64,
        res: i32,
        res2: u64,
        now: Option<Instant>,
    ) -> std::result::Result<Completion, Refused> {
        let i = (ud & 0xffff_ffff) as usize;
        let slot = self
            .slots
            .get_mut(i)
            .and_then(|s| s.take_if(|s| user_data(i, s.ticket) == ud));
        let Some(slot) = slot else {
            return Err(Refused::ring(self.fd.invalid(
                "io_uring completion",
                format!("a completion (user_data {ud:#x}) that this ring did not submit"),
            )));
        };
        self.free.push(i as u32);
        if let Some(q) = self.queued.iter().position(|&q| q as usize == i) {
            // Completed without an enter that reported consuming it.
            self.queued.remove(q);
        }
        if res < 0 {
            let name = format!("{} through io_uring", command_name(&slot.cdb));
            let error = self.fd.os_error(name, Errno::from_raw(-res));
            return Err(Refused::command(error, slot.ticket, slot.data));
        }
        let st = sys::BsgScsiStatus::from_res2(res2);
        let requested = slot.data.len();
        let sense_len = usize::from(st.sense_len).min(SENSE_LEN);
        let masked = (st.device_status >> 1) & 0x7f;
        let info = if masked != 0 || st.host_status != 0 || st.driver_status != 0 {
            sys::SG_INFO_CHECK
        } else {
            sys::SG_INFO_OK
        };
        let fallback = (slot.requested_mode == Mode::Direct && slot.mode == Mode::Indirect)
            .then_some(Fallback::Misaligned);
        let outcome = Outcome {
            cdb: slot.cdb,
            status: st.device_status,
            host_status: st.host_status.into(),
            driver_status: st.driver_status.into(),
            info,
            sense: (sense_len > 0)
                .then(|| Sense::parse(&self.sense[i][..sense_len]))
                .flatten(),
            requested,
            resid: (st.resid as usize).min(requested),
            duration: match (slot.entered, now) {
                (Some(t), Some(now)) => now.saturating_duration_since(t),
                _ => Duration::ZERO,
            },
            requested_mode: slot.requested_mode,
            mode: slot.mode,
            fallback,
        };
        Ok(Completion {
            ticket: slot.ticket,
            outcome,
            data: slot.data,
        })
    }

    /// How the kernel moves `data`: mapped when the address and length pass
    /// the queue's DMA alignment (`blk_rq_aligned`), else through a copy.
    fn mode_for(&self, data: &Payload) -> Mode {
        match data.buffer() {
            Some(b) if !b.is_empty() => {
                if (b.as_ptr() as usize | b.len()) & self.dma_mask == 0 {
                    Mode::Direct
                } else {
                    Mode::Indirect
                }
            }
            _ => Mode::NoData,
        }
    }

    /// The kernel cannot be asked any more: leak every buffer it may still
    /// write (data, CDBs, sense) rather than free it.
    fn abandon(&mut self) {
        for s in self.slots.iter_mut() {
            if let Some(slot) = s.take() {
                std::mem::forget(slot.data);
            }
        }
        std::mem::forget(std::mem::take(&mut self.cdbs));
        std::mem::forget(std::mem::take(&mut self.sense));
    }
}

impl Drop for BsgRing {
    /// Hands any queued command to the kernel and waits for every command to
    /// complete (each is bounded by its timeout), so no buffer is freed while
    /// the kernel may use it. Should the ring fail, the buffers are leaked.
    fn drop(&mut self) {
        let mut failures = 0;
        loop {
            self.reap();
            self.ready.clear();
            if self.in_flight() == 0 {
                return;
            }
            if self.enter(1, None).is_err() {
                failures += 1;
                if failures >= 3 {
                    return self.abandon();
                }
            }
        }
    }
}

impl AsFd for BsgRing {
    /// The bsg node's fd.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A slot's `user_data`: the slot in the low half, the ticket's low half above.
fn user_data(slot: usize, ticket: Ticket) -> u64 {
    ((ticket.0 & 0xffff_ffff) << 32) | slot as u64
}

fn errno_of(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(Errno::EIO as i32))
}

/// `Linux 7.2.7`: the running kernel, for error messages.
fn kernel_release() -> String {
    nix::sys::utsname::uname().map_or_else(
        |_| "this kernel".into(),
        |u| format!("Linux {}", u.release().to_string_lossy()),
    )
}

fn ring_setup_error(node: &Path, source: std::io::Error) -> Error {
    let hint = match source.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOSYS) => {
            "this kernel was built without io_uring (CONFIG_IO_URING); SCSI passthrough through \
             io_uring on bsg needs Linux 7.1 or later with io_uring"
        }
        Some(Errno::EPERM) => {
            "io_uring is disabled for this process (sysctl kernel.io_uring_disabled, or a seccomp \
             policy); enable it, or use sgmap's Queue or Pool"
        }
        Some(Errno::ENOMEM) => {
            "the ring's memory could not be allocated or locked: lower the depth or raise RLIMIT_MEMLOCK"
        }
        Some(Errno::EINVAL) => {
            "the kernel refused the ring's flags (SQE128, CQE32, COOP_TASKRUN): \
             SCSI passthrough through io_uring on bsg needs Linux 7.1 or later"
        }
        _ => "see the errno",
    };
    Error::Open {
        path: node.to_path_buf(),
        source,
        hint,
    }
}

/// The queue's DMA alignment mask for the device behind bsg `node`, from a
/// block device's `queue/dma_alignment` when sysfs shows one; else the SCSI midlayer default.
fn dma_mask(node: &Path) -> usize {
    let read = || -> Option<usize> {
        let meta = std::fs::metadata(node).ok()?;
        let (maj, min) = (
            nix::sys::stat::major(meta.rdev()),
            nix::sys::stat::minor(meta.rdev()),
        );
        let dev = Path::new(SYSFS_ROOT).join(format!("dev/char/{maj}:{min}/device/block"));
        let disk = std::fs::read_dir(dev).ok()?.flatten().next()?.path();
        let text = std::fs::read_to_string(disk.join("queue/dma_alignment")).ok()?;
        text.trim().parse().ok()
    };
    // Without a block device, the SCSI midlayer's default, the same rule
    // as Device::dma_alignment; else the block layer's 511.
    read().unwrap_or_else(|| crate::io::midlayer_dma_alignment().map_or(511, |a| a - 1))
}

/// The bsg node of `path`: `path` itself when it is one, else the one sysfs
/// names for an sg node (`/sys/class/scsi_generic/sgN/device/bsg/`) or a
/// SCSI disk's block device.
pub fn bsg_node(path: impl AsRef<Path>) -> Result<PathBuf> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(|source| Error::Open {
        path: path.to_path_buf(),
        hint: "give an sg node (/dev/sgN) or a bsg node (/dev/bsg/H:C:T:L); list them with `sgmap list`",
        source,
    })?;
    let ft = meta.file_type();
    let class = if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else {
        return Err(Error::NotSg {
            path: path.to_path_buf(),
            reason: "it is not a device node; give an sg node (/dev/sgN) or a bsg node (/dev/bsg/H:C:T:L)"
                .into(),
        });
    };
    let (maj, min) = (
        nix::sys::stat::major(meta.rdev()),
        nix::sys::stat::minor(meta.rdev()),
    );
    let sysdev = Path::new(SYSFS_ROOT).join(format!("dev/{class}/{maj}:{min}"));
    let subsystem = std::fs::read_link(sysdev.join("subsystem"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    match subsystem.as_str() {
        "bsg" => Ok(path.to_path_buf()),
        "scsi_generic" | "block" => {
            let dir = sysdev.join("device/bsg");
            let name = std::fs::read_dir(&dir)
                .ok()
                .and_then(|d| d.flatten().next())
                .map(|e| e.file_name().to_string_lossy().into_owned());
            let Some(name) = name else {
                return Err(Error::Open {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("the device has no bsg node ({} is missing)", dir.display()),
                    ),
                    hint: "the kernel was built without the bsg driver (CONFIG_BLK_DEV_BSG, and \
                           CONFIG_BLK_DEV_BSG_COMMON): SCSI passthrough through io_uring needs it \
                           and Linux 7.1 or later",
                });
            };
            let node = Path::new("/dev/bsg").join(&name);
            if !node.exists() {
                let dev = std::fs::read_to_string(
                    Path::new(SYSFS_ROOT).join("class/bsg").join(&name).join("dev"),
                )
                .unwrap_or_default();
                return Err(Error::Open {
                    path: node.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!(
                            "sysfs names bsg device {name} (char {}) but {} does not exist",
                            dev.trim(),
                            node.display()
                        ),
                    ),
                    hint: "no devtmpfs or udev made the node: mount devtmpfs on /dev, or create it \
                           with mknod /dev/bsg/NAME c MAJOR MINOR (numbers from /sys/class/bsg/NAME/dev)",
                });
            }
            Ok(node)
        }
        other => Err(Error::NotSg {
            path: path.to_path_buf(),
            reason: format!(
                "it is a {} device, not a SCSI one; give an sg node (/dev/sgN) or a bsg node (/dev/bsg/H:C:T:L)",
                if other.is_empty() { "non-SCSI" } else { other }
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_names_slot_and_ticket() {
        let ud = user_data(255, Ticket(0x1_0000_0007));
        assert_eq!(ud & 0xffff_ffff, 255);
        assert_eq!(ud >> 32, 7);
        assert_ne!(ud, PROBE);
        assert_ne!(user_data(3, Ticket(1)), user_data(3, Ticket(2)));
    }

    #[test]
    fn fixed_buf_clone_is_unregistered_and_length_is_bounded() {
        let mut b = FixedBuf {
            buf: DirectBuf::new(8192),
            len: 4096,
            ring: 7,
            index: 3,
        };
        assert_eq!((b.len(), b.capacity(), b.index()), (4096, 8192, 3));
        b[0] = 9;
        b.set_len(8192);
        let c = b.clone();
        assert_eq!((c.ring, c.len(), c[0]), (0, 8192, 9));
        assert_eq!(c.as_ptr() as usize % page_size(), 0);
        let r = std::panic::catch_unwind(move || b.set_len(8193));
        assert!(r.is_err());
    }

    #[test]
    fn refused_names_the_ticket_and_converts_to_the_error() {
        let err = Error::InvalidRequest {
            device: "/dev/bsg/0:0:0:0".into(),
            command: "READ(10)".into(),
            reason: "too long".into(),
        };
        let r = Refused::command(err, Ticket(4), Payload::read(vec![1u8; 8]));
        assert_eq!(
            r.to_string(),
            "command #4: /dev/bsg/0:0:0:0: READ(10): too long"
        );
        assert_eq!((r.ticket(), r.data().len()), (Some(Ticket(4)), 8));
        let e: Error = r.into();
        assert!(matches!(e, Error::InvalidRequest { .. }));
    }

    #[test]
    fn a_regular_file_is_not_a_bsg_node() {
        let e = bsg_node("/proc/self/status").unwrap_err();
        assert!(e.to_string().contains("not a device node"), "{e}");
        let e = bsg_node("/nonexistent/sg9").unwrap_err();
        assert!(matches!(e, Error::Open { .. }), "{e}");
    }
}
