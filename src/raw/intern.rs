//! Interning: byte keys → small dense ids, readable without locks.
//!
//! Tracebacks, frames and filenames are interned once and then referred to by
//! id. Lookups happen on every allocation, from any thread, so they take no
//! lock: records live in an append-only arena and the index publishes a
//! record's id with release ordering only after the record is written.
//! Inserts (a new traceback: rare once a program is warm) take a spin lock,
//! which also keeps ids unique. All memory comes from `mmap`.

use super::mem::{ChunkedArray, MappedArray};
use super::table::SpinLock;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// A 64-bit hash of a sequence of words (fast, not cryptographic; keys are
/// addresses and small integers, never attacker-chosen bytes on this path).
pub fn hash_words(words: &[u64]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3 ^ (words.len() as u64);
    for &w in words {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517C_C1B7_2722_0A95);
    }
    // Final avalanche so the high bits (used by the index) mix every word.
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h
}

/// Hash of an arbitrary byte string (filenames).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut words = [0u64; 1];
    let mut h = hash_words(&[bytes.len() as u64]);
    for chunk in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..chunk.len()].copy_from_slice(chunk);
        words[0] = u64::from_le_bytes(w) ^ h;
        h = hash_words(&words);
    }
    h
}

/// Chunks of each chunked structure here: the id → location vector's 32
/// chunks (`1024 << k` elements each) hold more than any u32 id can name.
const CHUNKS: usize = 32;

/// An append-only vector of `u64`, readable by index without locks. Appends
/// are serialised by the owner's lock.
struct ChunkedVec(ChunkedArray<AtomicU64, CHUNKS>);

impl ChunkedVec {
    const fn new() -> Self {
        // SAFETY: AtomicU64 is valid when zeroed.
        ChunkedVec(unsafe { ChunkedArray::new() })
    }

    fn get(&self, i: usize) -> Option<u64> {
        Some(self.0.get(i)?.load(Ordering::Acquire))
    }

    /// Owner's lock held. Returns false when memory ran out.
    fn set(&self, i: usize, v: u64) -> bool {
        let Some(slot) = self.0.get_or_map(i) else {
            return false;
        };
        slot.store(v, Ordering::Release);
        true
    }

    /// No concurrent user may exist.
    fn reset(&self) {
        // SAFETY: the caller guarantees no concurrent user (see `InternSet::reset`).
        unsafe { self.0.reset() }
    }
}

/// Append-only byte arena in chunks that never move.
struct Arena {
    chunks: [AtomicPtr<u8>; CHUNKS],
    /// Mapped size of each chunk (a chunk holding one huge record is larger
    /// than nominal), so `reset` unmaps exactly what was mapped.
    sizes: [AtomicUsize; CHUNKS],
    /// Chunk being filled and the offset of its first free byte. Lock held.
    current: AtomicUsize,
    offset: AtomicUsize,
}

const ARENA_BASE: usize = 64 * 1024;

impl Arena {
    const fn new() -> Self {
        Arena {
            chunks: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            sizes: [const { AtomicUsize::new(0) }; CHUNKS],
            current: AtomicUsize::new(0),
            offset: AtomicUsize::new(0),
        }
    }

