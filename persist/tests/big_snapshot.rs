//! Point in time for big collections changed while a snapshot runs, and
//! the cost of their pre-images.
//!
//! One test per binary: it reads the process-wide kept-alive counter.

use bytes::Bytes;
use redoubt_persist::rdb::{load_keyspace, LoadOptions, SaveOptions};
use redoubt_persist::snapshot::{Snapshot, SnapshotFormat, SnapshotSpec};
use redoubt_persist::storage::{SimStorage, Storage};
use redoubt_persist::value::{HashValue, ListValue, SetValue, ZSet};
use redoubt_persist::{cow, Keyspace, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const N: usize = 50_000;

fn state_of(ks: &Keyspace) -> Vec<(usize, Vec<u8>, Value)> {
    let mut v: Vec<_> = ks
        .dbs
        .iter()
        .enumerate()
        .flat_map(|(i, db)| db.iter().map(move |e| (i, e.key.to_vec(), e.value.clone())))
        .collect();
    v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    v
}

fn b(s: String) -> Bytes {
    Bytes::from(s)
}

fn populate(ks: &mut Keyspace) {
    let list: ListValue = ListValue {
        items: (0..N).map(|i| b(format!("item:{i}"))).collect(),
    };
    let mut z = ZSet::new();
    z.skiplist = true;
    let mut set = SetValue {
        hashtable: true,
        ..Default::default()
    };
    let mut hash = HashValue::default();
    hash.promote();
    for i in 0..N {
        z.insert(b(format!("m:{i}")), i as f64);
        set.members.insert(b(format!("s:{i}")));
        hash.set_field(format!("f:{i}").as_bytes(), format!("v:{i}").as_bytes());
    }
    // Many small keys before and after the big ones so that the walk takes
    // many steps and the writes land on keys it has not reached.
    for i in 0..20_000 {
        ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v"), 0);
    }
    ks.dbs[0].insert(b"biglist", Value::List(Box::new(list)), 0);
    ks.dbs[0].insert(b"bigzset", Value::ZSet(Box::new(z)), 0);
    ks.dbs[0].insert(b"bigset", Value::Set(Box::new(set)), 0);
    ks.dbs[0].insert(b"bighash", Value::Hash(Box::new(hash)), 0);
}

/// One round of writes to every big key, as the list/zset/set/hash
/// commands make them.
fn write_round(ks: &mut Keyspace, i: usize) {
    if let Some(e) = ks.dbs[0].get(b"biglist", 0) {
        if let Value::List(l) = &mut e.value {
            // RPOPLPUSH biglist biglist, LSET in the middle, LINSERT.
            if let Some(x) = l.items.pop_back() {
                l.items.push_front(x);
            }
            if let Some(x) = l.items.get_mut((i * 7919) % N) {
                *x = b(format!("set:{i}"));
            }
            l.items.insert((i * 104_729) % N, b(format!("ins:{i}")));
            l.items.remove((i * 15_485_863) % N);
        }
    }
    if let Some(e) = ks.dbs[0].get(b"bigzset", 0) {
        if let Value::ZSet(z) = &mut e.value {
            z.insert(b(format!("m:{}", (i * 7919) % (2 * N))), -(i as f64));
            z.remove(format!("m:{}", (i * 104_729) % N).as_bytes());
        }
    }
    if let Some(e) = ks.dbs[0].get(b"bigset", 0) {
        if let Value::Set(s) = &mut e.value {
            s.members.insert(b(format!("s:new:{i}")));
            s.members.remove(format!("s:{}", (i * 7919) % N).as_bytes());
        }
    }
    if let Some(e) = ks.dbs[0].get(b"bighash", 0) {
        if let Value::Hash(h) = &mut e.value {
            h.set_field(format!("f:{}", (i * 7919) % N).as_bytes(), b"changed");
            h.map.remove(format!("f:{}", (i * 104_729) % N).as_bytes());
        }
    }
}

#[test]
fn big_collections_changed_during_a_snapshot_keep_its_point_in_time() {
    let disk = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(disk.clone());
    let mut ks = Keyspace::new(16);
    populate(&mut ks);
    let expected = state_of(&ks);
    let spec = SnapshotSpec {
        storage: storage.clone(),
        target: PathBuf::from("dump.rdb"),
        format: SnapshotFormat::Rdb(SaveOptions::default()),
        lsn: 11,
        epoch: 1,
        incremental_fsync: true,
        event_loop: None,
        cpus: None,
    };
    let mut snap = Snapshot::start(&mut ks, spec).unwrap();

    // The first write to the unsaved big zset hands its pre-image to the
    // snapshot; what that keeps alive is the chunks the write replaced (two
    // index chunks and two dict shards at most), not the whole value.
    let before = cow::kept_alive_bytes();
    if let Some(e) = ks.dbs[0].get(b"bigzset", 0) {
        if let Value::ZSet(z) = &mut e.value {
            z.insert(b("m:123".into()), -5.0);
        }
    }
    let kept = cow::kept_alive_bytes() - before;
    assert!(kept > 0, "the replaced chunks are counted");
    assert!(
        kept < 300_000,
        "kept {kept} bytes for one write to a 50k zset"
    );

    // The same for the big hash: its first write replaces one shard.
    let before = cow::kept_alive_bytes();
    if let Some(e) = ks.dbs[0].get(b"bighash", 0) {
        if let Value::Hash(h) = &mut e.value {
            assert!(h.is_hashtable());
            h.set_field(b"f:123", b"first");
        }
    }
    let kept = cow::kept_alive_bytes() - before;
    assert!(kept > 0, "the replaced shard is counted");
    assert!(
        kept < 300_000,
        "kept {kept} bytes for one write to a 50k hash"
    );

    let mut i = 0;
    loop {
        for _ in 0..20 {
            write_round(&mut ks, i);
            i += 1;
        }
        if snap.step(&mut ks, 4).unwrap() {
            break;
        }
    }
    let report = snap.wait().unwrap();
    assert_eq!(report.lsn, 11);
    assert!(report.preimages_copied >= 4);

    let bytes = storage.read_all(Path::new("dump.rdb")).unwrap();
    let mut loaded = Keyspace::new(16);
    load_keyspace(
        &bytes[..],
        Some(bytes.len() as u64),
        &mut loaded,
        &LoadOptions::new(0),
    )
    .unwrap();
    assert_eq!(state_of(&loaded), expected);
    // Everything the pre-images (and the expected state, which shares
    // chunks too) held has been given back.
    drop(expected);
    assert_eq!(cow::kept_alive_bytes(), 0);
}
