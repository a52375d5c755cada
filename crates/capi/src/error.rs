//! Results, the calling thread's last error, and the guard that wraps every
//! exported function so that no panic crosses into C.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::args::{write_text, Out};
use crate::command::sgmap_outcome;

/// What an sgmap function did. Every function that can fail returns one.
///
/// The numbers are part of the ABI: each keeps its meaning forever, and a
/// number that is retired is never given to another meaning. New results
/// only ever get new numbers, so treat any value you do not know as a
/// failure.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum sgmap_result {
    /// Success.
    SGMAP_OK = 0,
    /// A required pointer argument was NULL. Nothing was done.
    SGMAP_NULL_PARAMETER = 1,
    /// An internal error (a Rust panic) was caught at the library boundary.
    /// The handle involved may be unusable: close it. Please report it with
    /// the message.
    SGMAP_PANIC = 2,
    /// An argument is out of range: an unknown flag, direction or mode, a
    /// zero or oversize length, an index past the end, a pointer not aligned
    /// for its type. Nothing was done.
    SGMAP_INVALID_ARGUMENT = 3,
    /// An output buffer was too small. It holds as much as fits (text stays
    /// NUL-terminated) and the length needed was reported.
    SGMAP_BUFFER_TOO_SMALL = 4,
    /// The device node could not be opened; the last error's errno says why.
    SGMAP_OPEN_FAILED = 5,
    /// The path opened, but it is not a SCSI generic device (a regular file,
    /// /dev/null, ...): use a /dev/sgN node.
    SGMAP_NOT_SG = 6,
    /// The sg driver refused a request with an errno (see the last error).
    /// With errno EINTR: a signal arrived while a command was in the device
    /// and its own result cannot be given (see "Signals" at the top of this
    /// header); no buffer is in use any more.
    SGMAP_OS_ERROR = 7,
    /// The command ran, and the device, host adapter or driver reported a
    /// failure: the outcome holds the status bytes and the sense data.
    SGMAP_SCSI_ERROR = 8,
    /// sgmap refused the request before asking the kernel, because the
    /// kernel would refuse it or silently do something else (a transfer
    /// longer than the mapped buffer, 256 MiB or more, direct IO with mmap
    /// IO, ...). The message says what to change.
    SGMAP_INVALID_REQUEST = 9,
    /// The CDB is not valid (length 6 to 32 bytes, matching its opcode's group).
    SGMAP_INVALID_CDB = 10,
    /// The device answered, but its data could not be decoded.
    SGMAP_BAD_RESPONSE = 11,
    /// The call does not fit the handle's state: a ring's registered buffer
    /// is in flight (`sgmap_ring_submit`), or the reserved buffer is not
    /// mapped yet, or is already mapped (its size is then frozen, and only
    /// `SGMAP_MODE_MMAP` commands and commands without data run), or it is
    /// lent to another thread, or was mapped by a parent process before
    /// fork(). Nothing was sent.
    SGMAP_WRONG_STATE = 12,
    /// The handle has lost its device: an internal error (`SGMAP_PANIC`)
    /// interrupted the mapping of its reserved buffer. Close the handle. (A
    /// failed mapping leaves the handle as it was.)
    SGMAP_DEVICE_LOST = 13,
    /// A failure sgmap does not classify further; see the message.
    SGMAP_OTHER = 14,
    /// The command ran and reported success but moved fewer bytes than
    /// asked (a residual), where the call promises the whole transfer (the
    /// block helpers): the last error's outcome has the residual, and the
    /// call's `sgmap_transfer` says how many bytes did move.
    SGMAP_SHORT_TRANSFER = 15,
}

use sgmap_result::*;

