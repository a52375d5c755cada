//! The peers `sgmap bench --peers` runs beside sgmap, on the same device and
//! with the same transfers: sg3_utils' `sg_read` (indirect, `dio=1`,
//! `mmap=1`), fio's `sg` engine, and fio's `io_uring` engine on the same
//! disk's block device (`/dev/sdX`, `--direct=1`: the block layer's figure
//! for the disk, beside sgmap's io_uring transport).
//!
//! How each is run, so that the comparison is like with like:
//! - `sg_read` re-reads the same blocks (from `skip`) with every command; it
//!   sizes the fd's reserved buffer to the transfer (as sgmap does for
//!   indirect IO) and, with `time=1`, times its command loop only, which is
//!   what sgmap times too. It has no write and no queue depth.
//! - sg3_utils' `sg_dd` (indirect, `dio=1`) and `sgm_dd` (mmap) are the
//!   write peers: `iflag=00` feeds `sg_dd` zeros without reading a file
//!   (`sgm_dd` has no such flag and reads `/dev/zero` into its mapped
//!   buffer), `time=1` times the copy loop only. They move forward from
//!   `seek` and cannot cycle, so a run over more than `span` bytes is split
//!   into invocations of at most `span` bytes each, from the same `seek`,
//!   and their loop times are summed.
//! - fio's `sg` engine on an sg node is synchronous (`write()` then `read()`
//!   per command, so depth 1 whatever `--iodepth` says) when `--direct=1` or
//!   `--sync=1`; only with both off does it keep `--iodepth` commands in
//!   flight. So fio runs with `--direct=0` at every depth, over the same span
//!   and byte count as sgmap, and reports its own IO time. Its data moves
//!   through its own buffer (indirect IO).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sgmap_benches::{CpuTime, Dir, ModeCounts, Sample, Way};

/// A peer program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Peer {
    /// sg3_utils' `sg_read`.
    SgRead,
    /// fio's `sg` engine.
    Fio,
    /// fio's `io_uring` engine on the disk's block device, `--direct=1`.
    FioUring,
    /// sg3_utils' `sg_dd` (indirect, `dio=1`) and `sgm_dd` (mmap), for writes.
    SgDd,
}

impl Peer {
    /// The program's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Peer::SgRead => "sg_read",
            Peer::Fio | Peer::FioUring => "fio",
            Peer::SgDd => "sg_dd",
        }
    }

    /// The Debian package that has it.
    pub(crate) fn package(self) -> &'static str {
        match self {
            Peer::SgRead | Peer::SgDd => "sg3-utils",
            Peer::Fio | Peer::FioUring => "fio",
        }
    }
}

impl std::str::FromStr for Peer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sg_read" | "sg3_utils" | "sg3-utils" => Ok(Peer::SgRead),
            "fio" => Ok(Peer::Fio),
            "fio_uring" | "fio-uring" => Ok(Peer::FioUring),
            "sg_dd" | "sgm_dd" => Ok(Peer::SgDd),
            _ => Err(format!(
                "unknown peer `{s}`: use sg_read, sg_dd, fio or fio_uring"
            )),
        }
    }
}

/// Finds `program` in `PATH`.
pub(crate) fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The command line of one `sg_read` run: `commands` reads of `bs` bytes,
/// each at block `skip` of a device with `block`-byte blocks.
pub(crate) fn sg_read_args(
    device: &Path,
    way: Way,
    block: usize,
    bs: usize,
    commands: u64,
    skip: u64,
) -> Vec<String> {
    let bpt = bs / block;
    let mut a = vec![
        format!("if={}", device.display()),
        format!("bs={block}"),
        format!("bpt={bpt}"),
        format!("count={}", commands * bpt as u64),
        format!("skip={skip}"),
        "time=1".to_string(),
    ];
    match way {
        Way::Mmap => a.push("mmap=1".into()),
        Way::Direct => a.push("dio=1".into()),
        // run_sg_read refuses uring: sg_read has no io_uring.
        Way::Indirect | Way::Uring => {}
    }
    a
}

