//! Typed helpers for the common commands: readiness, INQUIRY, READ
//! CAPACITY, and block reads and writes in each transfer mode. Unlike
//! `sgmap_execute`, they retry a command that got UNIT ATTENTION (up to 3
//! times) and turn any SCSI failure into `SGMAP_SCSI_ERROR`.

use std::ffi::{c_char, c_void};

use sgmap::{BlockIo, Direction, Mode};

use crate::args::{self, fill_array, Out};
use crate::command::{asked_mode, fallback_to_c, mode_to_c, sgmap_fallback, sgmap_mode, Asked};
use crate::device::{handle, sgmap_device, unknown_block_size};
use crate::error::{guard, sgmap_result, Fail};

/// Sends TEST UNIT READY once. `SGMAP_OK` when the device is ready; a UNIT
/// ATTENTION (after power on or reset) gives `SGMAP_SCSI_ERROR` with the
/// failure class `SGMAP_FAILURE_UNIT_ATTENTION` in the last error.
///
/// # Safety
///
/// `dev` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sgmap_test_unit_ready(dev: *mut sgmap_device) -> sgmap_result {
    guard("sgmap_test_unit_ready", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        dev.with_device(|d| Ok(d.test_unit_ready()?))
    })
}

/// Sends TEST UNIT READY until the device answers GOOD, passing over the
/// UNIT ATTENTIONs a device reports after power on or reset. Call it once
/// after opening.
///
/// # Safety
///
/// `dev` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sgmap_wait_ready(dev: *mut sgmap_device) -> sgmap_result {
    guard("sgmap_wait_ready", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        dev.with_device(|d| Ok(d.wait_ready()?))
    })
}

/// Standard INQUIRY data. The strings are trimmed, non-printable bytes
/// shown as '?', and NUL-terminated.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sgmap_inquiry_data {
    /// Peripheral qualifier: 0 = a device of this type is connected.
    pub peripheral_qualifier: u8,
    /// Peripheral device type: 0 disk, 1 tape, 5 CD/DVD, ...
    pub device_type: u8,
    /// Removable medium.
    pub removable: bool,
    /// The SPC version the device claims (6 = SPC-4, 7 = SPC-5).
    pub version: u8,
    /// Response data format (2 for current devices).
    pub response_data_format: u8,
    /// T10 vendor identification (8 characters at most).
    pub vendor: [c_char; 9],
    /// Product identification (16 characters at most).
    pub product: [c_char; 17],
    /// Product revision level (4 characters at most).
    pub revision: [c_char; 5],
}

/// Sends INQUIRY and decodes the standard data into `*out`.
///
/// On a mapped handle this gives `SGMAP_WRONG_STATE`, unsent: its data
/// would pass through the mapped reserved buffer (see `sgmap_device`). Call
/// it before `sgmap_device_map_reserved`, or on another handle.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `sgmap_inquiry_data`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_inquiry(
    dev: *mut sgmap_device,
    out: *mut sgmap_inquiry_data,
) -> sgmap_result {
    guard("sgmap_inquiry", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let inq = dev.with_data("sgmap_inquiry", |d| Ok(d.inquiry()?))?;
        let mut c = sgmap_inquiry_data {
            peripheral_qualifier: inq.peripheral_qualifier,
            device_type: inq.device_type,
            removable: inq.removable,
            version: inq.version,
            response_data_format: inq.response_data_format,
            vendor: [0; 9],
            product: [0; 17],
            revision: [0; 5],
        };
        fill_array(&mut c.vendor, &inq.vendor);
        fill_array(&mut c.product, &inq.product);
        fill_array(&mut c.revision, &inq.revision);
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(c) };
        Ok(())
    })
}