/// Details of the calling thread's last error (see `sgmap_last_error_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sgmap_error_info {
    /// The result the failed call returned; `SGMAP_OK` when no call on this
    /// thread has failed yet (or after `sgmap_last_error_clear`).
    pub result: sgmap_result,
    /// The errno the kernel gave, or 0 when the failure had none.
    pub os_errno: i32,
    /// True when the failure is a command that ran (and failed, or moved
    /// less than asked): `outcome` then holds its status bytes, sense data
    /// and residual.
    pub has_outcome: bool,
    /// The failed command's outcome when `has_outcome`, else all zero.
    pub outcome: sgmap_outcome,
}

/// Why a call failed, before it is recorded as the thread's last error.
#[derive(Debug)]
pub(crate) struct Fail {
    code: sgmap_result,
    message: String,
    errno: i32,
    outcome: Option<Box<sgmap_outcome>>,
}

impl Fail {
    /// A failure with a result and a message saying what to do.
    pub(crate) fn new(code: sgmap_result, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            errno: 0,
            outcome: None,
        }
    }

    /// A NULL pointer argument.
    pub(crate) fn null(name: &str) -> Self {
        Self::new(
            SGMAP_NULL_PARAMETER,
            format!("`{name}` is NULL; pass a valid pointer"),
        )
    }

    /// An argument out of range.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(SGMAP_INVALID_ARGUMENT, message)
    }

    /// Adds an errno.
    pub(crate) fn with_errno(mut self, errno: i32) -> Self {
        self.errno = errno;
        self
    }

    /// Adds the outcome of a command that ran.
    pub(crate) fn with_outcome(mut self, outcome: sgmap_outcome) -> Self {
        self.outcome = Some(Box::new(outcome));
        self
    }

    /// The errno, 0 when the failure had none.
    pub(crate) fn errno(&self) -> i32 {
        self.errno
    }

    /// The result code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> sgmap_result {
        self.code
    }

    /// The message.
    #[cfg(test)]
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl From<sgmap::Error> for Fail {
    fn from(e: sgmap::Error) -> Self {
        use sgmap::Error as E;
        // A transfer stopped part way is reported as what stopped it; the
        // progress goes to the call's sgmap_transfer.
        let cause = match &e {
            E::Incomplete(i) => &i.cause,
            other => other,
        };
        let code = match cause {
            E::Open { .. } => SGMAP_OPEN_FAILED,
            E::NotSg { .. } => SGMAP_NOT_SG,
            E::Os { .. } | E::Interrupted { .. } => SGMAP_OS_ERROR,
            E::Scsi(_) => SGMAP_SCSI_ERROR,
            E::ShortTransfer { .. } => SGMAP_SHORT_TRANSFER,
            E::InvalidRequest { .. } => SGMAP_INVALID_REQUEST,
            E::Cdb(_) => SGMAP_INVALID_CDB,
            E::Response { .. } => SGMAP_BAD_RESPONSE,
            _ => SGMAP_OTHER,
        };
        // The whole chain: each level's text, then its cause's.
        let mut fail = Fail::new(code, e.report().to_string());
        if let Some(errno) = e.errno() {
            fail = fail.with_errno(errno as i32);
        }
        if let Some(o) = e.outcome() {
            fail = fail.with_outcome(sgmap_outcome::from_core(o));
        }
        fail
    }
}

/// The thread's last error, as recorded.
#[derive(Debug)]
struct LastError {
    info: sgmap_error_info,
    message: String,
}

thread_local! {
    static LAST: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

fn record(func: &str, fail: Fail) -> sgmap_result {
    let code = fail.code;
    let last = LastError {
        info: sgmap_error_info {
            result: code,
            os_errno: fail.errno,
            has_outcome: fail.outcome.is_some(),
            outcome: fail.outcome.map(|o| *o).unwrap_or_default(),
        },
        message: format!("{func}: {}", fail.message),
    };
    // `try_with` fails only while the thread is being torn down.
    let _ = LAST.try_with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = Some(last);
        }
    });
    code
}

/// The text of a caught panic.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".into()
    }
}

