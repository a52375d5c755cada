//! Permissions and device removal: what the kernel refuses, reported clearly.

use std::time::Duration;

use sgmap::{cdb::Cdb, BlockIo, Command, Data, Device, Error};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 2] = [
    KernelTest::device(
        "read_only_fd_without_cap_sys_rawio_gets_eperm_on_write",
        read_only_eperm,
    ),
    // Last on purpose: it takes the device away and brings it back.
    KernelTest::scsi_debug("zz_device_removed_in_use_gives_enodev_not_a_hang", removal),
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
