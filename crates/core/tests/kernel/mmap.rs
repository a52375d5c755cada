//! The mmap contract: granted size, frozen size, length checks, views, fork,
//! read-only mappings.

use std::os::fd::AsRawFd;

use sgmap::{cdb::Cdb, Access, Command, Device, Direction, Error, Mode};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 11] = [
    KernelTest::scsi_debug(
        "mmap_write_on_a_fresh_mapping_sends_the_filled_bytes",
        fresh_mapping_write,
    ),
    KernelTest::device(
        "mmap_driver_rules_offset_zero_length_within_reserved_exact_slices",
        driver_mmap_rules,
    ),
    KernelTest::scsi_debug(
        "reserved_size_is_clamped_to_the_queue_limit_and_read_back",
        granted_is_clamped,
    ),
    KernelTest::device("reserved_request_is_rounded_up_to_a_page", rounded_to_page),
    KernelTest::device("mapped_fd_refuses_resize_forever_ebusy", frozen_after_map),
    KernelTest::device(
        "mmap_transfer_longer_than_mapping_is_refused_before_the_kernel",
        length_checked,
    ),
    KernelTest::device("mmap_with_direct_is_refused", mmap_and_direct),
    KernelTest::scsi_debug(
        "views_are_separate_mappings_of_one_buffer_read_by_threads",
        views,
    ),
    KernelTest::scsi_debug(
        "fork_child_reads_what_the_parent_fetched_with_mmap",
        fork_shares_buffer,
    ),
    KernelTest::scsi_debug(
        "read_only_handle_maps_read_only_and_reads",
        read_only_mapping,
    ),
    KernelTest::scsi_debug("transfer_split_by_max_transfer_or_refused", split_or_refuse),
];

const LBA: u64 = 20_000;

fn granted_is_clamped(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let max = dev.max_transfer();
    // The queue's limit, asked of the driver on a fresh fd without sgmap: it
    // differs between kernels (6.1's scsi_debug takes 1,310,720 bytes, 7.2's
    // 4 MiB), so it is read, never assumed.
    let limit = queue_limit(ctx)?;
    ensure_eq(max, limit, "max_transfer() = the driver's clamp")?;
    ensure(
        limit < 64 << 20,
        format!("the queue limit {limit} is below the 64 MiB asked for below"),
    )?;
    let m = dev.map_reserved(64 << 20)?;
    ensure_eq(
        m.granted(),
        max,
        "granted = the clamp, not the 64 MiB asked for",
    )?;
    ensure_eq(
        m.len(),
        max / 4096 * 4096,
        "mapped length = granted, page-rounded down",
    )?;
    ensure_eq(
        m.device_info().reserved_size()?,
        m.granted(),
        "SG_GET_RESERVED_SIZE agrees",
    )?;
    Ok(())
}

/// The largest reserved buffer the driver grants on a fresh fd of the device
/// (the queue's max transfer), asked with raw ioctls, independently of sgmap.
pub(crate) fn queue_limit(ctx: &Ctx) -> Result<usize, Failed> {
    let f = std::fs::File::open(&ctx.device)?;
    let want: i32 = i32::MAX;
    // SAFETY: `want` is a valid int for the ioctl to read; the fd is open.
    unsafe { sgmap_sys::ioctl::sg_set_reserved_size(f.as_raw_fd(), &want) }?;
    let mut got: i32 = 0;
    // SAFETY: `got` is a valid int for the ioctl to write; the fd is open.
    unsafe { sgmap_sys::ioctl::sg_get_reserved_size(f.as_raw_fd(), &mut got) }?;
    ensure(got > 0, format!("SG_GET_RESERVED_SIZE gave {got}"))?;
    Ok(got as usize)
}

fn rounded_to_page(ctx: &Ctx) -> Result<(), Failed> {
    let mut dev = open(ctx)?;
    ensure_eq(
        dev.set_reserved_size(5000)?,
        8192,
        "5000 bytes asked, a page multiple granted",
    )?;
    let m = dev.map_reserved(10_000)?;
    ensure_eq(m.len(), 12_288, "mapped three pages")?;
    Ok(())
}

