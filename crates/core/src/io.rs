//! The one place that talks to the sg driver: the fd, its ioctls, and turning
//! an [`sg_io_hdr`](sgmap_sys::sg_io_hdr) into an [`Outcome`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::PollFlags;
use sgmap_sys as sys;

use crate::cdb::Cdb;
use crate::command::{Command, Direction};
use crate::error::{Driver, Error, OsErrorKind, Result};
use crate::outcome::{Fallback, Mode, Outcome};
use crate::sense::Sense;

/// Longest sense buffer the v3 interface can return (`mx_sb_len` is a byte).
pub(crate) const SENSE_LEN: usize = 252;

/// An open sg fd, the path it came from (for error messages), and whether
/// it was opened read-only (sgmap then sends only read-safe commands on it).
#[derive(Debug)]
pub(crate) struct Fd {
    fd: OwnedFd,
    path: PathBuf,
    /// The queue's direct-IO alignment, looked up on first need.
    dma_alignment: std::sync::OnceLock<Option<usize>>,
    read_only: bool,
    /// Which driver the node belongs to, for the errno texts.
    driver: Driver,
    /// The device's logical block size once a READ CAPACITY told it: the
    /// transfer check then knows how many bytes a READ or WRITE needs.
    block_size: std::sync::OnceLock<u32>,
}

impl Fd {
    pub(crate) fn new(fd: OwnedFd, path: PathBuf, read_only: bool) -> Self {
        Self {
            fd,
            path,
            dma_alignment: std::sync::OnceLock::new(),
            read_only,
            driver: Driver::Sg,
            block_size: std::sync::OnceLock::new(),
        }
    }

    /// The device's logical block size, when a READ CAPACITY has told it.
    pub(crate) fn block_size(&self) -> &std::sync::OnceLock<u32> {
        &self.block_size
    }

    /// Whether the fd was opened read-only.
    pub(crate) fn read_only(&self) -> bool {
        self.read_only
    }

