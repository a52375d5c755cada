//! SCSI commands through io_uring on the device's bsg node (Linux 7.1 and
//! later), on buffers the ring registers and owns.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sgmap::{BsgRing, Direction, FixedBuf, IoBuf, Payload, Refused};

use crate::args::{self, Out};
use crate::command::{parse_command, sgmap_command, sgmap_outcome, Asked};
use crate::device::SGMAP_OPEN_READ_ONLY;
use crate::error::{guard, sgmap_result, Fail};

/// The buffer index of a command without data (`SGMAP_DIR_NONE`), and of a
/// completion that has no buffer.
pub const SGMAP_RING_NO_BUFFER: u32 = u32::MAX;

/// The deepest ring `sgmap_ring_open` sets up (the kernel's limit).
pub const SGMAP_RING_MAX_DEPTH: u32 = 32_768;

// A literal above so the header has it; it must be the core's.
const _: () = assert!(SGMAP_RING_MAX_DEPTH == sgmap::RING_MAX_DEPTH);

/// SCSI commands through io_uring on the device's bsg node (opaque): many
/// commands per system call, any depth, on registered buffers the ring owns.
/// Needs Linux 7.1 or later; on older kernels `sgmap_ring_open` fails
/// (`SGMAP_OPEN_FAILED`, the message says Linux 7.1 is needed): use a queue
/// (`sgmap_queue_open`) there. Made by `sgmap_ring_open`, released by
/// `sgmap_ring_close`.
///
/// Buffers: `sgmap_ring_register_buffers` allocates page-aligned buffers,
/// registers them with the kernel, and hands out their addresses. The ring
/// owns that memory and frees it in `sgmap_ring_close`. A buffer is *in
/// flight* from the `sgmap_ring_submit` that names it until `sgmap_ring_wait`
/// returns its completion: meanwhile the kernel may read or write it at any
/// moment, so the caller must neither read nor write it. Outside that, the
/// caller may fill it (before a write) and read it (after a read) freely.
/// A submit naming a buffer in flight is refused (`SGMAP_WRONG_STATE`).
///
/// Submission: `sgmap_ring_submit` only queues the command in the ring, with
/// no system call; `sgmap_ring_flush`, or any wait, hands every queued
/// command to the kernel in one system call.
///
/// Threads: the kernel finishes an io_uring command in work that runs on
/// the thread that submitted it, when that thread next enters the kernel.
/// Submit, flush and wait from one thread. Every function may be called from
/// any thread (a lock inside makes them take turns), but a thread that
/// waits for commands another thread submitted may wait until that thread
/// enters the kernel. `sgmap_ring_close` must not overlap any other call on
/// the ring.
#[derive(Debug)]
pub struct sgmap_ring {
    inner: Mutex<Inner>,
}

/// The ring, then its idle buffers: fields drop in order, so the ring waits
/// for its commands before any buffer memory is freed.
#[derive(Debug)]
struct Inner {
    ring: BsgRing,
    /// Index `i`: the registered buffer `i` when idle, `None` in flight.
    bufs: Vec<Option<FixedBuf>>,
    /// Index `i`: the address and capacity of buffer `i` (never changes).
    addrs: Vec<(usize, usize)>,
}

/// A collected command of a ring: its ticket, its buffer and what the kernel
/// reported. A plain value: it holds no memory and needs no release.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sgmap_ring_completion {
    /// What `sgmap_ring_submit` stored in `*ticket` for this command.
    pub ticket: u64,
    /// The registered buffer the command used (idle again now: read the data
    /// read there), or `SGMAP_RING_NO_BUFFER`.
    pub buffer: u32,
    /// 0 when the command ran: `outcome` says how. Otherwise the errno the
    /// kernel refused it with (it did not run) and every field of `outcome` is zero.
    pub os_errno: i32,
    /// Status, sense data, residual, bytes transferred.
    pub outcome: sgmap_outcome,
}

