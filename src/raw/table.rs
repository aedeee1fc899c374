//! The trace table: pointer → (size, traceback id) for every live traced block.
//!
//! Called from the allocator hooks, including RAW-domain calls from threads
//! that hold no GIL, so it is built on these facts:
//!
//! - At most one operation per pointer is in flight: the allocator cannot hand
//!   out `p` again before `p` is freed. So a slot needs no lock: an insert
//!   claims a free slot with one CAS, writes the value, then publishes the key
//!   with release ordering; a remove finds the key and marks a tombstone.
//! - The table is split into [`SHARDS`] open-addressing shards (linear probing,
//!   16-byte slots, load kept between 70% and 85%). Normal operations on a shard never wait for each other;
//!   they only announce themselves on the shard's *gate* (an in-flight count).
//!   Growing a shard (rare, amortised) takes the gate exclusively: it waits
//!   for in-flight operations to drain, rehashes, and lets them in again.
//! - Announcing costs no locked instruction: each thread owns a slot in
//!   `ANNOUNCE` and writes there which shard it is in (a plain store and a
//!   compiler fence). The rare exclusive side pays instead: it sets the
//!   shard's EXCLUSIVE bit, runs `membarrier(PRIVATE_EXPEDITED)` (every
//!   running thread executes a full barrier), then waits until no slot names
//!   the shard — the asymmetric form of Dekker's handshake. Where membarrier
//!   is unavailable the fast side uses a full fence instead; threads without
//!   a slot (more than `THREAD_SLOTS` alive) count themselves in the gate.
//! - All memory comes from `mmap` (see `mem.rs`), never from the hooked
//!   allocators; nothing here allocates, panics or calls Python.

use super::mem::MappedArray;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Number of shards (a power of two).
pub const SHARDS: usize = 64;
const SHARD_BITS: u32 = SHARDS.trailing_zeros();
/// Smallest shard capacity (slots). 64 shards × 512 slots × 16 bytes = 512 KiB.
const MIN_CAPACITY: usize = 512;
/// Capacities are multiples of this (any multiple: slots are found by
/// "fastrange" scaling, not masking, so the load can be kept in a narrow band).
const CAPACITY_STEP: usize = 64;
/// A shard is rehashed when its used slots (live, reserved, tombstones)
/// reach MAX_LOAD percent, to a capacity where its live entries fill
/// REHASH_LOAD percent: the load stays between the two, so memory per live
/// block stays between 16/0.85 = 18.8 and 16/0.7 = 22.9 bytes (under half of
/// what stdlib tracemalloc reports per trace), while a probe for an absent
/// pointer (a block allocated before tracing) stays a few cache lines long.
/// Against a 60-80% band this costs about 3% on a churning workload (longer
/// probes) and 6% on a heap that only grows (more rehashes); 70-80% cost 20%
/// on the growing heap.
const MAX_LOAD: usize = 85;
const REHASH_LOAD: usize = 70;

const EMPTY: usize = 0;
const TOMBSTONE: usize = 1;
const RESERVED: usize = 2;
/// Keys below this are slot states, never pointers (no allocator returns them).
const FIRST_KEY: usize = 16;

/// Largest block size a slot can record (1 TiB − 1); larger sizes saturate.
pub const MAX_SIZE: u64 = (1 << 40) - 1;
/// Largest traceback id a slot can record.
pub const MAX_TRACEBACK: u32 = (1 << 24) - 1;

/// The value stored for a live block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceValue {
    pub size: u64,
    pub traceback: u32,
}

impl TraceValue {
    fn pack(self) -> u64 {
        (self.size.min(MAX_SIZE) << 24) | u64::from(self.traceback.min(MAX_TRACEBACK))
    }
    fn unpack(v: u64) -> Self {
        TraceValue {
            size: v >> 24,
            traceback: (v & u64::from(MAX_TRACEBACK)) as u32,
        }
    }
}

#[repr(C)]
struct Slot {
    key: AtomicUsize,
    value: AtomicU64,
}

/// Gate bit: an exclusive operation (grow, clear) owns the shard.
const EXCLUSIVE: u64 = 1 << 63;

