//! What a completed command reports: status bytes, sense, residual, duration,
//! and the transfer mode that really ran.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use sgmap_sys as sys;

use crate::cdb::Cdb;
use crate::error::{Error, ScsiError, ScsiErrorKind};
use crate::sense::{Sense, SenseKey};

/// How data moved between the device and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Mode {
    /// The command moved no data.
    NoData = 0,
    /// Through kernel buffers: the kernel copied to or from the caller's buffer.
    Indirect = 1,
    /// Straight to or from the caller's pinned pages.
    Direct = 2,
    /// Partly direct, partly indirect.
    Mixed = 3,
    /// In the fd's mmap-ed reserved buffer: no copy through user memory.
    Mmap = 4,
}

impl Mode {
    /// Lower-case name, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::NoData => "none",
            Mode::Indirect => "indirect",
            Mode::Direct => "direct",
            Mode::Mixed => "mixed",
            Mode::Mmap => "mmap",
        }
    }
}

impl Mode {
    /// The mode a command through a caller's buffer asks for: no data,
    /// direct when [`Command::direct`](crate::Command::direct) was set, else indirect.
    pub(crate) fn requested(cmd: &crate::Command, len: usize) -> Mode {
        if len == 0 {
            Mode::NoData
        } else if cmd.wants_direct() {
            Mode::Direct
        } else {
            Mode::Indirect
        }
    }

    /// Folds the mode one more command really ran into a running summary:
    /// the least direct mode seen wins, and no-data commands count for nothing.
    pub(crate) fn least_direct(self, seen: Mode) -> Mode {
        if seen == self || seen == Mode::NoData {
            self
        } else if self == Mode::Direct || seen == Mode::Indirect {
            seen
        } else {
            self
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a request for direct IO ended up indirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Fallback {
    /// The sg driver's `allow_dio` parameter is 0
    /// (`/sys/module/sg/parameters/allow_dio`).
    AllowDioOff = 1,
    /// The buffer's address or length is not a multiple of the queue's DMA
    /// alignment ([`Device::dma_alignment`](crate::Device::dma_alignment),
    /// often 4 bytes; a page-aligned [`DirectBuf`](crate::DirectBuf) always
    /// meets it).
    Misaligned = 2,
    /// The kernel did not say why (direction unknown, iovec, a host limit).
    Unknown = 3,
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fallback::AllowDioOff => {
                "allow_dio is off (echo 1 > /sys/module/sg/parameters/allow_dio)"
            }
            Fallback::Misaligned => {
                "the buffer's address or length is not a multiple of the device queue's DMA \
                 alignment (see Device::dma_alignment; a DirectBuf always meets it)"
            }
            Fallback::Unknown => "the kernel chose indirect IO",
        })
    }
}

/// Everything the kernel reported about one completed command.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The command.
    pub cdb: Cdb,
    /// SCSI status byte (SAM numbering: 0 GOOD, 2 CHECK CONDITION, ...).
    pub status: u8,
    /// Host adapter status (`DID_*`).
    pub host_status: u16,
    /// Driver status (`DRIVER_*`).
    pub driver_status: u16,
    /// The `info` word (`SG_INFO_*`).
    pub info: u32,
    /// Decoded sense data, when the device returned any.
    pub sense: Option<Sense>,
    /// Bytes asked for.
    pub requested: usize,
    /// Bytes not transferred as the kernel reported them (`resid`), never
    /// more than `requested`. Only meaningful for a command that succeeded:
    /// see [`transferred`](Self::transferred).
    pub resid: usize,
    /// Time the command took: as the sg driver measured it (millisecond
    /// resolution); through a [`BsgRing`](crate::BsgRing), which has no such
    /// report, from submission to completion as sgmap's clock saw it when the
    /// ring was opened with `measure_duration(true)`, else zero.
    pub duration: Duration,
    /// The mode asked for.
    pub requested_mode: Mode,
    /// The mode that really ran.
    pub mode: Mode,
    /// Why direct IO was not done, when it was asked for and not done.
    pub fallback: Option<Fallback>,
}

impl Outcome {
    /// Bytes the device really transferred: `requested - resid` when the
    /// command succeeded, and 0 when it failed ([`failure_kind`](Self::failure_kind)
    /// is not `None`). A failed command's residual says nothing reliable (the
    /// kernel reports 0 for a timeout or an ILLEGAL REQUEST), so sgmap never
    /// counts bytes a failed command may or may not have moved.
    pub fn transferred(&self) -> usize {
        if self.failure_kind().is_some() {
            0
        } else {
            self.requested - self.resid
        }
    }

