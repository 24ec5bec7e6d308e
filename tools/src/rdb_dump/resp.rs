//! `resp`: the keyspace as commands `redis-cli --pipe` loads.
//!
//! Per database a `SELECT`, then per key the commands Redis's own AOF
//! rewrite uses: `SET`; `RPUSH`/`SADD`/`ZADD`/`HSET` in batches of 64
//! elements; streams as `XADD` of every entry with its id (an empty stream
//! as `XADD key MAXLEN 0 <last-id> x y`), `XSETID key <last-id>
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
use redoubt_persist::rdb::crc::crc64;
use redoubt_persist::rdb::encode::put_len;
use redoubt_persist::rdb::{dump_payload, DecodeOptions, Decoded, EntryRecord, Item, ModuleValue};
use redoubt_persist::value::{StreamId, ENTRIES_READ_UNKNOWN};
use redoubt_persist::Value;
use std::io::Write;
use std::path::Path;

/// Elements per command (Redis's AOF_REWRITE_ITEMS_PER_CMD).
const ITEMS_PER_CMD: usize = 64;

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

fn chunked<'a>(buf: &mut Vec<u8>, head: &[&[u8]], items: impl Iterator<Item = Vec<&'a [u8]>>) {
    let mut args: Vec<&[u8]> = head.to_vec();
    let mut n = 0;
    for it in items {
        args.extend(it);
        n += 1;
        if n == ITEMS_PER_CMD {
            encode_command(buf, &args);
            args.truncate(head.len());
            n = 0;
        }
    }
    if n > 0 {
        encode_command(buf, &args);
    }
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

pub fn value_commands(buf: &mut Vec<u8>, key: &[u8], v: &Value) {
    match v {
        Value::Str(s) => encode_command(buf, &[b"SET".as_slice(), key, s]),
        Value::List(l) => chunked(
            buf,
            &[b"RPUSH", key],
            l.items.iter().map(|x| vec![x.as_ref()]),
        ),
        Value::Set(s) => {
            let mut m: Vec<&[u8]> = s.members.iter().map(|x| x.as_ref()).collect();
            m.sort_unstable();
            chunked(buf, &[b"SADD", key], m.into_iter().map(|x| vec![x]))
        }
        Value::ZSet(z) => {
            let scores: Vec<String> = z.iter().map(|e| score_text(e.score)).collect();
            chunked(
                buf,
                &[b"ZADD", key],
                z.iter()
                    .zip(scores.iter())
                    .map(|(e, s)| vec![s.as_bytes(), e.member.as_ref()]),
            )
        }
        Value::Hash(h) => {
            chunked(
                buf,
                &[b"HSET", key],
                h.map.iter().map(|(k, v)| vec![k.as_ref(), v.as_ref()]),
            );
            if let Some(t) = &h.field_expiry {
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
        }
        Value::Stream(s) => {
            if s.entries.is_empty() {
                // XADD ... MAXLEN 0 creates the empty stream; XSETID below
                // then puts back the real last id (0-0 cannot be added).
                let id = if s.last_id == StreamId::MIN {
                    StreamId::new(0, 1)
                } else {
                    s.last_id
                }
                .to_string();
                encode_command(
                    buf,
                    &[
                        b"XADD".as_slice(),
                        key,
                        b"MAXLEN",
                        b"0",
                        id.as_bytes(),
                        b"x",
                        b"y",
                    ],
                );
            }
            for e in s.entries.iter() {
                let id = e.id.to_string();
                let mut args: Vec<&[u8]> = vec![b"XADD", key, id.as_bytes()];
                for (k, v) in e.fields() {
                    args.push(k);
                    args.push(v);
                }
                encode_command(buf, &args);
            }
            let last = s.last_id.to_string();
            let added = s.entries_added.to_string();
            let maxdel = s.max_deleted_id.to_string();
            encode_command(
                buf,
                &[
                    b"XSETID".as_slice(),
                    key,
                    last.as_bytes(),
                    b"ENTRIESADDED",
                    added.as_bytes(),
                    b"MAXDELETEDID",
                    maxdel.as_bytes(),
                ],
            );
            for (name, g) in &s.groups {
                let gid = g.last_id.to_string();
                let er = if g.entries_read == ENTRIES_READ_UNKNOWN {
                    "-1".to_string()
                } else {
                    g.entries_read.to_string()
                };
                encode_command(
                    buf,
                    &[
                        b"XGROUP".as_slice(),
                        b"CREATE",
                        key,
                        name,
                        gid.as_bytes(),
                        b"ENTRIESREAD",
                        er.as_bytes(),
                    ],
                );
                for (id, pe) in &g.pel {
                    let id = id.to_string();
                    let t = pe.delivery_time.to_string();
                    let n = pe.delivery_count.to_string();
                    encode_command(
                        buf,
                        &[
                            b"XCLAIM".as_slice(),
                            key,
                            name,
                            &pe.consumer,
                            b"0",
                            id.as_bytes(),
                            b"TIME",
                            t.as_bytes(),
                            b"RETRYCOUNT",
                            n.as_bytes(),
                            b"JUSTID",
                            b"FORCE",
                        ],
                    );
                }
                for (cname, c) in &g.consumers {
                    if c.pel.is_empty() {
                        encode_command(
                            buf,
                            &[b"XGROUP".as_slice(), b"CREATECONSUMER", key, name, cname],
                        );
                    }
                }
            }
        }
    }
}

/// A score as ZADD reads it back exactly (shortest round-trip form).
pub fn score_text(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{v}")
    }
}
