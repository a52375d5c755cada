//! The streaming helper: every mode, depth and transfer size moves the right
//! bytes, delivered in LBA order whatever order the device finishes in.

use std::ops::Range;

use std::time::{Duration, Instant};

use sgmap::stream::{self, Options, StreamMode, Totals, Transfers, Until};
use sgmap::{Error, Mode, ScsiErrorKind};
use sgmap_testkit::{ensure, ensure_eq, pattern, Ctx, Failed, KernelTest, Knob};

use crate::common::open;

pub(crate) const TESTS: [KernelTest; 7] = [
    KernelTest::scsi_debug(
        "stream_integrity_every_mode_depth_and_transfer_in_order",
        every_mode,
    ),
    KernelTest::scsi_debug(
        "stream_delivers_in_lba_order_when_the_device_completes_out_of_order",
        in_order,
    ),
    KernelTest::scsi_debug(
        "stream_stops_at_a_medium_error_after_delivering_what_came_before",
        medium_error,
    ),
    KernelTest::scsi_debug(
        "stream_callback_error_is_returned_and_nothing_leaks",
        callback_error,
    ),
    KernelTest::device(
        "stream_refuses_bad_ranges_sizes_and_depths_and_writes_to_a_writer",
        refusals,
    ),
    KernelTest::scsi_debug(
        "stream_cycle_keeps_depth_in_flight_across_wraps_until_its_limit",
        cycle_keeps_depth,
    ),
    KernelTest::scsi_debug(
        "stream_cycle_writes_rewrite_the_span_and_extents_leaving_the_device_are_refused",
        cycle_writes,
    ),
];

/// Byte offset of the stream tests' region.
const BASE: u64 = 218 << 20;

/// The blocks of `bytes` bytes at `offset` past `BASE`.
fn blocks(block: usize, offset: u64, bytes: u64) -> Range<u64> {
    let start = (BASE + offset) / block as u64;
    start..start + bytes / block as u64
}

/// Checks a read stream's deliveries: contiguous, in order, the pattern of `seed`.
struct Checker {
    seed: u64,
    block: usize,
    next: u64,
    calls: u64,
    scratch: Vec<u8>,
}

impl Checker {
    fn new(seed: u64, block: usize, start: u64) -> Self {
        Checker {
            seed,
            block,
            next: start,
            calls: 0,
            scratch: Vec::new(),
        }
    }

    fn take(&mut self, lba: u64, data: &[u8]) -> Result<(), Error> {
        let fail = |reason: String| Error::InvalidRequest {
            device: "test".into(),
            command: "check".into(),
            reason,
        };
        if lba != self.next {
            return Err(fail(format!("delivered LBA {lba}, expected {}", self.next)));
        }
        if data.is_empty() || data.len() % self.block != 0 {
            return Err(fail(format!("{} bytes is not whole blocks", data.len())));
        }
        self.scratch.resize(data.len(), 0);
        pattern(self.seed, lba, self.block, &mut self.scratch);
        if let Some(i) = data.iter().zip(&self.scratch).position(|(a, b)| a != b) {
            return Err(fail(format!("LBA {lba}: first difference at byte {i}")));
        }
        self.next += (data.len() / self.block) as u64;
        self.calls += 1;
        Ok(())
    }
}

fn write_pattern(
    path: &std::path::Path,
    range: Range<u64>,
    opts: Options,
    seed: u64,
    block: usize,
) -> Result<Totals, Error> {
    let mut expect = range.start;
    stream::write(path, range, opts, |lba, buf: &mut [u8]| {
        if lba != expect {
            return Err(Error::InvalidRequest {
                device: path.to_path_buf(),
                command: "fill".into(),
                reason: format!("asked to fill LBA {lba}, expected {expect}"),
            });
        }
        expect += (buf.len() / block) as u64;
        pattern(seed, lba, block, buf);
        Ok(())
    })
}

