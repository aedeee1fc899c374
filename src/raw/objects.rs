//! From traced blocks back to live Python objects.
//!
//! [`locate`] walks a list of objects (normally `gc.get_objects()`, which
//! lists every object the garbage collector tracks) and the objects each of
//! them references, and reports the objects that own one of the blocks asked
//! about: their own block, or a buffer only they point to (see
//! `lg_owned_blocks` in `cpython.c`). Objects that `gc.get_objects()` never
//! lists are reached as references: non-GC objects (str, bytes, int, float…)
//! and GC objects the collector does not track (tuples and dicts that can
//! hold no cycle), whose own references are followed in turn.
//!
//! The walk holds the GIL from start to end, runs no Python code, allocates
//! no Python object and never releases the GIL (its own bookkeeping uses
//! Rust's allocator, which the hooks do not see). So no object it reaches can
//! be freed or changed under it: each is kept alive by the list or by the
//! object that referenced it. A match takes a strong reference at once.

use std::collections::HashMap;
use std::os::raw::{c_int, c_void};

use ahash::{AHashMap, AHashSet};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::cpython;

/// Block address → the caller's key for it.
pub type BlockKeys = HashMap<usize, i64, ahash::RandomState>;

/// Room for the blocks `lg_owned_blocks` reports for one object (3 at most).
const MAX_OWNED: usize = 4;

/// One object found: the key of the block it owns, a strong reference to
/// it, and whether the block is a buffer it owns (true) or its own (false).
/// When it was reached through GC objects the collector does not track
/// (which `gc.get_referrers` cannot see), `untracked_path` holds them, the
/// one referencing the object first, then each one's referrer, ending with
/// the tracked object the walk started from.
pub struct Found {
    pub key: i64,
    pub object: Py<PyAny>,
    pub via_buffer: bool,
    pub untracked_path: Vec<Py<PyAny>>,
}

/// Prepares the shim's object functions (records the tables all empty dicts
/// share). Call once, at import.
pub fn init(py: Python<'_>) -> PyResult<()> {
    // SAFETY: the GIL is held (`py`).
    if unsafe { cpython::lg_objects_init() } != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// Records, for `lg_owned_blocks`, the buffer-owning types of extension
/// modules loaded now (a module never loaded has no instances; one loaded
/// later is recorded at the next call, and a type recorded stays so). Runs
/// Python code (module lookups): call before a walk, not during it.
fn learn_buffer_types(py: Python<'_>) {
    let Ok(modules) = py.import("sys").and_then(|sys| sys.getattr("modules")) else {
        return;
    };
    let Ok(modules) = modules.cast_into::<PyDict>() else {
        return;
    };
    let type_of = |module: &str, name: &str| match modules.get_item(module) {
        Ok(Some(m)) => m.getattr(name).ok(),
        _ => None,
    };
    let (array, bytesio, stringio) = (
        type_of("array", "array"),
        type_of("_io", "BytesIO"),
        type_of("_io", "StringIO"),
    );
    let ptr =
        |t: &Option<Bound<'_, PyAny>>| t.as_ref().map_or(std::ptr::null_mut(), |t| t.as_ptr());
    // SAFETY: the GIL is held (`py`); each pointer is null or a live object
    // (the Bounds keep them alive during the call).
    unsafe { cpython::lg_objects_know_buffer_types(ptr(&array), ptr(&bytesio), ptr(&stringio)) };
}

/// Room for what `lg_hidden_referents` reports for one object (2 at most).
const MAX_HIDDEN: usize = 2;

/// The objects `obj` holds through fields its type's traverse does not
/// visit (see `lg_hidden_referents`), as new references.
pub fn hidden_referents<'py>(obj: &Bound<'py, PyAny>) -> Vec<Bound<'py, PyAny>> {
    let py = obj.py();
    learn_buffer_types(py);
    let mut found = [std::ptr::null_mut::<pyo3::ffi::PyObject>(); MAX_HIDDEN];
    // SAFETY: the GIL is held (`py`), `obj` is live while the Bound exists
    // and `found` has room for MAX_HIDDEN pointers.
    let n = unsafe {
        cpython::lg_hidden_referents(obj.as_ptr(), found.as_mut_ptr(), MAX_HIDDEN as c_int)
    };
    let n = usize::try_from(n).unwrap_or(0).min(MAX_HIDDEN);
    let mut out = Vec::with_capacity(n);
    for &p in &found[..n] {
        // `p` is non-null, held by `obj` (alive while the Bound is, GIL held).
        // SAFETY: a live borrowed reference; from_borrowed_ptr takes its own.
        let held = unsafe { Bound::from_borrowed_ptr(py, p) };
        out.push(held);
    }
    out
}