    /// The alignment direct IO needs of a buffer's address and length on
    /// this node's queue (see [`queue_dma_alignment`]). Cached.
    pub(crate) fn dma_alignment(&self) -> Option<usize> {
        *self
            .dma_alignment
            .get_or_init(|| queue_dma_alignment(self.fd.as_fd()))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The same fd, answering for the bsg driver (its errnos mean other things).
    pub(crate) fn on_bsg(mut self) -> Self {
        self.driver = Driver::Bsg;
        self
    }

    pub(crate) fn os_error(&self, command: impl Into<String>, errno: Errno) -> Error {
        Error::Os {
            device: self.path.clone(),
            command: command.into(),
            errno,
            kind: OsErrorKind::from_errno(errno),
            driver: self.driver,
        }
    }

    pub(crate) fn invalid(&self, command: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidRequest {
            device: self.path.clone(),
            command: command.into(),
            reason: reason.into(),
        }
    }

    /// An `int`-returning `_GET_` ioctl.
    pub(crate) fn get_int(
        &self,
        name: &'static str,
        f: unsafe fn(i32, *mut i32) -> nix::Result<i32>,
    ) -> Result<i32> {
        let mut v = 0;
        // SAFETY: `f` is one of sgmap-sys's `_GET_` wrappers, which write one
        // int through the pointer; `v` is a valid int and the fd is open.
        unsafe { f(self.fd.as_raw_fd(), &mut v) }.map_err(|e| self.os_error(name, e))?;
        Ok(v)
    }

    /// An `int`-taking `_SET_` ioctl.
    pub(crate) fn set_int(
        &self,
        name: &'static str,
        f: unsafe fn(i32, *const i32) -> nix::Result<i32>,
        value: i32,
    ) -> Result<()> {
        // SAFETY: `f` is one of sgmap-sys's `_SET_` wrappers, which read one int
        // through the pointer; `value` lives across the call and the fd is open.
        unsafe { f(self.fd.as_raw_fd(), &value) }.map_err(|e| self.os_error(name, e))?;
        Ok(())
    }

    pub(crate) fn scsi_id(&self) -> Result<sys::sg_scsi_id> {
        let mut id = sys::sg_scsi_id::default();
        // SAFETY: `id` is a valid sg_scsi_id for the kernel to fill; the fd is open.
        unsafe { sys::ioctl::sg_get_scsi_id(self.fd.as_raw_fd(), &mut id) }
            .map_err(|e| self.os_error("SG_GET_SCSI_ID", e))?;
        Ok(id)
    }

    pub(crate) fn request_table(&self) -> Result<[sys::sg_req_info; sys::SG_MAX_QUEUE]> {
        let mut t = [sys::sg_req_info::default(); sys::SG_MAX_QUEUE];
        // SAFETY: `t` is an array of SG_MAX_QUEUE entries, as the ioctl expects.
        unsafe { sys::ioctl::sg_get_request_table(self.fd.as_raw_fd(), &mut t) }
            .map_err(|e| self.os_error("SG_GET_REQUEST_TABLE", e))?;
        Ok(t)
    }

    /// SG_GET_TIMEOUT returns the value itself.
    pub(crate) fn default_timeout_ticks(&self) -> Result<i32> {
        // SAFETY: SG_GET_TIMEOUT takes no argument; the fd is open.
        unsafe { sys::ioctl::sg_get_timeout(self.fd.as_raw_fd()) }
            .map_err(|e| self.os_error("SG_GET_TIMEOUT", e))
    }

    /// Runs one command and waits for it, by `how`; see [`Submit`] for why
    /// each way is safe against signals.
    ///
    /// Whatever signals arrive meanwhile, this returns only once the driver
    /// has let go of the request: its result, or an "interrupted" error when
    /// the driver dropped the result of a request a signal had orphaned. The
    /// command is sent once.
    ///
    /// # Safety
    ///
    /// `data` must be valid for reads (`ToDevice`) or writes (`FromDevice`) of
    /// `len` bytes until this returns, and nothing else may access it meanwhile;
    /// it is ignored (and may be null) for `Mode::Mmap` and `Direction::None`.
    /// [`Submit::Ioctl`] only for mmap IO on an fd with `SG_SET_KEEP_ORPHAN` on,
    /// or on a block node.
    pub(crate) unsafe fn sg_io(
        &self,
        cmd: &Command,
        direction: Direction,
        data: *mut u8,
        len: usize,
        mode: Mode,
        how: Submit,
    ) -> Result<Outcome> {
        let name = crate::outcome::command_name(cmd.cdb());
        let mut sense = [0u8; SENSE_LEN];
        let mut hdr = prepare(self, cmd, direction, data, len, mode, &mut sense)
            .map_err(|r| self.invalid(name, r))?;
        hdr.pack_id = next_sync_pack_id();
        let pack_id = hdr.pack_id;
        let mut how = how;
        if let Submit::Reserve(otherwise) = how {
            // An indirect command that fits the fd's reserved buffer goes
            // through it anyway; SG_FLAG_MMAP_IO with a data pointer keeps that
            // copy and adds the driver's guard: while the reserved buffer is in
            // use (by this command's own orphan, kept until read), another
            // SG_IO with the flag fails EBUSY without sending anything.
            hdr.flags |= sys::SG_FLAG_MMAP_IO;
            // SAFETY: as for the other SG_IOs below; an orphan is collected
            // before this returns.
            let r = unsafe { sys::ioctl::sg_io(self.fd.as_raw_fd(), &mut hdr) };
            match r {
                Ok(_) => {
                    return Ok(finish(&hdr, *cmd.cdb(), &sense, mode, data, len, || {
                        self.dma_alignment()
                    }))
                }
                Err(e) => {
                    let left = self.collect_leftovers(pack_id, name)?;
                    match (left.responses.first(), left.lost, e) {
                        (Some(done), 0, _) if left.responses.len() == 1 => {
                            hdr = *done;
                            let moved = len.saturating_sub(usize::try_from(hdr.resid).unwrap_or(0));
                            if direction == Direction::FromDevice {
                                mark_written(data, moved.min(len));
                            }
                            return Ok(finish(&hdr, *cmd.cdb(), &sense, mode, data, len, || {
                                self.dma_alignment()
                            }));
                        }
                        (None, 0, Errno::EBUSY | Errno::ENOMEM) => {
                            // Nothing was sent: the buffer is another
                            // command's (a thread's) or smaller than thought.
                            hdr.flags &= !sys::SG_FLAG_MMAP_IO;
                            how = match otherwise {
                                FallbackSubmit::WriteRead => Submit::WriteRead,
                                FallbackSubmit::IoctlThenCheck => Submit::IoctlThenCheck,
                            };
                        }
                        (None, 0, e) => return Err(self.os_error(name, e)),
                        _ => {
                            return Err(Error::Interrupted {
                                device: self.path.clone(),
                                command: name.to_string(),
                                sent: left.sent(),
                            })
                        }
                    }
                }
            }
        }
        // Whether the response came back by read(), whose writes into the
        // data buffer Valgrind's memcheck does not see.
        let mut by_read = false;
        if how == Submit::WriteRead {
            // SAFETY: `hdr` points at `cmd`'s CDB and `sense`, which live
            // across this call, and at the caller's `data`, valid for `len`
            // bytes per this function's contract (or null for mmap IO and
            // no-data commands); the request is read back below before
            // this returns, so every pointer stays valid while the driver
            // holds it.
            match unsafe { submit_raw(self.as_fd(), &hdr) } {
                Ok(()) => match self.read_own(pack_id, name) {
                    Ok(done) => {
                        hdr = done;
                        by_read = true;
                    }
                    Err(e) => {
                        // read() refused (EPERM: credentials changed under
                        // us): wait until the device is done with the request.
                        self.collect_leftovers(pack_id, name)?;
                        return Err(e);
                    }
                },
                // The driver refuses read() and write() on an fd whose opener
                // had other credentials (a fork() child inherits the fd with
                // new ones; a setuid changes them), before taking anything.
                // Only SG_IO remains: send it so, with the check after.
                Err(Errno::EPERM) => how = Submit::IoctlThenCheck,
                Err(e) => return Err(self.os_error(name, e)),
            }
        }
        match how {
            Submit::WriteRead | Submit::Reserve(_) => {}
            Submit::Ioctl | Submit::IoctlThenCheck => {
                // SAFETY: as above; an orphan is collected below, before this
                // returns, so every pointer stays valid while the driver holds it.
                let r = unsafe { sys::ioctl::sg_io(self.fd.as_raw_fd(), &mut hdr) };
                // A failed SG_IO may have left an orphan (EINTR), or be a
                // restarted ioctl's failure (EBUSY: the orphan holds the
                // reserved buffer). Without mmap IO a restart succeeds by
                // sending the command again, so then a success proves nothing.
                let left = if r.is_err() || how == Submit::IoctlThenCheck {
                    self.collect_leftovers(pack_id, name)?
                } else {
                    Leftovers::default()
                };
                let sent = left.sent() + u32::from(r.is_ok());
                match r {
                    _ if sent > 1 || (sent == 1 && left.lost > 0) => {
                        return Err(Error::Interrupted {
                            device: self.path.clone(),
                            command: name.to_string(),
                            sent,
                        })
                    }
                    Ok(_) => {}
                    Err(e) => match left.responses.first() {
                        Some(done) => {
                            hdr = *done;
                            by_read = true;
                        }
                        None => return Err(self.os_error(name, e)),
                    },
                }
            }
        }
        if by_read && direction == Direction::FromDevice && mode != Mode::Mmap {
            let moved = len.saturating_sub(usize::try_from(hdr.resid).unwrap_or(0));
            mark_written(data, moved.min(len));
        }
        Ok(finish(&hdr, *cmd.cdb(), &sense, mode, data, len, || {
            self.dma_alignment()
        }))
    }

    /// Reads back the response of this fd's request `pack_id` (with
    /// `SG_SET_FORCE_PACK_ID` on, `read()` returns exactly that one),
    /// waiting through signals: an interrupted `read()` takes nothing, so
    /// it is simply read again.
    fn read_own(&self, pack_id: i32, name: &str) -> Result<sys::sg_io_hdr> {
        loop {
            let mut got = sys::sg_io_hdr::new();
            got.pack_id = pack_id;
            // SAFETY: with SG_SET_FORCE_PACK_ID on, only the request `pack_id`
            // can be returned: the caller's, whose sense and data buffers live
            // until it returns. (`read_raw` retries EINTR itself.)
            match unsafe { read_raw(self.as_fd(), &mut got) } {
                Ok(()) if got.pack_id == pack_id => return Ok(got),
                Ok(()) => {
                    // SG_SET_FORCE_PACK_ID was turned off under us, and
                    // someone else's response was taken. Ours is still in
                    // flight with the caller's buffers: turn it back on and
                    // wait for ours all the same.
                    self.set_int("SG_SET_FORCE_PACK_ID", sys::ioctl::sg_set_force_pack_id, 1)?;
                }
                // O_NONBLOCK: wait until a response is ready, then read again.
                Err(Errno::EAGAIN) => {
                    crate::queue::poll_until(&[self.as_fd()], PollFlags::POLLIN, None)
                        .map_err(|e| self.os_error("poll", e))?;
                }
                Err(e) => return Err(self.os_error(format!("{name}: read() of the response"), e)),
            }
        }
    }

    /// After an `SG_IO`: waits for every request this fd still holds with
    /// `pack_id` (orphans a signal left) and reads their responses. Returns
    /// once the driver holds none of them, so none uses memory any more.
    fn collect_leftovers(&self, pack_id: i32, name: &str) -> Result<Leftovers> {
        let mut left = Leftovers::default();
        let mut first = true;
        loop {
            // A node without a request table (a block device) has no orphans.
            let Ok(table) = self.request_table() else {
                return Ok(left);
            };
            let ours = || {
                table
                    .iter()
                    .filter(|r| r.req_state != 0 && r.pack_id == pack_id)
            };
            let held = ours().count();
            if first {
                // No new request with this pack_id can appear: the ioctl has
                // returned. What the table holds now is all there is.
                left.lost = held;
                if held == 0 {
                    return Ok(left);
                }
                // Kept for read() when they complete, and read() picks them
                // by pack_id: both are on for fds that use SG_IO, and are set
                // again here in case someone turned them off.
                let _ = self.set_int("SG_SET_KEEP_ORPHAN", sys::ioctl::sg_set_keep_orphan, 1);
                self.set_int("SG_SET_FORCE_PACK_ID", sys::ioctl::sg_set_force_pack_id, 1)?;
                first = false;
            }
            if held == 0 {
                return Ok(left);
            }
            // req_state 2: done and waiting for read() (a kept orphan no
            // longer counts as SG_IO's); 1: still in the device; 3: being read.
            if ours().any(|r| r.req_state == 2 && r.sg_io_owned == 0) {
                match self.read_own(pack_id, name) {
                    Ok(done) => {
                        left.responses.push(done);
                        left.lost = left.lost.saturating_sub(1);
                        continue;
                    }
                    // This process may not read() the fd (its credentials are
                    // not the opener's): the device is done with the request,
                    // which stays unread; count it as lost.
                    Err(Error::Os {
                        errno: Errno::EPERM,
                        ..
                    }) => {
                        if ours().all(|r| r.req_state != 1) {
                            return Ok(left);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            // The driver drops an orphan's result on completion if keep-orphan
            // was off then; such an entry leaves the table without waking
            // anyone, so poll the table rather than block in read().
            let soon = std::time::Instant::now() + Duration::from_millis(5);
            crate::queue::poll_until(&[self.as_fd()], PollFlags::POLLIN, Some(soon))
                .map_err(|e| self.os_error("poll", e))?;
        }
    }
}

/// The orphans [`Fd::collect_leftovers`] found: the responses it read, and
/// how many were dropped by the driver instead.
#[derive(Debug, Default)]
struct Leftovers {
    responses: Vec<sys::sg_io_hdr>,
    lost: usize,
}

impl Leftovers {
    /// How many requests reached the device besides the ioctl's own.
    fn sent(&self) -> u32 {
        u32::try_from(self.responses.len() + self.lost).unwrap_or(u32::MAX)
    }
}

/// How a synchronous command goes to the driver.
///
/// `SG_IO` on an sg node waits interruptibly. A signal whose handler lacks
/// `SA_RESTART` ends it with EINTR and leaves the request orphaned, still in
/// the device with the caller's memory; with `SA_RESTART`, or a SIGSTOP and
/// SIGCONT, the kernel restarts the ioctl, which sends the command a second
/// time. So a plain `SG_IO` can neither promise that no memory is in use
/// when it returns nor that the command went once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submit {
    /// `write()` the header, then `read()` the response by its `pack_id`.
    /// `write()` returns as soon as the request is queued (nothing in it waits
    /// interruptibly), and a `read()` cut short by a signal takes nothing, so
    /// it is read again: the request is never orphaned and never sent twice.
    /// Two system calls per command. Where the driver refuses `write()` with
    /// EPERM (the fd was opened under other credentials: inherited across
    /// `fork()`, or before a setuid), the command goes as
    /// [`IoctlThenCheck`](Submit::IoctlThenCheck) instead.
    WriteRead,
    /// One `SG_IO`, where a success proves that the command went once:
    /// mmap IO on an fd with `SG_SET_KEEP_ORPHAN` on (a signal's orphan then
    /// keeps the reserved buffer until `read()` collects it, so a restarted
    /// ioctl fails EBUSY without sending anything, and sgmap collects the
    /// orphan), and block nodes (whose `SG_IO` waits uninterruptibly in the
    /// block layer). After a failure, orphans are collected.
    Ioctl,
    /// One `SG_IO`, then a look at the request table for orphans even after
    /// a success: for sg fds opened read-only, where `write()` is refused
    /// (EBADF). A restart there sends the command again; sgmap collects every
    /// copy and reports [`Error::Interrupted`] with how many went. One more
    /// ioctl per command.
    IoctlThenCheck,
    /// An indirect command that fits the fd's reserved buffer: one `SG_IO`
    /// with `SG_FLAG_MMAP_IO` and the data pointer, which copies through the
    /// reserved buffer as any such command does, and with `SG_SET_KEEP_ORPHAN`
    /// on makes a restart fail EBUSY without sending, as for mmap IO. When
    /// the buffer turns out busy (another thread's command) or small, the
    /// command goes the other way given, having sent nothing.
    Reserve(FallbackSubmit),
}

/// The way a [`Submit::Reserve`] command goes when the reserved buffer is
/// not free for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FallbackSubmit {
    /// As [`Submit::WriteRead`].
    WriteRead,
    /// As [`Submit::IoctlThenCheck`].
    IoctlThenCheck,
}

/// The `pack_id`s of sgmap's synchronous commands: 0x40000000 and up, clear
/// of a [`Queue`](crate::Queue)'s slot numbers (0 to 15) on the same fd.
pub(crate) const SYNC_PACK_ID_BASE: i32 = 0x4000_0000;

/// Tells Valgrind's memcheck that the kernel wrote `len` bytes at `ptr`:
/// it knows what `SG_IO` writes into the data buffer, but not what an sg
/// `read()` does, and would report the data read as uninitialised. Outside
/// Valgrind the sequence does nothing.
fn mark_written(ptr: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len > 0 && !ptr.is_null() {
        // memcheck's VG_USERREQ__MAKE_MEM_DEFINED: tool base ('M','C') + 2.
        const MAKE_MEM_DEFINED: u64 = ((b'M' as u64) << 24 | (b'C' as u64) << 16) + 2;
        let args: [u64; 6] = [MAKE_MEM_DEFINED, ptr as u64, len as u64, 0, 0, 0];
        // SAFETY: Valgrind's client request: rotating rdi by 3 + 13 + 61 + 51
        // = 128 bits leaves it as it was and `xchg rbx, rbx` changes nothing,
        // so natively this only sets rdx (declared); under Valgrind, memcheck
        // reads the six words at rax (`args`, alive across the asm) and marks
        // the range defined, writing no memory.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") args.as_ptr(),
                inout("rdx") 0u64 => _,
                inout("rdi") 0u64 => _,
                options(nostack),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, len);
}

static NEXT_PACK_ID: AtomicU32 = AtomicU32::new(0);

/// A process's own range of pack_ids, so that two processes sharing an fd
/// (after fork) never read each other's responses by pack_id.
fn seed_pack_ids() {
    // SAFETY: getpid has no preconditions and is async-signal-safe.
    let pid = unsafe { libc::getpid() } as u32;
    NEXT_PACK_ID.store((pid & 0x3fff) << 16, Ordering::Relaxed);
}

extern "C" fn reseed_in_child() {
    seed_pack_ids();
}

fn next_sync_pack_id() -> i32 {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        seed_pack_ids();
        // SAFETY: registers a fork child handler that only calls getpid and
        // stores an atomic, both async-signal-safe as such handlers must be.
        unsafe { libc::pthread_atfork(None, None, Some(reseed_in_child)) };
    });
    let n = NEXT_PACK_ID.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff;
    // In range: n < 2^30, so the sum is at most i32::MAX.
    SYNC_PACK_ID_BASE + n as i32
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Fills an `sg_io_hdr` for `cmd`, to be sent on `fd`. Errors are reasons
/// to refuse the request. Every command sgmap sends (`SG_IO`, a queue's or
/// a pool's `write()`) is built here, so the rules checked here hold for all.
pub(crate) fn prepare(
    fd: &Fd,
    cmd: &Command,
    direction: Direction,
    data: *mut u8,
    len: usize,
    mode: Mode,
    sense: &mut [u8; SENSE_LEN],
) -> std::result::Result<sys::sg_io_hdr, String> {
    if fd.read_only() {
        if let Some(why) = read_only_refusal(cmd.cdb().opcode(), direction) {
            return Err(why);
        }
    }
    if let Some(why) = crate::command::transfer_too_long(len) {
        return Err(why);
    }
    if direction == Direction::None && len != 0 {
        return Err("a command without a data direction cannot transfer data".into());
    }
    if let Some(why) = transfer_refusal(cmd.cdb(), direction, len, fd.block_size().get().copied()) {
        return Err(why);
    }
    let mut hdr = sys::sg_io_hdr::new();
    let cdb = cmd.cdb().as_bytes();
    hdr.cmd_len = cdb.len() as u8;
    // The kernel only reads the CDB.
    hdr.cmdp = cdb.as_ptr().cast_mut();
    hdr.mx_sb_len = SENSE_LEN as u8;
    hdr.sbp = sense.as_mut_ptr();
    hdr.dxfer_direction = match direction {
        Direction::None => sys::SG_DXFER_NONE,
        Direction::FromDevice => sys::SG_DXFER_FROM_DEV,
        Direction::ToDevice => sys::SG_DXFER_TO_DEV,
    };
    hdr.dxfer_len = len as u32;
    hdr.timeout = cmd.timeout_ms();
    hdr.flags = match mode {
        // dxferp stays NULL: a non-NULL pointer makes the block layer copy.
        Mode::Mmap => sys::SG_FLAG_MMAP_IO,
        Mode::Direct => sys::SG_FLAG_DIRECT_IO,
        _ => 0,
    };
    if cmd.queues_at_tail() {
        hdr.flags |= sys::SG_FLAG_Q_AT_TAIL;
    }
    if mode != Mode::Mmap && len != 0 {
        hdr.dxferp = data.cast();
    }
    Ok(hdr)
}

/// The opcodes the kernel lets any opener of a device send on a read-only
/// fd: the "read-safe" list of `scsi_cmd_allowed()` (drivers/scsi/scsi_ioctl.c,
/// Linux 6.1). Everything else needs an fd opened read-write, or
/// CAP_SYS_RAWIO, which lets root past the kernel's gate.
const READ_SAFE: &[u8] = &[
    0x00, // TEST UNIT READY
    0x03, // REQUEST SENSE
    0x08, // READ(6)
    0x12, // INQUIRY
    0x1a, // MODE SENSE(6)
    0x1b, // START STOP UNIT
    0x1c, // RECEIVE DIAGNOSTIC RESULTS
    0x23, // READ FORMAT CAPACITIES
    0x25, // READ CAPACITY(10)
    0x28, // READ(10)
    0x2b, // SEEK(10)
    0x2f, // VERIFY(10)
    0x37, // READ DEFECT DATA(10)
    0x3c, // READ BUFFER
    0x3e, // READ LONG(10)
    0x42, // READ SUB-CHANNEL
    0x43, // READ TOC/PMA/ATIP
    0x44, // READ HEADER
    0x45, // PLAY AUDIO(10)
    0x46, // GET CONFIGURATION
    0x47, // PLAY AUDIO MSF
    0x48, // PLAY AUDIO TRACK INDEX
    0x4a, // GET EVENT STATUS NOTIFICATION
    0x4b, // PAUSE/RESUME
    0x4d, // LOG SENSE
    0x4e, // STOP PLAY/SCAN
    0x51, // READ DISC INFORMATION
    0x52, // READ TRACK INFORMATION
    0x5a, // MODE SENSE(10)
    0x5c, // READ BUFFER CAPACITY
    0x88, // READ(16)
    0x8f, // VERIFY(16)
    0x95, // ZBC IN
    0x9e, // SERVICE ACTION IN(16): READ CAPACITY(16), ...
    0xa0, // REPORT LUNS
    0xa3, // MAINTENANCE IN
    0xa4, // REPORT KEY
    0xa8, // READ(12)
    0xac, // GET PERFORMANCE
    0xad, // READ DVD STRUCTURE
    0xb9, // READ CD MSF
    0xba, // SCAN
    0xbc, // PLAY CD
    0xbe, // READ CD
];

/// Why a command may not go out on a read-only fd, if it may not: it sends
/// data to the device, or it is not on the kernel's read-safe list. sgmap
/// refuses both itself, because the kernel lets a caller with CAP_SYS_RAWIO
/// (root) send anything on a read-only fd.
pub(crate) fn read_only_refusal(opcode: u8, direction: Direction) -> Option<String> {
    if direction == Direction::ToDevice {
        Some(
            "this handle was opened read-only, and this command sends data to the device; \
             sgmap sends nothing that writes on a read-only handle, even for callers the kernel \
             would let through (CAP_SYS_RAWIO); open the device read-write to send it"
                .into(),
        )
    } else if !READ_SAFE.contains(&opcode) {
        Some(format!(
            "this handle was opened read-only, and opcode {opcode:#04x} is not one the kernel \
             counts as read-safe (INQUIRY, READ, READ CAPACITY, MODE SENSE, ...); sgmap sends \
             only read-safe commands on a read-only handle, even for callers the kernel would \
             let through (CAP_SYS_RAWIO); open the device read-write to send it"
        ))
    } else {
        None
    }
}

/// Why a READ or WRITE may not go out with this buffer, if it may not: the
/// blocks its CDB names need more bytes than the buffer has, or the buffer
/// goes the other way. The device would move every block the CDB names,
/// and the block layer reports success with a residual of 0 when the
/// buffer is short: a read would lose the rest, a write would store blocks
/// it was never given. `block_size` is the device's when known; else 512,
/// the smallest logical block size Linux takes, bounds the need from below.
pub(crate) fn transfer_refusal(
    cdb: &Cdb,
    direction: Direction,
    len: usize,
    block_size: Option<u32>,
) -> Option<String> {
    let (wants, blocks) = cdb.transfer_blocks()?;
    let name = crate::outcome::command_name(cdb);
    if blocks == 0 {
        return None;
    }
    if direction != wants {
        let (moves, given) = match wants {
            Direction::FromDevice => ("moves data from the device", "a buffer to read into"),
            _ => ("sends data to the device", "the data to write"),
        };
        let has = match direction {
            Direction::None => "no buffer".to_string(),
            Direction::FromDevice => "a buffer to read into".to_string(),
            Direction::ToDevice => "data to write".to_string(),
        };
        return Some(format!(
            "{name} of {blocks} blocks {moves}, but the command carries {has}; give it {given}"
        ));
    }
    let (per_block, known) = match block_size {
        Some(b) if b > 0 => (u64::from(b), true),
        _ => (512, false),
    };
    let need = blocks.saturating_mul(per_block);
    if (len as u64) < need {
        let basis = if known {
            format!("the device's {per_block}-byte blocks")
        } else {
            "512 bytes a block, the smallest there is".to_string()
        };
        let what = match wants {
            Direction::FromDevice => "the rest of what the device reads would be lost",
            _ => "the device would store blocks it was never given",
        };
        return Some(format!(
            "{name} names {blocks} blocks, {need} bytes at {basis}, but the buffer holds {len} \
             bytes: {what}; give a buffer of at least {need} bytes or name fewer blocks"
        ));
    }
    None
}

/// Builds the [`Outcome`] from a completed header. `alignment` gives the
/// queue's direct-IO alignment, asked only to explain a fallback.
pub(crate) fn finish(
    hdr: &sys::sg_io_hdr,
    cdb: Cdb,
    sense: &[u8],
    requested_mode: Mode,
    data: *const u8,
    len: usize,
    alignment: impl FnOnce() -> Option<usize>,
) -> Outcome {
    let requested = hdr.dxfer_len as usize;
    let resid = usize::try_from(hdr.resid).unwrap_or(0).min(requested);
    let sense_len = usize::from(hdr.sb_len_wr).min(sense.len());
    let how = hdr.info & sys::SG_INFO_DIRECT_IO_MASK;
    let mode = if hdr.dxfer_direction == sys::SG_DXFER_NONE || requested == 0 {
        Mode::NoData
    } else {
        match requested_mode {
            Mode::Mmap => Mode::Mmap,
            _ if how == sys::SG_INFO_DIRECT_IO => Mode::Direct,
            _ if how == sys::SG_INFO_MIXED_IO => Mode::Mixed,
            _ => Mode::Indirect,
        }
    };
    let fallback = (requested_mode == Mode::Direct && mode == Mode::Indirect)
        .then(|| fallback_reason(data, len, alignment()));
    Outcome {
        cdb,
        status: hdr.status,
        host_status: hdr.host_status,
        driver_status: hdr.driver_status,
        info: hdr.info,
        sense: if sense_len > 0 {
            Sense::parse(&sense[..sense_len])
        } else {
            None
        },
        requested,
        resid,
        duration: Duration::from_millis(u64::from(hdr.duration)),
        requested_mode,
        mode,
        fallback,
    }
}

/// Why the kernel did indirect IO when direct was asked for. The kernel's
/// rule (`blk_rq_aligned`) is the queue's DMA alignment, for the address and
/// the length alike; when it is unknown, page alignment of the address and
/// 512-byte multiples of the length are taken as the rule.
fn fallback_reason(data: *const u8, len: usize, alignment: Option<usize>) -> Fallback {
    if allow_dio_now() == Some(false) {
        return Fallback::AllowDioOff;
    }
    let misaligned = match alignment {
        Some(a) if a > 0 => (data as usize) % a != 0 || len % a != 0,
        _ => (data as usize) % page_size() != 0 || len % 512 != 0,
    };
    if misaligned {
        Fallback::Misaligned
    } else {
        Fallback::Unknown
    }
}

/// The direct-IO alignment of the queue behind an sg or block node: its
/// `dma_alignment` from sysfs when a block device sits on it, else the SCSI
/// midlayer's default (`max(4, dma_get_cache_alignment())` in
/// `scsi_init_limits`, which is 4 on x86, where DMA needs no cache-line
/// alignment); `None` elsewhere, when unknown.
/// The SCSI midlayer's DMA alignment for a queue no block device reports
/// on: 4 bytes on x86; unknown elsewhere.
pub(crate) fn midlayer_dma_alignment() -> Option<usize> {
    cfg!(any(target_arch = "x86", target_arch = "x86_64")).then_some(4)
}

fn queue_dma_alignment(fd: BorrowedFd<'_>) -> Option<usize> {
    let midlayer_default = midlayer_dma_alignment();
    let Ok(st) = nix::sys::stat::fstat(fd.as_raw_fd()) else {
        return midlayer_default;
    };
    let class = match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR => "char",
        libc::S_IFBLK => "block",
        _ => return None,
    };
    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    let node = Path::new(crate::discover::SYSFS_ROOT)
        .join("dev")
        .join(class)
        .join(format!("{major}:{minor}"));
    std::fs::read_link(node)
        .ok()
        .and_then(|l| l.file_name().map(|n| n.to_string_lossy().into_owned()))
        .and_then(|name| crate::discover::dma_alignment(&name))
        .or(midlayer_default)
}

/// The sg driver's `allow_dio` as it is now. Asked after every direct
/// command that fell back, so it keeps the sysfs file open and re-reads it
/// with one `pread` (sysfs regenerates the value at offset 0) instead of
/// opening, reading and closing it each time.
fn allow_dio_now() -> Option<bool> {
    use std::os::unix::fs::FileExt as _;
    static FILE: std::sync::OnceLock<Option<std::fs::File>> = std::sync::OnceLock::new();
    let cached = FILE.get_or_init(|| {
        std::fs::File::open(
            Path::new(crate::discover::SYSFS_ROOT).join("module/sg/parameters/allow_dio"),
        )
        .ok()
    });
    let mut buf = [0u8; 16];
    match cached.as_ref().map(|f| f.read_at(&mut buf, 0)) {
        Some(Ok(n)) => std::str::from_utf8(&buf[..n])
            .ok()?
            .trim()
            .parse::<i64>()
            .ok()
            .map(|v| v != 0),
        // Not open, or the module was reloaded under the cached fd.
        _ => crate::discover::allow_dio(),
    }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |v| v as usize)
    })
}

