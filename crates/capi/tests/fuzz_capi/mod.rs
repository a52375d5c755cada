//! The body of the fuzz target `capi_args`: the C API's exported functions,
//! called through their Rust paths without any device, with arbitrary NULL
//! and non-NULL pointers (always to valid local buffers, as the functions'
//! contracts require), lengths, enum values and flags, asserting the result
//! codes `include/sgmap.h` documents.
//!
//! The C API crate (`crates/capi`) builds only a cdylib and a staticlib, so
//! its source is compiled into the including crate instead: the crate root
//! must hold it as `mod capi` (see `fuzz/fuzz_targets/capi_args.rs` and
//! `tests/fuzz_capi_regressions.rs`).
//!
//! Besides each function's own results, every call is checked against the
//! conventions every export shares: never `SGMAP_PANIC`; a failure becomes
//! the thread's last error, with a message that starts with the function's
//! name; a success leaves the last error alone; "nothing was done" on
//! `SGMAP_NULL_PARAMETER` (outputs keep their canary values).

use std::ffi::{c_char, c_void, CStr, CString};
use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::ptr::{self, NonNull};
use std::sync::OnceLock;

use crate::capi::buffer::{sgmap_direct_buffer_alloc, sgmap_direct_buffer_free};
use crate::capi::command::{
    sgmap_command, sgmap_execute, sgmap_fallback_text, sgmap_mode_name, sgmap_outcome,
    sgmap_sense_describe, sgmap_sense_key_name,
};
use crate::capi::device::{
    sgmap_buffer, sgmap_device, sgmap_device_close, sgmap_device_default_timeout_ms,
    sgmap_device_fd, sgmap_device_get_info, sgmap_device_map_reserved, sgmap_device_max_transfer,
    sgmap_device_num_waiting, sgmap_device_open, sgmap_device_path, sgmap_device_requests,
    sgmap_device_reserved_size, sgmap_device_reset, sgmap_device_scsi_id,
    sgmap_device_set_reserved_size, sgmap_device_sg_table_size, sgmap_request_info,
};
use crate::capi::discover::{
    sgmap_allow_dio, sgmap_device_entry, sgmap_device_list, sgmap_device_list_free,
    sgmap_device_list_get, sgmap_device_list_len, sgmap_list_devices,
};
use crate::capi::error::sgmap_result::{self, *};
use crate::capi::error::{
    sgmap_error_info, sgmap_last_error_clear, sgmap_last_error_info, sgmap_last_error_message,
    sgmap_result_name,
};
use crate::capi::helpers::{
    sgmap_block_size, sgmap_capacity, sgmap_inquiry, sgmap_inquiry_data, sgmap_inquiry_vpd,
    sgmap_read_blocks, sgmap_read_capacity, sgmap_synchronize_cache, sgmap_test_unit_ready,
    sgmap_transfer, sgmap_wait_ready, sgmap_write_blocks,
};
use crate::capi::{sgmap_version, sgmap_version_number};

/// What output buffers hold before a call, to see whether it wrote them.
const CANARY: u8 = 0xa5;
/// The same for scalar outputs.
const SENTINEL: usize = 0x5a5a_5a5a;
/// How many calls one input makes at most.
const MAX_CALLS: usize = 32;
/// A folder that does not exist: paths made from fuzz bytes go under it, so
/// no open ever reaches a real file (every path component must exist).
const NOWHERE: &str = "/nonexistent-sgmap-fuzz";

/// Reads arguments from the fuzz input, zeros once it runs out.
#[derive(Debug)]
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let got = self.bytes(4);
        b[..got.len()].copy_from_slice(got);
        u32::from_le_bytes(b)
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) << 32 | u64::from(self.u32())
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// A pointer to `target`, or NULL.
    fn ptr<T>(&mut self, target: &mut T) -> *mut T {
        if self.bool() {
            target
        } else {
            ptr::null_mut()
        }
    }

    /// Either any value, or one of the first `known` (the valid ones).
    fn choice(&mut self, known: u32) -> u32 {
        if self.bool() {
            self.u32()
        } else {
            u32::from(self.u8()) % known
        }
    }
}

/// The thread's last error, as the API reports it.
#[derive(Debug, PartialEq)]
struct Last {
    result: sgmap_result,
    errno: i32,
    has_outcome: bool,
    message: String,
}

