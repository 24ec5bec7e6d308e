//! `diff A B`: keys only in A (`-`), only in B (`+`), and changed (`~`,
//! saying whether the type, the value or the expiry differs).
//!
//! Memory: the files are not sorted, so the first pass keeps, per key of
//! A, a 16-byte hash of (db, key) mapped to a 16-byte digest of its value
//! plus its type and expiry (about 60 bytes a key with the map's
//! overhead), never the values. B is then streamed against that map, and
//! A is read a second time to name the keys B did not have. Digests are
//! of a canonical form (set members and hash fields sorted, scores by
//! bits), so two encodings of the same data compare equal (e.g. a v9
//! ziplist and a v10 listpack).

use super::text::display;
use super::{open_rdb, werr, DumpError, Filters, Kind, Result};
use redoubt_persist::rdb::{DecodeOptions, Decoded, EntryRecord, Item};
use redoubt_persist::Value;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::io::Write;
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq)]
struct Sig {
    digest: u128,
    kind: Kind,
    expire: Option<i64>,
}

/// A 128-bit hash from two SipHash passes with different prefixes.
struct H2(DefaultHasher, DefaultHasher);

impl H2 {
    fn new() -> H2 {
        let mut a = DefaultHasher::new();
        let mut b = DefaultHasher::new();
        a.write_u8(1);
        b.write_u8(2);
        H2(a, b)
    }
    fn bytes(&mut self, s: &[u8]) {
        self.0.write_usize(s.len());
        self.0.write(s);
        self.1.write_usize(s.len());
        self.1.write(s);
    }
    fn u64(&mut self, v: u64) {
        self.0.write_u64(v);
        self.1.write_u64(v);
    }
    fn finish(&self) -> u128 {
        (u128::from(self.0.finish()) << 64) | u128::from(self.1.finish())
    }
}

fn key_hash(db: u64, key: &[u8]) -> u128 {
    let mut h = H2::new();
    h.u64(db);
    h.bytes(key);
    h.finish()
}

fn digest(v: &Decoded) -> u128 {
    let mut h = H2::new();
    match v {
        Decoded::Module(m) => {
            h.u64(m.module_id);
            h.bytes(&m.body);
        }
        Decoded::Value(v) => match v {
            Value::Str(s) => h.bytes(s),
            Value::List(l) => {
                h.u64(l.items.len() as u64);
                for x in &l.items {
                    h.bytes(x);
                }
            }
            Value::Set(s) => {
                let mut m: Vec<&[u8]> = s.members.iter().map(|x| x.as_ref()).collect();
                m.sort_unstable();
                h.u64(m.len() as u64);
                for x in m {
                    h.bytes(x);
                }
            }
            Value::ZSet(z) => {
                h.u64(z.len() as u64);
                for e in z.iter() {
                    h.bytes(&e.member);
                    h.u64(e.score.to_bits());
                }
            }
            Value::Hash(hv) => {
                let mut m: Vec<(&[u8], &[u8])> = hv
                    .map
                    .iter()
                    .map(|(k, v)| (k.as_ref(), v.as_ref()))
                    .collect();
                m.sort_unstable();
                h.u64(m.len() as u64);
                for (k, v) in m {
                    h.bytes(k);
                    h.bytes(v);
                    let t = hv.field_expiry.as_ref().and_then(|t| t.get(k)).copied();
                    h.u64(t.unwrap_or(0));
                }
            }
            Value::Stream(s) => {
                h.u64(s.len() as u64);
                for e in s.entries.iter() {
                    h.u64(e.id.ms);
                    h.u64(e.id.seq);
                    h.u64(e.len() as u64);
                    for (k, v) in e.fields() {
                        h.bytes(k);
                        h.bytes(v);
                    }
                }
                for id in [s.last_id, s.first_id, s.max_deleted_id] {
                    h.u64(id.ms);
                    h.u64(id.seq);
                }
                h.u64(s.entries_added);
                for (name, g) in &s.groups {
                    h.bytes(name);
                    h.u64(g.last_id.ms);
                    h.u64(g.last_id.seq);
                    h.u64(g.entries_read as u64);
                    for (id, pe) in &g.pel {
                        h.u64(id.ms);
                        h.u64(id.seq);
                        h.bytes(&pe.consumer);
                        h.u64(pe.delivery_time);
                        h.u64(pe.delivery_count);
                    }
                    for (cname, c) in &g.consumers {
                        h.bytes(cname);
                        h.u64(c.seen_time);
                        h.u64(c.active_time);
                    }
                }
            }
        },
    }
    h.finish()
}

fn sig(e: &EntryRecord) -> Sig {
    Sig {
        digest: digest(&e.value),
        kind: Kind::of(e.rdb_type),
        expire: e.expire_ms,
    }
}

/// Calls `each(db, entry)` for every selected key of the file.
fn walk(
    path: &Path,
    f: &Filters,
    mut each: impl FnMut(u64, EntryRecord) -> Result<()>,
) -> Result<()> {
    let mut dec = open_rdb(path, DecodeOptions::default())?;
    let mut db = 0;
    while let Some(item) = dec.next_item().map_err(DumpError::rdb(path))? {
        match item {
            Item::SelectDb(n) => db = n,
            Item::Entry(e) if f.matches(db, &e.key, e.rdb_type) => each(db, e)?,
            _ => {}
        }
    }
    Ok(())
}

/// Returns the number of differences.
pub fn run(a: &Path, b: &Path, f: &Filters, out: &mut dyn Write) -> Result<u64> {
    let mut map: HashMap<u128, Sig> = HashMap::new();
    let mut na = 0u64;
    walk(a, f, |db, e| {
        na += 1;
        map.insert(key_hash(db, &e.key), sig(&e));
        Ok(())
    })?;
    let (mut nb, mut only_b, mut changed, mut same) = (0u64, 0u64, 0u64, 0u64);
    walk(b, f, |db, e| {
        nb += 1;
        let s = sig(&e);
        match map.remove(&key_hash(db, &e.key)) {
            None => {
                only_b += 1;
                writeln!(out, "+ db {db} {}", display(&e.key)).map_err(werr)?;
            }
            Some(old) if old == s => same += 1,
            Some(old) => {
                changed += 1;
                let mut what = Vec::new();
                if old.kind != s.kind {
                    what.push(format!("type {} -> {}", old.kind.name(), s.kind.name()));
                } else if old.digest != s.digest {
                    what.push("value".to_string());
                }
                if old.expire != s.expire {
                    let show = |x: Option<i64>| x.map_or("none".to_string(), |v| v.to_string());
                    what.push(format!("expiry {} -> {}", show(old.expire), show(s.expire)));
                }
                writeln!(out, "~ db {db} {} ({})", display(&e.key), what.join(", "))
                    .map_err(werr)?;
            }
        }
        Ok(())
    })?;
    let only_a = map.len() as u64;
    if only_a > 0 {
        walk(a, f, |db, e| {
            if map.contains_key(&key_hash(db, &e.key)) {
                writeln!(out, "- db {db} {}", display(&e.key)).map_err(werr)?;
            }
            Ok(())
        })?;
    }
    writeln!(
        out,
        "# A: {na} keys, B: {nb} keys; only in A: {only_a}, only in B: {only_b}, changed: {changed}, same: {same}"
    )
    .map_err(werr)?;
    Ok(only_a + only_b + changed)
}
