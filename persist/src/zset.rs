//! Sorted sets: a member -> score map plus an ordered index on (score, member).
//!
//! The index is a list of sorted chunks with a Fenwick tree over the chunk
//! lengths, so that ZRANK, ZRANGE by index and range counts are logarithmic
//! (Redis gets the same from its skiplist spans) while inserts move at most
//! one small chunk. A plain `BTreeSet` cannot answer "how many before x"
//! without walking them.
//!
//! Both halves are shared copy-on-write (chunks behind `Arc`, the map in
//! [`ShardedMap`] shards), so a snapshot's copy of a big sorted set costs
//! O(n / chunk) and a write after it copies one chunk and one shard.

use crate::cow::{self, ChunkBytes, Shared};
use crate::sharded::ShardedMap;
use bytes::Bytes;
use std::cmp::Ordering;

/// An entry of the ordered index. Ordered by score, then member bytes, as
/// Redis's skiplist orders them. Scores are never NaN (callers reject NaN).
#[derive(Debug, Clone)]
pub struct ScoredMember {
    pub score: f64,
    pub member: Bytes,
}

impl ScoredMember {
    /// Compares this entry with the key (score, member) without building one.
    pub fn cmp_key(&self, score: f64, member: &[u8]) -> Ordering {
        // -0.0 and 0.0 compare equal in Redis; `partial_cmp` gives that, and
        // NaN never reaches here.
        self.score
            .partial_cmp(&score)
            .unwrap_or(Ordering::Equal)
            .then_with(|| self.member.as_ref().cmp(member))
    }
}

impl PartialEq for ScoredMember {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ScoredMember {}
impl PartialOrd for ScoredMember {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ScoredMember {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_key(other.score, &other.member)
    }
}

/// Chunks split when they grow past this. Small enough that an insert's
/// memmove stays within a few cache lines' worth of work, big enough that
/// the chunk list stays short.
const CHUNK_MAX: usize = 128;
/// A chunk this small after a removal is merged into its right neighbour.
const CHUNK_MIN: usize = CHUNK_MAX / 4;

type Chunk = Vec<ScoredMember>;

impl ChunkBytes for Chunk {
    /// The element headers only: members' bytes are shared with the live
    /// value's copy of the chunk.
    fn chunk_bytes(&self) -> u64 {
        (64 + self.capacity() * std::mem::size_of::<ScoredMember>()) as u64
    }
}

/// The ordered index: sorted chunks plus a Fenwick tree of their lengths.
#[derive(Debug, Clone, Default)]
pub struct ZIndex {
    chunks: Vec<Shared<Chunk>>,
    /// 1-based Fenwick tree over `chunks[i].len()`.
    tree: Vec<usize>,
    len: usize,
}

impl ZIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn rebuild(&mut self) {
        let n = self.chunks.len();
        self.tree.clear();
        self.tree.resize(n + 1, 0);
        for i in 0..n {
            let j = i + 1;
            self.tree[j] += self.chunks[i].get().len();
            let parent = j + (j & j.wrapping_neg());
            if parent <= n {
                let v = self.tree[j];
                self.tree[parent] += v;
            }
        }
    }

    fn tree_add(&mut self, chunk: usize, delta: isize) {
        let mut j = chunk + 1;
        while j < self.tree.len() {
            self.tree[j] = self.tree[j].wrapping_add_signed(delta);
            j += j & j.wrapping_neg();
        }
    }

    /// Total length of chunks[0..chunk].
    fn prefix(&self, chunk: usize) -> usize {
        let mut j = chunk;
        let mut s = 0;
        while j > 0 {
            s += self.tree[j];
            j &= j - 1;
        }
        s
    }

