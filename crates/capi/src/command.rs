//! Raw commands in each of the three transfer modes, and what a command
//! reports: `sgmap_outcome`.

use std::ffi::{c_char, c_void, CString};
use std::sync::OnceLock;
use std::time::Duration;

use sgmap::cdb::Cdb;
use sgmap::{Command, Data, Direction, Fallback, Mode, Outcome, ScsiErrorKind};

use crate::args::{self, write_text, Out};
use crate::device::{handle, sgmap_device};
use crate::error::{guard, guard_value, sgmap_result, Fail};

/// Which way a command's data moves: one of the `SGMAP_DIR_*` values.
pub type sgmap_direction = u32;
/// No data phase.
pub const SGMAP_DIR_NONE: sgmap_direction = 0;
/// Data comes from the device (reads, INQUIRY, ...).
pub const SGMAP_DIR_FROM_DEVICE: sgmap_direction = 1;
/// Data goes to the device (writes).
pub const SGMAP_DIR_TO_DEVICE: sgmap_direction = 2;

/// How data moves between the device and memory: one of the `SGMAP_MODE_*`
/// values. Asked for in `sgmap_command.mode`; what really happened is in
/// `sgmap_outcome.mode`.
pub type sgmap_mode = u32;
/// The command moved no data (reported only).
pub const SGMAP_MODE_NONE: sgmap_mode = 0;
/// Through kernel buffers: the kernel copies to or from the caller's buffer.
pub const SGMAP_MODE_INDIRECT: sgmap_mode = 1;
/// Straight to or from the caller's pinned pages (SG_FLAG_DIRECT_IO). The
/// kernel may quietly do indirect IO instead: the outcome says which
/// happened, and why (`fallback`).
pub const SGMAP_MODE_DIRECT: sgmap_mode = 2;
/// Partly direct, partly indirect (reported only).
pub const SGMAP_MODE_MIXED: sgmap_mode = 3;
/// In the handle's mapped reserved buffer (SG_FLAG_MMAP_IO with dxferp =
/// NULL): no copy through user memory. Needs `sgmap_device_map_reserved`.
pub const SGMAP_MODE_MMAP: sgmap_mode = 4;

/// Why a request for direct IO ended up indirect: one of `SGMAP_FALLBACK_*`.
pub type sgmap_fallback = u32;
/// No fallback: direct IO was not asked for, or it happened.
pub const SGMAP_FALLBACK_NONE: sgmap_fallback = 0;
/// The sg driver's allow_dio parameter is 0
/// (/sys/module/sg/parameters/allow_dio).
pub const SGMAP_FALLBACK_ALLOW_DIO_OFF: sgmap_fallback = 1;
/// The buffer's address or length is not a multiple of the device queue's
/// DMA alignment (often 4 bytes; a buffer from `sgmap_direct_buffer_alloc`
/// of whole blocks always meets it).
pub const SGMAP_FALLBACK_MISALIGNED: sgmap_fallback = 2;
/// The kernel did not say why.
pub const SGMAP_FALLBACK_UNKNOWN: sgmap_fallback = 3;

/// The class of a command's failure: one of `SGMAP_FAILURE_*`.
pub type sgmap_failure = u32;
/// The command succeeded (a RECOVERED ERROR sense also counts: the data is good).
pub const SGMAP_FAILURE_NONE: sgmap_failure = 0;
/// UNIT ATTENTION: power on, reset or a changed parameter; retry the command.
pub const SGMAP_FAILURE_UNIT_ATTENTION: sgmap_failure = 1;
/// CHECK CONDITION with sense data other than UNIT ATTENTION.
pub const SGMAP_FAILURE_CHECK_CONDITION: sgmap_failure = 2;
/// BUSY or TASK SET FULL: retry later.
pub const SGMAP_FAILURE_BUSY: sgmap_failure = 3;
/// RESERVATION CONFLICT.
pub const SGMAP_FAILURE_RESERVATION_CONFLICT: sgmap_failure = 4;
/// The command timed out.
pub const SGMAP_FAILURE_TIMEOUT: sgmap_failure = 5;
/// The host adapter or transport reported an error (see `host_status`).
pub const SGMAP_FAILURE_TRANSPORT: sgmap_failure = 6;
/// Any other non-GOOD status or driver error.
pub const SGMAP_FAILURE_OTHER: sgmap_failure = 7;

