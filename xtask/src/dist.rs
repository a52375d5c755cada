//! `cargo xtask dist [--prefix DIR] [--debug]`: the C library ready to link.
//!
//! Lays out, under a prefix (default `target/dist`):
//! - `lib/libsgmap.so.X.Y.Z` with its SONAME link and the `libsgmap.so`
//!   development link,
//! - `lib/libsgmap.a`,
//! - `include/sgmap.h`,
//! - `lib/pkgconfig/sgmap.pc`,
//!
//! so that a C project builds with `cc app.c $(pkg-config --cflags --libs sgmap)`
//! (or `pkg-config --static` for the static library) once `PKG_CONFIG_PATH`
//! includes `DIR/lib/pkgconfig`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::{cargo, codegen, Result};

/// What `install` laid out.
#[derive(Debug, Clone)]
pub(crate) struct Installed {
    /// The prefix, absolute.
    pub prefix: PathBuf,
    /// `prefix/lib`.
    pub libdir: PathBuf,
    /// `prefix/lib/libsgmap.a`.
    pub static_lib: PathBuf,
    /// `prefix/lib/pkgconfig`, for `PKG_CONFIG_PATH`.
    pub pkgconfig_dir: PathBuf,
    /// The SONAME the shared library carries.
    pub soname: String,
    /// The system libraries the static library needs.
    pub native_static_libs: String,
}

/// The library files cargo built, and the native libraries the static one needs.
#[derive(Debug)]
struct Built {
    shared: PathBuf,
    static_lib: PathBuf,
    native_static_libs: String,
    version: String,
}

/// Builds `sgmap-capi` and finds its artifacts in cargo's JSON messages.
fn build(ws: &Path, release: bool) -> Result<Built> {
    let mut cmd = cargo();
    cmd.args(["rustc", "--package", "sgmap-capi", "--lib"]);
    if release {
        cmd.arg("--release");
    }
    // The note listing the static library's native dependencies; cargo
    // replays it when the crate is already built. Plain JSON, so the note
    // arrives on stdout; other diagnostics are printed below.
    cmd.args([
        "--message-format=json",
        "--",
        "--print",
        "native-static-libs",
    ]);
    let out = cmd
        .current_dir(ws)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !out.status.success() {
        return Err("building sgmap-capi failed".into());
    }
    let mut shared = None;
    let mut static_lib = None;
    let mut native = None;
    let mut version = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let id = v["package_id"].as_str().unwrap_or_default();
        let ours = id.contains("sgmap-capi");
        match v["reason"].as_str() {
            Some("compiler-artifact") if ours => {
                if let Some(ver) = id.rsplit('@').next() {
                    version = Some(ver.to_string());
                }
                for f in v["filenames"].as_array().into_iter().flatten() {
                    let f = PathBuf::from(f.as_str().unwrap_or_default());
                    match f.file_name().and_then(|n| n.to_str()) {
                        // The lib is `sgmap_capi` (see crates/capi/Cargo.toml);
                        // it is installed as libsgmap.
                        Some("libsgmap_capi.so") => shared = Some(f.clone()),
                        Some("libsgmap_capi.a") => static_lib = Some(f.clone()),
                        _ => {}
                    }
                }
            }
            Some("compiler-message") => {
                let text = v["message"]["message"].as_str().unwrap_or_default();
                if let Some(libs) = text.strip_prefix("native-static-libs:").filter(|_| ours) {
                    native = Some(libs.trim().to_string());
                } else if !text.starts_with("link against the following native artifacts") {
                    eprint!("{}", v["message"]["rendered"].as_str().unwrap_or(text));
                }
            }
            _ => {}
        }
    }
    Ok(Built {
        shared: shared.ok_or("cargo built no libsgmap_capi.so")?,
        static_lib: static_lib.ok_or("cargo built no libsgmap_capi.a")?,
        native_static_libs: native
            .ok_or("rustc did not list the static library's native dependencies")?,
        version: version.ok_or("cannot tell sgmap-capi's version")?,
    })
}

/// The SONAME build.rs gives the library (0.x: `libsgmap.so.0.MINOR`).
fn soname(version: &str) -> String {
    let mut parts = version.split('.');
    let major = parts.next().unwrap_or("0");
    let minor = parts.next().unwrap_or("0");
    if major == "0" {
        format!("libsgmap.so.0.{minor}")
    } else {
        format!("libsgmap.so.{major}")
    }
}

