//! Per stack, the traceback id of each total depth.
//!
//! A traceback is a stack (the kept frames) plus `total_nframe`, the depth
//! of the whole stack. A recursion allocates under the same few stacks at
//! thousands of depths, visiting neighbouring depths in turn. Interned one
//! by one (`intern.rs`), those (stack, depth) pairs are scattered: an index
//! slot and a record each, two cache misses per allocation. Here one bucket,
//! one cache line, holds the ids of [`PER_BUCKET`] neighbouring depths of a
//! stack: the id of depth d + 1 is found where the id of depth d was.
//!
//! Insert-only and lock-free. A bucket is claimed by a compare-exchange of
//! its key; a depth's id is stored once it is interned (any two threads
//! would store the same id). Fixed capacity: a lookup that finds neither its
//! bucket nor a free one within [`PROBES`] buckets answers `None`, and the
//! caller interns as it would without this map. The buckets are mapped
//! (`mem`) the first time one is claimed, never from the hooked allocators;
//! nothing here allocates otherwise, panics or calls Python.

use super::mem::MappedArray;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Depths per bucket: with the key, 64 bytes.
pub const PER_BUCKET: u32 = 14;
const BUCKET_BITS: u32 = 13;
const BUCKETS: usize = 1 << BUCKET_BITS;
/// Buckets looked at for one key (linear probing).
const PROBES: usize = 8;

/// `key`: 0 when free, else `(stack + 1) << 32 | depth / PER_BUCKET`;
/// `ids[depth % PER_BUCKET]`: the traceback id + 1, 0 when not known yet.
#[repr(C, align(64))]
struct Bucket {
    key: AtomicU64,
    ids: [AtomicU32; PER_BUCKET as usize],
}

const _: () = assert!(std::mem::size_of::<Bucket>() == 64);

pub struct TotalsMap {
    /// `BUCKETS` buckets, or null before the first claim.
    buckets: AtomicPtr<Bucket>,
}

impl Default for TotalsMap {
    fn default() -> Self {
        Self::new()
    }
}

