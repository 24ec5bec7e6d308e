//! Loads an RDB file into a keyspace and reports timing, for comparing the
//! loader against `redis-server` on big dumps:
//! `cargo run --release -p redoubt-persist --example rdb_load -- dump.rdb`

use redoubt_persist::rdb::{self, LoadOptions};
use redoubt_persist::Keyspace;
use std::time::Instant;

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: rdb_load FILE.rdb");
        std::process::exit(2);
    };
    let t = Instant::now();
    if std::env::var_os("DECODE_ONLY").is_some() {
        // Decoder alone, without building the keyspace.
        let f = std::fs::File::open(&path).unwrap();
        let len = f.metadata().ok().map(|m| m.len());
        let mut dec = rdb::Decoder::new(f, len, rdb::DecodeOptions::default()).unwrap();
        let mut n = 0u64;
        while let Some(_item) = dec.next_item().unwrap() {
            n += 1;
        }
        println!("decoded {n} items in {:.3}s", t.elapsed().as_secs_f64());
        return;
    }
    let mut ks = Keyspace::new(16);
    match rdb::load_file(path.as_ref(), &mut ks, &LoadOptions::new(0)) {
        Ok(st) => println!(
            "loaded {} keys ({} bytes, rdb v{}) in {:.3}s",
            st.keys_loaded,
            st.bytes_read,
            st.rdb_version,
            t.elapsed().as_secs_f64()
        ),
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
    if let Some(out) = std::env::var_os("SAVE_TO") {
        // Also time writing it back (RDB v10, compression and checksum on).
        let t = Instant::now();
        let f = std::fs::File::create(&out).unwrap();
        rdb::write_keyspace(&ks, f, rdb::SaveOptions::default()).unwrap();
        println!("saved in {:.3}s", t.elapsed().as_secs_f64());
    }
    // Skip freeing millions of values one by one; the OS reclaims it all.
    std::process::exit(0);
}
