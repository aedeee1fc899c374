//! The unsafe core. Every `unsafe fn` documents its contract in a `# Safety`
//! section and every `unsafe` block cites the invariant it relies on.
//!
//! - `mem`      — memory that never comes from the hooked allocators (`mmap`),
//!   and the lock-free chunked array built on it.
//! - `table`    — the lock-free pointer → (size, traceback) table.
//! - `peak`     — per-traceback counts at the peak of a watched block.
//! - `intern`   — append-only, lock-free-read interning of tracebacks.
//! - `totals`   — per stack, the traceback id of each depth, neighbouring
//!   depths in one cache line.
//! - `cpython`  — (python feature) FFI to the C shim that reads frames and
//!   keeps objects out of the interpreter's free lists.
//! - `hooks`    — (python feature) the `PyMem_SetAllocator` hooks.
//! - `objects`  — (python feature) from traced blocks back to live objects.
//! - `numpy`    — (python feature) hooks in numpy's array-data handler (NEP 49).

pub mod intern;
pub mod mem;
pub mod peak;
pub mod table;
pub mod totals;

#[cfg(feature = "python")]
pub mod tracer;

#[cfg(feature = "python")]
pub mod cpython;
#[cfg(feature = "python")]
pub mod hooks;
#[cfg(feature = "python")]
pub mod numpy;
#[cfg(feature = "python")]
pub mod objects;
