//! leakguard's native core.
//!
//! Layout (the architecture, by folder):
//! - `raw/`      — everything `unsafe`: the allocator hooks, the lock-free trace
//!   table, the traceback interning arena, memory straight from `mmap`, and the
//!   C shim that walks the interpreter's frames. Nothing else touches raw memory.
//! - `snapshot/` — immutable snapshots, grouping, diffs and the file format
//!   (pure Rust, tested by `cargo test` without an interpreter).
//! - `python/`   — the PyO3 bindings (only with the `python` feature): thin
//!   functions that convert arguments and results and map errors.
//!
//! This file only declares modules and registers the Python module.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod raw;
pub mod snapshot;

#[cfg(feature = "python")]
mod python;
