//! The fault matrix: every scsi_debug fault × every transfer mode × sync and
//! queued submission. Each cell checks that the right result reaches the
//! caller (error kind and decoded sense, or success after the kernel's own
//! retry), that the device works afterwards, and that data written before the
//! fault is intact.

use std::time::Duration;

use sgmap::sense::SenseKey;
use sgmap::{
    cdb::Cdb, Command, Data, Device, DirectBuf, Direction, MappedDevice, Mode, Outcome, Payload,
    Pool, Queue, ScsiErrorKind,
};
use sgmap_testkit::{ensure, ensure_eq, Ctx, Failed, KernelTest, Knob};

use crate::common::{data, open, same};

/// One test per fault, each over the three modes × sync and queued.
pub(crate) const TESTS: [KernelTest; 8] = [
    KernelTest::scsi_debug("fault_matrix_medium_error", |c| row(c, Fault::MediumError)),
    KernelTest::scsi_debug("fault_matrix_recovered_error", |c| {
        row(c, Fault::RecoveredError)
    }),
    KernelTest::scsi_debug("fault_matrix_timeout", |c| row(c, Fault::Timeout)),
    KernelTest::scsi_debug("fault_matrix_transport_error", |c| {
        row(c, Fault::TransportError)
    }),
    KernelTest::scsi_debug("fault_matrix_short_transfer", |c| {
        row(c, Fault::ShortTransfer)
    }),
    KernelTest::scsi_debug("fault_matrix_task_set_full", |c| row(c, Fault::TaskSetFull)),
    KernelTest::scsi_debug("fault_matrix_host_busy", |c| row(c, Fault::HostBusy)),
    KernelTest::scsi_debug("fault_matrix_write_protect", |c| {
        row(c, Fault::WriteProtect)
    }),
];

use sgmap_testkit::sdebug_opts::{
    HOST_BUSY, MEDIUM_ERR, MEDIUM_ERR_LBA, RARE_TSF, RECOVERED_ERR, SHORT_TRANSFER, TIMEOUT,
    TRANSPORT_ERR,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    MediumError,
    RecoveredError,
    Timeout,
    TransportError,
    ShortTransfer,
    TaskSetFull,
    HostBusy,
    WriteProtect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Indirect,
    Direct,
    Mmap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Submit {
    Sync,
    Queued,
}

/// What one command gave back: the outcome and the bytes in its buffer.
struct Done {
    outcome: Outcome,
    buffer: Vec<u8>,
}

/// Runs one command in `way`, submitted `sub`, with `write` as the data to
/// send (None: a read of `len` bytes).
fn run(
    ctx: &Ctx,
    way: Way,
    sub: Submit,
    cmd: Command,
    len: usize,
    write: Option<&[u8]>,
    mapped: Option<MappedDevice>,
) -> Result<Done, Failed> {
    let dir = if write.is_some() {
        Direction::ToDevice
    } else {
        Direction::FromDevice
    };
    match (way, sub) {
        (Way::Indirect | Way::Direct, Submit::Sync) => {
            let dev = Device::open(&ctx.device)?;
            let cmd = if way == Way::Direct {
                cmd.direct()
            } else {
                cmd
            };
            let mut buf = DirectBuf::new(len);
            if let Some(w) = write {
                buf.copy_from_slice(w);
            }
            let outcome = match write {
                Some(_) => dev.execute(&cmd, Data::ToDevice(&buf))?,
                None => dev.execute(&cmd, Data::FromDevice(&mut buf))?,
            };
            Ok(Done {
                outcome,
                buffer: buf.to_vec(),
            })
        }
        (Way::Indirect | Way::Direct, Submit::Queued) => {
            let mut q = Queue::open(&ctx.device)?;
            let cmd = if way == Way::Direct {
                cmd.direct()
            } else {
                cmd
            };
            let mut buf = DirectBuf::new(len);
            if let Some(w) = write {
                buf.copy_from_slice(w);
            }
            let payload = if write.is_some() {
                Payload::write(buf)
            } else {
                Payload::read(buf)
            };
            let t = q.submit(&cmd, payload).map_err(|r| r.into_parts().0)?;
            let c = q.wait_for(t)?;
            let buffer = c.data.buffer().map(|b| b.to_vec()).unwrap_or_default();
            Ok(Done {
                outcome: c.outcome,
                buffer,
            })
        }
        (Way::Mmap, Submit::Sync) => {
            // Mapped before the fault was armed: mapping a fresh device
            // asks for its block size, a command of its own.
            let mut m = mapped.ok_or("a device mapped before the fault")?;
            if let Some(w) = write {
                m.as_mut_slice().ok_or("writable")?[..len].copy_from_slice(w);
            }
            let outcome = m.execute(&cmd, dir, len)?;
            Ok(Done {
                outcome,
                buffer: m.as_slice()[..len].to_vec(),
            })
        }
        (Way::Mmap, Submit::Queued) => {
            let mut pool = Pool::open(&ctx.device, 2, len)?;
            let mut lease = pool.lease().ok_or("a free buffer")?;
            if let Some(w) = write {
                lease.buffer_mut().ok_or("writable")?[..len].copy_from_slice(w);
            }
            let t = lease.submit(&cmd, dir, len)?;
            let c = pool.wait_for(t)?;
            Ok(Done {
                outcome: c.outcome().clone(),
                buffer: c.buffer()[..len].to_vec(),
            })
        }
    }
}

/// The sysfs folder of the scsi_debug device behind `dev`.
fn scsi_device_dir(dev: &Device) -> Result<String, Failed> {
    let id = dev.scsi_id()?;
    Ok(format!(
        "/sys/class/scsi_device/{}:{}:{}:{}/device",
        id.host, id.channel, id.target, id.lun
    ))
}

/// Commands the midlayer dispatched to the device so far (retries included).
fn dispatched(dir: &str) -> Result<u64, Failed> {
    let s = std::fs::read_to_string(format!("{dir}/iorequest_cnt"))?;
    Ok(u64::from_str_radix(s.trim().trim_start_matches("0x"), 16)?)
}

fn row(ctx: &Ctx, fault: Fault) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    let sdir = scsi_device_dir(&dev)?;
    drop(dev);
    let len = 8 * block;
    // Each fault gets its own stretch of disk, each cell its own LBAs.
    let mut lba = (460_000 + 1024 * fault as u64) * 512 / block as u64;
    let mut cells = 0;
    for way in [Way::Indirect, Way::Direct, Way::Mmap] {
        for sub in [Submit::Sync, Submit::Queued] {
            let what = format!("{fault:?} / {way:?} / {sub:?}");
            cell(ctx, fault, way, sub, lba, len, block, &sdir)
                .map_err(|e| format!("{what}: {}", e.message().unwrap_or("failed")))?;
            lba += 64 * 512 / block as u64;
            cells += 1;
        }
    }
    ensure_eq(cells, 6, "cells run")
}