/// Reads a VPD page (INQUIRY with EVPD) into `buf` and stores the page's
/// length in `*out_len` (when not NULL). When the page is longer than
/// `len`, the first `len` bytes are copied and the result is
/// `SGMAP_BUFFER_TOO_SMALL`.
///
/// On a mapped handle this gives `SGMAP_WRONG_STATE`, unsent: its data
/// would pass through the mapped reserved buffer (see `sgmap_device`). Call
/// it before `sgmap_device_map_reserved`, or on another handle.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `buf` must be NULL or valid for
/// writes of `len` bytes; `out_len` must be NULL or valid for a write of
/// one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_inquiry_vpd(
    dev: *mut sgmap_device,
    page: u8,
    buf: *mut u8,
    len: usize,
    out_len: *mut usize,
) -> sgmap_result {
    guard("sgmap_inquiry_vpd", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out_len = Out::optional(out_len, "out_len")?;
        // SAFETY: NULL or valid for `len` bytes per the caller's contract.
        let buf = unsafe { args::bytes_mut(buf, len, "buf") }?;
        let data = dev.with_data("sgmap_inquiry_vpd", |d| Ok(d.inquiry_vpd(page)?))?;
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        if let Some(o) = out_len {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(data.len()) };
        }
        if n < data.len() {
            return Err(Fail::new(
                sgmap_result::SGMAP_BUFFER_TOO_SMALL,
                format!(
                    "VPD page {page:#04x} has {} bytes, the buffer {len}",
                    data.len()
                ),
            ));
        }
        Ok(())
    })
}

/// The capacity of a block device.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sgmap_capacity {
    /// Number of logical blocks (the last LBA + 1).
    pub blocks: u64,
    /// Logical block length in bytes.
    pub block_size: u32,
    /// The capacity in bytes (`blocks * block_size`).
    pub bytes: u64,
    /// Logical blocks per physical block, as a power of two.
    pub logical_blocks_per_physical_exponent: u8,
    /// The first LBA aligned to a physical block.
    pub lowest_aligned_lba: u16,
    /// Protection information is enabled.
    pub protection_enabled: bool,
    /// The protection type (1 to 8) when enabled, else 0.
    pub protection_type: u8,
    /// Thin provisioned (LBPME).
    pub thin_provisioned: bool,
    /// Unmapped blocks read as zeros (LBPRZ).
    pub unmapped_read_zeros: bool,
}

/// Sends READ CAPACITY(10), and (16) when the device is too large for it,
/// and decodes the answer into `*out`. The block size is remembered for the
/// block helpers.
///
/// On a mapped handle this gives `SGMAP_WRONG_STATE`, unsent: its data
/// would pass through the mapped reserved buffer (see `sgmap_device`). Call
/// it before `sgmap_device_map_reserved`, or on another handle.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `sgmap_capacity`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_read_capacity(
    dev: *mut sgmap_device,
    out: *mut sgmap_capacity,
) -> sgmap_result {
    guard("sgmap_read_capacity", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let cap = dev.with_data("sgmap_read_capacity", |d| Ok(d.read_capacity()?))?;
        let c = sgmap_capacity {
            blocks: cap.blocks,
            block_size: cap.block_size,
            bytes: cap.bytes(),
            logical_blocks_per_physical_exponent: cap.logical_blocks_per_physical_exponent,
            lowest_aligned_lba: cap.lowest_aligned_lba,
            protection_enabled: cap.protection_enabled,
            protection_type: cap.protection_type.unwrap_or(0),
            thin_provisioned: cap.thin_provisioned,
            unmapped_read_zeros: cap.unmapped_read_zeros,
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(c) };
        Ok(())
    })
}

/// Stores the logical block size in `*out` (READ CAPACITY on first use).
/// On a mapped handle no command is sent: the answer is the block size
/// learnt before or while mapping, or `SGMAP_WRONG_STATE` when it is not
/// known.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `out` must be NULL or valid for a
/// write of one `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_block_size(dev: *mut sgmap_device, out: *mut u32) -> sgmap_result {
    guard("sgmap_block_size", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        let out = Out::new(out, "out")?;
        let b = dev.block_size()?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(b) };
        Ok(())
    })
}

/// Sends SYNCHRONIZE CACHE(10) for the whole device.
///
/// # Safety
///
/// `dev` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn sgmap_synchronize_cache(dev: *mut sgmap_device) -> sgmap_result {
    guard("sgmap_synchronize_cache", || {
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        dev.with_device(|d| Ok(d.synchronize_cache()?))
    })
}

/// What a block transfer did, across all its commands.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sgmap_transfer {
    /// Bytes moved.
    pub bytes: usize,
    /// Commands sent (a long transfer is split at the device's limit).
    pub commands: usize,
    /// The mode that really ran (`SGMAP_MODE_*`); if commands differed, the
    /// least direct one.
    pub mode: sgmap_mode,
    /// Why direct IO fell back to indirect (`SGMAP_FALLBACK_*`), when it did.
    pub fallback: sgmap_fallback,
}

