//! The command line of `cargo xtask`, parsed by clap: one struct per
//! command, so `--help` and the parser cannot drift apart.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::testbed::Kernel;

/// sgmap's project automation.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "sgmap's project automation: the test bed, tests, benches, codegen and packaging",
    after_help = "--kernel 6.1|6.12|newest|all (or a comma-separated list) picks the test bed's kernels \
                  (test: all by default; the others: 6.1)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

/// One `cargo xtask` command.
#[derive(Debug, Subcommand)]
pub(crate) enum Cmd {
    /// Host tests, then every in-kernel test binary inside the test bed on
    /// every kernel; ends with `in-kernel: N passed, M failed, K skipped`.
    Test(TestArgs),
    /// Boot the test bed and run one command in it.
    Testbed(TestbedArgs),
    /// The three transfer modes on the built-in scsi_debug disk.
    Demo(KernelArgs),
    /// Millions of mixed commands, every byte checked.
    Soak(SoakArgs),
    /// The criterion benches inside the test bed (reports to target/criterion).
    Bench(BenchArgs),
    /// sgmap's modes beside sg3_utils and fio in one boot (to target/compare).
    Compare(CompareArgs),
    /// The cargo-fuzz targets under fuzz/, a bounded time each.
    Fuzz(FuzzArgs),
    /// Regenerate (or check) the C header include/sgmap.h.
    Codegen(CodegenArgs),
    /// libsgmap.so, libsgmap.a, sgmap.h and sgmap.pc under a prefix.
    Dist(DistArgs),
    /// Build the C and C++ examples and run them inside the test bed.
    Ffi(FfiArgs),
    /// Fetch the newest kernel's user-space headers (sid's linux-libc-dev)
    /// for the bsg_uring_cmd layout test.
    Headers,
    /// The source tree's rules: where unsafe and libc may appear, the lints
    /// every crate inherits (also run by `test`).
    Tidy,
}

/// `--kernel`: the test bed's kernels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Kernels(pub Vec<Kernel>);

impl std::str::FromStr for Kernels {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kernel::parse(s).map(Kernels).map_err(|e| e.to_string())
    }
}

/// Commands that run on one or more test-bed kernels (6.1 unless told).
#[derive(Debug, Args)]
pub(crate) struct KernelArgs {
    /// 6.1, 6.12, newest or all, or a comma-separated list.
    #[arg(long = "kernel", default_value = "6.1")]
    pub kernels: Kernels,
}

/// `cargo xtask test`.
#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// 6.1, 6.12, newest or all, or a comma-separated list.
    #[arg(long = "kernel", default_value = "all")]
    pub kernels: Kernels,
    /// Run the in-kernel tests against this real sg device instead of the
    /// test bed (tests that need scsi_debug's knobs are skipped).
    #[arg(long)]
    pub device: Option<String>,
    /// Skip the host tests.
    #[arg(long)]
    pub kernel_only: bool,
    /// Run only the in-kernel tests whose names contain one of these.
    pub filter: Vec<String>,
}

/// `cargo xtask testbed`.
#[derive(Debug, Args)]
pub(crate) struct TestbedArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// scsi_debug's module parameters.
    #[arg(long, default_value = crate::testbed::DEFAULT_SCSI_DEBUG)]
    pub scsi_debug: String,
    /// Leave the sg driver's allow_dio off.
    #[arg(long)]
    pub no_dio: bool,
    /// Seconds the command may run.
    #[arg(long, default_value_t = crate::test::JOB_TIMEOUT_S, value_parser = clap::value_parser!(u32).range(1..))]
    pub timeout: u32,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// `cargo xtask soak`.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Commands to send (the soak's own default when absent).
    #[arg(long)]
    pub commands: Option<u64>,
}

/// `cargo xtask bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Criterion bench filters.
    pub filters: Vec<String>,
}

