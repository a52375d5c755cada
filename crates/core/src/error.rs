//! Errors: what went wrong, on which device, with which command, and what to do.
//!
//! OS errors from the sg driver are mapped to what the driver meant by them
//! ([`OsErrorKind`]); SCSI-level failures carry the whole [`Outcome`] with its
//! decoded sense data ([`ScsiError`]).

use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::outcome::Outcome;

/// The result type of sgmap.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sgmap.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device node could not be opened.
    #[error("cannot open {}: {source}; {hint}", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// What `open(2)` said.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },

    /// The path opened, but it is not an sg device (or a node that accepts SG_IO).
    #[error("{} is not a SCSI generic device: {reason}", path.display())]
    NotSg {
        /// The path given.
        path: PathBuf,
        /// What it is instead, and what to use.
        reason: String,
    },

    /// The sg driver refused a request with an errno.
    #[error("{}: {command}: {kind} ({errno}); {}", device.display(), kind.hint())]
    Os {
        /// The device.
        device: PathBuf,
        /// The command or ioctl, e.g. `READ(10)` or `SG_SET_RESERVED_SIZE`.
        command: String,
        /// The errno the kernel returned.
        errno: Errno,
        /// What the sg driver means by that errno here.
        kind: OsErrorKind,
    },

    /// The command ran but the device, host or driver reported a failure.
    #[error("{0}")]
    Scsi(Box<ScsiError>),

    /// A request sgmap refused before asking the kernel, because the kernel
    /// would refuse it or silently do something else.
    #[error("{}: {command}: {reason}", device.display())]
    InvalidRequest {
        /// The device.
        device: PathBuf,
        /// The command or operation.
        command: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// The CDB is not valid.
    #[error(transparent)]
    Cdb(#[from] crate::cdb::CdbError),

    /// The data a command returned could not be decoded.
    #[error("{}: {command}: {source}", device.display())]
    Response {
        /// The device.
        device: PathBuf,
        /// The command whose data this was.
        command: String,
        /// What is wrong with the data.
        source: crate::response::ResponseError,
    },
}

impl Error {
    /// The errno behind this error, if the kernel gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Open { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Os { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The SCSI failure, if this is one.
    pub fn scsi(&self) -> Option<&ScsiError> {
        match self {
            Error::Scsi(s) => Some(s),
            _ => None,
        }
    }

    /// True for a UNIT ATTENTION (power on, reset, parameters changed): retrying
    /// the same command is the usual answer.
    pub fn is_unit_attention(&self) -> bool {
        self.scsi()
            .is_some_and(|s| s.kind == ScsiErrorKind::UnitAttention)
    }
}

/// What an errno from the sg driver means, per `drivers/scsi/sg.c`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OsErrorKind {
    /// EDOM: the fd already has 16 requests outstanding.
    QueueFull,
    /// EBUSY: the reserved buffer is in use by another request on this fd, or
    /// its size cannot change because it has been mapped.
    ReservedBufferBusy,
    /// ENOMEM: an mmap-ed transfer longer than the reserved buffer, or the
    /// kernel could not allocate buffers.
    OutOfMemory,
    /// EINVAL: a request the driver rejects (mmap and direct IO together, a
    /// transfer of 256 MiB or more, a CDB over 32 bytes, a bad argument).
    InvalidRequest,
    /// EMSGSIZE: the CDB length is out of range.
    BadCdbLength,
    /// ENODEV: the device is going away.
    NoDevice,
    /// ENXIO: the device is in error recovery or offline.
    Unavailable,
    /// EPERM/EACCES: the fd is read-only and the command is not read-safe, or
    /// the caller lacks a capability.
    PermissionDenied,
    /// EINTR: a signal arrived; an SG_IO request is orphaned.
    Interrupted,
    /// EFAULT: the kernel could not access a buffer.
    BadAddress,
    /// EAGAIN: nothing ready on a non-blocking fd.
    WouldBlock,
    /// ENOTTY/ENOSYS/EOPNOTSUPP: the node does not speak this ioctl.
    NotSupported,
    /// Anything else.
    Other,
}

