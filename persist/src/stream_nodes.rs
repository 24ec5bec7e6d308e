//! A model of how Redis packs a stream into radix-tree nodes (listpacks).
//!
//! Redis appends entries to the last listpack until it holds
//! `stream-node-max-entries` entries (deleted ones included) or its bytes
//! would pass `stream-node-max-bytes`, and approximate trimming (`MAXLEN ~`,
//! `MINID ~`) only ever drops whole nodes. So to trim exactly as much as
//! Redis does, the node boundaries must be known: this tracks, per node, its
//! master id, master fields, listpack size, and valid/deleted counts, with
//! listpack sizes computed as Redis's listpack encoder computes them.
//! (XINFO STREAM's radix-tree counts come from here too.)

use crate::stream_entries::StreamEntries;
use crate::value::StreamId;
use bytes::Bytes;
use std::collections::VecDeque;

/// Redis's STREAM_LISTPACK_MAX_SIZE.
const LISTPACK_MAX: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub struct Node {
    /// The node's key: the id of its first entry ever.
    pub master: StreamId,
    pub master_fields: Vec<Bytes>,
    /// Size of the listpack in bytes.
    pub bytes: u64,
    /// Valid entries.
    pub count: u64,
    /// Entries flagged deleted but still inside the listpack.
    pub deleted: u64,
    /// The last id in the listpack (deleted or not).
    pub last: StreamId,
}

/// The node layout of one stream. Equality ignores it: two streams with
/// the same entries are equal however they are packed.
#[derive(Debug, Clone, Default)]
pub struct StreamNodes {
    pub nodes: VecDeque<Node>,
    /// Valid entries over all nodes (to detect a stale layout).
    total: u64,
}

