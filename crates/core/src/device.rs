//! Opening an sg device, what it reports about itself, and running commands
//! through caller buffers (indirect and direct IO).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use nix::errno::Errno;
use sgmap_sys as sys;

use crate::command::{Command, Data};
use crate::error::{Error, Result};
use crate::io::{page_size, FallbackSubmit, Fd, Submit};
use crate::outcome::{Mode, Outcome};

/// How to open a device. Read-write by default.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    read_only: bool,
    exclusive: bool,
    nonblocking: bool,
}

impl OpenOptions {
    /// Read-write, shared, blocking.
    pub const fn new() -> Self {
        Self {
            read_only: false,
            exclusive: false,
            nonblocking: false,
        }
    }

    /// Opens read-only. sgmap then sends only what the kernel counts as
    /// read-safe (INQUIRY, READ, READ CAPACITY, MODE SENSE, ...) and nothing
    /// that sends data to the device, through every door (the typed helpers,
    /// [`Device::execute`], a [`Queue`](crate::Queue), a mapping, a
    /// [`Pool`](crate::Pool)): anything else is refused with
    /// [`Error::InvalidRequest`] before the kernel sees it. The kernel's own
    /// gate lets a caller with CAP_SYS_RAWIO (root) through, sgmap's does not.
    /// An mmap-ed reserved buffer can only be mapped for reading.
    pub const fn read_only(mut self, yes: bool) -> Self {
        self.read_only = yes;
        self
    }

    /// Opens with `O_EXCL`: no other open of the device while this one lasts.
    /// Another open of the node meanwhile waits until this handle closes,
    /// unless it is [`nonblocking`](Self::nonblocking) (then it fails with
    /// EBUSY at once).
    /// The sg driver refuses an exclusive open that is read-only (EPERM).
    /// sgmap never opens a device a second time behind a handle's back, so
    /// every helper works on an exclusive handle.
    pub const fn exclusive(mut self, yes: bool) -> Self {
        self.exclusive = yes;
        self
    }

    /// Opens with `O_NONBLOCK`: an open that would wait (exclusive while others
    /// hold the node, or any while one holds it exclusively) fails with EBUSY
    /// ([`Error::Open`]) instead of waiting, and
    /// the async interface's `read()` returns at once when nothing is ready.
    pub const fn nonblocking(mut self, yes: bool) -> Self {
        self.nonblocking = yes;
        self
    }

    /// Opens `path` and checks that it is an sg device (or a block device
    /// that accepts SG_IO).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Device> {
        Device::open_with(path.as_ref(), *self)
    }
}

/// What kind of node a [`Device`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A `/dev/sgN` character device: every feature, including mmap-ed IO.
    Sg,
    /// A block device that accepts SG_IO (e.g. `/dev/sda`): no reserved buffer,
    /// no mmap-ed IO.
    Block,
}

/// The SCSI address and type of a device (`SG_GET_SCSI_ID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScsiId {
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
    /// Host adapter's commands per LUN.
    pub host_cmd_per_lun: u16,
    /// The device's queue depth.
    pub queue_depth: u16,
}

/// An open SCSI generic device.
///
/// `Device` is `Send` and `Sync`: several threads may run commands on one
/// handle at once (each `SG_IO` is its own request; the driver takes up to 16
/// per fd). The fd closes when the `Device` is dropped.
///
/// ```no_run
/// let dev = sgmap::Device::open("/dev/sg0")?;
/// let inq = dev.inquiry()?;
/// println!("{} {} rev {}", inq.vendor, inq.product, inq.revision);
/// # Ok::<(), sgmap::Error>(())
/// ```
#[derive(Debug)]
pub struct Device {
    fd: Fd,
    version: u32,
    kind: NodeKind,
    read_only: bool,
    /// Set when [`Device::map_reserved`] mapped this fd's reserved buffer.
    mapped: bool,
    max_transfer: usize,
    /// The fd's reserved buffer size as last granted: an indirect command
    /// that fits goes by one `SG_IO` through it (see [`Device::execute`]).
    reserve: AtomicUsize,
}

