//! Shared helpers of the in-kernel tests.

use std::time::{Duration, Instant};

use sgmap::{BlockIo, Device, DirectBuf, MappedDevice};
use sgmap_testkit::{ensure, pattern, Ctx, Failed};

/// Opens the device under test and passes over any pending UNIT ATTENTION.
pub(crate) fn open(ctx: &Ctx) -> Result<Device, Failed> {
    let dev = Device::open(&ctx.device)?;
    dev.wait_ready()?;
    Ok(dev)
}

/// The three ways data can move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Way {
    Indirect,
    Direct,
    Mmap,
}

pub(crate) const WAYS: [Way; 3] = [Way::Indirect, Way::Direct, Way::Mmap];

/// Writes `data` at `lba` with `way`.
pub(crate) fn write_with(ctx: &Ctx, way: Way, lba: u64, data: &[u8]) -> Result<(), Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    match way {
        Way::Indirect => {
            let t = dev.write_blocks(lba, data, BlockIo::indirect())?;
            ensure(
                t.bytes == data.len(),
                format!("indirect write moved {} bytes", t.bytes),
            )
        }
        Way::Direct => {
            let buf = DirectBuf::from_slice(data);
            let t = dev.write_blocks(lba, &buf, BlockIo::direct())?;
            ensure(
                t.bytes == data.len(),
                format!("direct write moved {} bytes", t.bytes),
            )?;
            ensure(
                t.mode == sgmap::Mode::Direct,
                format!("direct write ran as {} ({:?})", t.mode, t.fallback),
            )
        }
        Way::Mmap => {
            let mut m: MappedDevice = dev.map_reserved(data.len())?;
            ensure(
                m.len() >= data.len(),
                format!("granted {} < {}", m.len(), data.len()),
            )?;
            m.as_mut_slice().ok_or("read-write mapping")?[..data.len()].copy_from_slice(data);
            let out = m.write_blocks(lba, (data.len() / block) as u32)?;
            ensure(
                out.mode == sgmap::Mode::Mmap,
                format!("mmap write ran as {}", out.mode),
            )?;
            ensure(out.transferred() == data.len(), "mmap write length")
        }
    }
}

/// Reads `len` bytes at `lba` with `way`.
pub(crate) fn read_with(ctx: &Ctx, way: Way, lba: u64, len: usize) -> Result<Vec<u8>, Failed> {
    let dev = open(ctx)?;
    let block = dev.block_size()? as usize;
    match way {
        Way::Indirect => {
            let mut buf = vec![0u8; len];
            dev.read_blocks(lba, &mut buf, BlockIo::indirect())?;
            Ok(buf)
        }
        Way::Direct => {
            let mut buf = DirectBuf::new(len);
            let t = dev.read_blocks(lba, &mut buf, BlockIo::direct())?;
            ensure(
                t.mode == sgmap::Mode::Direct,
                format!("direct read ran as {} ({:?})", t.mode, t.fallback),
            )?;
            Ok(buf.to_vec())
        }
        Way::Mmap => {
            let mut m = dev.map_reserved(len)?;
            let data = m.read_blocks(lba, (len / block) as u32)?;
            Ok(data.to_vec())
        }
    }
}

/// A pattern of `len` bytes distinct per seed and block.
pub(crate) fn data(seed: u64, lba: u64, block: usize, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    pattern(seed, lba, block, &mut v);
    v
}

/// Fails at the first differing byte.
pub(crate) fn same(got: &[u8], want: &[u8], what: &str) -> Result<(), Failed> {
    ensure(
        got.len() == want.len(),
        format!("{what}: {} bytes, expected {}", got.len(), want.len()),
    )?;
    match got.iter().zip(want).position(|(a, b)| a != b) {
        Some(i) => Err(format!(
            "{what}: first difference at byte {i} (got {:#04x}, want {:#04x})",
            got[i], want[i]
        )
        .into()),
        None => Ok(()),
    }
}

/// How many of the requests whose `write()` began at `submitted` cannot have
/// completed by `asked` with `latency` per command. scsi_debug completes a
/// command no sooner than `latency` after it reached the device, which is
/// after its `write()` began, and timers never fire early: so a request
/// submitted less than `latency` before `asked` is still unfinished then,
/// however slowly the machine ran. A busy host only lowers this count; it
/// never makes it wrong.
pub(crate) fn surely_unfinished(submitted: &[Instant], asked: Instant, latency: Duration) -> usize {
    submitted
        .iter()
        .filter(|&&t| asked.saturating_duration_since(t) < latency)
        .count()
}

/// Runs `f` while another thread sends this one SIGUSR1 every 10 ms, with a
/// counting handler installed without SA_RESTART, so a blocking call in `f`
/// sees EINTR. Puts the old disposition back; returns `f`'s result and how
/// many signals arrived.
pub(crate) fn under_sigusr1<T>(f: impl FnOnce() -> T) -> Result<(T, usize), Failed> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);
    extern "C" fn count_signal(_: libc::c_int) {
        SIGNALS.fetch_add(1, Ordering::SeqCst);
    }
    let act = SigAction::new(
        SigHandler::Handler(count_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only touches an atomic.
    let old = unsafe { sigaction(Signal::SIGUSR1, &act) }?;
    SIGNALS.store(0, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let pelter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: `me` is the calling thread, alive until `stop` is set and this thread joined.
                unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let out = f();
    stop.store(true, Ordering::SeqCst);
    let _ = pelter.join();
    // SAFETY: puts back the disposition found before.
    unsafe { sigaction(Signal::SIGUSR1, &old) }?;
    Ok((out, SIGNALS.load(Ordering::SeqCst)))
}
