//! From traced blocks to live objects, for the leak hunter: the live blocks
//! of given tracebacks.

use pyo3::prelude::*;

use super::errors::Error;
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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(live_blocks, m)?)?;
    Ok(())
}
