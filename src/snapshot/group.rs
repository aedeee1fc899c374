//! Grouping traces into statistics (`Snapshot.statistics`) and diffing two
//! snapshots (`Snapshot.compare_to`), with exactly the results and the order
//! of CPython's `Lib/tracemalloc.py`, computed over the interned
//! [`SnapshotData`] instead of Python tuples.
//!
//! The stdlib semantics this module reproduces (read from `Lib/tracemalloc.py`):
//!
//! - Keys. `lineno`: the most recent frame. `filename`: `(filename of the most
//!   recent frame, 0)`. `traceback`: all frames; `total_nframe` is *not* part
//!   of the key (stdlib builds the key as `Traceback(frames)`), so two
//!   tracebacks differing only in `total_nframe` share one statistic.
//! - Cumulative mode (`lineno` and `filename` only) adds a trace to the key of
//!   *every frame* of its traceback, once per frame: a recursive traceback
//!   that shows `a.py:3` twice adds the trace's size and count to `a.py:3`
//!   twice, and `filename` adds it once per frame in that file. (This is what
//!   the stdlib loop `for frame in trace_traceback` does; it does not
//!   deduplicate keys within a traceback.)
//! - Order. `statistics` sorts with `reverse=True` by `(size, count,
//!   traceback)`, `compare_to` by `(abs(size_diff), size, abs(count_diff),
//!   count, traceback)`. Keys are unique, so this is a strict total order and
//!   stability does not matter. A `Traceback` compares its `_frames` tuple,
//!   which the stdlib stores *reversed* (oldest frame first); a frame compares
//!   as the tuple `(filename, lineno)`; strings compare by code point, which
//!   is the byte order of their UTF-8 encoding; a tuple that is a prefix of
//!   another is smaller.
//! - Errors: see [`GroupError`]; the texts match the stdlib's `ValueError`s.
//!
//! One deliberate difference: CPython's engine never records an empty
//! traceback (it stores `("<unknown>", 0)` instead), and stdlib's `filename`
//! grouping would raise `IndexError` on one. Here an empty traceback groups
//! under the empty key for all three key types, and contributes nothing in
//! cumulative mode (as in stdlib).
//!
//! Arithmetic: sizes and counts are summed with saturating `u64` addition
//! (a real process cannot hold 2^64 bytes; only a hostile file can get
//! there). Diffs are computed exactly in `i128` and saturated to `i64` in the
//! result; sorting uses the exact absolute difference (`u64::abs_diff`).

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::fmt;
use std::str::FromStr;

use ahash::AHashMap;

use super::{FilenameIdx, Frame, SnapshotData};

/// How traces are grouped: the `key_type` argument of `statistics()` and
/// `compare_to()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    Traceback,
    Lineno,
    Filename,
}

impl KeyType {
    /// The stdlib spelling, as accepted by [`KeyType::from_str`].
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::Traceback => "traceback",
            KeyType::Lineno => "lineno",
            KeyType::Filename => "filename",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = GroupError;

    /// Exactly `"traceback"`, `"lineno"` or `"filename"` (case-sensitive, like
    /// stdlib's `key_type not in (...)` check).
    fn from_str(s: &str) -> Result<Self, GroupError> {
        match s {
            "traceback" => Ok(KeyType::Traceback),
            "lineno" => Ok(KeyType::Lineno),
            "filename" => Ok(KeyType::Filename),
            _ => Err(GroupError::UnknownKeyType(s.to_owned())),
        }
    }
}

/// Why a grouping was refused. The first two map to `ValueError` in Python,
/// and their `Display` text is the stdlib's message, character for character
/// (including its "cannot by used" typo: code written for tracemalloc may
/// match on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupError {
    /// `unknown key_type: 'foo'` (the key type shown with Python's `repr`).
    UnknownKeyType(String),
    /// `cumulative mode cannot by used with key type 'traceback'`.
    CumulativeNotSupported(KeyType),
    /// `compare_to` found more distinct filenames in the two snapshots
    /// together than a [`FilenameIdx`] can number. Unreachable in practice
    /// (it needs over four billion strings); reported rather than wrapped.
    TooManyFilenames,
}

impl fmt::Display for GroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupError::UnknownKeyType(s) => write!(f, "unknown key_type: {}", PyRepr(s)),
            GroupError::CumulativeNotSupported(k) => write!(
                f,
                "cumulative mode cannot by used with key type {}",
                PyRepr(k.as_str())
            ),
            GroupError::TooManyFilenames => write!(
                f,
                "the two snapshots have more than {} distinct filenames between them",
                FilenameIdx::MAX
            ),
        }
    }
}

impl std::error::Error for GroupError {}

/// One line of `statistics()`: the traces grouped under `key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    /// Frames most recent first (the [`super::Traceback::frames`] convention;
    /// the Python view reverses them as `tracemalloc.Traceback` does), as
    /// indices into the snapshot's filenames. `filename` keys have lineno 0.
    pub key: Box<[Frame]>,
    pub size: u64,
    pub count: u64,
}

/// One line of `compare_to()`. Keys only in the old snapshot have `size` and
/// `count` 0 and negative diffs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatDiff {
    /// Frames most recent first, indexing [`Comparison::filename`].
    pub key: Box<[Frame]>,
    pub size: u64,
    pub size_diff: i64,
    pub count: u64,
    pub count_diff: i64,
}

/// The result of [`SnapshotData::compare_to`]: the sorted diffs and the
/// filename table their keys index into.
///
/// The two snapshots number their filenames independently, so keys are
/// matched by content and then expressed in a joint table: index `i` below
/// `new.filenames.len()` is the new snapshot's filename `i` (so keys present
/// in the new snapshot keep the new snapshot's indices); higher indices are
/// the filenames only the old snapshot has, in the old snapshot's order.
#[derive(Clone, Debug)]
pub struct Comparison<'a> {
    pub diffs: Vec<StatDiff>,
    new: &'a SnapshotData,
    old_only: Vec<&'a str>,
}

