//! The device handle: opening, closing, what the device reports, the
//! reserved buffer and its mapping.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::ThreadId;

use sgmap::{Device, MappedDevice, OpenOptions};

use crate::args::{self, write_text, Out};
use crate::error::{guard, sgmap_result, Fail};

/// `sgmap_device_open` flag: open read-only. sgmap then sends only what the
/// kernel counts as read-safe (INQUIRY, READ, READ CAPACITY, MODE SENSE,
/// ...) and nothing that sends data to the device, by any function (the
/// helpers, `sgmap_execute`, mmap-ed and pool commands): anything else gives
/// `SGMAP_INVALID_REQUEST` before the kernel sees it, even for a caller with
/// CAP_SYS_RAWIO (root), whom the kernel's own gate lets through. The
/// reserved buffer is mapped read-only.
pub const SGMAP_OPEN_READ_ONLY: u32 = 1;
/// `sgmap_device_open` flag: open with O_EXCL, so no one else can open the
/// device while this handle lives. The sg driver refuses it together with
/// `SGMAP_OPEN_READ_ONLY` (`SGMAP_OPEN_FAILED`, EPERM). sgmap never opens the
/// node a second time behind a handle, so every function works on an
/// exclusive handle.
pub const SGMAP_OPEN_EXCLUSIVE: u32 = 2;
/// `sgmap_device_open` flag: open with O_NONBLOCK: an open that would wait
/// (an exclusive open while others hold the node, or any open while one
/// holds it exclusively) fails with SGMAP_OPEN_FAILED and errno EBUSY
/// instead of waiting.
pub const SGMAP_OPEN_NONBLOCK: u32 = 4;

const OPEN_FLAGS: u32 = SGMAP_OPEN_READ_ONLY | SGMAP_OPEN_EXCLUSIVE | SGMAP_OPEN_NONBLOCK;

/// What kind of node a device is: a /dev/sgN character device.
pub const SGMAP_NODE_SG: u32 = 1;
/// What kind of node a device is: a block device that accepts SG_IO (no
/// reserved buffer, no mmap-ed IO).
pub const SGMAP_NODE_BLOCK: u32 = 2;

/// An open SCSI generic device (opaque). Made by `sgmap_device_open`,
/// released by `sgmap_device_close`.
///
/// Thread safety: every function may be called on one handle from several
/// threads at once, except `sgmap_device_close`, which must not overlap any
/// other call on the handle; a lock inside the handle serialises what must
/// not overlap. On an unmapped handle commands run concurrently (the driver
/// takes up to 16 per fd).
///
/// A mapped handle (after `sgmap_device_map_reserved`) carries only
/// `SGMAP_MODE_MMAP` commands and commands without data: anything that
/// would move data through a caller buffer (the INQUIRY and READ CAPACITY
/// helpers, `SGMAP_MODE_INDIRECT` and `SGMAP_MODE_DIRECT` transfers) gives
/// `SGMAP_WRONG_STATE` before the kernel sees it, because the sg driver
/// would pass that data through the mapped buffer, over the bytes the
/// program keeps there. No sgmap function sends a command of its own
/// through the buffer (the block size is learnt when mapping).
///
/// Its buffer is lent to one thread at a time. An `SGMAP_MODE_MMAP` command
/// (or `sgmap_buffer_lease`) lends it to the calling thread, and it stays
/// that thread's, bytes and all, until `sgmap_buffer_release`; meanwhile
/// another thread's `SGMAP_MODE_MMAP` command or lease gives
/// `SGMAP_WRONG_STATE`, and nothing runs. A program with one thread never
/// needs to release. Several threads sharing one mapped handle each do:
/// command (or lease), read or fill the buffer, `sgmap_buffer_release`.
/// Reading or writing the buffer without holding the lease is the program's
/// own race. Commands without data run whoever holds the lease.
///
/// fork(): the child inherits the fd and, for a mapped handle, the very
/// same reserved buffer (shared memory). The child may read the buffer
/// (synchronising with the parent itself), and may send commands without
/// data, but its `SGMAP_MODE_MMAP` commands and leases give
/// `SGMAP_WRONG_STATE`, so the parent's commands never fail EBUSY or find
/// the child's data: let the child open and map a handle of its own. Both
/// processes may use an inherited unmapped handle, but then neither may map
/// it. Close the handle in each process that no longer needs it.
#[derive(Debug)]
pub struct sgmap_device {
    state: RwLock<State>,
    path: PathBuf,
    /// The `SGMAP_OPEN_*` flags it was opened with.
    flags: u32,
}