/// Reads the last error (which reading never changes).
fn last() -> Last {
    let mut info = MaybeUninit::<sgmap_error_info>::uninit();
    // SAFETY: `info` is valid for a write of one sgmap_error_info.
    let r = unsafe { sgmap_last_error_info(info.as_mut_ptr()) };
    assert_eq!(r, SGMAP_OK, "sgmap_last_error_info");
    // SAFETY: written by the call above, which succeeded.
    let info = unsafe { info.assume_init() };
    let mut buf = vec![0 as c_char; 4096];
    let mut full = 0usize;
    // SAFETY: `buf` has `buf.len()` bytes; `full` is one usize.
    let r = unsafe { sgmap_last_error_message(buf.as_mut_ptr(), buf.len(), &mut full) };
    assert!(
        r == SGMAP_OK || (r == SGMAP_BUFFER_TOO_SMALL && full >= buf.len()),
        "sgmap_last_error_message gave {r:?} for a {}-byte message",
        full
    );
    // SAFETY: the call NUL-terminates what it writes.
    let message = unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_str()
        .expect("the last error message is UTF-8")
        .to_owned();
    if r == SGMAP_OK {
        assert_eq!(message.len(), full, "out_len differs from the message");
    }
    Last {
        result: info.result,
        errno: info.os_errno,
        has_outcome: info.has_outcome,
        message,
    }
}

/// Runs one call and checks it against the shared conventions: the result
/// is one of `allowed` and never `SGMAP_PANIC`; a failure is the thread's
/// last error, with a message that starts with `func`; a success leaves the
/// last error as it was. Gives the result and the last error after it.
fn check(
    func: &str,
    allowed: &[sgmap_result],
    call: impl FnOnce() -> sgmap_result,
) -> (sgmap_result, Last) {
    let before = last();
    let r = call();
    let after = last();
    assert_ne!(r, SGMAP_PANIC, "{func} panicked: {}", after.message);
    assert!(
        allowed.contains(&r),
        "{func} returned {r:?}, documented here: {allowed:?}; its message: {}",
        after.message
    );
    if r == SGMAP_OK {
        assert_eq!(after, before, "{func} succeeded but changed the last error");
    } else {
        assert_eq!(after.result, r, "{func}: the last error's result");
        let prefix = format!("{func}: ");
        assert!(
            after.message.starts_with(&prefix) && after.message.len() > prefix.len(),
            "{func}: the message {:?} does not name the function or says nothing",
            after.message
        );
    }
    (r, after)
}

/// A static string an export returned: never NULL, UTF-8.
fn text(p: *const c_char, func: &str) -> &'static str {
    assert!(!p.is_null(), "{func} returned NULL");
    // SAFETY: the functions return static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .unwrap_or_else(|e| panic!("{func} returned text that is not UTF-8: {e}"))
}

/// The path of a regular file to open (not an sg device), made once per
/// process: a temporary file, unlinked at once and reached through
/// `/proc/self/fd`, so nothing is left behind.
fn regular_file() -> &'static str {
    static FILE: OnceLock<(File, String)> = OnceLock::new();
    let (_, path) = FILE.get_or_init(|| {
        let name = std::env::temp_dir().join(format!("sgmap-fuzz-capi-{}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&name)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", name.display()));
        let _ = std::fs::remove_file(&name);
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        (file, path)
    });
    path
}

