//! `json`: the keyspace as JSON.
//!
//! Default: a JSON array with one object per database,
//! `{"db":0,"keys":[KEY,...]}`. With `--lines`: one `KEY` object per line,
//! each carrying its `"db"`. A `KEY` object is
//!
//! ```text
//! {"key":K,"type":"string|list|set|zset|hash|stream|module",
//!  "encoding":"<RDB type name>","expire_ms":<unix ms>|absent,"value":V}
//! ```
//!
//! where strings (`K`, members, fields...) follow the escaping rules of
//! [`super::text`] and `V` is: string → string; list → array; set → array
//! (sorted by bytes); zset → array of `[member, score]` in score order;
//! hash → array of `[field, value]` or `[field, value, expire_ms]` when the
//! field has a TTL; stream → object with `entries` (`[id, [[f, v], ...]]`),
//! `length`, `last_id`, `first_id`, `max_deleted_id`, `entries_added`,
//! `groups` (name, last_id, entries_read, pending with consumer, delivery
//! time and count, consumers with seen/active time and pending ids);
//! module → `{"module":name,"encver":n,"body_hex":...}` (opaque).

use super::text::{json_bytes, json_f64, json_str};
use super::{open_rdb, rdb_type_name, werr, DumpError, Filters, Kind, Result};
use redoubt_persist::rdb::{DecodeOptions, Decoded, EntryRecord, Item};
use redoubt_persist::Value;
use std::io::Write;
use std::path::Path;

pub fn run(path: &Path, f: &Filters, lines: bool, out: &mut dyn Write) -> Result<()> {
    let mut dec = open_rdb(path, DecodeOptions::default())?;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut db = 0u64;
    // For the array form: the db whose object is open, and whether a key
    // was already written in it.
    let mut open_db: Option<u64> = None;
    let mut first_in_db = true;
    if !lines {
        buf.extend_from_slice(b"[");
    }
    while let Some(item) = dec.next_item().map_err(DumpError::rdb(path))? {
        match item {
            Item::SelectDb(n) => db = n,
            Item::Entry(e) => {
                if !f.matches(db, &e.key, e.rdb_type) {
                    continue;
                }
                if lines {
                    key_object(&mut buf, Some(db), &e);
                    buf.push(b'\n');
                } else {
                    if open_db != Some(db) {
                        if open_db.is_some() {
                            buf.extend_from_slice(b"\n]},");
                        }
                        buf.extend_from_slice(format!("\n{{\"db\":{db},\"keys\":[").as_bytes());
                        open_db = Some(db);
                        first_in_db = true;
                    }
                    if !first_in_db {
                        buf.push(b',');
                    }
                    first_in_db = false;
                    buf.push(b'\n');
                    key_object(&mut buf, None, &e);
                }
                if buf.len() >= 64 * 1024 {
                    out.write_all(&buf).map_err(werr)?;
                    buf.clear();
                }
            }
            _ => {}
        }
    }
    if !lines {
        if open_db.is_some() {
            buf.extend_from_slice(b"\n]}");
        }
        buf.extend_from_slice(b"\n]\n");
    }
    out.write_all(&buf).map_err(werr)
}

/// One key as a JSON object.
pub fn key_object(b: &mut Vec<u8>, db: Option<u64>, e: &EntryRecord) {
    b.push(b'{');
    if let Some(db) = db {
        b.extend_from_slice(format!("\"db\":{db},").as_bytes());
    }
    b.extend_from_slice(b"\"key\":");
    json_bytes(b, &e.key);
    b.extend_from_slice(b",\"type\":");
    json_str(b, Kind::of(e.rdb_type).name());
    b.extend_from_slice(b",\"encoding\":");
    json_str(b, rdb_type_name(e.rdb_type));
    if let Some(x) = e.expire_ms {
        b.extend_from_slice(format!(",\"expire_ms\":{x}").as_bytes());
    }
    b.extend_from_slice(b",\"value\":");
    value(b, &e.value);
    b.push(b'}');
}

fn list<'a, I: Iterator<Item = &'a [u8]>>(b: &mut Vec<u8>, it: I) {
    b.push(b'[');
    for (i, x) in it.enumerate() {
        if i > 0 {
            b.push(b',');
        }
        json_bytes(b, x);
    }
    b.push(b']');
}