    /// (chunk, offset) of global position `rank` (< len).
    fn locate(&self, mut rank: usize) -> (usize, usize) {
        let n = self.chunks.len();
        let mut pos = 0;
        let mut step = if n == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] <= rank {
                pos = next;
                rank -= self.tree[next];
            }
            step >>= 1;
        }
        (pos, rank)
    }

    /// The chunk an entry ordered at `pred`'s boundary lives in.
    fn chunk_for(&self, mut pred: impl FnMut(&ScoredMember) -> bool) -> usize {
        self.chunks
            .partition_point(|c| c.get().last().is_some_and(&mut pred))
    }

    /// Number of entries for which `pred` holds; `pred` must be true for a
    /// prefix of the order and false after (like `slice::partition_point`).
    pub fn partition_point(&self, mut pred: impl FnMut(&ScoredMember) -> bool) -> usize {
        let ci = self.chunk_for(&mut pred);
        if ci == self.chunks.len() {
            return self.len;
        }
        self.prefix(ci) + self.chunks[ci].get().partition_point(pred)
    }

    /// The entry at 0-based position `rank`.
    pub fn get(&self, rank: usize) -> Option<&ScoredMember> {
        if rank >= self.len {
            return None;
        }
        let (c, o) = self.locate(rank);
        self.chunks.get(c).and_then(|ch| ch.get().get(o))
    }

    /// Entries at positions `start..end` (clamped to the length), in order;
    /// reversible.
    pub fn range(&self, start: usize, end: usize) -> Range<'_> {
        let end = end.min(self.len);
        let start = start.min(end);
        let front = if start < self.len {
            self.locate(start)
        } else {
            (self.chunks.len(), 0)
        };
        let back = if end == 0 {
            (0, 0)
        } else {
            let (c, o) = self.locate(end - 1);
            (c, o + 1)
        };
        Range {
            chunks: &self.chunks,
            front,
            back,
            remaining: end - start,
        }
    }

    pub fn iter(&self) -> Range<'_> {
        self.range(0, self.len)
    }

    /// Inserts an entry that is not present.
    pub fn insert(&mut self, sm: ScoredMember) {
        if self.chunks.is_empty() {
            self.chunks.push(cow::shared(Vec::with_capacity(8)));
            self.rebuild();
        }
        let last = self.chunks.len() - 1;
        let ci = self.chunk_for(|x| *x < sm).min(last);
        let chunk = cow::make_mut(&mut self.chunks[ci]);
        let pos = chunk.partition_point(|x| *x < sm);
        chunk.insert(pos, sm);
        self.len += 1;
        if chunk.len() > CHUNK_MAX {
            let tail = chunk.split_off(CHUNK_MAX / 2);
            self.chunks.insert(ci + 1, cow::shared(tail));
            self.rebuild();
        } else {
            self.tree_add(ci, 1);
        }
    }

    /// Removes the entry ordered as (score, member); returns whether it was there.
    pub fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let ci = self.chunk_for(|x| x.cmp_key(score, member) == Ordering::Less);
        let Some(chunk) = self.chunks.get_mut(ci) else {
            return false;
        };
        let Ok(pos) = chunk.get().binary_search_by(|x| x.cmp_key(score, member)) else {
            return false;
        };
        let chunk = cow::make_mut(chunk);
        chunk.remove(pos);
        self.len -= 1;
        let clen = chunk.len();
        if clen == 0 {
            cow::release(self.chunks.remove(ci));
            self.rebuild();
        } else if clen < CHUNK_MIN
            && ci + 1 < self.chunks.len()
            && clen + self.chunks[ci + 1].get().len() <= CHUNK_MAX / 2
        {
            let next = self.chunks.remove(ci + 1);
            cow::make_mut(&mut self.chunks[ci]).extend(next.get().iter().cloned());
            cow::release(next);
            self.rebuild();
        } else {
            self.tree_add(ci, -1);
        }
        true
    }
}

/// A double-ended iterator over a run of positions of a [`ZIndex`].
#[derive(Debug, Clone)]
pub struct Range<'a> {
    chunks: &'a [Shared<Chunk>],
    front: (usize, usize),
    /// One past the last entry: (chunk, offset + 1).
    back: (usize, usize),
    remaining: usize,
}

impl<'a> Iterator for Range<'a> {
    type Item = &'a ScoredMember;