/// Checks how a text export wrote `text` into `buf[..len]`: the longest
/// prefix that fits with its NUL, cut on a character boundary, nothing
/// written past `len`, and `SGMAP_BUFFER_TOO_SMALL` exactly when cut.
fn check_text_out(func: &str, r: sgmap_result, text: &str, buf: &[u8], len: usize) {
    if len == 0 {
        assert_eq!(r, SGMAP_BUFFER_TOO_SMALL, "{func} with a 0-byte buffer");
        assert!(
            buf.iter().all(|&b| b == CANARY),
            "{func} wrote into 0 bytes"
        );
        return;
    }
    let mut n = text.len().min(len - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    let want = if n == text.len() {
        SGMAP_OK
    } else {
        SGMAP_BUFFER_TOO_SMALL
    };
    assert_eq!(
        r,
        want,
        "{func}: {} bytes of text, {len}-byte buffer",
        text.len()
    );
    assert_eq!(&buf[..n], &text.as_bytes()[..n], "{func}: the text written");
    assert_eq!(buf[n], 0, "{func}: no NUL after {n} bytes");
    assert!(
        buf[n + 1..].iter().all(|&b| b == CANARY),
        "{func} wrote past its NUL (buffer of {len} bytes)"
    );
}

/// Fuzz target `capi_args`: up to 32 calls chosen and shaped by `data`.
pub(crate) fn capi_args(data: &[u8]) {
    let mut input = Input(data);
    for _ in 0..MAX_CALLS {
        if input.0.is_empty() {
            break;
        }
        match input.u8() % 14 {
            0 => open(&mut input),
            1 | 2 => null_device(&mut input),
            3 => execute(&mut input),
            4 | 5 => sense_describe(&mut input),
            6 => last_error_message(&mut input),
            7 => last_error_info_and_clear(&mut input),
            8 => names(&mut input),
            9 => direct_buffer(&mut input),
            10 => list_devices(&mut input),
            11 => allow_dio(&mut input),
            12 => releases_of_null(),
            _ => version(),
        }
    }
}

fn open(input: &mut Input<'_>) {
    // 0 NULL, 1 "", 2 a missing file, 3 /dev/null, 4 a regular file, 5 "/".
    let which = input.u8() % 6;
    let name_len = usize::from(input.u8() % 48);
    let name: String = input
        .bytes(name_len)
        .iter()
        .map(|&b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' => char::from(b),
            _ => '_',
        })
        .collect();
    let path = match which {
        0 => None,
        1 => Some(String::new()),
        2 => Some(format!("{NOWHERE}/{name}")),
        3 => Some("/dev/null".to_owned()),
        4 => Some(regular_file().to_owned()),
        _ => Some("/".to_owned()),
    };
    let flags = if input.bool() {
        input.u32()
    } else {
        u32::from(input.u8() & 7)
    };
    let unknown_flags = flags & !7 != 0;
    let sentinel = NonNull::<sgmap_device>::dangling().as_ptr();
    let mut handle = sentinel;
    let out = input.ptr(&mut handle);

    let allowed: &[sgmap_result] = match (out.is_null(), which) {
        (true, _) => &[SGMAP_NULL_PARAMETER],
        // Two faults at once: either may be reported.
        (false, 0) if unknown_flags => &[SGMAP_NULL_PARAMETER, SGMAP_INVALID_ARGUMENT],
        (false, 0) => &[SGMAP_NULL_PARAMETER],
        (false, 1) => &[SGMAP_INVALID_ARGUMENT],
        (false, _) if unknown_flags => &[SGMAP_INVALID_ARGUMENT],
        (false, 2) => &[SGMAP_OPEN_FAILED],
        (false, 3 | 4) => &[SGMAP_NOT_SG],
        // A folder: read-write fails (EISDIR), read-only opens and is no sg.
        (false, _) => &[SGMAP_OPEN_FAILED, SGMAP_NOT_SG],
    };
    let c_path = path
        .as_deref()
        .map(|p| CString::new(p).expect("no NUL in the path"));
    let p = c_path.as_deref().map_or(ptr::null(), CStr::as_ptr);
    // SAFETY: `p` is NULL or a NUL-terminated string, `out` NULL or valid.
    let (r, last) = check("sgmap_device_open", allowed, || unsafe {
        sgmap_device_open(p, flags, out)
    });
    if r == SGMAP_OK {
        // SAFETY: a handle just opened, closed once.
        unsafe { sgmap_device_close(handle) };
        panic!("sgmap_device_open opened {path:?} (flags {flags:#x}), which is no sg device");
    }
    if !out.is_null() {
        assert!(
            handle.is_null(),
            "sgmap_device_open failed but left *out set"
        );
    } else {
        assert_eq!(handle, sentinel);
    }
    if matches!(r, SGMAP_OPEN_FAILED | SGMAP_NOT_SG) {
        let path = path.unwrap_or_default();
        assert!(
            last.message.contains(&path),
            "the message {:?} does not name the path {path:?}",
            last.message
        );
    }
    if r == SGMAP_OPEN_FAILED {
        assert_ne!(last.errno, 0, "an open failure without its errno");
        if which == 2 {
            assert_eq!(last.errno, libc::ENOENT, "{}", last.message);
        }
    }
}