/// What the handle holds.
#[derive(Debug)]
pub(crate) enum State {
    /// Opened, reserved buffer not mapped.
    Open(Device),
    /// The reserved buffer is mapped: its size is frozen.
    Mapped(Mapped),
    /// Only while `sgmap_device_map_reserved` holds the device, or after an
    /// internal error (a caught panic) interrupted it.
    Lost,
}

/// A mapped handle's device and who holds its buffer.
#[derive(Debug)]
pub(crate) struct Mapped {
    pub(crate) dev: MappedDevice,
    /// The thread the buffer is lent to, if any.
    lent_to: Option<ThreadId>,
}

impl sgmap_device {
    /// The path the device was opened from.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic caught while the lock was held leaves the state usable:
        // every transition replaces it whole.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lost(&self) -> Fail {
        Fail::new(
            sgmap_result::SGMAP_DEVICE_LOST,
            format!(
                "{}: this handle lost its device in an internal error (SGMAP_PANIC) while mapping \
                 the reserved buffer; close the handle and open the device anew",
                self.path.display()
            ),
        )
    }

    pub(crate) fn not_mapped(&self, what: &str) -> Fail {
        Fail::new(
            sgmap_result::SGMAP_WRONG_STATE,
            format!(
                "{}: {what} needs the reserved buffer mapped; call sgmap_device_map_reserved first",
                self.path.display()
            ),
        )
    }

    /// The refusal of a command whose data would pass through the mapped buffer.
    pub(crate) fn through_buffer(&self, what: &str) -> Fail {
        Fail::new(
            sgmap_result::SGMAP_WRONG_STATE,
            format!(
                "{}: {what} moves data through a caller buffer, and on a handle whose reserved \
                 buffer is mapped the sg driver would pass that data through the mapped buffer, \
                 over the bytes kept there; a mapped handle carries only SGMAP_MODE_MMAP commands \
                 and commands without data: call it before sgmap_device_map_reserved, use \
                 SGMAP_MODE_MMAP, or open a second handle with sgmap_device_open for it",
                self.path.display()
            ),
        )
    }

    /// Runs `f` on the device, in either state: under the shared lock when
    /// unmapped (commands may overlap), under the exclusive lock when mapped.
    /// For what moves no data through a caller buffer (see
    /// [`with_data`](Self::with_data)).
    pub(crate) fn with_device<T>(
        &self,
        f: impl FnOnce(&Device) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        {
            let state = self.read();
            match &*state {
                State::Open(dev) => return f(dev),
                State::Lost => return Err(self.lost()),
                State::Mapped(_) => {}
            }
        }
        let mut state = self.write();
        match &mut *state {
            State::Open(dev) => f(dev),
            State::Mapped(m) => f(m.dev.device()),
            State::Lost => Err(self.lost()),
        }
    }

    /// Runs `f`, which moves data through a caller buffer, on an unmapped
    /// device; refuses it, naming `what`, on a mapped one.
    pub(crate) fn with_data<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Device) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        let state = self.read();
        match &*state {
            State::Open(dev) => f(dev),
            State::Mapped(_) => Err(self.through_buffer(what)),
            State::Lost => Err(self.lost()),
        }
    }

    /// The block size: READ CAPACITY on first use when unmapped; on a mapped
    /// handle what was learnt before or when mapping (never a command there).
    pub(crate) fn block_size(&self) -> Result<u32, Fail> {
        let state = self.read();
        match &*state {
            State::Open(d) => Ok(d.block_size()?),
            State::Mapped(m) => m
                .dev
                .block_size()
                .map_err(|_| unknown_block_size(&self.path)),
            State::Lost => Err(self.lost()),
        }
    }

    /// Checks that the calling thread may use the mapped buffer now.
    fn may_lend(&self, m: &Mapped, what: &str) -> Result<(), Fail> {
        if m.dev.is_inherited() {
            return Err(Fail::new(
                sgmap_result::SGMAP_WRONG_STATE,
                format!(
                    "{}: {what} refused: this handle's buffer was mapped before fork() by a \
                     parent of this process, which shares the fd and the buffer with it, so \
                     commands in it here would race the parent's; read the buffer only, or open \
                     (sgmap_device_open) and map a handle of this process's own",
                    self.path.display()
                ),
            ));
        }
        match m.lent_to {
            Some(t) if t != std::thread::current().id() => Err(Fail::new(
                sgmap_result::SGMAP_WRONG_STATE,
                format!(
                    "{}: {what} refused: the mapped buffer is lent to another thread (since its \
                     SGMAP_MODE_MMAP command or sgmap_buffer_lease) until that thread calls \
                     sgmap_buffer_release; take turns, e.g. with a lock of your own around \
                     command, reading the buffer and release",
                    self.path.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Lends the mapped buffer to the calling thread and runs `f` on the
    /// mapped device, under the exclusive lock: for mmap-ed commands.
    pub(crate) fn with_buffer<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut MappedDevice) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        let mut state = self.write();
        match &mut *state {
            State::Mapped(m) => {
                self.may_lend(m, what)?;
                m.lent_to = Some(std::thread::current().id());
                f(&mut m.dev)
            }
            State::Open(_) => Err(self.not_mapped(what)),
            State::Lost => Err(self.lost()),
        }
    }

    /// Runs `f` on the mapped device without lending the buffer.
    fn with_mapped<T>(
        &self,
        what: &str,
        f: impl FnOnce(&mut Mapped) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        let mut state = self.write();
        match &mut *state {
            State::Mapped(m) => f(m),
            State::Open(_) => Err(self.not_mapped(what)),
            State::Lost => Err(self.lost()),
        }
    }
}

/// The refusal of a block helper on a mapped handle whose block size is unknown.
pub(crate) fn unknown_block_size(path: &std::path::Path) -> Fail {
    Fail::new(
        sgmap_result::SGMAP_WRONG_STATE,
        format!(
            "{}: the block size is not known: READ CAPACITY did not succeed when the reserved \
             buffer was mapped, and on the mapped handle its data would pass through the buffer; \
             call sgmap_block_size before sgmap_device_map_reserved, or on a second handle \
             opened with sgmap_device_open",
            path.display()
        ),
    )
}

impl From<sgmap::MapError> for Fail {
    fn from(e: sgmap::MapError) -> Self {
        Fail::from(sgmap::Error::from(e))
    }
}

/// The core's open options for `SGMAP_OPEN_*` flags.
pub(crate) fn open_options(flags: u32) -> Result<OpenOptions, Fail> {
    if flags & !OPEN_FLAGS != 0 {
        return Err(Fail::invalid(format!(
            "unknown flag bits {:#x}; use SGMAP_OPEN_READ_ONLY, SGMAP_OPEN_EXCLUSIVE, SGMAP_OPEN_NONBLOCK",
            flags & !OPEN_FLAGS
        )));
    }
    Ok(OpenOptions::new()
        .read_only(flags & SGMAP_OPEN_READ_ONLY != 0)
        .exclusive(flags & SGMAP_OPEN_EXCLUSIVE != 0)
        .nonblocking(flags & SGMAP_OPEN_NONBLOCK != 0))
}

/// Borrows the handle behind a C pointer.
///
/// # Safety
///
/// `dev` must be NULL or a handle from `sgmap_device_open` not yet closed.
pub(crate) unsafe fn handle<'a>(dev: *const sgmap_device) -> Result<&'a sgmap_device, Fail> {
    // SAFETY: NULL is checked; otherwise a live handle per the caller's contract.
    unsafe { args::input(dev, "dev") }
}

/// Opens the device node at `path` (e.g. "/dev/sg0") and checks that it is
/// an sg device. `flags` is 0 (read-write) or a combination of
/// `SGMAP_OPEN_READ_ONLY`, `SGMAP_OPEN_EXCLUSIVE` and `SGMAP_OPEN_NONBLOCK`.
///
/// On success `*out` receives a new handle; release it with
/// `sgmap_device_close`. On failure `*out` is set to NULL and the result
/// says why: `SGMAP_OPEN_FAILED` (the errno is in `sgmap_last_error_info`),
/// `SGMAP_NOT_SG` (a regular file, /dev/null, ...), `SGMAP_INVALID_ARGUMENT`
/// (unknown flag bits, empty path), `SGMAP_NULL_PARAMETER`.
///
/// # Safety
///
/// `path` must be NULL or a NUL-terminated string. `out` must be NULL or
/// valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_open(
    path: *const c_char,
    flags: u32,
    out: *mut *mut sgmap_device,
) -> sgmap_result {
    guard("sgmap_device_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for a write per the caller's contract. NULL until a
        // handle exists, so no failure leaves a stale pointer there.
        unsafe { out.put(std::ptr::null_mut()) };
        // SAFETY: NULL or NUL-terminated per the caller's contract.
        let path = unsafe { args::path(path, "path") }?;
        let options = open_options(flags)?;
        let device = options.open(&path)?;
        let handle = Box::new(sgmap_device {
            state: RwLock::new(State::Open(device)),
            path,
            flags,
        });
        // SAFETY: checked above, valid for a write per the caller's contract.
        unsafe { out.put(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Closes the device and releases the handle, unmapping the reserved buffer
/// if it was mapped (pointers from `sgmap_buffer` become invalid).
/// `sgmap_device_close(NULL)` does nothing.
///
/// Close each handle exactly once, when no other call on it is running, and
/// do not use the pointer afterwards: set your variable to NULL after
/// closing, and a second close is then a harmless no-op.
///
/// # Safety
///
/// `dev` must be NULL or a handle from `sgmap_device_open` that has not been
/// closed, with no other call on it running or following.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_close(dev: *mut sgmap_device) {
    if dev.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: a live handle made by Box::into_raw in sgmap_device_open,
        // released once per the caller's contract.
        drop(unsafe { Box::from_raw(dev) });
    });
}

/// Writes the path the device was opened from into `buf` (NUL-terminated).
/// `*out_len` (when `out_len` is not NULL) receives the path's full length.
///
/// Returns `SGMAP_OK`, or `SGMAP_BUFFER_TOO_SMALL` with the path cut to fit.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `buf` must be NULL or valid for
/// writes of `len` bytes; `out_len` must be NULL or valid for a write of one
/// `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_path(
    dev: *const sgmap_device,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> sgmap_result {
    guard("sgmap_device_path", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let text = dev.path.to_string_lossy();
        // SAFETY: the caller's contract for `buf`, `len` and `out_len`.
        unsafe { write_text(&text, buf, len, out_len) }
    })
}

/// What a handle knows about its device without asking it anything.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sgmap_device_info {
    /// The sg driver version, e.g. 30536 for 3.5.36.
    pub driver_version: u32,
    /// `SGMAP_NODE_SG` or `SGMAP_NODE_BLOCK`.
    pub node_kind: u32,
    /// Opened with `SGMAP_OPEN_READ_ONLY`.
    pub read_only: bool,
    /// The node supports mmap-ed IO (an sg node, driver 3.1.22 or later).
    pub supports_mmap: bool,
    /// The reserved buffer is mapped (by `sgmap_device_map_reserved`).
    pub mapped: bool,
    /// The mapping may be written (false for read-only handles); only
    /// meaningful when `mapped`.
    pub buffer_writable: bool,
    /// The mapped length in bytes (what `sgmap_buffer` returns), 0 when not mapped.
    pub buffer_len: usize,
    /// The reserved size the kernel granted when mapping (may exceed
    /// `buffer_len` by less than a page), 0 when not mapped.
    pub granted: usize,
    /// The handle lost its device (see `SGMAP_DEVICE_LOST`): only after an
    /// internal error (`SGMAP_PANIC`) while mapping.
    pub lost: bool,
}

