/*
 * cpython.c -- reads the calling thread's Python stack straight from the
 * interpreter's own frame structures, for the allocator hooks; and, at the
 * end, the switch that keeps objects out of the interpreter's free lists.
 *
 * Compiled by build.rs against the *target* interpreter's own headers, with
 * Py_BUILD_CORE, so every layout below comes from that interpreter's
 * internal headers and macros (internal/pycore_frame.h, pycore_pystate.h,
 * pycore_object.h ...). A layout change in a new CPython makes this file
 * fail to compile instead of silently misreading memory; an unknown version
 * is rejected outright.
 *
 * Every frame function here runs inside PyMem/PyObject allocator hooks, so
 * none of them may allocate, call a Python API that can allocate or run
 * Python code, create frame objects or change a reference count. Each use of
 * a CPython function or macro says why it is allowed.
 *
 * The last section reads objects instead of frames: which memory blocks an
 * object owns, for mapping traced blocks back to live objects. Those
 * functions run with the GIL held, called from Python, and follow the same
 * rules (except lg_objects_init, which runs once at import).
 * Every function here up to the "exact objects" section runs inside
 * PyMem/PyObject allocator hooks, so none of them may allocate, call a
 * Python API that can allocate or run Python code, create frame objects or
 * change a reference count. Each use of a CPython function or macro says why
 * it is allowed. The "exact objects" section runs from Python (and from the
 * list and dict deallocators) with the GIL held, and has its own rules.
 *
 * What "the stack" means is fixed by stdlib tracemalloc (Modules/_tracemalloc.c
 * before 3.12, Python/tracemalloc.c since): the same frames are skipped, the
 * same instruction offset is fed to the same line lookup, the total is
 * counted the same way, so tracebacks match tracemalloc's line for line.
 *
 * The Rust side is src/raw/cpython.rs; `lg_raw_frame` must stay identical to
 * its `RawFrame`.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x030E0000
#  error "leakguard's frame walker knows CPython 3.9 to 3.13 only: add and verify the layouts for this version"
#endif
#ifdef Py_LIMITED_API
#  error "leakguard's frame walker reads interpreter internals; it cannot be built for the stable ABI"
#endif
#ifdef Py_GIL_DISABLED
#  error "leakguard's frame walker does not support free-threaded CPython builds yet"
#endif
#ifndef Py_BUILD_CORE
#  error "build.rs must define Py_BUILD_CORE (internal headers)"
#endif

#if PY_VERSION_HEX < 0x030B0000
   /* 3.9/3.10: PyFrameObject is the interpreter's frame (cpython/frameobject.h). */
#  include <frameobject.h>
#else
   /* 3.11+: _PyInterpreterFrame, _PyFrame_IsIncomplete, _PyInterpreterFrame_LASTI. */
#  include "internal/pycore_frame.h"
#endif
/* PyGC_Head, _PyObject_GC_IS_TRACKED (pycore_gc.h, included by
 * pycore_object.h); _PyObject_IS_GC; 3.11+: _PyType_PreHeaderSize and the
 * managed-dict accessors. */
#include "internal/pycore_object.h"
#if PY_VERSION_HEX >= 0x030D0000
#  include "internal/pycore_dict.h"  /* struct _dictvalues (embedded flag) */
#endif
#include "internal/pycore_pystate.h" /* _PyThreadState_GET */
#include "internal/pycore_runtime.h" /* _PyRuntime, _PyRuntimeState_GetFinalizing */
#if PY_VERSION_HEX >= 0x030A0000
#  include "internal/pycore_interp.h" /* the free lists in PyInterpreterState */
#endif
#if PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
#  include "internal/pycore_dict.h" /* DICT_VERSION_MASK (dict watchers) */
#endif

/* Keep identical to `RawFrame` in cpython.rs. */
typedef struct {
    uintptr_t code;      /* PyCodeObject * */
    uintptr_t filename;  /* code->co_filename, a str */
    uintptr_t linetable; /* what the line lookup reads: co_lnotab (3.9), co_linetable */
    int firstlineno;     /* code->co_firstlineno */
    int instr;           /* see lg_frame_lineno */
} lg_raw_frame;

_Static_assert(sizeof(lg_raw_frame) == 3 * sizeof(uintptr_t) + 2 * sizeof(int),
               "lg_raw_frame must have no padding: RawFrame in cpython.rs mirrors it");

/* tracemalloc's limit: traceback_t.total_nframe is a uint16_t and saturates. */
#define LG_MAX_TOTAL UINT16_MAX

#if PY_VERSION_HEX < 0x030B0000
/*
 * 3.9/3.10: tracemalloc takes the line from PyFrame_GetLineNumber(), which
 * returns the frame's f_lineno instead of looking the instruction up when a
 * tracer owns the frame (3.9: f_trace is set; 3.10: f_lineno != 0, i.e.
 * inside a trace callback). That value is not derivable from the code object
 * later, so it is stored in `instr` as LG_INSTR_LINE_BASE - lineno. Real
 * offsets are >= -2 (f_lasti == -1 before the first instruction), so the
 * encoding cannot collide with them.
 */
#  define LG_INSTR_LINE_BASE (-3)

static int
encode_line(int lineno)
{
    if (lineno < 0) {
        lineno = 0; /* tracemalloc stores negative lines as 0 */
    }
    if (lineno > INT_MAX + LG_INSTR_LINE_BASE) {
        lineno = INT_MAX + LG_INSTR_LINE_BASE; /* keep the subtraction defined */
    }
    return LG_INSTR_LINE_BASE - lineno;
}
#endif

/*
 * The depth below the kept frames, cached per thread (3.11+).
 *
 * tracemalloc's total_nframe needs the whole stack counted on every
 * allocation: 500 pointer loads per allocation in a recursion 500 deep. But
 * a frame below the kept ones is suspended in a call, and while that very
 * activation stays suspended, nothing below it can change. So each thread
 * keeps a small direct-mapped table: (frame address, witness) -> (its code,
 * its instruction position, its caller's address, counted frames from it to
 * the bottom). A capture walks down from the first frame it does not keep
 * until it meets LG_RUN consecutive frames that all match their entries and
 * whose counts agree with each other (each = the next one + itself), or the
 * bottom of the stack; the count then follows from the first of them. Frames
 * walked on the way are entered in the table (the first LG_PATH, then LG_RUN
 * in a row every LG_STRIDE), so a recursion that goes one level deeper or
 * shallower costs a handful of loads, not its depth. Only this thread's live
 * frames are read; table entries are compared, never dereferenced.
 *
 * The hard part is telling the same activation from a new one at a recycled
 * address: data-stack slots and generator objects are reused, and a
 * recursion reuses them in order, with the same code, instruction and caller
 * addresses at another depth. Two facts settle it:
 *
 * - A frame on the thread's data stack is pinned by its address: its offset
 *   in one contiguous stack is the size of the data-stack frames below it.
 * - The witness, a number the walk derives for each frame that a new
 *   activation at another depth would not share. 3.11: a frame entered from
 *   C (every generator frame in 3.11: they are resumed only from C) is
 *   witnessed by the address of its eval loop's _PyCFrame on the C stack,
 *   i.e. by the depth of C calls below it; other frames must be on the data
 *   stack. 3.12+: the frame's key, the interpreter's count of Python frames
 *   (py_recursion_remaining: one unit per frame the eval loop started, none
 *   for a shim frame) minus the units the frames above hold, i.e. the units
 *   below and in the frame itself. The key is not quite the count
 *   (3.13's __init__ trampoline holds a unit and is not counted), so a run
 *   must also hold a frame pinned on the data stack.
 *
 * A new activation would need frames below that fill exactly the same
 * data-stack bytes and the same C stack (3.11) or the same number of frames
 * give or take trampolines (3.12+), under the same four frames at the same
 * instructions. We accept that residual risk for total_nframe, which no
 * grouping or diff uses. 3.11's own counter is no witness: it also counts
 * C-level guards held in calls between frames (str.join over a generator
 * takes one, sum() does not), which would shift the keys below as the stack
 * grows. Before 3.11 every frame is a heap object recycled through free
 * lists and the counter counts guards too, so 3.9 and 3.10 always walk.
 */
#if PY_VERSION_HEX >= 0x030B0000
#  define LG_DEPTH_SLOTS 1024 /* power of two */
#  define LG_DEPTH_BITS 10
#  define LG_RUN 4
#  define LG_PATH 64
#  define LG_STRIDE 32
#  define LG_PATH_MAX 192

typedef _PyInterpreterFrame lg_frame_t;
#  define LG_NEXT(f) ((f)->previous)
#  if PY_VERSION_HEX < 0x030D0000
#    define LG_CODE(f) ((const void *)(f)->f_code)
#    define LG_POS(f) ((intptr_t)(f)->prev_instr)
#  else
#    define LG_CODE(f) ((const void *)(f)->f_executable)
#    define LG_POS(f) ((intptr_t)(f)->instr_ptr)
#  endif

