//! Errors: what went wrong, on which device, with which command, and what to do.
//!
//! OS errors from the sg driver are mapped to what the driver meant by them
//! ([`OsErrorKind`]); SCSI-level failures carry the whole [`Outcome`] with its
//! decoded sense data ([`ScsiError`]).
//!
//! Each error's own text (`Display`) says what failed, where and what to do;
//! the lower-level cause (the errno, the decoded sense, the failure that
//! stopped a transfer part way) is its [`source`](std::error::Error::source),
//! never repeated in the text. [`Error::report`] prints the whole chain on
//! one line, as anyhow's `{:#}` does.

use std::fmt;
use std::path::PathBuf;

use nix::errno::Errno;

use crate::helpers::Transfer;
use crate::outcome::Outcome;

/// The result type of sgmap.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sgmap.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The device node could not be opened. The source is what `open(2)` said.
    Open {
        /// The path given.
        path: PathBuf,
        /// What `open(2)` said.
        source: std::io::Error,
        /// What to do about it.
        hint: &'static str,
    },

    /// The path is not an sg device (or a node that accepts SG_IO).
    NotSg {
        /// The path given.
        path: PathBuf,
        /// What it is instead, and what to use.
        reason: String,
    },

    /// The kernel refused a request with an errno. The source is the errno.
    Os {
        /// The device.
        device: PathBuf,
        /// The command or ioctl, e.g. `READ(10)` or `SG_SET_RESERVED_SIZE`.
        command: String,
        /// The errno the kernel returned.
        errno: Errno,
        /// What the driver means by that errno here.
        kind: OsErrorKind,
        /// Which driver answered: the text and the advice depend on it.
        driver: Driver,
    },

    /// The command ran but the device, host or driver reported a failure.
    /// The source is the [`ScsiError`], with the status bytes and sense.
    Scsi(Box<ScsiError>),

    /// The command ran and reported success, but moved fewer bytes than asked
    /// (a residual): the rest of the buffer holds no device data. Raised by
    /// the block helpers and streams, which promise whole transfers; the
    /// outcome has the residual.
    ShortTransfer {
        /// The device.
        device: PathBuf,
        /// Everything the kernel reported about the command.
        outcome: Box<Outcome>,
    },

    /// A block transfer of several commands stopped part way: some of its
    /// data moved before a command failed. [`Error::progress`] says how
    /// much; the source is the failure that stopped it (and
    /// [`errno`](Error::errno), [`scsi`](Error::scsi) and
    /// [`outcome`](Error::outcome) look through to it).
    Incomplete(Box<Incomplete>),

    /// A request sgmap refused before asking the kernel, because the kernel
    /// would refuse it or silently do something else.
    InvalidRequest {
        /// The device.
        device: PathBuf,
        /// The command or operation.
        command: String,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A signal arrived while a command was in the device, and sgmap cannot
    /// give that command's own result: the driver dropped it, or the kernel
    /// restarted `SG_IO` and so sent the command more than once (only
    /// possible on a handle opened read-only, whose commands cannot go by
    /// `write()`). sgmap waited until the kernel had finished with every copy
    /// of the command before returning this, so no buffer is in use any more.
    Interrupted {
        /// The device.
        device: PathBuf,
        /// The command, e.g. `READ(10)`.
        command: String,
        /// How many times the command reached the device: 1 when only its
        /// result was lost, more when restarts sent it again.
        sent: u32,
    },

    /// The CDB is not valid.
    Cdb(crate::cdb::CdbError),

    /// The data a command returned could not be decoded. The source says why.
    Response {
        /// The device.
        device: PathBuf,
        /// The command whose data this was.
        command: String,
        /// What is wrong with the data.
        source: crate::response::ResponseError,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Open { path, hint, .. } => write!(f, "cannot open {}: {hint}", path.display()),
            Error::NotSg { path, reason } => {
                write!(
                    f,
                    "{} is not a SCSI generic device: {reason}",
                    path.display()
                )
            }
            Error::Os {
                device,
                command,
                kind,
                driver,
                ..
            } => write!(
                f,
                "{}: {command}: {}; {}",
                device.display(),
                kind.text_on(*driver),
                kind.hint_on(*driver)
            ),
            Error::Scsi(s) => write!(
                f,
                "{}: {}: {}",
                s.device.display(),
                s.outcome.command_name(),
                s.kind
            ),
            Error::ShortTransfer { device, outcome } => write!(
                f,
                "{}: {}: short transfer: {} of {} bytes moved (resid {}); the rest of the buffer \
                 holds no device data",
                device.display(),
                outcome.command_name(),
                outcome.transferred(),
                outcome.requested,
                outcome.resid
            ),
            Error::Incomplete(i) => write!(
                f,
                "{}: {}: stopped part way: {} of {} bytes moved in {} command(s)",
                i.device.display(),
                i.command,
                i.done.bytes,
                i.requested,
                i.done.commands
            ),
            Error::InvalidRequest {
                device,
                command,
                reason,
            } => write!(f, "{}: {command}: {reason}", device.display()),
            Error::Interrupted {
                device,
                command,
                sent,
            } => {
                write!(
                    f,
                    "{}: {command}: interrupted by a signal: ",
                    device.display()
                )?;
                if *sent > 1 {
                    write!(
                        f,
                        "the kernel restarted SG_IO, which sent the command {sent} times; every \
                         copy has completed and the buffer holds what the last one moved: check \
                         the data, and send the command again if it is needed"
                    )
                } else {
                    f.write_str(
                        "the driver dropped the command's result (keep-orphan was turned off on \
                         this fd), so whether it succeeded is unknown: check the data before \
                         relying on it",
                    )
                }
            }
            Error::Cdb(e) => e.fmt(f),
            Error::Response {
                device, command, ..
            } => write!(
                f,
                "{}: {command}: the device's answer cannot be decoded",
                device.display()
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Open { source, .. } => Some(source),
            Error::Os { errno, .. } => Some(errno),
            Error::Scsi(s) => Some(&**s),
            Error::Incomplete(i) => Some(&i.cause),
            // Its text is the whole story; a CDB error stands for itself.
            Error::Cdb(e) => e.source(),
            Error::Response { source, .. } => Some(source),
            Error::NotSg { .. }
            | Error::ShortTransfer { .. }
            | Error::InvalidRequest { .. }
            | Error::Interrupted { .. } => None,
        }
    }
}