/// Fills `*out` with what the handle knows about its device (no command is
/// sent; this cannot fail on a valid handle).
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `sgmap_device_info`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_get_info(
    dev: *const sgmap_device,
    out: *mut sgmap_device_info,
) -> sgmap_result {
    guard("sgmap_device_get_info", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let info = {
            let state = dev.read();
            let base = |d: &Device| sgmap_device_info {
                driver_version: d.driver_version(),
                node_kind: match d.kind() {
                    sgmap::NodeKind::Sg => SGMAP_NODE_SG,
                    sgmap::NodeKind::Block => SGMAP_NODE_BLOCK,
                },
                read_only: d.is_read_only(),
                supports_mmap: d.supports_mmap(),
                ..Default::default()
            };
            match &*state {
                State::Open(d) => base(d),
                State::Mapped(Mapped { dev: m, .. }) => sgmap_device_info {
                    driver_version: m.device_info().driver_version(),
                    node_kind: SGMAP_NODE_SG,
                    read_only: dev.options_read_only(),
                    supports_mmap: true,
                    mapped: true,
                    buffer_writable: m.access() == sgmap::Access::ReadWrite,
                    buffer_len: m.len(),
                    granted: m.granted(),
                    lost: false,
                },
                State::Lost => sgmap_device_info {
                    lost: true,
                    read_only: dev.options_read_only(),
                    ..Default::default()
                },
            }
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(info) };
        Ok(())
    })
}

