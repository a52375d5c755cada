//! `cargo xtask headers`: the newest kernel's user-space headers (Debian
//! sid's `linux-libc-dev`), for the layout test of `struct bsg_uring_cmd`
//! (`crates/sys/tests/bsg_layout.rs`), which bookworm's `/usr/include` lacks.
//!
//! The package is fetched with the private apt list the test bed keeps for
//! sid (`target/testbed/cache/sid/apt`, made when the newest kernel is
//! fetched), so the machine's own apt sources are never changed, and unpacked
//! into `target/testbed/cache/sid/headers`, where the test looks first.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::testbed::{Kernel, Testbed};
use crate::{cmd_ok, Result};

/// The header the layout test needs, and the struct that must be in it.
const NEEDLE: (&str, &str) = ("usr/include/linux/bsg.h", "struct bsg_uring_cmd");

pub(crate) fn headers(ws: &Path) -> Result<()> {
    let dir = fetch(ws)?;
    println!("{}", dir.join("usr/include").display());
    Ok(())
}

/// Fetches and unpacks sid's `linux-libc-dev` once; returns the folder it
/// was unpacked into.
pub(crate) fn fetch(ws: &Path) -> Result<PathBuf> {
    let sid = ws.join("target/testbed/cache/sid");
    let dir = sid.join("headers");
    let has_it = || std::fs::read_to_string(dir.join(NEEDLE.0)).is_ok_and(|s| s.contains(NEEDLE.1));
    if has_it() {
        return Ok(dir);
    }
    // The newest kernel's test bed brings the private apt list for sid.
    Testbed::ensure(ws, Kernel::Newest)?;
    let apt = sid.join("apt");
    let sources = apt.join("sources.list");
    if !sources.exists() {
        return Err(format!(
            "no private apt list for sid at {} (the test bed makes it when it fetches the newest kernel)",
            sources.display()
        )
        .into());
    }
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs)?;
    let apt_get = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.arg("-q")
            .arg(format!("-oDir::Etc::sourcelist={}", sources.display()))
            .arg("-oDir::Etc::sourceparts=-")
            .arg(format!(
                "-oDir::State::Lists={}",
                apt.join("lists").display()
            ))
            .args(args)
            .current_dir(&debs)
            .stdout(Stdio::null());
        c
    };
    eprintln!(
        "xtask: fetching linux-libc-dev from Debian sid into {}",
        debs.display()
    );
    if !apt_get(&["download", "linux-libc-dev"])
        .status()
        .is_ok_and(|s| s.success())
    {
        cmd_ok(&mut apt_get(&["update"]))
            .map_err(|e| format!("apt-get update of the sid list failed: {e}"))?;
        cmd_ok(&mut apt_get(&["download", "linux-libc-dev"]))
            .map_err(|e| format!("apt-get could not download sid's linux-libc-dev: {e}"))?;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(&debs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("linux-libc-dev_") && n.ends_with(".deb"))
        })
        .collect();
    found.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
    let deb = found.last().ok_or_else(|| {
        format!(
            "apt-get left no linux-libc-dev package in {}",
            debs.display()
        )
    })?;
    eprintln!(
        "xtask: unpacking {}",
        deb.file_name().unwrap_or_default().to_string_lossy()
    );
    cmd_ok(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&dir))?;
    if !has_it() {
        return Err(format!(
            "{} has no {}: sid's linux-libc-dev predates Linux 7.1",
            dir.join(NEEDLE.0).display(),
            NEEDLE.1
        )
        .into());
    }
    Ok(dir)
}
