//! The real-kernel test bed: Debian's user-mode Linux running the real `sg`
//! driver over a `scsi_debug` disk, as an ordinary process.
//!
//! [`Testbed::ensure`] fetches and unpacks the packages into a cache under
//! `target/testbed/cache` once; [`Testbed::boot`] writes an init script that
//! mounts the basics, loads the modules, runs each [`Job`] of each [`Phase`] and
//! records its output and exit status in a host folder mounted through hostfs,
//! then powers off. Nothing a job does is hidden: a job without a recorded exit
//! status counts as failed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cmd_ok, Result};

/// A Linux kernel the test bed can boot: Debian's `user-mode-linux` of one
/// suite. Users run all three, so `cargo xtask test` boots each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// bookworm's 6.1, built for the host's own glibc.
    V6_1,
    /// trixie's 6.12.
    V6_12,
    /// sid's, the newest Debian ships (the only one with io_uring passthrough on bsg).
    Newest,
}

impl Kernel {
    /// Every kernel, oldest first.
    pub(crate) const ALL: [Kernel; 3] = [Kernel::V6_1, Kernel::V6_12, Kernel::Newest];

    /// The name `--kernel` takes.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
            Kernel::Newest => "newest",
        }
    }

    /// The Debian suite whose `user-mode-linux` this is.
    fn suite(self) -> &'static str {
        match self {
            Kernel::V6_1 => "bookworm",
            Kernel::V6_12 => "trixie",
            Kernel::Newest => "sid",
        }
    }

    /// Whether the binary needs its suite's glibc (newer than the host's).
    fn needs_own_glibc(self) -> bool {
        self != Kernel::V6_1
    }

    /// Whether the kernel saves guest FPU state in a fixed-size XSAVE buffer
    /// (see `xtask/uml/xstate_shim.c`); 7.x sizes it from the CPU.
    fn fixed_xsave(self) -> bool {
        self != Kernel::Newest
    }

    /// Parses a `--kernel` value: `6.1`, `6.12`, `newest` or `all`, or a
    /// comma-separated list of them.
    pub(crate) fn parse(value: &str) -> Result<Vec<Kernel>> {
        let mut out = Vec::new();
        for part in value.split(',').map(str::trim) {
            let add: &[Kernel] = match part {
                "all" => &Kernel::ALL,
                "6.1" | "bookworm" => &[Kernel::V6_1],
                "6.12" | "trixie" => &[Kernel::V6_12],
                "newest" | "sid" => &[Kernel::Newest],
                other => {
                    return Err(format!(
                        "unknown kernel `{other}`: use 6.1, 6.12, newest or all (or a comma-separated list)"
                    )
                    .into())
                }
            };
            for k in add {
                if !out.contains(k) {
                    out.push(*k);
                }
            }
        }
        Ok(out)
    }
}

/// Module parameters of the default scsi_debug disk.
pub(crate) const DEFAULT_SCSI_DEBUG: &str = "dev_size_mb=256 delay=0";

/// An unpacked test bed.
#[derive(Debug)]
pub(crate) struct Testbed {
    which: Kernel,
    /// The kernel release, from its modules folder (e.g. `6.1.176`).
    version: String,
    kernel: PathBuf,
    modules: PathBuf,
    busybox: PathBuf,
    runs: PathBuf,
    /// Preloaded into the kernel process: see `xtask/uml/xstate_shim.c`.
    xstate_shim: PathBuf,
}

/// Seconds past a job's own limit before the host treats it as stuck in the
/// kernel and kills the boot (the guest's `timeout` acts first).
const JOB_GRACE_S: u64 = 30;

/// Starts the line added to the output of a job that was stuck in the kernel.
pub(crate) const HUNG_MARK: &str = "xtask: HUNG";

/// A program to run inside the guest.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// Name shown in reports.
    pub name: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment (the device variables are always set).
    pub env: Vec<(String, String)>,
    /// Seconds before the guest kills the job.
    pub timeout_s: u32,
}

/// A configuration of the scsi_debug disk and the jobs to run against it.
#[derive(Debug, Clone)]
pub(crate) struct Phase {
    /// Name shown in reports and passed to jobs as `SGMAP_TEST_PHASE`.
    pub name: String,
    /// `scsi_debug` module parameters for this phase.
    pub scsi_debug: String,
    /// The sg driver's `allow_dio`.
    pub allow_dio: bool,
    /// What to run.
    pub jobs: Vec<Job>,
}