impl sgmap_device {
    fn options_read_only(&self) -> bool {
        self.flags & SGMAP_OPEN_READ_ONLY != 0
    }
}

/// The SCSI address and type of a device (SG_GET_SCSI_ID).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sgmap_scsi_id {
    /// Host adapter number.
    pub host: u32,
    /// Channel (bus).
    pub channel: u32,
    /// Target id.
    pub target: u32,
    /// Logical unit number.
    pub lun: u64,
    /// Peripheral device type (0 disk, 1 tape, 5 CD/DVD, ...).
    pub device_type: u8,
    /// The host adapter's commands per LUN.
    pub host_cmd_per_lun: u16,
    /// The device's queue depth.
    pub queue_depth: u16,
}

/// Fills `*out` with the device's SCSI address and type (SG_GET_SCSI_ID).
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `sgmap_scsi_id`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_scsi_id(
    dev: *const sgmap_device,
    out: *mut sgmap_scsi_id,
) -> sgmap_result {
    guard("sgmap_device_scsi_id", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let id = dev.with_device(|d| Ok(d.scsi_id()?))?;
        let id = sgmap_scsi_id {
            host: id.host,
            channel: id.channel,
            target: id.target,
            lun: id.lun,
            device_type: id.device_type,
            host_cmd_per_lun: id.host_cmd_per_lun,
            queue_depth: id.queue_depth,
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(id) };
        Ok(())
    })
}

