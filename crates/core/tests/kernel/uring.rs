//! SCSI passthrough through io_uring on the bsg node (`BsgRing`, Linux 7.1+):
//! data both ways from 512 B to the largest transfer with plain and
//! registered buffers, out-of-order completions, depth 256 in one system
//! call, the fault matrix, drop and signals with commands in flight, and, on
//! older kernels, the error that says what is missing.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use sgmap::{
    cdb::Cdb, BlockIo, BsgRing, Command, Completion, DirectBuf, Error, FixedBuf, IoBuf, Mode,
    Payload, ScsiErrorKind, Ticket,
};
use sgmap_testkit::{ensure, ensure_eq, kernel_version, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same, under_sigusr1};

/// The first kernel with the feature.
const V7_1: (u32, u32) = (7, 1);

pub(crate) const TESTS: [KernelTest; 15] = [
    KernelTest::device(
        "uring_opens_on_7_1_and_names_what_is_missing_before",
        open_or_clear_error,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_integrity_both_directions_512b_to_largest_plain_and_registered",
        V7_1,
        integrity,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_out_of_order_completions_are_matched_by_user_data",
        V7_1,
        out_of_order,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_depth_256_in_one_system_call_then_back_pressure",
        V7_1,
        depth_256,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_medium_error_on_one_command_leaves_the_others_correct",
        V7_1,
        medium_error,
    ),
    KernelTest::scsi_debug_on_linux("uring_short_read_reports_residual", V7_1, short_read),
    KernelTest::scsi_debug_on_linux(
        "uring_write_protect_gives_data_protect",
        V7_1,
        write_protect,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_transport_error_is_aborted_command",
        V7_1,
        transport_error,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_dropped_command_times_out_with_its_own_timeout",
        V7_1,
        timeout,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_dropped_in_flight_waits_frees_nothing_early_and_leaks_nothing",
        V7_1,
        drop_in_flight,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_wait_retries_through_signals_nothing_orphaned",
        V7_1,
        eintr,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_wait_timeout_and_try_complete_do_not_block",
        V7_1,
        event_loop,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_refusals_give_the_buffer_back_with_the_ticket",
        V7_1,
        refusals,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_registered_buffers_are_page_aligned_reusable_and_ring_bound",
        V7_1,
        registered,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_event_fd_polls_readable_on_a_completion_and_drains",
        V7_1,
        event_fd,
    ),
];

fn ring(ctx: &Ctx, depth: u32) -> Result<BsgRing, Failed> {
    // Pass over the power-on UNIT ATTENTION through the sg node first.
    open(ctx)?;
    Ok(BsgRing::options().depth(depth).open(&ctx.device)?)
}

fn read_cmd(lba: u64, blocks: usize) -> Result<Command, Failed> {
    Ok(Command::new(Cdb::read(lba, blocks as u32)?))
}

fn write_cmd(lba: u64, blocks: usize) -> Result<Command, Failed> {
    Ok(Command::new(Cdb::write(lba, blocks as u32)?))
}

/// Writes a distinct pattern to each `(lba, blocks)` through sg; returns them.
fn seed(ctx: &Ctx, seed: u64, at: &[(u64, usize)]) -> Result<Vec<Vec<u8>>, Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let mut out = Vec::new();
    for &(lba, blocks) in at {
        let want = data(seed, lba, block, blocks * block);
        dev.write_blocks(lba, &want, BlockIo::indirect())?;
        out.push(want);
    }
    Ok(out)
}

/// A completion, or the refusal as a test failure.
fn done(r: Result<Completion, sgmap::Refused>) -> Result<Completion, Failed> {
    r.map_err(|e| format!("refused: {e}").into())
}

/// A good completion whose bytes are `want`.
fn check_read(c: &Completion, want: &[u8], what: &str) -> Result<(), Failed> {
    if let Some(kind) = c.outcome.failure_kind() {
        return Err(format!(
            "{what} ({}) failed: {kind:?}: {:?}",
            c.ticket, c.outcome.sense
        )
        .into());
    }
    ensure_eq(c.outcome.resid, 0, format!("{what}: resid"))?;
    same(c.bytes(), want, what)
}

