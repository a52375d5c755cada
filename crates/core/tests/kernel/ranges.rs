//! Block ranges that run past the last LBA a command can address
//! (2^64 - 1) are refused before anything is sent, whichever helper is
//! asked, split or not.

use sgmap::{cdb::CdbError, BlockIo, Error};
use sgmap_testkit::{ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::open;
use crate::signals::command_count;

pub(crate) const TESTS: [KernelTest; 1] = [KernelTest::scsi_debug(
    "block_range_past_the_last_lba_is_refused_before_any_command",
    past_the_last_lba,
)];

fn wraps<T: std::fmt::Debug>(what: &str, r: Result<T, Error>) -> Result<(), Failed> {
    match r {
        Err(Error::Cdb(CdbError::RangeWraps { .. })) => Ok(()),
        other => Err(format!("{what}: {other:?}, not a refused range").into()),
    }
}

fn past_the_last_lba(ctx: &Ctx) -> Result<(), Failed> {
    let _stats = Knob::scsi_debug("statistics", 1)?;
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let max = dev.max_transfer() / block * block;
    let mut buf = vec![0u8; 2 * block];
    let mut big = vec![0u8; 3 * max];
    let mut mapped = {
        let d = open(ctx)?;
        d.block_size()?;
        d.map_reserved(2 * block)?
    };
    let before = command_count()?;
    // READ(16) at LBA 2^64 - 1 for 2 blocks.
    wraps(
        "read_blocks at 2^64-1, 2 blocks",
        dev.read_blocks(u64::MAX, &mut buf, BlockIo::indirect()),
    )?;
    wraps(
        "write_blocks at 2^64-1, 2 blocks",
        dev.write_blocks(u64::MAX, &buf, BlockIo::direct()),
    )?;
    // Split into three commands: the first two would fit, the range does not.
    let lba = u64::MAX - (2 * max / block) as u64;
    wraps(
        "a split read whose last piece wraps",
        dev.read_blocks(lba, &mut big, BlockIo::indirect()),
    )?;
    wraps(
        "a split write whose last piece wraps",
        dev.write_blocks(lba, &big, BlockIo::indirect()),
    )?;
    wraps(
        "mmap read at 2^64-1, 2 blocks",
        mapped.read_blocks(u64::MAX, 2).map(|d| d.len()),
    )?;
    wraps(
        "mmap write at 2^64-1, 2 blocks",
        mapped.write_blocks(u64::MAX, 2),
    )?;
    ensure_eq(
        command_count()? - before,
        0,
        "commands sent for ranges that wrap",
    )?;
    // The last LBA itself is addressable: sgmap sends that one (what the
    // device answers is its business; scsi_debug's own range check wraps).
    let before = command_count()?;
    let _ = dev.read_blocks(u64::MAX, &mut buf[..block], BlockIo::indirect());
    ensure_eq(
        command_count()? - before,
        1,
        "commands sent for one block at 2^64-1",
    )
}
