//! Checking the pointers and lengths C callers pass in.

use std::ffi::{c_char, CStr};
use std::path::PathBuf;
use std::ptr::NonNull;

use crate::error::{sgmap_result, Fail};

/// Checks that `p` is non-NULL and aligned for `T`.
fn check_ptr<T>(p: *const T, name: &str) -> Result<(), Fail> {
    if p.is_null() {
        return Err(Fail::null(name));
    }
    let align = std::mem::align_of::<T>();
    if (p as usize) % align != 0 {
        return Err(Fail::invalid(format!(
            "`{name}` is not aligned for its type ({align} bytes); pass a properly declared variable"
        )));
    }
    Ok(())
}

/// A checked out-pointer: non-NULL and aligned. Writing through it is
/// unsafe: only the caller's contract says it is valid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Checks `p`; `name` is the parameter's name for the message.
    pub(crate) fn new(p: *mut T, name: &str) -> Result<Self, Fail> {
        check_ptr(p, name)?;
        NonNull::new(p).map(Out).ok_or_else(|| Fail::null(name))
    }

    /// Checks `p` when it is not NULL: `Ok(None)` for an optional output the
    /// caller does not want.
    pub(crate) fn optional(p: *mut T, name: &str) -> Result<Option<Self>, Fail> {
        if p.is_null() {
            Ok(None)
        } else {
            Self::new(p, name).map(Some)
        }
    }

    /// Writes `value` (without reading or dropping what was there).
    ///
    /// # Safety
    ///
    /// The pointer must be valid for a write of one `T`.
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: non-NULL and aligned (checked in `new`), valid per the caller.
        unsafe { self.0.as_ptr().write(value) }
    }

    /// Writes `value` at element `i` of the array the pointer starts.
    ///
    /// # Safety
    ///
    /// The pointer must be valid for writes of `i + 1` values of `T`.
    pub(crate) unsafe fn put_at(&self, i: usize, value: T) {
        // SAFETY: element `i` lies inside the array per the caller's
        // contract; the start is non-NULL and aligned (checked in `new`).
        let p = unsafe { self.0.as_ptr().add(i) };
        // SAFETY: as above: in the array, aligned, valid for a write.
        unsafe { p.write(value) }
    }
}

/// Checks an input pointer to one `T` and borrows it.
///
/// # Safety
///
/// When not NULL, `p` must point at a valid `T` that lives, unchanged, for `'a`.
pub(crate) unsafe fn input<'a, T>(p: *const T, name: &str) -> Result<&'a T, Fail> {
    check_ptr(p, name)?;
    // SAFETY: non-NULL and aligned, and valid per the caller's contract.
    Ok(unsafe { &*p })
}

/// The longest buffer sgmap accepts from C: Rust slices are limited to
/// `isize::MAX` bytes, and no real buffer comes near that.
const MAX_BUFFER: usize = isize::MAX as usize;

fn check_len(len: usize, name: &str) -> Result<(), Fail> {
    if len > MAX_BUFFER {
        return Err(Fail::invalid(format!(
            "`{name}` is {len} bytes, more than any buffer can hold; pass the buffer's real length"
        )));
    }
    Ok(())
}

/// Borrows a caller's buffer for reading: `len` bytes at `p`, which must
/// not be NULL (even when `len` is 0).
///
/// # Safety
///
/// When not NULL, `p` must be valid for reads of `len` bytes for `'a`, and
/// not written by anyone meanwhile.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8], Fail> {
    if p.is_null() {
        return Err(Fail::null(name));
    }
    check_len(len, name)?;
    // SAFETY: non-NULL, `len` is within isize::MAX, and valid per the caller.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// Borrows a caller's buffer for writing.
