//! Unit tests of the codec on hand-built inputs: old versions, rare
//! opcodes, blob edge cases, hostile lengths.

use super::decode::{DecodeOptions, Decoded, Decoder, Item};
use super::encode::put_len;
use super::*;
use crate::value::Value;

fn items(bytes: &[u8]) -> Result<Vec<Item>, RdbError> {
    let mut dec = Decoder::new(bytes, None, DecodeOptions::default())?;
    let mut v = Vec::new();
    while let Some(i) = dec.next_item()? {
        v.push(i);
    }
    Ok(v)
}

fn str_enc(b: &mut Vec<u8>, s: &[u8]) {
    put_len(b, s.len() as u64);
    b.extend_from_slice(s);
}

#[test]
fn version_1_file_with_second_expiry_and_no_trailer() {
    let mut b = b"REDIS0001".to_vec();
    b.extend_from_slice(&[OP_SELECTDB, 0]);
    b.push(OP_EXPIRETIME);
    b.extend_from_slice(&1_000_000i32.to_le_bytes());
    b.push(TYPE_STRING);
    str_enc(&mut b, b"k");
    str_enc(&mut b, b"v");
    b.push(TYPE_LIST);
    str_enc(&mut b, b"l");
    put_len(&mut b, 2);
    str_enc(&mut b, b"a");
    b.extend_from_slice(&[0xC0, 0xFF]); // int8 -1
    b.push(TYPE_ZSET);
    str_enc(&mut b, b"z");
    put_len(&mut b, 2);
    str_enc(&mut b, b"m");
    b.extend_from_slice(&[3, b'1', b'.', b'5']);
    str_enc(&mut b, b"n");
    b.push(254); // +inf
    b.push(OP_EOF);
    let it = items(&b).unwrap();
    match &it[1] {
        Item::Entry(e) => assert_eq!(e.expire_ms, Some(1_000_000_000)),
        other => panic!("{other:?}"),
    }
    match &it[2] {
        Item::Entry(e) => match &e.value {
            Decoded::Value(Value::List(l)) => assert_eq!(l.items, ["a", "-1"]),
            v => panic!("{v:?}"),
        },
        other => panic!("{other:?}"),
    }
    match &it[3] {
        Item::Entry(e) => match &e.value {
            Decoded::Value(Value::ZSet(z)) => {
                assert_eq!(z.score(b"m"), Some(1.5));
                assert_eq!(z.score(b"n"), Some(f64::INFINITY));
            }
            v => panic!("{v:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert!(matches!(it[4], Item::End(ChecksumStatus::Absent)));
}

#[test]
fn rare_opcodes() {
    let mut b = b"REDIS0010".to_vec();
    // Pre-GA FUNCTION: name, engine, has-description, description, code.
    b.push(OP_FUNCTION_PRE_GA);
    str_enc(&mut b, b"lib");
    str_enc(&mut b, b"LUA");
    put_len(&mut b, 1);
    str_enc(&mut b, b"desc");
    str_enc(&mut b, b"return 1");
    // MODULE_AUX for a module id, when=2, one string, EOF.
    let id: u64 = 0x1234_5678_9abc_d000 | 3;
    b.push(OP_MODULE_AUX);
    put_len(&mut b, id);
    put_len(&mut b, 2);
    put_len(&mut b, 2);
    put_len(&mut b, 5);
    str_enc(&mut b, b"payload");
    put_len(&mut b, 0);
    b.push(OP_SLOT_INFO);
    put_len(&mut b, 7);
    put_len(&mut b, 1);
    put_len(&mut b, 0);
    b.push(OP_IDLE);
    put_len(&mut b, 30);
    b.push(TYPE_STRING);
    str_enc(&mut b, b"k");
    str_enc(&mut b, b"v");
    b.push(OP_EOF);
    b.extend_from_slice(&[0; 8]);
    let it = items(&b).unwrap();
    assert_eq!(
        it[0],
        Item::Function {
            code: b"#!LUA name=lib\nreturn 1".to_vec(),
            pre_ga: true
        }
    );
    match &it[1] {
        Item::ModuleAux { when, name, .. } => {
            assert_eq!(*when, 2);
            assert_eq!(name, &module_type_name(id).0);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(it[2], Item::SlotInfo { slot: 7, .. }));
    match &it[3] {
        Item::Entry(e) => assert_eq!(e.idle, Some(30)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(it[4], Item::End(ChecksumStatus::NotComputed)));
    // The keyspace loader refuses module AUX data, naming the module.
    let mut ks = crate::Keyspace::new(16);
    let e = load_keyspace(&b[..], None, &mut ks, &LoadOptions::new(0)).unwrap_err();
    assert!(
        e.to_string().contains("AUX module data I can't load"),
        "{e}"
    );
}

#[test]
fn module_type_names() {
    // "ReJSON-RL" encoding version 3, built the way Redis packs names.
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut id: u64 = 0;
    for c in b"ReJSON-RL" {
        id = (id << 6) | CHARSET.iter().position(|x| x == c).unwrap() as u64;
    }
    id = (id << 10) | 3;
    assert_eq!(module_type_name(id), ("ReJSON-RL".to_string(), 3));
}

#[test]
fn hostile_lengths_fail_fast_without_huge_allocations() {
    // A string claiming 2^62 bytes, with and without a known total size.
    let mut b = b"REDIS0010".to_vec();
    b.push(TYPE_STRING);
    b.push(0x81);
    b.extend_from_slice(&(1u64 << 62).to_be_bytes());
    for total in [None, Some(b.len() as u64)] {
        let mut dec = Decoder::new(&b[..], total, DecodeOptions::default()).unwrap();
        assert!(dec.next_item().is_err());
    }
    // LZF declaring a huge uncompressed size for a tiny input.
    let mut b = b"REDIS0010".to_vec();
    b.push(TYPE_STRING);
    str_enc(&mut b, b"k");
    b.push(0xC3);
    put_len(&mut b, 2);
    b.push(0x80);
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    b.extend_from_slice(&[0, b'a']);
    let e = items(&b).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Lzf), "{e}");
    assert_eq!(e.key.as_deref(), Some(&b"k"[..]));
    // A set claiming 2^32 members.
    let mut b = b"REDIS0010".to_vec();
    b.push(TYPE_SET);
    str_enc(&mut b, b"s");
    b.push(0x80);
    b.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(items(&b).is_err());
}

#[test]
fn blobs_validate() {
    // Ziplist ["a", 5]: zlbytes 15, tail 13, len 2.
    let zl = [15, 0, 0, 0, 13, 0, 0, 0, 2, 0, 0, 1, b'a', 3, 0xF6, 0xFF];
    let mut got = Vec::new();
    let r = blobs::ziplist_for_each(&zl[..], |e| {
        got.push(e.to_bytes());
        Ok(())
    });
    assert!(r.is_err(), "zlbytes 15 != 16 must fail");
    let mut zl = zl;
    zl[0] = 16;
    blobs::ziplist_for_each(&zl[..], |e| {
        got.push(e.to_bytes());
        Ok(())
    })
    .unwrap();
    assert_eq!(got, ["a", "5"]);
    // Intset {1, 2, 300} (spec example), then out of order.
    let is = [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 0x2C, 1];
    let mut v = Vec::new();
    blobs::intset_for_each(&is, |i| {
        v.push(i);
        Ok(())
    })
    .unwrap();
    assert_eq!(v, [1, 2, 300]);
    let bad = [2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 1, 0];
    assert!(blobs::intset_for_each(&bad, |_| Ok(())).is_err());
    // Zipmap {a: bc} with a free byte.
    let zm = [1, 1, b'a', 2, 1, b'b', b'c', 0, 0xFF];
    let mut pairs = Vec::new();
    blobs::zipmap_for_each(&zm, |f, v| {
        pairs.push((f.to_vec(), v.to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(pairs, [(b"a".to_vec(), b"bc".to_vec())]);
    assert!(blobs::zipmap_for_each(&[0, 0xFF], |_, _| Ok(())).is_err());
}

#[test]
fn dump_payload_matches_redis_example() {
    let p = dump_payload(&Value::str_from(b"12345"), 10).unwrap();
    assert_eq!(
        p,
        [0x00, 0xC1, 0x39, 0x30, 0x0A, 0x00, 0x9D, 0x94, 0xEA, 0x27, 0x93, 0xFC, 0x08, 0xB9]
    );
    assert_eq!(restore_payload(&p).unwrap(), Value::str_from(b"12345"));
    let mut newer = p.clone();
    newer[4] = 13; // version 13 > what we read
    assert!(matches!(
        restore_payload(&newer),
        Err(PayloadError::VersionOrChecksum)
    ));
    assert!(matches!(
        restore_payload(&p[..9]),
        Err(PayloadError::VersionOrChecksum)
    ));
}

#[test]
fn writer_refuses_unknown_versions_and_writes_entries_one_by_one() {
    assert!(RdbWriter::new(
        Vec::new(),
        SaveOptions {
            version: 9,
            ..SaveOptions::default()
        }
    )
    .is_err());
    let mut w = RdbWriter::new(Vec::new(), SaveOptions::default()).unwrap();
    w.select_db(2, 2, 1).unwrap();
    w.write_entry(b"a", &Value::str_from(b"1"), 0).unwrap();
    w.write_entry(b"b", &Value::str_from(b"x"), 4_000_000_000_000)
        .unwrap();
    let bytes = w.finish().unwrap();
    let mut ks = crate::Keyspace::new(16);
    let st = load_keyspace(&bytes[..], None, &mut ks, &LoadOptions::new(0)).unwrap();
    assert_eq!(st.keys_loaded, 2);
    assert_eq!(st.redis_ver.as_deref(), Some("7.0.15"));
    assert_eq!(ks.dbs[2].peek(b"b").unwrap().expire_at, 4_000_000_000_000);
    assert!(matches!(st.checksum, Some(ChecksumStatus::Verified(_))));
}

#[test]
fn duplicate_keys_are_an_error_on_load() {
    let mut w = RdbWriter::new(Vec::new(), SaveOptions::default()).unwrap();
    w.select_db(0, 2, 0).unwrap();
    w.write_entry(b"a", &Value::str_from(b"1"), 0).unwrap();
    w.write_entry(b"a", &Value::str_from(b"2"), 0).unwrap();
    let bytes = w.finish().unwrap();
    let mut ks = crate::Keyspace::new(16);
    let e = load_keyspace(&bytes[..], None, &mut ks, &LoadOptions::new(0)).unwrap_err();
    assert!(e.to_string().contains("duplicated key"), "{e}");
}