/// Every function that takes a device, with `dev` NULL: `SGMAP_NULL_PARAMETER`
/// and nothing written, whatever the other pointers are (numbers are kept
/// in range, so no other fault competes).
fn null_device(input: &mut Input<'_>) {
    let dev: *mut sgmap_device = ptr::null_mut();
    let mut size = SENTINEL;
    let mut word = SENTINEL as u32;
    let mut int = SENTINEL as i32;
    let mut buf = [CANARY; 64];
    let p_size = input.ptr(&mut size);
    let p_word = input.ptr(&mut word);
    let p_int = input.ptr(&mut int);
    let p_buf = if input.bool() {
        buf.as_mut_ptr()
    } else {
        ptr::null_mut()
    };
    let len = 1 + usize::from(input.u8()) % buf.len();
    let mut info = Default::default();
    let mut id = Default::default();
    let mut requests: [sgmap_request_info; 4] = Default::default();
    let mut capacity: sgmap_capacity = Default::default();
    let mut transfer: sgmap_transfer = Default::default();
    let mut inquiry = MaybeUninit::<sgmap_inquiry_data>::uninit();
    let mut mapped = NonNull::<u8>::dangling().as_ptr();
    let p_mapped = input.ptr(&mut mapped);
    let before = format!("{info:?}{id:?}{requests:?}{capacity:?}{transfer:?}");
    let p_info = input.ptr(&mut info);
    let p_id = input.ptr(&mut id);
    let p_capacity = input.ptr(&mut capacity);
    let p_transfer = input.ptr(&mut transfer);
    let p_inquiry = if input.bool() {
        inquiry.as_mut_ptr()
    } else {
        ptr::null_mut()
    };
    let (p_requests, cap) = if input.bool() {
        (requests.as_mut_ptr(), usize::from(input.u8()) % 5)
    } else {
        (ptr::null_mut(), 0)
    };
    let lba = input.u64();
    let page = input.u8();
    // Indirect or direct with a buffer, or mmap without one.
    let mode = [1, 2, 4][usize::from(input.u8() % 3)];
    let data = if mode == 4 { ptr::null_mut() } else { p_buf };
    let bytes = 1 + input.u32() as usize;
    let what = 1 + u32::from(input.u8() % 3);

    let which = input.u8() % 23;
    // Every call below: `dev` is NULL, and every other pointer is NULL or
    // points at a local of the right type and size (`len` bytes for `buf`,
    // `cap` elements for `requests`).
    let (func, r) = match which {
        0 => (
            "sgmap_device_path",
            // SAFETY: as said above.
            unsafe { sgmap_device_path(dev, p_buf.cast(), len, p_size) },
        ),
        1 => (
            "sgmap_device_get_info",
            // SAFETY: as said above.
            unsafe { sgmap_device_get_info(dev, p_info) },
        ),
        2 => (
            "sgmap_device_scsi_id",
            // SAFETY: as said above.
            unsafe { sgmap_device_scsi_id(dev, p_id) },
        ),
        3 => (
            "sgmap_device_fd",
            // SAFETY: as said above.
            unsafe { sgmap_device_fd(dev, p_int) },
        ),
        4 => (
            "sgmap_device_reserved_size",
            // SAFETY: as said above.
            unsafe { sgmap_device_reserved_size(dev, p_size) },
        ),
        5 => (
            "sgmap_device_set_reserved_size",
            // SAFETY: as said above.
            unsafe { sgmap_device_set_reserved_size(dev, bytes, p_size) },
        ),
        6 => (
            "sgmap_device_map_reserved",
            // SAFETY: as said above.
            unsafe { sgmap_device_map_reserved(dev, bytes, p_size) },
        ),
        7 => (
            "sgmap_buffer",
            // SAFETY: as said above.
            unsafe { sgmap_buffer(dev, p_mapped, p_size) },
        ),
        8 => (
            "sgmap_device_max_transfer",
            // SAFETY: as said above.
            unsafe { sgmap_device_max_transfer(dev, p_size) },
        ),
        9 => (
            "sgmap_device_sg_table_size",
            // SAFETY: as said above.
            unsafe { sgmap_device_sg_table_size(dev, p_word) },
        ),
        10 => (
            "sgmap_device_default_timeout_ms",
            // SAFETY: as said above.
            unsafe { sgmap_device_default_timeout_ms(dev, p_word) },
        ),
        11 => (
            "sgmap_device_num_waiting",
            // SAFETY: as said above.
            unsafe { sgmap_device_num_waiting(dev, p_size) },
        ),
        12 => (
            "sgmap_device_requests",
            // SAFETY: as said above.
            unsafe { sgmap_device_requests(dev, p_requests, cap, p_size) },
        ),
        13 => (
            "sgmap_device_reset",
            // SAFETY: as said above.
            unsafe { sgmap_device_reset(dev, what) },
        ),
        14 => (
            "sgmap_test_unit_ready",
            // SAFETY: as said above.
            unsafe { sgmap_test_unit_ready(dev) },
        ),
        15 => (
            "sgmap_wait_ready",
            // SAFETY: as said above.
            unsafe { sgmap_wait_ready(dev) },
        ),
        16 => (
            "sgmap_inquiry",
            // SAFETY: as said above.
            unsafe { sgmap_inquiry(dev, p_inquiry) },
        ),
        17 => (
            "sgmap_inquiry_vpd",
            // SAFETY: as said above.
            unsafe { sgmap_inquiry_vpd(dev, page, p_buf, len, p_size) },
        ),
        18 => (
            "sgmap_read_capacity",
            // SAFETY: as said above.
            unsafe { sgmap_read_capacity(dev, p_capacity) },
        ),
        19 => (
            "sgmap_block_size",
            // SAFETY: as said above.
            unsafe { sgmap_block_size(dev, p_word) },
        ),
        20 => (
            "sgmap_synchronize_cache",
            // SAFETY: as said above.
            unsafe { sgmap_synchronize_cache(dev) },
        ),
        21 => (
            "sgmap_read_blocks",
            // SAFETY: as said above.
            unsafe { sgmap_read_blocks(dev, lba, data.cast::<c_void>(), len, mode, p_transfer) },
        ),
        _ => (
            "sgmap_write_blocks",
            // SAFETY: as said above.
            unsafe { sgmap_write_blocks(dev, lba, data.cast::<c_void>(), len, mode, p_transfer) },
        ),
    };
    check(func, &[SGMAP_NULL_PARAMETER], || r);
    // Nothing was done: every output still holds what it held.
    assert_eq!(size, SENTINEL, "{func} wrote a size");
    assert_eq!(word, SENTINEL as u32, "{func} wrote a number");
    assert_eq!(int, SENTINEL as i32, "{func} wrote an fd");
    assert!(
        buf.iter().all(|&b| b == CANARY),
        "{func} wrote into the buffer"
    );
    assert_eq!(
        mapped,
        NonNull::dangling().as_ptr(),
        "{func} wrote a pointer"
    );
    assert_eq!(
        format!("{info:?}{id:?}{requests:?}{capacity:?}{transfer:?}"),
        before,
        "{func} wrote an output struct"
    );
}

