//! The entries of a stream, packed.
//!
//! A stream is mostly appended to and read in id order, so its entries live
//! in chunks of up to [`CHUNK_ENTRIES`] entries (or about [`CHUNK_BYTES`]
//! bytes), each one byte buffer, held in a `BTreeMap` keyed by an id that is
//! at most every id in the chunk. An entry then costs its encoded bytes
//! (about ten for a small field/value pair) instead of a tree slot, a vector
//! and a reference-counted string per field and value.
//!
//! A chunk's buffer starts with its master fields (the field names of the
//! entry that opened it), then holds its entries in id order:
//!
//! ```text
//! id     varint ms delta, varint seq (a delta when the ms delta is 0)
//!        from the previous entry (the chunk's `base` for the first one)
//! header varint (field count << 1) | same-fields flag
//! data   same: one value per master field; else field, value pairs;
//!        each string is a varint length and its bytes
//! ```
//!
//! As in Redis's listpack nodes, an entry with the master field names stores
//! only its values. Only the last chunk grows: it opens with room for what
//! the chunk before it held, and is shrunk when the next one opens if much
//! room is left, so growth slack is paid about once per stream.

use crate::value::StreamId;
use bytes::Bytes;
use std::collections::BTreeMap;

/// Most entries in one chunk: a lookup scans at most this many.
pub const CHUNK_ENTRIES: u32 = 128;
/// A chunk takes no new entry once its buffer holds this many bytes.
pub const CHUNK_BYTES: usize = 4096;
/// A sealed chunk keeps up to 1/SEAL_SLACK of its size unused.
const SEAL_SLACK: usize = 8;

/// Stream entries in id order. Equality is by content: two equal streams
/// may be chunked differently.
#[derive(Clone, Default)]
pub struct StreamEntries {
    chunks: BTreeMap<StreamId, Chunk>,
    len: usize,
}

#[derive(Clone)]
struct Chunk {
    /// The master fields, then the entries.
    buf: Vec<u8>,
    /// Where the first entry starts in `buf`.
    body: u32,
    count: u32,
    /// The id the first entry is encoded against: at least the chunk's map
    /// key, at most its first id.
    base: StreamId,
    /// The id of the last entry.
    last: StreamId,
}

// ---- varints and ids --------------------------------------------------------------

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a varint this module wrote (the buffers are never read from
/// outside, so they are well formed).
#[inline]
fn get_varint(buf: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let b = buf[*pos];
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes `put_id` writes.
fn id_len(prev: StreamId, id: StreamId) -> usize {
    let dms = id.ms - prev.ms;
    varint_len(dms) + varint_len(if dms == 0 { id.seq - prev.seq } else { id.seq })
}

fn put_id(out: &mut Vec<u8>, prev: StreamId, id: StreamId) {
    let dms = id.ms - prev.ms;
    put_varint(out, dms);
    put_varint(out, if dms == 0 { id.seq - prev.seq } else { id.seq });
}

#[inline]
fn get_id(buf: &[u8], pos: &mut usize, prev: StreamId) -> StreamId {
    let dms = get_varint(buf, pos);
    let seq = get_varint(buf, pos);
    if dms == 0 {
        StreamId::new(prev.ms, prev.seq + seq)
    } else {
        StreamId::new(prev.ms + dms, seq)
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

#[inline]
fn get_str<'a>(buf: &'a [u8], pos: &mut usize) -> &'a [u8] {
    let n = get_varint(buf, pos) as usize;
    let s = &buf[*pos..*pos + n];
    *pos += n;
    s
}

// ---- entries as handed out ----------------------------------------------------------

/// One entry, borrowed from its chunk.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    pub id: StreamId,
    n: usize,
    /// The chunk's master field names (length-prefixed) when the entry
    /// uses them.
    master: Option<&'a [u8]>,
    /// The entry's values, or field/value pairs.
    data: &'a [u8],
}

impl<'a> EntryRef<'a> {
    /// Number of field/value pairs.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The field/value pairs, in order, borrowed.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            master: self.master,
            mpos: 0,
            data: self.data,
            pos: 0,
            left: self.n,
        }
    }

    /// The pairs as owned strings.
    pub fn to_vec(&self) -> Vec<(Bytes, Bytes)> {
        self.fields()
            .map(|(f, v)| (Bytes::copy_from_slice(f), Bytes::copy_from_slice(v)))
            .collect()
    }
}