/// The most sense data a command can return (the v3 interface's limit).
pub const SGMAP_SENSE_MAX: usize = 252;

/// `sgmap_command.flags`: queue at the tail of the device queue instead of
/// the head (SG_FLAG_Q_AT_TAIL).
pub const SGMAP_CMD_AT_TAIL: u32 = 1;

/// Everything the kernel reported about one command that ran.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sgmap_outcome {
    /// SCSI status byte (SAM numbering: 0 GOOD, 2 CHECK CONDITION, 8 BUSY, ...).
    pub status: u8,
    /// Host adapter status (DID_*; 0 is DID_OK).
    pub host_status: u16,
    /// Driver status (DRIVER_*; 0 is DRIVER_OK).
    pub driver_status: u16,
    /// The sg_io_hdr info word (SG_INFO_*).
    pub info: u32,
    /// The class of failure, `SGMAP_FAILURE_NONE` when the command succeeded.
    pub failure: sgmap_failure,
    /// True when the device returned sense data that sgmap could decode:
    /// `sense_key`, `asc` and `ascq` are then valid.
    pub has_sense: bool,
    /// Sense key (0 to 15: 3 MEDIUM ERROR, 5 ILLEGAL REQUEST, 6 UNIT ATTENTION, ...).
    pub sense_key: u8,
    /// Additional sense code.
    pub asc: u8,
    /// Additional sense code qualifier.
    pub ascq: u8,
    /// True when the sense data carries a valid INFORMATION field (for a
    /// medium error, the first failing LBA).
    pub has_information: bool,
    /// The INFORMATION field when `has_information`.
    pub information: u64,
    /// Bytes of raw sense data in `sense`.
    pub sense_len: u32,
    /// The raw sense data, as the device returned it.
    pub sense: [u8; SGMAP_SENSE_MAX],
    /// Bytes asked for.
    pub requested: usize,
    /// Bytes not transferred as the kernel reported them (the residual),
    /// never more than `requested`. Only meaningful when the command
    /// succeeded: see `transferred`.
    pub resid: usize,
    /// Bytes really transferred: `requested - resid` when the command
    /// succeeded, 0 when it failed (`failure` is not `SGMAP_FAILURE_NONE`).
    /// A failed command's residual says nothing reliable (the kernel reports
    /// 0 for a timeout or an ILLEGAL REQUEST), so its data is never counted.
    pub transferred: usize,
    /// The command's duration as the driver measured it, in milliseconds.
    pub duration_ms: u32,
    /// The mode that really ran (`SGMAP_MODE_*`).
    pub mode: sgmap_mode,
    /// The mode asked for.
    pub requested_mode: sgmap_mode,
    /// Why direct IO became indirect (`SGMAP_FALLBACK_*`), when it did.
    pub fallback: sgmap_fallback,
}

impl Default for sgmap_outcome {
    fn default() -> Self {
        Self {
            status: 0,
            host_status: 0,
            driver_status: 0,
            info: 0,
            failure: SGMAP_FAILURE_NONE,
            has_sense: false,
            sense_key: 0,
            asc: 0,
            ascq: 0,
            has_information: false,
            information: 0,
            sense_len: 0,
            sense: [0; SGMAP_SENSE_MAX],
            requested: 0,
            resid: 0,
            transferred: 0,
            duration_ms: 0,
            mode: SGMAP_MODE_NONE,
            requested_mode: SGMAP_MODE_NONE,
            fallback: SGMAP_FALLBACK_NONE,
        }
    }
}

