//! mmap-ed IO: the fd's reserved buffer mapped into the program, so data moves
//! between the device and the program with no copy through user memory.
//!
//! # How the types keep the driver's rules
//!
//! - The reserved size is asked for, granted (maybe less), and frozen for the
//!   life of the fd once mapped: [`Device::map_reserved`] consumes the
//!   [`Device`]; a [`MappedDevice`] has no way to change the size.
//! - The mapping must not outlive the fd: [`MappedDevice`] owns both and drops
//!   the mapping first; a [`View`] borrows the `MappedDevice`.
//! - One command at a time uses the buffer, and the program must not touch the
//!   bytes while the kernel does: every command takes `&mut MappedDevice`, so
//!   no slice or view of the buffer can exist during it.
//! - A transfer must fit the mapping: checked before the kernel is asked.
//! - The driver lends the reserved buffer to any indirect command whose data
//!   fits it (and to direct IO that falls back to indirect), so on a mapped
//!   fd sgmap sends nothing but mmap-ed commands and commands without data:
//!   [`Device::execute`] (and every typed helper, which all go through it)
//!   refuses a command with data on the device of a [`MappedDevice`]. No
//!   command of sgmap's own passes through a mapped buffer: the block size
//!   the block helpers need is learnt while mapping, before the buffer holds
//!   anything of the program's.
//! - After `fork()` the child shares the fd and the buffer with its parent:
//!   the child may read the buffer, but its mmap-ed commands are refused
//!   ([`MappedDevice::is_inherited`]).

use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::command::{Command, Direction};
use crate::device::{Device, NodeKind};
use crate::error::{Error, Result};
use crate::io::{page_size, Submit};
use crate::outcome::{Mode, Outcome};

/// How a mapping may be accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `PROT_READ`: for read-only handles, or callers who only read.
    ReadOnly,
    /// `PROT_READ | PROT_WRITE`: the program can fill the buffer for writes.
    ReadWrite,
}

/// One `mmap(MAP_SHARED)` of an fd's reserved buffer, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is plain shared memory; who may read or write it is
// governed by the borrows of the types that hold it.
unsafe impl Send for Mapping {}
// SAFETY: as above; shared access only ever reads.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: BorrowedFd<'_>, len: usize, access: Access) -> nix::Result<Self> {
        let n = std::num::NonZeroUsize::new(len).ok_or(nix::errno::Errno::EINVAL)?;
        let ptr = crate::io::map_reserved(fd, n, access == Access::ReadWrite)?;
        Ok(Self { ptr, len })
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// # Safety
    ///
    /// The mapping must be writable, and the caller must hold exclusive access.
    unsafe fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `len` writable bytes per the caller's guarantee, exclusive via `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what map_reserved returned and was
        // given, unmapped once; slices of it borrow self, so none outlives it.
        unsafe { crate::io::unmap_reserved(self.ptr, self.len) };
    }
}

/// A device whose reserved buffer is mapped into the program: the home of
/// mmap-ed IO.
///
/// ```no_run
/// use sgmap::{Device, Command, Direction, cdb::Cdb};
///
/// let dev = Device::open("/dev/sg0")?;
/// let mut mapped = dev.map_reserved(1 << 20)?; // ask 1 MiB; the kernel may grant less
/// let blocks = (mapped.len() / 512) as u16;
/// let outcome = mapped
///     .execute(&Command::new(Cdb::read_10(0, blocks)), Direction::FromDevice, mapped.len())?
///     .check(mapped.path())?;
/// let data: &[u8] = &mapped.as_slice()[..outcome.transferred()];
/// # let _ = data;
/// # Ok::<(), sgmap::Error>(())
/// ```
///
/// A view cannot outlive the device it maps, and no command can run while one
/// is alive:
///
/// ```compile_fail
/// let dev = sgmap::Device::open("/dev/sg0").unwrap();
/// let mapped = dev.map_reserved(65536).unwrap();
/// let view = mapped.view().unwrap();
/// drop(mapped); // error: `mapped` is still borrowed by `view`
/// let _ = view.len();
/// ```
///
/// ```compile_fail
/// use sgmap::{cdb::Cdb, Command, Direction};
/// let dev = sgmap::Device::open("/dev/sg0").unwrap();
/// let mut mapped = dev.map_reserved(65536).unwrap();
/// let bytes = mapped.as_slice();
/// // error: the buffer is borrowed, so the kernel may not write it now
/// mapped.execute(&Command::new(Cdb::read_10(0, 8)), Direction::FromDevice, 4096).unwrap();
/// let _ = bytes[0];
/// ```
#[derive(Debug)]
pub struct MappedDevice {
    // Field order matters: the mapping is dropped (unmapped) before the fd closes.
    mapping: Mapping,
    access: Access,
    granted: usize,
    /// The process generation (see [`FORKS`]) that made the mapping.
    owner: u64,
    device: Device,
}