impl PartialEq for EntryRef<'_> {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id && self.n == o.n && self.fields().eq(o.fields())
    }
}

impl std::fmt::Debug for EntryRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Entry")
            .field(&self.id)
            .field(&self.to_vec())
            .finish()
    }
}

/// The field/value pairs of one entry.
#[derive(Clone)]
pub struct Fields<'a> {
    master: Option<&'a [u8]>,
    mpos: usize,
    data: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let f = match self.master {
            Some(m) => get_str(m, &mut self.mpos),
            None => get_str(self.data, &mut self.pos),
        };
        let v = get_str(self.data, &mut self.pos);
        Some((f, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for Fields<'_> {}

// ---- chunks ----------------------------------------------------------------------------

impl Chunk {
    /// A chunk whose master fields are those of `fields`; empty, with room
    /// for `expect` bytes.
    fn open<'f, I>(id: StreamId, fields: &I, expect: usize) -> Chunk
    where
        I: ExactSizeIterator<Item = (&'f [u8], &'f [u8])> + Clone,
    {
        let mut buf = Vec::with_capacity(expect);
        put_varint(&mut buf, fields.len() as u64);
        for (f, _) in fields.clone() {
            put_str(&mut buf, f);
        }
        let body = buf.len() as u32;
        Chunk {
            buf,
            body,
            count: 0,
            base: id,
            last: id,
        }
    }

    fn full(&self) -> bool {
        self.count >= CHUNK_ENTRIES || self.buf.len() >= CHUNK_BYTES
    }

    /// The master field names, length-prefixed, after their count.
    fn master(&self) -> (usize, &[u8]) {
        let mut pos = 0;
        let n = get_varint(&self.buf, &mut pos) as usize;
        (n, &self.buf[pos..self.body as usize])
    }

    /// Appends an entry whose id is above every id in the chunk.
    fn push<'f, I>(&mut self, id: StreamId, fields: I)
    where
        I: ExactSizeIterator<Item = (&'f [u8], &'f [u8])> + Clone,
    {
        let n = fields.len();
        let same = {
            let (mn, mut m) = self.master();
            mn == n
                && fields.clone().all(|(f, _)| {
                    let mut p = 0;
                    let name = get_str(m, &mut p);
                    m = &m[p..];
                    name == f
                })
        };
        let prev = if self.count == 0 {
            self.base
        } else {
            self.last
        };
        // Room for the whole entry at once: doubling up to a chunk's size
        // (the open chunk is the only one with slack), exact past it.
        let str_len = |s: &[u8]| varint_len(s.len() as u64) + s.len();
        let need = id_len(prev, id)
            + varint_len((n as u64) << 1)
            + fields
                .clone()
                .map(|(f, v)| if same { 0 } else { str_len(f) } + str_len(v))
                .sum::<usize>();
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        if cap - len < need {
            let want = (cap * 2).clamp(64, CHUNK_BYTES + need).max(len + need);
            self.buf.reserve_exact(want - len);
        }
        put_id(&mut self.buf, prev, id);
        put_varint(&mut self.buf, ((n as u64) << 1) | same as u64);
        for (f, v) in fields {
            if !same {
                put_str(&mut self.buf, f);
            }
            put_str(&mut self.buf, v);
        }
        self.count += 1;
        self.last = id;
    }

    /// Gives back the growth slack once no entry will be appended, unless
    /// it is small: shrinking moves the buffer to a smaller size class,
    /// which writes it all again.
    fn seal(&mut self) {
        if self.buf.capacity() - self.buf.len() > self.buf.len() / SEAL_SLACK {
            self.buf.shrink_to_fit();
        }
    }

    fn cursor(&self) -> Cursor<'_> {
        let (mn, master) = self.master();
        Cursor {
            buf: &self.buf,
            master,
            master_n: mn,
            pos: self.body as usize,
            prev: self.base,
            left: self.count,
        }
    }

    /// Removes up to `max` leading entries while `more` holds for their
    /// ids; returns how many went.
    fn drop_front(&mut self, max: usize, more: &mut impl FnMut(StreamId) -> bool) -> u32 {
        let mut c = self.cursor();
        let mut gone = 0;
        let mut end = self.body as usize;
        let mut new_base = self.base;
        while (gone as usize) < max {
            let Some((e, _, stop)) = c.next_span() else {
                break;
            };
            if !more(e.id) {
                break;
            }
            gone += 1;
            end = stop;
            new_base = e.id;
        }
        // The next entry was encoded against the last one removed, which
        // becomes the base.
        self.base = new_base;
        self.buf.drain(self.body as usize..end);
        self.count -= gone;
        gone
    }

    /// Removes the entry `id` if present; the chunk must keep another one.
    fn remove(&mut self, id: StreamId) -> bool {
        let mut c = self.cursor();
        let mut prev = self.base;
        let mut span = None;
        while let Some((e, start, end)) = c.next_span() {
            if e.id >= id {
                if e.id == id {
                    span = Some((start, end));
                }
                break;
            }
            prev = e.id;
        }
        let Some((start, end)) = span else {
            return false;
        };
        if start == self.body as usize {
            // The first entry: the next one is encoded against it.
            self.base = id;
            self.buf.drain(start..end);
        } else if end == self.buf.len() {
            self.buf.truncate(start);
            self.last = prev;
        } else {
            // Re-encode the next entry's id against the one before.
            let mut p = end;
            let next = get_id(&self.buf, &mut p, id);
            let mut head = Vec::with_capacity(20);
            put_id(&mut head, prev, next);
            self.buf.splice(start..p, head);
        }
        self.count -= 1;
        true
    }

    fn find(&self, id: StreamId) -> Option<EntryRef<'_>> {
        if id > self.last {
            return None;
        }
        for e in self.cursor() {
            if e.id >= id {
                return (e.id == id).then_some(e);
            }
        }
        None
    }
}

