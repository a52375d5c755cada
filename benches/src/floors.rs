//! The floors that bound any transfer mode.
//!
//! - [`TurLoop`]: TEST UNIT READY round trips, a command that moves no data:
//!   no mode can do more commands per second than this.
//! - [`ColdCopy`]: one `memcpy` of the transfer size from a large source that
//!   does not fit the CPU caches: a mode that copies the data once (mmap: the
//!   device into the mapped buffer) cannot beat this by much; indirect IO
//!   copies twice.

use std::path::Path;
use std::time::Instant;

use sgmap::cdb::Cdb;
use sgmap::{Command, Data, Device, DirectBuf, Error};

use crate::{CpuTime, Sample};

/// The default size of [`ColdCopy`]'s source: larger than any CPU's last-level
/// cache here, so each copy reads memory, not cache.
pub const COLD_SOURCE_BYTES: usize = 128 << 20;

/// An open device timing TEST UNIT READY round trips.
#[derive(Debug)]
pub struct TurLoop {
    dev: Device,
    cmd: Command,
}

impl TurLoop {
    /// Opens `path` and passes over a pending UNIT ATTENTION.
    pub fn open(path: &Path) -> Result<TurLoop, Error> {
        let dev = Device::open(path)?;
        dev.wait_ready()?;
        Ok(TurLoop {
            dev,
            cmd: Command::new(Cdb::test_unit_ready()),
        })
    }

    /// One TEST UNIT READY; fails unless the device answers GOOD.
    pub fn once(&mut self) -> Result<(), Error> {
        self.dev
            .execute(&self.cmd, Data::None)?
            .check(self.dev.path())?;
        Ok(())
    }

    /// Times `commands` round trips.
    pub fn run(&mut self, commands: u64) -> Result<Sample, Error> {
        let cpu0 = CpuTime::now();
        let t0 = Instant::now();
        for _ in 0..commands {
            self.once()?;
        }
        let wall = t0.elapsed();
        Ok(Sample {
            commands,
            bytes: 0,
            wall,
            cpu: Some(CpuTime::now().since(cpu0)),
            modes: Default::default(),
        })
    }
}

/// Copies of `len` bytes from successive places in a large source into one
/// page-aligned destination, wrapping at the end of the source.
#[derive(Debug)]
pub struct ColdCopy {
    src: Vec<u8>,
    dst: DirectBuf,
    len: usize,
    pos: usize,
}

impl ColdCopy {
    /// A source of `source_bytes` (at least two copies' worth), every page
    /// touched, and a destination of `len` bytes.
    pub fn new(len: usize, source_bytes: usize) -> ColdCopy {
        let len = len.max(1);
        let size = source_bytes.max(2 * len);
        let mut src = vec![0u8; size];
        // Touch and fill every page so no copy pays for a page fault.
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for chunk in src.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        ColdCopy {
            src,
            dst: DirectBuf::new(len),
            len,
            pos: 0,
        }
    }

    /// The copy size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a copy moves at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One copy of `len` bytes from the next place in the source.
    pub fn once(&mut self) {
        if self.pos + self.len > self.src.len() {
            self.pos = 0;
        }
        self.dst
            .copy_from_slice(&self.src[self.pos..self.pos + self.len]);
        self.pos += self.len;
        std::hint::black_box(&mut self.dst[..]);
    }

    /// The destination, holding the last copy.
    pub fn destination(&self) -> &[u8] {
        &self.dst
    }

    /// Times `copies` copies.
    pub fn run(&mut self, copies: u64) -> Sample {
        let cpu0 = CpuTime::now();
        let t0 = Instant::now();
        for _ in 0..copies {
            self.once();
        }
        let wall = t0.elapsed();
        Sample {
            commands: copies,
            bytes: copies * self.len as u64,
            wall,
            cpu: Some(CpuTime::now().since(cpu0)),
            modes: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_walk_the_source_and_wrap() {
        let mut c = ColdCopy::new(4096, 3 * 4096);
        c.once();
        let first = c.destination().to_vec();
        assert_eq!(&first[..], &c.src[..4096]);
        c.once();
        assert_eq!(c.destination(), &c.src[4096..8192]);
        c.once();
        c.once(); // wrapped
        assert_eq!(c.destination(), &first[..]);
        let s = c.run(10);
        assert_eq!((s.commands, s.bytes), (10, 40960));
    }
}
