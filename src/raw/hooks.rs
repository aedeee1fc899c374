//! The allocator hooks installed with `PyMem_SetAllocator` on the RAW, MEM
//! and OBJ domains, and their installation.
//!
//! Rules every hook follows (see DESIGN-NOTES):
//! - the reentrancy guard comes first: a call made while this thread is
//!   already inside a hook (pymalloc asking RAW for a big block, say) goes
//!   straight through, uncounted;
//! - no Python API, no GIL, no refcount, no panic, no allocation through the
//!   hooked allocators — recording is `tracer::record`, which obeys the same;
//! - a pointer's trace is removed *before* the underlying `free` (another
//!   thread may be handed the same address right after);
//! - the allocator a hook forwards to lives in a static that is written once
//!   and never freed (`SAVED`), which is what `ctx` points at: a concurrent
//!   re-installation can never hand a hook a half-written copy.

use super::tracer;
use pyo3::ffi::{PyMemAllocatorDomain, PyMemAllocatorEx, PyMem_GetAllocator, PyMem_SetAllocator};
use std::cell::{Cell, UnsafeCell};
use std::os::raw::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `GUARD` bit: this thread is inside one of our hooks.
const IN_HOOK: u8 = 1;
/// `GUARD` bit: this thread's new blocks are not recorded (frees still are):
/// leakguard's own analysis pauses itself so it never shows up in the traces.
const PAUSED: u8 = 2;

thread_local! {
    /// This thread's hook state (`IN_HOOK` | `PAUSED`). One cell, so the hot
    /// path reads a single thread-local. `const`, no `Drop`: safe to touch
    /// during thread teardown.
    static GUARD: Cell<u8> = const { Cell::new(0) };
}

/// Pauses (or resumes) recording of the calling thread's new blocks; returns
/// whether it was paused. Blocks it frees are still forgotten, so the table
/// never keeps a trace of freed memory.
pub fn set_thread_paused(paused: bool) -> bool {
    let g = GUARD.get();
    GUARD.set(if paused { g | PAUSED } else { g & !PAUSED });
    g & PAUSED != 0
}

/// When non-zero, the token (see `thread_token`) of the only thread whose
/// new blocks are recorded; the others' are not (their frees still are).
static ONLY_THREAD: AtomicUsize = AtomicUsize::new(0);

/// A number that tells the calling thread from every other live thread: the
/// address of its `GUARD`. Costs no allocation and no system call.
#[inline(always)]
fn thread_token() -> usize {
    GUARD.with(|g| g as *const Cell<u8> as usize)
}

/// Records only the calling thread's new blocks (`on`), or every thread's
/// again; returns whether such a restriction was in force before.
pub fn set_only_this_thread(on: bool) -> bool {
    let token = if on { thread_token() } else { 0 };
    ONLY_THREAD.swap(token, Ordering::Relaxed) != 0
}

const DOMAINS: [PyMemAllocatorDomain; 3] = [
    PyMemAllocatorDomain::PYMEM_DOMAIN_RAW,
    PyMemAllocatorDomain::PYMEM_DOMAIN_MEM,
    PyMemAllocatorDomain::PYMEM_DOMAIN_OBJ,
];

/// One saved allocator: what a hook forwards to. Written once (before its
/// address is given to `PyMem_SetAllocator`), never modified or freed after.
struct Saved(UnsafeCell<PyMemAllocatorEx>);

// SAFETY: each Saved is written only before it is published (while
// SAVED_COUNT does not yet include it, GIL held) and only read afterwards.
unsafe impl Sync for Saved {}

const MAX_SAVED: usize = 256;
static SAVED: [Saved; MAX_SAVED] = [const {
    Saved(UnsafeCell::new(PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    }))
}; MAX_SAVED];
/// Number of `SAVED` entries in use. Written with the GIL held.
static SAVED_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Per domain: 1 + the `SAVED` index our installed hooks forward to, or 0
/// when our hooks are not in that domain's chain. Written with the GIL held.
static INSTALLED: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

#[inline(always)]
fn saved(ctx: *mut c_void) -> &'static PyMemAllocatorEx {
    // SAFETY: we install our hooks only with ctx = a published SAVED entry,
    // which is 'static and never written again.
    unsafe { &*(ctx as *const PyMemAllocatorEx) }
}

