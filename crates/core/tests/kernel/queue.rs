//! The asynchronous queue: commands really overlap in the driver, completions
//! are matched to their requests whatever the order, one failure leaves the
//! others alone, EDOM never shows, and dropping a busy queue is safe.

use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use sgmap::{
    cdb::Cdb, BlockIo, Command, Completion, DirectBuf, Error, Fallback, Mode, Payload, Pool, Queue,
    RequestState, ScsiErrorKind, Ticket, MAX_IN_FLIGHT,
};
use sgmap_sys as sys;
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same, surely_unfinished, under_sigusr1};

pub(crate) const TESTS: [KernelTest; 11] = [
    KernelTest::scsi_debug("queue_requests_overlap_in_the_driver_at_100us", overlap),
    KernelTest::scsi_debug(
        "queue_out_of_order_completions_are_matched_by_pack_id",
        out_of_order,
    ),
    KernelTest::scsi_debug(
        "queue_head_and_tail_queueing_reorders_and_data_stays_matched",
        head_and_tail,
    ),
    KernelTest::scsi_debug(
        "queue_medium_error_on_one_command_leaves_the_others_correct",
        one_error,
    ),
    KernelTest::scsi_debug(
        "queue_mixed_sizes_directions_direct_and_indirect_report_each_mode",
        mixed,
    ),
    KernelTest::scsi_debug("queue_forty_commands_on_one_fd_edom_stays_invisible", forty),
    KernelTest::scsi_debug(
        "queue_and_pool_dropped_in_flight_leak_nothing_and_write_nothing_after_free",
        drop_in_flight,
    ),
    KernelTest::scsi_debug(
        "queue_fd_in_an_event_loop_poll_try_complete_wait_timeout",
        event_loop,
    ),
    KernelTest::scsi_debug("queue_wait_retries_through_signals_eintr", eintr),
    KernelTest::device(
        "queue_refuses_bad_requests_and_gives_the_buffer_back",
        rejected,
    ),
    KernelTest::scsi_debug(
        "queue_try_submit_never_blocks_and_gives_a_full_queue_buffer_back",
        try_submit,
    ),
];

use sgmap_testkit::sdebug_opts::{MEDIUM_ERR as OPT_MEDIUM_ERR, MEDIUM_ERR_LBA};

/// What a submitted read should bring back.
struct Expect {
    lba: u64,
    want: Vec<u8>,
}

/// Writes a distinct pattern to each `(lba, blocks)` and returns the patterns.
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

/// Checks a completed read against what its ticket should hold.
fn check_read(c: &Completion, expect: &HashMap<Ticket, Expect>) -> Result<(), Failed> {
    let e = expect
        .get(&c.ticket)
        .ok_or_else(|| format!("completion for unknown ticket {}", c.ticket))?;
    if let Some(kind) = c.outcome.failure_kind() {
        return Err(format!(
            "read at {} ({}) failed: {kind:?}: {:?}",
            e.lba, c.ticket, c.outcome.sense
        )
        .into());
    }
    same(
        c.bytes(),
        &e.want,
        &format!("read at LBA {} ({})", e.lba, c.ticket),
    )
}

fn read_cmd(lba: u64, blocks: usize) -> Result<Command, Failed> {
    Ok(Command::new(Cdb::read(lba, blocks as u32)?))
}

/// What the driver said right after a burst of submits: responses waiting,
/// its request table, what each ticket should read, and how many of the
/// burst could not have finished yet when the driver was asked.
struct Burst {
    waiting: usize,
    table: Vec<sgmap::RequestInfo>,
    expect: HashMap<Ticket, Expect>,
    /// Requests submitted less than one device latency before the driver's
    /// answer was back: the device cannot have finished them, whatever the
    /// load on the machine (see `surely_unfinished`).
    must_be_unfinished: usize,
}