#[repr(align(128))]
struct Shard {
    /// `EXCLUSIVE` | number of operations in flight.
    gate: AtomicU64,
    /// The slot array; replaced only while the gate is held exclusively.
    slots: AtomicPtr<Slot>,
    /// Capacity in slots, 0 when no array is allocated yet.
    /// Changed only under the exclusive gate, like `slots`.
    cap: AtomicUsize,
    /// Slots that are not EMPTY (live, reserved or tombstones).
    used: AtomicUsize,
}

/// What an insert did.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    New,
    /// The key was already present (its free was never seen); the old value
    /// was replaced and is returned so counters can be corrected.
    Replaced(TraceValue),
    /// No memory could be mapped for the table: the block is not traced.
    Lost,
}

fn spin_wait(round: &mut u32) {
    *round += 1;
    if *round < 64 {
        spin_loop();
    } else {
        // Another thread holds what we wait for and may be descheduled
        // (2-core machines): give it the CPU. sched_yield never allocates.
        std::thread::yield_now();
    }
}

/// A minimal test-and-set lock for rare, short sections (growing a shard,
/// clearing, fork). It never allocates, so it can be taken inside a hook.
pub struct SpinLock {
    locked: AtomicBool,
}

impl SpinLock {
    pub const fn new() -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
        }
    }
    pub fn lock(&self) {
        let mut round = 0;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spin_wait(&mut round);
        }
    }
    pub fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
    }
    /// Forget a holder: only for a forked child, where the holder is gone.
    fn reset(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl Default for SpinLock {
    fn default() -> Self {
        Self::new()
    }
}

impl Shard {
    const fn new() -> Self {
        Shard {
            gate: AtomicU64::new(0),
            slots: AtomicPtr::new(std::ptr::null_mut()),
            cap: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
        }
    }

    /// Enters the shard: no exclusive operation starts until `leave`.
    #[inline]
    fn enter(&self) -> Pass {
        let me = self as *const Shard as usize;
        match my_slot() {
            Some(i) => {
                let announce = &ANNOUNCE[i];
                let mut round = 0;
                loop {
                    announce.store(me, Ordering::Relaxed);
                    fast_side_fence();
                    if self.gate.load(Ordering::Acquire) & EXCLUSIVE == 0 {
                        return Pass::Slot(i);
                    }
                    announce.store(0, Ordering::Release);
                    while self.gate.load(Ordering::Relaxed) & EXCLUSIVE != 0 {
                        spin_wait(&mut round);
                    }
                }
            }
            None => {
                let mut round = 0;
                loop {
                    let g = self.gate.fetch_add(1, Ordering::Acquire);
                    if g & EXCLUSIVE == 0 {
                        return Pass::Counted;
                    }
                    self.gate.fetch_sub(1, Ordering::Relaxed);
                    while self.gate.load(Ordering::Relaxed) & EXCLUSIVE != 0 {
                        spin_wait(&mut round);
                    }
                }
            }
        }
    }

    #[inline]
    fn leave(&self, pass: Pass) {
        match pass {
            Pass::Slot(i) => ANNOUNCE[i].store(0, Ordering::Release),
            Pass::Counted => {
                self.gate.fetch_sub(1, Ordering::Release);
            }
        }
    }

    /// First half of taking the shard exclusively: stop new entries. The
    /// caller holds the table's `exclusive` lock, so no other thread races
    /// for the bit; it must then call `slow_side_barrier` and `drain`.
    fn close(&self) {
        self.gate.fetch_or(EXCLUSIVE, Ordering::SeqCst);
    }

    /// Second half: wait for operations in flight to leave.
    fn drain(&self) {
        let me = self as *const Shard as usize;
        let mut round = 0;
        while self.gate.load(Ordering::Acquire) & !EXCLUSIVE != 0 {
            spin_wait(&mut round);
        }
        let used = SLOTS_HIGH.load(Ordering::Acquire);
        for a in &ANNOUNCE[..used] {
            while a.load(Ordering::Acquire) == me {
                spin_wait(&mut round);
            }
        }
    }

    fn lock_exclusive(&self) {
        self.close();
        slow_side_barrier();
        self.drain();
    }

    fn unlock_exclusive(&self) {
        self.gate.fetch_and(!EXCLUSIVE, Ordering::Release);
    }

    /// The current slot array. Stable while the caller is inside the gate.
    fn slots(&self) -> &[Slot] {
        let cap = self.cap.load(Ordering::Relaxed);
        let ptr = self.slots.load(Ordering::Relaxed);
        if cap == 0 || ptr.is_null() {
            return &[];
        }
        // `slots`/`cap` change only under the exclusive gate, which cannot be
        // held while the caller is inside the gate; the gate orders them.
        // SAFETY: so they describe a live mapping of `cap` slots.
        unsafe { std::slice::from_raw_parts(ptr, cap) }
    }

    /// Replaces the slot array (exclusive gate held). Frees the old array.
    fn replace_slots(&self, new: Option<MappedArray<Slot>>) {
        let old_cap = self.cap.load(Ordering::Relaxed);
        let old_ptr = self.slots.load(Ordering::Relaxed);
        match new {
            Some(arr) => {
                let (ptr, len) = arr.into_raw();
                self.slots.store(ptr.as_ptr(), Ordering::Relaxed);
                self.cap.store(len, Ordering::Relaxed);
            }
            None => {
                self.slots.store(std::ptr::null_mut(), Ordering::Relaxed);
                self.cap.store(0, Ordering::Relaxed);
            }
        }
        if let Some(p) = std::ptr::NonNull::new(old_ptr) {
            if old_cap != 0 {
                // The exclusive gate keeps every reader out of the old array.
                // SAFETY: it came from `into_raw` with `old_cap` slots, unreachable now.
                drop(unsafe { MappedArray::from_raw(p, old_cap) });
            }
        }
    }

    fn capacity(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }
}

/// How an operation entered a shard.
#[derive(Clone, Copy)]
enum Pass {
    /// Announced in `ANNOUNCE[i]`.
    Slot(usize),
    /// Counted in the shard's gate.
    Counted,
}

/// Threads that can hold an announcement slot at once; more fall back to
/// counting themselves in the gates.
const THREAD_SLOTS: usize = 1024;
/// Per slot: the address of the shard its thread is operating on, or 0.
/// Written only by the slot's owner; read by exclusive operations.
static ANNOUNCE: [AtomicUsize; THREAD_SLOTS] = [const { AtomicUsize::new(0) }; THREAD_SLOTS];
/// Per slot: owned by a live thread.
static SLOT_TAKEN: [AtomicBool; THREAD_SLOTS] = [const { AtomicBool::new(false) }; THREAD_SLOTS];
/// One past the highest slot ever handed out: what `drain` scans.
static SLOTS_HIGH: AtomicUsize = AtomicUsize::new(0);

const SLOT_UNASSIGNED: usize = 0;
const SLOT_NONE: usize = usize::MAX;

thread_local! {
    /// This thread's slot + 1, or SLOT_UNASSIGNED / SLOT_NONE. `const`, no
    /// `Drop`: readable during thread teardown.
    static MY_SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(SLOT_UNASSIGNED) };
}