/// Runs `f` with the reentrancy guard set; returns None if it was set
/// already. `f` is told whether new blocks are to be recorded.
#[inline(always)]
fn guarded<R>(f: impl FnOnce(bool) -> R) -> Option<R> {
    let g = GUARD.get();
    if g & IN_HOOK != 0 {
        return None;
    }
    GUARD.set(g | IN_HOOK);
    let only = ONLY_THREAD.load(Ordering::Relaxed);
    let r = f(g & PAUSED == 0 && (only == 0 || only == thread_token()));
    GUARD.set(g);
    Some(r)
}

/// What every allocating hook does around the allocator it forwards to
/// (`alloc`, called once): with tracing on and the guard free, records the
/// new block of `size` bytes. Shared by the `PyMem` hooks and numpy's
/// data handler (`numpy.rs`); inlined, so each hook stays one function.
#[inline(always)]
pub(crate) fn traced_alloc(size: usize, alloc: impl Fn() -> *mut c_void) -> *mut c_void {
    if !tracer::is_tracing_fast() {
        return alloc();
    }
    guarded(|recording| {
        let p = alloc();
        if recording && !p.is_null() {
            tracer::record(p as usize, size);
        }
        p
    })
    .unwrap_or_else(alloc)
}

/// A realloc hook around `realloc` (which moves `ptr` to `size` bytes).
#[inline(always)]
pub(crate) fn traced_realloc(
    ptr: *mut c_void,
    size: usize,
    realloc: impl Fn() -> *mut c_void,
) -> *mut c_void {
    if !tracer::is_tracing_fast() {
        return realloc();
    }
    guarded(|recording| {
        // Forget the old block first: once realloc moves it, another thread
        // may be handed the old address.
        let old = if ptr.is_null() {
            None
        } else {
            tracer::forget(ptr as usize)
        };
        let p = realloc();
        if p.is_null() {
            // Failed: the old block is still there, trace and all.
            if let Some(v) = old {
                tracer::restore(ptr as usize, v);
            }
        } else if recording {
            tracer::record(p as usize, size);
        }
        p
    })
    .unwrap_or_else(realloc)
}

/// A free hook around `free` (which releases `ptr`): the trace goes first.
#[inline(always)]
pub(crate) fn traced_free(ptr: *mut c_void, free: impl Fn()) {
    if ptr.is_null() || !tracer::is_tracing_fast() {
        return free();
    }
    if guarded(|_| {
        tracer::forget(ptr as usize);
        free();
    })
    .is_none()
    {
        free();
    }
}

extern "C" fn hook_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    let a = saved(ctx);
    let Some(malloc) = a.malloc else {
        return std::ptr::null_mut();
    };
    traced_alloc(size, || malloc(a.ctx, size))
}

extern "C" fn hook_calloc(ctx: *mut c_void, nelem: usize, elsize: usize) -> *mut c_void {
    let a = saved(ctx);
    let Some(calloc) = a.calloc else {
        return std::ptr::null_mut();
    };
    traced_alloc(nelem.saturating_mul(elsize), || {
        calloc(a.ctx, nelem, elsize)
    })
}

extern "C" fn hook_realloc(ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    let a = saved(ctx);
    let Some(realloc) = a.realloc else {
        return std::ptr::null_mut();
    };
    traced_realloc(ptr, size, || realloc(a.ctx, ptr, size))
}

extern "C" fn hook_free(ctx: *mut c_void, ptr: *mut c_void) {
    let a = saved(ctx);
    let Some(free) = a.free else {
        return;
    };
    traced_free(ptr, || free(a.ctx, ptr))
}

fn current(domain: PyMemAllocatorDomain) -> PyMemAllocatorEx {
    let mut a = PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    };
    // SAFETY: PyMem_GetAllocator only writes the struct we pass; GIL held.
    unsafe { PyMem_GetAllocator(domain, &mut a) };
    a
}

/// An allocator's functions as addresses. Comparing addresses is what we
/// mean: "is this the very function we installed / saved".
fn addresses(a: &PyMemAllocatorEx) -> [usize; 5] {
    [
        a.ctx as usize,
        a.malloc.map_or(0, |f| f as usize),
        a.calloc.map_or(0, |f| f as usize),
        a.realloc.map_or(0, |f| f as usize),
        a.free.map_or(0, |f| f as usize),
    ]
}

fn is_ours(a: &PyMemAllocatorEx) -> bool {
    addresses(a)[1] == hook_malloc as *const () as usize
}

