//! `struct bsg_uring_cmd`, the BSG constants and the `res2` decoding checked
//! against a Linux 7.x `<linux/bsg.h>`.
//!
//! Debian bookworm's `/usr/include` predates the header's io_uring part, so
//! the header comes from sid's `linux-libc-dev`, fetched by
//! `cargo xtask headers` into `target/testbed/cache/sid/headers`, or from the
//! include folder named by `SGMAP_LINUX_HEADERS`. Without either the test is
//! reported as ignored, with the reason printed; the offsets are also pinned
//! by the unit tests in `src/bsg.rs`, which always run.

use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use sgmap_sys::bsg::*;

/// Environment variable naming an include folder with a 7.x `linux/bsg.h`.
const HEADERS_ENV: &str = "SGMAP_LINUX_HEADERS";

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let found = headers();
    if let Err(why) = &found {
        eprintln!("note: bsg_uring_cmd layout test skipped: {why}");
    }
    let inc = found.clone().ok();
    let trial = libtest_mimic::Trial::test("bsg_uring_cmd_matches_linux_7x_bsg_h", move || {
        check(inc.as_deref().ok_or("no 7.x header")?)
    })
    .with_ignored_flag(found.is_err());
    libtest_mimic::run(&args, vec![trial]).exit_code()
}

/// The include folder to use, or why there is none.
fn headers() -> Result<PathBuf, String> {
    let has_it = |dir: &Path| {
        std::fs::read_to_string(dir.join("linux/bsg.h"))
            .is_ok_and(|s| s.contains("struct bsg_uring_cmd"))
    };
    if let Some(dir) = std::env::var_os(HEADERS_ENV) {
        let dir = PathBuf::from(dir);
        return if has_it(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "{HEADERS_ENV}={} has no linux/bsg.h with struct bsg_uring_cmd (Linux 7.1+)",
                dir.display()
            ))
        };
    }
    let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cached = ws.join("target/testbed/cache/sid/headers/usr/include");
    if has_it(&cached) {
        return Ok(cached);
    }
    if has_it(Path::new("/usr/include")) {
        return Ok("/usr/include".into());
    }
    Err(format!(
        "no Linux 7.1+ linux/bsg.h: /usr/include's lacks struct bsg_uring_cmd; run `cargo xtask headers` \
         (fetches Debian sid's linux-libc-dev into {}) or set {HEADERS_ENV} to an include folder",
        cached.display()
    ))
}

