//! Finding sg devices through sysfs.
//!
//! Everything here reads sysfs only (no device is opened) and takes the sysfs
//! root as a parameter in its `_in` form, so that tests can point it at a fake
//! tree; the plain forms use `/sys`. Attributes that are missing or unreadable
//! are reported as empty strings or `None`, never as errors: a device can
//! disappear, or lack an attribute, between two reads.
//!
//! ```no_run
//! for dev in sgmap::discover::list()? {
//!     println!("{} {} {} {:?}", dev.path.display(), dev.vendor, dev.model, dev.block_device);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where sysfs is normally mounted.
pub const SYSFS_ROOT: &str = "/sys";

/// One sg device as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgDeviceInfo {
    /// The sg device name, e.g. `"sg0"`.
    pub name: String,
    /// The device node, `/dev/<name>` (e.g. `/dev/sg0`); whether it exists
    /// and may be opened is up to udev and its permissions.
    pub path: PathBuf,
    /// The block device on the same SCSI device (e.g. `"sda"`), if there is
    /// one; tapes, enclosures and the like have none.
    pub block_device: Option<String>,
    /// The INQUIRY vendor (`device/vendor`), trimmed; empty if unreadable.
    pub vendor: String,
    /// The INQUIRY product (`device/model`), trimmed; empty if unreadable.
    pub model: String,
    /// The INQUIRY revision (`device/rev`), trimmed; empty if unreadable.
    pub revision: String,
    /// The peripheral device type (`device/type`; 0 = disk, 5 = CD/DVD, see
    /// `sgmap_sys::TYPE_*`).
    pub device_type: Option<u8>,
    /// Host, channel, target and LUN, from the name of the SCSI device
    /// (`device` links to e.g. `.../0:0:0:0`).
    pub hctl: Option<(u32, u32, u32, u64)>,
}

impl SgDeviceInfo {
    /// The number in the sg name (`sg10` → 10), if the name has that form.
    pub fn sg_number(&self) -> Option<u32> {
        sg_number(&self.name)
    }
}

/// The number of an `sgN` name.
fn sg_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("sg")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Reads a sysfs attribute, trimmed of surrounding whitespace (sysfs ends
/// values with a newline; INQUIRY strings are padded with spaces).
fn read_attr(path: &Path) -> Option<String> {
    let bytes = fs::read(path).ok()?;
    Some(String::from_utf8_lossy(&bytes).trim().to_owned())
}

/// Reads a sysfs attribute holding a decimal number.
fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    read_attr(path)?.parse().ok()
}

/// Parses a SCSI device name `H:C:T:L`.
fn parse_hctl(name: &str) -> Option<(u32, u32, u32, u64)> {
    let mut parts = name.split(':');
    let h = parts.next()?.parse().ok()?;
    let c = parts.next()?.parse().ok()?;
    let t = parts.next()?.parse().ok()?;
    let l = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some((h, c, t, l))
}

/// The H:C:T:L of the SCSI device `device` (a symlink in sysfs) names.
fn hctl_of(device: &Path) -> Option<(u32, u32, u32, u64)> {
    let target = fs::read_link(device)
        .ok()
        .or_else(|| fs::canonicalize(device).ok())?;
    parse_hctl(target.file_name()?.to_str()?)
}

/// The block device under a SCSI device directory: `device/block/<name>`
/// (current kernels), or a `device/block:<name>` link (old kernels). The first
/// by name if there are several.
fn block_device_of(device: &Path) -> Option<String> {
    let names = |dir: &Path| -> Vec<String> {
        fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut found = names(&device.join("block"));
    if found.is_empty() {
        found = names(device)
            .into_iter()
            .filter_map(|n| n.strip_prefix("block:").map(str::to_owned))
            .collect();
    }
    found.sort();
    found.into_iter().find(|n| !n.is_empty())
}

/// Whether `name` is a single, ordinary path component (so that joining it
/// to a sysfs directory cannot leave that directory).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Lists the sg devices under `/sys/class/scsi_generic`, sorted by sg number.
///
/// See [`list_in`].
pub fn list() -> io::Result<Vec<SgDeviceInfo>> {
    list_in(Path::new(SYSFS_ROOT))
}

/// Lists the sg devices under `<sysfs_root>/class/scsi_generic`, sorted by sg
/// number (`sg2` before `sg10`).
///
/// An empty list means the sg driver is loaded but has no devices. If the
/// class directory does not exist the sg driver is not loaded (or sysfs is
/// not mounted there) and this fails with [`io::ErrorKind::NotFound`] and a
/// message saying so. Missing attributes of a device are not errors.
pub fn list_in(sysfs_root: &Path) -> io::Result<Vec<SgDeviceInfo>> {
    let class = sysfs_root.join("class").join("scsi_generic");
    let entries = match fs::read_dir(&class) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{} does not exist: the sg driver is not loaded (load it with `modprobe sg`) \
                     or sysfs is not mounted at {}",
                    class.display(),
                    sysfs_root.display()
                ),
            ));
        }
        Err(e) => return Err(e),
    };
    let mut devices = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not a name the sg driver makes
        };
        devices.push(describe(&entry.path(), name));
    }
    devices.sort_by(|a, b| {
        let key = |d: &SgDeviceInfo| (d.sg_number().unwrap_or(u32::MAX), d.name.clone());
        key(a).cmp(&key(b))
    });
    Ok(devices)
}

