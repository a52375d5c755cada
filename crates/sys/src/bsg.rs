//! SCSI passthrough through io_uring on the bsg node (`/dev/bsg/H:C:T:L`),
//! Linux 7.1 and later: the 80-byte command of an `IORING_OP_URING_CMD`
//! submission entry and the packed status of its completion.
//!
//! Mirrors `<linux/bsg.h>` of Linux 7.x (`struct bsg_uring_cmd` and the
//! `bsg_scsi_res2_*` helpers). Debian bookworm's headers predate it, so the
//! layout is checked against a 7.x header fetched by `cargo xtask headers`
//! (`tests/bsg_layout.rs`), and against the numbers written here by unit tests.
//!
//! The ring must be set up with `IORING_SETUP_SQE128 | IORING_SETUP_CQE32`:
//! the command fills the 80 bytes of a 128-byte entry's command area, and the
//! status comes in the first extra 64-bit word of a 32-byte completion entry.
//! `cmd_op` is 0. A registered buffer is named with
//! `IORING_URING_CMD_FIXED` and `buf_index` in the entry, and the address in
//! [`bsg_uring_cmd::din_xferp`] or [`bsg_uring_cmd::dout_xferp`] must lie
//! inside that buffer.

/// `protocol`: SCSI.
pub const BSG_PROTOCOL_SCSI: u32 = 0;
/// `subprotocol`: a SCSI command (the only one the io_uring handler takes).
pub const BSG_SUB_PROTOCOL_SCSI_CMD: u32 = 0;
/// `subprotocol`: a SCSI task management function.
pub const BSG_SUB_PROTOCOL_SCSI_TMF: u32 = 1;
/// `subprotocol`: a SCSI transport message.
pub const BSG_SUB_PROTOCOL_SCSI_TRANSPORT: u32 = 2;
/// `sg_io_v4` flag: queue at the tail (the default is the head).
pub const BSG_FLAG_Q_AT_TAIL: u32 = 0x10;
/// `sg_io_v4` flag: queue at the head (ignored: it is the default).
pub const BSG_FLAG_Q_AT_HEAD: u32 = 0x20;

/// The command area of an `IORING_OP_URING_CMD` entry on a bsg fd
/// (`struct bsg_uring_cmd`, 80 bytes).
///
/// The kernel reads `request` (the CDB) and the data addresses when it
/// issues the command, and writes the sense data at `response` and the data
/// of a read when it completes: every address must stay valid, and the data
/// buffer untouched, until the completion has been reaped. The kernel
/// refuses data in both directions at once and iovec counts other than 0
/// (`EOPNOTSUPP`), a command without a CDB (`EINVAL`) and a CDB that the fd's
/// open mode does not allow (`EPERM`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct bsg_uring_cmd {
    /// `[i]` Address of the CDB.
    pub request: u64,
    /// `[i]` Length of the CDB in bytes (at most 32).
    pub request_len: u32,
    /// `[i]` [`BSG_PROTOCOL_SCSI`].
    pub protocol: u32,
    /// `[i]` [`BSG_SUB_PROTOCOL_SCSI_CMD`].
    pub subprotocol: u32,
    /// `[i]` Capacity of the sense buffer at `response`.
    pub max_response_len: u32,
    /// `[i]`, `[*o]` Where the kernel writes sense data.
    pub response: u64,
    /// `[i]`, `[*i]` Data to send to the device.
    pub dout_xferp: u64,
    /// `[i]` Bytes to send.
    pub dout_xfer_len: u32,
    /// `[i]` Must be 0 (a flat buffer).
    pub dout_iovec_count: u32,
    /// `[i]`, `[*o]` Where data from the device goes.
    pub din_xferp: u64,
    /// `[i]` Bytes to receive.
    pub din_xfer_len: u32,
    /// `[i]` Must be 0 (a flat buffer).
    pub din_iovec_count: u32,
    /// `[i]` Timeout in milliseconds; 0 means the block layer's default.
    pub timeout_ms: u32,
    /// Must be zero.
    pub reserved: [u8; 12],
}

/// Size of [`bsg_uring_cmd`]: exactly the command area of a 128-byte entry.
pub const BSG_URING_CMD_SIZE: usize = 80;

const _: () = assert!(core::mem::size_of::<bsg_uring_cmd>() == BSG_URING_CMD_SIZE);
const _: () = assert!(core::mem::align_of::<bsg_uring_cmd>() == 8);

