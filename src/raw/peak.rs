//! Where the memory was at the peak: while a watch is on, bytes and blocks
//! allocated minus freed per traceback since the watch began, and their
//! values at the moment the traced total was last at its highest.
//!
//! Copying every counter at each new peak would cost a pass over all of
//! them per allocation while memory grows. Instead each new peak only bumps
//! an epoch, and a counter saves its value lazily, the first time it is
//! touched after that bump: a counter untouched since the last peak still
//! holds its value at the peak. Reading resolves the same way.
//!
//! The state word holds the watch generation (high 16 bits, so a new watch
//! discards every counter without a pass over them) and the peak epoch (low
//! 48 bits). Updates are plain atomic loads and stores, not read-modify-write
//! instructions nor one transaction: two threads updating the same traceback
//! at the same instant (possible only for RAW blocks, allocated without the
//! GIL) can blur its figure, or lose one of the two changes. The totals the
//! tracer reports, and a memory limit's verdict, do not depend on this.
//!
//! Counters live in a [`ChunkedArray`]: chunks mapped on first use (never
//! through the hooked allocators) and kept for the life of the process.
//!
//! Reading walks only the tracebacks the watch touched: the first update of
//! a counter in a watch appends its id to a list (another chunked array), so
//! a watch over a short test costs a pass over the few tracebacks it saw, not
//! over every traceback the process ever interned. Two threads touching the
//! same counter first at the same instant may both append it; reading
//! removes duplicates. Should the list ever be full, reading falls back to a
//! pass over all counters.

use super::mem::ChunkedArray;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};

const GEN_SHIFT: u32 = 48;
const EPOCH_MASK: u64 = (1 << GEN_SHIFT) - 1;

/// 15 chunks (`1024 << k` counters each) name 2^25 - 2^10 ids, more than
/// the 2^24 traceback ids the trace table can store.
const CHUNKS: usize = 15;

/// One traceback's counters.
struct Counter {
    /// `state` when last touched (generation and epoch).
    seen: AtomicU64,
    bytes: AtomicI64,
    blocks: AtomicI64,
    /// `bytes` and `blocks` at the peak of epoch `seen & EPOCH_MASK`.
    peak_bytes: AtomicI64,
    peak_blocks: AtomicI64,
}

/// Per-traceback counters and their values at the peak. One instance lives
/// in the tracer; tests make their own.
pub struct PeakWatch {
    active: AtomicBool,
    state: AtomicU64,
    counters: ChunkedArray<Counter, CHUNKS>,
    /// Ids of the counters the current watch touched, `touched_len` of them
    /// (possibly with duplicates; more than the array holds: `overflowed`).
    touched: ChunkedArray<AtomicU32, CHUNKS>,
    touched_len: AtomicUsize,
    overflowed: AtomicBool,
}

/// What `PeakWatch::sites` reports for one traceback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Site {
    pub traceback: u32,
    /// Bytes and blocks allocated minus freed since the watch began, at the peak.
    pub peak_bytes: i64,
    pub peak_blocks: i64,
    /// The same, now.
    pub bytes: i64,
    pub blocks: i64,
}

impl Default for PeakWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl PeakWatch {
    pub const fn new() -> Self {
        PeakWatch {
            active: AtomicBool::new(false),
            state: AtomicU64::new(0),
            // SAFETY: Counter is atomics only, valid when zeroed.
            counters: unsafe { ChunkedArray::new() },
            // SAFETY: AtomicU32 is valid when zeroed.
            touched: unsafe { ChunkedArray::new() },
            touched_len: AtomicUsize::new(0),
            overflowed: AtomicBool::new(false),
        }
    }

    #[inline(always)]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Starts a new watch (discarding the last one's counters) or stops the
    /// current one (its counters stay readable until the next start).
    /// Returns whether a watch was on.
    pub fn set_active(&self, on: bool) -> bool {
        if on {
            let generation = (self.state.load(Ordering::Relaxed) >> GEN_SHIFT).wrapping_add(1);
            // Generation 0 is never used, so zeroed counters are always stale.
            let generation = if generation & 0xffff == 0 {
                1
            } else {
                generation & 0xffff
            };
            // The list empties before the new generation is published
            // (release/acquire with `add`): a thread that sees the new
            // generation appends to the emptied list, and one that still saw
            // the old one leaves its counter stale, to be appended again at
            // its next update.
            self.touched_len.store(0, Ordering::Relaxed);
            self.overflowed.store(false, Ordering::Relaxed);
            self.state.store(generation << GEN_SHIFT, Ordering::Release);
        }
        self.active.swap(on, Ordering::Relaxed)
    }