    fn next(&mut self) -> Option<&'a ScoredMember> {
        if self.remaining == 0 {
            return None;
        }
        while self.front.1 >= self.chunks[self.front.0].get().len() {
            self.front = (self.front.0 + 1, 0);
        }
        let item = &self.chunks[self.front.0].get()[self.front.1];
        self.front.1 += 1;
        self.remaining -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        while self.back.1 == 0 {
            self.back.0 -= 1;
            self.back.1 = self.chunks[self.back.0].get().len();
        }
        self.back.1 -= 1;
        self.remaining -= 1;
        Some(&self.chunks[self.back.0].get()[self.back.1])
    }
}

impl ExactSizeIterator for Range<'_> {}

#[derive(Debug, Clone, Default)]
pub struct ZSet {
    dict: ShardedMap<Bytes, f64>,
    index: ZIndex,
    /// Promoted to `skiplist` (never demoted while the key lives).
    pub skiplist: bool,
}

impl PartialEq for ZSet {
    fn eq(&self, other: &Self) -> bool {
        self.dict == other.dict
    }
}

impl ZSet {
    pub fn new() -> ZSet {
        ZSet::default()
    }

    pub fn len(&self) -> usize {
        self.dict.len()
    }

    pub fn is_empty(&self) -> bool {
        self.dict.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.dict.get(member).copied()
    }

    /// Warms the lookups of a batch's members (see
    /// [`ShardedMap::warm_batch`]).
    pub fn warm_members(&self, members: &[&[u8]]) -> usize {
        self.dict.warm_batch(members)
    }

