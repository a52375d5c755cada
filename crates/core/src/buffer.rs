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
    /// When `len` rounded up to a whole page is more than any allocation can
    /// be (over `isize::MAX`), like `Vec`'s "capacity overflow"; when the
    /// allocator fails, it aborts as `Vec` does. [`DirectBuf::try_new`]
    /// returns an error instead.
    pub fn new(len: usize) -> Self {
        match Self::try_new(len) {
            Ok(b) => b,
            Err(BufferError::OutOfMemory { layout, .. }) => std::alloc::handle_alloc_error(layout),
            Err(e) => panic!("{e}"),
        }
    }

    /// A zeroed buffer of `len` bytes starting on a page boundary, or why
    /// there can be none: [`BufferError::TooLarge`] when `len` rounded up to
    /// a page does not fit an allocation, [`BufferError::OutOfMemory`] when
    /// the allocator has no such block.
    ///
    /// ```
    /// assert!(sgmap::DirectBuf::try_new(usize::MAX).is_err());
    /// assert_eq!(sgmap::DirectBuf::try_new(5000).unwrap().len(), 5000);
    /// ```
    pub fn try_new(len: usize) -> Result<Self, BufferError> {
        let page = page_size();
        if len == 0 {
            // A dangling, page-aligned pointer: valid for zero-length slices.
            let ptr = NonNull::new(page as *mut u8).unwrap_or(NonNull::dangling());
            return Ok(Self {
                ptr,
                len,
                layout: None,
            });
        }
        let layout = len
            .div_ceil(page)
            .checked_mul(page)
            .and_then(|rounded| Layout::from_size_align(rounded, page).ok())
            .ok_or(BufferError::TooLarge { len })?;
        // SAFETY: `layout` has a non-zero size (at least one page).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).ok_or(BufferError::OutOfMemory { len, layout })?;
        Ok(Self {
            ptr,
            len,
            layout: Some(layout),
        })
    }

    /// A copy of `data` in a page-aligned buffer.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut b = Self::new(data.len());
        b.copy_from_slice(data);
        b
    }
}

/// Why [`DirectBuf::try_new`] could not make a buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// `len` rounded up to a whole page is more than an allocation can be
    /// (`isize::MAX` bytes).
    #[error(
        "a page-aligned buffer of {len} bytes cannot exist: rounded up to a page it is more than \
         any allocation can hold; ask for the bytes you will transfer"
    )]
    TooLarge {
        /// The length asked for.
        len: usize,
    },
    /// The allocator had no block of this size.
    #[error("out of memory for a page-aligned buffer of {len} bytes; ask for less")]
    OutOfMemory {
        /// The length asked for.
        len: usize,
        /// What was asked of the allocator (the length rounded up to a page).
        layout: Layout,
    },
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
    fn sizes_that_cannot_be_allocated_are_refused_not_wrapped() {
        // Rounding usize::MAX up to a page wraps to 0: the buffer must not
        // then claim usize::MAX bytes over an allocation of nothing.
        for len in [
            usize::MAX,
            usize::MAX - 1,
            usize::MAX - page_size() + 1,
            isize::MAX as usize,
        ] {
            let made = std::panic::catch_unwind(|| DirectBuf::new(len).len());
            assert!(
                made.is_err(),
                "DirectBuf::new({len}) gave a buffer of {:?} bytes",
                made
            );
        }
    }

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
