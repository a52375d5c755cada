//! Many commands in flight on one fd (the sg driver's asynchronous
//! write()/read() interface), with indirect or direct IO.

use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sgmap::{DirectBuf, Direction, IoBuf, OpenOptions, Payload, Queue, Ticket};

use crate::args::{self, Out};
use crate::command::{check_transfer_len, parse_command, sgmap_command, sgmap_outcome, Asked};
use crate::device::{open_options, SGMAP_OPEN_READ_ONLY};
use crate::error::{guard, sgmap_result, Fail};

/// Up to 16 commands in flight on one fd (opaque), for indirect and direct
/// IO. Made by `sgmap_queue_open`, released by `sgmap_queue_close`.
///
/// The queue owns the data of each command until its completion is
/// collected: a write's bytes are copied at submit, and a read's bytes
/// arrive in a buffer the completion owns. So nothing the caller frees or
/// reuses can be in the kernel's hands.
///
/// Thread safety: every function may be called from any thread; a lock
/// inside the queue makes the calls take turns, so a blocking wait holds up
/// the others on the same queue (use `sgmap_queue_wait_timeout`, or poll
/// `sgmap_queue_fd`, when several threads share one). `sgmap_queue_close`
/// must not overlap any other call on it.
#[derive(Debug)]
pub struct sgmap_queue {
    inner: Mutex<Inner>,
}

/// The queue and the tickets of its pending commands, by number (how C
/// names them).
#[derive(Debug)]
struct Inner {
    queue: Queue,
    tickets: HashMap<u64, Ticket>,
}

/// A collected command of a queue (opaque): its ticket, outcome and data.
/// Release it with `sgmap_completion_free`. Immutable: any thread may read it.
#[derive(Debug)]
pub struct sgmap_completion {
    ticket: u64,
    outcome: sgmap_outcome,
    core: sgmap::Completion,
    path: std::path::PathBuf,
}

impl sgmap_queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// # Safety
///
/// `q` must be NULL or a live queue.
unsafe fn queue<'a>(q: *const sgmap_queue) -> Result<&'a sgmap_queue, Fail> {
    // SAFETY: NULL or a live queue per the caller's contract.
    unsafe { args::input(q, "queue") }
}

/// Opens `path` (flags as for `sgmap_device_open`; a queue needs read-write,
/// so `SGMAP_OPEN_READ_ONLY` is refused) and makes a queue of it. The first
/// command after power on gets a UNIT ATTENTION: call `sgmap_wait_ready` on
/// a device handle first.
///
/// # Safety
///
/// `path` must be NULL or a NUL-terminated string; `out` must be NULL or
/// valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_open(
    path: *const c_char,
    flags: u32,
    out: *mut *mut sgmap_queue,
) -> sgmap_result {
    guard("sgmap_queue_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(std::ptr::null_mut()) };
        // SAFETY: NULL or NUL-terminated per the caller's contract.
        let path = unsafe { args::path(path, "path") }?;
        if flags & SGMAP_OPEN_READ_ONLY != 0 {
            return Err(Fail::invalid(
                "a queue submits with write(2), which needs a read-write open; drop SGMAP_OPEN_READ_ONLY",
            ));
        }
        let options: OpenOptions = open_options(flags)?;
        let queue = Queue::new(options.open(&path)?)?;
        let q = Box::new(sgmap_queue {
            inner: Mutex::new(Inner {
                queue,
                tickets: HashMap::new(),
            }),
        });
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(Box::into_raw(q)) };
        Ok(())
    })
}

/// Waits for every command still in flight (their completions are
/// discarded), then closes the queue. NULL does nothing.
///
/// # Safety
///
/// `q` must be NULL or a queue from `sgmap_queue_open`, closed once, with no
/// other call on it running or following.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_close(q: *mut sgmap_queue) {
    if q.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: made by Box::into_raw in sgmap_queue_open, released once.
        drop(unsafe { Box::from_raw(q) });
    });
}

