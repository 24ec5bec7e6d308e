//! The keyspace: numbered databases, each split into many small segments.
//!
//! A database is 2^SEGMENT_BITS independent hash tables chosen by the top
//! bits of the key's hash. Small segments keep growth incremental (no
//! stop-the-world rehash of a million-key table) and are the unit the
//! snapshotter walks (a few hundred buckets of one at a time) and shares
//! copy-on-write.
//!
//! Expiry lives in the entry (absolute Unix ms, 0 = none). Expired keys are
//! removed lazily when a command touches them and by [`Db::active_expire`],
//! which visits only segments that hold volatile keys. Every removal by
//! expiry is queued in [`Db::take_expired`] so the server can propagate a DEL
//! and wake WATCHers, as Redis does.

use crate::value::Value;
use hashbrown::hash_table::{Entry as TableEntry, HashTable};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

pub const SEGMENT_BITS: u32 = 10;
pub const SEGMENTS: usize = 1 << SEGMENT_BITS;

use crate::entry::EntryBox;
pub use crate::entry::{Entry, Removed};

/// A key to insert: owned key, value, absolute expiry in ms (0 = none).
pub type NewEntry = (Box<[u8]>, Value, u64);

#[derive(Debug, Clone, Default)]
struct Segment {
    /// Entries are boxed: a table slot is one pointer, so the empty slots
    /// a hash table keeps cost 8 bytes each instead of a whole entry.
    table: HashTable<EntryBox>,
    /// How many entries of this segment carry an expiry.
    volatile: u32,
    /// Epoch of the last snapshot that has taken this segment whole.
    saved_epoch: u64,
    /// Epoch of the snapshot whose marks some entries of this segment may
    /// carry (0: none). Marks of another epoch are stale (that snapshot
    /// stopped before its walker got here) and are cleared before the
    /// segment is used by the next one.
    marked_epoch: u64,
}

/// Where a snapshot's entries go. It is called on the executor thread and
/// must not block: it copies what it is given (cheap: a small string's
/// bytes, or a reference to a larger value) and hands the copies to a
/// background encoder.
pub trait SegmentSink: Send {
    /// The state at the snapshot's point in time of one key, taken just
    /// before a command changes it. Called at most once per key.
    fn save_entry(&mut self, db: usize, entry: &Entry);
    /// Entries of one segment, or of a run of its buckets, as they are at
    /// the snapshot's point in time.
    fn save_segment(&mut self, db: usize, entries: &mut dyn Iterator<Item = &Entry>);
    /// As [`SegmentSink::save_entry`], for a pre-image the keyspace no
    /// longer needs (a write replaced the value): the sink keeps it as is,
    /// with no copy of the value.
    fn save_owned(&mut self, db: usize, entry: EntryBox) {
        self.save_entry(db, &entry);
    }
    /// Whether [`SegmentSink::save_owned`] would keep `entry`: when it
    /// would only copy or encode it and drop it, the keyspace hands over
    /// the live entry instead of building an owned one.
    fn takes_owned(&self, _entry: &Entry) -> bool {
        false
    }
}

/// Installed in every database while a snapshot runs: before a key the
/// snapshot has not reached is changed, its current state is handed to the
/// sink (one key, not its whole segment), so the snapshot sees the state at
/// its start while writes go on.
#[derive(Clone)]
pub struct SnapHook {
    pub epoch: u64,
    /// The database number at the snapshot's start (SWAPDB may move the Db).
    pub db: usize,
    pub sink: Arc<Mutex<dyn SegmentSink>>,
}

impl std::fmt::Debug for SnapHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapHook(epoch {}, db {})", self.epoch, self.db)
    }
}

/// One database.
#[derive(Debug, Clone)]
pub struct Db {
    segments: Vec<Segment>,
    hasher: hashbrown::DefaultHashBuilder,
    len: usize,
    volatile: usize,
    expired: Vec<Box<[u8]>>,
    expire_cursor: usize,
    /// Keys removed by expiry since start (INFO stats expired_keys).
    pub expired_count: u64,
    /// The server's LRU clock (seconds), stamped on keys as they are
    /// written or read; the executor advances it.
    pub lru_clock: u32,
    /// The running snapshot, if any.
    snap: Option<SnapHook>,
    /// The segment the snapshot walker is in.
    snap_cursor: usize,
    /// Where the walker is inside that segment: the next bucket of its
    /// table, and whether it is taking the entries or, every one taken,
    /// clearing their marks.
    snap_bucket: usize,
    snap_clearing: bool,
    /// Segments detached by FLUSHDB during a snapshot, still to be saved.
    detached: Vec<Segment>,
}

impl Default for Db {
    fn default() -> Self {
        Db::new()
    }
}