#  if PY_VERSION_HEX >= 0x030C0000
/* Whether tracemalloc counts the frame, as it walks with
 * _PyFrame_GetFirstComplete at every level: not a shim frame (owned by the
 * C stack), not incomplete (3.13's trampoline that runs after an __init__,
 * pushed by CALL_ALLOC_AND_ENTER_INIT, looks incomplete below the top too),
 * and on 3.13 a code object (see lg_capture_stack). */
static inline uint32_t
lg_counted(_PyInterpreterFrame *f)
{
    if (f->owner == FRAME_OWNED_BY_CSTACK) {
        return 0;
    }
#    if PY_VERSION_HEX >= 0x030D0000
    if (!PyCode_Check(f->f_executable)) {
        return 0;
    }
#    endif
    return _PyFrame_IsIncomplete(f) ? 0 : 1;
}
#    define LG_COUNTED(f) lg_counted(f)
#  else
#    define LG_COUNTED(f) 1u
#  endif

typedef struct lg_depths lg_depths;

/* Whether `f` lives in one of the thread's data-stack chunks (rather than in
 * a generator object on the heap, or on the C stack). */
static inline int on_data_stack(const lg_depths *d, const lg_frame_t *f);

/*
 * The walk's witness state, stepped past each frame in walk order: 3.11 the
 * _PyCFrame the next frame belongs to, 3.12+ the next frame's key.
 */
typedef uintptr_t lg_witness;

#  if PY_VERSION_HEX < 0x030C0000
/* Frames from one entry frame up to the next belong to one run of the eval
 * loop and its _PyCFrame (tstate->cframe is the innermost's); below an
 * entry frame the previous one's begin. A NULL state (more entry frames
 * than C frames: never seen) makes every later entry frame unable to
 * vouch. */
static inline lg_witness
witness_step(lg_witness w, const lg_frame_t *f)
{
    if (f->is_entry && w != 0) {
        return (lg_witness)((const _PyCFrame *)w)->previous;
    }
    return w;
}

/* The frame's witness, 0 when it cannot vouch for a count. */
static inline lg_witness
witness_of(const lg_depths *d, lg_witness w, const lg_frame_t *f)
{
    if (f->is_entry) {
        return w;
    }
    return on_data_stack(d, f) ? 1 : 0;
}

/* The witness already holds the pin rule. */
#    define LG_PINNED(d, f) 1

static inline lg_witness
first_witness(PyThreadState *tstate)
{
    return (lg_witness)tstate->cframe;
}
#  else
/* The units of py_recursion_remaining a frame holds: one per frame, none
 * for a shim frame (3.13's __init__ trampoline holds one:
 * CALL_ALLOC_AND_ENTER_INIT takes it when it pushes the frame). */
#    define LG_UNITS(f) ((f)->owner != FRAME_OWNED_BY_CSTACK ? 1u : 0u)

static inline lg_witness
witness_step(lg_witness w, const lg_frame_t *f)
{
    return (uint32_t)(w - LG_UNITS(f));
}

/* Every frame may vouch under its key. The high bit keeps key 0 apart from
 * "cannot vouch". */
static inline lg_witness
witness_of(const lg_depths *d, lg_witness w, const lg_frame_t *f)
{
    (void)d;
    (void)f;
    return (uint32_t)w | ((lg_witness)1 << 63);
}

#    define LG_PINNED(d, f) on_data_stack(d, f)

/* The key of the frame on top: the thread's py_recursion_limit minus
 * py_recursion_remaining (sys.setrecursionlimit moves both together, so
 * the difference is the depth). Two int fields of our own thread state. */
static inline lg_witness
first_witness(PyThreadState *tstate)
{
    return (uint32_t)tstate->py_recursion_limit - (uint32_t)tstate->py_recursion_remaining;
}
#  endif

/*
 * The frame's first local (its first argument, a generator expression's
 * iterator ...), or NULL when it has none. A suspended frame's locals cannot
 * change, and a new activation at the same address seldom gets the same
 * object in its first local: one more thing a recycled frame must match.
 * The code object is the frame's own, alive while the frame is.
 */
static inline const void *
lg_local0(const lg_frame_t *f)
{
#  if PY_VERSION_HEX < 0x030D0000
    const PyCodeObject *code = f->f_code;
#  else
    if (!PyCode_Check(f->f_executable)) {
        return NULL;
    }
    const PyCodeObject *code = (const PyCodeObject *)f->f_executable;
#  endif
    return code->co_nlocalsplus > 0 ? (const void *)f->localsplus[0] : NULL;
}

typedef struct {
    const void *frame;
    const void *code;
    const void *back;
    const void *local0;
    intptr_t pos;
    lg_witness witness;
    uint32_t count; /* counted frames from `frame` (included) to the bottom */
} lg_depth_entry;

/*
 * The calling thread's depth state, all of it in one thread-local: in a
 * shared library each thread-local mentioned costs a call to
 * __tls_get_addr, so a capture fetches this one address once and passes it
 * down.
 */
struct lg_depths {
    /* The thread's data-stack chunks, newest first (set per capture). */
    const _PyStackChunk *chunks;
    /* The frames met by the previous capture (see last_matches). */
    int last_len;
    lg_depth_entry last[LG_RUN];
    /* The direct-mapped table of frames below the kept ones. */
    lg_depth_entry table[LG_DEPTH_SLOTS];
};

static __thread lg_depths lg_thread_depths;

static inline int
on_data_stack(const lg_depths *d, const lg_frame_t *f)
{
    for (const _PyStackChunk *c = d->chunks; c != NULL; c = c->previous) {
        if ((const char *)f >= (const char *)c && (const char *)f < (const char *)c + c->size) {
            return 1;
        }
    }
    return 0;
}

/* The table slot of frame `f` under witness `w`. Hashed on the witness
 * too, so that one address under several witnesses keeps an entry for
 * each. */
static inline lg_depth_entry *
depth_slot(lg_depth_entry *table, const lg_frame_t *f, lg_witness w)
{
    uint64_t h = ((uint64_t)(uintptr_t)f >> 4) ^ ((uint64_t)w * UINT64_C(0xD6E8FEB86659FD93));
    h *= UINT64_C(0x9E3779B97F4A7C15);
    return &table[h >> (64 - LG_DEPTH_BITS)];
}

static inline int
depth_matches(const lg_depth_entry *e, const lg_frame_t *f, lg_witness w)
{
    return w != 0 && e->frame == f && e->witness == w && e->code == LG_CODE(f)
           && e->pos == LG_POS(f) && e->back == (const void *)LG_NEXT(f)
           && e->local0 == lg_local0(f);
}

static inline void
depth_enter(lg_depth_entry *e, lg_frame_t *f, lg_witness w, uint32_t count)
{
    e->frame = f;
    e->code = LG_CODE(f);
    e->back = LG_NEXT(f);
    e->local0 = lg_local0(f);
    e->pos = LG_POS(f);
    e->witness = w;
    e->count = count;
}

/*
 * In front of the table, the frames met by the previous capture: most
 * consecutive allocations come from under the same frames, and checking
 * LG_RUN remembered frames in order costs no hashing. Same validation rule:
 * LG_RUN consecutive frames (or down to the bottom) that are the very frames,
 * codes, positions, callers and witnesses remembered, one of them pinned.
 */
static inline int
last_matches(const lg_depths *d, lg_frame_t *k, lg_witness state)
{
    const lg_depth_entry *last = d->last;
    if (d->last_len == 0 || last[0].frame != k) {
        return 0;
    }
    int pinned = 0;
    lg_frame_t *f = k;
    for (int i = 0; i < d->last_len; i++, f = LG_NEXT(f)) {
        if (f == NULL || !depth_matches(&last[i], f, witness_of(d, state, f))) {
            return 0;
        }
        pinned = pinned || LG_PINNED(d, f);
        state = witness_step(state, f);
    }
    return pinned;
}

static uint32_t count_from_table(lg_depths *d, lg_frame_t *k, lg_witness state);

/* Counted frames from `k` (included) to the bottom of the stack; `state` is
 * the witness state at k. `d` is the calling thread's lg_thread_depths. */
static uint32_t
count_from(lg_depths *d, lg_frame_t *k, lg_witness state)
{
    if (k == NULL) {
        return 0;
    }
    if (last_matches(d, k, state)) {
        return d->last[0].count;
    }
    return count_from_table(d, k, state);
}

/* The walk behind count_from(); also remembers k and the frames under it in
 * `d->last` (the previous capture's frames). */
