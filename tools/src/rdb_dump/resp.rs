//! `resp`: the keyspace as commands `redis-cli --pipe` loads.
//!
//! Per database a `SELECT`, then per key the commands of the server's AOF
//! rewrite, which are those of Redis's: `SET`; `RPUSH`/`SADD`/`ZADD`/`HMSET`
//! in batches of 64 elements (set members sorted); streams as `XADD` of
//! every entry with its id (an empty stream as `XADD key MAXLEN 0 0-1 x
//! y`), `XSETID key <last-id>
//! ENTRIESADDED n MAXDELETEDID id`, `XGROUP CREATE key g <last-delivered>
//! ENTRIESREAD n`, one `XCLAIM key g consumer 0 id TIME ms RETRYCOUNT n
//! JUSTID FORCE` per pending entry, `XGROUP CREATECONSUMER` for consumers
//! without pending entries; hash field TTLs as `HPEXPIREAT key ms FIELDS 1
//! f` (Redis 7.4+ only); then `PEXPIREAT key ms` for a key with a TTL.
//!
//! `--restore` instead writes `RESTORE key <ttl> <payload> REPLACE
//! [ABSTTL] [IDLETIME s] [FREQ f]` with the DUMP payload of each key
//! (`--rdb-version`, default 10 for Redis 7.0). Module values can only be
//! exported that way; in command mode they are skipped with a warning and
//! the exit status is 1.

use super::text::display;
use super::{open_rdb, werr, DumpError, Filters, Result};
use redoubt_persist::aof::encode_command;
use redoubt_persist::aof::rewrite::{chunked, write_entry};
use redoubt_persist::rdb::crc::crc64;
use redoubt_persist::rdb::encode::put_len;
use redoubt_persist::rdb::{dump_payload, DecodeOptions, Decoded, EntryRecord, Item, ModuleValue};
use redoubt_persist::Value;
use std::io::Write;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct RespOptions {
    pub restore: bool,
    pub rdb_version: u32,
}

/// Returns the number of keys that could not be expressed (module values
/// in command mode).
pub fn run(
    path: &Path,
    f: &Filters,
    opts: &RespOptions,
    out: &mut dyn Write,
    warn: &mut dyn Write,
) -> Result<u64> {
    if opts.restore && !(10..=12).contains(&opts.rdb_version) {
        return Err(DumpError::Usage(format!(
            "--rdb-version {} not supported for RESTORE payloads (10, 11 or 12)",
            opts.rdb_version
        )));
    }
    let mut dec = open_rdb(path, DecodeOptions::default())?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut db = 0u64;
    let mut selected: Option<u64> = None;
    let mut skipped = 0;
    while let Some(item) = dec.next_item().map_err(DumpError::rdb(path))? {
        match item {
            Item::SelectDb(n) => db = n,
            Item::Entry(e) => {
                if !f.matches(db, &e.key, e.rdb_type) {
                    continue;
                }
                if selected != Some(db) {
                    encode_command(&mut buf, &[b"SELECT".as_slice(), db.to_string().as_bytes()]);
                    selected = Some(db);
                }
                let done = if opts.restore {
                    restore_key(&mut buf, &e, opts.rdb_version).map_err(DumpError::Refused)?;
                    true
                } else {
                    key_commands(&mut buf, &e)
                };
                if !done {
                    skipped += 1;
                    let _ = writeln!(
                        warn,
                        "rdb-dump: warning: key '{}' in db {db} is a module value; skipped (use --restore)",
                        display(&e.key)
                    );
                }
                if buf.len() >= 64 * 1024 {
                    out.write_all(&buf).map_err(werr)?;
                    buf.clear();
                }
            }
            _ => {}
        }
    }
    out.write_all(&buf).map_err(werr)?;
    Ok(skipped)
}

/// A DUMP payload for a module value (type 7, its tagged body).
pub fn module_payload(m: &ModuleValue, version: u32) -> Vec<u8> {
    let mut b = vec![redoubt_persist::rdb::TYPE_MODULE_2];
    put_len(&mut b, m.module_id);
    b.extend_from_slice(&m.body);
    b.extend_from_slice(&(version as u16).to_le_bytes());
    let crc = crc64(0, &b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// `RESTORE key ttl payload REPLACE [ABSTTL] [IDLETIME s] [FREQ f]`.
pub fn restore_key(buf: &mut Vec<u8>, e: &EntryRecord, version: u32) -> Result<(), String> {
    let payload = match &e.value {
        Decoded::Value(v) => dump_payload(v, version)
            .map_err(|err| format!("key '{}': {}", display(&e.key), err.kind))?,
        Decoded::Module(m) => module_payload(m, version),
    };
    let ttl = e.expire_ms.unwrap_or(0).to_string();
    let mut args: Vec<Vec<u8>> = vec![
        b"RESTORE".to_vec(),
        e.key.clone(),
        ttl.into_bytes(),
        payload,
        b"REPLACE".to_vec(),
    ];
    if e.expire_ms.is_some() {
        args.push(b"ABSTTL".to_vec());
    }
    if let Some(i) = e.idle {
        args.push(b"IDLETIME".to_vec());
        args.push(i.to_string().into_bytes());
    }
    if let Some(fq) = e.freq {
        args.push(b"FREQ".to_vec());
        args.push(fq.to_string().into_bytes());
    }
    encode_command(buf, &args);
    Ok(())
}

/// The commands recreating one key; false for a module value.
pub fn key_commands(buf: &mut Vec<u8>, e: &EntryRecord) -> bool {
    let Decoded::Value(v) = &e.value else {
        return false;
    };
    value_commands(buf, &e.key, v);
    if let Some(x) = e.expire_ms {
        let at = x.to_string();
        encode_command(buf, &[b"PEXPIREAT".as_slice(), &e.key, at.as_bytes()]);
    }
    true
}

/// The commands recreating one value: those of the AOF rewrite, with set
/// members sorted (the same output from run to run) and hash field TTLs as
/// `HPEXPIREAT` (for Redis 7.4+).
pub fn value_commands(buf: &mut Vec<u8>, key: &[u8], v: &Value) {
    match v {
        Value::Set(s) => {
            let mut m: Vec<&[u8]> = s.members.iter().map(|x| x.as_ref()).collect();
            m.sort_unstable();
            chunked(buf, &[b"SADD", key], m.into_iter().map(|x| vec![x]))
        }
        _ => write_entry(buf, key, v),
    }
    let Value::Hash(h) = v else {
        return;
    };
    let Some(t) = &h.field_expiry else {
        return;
    };
    let mut ttls: Vec<(&[u8], u64)> = t.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
    ttls.sort_unstable();
    for (field, at) in ttls {
        let at = at.to_string();
        encode_command(
            buf,
            &[
                b"HPEXPIREAT".as_slice(),
                key,
                at.as_bytes(),
                b"FIELDS",
                b"1",
                field,
            ],
        );
    }
}
