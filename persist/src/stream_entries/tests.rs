use super::*;
use proptest::prelude::*;

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
type Model = BTreeMap<StreamId, Pairs>;

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

fn pairs(f: &[(Vec<u8>, Vec<u8>)]) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + Clone {
    f.iter().map(|(a, b)| (&a[..], &b[..]))
}

fn owned(e: EntryRef<'_>) -> (StreamId, Pairs) {
    (
        e.id,
        e.fields().map(|(f, v)| (f.to_vec(), v.to_vec())).collect(),
    )
}

fn fv(f: &str, v: &str) -> Pairs {
    vec![(f.as_bytes().to_vec(), v.as_bytes().to_vec())]
}

/// Every observable property of `s` matches the model.
fn check(s: &StreamEntries, m: &Model) {
    assert_eq!(s.len(), m.len());
    assert_eq!(s.is_empty(), m.is_empty());
    let got: Vec<_> = s.iter().map(owned).collect();
    let want: Vec<_> = m.iter().map(|(k, v)| (*k, v.clone())).collect();
    assert_eq!(got, want);
    let rev: Vec<_> = s
        .range_rev(StreamId::MIN, StreamId::MAX)
        .map(owned)
        .collect();
    let want_rev: Vec<_> = want.iter().rev().cloned().collect();
    assert_eq!(rev, want_rev);
    assert_eq!(s.first_id(), m.keys().next().copied());
    assert_eq!(s.last_id(), m.keys().next_back().copied());
    assert_eq!(
        s.last().map(owned),
        m.iter().next_back().map(|(k, v)| (*k, v.clone()))
    );
    // Chunks are ordered and disjoint, and their counts add up.
    let mut prev: Option<StreamId> = None;
    let mut total = 0usize;
    for (k, c) in &s.chunks {
        assert!(c.count > 0, "empty chunk kept");
        let ids: Vec<StreamId> = c.cursor().map(|e| e.id).collect();
        assert_eq!(ids.len(), c.count as usize);
        assert!(*k <= ids[0]);
        assert!(c.base <= ids[0]);
        assert_eq!(c.last, *ids.last().unwrap());
        if let Some(p) = prev {
            assert!(p < *k);
        }
        prev = Some(c.last);
        total += ids.len();
    }
    assert_eq!(total, s.len());
}

#[test]
fn appends_fill_chunks_and_iterate_in_order() {
    let mut s = StreamEntries::new();
    let mut m = Model::new();
    for i in 0..1000u64 {
        let f = if i % 7 == 0 {
            vec![
                (b"other".to_vec(), b"x".to_vec()),
                (b"f2".to_vec(), i.to_string().into_bytes()),
            ]
        } else {
            fv("field", &i.to_string())
        };
        assert!(!s.insert(id(i / 3, i % 3), pairs(&f)));
        m.insert(id(i / 3, i % 3), f);
    }
    check(&s, &m);
    assert!(s.chunk_count() >= 1000 / CHUNK_ENTRIES as usize);
    // Sealed chunks carry little growth slack.
    for c in s.chunks.values().take(s.chunk_count() - 1) {
        assert!(c.buf.capacity() - c.buf.len() <= c.buf.len() / SEAL_SLACK);
    }
    let e = s.get(id(100, 1)).unwrap();
    assert_eq!(owned(e), (id(100, 1), m[&id(100, 1)].clone()));
    assert!(s.get(id(100, 7)).is_none());
    assert!(s.get(id(5000, 0)).is_none());
    assert!(!s.contains(id(0, 5)));
}

#[test]
fn large_values_seal_chunks_by_bytes() {
    let mut s = StreamEntries::new();
    let mut m = Model::new();
    let big = "v".repeat(3000);
    for i in 1..=10u64 {
        let f = fv("f", &big);
        s.insert(id(i, 0), pairs(&f));
        m.insert(id(i, 0), f);
    }
    assert!(s.chunk_count() >= 5);
    check(&s, &m);
}

#[test]
fn removal_from_every_position() {
    let mut s = StreamEntries::new();
    let mut m = Model::new();
    for i in 1..=300u64 {
        let f = fv("f", &i.to_string());
        s.insert(id(i, i % 2), pairs(&f));
        m.insert(id(i, i % 2), f);
    }
    // First, last, middle, a whole chunk, ids that are not there.
    for i in [1u64, 300, 150, 151, 2, 299] {
        assert!(s.remove(id(i, i % 2)));
        m.remove(&id(i, i % 2));
        check(&s, &m);
    }
    assert!(!s.remove(id(150, 0)));
    assert!(!s.remove(id(1, 1)));
    assert!(!s.remove(id(9999, 0)));
    for i in 129..=256u64 {
        s.remove(id(i, i % 2));
        m.remove(&id(i, i % 2));
    }
    check(&s, &m);
    assert_eq!(s.pop_first(), Some(id(3, 1)));
    m.remove(&id(3, 1));
    check(&s, &m);
}

