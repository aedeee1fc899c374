//! FFI to `cpython.c`, the shim compiled against the running interpreter's
//! own headers (with `Py_BUILD_CORE`), which reads the interpreter's frames
//! without allocating, without creating frame objects and without touching
//! reference counts.
//!
//! The hook path uses the raw functions directly ([`lg_capture_stack`] with a
//! buffer it owns); everything else resolves frames with the small wrappers
//! at the bottom, which allocate and so must stay off the hook path.
//!
//! What a captured stack contains is defined by stdlib `tracemalloc`: the
//! same frames, the same line numbers, the same total depth.
//!
//! The shim also holds the "exact objects" switch ([`lg_exact_objects`],
//! [`exact_objects`]), which keeps floats, tuples, lists and dicts out of the
//! interpreter's free lists so that each comes from the allocator.

use std::os::raw::{c_char, c_int, c_long, c_void};

use pyo3::prelude::*;

/// One captured frame, raw: enough to find its line later and to tell a
/// reused address from the same code object (filename, line table and first
/// line are compared along with the code pointer).
///
/// Mirrors `lg_raw_frame` in `cpython.c` field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RawFrame {
    /// The frame's `PyCodeObject *`.
    pub code: usize,
    /// The code's `co_filename` (a `str`) when captured.
    pub filename: usize,
    /// The bytes object the line lookup reads: `co_lnotab` on 3.9,
    /// `co_linetable` on 3.10+.
    pub linetable: usize,
    /// The code's `co_firstlineno`.
    pub firstlineno: c_int,
    /// Where the frame is, opaque to Rust: pass the frame to
    /// [`lg_frame_lineno`]. Normally the instruction offset in bytes that
    /// stdlib tracemalloc passes to `PyCode_Addr2Line` for this frame. On
    /// 3.9/3.10 only, when a tracer owns the frame, tracemalloc reports the
    /// frame's `f_lineno` instead, stored here as `-3 - f_lineno`. Equal
    /// `(code, instr)` pairs of one live code object always resolve to the
    /// same line, so they can key a line cache.
    pub instr: c_int,
}

const _: () = assert!(
    std::mem::size_of::<RawFrame>()
        == 3 * std::mem::size_of::<usize>() + 2 * std::mem::size_of::<c_int>()
);

/// The most frames a stack's total depth counts, as tracemalloc's
/// `total_nframe` (a `uint16_t` that saturates).
pub const MAX_TOTAL_FRAMES: u32 = 65535;

