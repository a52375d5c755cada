//! The C and C++ examples in `ffi-examples/`: built on the host against the
//! installed library (`cargo xtask dist` layout, found through pkg-config),
//! and run inside the test bed by `cargo xtask test` (or `cargo xtask ffi`).
//!
//! Each program is built with `-Wall -Wextra -Wpedantic -Werror` against the
//! shared and the static library, plainly and with sanitizers. Each prints
//! what it checked and exits non-zero on any mismatch, so a job passes when
//! its exit status is 0.
//!
//! Sanitizers and the test bed: AddressSanitizer cannot run inside
//! user-mode Linux. Its x86-64 shadow memory must sit at
//! [0x7fff8000, 0x10007fff7fff], but a UML process's address space ends at
//! 0x7fc0000000 (512 GiB) with the stack and vdso right below that, inside
//! the shadow range: ASan aborts with "Shadow memory range interleaves with
//! an existing memory mapping" (PIE or not; no ASAN_OPTIONS changes the
//! layout). So inside the guest the programs run
//! - as built, against each library,
//! - with UndefinedBehaviorSanitizer (no shadow memory; `-fno-sanitize-recover`
//!   makes any report fatal), against each library,
//! - under Valgrind's memcheck (which works in UML) for memory errors and
//!   definite leaks, against the shared library,
//!
//! and the `-fsanitize=address,undefined` builds run on the host, where
//! only the device-free checks of `bad_input.c` can run (there is no sg
//! device there). `ASAN_OPTIONS=allocator_may_return_null=1` lets the
//! deliberate huge allocation fail with ENOMEM as it does without ASan.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::dist::{self, Installed};
use crate::testbed::{Job, Phase, DEFAULT_SCSI_DEBUG};
use crate::Result;

/// scsi_debug's live option bits; `2` makes reads of LBA 0x1234 onward fail
/// with MEDIUM ERROR (drivers/scsi/scsi_debug.c, SDEBUG_OPT_MEDIUM_ERR).
const SCSI_DEBUG_OPTS: &str = "/sys/bus/pseudo/drivers/scsi_debug/opts";

/// What a program needs around it in the test bed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    /// Nothing: any sg device will do.
    Plain,
    /// scsi_debug's medium error armed (opts=2) while it runs, then disarmed.
    MediumError,
}

/// The examples, and what each needs. Every source in `ffi-examples/` must
/// be listed: an unlisted one is an error, never silently unbuilt.
const PROGRAMS: &[(&str, Setup)] = &[
    ("inquiry.c", Setup::Plain),
    ("mmap_read.c", Setup::Plain),
    ("direct_write.c", Setup::Plain),
    ("scsi_error.c", Setup::MediumError),
    ("queue_pool.c", Setup::Plain),
    ("bad_input.c", Setup::Plain),
    ("threads.cpp", Setup::Plain),
    ("mapped_rules.c", Setup::Plain),
    ("signals.c", Setup::Plain),
    ("uring.c", Setup::Plain),
];

/// The program whose device-free checks also run on the host with ASan.
const HOST_PROGRAM: &str = "bad_input.c";

/// How a program is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Shared,
    Static,
    SharedUbsan,
    StaticUbsan,
    SharedAsan,
    StaticAsan,
}

const VARIANTS: [Variant; 6] = [
    Variant::Shared,
    Variant::Static,
    Variant::SharedUbsan,
    Variant::StaticUbsan,
    Variant::SharedAsan,
    Variant::StaticAsan,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Shared => "shared",
            Variant::Static => "static",
            Variant::SharedUbsan => "shared+ubsan",
            Variant::StaticUbsan => "static+ubsan",
            Variant::SharedAsan => "shared+asan",
            Variant::StaticAsan => "static+asan",
        }
    }

    fn is_static(self) -> bool {
        matches!(
            self,
            Variant::Static | Variant::StaticUbsan | Variant::StaticAsan
        )
    }

    fn sanitizer_flags(self) -> &'static [&'static str] {
        match self {
            Variant::Shared | Variant::Static => &[],
            Variant::SharedUbsan | Variant::StaticUbsan => {
                &["-fsanitize=undefined", "-fno-sanitize-recover=all"]
            }
            Variant::SharedAsan | Variant::StaticAsan => &[
                "-fsanitize=address,undefined",
                "-fno-sanitize-recover=all",
                "-fno-omit-frame-pointer",
            ],
        }
    }
}