    /// Copies `parts` contiguously, 8-aligned; returns the location
    /// (`chunk << 40 | offset`). Lock held.
    fn push(&self, parts: &[&[u8]]) -> Option<u64> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let need = len.div_ceil(8) * 8;
        let mut c = self.current.load(Ordering::Relaxed);
        let mut off = self.offset.load(Ordering::Relaxed);
        loop {
            if c >= CHUNKS {
                return None;
            }
            if self.chunks[c].load(Ordering::Relaxed).is_null() {
                let size = (ARENA_BASE << c.min(12)).max(need);
                // SAFETY: u8 is valid when zeroed.
                let arr = unsafe { MappedArray::<u8>::zeroed(size) }?;
                self.sizes[c].store(size, Ordering::Relaxed);
                self.chunks[c].store(arr.into_raw().0.as_ptr(), Ordering::Release);
                off = 0;
            }
            if off + need <= self.sizes[c].load(Ordering::Relaxed) {
                break;
            }
            c += 1;
            off = 0;
        }
        let base = self.chunks[c].load(Ordering::Relaxed);
        let mut at = off;
        for p in parts {
            // SAFETY: [off, off + need) lies inside chunk `c` (checked above);
            // the bytes are not yet published, so no reader can see them.
            unsafe { std::ptr::copy_nonoverlapping(p.as_ptr(), base.add(at), p.len()) };
            at += p.len();
        }
        self.current.store(c, Ordering::Relaxed);
        self.offset.store(off + need, Ordering::Relaxed);
        Some(((c as u64) << 40) | off as u64)
    }

    /// # Safety
    /// `loc` must come from `push` on this arena (since the last reset) and
    /// `len` must not exceed what was pushed there.
    unsafe fn bytes(&self, loc: u64, len: usize) -> &[u8] {
        let c = (loc >> 40) as usize;
        let off = (loc & ((1 << 40) - 1)) as usize;
        let base = self.chunks[c].load(Ordering::Acquire);
        // SAFETY: the caller guarantees the record exists; its chunk pointer
        // was published (Release) before its location was.
        unsafe { std::slice::from_raw_parts(base.add(off), len) }
    }

    /// No concurrent user may exist.
    fn reset(&self) {
        for (slot, size) in self.chunks.iter().zip(&self.sizes) {
            let p = slot.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if let Some(p) = std::ptr::NonNull::new(p) {
                let size = size.swap(0, Ordering::Relaxed);
                // SAFETY: mapped by `push` with exactly `size` bytes; no
                // reader remains (caller's guarantee).
                drop(unsafe { MappedArray::from_raw(p, size) });
            }
        }
        self.current.store(0, Ordering::Relaxed);
        self.offset.store(0, Ordering::Relaxed);
    }
}

/// An index slot for record `id` of a key hashing to `hash`.
fn index_entry(hash: u64, id: u32) -> u64 {
    (u64::from(hash as u32) << 32) | u64::from(id + 1)
}

/// Record header in the arena: hash (8), value (8), key length (8).
const HEADER: usize = 24;
const MIN_INDEX_BITS: usize = 10;

/// An interning set: byte key → (id, value). Ids are dense, from 0.
pub struct InternSet {
    lock: SpinLock,
    /// Open-addressing index, 2^bits slots, each `tag << 32 | (id + 1)`
    /// (0 = empty), where `tag` is the low half of the key's hash: a probe
    /// that meets another key is rejected without reading its record.
    index: AtomicPtr<AtomicU64>,
    index_bits: AtomicUsize,
    /// Replaced indexes, kept until `reset` because lock-free readers may
    /// still be probing them. Each is half the size of its successor.
    retired: [AtomicPtr<AtomicU64>; CHUNKS],
    /// id → arena location of the record.
    locs: ChunkedVec,
    arena: Arena,
    count: AtomicU32,
    max_ids: u32,
}

/// A record found in an [`InternSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interned {
    pub id: u32,
    pub value: u64,
}

impl InternSet {
    /// A set that hands out at most `max_ids` ids.
    pub const fn new(max_ids: u32) -> Self {
        InternSet {
            lock: SpinLock::new(),
            index: AtomicPtr::new(std::ptr::null_mut()),
            index_bits: AtomicUsize::new(0),
            retired: [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS],
            locs: ChunkedVec::new(),
            arena: Arena::new(),
            count: AtomicU32::new(0),
            max_ids,
        }
    }