/// Walks one chunk's entries in order.
#[derive(Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    master: &'a [u8],
    master_n: usize,
    pos: usize,
    prev: StreamId,
    left: u32,
}

impl<'a> Cursor<'a> {
    /// The next entry with where its bytes start and end.
    #[inline]
    fn next_span(&mut self) -> Option<(EntryRef<'a>, usize, usize)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let start = self.pos;
        let id = get_id(self.buf, &mut self.pos, self.prev);
        self.prev = id;
        let hdr = get_varint(self.buf, &mut self.pos);
        let n = (hdr >> 1) as usize;
        let same = hdr & 1 != 0;
        let data_at = self.pos;
        let strings = if same { n } else { 2 * n };
        for _ in 0..strings {
            let l = get_varint(self.buf, &mut self.pos) as usize;
            self.pos += l;
        }
        let e = EntryRef {
            id,
            n: if same { self.master_n.min(n) } else { n },
            master: same.then_some(self.master),
            data: &self.buf[data_at..self.pos],
        };
        Some((e, start, self.pos))
    }
}

impl<'a> Iterator for Cursor<'a> {
    type Item = EntryRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<EntryRef<'a>> {
        self.next_span().map(|x| x.0)
    }
}

/// Builds chunks from entries in id order (a chunk rewritten by an insert
/// in the middle of a stream).
#[derive(Default)]
struct Builder {
    done: Vec<(StreamId, Chunk)>,
}

impl Builder {
    fn push<'f, I>(&mut self, id: StreamId, fields: I)
    where
        I: ExactSizeIterator<Item = (&'f [u8], &'f [u8])> + Clone,
    {
        let room = self.done.last().is_some_and(|(_, c)| !c.full());
        if !room {
            if let Some((_, c)) = self.done.last_mut() {
                c.seal();
            }
            self.done.push((id, Chunk::open(id, &fields, 0)));
        }
        if let Some((_, c)) = self.done.last_mut() {
            c.push(id, fields);
        }
    }

    fn finish(mut self) -> Vec<(StreamId, Chunk)> {
        if let Some((_, c)) = self.done.last_mut() {
            c.seal();
        }
        self.done
    }
}

// ---- the stream's entries -----------------------------------------------------------------

impl StreamEntries {
    pub fn new() -> StreamEntries {
        StreamEntries::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }

