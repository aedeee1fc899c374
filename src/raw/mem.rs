//! Memory for the tracer's own tables, straight from `mmap`.
//!
//! The allocator hooks must never allocate through the allocators they hook,
//! so every table and arena lives in anonymous mappings. Pages come zeroed,
//! which is what the tables take as "empty".

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

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

/// Chunk `k` of a [`ChunkedArray`] holds `CHUNK_BASE << k` elements.
const CHUNK_BASE_BITS: u32 = 10;

/// Where element `i` of a [`ChunkedArray`] lives: `(chunk, offset in it)`.
pub(crate) fn chunk_locate(i: usize) -> (usize, usize) {
    let k = (i >> CHUNK_BASE_BITS) + 1;
    let chunk = (usize::BITS - 1 - k.leading_zeros()) as usize;
    let start = ((1usize << chunk) - 1) << CHUNK_BASE_BITS;
    (chunk, i - start)
}

fn chunk_len(chunk: usize) -> usize {
    1 << (CHUNK_BASE_BITS as usize + chunk)
}

/// An array of `T` indexed without locks, grown in `CHUNKS` chunks that
/// never move: chunk `k` holds `1024 << k` elements, mapped zeroed the first
/// time an element in it is asked for, and kept until [`ChunkedArray::reset`].
pub struct ChunkedArray<T, const CHUNKS: usize> {
    chunks: [AtomicPtr<T>; CHUNKS],
    /// Shared like `[T]`: Send/Sync exactly when `T` is.
    _items: PhantomData<T>,
}

impl<T, const CHUNKS: usize> ChunkedArray<T, CHUNKS> {
    /// An empty array (no chunk mapped).
    ///
    /// # Safety
    /// The all-zero bit pattern must be a valid `T`: mapped chunks come zeroed.
    pub const unsafe fn new() -> Self {
        ChunkedArray {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            _items: PhantomData,
        }
    }

    /// Element `i`, or None when its chunk is not mapped (or `i` is past the
    /// last chunk).
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        let (c, off) = chunk_locate(i);
        let p = self.chunks.get(c)?.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: a published chunk maps `chunk_len(c)` initialised (zeroed)
        // `T`s until `reset`, and `off < chunk_len(c)` by `chunk_locate`.
        Some(unsafe { &*p.add(off) })
    }

    /// Element `i`, mapping its chunk first if needed (whichever thread
    /// publishes a chunk first wins; the others unmap theirs). None when
    /// the kernel refuses the mapping or `i` is past the last chunk. Never
    /// calls the Python allocators: safe on the hook path.
    #[inline]
    pub fn get_or_map(&self, i: usize) -> Option<&T> {
        if let Some(item) = self.get(i) {
            return Some(item);
        }
        let (c, off) = chunk_locate(i);
        let slot = self.chunks.get(c)?;
        // SAFETY: `new`'s contract: T is valid when zeroed.
        let (fresh, len) = unsafe { MappedArray::<T>::zeroed(chunk_len(c)) }?.into_raw();
        let p = match slot.compare_exchange(
            std::ptr::null_mut(),
            fresh.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => fresh.as_ptr(),
            Err(theirs) => {
                // SAFETY: `fresh` came from `into_raw` just above and was never shared.
                drop(unsafe { MappedArray::from_raw(fresh, len) });
                theirs
            }
        };
        // SAFETY: as in `get`: a published chunk, `off` in range.
        Some(unsafe { &*p.add(off) })
    }

    /// Calls `f(index of the chunk's first element, the chunk)` for each
    /// mapped chunk, in index order.
    pub fn for_each_chunk(&self, mut f: impl FnMut(usize, &[T])) {
        for (c, slot) in self.chunks.iter().enumerate() {
            let p = slot.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: as in `get`: a published chunk of `chunk_len(c)` elements.
                let chunk = unsafe { std::slice::from_raw_parts(p, chunk_len(c)) };
                f(((1usize << c) - 1) << CHUNK_BASE_BITS, chunk);
            }
        }
    }

    /// Unmaps every chunk: the array is empty again.
    ///
    /// # Safety
    /// No other thread may be using the array, nor hold a reference into it.
    pub unsafe fn reset(&self) {
        for (c, slot) in self.chunks.iter().enumerate() {
            let p = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if let Some(p) = NonNull::new(p) {
                // SAFETY: the chunk came from `MappedArray::into_raw` with
                // `chunk_len(c)` elements, and the caller guarantees no user.
                drop(unsafe { MappedArray::from_raw(p, chunk_len(c)) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn chunks_locate_contiguously() {
        let mut expect = 0;
        for c in 0..6 {
            for off in 0..chunk_len(c) {
                assert_eq!(chunk_locate(expect), (c, off));
                expect += 1;
            }
        }
    }

    #[test]
    fn chunked_array_maps_on_demand() {
        // SAFETY: AtomicU64 is valid when zeroed.
        let a: ChunkedArray<AtomicU64, 4> = unsafe { ChunkedArray::new() };
        assert!(a.get(5).is_none());
        a.get_or_map(5).unwrap().store(9, Ordering::Relaxed);
        assert_eq!(a.get(5).unwrap().load(Ordering::Relaxed), 9);
        assert!(a.get(1024).is_none()); // the next chunk is not mapped yet
        assert!(a.get_or_map(1024 * 15).is_none()); // past the 4 chunks
        let mut firsts = Vec::new();
        a.get_or_map(3000).unwrap();
        a.for_each_chunk(|first, chunk| firsts.push((first, chunk.len())));
        assert_eq!(firsts, vec![(0, 1024), (1024, 2048)]);
        // SAFETY: nobody else uses `a`.
        unsafe { a.reset() };
        assert!(a.get(5).is_none());
    }

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