/// The C value of a mode.
pub(crate) fn mode_to_c(mode: Mode) -> sgmap_mode {
    match mode {
        Mode::NoData => SGMAP_MODE_NONE,
        Mode::Indirect => SGMAP_MODE_INDIRECT,
        Mode::Direct => SGMAP_MODE_DIRECT,
        Mode::Mixed => SGMAP_MODE_MIXED,
        Mode::Mmap => SGMAP_MODE_MMAP,
    }
}

/// The C value of a fallback.
pub(crate) fn fallback_to_c(f: Option<Fallback>) -> sgmap_fallback {
    match f {
        None => SGMAP_FALLBACK_NONE,
        Some(Fallback::AllowDioOff) => SGMAP_FALLBACK_ALLOW_DIO_OFF,
        Some(Fallback::Misaligned) => SGMAP_FALLBACK_MISALIGNED,
        Some(Fallback::Unknown) => SGMAP_FALLBACK_UNKNOWN,
    }
}

impl sgmap_outcome {
    /// The C form of a core outcome.
    pub(crate) fn from_core(o: &Outcome) -> Self {
        let mut c = Self {
            status: o.status,
            host_status: o.host_status,
            driver_status: o.driver_status,
            info: o.info,
            failure: match o.failure_kind() {
                None => SGMAP_FAILURE_NONE,
                Some(ScsiErrorKind::UnitAttention) => SGMAP_FAILURE_UNIT_ATTENTION,
                Some(ScsiErrorKind::CheckCondition) => SGMAP_FAILURE_CHECK_CONDITION,
                Some(ScsiErrorKind::Busy) => SGMAP_FAILURE_BUSY,
                Some(ScsiErrorKind::ReservationConflict) => SGMAP_FAILURE_RESERVATION_CONFLICT,
                Some(ScsiErrorKind::Timeout) => SGMAP_FAILURE_TIMEOUT,
                Some(ScsiErrorKind::Transport) => SGMAP_FAILURE_TRANSPORT,
                Some(_) => SGMAP_FAILURE_OTHER,
            },
            requested: o.requested,
            resid: o.resid,
            transferred: o.transferred(),
            duration_ms: u32::try_from(o.duration.as_millis()).unwrap_or(u32::MAX),
            mode: mode_to_c(o.mode),
            requested_mode: mode_to_c(o.requested_mode),
            fallback: fallback_to_c(o.fallback),
            ..Self::default()
        };
        if let Some(s) = &o.sense {
            c.has_sense = true;
            c.sense_key = s.key as u8;
            c.asc = s.asc;
            c.ascq = s.ascq;
            c.has_information = s.information.is_some();
            c.information = s.information.unwrap_or(0);
            let raw = s.raw();
            let n = raw.len().min(SGMAP_SENSE_MAX);
            c.sense[..n].copy_from_slice(&raw[..n]);
            c.sense_len = n as u32;
        }
        c
    }
}

/// One command to run with `sgmap_execute`. Zero-initialise it and set what
/// you need (`timeout_ms` 0 means the default of 60 s).
///
/// A READ or WRITE (6, 10, 12, 16, WRITE AND VERIFY) whose `data_len` is
/// less than the blocks its CDB names need, or whose `direction` is the
/// other way, is refused with `SGMAP_INVALID_REQUEST` before it is sent
/// (here, on queues, pools and rings alike): the kernel would move what
/// fits and report success, losing the rest of a read or storing blocks a
/// write never gave. The need is blocks × the block size once the handle
/// knows it (after `sgmap_block_size` or `sgmap_read_capacity` on a device;
/// a ring asks the device at `sgmap_ring_open`), else blocks × 512, the
/// smallest block size: a queue or pool opened by path counts 512.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sgmap_command {
    /// The CDB bytes (6 to 32, matching the opcode's group).
    pub cdb: *const u8,
    /// Number of CDB bytes.
    pub cdb_len: usize,
    /// `SGMAP_DIR_NONE`, `SGMAP_DIR_FROM_DEVICE` or `SGMAP_DIR_TO_DEVICE`.
    pub direction: sgmap_direction,
    /// `SGMAP_MODE_INDIRECT` (0 is taken as indirect too), `SGMAP_MODE_DIRECT`
    /// or `SGMAP_MODE_MMAP`.
    pub mode: sgmap_mode,
    /// The caller's buffer for indirect and direct IO; must be NULL for mmap
    /// IO (the data is in the mapped buffer, from its start) and for
    /// commands without data.
    pub data: *mut c_void,
    /// Bytes to transfer (0 with `SGMAP_DIR_NONE`). For mmap IO, at most the
    /// mapped length.
    pub data_len: usize,
    /// Timeout in milliseconds; 0 for the default (60 s).
    pub timeout_ms: u32,
    /// 0 or `SGMAP_CMD_AT_TAIL`.
    pub flags: u32,
}

