//! Hardening: what sgmap checks before it trusts a node, a tag or a count.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use sgmap::{cdb::Cdb, BsgRing, Command, Data, Device, Direction, Error, Payload, Pool, Queue};
use sgmap_testkit::{ensure, kernel_version, Ctx, Failed, KernelTest};

pub(crate) const TESTS: [KernelTest; 4] = [
    KernelTest::device(
        "integrity_every_path_refuses_a_buffer_short_of_the_blocks_its_cdb_names",
        short_buffers_refused,
    ),
    KernelTest::device(
        "queue_refuses_a_node_that_is_not_sg_before_writing_to_it",
        queue_not_sg,
    ),
    KernelTest::device(
        "queue_and_pool_tag_every_request_ticket_0_too",
        tags_are_never_null,
    ),
    KernelTest::device(
        "mmap_stream_opens_a_bounded_number_of_fds",
        mmap_stream_fds_bounded,
    ),
];

/// A node for the bsg device of the disk under test, made in the scratch
/// folder: a character device that answers SG_GET_VERSION_NUM (and SG_IO
/// with v4 headers) but is not the sg driver.
fn bsg_node(ctx: &Ctx) -> Result<PathBuf, Failed> {
    let dev = Device::open(&ctx.device)?;
    let id = dev.scsi_id()?;
    let hctl = format!("{}:{}:{}:{}", id.host, id.channel, id.target, id.lun);
    let numbers = std::fs::read_to_string(format!("/sys/class/bsg/{hctl}/dev"))
        .map_err(|e| format!("no bsg device for {hctl}: {e}"))?;
    let (major, minor) = numbers
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("bsg dev {numbers:?}"))?;
    let (major, minor): (u32, u32) = (major.parse()?, minor.parse()?);
    let path = std::env::temp_dir().join(format!("sgmap-bsg-{}", std::process::id()));
    let c = CString::new(path.as_os_str().as_bytes())?;
    let _ = std::fs::remove_file(&path);
    // SAFETY: `c` is a NUL-terminated path; mknod only reads it.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o600,
            libc::makedev(major, minor),
        )
    };
    ensure(
        r == 0,
        format!(
            "mknod {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ),
    )?;
    Ok(path)
}

/// A queue `write()`s headers to its fd: on a node that is not sg (a block
/// device would take the header as data for LBA 0) it must refuse before
/// any write, because it checked what the node is, not because some ioctl
/// happened to fail first.
fn queue_not_sg(ctx: &Ctx) -> Result<(), Failed> {
    let bsg = bsg_node(ctx)?;
    let r = (|| -> Result<(), Failed> {
        match Device::open(&bsg) {
            Err(Error::NotSg { reason, .. }) => ensure(
                reason.contains("/dev/sgN"),
                format!("says what to use: {reason}"),
            )?,
            Err(e) => {
                return Err(
                    format!("open of a bsg node: expected not-sg, got {}", e.report()).into(),
                )
            }
            Ok(d) => {
                return Err(format!(
                    "a bsg node opened as {:?} (driver {})",
                    d.kind(),
                    d.driver_version()
                )
                .into())
            }
        }
        match Queue::open(&bsg) {
            Err(Error::NotSg { .. }) => Ok(()),
            Err(e) => {
                Err(format!("queue on a bsg node: expected not-sg, got {}", e.report()).into())
            }
            Ok(_) => Err("a queue was made on a bsg node".into()),
        }
    })();
    let _ = std::fs::remove_file(&bsg);
    r
}

/// The driver's own table for `fd`, with the `usr_ptr` of each request.
fn raw_table(fd: BorrowedFd<'_>) -> Result<Vec<sgmap_sys::sg_req_info>, Failed> {
    let mut t = [sgmap_sys::sg_req_info::default(); sgmap_sys::SG_MAX_QUEUE];
    // SAFETY: `t` has SG_MAX_QUEUE entries, as the ioctl expects; the fd is open.
    unsafe { sgmap_sys::ioctl::sg_get_request_table(fd.as_raw_fd(), &mut t) }?;
    Ok(t.into_iter().filter(|r| r.req_state != 0).collect())
}

