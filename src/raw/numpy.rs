//! numpy's array data buffers (NEP 49).
//!
//! numpy up to 2.4 allocates an array's data with libc `malloc`, which no
//! `PyMem` hook sees (it reports the block to stdlib tracemalloc only). Since
//! 1.22 numpy allocates that data through a *handler*: a `PyDataMem_Handler`
//! struct, reached from a capsule named `"mem_handler"`, whose allocator
//! functions every array calls (and keeps calling for its whole life: an
//! array frees its data through the handler it was born with).
//!
//! The handler numpy uses unless a program sets its own is one static struct
//! of numpy's: `wrap_default_handler` saves its functions once and puts ours
//! in their place, for good. Ours forward to the saved ones and, while
//! tracing, record the blocks like the `PyMem` hooks do (same guard, same
//! table), so each thread and each context variable state is covered. With
//! tracing off they only forward. numpy from 2.5 allocates through
//! `PyMem_RawMalloc`: the guard makes that nested RAW call pass straight
//! through, so a buffer is never counted twice.

use super::hooks::{traced_alloc, traced_free, traced_realloc};
use std::os::raw::{c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

type MallocFn = extern "C" fn(*mut c_void, usize) -> *mut c_void;
type CallocFn = extern "C" fn(*mut c_void, usize, usize) -> *mut c_void;
type ReallocFn = extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void;
type FreeFn = extern "C" fn(*mut c_void, *mut c_void, usize);

/// numpy's `PyDataMemAllocator` (version 1 of the handler struct).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DataAllocator {
    pub ctx: *mut c_void,
    pub malloc: Option<MallocFn>,
    pub calloc: Option<CallocFn>,
    pub realloc: Option<ReallocFn>,
    pub free: Option<FreeFn>,
}

/// numpy's `PyDataMem_Handler`: a name, a version (1), the allocator.
#[repr(C)]
pub struct DataHandler {
    pub name: [c_char; 127],
    pub version: u8,
    pub allocator: DataAllocator,
}

/// The default handler's own functions, saved before ours replace them.
struct Saved(DataAllocator);

// SAFETY: written once (OnceLock) before our functions are published into
// the handler, only read afterwards; the pointers are numpy's functions and
// its `ctx`, which live as long as numpy's module (never unloaded).
unsafe impl Sync for Saved {}
// SAFETY: as above: plain addresses, never written after publication.
unsafe impl Send for Saved {}

static SAVED: OnceLock<Saved> = OnceLock::new();
/// Address of the handler we wrapped (0: none yet).
static WRAPPED: AtomicUsize = AtomicUsize::new(0);

#[inline(always)]
fn saved() -> Option<&'static DataAllocator> {
    SAVED.get().map(|s| &s.0)
}

extern "C" fn np_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let Some(malloc) = saved().and_then(|a| a.malloc) else {
        return std::ptr::null_mut();
    };
    traced_alloc(size, || malloc(ctx, size))
}

extern "C" fn np_calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let Some(calloc) = saved().and_then(|a| a.calloc) else {
        return std::ptr::null_mut();
    };
    traced_alloc(nelem.saturating_mul(elsize), || calloc(ctx, nelem, elsize))
}

extern "C" fn np_realloc(ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    let Some(realloc) = saved().and_then(|a| a.realloc) else {
        return std::ptr::null_mut();
    };
    traced_realloc(ptr, size, || realloc(ctx, ptr, size))
}

extern "C" fn np_free(ctx: *mut c_void, ptr: *mut c_void, size: usize) {
    let Some(free) = saved().and_then(|a| a.free) else {
        return;
    };
    traced_free(ptr, || free(ctx, ptr, size))
}

/// Why a handler was not wrapped.
#[derive(Debug, PartialEq, Eq)]
pub enum WrapError {
    /// Not a version-1 handler with all four functions.
    Unsupported,
    /// Another handler was wrapped already (numpy has one default handler).
    Another,
}

/// Puts our functions in place of the handler's, saving its own first.
/// Wrapping the same handler again does nothing. GIL held.
///
/// # Safety
/// `handler` points at numpy's default `PyDataMem_Handler`, which lives as
/// long as the process (numpy's module is never unloaded) and which numpy
/// reads without copying it.
pub unsafe fn wrap_default_handler(handler: *mut DataHandler) -> Result<(), WrapError> {
    let here = handler as usize;
    match WRAPPED.load(Ordering::Acquire) {
        0 => {}
        h if h == here => return Ok(()),
        _ => return Err(WrapError::Another),
    }
    // SAFETY: the caller guarantees `handler` is a live handler struct.
    let h = unsafe { &mut *handler };
    let a = h.allocator;
    if h.version != 1
        || a.malloc.is_none()
        || a.calloc.is_none()
        || a.realloc.is_none()
        || a.free.is_none()
    {
        return Err(WrapError::Unsupported);
    }
    if SAVED.set(Saved(a)).is_err() {
        return Err(WrapError::Another);
    }
    // Each function pointer is one aligned word, written with one store:
    // a thread reading the struct sees the old or the new function, never
    // a torn one. free and realloc first: a block our malloc records is
    // then always released through ours. (A block numpy's own malloc made
    // just before is simply not found when freed.)
    let fields = [
        (
            std::ptr::addr_of_mut!(h.allocator.free).cast::<usize>(),
            np_free as FreeFn as usize,
        ),
        (
            std::ptr::addr_of_mut!(h.allocator.realloc).cast::<usize>(),
            np_realloc as ReallocFn as usize,
        ),
        (
            std::ptr::addr_of_mut!(h.allocator.calloc).cast::<usize>(),
            np_calloc as CallocFn as usize,
        ),
        (
            std::ptr::addr_of_mut!(h.allocator.malloc).cast::<usize>(),
            np_malloc as MallocFn as usize,
        ),
    ];
    for (field, ours) in fields {
        // SAFETY: `field` is an aligned, word-sized field of the live
        // handler; an AtomicUsize has the same size and alignment.
        unsafe { AtomicUsize::from_ptr(field) }.store(ours, Ordering::Release);
    }
    WRAPPED.store(here, Ordering::Release);
    Ok(())
}

/// Whether numpy's default handler is wrapped.
pub fn is_wrapped() -> bool {
    WRAPPED.load(Ordering::Acquire) != 0
}