static uint32_t
count_from_table(lg_depths *d, lg_frame_t *k, lg_witness state)
{
    lg_frame_t *path[LG_PATH_MAX];
    uint32_t path_above[LG_PATH_MAX];
    lg_witness path_witness[LG_PATH_MAX];
    int npath = 0;
    uint32_t above = 0; /* counted frames from k down to f, f excluded */
    uint32_t total = 0;
    int run = 0;
    int pinned = 0;
    uint32_t run_above = 0;
    uint32_t run_count = 0;
    const lg_depth_entry *prev_entry = NULL;
    uint32_t prev_counted = 0;
    int found = 0;
    lg_depth_entry *table = d->table;

    for (lg_frame_t *f = k; f != NULL; f = LG_NEXT(f)) {
        lg_witness w = witness_of(d, state, f);
        lg_depth_entry *e = depth_slot(table, f, w);
        uint32_t counted = LG_COUNTED(f);
        if (npath < LG_PATH_MAX && (above < LG_PATH || (above - LG_PATH) % LG_STRIDE < LG_RUN)) {
            path[npath] = f;
            path_above[npath] = above;
            path_witness[npath] = w;
            npath++;
        }
        if (depth_matches(e, f, w)
            && (run == 0 || prev_entry->count == prev_counted + e->count)) {
            if (run == 0) {
                run_above = above;
                run_count = e->count;
                pinned = 0;
            }
            run++;
            pinned = pinned || LG_PINNED(d, f);
            if ((run >= LG_RUN || LG_NEXT(f) == NULL) && pinned) {
                total = run_above + run_count;
                found = 1;
                break;
            }
        }
        else {
            run = 0;
        }
        prev_entry = e;
        prev_counted = counted;
        above += counted;
        state = witness_step(state, f);
    }
    if (!found) {
        total = above;
        run_above = above;
    }
    /* (Re-)enter the frames recorded above the run (all of them when the
     * walk reached the bottom without one). A frame that cannot vouch is
     * entered with witness 0, which nothing matches. */
    for (int i = 0; i < npath; i++) {
        if (path_above[i] >= run_above || path_above[i] >= total) {
            break;
        }
        lg_frame_t *f = path[i];
        lg_witness w = path_witness[i];
        depth_enter(depth_slot(table, f, w), f, w, total - path_above[i]);
    }
    /* The walk went through at least LG_RUN frames (or the whole stack),
     * recorded in order from k. */
    int n = npath < LG_RUN ? npath : LG_RUN;
    for (int i = 0; i < n; i++) {
        depth_enter(&d->last[i], path[i], path_witness[i], total - path_above[i]);
    }
    d->last_len = n;
    return total;
}
#endif /* 3.11+ */

static inline uint32_t
saturating_add(uint32_t a, uint32_t b)
{
    uint32_t s = a + b;
    return (s < a || s > LG_MAX_TOTAL) ? LG_MAX_TOTAL : s;
}

/*
 * The calling thread's state if it is attached to the interpreter and its
 * frames may be read, else NULL. Reads thread-state pointers and compares
 * them; never dereferences a thread state it has not proven to be its own.
 */
static PyThreadState *
attached_tstate(void)
{
#if PY_VERSION_HEX < 0x030C0000
    /*
     * <= 3.11: _PyThreadState_GET() is an atomic load of
     * _PyRuntime.gilstate.tstate_current, the state of whichever thread
     * holds the GIL, not necessarily ours (RAW-domain allocations come from
     * threads without the GIL). The caller is attached only if that is its
     * own state: PyGILState_GetThisThreadState() is a pthread_getspecific()
     * of the autoTSS key (NULL once the GILState machinery is torn down), no
     * allocation. Only pointers are compared, so a holder state that another
     * thread is freeing is never touched.
     */
    PyThreadState *tstate = _PyThreadState_GET();
    if (tstate == NULL || tstate != PyGILState_GetThisThreadState()) {
        return NULL;
    }
#else
    /*
     * 3.12+: the current thread state is a thread-local that is NULL while
     * the thread is detached (released the GIL, or never attached).
     * Py_BUILD_CORE_MODULE makes _PyThreadState_GET() call the exported
     * _PyThreadState_GetCurrent(): the thread-local itself is not exported
     * to extension modules. No allocation.
     */
    PyThreadState *tstate = _PyThreadState_GET();
    if (tstate == NULL) {
        return NULL;
    }
#endif
    /*
     * Once Py_FinalizeEx has set _finalizing, only the finalizing thread
     * may run Python code; other threads' states are being deleted
     * (_PyThreadState_DeleteExcept) and a daemon thread must not read
     * its own. The finalizing thread keeps a valid state and frame chain
     * until PyInterpreterState_Delete, which first detaches it (3.12+) or
     * clears its autoTSS entry (<= 3.11), so the checks above return NULL
     * from then on.
     */
    PyThreadState *finalizing = _PyRuntimeState_GetFinalizing(&_PyRuntime);
    if (finalizing != NULL && finalizing != tstate) {
        return NULL;
    }
    return tstate;
}

static inline void
fill_frame(lg_raw_frame *out, PyCodeObject *code, int instr)
{
    out->code = (uintptr_t)code;
    out->filename = (uintptr_t)code->co_filename;
#if PY_VERSION_HEX < 0x030A0000
    out->linetable = (uintptr_t)code->co_lnotab; /* read by 3.9's PyCode_Addr2Line */
#else
    out->linetable = (uintptr_t)code->co_linetable;
#endif
    out->firstlineno = code->co_firstlineno;
    out->instr = instr;
}

/*
 * Walks the frames of the calling thread, most recent first, in the order
 * and with the skips of tracemalloc's traceback_get_frames(). `total` NULL:
 * stop after `max` frames. Only reads: frames are owned by this thread,
 * which is running this code, so none can be pushed, popped or freed during
 * the walk.
 */
int
lg_capture_stack(lg_raw_frame *out, int max, uint32_t *total)
{
    int n = 0;
    uint32_t count = 0;

    if (max < 0 || (max > 0 && out == NULL)) {
        max = 0;
    }
    if (total != NULL) {
        *total = 0;
    }
    PyThreadState *tstate = attached_tstate();
    if (tstate == NULL) {
        return 0;
    }

#if PY_VERSION_HEX < 0x030B0000
    /*
     * 3.9/3.10: tstate->frame is the executing PyFrameObject, f_back the
     * caller. tracemalloc walks every frame (PyThreadState_GetFrame /
     * PyFrame_GetBack, whose reference counting we skip: the chain is held
     * alive by the running thread). Line: PyFrame_GetLineNumber().
     */
    for (PyFrameObject *f = tstate->frame; f != NULL; f = f->f_back) {
        if (n < max) {
            int instr;
#  if PY_VERSION_HEX < 0x030A0000
            /* 3.9: f_lasti is a byte offset, used as is by PyCode_Addr2Line;
             * with a tracer (f_trace set) f_lineno wins. */
            instr = f->f_trace != NULL ? encode_line(f->f_lineno) : f->f_lasti;
#  else
            /* 3.10: f_lasti counts code units; PyFrame_GetLineNumber passes
             * f_lasti * sizeof(_Py_CODEUNIT); f_lineno != 0 wins (set
             * only while a trace function runs for this frame). */
            instr = f->f_lineno != 0 ? encode_line(f->f_lineno)
                                     : f->f_lasti * (int)sizeof(_Py_CODEUNIT);
#  endif
            fill_frame(&out[n++], f->f_code, instr);
        }
        else {
            if (total != NULL) {
                /* 3.9/3.10 always walk: see "The depth below the kept
                 * frames" above. */
                for (PyFrameObject *g = f; g != NULL && count < LG_MAX_TOTAL; g = g->f_back) {
                    count++;
                }
            }
            break;
        }
        if (count < LG_MAX_TOTAL) {
            count++;
        }
    }
#else
#  if PY_VERSION_HEX < 0x030D0000
    /* 3.11/3.12: the chain hangs off the C frame of the running eval loop. */
    _PyInterpreterFrame *frame =
        tstate->cframe != NULL ? tstate->cframe->current_frame : NULL;
#  else
    /* 3.13: the chain hangs off the thread state. */
    _PyInterpreterFrame *frame = tstate->current_frame;
#  endif
    /* The witness state of the frame met next: see count_from(). */
    lg_witness state = first_witness(tstate);
    for (; frame != NULL; frame = frame->previous) {
#  if PY_VERSION_HEX >= 0x030C0000
        /*
         * 3.12+: entry frames pushed by _PyEval_EvalFrameDefault for each C
         * -> Python call are owned by the C stack and hold a shim code
         * object. tracemalloc skips them as incomplete (3.13 tests the
         * owner in _PyFrame_IsIncomplete; in 3.12 the trampoline code is
         * built to look incomplete); test the owner here so it holds on
         * both without depending on that trick.
         */
        if (frame->owner == FRAME_OWNED_BY_CSTACK) {
            continue;
        }
#  endif
        if (n >= max) {
            /*
             * Past the frames we keep only the count matters, and it is on
             * the path of every allocation: see count_from(). Frames below
             * the first kept one are suspended in a call, hence complete on
             * 3.11 (one exception: a frame whose prologue allocation ran a
             * collection that ran a finalizer, which is counted though
             * tracemalloc would skip it); 3.12+ test each (lg_counted).
             */
            if (total != NULL) {
                lg_depths *d = &lg_thread_depths;
                d->chunks = tstate->datastack_chunk;
                count = saturating_add(count, count_from(d, frame, state));
            }
            break;
        }
        state = witness_step(state, frame);
#  if PY_VERSION_HEX >= 0x030D0000
        /* 3.13: f_executable is a PyObject *; tracemalloc asserts it is code
         * and _PyFrame_GetCode() casts it. Never cast anything else. */
        if (!PyCode_Check(frame->f_executable)) {
            continue;
        }
#  endif
        /*
         * Frames still running their prologue (before RESUME: COPY_FREE_VARS,
         * MAKE_CELL, which allocate) are not frames yet for the interpreter:
         * tracemalloc (gh-96612, in 3.11.0; _PyFrame_GetFirstComplete since
         * 3.12) and f_back skip them.
         */
        if (_PyFrame_IsIncomplete(frame)) {
            continue;
        }
        /*
         * tracemalloc: _PyInterpreterFrame_GetLine (3.11) /
         * PyUnstable_InterpreterFrame_GetLine (3.12, 3.13), i.e.
         * PyCode_Addr2Line(code, _PyInterpreterFrame_LASTI(frame) *
         * sizeof(_Py_CODEUNIT)). LASTI is prev_instr (3.11, 3.12) or
         * instr_ptr (3.13) minus the start of the code's bytecode.
         */
        int instr = _PyInterpreterFrame_LASTI(frame) * (int)sizeof(_Py_CODEUNIT);
#  if PY_VERSION_HEX < 0x030D0000
        fill_frame(&out[n++], frame->f_code, instr);
#  else
        fill_frame(&out[n++], _PyFrame_GetCode(frame), instr);
#  endif
        count++; /* n <= max <= LG_MAX_TOTAL: cannot saturate here */
    }
#endif

    if (total != NULL) {
        *total = count;
    }
    return n;
}