impl<'a> Comparison<'a> {
    /// The filename that a key frame's `filename` index refers to.
    ///
    /// # Panics
    /// If `idx` is not below [`Comparison::filename_count`]; indices taken from
    /// `diffs` always are.
    pub fn filename(&self, idx: FilenameIdx) -> &'a str {
        let new: &'a SnapshotData = self.new;
        let i = idx as usize;
        match new.filenames.get(i) {
            Some(name) => name,
            None => self.old_only[i - new.filenames.len()],
        }
    }

    /// Size of the joint filename table.
    pub fn filename_count(&self) -> usize {
        self.new.filenames.len() + self.old_only.len()
    }
}

impl SnapshotData {
    /// `Snapshot.statistics(key_type, cumulative)`: traces grouped by `key`,
    /// sorted as tracemalloc sorts `Statistic` lists (biggest first).
    pub fn statistics(&self, key: KeyType, cumulative: bool) -> Result<Vec<Stat>, GroupError> {
        let stats = self.group(key, cumulative)?;
        let rank = FilenameRank::new(
            self.filenames.len(),
            stats.iter().map(|s| &s.key[..]),
            |i| self.filenames[i as usize].as_str(),
        );
        Ok(rank.sort_desc(stats, |s| ([s.size, s.count, 0, 0], &s.key)))
    }

    /// `Snapshot.compare_to(old, key_type, cumulative)`: per key, how `self`
    /// (the new snapshot) differs from `old`, sorted as tracemalloc sorts
    /// `StatisticDiff` lists (biggest change first).
    pub fn compare_to<'a>(
        &'a self,
        old: &'a SnapshotData,
        key: KeyType,
        cumulative: bool,
    ) -> Result<Comparison<'a>, GroupError> {
        let new_stats = self.group(key, cumulative)?;
        let old_stats = old.group(key, cumulative)?;

        // Re-express the old keys in the joint filename table (see
        // `Comparison`), so that equal content means equal `Frame`s.
        let new_ids: AHashMap<&str, FilenameIdx> = self
            .filenames
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i as FilenameIdx))
            .collect();
        let mut old_to_joint: Vec<Option<FilenameIdx>> = vec![None; old.filenames.len()];
        let mut old_only: Vec<&'a str> = Vec::new();
        let mut translate = |idx: FilenameIdx| -> Result<FilenameIdx, GroupError> {
            let slot = &mut old_to_joint[idx as usize];
            if let Some(joint) = *slot {
                return Ok(joint);
            }
            let name = old.filenames[idx as usize].as_str();
            let joint = match new_ids.get(name) {
                Some(&i) => i,
                None => {
                    let i = self
                        .filenames
                        .len()
                        .checked_add(old_only.len())
                        .and_then(|i| FilenameIdx::try_from(i).ok())
                        .ok_or(GroupError::TooManyFilenames)?;
                    old_only.push(name);
                    i
                }
            };
            *slot = Some(joint);
            Ok(joint)
        };

        // Old totals per new statistic (same index), and the keys only the
        // old snapshot has.
        let mut old_totals = vec![Totals::default(); new_stats.len()];
        let mut old_only_stats: Vec<PendingDiff> = Vec::new();
        let new_slots: AHashMap<&[Frame], usize> = new_stats
            .iter()
            .enumerate()
            .map(|(i, s)| (&s.key[..], i))
            .collect();
        let mut joint_key: Vec<Frame> = Vec::new();
        for s in old_stats {
            joint_key.clear();
            for f in s.key.iter() {
                joint_key.push(Frame {
                    filename: translate(f.filename)?,
                    lineno: f.lineno,
                });
            }
            match new_slots.get(&joint_key[..]) {
                Some(&i) => {
                    old_totals[i] = Totals {
                        size: s.size,
                        count: s.count,
                    }
                }
                None => old_only_stats.push(PendingDiff {
                    key: joint_key.as_slice().into(),
                    size: 0,
                    count: 0,
                    old_size: s.size,
                    old_count: s.count,
                }),
            }
        }
        drop(new_slots);
        let pending: Vec<PendingDiff> = new_stats
            .into_iter()
            .zip(old_totals)
            .map(|(s, old)| PendingDiff {
                key: s.key,
                size: s.size,
                count: s.count,
                old_size: old.size,
                old_count: old.count,
            })
            .chain(old_only_stats)
            .collect();

        let joint_len = self.filenames.len() + old_only.len();
        let name = |i: FilenameIdx| -> &str {
            let i = i as usize;
            match self.filenames.get(i) {
                Some(n) => n.as_str(),
                None => old_only[i - self.filenames.len()],
            }
        };
        let rank = FilenameRank::new(joint_len, pending.iter().map(|p| &p.key[..]), name);
        let pending = rank.sort_desc(pending, |p| {
            let size_change = p.size.abs_diff(p.old_size);
            let count_change = p.count.abs_diff(p.old_count);
            ([size_change, p.size, count_change, p.count], &p.key)
        });
        let diffs = pending
            .into_iter()
            .map(|p| StatDiff {
                size_diff: saturating_diff(p.size, p.old_size),
                count_diff: saturating_diff(p.count, p.old_count),
                key: p.key,
                size: p.size,
                count: p.count,
            })
            .collect();
        Ok(Comparison {
            diffs,
            new: self,
            old_only,
        })
    }

    /// The unsorted groups, keys in this snapshot's filename numbering.
    ///
    /// Traces are first summed per traceback index (one pass, no hashing, no
    /// allocation per trace); only the distinct tracebacks are then mapped to
    /// keys, which is where hashing happens.
    fn group(&self, key: KeyType, cumulative: bool) -> Result<Vec<Stat>, GroupError> {
        if cumulative && key == KeyType::Traceback {
            return Err(GroupError::CumulativeNotSupported(key));
        }
        let mut per_traceback = vec![Totals::default(); self.tracebacks.len()];
        for t in &self.traces {
            let slot = &mut per_traceback[t.traceback as usize];
            slot.size = slot.size.saturating_add(t.size);
            slot.count += 1;
        }
        let live = self
            .tracebacks
            .iter()
            .zip(&per_traceback)
            .filter(|(_, totals)| totals.count > 0)
            .map(|(tb, &totals)| (&tb.frames[..], totals));

        // Every map below holds at most one entry per live traceback (or per
        // frame, in cumulative mode), so reserving that much up front avoids
        // rehashing while keeping memory proportional to the snapshot.
        let nlive = per_traceback.iter().filter(|t| t.count > 0).count();
        let mut groups = Groups::default();
        match (key, cumulative) {
            (KeyType::Traceback, _) => {
                // Tracebacks are unique by (frames, total_nframe), but the key
                // ignores total_nframe, so equal frames must still be merged.
                let mut slots: AHashMap<&[Frame], usize> = AHashMap::with_capacity(nlive);
                for (frames, totals) in live {
                    groups.add(&mut slots, frames, totals, || frames.into());
                }
            }
            (KeyType::Lineno, false) => {
                let mut slots: AHashMap<Option<Frame>, usize> = AHashMap::with_capacity(nlive);
                for (frames, totals) in live {
                    let first = frames.first().copied();
                    groups.add(&mut slots, first, totals, || first.into_iter().collect());
                }
            }
            (KeyType::Lineno, true) => {
                let mut slots: AHashMap<Frame, usize> = AHashMap::with_capacity(nlive);
                for (frames, totals) in live {
                    for &frame in frames {
                        groups.add(&mut slots, frame, totals, || Box::new([frame]));
                    }
                }
            }
            (KeyType::Filename, _) => {
                // Filename indices are dense: a table beats hashing.
                let mut slot_of_file: Vec<Option<usize>> = vec![None; self.filenames.len()];
                let mut empty_slot = None;
                for (frames, totals) in live {
                    let files: &[Frame] = match (cumulative, frames.first()) {
                        (false, Some(first)) => std::slice::from_ref(first),
                        (false, None) => {
                            groups.add_to_slot(&mut empty_slot, totals, || file_key(None));
                            continue;
                        }
                        (true, _) => frames,
                    };
                    for f in files {
                        let file = f.filename;
                        groups.add_to_slot(&mut slot_of_file[file as usize], totals, || {
                            file_key(Some(file))
                        });
                    }
                }
            }
        }
        Ok(groups.stats)
    }
}