/// Gathers what sysfs says about one `class/scsi_generic/<name>` entry.
fn describe(sg_dir: &Path, name: String) -> SgDeviceInfo {
    let device = sg_dir.join("device");
    let attr = |file: &str| read_attr(&device.join(file)).unwrap_or_default();
    SgDeviceInfo {
        path: Path::new("/dev").join(&name),
        block_device: block_device_of(&device),
        vendor: attr("vendor"),
        model: attr("model"),
        revision: attr("rev"),
        device_type: read_number(&device.join("type")),
        hctl: hctl_of(&device),
        name,
    }
}

/// Whether the sg driver allows direct IO (`/sys/module/sg/parameters/allow_dio`).
///
/// See [`allow_dio_in`].
pub fn allow_dio() -> Option<bool> {
    allow_dio_in(Path::new(SYSFS_ROOT))
}

/// Whether the sg driver allows direct IO, from
/// `<sysfs_root>/module/sg/parameters/allow_dio`.
///
/// `None` when the file is missing (the sg driver is not loaded) or holds
/// something other than a number. Even with `Some(true)` a direct IO request
/// may be done indirectly; only the `info` field after completion tells.
pub fn allow_dio_in(sysfs_root: &Path) -> Option<bool> {
    let path = sysfs_root
        .join("module")
        .join("sg")
        .join("parameters")
        .join("allow_dio");
    read_number::<i64>(&path).map(|v| v != 0)
}

/// The `queue` directory of the block device that `name` (an sg name such as
/// `sg0`, or a block device name such as `sda`) is or sits on.
fn queue_dir(sysfs_root: &Path, name: &str) -> Option<PathBuf> {
    if !is_plain_name(name) {
        return None;
    }
    let sg_device = sysfs_root
        .join("class")
        .join("scsi_generic")
        .join(name)
        .join("device");
    if sg_device.exists() {
        let block = block_device_of(&sg_device)?;
        let queue = sg_device.join("block").join(&block).join("queue");
        if queue.is_dir() {
            return Some(queue);
        }
        // Old layout (`device/block:sda`): go through the block class.
        return Some(
            sysfs_root
                .join("class")
                .join("block")
                .join(block)
                .join("queue"),
        );
    }
    Some(
        sysfs_root
            .join("class")
            .join("block")
            .join(name)
            .join("queue"),
    )
}

/// The current largest transfer of one command, in KiB, from the block
/// queue's `max_sectors_kb`. `name` is an sg name (`"sg0"`) or a block device
/// name (`"sda"`).
///
/// See [`max_sectors_kb_in`].
pub fn max_sectors_kb(name: &str) -> Option<u32> {
    max_sectors_kb_in(Path::new(SYSFS_ROOT), name)
}

/// The current largest transfer of one command, in KiB: `max_sectors_kb` of
/// the block queue under `<sysfs_root>`, found through
/// `class/scsi_generic/<name>/device/block/*/queue` for an sg name or
/// `class/block/<name>/queue` for a block device name.
///
/// The sg driver clamps its reserved buffer to this limit, and larger
/// requests fail, so transfers should be split to fit. `None` when there is
/// no block device (an sg-only device such as a tape or enclosure), the
/// attribute is missing, or `name` is not a plain name.
pub fn max_sectors_kb_in(sysfs_root: &Path, name: &str) -> Option<u32> {
    read_number(&queue_dir(sysfs_root, name)?.join("max_sectors_kb"))
}

