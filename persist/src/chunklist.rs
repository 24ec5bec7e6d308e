//! A deque stored as a sequence of small nodes shared copy-on-write, like
//! Redis's quicklist.
//!
//! A list of a million elements in one `VecDeque` costs O(n) to copy,
//! which is what a snapshot's pre-image of the key needs. Here the
//! elements sit in nodes of at most [`NODE_MAX`] behind `Arc`: a copy
//! duplicates node pointers, and a write afterwards copies only the node it
//! touches (see [`crate::cow`]). Pushes and pops at either end stay O(1).
//!
//! Positions are found from the node lengths, kept in their own dense
//! array and walked from the nearer end: for a million elements that is a
//! few thousand integers, summed without touching the nodes.

use crate::cow::{self, ChunkBytes, Shared};
use crate::sharded::EntryBytes;
use std::collections::VecDeque;
use std::ops::{Bound, RangeBounds};

/// Most elements in one node.
pub const NODE_MAX: usize = 128;

type Node<T> = VecDeque<T>;

impl<T> ChunkBytes for Node<T> {
    /// The element headers only: the elements' bytes are shared with the
    /// live value's copy of the node.
    fn chunk_bytes(&self) -> u64 {
        (64 + self.capacity() * std::mem::size_of::<T>()) as u64
    }
}

/// The list. Every node is non-empty; `lens[i]` is `nodes[i].len()`.
#[derive(Clone)]
pub struct ChunkList<T> {
    nodes: VecDeque<Shared<Node<T>>>,
    lens: VecDeque<u32>,
    len: usize,
}

impl<T> Default for ChunkList<T> {
    fn default() -> Self {
        ChunkList {
            nodes: VecDeque::new(),
            lens: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ChunkList<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> ChunkList<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of nodes (DEBUG OBJECT reports it).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The nodes' lengths, in order.
    pub fn node_lens(&self) -> impl Iterator<Item = usize> + '_ {
        self.lens.iter().map(|&l| l as usize)
    }

    /// (node, offset) of position `i` (< len), walking the lengths from
    /// the nearer end.
    fn locate(&self, i: usize) -> (usize, usize) {
        if i < self.len / 2 {
            let mut rest = i;
            for (n, &l) in self.lens.iter().enumerate() {
                let l = l as usize;
                if rest < l {
                    return (n, rest);
                }
                rest -= l;
            }
        } else {
            // Distance from the end, 1-based.
            let mut rest = self.len - i;
            for (n, &l) in self.lens.iter().enumerate().rev() {
                let l = l as usize;
                if rest <= l {
                    return (n, l - rest);
                }
                rest -= l;
            }
        }
        (self.nodes.len(), 0)
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let (n, o) = self.locate(i);
        self.nodes.get(n).and_then(|node| node.get().get(o))
    }

    pub fn front(&self) -> Option<&T> {
        self.nodes.front().and_then(|n| n.get().front())
    }

    pub fn back(&self) -> Option<&T> {
        self.nodes.back().and_then(|n| n.get().back())
    }

    /// Elements at positions in `range` (clamped to the length), in order;
    /// reversible.
    pub fn range(&self, range: impl RangeBounds<usize>) -> Iter<'_, T> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.len,
        }
        .min(self.len);
        let start = start.min(end);
        if start == end {
            return Iter {
                nodes: &self.nodes,
                front: (0, 0),
                back: (0, 0),
                remaining: 0,
            };
        }
        let front = self.locate(start);
        let (bn, bo) = self.locate(end - 1);
        Iter {
            nodes: &self.nodes,
            front,
            back: (bn, bo + 1),
            remaining: end - start,
        }
    }

    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            nodes: &self.nodes,
            front: (0, 0),
            back: (
                self.nodes.len().saturating_sub(1),
                self.lens.back().copied().unwrap_or(0) as usize,
            ),
            remaining: self.len,
        }
    }

    pub fn clear(&mut self) {
        self.nodes.clear();
        self.lens.clear();
        self.len = 0;
    }
}

impl<T: Clone + EntryBytes> ChunkList<T> {
    pub fn with_capacity(_n: usize) -> Self {
        Self::default()
    }

    /// An empty node for an end of the list. A big list's new node gets
    /// room for [`NODE_MAX`] at once: growing it step by step would copy its
    /// elements four times over as it fills. A small list's nodes start
    /// small, so that a list of a few elements costs a few slots; the room
    /// left unused at either end stays under an eighth of the list.
    fn new_node(&self) -> Node<T> {
        let cap = if self.len >= 8 * NODE_MAX {
            NODE_MAX
        } else {
            8
        };
        VecDeque::with_capacity(cap)
    }

    fn node_mut(&mut self, n: usize) -> &mut Node<T> {
        cow::make_mut(&mut self.nodes[n])
    }