impl sgmap_ring {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// # Safety
///
/// `r` must be NULL or a live ring.
unsafe fn ring<'a>(r: *const sgmap_ring) -> Result<&'a sgmap_ring, Fail> {
    // SAFETY: NULL or a live ring per the caller's contract.
    unsafe { args::input(r, "ring") }
}

/// Opens the bsg node of `path` (an sg node such as /dev/sg0, the SCSI
/// disk's block device, or the bsg node /dev/bsg/H:C:T:L) and sets up an
/// io_uring of `depth` commands in flight (1 to `SGMAP_RING_MAX_DEPTH`).
/// `flags` is 0 or `SGMAP_OPEN_READ_ONLY` (then only read-safe commands
/// without data out are sent; the rest is refused before the kernel sees
/// it). The first media command after power on gets a UNIT ATTENTION: call
/// `sgmap_wait_ready` on a device handle first.
///
/// `SGMAP_OPEN_FAILED` on kernels before Linux 7.1 (no SCSI passthrough
/// through io_uring; the message says so), and when the node cannot be
/// opened (errno in the last error).
///
/// # Safety
///
/// `path` must be NULL or a NUL-terminated string; `out` must be NULL or
/// valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_open(
    path: *const c_char,
    depth: u32,
    flags: u32,
    out: *mut *mut sgmap_ring,
) -> sgmap_result {
    guard("sgmap_ring_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(std::ptr::null_mut()) };
        // SAFETY: NULL or NUL-terminated per the caller's contract.
        let path = unsafe { args::path(path, "path") }?;
        if flags & !SGMAP_OPEN_READ_ONLY != 0 {
            return Err(Fail::invalid(format!(
                "unknown or unsupported flag bits {:#x} for a ring; use 0 or SGMAP_OPEN_READ_ONLY",
                flags & !SGMAP_OPEN_READ_ONLY
            )));
        }
        if depth == 0 || depth > SGMAP_RING_MAX_DEPTH {
            return Err(Fail::invalid(format!(
                "{}: a ring of depth {depth}: give 1 to {SGMAP_RING_MAX_DEPTH} commands in flight",
                path.display()
            )));
        }
        let ring = BsgRing::options()
            .depth(depth)
            .read_only(flags & SGMAP_OPEN_READ_ONLY != 0)
            .open(&path)
            .map_err(for_c)?;
        let r = Box::new(sgmap_ring {
            inner: Mutex::new(Inner {
                ring,
                bufs: Vec::new(),
                addrs: Vec::new(),
            }),
        });
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(Box::into_raw(r)) };
        Ok(())
    })
}

/// The open's failure, with the hints that name Rust types told in C.
fn for_c(e: sgmap::Error) -> sgmap::Error {
    match e {
        sgmap::Error::Open { path, source, hint } if hint.contains("sgmap's Queue or Pool") => {
            let hint = if hint.contains("Linux 7.1") {
                "SCSI passthrough through io_uring on bsg needs Linux 7.1 or later; on this \
                 kernel use a queue (sgmap_queue_open) or a pool (sgmap_pool_open), the sg \
                 driver's v3 interface"
            } else {
                "io_uring is disabled for this process (sysctl kernel.io_uring_disabled, or a \
                 seccomp policy); enable it, or use a queue (sgmap_queue_open) or a pool \
                 (sgmap_pool_open)"
            };
            sgmap::Error::Open { path, source, hint }
        }
        other => other,
    }
}

/// Sends the commands submitted but not yet flushed, waits for every
/// command in flight (their completions are discarded: a write's data
/// reaches the device, but its status is not seen), then closes the ring and frees its registered buffers: every
/// address `sgmap_ring_register_buffers` gave is invalid afterwards. NULL
/// does nothing.
///
/// # Safety
///
/// `r` must be NULL or a ring from `sgmap_ring_open`, closed once, with no
/// other call on it running or following.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_close(r: *mut sgmap_ring) {
    if r.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: made by Box::into_raw in sgmap_ring_open, released once.
        drop(unsafe { Box::from_raw(r) });
    });
}

