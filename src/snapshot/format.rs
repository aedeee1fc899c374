//! leakguard's snapshot file format (`Snapshot.dump` / `Snapshot.load`): a
//! versioned, checksummed binary encoding of a [`SnapshotData`] plus an opaque
//! attribute blob. It replaces tracemalloc's pickle, so loading a file can
//! never run code; and since files are untrusted input, the reader validates
//! every length, count, index and string and never panics.
//!
//! # Layout, version 1 (this comment is the specification; `docs/snapshot-format.md` mirrors it)
//!
//! All integers are little-endian and unaligned. Offsets are in bytes.
//!
//! ```text
//! header (56 bytes)
//!   0  magic            12 bytes  89 4C 47 53 4E 41 50 0D 0A 1A 0A 00
//!                                 ("\x89LGSNAP\r\n\x1a\n\0")
//!  12  format_version   u32       1
//!  16  file_len         u64       length of the whole file, checksum included
//!  24  traceback_limit  u32
//!  28  filename_count   u32
//!  32  traceback_count  u32
//!  36  reserved         u32       0 (readers reject anything else)
//!  40  trace_count      u64
//!  48  attrs_len        u64
//! filenames section: filename_count records, in index order
//!      byte_len         u32
//!      bytes            byte_len bytes of UTF-8
//! tracebacks section: traceback_count records, in index order
//!      total_nframe     u32
//!      nframe           u32
//!      frames           nframe x (filename u32, lineno i64), most recent first
//! traces section: trace_count records of 20 bytes
//!      domain u64, size u64, traceback u32
//! attrs section: attrs_len bytes, opaque (the Python side stores JSON there)
//! trailer
//!      crc32            u32       CRC-32 (IEEE 802.3, as zlib.crc32) of every
//!                                 byte before it
//! ```
//!
//! Validity rules (a reader rejects the file otherwise): the magic and version
//! match; `file_len` equals the real length; the checksum matches; every
//! record fits before the checksum and the sections end exactly there;
//! `reserved` is 0; filenames are valid UTF-8 and pairwise distinct; every
//! frame's filename index is below `filename_count`; tracebacks (frames and
//! `total_nframe` together) are pairwise distinct; every trace's traceback
//! index is below `traceback_count`. Filenames and tracebacks that no trace
//! uses, and empty tracebacks, are allowed. There is exactly one encoding of
//! a given `SnapshotData` and blob: no padding, no optional fields.
//!
//! Why these choices: the magic starts with a non-ASCII byte (detects 7-bit
//! transfers and text files), holds `\r\n` and `\n` (detects newline
//! conversion in either direction), `\x1a` (stops `type` on Windows) and a NUL
//! (stops C-string handling), as PNG's does. `file_len` lets a truncated file
//! be reported as truncated rather than as corrupt. Counts sit in the header
//! so that each section's minimum size is checked against the bytes really
//! left *before* anything is allocated for it; allocations are therefore
//! bounded by a constant multiple of the file length (worst case about 12x,
//! for files made of tiny distinct filenames; about 2x for real snapshots).
//! A format change bumps `format_version`; there are no flags to negotiate.

use std::fmt;
use std::io::{self, Write};

use ahash::AHashSet;

use super::{FilenameIdx, Frame, SnapshotData, Trace, Traceback, TracebackIdx};

/// The first 12 bytes of every snapshot file.
pub const MAGIC: [u8; 12] = *b"\x89LGSNAP\r\n\x1a\n\0";
/// The format version this code writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

const HEADER_LEN: usize = 56;
const CHECKSUM_LEN: usize = 4;
const FILENAME_MIN_LEN: u64 = 4;
const TRACEBACK_MIN_LEN: u64 = 8;
const FRAME_LEN: u64 = 12;
const TRACE_LEN: u64 = 20;

