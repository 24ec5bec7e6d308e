//! A hash map split into shards that are shared copy-on-write.
//!
//! Big sets, hashes and sorted-set dictionaries hold up to millions of
//! entries. One hash table that size costs O(n) to copy (what a snapshot's
//! pre-image of the key would need) and O(n) to grow (a multi-millisecond
//! stall on the executor). Here the table is split by extendible hashing
//! into shards of at most [`SHARD_MAX`] entries:
//! - copying the map copies shard pointers, and a write afterwards copies
//!   only the shard it touches (see [`crate::cow`]);
//! - a full shard splits in two on its own, so growth costs one shard's
//!   rehash, never the whole map's.
//!
//! The directory is indexed by bits 56 and down of the hash: hashbrown uses
//! the top 7 bits to tag entries and the low bits to place them, so those
//! stay spread out within a shard.

use crate::cow::{self, ChunkBytes, Shared};
use hashbrown::HashTable;
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

/// Most entries in one shard: the capacity of a 512-bucket table at
/// hashbrown's 7/8 load. A shard that reaches it splits in two instead of
/// growing its table, and both halves get a table of that size, so past the
/// first split an entry is rehashed only when its shard splits, never by a
/// table resize.
pub const SHARD_MAX: usize = 448;
/// Directory bits available below hashbrown's 7 tag bits.
const MAX_DEPTH: u32 = 40;

/// What an entry costs in memory beyond its slot.
pub trait EntryBytes {
    fn entry_bytes(&self) -> usize;
}

impl EntryBytes for bytes::Bytes {
    fn entry_bytes(&self) -> usize {
        self.len()
    }
}
impl EntryBytes for f64 {
    fn entry_bytes(&self) -> usize {
        0
    }
}
impl EntryBytes for () {
    fn entry_bytes(&self) -> usize {
        0
    }
}

#[derive(Debug, Clone)]
struct Shard<K, V> {
    table: HashTable<(K, V)>,
    /// Hash bits that select this shard.
    depth: u32,
}

impl<K, V> Default for Shard<K, V> {
    fn default() -> Self {
        Shard {
            table: HashTable::new(),
            depth: 0,
        }
    }
}

impl<K, V> ChunkBytes for Shard<K, V> {
    /// The table only: the keys' and values' bytes are shared with the
    /// live value's copy of the shard, so dropping this one frees its slots.
    fn chunk_bytes(&self) -> u64 {
        (64 + self.table.capacity() * (std::mem::size_of::<(K, V)>() + 1)) as u64
    }
}

/// The map. `Clone` is O(number of shards).
#[derive(Clone)]
pub struct ShardedMap<K, V> {
    hasher: hashbrown::DefaultHashBuilder,
    /// 2^depth entries, each the index of a shard in `shards`.
    dir: Vec<u32>,
    depth: u32,
    shards: Vec<Shared<Shard<K, V>>>,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        ShardedMap {
            hasher: Default::default(),
            dir: vec![0],
            depth: 0,
            shards: vec![cow::shared(Shard::default())],
            len: 0,
        }
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug> std::fmt::Debug for ShardedMap<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[inline]
fn dir_index(hash: u64, depth: u32) -> usize {
    if depth == 0 {
        0
    } else {
        ((hash << 7) >> (64 - depth)) as usize
    }
}

impl<K, V> ShardedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> MapIter<'_, K, V> {
        MapIter {
            shards: self.shards.iter(),
            cur: None,
            remaining: self.len,
        }
    }

    /// The `i`th entry in iteration order: O(shards + SHARD_MAX), for
    /// random picks without walking the whole map.
    pub fn get_index(&self, mut i: usize) -> Option<(&K, &V)> {
        for s in &self.shards {
            let t = &s.get().table;
            if i < t.len() {
                return t.iter().nth(i).map(|(k, v)| (k, v));
            }
            i -= t.len();
        }
        None
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> + Clone + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Number of shards (for tests and memory estimates).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Drops the map a shard at a time (see [`cow::drop_chunks`]).
    pub fn drop_by_chunk(self, between: &mut dyn FnMut()) {
        cow::drop_chunks(self.shards, between)
    }

    /// Entries per shard.
    pub fn shard_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.shards.iter().map(|s| s.get().table.len())
    }
}