#[test]
fn remove_before_drops_whole_chunks_and_a_head() {
    let mut s = StreamEntries::new();
    let mut m = Model::new();
    for i in 0..1000u64 {
        let f = fv("f", "v");
        s.insert(id(i, 0), pairs(&f));
        m.insert(id(i, 0), f);
    }
    assert_eq!(s.remove_before(id(0, 0)), 0);
    assert_eq!(s.remove_before(id(300, 0)), 300);
    m = m.split_off(&id(300, 0));
    check(&s, &m);
    assert_eq!(s.remove_before(id(300, 1)), 1);
    m.remove(&id(300, 0));
    check(&s, &m);
    // Appending after a trim keeps working.
    let f = fv("f", "new");
    s.insert(id(5000, 0), pairs(&f));
    m.insert(id(5000, 0), f);
    check(&s, &m);
    assert_eq!(s.remove_before(StreamId::MAX), m.len());
    assert!(s.is_empty());
    assert_eq!(s.chunk_count(), 0);
}

#[test]
fn ranges_in_both_directions() {
    let mut s = StreamEntries::new();
    for i in 0..500u64 {
        s.insert(id(i * 2, 0), pairs(&fv("f", "v")));
    }
    let fwd: Vec<u64> = s.range(id(101, 0), id(300, 0)).map(|e| e.id.ms).collect();
    assert_eq!(fwd, (102..=300).step_by(2).collect::<Vec<_>>());
    let rev: Vec<u64> = s
        .range_rev(id(101, 0), id(300, 0))
        .map(|e| e.id.ms)
        .collect();
    assert_eq!(rev, (102..=300).rev().step_by(2).collect::<Vec<_>>());
    assert_eq!(s.range(id(2000, 0), StreamId::MAX).count(), 0);
    assert_eq!(s.range_rev(StreamId::MIN, id(0, 0)).count(), 1);
    assert_eq!(s.range(id(3, 0), id(2, 0)).count(), 0);
}

#[test]
fn equality_ignores_chunking() {
    let mut a = StreamEntries::new();
    let mut b = StreamEntries::new();
    for i in 0..400u64 {
        a.insert(id(i, 0), pairs(&fv("f", &i.to_string())));
    }
    // Built backwards: every insert rewrites the first chunk.
    for i in (0..400u64).rev() {
        b.insert(id(i, 0), pairs(&fv("f", &i.to_string())));
    }
    assert_eq!(a, b);
    let c = b.clone();
    assert_eq!(c, a);
    assert!(b.insert(id(7, 0), pairs(&fv("f", "changed"))));
    assert_ne!(a, b);
    assert_eq!(b.len(), 400);
    // Different field names, same values.
    let mut d = a.clone();
    d.insert(id(8, 0), pairs(&fv("g", "8")));
    assert_ne!(a, d);
}

#[derive(Debug, Clone)]
enum Op {
    Append(u64, u8, u16),
    Insert(u64, u64, u8, u16),
    Remove(u64, u64),
    RemoveBefore(u64, u64),
    RemoveFirstWhile(usize, u64),
    PopFirst,
    Range(u64, u64, bool),
    Get(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..3, 0u8..4, 0u16..300).prop_map(|(d, f, v)| Op::Append(d, f, v)),
        2 => (0u64..200, 0u64..4, 0u8..4, 0u16..300).prop_map(|(a, b, f, v)| Op::Insert(a, b, f, v)),
        2 => (0u64..200, 0u64..4).prop_map(|(a, b)| Op::Remove(a, b)),
        1 => (0u64..200, 0u64..4).prop_map(|(a, b)| Op::RemoveBefore(a, b)),
        1 => (0usize..300, 0u64..250).prop_map(|(n, a)| Op::RemoveFirstWhile(n, a)),
        1 => Just(Op::PopFirst),
        1 => (0u64..200, 0u64..200, any::<bool>()).prop_map(|(a, b, r)| Op::Range(a, b, r)),
        1 => (0u64..200, 0u64..4).prop_map(|(a, b)| Op::Get(a, b)),
    ]
}