/// Why a file is not a valid snapshot. `Display` says what is wrong in one
/// short sentence; the Python layer adds the file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// The file does not start with [`MAGIC`].
    BadMagic,
    /// It starts like a snapshot but the newline/EOF bytes of the magic were
    /// changed: the file went through a text-mode transfer.
    MangledMagic,
    UnsupportedVersion(u32),
    /// The file ends inside the fixed-size header.
    TruncatedHeader {
        needed: u64,
        file_len: u64,
    },
    /// The header's `file_len` disagrees with the real length (shorter means
    /// truncated, longer means trailing bytes).
    LengthMismatch {
        declared: u64,
        actual: u64,
    },
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    ReservedNotZero(u32),
    /// A record (or a whole section, judged by its count) does not fit in
    /// the bytes left before the checksum.
    Truncated {
        section: &'static str,
        needed: u64,
        offset: u64,
        left: u64,
    },
    InvalidUtf8 {
        filename: u32,
    },
    DuplicateFilename {
        index: u32,
        first: u32,
    },
    BadFilenameIndex {
        traceback: u32,
        filename: u32,
        count: u32,
    },
    DuplicateTraceback {
        index: u32,
        first: u32,
    },
    BadTracebackIndex {
        trace: u64,
        traceback: u32,
        count: u32,
    },
    /// The sections end before the checksum.
    TrailingBytes {
        end: u64,
        checksum_at: u64,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FormatError::BadMagic => write!(f, "not a leakguard snapshot (bad magic)"),
            FormatError::MangledMagic => write!(
                f,
                "damaged leakguard snapshot: its newline bytes were converted \
                 (was it transferred in text mode?)"
            ),
            FormatError::UnsupportedVersion(v) => write!(
                f,
                "unsupported format version {v} (this leakguard reads version {FORMAT_VERSION})"
            ),
            FormatError::TruncatedHeader { needed, file_len } => write!(
                f,
                "truncated: header needs {needed} bytes at offset 0, file has {file_len}"
            ),
            FormatError::LengthMismatch { declared, actual } if actual < declared => write!(
                f,
                "truncated: header says the file has {declared} bytes, it has {actual}"
            ),
            FormatError::LengthMismatch { declared, actual } => write!(
                f,
                "trailing bytes: header says the file has {declared} bytes, it has {actual}"
            ),
            FormatError::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x}): \
                 the file is corrupted"
            ),
            FormatError::ReservedNotZero(v) => {
                write!(f, "reserved header field is {v:#x}, must be 0")
            }
            FormatError::Truncated {
                section,
                needed,
                offset,
                left,
            } => write!(
                f,
                "truncated: {section} needs {needed} bytes at offset {offset}, \
                 only {left} are left before the checksum"
            ),
            FormatError::InvalidUtf8 { filename } => {
                write!(f, "invalid UTF-8 in filename {filename}")
            }
            FormatError::DuplicateFilename { index, first } => {
                write!(
                    f,
                    "duplicate filename: filename {index} repeats filename {first}"
                )
            }
            FormatError::BadFilenameIndex {
                traceback,
                filename,
                count,
            } => write!(
                f,
                "traceback {traceback} refers to filename {filename} but there are {count}"
            ),
            FormatError::DuplicateTraceback { index, first } => write!(
                f,
                "duplicate traceback: traceback {index} repeats traceback {first}"
            ),
            FormatError::BadTracebackIndex {
                trace,
                traceback,
                count,
            } => write!(
                f,
                "trace {trace} refers to traceback {traceback} but there are {count}"
            ),
            FormatError::TrailingBytes { end, checksum_at } => write!(
                f,
                "trailing bytes: sections end at offset {end}, the checksum is at {checksum_at}"
            ),
        }
    }
}

impl std::error::Error for FormatError {}

/// Writes `data` and the opaque `attrs` blob to `out` in the format above,
/// then flushes `out`. The output depends only on the arguments.
///
/// Fails with `InvalidInput` (wrapping a [`FormatError`] where one applies)
/// if `data` breaks the index invariants or exceeds a field's range, so that
/// a bad snapshot is caught when it is written, not when it is read back.
/// Uniqueness of filenames and tracebacks is not rechecked here (the
/// [`super::SnapshotBuilder`] guarantees it; the reader checks it).
pub fn write(data: &SnapshotData, attrs: &[u8], out: &mut impl Write) -> io::Result<()> {
    let filename_count = count_u32(data.filenames.len(), "filenames")?;
    let traceback_count = count_u32(data.tracebacks.len(), "tracebacks")?;

    // The header carries the total length, so compute it first; doing so
    // also validates everything the loops below then write blindly.
    let mut file_len = (HEADER_LEN + CHECKSUM_LEN) as u64;
    let mut grow = |n: u64| {
        file_len = file_len
            .checked_add(n)
            .ok_or_else(|| invalid("snapshot too large"))?;
        Ok::<(), io::Error>(())
    };
    for name in &data.filenames {
        count_u32(name.len(), "bytes in a filename")?;
        grow(FILENAME_MIN_LEN + name.len() as u64)?;
    }
    for (i, tb) in data.tracebacks.iter().enumerate() {
        count_u32(tb.frames.len(), "frames in a traceback")?;
        if let Some(f) = tb.frames.iter().find(|f| f.filename >= filename_count) {
            return Err(invalid_data(FormatError::BadFilenameIndex {
                traceback: i as u32,
                filename: f.filename,
                count: filename_count,
            }));
        }
        grow(TRACEBACK_MIN_LEN + FRAME_LEN * tb.frames.len() as u64)?;
    }
    if let Some((i, t)) = data
        .traces
        .iter()
        .enumerate()
        .find(|(_, t)| t.traceback >= traceback_count)
    {
        return Err(invalid_data(FormatError::BadTracebackIndex {
            trace: i as u64,
            traceback: t.traceback,
            count: traceback_count,
        }));
    }
    grow(TRACE_LEN * data.traces.len() as u64)?;
    grow(attrs.len() as u64)?;

    let mut sink = Sink::new(out);
    sink.put(&MAGIC)?;
    sink.put(&FORMAT_VERSION.to_le_bytes())?;
    sink.put(&file_len.to_le_bytes())?;
    sink.put(&data.traceback_limit.to_le_bytes())?;
    sink.put(&filename_count.to_le_bytes())?;
    sink.put(&traceback_count.to_le_bytes())?;
    sink.put(&0u32.to_le_bytes())?;
    sink.put(&(data.traces.len() as u64).to_le_bytes())?;
    sink.put(&(attrs.len() as u64).to_le_bytes())?;
    for name in &data.filenames {
        sink.put(&(name.len() as u32).to_le_bytes())?;
        sink.put(name.as_bytes())?;
    }
    for tb in &data.tracebacks {
        sink.put(&tb.total_nframe.to_le_bytes())?;
        sink.put(&(tb.frames.len() as u32).to_le_bytes())?;
        for f in tb.frames.iter() {
            sink.put(&f.filename.to_le_bytes())?;
            sink.put(&f.lineno.to_le_bytes())?;
        }
    }
    for t in &data.traces {
        sink.put(&t.domain.to_le_bytes())?;
        sink.put(&t.size.to_le_bytes())?;
        sink.put(&t.traceback.to_le_bytes())?;
    }
    sink.put(attrs)?;
    sink.finish(file_len)
}

