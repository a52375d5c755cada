//! Hardening: what sgmap checks before it trusts a node, a tag or a count.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use sgmap::{Device, Error, Queue};
use sgmap_testkit::{ensure, Ctx, Failed, KernelTest};

pub(crate) const TESTS: [KernelTest; 1] = [KernelTest::device(
    "queue_refuses_a_node_that_is_not_sg_before_writing_to_it",
    queue_not_sg,
)];

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