    /// Number of chunks (for tests and memory estimates).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Adds an entry, or replaces the one with the same id; returns whether
    /// one was replaced. An id above every other (XADD, loading a file) is
    /// appended to the last chunk; any other rewrites the chunk it falls in.
    pub fn insert<'f, I>(&mut self, id: StreamId, fields: I) -> bool
    where
        I: IntoIterator<Item = (&'f [u8], &'f [u8])>,
        I::IntoIter: ExactSizeIterator + Clone,
    {
        let fields = fields.into_iter();
        // Appended entries tend to look alike, so a new chunk gets room for
        // what the last one held (plus a little): it is written once, not
        // regrown by doubling and then shrunk, each a copy to new memory.
        let mut expect = 0;
        if let Some(mut last) = self.chunks.last_entry() {
            let c = last.get_mut();
            if id > c.last {
                if !c.full() {
                    c.push(id, fields);
                    self.len += 1;
                    return false;
                }
                c.seal();
                expect = (c.buf.len() + c.buf.len() / (2 * SEAL_SLACK)).min(2 * CHUNK_BYTES);
            } else {
                return self.insert_inside(id, fields);
            }
        }
        let mut c = Chunk::open(id, &fields, expect);
        c.push(id, fields);
        self.chunks.insert(id, c);
        self.len += 1;
        false
    }

    /// Inserts an id at or below the last one by rewriting its chunk.
    fn insert_inside<'f, I>(&mut self, id: StreamId, fields: I) -> bool
    where
        I: ExactSizeIterator<Item = (&'f [u8], &'f [u8])> + Clone,
    {
        let key = match self.chunks.range(..=id).next_back() {
            Some((&k, _)) => k,
            None => match self.chunks.keys().next() {
                Some(&k) => k,
                None => return false,
            },
        };
        let Some(old) = self.chunks.remove(&key) else {
            return false;
        };
        let mut b = Builder::default();
        let mut pending = Some(fields);
        let mut replaced = false;
        for e in old.cursor() {
            if e.id >= id {
                if let Some(f) = pending.take() {
                    b.push(id, f);
                    if e.id == id {
                        replaced = true;
                        continue;
                    }
                }
            }
            b.push(e.id, e.fields());
        }
        if let Some(f) = pending.take() {
            b.push(id, f);
        }
        for (k, c) in b.finish() {
            self.chunks.insert(k, c);
        }
        if !replaced {
            self.len += 1;
        }
        replaced
    }

    /// The chunk that would hold `id`.
    fn chunk_of(&self, id: StreamId) -> Option<(&StreamId, &Chunk)> {
        self.chunks.range(..=id).next_back()
    }

