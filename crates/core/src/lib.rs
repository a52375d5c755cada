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
//! ## The sg driver's rules, and where sgmap keeps them
//!
//! - The reserved size is asked for and granted, maybe smaller: sgmap always
//!   reads it back ([`MappedDevice::granted`]) and maps what was granted.
//! - Once mapped, an fd's reserved size is frozen for the life of the fd:
//!   [`Device::map_reserved`] consumes the [`Device`].
//! - One mmap-ed command at a time per fd, and the program must not touch the
//!   buffer while the kernel does: commands take `&mut MappedDevice`.
//! - Direct IO can silently become indirect: [`Outcome::mode`] says what happened.
//! - SCSI errors are not errnos: [`Outcome`] carries status, host and driver
//!   bytes and decoded [`sense`]; [`Outcome::check`] makes an [`Error`].
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
pub mod response;
pub mod sense;

pub use buffer::DirectBuf;
pub use command::{Command, Data, Direction, DEFAULT_TIMEOUT};
pub use device::{Device, NodeKind, OpenOptions, RequestInfo, RequestState, Reset, ScsiId};
pub use error::{Error, OsErrorKind, Result, ScsiError, ScsiErrorKind};
pub use helpers::{BlockIo, BufferMode, Split, Transfer, UNIT_ATTENTION_RETRIES};
pub use mmap::{Access, DeviceInfo, MappedDevice, View};
pub use outcome::{
    command_name, driver_byte_name, host_byte_name, status_name, Fallback, Mode, Outcome,
};