/// Parses a whole snapshot file. Returns the snapshot, which satisfies every
/// [`SnapshotData`] invariant, and the attribute blob.
pub fn read(bytes: &[u8]) -> Result<(SnapshotData, Vec<u8>), FormatError> {
    let file_len = bytes.len() as u64;
    check_magic(bytes)?;
    let header = bytes.get(..HEADER_LEN).ok_or(FormatError::TruncatedHeader {
        needed: HEADER_LEN as u64,
        file_len,
    });
    // The version decides what the rest of the header means, so report it
    // even when the (version 1) header would be incomplete.
    if let Some(v) = bytes.get(12..16) {
        let version = le_u32(v);
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
    }
    let header = header?;
    let field32 = |at: usize| le_u32(&header[at..at + 4]);
    let field64 = |at: usize| le_u64(&header[at..at + 8]);
    let declared_len = field64(16);

    // Length before checksum: a cut-off file fails both, and "truncated"
    // is the diagnosis that helps. The checksum is the last 4 bytes of the
    // file as it is.
    if declared_len != file_len {
        return Err(FormatError::LengthMismatch {
            declared: declared_len,
            actual: file_len,
        });
    }
    let min_len = (HEADER_LEN + CHECKSUM_LEN) as u64;
    if file_len < min_len {
        return Err(FormatError::TruncatedHeader {
            needed: min_len,
            file_len,
        });
    }
    let (body, trailer) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let stored = le_u32(trailer);
    let computed = crc32(body);
    if stored != computed {
        return Err(FormatError::ChecksumMismatch { stored, computed });
    }
    let reserved = field32(36);
    if reserved != 0 {
        return Err(FormatError::ReservedNotZero(reserved));
    }

    let traceback_limit = field32(24);
    let filename_count = field32(28);
    let traceback_count = field32(32);
    let trace_count = field64(40);
    let attrs_len = field64(48);

    let mut r = Reader {
        body,
        pos: HEADER_LEN,
    };
    let filenames = read_filenames(&mut r, filename_count)?;
    let tracebacks = read_tracebacks(&mut r, traceback_count, filename_count)?;
    let traces = read_traces(&mut r, trace_count, traceback_count)?;
    let attrs = r.take(attrs_len, "attrs section")?.to_vec();
    if r.pos != body.len() {
        return Err(FormatError::TrailingBytes {
            end: r.pos as u64,
            checksum_at: body.len() as u64,
        });
    }
    let data = SnapshotData {
        filenames,
        tracebacks,
        traces,
        traceback_limit,
    };
    Ok((data, attrs))
}

/// CRC-32 with the IEEE 802.3 polynomial, reflected, as in zlib, PNG and
/// Python's `zlib.crc32` (so a file can be checked without leakguard).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = Crc32::new();
    crc.update(bytes);
    crc.finish()
}

fn check_magic(bytes: &[u8]) -> Result<(), FormatError> {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] == MAGIC[..n] {
        return Ok(());
    }
    // "\x89LGSNAP" intact but the rest differs: only a newline or EOF
    // conversion produces that.
    if bytes.len() >= 7 && bytes[..7] == MAGIC[..7] {
        return Err(FormatError::MangledMagic);
    }
    Err(FormatError::BadMagic)
}

fn read_filenames(r: &mut Reader<'_>, count: u32) -> Result<Vec<String>, FormatError> {
    const SECTION: &str = "filenames section";
    r.reserve(count.into(), FILENAME_MIN_LEN, SECTION)?;
    let mut filenames = Vec::with_capacity(count as usize);
    for i in 0..count {
        let len = r.u32(SECTION)?;
        let raw = r.take(len.into(), SECTION)?;
        let name =
            std::str::from_utf8(raw).map_err(|_| FormatError::InvalidUtf8 { filename: i })?;
        filenames.push(name.to_owned());
    }

    // Duplicates: sort indices by name (4 bytes per filename, where a hash
    // set would cost several times the file's size for tiny names).
    let mut order: Vec<u32> = (0..count).collect();
    let name = |i: u32| filenames.get(i as usize).map(String::as_str);
    order.sort_unstable_by(|&a, &b| name(a).cmp(&name(b)).then(a.cmp(&b)));
    let first_duplicate = order
        .windows(2)
        .filter_map(|w| match *w {
            [a, b] if name(a) == name(b) => Some((b, a)),
            _ => None,
        })
        .min();
    match first_duplicate {
        Some((index, first)) => Err(FormatError::DuplicateFilename { index, first }),
        None => Ok(filenames),
    }
}

