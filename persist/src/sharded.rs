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

/// A shard splits when an insert takes it past this many entries.
pub const SHARD_MAX: usize = 1024;
/// Directory bits available below hashbrown's 7 tag bits.
const MAX_DEPTH: u32 = 40;

/// What an entry costs in memory beyond its slot (for kept-alive bytes).
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

impl<K: EntryBytes, V: EntryBytes> ChunkBytes for Shard<K, V> {
    fn chunk_bytes(&self) -> u64 {
        let slots = self.table.capacity() * (std::mem::size_of::<(K, V)>() + 1);
        let data: usize = self
            .table
            .iter()
            .map(|(k, v)| k.entry_bytes() + v.entry_bytes())
            .sum();
        (64 + slots + data) as u64
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
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k, v)))
            .finish()
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

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + Clone + '_ {
        self.shards
            .iter()
            .flat_map(|s| s.get().table.iter().map(|(k, v)| (k, v)))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> + Clone + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// Number of shards (for tests and memory estimates).
    pub fn shard_count(&self) -> usize {
        self.shards.len()
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
        let h = self.hash(k);
        let s = self.shard_of(h);
        self.shards[s]
            .get()
            .table
            .find(h, |(x, _)| x.borrow() == k)?;
        let shard = cow::make_mut(&mut self.shards[s]);
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
                self.len += 1;
                if shard.table.len() > SHARD_MAX && shard.depth < MAX_DEPTH {
                    self.split(s);
                }
                None
            }
        }
    }

    /// Inserts a key known to be absent (callers that just looked it up).
    pub fn insert_new(&mut self, k: K, v: V) {
        self.insert(k, v);
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
        let h = self.hash(k);
        let s = self.shard_of(h);
        self.shards[s]
            .get()
            .table
            .find(h, |(x, _)| x.borrow() == k)?;
        let shard = cow::make_mut(&mut self.shards[s]);
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
        let mut moved = HashTable::with_capacity(shard.table.len() / 2 + 1);
        for kv in shard
            .table
            .extract_if(|(k, _)| hasher.hash_one(&*k) & bit != 0)
        {
            let h = hasher.hash_one(&kv.0);
            moved.insert_unique(h, kv, |(x, _)| hasher.hash_one(x));
        }
        shard.table.shrink_to(0, |(x, _)| hasher.hash_one(x));
        let new = self.shards.len() as u32;
        self.shards.push(cow::shared(Shard {
            table: moved,
            depth: d + 1,
        }));
        // The directory slots of shard `s` are a run of 2^(depth - d)
        // entries sharing the top d bits; the upper half now goes to the
        // new shard.
        let span = 1usize << (self.depth - d);
        let first = self.dir.iter().position(|&x| x as usize == s).unwrap_or(0);
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

/// Bytes of a map's shards that nothing else references.
pub fn unshared_bytes<K: EntryBytes, V: EntryBytes>(m: &ShardedMap<K, V>) -> u64 {
    cow::unshared_bytes(&m.shards)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u8),
        Remove(u16),
        Snapshot,
        Retain(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..4000, any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0u16..4000).prop_map(Op::Remove),
            1 => Just(Op::Snapshot),
            1 => (2u8..9).prop_map(Op::Retain),
        ]
    }

    fn key(k: u16) -> Bytes {
        Bytes::from(format!("member:{k}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Same contents as a std HashMap under any sequence of ops, and
        /// copies taken along the way never change afterwards.
        #[test]
        fn matches_a_hashmap(ops in proptest::collection::vec(op(), 1..6000)) {
            let mut m: ShardedMap<Bytes, Bytes> = ShardedMap::new();
            let mut model: HashMap<Bytes, Bytes> = HashMap::new();
            let mut copies = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let v = Bytes::from(vec![v; 3]);
                        prop_assert_eq!(m.insert(key(k), v.clone()), model.insert(key(k), v));
                    }
                    Op::Remove(k) => prop_assert_eq!(m.remove(&key(k)[..]), model.remove(&key(k))),
                    Op::Snapshot => copies.push((m.clone(), model.clone())),
                    Op::Retain(n) => {
                        m.retain(|k, _| k.len() % n as usize != 0);
                        model.retain(|k, _| k.len() % n as usize != 0);
                    }
                }
                prop_assert_eq!(m.len(), model.len());
            }
            let got: HashMap<Bytes, Bytes> = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(&got, &model);
            for (k, v) in &model {
                prop_assert_eq!(m.get(&k[..]), Some(v));
            }
            for (c, model) in copies {
                let got: HashMap<Bytes, Bytes> = c.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                prop_assert_eq!(got, model);
            }
        }
    }

    #[test]
    fn grows_by_splitting_one_shard_at_a_time() {
        let mut m: ShardedMap<Bytes, ()> = ShardedMap::new();
        for i in 0..50_000 {
            m.insert(Bytes::from(format!("k{i}")), ());
        }
        assert!(m.shard_count() > 50_000 / SHARD_MAX);
        for s in &m.shards {
            assert!(s.get().table.len() <= SHARD_MAX);
        }
        for i in 0..50_000 {
            assert!(m.contains_key(format!("k{i}").as_bytes()));
        }
    }

    #[test]
    fn a_write_after_a_copy_copies_one_shard() {
        let mut m: ShardedMap<Bytes, Bytes> = ShardedMap::new();
        for i in 0..50_000 {
            m.insert(Bytes::from(format!("k{i}")), Bytes::from_static(b"value"));
        }
        let copy = m.clone();
        assert_eq!(unshared_bytes(&copy), 0);
        m.insert(Bytes::from_static(b"k7"), Bytes::from_static(b"new"));
        m.remove(&b"k8"[..]);
        let kept = unshared_bytes(&copy);
        let whole: u64 = copy.shards.iter().map(|s| s.get().chunk_bytes()).sum();
        assert!(kept > 0, "the replaced shards are the copy's own");
        assert!(kept * 10 < whole, "kept {kept} of {whole}");
        assert_eq!(copy.get(&b"k7"[..]).map(|v| &v[..]), Some(&b"value"[..]));
        assert!(copy.contains_key(&b"k8"[..]));
    }
}