/// Field shapes: the master-fields shortcut, other names, several pairs,
/// empty strings and a value too big for one chunk.
fn shape(f: u8, v: u16) -> Pairs {
    let val = if v == 299 {
        vec![b'z'; 5000]
    } else {
        v.to_string().into_bytes()
    };
    match f {
        0 => vec![(b"field".to_vec(), val)],
        1 => vec![(b"a".to_vec(), val.clone()), (b"b".to_vec(), Vec::new())],
        2 => vec![(Vec::new(), val)],
        _ => vec![(b"field".to_vec(), val), (b"x".to_vec(), b"y".to_vec())],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn behaves_as_an_ordered_map(ops in proptest::collection::vec(op(), 1..400)) {
        let mut s = StreamEntries::new();
        let mut m = Model::new();
        for o in ops {
            match o {
                Op::Append(d, f, v) => {
                    let last = m.keys().next_back().copied().unwrap_or(id(1, 0));
                    let next = if d == 0 { id(last.ms, last.seq + 1) } else { id(last.ms + d, v as u64 % 3) };
                    let fields = shape(f, v);
                    prop_assert!(!s.insert(next, pairs(&fields)));
                    m.insert(next, fields);
                }
                Op::Insert(a, b, f, v) => {
                    let fields = shape(f, v);
                    let replaced = s.insert(id(a, b), pairs(&fields));
                    prop_assert_eq!(replaced, m.insert(id(a, b), fields).is_some());
                }
                Op::Remove(a, b) => {
                    prop_assert_eq!(s.remove(id(a, b)), m.remove(&id(a, b)).is_some());
                }
                Op::RemoveBefore(a, b) => {
                    let rest = m.split_off(&id(a, b));
                    let gone = m.len();
                    m = rest;
                    prop_assert_eq!(s.remove_before(id(a, b)), gone);
                }
                Op::RemoveFirstWhile(max, a) => {
                    let mut gone = 0;
                    while gone < max && m.keys().next().is_some_and(|k| k.ms < a) {
                        m.pop_first();
                        gone += 1;
                    }
                    prop_assert_eq!(s.remove_first_while(max, |k| k.ms < a), gone);
                }
                Op::PopFirst => {
                    prop_assert_eq!(s.pop_first(), m.pop_first().map(|x| x.0));
                }
                Op::Range(a, b, rev) => {
                    let (lo, hi) = (id(a, 0), id(b, u64::MAX));
                    if lo <= hi {
                        let want: Vec<StreamId> = m.range(lo..=hi).map(|x| *x.0).collect();
                        if rev {
                            let got: Vec<StreamId> = s.range_rev(lo, hi).map(|e| e.id).collect();
                            prop_assert_eq!(got, want.into_iter().rev().collect::<Vec<_>>());
                        } else {
                            let got: Vec<StreamId> = s.range(lo, hi).map(|e| e.id).collect();
                            prop_assert_eq!(got, want);
                        }
                    }
                }
                Op::Get(a, b) => {
                    prop_assert_eq!(s.get(id(a, b)).map(owned), m.get(&id(a, b)).map(|v| (id(a, b), v.clone())));
                }
            }
        }
        check(&s, &m);
        // Equal to the same content appended in order.
        let fresh: StreamEntries = m
            .iter()
            .map(|(k, v)| {
                (*k, v.iter().map(|(a, b)| (Bytes::copy_from_slice(a), Bytes::copy_from_slice(b))).collect())
            })
            .collect();
        prop_assert_eq!(&fresh, &s);
        prop_assert_eq!(&s.clone(), &s);
    }
}

#[test]
fn varint_lengths_match_what_is_written() {
    for v in [0u64, 1, 127, 128, 16383, 16384, u32::MAX as u64, u64::MAX] {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        assert_eq!(out.len(), varint_len(v), "{v}");
        let mut pos = 0;
        assert_eq!(get_varint(&out, &mut pos), v);
    }
}

#[test]
fn appended_chunks_are_sized_from_the_one_before() {
    // Alike entries: a chunk opens with room for what the last one held,
    // so it fills without regrowing and is not shrunk (moved again) when
    // the next one opens.
    let mut s = StreamEntries::new();
    let mut seen = 0;
    for i in 0..10 * CHUNK_ENTRIES as u64 {
        let v = format!("value{}", i % 10);
        s.insert(
            id(1_700_000_000_000 + i / 5, i % 5),
            pairs(&fv("field", &v)),
        );
        let n = s.chunk_count();
        if n > seen && n > 1 {
            let mut back = s.chunks.values().rev();
            let (new, prev) = (back.next().unwrap(), back.next().unwrap());
            assert!(new.buf.capacity() >= prev.buf.len(), "chunk {n}");
        }
        seen = n;
    }
    let all: Vec<_> = s.chunks.values().collect();
    for c in &all[1..all.len() - 1] {
        // Filled within the room it opened with: never doubled.
        assert!(c.buf.capacity() < 2 * c.buf.len());
        assert!(c.buf.capacity() - c.buf.len() <= c.buf.len() / SEAL_SLACK);
    }
}
