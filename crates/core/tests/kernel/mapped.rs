//! What a mapped fd carries: only mmap-ed commands and commands without data,
//! never a command of sgmap's own whose data would pass through the reserved
//! buffer; how every open option behaves with every helper; read-only
//! handles; fork; and the device coming back whole from a failed mapping or
//! a pool.

use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::Duration;

use sgmap::{
    cdb::Cdb, Access, BlockIo, Command, Data, Device, DirectBuf, Direction, Error, OpenOptions,
    Payload, Pool, Queue,
};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 7] = [
    KernelTest::device(
        "mapped_fd_refuses_every_command_whose_data_would_pass_through_its_buffer",
        nothing_through_the_buffer,
    ),
    KernelTest::device(
        "every_open_option_with_every_helper_answers_or_refuses_never_hangs",
        every_option,
    ),
    KernelTest::device(
        "read_only_handle_refuses_data_out_and_unsafe_commands_even_as_root",
        read_only_refuses,
    ),
    KernelTest::device(
        "forked_child_is_refused_commands_on_an_inherited_mapping",
        fork_refused,
    ),
    KernelTest::device(
        "failed_map_reserved_gives_the_same_device_back",
        failed_map_gives_device_back,
    ),
    KernelTest::scsi_debug(
        "pool_into_mapped_never_returns_a_fd_with_a_command_in_flight",
        into_mapped_never_in_flight,
    ),
    KernelTest::scsi_debug_on_linux(
        "uring_read_only_ring_refuses_writes_even_as_root",
        (7, 1),
        read_only_ring,
    ),
];

/// Byte offset of this file's region of the disk (LBAs work for any block size).
const BASE: u64 = 185 << 20;

fn lba_at(offset: u64, block: usize) -> u64 {
    (BASE + offset) / block as u64
}

/// Whether `r` is sgmap's refusal (nothing sent), and says why.
fn refused<T: std::fmt::Debug>(r: &sgmap::Result<T>, needle: &str) -> Result<(), String> {
    match r {
        Err(Error::InvalidRequest { reason, .. }) if reason.contains(needle) => Ok(()),
        Err(Error::InvalidRequest { reason, .. }) => Err(format!(
            "refused, but the reason does not say \"{needle}\": {reason}"
        )),
        other => Err(format!("expected a refusal, got {other:?}")),
    }
}

