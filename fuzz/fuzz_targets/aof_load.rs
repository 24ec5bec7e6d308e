//! The AOF loader on one file (RESP commands, MULTI/EXEC blocks, timestamp
//! annotations, an RDB preamble): replayed commands or an error, never a
//! panic or a hang. A file that loads strictly loads the same way with
//! `aof-load-truncated yes`. Also the raw reader and the manifest parser.
//! Run: `cargo fuzz run aof_load` (seed with AOF files, e.g. the incr files
//! of an `appendonlydir/`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use redoubt_persist::aof::{load_file, AofReader, LoadOptions, Manifest, RdbLoader, Replay};
use redoubt_persist::storage::{SimStorage, Storage};
use std::io::Write;
use std::path::Path;

#[derive(Default, PartialEq, Debug)]
struct Record(Vec<Vec<Vec<u8>>>, Vec<Vec<Vec<Vec<u8>>>>);

impl Replay for Record {
    fn command(&mut self, args: Vec<Vec<u8>>) -> Result<(), String> {
        self.0.push(args);
        Ok(())
    }
    fn transaction(&mut self, cmds: Vec<Vec<Vec<u8>>>) -> Result<(), String> {
        self.1.push(cmds);
        Ok(())
    }
}

/// Loads `data` as the last file of a directory; Ok(replayed) or Err.
fn load(data: &[u8], load_truncated: bool) -> Result<Record, String> {
    let disk = SimStorage::new();
    let path = Path::new("appendonly.aof.1.incr.aof");
    let mut f = disk.create(path).map_err(|e| e.to_string())?;
    f.write_all(data).map_err(|e| e.to_string())?;
    drop(f);
    let mut plug = |r: &mut dyn std::io::Read, _: &str| -> Result<u64, String> {
        // Made here: a keyspace is 16 x 1024 tables, too slow to build for
        // every input that has no RDB preamble.
        let mut ks = redoubt_persist::Keyspace::new(16);
        let mut opts = redoubt_persist::rdb::LoadOptions::new(0);
        opts.decode.verify_checksum = false;
        redoubt_persist::rdb::load_keyspace(r, None, &mut ks, &opts)
            .map(|s| s.bytes_read)
            .map_err(|e| e.to_string())
    };
    let mut rdb: Option<RdbLoader<'_>> = Some(&mut plug);
    let mut rec = Record::default();
    load_file(
        &disk,
        path,
        "appendonly.aof.1.incr.aof",
        true,
        LoadOptions { load_truncated },
        &mut rdb,
        &mut rec,
    )
    .map_err(|e| e.to_string())?;
    Ok(rec)
}

fuzz_target!(|data: &[u8]| {
    let strict = load(data, false);
    let lenient = load(data, true);
    if let Ok(s) = &strict {
        assert_eq!(
            Some(s),
            lenient.as_ref().ok(),
            "a strict load and a lenient load differ"
        );
    }
    // The reader on its own finishes: every unit consumes input.
    let mut r = AofReader::new(data, "fuzz.aof", 0);
    for _ in 0..data.len() + 2 {
        match r.next_unit() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let _ = Manifest::parse(data);
});