/// Submits a command and returns at once, storing its ticket in `*ticket`
/// (NULL if you do not need it). `cmd->mode` is `SGMAP_MODE_INDIRECT` or
/// `SGMAP_MODE_DIRECT` (the queue then uses a page-aligned buffer of its
/// own); mmap IO has its own home, the pool.
///
/// For `SGMAP_DIR_TO_DEVICE`, `cmd->data` is copied: the caller's buffer is
/// free again when this returns. For `SGMAP_DIR_FROM_DEVICE`, `cmd->data`
/// must be NULL: the bytes arrive in the completion
/// (`sgmap_completion_data`).
///
/// With 16 commands already in the kernel this first waits for one (kept
/// for the next wait): a full queue is back-pressure, never an error.
///
/// # Safety
///
/// `q` must be NULL or a live queue; `cmd` must be NULL or a valid
/// `sgmap_command` (its `cdb` and `data` valid for their lengths); `ticket`
/// must be NULL or valid for a write of one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_submit(
    q: *mut sgmap_queue,
    cmd: *const sgmap_command,
    ticket: *mut u64,
) -> sgmap_result {
    guard("sgmap_queue_submit", || {
        // SAFETY: NULL or a live queue per the caller's contract.
        let q = unsafe { queue(q) }?;
        let ticket = Out::optional(ticket, "ticket")?;
        // SAFETY: NULL or a valid command per the caller's contract.
        let c = unsafe { args::input(cmd, "cmd") }?;
        // SAFETY: `cmd->cdb` per the caller's contract.
        let (command, direction, asked) = unsafe { parse_command(c) }?;
        if asked == Asked::Mmap {
            return Err(Fail::invalid(
                "a queue does indirect or direct IO; mmap-ed commands in flight need a pool (sgmap_pool_open)",
            ));
        }
        check_transfer_len(c.data_len)?;
        let new_buf = |len: usize| -> IoBuf {
            if asked == Asked::Direct {
                DirectBuf::new(len).into()
            } else {
                vec![0u8; len].into()
            }
        };
        let payload = match direction {
            Direction::None => {
                if !c.data.is_null() {
                    return Err(Fail::invalid(
                        "SGMAP_DIR_NONE with a data buffer; set cmd->data to NULL",
                    ));
                }
                Payload::None
            }
            Direction::FromDevice => {
                if !c.data.is_null() {
                    return Err(Fail::invalid(
                        "a queued read brings its bytes in the completion: set cmd->data to NULL \
                         and read them with sgmap_completion_data",
                    ));
                }
                Payload::read(new_buf(c.data_len))
            }
            Direction::ToDevice => {
                // SAFETY: NULL or valid for `data_len` bytes per the caller's contract.
                let src =
                    unsafe { args::bytes(c.data.cast_const().cast(), c.data_len, "cmd->data") }?;
                let mut buf = new_buf(src.len());
                buf.copy_from_slice(src);
                Payload::write(buf)
            }
        };
        let t = {
            let mut g = q.lock();
            let t = g
                .queue
                .submit(&command, payload)
                .map_err(|r| Fail::from(r.into_parts().0))?;
            g.tickets.insert(t.id(), t);
            t
        };
        if let Some(o) = ticket {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(t.id()) };
        }
        Ok(())
    })
}

fn completion(inner: &mut Inner, c: sgmap::Completion) -> *mut sgmap_completion {
    inner.tickets.remove(&c.ticket.id());
    Box::into_raw(Box::new(sgmap_completion {
        ticket: c.ticket.id(),
        outcome: sgmap_outcome::from_core(&c.outcome),
        core: c,
        path: inner.queue.path().to_path_buf(),
    }))
}

/// What the wait functions share: check `out`, run `f` under the lock,
/// hand out the completion (or NULL).
///
/// # Safety
///
/// As the wait functions.
unsafe fn wait_with(
    q: *mut sgmap_queue,
    out: *mut *mut sgmap_completion,
    f: impl FnOnce(&mut Inner) -> Result<Option<sgmap::Completion>, Fail>,
) -> Result<(), Fail> {
    let out = Out::new(out, "out")?;
    // SAFETY: valid for a write per the caller's contract.
    unsafe { out.put(std::ptr::null_mut()) };
    // SAFETY: NULL or a live queue per the caller's contract.
    let q = unsafe { queue(q) }?;
    let mut guard = q.lock();
    if let Some(c) = f(&mut guard)? {
        let c = completion(&mut guard, c);
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(c) };
    }
    Ok(())
}