fn frozen_after_map(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let m = dev.map_reserved(64 * 1024)?;
    // The type has no resize; show the kernel's rule underneath it.
    let want: i32 = 128 * 1024;
    // SAFETY: `want` is a valid int for the ioctl to read; the fd is open.
    let r = unsafe { sgmap_sys::ioctl::sg_set_reserved_size(m.as_raw_fd(), &want) };
    ensure_eq(
        r,
        Err(nix::errno::Errno::EBUSY),
        "SG_SET_RESERVED_SIZE after mmap",
    )?;
    ensure_eq(
        m.device_info().reserved_size()?,
        64 * 1024,
        "size unchanged",
    )?;
    Ok(())
}

fn length_checked(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let mut m = dev.map_reserved(64 * 1024)?;
    let cmd = Command::new(Cdb::read_10(0, 256)); // 128 KiB
    match m.execute(&cmd, Direction::FromDevice, 128 * 1024) {
        Err(Error::InvalidRequest { reason, .. }) => ensure(reason.contains("65536"), reason),
        other => Err(format!("expected a refusal, got {other:?}").into()),
    }?;
    let out = m.execute(
        &Command::new(Cdb::read_10(0, 128)),
        Direction::FromDevice,
        64 * 1024,
    )?;
    ensure_eq(out.mode, Mode::Mmap, "a fitting transfer runs mmap-ed")?;
    Ok(())
}

fn mmap_and_direct(ctx: &Ctx) -> Result<(), Failed> {
    let mut m = open(ctx)?.map_reserved(64 * 1024)?;
    let cmd = Command::new(Cdb::read_10(0, 8)).direct();
    match m.execute(&cmd, Direction::FromDevice, 4096) {
        Err(Error::InvalidRequest { reason, .. }) => ensure(reason.contains("direct"), reason),
        other => Err(format!("expected a refusal, got {other:?}").into()),
    }
}

fn views(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let len = 256 * 1024;
    let want = data(11, LBA, block, len);
    crate::common::write_with(ctx, crate::common::Way::Indirect, LBA, &want)?;
    let mut m = dev.map_reserved(len)?;
    m.read_blocks(LBA, (len / block) as u32)?;
    let v1 = m.view()?;
    let v2 = m.view()?;
    ensure(
        v1.as_ptr() != v2.as_ptr() && v1.as_ptr() != m.as_slice().as_ptr(),
        "distinct mappings",
    )?;
    std::thread::scope(|s| {
        let a = s.spawn(|| same(&v1, &want, "view 1"));
        let b = s.spawn(|| same(&v2, &want, "view 2"));
        a.join().map_err(|_| "view 1 thread panicked")??;
        b.join().map_err(|_| "view 2 thread panicked")??;
        Ok::<(), Failed>(())
    })?;
    drop((v1, v2));
    // With the views gone, commands run again.
    m.read_blocks(LBA, 1)?;
    Ok(())
}