impl From<crate::cdb::CdbError> for Error {
    fn from(e: crate::cdb::CdbError) -> Self {
        Error::Cdb(e)
    }
}

/// For code that speaks `std::io`: the error keeps its whole text and stays
/// reachable (`io_error.get_ref()` then `downcast_ref::<sgmap::Error>()`,
/// or [`std::io::Error::into_inner`]), and its
/// [`kind`](std::io::Error::kind) is the one `std` gives the errno when the
/// kernel gave one, else follows the nature of the failure: a refused request or CDB is `InvalidInput`, an
/// interrupted one `Interrupted`, a short or cut-off transfer
/// `UnexpectedEof`, a SCSI or response failure `Other`.
/// ([`std::io::Error::raw_os_error`] is `None` on an error that carries a
/// message; read the errno from the inner error's [`Error::errno`].)
impl From<Error> for std::io::Error {
    fn from(e: Error) -> Self {
        use std::io::ErrorKind;
        let kind = match (&e, e.errno()) {
            (Error::Interrupted { .. }, _) => ErrorKind::Interrupted,
            (_, Some(errno)) => std::io::Error::from_raw_os_error(errno as i32).kind(),
            (Error::InvalidRequest { .. } | Error::Cdb(_) | Error::NotSg { .. }, None) => {
                ErrorKind::InvalidInput
            }
            (Error::ShortTransfer { .. } | Error::Incomplete(_), None) => ErrorKind::UnexpectedEof,
            _ => ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// How far a block transfer got before a command failed
/// ([`Error::Incomplete`]).
#[derive(Debug)]
pub struct Incomplete {
    /// The device.
    pub device: PathBuf,
    /// The command that failed, e.g. `READ(10)`.
    pub command: String,
    /// Bytes asked for in all.
    pub requested: usize,
    /// What was done: the bytes that really moved (a failed command's count
    /// for nothing, a short one's for what it moved) and the commands sent,
    /// the one that failed included.
    pub done: Transfer,
    /// The failure that stopped the transfer.
    pub cause: Error,
}

impl Error {
    /// The errno behind this error, if the kernel gave one.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Open { source, .. } => source.raw_os_error().map(Errno::from_raw),
            Error::Os { errno, .. } => Some(*errno),
            Error::Incomplete(i) => i.cause.errno(),
            Error::Interrupted { .. } => Some(Errno::EINTR),
            _ => None,
        }
    }

    /// The SCSI failure, if this is one (or a transfer stopped by one).
    pub fn scsi(&self) -> Option<&ScsiError> {
        match self {
            Error::Scsi(s) => Some(s),
            Error::Incomplete(i) => i.cause.scsi(),
            _ => None,
        }
    }

    /// The outcome of the command that ran and failed or fell short, if one
    /// did: status bytes, sense, residual.
    pub fn outcome(&self) -> Option<&Outcome> {
        match self {
            Error::Scsi(s) => Some(&s.outcome),
            Error::ShortTransfer { outcome, .. } => Some(outcome),
            Error::Incomplete(i) => i.cause.outcome(),
            _ => None,
        }
    }

    /// What a block transfer did before it failed: the bytes that really
    /// moved and the commands sent. `Some` for [`Error::Incomplete`] and for
    /// [`Error::ShortTransfer`] (one command, its bytes); `None` when no
    /// data moved.
    pub fn progress(&self) -> Option<Transfer> {
        match self {
            Error::Incomplete(i) => Some(i.done),
            Error::ShortTransfer { outcome, .. } => {
                let mut t = Transfer::empty(outcome.requested_mode);
                t.add(outcome);
                Some(t)
            }
            _ => None,
        }
    }

    /// True for a UNIT ATTENTION (power on, reset, parameters changed): retrying
    /// the same command is the usual answer.
    pub fn is_unit_attention(&self) -> bool {
        self.scsi()
            .is_some_and(|s| s.kind == ScsiErrorKind::UnitAttention)
    }

    /// This error and every cause under it on one line, joined by `": "`
    /// (what anyhow prints for `{:#}`): the text to show a person.
    ///
    /// ```
    /// let e = sgmap::Device::open("/nonexistent/sg9").unwrap_err();
    /// let line = e.report().to_string();
    /// assert!(line.starts_with("cannot open /nonexistent/sg9: "));
    /// assert!(line.ends_with("No such file or directory (os error 2)"));
    /// ```
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }
}