/// Stores the handle's file descriptor in `*out`, for poll(2) or for ioctls
/// sgmap does not wrap. The handle keeps owning it: do not close it, and do
/// not use it after `sgmap_device_close`.
///
/// sgmap has turned SG_SET_FORCE_PACK_ID on for it (and SG_SET_KEEP_ORPHAN
/// on a read-only or mapped handle): leave both on, or a signal during a
/// command can leave it unaccounted for (see "Signals" at the top of this
/// header).
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `int`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_fd(
    dev: *const sgmap_device,
    out: *mut libc::c_int,
) -> sgmap_result {
    guard("sgmap_device_fd", || {
        use std::os::fd::AsRawFd as _;
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let fd = {
            let state = dev.read();
            match &*state {
                State::Open(d) => d.as_raw_fd(),
                State::Mapped(m) => m.dev.as_raw_fd(),
                State::Lost => return Err(dev.lost()),
            }
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(fd) };
        Ok(())
    })
}

/// Stores in `*out` the size of the handle's reserved buffer as the kernel
/// reports it now (SG_GET_RESERVED_SIZE).
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_reserved_size(
    dev: *const sgmap_device,
    out: *mut usize,
) -> sgmap_result {
    guard("sgmap_device_reserved_size", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let size = {
            let state = dev.read();
            match &*state {
                State::Open(d) => d.reserved_size()?,
                State::Mapped(m) => m.dev.device_info().reserved_size()?,
                State::Lost => return Err(dev.lost()),
            }
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(size) };
        Ok(())
    })
}

/// Asks for a reserved buffer of `bytes` (rounded up to a page) and stores
/// in `*granted` what the kernel granted, which may be less: it clamps to
/// the queue's largest transfer and halves on allocation failure. Always use
/// the granted size.
///
/// Only an unmapped handle can do this: once mapped, the driver refuses any
/// change for the life of the fd, and this returns `SGMAP_WRONG_STATE`.
/// Also `SGMAP_INVALID_REQUEST` for a block node (no reserved buffer) or a
/// size the driver cannot take.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `granted` must be NULL or valid for
/// a write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_set_reserved_size(
    dev: *mut sgmap_device,
    bytes: usize,
    granted: *mut usize,
) -> sgmap_result {
    guard("sgmap_device_set_reserved_size", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let granted = Out::new(granted, "granted")?;
        let got = {
            let mut state = dev.write();
            match &mut *state {
                State::Open(d) => d.set_reserved_size(bytes)?,
                State::Mapped(_) => {
                    return Err(Fail::new(
                        sgmap_result::SGMAP_WRONG_STATE,
                        format!(
                            "{}: the reserved buffer is mapped, so its size is frozen for the life \
                             of this handle (the driver would say EBUSY); open another handle for \
                             a buffer of another size",
                            dev.path.display()
                        ),
                    ))
                }
                State::Lost => return Err(dev.lost()),
            }
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { granted.put(got) };
        Ok(())
    })
}