/// Each request a queue or pool submits carries a tag (`usr_ptr`) that the
/// completion is checked against. An `SG_IO` header's is NULL (sgmap's own
/// and most programs'), so a NULL tag on ticket 0 could not tell the
/// queue's first request from an orphaned `SG_IO` with the same pack_id.
fn tags_are_never_null(ctx: &Ctx) -> Result<(), Failed> {
    let dev = Device::open(&ctx.device)?;
    dev.wait_ready()?;
    let block = dev.block_size()? as usize;
    let mut q = Queue::new(dev)?;
    let t = q
        .submit(
            &Command::new(Cdb::read_10(0, 1)),
            Payload::read(vec![0u8; block]),
        )
        .map_err(|r| r.into_parts().0)?;
    ensure(t.id() == 0, format!("the first ticket is {t}"))?;
    let table = raw_table(q.as_fd())?;
    ensure(
        table.len() == 1,
        format!("one request in the table: {}", table.len()),
    )?;
    ensure(
        !table[0].usr_ptr.is_null(),
        "the queue's ticket 0 went out with a NULL tag",
    )?;
    q.wait_for(t)?.check(q.path())?;
    drop(q);
    let mut pool = Pool::open(&ctx.device, 1, 64 * 1024)?;
    let lease = pool.lease().ok_or("a free buffer")?;
    let t = lease.submit(
        &Command::new(Cdb::read_10(0, 1)),
        Direction::FromDevice,
        block,
    )?;
    ensure(t.id() == 0, format!("the pool's first ticket is {t}"))?;
    let table = raw_table(pool.fds()[0])?;
    ensure(
        table.len() == 1,
        format!("one pool request: {}", table.len()),
    )?;
    ensure(
        !table[0].usr_ptr.is_null(),
        "the pool's ticket 0 went out with a NULL tag",
    )?;
    pool.wait_for(t)?.check()?;
    Ok(())
}

fn open_fds() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?.count())
}

/// An mmap stream opens one fd, with its own reserved buffer (kernel
/// memory), per command in flight: a depth of 300 must not mean 300 fds.
fn mmap_stream_fds_bounded(ctx: &Ctx) -> Result<(), Failed> {
    use sgmap::stream::{self, Options, StreamMode};
    let bound = stream::MAX_MMAP_DEPTH;
    let before = open_fds()?;
    let block = Device::open(&ctx.device)?.block_size()? as u64;
    let blocks = 600 * 4096 / block;
    let opts = Options::new(StreamMode::Mmap)
        .transfer_bytes(4096)
        .depth(300);
    let mut most = 0;
    let totals = stream::read(&ctx.device, 0..blocks, opts, |_, _| {
        most = most.max(open_fds().map_err(|e| Error::InvalidRequest {
            device: ctx.device.clone(),
            command: "count fds".into(),
            reason: e.to_string(),
        })?);
        Ok::<_, Error>(())
    })?;
    ensure(
        totals.depth <= bound,
        format!("depth 300 asked, {} fds used", totals.depth),
    )?;
    ensure(
        most.saturating_sub(before) <= bound,
        format!(
            "{} fds open during the stream (bound {bound})",
            most - before
        ),
    )?;
    ensure(
        totals.bytes == blocks * block,
        format!("all {} bytes read: {}", blocks * block, totals.bytes),
    )?;
    ensure(open_fds()? == before, "every fd closed afterwards")
}