impl bsg_uring_cmd {
    /// The command as the 80 bytes an `IORING_OP_URING_CMD` entry carries.
    pub fn to_bytes(&self) -> [u8; BSG_URING_CMD_SIZE] {
        let mut out = [0u8; BSG_URING_CMD_SIZE];
        let mut at = 0;
        let mut put = |b: &[u8]| {
            out[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        };
        put(&self.request.to_ne_bytes());
        put(&self.request_len.to_ne_bytes());
        put(&self.protocol.to_ne_bytes());
        put(&self.subprotocol.to_ne_bytes());
        put(&self.max_response_len.to_ne_bytes());
        put(&self.response.to_ne_bytes());
        put(&self.dout_xferp.to_ne_bytes());
        put(&self.dout_xfer_len.to_ne_bytes());
        put(&self.dout_iovec_count.to_ne_bytes());
        put(&self.din_xferp.to_ne_bytes());
        put(&self.din_xfer_len.to_ne_bytes());
        put(&self.din_iovec_count.to_ne_bytes());
        put(&self.timeout_ms.to_ne_bytes());
        put(&self.reserved);
        out
    }
}

/// The SCSI status the kernel packs into a bsg completion's first extra
/// word (`res2`), decoded: bits 0–7 device status, 8–15 driver status,
/// 16–23 host status, 24–31 sense bytes written, 32–63 residual.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BsgScsiStatus {
    /// SCSI status byte (`bsg_scsi_res2_device_status`).
    pub device_status: u8,
    /// Driver status (`DRIVER_SENSE` when sense was written).
    pub driver_status: u8,
    /// Host status (`DID_*`).
    pub host_status: u8,
    /// Bytes of sense data written to the response buffer.
    pub sense_len: u8,
    /// Bytes not transferred.
    pub resid: u32,
}

impl BsgScsiStatus {
    /// Decodes `res2` (`big_cqe()[0]` of the completion).
    pub const fn from_res2(res2: u64) -> Self {
        Self {
            device_status: res2 as u8,
            driver_status: (res2 >> 8) as u8,
            host_status: (res2 >> 16) as u8,
            sense_len: (res2 >> 24) as u8,
            resid: (res2 >> 32) as u32,
        }
    }

    /// Packs the fields as the kernel does (`bsg_scsi_res2_build`).
    pub const fn to_res2(self) -> u64 {
        ((self.resid as u64) << 32)
            | ((self.sense_len as u64) << 24)
            | ((self.host_status as u64) << 16)
            | ((self.driver_status as u64) << 8)
            | self.device_status as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout_matches_the_offsets_of_linux_7x_bsg_h() {
        // The offsets of linux/bsg.h's struct bsg_uring_cmd, written out.
        let want = [
            ("request", offset_of!(bsg_uring_cmd, request), 0),
            ("request_len", offset_of!(bsg_uring_cmd, request_len), 8),
            ("protocol", offset_of!(bsg_uring_cmd, protocol), 12),
            ("subprotocol", offset_of!(bsg_uring_cmd, subprotocol), 16),
            (
                "max_response_len",
                offset_of!(bsg_uring_cmd, max_response_len),
                20,
            ),
            ("response", offset_of!(bsg_uring_cmd, response), 24),
            ("dout_xferp", offset_of!(bsg_uring_cmd, dout_xferp), 32),
            (
                "dout_xfer_len",
                offset_of!(bsg_uring_cmd, dout_xfer_len),
                40,
            ),
            (
                "dout_iovec_count",
                offset_of!(bsg_uring_cmd, dout_iovec_count),
                44,
            ),
            ("din_xferp", offset_of!(bsg_uring_cmd, din_xferp), 48),
            ("din_xfer_len", offset_of!(bsg_uring_cmd, din_xfer_len), 56),
            (
                "din_iovec_count",
                offset_of!(bsg_uring_cmd, din_iovec_count),
                60,
            ),
            ("timeout_ms", offset_of!(bsg_uring_cmd, timeout_ms), 64),
            ("reserved", offset_of!(bsg_uring_cmd, reserved), 68),
        ];
        for (name, got, want) in want {
            assert_eq!(got, want, "offset of {name}");
        }
        assert_eq!(size_of::<bsg_uring_cmd>(), 80);
    }

    #[test]
    fn to_bytes_is_the_struct_s_memory() {
        let c = bsg_uring_cmd {
            request: 0x1111_2222_3333_4444,
            request_len: 10,
            protocol: 1,
            subprotocol: 2,
            max_response_len: 96,
            response: 0x5555_6666_7777_8888,
            dout_xferp: 0x99,
            dout_xfer_len: 512,
            dout_iovec_count: 3,
            din_xferp: 0xaa,
            din_xfer_len: 4096,
            din_iovec_count: 4,
            timeout_ms: 60_000,
            reserved: [0xee; 12],
        };
        // SAFETY: bsg_uring_cmd is 80 bytes of plain integers with no padding
        // (the offsets above leave no gap), so all of them are initialised.
        let raw: [u8; 80] = unsafe { core::mem::transmute(c) };
        assert_eq!(c.to_bytes(), raw);
    }

    #[test]
    fn res2_fields_are_where_the_kernel_puts_them() {
        // CHECK CONDITION, DRIVER_SENSE, DID_OK, 18 sense bytes, 4096 short.
        let res2 = (4096u64 << 32) | (18 << 24) | (0x08 << 8) | 0x02;
        let s = BsgScsiStatus::from_res2(res2);
        assert_eq!(
            s,
            BsgScsiStatus {
                device_status: 0x02,
                driver_status: 0x08,
                host_status: 0,
                sense_len: 18,
                resid: 4096,
            }
        );
        assert_eq!(s.to_res2(), res2);
        let all = BsgScsiStatus::from_res2(u64::MAX);
        assert_eq!(
            (
                all.device_status,
                all.driver_status,
                all.host_status,
                all.sense_len,
                all.resid
            ),
            (0xff, 0xff, 0xff, 0xff, u32::MAX)
        );
        let host = BsgScsiStatus::from_res2(0x03 << 16);
        assert_eq!((host.host_status, host.device_status), (0x03, 0));
    }
}
