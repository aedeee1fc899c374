//! Error mapping: every error the native core raises goes through here, to
//! the Python hierarchy defined in `leakguard/_errors.py` (each class also
//! subclasses the builtin tracemalloc users catch).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// Errors of the native layer, by the Python class they become.
pub enum Error {
    /// `TracingError` (a RuntimeError).
    Tracing(String),
    /// `SnapshotError` (a ValueError) about a file.
    Snapshot { path: String, message: String },
    /// `UsageError` (a ValueError).
    Usage(String),
    /// `UsageTypeError` (a TypeError).
    UsageType(String),
}

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    py.import("leakguard._errors")?.getattr(name)
}

impl Error {
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        let made = match self {
            Error::Tracing(m) => class(py, "TracingError").and_then(|c| c.call1((m,))),
            Error::Snapshot { path, message } => class(py, "SnapshotError")
                .and_then(|c| c.call1((format!("{path}: {message}"), path))),
            Error::Usage(m) => class(py, "UsageError").and_then(|c| c.call1((m,))),
            Error::UsageType(m) => class(py, "UsageTypeError").and_then(|c| c.call1((m,))),
        };
        match made {
            Ok(exc) => PyErr::from_value(exc),
            // The package is broken (e.g. _errors.py missing): still raise
            // something that says what happened.
            Err(e) => PyValueError::new_err(format!("leakguard: cannot raise its error: {e}")),
        }
    }
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| e.into_pyerr(py))
    }
}