/// The hardware's largest transfer of one command, in KiB, from the block
/// queue's `max_hw_sectors_kb` (the ceiling `max_sectors_kb` can be raised
/// to). `name` is an sg name or a block device name.
///
/// See [`max_hw_sectors_kb_in`].
pub fn max_hw_sectors_kb(name: &str) -> Option<u32> {
    max_hw_sectors_kb_in(Path::new(SYSFS_ROOT), name)
}

/// The hardware's largest transfer of one command, in KiB: `max_hw_sectors_kb`
/// of the block queue under `<sysfs_root>`, found as in
/// [`max_sectors_kb_in`]. `None` under the same conditions.
pub fn max_hw_sectors_kb_in(sysfs_root: &Path, name: &str) -> Option<u32> {
    read_number(&queue_dir(sysfs_root, name)?.join("max_hw_sectors_kb"))
}

/// The alignment, in bytes, that direct IO needs of a buffer's address and
/// length on the block queue of `name` (an sg name or a block device name):
/// the queue's `dma_alignment` mask plus one.
///
/// See [`dma_alignment_in`].
pub fn dma_alignment(name: &str) -> Option<usize> {
    dma_alignment_in(Path::new(SYSFS_ROOT), name)
}

/// The direct-IO alignment of the block queue under `<sysfs_root>`, found as
/// in [`max_sectors_kb_in`]: `queue/dma_alignment` (a mask, e.g. 3 or 511)
/// plus one. The kernel does direct IO only when the buffer's address and
/// length are both multiples of it (`blk_rq_aligned`). `None` when there is
/// no block device (the queue of an sg-only device has no sysfs folder) or
/// the attribute is missing.
pub fn dma_alignment_in(sysfs_root: &Path, name: &str) -> Option<usize> {
    let mask: usize = read_number(&queue_dir(sysfs_root, name)?.join("dma_alignment"))?;
    mask.checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fake sysfs tree in a fresh temporary folder, removed on drop.
    struct FakeSysfs {
        root: PathBuf,
    }

    /// Where to put a block device under a fake SCSI device.
    enum Block<'a> {
        None,
        /// `device/block/<name>/queue/{max_sectors_kb,max_hw_sectors_kb}`.
        Current(&'a str, u32, u32),
        /// `device/block:<name>` link, the queue under `block/<name>`.
        Old(&'a str, u32, u32),
    }

    impl FakeSysfs {
        fn new(tag: &str) -> FakeSysfs {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let root = std::env::temp_dir().join(format!(
                "sgmap-discover-{}-{}-{}",
                std::process::id(),
                tag,
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&root);
            fs::create_dir_all(root.join("class").join("scsi_generic")).unwrap();
            fs::create_dir_all(root.join("class").join("block")).unwrap();
            FakeSysfs { root }
        }

        fn write(&self, rel: &str, contents: &str) {
            let path = self.root.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }

        /// Adds `sg_name` on SCSI device `hctl` the way the kernel lays it
        /// out, with the given attributes (`None` = file absent).
        fn add(
            &self,
            sg_name: &str,
            hctl: &str,
            attrs: [Option<&str>; 4],
            block: Block<'_>,
        ) -> PathBuf {
            let host = hctl.split(':').next().unwrap();
            let target = hctl.rsplit_once(':').unwrap().0;
            let dev_rel = format!("devices/pseudo_0/adapter0/host{host}/target{target}/{hctl}");
            let dev = self.root.join(&dev_rel);
            let sg_dir = dev.join("scsi_generic").join(sg_name);
            fs::create_dir_all(&sg_dir).unwrap();
            symlink(format!("../../../{hctl}"), sg_dir.join("device")).unwrap();
            symlink(
                format!("../../{dev_rel}/scsi_generic/{sg_name}"),
                self.root.join("class/scsi_generic").join(sg_name),
            )
            .unwrap();
            for (file, value) in ["vendor", "model", "rev", "type"].iter().zip(attrs) {
                if let Some(value) = value {
                    fs::write(dev.join(file), value).unwrap();
                }
            }
            let (blk, max, hw, old) = match block {
                Block::None => return dev,
                Block::Current(b, m, h) => (b, m, h, false),
                Block::Old(b, m, h) => (b, m, h, true),
            };
            let blk_rel = if old {
                format!("devices/virtual/oldblock/{blk}")
            } else {
                format!("{dev_rel}/block/{blk}")
            };
            let queue = self.root.join(&blk_rel).join("queue");
            fs::create_dir_all(&queue).unwrap();
            fs::write(queue.join("max_sectors_kb"), format!("{max}\n")).unwrap();
            fs::write(queue.join("max_hw_sectors_kb"), format!("{hw}\n")).unwrap();
            symlink(
                format!("../../{blk_rel}"),
                self.root.join("class/block").join(blk),
            )
            .unwrap();
            if old {
                symlink(
                    format!("../../../../../virtual/oldblock/{blk}"),
                    dev.join(format!("block:{blk}")),
                )
                .unwrap();
            }
            dev
        }
    }

    impl Drop for FakeSysfs {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.root);
        }
    }

    const SCSI_DEBUG: [Option<&str>; 4] = [
        Some("Linux   \n"),
        Some("scsi_debug      \n"),
        Some("0191\n"),
        Some("0\n"),
    ];

    #[test]
    fn lists_like_the_real_layout() {
        let fs = FakeSysfs::new("real");
        fs.add(
            "sg0",
            "0:0:0:0",
            SCSI_DEBUG,
            Block::Current("sda", 1280, 32767),
        );
        let list = list_in(&fs.root).unwrap();
        assert_eq!(
            list,
            vec![SgDeviceInfo {
                name: "sg0".into(),
                path: PathBuf::from("/dev/sg0"),
                block_device: Some("sda".into()),
                vendor: "Linux".into(),
                model: "scsi_debug".into(),
                revision: "0191".into(),
                device_type: Some(0),
                hctl: Some((0, 0, 0, 0)),
            }]
        );
        assert_eq!(list[0].sg_number(), Some(0));
    }

    #[test]
    fn sorted_by_number() {
        let fs = FakeSysfs::new("sorted");
        fs.add("sg10", "10:0:0:0", SCSI_DEBUG, Block::None);
        fs.add("sg2", "2:0:0:0", SCSI_DEBUG, Block::None);
        fs.add("sg1", "1:0:0:0", SCSI_DEBUG, Block::None);
        fs.add("sg100", "3:0:0:0", SCSI_DEBUG, Block::None);
        let names: Vec<String> = list_in(&fs.root)
            .unwrap()
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["sg1", "sg2", "sg10", "sg100"]);
    }

    #[test]
    fn hctl_and_type_parsed() {
        let fs = FakeSysfs::new("hctl");
        fs.add(
            "sg3",
            "4:1:2:4294967296",
            [Some("ATA     "), Some("Disk"), Some("1.0"), Some("5\n")],
            Block::None,
        );
        let d = &list_in(&fs.root).unwrap()[0];
        assert_eq!(d.hctl, Some((4, 1, 2, 0x1_0000_0000)));
        assert_eq!(d.device_type, Some(5));
        assert_eq!(d.vendor, "ATA");
        assert_eq!(d.block_device, None);
        assert_eq!(d.path, PathBuf::from("/dev/sg3"));
    }

    #[test]
    fn missing_attributes_are_not_errors() {
        let fs = FakeSysfs::new("missing");
        fs.add("sg0", "0:0:0:0", [None, None, None, None], Block::None);
        // A bare directory with no `device` link at all.
        fs::create_dir_all(fs.root.join("class/scsi_generic/sg7")).unwrap();
        // Garbage in `type`.
        fs.add(
            "sg1",
            "1:0:0:0",
            [Some(""), None, Some("\n"), Some("disk")],
            Block::None,
        );
        let list = list_in(&fs.root).unwrap();
        assert_eq!(list.len(), 3);
        for d in &list {
            assert_eq!(d.vendor, "");
            assert_eq!(d.model, "");
            assert_eq!(d.revision, "");
            assert_eq!(d.device_type, None);
            assert_eq!(d.block_device, None);
        }
        assert_eq!(list[0].hctl, Some((0, 0, 0, 0)));
        assert_eq!(list[1].hctl, Some((1, 0, 0, 0)));
        assert_eq!(list[2].name, "sg7");
        assert_eq!(list[2].hctl, None);
    }

    #[test]
    fn old_block_link_layout() {
        let fs = FakeSysfs::new("old");
        fs.add("sg0", "0:0:0:0", SCSI_DEBUG, Block::Old("sdb", 512, 1024));
        let d = &list_in(&fs.root).unwrap()[0];
        assert_eq!(d.block_device.as_deref(), Some("sdb"));
        assert_eq!(max_sectors_kb_in(&fs.root, "sg0"), Some(512));
        assert_eq!(max_hw_sectors_kb_in(&fs.root, "sg0"), Some(1024));
    }

    #[test]
    fn missing_class_dir_is_not_found_with_advice() {
        let fs = FakeSysfs::new("noclass");
        fs::remove_dir_all(fs.root.join("class/scsi_generic")).unwrap();
        let e = list_in(&fs.root).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("modprobe sg"), "{e}");
    }

    #[test]
    fn empty_class_dir_is_empty_list() {
        let fs = FakeSysfs::new("empty");
        assert_eq!(list_in(&fs.root).unwrap(), vec![]);
    }

    #[test]
    fn allow_dio_values() {
        let fs = FakeSysfs::new("dio");
        assert_eq!(allow_dio_in(&fs.root), None);
        let rel = "module/sg/parameters/allow_dio";
        fs.write(rel, "0\n");
        assert_eq!(allow_dio_in(&fs.root), Some(false));
        fs.write(rel, "1\n");
        assert_eq!(allow_dio_in(&fs.root), Some(true));
        fs.write(rel, "Y\n");
        assert_eq!(allow_dio_in(&fs.root), None);
    }

    #[test]
    fn transfer_limits() {
        let fs = FakeSysfs::new("limits");
        fs.add(
            "sg0",
            "0:0:0:0",
            SCSI_DEBUG,
            Block::Current("sda", 1280, 32767),
        );
        fs.add("sg1", "1:0:0:0", SCSI_DEBUG, Block::None);
        assert_eq!(max_sectors_kb_in(&fs.root, "sg0"), Some(1280));
        assert_eq!(max_hw_sectors_kb_in(&fs.root, "sg0"), Some(32767));
        assert_eq!(max_sectors_kb_in(&fs.root, "sda"), Some(1280));
        assert_eq!(max_hw_sectors_kb_in(&fs.root, "sda"), Some(32767));
        assert_eq!(max_sectors_kb_in(&fs.root, "sg1"), None);
        assert_eq!(max_sectors_kb_in(&fs.root, "sg9"), None);
        assert_eq!(max_sectors_kb_in(&fs.root, "sdz"), None);
        for bad in ["", ".", "..", "../sda", "sda/queue", "sg0\0"] {
            assert_eq!(max_sectors_kb_in(&fs.root, bad), None, "{bad:?}");
            assert_eq!(max_hw_sectors_kb_in(&fs.root, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn dma_alignment_is_the_queue_mask_plus_one() {
        let fs = FakeSysfs::new("dma");
        let queue = fs.add(
            "sg0",
            "0:0:0:0",
            SCSI_DEBUG,
            Block::Current("sda", 1280, 32767),
        );
        fs.add("sg1", "1:0:0:0", SCSI_DEBUG, Block::None);
        assert_eq!(dma_alignment_in(&fs.root, "sg0"), None, "no attribute yet");
        fs::write(queue.join("block/sda/queue/dma_alignment"), "3\n").unwrap();
        assert_eq!(dma_alignment_in(&fs.root, "sg0"), Some(4));
        assert_eq!(dma_alignment_in(&fs.root, "sda"), Some(4));
        fs::write(queue.join("block/sda/queue/dma_alignment"), "511\n").unwrap();
        assert_eq!(dma_alignment_in(&fs.root, "sg0"), Some(512));
        assert_eq!(dma_alignment_in(&fs.root, "sg1"), None, "an sg-only device");
        assert_eq!(dma_alignment_in(&fs.root, "../sda"), None);
    }

    #[test]
    fn helpers() {
        assert_eq!(sg_number("sg0"), Some(0));
        assert_eq!(sg_number("sg123"), Some(123));
        assert_eq!(sg_number("sg"), None);
        assert_eq!(sg_number("sg+1"), None);
        assert_eq!(sg_number("sda"), None);
        assert_eq!(sg_number("sg99999999999"), None);
        assert_eq!(parse_hctl("0:0:0:0"), Some((0, 0, 0, 0)));
        assert_eq!(parse_hctl("0:0:0"), None);
        assert_eq!(parse_hctl("0:0:0:0:0"), None);
        assert_eq!(parse_hctl("host0"), None);
        assert_eq!(parse_hctl("a:b:c:d"), None);
    }

    /// On the build machine (no sg driver) `list` fails with NotFound; on a
    /// machine with sg it lists devices. Either way nothing may panic.
    #[test]
    fn real_sysfs_does_not_panic() {
        if let Ok(list) = list() {
            assert!(list.iter().all(|d| d.path.starts_with("/dev")));
        }
        let _ = allow_dio();
        let _ = max_sectors_kb("sg0");
        let _ = max_hw_sectors_kb("sg0");
    }
}