fn overlap(ctx: &Ctx) -> Result<(), Failed> {
    let lba0 = 310_000;
    let at: Vec<(u64, usize)> = (0..16).map(|k| (lba0 + 8 * k, 8)).collect();
    let wants = seed(ctx, 1, &at)?;
    let block = open(ctx)?.block_size()? as usize;
    let mut q = Queue::new(open(ctx)?)?;
    // Submits 16 reads back to back; returns what the driver says right
    // after: (responses done and waiting, its request table).
    let burst = |q: &mut Queue, latency: Duration| -> Result<Burst, Failed> {
        let mut expect = HashMap::new();
        let mut submitted = Vec::with_capacity(16);
        for (k, &(lba, blocks)) in at.iter().enumerate() {
            let cmd = read_cmd(lba, blocks)?;
            submitted.push(Instant::now());
            let t = q.submit(&cmd, Payload::read(vec![0u8; blocks * block]))?;
            expect.insert(
                t,
                Expect {
                    lba,
                    want: wants[k].clone(),
                },
            );
        }
        let waiting = q.device().num_waiting()?;
        let table = q.device().requests()?;
        let must_be_unfinished = surely_unfinished(&submitted, Instant::now(), latency);
        Ok(Burst {
            waiting,
            table,
            expect,
            must_be_unfinished,
        })
    };
    let collect = |q: &mut Queue, expect: &HashMap<Ticket, Expect>| -> Result<(), Failed> {
        for c in q.drain()? {
            ensure_eq(c.outcome.mode, Mode::Indirect, "mode")?;
            check_read(&c, expect)?;
        }
        Ok(())
    };
    let in_flight = |table: &[sgmap::RequestInfo]| {
        table
            .iter()
            .filter(|r| r.state == RequestState::InFlight)
            .count()
    };
    // At 100 µs per command (a submit costs tens of µs in the test bed):
    // right after a burst, the driver holds all 16 and some are still
    // executing in the device while the others are done.
    let fast = Duration::from_micros(100);
    let mut most_executing = 0;
    let mut most_in_table = 0;
    let mut most_certain = 0;
    {
        let _latency = Knob::latency_ns(fast.as_nanos() as u64)?;
        // Many bursts: on a loaded host most are too slow to catch two
        // commands executing, and one fast burst is enough.
        for _ in 0..200 {
            let b = burst(&mut q, fast)?;
            ensure_eq(
                b.table.len(),
                16,
                "the driver's table holds all 16 requests",
            )?;
            let ids: BTreeSet<i32> = b
                .table
                .iter()
                .filter(|r| !r.sg_io_owned)
                .map(|r| r.pack_id)
                .collect();
            ensure_eq(
                ids,
                (0..16).collect::<BTreeSet<i32>>(),
                "the queue's pack_ids, one each",
            )?;
            let executing = 16 - b.waiting.min(16);
            ensure(
                executing >= b.must_be_unfinished,
                format!(
                    "100 us: SG_GET_NUM_WAITING says {} of 16 done, but {} were submitted less \
                     than 100 us before and cannot be",
                    b.waiting, b.must_be_unfinished
                ),
            )?;
            most_executing = most_executing.max(executing);
            most_in_table = most_in_table.max(in_flight(&b.table));
            most_certain = most_certain.max(b.must_be_unfinished);
            collect(&mut q, &b.expect)?;
        }
    }
    println!(
        "100 us: at most {most_executing} of 16 not yet done per SG_GET_NUM_WAITING, \
         {most_in_table} in flight per SG_GET_REQUEST_TABLE ({most_certain} at most submitted \
         within 100 us of the question)"
    );
    if most_certain >= 2 {
        // Implied by the per-burst check; said for the reader of a failure.
        ensure(
            most_executing >= 2,
            format!("after bursts of 16 at 100 us the driver never had two requests executing at once (at most {most_executing})"),
        )?;
    } else {
        println!("100 us: no burst was fast enough on this host to require two executing at once");
    }
    // With 20 ms per command a burst of 16 submits normally ends long
    // before the first completes: the table catches them in flight, and
    // later every response is done and held until read. The bound is the
    // burst's own timing, so a descheduled test bed cannot make it fail.
    let slow = Duration::from_millis(20);
    let _latency = Knob::latency_ns(slow.as_nanos() as u64)?;
    let mut best = (0, 0);
    for _ in 0..10 {
        let b = burst(&mut q, slow)?;
        let now = in_flight(&b.table);
        ensure(
            now >= b.must_be_unfinished,
            format!(
                "20 ms: {now} of 16 in flight in the driver's table, but {} were submitted less \
                 than 20 ms before and cannot have completed",
                b.must_be_unfinished
            ),
        )?;
        if b.must_be_unfinished >= best.1 {
            best = (now, b.must_be_unfinished);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut waiting = 0;
        while Instant::now() < deadline {
            waiting = q.device().num_waiting()?;
            if waiting == 16 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        ensure_eq(waiting, 16, "SG_GET_NUM_WAITING once all are done")?;
        collect(&mut q, &b.expect)?;
        if b.must_be_unfinished >= 8 {
            break;
        }
    }
    ensure_eq(q.peak_in_flight(), 16, "peak")?;
    ensure_eq(
        q.device().requests()?.len(),
        0,
        "nothing left in the driver",
    )?;
    println!(
        "20 ms: {} of 16 in flight at once per SG_GET_REQUEST_TABLE ({} surely unfinished)",
        best.0, best.1
    );
    Ok(())
}

fn out_of_order(ctx: &Ctx) -> Result<(), Failed> {
    let lba0 = 312_000;
    let at: Vec<(u64, usize)> = (0..16)
        .map(|k| (lba0 + 32 * k as u64, 1 + (k * 7) % 32))
        .collect();
    let wants = seed(ctx, 2, &at)?;
    let block = open(ctx)?.block_size()? as usize;
    // Uniformly random latencies below 20 ms: the device finishes in any
    // order (a shorter range is no wider than the time a loaded host takes
    // to submit the 16, and then completions follow submission order).
    let _latency = Knob::latency_ns(20_000_000)?;
    let _random = Knob::scsi_debug("random", 1)?;
    let mut q = Queue::new(open(ctx)?)?;
    let mut inverted_rounds = 0;
    for round in 0..8 {
        let mut expect = HashMap::new();
        let mut submitted = Vec::new();
        for (k, &(lba, blocks)) in at.iter().enumerate() {
            // Mixed sizes, modes and queueing.
            let mut cmd = read_cmd(lba, blocks)?;
            if k % 3 == 1 {
                cmd = cmd.at_tail();
            }
            let payload = if k % 2 == 0 {
                Payload::read(DirectBuf::new(blocks * block))
            } else {
                Payload::read(vec![0u8; blocks * block])
            };
            let cmd = if k % 2 == 0 { cmd.direct() } else { cmd };
            let t = q.submit(&cmd, payload)?;
            expect.insert(
                t,
                Expect {
                    lba,
                    want: wants[k].clone(),
                },
            );
            submitted.push(t);
        }
        // The driver's own table, watched until all are done: a request
        // submitted later is done while an earlier one is still in flight.
        let pack_ids: Vec<i32> = submitted
            .iter()
            .map(|t| q.pack_id(*t).ok_or("pack_id of an in-flight ticket"))
            .collect::<Result<_, _>>()?;
        let mut inversion = None;
        for look in 0.. {
            ensure(look < 100_000, "the requests never all completed")?;
            let table = q.device().requests()?;
            let state = |p: i32| table.iter().find(|r| r.pack_id == p).map(|r| r.state);
            let states: Vec<_> = pack_ids.iter().map(|&p| state(p)).collect();
            if inversion.is_none() {
                inversion = (0..16).find_map(|later| {
                    let early = (0..later).find(|&e| {
                        states[e] == Some(RequestState::InFlight)
                            && states[later] == Some(RequestState::Done)
                    })?;
                    Some((early, later))
                });
            }
            if states.iter().all(|s| *s == Some(RequestState::Done)) {
                break;
            }
        }
        if let Some((early, later)) = inversion {
            inverted_rounds += 1;
            println!(
                "round {round}: the driver reported command {later} done while command {early} was in flight"
            );
        }
        // Collect in another order than submission: newest first by ticket
        // (the driver picks each by pack_id), or whatever comes, alternately.
        let mut order = Vec::new();
        if round % 2 == 0 {
            for t in submitted.iter().rev() {
                let c = q.wait_for(*t)?;
                ensure_eq(c.ticket, *t, "wait_for returned the asked ticket")?;
                check_read(&c, &expect)?;
                order.push(c.ticket);
            }
        } else {
            while q.pending() > 0 {
                let c = q.wait()?;
                check_read(&c, &expect)?;
                order.push(c.ticket);
            }
        }
        ensure_eq(
            order.iter().collect::<BTreeSet<_>>().len(),
            16,
            "16 distinct completions",
        )?;
    }
    ensure(
        inverted_rounds >= 4,
        format!(
            "the driver showed a later command done before an earlier one in only {inverted_rounds} of 8 random-latency rounds"
        ),
    )
}

fn head_and_tail(ctx: &Ctx) -> Result<(), Failed> {
    // With the device taking one command at a time, requests wait in the
    // block layer, where a head-of-queue request passes tail ones.
    let lba0 = 314_000;
    let at: Vec<(u64, usize)> = (0..6).map(|k| (lba0 + 16 * k, 8)).collect();
    let wants = seed(ctx, 3, &at)?;
    let block = open(ctx)?.block_size()? as usize;
    let sysfs = format!(
        "/sys/class/scsi_generic/{}/device/queue_depth",
        ctx.device.file_name().ok_or("node name")?.to_string_lossy()
    );
    let latency = Duration::from_millis(5);
    let _latency = Knob::latency_ns(latency.as_nanos() as u64)?;
    let _depth = Knob::set(&sysfs, 1)?;
    let mut q = Queue::new(open(ctx)?)?;
    // The device runs one command at a time, so command k cannot finish
    // before k + 1 latencies after the burst began: when the head-of-queue
    // request went in within 4 latencies, tail request 4 had not started
    // and must complete after it. A burst slowed down more than that (a
    // loaded host) proves nothing either way, and is tried again.
    for attempt in 0..10 {
        let mut expect = HashMap::new();
        let started = Instant::now();
        for (k, &(lba, blocks)) in at.iter().enumerate() {
            // The first five at the tail, the last at the head.
            let cmd = if k < 5 {
                read_cmd(lba, blocks)?.at_tail()
            } else {
                read_cmd(lba, blocks)?
            };
            let t = q.submit(&cmd, Payload::read(vec![0u8; blocks * block]))?;
            expect.insert(
                t,
                Expect {
                    lba,
                    want: wants[k].clone(),
                },
            );
        }
        let burst = started.elapsed();
        let mut order = Vec::new();
        while q.pending() > 0 {
            let c = q.wait()?;
            check_read(&c, &expect)?;
            order.push(c.ticket.id() - 6 * attempt);
        }
        println!("submitted 0..6 (5 at the head) in {burst:?}, completed {order:?}");
        if burst >= 4 * latency {
            continue;
        }
        let head = order.iter().position(|&t| t == 5).ok_or("ticket 5")?;
        return ensure(
            head < 5,
            format!("the head-of-queue request did not pass any tail request: {order:?}"),
        );
    }
    println!("no burst of 6 submits took less than 20 ms on this host: ordering not checked");
    Ok(())
}

fn one_error(ctx: &Ctx) -> Result<(), Failed> {
    // Reads around the failing LBA, and writes elsewhere, all in flight together.
    let reads: Vec<(u64, usize)> = (0..12).map(|k| (MEDIUM_ERR_LBA + 16 * k - 64, 8)).collect();
    let wants = seed(ctx, 4, &reads)?;
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let writes: Vec<(u64, Vec<u8>)> = (0..6)
        .map(|k| {
            let lba = 316_000 + 16 * k;
            (lba, data(40 + k, lba, block, 8 * block))
        })
        .collect();
    let _latency = Knob::latency_ns(100_000)?;
    let _opts = Knob::scsi_debug("opts", OPT_MEDIUM_ERR)?;
    let mut q = Queue::new(dev)?;
    let mut expect = HashMap::new();
    let mut write_tickets = BTreeSet::new();
    for (k, &(lba, blocks)) in reads.iter().enumerate() {
        let t = q.submit(
            &read_cmd(lba, blocks)?.direct(),
            Payload::read(DirectBuf::new(blocks * block)),
        )?;
        expect.insert(
            t,
            Expect {
                lba,
                want: wants[k].clone(),
            },
        );
        if let Some((wlba, w)) = writes.get(k / 2).filter(|_| k % 2 == 1) {
            let cmd = Command::new(Cdb::write(*wlba, 8)?);
            write_tickets.insert(q.submit(&cmd, Payload::write(w.clone()))?);
        }
    }
    let mut failed = 0;
    for c in q.drain()? {
        if write_tickets.contains(&c.ticket) {
            ensure(
                c.outcome.is_good(),
                format!("write {} failed: {:?}", c.ticket, c.outcome.sense),
            )?;
            continue;
        }
        let lba = expect.get(&c.ticket).ok_or("unknown ticket")?.lba;
        if lba == MEDIUM_ERR_LBA {
            failed += 1;
            ensure_eq(
                c.outcome.failure_kind(),
                Some(ScsiErrorKind::CheckCondition),
                "kind",
            )?;
            let sense = c.outcome.sense.as_ref().ok_or("sense")?;
            ensure_eq(sense.key, sgmap::sense::SenseKey::MediumError, "sense key")?;
            ensure_eq(sense.information, Some(MEDIUM_ERR_LBA), "failing LBA")?;
            let err = c.check(q.path()).err().ok_or("check passed")?;
            let text = err.to_string();
            ensure(
                text.contains("READ") && text.contains(&ctx.device.display().to_string()),
                text,
            )?;
        } else {
            check_read(&c, &expect)?;
            ensure_eq(c.outcome.mode, Mode::Direct, "direct read")?;
        }
    }
    ensure_eq(failed, 1, "exactly one command failed")?;
    drop(q);
    drop(_opts);
    let dev = open(ctx)?;
    for (lba, w) in &writes {
        let mut got = vec![0u8; w.len()];
        dev.read_blocks(*lba, &mut got, BlockIo::indirect())?;
        same(&got, w, &format!("write at {lba} among the failing read"))?;
    }
    Ok(())
}

fn mixed(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let max_blocks = dev.max_transfer() / block;
    let sizes: Vec<usize> = vec![1, 3, 8, 16, 64, 128, 255, 256, 1024, max_blocks, 2, 33];
    let mut lba = 320_000u64;
    let plan: Vec<(u64, usize, bool)> = sizes
        .iter()
        .enumerate()
        .map(|(k, &n)| {
            let at = lba;
            lba += n as u64 + 8;
            (at, n, k % 2 == 0)
        })
        .collect();
    let _latency = Knob::latency_ns(100_000)?;
    let mut q = Queue::new(dev)?;
    // Phase 1: all the writes in flight together, direct and indirect,
    // with a no-data command among them.
    let mut modes = HashMap::new();
    for (k, &(lba, n, direct)) in plan.iter().enumerate() {
        let want = data(50 + k as u64, lba, block, n * block);
        let cmd = Command::new(Cdb::write(lba, n as u32)?);
        let t = if direct {
            q.submit(&cmd.direct(), Payload::write(DirectBuf::from_slice(&want)))?
        } else {
            q.submit(&cmd, Payload::write(want))?
        };
        modes.insert(t, if direct { Mode::Direct } else { Mode::Indirect });
        if k == 4 {
            let t = q.submit(&Command::new(Cdb::test_unit_ready()), Payload::None)?;
            modes.insert(t, Mode::NoData);
        }
    }
    for c in q.drain()? {
        ensure(
            c.outcome.is_good(),
            format!("{} failed: {:?}", c.ticket, c.outcome.sense),
        )?;
        let want = modes.get(&c.ticket).ok_or("ticket")?;
        ensure_eq(c.outcome.mode, *want, format!("mode of {}", c.ticket))?;
        ensure_eq(c.outcome.fallback, None, "no fallback")?;
    }
    // With allow_dio off the kernel copies instead; the queue's outcome says
    // so and why, as the synchronous API's does.
    let extra_lba = lba;
    let want_extra = data(60, extra_lba, block, 8 * block);
    {
        let _dio_off = Knob::allow_dio(false)?;
        let cmd = Command::new(Cdb::write(extra_lba, 8)?).direct();
        let t = q.submit(&cmd, Payload::write(DirectBuf::from_slice(&want_extra)))?;
        let c = q.wait_for(t)?.check(q.path())?;
        ensure_eq(c.outcome.requested_mode, Mode::Direct, "requested")?;
        ensure_eq(c.outcome.mode, Mode::Indirect, "ran")?;
        ensure_eq(c.outcome.fallback, Some(Fallback::AllowDioOff), "why")?;
    }
    // Phase 2: read everything back, each in the other mode.
    let mut expect = HashMap::new();
    for (k, &(lba, n, direct)) in plan.iter().enumerate() {
        let want = data(50 + k as u64, lba, block, n * block);
        let cmd = read_cmd(lba, n)?;
        let t = if direct {
            q.submit(&cmd, Payload::read(vec![0u8; n * block]))?
        } else {
            q.submit(&cmd.direct(), Payload::read(DirectBuf::new(n * block)))?
        };
        expect.insert(t, Expect { lba, want });
    }
    let t = q.submit(
        &read_cmd(extra_lba, 8)?,
        Payload::read(vec![0u8; 8 * block]),
    )?;
    expect.insert(
        t,
        Expect {
            lba: extra_lba,
            want: want_extra,
        },
    );
    let mut n = 0;
    for c in q.drain()? {
        check_read(&c, &expect)?;
        n += 1;
    }
    ensure_eq(n, plan.len() + 1, "reads collected")
}

fn forty(ctx: &Ctx) -> Result<(), Failed> {
    let lba0 = 361_000;
    let at: Vec<(u64, usize)> = (0..40).map(|k| (lba0 + 4 * k, 4)).collect();
    let wants = seed(ctx, 5, &at)?;
    let block = open(ctx)?.block_size()? as usize;
    let _latency = Knob::latency_ns(100_000)?;

    // The kernel's limit is real: a 17th raw write() on one fd is EDOM.
    let raw = open(ctx)?;
    let mut cdb = [0u8; 6];
    let mut sense = [0u8; 32];
    let mut seen = Vec::new();
    for _ in 0..17 {
        let mut h = sys::sg_io_hdr::new();
        h.cmd_len = 6;
        h.cmdp = cdb.as_mut_ptr();
        h.mx_sb_len = 32;
        h.sbp = sense.as_mut_ptr();
        h.timeout = 10_000;
        // SAFETY: a whole header; TEST UNIT READY moves no data; the CDB and
        // sense buffers outlive the fd (dropped at the end of this function,
        // after `raw`), and the driver writes sense only when a read() asks.
        let r = unsafe {
            libc::write(
                raw.as_raw_fd(),
                (&h as *const sys::sg_io_hdr).cast(),
                std::mem::size_of_val(&h),
            )
        };
        seen.push(if r < 0 {
            Some(nix::errno::Errno::last())
        } else {
            None
        });
    }
    ensure(
        seen[..16].iter().all(Option::is_none),
        format!("first 16 raw writes: {seen:?}"),
    )?;
    ensure_eq(seen[16], Some(nix::errno::Errno::EDOM), "17th raw write")?;
    drop(raw);

    // Through the queue: 40 submits in a row, none refused.
    let mut q = Queue::new(open(ctx)?)?;
    let mut expect = HashMap::new();
    for (k, &(lba, blocks)) in at.iter().enumerate() {
        let t = q.submit(
            &read_cmd(lba, blocks)?,
            Payload::read(vec![0u8; blocks * block]),
        )?;
        expect.insert(
            t,
            Expect {
                lba,
                want: wants[k].clone(),
            },
        );
        ensure(
            q.in_flight() <= MAX_IN_FLIGHT,
            "never more than 16 in the driver",
        )?;
    }
    ensure_eq(q.pending(), 40, "all 40 pending")?;
    ensure_eq(
        q.peak_in_flight(),
        MAX_IN_FLIGHT,
        "the driver's limit was reached",
    )?;
    let mut got = BTreeSet::new();
    while q.pending() > 0 {
        let c = q.wait()?;
        check_read(&c, &expect)?;
        got.insert(c.ticket.id());
    }
    ensure_eq(
        got,
        (0..40).collect::<BTreeSet<u64>>(),
        "every ticket completed once",
    )
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
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    drop(dev);
    let len = 64 * 1024;
    let blocks = len / block;
    let wlba = 362_000u64;
    // Long enough that every drop below finds its commands in flight, even
    // on a loaded host where 16 submissions take more than a millisecond.
    let _latency = Knob::latency_ns(5_000_000)?;
    let mut base: Option<(usize, u64)> = None;
    let mut busy_at_drop = 0;
    for it in 0..240u64 {
        let mut q = Queue::new(sgmap::Device::open(&ctx.device)?)?;
        for k in 0..14u64 {
            let cmd = read_cmd(k * blocks as u64, blocks)?;
            if k % 2 == 0 {
                q.submit(&cmd.direct(), Payload::read(DirectBuf::new(len)))?;
            } else {
                q.submit(&cmd, Payload::read(vec![0u8; len]))?;
            }
        }
        // Two writes: they must land whole even though nobody collects them.
        let w = data(it, wlba, block, 2 * len);
        q.submit(
            &Command::new(Cdb::write(wlba, blocks as u32)?).direct(),
            Payload::write(DirectBuf::from_slice(&w[..len])),
        )?;
        q.submit(
            &Command::new(Cdb::write(wlba + blocks as u64, blocks as u32)?),
            Payload::write(w[len..].to_vec()),
        )?;
        if q.device()
            .requests()?
            .iter()
            .any(|r| r.state == RequestState::InFlight)
        {
            busy_at_drop += 1;
        }
        // A pool with commands in flight too.
        let mut pool = Pool::open(&ctx.device, 3, len)?;
        for k in 0..3u64 {
            let lease = pool.lease().ok_or("lease")?;
            lease.submit(
                &read_cmd(k * blocks as u64, blocks)?,
                sgmap::Direction::FromDevice,
                len,
            )?;
        }
        drop(q);
        drop(pool);
        // The freed buffers' memory: fill what the allocator hands out now,
        // wait past the latency, and check nobody wrote into it.
        let canaries: Vec<DirectBuf> = (0..8)
            .map(|_| {
                let mut b = DirectBuf::new(len);
                b.fill(0x5a);
                b
            })
            .chain((0..8).map(|_| DirectBuf::from_slice(&vec![0x5au8; len])))
            .collect();
        let heap: Vec<Vec<u8>> = (0..8).map(|_| vec![0x5au8; len]).collect();
        if it % 40 == 0 {
            std::thread::sleep(Duration::from_millis(10));
            ensure(
                canaries.iter().all(|c| c.iter().all(|&b| b == 0x5a))
                    && heap.iter().all(|c| c.iter().all(|&b| b == 0x5a)),
                "memory freed by a dropped queue was written afterwards",
            )?;
            let dev = open(ctx)?;
            let mut got = vec![0u8; 2 * len];
            dev.read_blocks(wlba, &mut got, BlockIo::indirect())?;
            same(
                &got,
                &w,
                &format!("writes in flight at drop, iteration {it}"),
            )?;
        }
        if it == 20 {
            base = Some((fd_count()?, rss_pages()?));
        }
    }
    let (fd0, rss0) = base.ok_or("no baseline")?;
    let (fd1, rss1) = (fd_count()?, rss_pages()?);
    println!("fds {fd0} -> {fd1}, rss pages {rss0} -> {rss1}; {busy_at_drop} of 240 drops had commands in flight");
    ensure_eq(fd1, fd0, "open fds after 220 more drops")?;
    // Each iteration allocates over 1 MiB of buffers: a leak would show.
    ensure(
        rss1 <= rss0 + 1024,
        format!("RSS grew from {rss0} to {rss1} pages over 220 drops"),
    )?;
    ensure(
        busy_at_drop >= 200,
        format!("only {busy_at_drop} of 240 drops had commands in flight"),
    )
}

fn event_loop(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 363_000;
    let wants = seed(ctx, 6, &[(lba, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let latency = Duration::from_millis(50);
    let _latency = Knob::latency_ns(latency.as_nanos() as u64)?;
    let mut q = Queue::new(open(ctx)?)?;
    ensure(
        q.try_complete()?.is_none(),
        "nothing pending, nothing complete",
    )?;
    let submitted = Instant::now();
    let t = q.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    // A 50 ms command cannot be complete sooner than 50 ms after its submit
    // began; later than that (a descheduled test bed) it may be.
    let early = q.try_complete()?.is_some();
    ensure(
        !early || submitted.elapsed() >= latency,
        "a 50 ms command was complete at once",
    )?;
    let early = early || q.wait_timeout(Duration::from_millis(1))?.is_some();
    ensure(
        !early || submitted.elapsed() >= latency,
        "a 50 ms command was complete after 1 ms",
    )?;
    if early {
        println!("the host was too slow to see the 50 ms command in flight");
        return Ok(());
    }
    // The caller's own poll on the queue's fd says when to collect.
    let mut fds = [nix::poll::PollFd::new(
        q.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let n = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16))?;
    ensure_eq(n, 1, "POLLIN within 5 s")?;
    let c = q.try_complete()?.ok_or("try_complete after POLLIN")?;
    ensure_eq(c.ticket, t, "ticket")?;
    same(c.bytes(), &wants[0], "event-loop read")?;
    match q.wait() {
        Err(Error::InvalidRequest { reason, .. }) => {
            ensure(reason.contains("no command is pending"), reason)?
        }
        other => return Err(format!("wait on an empty queue: {other:?}").into()),
    }
    match q.wait_for(t) {
        Err(Error::InvalidRequest { reason, .. }) => {
            ensure(reason.contains("already collected"), reason)
        }
        other => Err(format!("wait_for a collected ticket: {other:?}").into()),
    }
}

fn eintr(ctx: &Ctx) -> Result<(), Failed> {
    let lba = 363_500;
    let wants = seed(ctx, 7, &[(lba, 8), (lba + 8, 8)])?;
    let block = open(ctx)?.block_size()? as usize;
    let _latency = Knob::latency_ns(300_000_000)?;
    let mut q = Queue::new(open(ctx)?)?;
    let t1 = q.submit(&read_cmd(lba, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    let t2 = q.submit(&read_cmd(lba + 8, 8)?, Payload::read(vec![0u8; 8 * block]))?;
    // A handler without SA_RESTART: a blocked read() returns EINTR.
    let ((r1, r2), signals) = under_sigusr1(|| (q.wait_for(t1), q.wait()))?;
    let (c1, c2) = (r1?, r2?);
    same(c1.bytes(), &wants[0], "first read")?;
    ensure_eq(c2.ticket, t2, "second ticket")?;
    same(c2.bytes(), &wants[1], "second read")?;
    ensure(
        signals >= 5,
        format!("only {signals} signals arrived during the 300 ms wait"),
    )
}

fn rejected(ctx: &Ctx) -> Result<(), Failed> {
    let mut q = Queue::new(open(ctx)?)?;
    // Too long for any command: refused before the kernel, buffer back.
    let cmd = Command::new(Cdb::read_16(0, 8)?);
    let big = vec![0u8; 256 << 20];
    let addr = big.as_ptr();
    let r = q.submit(&cmd, Payload::read(big)).err().ok_or("accepted")?;
    ensure(r.to_string().contains("256 MiB"), r.to_string())?;
    let (err, data) = r.into_parts();
    ensure(
        matches!(err, Error::InvalidRequest { .. }),
        format!("{err:?}"),
    )?;
    let buf = data.into_buffer().ok_or("buffer given back")?;
    ensure(
        buf.len() == 256 << 20 && buf.as_ptr() == addr,
        "the same buffer comes back",
    )?;
    drop(buf);
    // A queue built on a non-blocking handle still waits properly.
    let dev = sgmap::Device::options()
        .nonblocking(true)
        .open(&ctx.device)?;
    let mut q2 = Queue::new(dev)?;
    q2.submit(&Command::new(Cdb::test_unit_ready()), Payload::None)?;
    let c = q2.wait()?;
    ensure(
        c.outcome.is_good() || c.outcome.failure_kind() == Some(ScsiErrorKind::UnitAttention),
        "TUR",
    )?;
    ensure_eq(q.in_flight(), 0, "nothing in flight after a refusal")?;
    Ok(())
}

/// `try_submit` on a full queue returns at once with the buffer; `submit`
/// there would wait for a completion (100 ms away).
fn try_submit(ctx: &Ctx) -> Result<(), Failed> {
    let at: Vec<(u64, usize)> = (0..MAX_IN_FLIGHT as u64)
        .map(|k| (330_000 + 4 * k, 4))
        .collect();
    let wants = seed(ctx, 9, &at)?;
    let block = open(ctx)?.block_size()? as usize;
    let mut q = Queue::new(open(ctx)?)?;
    let latency = Duration::from_millis(100);
    let knobs = Knob::latency_ns(latency.as_nanos() as u64)?;
    let mut expect = HashMap::new();
    let started = Instant::now();
    for (k, &(lba, blocks)) in at.iter().enumerate() {
        let t = q.try_submit(
            &read_cmd(lba, blocks)?,
            Payload::read(vec![0u8; blocks * block]),
        )?;
        expect.insert(
            t,
            Expect {
                lba,
                want: wants[k].clone(),
            },
        );
    }
    let extra = q.try_submit(&read_cmd(0, 1)?, Payload::read(vec![7u8; block]));
    let took = started.elapsed();
    let rejected = match extra {
        Ok(t) => return Err(format!("a 17th command was accepted ({t}) with 16 in flight").into()),
        Err(r) => r,
    };
    ensure(
        rejected.is_full(),
        format!("refused as full: {}", rejected.error()),
    )?;
    ensure_eq(
        rejected.error().errno(),
        Some(nix::errno::Errno::EAGAIN),
        "errno",
    )?;
    ensure(
        took < latency / 2,
        format!("17 try_submits took {took:?}: one waited for a completion"),
    )?;
    let (_, back) = rejected.into_parts();
    ensure(
        matches!(&back, Payload::FromDevice(b) if b.len() == block && b.iter().all(|&x| x == 7)),
        "the buffer comes back untouched",
    )?;
    ensure_eq(q.in_flight(), MAX_IN_FLIGHT, "in flight")?;
    // The raw fd turns readable when a completion is ready.
    let mut pfd = libc::pollfd {
        fd: q.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, valid for the call.
    let ready = unsafe { libc::poll(&mut pfd, 1, 2000) };
    ensure(
        ready == 1 && pfd.revents & libc::POLLIN != 0,
        format!("poll on the raw fd: {ready}"),
    )?;
    // Room again once one completion is collected.
    let first = q.wait()?;
    check_read(&first, &expect)?;
    let t = q.try_submit(
        &read_cmd(at[0].0, at[0].1)?,
        Payload::read(vec![0u8; at[0].1 * block]),
    )?;
    expect.insert(
        t,
        Expect {
            lba: at[0].0,
            want: wants[0].clone(),
        },
    );
    for c in q.drain()? {
        check_read(&c, &expect)?;
    }
    drop(knobs);
    Ok(())
}
