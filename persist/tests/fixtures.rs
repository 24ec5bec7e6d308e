//! Dumps written by real Redis 7.0.15 (fixtures/make-fixtures.sh) decode to
//! exactly what that Redis answered for every key.

mod common;

use redoubt_persist::rdb::{self, LoadOptions};
use redoubt_persist::Keyspace;

const FILES: &[&str] = &[
    "all-types",
    "all-types-nocompress-nochecksum",
    "small",
    "lfu",
    "lru",
];

#[test]
fn fixtures_match_redis_answers() {
    let dir = common::fixtures_dir();
    for name in FILES {
        let rdb_path = dir.join(format!("{name}.rdb"));
        let want: Vec<String> = std::fs::read_to_string(dir.join(format!("{name}.expect")))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let mut ks = Keyspace::new(16);
        let st = rdb::load_file(&rdb_path, &mut ks, &LoadOptions::new(0)).unwrap();
        assert_eq!(st.redis_ver.as_deref(), Some("7.0.15"));
        assert_eq!(st.rdb_version, 10);
        let got = common::describe_keyspace(&ks);
        common::assert_same_listing(name, &got, &want);
    }
}

#[test]
fn checksum_disabled_fixture_reports_not_computed() {
    let path = common::fixtures_dir().join("all-types-nocompress-nochecksum.rdb");
    let mut ks = Keyspace::new(16);
    let st = rdb::load_file(&path, &mut ks, &LoadOptions::new(0)).unwrap();
    assert_eq!(st.checksum, Some(rdb::ChecksumStatus::NotComputed));
    let path = common::fixtures_dir().join("all-types.rdb");
    let st = rdb::load_file(&path, &mut Keyspace::new(16), &LoadOptions::new(0)).unwrap();
    assert!(matches!(
        st.checksum,
        Some(rdb::ChecksumStatus::Verified(_))
    ));
}