/// Blocks until a command completes and stores its completion in `*out`
/// (release it with `sgmap_completion_free`). `SGMAP_OK` means a completion
/// was collected, whatever its SCSI status: check `sgmap_completion_check`
/// or the outcome. `SGMAP_INVALID_REQUEST` when no command is pending.
///
/// # Safety
///
/// `q` must be NULL or a live queue; `out` must be NULL or valid for a
/// write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_wait(
    q: *mut sgmap_queue,
    out: *mut *mut sgmap_completion,
) -> sgmap_result {
    guard("sgmap_queue_wait", || {
        // SAFETY: the caller's contract.
        unsafe { wait_with(q, out, |i| Ok(Some(i.queue.wait()?))) }
    })
}

/// Blocks until the command with `ticket` completes (the others stay in the
/// kernel meanwhile) and stores its completion in `*out`.
///
/// # Safety
///
/// `q` must be NULL or a live queue; `out` must be NULL or valid for a
/// write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_wait_for(
    q: *mut sgmap_queue,
    ticket: u64,
    out: *mut *mut sgmap_completion,
) -> sgmap_result {
    guard("sgmap_queue_wait_for", || {
        // SAFETY: the caller's contract.
        unsafe {
            wait_with(q, out, |i| {
                let t = i.tickets.get(&ticket).copied().ok_or_else(|| {
                    Fail::new(
                        sgmap_result::SGMAP_INVALID_REQUEST,
                        format!(
                            "{}: command #{ticket} is not pending on this queue: it was never \
                             submitted here or was already collected",
                            i.queue.path().display()
                        ),
                    )
                })?;
                Ok(Some(i.queue.wait_for(t)?))
            })
        }
    })
}

/// Waits at most `timeout_ms` milliseconds (0: just look) for a completion.
/// `SGMAP_OK` with `*out` set when one arrived; `SGMAP_OK` with `*out` NULL
/// when none did (or none is pending).
///
/// # Safety
///
/// `q` must be NULL or a live queue; `out` must be NULL or valid for a
/// write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_wait_timeout(
    q: *mut sgmap_queue,
    timeout_ms: u32,
    out: *mut *mut sgmap_completion,
) -> sgmap_result {
    guard("sgmap_queue_wait_timeout", || {
        let t = Duration::from_millis(u64::from(timeout_ms));
        // SAFETY: the caller's contract.
        unsafe { wait_with(q, out, |i| Ok(i.queue.wait_timeout(t)?)) }
    })
}

/// Counts of a queue's commands.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sgmap_queue_stats {
    /// Submitted, completion not yet handed out.
    pub pending: usize,
    /// In the kernel now (at most 16).
    pub in_flight: usize,
    /// The most the queue has had in the kernel at once.
    pub peak_in_flight: usize,
}

/// Fills `*out` with the queue's counts.
///
/// # Safety
///
/// `q` must be NULL or a live queue; `out` must be NULL or valid for a
/// write of one `sgmap_queue_stats`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_get_stats(
    q: *const sgmap_queue,
    out: *mut sgmap_queue_stats,
) -> sgmap_result {
    guard("sgmap_queue_get_stats", || {
        // SAFETY: NULL or a live queue per the caller's contract.
        let q = unsafe { queue(q) }?;
        let out = Out::new(out, "out")?;
        let stats = {
            let g = q.lock();
            sgmap_queue_stats {
                pending: g.queue.pending(),
                in_flight: g.queue.in_flight(),
                peak_in_flight: g.queue.peak_in_flight(),
            }
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(stats) };
        Ok(())
    })
}

