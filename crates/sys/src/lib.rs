//! Raw bindings to the Linux SCSI generic (sg) driver's v3 interface.
//!
//! This crate mirrors `<scsi/sg.h>` (plus the few kernel-header items glibc's copy
//! lacks, such as [`SG_FLAG_MMAP_IO`]) and wraps each `SG_*` ioctl in a thin
//! `unsafe fn` that returns [`nix::Result`]. It adds no policy: the safe layer is
//! the `sgmap` crate.
//!
//! Layouts and constant values are tested against the system's
//! `/usr/include/scsi/sg.h` and `/usr/include/scsi/scsi.h` by compiling a C probe
//! at test time (`tests/layout.rs`).
#![no_std]

mod consts;
mod hdr;
pub mod ioctl;
mod scsi;

pub use consts::*;
pub use hdr::*;
pub use scsi::*;
