//! Any input must decode to items or an error: no panic, no hang, no
//! allocation larger than the input justifies. Run: `cargo fuzz run rdb_decode`
//! (seed the corpus with fixtures/redis-7.0.15/*.rdb).
#![no_main]

use libfuzzer_sys::fuzz_target;
use redoubt_persist::rdb::{self, DecodeOptions, Decoder, LoadOptions};
use redoubt_persist::Keyspace;

fuzz_target!(|data: &[u8]| {
    // Both with and without a known total length (the streaming path).
    for total in [Some(data.len() as u64), None] {
        let opts = DecodeOptions {
            verify_checksum: false,
            ..DecodeOptions::default()
        };
        if let Ok(mut dec) = Decoder::new(data, total, opts) {
            while let Ok(Some(_)) = dec.next_item() {}
        }
    }
    let mut ks = Keyspace::new(16);
    let mut opts = LoadOptions::new(0);
    opts.decode.verify_checksum = false;
    let _ = rdb::load_keyspace(data, None, &mut ks, &opts);
});