fn open_hint(errno: Option<i32>, opts: OpenOptions) -> &'static str {
    match errno.map(Errno::from_raw) {
        Some(Errno::EPERM) if opts.exclusive && opts.read_only => {
            "the sg driver refuses an exclusive open that is read-only; open it read-write to \
             hold it exclusively, or read-only without exclusive access"
        }
        Some(Errno::ENOENT) => {
            "no such node: /sys/class/scsi_generic lists the sg devices there are; the sg module \
             may not be loaded (modprobe sg)"
        }
        Some(Errno::EACCES) | Some(Errno::EPERM) => {
            "permission denied: sg nodes are usually root:disk mode 0660; run as root, join the \
             owning group, or open read-only"
        }
        Some(Errno::EBUSY) => {
            "the device is held open exclusively by another process, or others have it open and \
             exclusive access was asked for"
        }
        Some(Errno::ENXIO) | Some(Errno::ENODEV) => "no device is behind this node any more",
        Some(Errno::EROFS) => "read-only file system: open read-only",
        Some(Errno::EAGAIN) => "the open would block; retry or open without O_NONBLOCK",
        _ => "check the path",
    }
}

impl Device {
    /// Opens `path` read-write. See [`OpenOptions`] for other modes.
    pub fn open(path: impl AsRef<Path>) -> Result<Device> {
        Self::open_with(path.as_ref(), OpenOptions::default())
    }

    /// Options for opening a device.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    fn open_with(path: &Path, opts: OpenOptions) -> Result<Device> {
        use nix::fcntl::OFlag;
        let mut flags = OFlag::O_CLOEXEC;
        if opts.exclusive {
            flags |= OFlag::O_EXCL;
        }
        if opts.nonblocking {
            flags |= OFlag::O_NONBLOCK;
        }
        let flags = flags.bits();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(!opts.read_only)
            .custom_flags(flags)
            .open(path)
            .map_err(|source| {
                // What the path is decides first: a regular file on a
                // read-only file system fails with EROFS, a directory with
                // EISDIR, and neither is a reason to retry read-only.
                if let Some(not_sg) = std::fs::metadata(path)
                    .ok()
                    .and_then(|m| not_a_device(path, m.file_type()))
                {
                    return not_sg;
                }
                Error::Open {
                    path: path.to_path_buf(),
                    hint: open_hint(source.raw_os_error(), opts),
                    source,
                }
            })?;
        let meta = file.metadata().map_err(|source| Error::Open {
            path: path.to_path_buf(),
            hint: "fstat failed",
            source,
        })?;
        let ft = meta.file_type();
        if let Some(not_sg) = not_a_device(path, ft) {
            return Err(not_sg);
        }
        let kind = if ft.is_char_device() {
            NodeKind::Sg
        } else {
            NodeKind::Block
        };
        if kind == NodeKind::Sg
            && nix::sys::stat::major(meta.rdev()) != u64::from(sys::SCSI_GENERIC_MAJOR)
        {
            // bsg, for one, answers SG_GET_VERSION_NUM but takes neither the
            // v3 header nor write()/read(): only the sg driver's nodes are sg.
            return Err(Error::NotSg {
                path: path.to_path_buf(),
                reason: not_sg_reason(meta.rdev(), kind),
            });
        }
        let fd = Fd::new(OwnedFd::from(file), path.to_path_buf(), opts.read_only);
        let version = match fd.get_int("SG_GET_VERSION_NUM", sys::ioctl::sg_get_version_num) {
            Ok(v) => v,
            Err(e)
                if matches!(
                    e.errno(),
                    Some(Errno::ENOTTY | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
                ) =>
            {
                return Err(Error::NotSg {
                    path: path.to_path_buf(),
                    reason: not_sg_reason(meta.rdev(), kind),
                });
            }
            Err(e) => return Err(e),
        };
        if kind == NodeKind::Sg {
            // Synchronous commands are written and read back by pack_id
            // (see `Device::execute`): read() must pick by pack_id. A
            // read-only fd cannot write(), so it sends with SG_IO, and a
            // signal's orphan must then stay for read() to collect.
            fd.set_int("SG_SET_FORCE_PACK_ID", sys::ioctl::sg_set_force_pack_id, 1)?;
            fd.set_int("SG_SET_KEEP_ORPHAN", sys::ioctl::sg_set_keep_orphan, 1)?;
        }
        let reserve = match kind {
            NodeKind::Sg => fd
                .get_int("SG_GET_RESERVED_SIZE", sys::ioctl::sg_get_reserved_size)?
                .max(0) as usize,
            NodeKind::Block => 0,
        };
        let max_transfer = queue_max_transfer(&fd, kind)?;
        Ok(Device {
            fd,
            version: u32::try_from(version).unwrap_or(0),
            kind,
            read_only: opts.read_only,
            reserve: AtomicUsize::new(reserve),
            mapped: false,
            max_transfer,
        })
    }

