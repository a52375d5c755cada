//! scsi_debug faults and the driver's errno rules: each reaches the caller as
//! the right error, and the device stays usable.

use std::os::fd::AsRawFd;
use std::time::Duration;

use sgmap::{cdb::Cdb, BlockIo, Command, Data, Direction, Error, ScsiErrorKind};
use sgmap_sys as sys;
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 7] = [
    KernelTest::scsi_debug(
        "medium_error_has_sense_key_asc_and_information",
        medium_error,
    ),
    KernelTest::scsi_debug("write_protect_gives_data_protect", write_protect),
    KernelTest::scsi_debug("short_read_reports_residual_not_data", short_read),
    KernelTest::scsi_debug(
        "transport_error_is_aborted_command_and_device_recovers",
        transport_error,
    ),
    KernelTest::scsi_debug("dropped_command_times_out_and_device_recovers", timeout),
    KernelTest::device(
        "driver_enomem_einval_emsgsize_rules_hold_under_the_api",
        driver_errnos,
    ),
    KernelTest::device("oversized_transfer_is_refused_before_the_kernel", oversized),
];

use sgmap_testkit::sdebug_opts::{
    MEDIUM_ERR, MEDIUM_ERR_LBA, SHORT_TRANSFER, TIMEOUT, TRANSPORT_ERR,
};

/// After a fault: the device answers, and data written before is intact.
fn still_usable(ctx: &Ctx, lba: u64, want: &[u8]) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let mut got = vec![0u8; want.len()];
    dev.read_blocks(lba, &mut got, BlockIo::indirect())?;
    same(&got, want, "data written before the fault")
}

fn seeded(ctx: &Ctx, lba: u64) -> Result<Vec<u8>, Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let want = data(lba, lba, block, 8 * block);
    dev.write_blocks(lba, &want, BlockIo::indirect())?;
    Ok(want)
}

fn medium_error(ctx: &Ctx) -> Result<(), Failed> {
    let want = seeded(ctx, 400_000)?;
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let _opts = Knob::scsi_debug("opts", MEDIUM_ERR)?;
    let mut buf = vec![0u8; 4 * block];
    let err = dev
        .read_blocks(MEDIUM_ERR_LBA, &mut buf, BlockIo::indirect())
        .err()
        .ok_or("read of 0x1234 succeeded")?;
    let s = err
        .scsi()
        .ok_or_else(|| format!("not a SCSI error: {err}"))?;
    ensure_eq(s.kind, ScsiErrorKind::CheckCondition, "kind")?;
    let sense = s.outcome.sense.as_ref().ok_or("sense")?;
    ensure_eq(sense.key, sgmap::sense::SenseKey::MediumError, "sense key")?;
    ensure_eq(
        (sense.asc, sense.ascq),
        (0x11, 0x00),
        "unrecovered read error",
    )?;
    ensure_eq(
        sense.information,
        Some(MEDIUM_ERR_LBA),
        "information field = failing LBA",
    )?;
    let text = err.report().to_string();
    ensure(
        text.contains(&ctx.device.display().to_string()) && text.contains("READ(10)"),
        text.clone(),
    )?;
    ensure(
        text.contains("MEDIUM ERROR") && text.to_lowercase().contains("unrecovered read error"),
        text,
    )?;
    drop(_opts);
    still_usable(ctx, 400_000, &want)
}

fn write_protect(ctx: &Ctx) -> Result<(), Failed> {
    let want = seeded(ctx, 410_000)?;
    let dev = open(ctx)?;
    let _wp = Knob::scsi_debug_param("wp", 1)?;
    let err = dev
        .write_blocks(410_000, &want, BlockIo::indirect())
        .err()
        .ok_or("write to a protected disk succeeded")?;
    let sense = err
        .scsi()
        .and_then(|s| s.outcome.sense.clone())
        .ok_or_else(|| format!("no sense: {err}"))?;
    ensure_eq(sense.key, sgmap::sense::SenseKey::DataProtect, "sense key")?;
    ensure_eq(sense.asc, 0x27, "write protected ASC")?;
    drop(_wp);
    still_usable(ctx, 410_000, &want)
}

fn short_read(ctx: &Ctx) -> Result<(), Failed> {
    let want = seeded(ctx, 420_000)?;
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let fault = Knob::inject(SHORT_TRANSFER)?;
    let mut buf = vec![0xeeu8; 8 * block];
    let cmd = Command::new(Cdb::read_10(420_000, 8));
    let out = dev.execute(&cmd, Data::FromDevice(&mut buf))?;
    ensure(
        out.resid > 0,
        format!("resid {} after an injected short transfer", out.resid),
    )?;
    ensure_eq(
        out.transferred() + out.resid,
        8 * block,
        "transferred + resid",
    )?;
    same(
        &buf[..out.transferred()],
        &want[..out.transferred()],
        "the part that was transferred",
    )?;
    // The typed helper refuses to present the unfilled tail as data.
    let err = dev
        .read_blocks(420_000, &mut buf, BlockIo::indirect())
        .err()
        .ok_or("short read accepted")?;
    let text = err.report().to_string();
    ensure(text.contains("short transfer"), text)?;
    drop(fault);
    still_usable(ctx, 420_000, &want)
}

