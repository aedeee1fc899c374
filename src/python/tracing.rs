//! The tracing functions of the native module: start/stop, counters, object
//! lookups and snapshots. Arguments arrive validated by the Python layer
//! (which reproduces `_tracemalloc`'s messages); checks here are a backstop.

use super::errors::Error;
use super::snapshot::{traceback_tuple, traces_list, RawSnapshot};
use crate::raw::cpython;
use crate::raw::{hooks, tracer};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::sync::atomic::{AtomicU8, Ordering};

const MAX_NFRAME: u32 = 65535;

/// Result of the frame-walk self-check: 0 not run, 1 passed, 2 failed.
/// GIL held when written.
static SELF_CHECK: AtomicU8 = AtomicU8::new(0);

/// Compares the frame walk with `sys._getframe()` once per process. A
/// mismatch means the shim misreads this interpreter's frames: refusing to
/// trace beats reporting wrong lines.
fn self_check(py: Python<'_>) -> PyResult<()> {
    match SELF_CHECK.load(Ordering::Relaxed) {
        1 => return Ok(()),
        2 => {
            return Err(Error::Tracing(
                "leakguard cannot read this interpreter's frames (self-check failed earlier)"
                    .into(),
            )
            .into())
        }
        _ => {}
    }
    let (walked, _) = super::stack::resolved_stack(py, 8);
    let mut expected: Vec<(String, u32)> = Vec::new();
    let mut frame = py.import("sys")?.call_method1("_getframe", (0,))?;
    while !frame.is_none() && expected.len() < walked.len().max(1) {
        let code = frame.getattr("f_code")?;
        let filename: String = code.getattr("co_filename")?.extract()?;
        let lineno: Option<u32> = frame.getattr("f_lineno")?.extract()?;
        expected.push((filename, lineno.unwrap_or(0)));
        frame = frame.getattr("f_back")?;
    }
    if walked.is_empty() || walked != expected {
        SELF_CHECK.store(2, Ordering::Relaxed);
        return Err(Error::Tracing(format!(
            "leakguard cannot read this interpreter's frames: the frame walk gave {walked:?} \
             but sys._getframe() gives {expected:?}; refusing to trace (CPython {}.{}.{})",
            py.version_info().major,
            py.version_info().minor,
            py.version_info().patch,
        ))
        .into());
    }
    SELF_CHECK.store(1, Ordering::Relaxed);
    Ok(())
}

/// Starts tracing with at most `nframe` frames per traceback.
#[pyfunction]
fn start(py: Python<'_>, nframe: i64) -> PyResult<()> {
    if !(1..=i64::from(MAX_NFRAME)).contains(&nframe) {
        return Err(Error::Usage("the number of frames must be in range [1; 65535]".into()).into());
    }
    self_check(py)?;
    if hooks::position() == hooks::Position::Covered && !stdlib_tracing(py)? {
        // A tracer that had hooked on top of us stopped without our wrapper
        // and cut us out of the chain: we are not installed any more.
        hooks::forget_covered();
    }
    // Keep working when stdlib tracemalloc, started before us, is stopped.
    py.import("leakguard._coexist")?
        .call_method0("guard_stdlib_stop")?;
    // Imported before tracing starts: its import is not the program's memory.
    let numpy = py.import("leakguard._numpy")?;
    tracer::start(nframe as u32)
        .map_err(|_| Error::Tracing("out of memory starting the tracer".into()))?;
    if let Err(e) = hooks::install() {
        tracer::stop();
        return Err(Error::Tracing(format!("cannot install the allocator hooks: {e:?}")).into());
    }
    // numpy's array data: wrapped now if numpy is loaded, else when it is
    // (leakguard's own work: not recorded).
    let was = hooks::set_thread_paused(true);
    let watched = numpy.call_method0("watch");
    hooks::set_thread_paused(was);
    watched?;
    Ok(())
}

fn stdlib_tracing(py: Python<'_>) -> PyResult<bool> {
    py.import("_tracemalloc")?
        .call_method0("is_tracing")?
        .extract()
}

