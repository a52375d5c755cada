//! Concurrency: threads sharing one `Device` (it is `Sync`), and threads with
//! their own handles, queues and mappings, all checking their data.

use sgmap::{BlockIo, Device, DirectBuf, Payload, Queue};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest};

use crate::common::{data, open, same};

pub(crate) const TESTS: [KernelTest; 2] = [
    KernelTest::scsi_debug(
        "threads_share_one_device_indirect_and_direct",
        shared_device,
    ),
    KernelTest::scsi_debug("threads_with_own_mappings_and_queues", own_handles),
];

const THREADS: u64 = 4;
const ROUNDS: u64 = 50;

fn shared_device(ctx: &Ctx) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let len = 16 * block;
    let base = 470_000 * 512 / block as u64;
    let dev = &dev;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || -> Result<u64, String> {
                    let lba = base + t * 1024;
                    let mut buf = DirectBuf::new(len);
                    for r in 0..ROUNDS {
                        let want = data(t * 1000 + r, lba, block, len);
                        let io = if r % 2 == 0 {
                            BlockIo::direct()
                        } else {
                            BlockIo::indirect()
                        };
                        dev.write_blocks(lba, &want, io)
                            .map_err(|e| e.to_string())?;
                        buf.fill(0);
                        dev.read_blocks(lba, &mut buf, io)
                            .map_err(|e| e.to_string())?;
                        if buf[..] != want[..] {
                            return Err(format!("thread {t} round {r}: data differs"));
                        }
                    }
                    Ok(ROUNDS)
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().map_err(|_| "a thread panicked")??;
        }
        ensure_eq(total, THREADS * ROUNDS, "rounds verified")
    })
}

fn own_handles(ctx: &Ctx) -> Result<(), Failed> {
    let block = open(ctx)?.block_size()? as usize;
    let len = 32 * block;
    let base = 480_000 * 512 / block as u64;
    let path = &ctx.device;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || -> Result<(), Failed> {
                    let lba = base + t * 2048;
                    // Each thread: its own mapped fd and its own queue.
                    let mut mapped = Device::open(path)?.map_reserved(len)?;
                    let mut queue = Queue::open(path)?;
                    for r in 0..ROUNDS {
                        let want = data(t * 7777 + r, lba, block, len);
                        mapped.as_mut_slice().ok_or("writable")?[..len].copy_from_slice(&want);
                        mapped.write_blocks(lba, (len / block) as u32)?;
                        // Read it back through the queue, in two halves at once.
                        let half = len / 2;
                        let cmd = |i: u64| {
                            sgmap::Command::new(
                                sgmap::cdb::Cdb::read(
                                    lba + i * (half / block) as u64,
                                    (half / block) as u32,
                                )
                                .expect("small read"),
                            )
                        };
                        let a = queue
                            .submit(&cmd(0), Payload::read(vec![0u8; half]))
                            .map_err(|r| r.into_parts().0)?;
                        let b = queue
                            .submit(&cmd(1), Payload::read(vec![0u8; half]))
                            .map_err(|r| r.into_parts().0)?;
                        let second = queue.wait_for(b)?.check(path)?;
                        let first = queue.wait_for(a)?.check(path)?;
                        same(first.bytes(), &want[..half], "first half")?;
                        same(second.bytes(), &want[half..], "second half")?;
                        ensure(
                            mapped.as_slice()[..len] == want[..],
                            "the mapping still holds what was written",
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "a thread panicked")??;
        }
        Ok(())
    })
}