/// `sgmap_execute` without a device: `SGMAP_NULL_PARAMETER` (or, when the
/// command is malformed too, the error for that), never sent, and the
/// outcome all zero.
fn execute(input: &mut Input<'_>) {
    let n = usize::from(input.u8() % 40);
    let cdb = input.bytes(n);
    let direction = input.choice(3);
    let mode = input.choice(5);
    let flags = input.choice(2);
    let timeout_ms = input.u32();
    let mut data = [CANARY; 64];
    let data_len = usize::from(input.u8()) % (data.len() + 1);
    let with_cdb = input.bool();
    let with_data = input.bool();
    let mut cmd = sgmap_command {
        cdb: if with_cdb { cdb.as_ptr() } else { ptr::null() },
        cdb_len: cdb.len(),
        direction,
        mode,
        data: if with_data {
            data.as_mut_ptr().cast()
        } else {
            ptr::null_mut()
        },
        data_len,
        timeout_ms,
        flags,
    };
    let p_cmd: *const sgmap_command = input.ptr(&mut cmd);
    let mut outcome = sgmap_outcome {
        status: 0xff,
        host_status: 0xffff,
        sense_len: 7,
        information: u64::MAX,
        has_sense: true,
        requested: SENTINEL,
        mode: 9,
        ..Default::default()
    };
    outcome.sense.fill(CANARY);
    let p_outcome = input.ptr(&mut outcome);

    let well_formed = !p_cmd.is_null()
        && with_cdb
        && sgmap::cdb::Cdb::new(cdb).is_ok()
        && direction <= 2
        && mode <= 2
        && flags <= 1
        && if direction == 0 {
            !with_data && data_len == 0
        } else {
            with_data && data_len > 0
        };
    let allowed: &[sgmap_result] = if well_formed {
        &[SGMAP_NULL_PARAMETER]
    } else {
        &[
            SGMAP_NULL_PARAMETER,
            SGMAP_INVALID_ARGUMENT,
            SGMAP_INVALID_CDB,
            SGMAP_INVALID_REQUEST,
        ]
    };
    // SAFETY: `dev` is NULL; `p_cmd` NULL or a command whose `cdb` is NULL
    // or `cdb_len` readable bytes and whose `data` is NULL or `data_len`
    // (at most 64) writable bytes; `p_outcome` NULL or one sgmap_outcome.
    let (_, last) = check("sgmap_execute", allowed, || unsafe {
        sgmap_execute(ptr::null_mut(), p_cmd, p_outcome)
    });
    assert!(!last.has_outcome, "a command that never ran has an outcome");
    assert!(
        data.iter().all(|&b| b == CANARY),
        "the data buffer was touched"
    );
    if !p_outcome.is_null() {
        let o = &outcome;
        let zero = o.status == 0
            && o.host_status == 0
            && o.driver_status == 0
            && o.info == 0
            && o.failure == 0
            && !o.has_sense
            && (o.sense_key, o.asc, o.ascq) == (0, 0, 0)
            && !o.has_information
            && o.information == 0
            && o.sense_len == 0
            && o.sense.iter().all(|&b| b == 0)
            && (o.requested, o.resid, o.transferred) == (0, 0, 0)
            && o.duration_ms == 0
            && (o.mode, o.requested_mode, o.fallback) == (0, 0, 0);
        assert!(
            zero,
            "the outcome of a command not run is not all zero: {o:?}"
        );
    }
}