/// Item 2: on a mapped fd, sgmap sends nothing whose data the driver would
/// lend the reserved buffer to; the bytes the program keeps there survive
/// every helper and every caller command that is not mmap-ed.
fn nothing_through_the_buffer(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let lba = lba_at(0, block);
    let on_disk = data(51, lba, block, 8 * block);
    dev.write_blocks(lba, &on_disk, BlockIo::indirect())?;
    let mut m = dev.map_reserved(64 * 1024)?;
    let kept = data(52, 0, block, m.len());
    m.as_mut_slice().ok_or("writable")?.copy_from_slice(&kept);
    let mut problems = Vec::new();
    // Notes a wrong answer or a changed buffer (and puts the bytes back, so
    // each check stands on its own).
    let mut check = |what: &str, r: Result<(), String>, m: &mut sgmap::MappedDevice| {
        if let Err(e) = r {
            problems.push(format!("{what}: {e}"));
        }
        if m.as_slice() != &kept[..] {
            let at = m.as_slice().iter().zip(&kept).position(|(a, b)| a != b);
            problems.push(format!(
                "{what}: the mapped buffer changed (first at byte {at:?})"
            ));
            if let Some(b) = m.as_mut_slice() {
                b.copy_from_slice(&kept);
            }
        }
    };
    // sgmap's own commands with data: refused, never through the buffer.
    let r = m.device().inquiry();
    check("inquiry", refused(&r, "reserved buffer"), &mut m);
    let r = m.device().inquiry_vpd(0);
    check("inquiry_vpd", refused(&r, "reserved buffer"), &mut m);
    let r = m.device().read_capacity();
    check("read_capacity", refused(&r, "reserved buffer"), &mut m);
    let mut buf = vec![0u8; 8 * block];
    let r = m.device().read_blocks(lba, &mut buf, BlockIo::indirect());
    check(
        "read_blocks (indirect)",
        refused(&r, "reserved buffer"),
        &mut m,
    );
    let mut dbuf = DirectBuf::new(8 * block);
    let r = m.device().read_blocks(lba, &mut dbuf, BlockIo::direct());
    check(
        "read_blocks (direct)",
        refused(&r, "reserved buffer"),
        &mut m,
    );
    let r = m.device().write_blocks(lba, &on_disk, BlockIo::indirect());
    check(
        "write_blocks (indirect)",
        refused(&r, "reserved buffer"),
        &mut m,
    );
    // The caller's own command with data through a caller buffer: refused.
    let mut inq = [0u8; 96];
    let r = m
        .device()
        .execute(&Command::new(Cdb::inquiry(96)), Data::FromDevice(&mut inq));
    check(
        "execute(INQUIRY, indirect)",
        refused(&r, "reserved buffer"),
        &mut m,
    );
    let r = m.device().execute(
        &Command::new(Cdb::read_10(lba as u32, 1)).direct(),
        Data::FromDevice(&mut dbuf[..block]),
    );
    check(
        "execute(READ(10), direct)",
        refused(&r, "reserved buffer"),
        &mut m,
    );
    // What moves no data, or answers from what is known, still works.
    let r = m.device().test_unit_ready().map_err(|e| e.to_string());
    check("test_unit_ready", r, &mut m);
    let r = m.device().synchronize_cache().map_err(|e| e.to_string());
    check("synchronize_cache", r, &mut m);
    let r = m
        .device()
        .block_size()
        .map_err(|e| e.to_string())
        .and_then(|b| {
            (b as usize == block)
                .then_some(())
                .ok_or(format!("block size {b}"))
        });
    check("block_size (known before mapping)", r, &mut m);
    let max = m.device().max_transfer();
    check(
        "max_transfer",
        (max >= 64 * 1024).then_some(()).ok_or(format!("{max}")),
        &mut m,
    );
    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    // And mmap-ed IO itself carries on.
    same(
        m.read_blocks(lba, 8)?,
        &on_disk,
        "mmap read after the refusals",
    )
}

/// How each open option's handle is expected to behave.
#[derive(Debug, Clone, Copy)]
struct Case {
    name: &'static str,
    options: OpenOptions,
    read_only: bool,
}

fn cases() -> [Case; 6] {
    [
        Case {
            name: "read-write",
            options: OpenOptions::new(),
            read_only: false,
        },
        Case {
            name: "non-blocking",
            options: OpenOptions::new().nonblocking(true),
            read_only: false,
        },
        Case {
            name: "read-only",
            options: OpenOptions::new().read_only(true),
            read_only: true,
        },
        Case {
            name: "read-only non-blocking",
            options: OpenOptions::new().read_only(true).nonblocking(true),
            read_only: true,
        },
        Case {
            name: "exclusive non-blocking",
            options: OpenOptions::new().exclusive(true).nonblocking(true),
            read_only: false,
        },
        // Last: a hang here holds the device exclusively for good.
        Case {
            name: "exclusive",
            options: OpenOptions::new().exclusive(true),
            read_only: false,
        },
    ]
}

