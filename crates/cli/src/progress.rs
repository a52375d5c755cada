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

/// A byte counter in front of a bar that redraws at most ~500 times per run,
/// and not at all when hidden: each update of an indicatif bar reads the
/// clock, which is a system call where there is no vDSO (user-mode Linux),
/// and that cost per command would show in the figures.
#[derive(Debug)]
pub(crate) struct Meter {
    bar: ProgressBar,
    hidden: bool,
    pending: u64,
    step: u64,
}

impl Meter {
    /// A meter of `total` bytes (see [`bar`]).
    pub(crate) fn bytes(total: u64, quiet: bool, message: String) -> Meter {
        let bar = bar(total, Unit::Bytes, quiet);
        bar.set_message(message);
        Meter {
            hidden: bar.is_hidden(),
            bar,
            pending: 0,
            step: (total / 500).max(1),
        }
    }

    /// A meter of bytes with no known total (a time-based run): a spinner
    /// with the bytes so far, the rate and the time.
    pub(crate) fn open_ended(quiet: bool, message: String) -> Meter {
        let bar = if quiet || !std::io::stderr().is_terminal() {
            ProgressBar::hidden()
        } else {
            let style = ProgressStyle::default_spinner()
                .template("{spinner} {msg} {bytes} {binary_bytes_per_sec} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(style)
        };
        bar.set_message(message);
        Meter {
            hidden: bar.is_hidden(),
            bar,
            pending: 0,
            step: 1 << 20,
        }
    }

    /// Counts `n` more bytes.
    pub(crate) fn add(&mut self, n: u64) {
        if self.hidden {
            return;
        }
        self.pending += n;
        if self.pending >= self.step {
            self.bar.inc(self.pending);
            self.pending = 0;
        }
    }

    /// Clears the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_batches_its_updates() {
        let mut m = Meter {
            bar: ProgressBar::hidden(),
            hidden: false,
            pending: 0,
            step: 1000,
        };
        m.add(600);
        assert_eq!((m.bar.position(), m.pending), (0, 600));
        m.add(600);
        assert_eq!((m.bar.position(), m.pending), (1200, 0));
        let mut quiet = Meter::bytes(10_000, true, String::new());
        quiet.add(5000);
        assert_eq!((quiet.bar.position(), quiet.pending), (0, 0));
    }
}