fn transfer_to_c(t: &sgmap::Transfer) -> sgmap_transfer {
    sgmap_transfer {
        bytes: t.bytes,
        commands: t.commands,
        mode: mode_to_c(t.mode),
        fallback: fallback_to_c(t.fallback),
    }
}

/// Why a block transfer failed, and what it did before (for the caller's
/// `sgmap_transfer`): the bytes that really moved and the commands sent.
struct Stopped {
    fail: Fail,
    progress: Option<sgmap_transfer>,
}

impl From<Fail> for Stopped {
    fn from(fail: Fail) -> Self {
        Stopped {
            fail,
            progress: None,
        }
    }
}

impl From<sgmap::Error> for Stopped {
    fn from(e: sgmap::Error) -> Self {
        Stopped {
            progress: e.progress().as_ref().map(transfer_to_c),
            fail: Fail::from(e),
        }
    }
}

/// A block transfer in one of the three modes.
///
/// # Safety
///
/// For indirect and direct IO, `buf` must be NULL or valid for reads (and,
/// reading from the device, writes) of `len` bytes, untouched until this
/// returns.
unsafe fn blocks(
    dev: &sgmap_device,
    dir: Direction,
    lba: u64,
    buf: *mut u8,
    len: usize,
    mode: sgmap_mode,
) -> Result<sgmap_transfer, Stopped> {
    let mode = asked_mode(mode)?;
    if len == 0 {
        return Err(Fail::invalid("len is 0; transfer a whole, non-zero number of blocks").into());
    }
    if mode == Asked::Mmap {
        if !buf.is_null() {
            return Err(Fail::invalid(
                "with SGMAP_MODE_MMAP the data is in the mapped buffer: pass buf = NULL",
            )
            .into());
        }
        let what = match dir {
            Direction::ToDevice => "sgmap_write_blocks(SGMAP_MODE_MMAP)",
            _ => "sgmap_read_blocks(SGMAP_MODE_MMAP)",
        };
        let done = dev.with_buffer(what, |m| {
            let block = m.block_size().map_err(|_| unknown_block_size(m.path()))? as usize;
            if len % block != 0 {
                return Err(Fail::new(
                    sgmap_result::SGMAP_INVALID_REQUEST,
                    format!(
                        "{}: {len} bytes is not a whole number of {block}-byte blocks",
                        m.path().display()
                    ),
                ));
            }
            let blocks = u32::try_from(len / block).map_err(|_| {
                Fail::new(
                    sgmap_result::SGMAP_INVALID_REQUEST,
                    format!(
                        "{}: {len} bytes do not fit the mapped buffer of {} bytes",
                        m.path().display(),
                        m.len()
                    ),
                )
            })?;
            Ok(match dir {
                Direction::ToDevice => m.write_blocks(lba, blocks).map(|o| o.transferred()),
                _ => m.read_blocks(lba, blocks).map(|d| d.len()),
            })
        })?;
        return Ok(sgmap_transfer {
            bytes: done?,
            commands: 1,
            mode: mode_to_c(Mode::Mmap),
            fallback: 0,
        });
    }
    let io = if mode == Asked::Direct {
        BlockIo::direct()
    } else {
        BlockIo::indirect()
    };
    let (read, write) = if mode == Asked::Direct {
        (
            "sgmap_read_blocks(SGMAP_MODE_DIRECT)",
            "sgmap_write_blocks(SGMAP_MODE_DIRECT)",
        )
    } else {
        (
            "sgmap_read_blocks(SGMAP_MODE_INDIRECT)",
            "sgmap_write_blocks(SGMAP_MODE_INDIRECT)",
        )
    };
    let t = match dir {
        Direction::ToDevice => {
            // SAFETY: NULL or valid for reads of `len` bytes per the caller's contract.
            let data = unsafe { args::bytes(buf.cast_const(), len, "buf") }?;
            dev.with_data(write, |d| Ok(d.write_blocks(lba, data, io)))?
        }
        _ => {
            // SAFETY: NULL or valid for writes of `len` bytes per the caller's contract.
            let data = unsafe { args::bytes_mut(buf, len, "buf") }?;
            dev.with_data(read, |d| Ok(d.read_blocks(lba, data, io)))?
        }
    }?;
    Ok(transfer_to_c(&t))
}