/// How many `fork()`s separate this process from the first one that mapped
/// a buffer: a child handler of `pthread_atfork` counts them, so telling an
/// inherited mapping from one's own costs a load, not a `getpid()` syscall
/// per command.
static FORKS: AtomicU64 = AtomicU64::new(0);

extern "C" fn count_fork() {
    FORKS.fetch_add(1, Ordering::Relaxed);
}

/// Starts counting forks (once per process, before the first mapping).
fn watch_forks() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // count_fork only bumps an atomic, as fork's child handlers must.
    ONCE.call_once(|| crate::io::after_fork_in_child(count_fork));
}

/// A failed [`Device::map_reserved`]: why it failed, and the device it
/// consumed, given back as it was: the same fd, with every setting made on
/// it, unmapped (its reserved size may be the one granted).
///
/// `?` turns it into the plain [`Error`] (dropping the device).
#[derive(Debug)]
pub struct MapError {
    error: Error,
    device: Box<Device>,
}

impl MapError {
    fn new(error: Error, device: Device) -> Self {
        Self {
            error,
            device: Box::new(device),
        }
    }

    /// Why mapping failed.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The device, unmapped, on the same fd as before.
    pub fn into_device(self) -> Device {
        *self.device
    }

    /// Both.
    pub fn into_parts(self) -> (Error, Device) {
        (self.error, *self.device)
    }
}

impl std::fmt::Display for MapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for MapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // Transparent: the message is the error's own, so is its source.
        std::error::Error::source(&self.error)
    }
}

impl From<MapError> for Error {
    fn from(e: MapError) -> Error {
        e.error
    }
}

impl Device {
    /// Asks for a reserved buffer of `bytes` (rounded up to a page), reads
    /// back what the kernel granted, and maps exactly the granted size (down
    /// to a whole page), read-write unless the device was opened read-only.
    ///
    /// Consumes the device: once an fd's buffer is mapped, the kernel refuses
    /// to resize it for the rest of the fd's life. On failure the
    /// [`MapError`] gives the device back, unmapped, on the same fd.
    ///
    /// When the block size is not known yet, this first asks for it (READ
    /// CAPACITY, passing over UNIT ATTENTIONs like [`Device::block_size`]),
    /// while the buffer holds nothing of the program's: on the mapped fd that
    /// command's data would pass through the buffer, so
    /// [`MappedDevice::read_blocks`] and [`write_blocks`](MappedDevice::write_blocks)
    /// use what was learnt here. A device that does not answer READ CAPACITY
    /// (a tape, say) maps all the same; its block helpers then say so.
    pub fn map_reserved(self, bytes: usize) -> std::result::Result<MappedDevice, MapError> {
        let access = if self.is_read_only() {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        self.map_reserved_with(bytes, access)
    }

    /// Like [`Device::map_reserved`], with the mapping's access chosen.
    pub fn map_reserved_with(
        self,
        bytes: usize,
        access: Access,
    ) -> std::result::Result<MappedDevice, MapError> {
        self.map_reserved_inner(bytes, access, true)
    }

    /// Maps the reserved buffer; asks for the block size first when
    /// `learn_block_size` and it is not known yet. A pool's fds carry only
    /// raw commands, which need no block size, so a pool maps without it.
    pub(crate) fn map_reserved_inner(
        mut self,
        bytes: usize,
        access: Access,
        learn_block_size: bool,
    ) -> std::result::Result<MappedDevice, MapError> {
        if self.kind() != NodeKind::Sg || !self.supports_mmap() {
            let e = self.fd().invalid(
                "mmap",
                format!(
                    "mmap-ed IO needs a /dev/sgN node with sg driver 3.1.22 or later (this is a {:?} node, driver {})",
                    self.kind(),
                    self.driver_version()
                ),
            );
            return Err(MapError::new(e, self));
        }
        if access == Access::ReadWrite && self.is_read_only() {
            let e = self.fd().invalid(
                "mmap",
                "a device opened read-only can only be mapped read-only; open it read-write to map it for writing",
            );
            return Err(MapError::new(e, self));
        }
        if learn_block_size && self.cached_block_size().get().is_none() {
            // Best effort: a device without a block size maps all the same.
            let _ = self.block_size();
        }
        let granted = match self.set_reserved_size(bytes.max(1)) {
            Ok(g) => g,
            Err(e) => return Err(MapError::new(e, self)),
        };
        let len = granted / page_size() * page_size();
        if len == 0 {
            let e = self.fd().invalid(
                "mmap",
                format!("the kernel granted a reserved buffer of only {granted} bytes, less than a page"),
            );
            return Err(MapError::new(e, self));
        }
        // mmap-ed commands use SG_IO (see `MappedDevice::execute`): a
        // signal's orphan must stay for read() to collect.
        if let Err(e) = self.fd().set_int(
            "SG_SET_KEEP_ORPHAN",
            sgmap_sys::ioctl::sg_set_keep_orphan,
            1,
        ) {
            return Err(MapError::new(e, self));
        }
        watch_forks();
        let mapping = match Mapping::new(self.as_fd(), len, access) {
            Ok(m) => m,
            Err(e) => {
                let e = self.fd().os_error("mmap", e);
                return Err(MapError::new(e, self));
            }
        };
        self.set_mapped();
        Ok(MappedDevice {
            mapping,
            access,
            granted,
            owner: FORKS.load(Ordering::Relaxed),
            device: self,
        })
    }
}

impl MappedDevice {
    /// Usable length of the buffer: the granted reserved size, down to a page.
    pub fn len(&self) -> usize {
        self.mapping.len
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        self.mapping.len == 0
    }