fn open_or_clear_error(ctx: &Ctx) -> Result<(), Failed> {
    let kernel = kernel_version().ok_or("kernel version")?;
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")?;
    let release = release.trim();
    open(ctx)?;
    let node = sgmap::bsg_node(&ctx.device)?;
    ensure(
        node.starts_with("/dev/bsg/"),
        format!("{} has bsg node {}", ctx.device.display(), node.display()),
    )?;
    match BsgRing::open(&ctx.device) {
        Ok(ring) if kernel >= V7_1 => {
            ensure_eq(ring.path(), node.as_path(), "the ring drives the bsg node")?;
            ensure_eq(ring.origin(), ctx.device.as_path(), "origin")?;
            drop(ring);
            // The bsg node itself opens too.
            let direct = BsgRing::open(&node)?;
            ensure_eq(direct.path(), node.as_path(), "bsg node given directly")?;
            println!(
                "Linux {release}: {} opens as {}",
                ctx.device.display(),
                node.display()
            );
        }
        Ok(_) => {
            return Err(format!("Linux {release} is older than 7.1, yet the ring opened").into())
        }
        Err(e) if kernel < V7_1 => {
            let text = e.report().to_string();
            println!("Linux {release}: {text}");
            ensure(
                matches!(&e, Error::Open { source, .. } if source.kind() == std::io::ErrorKind::Unsupported),
                format!("not an Unsupported open error: {e:?}"),
            )?;
            for needle in [
                "Linux 7.1",
                "io_uring",
                &format!("Linux {release}"),
                &node.display().to_string(),
                "Queue or Pool",
            ] {
                ensure(
                    text.contains(needle),
                    format!("`{needle}` missing from: {text}"),
                )?;
            }
        }
        Err(e) => return Err(format!("Linux {release}: the ring did not open: {e}").into()),
    }
    // Not a SCSI device at all: said so, on every kernel.
    let e = BsgRing::open("/dev/null")
        .err()
        .ok_or("/dev/null opened as a ring")?;
    ensure(
        matches!(e, Error::NotSg { .. }) && e.to_string().contains("not a SCSI"),
        format!("/dev/null: {e}"),
    )
}

fn integrity(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let max = dev.max_transfer() / block * block;
    let lba0 = (160u64 << 20) / block as u64;
    let mut sizes: Vec<usize> = [512, 4096, 65536, 256 * 1024, max - block, max]
        .into_iter()
        .map(|n| n.max(block) / block * block)
        .filter(|&n| n <= max)
        .collect();
    sizes.dedup();
    let mut ring = ring(ctx, 16)?;
    let mut fixed = ring.register_buffers(2, max)?;
    let mut modes = std::collections::HashSet::new();
    for (k, &len) in sizes.iter().enumerate() {
        let blocks = len / block;
        // Three places per size: plain Vec, page-aligned, registered.
        let at = |way: u64| lba0 + (k as u64 * 3 + way) * (max / block) as u64;
        let wants: Vec<Vec<u8>> = (0..3)
            .map(|w| data(100 + k as u64, at(w), block, len))
            .collect();
        // Writes through the ring, all three in one system call.
        let mut f = fixed.pop().ok_or("fixed buffer")?;
        f.set_len(len);
        f.copy_from_slice(&wants[2]);
        let t_vec = ring.submit(&write_cmd(at(0), blocks)?, Payload::write(wants[0].clone()))?;
        let t_dir = ring.submit(
            &write_cmd(at(1), blocks)?,
            Payload::write(DirectBuf::from_slice(&wants[1])),
        )?;
        let t_fix = ring.submit(&write_cmd(at(2), blocks)?, Payload::write(f))?;
        let enters = ring.enters();
        ensure_eq(ring.flush()?, 3, "three writes handed over")?;
        ensure_eq(ring.enters() - enters, 1, "in one io_uring_enter")?;
        let mut got_fixed = None;
        for r in ring.drain() {
            let c = done(r)?.check(ring.path())?;
            ensure_eq(
                c.outcome.transferred(),
                len,
                format!("write {} of {len}", c.ticket),
            )?;
            if c.ticket == t_fix {
                ensure_eq(c.outcome.mode, Mode::Direct, "registered write mode")?;
                got_fixed = c.into_buffer().and_then(IoBuf::into_registered);
            } else if c.ticket == t_dir {
                ensure_eq(c.outcome.mode, Mode::Direct, "page-aligned write mode")?;
            } else {
                ensure_eq(c.ticket, t_vec, "ticket")?;
                modes.insert(c.outcome.mode);
            }
        }
        let mut f = got_fixed.ok_or("the registered buffer came back")?;
        // What the ring wrote is on the disk: read through sg.
        for (w, want) in wants.iter().enumerate() {
            let mut got = vec![0u8; len];
            dev.read_blocks(at(w as u64), &mut got, BlockIo::indirect())?;
            same(
                &got,
                want,
                &format!("{len}-byte ring write {w}, read through sg"),
            )?;
        }
        // Read back through the ring in the three ways (the registered one
        // from the Vec's place, so it cannot pass by keeping its old bytes).
        f.fill(0);
        let r_vec = ring.submit(&read_cmd(at(2), blocks)?, Payload::read(vec![0u8; len]))?;
        let r_dir = ring.submit(
            &read_cmd(at(0), blocks)?,
            Payload::read(DirectBuf::new(len)),
        )?;
        let r_fix = ring.submit(&read_cmd(at(1), blocks)?, Payload::read(f))?;
        let want_of: HashMap<Ticket, &Vec<u8>> =
            [(r_vec, &wants[2]), (r_dir, &wants[0]), (r_fix, &wants[1])].into();
        for r in ring.drain() {
            let c = done(r)?;
            let want = want_of.get(&c.ticket).ok_or("unknown ticket")?;
            check_read(&c, want, &format!("{len}-byte ring read {}", c.ticket))?;
            if c.ticket == r_fix {
                ensure_eq(c.outcome.mode, Mode::Direct, "registered read mode")?;
                fixed.push(
                    c.into_buffer()
                        .and_then(IoBuf::into_registered)
                        .ok_or("fixed back")?,
                );
            }
        }
    }
    println!(
        "sizes {sizes:?} (block {block}, largest {max}) written and read back; a Vec ran as {modes:?}"
    );
    ensure_eq(ring.pending(), 0, "nothing left")
}