fn read_tracebacks(
    r: &mut Reader<'_>,
    count: u32,
    filename_count: u32,
) -> Result<Vec<Traceback>, FormatError> {
    const SECTION: &str = "tracebacks section";
    r.reserve(count.into(), TRACEBACK_MIN_LEN, SECTION)?;
    let mut tracebacks = Vec::with_capacity(count as usize);
    for i in 0..count {
        let total_nframe = r.u32(SECTION)?;
        let nframe = r.u32(SECTION)?;
        let raw = r.take(u64::from(nframe) * FRAME_LEN, SECTION)?;
        // `take` checked nframe * 12 bytes exist, so this capacity is earned.
        let mut frames = Vec::with_capacity(nframe as usize);
        for rec in raw.chunks_exact(FRAME_LEN as usize) {
            let (filename, lineno) = rec.split_at(4);
            let filename = le_u32(filename);
            if filename >= filename_count {
                return Err(FormatError::BadFilenameIndex {
                    traceback: i,
                    filename,
                    count: filename_count,
                });
            }
            frames.push(Frame {
                filename,
                lineno: le_u64(lineno) as i64,
            });
        }
        let frames = frames.into_boxed_slice();
        tracebacks.push(Traceback {
            frames,
            total_nframe,
        });
    }

    let mut seen: AHashSet<&Traceback> = AHashSet::with_capacity(tracebacks.len());
    for (i, tb) in tracebacks.iter().enumerate() {
        if !seen.insert(tb) {
            let first = tracebacks.iter().position(|other| other == tb).unwrap_or(i);
            return Err(FormatError::DuplicateTraceback {
                index: i as u32,
                first: first as u32,
            });
        }
    }
    drop(seen);
    Ok(tracebacks)
}

fn read_traces(
    r: &mut Reader<'_>,
    count: u64,
    traceback_count: u32,
) -> Result<Vec<Trace>, FormatError> {
    const SECTION: &str = "traces section";
    let raw = r.take_records(count, TRACE_LEN, SECTION)?;
    let mut traces = Vec::with_capacity(raw.len() / TRACE_LEN as usize);
    for (rec, i) in raw.chunks_exact(TRACE_LEN as usize).zip(0u64..) {
        let (domain, rest) = rec.split_at(8);
        let (size, traceback) = rest.split_at(8);
        let traceback = le_u32(traceback);
        if traceback >= traceback_count {
            return Err(FormatError::BadTracebackIndex {
                trace: i,
                traceback,
                count: traceback_count,
            });
        }
        traces.push(Trace {
            domain: le_u64(domain),
            size: le_u64(size),
            traceback,
        });
    }
    Ok(traces)
}

/// A cursor over the bytes between the header and the checksum. Every read
/// is bounds-checked and names the section it belongs to.
struct Reader<'b> {
    body: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn left(&self) -> u64 {
        (self.body.len() - self.pos) as u64
    }

    fn truncated(&self, section: &'static str, needed: u64) -> FormatError {
        FormatError::Truncated {
            section,
            needed,
            offset: self.pos as u64,
            left: self.left(),
        }
    }

    fn take(&mut self, n: u64, section: &'static str) -> Result<&'b [u8], FormatError> {
        if n > self.left() {
            return Err(self.truncated(section, n));
        }
        // n <= left, which is a usize, so the cast is exact.
        let end = self.pos + n as usize;
        let out = &self.body[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Takes `count` records of `len` bytes, checking the whole run first.
    fn take_records(
        &mut self,
        count: u64,
        len: u64,
        section: &'static str,
    ) -> Result<&'b [u8], FormatError> {
        match count.checked_mul(len) {
            Some(n) => self.take(n, section),
            None => Err(self.truncated(section, u64::MAX)),
        }
    }

    /// Checks, without consuming, that `count` records of at least
    /// `min_len` bytes can fit: the guard before sizing a `Vec` by a count.
    fn reserve(&self, count: u64, min_len: u64, section: &'static str) -> Result<(), FormatError> {
        let needed = count.saturating_mul(min_len);
        if needed > self.left() {
            return Err(self.truncated(section, needed));
        }
        Ok(())
    }

    fn u32(&mut self, section: &'static str) -> Result<u32, FormatError> {
        self.take(4, section).map(le_u32)
    }
}

/// Decodes a little-endian u32 from the first 4 bytes of `b`, which callers
/// guarantee by construction (split points and exact chunks).
fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Decodes a little-endian u64 from the first 8 bytes of `b` (see [`le_u32`]).
fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn count_u32(n: usize, what: &str) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| invalid(&format!("too many {what} for the file format: {n}")))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned())
}

fn invalid_data(e: FormatError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

/// Buffers output in large writes and checksums it on the way.
struct Sink<'w, W: Write> {
    out: &'w mut W,
    buf: Vec<u8>,
    crc: Crc32,
    written: u64,
}

impl<'w, W: Write> Sink<'w, W> {
    const CHUNK: usize = 64 * 1024;