fn check_totals(
    what: &str,
    t: &Totals,
    mode: StreamMode,
    depth: usize,
    bytes: u64,
    block: usize,
) -> Result<(), Failed> {
    ensure_eq(t.bytes, bytes, format!("{what}: bytes"))?;
    ensure_eq(t.mode, mode.mode(), format!("{what}: mode that ran"))?;
    ensure_eq(t.fallback, None, format!("{what}: fallback"))?;
    ensure(
        t.transfer_bytes > 0 && t.transfer_bytes % block == 0,
        format!("{what}: transfer {}", t.transfer_bytes),
    )?;
    ensure_eq(
        t.commands,
        bytes.div_ceil(t.transfer_bytes as u64),
        format!("{what}: commands"),
    )?;
    let want_depth = if mode == StreamMode::Mmap {
        depth
    } else {
        depth.min(16)
    };
    ensure_eq(t.depth, want_depth, format!("{what}: depth"))?;
    ensure_eq(
        t.peak_in_flight as u64,
        (want_depth as u64).min(t.commands),
        format!("{what}: the queue was kept full"),
    )
}

fn every_mode(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let max = dev.max_transfer();
    drop(dev);
    // An odd length, so the last transfer is shorter than the others.
    let bytes = (3 << 20) + 5 * block as u64;
    let transfers = [4096usize, 64 * 1024, 12 * block, max, 1 << 30];
    let depths = [1usize, 4, 16];
    let mut runs = 0;
    for (i, wmode) in StreamMode::ALL.iter().enumerate() {
        for (j, &depth) in depths.iter().enumerate() {
            let rmode = StreamMode::ALL[(i + j + 1) % 3];
            let wt = transfers[(i + j) % transfers.len()].max(block);
            let rt = transfers[(i + 2 * j + 1) % transfers.len()].max(block);
            let seed = 7000 + runs;
            let range = blocks(block, (runs % 3) * (4 << 20), bytes);
            let w = write_pattern(
                &ctx.device,
                range.clone(),
                Options::new(*wmode).transfer_bytes(wt).depth(depth),
                seed,
                block,
            )?;
            check_totals(
                &format!("write {wmode} depth {depth} transfer {wt}"),
                &w,
                *wmode,
                depth,
                bytes,
                block,
            )?;
            let mut c = Checker::new(seed, block, range.start);
            let r = stream::read(
                &ctx.device,
                range.clone(),
                Options::new(rmode).transfer_bytes(rt).depth(depth),
                |lba, data: &[u8]| c.take(lba, data),
            )?;
            check_totals(
                &format!("read {rmode} depth {depth} transfer {rt}"),
                &r,
                rmode,
                depth,
                bytes,
                block,
            )?;
            ensure_eq(c.next, range.end, "read reached the end")?;
            ensure_eq(c.calls, r.commands, "one delivery per command")?;
            println!(
                "{wmode} write d{depth} {}B x{} -> {rmode} read d{depth} {}B x{}: ok",
                w.transfer_bytes, w.commands, r.transfer_bytes, r.commands
            );
            runs += 1;
        }
    }
    ensure_eq(runs, 9, "runs")
}

fn in_order(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let bytes = 2 << 20;
    let range = blocks(block, 12 << 20, bytes);
    write_pattern(
        &ctx.device,
        range.clone(),
        Options::new(StreamMode::Indirect).transfer_bytes(1 << 20),
        8100,
        block,
    )?;
    // Random latencies up to 1 ms: completions come in any order.
    let _latency = Knob::latency_ns(1_000_000)?;
    let _random = Knob::scsi_debug("random", 1)?;
    for mode in StreamMode::ALL {
        let mut c = Checker::new(8100, block, range.start);
        let opts = Options::new(mode).transfer_bytes(8 * block).depth(16);
        let t = stream::read(&ctx.device, range.clone(), opts, |lba, data: &[u8]| {
            c.take(lba, data)
        })?;
        check_totals(mode.name(), &t, mode, 16, bytes, block)?;
        ensure_eq(c.next, range.end, "all delivered")?;
    }
    Ok(())
}