    pub fn get(&self, id: StreamId) -> Option<EntryRef<'_>> {
        self.chunk_of(id).and_then(|(_, c)| c.find(id))
    }

    pub fn contains(&self, id: StreamId) -> bool {
        self.get(id).is_some()
    }

    /// Removes the entry `id`; returns whether it was there.
    pub fn remove(&mut self, id: StreamId) -> bool {
        let Some((&key, c)) = self.chunk_of(id) else {
            return false;
        };
        if c.count == 1 {
            if c.last != id {
                return false;
            }
            self.chunks.remove(&key);
            self.len -= 1;
            return true;
        }
        let gone = self.chunks.get_mut(&key).is_some_and(|c| c.remove(id));
        if gone {
            self.len -= 1;
        }
        gone
    }

    /// Removes every entry with an id below `at`, whole chunks at a time
    /// where they lie wholly below it; returns how many went.
    pub fn remove_before(&mut self, at: StreamId) -> usize {
        self.remove_first_while(usize::MAX, |id| id < at)
    }

    /// Removes up to `max` entries from the head while `more` holds for
    /// their ids (it must hold for a prefix of the ids, then not: a chunk
    /// whose last id passes goes whole); returns how many went.
    pub fn remove_first_while(
        &mut self,
        max: usize,
        mut more: impl FnMut(StreamId) -> bool,
    ) -> usize {
        let mut gone = 0usize;
        while gone < max {
            let Some(mut first) = self.chunks.first_entry() else {
                break;
            };
            let c = first.get_mut();
            if c.count as usize <= max - gone && more(c.last) {
                gone += c.count as usize;
                first.remove();
                continue;
            }
            // Fewer than all of this chunk's entries go.
            gone += c.drop_front(max - gone, &mut more) as usize;
            break;
        }
        self.len -= gone;
        gone
    }

    /// Removes the first entry; returns its id.
    pub fn pop_first(&mut self) -> Option<StreamId> {
        let id = self.first_id()?;
        self.remove(id);
        Some(id)
    }

    pub fn first_id(&self) -> Option<StreamId> {
        self.first().map(|e| e.id)
    }

    /// The last id, without walking its chunk.
    pub fn last_id(&self) -> Option<StreamId> {
        self.chunks.values().next_back().map(|c| c.last)
    }

    pub fn first(&self) -> Option<EntryRef<'_>> {
        self.chunks.values().next().and_then(|c| c.cursor().next())
    }

    pub fn last(&self) -> Option<EntryRef<'_>> {
        self.chunks
            .values()
            .next_back()
            .and_then(|c| c.cursor().last())
    }

    /// Every entry in id order.
    pub fn iter(&self) -> Range<'_> {
        self.range(StreamId::MIN, StreamId::MAX)
    }

    /// Entries with `start <= id <= end`, in id order.
    pub fn range(&self, start: StreamId, end: StreamId) -> Range<'_> {
        let from = self.chunk_of(start).map_or(StreamId::MIN, |(&k, _)| k);
        Range {
            chunks: self.chunks.range(from..),
            cur: None,
            start,
            end,
        }
    }

    /// Entries with `start <= id <= end`, newest first.
    pub fn range_rev(&self, start: StreamId, end: StreamId) -> RevRange<'_> {
        RevRange {
            chunks: self.chunks.range(..=end).rev(),
            buf: Vec::new(),
            start,
            end,
            done: false,
        }
    }
}

/// Forward iteration over a range of ids.
pub struct Range<'a> {
    chunks: std::collections::btree_map::Range<'a, StreamId, Chunk>,
    cur: Option<Cursor<'a>>,
    start: StreamId,
    end: StreamId,
}

impl<'a> Iterator for Range<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        loop {
            if let Some(c) = &mut self.cur {
                if let Some(e) = c.next() {
                    if e.id > self.end {
                        self.cur = None;
                        self.chunks = Default::default();
                        return None;
                    }
                    if e.id >= self.start {
                        return Some(e);
                    }
                    continue;
                }
            }
            let (_, chunk) = self.chunks.next()?;
            self.cur = Some(chunk.cursor());
        }
    }
}

/// Backward iteration over a range of ids: each chunk is decoded forward
/// into a small buffer, then handed out from its end.
pub struct RevRange<'a> {
    chunks: std::iter::Rev<std::collections::btree_map::Range<'a, StreamId, Chunk>>,
    buf: Vec<EntryRef<'a>>,
    start: StreamId,
    end: StreamId,
    done: bool,
}

impl<'a> Iterator for RevRange<'a> {
    type Item = EntryRef<'a>;

    fn next(&mut self) -> Option<EntryRef<'a>> {
        loop {
            if self.done {
                return None;
            }
            if let Some(e) = self.buf.pop() {
                if e.id < self.start {
                    self.done = true;
                    return None;
                }
                if e.id <= self.end {
                    return Some(e);
                }
                continue;
            }
            let Some((_, chunk)) = self.chunks.next() else {
                self.done = true;
                return None;
            };
            self.buf.extend(chunk.cursor());
        }
    }
}

impl PartialEq for StreamEntries {
    fn eq(&self, o: &Self) -> bool {
        self.len == o.len && self.iter().eq(o.iter())
    }
}

impl std::fmt::Debug for StreamEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|e| (e.id, e.to_vec())))
            .finish()
    }
}

impl FromIterator<(StreamId, Vec<(Bytes, Bytes)>)> for StreamEntries {
    fn from_iter<T: IntoIterator<Item = (StreamId, Vec<(Bytes, Bytes)>)>>(it: T) -> Self {
        let mut s = StreamEntries::default();
        for (id, fields) in it {
            s.insert(id, fields.iter().map(|(f, v)| (&f[..], &v[..])));
        }
        s
    }
}

#[cfg(test)]
mod tests;