/// `` `program args` `` for messages, with the program's file name.
fn shown(program: &Path, args: &[String]) -> String {
    format!(
        "`{} {}`",
        program.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    )
}

/// Runs an sg3_utils program and gives back what it printed (stdout, then
/// stderr, where its `time=1` report goes); a failure names the command line.
fn run_sg3(program: &Path, args: &[String]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{} failed ({}): {}",
            shown(program, args),
            out.status,
            text.trim()
        ))
    }
}

/// The count in sg3_utils' `>> Direct IO requested but incomplete N times`,
/// which sg_read and sg_dd both print when direct IO fell back.
fn dio_incomplete_in(line: &str) -> Option<u64> {
    const SAYS: &str = "Direct IO requested but incomplete ";
    let at = line.find(SAYS)? + SAYS.len();
    Some(
        line[at..]
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// What sg_read printed: the loop time and commands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SgReadOutput {
    pub secs: f64,
    pub commands: u64,
    /// Commands that asked for direct IO and did not get it.
    pub dio_incomplete: u64,
}

/// Parses sg_read's `time=1` report (it goes to stderr):
/// `Time for all SCSI READ commands was 0.123456 secs, 531.2 MB/sec`,
/// `... SCSI READ commands issued: 1000`, and, when direct IO fell back,
/// `>> Direct IO requested but incomplete 12 times`.
pub(crate) fn parse_sg_read(text: &str) -> Result<SgReadOutput, String> {
    let mut secs = None;
    let mut commands = None;
    let mut dio_incomplete = 0;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with("Time ") && l.contains(" was ") {
            let after = &l[l.find(" was ").map_or(0, |i| i + 5)..];
            secs = after
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok());
        }
        if let Some(i) = l.find("commands issued:") {
            commands = l[i + "commands issued:".len()..]
                .trim()
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|v| v.parse::<u64>().ok());
        }
        if let Some(n) = dio_incomplete_in(l) {
            dio_incomplete = n;
        }
    }
    match (secs, commands) {
        (Some(secs), Some(commands)) if secs > 0.0 => Ok(SgReadOutput {
            secs,
            commands,
            dio_incomplete,
        }),
        _ => Err(format!(
            "could not find the timing lines in sg_read's output:\n{}",
            text.trim()
        )),
    }
}

/// Runs sg_read once and returns what it timed.
pub(crate) fn run_sg_read(
    program: &Path,
    device: &Path,
    way: Way,
    block: usize,
    bs: usize,
    commands: u64,
    skip: u64,
) -> Result<Sample, String> {
    if way == Way::Uring {
        return Err("sg_read has no io_uring transport".into());
    }
    let args = sg_read_args(device, way, block, bs, commands, skip);
    let text = run_sg3(program, &args)?;
    let o = parse_sg_read(&text)?;
    if o.commands != commands {
        return Err(format!(
            "`sg_read {}` issued {} commands, not {commands}: {}",
            args.join(" "),
            o.commands,
            text.trim()
        ));
    }
    let mut modes = ModeCounts::default();
    match way {
        Way::Mmap => modes.mmap = o.commands,
        Way::Direct => {
            modes.direct = o.commands - o.dio_incomplete.min(o.commands);
            modes.indirect = o.dio_incomplete.min(o.commands);
        }
        Way::Indirect | Way::Uring => modes.indirect = o.commands,
    }
    Ok(Sample {
        commands: o.commands,
        bytes: o.commands * bs as u64,
        wall: Duration::from_secs_f64(o.secs),
        cpu: None,
        modes,
    })
}