/// What one job did.
#[derive(Debug)]
pub(crate) struct JobResult {
    /// Phase name.
    pub phase: String,
    /// Job name.
    pub name: String,
    /// Exit status, or `None` when the guest recorded none (killed, kernel died).
    pub status: Option<i32>,
    /// Combined stdout and stderr.
    pub output: String,
}

/// What one boot did.
#[derive(Debug)]
pub(crate) struct BootReport {
    /// Per-job results, in order.
    pub jobs: Vec<JobResult>,
    /// From starting the kernel to its exit.
    pub elapsed: Duration,
    /// Seconds from kernel start to the first job (read from the guest's clock).
    pub boot_s: Option<f64>,
    /// The kernel console, for diagnosing a boot that went wrong.
    pub console: String,
    /// The host folder the guest saw as `/run/out`: files jobs wrote there
    /// (reports, plots) are here after the boot.
    pub out_dir: PathBuf,
}

impl Testbed {
    /// Finds the test bed for `which` kernel in the cache, fetching and
    /// unpacking it when missing.
    pub(crate) fn ensure(workspace: &Path, which: Kernel) -> Result<Self> {
        if workspace.starts_with("/run")
            || workspace.starts_with("/proc")
            || workspace.starts_with("/sys")
        {
            return Err(format!(
                "the workspace {} is under /run, /proc or /sys, which the test bed mounts over; \
                 move it elsewhere",
                workspace.display()
            )
            .into());
        }
        let base = workspace.join("target").join("testbed");
        let cache = base.join("cache");
        let dir = cache.join(which.suite());
        let root = dir.join("root");
        let kernel = root.join("usr/bin/linux.uml");
        // bookworm's package puts it in /bin, later ones in /usr/bin.
        let find_busybox = || {
            ["bin/busybox", "usr/bin/busybox"]
                .iter()
                .map(|p| root.join(p))
                .find(|p| p.is_file())
        };
        let libc = root.join("usr/lib64/ld-linux-x86-64.so.2");
        if !kernel.exists()
            || find_busybox().is_none()
            || (which.needs_own_glibc() && !libc.exists())
        {
            let mut packages = vec!["user-mode-linux", "busybox-static"];
            if which.needs_own_glibc() {
                packages.push("libc6");
            }
            fetch_suite(&dir, which.suite(), &packages).map_err(|e| {
                format!(
                    "cannot fetch the {} kernel (Debian {}'s user-mode-linux): {e}\n\
                     To run on the other kernels only, pass --kernel with them (e.g. --kernel 6.1).",
                    which.name(),
                    which.suite()
                )
            })?;
        }
        let busybox = find_busybox()
            .ok_or_else(|| format!("no busybox in {} after unpacking", root.display()))?;
        if which.needs_own_glibc() {
            use_own_glibc(&kernel, &root)?;
        }
        let modules = find_modules(&root)?;
        let version = modules
            .ancestors()
            .nth(3)
            .and_then(|p| p.file_name())
            .map_or_else(|| "?".into(), |n| n.to_string_lossy().into_owned());
        let xstate_shim = build_xstate_shim(&cache)?;
        Ok(Self {
            which,
            version,
            kernel,
            modules,
            busybox,
            runs: base.join("runs"),
            xstate_shim,
        })
    }

    /// The kernel release this test bed boots, e.g. `6.12.113`.
    /// The path of a SCSI driver module of this kernel (e.g. `sd_mod.ko`),
    /// as the guest sees it.
    pub(crate) fn scsi_module(&self, file: &str) -> PathBuf {
        self.modules.join(file)
    }

    /// The guest's busybox (its `insmod`, `sh`...), as the guest sees it.
    pub(crate) fn busybox(&self) -> &Path {
        &self.busybox
    }