fn medium_error(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    drop(dev);
    let start = 0x1234 - 64;
    let range = start..0x1234 + 64;
    write_pattern(
        &ctx.device,
        range.clone(),
        Options::new(StreamMode::Indirect),
        8200,
        block,
    )?;
    let _latency = Knob::latency_ns(100_000)?;
    let _opts = Knob::scsi_debug("opts", sgmap_testkit::sdebug_opts::MEDIUM_ERR)?;
    for mode in StreamMode::ALL {
        let mut c = Checker::new(8200, block, start);
        let opts = Options::new(mode).transfer_bytes(8 * block).depth(4);
        let err = stream::read(&ctx.device, range.clone(), opts, |lba, data: &[u8]| {
            c.take(lba, data)
        })
        .err()
        .ok_or_else(|| format!("{mode}: a read over 0x1234 succeeded"))?;
        let s = err
            .scsi()
            .ok_or_else(|| format!("{mode}: not a SCSI error: {err}"))?;
        ensure_eq(s.kind, ScsiErrorKind::CheckCondition, "kind")?;
        ensure_eq(
            s.outcome.sense.as_ref().and_then(|s| s.information),
            Some(0x1234),
            "failing LBA",
        )?;
        ensure_eq(
            c.next,
            0x1234,
            format!("{mode}: everything before the error was delivered, in order"),
        )?;
    }
    Ok(())
}

#[derive(Debug)]
enum Stop {
    Enough,
    Sg(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Sg(e)
    }
}

/// The stream ended with the callback's own error.
fn stopped(mode: StreamMode, what: &str, r: Result<Totals, Stop>) -> Result<(), Failed> {
    match r {
        Err(Stop::Enough) => Ok(()),
        Err(Stop::Sg(e)) => Err(format!("{mode} {what}: {e}").into()),
        Ok(t) => Err(format!("{mode} {what} ran to the end: {t:?}").into()),
    }
}

fn fds() -> Result<usize, Failed> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

fn callback_error(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let range = blocks(block, 15 << 20, 1 << 20);
    let _latency = Knob::latency_ns(100_000)?;
    let before = fds()?;
    for mode in StreamMode::ALL {
        let mut calls = 0;
        let r = stream::read(
            &ctx.device,
            range.clone(),
            Options::new(mode).transfer_bytes(16 * block).depth(8),
            |_, _: &[u8]| {
                calls += 1;
                if calls == 3 {
                    Err(Stop::Enough)
                } else {
                    Ok(())
                }
            },
        );
        stopped(mode, "read", r)?;
        ensure_eq(calls, 3, "no call after the error")?;
        let mut fills = 0;
        let w = stream::write(
            &ctx.device,
            range.clone(),
            Options::new(mode).transfer_bytes(16 * block).depth(8),
            |_, _: &mut [u8]| {
                fills += 1;
                if fills == 5 {
                    Err(Stop::Enough)
                } else {
                    Ok(())
                }
            },
        );
        stopped(mode, "write", w)?;
    }
    ensure_eq(fds()?, before, "open fds after streams that stopped early")
}

