//! What a result says happened: a failed command claims no bytes, a short
//! transfer comes back as one (with its outcome and residual), and a block
//! transfer that stops part way says how far it got.

use std::time::Duration;

use sgmap::stream::{self, Options, StreamMode};
use sgmap::{
    cdb::Cdb, BlockIo, Command, Data, Device, DirectBuf, Direction, Error, Mode, Payload, Pool,
    Queue, ScsiErrorKind,
};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 3] = [
    KernelTest::scsi_debug(
        "failed_commands_claim_no_bytes_moved",
        failed_claims_nothing,
    ),
    KernelTest::scsi_debug(
        "short_transfer_comes_back_with_its_outcome_not_as_a_refusal",
        short_is_reported,
    ),
    KernelTest::scsi_debug(
        "split_transfer_failing_on_its_third_command_reports_what_moved",
        third_fails,
    ),
];

use sgmap_testkit::sdebug_opts::{SHORT_TRANSFER, TIMEOUT};

/// A failed command's outcome says 0 bytes moved, whatever its residual,
/// in every way a command is sent: an ILLEGAL REQUEST (LBA out of range,
/// for which the kernel reports resid 0) and a timeout.
fn failed_claims_nothing(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let cap = dev.read_capacity()?;
    let block = cap.block_size as usize;
    let len = 8 * block;
    // Eight blocks starting at the last one: out of range before any data moves.
    let past_end = || Command::new(Cdb::read_16(cap.blocks - 1, 8).expect("in u64 range"));
    let claims = |what: &str, o: &sgmap::Outcome| -> Result<(), Failed> {
        ensure(
            o.failure_kind().is_some(),
            format!("{what}: the command failed"),
        )?;
        ensure_eq(
            o.transferred(),
            0,
            format!(
                "{what}: bytes claimed (requested {}, resid {})",
                o.requested, o.resid
            ),
        )
    };
    let mut buf = vec![0u8; len];
    claims(
        "indirect SG_IO",
        &dev.execute(&past_end(), Data::FromDevice(&mut buf))?,
    )?;
    let mut dbuf = DirectBuf::new(len);
    claims(
        "direct SG_IO",
        &dev.execute(&past_end().direct(), Data::FromDevice(&mut dbuf))?,
    )?;
    let mut q = Queue::new(open(ctx)?)?;
    let t = q
        .submit(&past_end(), Payload::read(vec![0u8; len]))
        .map_err(|r| r.into_parts().0)?;
    let c = q.wait_for(t)?;
    claims("queued", &c.outcome)?;
    ensure_eq(c.bytes().len(), 0, "a failed completion's bytes")?;
    drop(q);
    let mut m = open(ctx)?.map_reserved(len)?;
    claims(
        "mmap SG_IO",
        &m.execute(&past_end(), Direction::FromDevice, len)?,
    )?;
    drop(m);
    let mut pool = Pool::open(&ctx.device, 1, len)?;
    let lease = pool.lease().ok_or("a free buffer")?;
    let t = lease.submit(&past_end(), Direction::FromDevice, len)?;
    let done = pool.wait_for(t)?;
    claims("pooled", done.outcome())?;
    ensure_eq(done.data().len(), 0, "a failed pool completion's data")?;
    drop(done);
    drop(pool);
    // A dropped command that times out.
    let fresh = Device::open(&ctx.device)?;
    fresh.wait_ready()?;
    let fault = Knob::inject(TIMEOUT)?;
    let cmd = Command::new(Cdb::read_10(1000, 8)).timeout(Duration::from_millis(500));
    let out = fresh.execute(&cmd, Data::FromDevice(&mut buf));
    drop(fault);
    claims("timed out", &out?)?;
    open(ctx)?.read_blocks(1000, &mut buf, BlockIo::indirect())?;
    Ok(())
}

/// The error of a transfer that fell short: its outcome, with the residual,
/// and never "refused before asking the kernel".
fn short_error(what: &str, e: &Error, want_len: usize) -> Result<usize, Failed> {
    ensure(
        !matches!(e, Error::InvalidRequest { .. }),
        format!(
            "{what}: a short transfer ran; it is not a refusal: {}",
            e.report()
        ),
    )?;
    let o = e
        .outcome()
        .ok_or_else(|| format!("{what}: no outcome: {}", e.report()))?;
    ensure(
        o.resid > 0 && o.transferred() + o.resid == want_len,
        format!(
            "{what}: outcome {} of {want_len} bytes, resid {}",
            o.transferred(),
            o.resid
        ),
    )?;
    ensure(
        e.report().to_string().contains("short transfer"),
        format!("{what}: says so: {}", e.report()),
    )?;
    Ok(o.transferred())
}