    /// Whether this kernel has SCSI passthrough through io_uring on bsg (7.1+).
    pub(crate) fn has_uring_passthrough(&self) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (7, 1)
    }

    pub(crate) fn version(&self) -> &str {
        &self.version
    }

    /// Boots the kernel once and runs every phase's jobs in order.
    pub(crate) fn boot(&self, phases: &[Phase], timeout: Duration) -> Result<BootReport> {
        std::fs::create_dir_all(&self.runs)?;
        let run = tempdir_in(&self.runs)?;
        let out = run.join("out");
        std::fs::create_dir_all(&out)?;
        let init = run.join("init.sh");
        std::fs::write(&init, self.init_script(phases, &out))?;
        make_executable(&init)?;
        let console_path = run.join("console.log");
        let console = std::fs::File::create(&console_path)?;
        let started = Instant::now();
        let mut child = {
            use std::os::unix::process::CommandExt as _;
            let mut cmd = Command::new(&self.kernel);
            if self.which.fixed_xsave() {
                cmd.env("LD_PRELOAD", &self.xstate_shim);
            }
            cmd.args([
                "mem=1024M",
                "rootfstype=hostfs",
                "rootflags=/",
                "ro",
                &format!("init={}", init.display()),
                "con=null",
                "con0=fd:0,fd:1",
                "quiet",
            ])
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console)
            // The kernel forks helper processes: give them a group to kill together.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.kernel.display()))?
        };
        // The guest's `timeout` ends a job that overruns, unless the job is
        // stuck in the kernel where no signal reaches it: then only killing
        // the whole boot ends it, and it should not wait for the boot's limit.
        let limits: Vec<Duration> = phases
            .iter()
            .flat_map(|p| &p.jobs)
            .map(|j| Duration::from_secs(u64::from(j.timeout_s) + JOB_GRACE_S))
            .collect();
        let mut current = 0;
        let mut current_since = Instant::now();
        let mut hung = None;
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            while current < limits.len() && out.join(format!("{current}.rc")).exists() {
                current += 1;
                current_since = Instant::now();
            }
            let stuck = current < limits.len() && current_since.elapsed() > limits[current];
            if stuck || started.elapsed() > timeout {
                if stuck {
                    hung = Some(current);
                }
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let elapsed = started.elapsed();
        let console = std::fs::read_to_string(&console_path).unwrap_or_default();
        match (status, hung) {
            (Some(_), _) => {}
            (None, Some(i)) => eprintln!(
                "xtask: job {} outlived its time limit ({:?}) and no signal ended it: \
                 it is stuck in the kernel; killed the test bed",
                i + 1,
                limits[i]
            ),
            (None, None) => {
                eprintln!("xtask: the test bed did not power off within {timeout:?}; killed it")
            }
        }
        let mut jobs = Vec::new();
        let mut index = 0;
        for phase in phases {
            for job in &phase.jobs {
                let mut log =
                    std::fs::read_to_string(out.join(format!("{index}.log"))).unwrap_or_default();
                if hung == Some(index) {
                    let _ = write!(
                        log,
                        "\n{HUNG_MARK} {}: no signal ended it after its {} s limit \
                         (stuck in the kernel); the test bed was killed and the jobs after it did not run\n",
                        job.name, job.timeout_s
                    );
                }
                let status = std::fs::read_to_string(out.join(format!("{index}.rc")))
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                jobs.push(JobResult {
                    phase: phase.name.clone(),
                    name: job.name.clone(),
                    status,
                    output: log,
                });
                index += 1;
            }
        }
        let setup = std::fs::read_to_string(out.join("setup.log")).unwrap_or_default();
        let boot_s = std::fs::read_to_string(out.join("uptime"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        if hung.is_none() && jobs.iter().all(|j| j.status.is_none()) {
            return Err(format!(
                "the {} kernel ({}) ran no job: it did not boot or its init failed. Guest setup log:\n{setup}\nKernel console:\n{console}\n(run folder: {})\n\
                 To run on the other kernels only, pass --kernel with them (e.g. --kernel 6.1).",
                self.which.name(),
                self.version,
                run.display()
            )
            .into());
        }
        if !setup.trim().is_empty() {
            eprintln!("test bed setup:\n{setup}");
        }
        Ok(BootReport {
            jobs,
            elapsed,
            boot_s,
            console,
            out_dir: out,
        })
    }

    fn init_script(&self, phases: &[Phase], out: &Path) -> String {
        let bb = self.busybox.display();
        let m = self.modules.display();
        let mut s = format!(
            r#"#!{bb} sh
# Generated by `cargo xtask`: init of the sgmap test bed.
B={bb}
M={m}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/run/tmp
{tunables}$B mount -t proc proc /proc
$B mount -t sysfs sys /sys
# Scratch space lives under /run only: the host root is read-only here, and a
# tmpfs over /tmp or /mnt would hide a workspace or cache kept there.
$B mount -t tmpfs tmpfs /run
$B mkdir -p /run/out /run/tmp
export TMPDIR=/run/tmp
$B mount -t hostfs -o {out} none /run/out
O=/run/out
$B cat /proc/uptime > $O/uptime
exec 2>>$O/setup.log
$B insmod $M/scsi_common.ko || echo "insmod scsi_common failed" >&2
$B insmod $M/scsi_mod.ko || echo "insmod scsi_mod failed" >&2
sgdev() {{
  for d in /sys/class/scsi_generic/*; do
    if $B grep -q scsi_debug $d/device/model 2>/dev/null; then echo /dev/${{d##*/}}; return 0; fi
  done
  return 1
}}
"#,
            out = out.display(),
            tunables = if self.which.fixed_xsave() {
                "# The kernel keeps only the start of each guest thread's XSAVE area on hosts\n\
                 # with a larger one (see xtask/uml/xstate_shim.c): keep glibc off AVX-512.\n\
                 export GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD\n"
            } else {
                ""
            }
        );
        let mut index = 0;
        for (pi, phase) in phases.iter().enumerate() {
            // Each phase loads scsi_debug afresh with its own parameters.
            if pi > 0 {
                s += "$B rmmod sg || echo \"rmmod sg failed\" >&2\n";
                s += "$B rmmod scsi_debug || echo \"rmmod scsi_debug failed\" >&2\n";
            }
            let _ = writeln!(s, "# phase {}", phase.name);
            let _ = writeln!(
                s,
                "$B insmod $M/scsi_debug.ko {} || echo \"insmod scsi_debug {} failed\" >&2",
                phase.scsi_debug, phase.scsi_debug
            );
            let _ = writeln!(
                s,
                "$B insmod $M/sg.ko allow_dio={} || echo \"insmod sg failed\" >&2",
                u8::from(phase.allow_dio)
            );
            s += "DEV=$(sgdev) || echo \"no scsi_debug sg node appeared\" >&2\n";
            for job in &phase.jobs {
                let mut line = format!(
                    "SGMAP_TEST_DEVICE=$DEV SGMAP_TEST_SCSI_DEBUG=1 SGMAP_TEST_PHASE={} ",
                    sh_quote(&phase.name)
                );
                for (k, v) in &job.env {
                    let _ = write!(line, "{k}={} ", sh_quote(v));
                }
                let _ = write!(line, "$B timeout {} ", job.timeout_s);
                for a in &job.argv {
                    line += &sh_quote(a);
                    line.push(' ');
                }
                let _ = writeln!(
                    s,
                    "( cd /run/tmp && {line}) >$O/{index}.log 2>&1 </dev/null; echo $? >$O/{index}.rc"
                );
                index += 1;
            }
        }
        s += "$B sync\n$B poweroff -f\n";
        s
    }
}