    /// Inserts or updates; returns the previous score.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        match self.dict.get_mut(member.as_ref()) {
            Some(slot) => {
                let old = *slot;
                if old.to_bits() == score.to_bits() {
                    return Some(old);
                }
                *slot = score;
                self.index.remove(old, &member);
                self.index.insert(ScoredMember { score, member });
                Some(old)
            }
            None => {
                self.dict.insert_new(member.clone(), score);
                self.index.insert(ScoredMember { score, member });
                None
            }
        }
    }

    /// Changes the score of an existing member, reusing its stored key
    /// (so callers need not copy the member); returns the old score, or
    /// None (and changes nothing) when the member is absent.
    pub fn update(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let (key, slot) = self.dict.get_key_value_mut(member)?;
        let old = *slot;
        if old.to_bits() != score.to_bits() {
            *slot = score;
            let key = key.clone();
            self.index.remove(old, member);
            self.index.insert(ScoredMember { score, member: key });
        }
        Some(old)
    }

    /// Removes a member; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.dict.remove(member)?;
        self.index.remove(score, member);
        Some(score)
    }

    /// Members in ascending (score, member) order.
    pub fn iter(&self) -> Range<'_> {
        self.index.iter()
    }

    /// 0-based ascending rank of a member.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        Some(
            self.index
                .partition_point(|x| x.cmp_key(score, member) == Ordering::Less),
        )
    }

    /// The ordered index, for range queries by position, score or lex.
    pub fn index(&self) -> &ZIndex {
        &self.index
    }

    /// The entry at ascending position `rank`.
    pub fn get_by_rank(&self, rank: usize) -> Option<&ScoredMember> {
        self.index.get(rank)
    }

    /// Entries at ascending positions `start..end`.
    pub fn range(&self, start: usize, end: usize) -> Range<'_> {
        self.index.range(start, end)
    }

    /// Bytes of this value's chunks and shards that no other copy shares:
    /// for a snapshot's pre-image, what it alone keeps alive.
    pub fn unshared_bytes(&self) -> u64 {
        cow::unshared_bytes(&self.index.chunks) + crate::sharded::unshared_bytes(&self.dict)
    }

    /// Drops the set a shard and a chunk at a time (see
    /// [`cow::drop_chunks`]).
    pub fn drop_by_chunk(self, between: &mut dyn FnMut()) {
        self.dict.drop_by_chunk(between);
        cow::drop_chunks(self.index.chunks, between);
    }

    /// Number of chunk and shard pointers a copy duplicates.
    pub fn chunk_count(&self) -> usize {
        self.index.chunks.len() + self.dict.shard_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A copy dropped a chunk at a time lets go of every chunk and shard,
    /// one between two calls, the ones the live set replaced included, and
    /// leaves the live set as it was.
    #[test]
    fn a_copy_drops_a_chunk_at_a_time() {
        let mut z = ZSet::new();
        for i in 0..10_000 {
            z.insert(Bytes::from(format!("m{i}")), f64::from(i));
        }
        let copy = z.clone();
        for i in (0..10_000).step_by(100) {
            z.insert(Bytes::from(format!("m{i}")), -f64::from(i));
        }
        let pieces = copy.chunk_count();
        assert!(pieces > 50);
        let weak: Vec<_> = copy
            .index
            .chunks
            .iter()
            .map(std::sync::Arc::downgrade)
            .collect();
        let mut calls = 0;
        copy.drop_by_chunk(&mut || calls += 1);
        assert_eq!(calls, pieces);
        assert!(weak.iter().all(|w| w.strong_count() <= 1));
        assert_eq!(z.len(), 10_000);
        assert_eq!(z.score(b"m100"), Some(-100.0));
    }

    #[test]
    fn matches_a_sorted_vec_under_random_ops() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut z = ZSet::new();
        let mut model: std::collections::BTreeMap<Bytes, f64> = Default::default();
        for step in 0..20_000 {
            let m = Bytes::from(format!("m{}", rng.gen_range(0..2000)));
            if rng.gen_bool(0.6) {
                let s = rng.gen_range(0..50) as f64;
                assert_eq!(z.insert(m.clone(), s), model.insert(m, s));
            } else {
                assert_eq!(z.remove(&m), model.remove(&m));
            }
            if step % 997 == 0 {
                let mut v: Vec<(f64, Bytes)> = model.iter().map(|(m, s)| (*s, m.clone())).collect();
                v.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
                let got: Vec<(f64, Bytes)> =
                    z.iter().map(|x| (x.score, x.member.clone())).collect();
                assert_eq!(got, v);
                let back: Vec<(f64, Bytes)> = z
                    .iter()
                    .rev()
                    .map(|x| (x.score, x.member.clone()))
                    .collect();
                assert_eq!(back.len(), v.len());
                for (i, (_, m)) in v.iter().enumerate() {
                    assert_eq!(z.rank(m), Some(i));
                    assert_eq!(&z.get_by_rank(i).unwrap().member, m);
                }
                let (a, b) = (v.len() / 3, v.len() / 2);
                let mid: Vec<_> = z.range(a, b).map(|x| x.member.clone()).collect();
                let want: Vec<_> = v[a..b].iter().map(|x| x.1.clone()).collect();
                assert_eq!(mid, want);
                let midr: Vec<_> = z.range(a, b).rev().map(|x| x.member.clone()).collect();
                assert_eq!(midr, want.into_iter().rev().collect::<Vec<_>>());
            }
        }
    }

    /// A copy shares every chunk and shard (the live set's later writes
    /// copy theirs), reads back equal, and lets go of them when dropped.
    #[test]
    fn a_copy_shares_every_chunk_and_shard_until_written() {
        let mut z = ZSet::new();
        for i in 0..20_000 {
            z.insert(Bytes::from(format!("m{i:06}")), (i % 977) as f64);
        }
        assert!(z.index.chunks.len() > 100 && z.dict.shard_count() > 20);
        let copy = z.clone();
        assert_eq!(copy, z);
        assert_eq!(copy.iter().count(), z.len());
        assert!(copy.iter().zip(z.iter()).all(|(a, b)| a == b));
        assert_eq!(copy.unshared_bytes(), 0);
        assert_eq!(z.unshared_bytes(), 0);
        let before: Vec<_> = copy.iter().map(|x| (x.score, x.member.clone())).collect();
        z.insert(Bytes::from_static(b"m000010"), -1.0);
        z.remove(b"m019999");
        let after: Vec<_> = copy.iter().map(|x| (x.score, x.member.clone())).collect();
        assert_eq!(before, after);
        assert_eq!(copy.score(b"m000010"), Some(10.0));
        // Only the touched chunks and shards went private.
        assert!(z.unshared_bytes() > 0);
        drop(copy);
        let all = cow::unshared_bytes(&z.index.chunks) + crate::sharded::total_bytes(&z.dict);
        assert_eq!(z.unshared_bytes(), all);
    }
}
