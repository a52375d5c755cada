//! A command to run: its CDB, timeout and queueing, and where its data goes.

use std::time::Duration;

use crate::cdb::Cdb;

/// The default command timeout: 60 seconds, like the sg driver's own default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest transfer the sg driver takes in one command: one byte less
/// than 256 MiB (it refuses `dxfer_len` of 256 MiB or more with EINVAL).
/// Longer requests are refused before they reach the kernel; split them.
///
/// ```
/// assert_eq!(sgmap::MAX_SG_TRANSFER, (256 << 20) - 1);
/// assert!(sgmap::transfer_too_long(sgmap::MAX_SG_TRANSFER).is_none());
/// assert!(sgmap::transfer_too_long(256 << 20).unwrap().contains("256 MiB"));
/// ```
pub const MAX_SG_TRANSFER: usize = sgmap_sys::SG_MAX_DXFER_LEN as usize - 1;

/// Why a transfer of `len` bytes is refused by the sg driver's limit, if it
/// is ([`MAX_SG_TRANSFER`]): the text sgmap's errors carry.
pub fn transfer_too_long(len: usize) -> Option<String> {
    (len > MAX_SG_TRANSFER).then(|| {
        format!(
            "a transfer of {len} bytes is too long: the sg driver takes less than 256 MiB per command; split it"
        )
    })
}

/// Which way a command's data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Direction {
    /// No data phase.
    None = 0,
    /// Data comes from the device (reads).
    FromDevice = 1,
    /// Data goes to the device (writes).
    ToDevice = 2,
}

/// A SCSI command with its per-command settings.
///
/// Every way of sending one (`Device::execute`, `MappedDevice::execute`,
/// `Queue`, `Pool`, `BsgRing`, and the C API over them) refuses a READ or
/// WRITE (6, 10, 12, 16, WRITE AND VERIFY) whose buffer holds fewer bytes
/// than the blocks its CDB names, or goes the other way, before the kernel
/// sees it: the kernel would move what fits and report GOOD with a
/// residual of 0, losing the rest of a read unseen, or storing blocks a
/// write never gave. The need is blocks × the device's block size once
/// sgmap knows it on that handle (after [`Device::block_size`](crate::Device::block_size) or
/// `read_capacity`; a `BsgRing` asks at open), else blocks × 512, the
/// smallest block size there is: a `Queue` built from a `Device` that read
/// it, or a `Pool` of such devices, checks exactly.
/// A longer buffer is fine: the residual says what was not moved.
///
/// ```
/// use std::time::Duration;
/// use sgmap::{cdb::Cdb, Command};
///
/// let cmd = Command::new(Cdb::read_10(0, 8)).timeout(Duration::from_secs(5)).direct();
/// assert_eq!(cmd.timeout_ms(), 5000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command {
    cdb: Cdb,
    timeout_ms: u32,
    direct: bool,
    at_tail: bool,
}

impl Command {
    /// A command with the default timeout, indirect IO, queued at the head.
    pub fn new(cdb: Cdb) -> Self {
        Self {
            cdb,
            timeout_ms: DEFAULT_TIMEOUT.as_millis() as u32,
            direct: false,
            at_tail: false,
        }
    }

    /// Sets the timeout (millisecond resolution; saturates at about 49 days,
    /// which the driver treats as no timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        self
    }

    /// Asks for direct IO into the caller's pages. The kernel may still do
    /// indirect IO; the [`Outcome`](crate::Outcome) says which happened and why.
    pub fn direct(mut self) -> Self {
        self.direct = true;
        self
    }

    /// Queues the command at the tail of the device queue instead of the head
    /// (`SG_FLAG_Q_AT_TAIL`).
    pub fn at_tail(mut self) -> Self {
        self.at_tail = true;
        self
    }

    /// The CDB.
    pub fn cdb(&self) -> &Cdb {
        &self.cdb
    }

    /// The timeout in milliseconds, as the driver takes it.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms
    }

    /// Whether direct IO is asked for.
    pub fn wants_direct(&self) -> bool {
        self.direct
    }

    /// Whether the command queues at the tail.
    pub fn queues_at_tail(&self) -> bool {
        self.at_tail
    }
}

impl From<Cdb> for Command {
    fn from(cdb: Cdb) -> Self {
        Command::new(cdb)
    }
}

/// The data of a command run through a caller's buffer (indirect or direct IO).
///
/// The borrow lasts for the call, so the kernel is the only one touching the
/// buffer while the command runs.
#[derive(Debug)]
pub enum Data<'a> {
    /// No data phase.
    None,
    /// Read from the device into this buffer.
    FromDevice(&'a mut [u8]),
    /// Write this buffer to the device.
    ToDevice(&'a [u8]),
}

impl Data<'_> {
    /// The direction of the transfer.
    pub fn direction(&self) -> Direction {
        match self {
            Data::None => Direction::None,
            Data::FromDevice(_) => Direction::FromDevice,
            Data::ToDevice(_) => Direction::ToDevice,
        }
    }

    /// The length of the transfer.
    pub fn len(&self) -> usize {
        match self {
            Data::None => 0,
            Data::FromDevice(b) => b.len(),
            Data::ToDevice(b) => b.len(),
        }
    }

    /// True when there is nothing to transfer.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's address (null for `None`). The kernel only reads a
    /// `ToDevice` buffer, so the cast to `*mut` is never written through.
    pub(crate) fn as_ptr(&mut self) -> *mut u8 {
        match self {
            Data::None => std::ptr::null_mut(),
            Data::FromDevice(b) => b.as_mut_ptr(),
            Data::ToDevice(b) => b.as_ptr().cast_mut(),
        }
    }
}
