//! The PyO3 bindings: argument conversion, result conversion, error mapping.
//! Behaviour lives in `raw/` and `snapshot/`; nothing here is on the hot path.

use pyo3::prelude::*;

mod errors;
mod exact;
mod numpy;
mod objects;
mod snapshot;
pub mod stack;
mod tracing;

#[pymodule]
fn _leakguard(m: &Bound<'_, PyModule>) -> PyResult<()> {
    tracing::register(m)?;
    stack::register(m)?;
    objects::register(m)?;
    exact::register(m)?;
    numpy::register(m)?;
    Ok(())
}