/// The blocks `obj` owns: its own first, then the buffers only it points to.
pub fn owned_blocks(obj: &Bound<'_, PyAny>) -> Vec<usize> {
    learn_buffer_types(obj.py());
    let mut owned = [std::ptr::null_mut::<c_void>(); MAX_OWNED];
    let (op, out) = (obj.as_ptr(), owned.as_mut_ptr());
    // `obj` is alive while the Bound exists; `owned` has room for MAX_OWNED.
    // SAFETY: the GIL is held, `op` is live and `out` is big enough (above).
    let n = unsafe { cpython::lg_owned_blocks(op, out, MAX_OWNED as c_int) };
    let n = usize::try_from(n).unwrap_or(0).min(MAX_OWNED);
    owned[..n].iter().map(|&p| p as usize).collect()
}

/// Walks `objects` and the objects each references (following GC objects
/// the collector does not track further down), and returns, for each key
/// of `blocks`, up to `per_key` distinct objects owning a block mapped to
/// that key, in the order met. Stops as soon as every key has `per_key`.
pub fn locate(
    py: Python<'_>,
    objects: &Bound<'_, PyList>,
    blocks: &BlockKeys,
    per_key: usize,
) -> Vec<Found> {
    learn_buffer_types(py);
    let mut walk = Walk::new(blocks, per_key);
    let list = objects.as_ptr();
    // SAFETY: `list` is a live list (the Bound checked its type); GIL held.
    let len = unsafe { ffi::PyList_GET_SIZE(list) };
    let mut i = 0;
    while i < len && !walk.done() {
        // SAFETY: `i < len`, and the list keeps its length and items during
        // the walk: no Python code runs and the GIL is never released.
        let op = unsafe { ffi::PyList_GET_ITEM(list, i) };
        // SAFETY: an item of a live list is a live object; GIL held.
        unsafe { walk.root(op) };
        i += 1;
    }
    walk.into_found(py)
}

/// A one-hash bloom filter over the block addresses, 16 bits per block and
/// small enough to stay in cache: most objects own no block asked about, and
/// this answers them without probing the map.
struct Filter {
    bits: Vec<u64>,
    shift: u32,
}

impl Filter {
    fn new(blocks: &BlockKeys) -> Self {
        let nbits = (blocks.len() * 16).next_power_of_two().max(1 << 12);
        let mut filter = Filter {
            bits: vec![0; nbits / 64],
            shift: 64 - nbits.trailing_zeros(),
        };
        for &addr in blocks.keys() {
            let s = filter.slot(addr);
            filter.bits[s / 64] |= 1 << (s % 64);
        }
        filter
    }