    /// The memory just reached a new peak. Hook path.
    #[inline]
    pub fn new_peak(&self) {
        let s = self.state.load(Ordering::Relaxed);
        if s & EPOCH_MASK != EPOCH_MASK {
            self.state.store(s + 1, Ordering::Relaxed);
        }
    }

    /// Hook path: `traceback` gained (or, negative, lost) `bytes` in `blocks`.
    /// Maps a chunk the first time an id in it is seen; if the kernel refuses,
    /// the change is not counted.
    #[inline]
    pub fn add(&self, traceback: u32, bytes: i64, blocks: i64) {
        let Some(c) = self.counters.get_or_map(traceback as usize) else {
            return; // the kernel refused a chunk: not counted
        };
        let state = self.state.load(Ordering::Acquire);
        let seen = c.seen.load(Ordering::Relaxed);
        if seen != state {
            if seen >> GEN_SHIFT != state >> GEN_SHIFT {
                // Left over from an earlier watch (or never touched): start
                // from zero, and note that this watch touched it.
                self.note_touched(traceback);
                c.bytes.store(0, Ordering::Relaxed);
                c.blocks.store(0, Ordering::Relaxed);
                c.peak_bytes.store(0, Ordering::Relaxed);
                c.peak_blocks.store(0, Ordering::Relaxed);
            } else {
                // Untouched since an earlier peak: its value now is its value then.
                c.peak_bytes
                    .store(c.bytes.load(Ordering::Relaxed), Ordering::Relaxed);
                c.peak_blocks
                    .store(c.blocks.load(Ordering::Relaxed), Ordering::Relaxed);
            }
            c.seen.store(state, Ordering::Relaxed);
        }
        // Loads and stores, not read-modify-writes: a locked add on every
        // allocation and free was most of what a watch cost. With the GIL
        // held (every object allocation) nothing else updates the counter
        // meanwhile; see the module's notes for RAW blocks.
        c.bytes.store(
            c.bytes.load(Ordering::Relaxed).wrapping_add(bytes),
            Ordering::Relaxed,
        );
        c.blocks.store(
            c.blocks.load(Ordering::Relaxed).wrapping_add(blocks),
            Ordering::Relaxed,
        );
    }

    /// Hook path: appends `traceback` to the list of touched counters.
    #[inline]
    fn note_touched(&self, traceback: u32) {
        let i = self.touched_len.fetch_add(1, Ordering::Relaxed);
        match self.touched.get_or_map(i) {
            Some(slot) => slot.store(traceback, Ordering::Relaxed),
            None => self.overflowed.store(true, Ordering::Relaxed),
        }
    }