/// The warnings every example must build without.
const STRICT: &[&str] = &["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-O2", "-g"];

/// The built examples.
#[derive(Debug)]
pub(crate) struct Built {
    /// (source file name, setup, variant, executable).
    programs: Vec<(String, Setup, Variant, PathBuf)>,
    /// `ffi-examples/valgrind.supp`.
    valgrind_suppressions: PathBuf,
}

fn examples_dir(ws: &Path) -> PathBuf {
    ws.join("ffi-examples")
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Runs pkg-config against the installed `sgmap.pc`.
fn pkg_config(inst: &Installed, args: &[&str]) -> Result<Vec<String>> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("sgmap")
        .env("PKG_CONFIG_PATH", &inst.pkgconfig_dir)
        .output()
        .map_err(|e| format!("cannot run pkg-config ({e}); install it (Debian: pkg-config)"))?;
    if !out.status.success() {
        return Err(format!(
            "pkg-config {} sgmap failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// Checks that the shared library carries the SONAME the layout links to.
fn check_soname(inst: &Installed) -> Result<()> {
    let lib = inst.libdir.join("libsgmap.so");
    let out = Command::new("readelf")
        .arg("-d")
        .arg(&lib)
        .output()
        .map_err(|e| format!("cannot run readelf ({e})"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let want = format!("[{}]", inst.soname);
    if !text
        .lines()
        .any(|l| l.contains("(SONAME)") && l.contains(&want))
    {
        return Err(format!(
            "{} does not carry the SONAME {}: crates/capi/build.rs and xtask/src/dist.rs disagree",
            lib.display(),
            inst.soname
        )
        .into());
    }
    Ok(())
}

/// The functions the header declares: `name(` at the end of a line that
/// starts a declaration.
fn header_functions(header: &str) -> std::collections::BTreeSet<String> {
    header
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()) && l.contains('('))
        .filter_map(|l| {
            let before = &l[..l.find('(')?];
            let name = before.rsplit([' ', '*']).next()?;
            name.starts_with("sgmap_").then(|| name.to_string())
        })
        .collect()
}

/// Checks that the shared library exports exactly the functions the header
/// declares: nothing missing, nothing extra.
fn check_exports(inst: &Installed) -> Result<()> {
    let lib = inst.libdir.join("libsgmap.so");
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(&lib)
        .output()
        .map_err(|e| format!("cannot run nm ({e})"))?;
    let exported: std::collections::BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, kind, name) = (f.next()?, f.next()?, f.next()?);
            (kind == "T").then(|| name.to_string())
        })
        .collect();
    let header = std::fs::read_to_string(inst.prefix.join("include/sgmap.h"))?;
    let declared = header_functions(&header);
    let missing: Vec<_> = declared.difference(&exported).collect();
    let extra: Vec<_> = exported.difference(&declared).collect();
    if !missing.is_empty() || !extra.is_empty() || declared.is_empty() {
        return Err(format!(
            "libsgmap.so and sgmap.h disagree: declared but not exported {missing:?}; exported but \
             not declared {extra:?}"
        )
        .into());
    }
    Ok(())
}

/// Installs the library (debug build) under the target folder and builds
/// every example in every variant. Builds only what is out of date.
pub(crate) fn build(ws: &Path) -> Result<Built> {
    let base = crate::target_dir(ws).join("ffi");
    let inst = dist::install(ws, &base.join("prefix"), false)?;
    check_soname(&inst)?;
    check_exports(&inst)?;
    let bin = base.join("bin");
    std::fs::create_dir_all(&bin)?;
    let src_dir = examples_dir(ws);
    for entry in std::fs::read_dir(&src_dir)
        .map_err(|e| format!("cannot read {}: {e}", src_dir.display()))?
    {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if (name.ends_with(".c") || name.ends_with(".cpp"))
            && !PROGRAMS.iter().any(|(p, _)| *p == name)
        {
            return Err(format!(
                "ffi-examples/{name} is not listed in xtask/src/ffi.rs PROGRAMS; list it so it is built and run"
            )
            .into());
        }
    }
    let cflags = pkg_config(&inst, &["--cflags"])?;
    let shared_libs = pkg_config(&inst, &["--libs"])?;
    // The static link: the archive instead of -lsgmap, plus its native libraries.
    let static_libs: Vec<String> = pkg_config(&inst, &["--static", "--libs"])?
        .into_iter()
        .filter(|a| !a.starts_with("-L"))
        .map(|a| {
            if a == "-lsgmap" {
                inst.static_lib.display().to_string()
            } else {
                a
            }
        })
        .collect();
    let inputs: Vec<PathBuf> = vec![
        src_dir.join("check.h"),
        inst.prefix.join("include/sgmap.h"),
        inst.static_lib.clone(),
        // metadata() follows the symlink to the real file.
        inst.libdir.join("libsgmap.so"),
    ];
    let newest_input = inputs.iter().filter_map(|p| mtime(p)).max();
    let mut programs = Vec::new();
    let mut todo = Vec::new();
    for &(name, setup) in PROGRAMS {
        let src = src_dir.join(name);
        let (stem, cpp) = match name.strip_suffix(".cpp") {
            Some(s) => (s, true),
            None => (name.trim_end_matches(".c"), false),
        };
        for variant in VARIANTS {
            let exe = bin.join(format!("{stem}-{}", variant.name().replace('+', "-")));
            let fresh = match (mtime(&exe), mtime(&src), newest_input) {
                (Some(e), Some(s), Some(i)) => e > s && e > i,
                _ => false,
            };
            if !fresh {
                let mut cmd = Command::new(if cpp { "c++" } else { "cc" });
                cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
                    .args(STRICT)
                    .args(variant.sanitizer_flags())
                    .arg("-I")
                    .arg(&src_dir)
                    .args(&cflags)
                    .arg(&src)
                    .arg("-o")
                    .arg(&exe);
                if cpp {
                    cmd.arg("-pthread");
                }
                if variant.is_static() {
                    cmd.args(&static_libs);
                } else {
                    cmd.args(&shared_libs)
                        .arg(format!("-Wl,-rpath,{}", inst.libdir.display()));
                }
                todo.push((format!("{name} ({})", variant.name()), exe.clone(), cmd));
            }
            programs.push((name.to_string(), setup, variant, exe));
        }
    }
    if !todo.is_empty() {
        eprintln!("xtask: building {} example binaries", todo.len());
    }
    compile_all(todo)?;
    Ok(Built {
        programs,
        valgrind_suppressions: src_dir.join("valgrind.supp"),
    })
}

/// Runs the compiler commands, as many at once as there are CPUs. A failed
/// build removes its (stale) output so the next run builds it again.
fn compile_all(todo: Vec<(String, PathBuf, Command)>) -> Result<()> {
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut pending = todo.into_iter();
    let mut running: Vec<(String, PathBuf, std::process::Child)> = Vec::new();
    let mut failure = None;
    loop {
        while failure.is_none() && running.len() < jobs {
            let Some((label, exe, mut cmd)) = pending.next() else {
                break;
            };
            let child = cmd.spawn().map_err(|e| {
                format!("cannot run the compiler for {label}: {e} (install gcc and g++)")
            })?;
            running.push((label, exe, child));
        }
        if running.is_empty() {
            break;
        }
        let (label, exe, mut child) = running.remove(0);
        let status = child.wait()?;
        if !status.success() {
            let _ = std::fs::remove_file(&exe);
            failure.get_or_insert(format!(
                "building {label} failed ({status}); see the compiler's messages above"
            ));
        }
    }
    match failure {
        Some(f) => Err(f.into()),
        None => Ok(()),
    }
}

fn valgrind_available() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A guest job running `argv` with `setup` around it.
fn job(name: String, setup: Setup, argv: Vec<String>, env: Vec<(String, String)>) -> Job {
    let (argv, mut env) = match setup {
        Setup::Plain => (argv, env),
        Setup::MediumError => {
            // The shell arms the fault, runs the program, and disarms it
            // whatever the program did.
            let script = format!(
                "echo 2 > {SCSI_DEBUG_OPTS} || exit 97; \"$@\"; rc=$?; echo 0 > {SCSI_DEBUG_OPTS}; exit $rc"
            );
            let mut a = vec!["/bin/sh".into(), "-c".into(), script, "sh".into()];
            a.extend(argv);
            let mut env = env;
            env.push(("SGMAP_MEDIUM_ERROR_LBA".into(), "0x1234".into()));
            (a, env)
        }
    };
    env.push(("LC_ALL".into(), "C".into()));
    Job {
        name,
        argv,
        env,
        timeout_s: 300,
    }
}

/// The guest jobs for the built examples whose name matches `filter` (all
/// when it is empty).
pub(crate) fn jobs(built: &Built, filter: &[String]) -> Vec<Job> {
    let valgrind = valgrind_available();
    let supp = &built.valgrind_suppressions;
    if !valgrind {
        eprintln!("xtask: valgrind is not installed: the examples' memory checks in the test bed are skipped (Debian: apt-get install valgrind)");
    }
    let mut jobs = Vec::new();
    for (name, setup, variant, exe) in &built.programs {
        let exe = exe.display().to_string();
        let mut add = |label: &str, argv: Vec<String>, env: Vec<(String, String)>| {
            let job_name = format!("ffi/{name} [{label}]");
            if filter.is_empty() || filter.iter().any(|f| job_name.contains(f.as_str())) {
                jobs.push(job(job_name, *setup, argv, env));
            }
        };
        match variant {
            Variant::Shared => {
                add("shared", vec![exe.clone()], vec![]);
                if valgrind {
                    let supp = format!("--suppressions={}", supp.display());
                    let argv = [
                        "valgrind",
                        "--quiet",
                        &supp,
                        "--error-exitcode=99",
                        "--leak-check=full",
                        "--errors-for-leak-kinds=definite",
                        "--show-leak-kinds=definite",
                        &exe,
                    ];
                    add(
                        "shared+valgrind",
                        argv.iter().map(|s| s.to_string()).collect(),
                        vec![],
                    );
                }
            }
            Variant::Static => add("static", vec![exe], vec![]),
            Variant::SharedUbsan | Variant::StaticUbsan => add(
                variant.name(),
                vec![exe],
                vec![(
                    "UBSAN_OPTIONS".into(),
                    "print_stacktrace=1:halt_on_error=1".into(),
                )],
            ),
            // ASan cannot run in the guest (see the module docs).
            Variant::SharedAsan | Variant::StaticAsan => {}
        }
    }
    jobs
}

/// The name of the phase the examples run in.
pub(crate) const PHASE: &str = "ffi";

/// The phase the examples run in: a fresh scsi_debug disk of the default kind.
pub(crate) fn phase(jobs: Vec<Job>) -> Phase {
    Phase {
        name: PHASE.into(),
        scsi_debug: DEFAULT_SCSI_DEBUG.into(),
        allow_dio: true,
        jobs,
    }
}

/// Runs the ASan builds of the device-free checks on the host. Fails when
/// any of them does.
pub(crate) fn host_checks(built: &Built) -> Result<()> {
    for (name, _, variant, exe) in &built.programs {
        if name != HOST_PROGRAM || !matches!(variant, Variant::SharedAsan | Variant::StaticAsan) {
            continue;
        }
        let out = Command::new(exe)
            .env_remove("SGMAP_TEST_DEVICE")
            .env(
                "ASAN_OPTIONS",
                "allocator_may_return_null=1:detect_leaks=1:abort_on_error=0",
            )
            .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let checks = text.lines().filter(|l| l.starts_with("ok ")).count();
        if !out.status.success() {
            return Err(format!(
                "ffi/{name} [{}] failed on the host ({}):\n{text}",
                variant.name(),
                out.status
            )
            .into());
        }
        eprintln!(
            "xtask: ffi/{name} [{}] on the host (no device): {checks} checks passed",
            variant.name()
        );
    }
    Ok(())
}

/// Runs guest jobs on this machine against a real device (`cargo xtask test
/// --device`); jobs that turn scsi_debug knobs are left out.
pub(crate) fn run_on_host(
    jobs: &[Job],
    device: &str,
) -> Result<Vec<(String, Option<i32>, String)>> {
    let mut results = Vec::new();
    for j in jobs {
        if j.argv.first().is_some_and(|a| a == "/bin/sh") {
            eprintln!(
                "xtask: {} needs scsi_debug's fault injection: left out with --device",
                j.name
            );
            continue;
        }
        let out = Command::new(&j.argv[0])
            .args(&j.argv[1..])
            .envs(j.env.iter().map(|(k, v)| (k, v)))
            .env("SGMAP_TEST_DEVICE", device)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", j.argv[0]))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        results.push((j.name.clone(), out.status.code(), text));
    }
    Ok(results)
}

/// `cargo xtask ffi [FILTER]`: builds the examples and runs them in the test
/// bed, printing each one's output.
pub(crate) fn ffi(ws: &Path, args: crate::cli::FfiArgs) -> Result<()> {
    let kernels = args.kernel.kernels.0;
    let built = build(ws)?;
    host_checks(&built)?;
    let jobs = jobs(&built, &args.filter);
    if jobs.is_empty() {
        return Err("no example matches the filter".into());
    }
    for which in kernels {
        ffi_on(ws, which, &jobs)?;
    }
    Ok(())
}

/// The example jobs in one boot of `which` kernel.
fn ffi_on(ws: &Path, which: crate::testbed::Kernel, jobs: &[Job]) -> Result<()> {
    let jobs = jobs.to_vec();
    let tb = crate::testbed::Testbed::ensure(ws, which)?;
    let report = tb.boot(&[phase(jobs)], Duration::from_secs(1800))?;
    eprintln!(
        "xtask: the test bed ran {} example jobs in {:.1}s",
        report.jobs.len(),
        report.elapsed.as_secs_f64()
    );
    let mut failed = 0;
    for j in &report.jobs {
        println!(
            "\n===== {} (exit {}) =====\n{}",
            j.name,
            j.status.map_or("none".into(), |s| s.to_string()),
            j.output.trim_end()
        );
        if j.status != Some(0) {
            failed += 1;
        }
    }
    println!(
        "\nffi: {} passed, {failed} failed",
        report.jobs.len() - failed
    );
    if failed > 0 {
        return Err(format!("{failed} example run(s) failed").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles a file that includes only sgmap.h, as C and as C++.
    fn compile_alone(compiler: &str, std: &str, ext: &str) {
        let ws = crate::workspace_root();
        let dir = crate::target_dir(&ws).join("ffi").join("header-check");
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join(format!("alone.{ext}"));
        std::fs::write(
            &src,
            "#include <sgmap.h>\n\
             int main(void) {\n\
             \x20   sgmap_outcome o;\n\
             \x20   (void)o;\n\
             \x20   return sgmap_version_number() == SGMAP_VERSION_NUMBER ? 0 : 1;\n\
             }\n",
        )
        .unwrap();
        let out = Command::new(compiler)
            .arg(std)
            .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"])
            .arg("-I")
            .arg(ws.join("include"))
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
        assert!(
            out.status.success(),
            "include/sgmap.h does not compile on its own with {compiler} {std}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn header_functions_are_found() {
        let h = "/** doc (with parens) */\nsgmap_result sgmap_open(const char *p);\n\
                 const char *sgmap_version(void);\nvoid sgmap_close(struct sgmap_device *dev);\n\
                 #define SGMAP_X(a) a\n";
        let names: Vec<_> = header_functions(h).into_iter().collect();
        assert_eq!(names, ["sgmap_close", "sgmap_open", "sgmap_version"]);
    }

    #[test]
    fn header_compiles_alone_as_c() {
        compile_alone("cc", "-std=c99", "c");
        compile_alone("cc", "-std=c11", "c");
    }

    #[test]
    fn header_compiles_alone_as_cpp() {
        compile_alone("c++", "-std=c++11", "cpp");
        compile_alone("c++", "-std=c++17", "cpp");
    }

    #[test]
    fn every_example_runs_in_the_guest_in_each_safe_variant() {
        let built = Built {
            programs: PROGRAMS
                .iter()
                .flat_map(|(n, s)| {
                    VARIANTS
                        .iter()
                        .map(move |v| (n.to_string(), *s, *v, PathBuf::from(format!("/x/{n}"))))
                })
                .collect(),
            valgrind_suppressions: PathBuf::from("/x/valgrind.supp"),
        };
        let jobs = jobs(&built, &[]);
        for (name, _) in PROGRAMS {
            for label in ["shared", "static", "shared+ubsan", "static+ubsan"] {
                let want = format!("ffi/{name} [{label}]");
                assert!(jobs.iter().any(|j| j.name == want), "{want} missing");
            }
        }
        assert!(!jobs.iter().any(|j| j.name.contains("asan")));
        let medium = jobs
            .iter()
            .find(|j| j.name == "ffi/scsi_error.c [shared]")
            .unwrap();
        assert_eq!(medium.argv[0], "/bin/sh");
        assert!(medium.argv[2].contains("echo 2 >") && medium.argv[2].contains("echo 0 >"));
        let filtered = super::jobs(&built, &["mmap".to_string()]);
        assert!(!filtered.is_empty() && filtered.iter().all(|j| j.name.contains("mmap")));
    }
}
