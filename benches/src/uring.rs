//! SCSI passthrough through io_uring on the bsg node (Linux 7.1+), timed:
//! [`UringSession`] is sgmap's [`BsgRing`] with one registered buffer per
//! command in flight, at any depth; [`UringSession::stream`] moves a range
//! of blocks with the data handed over strictly in LBA order (for `sgmap
//! read` and `write`). The bare floor without sgmap's types is
//! [`BareRing`](crate::bare::BareRing).

use std::collections::VecDeque;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use sgmap::cdb::Cdb;
use sgmap::stream::{Transfers, Until};
use sgmap::{BsgRing, Command, Device, Error, FixedBuf, Payload, Ticket};

use crate::{check_len, invalid, CpuTime, Cycle, Dir, ModeCounts, Sample};

/// The deepest ring `sgmap bench` and `sgmap read|write --mode uring` set up.
pub const MAX_URING_DEPTH: usize = 1024;

/// Whether this kernel has SCSI passthrough through io_uring on bsg, judged
/// from its release (`/proc/sys/kernel/osrelease`): Linux 7.1 or later.
/// `None` when the release cannot be read. A ring that opens is the real
/// proof; this is what `--mode auto` decides by before trying.
pub fn kernel_has_uring() -> Option<bool> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(str::parse::<u32>);
    let v = (parts.next()?.ok()?, parts.next()?.ok()?);
    Some(v >= (7, 1))
}

/// The running kernel's release, e.g. `7.2.7`, or `unknown`.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// One device's bsg node with an io_uring of `depth` entries and `depth`
/// registered buffers of `capacity` bytes, set up outside any timing.
#[derive(Debug)]
pub struct UringSession {
    ring: BsgRing,
    free: Vec<FixedBuf>,
    path: PathBuf,
    dir: Dir,
    depth: usize,
    block: usize,
    capacity: usize,
    blocks_on_device: u64,
    seen: ModeCounts,
}

impl UringSession {
    /// Passes over a pending UNIT ATTENTION through `path` (an sg node),
    /// opens its bsg node read-write with a ring of `depth` (1 to
    /// [`MAX_URING_DEPTH`]) and registers `depth` buffers of `capacity` bytes
    /// (a whole number of blocks). On a kernel older than 7.1 this fails with
    /// [`BsgRing::open`]'s error, which names the device and the kernel and
    /// says Linux 7.1 is needed.
    pub fn open(path: &Path, dir: Dir, capacity: usize, depth: usize) -> Result<Self, Error> {
        let dev = Device::open(path)?;
        dev.wait_ready()?;
        let cap = dev.read_capacity()?;
        let block = cap.block_size as usize;
        drop(dev);
        let what = format!("{dir} setup (io_uring)");
        if capacity == 0 || block == 0 || capacity % block != 0 {
            return Err(invalid(
                path,
                &what,
                format!(
                    "a transfer of {capacity} bytes is not a whole, non-zero number of the device's {block}-byte blocks"
                ),
            ));
        }
        if depth == 0 || depth > MAX_URING_DEPTH {
            return Err(invalid(
                path,
                &what,
                format!("depth {depth}: the io_uring transport keeps 1 to {MAX_URING_DEPTH} commands in flight"),
            ));
        }
        let mut ring = BsgRing::options().depth(depth as u32).open(path)?;
        let free = ring.register_buffers(depth, capacity)?;
        Ok(UringSession {
            ring,
            free,
            path: path.to_path_buf(),
            dir,
            depth,
            block,
            capacity,
            blocks_on_device: cap.blocks,
            seen: ModeCounts::default(),
        })
    }

    /// The bsg node the ring drives.
    pub fn bsg_path(&self) -> &Path {
        self.ring.path()
    }

    /// Commands kept in flight.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The device's logical block size.
    pub fn block_size(&self) -> usize {
        self.block
    }

    /// The device's size in blocks.
    pub fn blocks_on_device(&self) -> u64 {
        self.blocks_on_device
    }

    /// `io_uring_enter` calls so far.
    pub fn enters(&self) -> u64 {
        self.ring.enters()
    }

    /// How many commands ran in each mode so far (registered buffers are
    /// zero-copy: the completions count as direct).
    pub fn modes(&self) -> ModeCounts {
        self.seen
    }

    fn command(&self, lba: u64, len: usize) -> Result<Command, Error> {
        let blocks = (len / self.block) as u32;
        Ok(Command::new(match self.dir {
            Dir::Read => Cdb::read(lba, blocks)?,
            Dir::Write => Cdb::write(lba, blocks)?,
        }))
    }

    fn submit(&mut self, lba: u64, mut buf: FixedBuf, len: usize) -> Result<Ticket, Error> {
        buf.set_len(len);
        let cmd = self.command(lba, len)?;
        let payload = match self.dir {
            Dir::Read => Payload::read(buf),
            Dir::Write => Payload::write(buf),
        };
        Ok(self.ring.submit(&cmd, payload)?)
    }

