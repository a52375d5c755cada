//! Page-aligned buffers for direct IO.

use std::ffi::c_void;

use crate::args::Out;
use crate::error::{guard, sgmap_result, Fail};

/// Allocates `len` bytes, zeroed and starting on a page boundary: what
/// direct IO needs for the kernel to use the caller's pages instead of
/// copying. Stores the address in `*out` (NULL on failure). Release it with
/// `sgmap_direct_buffer_free`.
///
/// The allocation is `len` rounded up to a whole page, so the buffer shares
/// no page with other memory. Returns `SGMAP_INVALID_ARGUMENT` for `len` 0
/// and for a `len` no buffer can have (over `PTRDIFF_MAX` once rounded up to
/// a page), and `SGMAP_OS_ERROR` (ENOMEM) when the memory is not available;
/// never aborts.
///
/// # Safety
///
/// `out` must be NULL or valid for a write of one pointer.
#[no_mangle]
pub unsafe extern "C" fn sgmap_direct_buffer_alloc(
    len: usize,
    out: *mut *mut c_void,
) -> sgmap_result {
    guard("sgmap_direct_buffer_alloc", || {
        let out = Out::new(out, "out")?;
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(std::ptr::null_mut()) };
        if len == 0 {
            return Err(Fail::invalid(
                "len is 0; ask for the bytes you will transfer",
            ));
        }
        // SAFETY: sysconf has no preconditions.
        let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
            p if p > 0 => p as usize,
            _ => 4096,
        };
        let rounded = len
            .div_ceil(page)
            .checked_mul(page)
            .filter(|&r| r <= isize::MAX as usize)
            .ok_or_else(|| {
                Fail::invalid(format!(
                    "len is {len} bytes, more than any buffer can hold once rounded up to a \
                     {page}-byte page; ask for the bytes you will transfer"
                ))
            })?;
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: `p` is a valid out-pointer; `page` is a power of two and a
        // multiple of sizeof(void *), as posix_memalign requires.
        let rc = unsafe { libc::posix_memalign(&mut p, page, rounded) };
        if rc != 0 || p.is_null() {
            return Err(Fail::new(
                sgmap_result::SGMAP_OS_ERROR,
                format!("cannot allocate {len} page-aligned bytes (errno {rc}); ask for less"),
            )
            .with_errno(rc));
        }
        // SAFETY: `p` is a fresh allocation of `rounded` bytes.
        unsafe { std::ptr::write_bytes(p.cast::<u8>(), 0, rounded) };
        // SAFETY: valid for a write per the caller's contract.
        unsafe { out.put(p) };
        Ok(())
    })
}

/// Frees a buffer from `sgmap_direct_buffer_alloc`. NULL does nothing.
///
/// # Safety
///
/// `ptr` must be NULL or a pointer from `sgmap_direct_buffer_alloc` not yet
/// freed, with no command using it.
#[no_mangle]
pub unsafe extern "C" fn sgmap_direct_buffer_free(ptr: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: NULL, or allocated by posix_memalign and freed once, per
        // the caller's contract. free(NULL) does nothing.
        unsafe { libc::free(ptr) }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_no_buffer_can_have_are_invalid_arguments() {
        for len in [usize::MAX, usize::MAX - 4095, isize::MAX as usize + 1] {
            let mut p: *mut c_void = 1 as *mut c_void;
            // SAFETY: `p` is a valid out-pointer.
            let r = unsafe { sgmap_direct_buffer_alloc(len, &mut p) };
            assert_eq!(r, sgmap_result::SGMAP_INVALID_ARGUMENT, "len {len}");
            assert!(p.is_null(), "len {len}: *out is NULL on failure");
        }
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: as above; the buffer is freed below.
        let r = unsafe { sgmap_direct_buffer_alloc(4097, &mut p) };
        assert_eq!(r, sgmap_result::SGMAP_OK);
        assert_eq!(p as usize % 4096, 0);
        // SAFETY: allocated just above with 4097 bytes: byte 4096 is in it.
        let last = unsafe { p.cast::<u8>().add(4096) };
        // SAFETY: as above.
        unsafe { last.write(1) };
        // SAFETY: allocated above, freed once.
        unsafe { sgmap_direct_buffer_free(p) };
    }
}