    pub fn push_back(&mut self, x: T) {
        match self.lens.back_mut() {
            Some(l) if (*l as usize) < NODE_MAX => {
                *l += 1;
                let last = self.nodes.len() - 1;
                self.node_mut(last).push_back(x);
            }
            _ => {
                let mut node = self.new_node();
                node.push_back(x);
                self.nodes.push_back(cow::shared(node));
                self.lens.push_back(1);
            }
        }
        self.len += 1;
    }

    pub fn push_front(&mut self, x: T) {
        match self.lens.front_mut() {
            Some(l) if (*l as usize) < NODE_MAX => {
                *l += 1;
                self.node_mut(0).push_front(x);
            }
            _ => {
                let mut node = self.new_node();
                node.push_front(x);
                self.nodes.push_front(cow::shared(node));
                self.lens.push_front(1);
            }
        }
        self.len += 1;
    }

    pub fn pop_back(&mut self) -> Option<T> {
        let last = self.nodes.len().checked_sub(1)?;
        let x = self.node_mut(last).pop_back();
        self.shrunk(last, 1);
        x
    }

    pub fn pop_front(&mut self) -> Option<T> {
        if self.nodes.is_empty() {
            return None;
        }
        let x = self.node_mut(0).pop_front();
        self.shrunk(0, 1);
        x
    }

    /// Node `n` lost `k` elements: update the lengths, drop it if empty.
    fn shrunk(&mut self, n: usize, k: usize) {
        self.len -= k;
        self.lens[n] -= k as u32;
        if self.lens[n] == 0 {
            if let Some(node) = self.nodes.remove(n) {
                cow::release(node);
            }
            self.lens.remove(n);
        }
    }

    /// Mutable access to the element at `i` (copies its node if shared).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let (n, o) = self.locate(i);
        self.node_mut(n).get_mut(o)
    }

    /// Inserts `x` before position `i` (`i == len` appends).
    pub fn insert(&mut self, i: usize, x: T) {
        if i >= self.len {
            return self.push_back(x);
        }
        if i == 0 {
            return self.push_front(x);
        }
        let (n, o) = self.locate(i);
        let node = cow::make_mut(&mut self.nodes[n]);
        node.insert(o, x);
        self.len += 1;
        if node.len() > NODE_MAX {
            let tail = node.split_off(NODE_MAX / 2);
            self.lens[n] = (NODE_MAX / 2) as u32;
            self.lens.insert(n + 1, tail.len() as u32);
            self.nodes.insert(n + 1, cow::shared(tail));
        } else {
            self.lens[n] += 1;
        }
    }

    pub fn remove(&mut self, i: usize) -> Option<T> {
        if i >= self.len {
            return None;
        }
        let (n, o) = self.locate(i);
        let x = self.node_mut(n).remove(o);
        self.shrunk(n, 1);
        x
    }

    /// Keeps the first `n` elements.
    pub fn truncate(&mut self, n: usize) {
        while self.len > n {
            let last = self.nodes.len() - 1;
            let l = self.lens[last] as usize;
            let cut = (self.len - n).min(l);
            if cut == l {
                if let Some(node) = self.nodes.pop_back() {
                    cow::release(node);
                }
                self.lens.pop_back();
                self.len -= l;
            } else {
                self.node_mut(last).truncate(l - cut);
                self.shrunk(last, cut);
            }
        }
    }

    /// Removes the first `n` elements.
    pub fn drop_front(&mut self, n: usize) {
        let mut n = n.min(self.len);
        while n > 0 {
            let l = self.lens[0] as usize;
            if n >= l {
                if let Some(node) = self.nodes.pop_front() {
                    cow::release(node);
                }
                self.lens.pop_front();
                self.len -= l;
                n -= l;
            } else {
                self.node_mut(0).drain(..n);
                self.shrunk(0, n);
                n = 0;
            }
        }
    }

    /// Keeps the elements for which `f` holds, in order. Nodes with
    /// nothing to remove are not copied; nodes left small are packed again.
    pub fn retain(&mut self, mut f: impl FnMut(&T) -> bool) {
        let mut changed = false;
        for n in 0..self.nodes.len() {
            let keep: Vec<bool> = self.nodes[n].get().iter().map(&mut f).collect();
            if keep.iter().all(|&k| k) {
                continue;
            }
            changed = true;
            let mut it = keep.into_iter();
            let node = self.node_mut(n);
            node.retain(|_| it.next().unwrap_or(true));
            let l = node.len() as u32;
            self.len -= (self.lens[n] - l) as usize;
            self.lens[n] = l;
        }
        if !changed {
            return;
        }
        let packed = self.len.div_ceil(NODE_MAX);
        if self.nodes.len() > 2 * packed + 2 {
            let packed: ChunkList<T> = self.iter().cloned().collect();
            for node in std::mem::replace(self, packed).nodes {
                cow::release(node);
            }
        } else {
            while let Some(n) = self.lens.iter().position(|&l| l == 0) {
                if let Some(node) = self.nodes.remove(n) {
                    cow::release(node);
                }
                self.lens.remove(n);
            }
        }
    }

    /// Bytes of this list's nodes that no other copy shares: for a
    /// snapshot's pre-image, what it alone keeps alive.
    pub fn unshared_bytes(&self) -> u64 {
        cow::unshared_bytes(&self.nodes)
    }

    /// Drops the list a node at a time (see [`cow::drop_chunks`]).
    pub fn drop_by_chunk(self, between: &mut dyn FnMut()) {
        cow::drop_chunks(self.nodes, between)
    }
}

