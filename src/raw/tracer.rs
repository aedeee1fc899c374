//! The tracer: what happens to an allocation once the hook has decided to
//! trace it — capture the stack, intern it, record the block — and the reads
//! the Python API makes of that state (counters, snapshots, object lookups).
//!
//! Shared state is all in statics that are never freed; each says what
//! protects it. The record path takes no lock in the common case (a traceback
//! seen before), never allocates through the hooked allocators, never calls
//! Python and never panics.

use super::cpython::{self, RawFrame};
use super::intern::{hash_bytes, hash_words, InternSet};
use super::mem;
use super::peak::{PeakWatch, Site};
use super::table::{Inserted, TraceTable, TraceValue, MAX_TRACEBACK};
use super::totals::TotalsMap;
use crate::snapshot::{SnapshotBuilder, SnapshotData};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Whether allocations are recorded. Written with the GIL held (start/stop);
/// read by every hook. A hook that saw `true` re-checks it inside the trace
/// table's gate, which `stop` holds exclusively while it clears.
static TRACING: AtomicBool = AtomicBool::new(false);
/// Frames kept per traceback (1..=65535). Written by `start` with the GIL held.
static NFRAME: AtomicU32 = AtomicU32::new(1);
/// Traced bytes now and at the peak. Atomic counters, updated by every hook.
static CURRENT: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
/// Per-traceback counts and their values at the peak, while a watch is on
/// (see peak.rs). Touched by every hook only when active.
static WATCH: PeakWatch = PeakWatch::new();

/// Every live traced block. Lock-free (see table.rs).
static TRACES: TraceTable = TraceTable::new();
/// Filenames (UTF-8 bytes) → id.
static FILENAMES: InternSet = InternSet::new(u32::MAX);
/// One raw frame (code, line table, …, instruction) → `filename_id << 32 | lineno`:
/// resolving a line is the costly step, done once per distinct frame.
static FRAMES: InternSet = InternSet::new(u32::MAX);
/// A resolved stack (`[n, (filename, lineno)…]`) → id.
static STACKS: InternSet = InternSet::new(u32::MAX);
/// A traceback, `(stack id, total_nframe)` → id: the id stored in the trace
/// table and shown to Python. Kept apart from the stacks so that the same
/// frames seen at many depths (recursion) share one stack record.
static TRACEBACKS: InternSet = InternSet::new(MAX_TRACEBACK);
/// A raw stack (`[n, raw frames…]`) → `total << 32 | traceback id` of its
/// latest capture: the hot-path cache that makes a known stack cost one hash
/// and one probe (the stack id is found through the traceback when the total
/// changes).
static RAW_STACKS: InternSet = InternSet::new(u32::MAX);

/// Traceback ids of the two tracebacks that are not stacks.
static UNKNOWN_TB: AtomicU32 = AtomicU32::new(0);
static OVERFLOW_TB: AtomicU32 = AtomicU32::new(0);

/// Filename used for frames whose filename is not a str, and for the empty
/// traceback (what tracemalloc reports for allocations outside Python code).
pub const UNKNOWN_FILENAME: &str = "<unknown>";
const OVERFLOW_FILENAME: &str = "<leakguard: traceback table full>";

/// Stack buffer size for captures; deeper limits use the shared big buffer.
const STACK_FRAMES: usize = 128;

pub fn is_tracing() -> bool {
    TRACING.load(Ordering::Acquire)
}

/// The hooks' first test. Relaxed: a stale answer only means one allocation
/// more or less at the very moment tracing starts or stops; `record`
/// re-checks inside the table's gate.
#[inline(always)]
pub fn is_tracing_fast() -> bool {
    TRACING.load(Ordering::Relaxed)
}

pub fn traceback_limit() -> u32 {
    NFRAME.load(Ordering::Relaxed)
}

/// Errors of `start`.
#[derive(Debug)]
pub enum StartError {
    OutOfMemory,
}