    /// The path this device was opened from.
    pub fn path(&self) -> &Path {
        self.fd.path()
    }

    /// The sg driver version, e.g. 30536 for 3.5.36.
    pub fn driver_version(&self) -> u32 {
        self.version
    }

    /// What kind of node this is.
    pub fn kind(&self) -> NodeKind {
        self.kind
    }

    /// Whether the device was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether this node supports mmap-ed IO (an sg node, driver ≥ 3.1.22).
    pub fn supports_mmap(&self) -> bool {
        self.kind == NodeKind::Sg && self.version >= sys::SG_MMAP_MIN_VERSION as u32
    }

    /// The SCSI address and type of the device (`SG_GET_SCSI_ID`).
    pub fn scsi_id(&self) -> Result<ScsiId> {
        let id = self.fd.scsi_id()?;
        Ok(ScsiId {
            host: id.host_no as u32,
            channel: id.channel as u32,
            target: id.scsi_id as u32,
            lun: id.lun as u64,
            device_type: id.scsi_type as u8,
            host_cmd_per_lun: id.h_cmd_per_lun as u16,
            queue_depth: id.d_queue_depth as u16,
        })
    }

    /// The host's scatter-gather table size (`SG_GET_SG_TABLESIZE`).
    pub fn sg_table_size(&self) -> Result<u32> {
        self.fd
            .get_int("SG_GET_SG_TABLESIZE", sys::ioctl::sg_get_sg_tablesize)
            .map(|v| v as u32)
    }

    /// The fd's default timeout for the old interface (`SG_GET_TIMEOUT`).
    /// Commands sent by sgmap carry their own timeout ([`Command::timeout`]).
    pub fn default_timeout(&self) -> Result<Duration> {
        let ticks = self.fd.default_timeout_ticks()?;
        let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .unwrap_or(100);
        Ok(Duration::from_millis(
            ticks.max(0) as u64 * 1000 / hz.max(1) as u64,
        ))
    }

    /// The size of this fd's reserved buffer as the kernel granted it
    /// (`SG_GET_RESERVED_SIZE`).
    pub fn reserved_size(&self) -> Result<usize> {
        self.fd
            .get_int("SG_GET_RESERVED_SIZE", sys::ioctl::sg_get_reserved_size)
            .map(|v| v.max(0) as usize)
    }

    /// Asks for a reserved buffer of `bytes` (rounded up to a page) and returns
    /// what the kernel granted, which may be less: it clamps to the queue's
    /// maximum transfer and halves on allocation failure. Only an unmapped
    /// device can do this: [`Device::map_reserved`] consumes the `Device`,
    /// because the kernel refuses any change for the life of the fd once it
    /// has been mapped.
    pub fn set_reserved_size(&mut self, bytes: usize) -> Result<usize> {
        if self.kind != NodeKind::Sg {
            return Err(self.fd.invalid(
                "SG_SET_RESERVED_SIZE",
                "only /dev/sgN nodes have a reserved buffer",
            ));
        }
        let page = page_size();
        let rounded = bytes.div_ceil(page).saturating_mul(page);
        let want = i32::try_from(rounded).map_err(|_| {
            self.fd.invalid(
                "SG_SET_RESERVED_SIZE",
                format!("{bytes} bytes is more than the driver can take"),
            )
        })?;
        self.fd.set_int(
            "SG_SET_RESERVED_SIZE",
            sys::ioctl::sg_set_reserved_size,
            want,
        )?;
        let granted = self.reserved_size()?;
        self.reserve.store(granted, Ordering::Relaxed);
        Ok(granted)
    }

