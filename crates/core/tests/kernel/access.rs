//! Permissions and device removal: what the kernel refuses, reported clearly.

use std::time::Duration;

use sgmap::{cdb::Cdb, BlockIo, BsgRing, Command, Data, Device, DirectBuf, Error, Payload};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 3] = [
    KernelTest::device(
        "read_only_fd_without_cap_sys_rawio_gets_eperm_on_write",
        read_only_eperm,
    ),
    // Last on purpose: it takes the device away and brings it back.
    KernelTest::scsi_debug("zz_device_removed_in_use_gives_enodev_not_a_hang", removal),
    // After the one above: it too takes the device away and brings it back.
    KernelTest::scsi_debug_on_linux(
        "zz_uring_device_removed_with_commands_in_flight_ends_each_clearly",
        (7, 1),
        uring_removal,
    ),
];

/// CAP_SYS_RAWIO's number in <linux/capability.h>.
const CAP_SYS_RAWIO: u32 = 17;

#[repr(C)]
struct CapHeader {
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

/// Drops CAP_SYS_RAWIO from this process's effective and permitted sets.
fn drop_rawio() -> Result<(), String> {
    let mut hdr = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    }; // _LINUX_CAPABILITY_VERSION_3
    let mut d = [CapData::default(); 2];
    // SAFETY: capget with a v3 header writes two CapData entries.
    if unsafe { libc::syscall(libc::SYS_capget, &mut hdr, d.as_mut_ptr()) } != 0 {
        return Err(format!("capget: {}", std::io::Error::last_os_error()));
    }
    d[0].effective &= !(1 << CAP_SYS_RAWIO);
    d[0].permitted &= !(1 << CAP_SYS_RAWIO);
    // SAFETY: capset reads the header and two CapData entries.
    if unsafe { libc::syscall(libc::SYS_capset, &mut hdr, d.as_ptr()) } != 0 {
        return Err(format!("capset: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// In a child without CAP_SYS_RAWIO: a read-only fd may READ but not WRITE.
fn read_only_eperm(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    // SAFETY: the child runs only this test's code and leaves with _exit.
    let pid = unsafe { libc::fork() };
    ensure(pid >= 0, "fork")?;
    if pid == 0 {
        let code = match child(ctx, block) {
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

fn child(ctx: &Ctx, block: usize) -> Result<(), String> {
    drop_rawio()?;
    let dev = Device::options()
        .read_only(true)
        .open(&ctx.device)
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; block];
    dev.read_blocks(0, &mut buf, BlockIo::indirect())
        .map_err(|e| format!("READ on a read-only fd: {e}"))?;
    // sgmap refuses the write itself, for root and everyone else alike.
    match dev.write_blocks(0, &buf, BlockIo::indirect()) {
        Err(e @ Error::InvalidRequest { .. }) => {
            let text = e.to_string();
            if !(text.contains("WRITE(10)") && text.contains("read-write")) {
                return Err(format!(
                    "the error should name the command and say to open read-write: {text}"
                ));
            }
        }
        other => {
            return Err(format!(
                "WRITE on a read-only handle: expected sgmap's refusal, got {other:?}"
            ))
        }
    }
    // Underneath, the kernel's own gate: EPERM without CAP_SYS_RAWIO.
    use std::os::fd::AsRawFd;
    let cdb = sgmap::cdb::Cdb::write_10(0, 1);
    let mut sense = [0u8; 32];
    let mut hdr = sgmap_sys::sg_io_hdr::new();
    hdr.dxfer_direction = sgmap_sys::SG_DXFER_TO_DEV;
    hdr.cmd_len = cdb.len() as u8;
    hdr.cmdp = cdb.as_bytes().as_ptr().cast_mut();
    hdr.mx_sb_len = sense.len() as u8;
    hdr.sbp = sense.as_mut_ptr();
    hdr.dxfer_len = block as u32;
    hdr.dxferp = buf.as_mut_ptr().cast();
    hdr.timeout = 10_000;
    // SAFETY: the header points at the CDB, sense and data buffers above,
    // which live across the call.
    match unsafe { sgmap_sys::ioctl::sg_io(dev.as_raw_fd(), &mut hdr) } {
        Err(nix::errno::Errno::EPERM) => Ok(()),
        other => Err(format!(
            "a raw WRITE on a read-only fd without CAP_SYS_RAWIO: expected EPERM, got {other:?}"
        )),
    }
}

const SYSFS_HOSTS: &str = "/sys/bus/pseudo/drivers/scsi_debug/add_host";

fn removal(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let want = data(77, 500_000, block, 16 * block);
    dev.write_blocks(500_000, &want, BlockIo::indirect())?;
    // Take the device away while this fd is open.
    let id = dev.scsi_id()?;
    let delete = format!(
        "/sys/class/scsi_device/{}:{}:{}:{}/device/delete",
        id.host, id.channel, id.target, id.lun
    );
    std::fs::write(&delete, "1").map_err(|e| format!("write {delete}: {e}"))?;
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; block];
    let cmd = Command::new(Cdb::read_10(0, 1)).timeout(Duration::from_secs(5));
    let err = match dev.execute(&cmd, Data::FromDevice(&mut buf)) {
        Err(e) => e,
        Ok(out) => out
            .check(dev.path())
            .err()
            .ok_or("a command on a removed device succeeded")?,
    };
    ensure(
        started.elapsed() < Duration::from_secs(4),
        format!("took {:?}: no hang", started.elapsed()),
    )?;
    let text = err.to_string();
    ensure(
        matches!(
            err.errno(),
            Some(nix::errno::Errno::ENODEV | nix::errno::Errno::ENXIO)
        ),
        format!("an ENODEV-class error: {text}"),
    )?;
    ensure(
        text.contains(&ctx.device.display().to_string()),
        format!("names the device: {text}"),
    )?;
    drop(dev);
    // Bring a device back: a new host on the same shared store, the same node.
    std::fs::write(SYSFS_HOSTS, "1").map_err(|e| format!("write {SYSFS_HOSTS}: {e}"))?;
    for _ in 0..100 {
        if ctx.device.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let again = open(ctx)?;
    ensure_eq(
        again.inquiry()?.product.as_str(),
        "scsi_debug",
        "the node is back",
    )?;
    let mut got = vec![0u8; want.len()];
    again.read_blocks(500_000, &mut got, BlockIo::indirect())?;
    same(&got, &want, "data written before the removal")
}

/// Adds a scsi_debug host (on the same shared store) and waits for the node.
fn add_host(ctx: &Ctx) -> Result<(), Failed> {
    std::fs::write(SYSFS_HOSTS, "1").map_err(|e| format!("write {SYSFS_HOSTS}: {e}"))?;
    for _ in 0..100 {
        if ctx.device.exists() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("{} did not come back after add_host", ctx.device.display()).into())
}

/// Through io_uring on the bsg node: the device is deleted while eight reads
/// wait in it. Each read must end (with its data or an error naming the bsg
/// node), none may hang, a later command must fail clearly, and a new ring
/// on the device brought back must read the data.
fn uring_removal(ctx: &Ctx) -> Result<(), Failed> {
    const HELD: usize = 8;
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let want = data(91, 400_000, block, HELD * block);
    dev.write_blocks(400_000, &want, BlockIo::indirect())?;
    let id = dev.scsi_id()?;
    drop(dev);
    let mut ring = BsgRing::options().depth(16).open(&ctx.device)?;
    let node = ring.path().display().to_string();
    let latency = Knob::latency_ns(300_000_000)?;
    let mut tickets = Vec::new();
    for i in 0..HELD {
        let cmd = Command::new(Cdb::read(400_000 + i as u64, 1)?).timeout(Duration::from_secs(10));
        let buf = Payload::read(DirectBuf::new(block));
        tickets.push(ring.submit(&cmd, buf).map_err(|r| format!("submit: {r}"))?);
    }
    ring.flush()?;
    ensure_eq(ring.in_flight(), HELD, "reads held in the device")?;
    let delete = format!(
        "/sys/class/scsi_device/{}:{}:{}:{}/device/delete",
        id.host, id.channel, id.target, id.lun
    );
    // The removal comes from elsewhere, as a hot unplug does: the sysfs
    // write waits until the device's requests are freed, and freeing an
    // io_uring command's request needs its submitter to enter the ring, so
    // writing `delete` from this thread would wait on itself.
    let remover = std::thread::spawn(move || {
        std::fs::write(&delete, "1").map_err(|e| format!("write {delete}: {e}"))
    });
    let started = std::time::Instant::now();
    let (mut good, mut failed) = (0, 0);
    for _ in 0..HELD {
        let left = Duration::from_secs(15).saturating_sub(started.elapsed());
        match ring.wait_timeout(left) {
            Ok(Some(c)) => match c.outcome.failure_kind() {
                None => {
                    let at = tickets
                        .iter()
                        .position(|t| *t == c.ticket)
                        .ok_or("a completion for an unknown ticket")?;
                    same(
                        c.bytes(),
                        &want[at * block..(at + 1) * block],
                        "a read that finished",
                    )?;
                    good += 1;
                }
                Some(_) => failed += 1,
            },
            Ok(None) => {
                return Err(format!(
                "a read held across the removal did not end in 15 s ({good} good, {failed} failed)"
            )
                .into())
            }
            Err(refused) => {
                let text = refused.to_string();
                ensure(text.contains(&node), format!("names {node}: {text}"))?;
                failed += 1;
            }
        }
    }
    ensure_eq(ring.in_flight(), 0, "nothing left in flight")?;
    remover
        .join()
        .map_err(|_| "the removing thread panicked")??;
    drop(latency);
    // A new command on the removed device fails, quickly and clearly.
    let started = std::time::Instant::now();
    let cmd = Command::new(Cdb::read(0, 1)?).timeout(Duration::from_secs(5));
    let after = ring.submit(&cmd, Payload::read(DirectBuf::new(block)));
    let text = match after {
        Err(rejected) => rejected.to_string(),
        Ok(_) => match ring.wait_timeout(Duration::from_secs(6)) {
            Ok(Some(c)) => match c.check(std::path::Path::new(&node)) {
                Ok(_) => return Err("a read on the removed device succeeded".into()),
                Err(e) => e.to_string(),
            },
            Ok(None) => return Err("a read on the removed device hung for 6 s".into()),
            Err(refused) => refused.to_string(),
        },
    };
    ensure(
        started.elapsed() < Duration::from_secs(6),
        format!("a read after the removal took {:?}", started.elapsed()),
    )?;
    ensure(text.contains(&node), format!("names {node}: {text}"))?;
    drop(ring);
    eprintln!(
        "  removal with {HELD} in flight: {good} finished with data, {failed} failed; then: {text}"
    );
    add_host(ctx)?;
    open(ctx)?;
    let mut again = BsgRing::open(&ctx.device)?;
    let cmd = Command::new(Cdb::read(400_000, HELD as u32)?);
    let t = again
        .submit(&cmd, Payload::read(DirectBuf::new(HELD * block)))
        .map_err(|r| format!("submit on the device brought back: {r}"))?;
    let c = again.wait_for(t).map_err(|r| format!("refused: {r}"))?;
    let c = c.check(again.path())?;
    same(
        c.bytes(),
        &want,
        "data written before the removal, through a new ring",
    )
}