/// Size and count of the traces sharing one traceback.
#[derive(Clone, Copy, Default)]
struct Totals {
    size: u64,
    count: u64,
}

#[derive(Default)]
struct Groups {
    stats: Vec<Stat>,
}

impl Groups {
    /// Adds `totals` to the statistic of key `k`, creating it (with the frames
    /// `make_key` builds) the first time `k` is seen.
    fn add<K: std::hash::Hash + Eq>(
        &mut self,
        slots: &mut AHashMap<K, usize>,
        k: K,
        totals: Totals,
        make_key: impl FnOnce() -> Box<[Frame]>,
    ) {
        match slots.entry(k) {
            Entry::Occupied(e) => {
                let stat = &mut self.stats[*e.get()];
                stat.size = stat.size.saturating_add(totals.size);
                stat.count = stat.count.saturating_add(totals.count);
            }
            Entry::Vacant(e) => {
                e.insert(self.stats.len());
                self.stats.push(Stat {
                    key: make_key(),
                    size: totals.size,
                    count: totals.count,
                });
            }
        }
    }

    /// [`Groups::add`] for keys whose statistic index lives in a table.
    fn add_to_slot(
        &mut self,
        slot: &mut Option<usize>,
        totals: Totals,
        make_key: impl FnOnce() -> Box<[Frame]>,
    ) {
        match *slot {
            Some(i) => {
                let stat = &mut self.stats[i];
                stat.size = stat.size.saturating_add(totals.size);
                stat.count = stat.count.saturating_add(totals.count);
            }
            None => {
                *slot = Some(self.stats.len());
                self.stats.push(Stat {
                    key: make_key(),
                    size: totals.size,
                    count: totals.count,
                });
            }
        }
    }
}

/// The stdlib `filename` key: `(filename, 0)`, or the empty key for an empty
/// traceback.
fn file_key(file: Option<FilenameIdx>) -> Box<[Frame]> {
    file.map(|filename| Frame {
        filename,
        lineno: 0,
    })
    .into_iter()
    .collect()
}

/// A diff before sorting: both sides kept so that sorting can use the exact
/// absolute differences.
struct PendingDiff {
    key: Box<[Frame]>,
    size: u64,
    count: u64,
    old_size: u64,
    old_count: u64,
}

fn saturating_diff(new: u64, old: u64) -> i64 {
    let exact = i128::from(new) - i128::from(old);
    exact.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The position of each filename used by some key in the code-point (= UTF-8
/// byte) order of the names, so that sorting compares two integers instead of
/// two strings: many statistics tie on size and count and fall through to the
/// key comparison.
struct FilenameRank {
    rank: Vec<u32>,
}

impl FilenameRank {
    fn new<'k, 's>(
        table_len: usize,
        keys: impl IntoIterator<Item = &'k [Frame]>,
        name: impl Fn(FilenameIdx) -> &'s str,
    ) -> Self {
        let mut used = vec![false; table_len];
        let mut order: Vec<FilenameIdx> = Vec::new();
        for key in keys {
            for f in key {
                let seen = &mut used[f.filename as usize];
                if !*seen {
                    *seen = true;
                    order.push(f.filename);
                }
            }
        }
        // Names in one table are distinct, so this order is strict and
        // comparing ranks is comparing names.
        order.sort_unstable_by(|&a, &b| name(a).cmp(name(b)));
        let mut rank = vec![0u32; table_len];
        for (r, &idx) in order.iter().enumerate() {
            rank[idx as usize] = r as u32;
        }
        FilenameRank { rank }
    }

    /// Sorts `items` in descending order of `(numbers, key)`, the key compared
    /// as [`FilenameRank::cmp_keys`] does: this is stdlib's
    /// `sort(reverse=True, key=_sort_key)` on distinct keys.
    ///
    /// Each item is sorted along with its numbers and its oldest frame copied
    /// inline: statistics often tie on the numbers, and comparing the inline
    /// oldest frame settles almost every tie (all of them for one-frame keys)
    /// without chasing the key's heap pointer.
    fn sort_desc<T>(&self, items: Vec<T>, sort_key: impl Fn(&T) -> ([u64; 4], &[Frame])) -> Vec<T> {
        let mut ranked: Vec<Ranked<T>> = items
            .into_iter()
            .map(|item| {
                let (numbers, key) = sort_key(&item);
                // `None` (empty key) sorts before any frame, as `()` does.
                let oldest = key
                    .last()
                    .map(|f| (self.rank[f.filename as usize], f.lineno));
                (numbers, oldest, item)
            })
            .collect();
        ranked.sort_unstable_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.cmp(&a.1))
                .then_with(|| self.cmp_keys(sort_key(&b.2).1, sort_key(&a.2).1))
        });
        ranked.into_iter().map(|(_, _, item)| item).collect()
    }

    /// Compares two keys (stored most recent first) as stdlib compares
    /// `Traceback._frames`: oldest frame first, frame by frame as
    /// `(filename, lineno)`, a prefix before the longer key.
    fn cmp_keys(&self, a: &[Frame], b: &[Frame]) -> Ordering {
        let ranked = |f: &Frame| (self.rank[f.filename as usize], f.lineno);
        a.iter().rev().map(ranked).cmp(b.iter().rev().map(ranked))
    }
}