impl<T: Clone + EntryBytes> FromIterator<T> for ChunkList<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut l = ChunkList::new();
        l.extend(iter);
        l
    }
}

impl<T: Clone + EntryBytes> Extend<T> for ChunkList<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for x in iter {
            self.push_back(x);
        }
    }
}

impl<T: Clone + EntryBytes> From<Vec<T>> for ChunkList<T> {
    fn from(v: Vec<T>) -> Self {
        v.into_iter().collect()
    }
}

impl<T: Clone + EntryBytes> From<VecDeque<T>> for ChunkList<T> {
    fn from(v: VecDeque<T>) -> Self {
        v.into_iter().collect()
    }
}

impl<T: PartialEq> PartialEq for ChunkList<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<T: PartialEq<U>, U, const N: usize> PartialEq<[U; N]> for ChunkList<T> {
    fn eq(&self, other: &[U; N]) -> bool {
        self.len == N && self.iter().zip(other).all(|(a, b)| a == b)
    }
}

impl<T> std::ops::Index<usize> for ChunkList<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        assert!(
            i < self.len,
            "index {i} out of range for a list of {}",
            self.len
        );
        let (n, o) = self.locate(i);
        &self.nodes[n].get()[o]
    }
}

impl<'a, T> IntoIterator for &'a ChunkList<T> {
    type Item = &'a T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

/// A double-ended iterator over a run of positions of a [`ChunkList`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    nodes: &'a VecDeque<Shared<Node<T>>>,
    front: (usize, usize),
    /// One past the last element: (node, offset + 1).
    back: (usize, usize),
    remaining: usize,
}

impl<T> Clone for Iter<'_, T> {
    fn clone(&self) -> Self {
        Iter {
            nodes: self.nodes,
            front: self.front,
            back: self.back,
            remaining: self.remaining,
        }
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    #[inline]
    fn next(&mut self) -> Option<&'a T> {
        if self.remaining == 0 {
            return None;
        }
        let mut node = self.nodes[self.front.0].get();
        while self.front.1 >= node.len() {
            self.front = (self.front.0 + 1, 0);
            node = self.nodes[self.front.0].get();
        }
        let item = &node[self.front.1];
        self.front.1 += 1;
        self.remaining -= 1;
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> DoubleEndedIterator for Iter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        while self.back.1 == 0 {
            self.back.0 -= 1;
            self.back.1 = self.nodes[self.back.0].get().len();
        }
        self.back.1 -= 1;
        self.remaining -= 1;
        Some(&self.nodes[self.back.0].get()[self.back.1])
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A copy shares every node (across the deque's wrap), reads back
    /// equal, keeps its contents while the live list changes, and lets go
    /// of the nodes when dropped.
    #[test]
    fn a_copy_shares_every_node_until_written() {
        let mut l: ChunkList<bytes::Bytes> = ChunkList::new();
        for i in 0..10_000 {
            l.push_back(bytes::Bytes::from(format!("e{i}")));
        }
        // Nodes pushed at the front too, so the node deque wraps.
        for i in 0..3_000 {
            l.push_front(bytes::Bytes::from(format!("f{i}")));
        }
        let copy = l.clone();
        assert_eq!(copy.len(), l.len());
        assert!(copy.iter().eq(l.iter()));
        assert!(copy
            .nodes
            .iter()
            .zip(&l.nodes)
            .all(|(a, b)| Arc::ptr_eq(a, b)));
        assert!(l.nodes.iter().all(|n| Arc::strong_count(n) == 2));
        let before: Vec<_> = copy.iter().cloned().collect();
        *l.get_mut(5_000).unwrap() = bytes::Bytes::from_static(b"x");
        l.pop_front();
        assert!(copy.iter().eq(before.iter()));
        drop(copy);
        assert!(l.nodes.iter().all(|n| Arc::strong_count(n) == 1));
    }
}
