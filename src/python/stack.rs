//! Test hooks for the frame walker: capture the caller's stack and resolve it
//! the way the engine will, or compute an object's block address. The
//! engine's start-up self-check compares `_capture_stack` with
//! `sys._getframe()` and refuses to trace when they disagree; the tests
//! compare both with stdlib `tracemalloc`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::raw::cpython::{self, RawFrame};

/// `_capture_stack(limit) -> (frames, total)`: at most `limit` frames of the
/// calling thread's stack, most recent first, as `(filename, lineno)` pairs
/// in tracemalloc's conventions, and the stack's total depth (saturated at
/// 65535).
#[pyfunction]
#[pyo3(name = "_capture_stack")]
fn capture_stack(py: Python<'_>, limit: i64) -> PyResult<(Vec<(String, u32)>, u32)> {
    let limit = usize::try_from(limit)
        .map_err(|_| PyValueError::new_err("the frame limit must not be negative"))?;
    Ok(resolved_stack(py, limit))
}

/// The calling thread's stack resolved as the engine resolves it: at most
/// `limit` `(filename, lineno)` frames, most recent first, and the total
/// depth. Used by `_capture_stack` and by the start-up self-check.
pub fn resolved_stack(py: Python<'_>, limit: usize) -> (Vec<(String, u32)>, u32) {
    let mut frames = vec![RawFrame::default(); limit.min(cpython::MAX_TOTAL_FRAMES as usize)];
    // SAFETY: called from Python on this thread with the GIL held (`py`),
    // not from a signal handler.
    let (written, total) = unsafe { cpython::capture(&mut frames) };
    let resolved = frames[..written]
        .iter()
        .map(|frame| {
            // SAFETY: GIL held and the frames are still on the stack (our
            // caller waits for us): their code objects and filenames are alive.
            let (filename, lineno) = unsafe {
                (
                    cpython::frame_filename(py, frame),
                    cpython::frame_lineno(py, frame),
                )
            };
            (filename.unwrap_or_else(|| "<unknown>".to_owned()), lineno)
        })
        .collect();
    (resolved, total)
}

/// `_object_block(obj) -> int`: the address of the memory block holding
/// `obj`, the pointer tracemalloc looks up in `get_object_traceback`.
#[pyfunction]
#[pyo3(name = "_object_block")]
fn object_block(obj: &Bound<'_, PyAny>) -> usize {
    cpython::object_block(obj)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(capture_stack, m)?)?;
    m.add_function(wrap_pyfunction!(object_block, m)?)?;
    Ok(())
}