impl OsErrorKind {
    /// Classifies an errno returned by an sg request.
    pub fn from_errno(errno: Errno) -> Self {
        match errno {
            Errno::EDOM => Self::QueueFull,
            Errno::EBUSY => Self::ReservedBufferBusy,
            Errno::ENOMEM => Self::OutOfMemory,
            Errno::EINVAL => Self::InvalidRequest,
            Errno::EMSGSIZE => Self::BadCdbLength,
            Errno::ENODEV => Self::NoDevice,
            Errno::ENXIO => Self::Unavailable,
            Errno::EPERM | Errno::EACCES => Self::PermissionDenied,
            Errno::EINTR => Self::Interrupted,
            Errno::EFAULT => Self::BadAddress,
            Errno::EAGAIN => Self::WouldBlock,
            Errno::ENOTTY | Errno::ENOSYS | Errno::EOPNOTSUPP => Self::NotSupported,
            _ => Self::Other,
        }
    }

    /// What to do about it.
    pub fn hint(self) -> &'static str {
        match self {
            Self::QueueFull => "collect completions before submitting more (16 per fd), or open more fds",
            Self::ReservedBufferBusy => {
                "one fd has one reserved buffer: wait for the request using it, or use another fd; \
                 its size cannot change once it has been mapped"
            }
            Self::OutOfMemory => {
                "shorten the transfer to the granted reserved size (see reserved_size()), or free memory"
            }
            Self::InvalidRequest => "check the flags, length (< 256 MiB) and CDB of the request",
            Self::BadCdbLength => "a CDB has 6 to 32 bytes",
            Self::NoDevice => "the device was removed; open it again once it is back",
            Self::Unavailable => "the device is in error recovery or offline; retry later",
            Self::PermissionDenied => {
                "open the device read-write, or run with the needed capability (CAP_SYS_RAWIO)"
            }
            Self::Interrupted => "a signal interrupted the call; retry",
            Self::BadAddress => "a buffer address was not accessible to the kernel",
            Self::WouldBlock => "nothing is ready yet; poll the fd",
            Self::NotSupported => "this node does not accept sg ioctls; use a /dev/sgN node",
            Self::Other => "see errno",
        }
    }
}

impl fmt::Display for OsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::QueueFull => "too many requests outstanding on this fd",
            Self::ReservedBufferBusy => "reserved buffer busy",
            Self::OutOfMemory => "transfer does not fit the reserved buffer, or out of memory",
            Self::InvalidRequest => "request rejected by the sg driver",
            Self::BadCdbLength => "bad CDB length",
            Self::NoDevice => "device gone",
            Self::Unavailable => "device unavailable",
            Self::PermissionDenied => "permission denied",
            Self::Interrupted => "interrupted",
            Self::BadAddress => "bad address",
            Self::WouldBlock => "would block",
            Self::NotSupported => "not supported by this node",
            Self::Other => "system error",
        })
    }
}

/// A command that ran and failed at the SCSI, host or driver level.
#[derive(Debug, Clone)]
pub struct ScsiError {
    /// The device.
    pub device: PathBuf,
    /// What kind of failure this is.
    pub kind: ScsiErrorKind,
    /// Everything the kernel reported about the command.
    pub outcome: Outcome,
}

/// The classes of SCSI-level failure a caller handles differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScsiErrorKind {
    /// UNIT ATTENTION: power on, reset or a changed parameter; retry.
    UnitAttention,
    /// CHECK CONDITION with sense data other than UNIT ATTENTION.
    CheckCondition,
    /// BUSY or TASK SET FULL: retry later.
    Busy,
    /// RESERVATION CONFLICT.
    ReservationConflict,
    /// The command timed out (host byte DID_TIME_OUT or driver timeout).
    Timeout,
    /// The host adapter or transport reported an error (host byte).
    Transport,
    /// Any other non-GOOD status or driver error.
    Other,
}

impl fmt::Display for ScsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.outcome;
        write!(f, "{}: {}: ", self.device.display(), o.command_name())?;
        match (&self.kind, &o.sense) {
            (_, Some(sense)) => write!(f, "{sense}")?,
            (ScsiErrorKind::Timeout, None) => f.write_str("timed out")?,
            _ => write!(f, "{}", o.status_text())?,
        }
        if o.host_status != 0 {
            write!(
                f,
                "; host {}",
                crate::outcome::host_byte_name(o.host_status)
            )?;
        }
        if o.driver_status & sgmap_sys::DRIVER_MASK != 0 {
            write!(
                f,
                "; driver {}",
                crate::outcome::driver_byte_name(o.driver_status)
            )?;
        }
        f.write_str(match self.kind {
            ScsiErrorKind::UnitAttention => "; retry the command",
            ScsiErrorKind::Busy => "; the device is busy: retry later",
            ScsiErrorKind::Timeout => "; raise the command's timeout or check the device",
            ScsiErrorKind::Transport => "; check the cabling, path or host adapter",
            _ => "",
        })
    }
}
