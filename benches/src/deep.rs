//! Many commands in flight: sgmap's asynchronous [`Queue`] (direct and
//! indirect IO, one fd) and its mmap fd [`Pool`] (one fd and mapped reserved
//! buffer per command in flight), set up outside any timing.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sgmap::cdb::Cdb;
use sgmap::{Command, Device, DirectBuf, Direction, Error, IoBuf, Payload, Pool, Queue};

use crate::{check_len, invalid, CpuTime, Cycle, Dir, ModeCounts, Sample, Way};

#[derive(Debug)]
enum Engine {
    /// mmap-ed IO: one fd per command in flight.
    Pool(Pool),
    /// Direct or indirect IO on one fd, with a buffer per command in flight.
    Queue { queue: Queue, free: Vec<IoBuf> },
}

/// One device prepared to keep `depth` transfers of up to `capacity` bytes
/// in flight in one way and direction.
#[derive(Debug)]
pub struct DeepSession {
    engine: Engine,
    path: PathBuf,
    way: Way,
    dir: Dir,
    depth: usize,
    block: usize,
    capacity: usize,
    seen: ModeCounts,
}

impl DeepSession {
    /// Opens `path` and prepares `depth` buffers of `capacity` bytes: a
    /// [`Pool`] of `depth` mapped fds for mmap (failing when the kernel grants
    /// less than `capacity`), or a [`Queue`] with `depth` (at most
    /// [`sgmap::MAX_IN_FLIGHT`]) page-aligned buffers for direct and indirect
    /// IO, with the fd's reserved buffer sized to `capacity` as
    /// [`Session`](crate::Session) does.
    pub fn open(
        path: &Path,
        way: Way,
        dir: Dir,
        capacity: usize,
        depth: usize,
    ) -> Result<DeepSession, Error> {
        let mut dev = Device::open(path)?;
        dev.wait_ready()?;
        let block = dev.block_size()? as usize;
        let what = format!("{dir} setup");
        if capacity == 0 || capacity % block != 0 {
            return Err(invalid(
                path,
                &what,
                format!(
                    "a transfer of {capacity} bytes is not a whole, non-zero number of the device's {block}-byte blocks"
                ),
            ));
        }
        if depth == 0 || (way != Way::Mmap && depth > sgmap::MAX_IN_FLIGHT) {
            return Err(invalid(
                path,
                &what,
                format!(
                    "depth {depth}: {way} IO keeps 1 to {} commands in flight on one fd",
                    sgmap::MAX_IN_FLIGHT
                ),
            ));
        }
        let engine = match way {
            Way::Uring => {
                return Err(invalid(
                    path,
                    &what,
                    "io_uring keeps its depth in its own ring: open a UringSession (or a Runner)"
                        .into(),
                ))
            }
            Way::Mmap => {
                drop(dev);
                let pool = Pool::open(path, depth, capacity)?;
                if pool.buffer_len() < capacity {
                    return Err(invalid(
                        path,
                        "mmap",
                        format!(
                            "the kernel granted reserved buffers of {} bytes, less than the {capacity}-byte transfer",
                            pool.buffer_len()
                        ),
                    ));
                }
                Engine::Pool(pool)
            }
            Way::Direct | Way::Indirect => {
                let _ = dev.set_reserved_size(capacity);
                Engine::Queue {
                    queue: Queue::new(dev)?,
                    free: (0..depth)
                        .map(|_| IoBuf::from(DirectBuf::new(capacity)))
                        .collect(),
                }
            }
        };
        Ok(DeepSession {
            engine,
            path: path.to_path_buf(),
            way,
            dir,
            depth,
            block,
            capacity,
            seen: ModeCounts::default(),
        })
    }

    /// Commands kept in flight.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// How many commands ran in each mode so far.
    pub fn modes(&self) -> ModeCounts {
        self.seen
    }

    fn command(&self, lba: u64, len: usize) -> Result<(Command, Direction), Error> {
        let blocks = (len / self.block) as u32;
        let (cdb, direction) = match self.dir {
            Dir::Read => (Cdb::read(lba, blocks)?, Direction::FromDevice),
            Dir::Write => (Cdb::write(lba, blocks)?, Direction::ToDevice),
        };
        let cmd = Command::new(cdb);
        Ok((
            if self.way == Way::Direct {
                cmd.direct()
            } else {
                cmd
            },
            direction,
        ))
    }

    fn short(&self, out: &sgmap::Outcome) -> Error {
        // The command ran: a short transfer, with its outcome (check the
        // device's size and --offset), never a refusal.
        Error::ShortTransfer {
            device: self.path.clone(),
            outcome: Box::new(out.clone()),
        }
    }

    /// Runs `commands` transfers of `len` bytes at the LBAs `cycle` gives,
    /// keeping [`depth`](Self::depth) in flight, and times them; `tick` is
    /// called after each completion with the number done. Stops at the first
    /// failure (the commands still in flight are collected first).
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
            while sent < commands && self.has_room() {
                let (cmd, direction) = self.command(cycle.next_lba(), len)?;
                match &mut self.engine {
                    Engine::Pool(pool) => {
                        let Some(lease) = pool.lease() else { break };
                        lease.submit(&cmd, direction, len)?;
                    }
                    Engine::Queue { queue, free } => {
                        let Some(mut buf) = free.pop() else { break };
                        buf.truncate_to(len);
                        let payload = match direction {
                            Direction::ToDevice => Payload::write(buf),
                            _ => Payload::read(buf),
                        };
                        queue.submit(&cmd, payload)?;
                    }
                }
                sent += 1;
            }
            let (mode, short) = match &mut self.engine {
                Engine::Pool(pool) => {
                    let c = pool.wait()?;
                    c.check()?;
                    let o = c.outcome();
                    (o.mode, (o.resid != 0).then(|| o.clone()))
                }
                Engine::Queue { queue, free } => {
                    let c = queue.wait()?.check(&self.path)?;
                    let mode = c.outcome.mode;
                    let short = (c.outcome.resid != 0).then(|| c.outcome.clone());
                    free.extend(c.into_buffer());
                    (mode, short)
                }
            };
            if let Some(o) = short {
                return Err(self.short(&o));
            }
            self.seen.add(mode);
            done += 1;
            tick(done);
        }
        let wall = t0.elapsed();
        let cpu = CpuTime::now().since(cpu0);
        let modes = self.seen.since(before);
        Ok(Sample {
            commands,
            bytes: commands * len as u64,
            wall,
            cpu: Some(cpu),
            modes,
        })
    }

    fn has_room(&self) -> bool {
        match &self.engine {
            Engine::Pool(pool) => pool.idle() > 0,
            Engine::Queue { free, .. } => !free.is_empty(),
        }
    }
}

/// Shortening an [`IoBuf`] to the transfer, so the kernel moves exactly `len`
/// bytes (a payload's length is its buffer's).
trait TruncateTo {
    fn truncate_to(&mut self, len: usize);
}

impl TruncateTo for IoBuf {
    fn truncate_to(&mut self, len: usize) {
        if self.len() != len {
            let mut b = DirectBuf::new(len);
            let n = len.min(self.len());
            b[..n].copy_from_slice(&self[..n]);
            *self = IoBuf::from(b);
        }
    }
}