/// Quotes `s` for a POSIX shell.
pub(crate) fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,+".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Downloads `packages` of Debian `suite` into `dir/debs` and unpacks them
/// into `dir/root`. A private apt list under `dir/apt` names the suite, so the
/// machine's own apt sources are never changed.
fn fetch_suite(dir: &Path, suite: &str, packages: &[&str]) -> Result<()> {
    let debs = dir.join("debs");
    let apt = dir.join("apt");
    let lists = apt.join("lists");
    std::fs::create_dir_all(lists.join("partial"))?;
    std::fs::create_dir_all(&debs)?;
    let (uri, keyring) = debian_mirror();
    let signed = keyring.map_or(String::new(), |k| format!("[signed-by={k}] "));
    let sources = apt.join("sources.list");
    std::fs::write(&sources, format!("deb {signed}{uri} {suite} main\n"))?;
    let apt_get = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.arg("-q")
            .arg(format!("-oDir::Etc::sourcelist={}", sources.display()))
            .arg("-oDir::Etc::sourceparts=-")
            .arg(format!("-oDir::State::Lists={}", lists.display()))
            .args(args)
            .current_dir(&debs)
            .stdout(Stdio::null());
        c
    };
    eprintln!(
        "xtask: fetching {} from Debian {suite} ({uri}) into {}",
        packages.join(", "),
        debs.display()
    );
    let mut download = apt_get(&["download"]);
    download.args(packages);
    let fetched = download.status().is_ok_and(|s| s.success());
    if !fetched {
        cmd_ok(&mut apt_get(&["update"]))
            .map_err(|e| format!("apt-get update of the {suite} list failed: {e}"))?;
        let mut again = apt_get(&["download"]);
        again.args(packages);
        cmd_ok(&mut again).map_err(|e| {
            format!(
                "apt-get could not download {} from {suite}: {e}",
                packages.join(", ")
            )
        })?;
    }
    let root = dir.join("root");
    for p in packages {
        // The newest file of each package, should the folder hold several.
        let mut found: Vec<PathBuf> = std::fs::read_dir(&debs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|path| {
                path.extension().is_some_and(|e| e == "deb")
                    && path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{p}_")))
            })
            .collect();
        found.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
        let deb = found
            .last()
            .ok_or_else(|| format!("apt-get left no {p} package in {}", debs.display()))?;
        eprintln!(
            "xtask: unpacking {}",
            deb.file_name().unwrap_or_default().to_string_lossy()
        );
        cmd_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
    }
    Ok(())
}