/*
 * The line of a captured frame, as tracemalloc computes it: negative
 * (no line) becomes 0.
 *
 * PyCode_Addr2Line only walks the code's line table on every version
 * (3.9: co_lnotab via PyBytes_Size/PyBytes_AsString, which cannot fail on
 * the bytes object it always is; 3.10-3.13: _PyCode_CheckLineNumber over
 * co_linetable): no allocation, no Python code. Checked by disassembly of
 * 3.9.18, 3.10.13, 3.11.7, 3.12.1 and 3.13.0.
 */
int
lg_frame_lineno(const lg_raw_frame *frame)
{
#if PY_VERSION_HEX < 0x030B0000
    if (frame->instr <= LG_INSTR_LINE_BASE) {
        return LG_INSTR_LINE_BASE - frame->instr;
    }
#endif
    int lineno = PyCode_Addr2Line((PyCodeObject *)frame->code, frame->instr);
    return lineno < 0 ? 0 : lineno;
}

static size_t
utf8_width(Py_UCS4 ch)
{
    return ch < 0x80 ? 1 : ch < 0x800 ? 2 : ch < 0x10000 ? 3 : 4;
}

static void
utf8_put(char *dst, Py_UCS4 ch)
{
    unsigned char *p = (unsigned char *)dst;
    if (ch < 0x80) {
        p[0] = (unsigned char)ch;
    }
    else if (ch < 0x800) {
        p[0] = (unsigned char)(0xC0 | (ch >> 6));
        p[1] = (unsigned char)(0x80 | (ch & 0x3F));
    }
    else if (ch < 0x10000) {
        p[0] = (unsigned char)(0xE0 | (ch >> 12));
        p[1] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
        p[2] = (unsigned char)(0x80 | (ch & 0x3F));
    }
    else {
        p[0] = (unsigned char)(0xF0 | (ch >> 18));
        p[1] = (unsigned char)(0x80 | ((ch >> 12) & 0x3F));
        p[2] = (unsigned char)(0x80 | ((ch >> 6) & 0x3F));
        p[3] = (unsigned char)(0x80 | (ch & 0x3F));
    }
}

/*
 * The frame's filename as UTF-8, read from the str's own storage
 * (PyUnicode_AsUTF8 would allocate and cache a UTF-8 copy). Lone
 * surrogates (e.g. undecodable bytes of a path, kept by surrogateescape)
 * have no UTF-8 form: each becomes U+FFFD, so the output is always valid
 * UTF-8. Characters are never split: when the string does not fit, `buf`
 * holds a prefix of whole characters and the full length is returned.
 *
 * Only macros that read the object: PyUnicode_Check (type flags),
 * PyUnicode_IS_READY/KIND/DATA/GET_LENGTH/READ (the PEP 393 header).
 */
long
lg_frame_filename(const lg_raw_frame *frame, char *buf, size_t cap)
{
    PyObject *str = (PyObject *)frame->filename;
    if (str == NULL || !PyUnicode_Check(str)) {
        return -1;
    }
#if PY_VERSION_HEX < 0x030C0000
    /* A legacy string not made ready has no PEP 393 data; making it ready
     * allocates. tracemalloc reports "<unknown>" then, so does the caller. */
    if (!PyUnicode_IS_READY(str)) {
        return -1;
    }
#endif
    Py_ssize_t length = PyUnicode_GET_LENGTH(str);
    const void *data = PyUnicode_DATA(str);
    if (buf == NULL) {
        cap = 0;
    }

    if (PyUnicode_IS_ASCII(str)) {
        size_t len = (size_t)length;
        if (cap > 0) {
            memcpy(buf, data, len <= cap ? len : cap);
        }
        return (long)len;
    }

    int kind = PyUnicode_KIND(str);
    size_t len = 0;
    int fits = 1;
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 ch = PyUnicode_READ(kind, data, i);
        if (ch >= 0xD800 && ch <= 0xDFFF) {
            ch = 0xFFFD;
        }
        size_t width = utf8_width(ch);
        if (fits && len + width <= cap) {
            utf8_put(buf + len, ch);
        }
        else {
            fits = 0;
        }
        len += width;
    }
    return (long)len;
}

/*
 * The address of the memory block holding `obj`, computed exactly as
 * tracemalloc's get_object_traceback() does, so it is the pointer the
 * allocator returned (and a hook saw):
 *   3.9/3.10: objects of GC types are preceded by their PyGC_Head.
 *   3.11+:    _PyType_PreHeaderSize(): the GC header plus, for types with
 *             a managed dict (3.11) / managed dict or weakref list (3.12+,
 *             Py_TPFLAGS_PREHEADER), two pointers before the object.
 * Like tracemalloc it looks at the type only, not at tp_is_gc: for a static
 * type object (not heap-allocated) the result is not a traced block.
 * Reads the type's flags; no allocation, no refcount change.
 */
void *
lg_object_block(void *obj)
{
    PyTypeObject *type = Py_TYPE((PyObject *)obj);
#if PY_VERSION_HEX >= 0x030B0000
    return (char *)obj - _PyType_PreHeaderSize(type);
#else
    return PyType_IS_GC(type) ? (char *)obj - sizeof(PyGC_Head) : obj;
#endif
}

/* ------------------------------------------------------------------------
 * Objects and the blocks they own.
 *
 * A traced block is an address some allocator returned. An object "owns" its
 * own block (lg_object_block) and, for a few builtin containers, the
 * separately allocated buffers only it points to: these are what a leak
 * report can name, and what lets a caller get from a leaking block back to
 * a live object. Every function below runs with the GIL held, reads the
 * object without allocating, calling Python code or touching a reference
 * count, and uses only layouts and inline helpers of the target
 * interpreter's own headers.
 */

/* The keys object every empty dict shares (a static in dictobject.c, not a
 * block), and on 3.9/3.10 the shared values array of empty dicts: a dict
 * cleared or created empty points at them. Not exported by any header, so
 * read once from a fresh empty dict by lg_objects_init. NULL until then
 * (the statics would then be reported too, and match no traced block). */
static const void *lg_empty_keys;
#if PY_VERSION_HEX < 0x030B0000
static const void *lg_empty_values;
#endif

/*
 * Records the shared empty-dict tables. Called once, with the GIL held,
 * when the module is imported; allocates (one empty dict). Returns 0, or -1
 * with an exception set.
 *
 * PyDict_New: 3.9/3.10 `new_dict(Py_EMPTY_KEYS, empty_values)`; 3.11-3.13
 * `new_dict(interp, Py_EMPTY_KEYS, NULL, 0, 0)`.
 */
