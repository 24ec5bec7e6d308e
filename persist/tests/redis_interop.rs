//! Differential tests against a real redis-server (skipped when absent):
//! Redis loads the files we write, and DUMP payloads travel both ways.

mod common;

use common::redis::{self, Conn, Reply};
use redoubt_persist::rdb::{self, LoadOptions, SaveOptions};
use redoubt_persist::value::{HashValue, SetValue, Value, ZSet};
use redoubt_persist::Keyspace;

/// The fixture data set plus a few values built directly in our model.
fn dataset() -> Keyspace {
    let mut ks = Keyspace::new(16);
    let path = common::fixtures_dir().join("all-types.rdb");
    rdb::load_file(&path, &mut ks, &LoadOptions::new(0)).unwrap();
    let db = ks.db(5);
    let mut h = HashValue::default();
    for i in 0..600 {
        h.map.insert(format!("f{i}").into(), format!("{i}").into());
    }
    h.promote();
    db.insert(b"ours:bighash", Value::Hash(Box::new(h)), 0);
    let mut z = ZSet::new();
    for (i, s) in [0.1, -2.75, 1e-7, 3.0, f64::INFINITY, 1e300]
        .iter()
        .enumerate()
    {
        z.insert(format!("m{i}").into(), *s);
    }
    db.insert(b"ours:zset", Value::ZSet(Box::new(z)), 0);
    let mut s = SetValue::default();
    for i in [-(1i64 << 40), -1, 0, 7, 1 << 40] {
        s.members.insert(i.to_string().into());
    }
    db.insert(b"ours:intset64", Value::Set(Box::new(s)), 0);
    let mut l = redoubt_persist::value::ListValue::default();
    for i in 0..5000 {
        l.items.push_back(if i % 100 == 0 {
            vec![b'z'; 9000].into()
        } else {
            i.to_string().into()
        });
    }
    db.insert(b"ours:list", Value::List(Box::new(l)), 0);
    db.insert(
        b"ours:binary",
        Value::str_from(&[0, 1, 2, 255, 254]),
        4102444800000,
    );
    ks
}

#[test]
fn redis_loads_what_we_write() {
    if !redis::redis_available() {
        return;
    }
    let ks = dataset();
    let dir = redis::temp_dir("interop");
    let file = std::fs::File::create(dir.join("our.rdb")).unwrap();
    let opts = SaveOptions {
        extra_aux: vec![(b"redoubt-lsn".to_vec(), b"12345".to_vec())],
        ..SaveOptions::default()
    };
    rdb::write_keyspace(&ks, file, opts).unwrap();
    let ours = std::fs::metadata(dir.join("our.rdb")).unwrap().len();
    let theirs = std::fs::metadata(common::fixtures_dir().join("all-types.rdb"))
        .unwrap()
        .len();
    eprintln!("our file {ours} bytes (includes extra keys); Redis's fixture {theirs} bytes");

    // Our own loader reads it back identically, LSN included.
    let mut back = Keyspace::new(16);
    let st = rdb::load_file(&dir.join("our.rdb"), &mut back, &LoadOptions::new(0)).unwrap();
    assert_eq!(st.lsn, Some(12345));
    let want = common::describe_keyspace(&ks);
    common::assert_same_listing("self round trip", &common::describe_keyspace(&back), &want);

    let server = redis::start(&dir, "our.rdb");
    let mut c = Conn::connect(server.port).unwrap();
    let live = redis::describe_live(&mut c);
    common::assert_same_listing("redis view of our file", &live, &want);
}