/// A READ or WRITE whose buffer is shorter than the blocks its CDB names
/// used to go out: the kernel moved what fit and reported GOOD with a
/// residual of 0, so a read lost the rest unseen and a write stored blocks
/// it was never given. Every path refuses it now, before the kernel sees
/// it, naming the need; the blocks on the device stay as they were.
fn short_buffers_refused(ctx: &Ctx) -> Result<(), Failed> {
    const LBA: u32 = 3000;
    let dev = Device::open(&ctx.device)?;
    let block = dev.block_size()? as usize;
    let before: Vec<u8> = (0..8 * block).map(|i| (i % 251) as u8 ^ 0x5a).collect();
    let write8 = Command::new(Cdb::write_10(LBA, 8));
    let read8 = Command::new(Cdb::read_10(LBA, 8));
    dev.execute(&write8, Data::ToDevice(&before))?
        .check(&ctx.device)?;
    // Handles that read the capacity count the device's blocks; a queue or
    // pool opened by path counts 512 bytes a block.
    let exact = format!("{} bytes at the device's {block}-byte", 8 * block);
    let bound = "4096 bytes at 512 bytes a block".to_string();
    let refused = |what: &str, r: Result<(), Error>| -> Result<(), Failed> {
        let need = if what.starts_with("queue") || what.starts_with("pool") {
            &bound
        } else {
            &exact
        };
        match r {
            Err(e @ Error::InvalidRequest { .. }) => {
                let text = e.to_string();
                ensure(
                    text.contains("names 8 blocks") && text.contains(need.as_str()),
                    format!("{what}: the refusal names the blocks and bytes needed: {text}"),
                )?;
                println!("{what}: {text}");
                Ok(())
            }
            Err(e) => Err(format!("{what}: expected a refusal, got {}", e.report()).into()),
            Ok(()) => Err(format!("{what}: a buffer of one block went out for 8").into()),
        }
    };
    let short = block;
    let mut small = vec![0u8; short];
    refused(
        "execute READ",
        dev.execute(&read8, Data::FromDevice(&mut small)).map(drop),
    )?;
    let junk = vec![0xeeu8; short];
    refused(
        "execute WRITE",
        dev.execute(&write8, Data::ToDevice(&junk)).map(drop),
    )?;
    let mut queue = Queue::open(&ctx.device)?;
    // The queue's own Device has not read the capacity: 512 bytes a block
    // bound the need, so give it less than 8 × 512.
    refused(
        "queue READ",
        queue
            .submit(&read8, Payload::read(vec![0u8; 512]))
            .map(drop)
            .map_err(|r| r.into_parts().0),
    )?;
    ensure(
        queue.in_flight() == 0,
        "the refused command is not in flight",
    )?;
    let mut pool = Pool::open(&ctx.device, 1, 64 << 10)?;
    let lease = pool.lease().ok_or("a free pool buffer")?;
    refused(
        "pool WRITE",
        lease.submit(&write8, Direction::ToDevice, 512).map(drop),
    )?;
    let mut mapped = Device::open(&ctx.device)?
        .map_reserved(64 << 10)
        .map_err(|e| e.to_string())?;
    refused(
        "mapped READ",
        mapped.execute(&read8, Direction::FromDevice, 512).map(drop),
    )?;
    // No buffer at all is refused as the wrong direction.
    match mapped.execute(&read8, Direction::None, 0) {
        Err(Error::InvalidRequest { reason, .. }) if reason.contains("carries no buffer") => {}
        other => return Err(format!("READ of 8 blocks without data: {other:?}").into()),
    }
    if kernel_version().is_some_and(|v| v >= (7, 1)) {
        let mut ring = BsgRing::open(&ctx.device)?;
        refused(
            "io_uring READ",
            ring.submit(&read8, Payload::read(vec![0u8; 512]))
                .map(drop)
                .map_err(|r| r.into_parts().0),
        )?;
        refused(
            "io_uring WRITE",
            ring.submit(&write8, Payload::write(vec![0xeeu8; 512]))
                .map(drop)
                .map_err(|r| r.into_parts().0),
        )?;
        // The ring asked the block size at open: on a disk of 4096-byte
        // blocks one block in 512 bytes is short too.
        let one = Command::new(Cdb::read_10(LBA, 1));
        match ring.submit(&one, Payload::read(vec![0u8; 512])) {
            Err(r) if block > 512 => {
                let text = r.error().to_string();
                ensure(
                    text.contains(&format!("device's {block}-byte blocks")),
                    format!("the ring knows the block size: {text}"),
                )?;
            }
            Err(r) => return Err(format!("1 block in 512 bytes refused: {}", r.error()).into()),
            Ok(_) if block > 512 => {
                return Err(format!("io_uring: 1 block of {block} bytes went out with 512").into())
            }
            Ok(_) => {
                ring.wait()?;
            }
        }
    }
    let mut after = vec![0u8; 8 * block];
    dev.execute(&read8, Data::FromDevice(&mut after))?
        .check(&ctx.device)?;
    ensure(after == before, "no refused write reached the blocks")
}