/// The Debian mirror and keyring the machine's own apt sources use, so the
/// private lists reach the same archive.
fn debian_mirror() -> (String, Option<String>) {
    let mut uri = None;
    let mut keyring = None;
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in dir.filter_map(|e| e.ok()) {
            if e.path()
                .extension()
                .is_some_and(|x| x == "sources" || x == "list")
            {
                texts.push(std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    for text in &texts {
        for line in text.lines().map(str::trim) {
            if let Some(u) = line.strip_prefix("URIs:") {
                let u = u.trim();
                if uri.is_none() && u.ends_with("/debian") {
                    uri = Some(u.to_string());
                }
            } else if let Some(k) = line.strip_prefix("Signed-By:") {
                if keyring.is_none() && Path::new(k.trim()).exists() {
                    keyring = Some(k.trim().to_string());
                }
            } else if let Some(rest) = line.strip_prefix("deb ") {
                let u = rest
                    .split_whitespace()
                    .find(|w| w.contains("://"))
                    .unwrap_or_default();
                if uri.is_none() && u.ends_with("/debian") {
                    uri = Some(u.to_string());
                }
            }
        }
    }
    let keyring = keyring.or_else(|| {
        let k = "/usr/share/keyrings/debian-archive-keyring.gpg";
        Path::new(k).exists().then(|| k.to_string())
    });
    (
        uri.unwrap_or_else(|| "http://deb.debian.org/debian".into()),
        keyring,
    )
}

/// Points a kernel binary built for a newer glibc at the one unpacked beside
/// it. Running it through that `ld.so` instead does not work: UML sizes its
/// physical memory from where brk lies and refuses to start.
fn use_own_glibc(kernel: &Path, root: &Path) -> Result<()> {
    let interp = root.join("usr/lib64/ld-linux-x86-64.so.2");
    let rpath = root.join("usr/lib/x86_64-linux-gnu");
    let current = Command::new("patchelf")
        .arg("--print-interpreter")
        .arg(kernel)
        .output();
    let current = match current {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Err(_) => {
            eprintln!("xtask: installing patchelf (Debian package) to run newer kernels");
            cmd_ok(Command::new("apt-get").args(["install", "-y", "-qq", "patchelf"])).or_else(
                |_| {
                    cmd_ok(Command::new("apt-get").args(["update", "-qq"]))?;
                    cmd_ok(Command::new("apt-get").args(["install", "-y", "-qq", "patchelf"]))
                },
            )?;
            String::new()
        }
    };
    if Path::new(&current) == interp {
        return Ok(());
    }
    cmd_ok(
        Command::new("patchelf")
            .arg("--set-interpreter")
            .arg(&interp)
            .arg("--set-rpath")
            .arg(&rpath)
            .arg(kernel),
    )
}

/// Compiles the ptrace shim that lets a kernel with a fixed-size XSAVE buffer
/// run on a host whose XSAVE area is larger (AVX-512, AMX), into the cache.
fn build_xstate_shim(cache: &Path) -> Result<PathBuf> {
    const SOURCE: &str = include_str!("../uml/xstate_shim.c");
    let src = cache.join("xstate_shim.c");
    let lib = cache.join("xstate_shim.so");
    if lib.exists() && std::fs::read_to_string(&src).is_ok_and(|s| s == SOURCE) {
        return Ok(lib);
    }
    std::fs::create_dir_all(cache)?;
    std::fs::write(&src, SOURCE)?;
    cmd_ok(
        Command::new("cc")
            .args(["-O2", "-shared", "-fPIC", "-Wall", "-Werror", "-o"])
            .arg(&lib)
            .arg(&src)
            .arg("-ldl"),
    )
    .map_err(|e| format!("cannot build the test bed's ptrace shim with cc: {e}"))?;
    Ok(lib)
}

fn find_modules(root: &Path) -> Result<PathBuf> {
    let base = root.join("usr/lib/uml/modules");
    let version = std::fs::read_dir(&base)
        .map_err(|e| format!("no modules in {}: {e}", base.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("kernel/drivers/scsi/sg.ko").exists())
        .ok_or_else(|| format!("no sg.ko under {}", base.display()))?;
    Ok(version.join("kernel/drivers/scsi"))
}

fn tempdir_in(base: &Path) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = base.join(format!("{}-{stamp}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}