fn out_of_order(ctx: &Ctx) -> Result<(), Failed> {
    let lba0 = 450_000u64;
    let at: Vec<(u64, usize)> = (0..64u64)
        .map(|k| (lba0 + 40 * k, 1 + (k as usize * 7) % 40))
        .collect();
    let wants = seed(ctx, 2, &at)?;
    let block = open(ctx)?.block_size()? as usize;
    let _latency = Knob::latency_ns(2_000_000)?;
    let _random = Knob::scsi_debug("random", 1)?;
    let mut ring = ring(ctx, 64)?;
    let mut fixed = ring.register_buffers(16, 40 * block)?;
    let mut inverted_rounds = 0;
    for round in 0..6 {
        let mut want_of = HashMap::new();
        let mut submitted = Vec::new();
        let mut lent = Vec::new();
        for (k, &(lba, blocks)) in at.iter().enumerate() {
            let len = blocks * block;
            let payload = match k % 4 {
                0 => Payload::read(vec![0u8; len]),
                1 => Payload::read(DirectBuf::new(len)),
                _ if !fixed.is_empty() => {
                    let mut f = fixed.pop().ok_or("fixed")?;
                    f.set_len(len);
                    f.fill(0);
                    lent.push(k);
                    Payload::read(f)
                }
                _ => Payload::read(vec![0u8; len]),
            };
            let t = ring.submit(&read_cmd(lba, blocks)?, payload)?;
            want_of.insert(t, k);
            submitted.push(t);
        }
        ensure_eq(ring.flush()?, 64, "all 64 handed over at once")?;
        let mut order = Vec::new();
        if round % 3 == 2 {
            // Newest first, each picked by its ticket.
            for t in submitted.iter().rev() {
                let c = done(ring.wait_for(*t))?;
                ensure_eq(c.ticket, *t, "wait_for gave the ticket asked for")?;
                order.push(c);
            }
        } else {
            while ring.pending() > 0 {
                order.push(done(ring.wait())?);
            }
        }
        let ids: Vec<u64> = order.iter().map(|c| c.ticket.id()).collect();
        let inversions = ids.windows(2).filter(|w| w[1] < w[0]).count();
        if round % 3 != 2 && inversions > 0 {
            inverted_rounds += 1;
        }
        for c in order {
            let k = *want_of.get(&c.ticket).ok_or("unknown ticket")?;
            check_read(&c, &wants[k], &format!("read {k} at LBA {}", at[k].0))?;
            if let Some(f) = c.into_buffer().and_then(IoBuf::into_registered) {
                fixed.push(f);
            }
        }
        ensure_eq(
            ids.iter().collect::<BTreeSet<_>>().len(),
            64,
            "64 distinct completions",
        )?;
        println!("round {round}: {inversions} completions came before an earlier-submitted one");
    }
    ensure_eq(fixed.len(), 16, "every registered buffer came back")?;
    ensure(
        inverted_rounds >= 3,
        format!("completions came out of submission order in only {inverted_rounds} of 4 rounds"),
    )
}

