//! Snapshots: an immutable, self-contained copy of the traces, with the
//! grouping (`statistics`), diffing (`compare_to`) and file format that
//! Python's thin views are built on. Pure Rust: no interpreter needed.
//!
//! Conventions shared with CPython's `_tracemalloc`:
//! - a traceback's frames are stored **most recent first**;
//! - a frame is `(filename, lineno)`;
//! - a trace is `(domain, size, traceback, total_nframe)`.

pub mod format;
pub mod group;

use ahash::AHashMap;

/// Index into [`SnapshotData::filenames`].
pub type FilenameIdx = u32;
/// Index into [`SnapshotData::tracebacks`].
pub type TracebackIdx = u32;

/// One frame of a traceback: where an allocation (or a call leading to it) happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub filename: FilenameIdx,
    pub lineno: i64,
}

/// A traceback: up to `traceback_limit` frames, most recent first, plus the
/// number of frames the stack really had when it was captured.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Traceback {
    pub frames: Box<[Frame]>,
    pub total_nframe: u32,
}

/// One live block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trace {
    pub domain: u64,
    pub size: u64,
    pub traceback: TracebackIdx,
}

/// An immutable snapshot. Invariants (kept by [`SnapshotBuilder`] and checked
/// by the file reader): filenames are unique, tracebacks are unique, every
/// index is in range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotData {
    pub filenames: Vec<String>,
    pub tracebacks: Vec<Traceback>,
    pub traces: Vec<Trace>,
    pub traceback_limit: u32,
}

impl SnapshotData {
    pub fn filename(&self, idx: FilenameIdx) -> &str {
        &self.filenames[idx as usize]
    }

    pub fn traceback(&self, idx: TracebackIdx) -> &Traceback {
        &self.tracebacks[idx as usize]
    }

    /// Total size of all traces, in bytes.
    pub fn total_size(&self) -> u64 {
        self.traces.iter().map(|t| t.size).sum()
    }

    /// A new snapshot holding the traces for which `keep` is true; filenames
    /// and tracebacks no longer used are dropped.
    pub fn select(&self, mut keep: impl FnMut(&Trace) -> bool) -> SnapshotData {
        let mut b = SnapshotBuilder::new(self.traceback_limit);
        let mut tb_map: Vec<Option<TracebackIdx>> = vec![None; self.tracebacks.len()];
        for t in &self.traces {
            if !keep(t) {
                continue;
            }
            let idx = match tb_map[t.traceback as usize] {
                Some(i) => i,
                None => {
                    let tb = self.traceback(t.traceback);
                    let frames: Vec<(&str, i64)> = tb
                        .frames
                        .iter()
                        .map(|f| (self.filename(f.filename), f.lineno))
                        .collect();
                    let i = b.intern_traceback(&frames, tb.total_nframe);
                    tb_map[t.traceback as usize] = Some(i);
                    i
                }
            };
            b.push_trace(t.domain, t.size, idx);
        }
        b.finish()
    }
}

/// Builds a [`SnapshotData`], interning filenames and tracebacks so that equal
/// content always gets the same index.
#[derive(Default)]
pub struct SnapshotBuilder {
    data: SnapshotData,
    filename_ids: AHashMap<String, FilenameIdx>,
    traceback_ids: AHashMap<Traceback, TracebackIdx>,
}

impl SnapshotBuilder {
    pub fn new(traceback_limit: u32) -> Self {
        SnapshotBuilder {
            data: SnapshotData {
                traceback_limit,
                ..SnapshotData::default()
            },
            ..SnapshotBuilder::default()
        }
    }

    pub fn intern_filename(&mut self, name: &str) -> FilenameIdx {
        if let Some(&i) = self.filename_ids.get(name) {
            return i;
        }
        let i = self.data.filenames.len() as FilenameIdx;
        self.data.filenames.push(name.to_owned());
        self.filename_ids.insert(name.to_owned(), i);
        i
    }

    /// Interns a traceback given as `(filename, lineno)` pairs, most recent first.
    pub fn intern_traceback(&mut self, frames: &[(&str, i64)], total_nframe: u32) -> TracebackIdx {
        let frames: Box<[Frame]> = frames
            .iter()
            .map(|&(name, lineno)| Frame {
                filename: self.intern_filename(name),
                lineno,
            })
            .collect();
        self.intern_resolved(Traceback {
            frames,
            total_nframe,
        })
    }

    /// Interns a traceback whose filename indices already belong to this builder.
    pub fn intern_resolved(&mut self, tb: Traceback) -> TracebackIdx {
        if let Some(&i) = self.traceback_ids.get(&tb) {
            return i;
        }
        let i = self.data.tracebacks.len() as TracebackIdx;
        self.data.tracebacks.push(tb.clone());
        self.traceback_ids.insert(tb, i);
        i
    }

    pub fn push_trace(&mut self, domain: u64, size: u64, traceback: TracebackIdx) {
        self.data.traces.push(Trace {
            domain,
            size,
            traceback,
        });
    }

    pub fn reserve_traces(&mut self, n: usize) {
        self.data.traces.reserve(n);
    }

    pub fn finish(self) -> SnapshotData {
        self.data
    }
}