fn panic_fail(payload: &(dyn std::any::Any + Send)) -> Fail {
    Fail::new(
        SGMAP_PANIC,
        format!(
            "internal error (Rust panic: {}); the handle may be unusable: close it, and please report this",
            panic_text(payload)
        ),
    )
}

/// Runs an export's body: catches panics, records failures as the thread's
/// last error (prefixed with `func`), and returns the result code.
pub(crate) fn guard(func: &'static str, body: impl FnOnce() -> Result<(), Fail>) -> sgmap_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SGMAP_OK,
        Ok(Err(fail)) => record(func, fail),
        Err(payload) => record(func, panic_fail(payload.as_ref())),
    }
}

/// Like [`guard`], for the functions that read the last error: a failure
/// is returned but not recorded, so the error being read stays as it was.
fn guard_quiet(body: impl FnOnce() -> Result<(), Fail>) -> sgmap_result {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => SGMAP_OK,
        Ok(Err(fail)) => fail.code,
        Err(_) => SGMAP_PANIC,
    }
}

/// Runs a body that returns a value rather than a result; a panic gives `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Writes the message of the calling thread's last error into `buf`, as a
/// NUL-terminated string. The message names the function, the device and
/// the command, and says what to do. It is empty when no call on this
/// thread has failed.
///
/// The last error is per thread, like errno: it describes the most recent
/// call on this thread that returned something other than `SGMAP_OK`, and
/// successful calls leave it alone. This function and the other
/// `sgmap_last_error_*` functions never change it.
///
/// Returns `SGMAP_OK`, or `SGMAP_BUFFER_TOO_SMALL` when the message was cut
/// to fit (it is still NUL-terminated, and cut on a character boundary).
/// `*out_len` (when `out_len` is not NULL) receives the message's full length
/// in bytes, without the NUL.
///
/// # Safety
///
/// `buf` must be valid for writes of `len` bytes. `out_len` must be NULL or
/// valid for a write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> sgmap_result {
    guard_quiet(|| {
        let message = LAST
            .try_with(|l| {
                l.try_borrow()
                    .ok()
                    .and_then(|slot| slot.as_ref().map(|e| e.message.clone()))
            })
            .ok()
            .flatten()
            .unwrap_or_default();
        // SAFETY: the caller's contract for `buf`, `len` and `out_len`.
        unsafe { write_text(&message, buf, len, out_len) }
    })
}

/// Copies the details of the calling thread's last error (result, errno,
/// and the outcome of a failed command with its sense data) into `*out`.
/// When no call on this thread has failed, `out->result` is `SGMAP_OK` and
/// everything else is zero.
///
/// Returns `SGMAP_OK`, or `SGMAP_NULL_PARAMETER` when `out` is NULL.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of one `sgmap_error_info`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_last_error_info(out: *mut sgmap_error_info) -> sgmap_result {
    guard_quiet(|| {
        let out = Out::new(out, "out")?;
        let info = LAST
            .try_with(|l| {
                l.try_borrow()
                    .ok()
                    .and_then(|slot| slot.as_ref().map(|e| e.info))
            })
            .ok()
            .flatten()
            .unwrap_or(sgmap_error_info {
                result: SGMAP_OK,
                os_errno: 0,
                has_outcome: false,
                outcome: sgmap_outcome::default(),
            });
        // SAFETY: `out` is valid for writes per the caller's contract.
        unsafe { out.put(info) };
        Ok(())
    })
}

/// Forgets the calling thread's last error: afterwards the message is empty
/// and the info's result is `SGMAP_OK`.
#[no_mangle]
pub extern "C" fn sgmap_last_error_clear() {
    guard_value((), || {
        let _ = LAST.try_with(|l| {
            if let Ok(mut slot) = l.try_borrow_mut() {
                *slot = None;
            }
        });
    })
}

