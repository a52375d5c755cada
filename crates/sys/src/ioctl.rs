//! Thin wrappers over the sg ioctls, one per request.
//!
//! The sg request numbers are plain constants, not `_IOWR`-built, so these use
//! nix's `*_bad!` macros. Each returns the ioctl's return value or the errno.
//!
//! # Safety
//!
//! Every function here is `unsafe`: `fd` must be an open file descriptor, and each
//! pointer must be valid for the access the ioctl makes (the whole pointee, for
//! the duration of the call). For [`sg_io`] the header's own pointers (`cmdp`,
//! `sbp`, `dxferp`) must also be valid for `cmd_len`, `mx_sb_len` and
//! `dxfer_len` bytes respectively; with `SG_FLAG_DIRECT_IO` the kernel pins and
//! writes the `dxferp` pages while the call runs.

use core::ffi::c_int;

use crate::{sg_io_hdr, sg_req_info, sg_scsi_id, SG_MAX_QUEUE};

nix::ioctl_readwrite_bad!(
    /// `SG_IO`: submit a request and wait for its completion.
    sg_io,
    crate::SG_IO,
    sg_io_hdr
);
nix::ioctl_read_bad!(
    /// `SG_GET_VERSION_NUM`: the driver version (e.g. 30536).
    sg_get_version_num,
    crate::SG_GET_VERSION_NUM,
    c_int
);
nix::ioctl_write_ptr_bad!(
    /// `SG_SET_RESERVED_SIZE`: ask for a reserved buffer of `*data` bytes.
    sg_set_reserved_size,
    crate::SG_SET_RESERVED_SIZE,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_RESERVED_SIZE`: the reserved buffer size the kernel granted.
    sg_get_reserved_size,
    crate::SG_GET_RESERVED_SIZE,
    c_int
);
nix::ioctl_write_ptr_bad!(
    /// `SG_SET_TIMEOUT`: default timeout in USER_HZ ticks.
    sg_set_timeout,
    crate::SG_SET_TIMEOUT,
    c_int
);
nix::ioctl_none_bad!(
    /// `SG_GET_TIMEOUT`: default timeout in USER_HZ ticks, as the return value.
    sg_get_timeout,
    crate::SG_GET_TIMEOUT
);
nix::ioctl_read_bad!(
    /// `SG_GET_SCSI_ID`: host, channel, target, LUN and type of the device.
    sg_get_scsi_id,
    crate::SG_GET_SCSI_ID,
    sg_scsi_id
);
nix::ioctl_write_ptr_bad!(
    /// `SG_SET_FORCE_PACK_ID`: 1 makes `read()` select responses by `pack_id`.
    sg_set_force_pack_id,
    crate::SG_SET_FORCE_PACK_ID,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_PACK_ID`: `pack_id` of the oldest readable response, or -1.
    sg_get_pack_id,
    crate::SG_GET_PACK_ID,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_NUM_WAITING`: completed responses waiting for `read()`.
    sg_get_num_waiting,
    crate::SG_GET_NUM_WAITING,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_SG_TABLESIZE`: the host's scatter-gather table size.
    sg_get_sg_tablesize,
    crate::SG_GET_SG_TABLESIZE,
    c_int
);
nix::ioctl_write_ptr_bad!(
    /// `SG_SET_COMMAND_Q`: command queuing on (1) or off (0).
    sg_set_command_q,
    crate::SG_SET_COMMAND_Q,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_COMMAND_Q`: whether command queuing is on.
    sg_get_command_q,
    crate::SG_GET_COMMAND_Q,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_REQUEST_TABLE`: the fd's request slots.
    sg_get_request_table,
    crate::SG_GET_REQUEST_TABLE,
    [sg_req_info; SG_MAX_QUEUE]
);
nix::ioctl_write_ptr_bad!(
    /// `SG_SCSI_RESET`: reset device, bus or host (needs CAP_SYS_ADMIN and CAP_SYS_RAWIO).
    sg_scsi_reset,
    crate::SG_SCSI_RESET,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_EMULATED_HOST`: 1 for an emulated host adapter.
    sg_emulated_host,
    crate::SG_EMULATED_HOST,
    c_int
);
nix::ioctl_write_ptr_bad!(
    /// `SG_SET_KEEP_ORPHAN`: keep (1) or drop (0) responses of interrupted `SG_IO`s.
    sg_set_keep_orphan,
    crate::SG_SET_KEEP_ORPHAN,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_KEEP_ORPHAN`: whether orphans are kept.
    sg_get_keep_orphan,
    crate::SG_GET_KEEP_ORPHAN,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_ACCESS_COUNT`: how many opens the device has.
    sg_get_access_count,
    crate::SG_GET_ACCESS_COUNT,
    c_int
);
nix::ioctl_read_bad!(
    /// `SG_GET_LOW_DMA`: whether low DMA memory is forced.
    sg_get_low_dma,
    crate::SG_GET_LOW_DMA,
    c_int
);
nix::ioctl_read_bad!(
    /// `BLKSECTGET` on an sg node: the queue's largest transfer in bytes.
    sg_blksectget,
    crate::BLKSECTGET,
    c_int
);
nix::ioctl_read_bad!(
    /// `BLKSECTGET` on a block device: the queue's largest transfer in
    /// 512-byte sectors (at most 65535).
    blk_blksectget,
    crate::BLKSECTGET,
    u16
);
