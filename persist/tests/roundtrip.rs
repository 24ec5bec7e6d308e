//! Property tests: random keyspaces survive encode -> decode for RDB v10,
//! v11 and v12; random damage to valid files never panics or hangs.

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use redoubt_persist::rdb::{
    self, DecodeOptions, Decoder, EncodingLimits, LoadOptions, SaveOptions,
};
use redoubt_persist::value::{
    Consumer, ConsumerGroup, HashValue, ListValue, PendingEntry, SetValue, Stream, StreamId, Value,
    ZSet,
};
use redoubt_persist::Keyspace;
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn bytes_s() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from),
        any::<i64>().prop_map(|i| Bytes::from(i.to_string())),
        (-200i64..200).prop_map(|i| Bytes::from(i.to_string())),
        (0usize..3).prop_map(|n| Bytes::from(vec![b'r'; 60 + n * 40])),
    ]
}

fn score_s() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("no NaN", |f| !f.is_nan()),
        (-1000i32..1000).prop_map(f64::from),
        (-1000i32..1000).prop_map(|i| f64::from(i) / 8.0),
        Just(0.1),
        Just(-0.0),
    ]
}

fn stream_s(version: u32) -> impl Strategy<Value = Stream> {
    let entries = proptest::collection::vec(
        (
            0u64..3,
            0u64..3,
            proptest::collection::vec((bytes_s(), bytes_s()), 0..4),
        ),
        0..12,
    );
    let groups = proptest::collection::vec(
        (
            bytes_s(),
            any::<u64>(),
            -1i64..50,
            1usize..3,
            any::<u64>(),
            any::<u64>(),
        ),
        0..3,
    );
    (entries, groups, any::<u64>(), 0u64..5).prop_map(move |(es, gs, t, extra)| {
        let mut s = Stream::default();
        let mut id = StreamId::new(1_700_000_000_000, 0);
        for (dms, dseq, fields) in es {
            id = if dms == 0 {
                StreamId::new(id.ms, id.seq + 1 + dseq)
            } else {
                StreamId::new(id.ms + dms, dseq)
            };
            s.entries
                .insert(id, fields.iter().map(|(f, v)| (&f[..], &v[..])));
        }
        s.last_id = if extra == 0 {
            id
        } else {
            StreamId::new(id.ms + extra, 0)
        };
        s.first_id = s.entries.first_id().unwrap_or_default();
        s.max_deleted_id = StreamId::new(extra, 1);
        s.entries_added = s.entries.len() as u64 + extra;
        let ids: Vec<StreamId> = s.entries.iter().map(|e| e.id).collect();
        for (gi, (name, last, er, ncons, seen, active)) in gs.into_iter().enumerate() {
            let mut g = ConsumerGroup {
                last_id: StreamId::new(last % 3, 0),
                entries_read: er,
                ..ConsumerGroup::default()
            };
            let names: Vec<Bytes> = (0..ncons).map(|c| Bytes::from(format!("c{c}"))).collect();
            for n in &names {
                let seen = seen % (1 << 45);
                g.consumers.insert(
                    n.clone(),
                    Consumer {
                        seen_time: seen,
                        active_time: if version >= 11 {
                            active % (1 << 45)
                        } else {
                            seen
                        },
                        pel: BTreeSet::new(),
                    },
                );
            }
            for (k, id) in ids.iter().enumerate() {
                if (k + gi) % 2 == 0 {
                    let owner = names[(t as usize + k) % names.len()].clone();
                    g.pel.insert(
                        *id,
                        PendingEntry {
                            delivery_time: t % (1 << 45),
                            delivery_count: (k as u64) + 1,
                            consumer: owner.clone(),
                        },
                    );
                    if let Some(c) = g.consumers.get_mut(&owner) {
                        c.pel.insert(*id);
                    }
                }
            }
            let mut name = name.to_vec();
            name.extend_from_slice(format!("#{gi}").as_bytes());
            s.groups.insert(Bytes::from(name), g);
        }
        s
    })
}

fn value_s(version: u32) -> impl Strategy<Value = Value> {
    let hash = (
        proptest::collection::vec(
            (bytes_s(), bytes_s(), proptest::option::of(1u64..(1 << 47))),
            1..30,
        ),
        any::<bool>(),
    )
        .prop_map(move |(pairs, flag)| {
            let mut h = HashValue::default();
            let mut ttl = HashMap::new();
            for (f, v, t) in pairs {
                if let (Some(t), true) = (t, version >= 12) {
                    ttl.insert(f.clone(), t);
                } else {
                    ttl.remove(&f);
                }
                h.map.insert(f, v);
            }
            if !ttl.is_empty() {
                h.field_expiry = Some(Box::new(ttl));
            }
            if flag {
                h.promote();
            }
            Value::Hash(Box::new(h))
        });
    prop_oneof![
        bytes_s().prop_map(Value::Str),
        proptest::collection::vec(bytes_s(), 1..40)
            .prop_map(|v| Value::List(Box::new(ListValue { items: v.into() }))),
        proptest::collection::vec(bytes_s(), 1..40).prop_map(|v| {
            let mut s = SetValue::default();
            s.members.extend(v);
            Value::Set(Box::new(s))
        }),
        proptest::collection::vec(any::<i64>(), 1..40).prop_map(|v| {
            let mut s = SetValue::default();
            s.members
                .extend(v.into_iter().map(|i| Bytes::from(i.to_string())));
            Value::Set(Box::new(s))
        }),
        proptest::collection::vec((bytes_s(), score_s()), 1..40).prop_map(|v| {
            let mut z = ZSet::new();
            for (m, s) in v {
                z.insert(m, s);
            }
            Value::ZSet(Box::new(z))
        }),
        hash,
        stream_s(version).prop_map(|s| Value::Stream(Box::new(s))),
    ]
}