/// An error with all its causes, on one line: see [`Error::report`].
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(&'a (dyn std::error::Error + 'static));

impl<'a> Report<'a> {
    /// The report of any error, with its causes.
    pub fn of(error: &'a (dyn std::error::Error + 'static)) -> Self {
        Report(error)
    }
}

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// The kernel driver a request went to: the same errno means different
/// things to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Driver {
    /// The sg driver (`/dev/sgN`, the v3 interface: `SG_IO`, `write()`/`read()`, mmap).
    Sg,
    /// The bsg driver through io_uring (`/dev/bsg/H:C:T:L`, Linux 7.1+).
    Bsg,
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
    /// EINTR: a signal arrived while the call waited. sgmap's commands never
    /// end this way: they wait for the kernel through signals (see
    /// [`Error::Interrupted`] for the one case they cannot report a result).
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
            Self::QueueFull => {
                "collect completions before submitting more (16 per fd), or open more fds"
            }
            Self::ReservedBufferBusy => {
                "one fd has one reserved buffer: wait for the request using it, or use another fd; \
                 its size cannot change once it has been mapped"
            }
            Self::OutOfMemory => {
                "shorten the transfer to the reserved size the kernel granted, or free memory"
            }
            Self::InvalidRequest => "check the flags, length (< 256 MiB) and CDB of the request",
            Self::BadCdbLength => "a CDB has 6 to 32 bytes",
            Self::NoDevice => "the device was removed; open it again once it is back",
            Self::Unavailable => "the device is in error recovery or offline; retry later",
            Self::PermissionDenied => {
                "open the device read-write, or run with the needed capability (CAP_SYS_RAWIO)"
            }
            Self::Interrupted => {
                "a signal interrupted the call before it finished; nothing of it is still in \
                 progress, so it can be made again once the signal has been dealt with"
            }
            Self::BadAddress => "a buffer address was not accessible to the kernel",
            Self::WouldBlock => "nothing is ready yet; poll the fd",
            Self::NotSupported => "this node does not accept sg ioctls; use a /dev/sgN node",
            Self::Other => "see errno",
        }
    }

    /// What to do about it when `driver` answered; [`hint`](Self::hint) is the sg driver's.
    pub fn hint_on(self, driver: Driver) -> &'static str {
        if driver == Driver::Sg {
            return self.hint();
        }
        // scsi_bsg.c's io_uring handler and the block layer under it.
        match self {
            Self::QueueFull | Self::ReservedBufferBusy | Self::WouldBlock => {
                "the device's queue has no free request: collect completions, then submit again"
            }
            Self::OutOfMemory => {
                "the kernel could not map the buffer: shorten the transfer, free memory, or use \
                 registered buffers"
            }
            Self::InvalidRequest => {
                "check the CDB (6 to 32 bytes) and that the transfer fits the device's largest \
                 transfer (Device::max_transfer; queue/max_sectors_kb of its block device when \
                 sd is bound)"
            }
            Self::NotSupported => {
                "a bsg command through io_uring carries one direction and one flat buffer (no \
                 iovecs, no bidirectional transfer), and needs Linux 7.1 or later"
            }
            Self::PermissionDenied => {
                "the ring was opened read-only and the command writes, or the caller lacks \
                 CAP_SYS_RAWIO: open the ring read-write as root"
            }
            Self::BadCdbLength => "a CDB has 1 to 32 bytes",
            other => other.hint(),
        }
    }

    /// What the errno means when `driver` answered (the `Display` text is the sg driver's).
    pub fn text_on(self, driver: Driver) -> &'static str {
        match (driver, self) {
            (Driver::Bsg, Self::InvalidRequest) => "request rejected by the bsg driver",
            (Driver::Bsg, Self::NotSupported) => "not supported by the bsg node",
            (Driver::Bsg, Self::OutOfMemory) => "out of memory mapping the buffer",
            (Driver::Bsg, Self::QueueFull | Self::ReservedBufferBusy | Self::WouldBlock) => {
                "device queue full"
            }
            _ => self.static_text(),
        }
    }

    /// The sg driver's text for the errno (its `Display`).
    fn static_text(self) -> &'static str {
        match self {
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
        }
    }
}