/// `cargo xtask compare`.
#[derive(Debug, Args)]
pub(crate) struct CompareArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Interleaved rounds; figures are medians over them.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Target length of one run, in milliseconds.
    #[arg(long, default_value_t = 150, value_parser = clap::value_parser!(u32).range(1..))]
    pub run_ms: u32,
    /// Transfer sizes of the sync phase.
    #[arg(long, default_value = "4k,64k,256k,1m,max")]
    pub sizes: String,
    /// Three rounds of 80 ms runs (about half the time).
    #[arg(long)]
    pub quick: bool,
}

/// `cargo xtask fuzz`.
#[derive(Debug, Args)]
pub(crate) struct FuzzArgs {
    /// Seconds to run each target.
    #[arg(long, default_value_t = crate::fuzz::DEFAULT_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub seconds: u64,
    /// none (the code under fuzz is safe Rust), address, leak, memory or thread.
    #[arg(long, default_value = "none")]
    pub sanitizer: String,
    /// Merge what was found into `fuzz/corpus/<target>/` and minimise it.
    #[arg(long)]
    pub keep: bool,
    /// Targets (all when none).
    pub targets: Vec<String>,
}

/// `cargo xtask codegen`.
#[derive(Debug, Args)]
pub(crate) struct CodegenArgs {
    /// Fail if include/sgmap.h is not what the code generates, write nothing.
    #[arg(long)]
    pub check: bool,
}

/// `cargo xtask dist`.
#[derive(Debug, Args)]
pub(crate) struct DistArgs {
    /// Install under this folder (default: target/dist).
    #[arg(long)]
    pub prefix: Option<PathBuf>,
    /// A debug build instead of release.
    #[arg(long)]
    pub debug: bool,
}

/// `cargo xtask ffi`.
#[derive(Debug, Args)]
pub(crate) struct FfiArgs {
    #[command(flatten)]
    pub kernel: KernelArgs,
    /// Run only the example jobs whose names contain one of these.
    pub filter: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_parses_its_flags() {
        let parse = |s: &str| Cli::try_parse_from(s.split_whitespace());
        match parse("xtask test --kernel 6.12,newest --kernel-only integrity")
            .unwrap()
            .command
        {
            Cmd::Test(t) => {
                assert_eq!(t.kernels.0, [Kernel::V6_12, Kernel::Newest]);
                assert!(t.kernel_only && t.device.is_none());
                assert_eq!(t.filter, ["integrity"]);
            }
            other => panic!("{other:?}"),
        }
        match parse("xtask test").unwrap().command {
            Cmd::Test(t) => assert_eq!(t.kernels.0, Kernel::ALL),
            other => panic!("{other:?}"),
        }
        match parse("xtask testbed --timeout 30 -- /bin/sh -c true")
            .unwrap()
            .command
        {
            Cmd::Testbed(t) => {
                assert_eq!(t.command, ["/bin/sh", "-c", "true"]);
                assert_eq!((t.timeout, t.no_dio), (30, false));
                assert_eq!(t.kernel.kernels.0, [Kernel::V6_1]);
            }
            other => panic!("{other:?}"),
        }
        match parse("xtask compare --quick --kernel all").unwrap().command {
            Cmd::Compare(c) => {
                assert!(c.quick && c.rounds == 7 && c.kernel.kernels.0 == Kernel::ALL)
            }
            other => panic!("{other:?}"),
        }
        match parse("xtask soak --commands 5").unwrap().command {
            Cmd::Soak(s) => assert_eq!(s.commands, Some(5)),
            other => panic!("{other:?}"),
        }
        // What the hand parser used to let through, or reject with its own words.
        for bad in [
            "xtask testbed",
            "xtask testbed --timeout 0 -- true",
            "xtask compare --rounds 0",
            "xtask test --kernel 5.10",
            "xtask codegen --bogus",
            "xtask headers extra",
            "xtask bench --bogus",
        ] {
            assert!(parse(bad).is_err(), "{bad} parsed");
        }
    }
}
