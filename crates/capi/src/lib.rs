//! # sgmap's C ABI
//!
//! `libsgmap.so` / `libsgmap.a` and the header `include/sgmap.h`, generated
//! from this crate by `cargo xtask codegen`. The header is the API
//! documentation for C and C++ users; this crate is not documented by
//! rustdoc.
//!
//! Conventions, the same in every function:
//! - Opaque handles (`sgmap_device`, `sgmap_device_list`); one release
//!   function per constructor; releasing NULL does nothing.
//! - Every function that can fail returns an `sgmap_result` whose numbers
//!   never change meaning. Its details (message, errno, the failed command's
//!   outcome with sense data) are the calling thread's last error, read with
//!   `sgmap_last_error_message` and `sgmap_last_error_info`.
//! - Every pointer argument is checked: NULL gives `SGMAP_NULL_PARAMETER`
//!   and never a crash; lengths are checked against the real buffers sgmap
//!   owns (the mapped buffer).
//! - No panic crosses into C: every function catches it and returns
//!   `SGMAP_PANIC`.
//! - Handles may be shared between threads (see `sgmap_device`).
#![allow(non_camel_case_types)]

pub mod args;
pub mod buffer;
pub mod command;
pub mod device;
pub mod discover;
pub mod error;
pub mod helpers;
pub mod pool;
pub mod queue;
pub mod ring;

use std::ffi::c_char;

/// The library's version as "MAJOR.MINOR.PATCH". Compare with the header's
/// `SGMAP_VERSION_STRING` to catch a header/library mismatch. Never NULL;
/// the string is static.
#[no_mangle]
pub extern "C" fn sgmap_version() -> *const c_char {
    error::guard_value(c"?".as_ptr(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// The library's version as one number, MAJOR * 1000000 + MINOR * 1000 +
/// PATCH, to compare with the header's `SGMAP_VERSION_NUMBER`.
#[no_mangle]
pub extern "C" fn sgmap_version_number() -> u32 {
    error::guard_value(0, version_number)
}

fn version_number() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_number_matches_the_string() {
        // SAFETY: a static NUL-terminated string.
        let s = unsafe { std::ffi::CStr::from_ptr(super::sgmap_version()) };
        let parts: Vec<u32> = s
            .to_str()
            .unwrap()
            .split('.')
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(
            super::sgmap_version_number(),
            parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]
        );
    }
}