/// Allocates `count` page-aligned buffers of at least `len` bytes each
/// (rounded up to a page), registers them with the kernel (once per ring)
/// and, when `out_bufs` is not NULL, stores buffer `i`'s address in
/// `out_bufs[i]`. The ring owns them until `sgmap_ring_close`; see
/// `sgmap_ring` for when the caller may touch them. Their indexes, 0 to
/// `count - 1`, name them in `sgmap_ring_submit`.
///
/// `SGMAP_INVALID_REQUEST` when this ring already has buffers, or for a
/// `count` or `len` the kernel does not take (1 to 16384 buffers of up to
/// 1 GiB); the message says when the locked-memory limit (ulimit -l) is what
/// stops it.
///
/// # Safety
///
/// `r` must be NULL or a live ring; `out_bufs` must be NULL or valid for
/// writes of `count` pointers.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_register_buffers(
    r: *mut sgmap_ring,
    count: usize,
    len: usize,
    out_bufs: *mut *mut u8,
) -> sgmap_result {
    guard("sgmap_ring_register_buffers", || {
        // SAFETY: NULL or a live ring per the caller's contract.
        let r = unsafe { ring(r) }?;
        let out = Out::optional(out_bufs, "out_bufs")?;
        let mut g = r.lock();
        let mut bufs = g.ring.register_buffers(count, len)?;
        let mut addrs = Vec::with_capacity(bufs.len());
        for b in &mut bufs {
            let cap = b.capacity();
            b.set_len(cap);
            addrs.push((b.as_mut_ptr() as usize, cap));
        }
        if let Some(o) = out {
            for (i, &(addr, _)) in addrs.iter().enumerate() {
                // SAFETY: `out_bufs` is valid for `count` pointers per the
                // caller's contract, and `i < count`.
                unsafe { o.put_at(i, addr as *mut u8) };
            }
        }
        g.addrs = addrs;
        g.bufs = bufs.into_iter().map(Some).collect();
        Ok(())
    })
}

/// Stores the address and capacity of registered buffer `index` in `*ptr`
/// and `*capacity` (either may be NULL). `SGMAP_INVALID_ARGUMENT` for an
/// index past the registered buffers.
///
/// # Safety
///
/// `r` must be NULL or a live ring; `ptr` and `capacity` must be NULL or
/// valid for a write of one pointer and one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_buffer(
    r: *const sgmap_ring,
    index: u32,
    ptr: *mut *mut u8,
    capacity: *mut usize,
) -> sgmap_result {
    guard("sgmap_ring_buffer", || {
        // SAFETY: NULL or a live ring per the caller's contract.
        let r = unsafe { ring(r) }?;
        let ptr = Out::optional(ptr, "ptr")?;
        let capacity = Out::optional(capacity, "capacity")?;
        let g = r.lock();
        let &(addr, cap) = g
            .addrs
            .get(index as usize)
            .ok_or_else(|| bad_index(&g, index))?;
        if let Some(p) = ptr {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { p.put(addr as *mut u8) };
        }
        if let Some(c) = capacity {
            // SAFETY: as above.
            unsafe { c.put(cap) };
        }
        Ok(())
    })
}

fn bad_index(g: &Inner, index: u32) -> Fail {
    Fail::invalid(format!(
        "{}: buffer index {index} is out of range: this ring has {} registered buffers{}",
        g.ring.path().display(),
        g.addrs.len(),
        if g.addrs.is_empty() {
            "; call sgmap_ring_register_buffers first"
        } else {
            ""
        }
    ))
}