fn direction_from_c(d: sgmap_direction) -> Result<Direction, Fail> {
    match d {
        SGMAP_DIR_NONE => Ok(Direction::None),
        SGMAP_DIR_FROM_DEVICE => Ok(Direction::FromDevice),
        SGMAP_DIR_TO_DEVICE => Ok(Direction::ToDevice),
        other => Err(Fail::invalid(format!(
            "unknown direction {other}; use SGMAP_DIR_NONE, SGMAP_DIR_FROM_DEVICE or SGMAP_DIR_TO_DEVICE"
        ))),
    }
}

/// A requested transfer mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Asked {
    Indirect,
    Direct,
    Mmap,
}

pub(crate) fn asked_mode(m: sgmap_mode) -> Result<Asked, Fail> {
    match m {
        SGMAP_MODE_NONE | SGMAP_MODE_INDIRECT => Ok(Asked::Indirect),
        SGMAP_MODE_DIRECT => Ok(Asked::Direct),
        SGMAP_MODE_MMAP => Ok(Asked::Mmap),
        other => Err(Fail::invalid(format!(
            "mode {other} cannot be asked for; use SGMAP_MODE_INDIRECT, SGMAP_MODE_DIRECT or SGMAP_MODE_MMAP"
        ))),
    }
}

/// Refuses a transfer longer than the sg driver takes (core's limit), before
/// any buffer is made for it.
pub(crate) fn check_transfer_len(len: usize) -> Result<(), Fail> {
    match sgmap::transfer_too_long(len) {
        Some(why) => Err(Fail::new(sgmap_result::SGMAP_INVALID_REQUEST, why)),
        None => Ok(()),
    }
}

/// Checks a C command and makes the core's: the CDB, direction, mode asked
/// for, flags and timeout (direct IO is left to the caller to ask for).
///
/// # Safety
///
/// `c.cdb` must be NULL or valid for reads of `c.cdb_len` bytes.
pub(crate) unsafe fn parse_command(c: &sgmap_command) -> Result<(Command, Direction, Asked), Fail> {
    // The length first: the bytes are borrowed only once it is one a CDB can
    // have, so no slice is ever formed over memory the caller never gave.
    if c.cdb.is_null() {
        return Err(Fail::null("cmd->cdb"));
    }
    let len = c.cdb_len;
    if !(sgmap::cdb::MIN_CDB_LEN..=sgmap::cdb::MAX_CDB_LEN).contains(&len) {
        return Err(sgmap::Error::from(sgmap::cdb::CdbError::BadLength { len }).into());
    }
    // SAFETY: non-NULL, and valid for `cdb_len` (6 to 32) bytes per the
    // caller's contract.
    let cdb_bytes = unsafe { args::bytes(c.cdb, len, "cmd->cdb") }?;
    let cdb = Cdb::new(cdb_bytes).map_err(sgmap::Error::from)?;
    let direction = direction_from_c(c.direction)?;
    let asked = asked_mode(c.mode)?;
    if c.flags & !SGMAP_CMD_AT_TAIL != 0 {
        return Err(Fail::invalid(format!(
            "unknown command flag bits {:#x}; use SGMAP_CMD_AT_TAIL",
            c.flags & !SGMAP_CMD_AT_TAIL
        )));
    }
    let mut command = Command::new(cdb);
    if c.timeout_ms != 0 {
        command = command.timeout(Duration::from_millis(u64::from(c.timeout_ms)));
    }
    if c.flags & SGMAP_CMD_AT_TAIL != 0 {
        command = command.at_tail();
    }
    if direction == Direction::None && c.data_len != 0 {
        return Err(Fail::invalid(
            "SGMAP_DIR_NONE with a non-zero data_len; give the direction of the data",
        ));
    }
    if asked == Asked::Direct {
        command = command.direct();
    }
    Ok((command, direction, asked))
}