/// The name of a result, e.g. "SGMAP_SCSI_ERROR"; "SGMAP_UNKNOWN_RESULT" for
/// a number this version does not know. Never NULL; the string is static.
#[no_mangle]
pub extern "C" fn sgmap_result_name(result: u32) -> *const c_char {
    guard_value(c"SGMAP_UNKNOWN_RESULT".as_ptr(), || {
        let name = match result {
            0 => c"SGMAP_OK",
            1 => c"SGMAP_NULL_PARAMETER",
            2 => c"SGMAP_PANIC",
            3 => c"SGMAP_INVALID_ARGUMENT",
            4 => c"SGMAP_BUFFER_TOO_SMALL",
            5 => c"SGMAP_OPEN_FAILED",
            6 => c"SGMAP_NOT_SG",
            7 => c"SGMAP_OS_ERROR",
            8 => c"SGMAP_SCSI_ERROR",
            9 => c"SGMAP_INVALID_REQUEST",
            10 => c"SGMAP_INVALID_CDB",
            11 => c"SGMAP_BAD_RESPONSE",
            12 => c"SGMAP_WRONG_STATE",
            13 => c"SGMAP_DEVICE_LOST",
            14 => c"SGMAP_OTHER",
            15 => c"SGMAP_SHORT_TRANSFER",
            _ => c"SGMAP_UNKNOWN_RESULT",
        };
        name.as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_a_result_and_a_message() {
        let r = guard("sgmap_test", || panic!("boom"));
        assert_eq!(r, SGMAP_PANIC);
        let mut buf = [0 as c_char; 256];
        let mut n = 0usize;
        // SAFETY: `buf` has 256 bytes, `n` is a valid usize.
        let r = unsafe { sgmap_last_error_message(buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, SGMAP_OK);
        // SAFETY: the function NUL-terminated the text inside `buf`.
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        let text = text.to_str().unwrap();
        assert!(text.starts_with("sgmap_test: internal error"), "{text}");
        assert!(text.contains("boom"), "{text}");
        assert_eq!(n, text.len());
    }

    #[test]
    fn reading_the_last_error_does_not_change_it() {
        let r = guard("sgmap_test", || Err(Fail::invalid("bad length")));
        assert_eq!(r, SGMAP_INVALID_ARGUMENT);
        // A failing read (NULL out) is not recorded.
        // SAFETY: NULL is allowed and checked.
        let r = unsafe { sgmap_last_error_info(std::ptr::null_mut()) };
        assert_eq!(r, SGMAP_NULL_PARAMETER);
        let mut info = std::mem::MaybeUninit::<sgmap_error_info>::uninit();
        // SAFETY: `info` is valid for a write.
        let r = unsafe { sgmap_last_error_info(info.as_mut_ptr()) };
        assert_eq!(r, SGMAP_OK);
        // SAFETY: written by the call above.
        let info = unsafe { info.assume_init() };
        assert_eq!(info.result, SGMAP_INVALID_ARGUMENT);
        assert!(!info.has_outcome);
        sgmap_last_error_clear();
        let mut n = 99usize;
        let mut buf = [1 as c_char; 4];
        // SAFETY: `buf` has 4 bytes.
        let r = unsafe { sgmap_last_error_message(buf.as_mut_ptr(), 4, &mut n) };
        assert_eq!(r, SGMAP_OK);
        assert_eq!((n, buf[0]), (0, 0));
    }

    #[test]
    fn result_numbers_never_change() {
        // Part of the ABI: a change here breaks every compiled C program.
        let pinned = [
            (SGMAP_OK, 0),
            (SGMAP_NULL_PARAMETER, 1),
            (SGMAP_PANIC, 2),
            (SGMAP_INVALID_ARGUMENT, 3),
            (SGMAP_BUFFER_TOO_SMALL, 4),
            (SGMAP_OPEN_FAILED, 5),
            (SGMAP_NOT_SG, 6),
            (SGMAP_OS_ERROR, 7),
            (SGMAP_SCSI_ERROR, 8),
            (SGMAP_INVALID_REQUEST, 9),
            (SGMAP_INVALID_CDB, 10),
            (SGMAP_BAD_RESPONSE, 11),
            (SGMAP_WRONG_STATE, 12),
            (SGMAP_DEVICE_LOST, 13),
            (SGMAP_OTHER, 14),
            (SGMAP_SHORT_TRANSFER, 15),
        ];
        for (r, n) in pinned {
            assert_eq!(r as u32, n, "{r:?}");
        }
    }

    #[test]
    fn result_names_match_the_numbers() {
        for r in [SGMAP_OK, SGMAP_SCSI_ERROR, SGMAP_OTHER] {
            // SAFETY: the names are static NUL-terminated strings.
            let name = unsafe { std::ffi::CStr::from_ptr(sgmap_result_name(r as u32)) };
            assert_eq!(name.to_str().unwrap(), format!("{r:?}"));
        }
        // SAFETY: as above.
        let unknown = unsafe { std::ffi::CStr::from_ptr(sgmap_result_name(9999)) };
        assert_eq!(unknown.to_str().unwrap(), "SGMAP_UNKNOWN_RESULT");
    }

    /// Rust names a C programmer cannot act on: C messages say the C
    /// function instead, or what to do in words.
    const RUST_NAMES: [&str; 12] = [
        "DirectBuf",
        "reserved_size()",
        "Split::",
        "Access::",
        "MappedDevice",
        "BlockIo",
        "Device::",
        "a Queue",
        "a Pool",
        "Capacity::",
        "::",
        "`sgmap list`",
    ];

    fn no_rust_names(text: &str) {
        for name in RUST_NAMES {
            assert!(!text.contains(name), "C text names {name:?}: {text}");
        }
    }

    #[test]
    fn c_messages_and_texts_name_no_rust_items() {
        use nix::errno::Errno;
        let mut texts = Vec::new();
        for errno in [
            Errno::EDOM,
            Errno::EBUSY,
            Errno::ENOMEM,
            Errno::EINVAL,
            Errno::EMSGSIZE,
            Errno::ENODEV,
            Errno::ENXIO,
            Errno::EPERM,
            Errno::EINTR,
            Errno::EFAULT,
            Errno::EAGAIN,
            Errno::ENOTTY,
            Errno::EIO,
        ] {
            let e = sgmap::Error::Os {
                device: "/dev/sg3".into(),
                command: "READ(10)".into(),
                errno,
                kind: sgmap::OsErrorKind::from_errno(errno),
                driver: sgmap::Driver::Sg,
            };
            texts.push(Fail::from(e).message().to_string());
        }
        // Opening: a missing node, a node that is no sg device, a file.
        let dir = std::env::temp_dir().join(format!("sgmap-capi-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("plain");
        std::fs::write(&file, b"not a device").unwrap();
        for path in [
            dir.join("missing"),
            file.clone(),
            dir.clone(),
            "/dev/null".into(),
        ] {
            let e = sgmap::Device::open(&path).unwrap_err();
            texts.push(Fail::from(e).message().to_string());
        }
        std::fs::remove_dir_all(&dir).unwrap();
        for f in 1..=3 {
            // SAFETY: the texts are static NUL-terminated strings.
            let t = unsafe { std::ffi::CStr::from_ptr(crate::command::sgmap_fallback_text(f)) };
            texts.push(t.to_str().unwrap().to_string());
        }
        for t in &texts {
            no_rust_names(t);
        }
        // Where a C function is the answer, the text names it.
        // SAFETY: as above.
        let misaligned = unsafe {
            std::ffi::CStr::from_ptr(crate::command::sgmap_fallback_text(
                crate::command::SGMAP_FALLBACK_MISALIGNED,
            ))
        };
        let misaligned = misaligned.to_str().unwrap();
        assert!(
            misaligned.contains("sgmap_direct_buffer_alloc"),
            "{misaligned}"
        );
        assert!(
            !misaligned.contains("page-aligned"),
            "the rule is the queue's alignment: {misaligned}"
        );
    }
}
