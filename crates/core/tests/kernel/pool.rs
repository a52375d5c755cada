//! The mmap fd pool: N zero-copy commands in flight through write()/read(),
//! one per fd, and the reserved-buffer rules that make a pool fd take only
//! mmap-ed commands.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use sgmap::{
    cdb::Cdb, BlockIo, Command, Direction, Error, Mode, Payload, Pool, Queue, RequestState,
    ScsiErrorKind, Ticket,
};
use sgmap_sys as sys;
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same, surely_unfinished};

pub(crate) const TESTS: [KernelTest; 6] = [
    KernelTest::scsi_debug(
        "pool_integrity_sizes_1_to_16_mmap_write_then_read_zero_copy",
        sizes_1_to_16,
    ),
    KernelTest::scsi_debug("pool_commands_overlap_in_the_driver_at_100us", overlap),
    KernelTest::scsi_debug(
        "mmap_io_works_through_sg_io_and_through_write_read_on_one_fd",
        sg_io_and_async,
    ),
    KernelTest::scsi_debug(
        "indirect_on_a_mapped_fd_makes_mmap_ebusy_but_pool_users_never_see_it",
        no_ebusy,
    ),
    KernelTest::scsi_debug(
        "pool_medium_error_on_one_fd_leaves_the_others_correct",
        one_error,
    ),
    KernelTest::scsi_debug(
        "pool_wait_for_lease_and_event_loop_rules",
        wait_for_and_leases,
    ),
];

/// Byte offset of the pool tests' region (so LBAs work for any block size).
const BASE: u64 = 110 << 20;

fn sizes_1_to_16(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let len = 64 * 1024;
    let blocks = (len / block) as u32;
    let lba0 = BASE / block as u64;
    for n in 1..=16usize {
        let mut pool = Pool::open(&ctx.device, n, len)?;
        ensure_eq(pool.len(), n, "fds")?;
        ensure(
            pool.buffer_len() >= len,
            format!("buffer {}", pool.buffer_len()),
        )?;
        // Write n distinct patterns, all in flight at once.
        let mut wants = HashMap::new();
        for k in 0..n {
            let lba = lba0 + (k as u64) * u64::from(blocks);
            let want = data(1000 + n as u64 * 100 + k as u64, lba, block, len);
            let mut lease = pool.lease().ok_or("a free buffer")?;
            lease.buffer_mut().ok_or("writable")?[..len].copy_from_slice(&want);
            let t = lease.submit(
                &Command::new(Cdb::write(lba, blocks)?),
                Direction::ToDevice,
                len,
            )?;
            wants.insert(t, (lba, want));
        }
        ensure(
            pool.lease().is_none(),
            "no free buffer while all are in flight",
        )?;
        ensure_eq(pool.peak_in_flight(), n, "all in flight at once")?;
        for _ in 0..n {
            let done = pool.wait()?;
            done.check()?;
            ensure_eq(done.outcome().mode, Mode::Mmap, "write mode")?;
        }
        // Scribble over the buffers, then read back through them.
        let mut addr = HashMap::new();
        let mut reads = HashMap::new();
        for k in 0..n {
            let lba = lba0 + (k as u64) * u64::from(blocks);
            let mut lease = pool.lease().ok_or("a free buffer")?;
            lease.buffer_mut().ok_or("writable")?.fill(0xee);
            addr.insert(lease.index(), lease.buffer().as_ptr() as usize);
            let t = lease.submit(
                &Command::new(Cdb::read(lba, blocks)?),
                Direction::FromDevice,
                len,
            )?;
            reads.insert(t, lba);
        }
        for _ in 0..n {
            let done = pool.wait()?;
            done.check()?;
            ensure_eq(done.outcome().mode, Mode::Mmap, "read mode")?;
            let lba = reads.get(&done.ticket()).ok_or("ticket")?;
            let want = wants
                .values()
                .find(|(l, _)| l == lba)
                .map(|(_, w)| w)
                .ok_or("lba")?;
            // Zero copy: the bytes are where that fd's mapping is.
            ensure_eq(
                done.data().as_ptr() as usize,
                addr[&done.index()],
                "data lent from the fd's own mapping",
            )?;
            same(done.data(), want, &format!("pool of {n}, read at {lba}"))?;
        }
        ensure_eq(pool.idle(), n, "all buffers free again")?;
    }
    Ok(())
}

