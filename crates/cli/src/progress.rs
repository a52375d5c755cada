//! Progress bars for long runs: on stderr, only when it is a terminal and
//! `--quiet` was not given.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What the bar counts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Unit {
    /// Bytes moved.
    Bytes,
    /// Timed runs of a benchmark.
    Runs,
}

/// A bar of `len` units, hidden when `quiet` or when stderr is not a terminal.
pub(crate) fn bar(len: u64, unit: Unit, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = match unit {
        Unit::Bytes => {
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}"
        }
        Unit::Runs => "{spinner} {msg} [{bar:30}] run {pos}/{len} eta {eta}",
    };
    let style = ProgressStyle::default_bar()
        .template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()).with_style(style)
}