/// Runs a block transfer for `sgmap_read_blocks` and `sgmap_write_blocks`:
/// `*out` (when not NULL) gets what was done, also when it failed part way.
fn blocks_out(
    out: Option<Out<sgmap_transfer>>,
    run: impl FnOnce() -> Result<sgmap_transfer, Stopped>,
) -> Result<(), Fail> {
    let (t, r) = match run() {
        Ok(t) => (t, Ok(())),
        Err(s) => (s.progress.unwrap_or_default(), Err(s.fail)),
    };
    if let Some(o) = &out {
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { o.put(t) };
    }
    r
}

/// Reads `len` bytes (a whole number of blocks) starting at block `lba`,
/// retrying a UNIT ATTENTION and splitting a transfer longer than the
/// device takes in one command.
///
/// `mode` is `SGMAP_MODE_INDIRECT` or `SGMAP_MODE_DIRECT` to read into
/// `buf` (page-align it for direct IO), or `SGMAP_MODE_MMAP` with `buf` =
/// NULL to read into the start of the mapped reserved buffer (`len` at most
/// its length; get the bytes with `sgmap_buffer`). `*out` (when not NULL)
/// says what happened, including the mode that really ran.
///
/// A short transfer is an error (`SGMAP_SHORT_TRANSFER`, with the
/// command's outcome and residual in the last error): the rest of the
/// buffer holds no device data. When the transfer stops part way (a command
/// fails or falls short after others moved their data), `*out` still says
/// what was done: the bytes that really moved, from the start of `buf`, and
/// the commands sent, the failed one included; a failed command's bytes
/// never count.
///
/// On a mapped handle only `SGMAP_MODE_MMAP` runs (the other modes give
/// `SGMAP_WRONG_STATE`, unsent); it lends the buffer to the calling thread
/// until `sgmap_buffer_release` (see `sgmap_device`). It sends nothing but
/// the READ itself.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `buf` must be NULL or valid for
/// writes of `len` bytes, untouched until this returns; `out` must be NULL
/// or valid for a write of one `sgmap_transfer`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_read_blocks(
    dev: *mut sgmap_device,
    lba: u64,
    buf: *mut c_void,
    len: usize,
    mode: sgmap_mode,
    out: *mut sgmap_transfer,
) -> sgmap_result {
    guard("sgmap_read_blocks", || {
        let out = Out::optional(out, "out")?;
        if let Some(o) = &out {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(sgmap_transfer::default()) };
        }
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        // SAFETY: `buf` per the caller's contract.
        blocks_out(out, || unsafe {
            blocks(dev, Direction::FromDevice, lba, buf.cast(), len, mode)
        })
    })
}

/// Writes `len` bytes (a whole number of blocks) starting at block `lba`,
/// retrying a UNIT ATTENTION and splitting a transfer longer than the
/// device takes in one command.
///
/// `mode` is `SGMAP_MODE_INDIRECT` or `SGMAP_MODE_DIRECT` to write from
/// `buf`, or `SGMAP_MODE_MMAP` with `buf` = NULL to write from the start of
/// the mapped reserved buffer (fill it first). `*out` (when not NULL) says
/// what happened, also when it failed part way (as for `sgmap_read_blocks`).
///
/// On a mapped handle only `SGMAP_MODE_MMAP` runs (the other modes give
/// `SGMAP_WRONG_STATE`, unsent). Fill the buffer while holding its lease
/// (`sgmap_buffer_lease`) when other threads share the handle. On a handle
/// opened with `SGMAP_OPEN_READ_ONLY` it gives `SGMAP_INVALID_REQUEST`,
/// unsent, whoever the caller is.
///
/// # Safety
///
/// `dev` must be NULL or a live handle; `buf` must be NULL or valid for
/// reads of `len` bytes, unchanged until this returns; `out` must be NULL
/// or valid for a write of one `sgmap_transfer`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_write_blocks(
    dev: *mut sgmap_device,
    lba: u64,
    buf: *const c_void,
    len: usize,
    mode: sgmap_mode,
    out: *mut sgmap_transfer,
) -> sgmap_result {
    guard("sgmap_write_blocks", || {
        let out = Out::optional(out, "out")?;
        if let Some(o) = &out {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(sgmap_transfer::default()) };
        }
        // SAFETY: NULL or a live handle per the caller's contract.
        let dev = unsafe { handle(dev) }?;
        // SAFETY: `buf` per the caller's contract; only read for writes.
        blocks_out(out, || unsafe {
            blocks(
                dev,
                Direction::ToDevice,
                lba,
                buf.cast_mut().cast(),
                len,
                mode,
            )
        })
    })
}