/// `sgmap_sense_describe` on the fuzz bytes as sense data, into buffers of
/// every size.
fn sense_describe(input: &mut Input<'_>) {
    let n = usize::from(input.u8());
    let sense = input.bytes(n);
    let with_sense = input.bool();
    let with_buf = input.bool();
    let mut buf = [CANARY; 300];
    let len = usize::from(input.u8()) % 257;
    let mut full = SENTINEL;
    let p_full = input.ptr(&mut full);
    let p_sense = if with_sense {
        sense.as_ptr()
    } else {
        ptr::null()
    };
    let p_buf = if with_buf {
        buf.as_mut_ptr().cast::<c_char>()
    } else {
        ptr::null_mut()
    };
    let decoded = sgmap::sense::Sense::parse(sense);
    let allowed: &[sgmap_result] = match (with_sense, with_buf, &decoded) {
        (false, _, _) => &[SGMAP_NULL_PARAMETER],
        // Two faults at once: either may be reported.
        (true, false, None) => &[SGMAP_NULL_PARAMETER, SGMAP_INVALID_ARGUMENT],
        (true, false, Some(_)) => &[SGMAP_NULL_PARAMETER],
        (true, true, None) => &[SGMAP_INVALID_ARGUMENT],
        (true, true, Some(_)) => &[SGMAP_OK, SGMAP_BUFFER_TOO_SMALL],
    };
    // SAFETY: `p_sense` NULL or `sense.len()` readable bytes, `p_buf` NULL
    // or `len` (at most 300) writable bytes, `p_full` NULL or one usize.
    let (r, _) = check("sgmap_sense_describe", allowed, || unsafe {
        sgmap_sense_describe(p_sense, sense.len(), p_buf, len, p_full)
    });
    let Some(decoded) = decoded.filter(|_| with_sense && with_buf) else {
        assert!(buf.iter().all(|&b| b == CANARY), "buf written on {r:?}");
        assert_eq!(full, SENTINEL, "out_len written on {r:?}");
        return;
    };

    // The whole description, from a buffer large enough.
    let mut whole = [0 as c_char; 4096];
    let mut whole_len = 0usize;
    // SAFETY: as above, with a 4096-byte buffer.
    let whole_r = unsafe {
        sgmap_sense_describe(
            sense.as_ptr(),
            sense.len(),
            whole.as_mut_ptr(),
            whole.len(),
            &mut whole_len,
        )
    };
    assert_eq!(whole_r, SGMAP_OK, "the description does not fit 4096 bytes");
    // SAFETY: NUL-terminated by the call.
    let description = unsafe { CStr::from_ptr(whole.as_ptr()) }
        .to_str()
        .expect("the description is UTF-8");
    assert_eq!(description.len(), whole_len, "out_len");
    assert!(!description.contains('\n'), "not one line: {description:?}");
    let key = text(
        sgmap_sense_key_name(decoded.key as u8),
        "sgmap_sense_key_name",
    );
    assert!(
        description.starts_with(key),
        "{description:?} does not start with the sense key {key:?}"
    );
    if !p_full.is_null() {
        assert_eq!(full, description.len(), "out_len");
    }
    check_text_out("sgmap_sense_describe", r, description, &buf, len);
}

/// `sgmap_last_error_message` into buffers of every size; it never changes
/// the last error, even when it fails.
fn last_error_message(input: &mut Input<'_>) {
    let before = last();
    let mut buf = [CANARY; 300];
    let len = usize::from(input.u8()) % 257;
    let with_buf = input.bool();
    let mut full = SENTINEL;
    let p_full = input.ptr(&mut full);
    let p_buf = if with_buf {
        buf.as_mut_ptr().cast::<c_char>()
    } else {
        ptr::null_mut()
    };
    // SAFETY: `p_buf` NULL or `len` (at most 300) writable bytes, `p_full`
    // NULL or one usize.
    let r = unsafe { sgmap_last_error_message(p_buf, len, p_full) };
    assert_eq!(
        last(),
        before,
        "sgmap_last_error_message changed the last error"
    );
    if !with_buf {
        assert_eq!(r, SGMAP_NULL_PARAMETER);
        assert!(buf.iter().all(|&b| b == CANARY));
        return;
    }
    if !p_full.is_null() {
        assert_eq!(full, before.message.len(), "out_len");
    }
    check_text_out("sgmap_last_error_message", r, &before.message, &buf, len);
}