int
lg_objects_init(void)
{
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return -1;
    }
    lg_empty_keys = ((PyDictObject *)d)->ma_keys;
#if PY_VERSION_HEX < 0x030B0000
    lg_empty_values = ((PyDictObject *)d)->ma_values;
#endif
    Py_DECREF(d);
    return 0;
}

/*
 * The block holding a split dict's values array (PyDictObject.ma_values, or
 * an instance's values on 3.11/3.12), or NULL when it is not a block of its
 * own. Objects/dictobject.c `new_values()`:
 *   3.9/3.10: PyMem_NEW(PyObject *, size): the block is the array; empty
 *             dicts share the static `empty_values`.
 *   3.11/3.12: PyMem_Malloc(prefix + size * sizeof(PyObject *)), returning
 *             mem + prefix, with the prefix size stored in its last byte
 *             (values[-1]; pycore_dict.h: "[-1] = prefix size"; free_values
 *             frees values - values[-1]).
 *   3.13:     PyMem_Malloc(n), returned as is, `embedded` = 0; values
 *             embedded in an object (inline values, `embedded` = 1) live
 *             inside that object's own block.
 */
static inline const void *
dict_values_block(const void *values)
{
    if (values == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX < 0x030B0000
    return values == lg_empty_values ? NULL : values;
#elif PY_VERSION_HEX < 0x030D0000
    return (const uint8_t *)values - ((const uint8_t *)values)[-1];
#else
    return ((const PyDictValues *)values)->embedded ? NULL : values;
#endif
}

/*
 * Types of extension modules whose buffers lg_owned_blocks knows, recorded
 * (strong references) by lg_objects_know_buffer_types once their module is
 * loaded; NULL before. Their layouts are private to their modules and the
 * same in 3.9 to 3.13 for the one field read:
 *   array.array  (Modules/arraymodule.c): PyObject_VAR_HEAD, then
 *                char *ob_item, the item buffer (PyMem_Malloc/Realloc);
 *   _io.BytesIO  (Modules/_io/bytesio.c): PyObject_HEAD, then
 *                PyObject *buf, a bytes object resized in place, which the
 *                BytesIO's traverse does not visit.
 */
static PyTypeObject *lg_array_type;
static PyTypeObject *lg_bytesio_type;
static PyTypeObject *lg_stringio_type;

typedef struct {
    PyObject_VAR_HEAD
    char *ob_item;
} lg_array_head;

typedef struct {
    PyObject_HEAD
    PyObject *buf;
} lg_bytesio_head;

/*
 *   _io.StringIO (Modules/_io/stringio.c): PyObject_HEAD, Py_UCS4 *buf (the
 *                text once "realized", PyMem_Malloc/Realloc), three sizes,
 *                int state, then what holds the text written while it
 *                "accumulates" (state 2, from an empty start until a read
 *                or write elsewhere than at the end): on 3.9-3.11 a _PyAccu
 *                (two lists of str, `large` and `small`, created on demand),
 *                which its traverse does not visit; on 3.12-3.13 an embedded
 *                _PyUnicodeWriter whose first field is the str being built
 *                (visited). Outside that state those are NULL.
 */
#define LG_STRINGIO_ACCUMULATING 2

typedef struct {
    PyObject_HEAD
    Py_UCS4 *buf;
    Py_ssize_t pos;
    Py_ssize_t string_size;
    size_t buf_size;
    int state;
#if PY_VERSION_HEX >= 0x030C0000
    _PyUnicodeWriter writer;
#else
    struct {
        PyObject *large;
        PyObject *small;
    } accu;
#endif
} lg_stringio_head;

/* Records `array_type`, `bytesio_type` and `stringio_type` (each may be
 * NULL: not loaded). GIL held. Only types are accepted; anything else is
 * ignored. */
void
lg_objects_know_buffer_types(PyObject *array_type, PyObject *bytesio_type,
                             PyObject *stringio_type)
{
    PyObject *known[3] = {array_type, bytesio_type, stringio_type};
    PyTypeObject **slots[3] = {&lg_array_type, &lg_bytesio_type, &lg_stringio_type};
    for (int i = 0; i < 3; i++) {
        if (known[i] != NULL && PyType_Check(known[i]) && *slots[i] == NULL) {
            Py_INCREF(known[i]); /* kept for the life of the process */
            *slots[i] = (PyTypeObject *)known[i];
        }
    }
}

#define LG_OWNED_ADD(p)                                                        \
    do {                                                                       \
        const void *lg_p_ = (const void *)(p);                                 \
        if (lg_p_ != NULL && n < cap) {                                        \
            out[n++] = (void *)lg_p_;                                          \
        }                                                                      \
    } while (0)

/*
 * The blocks `op` owns: out[0] is always its own block (lg_object_block),
 * then the buffers it owns:
 *   list (and subclasses):  ob_item, the item array (PyMem_Malloc/Realloc);
 *   dict (and subclasses):  a combined table's keys object (not the shared
 *                           empty keys); a split table's values array (its
 *                           keys are the type's ht_cached_keys, shared by
 *                           every instance dict of the type: not owned);
 *   heap type:              ht_cached_keys, the shared keys of its
 *                           instances' dicts;
 *   set, frozenset (and subclasses): `table` when not `smalltable`;
 *   bytearray (and subclasses): ob_bytes, the start of the allocation
 *                           (ob_start may point further in);
 *   array.array (exact):    ob_item, its item buffer;
 *   _io.BytesIO (exact):    its bytes buffer's block (see above);
 *   _io.StringIO (exact):   its text buffer (`buf`), and on 3.12-3.13, while
 *                           accumulating, the block of the str being built;
 *   3.11/3.12, types with Py_TPFLAGS_MANAGED_DICT: the instance's values
 *                           array while it has one (no dict materialized).
 *                           3.13 keeps them inline, inside the object.
 * Writes at most `cap` pointers; returns how many. Never allocates, runs no
 * Python code, changes no reference count: type flags and exact-type
 * comparisons, PyType_IsSubtype (reads tp_mro) and field reads.
 */
int
lg_owned_blocks(PyObject *op, void **out, int cap)
{
    int n = 0;
    if (op == NULL || out == NULL || cap <= 0) {
        return 0;
    }
    PyTypeObject *type = Py_TYPE(op);
    unsigned long flags = type->tp_flags;

    LG_OWNED_ADD(lg_object_block(op));

    if (flags & Py_TPFLAGS_LIST_SUBCLASS) {
        LG_OWNED_ADD(((PyListObject *)op)->ob_item);
    }
    else if (flags & Py_TPFLAGS_DICT_SUBCLASS) {
        PyDictObject *mp = (PyDictObject *)op;
        if (mp->ma_values == NULL) {
            if ((const void *)mp->ma_keys != lg_empty_keys) {
                LG_OWNED_ADD(mp->ma_keys);
            }
        }
        else {
            LG_OWNED_ADD(dict_values_block(mp->ma_values));
        }
    }
    else if (flags & Py_TPFLAGS_TYPE_SUBCLASS) {
        /* Only heap types are PyHeapTypeObjects. */
        if (((PyTypeObject *)op)->tp_flags & Py_TPFLAGS_HEAPTYPE) {
            LG_OWNED_ADD(((PyHeapTypeObject *)op)->ht_cached_keys);
        }
    }
    else if (flags & (Py_TPFLAGS_LONG_SUBCLASS | Py_TPFLAGS_TUPLE_SUBCLASS
                      | Py_TPFLAGS_BYTES_SUBCLASS | Py_TPFLAGS_UNICODE_SUBCLASS)) {
        /* Their data is inline; no layout can also be a set or bytearray. */
    }
    else if (type == &PySet_Type || type == &PyFrozenSet_Type
             || (type->tp_basicsize >= (Py_ssize_t)sizeof(PySetObject)
                 && PyAnySet_Check(op))) {
        PySetObject *so = (PySetObject *)op;
        if (so->table != so->smalltable) {
            LG_OWNED_ADD(so->table);
        }
    }
    else if (type == &PyByteArray_Type
             || (type->tp_basicsize >= (Py_ssize_t)sizeof(PyByteArrayObject)
                 && PyByteArray_Check(op))) {
        LG_OWNED_ADD(((PyByteArrayObject *)op)->ob_bytes);
    }
    else if (type == lg_array_type) {
        LG_OWNED_ADD(((lg_array_head *)op)->ob_item);
    }
    else if (type == lg_bytesio_type) {
        PyObject *buf = ((lg_bytesio_head *)op)->buf; /* NULL once closed */
        if (buf != NULL) {
            LG_OWNED_ADD(lg_object_block(buf));
        }
    }
    else if (type == lg_stringio_type) {
        lg_stringio_head *sio = (lg_stringio_head *)op;
        LG_OWNED_ADD(sio->buf); /* NULL once closed */
#if PY_VERSION_HEX >= 0x030C0000
        if (sio->state == LG_STRINGIO_ACCUMULATING && sio->writer.buffer != NULL) {
            LG_OWNED_ADD(lg_object_block(sio->writer.buffer));
        }
#endif
    }

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
    /* 3.11: the values pointer sits 4 words before the object (pre-header),
     * NULL once a dict is materialized (the dict then owns the values). */
    if (flags & Py_TPFLAGS_MANAGED_DICT) {
        LG_OWNED_ADD(dict_values_block(*_PyObject_ValuesPointer(op)));
    }
#elif PY_VERSION_HEX >= 0x030C0000 && PY_VERSION_HEX < 0x030D0000
    /* 3.12: one pre-header word holds either the dict or the values
     * (tagged). */
    if (flags & Py_TPFLAGS_MANAGED_DICT) {
        PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(op);
        if (_PyDictOrValues_IsValues(dorv)) {
            LG_OWNED_ADD(dict_values_block(_PyDictOrValues_GetValues(dorv)));
        }
    }
#endif
    return n;
}

#undef LG_OWNED_ADD

/*
 * The objects `op` holds through fields its type's traverse does not visit
 * (so gc.get_referents() and gc.get_referrers() do not see the reference),
 * on 3.9-3.11:
 *   _io.BytesIO (exact): its bytes buffer;
 *   _io.StringIO (exact), while accumulating: its two lists of the str
 *                written so far.
 * From 3.12 their traverse visits both (the StringIO's str being built).
 * Writes at most `cap` borrowed references; returns how many. Same rules as
 * lg_owned_blocks: field reads only.
 */
int
lg_hidden_referents(PyObject *op, PyObject **out, int cap)
{
    int n = 0;
    if (op == NULL || out == NULL || cap <= 0) {
        return 0;
    }
    PyObject *found[2] = {NULL, NULL};
#if PY_VERSION_HEX < 0x030C0000
    PyTypeObject *type = Py_TYPE(op);
    if (type == lg_bytesio_type) {
        found[0] = ((lg_bytesio_head *)op)->buf;
    }
    else if (type == lg_stringio_type) {
        lg_stringio_head *sio = (lg_stringio_head *)op;
        if (sio->state == LG_STRINGIO_ACCUMULATING) {
            found[0] = sio->accu.large;
            found[1] = sio->accu.small;
        }
    }
#endif
    for (int i = 0; i < 2; i++) {
        if (found[i] != NULL && n < cap) {
            out[n++] = found[i];
        }
    }
    return n;
}

/*
 * Calls `visit` on each object `op` references, as gc.get_referents() does,
 * and on the str keys of a dict, which it does not visit: only for objects the collector handles (_PyObject_IS_GC: the type has
 * Py_TPFLAGS_HAVE_GC and, if it has tp_is_gc, that says yes: static type
 * objects say no) whose type has tp_traverse. Returns what tp_traverse
 * returned (non-zero when `visit` stopped it), 0 when nothing was visited.
 * tp_traverse implementations only read the object and call `visit`.
 */
int
lg_traverse(PyObject *op, visitproc visit, void *arg)
{
    if (!_PyObject_IS_GC(op)) {
        return 0;
    }
    traverseproc traverse = Py_TYPE(op)->tp_traverse;
    if (traverse == NULL) {
        return 0;
    }
    int stop = traverse(op, visit, arg);
    if (stop != 0 || !PyDict_CheckExact(op)) {
        return stop;
    }
    /* A dict whose keys are all str does not visit them (a str can be in no
     * cycle): a str kept only as a key would never be met. PyDict_Next reads
     * the table and runs no code; a str key visited twice (a table of mixed
     * keys visits its keys) is harmless to a walk that dedups. */
    Py_ssize_t pos = 0;
    PyObject *key;
    PyObject *value;
    while (PyDict_Next(op, &pos, &key, &value)) {
        if (PyUnicode_CheckExact(key)) {
            stop = visit(key, arg);
            if (stop != 0) {
                return stop;
            }
        }
    }
    return 0;
}

/*
 * Whether `op` is an object the collector handles but does not track now:
 * gc.get_objects() does not list it (the collector untracks tuples and
 * dicts that can hold no cycle; some objects are never tracked). Reads the
 * GC header.
 */
int
lg_gc_untracked(PyObject *op)
{
    return _PyObject_IS_GC(op) && !_PyObject_GC_IS_TRACKED(op);
}
/* ========================================================================
 * Exact objects: keeping objects out of the interpreter's free lists.
 *
 * CPython keeps some freed objects in per-interpreter free lists and hands
 * them out again without calling the allocator, so the hooks never see the
 * reuse and the object keeps the traceback of its block's first allocation.
 * Stdlib tracemalloc alone is told of each reuse (_Py_NewReference calls
 * _PyTraceMalloc_NewReference on 3.9-3.12; 3.13 has PyRefTracer, one per
 * runtime). While the switch below is on, the free lists of floats, tuples,
 * lists, dicts and dict keys are empty and unused: those objects come from
 * the allocator and go back to it, through the hooks.
 *
 * Everything here runs with the GIL held: lg_exact_objects() from Python,
 * the deallocator wrappers from the interpreter. Nothing here runs Python
 * code or releases the GIL, so no other thread sees a state in between.
 * Every write is one the interpreter's own code makes, and each version's
 * code was read in its source and checked against the disassembly of
 * 3.10.13, 3.11.7, 3.12.1 and 3.13.0:
 *
 * - Emptying a free list frees each entry the way the interpreter's own
 *   clear does (_PyFloat_ClearFreeList, _PyTuple_ClearFreeList,
 *   _PyList_ClearFreeList, _PyDict_ClearFreeList, which every full
 *   collection runs): PyObject_Free for floats and, on 3.10-3.12, for dict
 *   keys; PyMem_Free for dict keys on 3.13; PyObject_GC_Del for tuples,
 *   lists and dicts. The frees go through the hooks.
 *
 * - Floats and tuples are linked lists (next pointer in ob_type, resp.
 *   ob_item[0]). On 3.10-3.12 the deallocators push only while
 *   numfree < MAX (float_dealloc and 3.11+'s _PyFloat_ExactDealloc free the
 *   float when numfree >= PyFloat_MAXFREELIST; tupledealloc / maybe_freelist_push
 *   push while numfree[i] < PyTuple_MAXFREELIST), and the allocators pop
 *   only a non-NULL head (PyFloat_FromDouble; tuple_alloc /
 *   maybe_freelist_pop), never reading numfree. An empty list whose numfree
 *   is MAX is thus never used. numfree then no longer counts the entries,
 *   which only sys._debugmallocstats() reports.
 *
 * - Lists, dicts and dict keys are arrays. On 3.10-3.12 the deallocators
 *   push while numfree < MAX (list_dealloc, dict_dealloc, free_keys_object
 *   and its inlined copies) and the allocators pop while numfree != 0
 *   (PyList_New; new_dict and its inlined copies) or > 0 (new_keys_object,
 *   insert_to_emptydict): no value of numfree stops both, and a negative
 *   one would make a push write before the array. So the list and dict
 *   deallocators are wrapped instead (below): PyList_Type.tp_dealloc and
 *   PyDict_Type.tp_dealloc become lg_list_dealloc / lg_dict_dealloc, which
 *   call the interpreter's own and then empty the free list again. Dict
 *   keys objects are freed by a static function, not through a slot; the
 *   dict wrapper empties their free list too.
 *
 * - 3.13 (GIL build) checks numfree >= 0 before every push (an unsigned
 *   compare with MAX in the binary: float, tuple, list, dict, dict keys) and
 *   pops only when numfree > 0 or the head is non-NULL, because interpreter
 *   finalization empties each list and sets its numfree to -1
 *   (_PyObject_ClearFreeLists(freelists, 1)). The switch does just that.
 *
 * - 3.9: the free lists are static variables of Objects/floatobject.c,
 *   tupleobject.c, listobject.c and dictobject.c, out of reach: nothing is
 *   done and lg_exact_objects() reports the switch as off.
 *
 * A full collection (gc.collect(), or generation 2 reached on its own) runs
 * the clears above (gc_collect_main; 3.13: with is_finalization 0), which
 * set the float and tuple counts back to 0 on every version: those free
 * lists fill up again until the switch is re-applied (turning it on while on
 * re-applies everything). On 3.13 the lists, dicts and dict keys stay at -1
 * through a collection.
 *
 * Not covered:
 * - on 3.10-3.12, dict keys objects freed outside a dict's deallocation (a
 *   dict outgrowing its first table, dict.clear(), ...) and taken again
 *   before the next dict deallocation or re-application empties the list;
 * - other free lists and caches (the one-slot slice cache, async generator
 *   wrappers and asends, contexts, 3.10's frames), and objects reused in
 *   place without being freed (3.12+ float arithmetic that overwrites an
 *   operand it holds the last reference to; the result tuple that zip,
 *   enumerate and dict.items() iterators recycle), which stdlib tracemalloc
 *   does not see either;
 * - interpreters other than the one the switch is on in (one at a time).
 * ======================================================================== */

#if PY_VERSION_HEX >= 0x030A0000

/* Field access per version. LG_HAVE_* is left undefined where the build has
 * no such free list (--without-freelists, or a MAX of 0 on 3.11/3.12). */
#  if PY_VERSION_HEX >= 0x030D0000
#    ifdef WITH_FREELISTS
#      define LG_HAVE_FLOATS 1
#      define LG_HAVE_TUPLES 1
#      define LG_HAVE_LISTS 1
#      define LG_HAVE_DICTS 1
#    endif
#    define LG_FLOAT_HEAD(i) ((i)->object_state.freelists.floats.items)
#    define LG_FLOAT_NUMFREE(i) ((i)->object_state.freelists.floats.numfree)
#    define LG_TUPLE_HEAD(i, k) ((i)->object_state.freelists.tuples.items[k])
#    define LG_TUPLE_NUMFREE(i, k) ((i)->object_state.freelists.tuples.numfree[k])
#    define LG_TUPLE_FIRST 0 /* items[k]: tuples of size k + 1 */
#    define LG_TUPLE_END PyTuple_NFREELISTS
#    define LG_LIST_ITEMS(i) ((i)->object_state.freelists.lists.items)
#    define LG_LIST_NUMFREE(i) ((i)->object_state.freelists.lists.numfree)
#    define LG_DICT_ITEMS(i) ((i)->object_state.freelists.dicts.items)
#    define LG_DICT_NUMFREE(i) ((i)->object_state.freelists.dicts.numfree)
#    define LG_KEYS_ITEMS(i) ((i)->object_state.freelists.dictkeys.items)
#    define LG_KEYS_NUMFREE(i) ((i)->object_state.freelists.dictkeys.numfree)
     /* 3.13 allocates dict keys with PyMem_Malloc (new_keys_object) and its
      * clear frees them with PyMem_Free. */
#    define LG_KEYS_FREE(p) PyMem_Free(p)
     /* The count that keeps a free list unused: what finalization stores. */
#    define LG_FLOAT_OFF (-1)
#    define LG_TUPLE_OFF (-1)
#  else
#    if PY_VERSION_HEX < 0x030B0000
       /* 3.10 keeps PyFloat_MAXFREELIST (100) in floatobject.c; the state
        * struct is in pycore_interp.h unconditionally. (Any count is safe
        * for a linked list: a build with a larger MAX would only keep
        * pushing.) */
#      define LG_HAVE_FLOATS 1
#      define LG_FLOAT_OFF 100
#      if PyTuple_MAXSAVESIZE > 0
#        define LG_HAVE_TUPLES 1
#      endif
#      define LG_HAVE_LISTS 1
#      define LG_HAVE_DICTS 1
       /* free_list[k]: tuples of size k; free_list[0] holds the empty tuple
        * singleton, which the interpreter's clear leaves alone too. */
#      define LG_TUPLE_FIRST 1
#      define LG_TUPLE_END PyTuple_MAXSAVESIZE
#    else
#      if PyFloat_MAXFREELIST > 0
#        define LG_HAVE_FLOATS 1
#        define LG_FLOAT_OFF PyFloat_MAXFREELIST
#      endif
#      if PyTuple_NFREELISTS > 0
#        define LG_HAVE_TUPLES 1
#      endif
#      if PyList_MAXFREELIST > 0
#        define LG_HAVE_LISTS 1
#      endif
#      if PyDict_MAXFREELIST > 0
#        define LG_HAVE_DICTS 1
#      endif
       /* free_list[k]: tuples of size k + 1 (the empty tuple is a static
        * singleton). */
#      define LG_TUPLE_FIRST 0
#      define LG_TUPLE_END PyTuple_NFREELISTS
#    endif
#    define LG_TUPLE_OFF PyTuple_MAXFREELIST
#    define LG_FLOAT_HEAD(i) ((i)->float_state.free_list)
#    define LG_FLOAT_NUMFREE(i) ((i)->float_state.numfree)
#    define LG_TUPLE_HEAD(i, k) ((i)->tuple.free_list[k])
#    define LG_TUPLE_NUMFREE(i, k) ((i)->tuple.numfree[k])
#    define LG_LIST_ITEMS(i) ((i)->list.free_list)
#    define LG_LIST_NUMFREE(i) ((i)->list.numfree)
#    define LG_DICT_ITEMS(i) ((i)->dict_state.free_list)
#    define LG_DICT_NUMFREE(i) ((i)->dict_state.numfree)
#    define LG_KEYS_ITEMS(i) ((i)->dict_state.keys_free_list)
#    define LG_KEYS_NUMFREE(i) ((i)->dict_state.keys_numfree)
#    define LG_KEYS_FREE(p) PyObject_Free(p)
#    define LG_WRAP_DEALLOCS 1
#  endif

/* The interpreter whose free lists are off, or NULL. Written with that
 * interpreter's GIL held; read by the deallocator wrappers, which run in
 * every interpreter (3.12+: each with its own GIL), hence atomic. Compared,
 * never dereferenced. */
static PyInterpreterState *lg_exact_interp;

/* Empties the float free list as _PyFloat_ClearFreeList does, then stores
 * `numfree`. The chain is detached first, so the list is never seen half
 * freed. */
static void
floats_reset(PyInterpreterState *interp, int numfree)
{
#  ifdef LG_HAVE_FLOATS
    PyFloatObject *f = LG_FLOAT_HEAD(interp);
    LG_FLOAT_HEAD(interp) = NULL;
    LG_FLOAT_NUMFREE(interp) = numfree;
    while (f != NULL) {
        PyFloatObject *next = (PyFloatObject *)Py_TYPE(f);
        PyObject_Free(f);
        f = next;
    }
#  else
    (void)interp;
    (void)numfree;
#  endif
}

/* Empties each tuple free list as _PyTuple_ClearFreeList does, then stores
 * `numfree` for each. */
static void
tuples_reset(PyInterpreterState *interp, int numfree)
{
#  ifdef LG_HAVE_TUPLES
    for (int k = LG_TUPLE_FIRST; k < LG_TUPLE_END; k++) {
        PyTupleObject *p = LG_TUPLE_HEAD(interp, k);
        LG_TUPLE_HEAD(interp, k) = NULL;
        LG_TUPLE_NUMFREE(interp, k) = numfree;
        while (p != NULL) {
            PyTupleObject *q = p;
            p = (PyTupleObject *)p->ob_item[0];
            PyObject_GC_Del(q);
        }
    }
#  else
    (void)interp;
    (void)numfree;
#  endif
}

/* Frees the lists on the free list, last first, as _PyList_ClearFreeList
 * does (each step leaves a valid list). */
static void
lists_drain(PyInterpreterState *interp)
{
#  ifdef LG_HAVE_LISTS
    while (LG_LIST_NUMFREE(interp) > 0) {
        PyListObject *op = LG_LIST_ITEMS(interp)[--LG_LIST_NUMFREE(interp)];
        PyObject_GC_Del(op);
    }
#  else
    (void)interp;
#  endif
}

/* Frees the dicts, then the dict keys objects, on their free lists, as
 * _PyDict_ClearFreeList does. */
static void
dicts_drain(PyInterpreterState *interp)
{
#  ifdef LG_HAVE_DICTS
    while (LG_DICT_NUMFREE(interp) > 0) {
        PyDictObject *op = LG_DICT_ITEMS(interp)[--LG_DICT_NUMFREE(interp)];
        PyObject_GC_Del(op);
    }
    while (LG_KEYS_NUMFREE(interp) > 0) {
        LG_KEYS_FREE(LG_KEYS_ITEMS(interp)[--LG_KEYS_NUMFREE(interp)]);
    }
#  else
    (void)interp;
#  endif
}

#  ifdef LG_WRAP_DEALLOCS
/*
 * 3.10-3.12: the list and dict deallocator wrappers.
 *
 * The interpreter's own deallocators (saved once, never changed after)
 * stay in charge: they clear the object and then either push it onto the
 * free list or free it. The wrapper then empties the free list, this object
 * included, when the switch is on in the calling thread's interpreter.
 * Emptying the whole list (not just this object) also catches entries
 * pushed by a deallocation that began before the switch was turned on and
 * was suspended in a finalizer meanwhile; nested deallocations (a list
 * holding the last reference to another) each empty the list after their
 * own push.
 *
 * Every list or dict deallocation goes through the type slot: _Py_Dealloc,
 * subtype_dealloc of Python subclasses (which looks the base's slot up at
 * each call), the trashcan's deferred deallocations and the C subclasses
 * that call PyDict_Type.tp_dealloc (OrderedDict, defaultdict); the binaries
 * contain no direct call of list_dealloc or dict_dealloc. A C type readied
 * while the wrapper is installed inherits it and keeps it: the wrapper stays
 * correct when the switch is off (it then only forwards).
 *
 * The trashcan. list_dealloc and dict_dealloc guard their recursion with
 * Py_TRASHCAN_BEGIN(op, list_dealloc), whose condition (_PyTrash_cond) is
 * Py_TYPE(op)->tp_dealloc == list_dealloc: false once the slot holds the
 * wrapper, so freeing a long chain of nested lists would overflow the C
 * stack. The wrappers carry the same guard for themselves: for an exact
 * list or dict (whose slot is the wrapper) the trashcan counts the nesting
 * and, past PyTrash_UNWIND_LEVEL, defers the object to
 * _PyTrash_thread_destroy_chain, which calls Py_TYPE(op)->tp_dealloc later
 * (the wrapper, or the original if the switch was turned off meanwhile:
 * both accept an object in that state). A deferred object must be untracked
 * by the GC first (the chain links it through its GC header); the original
 * deallocators untrack first thing, so untracking before them changes
 * nothing, except for a 3.12 dict with watchers (below). For other types
 * (subclasses) the condition is false in both, as without the wrapper: their
 * subtype_dealloc has its own guard.
 */
static destructor lg_list_dealloc_orig;
static destructor lg_dict_dealloc_orig;

/* The calling thread's interpreter if the switch is on in it, else NULL. */
static PyInterpreterState *
exact_here(void)
{
    PyInterpreterState *on = __atomic_load_n(&lg_exact_interp, __ATOMIC_ACQUIRE);
    if (on == NULL) {
        return NULL;
    }
    PyThreadState *tstate = _PyThreadState_GET();
    return tstate != NULL && tstate->interp == on ? on : NULL;
}

static void
lg_list_dealloc(PyObject *op)
{
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, lg_list_dealloc)
    lg_list_dealloc_orig(op);
    PyInterpreterState *interp = exact_here();
    if (interp != NULL) {
        lists_drain(interp);
    }
    Py_TRASHCAN_END
}