fn overlap(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let mut pool = Pool::open(&ctx.device, 8, 64 * 1024)?;
    let lba0 = BASE / block as u64;
    // Submits a read on every fd back to back, then asks the driver once,
    // with one poll() over all fds, which have a completion ready. Also says
    // how many of the burst cannot have completed by then (see
    // `surely_unfinished`): the check that holds whatever the host's load.
    let burst = |pool: &mut Pool,
                 latency: Duration|
     -> Result<(usize, Vec<sgmap::RequestInfo>, usize), Failed> {
        let mut submitted = Vec::new();
        while let Some(lease) = pool.lease() {
            let lba = lba0 + 128 * lease.index() as u64;
            submitted.push(Instant::now());
            lease.submit(
                &Command::new(Cdb::read(lba, 16)?),
                Direction::FromDevice,
                16 * block,
            )?;
        }
        let fds = pool.fds();
        let mut pfds: Vec<_> = fds
            .iter()
            .map(|fd| nix::poll::PollFd::new(*fd, nix::poll::PollFlags::POLLIN))
            .collect();
        nix::poll::poll(&mut pfds, nix::poll::PollTimeout::ZERO)?;
        let not_done = pfds
            .iter()
            .filter(|p| {
                !p.revents()
                    .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLIN))
            })
            .count();
        drop(pfds);
        drop(fds);
        let table = pool.driver_requests()?;
        let certain = surely_unfinished(&submitted, Instant::now(), latency);
        Ok((not_done, table, certain))
    };
    let in_flight = |table: &[sgmap::RequestInfo]| {
        table
            .iter()
            .filter(|r| r.state == RequestState::InFlight)
            .count()
    };
    // At 100 us per command a submit costs about as much as the command in
    // the test bed, so only the last few of a burst are still executing; the
    // driver holds all eight at once, one per fd.
    let fast = Duration::from_micros(100);
    let (mut most, mut most_certain) = (0, 0);
    {
        let _latency = Knob::latency_ns(fast.as_nanos() as u64)?;
        for _ in 0..20 {
            let (not_done, table, certain) = burst(&mut pool, fast)?;
            ensure_eq(table.len(), 8, "one request per fd in the driver at once")?;
            ensure(
                table.iter().all(|r| !r.sg_io_owned),
                "the pool's requests are write()/read() requests, not SG_IO",
            )?;
            ensure(
                in_flight(&table) >= certain,
                format!(
                    "100 us: {} of 8 in flight per the request tables, but {certain} were \
                     submitted less than 100 us before and cannot have completed",
                    in_flight(&table)
                ),
            )?;
            most = most.max(not_done);
            most_certain = most_certain.max(certain);
            while pool.pending() > 0 {
                let done = pool.wait()?;
                done.check()?;
                ensure_eq(done.outcome().mode, Mode::Mmap, "mode")?;
            }
        }
    }
    println!(
        "100 us: at most {most} of 8 pool fds without a completion right after a burst (poll); \
         {most_certain} at most submitted within 100 us of the question"
    );
    // With 20 ms per command the request tables catch most of a burst in
    // flight; the bound is the burst's own timing, so a descheduled test bed
    // cannot make this fail, and a driver that ran them one at a time would.
    let slow = Duration::from_millis(20);
    let _latency = Knob::latency_ns(slow.as_nanos() as u64)?;
    let mut best = (0, 0);
    for _ in 0..10 {
        let (_, table, certain) = burst(&mut pool, slow)?;
        let now = in_flight(&table);
        ensure(
            now >= certain,
            format!(
                "20 ms: only {now} of 8 in flight per the request tables, but {certain} were \
                 submitted less than 20 ms before and cannot have completed"
            ),
        )?;
        if certain >= best.1 {
            best = (now, certain);
        }
        while pool.pending() > 0 {
            pool.wait()?.check()?;
        }
        if certain >= 4 {
            break;
        }
    }
    ensure_eq(pool.peak_in_flight(), 8, "peak")?;
    println!(
        "20 ms: {} of 8 pool commands in flight at once per SG_GET_REQUEST_TABLE ({} surely unfinished)",
        best.0, best.1
    );
    Ok(())
}