/// An item being sorted: its sort numbers, its oldest frame as (filename
/// rank, lineno) or `None` for an empty key, and the item.
type Ranked<T> = ([u64; 4], Option<(u32, i64)>, T);

/// Formats a string as Python's `repr()` of a `str` does, for the
/// `unknown key_type` message. Exact for ASCII and for printable non-ASCII;
/// Python's `str.isprintable` needs the Unicode tables, so non-ASCII
/// characters are escaped when they are control, separator, format or
/// private-use characters (the common non-printable ones), and unassigned
/// code points are shown as they are.
struct PyRepr<'s>(&'s str);

impl fmt::Display for PyRepr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        let s = self.0;
        let quote = if s.contains('\'') && !s.contains('"') {
            '"'
        } else {
            '\''
        };
        f.write_char(quote)?;
        for c in s.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '\t' => f.write_str("\\t")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                c if c == quote => write!(f, "\\{c}")?,
                ' '..='~' => f.write_char(c)?,
                c if is_printable(c) => f.write_char(c)?,
                c if (c as u32) < 0x100 => write!(f, "\\x{:02x}", c as u32)?,
                c if (c as u32) < 0x10000 => write!(f, "\\u{:04x}", c as u32)?,
                c => write!(f, "\\U{:08x}", c as u32)?,
            }
        }
        f.write_char(quote)
    }
}