/// `sgmap_last_error_info(NULL)` changes nothing; `sgmap_last_error_clear`
/// forgets the last error.
fn last_error_info_and_clear(input: &mut Input<'_>) {
    let before = last();
    if input.bool() {
        // SAFETY: NULL is allowed.
        let r = unsafe { sgmap_last_error_info(ptr::null_mut()) };
        assert_eq!(r, SGMAP_NULL_PARAMETER);
        assert_eq!(
            last(),
            before,
            "sgmap_last_error_info(NULL) changed the last error"
        );
    } else {
        sgmap_last_error_clear();
        let cleared = Last {
            result: SGMAP_OK,
            errno: 0,
            has_outcome: false,
            message: String::new(),
        };
        assert_eq!(last(), cleared, "after sgmap_last_error_clear");
    }
}

/// The functions that name things: never NULL, UTF-8, and the documented
/// text for known and unknown values.
fn names(input: &mut Input<'_>) {
    let v = input.choice(16);
    let name = text(sgmap_result_name(v), "sgmap_result_name");
    if v <= 14 {
        assert!(
            name.starts_with("SGMAP_") && name != "SGMAP_UNKNOWN_RESULT",
            "sgmap_result_name({v}) = {name:?}"
        );
    } else {
        assert_eq!(name, "SGMAP_UNKNOWN_RESULT", "sgmap_result_name({v})");
    }

    let mode = input.choice(6);
    let name = text(sgmap_mode_name(mode), "sgmap_mode_name");
    let names = ["none", "indirect", "direct", "mixed", "mmap"];
    let want = usize::try_from(mode)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or("unknown");
    assert_eq!(name, want, "sgmap_mode_name({mode})");

    let fallback = input.choice(5);
    let t = text(sgmap_fallback_text(fallback), "sgmap_fallback_text");
    match fallback {
        0 => assert_eq!(t, "", "sgmap_fallback_text(NONE)"),
        1..=3 => assert!(
            !t.is_empty() && t != "unknown",
            "sgmap_fallback_text({fallback})"
        ),
        _ => assert_eq!(t, "unknown", "sgmap_fallback_text({fallback})"),
    }

    let key = input.u8();
    let name = text(sgmap_sense_key_name(key), "sgmap_sense_key_name");
    assert_eq!(
        name,
        sgmap::sense::SenseKey::from_u8(key).name(),
        "sgmap_sense_key_name({key:#04x})"
    );
}

/// `sgmap_direct_buffer_alloc` with lengths 0, small and impossible.
fn direct_buffer(input: &mut Input<'_>) {
    let len = match input.u8() % 4 {
        0 => 0,
        // Impossible: more than any address space.
        1 => usize::MAX - (input.u32() as usize),
        _ => 1 + (input.u32() as usize) % (64 * 1024),
    };
    let sentinel = NonNull::<c_void>::dangling().as_ptr();
    let mut p = sentinel;
    let out = input.ptr(&mut p);
    let allowed: &[sgmap_result] = match (out.is_null(), len) {
        (true, _) => &[SGMAP_NULL_PARAMETER],
        (false, 0) => &[SGMAP_INVALID_ARGUMENT],
        // No buffer can have it, once rounded up to a page: refused as an argument.
        (false, l) if l > isize::MAX as usize => &[SGMAP_INVALID_ARGUMENT],
        (false, _) => &[SGMAP_OK],
    };
    // SAFETY: `out` is NULL or one pointer.
    let (r, last) = check("sgmap_direct_buffer_alloc", allowed, || unsafe {
        sgmap_direct_buffer_alloc(len, out)
    });
    if out.is_null() {
        assert_eq!(p, sentinel);
        return;
    }
    if r != SGMAP_OK {
        assert!(p.is_null(), "*out is not NULL after a failure");
        if r == SGMAP_OS_ERROR {
            assert_eq!(last.errno, libc::ENOMEM, "{}", last.message);
        }
        return;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    assert!(
        !p.is_null() && p as usize % page == 0,
        "{p:?} is not page-aligned"
    );
    // SAFETY: a fresh allocation of `len` bytes.
    let bytes = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) };
    assert!(bytes.iter().all(|&b| b == 0), "not zeroed");
    bytes.fill(0xff);
    // SAFETY: allocated above, freed once.
    unsafe { sgmap_direct_buffer_free(p) };
}