fn sg_io_and_async(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let len = 64 * 1024;
    let blocks = (len / block) as u32;
    let lba = (BASE + (4 << 20)) / block as u64;
    let (a, b) = (data(71, lba, block, len), data(72, lba, block, len));
    let mut m = dev.map_reserved(len)?;
    // SG_IO with SG_FLAG_MMAP_IO: write A, read it back.
    m.as_mut_slice().ok_or("writable")?[..len].copy_from_slice(&a);
    ensure_eq(
        m.write_blocks(lba, blocks)?.mode,
        Mode::Mmap,
        "SG_IO write mode",
    )?;
    m.as_mut_slice().ok_or("writable")?.fill(0);
    same(m.read_blocks(lba, blocks)?, &a, "SG_IO mmap read")?;
    m.as_mut_slice().ok_or("writable")?.fill(0);
    // The same fd through write()/read(): read A, then write B.
    let _latency = Knob::latency_ns(2_000_000)?;
    let mut pool = Pool::from_mapped(vec![m])?;
    let lease = pool.lease().ok_or("lease")?;
    let t = lease.submit(
        &Command::new(Cdb::read(lba, blocks)?),
        Direction::FromDevice,
        len,
    )?;
    let table = pool.driver_requests()?;
    ensure(
        table.len() == 1 && !table[0].sg_io_owned,
        format!("one write() request on the fd: {table:?}"),
    )?;
    let done = pool.wait_for(t)?;
    done.check()?;
    ensure_eq(done.outcome().mode, Mode::Mmap, "write()/read() read mode")?;
    same(done.data(), &a, "write()/read() mmap read")?;
    drop(done);
    let mut lease = pool.lease().ok_or("lease")?;
    lease.buffer_mut().ok_or("writable")?[..len].copy_from_slice(&b);
    let t = lease.submit(
        &Command::new(Cdb::write(lba, blocks)?),
        Direction::ToDevice,
        len,
    )?;
    let done = pool.wait_for(t)?;
    done.check()?;
    ensure_eq(
        done.outcome().transferred(),
        len,
        "write()/read() write length",
    )?;
    drop(done);
    // Back to SG_IO on the same mapping.
    let mut m = pool.into_mapped()?.pop().ok_or("device back")?;
    m.as_mut_slice().ok_or("writable")?.fill(0);
    same(
        m.read_blocks(lba, blocks)?,
        &b,
        "SG_IO read of the write()/read() write",
    )?;
    // And an independent check through a plain fd.
    let mut got = vec![0u8; len];
    open(ctx)?.read_blocks(lba, &mut got, BlockIo::indirect())?;
    same(&got, &b, "indirect read")
}