/// The program and command line of one `sg_dd` (or, for mmap, `sgm_dd`)
/// run: `commands` writes of `bs` bytes from block `seek` on, of zeros.
pub(crate) fn sg_dd_args(
    sg_dd: &Path,
    device: &Path,
    way: Way,
    block: usize,
    bs: usize,
    commands: u64,
    seek: u64,
) -> (PathBuf, Vec<String>) {
    let bpt = bs / block;
    let mut a = vec![
        format!("of={}", device.display()),
        format!("bs={block}"),
        format!("bpt={bpt}"),
        format!("count={}", commands * bpt as u64),
        format!("seek={seek}"),
        "time=1".to_string(),
    ];
    let program = match way {
        Way::Mmap => {
            a.insert(0, "if=/dev/zero".into());
            sg_dd.with_file_name("sgm_dd")
        }
        Way::Direct => {
            a.insert(0, "iflag=00".into());
            a.push("dio=1".into());
            sg_dd.to_path_buf()
        }
        // run_sg_dd refuses uring: sg_dd has no io_uring.
        Way::Indirect | Way::Uring => {
            a.insert(0, "iflag=00".into());
            sg_dd.to_path_buf()
        }
    };
    (program, a)
}

/// What sg_dd or sgm_dd printed: the copy loop's time, the blocks written
/// and how often direct IO fell back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SgDdOutput {
    pub secs: f64,
    pub blocks_out: u64,
    pub dio_incomplete: u64,
}

/// Parses `time to transfer data: 0.004281 secs at 1530.86 MB/sec`,
/// `12800+0 records out` and `>> Direct IO requested but incomplete 10 times`.
pub(crate) fn parse_sg_dd(text: &str) -> Result<SgDdOutput, String> {
    let mut secs = None;
    let mut blocks_out = None;
    let mut dio_incomplete = 0;
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("time to transfer data") {
            secs = rest
                .trim_start_matches(|c: char| c != ':')
                .trim_start_matches(':')
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok());
        }
        if let Some(n) = l.strip_suffix("records out") {
            blocks_out = n
                .trim()
                .split('+')
                .next()
                .and_then(|v| v.parse::<u64>().ok());
        }
        if let Some(n) = dio_incomplete_in(l) {
            dio_incomplete = n;
        }
    }
    match (secs, blocks_out) {
        (Some(secs), Some(blocks_out)) if secs > 0.0 => Ok(SgDdOutput {
            secs,
            blocks_out,
            dio_incomplete,
        }),
        _ => Err(format!(
            "could not find the timing and record lines in sg_dd's output:\n{}",
            text.trim()
        )),
    }
}

/// Runs sg_dd (sgm_dd for mmap) until `commands` writes of `bs` bytes are
/// done, each invocation over at most `span` bytes from block `seek`, and
/// returns the summed loop time.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_sg_dd(
    sg_dd: &Path,
    device: &Path,
    way: Way,
    block: usize,
    bs: usize,
    commands: u64,
    seek: u64,
    span: u64,
) -> Result<Sample, String> {
    if way == Way::Uring {
        return Err("sg_dd has no io_uring transport".into());
    }
    let per_run = (span / bs as u64).max(1);
    let bpt = (bs / block) as u64;
    let (mut left, mut secs, mut incomplete) = (commands, 0.0f64, 0u64);
    while left > 0 {
        let n = left.min(per_run);
        let (program, args) = sg_dd_args(sg_dd, device, way, block, bs, n, seek);
        let shown = || shown(&program, &args);
        let text = run_sg3(&program, &args)?;
        let o = parse_sg_dd(&text).map_err(|e| format!("{}: {e}", shown()))?;
        if o.blocks_out != n * bpt {
            return Err(format!(
                "{} wrote {} blocks, not {}: {}",
                shown(),
                o.blocks_out,
                n * bpt,
                text.trim()
            ));
        }
        secs += o.secs;
        incomplete += o.dio_incomplete.min(n);
        left -= n;
    }
    let mut modes = ModeCounts::default();
    match way {
        Way::Mmap => modes.mmap = commands,
        Way::Direct => {
            modes.direct = commands - incomplete;
            modes.indirect = incomplete;
        }
        Way::Indirect | Way::Uring => modes.indirect = commands,
    }
    Ok(Sample {
        commands,
        bytes: commands * bs as u64,
        wall: Duration::from_secs_f64(secs),
        cpu: None,
        modes,
    })
}