/// Maps the handle's reserved buffer into the program: the start of
/// mmap-ed IO. Asks for `bytes` (rounded up to a page; at least 1), reads
/// back what the kernel granted, maps that (down to a whole page) and
/// stores the granted size in `*granted` (NULL if you do not need it). Get
/// the buffer with `sgmap_buffer`.
///
/// From then on the handle is in mapped mode, for its whole life: the
/// reserved size is frozen, `SGMAP_MODE_MMAP` commands move data in the
/// buffer with no copy, and nothing else that moves data runs on it (see
/// `sgmap_device`). Mapping twice gives `SGMAP_WRONG_STATE`.
///
/// When the block size is not known yet, this first sends READ CAPACITY
/// (passing over UNIT ATTENTIONs, as `sgmap_block_size` does), while the
/// buffer holds nothing of the program's, so that the block helpers never
/// need a command of their own on the mapped handle. A device that does not
/// answer it maps all the same.
///
/// If mapping fails, the handle stays as it was: unmapped, on the same file
/// descriptor (`sgmap_device_fd` gives the same number) with every setting
/// made on it; only its reserved size may have become the granted one.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `granted` must be NULL or valid for
/// a write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_map_reserved(
    dev: *mut sgmap_device,
    bytes: usize,
    granted: *mut usize,
) -> sgmap_result {
    guard("sgmap_device_map_reserved", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let granted = Out::optional(granted, "granted")?;
        if bytes == 0 {
            return Err(Fail::invalid(
                "0 bytes asked for; ask for the largest transfer you need (at least one page)",
            ));
        }
        let mut state = dev.write();
        let device = match &mut *state {
            State::Open(d) => d,
            State::Mapped(_) => {
                return Err(Fail::new(
                    sgmap_result::SGMAP_WRONG_STATE,
                    format!(
                        "{}: the reserved buffer is already mapped (one fd, one buffer); use \
                         sgmap_buffer, or open another handle for a second buffer",
                        dev.path.display()
                    ),
                ))
            }
            State::Lost => return Err(dev.lost()),
        };
        if !device.supports_mmap() {
            return Err(Fail::new(
                sgmap_result::SGMAP_INVALID_REQUEST,
                format!(
                    "{}: mmap-ed IO needs a /dev/sgN node with sg driver 3.1.22 or later (this \
                     node: driver {}); use SGMAP_MODE_INDIRECT or SGMAP_MODE_DIRECT",
                    dev.path.display(),
                    device.driver_version()
                ),
            ));
        }
        // The handle holds `Lost` only while the lock is held here, unless a
        // panic interrupts the mapping.
        let State::Open(device) = std::mem::replace(&mut *state, State::Lost) else {
            return Err(dev.lost());
        };
        match device.map_reserved(bytes) {
            Ok(mapped) => {
                let got = mapped.granted();
                *state = State::Mapped(Mapped {
                    dev: mapped,
                    lent_to: None,
                });
                if let Some(g) = granted {
                    // SAFETY: checked, valid for a write per the caller's contract.
                    unsafe { g.put(got) };
                }
                Ok(())
            }
            Err(e) => {
                let (error, device) = e.into_parts();
                *state = State::Open(device);
                Err(Fail::from(error))
            }
        }
    })
}

/// Stores the mapped reserved buffer's address in `*ptr` and its exact
/// length in `*len`: the granted reserved size down to a whole page, every
/// byte of it mapped. Bytes past `*len` are not part of the mapping.
///
/// The pointer stays valid until the handle is closed. The bytes are the
/// calling thread's only while it holds the buffer's lease (from its
/// `SGMAP_MODE_MMAP` command or `sgmap_buffer_lease` until
/// `sgmap_buffer_release`; see `sgmap_device`), and never while one of its
/// commands runs. This function itself lends nothing. The buffer is
/// read-only for handles opened with `SGMAP_OPEN_READ_ONLY`: writing it
/// faults.
///
/// Returns `SGMAP_WRONG_STATE` before `sgmap_device_map_reserved`.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `ptr` and `len` must be NULL or
/// valid for a write of one pointer and one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_buffer(
    dev: *mut sgmap_device,
    ptr: *mut *mut u8,
    len: *mut usize,
) -> sgmap_result {
    guard("sgmap_buffer", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let ptr = Out::new(ptr, "ptr")?;
        let len = Out::new(len, "len")?;
        let (p, n) = dev.with_mapped("sgmap_buffer", |m| Ok(buffer_of(&mut m.dev)))?;
        // SAFETY: both checked, valid for writes per the caller's contract.
        unsafe { ptr.put(p) };
        // SAFETY: as above.
        unsafe { len.put(n) };
        Ok(())
    })
}