/// `sgmap_list_devices` and reading its entries, in range and past the end.
fn list_devices(input: &mut Input<'_>) {
    let sentinel = NonNull::<sgmap_device_list>::dangling().as_ptr();
    let mut list = sentinel;
    let out = input.ptr(&mut list);
    // Without the sg driver there is no /sys/class/scsi_generic, and the
    // list is refused with ENOENT.
    let sg_loaded = std::path::Path::new("/sys/class/scsi_generic").is_dir();
    let allowed: &[sgmap_result] = match (out.is_null(), sg_loaded) {
        (true, _) => &[SGMAP_NULL_PARAMETER],
        (false, true) => &[SGMAP_OK],
        (false, false) => &[SGMAP_OS_ERROR],
    };
    // SAFETY: `out` is NULL or one pointer.
    let (r, last) = check("sgmap_list_devices", allowed, || unsafe {
        sgmap_list_devices(out)
    });
    if out.is_null() {
        assert_eq!(list, sentinel);
        list = ptr::null_mut();
    } else if r != SGMAP_OK {
        assert!(list.is_null(), "*out is not NULL after a failure");
        assert_eq!(last.errno, libc::ENOENT, "{}", last.message);
    }
    // SAFETY: `list` is NULL or a live list.
    let n = unsafe { sgmap_device_list_len(list) };
    let index = match input.u8() % 3 {
        0 => usize::from(input.u8()),
        1 => n,
        _ => input.u64() as usize,
    };
    let mut entry = MaybeUninit::<sgmap_device_entry>::uninit();
    let p_entry = if input.bool() {
        entry.as_mut_ptr()
    } else {
        ptr::null_mut()
    };
    let allowed: &[sgmap_result] = if list.is_null() || p_entry.is_null() {
        &[SGMAP_NULL_PARAMETER]
    } else if index < n {
        &[SGMAP_OK]
    } else {
        &[SGMAP_INVALID_ARGUMENT]
    };
    // SAFETY: `list` is NULL or live, `p_entry` NULL or one entry.
    let (r, _) = check("sgmap_device_list_get", allowed, || unsafe {
        sgmap_device_list_get(list, index, p_entry)
    });
    if r == SGMAP_OK {
        // SAFETY: written by the successful call.
        let e = unsafe { entry.assume_init() };
        for (field, p) in [("name", e.name), ("path", e.path), ("vendor", e.vendor)] {
            assert!(!p.is_null(), "entry {index}: {field} is NULL");
        }
    }
    // SAFETY: NULL or a list from sgmap_list_devices, freed once.
    unsafe { sgmap_device_list_free(list) };
}

/// `sgmap_allow_dio`: 1, 0 or -1.
fn allow_dio(input: &mut Input<'_>) {
    let mut v = SENTINEL as i32;
    let out = input.ptr(&mut v);
    let allowed: &[sgmap_result] = if out.is_null() {
        &[SGMAP_NULL_PARAMETER]
    } else {
        &[SGMAP_OK]
    };
    // SAFETY: `out` is NULL or one i32.
    check("sgmap_allow_dio", allowed, || unsafe {
        sgmap_allow_dio(out)
    });
    if out.is_null() {
        assert_eq!(v, SENTINEL as i32);
    } else {
        assert!(matches!(v, -1..=1), "sgmap_allow_dio gave {v}");
    }
}

/// Releasing NULL does nothing, and touches no last error.
fn releases_of_null() {
    let before = last();
    // SAFETY: NULL is allowed.
    unsafe { sgmap_device_close(ptr::null_mut()) };
    // SAFETY: NULL is allowed.
    unsafe { sgmap_direct_buffer_free(ptr::null_mut()) };
    // SAFETY: NULL is allowed.
    unsafe { sgmap_device_list_free(ptr::null_mut()) };
    assert_eq!(last(), before, "releasing NULL changed the last error");
}

/// The version string and number agree.
fn version() {
    let s = text(sgmap_version(), "sgmap_version");
    let parts: Vec<u32> = s
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("version {s:?}")))
        .collect();
    assert_eq!(parts.len(), 3, "version {s:?}");
    assert_eq!(
        sgmap_version_number(),
        parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2],
        "version {s:?}"
    );
}