/// Stops tracing and clears every trace.
#[pyfunction]
fn stop() {
    hooks::uninstall();
    tracer::stop();
}

/// Called by the wrapper around stdlib `tracemalloc.stop()`: take our hooks
/// out of the chain where they sit on top of stdlib's, so that stdlib can
/// restore the allocators it saved.
#[pyfunction]
fn _before_foreign_stop() {
    hooks::uninstall();
}

/// ... and put them back on top of whatever stdlib restored.
#[pyfunction]
fn _after_foreign_stop() -> PyResult<()> {
    hooks::forget_covered();
    if tracer::is_tracing() {
        tracer::frees_may_have_been_missed();
        hooks::install()
            .map_err(|e| Error::Tracing(format!("cannot reinstall the allocator hooks: {e:?}")))?;
    }
    Ok(())
}

/// Where the hooks stand: "absent", "on top" or "covered".
#[pyfunction]
fn _hooks_position() -> &'static str {
    match hooks::position() {
        hooks::Position::Absent => "absent",
        hooks::Position::OnTop => "on top",
        hooks::Position::Covered => "covered",
    }
}

/// `(current traced bytes, sum of the live traces' sizes)`, both read at
/// one quiescent instant: a test of the counters' bookkeeping.
#[pyfunction]
fn _consistency() -> (u64, u64) {
    tracer::consistency()
}

/// `_pause_thread(paused) -> bool`: stops (or resumes) recording the calling
/// thread's new blocks, returning whether they were paused before. Frees are
/// still seen. leakguard's own analysis runs paused, so its working data
/// never appears among the traces it analyses.
#[pyfunction]
fn _pause_thread(paused: bool) -> bool {
    hooks::set_thread_paused(paused)
}

#[pyfunction]
fn is_tracing() -> bool {
    tracer::is_tracing()
}

#[pyfunction]
fn get_traceback_limit() -> u32 {
    tracer::traceback_limit()
}

#[pyfunction]
fn get_traced_memory() -> (u64, u64) {
    tracer::traced_memory()
}

#[pyfunction]
fn reset_peak() {
    tracer::reset_peak();
}

/// Sets the peak traced bytes to `max(nbytes, current)`: a scoped tracker
/// that reset the peak to measure a block puts back the peak it found.
#[pyfunction]
fn _set_peak(nbytes: i64) -> PyResult<()> {
    let nbytes =
        u64::try_from(nbytes).map_err(|_| Error::Usage("the peak must not be negative".into()))?;
    tracer::set_peak(nbytes);
    Ok(())
}

#[pyfunction]
fn clear_traces() {
    tracer::clear_traces();
}

#[pyfunction]
fn get_tracemalloc_memory() -> usize {
    tracer::tracer_memory()
}

/// Raw traceback of the block holding `obj`, or None.
#[pyfunction]
fn get_object_traceback<'py>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    // SAFETY: `obj` is a live object (we hold a reference); the shim only
    // reads its type to find the start of its memory block.
    let block = unsafe { cpython::lg_object_block(obj.as_ptr().cast()) } as usize;
    let Some(trace) = tracer::trace_of(block) else {
        return Ok(None);
    };
    raw_traceback(py, trace.traceback)
}