/// Stores the queue's fd in `*out`, for the caller's own poll(2): it polls
/// readable when a completion is ready, and `sgmap_queue_wait_timeout(q, 0,
/// ...)` then collects it. The queue keeps owning the fd: do not close it.
///
/// # Safety
///
/// `q` must be NULL or a live queue; `out` must be NULL or valid for a
/// write of one `int`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_queue_fd(
    q: *const sgmap_queue,
    out: *mut libc::c_int,
) -> sgmap_result {
    guard("sgmap_queue_fd", || {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        // SAFETY: NULL or a live queue per the caller's contract.
        let q = unsafe { queue(q) }?;
        let out = Out::new(out, "out")?;
        let fd = q.lock().queue.as_fd().as_raw_fd();
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(fd) };
        Ok(())
    })
}

/// # Safety
///
/// `c` must be NULL or a live completion.
unsafe fn comp<'a>(c: *const sgmap_completion) -> Result<&'a sgmap_completion, Fail> {
    // SAFETY: NULL or a live completion per the caller's contract.
    unsafe { args::input(c, "completion") }
}

/// Stores the completion's ticket (what `sgmap_queue_submit` returned) in `*out`.
///
/// # Safety
///
/// `c` must be NULL or a live completion; `out` must be NULL or valid for a
/// write of one `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_completion_ticket(
    c: *const sgmap_completion,
    out: *mut u64,
) -> sgmap_result {
    guard("sgmap_completion_ticket", || {
        // SAFETY: NULL or a live completion per the caller's contract.
        let c = unsafe { comp(c) }?;
        let out = Out::new(out, "out")?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(c.ticket) };
        Ok(())
    })
}

/// Copies the completion's outcome (status, sense, residual, the mode that
/// really ran) into `*out`.
///
/// # Safety
///
/// `c` must be NULL or a live completion; `out` must be NULL or valid for a
/// write of one `sgmap_outcome`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_completion_outcome(
    c: *const sgmap_completion,
    out: *mut sgmap_outcome,
) -> sgmap_result {
    guard("sgmap_completion_outcome", || {
        // SAFETY: NULL or a live completion per the caller's contract.
        let c = unsafe { comp(c) }?;
        let out = Out::new(out, "out")?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(c.outcome) };
        Ok(())
    })
}

/// Stores the address and length of the bytes the device transferred: for a
/// read, the data read (empty for commands without data). Valid until
/// `sgmap_completion_free`.
///
/// # Safety
///
/// `c` must be NULL or a live completion; `ptr` and `len` must be NULL or
/// valid for a write of one pointer and one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_completion_data(
    c: *const sgmap_completion,
    ptr: *mut *const u8,
    len: *mut usize,
) -> sgmap_result {
    guard("sgmap_completion_data", || {
        // SAFETY: NULL or a live completion per the caller's contract.
        let c = unsafe { comp(c) }?;
        let ptr = Out::new(ptr, "ptr")?;
        let len = Out::new(len, "len")?;
        let bytes = c.core.bytes();
        // SAFETY: checked, valid for writes per the caller's contract.
        unsafe { ptr.put(bytes.as_ptr()) };
        // SAFETY: as above.
        unsafe { len.put(bytes.len()) };
        Ok(())
    })
}

/// `SGMAP_OK` when the completed command succeeded, else `SGMAP_SCSI_ERROR`
/// with the failure (naming the device and command) as the last error.
///
/// # Safety
///
/// `c` must be NULL or a live completion.
#[no_mangle]
pub unsafe extern "C" fn sgmap_completion_check(c: *const sgmap_completion) -> sgmap_result {
    guard("sgmap_completion_check", || {
        // SAFETY: NULL or a live completion per the caller's contract.
        let c = unsafe { comp(c) }?;
        c.core.outcome.clone().check(&c.path)?;
        Ok(())
    })
}

/// Releases a completion and its data. NULL does nothing.
///
/// # Safety
///
/// `c` must be NULL or a completion from a queue wait, freed once.
#[no_mangle]
pub unsafe extern "C" fn sgmap_completion_free(c: *mut sgmap_completion) {
    if c.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: made by Box::into_raw in a wait, released once.
        drop(unsafe { Box::from_raw(c) });
    });
}