fn same(a: &PyMemAllocatorEx, b: &PyMemAllocatorEx) -> bool {
    addresses(a) == addresses(b)
}

/// Stores `a` in a `SAVED` slot (reusing an identical one) and returns its index.
fn save(a: PyMemAllocatorEx) -> Option<usize> {
    let n = SAVED_COUNT.load(Ordering::Acquire);
    for (i, s) in SAVED[..n].iter().enumerate() {
        // SAFETY: published entries are never written again.
        if same(unsafe { &*s.0.get() }, &a) {
            return Some(i);
        }
    }
    if n == MAX_SAVED {
        return None;
    }
    // SAFETY: entry `n` is not published yet (SAVED_COUNT == n) and only
    // GIL holders reach this function, so nobody else reads or writes it.
    unsafe { *SAVED[n].0.get() = a };
    SAVED_COUNT.store(n + 1, Ordering::Release);
    Some(n)
}

/// Why the hooks could not be installed.
#[derive(Debug)]
pub enum InstallError {
    /// The allocators were replaced more times than leakguard can remember.
    TooManyAllocatorChanges,
}

/// Where our hooks stand in each domain's chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// Not installed.
    Absent,
    /// Installed and on top (what `PyMem_GetAllocator` returns).
    OnTop,
    /// Installed but someone (e.g. stdlib tracemalloc) hooked on top of us,
    /// or removed us without telling us.
    Covered,
}

pub fn position() -> Position {
    let mut pos = Position::Absent;
    for (i, d) in DOMAINS.iter().enumerate() {
        if INSTALLED[i].load(Ordering::Relaxed) == 0 {
            continue;
        }
        if is_ours(&current(*d)) {
            pos = Position::OnTop;
        } else {
            return Position::Covered;
        }
    }
    pos
}

/// Installs our hooks on top of each domain's current allocator, where they
/// are not installed already. GIL held.
pub fn install() -> Result<(), InstallError> {
    for (i, d) in DOMAINS.iter().enumerate() {
        if INSTALLED[i].load(Ordering::Relaxed) != 0 {
            continue;
        }
        let cur = current(*d);
        if is_ours(&cur) {
            // Our hooks are already on top (e.g. restored by a tracer that
            // had covered them): adopt that installation.
            let idx = (cur.ctx as usize - SAVED.as_ptr() as usize) / std::mem::size_of::<Saved>();
            INSTALLED[i].store(idx + 1, Ordering::Relaxed);
            continue;
        }
        let idx = save(cur).ok_or(InstallError::TooManyAllocatorChanges)?;
        let mut ours = PyMemAllocatorEx {
            ctx: SAVED[idx].0.get().cast(),
            malloc: Some(hook_malloc),
            calloc: Some(hook_calloc),
            realloc: Some(hook_realloc),
            free: Some(hook_free),
        };
        // SAFETY: GIL held; `ours` points at 'static functions and a
        // published, never-freed SAVED entry.
        unsafe { PyMem_SetAllocator(*d, &mut ours) };
        INSTALLED[i].store(idx + 1, Ordering::Relaxed);
    }
    Ok(())
}

/// Removes our hooks where they are on top, restoring what they forwarded
/// to. Where someone hooked on top of us, our hooks stay in the chain and,
/// with tracing off, only forward. GIL held.
pub fn uninstall() {
    for (i, d) in DOMAINS.iter().enumerate() {
        let slot = INSTALLED[i].load(Ordering::Relaxed);
        if slot == 0 {
            continue;
        }
        let cur = current(*d);
        if is_ours(&cur) && cur.ctx == SAVED[slot - 1].0.get().cast() {
            // SAFETY: published entries are never written again.
            let mut orig = unsafe { *SAVED[slot - 1].0.get() };
            // SAFETY: GIL held; restoring the allocator we replaced.
            unsafe { PyMem_SetAllocator(*d, &mut orig) };
            INSTALLED[i].store(0, Ordering::Relaxed);
        }
    }
}

/// Forgets that our hooks are installed where they are not on top: used
/// when a foreign tracer that we covered was stopped and restored the
/// allocators it had saved, cutting us out of the chain.
pub fn forget_covered() {
    for (i, d) in DOMAINS.iter().enumerate() {
        if INSTALLED[i].load(Ordering::Relaxed) != 0 && !is_ours(&current(*d)) {
            INSTALLED[i].store(0, Ordering::Relaxed);
        }
    }
}
