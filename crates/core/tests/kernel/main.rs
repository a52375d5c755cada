//! In-kernel tests of the safe core, run by `cargo xtask test` inside the
//! user-mode Linux test bed against the scsi_debug disk (and skipped, as
//! ignored, on a host without `SGMAP_TEST_DEVICE`).

mod access;
mod common;
mod faults;
mod hardening;
mod mapped;
mod matrix;
mod mmap;
mod modes;
mod open;
mod pool;
mod queue;
mod ranges;
mod results;
mod signals;
mod stream;
mod texts;
mod threads;
mod uring;

use sgmap_testkit::KernelTest;

fn main() -> std::process::ExitCode {
    let mut tests: Vec<KernelTest> = Vec::new();
    tests.extend(open::TESTS);
    tests.extend(mmap::TESTS);
    tests.extend(modes::TESTS);
    tests.extend(faults::TESTS);
    tests.extend(results::TESTS);
    tests.extend(texts::TESTS);
    tests.extend(hardening::TESTS);
    tests.extend(matrix::TESTS);
    tests.extend(queue::TESTS);
    tests.extend(pool::TESTS);
    tests.extend(stream::TESTS);
    tests.extend(threads::TESTS);
    tests.extend(uring::TESTS);
    tests.extend(mapped::TESTS);
    tests.extend(signals::TESTS);
    tests.extend(ranges::TESTS);
    // Last: it removes the device and brings it back.
    tests.extend(access::TESTS);
    sgmap_testkit::run(&tests)
}