/// Engine traceback `id` as the raw tuple `get_object_traceback` returns.
fn raw_traceback(py: Python<'_>, id: u32) -> PyResult<Option<Bound<'_, PyTuple>>> {
    let Some((total, frames)) = tracer::traceback_frames(id) else {
        return Ok(None);
    };
    let mut names = Vec::new();
    let mut tb_frames = Vec::new();
    for (file, line) in frames {
        names.push(tracer::filename(file));
        tb_frames.push(crate::snapshot::Frame {
            filename: (names.len() - 1) as u32,
            lineno: i64::from(line),
        });
    }
    let tb = crate::snapshot::Traceback {
        frames: tb_frames.into_boxed_slice(),
        total_nframe: total,
    };
    traceback_tuple(py, &names, &tb).map(Some)
}

/// `_peak_watch(on) -> bool`: starts (or stops) counting bytes and blocks
/// per traceback, and their values when the traced total is at its highest;
/// starting resets the peak to the current traced bytes. Returns whether a
/// watch was on. One watch at a time per process.
#[pyfunction]
fn _peak_watch(on: bool) -> bool {
    tracer::set_peak_watch(on)
}

/// `_peak_sites(peak_limit=0, left=True) -> [(raw traceback, bytes at peak,
/// blocks at peak, bytes now, blocks now)]`: what the current (or last)
/// watch counted, as bytes allocated minus freed since it began. With
/// `peak_limit` > 0 only the `peak_limit` tracebacks with the most bytes at
/// the peak, plus (with `left`) every traceback with bytes alive now; the
/// rest are never turned into Python objects. Unordered.
#[pyfunction]
#[pyo3(signature = (peak_limit = 0, left = true))]
fn _peak_sites(py: Python<'_>, peak_limit: usize, left: bool) -> PyResult<Bound<'_, PyList>> {
    let mut sites = tracer::peak_sites();
    if peak_limit > 0 && sites.len() > peak_limit {
        // The `peak_limit` biggest first (in no order), then the rest.
        sites.select_nth_unstable_by_key(peak_limit - 1, |s| std::cmp::Reverse(s.peak_bytes));
        let mut index = 0;
        sites.retain(|s| {
            let keep = index < peak_limit || (left && s.bytes > 0);
            index += 1;
            keep
        });
    }
    let out = PyList::empty(py);
    for site in sites {
        let Some(tb) = raw_traceback(py, site.traceback)? else {
            continue;
        };
        out.append((
            tb,
            site.peak_bytes,
            site.peak_blocks,
            site.bytes,
            site.blocks,
        ))?;
    }
    Ok(out)
}

/// `_only_this_thread(on) -> bool`: records only the calling thread's new
/// blocks (frees of every thread are still seen), or every thread's again.
/// Returns whether a restriction was in force.
#[pyfunction]
fn _only_this_thread(on: bool) -> bool {
    hooks::set_only_this_thread(on)
}

/// Every live trace as raw tuples (tracebacks shared).
#[pyfunction]
fn get_traces(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    if !tracer::is_tracing() {
        return PyList::new(py, Vec::<Bound<'_, PyAny>>::new());
    }
    let data = tracer::snapshot();
    traces_list(py, &data)
}

/// A consistent copy of the live traces.
#[pyfunction]
fn take_snapshot() -> PyResult<RawSnapshot> {
    if !tracer::is_tracing() {
        return Err(Error::Tracing(
            "the tracemalloc module must be tracing memory allocations to take a snapshot".into(),
        )
        .into());
    }
    Ok(RawSnapshot::new(tracer::snapshot()))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(_peak_watch, m)?)?;
    m.add_function(wrap_pyfunction!(_peak_sites, m)?)?;
    m.add_function(wrap_pyfunction!(_only_this_thread, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(_before_foreign_stop, m)?)?;
    m.add_function(wrap_pyfunction!(_after_foreign_stop, m)?)?;
    m.add_function(wrap_pyfunction!(_hooks_position, m)?)?;
    m.add_function(wrap_pyfunction!(_consistency, m)?)?;
    m.add_function(wrap_pyfunction!(_pause_thread, m)?)?;
    m.add_function(wrap_pyfunction!(is_tracing, m)?)?;
    m.add_function(wrap_pyfunction!(get_traceback_limit, m)?)?;
    m.add_function(wrap_pyfunction!(get_traced_memory, m)?)?;
    m.add_function(wrap_pyfunction!(reset_peak, m)?)?;
    m.add_function(wrap_pyfunction!(_set_peak, m)?)?;
    m.add_function(wrap_pyfunction!(clear_traces, m)?)?;
    m.add_function(wrap_pyfunction!(get_tracemalloc_memory, m)?)?;
    m.add_function(wrap_pyfunction!(get_object_traceback, m)?)?;
    m.add_function(wrap_pyfunction!(get_traces, m)?)?;
    m.add_function(wrap_pyfunction!(take_snapshot, m)?)?;
    m.add_class::<RawSnapshot>()?;
    Ok(())
}