/// Queues a command on registered buffer `buffer` and returns at once,
/// without a system call, storing its ticket in `*ticket` (NULL if you do
/// not need it). `sgmap_ring_flush` or a wait hands it to the kernel.
///
/// The data is in the buffer, from its start: `cmd->data` must be NULL and
/// `cmd->data_len` (the transfer length) at most the buffer's capacity. For
/// `SGMAP_DIR_TO_DEVICE` fill the buffer before this call; for
/// `SGMAP_DIR_FROM_DEVICE` read it once its completion is returned. A
/// command without data (`SGMAP_DIR_NONE`) passes `SGMAP_RING_NO_BUFFER`.
/// `cmd->mode` may be `SGMAP_MODE_INDIRECT` or `SGMAP_MODE_DIRECT` (the
/// buffer is registered either way); `SGMAP_MODE_MMAP` and
/// `SGMAP_CMD_AT_TAIL` are refused.
///
/// The buffer is in flight from here until its completion is returned: a
/// second submit on it is `SGMAP_WRONG_STATE`. With `depth` commands already
/// in the ring this first waits for one of them (kept for the next wait).
///
/// # Safety
///
/// `r` must be NULL or a live ring; `cmd` must be NULL or a valid
/// `sgmap_command` (its `cdb` valid for `cdb_len` bytes); `ticket` must be
/// NULL or valid for a write of one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_submit(
    r: *mut sgmap_ring,
    cmd: *const sgmap_command,
    buffer: u32,
    ticket: *mut u64,
) -> sgmap_result {
    guard("sgmap_ring_submit", || {
        // SAFETY: NULL or a live ring per the caller's contract.
        let r = unsafe { ring(r) }?;
        let ticket = Out::optional(ticket, "ticket")?;
        // SAFETY: NULL or a valid command per the caller's contract.
        let c = unsafe { args::input(cmd, "cmd") }?;
        // SAFETY: `cmd->cdb` per the caller's contract.
        let (command, direction, asked) = unsafe { parse_command(c) }?;
        if asked == Asked::Mmap {
            return Err(Fail::invalid(
                "a ring moves data in its registered buffers; SGMAP_MODE_MMAP is for a device \
                 handle or a pool: use SGMAP_MODE_INDIRECT or SGMAP_MODE_DIRECT",
            ));
        }
        if !c.data.is_null() {
            return Err(Fail::invalid(
                "a ring command's data is in its registered buffer: set cmd->data to NULL and \
                 name the buffer by its index",
            ));
        }
        let mut g = r.lock();
        let payload = if direction == Direction::None {
            if buffer != SGMAP_RING_NO_BUFFER {
                return Err(Fail::invalid(
                    "SGMAP_DIR_NONE moves no data: pass SGMAP_RING_NO_BUFFER as the buffer",
                ));
            }
            Payload::None
        } else {
            let i = buffer as usize;
            let cap = g.addrs.get(i).ok_or_else(|| bad_index(&g, buffer))?.1;
            if c.data_len == 0 || c.data_len > cap {
                return Err(Fail::invalid(format!(
                    "{}: a transfer of {} bytes on buffer {buffer}: give 1 to its capacity of {cap} bytes",
                    g.ring.path().display(),
                    c.data_len
                )));
            }
            let Some(mut buf) = g.bufs[i].take() else {
                return Err(Fail::new(
                    sgmap_result::SGMAP_WRONG_STATE,
                    format!(
                        "{}: buffer {buffer} is in flight (a command on it has not been returned \
                         by sgmap_ring_wait yet); wait for it, or use another buffer",
                        g.ring.path().display()
                    ),
                ));
            };
            buf.set_len(c.data_len);
            if direction == Direction::FromDevice {
                Payload::read(buf)
            } else {
                Payload::write(buf)
            }
        };
        match g.ring.submit(&command, payload) {
            Ok(t) => {
                if let Some(o) = ticket {
                    // SAFETY: checked, valid for a write per the caller's contract.
                    unsafe { o.put(t.id()) };
                }
                Ok(())
            }
            Err(rej) => {
                let (e, data) = rej.into_parts();
                give_back(&mut g, data);
                Err(e.into())
            }
        }
    })
}

/// Puts a buffer that came back from the ring in its place again; returns
/// its index.
fn give_back(g: &mut Inner, data: Payload) -> u32 {
    match data.into_buffer().and_then(IoBuf::into_registered) {
        Some(mut b) => {
            let i = b.index();
            b.set_len(b.capacity());
            if let Some(slot) = g.bufs.get_mut(usize::from(i)) {
                *slot = Some(b);
            }
            u32::from(i)
        }
        None => SGMAP_RING_NO_BUFFER,
    }
}

/// Hands every queued command to the kernel in one system call and stores
/// how many went in `*submitted` (may be NULL).
///
/// # Safety
///
/// `r` must be NULL or a live ring; `submitted` must be NULL or valid for a
/// write of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_flush(
    r: *mut sgmap_ring,
    submitted: *mut usize,
) -> sgmap_result {
    guard("sgmap_ring_flush", || {
        // SAFETY: NULL or a live ring per the caller's contract.
        let r = unsafe { ring(r) }?;
        let submitted = Out::optional(submitted, "submitted")?;
        let n = r.lock().ring.flush()?;
        if let Some(o) = submitted {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(n) };
        }
        Ok(())
    })
}