impl<K, V> ShardedMap<K, V>
where
    K: Hash + Eq + Clone + EntryBytes,
    V: Clone + EntryBytes,
{
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, k: &Q) -> u64 {
        self.hasher.hash_one(k)
    }

    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        self.dir[dir_index(hash, self.depth)] as usize
    }

    /// The hash of `k` and its shard, made private to this map, when the
    /// shard holds `k`. Looks up read-only first, so a miss copies nothing.
    fn shard_holding_mut<Q>(&mut self, k: &Q) -> Option<(u64, &mut Shard<K, V>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hash(k);
        let s = self.shard_of(h);
        self.shards[s]
            .get()
            .table
            .find(h, |(x, _)| x.borrow() == k)?;
        Some((h, cow::make_mut(&mut self.shards[s])))
    }

    /// Counts an entry just added to shard `s`, splitting the shard when it
    /// is now full (its table could take no more without growing).
    fn inserted(&mut self, s: usize) {
        self.len += 1;
        let shard = self.shards[s].get();
        if shard.table.len() >= SHARD_MAX && shard.depth < MAX_DEPTH {
            self.split(s);
        }
    }

    pub fn get<Q>(&self, k: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(k).map(|(_, v)| v)
    }

    pub fn get_key_value<Q>(&self, k: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hash(k);
        let s = self.shard_of(h);
        self.shards[s]
            .get()
            .table
            .find(h, |(x, _)| x.borrow() == k)
            .map(|(k, v)| (k, v))
    }

    pub fn contains_key<Q>(&self, k: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value(k).is_some()
    }

    /// The stored key and a mutable value (copies the shard if a pre-image
    /// shares it). Looks up read-only first, so a miss copies nothing.
    pub fn get_key_value_mut<Q>(&mut self, k: &Q) -> Option<(&K, &mut V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (h, shard) = self.shard_holding_mut(k)?;
        shard
            .table
            .find_mut(h, |(x, _)| x.borrow() == k)
            .map(|(k, v)| (&*k, v))
    }

    pub fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_key_value_mut(k).map(|(_, v)| v)
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        let h = self.hash(&k);
        let s = self.shard_of(h);
        let hasher = &self.hasher;
        let shard = cow::make_mut(&mut self.shards[s]);
        match shard
            .table
            .entry(h, |(x, _)| *x == k, |(x, _)| hasher.hash_one(x))
        {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                Some(std::mem::replace(&mut e.get_mut().1, v))
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert((k, v));
                self.inserted(s);
                None
            }
        }
    }

    /// Sets the key `q` refers to to `v`, building the key with `make`
    /// only when it is new; true when it was new. Hashes `q` once.
    pub fn upsert_with<Q>(&mut self, q: &Q, make: impl FnOnce(&Q) -> K, v: V) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hash(q);
        let s = self.shard_of(h);
        let hasher = &self.hasher;
        let shard = cow::make_mut(&mut self.shards[s]);
        if let Some((_, old)) = shard.table.find_mut(h, |(x, _)| x.borrow() == q) {
            *old = v;
            return false;
        }
        shard
            .table
            .insert_unique(h, (make(q), v), |(x, _)| hasher.hash_one(x));
        self.inserted(s);
        true
    }

    /// Inserts a key known to be absent (callers that just looked it up).
    pub fn insert_new(&mut self, k: K, v: V) {
        self.insert(k, v);
    }

    /// Inserts the key `q` refers to, built by `make`, with value `v`
    /// unless the key is present; true when inserted. Hashes `q` once, and
    /// copies no shard when the key is present.
    pub fn insert_absent_with<Q>(&mut self, q: &Q, make: impl FnOnce(&Q) -> K, v: V) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let h = self.hash(q);
        let s = self.shard_of(h);
        if self.shards[s]
            .get()
            .table
            .find(h, |(x, _)| x.borrow() == q)
            .is_some()
        {
            return false;
        }
        let hasher = &self.hasher;
        let shard = cow::make_mut(&mut self.shards[s]);
        shard
            .table
            .insert_unique(h, (make(q), v), |(x, _)| hasher.hash_one(x));
        self.inserted(s);
        true
    }

    pub fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.remove_entry(k).map(|(_, v)| v)
    }

    pub fn remove_entry<Q>(&mut self, k: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (h, shard) = self.shard_holding_mut(k)?;
        let e = shard.table.find_entry(h, |(x, _)| x.borrow() == k).ok()?;
        let (kv, _) = e.remove();
        self.len -= 1;
        Some(kv)
    }

    pub fn clear(&mut self) {
        *self = ShardedMap {
            hasher: self.hasher.clone(),
            ..Default::default()
        };
    }

    /// Keeps the entries for which `f` holds. Shards with nothing to
    /// remove are not copied.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &V) -> bool) {
        for s in &mut self.shards {
            if s.get().table.iter().all(|(k, v)| f(k, v)) {
                continue;
            }
            let shard = cow::make_mut(s);
            let before = shard.table.len();
            shard.table.retain(|(k, v)| f(k, v));
            self.len -= before - shard.table.len();
        }
    }

    /// Splits shard `s` in two on its next hash bit, doubling the
    /// directory first when the shard already uses all of its bits.
    fn split(&mut self, s: usize) {
        let d = self.shards[s].get().depth;
        if d == self.depth {
            self.dir = self.dir.iter().flat_map(|&x| [x, x]).collect();
            self.depth += 1;
        }
        let bit = 1u64 << (56 - d);
        let hasher = &self.hasher;
        let shard = cow::make_mut(&mut self.shards[s]);
        shard.depth = d + 1;
        // Each entry is hashed once and goes into a table sized for a full
        // shard, so neither half rehashes until it splits in turn. (Taking
        // entries out of the old table in place would hash each one twice
        // and rehash the rest to shrink the table.)
        let old = std::mem::replace(&mut shard.table, HashTable::with_capacity(SHARD_MAX));
        let mut moved = HashTable::with_capacity(SHARD_MAX);
        let mut some_hash = None;
        for kv in old {
            let h = hasher.hash_one(&kv.0);
            some_hash = Some(h);
            let to = if h & bit != 0 {
                &mut moved
            } else {
                &mut shard.table
            };
            to.insert_unique(h, kv, |(x, _)| hasher.hash_one(x));
        }
        let new = self.shards.len() as u32;
        self.shards.push(cow::shared(Shard {
            table: moved,
            depth: d + 1,
        }));
        // The directory slots of shard `s` are a run of 2^(depth - d)
        // entries sharing the top d bits; the upper half now goes to the
        // new shard.
        let span = 1usize << (self.depth - d);
        let first = match some_hash {
            Some(h) => dir_index(h, self.depth) & !(span - 1),
            None => self.dir.iter().position(|&x| x as usize == s).unwrap_or(0),
        };
        for slot in &mut self.dir[first + span / 2..first + span] {
            *slot = new;
        }
    }
}