    /// Number of ids handed out.
    pub fn len(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key and value of record `id`.
    pub fn get(&self, id: u32) -> Option<(&[u8], u64)> {
        if id >= self.len() {
            return None;
        }
        let loc = self.locs.get(id as usize)?;
        // SAFETY: record `id` was pushed before `locs[id]` and `count` were
        // published (Release; Acquire above); a header is HEADER bytes.
        let head = unsafe { self.arena.bytes(loc, HEADER) };
        let value = Self::value_at(head);
        let len = u64::from_le_bytes(head[16..24].try_into().ok()?) as usize;
        // SAFETY: the record was pushed with HEADER + len bytes.
        let all = unsafe { self.arena.bytes(loc, HEADER + len) };
        Some((&all[HEADER..], value))
    }

    /// Replaces the value of record `id` (any thread, no lock): for values
    /// that are a cache of something derived from the key.
    pub fn set_value(&self, id: u32, value: u64) {
        if id >= self.len() {
            return;
        }
        if let Some(loc) = self.locs.get(id as usize) {
            // Its value is the 8-aligned u64 at offset 8, only ever accessed
            // atomically once published (readers use `value_at`).
            // SAFETY: record `id` exists (published before `count`).
            let head = unsafe { self.arena.bytes(loc, HEADER) };
            // SAFETY: as above: the aligned value word of a live record.
            let cell = unsafe { &*(head.as_ptr().add(8) as *const AtomicU64) };
            cell.store(value, Ordering::Release);
        }
    }

    fn value_at(head: &[u8]) -> u64 {
        // Atomic because `set_value` may write the word concurrently.
        // SAFETY: `head` is a published, 8-aligned record header of HEADER bytes.
        unsafe { &*(head.as_ptr().add(8) as *const AtomicU64) }.load(Ordering::Acquire)
    }

    fn record_matches(&self, id: u32, hash: u64, key: &[u8]) -> Option<u64> {
        let loc = self.locs.get(id as usize)?;
        // SAFETY: ids in the index were published after their record and
        // location; the header is HEADER bytes.
        let head = unsafe { self.arena.bytes(loc, HEADER) };
        if u64::from_le_bytes(head[0..8].try_into().ok()?) != hash {
            return None;
        }
        let len = u64::from_le_bytes(head[16..24].try_into().ok()?) as usize;
        if len != key.len() {
            return None;
        }
        // SAFETY: the record has HEADER + len bytes.
        let all = unsafe { self.arena.bytes(loc, HEADER + len) };
        if &all[HEADER..] != key {
            return None;
        }
        Some(Self::value_at(head))
    }

    fn index_slice(&self) -> &[AtomicU64] {
        let p = self.index.load(Ordering::Acquire);
        let bits = self.index_bits.load(Ordering::Acquire);
        if p.is_null() || bits == 0 {
            return &[];
        }
        // `index` is published after `index_bits`; replaced indexes stay
        // mapped until `reset` (no concurrent readers); a newer `bits` with an
        // older pointer is clamped by `mapped_len`, since indexes only grow.
        // SAFETY: so `p` maps at least the slots this slice covers.
        unsafe { std::slice::from_raw_parts(p, (1usize << bits).min(self.mapped_len(p))) }
    }

    fn mapped_len(&self, p: *mut AtomicU64) -> usize {
        if p == self.index.load(Ordering::Acquire) {
            return 1 << self.index_bits.load(Ordering::Acquire);
        }
        // An index retired after this reader loaded it: retired[i] has
        // 2^(MIN_INDEX_BITS + i) slots.
        for (i, r) in self.retired.iter().enumerate() {
            if r.load(Ordering::Acquire) == p {
                return 1 << (MIN_INDEX_BITS + i);
            }
        }
        0
    }

    /// Looks `key` up without taking the lock.
    pub fn find(&self, hash: u64, key: &[u8]) -> Option<Interned> {
        let index = self.index_slice();
        if index.is_empty() {
            return None;
        }
        let mask = index.len() - 1;
        let mut i = (hash >> 32) as usize & mask;
        let tag = hash as u32;
        for _ in 0..index.len() {
            let slot = index[i].load(Ordering::Acquire);
            if slot == 0 {
                return None;
            }
            if (slot >> 32) as u32 == tag {
                let id = (slot as u32).wrapping_sub(1);
                if let Some(value) = self.record_matches(id, hash, key) {
                    return Some(Interned { id, value });
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Finds `key` or adds it with `value`. `None` when the set is full or
    /// memory ran out.
    pub fn insert(&self, hash: u64, key: &[u8], value: u64) -> Option<Interned> {
        self.lock.lock();
        let r = self.insert_locked(hash, key, value);
        self.lock.unlock();
        r
    }

    fn insert_locked(&self, hash: u64, key: &[u8], value: u64) -> Option<Interned> {
        if let Some(found) = self.find(hash, key) {
            return Some(found);
        }
        let id = self.count.load(Ordering::Relaxed);
        if id >= self.max_ids {
            return None;
        }
        let bits = self.index_bits.load(Ordering::Relaxed);
        if bits == 0 || (id as usize + 1) * 2 > (1usize << bits) {
            self.grow_index()?;
        }
        let loc = self.arena.push(&[
            &hash.to_le_bytes(),
            &value.to_le_bytes(),
            &(key.len() as u64).to_le_bytes(),
            key,
        ])?;
        if !self.locs.set(id as usize, loc) {
            return None;
        }
        let index = self.index_slice();
        let mask = index.len() - 1;
        let mut i = (hash >> 32) as usize & mask;
        while index[i].load(Ordering::Relaxed) != 0 {
            i = (i + 1) & mask;
        }
        index[i].store(index_entry(hash, id), Ordering::Release);
        self.count.store(id + 1, Ordering::Release);
        Some(Interned { id, value })
    }

    /// Lock held: doubles the index (or creates it).
    fn grow_index(&self) -> Option<()> {
        let old_bits = self.index_bits.load(Ordering::Relaxed);
        let bits = if old_bits == 0 {
            MIN_INDEX_BITS
        } else {
            old_bits + 1
        };
        if bits - MIN_INDEX_BITS >= CHUNKS {
            return None;
        }
        // SAFETY: AtomicU64 is valid when zeroed.
        let new = unsafe { MappedArray::<AtomicU64>::zeroed(1 << bits) }?;
        let mask = (1usize << bits) - 1;
        for id in 0..self.count.load(Ordering::Relaxed) {
            let loc = self.locs.get(id as usize)?;
            // SAFETY: record `id` exists; header is HEADER bytes.
            let head = unsafe { self.arena.bytes(loc, HEADER) };
            let hash = u64::from_le_bytes(head[0..8].try_into().ok()?);
            let mut i = (hash >> 32) as usize & mask;
            while new[i].load(Ordering::Relaxed) != 0 {
                i = (i + 1) & mask;
            }
            new[i].store(index_entry(hash, id), Ordering::Relaxed);
        }
        let old = self.index.load(Ordering::Relaxed);
        if !old.is_null() {
            self.retired[old_bits - MIN_INDEX_BITS].store(old, Ordering::Release);
        }
        // Publish the size first: a reader pairing the new size with the old
        // pointer is bounded by `mapped_len`.
        let (ptr, _) = new.into_raw();
        self.index_bits.store(bits, Ordering::Release);
        self.index.store(ptr.as_ptr(), Ordering::Release);
        Some(())
    }

    /// Forgets everything and unmaps the memory.
    ///
    /// # Safety
    /// No other thread may be using the set (finding, inserting or holding a
    /// slice returned by `get`) during or after the call.
    pub unsafe fn reset(&self) {
        let bits = self.index_bits.swap(0, Ordering::AcqRel);
        let p = self.index.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if let Some(p) = std::ptr::NonNull::new(p) {
            // SAFETY: the current index has 2^bits slots; no reader (caller).
            drop(unsafe { MappedArray::from_raw(p, 1 << bits) });
        }
        for (i, r) in self.retired.iter().enumerate() {
            let p = r.swap(std::ptr::null_mut(), Ordering::AcqRel);
            if let Some(p) = std::ptr::NonNull::new(p) {
                // SAFETY: retired[i] has 2^(MIN_INDEX_BITS + i) slots; no reader.
                drop(unsafe { MappedArray::from_raw(p, 1 << (MIN_INDEX_BITS + i)) });
            }
        }
        self.locs.reset();
        self.arena.reset();
        self.count.store(0, Ordering::Release);
    }

    /// `pthread_atfork` prepare: no insert may be half done at fork.
    pub fn before_fork(&self) {
        self.lock.lock();
    }

    pub fn after_fork(&self) {
        self.lock.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn interns_once_and_reads_back() {
        let s = InternSet::new(u32::MAX);
        let a = s.insert(hash_bytes(b"a.py"), b"a.py", 7).unwrap();
        let b = s.insert(hash_bytes(b"b.py"), b"b.py", 8).unwrap();
        assert_eq!((a.id, b.id), (0, 1));
        assert_eq!(s.insert(hash_bytes(b"a.py"), b"a.py", 99), Some(a));
        assert_eq!(s.find(hash_bytes(b"b.py"), b"b.py"), Some(b));
        assert_eq!(s.find(hash_bytes(b"c.py"), b"c.py"), None);
        assert_eq!(s.get(1), Some((&b"b.py"[..], 8)));
        assert_eq!(s.get(2), None);
    }

    #[test]
    fn equal_hashes_with_different_keys_stay_apart() {
        let s = InternSet::new(u32::MAX);
        let x = s.insert(42, b"x", 1).unwrap();
        let y = s.insert(42, b"y", 2).unwrap();
        assert_ne!(x.id, y.id);
        assert_eq!(s.find(42, b"y").unwrap().value, 2);
    }

    #[test]
    fn many_keys_grow_the_index_and_arena() {
        let s = InternSet::new(u32::MAX);
        let big = vec![0xABu8; 200_000]; // larger than a nominal arena chunk
        let big_id = s.insert(hash_bytes(&big), &big, 5).unwrap().id;
        for i in 0..100_000u64 {
            let key = i.to_le_bytes();
            let got = s.insert(hash_words(&[i]), &key, i).unwrap();
            assert_eq!(got.id as u64, i + 1);
        }
        for i in (0..100_000u64).step_by(7) {
            let key = i.to_le_bytes();
            assert_eq!(s.find(hash_words(&[i]), &key).unwrap().value, i);
        }
        assert_eq!(s.get(big_id).unwrap().0, &big[..]);
        // SAFETY: no other thread uses `s`.
        unsafe { s.reset() };
        assert!(s.is_empty());
        assert_eq!(s.find(hash_words(&[3]), &3u64.to_le_bytes()), None);
    }

    #[test]
    fn values_can_be_replaced_in_place() {
        let s = InternSet::new(u32::MAX);
        let a = s.insert(hash_bytes(b"k"), b"k", 1).unwrap();
        s.set_value(a.id, 42);
        assert_eq!(s.find(hash_bytes(b"k"), b"k").unwrap().value, 42);
        assert_eq!(s.get(a.id).unwrap().1, 42);
        s.set_value(7, 1); // no such record: ignored
    }

    #[test]
    fn respects_max_ids() {
        let s = InternSet::new(2);
        assert!(s.insert(1, b"a", 0).is_some());
        assert!(s.insert(2, b"b", 0).is_some());
        assert!(s.insert(3, b"c", 0).is_none());
        assert!(
            s.insert(1, b"a", 0).is_some(),
            "existing keys are still found"
        );
    }

    #[test]
    fn concurrent_inserts_agree_on_ids() {
        let s = Arc::new(InternSet::new(u32::MAX));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = Arc::clone(&s);
                std::thread::spawn(move || {
                    (0..20_000u64)
                        .map(|i| {
                            let key = (i % 5_000).to_le_bytes();
                            let h = hash_words(&[i % 5_000]);
                            match s.find(h, &key) {
                                Some(hit) => hit.id,
                                None => s.insert(h, &key, 0).unwrap().id,
                            }
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<u32>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(s.len(), 5_000);
        for r in &results[1..] {
            assert_eq!(r, &results[0]);
        }
    }
}