/// Starts recording with `nframe` frames per traceback (1..=65535).
/// GIL held.
pub fn start(nframe: u32) -> Result<(), StartError> {
    if TRACING.load(Ordering::Acquire) {
        // Restarting with another limit: like tracemalloc, keep the traces.
        NFRAME.store(nframe, Ordering::Relaxed);
        return Ok(());
    }
    NFRAME.store(nframe, Ordering::Relaxed);
    install_fork_handlers();
    let unknown = intern_resolved(&[(intern_filename(UNKNOWN_FILENAME.as_bytes()), 0)])
        .and_then(|stack| intern_traceback(stack, 1));
    let overflow = intern_resolved(&[(intern_filename(OVERFLOW_FILENAME.as_bytes()), 0)])
        .and_then(|stack| intern_traceback(stack, 1));
    match (unknown, overflow) {
        (Some(u), Some(o)) => {
            UNKNOWN_TB.store(u, Ordering::Relaxed);
            OVERFLOW_TB.store(o, Ordering::Relaxed);
        }
        _ => return Err(StartError::OutOfMemory),
    }
    CURRENT.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    TRACING.store(true, Ordering::Release);
    Ok(())
}

/// Stops recording and forgets every trace and traceback. GIL held.
pub fn stop() {
    TRACING.store(false, Ordering::Release);
    clear_all(true);
}

/// Forgets every trace (and, with `interned`, every traceback too).
/// GIL held.
pub fn clear_all(interned: bool) {
    // Every hook records inside a trace-table gate; holding all gates means
    // none is half-way through interning or recording.
    let quiet = TRACES.quiesce();
    quiet.clear();
    if interned {
        // SAFETY: all gates are held: no hook is reading or inserting, and a
        // hook that enters later sees TRACING == false and touches nothing.
        unsafe {
            TOTALS.reset();
            RAW_STACKS.reset();
            TRACEBACKS.reset();
            STACKS.reset();
            FRAMES.reset();
            FILENAMES.reset();
        }
    }
    CURRENT.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    if WATCH.is_active() {
        // Its counts were of the traces (and maybe traceback ids) just dropped.
        WATCH.set_active(true);
    }
    drop(quiet);
}

/// Our hooks were out of the allocator chain for a while (another tracer
/// restored what it had saved): blocks freed meanwhile were not forgotten,
/// and their pointers may come back.
pub fn frees_may_have_been_missed() {
    TRACES.frees_may_be_missed();
}

pub fn clear_traces() {
    clear_all(false);
}

/// `(current, peak)` traced bytes; `(0, 0)` when not tracing.
pub fn traced_memory() -> (u64, u64) {
    if !is_tracing() {
        return (0, 0);
    }
    let cur = CURRENT.load(Ordering::Relaxed);
    (cur, PEAK.load(Ordering::Relaxed).max(cur))
}

/// `(current, sum of the sizes in the table)`, read with every hook held at
/// the gates so both are exact at the same instant. They must be equal.
pub fn consistency() -> (u64, u64) {
    let quiet = TRACES.quiesce();
    let current = CURRENT.load(Ordering::Relaxed);
    let mut sum = 0u64;
    quiet.for_each(|_, v| sum += v.size);
    drop(quiet);
    (current, sum)
}