    /// True when status, host and driver all say GOOD (a RECOVERED ERROR
    /// sense also counts: the data is good).
    pub fn is_good(&self) -> bool {
        self.failure_kind().is_none()
    }

    /// The SCSI failure class, or `None` for success.
    pub fn failure_kind(&self) -> Option<ScsiErrorKind> {
        let sense_key = self.sense.as_ref().map(|s| s.key);
        let driver = self.driver_status & sys::DRIVER_MASK;
        if self.host_status == sys::DID_TIME_OUT || driver == sys::DRIVER_TIMEOUT {
            return Some(ScsiErrorKind::Timeout);
        }
        // The device's own "busy" tells the caller what to do (retry later)
        // better than the host byte the midlayer adds when it gives up.
        if matches!(
            self.status,
            sys::SAM_STAT_BUSY | sys::SAM_STAT_TASK_SET_FULL
        ) {
            return Some(ScsiErrorKind::Busy);
        }
        if self.host_status != sys::DID_OK {
            return Some(ScsiErrorKind::Transport);
        }
        match self.status {
            sys::SAM_STAT_GOOD | sys::SAM_STAT_CONDITION_MET => {}
            sys::SAM_STAT_CHECK_CONDITION | sys::SAM_STAT_COMMAND_TERMINATED => {
                return match sense_key {
                    Some(SenseKey::UnitAttention) => Some(ScsiErrorKind::UnitAttention),
                    // The device recovered: the data is good, the sense is a note.
                    Some(SenseKey::RecoveredError) => None,
                    _ => Some(ScsiErrorKind::CheckCondition),
                };
            }
            sys::SAM_STAT_BUSY | sys::SAM_STAT_TASK_SET_FULL => return Some(ScsiErrorKind::Busy),
            sys::SAM_STAT_RESERVATION_CONFLICT => return Some(ScsiErrorKind::ReservationConflict),
            _ => return Some(ScsiErrorKind::Other),
        }
        // GOOD status, but the driver may still flag an error without sense.
        if driver != sys::DRIVER_OK && driver != sys::DRIVER_SENSE {
            return Some(ScsiErrorKind::Other);
        }
        None
    }

    /// `Ok(self)` when the command succeeded, else an [`Error::Scsi`] naming `device`.
    pub fn check(self, device: &Path) -> Result<Outcome, Error> {
        match self.failure_kind() {
            None => Ok(self),
            Some(kind) => Err(Error::Scsi(Box::new(ScsiError {
                device: device.to_path_buf(),
                kind,
                outcome: self,
            }))),
        }
    }

    /// The command's name, e.g. `READ(10)`.
    pub fn command_name(&self) -> &'static str {
        command_name(&self.cdb)
    }

    /// The status byte's name.
    pub fn status_text(&self) -> &'static str {
        status_name(self.status)
    }
}

/// The name of the command in a CDB, e.g. `READ(10)`.
pub fn command_name(cdb: &Cdb) -> &'static str {
    let b = cdb.as_bytes();
    match (b[0], b.get(1).map(|x| x & 0x1f)) {
        (sys::TEST_UNIT_READY, _) => "TEST UNIT READY",
        (sys::REQUEST_SENSE, _) => "REQUEST SENSE",
        (sys::READ_6, _) => "READ(6)",
        (sys::WRITE_6, _) => "WRITE(6)",
        (sys::INQUIRY, _) => "INQUIRY",
        (sys::MODE_SENSE, _) => "MODE SENSE(6)",
        (sys::READ_CAPACITY, _) => "READ CAPACITY(10)",
        (sys::READ_10, _) => "READ(10)",
        (sys::WRITE_10, _) => "WRITE(10)",
        (sys::VERIFY, _) => "VERIFY(10)",
        (sys::SYNCHRONIZE_CACHE, _) => "SYNCHRONIZE CACHE(10)",
        (sys::WRITE_BUFFER, _) => "WRITE BUFFER",
        (sys::READ_BUFFER, _) => "READ BUFFER",
        (sys::MODE_SENSE_10, _) => "MODE SENSE(10)",
        (sys::READ_16, _) => "READ(16)",
        (sys::WRITE_16, _) => "WRITE(16)",
        (sys::SERVICE_ACTION_IN_16, Some(sys::SAI_READ_CAPACITY_16)) => "READ CAPACITY(16)",
        (sys::SERVICE_ACTION_IN_16, _) => "SERVICE ACTION IN(16)",
        (sys::READ_12, _) => "READ(12)",
        (sys::WRITE_12, _) => "WRITE(12)",
        _ => "SCSI command",
    }
}