    /// The reserved size the kernel granted (what `SG_GET_RESERVED_SIZE` said
    /// when mapping); may exceed [`len`](Self::len) by less than a page.
    pub fn granted(&self) -> usize {
        self.granted
    }

    /// How the buffer is mapped.
    pub fn access(&self) -> Access {
        self.access
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        self.device.path()
    }

    /// The buffer's bytes: what the last mmap-ed read brought in.
    pub fn as_slice(&self) -> &[u8] {
        self.mapping.as_slice()
    }

    /// The buffer's bytes for filling before an mmap-ed write; `None` for a
    /// read-only mapping.
    pub fn as_mut_slice(&mut self) -> Option<&mut [u8]> {
        match self.access {
            // SAFETY: the mapping is writable, and `&mut self` means no command
            // and no other slice or view is using the buffer.
            Access::ReadWrite => Some(unsafe { self.mapping.as_mut_slice() }),
            Access::ReadOnly => None,
        }
    }

    /// Another `mmap` of the same reserved buffer, read-only, e.g. one per
    /// reader thread. The view borrows the device: while any view lives, no
    /// command can run on it, so no view ever sees the kernel writing.
    pub fn view(&self) -> Result<View<'_>> {
        let mapping = Mapping::new(self.device.as_fd(), self.mapping.len, Access::ReadOnly)
            .map_err(|e| self.device.fd().os_error("mmap", e))?;
        Ok(View {
            mapping,
            _device: std::marker::PhantomData,
        })
    }

    /// Whether this process is a `fork()` child of the one that mapped the
    /// buffer. The child shares the parent's fd and reserved buffer: it may
    /// read the buffer (synchronising with the parent itself), but its
    /// mmap-ed commands are refused, since they would race the parent's
    /// (the driver's EBUSY, or one process reading the other's data).
    pub fn is_inherited(&self) -> bool {
        FORKS.load(Ordering::Relaxed) != self.owner
    }

    /// Refuses an mmap-ed command in a forked child.
    pub(crate) fn check_owner(&self, command: &str) -> Result<()> {
        if self.is_inherited() {
            return Err(self.device.fd().invalid(
                command,
                "this buffer was mapped before fork() by a parent of this process, which shares \
                 the fd and the buffer with it: an mmap-ed command here would race the parent's; \
                 read the buffer only (synchronised with the parent), or open and map the device \
                 anew in this process",
            ));
        }
        Ok(())
    }

    /// The logical block size the block helpers use: learnt when mapping
    /// (or earlier). It is never asked for on the mapped fd, where READ
    /// CAPACITY's data would pass through the buffer.
    pub fn block_size(&self) -> Result<u32> {
        match self.device.cached_block_size().get() {
            Some(b) => Ok(*b),
            None => Err(self.device.fd().invalid(
                "READ CAPACITY",
                "the block size is not known: READ CAPACITY did not succeed when the buffer was \
                 mapped, and on the mapped fd its data would pass through the buffer; ask for it \
                 (Device::block_size) before map_reserved, or on another Device of the same node",
            )),
        }
    }