    /// The largest transfer one command can carry on this device, in bytes:
    /// the queue's `max_sectors` limit, read from this handle's own fd when
    /// it was opened (`BLKSECTGET`, the same limit the driver clamps a
    /// reserved buffer to). The same answer for every open option, mapped
    /// or not; no second fd is opened for it.
    pub fn max_transfer(&self) -> usize {
        self.max_transfer
    }

    /// Whether this fd's reserved buffer is mapped: true for the device of a
    /// [`MappedDevice`](crate::MappedDevice).
    ///
    /// A mapped device carries only commands that move no data through a
    /// caller buffer (see [`execute`](Self::execute)).
    pub fn is_mapped(&self) -> bool {
        self.mapped
    }

    pub(crate) fn set_mapped(&mut self) {
        self.mapped = true;
    }

    /// The alignment, in bytes, that direct IO needs of a buffer's address
    /// and length on this device: the kernel does direct IO only when both
    /// are multiples of the queue's `dma_alignment` + 1 (`blk_rq_aligned`),
    /// and quietly does indirect IO otherwise. Read from sysfs when a block
    /// device sits on the same SCSI device; else the SCSI midlayer's default
    /// for this architecture (4 bytes on x86); `None` when unknown. A
    /// page-aligned [`DirectBuf`](crate::DirectBuf) of whole blocks always
    /// meets it.
    pub fn dma_alignment(&self) -> Option<usize> {
        self.fd.dma_alignment()
    }

    /// Runs `cmd` with `data` through the caller's buffer: indirect IO, or
    /// direct IO when [`Command::direct`] asked for it (the outcome says which
    /// really happened). Never retries; a SCSI failure is in the outcome
    /// ([`Outcome::check`] turns it into an error).
    ///
    /// **On a mapped device** ([`MappedDevice::device`](crate::MappedDevice::device))
    /// a command with data is refused with [`Error::InvalidRequest`] before
    /// the kernel sees it: the sg driver lends the fd's reserved buffer to
    /// any indirect command whose data fits it (and to direct IO that falls
    /// back to indirect), so the data would pass through the mapped buffer
    /// and overwrite what the program keeps there. Commands without data
    /// (TEST UNIT READY, SYNCHRONIZE CACHE, ...) run. Send data through the
    /// mapping ([`MappedDevice::execute`](crate::MappedDevice::execute)),
    /// before mapping, or through another [`Device`] of the same node. The
    /// typed helpers follow the same rule, since they all come through here:
    /// sgmap never moves data of its own through a mapped buffer.
    ///
    /// # Signals
    ///
    /// A signal that arrives while the command is in the device (a handler
    /// with or without `SA_RESTART`, or a SIGSTOP and SIGCONT) never makes
    /// this return while the kernel may still use `data`, and never sends
    /// the command twice without saying so:
    ///
    /// - An indirect command whose data fits the fd's reserved buffer (32 KiB
    ///   unless [`set_reserved_size`](Self::set_reserved_size) changed it)
    ///   goes with one `SG_IO`, the fast path: the driver copies it through
    ///   that buffer as it would anyway, and with `SG_FLAG_MMAP_IO` set (and
    ///   `SG_SET_KEEP_ORPHAN` on, as sgmap sets it at open) a signal's orphan
    ///   holds the buffer until sgmap has read its result, so a restarted
    ///   ioctl fails EBUSY without sending anything. When another thread's
    ///   command holds the buffer, the command goes as below.
    /// - Any other command on an sg node opened read-write is submitted with
    ///   `write()` and its response collected with `read()` by its
    ///   `pack_id`. A signal cannot orphan that: this returns the command's
    ///   own result, and it went once.
    /// - On one opened read-only (`write()` is refused there) it goes with
    ///   `SG_IO`, and the driver's request table is checked afterwards: an
    ///   orphan left by EINTR is waited for and its result returned; when the
    ///   kernel restarted the ioctl and so sent the command again, every copy
    ///   is waited for and the call fails with [`Error::Interrupted`], which
    ///   says how many went. (Read-only handles send only read-safe commands.)
    /// - A block node's `SG_IO` waits uninterruptibly: nothing to do.
    pub fn execute(&self, cmd: &Command, mut data: Data<'_>) -> Result<Outcome> {
        if self.mapped && !data.is_empty() {
            return Err(self.fd.invalid(
                crate::outcome::command_name(cmd.cdb()),
                format!(
                    "this fd's reserved buffer is mapped, and the sg driver would move these {} \
                     bytes through it (it lends the reserved buffer to an indirect command that \
                     fits, and to direct IO that falls back), over the bytes the program keeps \
                     there; on a mapped device only mmap-ed commands and commands without data \
                     run: use MappedDevice::execute, send it before map_reserved, or open \
                     another Device of the same node for it",
                    data.len()
                ),
            ));
        }
        let mode = Mode::requested(cmd, data.len());
        let (dir, len, ptr) = (data.direction(), data.len(), data.as_ptr());
        // SAFETY: `data` borrows the buffer (exclusively for FromDevice) for
        // this whole call, and `ptr`/`len` describe exactly that buffer;
        // `submit_for` picks `Submit::Ioctl` only for a block node.
        unsafe {
            self.fd
                .sg_io(cmd, dir, ptr, len, mode, self.submit_for(mode, len))
        }
    }