/// Hands the queued commands to the kernel and waits for a completion: at
/// most `timeout_ms` milliseconds, 0 to just look, -1 for as long as it
/// takes. When one arrives, `*completed` is true and `*out` holds it, and
/// its buffer is idle again. When none does in time, or none is pending
/// (timeout 0 or more), `SGMAP_OK` with `*completed` false.
///
/// `SGMAP_OK` with a completion means the command ran, whatever its SCSI
/// status: look at `out->outcome.failure`. When the kernel refused a
/// command (it did not run), the result is that failure (`SGMAP_OS_ERROR`,
/// errno and message in the last error) with `*completed` true and `*out`
/// naming the command (`os_errno` set, buffer idle again).
/// `SGMAP_INVALID_REQUEST` for timeout -1 with nothing pending;
/// `SGMAP_INVALID_ARGUMENT` for a timeout below -1.
///
/// # Safety
///
/// `r` must be NULL or a live ring; `out` must be NULL or valid for a write
/// of one `sgmap_ring_completion`; `completed` must be NULL or valid for a
/// write of one `bool`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_wait(
    r: *mut sgmap_ring,
    timeout_ms: i32,
    out: *mut sgmap_ring_completion,
    completed: *mut bool,
) -> sgmap_result {
    guard("sgmap_ring_wait", || {
        let completed = Out::new(completed, "completed")?;
        // SAFETY: valid for a write per the caller's contract.
        unsafe { completed.put(false) };
        let out = Out::new(out, "out")?;
        // SAFETY: NULL or a live ring per the caller's contract.
        let r = unsafe { ring(r) }?;
        let timeout = match timeout_ms {
            -1 => None,
            t if t >= 0 => Some(Duration::from_millis(t as u64)),
            t => {
                return Err(Fail::invalid(format!(
                    "timeout {t} ms: give 0 or more milliseconds, or -1 to wait as long as it takes"
                )))
            }
        };
        let mut g = r.lock();
        let got: Result<Option<sgmap::Completion>, Refused> = match timeout {
            None => g.ring.wait().map(Some),
            // Looking without waiting also resets the eventfd when nothing is ready.
            Some(t) if t.is_zero() => g.ring.try_complete(),
            Some(t) => g.ring.wait_timeout(t),
        };
        match got {
            Ok(None) => Ok(()),
            Ok(Some(c)) => {
                let ticket = c.ticket.id();
                let outcome = sgmap_outcome::from_core(&c.outcome);
                let buffer = give_back(&mut g, c.data);
                // SAFETY: valid for a write per the caller's contract.
                unsafe {
                    out.put(sgmap_ring_completion {
                        ticket,
                        buffer,
                        os_errno: 0,
                        outcome,
                    })
                };
                // SAFETY: as above.
                unsafe { completed.put(true) };
                Ok(())
            }
            Err(refused) => {
                let (e, ticket, data) = refused.into_parts();
                let fail = Fail::from(e);
                if let Some(t) = ticket {
                    let buffer = give_back(&mut g, data);
                    // SAFETY: valid for a write per the caller's contract.
                    unsafe {
                        out.put(sgmap_ring_completion {
                            ticket: t.id(),
                            buffer,
                            os_errno: fail.errno().max(1),
                            outcome: sgmap_outcome::default(),
                        })
                    };
                    // SAFETY: as above.
                    unsafe { completed.put(true) };
                } else {
                    // A ring failure gives no buffer back: the ring keeps it.
                    drop(data);
                }
                Err(fail)
            }
        }
    })
}

/// Registers an eventfd with the ring (on the first call; later calls give
/// the same fd) and stores it in `*out`, for the caller's own poll(2) or
/// epoll: it polls readable when a completion has been posted. Then call
/// `sgmap_ring_wait(r, 0, ...)` until `*completed` is false; a call that
/// finds nothing ready resets the eventfd, so it never stays readable for
/// completions already collected and the caller need not read it. The ring
/// keeps owning the fd: do not close or read it.
///
/// Completions are posted by task work of the thread that submitted the
/// commands: poll on that thread, or have it enter the kernel
/// (`sgmap_ring_flush`, `sgmap_ring_wait`) for another thread to see them.
///
/// # Safety
///
/// `r` must be NULL or a live ring; `out` must be NULL or valid for a write
/// of one `int`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_event_fd(
    r: *mut sgmap_ring,
    out: *mut libc::c_int,
) -> sgmap_result {
    guard("sgmap_ring_event_fd", || {
        use std::os::fd::AsRawFd as _;
        // SAFETY: NULL or a live ring per the caller's contract.
        let r = unsafe { ring(r) }?;
        let out = Out::new(out, "out")?;
        let fd = r.lock().ring.register_event_fd()?.as_raw_fd();
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(fd) };
        Ok(())
    })
}

