//! `cargo xtask codegen [--check]`: generates the C header `include/sgmap.h`
//! from `crates/capi` with cbindgen (configured by `crates/capi/cbindgen.toml`),
//! adding the version macros from the crate's version.

use std::path::{Path, PathBuf};

use crate::{cargo, Result};

/// Where the checked-in header lives.
pub(crate) fn header_path(ws: &Path) -> PathBuf {
    ws.join("include").join("sgmap.h")
}

fn capi_dir(ws: &Path) -> PathBuf {
    ws.join("crates").join("capi")
}

/// The version of the `sgmap-capi` package, from `cargo metadata`.
fn capi_version(ws: &Path) -> Result<(u32, u32, u32)> {
    let out = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(ws)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let version = meta["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "sgmap-capi"))
        .and_then(|p| p["version"].as_str())
        .ok_or("cargo metadata lists no sgmap-capi package")?;
    let core = version.split(['-', '+']).next().unwrap_or(version);
    let mut parts = core.split('.').map(str::parse::<u32>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Ok((a, b, c)),
        _ => Err(format!("sgmap-capi has a version cargo should not accept: {version}").into()),
    }
}

fn version_macros((major, minor, patch): (u32, u32, u32)) -> String {
    format!(
        "\n/* The version of this header. Compare with sgmap_version_number() to\n \
         * catch a program built against one version and run with another. */\n\
         #define SGMAP_VERSION_MAJOR {major}\n\
         #define SGMAP_VERSION_MINOR {minor}\n\
         #define SGMAP_VERSION_PATCH {patch}\n\
         #define SGMAP_VERSION_STRING \"{major}.{minor}.{patch}\"\n\
         /* MAJOR * 1000000 + MINOR * 1000 + PATCH, as sgmap_version_number() returns. */\n\
         #define SGMAP_VERSION_NUMBER \\\n    \
         (SGMAP_VERSION_MAJOR * 1000000 + SGMAP_VERSION_MINOR * 1000 + SGMAP_VERSION_PATCH)\n\
         /* True when this header is version MAJOR.MINOR.PATCH or newer, for #if:\n \
         *   #if !SGMAP_CHECK_VERSION(0, 1, 0)\n \
         *   #error \"sgmap 0.1.0 or newer is needed\"\n \
         *   #endif */\n\
         #define SGMAP_CHECK_VERSION(major, minor, patch) \\\n    \
         (SGMAP_VERSION_NUMBER >= (major) * 1000000 + (minor) * 1000 + (patch))"
    )
}

/// Generates the header's text.
pub(crate) fn generate(ws: &Path) -> Result<String> {
    let dir = capi_dir(ws);
    let mut config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .map_err(|e| format!("crates/capi/cbindgen.toml: {e}"))?;
    config.after_includes = Some(version_macros(capi_version(ws)?));
    let bindings = cbindgen::Builder::new()
        .with_crate(&dir)
        .with_config(config)
        .generate()
        .map_err(|e| format!("cbindgen could not generate the header: {e}"))?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    Ok(String::from_utf8(out)?)
}

/// `cargo xtask codegen [--check]`.
pub(crate) fn codegen(ws: &Path, args: crate::cli::CodegenArgs) -> Result<()> {
    let check = args.check;
    let path = header_path(ws);
    let fresh = generate(ws)?;
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == fresh {
        eprintln!("xtask: {} is up to date", path.display());
        return Ok(());
    }
    if check {
        return Err(format!(
            "{} is stale: the C API in crates/capi changed; run `cargo xtask codegen` and commit the header",
            path.display()
        )
        .into());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, fresh)?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_in_header_is_fresh() {
        let ws = crate::workspace_root();
        let fresh = generate(&ws).expect("the header generates");
        let current = std::fs::read_to_string(header_path(&ws)).unwrap_or_default();
        assert!(
            current == fresh,
            "include/sgmap.h is stale: run `cargo xtask codegen` and commit the header"
        );
    }

    #[test]
    fn version_macros_agree_with_each_other() {
        let m = version_macros((1, 22, 333));
        assert!(m.contains("#define SGMAP_VERSION_MAJOR 1\n"));
        assert!(m.contains("#define SGMAP_VERSION_MINOR 22\n"));
        assert!(m.contains("#define SGMAP_VERSION_PATCH 333\n"));
        assert!(m.contains("#define SGMAP_VERSION_STRING \"1.22.333\"\n"));
    }
}
