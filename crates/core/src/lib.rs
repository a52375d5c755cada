//! # sgmap: Linux SCSI generic (sg) IO, with mmap-ed IO as an API
//!
//! sgmap moves data between a SCSI device's `/dev/sgN` node and a program in
//! the three ways the sg driver offers, behind one command API, and says
//! honestly which one really happened:
//!
//! | mode | how | what sgmap adds |
//! | --- | --- | --- |
//! | **mmap** | the fd's reserved buffer is mapped into the program (`SG_FLAG_MMAP_IO`, `dxferp = NULL`): no copy through user memory | reads back the granted size, maps exactly that, checks every transfer fits, and makes the buffer untouchable while the kernel uses it |
//! | **direct** | the kernel pins the caller's pages (`SG_FLAG_DIRECT_IO`) | page-aligned [`DirectBuf`], and an [`Outcome`] that says whether it really was direct and why not ([`Fallback`]) |
//! | **indirect** | the kernel copies through its own buffers | the same outcome report |
//!
//! ## mmap-ed IO
//!
//! ```no_run
//! use sgmap::Device;
//!
//! let dev = Device::open("/dev/sg0")?;
//! dev.wait_ready()?; // pass over the UNIT ATTENTION after power on
//! let block = dev.block_size()? as usize;
//! // Ask for 1 MiB; the kernel may grant less (it clamps to the queue's limit).
//! let mut mapped = dev.map_reserved(1 << 20)?;
//! let blocks = (mapped.len() / block) as u32;
//! let data: &[u8] = mapped.read_blocks(0, blocks)?; // the device wrote these bytes in place
//! println!("read {} bytes, first {:02x?}", data.len(), &data[..4]);
//!
//! // Writing: fill the buffer, then send it.
//! mapped.as_mut_slice().expect("mapped read-write")[..block].fill(0xab);
//! mapped.write_blocks(100, 1)?;
//! # Ok::<(), sgmap::Error>(())
//! ```
//!
//! ## Direct IO
//!
//! ```no_run
//! use sgmap::{BlockIo, Device, DirectBuf, Mode};
//!
//! let dev = Device::open("/dev/sg0")?;
//! let mut buf = DirectBuf::new(256 * 1024); // page-aligned
//! let t = dev.read_blocks(0, &mut buf, BlockIo::direct())?;
//! match t.mode {
//!     Mode::Direct => println!("direct IO: {} bytes straight into our pages", t.bytes),
//!     other => println!("the kernel did {other} IO instead: {:?}", t.fallback),
//! }
//! # Ok::<(), sgmap::Error>(())
//! ```
//!
//! ## Indirect IO and raw commands
//!
//! ```no_run
//! use std::time::Duration;
//! use sgmap::{cdb::Cdb, Command, Data, Device};
//!
//! let dev = Device::open("/dev/sg0")?;
//! let mut buf = vec![0u8; 4096];
//! let cmd = Command::new(Cdb::read_10(0, 8)).timeout(Duration::from_secs(5));
//! let outcome = dev.execute(&cmd, Data::FromDevice(&mut buf))?;
//! if let Some(sense) = &outcome.sense {
//!     eprintln!("sense: {sense}");
//! }
//! let outcome = outcome.check(dev.path())?; // a SCSI failure becomes an Error
//! println!("{} bytes in {:?} ({} IO)", outcome.transferred(), outcome.duration, outcome.mode);
//! # Ok::<(), sgmap::Error>(())
//! ```
//!
//! ## Many commands in flight: queue, pool, stream
//!
//! `SG_IO` waits for its one command. The driver's asynchronous interface
//! (`write()` a header to submit, `read()` it back to collect) keeps up to 16
//! commands per fd in flight, and sgmap offers it three ways:
//!
//! - [`Queue`]: one fd, up to [`MAX_IN_FLIGHT`] indirect or direct commands.
//!   It owns each command's buffer ([`Payload`]) until the [`Completion`]
//!   gives it back, so no buffer the kernel may still write can be touched or
//!   freed; it matches each completion to its request by `pack_id`
//!   (`SG_SET_FORCE_PACK_ID`) whatever order the device finishes in; the
//!   driver's EDOM ("16 outstanding") becomes waiting, never an error; and a
//!   dropped queue collects what is still in flight first. Its fd polls
//!   readable when a completion is ready, for the caller's own event loop.
//! - [`Pool`]: N fds, each with its own mapped reserved buffer, for N mmap-ed
//!   (zero-copy) commands in flight. A completion lends the bytes in place
//!   ([`PoolCompletion::data`]) and frees the buffer when dropped. A pool fd
//!   carries only mmap-ed commands, so the driver's EBUSY (an indirect
//!   request borrowed the reserved buffer) cannot happen.
//! - [`stream`]: a range of blocks read or written with a chosen mode,
//!   transfer size and depth, the queue kept full, data delivered in order;
//!   [`stream::read_extents`] and [`stream::write_extents`] walk any sequence
//!   of extents (cycling over a few blocks, say) until a
//!   [`stream::Until`] limit of commands, bytes or time.
//!
//! ```no_run
//! use sgmap::{cdb::Cdb, Command, Direction, DirectBuf, Payload, Pool, Queue};
//! use sgmap::stream::{self, Options, StreamMode};
//!
//! // Sixteen direct-IO reads in flight on one fd; collect them as they finish.
//! let mut q = Queue::open("/dev/sg0")?;
//! q.device().wait_ready()?;
//! for i in 0..16u64 {
//!     let cmd = Command::new(Cdb::read(i * 128, 128)?).direct();
//!     q.submit(&cmd, Payload::read(DirectBuf::new(128 * 512)))?;
//! }
//! for done in q.drain()? {
//!     let done = done.check(q.path())?;
//!     println!("{}: {} bytes, {} IO", done.ticket, done.bytes().len(), done.outcome.mode);
//! }
//!
//! // Four mmap-ed reads in flight, each in its own fd's mapped buffer.
//! let mut pool = Pool::open("/dev/sg0", 4, 64 * 1024)?;
//! let mut lba = 0;
//! while let Some(lease) = pool.lease() {
//!     lease.submit(&Command::new(Cdb::read(lba, 128)?), Direction::FromDevice, 128 * 512)?;
//!     lba += 128;
//! }
//! while pool.pending() > 0 {
//!     let done = pool.wait()?;
//!     done.check()?;
//!     let bytes: &[u8] = done.data(); // no copy: the mapped buffer itself
//!     println!("{}: {} bytes from fd #{}", done.ticket(), bytes.len(), done.index());
//! }
//!
//! // Or let a stream keep eight commands in flight and hand over the data in order.
//! let opts = Options::new(StreamMode::Mmap).transfer_bytes(256 * 1024).depth(8);
//! let totals = stream::read("/dev/sg0", 0..65_536, opts, |lba, data: &[u8]| {
//!     println!("LBA {lba}: {} bytes", data.len());
//!     Ok::<_, sgmap::Error>(())
//! })?;
//! println!("{} bytes, {} commands, {} IO", totals.bytes, totals.commands, totals.mode);
//! # Ok::<(), sgmap::Error>(())
//! ```
//!
//! ## io_uring on the bsg node (Linux 7.1+)
//!
//! [`BsgRing`] sends SCSI commands through io_uring on the device's bsg node
//! (`/dev/bsg/H:C:T:L`, found from `/dev/sgN`): many commands per system
//! call, any depth, and registered buffers ([`FixedBuf`]) that the kernel
//! pins once. It takes the same [`Payload`] and gives the same
//! [`Completion`] as [`Queue`], and keeps each buffer until its completion
//! is reaped. On older kernels [`BsgRing::open`] says Linux 7.1 is needed.
//!
//! ```no_run
//! use sgmap::{cdb::Cdb, BsgRing, Command, Payload};
//!
//! let mut ring = BsgRing::options().depth(64).open("/dev/sg0")?;
//! for (i, buf) in ring.register_buffers(64, 4096)?.into_iter().enumerate() {
//!     ring.submit(&Command::new(Cdb::read(i as u64 * 8, 8)?), Payload::read(buf))?;
//! }
//! ring.flush()?; // all 64 in one io_uring_enter
//! for done in ring.drain() {
//!     let done = done?.check(ring.path())?;
//!     println!("{}: {} bytes", done.ticket, done.bytes().len());
//! }
//! # Ok::<(), sgmap::Error>(())
//! ```
//!
//! ## The sg driver's rules, and where sgmap keeps them
//!
//! - The reserved size is asked for and granted, maybe smaller: sgmap always
//!   reads it back ([`MappedDevice::granted`]) and maps what was granted.
//! - Once mapped, an fd's reserved size is frozen for the life of the fd:
//!   [`Device::map_reserved`] consumes the [`Device`].
//! - One mmap-ed command at a time per fd, and the program must not touch the
//!   buffer while the kernel does: commands take `&mut MappedDevice`.
//! - The driver lends an fd's reserved buffer to any indirect command whose
//!   data fits it (and to direct IO that falls back): on a mapped fd sgmap
//!   sends only mmap-ed commands and commands without data, and refuses
//!   anything else ([`Device::execute`]), its own helpers included. No
//!   command of sgmap's own ever passes through a mapped buffer: the block
//!   size is learnt while mapping.
//! - sgmap never opens a device a second time behind a handle (the largest
//!   transfer is read from the handle's own fd), so exclusive, read-only and
//!   non-blocking handles answer every helper the same.
//! - A handle opened read-only sends only the kernel's read-safe commands
//!   and nothing that sends data, even for root, whom the kernel lets
//!   through ([`OpenOptions::read_only`]).
//!
//! ## Threads and fork()
//!
//! - [`Device`] is `Send` and `Sync`: commands from several threads on one
//!   handle run concurrently. [`MappedDevice`], [`Queue`] and [`Pool`] are
//!   `Send`; their commands take `&mut self`, so one thread at a time uses
//!   each, and no byte of a buffer can be read while the kernel may write it.
//!   [`View`]s of a mapping may be read from several threads while no command
//!   runs.
//! - After `fork()` a child shares each inherited fd, and each mapped buffer,
//!   with its parent. The child may read an inherited mapping (synchronising
//!   with the parent itself), but its mmap-ed commands on it, and a pool's
//!   submits and `read()`s, are refused ([`MappedDevice::is_inherited`]): they
//!   would race the parent's (EBUSY, or one process finding the other's data).
//!   A child opens and maps devices of its own. Both processes may send
//!   commands on an inherited unmapped [`Device`]; then neither may map it.
//! - The sg driver refuses `read()` (EPERM) on an fd opened before the
//!   process changed its credentials (setuid, capset, ...): a [`Queue`] or
//!   [`Pool`] must be opened after them.
//! - Direct IO can silently become indirect: [`Outcome::mode`] says what happened.
//! - SCSI errors are not errnos: [`Outcome`] carries status, host and driver
//!   bytes and decoded [`sense`]; [`Outcome::check`] makes an [`Error`].
//! ## Signals
//!
//! `SG_IO` waits interruptibly. A signal whose handler lacks `SA_RESTART`
//! ends it with EINTR and leaves the command orphaned in the device, still
//! using the caller's memory (a direct-IO buffer's pinned pages, the mapped
//! reserved buffer); with `SA_RESTART`, or a SIGSTOP and SIGCONT, the kernel
//! restarts the ioctl, which sends the command again. sgmap's rules, for
//! [`Device::execute`], [`MappedDevice::execute`], every helper built on
//! them and the C API's `sgmap_execute` and block functions alike:
//!
//! - **No call returns while the kernel may still use its memory.** A
//!   signal never ends a command early: sgmap waits for the kernel through
//!   it, so a [`DirectBuf`], a `Vec` or the mapping can be dropped or read as
//!   soon as the call returns.
//! - **No command is sent twice unreported.** The result is the command's
//!   own, and it went once; the only exception is a handle opened
//!   read-only, where a restarted ioctl can send a command that cannot go
//!   by the reserved buffer (direct IO, or longer than it) again: sgmap then
//!   waits for every copy and fails with [`Error::Interrupted`], saying how
//!   many went.
//!
//! How: every sg fd gets `SG_SET_KEEP_ORPHAN` (a signal's orphan stays for
//! `read()` to collect) and `SG_SET_FORCE_PACK_ID` (`read()` picks by
//! `pack_id`) when sgmap opens it. mmap IO, and indirect IO that fits the
//! reserved buffer (flagged `SG_FLAG_MMAP_IO` with its data pointer, which
//! the driver copies through that buffer as it would anyway), go with one
//! `SG_IO`: an orphan holds the reserved buffer until sgmap reads it, so a
//! restarted ioctl fails EBUSY without sending anything. Other commands go
//! with `write()` then `read()` by `pack_id` (a `read()` cut short takes
//! nothing and is read again), at the cost of a second system call (in the
//! test bed, direct IO at 4 KiB runs at about 0.6 of the single ioctl's
//! rate). A read-only fd cannot `write()`, nor can an fd opened under other
//! credentials (one inherited across `fork()`); those use `SG_IO` and check
//! the driver's request table after it. Whoever else reads responses from a
//! sgmap fd must leave both settings on, pass `pack_id`s below 0x40000000,
//! and not read with `pack_id` -1 while sgmap calls run on it.
//! (in-kernel tests: `signal_without_sa_restart_mid_command_completes_once_no_orphan`,
//! `signal_with_sa_restart_mid_command_completes_once_no_orphan`,
//! `signal_stop_and_continue_mid_command_completes_once_no_orphan`,
//! `signal_on_read_only_handle_never_resends_silently_no_orphan`; from C,
//! `ffi-examples/signals.c`.)
//!
//! ## The sg driver's mmap contract, point by point
//!
//! The sg HOWTO's chapter on `mmap()` promises the following; here is how
//! sgmap honours each point (the in-kernel test that shows it is named in
//! brackets, in `crates/core/tests/kernel/`).
//!
//! 1. **`mmap(start, length, prot, flags, fd, 0)`**: the driver ignores
//!    `start`, refuses a `length` over the reserved size (ENOMEM) and any
//!    offset but 0 (EINVAL). sgmap always maps at offset 0 with
//!    `MAP_SHARED` (never `MAP_PRIVATE`), exactly the granted size rounded
//!    down to a page, `PROT_READ` ([`Access::ReadOnly`], for handles opened
//!    read-only or callers who only read) or `PROT_READ | PROT_WRITE`
//!    ([`Access::ReadWrite`]). (in-kernel tests: `mmap_driver_rules_offset_zero_length_within_reserved_exact_slices`,
//!    `read_only_handle_maps_read_only_and_reads`)
//! 2. **The reserved buffer** is 32 KiB by default; a larger one is asked for
//!    with `SG_SET_RESERVED_SIZE` before any mapping, rounded up to a page.
//!    [`Device::map_reserved`] does both, then reads back what the kernel
//!    granted (it clamps to the queue's limit and halves on allocation
//!    failure) and maps that. (in-kernel tests: `reserved_size_is_clamped_to_the_queue_limit_and_read_back`,
//!    `reserved_request_is_rounded_up_to_a_page`, `driver_enomem_einval_emsgsize_rules_hold_under_the_api`)
//! 3. **`mmap()` may be called several times** on one fd: [`MappedDevice::view`]
//!    makes another read-only mapping of the same buffer, e.g. one per reader
//!    thread. Views borrow the device, and every command takes
//!    `&mut MappedDevice`, so while any view lives no command can use the
//!    buffer: the one-command-at-a-time rule holds. (in-kernel tests: `views_are_separate_mappings_of_one_buffer_read_by_threads`)
//! 4. **`munmap()` is not required before `close()`**: sgmap unmaps anyway,
//!    and the types make dropping the device while a view lives a compile
//!    error (see the `compile_fail` examples on [`MappedDevice`]). The C API
//!    documents that its buffer pointer dies with the handle.
//! 5. **After `fork()`** parent and child share the mapped area and the fd;
//!    the last to close frees it. A child can read what the parent fetched
//!    (in-kernel tests: `fork_child_reads_what_the_parent_fetched_with_mmap`). Rust's borrows
//!    do not cross processes, so sgmap keeps one command at a time per fd
//!    across them itself: only the process that mapped the buffer runs
//!    commands in it; the child's are refused (in-kernel tests:
//!    `forked_child_is_refused_commands_on_an_inherited_mapping`). A child
//!    that reads the buffer synchronises with the parent (a pipe or a
//!    process-shared lock) so that it does not read while a command runs.
//!    Simplest: let each process open its own fd, each with its own reserved
//!    buffer.
//! 6. **`SG_FLAG_MMAP_IO` works with `ioctl(SG_IO)` and with `write()`**:
//!    [`MappedDevice::execute`] uses SG_IO; a [`Pool`] submits with
//!    `write()` and collects with `read()`, on the same kind of fd.
//!    (in-kernel tests: `mmap_io_works_through_sg_io_and_through_write_read_on_one_fd`)
//! 7. **The driver does not check that the mapping covers the transfer**
//!    (it only records that `mmap()` was called once): sgmap checks every mmap-ed
//!    transfer against the mapped length before asking the kernel, so the
//!    kernel never fills pages the program has not mapped.
//!    (in-kernel tests: `mmap_transfer_longer_than_mapping_is_refused_before_the_kernel`)
//! 8. **Touching beyond the mapping raises SIGBUS or SIGSEGV**: no safe API
//!    can index past it; slices and views are exactly the mapped length, and
//!    the C API returns that length with the pointer.
//!
#![doc = include_str!("../docs/kernels.md")]
#![warn(missing_docs)]