/// The mapping's address and length.
fn buffer_of(m: &mut MappedDevice) -> (*mut u8, usize) {
    let n = m.len();
    let p = match m.as_mut_slice() {
        Some(s) => s.as_mut_ptr(),
        None => m.as_slice().as_ptr().cast_mut(),
    };
    (p, n)
}

/// Lends the mapped buffer to the calling thread and stores its address
/// and length in `*ptr` and `*len` (as `sgmap_buffer` does): take it before
/// filling the buffer for an `SGMAP_MODE_MMAP` write, so that no other
/// thread's command can use the buffer meanwhile. An `SGMAP_MODE_MMAP`
/// command lends the buffer to its thread just the same. The lease lasts
/// until `sgmap_buffer_release`; leasing again from the same thread is
/// harmless.
///
/// Returns `SGMAP_WRONG_STATE` when the buffer is lent to another thread
/// (nothing changes: try again after that thread releases it), when the
/// handle was mapped before fork() by a parent process, or before
/// `sgmap_device_map_reserved`.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `ptr` and `len` must be NULL or
/// valid for a write of one pointer and one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_buffer_lease(
    dev: *mut sgmap_device,
    ptr: *mut *mut u8,
    len: *mut usize,
) -> sgmap_result {
    guard("sgmap_buffer_lease", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let ptr = Out::new(ptr, "ptr")?;
        let len = Out::new(len, "len")?;
        let (p, n) = dev.with_buffer("sgmap_buffer_lease", |m| Ok(buffer_of(m)))?;
        // SAFETY: both checked, valid for writes per the caller's contract.
        unsafe { ptr.put(p) };
        // SAFETY: as above.
        unsafe { len.put(n) };
        Ok(())
    })
}

/// Ends the lease of the mapped buffer (see `sgmap_device`): afterwards any
/// thread's `SGMAP_MODE_MMAP` command may use it, and the bytes are no
/// longer the releasing thread's. Call it from the thread that holds the
/// lease once it is done with the bytes (it works from any thread, for a
/// holder that is gone). Releasing a buffer that is not lent does nothing.
///
/// Returns `SGMAP_WRONG_STATE` before `sgmap_device_map_reserved`.
///
/// # Safety
///
/// `dev` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sgmap_buffer_release(dev: *mut sgmap_device) -> sgmap_result {
    guard("sgmap_buffer_release", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        dev.with_mapped("sgmap_buffer_release", |m| {
            m.lent_to = None;
            Ok(())
        })
    })
}

/// Stores in `*out` the largest transfer one command can carry on this
/// device, in bytes (the queue's max_sectors limit; the typed block helpers
/// split longer transfers by it). Read from the handle's own fd when it was
/// opened: the same answer for every open flag, mapped or not.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_max_transfer(
    dev: *const sgmap_device,
    out: *mut usize,
) -> sgmap_result {
    guard("sgmap_device_max_transfer", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let n = dev.with_device(|d| Ok(d.max_transfer()))?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(n) };
        Ok(())
    })
}

/// Stores in `*out` the host's scatter-gather table size (SG_GET_SG_TABLESIZE).
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_sg_table_size(
    dev: *const sgmap_device,
    out: *mut u32,
) -> sgmap_result {
    guard("sgmap_device_sg_table_size", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let n = dev.with_device(|d| Ok(d.sg_table_size()?))?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(n) };
        Ok(())
    })
}

/// Stores in `*out` the fd's default timeout in milliseconds (SG_GET_TIMEOUT,
/// used only by the old interface: sgmap's commands carry their own).
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_default_timeout_ms(
    dev: *const sgmap_device,
    out: *mut u32,
) -> sgmap_result {
    guard("sgmap_device_default_timeout_ms", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let t = dev.with_device(|d| Ok(d.default_timeout()?))?;
        let ms = u32::try_from(t.as_millis()).unwrap_or(u32::MAX);
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(ms) };
        Ok(())
    })
}

/// Stores in `*out` how many completed requests wait to be collected with
/// read(2) on this fd (SG_GET_NUM_WAITING).
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_num_waiting(
    dev: *const sgmap_device,
    out: *mut usize,
) -> sgmap_result {
    guard("sgmap_device_num_waiting", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let n = dev.with_device(|d| Ok(d.num_waiting()?))?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(n) };
        Ok(())
    })
}