/// The command line of one fio run: `commands` transfers of `bs` bytes with
/// `depth` in flight, cycling over `span` bytes from `offset`.
pub(crate) fn fio_args(
    device: &Path,
    dir: Dir,
    bs: usize,
    depth: usize,
    commands: u64,
    offset: u64,
    span: u64,
) -> Vec<String> {
    let job = FioJob {
        name: "sgmap-peer",
        engine: "sg",
        file: device,
        dir,
        bs,
        depth,
        commands,
        offset,
        span,
    };
    // direct=0 and sync=0: the only way fio's sg engine queues on an sg node.
    job.args(&["--direct=0", "--sync=0"])
}

/// One fio job's shape: the flags every peer run of fio shares.
struct FioJob<'a> {
    name: &'a str,
    engine: &'a str,
    file: &'a Path,
    dir: Dir,
    bs: usize,
    depth: usize,
    commands: u64,
    offset: u64,
    span: u64,
}

impl FioJob<'_> {
    /// The command line, with the engine's own flags `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            format!("--name={}", self.name),
            format!("--ioengine={}", self.engine),
            format!("--filename={}", self.file.display()),
            format!("--rw={}", self.dir.name()),
            format!("--bs={}", self.bs),
            format!("--iodepth={}", self.depth),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        a.extend([
            format!("--offset={}", self.offset),
            format!("--size={}", self.span),
            format!("--io_size={}", self.commands * self.bs as u64),
            "--invalidate=0".into(),
            // Per-IO latency clocks off: the peer at its fastest.
            "--gtod_reduce=1".into(),
            "--output-format=json".into(),
        ]);
        a
    }
}

/// What fio reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FioOutput {
    pub ios: u64,
    pub bytes: u64,
    pub runtime_ms: u64,
    pub cpu_percent: f64,
}

/// Parses fio's `--output-format=json` report for the direction `dir`.
pub(crate) fn parse_fio(text: &str, dir: Dir) -> Result<FioOutput, String> {
    let start = text
        .find('{')
        .ok_or_else(|| format!("no JSON in fio's output:\n{}", text.trim()))?;
    let v: serde_json::Value = serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<serde_json::Value>()
        .next()
        .ok_or("empty JSON from fio")?
        .map_err(|e| format!("fio's JSON does not parse: {e}"))?;
    let job = &v["jobs"][0];
    if job.is_null() {
        return Err(format!("fio's JSON has no job: {}", text.trim()));
    }
    let err = job["error"].as_i64().unwrap_or(0);
    if err != 0 {
        return Err(format!("fio's job failed with error {err}"));
    }
    let d = &job[dir.name()];
    let num = |x: &serde_json::Value| x.as_f64().or_else(|| x.as_u64().map(|v| v as f64));
    let ios = num(&d["total_ios"]).unwrap_or(0.0) as u64;
    let bytes = num(&d["io_bytes"]).unwrap_or(0.0) as u64;
    let runtime_ms = num(&d["runtime"]).unwrap_or(0.0) as u64;
    let cpu_percent = num(&job["usr_cpu"]).unwrap_or(0.0) + num(&job["sys_cpu"]).unwrap_or(0.0);
    if ios == 0 || runtime_ms == 0 {
        return Err(format!(
            "fio reported {ios} {} IOs in {runtime_ms} ms",
            dir.name()
        ));
    }
    Ok(FioOutput {
        ios,
        bytes,
        runtime_ms,
        cpu_percent,
    })
}

/// Runs fio once and returns what it timed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_fio(
    program: &Path,
    device: &Path,
    dir: Dir,
    bs: usize,
    depth: usize,
    commands: u64,
    offset: u64,
    span: u64,
) -> Result<Sample, String> {
    let args = fio_args(device, dir, bs, depth, commands, offset, span);
    fio_sample(program, &args, dir, |ios| ModeCounts {
        indirect: ios,
        ..ModeCounts::default()
    })
}

/// Runs fio with `args` and turns its JSON into a sample; `modes` says how
/// its IOs moved (the sg engine copies, the block device's O_DIRECT does not).
fn fio_sample(
    program: &Path,
    args: &[String],
    dir: Dir,
    modes: impl Fn(u64) -> ModeCounts,
) -> Result<Sample, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "`fio {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let o = parse_fio(&stdout, dir).map_err(|e| format!("`fio {}`: {e}", args.join(" ")))?;
    let wall = Duration::from_millis(o.runtime_ms);
    let cpu = wall.mul_f64(o.cpu_percent / 100.0);
    Ok(Sample {
        commands: o.ios,
        bytes: o.bytes,
        wall,
        cpu: Some(CpuTime {
            user: cpu,
            system: Duration::ZERO,
        }),
        modes: modes(o.ios),
    })
}

