//! The tidy checks: rules about the source tree that the compiler does not
//! enforce, in the manner of rust-analyzer's `xtask/src/tidy.rs`. They run as
//! host tests (`cargo test -p xtask`, part of `cargo xtask test`).
//!
//! - `unsafe` appears only in the files that call the kernel, own raw
//!   memory or are the C ABI, and `libc::` only in those that need the C
//!   library's names; everything else goes through them.
//! - Every workspace member inherits the workspace lints, and those keep
//!   `missing_docs` and `clippy::undocumented_unsafe_blocks` on, so an
//!   undocumented public item or an `unsafe` block without a `// SAFETY:`
//!   line fails clippy and rustdoc in CI.

use std::path::{Path, PathBuf};

/// Folders whose `.rs` files the rules cover (tests, examples and the fuzz
/// targets are exercised code, not the library's structure).
const SOURCE_ROOTS: &[&str] = &[
    "crates/sys/src",
    "crates/core/src",
    "crates/capi/src",
    "crates/cli/src",
    "crates/testkit/src",
    "benches/src",
    "xtask/src",
];

/// Where `unsafe` may appear, and why.
const UNSAFE_ALLOWED: &[(&str, &str)] = &[
    (
        "crates/sys/src/",
        "the raw kernel interface: ioctls and struct layouts",
    ),
    ("crates/capi/src/", "the C ABI: raw pointers from C callers"),
    ("crates/core/src/io.rs", "every call into the sg driver"),
    (
        "crates/core/src/uring.rs",
        "io_uring submissions and registered buffers (the io-uring crate's raw API)",
    ),
    ("crates/core/src/buffer.rs", "the page-aligned allocator"),
    (
        "crates/core/src/mmap.rs",
        "slices over the mapped reserved buffer; the one SG_IO of mmap IO",
    ),
    (
        "crates/core/src/device.rs",
        "hands a borrowed caller buffer to io's SG_IO",
    ),
    (
        "crates/core/src/queue.rs",
        "hands the buffers it owns to io's write()/read() of a header",
    ),
    (
        "crates/core/src/pool.rs",
        "hands the mapped buffers it owns to io's write()/read() of a header",
    ),
    (
        "benches/src/bare.rs",
        "the bare io_uring floor: raw by design, no sgmap types",
    ),
];

/// Where `libc::` may appear, and why.
const LIBC_ALLOWED: &[(&str, &str)] = &[
    ("crates/sys/src/", "the raw kernel interface"),
    ("crates/capi/src/", "C types and the C allocator at the ABI"),
    (
        "crates/core/src/io.rs",
        "write()/read() of a header, pthread_atfork",
    ),
    (
        "crates/core/src/uring.rs",
        "the io-uring crate takes C iovecs",
    ),
    ("benches/src/bare.rs", "the bare io_uring floor"),
];

/// Lints every workspace member must inherit.
const REQUIRED_LINTS: &[(&str, &str)] = &[
    ("[workspace.lints.rust]", "missing_docs"),
    ("[workspace.lints.clippy]", "undocumented_unsafe_blocks"),
    ("[workspace.lints.rust]", "unsafe_op_in_unsafe_fn"),
];

/// Every `.rs` file under the source roots, as paths relative to `ws`.
fn sources(ws: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    for root in SOURCE_ROOTS {
        walk(&ws.join(root), &mut out);
    }
    out.sort();
    out.into_iter()
        .filter_map(|p| p.strip_prefix(ws).ok().map(Path::to_path_buf))
        .collect()
}

/// The code of `text` without comments: line comments (doc comments too)
/// are cut, so a word in prose is not code.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| {
        let code = match l.find("//") {
            Some(at) => &l[..at],
            None => l,
        };
        (i + 1, code)
    })
}