// The kernel calls besides SG_IO itself: the asynchronous interface's
// write/read of a header, BLKSECTGET, and the reserved buffer's mapping.
// They live here so that one file holds every call into the sg driver.

/// `write()`s a v3 header: submits one request. Retries on EINTR (the driver
/// checks everything before taking a request, so an interrupted write
/// submitted nothing).
///
/// # Safety
///
/// `hdr.cmdp` must be valid for `cmd_len` bytes during the call; `hdr.sbp`
/// for `mx_sb_len` bytes, and `hdr.dxferp` (unless mmap-ed IO or no data) for
/// `dxfer_len` bytes, until the response has been read or the driver holds
/// the request no more; nothing else may access the data buffer meanwhile.
pub(crate) unsafe fn submit_raw(fd: BorrowedFd<'_>, hdr: &sys::sg_io_hdr) -> nix::Result<()> {
    let n = std::mem::size_of::<sys::sg_io_hdr>();
    loop {
        // SAFETY: `hdr` is a whole sg_io_hdr for the kernel to read; its
        // pointers are valid per this function's contract.
        let r = unsafe { libc::write(fd.as_raw_fd(), (hdr as *const sys::sg_io_hdr).cast(), n) };
        match r {
            r if r >= 0 => return Ok(()),
            _ => match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            },
        }
    }
}