/// The name of a SCSI status byte (SAM numbering).
pub fn status_name(status: u8) -> &'static str {
    match status {
        sys::SAM_STAT_GOOD => "GOOD",
        sys::SAM_STAT_CHECK_CONDITION => "CHECK CONDITION",
        sys::SAM_STAT_CONDITION_MET => "CONDITION MET",
        sys::SAM_STAT_BUSY => "BUSY",
        sys::SAM_STAT_INTERMEDIATE => "INTERMEDIATE",
        sys::SAM_STAT_INTERMEDIATE_CONDITION_MET => "INTERMEDIATE-CONDITION MET",
        sys::SAM_STAT_RESERVATION_CONFLICT => "RESERVATION CONFLICT",
        sys::SAM_STAT_COMMAND_TERMINATED => "COMMAND TERMINATED",
        sys::SAM_STAT_TASK_SET_FULL => "TASK SET FULL",
        sys::SAM_STAT_ACA_ACTIVE => "ACA ACTIVE",
        sys::SAM_STAT_TASK_ABORTED => "TASK ABORTED",
        _ => "unknown status",
    }
}

/// The name of a host byte (`DID_*`).
pub fn host_byte_name(host: u16) -> &'static str {
    match host {
        sys::DID_OK => "DID_OK",
        sys::DID_NO_CONNECT => "DID_NO_CONNECT (could not connect)",
        sys::DID_BUS_BUSY => "DID_BUS_BUSY",
        sys::DID_TIME_OUT => "DID_TIME_OUT (timed out)",
        sys::DID_BAD_TARGET => "DID_BAD_TARGET",
        sys::DID_ABORT => "DID_ABORT (aborted)",
        sys::DID_PARITY => "DID_PARITY",
        sys::DID_ERROR => "DID_ERROR (host adapter error)",
        sys::DID_RESET => "DID_RESET (reset)",
        sys::DID_BAD_INTR => "DID_BAD_INTR",
        sys::DID_PASSTHROUGH => "DID_PASSTHROUGH",
        sys::DID_SOFT_ERROR => "DID_SOFT_ERROR (retry)",
        sys::DID_IMM_RETRY => "DID_IMM_RETRY",
        sys::DID_REQUEUE => "DID_REQUEUE",
        sys::DID_TRANSPORT_DISRUPTED => "DID_TRANSPORT_DISRUPTED",
        sys::DID_TRANSPORT_FAILFAST => "DID_TRANSPORT_FAILFAST",
        sys::DID_TARGET_FAILURE => "DID_TARGET_FAILURE",
        sys::DID_NEXUS_FAILURE => "DID_NEXUS_FAILURE",
        sys::DID_ALLOC_FAILURE => "DID_ALLOC_FAILURE",
        sys::DID_MEDIUM_ERROR => "DID_MEDIUM_ERROR",
        sys::DID_TRANSPORT_MARGINAL => "DID_TRANSPORT_MARGINAL",
        _ => "unknown host byte",
    }
}

/// The name of a driver byte (`DRIVER_*`, low nibble).
pub fn driver_byte_name(driver: u16) -> &'static str {
    match driver & sys::DRIVER_MASK {
        sys::DRIVER_OK => "DRIVER_OK",
        sys::DRIVER_BUSY => "DRIVER_BUSY",
        sys::DRIVER_SOFT => "DRIVER_SOFT",
        sys::DRIVER_MEDIA => "DRIVER_MEDIA",
        sys::DRIVER_ERROR => "DRIVER_ERROR",
        sys::DRIVER_INVALID => "DRIVER_INVALID",
        sys::DRIVER_TIMEOUT => "DRIVER_TIMEOUT",
        sys::DRIVER_HARD => "DRIVER_HARD",
        sys::DRIVER_SENSE => "DRIVER_SENSE",
        _ => "unknown driver byte",
    }
}

#[cfg(test)]
mod tests {
    use super::Mode;

    #[test]
    fn least_direct_mode_wins_a_summary() {
        use Mode::*;
        assert_eq!(Direct.least_direct(Direct), Direct);
        assert_eq!(Direct.least_direct(Mixed), Mixed);
        assert_eq!(Direct.least_direct(Indirect), Indirect);
        assert_eq!(Mixed.least_direct(Indirect), Indirect);
        assert_eq!(Mixed.least_direct(Direct), Mixed);
        assert_eq!(Indirect.least_direct(Direct), Indirect);
        assert_eq!(Indirect.least_direct(NoData), Indirect);
        assert_eq!(Mmap.least_direct(Mmap), Mmap);
    }
}