pub fn reset_peak() {
    PEAK.store(CURRENT.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Sets the peak to `max(nbytes, current)`: a scoped measurement that reset
/// the peak to see its own puts back the one it found. Nothing happens when
/// not tracing (`start` sets the peak to zero).
pub fn set_peak(nbytes: u64) {
    if !is_tracing() {
        return;
    }
    PEAK.store(
        nbytes.max(CURRENT.load(Ordering::Relaxed)),
        Ordering::Relaxed,
    );
}

/// Bytes the tracer itself holds (all of it is mapped by `mem`).
pub fn tracer_memory() -> usize {
    mem::mapped_bytes()
}

// ---------------------------------------------------------------------------
// The record path (called by the hooks).

/// Records a new block. Called after the underlying allocator returned `ptr`.
pub fn record(ptr: usize, size: usize) {
    let mut value = None;
    let inserted = TRACES.insert_with(ptr, || {
        // Inside the gate: `stop` cannot clear the interning tables under us.
        if !TRACING.load(Ordering::Acquire) {
            return None;
        }
        let tb = capture_traceback();
        let v = TraceValue {
            size: size as u64,
            traceback: tb,
        };
        value = Some(v);
        Some(v)
    });
    let Some(v) = value else { return };
    match inserted {
        Inserted::New => add_bytes(v),
        Inserted::Replaced(old) => {
            sub_bytes(old);
            add_bytes(v);
        }
        Inserted::Lost => {}
    }
}

fn add_bytes(v: TraceValue) {
    let watching = WATCH.is_active();
    if watching {
        WATCH.add(v.traceback, v.size as i64, 1);
    }
    let now = CURRENT.fetch_add(v.size, Ordering::Relaxed) + v.size;
    if now > PEAK.load(Ordering::Relaxed) {
        PEAK.fetch_max(now, Ordering::Relaxed);
        if watching {
            WATCH.new_peak();
        }
    }
}

fn sub_bytes(v: TraceValue) {
    if WATCH.is_active() {
        WATCH.add(v.traceback, -(v.size as i64), -1);
    }
    CURRENT.fetch_sub(v.size, Ordering::Relaxed);
}

/// Forgets a block about to be freed (or reallocated). Returns its trace.
pub fn forget(ptr: usize) -> Option<TraceValue> {
    let v = TRACES.remove(ptr)?;
    sub_bytes(v);
    Some(v)
}

/// Puts back a trace removed by `forget` when a realloc failed.
pub fn restore(ptr: usize, v: TraceValue) {
    if let Inserted::New = TRACES.insert(ptr, v) {
        add_bytes(v);
    }
}

/// Starts (discarding the last one's counts) or stops the peak watch;
/// returns whether one was on. Starting also resets the peak to the current
/// traced bytes: the watch's peak is the block's own.
pub fn set_peak_watch(on: bool) -> bool {
    let was = WATCH.set_active(on);
    if on {
        reset_peak();
    }
    was
}

/// The watch's per-traceback counts: at the peak and now, since it began.
pub fn peak_sites() -> Vec<Site> {
    WATCH.sites()
}

/// The traceback id for the calling thread's current stack.
fn capture_traceback() -> u32 {
    let limit = NFRAME.load(Ordering::Relaxed) as usize;
    if limit <= STACK_FRAMES {
        // buf[0] is the key header (total, n); frames follow. Not zeroed:
        // only what the shim writes is read (4 KiB of memset per allocation
        // would cost more than the rest of the hot path).
        let mut buf = [const { MaybeUninit::<RawFrame>::uninit() }; STACK_FRAMES + 1];
        intern_stack(&mut buf[..limit + 1])
    } else {
        big_buffer_capture(limit)
    }
}

/// Captures into `buf[1..]` and interns. `buf.len() - 1` is the frame limit.
fn intern_stack(buf: &mut [MaybeUninit<RawFrame>]) -> u32 {
    let mut total: u32 = 0;
    let max = (buf.len() - 1) as i32;
    // SAFETY: `buf[1..]` has room for `max` frames; the shim writes at most
    // `max` (initialising them) and never allocates or calls Python.
    let n = unsafe { cpython::lg_capture_stack(buf.as_mut_ptr().add(1).cast(), max, &mut total) };
    let n = n.clamp(0, max) as usize;
    if n == 0 {
        return UNKNOWN_TB.load(Ordering::Relaxed);
    }
    buf[0].write(RawFrame {
        filename: n,
        ..RawFrame::default()
    });
    // SAFETY: buf[0] was just written and the shim initialised buf[1..=n].
    let frames = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<RawFrame>(), n + 1) };
    let key = frames_as_bytes(frames);
    let h = hash_frames(frames);
    // A raw stack's value caches its stack id and the traceback it had with
    // the total seen last (see `RawStackValue`): in the common case that is
    // the answer, one probe in all.
    let (raw_id, stack) = match RAW_STACKS.find(h, key) {
        Some(hit) => {
            let v = RawStackValue::unpack(hit.value);
            if v.total == total {
                return v.traceback;
            }
            let stack = match v.stack {
                Some(stack) => Some(stack),
                None => TRACEBACKS
                    .get(v.traceback)
                    .and_then(|(k, _)| k.try_into().ok())
                    .map(|w: [u8; 8]| (u64::from_le_bytes(w) >> 32) as u32),
            };
            (Some(hit.id), stack)
        }
        // A stack never seen: resolve every frame (each frame once, ever).
        None => (None, resolve_and_intern(&frames[1..])),
    };
    let Some(stack) = stack else {
        return OVERFLOW_TB.load(Ordering::Relaxed);
    };
    let Some(tb) = cached_traceback(stack, total) else {
        return OVERFLOW_TB.load(Ordering::Relaxed);
    };
    let value = RawStackValue {
        stack: Some(stack),
        total,
        traceback: tb,
    }
    .pack();
    match raw_id {
        Some(id) => RAW_STACKS.set_value(id, value),
        None => {
            RAW_STACKS.insert(h, key, value);
        }
    }
    tb
}