extern "C" {
    /// Captures up to `max` frames of the calling thread's Python stack, most
    /// recent first, into `out`; returns how many were written. When `total`
    /// is not null, walks the whole stack and stores its depth, saturated at
    /// [`MAX_TOTAL_FRAMES`], in `*total`; when null, stops after `max`
    /// frames. Returns 0 (and `*total == 0`) when the calling thread is not
    /// attached to the interpreter (does not hold the GIL, has no thread
    /// state, or is not the finalizing thread during finalization).
    ///
    /// Skips the frames tracemalloc skips: incomplete frames (3.11+) and
    /// C-stack entry frames (3.12+). Never allocates, never calls into
    /// Python, never touches a refcount, never creates a frame object.
    ///
    /// # Safety
    ///
    /// `out` must be valid for writing `max` frames (it may be null when
    /// `max` is 0) and `total` null or valid for writing. Call from the
    /// thread whose stack is wanted, synchronously with the interpreter: from
    /// Python, from an allocator hook, or from code the interpreter called —
    /// never from a signal handler, which can interrupt a frame half pushed.
    /// The interpreter must be a GIL build of the version the shim was
    /// compiled for.
    pub fn lg_capture_stack(out: *mut RawFrame, max: c_int, total: *mut u32) -> c_int;

    /// The line number of a frame captured by [`lg_capture_stack`], as
    /// tracemalloc reports it: 0 when unknown, never negative.
    ///
    /// Walks the code object's line table (`PyCode_Addr2Line`): no
    /// allocation, but its cost grows with the offset into the function.
    ///
    /// # Safety
    ///
    /// `frame` must point to a frame captured by [`lg_capture_stack`] whose
    /// code object is still alive (the same object, not a new one at the same
    /// address), and the GIL must be held.
    pub fn lg_frame_lineno(frame: *const RawFrame) -> c_int;

    /// The frame's filename (`frame.filename`) as UTF-8: writes at most `cap`
    /// bytes into `buf` and returns the full length in bytes; when that is
    /// more than `cap`, `buf` holds a prefix of whole characters. Lone
    /// surrogates are written as U+FFFD, so the bytes are always valid UTF-8.
    /// Returns -1 when the filename is not a `str` (or, before 3.12, a legacy
    /// `str` not made ready): tracemalloc reports `"<unknown>"` then.
    /// Never allocates.
    ///
    /// # Safety
    ///
    /// `frame` must point to a captured frame whose filename object is still
    /// alive (the code object keeps it alive unless its `co_filename` was
    /// replaced since, as `importlib` does for moved `.pyc` files); `buf`
    /// must be valid for writing `cap` bytes (or null with `cap == 0`).
    pub fn lg_frame_filename(frame: *const RawFrame, buf: *mut c_char, cap: usize) -> c_long;

    /// The address of the memory block that holds `obj`, computed as
    /// tracemalloc's `get_object_traceback` does: the object minus its GC
    /// header (3.9/3.10) or minus `_PyType_PreHeaderSize` (3.11+: GC header
    /// and managed dict / weakref pre-header). That is the pointer the
    /// allocator returned for the object.
    ///
    /// # Safety
    ///
    /// `obj` must point to a live Python object.
    pub fn lg_object_block(obj: *mut c_void) -> *mut c_void;

    /// Records the tables every empty dict shares (static, not blocks), so
    /// that [`lg_owned_blocks`] leaves them out. Returns 0, or -1 with a
    /// Python exception set. Allocates (one empty dict).
    ///
    /// # Safety
    ///
    /// The GIL must be held.
    pub fn lg_objects_init() -> c_int;

    /// Records the types `array.array`, `_io.BytesIO` and `_io.StringIO`
    /// (each may be null: module not loaded), whose buffers
    /// [`lg_owned_blocks`] and hidden references [`lg_hidden_referents`]
    /// then report. Keeps a reference to each type recorded.
    ///
    /// # Safety
    ///
    /// The GIL must be held; each pointer is null or a live object.
    pub fn lg_objects_know_buffer_types(
        array_type: *mut pyo3::ffi::PyObject,
        bytesio_type: *mut pyo3::ffi::PyObject,
        stringio_type: *mut pyo3::ffi::PyObject,
    );

    /// Writes into `out` (at most `cap` borrowed references) the objects
    /// `op` holds through fields its type's traverse does not visit (a
    /// BytesIO's bytes, a StringIO's text while it accumulates) and returns
    /// how many.
    ///
    /// # Safety
    ///
    /// The GIL must be held, `op` must be a live object and `out` must have
    /// room for `cap` pointers.
    pub fn lg_hidden_referents(
        op: *mut pyo3::ffi::PyObject,
        out: *mut *mut pyo3::ffi::PyObject,
        cap: c_int,
    ) -> c_int;

    /// Writes into `out` (at most `cap` pointers) the memory blocks `op`
    /// owns and returns how many: `out[0]` is its own block (as
    /// [`lg_object_block`]), the others buffers only it points to — a list's
    /// item array, a dict's keys object (combined table) or values array
    /// (split table), a heap type's cached shared keys, a set's table when
    /// not inline, a bytearray's buffer, and on 3.11/3.12 an instance's
    /// values array. At most 3 are written: its own block, a table, and
    /// (3.11/3.12) its values. Never allocates, never runs Python code,
    /// never changes a reference count.
    ///
    /// # Safety
    ///
    /// The GIL must be held, `op` must point to a live object and `out` be
    /// valid for writing `cap` pointers.
    pub fn lg_owned_blocks(
        op: *mut pyo3::ffi::PyObject,
        out: *mut *mut c_void,
        cap: c_int,
    ) -> c_int;

    /// Calls `visit(child, arg)` for each object `op` references, exactly
    /// when `gc.get_referents` would (a GC object whose type has
    /// `tp_traverse`); returns what `tp_traverse` returned: non-zero when a
    /// `visit` call returned non-zero and stopped it. 0 when nothing was
    /// visited.
    ///
    /// # Safety
    ///
    /// The GIL must be held and `op` must point to a live object. `visit`
    /// must not run Python code, allocate Python objects or release the GIL,
    /// and `arg` must be what it expects.
    pub fn lg_traverse(
        op: *mut pyo3::ffi::PyObject,
        visit: pyo3::ffi::visitproc,
        arg: *mut c_void,
    ) -> c_int;

    /// Non-zero when `op` is an object the garbage collector handles but
    /// does not track right now, so `gc.get_objects()` does not list it
    /// (tuples and dicts that can hold no cycle, for instance).
    ///
    /// # Safety
    ///
    /// The GIL must be held and `op` must point to a live object.
    pub fn lg_gc_untracked(op: *mut pyo3::ffi::PyObject) -> c_int;
    /// Turns "exact objects" on (`enable != 0`) or off for the calling
    /// thread's interpreter. On: empties the interpreter's free lists of
    /// floats, tuples, lists, dicts and dict keys (freeing each entry as
    /// the interpreter's own clear does, through the hooks) and keeps them
    /// from being used, so those objects come from the allocator; called
    /// while on, it re-applies all of that (a full collection makes the
    /// float and tuple free lists usable again). Off: leaves the free lists
    /// empty and usable. See the "exact objects" section of `cpython.c` for
    /// what each CPython version does and what is not covered.
    ///
    /// Returns 1 if it was on before, 0 if it was off (always 0 on 3.9,
    /// where it does nothing), -1 if it is on in another interpreter, -2 if
    /// other code replaced `PyList_Type`'s or `PyDict_Type`'s deallocator
    /// (nothing is done in those two cases).
    ///
    /// # Safety
    ///
    /// The calling thread must hold the GIL of the interpreter it acts on.
    /// It may be called at any point Python code can run (including from a
    /// finalizer or a gc callback), never from an allocator hook or a
    /// signal handler.
    pub fn lg_exact_objects(enable: c_int) -> c_int;

    /// Whether exact objects are on here (1), off and switchable (0), or out
    /// of reach (-1: CPython 3.9, or on in another interpreter).
    ///
    /// # Safety
    ///
    /// As for [`lg_exact_objects`]: the GIL of the calling thread's
    /// interpreter is held, outside any hook or signal handler.
    pub fn lg_exact_objects_state() -> c_int;
}

