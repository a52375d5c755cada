//! In-kernel tests of the raw layer: each ioctl and each transfer mode through
//! `sg_io_hdr` alone, against the scsi_debug disk of the test bed.
//!
//! Run by `cargo xtask test` inside user-mode Linux; skipped (ignored) on a
//! host without `SGMAP_TEST_DEVICE`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use sgmap_sys::*;
use sgmap_testkit::{ensure, ensure_eq, pattern, Ctx, Failed, KernelTest};

fn main() -> std::process::ExitCode {
    sgmap_testkit::run(&[
        KernelTest::device("version_num_is_mmap_capable", version_num),
        KernelTest::device(
            "test_unit_ready_reports_power_on_unit_attention_then_good",
            test_unit_ready,
        ),
        KernelTest::scsi_debug("inquiry_names_linux_scsi_debug", inquiry),
        KernelTest::scsi_debug("read_capacity_10_matches_configured_size", read_capacity),
        KernelTest::device("reserved_size_is_granted_and_read_back", reserved_size),
        KernelTest::scsi_debug("integrity_indirect_write_then_read", |c| {
            round_trip(c, Mode::Indirect)
        }),
        KernelTest::scsi_debug("integrity_direct_write_then_read", |c| {
            round_trip(c, Mode::Direct)
        }),
        KernelTest::scsi_debug("integrity_mmap_write_then_read", |c| {
            round_trip(c, Mode::Mmap)
        }),
    ])
}