/// What a raw stack's record remembers: its stack id (when it fits in 24
/// bits; else it is found through the traceback) and its latest
/// `(total_nframe, traceback id)`.
struct RawStackValue {
    stack: Option<u32>,
    total: u32,
    traceback: u32,
}

impl RawStackValue {
    const NO_STACK: u64 = (1 << 24) - 1;

    fn pack(&self) -> u64 {
        let stack = match self.stack {
            Some(s) if u64::from(s) < Self::NO_STACK => u64::from(s),
            _ => Self::NO_STACK,
        };
        (stack << 40) | (u64::from(self.total.min(0xFFFF)) << 24) | u64::from(self.traceback)
    }

    fn unpack(v: u64) -> Self {
        let stack = v >> 40;
        RawStackValue {
            stack: (stack != Self::NO_STACK).then_some(stack as u32),
            total: ((v >> 24) & 0xFFFF) as u32,
            traceback: (v & u64::from(MAX_TRACEBACK)) as u32,
        }
    }
}

/// (stack, total) → traceback, neighbouring totals together (`totals.rs`):
/// a recursion revisits the same stacks at thousands of depths, and this
/// keeps them out of the interning table's cache misses.
static TOTALS: TotalsMap = TotalsMap::new();

fn cached_traceback(stack: u32, total: u32) -> Option<u32> {
    if let Some(tb) = TOTALS.get(stack, total) {
        return Some(tb);
    }
    let tb = intern_traceback(stack, total)?;
    TOTALS.set(stack, total, tb);
    Some(tb)
}

/// The traceback id of `stack` seen with `total` frames on the stack.
fn intern_traceback(stack: u32, total: u32) -> Option<u32> {
    let word = (u64::from(stack) << 32) | u64::from(total);
    let h = hash_words(&[word]);
    let key = word.to_le_bytes();
    if let Some(hit) = TRACEBACKS.find(h, &key) {
        return Some(hit.id);
    }
    TRACEBACKS.insert(h, &key, 0).map(|i| i.id)
}

/// Hash of raw frames: the words that tell stacks apart (code object and
/// instruction; the first line guards against a reused code address). Each
/// frame is mixed on its own — a folded 64×64→128 multiplication of its
/// words, salted by its position — and the results summed, so the
/// multiplications of different frames overlap in the pipeline instead of
/// forming one long dependency chain. Keys are compared in full on a hit.
#[inline]
fn hash_frames(frames: &[RawFrame]) -> u64 {
    #[inline(always)]
    fn fold(x: u64, y: u64) -> u64 {
        let m = u128::from(x) * u128::from(y);
        (m as u64) ^ ((m >> 64) as u64)
    }
    let mut acc: u64 = frames.len() as u64;
    let mut salt: u64 = 0x243F_6A88_85A3_08D3;
    for f in frames {
        salt = salt.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let where_ = u64::from(f.instr as u32) | (u64::from(f.firstlineno as u32) << 32);
        acc = acc.wrapping_add(fold(f.code as u64 ^ salt, where_ ^ 0xA076_1D64_78BD_642F));
    }
    fold(
        acc ^ 0xE703_7ED1_A0B4_28DB,
        acc.rotate_left(29) ^ 0x8EBC_6AF0_9C88_C6E3,
    )
}

fn frames_as_bytes(frames: &[RawFrame]) -> &[u8] {
    // SAFETY: RawFrame is repr(C), three usizes and two c_ints with no
    // padding (asserted below), so its bytes are all initialised.
    unsafe {
        std::slice::from_raw_parts(frames.as_ptr().cast::<u8>(), std::mem::size_of_val(frames))
    }
}
const _: () = assert!(std::mem::size_of::<RawFrame>() == 3 * 8 + 2 * 4);