fn pc_file(prefix: &Path, version: &str, native: &str) -> String {
    format!(
        "# pkg-config file for sgmap's C library, written by `cargo xtask dist`.\n\
         prefix={}\n\
         libdir=${{prefix}}/lib\n\
         includedir=${{prefix}}/include\n\
         \n\
         Name: sgmap\n\
         Description: Linux SCSI generic (sg) IO with mmap-ed reserved buffers, direct and indirect IO\n\
         Version: {version}\n\
         Cflags: -I${{includedir}}\n\
         Libs: -L${{libdir}} -lsgmap\n\
         Libs.private: {native}\n",
        prefix.display()
    )
}

/// Writes `bytes` to `dst` unless it already holds them (keeping its mtime,
/// so what was built from it is not rebuilt). Writes a temporary file and
/// renames it, so a running program that has the old file mapped keeps it.
fn write_if_changed(dst: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::read(dst).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    let name = dst
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} has no file name", dst.display()))?;
    let tmp = dst.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, dst).map_err(|e| format!("cannot write {}: {e}", dst.display()))?;
    Ok(())
}

fn copy_if_changed(src: &Path, dst: &Path) -> Result<()> {
    let bytes = std::fs::read(src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    write_if_changed(dst, &bytes)
}

fn replace_symlink(target: &str, link: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|t| t == Path::new(target)) {
        return Ok(());
    }
    match std::fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot replace {}: {e}", link.display()).into()),
    }
    std::os::unix::fs::symlink(target, link)
        .map_err(|e| format!("cannot link {} -> {target}: {e}", link.display()))?;
    Ok(())
}

/// Builds the library and lays it out under `prefix`.
pub(crate) fn install(ws: &Path, prefix: &Path, release: bool) -> Result<Installed> {
    let header = codegen::header_path(ws);
    if std::fs::read_to_string(&header).ok() != Some(codegen::generate(ws)?) {
        return Err(format!(
            "{} is stale: run `cargo xtask codegen` first, so the header matches the library",
            header.display()
        )
        .into());
    }
    let built = build(ws, release)?;
    std::fs::create_dir_all(prefix)?;
    let prefix = prefix.canonicalize()?;
    let libdir = prefix.join("lib");
    let includedir = prefix.join("include");
    let pkgconfig_dir = libdir.join("pkgconfig");
    for d in [&libdir, &includedir, &pkgconfig_dir] {
        std::fs::create_dir_all(d)?;
    }
    let real = format!("libsgmap.so.{}", built.version);
    let so = soname(&built.version);
    copy_if_changed(&built.shared, &libdir.join(&real))?;
    replace_symlink(&real, &libdir.join(&so))?;
    replace_symlink(&so, &libdir.join("libsgmap.so"))?;
    let static_lib = libdir.join("libsgmap.a");
    copy_if_changed(&built.static_lib, &static_lib)?;
    copy_if_changed(&header, &includedir.join("sgmap.h"))?;
    write_if_changed(
        &pkgconfig_dir.join("sgmap.pc"),
        pc_file(&prefix, &built.version, &built.native_static_libs).as_bytes(),
    )?;
    Ok(Installed {
        prefix,
        libdir,
        static_lib,
        pkgconfig_dir,
        soname: so,
        native_static_libs: built.native_static_libs,
    })
}

/// `cargo xtask dist [--prefix DIR] [--debug]`.
pub(crate) fn dist(ws: &Path, args: crate::cli::DistArgs) -> Result<()> {
    let (prefix, release) = (args.prefix, !args.debug);
    let prefix = prefix.unwrap_or_else(|| crate::target_dir(ws).join("dist"));
    let inst = install(ws, &prefix, release)?;
    println!("sgmap C library installed under {}", inst.prefix.display());
    println!(
        "  build with: PKG_CONFIG_PATH={} cc app.c $(pkg-config --cflags --libs sgmap)",
        inst.pkgconfig_dir.display()
    );
    println!(
        "  static:     cc app.c -I{} {} {}",
        inst.prefix.join("include").display(),
        inst.static_lib.display(),
        inst.native_static_libs
    );
    println!(
        "  run with:   LD_LIBRARY_PATH={} ./app   (or link with -Wl,-rpath,{})",
        inst.libdir.display(),
        inst.libdir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soname_follows_the_abi_rule() {
        assert_eq!(soname("0.1.0"), "libsgmap.so.0.1");
        assert_eq!(soname("0.12.3"), "libsgmap.so.0.12");
        assert_eq!(soname("2.3.4"), "libsgmap.so.2");
    }

    #[test]
    fn pc_file_names_the_prefix_and_the_native_libs() {
        let pc = pc_file(Path::new("/opt/sg"), "0.1.0", "-lgcc_s -lc");
        assert!(pc.contains("prefix=/opt/sg\n"));
        assert!(pc.contains("Version: 0.1.0\n"));
        assert!(pc.contains("Libs: -L${libdir} -lsgmap\n"));
        assert!(pc.contains("Libs.private: -lgcc_s -lc\n"));
    }
}