/// Item 6: each open option, each helper, unmapped and mapped; every answer
/// is the right one or a clear refusal, and nothing waits for an fd of
/// sgmap's own.
fn every_option(ctx: &Ctx) -> Result<(), Failed> {
    let (block, max, on_disk, lba) = {
        let mut dev = open(ctx)?;
        let block = dev.block_size()? as usize;
        let lba = lba_at(1 << 20, block);
        let on_disk = data(53, lba, block, 16 * block);
        dev.write_blocks(lba, &on_disk, BlockIo::indirect())?;
        // The queue's limit, found another way: the kernel clamps a reserved
        // buffer to it.
        let max = dev.set_reserved_size(1 << 30)?;
        (block, max, on_disk, lba)
    }; // closed: an exclusive open must find the device unused
    let mut problems = Vec::new();
    for case in cases() {
        let (tx, rx) = mpsc::channel();
        let (path, on_disk) = (ctx.device.clone(), on_disk.clone());
        std::thread::spawn(move || {
            let _ = tx.send(one_case(&path, case, block, max, lba, &on_disk));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => problems.push(format!("{}: {e}", case.name)),
            Err(_) => {
                problems.push(format!("{}: no answer within 60 s (a hang)", case.name));
                break;
            }
        }
    }
    // The kernel refuses an exclusive read-only open; sgmap says so.
    match Device::options()
        .exclusive(true)
        .read_only(true)
        .open(&ctx.device)
    {
        Err(e @ Error::Open { .. }) => {
            let text = e.to_string();
            if !(text.contains("exclusive") && text.contains("read-write")) {
                problems.push(format!(
                    "exclusive read-only: the error should say to open read-write: {text}"
                ));
            }
        }
        other => problems.push(format!(
            "exclusive read-only: expected an open error, got {other:?}"
        )),
    }
    ensure(problems.is_empty(), problems.join("\n"))
}

fn one_case(
    path: &std::path::Path,
    case: Case,
    block: usize,
    max: usize,
    lba: u64,
    on_disk: &[u8],
) -> Result<(), String> {
    let mut problems: Vec<String> = Vec::new();
    let mut note = |what: &str, r: Result<(), String>| {
        if let Err(e) = r {
            problems.push(format!("{what}: {e}"));
        }
    };
    let ok = |r: sgmap::Result<()>| r.map_err(|e| e.to_string());
    let writes = |r: sgmap::Result<()>| -> Result<(), String> {
        if case.read_only {
            refused(&r, "read-only")
        } else {
            ok(r)
        }
    };
    let blocks = on_disk.len() / block;
    {
        // Unmapped: every helper.
        let dev = case.options.open(path).map_err(|e| e.to_string())?;
        note("wait_ready", ok(dev.wait_ready()));
        note("test_unit_ready", ok(dev.test_unit_ready()));
        note(
            "inquiry",
            ok(dev.inquiry().and_then(|i| {
                (i.product == "scsi_debug" || i.device_type == 0)
                    .then_some(())
                    .ok_or_else(|| dev_err(&dev, "unexpected INQUIRY data"))
            })),
        );
        note("inquiry_vpd", ok(dev.inquiry_vpd(0).map(|_| ())));
        note(
            "read_capacity",
            ok(dev.read_capacity().and_then(|c| {
                (c.block_size as usize == block)
                    .then_some(())
                    .ok_or_else(|| dev_err(&dev, "block size"))
            })),
        );
        note("block_size", eq(dev.block_size().ok(), Some(block as u32)));
        note("max_transfer", eq(dev.max_transfer(), max));
        note("scsi_id", ok(dev.scsi_id().map(|_| ())));
        note("sg_table_size", ok(dev.sg_table_size().map(|_| ())));
        note("default_timeout", ok(dev.default_timeout().map(|_| ())));
        note("reserved_size", ok(dev.reserved_size().map(|_| ())));
        note(
            "requests",
            eq(dev.requests().map(|r| r.len()).ok(), Some(0)),
        );
        note("num_waiting", eq(dev.num_waiting().ok(), Some(0)));
        let mut buf = vec![0u8; on_disk.len()];
        note(
            "read_blocks (indirect)",
            ok(dev
                .read_blocks(lba, &mut buf, BlockIo::indirect())
                .map(|_| ()))
            .and_then(|()| differs(&buf, on_disk)),
        );
        let mut dbuf = DirectBuf::new(on_disk.len());
        note(
            "read_blocks (direct)",
            ok(dev
                .read_blocks(lba, &mut dbuf, BlockIo::direct())
                .map(|_| ()))
            .and_then(|()| differs(&dbuf, on_disk)),
        );
        note(
            "write_blocks (indirect)",
            writes(
                dev.write_blocks(lba, on_disk, BlockIo::indirect())
                    .map(|_| ()),
            ),
        );
        note(
            "write_blocks (direct)",
            writes(
                dev.write_blocks(lba, &DirectBuf::from_slice(on_disk), BlockIo::direct())
                    .map(|_| ()),
            ),
        );
        note("synchronize_cache", writes(dev.synchronize_cache()));
    }
    {
        // Mapped, on a fresh handle: nothing known yet about the device.
        let dev = case.options.open(path).map_err(|e| e.to_string())?;
        let mut m = dev.map_reserved(64 * 1024).map_err(|e| e.to_string())?;
        let want_access = if case.read_only {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        };
        note("access", eq(m.access(), want_access));
        note(
            "read_blocks (mmap)",
            ok(m.read_blocks(lba, blocks as u32).map(|_| ()))
                .and_then(|()| differs(&m.as_slice()[..on_disk.len()], on_disk)),
        );
        if let Some(b) = m.as_mut_slice() {
            b[..on_disk.len()].copy_from_slice(on_disk);
        }
        note(
            "write_blocks (mmap)",
            writes(m.write_blocks(lba, blocks as u32).map(|_| ())),
        );
        note("mapped max_transfer", eq(m.device().max_transfer(), max));
        note(
            "mapped block_size",
            eq(m.device().block_size().ok(), Some(block as u32)),
        );
        note("mapped test_unit_ready", ok(m.device().test_unit_ready()));
        note(
            "mapped inquiry",
            refused(&m.device().inquiry(), "reserved buffer"),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn dev_err(dev: &Device, what: &str) -> Error {
    Error::InvalidRequest {
        device: dev.path().to_path_buf(),
        command: "check".into(),
        reason: what.into(),
    }
}

/// `same` with the message as a string.
fn differs(got: &[u8], want: &[u8]) -> Result<(), String> {
    same(got, want, "data").map_err(|e| e.message().unwrap_or("data differs").to_string())
}

fn eq<T: PartialEq + std::fmt::Debug>(got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{got:?}, expected {want:?}"))
    }
}

/// Item 9: as root (CAP_SYS_RAWIO, which passes the kernel's gate), a
/// read-only handle still sends nothing that writes, through any door.
fn read_only_refuses(ctx: &Ctx) -> Result<(), Failed> {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    ensure_eq(euid, 0, "the test runs as root in the guest")?;
    let rw = open(ctx)?;
    let block = rw.block_size()? as usize;
    let lba = lba_at(2 << 20, block);
    let on_disk = data(54, lba, block, 8 * block);
    rw.write_blocks(lba, &on_disk, BlockIo::indirect())?;
    let other = data(55, lba, block, 8 * block);
    let blocks = (other.len() / block) as u32;
    let ro = Device::options().read_only(true).open(&ctx.device)?;
    ro.wait_ready()?;
    let mut problems = Vec::new();
    let mut note = |what: &str, r: Result<(), String>| {
        if let Err(e) = r {
            problems.push(format!("{what}: {e}"));
        }
    };
    note(
        "write_blocks",
        refused(
            &ro.write_blocks(lba, &other, BlockIo::indirect()),
            "read-only",
        ),
    );
    note(
        "execute(WRITE(10))",
        refused(
            &ro.execute(
                &Command::new(Cdb::write(lba, blocks)?),
                Data::ToDevice(&other),
            ),
            "read-only",
        ),
    );
    note(
        "synchronize_cache",
        refused(&ro.synchronize_cache(), "read-only"),
    );
    // A command outside the kernel's read-safe list, even without data:
    // WRITE FILEMARKS(6) (0x10).
    note(
        "execute(WRITE FILEMARKS, no data)",
        refused(
            &ro.execute(
                &Command::new(Cdb::new(&[0x10, 0, 0, 0, 0, 0]).map_err(|e| e.to_string())?),
                Data::None,
            ),
            "read-only",
        ),
    );
    // What reads still works.
    let mut buf = vec![0u8; on_disk.len()];
    note(
        "read_blocks",
        ro.read_blocks(lba, &mut buf, BlockIo::indirect())
            .map(|_| ())
            .map_err(|e| e.to_string()),
    );
    note(
        "inquiry",
        ro.inquiry().map(|_| ()).map_err(|e| e.to_string()),
    );
    // The queue and the pool keep the rule too.
    let mut q = Queue::new(Device::options().read_only(true).open(&ctx.device)?)?;
    let r = q.submit(
        &Command::new(Cdb::write(lba, blocks)?),
        Payload::write(other.clone()),
    );
    note(
        "queue submit of WRITE",
        match r {
            Err(rej) => {
                let (e, _) = rej.into_parts();
                refused::<()>(&Err(e), "read-only")
            }
            Ok(t) => {
                let c = q.wait_for(t).map_err(|e| e.to_string())?;
                Err(format!("sent: {:?}", c.outcome.failure_kind()))
            }
        },
    );
    drop(q);
    let mut m = Device::options()
        .read_only(true)
        .open(&ctx.device)?
        .map_reserved(64 * 1024)?;
    m.read_blocks(lba, blocks)?; // the buffer now holds the disk's bytes
    note(
        "mapped write_blocks",
        refused(&m.write_blocks(lba + 64, blocks).map(|_| ()), "read-only"),
    );
    let mut pool = Pool::from_mapped(vec![m])?;
    let lease = pool.lease().ok_or("a free buffer")?;
    let r = lease.submit(
        &Command::new(Cdb::write(lba + 64, blocks)?),
        Direction::ToDevice,
        other.len(),
    );
    let sent = r.is_ok();
    note("pool submit of WRITE", refused(&r.map(|_| ()), "read-only"));
    if sent {
        let _ = pool.wait();
    }
    drop(pool);
    // Nothing reached the disk.
    let mut got = vec![0u8; on_disk.len()];
    rw.read_blocks(lba, &mut got, BlockIo::indirect())?;
    note("disk unchanged at the first LBA", differs(&got, &on_disk));
    ensure(problems.is_empty(), problems.join("\n"))
}

/// Item 3 in Rust: a forked child shares the fd and the reserved buffer with
/// its parent, so an mmap-ed command there would race the parent's; it is
/// refused, and the buffer is left as the parent had it.
fn fork_refused(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let len = 16 * block;
    let (lba_a, lba_b) = (lba_at(3 << 20, block), lba_at(4 << 20, block));
    let a = data(56, lba_a, block, len);
    let b = data(57, lba_b, block, len);
    dev.write_blocks(lba_a, &a, BlockIo::indirect())?;
    dev.write_blocks(lba_b, &b, BlockIo::indirect())?;
    let mut m = dev.map_reserved(len)?;
    m.read_blocks(lba_a, (len / block) as u32)?;
    // SAFETY: the test harness runs one test at a time; the child calls only
    // sgmap's mmap path (no allocation on success paths that matter) and _exit.
    let pid = unsafe { libc::fork() };
    ensure(pid >= 0, "fork")?;
    if pid == 0 {
        let r = m.read_blocks(lba_b, (len / block) as u32).map(|_| ());
        let code = match refused(&r, "fork") {
            Ok(()) if m.as_slice()[..len] == a[..] => 0,
            Ok(()) => 2,
            Err(_) if r.is_ok() => 3,
            Err(_) => 4,
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure_eq(waited, pid, "waitpid")?;
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    ensure(
        code == Some(0),
        match code {
            Some(3) => "the child's mmap-ed read on the inherited mapping ran".to_string(),
            Some(2) => "the child was refused but the buffer changed".to_string(),
            Some(4) => "the child got another error than a refusal naming fork".to_string(),
            other => format!("child status {other:?}"),
        },
    )?;
    // The parent's handle is untouched and carries on.
    same(&m.as_slice()[..len], &a, "parent's buffer after the child")?;
    same(
        m.read_blocks(lba_b, (len / block) as u32)?,
        &b,
        "parent's read",
    )
}

/// Item 11: a failed mapping hands back the device it consumed: the same
/// fd, with the state set on it before.
fn failed_map_gives_device_back(ctx: &Ctx) -> Result<(), Failed> {
    let dev = Device::options().read_only(true).open(&ctx.device)?;
    let fd = dev.as_raw_fd();
    // Per-fd driver state that a reopened node would not have.
    let ticks: i32 = 4321;
    // SAFETY: SG_SET_TIMEOUT reads one int; the fd is open.
    unsafe { sgmap_sys::ioctl::sg_set_timeout(fd, &ticks) }?;
    let err = match dev.map_reserved_with(4096, Access::ReadWrite) {
        Err(e) => e,
        Ok(_) => return Err("a read-write mapping of a read-only handle succeeded".into()),
    };
    ensure(err.to_string().contains("read-only"), err.to_string())?;
    let dev = err.into_device();
    ensure_eq(dev.as_raw_fd(), fd, "the same fd")?;
    // SAFETY: SG_GET_TIMEOUT takes no argument; the fd is open.
    let now = unsafe { sgmap_sys::ioctl::sg_get_timeout(fd) }?;
    ensure_eq(now, ticks, "the fd's own state survived")?;
    dev.wait_ready()?;
    let m = dev.map_reserved(4096)?;
    ensure_eq(m.as_raw_fd(), fd, "and it maps afterwards")
}

/// CAP numbers are not needed: capset with the values capget gave makes new
/// credentials all the same, and the sg driver then refuses read() on fds
/// opened before (`sg_check_file_access`).
fn renew_credentials() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct CapData {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut d = [CapData::default(); 2];
    // SAFETY: capget with a v3 header writes two CapData entries.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr, d.as_mut_ptr()) } != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: capset reads the header and two CapData entries.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, d.as_ptr()) } != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Item 11: `Pool::into_mapped` hands a device back only once nothing is in
/// flight on it. Here the response cannot be read at all (the credentials
/// changed after the fds were opened, so the driver refuses read()).
fn into_mapped_never_in_flight(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let lba = lba_at(5 << 20, block);
    let _latency = Knob::latency_ns(400_000_000)?;
    // SAFETY: the child runs only this test's code and leaves with _exit.
    let pid = unsafe { libc::fork() };
    ensure(pid >= 0, "fork")?;
    if pid == 0 {
        let code = match child_into_mapped(&ctx.device, lba, block) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("child: {e}");
                1
            }
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    ensure_eq(waited, pid, "waitpid")?;
    ensure(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's checks failed (see its output)",
    )
}

fn child_into_mapped(path: &std::path::Path, lba: u64, block: usize) -> Result<(), String> {
    let mut pool = Pool::open(path, 1, 64 * 1024).map_err(|e| e.to_string())?;
    let lease = pool.lease().ok_or("a free buffer")?;
    let blocks = (64 * 1024 / block) as u32;
    lease
        .submit(
            &Command::new(Cdb::read(lba, blocks).map_err(|e| e.to_string())?),
            Direction::FromDevice,
            64 * 1024,
        )
        .map_err(|e| e.to_string())?;
    renew_credentials()?;
    match pool.into_mapped() {
        Err(e) => {
            let text = e.to_string();
            if text.contains("flight") {
                Ok(())
            } else {
                Err(format!(
                    "the error should say a command is in flight: {text}"
                ))
            }
        }
        Ok(mut devices) => {
            let m = devices.first_mut().ok_or("no device back")?;
            let held = m.device().requests().map_err(|e| e.to_string())?;
            Err(format!(
                "into_mapped returned a device whose fd holds {} request(s): {held:?}",
                held.len()
            ))
        }
    }
}

/// Item 9 through io_uring: a ring on a bsg node opened read-only writes
/// nothing, as root too.
fn read_only_ring(ctx: &Ctx) -> Result<(), Failed> {
    let rw = open(ctx)?;
    let block = rw.block_size()? as usize;
    let lba = lba_at(6 << 20, block);
    let on_disk = data(58, lba, block, 8 * block);
    rw.write_blocks(lba, &on_disk, BlockIo::indirect())?;
    let blocks = (on_disk.len() / block) as u32;
    let mut ring = sgmap::BsgRing::options()
        .read_only(true)
        .open(&ctx.device)?;
    let r = ring.submit(
        &Command::new(Cdb::write(lba, blocks)?),
        Payload::write(data(59, lba, block, on_disk.len())),
    );
    let refusal = match r {
        Err(rej) => {
            let (e, _) = rej.into_parts();
            refused::<()>(&Err(e), "read-only")
        }
        Ok(t) => {
            let c = ring.wait_for(t);
            Err(format!("sent: {:?}", c.map(|c| c.outcome.failure_kind())))
        }
    };
    let t = ring.submit(
        &Command::new(Cdb::read(lba, blocks)?),
        Payload::read(vec![0u8; on_disk.len()]),
    )?;
    let c = ring.wait_for(t).map_err(|e| format!("refused: {e}"))?;
    let read = differs(c.bytes(), &on_disk);
    drop(ring);
    let mut got = vec![0u8; on_disk.len()];
    rw.read_blocks(lba, &mut got, BlockIo::indirect())?;
    let disk = differs(&got, &on_disk);
    let problems: Vec<String> = [("WRITE", refusal), ("READ", read), ("disk unchanged", disk)]
        .into_iter()
        .filter_map(|(w, r)| r.err().map(|e| format!("{w}: {e}")))
        .collect();
    ensure(problems.is_empty(), problems.join("\n"))
}
