//! The copy-on-write containers of big collections against plain models.
//!
//! A separate test binary: these tests replace shared chunks, which moves
//! the process-wide kept-alive counter that snapshot unit tests read.

mod chunklist {
    use bytes::Bytes;
    use proptest::prelude::*;
    use redoubt_persist::chunklist::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        PushBack(u16),
        PushFront(u16),
        PopBack,
        PopFront,
        Insert(u16, u16),
        Remove(u16),
        Set(u16, u16),
        Truncate(u16),
        DropFront(u16),
        Retain(u8),
        Copy,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => any::<u16>().prop_map(Op::PushBack),
            8 => any::<u16>().prop_map(Op::PushFront),
            3 => Just(Op::PopBack),
            3 => Just(Op::PopFront),
            3 => (any::<u16>(), any::<u16>()).prop_map(|(i, v)| Op::Insert(i, v)),
            2 => any::<u16>().prop_map(Op::Remove),
            2 => (any::<u16>(), any::<u16>()).prop_map(|(i, v)| Op::Set(i, v)),
            1 => any::<u16>().prop_map(Op::Truncate),
            1 => (0u16..300).prop_map(Op::DropFront),
            1 => (2u8..7).prop_map(Op::Retain),
            1 => Just(Op::Copy),
        ]
    }

    fn b(v: u16) -> Bytes {
        Bytes::from(v.to_string())
    }

    fn check(l: &ChunkList<Bytes>, m: &VecDeque<Bytes>) -> Result<(), TestCaseError> {
        prop_assert_eq!(l.len(), m.len());
        prop_assert!(l.iter().eq(m.iter()));
        prop_assert!(l.iter().rev().eq(m.iter().rev()));
        prop_assert_eq!(l.node_lens().sum::<usize>(), l.len());
        prop_assert!(l.node_lens().all(|x| x > 0 && x <= NODE_MAX));
        let n = m.len();
        for (a, z) in [(0, n), (n / 3, n / 2), (n / 2, n), (1, 2)] {
            let (a, z) = (a.min(n), z.min(n));
            prop_assert!(l.range(a..z).eq(m.range(a..z)));
            prop_assert!(l.range(a..z).rev().eq(m.range(a..z).rev()));
            prop_assert_eq!(l.range(a..z).len(), z - a);
        }
        for i in [0, n / 2, n.saturating_sub(1), n] {
            prop_assert_eq!(l.get(i), m.get(i));
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Same contents as a VecDeque under any sequence of ops; copies
        /// taken along the way never change afterwards.
        #[test]
        fn matches_a_vecdeque(ops in proptest::collection::vec(op(), 1..3000)) {
            let mut l: ChunkList<Bytes> = ChunkList::new();
            let mut m: VecDeque<Bytes> = VecDeque::new();
            let mut copies = Vec::new();
            for op in ops {
                let n = m.len().max(1);
                match op {
                    Op::PushBack(v) => { l.push_back(b(v)); m.push_back(b(v)); }
                    Op::PushFront(v) => { l.push_front(b(v)); m.push_front(b(v)); }
                    Op::PopBack => prop_assert_eq!(l.pop_back(), m.pop_back()),
                    Op::PopFront => prop_assert_eq!(l.pop_front(), m.pop_front()),
                    Op::Insert(i, v) => {
                        let i = i as usize % (m.len() + 1);
                        l.insert(i, b(v));
                        m.insert(i, b(v));
                    }
                    Op::Remove(i) => {
                        let i = i as usize % n;
                        prop_assert_eq!(l.remove(i), m.remove(i));
                    }
                    Op::Set(i, v) => {
                        let i = i as usize % n;
                        if let Some(x) = l.get_mut(i) { *x = b(v); }
                        if let Some(x) = m.get_mut(i) { *x = b(v); }
                    }
                    Op::Truncate(k) => {
                        let k = m.len().saturating_sub(k as usize % 200);
                        l.truncate(k);
                        m.truncate(k);
                    }
                    Op::DropFront(k) => {
                        l.drop_front(k as usize);
                        m.drain(..(k as usize).min(m.len()));
                    }
                    Op::Retain(d) => {
                        l.retain(|x| x.len() % d as usize != 0);
                        m.retain(|x| x.len() % d as usize != 0);
                    }
                    Op::Copy => copies.push((l.clone(), m.clone())),
                }
                check(&l, &m)?;
            }
            for (c, m) in &copies {
                check(c, m)?;
            }
        }
    }

    #[test]
    fn a_write_after_a_copy_copies_one_node() {
        let mut l: ChunkList<Bytes> = (0..50_000u32).map(|i| Bytes::from(i.to_string())).collect();
        let copy = l.clone();
        assert_eq!(copy.unshared_bytes(), 0);
        l.push_front(Bytes::from_static(b"x"));
        l.pop_back();
        if let Some(x) = l.get_mut(25_000) {
            *x = Bytes::from_static(b"y");
        }
        let kept = copy.unshared_bytes();
        assert!(kept > 0);
        // Two end nodes and one middle node, of about 400.
        assert!(kept < 3 * 8_000, "kept {kept}");
        assert_eq!(copy.len(), 50_000);
        assert_eq!(copy[25_000], Bytes::from_static(b"25000"));
    }
}

