//! `_exact_objects`: the switch that keeps objects out of the interpreter's
//! free lists, so that each object's block is a fresh allocation the hooks
//! see and its traceback is that of its own creation.

use super::errors::Error;
use crate::raw::cpython::{self, ExactError};
use pyo3::prelude::*;

/// Make floats, tuples, lists and dicts (and dict keys objects) come from
/// the allocator while on, instead of from the interpreter's free lists,
/// so that get_object_traceback() names the line that created each object
/// rather than the one that first allocated its memory. Acts on the
/// current interpreter; returns whether it was on before.
///
/// Turning it on empties the free lists and keeps them from being used;
/// turning it on while on re-applies that, which is needed after each full
/// garbage collection (it makes the float and tuple free lists usable
/// again). Turning it off leaves the free lists empty and usable.
///
/// CPython 3.9 keeps its free lists out of reach: there it does nothing and
/// returns False.
#[pyfunction]
#[pyo3(name = "_exact_objects")]
fn exact_objects(py: Python<'_>, enable: bool) -> PyResult<bool> {
    cpython::exact_objects(py, enable).map_err(|e| {
        Error::Tracing(
            match e {
                ExactError::OtherInterpreter => "exact objects are on in another interpreter",
                ExactError::DeallocReplaced => {
                    "the list or dict deallocator was replaced by other code; \
                     leaving the free lists as they are"
                }
            }
            .into(),
        )
        .into()
    })
}

/// True when exact objects are on in the current interpreter, False when
/// they are off and `_exact_objects(True)` would switch them on, None when it
/// cannot (CPython 3.9, or on in another interpreter).
#[pyfunction]
#[pyo3(name = "_exact_objects_state")]
fn exact_objects_state(py: Python<'_>) -> Option<bool> {
    cpython::exact_objects_state(py)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(exact_objects, m)?)?;
    m.add_function(wrap_pyfunction!(exact_objects_state, m)?)?;
    Ok(())
}