impl<K, V> PartialEq for ShardedMap<K, V>
where
    K: Hash + Eq + Clone + EntryBytes,
    V: Clone + EntryBytes + PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K, V> FromIterator<(K, V)> for ShardedMap<K, V>
where
    K: Hash + Eq + Clone + EntryBytes,
    V: Clone + EntryBytes,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = ShardedMap::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<'a, K, V> IntoIterator for &'a ShardedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = MapIter<'a, K, V>;
    fn into_iter(self) -> MapIter<'a, K, V> {
        self.iter()
    }
}

/// Most lookups one [`ShardedMap::warm_batch`] call warms.
pub const WARM_MAX: usize = 32;

impl<K, V> ShardedMap<K, V>
where
    K: Hash + Eq + Clone + EntryBytes + Borrow<[u8]>,
    V: Clone + EntryBytes,
{
    /// Brings the lookups of up to [`WARM_MAX`] keys into cache, for a
    /// pipelined batch of commands on this map; changes nothing, and the
    /// returned count (of candidate slots) only keeps the reads alive.
    ///
    /// A lookup in a big map misses the cache on the shard's header, its
    /// control bytes, the slot and the key's bytes, each address known
    /// only once the previous load is in. Looking the keys up one after
    /// the other pays those misses in series; this takes each step for the
    /// whole batch before the next, so the batch's misses of one step
    /// overlap. Step 2 takes the first slot whose tag matches without
    /// comparing keys: that keeps the loop short and free of the compare's
    /// branches, and is the right slot nearly always.
    pub fn warm_batch(&self, qs: &[&[u8]]) -> usize {
        let qs = &qs[..qs.len().min(WARM_MAX)];
        let mut hashes = [0u64; WARM_MAX];
        let mut shards: [Option<&Shard<K, V>>; WARM_MAX] = [None; WARM_MAX];
        let mut sum = 0usize;
        // 1: the shards' headers.
        for (i, q) in qs.iter().enumerate() {
            let h = self.hash(*q);
            hashes[i] = h;
            let shard = self.shards[self.shard_of(h)].get();
            sum = sum.wrapping_add(shard.table.len());
            shards[i] = Some(shard);
        }
        // 2: the control bytes, for a candidate slot.
        let mut slots: [Option<&(K, V)>; WARM_MAX] = [None; WARM_MAX];
        for i in 0..qs.len() {
            if let Some(shard) = shards[i] {
                slots[i] = shard.table.find(hashes[i], |_| true);
            }
        }
        // 3: the slots, for where the keys' bytes are.
        let mut keys: [&[u8]; WARM_MAX] = [&[]; WARM_MAX];
        for i in 0..qs.len() {
            if let Some((k, _)) = slots[i] {
                keys[i] = k.borrow();
            }
        }
        // 4: the keys' bytes.
        for k in &keys[..qs.len()] {
            sum = sum.wrapping_add(k.first().copied().unwrap_or(0) as usize);
        }
        std::hint::black_box(sum)
    }
}