/// Resolves raw frames to (filename id, lineno) and interns the stack.
fn resolve_and_intern(frames: &[RawFrame]) -> Option<u32> {
    const STACK: usize = STACK_FRAMES;
    let mut small = [(0u32, 0u32); STACK];
    let resolved_big;
    let resolved: &mut [(u32, u32)] = if frames.len() <= STACK {
        &mut small[..frames.len()]
    } else {
        // SAFETY: (u32, u32) is valid when zeroed.
        match unsafe { mem::MappedArray::<(u32, u32)>::zeroed(frames.len()) } {
            Some(arr) => {
                resolved_big = arr;
                // SAFETY: we own the mapping exclusively for this call.
                unsafe {
                    std::slice::from_raw_parts_mut(
                        resolved_big.as_slice().as_ptr().cast_mut(),
                        frames.len(),
                    )
                }
            }
            None => return None,
        }
    };
    for (out, f) in resolved.iter_mut().zip(frames) {
        *out = resolve_frame(f);
    }
    intern_resolved(resolved)
}

fn resolve_frame(f: &RawFrame) -> (u32, u32) {
    let key = frames_as_bytes(std::slice::from_ref(f));
    let h = hash_frames(std::slice::from_ref(f));
    if let Some(hit) = FRAMES.find(h, key) {
        return ((hit.value >> 32) as u32, hit.value as u32);
    }
    // SAFETY: `f` was captured by this hook call from a live frame; its code
    // object is alive for the duration of the call.
    let lineno = unsafe { cpython::lg_frame_lineno(f) }.max(0) as u32;
    let filename = frame_filename_id(f);
    FRAMES.insert(h, key, (u64::from(filename) << 32) | u64::from(lineno));
    (filename, lineno)
}

