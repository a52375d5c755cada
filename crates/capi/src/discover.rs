//! Finding sg devices through sysfs.

use std::ffi::{c_char, CString};

use crate::args::{self, Out};
use crate::error::{guard, sgmap_result, Fail};

/// One sg device as sysfs describes it. The strings belong to the list and
/// stay valid until `sgmap_device_list_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sgmap_device_entry {
    /// The sg name, e.g. "sg0".
    pub name: *const c_char,
    /// The device node, e.g. "/dev/sg0" (whether it exists and may be
    /// opened is up to udev and its permissions).
    pub path: *const c_char,
    /// The block device on the same SCSI device (e.g. "sda"), "" when none.
    pub block_device: *const c_char,
    /// INQUIRY vendor, trimmed; "" when unreadable.
    pub vendor: *const c_char,
    /// INQUIRY product, trimmed; "" when unreadable.
    pub model: *const c_char,
    /// INQUIRY revision, trimmed; "" when unreadable.
    pub revision: *const c_char,
    /// Peripheral device type (0 disk, 5 CD/DVD, ...), -1 when unknown.
    pub device_type: i32,
    /// True when `host`, `channel`, `target` and `lun` are known.
    pub has_hctl: bool,
    /// Host adapter number.
    pub host: u32,
    /// Channel.
    pub channel: u32,
    /// Target id.
    pub target: u32,
    /// Logical unit number.
    pub lun: u64,
}

/// The sg devices found by `sgmap_list_devices` (opaque). Immutable: any
/// thread may read it; free it once with `sgmap_device_list_free`.
#[derive(Debug)]
pub struct sgmap_device_list {
    /// Owns the strings the entries point at.
    _strings: Vec<CString>,
    entries: Vec<sgmap_device_entry>,
}

// SAFETY: the raw pointers in `entries` point into `_strings`, owned by the
// list and never changed after construction; sharing them is sharing `&str`s.
unsafe impl Send for sgmap_device_list {}
// SAFETY: as above: the list is immutable once built.
unsafe impl Sync for sgmap_device_list {}

fn cstring(s: &str) -> CString {
    // sysfs strings hold no NUL; drop any rather than fail.
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// Lists the sg devices sysfs knows (/sys/class/scsi_generic), sorted by
/// number, into a new list in `*out` (NULL on failure). When the sg driver
/// is not loaded (no /sys/class/scsi_generic) the result is
/// `SGMAP_OS_ERROR` with errno ENOENT.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_list_devices(out: *mut *mut sgmap_device_list) -> sgmap_result {
    guard("sgmap_list_devices", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(std::ptr::null_mut()) };
        let found = sgmap::discover::list().map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(match e.kind() {
                std::io::ErrorKind::NotFound => libc::ENOENT,
                std::io::ErrorKind::PermissionDenied => libc::EACCES,
                _ => 0,
            });
            Fail::new(sgmap_result::SGMAP_OS_ERROR, e.to_string()).with_errno(errno)
        })?;
        let mut strings = Vec::new();
        let mut entries = Vec::new();
        for d in &found {
            let mut keep = |s: &str| {
                let c = cstring(s);
                // The CString's heap buffer does not move when the CString does.
                let p = c.as_ptr();
                strings.push(c);
                p
            };
            let (has_hctl, (host, channel, target, lun)) = match d.hctl {
                Some(h) => (true, h),
                None => (false, (0, 0, 0, 0)),
            };
            entries.push(sgmap_device_entry {
                name: keep(&d.name),
                path: keep(&d.path.to_string_lossy()),
                block_device: keep(d.block_device.as_deref().unwrap_or("")),
                vendor: keep(&d.vendor),
                model: keep(&d.model),
                revision: keep(&d.revision),
                device_type: d.device_type.map_or(-1, i32::from),
                has_hctl,
                host,
                channel,
                target,
                lun,
            });
        }
        let list = Box::new(sgmap_device_list {
            _strings: strings,
            entries,
        });
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(Box::into_raw(list)) };
        Ok(())
    })
}

/// The number of devices in a list; 0 for NULL.
///
/// # Safety
///
/// `list` must be NULL or a list from `sgmap_list_devices` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_list_len(list: *const sgmap_device_list) -> usize {
    crate::error::guard_value(0, || {
        // SAFETY: NULL or a live list per the caller's contract.
        unsafe { args::input(list, "list") }.map_or(0, |l| l.entries.len())
    })
}

/// Copies entry `index` of a list into `*out`; `SGMAP_INVALID_ARGUMENT` when
/// `index` is not below `sgmap_device_list_len`.
///
/// # Safety
///
/// `list` must be NULL or a live list; `out` must be NULL or valid for a
/// write of one `sgmap_device_entry`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_list_get(
    list: *const sgmap_device_list,
    index: usize,
    out: *mut sgmap_device_entry,
) -> sgmap_result {
    guard("sgmap_device_list_get", || {
        // SAFETY: NULL or a live list per the caller's contract.
        let list = unsafe { args::input(list, "list") }?;
        let out = Out::new(out, "out")?;
        let entry = list.entries.get(index).ok_or_else(|| {
            Fail::invalid(format!(
                "index {index} is past the end of a list of {} devices",
                list.entries.len()
            ))
        })?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(*entry) };
        Ok(())
    })
}

/// Frees a list; its entries' strings become invalid. NULL does nothing.
///
/// # Safety
///
/// `list` must be NULL or a list from `sgmap_list_devices`, freed once.
#[no_mangle]
pub unsafe extern "C" fn sgmap_device_list_free(list: *mut sgmap_device_list) {
    if list.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: made by Box::into_raw in sgmap_list_devices, freed once per
        // the caller's contract.
        drop(unsafe { Box::from_raw(list) });
    });
}

/// Stores in `*out` whether the sg driver allows direct IO
/// (/sys/module/sg/parameters/allow_dio): 1 yes, 0 no, -1 unknown (the sg
/// module is not loaded, or sysfs is not mounted).
///
/// # Safety
///
/// `out` must be NULL or valid for a write of one `int32_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_allow_dio(out: *mut i32) -> sgmap_result {
    guard("sgmap_allow_dio", || {
        let out = Out::new(out, "out")?;
        let v = match sgmap::discover::allow_dio() {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(v) };
        Ok(())
    })
}