impl Db {
    pub fn new() -> Db {
        Db {
            segments: (0..SEGMENTS).map(|_| Segment::default()).collect(),
            hasher: hashbrown::DefaultHashBuilder::default(),
            len: 0,
            volatile: 0,
            expired: Vec::new(),
            expire_cursor: 0,
            expired_count: 0,
            lru_clock: 0,
            snap: None,
            snap_cursor: 0,
            snap_bucket: 0,
            snap_clearing: false,
            detached: Vec::new(),
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn seg_of(hash: u64) -> usize {
        // Bits 32.. pick the segment: hashbrown uses the top 7 bits as the
        // per-slot tag and the low bits for the bucket, so taking the top
        // bits here made every key of a segment share one tag and turned
        // each probe into key comparisons (it dominated loading profiles).
        ((hash >> 32) as usize) & (SEGMENTS - 1)
    }

    /// Number of keys, expired-but-not-yet-removed ones included (as DBSIZE).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of keys with an expiry.
    pub fn volatile_len(&self) -> usize {
        self.volatile
    }

    /// Looks a key up without touching expiry or access time (for tools,
    /// snapshots and tests).
    pub fn peek(&self, key: &[u8]) -> Option<&Entry> {
        let h = self.hash(key);
        self.segments[Self::seg_of(h)]
            .table
            .find(h, |e| e.key() == key)
            .map(|e| &**e)
    }

    /// As [`Db::peek`], for warming the caches ahead of a pipeline's
    /// commands. Where a running snapshot has not taken the key yet, a
    /// write to it first copies its value (a string up to a KiB is copied
    /// byte for byte), which otherwise waited on each line of a value the
    /// write itself never reads: its bytes are asked for too.
    pub fn peek_warm(&self, key: &[u8]) -> Option<&Entry> {
        let h = self.hash(key);
        let seg = Self::seg_of(h);
        let e = self.segments[seg].table.find(h, |e| e.key() == key)?;
        if self.preimage_pending(seg) && !e.snap_marked() {
            crate::prefetch::value(e);
        }
        Some(&**e)
    }

    /// Looks a key up for a command: an expired key is removed (and queued
    /// for propagation) and reported absent.
    pub fn get(&mut self, key: &[u8], now_ms: u64) -> Option<&mut Entry> {
        let h = self.hash(key);
        let seg = Self::seg_of(h);
        // The caller may change the entry: a snapshot that has not reached
        // this segment takes the key's point-in-time state first. Doing so
        // before the lookup leaves the hit path with a single probe when no
        // snapshot is pending.
        self.before_write_key(seg, h, key);
        let clock = self.lru_clock;
        let segment = &mut self.segments[seg];
        let found = segment.table.find_entry(h, |e| e.key() == key).ok()?;
        if !found.get().is_expired(now_ms) {
            let e = found.into_mut();
            e.access = clock;
            return Some(&mut **e);
        }
        let (gone, _) = found.remove();
        drop(gone);
        segment.volatile -= 1;
        self.volatile -= 1;
        self.len -= 1;
        self.expired.push(key.into());
        self.expired_count += 1;
        None
    }

    /// Looks a key up for a command that only reads it: as [`Db::get`],
    /// but a running snapshot is handed nothing for a live key (it is not
    /// changing), only for an expired one, which the lookup removes.
    pub fn get_ro(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let h = self.hash(key);
        let seg = Self::seg_of(h);
        if !self.preimage_pending(seg) {
            return self.get(key, now_ms).map(|e| &*e);
        }
        // Checked before taking the entry mutably: the removal of an
        // expired key goes through `get`, which saves its pre-image.
        let expired = self.segments[seg]
            .table
            .find(h, |e| e.key() == key)?
            .is_expired(now_ms);
        if expired {
            self.get(key, now_ms);
            return None;
        }
        // The access time is not part of the point in time a snapshot
        // keeps (Redis's child would see the pre-fork clock, a difference
        // of one save's duration in an approximate LRU), so it is updated
        // without a copy.
        let clock = self.lru_clock;
        let e = self.segments[seg].table.find_mut(h, |e| e.key() == key)?;
        e.access = clock;
        Some(&**e)
    }

    /// Whether a live key exists (removes it if expired).
    pub fn contains(&mut self, key: &[u8], now_ms: u64) -> bool {
        self.get_ro(key, now_ms).is_some()
    }

    /// Inserts or replaces a key. The expiry is set to `expire_at` (0 = none).
    /// Returns the previous entry, if any.
    pub fn insert(&mut self, key: &[u8], value: Value, expire_at: u64) -> Option<Removed> {
        let h = self.hash(key);
        self.insert_hashed(h, key, value, expire_at)
    }

    /// As [`Db::insert`] for a caller that drops the old value (SET and
    /// the like): returns whether a key was replaced. During a snapshot
    /// that still needs the key, the old value moves into the snapshot
    /// instead of being copied for it and then dropped here.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: u64) -> bool {
        let h = self.hash(key);
        let seg = Self::seg_of(h);
        if self.preimage_pending(seg) {
            return self.set_during_snapshot(seg, h, key, value, expire_at);
        }
        self.insert_hashed(h, key, value, expire_at).is_some()
    }

    #[cold]
    fn set_during_snapshot(
        &mut self,
        seg: usize,
        h: u64,
        key: &[u8],
        value: Value,
        expire_at: u64,
    ) -> bool {
        let Db { snap, segments, .. } = self;
        let Some(hook) = snap else {
            return false;
        };
        let segment = &mut segments[seg];
        if segment.marked_epoch != hook.epoch {
            clear_marks(segment);
            segment.marked_epoch = hook.epoch;
        }
        let Some(e) = segment.table.find_mut(h, |e| e.key() == key) else {
            // Created: `insert_hashed` marks the new entry.
            return self.insert_hashed(h, key, value, expire_at).is_some();
        };
        // Set when the old value is to move into the snapshot.
        let mut taker = None;
        if !e.snap_marked() {
            let mut sink = hook.sink.lock().unwrap_or_else(|p| p.into_inner());
            if sink.takes_owned(e) {
                taker = Some(sink);
            } else {
                sink.save_entry(hook.db, e);
            }
        }
        // Replaced in place, without another lookup.
        let old_value = std::mem::replace(&mut e.value, value);
        let old_expire = std::mem::replace(&mut e.expire_at, expire_at);
        let old_access = std::mem::replace(&mut e.access, self.lru_clock);
        e.set_str_encoding(crate::entry::StrEncoding::Auto);
        e.set_snap_mark(true);
        let was = u32::from(old_expire != 0);
        let now = u32::from(expire_at != 0);
        segment.volatile = segment.volatile + now - was;
        self.volatile = self.volatile + now as usize - was as usize;
        if let Some(mut sink) = taker {
            sink.save_owned(
                hook.db,
                EntryBox::new(key, old_value, old_expire, old_access),
            );
        }
        true
    }

    /// Whether a running snapshot has not reached segment `seg` yet, so a
    /// change there must first hand it the key's point-in-time state.
    #[inline]
    fn preimage_pending(&self, seg: usize) -> bool {
        matches!(&self.snap, Some(hook) if self.segments[seg].saved_epoch < hook.epoch)
    }

    /// As [`Db::insert`], for a key the caller already owns (the RDB
    /// loader). The entry keeps its own copy of the key.
    pub fn insert_owned(
        &mut self,
        key: Box<[u8]>,
        value: Value,
        expire_at: u64,
    ) -> Option<Removed> {
        self.insert(&key, value, expire_at)
    }

    /// Inserts many entries, grouped by segment so each segment's table
    /// stays cache-hot while it is filled (the RDB loader's fast path).
    /// Later duplicates replace earlier ones, as repeated inserts would.
    /// Returns how many inserts replaced an existing key.
    pub fn insert_batch(&mut self, batch: &mut Vec<NewEntry>) -> usize {
        let mut order: Vec<(u32, u32, u64)> = batch
            .iter()
            .enumerate()
            .map(|(i, (k, _, _))| {
                let h = self.hash(k);
                (Self::seg_of(h) as u32, i as u32, h)
            })
            .collect();
        // Stable on (segment, index): duplicates keep their input order.
        order.sort_unstable_by_key(|x| (x.0, x.1));
        let mut slots: Vec<Option<NewEntry>> = batch.drain(..).map(Some).collect();
        let mut replaced = 0;
        for (_, i, h) in order {
            if let Some((k, v, e)) = slots[i as usize].take() {
                replaced += usize::from(self.insert_hashed(h, &k, v, e).is_some());
            }
        }
        replaced
    }

    fn insert_hashed(
        &mut self,
        h: u64,
        key: &[u8],
        value: Value,
        expire_at: u64,
    ) -> Option<Removed> {
        let seg = Self::seg_of(h);
        self.before_write_key(seg, h, key);
        // A key created in a segment the running snapshot has not reached
        // did not exist at its start: marked, so the walker skips it.
        let mark_epoch = match &self.snap {
            Some(hook) if self.segments[seg].saved_epoch < hook.epoch => hook.epoch,
            _ => 0,
        };
        // A full table rehashes before it looks the key up, even to
        // replace one (hashbrown reserves room first).
        let table = &self.segments[seg].table;
        if table.len() == table.capacity() {
            self.before_rehash(seg);
        }
        let hasher = &self.hasher;
        let segment = &mut self.segments[seg];
        let new_volatile = u32::from(expire_at != 0);
        match segment
            .table
            .entry(h, |e| e.key() == key, |e| hasher.hash_one(e.key()))
        {
            TableEntry::Occupied(mut o) => {
                let e = o.get_mut();
                let old_volatile = u32::from(e.expire_at != 0);
                let old_value = std::mem::replace(&mut e.value, value);
                let old_expire = std::mem::replace(&mut e.expire_at, expire_at);
                e.access = self.lru_clock;
                e.set_str_encoding(crate::entry::StrEncoding::Auto);
                segment.volatile = segment.volatile + new_volatile - old_volatile;
                self.volatile = self.volatile + new_volatile as usize - old_volatile as usize;
                Some(Removed {
                    value: old_value,
                    expire_at: old_expire,
                    access: 0,
                })
            }
            TableEntry::Vacant(v) => {
                let mut e = EntryBox::new(key, value, expire_at, self.lru_clock);
                if mark_epoch != 0 {
                    // `before_write_key` above made the segment's marks
                    // this epoch's.
                    e.set_snap_mark(true);
                    segment.marked_epoch = mark_epoch;
                }
                v.insert(e);
                segment.volatile += new_volatile;
                self.volatile += new_volatile as usize;
                self.len += 1;
                None
            }
        }
    }

    /// Pre-sizes the segments for about `additional` more keys (the RDB
    /// loader passes the RESIZEDB hint, bounded, to avoid rehash cascades).
    pub fn reserve(&mut self, additional: usize) {
        let per = additional.div_ceil(SEGMENTS);
        // Growing moves entries: a walker part-way through a segment
        // starts it over.
        self.snap_bucket = 0;
        let hasher = &self.hasher;
        for s in &mut self.segments {
            s.table.reserve(per, |e| hasher.hash_one(e.key()));
        }
    }

    /// Removes a key whatever its expiry; returns the entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Removed> {
        let h = self.hash(key);
        self.remove_hashed(h, key)
    }