    /// Checks a completion (SCSI status, full transfer), counts its mode and
    /// gives its registered buffer back.
    fn finish(&mut self, c: sgmap::Completion) -> Result<FixedBuf, Error> {
        let c = c.check(&self.path)?;
        if c.outcome.resid != 0 {
            return Err(Error::ShortTransfer {
                device: self.path.clone(),
                outcome: Box::new(c.outcome.clone()),
            });
        }
        self.seen.add(c.outcome.mode);
        c.into_buffer()
            .and_then(|b| b.into_registered())
            .ok_or_else(|| {
                invalid(
                    &self.path,
                    "io_uring completion",
                    "the ring gave back no registered buffer".into(),
                )
            })
    }

    /// Runs `commands` transfers of `len` bytes at the LBAs `cycle` gives,
    /// keeping [`depth`](Self::depth) in flight, and times them; completions
    /// are taken in the order the device finishes. `tick` is called after
    /// each completion with the number done.
    pub fn run(
        &mut self,
        cycle: &mut Cycle,
        len: usize,
        commands: u64,
        mut tick: impl FnMut(u64),
    ) -> Result<Sample, Error> {
        check_len(&self.path, self.dir, len, self.block, self.capacity)?;
        let before = self.seen;
        let cpu0 = CpuTime::now();
        let t0 = Instant::now();
        let (mut sent, mut done) = (0u64, 0u64);
        while done < commands {
            while sent < commands {
                let Some(buf) = self.free.pop() else { break };
                self.submit(cycle.next_lba(), buf, len)?;
                sent += 1;
            }
            let c = self.ring.wait()?;
            let buf = self.finish(c)?;
            self.free.push(buf);
            done += 1;
            tick(done);
        }
        let wall = t0.elapsed();
        let cpu = CpuTime::now().since(cpu0);
        Ok(Sample {
            commands,
            bytes: commands * len as u64,
            wall,
            cpu: Some(cpu),
            modes: self.seen.since(before),
        })
    }

    /// Moves the blocks `range` in transfers of at most `bs` bytes (the
    /// last may be shorter), [`depth`](Self::depth) in flight, strictly in
    /// LBA order: for a write `fill(lba, buf)` fills each transfer before
    /// it is submitted; for a read `take(lba, data)` sees each transfer's
    /// data after the ones before it, whatever order the device finishes
    /// in. Returns the number of commands. Stops at the first failure.
    pub fn stream<E: From<Error>>(
        &mut self,
        range: Range<u64>,
        bs: usize,
        fill: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
        take: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        let step = (bs / self.block).max(1);
        let transfers = Transfers::new([range], step as u32, self.block, Until::none());
        Ok(self.stream_transfers(transfers, fill, take)?.0)
    }

    /// Moves the transfers `transfers` (`(lba, blocks)`, each at most the
    /// registered buffers' capacity; e.g. a [`Transfers`] cycling over a
    /// span until a deadline) with [`depth`](Self::depth) in flight all the
    /// time, across the wrap-arounds of a cycle too, handing data over in
    /// the order of `transfers` as [`stream`](Self::stream) does. Returns
    /// the commands and bytes moved. Stops at the first failure; when
    /// `transfers` ends (at a deadline, say), the commands in flight finish
    /// and are delivered first.
    pub fn stream_transfers<E: From<Error>>(
        &mut self,
        transfers: impl IntoIterator<Item = (u64, u32)>,
        mut fill: impl FnMut(u64, &mut [u8]) -> Result<(), E>,
        mut take: impl FnMut(u64, &[u8]) -> Result<(), E>,
    ) -> Result<(u64, u64), E> {
        let mut transfers = transfers.into_iter().fuse();
        let mut order: VecDeque<(Ticket, u64)> = VecDeque::new();
        let (mut commands, mut bytes) = (0u64, 0u64);
        loop {
            while !self.free.is_empty() {
                let Some((lba, blocks)) = transfers.next() else {
                    break;
                };
                let len = blocks as usize * self.block;
                check_len(&self.path, self.dir, len, self.block, self.capacity)?;
                let Some(mut buf) = self.free.pop() else {
                    break;
                };
                if self.dir == Dir::Write {
                    buf.set_len(len);
                    if let Err(e) = fill(lba, &mut buf) {
                        self.free.push(buf);
                        return Err(e);
                    }
                }
                let t = self.submit(lba, buf, len)?;
                order.push_back((t, lba));
            }
            let Some((ticket, lba)) = order.pop_front() else {
                break;
            };
            let c = self.ring.wait_for(ticket).map_err(Error::from)?;
            let c = c.check(&self.path)?;
            if c.outcome.resid != 0 {
                return Err(Error::ShortTransfer {
                    device: self.path.clone(),
                    outcome: Box::new(c.outcome.clone()),
                }
                .into());
            }
            self.seen.add(c.outcome.mode);
            bytes += c.outcome.transferred() as u64;
            if self.dir == Dir::Read {
                take(lba, c.bytes())?;
            }
            if let Some(buf) = c.into_buffer().and_then(|b| b.into_registered()) {
                self.free.push(buf);
            }
            commands += 1;
        }
        Ok((commands, bytes))
    }
}