fn frame_filename_id(f: &RawFrame) -> u32 {
    let mut buf = [0u8; 512];
    // SAFETY: buf has `buf.len()` writable bytes; the code object is alive.
    let len = unsafe { cpython::lg_frame_filename(f, buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return intern_filename(UNKNOWN_FILENAME.as_bytes());
    }
    let len = len as usize;
    if len <= buf.len() {
        return intern_filename(&buf[..len]);
    }
    // A very long filename: a buffer of its own, from mmap.
    // SAFETY: u8 is valid when zeroed.
    let Some(big) = (unsafe { mem::MappedArray::<u8>::zeroed(len) }) else {
        return intern_filename(UNKNOWN_FILENAME.as_bytes());
    };
    let p = big.as_slice().as_ptr().cast_mut();
    // SAFETY: `big` has `len` writable bytes that we own exclusively.
    let got = unsafe { cpython::lg_frame_filename(f, p.cast(), len) };
    if got < 0 || got as usize > len {
        return intern_filename(UNKNOWN_FILENAME.as_bytes());
    }
    intern_filename(&big.as_slice()[..got as usize])
}

fn intern_filename(name: &[u8]) -> u32 {
    let h = hash_bytes(name);
    if let Some(hit) = FILENAMES.find(h, name) {
        return hit.id;
    }
    // Filenames are never refused except when memory runs out; then the
    // frame is reported under id 0, which `start` made "<unknown>".
    FILENAMES.insert(h, name, 0).map_or(0, |i| i.id)
}

/// Interns the stack `[n, (filename, lineno)…]` and returns its id.
fn intern_resolved(frames: &[(u32, u32)]) -> Option<u32> {
    let mut words_small = [0u64; STACK_FRAMES + 1];
    let words_big;
    let words: &mut [u64] = if frames.len() < STACK_FRAMES {
        &mut words_small[..frames.len() + 1]
    } else {
        // SAFETY: u64 is valid when zeroed.
        words_big = unsafe { mem::MappedArray::<u64>::zeroed(frames.len() + 1) }?;
        // SAFETY: we own the mapping exclusively for this call.
        unsafe {
            std::slice::from_raw_parts_mut(
                words_big.as_slice().as_ptr().cast_mut(),
                frames.len() + 1,
            )
        }
    };
    stack_words(frames, words);
    let h = hash_words(words);
    let key = words_as_bytes(words);
    if let Some(hit) = STACKS.find(h, key) {
        return Some(hit.id);
    }
    STACKS.insert(h, key, 0).map(|i| i.id)
}

/// A stack's key in `STACKS`: `[n, filename << 32 | lineno…]`, written into
/// `words` (`frames.len() + 1` long).
fn stack_words(frames: &[(u32, u32)], words: &mut [u64]) {
    words[0] = frames.len() as u64;
    for (w, &(file, line)) in words[1..].iter_mut().zip(frames) {
        *w = (u64::from(file) << 32) | u64::from(line);
    }
}

fn words_as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: a u64 slice viewed as bytes: all initialised, no padding.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

/// The id of the interned stack with exactly these `(filename, lineno)`
/// frames, most recent first, without interning anything: `None` when no
/// traced allocation ever had that stack (or a filename or line the engine
/// cannot have recorded).
fn find_stack(frames: &[(String, i64)]) -> Option<u32> {
    if frames.is_empty() {
        return None;
    }
    let mut ids = Vec::with_capacity(frames.len());
    for (name, line) in frames {
        let name = name.as_bytes();
        let file = FILENAMES.find(hash_bytes(name), name)?.id;
        ids.push((file, u32::try_from(*line).ok()?));
    }
    let mut words = vec![0u64; ids.len() + 1];
    stack_words(&ids, &mut words);
    STACKS
        .find(hash_words(&words), words_as_bytes(&words))
        .map(|hit| hit.id)
}

/// The stack id of traceback `id`.
fn traceback_stack(id: u32) -> Option<u32> {
    let (key, _) = TRACEBACKS.get(id)?;
    let word = u64::from_le_bytes(key.try_into().ok()?);
    Some((word >> 32) as u32)
}

/// For each requested traceback — its frames as `(filename, lineno)`, most
/// recent first, as snapshot statistics give them — the addresses of up to
/// `limit` live traced blocks whose traceback has exactly those frames,
/// whatever its `total_nframe`. Results are parallel to `requests`; equal
/// requests get equal lists. Reads the trace table while other threads keep
/// allocating, like [`snapshot`], and stops once every list is full. Each
/// engine traceback met is resolved once. Empty lists when not tracing.
/// GIL held (no reset of the interning tables can run meanwhile).
pub fn live_blocks_by_traceback(requests: &[Vec<(String, i64)>], limit: usize) -> Vec<Vec<usize>> {
    // Requests → groups of equal stacks; stack id → group.
    let mut group_of_stack: ahash::AHashMap<u32, usize> = ahash::AHashMap::new();
    let request_group: Vec<Option<usize>> = requests
        .iter()
        .map(|frames| {
            let stack = find_stack(frames)?;
            let next = group_of_stack.len();
            Some(*group_of_stack.entry(stack).or_insert(next))
        })
        .collect();
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); group_of_stack.len()];
    let mut open = if limit == 0 || !is_tracing() {
        0
    } else {
        groups.len()
    };
    if open > 0 {
        // Traceback id → its group, resolved once per id.
        const UNSEEN: u32 = u32::MAX;
        const NO_GROUP: u32 = u32::MAX - 1;
        let mut group_of_tb: Vec<u32> = vec![UNSEEN; TRACEBACKS.len() as usize];
        TRACES.for_each_while(|ptr, v| {
            let id = v.traceback as usize;
            if id >= group_of_tb.len() {
                // Interned after we sized the cache (another thread).
                group_of_tb.resize(id + 1, UNSEEN);
            }
            if group_of_tb[id] == UNSEEN {
                group_of_tb[id] = traceback_stack(v.traceback)
                    .and_then(|stack| group_of_stack.get(&stack))
                    .map_or(NO_GROUP, |&g| g as u32);
            }
            if group_of_tb[id] != NO_GROUP {
                let blocks = &mut groups[group_of_tb[id] as usize];
                if blocks.len() < limit {
                    blocks.push(ptr);
                    if blocks.len() == limit {
                        open -= 1;
                    }
                }
            }
            open > 0
        });
    }
    request_group
        .iter()
        .map(|g| g.map_or_else(Vec::new, |g| groups[g].clone()))
        .collect()
}

/// Frame limits above the stack buffer share one mapped buffer, guarded by a
/// spin lock. Only threads attached to the interpreter capture stacks, and
/// at most one of those runs at a time, so the lock is uncontended.
fn big_buffer_capture(limit: usize) -> u32 {
    use super::table::SpinLock;
    use std::sync::atomic::AtomicPtr;
    static LOCK: SpinLock = SpinLock::new();
    static BUF: AtomicPtr<RawFrame> = AtomicPtr::new(std::ptr::null_mut());
    const MAX: usize = 65535 + 1;
    LOCK.lock();
    let mut p = BUF.load(Ordering::Relaxed);
    if p.is_null() {
        // SAFETY: RawFrame is plain integers, valid when zeroed.
        if let Some(arr) = unsafe { mem::MappedArray::<RawFrame>::zeroed(MAX) } {
            p = arr.into_raw().0.as_ptr();
            BUF.store(p, Ordering::Relaxed);
        }
    }
    let tb = if p.is_null() {
        UNKNOWN_TB.load(Ordering::Relaxed)
    } else {
        // SAFETY: BUF is a mapping of MAX frames, never freed, and the lock
        // gives this thread exclusive use of it.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(p.cast::<MaybeUninit<RawFrame>>(), (limit + 1).min(MAX))
        };
        intern_stack(buf)
    };
    LOCK.unlock();
    tb
}

