//! The peers `cargo xtask compare` runs beside sgmap: sg3_utils' `sg_read`
//! and fio. The test bed boots the host's own root file system, so programs
//! installed on the host run inside the guest unchanged.

use std::path::PathBuf;
use std::process::Command;

use crate::Result;

/// A program and the Debian package that has it.
const PEERS: &[(&str, &str)] = &[("sg_read", "sg3-utils"), ("fio", "fio")];

/// Finds `program` in `PATH`.
pub(crate) fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .is_some_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt_install(packages: &[&str]) -> std::result::Result<(), String> {
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "apt-get install -y {} failed ({status})",
            packages.join(" ")
        ))
    }
}

/// Makes sure `sg_read` and fio are installed, installing the missing ones
/// with apt-get (running `apt-get update` first when the install fails, as on
/// a fresh machine with empty package lists). Says exactly what failed.
pub(crate) fn ensure() -> Result<()> {
    let missing: Vec<(&str, &str)> = PEERS
        .iter()
        .copied()
        .filter(|(program, _)| find(program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    let programs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    if !is_root() {
        return Err(format!(
            "the comparison needs {} (Debian packages {}); they are not installed and this is not \
             root, so they cannot be installed here: run `sudo apt-get install -y {}` and try again",
            programs.join(" and "),
            packages.join(", "),
            packages.join(" ")
        )
        .into());
    }
    eprintln!(
        "xtask: installing {} for the comparison",
        packages.join(" ")
    );
    if let Err(first) = apt_install(&packages) {
        eprintln!("xtask: {first}; running apt-get update and trying again");
        let update = Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .map_err(|e| format!("cannot run apt-get update: {e}"))?;
        if !update.success() {
            return Err(format!(
                "apt-get update failed ({update}); the comparison needs {}: install {} by hand",
                programs.join(" and "),
                packages.join(" ")
            )
            .into());
        }
        apt_install(&packages).map_err(|e| {
            format!(
                "{e}; the comparison needs {}: install {} by hand",
                programs.join(" and "),
                packages.join(" ")
            )
        })?;
    }
    let still: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| find(p).is_none())
        .collect();
    if !still.is_empty() {
        return Err(format!(
            "{} still not in PATH after installing {}",
            still.join(" and "),
            packages.join(" ")
        )
        .into());
    }
    Ok(())
}