    fn new(out: &'w mut W) -> Self {
        Sink {
            out,
            buf: Vec::with_capacity(Self::CHUNK),
            crc: Crc32::new(),
            written: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= Self::CHUNK {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> io::Result<()> {
        self.crc.update(&self.buf);
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self, expected_len: u64) -> io::Result<()> {
        self.drain()?;
        let crc = self.crc.finish();
        self.out.write_all(&crc.to_le_bytes())?;
        // The header's file_len was computed before writing; a mismatch
        // would be a bug here, and must not produce a file that lies.
        if self.written + CHECKSUM_LEN as u64 != expected_len {
            return Err(io::Error::other(format!(
                "internal error: wrote {} bytes, header says {expected_len}",
                self.written + CHECKSUM_LEN as u64
            )));
        }
        self.out.flush()
    }
}

/// Slicing-by-8 CRC-32 tables: `CRC_TABLES[k][b]` is the CRC of byte `b`
/// followed by `k` zero bytes. Eight bytes per step keeps checksumming a
/// large snapshot far below the cost of reading it.
const CRC_TABLES: [[u32; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 8] {
    const POLY: u32 = 0xEDB8_8320;
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 != 0 { POLY ^ (c >> 1) } else { c >> 1 };
            bit += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

struct Crc32 {
    /// The register, kept inverted as the algorithm specifies.
    state: u32,
}

impl Crc32 {
    fn new() -> Self {
        Crc32 { state: !0 }
    }

    fn update(&mut self, bytes: &[u8]) {
        let t = &CRC_TABLES;
        let mut c = self.state;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let lo = c ^ le_u32(&chunk[..4]);
            let hi = le_u32(&chunk[4..]);
            c = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xFF) as usize]
                ^ t[2][((hi >> 8) & 0xFF) as usize]
                ^ t[1][((hi >> 16) & 0xFF) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            c = t[0][((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
        }
        self.state = c;
    }

    fn finish(&self) -> u32 {
        !self.state
    }
}

// `FilenameIdx` is what the filename fields decode to; keep the format's
// field width and the in-memory index type in step.
const _: () = assert!(std::mem::size_of::<FilenameIdx>() == 4);
const _: () = assert!(std::mem::size_of::<TracebackIdx>() == 4);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::SnapshotBuilder;

    fn encode(data: &SnapshotData, attrs: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write(data, attrs, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    /// The properties every snapshot the reader returns must have.
    fn assert_invariants(data: &SnapshotData) {
        let mut names = AHashSet::new();
        for name in &data.filenames {
            assert!(names.insert(name.as_str()), "duplicate filename {name:?}");
        }
        let mut tbs = AHashSet::new();
        for tb in &data.tracebacks {
            assert!(tbs.insert(tb), "duplicate traceback {tb:?}");
            for f in tb.frames.iter() {
                assert!((f.filename as usize) < data.filenames.len());
            }
        }
        for t in &data.traces {
            assert!((t.traceback as usize) < data.tracebacks.len());
        }
    }

    /// Makes `bytes` self-consistent again after a test edited it: header
    /// length field set to the real length, checksum recomputed. This lets
    /// mutations reach the validation behind the checksum, as a deliberate
    /// forger's file would.
    fn reseal(bytes: &mut [u8]) {
        if bytes.len() < HEADER_LEN + CHECKSUM_LEN {
            return;
        }
        let len = bytes.len() as u64;
        bytes[16..24].copy_from_slice(&len.to_le_bytes());
        let body_end = bytes.len() - CHECKSUM_LEN;
        let crc = crc32(&bytes[..body_end]);
        bytes[body_end..].copy_from_slice(&crc.to_le_bytes());
    }

    /// A small snapshot touching every feature: unicode names, several
    /// frames, an empty traceback, an unused filename, extreme values.
    fn sample() -> (SnapshotData, Vec<u8>) {
        let mut b = SnapshotBuilder::new(5);
        b.intern_filename("unused.py");
        let deep = b.intern_traceback(
            &[
                ("/srv/app/café.py", 12),
                ("<frozen importlib._bootstrap>", 1),
                ("😀/ü.py", i64::MAX),
            ],
            40,
        );
        let shallow = b.intern_traceback(&[("/srv/app/café.py", 12)], 1);
        let same_frames = b.intern_traceback(&[("/srv/app/café.py", 12)], 2);
        let empty = b.intern_traceback(&[], 0);
        let negative = b.intern_traceback(&[("neg.py", i64::MIN)], 1);
        b.push_trace(0, 32, deep);
        b.push_trace(0, 32, deep);
        b.push_trace(u64::MAX, u64::MAX, shallow);
        b.push_trace(2, 0, same_frames);
        b.push_trace(1, 7, empty);
        b.push_trace(0, 1, negative);
        (b.finish(), br#"{"test_attr": "new"}"#.to_vec())
    }

    fn many_traces(n: u64, ntracebacks: u64) -> SnapshotData {
        let mut b = SnapshotBuilder::new(3);
        let names: Vec<String> = (0..50).map(|i| format!("pkg/mod{i}.py")).collect();
        let tbs: Vec<_> = (0..ntracebacks)
            .map(|i| {
                let frames: Vec<(&str, i64)> = (0..(i % 4))
                    .map(|d| {
                        (
                            names[((i * 7 + d) % 50) as usize].as_str(),
                            (i * 13 + d) as i64,
                        )
                    })
                    .collect();
                b.intern_traceback(&frames, (i % 4) as u32 + 1)
            })
            .collect();
        for i in 0..n {
            b.push_trace(
                i % 3,
                i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                tbs[(i % ntracebacks) as usize],
            );
        }
        b.finish()
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        // Across the 8-byte fast path and the byte-wise tail, and when fed in
        // pieces.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let mut bitwise = !0u32;
        for &b in &data {
            bitwise ^= u32::from(b);
            for _ in 0..8 {
                bitwise = if bitwise & 1 != 0 {
                    0xEDB8_8320 ^ (bitwise >> 1)
                } else {
                    bitwise >> 1
                };
            }
        }
        assert_eq!(crc32(&data), !bitwise);
        let mut pieces = Crc32::new();
        for part in data.chunks(13) {
            pieces.update(part);
        }
        assert_eq!(pieces.finish(), !bitwise);
    }

    #[test]
    fn empty_snapshot_round_trips() {
        let data = SnapshotData::default();
        let bytes = encode(&data, b"");
        assert_eq!(bytes.len(), HEADER_LEN + CHECKSUM_LEN);
        assert_eq!(read(&bytes), Ok((data, Vec::new())));
    }

    #[test]
    fn sample_round_trips_exactly() {
        let (data, attrs) = sample();
        let bytes = encode(&data, &attrs);
        let (back, back_attrs) = read(&bytes).unwrap();
        assert_eq!(back, data);
        assert_eq!(back_attrs, attrs);
        assert_eq!(back.filenames[1], "/srv/app/café.py");
        assert_eq!(back.traces[2].size, u64::MAX);
        // One encoding per snapshot: re-encoding gives the same bytes.
        assert_eq!(encode(&back, &back_attrs), bytes);
    }

    #[test]
    fn many_traces_round_trip() {
        let data = many_traces(100_000, 1000);
        let attrs: Vec<u8> = (0..=255).collect();
        let bytes = encode(&data, &attrs);
        assert_eq!(read(&bytes), Ok((data, attrs)));
    }

    #[test]
    fn layout_matches_the_documented_spec() {
        let mut b = SnapshotBuilder::new(7);
        let tb = b.intern_traceback(&[("é", -2)], 9);
        b.push_trace(3, 0x1122, tb);
        let data = b.finish();

        let mut expected = Vec::new();
        expected.extend_from_slice(b"\x89LGSNAP\r\n\x1a\n\0");
        expected.extend_from_slice(&1u32.to_le_bytes());
        let file_len: u64 = 56 + (4 + 2) + (8 + 12) + 20 + 2 + 4;
        expected.extend_from_slice(&file_len.to_le_bytes());
        expected.extend_from_slice(&7u32.to_le_bytes()); // traceback_limit
        expected.extend_from_slice(&1u32.to_le_bytes()); // filename_count
        expected.extend_from_slice(&1u32.to_le_bytes()); // traceback_count
        expected.extend_from_slice(&0u32.to_le_bytes()); // reserved
        expected.extend_from_slice(&1u64.to_le_bytes()); // trace_count
        expected.extend_from_slice(&2u64.to_le_bytes()); // attrs_len
        expected.extend_from_slice(&2u32.to_le_bytes());
        expected.extend_from_slice("é".as_bytes());
        expected.extend_from_slice(&9u32.to_le_bytes()); // total_nframe
        expected.extend_from_slice(&1u32.to_le_bytes()); // nframe
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(&(-2i64).to_le_bytes());
        expected.extend_from_slice(&3u64.to_le_bytes());
        expected.extend_from_slice(&0x1122u64.to_le_bytes());
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(b"{}");
        let crc = crc32(&expected);
        expected.extend_from_slice(&crc.to_le_bytes());

        assert_eq!(encode(&data, b"{}"), expected);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (data, attrs) = sample();
        let bytes = encode(&data, &attrs);
        for n in 0..bytes.len() {
            let err = read(&bytes[..n]).expect_err("a truncated file must not load");
            let msg = err.to_string();
            assert!(msg.starts_with("truncated"), "length {n}: {msg}");
        }
        // Cut and then resealed (as if the writer had lied): must still be
        // rejected or be a valid snapshot, never a panic.
        for n in HEADER_LEN..bytes.len() - CHECKSUM_LEN {
            let mut cut = bytes[..n].to_vec();
            cut.extend_from_slice(&[0; CHECKSUM_LEN]);
            reseal(&mut cut);
            if let Ok((d, _)) = read(&cut) {
                assert_invariants(&d);
            }
        }
    }

    #[test]
    fn every_single_byte_change_is_rejected() {
        let (data, attrs) = sample();
        let bytes = encode(&data, &attrs);
        let mut accepted_after_reseal = 0;
        for i in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xFF, 0x5A] {
                let mut bad = bytes.clone();
                bad[i] ^= mask;
                assert!(read(&bad).is_err(), "flip {mask:#x} at {i} was accepted");

                reseal(&mut bad);
                // Resealing rewrites the length field and the checksum, so
                // changes there are undone; anywhere else the content differs.
                let undone = (16..24).contains(&i) || i >= bytes.len() - CHECKSUM_LEN;
                match read(&bad) {
                    Ok((d, a)) => {
                        assert_invariants(&d);
                        assert_eq!((d, a) == (data.clone(), attrs.clone()), undone, "at {i}");
                        accepted_after_reseal += 1;
                    }
                    Err(e) => assert!(!e.to_string().is_empty()),
                }
            }
        }
        // Flips in sizes, domains, linenos and attrs make valid snapshots;
        // make sure the resealed branch was really exercised.
        assert!(accepted_after_reseal > 100, "{accepted_after_reseal}");
    }

    /// Builds a resealed header-only file with the given fields and `extra`
    /// body bytes.
    fn forged(counts: [u64; 4], extra: &[u8]) -> Vec<u8> {
        let [filenames, tracebacks, traces, attrs] = counts;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&(filenames as u32).to_le_bytes());
        bytes.extend_from_slice(&(tracebacks as u32).to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&traces.to_le_bytes());
        bytes.extend_from_slice(&attrs.to_le_bytes());
        bytes.extend_from_slice(extra);
        bytes.extend_from_slice(&[0; CHECKSUM_LEN]);
        reseal(&mut bytes);
        bytes
    }

    /// A count the reader trusted would make it allocate tens or hundreds of
    /// gigabytes and abort the test process; getting an error back shows the
    /// count was checked against the file first.
    #[test]
    fn hostile_counts_are_rejected_before_allocating() {
        let max32 = u64::from(u32::MAX);
        let cases: [([u64; 4], &[u8], &str); 6] = [
            (
                [max32, 0, 0, 0],
                &[0; 8],
                "truncated: filenames section needs 17179869180 bytes at offset 56, \
                 only 8 are left before the checksum",
            ),
            (
                [0, max32, 0, 0],
                &[0; 8],
                "truncated: tracebacks section needs 34359738360",
            ),
            (
                [0, 0, u64::MAX, 0],
                &[0; 8],
                "truncated: traces section needs 18446744073709551615",
            ),
            (
                [0, 0, 1 << 60, 0],
                &[0; 8],
                "truncated: traces section needs",
            ),
            (
                [0, 0, 0, u64::MAX],
                &[0; 8],
                "truncated: attrs section needs 18446744073709551615",
            ),
            // One filename claiming u32::MAX bytes.
            (
                [1, 0, 0, 0],
                &[0xFF, 0xFF, 0xFF, 0xFF, b'a'],
                "truncated: filenames section needs 4294967295",
            ),
        ];
        for (counts, extra, expected) in cases {
            let err = read(&forged(counts, extra)).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        }
        // A traceback claiming u32::MAX frames.
        let mut extra = Vec::new();
        extra.extend_from_slice(&1u32.to_le_bytes());
        extra.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = read(&forged([0, 1, 0, 0], &extra)).unwrap_err().to_string();
        assert!(
            err.starts_with("truncated: tracebacks section needs 51539607540"),
            "{err}"
        );
    }

    #[test]
    fn header_errors_say_what_is_wrong() {
        let (data, attrs) = sample();
        let good = encode(&data, &attrs);
        let msg = |bytes: &[u8]| read(bytes).unwrap_err().to_string();

        assert_eq!(
            msg(b"PK\x03\x04 not a snapshot"),
            "not a leakguard snapshot (bad magic)"
        );
        assert_eq!(
            msg(b"\x80\x04\x95pickle"),
            "not a leakguard snapshot (bad magic)"
        );
        assert_eq!(
            msg(b""),
            "truncated: header needs 56 bytes at offset 0, file has 0"
        );

        // Text-mode transfers: CRLF -> LF, and LF -> CRLF.
        let crlf_to_lf: Vec<u8> = [&good[..7], b"\n\x1a\n\0", &good[12..]].concat();
        assert!(msg(&crlf_to_lf).starts_with("damaged leakguard snapshot"));
        let lf_to_crlf: Vec<u8> = [&good[..7], b"\r\r\n\x1a\r\n\0", &good[12..]].concat();
        assert!(msg(&lf_to_crlf).starts_with("damaged leakguard snapshot"));

        let mut v7 = good.clone();
        v7[12..16].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(
            msg(&v7),
            "unsupported format version 7 (this leakguard reads version 1)"
        );
        // The version is reported even when the rest is missing.
        assert_eq!(
            msg(&v7[..16]),
            "unsupported format version 7 (this leakguard reads version 1)"
        );

        let len = good.len();
        assert_eq!(
            msg(&good[..len - 10]),
            format!(
                "truncated: header says the file has {len} bytes, it has {}",
                len - 10
            )
        );
        let mut longer = good.clone();
        longer.extend_from_slice(b"junk");
        assert_eq!(
            msg(&longer),
            format!(
                "trailing bytes: header says the file has {len} bytes, it has {}",
                len + 4
            )
        );

        let mut corrupt = good.clone();
        corrupt[HEADER_LEN + 6] ^= 0x20;
        assert!(msg(&corrupt).starts_with("checksum mismatch (stored 0x"));

        let mut reserved = good.clone();
        reserved[36] = 5;
        reseal(&mut reserved);
        assert_eq!(msg(&reserved), "reserved header field is 0x5, must be 0");
    }

    #[test]
    fn content_errors_say_what_is_wrong() {
        let msg = |bytes: &[u8]| read(bytes).unwrap_err().to_string();
        let name = |s: &[u8]| [&(s.len() as u32).to_le_bytes()[..], s].concat();
        let traceback = |total: u32, frames: &[(u32, i64)]| {
            let mut v = Vec::new();
            v.extend_from_slice(&total.to_le_bytes());
            v.extend_from_slice(&(frames.len() as u32).to_le_bytes());
            for &(f, l) in frames {
                v.extend_from_slice(&f.to_le_bytes());
                v.extend_from_slice(&l.to_le_bytes());
            }
            v
        };
        let trace = |tb: u32| [&[0u8; 16][..], &tb.to_le_bytes()].concat();

        let bad_utf8 = [name(b"ok.py"), name(b"\xff\xfe")].concat();
        assert_eq!(
            msg(&forged([2, 0, 0, 0], &bad_utf8)),
            "invalid UTF-8 in filename 1"
        );

        let dup = [
            name(b"b.py"),
            name(b"a.py"),
            name(b"c.py"),
            name(b"a.py"),
            name(b"b.py"),
        ]
        .concat();
        assert_eq!(
            msg(&forged([5, 0, 0, 0], &dup)),
            "duplicate filename: filename 3 repeats filename 1"
        );

        let bad_file = [
            name(b"a.py"),
            traceback(1, &[(0, 1)]),
            traceback(2, &[(0, 1), (1, 2)]),
        ]
        .concat();
        assert_eq!(
            msg(&forged([1, 2, 0, 0], &bad_file)),
            "traceback 1 refers to filename 1 but there are 1"
        );

        let dup_tb = [
            name(b"a.py"),
            traceback(1, &[(0, 1)]),
            traceback(2, &[(0, 1)]),
            traceback(1, &[(0, 1)]),
        ]
        .concat();
        assert_eq!(
            msg(&forged([1, 3, 0, 0], &dup_tb)),
            "duplicate traceback: traceback 2 repeats traceback 0"
        );

        let bad_tb = [traceback(0, &[]), trace(0), trace(1)].concat();
        assert_eq!(
            msg(&forged([0, 1, 2, 0], &bad_tb)),
            "trace 1 refers to traceback 1 but there are 1"
        );

        let trailing = [traceback(0, &[]), vec![0; 3]].concat();
        assert_eq!(
            msg(&forged([0, 1, 0, 0], &trailing)),
            "trailing bytes: sections end at offset 64, the checksum is at 67"
        );
    }

    #[test]
    fn writer_refuses_snapshots_that_break_invariants() {
        let (mut data, attrs) = sample();
        data.traces[0].traceback = 99;
        let err = write(&data, &attrs, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(
            err.to_string()
                .starts_with("trace 0 refers to traceback 99"),
            "{err}"
        );

        let (mut data, attrs) = sample();
        data.tracebacks[0] = Traceback {
            frames: Box::new([Frame {
                filename: 42,
                lineno: 1,
            }]),
            total_nframe: 1,
        };
        let err = write(&data, &attrs, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("traceback 0 refers to filename 42"),
            "{err}"
        );
    }

    #[test]
    fn writer_reports_io_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (data, attrs) = sample();
        let err = write(&data, &attrs, &mut Full).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    }

    /// splitmix64: tiny, deterministic, good enough to drive mutations.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn fuzzed_files_never_panic_and_load_only_valid_snapshots() {
        let (data, attrs) = sample();
        let seeds = [
            encode(&data, &attrs),
            encode(&SnapshotData::default(), b""),
            encode(&many_traces(40, 12), b"{}"),
        ];
        let interesting: [u64; 8] = [
            0,
            1,
            2,
            0x7F,
            0xFFFF,
            u64::from(u32::MAX),
            u64::MAX,
            1 << 32,
        ];
        let mut rng = Rng(0x1EA6_0A4D);
        let (mut accepted, mut rejected) = (0u32, 0u32);
        for case in 0..20_000 {
            let mut bytes = seeds[case % seeds.len()].clone();
            for _ in 0..1 + rng.below(4) {
                let len = bytes.len();
                if len == 0 {
                    break;
                }
                match rng.below(7) {
                    0 => {
                        let i = rng.below(len);
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let i = rng.below(len);
                        bytes[i] = rng.next() as u8;
                    }
                    2 => bytes.truncate(rng.below(len + 1)),
                    3 => {
                        let i = rng.below(len + 1);
                        let n = 1 + rng.below(16);
                        let junk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                        bytes.splice(i..i, junk);
                    }
                    4 => {
                        let i = rng.below(len);
                        let n = rng.below(len - i + 1).min(24);
                        bytes.drain(i..i + n);
                    }
                    5 => {
                        // A header count or length field.
                        let (at, width) =
                            [(16, 8), (24, 4), (28, 4), (32, 4), (40, 8), (48, 8)][rng.below(6)];
                        let v = interesting[rng.below(interesting.len())].to_le_bytes();
                        if bytes.len() >= at + width {
                            bytes[at..at + width].copy_from_slice(&v[..width]);
                        }
                    }
                    _ => {
                        // Any 4-byte field in the body: lengths, counts, indices.
                        if len >= 4 {
                            let i = rng.below(len - 3);
                            let v = interesting[rng.below(interesting.len())] as u32;
                            bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
            if rng.below(4) != 0 {
                reseal(&mut bytes);
            }
            match read(&bytes) {
                Ok((d, a)) => {
                    assert_invariants(&d);
                    // Whatever loads re-encodes to the very same bytes: the
                    // format has one encoding per snapshot.
                    assert_eq!(encode(&d, &a), bytes, "case {case}");
                    accepted += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    rejected += 1;
                }
            }
        }
        assert!(
            accepted > 500 && rejected > 500,
            "{accepted} accepted, {rejected} rejected"
        );
    }

    /// Timing smoke, not an assertion: run with
    /// `cargo test --release --lib snapshot::format -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_one_million_traces() {
        let data = many_traces(1_000_000, 100_000);
        let start = std::time::Instant::now();
        let bytes = encode(&data, b"{}");
        let wrote = start.elapsed();
        let start = std::time::Instant::now();
        let (back, _) = read(&bytes).unwrap();
        let took = start.elapsed();
        assert_eq!(back.traces.len(), 1_000_000);
        println!("{} bytes: write {wrote:?}, read {took:?}", bytes.len());
    }
}
