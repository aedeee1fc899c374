//! `RawSnapshot`: a Rust-held snapshot, and its conversions to and from
//! `_tracemalloc`-style raw tuples. Python's `Snapshot` is a thin view on it.

use super::errors::Error;
use crate::snapshot::group::{Comparison, KeyType};
use crate::snapshot::{format, Frame, SnapshotBuilder, SnapshotData, Traceback};
use ahash::AHashMap;
use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};
use std::sync::Arc;

/// `total_nframe` of a traceback built from Python with `None` there.
const NO_TOTAL: u32 = u32::MAX;

/// Converts snapshot parts to Python objects, creating each filename string
/// and each traceback tuple once: equal tracebacks become the same object,
/// as `_tracemalloc._get_traces()` promises.
pub struct Converter<'py, 'd> {
    py: Python<'py>,
    filenames: &'d [String],
    names: Vec<Option<Bound<'py, PyString>>>,
    tracebacks: AHashMap<*const Frame, Bound<'py, PyTuple>>,
}

impl<'py, 'd> Converter<'py, 'd> {
    pub fn new(py: Python<'py>, filenames: &'d [String]) -> Self {
        Converter {
            py,
            filenames,
            names: vec![None; filenames.len()],
            tracebacks: AHashMap::new(),
        }
    }

    fn name(&mut self, idx: u32) -> Bound<'py, PyString> {
        let i = idx as usize;
        if let Some(Some(s)) = self.names.get(i) {
            return s.clone();
        }
        let s = PyString::new(self.py, self.filenames.get(i).map_or("<unknown>", |s| s));
        if let Some(slot) = self.names.get_mut(i) {
            *slot = Some(s.clone());
        }
        s
    }

    /// Frames (most recent first) as a tuple of `(filename, lineno)`.
    pub fn frames(&mut self, frames: &[Frame]) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(t) = self.tracebacks.get(&frames.as_ptr()) {
            if t.len() == frames.len() {
                return Ok(t.clone());
            }
        }
        let items = frames
            .iter()
            .map(|f| {
                PyTuple::new(
                    self.py,
                    [
                        self.name(f.filename).into_any(),
                        f.lineno.into_pyobject(self.py)?.into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        let t = PyTuple::new(self.py, items)?;
        if !frames.is_empty() {
            self.tracebacks.insert(frames.as_ptr(), t.clone());
        }
        Ok(t)
    }

    fn total(&self, total: u32) -> PyResult<Bound<'py, PyAny>> {
        if total == NO_TOTAL {
            Ok(self.py.None().into_bound(self.py))
        } else {
            Ok(total.into_pyobject(self.py)?.into_any())
        }
    }

    /// One raw trace `(domain, size, traceback, total_nframe)`.
    pub fn trace(&mut self, data: &SnapshotData, index: usize) -> PyResult<Bound<'py, PyTuple>> {
        let t = data.traces[index];
        let tb = data.traceback(t.traceback);
        let frames = self.frames(&tb.frames)?;
        PyTuple::new(
            self.py,
            [
                t.domain.into_pyobject(self.py)?.into_any(),
                t.size.into_pyobject(self.py)?.into_any(),
                frames.into_any(),
                self.total(tb.total_nframe)?,
            ],
        )
    }
}

/// An immutable snapshot held in Rust.
#[pyclass(module = "leakguard._leakguard", frozen)]
pub struct RawSnapshot {
    pub data: Arc<SnapshotData>,
}

impl RawSnapshot {
    pub fn new(data: SnapshotData) -> Self {
        RawSnapshot {
            data: Arc::new(data),
        }
    }
}

fn key_type(s: &str) -> Result<KeyType, Error> {
    s.parse::<KeyType>()
        .map_err(|e| Error::Usage(e.to_string()))
}

fn group_error(e: crate::snapshot::group::GroupError) -> Error {
    Error::Usage(e.to_string())
}

