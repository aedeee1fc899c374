//! From traced blocks to live objects, for the leak hunter: the live blocks
//! of given tracebacks, and the objects that own given blocks.

use pyo3::prelude::*;
use pyo3::types::PyList;

use super::errors::Error;
use crate::raw::objects::{self, BlockKeys};
use crate::raw::tracer;

/// `_live_blocks(tracebacks, limit) -> list[list[int]]`: for each traceback
/// (frames as `(filename, lineno)`, most recent first, as the keys of
/// `statistics("traceback")`), the addresses of up to `limit` live traced
/// blocks whose traceback has exactly those frames.
#[pyfunction]
#[pyo3(name = "_live_blocks")]
fn live_blocks(tracebacks: Vec<Vec<(String, i64)>>, limit: i64) -> PyResult<Vec<Vec<usize>>> {
    if !tracer::is_tracing() {
        return Err(Error::Tracing(
            "the tracemalloc module must be tracing memory allocations to find live blocks".into(),
        )
        .into());
    }
    let limit = usize::try_from(limit)
        .map_err(|_| Error::Usage("the limit must not be negative".into()))?;
    Ok(tracer::live_blocks_by_traceback(&tracebacks, limit))
}

/// One result of `_locate_objects`: `(key, obj, via_buffer, untracked_path)`.
type Located = (i64, Py<PyAny>, bool, Vec<Py<PyAny>>);

/// `_locate_objects(objects, blocks, per_key) -> list[(key, obj, via_buffer,
/// untracked_path)]`: objects among `objects` and the objects they reference
/// that own a block of `blocks` (address → key), at most `per_key` per key.
#[pyfunction]
#[pyo3(name = "_locate_objects")]
fn locate_objects(
    py: Python<'_>,
    objects: &Bound<'_, PyList>,
    blocks: BlockKeys,
    per_key: i64,
) -> PyResult<Vec<Located>> {
    let per_key = usize::try_from(per_key)
        .map_err(|_| Error::Usage("the number of objects per key must not be negative".into()))?;
    Ok(objects::locate(py, objects, &blocks, per_key)
        .into_iter()
        .map(|f| (f.key, f.object, f.via_buffer, f.untracked_path))
        .collect())
}

/// `_owned_blocks(obj) -> list[int]`: the addresses of the blocks `obj`
/// owns, its own block first (as `_object_block`), then its buffers.
#[pyfunction]
#[pyo3(name = "_owned_blocks")]
fn owned_blocks(obj: &Bound<'_, PyAny>) -> Vec<usize> {
    objects::owned_blocks(obj)
}

/// `_hidden_referents(obj) -> list`: the objects `obj` holds through fields
/// its type's traverse does not visit, so that `gc.get_referents` and
/// `gc.get_referrers` miss the reference: on 3.9-3.11 a BytesIO's bytes and
/// a StringIO's lists of the text it accumulates. Empty for other types, and
/// from 3.12.
#[pyfunction]
#[pyo3(name = "_hidden_referents")]
fn hidden_referents<'py>(obj: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
    objects::hidden_referents(obj)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    objects::init(m.py())?;
    m.add_function(wrap_pyfunction!(live_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(locate_objects, m)?)?;
    m.add_function(wrap_pyfunction!(owned_blocks, m)?)?;
    m.add_function(wrap_pyfunction!(hidden_referents, m)?)?;
    Ok(())
}