impl fmt::Display for OsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.static_text())
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
    /// The details under an [`Error::Scsi`] (which names the device, the
    /// command and what to do): the decoded sense, or the status byte, and
    /// the host and driver bytes when they are not OK.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.outcome;
        match (&self.kind, &o.sense) {
            (_, Some(sense)) => write!(f, "{sense}")?,
            (ScsiErrorKind::Timeout, None) => {
                f.write_str("no status: the command did not complete")?
            }
            _ => write!(f, "status {}", o.status_text())?,
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
        Ok(())
    }
}

impl std::error::Error for ScsiError {}

impl fmt::Display for ScsiErrorKind {
    /// What failed and what to do, as [`Error::Scsi`] says it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ScsiErrorKind::UnitAttention => "unit attention; retry the command",
            ScsiErrorKind::CheckCondition => "check condition",
            ScsiErrorKind::Busy => "the device is busy; retry later",
            ScsiErrorKind::ReservationConflict => {
                "reservation conflict; another initiator holds a reservation on the device"
            }
            ScsiErrorKind::Timeout => "timed out; raise the command's timeout or check the device",
            ScsiErrorKind::Transport => "transport error; check the cabling, path or host adapter",
            ScsiErrorKind::Other => "the command failed",
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn into_io_error_keeps_the_error_and_a_fitting_kind() {
        use std::io::ErrorKind;
        let os = Error::Os {
            device: "/dev/sg3".into(),
            command: "SG_IO".into(),
            errno: Errno::EBUSY,
            kind: OsErrorKind::from_errno(Errno::EBUSY),
            driver: Driver::Sg,
        };
        let text = os.to_string();
        let io: std::io::Error = os.into();
        assert_eq!(io.kind(), ErrorKind::ResourceBusy);
        assert_eq!(io.to_string(), text);
        let inner = io.get_ref().and_then(|e| e.downcast_ref::<Error>());
        assert_eq!(inner.and_then(Error::errno), Some(Errno::EBUSY));
        let bad: std::io::Error = Error::Cdb(crate::cdb::CdbError::BadLength { len: 3 }).into();
        assert_eq!(bad.kind(), ErrorKind::InvalidInput);
        let eintr: std::io::Error = Error::Interrupted {
            device: "/dev/sg3".into(),
            command: "READ(10)".into(),
            sent: 2,
        }
        .into();
        assert_eq!(eintr.kind(), ErrorKind::Interrupted);
    }