impl TotalsMap {
    pub const fn new() -> Self {
        TotalsMap {
            buckets: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    fn buckets(&self) -> Option<&[Bucket]> {
        let p = self.buckets.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: a published array maps BUCKETS zeroed (valid) buckets and
        // stays mapped until `reset`, whose caller guarantees no user.
        Some(unsafe { std::slice::from_raw_parts(p, BUCKETS) })
    }

    fn buckets_or_map(&self) -> Option<&[Bucket]> {
        if let Some(b) = self.buckets() {
            return Some(b);
        }
        // SAFETY: all-zero is a valid Bucket (atomics).
        let (fresh, len) = unsafe { MappedArray::<Bucket>::zeroed(BUCKETS) }?.into_raw();
        if let Err(_theirs) = self.buckets.compare_exchange(
            std::ptr::null_mut(),
            fresh.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `fresh` came from `into_raw` just above, never shared.
            drop(unsafe { MappedArray::from_raw(fresh, len) });
        }
        self.buckets()
    }

    /// The bucket of `key` among `buckets`: its own, else (with `claim`) a
    /// free one it claims now; None when neither is within `PROBES`.
    #[inline]
    fn find(buckets: &[Bucket], key: u64, claim: bool) -> Option<&Bucket> {
        let home = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - BUCKET_BITS)) as usize;
        for i in 0..PROBES {
            let b = &buckets[(home + i) & (BUCKETS - 1)];
            let mut k = b.key.load(Ordering::Acquire);
            if k == 0 {
                if !claim {
                    return None;
                }
                k = match b
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => key,
                    Err(theirs) => theirs,
                };
            }
            if k == key {
                return Some(b);
            }
        }
        None
    }

    fn key(stack: u32, total: u32) -> (u64, usize) {
        let key = ((u64::from(stack) + 1) << 32) | u64::from(total / PER_BUCKET);
        (key, (total % PER_BUCKET) as usize)
    }

    /// The traceback id stored for `stack` at depth `total`, if any.
    #[inline]
    pub fn get(&self, stack: u32, total: u32) -> Option<u32> {
        let (key, at) = Self::key(stack, total);
        let b = Self::find(self.buckets()?, key, false)?;
        b.ids[at].load(Ordering::Acquire).checked_sub(1)
    }

    /// Stores `id` for `stack` at depth `total`; does nothing when there is
    /// no room (or no memory).
    pub fn set(&self, stack: u32, total: u32, id: u32) {
        let Some(stored) = id.checked_add(1) else {
            return;
        };
        let (key, at) = Self::key(stack, total);
        let Some(buckets) = self.buckets_or_map() else {
            return;
        };
        if let Some(b) = Self::find(buckets, key, true) {
            b.ids[at].store(stored, Ordering::Release);
        }
    }

    /// Forgets everything and unmaps the buckets.
    ///
    /// # Safety
    /// No other thread may be using the map during the call, and none may
    /// still hold a bucket of it (none does outside `get` and `set`).
    pub unsafe fn reset(&self) {
        let p = self.buckets.swap(std::ptr::null_mut(), Ordering::AcqRel);
        if let Some(p) = NonNull::new(p) {
            // SAFETY: a published array of BUCKETS buckets from `into_raw`;
            // no user (caller).
            drop(unsafe { MappedArray::from_raw(p, BUCKETS) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn stores_and_reads_back_per_stack_and_depth() {
        let m = TotalsMap::new();
        assert_eq!(m.get(3, 500), None);
        m.set(3, 500, 0);
        m.set(3, 501, 77);
        m.set(4, 500, 9);
        assert_eq!(m.get(3, 500), Some(0));
        assert_eq!(m.get(3, 501), Some(77));
        assert_eq!(m.get(4, 500), Some(9));
        assert_eq!(m.get(3, 502), None, "same bucket, depth not stored");
        assert_eq!(m.get(5, 500), None);
        assert_eq!(m.get(u32::MAX, u32::MAX), None);
        m.set(u32::MAX, u32::MAX, 5);
        assert_eq!(m.get(u32::MAX, u32::MAX), Some(5));
        m.set(1, 1, u32::MAX); // cannot be stored: ignored
        assert_eq!(m.get(1, 1), None);
        // SAFETY: no other user.
        unsafe { m.reset() };
        assert_eq!(m.get(3, 501), None);
        m.set(3, 501, 8);
        assert_eq!(m.get(3, 501), Some(8));
        // SAFETY: no other user.
        unsafe { m.reset() };
    }

    #[test]
    fn a_full_map_answers_none_and_never_a_wrong_id() {
        let m = TotalsMap::new();
        let stacks = (BUCKETS as u32) * 2;
        for s in 0..stacks {
            m.set(s, 7, s);
        }
        let mut kept = 0;
        for s in 0..stacks {
            if let Some(id) = m.get(s, 7) {
                assert_eq!(id, s);
                kept += 1;
            }
        }
        assert!(kept >= BUCKETS * 3 / 4, "{kept} of {BUCKETS} buckets used");
        assert!(kept <= BUCKETS);
        // SAFETY: no other user.
        unsafe { m.reset() };
    }

    #[test]
    fn threads_storing_the_same_pairs_agree() {
        let m = Arc::new(TotalsMap::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for stack in 0..64u32 {
                        for total in 0..300u32 {
                            let id = stack * 1000 + total;
                            if let Some(seen) = m.get(stack, total) {
                                assert_eq!(seen, id);
                            }
                            m.set(stack, total, id);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for stack in 0..64u32 {
            for total in 0..300u32 {
                assert_eq!(m.get(stack, total), Some(stack * 1000 + total));
            }
        }
        // SAFETY: every other user has been joined.
        unsafe { m.reset() };
    }
}