fn fork_shares_buffer(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let len = 64 * 1024;
    let want = data(12, LBA + 1000, block, len);
    crate::common::write_with(ctx, crate::common::Way::Indirect, LBA + 1000, &want)?;
    let mut m = dev.map_reserved(len)?;
    m.read_blocks(LBA + 1000, (len / block) as u32)?;
    let view = m.view()?;
    // SAFETY: the child only reads memory and calls _exit; it runs no
    // destructors and takes no locks another thread may hold.
    let pid = unsafe { libc::fork() };
    ensure(pid >= 0, "fork")?;
    if pid == 0 {
        let ok = view[..] == want[..] && m.as_slice()[..] == want[..];
        // SAFETY: ends the child at once, as after fork one must.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure_eq(r, pid, "waitpid")?;
    ensure(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        format!("child saw other bytes (status {status})"),
    )?;
    drop(view);
    // The parent's handle still works after the child exited.
    let again = data(13, LBA + 2000, block, len);
    m.as_mut_slice().ok_or("writable")?.copy_from_slice(&again);
    m.write_blocks(LBA + 2000, (len / block) as u32)?;
    m.as_mut_slice().ok_or("writable")?.fill(0);
    let got = m.read_blocks(LBA + 2000, (len / block) as u32)?;
    same(got, &again, "parent after fork")
}

fn read_only_mapping(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let want = data(14, LBA + 3000, block, 32 * 1024);
    crate::common::write_with(ctx, crate::common::Way::Indirect, LBA + 3000, &want)?;
    let dev = Device::options().read_only(true).open(&ctx.device)?;
    dev.wait_ready()?;
    let mut m = dev.map_reserved(32 * 1024)?;
    ensure_eq(
        m.access(),
        Access::ReadOnly,
        "read-only handle maps read-only",
    )?;
    ensure(m.as_mut_slice().is_none(), "no mutable access")?;
    let got = m
        .read_blocks(LBA + 3000, (32 * 1024 / block) as u32)?
        .to_vec();
    same(&got, &want, "read-only mmap read")?;
    // Asking for a writable mapping of a read-only handle is refused clearly.
    let dev = Device::options().read_only(true).open(&ctx.device)?;
    match dev
        .map_reserved_with(4096, Access::ReadWrite)
        .map_err(Error::from)
    {
        Err(Error::InvalidRequest { reason, .. }) => ensure(reason.contains("read-only"), reason),
        other => Err(format!("expected a refusal, got {other:?}").into()),
    }
}

fn split_or_refuse(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    // Two whole commands and a part of a third, whatever the kernel's limit.
    let chunk = queue_limit(ctx)? / block * block;
    let len = 2 * chunk + 8 * block;
    let want = data(15, LBA + 4000, block, len);
    let t = dev.write_blocks(LBA + 4000, &want, sgmap::BlockIo::indirect())?;
    ensure_eq(t.commands, 3, "commands after splitting")?;
    ensure_eq(t.bytes, len, "bytes written")?;
    let mut got = vec![0u8; len];
    dev.read_blocks(LBA + 4000, &mut got, sgmap::BlockIo::indirect())?;
    same(&got, &want, "split read")?;
    match dev.read_blocks(
        LBA + 4000,
        &mut got,
        sgmap::BlockIo::indirect().split(sgmap::Split::Refuse),
    ) {
        Err(Error::InvalidRequest { reason, .. }) => {
            ensure(reason.contains("Split::Allow"), reason)
        }
        other => Err(format!("expected a refusal, got {other:?}").into()),
    }?;
    Ok(())
}

fn driver_mmap_rules(ctx: &Ctx) -> Result<(), Failed> {
    let m = open(ctx)?.map_reserved(64 * 1024)?;
    let fd = m.as_raw_fd();
    let raw = |len: usize, offset: i64| {
        // SAFETY: a fresh shared read-only mapping; unmapped below if it succeeds.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            Err(nix::errno::Errno::last())
        } else {
            // SAFETY: `p`/`len` came from the successful mmap just above.
            unsafe { libc::munmap(p, len) };
            Ok(())
        }
    };
    ensure_eq(
        raw(128 * 1024, 0),
        Err(nix::errno::Errno::ENOMEM),
        "mapping more than the reserved buffer",
    )?;
    ensure_eq(
        raw(4096, 4096),
        Err(nix::errno::Errno::EINVAL),
        "mapping at a non-zero offset",
    )?;
    ensure_eq(
        raw(64 * 1024, 0),
        Ok(()),
        "mapping the whole reserved buffer",
    )?;
    // The safe API hands out exactly the mapped bytes, never more.
    ensure_eq(m.as_slice().len(), 64 * 1024, "slice length")?;
    ensure_eq(m.view()?.len(), 64 * 1024, "view length")?;
    ensure(
        m.as_slice().get(64 * 1024).is_none(),
        "no byte past the mapping",
    )
}

/// The typed mmap write must not run any other command on the mapped fd
/// first: a READ CAPACITY there (for the block size) would overwrite the
/// start of the buffer the caller just filled.
fn fresh_mapping_write(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let len = 16 * block;
    let want = data(16, LBA + 5000, block, len);
    // A new Device: nothing cached, the block size still unknown.
    let mut m = Device::open(&ctx.device)?.map_reserved(len)?;
    m.as_mut_slice().ok_or("writable")?[..len].copy_from_slice(&want);
    m.write_blocks(LBA + 5000, (len / block) as u32)?;
    same(&m.as_slice()[..len], &want, "the buffer after the write")?;
    let got = crate::common::read_with(ctx, crate::common::Way::Indirect, LBA + 5000, len)?;
    same(&got, &want, "what reached the disk")
}