fn depth_256(ctx: &Ctx) -> Result<(), Failed> {
    let lba0 = 460_000u64;
    let at: Vec<(u64, usize)> = (0..300u64).map(|k| (lba0 + 8 * k, 8)).collect();
    let wants = seed(ctx, 3, &at)?;
    let block = open(ctx)?.block_size()? as usize;
    let latency_ns = 5_000_000u64;
    let _latency = Knob::latency_ns(latency_ns)?;
    let mut ring = ring(ctx, 256)?;
    ensure_eq(ring.depth(), 256, "depth")?;
    let mut want_of = HashMap::new();
    for (k, &(lba, blocks)) in at[..256].iter().enumerate() {
        let t = ring.submit(
            &read_cmd(lba, blocks)?,
            Payload::read(DirectBuf::new(blocks * block)),
        )?;
        want_of.insert(t, k);
    }
    ensure_eq(ring.queued(), 256, "256 queued, no system call yet")?;
    let enters = ring.enters();
    let start = Instant::now();
    ensure_eq(ring.flush()?, 256, "flushed")?;
    ensure_eq(
        ring.enters() - enters,
        1,
        "256 commands in one io_uring_enter",
    )?;
    ensure_eq(ring.peak_in_flight(), 256, "peak")?;
    let mut n = 0;
    while ring.pending() > 0 {
        let c = done(ring.wait())?;
        let k = *want_of.get(&c.ticket).ok_or("ticket")?;
        check_read(&c, &wants[k], &format!("read {k}"))?;
        n += 1;
    }
    let took = start.elapsed();
    let serial = Duration::from_nanos(latency_ns * 256);
    println!(
        "256 reads at {} ms each took {took:?} ({} io_uring_enter calls in all; one after another would take {serial:?})",
        latency_ns / 1_000_000,
        ring.enters() - enters
    );
    ensure_eq(n, 256, "completions")?;
    ensure(
        took < serial / 2,
        format!("256 commands took {took:?}: they did not overlap (serial: {serial:?})"),
    )?;
    // 300 submits on a ring of 256: the 257th waits for a completion, never fails.
    let mut want_of = HashMap::new();
    for (k, &(lba, blocks)) in at.iter().enumerate() {
        let t = ring.submit(
            &read_cmd(lba, blocks)?,
            Payload::read(vec![0u8; blocks * block]),
        )?;
        want_of.insert(t, k);
        ensure(ring.in_flight() <= 256, "never more than the depth held")?;
    }
    let mut got = BTreeSet::new();
    for r in ring.drain() {
        let c = done(r)?;
        let k = *want_of.get(&c.ticket).ok_or("ticket")?;
        check_read(&c, &wants[k], &format!("back-pressured read {k}"))?;
        got.insert(k);
    }
    ensure_eq(got.len(), 300, "all 300 completed once")
}

use sgmap_testkit::sdebug_opts::{
    MEDIUM_ERR, MEDIUM_ERR_LBA, SHORT_TRANSFER, TIMEOUT, TRANSPORT_ERR,
};

fn medium_error(ctx: &Ctx) -> Result<(), Failed> {
    let reads: Vec<(u64, usize)> = (0..12).map(|k| (MEDIUM_ERR_LBA + 16 * k - 64, 8)).collect();
    let wants = seed(ctx, 4, &reads)?;
    let block = open(ctx)?.block_size()? as usize;
    let _latency = Knob::latency_ns(100_000)?;
    let _opts = Knob::scsi_debug("opts", MEDIUM_ERR)?;
    let mut ring = ring(ctx, 32)?;
    let mut want_of = HashMap::new();
    for (k, &(lba, blocks)) in reads.iter().enumerate() {
        let t = ring.submit(
            &read_cmd(lba, blocks)?,
            Payload::read(DirectBuf::new(blocks * block)),
        )?;
        want_of.insert(t, k);
    }
    let mut failed = 0;
    for r in ring.drain() {
        let c = done(r)?;
        let k = *want_of.get(&c.ticket).ok_or("ticket")?;
        if reads[k].0 != MEDIUM_ERR_LBA {
            check_read(&c, &wants[k], &format!("read at {}", reads[k].0))?;
            continue;
        }
        failed += 1;
        ensure_eq(
            c.outcome.failure_kind(),
            Some(ScsiErrorKind::CheckCondition),
            "kind",
        )?;
        let sense = c.outcome.sense.clone().ok_or("sense")?;
        ensure_eq(sense.key, sgmap::sense::SenseKey::MediumError, "sense key")?;
        ensure_eq((sense.asc, sense.ascq), (0x11, 0), "unrecovered read error")?;
        ensure_eq(sense.information, Some(MEDIUM_ERR_LBA), "failing LBA")?;
        ensure_eq(c.outcome.status, 0x02, "CHECK CONDITION")?;
        ensure_eq(
            c.outcome.info & sgmap_sys::SG_INFO_CHECK,
            sgmap_sys::SG_INFO_CHECK,
            "info",
        )?;
        let text = c
            .check(ring.path())
            .err()
            .ok_or("check passed")?
            .report()
            .to_string();
        ensure(
            text.contains("/dev/bsg/")
                && text.contains("READ(10)")
                && text.contains("MEDIUM ERROR"),
            text,
        )?;
    }
    ensure_eq(failed, 1, "exactly one command failed")
}