/// `read()`s one response into `hdr` (its `pack_id` picks the request when
/// `SG_SET_FORCE_PACK_ID` is on; -1 for any). Retries on EINTR (a signal
/// wakes the wait before a response is taken).
///
/// # Safety
///
/// The sense and data buffers of every request this read can return must
/// still be valid: the kernel writes sense, and the data of an indirect read,
/// into them during the call.
pub(crate) unsafe fn read_raw(fd: BorrowedFd<'_>, hdr: &mut sys::sg_io_hdr) -> nix::Result<()> {
    let n = std::mem::size_of::<sys::sg_io_hdr>();
    // `dxfer_direction` < 0 marks the header as v3, so the driver reads `pack_id`.
    hdr.dxfer_direction = sys::SG_DXFER_NONE;
    loop {
        // SAFETY: `hdr` is a whole, writable sg_io_hdr; the buffers the
        // response refers to are valid per this function's contract.
        let r = unsafe { libc::read(fd.as_raw_fd(), (hdr as *mut sys::sg_io_hdr).cast(), n) };
        match r {
            r if r >= 0 => return Ok(()),
            _ => match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            },
        }
    }
}

/// `BLKSECTGET`: the queue's largest transfer in bytes. An sg node answers in
/// bytes (an int), a block device in 512-byte sectors (an unsigned short).
pub(crate) fn blksectget(fd: BorrowedFd<'_>, block_device: bool) -> nix::Result<usize> {
    if block_device {
        let mut v: u16 = 0;
        // SAFETY: BLKSECTGET on a block device writes one unsigned short
        // through the pointer; `v` is one and the fd is open.
        unsafe { sys::ioctl::blk_blksectget(fd.as_raw_fd(), &mut v) }?;
        Ok(usize::from(v) * 512)
    } else {
        let mut v: std::ffi::c_int = 0;
        // SAFETY: BLKSECTGET on an sg fd writes one int through the
        // pointer; `v` is a valid int and the fd is open.
        unsafe { sys::ioctl::sg_blksectget(fd.as_raw_fd(), &mut v) }?;
        Ok(usize::try_from(v).unwrap_or(0))
    }
}

