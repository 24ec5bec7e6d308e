//! The shared corpus of real dump files: every valid file decodes, a
//! representative set has its documented contents checked, and every
//! corrupt file or DUMP payload yields an error, never a panic.

mod common;

use redoubt_persist::rdb::{
    self, ChecksumStatus, DecodeOptions, Decoded, Decoder, Item, LoadOptions, PayloadError,
};
use redoubt_persist::value::{StreamId, Value};
use redoubt_persist::Keyspace;
use std::path::Path;

/// Valid files we refuse on purpose (Redis 7.x refuses them too, or they
/// carry a format we do not decode), with the error text we expect.
const KNOWN_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "librdb/redis_ent_opcode_ram_lru.rdb",
        "Unknown RDB encoding type 107",
    ),
    ("librdb/stream_v13.rdb", "Unknown RDB encoding type 26"),
    ("librdb/stream_v13_idmp.rdb", "Unknown RDB encoding type 26"),
    ("redis-replicator/module.rdb", "pre-GA module format"),
];

/// Tool-written files that repeat a key name in one db: they decode, but
/// loading refuses them as Redis does ("Duplicated key found in RDB file").
const TOOL_WRITTEN_WITH_DUPLICATES: &[&str] =
    &["redis-rdb-cli/rct/all.rdb", "redis-rdb-cli/rdt/dump.rdb"];

/// Decodes a whole buffer; Ok(number of keys).
fn decode_all(bytes: &[u8]) -> Result<usize, rdb::RdbError> {
    let mut dec = Decoder::new(bytes, Some(bytes.len() as u64), DecodeOptions::default())?;
    let mut keys = 0;
    while let Some(item) = dec.next_item()? {
        if let Item::Entry(_) = item {
            keys += 1;
        }
    }
    Ok(keys)
}

fn load(path: &Path) -> (Keyspace, rdb::LoadStats) {
    let mut ks = Keyspace::new(16);
    let mut opts = LoadOptions::new(0);
    opts.keep_expired = true;
    let st =
        rdb::load_file(path, &mut ks, &opts).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (ks, st)
}

fn get<'a>(ks: &'a Keyspace, db: usize, key: &str) -> &'a Value {
    &ks.dbs[db]
        .peek(key.as_bytes())
        .unwrap_or_else(|| panic!("missing key {key}"))
        .value
}

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) => l
            .items
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

fn set_sorted(v: &Value) -> Vec<String> {
    match v {
        Value::Set(s) => {
            let mut m: Vec<String> = s
                .members
                .iter()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .collect();
            m.sort();
            m
        }
        other => panic!("not a set: {other:?}"),
    }
}

#[test]
fn every_valid_corpus_file_decodes() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let mut ok = 0;
    for row in common::index_rows(&dir) {
        if !(row.is_rdb() || row.is_preamble_aof()) || row.is_corrupt() {
            continue;
        }
        let bytes = std::fs::read(dir.join(&row.path)).unwrap();
        let r = decode_all(&bytes);
        if let Some((_, msg)) = KNOWN_UNSUPPORTED.iter().find(|(p, _)| *p == row.path) {
            let e = r.expect_err(&row.path).to_string();
            assert!(e.contains(msg), "{}: {e}", row.path);
            continue;
        }
        if let Err(e) = r {
            panic!("{} ({}) failed: {e}", row.path, row.kind);
        }
        // The keyspace loader accepts it too, unless it holds module data.
        let mut ks = Keyspace::new(16);
        let mut opts = LoadOptions::new(0);
        opts.keep_expired = true;
        if let Err(e) = rdb::load_keyspace(&bytes[..], None, &mut ks, &opts) {
            let dup_ok = TOOL_WRITTEN_WITH_DUPLICATES.contains(&row.path.as_str())
                && e.to_string().contains("duplicated key");
            let module = matches!(
                e.kind,
                rdb::ErrorKind::ModuleValue(_) | rdb::ErrorKind::ModuleAux(_)
            );
            assert!(dup_ok || module, "{}: {e}", row.path);
        }
        ok += 1;
    }
    assert!(ok > 150, "only {ok} files decoded");
}

#[test]
fn every_corrupt_corpus_file_fails_cleanly() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    for row in common::index_rows(&dir) {
        if !row.is_corrupt() {
            continue;
        }
        let bytes = std::fs::read(dir.join(&row.path)).unwrap();
        if row.path.contains("corrupt_empty_keys") {
            // Framing is fine; every key is an empty collection that the
            // loader must skip.
            let mut ks = Keyspace::new(16);
            let st = rdb::load_keyspace(&bytes[..], None, &mut ks, &LoadOptions::new(0)).unwrap();
            assert_eq!(ks.total_keys(), 0, "{}", row.path);
            assert!(st.empty_skipped >= 8, "{}: {st:?}", row.path);
            continue;
        }
        let e = decode_all(&bytes).expect_err(&row.path);
        eprintln!("{}: {e}", row.path);
    }
}