/// Captures the calling thread's stack into `buf`, most recent first:
/// returns how many frames were written and the stack's total depth
/// (saturated at [`MAX_TOTAL_FRAMES`]). `(0, 0)` when the thread is not
/// attached to the interpreter. Does not allocate.
///
/// # Safety
///
/// As for [`lg_capture_stack`]: call on the thread whose stack is wanted,
/// synchronously with the interpreter, never from a signal handler.
pub unsafe fn capture(buf: &mut [RawFrame]) -> (usize, u32) {
    let max = c_int::try_from(buf.len()).unwrap_or(c_int::MAX);
    let mut total = 0u32;
    // SAFETY: `buf` is valid for `max <= buf.len()` frames and `total` is a
    // local; the caller upholds the threading requirements.
    let written = unsafe { lg_capture_stack(buf.as_mut_ptr(), max, &mut total) };
    (usize::try_from(written).unwrap_or(0), total)
}

/// The line of `frame`, as tracemalloc reports it (0 when unknown).
///
/// # Safety
///
/// `frame` must come from [`capture`] and its code object must still be
/// alive; the `py` token proves the GIL is held.
pub unsafe fn frame_lineno(_py: Python<'_>, frame: &RawFrame) -> u32 {
    // SAFETY: the caller guarantees the code object is alive; the GIL is
    // held (`py`).
    let lineno = unsafe { lg_frame_lineno(frame) };
    u32::try_from(lineno).unwrap_or(0)
}

/// The filename of `frame` as a `String` (allocates: not for the hook path),
/// or `None` when it is not a `str`, where tracemalloc says `"<unknown>"`.
///
/// # Safety
///
/// `frame` must come from [`capture`] and its filename object must still be
/// alive; the `py` token proves the GIL is held.
pub unsafe fn frame_filename(_py: Python<'_>, frame: &RawFrame) -> Option<String> {
    let mut inline = [0u8; 256];
    // SAFETY: the caller guarantees the filename is alive; `inline` is
    // writable for its length.
    let len = unsafe { lg_frame_filename(frame, inline.as_mut_ptr().cast(), inline.len()) };
    let len = usize::try_from(len).ok()?;
    if len <= inline.len() {
        return Some(String::from_utf8_lossy(&inline[..len]).into_owned());
    }
    let mut heap = vec![0u8; len];
    // SAFETY: as above, `heap` is writable for `len` bytes; holding the GIL,
    // the str cannot change between the two calls.
    let again = unsafe { lg_frame_filename(frame, heap.as_mut_ptr().cast(), heap.len()) };
    debug_assert_eq!(usize::try_from(again).ok(), Some(len));
    Some(String::from_utf8_lossy(&heap).into_owned())
}

/// The address of the memory block holding `obj` (see [`lg_object_block`]):
/// the key under which an allocator hook saw it.
pub fn object_block(obj: &Bound<'_, PyAny>) -> usize {
    // SAFETY: `obj` is a live object for as long as the `Bound` exists.
    unsafe { lg_object_block(obj.as_ptr().cast()) as usize }
}

/// Why [`exact_objects`] changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactError {
    /// The switch is on in another interpreter.
    OtherInterpreter,
    /// Other code replaced the list or dict deallocator.
    DeallocReplaced,
}

/// `Some(true)` when exact objects are on in the current interpreter,
/// `Some(false)` when they are off and can be switched on, `None` when they
/// cannot (CPython 3.9, or on in another interpreter).
pub fn exact_objects_state(_py: Python<'_>) -> Option<bool> {
    // SAFETY: the GIL is held (`py`) by this thread, which runs Python code,
    // not a hook or a signal handler.
    match unsafe { lg_exact_objects_state() } {
        1 => Some(true),
        0 => Some(false),
        _ => None,
    }
}

/// Turns exact objects on or off for the current interpreter (see
/// [`lg_exact_objects`]); returns whether it was on before.
pub fn exact_objects(_py: Python<'_>, enable: bool) -> Result<bool, ExactError> {
    // SAFETY: the GIL is held (`py`) by this thread, which runs Python code,
    // not a hook or a signal handler.
    match unsafe { lg_exact_objects(c_int::from(enable)) } {
        0 => Ok(false),
        1 => Ok(true),
        -1 => Err(ExactError::OtherInterpreter),
        _ => Err(ExactError::DeallocReplaced),
    }
}
