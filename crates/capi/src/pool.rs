//! Zero-copy commands in flight: a pool of fds on one device, each with its
//! own mapped reserved buffer.

use std::collections::HashMap;
use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sgmap::{Pool, PoolCompletion, Ticket};

use crate::args::{self, Out};
use crate::command::{parse_command, sgmap_command, sgmap_outcome, Asked};
use crate::error::{guard, sgmap_result, Fail};

/// `sgmap_pool_submit`: use whichever buffer is free.
pub const SGMAP_POOL_ANY: usize = -1isize as usize;

/// The most fds a pool may open: far more than any device queue takes.
const MAX_FDS: usize = 4096;

/// N fds on one device, each with its mapped reserved buffer: N mmap-ed
/// (zero-copy) commands in flight at once (opaque). Made by
/// `sgmap_pool_open`, released by `sgmap_pool_close`.
///
/// A buffer is free, in flight, or lent: `sgmap_pool_wait` lends the
/// buffer of the command it hands out (its bytes are the read's data) until
/// `sgmap_pool_release`. Only free buffers are leased and submitted.
///
/// Thread safety: every function may be called from any thread; a lock
/// inside the pool makes the calls take turns (a blocking wait holds up the
/// others). A lent buffer is the caller's until released; a leased one is
/// filled by the caller and then submitted: do that from one thread, or
/// guard it with a lock of your own, since another thread's
/// `SGMAP_POOL_ANY` submit may take a leased buffer first (the submit with
/// the stale index then fails with `SGMAP_WRONG_STATE`). `sgmap_pool_close`
/// must not overlap any other call on the pool.
#[derive(Debug)]
pub struct sgmap_pool {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    pool: Pool,
    /// Buffers handed out by a wait and not yet released.
    lent: Vec<bool>,
    /// Each buffer's address and the pool's usable length.
    buffers: Vec<*mut u8>,
    /// The tickets of pending commands, by number.
    tickets: HashMap<u64, Ticket>,
}

// SAFETY: the raw pointers are addresses of the pool's own mappings, only
// handed to C and never dereferenced here; the pool itself is Send.
unsafe impl Send for Inner {}

impl sgmap_pool {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// # Safety
///
/// `p` must be NULL or a live pool.
unsafe fn pool<'a>(p: *const sgmap_pool) -> Result<&'a sgmap_pool, Fail> {
    // SAFETY: NULL or a live pool per the caller's contract.
    unsafe { args::input(p, "pool") }
}

/// Opens `path` `fds` times read-write and maps a reserved buffer of
/// `buffer_bytes` (rounded up to a page) on each; the kernel may grant less:
/// `sgmap_pool_get_info` gives the usable length. The first command after
/// power on gets a UNIT ATTENTION: call `sgmap_wait_ready` on a device
/// handle first.
///
/// # Safety
///
/// `path` must be NULL or a NUL-terminated string; `out` must be NULL or
/// valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_open(
    path: *const c_char,
    fds: usize,
    buffer_bytes: usize,
    out: *mut *mut sgmap_pool,
) -> sgmap_result {
    guard("sgmap_pool_open", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(std::ptr::null_mut()) };
        // SAFETY: NULL or NUL-terminated per the caller's contract.
        let path = unsafe { args::path(path, "path") }?;
        if fds == 0 || fds > MAX_FDS {
            return Err(Fail::invalid(format!(
                "{fds} fds; a pool has 1 to {MAX_FDS} (one per command in flight)"
            )));
        }
        if buffer_bytes == 0 {
            return Err(Fail::invalid(
                "0-byte buffers; ask for the largest transfer you need",
            ));
        }
        // As Pool::open does, keeping each mapping's address for C.
        let mut mapped = Vec::with_capacity(fds);
        let mut buffers = Vec::with_capacity(fds);
        for _ in 0..fds {
            let mut m = sgmap::Device::open(&path)?.map_reserved(buffer_bytes)?;
            let ptr = match m.as_mut_slice() {
                Some(b) => b.as_mut_ptr(),
                None => m.as_slice().as_ptr().cast_mut(),
            };
            buffers.push(ptr);
            mapped.push(m);
        }
        // Slot i of the pool is mapped[i]; moving a MappedDevice does not
        // move its mapping.
        let pool = Pool::from_mapped(mapped)?;
        let p = Box::new(sgmap_pool {
            inner: Mutex::new(Inner {
                lent: vec![false; fds],
                buffers,
                tickets: HashMap::new(),
                pool,
            }),
        });
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(Box::into_raw(p)) };
        Ok(())
    })
}