/// The block device (`/dev/sdX`) of the sg node `device`, from sysfs
/// (`/sys/class/scsi_generic/sgN/device/block/`); an error saying what to
/// load when there is none.
pub(crate) fn block_device_of(device: &Path) -> Result<PathBuf, String> {
    let name = device
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let dir = format!("/sys/class/scsi_generic/{name}/device/block");
    let first = std::fs::read_dir(&dir)
        .ok()
        .and_then(|d| d.flatten().next())
        .map(|e| e.file_name());
    match first {
        Some(n) => Ok(Path::new("/dev").join(n)),
        None => Err(format!(
            "{} has no block device ({dir} is empty or missing): load the sd driver (modprobe sd_mod) \
             for fio's io_uring engine on /dev/sdX",
            device.display()
        )),
    }
}

/// The command line of one fio `io_uring` run on a block device: `commands`
/// transfers of `bs` bytes with `depth` in flight, `--direct=1` (the page
/// cache out of the way) and registered buffers, cycling over `span` bytes
/// from `offset`.
pub(crate) fn fio_uring_args(
    block_dev: &Path,
    dir: Dir,
    bs: usize,
    depth: usize,
    commands: u64,
    offset: u64,
    span: u64,
) -> Vec<String> {
    let job = FioJob {
        name: "sgmap-peer-uring",
        engine: "io_uring",
        file: block_dev,
        dir,
        bs,
        depth,
        commands,
        offset,
        span,
    };
    // Registered buffers, as sgmap's io_uring transport uses.
    job.args(&["--direct=1", "--fixedbufs=1"])
}