/// The entries of a [`ShardedMap`], shard by shard.
pub struct MapIter<'a, K, V> {
    shards: std::slice::Iter<'a, Shared<Shard<K, V>>>,
    cur: Option<hashbrown::hash_table::Iter<'a, (K, V)>>,
    remaining: usize,
}

impl<K, V> Clone for MapIter<'_, K, V> {
    fn clone(&self) -> Self {
        MapIter {
            shards: self.shards.clone(),
            cur: self.cur.clone(),
            remaining: self.remaining,
        }
    }
}

impl<'a, K, V> Iterator for MapIter<'a, K, V> {
    type Item = (&'a K, &'a V);

    #[inline]
    fn next(&mut self) -> Option<(&'a K, &'a V)> {
        loop {
            if let Some(it) = &mut self.cur {
                if let Some((k, v)) = it.next() {
                    self.remaining -= 1;
                    return Some((k, v));
                }
            }
            self.cur = Some(self.shards.next()?.get().table.iter());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K, V> ExactSizeIterator for MapIter<'_, K, V> {}

/// Bytes of a map's shards that nothing else references.
pub fn unshared_bytes<K, V>(m: &ShardedMap<K, V>) -> u64 {
    cow::unshared_bytes(&m.shards)
}

/// Bytes of all of a map's shards.
pub fn total_bytes<K, V>(m: &ShardedMap<K, V>) -> u64 {
    m.shards.iter().map(|s| s.get().chunk_bytes()).sum()
}

/// A set on [`ShardedMap`], with the `HashSet` calls the set commands use.
#[derive(Clone, Default)]
pub struct ShardedSet<K> {
    map: ShardedMap<K, ()>,
}

impl<K: Hash + Eq + Clone + EntryBytes> PartialEq for ShardedSet<K> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<K: std::fmt::Debug> std::fmt::Debug for ShardedSet<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl<K> ShardedSet<K> {
    pub fn new() -> Self {
        ShardedSet {
            map: ShardedMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> SetIter<'_, K> {
        SetIter {
            shards: self.map.shards.iter(),
            cur: None,
            remaining: self.map.len,
        }
    }

    /// Drops the set a shard at a time (see [`cow::drop_chunks`]).
    pub fn drop_by_chunk(self, between: &mut dyn FnMut()) {
        self.map.drop_by_chunk(between)
    }

    /// The underlying map (shard counts, kept-alive bytes).
    pub fn as_map(&self) -> &ShardedMap<K, ()> {
        &self.map
    }
}

impl<K: Hash + Eq + Clone + EntryBytes> ShardedSet<K> {
    pub fn with_capacity(_n: usize) -> Self {
        Self::new()
    }

    /// Adds `k`; true when it was not there.
    pub fn insert(&mut self, k: K) -> bool {
        self.map.insert(k, ()).is_none()
    }

    /// Adds the member `q` refers to unless present, building it with
    /// `make` only then; true when it was added.
    pub fn get_or_insert_with<Q>(&mut self, q: &Q, make: impl FnOnce(&Q) -> K) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.insert_absent_with(q, make, ())
    }

    pub fn contains<Q>(&self, q: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(q)
    }

    /// Removes `q`; true when it was there.
    pub fn remove<Q>(&mut self, q: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.remove(q).is_some()
    }

    pub fn retain(&mut self, mut f: impl FnMut(&K) -> bool) {
        self.map.retain(|k, _| f(k));
    }
}

impl<K: Hash + Eq + Clone + EntryBytes> Extend<K> for ShardedSet<K> {
    fn extend<I: IntoIterator<Item = K>>(&mut self, iter: I) {
        for k in iter {
            self.insert(k);
        }
    }
}

impl<K: Hash + Eq + Clone + EntryBytes> FromIterator<K> for ShardedSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Self {
        let mut s = ShardedSet::new();
        s.extend(iter);
        s
    }
}

impl<'a, K> IntoIterator for &'a ShardedSet<K> {
    type Item = &'a K;
    type IntoIter = SetIter<'a, K>;
    fn into_iter(self) -> SetIter<'a, K> {
        self.iter()
    }
}

/// The members of a [`ShardedSet`], shard by shard.
pub struct SetIter<'a, K> {
    shards: std::slice::Iter<'a, Shared<Shard<K, ()>>>,
    cur: Option<hashbrown::hash_table::Iter<'a, (K, ())>>,
    remaining: usize,
}