fn keyspace_s(version: u32) -> impl Strategy<Value = Keyspace> {
    proptest::collection::vec(
        (
            0usize..4,
            bytes_s(),
            value_s(version),
            prop_oneof![Just(0u64), 1u64..(1 << 50)],
        ),
        0..25,
    )
    .prop_map(|entries| {
        let mut ks = Keyspace::new(4);
        let limits = EncodingLimits::default();
        for (db, k, mut v, exp) in entries {
            // Loading recomputes the encoding flags from the thresholds.
            limits.apply(&mut v);
            ks.db(db).insert(&k, v, exp);
        }
        ks
    })
}

fn roundtrip(ks: &Keyspace, version: u32, compression: bool) -> Result<(), TestCaseError> {
    let opts = SaveOptions {
        version,
        compression,
        ..SaveOptions::default()
    };
    let bytes = rdb::write_keyspace(ks, Vec::new(), opts).unwrap();
    let mut back = Keyspace::new(4);
    let st = rdb::load_keyspace(
        &bytes[..],
        Some(bytes.len() as u64),
        &mut back,
        &LoadOptions::new(0),
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(st.rdb_version, version);
    for (i, db) in ks.dbs.iter().enumerate() {
        prop_assert_eq!(db.len(), back.dbs[i].len());
        for e in db.iter() {
            let got = back.dbs[i].peek(&e.key).expect("key lost");
            prop_assert_eq!(&got.value, &e.value);
            prop_assert_eq!(got.expire_at, e.expire_at);
        }
    }
    // DUMP payloads round-trip as well.
    for e in ks.dbs.iter().flat_map(|d| d.iter()).take(5) {
        let p = rdb::dump_payload(&e.value, version).unwrap();
        prop_assert_eq!(&rdb::restore_payload(&p).unwrap(), &e.value);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip_v10(ks in keyspace_s(10), comp in any::<bool>()) {
        roundtrip(&ks, 10, comp)?;
    }

    #[test]
    fn roundtrip_v11(ks in keyspace_s(11), comp in any::<bool>()) {
        roundtrip(&ks, 11, comp)?;
    }

    #[test]
    fn roundtrip_v12(ks in keyspace_s(12), comp in any::<bool>()) {
        roundtrip(&ks, 12, comp)?;
    }
}

/// Decodes everything, returning whether it succeeded (panics propagate).
fn decode_all(b: &[u8], known_len: bool) -> bool {
    let Ok(mut dec) = Decoder::new(
        b,
        known_len.then_some(b.len() as u64),
        DecodeOptions::default(),
    ) else {
        return false;
    };
    loop {
        match dec.next_item() {
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

fn sample_files() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/redis-7.0.15");
    let mut v: Vec<Vec<u8>> = [
        "small.rdb",
        "lfu.rdb",
        "all-types-nocompress-nochecksum.rdb",
    ]
    .iter()
    .filter_map(|f| std::fs::read(format!("{dir}/{f}")).ok())
    .collect();
    // One of ours too, with checksum off so flips reach the value decoders.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let ks = keyspace_s(12).new_tree(&mut runner).unwrap().current();
    let opts = SaveOptions {
        version: 12,
        checksum: false,
        ..SaveOptions::default()
    };
    v.push(rdb::write_keyspace(&ks, Vec::new(), opts).unwrap());
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn damaged_files_never_panic(
        which in 0usize..4,
        cut in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 0..4),
        truncate in any::<bool>(),
        known in any::<bool>(),
    ) {
        let files = sample_files();
        let mut b = files[which % files.len()].clone();
        for (pos, bit) in flips {
            let i = pos.index(b.len());
            b[i] ^= 1 << bit;
        }
        if truncate {
            b.truncate(cut.index(b.len()));
        }
        let _ = decode_all(&b, known);
        // Payload decoding of the same damaged bytes (CRC skipped so the
        // value decoders see them).
        let _ = rdb::restore_payload_unchecked(&b);
    }

    #[test]
    fn damaged_payloads_never_panic(
        v in value_s(12),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut p = rdb::dump_payload(&v, 12).unwrap();
        for (pos, bit) in flips {
            let i = pos.index(p.len());
            p[i] ^= 1 << bit;
        }
        let _ = rdb::restore_payload_unchecked(&p);
        p.truncate(cut.index(p.len()));
        let _ = rdb::restore_payload_unchecked(&p);
        prop_assert!(rdb::restore_payload(&p).is_err());
    }
}

#[test]
fn hash_field_ttl_needs_v12() {
    let mut h = HashValue::default();
    h.map.insert("f".into(), "v".into());
    h.field_expiry = Some(Box::new(HashMap::from([(Bytes::from("f"), 5u64)])));
    let mut ks = Keyspace::new(1);
    ks.db(0).insert(b"k", Value::Hash(Box::new(h)), 0);
    for v in [10, 11] {
        let opts = SaveOptions {
            version: v,
            ..SaveOptions::default()
        };
        let e = rdb::write_keyspace(&ks, Vec::new(), opts).unwrap_err();
        assert!(
            e.to_string()
                .contains("cannot write hash field expiration in RDB version"),
            "{e}"
        );
    }
    let _ = BTreeMap::<u8, u8>::new();
}