    #[inline]
    fn slot(&self, addr: usize) -> usize {
        ((addr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn may_contain(&self, addr: usize) -> bool {
        let s = self.slot(addr);
        self.bits[s / 64] & (1 << (s % 64)) != 0
    }
}

struct Walk<'a> {
    blocks: &'a BlockKeys,
    filter: Filter,
    per_key: usize,
    /// Matches so far, per key.
    counts: AHashMap<i64, usize>,
    /// Keys with fewer than `per_key` matches.
    open: usize,
    /// `(key, object)` pairs already reported.
    seen: AHashSet<(i64, usize)>,
    /// The matches; each holds a strong reference to its object and to
    /// every object of its untracked path.
    found: Vec<(i64, *mut ffi::PyObject, bool, Vec<*mut ffi::PyObject>)>,
    /// Untracked GC objects met as references, still to traverse.
    pending: Vec<*mut ffi::PyObject>,
    /// Untracked GC objects already queued once → the object that
    /// referenced them (tracked roots are not in the map).
    queued: AHashMap<usize, *mut ffi::PyObject>,
    /// The object being traversed.
    current: *mut ffi::PyObject,
}

impl<'a> Walk<'a> {
    fn new(blocks: &'a BlockKeys, per_key: usize) -> Self {
        let mut counts = AHashMap::new();
        for &key in blocks.values() {
            counts.insert(key, 0);
        }
        Walk {
            blocks,
            filter: Filter::new(blocks),
            per_key,
            open: if per_key == 0 { 0 } else { counts.len() },
            counts,
            seen: AHashSet::new(),
            found: Vec::new(),
            pending: Vec::new(),
            queued: AHashMap::new(),
            current: std::ptr::null_mut(),
        }
    }

    fn done(&self) -> bool {
        self.open == 0
    }

    /// Checks `op`, then everything it references.
    ///
    /// # Safety
    ///
    /// The GIL is held and `op` is a live object that stays alive and
    /// unchanged for the call (nothing runs Python code meanwhile).
    unsafe fn root(&mut self, op: *mut ffi::PyObject) {
        // SAFETY: the caller's contract.
        unsafe { self.check(op) };
        if self.done() {
            return;
        }
        // SAFETY: the caller's contract.
        unsafe { self.traverse(op) };
        while let Some(container) = self.pending.pop() {
            if self.done() {
                break;
            }
            // `container` was met as a reference of an object reached from
            // `op` during this call, and nothing has run since that could
            // drop a reference.
            // SAFETY: so it is still alive, held by whoever referenced it.
            unsafe { self.traverse(container) };
        }
        self.pending.clear();
        self.current = std::ptr::null_mut();
    }

    /// Calls [`visit_child`] on each object `op` references.
    ///
    /// # Safety
    ///
    /// As for [`root`](Self::root).
    unsafe fn traverse(&mut self, op: *mut ffi::PyObject) {
        self.current = op;
        let walk: *mut Self = self;
        // `visit_child` runs no Python code and allocates no Python object;
        // its `arg` is this walk, not otherwise touched until tp_traverse returns.
        // SAFETY: GIL held and `op` live (caller); the visitor obeys the above.
        unsafe { cpython::lg_traverse(op, visit_child, walk.cast()) };
    }

    /// Reports `op` under the key of each block it owns.
    ///
    /// # Safety
    ///
    /// The GIL is held and `op` is a live object.
    #[inline]
    unsafe fn check(&mut self, op: *mut ffi::PyObject) {
        let mut owned = [std::ptr::null_mut::<c_void>(); MAX_OWNED];
        // SAFETY: GIL held and `op` live (caller); `owned` has room for
        // MAX_OWNED pointers.
        let n = unsafe { cpython::lg_owned_blocks(op, owned.as_mut_ptr(), MAX_OWNED as c_int) };
        let n = usize::try_from(n).unwrap_or(0).min(MAX_OWNED);
        for (i, &block) in owned[..n].iter().enumerate() {
            let addr = block as usize;
            if !self.filter.may_contain(addr) {
                continue;
            }
            if let Some(&key) = self.blocks.get(&addr) {
                // SAFETY: the caller's contract.
                unsafe { self.matched(op, key, i > 0) };
            }
        }
    }

    /// # Safety
    ///
    /// The GIL is held and `op` is a live object, `self.current` (when not
    /// null) the live object whose traversal reached it.
    unsafe fn matched(&mut self, op: *mut ffi::PyObject, key: i64, via_buffer: bool) {
        let Some(count) = self.counts.get_mut(&key) else {
            return;
        };
        if *count >= self.per_key || !self.seen.insert((key, op as usize)) {
            return;
        }
        // The untracked containers between the root and `op`, innermost
        // first, and the root.
        let mut path = Vec::new();
        if op != self.current {
            let mut at = self.current;
            while let Some(&referrer) = self.queued.get(&(at as usize)) {
                path.push(at);
                at = referrer;
            }
            if !path.is_empty() {
                path.push(at);
            }
        }
        // `op` and every object of `path` are live: each is held by the next,
        // the last by the walked list. The new references are the ones `found`
        // owns until `into_found` hands them to `Py`s.
        // SAFETY: live objects (above), GIL held.
        unsafe {
            ffi::Py_INCREF(op);
            for &p in &path {
                ffi::Py_INCREF(p);
            }
        }
        self.found.push((key, op, via_buffer, path));
        *count += 1;
        if *count == self.per_key {
            self.open -= 1;
        }
    }

    fn into_found(self, py: Python<'_>) -> Vec<Found> {
        self.found
            .into_iter()
            .map(|(key, op, via_buffer, path)| Found {
                key,
                // SAFETY: `op` carries the strong reference taken in
                // `matched`, which this transfers; GIL held (`py`).
                object: unsafe { Bound::from_owned_ptr(py, op) }.unbind(),
                via_buffer,
                untracked_path: path
                    .into_iter()
                    // SAFETY: as for `op`.
                    .map(|p| unsafe { Bound::from_owned_ptr(py, p) }.unbind())
                    .collect(),
            })
            .collect()
    }
}

/// The `visitproc` given to `tp_traverse`: checks one referenced object and
/// queues it when the collector does not track it (so nothing else would
/// traverse it). Returns non-zero, which stops the traversal, once every
/// key is satisfied.
///
/// # Safety
///
/// `arg` is the `Walk` of the [`Walk::traverse`] call that is running, the
/// GIL is held and `child` is null or a live object (its referrer holds it).
unsafe extern "C" fn visit_child(child: *mut ffi::PyObject, arg: *mut c_void) -> c_int {
    if child.is_null() {
        return 0;
    }
    // SAFETY: `arg` is the walk `traverse` passed, which nothing else uses
    // until tp_traverse returns.
    let walk = unsafe { &mut *arg.cast::<Walk<'_>>() };
    // SAFETY: GIL held, `child` live (contract).
    unsafe { walk.check(child) };
    if walk.done() {
        return 1;
    }
    // SAFETY: as above.
    if unsafe { cpython::lg_gc_untracked(child) } != 0
        && !walk.queued.contains_key(&(child as usize))
    {
        walk.queued.insert(child as usize, walk.current);
        walk.pending.push(child);
    }
    0
}