/// Waits for every command still in flight, then closes every fd and
/// unmaps every buffer (pointers from the pool become invalid). NULL does
/// nothing.
///
/// # Safety
///
/// `p` must be NULL or a pool from `sgmap_pool_open`, closed once, with no
/// other call on it running or following.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_close(p: *mut sgmap_pool) {
    if p.is_null() {
        return;
    }
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: made by Box::into_raw in sgmap_pool_open, released once.
        drop(unsafe { Box::from_raw(p) });
    });
}

/// A pool's shape and counts.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct sgmap_pool_info {
    /// Fds (and buffers) in the pool: its depth.
    pub fds: usize,
    /// The usable length of every buffer (the smallest mapping).
    pub buffer_len: usize,
    /// Commands submitted whose completion has not been handed out.
    pub pending: usize,
    /// Commands in the kernel now.
    pub in_flight: usize,
    /// Buffers free for a lease or a submit.
    pub free: usize,
    /// Buffers handed out by a wait and not yet released.
    pub lent: usize,
    /// The most commands the pool has had in the kernel at once.
    pub peak_in_flight: usize,
}

/// Fills `*out` with the pool's shape and counts.
///
/// # Safety
///
/// `p` must be NULL or a live pool; `out` must be NULL or valid for a write
/// of one `sgmap_pool_info`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_get_info(
    p: *const sgmap_pool,
    out: *mut sgmap_pool_info,
) -> sgmap_result {
    guard("sgmap_pool_get_info", || {
        // SAFETY: NULL or a live pool per the caller's contract.
        let p = unsafe { pool(p) }?;
        let out = Out::new(out, "out")?;
        let info = {
            let g = p.lock();
            let lent = g.lent.iter().filter(|&&l| l).count();
            sgmap_pool_info {
                fds: g.pool.len(),
                buffer_len: g.pool.buffer_len(),
                pending: g.pool.pending(),
                in_flight: g.pool.in_flight(),
                free: g.pool.idle().saturating_sub(lent),
                lent,
                peak_in_flight: g.pool.peak_in_flight(),
            }
        };
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { out.put(info) };
        Ok(())
    })
}

impl Inner {
    /// The free buffer an `SGMAP_POOL_ANY` submit (and a lease) uses: the
    /// lowest-numbered buffer that is neither in flight nor lent.
    fn next_free(&mut self) -> Result<usize, Fail> {
        let Inner { pool, lent, .. } = self;
        let found = (0..lent.len()).find(|&i| !lent[i] && pool.lease_at(i).is_some());
        found.ok_or_else(|| {
            Fail::new(
                sgmap_result::SGMAP_WRONG_STATE,
                format!(
                    "{}: every buffer of the pool is in flight or lent; wait for a completion \
                     (sgmap_pool_wait) and release it (sgmap_pool_release)",
                    self.pool.path().display()
                ),
            )
        })
    }

    /// Checks that buffer `index` exists and is free for a submit.
    fn check_free(&mut self, index: usize) -> Result<(), Fail> {
        let path = self.pool.path().display().to_string();
        let n = self.lent.len();
        if index >= n {
            return Err(Fail::invalid(format!(
                "buffer {index} does not exist: the pool has {n} (0 to {}); pass an index from \
                 sgmap_pool_lease, or SGMAP_POOL_ANY",
                n - 1
            )));
        }
        if self.lent[index] {
            return Err(Fail::new(
                sgmap_result::SGMAP_WRONG_STATE,
                format!(
                    "{path}: buffer {index} still holds a completion's data; release it with \
                     sgmap_pool_release before it carries another command"
                ),
            ));
        }
        if self.pool.lease_at(index).is_none() {
            return Err(Fail::new(
                sgmap_result::SGMAP_WRONG_STATE,
                format!(
                    "{path}: buffer {index} is in flight (another submit took it); lease again"
                ),
            ));
        }
        Ok(())
    }
}

/// Finds a free buffer (neither in flight nor lent; the one an
/// `SGMAP_POOL_ANY` submit would use now), for filling before a write:
/// stores its index in `*index`, its address in `*buf` and its usable
/// length in `*len`; submit with that index. Reading needs no lease: submit
/// with `SGMAP_POOL_ANY`. `SGMAP_WRONG_STATE` when no buffer is free.
///
/// # Safety
///
/// `p` must be NULL or a live pool; `index`, `buf` and `len` must be NULL or
/// valid for a write of one `size_t`, one pointer and one `size_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_lease(
    p: *mut sgmap_pool,
    index: *mut usize,
    buf: *mut *mut u8,
    len: *mut usize,
) -> sgmap_result {
    guard("sgmap_pool_lease", || {
        // SAFETY: NULL or a live pool per the caller's contract.
        let p = unsafe { pool(p) }?;
        let index = Out::new(index, "index")?;
        let buf = Out::new(buf, "buf")?;
        let len = Out::new(len, "len")?;
        let (i, ptr, n) = {
            let mut g = p.lock();
            let i = g.next_free()?;
            (i, g.buffers[i], g.pool.buffer_len())
        };
        // SAFETY: all three checked, valid for writes per the caller's contract.
        unsafe { index.put(i) };
        // SAFETY: as above.
        unsafe { buf.put(ptr) };
        // SAFETY: as above.
        unsafe { len.put(n) };
        Ok(())
    })
}

