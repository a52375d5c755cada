//! `sgmap`: list, inspect, read, write and benchmark Linux sg devices.

fn main() {
    eprintln!("sgmap: the command line is being built; see `cargo xtask test`");
    std::process::exit(2);
}