#[test]
fn bad_checksum_is_an_error_unless_ignored() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let bytes = std::fs::read(dir.join("librdb/invalid_chksum_v8.rdb")).unwrap();
    let e = decode_all(&bytes).unwrap_err();
    assert!(e.is_checksum(), "{e}");
    let opts = DecodeOptions {
        verify_checksum: false,
        ..DecodeOptions::default()
    };
    let mut dec = Decoder::new(&bytes[..], None, opts).unwrap();
    let mut last = None;
    while let Some(i) = dec.next_item().unwrap() {
        last = Some(i);
    }
    assert!(matches!(
        last,
        Some(Item::End(ChecksumStatus::Ignored { .. }))
    ));
}

#[test]
fn future_version_and_bad_magic_messages() {
    let e = decode_all(b"REDIS0099\xff").unwrap_err();
    assert_eq!(e.kind.to_string(), "Can't handle RDB format version 99");
    let e = decode_all(b"RUBIS0009\xff").unwrap_err();
    assert_eq!(
        e.kind.to_string(),
        "Wrong signature trying to load DB from file"
    );
}

#[test]
fn documented_contents() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };

    // Redis 6.2.7: two dbs, ziplist/intset/hashtable encodings, expiries.
    let (ks, st) = load(&dir.join("dragonfly/redis6_small.rdb"));
    assert_eq!(st.redis_ver.as_deref(), Some("6.2.7"));
    assert_eq!(ks.dbs[0].len() + ks.dbs[1].len(), 20);
    assert_eq!(get(&ks, 0, "intkey"), &Value::str_from(b"1234567"));
    assert_eq!(
        get(&ks, 0, "strkey"),
        &Value::str_from(b"abcdefghjjjjjjjjjj")
    );
    assert!(ks.dbs[0].peek(b"set1").unwrap().expire_at > 0);

    // 201 strings over db0 and db2.
    let (ks, _) = load(&dir.join("dragonfly/small.rdb"));
    assert_eq!((ks.dbs[0].len(), ks.dbs[2].len()), (101, 100));

    // Quicklist2 / listpack zset with integer-encoded elements.
    let (ks, _) = load(&dir.join("hdt3213-rdb/listpack.rdb"));
    assert_eq!(
        list(get(&ks, 0, "l")),
        [
            "1",
            "20000",
            "aaaa",
            "4",
            "16380",
            "-16380",
            "1048576",
            "268435456",
            "8589934592"
        ]
    );
    match get(&ks, 0, "z") {
        Value::ZSet(z) => {
            assert_eq!(z.score(b"11"), Some(-8589934592.0));
            assert_eq!(z.score(b"12"), Some(-2000.0));
            assert_eq!(z.score(b"10"), Some(8589934592.0));
        }
        v => panic!("{v:?}"),
    }

    let (ks, _) = load(&dir.join("hdt3213-rdb/quicklist.rdb"));
    assert_eq!(
        list(get(&ks, 0, "list")),
        [
            "eb5foapxep8846is",
            "ns8ra7iy34tpvt",
            "2dmoobfe4vlmok1f",
            "bmnctno6rrxjs5yl",
            "sq1c36x0ixv50jqm",
            "jfds2extynrj6l"
        ]
    );

    let (ks, _) = load(&dir.join("hdt3213-rdb/set_listpack.rdb"));
    assert_eq!(set_sorted(get(&ks, 0, "s")), ["a", "b", "c", "d"]);

    // Hand-patched zipmap with "unknown" count.
    let (ks, _) = load(&dir.join("hdt3213-rdb/zipmap_big_len.rdb"));
    match ks.dbs[0].iter().next().map(|e| &e.value) {
        Some(Value::Hash(h)) => {
            assert_eq!(h.map.get(&b"MKD1G6"[..]).map(|b| &b[..]), Some(&b"2"[..]));
            assert_eq!(h.map.get(&b"YNNXK"[..]).map(|b| &b[..]), Some(&b"F7TI"[..]));
        }
        v => panic!("{v:?}"),
    }

    // Hash field expiry, types 24 and 25.
    let (ks, _) = load(&dir.join("hdt3213-rdb/hash_with_hfe.rdb"));
    match get(&ks, 0, "hash-hfe") {
        Value::Hash(h) => {
            assert_eq!(h.map.len(), 8);
            let t = h.field_expiry.as_ref().unwrap();
            assert_eq!(t.get(&b"F1"[..]), Some(&2755482424661));
            assert_eq!(t.get(&b"F3"[..]), Some(&2755484433842));
            assert_eq!(t.len(), 3);
        }
        v => panic!("{v:?}"),
    }
    let (ks, _) = load(&dir.join("hdt3213-rdb/hash_as_listpack_with_hfe.rdb"));
    match get(&ks, 0, "listpack-hfe") {
        Value::Hash(h) => {
            assert_eq!(h.map.len(), 3);
            let t = h.field_expiry.as_ref().unwrap();
            assert_eq!(t.get(&b"F1"[..]), Some(&2755482478325));
            assert_eq!(t.get(&b"F2"[..]), None);
        }
        v => panic!("{v:?}"),
    }

    // Streams v2 and v3 written by 7.0.15 / 7.4.0.
    let (ks, _) = load(&dir.join("dragonfly/RDB_TYPE_STREAM_LISTPACKS_2.rdb"));
    match get(&ks, 0, "mystream") {
        Value::Stream(s) => {
            assert_eq!(s.len(), 2);
            assert_eq!(s.last_id, StreamId::new(1732613360686, 0));
            assert_eq!(s.first_id, StreamId::new(1732613352350, 0));
            assert_eq!(s.groups.len(), 1);
        }
        v => panic!("{v:?}"),
    }
    let (ks, _) = load(&dir.join("dragonfly/RDB_TYPE_STREAM_LISTPACKS_3.rdb"));
    match get(&ks, 0, "mystream") {
        Value::Stream(s) => {
            assert_eq!(s.len(), 2);
            assert_eq!(s.last_id, StreamId::new(1732614679549, 0));
            let g = s.groups.values().next().unwrap();
            assert_eq!(g.pel.len(), 1);
            assert_eq!(g.consumers.len(), 1);
        }
        v => panic!("{v:?}"),
    }
    // v1 stream: group entries_read is estimated as Redis 7 does.
    let (ks, _) = load(&dir.join("dragonfly/redis6_stream.rdb"));
    match get(&ks, 0, "key:0") {
        Value::Stream(s) => {
            let g1 = &s.groups[&b"g1"[..]];
            assert_eq!(g1.last_id, StreamId::new(1655444851524, 3));
            assert_eq!(g1.entries_read, 128);
        }
        v => panic!("{v:?}"),
    }

    // Functions: FUNCTION2 and the pre-GA form.
    let (_, st) = load(&dir.join("hdt3213-rdb/function.rdb"));
    assert_eq!(st.functions.len(), 1);
    assert!(st.functions[0].starts_with(b"#!lua name=mylib\n"));
}