fn no_ebusy(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let lba = (BASE + (5 << 20)) / block as u64;
    let _latency = Knob::latency_ns(20_000_000)?;
    // The kernel's rule: an indirect request that fits the reserved buffer
    // borrows it, and an mmap-ed request on that fd meanwhile is EBUSY.
    let m = dev.map_reserved(64 * 1024)?;
    let fd = m.as_raw_fd();
    let mut cdb = *Cdb::read_10(lba as u32, 8)
        .as_bytes()
        .first_chunk::<10>()
        .ok_or("cdb")?;
    let mut sense = [0u8; 32];
    let mut buf = vec![0u8; 8 * block];
    let hdr = |flags: u32, dxferp: *mut u8, cdb: &mut [u8; 10], sense: &mut [u8; 32]| {
        let mut h = sys::sg_io_hdr::new();
        h.cmd_len = 10;
        h.cmdp = cdb.as_mut_ptr();
        h.mx_sb_len = 32;
        h.sbp = sense.as_mut_ptr();
        h.dxfer_direction = sys::SG_DXFER_FROM_DEV;
        h.dxfer_len = (8 * block) as u32;
        h.dxferp = dxferp.cast();
        h.flags = flags;
        h.timeout = 10_000;
        h
    };
    let write = |h: &sys::sg_io_hdr| -> Option<nix::errno::Errno> {
        // SAFETY: a whole header; its CDB, sense and data buffers live until
        // the responses are read below.
        let r = unsafe {
            libc::write(
                fd,
                (h as *const sys::sg_io_hdr).cast(),
                std::mem::size_of_val(h),
            )
        };
        (r < 0).then(nix::errno::Errno::last)
    };
    let indirect = hdr(0, buf.as_mut_ptr(), &mut cdb, &mut sense);
    ensure_eq(write(&indirect), None, "indirect write()")?;
    let mapped = hdr(
        sys::SG_FLAG_MMAP_IO,
        std::ptr::null_mut(),
        &mut cdb,
        &mut sense,
    );
    ensure_eq(
        write(&mapped),
        Some(nix::errno::Errno::EBUSY),
        "mmap-ed request while an indirect one holds the reserved buffer",
    )?;
    let mut resp = sys::sg_io_hdr::new();
    // SAFETY: reads the indirect request back into `buf` and `sense`, both alive.
    let r = unsafe {
        libc::read(
            fd,
            (&mut resp as *mut sys::sg_io_hdr).cast(),
            std::mem::size_of_val(&resp),
        )
    };
    ensure(r > 0, "read the indirect response")?;
    drop(m);

    // The API: a pool never sends anything but mmap-ed commands...
    let mut pool = Pool::open(&ctx.device, 4, 64 * 1024)?;
    let lease = pool.lease().ok_or("lease")?;
    match lease.submit(
        &Command::new(Cdb::read(lba, 8)?).direct(),
        Direction::FromDevice,
        8 * block,
    ) {
        Err(Error::InvalidRequest { reason, .. }) => ensure(reason.contains("queue"), reason)?,
        other => return Err(format!("direct IO on a pool fd: {other:?}").into()),
    }
    // ...so pool and queue, busy side by side on one device, never collide.
    drop(_latency);
    let _latency = Knob::latency_ns(100_000)?;
    let want = data(81, lba, block, 64 * block);
    open(ctx)?.write_blocks(lba, &want, BlockIo::indirect())?;
    let mut q = Queue::new(open(ctx)?)?;
    let mut pool_reads: HashMap<Ticket, u64> = HashMap::new();
    let mut queue_reads: HashMap<Ticket, u64> = HashMap::new();
    for round in 0..30u64 {
        for k in 0..8u64 {
            let at = lba + (round + k) % 56;
            let t = q.submit(
                &Command::new(Cdb::read(at, 8)?),
                Payload::read(vec![0u8; 8 * block]),
            )?;
            queue_reads.insert(t, at);
        }
        while let Some(lease) = pool.lease() {
            let at = lba + (round * 3 + lease.index() as u64) % 56;
            let t = lease.submit(
                &Command::new(Cdb::read(at, 8)?),
                Direction::FromDevice,
                8 * block,
            )?;
            pool_reads.insert(t, at);
        }
        for c in q.drain()? {
            let c = c.check(q.path())?;
            let at = queue_reads.remove(&c.ticket).ok_or("ticket")?;
            let off = ((at - lba) as usize) * block;
            same(c.bytes(), &want[off..off + 8 * block], "queue read")?;
        }
        while pool.pending() > 0 {
            let done = pool.wait()?;
            done.check()?;
            let at = pool_reads.remove(&done.ticket()).ok_or("ticket")?;
            let off = ((at - lba) as usize) * block;
            same(done.data(), &want[off..off + 8 * block], "pool read")?;
        }
    }
    Ok(())
}

fn one_error(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let lbas: Vec<u64> = (0..6).map(|k| 0x1234 + 16 * k - 32).collect();
    let wants: Vec<Vec<u8>> = lbas
        .iter()
        .map(|&l| data(90, l, block, 8 * block))
        .collect();
    for (l, w) in lbas.iter().zip(&wants) {
        dev.write_blocks(*l, w, BlockIo::indirect())?;
    }
    let _latency = Knob::latency_ns(100_000)?;
    let _opts = Knob::scsi_debug("opts", sgmap_testkit::sdebug_opts::MEDIUM_ERR)?;
    let mut pool = Pool::open(&ctx.device, 6, 8 * block)?;
    let mut at = HashMap::new();
    for (k, &l) in lbas.iter().enumerate() {
        let lease = pool.lease().ok_or("lease")?;
        let t = lease.submit(
            &Command::new(Cdb::read(l, 8)?),
            Direction::FromDevice,
            8 * block,
        )?;
        at.insert(t, k);
    }
    let mut failures = 0;
    while pool.pending() > 0 {
        let done = pool.wait()?;
        let k = at[&done.ticket()];
        if lbas[k] == 0x1234 {
            failures += 1;
            let err = done.check().err().ok_or("the read of 0x1234 succeeded")?;
            let s = err.scsi().ok_or("SCSI error")?;
            ensure_eq(s.kind, ScsiErrorKind::CheckCondition, "kind")?;
            ensure(
                err.to_string().contains(&ctx.device.display().to_string()),
                err.to_string(),
            )?;
        } else {
            done.check()?;
            same(done.data(), &wants[k], &format!("read at {}", lbas[k]))?;
        }
    }
    ensure_eq(failures, 1, "one failure")
}