/// Maps `len` bytes of the sg fd's reserved buffer, shared, from offset 0
/// (the driver refuses any other), readable and, when `writable`, writable.
pub(crate) fn map_reserved(
    fd: BorrowedFd<'_>,
    len: std::num::NonZeroUsize,
    writable: bool,
) -> nix::Result<std::ptr::NonNull<u8>> {
    use nix::sys::mman::{MapFlags, ProtFlags};
    let prot = if writable {
        ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
    } else {
        ProtFlags::PROT_READ
    };
    // SAFETY: a new shared mapping at an address the kernel picks, so no
    // existing memory is replaced; the caller keeps `len` within the
    // reserved buffer, so no page of the mapping lies outside it.
    let p = unsafe { nix::sys::mman::mmap(None, len, prot, MapFlags::MAP_SHARED, fd, 0) }?;
    Ok(p.cast())
}

/// Unmaps what [`map_reserved`] mapped.
///
/// # Safety
///
/// `ptr` and `len` are exactly what `map_reserved` returned and was given,
/// unmapped once, and no reference into the mapping outlives this call.
pub(crate) unsafe fn unmap_reserved(ptr: std::ptr::NonNull<u8>, len: usize) {
    // SAFETY: per this function's contract.
    let _ = unsafe { nix::sys::mman::munmap(ptr.cast(), len) };
}