/// Whether `code` uses the keyword `word` (not as part of a longer name).
fn has_word(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// The lines of `path` (relative) that break the `needle` rule given its
/// allow-list.
fn violations(
    rel: &Path,
    text: &str,
    allowed: &[(&str, &str)],
    hit: impl Fn(&str) -> bool,
) -> Vec<String> {
    let name = rel.to_string_lossy();
    if allowed.iter().any(|(p, _)| name.starts_with(p)) {
        return Vec::new();
    }
    code_lines(text)
        .filter(|(_, code)| hit(code))
        .map(|(n, code)| format!("{name}:{n}: {}", code.trim()))
        .collect()
}

/// Runs every rule over the tree at `ws`; the broken ones, one line each.
pub(crate) fn check(ws: &Path) -> Vec<String> {
    let mut broken = Vec::new();
    let keyword = ["un", "safe"].concat();
    let libc_path = ["lib", "c::"].concat();
    for rel in sources(ws) {
        let Ok(text) = std::fs::read_to_string(ws.join(&rel)) else {
            broken.push(format!("{}: cannot be read", rel.display()));
            continue;
        };
        for v in violations(&rel, &text, UNSAFE_ALLOWED, |c| has_word(c, &keyword)) {
            broken.push(format!("{keyword} outside the files that may use it: {v}"));
        }
        for v in violations(&rel, &text, LIBC_ALLOWED, |c| c.contains(&libc_path)) {
            broken.push(format!(
                "{libc_path} outside the files that may use it: {v}"
            ));
        }
    }
    let manifest = std::fs::read_to_string(ws.join("Cargo.toml")).unwrap_or_default();
    for (table, lint) in REQUIRED_LINTS {
        let section = manifest
            .split_once(table)
            .map(|(_, rest)| rest.split("\n[").next().unwrap_or(""))
            .unwrap_or("");
        if !section.lines().any(|l| l.trim_start().starts_with(lint)) {
            broken.push(format!("Cargo.toml: {table} no longer sets {lint}"));
        }
    }
    for member in members(&manifest) {
        let path = ws.join(&member).join("Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let inherits = text
            .split_once("[lints]")
            .is_some_and(|(_, rest)| rest.trim_start().starts_with("workspace = true"));
        if !inherits {
            broken.push(format!(
                "{member}/Cargo.toml: does not inherit the workspace lints ([lints] workspace = true)"
            ));
        }
    }
    broken
}

/// `cargo xtask tidy`: every rule, each broken one on a line.
pub(crate) fn tidy(ws: &Path) -> crate::Result<()> {
    let broken = check(ws);
    if broken.is_empty() {
        eprintln!("xtask: tidy: {} files follow every rule", sources(ws).len());
        Ok(())
    } else {
        Err(format!(
            "tidy: {} rule(s) broken:\n{}",
            broken.len(),
            broken.join("\n")
        )
        .into())
    }
}

/// The workspace's members, from its manifest.
fn members(manifest: &str) -> Vec<String> {
    let Some((_, rest)) = manifest.split_once("members = [") else {
        return Vec::new();
    };
    let list = rest.split(']').next().unwrap_or("");
    list.split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_is_tidy() {
        let ws = crate::workspace_root();
        assert!(sources(&ws).len() > 40, "the tidy walk found too few files");
        let broken = check(&ws);
        assert!(broken.is_empty(), "tidy:\n{}", broken.join("\n"));
    }

    #[test]
    fn the_rules_catch_what_they_name() {
        let kw = ["un", "safe"].concat();
        let text = format!(
            "fn f() {{\n    // {kw} in a comment is prose\n    let x = {kw} {{ g() }};\n}}\n"
        );
        let v = violations(
            Path::new("crates/cli/src/x.rs"),
            &text,
            UNSAFE_ALLOWED,
            |c| has_word(c, &kw),
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].starts_with("crates/cli/src/x.rs:3:"), "{v:?}");
        // Allowed files, and longer names, are not hits.
        assert!(violations(
            Path::new("crates/core/src/io.rs"),
            &text,
            UNSAFE_ALLOWED,
            |c| { has_word(c, &kw) }
        )
        .is_empty());
        assert!(!has_word(&format!("{kw}_op_in_{kw}_fn"), &kw));
        assert_eq!(
            members("members = [\n    \"crates/sys\",\n    \"xtask\",\n]\n"),
            ["crates/sys", "xtask"]
        );
    }
}
