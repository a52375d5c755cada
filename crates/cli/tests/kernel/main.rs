//! In-kernel tests of the `sgmap` command: the built binary is run for list,
//! info, read, write and bench against the test bed's scsi_debug disk, its
//! `--json` output parsed and checked, and data written with `write --in`
//! compared byte for byte with what `read --out` brings back. Run by
//! `cargo xtask test`; skipped (ignored) on a host without `SGMAP_TEST_DEVICE`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sgmap_testkit::{
    ensure, ensure_eq, pattern, sdebug_opts, Ctx, Failed, KernelTest, Knob, SCSI_DEBUG_SYSFS,
};

const SGMAP: &str = env!("CARGO_BIN_EXE_sgmap");

fn main() -> std::process::ExitCode {
    sgmap_testkit::run(&[
        KernelTest::scsi_debug("list_json_names_the_scsi_debug_disk", list),
        KernelTest::scsi_debug("info_json_reports_capacity_limits_and_dio", info),
        KernelTest::scsi_debug(
            "integrity_write_in_then_read_out_in_every_mode_pair",
            round_trip,
        ),
        KernelTest::scsi_debug(
            "integrity_depth_streams_round_trip_in_lba_order",
            depth_round_trip,
        ),
        KernelTest::scsi_debug("write_and_read_verify_and_stdout", verify_and_stdout),
        KernelTest::device(
            "errors_name_the_device_and_command_and_exit_non_zero",
            errors,
        ),
        KernelTest::scsi_debug("bench_json_compares_modes_floors_and_peers", bench),
        KernelTest::scsi_debug_on_linux(
            "uring_read_out_is_byte_identical_to_mmap_read_out",
            V7_1,
            uring_read_matches_mmap,
        ),
        KernelTest::scsi_debug_on_linux(
            "uring_write_verify_then_mmap_reads_it",
            V7_1,
            uring_write_verify,
        ),
        KernelTest::scsi_debug(
            "runtime_cycles_the_span_at_depth_1_and_16_in_every_sg_mode",
            runtime_sg_modes,
        ),
        KernelTest::scsi_debug_on_linux(
            "uring_runtime_cycles_the_span_at_depth_1_and_16",
            V7_1,
            runtime_uring,
        ),
        KernelTest::scsi_debug(
            "runtime_and_span_limits_stop_at_the_first_and_refuse_files",
            runtime_limits,
        ),
        KernelTest::scsi_debug(
            "auto_mode_reports_the_transport_that_ran",
            auto_reports_the_transport,
        ),
        KernelTest::scsi_debug(
            "uring_mode_before_7_1_fails_saying_what_is_missing",
            uring_mode_needs_7_1,
        ),
        KernelTest::scsi_debug(
            "copy_integrity_file_to_device_to_file_in_every_sg_mode_and_depth",
            copy_file_device_file,
        ),
        KernelTest::scsi_debug_on_linux(
            "copy_integrity_file_to_device_to_file_through_uring",
            V7_1,
            copy_file_device_file_uring,
        ),
        KernelTest::scsi_debug(
            "copy_integrity_device_to_device_two_disks_and_one_disk",
            copy_device_to_device,
        ),
        KernelTest::scsi_debug(
            "copy_stopped_mid_way_says_what_is_known_good_and_exits_non_zero",
            copy_stopped_mid_way,
        ),
        KernelTest::scsi_debug("copy_refuses_what_it_cannot_do", copy_refusals),
    ])
}

/// Runs `sgmap ARGS`.
fn sgmap(args: &[&str]) -> Result<Output, Failed> {
    Command::new(SGMAP)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {SGMAP}: {e}").into())
}

/// Runs `sgmap ARGS`, which must succeed, and parses its stdout as JSON.
fn json(args: &[&str]) -> Result<Value, Failed> {
    let out = sgmap(args)?;
    ensure(
        out.status.success(),
        format!(
            "sgmap {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    )?;
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "sgmap {}: stdout is not JSON ({e}): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        )
        .into()
    })
}

fn dev(ctx: &Ctx) -> &str {
    ctx.device.to_str().unwrap_or_default()
}