static void
lg_dict_dealloc(PyObject *op)
{
#    if PY_VERSION_HEX >= 0x030C0000
    /*
     * 3.12: dict_dealloc first tells the dict's watchers (PyDict_Watch; none
     * in CPython itself) and returns if one resurrected the dict, which must
     * then still be tracked; it untracks afterwards. For a watched dict, keep
     * that order and call it without a guard of ours: only a long chain of
     * nested watched dicts runs unguarded.
     */
    if (((PyDictObject *)op)->ma_version_tag & DICT_VERSION_MASK) {
        lg_dict_dealloc_orig(op);
        PyInterpreterState *interp = exact_here();
        if (interp != NULL) {
            dicts_drain(interp);
        }
        return;
    }
#    endif
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, lg_dict_dealloc)
    lg_dict_dealloc_orig(op);
    PyInterpreterState *interp = exact_here();
    if (interp != NULL) {
        dicts_drain(interp);
    }
    Py_TRASHCAN_END
}

/* Whether `type`'s slot holds the wrapper, or the original (saved or still
 * to be saved), i.e. no other code replaced it. */
static int
slot_is_known(PyTypeObject *type, destructor orig, destructor wrapper)
{
    destructor cur = __atomic_load_n(&type->tp_dealloc, __ATOMIC_RELAXED);
    return cur == wrapper || orig == NULL || cur == orig;
}