/// Runs one command, waits for it, and reports everything about it in
/// `*outcome` (pass NULL if you need only the result). A signal meanwhile
/// does not end the wait early nor send the command again unreported (see
/// "Signals" at the top of this header).
///
/// The mode is the caller's choice: `SGMAP_MODE_INDIRECT` and
/// `SGMAP_MODE_DIRECT` move data through `cmd->data`; `SGMAP_MODE_MMAP`
/// moves it in the first `cmd->data_len` bytes of the mapped reserved
/// buffer (`cmd->data` must be NULL). Direct IO may silently become
/// indirect: `outcome->mode` says what really happened.
///
/// Returns `SGMAP_OK` when the command completed with GOOD status;
/// `SGMAP_SCSI_ERROR` when it ran but failed (the outcome, and the last
/// error, hold the status bytes and sense; a UNIT ATTENTION is not retried
/// here); `SGMAP_OS_ERROR` when the driver refused it (errno in the last
/// error), or, errno EINTR, when a signal made the command's own result
/// unknown (handles opened read-only only); `SGMAP_INVALID_REQUEST`,
/// `SGMAP_INVALID_CDB`, `SGMAP_INVALID_ARGUMENT`, `SGMAP_WRONG_STATE` (mmap
/// IO before mapping, and the mapped-handle rules below)
/// or `SGMAP_NULL_PARAMETER` when it was not sent. Whenever the command did
/// not run, every field of `*outcome` is zero (its padding bytes are not
/// defined: compare fields, not bytes).
///
/// On a mapped handle commands run one at a time; on an unmapped one they
/// may overlap. A mapped handle carries only `SGMAP_MODE_MMAP` commands and
/// commands without data: an `SGMAP_MODE_INDIRECT` or `SGMAP_MODE_DIRECT`
/// command with data gives `SGMAP_WRONG_STATE` there, unsent, because the
/// sg driver would move its data through the mapped buffer (it lends the
/// reserved buffer to any indirect command that fits, and to direct IO that
/// falls back), over the bytes the program keeps there: send it on another
/// handle. An `SGMAP_MODE_MMAP` command lends the buffer to the calling
/// thread until `sgmap_buffer_release`, and is refused with
/// `SGMAP_WRONG_STATE` while another thread holds it, or in a process
/// forked after mapping (see `sgmap_device`). On a handle opened with
/// `SGMAP_OPEN_READ_ONLY`, a command that sends data to the device or is not
/// read-safe gives `SGMAP_INVALID_REQUEST`, unsent.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `cmd` must be NULL or point at an
/// `sgmap_command` whose `cdb` is NULL or valid for reads of `cdb_len` bytes
/// and whose `data`, when not NULL, is valid for reads and writes of
/// `data_len` bytes, untouched until this returns; `outcome` must be NULL or
/// valid for a write of one `sgmap_outcome`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_execute(
    dev: *mut sgmap_device,
    cmd: *const sgmap_command,
    outcome: *mut sgmap_outcome,
) -> sgmap_result {
    guard("sgmap_execute", || {
        let outcome = Out::optional(outcome, "outcome")?;
        if let Some(o) = &outcome {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(sgmap_outcome::default()) };
        }
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        // SAFETY: NULL or a valid command per the caller's contract.
        let c = unsafe { args::input(cmd, "cmd") }?;
        // SAFETY: `cmd->cdb` per the caller's contract.
        let (command, direction, asked) = unsafe { parse_command(c) }?;
        let result = match asked {
            Asked::Mmap => {
                if !c.data.is_null() {
                    return Err(Fail::invalid(
                        "with SGMAP_MODE_MMAP the data is in the mapped buffer: set cmd->data to NULL",
                    ));
                }
                dev.with_buffer("sgmap_execute(SGMAP_MODE_MMAP)", |m| {
                    Ok(m.execute(&command, direction, c.data_len)?)
                })?
            }
            Asked::Indirect | Asked::Direct => {
                check_transfer_len(c.data_len)?;
                let data = match direction {
                    Direction::None => {
                        if !c.data.is_null() {
                            return Err(Fail::invalid(
                                "SGMAP_DIR_NONE with a data buffer; set cmd->data to NULL",
                            ));
                        }
                        Data::None
                    }
                    Direction::FromDevice => Data::FromDevice(
                        // SAFETY: NULL or valid for `data_len` bytes, untouched
                        // meanwhile, per the caller's contract.
                        unsafe { args::bytes_mut(c.data.cast(), c.data_len, "cmd->data") }?,
                    ),
                    Direction::ToDevice => Data::ToDevice(
                        // SAFETY: as above.
                        unsafe {
                            args::bytes(c.data.cast_const().cast(), c.data_len, "cmd->data")
                        }?,
                    ),
                };
                if data.is_empty() {
                    dev.with_device(|d| Ok(d.execute(&command, data)?))?
                } else {
                    let what = if asked == Asked::Direct {
                        "sgmap_execute with SGMAP_MODE_DIRECT and data"
                    } else {
                        "sgmap_execute with SGMAP_MODE_INDIRECT and data"
                    };
                    dev.with_data(what, |d| Ok(d.execute(&command, data)?))?
                }
            }
        };
        let c_outcome = sgmap_outcome::from_core(&result);
        if let Some(o) = &outcome {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(c_outcome) };
        }
        result.check(dev.path())?;
        Ok(())
    })
}

