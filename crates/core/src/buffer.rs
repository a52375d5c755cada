//! Page-aligned buffers for direct IO.

use std::alloc::Layout;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::io::page_size;

/// A zeroed, page-aligned buffer: what direct IO needs so the kernel can pin
/// the caller's pages instead of copying.
///
/// ```
/// let mut buf = sgmap::DirectBuf::new(64 * 1024);
/// assert_eq!(buf.as_ptr() as usize % 4096, 0);
/// buf[0] = 1;
/// assert_eq!(buf.len(), 65536);
/// ```
pub struct DirectBuf {
    ptr: NonNull<u8>,
    len: usize,
    layout: Option<Layout>,
}

// SAFETY: DirectBuf owns its allocation exclusively, like a Box<[u8]>.
unsafe impl Send for DirectBuf {}
// SAFETY: shared access only hands out `&[u8]`.
unsafe impl Sync for DirectBuf {}

impl DirectBuf {
    /// A zeroed buffer of `len` bytes starting on a page boundary.
    ///
    /// # Panics
    ///
    /// Only when the allocator fails, like `Vec`.
    pub fn new(len: usize) -> Self {
        let page = page_size();
        if len == 0 {
            // A dangling, page-aligned pointer: valid for zero-length slices.
            let ptr = NonNull::new(page as *mut u8).unwrap_or(NonNull::dangling());
            return Self {
                ptr,
                len,
                layout: None,
            };
        }
        let rounded = len.div_ceil(page) * page;
        let layout = Layout::from_size_align(rounded, page).expect("page-rounded layout");
        // SAFETY: `layout` has a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        Self {
            ptr,
            len,
            layout: Some(layout),
        }
    }

    /// A copy of `data` in a page-aligned buffer.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut b = Self::new(data.len());
        b.copy_from_slice(data);
        b
    }
}

impl Deref for DirectBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised (zeroed) bytes, owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for DirectBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for DirectBuf {
    fn drop(&mut self) {
        if let Some(layout) = self.layout {
            // SAFETY: allocated in `new` with exactly this layout, freed once.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
        }
    }
}

impl std::fmt::Debug for DirectBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectBuf")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

impl Clone for DirectBuf {
    fn clone(&self) -> Self {
        Self::from_slice(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_and_sized() {
        for len in [0, 1, 511, 4096, 4097, 1 << 20] {
            let b = DirectBuf::new(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_ptr() as usize % page_size(), 0, "len {len}");
            assert!(b.iter().all(|&x| x == 0));
        }
        let c = DirectBuf::from_slice(b"abc").clone();
        assert_eq!(&c[..], b"abc");
    }
}