static void
slot_install(PyTypeObject *type, destructor *orig, destructor wrapper)
{
    destructor cur = __atomic_load_n(&type->tp_dealloc, __ATOMIC_RELAXED);
    if (cur == wrapper) {
        return;
    }
    if (*orig == NULL) {
        *orig = cur;
    }
    /* Release: a thread that finds the wrapper in the slot (3.12+: maybe in
     * another interpreter, under another GIL) also finds *orig. */
    __atomic_store_n(&type->tp_dealloc, wrapper, __ATOMIC_RELEASE);
}

static void
slot_restore(PyTypeObject *type, destructor orig, destructor wrapper)
{
    if (__atomic_load_n(&type->tp_dealloc, __ATOMIC_RELAXED) == wrapper) {
        __atomic_store_n(&type->tp_dealloc, orig, __ATOMIC_RELEASE);
    }
}
#  endif /* LG_WRAP_DEALLOCS */

/* Empties the free lists and keeps them from being used. */
static void
exact_apply(PyInterpreterState *interp)
{
#  if defined(LG_HAVE_FLOATS)
    floats_reset(interp, LG_FLOAT_OFF);
#  endif
#  if defined(LG_HAVE_TUPLES)
    tuples_reset(interp, LG_TUPLE_OFF);
#  endif
    lists_drain(interp);
    dicts_drain(interp);
#  if PY_VERSION_HEX >= 0x030D0000 && defined(WITH_FREELISTS)
    LG_LIST_NUMFREE(interp) = -1;
    LG_DICT_NUMFREE(interp) = -1;
    LG_KEYS_NUMFREE(interp) = -1;
#  endif
}