/// 0: not chosen yet; 1: membarrier; 2: full fences.
static BARRIER_MODE: AtomicU8 = AtomicU8::new(0);

const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

fn barrier_mode() -> u8 {
    let mode = BARRIER_MODE.load(Ordering::Acquire);
    if mode != 0 {
        return mode;
    }
    // SAFETY: the membarrier syscall takes two integer arguments and touches
    // no user memory; failure (old kernel, seccomp) is reported as -1.
    let registered = unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
        )
    } == 0;
    let mode = if registered { 1 } else { 2 };
    match BARRIER_MODE.compare_exchange(0, mode, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => mode,
        Err(chosen) => chosen,
    }
}

/// The fast side of the handshake, between announcing and checking.
#[inline(always)]
fn fast_side_fence() {
    if BARRIER_MODE.load(Ordering::Relaxed) == 1 {
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    } else {
        std::sync::atomic::fence(Ordering::SeqCst);
    }
}

/// The slow side: after it, every thread's announcement made before it is
/// visible, and every thread's check made after it sees our EXCLUSIVE bit.
fn slow_side_barrier() {
    if barrier_mode() == 1 {
        // SAFETY: as in `barrier_mode`; the process registered first.
        let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0) };
        if r == 0 {
            return;
        }
    }
    std::sync::atomic::fence(Ordering::SeqCst);
}

