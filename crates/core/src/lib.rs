//! sgmap: Linux SCSI generic (sg) IO with mmap-ed reserved buffers.
#![warn(missing_docs)]

pub mod cdb;
pub mod discover;
pub mod response;
pub mod sense;