fn refusals(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let cap = dev.read_capacity()?;
    let block = cap.block_size as usize;
    drop(dev);
    let nothing = |_: u64, _: &[u8]| Ok::<(), Error>(());
    let cases = [
        (
            cap.blocks - 4..cap.blocks + 4,
            Options::default(),
            "within the device",
        ),
        (
            0..8,
            Options::default().transfer_bytes(block - 1),
            "less than one",
        ),
        (0..8, Options::default().depth(0), "depth of 0"),
    ];
    for (range, opts, needle) in cases {
        match stream::read(&ctx.device, range.clone(), opts, nothing) {
            Err(Error::InvalidRequest { reason, device, .. }) => {
                ensure(reason.contains(needle), format!("{range:?}: {reason}"))?;
                ensure_eq(device, ctx.device.clone(), "error names the device")?;
            }
            other => return Err(format!("{range:?} {opts:?}: {other:?}").into()),
        }
    }
    // An empty range moves nothing.
    let t = stream::read(&ctx.device, 10..10, Options::default(), nothing)?;
    ensure_eq((t.bytes, t.commands), (0, 0), "empty range")?;
    // To a writer: the same bytes a synchronous read gives.
    let range = 0..(256 * 1024 / block) as u64;
    let mut out = Vec::new();
    let t = stream::read_to_writer(
        &ctx.device,
        range.clone(),
        Options::new(StreamMode::Direct)
            .depth(4)
            .transfer_bytes(32 * 1024),
        &mut out,
    )?;
    ensure_eq(t.bytes, 256 * 1024, "bytes")?;
    let mut want = vec![0u8; 256 * 1024];
    open(ctx)?.read_blocks(0, &mut want, sgmap::BlockIo::indirect())?;
    ensure(out == want, "writer got the device's bytes")?;
    ensure_eq(t.mode, Mode::Direct, "mode")
}

/// Checks every delivery of a read cycling over `span` against the pattern
/// of `seed`, in the order [`Transfers`] walks it.
fn check_cycle(
    seed: u64,
    block: usize,
    want: &mut Transfers<std::iter::Repeat<Range<u64>>>,
    lba: u64,
    data: &[u8],
) -> Result<(), Error> {
    let fail = |reason: String| Error::InvalidRequest {
        device: "test".into(),
        command: "check".into(),
        reason,
    };
    let (at, blocks) = want
        .next()
        .ok_or_else(|| fail("a delivery past the walk's end".into()))?;
    if (lba, data.len()) != (at, blocks as usize * block) {
        return Err(fail(format!(
            "delivered {} bytes at LBA {lba}, expected {blocks} blocks at {at}",
            data.len()
        )));
    }
    let mut scratch = vec![0u8; data.len()];
    pattern(seed, lba, block, &mut scratch);
    if let Some(i) = data.iter().zip(&scratch).position(|(a, b)| a != b) {
        return Err(fail(format!("LBA {lba}: first difference at byte {i}")));
    }
    Ok(())
}

/// Over a span of one transfer, a cycling stream at depth 8 keeps eight
/// commands in flight across every wrap-around (the queue's or pool's
/// peak), delivers the right bytes each time, stops at its command limit;
/// and with latency, in the same time, a depth-8 cycle finishes several
/// times the commands a depth-1 cycle does.
fn cycle_keeps_depth(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let transfer = 8 * block;
    let span = blocks(block, 20 << 20, transfer as u64);
    write_pattern(
        &ctx.device,
        span.clone(),
        Options::new(StreamMode::Indirect),
        8300,
        block,
    )?;
    let _latency = Knob::latency_ns(1_000_000)?;
    for mode in StreamMode::ALL {
        let opts = Options::new(mode).transfer_bytes(transfer).depth(8);
        let until = Until::none().commands(64);
        let mut want = Transfers::new(std::iter::repeat(span.clone()), 8, block, until);
        let t = stream::read_extents(
            &ctx.device,
            std::iter::repeat(span.clone()),
            opts,
            until,
            |lba, data: &[u8]| check_cycle(8300, block, &mut want, lba, data),
        )?;
        ensure_eq(t.commands, 64, format!("{mode}: the command limit"))?;
        ensure_eq(t.bytes, 64 * transfer as u64, format!("{mode}: bytes"))?;
        ensure_eq(t.depth, 8, format!("{mode}: depth"))?;
        ensure_eq(
            t.peak_in_flight,
            8,
            format!("{mode}: eight in flight over a span of one transfer"),
        )?;
        ensure_eq(
            want.next(),
            None,
            format!("{mode}: every transfer delivered"),
        )?;
        // The same time for depth 1 and 8: the deeper run does more.
        let runtime = Duration::from_millis(300);
        let mut counts = [0u64; 2];
        for (i, depth) in [1usize, 8].into_iter().enumerate() {
            let t0 = Instant::now();
            let t = stream::read_extents(
                &ctx.device,
                std::iter::repeat(span.clone()),
                opts.depth(depth),
                Until::none().runtime(runtime),
                |_, _: &[u8]| Ok::<(), Error>(()),
            )?;
            let took = t0.elapsed();
            ensure(
                took >= runtime && took < Duration::from_secs(20),
                format!("{mode} depth {depth}: a run of {runtime:?} took {took:?}"),
            )?;
            ensure_eq(t.bytes, t.commands * transfer as u64, "whole transfers")?;
            counts[i] = t.commands;
        }
        println!(
            "{mode}: {} commands at depth 1, {} at depth 8 in {runtime:?} with 1 ms latency",
            counts[0], counts[1]
        );
        ensure(
            counts[1] >= 2 * counts[0] && counts[0] > 0,
            format!(
                "{mode}: depth 8 ran {} commands against {} at depth 1: the pipeline drained at the wraps",
                counts[1], counts[0]
            ),
        )?;
    }
    Ok(())
}