/* Leaves the free lists empty and usable: the state a collection leaves. */
static void
exact_restore(PyInterpreterState *interp)
{
    floats_reset(interp, 0);
    tuples_reset(interp, 0);
    lists_drain(interp);
    dicts_drain(interp);
#  if PY_VERSION_HEX >= 0x030D0000 && defined(WITH_FREELISTS)
    LG_LIST_NUMFREE(interp) = 0;
    LG_DICT_NUMFREE(interp) = 0;
    LG_KEYS_NUMFREE(interp) = 0;
#  endif
}

#endif /* PY_VERSION_HEX >= 0x030A0000 */

/*
 * Whether exact objects can be had here: 1 if they are on in the calling
 * thread's interpreter, 0 if they are off and lg_exact_objects(1) would
 * switch them on, -1 if it cannot (3.9, or on in another interpreter). The
 * GIL must be held.
 */
int
lg_exact_objects_state(void)
{
#if PY_VERSION_HEX < 0x030A0000
    return -1;
#else
    PyInterpreterState *interp = PyInterpreterState_Get();
    PyInterpreterState *on = __atomic_load_n(&lg_exact_interp, __ATOMIC_RELAXED);
    if (on == NULL) {
        return 0;
    }
    return on == interp ? 1 : -1;
#endif
}

/*
 * Turns exact objects on (`enable` != 0) or off for the calling thread's
 * interpreter. On: empties the free lists and keeps them from being used;
 * turning it on while on re-applies all of it (after a full collection).
 * Off: leaves the free lists empty and usable again, as a collection does.
 * The GIL must be held.
 *
 * Returns 1 if it was on before, 0 if it was off (always 0 on 3.9, where it
 * does nothing), -1 if it is on in another interpreter (nothing done), -2 if
 * other code replaced PyList_Type's or PyDict_Type's deallocator since it was
 * saved (nothing done).
 */
int
lg_exact_objects(int enable)
{
#if PY_VERSION_HEX < 0x030A0000
    (void)enable;
    return 0;
#else
    PyInterpreterState *interp = PyInterpreterState_Get();
    PyInterpreterState *on = __atomic_load_n(&lg_exact_interp, __ATOMIC_RELAXED);
    if (on != NULL && on != interp) {
        return -1;
    }
    int was = on == interp;
    if (enable) {
#  ifdef LG_WRAP_DEALLOCS
        if (!slot_is_known(&PyList_Type, lg_list_dealloc_orig, lg_list_dealloc)
            || !slot_is_known(&PyDict_Type, lg_dict_dealloc_orig, lg_dict_dealloc)) {
            return -2;
        }
        slot_install(&PyList_Type, &lg_list_dealloc_orig, lg_list_dealloc);
        slot_install(&PyDict_Type, &lg_dict_dealloc_orig, lg_dict_dealloc);
#  endif
        __atomic_store_n(&lg_exact_interp, interp, __ATOMIC_RELEASE);
        exact_apply(interp);
    }
    else if (was) {
#  ifdef LG_WRAP_DEALLOCS
        slot_restore(&PyList_Type, lg_list_dealloc_orig, lg_list_dealloc);
        slot_restore(&PyDict_Type, lg_dict_dealloc_orig, lg_dict_dealloc);
#  endif
        __atomic_store_n(&lg_exact_interp, NULL, __ATOMIC_RELEASE);
        exact_restore(interp);
    }
    return was;
#endif
}