#[test]
fn module_values_decode_opaque_but_do_not_load() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let bytes = std::fs::read(dir.join("dragonfly/redis_json.rdb")).unwrap();
    let mut dec = Decoder::new(&bytes[..], None, DecodeOptions::default()).unwrap();
    let mut modules = 0;
    while let Some(i) = dec.next_item().unwrap() {
        if let Item::Entry(e) = i {
            if let Decoded::Module(m) = e.value {
                assert_eq!(m.name, "ReJSON-RL");
                modules += 1;
            }
        }
    }
    assert_eq!(modules, 3);
    let mut ks = Keyspace::new(16);
    let e = rdb::load_keyspace(&bytes[..], None, &mut ks, &LoadOptions::new(0)).unwrap_err();
    assert!(
        e.to_string().contains(
            "The RDB file contains module data I can't load: no matching module type 'ReJSON-RL'"
        ),
        "{e}"
    );
}

#[test]
fn expired_keys_are_skipped_on_load() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let path = dir.join("dragonfly/ignore_expiry.rdb");
    let mut ks = Keyspace::new(16);
    let st = rdb::load_file(&path, &mut ks, &LoadOptions::new(1_900_000_000_000)).unwrap();
    assert_eq!((st.keys_loaded, st.expired_skipped), (0, 2));
    let mut ks = Keyspace::new(16);
    let st = rdb::load_file(&path, &mut ks, &LoadOptions::new(1_600_000_000_000)).unwrap();
    assert_eq!((st.keys_loaded, st.expired_skipped), (2, 0));
}

/// Payloads from tests where Redis accepts the value (sanitize only has to
/// keep the server alive): a valid decode is fine for these.
const PAYLOADS_MAY_SUCCEED: &[&str] = &["032-fuzzer-findings-hash-crash.dump"];

#[test]
fn every_corrupt_dump_payload_is_refused() {
    let Some(dir) = common::corpus_dir() else {
        return;
    };
    let index = std::fs::read_to_string(dir.join("INDEX.md")).unwrap();
    let pdir = dir.join("redis/corrupt-dump-payloads");
    let mut n = 0;
    for entry in std::fs::read_dir(&pdir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let crc_ok = index
            .lines()
            .find(|l| l.contains(&name))
            .is_some_and(|l| l.contains("| CRC ok |"));
        let checked = rdb::restore_payload(&bytes);
        if !crc_ok {
            assert!(
                matches!(checked, Err(PayloadError::VersionOrChecksum)),
                "{name}"
            );
        }
        // Past the checksum (as DEBUG SET-SKIP-CHECKSUM-VALIDATION does),
        // the value decoder itself must refuse the data.
        let r = rdb::restore_payload_unchecked(&bytes);
        if PAYLOADS_MAY_SUCCEED.contains(&name.as_str()) {
            continue;
        }
        match r {
            Err(PayloadError::BadData(_)) => {}
            other => panic!("{name}: {other:?}"),
        }
        if crc_ok {
            assert!(matches!(checked, Err(PayloadError::BadData(_))), "{name}");
        }
        n += 1;
    }
    assert!(n >= 70, "{n}");
}
