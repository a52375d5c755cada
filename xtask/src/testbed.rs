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

/// The Debian packages the test bed needs: the kernel and a static busybox for
/// `insmod`, `mount` and the init's shell.
const PACKAGES: &[&str] = &["user-mode-linux", "busybox-static"];

/// Module parameters of the default scsi_debug disk.
pub(crate) const DEFAULT_SCSI_DEBUG: &str = "dev_size_mb=256 delay=0";

/// An unpacked test bed.
#[derive(Debug)]
pub(crate) struct Testbed {
    kernel: PathBuf,
    modules: PathBuf,
    busybox: PathBuf,
    runs: PathBuf,
    /// Preloaded into the kernel process: see `xtask/uml/xstate_shim.c`.
    xstate_shim: PathBuf,
}

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

fn unpacked_root(cache: &Path) -> PathBuf {
    cache.join("root")
}

impl Testbed {
    /// Finds the test bed in the cache, fetching and unpacking it when missing.
    pub(crate) fn ensure(workspace: &Path) -> Result<Self> {
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
        let root = unpacked_root(&cache);
        let kernel = root.join("usr/bin/linux.uml");
        let busybox = root.join("bin/busybox");
        if !kernel.exists() || !busybox.exists() {
            fetch_debs(&cache, PACKAGES)?;
        }
        let modules = find_modules(&root)?;
        let xstate_shim = build_xstate_shim(&cache)?;
        Ok(Self {
            kernel,
            modules,
            busybox,
            runs: base.join("runs"),
            xstate_shim,
        })
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
            Command::new(&self.kernel)
                .args([
                    "mem=1024M",
                    "rootfstype=hostfs",
                    "rootflags=/",
                    "ro",
                    &format!("init={}", init.display()),
                    "con=null",
                    "con0=fd:0,fd:1",
                    "quiet",
                ])
                .env("LD_PRELOAD", &self.xstate_shim)
                .stdin(Stdio::null())
                .stdout(console.try_clone()?)
                .stderr(console)
                // The kernel forks helper processes: give them a group to kill together.
                .process_group(0)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", self.kernel.display()))?
        };
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break Some(s);
            }
            if started.elapsed() > timeout {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = started.elapsed();
        let console = std::fs::read_to_string(&console_path).unwrap_or_default();
        if status.is_none() {
            eprintln!("xtask: the test bed did not power off within {timeout:?}; killed it");
        }
        let mut jobs = Vec::new();
        let mut index = 0;
        for phase in phases {
            for job in &phase.jobs {
                let log =
                    std::fs::read_to_string(out.join(format!("{index}.log"))).unwrap_or_default();
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
        if jobs.iter().all(|j| j.status.is_none()) {
            return Err(format!(
                "the test bed ran no job. Guest setup log:\n{setup}\nKernel console:\n{console}\n(run folder: {})",
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
# The kernel keeps only the start of each guest thread's XSAVE area on hosts
# with a larger one (see xtask/uml/xstate_shim.c): keep glibc off AVX-512.
export GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX512CD
$B mount -t proc proc /proc
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
            out = out.display()
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

/// Downloads Debian packages with `apt-get download` and unpacks them into `cache/root`.
pub(crate) fn fetch_debs(cache: &Path, packages: &[&str]) -> Result<()> {
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs)?;
    eprintln!(
        "xtask: fetching {} into {}",
        packages.join(", "),
        debs.display()
    );
    let download = || {
        Command::new("apt-get")
            .arg("download")
            .args(packages)
            .current_dir(&debs)
            .stdout(Stdio::null())
            .status()
    };
    let ok = match download() {
        Ok(s) if s.success() => true,
        Ok(_) => {
            // A fresh machine may have empty package lists.
            eprintln!("xtask: apt-get download failed; running apt-get update and trying again");
            cmd_ok(Command::new("apt-get").args(["update", "-qq"]))?;
            download()?.success()
        }
        Err(e) => {
            return Err(format!(
                "cannot run apt-get ({e}). The test bed needs Debian's packages {}; \
                 download them by hand into {} and run again",
                packages.join(", "),
                debs.display()
            )
            .into())
        }
    };
    if !ok {
        return Err(format!(
            "apt-get could not download {}. The test bed needs Debian bookworm's packages; \
             check that apt can reach its archive (`apt-get update`)",
            packages.join(", ")
        )
        .into());
    }
    let root = unpacked_root(cache);
    for entry in std::fs::read_dir(&debs)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "deb")
            && packages.iter().any(|p| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{p}_")))
            })
        {
            cmd_ok(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&root))?;
        }
    }
    Ok(())
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