    fn remove_hashed(&mut self, h: u64, key: &[u8]) -> Option<Removed> {
        self.before_write_key(Self::seg_of(h), h, key);
        let segment = &mut self.segments[Self::seg_of(h)];
        let found = segment.table.find_entry(h, |e| e.key() == key).ok()?;
        let (entry, _) = found.remove();
        let entry = entry.into_removed();
        if entry.expire_at != 0 {
            segment.volatile -= 1;
            self.volatile -= 1;
        }
        self.len -= 1;
        Some(entry)
    }

    /// Sets or clears (0) the expiry of an existing key. Returns false when
    /// the key does not exist.
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) -> bool {
        let h = self.hash(key);
        self.before_write_key(Self::seg_of(h), h, key);
        let segment = &mut self.segments[Self::seg_of(h)];
        let Some(e) = segment.table.find_mut(h, |e| e.key() == key) else {
            return false;
        };
        let was = u32::from(e.expire_at != 0);
        let now = u32::from(expire_at != 0);
        e.expire_at = expire_at;
        segment.volatile = segment.volatile + now - was;
        self.volatile = self.volatile + now as usize - was as usize;
        true
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        // During a snapshot, segments it has not saved yet are set aside
        // (moved, not copied) until the walker saves them.
        let epoch = self.snap.as_ref().map(|h| h.epoch);
        for s in &mut self.segments {
            let old = std::mem::take(s);
            if let Some(epoch) = epoch {
                s.saved_epoch = epoch;
                if old.saved_epoch < epoch && !old.table.is_empty() {
                    self.detached.push(old);
                }
            }
        }
        self.len = 0;
        self.volatile = 0;
        self.expire_cursor = 0;
    }

    /// Whether keys were removed by expiry since the last `take_expired`.
    #[inline]
    pub fn has_expired(&self) -> bool {
        !self.expired.is_empty()
    }

    /// Keys removed by expiry since the last call, for propagation.
    pub fn take_expired(&mut self) -> Vec<Box<[u8]>> {
        std::mem::take(&mut self.expired)
    }

    /// Iterates every entry (expired ones included) in segment order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.segments
            .iter()
            .flat_map(|s| s.table.iter().map(|e| &**e))
    }

    /// One step of an incremental SCAN. The cursor is the next segment to
    /// visit; whole segments are returned, so a key present for the whole
    /// scan is returned exactly once. Visits segments until at least `count`
    /// keys were seen or `10 * count` segments were visited (Redis bounds
    /// empty-bucket visits the same way). Returns the next cursor (0 = done).
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&Entry)) -> u64 {
        let count = count.max(1);
        let mut seg = cursor as usize;
        if seg >= SEGMENTS {
            return 0;
        }
        let mut seen = 0usize;
        let mut visited = 0usize;
        while seg < SEGMENTS && seen < count && visited < count.saturating_mul(10) {
            for e in self.segments[seg].table.iter() {
                f(e);
                seen += 1;
            }
            seg += 1;
            visited += 1;
        }
        if seg >= SEGMENTS {
            0
        } else {
            seg as u64
        }
    }

    /// A random live key, or None when the db is empty. Expired keys met on
    /// the way are removed, as Redis's RANDOMKEY does.
    pub fn random_key(&mut self, now_ms: u64, rng: &mut impl rand::Rng) -> Option<Box<[u8]>> {
        // Bounded tries, then a deterministic sweep, so a db full of expired
        // keys cannot loop forever.
        for _ in 0..100 {
            if self.len == 0 {
                return None;
            }
            let seg = rng.gen_range(0..SEGMENTS);
            let n = self.segments[seg].table.len();
            if n == 0 {
                continue;
            }
            let idx = rng.gen_range(0..n);
            let key: Box<[u8]> = self.segments[seg].table.iter().nth(idx)?.key.into();
            if self.get(&key, now_ms).is_some() {
                return Some(key);
            }
        }
        let keys: Vec<Box<[u8]>> = self.iter().map(|e| e.key().into()).collect();
        keys.into_iter().find(|k| self.get(k, now_ms).is_some())
    }

    /// Hands one key's point-in-time state to the running snapshot before
    /// it changes, if the snapshot has not reached its segment nor taken
    /// the key yet. `h` is the key's hash. The work is one lookup and one
    /// copy of the entry, whatever the segment's size; the key is then
    /// marked (a bit in the entry), so nothing grows per key.
    #[inline]
    fn before_write_key(&mut self, seg: usize, h: u64, key: &[u8]) {
        if let Some(hook) = &self.snap {
            if self.segments[seg].saved_epoch < hook.epoch {
                self.save_key(seg, h, key);
            }
        }
    }

    #[cold]
    fn save_key(&mut self, seg: usize, h: u64, key: &[u8]) {
        let Db { snap, segments, .. } = self;
        let Some(hook) = snap else { return };
        let segment = &mut segments[seg];
        if segment.marked_epoch != hook.epoch {
            clear_marks(segment);
            segment.marked_epoch = hook.epoch;
        }
        // A missing key needs nothing: a write that creates it marks the
        // new entry (see `insert_hashed`).
        let Some(e) = segment.table.find_mut(h, |e| e.key() == key) else {
            return;
        };
        if e.snap_marked() {
            return;
        }
        e.set_snap_mark(true);
        let mut sink = hook.sink.lock().unwrap_or_else(|p| p.into_inner());
        sink.save_entry(hook.db, e);
    }

    /// Starts a snapshot of this database as database `hook.db`. An empty
    /// database needs no hook: nothing written later belongs to the snapshot.
    pub fn begin_snapshot(&mut self, hook: SnapHook) {
        self.clear_snapshot_state();
        self.snap = if self.len == 0 { None } else { Some(hook) };
    }

    fn clear_snapshot_state(&mut self) {
        self.snap_cursor = 0;
        self.snap_bucket = 0;
        self.snap_clearing = false;
        self.detached.clear();
    }

    /// Segment `seg` is about to rehash (or may), which moves its entries
    /// between buckets: if the walker is part-way through it, it starts the
    /// segment over. What it took is marked, so nothing is taken twice; in
    /// the clearing pass, clearing again costs only time.
    #[inline]
    fn before_rehash(&mut self, seg: usize) {
        if self.snap.is_some() && self.snap_cursor == seg {
            self.snap_bucket = 0;
        }
    }

    /// Walks at most `budget` buckets of segments the snapshot has not
    /// reached, taking their entries, and takes what it walked off the
    /// budget. Returns true when every segment of this database is saved
    /// (the hook is then removed).
    ///
    /// A segment is walked a few hundred buckets at a time, so that a step
    /// takes about the same time whatever the segments' size: whole
    /// segments of 2,000 keys made steps of up to 1.7 ms in a loaded save,
    /// all of it time a write waited. Each entry taken is marked, as a
    /// pre-image is, and once the whole segment is taken the marks are
    /// cleared, again a few buckets at a time. A table that rehashes moves
    /// entries between buckets; the walk then starts that segment over
    /// (see `insert_hashed`), and the marks say what it already took.
    pub fn snapshot_step(&mut self, budget: &mut usize) -> bool {
        let Some(h) = self.snap.clone() else {
            return true;
        };
        // Segments set aside by FLUSHDB no longer change: taken whole.
        while *budget > 0 {
            let Some(old) = self.detached.pop() else {
                break;
            };
            let mut sink = h.sink.lock().unwrap_or_else(|p| p.into_inner());
            save_unsaved(&mut *sink, h.db, &old, h.epoch);
            *budget = budget.saturating_sub(old.table.num_buckets().max(1));
        }
        while self.snap_cursor < SEGMENTS && *budget > 0 {
            let segment = &mut self.segments[self.snap_cursor];
            // FLUSHDB may have replaced the segment with an empty table.
            self.snap_bucket = self.snap_bucket.min(segment.table.num_buckets());
            if self.snap_clearing {
                let end = clear_buckets(segment, self.snap_bucket, *budget);
                *budget -= end - self.snap_bucket;
                self.snap_bucket = end;
                if end < segment.table.num_buckets() {
                    continue;
                }
                segment.marked_epoch = 0;
            } else if segment.saved_epoch < h.epoch && !segment.table.is_empty() {
                if segment.marked_epoch != h.epoch {
                    // Stale marks of a snapshot that stopped before here.
                    clear_marks(segment);
                    segment.marked_epoch = h.epoch;
                }
                let mut sink = h.sink.lock().unwrap_or_else(|p| p.into_inner());
                let end = take_buckets(&mut *sink, h.db, segment, self.snap_bucket, *budget);
                *budget -= end - self.snap_bucket;
                self.snap_bucket = end;
                if end < segment.table.num_buckets() {
                    continue;
                }
                segment.saved_epoch = h.epoch;
                self.snap_clearing = true;
                self.snap_bucket = 0;
                continue;
            } else if segment.saved_epoch < h.epoch {
                // Empty: nothing of it belongs to the snapshot.
                segment.saved_epoch = h.epoch;
                segment.marked_epoch = 0;
            }
            // Taken and cleared here, or emptied by FLUSHDB before the
            // walker came.
            self.snap_cursor += 1;
            self.snap_bucket = 0;
            self.snap_clearing = false;
        }
        if self.snap_cursor >= SEGMENTS && self.detached.is_empty() {
            // The walker cleared every segment's marks on its way.
            self.snap = None;
            return true;
        }
        false
    }

    /// Drops the snapshot hook without saving the rest (a failed or
    /// cancelled snapshot).
    pub fn abort_snapshot(&mut self) {
        // Segments the walker has not passed keep their marks: their
        // `marked_epoch` tells the next snapshot to clear them before it
        // uses the segment, one segment at a time.
        self.snap = None;
        self.clear_snapshot_state();
    }

    /// Whether a snapshot is still walking this database.
    pub fn snapshot_active(&self) -> bool {
        self.snap.is_some()
    }

    /// Entries carrying a snapshot mark (tests: none once a snapshot has
    /// completed).
    pub fn snapshot_marks(&self) -> usize {
        self.iter().filter(|e| e.snap_marked()).count()
    }

    /// Removes expired keys, visiting at most `max_segments` segments that
    /// hold volatile keys. Returns (keys checked, keys removed). The caller
    /// repeats while a large share of checked keys were expired, as Redis's
    /// active expire cycle does.
    pub fn active_expire(&mut self, now_ms: u64, max_segments: usize) -> (usize, usize) {
        if self.volatile == 0 {
            return (0, 0);
        }
        let mut checked = 0;
        let mut removed = 0;
        let mut visited = 0;
        let mut steps = 0;
        while visited < max_segments && steps < SEGMENTS {
            let seg = self.expire_cursor;
            self.expire_cursor = (self.expire_cursor + 1) % SEGMENTS;
            steps += 1;
            let segment = &mut self.segments[seg];
            if segment.volatile == 0 {
                continue;
            }
            visited += 1;
            let mut gone = Vec::new();
            {
                let Db { snap, segments, .. } = &mut *self;
                let segment = &mut segments[seg];
                // A snapshot that has not reached the segment takes each
                // key removed here first, as it would before a command's
                // write: one copy per key removed, not the whole segment.
                let hook = snap.as_ref().filter(|h| segment.saved_epoch < h.epoch);
                if let Some(h) = hook {
                    if segment.marked_epoch != h.epoch {
                        clear_marks(segment);
                        segment.marked_epoch = h.epoch;
                    }
                }
                let mut sink =
                    hook.map(|h| (h.db, h.sink.lock().unwrap_or_else(|p| p.into_inner())));
                segment.table.retain(|e| {
                    if e.expire_at != 0 {
                        checked += 1;
                        if e.expire_at <= now_ms {
                            if let Some((db, sink)) = &mut sink {
                                if !e.snap_marked() {
                                    sink.save_entry(*db, e);
                                }
                            }
                            gone.push(e.key().into());
                            return false;
                        }
                    }
                    true
                });
            }
            let segment = &mut self.segments[seg];
            let n = gone.len();
            segment.volatile -= n as u32;
            self.volatile -= n;
            self.len -= n;
            self.expired_count += n as u64;
            removed += n;
            self.expired.extend(gone);
        }
        (checked, removed)
    }
}

