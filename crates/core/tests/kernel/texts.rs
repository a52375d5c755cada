//! Errors people read: what a path is, said whatever the open's errno.

use sgmap::{Device, Error};
use sgmap_testkit::{ensure, Ctx, Failed, KernelTest};

pub(crate) const TESTS: [KernelTest; 1] = [KernelTest::device(
    "regular_file_on_a_read_only_fs_is_not_an_sg_device",
    regular_file_read_only_fs,
)];

/// The test bed's root is the host's, mounted read-only: opening a regular
/// file there read-write fails with EROFS, and the answer is still that it
/// is no sg device (not "open it read-only", which would not help).
fn regular_file_read_only_fs(_ctx: &Ctx) -> Result<(), Failed> {
    let exe = std::env::current_exe()?;
    let ro = std::fs::OpenOptions::new().write(true).open(&exe);
    ensure(
        matches!(&ro, Err(e) if e.raw_os_error() == Some(libc::EROFS)),
        format!(
            "{} should be on a read-only file system here: {ro:?}",
            exe.display()
        ),
    )?;
    for (what, path) in [
        ("a regular file", exe.as_path()),
        ("a directory", "/".as_ref()),
    ] {
        for read_only in [false, true] {
            match Device::options().read_only(read_only).open(path) {
                Err(Error::NotSg { reason, .. }) => {
                    ensure(reason.contains(what), format!("{what}: {reason}"))?
                }
                Err(e) => {
                    return Err(format!(
                        "{} (read_only {read_only}): expected not-an-sg-device, got {}",
                        path.display(),
                        e.report()
                    )
                    .into())
                }
                Ok(_) => return Err(format!("{} opened as a device", path.display()).into()),
            }
        }
    }
    Ok(())
}