    use std::error::Error as _;

    use super::*;

    /// Every level's text, top first, as a chain walker sees them.
    fn chain(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut out = vec![e.to_string()];
        let mut cause = e.source();
        while let Some(c) = cause {
            out.push(c.to_string());
            cause = c.source();
        }
        out
    }

    /// No level repeats the text of the level under it (what anyhow's `{:#}`
    /// would then print twice).
    fn no_repeats(e: &(dyn std::error::Error + 'static)) {
        let levels = chain(e);
        for w in levels.windows(2) {
            assert!(
                !w[0].contains(w[1].as_str()),
                "{:?} repeats its cause {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn open_error_says_its_cause_once() {
        let e = crate::Device::open("/nonexistent/sg9").unwrap_err();
        assert!(matches!(e, Error::Open { .. }), "{e:?}");
        let levels = chain(&e);
        assert_eq!(levels.len(), 2, "{levels:?}");
        assert!(levels[0].contains("/nonexistent/sg9"), "{levels:?}");
        assert!(levels[1].contains("No such file"), "{levels:?}");
        no_repeats(&e);
    }

    #[test]
    fn bsg_errno_texts_speak_of_bsg_not_of_sg() {
        // Every errno the io_uring path can see: none of the sg driver's
        // particulars (its 256 MiB limit, 16 requests per fd, reserved
        // buffer, /dev/sgN advice) may appear in what the user reads.
        let sg_only = [
            "sg driver",
            "256 MiB",
            "16 per fd",
            "reserved",
            "/dev/sgN",
            "sg ioctl",
        ];
        for raw in 1..=133 {
            let errno = Errno::from_raw(raw);
            let e = Error::Os {
                device: "/dev/bsg/0:0:0:0".into(),
                command: "READ(10) through io_uring".into(),
                errno,
                kind: OsErrorKind::from_errno(errno),
                driver: Driver::Bsg,
            };
            let text = e.to_string();
            let without_bsg = text.replace("bsg", "");
            for word in sg_only {
                assert!(!without_bsg.contains(word), "{errno:?}: {text}");
            }
            assert!(
                text.starts_with("/dev/bsg/0:0:0:0: READ(10) through io_uring: "),
                "{text}"
            );
        }
        let e = |errno: Errno, driver| Error::Os {
            device: "/dev/x".into(),
            command: "READ(10)".into(),
            errno,
            kind: OsErrorKind::from_errno(errno),
            driver,
        };
        // The same errno, told differently by each driver.
        let sg = e(Errno::EINVAL, Driver::Sg).to_string();
        let bsg = e(Errno::EINVAL, Driver::Bsg).to_string();
        assert!(sg.contains("sg driver") && sg.contains("256 MiB"), "{sg}");
        assert!(
            bsg.contains("bsg driver") && bsg.contains("max_sectors_kb"),
            "{bsg}"
        );
        let bsg = e(Errno::EOPNOTSUPP, Driver::Bsg).to_string();
        assert!(
            bsg.contains("one direction") && bsg.contains("7.1"),
            "{bsg}"
        );
    }

    #[test]
    fn os_error_has_its_errno_as_source() {
        let e = Error::Os {
            device: "/dev/sg3".into(),
            command: "READ(10)".into(),
            errno: Errno::EBUSY,
            kind: OsErrorKind::ReservedBufferBusy,
            driver: Driver::Sg,
        };
        let src = e.source().expect("a source");
        assert_eq!(src.downcast_ref::<Errno>(), Some(&Errno::EBUSY));
        let levels = chain(&e);
        assert!(
            levels[0].starts_with("/dev/sg3: READ(10): reserved buffer busy"),
            "{levels:?}"
        );
        no_repeats(&e);
        assert_eq!(e.report().to_string(), levels.join(": "));
    }

    fn failed_outcome() -> Outcome {
        Outcome {
            cdb: crate::cdb::Cdb::read_10(0x1234, 8),
            status: sgmap_sys::SAM_STAT_CHECK_CONDITION,
            host_status: 0,
            driver_status: sgmap_sys::DRIVER_SENSE,
            info: sgmap_sys::SG_INFO_CHECK,
            // Fixed format: MEDIUM ERROR, 11h/00h, information 0x1234.
            sense: crate::sense::Sense::parse(&[
                0xf0, 0, 0x03, 0, 0, 0x12, 0x34, 10, 0, 0, 0, 0, 0x11, 0, 0, 0, 0, 0,
            ]),
            requested: 4096,
            resid: 0,
            duration: std::time::Duration::ZERO,
            requested_mode: crate::Mode::Indirect,
            mode: crate::Mode::Indirect,
            fallback: None,
        }
    }

    #[test]
    fn scsi_error_is_an_error_and_the_source_of_error_scsi() {
        let e = failed_outcome().check("/dev/sg3".as_ref()).unwrap_err();
        let src = e.source().expect("a source");
        let scsi = src.downcast_ref::<ScsiError>().expect("the ScsiError");
        assert_eq!(scsi.kind, ScsiErrorKind::CheckCondition);
        let levels = chain(&e);
        assert_eq!(levels.len(), 2, "{levels:?}");
        assert!(
            levels[0].contains("/dev/sg3") && levels[0].contains("READ(10)"),
            "{levels:?}"
        );
        assert!(levels[1].contains("MEDIUM ERROR"), "{levels:?}");
        no_repeats(&e);
        // The failed command claims no bytes, whatever its residual.
        assert_eq!(scsi.outcome.transferred(), 0);
    }

    #[test]
    fn incomplete_transfer_names_its_progress_and_its_cause() {
        let cause = failed_outcome().check("/dev/sg3".as_ref()).unwrap_err();
        let mut done = Transfer::empty(crate::Mode::Indirect);
        done.bytes = 8192;
        done.commands = 3;
        let e = Error::Incomplete(Box::new(Incomplete {
            device: "/dev/sg3".into(),
            command: "READ(10)".into(),
            requested: 12288,
            done,
            cause,
        }));
        assert_eq!(e.progress().map(|t| (t.bytes, t.commands)), Some((8192, 3)));
        assert!(e.scsi().is_some() && e.outcome().is_some());
        let line = e.report().to_string();
        assert!(
            line.contains("8192 of 12288 bytes moved in 3 command(s)"),
            "{line}"
        );
        assert_eq!(line.matches("MEDIUM ERROR").count(), 1, "{line}");
        no_repeats(&e);
    }
}