/// Snapshots compress string values with the quick LZF, which stores a
/// value raw when its head holds no repeat: Redis loads such a file too,
/// and the values that do compress are written as the exact compressor
/// writes them.
#[test]
fn redis_loads_a_snapshot_written_with_quick_lzf() {
    let mut ks = dataset();
    let mut x = 1234u32;
    let mut letters = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                b'0' + ((x >> 16) & 63) as u8
            })
            .collect()
    };
    let db = ks.db(3);
    for i in 0..200 {
        let mut v = letters(21 + i * 7);
        if i % 3 == 1 {
            // A repeat only past the quick compressor's probe.
            v.extend(std::iter::repeat_n(b'r', 300));
        }
        if i % 3 == 2 {
            v.extend_from_slice(&v.clone());
        }
        db.insert(format!("quick:{i}").as_bytes(), Value::str_from(&v), 0);
    }
    let quick = SaveOptions {
        quick_lzf: true,
        ..SaveOptions::default()
    };
    let exact = rdb::write_keyspace(&ks, Vec::new(), SaveOptions::default()).unwrap();
    let ours = rdb::write_keyspace(&ks, Vec::new(), quick).unwrap();
    // Some values are stored raw that the exact compressor shrinks.
    assert!(
        ours.len() > exact.len(),
        "{} vs {}",
        ours.len(),
        exact.len()
    );
    let want = common::describe_keyspace(&ks);
    let mut back = Keyspace::new(16);
    rdb::load_keyspace(
        &ours[..],
        Some(ours.len() as u64),
        &mut back,
        &LoadOptions::new(0),
    )
    .unwrap();
    common::assert_same_listing("self round trip", &common::describe_keyspace(&back), &want);
    if !redis::redis_available() {
        return;
    }
    let dir = redis::temp_dir("interop-quick");
    std::fs::write(dir.join("quick.rdb"), &ours).unwrap();
    let server = redis::start(&dir, "quick.rdb");
    let mut c = Conn::connect(server.port).unwrap();
    let live = redis::describe_live(&mut c);
    common::assert_same_listing("redis view of our file", &live, &want);
}

#[test]
fn our_file_is_as_small_as_redis() {
    // Re-encoding Redis's own fixture must not be meaningfully bigger.
    let mut ks = Keyspace::new(16);
    let path = common::fixtures_dir().join("all-types.rdb");
    rdb::load_file(&path, &mut ks, &LoadOptions::new(0)).unwrap();
    let out = rdb::write_keyspace(&ks, Vec::new(), SaveOptions::default()).unwrap();
    let theirs = std::fs::metadata(&path).unwrap().len() as f64;
    eprintln!("ours {} vs redis {}", out.len(), theirs);
    assert!(
        (out.len() as f64) < theirs * 1.05,
        "ours {} vs {theirs}",
        out.len()
    );
}

#[test]
fn dump_payloads_travel_both_ways() {
    if !redis::redis_available() {
        return;
    }
    let ks = dataset();
    let dir = redis::temp_dir("dump");
    let server = redis::start(&dir, "none.rdb");
    let mut c = Conn::connect(server.port).unwrap();
    let mut n = 0;
    for e in ks.dbs[0].iter().chain(ks.dbs[5].iter()) {
        // Ours -> RESTORE in real Redis -> DUMP back -> ours again.
        let payload = rdb::dump_payload(&e.value, 10).unwrap();
        let r = c.cmd(&[&b"RESTORE"[..], &e.key, b"0", &payload, b"REPLACE"]);
        assert_eq!(r, Reply::Simple(b"OK".to_vec()), "{:?}", &e.key);
        let dumped = c.cmd(&[&b"DUMP"[..], &e.key]).bulk();
        let v = rdb::restore_payload(&dumped).unwrap();
        assert_eq!(v, e.value, "{:?}", String::from_utf8_lossy(&e.key));
        n += 1;
    }
    assert!(n > 40);
    // A corrupt payload gets Redis's and our error alike.
    let mut bad = rdb::dump_payload(&Value::str_from(b"x"), 10).unwrap();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let r = c.cmd(&[&b"RESTORE"[..], b"bad", b"0", &bad]);
    let ours = rdb::restore_payload(&bad).unwrap_err().to_string();
    assert_eq!(r, Reply::Error(format!("ERR {ours}")));
}
