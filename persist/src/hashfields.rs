//! The fields of a hash, in one of Redis 7.0's two encodings.
//!
//! - `Listpack`: an insertion-ordered map, because a listpack's order shows
//!   in replies (HGETALL, HKEYS, HSCAN) and deleting keeps the rest in order.
//! - `Table` (`hashtable`): a [`ShardedMap`], whose shards are shared
//!   copy-on-write, so a snapshot's pre-image of a big hash copies shard
//!   pointers and a write afterwards copies one shard, and growing it never
//!   rehashes the whole table at once.
//!
//! A hash moves from the first to the second when it is promoted and never
//! back while the key lives, as in Redis.

use crate::sharded::{MapIter, ShardedMap};
use crate::value::foldhash_state;
use bytes::Bytes;
use indexmap::IndexMap;

pub type ListpackMap = IndexMap<Bytes, Bytes, foldhash_state::State>;

#[derive(Debug, Clone)]
pub enum HashFields {
    Listpack(ListpackMap),
    Table(ShardedMap<Bytes, Bytes>),
}

impl Default for HashFields {
    fn default() -> Self {
        HashFields::Listpack(ListpackMap::default())
    }
}

/// Same encoding and same field/value pairs (order is not compared, as
/// `IndexMap`'s own equality does not compare it).
impl PartialEq for HashFields {
    fn eq(&self, other: &Self) -> bool {
        self.is_table() == other.is_table()
            && self.len() == other.len()
            && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl HashFields {
    pub fn with_capacity(cap: usize) -> Self {
        HashFields::Listpack(ListpackMap::with_capacity_and_hasher(
            cap,
            Default::default(),
        ))
    }

    /// True for the `hashtable` encoding.
    pub fn is_table(&self) -> bool {
        matches!(self, HashFields::Table(_))
    }

    /// Moves to the `hashtable` encoding (no-op if already there).
    pub fn promote(&mut self) {
        if let HashFields::Listpack(m) = self {
            let t: ShardedMap<Bytes, Bytes> = std::mem::take(m).into_iter().collect();
            *self = HashFields::Table(t);
        }
    }

    /// Moves to the listpack encoding, in the table's iteration order (only
    /// for a freshly loaded value whose contents fit a listpack).
    pub fn demote(&mut self) {
        if let HashFields::Table(t) = self {
            let m: ListpackMap = t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            *self = HashFields::Listpack(m);
        }
    }

    pub fn len(&self) -> usize {
        match self {
            HashFields::Listpack(m) => m.len(),
            HashFields::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        match self {
            HashFields::Listpack(m) => m.get(field),
            HashFields::Table(t) => t.get(field),
        }
    }

    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.get(field).is_some()
    }

    /// Inserts or replaces; returns the previous value. A replaced field
    /// keeps its place in a listpack.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> Option<Bytes> {
        match self {
            HashFields::Listpack(m) => m.insert(field, value),
            HashFields::Table(t) => t.insert(field, value),
        }
    }

    /// Sets `field` to a copy of `value`; true when the field is new. One
    /// probe of the table whether the field exists or not, and the field's
    /// name is copied only when it is inserted.
    pub fn set_field(&mut self, field: &[u8], value: &[u8]) -> bool {
        match self {
            HashFields::Listpack(m) => listpack_set(m, field, value),
            HashFields::Table(t) => {
                t.upsert_with(field, Bytes::copy_from_slice, Bytes::copy_from_slice(value))
            }
        }
    }

    /// Removes `field`. A listpack keeps the order of what remains.
    pub fn remove(&mut self, field: &[u8]) -> Option<Bytes> {
        match self {
            HashFields::Listpack(m) => m.shift_remove(field),
            HashFields::Table(t) => t.remove(field),
        }
    }

    pub fn retain(&mut self, mut f: impl FnMut(&Bytes, &Bytes) -> bool) {
        match self {
            HashFields::Listpack(m) => m.retain(|k, v| f(k, v)),
            HashFields::Table(t) => t.retain(|k, v| f(k, v)),
        }
    }

    /// The `i`th pair in iteration order: O(1) for a listpack, about
    /// O(len / 256) for a table.
    pub fn get_index(&self, i: usize) -> Option<(&Bytes, &Bytes)> {
        match self {
            HashFields::Listpack(m) => m.get_index(i),
            HashFields::Table(t) => t.get_index(i),
        }
    }

    pub fn iter(&self) -> Iter<'_> {
        match self {
            HashFields::Listpack(m) => Iter::Listpack(m.iter()),
            HashFields::Table(t) => Iter::Table(t.iter()),
        }
    }

    /// The table, when in the `hashtable` encoding (shard counts, bytes).
    pub fn as_table(&self) -> Option<&ShardedMap<Bytes, Bytes>> {
        match self {
            HashFields::Table(t) => Some(t),
            HashFields::Listpack(_) => None,
        }
    }
}

fn listpack_set(m: &mut ListpackMap, field: &[u8], value: &[u8]) -> bool {
    use indexmap::map::raw_entry_v1::RawEntryMut;
    use indexmap::map::RawEntryApiV1;
    use std::hash::BuildHasher;
    // `Bytes` hashes as its bytes, so the slice's hash finds it.
    let hash = m.hasher().hash_one(field);
    match m.raw_entry_mut_v1().from_key_hashed_nocheck(hash, field) {
        RawEntryMut::Occupied(mut e) => {
            *e.get_mut() = Bytes::copy_from_slice(value);
            false
        }
        RawEntryMut::Vacant(e) => {
            e.insert_hashed_nocheck(
                hash,
                Bytes::copy_from_slice(field),
                Bytes::copy_from_slice(value),
            );
            true
        }
    }
}

/// Pairs of either encoding.
#[derive(Clone)]
pub enum Iter<'a> {
    Listpack(indexmap::map::Iter<'a, Bytes, Bytes>),
    Table(MapIter<'a, Bytes, Bytes>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Bytes, &'a Bytes);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Listpack(i) => i.next(),
            Iter::Table(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Listpack(i) => i.size_hint(),
            Iter::Table(i) => i.size_hint(),
        }
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a HashFields {
    type Item = (&'a Bytes, &'a Bytes);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl FromIterator<(Bytes, Bytes)> for HashFields {
    /// A listpack in the given order (promote afterwards if it is big).
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(iter: I) -> Self {
        HashFields::Listpack(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promote_keeps_pairs_and_set_field_reports_new() {
        let mut h = HashFields::default();
        assert!(h.set_field(b"a", b"1"));
        assert!(!h.set_field(b"a", b"2"));
        assert!(h.set_field(b"b", b"3"));
        h.promote();
        assert!(h.is_table());
        assert_eq!(h.get(b"a").map(|v| &v[..]), Some(&b"2"[..]));
        assert!(!h.set_field(b"b", b"4"));
        assert!(h.set_field(b"c", b"5"));
        assert_eq!(h.len(), 3);
        assert_eq!(h.remove(b"a").as_deref(), Some(&b"2"[..]));
        assert_eq!(h.len(), 2);
        let n = (0..h.len()).filter_map(|i| h.get_index(i)).count();
        assert_eq!(n, 2);
        assert_eq!(h.iter().count(), 2);
    }

    #[test]
    fn listpack_remove_keeps_order() {
        let mut h = HashFields::default();
        for f in ["a", "b", "c", "d"] {
            h.insert(f.into(), "v".into());
        }
        h.remove(b"b");
        let order: Vec<_> = h.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(order, vec!["a", "c", "d"]);
    }
}
