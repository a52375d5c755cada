//! `SG_*` constants: transfer directions, flags, info bits, ioctl numbers and limits.
//!
//! Values present in glibc's `<scsi/sg.h>` are checked against it by
//! `tests/layout.rs`. A few (`SG_FLAG_MMAP_IO`, `SG_FLAG_Q_AT_TAIL`,
//! `SG_FLAG_Q_AT_HEAD`, `SG_GET_ACCESS_COUNT`, `SG_DXFER_UNKNOWN`) exist only in
//! the kernel's own `include/scsi/sg.h`; their values are part of the kernel ABI
//! and are exercised by the in-kernel tests.

use core::ffi::{c_int, c_uint, c_ulong};

// Transfer directions (`sg_io_hdr::dxfer_direction`).
/// No data phase (e.g. TEST UNIT READY).
pub const SG_DXFER_NONE: c_int = -1;
/// Data goes to the device (e.g. WRITE).
pub const SG_DXFER_TO_DEV: c_int = -2;
/// Data comes from the device (e.g. READ).
pub const SG_DXFER_FROM_DEV: c_int = -3;
/// Like `FROM_DEV`, but for indirect IO the user buffer is first copied in.
pub const SG_DXFER_TO_FROM_DEV: c_int = -4;
/// Direction unknown: disables direct IO (kernel header only).
pub const SG_DXFER_UNKNOWN: c_int = -5;

// Request flags (`sg_io_hdr::flags`).
/// Ask for direct IO into pinned user pages; the kernel may fall back silently.
pub const SG_FLAG_DIRECT_IO: c_uint = 1;
/// Obsolete: do not put the LUN into the CDB.
pub const SG_FLAG_LUN_INHIBIT: c_uint = 2;
/// Use the fd's mmap-ed reserved buffer; `dxferp` should be NULL (kernel header only).
pub const SG_FLAG_MMAP_IO: c_uint = 4;
/// Queue the request at the tail of the device queue (kernel header only).
pub const SG_FLAG_Q_AT_TAIL: c_uint = 0x10;
/// Queue the request at the head of the device queue, the default (kernel header only).
pub const SG_FLAG_Q_AT_HEAD: c_uint = 0x20;
/// Ignored by the 6.1 driver; kept for completeness.
pub const SG_FLAG_NO_DXFER: c_uint = 0x10000;

// Completion information (`sg_io_hdr::info`).
/// Mask for the OK/CHECK bit.
pub const SG_INFO_OK_MASK: c_uint = 0x1;
/// No sense, host or driver "noise".
pub const SG_INFO_OK: c_uint = 0x0;
/// Something abnormal happened: look at status, host, driver and sense.
pub const SG_INFO_CHECK: c_uint = 0x1;
/// Mask for how the data really moved.
pub const SG_INFO_DIRECT_IO_MASK: c_uint = 0x6;
/// Data moved through kernel buffers (or there was no data).
pub const SG_INFO_INDIRECT_IO: c_uint = 0x0;
/// Direct IO was requested and performed.
pub const SG_INFO_DIRECT_IO: c_uint = 0x2;
/// Part direct, part indirect.
pub const SG_INFO_MIXED_IO: c_uint = 0x4;