// ---------------------------------------------------------------------------
// Reads for the Python API (GIL held).

/// Traceback `id` as `(total_nframe, [(filename, lineno)…])`, most recent first.
pub fn traceback_frames(id: u32) -> Option<(u32, Vec<(u32, u32)>)> {
    let (key, _) = TRACEBACKS.get(id)?;
    let word = u64::from_le_bytes(key.try_into().ok()?);
    let (stack, total) = ((word >> 32) as u32, word as u32);
    let (frames, _) = STACKS.get(stack)?;
    let frames = frames
        .chunks_exact(8)
        .skip(1)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .map(|w| ((w >> 32) as u32, w as u32))
        .collect();
    Some((total, frames))
}

pub fn filename(id: u32) -> String {
    match FILENAMES.get(id) {
        Some((bytes, _)) => String::from_utf8_lossy(bytes).into_owned(),
        None => UNKNOWN_FILENAME.to_owned(),
    }
}

/// The trace of the block at `ptr`, if traced.
pub fn trace_of(ptr: usize) -> Option<TraceValue> {
    if !is_tracing() {
        return None;
    }
    TRACES.get(ptr)
}

/// Copies the live traces into a snapshot while other threads keep
/// allocating: each trace read is one that was live when its slot was read.
pub fn snapshot() -> SnapshotData {
    let mut live: Vec<TraceValue> = Vec::with_capacity(1024);
    TRACES.for_each(|_, v| live.push(v));
    let mut b = SnapshotBuilder::new(traceback_limit());
    b.reserve_traces(live.len());
    let mut filename_map: Vec<Option<u32>> = Vec::new();
    let mut tb_map: Vec<Option<u32>> = vec![None; TRACEBACKS.len() as usize];
    for v in live {
        let id = v.traceback as usize;
        if id >= tb_map.len() {
            tb_map.resize(id + 1, None);
        }
        let idx = match tb_map[id] {
            Some(i) => i,
            None => {
                let (total, frames) = traceback_frames(v.traceback).unwrap_or((1, vec![]));
                let mut resolved = Vec::with_capacity(frames.len());
                for (file, line) in frames {
                    let f = file as usize;
                    if f >= filename_map.len() {
                        filename_map.resize(f + 1, None);
                    }
                    let fi = match filename_map[f] {
                        Some(fi) => fi,
                        None => {
                            let fi = b.intern_filename(&filename(file));
                            filename_map[f] = Some(fi);
                            fi
                        }
                    };
                    resolved.push(crate::snapshot::Frame {
                        filename: fi,
                        lineno: i64::from(line),
                    });
                }
                let i = b.intern_resolved(crate::snapshot::Traceback {
                    frames: resolved.into_boxed_slice(),
                    total_nframe: total,
                });
                tb_map[id] = Some(i);
                i
            }
        };
        b.push_trace(0, v.size, idx);
    }
    b.finish()
}

// ---------------------------------------------------------------------------
// fork()

fn install_fork_handlers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering plain extern "C" functions with no arguments;
        // they only touch statics.
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_parent),
                Some(after_fork_child),
            )
        };
    });
}

const INTERNS: [&InternSet; 5] = [&FILENAMES, &FRAMES, &STACKS, &TRACEBACKS, &RAW_STACKS];

extern "C" fn before_fork() {
    for s in INTERNS {
        s.before_fork();
    }
    TRACES.before_fork();
}

extern "C" fn after_fork_parent() {
    TRACES.after_fork_parent();
    for s in INTERNS {
        s.after_fork();
    }
}

extern "C" fn after_fork_child() {
    TRACES.after_fork_child();
    for s in INTERNS {
        s.after_fork();
    }
}