///
/// # Safety
///
/// When not NULL, `p` must be valid for reads and writes of `len` bytes for
/// `'a`, and not accessed by anyone else meanwhile.
pub(crate) unsafe fn bytes_mut<'a>(
    p: *mut u8,
    len: usize,
    name: &str,
) -> Result<&'a mut [u8], Fail> {
    if p.is_null() {
        return Err(Fail::null(name));
    }
    check_len(len, name)?;
    // SAFETY: non-NULL, `len` is within isize::MAX, and valid per the caller.
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// A path from a NUL-terminated C string (any bytes but NUL; Linux paths
/// need not be UTF-8).
///
/// # Safety
///
/// When not NULL, `p` must point at a NUL-terminated string.
pub(crate) unsafe fn path(p: *const c_char, name: &str) -> Result<PathBuf, Fail> {
    if p.is_null() {
        return Err(Fail::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    if bytes.is_empty() {
        return Err(Fail::invalid(format!(
            "`{name}` is an empty string; pass a device path such as /dev/sg0"
        )));
    }
    use std::os::unix::ffi::OsStrExt as _;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

/// Writes `text` into `buf` (`len` bytes) NUL-terminated, cut on a character
/// boundary when it does not fit; stores the full length in `*out_len`.
///
/// # Safety
///
/// When not NULL, `buf` must be valid for writes of `len` bytes, and
/// `out_len` for a write of one `usize`.
pub(crate) unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> Result<(), Fail> {
    let out_len = Out::optional(out_len, "out_len")?;
    if buf.is_null() {
        return Err(Fail::null("buf"));
    }
    check_len(len, "len")?;
    if let Some(o) = out_len {
        // SAFETY: valid for a write per the caller's contract.
        unsafe { o.put(text.len()) };
    }
    if len == 0 {
        return Err(Fail::new(
            sgmap_result::SGMAP_BUFFER_TOO_SMALL,
            format!(
                "the buffer has 0 bytes; the text needs {} and a NUL",
                text.len()
            ),
        ));
    }
    let mut n = text.len().min(len - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `buf` is valid for `len` bytes per the caller's contract, and
    // `n + 1 <= len`.
    let dst = unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), n + 1) };
    dst[..n].copy_from_slice(&text.as_bytes()[..n]);
    dst[n] = 0;
    if n < text.len() {
        return Err(Fail::new(
            sgmap_result::SGMAP_BUFFER_TOO_SMALL,
            format!(
                "the buffer has {len} bytes; the text needs {} and a NUL",
                text.len()
            ),
        ));
    }
    Ok(())
}

/// Copies a string into a fixed, NUL-terminated C array, cut to fit.
pub(crate) fn fill_array<const N: usize>(dst: &mut [c_char; N], text: &str) {
    let mut n = text.len().min(N.saturating_sub(1));
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    for (d, s) in dst.iter_mut().zip(&text.as_bytes()[..n]) {
        *d = *s as c_char;
    }
    for d in dst.iter_mut().skip(n) {
        *d = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buf: &[c_char]) -> String {
        // SAFETY: the tests pass buffers written by `write_text`, NUL-terminated.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn text_is_cut_on_a_character_boundary_and_stays_terminated() {
        let mut buf = [0x55 as c_char; 6];
        let mut n = 0;
        // SAFETY: `buf` has 6 bytes.
        let r = unsafe { write_text("abcé", buf.as_mut_ptr(), 5, &mut n) };
        assert_eq!(r.unwrap_err().code(), sgmap_result::SGMAP_BUFFER_TOO_SMALL);
        assert_eq!(n, 5);
        // "é" is two bytes: only "abc" fits in 4 bytes plus the NUL.
        assert_eq!(text(&buf), "abc");
        assert_eq!(buf[5], 0x55, "nothing written past `len`");
        // SAFETY: as above.
        let r = unsafe { write_text("abcé", buf.as_mut_ptr(), 6, std::ptr::null_mut()) };
        assert!(r.is_ok());
        assert_eq!(text(&buf), "abcé");
    }

    #[test]
    fn null_and_oversize_arguments_are_refused() {
        // SAFETY: NULL is checked before use.
        let r = unsafe { bytes(std::ptr::null(), 0, "data") };
        assert_eq!(r.unwrap_err().code(), sgmap_result::SGMAP_NULL_PARAMETER);
        let x = 0u8;
        // SAFETY: refused before any slice is formed.
        let r = unsafe { bytes(&x, usize::MAX, "data") };
        assert_eq!(r.unwrap_err().code(), sgmap_result::SGMAP_INVALID_ARGUMENT);
        let misaligned = 1usize as *mut u64;
        assert_eq!(
            Out::new(misaligned, "out").unwrap_err().code(),
            sgmap_result::SGMAP_INVALID_ARGUMENT
        );
        // SAFETY: NULL is checked before use.
        let r = unsafe { path(std::ptr::null(), "path") };
        assert_eq!(r.unwrap_err().code(), sgmap_result::SGMAP_NULL_PARAMETER);
        // SAFETY: a NUL-terminated literal.
        let r = unsafe { path(c"".as_ptr(), "path") };
        assert_eq!(r.unwrap_err().code(), sgmap_result::SGMAP_INVALID_ARGUMENT);
    }

    #[test]
    fn arrays_are_filled_and_terminated() {
        let mut a = [1 as c_char; 5];
        fill_array(&mut a, "Linux");
        assert_eq!(text(&a), "Linu");
        fill_array(&mut a, "ab");
        assert_eq!(text(&a), "ab");
        assert!(a[2..].iter().all(|&c| c == 0));
    }
}