fn wait_for_and_leases(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let lba = (BASE + (6 << 20)) / block as u64;
    let latency = Duration::from_millis(30);
    let _latency = Knob::latency_ns(latency.as_nanos() as u64)?;
    let mut pool = Pool::open(&ctx.device, 3, 16 * block)?;
    ensure(pool.try_complete()?.is_none(), "nothing pending")?;
    // None of the three can be done sooner than 30 ms after the first
    // submit began; a burst slowed past that (a descheduled test bed) may
    // see one done, and is tried again.
    let mut tickets = Vec::new();
    for attempt in 0.. {
        ensure(attempt < 10, "no burst of 3 submits took less than 30 ms")?;
        tickets.clear();
        let submitted = Instant::now();
        while let Some(lease) = pool.lease() {
            tickets.push(lease.submit(
                &Command::new(Cdb::read(lba, 16)?),
                Direction::FromDevice,
                16 * block,
            )?);
        }
        let done_early = pool.try_complete()?.is_some();
        ensure(
            !done_early || submitted.elapsed() >= latency,
            "a 30 ms command was done at once",
        )?;
        if !done_early {
            break;
        }
        while pool.pending() > 0 {
            pool.wait()?.check()?;
        }
    }
    // The caller's own poll: one fd per command.
    let fds = pool.fds();
    let mut pfds: Vec<_> = fds
        .iter()
        .map(|fd| nix::poll::PollFd::new(*fd, nix::poll::PollFlags::POLLIN))
        .collect();
    let n = nix::poll::poll(&mut pfds, nix::poll::PollTimeout::from(5000u16))?;
    ensure(n >= 1, "POLLIN on some pool fd")?;
    drop(pfds);
    drop(fds);
    // The last submitted, first.
    let last = *tickets.last().ok_or("tickets")?;
    {
        let done = pool.wait_for(last)?;
        ensure_eq(done.ticket(), last, "wait_for")?;
        done.check()?;
        ensure_eq(done.data().len(), 16 * block, "length")?;
    }
    ensure(pool.lease().is_some(), "its buffer is free again")?;
    // A chosen buffer: only a free one can be leased, and only by its index.
    let free = pool.lease().ok_or("a free buffer")?.index();
    ensure_eq(
        pool.lease_at(free).map(|l| l.index()),
        Some(free),
        "lease_at a free buffer",
    )?;
    let busy = (0..pool.len())
        .find(|&i| i != free)
        .ok_or("a busy buffer")?;
    ensure(pool.lease_at(busy).is_none(), "lease_at a buffer in flight")?;
    ensure(
        pool.lease_at(pool.len()).is_none(),
        "lease_at past the pool",
    )?;
    let done = pool
        .wait_timeout(Duration::from_secs(5))?
        .ok_or("next completion")?;
    ensure(done.ticket() != last, "a different command")?;
    drop(done);
    pool.wait()?.check()?;
    match pool.wait() {
        Err(Error::InvalidRequest { reason, .. }) => {
            ensure(reason.contains("no command is pending"), reason)?
        }
        other => return Err(format!("wait on an idle pool: {other:?}").into()),
    }
    match pool.wait_for(last) {
        Err(Error::InvalidRequest { reason, .. }) => {
            ensure(reason.contains("already collected"), reason)?
        }
        other => return Err(format!("wait_for a collected ticket: {other:?}").into()),
    }
    // Longer than the buffer: refused before the kernel, buffer stays free.
    let lease = pool.lease().ok_or("lease")?;
    let too_long = lease.len() + block;
    let r = lease.submit(
        &Command::new(Cdb::read(lba, (too_long / block) as u32)?),
        Direction::FromDevice,
        too_long,
    );
    ensure(
        matches!(r, Err(Error::InvalidRequest { .. })),
        format!("{r:?}"),
    )?;
    ensure_eq(pool.idle(), 3, "all free")?;
    Ok(())
}