    /// How this device's synchronous command of `len` bytes in `mode` (not
    /// mmap IO) reaches the driver (see [`Device::execute`]).
    pub(crate) fn submit_for(&self, mode: Mode, len: usize) -> Submit {
        let otherwise = match self.read_only {
            false => FallbackSubmit::WriteRead,
            true => FallbackSubmit::IoctlThenCheck,
        };
        let fits = mode == Mode::Indirect && len > 0 && len <= self.reserve.load(Ordering::Relaxed);
        match (self.kind, otherwise) {
            (NodeKind::Block, _) => Submit::Ioctl,
            (NodeKind::Sg, o) if fits && !self.mapped => Submit::Reserve(o),
            (NodeKind::Sg, FallbackSubmit::WriteRead) => Submit::WriteRead,
            (NodeKind::Sg, FallbackSubmit::IoctlThenCheck) => Submit::IoctlThenCheck,
        }
    }

    pub(crate) fn fd(&self) -> &Fd {
        &self.fd
    }

    pub(crate) fn cached_block_size(&self) -> &OnceLock<u32> {
        self.fd.block_size()
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The error for a path that is no device node at all (a regular file, a
/// directory, a FIFO, a socket); `None` for character and block devices.
fn not_a_device(path: &Path, ft: std::fs::FileType) -> Option<Error> {
    if ft.is_char_device() || ft.is_block_device() {
        return None;
    }
    let what = if ft.is_dir() {
        "a directory"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a device node"
    };
    Some(Error::NotSg {
        path: path.to_path_buf(),
        reason: format!("it is {what}; use a /dev/sgN node (/sys/class/scsi_generic lists them)"),
    })
}

/// Says what a node that rejected SG_GET_VERSION_NUM is.
fn not_sg_reason(rdev: u64, kind: NodeKind) -> String {
    let (major, minor) = (nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev));
    let class = if kind == NodeKind::Sg {
        "char"
    } else {
        "block"
    };
    let link = std::fs::read_link(format!("/sys/dev/{class}/{major}:{minor}")).unwrap_or_default();
    let link = link.to_string_lossy();
    if link.contains("nvme") {
        "it is an NVMe device, which does not speak SCSI generic; use NVMe passthrough \
         (e.g. nvme-cli), or a /dev/sgN node of a SCSI device"
            .into()
    } else if link.contains("/bsg/") {
        format!(
            "it is a bsg node ({major}:{minor}), which takes SCSI commands in another format; use \
             the /dev/sgN node of the same device (/sys/class/scsi_generic lists them)"
        )
    } else {
        format!(
            "this {class} device ({major}:{minor}) is not an sg node; use a /dev/sgN node \
             (/sys/class/scsi_generic lists them)"
        )
    }
}

/// The queue's largest transfer, from the fd itself: `BLKSECTGET` gives
/// bytes on an sg node and 512-byte sectors on a block device.
fn queue_max_transfer(fd: &Fd, kind: NodeKind) -> Result<usize> {
    let bytes = crate::io::blksectget(fd.as_fd(), kind == NodeKind::Block)
        .map_err(|e| fd.os_error("BLKSECTGET", e))?;
    if bytes == 0 {
        return Err(fd.invalid(
            "BLKSECTGET",
            "the queue reports a largest transfer of 0 bytes; this device cannot carry data",
        ));
    }
    Ok(bytes)
}

/// The state of one of an fd's request slots (`SG_GET_REQUEST_TABLE`, whose
/// `req_state` is 1, 2 or 3 for these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestState {
    /// Submitted, in flight in the device.
    InFlight,
    /// Done, waiting to be collected with `read()`.
    Done,
    /// Done, and a `read()` is returning it right now (the driver's
    /// "being read" mark): the kernel is still writing the request's sense
    /// and, for an indirect read, its data buffer, so the buffers must
    /// stay valid until the request leaves the table.
    BeingRead,
}

/// One active request of an fd, as the driver reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo {
    /// In flight, done, or being read.
    pub state: RequestState,
    /// The request's `pack_id`.
    pub pack_id: i32,
    /// Whether the request came from an interrupted `SG_IO`.
    pub orphan: bool,
    /// Whether `SG_IO` (rather than `write()`) owns it.
    pub sg_io_owned: bool,
    /// Milliseconds since submission (in flight) or the request's duration (done).
    pub duration_ms: u32,
}