    /// Every traceback the current (or last) watch counted, by id, with its
    /// values at the peak and now. Tracebacks at zero in both are left out.
    pub fn sites(&self) -> Vec<Site> {
        let state = self.state.load(Ordering::Acquire);
        let mut out = Vec::new();
        let len = self.touched_len.load(Ordering::Relaxed);
        if self.overflowed.load(Ordering::Relaxed) {
            self.counters.for_each_chunk(|first, chunk| {
                for (off, c) in chunk.iter().enumerate() {
                    Self::read(c, (first + off) as u32, state, &mut out);
                }
            });
            return out;
        }
        let mut ids: Vec<u32> = (0..len)
            .filter_map(|i| self.touched.get(i).map(|t| t.load(Ordering::Relaxed)))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            if let Some(c) = self.counters.get(id as usize) {
                Self::read(c, id, state, &mut out);
            }
        }
        out
    }

    /// Appends counter `c` (id `traceback`) to `out` if the watch of `state`
    /// counted anything for it.
    fn read(c: &Counter, traceback: u32, state: u64, out: &mut Vec<Site>) {
        let seen = c.seen.load(Ordering::Relaxed);
        if seen == 0 || seen >> GEN_SHIFT != state >> GEN_SHIFT {
            return;
        }
        let (bytes, blocks) = (
            c.bytes.load(Ordering::Relaxed),
            c.blocks.load(Ordering::Relaxed),
        );
        let (peak_bytes, peak_blocks) = if seen == state {
            (
                c.peak_bytes.load(Ordering::Relaxed),
                c.peak_blocks.load(Ordering::Relaxed),
            )
        } else {
            (bytes, blocks)
        };
        if bytes == 0 && blocks == 0 && peak_bytes == 0 && peak_blocks == 0 {
            return;
        }
        out.push(Site {
            traceback,
            peak_bytes,
            peak_blocks,
            bytes,
            blocks,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(w: &PeakWatch, tb: u32) -> Option<Site> {
        w.sites().into_iter().find(|s| s.traceback == tb)
    }

    #[test]
    fn values_at_the_peak_are_kept_lazily() {
        let w = PeakWatch::new();
        w.set_active(true);
        // a: 100 then freed; b: 50 kept; the peak (150) is with both alive.
        w.add(1, 100, 1);
        w.new_peak();
        w.add(2, 50, 1);
        w.new_peak();
        w.add(1, -100, -1);
        w.add(3, 10, 1); // below the peak: no new epoch
        let a = find(&w, 1).unwrap();
        assert_eq!(
            (a.peak_bytes, a.peak_blocks, a.bytes, a.blocks),
            (100, 1, 0, 0)
        );
        let b = find(&w, 2).unwrap();
        assert_eq!((b.peak_bytes, b.bytes), (50, 50));
        let c = find(&w, 3).unwrap();
        assert_eq!((c.peak_bytes, c.bytes), (0, 10));
    }

    #[test]
    fn a_new_watch_forgets_the_old_one() {
        let w = PeakWatch::new();
        w.set_active(true);
        w.add(5, 64, 1);
        w.new_peak();
        assert!(w.set_active(false));
        assert_eq!(find(&w, 5).map(|s| s.peak_bytes), Some(64));
        assert!(!w.set_active(true));
        assert_eq!(find(&w, 5), None);
        w.add(5, -64, -1); // freed in the new watch: allocated before it
        let s = find(&w, 5).unwrap();
        assert_eq!((s.peak_bytes, s.bytes), (0, -64));
    }

    #[test]
    fn large_ids_get_their_own_chunks() {
        let w = PeakWatch::new();
        w.set_active(true);
        let big = crate::raw::table::MAX_TRACEBACK;
        w.add(big, 7, 1);
        w.add(1023, 1, 1);
        w.add(1024, 2, 1);
        w.new_peak();
        let ids: Vec<u32> = w.sites().iter().map(|s| s.traceback).collect();
        assert_eq!(ids, vec![1023, 1024, big]);
        assert!(crate::raw::mem::chunk_locate(big as usize).0 < CHUNKS);
    }

    #[test]
    fn reading_walks_only_what_this_watch_touched() {
        let w = PeakWatch::new();
        w.set_active(true);
        for id in 0..5000 {
            w.add(id, 8, 1);
        }
        w.set_active(true); // a new watch: the old ids are not in its list
        w.add(4000, 16, 1);
        w.add(7, 16, 1);
        w.add(4000, -16, -1);
        w.new_peak();
        w.add(7, 16, 1); // touched twice, listed once
        assert_eq!(w.touched_len.load(Ordering::Relaxed), 2);
        let sites = w.sites();
        let ids: Vec<u32> = sites.iter().map(|s| s.traceback).collect();
        assert_eq!(ids, vec![7]); // 4000 is back to zero in both
        assert_eq!((sites[0].peak_bytes, sites[0].bytes), (16, 32));
    }

    #[test]
    fn duplicates_in_the_list_are_reported_once() {
        let w = PeakWatch::new();
        w.set_active(true);
        w.add(3, 10, 1);
        w.note_touched(3); // as a racing thread would
        assert_eq!(w.sites().len(), 1);
    }
}