mod sharded {
    use bytes::Bytes;
    use proptest::prelude::*;
    use redoubt_persist::sharded::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u8),
        InsertAbsent(u16, u8),
        Remove(u16),
        Snapshot,
        Retain(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0u16..4000, any::<u8>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => (0u16..4000, any::<u8>()).prop_map(|(k, v)| Op::InsertAbsent(k, v)),
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
                    Op::InsertAbsent(k, v) => {
                    let v = Bytes::from(vec![v; 3]);
                    let absent = !model.contains_key(&key(k));
                    if absent {
                        model.insert(key(k), v.clone());
                    }
                    prop_assert_eq!(m.insert_absent_with(&key(k)[..], Bytes::copy_from_slice, v), absent);
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
        assert!(m.shard_lens().all(|n| n <= SHARD_MAX));
        for i in 0..50_000 {
            assert!(m.contains_key(format!("k{i}").as_bytes()));
        }
    }

    /// A full shard splits rather than growing its table: past the first
    /// split every table is the size that holds SHARD_MAX entries, so no
    /// shard ever pays a resize on top of its split.
    #[test]
    fn shards_split_instead_of_growing_their_tables() {
        let mut m: ShardedMap<Bytes, ()> = ShardedMap::new();
        for i in 0..50_000 {
            m.insert(Bytes::from(format!("k{i}")), ());
        }
        let slot = std::mem::size_of::<(Bytes, ())>() as u64 + 1;
        let one_full_table = 64 + SHARD_MAX as u64 * slot;
        assert_eq!(total_bytes(&m), m.shard_count() as u64 * one_full_table);
        // About half full on average: each split leaves two half-full tables.
        let fill = m.len() as f64 / (m.shard_count() * SHARD_MAX) as f64;
        assert!((0.45..=1.0).contains(&fill), "fill {fill}");
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
        let whole = total_bytes(&copy);
        assert!(kept > 0, "the replaced shards are the copy's own");
        assert!(kept * 10 < whole, "kept {kept} of {whole}");
        assert_eq!(copy.get(&b"k7"[..]).map(|v| &v[..]), Some(&b"value"[..]));
        assert!(copy.contains_key(&b"k8"[..]));
    }
}

mod zset {
    use bytes::Bytes;
    use redoubt_persist::zset::ZSet;

    #[test]
    fn a_write_after_a_copy_keeps_a_few_chunks_alive() {
        let mut z = ZSet::new();
        for i in 0..50_000 {
            z.insert(Bytes::from(format!("m{i}")), i as f64);
        }
        let copy = z.clone();
        assert_eq!(copy.unshared_bytes(), 0);
        z.insert(Bytes::from_static(b"m10"), -1.0);
        z.remove(b"m20000");
        let kept = copy.unshared_bytes();
        // Two index chunks (old and new position) plus at most two shards;
        // the whole value is thousands of each.
        assert!(kept > 0);
        assert!(kept < 4 * 70_000, "kept {kept}");
        // (The process-wide counter is checked in big_snapshot.rs, a binary
        // of its own: tests here run in parallel and move it.)
        assert_eq!(copy.score(b"m10"), Some(10.0));
        assert_eq!(copy.rank(b"m20000"), Some(20000));
        drop(copy);
        assert_eq!(z.len(), 49_999);
    }
}