fn short_is_reported(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let lba = 425_000 * 512 / block as u64;
    let len = 8 * block;
    let want = data(44, lba, block, len);
    dev.write_blocks(lba, &want, BlockIo::indirect())?;
    let mut m = open(ctx)?.map_reserved(len)?;
    let mut buf = vec![0u8; len];
    let fault = Knob::inject(SHORT_TRANSFER)?;
    // Through a caller's buffer: the helper's error keeps the outcome and
    // says how much of `buf` is device data.
    let e = dev
        .read_blocks(lba, &mut buf, BlockIo::indirect())
        .err()
        .ok_or("a short read was accepted")?;
    let moved = short_error("read_blocks", &e, len)?;
    let p = e.progress().ok_or("read_blocks: no progress")?;
    ensure_eq((p.bytes, p.commands), (moved, 1), "read_blocks progress")?;
    same(&buf[..moved], &want[..moved], "the part that moved")?;
    // mmap-ed: the same.
    let e = m
        .read_blocks(lba, (len / block) as u32)
        .err()
        .ok_or("a short mmap read was accepted")?;
    ensure(
        matches!(e, Error::ShortTransfer { .. }),
        format!("mmap read_blocks: {e:?}"),
    )?;
    short_error("mmap read_blocks", &e, len)?;
    // A stream: the same error.
    let opts = Options::new(StreamMode::Indirect)
        .transfer_bytes(len)
        .depth(1);
    let e = stream::read(&ctx.device, lba..lba + 8, opts, |_, _| Ok::<_, Error>(()))
        .err()
        .ok_or("a short stream read was accepted")?;
    short_error("stream read", &e, len)?;
    drop(fault);
    drop(m);
    dev.read_blocks(lba, &mut buf, BlockIo::indirect())?;
    same(&buf, &want, "after the fault")
}

/// A split transfer whose third command fails: the error says what the
/// first two moved, and the failure itself is under it.
fn third_fails(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let cap = dev.read_capacity()?;
    let block = cap.block_size as usize;
    let chunk = dev.max_transfer() / block * block;
    let len = 3 * chunk;
    // Past the end of the disk: the third command is out of range.
    let start = cap.blocks - ((2 * chunk + chunk / 2) / block) as u64;
    let want = data(45, start, block, 2 * chunk);
    dev.write_blocks(start, &want, BlockIo::indirect())?;
    let mut buf = vec![0u8; len];
    let e = dev
        .read_blocks(start, &mut buf, BlockIo::indirect())
        .err()
        .ok_or("a read past the end succeeded")?;
    let p = e
        .progress()
        .ok_or_else(|| format!("no progress: {}", e.report()))?;
    ensure_eq(
        (p.bytes, p.commands, p.mode),
        (2 * chunk, 3, Mode::Indirect),
        "read progress (bytes, commands, mode)",
    )?;
    same(&buf[..p.bytes], &want, "the two commands that moved")?;
    let s = e
        .scsi()
        .ok_or_else(|| format!("no SCSI failure: {}", e.report()))?;
    ensure_eq(
        s.kind,
        ScsiErrorKind::CheckCondition,
        "the failure under it",
    )?;
    ensure_eq(
        e.outcome().map(|o| o.transferred()),
        Some(0),
        "the failed command's bytes",
    )?;
    let text = e.report().to_string();
    ensure(
        text.contains(&format!("{} of {len} bytes", 2 * chunk)) && text.contains("ILLEGAL REQUEST"),
        format!("the report says both: {text}"),
    )?;
    // Writing: the same, and the third command's blocks are not touched.
    let e = dev
        .write_blocks(start, &buf, BlockIo::indirect())
        .err()
        .ok_or("a write past the end succeeded")?;
    let p = e.progress().ok_or("write: no progress")?;
    ensure_eq((p.bytes, p.commands), (2 * chunk, 3), "write progress")?;
    // A timeout on the third command (scsi_debug drops every third).
    let timeout = BlockIo::indirect().timeout(Duration::from_millis(500));
    let lba = 100_000 * 512 / block as u64;
    let e = {
        let _stats = Knob::scsi_debug("statistics", 1)?;
        let _nth = Knob::scsi_debug("every_nth", 3)?;
        let _opts = Knob::scsi_debug("opts", TIMEOUT)?;
        dev.read_blocks(lba, &mut buf, timeout).err()
    }
    .ok_or("a read with a dropped command succeeded")?;
    let p = e
        .progress()
        .ok_or_else(|| format!("timeout: no progress: {}", e.report()))?;
    ensure_eq((p.bytes, p.commands), (2 * chunk, 3), "timeout progress")?;
    ensure(
        matches!(
            e.scsi().map(|s| s.kind),
            Some(ScsiErrorKind::Timeout | ScsiErrorKind::Transport)
        ),
        format!("timed out: {}", e.report()),
    )?;
    ensure_eq(
        e.outcome().map(|o| o.transferred()),
        Some(0),
        "a timed-out command's bytes",
    )?;
    open(ctx)?.read_blocks(lba, &mut buf[..chunk], BlockIo::indirect())?;
    Ok(())
}