/// The name of a mode: "none", "indirect", "direct", "mixed", "mmap", or
/// "unknown". Never NULL; the string is static.
#[no_mangle]
pub extern "C" fn sgmap_mode_name(mode: sgmap_mode) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
        let names = NAMES.get_or_init(|| {
            [
                Mode::NoData,
                Mode::Indirect,
                Mode::Direct,
                Mode::Mixed,
                Mode::Mmap,
            ]
            .iter()
            .map(|m| CString::new(m.name()).unwrap_or_default())
            .collect()
        });
        usize::try_from(mode)
            .ok()
            .and_then(|i| names.get(i))
            .map_or(c"unknown".as_ptr(), |n| n.as_ptr())
    })
}

/// What a fallback means and what to do, e.g. "allow_dio is off (echo 1 >
/// /sys/module/sg/parameters/allow_dio)"; "" for `SGMAP_FALLBACK_NONE`,
/// "unknown" for a value this version does not know. Never NULL; static.
#[no_mangle]
pub extern "C" fn sgmap_fallback_text(fallback: sgmap_fallback) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        // The C texts: the Rust ones name Rust items.
        const TEXTS: [&std::ffi::CStr; 3] = [
            c"allow_dio is off (echo 1 > /sys/module/sg/parameters/allow_dio)",
            c"the buffer's address or length is not a multiple of the device queue's DMA \
              alignment (often 4 bytes; a buffer from sgmap_direct_buffer_alloc of whole blocks \
              always meets it)",
            c"the kernel chose indirect IO",
        ];
        match fallback {
            SGMAP_FALLBACK_NONE => c"".as_ptr(),
            n => usize::try_from(n - 1)
                .ok()
                .and_then(|i| TEXTS.get(i))
                .map_or(c"unknown".as_ptr(), |t| t.as_ptr()),
        }
    })
}

