//! `sgmap`: list, inspect, read, write, copy and benchmark Linux SCSI generic (sg)
//! devices, moving data in mmap-ed, direct or indirect IO and saying which
//! really happened.
//!
//! ```text
//! sgmap list                                   # sg devices, block device, vendor, model, type
//! sgmap info /dev/sg0                          # inquiry, capacity, driver, reserved buffer, allow_dio
//! sgmap read /dev/sg0 --mode mmap --bs 1m --size 64m --out disk.img
//! sgmap write /dev/sg0 --mode direct --bs 256k --in disk.img --verify
//! sgmap copy if=/dev/sg0 of=/dev/sg1 bs=1m --mode mmap --depth 8 --verify
//! sgmap read /dev/sg0 --mode indirect --depth 16 --bs 64k --count 1000 --json
//! sgmap bench /dev/sg0 --peers --json --plot bench.png > bench.json  # modes, depths, peers, floors
//! sgmap plot bench.json --plot bench.svg --plot-ratios ratios.png  # the pictures again
//! ```
//!
//! Every data command takes `--json` (one document on stdout) and shows a
//! progress bar on a terminal. Exit status: 0 on success, 1 when a command
//! failed (the message names the device and the command and says what to
//! do), 2 for a usage error.

mod bench;
mod copy;
mod info;
mod peers;
mod plot;
mod progress;
mod report;
mod size;
mod xfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Linux SCSI generic IO with mmap-ed reserved buffers, direct IO that reports
/// whether it happened, and indirect IO.
#[derive(Debug, Parser)]
#[command(name = "sgmap", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// List sg devices with their block device, vendor, model and type.
    List {
        /// Print JSON (an array of devices) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what a device reports: inquiry, capacity, driver version, reserved
    /// buffer limits, allow_dio and the largest transfer.
    Info {
        /// The sg device, e.g. /dev/sg0.
        device: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read from a device, optionally into a file.
    Read(xfer::ReadArgs),
    /// Write to a device (destroys the data there), from a file or a pattern.
    Write(xfer::WriteArgs),
    /// Copy between an sg device and a file, or between sg devices, dd style:
    /// sgmap copy if=SRC of=DST [bs=..] [bpt=..] [count=..] [skip=..] [seek=..].
    #[command(after_help = copy::AFTER_HELP)]
    Copy(copy::CopyArgs),
    /// Compare the three transfer modes (and queue depths, and optionally
    /// sg3_utils' sg_read and fio) on one device, against the floors.
    Bench(bench::BenchArgs),
    /// Draw the pictures of a saved `sgmap bench --json` document (or a
    /// phase of `cargo xtask compare`'s compare.json) as .svg or .png.
    Plot(plot::PlotArgs),
}

/// Options every data command shares.
#[derive(Debug, Clone, Args)]
pub(crate) struct Output {
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress bar (it is off anyway when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
}

/// A failure to report: the message names the device and the command and says
/// what to do.
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl From<sgmap::Error> for Failure {
    fn from(e: sgmap::Error) -> Self {
        // The whole chain: what failed, then why; and, where the path was
        // wrong, the command that lists the right ones.
        let mut text = e.report().to_string();
        let wrong_path = match &e {
            sgmap::Error::NotSg { .. } => true,
            sgmap::Error::Open { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        };
        if wrong_path {
            text += "\n(`sgmap list` shows the sg devices of this machine)";
        }
        Failure(text)
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure(s)
    }
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure(format!("cannot encode the JSON output: {e}")))?;
    println!("{text}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // With --json a failure is a JSON document on stdout too, so a script
    // that parses stdout gets the error instead of nothing.
    let json = match &cli.command {
        Cmd::List { json } | Cmd::Info { json, .. } => *json,
        Cmd::Read(a) => a.common.output.json,
        Cmd::Write(a) => a.common.output.json,
        Cmd::Copy(a) => a.output.json,
        Cmd::Bench(a) => a.output.json,
        Cmd::Plot(_) => false,
    };
    let result = match cli.command {
        Cmd::List { json } => info::list(json),
        Cmd::Info { device, json } => info::info(&device, json),
        Cmd::Read(args) => xfer::read(&args),
        Cmd::Write(args) => xfer::write(&args),
        Cmd::Copy(args) => copy::copy(&args),
        Cmd::Bench(args) => bench::run(&args),
        Cmd::Plot(args) => plot::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg)) => {
            eprintln!("sgmap: error: {msg}");
            if json {
                println!("{}", serde_json::json!({ "error": msg }));
            }
            ExitCode::FAILURE
        }
    }
}