/// Submits `cmd` as mmap-ed IO in a free buffer (`cmd->mode` must be
/// `SGMAP_MODE_MMAP` and `cmd->data` NULL; `cmd->data_len` at most the
/// buffer length) and returns at once, storing the ticket in `*ticket` (NULL
/// if not needed). `index` is the buffer from `sgmap_pool_lease` (filled for
/// a write), or `SGMAP_POOL_ANY` for any free buffer (the lowest-numbered
/// one neither in flight nor lent). `SGMAP_WRONG_STATE` when no buffer is
/// free, or buffer `index` is in flight or still lent;
/// `SGMAP_INVALID_ARGUMENT` when the pool has no buffer `index`.
///
/// # Safety
///
/// `p` must be NULL or a live pool; `cmd` must be NULL or a valid
/// `sgmap_command`; `ticket` must be NULL or valid for a write of one
/// `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_submit(
    p: *mut sgmap_pool,
    index: usize,
    cmd: *const sgmap_command,
    ticket: *mut u64,
) -> sgmap_result {
    guard("sgmap_pool_submit", || {
        // SAFETY: NULL or a live pool per the caller's contract.
        let p = unsafe { pool(p) }?;
        let ticket = Out::optional(ticket, "ticket")?;
        // SAFETY: NULL or a valid command per the caller's contract.
        let c = unsafe { args::input(cmd, "cmd") }?;
        // SAFETY: `cmd->cdb` per the caller's contract.
        let (command, direction, asked) = unsafe { parse_command(c) }?;
        if asked != Asked::Mmap || !c.data.is_null() {
            return Err(Fail::invalid(
                "a pool runs mmap-ed commands: set cmd->mode to SGMAP_MODE_MMAP and cmd->data to \
                 NULL (fill a write's buffer from sgmap_pool_lease); use a queue for indirect or direct IO",
            ));
        }
        let mut g = p.lock();
        let index = if index == SGMAP_POOL_ANY {
            g.next_free()?
        } else {
            g.check_free(index)?;
            index
        };
        let lease = g.pool.lease_at(index).ok_or_else(|| {
            Fail::new(
                sgmap_result::SGMAP_WRONG_STATE,
                format!("buffer {index} is not free"),
            )
        })?;
        let t = lease.submit(&command, direction, c.data_len)?;
        g.tickets.insert(t.id(), t);
        drop(g);
        if let Some(o) = ticket {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { o.put(t.id()) };
        }
        Ok(())
    })
}

/// A collected command of a pool. Its data stays valid, and its buffer
/// lent to the caller, until `sgmap_pool_release(pool, index)`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct sgmap_pool_completion {
    /// The ticket `sgmap_pool_submit` returned.
    pub ticket: u64,
    /// Which buffer (and fd) ran the command.
    pub index: usize,
    /// The bytes the device transferred, in the mapped buffer (for a read,
    /// the data read, with no copy made).
    pub data: *const u8,
    /// Their number: `outcome.transferred`.
    pub len: usize,
    /// Status, sense, residual and mode (`SGMAP_MODE_MMAP`).
    pub outcome: sgmap_outcome,
}

/// Collects a completion with `f`, lends its buffer, and describes it.
fn collect(
    inner: &mut Inner,
    f: impl for<'a> FnOnce(
        &'a mut Pool,
        &HashMap<u64, Ticket>,
    ) -> Result<Option<PoolCompletion<'a>>, Fail>,
) -> Result<Option<sgmap_pool_completion>, Fail> {
    let Inner {
        pool,
        lent,
        tickets,
        ..
    } = inner;
    let Some(c) = f(pool, tickets)? else {
        return Ok(None);
    };
    let index = c.index();
    let data = c.data();
    let out = sgmap_pool_completion {
        ticket: c.ticket().id(),
        index,
        data: data.as_ptr(),
        len: data.len(),
        outcome: sgmap_outcome::from_core(c.outcome()),
    };
    // Dropping `c` frees the buffer in the pool; `lent` keeps it from
    // carrying another command until the caller releases it.
    drop(c);
    if let Some(l) = lent.get_mut(index) {
        *l = true;
    }
    tickets.remove(&out.ticket);
    Ok(Some(out))
}