/// A request in flight in the device (`sgmap_request_info.state`).
pub const SGMAP_REQUEST_IN_FLIGHT: u32 = 1;
/// A request done, waiting to be collected (`sgmap_request_info.state`).
pub const SGMAP_REQUEST_DONE: u32 = 2;
/// A request done whose response a read(2) is returning right now: the
/// kernel is still writing its sense and data buffers
/// (`sgmap_request_info.state`).
pub const SGMAP_REQUEST_BEING_READ: u32 = 3;

/// One active request of an fd, as the driver reports it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sgmap_request_info {
    /// `SGMAP_REQUEST_IN_FLIGHT`, `SGMAP_REQUEST_DONE` or
    /// `SGMAP_REQUEST_BEING_READ`; another value from a newer library means
    /// the request is still the driver's.
    pub state: u32,
    /// The request's pack_id.
    pub pack_id: i32,
    /// The request came from an interrupted SG_IO.
    pub orphan: bool,
    /// SG_IO (rather than write(2)) owns it.
    pub sg_io_owned: bool,
    /// Milliseconds since submission (in flight) or the request's duration (done).
    pub duration_ms: u32,
}

/// Copies the fd's active requests (SG_GET_REQUEST_TABLE, at most 16) into
/// `out[0 .. capacity)` and stores how many there are in `*count`. When
/// there are more than `capacity`, the first `capacity` are copied and the
/// result is `SGMAP_BUFFER_TOO_SMALL`. `out` may be NULL when `capacity` is 0.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be valid for writes of
/// `capacity` elements (or NULL with `capacity` 0); `count` must be NULL or
/// valid for a write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_requests(
    dev: *const sgmap_device,
    out: *mut sgmap_request_info,
    capacity: usize,
    count: *mut usize,
) -> sgmap_result {
    guard("sgmap_device_requests", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let count = Out::new(count, "count")?;
        if capacity > 0 {
            Out::new(out, "out")?;
        }
        let reqs = dev.with_device(|d| Ok(d.requests()?))?;
        for (i, r) in reqs.iter().take(capacity).enumerate() {
            let info = sgmap_request_info {
                state: match r.state {
                    sgmap::RequestState::InFlight => SGMAP_REQUEST_IN_FLIGHT,
                    sgmap::RequestState::Done => SGMAP_REQUEST_DONE,
                    sgmap::RequestState::BeingRead => SGMAP_REQUEST_BEING_READ,
                    _ => SGMAP_REQUEST_IN_FLIGHT,
                },
                pack_id: r.pack_id,
                orphan: r.orphan,
                sg_io_owned: r.sg_io_owned,
                duration_ms: r.duration_ms,
            };
            // SAFETY: i < capacity, and `out` is valid for `capacity`
            // elements per the caller's contract.
            let slot = unsafe { out.add(i) };
            // SAFETY: non-NULL and aligned (checked), inside the caller's array.
            unsafe { slot.write(info) };
        }
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { count.put(reqs.len()) };
        if reqs.len() > capacity {
            return Err(Fail::new(
                sgmap_result::SGMAP_BUFFER_TOO_SMALL,
                format!(
                    "{} requests, room for {capacity}; pass room for 16",
                    reqs.len()
                ),
            ));
        }
        Ok(())
    })
}

/// `sgmap_device_reset`: reset the logical unit.
pub const SGMAP_RESET_DEVICE: u32 = 1;
/// `sgmap_device_reset`: reset the bus (a target reset on modern transports).
pub const SGMAP_RESET_BUS: u32 = 2;
/// `sgmap_device_reset`: reset the host adapter.
pub const SGMAP_RESET_HOST: u32 = 3;

/// Resets the device, bus or host (`SGMAP_RESET_*`; SG_SCSI_RESET needs
/// CAP_SYS_ADMIN and CAP_SYS_RAWIO). Commands afterwards get a UNIT
/// ATTENTION once.
///
/// # Safety
///
/// `dev` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_reset(dev: *const sgmap_device, what: u32) -> sgmap_result {
    guard("sgmap_device_reset", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let what = match what {
            SGMAP_RESET_DEVICE => sgmap::Reset::Device,
            SGMAP_RESET_BUS => sgmap::Reset::Bus,
            SGMAP_RESET_HOST => sgmap::Reset::Host,
            other => {
                return Err(Fail::invalid(format!(
                    "unknown reset {other}; use SGMAP_RESET_DEVICE, SGMAP_RESET_BUS or SGMAP_RESET_HOST"
                )))
            }
        };
        dev.with_device(|d| Ok(d.reset(what)?))
    })
}