fn open(ctx: &Ctx) -> Result<OwnedFd, Failed> {
    let path = CString::new(ctx.device.as_os_str().as_encoded_bytes())?;
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    ensure(
        fd >= 0,
        format!(
            "open {}: {}",
            ctx.device.display(),
            std::io::Error::last_os_error()
        ),
    )?;
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The result of one SG_IO: the header after completion and the sense bytes.
struct Done {
    hdr: sg_io_hdr,
    sense: [u8; 64],
}

/// Issues one SG_IO. `data` may be null (no data, or mmap IO).
fn sg_io(
    fd: &OwnedFd,
    cdb: &[u8],
    direction: i32,
    data: *mut u8,
    len: usize,
    flags: u32,
) -> Result<Done, Failed> {
    let mut cdb = cdb.to_vec();
    let mut sense = [0u8; 64];
    let mut hdr = sg_io_hdr::new();
    hdr.cmd_len = cdb.len() as u8;
    hdr.cmdp = cdb.as_mut_ptr();
    hdr.mx_sb_len = sense.len() as u8;
    hdr.sbp = sense.as_mut_ptr();
    hdr.dxfer_direction = direction;
    hdr.dxferp = data.cast();
    hdr.dxfer_len = len as u32;
    hdr.timeout = 20_000;
    hdr.flags = flags;
    // SAFETY: every pointer in `hdr` is valid for the length it is given with
    // (`cdb`, `sense` and the caller's `data`) until the call returns.
    unsafe { ioctl::sg_io(fd.as_raw_fd(), &mut hdr) }.map_err(|e| format!("SG_IO: {e}"))?;
    Ok(Done { hdr, sense })
}

impl Done {
    fn good(&self) -> bool {
        self.hdr.status == 0
            && self.hdr.host_status == 0
            && self.hdr.info & SG_INFO_OK_MASK == SG_INFO_OK
    }
    fn sense_key(&self) -> u8 {
        match self.sense[0] & 0x7f {
            0x70 | 0x71 => self.sense[2] & 0x0f,
            0x72 | 0x73 => self.sense[1] & 0x0f,
            _ => 0xff,
        }
    }
    fn describe(&self) -> String {
        format!(
            "status {:#x} host {:#x} driver {:#x} info {:#x} sense {:02x?}",
            self.hdr.status,
            self.hdr.host_status,
            self.hdr.driver_status,
            self.hdr.info,
            &self.sense[..self.hdr.sb_len_wr as usize]
        )
    }
}

/// TEST UNIT READY until GOOD, swallowing the power-on UNIT ATTENTION.
fn settle(fd: &OwnedFd) -> Result<(), Failed> {
    for _ in 0..4 {
        let d = sg_io(
            fd,
            &[TEST_UNIT_READY, 0, 0, 0, 0, 0],
            SG_DXFER_NONE,
            std::ptr::null_mut(),
            0,
            0,
        )?;
        if d.good() {
            return Ok(());
        }
        ensure_eq(d.sense_key(), UNIT_ATTENTION, "TEST UNIT READY sense key")?;
    }
    Err("device never became ready".into())
}

fn version_num(ctx: &Ctx) -> Result<(), Failed> {
    let fd = open(ctx)?;
    let mut v = 0;
    // SAFETY: `v` is a valid int for the ioctl to write.
    unsafe { ioctl::sg_get_version_num(fd.as_raw_fd(), &mut v) }?;
    ensure(
        v >= SG_MMAP_MIN_VERSION,
        format!("driver version {v} lacks mmap IO"),
    )?;
    ensure(
        (30000..40000).contains(&v),
        format!("unexpected version {v}"),
    )
}

fn test_unit_ready(ctx: &Ctx) -> Result<(), Failed> {
    let fd = open(ctx)?;
    let first = sg_io(
        &fd,
        &[TEST_UNIT_READY, 0, 0, 0, 0, 0],
        SG_DXFER_NONE,
        std::ptr::null_mut(),
        0,
        0,
    )?;
    if !first.good() {
        // The first media command after power-on gets UNIT ATTENTION, ASC 0x29.
        ensure_eq(first.hdr.status, SAM_STAT_CHECK_CONDITION, "status")?;
        ensure_eq(
            first.hdr.info & SG_INFO_CHECK,
            SG_INFO_CHECK,
            "info CHECK bit",
        )?;
        ensure_eq(first.sense_key(), UNIT_ATTENTION, "sense key")?;
        ensure(first.hdr.sb_len_wr > 0, "sense length written")?;
    }
    settle(&fd)?;
    let again = sg_io(
        &fd,
        &[TEST_UNIT_READY, 0, 0, 0, 0, 0],
        SG_DXFER_NONE,
        std::ptr::null_mut(),
        0,
        0,
    )?;
    ensure(
        again.good(),
        format!("second TEST UNIT READY: {}", again.describe()),
    )
}

fn inquiry(ctx: &Ctx) -> Result<(), Failed> {
    let fd = open(ctx)?;
    let mut buf = [0u8; 96];
    let d = sg_io(
        &fd,
        &[INQUIRY, 0, 0, 0, 96, 0],
        SG_DXFER_FROM_DEV,
        buf.as_mut_ptr(),
        96,
        0,
    )?;
    ensure(d.good(), format!("INQUIRY: {}", d.describe()))?;
    ensure_eq(buf[0] & 0x1f, TYPE_DISK, "peripheral type")?;
    ensure_eq(std::str::from_utf8(&buf[8..16])?.trim(), "Linux", "vendor")?;
    ensure_eq(
        std::str::from_utf8(&buf[16..32])?.trim(),
        "scsi_debug",
        "product",
    )
}

fn capacity(fd: &OwnedFd) -> Result<(u64, usize), Failed> {
    let mut buf = [0u8; 8];
    let d = sg_io(
        fd,
        &[READ_CAPACITY, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        SG_DXFER_FROM_DEV,
        buf.as_mut_ptr(),
        8,
        0,
    )?;
    ensure(d.good(), format!("READ CAPACITY(10): {}", d.describe()))?;
    let last = u32::from_be_bytes(buf[0..4].try_into()?) as u64;
    let block = u32::from_be_bytes(buf[4..8].try_into()?) as usize;
    Ok((last + 1, block))
}

fn read_capacity(ctx: &Ctx) -> Result<(), Failed> {
    let fd = open(ctx)?;
    settle(&fd)?;
    let (blocks, block) = capacity(&fd)?;
    ensure(block == 512 || block == 4096, format!("block size {block}"))?;
    // The test bed loads scsi_debug with dev_size_mb=256.
    ensure_eq(
        blocks * block as u64,
        256 * 1024 * 1024,
        "capacity in bytes",
    )
}

fn reserved_size(ctx: &Ctx) -> Result<(), Failed> {
    let fd = open(ctx)?;
    let mut size = 0;
    // SAFETY: `size` is a valid int for the ioctl to write.
    unsafe { ioctl::sg_get_reserved_size(fd.as_raw_fd(), &mut size) }?;
    ensure(size > 0, "default reserved size")?;
    for want in [64 * 1024, 1024 * 1024, 64 * 1024 * 1024] {
        // SAFETY: `want` is a valid int for the ioctl to read.
        unsafe { ioctl::sg_set_reserved_size(fd.as_raw_fd(), &want) }?;
        // SAFETY: as above.
        unsafe { ioctl::sg_get_reserved_size(fd.as_raw_fd(), &mut size) }?;
        // The kernel clamps to the queue's max transfer (1,310,720 for scsi_debug).
        ensure(
            size > 0 && size <= want,
            format!("asked {want}, granted {size}"),
        )?;
        if want <= 1024 * 1024 {
            ensure_eq(
                size,
                want,
                "a request under the queue limit is granted whole",
            )?;
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Indirect,
    Direct,
    Mmap,
}

/// A page-aligned allocation from mmap, so direct IO can pin it.
struct Pages {
    ptr: *mut u8,
    len: usize,
}

impl Pages {
    fn new(len: usize) -> Result<Self, Failed> {
        // SAFETY: an anonymous private mapping with no address hint.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        ensure(p != libc::MAP_FAILED, "anonymous mmap")?;
        Ok(Self { ptr: p.cast(), len })
    }
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, and owned here.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from a successful mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

fn rw10(op: u8, lba: u32, blocks: u16) -> [u8; 10] {
    let l = lba.to_be_bytes();
    let n = blocks.to_be_bytes();
    [op, 0, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]
}

/// Writes a pattern with `mode` and reads it back with `mode`, byte for byte.
fn round_trip(ctx: &Ctx, mode: Mode) -> Result<(), Failed> {
    let fd = open(ctx)?;
    settle(&fd)?;
    let (_, block) = capacity(&fd)?;
    let len = 256 * 1024;
    let blocks = (len / block) as u16;
    let lba = match mode {
        Mode::Indirect => 1000,
        Mode::Direct => 3000,
        Mode::Mmap => 5000,
    } * 512
        / block as u32;
    let mut want = vec![0u8; len];
    pattern(mode as u64 + 7, lba as u64, block, &mut want);
    let (flags, mut buf, map) = match mode {
        Mode::Indirect => (0, Some(Pages::new(len)?), None),
        Mode::Direct => (SG_FLAG_DIRECT_IO, Some(Pages::new(len)?), None),
        Mode::Mmap => {
            let want_size = len as i32;
            // SAFETY: valid int pointer.
            unsafe { ioctl::sg_set_reserved_size(fd.as_raw_fd(), &want_size) }?;
            let mut got = 0;
            // SAFETY: valid int pointer.
            unsafe { ioctl::sg_get_reserved_size(fd.as_raw_fd(), &mut got) }?;
            ensure(got as usize >= len, format!("reserved size granted {got}"))?;
            // SAFETY: a shared mapping of the fd's reserved buffer, offset 0, within its size.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            ensure(
                p != libc::MAP_FAILED,
                format!(
                    "mmap of the reserved buffer: {}",
                    std::io::Error::last_os_error()
                ),
            )?;
            (SG_FLAG_MMAP_IO, None, Some(Pages { ptr: p.cast(), len }))
        }
    };
    let mut map = map;
    // Write: fill the buffer the kernel will read from.
    let (data, target): (*mut u8, &mut [u8]) = match (&mut buf, &mut map) {
        (Some(b), _) => (b.ptr, b.bytes()),
        (None, Some(m)) => (std::ptr::null_mut(), m.bytes()),
        _ => unreachable!(),
    };
    target.copy_from_slice(&want);
    let w = sg_io(
        &fd,
        &rw10(WRITE_10, lba, blocks),
        SG_DXFER_TO_DEV,
        data,
        len,
        flags,
    )?;
    ensure(w.good(), format!("{mode:?} WRITE(10): {}", w.describe()))?;
    ensure_eq(w.hdr.resid, 0, "write resid")?;
    target.fill(0);
    let r = sg_io(
        &fd,
        &rw10(READ_10, lba, blocks),
        SG_DXFER_FROM_DEV,
        data,
        len,
        flags,
    )?;
    ensure(r.good(), format!("{mode:?} READ(10): {}", r.describe()))?;
    ensure_eq(r.hdr.resid, 0, "read resid")?;
    let how = r.hdr.info & SG_INFO_DIRECT_IO_MASK;
    match mode {
        // allow_dio=1 and page-aligned buffers: the kernel did direct IO.
        Mode::Direct => ensure_eq(how, SG_INFO_DIRECT_IO, "info says direct IO happened")?,
        _ => ensure_eq(how, SG_INFO_INDIRECT_IO, "info says no direct IO")?,
    }
    let got: &[u8] = match (&mut buf, &mut map) {
        (Some(b), _) => b.bytes(),
        (None, Some(m)) => m.bytes(),
        _ => unreachable!(),
    };
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        return Err(format!("{mode:?}: first difference at byte {i}").into());
    }
    Ok(())
}