impl PartialEq for StreamNodes {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

fn backlen(l: u64) -> u64 {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

/// Bytes a listpack integer element takes.
pub fn lp_int_len(v: i64) -> u64 {
    let enc = match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8388608..=8388607 => 4,
        -2147483648..=2147483647 => 5,
        _ => 9,
    };
    enc + backlen(enc)
}

/// Bytes a listpack string element takes (strings that are canonical
/// integers are stored as integers).
pub fn lp_str_len(s: &[u8]) -> u64 {
    if let Some(v) = canonical_i64(s) {
        return lp_int_len(v);
    }
    let l = s.len() as u64;
    let enc = if l < 64 {
        1 + l
    } else if l < 4096 {
        2 + l
    } else {
        5 + l
    };
    enc + backlen(enc)
}

fn canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, d) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if d.is_empty() || (d[0] == b'0' && (d.len() > 1 || neg)) {
        return None;
    }
    let mut v: i128 = 0;
    for &c in d {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i128;
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

impl StreamNodes {
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Appends a node as read from an RDB file (whose listpacks carry the
    /// real layout), so the layout survives a restart.
    pub fn push_node(&mut self, node: Node) {
        self.total += node.count;
        self.nodes.push_back(node);
    }

    /// Rebuilds the layout if it does not describe `entries` (a stream loaded
    /// from disk or built field by field), as if the entries were appended
    /// in order.
    pub fn sync(&mut self, entries: &StreamEntries, max_bytes: u64, max_entries: u64) {
        if self.total == entries.len() as u64 {
            return;
        }
        self.nodes.clear();
        self.total = 0;
        for e in entries.iter() {
            self.append(e.id, e.fields(), max_bytes, max_entries);
        }
    }

    /// Records an appended entry, opening a new node when Redis would.
    pub fn append<'f, I>(&mut self, id: StreamId, fields: I, max_bytes: u64, max_entries: u64)
    where
        I: ExactSizeIterator<Item = (&'f [u8], &'f [u8])> + Clone,
    {
        let max_bytes = if max_bytes == 0 || max_bytes > LISTPACK_MAX {
            LISTPACK_MAX
        } else {
            max_bytes
        };
        let totelelen: u64 = fields
            .clone()
            .map(|(f, v)| (f.len() + v.len()) as u64)
            .sum();
        let need_new = match self.nodes.back() {
            None => true,
            Some(n) => {
                n.bytes + totelelen >= max_bytes
                    || (max_entries != 0 && n.count + n.deleted >= max_entries)
            }
        };
        if need_new {
            // Header (6) + end (1), then the master entry: count, deleted,
            // number of fields, the fields, and a 0 terminator.
            let mut bytes = 7 + lp_int_len(1) + lp_int_len(0) + lp_int_len(fields.len() as i64);
            bytes += fields.clone().map(|(f, _)| lp_str_len(f)).sum::<u64>();
            bytes += lp_int_len(0);
            self.nodes.push_back(Node {
                master: id,
                master_fields: fields
                    .clone()
                    .map(|(f, _)| Bytes::copy_from_slice(f))
                    .collect(),
                bytes,
                // The master entry is written counting this entry already.
                count: 0,
                deleted: 0,
                last: id,
            });
        }
        let Some(n) = self.nodes.back_mut() else {
            return;
        };
        let same = n.master_fields.len() == fields.len()
            && n.master_fields
                .iter()
                .zip(fields.clone())
                .all(|(m, (f, _))| m.as_ref() == f);
        let flags = if same { 2 } else { 0 };
        let mut b = lp_int_len(flags)
            + lp_int_len(id.ms.wrapping_sub(n.master.ms) as i64)
            + lp_int_len(id.seq.wrapping_sub(n.master.seq) as i64);
        let nf = fields.len() as i64;
        if same {
            b += fields.clone().map(|(_, v)| lp_str_len(v)).sum::<u64>();
            b += lp_int_len(nf + 3);
        } else {
            b += lp_int_len(nf);
            b += fields
                .map(|(f, v)| lp_str_len(f) + lp_str_len(v))
                .sum::<u64>();
            b += lp_int_len(nf * 2 + 4);
        }
        if !need_new {
            // The master count is rewritten in place and may grow.
            b += lp_int_len(n.count as i64 + 1) - lp_int_len(n.count as i64);
        }
        n.bytes += b;
        n.count += 1;
        n.last = id;
        self.total += 1;
    }

    /// Index of the node holding `id`.
    fn node_of(&self, id: StreamId) -> Option<usize> {
        let i = self.nodes.partition_point(|n| n.master <= id);
        i.checked_sub(1)
    }

    /// Records the deletion (XDEL) of an entry that was present: the node
    /// goes when its last valid entry does.
    pub fn mark_deleted(&mut self, id: StreamId) {
        let Some(i) = self.node_of(id) else { return };
        self.total = self.total.saturating_sub(1);
        let n = &mut self.nodes[i];
        if n.count <= 1 {
            self.nodes.remove(i);
            return;
        }
        n.bytes = n.bytes + lp_int_len(n.count as i64 - 1) - lp_int_len(n.count as i64)
            + lp_int_len(n.deleted as i64 + 1)
            - lp_int_len(n.deleted as i64);
        n.count -= 1;
        n.deleted += 1;
    }

    /// Drops the first node; returns its valid-entry count.
    pub fn pop_front(&mut self) -> u64 {
        let n = self.nodes.pop_front().map_or(0, |n| n.count);
        self.total -= n;
        n
    }

    /// Flags `k` valid entries of the first node deleted (exact trimming
    /// inside a node, which Redis does by flagging, not by removing).
    pub fn delete_in_front(&mut self, k: u64) {
        if let Some(n) = self.nodes.front_mut() {
            let k = k.min(n.count);
            n.bytes = n.bytes + lp_int_len((n.count - k) as i64) - lp_int_len(n.count as i64)
                + lp_int_len((n.deleted + k) as i64)
                - lp_int_len(n.deleted as i64);
            n.count -= k;
            n.deleted += k;
            self.total -= k;
        }
    }

    /// The node count Redis's radix tree would report (`radix-tree-nodes`):
    /// a path-compressed trie over the 16-byte big-endian master ids has a
    /// node at the root, at every prefix with two or more children, at every
    /// child of such a prefix, and at every key.
    pub fn rax_nodes(&self) -> u64 {
        let keys: Vec<[u8; 16]> = self
            .nodes
            .iter()
            .map(|n| {
                let mut k = [0u8; 16];
                k[..8].copy_from_slice(&n.master.ms.to_be_bytes());
                k[8..].copy_from_slice(&n.master.seq.to_be_bytes());
                k
            })
            .collect();
        let mut set: hashbrown::HashSet<(usize, [u8; 16])> = hashbrown::HashSet::new();
        let prefix = |k: &[u8; 16], l: usize| {
            let mut p = [0u8; 16];
            p[..l].copy_from_slice(&k[..l]);
            (l, p)
        };
        set.insert((0, [0u8; 16]));
        for k in &keys {
            set.insert(prefix(k, 16));
        }
        for w in keys.windows(2) {
            let l = w[0].iter().zip(&w[1]).take_while(|(a, b)| a == b).count();
            if l < 16 {
                set.insert(prefix(&w[0], l));
                set.insert(prefix(&w[0], l + 1));
                set.insert(prefix(&w[1], l + 1));
            }
        }
        set.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listpack_sizes() {
        assert_eq!(lp_int_len(5), 2);
        assert_eq!(lp_int_len(-1), 3);
        assert_eq!(lp_str_len(b"123"), 2);
        assert_eq!(lp_str_len(b"0123"), 6);
        assert_eq!(lp_str_len(b"abc"), 5);
        assert_eq!(lp_str_len(&[b'x'; 100]), 103);
    }

    #[test]
    fn nodes_split_by_count() {
        let mut n = StreamNodes::default();
        let f = [(Bytes::from("a"), Bytes::from("1"))];
        for i in 1..=250u64 {
            n.append(
                StreamId::new(i, 0),
                f.iter().map(|(a, b)| (&a[..], &b[..])),
                4096,
                100,
            );
        }
        assert_eq!(n.len(), 3);
        assert_eq!(n.nodes[2].count, 50);
        assert!(n.rax_nodes() >= 4);
    }
}
