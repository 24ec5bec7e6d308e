//! RESTORE payloads: a value or an error, never a panic. Valid values must
//! re-encode and decode to themselves. Run: `cargo fuzz run restore_payload`
//! (seed with shared/corpus/redis/corrupt-dump-payloads).
#![no_main]

use libfuzzer_sys::fuzz_target;
use redoubt_persist::rdb;

fuzz_target!(|data: &[u8]| {
    let _ = rdb::restore_payload(data);
    if let Ok(v) = rdb::restore_payload_unchecked(data) {
        let p = rdb::dump_payload(&v, 12).expect("v12 holds every value");
        let back = rdb::restore_payload(&p).expect("our own payload decodes");
        assert_eq!(back, v);
    }
});