/// This thread's announcement slot, claiming one on first use.
#[inline(always)]
fn my_slot() -> Option<usize> {
    match MY_SLOT.get() {
        SLOT_NONE => None,
        SLOT_UNASSIGNED => claim_slot(),
        s => Some(s - 1),
    }
}

#[cold]
fn claim_slot() -> Option<usize> {
    // The mode must be settled before this thread relies on a compiler
    // fence alone.
    barrier_mode();
    for (i, taken) in SLOT_TAKEN.iter().enumerate() {
        if taken
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            SLOTS_HIGH.fetch_max(i + 1, Ordering::AcqRel);
            if register_release(i) {
                MY_SLOT.set(i + 1);
                return Some(i);
            }
            taken.store(false, Ordering::Release);
            break;
        }
    }
    MY_SLOT.set(SLOT_NONE);
    None
}

/// Arranges for slot `i` to be given back when this thread exits.
fn register_release(i: usize) -> bool {
    static KEY_STATE: std::sync::Once = std::sync::Once::new();
    static mut KEY: libc::pthread_key_t = 0;
    static KEY_OK: AtomicBool = AtomicBool::new(false);
    KEY_STATE.call_once(|| {
        // SAFETY: KEY is written once here, before KEY_OK publishes it.
        let r =
            unsafe { libc::pthread_key_create(std::ptr::addr_of_mut!(KEY), Some(release_slot)) };
        KEY_OK.store(r == 0, Ordering::Release);
    });
    if !KEY_OK.load(Ordering::Acquire) {
        return false;
    }
    // SAFETY: KEY was initialised by the call_once above (KEY_OK is true);
    // the value is just the slot number, never dereferenced.
    unsafe { libc::pthread_setspecific(KEY, (i + 1) as *const libc::c_void) == 0 }
}

/// pthread key destructor: the thread is exiting. Later allocations in its
/// teardown use the gate counters.
extern "C" fn release_slot(value: *mut libc::c_void) {
    let i = (value as usize).wrapping_sub(1);
    if i < THREAD_SLOTS {
        MY_SLOT.set(SLOT_NONE);
        ANNOUNCE[i].store(0, Ordering::Release);
        SLOT_TAKEN[i].store(false, Ordering::Release);
    }
}

/// In a forked child only the calling thread survives: free every other slot.
fn forget_other_threads() {
    let mine = MY_SLOT.get();
    for i in 0..THREAD_SLOTS {
        if mine != i + 1 {
            ANNOUNCE[i].store(0, Ordering::Release);
            SLOT_TAKEN[i].store(false, Ordering::Release);
        }
    }
}

#[inline]
fn next_slot(i: usize, cap: usize) -> usize {
    if i + 1 == cap {
        0
    } else {
        i + 1
    }
}