fn transport_error(ctx: &Ctx) -> Result<(), Failed> {
    let want = seeded(ctx, 430_000)?;
    let dev = open(ctx)?;
    // scsi_debug injects transport errors only on commands it defers.
    let latency = Knob::latency_ns(20_000)?;
    let fault = Knob::inject(TRANSPORT_ERR)?;
    let mut buf = vec![0u8; want.len()];
    let err = dev
        .read_blocks(430_000, &mut buf, BlockIo::indirect())
        .err()
        .ok_or("read succeeded")?;
    let sense = err
        .scsi()
        .and_then(|s| s.outcome.sense.clone())
        .ok_or_else(|| format!("no sense: {err}"))?;
    ensure_eq(
        sense.key,
        sgmap::sense::SenseKey::AbortedCommand,
        "sense key",
    )?;
    ensure_eq(sense.asc, 0x4b, "data phase error / transport problem ASC")?;
    drop(fault);
    drop(latency);
    still_usable(ctx, 430_000, &want)
}

fn timeout(ctx: &Ctx) -> Result<(), Failed> {
    let want = seeded(ctx, 440_000)?;
    let dev = open(ctx)?;
    let blocks = (4096 / dev.block_size()?) as u16;
    let fault = Knob::inject(TIMEOUT)?;
    let mut buf = vec![0u8; 4096];
    let cmd = Command::new(Cdb::read_10(440_000, blocks)).timeout(Duration::from_millis(500));
    let out = dev.execute(&cmd, Data::FromDevice(&mut buf))?;
    let err = out
        .check(dev.path())
        .err()
        .ok_or("a dropped command succeeded")?;
    let s = err.scsi().ok_or("SCSI error")?;
    ensure(
        matches!(s.kind, ScsiErrorKind::Timeout | ScsiErrorKind::Transport),
        format!("kind {:?}: {err}", s.kind),
    )?;
    drop(fault);
    still_usable(ctx, 440_000, &want)
}

fn driver_errnos(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let fd = dev.as_raw_fd();
    let mut sense = [0u8; 32];
    let mut raw = |cdb: &mut [u8], flags: u32, len: u32, data: *mut u8| -> nix::Result<i32> {
        let mut h = sys::sg_io_hdr::new();
        h.cmd_len = cdb.len() as u8;
        h.cmdp = cdb.as_mut_ptr();
        h.mx_sb_len = 32;
        h.sbp = sense.as_mut_ptr();
        h.dxfer_direction = if len > 0 {
            sys::SG_DXFER_FROM_DEV
        } else {
            sys::SG_DXFER_NONE
        };
        h.dxfer_len = len;
        h.dxferp = data.cast();
        h.flags = flags;
        h.timeout = 10_000;
        // SAFETY: pointers are valid for the given lengths (data null for mmap).
        unsafe { sys::ioctl::sg_io(fd, &mut h) }
    };
    // Default reserved buffer is 32 KiB; an mmap-ed transfer of 64 KiB is ENOMEM.
    ensure_eq(dev.reserved_size()?, 32 * 1024, "default reserved size")?;
    let mut r10 = *Cdb::read_10(0, 128)
        .as_bytes()
        .first_chunk::<10>()
        .ok_or("cdb")?;
    ensure_eq(
        raw(
            &mut r10,
            sys::SG_FLAG_MMAP_IO,
            64 * 1024,
            std::ptr::null_mut(),
        ),
        Err(nix::errno::Errno::ENOMEM),
        "mmap longer than reserved",
    )?;
    ensure_eq(
        raw(
            &mut r10,
            sys::SG_FLAG_MMAP_IO | sys::SG_FLAG_DIRECT_IO,
            4096,
            std::ptr::null_mut(),
        ),
        Err(nix::errno::Errno::EINVAL),
        "mmap and direct together",
    )?;
    let mut short = [0u8; 4];
    ensure_eq(
        raw(&mut short, 0, 0, std::ptr::null_mut()),
        Err(nix::errno::Errno::EMSGSIZE),
        "4-byte CDB",
    )?;
    // What the API says for the same requests: refused before the kernel, or classified.
    let mut m = dev.map_reserved(32 * 1024)?;
    let e = m
        .execute(
            &Command::new(Cdb::read_10(0, 128)),
            Direction::FromDevice,
            64 * 1024,
        )
        .err()
        .ok_or("accepted")?;
    ensure(matches!(e, Error::InvalidRequest { .. }), format!("{e}"))?;
    ensure(
        sgmap::cdb::Cdb::new(&short).is_err(),
        "a 4-byte CDB is refused by the builder",
    )?;
    Ok(())
}

fn oversized(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let mut big = vec![0u8; 256 << 20];
    let cmd = Command::new(Cdb::read_16(0, (256 << 20) / 512)?);
    match dev.execute(&cmd, Data::FromDevice(&mut big)) {
        Err(Error::InvalidRequest { reason, .. }) => ensure(reason.contains("256 MiB"), reason),
        other => Err(format!("expected a refusal, got {other:?}").into()),
    }
}