mod buffer;
pub mod cdb;
mod command;
mod device;
pub mod discover;
mod error;
mod helpers;
mod io;
mod mmap;
mod outcome;
mod pool;
mod queue;
pub mod response;
pub mod sense;
pub mod stream;
mod uring;

pub use buffer::{BufferError, DirectBuf};
pub use command::{transfer_too_long, Command, Data, Direction, DEFAULT_TIMEOUT, MAX_SG_TRANSFER};
pub use device::{Device, NodeKind, OpenOptions, RequestInfo, RequestState, Reset, ScsiId};
pub use error::{Driver, Error, Incomplete, OsErrorKind, Report, Result, ScsiError, ScsiErrorKind};
pub use helpers::{BlockIo, BufferMode, Split, Transfer, UNIT_ATTENTION_RETRIES};
pub use mmap::{Access, DeviceInfo, MapError, MappedDevice, View};
pub use outcome::{
    command_name, driver_byte_name, host_byte_name, status_name, Fallback, Mode, Outcome,
};
pub use pool::{Lease, Pool, PoolCompletion};
pub use queue::{Completion, IoBuf, Payload, Queue, Rejected, Ticket, MAX_IN_FLIGHT};
pub use uring::{
    bsg_node, BsgRing, FixedBuf, Refused, RingOptions, DEFAULT_DEPTH as RING_DEFAULT_DEPTH,
    MAX_DEPTH as RING_MAX_DEPTH, NEEDS_KERNEL as RING_NEEDS_KERNEL,
};