/// The name of a sense key (0 to 15) as SPC spells it, e.g. "MEDIUM ERROR".
/// Only the low four bits are used. Never NULL; the string is static.
#[no_mangle]
pub extern "C" fn sgmap_sense_key_name(key: u8) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || {
        static NAMES: OnceLock<Vec<CString>> = OnceLock::new();
        let names = NAMES.get_or_init(|| {
            (0u8..16)
                .map(|k| {
                    CString::new(sgmap::sense::SenseKey::from_u8(k).name()).unwrap_or_default()
                })
                .collect()
        });
        names
            .get(usize::from(key & 0x0f))
            .map_or(c"unknown".as_ptr(), |n| n.as_ptr())
    })
}

/// Decodes raw sense data (fixed or descriptor format) and writes a
/// one-line description into `buf`, NUL-terminated: the sense key, the
/// ASC/ASCQ and their meaning, the INFORMATION field. `*out_len` (when not
/// NULL) receives the full length.
///
/// Returns `SGMAP_OK`, `SGMAP_BUFFER_TOO_SMALL` (cut to fit), or
/// `SGMAP_INVALID_ARGUMENT` when the bytes are not sense data.
///
/// # Safety
///
/// `sense` must be NULL or valid for reads of `sense_len` bytes; `buf` must
/// be NULL or valid for writes of `len` bytes; `out_len` must be NULL or
/// valid for a write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_sense_describe(
    sense: *const u8,
    sense_len: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> sgmap_result {
    guard("sgmap_sense_describe", || {
        // SAFETY: NULL or valid for `sense_len` bytes per the caller's contract.
        let bytes = unsafe { args::bytes(sense, sense_len, "sense") }?;
        let decoded = sgmap::sense::Sense::parse(bytes).ok_or_else(|| {
            Fail::invalid(format!(
                "{sense_len} bytes that are not sense data (response code 70h-73h); pass \
                 outcome.sense with outcome.sense_len"
            ))
        })?;
        // SAFETY: the caller's contract for `buf`, `len` and `out_len`.
        unsafe { write_text(&decoded.to_string(), buf, len, out_len) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(cdb: *const u8, cdb_len: usize) -> sgmap_command {
        sgmap_command {
            cdb,
            cdb_len,
            direction: SGMAP_DIR_NONE,
            mode: SGMAP_MODE_INDIRECT,
            data: std::ptr::null_mut(),
            data_len: 0,
            timeout_ms: 0,
            flags: 0,
        }
    }

    #[test]
    fn cdb_length_is_checked_before_the_bytes_are_touched() {
        let tur = [0u8; 6];
        // SAFETY: `tur` is valid for its 6 bytes.
        assert!(unsafe { parse_command(&command(tur.as_ptr(), 6)) }.is_ok());
        // A length no CDB has: refused as a CDB error, without forming a
        // slice of `cdb_len` bytes over a 6-byte array.
        for len in [0, 5, 33, 4096, 1 << 40, isize::MAX as usize, usize::MAX] {
            // SAFETY: parse_command must not read past the 6 valid bytes
            // when the length is out of the CDB range.
            let r = unsafe { parse_command(&command(tur.as_ptr(), len)) };
            let code = r.map(|_| ()).unwrap_err().code();
            assert_eq!(code, sgmap_result::SGMAP_INVALID_CDB, "cdb_len {len}");
        }
        // SAFETY: NULL is checked first.
        let r = unsafe { parse_command(&command(std::ptr::null(), 6)) };
        assert_eq!(
            r.map(|_| ()).unwrap_err().code(),
            sgmap_result::SGMAP_NULL_PARAMETER
        );
    }
}
