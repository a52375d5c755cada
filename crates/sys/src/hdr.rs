//! The structs the sg driver exchanges with user space.

use core::ffi::{c_char, c_int, c_short, c_uchar, c_uint, c_ushort, c_void};

/// One scatter-gather element (`sg_iovec_t`), used when `iovec_count > 0`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sg_iovec {
    /// Start of the element.
    pub iov_base: *mut c_void,
    /// Length of the element in bytes.
    pub iov_len: usize,
}

/// The v3 request/response header (`sg_io_hdr_t`) used by `SG_IO`, `write()` and `read()`.
///
/// Fields marked `[i]` are inputs, `[o]` outputs, as in `<scsi/sg.h>`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sg_io_hdr {
    /// `[i]` Must be `'S'` ([`SG_INTERFACE_ID_ORIG`]).
    pub interface_id: c_int,
    /// `[i]` One of the `SG_DXFER_*` directions.
    pub dxfer_direction: c_int,
    /// `[i]` Length of the CDB at `cmdp`.
    pub cmd_len: c_uchar,
    /// `[i]` Capacity of the sense buffer at `sbp`.
    pub mx_sb_len: c_uchar,
    /// `[i]` 0 for a plain buffer, else the number of [`sg_iovec`]s at `dxferp`.
    pub iovec_count: c_ushort,
    /// `[i]` Bytes to transfer.
    pub dxfer_len: c_uint,
    /// `[i]` Data buffer (or iovec array); NULL for mmap-ed IO.
    pub dxferp: *mut c_void,
    /// `[i]` The CDB.
    pub cmdp: *mut c_uchar,
    /// `[i]` Where the kernel writes sense data.
    pub sbp: *mut c_uchar,
    /// `[i]` Timeout in milliseconds (`u32::MAX`: none).
    pub timeout: c_uint,
    /// `[i]` `SG_FLAG_*` bits.
    pub flags: c_uint,
    /// `[i->o]` Caller's tag, echoed back; selects the response with `SG_SET_FORCE_PACK_ID`.
    pub pack_id: c_int,
    /// `[i->o]` Caller's pointer, echoed back; never dereferenced by the kernel.
    pub usr_ptr: *mut c_void,
    /// `[o]` SCSI status byte as the device returned it.
    pub status: c_uchar,
    /// `[o]` `(status >> 1) & 0x7f` (the old masked form).
    pub masked_status: c_uchar,
    /// `[o]` Messaging level status (unused by modern transports).
    pub msg_status: c_uchar,
    /// `[o]` Bytes of sense data written to `sbp`.
    pub sb_len_wr: c_uchar,
    /// `[o]` Host adapter status (`DID_*`).
    pub host_status: c_ushort,
    /// `[o]` Driver status (`DRIVER_*`).
    pub driver_status: c_ushort,
    /// `[o]` `dxfer_len` minus the bytes actually transferred.
    pub resid: c_int,
    /// `[o]` Time the command took, in milliseconds.
    pub duration: c_uint,
    /// `[o]` `SG_INFO_*` bits: check condition, and whether IO was direct.
    pub info: c_uint,
}

impl sg_io_hdr {
    /// A header with every field zero except `interface_id = 'S'`.
    ///
    /// Built from all-zero bytes, so the padding the kernel copies in with the
    /// header is zero too (memory checkers flag uninitialised padding).
    pub const fn new() -> Self {
        // SAFETY: every field is an integer or a raw pointer, for which all
        // zero bytes are a valid value (0 or null).
        let mut h: Self = unsafe { core::mem::zeroed() };
        h.interface_id = SG_INTERFACE_ID_ORIG;
        h.dxfer_direction = crate::SG_DXFER_NONE;
        h
    }
}

impl Default for sg_io_hdr {
    fn default() -> Self {
        Self::new()
    }
}

/// The value of `interface_id` for the v3 interface: `'S'`.
pub const SG_INTERFACE_ID_ORIG: c_int = b'S' as c_int;

/// What `SG_GET_SCSI_ID` reports about the device behind an fd.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct sg_scsi_id {
    /// SCSI host (adapter) number.
    pub host_no: c_int,
    /// Channel (bus) on the host.
    pub channel: c_int,
    /// Target id on the channel.
    pub scsi_id: c_int,
    /// Logical unit number.
    pub lun: c_int,
    /// Peripheral device type (`TYPE_*`, 0 = disk).
    pub scsi_type: c_int,
    /// Host's commands-per-LUN limit.
    pub h_cmd_per_lun: c_short,
    /// Device queue depth.
    pub d_queue_depth: c_short,
    /// Reserved by the kernel.
    pub unused: [c_int; 2],
}

/// One slot of the table `SG_GET_REQUEST_TABLE` fills ([`SG_MAX_QUEUE`](crate::SG_MAX_QUEUE) of them).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sg_req_info {
    /// 0: slot unused, 1: submitted and in flight, 2: done, waiting for `read()`.
    pub req_state: c_char,
    /// 1 when the request was orphaned by an interrupted `SG_IO`.
    pub orphan: c_char,
    /// 1 when the request belongs to an `SG_IO` call rather than `write()`.
    pub sg_io_owned: c_char,
    /// 1 when the request has an error to report.
    pub problem: c_char,
    /// The request's `pack_id`.
    pub pack_id: c_int,
    /// The request's `usr_ptr`.
    pub usr_ptr: *mut c_void,
    /// Milliseconds since submission (in flight) or the request's duration (done).
    pub duration: c_uint,
    /// Reserved by the kernel.
    pub unused: c_int,
}

impl Default for sg_req_info {
    fn default() -> Self {
        Self {
            req_state: 0,
            orphan: 0,
            sg_io_owned: 0,
            problem: 0,
            pack_id: 0,
            usr_ptr: core::ptr::null_mut(),
            duration: 0,
            unused: 0,
        }
    }
}