#[allow(clippy::too_many_arguments)]
fn cell(
    ctx: &Ctx,
    fault: Fault,
    way: Way,
    sub: Submit,
    lba: u64,
    len: usize,
    block: usize,
    sdir: &str,
) -> Result<(), Failed> {
    // Data at `lba` before the fault, and what a write during it would send.
    let before = data(lba ^ 0x5a5a, lba, block, len);
    open(ctx)?.write_blocks(lba, &before, sgmap::BlockIo::indirect())?;
    let blocks = (len / block) as u16;
    let timeout = Duration::from_millis(if fault == Fault::Timeout { 500 } else { 10_000 });
    let target = if fault == Fault::MediumError {
        MEDIUM_ERR_LBA
    } else {
        lba
    };
    let read = Command::new(Cdb::read_10(target as u32, blocks)).timeout(timeout);
    let newer = data(lba ^ 0xa5a5, lba, block, len);
    let write = Command::new(Cdb::write_10(lba as u32, blocks)).timeout(timeout);
    let mut guards: Vec<Knob> = Vec::new();
    let needs_latency = matches!(fault, Fault::TransportError | Fault::TaskSetFull);
    if needs_latency {
        // scsi_debug injects these only into commands it defers.
        guards.extend(Knob::latency_ns(20_000)?);
    }
    let mapped = if (way, sub) == (Way::Mmap, Submit::Sync) {
        Some(Device::open(&ctx.device)?.map_reserved(len)?)
    } else {
        None
    };
    let mut before_count = dispatched(sdir)?;
    let done = {
        match fault {
            Fault::MediumError => guards.push(Knob::scsi_debug("opts", MEDIUM_ERR)?),
            Fault::RecoveredError => guards.extend(Knob::inject(RECOVERED_ERR)?),
            Fault::Timeout => guards.extend(Knob::inject(TIMEOUT)?),
            Fault::TransportError => guards.extend(Knob::inject(TRANSPORT_ERR)?),
            Fault::ShortTransfer => guards.extend(Knob::inject(SHORT_TRANSFER)?),
            Fault::TaskSetFull => {
                // With queue depth 1 and every_nth=1, every deferred command
                // finds the device "full". The midlayer does not retry a
                // passthrough command's TASK SET FULL: the caller sees it.
                guards.push(Knob::set(format!("{sdir}/queue_depth"), 1)?);
                guards.push(Knob::scsi_debug("every_nth", 1)?);
                guards.push(Knob::scsi_debug("opts", RARE_TSF)?);
            }
            Fault::HostBusy => {
                guards.push(Knob::scsi_debug("statistics", 1)?);
                guards.push(Knob::scsi_debug("every_nth", 2)?);
                guards.push(Knob::scsi_debug("opts", HOST_BUSY)?);
            }
            Fault::WriteProtect => guards.push(Knob::scsi_debug_param("wp", 1)?),
        }
        if fault == Fault::HostBusy {
            // Commands are counted with every_nth=2 from the moment it is set:
            // one command to prime, so the one under test is the one hit.
            open(ctx)?.test_unit_ready()?;
            before_count = dispatched(sdir)?;
        }
        let r = if fault == Fault::WriteProtect {
            run(ctx, way, sub, write, len, Some(&newer), mapped)
        } else {
            run(ctx, way, sub, read, len, None, mapped)
        };
        // Restore in reverse order of setting: the fault first.
        while let Some(g) = guards.pop() {
            drop(g);
        }
        r?
    };
    let dispatched_during = dispatched(sdir)? - before_count;
    let o = &done.outcome;
    let kind = o.failure_kind();
    let sense = o.sense.as_ref();
    match fault {
        Fault::MediumError => {
            ensure_eq(kind, Some(ScsiErrorKind::CheckCondition), "kind")?;
            let s = sense.ok_or("sense")?;
            ensure_eq((s.key, s.asc), (SenseKey::MediumError, 0x11), "sense")?;
            ensure_eq(
                s.information,
                Some(MEDIUM_ERR_LBA),
                "information = failing LBA",
            )?;
        }
        Fault::RecoveredError => {
            ensure_eq(kind, None, "a recovered error is a success")?;
            ensure_eq(
                sense.map(|s| s.key),
                Some(SenseKey::RecoveredError),
                "sense kept as a note",
            )?;
            same(&done.buffer, &before, "recovered read data")?;
        }
        Fault::Timeout => ensure_eq(kind, Some(ScsiErrorKind::Timeout), "kind")?,
        Fault::TransportError => {
            ensure_eq(kind, Some(ScsiErrorKind::CheckCondition), "kind")?;
            let s = sense.ok_or("sense")?;
            ensure_eq((s.key, s.asc), (SenseKey::AbortedCommand, 0x4b), "sense")?;
        }
        Fault::ShortTransfer => {
            ensure(
                o.resid > 0 && o.transferred() < len,
                format!("resid {}", o.resid),
            )?;
            same(
                &done.buffer[..o.transferred()],
                &before[..o.transferred()],
                "the transferred part",
            )?;
        }
        Fault::TaskSetFull => {
            ensure_eq(
                kind,
                Some(ScsiErrorKind::Busy),
                "TASK SET FULL is reported as busy",
            )?;
            ensure_eq(o.status, sgmap_sys::SAM_STAT_TASK_SET_FULL, "status byte")?;
        }
        Fault::HostBusy => {
            // scsi_debug answers "host busy" from queuecommand and the block
            // layer requeues the request: the caller must see a plain success.
            // No counter shows the requeue (iorequest_cnt is taken back for a
            // busy host), so this cell checks only what the caller sees.
            ensure_eq(kind, None, "the kernel requeued it until it went through")?;
            ensure_eq(dispatched_during, 1, "one dispatch counted")?;
            same(&done.buffer, &before, "data after the requeue")?;
        }
        Fault::WriteProtect => {
            ensure_eq(kind, Some(ScsiErrorKind::CheckCondition), "kind")?;
            let s = sense.ok_or("sense")?;
            ensure_eq((s.key, s.asc), (SenseKey::DataProtect, 0x27), "sense")?;
        }
    }
    if way == Way::Direct && kind.is_none() && fault != Fault::ShortTransfer {
        ensure_eq(o.mode, Mode::Direct, "direct IO really happened")?;
    }
    if way == Way::Mmap {
        ensure_eq(o.mode, Mode::Mmap, "mmap-ed IO")?;
    }
    // Afterwards: the same way works, and the data written before is intact.
    let after = run(
        ctx,
        way,
        sub,
        Command::new(Cdb::read_10(lba as u32, blocks)),
        len,
        None,
        if (way, sub) == (Way::Mmap, Submit::Sync) {
            Some(Device::open(&ctx.device)?.map_reserved(len)?)
        } else {
            None
        },
    )?;
    ensure(
        after.outcome.is_good(),
        format!("after the fault: {:?}", after.outcome.failure_kind()),
    )?;
    same(&after.buffer, &before, "data written before the fault")
}