/// Registers `child` to run in the child of every later `fork()`.
pub(crate) fn after_fork_in_child(child: extern "C" fn()) {
    // SAFETY: registers a child handler only; the handler the callers pass
    // bumps an atomic, which is async-signal-safe as fork's handlers must be.
    unsafe { libc::pthread_atfork(None, None, Some(child)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_or_write_needs_a_buffer_for_every_block_it_names() {
        use Direction::{FromDevice, None as NoData, ToDevice};
        let read8 = Cdb::read_10(0, 8);
        // Unknown block size: 512 bytes a block bound the need.
        let why = transfer_refusal(&read8, FromDevice, 512, None).expect("refused");
        assert!(
            why.contains("8 blocks, 4096 bytes") && why.contains("holds 512"),
            "{why}"
        );
        assert_eq!(transfer_refusal(&read8, FromDevice, 4096, None), None);
        // A known block size raises the need; a longer buffer is fine.
        let why = transfer_refusal(&read8, FromDevice, 4096, Some(4096)).expect("refused");
        assert!(
            why.contains("32768 bytes at the device's 4096-byte blocks"),
            "{why}"
        );
        assert_eq!(
            transfer_refusal(&read8, FromDevice, 65536, Some(4096)),
            None
        );
        // A write short of its blocks, or one with no data, is refused too.
        let write = Cdb::write_16(7, 2).unwrap();
        assert!(transfer_refusal(&write, ToDevice, 1023, Some(512)).is_some());
        assert_eq!(transfer_refusal(&write, ToDevice, 1024, Some(512)), None);
        let why = transfer_refusal(&write, NoData, 0, None).expect("refused");
        assert!(why.contains("carries no buffer"), "{why}");
        // The wrong direction is refused whatever the length.
        let why = transfer_refusal(&read8, ToDevice, 4096, None).expect("refused");
        assert!(why.contains("moves data from the device"), "{why}");
        // READ(6) of 0 means 256 blocks; READ(10) of 0 moves nothing.
        let read6 = Cdb::new(&[0x08, 0, 0, 0, 0, 0]).unwrap();
        assert!(transfer_refusal(&read6, FromDevice, 255 * 512, None).is_some());
        assert_eq!(transfer_refusal(&read6, FromDevice, 256 * 512, None), None);
        assert_eq!(transfer_refusal(&Cdb::read_10(0, 0), NoData, 0, None), None);
        // Commands without a block count are not judged.
        assert_eq!(
            transfer_refusal(&Cdb::inquiry(96), FromDevice, 1, None),
            None
        );
    }

    #[test]
    fn read_only_handles_send_only_read_safe_commands_without_data_out() {
        // The kernel's read-safe list lets these through on a read-only fd.
        for op in [0x00, 0x12, 0x25, 0x28, 0x88, 0x9e, 0x1a, 0x5a] {
            assert_eq!(
                read_only_refusal(op, Direction::FromDevice),
                None,
                "{op:#04x}"
            );
        }
        assert_eq!(read_only_refusal(0x00, Direction::None), None);
        // Writes, and what is not on the list even without data.
        for op in [0x2a, 0x8a, 0x35, 0x10, 0x15, 0x55, 0x04] {
            let why = read_only_refusal(op, Direction::None).expect("refused");
            assert!(
                why.contains("read-only") && why.contains("read-write"),
                "{why}"
            );
        }
        // Data out is refused whatever the opcode says.
        assert!(read_only_refusal(0xa3, Direction::ToDevice).is_some());
        assert!(read_only_refusal(0x28, Direction::ToDevice).is_some());
        // The list is sorted, without repeats.
        assert!(READ_SAFE.windows(2).all(|w| w[0] < w[1]));
    }
}