/// Runs fio's io_uring engine once on the block device of `device`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_fio_uring(
    program: &Path,
    device: &Path,
    dir: Dir,
    bs: usize,
    depth: usize,
    commands: u64,
    offset: u64,
    span: u64,
) -> Result<Sample, String> {
    let block_dev = block_device_of(device)?;
    let args = fio_uring_args(&block_dev, dir, bs, depth, commands, offset, span);
    fio_sample(program, &args, dir, |ios| ModeCounts {
        direct: ios,
        ..ModeCounts::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sg_read_command_lines_match_the_transfer() {
        let a = sg_read_args(Path::new("/dev/sg0"), Way::Mmap, 512, 65536, 100, 8);
        assert_eq!(
            a,
            [
                "if=/dev/sg0",
                "bs=512",
                "bpt=128",
                "count=12800",
                "skip=8",
                "time=1",
                "mmap=1"
            ]
        );
        let d = sg_read_args(Path::new("/dev/sg1"), Way::Direct, 4096, 4096, 3, 0);
        assert!(d.contains(&"dio=1".to_string()) && d.contains(&"count=3".to_string()));
        let i = sg_read_args(Path::new("/dev/sg1"), Way::Indirect, 512, 4096, 3, 0);
        assert!(!i
            .iter()
            .any(|x| x.starts_with("dio") || x.starts_with("mmap")));
    }

    #[test]
    fn sg_read_output_parses() {
        let text = "Time for all SCSI READ commands was 0.250000 secs, 262.14 MB/sec\n\
                    Average number of SCSI READ commands per second was 4000.00\n\
                    128000+0 records in, SCSI READ commands issued: 1000\n";
        let o = parse_sg_read(text).unwrap();
        assert_eq!((o.secs, o.commands, o.dio_incomplete), (0.25, 1000, 0));
        let dio = format!("{text}>> Direct IO requested but incomplete 7 times\n");
        assert_eq!(parse_sg_read(&dio).unwrap().dio_incomplete, 7);
        assert!(parse_sg_read("sg_read: SCSI READ failed")
            .unwrap_err()
            .contains("SCSI READ failed"));
    }

    #[test]
    fn sg_dd_writes_zeros_in_the_mode_asked() {
        let dd = Path::new("/usr/bin/sg_dd");
        let (p, a) = sg_dd_args(dd, Path::new("/dev/sg0"), Way::Direct, 512, 65536, 10, 8);
        assert_eq!(p, dd);
        assert_eq!(
            a,
            [
                "iflag=00",
                "of=/dev/sg0",
                "bs=512",
                "bpt=128",
                "count=1280",
                "seek=8",
                "time=1",
                "dio=1"
            ]
        );
        let (p, a) = sg_dd_args(dd, Path::new("/dev/sg0"), Way::Mmap, 512, 4096, 1, 0);
        assert_eq!(p, Path::new("/usr/bin/sgm_dd"));
        assert_eq!(a[0], "if=/dev/zero");
        assert!(!a
            .iter()
            .any(|x| x.starts_with("dio") || x.starts_with("iflag")));
        let (_, a) = sg_dd_args(dd, Path::new("/dev/sg0"), Way::Indirect, 4096, 4096, 3, 0);
        assert!(a.contains(&"count=3".to_string()) && !a.contains(&"dio=1".to_string()));
        assert_eq!("sgm_dd".parse::<Peer>(), Ok(Peer::SgDd));
    }

    #[test]
    fn sg_dd_output_parses() {
        let text = "time to transfer data: 0.004281 secs at 1530.86 MB/sec\n\
                    12800+0 records in\n12800+0 records out\n";
        let o = parse_sg_dd(text).unwrap();
        assert_eq!(
            (o.secs, o.blocks_out, o.dio_incomplete),
            (0.004281, 12800, 0)
        );
        let dio = format!("{text}>> Direct IO requested but incomplete 10 times\n");
        assert_eq!(parse_sg_dd(&dio).unwrap().dio_incomplete, 10);
        assert!(parse_sg_dd("sg_dd: could not open /dev/sg9")
            .unwrap_err()
            .contains("could not open"));
    }

    #[test]
    fn fio_queues_only_with_direct_and_sync_off() {
        let a = fio_args(Path::new("/dev/sg0"), Dir::Read, 65536, 16, 100, 0, 65536);
        for want in [
            "--ioengine=sg",
            "--iodepth=16",
            "--direct=0",
            "--sync=0",
            "--rw=read",
            "--size=65536",
            "--io_size=6553600",
            "--output-format=json",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
    }

    #[test]
    fn fio_uring_runs_direct_on_the_block_device() {
        let a = fio_uring_args(Path::new("/dev/sda"), Dir::Read, 4096, 64, 10, 0, 4096);
        for want in [
            "--ioengine=io_uring",
            "--filename=/dev/sda",
            "--direct=1",
            "--iodepth=64",
            "--io_size=40960",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} missing from {a:?}");
        }
        assert_eq!("fio_uring".parse::<Peer>(), Ok(Peer::FioUring));
        assert_eq!(Peer::FioUring.name(), "fio");
    }

    #[test]
    fn fio_json_parses() {
        let text = r#"note: both iodepth >= 1 and synchronous I/O engine are selected
{"fio version":"fio-3.33","jobs":[{"jobname":"sgmap-peer","error":0,
 "read":{"io_bytes":6553600,"total_ios":100,"runtime":25,"iops":4000.0},
 "write":{"io_bytes":0,"total_ios":0,"runtime":0},
 "usr_cpu":10.0,"sys_cpu":30.5}]}"#;
        let o = parse_fio(text, Dir::Read).unwrap();
        assert_eq!((o.ios, o.bytes, o.runtime_ms), (100, 6553600, 25));
        assert!((o.cpu_percent - 40.5).abs() < 1e-9);
        assert!(parse_fio(text, Dir::Write)
            .unwrap_err()
            .contains("0 write IOs"));
        assert!(parse_fio(r#"{"jobs":[{"error":5}]}"#, Dir::Read)
            .unwrap_err()
            .contains("error 5"));
        assert!(parse_fio("fio: engine sg not loadable", Dir::Read).is_err());
    }
}