/// Hands the sink the entries of `segment` the snapshot of `epoch` has not
/// taken yet (those it has not marked).
fn save_unsaved(sink: &mut dyn SegmentSink, db: usize, segment: &Segment, epoch: u64) {
    // The table holds pointers: listing them touches no entry, and the
    // walk then asks for entries and values some keys ahead instead of
    // waiting for each one's cache misses in turn.
    let listed: Vec<&Entry> = segment.table.iter().map(|e| &**e).collect();
    let mut entries = crate::prefetch::ahead(&listed);
    if segment.marked_epoch == epoch {
        sink.save_segment(db, &mut entries.filter(|e| !e.snap_marked()));
    } else {
        sink.save_segment(db, &mut entries);
    }
}

/// Clears every snapshot mark of a segment (the walker has passed it).
fn clear_marks(segment: &mut Segment) {
    if segment.marked_epoch != 0 {
        for e in segment.table.iter_mut() {
            e.set_snap_mark(false);
        }
        segment.marked_epoch = 0;
    }
}

/// Hands the sink the entries of buckets `from..` of `segment` (at most
/// `max` buckets) that the snapshot has not taken, and marks every entry
/// there as taken. Returns the bucket after the last one walked.
fn take_buckets(
    sink: &mut dyn SegmentSink,
    db: usize,
    segment: &mut Segment,
    from: usize,
    max: usize,
) -> usize {
    let end = from.saturating_add(max).min(segment.table.num_buckets());
    // As `save_unsaved`: list the pointers, then walk with the entries
    // asked for ahead.
    let listed: Vec<&Entry> = (from..end)
        .filter_map(|i| segment.table.get_bucket(i))
        .map(|e| &**e)
        .collect();
    sink.save_segment(
        db,
        &mut crate::prefetch::ahead(&listed).filter(|e| !e.snap_marked()),
    );
    for i in from..end {
        if let Some(e) = segment.table.get_bucket_mut(i) {
            e.set_snap_mark(true);
        }
    }
    end
}