/// Blocks until a command completes and describes it in `*out`, lending its
/// buffer until `sgmap_pool_release`. `SGMAP_OK` means a completion was
/// collected, whatever its SCSI status: check `out->outcome.failure`.
/// `SGMAP_INVALID_REQUEST` when no command is pending.
///
/// # Safety
///
/// `p` must be NULL or a live pool; `out` must be NULL or valid for a write
/// of one `sgmap_pool_completion`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_wait(
    p: *mut sgmap_pool,
    out: *mut sgmap_pool_completion,
) -> sgmap_result {
    guard("sgmap_pool_wait", || {
        // SAFETY: NULL or a live pool per the caller's contract.
        let p = unsafe { pool(p) }?;
        let out = Out::new(out, "out")?;
        let c = collect(&mut p.lock(), |pool, _| Ok(Some(pool.wait()?)))?;
        if let Some(c) = c {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { out.put(c) };
        }
        Ok(())
    })
}

/// Blocks until the command with `ticket` completes and describes it in
/// `*out`, lending its buffer until `sgmap_pool_release`.
///
/// # Safety
///
/// `p` must be NULL or a live pool; `out` must be NULL or valid for a write
/// of one `sgmap_pool_completion`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_wait_for(
    p: *mut sgmap_pool,
    ticket: u64,
    out: *mut sgmap_pool_completion,
) -> sgmap_result {
    guard("sgmap_pool_wait_for", || {
        // SAFETY: NULL or a live pool per the caller's contract.
        let p = unsafe { pool(p) }?;
        let out = Out::new(out, "out")?;
        let c = collect(&mut p.lock(), |pool, tickets| {
            let t = tickets.get(&ticket).copied().ok_or_else(|| {
                Fail::new(
                    sgmap_result::SGMAP_INVALID_REQUEST,
                    format!(
                        "{}: command #{ticket} is not pending in this pool: it was never submitted \
                         here or was already collected",
                        pool.path().display()
                    ),
                )
            })?;
            Ok(Some(pool.wait_for(t)?))
        })?;
        if let Some(c) = c {
            // SAFETY: checked, valid for a write per the caller's contract.
            unsafe { out.put(c) };
        }
        Ok(())
    })
}

/// Waits at most `timeout_ms` milliseconds (0: just look) for a completion.
/// When one arrives, `*ready` is true and `*out` describes it (its buffer
/// lent until `sgmap_pool_release`); otherwise `*ready` is false.
///
/// # Safety
///
/// `p` must be NULL or a live pool; `out` and `ready` must be NULL or valid
/// for a write of one `sgmap_pool_completion` and one `bool`.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_wait_timeout(
    p: *mut sgmap_pool,
    timeout_ms: u32,
    out: *mut sgmap_pool_completion,
    ready: *mut bool,
) -> sgmap_result {
    guard("sgmap_pool_wait_timeout", || {
        // SAFETY: NULL or a live pool per the caller's contract.
        let p = unsafe { pool(p) }?;
        let out = Out::new(out, "out")?;
        let ready = Out::new(ready, "ready")?;
        // SAFETY: checked, valid for a write per the caller's contract.
        unsafe { ready.put(false) };
        let t = Duration::from_millis(u64::from(timeout_ms));
        let c = collect(&mut p.lock(), |pool, _| Ok(pool.wait_timeout(t)?))?;
        if let Some(c) = c {
            // SAFETY: both checked, valid for writes per the caller's contract.
            unsafe { out.put(c) };
            // SAFETY: as above.
            unsafe { ready.put(true) };
        }
        Ok(())
    })
}

/// Gives back the buffer a wait lent: its data pointer becomes invalid and
/// the buffer may carry the next command. `SGMAP_WRONG_STATE` when buffer
/// `index` is not lent, `SGMAP_INVALID_ARGUMENT` when there is no such buffer.
///
/// # Safety
///
/// `p` must be NULL or a live pool.
#[no_mangle]
pub unsafe extern "C" fn sgmap_pool_release(p: *mut sgmap_pool, index: usize) -> sgmap_result {
    guard("sgmap_pool_release", || {
        // SAFETY: NULL or a live pool per the caller's contract.
        let p = unsafe { pool(p) }?;
        let mut g = p.lock();
        let path = g.pool.path().display().to_string();
        let n = g.lent.len();
        match g.lent.get_mut(index) {
            None => Err(Fail::invalid(format!(
                "buffer {index} does not exist: the pool has {n}"
            ))),
            Some(false) => Err(Fail::new(
                sgmap_result::SGMAP_WRONG_STATE,
                format!("{path}: buffer {index} is not lent: release each completion once"),
            )),
            Some(l) => {
                *l = false;
                Ok(())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_is_size_max() {
        assert_eq!(super::SGMAP_POOL_ANY, usize::MAX);
    }
}