fn short_read(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 470_000;
    let wants = seed(ctx, 5, &[(lba, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let mut ring = ring(ctx, 4)?;
    let fault = Knob::inject(SHORT_TRANSFER)?;
    ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0xeeu8; 8 * block]))?;
    let c = done(ring.wait())?;
    drop(fault);
    ensure_eq(
        c.outcome.duration,
        Duration::ZERO,
        "no clock read unless asked",
    )?;
    ensure(
        c.outcome.resid > 0,
        format!("resid {} after a short transfer", c.outcome.resid),
    )?;
    ensure_eq(
        c.outcome.transferred() + c.outcome.resid,
        8 * block,
        "transferred + resid",
    )?;
    same(
        c.bytes(),
        &wants[0][..c.outcome.transferred()],
        "the part transferred",
    )?;
    println!(
        "short read: {} of {} bytes, resid {}",
        c.outcome.transferred(),
        8 * block,
        c.outcome.resid
    );
    ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    check_read(&done(ring.wait())?, &wants[0], "after the fault")
}

fn write_protect(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 471_000;
    let wants = seed(ctx, 6, &[(lba, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let mut ring = ring(ctx, 4)?;
    let wp = Knob::scsi_debug_param("wp", 1)?;
    ring.submit(&write_cmd(lba, 8)?, Payload::write(vec![0u8; 8 * block]))?;
    let c = done(ring.wait())?;
    drop(wp);
    let sense = c
        .outcome
        .sense
        .clone()
        .ok_or("no sense for a write to a protected disk")?;
    ensure_eq(sense.key, sgmap::sense::SenseKey::DataProtect, "sense key")?;
    ensure_eq(sense.asc, 0x27, "write protected ASC")?;
    ensure(c.check(ring.path()).is_err(), "check passed")?;
    ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    check_read(
        &done(ring.wait())?,
        &wants[0],
        "data untouched by the refused write",
    )
}

fn transport_error(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 472_000;
    let wants = seed(ctx, 7, &[(lba, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let mut ring = ring(ctx, 4)?;
    let latency = Knob::latency_ns(20_000)?;
    let fault = Knob::inject(TRANSPORT_ERR)?;
    ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    let c = done(ring.wait())?;
    drop(fault);
    drop(latency);
    let sense = c
        .outcome
        .sense
        .clone()
        .ok_or_else(|| format!("no sense: {:?}", c.outcome))?;
    ensure_eq(
        sense.key,
        sgmap::sense::SenseKey::AbortedCommand,
        "sense key",
    )?;
    ensure_eq(sense.asc, 0x4b, "transport problem ASC")?;
    ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    check_read(&done(ring.wait())?, &wants[0], "after the fault")
}

fn timeout(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 473_000;
    let wants = seed(ctx, 8, &[(lba, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let mut ring = ring(ctx, 4)?;
    let fault = Knob::inject(TIMEOUT)?;
    let cmd = read_cmd(lba, 8)?.timeout(Duration::from_millis(500));
    let start = Instant::now();
    ring.submit(&cmd, Payload::read(vec![0u8; 8 * block]))?;
    let r = ring.wait();
    let took = start.elapsed();
    drop(fault);
    println!(
        "dropped command: {:?} after {took:?}",
        r.as_ref().map(|c| &c.outcome)
    );
    match r {
        Ok(c) => {
            let kind = c.outcome.failure_kind();
            ensure(
                matches!(
                    kind,
                    Some(ScsiErrorKind::Timeout | ScsiErrorKind::Transport)
                ),
                format!("kind {kind:?}: {:?}", c.outcome),
            )?;
        }
        // The block layer may end a timed-out passthrough command with an errno.
        Err(e) => {
            ensure(
                e.ticket().is_some() && e.data().len() == 8 * block,
                format!("{e}"),
            )?;
        }
    }
    ensure(
        took >= Duration::from_millis(400),
        format!("ended after {took:?}, before its 500 ms timeout"),
    )?;
    ensure(
        took < Duration::from_secs(30),
        format!("took {took:?}: the command's timeout was not used"),
    )?;
    ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    check_read(&done(ring.wait())?, &wants[0], "after the timeout")
}

fn fd_count() -> Result<usize, Failed> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

fn rss_pages() -> Result<u64, Failed> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("statm: {statm}").into())
}

fn drop_in_flight(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let len = 64 * 1024;
    let blocks = len / block;
    let wlba = 480_000u64;
    let _latency = Knob::latency_ns(5_000_000)?;
    let mut base = None;
    let mut busy_at_drop = 0;
    let mut waited_at_drop = 0;
    let iterations = 120u64;
    for it in 0..iterations {
        let mut ring = BsgRing::options().depth(32).open(&ctx.device)?;
        let mut fixed = ring.register_buffers(4, len)?;
        for k in 0..12u64 {
            let cmd = read_cmd(k * blocks as u64, blocks)?;
            let p = if k % 2 == 0 {
                Payload::read(DirectBuf::new(len))
            } else {
                Payload::read(vec![0u8; len])
            };
            ring.submit(&cmd, p)?;
        }
        for k in 0..4u64 {
            ring.submit(
                &read_cmd(100 + k * blocks as u64, blocks)?,
                Payload::read(fixed.pop().ok_or("fixed")?),
            )?;
        }
        // Four writes: two handed to the kernel now, two only queued so far.
        let w = data(it, wlba, block, 4 * len);
        let write = |k: usize| -> Result<(Command, Payload), Failed> {
            let part = w[k * len..(k + 1) * len].to_vec();
            let p = if k % 2 == 0 {
                Payload::write(part)
            } else {
                Payload::write(DirectBuf::from_slice(&part))
            };
            Ok((write_cmd(wlba + (k * blocks) as u64, blocks)?, p))
        };
        for k in 0..2 {
            let (c, p) = write(k)?;
            ring.submit(&c, p)?;
        }
        ring.flush()?;
        for k in 2..4 {
            let (c, p) = write(k)?;
            ring.submit(&c, p)?;
        }
        // Hands the queued writes over too and reaps what is done (at 5 ms
        // a command, nothing): they are all in the kernel when the ring drops.
        let _ = ring.try_complete()?;
        if ring.in_flight() >= 16 && ring.queued() == 0 {
            busy_at_drop += 1;
        }
        let dropping = Instant::now();
        drop(ring);
        let drop_took = dropping.elapsed();
        // The commands went in just now and take 5 ms: a drop that waits
        // for them takes milliseconds, one that did not would take microseconds.
        if drop_took >= Duration::from_millis(2) {
            waited_at_drop += 1;
        }
        if it % 10 == 0 {
            // When drop returns, every command has completed: the writes are
            // on the disk at once (each iteration writes a new pattern).
            let dev = open(ctx)?;
            let mut got = vec![0u8; 4 * len];
            dev.read_blocks(wlba, &mut got, BlockIo::indirect())?;
            same(
                &got,
                &w,
                &format!(
                    "writes in flight at drop, read right after it ({drop_took:?}), iteration {it}"
                ),
            )?;
            // And nothing writes into the memory the ring freed afterwards.
            let canaries: Vec<DirectBuf> = (0..8)
                .map(|_| {
                    let mut b = DirectBuf::new(len);
                    b.fill(0x5a);
                    b
                })
                .collect();
            let heap: Vec<Vec<u8>> = (0..8).map(|_| vec![0x5au8; len]).collect();
            std::thread::sleep(Duration::from_millis(25));
            ensure(
                canaries.iter().all(|c| c.iter().all(|&b| b == 0x5a))
                    && heap.iter().all(|c| c.iter().all(|&b| b == 0x5a)),
                "memory freed by a dropped ring was written afterwards",
            )?;
        }
        if it == 10 {
            base = Some((fd_count()?, rss_pages()?));
        }
    }
    let (fd0, rss0) = base.ok_or("no baseline")?;
    let (fd1, rss1) = (fd_count()?, rss_pages()?);
    println!(
        "fds {fd0} -> {fd1}, rss pages {rss0} -> {rss1}; {busy_at_drop} of {iterations} drops had commands in flight, {waited_at_drop} took 2 ms or more"
    );
    ensure(
        waited_at_drop >= iterations * 3 / 4,
        format!("only {waited_at_drop} of {iterations} drops waited for their 5 ms commands"),
    )?;
    ensure_eq(fd1, fd0, "open fds after the drops")?;
    ensure(
        rss1 <= rss0 + 1024,
        format!("RSS grew from {rss0} to {rss1} pages"),
    )?;
    ensure(
        busy_at_drop >= iterations * 3 / 4,
        format!("only {busy_at_drop} of {iterations} drops had commands in flight"),
    )
}

fn eintr(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 474_000;
    let wants = seed(ctx, 9, &[(lba, 8), (lba + 8, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let _latency = Knob::latency_ns(300_000_000)?;
    let mut ring = ring(ctx, 4)?;
    let mut fixed = ring.register_buffers(1, 8 * block)?;
    let t1 = ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    let t2 = ring.submit(
        &read_cmd(lba + 8, 8)?,
        Payload::read(fixed.pop().ok_or("fixed")?),
    )?;
    // Without SA_RESTART: a blocked io_uring_enter returns EINTR.
    let ((r1, r2), signals) = under_sigusr1(|| (ring.wait_for(t1), ring.wait()))?;
    let (c1, c2) = (done(r1)?, done(r2)?);
    check_read(&c1, &wants[0], "first read")?;
    ensure_eq(c2.ticket, t2, "second ticket")?;
    check_read(&c2, &wants[1], "second read, registered")?;
    println!(
        "{signals} signals during the waits; enters {}",
        ring.enters()
    );
    ensure(
        signals >= 5,
        format!("only {signals} signals arrived during the 300 ms waits"),
    )
}

fn event_loop(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 475_000;
    let wants = seed(ctx, 10, &[(lba, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let _latency = Knob::latency_ns(50_000_000)?;
    let mut ring = BsgRing::options()
        .depth(4)
        .measure_duration(true)
        .open(&ctx.device)?;
    ensure(
        ring.try_complete()?.is_none(),
        "nothing pending, nothing complete",
    )?;
    ensure(
        ring.wait_timeout(Duration::from_millis(1))?.is_none(),
        "nothing pending: None",
    )?;
    let t = ring.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    ensure(
        ring.try_complete()?.is_none(),
        "a 50 ms command is not complete at once",
    )?;
    ensure_eq(
        ring.queued(),
        0,
        "try_complete handed the command to the kernel",
    )?;
    let start = Instant::now();
    ensure(
        ring.wait_timeout(Duration::from_millis(5))?.is_none(),
        "nor after 5 ms",
    )?;
    let waited = start.elapsed();
    ensure(
        waited >= Duration::from_millis(4) && waited < Duration::from_millis(45),
        format!("wait_timeout(5 ms) took {waited:?}"),
    )?;
    let c = ring
        .wait_timeout(Duration::from_secs(5))?
        .ok_or("done within 5 s")?;
    ensure_eq(c.ticket, t, "ticket")?;
    check_read(&c, &wants[0], "event-loop read")?;
    ensure(
        c.outcome.duration >= Duration::from_millis(40),
        format!("duration {:?} for a 50 ms command", c.outcome.duration),
    )?;
    match ring.wait() {
        Err(r) if r.ticket().is_none() => ensure(
            r.to_string().contains("no command is pending"),
            r.to_string(),
        )?,
        other => return Err(format!("wait on an empty ring: {other:?}").into()),
    }
    match ring.wait_for(t) {
        Err(r) => ensure(r.to_string().contains("already collected"), r.to_string()),
        Ok(c) => Err(format!("wait_for a collected ticket gave {}", c.ticket).into()),
    }
}

fn refusals(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let max = dev.max_transfer();
    let mut ring = ring(ctx, 8)?;
    // Refused before the kernel: at_tail has no place in bsg_uring_cmd.
    let buf = vec![0u8; 8 * block];
    let addr = buf.as_ptr();
    let r = ring
        .submit(&read_cmd(0, 8)?.at_tail(), Payload::read(buf))
        .err()
        .ok_or("at_tail accepted")?;
    ensure(r.to_string().contains("at_tail"), r.to_string())?;
    let (_, data) = r.into_parts();
    ensure(
        data.buffer().is_some_and(|b| b.as_ptr() == addr),
        "the same buffer came back",
    )?;
    ensure_eq(ring.in_flight(), 0, "nothing held after a refusal")?;
    // Refused by the kernel: past the queue's largest transfer. sg's
    // reserved-buffer clamp (max_sectors) is not that limit, so double
    // until the kernel says no.
    let mut big = max;
    let mut largest_ok = 0;
    let mut seen = 0;
    while seen == 0 {
        big *= 2;
        ensure(
            big <= 128 << 20,
            format!("the kernel took every read up to {largest_ok} bytes"),
        )?;
        let buf = DirectBuf::new(big);
        let addr = buf.as_ptr();
        let t = ring.submit(&read_cmd(0, big / block)?, Payload::read(buf))?;
        let ok = ring.submit(&Command::new(Cdb::test_unit_ready()), Payload::None)?;
        for r in ring.drain() {
            match r {
                Err(r) => {
                    ensure_eq(r.ticket(), Some(t), "the refused ticket")?;
                    ensure(
                        r.data().buffer().is_some_and(|b| b.as_ptr() == addr),
                        "its buffer came back",
                    )?;
                    ensure(r.error().errno().is_some(), format!("an errno: {r}"))?;
                    ensure(r.to_string().contains("through io_uring"), r.to_string())?;
                    println!("{big}-byte read refused (sg's clamp {max}, {largest_ok} taken): {r}");
                    seen += 1;
                }
                Ok(c) if c.ticket == t => {
                    ensure(
                        c.outcome.is_good(),
                        format!("{big}-byte read: {:?}", c.outcome),
                    )?;
                    largest_ok = big;
                }
                Ok(c) => {
                    ensure_eq(c.ticket, ok, "the TEST UNIT READY completed")?;
                    ensure_eq(c.outcome.mode, Mode::NoData, "no data")?;
                    ensure(c.outcome.is_good(), format!("TUR: {:?}", c.outcome))?;
                }
            }
        }
    }
    ensure_eq(seen, 1, "one refusal")?;
    // Depth out of range.
    let e = BsgRing::options()
        .depth(0)
        .open(&ctx.device)
        .err()
        .ok_or("depth 0")?;
    ensure(e.to_string().contains("depth"), e.to_string())
}

fn registered(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 476_000;
    let wants = seed(ctx, 11, &[(lba, 16)])?;
    let block = open(ctx)?.block_size()? as usize;
    let mut a = ring(ctx, 4)?;
    let mut b = ring(ctx, 4)?;
    let mut fa: Vec<FixedBuf> = a.register_buffers(2, 5000)?;
    ensure(
        fa.iter()
            .all(|f| f.as_ptr() as usize % 4096 == 0 && f.capacity() == 8192 && f.len() == 5000),
        "page-aligned, capacity rounded to pages",
    )?;
    ensure(
        fa.iter()
            .all(|f| f.is_registered_with(&a) && !f.is_registered_with(&b)),
        "bound to ring a",
    )?;
    let again = a
        .register_buffers(1, 4096)
        .err()
        .ok_or("registered twice")?;
    ensure(
        again.to_string().contains("once per ring"),
        again.to_string(),
    )?;
    // On its own ring, then on another (where it is ordinary memory), then
    // a clone (unregistered): the same bytes each time.
    let mut f = fa.pop().ok_or("fixed")?;
    f.set_len(8192);
    let len = f.len();
    let blocks = len / block;
    for round in 0..3 {
        let (ring, buf) = match round {
            0 => (&mut a, f),
            1 => (&mut b, f),
            _ => (&mut a, f.clone()),
        };
        ring.submit(&read_cmd(lba, blocks)?, Payload::read(buf))?;
        let c = done(ring.wait())?;
        check_read(&c, &wants[0][..len], &format!("round {round}"))?;
        ensure_eq(c.outcome.mode, Mode::Direct, "page-aligned: mapped")?;
        f = c
            .into_buffer()
            .and_then(IoBuf::into_registered)
            .ok_or("back")?;
        if round == 2 {
            ensure(!f.is_registered_with(&a), "a clone is not registered")?;
        }
    }
    Ok(())
}

/// poll() on one fd, `ms` at most: whether it turned readable.
fn readable(fd: std::os::fd::BorrowedFd<'_>, ms: i32) -> Result<bool, Failed> {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, valid for the call.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    ensure(n >= 0, format!("poll: {}", std::io::Error::last_os_error()))?;
    Ok(n == 1 && p.revents & libc::POLLIN != 0)
}

/// The ring's eventfd stays quiet while a read is in the device, turns
/// readable when it completes, and is quiet again once try_complete has
/// collected everything.
fn event_fd(ctx: &Ctx) -> Result<(), Failed> {
    let want = seed(ctx, 17, &[(420_000, 4)])?;
    let mut ring = ring(ctx, 8)?;
    let fd = ring.register_event_fd()?.try_clone_to_owned()?;
    let block = want[0].len() / 4;
    let _latency = Knob::latency_ns(100_000_000)?;
    let t = ring.submit(
        &read_cmd(420_000, 4)?,
        Payload::read(DirectBuf::new(4 * block)),
    )?;
    ring.flush()?;
    ensure(
        !readable(fd.as_fd(), 0)?,
        "readable before the read completed",
    )?;
    ensure(
        readable(fd.as_fd(), 3000)?,
        "not readable within 3 s of a 100 ms read",
    )?;
    let c = ring
        .try_complete()?
        .ok_or("readable, but try_complete found nothing")?;
    ensure_eq(c.ticket, t, "ticket")?;
    check_read(&c, &want[0], "the read")?;
    ensure(ring.try_complete()?.is_none(), "a second completion")?;
    ensure(
        !readable(fd.as_fd(), 0)?,
        "still readable after everything was collected",
    )?;
    ensure(
        ring.event_fd().is_some(),
        "event_fd() gives the registered fd",
    )
}