/// An approximation of Python's `str.isprintable()` for one non-ASCII
/// character (see [`PyRepr`]).
fn is_printable(c: char) -> bool {
    let cp = c as u32;
    let is_format = matches!(
        cp,
        0xAD | 0x600..=0x605
            | 0x61C
            | 0x6DD
            | 0x70F
            | 0x8E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    );
    let is_private = matches!(cp, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF);
    !(c.is_control() || c.is_whitespace() || is_format || is_private)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotBuilder;

    /// A trace as stdlib's `_get_traces()` returns it: (domain, size, frames
    /// most recent first, total_nframe).
    type RawTrace<'a> = (u64, u64, &'a [(&'a str, i64)], u32);

    fn snapshot(traces: &[RawTrace]) -> SnapshotData {
        let mut b = SnapshotBuilder::new(2);
        for &(domain, size, frames, total) in traces {
            let tb = b.intern_traceback(frames, total);
            b.push_trace(domain, size, tb);
        }
        b.finish()
    }

    /// The two snapshots of CPython's `Lib/test/test_tracemalloc.py`
    /// (`create_snapshots`), so the expectations below are the stdlib's.
    fn stdlib_snapshots() -> (SnapshotData, SnapshotData) {
        let ab: &[(&str, i64)] = &[("a.py", 2), ("b.py", 4)];
        let a5b: &[(&str, i64)] = &[("a.py", 5), ("b.py", 4)];
        let one = snapshot(&[
            (0, 10, ab, 3),
            (0, 10, ab, 3),
            (0, 10, ab, 3),
            (1, 2, a5b, 3),
            (2, 66, &[("b.py", 1)], 1),
            (3, 7, &[("<unknown>", 0)], 1),
        ]);
        let two = snapshot(&[
            (0, 10, ab, 3),
            (0, 10, ab, 3),
            (0, 10, ab, 3),
            (2, 2, a5b, 3),
            (2, 5000, a5b, 3),
            (4, 400, &[("c.py", 578)], 1),
        ]);
        (one, two)
    }

    /// Statistics with keys resolved to strings, for readable assertions.
    type ResolvedStat = (Vec<(String, i64)>, u64, u64);

    fn resolved(data: &SnapshotData, stats: &[Stat]) -> Vec<ResolvedStat> {
        stats
            .iter()
            .map(|s| {
                let key = s
                    .key
                    .iter()
                    .map(|f| (data.filename(f.filename).to_owned(), f.lineno))
                    .collect();
                (key, s.size, s.count)
            })
            .collect()
    }

    type ResolvedDiff = (Vec<(String, i64)>, u64, i64, u64, i64);

    fn resolved_diffs(cmp: &Comparison) -> Vec<ResolvedDiff> {
        cmp.diffs
            .iter()
            .map(|d| {
                let key = d
                    .key
                    .iter()
                    .map(|f| (cmp.filename(f.filename).to_owned(), f.lineno))
                    .collect();
                (key, d.size, d.size_diff, d.count, d.count_diff)
            })
            .collect()
    }

    fn k(frames: &[(&str, i64)]) -> Vec<(String, i64)> {
        frames.iter().map(|&(f, l)| (f.to_owned(), l)).collect()
    }

    #[test]
    fn lineno_statistics_match_stdlib_test() {
        let (one, two) = stdlib_snapshots();
        assert_eq!(
            resolved(&one, &one.statistics(KeyType::Lineno, false).unwrap()),
            vec![
                (k(&[("b.py", 1)]), 66, 1),
                (k(&[("a.py", 2)]), 30, 3),
                (k(&[("<unknown>", 0)]), 7, 1),
                (k(&[("a.py", 5)]), 2, 1),
            ]
        );
        assert_eq!(
            resolved(&two, &two.statistics(KeyType::Lineno, false).unwrap()),
            vec![
                (k(&[("a.py", 5)]), 5002, 2),
                (k(&[("c.py", 578)]), 400, 1),
                (k(&[("a.py", 2)]), 30, 3),
            ]
        );
    }

    #[test]
    fn lineno_diff_matches_stdlib_test() {
        let (one, two) = stdlib_snapshots();
        let cmp = two.compare_to(&one, KeyType::Lineno, false).unwrap();
        assert_eq!(
            resolved_diffs(&cmp),
            vec![
                (k(&[("a.py", 5)]), 5002, 5000, 2, 1),
                (k(&[("c.py", 578)]), 400, 400, 1, 1),
                (k(&[("b.py", 1)]), 0, -66, 0, -1),
                (k(&[("<unknown>", 0)]), 0, -7, 0, -1),
                (k(&[("a.py", 2)]), 30, 0, 3, 0),
            ]
        );
    }

    #[test]
    fn filename_statistics_and_diff_match_stdlib_test() {
        let (one, two) = stdlib_snapshots();
        assert_eq!(
            resolved(&one, &one.statistics(KeyType::Filename, false).unwrap()),
            vec![
                (k(&[("b.py", 0)]), 66, 1),
                (k(&[("a.py", 0)]), 32, 4),
                (k(&[("<unknown>", 0)]), 7, 1),
            ]
        );
        assert_eq!(
            resolved(&two, &two.statistics(KeyType::Filename, false).unwrap()),
            vec![(k(&[("a.py", 0)]), 5032, 5), (k(&[("c.py", 0)]), 400, 1)]
        );
        let cmp = two.compare_to(&one, KeyType::Filename, false).unwrap();
        assert_eq!(
            resolved_diffs(&cmp),
            vec![
                (k(&[("a.py", 0)]), 5032, 5000, 5, 1),
                (k(&[("c.py", 0)]), 400, 400, 1, 1),
                (k(&[("b.py", 0)]), 0, -66, 0, -1),
                (k(&[("<unknown>", 0)]), 0, -7, 0, -1),
            ]
        );
    }

    #[test]
    fn traceback_statistics_and_diff_match_stdlib_test() {
        let (one, two) = stdlib_snapshots();
        let tb1 = k(&[("a.py", 2), ("b.py", 4)]);
        let tb2 = k(&[("a.py", 5), ("b.py", 4)]);
        let tb3 = k(&[("b.py", 1)]);
        let tb4 = k(&[("<unknown>", 0)]);
        let tb5 = k(&[("c.py", 578)]);
        assert_eq!(
            resolved(&one, &one.statistics(KeyType::Traceback, false).unwrap()),
            vec![
                (tb3.clone(), 66, 1),
                (tb1.clone(), 30, 3),
                (tb4.clone(), 7, 1),
                (tb2.clone(), 2, 1),
            ]
        );
        let cmp = two.compare_to(&one, KeyType::Traceback, false).unwrap();
        assert_eq!(
            resolved_diffs(&cmp),
            vec![
                (tb2, 5002, 5000, 2, 1),
                (tb5, 400, 400, 1, 1),
                (tb3, 0, -66, 0, -1),
                (tb4, 0, -7, 0, -1),
                (tb1, 30, 0, 3, 0),
            ]
        );
    }

    #[test]
    fn cumulative_statistics_match_stdlib_test() {
        let (one, _) = stdlib_snapshots();
        assert_eq!(
            resolved(&one, &one.statistics(KeyType::Filename, true).unwrap()),
            vec![
                (k(&[("b.py", 0)]), 98, 5),
                (k(&[("a.py", 0)]), 32, 4),
                (k(&[("<unknown>", 0)]), 7, 1),
            ]
        );
        assert_eq!(
            resolved(&one, &one.statistics(KeyType::Lineno, true).unwrap()),
            vec![
                (k(&[("b.py", 1)]), 66, 1),
                (k(&[("b.py", 4)]), 32, 4),
                (k(&[("a.py", 2)]), 30, 3),
                (k(&[("<unknown>", 0)]), 7, 1),
                (k(&[("a.py", 5)]), 2, 1),
            ]
        );
    }

    #[test]
    fn cumulative_counts_a_trace_once_per_frame_not_once_per_key() {
        // Recursion: the same line twice, and a second line of the same file.
        let data = snapshot(&[(0, 100, &[("r.py", 3), ("r.py", 3), ("r.py", 9)], 3)]);
        assert_eq!(
            resolved(&data, &data.statistics(KeyType::Lineno, true).unwrap()),
            vec![(k(&[("r.py", 3)]), 200, 2), (k(&[("r.py", 9)]), 100, 1)]
        );
        assert_eq!(
            resolved(&data, &data.statistics(KeyType::Filename, true).unwrap()),
            vec![(k(&[("r.py", 0)]), 300, 3)]
        );
    }

    #[test]
    fn cumulative_traceback_is_refused_with_stdlib_message() {
        let (one, two) = stdlib_snapshots();
        let err = one.statistics(KeyType::Traceback, true).unwrap_err();
        assert_eq!(err, GroupError::CumulativeNotSupported(KeyType::Traceback));
        assert_eq!(
            err.to_string(),
            "cumulative mode cannot by used with key type 'traceback'"
        );
        assert!(two.compare_to(&one, KeyType::Traceback, true).is_err());
    }

    #[test]
    fn key_type_parses_only_stdlib_spellings() {
        assert_eq!("lineno".parse::<KeyType>(), Ok(KeyType::Lineno));
        assert_eq!("filename".parse::<KeyType>(), Ok(KeyType::Filename));
        assert_eq!("traceback".parse::<KeyType>(), Ok(KeyType::Traceback));
        for k in [KeyType::Lineno, KeyType::Filename, KeyType::Traceback] {
            assert_eq!(k.as_str().parse::<KeyType>(), Ok(k));
        }
        let err = "Lineno".parse::<KeyType>().unwrap_err();
        assert_eq!(err.to_string(), "unknown key_type: 'Lineno'");
    }

    #[test]
    fn unknown_key_type_message_uses_python_repr() {
        let msg = |s: &str| GroupError::UnknownKeyType(s.to_owned()).to_string();
        assert_eq!(msg(""), "unknown key_type: ''");
        assert_eq!(msg("it's"), "unknown key_type: \"it's\"");
        assert_eq!(msg("'\""), "unknown key_type: '\\'\"'");
        assert_eq!(msg("a\\b\n\t\r"), "unknown key_type: 'a\\\\b\\n\\t\\r'");
        assert_eq!(msg("\x00\x7f"), "unknown key_type: '\\x00\\x7f'");
        assert_eq!(msg("é€😀"), "unknown key_type: 'é€😀'");
        assert_eq!(
            msg("\u{85}\u{a0}\u{200b}"),
            "unknown key_type: '\\x85\\xa0\\u200b'"
        );
        assert_eq!(msg("\u{e0001}"), "unknown key_type: '\\U000e0001'");
    }

    #[test]
    fn traceback_key_compares_oldest_frame_first() {
        // Same size and count everywhere, so only the key orders them. Frames
        // below are most recent first, as stored; stdlib compares the
        // reversed (oldest first) tuples, descending:
        //   y = [a:1, b:1, m:1] -> (m:1, b:1, a:1)   first
        //   x = [z:1, a:1, m:1] -> (m:1, a:1, z:1)
        //   v = [a:1, m:1]      -> (m:1, a:1), a prefix of x's: smaller
        //   w = [q:1]           -> (q:1)             before all of them
        // Comparing most recent first instead would put x (z...) first.
        let y: &[(&str, i64)] = &[("a.py", 1), ("b.py", 1), ("m.py", 1)];
        let x: &[(&str, i64)] = &[("z.py", 1), ("a.py", 1), ("m.py", 1)];
        let v: &[(&str, i64)] = &[("a.py", 1), ("m.py", 1)];
        let w: &[(&str, i64)] = &[("q.py", 1)];
        let data = snapshot(&[(0, 8, v, 2), (0, 8, x, 3), (0, 8, w, 1), (0, 8, y, 3)]);
        let stats = data.statistics(KeyType::Traceback, false).unwrap();
        assert_eq!(
            resolved(&data, &stats)
                .into_iter()
                .map(|(key, _, _)| key)
                .collect::<Vec<_>>(),
            vec![k(w), k(y), k(x), k(v)]
        );
    }

    #[test]
    fn ties_order_by_filename_code_point_then_lineno() {
        // 'Z' < 'a' < 'é' < '😀' by code point and by UTF-8 bytes; lineno
        // compares as a signed integer.
        let data = snapshot(&[
            (0, 1, &[("a.py", 10)], 1),
            (0, 1, &[("a.py", -1)], 1),
            (0, 1, &[("Z.py", 5)], 1),
            (0, 1, &[("é.py", 1)], 1),
            (0, 1, &[("😀.py", 1)], 1),
            (0, 1, &[("a.py", 9)], 1),
        ]);
        let stats = data.statistics(KeyType::Lineno, false).unwrap();
        let keys: Vec<_> = resolved(&data, &stats)
            .into_iter()
            .map(|(key, _, _)| key)
            .collect();
        assert_eq!(
            keys,
            vec![
                k(&[("😀.py", 1)]),
                k(&[("é.py", 1)]),
                k(&[("a.py", 10)]),
                k(&[("a.py", 9)]),
                k(&[("a.py", -1)]),
                k(&[("Z.py", 5)]),
            ]
        );
    }

    #[test]
    fn size_then_count_decide_before_key() {
        let data = snapshot(&[
            (0, 5, &[("a.py", 1)], 1),
            (0, 5, &[("a.py", 1)], 1),
            (0, 10, &[("b.py", 1)], 1),
            (0, 10, &[("z.py", 1)], 1),
            (0, 11, &[("c.py", 1)], 1),
        ]);
        let stats = data.statistics(KeyType::Lineno, false).unwrap();
        let got: Vec<_> = resolved(&data, &stats)
            .into_iter()
            .map(|(key, size, count)| (key[0].0.clone(), size, count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("c.py".to_owned(), 11, 1),
                ("a.py".to_owned(), 10, 2),
                ("z.py".to_owned(), 10, 1),
                ("b.py".to_owned(), 10, 1),
            ]
        );
    }

    #[test]
    fn traceback_key_ignores_total_nframe() {
        let f: &[(&str, i64)] = &[("a.py", 1)];
        let data = snapshot(&[(0, 3, f, 1), (0, 4, f, 7)]);
        assert_eq!(data.tracebacks.len(), 2);
        assert_eq!(
            resolved(&data, &data.statistics(KeyType::Traceback, false).unwrap()),
            vec![(k(f), 7, 2)]
        );
    }

    #[test]
    fn empty_traceback_groups_under_empty_key() {
        let data = snapshot(&[(0, 3, &[], 0), (0, 4, &[("a.py", 1)], 1), (1, 5, &[], 0)]);
        for key in [KeyType::Lineno, KeyType::Filename, KeyType::Traceback] {
            let stats = data.statistics(key, false).unwrap();
            assert_eq!(stats.len(), 2, "{key}");
            assert_eq!(stats[0].key.len(), 0, "{key}");
            assert_eq!((stats[0].size, stats[0].count), (8, 2), "{key}");
        }
        for key in [KeyType::Lineno, KeyType::Filename] {
            let stats = data.statistics(key, true).unwrap();
            assert_eq!(stats.len(), 1, "{key}");
            assert_eq!((stats[0].size, stats[0].count), (4, 1), "{key}");
        }
    }

    #[test]
    fn compare_matches_keys_by_content_across_filename_tables() {
        // Different interning order: "b.py" is index 0 in old, 1 in new.
        let old = snapshot(&[
            (0, 10, &[("b.py", 1)], 1),
            (0, 20, &[("gone.py", 2)], 1),
            (0, 5, &[("a.py", 1)], 1),
        ]);
        let new = snapshot(&[
            (0, 7, &[("a.py", 1)], 1),
            (0, 30, &[("b.py", 1)], 1),
            (0, 1, &[("fresh.py", 1)], 1),
        ]);
        let cmp = new.compare_to(&old, KeyType::Lineno, false).unwrap();
        assert_eq!(
            resolved_diffs(&cmp),
            vec![
                (k(&[("b.py", 1)]), 30, 20, 1, 0),
                (k(&[("gone.py", 2)]), 0, -20, 0, -1),
                (k(&[("a.py", 1)]), 7, 2, 1, 0),
                (k(&[("fresh.py", 1)]), 1, 1, 1, 1),
            ]
        );
        // Keys present in the new snapshot keep its indices; old-only names
        // are numbered after them.
        assert_eq!(cmp.filename_count(), new.filenames.len() + 1);
        let gone = &cmp.diffs[1].key[0];
        assert_eq!(gone.filename as usize, new.filenames.len());
        let b = &cmp.diffs[0].key[0];
        assert_eq!(new.filename(b.filename), "b.py");
    }

    #[test]
    fn diff_sorts_by_absolute_change_then_size_then_count() {
        let old = snapshot(&[
            (0, 100, &[("shrink.py", 1)], 1),
            (0, 1, &[("same_abs.py", 1)], 1),
            (0, 1, &[("same_abs.py", 1)], 1),
        ]);
        let new = snapshot(&[
            (0, 50, &[("grow.py", 1)], 1),
            (0, 52, &[("same_abs.py", 1)], 1),
        ]);
        // |diffs|: shrink 100, grow 50, same_abs 50 (size 52 > 50 wins).
        let cmp = new.compare_to(&old, KeyType::Lineno, false).unwrap();
        let names: Vec<_> = resolved_diffs(&cmp)
            .into_iter()
            .map(|d| (d.0[0].0.clone(), d.2, d.4))
            .collect();
        assert_eq!(
            names,
            vec![
                ("shrink.py".to_owned(), -100, -1),
                ("same_abs.py".to_owned(), 50, -1),
                ("grow.py".to_owned(), 50, 1),
            ]
        );
    }

    #[test]
    fn huge_sizes_saturate_instead_of_wrapping() {
        let old = snapshot(&[(0, 0, &[("a.py", 1)], 1), (0, u64::MAX, &[("b.py", 1)], 1)]);
        let new = snapshot(&[
            (0, u64::MAX, &[("a.py", 1)], 1),
            (0, u64::MAX, &[("a.py", 1)], 1),
        ]);
        let stats = new.statistics(KeyType::Lineno, false).unwrap();
        assert_eq!((stats[0].size, stats[0].count), (u64::MAX, 2));
        let cmp = new.compare_to(&old, KeyType::Lineno, false).unwrap();
        let d = resolved_diffs(&cmp);
        // Both |diffs| are u64::MAX; a.py has the bigger size, so it is first.
        assert_eq!(d[0], (k(&[("a.py", 1)]), u64::MAX, i64::MAX, 2, 1));
        assert_eq!(d[1], (k(&[("b.py", 1)]), 0, i64::MIN, 0, -1));
    }

    #[test]
    fn snapshot_without_traces_has_no_statistics() {
        let empty = SnapshotData::default();
        for key in [KeyType::Lineno, KeyType::Filename, KeyType::Traceback] {
            assert!(empty.statistics(key, false).unwrap().is_empty());
            assert!(empty
                .compare_to(&empty, key, false)
                .unwrap()
                .diffs
                .is_empty());
        }
        // Interned tracebacks without live traces produce nothing either.
        let mut b = SnapshotBuilder::new(1);
        b.intern_traceback(&[("a.py", 1)], 1);
        assert!(b
            .finish()
            .statistics(KeyType::Lineno, false)
            .unwrap()
            .is_empty());
    }

    /// A synthetic snapshot: `ntraces` traces spread over `ntracebacks`
    /// tracebacks of `depth` frames, each frame drawn from `nsites` distinct
    /// (file, line) sites in 500 files.
    fn synthetic(ntraces: usize, ntracebacks: u64, depth: u64, nsites: u64) -> SnapshotData {
        let mut b = SnapshotBuilder::new(depth as u32);
        let names: Vec<String> = (0..500)
            .map(|i| format!("/usr/lib/python3/m{i}.py"))
            .collect();
        let mut tbs = Vec::new();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..ntracebacks {
            let frames: Vec<(&str, i64)> = (0..depth)
                .map(|_| {
                    let site = next() % nsites;
                    (names[(site % 500) as usize].as_str(), (site / 500) as i64)
                })
                .collect();
            tbs.push(b.intern_traceback(&frames, depth as u32));
        }
        b.reserve_traces(ntraces);
        for _ in 0..ntraces {
            let r = next();
            b.push_trace(0, r % 512, tbs[(r >> 32) as usize % tbs.len()]);
        }
        b.finish()
    }

    #[test]
    fn grouping_agrees_with_a_naive_per_trace_implementation() {
        let data = synthetic(5000, 300, 3, 200);
        for key in [KeyType::Lineno, KeyType::Filename, KeyType::Traceback] {
            for cumulative in [false, true] {
                let Ok(stats) = data.statistics(key, cumulative) else {
                    assert!(cumulative && key == KeyType::Traceback);
                    continue;
                };
                // Naive: one hash-map update per (trace, key), keys as strings.
                let mut naive: AHashMap<Vec<(String, i64)>, (u64, u64)> = AHashMap::new();
                for t in &data.traces {
                    let frames = &data.traceback(t.traceback).frames;
                    let keys: Vec<Vec<Frame>> = match (key, cumulative) {
                        (KeyType::Traceback, _) => vec![frames.to_vec()],
                        (KeyType::Lineno, false) => vec![frames[..1].to_vec()],
                        (KeyType::Filename, false) => vec![vec![Frame {
                            filename: frames[0].filename,
                            lineno: 0,
                        }]],
                        (KeyType::Lineno, true) => frames.iter().map(|f| vec![*f]).collect(),
                        (KeyType::Filename, true) => frames
                            .iter()
                            .map(|f| {
                                vec![Frame {
                                    filename: f.filename,
                                    lineno: 0,
                                }]
                            })
                            .collect(),
                    };
                    for key in keys {
                        let key = key
                            .iter()
                            .map(|f| (data.filename(f.filename).to_owned(), f.lineno))
                            .collect();
                        let e = naive.entry(key).or_default();
                        e.0 += t.size;
                        e.1 += 1;
                    }
                }
                let mut expected: Vec<_> = naive.into_iter().map(|(k, (s, c))| (k, s, c)).collect();
                // Sort as stdlib does: descending (size, count, oldest-first key).
                expected.sort_by(|a, b| {
                    let rev = |k: &Vec<(String, i64)>| k.iter().rev().cloned().collect::<Vec<_>>();
                    (b.1, b.2, rev(&b.0)).cmp(&(a.1, a.2, rev(&a.0)))
                });
                assert_eq!(resolved(&data, &stats), expected, "{key} {cumulative}");
            }
        }
    }

    /// Stdlib's algorithm on string keys: `_group_by` per trace and per key,
    /// `_compare_grouped_stats`, then the `StatisticDiff._sort_key` sort.
    fn naive_diffs(
        new: &SnapshotData,
        old: &SnapshotData,
        key: KeyType,
        cumulative: bool,
    ) -> Vec<ResolvedDiff> {
        let group = |data: &SnapshotData| {
            let mut stats: AHashMap<Vec<(String, i64)>, (u64, u64)> = AHashMap::new();
            for t in &data.traces {
                let frames: Vec<(String, i64)> = data
                    .traceback(t.traceback)
                    .frames
                    .iter()
                    .map(|f| (data.filename(f.filename).to_owned(), f.lineno))
                    .collect();
                let keys: Vec<Vec<(String, i64)>> = match (key, cumulative) {
                    (KeyType::Traceback, _) => vec![frames],
                    (KeyType::Lineno, false) => vec![frames.into_iter().take(1).collect()],
                    (KeyType::Filename, false) => {
                        vec![frames.into_iter().take(1).map(|(f, _)| (f, 0)).collect()]
                    }
                    (KeyType::Lineno, true) => frames.into_iter().map(|f| vec![f]).collect(),
                    (KeyType::Filename, true) => {
                        frames.into_iter().map(|(f, _)| vec![(f, 0)]).collect()
                    }
                };
                for k in keys {
                    let e = stats.entry(k).or_default();
                    e.0 += t.size;
                    e.1 += 1;
                }
            }
            stats
        };
        let mut old_group = group(old);
        let mut diffs: Vec<ResolvedDiff> = Vec::new();
        for (k, (size, count)) in group(new) {
            let (old_size, old_count) = old_group.remove(&k).unwrap_or((0, 0));
            diffs.push((
                k,
                size,
                size as i64 - old_size as i64,
                count,
                count as i64 - old_count as i64,
            ));
        }
        for (k, (size, count)) in old_group {
            diffs.push((k, 0, -(size as i64), 0, -(count as i64)));
        }
        let sort_key = |d: &ResolvedDiff| {
            let oldest_first: Vec<(String, i64)> = d.0.iter().rev().cloned().collect();
            (
                d.2.unsigned_abs(),
                d.1,
                d.4.unsigned_abs(),
                d.3,
                oldest_first,
            )
        };
        diffs.sort_by_key(|d| std::cmp::Reverse(sort_key(d)));
        diffs
    }

    #[test]
    fn compare_to_agrees_with_stdlib_algorithm_on_strings() {
        let new = synthetic(4000, 250, 3, 120);
        // The old snapshot interns in another order (traces reversed), drops
        // and resizes some traces, and has files and lines of its own.
        let mut b = SnapshotBuilder::new(3);
        for (i, t) in new.traces.iter().enumerate().rev() {
            if i % 5 == 0 {
                continue;
            }
            let tb = new.traceback(t.traceback);
            let mut frames: Vec<(&str, i64)> = tb
                .frames
                .iter()
                .map(|f| (new.filename(f.filename), f.lineno))
                .collect();
            if i % 7 == 0 {
                frames[0] = ("old_only.py", i as i64 % 4);
            } else if i % 11 == 0 {
                frames[0].1 += 1000; // a line of a file both snapshots have
            }
            let idx = b.intern_traceback(&frames, tb.total_nframe);
            b.push_trace(t.domain, t.size + (i as u64 % 3), idx);
        }
        let old = b.finish();
        assert_ne!(old.filenames, new.filenames);
        for key in [KeyType::Lineno, KeyType::Filename, KeyType::Traceback] {
            for cumulative in [false, true] {
                let Ok(cmp) = new.compare_to(&old, key, cumulative) else {
                    continue;
                };
                assert_eq!(
                    resolved_diffs(&cmp),
                    naive_diffs(&new, &old, key, cumulative),
                    "{key} {cumulative}"
                );
                // And in the other direction.
                let back = old.compare_to(&new, key, cumulative).unwrap();
                assert_eq!(
                    resolved_diffs(&back),
                    naive_diffs(&old, &new, key, cumulative)
                );
            }
        }
    }

    /// Timing smoke, not an assertion: run with
    /// `cargo test --release --lib snapshot::group -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_one_million_traces() {
        let shapes = [
            // (tracebacks, frames each, distinct sites)
            (20_000, 1, 20_000),      // nframe=1: one traceback per line
            (200_000, 10, 20_000),    // nframe=10, realistic site count
            (200_000, 10, 1_000_000), // adversarial: almost every line distinct
        ];
        for (ntracebacks, depth, nsites) in shapes {
            let data = synthetic(1_000_000, ntracebacks, depth, nsites);
            println!(
                "1M traces, {} tracebacks x {depth} frames, {nsites} sites:",
                data.tracebacks.len()
            );
            for (key, cumulative) in [
                (KeyType::Lineno, false),
                (KeyType::Filename, false),
                (KeyType::Traceback, false),
                (KeyType::Lineno, true),
            ] {
                // Best of 5: the machine may be shared.
                let mut took = std::time::Duration::MAX;
                let mut n = 0;
                for _ in 0..5 {
                    let start = std::time::Instant::now();
                    let stats = data.statistics(key, cumulative).unwrap();
                    took = took.min(start.elapsed());
                    n = stats.len();
                }
                println!("  {key:9} cumulative={cumulative:5}: {n:7} groups in {took:?}");
            }
            let start = std::time::Instant::now();
            let cmp = data.compare_to(&data, KeyType::Lineno, false).unwrap();
            let took = start.elapsed();
            println!("  compare_to lineno: {} diffs in {took:?}", cmp.diffs.len());
        }
    }
}
