//! The bodies of the fuzz targets under `fuzz/fuzz_targets/`, shared with the
//! host test `tests/fuzz_regressions.rs`, which replays the kept corpus
//! (`fuzz/corpus/<target>/`) and the crash inputs kept as regressions
//! (`fuzz/regressions/<target>/`) through exactly the same code on stable
//! Rust.
//!
//! Each body takes the fuzzer's bytes and panics (through `assert!`) when a
//! documented property of the decoder or builder does not hold; "does not
//! panic" is only the first of them. The expected results are worked out
//! here from the input bytes and the rules stated in the crate's docs, not by
//! calling the code under test a second time.

mod cdb;
mod response;
mod sense;

pub(crate) use cdb::cdb;
pub(crate) use response::response;
pub(crate) use sense::sense;

/// A fuzz target's body: checks its properties on one input, panicking when
/// one fails.
pub(crate) type Body = fn(&[u8]);

/// Every target: its name (the folder under `fuzz/corpus/` and
/// `fuzz/regressions/`, and the file under `fuzz/fuzz_targets/`) and body.
pub(crate) const TARGETS: [(&str, Body); 3] =
    [("sense", sense), ("cdb", cdb), ("response", response)];

/// Reads fixed-size integers from the front of a fuzz input, big-endian,
/// padding with zeros once the input runs out (so every input is usable).
#[derive(Debug)]
pub(crate) struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    /// Starts reading at the front of `data`.
    pub(crate) fn new(data: &'a [u8]) -> Bytes<'a> {
        Bytes(data)
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        let (head, tail) = self.0.split_at(n);
        out[..n].copy_from_slice(head);
        self.0 = tail;
        out
    }

    pub(crate) fn u8(&mut self) -> u8 {
        u8::from_be_bytes(self.take())
    }

    pub(crate) fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.take())
    }

    pub(crate) fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    pub(crate) fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }
}

/// Big-endian value of `bytes[start..start + n]` (n ≤ 8), if all present.
pub(crate) fn be_at(bytes: &[u8], start: usize, n: usize) -> Option<u64> {
    let field = bytes.get(start..start.checked_add(n)?)?;
    Some(field.iter().fold(0, |acc, &b| (acc << 8) | u64::from(b)))
}