/// Clears the snapshot marks of buckets `from..` of `segment` (at most
/// `max`). Returns the bucket after the last one cleared.
fn clear_buckets(segment: &mut Segment, from: usize, max: usize) -> usize {
    let end = from.saturating_add(max).min(segment.table.num_buckets());
    for i in from..end {
        if let Some(e) = segment.table.get_bucket_mut(i) {
            e.set_snap_mark(false);
        }
    }
    end
}

/// All databases of a server.
#[derive(Debug, Clone)]
pub struct Keyspace {
    pub dbs: Vec<Db>,
}

impl Keyspace {
    pub fn new(databases: usize) -> Keyspace {
        Keyspace {
            dbs: (0..databases).map(|_| Db::new()).collect(),
        }
    }

    pub fn db(&mut self, idx: usize) -> &mut Db {
        &mut self.dbs[idx]
    }

    pub fn total_keys(&self) -> usize {
        self.dbs.iter().map(Db::len).sum()
    }

    pub fn flush_all(&mut self) {
        for db in &mut self.dbs {
            db.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every key a snapshot is handed, pre-image or walked.
    #[derive(Default)]
    struct Taken(Vec<(Vec<u8>, Value)>);

    impl SegmentSink for Taken {
        fn save_entry(&mut self, _db: usize, e: &Entry) {
            self.0.push((e.key().to_vec(), e.value.clone()));
        }
        fn save_segment(&mut self, db: usize, entries: &mut dyn Iterator<Item = &Entry>) {
            for e in entries {
                self.save_entry(db, e);
            }
        }
    }

    /// `n` keys that all fall in segment 0.
    fn keys_of_segment_0(db: &Db, n: usize, prefix: &str) -> Vec<Vec<u8>> {
        (0..)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .filter(|k| Db::seg_of(db.hash(k)) == 0)
            .take(n)
            .collect()
    }

    /// The walker takes a segment a few buckets at a time. Keys created
    /// meanwhile make the segment's table grow, which moves its entries to
    /// other buckets, some of them from ahead of the walker to behind it
    /// (about one position in three here): wherever the walker is when
    /// the table grows, the walk must still hand over each key of the
    /// start once, with its value of then, nothing created later, and
    /// leave no mark behind (the clearing pass is walked the same way).
    #[test]
    fn a_segment_that_grows_under_the_walker_is_taken_whole_once() {
        // One hasher for every run (a new Db draws its own seed).
        let empty = Db::new();
        let old = keys_of_segment_0(&empty, 1500, "old");
        let new = keys_of_segment_0(&empty, 1000, "new");
        let mut expected: Vec<_> = old
            .iter()
            .map(|k| (k.clone(), Value::str_from(b"before")))
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        for steps_before in 1..=60 {
            let mut db = empty.clone();
            for k in &old {
                db.insert(k, Value::str_from(b"before"), 0);
            }
            let buckets = db.segments[0].table.num_buckets();
            let sink = Arc::new(Mutex::new(Taken::default()));
            db.begin_snapshot(SnapHook {
                epoch: 1,
                db: 0,
                sink: sink.clone(),
            });
            let mut steps = 0;
            loop {
                let mut budget = 64;
                let done = db.snapshot_step(&mut budget);
                steps += 1;
                if steps == steps_before {
                    // Part-way through segment 0 (taking its keys, or
                    // from step 32 clearing their marks): overwrite some
                    // old keys and create enough new ones to grow its
                    // table.
                    assert_eq!((db.snap_cursor, db.snap_clearing), (0, steps >= 32));
                    for k in old.iter().step_by(7) {
                        db.insert(k, Value::str_from(b"after"), 0);
                    }
                    for k in &new {
                        db.insert(k, Value::str_from(b"new"), 0);
                    }
                    assert!(db.segments[0].table.num_buckets() > buckets);
                }
                if done {
                    break;
                }
            }
            let mut taken = std::mem::take(&mut sink.lock().unwrap().0);
            taken.sort_by(|a, b| a.0.cmp(&b.0));
            assert!(taken == expected, "grown after {steps_before} steps");
            assert_eq!(db.snapshot_marks(), 0);
            assert!(db.snap.is_none());
        }
    }

    /// The active expire cycle, in a segment the snapshot has not reached,
    /// hands over only the keys it removes (it used to hand over the whole
    /// segment, all of it on the executor), and the walk takes the rest:
    /// each key once, with no mark left.
    #[test]
    fn expiry_under_a_snapshot_hands_over_only_the_keys_it_removes() {
        let mut db = Db::new();
        let keys = keys_of_segment_0(&db, 600, "k");
        for (i, k) in keys.iter().enumerate() {
            let expire_at = if i % 3 == 0 { 1000 } else { 0 };
            db.insert(k, Value::str_from(b"v"), expire_at);
        }
        let sink = Arc::new(Mutex::new(Taken::default()));
        db.begin_snapshot(SnapHook {
            epoch: 1,
            db: 0,
            sink: sink.clone(),
        });
        let (_, removed) = db.active_expire(2000, SEGMENTS);
        assert_eq!(removed, 200);
        assert_eq!(sink.lock().unwrap().0.len(), 200);
        let mut budget = usize::MAX;
        assert!(db.snapshot_step(&mut budget));
        let mut taken: Vec<Vec<u8>> = sink
            .lock()
            .unwrap()
            .0
            .iter()
            .map(|(k, _)| k.clone())
            .collect();
        taken.sort();
        let mut all = keys.clone();
        all.sort();
        assert_eq!(taken, all);
        assert_eq!(db.snapshot_marks(), 0);
    }

    #[test]
    fn insert_get_remove() {
        let mut db = Db::new();
        assert!(db.insert(b"a", Value::str_from(b"1"), 0).is_none());
        assert_eq!(db.len(), 1);
        let old = db.insert(b"a", Value::str_from(b"2"), 0).unwrap();
        assert_eq!(old.value, Value::str_from(b"1"));
        assert_eq!(db.get(b"a", 0).unwrap().value, Value::str_from(b"2"));
        assert!(db.remove(b"a").is_some());
        assert!(db.is_empty());
        assert!(db.get(b"a", 0).is_none());
    }

    #[test]
    fn lazy_expiry_removes_and_queues() {
        let mut db = Db::new();
        db.insert(b"k", Value::str_from(b"v"), 100);
        assert_eq!(db.volatile_len(), 1);
        assert!(db.get(b"k", 99).is_some());
        assert!(db.get(b"k", 100).is_none());
        assert_eq!(db.len(), 0);
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(db.take_expired(), vec![Box::<[u8]>::from(&b"k"[..])]);
    }

    #[test]
    fn active_expire_clears_volatile_keys_only() {
        let mut db = Db::new();
        for i in 0..1000u32 {
            let k = format!("k{i}");
            let exp = if i % 2 == 0 { 50 } else { 0 };
            db.insert(k.as_bytes(), Value::str_from(b"v"), exp);
        }
        let (_, removed) = db.active_expire(60, SEGMENTS);
        assert_eq!(removed, 500);
        assert_eq!(db.len(), 500);
        assert_eq!(db.volatile_len(), 0);
        assert_eq!(db.take_expired().len(), 500);
    }

    #[test]
    fn scan_visits_every_key_once() {
        let mut db = Db::new();
        for i in 0..5000u32 {
            db.insert(format!("key:{i}").as_bytes(), Value::str_from(b"v"), 0);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = db.scan(cursor, 10, |e| assert!(seen.insert(e.key().to_vec())));
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(seen.len(), 5000);
    }

    #[test]
    fn insert_batch_matches_sequential_inserts() {
        let mut db = Db::new();
        let mut batch: Vec<NewEntry> = (0..3000u32)
            .map(|i| {
                (
                    format!("k{}", i % 2000).into_bytes().into(),
                    Value::str_from(&i.to_be_bytes()),
                    u64::from(i % 3),
                )
            })
            .collect();
        assert_eq!(db.insert_batch(&mut batch), 1000);
        assert!(batch.is_empty());
        assert_eq!(db.len(), 2000);
        // The later duplicate wins, as with repeated inserts.
        let e = db.peek(b"k5").unwrap();
        assert_eq!(e.value, Value::str_from(&2005u32.to_be_bytes()));
        assert_eq!(
            db.volatile_len(),
            db.iter().filter(|e| e.expire_at != 0).count()
        );
    }

    #[test]
    fn set_expire_tracks_volatile_count() {
        let mut db = Db::new();
        db.insert(b"k", Value::str_from(b"v"), 0);
        assert!(db.set_expire(b"k", 10));
        assert_eq!(db.volatile_len(), 1);
        assert!(db.set_expire(b"k", 0));
        assert_eq!(db.volatile_len(), 0);
        assert!(!db.set_expire(b"missing", 10));
    }
}