/// A fresh folder under the guest's /tmp (a tmpfs).
fn scratch(name: &str) -> Result<PathBuf, Failed> {
    let d = std::env::temp_dir().join(format!("sgmap-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
    Ok(d)
}

fn read_sysfs(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn u(v: &Value, what: &str) -> Result<u64, Failed> {
    v.as_u64()
        .ok_or_else(|| format!("{what} is not a number: {v}").into())
}

fn f(v: &Value, what: &str) -> Result<f64, Failed> {
    v.as_f64()
        .ok_or_else(|| format!("{what} is not a number: {v}").into())
}

fn list(ctx: &Ctx) -> Result<(), Failed> {
    let v = json(&["list", "--json"])?;
    let devices = v.as_array().ok_or("list --json is not an array")?;
    let me = devices
        .iter()
        .find(|d| d["path"] == dev(ctx))
        .ok_or_else(|| format!("{} is not listed: {v}", dev(ctx)))?;
    ensure_eq(me["vendor"].as_str(), Some("Linux"), "vendor")?;
    ensure_eq(me["model"].as_str(), Some("scsi_debug"), "model")?;
    ensure_eq(me["device_type"].as_u64(), Some(0), "type")?;
    ensure_eq(me["type_name"].as_str(), Some("disk"), "type name")?;
    // The test bed loads no sd driver, so there may be no block device:
    // whatever sysfs says is what the list must say.
    let name = ctx
        .device
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut in_sysfs: Vec<String> =
        std::fs::read_dir(format!("/sys/class/scsi_generic/{name}/device/block"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
    in_sysfs.sort();
    ensure_eq(
        me["block_device"].as_str(),
        in_sysfs.first().map(String::as_str),
        "block device as sysfs has it",
    )?;
    let block = in_sysfs.first().map_or("-", String::as_str);
    // The text form lists the same node and block device.
    let out = sgmap(&["list"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure(
        out.status.success() && text.contains(dev(ctx)) && text.contains(block),
        format!("sgmap list:\n{text}"),
    )
}

fn info(ctx: &Ctx) -> Result<(), Failed> {
    let v = json(&["info", dev(ctx), "--json"])?;
    ensure_eq(v["device"].as_str(), Some(dev(ctx)), "device")?;
    ensure_eq(
        v["inquiry"]["product"].as_str(),
        Some("scsi_debug"),
        "product",
    )?;
    let blocks = u(&v["capacity"]["blocks"], "capacity.blocks")?;
    let block = u(&v["capacity"]["block_size"], "capacity.block_size")?;
    ensure_eq(blocks * block, 256 << 20, "capacity (dev_size_mb=256)")?;
    ensure_eq(
        u(&v["capacity"]["bytes"], "capacity.bytes")?,
        256 << 20,
        "bytes",
    )?;
    let version = u(&v["driver_version"], "driver_version")?;
    ensure(version >= 30122, format!("driver version {version}"))?;
    ensure_eq(
        v["driver_version_text"].as_str().map(str::to_string),
        Some(format!(
            "{}.{}.{}",
            version / 10000,
            version / 100 % 100,
            version % 100
        )),
        "driver version text",
    )?;
    ensure_eq(v["supports_mmap"].as_bool(), Some(true), "mmap supported")?;
    let max = u(&v["max_transfer"], "max_transfer")?;
    ensure_eq(
        u(&v["reserved_size_max"], "reserved_size_max")?,
        max,
        "the largest reserved buffer is the queue's limit",
    )?;
    if let Some(kb) = v["max_sectors_kb"].as_u64() {
        ensure_eq(max, kb * 1024, "max transfer against max_sectors_kb")?;
    }
    ensure(
        u(&v["reserved_size_default"], "reserved_size_default")? > 0,
        "default reserved size",
    )?;
    let allow = read_sysfs("/sys/module/sg/parameters/allow_dio").map(|s| s != "0");
    ensure_eq(v["allow_dio"].as_bool(), allow, "allow_dio as sysfs says")?;
    ensure(
        v["problems"].as_array().is_some_and(|p| p.is_empty()),
        format!("problems: {}", v["problems"]),
    )?;
    let out = sgmap(&["info", dev(ctx)])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure(
        text.contains("scsi_debug") && text.contains("allow_dio"),
        format!("sgmap info:\n{text}"),
    )
}

const MODES: [&str; 3] = ["mmap", "direct", "indirect"];

/// Writes a file with `write --in` in each mode and reads it back with
/// `read --out` in each mode: nine pairs, byte for byte. The size is not a
/// multiple of --bs, so the last transfer of each is shorter.
fn round_trip(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("rt")?;
    let len = 5 * 65536 + 12288;
    let info = json(&["info", dev(ctx), "--json"])?;
    let block = u(&info["capacity"]["block_size"], "block size")? as usize;
    for (wi, wmode) in MODES.iter().enumerate() {
        let mut data = vec![0u8; len];
        pattern(wi as u64 + 40, 0, block, &mut data);
        let input = dir.join(format!("in-{wmode}"));
        std::fs::write(&input, &data).map_err(|e| format!("write {}: {e}", input.display()))?;
        let offset = format!("{}", (8 << 20) + wi * (1 << 20));
        let w = json(&[
            "write",
            dev(ctx),
            "--mode",
            wmode,
            "--bs",
            "64k",
            "--offset",
            &offset,
            "--in",
            input.to_str().unwrap_or_default(),
            "--json",
        ])?;
        ensure_eq(u(&w["bytes"], "bytes")?, len as u64, "bytes written")?;
        ensure_eq(
            u(&w["commands"], "commands")?,
            6,
            "commands (5 full, 1 short)",
        )?;
        ensure_eq(
            u(&w["modes_seen"][*wmode], "modes_seen")?,
            6,
            format!("{wmode} write ran in its own mode"),
        )?;
        ensure(f(&w["mb_per_s"], "mb_per_s")? > 0.0, "write rate")?;
        for rmode in MODES {
            let out = dir.join(format!("out-{wmode}-{rmode}"));
            let r = json(&[
                "read",
                dev(ctx),
                "--mode",
                rmode,
                "--bs",
                "64k",
                "--offset",
                &offset,
                "--size",
                &len.to_string(),
                "--out",
                out.to_str().unwrap_or_default(),
                "--json",
            ])?;
            ensure_eq(
                u(&r["modes_seen"][rmode], "modes_seen")?,
                6,
                format!("{rmode} read ran in its own mode"),
            )?;
            let got = std::fs::read(&out).map_err(|e| format!("read {}: {e}", out.display()))?;
            ensure_eq(got.len(), len, "bytes in the --out file")?;
            if let Some(i) = got.iter().zip(&data).position(|(a, b)| a != b) {
                return Err(format!(
                    "written {wmode}, read {rmode}: first difference at byte {i} \
                     (read {:#04x}, wrote {:#04x})",
                    got[i], data[i]
                )
                .into());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// With several commands in flight (the streaming helper), data still lands
/// in LBA order: write at one depth and mode, read back at another, compare.
fn depth_round_trip(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("depth")?;
    let len = 37 * 16384;
    let info = json(&["info", dev(ctx), "--json"])?;
    let block = u(&info["capacity"]["block_size"], "block size")? as usize;
    let cases = [
        ("mmap", "8", "indirect", "16"),
        ("indirect", "16", "direct", "4"),
        ("direct", "3", "mmap", "5"),
    ];
    for (i, (wmode, wdepth, rmode, rdepth)) in cases.into_iter().enumerate() {
        let mut data = vec![0u8; len];
        pattern(70 + i as u64, 0, block, &mut data);
        let input = dir.join(format!("in-{i}"));
        std::fs::write(&input, &data).map_err(|e| format!("write {}: {e}", input.display()))?;
        let offset = format!("{}", (40 << 20) + i * (1 << 20));
        let w = json(&[
            "write",
            dev(ctx),
            "--mode",
            wmode,
            "--depth",
            wdepth,
            "--bs",
            "16k",
            "--offset",
            &offset,
            "--in",
            input.to_str().unwrap_or_default(),
            "--verify",
            "--json",
        ])?;
        ensure_eq(w["depth"].as_u64(), wdepth.parse().ok(), "depth reported")?;
        ensure_eq(u(&w["commands"], "commands")?, 37, "write commands")?;
        ensure_eq(u(&w["modes_seen"][wmode], "modes_seen")?, 37, "write mode")?;
        ensure_eq(w["verified"].as_bool(), Some(true), "write verified")?;
        let out = dir.join(format!("out-{i}"));
        let r = json(&[
            "read",
            dev(ctx),
            "--mode",
            rmode,
            "--depth",
            rdepth,
            "--bs",
            "16k",
            "--offset",
            &offset,
            "--size",
            &len.to_string(),
            "--out",
            out.to_str().unwrap_or_default(),
            "--verify",
            "--json",
        ])?;
        ensure_eq(u(&r["modes_seen"][rmode], "modes_seen")?, 37, "read mode")?;
        let got = std::fs::read(&out).map_err(|e| format!("read {}: {e}", out.display()))?;
        if let Some(k) = got.iter().zip(&data).position(|(a, b)| a != b) {
            return Err(format!(
                "written {wmode} at depth {wdepth}, read {rmode} at depth {rdepth}: first difference at byte {k}"
            )
            .into());
        }
        ensure_eq(got.len(), len, "bytes read")?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn verify_and_stdout(ctx: &Ctx) -> Result<(), Failed> {
    let offset = (20u64 << 20).to_string();
    for mode in MODES {
        let w = json(&[
            "write",
            dev(ctx),
            "--mode",
            mode,
            "--bs",
            "16k",
            "--count",
            "4",
            "--offset",
            &offset,
            "--seed",
            "9",
            "--verify",
            "--json",
        ])?;
        ensure_eq(w["verified"].as_bool(), Some(true), "write verified")?;
        let r = json(&[
            "read",
            dev(ctx),
            "--mode",
            mode,
            "--bs",
            "16k",
            "--count",
            "4",
            "--offset",
            &offset,
            "--verify",
            "--json",
        ])?;
        ensure_eq(r["verified"].as_bool(), Some(true), "read verified")?;
    }
    // The pattern reaches stdout unchanged with --out -.
    let out = sgmap(&[
        "read",
        dev(ctx),
        "--bs",
        "16k",
        "--count",
        "4",
        "--offset",
        &offset,
        "--out",
        "-",
    ])?;
    ensure(
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )?;
    let dir = scratch("stdout")?;
    let file = dir.join("f");
    json(&[
        "read",
        dev(ctx),
        "--mode",
        "indirect",
        "--bs",
        "64k",
        "--size",
        "64k",
        "--offset",
        &offset,
        "--out",
        file.to_str().unwrap_or_default(),
        "--json",
    ])?;
    let want = std::fs::read(&file).map_err(|e| e.to_string())?;
    ensure_eq(out.stdout.len(), 65536, "bytes on stdout")?;
    ensure(out.stdout == want, "stdout bytes equal the --out file")?;
    ensure(
        String::from_utf8_lossy(&out.stderr).contains("read 64 KiB"),
        "the summary goes to stderr when data goes to stdout",
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs a failing command and checks its exit status and message.
fn fails_with(args: &[&str], needles: &[&str]) -> Result<(), Failed> {
    let out = sgmap(args)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure(
        !out.status.success(),
        format!("sgmap {} should fail, but exited 0", args.join(" ")),
    )?;
    ensure_eq(out.status.code(), Some(1), "exit code of a failed command")?;
    for n in needles {
        ensure(
            err.contains(n),
            format!("sgmap {}: stderr lacks `{n}`: {err}", args.join(" ")),
        )?;
    }
    Ok(())
}

fn errors(ctx: &Ctx) -> Result<(), Failed> {
    let d = dev(ctx);
    fails_with(
        &["read", "/dev/sg-none", "--count", "1"],
        &["/dev/sg-none", "sgmap list"],
    )?;
    fails_with(
        &["read", d, "--offset", "100", "--count", "1"],
        &[d, "read", "--offset 100"],
    )?;
    fails_with(
        &["read", d, "--offset", "1g", "--count", "1"],
        &[d, "read", "past the end"],
    )?;
    fails_with(&["write", d, "--bs", "4k"], &[d, "write", "--count"])?;
    // More than the queue's limit cannot be mapped: the message says how much can.
    fails_with(
        &["read", d, "--mode", "mmap", "--bs", "64m", "--count", "1"],
        &[d, "mmap", "granted"],
    )?;
    fails_with(
        &["read", d, "--depth", "0", "--count", "1"],
        &[d, "--depth"],
    )?;
    fails_with(
        &[
            "read", d, "--mode", "indirect", "--depth", "17", "--count", "1",
        ],
        &[d, "read", "at most 16"],
    )?;
    fails_with(
        &["read", d, "--span", "1000", "--count", "8"],
        &[d, "read", "--span 1000", "whole"],
    )?;
    fails_with(
        &["read", d, "--runtime", "1s", "--out", "/tmp/sgmap-never"],
        &[d, "read", "--runtime", "--out"],
    )?;
    let missing = Path::new("/nonexistent/in.bin");
    fails_with(
        &["write", d, "--in", missing.to_str().unwrap_or_default()],
        &["write", "/nonexistent/in.bin"],
    )?;
    // A usage error is exit code 2, from the argument parser.
    let out = sgmap(&["read", d, "--mode", "zero-copy"])?;
    ensure_eq(out.status.code(), Some(2), "exit code of a usage error")?;
    ensure(
        String::from_utf8_lossy(&out.stderr).contains("mmap, direct, indirect or uring"),
        "the usage error lists the modes",
    )
}

fn bench(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("bench")?;
    let plot = dir.join("b.svg");
    let v = json(&[
        "bench",
        dev(ctx),
        "--sizes",
        "4k,64k",
        "--rounds",
        "3",
        "--run-ms",
        "20",
        "--copy-source",
        "8m",
        "--depth",
        "1,4",
        "--peers",
        "--plot",
        plot.to_str().unwrap_or_default(),
        "--json",
    ])?;
    ensure_eq(u(&v["rounds"], "rounds")?, 3, "rounds")?;
    let tur = f(&v["floors"]["tur_commands_per_s"], "TUR floor")?;
    ensure(tur > 0.0, "TUR floor")?;
    let tur_samples = v["floors"]["tur_samples"]
        .as_array()
        .ok_or("TUR samples")?
        .clone();
    let copies = v["floors"]["copy"].as_array().ok_or("copy floors")?;
    let copy_sizes: Vec<u64> = copies.iter().filter_map(|c| c["bs"].as_u64()).collect();
    ensure_eq(copy_sizes, vec![4096, 65536], "copy floor sizes")?;
    let rows = v["results"].as_array().ok_or("results")?;
    let find_at = |tool: &str, mode: &str, bs: u64, depth: u64| {
        rows.iter().find(|r| {
            r["tool"] == tool
                && r["mode"] == mode
                && r["bs"] == bs
                && r["dir"] == "read"
                && r["depth"] == depth
        })
    };
    let find = |tool: &str, mode: &str, bs: u64| find_at(tool, mode, bs, 1);
    for bs in [4096u64, 65536] {
        for mode in MODES {
            let r = find("sgmap", mode, bs)
                .ok_or_else(|| format!("no sgmap {mode} row at {bs} bytes: {v}"))?;
            let cmds = f(&r["commands_per_s"], "commands_per_s")?;
            let mb = f(&r["mb_per_s"], "mb_per_s")?;
            ensure(cmds > 0.0, format!("{mode} {bs}: commands/s"))?;
            // Same transfer size in every run: MB/s is commands/s times the size.
            ensure(
                (mb - cmds * bs as f64 / 1e6).abs() <= 1e-6 * mb.max(1.0),
                format!("{mode} {bs}: {mb} MB/s against {cmds} commands/s"),
            )?;
            ensure_eq(u(&r["runs"], "runs")?, 3, "runs per contender")?;
            let seen = u(&r["modes_seen"][mode], "modes_seen")?;
            ensure_eq(
                seen,
                3 * u(&r["commands_per_run"], "commands_per_run")?,
                format!("{mode} {bs}: every command ran {mode}"),
            )?;
            // vs_tur: the median over rounds of this run's rate over that
            // round's TEST UNIT READY rate.
            let vs_tur = f(&r["vs_tur"], "vs_tur")?;
            let mut per_round: Vec<f64> = r["samples_commands_per_s"]
                .as_array()
                .ok_or("samples")?
                .iter()
                .zip(tur_samples.iter())
                .filter_map(|(a, t)| Some(a.as_f64()? / t.as_f64()?))
                .collect();
            ensure_eq(per_round.len(), 3, "one ratio per round")?;
            per_round.sort_by(f64::total_cmp);
            ensure(
                (vs_tur - per_round[1]).abs() <= 1e-9 * vs_tur.max(1.0),
                format!("vs_tur {vs_tur} is the median of {per_round:?}"),
            )?;
            ensure(r["vs_copy"].as_f64().is_some(), "vs_copy")?;
            ensure_eq(
                r["vs_indirect"].is_null(),
                mode == "indirect",
                "only indirect lacks a ratio to itself",
            )?;
        }
    }
    // Depth 4 through the queue (direct, indirect) and the mmap pool.
    for mode in MODES {
        let r = find_at("sgmap", mode, 4096, 4)
            .ok_or_else(|| format!("no sgmap {mode} row at depth 4: {v}"))?;
        ensure(
            f(&r["commands_per_s"], "commands_per_s")? > 0.0,
            "depth 4 rate",
        )?;
        ensure_eq(
            u(&r["modes_seen"][mode], "modes_seen")?,
            3 * u(&r["commands_per_run"], "commands_per_run")?,
            format!("depth 4 {mode}: every command ran {mode}"),
        )?;
    }
    // Peers: rows when the programs are installed, a skip saying how to
    // install them when not.
    let skipped = v["skipped"].as_array().ok_or("skipped")?;
    for (peer, package, mode) in [("sg_read", "sg3-utils", "mmap"), ("fio", "fio", "indirect")] {
        let installed = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(peer).is_file()));
        if installed {
            let r = find(peer, mode, 65536).ok_or_else(|| format!("no {peer} row: {v}"))?;
            ensure(f(&r["commands_per_s"], "peer rate")? > 0.0, "peer rate")?;
            let sgmap = find("sgmap", mode, 65536).ok_or("sgmap row")?;
            let key = if peer == "sg_read" {
                "vs_sg_read"
            } else {
                "vs_fio"
            };
            ensure(
                sgmap[key].as_f64().is_some_and(|x| x > 0.0),
                format!("sgmap {mode} has {key}"),
            )?;
        } else {
            ensure(
                skipped.iter().any(|s| {
                    s["tool"] == peer
                        && s["reason"]
                            .as_str()
                            .is_some_and(|r| r.contains(&format!("apt-get install {package}")))
                }),
                format!("{peer} missing but not reported: {skipped:?}"),
            )?;
        }
    }
    let svg = std::fs::read_to_string(&plot).map_err(|e| format!("{}: {e}", plot.display()))?;
    ensure(
        svg.starts_with("<svg") && svg.contains("sgmap mmap"),
        "the plot is an SVG with the sgmap mmap series",
    )?;
    // The text table names the floors and the modes.
    let out = sgmap(&[
        "bench",
        dev(ctx),
        "--sizes",
        "4k",
        "--rounds",
        "1",
        "--run-ms",
        "10",
        "--copy-source",
        "1m",
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure(
        out.status.success()
            && text.contains("TEST UNIT READY")
            && text.contains("sgmap mmap")
            && text.contains("sgmap indirect"),
        format!(
            "sgmap bench table:\n{text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The first kernel with SCSI passthrough through io_uring on bsg.
/// The time-based runs' region: 64 KiB at 90 MiB, transfers of 16 KiB.
const RT_OFFSET: u64 = 90 << 20;
const RT_SPAN: u64 = 64 << 10;
const RT_BS: u64 = 16 << 10;
/// The runtime asked for, and the generous bound a run must end within.
const RT_ASK: &str = "300ms";
const RT_ASK_S: f64 = 0.3;
const RT_BOUND_S: f64 = 20.0;

/// Fills the time-based region with the test kit's pattern of `seed` (other
/// bytes than `sgmap write --seed` puts there); returns them.
fn fill_region(ctx: &Ctx, seed: u64, block: usize) -> Result<Vec<u8>, Failed> {
    let dir = scratch("rt-fill")?;
    let mut data = vec![0u8; RT_SPAN as usize];
    pattern(seed, RT_OFFSET / block as u64, block, &mut data);
    let input = dir.join("in");
    std::fs::write(&input, &data).map_err(|e| format!("write {}: {e}", input.display()))?;
    json(&[
        "write",
        dev(ctx),
        "--mode",
        "indirect",
        "--bs",
        "64k",
        "--offset",
        &RT_OFFSET.to_string(),
        "--in",
        input.to_str().unwrap_or_default(),
        "--json",
    ])?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(data)
}

/// The bytes of the time-based region now, read once through mmap.
fn region_now(ctx: &Ctx, name: &str) -> Result<Vec<u8>, Failed> {
    let dir = scratch(name)?;
    let out = dir.join("out");
    read_to(
        ctx,
        &RT_OFFSET.to_string(),
        RT_SPAN as usize,
        &out,
        &["--mode", "mmap"],
    )?;
    let got = std::fs::read(&out).map_err(|e| format!("read {}: {e}", out.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(got)
}

/// Checks the report of a run of `--runtime RT_ASK` over `span` bytes in
/// `mode` (`modes_seen` key `seen`) at `depth`: time-based, ended by the
/// clock, ran at least the time asked and less than the bound, cycled (more
/// commands than one pass), every command a full transfer in that mode,
/// verified.
fn check_timed(v: &Value, what: &str, seen: &str, depth: u64, span: u64) -> Result<u64, Failed> {
    ensure_eq(
        v["time_based"].as_bool(),
        Some(true),
        format!("{what}: time_based"),
    )?;
    ensure_eq(
        v["ended_by"].as_str(),
        Some("runtime"),
        format!("{what}: ended_by"),
    )?;
    ensure_eq(v["depth"].as_u64(), Some(depth), format!("{what}: depth"))?;
    ensure_eq(
        v["verified"].as_bool(),
        Some(true),
        format!("{what}: verified"),
    )?;
    let asked = f(&v["runtime_requested_s"], "runtime_requested_s")?;
    ensure(
        (asked - RT_ASK_S).abs() < 1e-9,
        format!("{what}: runtime asked {asked}"),
    )?;
    let secs = f(&v["seconds"], "seconds")?;
    ensure(
        (RT_ASK_S..RT_BOUND_S).contains(&secs),
        format!("{what}: ran {secs} s for a runtime of {RT_ASK}"),
    )?;
    let commands = u(&v["commands"], "commands")?;
    ensure(
        commands > span / RT_BS,
        format!(
            "{what}: {commands} commands is not more than one pass over the span ({})",
            span / RT_BS
        ),
    )?;
    ensure_eq(
        u(&v["bytes"], "bytes")?,
        commands * RT_BS,
        format!("{what}: bytes of full transfers"),
    )?;
    ensure_eq(
        u(&v["modes_seen"][seen], "modes_seen")?,
        commands,
        format!("{what}: every command ran {seen}"),
    )?;
    Ok(commands)
}

/// `--runtime` at depth 1 and 16 in `modes`: reads over the span (and over
/// one transfer) cycle, verified through a second fd against what is on the
/// disk; writes of the pattern cycle and leave on the disk exactly what one
/// plain pass of the same pattern leaves.
fn runtime_in(ctx: &Ctx, modes: &[&str]) -> Result<(), Failed> {
    let info = json(&["info", dev(ctx), "--json"])?;
    let block = u(&info["capacity"]["block_size"], "block size")? as usize;
    let offset = RT_OFFSET.to_string();
    // What one plain, verified pass of the pattern of seed 31 leaves.
    json(&[
        "write",
        dev(ctx),
        "--bs",
        "16k",
        "--size",
        "64k",
        "--offset",
        &offset,
        "--seed",
        "31",
        "--verify",
        "--json",
    ])?;
    let want = region_now(ctx, "rt-want")?;
    for mode in modes {
        let seen = if *mode == "uring" { "direct" } else { mode };
        for depth in [1u64, 16] {
            let d = depth.to_string();
            let noise = fill_region(ctx, 40 + depth, block)?;
            ensure(noise != want, "the noise differs from the pattern")?;
            for span in [RT_SPAN, RT_BS] {
                let what = format!("read {mode} depth {depth} span {span}");
                let r = json(&[
                    "read",
                    dev(ctx),
                    "--mode",
                    mode,
                    "--depth",
                    &d,
                    "--bs",
                    "16k",
                    "--offset",
                    &offset,
                    "--span",
                    &span.to_string(),
                    "--runtime",
                    RT_ASK,
                    "--verify",
                    "--json",
                ])?;
                let n = check_timed(&r, &what, seen, depth, span)?;
                ensure_eq(r["span"].as_u64(), Some(span), format!("{what}: span"))?;
                println!("{what}: {n} commands in {} s", r["seconds"]);
            }
            let what = format!("write {mode} depth {depth}");
            let w = json(&[
                "write",
                dev(ctx),
                "--mode",
                mode,
                "--depth",
                &d,
                "--bs",
                "16k",
                "--offset",
                &offset,
                "--span",
                "64k",
                "--runtime",
                RT_ASK,
                "--seed",
                "31",
                "--verify",
                "--json",
            ])?;
            let n = check_timed(&w, &what, seen, depth, RT_SPAN)?;
            println!("{what}: {n} commands in {} s", w["seconds"]);
            let got = region_now(ctx, "rt-got")?;
            if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
                return Err(format!(
                    "{what}: byte {i} of the span differs from one plain pass of the pattern"
                )
                .into());
            }
        }
    }
    Ok(())
}

fn runtime_sg_modes(ctx: &Ctx) -> Result<(), Failed> {
    runtime_in(ctx, &MODES)
}

fn runtime_uring(ctx: &Ctx) -> Result<(), Failed> {
    runtime_in(ctx, &["uring"])
}

/// --runtime with --count or --size stops at whichever comes first; --span
/// with neither makes one pass; --span with --count cycles at depth; the
/// clock never cuts a transfer; --runtime refuses --in and --out.
fn runtime_limits(ctx: &Ctx) -> Result<(), Failed> {
    let info = json(&["info", dev(ctx), "--json"])?;
    let block = u(&info["capacity"]["block_size"], "block size")? as usize;
    fill_region(ctx, 50, block)?;
    let d = dev(ctx);
    let offset = RT_OFFSET.to_string();
    let base = ["--bs", "16k", "--offset", &offset, "--verify", "--json"];
    let run = |extra: &[&str]| -> Result<Value, Failed> {
        let mut args = vec!["read", d];
        args.extend_from_slice(&base);
        args.extend_from_slice(extra);
        json(&args)
    };
    for mode in ["mmap", "direct", "indirect"] {
        for depth in ["1", "16"] {
            let what = format!("{mode} depth {depth}");
            let m = ["--mode", mode, "--depth", depth];
            // The count comes long before ten seconds.
            let r = run(&[
                &m[..],
                &["--span", "64k", "--runtime", "10s", "--count", "7"],
            ]
            .concat())?;
            ensure_eq(
                u(&r["commands"], "commands")?,
                7,
                format!("{what}: --count 7"),
            )?;
            ensure_eq(
                r["ended_by"].as_str(),
                Some("count"),
                format!("{what}: ended_by"),
            )?;
            ensure_eq(
                r["time_based"].as_bool(),
                Some(true),
                format!("{what}: time_based"),
            )?;
            ensure(
                f(&r["seconds"], "seconds")? < 10.0,
                format!("{what}: --count 7 waited for the clock: {r}"),
            )?;
            // The size: 40 KiB is two transfers and a half one.
            let r = run(&[
                &m[..],
                &["--span", "32k", "--runtime", "10s", "--size", "40k"],
            ]
            .concat())?;
            ensure_eq(
                u(&r["bytes"], "bytes")?,
                40 << 10,
                format!("{what}: --size 40k"),
            )?;
            ensure_eq(
                u(&r["commands"], "commands")?,
                3,
                format!("{what}: commands"),
            )?;
            ensure_eq(
                r["ended_by"].as_str(),
                Some("size"),
                format!("{what}: ended_by"),
            )?;
            // --span alone: one pass.
            let r = run(&[&m[..], &["--span", "64k"]].concat())?;
            ensure_eq(
                u(&r["commands"], "commands")?,
                4,
                format!("{what}: one pass"),
            )?;
            ensure_eq(
                r["ended_by"].as_str(),
                Some("end"),
                format!("{what}: ended_by"),
            )?;
            ensure_eq(
                r["time_based"].as_bool(),
                Some(false),
                format!("{what}: time_based"),
            )?;
            // --span with --count cycles, at every depth: 64 transfers of the
            // same 16 KiB.
            let r = run(&[&m[..], &["--span", "16k", "--count", "64"]].concat())?;
            ensure_eq(
                u(&r["commands"], "commands")?,
                64,
                format!("{what}: --count 64"),
            )?;
            ensure_eq(
                u(&r["bytes"], "bytes")?,
                64 * RT_BS,
                format!("{what}: bytes"),
            )?;
            ensure_eq(
                r["ended_by"].as_str(),
                Some("count"),
                format!("{what}: ended_by"),
            )?;
            // --runtime without --span cycles over --size: one pass comes first.
            let r = run(&[&m[..], &["--size", "48k", "--runtime", "10s"]].concat())?;
            ensure_eq(
                u(&r["commands"], "commands")?,
                3,
                format!("{what}: --size 48k"),
            )?;
            ensure_eq(
                r["ended_by"].as_str(),
                Some("size"),
                format!("{what}: ended_by"),
            )?;
        }
    }
    // The text form says it was time-based.
    let out = sgmap(&[
        "read",
        d,
        "--bs",
        "16k",
        "--offset",
        &offset,
        "--span",
        "16k",
        "--runtime",
        "100ms",
        "--depth",
        "4",
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure(
        out.status.success()
            && text.contains("time-based: --runtime 0.100 s")
            && text.contains("ended by the runtime"),
        format!(
            "text report: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    )?;
    fails_with(
        &["write", d, "--runtime", "1s", "--in", "/tmp/sgmap-never"],
        &[d, "write", "--runtime", "--in"],
    )?;
    // A runtime of nothing is a usage error, from the argument parser.
    let out = sgmap(&["read", d, "--runtime", "0s"])?;
    ensure(
        out.status.code() == Some(2)
            && String::from_utf8_lossy(&out.stderr).contains("more than zero"),
        format!("--runtime 0s: {out:?}"),
    )?;
    // The report says what ran: an mmap stream opens at most 64 fds, and a
    // span shorter than --bs makes shorter commands.
    let r = run(&[
        "--mode", "mmap", "--depth", "100", "--span", "64k", "--count", "200",
    ])?;
    ensure_eq(
        r["depth"].as_u64(),
        Some(64),
        "mmap depth 100: depth that ran",
    )?;
    ensure_eq(
        r["depth_requested"].as_u64(),
        Some(100),
        "mmap depth 100: depth asked",
    )?;
    let r = run(&["--span", "8k", "--count", "5"])?;
    ensure_eq(
        r["transfer_bytes"].as_u64(),
        Some(8 << 10),
        "--span 8k under --bs 16k: transfer",
    )?;
    ensure_eq(
        u(&r["bytes"], "bytes")?,
        5 * (8 << 10),
        "--span 8k under --bs 16k: bytes",
    )?;
    fails_with(
        &["read", d, "--count", "0", "--span", "64k"],
        &[d, "read", "--count 0"],
    )?;
    // With --json a failure is a JSON document on stdout as well.
    let out = sgmap(&["read", d, "--span", "1000", "--json"])?;
    let doc: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("a failed read --json printed no JSON ({e}): {out:?}"))?;
    ensure(
        out.status.code() == Some(1)
            && doc["error"]
                .as_str()
                .is_some_and(|m| m.contains("--span 1000")),
        format!("failed read --json: {doc}"),
    )
}

const V7_1: (u32, u32) = (7, 1);

fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Reads `len` bytes at `offset` with extra arguments into `out`; returns the JSON.
fn read_to(
    ctx: &Ctx,
    offset: &str,
    len: usize,
    out: &Path,
    extra: &[&str],
) -> Result<Value, Failed> {
    let len = len.to_string();
    let mut args = vec![
        "read",
        dev(ctx),
        "--bs",
        "16k",
        "--offset",
        offset,
        "--size",
        &len,
        "--out",
        out.to_str().unwrap_or_default(),
        "--json",
    ];
    args.extend_from_slice(extra);
    json(&args)
}

/// A uring read (depth 1 and 8, registered buffers) writes the very bytes an
/// mmap read of the same blocks writes, in LBA order, and says it ran uring.
fn uring_read_matches_mmap(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("uring-read")?;
    let info = json(&["info", dev(ctx), "--json"])?;
    let block = u(&info["capacity"]["block_size"], "block size")? as usize;
    let len = 29 * 16384 + 8192;
    let mut data = vec![0u8; len];
    pattern(91, 0, block, &mut data);
    let input = dir.join("in");
    std::fs::write(&input, &data).map_err(|e| format!("write {}: {e}", input.display()))?;
    let offset = (60u64 << 20).to_string();
    json(&[
        "write",
        dev(ctx),
        "--mode",
        "indirect",
        "--bs",
        "64k",
        "--offset",
        &offset,
        "--in",
        input.to_str().unwrap_or_default(),
        "--json",
    ])?;
    let mmap_out = dir.join("mmap");
    read_to(ctx, &offset, len, &mmap_out, &["--mode", "mmap"])?;
    let want = std::fs::read(&mmap_out).map_err(|e| format!("read {}: {e}", mmap_out.display()))?;
    ensure(want == data, "the mmap read brings back what was written")?;
    for depth in ["1", "8"] {
        let out = dir.join(format!("uring-{depth}"));
        let r = read_to(
            ctx,
            &offset,
            len,
            &out,
            &["--mode", "uring", "--depth", depth, "--verify"],
        )?;
        ensure_eq(r["transport"].as_str(), Some("uring"), "transport")?;
        ensure_eq(r["mode"].as_str(), Some("uring"), "mode")?;
        ensure_eq(
            r["mode_requested"].as_str(),
            Some("uring"),
            "mode_requested",
        )?;
        ensure(r["auto_fallback"].is_null(), format!("no fallback: {r}"))?;
        ensure(
            r["bsg_node"]
                .as_str()
                .is_some_and(|n| n.starts_with("/dev/bsg/")),
            format!("bsg node: {r}"),
        )?;
        ensure_eq(
            u(&r["commands"], "commands")?,
            30,
            "commands (29 full, 1 short)",
        )?;
        ensure_eq(
            u(&r["modes_seen"]["direct"], "direct")?,
            30,
            "registered buffers ran zero-copy",
        )?;
        ensure_eq(r["verified"].as_bool(), Some(true), "verified")?;
        let got = std::fs::read(&out).map_err(|e| format!("read {}: {e}", out.display()))?;
        ensure_eq(got.len(), want.len(), "bytes in the --out file")?;
        if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
            return Err(format!(
                "uring depth {depth}: first difference from the mmap read at byte {i}"
            )
            .into());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A uring write at depth 16 with --verify, then read back through mmap.
fn uring_write_verify(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("uring-write")?;
    let info = json(&["info", dev(ctx), "--json"])?;
    let block = u(&info["capacity"]["block_size"], "block size")? as usize;
    let len = 41 * 16384;
    let mut data = vec![0u8; len];
    pattern(93, 0, block, &mut data);
    let input = dir.join("in");
    std::fs::write(&input, &data).map_err(|e| format!("write {}: {e}", input.display()))?;
    let offset = (70u64 << 20).to_string();
    let w = json(&[
        "write",
        dev(ctx),
        "--mode",
        "uring",
        "--depth",
        "16",
        "--bs",
        "16k",
        "--offset",
        &offset,
        "--in",
        input.to_str().unwrap_or_default(),
        "--verify",
        "--json",
    ])?;
    ensure_eq(w["transport"].as_str(), Some("uring"), "transport")?;
    ensure_eq(w["verified"].as_bool(), Some(true), "write verified")?;
    ensure_eq(u(&w["commands"], "commands")?, 41, "write commands")?;
    let out = dir.join("back");
    read_to(ctx, &offset, len, &out, &["--mode", "mmap"])?;
    let got = std::fs::read(&out).map_err(|e| format!("read {}: {e}", out.display()))?;
    ensure(
        got == data,
        "an mmap read brings back what the uring write wrote",
    )?;
    // The pattern too, verified, at depth 1.
    let p = json(&[
        "write",
        dev(ctx),
        "--mode",
        "uring",
        "--bs",
        "16k",
        "--count",
        "5",
        "--offset",
        &offset,
        "--seed",
        "4",
        "--verify",
        "--json",
    ])?;
    ensure_eq(
        p["verified"].as_bool(),
        Some(true),
        "pattern write verified",
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `--mode auto` reports what really ran: uring on 7.1+, mmap (depth 1) or
/// the mmap pool (depth 4) before, with the reason.
fn auto_reports_the_transport(ctx: &Ctx) -> Result<(), Failed> {
    let kernel = sgmap_testkit::kernel_version().ok_or("kernel version")?;
    let rel = release();
    let offset = (20u64 << 20).to_string();
    for depth in ["1", "4"] {
        let r = json(&[
            "read",
            dev(ctx),
            "--mode",
            "auto",
            "--depth",
            depth,
            "--bs",
            "16k",
            "--count",
            "8",
            "--offset",
            &offset,
            "--verify",
            "--json",
        ])?;
        ensure_eq(r["mode_requested"].as_str(), Some("auto"), "mode_requested")?;
        ensure_eq(r["verified"].as_bool(), Some(true), "verified")?;
        if kernel >= V7_1 {
            ensure_eq(
                r["transport"].as_str(),
                Some("uring"),
                format!("Linux {rel}, depth {depth}: auto picks uring"),
            )?;
            ensure(
                r["auto_fallback"].is_null(),
                format!("no fallback on Linux {rel}: {r}"),
            )?;
            ensure_eq(
                u(&r["modes_seen"]["direct"], "direct")?,
                8,
                "uring commands",
            )?;
        } else {
            ensure_eq(
                r["transport"].as_str(),
                Some("mmap"),
                format!("Linux {rel}, depth {depth}: auto falls back to mmap"),
            )?;
            ensure_eq(u(&r["modes_seen"]["mmap"], "mmap")?, 8, "mmap commands")?;
            let why = r["auto_fallback"].as_str().unwrap_or_default();
            for needle in ["Linux 7.1", "io_uring", rel.as_str()] {
                ensure(
                    why.contains(needle),
                    format!("auto_fallback lacks `{needle}`: {r}"),
                )?;
            }
        }
    }
    // The text form says it too.
    let out = sgmap(&[
        "read",
        dev(ctx),
        "--mode",
        "auto",
        "--bs",
        "16k",
        "--count",
        "2",
        "--offset",
        &offset,
    ])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = if kernel >= V7_1 {
        "--mode auto chose it"
    } else {
        "--mode auto fell back"
    };
    ensure(
        out.status.success() && text.contains("transport:") && text.contains(want),
        format!("text output: {text}"),
    )
}

/// `--mode uring` before Linux 7.1 fails naming the device, what is missing
/// and the kernel needed; on 7.1+ the same command runs.
fn uring_mode_needs_7_1(ctx: &Ctx) -> Result<(), Failed> {
    let kernel = sgmap_testkit::kernel_version().ok_or("kernel version")?;
    let d = dev(ctx);
    let args = ["read", d, "--mode", "uring", "--bs", "16k", "--count", "2"];
    if kernel >= V7_1 {
        let r = json(&[&args[..], &["--json"]].concat())?;
        return ensure_eq(r["transport"].as_str(), Some("uring"), "transport on 7.1+");
    }
    let rel = release();
    let node = sgmap::bsg_node(&ctx.device)?;
    fails_with(
        &args,
        &[
            d,
            "--mode uring",
            "io_uring",
            "Linux 7.1",
            &format!("Linux {rel}"),
            &node.display().to_string(),
        ],
    )?;
    // A usage error names the new modes.
    let out = sgmap(&["read", d, "--mode", "zero-copy"])?;
    ensure(
        String::from_utf8_lossy(&out.stderr).contains("uring, or auto"),
        "the usage error lists uring and auto",
    )
}

/// The real `cmp` of the test bed's root file system: byte for byte, or the
/// first difference as it reports it.
fn cmp(a: &Path, b: &Path) -> Result<(), Failed> {
    let cmp = Path::new("/usr/bin/cmp");
    ensure(
        cmp.exists(),
        "/usr/bin/cmp is missing in the test bed (package diffutils)",
    )?;
    let out = Command::new(cmp)
        .arg(a)
        .arg(b)
        .output()
        .map_err(|e| format!("cannot run /usr/bin/cmp: {e}"))?;
    ensure(
        out.status.success(),
        format!(
            "cmp {} {}: {}{}",
            a.display(),
            b.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

fn block_of(device: &str) -> Result<u64, Failed> {
    let info = json(&["info", device, "--json"])?;
    u(&info["capacity"]["block_size"], "block size")
}

/// Writes a pattern file of `len` bytes tagged `seed`.
fn pattern_file(
    dir: &Path,
    name: &str,
    len: usize,
    seed: u64,
    block: usize,
) -> Result<PathBuf, Failed> {
    let mut data = vec![0u8; len];
    pattern(seed, 0, block, &mut data);
    let p = dir.join(name);
    std::fs::write(&p, &data).map_err(|e| format!("write {}: {e}", p.display()))?;
    Ok(p)
}

/// `sgmap copy ARGS --json`, checked for its bytes and that every command of
/// each sg side ran in `mode` (for direct, as the kernel reports it).
fn copy_checked(args: &[&str], bytes: u64, mode: &str) -> Result<Value, Failed> {
    let mut all = vec!["copy"];
    all.extend_from_slice(args);
    all.push("--json");
    let v = json(&all)?;
    ensure_eq(
        u(&v["bytes"], "bytes")?,
        bytes,
        format!("bytes of copy {}", args.join(" ")),
    )?;
    ensure(f(&v["mb_per_s"], "mb_per_s")? > 0.0, "copy rate")?;
    for side in ["source", "destination"] {
        if v[format!("{side}_kind")] != "sg" {
            continue;
        }
        ensure_eq(
            v[format!("{side}_mode")].as_str(),
            Some(mode),
            format!("{side} mode"),
        )?;
        let commands = u(&v[format!("{side}_commands")], "commands")?;
        ensure(commands > 0, format!("{side} ran no command: {v}"))?;
        let seen = if mode == "uring" { "direct" } else { mode };
        ensure_eq(
            u(&v["modes_seen"][side][seen], "modes_seen")?,
            commands,
            format!(
                "copy {}: every {side} command ran {seen}: {v}",
                args.join(" ")
            ),
        )?;
    }
    Ok(v)
}

/// A pattern file copied onto the device and back into another file, at
/// depth 1 and 4, in each mode; the files compared with cmp. Sizes and
/// offsets are whole 4096-byte blocks, with a short last transfer.
fn copy_round_trips(ctx: &Ctx, modes: &[&str], tag: &str) -> Result<(), Failed> {
    let dir = scratch(tag)?;
    let block = block_of(dev(ctx))?;
    let len = 37 * 16384 + 8192;
    for (i, mode) in modes.iter().enumerate() {
        for depth in ["1", "4"] {
            let seed = 60 + i as u64 * 2 + u64::from(depth == "4");
            let input = pattern_file(
                &dir,
                &format!("in-{mode}-{depth}"),
                len,
                seed,
                block as usize,
            )?;
            let back = dir.join(format!("back-{mode}-{depth}"));
            // 8 MiB in, 1 MiB apart per case, in the device's own blocks.
            let at = ((8u64 << 20) + (i as u64 * 2 + u64::from(depth == "4")) * (1 << 20)) / block;
            let (seek, skip) = (format!("seek={at}"), format!("skip={at}"));
            let (iff, off) = (
                format!("if={}", path_str(&input)),
                format!("of={}", dev(ctx)),
            );
            let v = copy_checked(
                &[
                    &iff, &off, &seek, "bs=16k", "--mode", mode, "--depth", depth, "--verify",
                ],
                len as u64,
                mode,
            )?;
            ensure_eq(v["verified"].as_bool(), Some(true), "verified")?;
            ensure_eq(
                u(&v["destination_commands"], "commands")?,
                38,
                "37 full commands and a short one",
            )?;
            let count = format!("count={}", len / 16384);
            let (iff, off) = (
                format!("if={}", dev(ctx)),
                format!("of={}", path_str(&back)),
            );
            // count= whole 16k units, and the rest through --size in a second copy would
            // be a different test: here --size says it all.
            let size = len.to_string();
            copy_checked(
                &[
                    &iff, &off, &skip, "--bs", "16k", "--size", &size, "--mode", mode, "--depth",
                    depth,
                ],
                len as u64,
                mode,
            )?;
            cmp(&input, &back)?;
            // count= counts units of bs=: 37 of them, the file ends there.
            let part = dir.join(format!("part-{mode}-{depth}"));
            let off = format!("of={}", path_str(&part));
            copy_checked(
                &[
                    &iff, &off, &skip, "bs=16k", &count, "--mode", mode, "--depth", depth,
                ],
                37 * 16384,
                mode,
            )?;
            let got = std::fs::read(&part).map_err(|e| format!("read {}: {e}", part.display()))?;
            let want =
                std::fs::read(&input).map_err(|e| format!("read {}: {e}", input.display()))?;
            ensure(
                got[..] == want[..37 * 16384],
                "count=37 bs=16k copies the first 37 x 16 KiB",
            )?;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn copy_file_device_file(ctx: &Ctx) -> Result<(), Failed> {
    copy_round_trips(ctx, &MODES, "copy-rt")?;
    // of=- : the data on stdout, the same bytes a file gets.
    let dir = scratch("copy-stdout")?;
    let file = dir.join("f");
    let (iff, off) = (
        format!("if={}", dev(ctx)),
        format!("of={}", path_str(&file)),
    );
    copy_checked(&[&iff, &off, "bs=64k", "count=3"], 3 * 65536, "mmap")?;
    let out = sgmap(&["copy", &iff, "of=-", "bs=64k", "count=3", "--depth", "2"])?;
    ensure(
        out.status.success(),
        format!("copy of=-: {}", String::from_utf8_lossy(&out.stderr)),
    )?;
    let want = std::fs::read(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
    ensure(
        out.stdout == want,
        format!(
            "copy of=- wrote {} bytes unlike the file's {}",
            out.stdout.len(),
            want.len()
        ),
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    // A special file as the destination: nothing to sync, not an error.
    copy_checked(
        &[
            &format!("if={}", dev(ctx)),
            "of=/dev/null",
            "bs=64k",
            "count=16",
            "--depth",
            "4",
        ],
        16 * 65536,
        "mmap",
    )
    .map(|_| ())
}

fn copy_file_device_file_uring(ctx: &Ctx) -> Result<(), Failed> {
    copy_round_trips(ctx, &["uring"], "copy-rt-uring")
}

/// A second scsi_debug host with its own store (`per_host_store=1`), removed
/// again (and the knob restored) on drop, whatever the test did.
struct SecondDisk {
    sg: PathBuf,
    _store: Knob,
}

impl SecondDisk {
    fn add() -> Result<SecondDisk, Failed> {
        let names = || -> std::collections::BTreeSet<String> {
            std::fs::read_dir("/sys/class/scsi_generic")
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter_map(|e| e.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let before = names();
        let store = Knob::scsi_debug("per_host_store", 1)?;
        std::fs::write(format!("{SCSI_DEBUG_SYSFS}/add_host"), "1")
            .map_err(|e| format!("add a scsi_debug host: {e}"))?;
        // From here on, drop removes the host.
        let mut disk = SecondDisk {
            sg: PathBuf::new(),
            _store: store,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(n) = names().difference(&before).next() {
                let p = PathBuf::from(format!("/dev/{n}"));
                if p.exists() {
                    disk.sg = p;
                    return Ok(disk);
                }
            }
            if std::time::Instant::now() > deadline {
                return Err("the added scsi_debug host shows no new sg device in 10 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for SecondDisk {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(format!("{SCSI_DEBUG_SYSFS}/add_host"), "-1") {
            eprintln!("copy test: could not remove the added scsi_debug host: {e}");
        }
    }
}

/// Device to device: a pattern put on the test disk is copied to a second
/// scsi_debug disk (its own store) in each mode at depth 1 and 8 (and uring
/// on 7.1+), read back into a file and compared with cmp; then from one
/// range of the disk to another range of the same disk.
fn copy_device_to_device(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("copy-d2d")?;
    let block = block_of(dev(ctx))?;
    let len = 45 * 32768 + 4096;
    let input = pattern_file(&dir, "in", len, 77, block as usize)?;
    let at = (16u64 << 20) / block;
    let (skip, seek) = (format!("skip={at}"), format!("seek={at}"));
    let size = len.to_string();
    copy_checked(
        &[
            &format!("if={}", path_str(&input)),
            &format!("of={}", dev(ctx)),
            &seek,
            "--mode",
            "mmap",
        ],
        len as u64,
        "mmap",
    )?;
    let disk = SecondDisk::add()?;
    let other = path_str(&disk.sg).to_string();
    ensure_eq(block_of(&other)?, block, "the second disk's block size")?;
    let mut modes: Vec<&str> = MODES.to_vec();
    if sgmap_testkit::kernel_version().is_some_and(|v| v >= V7_1) {
        modes.push("uring");
    } else {
        eprintln!(
            "note: uring left out of device-to-device copies: Linux {} < 7.1",
            release()
        );
    }
    for (i, mode) in modes.iter().enumerate() {
        for depth in ["1", "8"] {
            let to =
                (at + (i as u64 * 2 + u64::from(depth == "8")) * (2 << 20) / block).to_string();
            let seek2 = format!("seek={to}");
            copy_checked(
                &[
                    &format!("if={}", dev(ctx)),
                    &format!("of={other}"),
                    &skip,
                    &seek2,
                    "bs=32k",
                    "--size",
                    &size,
                    "--mode",
                    mode,
                    "--depth",
                    depth,
                    "--verify",
                ],
                len as u64,
                mode,
            )?;
            let back = dir.join(format!("back-{mode}-{depth}"));
            copy_checked(
                &[
                    &format!("if={other}"),
                    &format!("of={}", path_str(&back)),
                    &format!("skip={to}"),
                    "--size",
                    &size,
                    "--mode",
                    "indirect",
                ],
                len as u64,
                "indirect",
            )?;
            cmp(&input, &back)?;
        }
    }
    // The copy landed on the other disk only: its own store, so the same
    // range of the first disk still holds what it held (zeros, or older data),
    // not the pattern.
    let mine = dir.join("mine");
    let far = format!("skip={}", at + 2 * (2 << 20) / block);
    copy_checked(
        &[
            &format!("if={}", dev(ctx)),
            &format!("of={}", path_str(&mine)),
            &far,
            "--size",
            &size,
        ],
        len as u64,
        "mmap",
    )?;
    let a = std::fs::read(&mine).map_err(|e| format!("read: {e}"))?;
    let b = std::fs::read(&input).map_err(|e| format!("read: {e}"))?;
    ensure(
        a != b,
        "the second disk shares its store with the first (per_host_store=1 did not take)",
    )?;
    drop(disk);
    // One disk, two ranges, sgmap's deep mmap on both sides.
    let to = format!("seek={}", at + (64u64 << 20) / block);
    copy_checked(
        &[
            &format!("if={}", dev(ctx)),
            &format!("of={}", dev(ctx)),
            &skip,
            &to,
            "--size",
            &size,
            "--depth",
            "8",
            "--verify",
        ],
        len as u64,
        "mmap",
    )?;
    let back = dir.join("same");
    copy_checked(
        &[
            &format!("if={}", dev(ctx)),
            &format!("of={}", path_str(&back)),
            &format!("skip={}", at + (64u64 << 20) / block),
            "--size",
            &size,
        ],
        len as u64,
        "mmap",
    )?;
    cmp(&input, &back)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Runs `sgmap copy ARGS` with `stdin` bytes on its standard input; it must
/// fail with exit status 1. Returns stderr.
fn copy_fails(args: &[&str], stdin: Option<&[u8]>) -> Result<String, Failed> {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = Command::new(SGMAP)
        .arg("copy")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {SGMAP}: {e}"))?;
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data)
            .map_err(|e| format!("feed stdin: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("wait: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    ensure_eq(
        out.status.code(),
        Some(1),
        format!("exit status of sgmap copy {}: {err}", args.join(" ")),
    )?;
    Ok(err)
}

fn needles(err: &str, want: &[&str]) -> Result<(), Failed> {
    for n in want {
        ensure(err.contains(n), format!("stderr lacks `{n}`: {err}"))?;
    }
    Ok(())
}

/// A copy that meets a medium error on its source (scsi_debug fails reads
/// of LBAs 0x1234..+10), and one whose stdin ends early, stop with exit 1,
/// say what failed where, and how much is known good on the destination;
/// that much really is there.
fn copy_stopped_mid_way(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("copy-stop")?;
    let block = block_of(dev(ctx))?;
    let bs = 65536u64;
    let per = bs / block;
    // The failing command: the one whose blocks hold MEDIUM_ERR_LBA.
    let bad = sdebug_opts::MEDIUM_ERR_LBA / per * per;
    let good = bad * block;
    let count = format!("count={}", bad / per + 4);
    {
        let _fault = Knob::scsi_debug("opts", sdebug_opts::MEDIUM_ERR)?;
        for depth in ["1", "8"] {
            let out = dir.join(format!("out-{depth}"));
            let err = copy_fails(
                &[
                    &format!("if={}", dev(ctx)),
                    &format!("of={}", path_str(&out)),
                    "bs=64k",
                    &count,
                    "--depth",
                    depth,
                ],
                None,
            )?;
            needles(
                &err,
                &[
                    "stopped",
                    &format!("reading {} at LBA {bad} failed", dev(ctx)),
                    "READ",
                    &format!("{good} of {} bytes", (bad / per + 4) * bs),
                    "known good",
                    &format!("skip={bad} seek={} --size {}", bad, 4 * bs),
                ],
            )?;
            let len = std::fs::metadata(&out)
                .map_err(|e| format!("stat: {e}"))?
                .len();
            ensure_eq(
                len,
                good,
                format!("depth {depth}: bytes in the file of a copy that stopped"),
            )?;
        }
    }
    // What the file holds is the device's data: the same blocks read again.
    let again = dir.join("again");
    copy_checked(
        &[
            &format!("if={}", dev(ctx)),
            &format!("of={}", path_str(&again)),
            "bs=64k",
            &format!("count={}", bad / per),
        ],
        good,
        "mmap",
    )?;
    cmp(&again, &dir.join("out-8"))?;
    // stdin ending early, with four direct writes in flight: the writes
    // before the end are confirmed, the error names stdin and the byte.
    let at = (32u64 << 20) / block;
    let data = {
        let mut d = vec![0u8; 300 * 1024];
        pattern(91, 0, block as usize, &mut d);
        d
    };
    let err = copy_fails(
        &[
            "if=-",
            &format!("of={}", dev(ctx)),
            &format!("seek={at}"),
            "bs=64k",
            "count=8",
            "--mode",
            "direct",
            "--depth",
            "4",
        ],
        Some(&data),
    )?;
    needles(
        &err,
        &[
            "reading - failed",
            "stdin",
            "ended early",
            &format!("{} of {} bytes", 4 * bs, 8 * bs),
            &format!("LBAs {at}..={}", at + 4 * per - 1),
        ],
    )?;
    let back = dir.join("stdin-back");
    copy_checked(
        &[
            &format!("if={}", dev(ctx)),
            &format!("of={}", path_str(&back)),
            &format!("skip={at}"),
            "bs=64k",
            "count=4",
        ],
        4 * bs,
        "mmap",
    )?;
    let got = std::fs::read(&back).map_err(|e| format!("read: {e}"))?;
    ensure(
        got[..] == data[..4 * bs as usize],
        "the four confirmed transfers hold stdin's bytes",
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// What sgmap copy refuses, with what it says.
fn copy_refusals(ctx: &Ctx) -> Result<(), Failed> {
    let dir = scratch("copy-refuse")?;
    let d = dev(ctx);
    let block = block_of(d)?;
    let a = pattern_file(&dir, "a", 8192, 1, block as usize)?;
    let iff = format!("if={}", path_str(&a));
    let off = format!("of={}", dir.join("b").display());
    needles(
        &copy_fails(&[&iff, &off], None)?,
        &["neither side is an sg device", "use cp or dd"],
    )?;
    let info = json(&["info", d, "--json"])?;
    let blocks = u(&info["capacity"]["blocks"], "blocks")?;
    needles(
        &copy_fails(
            &[
                &format!("if={d}"),
                &off,
                &format!("skip={}", blocks - 1),
                "count=2",
                "bs=64k",
            ],
            None,
        )?,
        &["past the end of", d, "skip="],
    )?;
    needles(
        &copy_fails(
            &[&format!("if={d}"), &format!("of={d}"), "seek=1", "count=2"],
            None,
        )?,
        &["overlap on the same device"],
    )?;
    needles(
        &copy_fails(&["if=-", &format!("of={d}")], None)?,
        &["no known size", "count="],
    )?;
    needles(
        &copy_fails(&[&format!("if={d}"), &off, "count=0"], None)?,
        &["count=0", "copies nothing"],
    )?;
    // An existing file is written in place from seek=, never truncated (as
    // sg_dd does): its tail beyond the copy stays.
    let img = pattern_file(&dir, "img", 64 * block as usize, 9, block as usize)?;
    let before = std::fs::read(&img).map_err(|e| format!("read img: {e}"))?;
    copy_checked(
        &[
            &format!("if={d}"),
            &format!("of={}", path_str(&img)),
            "seek=2",
            "count=1",
            &format!("bs={block}"),
        ],
        block,
        "mmap",
    )?;
    let after = std::fs::read(&img).map_err(|e| format!("read img: {e}"))?;
    let b = block as usize;
    ensure_eq(after.len(), before.len(), "length of a file copied into")?;
    ensure(
        after[..2 * b] == before[..2 * b] && after[3 * b..] == before[3 * b..],
        "the bytes of the file around the copied block changed",
    )?;
    needles(
        &copy_fails(&[&format!("if={d}"), "of=-", "count=1", "--json"], None)?,
        &["where --json goes too"],
    )?;
    needles(
        &copy_fails(&[&format!("if={d}"), "of=-", "count=1", "--verify"], None)?,
        &["cannot be read back"],
    )?;
    needles(
        &copy_fails(&[&format!("if={d}"), &off, "bs=100"], None)?,
        &["not a whole number of", "blocks"],
    )?;
    needles(
        &copy_fails(&[d, &off], None)?,
        &["is not an operand", "if=SRC of=DST"],
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