    /// Runs `cmd` as mmap-ed IO: the data moves in this buffer's first `len`
    /// bytes (`SG_FLAG_MMAP_IO`, `dxferp = NULL`). `len` must fit the mapping;
    /// sgmap checks before asking the kernel. Refused in a forked child
    /// ([`is_inherited`](Self::is_inherited)) and, for commands that write
    /// or are not read-safe, on a device opened read-only.
    ///
    /// # Signals
    ///
    /// mmap IO goes with one `SG_IO`, the fast path, made safe against
    /// signals: the fd has `SG_SET_KEEP_ORPHAN` on, so a request that a
    /// signal orphans (EINTR without `SA_RESTART`) keeps the reserved buffer
    /// until sgmap has waited for it and read its response, and an ioctl the
    /// kernel restarts (`SA_RESTART`, SIGSTOP/SIGCONT) finds the buffer in
    /// use and fails EBUSY without sending anything, after which sgmap
    /// collects the first request the same way. So this returns the
    /// command's own result once the kernel is done with the buffer, and the
    /// command went exactly once. A command without data (`len` 0) goes as
    /// [`Device::execute`] sends it.
    pub fn execute(&mut self, cmd: &Command, direction: Direction, len: usize) -> Result<Outcome> {
        let name = crate::outcome::command_name(cmd.cdb());
        self.check_owner(name)?;
        if cmd.wants_direct() {
            return Err(self.device.fd().invalid(
                name,
                "mmap-ed IO cannot also be direct IO (the driver says EINVAL)",
            ));
        }
        if len > self.len() {
            return Err(self.device.fd().invalid(
                name,
                format!(
                    "{len} bytes do not fit the mapped reserved buffer of {} bytes; transfer at most that much per command",
                    self.len()
                ),
            ));
        }
        let (mode, how) = if len == 0 {
            (Mode::NoData, self.device.submit_for(Mode::NoData, 0))
        } else {
            (Mode::Mmap, Submit::Ioctl)
        };
        // SAFETY: with Mode::Mmap the kernel moves data only in the reserved
        // buffer; `&mut self` guarantees no slice or view of it exists during
        // the call, and `len` fits the mapping (checked above). The fd has
        // SG_SET_KEEP_ORPHAN on (set when mapping), as `Submit::Ioctl` needs.
        unsafe {
            self.device
                .fd()
                .sg_io(cmd, direction, std::ptr::null_mut(), len, mode, how)
        }
    }

    /// The device, for what moves no data through a caller buffer: commands
    /// without data (TEST UNIT READY, SYNCHRONIZE CACHE, ...), the driver's
    /// state ([`Device::requests`]), what is known ([`Device::max_transfer`],
    /// a block size learnt before mapping). A command with data is refused
    /// there ([`Device::execute`] says why): the driver would pass its data
    /// through this buffer.
    pub fn device(&mut self) -> &Device {
        &self.device
    }

    /// The device, for what only reads its state (path, version, ids).
    pub fn device_info(&self) -> DeviceInfo<'_> {
        DeviceInfo(&self.device)
    }
}

impl AsFd for MappedDevice {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.device.as_fd()
    }
}

/// Read-only access to a mapped device's own state.
#[derive(Debug, Clone, Copy)]
pub struct DeviceInfo<'a>(&'a Device);

impl DeviceInfo<'_> {
    /// The device path.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
    /// The sg driver version.
    pub fn driver_version(&self) -> u32 {
        self.0.driver_version()
    }
    /// The SCSI address and type.
    pub fn scsi_id(&self) -> Result<crate::device::ScsiId> {
        self.0.scsi_id()
    }
    /// The reserved size the kernel reports now.
    pub fn reserved_size(&self) -> Result<usize> {
        self.0.reserved_size()
    }
}

/// A read-only second mapping of a [`MappedDevice`]'s buffer.
///
/// `Send` and `Sync`: hand one to each reader thread (with scoped threads).
#[derive(Debug)]
pub struct View<'a> {
    mapping: Mapping,
    _device: std::marker::PhantomData<&'a MappedDevice>,
}

impl View<'_> {
    /// The view's address, distinct from the device's own mapping.
    pub fn as_ptr(&self) -> *const u8 {
        self.mapping.ptr.as_ptr()
    }
}

impl Deref for View<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.mapping.as_slice()
    }
}

impl std::os::fd::AsRawFd for MappedDevice {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.device.as_raw_fd()
    }
}