#[inline]
fn hash(key: usize) -> u64 {
    // Fibonacci hashing of the pointer without its always-zero low bits.
    ((key as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn shard_of(h: u64) -> usize {
    (h >> (64 - SHARD_BITS)) as usize
}

#[inline]
fn home_slot(h: u64, cap: usize) -> usize {
    // Scale the hash bits not used for the shard into [0, cap).
    ((u128::from(h << SHARD_BITS) * cap as u128) >> 64) as usize
}

/// The lock-free pointer → [`TraceValue`] table.
pub struct TraceTable {
    shards: [Shard; SHARDS],
    /// Serialises exclusive operations (grow, clear) and fork.
    exclusive: SpinLock,
    /// Whether an insert first looks for a trace of the same pointer (see
    /// [`TraceTable::frees_may_be_missed`]).
    checked: AtomicBool,
}

impl Default for TraceTable {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceTable {
    pub const fn new() -> Self {
        TraceTable {
            shards: [const { Shard::new() }; SHARDS],
            exclusive: SpinLock::new(),
            checked: AtomicBool::new(false),
        }
    }

    /// Says that some blocks in the table may have been freed without a
    /// `remove` (the hooks were out of the allocator chain for a while), so
    /// that their pointers can come back in an `insert`. Until the table is
    /// next cleared, an insert then replaces such a stale trace instead of
    /// adding a second one.
    ///
    /// Otherwise an insert takes the first free slot on its probe path: a
    /// pointer the allocator has just handed out cannot be in a table whose
    /// every free was seen, and looking for it anyway means probing to the
    /// next empty slot, past every tombstone a churning program leaves (ten
    /// probes per insert on average where one does).
    pub fn frees_may_be_missed(&self) {
        self.checked.store(true, Ordering::Relaxed);
    }

    /// Records `key` → `value`. `key` must be a real pointer (≥ 16).
    pub fn insert(&self, key: usize, value: TraceValue) -> Inserted {
        self.insert_with(key, || Some(value))
    }

    /// Records `key` → `make()`, calling `make` inside the shard's gate, so
    /// that an exclusive operation (such as clearing the tracer's other
    /// tables) cannot run while `make` does. `make` returning `None` records
    /// nothing (and the result is `Lost`).
    pub fn insert_with(&self, key: usize, make: impl FnOnce() -> Option<TraceValue>) -> Inserted {
        if key < FIRST_KEY {
            return Inserted::Lost;
        }
        let h = hash(key);
        let shard = &self.shards[shard_of(h)];
        let mut pass = shard.enter();
        let Some(value) = make() else {
            shard.leave(pass);
            return Inserted::Lost;
        };
        let packed = value.pack();
        let checked = self.checked.load(Ordering::Relaxed);
        loop {
            let r = Self::try_insert(shard, h, key, packed, checked);
            shard.leave(pass);
            match r {
                Some(r) => return r,
                None => {
                    if !self.grow(shard) {
                        return Inserted::Lost;
                    }
                    pass = shard.enter();
                }
            }
        }
    }

    /// Takes `slot`, found `free` (EMPTY or TOMBSTONE), for `key` → `packed`;
    /// false when another thread took it first.
    #[inline(always)]
    fn claim(shard: &Shard, slot: &Slot, free: usize, key: usize, packed: u64) -> bool {
        if slot
            .key
            .compare_exchange(free, RESERVED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        if free == EMPTY {
            shard.used.fetch_add(1, Ordering::Relaxed);
        }
        slot.value.store(packed, Ordering::Relaxed);
        slot.key.store(key, Ordering::Release);
        true
    }

    /// `None` means the shard is too full: grow it and retry.
    fn try_insert(
        shard: &Shard,
        h: u64,
        key: usize,
        packed: u64,
        checked: bool,
    ) -> Option<Inserted> {
        let slots = shard.slots();
        let cap = slots.len();
        if cap == 0 || shard.used.load(Ordering::Relaxed) * 100 >= cap * MAX_LOAD {
            return None;
        }
        let mut i = home_slot(h, cap);
        let mut tombstone: Option<usize> = None;
        let mut probes = 0;
        while probes < cap {
            let slot = &slots[i];
            let k = slot.key.load(Ordering::Acquire);
            if k == key {
                let old = slot.value.swap(packed, Ordering::AcqRel);
                return Some(Inserted::Replaced(TraceValue::unpack(old)));
            }
            if !checked && (k == TOMBSTONE || k == EMPTY) {
                // The first free slot (see `frees_may_be_missed`).
                if Self::claim(shard, slot, k, key, packed) {
                    return Some(Inserted::New);
                }
                continue; // lost the race for this slot: look at it again
            }
            if k == EMPTY {
                // The key is absent. Prefer reusing the first tombstone seen.
                if let Some(t) = tombstone {
                    if Self::claim(shard, &slots[t], TOMBSTONE, key, packed) {
                        return Some(Inserted::New);
                    }
                    tombstone = None;
                }
                if Self::claim(shard, slot, EMPTY, key, packed) {
                    return Some(Inserted::New);
                }
                // Lost the race for this slot: look at it again.
                continue;
            }
            if k == TOMBSTONE && tombstone.is_none() {
                tombstone = Some(i);
            }
            i = next_slot(i, cap);
            probes += 1;
        }
        None
    }

    /// Forgets `key`, returning its value if it was traced.
    pub fn remove(&self, key: usize) -> Option<TraceValue> {
        self.find(key, true)
    }

    /// The value of `key`, if traced.
    pub fn get(&self, key: usize) -> Option<TraceValue> {
        self.find(key, false)
    }

    fn find(&self, key: usize, remove: bool) -> Option<TraceValue> {
        if key < FIRST_KEY {
            return None;
        }
        let h = hash(key);
        let shard = &self.shards[shard_of(h)];
        let pass = shard.enter();
        let slots = shard.slots();
        let mut found = None;
        if !slots.is_empty() {
            let cap = slots.len();
            let mut i = home_slot(h, cap);
            for _ in 0..slots.len() {
                let slot = &slots[i];
                let k = slot.key.load(Ordering::Acquire);
                if k == key {
                    let v = slot.value.load(Ordering::Acquire);
                    if remove {
                        slot.key.store(TOMBSTONE, Ordering::Release);
                    }
                    found = Some(TraceValue::unpack(v));
                    break;
                }
                if k == EMPTY {
                    break;
                }
                i = next_slot(i, cap);
            }
        }
        shard.leave(pass);
        found
    }

    /// Grows (or cleans) a full shard. Returns false if memory ran out.
    fn grow(&self, shard: &Shard) -> bool {
        self.exclusive.lock();
        shard.lock_exclusive();
        let ok = Self::rehash(shard);
        shard.unlock_exclusive();
        self.exclusive.unlock();
        ok
    }

    /// Exclusive gate held.
    fn rehash(shard: &Shard) -> bool {
        let old = shard.slots();
        let cap = old.len();
        if cap != 0 && shard.used.load(Ordering::Relaxed) * 100 < cap * MAX_LOAD {
            return true; // someone else grew it meanwhile
        }
        let live = old
            .iter()
            .filter(|s| s.key.load(Ordering::Relaxed) >= FIRST_KEY)
            .count();
        // Rehash to REHASH_LOAD (which also drops the tombstones), so the
        // shard takes (MAX_LOAD - REHASH_LOAD)% of its capacity in inserts
        // before the next rehash: amortised O(1).
        let want = ((live + 1) * 100 / REHASH_LOAD)
            .div_ceil(CAPACITY_STEP)
            .saturating_mul(CAPACITY_STEP)
            .max(MIN_CAPACITY);
        // SAFETY: Slot is two atomics, valid when zeroed (EMPTY, value 0).
        let Some(new) = (unsafe { MappedArray::<Slot>::zeroed(want) }) else {
            return false;
        };

        for s in old {
            let k = s.key.load(Ordering::Relaxed);
            if k < FIRST_KEY {
                continue;
            }
            let mut i = home_slot(hash(k), want);
            while new[i].key.load(Ordering::Relaxed) != EMPTY {
                i = next_slot(i, want);
            }
            new[i]
                .value
                .store(s.value.load(Ordering::Relaxed), Ordering::Relaxed);
            new[i].key.store(k, Ordering::Relaxed);
        }
        shard.used.store(live, Ordering::Relaxed);
        shard.replace_slots(Some(new));
        true
    }

    /// Calls `f(key, value)` for every live entry. Each shard is read while
    /// other threads keep inserting and removing; every entry reported was
    /// live at the moment its slot was read, with its own value.
    pub fn for_each(&self, mut f: impl FnMut(usize, TraceValue)) {
        self.for_each_while(|k, v| {
            f(k, v);
            true
        });
    }

    /// As [`for_each`](Self::for_each), stopping as soon as `f` returns
    /// false.
    pub fn for_each_while(&self, mut f: impl FnMut(usize, TraceValue) -> bool) {
        for shard in &self.shards {
            let pass = shard.enter();
            let mut more = true;
            for slot in shard.slots() {
                let k = slot.key.load(Ordering::Acquire);
                if k < FIRST_KEY {
                    continue;
                }
                let v = slot.value.load(Ordering::Acquire);
                // A changed key means the value may belong to a newer entry.
                if slot.key.load(Ordering::Acquire) == k && !f(k, TraceValue::unpack(v)) {
                    more = false;
                    break;
                }
            }
            shard.leave(pass);
            if !more {
                return;
            }
        }
    }

    /// Takes every shard exclusively: no operation is in flight until the
    /// guard is dropped (other threads' operations wait at the gates).
    pub fn quiesce(&self) -> Quiesced<'_> {
        self.exclusive.lock();
        for shard in &self.shards {
            shard.close();
        }
        slow_side_barrier();
        for shard in &self.shards {
            shard.drain();
        }
        Quiesced { table: self }
    }

    /// Bytes of slot arrays currently mapped.
    pub fn memory(&self) -> usize {
        self.shards.iter().map(|s| s.capacity() * 16).sum()
    }

    /// Number of live entries (exact when nothing is in flight).
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.for_each(|_, _| n += 1);
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `pthread_atfork` prepare: no exclusive operation may be half done
    /// when the process forks.
    pub fn before_fork(&self) {
        self.exclusive.lock();
    }

    pub fn after_fork_parent(&self) {
        self.exclusive.unlock();
    }

    /// In the child only the forking thread exists: operations other threads
    /// had in flight will never leave their gates, so forget them.
    pub fn after_fork_child(&self) {
        for shard in &self.shards {
            shard.gate.store(0, Ordering::Release);
        }
        forget_other_threads();
        self.exclusive.reset();
    }
}

/// Every shard of a [`TraceTable`] held exclusively.
pub struct Quiesced<'a> {
    table: &'a TraceTable,
}

impl Quiesced<'_> {
    /// Calls `f(key, value)` for every live entry; exact, since nothing is
    /// in flight.
    pub fn for_each(&self, mut f: impl FnMut(usize, TraceValue)) {
        for shard in &self.table.shards {
            for slot in shard.slots() {
                let k = slot.key.load(Ordering::Acquire);
                if k >= FIRST_KEY {
                    f(k, TraceValue::unpack(slot.value.load(Ordering::Acquire)));
                }
            }
        }
    }

    /// Drops every entry and returns the slot memory to the kernel.
    pub fn clear(&self) {
        for shard in &self.table.shards {
            shard.replace_slots(None);
            shard.used.store(0, Ordering::Relaxed);
        }
        // No trace left, stale or not.
        self.table.checked.store(false, Ordering::Relaxed);
    }
}

impl Drop for Quiesced<'_> {
    fn drop(&mut self) {
        for shard in &self.table.shards {
            shard.unlock_exclusive();
        }
        self.table.exclusive.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Arc;

    fn v(size: u64, tb: u32) -> TraceValue {
        TraceValue {
            size,
            traceback: tb,
        }
    }

    #[test]
    fn insert_get_remove() {
        let t = TraceTable::new();
        assert_eq!(t.get(0x1000), None);
        assert_eq!(t.insert(0x1000, v(10, 1)), Inserted::New);
        assert_eq!(t.get(0x1000), Some(v(10, 1)));
        assert_eq!(t.insert(0x1000, v(20, 2)), Inserted::Replaced(v(10, 1)));
        assert_eq!(t.remove(0x1000), Some(v(20, 2)));
        assert_eq!(t.remove(0x1000), None);
        assert!(t.is_empty());
    }

    #[test]
    fn for_each_while_stops_when_told() {
        let t = TraceTable::new();
        for i in 1..=1000usize {
            t.insert(i * 16, v(1, 1));
        }
        let mut all = 0;
        t.for_each(|_, _| all += 1);
        assert_eq!(all, 1000);
        let mut seen = 0;
        t.for_each_while(|_, _| {
            seen += 1;
            seen < 10
        });
        assert_eq!(seen, 10);
    }

    #[test]
    fn values_saturate_instead_of_wrapping() {
        let t = TraceTable::new();
        t.insert(0x2000, v(u64::MAX, u32::MAX));
        assert_eq!(t.get(0x2000), Some(v(MAX_SIZE, MAX_TRACEBACK)));
    }

    #[test]
    fn grows_and_keeps_everything_against_a_model() {
        let t = TraceTable::new();
        // Keys come back without being removed first: stale traces.
        t.frees_may_be_missed();
        let mut model = HashMap::new();
        let mut x: u64 = 0x1234_5678;
        for round in 0..200_000u64 {
            // xorshift: deterministic pseudo-random pointers, 16-aligned.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = ((x % 50_000) as usize + 1) * 16;
            if round % 3 == 0 {
                assert_eq!(t.remove(key), model.remove(&key), "remove {key:#x}");
            } else {
                let val = v(round, (round % 1000) as u32);
                let expect = match model.insert(key, val) {
                    Some(old) => Inserted::Replaced(old),
                    None => Inserted::New,
                };
                assert_eq!(t.insert(key, val), expect);
            }
        }
        let mut seen = HashMap::new();
        t.for_each(|k, val| {
            assert!(seen.insert(k, val).is_none(), "duplicate key {k:#x}");
        });
        assert_eq!(seen, model);
        // Slots stay within a small multiple of what is live.
        assert!(t.memory() <= 16 * 8 * model.len().max(MIN_CAPACITY * SHARDS));
    }

    #[test]
    fn churn_as_an_allocator_makes_it_keeps_exactly_the_live_keys() {
        // Every key is removed before it comes back (each free seen): the
        // first free slot is taken, and no key is ever there twice, however
        // many tombstones the churn leaves.
        let t = TraceTable::new();
        let mut live: Vec<usize> = Vec::new();
        let mut free: Vec<usize> = (1..=30_000usize).map(|i| i * 16).collect();
        let mut x: u64 = 0x9E37_79B9;
        for round in 0..300_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x % 5 < 2 && !live.is_empty()) || free.is_empty() {
                let key = live.swap_remove((x as usize / 5) % live.len());
                assert!(t.remove(key).is_some(), "remove {key:#x}");
                free.push(key);
            } else {
                let key = free.swap_remove((x as usize / 5) % free.len());
                assert_eq!(t.insert(key, v(round, 7)), Inserted::New);
                live.push(key);
            }
        }
        let mut seen = HashMap::new();
        t.for_each(|k, val| {
            assert!(seen.insert(k, val).is_none(), "duplicate key {k:#x}");
        });
        let mut keys: Vec<usize> = seen.into_keys().collect();
        keys.sort_unstable();
        live.sort_unstable();
        assert_eq!(keys, live);
        for key in free.iter().take(1000) {
            assert_eq!(t.get(*key), None);
        }
    }

    #[test]
    fn after_missed_frees_an_insert_replaces_the_stale_trace() {
        let t = TraceTable::new();
        assert_eq!(t.insert(0x4000, v(10, 1)), Inserted::New);
        t.frees_may_be_missed();
        assert_eq!(t.insert(0x4000, v(20, 2)), Inserted::Replaced(v(10, 1)));
        // Clearing drops every trace, stale or not: back to first-free-slot.
        t.quiesce().clear();
        assert!(!t.checked.load(Ordering::Relaxed));
        assert_eq!(t.insert(0x4000, v(30, 3)), Inserted::New);
    }

    #[test]
    fn clear_empties_and_frees() {
        let t = TraceTable::new();
        for i in 1..10_000usize {
            t.insert(i * 16, v(1, 0));
        }
        assert!(t.memory() > 0);
        t.quiesce().clear();
        assert_eq!(t.memory(), 0);
        assert!(t.is_empty());
        t.insert(0x100, v(3, 3));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn concurrent_threads_never_lose_or_duplicate() {
        let t = Arc::new(TraceTable::new());
        let threads: Vec<_> = (0..8usize)
            .map(|tid| {
                let t = Arc::clone(&t);
                std::thread::spawn(move || {
                    // Each thread owns its keys (as an allocator guarantees),
                    // keeps the even ones and frees the odd ones.
                    for i in 0..40_000usize {
                        let key = (tid << 40) | ((i + 1) << 4);
                        t.insert(key, v(i as u64, tid as u32));
                        if i % 2 == 1 {
                            assert_eq!(t.remove(key), Some(v(i as u64, tid as u32)));
                        }
                    }
                })
            })
            .collect();
        // Meanwhile, read the table over and over.
        let reader = {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                for _ in 0..50 {
                    t.for_each(|k, val| assert_eq!(val.traceback as usize, k >> 40));
                }
            })
        };
        for th in threads {
            th.join().unwrap();
        }
        reader.join().unwrap();
        let mut total = 0u64;
        let mut n = 0;
        t.for_each(|k, val| {
            assert_eq!((k >> 4) & 1, 1, "only even i (odd key index) stay");
            total += val.size;
            n += 1;
        });
        assert_eq!(n, 8 * 20_000);
        let per_thread: u64 = (0..40_000u64).step_by(2).sum();
        assert_eq!(total, 8 * per_thread);
    }

    #[test]
    fn clear_while_threads_insert_is_safe() {
        let t = Arc::new(TraceTable::new());
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..4usize)
            .map(|tid| {
                let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let key = (tid << 40) | ((i % 100_000 + 1) << 4);
                        t.insert(key, v(1, 0));
                        t.remove(key);
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            t.quiesce().clear();
        }
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        t.for_each(|_, _| {});
    }
}