/// Compiles a probe against `inc` and compares every number with Rust's.
fn check(inc: &Path) -> Result<(), libtest_mimic::Failed> {
    let fields: Vec<(&str, usize, usize)> = vec![
        ("request", offset_of!(bsg_uring_cmd, request), 8),
        ("request_len", offset_of!(bsg_uring_cmd, request_len), 4),
        ("protocol", offset_of!(bsg_uring_cmd, protocol), 4),
        ("subprotocol", offset_of!(bsg_uring_cmd, subprotocol), 4),
        (
            "max_response_len",
            offset_of!(bsg_uring_cmd, max_response_len),
            4,
        ),
        ("response", offset_of!(bsg_uring_cmd, response), 8),
        ("dout_xferp", offset_of!(bsg_uring_cmd, dout_xferp), 8),
        ("dout_xfer_len", offset_of!(bsg_uring_cmd, dout_xfer_len), 4),
        (
            "dout_iovec_count",
            offset_of!(bsg_uring_cmd, dout_iovec_count),
            4,
        ),
        ("din_xferp", offset_of!(bsg_uring_cmd, din_xferp), 8),
        ("din_xfer_len", offset_of!(bsg_uring_cmd, din_xfer_len), 4),
        (
            "din_iovec_count",
            offset_of!(bsg_uring_cmd, din_iovec_count),
            4,
        ),
        ("timeout_ms", offset_of!(bsg_uring_cmd, timeout_ms), 4),
        ("reserved", offset_of!(bsg_uring_cmd, reserved), 12),
    ];
    let consts: Vec<(&str, u64)> = vec![
        ("BSG_PROTOCOL_SCSI", BSG_PROTOCOL_SCSI.into()),
        (
            "BSG_SUB_PROTOCOL_SCSI_CMD",
            BSG_SUB_PROTOCOL_SCSI_CMD.into(),
        ),
        (
            "BSG_SUB_PROTOCOL_SCSI_TMF",
            BSG_SUB_PROTOCOL_SCSI_TMF.into(),
        ),
        (
            "BSG_SUB_PROTOCOL_SCSI_TRANSPORT",
            BSG_SUB_PROTOCOL_SCSI_TRANSPORT.into(),
        ),
        ("BSG_FLAG_Q_AT_TAIL", BSG_FLAG_Q_AT_TAIL.into()),
        ("BSG_FLAG_Q_AT_HEAD", BSG_FLAG_Q_AT_HEAD.into()),
    ];
    // res2 words whose every field differs, decoded by the header's helpers.
    let samples: [u64; 4] = [
        0x0000_1000_1200_0802,
        0xffff_ffff_ffff_ffff,
        0x8000_0001_6007_0318,
        0x0000_0000_0003_0000,
    ];
    let mut src = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdalign.h>\n#include <linux/bsg.h>\n\
         int main(void) {\n\
         printf(\"size %zu\\n\", sizeof(struct bsg_uring_cmd));\n\
         printf(\"align %zu\\n\", alignof(struct bsg_uring_cmd));\n",
    );
    for (f, _, _) in &fields {
        src += &format!(
            "printf(\"{f}.offset %zu\\n\", offsetof(struct bsg_uring_cmd, {f}));\n\
             printf(\"{f}.size %zu\\n\", sizeof(((struct bsg_uring_cmd *)0)->{f}));\n"
        );
    }
    for (c, _) in &consts {
        src += &format!("printf(\"{c} %llu\\n\", (unsigned long long)({c}));\n");
    }
    for (i, s) in samples.iter().enumerate() {
        src += &format!(
            "{{ __u64 r = {s:#x}ULL;\n\
             printf(\"s{i}.device %u\\n\", (unsigned)bsg_scsi_res2_device_status(r));\n\
             printf(\"s{i}.driver %u\\n\", (unsigned)bsg_scsi_res2_driver_status(r));\n\
             printf(\"s{i}.host %u\\n\", (unsigned)bsg_scsi_res2_host_status(r));\n\
             printf(\"s{i}.sense %u\\n\", (unsigned)bsg_scsi_res2_sense_len(r));\n\
             printf(\"s{i}.resid %u\\n\", (unsigned)bsg_scsi_res2_resid_len(r));\n\
             printf(\"s{i}.build %llu\\n\", (unsigned long long)bsg_scsi_res2_build(\
             bsg_scsi_res2_device_status(r), bsg_scsi_res2_driver_status(r), \
             bsg_scsi_res2_host_status(r), bsg_scsi_res2_sense_len(r), bsg_scsi_res2_resid_len(r))); }}\n"
        );
    }
    src += "return 0; }\n";
    let c = probe(inc, &src)?;
    let get = |k: &str| -> Result<u64, String> {
        c.get(k)
            .copied()
            .ok_or_else(|| format!("the probe printed no {k}"))
    };
    let mut problems = Vec::new();
    let mut same = |what: String, header: u64, rust: u64| {
        if header != rust {
            problems.push(format!("{what}: header {header}, Rust {rust}"));
        }
    };
    same(
        "sizeof".into(),
        get("size")?,
        size_of::<bsg_uring_cmd>() as u64,
    );
    same(
        "alignof".into(),
        get("align")?,
        align_of::<bsg_uring_cmd>() as u64,
    );
    same(
        "80-byte command".into(),
        get("size")?,
        BSG_URING_CMD_SIZE as u64,
    );
    for (f, off, sz) in &fields {
        same(
            format!("offsetof {f}"),
            get(&format!("{f}.offset"))?,
            *off as u64,
        );
        same(
            format!("sizeof {f}"),
            get(&format!("{f}.size"))?,
            *sz as u64,
        );
    }
    for (name, v) in &consts {
        same(name.to_string(), get(name)?, *v);
    }
    for (i, &r) in samples.iter().enumerate() {
        let d = BsgScsiStatus::from_res2(r);
        same(
            format!("{r:#x} device"),
            get(&format!("s{i}.device"))?,
            d.device_status.into(),
        );
        same(
            format!("{r:#x} driver"),
            get(&format!("s{i}.driver"))?,
            d.driver_status.into(),
        );
        same(
            format!("{r:#x} host"),
            get(&format!("s{i}.host"))?,
            d.host_status.into(),
        );
        same(
            format!("{r:#x} sense"),
            get(&format!("s{i}.sense"))?,
            d.sense_len.into(),
        );
        same(
            format!("{r:#x} resid"),
            get(&format!("s{i}.resid"))?,
            d.resid.into(),
        );
        same(
            format!("{r:#x} build"),
            get(&format!("s{i}.build"))?,
            d.to_res2(),
        );
    }
    println!(
        "checked {} fields, {} constants and {} res2 words against {}",
        fields.len(),
        consts.len(),
        samples.len(),
        inc.join("linux/bsg.h").display()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n").into())
    }
}

fn probe(inc: &Path, source: &str) -> Result<BTreeMap<String, u64>, String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bsg-probe");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let c = dir.join("probe.c");
    let exe = dir.join("probe");
    std::fs::write(&c, source).map_err(|e| e.to_string())?;
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    // The 7.x folder first, its arch folder for <asm/types.h>.
    let out = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Werror"])
        .arg(format!("-I{}", inc.display()))
        .arg(format!("-I{}", inc.join("x86_64-linux-gnu").display()))
        .arg("-o")
        .arg(&exe)
        .arg(&c)
        .output()
        .map_err(|e| format!("cannot run the C compiler `{cc}`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the C probe did not compile against {}:\n{}",
            inc.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let out = Command::new(&exe)
        .output()
        .map_err(|e| format!("run the probe: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| {
            let (k, v) = l
                .split_once(' ')
                .ok_or_else(|| format!("probe line {l:?}"))?;
            Ok((k.to_string(), v.parse().map_err(|e| format!("{l:?}: {e}"))?))
        })
        .collect()
}
