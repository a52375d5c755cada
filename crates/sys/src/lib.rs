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
//!
//! The [`bsg`] module holds the Linux 7.1+ ABI for SCSI passthrough through
//! io_uring on the bsg node ([`bsg_uring_cmd`], [`BsgScsiStatus`]); its layout
//! is checked against a 7.x `<linux/bsg.h>` (`tests/bsg_layout.rs`).
#![no_std]

pub mod bsg;
mod consts;
mod hdr;
pub mod ioctl;
mod scsi;

pub use bsg::{bsg_uring_cmd, BsgScsiStatus};
pub use consts::*;
pub use hdr::*;
pub use scsi::*;
