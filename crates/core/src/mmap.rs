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

use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;
use std::ptr::NonNull;

use crate::command::{Command, Direction};
use crate::device::{Device, NodeKind};
use crate::error::Result;
use crate::io::page_size;
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
        let prot = match access {
            Access::ReadOnly => libc::PROT_READ,
            Access::ReadWrite => libc::PROT_READ | libc::PROT_WRITE,
        };
        // SAFETY: a new shared mapping of the fd at offset 0 (the driver
        // rejects any other); `len` is non-zero and within the reserved buffer,
        // so no page of the mapping lies outside it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(nix::errno::Errno::last());
        }
        Ok(Self {
            ptr: NonNull::new(p.cast()).ok_or(nix::errno::Errno::EFAULT)?,
            len,
        })
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
        // SAFETY: `ptr`/`len` are exactly what mmap returned, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
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
    device: Device,
}

impl Device {
    /// Asks for a reserved buffer of `bytes` (rounded up to a page), reads
    /// back what the kernel granted, and maps exactly the granted size (down
    /// to a whole page), read-write unless the device was opened read-only.
    ///
    /// Consumes the device: once an fd's buffer is mapped, the kernel refuses
    /// to resize it for the rest of the fd's life.
    pub fn map_reserved(self, bytes: usize) -> Result<MappedDevice> {
        let access = if self.is_read_only() {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        self.map_reserved_with(bytes, access)
    }

    /// Like [`Device::map_reserved`], with the mapping's access chosen.
    pub fn map_reserved_with(mut self, bytes: usize, access: Access) -> Result<MappedDevice> {
        if self.kind() != NodeKind::Sg || !self.supports_mmap() {
            return Err(self.fd().invalid(
                "mmap",
                format!(
                    "mmap-ed IO needs a /dev/sgN node with sg driver 3.1.22 or later (this is a {:?} node, driver {})",
                    self.kind(),
                    self.driver_version()
                ),
            ));
        }
        if access == Access::ReadWrite && self.is_read_only() {
            return Err(self.fd().invalid(
                "mmap",
                "a device opened read-only can only be mapped read-only; open it read-write to map it for writing",
            ));
        }
        let granted = self.set_reserved_size(bytes.max(1))?;
        let len = granted / page_size() * page_size();
        if len == 0 {
            return Err(self.fd().invalid(
                "mmap",
                format!("the kernel granted a reserved buffer of only {granted} bytes, less than a page"),
            ));
        }
        let mapping =
            Mapping::new(self.as_fd(), len, access).map_err(|e| self.fd().os_error("mmap", e))?;
        Ok(MappedDevice {
            mapping,
            access,
            granted,
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

    /// Runs `cmd` as mmap-ed IO: the data moves in this buffer's first `len`
    /// bytes (`SG_FLAG_MMAP_IO`, `dxferp = NULL`). `len` must fit the mapping;
    /// sgmap checks before asking the kernel.
    pub fn execute(&mut self, cmd: &Command, direction: Direction, len: usize) -> Result<Outcome> {
        let name = crate::outcome::command_name(cmd.cdb());
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
        let mode = if len == 0 { Mode::NoData } else { Mode::Mmap };
        // SAFETY: with Mode::Mmap the kernel moves data only in the reserved
        // buffer; `&mut self` guarantees no slice or view of it exists during
        // the call, and `len` fits the mapping (checked above).
        unsafe {
            self.device
                .fd()
                .sg_io(cmd, direction, std::ptr::null_mut(), len, mode)
        }
    }

    /// The device, for commands through caller buffers and the typed helpers.
    /// Borrowing it mutably keeps the mapped bytes untouchable meanwhile: an
    /// indirect command that fits the reserved buffer goes through it too.
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