/// A cycling write over a span of two and a half transfers fills in the
/// walk's order, rewrites the same pattern each pass and stops at its byte
/// limit; an extent that leaves the device is refused after the transfers
/// before it were delivered.
fn cycle_writes(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let cap = dev.read_capacity()?;
    let block = cap.block_size as usize;
    drop(dev);
    let transfer = 8 * block;
    let span = blocks(block, 21 << 20, 20 * block as u64);
    for (i, mode) in StreamMode::ALL.into_iter().enumerate() {
        let seed = 8400 + i as u64;
        // Seven passes of 8 + 8 + 4 blocks, then 8 and a last transfer
        // shortened from 8 blocks to 4 by the limit.
        let limit = (7 * 20 + 12) * block as u64;
        let until = Until::none().bytes(limit);
        let mut want = Transfers::new(std::iter::repeat(span.clone()), 8, block, until);
        let t = stream::write_extents(
            &ctx.device,
            std::iter::repeat(span.clone()),
            Options::new(mode).transfer_bytes(transfer).depth(6),
            until,
            |lba, buf: &mut [u8]| {
                let at = want.next();
                if at != Some((lba, (buf.len() / block) as u32)) {
                    return Err(Error::InvalidRequest {
                        device: ctx.device.clone(),
                        command: "fill".into(),
                        reason: format!(
                            "asked to fill {} bytes at {lba}, expected {at:?}",
                            buf.len()
                        ),
                    });
                }
                pattern(seed, lba, block, buf);
                Ok(())
            },
        )?;
        ensure_eq(t.bytes, limit, format!("{mode}: the byte limit"))?;
        ensure_eq(t.commands, 7 * 3 + 2, format!("{mode}: commands"))?;
        ensure_eq(want.next(), None, format!("{mode}: every transfer filled"))?;
        let mut c = Checker::new(seed, block, span.start);
        stream::read(
            &ctx.device,
            span.clone(),
            Options::new(StreamMode::Indirect).transfer_bytes(transfer),
            |lba, data: &[u8]| c.take(lba, data),
        )?;
        ensure_eq(c.next, span.end, format!("{mode}: the span reads back"))?;
    }
    // The device's last blocks, then past its end.
    let last = cap.blocks - 8..cap.blocks;
    let mut got = Vec::new();
    let r = stream::read_extents(
        &ctx.device,
        [last.clone(), cap.blocks - 4..cap.blocks + 4],
        Options::new(StreamMode::Direct)
            .transfer_bytes(8 * block)
            .depth(4),
        Until::none(),
        |lba, _: &[u8]| {
            got.push(lba);
            Ok::<(), Error>(())
        },
    );
    match r {
        Err(Error::InvalidRequest { reason, device, .. }) => {
            ensure(reason.contains("not within the device"), reason)?;
            ensure_eq(device, ctx.device.clone(), "error names the device")?;
        }
        other => return Err(format!("an extent past the end: {other:?}").into()),
    }
    ensure_eq(got, vec![last.start], "the extent before it was delivered")
}
