//! Memory for the tracer's own tables, straight from `mmap`.
//!
//! The allocator hooks must never allocate through the allocators they hook,
//! so every table and arena lives in anonymous mappings. Pages come zeroed,
//! which is what the tables take as "empty".

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes currently mapped by the tracer (reported by
/// `get_tracemalloc_memory`). Relaxed: a statistic, not a synchronisation point.
static MAPPED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes the tracer has mapped and not yet unmapped.
pub fn mapped_bytes() -> usize {
    MAPPED_BYTES.load(Ordering::Relaxed)
}

fn page_round(bytes: usize) -> usize {
    const PAGE: usize = 4096;
    bytes.max(1).div_ceil(PAGE) * PAGE
}

/// Maps `bytes` (rounded up to whole pages) of zeroed, read-write memory.
/// Returns `None` when the kernel refuses. Never panics, never calls the
/// Python allocators.
pub fn map_zeroed(bytes: usize) -> Option<NonNull<u8>> {
    let len = page_round(bytes);
    // SAFETY: an anonymous private mapping with no fixed address has no
    // preconditions; failure is reported as MAP_FAILED and handled below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    MAPPED_BYTES.fetch_add(len, Ordering::Relaxed);
    NonNull::new(p.cast())
}

/// Returns memory obtained from [`map_zeroed`] to the kernel.
///
/// # Safety
/// `ptr` and `bytes` must be exactly a pointer returned by `map_zeroed` and
/// the size passed to it, not yet unmapped, and no thread may touch the
/// memory again.
pub unsafe fn unmap(ptr: NonNull<u8>, bytes: usize) {
    let len = page_round(bytes);
    // SAFETY: the caller guarantees this is a live mapping of `len` bytes
    // that nobody uses any more.
    unsafe { libc::munmap(ptr.as_ptr().cast(), len) };
    MAPPED_BYTES.fetch_sub(len, Ordering::Relaxed);
}

/// A fixed-length, zero-initialised array of `T` in its own mapping.
///
/// `T` must be valid when all-zero (atomics and integers are), which every
/// table slot type here is.
pub struct MappedArray<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: a MappedArray owns its mapping like a Box<[T]>; sharing it is as
// safe as sharing `[T]`, so it is Send/Sync exactly when T is.
unsafe impl<T: Send> Send for MappedArray<T> {}
// SAFETY: see above.
unsafe impl<T: Sync> Sync for MappedArray<T> {}

impl<T> MappedArray<T> {
    /// A zeroed array of `len` elements, or `None` if the mapping failed.
    ///
    /// # Safety
    /// The all-zero bit pattern must be a valid `T`.
    pub unsafe fn zeroed(len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let ptr = map_zeroed(bytes)?.cast::<T>();
        Some(MappedArray { ptr, len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> usize {
        page_round(self.len * std::mem::size_of::<T>())
    }

    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the mapping holds `len` initialised (zeroed, valid) `T`s
        // and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Gives up ownership without unmapping: for arrays that lock-free
    /// readers may still be reading; see `table.rs` for who frees them.
    pub fn into_raw(self) -> (NonNull<T>, usize) {
        let me = std::mem::ManuallyDrop::new(self);
        (me.ptr, me.len)
    }

    /// # Safety
    /// `ptr`/`len` must come from [`MappedArray::into_raw`] and be owned by nobody else.
    pub unsafe fn from_raw(ptr: NonNull<T>, len: usize) -> Self {
        MappedArray { ptr, len }
    }
}

impl<T> std::ops::Deref for MappedArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T> Drop for MappedArray<T> {
    fn drop(&mut self) {
        // SAFETY: we own the mapping (created by `zeroed`, not given away by
        // `into_raw`), and `&mut self` proves no borrow of it remains.
        unsafe { unmap(self.ptr.cast(), self.len * std::mem::size_of::<T>()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn mapped_array_is_zeroed_and_accounted() {
        // SAFETY: AtomicU64 is valid when zeroed.
        let a = unsafe { MappedArray::<AtomicU64>::zeroed(1000) }.unwrap();
        assert_eq!(a.bytes(), 8192);
        assert!(mapped_bytes() >= 8192);
        assert!(a.iter().all(|x| x.load(Ordering::Relaxed) == 0));
        a[999].store(7, Ordering::Relaxed);
        assert_eq!(a[999].load(Ordering::Relaxed), 7);
        drop(a);
    }
}