fn value(b: &mut Vec<u8>, v: &Decoded) {
    let v = match v {
        Decoded::Module(m) => {
            b.extend_from_slice(b"{\"module\":");
            json_str(b, &m.name);
            b.extend_from_slice(format!(",\"encver\":{},\"body_hex\":\"", m.encver).as_bytes());
            for x in &m.body {
                b.extend_from_slice(format!("{x:02x}").as_bytes());
            }
            b.extend_from_slice(b"\"}");
            return;
        }
        Decoded::Value(v) => v,
    };
    match v {
        Value::Str(s) => json_bytes(b, s),
        Value::List(l) => list(b, l.items.iter().map(|x| x.as_ref())),
        Value::Set(s) => {
            let mut m: Vec<&[u8]> = s.members.iter().map(|x| x.as_ref()).collect();
            m.sort_unstable();
            list(b, m.into_iter())
        }
        Value::ZSet(z) => {
            b.push(b'[');
            for (i, e) in z.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.push(b'[');
                json_bytes(b, &e.member);
                b.push(b',');
                json_f64(b, e.score);
                b.push(b']');
            }
            b.push(b']');
        }
        Value::Hash(h) => {
            b.push(b'[');
            for (i, (k, v)) in h.map.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.push(b'[');
                json_bytes(b, k);
                b.push(b',');
                json_bytes(b, v);
                if let Some(t) = h.field_expiry.as_ref().and_then(|t| t.get(k)) {
                    b.extend_from_slice(format!(",{t}").as_bytes());
                }
                b.push(b']');
            }
            b.push(b']');
        }
        Value::Stream(s) => {
            b.extend_from_slice(b"{\"entries\":[");
            for (i, e) in s.entries.iter().enumerate() {
                let id = e.id;
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(format!("[\"{id}\",[").as_bytes());
                for (j, (k, v)) in e.fields().enumerate() {
                    if j > 0 {
                        b.push(b',');
                    }
                    b.push(b'[');
                    json_bytes(b, k);
                    b.push(b',');
                    json_bytes(b, v);
                    b.push(b']');
                }
                b.extend_from_slice(b"]]");
            }
            b.extend_from_slice(
                format!(
                    "],\"length\":{},\"last_id\":\"{}\",\"first_id\":\"{}\",\"max_deleted_id\":\"{}\",\"entries_added\":{},\"groups\":[",
                    s.len(),
                    s.last_id,
                    s.first_id,
                    s.max_deleted_id,
                    s.entries_added
                )
                .as_bytes(),
            );
            for (i, (name, g)) in s.groups.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                b.extend_from_slice(b"{\"name\":");
                json_bytes(b, name);
                b.extend_from_slice(
                    format!(
                        ",\"last_id\":\"{}\",\"entries_read\":{},\"pending\":[",
                        g.last_id, g.entries_read
                    )
                    .as_bytes(),
                );
                for (j, (id, pe)) in g.pel.iter().enumerate() {
                    if j > 0 {
                        b.push(b',');
                    }
                    b.extend_from_slice(format!("{{\"id\":\"{id}\",\"consumer\":").as_bytes());
                    json_bytes(b, &pe.consumer);
                    b.extend_from_slice(
                        format!(
                            ",\"delivery_time\":{},\"delivery_count\":{}}}",
                            pe.delivery_time, pe.delivery_count
                        )
                        .as_bytes(),
                    );
                }
                b.extend_from_slice(b"],\"consumers\":[");
                for (j, (cname, c)) in g.consumers.iter().enumerate() {
                    if j > 0 {
                        b.push(b',');
                    }
                    b.extend_from_slice(b"{\"name\":");
                    json_bytes(b, cname);
                    b.extend_from_slice(
                        format!(
                            ",\"seen_time\":{},\"active_time\":{},\"pending\":[",
                            c.seen_time, c.active_time
                        )
                        .as_bytes(),
                    );
                    for (k, id) in c.pel.iter().enumerate() {
                        if k > 0 {
                            b.push(b',');
                        }
                        b.extend_from_slice(format!("\"{id}\"").as_bytes());
                    }
                    b.extend_from_slice(b"]}");
                }
                b.extend_from_slice(b"]}");
            }
            b.extend_from_slice(b"]}");
        }
    }
}