impl RequestInfo {
    /// One entry of the driver's table; `None` for an unused slot. The
    /// driver's `req_state` is its request's `done` + 1: 0 in flight, 1 done,
    /// 2 being returned by a `read()` (`sg_fill_request_table` and
    /// `sg_get_rq_mark` in `drivers/scsi/sg.c`).
    pub(crate) fn from_raw(r: &sys::sg_req_info) -> Option<RequestInfo> {
        let state = match r.req_state {
            1 => RequestState::InFlight,
            2 => RequestState::Done,
            3 => RequestState::BeingRead,
            _ => return None,
        };
        Some(RequestInfo {
            state,
            pack_id: r.pack_id,
            orphan: r.orphan != 0,
            sg_io_owned: r.sg_io_owned != 0,
            duration_ms: r.duration,
        })
    }
}

impl Device {
    /// The fd's active requests (`SG_GET_REQUEST_TABLE`): how many commands
    /// the driver itself holds for this fd right now, in every state.
    pub fn requests(&self) -> Result<Vec<RequestInfo>> {
        Ok(self
            .fd
            .request_table()?
            .iter()
            .filter_map(RequestInfo::from_raw)
            .collect())
    }

    /// Completed requests waiting for `read()` (`SG_GET_NUM_WAITING`).
    pub fn num_waiting(&self) -> Result<usize> {
        self.fd
            .get_int("SG_GET_NUM_WAITING", sys::ioctl::sg_get_num_waiting)
            .map(|v| v.max(0) as usize)
    }
}

/// What [`Device::reset`] resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Reset {
    /// The logical unit.
    Device = sys::SG_SCSI_RESET_DEVICE,
    /// The bus (target reset on modern transports).
    Bus = sys::SG_SCSI_RESET_BUS,
    /// The host adapter.
    Host = sys::SG_SCSI_RESET_HOST,
}

impl Device {
    /// Resets the device, bus or host (`SG_SCSI_RESET`; needs CAP_SYS_ADMIN
    /// and CAP_SYS_RAWIO). Commands afterwards get a UNIT ATTENTION once.
    pub fn reset(&self, what: Reset) -> Result<()> {
        self.fd
            .set_int("SG_SCSI_RESET", sys::ioctl::sg_scsi_reset, what as i32)
    }
}

impl std::os::fd::AsRawFd for Device {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_fd().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_state_of_the_driver_is_kept() {
        let raw = |req_state| sys::sg_req_info {
            req_state,
            pack_id: 7,
            ..Default::default()
        };
        assert_eq!(RequestInfo::from_raw(&raw(0)), None, "an unused slot");
        let state = |s| RequestInfo::from_raw(&raw(s)).map(|r| r.state);
        assert_eq!(state(1), Some(RequestState::InFlight));
        assert_eq!(state(2), Some(RequestState::Done));
        assert_eq!(
            state(3),
            Some(RequestState::BeingRead),
            "a response being read still uses its buffers"
        );
        assert_eq!(RequestInfo::from_raw(&raw(3)).map(|r| r.pack_id), Some(7));
    }
}