impl<K> Clone for SetIter<'_, K> {
    fn clone(&self) -> Self {
        SetIter {
            shards: self.shards.clone(),
            cur: self.cur.clone(),
            remaining: self.remaining,
        }
    }
}

impl<'a, K> Iterator for SetIter<'a, K> {
    type Item = &'a K;

    #[inline]
    fn next(&mut self) -> Option<&'a K> {
        loop {
            if let Some(it) = &mut self.cur {
                if let Some((k, _)) = it.next() {
                    self.remaining -= 1;
                    return Some(k);
                }
            }
            self.cur = Some(self.shards.next()?.get().table.iter());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K> ExactSizeIterator for SetIter<'_, K> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_batch_reads_without_changing() {
        let mut m: ShardedMap<bytes::Bytes, ()> = ShardedMap::new();
        for i in 0..5000 {
            m.insert(bytes::Bytes::from(format!("k{i}")), ());
        }
        let before = m.clone();
        let keys: Vec<String> = (0..100).map(|i| format!("k{}", i * 97)).collect();
        let mut qs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        // An empty key, an absent one, and more than WARM_MAX in all.
        qs.push(b"");
        qs.push(b"absent");
        assert_ne!(m.warm_batch(&qs), 0);
        assert_eq!(m.warm_batch(&[]), 0);
        assert!(m == before);
        assert_eq!(m.len(), 5000);
    }
}