/// Stores in `*out` how many commands were submitted on the ring whose
/// completion `sgmap_ring_wait` has not returned yet (queued, in the
/// kernel, or done and not yet collected): their buffers are in flight.
///
/// # Safety
///
/// `r` must be NULL or a live ring; `out` must be NULL or valid for a write
/// of one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_ring_in_flight(
    r: *const sgmap_ring,
    out: *mut usize,
) -> sgmap_result {
    guard("sgmap_ring_in_flight", || {
        // SAFETY: NULL or a live ring per the caller's contract.
        let r = unsafe { ring(r) }?;
        let out = Out::new(out, "out")?;
        let n = r.lock().ring.pending();
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(n) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_open_arguments_are_refused_before_any_device_is_touched() {
        let mut r: *mut sgmap_ring = std::ptr::NonNull::dangling().as_ptr();
        let path = c"/dev/sg-does-not-exist";
        // SAFETY: a NUL-terminated path and a valid out pointer.
        let got = unsafe { sgmap_ring_open(path.as_ptr(), 0, 0, &mut r) };
        assert_eq!(got, sgmap_result::SGMAP_INVALID_ARGUMENT);
        assert!(r.is_null(), "a failed open stores NULL");
        // SAFETY: as above.
        let got = unsafe { sgmap_ring_open(path.as_ptr(), 8, 0x80, &mut r) };
        assert_eq!(got, sgmap_result::SGMAP_INVALID_ARGUMENT);
        // SAFETY: as above.
        let got = unsafe { sgmap_ring_open(path.as_ptr(), 8, 0, &mut r) };
        assert_eq!(got, sgmap_result::SGMAP_OPEN_FAILED);
        // SAFETY: NULL is allowed and checked.
        let got = unsafe { sgmap_ring_open(std::ptr::null(), 8, 0, &mut r) };
        assert_eq!(got, sgmap_result::SGMAP_NULL_PARAMETER);
    }

    #[test]
    fn null_rings_are_refused() {
        let mut n = 0usize;
        let mut got = true;
        let mut c = std::mem::MaybeUninit::<sgmap_ring_completion>::uninit();
        // SAFETY: a NULL ring is allowed and checked; the output is valid.
        let r = unsafe { sgmap_ring_in_flight(std::ptr::null(), &mut n) };
        assert_eq!(r, sgmap_result::SGMAP_NULL_PARAMETER);
        // SAFETY: as above.
        let r = unsafe { sgmap_ring_wait(std::ptr::null_mut(), 0, c.as_mut_ptr(), &mut got) };
        assert_eq!(r, sgmap_result::SGMAP_NULL_PARAMETER);
        assert!(!got);
        let null = std::ptr::null_mut();
        // SAFETY: NULL ring, command and ticket are allowed and checked.
        let r = unsafe { sgmap_ring_submit(null, std::ptr::null(), 0, std::ptr::null_mut()) };
        assert_eq!(r, sgmap_result::SGMAP_NULL_PARAMETER);
        // SAFETY: NULL does nothing.
        unsafe { sgmap_ring_close(null) };
    }

    #[test]
    fn open_hints_name_c_functions() {
        let e = sgmap::Error::Open {
            path: "/dev/bsg/0:0:0:0".into(),
            source: std::io::Error::from_raw_os_error(libc::EOPNOTSUPP),
            hint: "SCSI passthrough through io_uring on bsg needs Linux 7.1 or later; on \
                   this kernel use sgmap's Queue or Pool (the sg driver's v3 interface)",
        };
        let text = for_c(e).to_string();
        assert!(text.contains("Linux 7.1"), "{text}");
        assert!(text.contains("sgmap_queue_open"), "{text}");
        assert!(!text.contains("Queue or Pool"), "{text}");
    }
}