// ioctl request numbers. The `_GET_` ones return through an `int *` unless noted.
/// True (1) for an emulated host adapter (ATAPI).
pub const SG_EMULATED_HOST: c_ulong = 0x2203;
/// Obsolete transform (value, not pointer, argument).
pub const SG_SET_TRANSFORM: c_ulong = 0x2204;
/// Obsolete transform query.
pub const SG_GET_TRANSFORM: c_ulong = 0x2205;
/// Request a reserved buffer size (`int *`); the kernel may grant less.
pub const SG_SET_RESERVED_SIZE: c_ulong = 0x2275;
/// The reserved buffer size actually granted (`int *`).
pub const SG_GET_RESERVED_SIZE: c_ulong = 0x2272;
/// Fill an [`sg_scsi_id`](crate::sg_scsi_id).
pub const SG_GET_SCSI_ID: c_ulong = 0x2276;
/// Force low DMA memory (obsolete).
pub const SG_SET_FORCE_LOW_DMA: c_ulong = 0x2279;
/// Whether low DMA memory is forced.
pub const SG_GET_LOW_DMA: c_ulong = 0x227a;
/// 1: `read()` fetches the response whose `pack_id` matches the header passed in.
pub const SG_SET_FORCE_PACK_ID: c_ulong = 0x227b;
/// `pack_id` of the oldest readable response, or -1.
pub const SG_GET_PACK_ID: c_ulong = 0x227c;
/// Number of completed responses waiting for `read()`.
pub const SG_GET_NUM_WAITING: c_ulong = 0x227d;
/// Scatter-gather table size of the host (0: none).
pub const SG_GET_SG_TABLESIZE: c_ulong = 0x227f;
/// Driver version, e.g. 30536 for 3.5.36.
pub const SG_GET_VERSION_NUM: c_ulong = 0x2282;
/// Reset device, bus or host (`int *` holding an `SG_SCSI_RESET_*` value).
pub const SG_SCSI_RESET: c_ulong = 0x2284;
/// Synchronous request: submit an [`sg_io_hdr`](crate::sg_io_hdr) and wait for it.
pub const SG_IO: c_ulong = 0x2285;
/// Fill an array of [`SG_MAX_QUEUE`] [`sg_req_info`](crate::sg_req_info).
pub const SG_GET_REQUEST_TABLE: c_ulong = 0x2286;
/// 1: keep the response of an interrupted `SG_IO` for `read()`.
pub const SG_SET_KEEP_ORPHAN: c_ulong = 0x2287;
/// Whether orphans are kept.
pub const SG_GET_KEEP_ORPHAN: c_ulong = 0x2288;
/// Number of opens of the device (kernel header only).
pub const SG_GET_ACCESS_COUNT: c_ulong = 0x2289;
/// Default timeout in USER_HZ ticks (`int *`).
pub const SG_SET_TIMEOUT: c_ulong = 0x2201;
/// Default timeout in USER_HZ ticks, as the ioctl's return value.
pub const SG_GET_TIMEOUT: c_ulong = 0x2202;
/// Whether command queuing is on (always on for the v3 interface).
pub const SG_GET_COMMAND_Q: c_ulong = 0x2270;
/// Turn command queuing on (1) or off (0) for the old interface.
pub const SG_SET_COMMAND_Q: c_ulong = 0x2271;
/// Debug level (logs to the console).
pub const SG_SET_DEBUG: c_ulong = 0x227e;
/// Override the CDB length of the next `write()` (old interface).
pub const SG_NEXT_CMD_LEN: c_ulong = 0x2283;
/// The queue's largest transfer (`<linux/fs.h>`, `_IO(0x12, 103)`). On an sg
/// node it fills an `int` with the limit in bytes (`max_sectors_bytes`, the
/// same limit `SG_SET_RESERVED_SIZE` clamps to); on a block device an
/// `unsigned short` with the limit in 512-byte sectors.
pub const BLKSECTGET: c_ulong = 0x1267;

// SG_SCSI_RESET arguments.
/// Only report whether a reset is in progress.
pub const SG_SCSI_RESET_NOTHING: c_int = 0;
/// Reset the logical unit.
pub const SG_SCSI_RESET_DEVICE: c_int = 1;
/// Reset the bus.
pub const SG_SCSI_RESET_BUS: c_int = 2;
/// Reset the host adapter.
pub const SG_SCSI_RESET_HOST: c_int = 3;

// Limits and defaults.
/// Default reserved buffer size when the module is loaded (`8 * 4096`).
pub const SG_SCATTER_SZ: c_int = 8 * 4096;
/// Default reserved buffer size.
pub const SG_DEF_RESERVED_SIZE: c_int = SG_SCATTER_SZ;
/// Most requests one fd can have outstanding; one more gives EDOM.
pub const SG_MAX_QUEUE: usize = 16;
/// Old interface's sense length (the v3 interface uses `mx_sb_len`).
pub const SG_MAX_SENSE: usize = 16;
/// Retries the driver asks the midlayer for.
pub const SG_DEFAULT_RETRIES: c_int = 1;
/// Default of `SG_SET_FORCE_PACK_ID`.
pub const SG_DEF_FORCE_PACK_ID: c_int = 0;
/// Default of `SG_SET_KEEP_ORPHAN`.
pub const SG_DEF_KEEP_ORPHAN: c_int = 0;
/// Driver version from which `SG_FLAG_MMAP_IO` is supported (3.1.22).
pub const SG_MMAP_MIN_VERSION: c_int = 30122;

/// The character-device major number of the sg driver's nodes
/// (`SCSI_GENERIC_MAJOR` in `<linux/major.h>`): `/dev/sgN` is 21:N. Other
/// character devices may answer some sg ioctls (bsg answers
/// `SG_GET_VERSION_NUM`) without being the sg driver.
pub const SCSI_GENERIC_MAJOR: u32 = 21;
/// `dxfer_len` at or above this gives EINVAL (256 MiB).
pub const SG_MAX_DXFER_LEN: u32 = 256 * 1024 * 1024;