/// Reads one raw frame `(filename, lineno)`.
fn raw_frame(item: &Bound<'_, PyAny>) -> PyResult<(String, i64)> {
    let t = item.cast::<PyTuple>().map_err(|_| {
        PyTypeError::new_err(format!(
            "a frame must be a (filename, lineno) tuple, not {}",
            item.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    if t.len() != 2 {
        return Err(PyTypeError::new_err(format!(
            "a frame must be a (filename, lineno) tuple, got {} items",
            t.len()
        )));
    }
    let filename: String = t
        .get_item(0)?
        .extract()
        .map_err(|_| PyTypeError::new_err("a frame's filename must be a str"))?;
    let lineno: i64 = t
        .get_item(1)?
        .extract()
        .map_err(|_| PyTypeError::new_err("a frame's lineno must be an int"))?;
    Ok((filename, lineno))
}

#[pymethods]
impl RawSnapshot {
    /// Builds a snapshot from raw trace tuples.
    #[staticmethod]
    fn from_traces(traces: &Bound<'_, PyAny>, traceback_limit: u32) -> PyResult<Self> {
        let mut b = SnapshotBuilder::new(traceback_limit);
        // Raw traces usually share their traceback tuples: convert each
        // distinct tuple once. `keep` holds them so their addresses stay
        // unique while the map uses them as keys.
        let mut seen: AHashMap<(usize, u32), u32> = AHashMap::new();
        let mut keep: Vec<Bound<'_, PyAny>> = Vec::new();
        for item in traces.try_iter()? {
            let item = item?;
            let t = item.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err(
                    "a trace must be a (domain, size, traceback, total_nframe) tuple",
                )
            })?;
            let (domain, size, frames, total) = match t.len() {
                4 => (t.get_item(0)?, t.get_item(1)?, t.get_item(2)?, Some(t.get_item(3)?)),
                3 => (t.get_item(0)?, t.get_item(1)?, t.get_item(2)?, None),
                n => {
                    return Err(PyTypeError::new_err(format!(
                        "a trace must be a (domain, size, traceback, total_nframe) tuple, got {n} items"
                    )))
                }
            };
            let domain: u64 = domain.extract()?;
            let size: u64 = size.extract()?;
            let total: u32 = match total {
                Some(t) if !t.is_none() => t.extract()?,
                _ => NO_TOTAL,
            };
            let key = (frames.as_ptr() as usize, total);
            let idx = match seen.get(&key) {
                Some(&i) => i,
                None => {
                    let mut owned = Vec::new();
                    for f in frames.try_iter()? {
                        owned.push(raw_frame(&f?)?);
                    }
                    let borrowed: Vec<(&str, i64)> =
                        owned.iter().map(|(n, l)| (n.as_str(), *l)).collect();
                    let i = b.intern_traceback(&borrowed, total);
                    seen.insert(key, i);
                    keep.push(frames);
                    i
                }
            };
            b.push_trace(domain, size, idx);
        }
        Ok(RawSnapshot::new(b.finish()))
    }

    /// Reads a snapshot file: `(snapshot, attrs)`.
    #[staticmethod]
    fn load(py: Python<'_>, path: &str) -> PyResult<(Self, Py<PyBytes>)> {
        let bytes = std::fs::read(path).map_err(|e| os_error(e, path))?;
        let (data, attrs) = py
            .detach(|| format::read(&bytes))
            .map_err(|e| Error::Snapshot {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        Ok((RawSnapshot::new(data), PyBytes::new(py, &attrs).unbind()))
    }

    /// Writes the snapshot and `attrs` to `path`.
    fn dump(&self, py: Python<'_>, path: &str, attrs: &[u8]) -> PyResult<()> {
        let data = Arc::clone(&self.data);
        let attrs = attrs.to_vec();
        let path_owned = path.to_owned();
        py.detach(move || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path_owned)?);
            format::write(&data, &attrs, &mut out)?;
            use std::io::Write;
            out.flush()
        })
        .map_err(|e| os_error(e, path))
    }

    #[getter]
    fn traceback_limit(&self) -> u32 {
        self.data.traceback_limit
    }

    fn __len__(&self) -> usize {
        self.data.traces.len()
    }

    fn total_size(&self) -> u64 {
        self.data.total_size()
    }

    fn trace<'py>(&self, py: Python<'py>, index: isize) -> PyResult<Bound<'py, PyTuple>> {
        let n = self.data.traces.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if i < 0 || i >= n {
            return Err(PyIndexError::new_err("trace index out of range"));
        }
        Converter::new(py, &self.data.filenames).trace(&self.data, i as usize)
    }

    fn traces<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        traces_list(py, &self.data)
    }

    fn statistics<'py>(
        &self,
        py: Python<'py>,
        key_type: &str,
        cumulative: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = key_type_checked(key_type)?;
        let data = Arc::clone(&self.data);
        let stats = py
            .detach(move || data.statistics(key, cumulative))
            .map_err(group_error)?;
        let mut conv = Converter::new(py, &self.data.filenames);
        let items = stats
            .iter()
            .map(|s| {
                PyTuple::new(
                    py,
                    [
                        s.size.into_pyobject(py)?.into_any(),
                        s.count.into_pyobject(py)?.into_any(),
                        conv.frames(&s.key)?.into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    fn compare_to<'py>(
        &self,
        py: Python<'py>,
        old: &RawSnapshot,
        key_type: &str,
        cumulative: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let key = key_type_checked(key_type)?;
        let (new, oldd) = (&*self.data, &*old.data);
        let cmp: Comparison<'_> = new.compare_to(oldd, key, cumulative).map_err(group_error)?;
        let names: Vec<String> = (0..cmp.filename_count())
            .map(|i| cmp.filename(i as u32).to_owned())
            .collect();
        let mut conv = Converter::new(py, &names);
        let items = cmp
            .diffs
            .iter()
            .map(|d| {
                PyTuple::new(
                    py,
                    [
                        d.size.into_pyobject(py)?.into_any(),
                        d.size_diff.into_pyobject(py)?.into_any(),
                        d.count.into_pyobject(py)?.into_any(),
                        d.count_diff.into_pyobject(py)?.into_any(),
                        conv.frames(&d.key)?.into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Distinct `(domain, traceback, total_nframe)`, in first-appearance order.
    fn filter_keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let mut conv = Converter::new(py, &self.data.filenames);
        let mut out = Vec::new();
        for (domain, tb) in filter_key_order(&self.data).0 {
            let t = self.data.traceback(tb);
            out.push(PyTuple::new(
                py,
                [
                    domain.into_pyobject(py)?.into_any(),
                    conv.frames(&t.frames)?.into_any(),
                    conv.total(t.total_nframe)?,
                ],
            )?);
        }
        PyList::new(py, out)
    }

    /// The traces whose filter key has a non-zero byte in `mask`.
    fn select(&self, mask: &[u8]) -> PyResult<Self> {
        let (keys, per_trace) = filter_key_order(&self.data);
        if mask.len() != keys.len() {
            return Err(Error::Usage(format!(
                "mask has {} entries but the snapshot has {} filter keys",
                mask.len(),
                keys.len()
            ))
            .into());
        }
        let mut i = 0;
        let data = self.data.select(|_| {
            let keep = mask[per_trace[i] as usize] != 0;
            i += 1;
            keep
        });
        Ok(RawSnapshot::new(data))
    }
}

/// An I/O error as Python's `open()` reports it: `OSError(errno, strerror,
/// filename)`, which Python turns into the matching subclass
/// (`FileNotFoundError`, `IsADirectoryError`, …).
fn os_error(e: std::io::Error, path: &str) -> PyErr {
    match e.raw_os_error() {
        Some(errno) => {
            // SAFETY: strerror returns a pointer to a static or thread-local
            // NUL-terminated message, copied out immediately.
            let msg = unsafe { std::ffi::CStr::from_ptr(libc::strerror(errno)) }
                .to_string_lossy()
                .into_owned();
            pyo3::exceptions::PyOSError::new_err((errno, msg, path.to_owned()))
        }
        None => pyo3::exceptions::PyOSError::new_err(format!("{path}: {e}")),
    }
}

fn key_type_checked(s: &str) -> PyResult<KeyType> {
    Ok(key_type(s)?)
}

/// The distinct (domain, traceback) keys in first-appearance order, and the
/// key index of every trace.
fn filter_key_order(data: &SnapshotData) -> (Vec<(u64, u32)>, Vec<u32>) {
    let mut ids: AHashMap<(u64, u32), u32> = AHashMap::new();
    let mut keys = Vec::new();
    let per_trace = data
        .traces
        .iter()
        .map(|t| {
            let k = (t.domain, t.traceback);
            *ids.entry(k).or_insert_with(|| {
                keys.push(k);
                (keys.len() - 1) as u32
            })
        })
        .collect();
    (keys, per_trace)
}

/// Every trace as a raw tuple, tracebacks shared.
pub fn traces_list<'py>(py: Python<'py>, data: &SnapshotData) -> PyResult<Bound<'py, PyList>> {
    let mut conv = Converter::new(py, &data.filenames);
    let items = (0..data.traces.len())
        .map(|i| conv.trace(data, i))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// A traceback as raw frames.
pub fn traceback_tuple<'py>(
    py: Python<'py>,
    filenames: &[String],
    tb: &Traceback,
) -> PyResult<Bound<'py, PyTuple>> {
    Converter::new(py, filenames).frames(&tb.frames)
}
