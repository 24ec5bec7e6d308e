//! Hash commands.
//!
//! While a hash is small ("listpack" in Redis 7.0) replies list fields in
//! insertion order and HDEL keeps the order of the rest, exactly as a
//! listpack does. Once promoted to `hashtable` (more than
//! hash-max-listpack-entries fields, or a field or value longer than
//! hash-max-listpack-value) the order is unspecified and the fields live in
//! shards shared copy-on-write with snapshots; HSCAN then walks ranges of
//! field hashes (see [`hscan`]).

use super::flags::*;
use super::{arg_i64, not_integer, reply, syntax_error, wrong_args, wrongtype, CommandSpec, Ctx};
use crate::resp::{encode, Reply};
use crate::util::{eq_ic, glob_match, parse_i64};
use bytes::{Bytes, BytesMut};
use rand::Rng;
use redoubt_persist::value::{HashFields, HashValue};
use redoubt_persist::Value;
use std::hash::BuildHasher;
use std::sync::OnceLock;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("hset", -4, WRITE | DENYOOM | FAST, (1, 1, 1), "hash", hset),
    CommandSpec::new(
        "hsetnx",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hsetnx,
    ),
    CommandSpec::new("hget", 3, READONLY | FAST, (1, 1, 1), "hash", hget),
    CommandSpec::new("hmget", -3, READONLY | FAST, (1, 1, 1), "hash", hmget),
    CommandSpec::new(
        "hmset",
        -4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hmset,
    ),
    CommandSpec::new("hdel", -3, WRITE | FAST, (1, 1, 1), "hash", hdel),
    CommandSpec::new("hlen", 2, READONLY | FAST, (1, 1, 1), "hash", hlen),
    CommandSpec::new("hstrlen", 3, READONLY | FAST, (1, 1, 1), "hash", hstrlen),
    CommandSpec::new("hexists", 3, READONLY | FAST, (1, 1, 1), "hash", hexists),
    CommandSpec::new("hkeys", 2, READONLY, (1, 1, 1), "hash", hkeys),
    CommandSpec::new("hvals", 2, READONLY, (1, 1, 1), "hash", hvals),
    CommandSpec::new("hgetall", 2, READONLY, (1, 1, 1), "hash", hgetall),
    CommandSpec::new(
        "hincrby",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hincrby,
    ),
    CommandSpec::new(
        "hincrbyfloat",
        4,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "hash",
        hincrbyfloat,
    ),
    CommandSpec::new("hrandfield", -2, READONLY, (1, 1, 1), "hash", hrandfield),
    CommandSpec::new("hscan", -3, READONLY, (1, 1, 1), "hash", hscan),
];

/// The hash at `key`: Ok(None) if missing, Err(WRONGTYPE) if not a hash.
fn get_hash<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut HashValue>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Hash(h) => Ok(Some(h)),
            _ => Err(wrongtype()),
        },
    }
}

/// Promotes to `hashtable` if any of `args` is too long for a listpack
/// (Redis checks the arguments before writing them).
fn convert_for_args(h: &mut HashValue, args: &[Bytes], max_value: u64) {
    if !h.is_hashtable() && args.iter().any(|a| a.len() as u64 > max_value) {
        h.promote();
    }
}

/// Promotes to `hashtable` once there are too many fields.
fn convert_for_len(h: &mut HashValue, max_entries: u64) {
    if !h.is_hashtable() && h.map.len() as u64 > max_entries {
        h.promote();
    }
}

/// Sets one field; true when the field is new. Updating keeps the field's
/// place (a listpack replaces in place) and does not copy the name again.
/// A field or value too long for a listpack promotes the hash, whichever
/// command wrote it (HINCRBYFLOAT can produce a long value).
fn set_field(h: &mut HashValue, field: &[u8], value: &[u8], max_value: u64) -> bool {
    if !h.is_hashtable() && (field.len() as u64 > max_value || value.len() as u64 > max_value) {
        h.promote();
    }
    h.set_field(field, value)
}

fn hset_generic(ctx: &mut Ctx, args: &[Bytes], name: &str) -> Result<i64, Reply> {
    if !args.len().is_multiple_of(2) {
        return Err(wrong_args(name));
    }
    let max_value = ctx.ex.config.hash_max_listpack_value;
    let max_entries = ctx.ex.config.hash_max_listpack_entries;
    let created = ctx.with_or_create(&args[1], |h| {
        convert_for_args(h, &args[2..], max_value);
        let mut created = 0;
        for pair in args[2..].chunks_exact(2) {
            if set_field(h, &pair[0], &pair[1], max_value) {
                created += 1;
            }
        }
        convert_for_len(h, max_entries);
        created
    })?;
    ctx.modified(&args[1]);
    Ok(created)
}

fn hset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(hset_generic(ctx, args, "hset").map(Reply::Int))
}

fn hmset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(hset_generic(ctx, args, "hmset").map(|_| Reply::ok()))
}

fn hsetnx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let max_value = ctx.ex.config.hash_max_listpack_value;
        let max_entries = ctx.ex.config.hash_max_listpack_entries;
        if let Some(h) = get_hash(ctx, &args[1])? {
            if h.map.contains_key(&args[2][..]) {
                return Ok(Reply::Int(0));
            }
        }
        ctx.with_or_create(&args[1], |h| {
            convert_for_args(h, &args[2..4], max_value);
            set_field(h, &args[2], &args[3], max_value);
            convert_for_len(h, max_entries);
        })?;
        ctx.modified(&args[1]);
        Ok(Reply::Int(1))
    })())
}

fn hget(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(Some(h)) => match h.map.get(&args[2][..]) {
            Some(v) => Reply::Bulk(v.clone()),
            None => Reply::Nil,
        },
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

fn hmget(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(h) => Reply::Array(
            args[2..]
                .iter()
                .map(|f| match h.as_ref().and_then(|h| h.map.get(&f[..])) {
                    Some(v) => Reply::Bulk(v.clone()),
                    None => Reply::Nil,
                })
                .collect(),
        ),
        Err(e) => e,
    }
}

fn hdel(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let Some(h) = get_hash(ctx, key)? else {
            return Ok(Reply::Int(0));
        };
        let mut n = 0;
        for f in &args[2..] {
            // A listpack keeps the order of what remains.
            if h.map.remove(&f[..]).is_some() {
                n += 1;
            }
        }
        let empty = h.map.is_empty();
        if n > 0 {
            if empty {
                ctx.db().remove(key);
            }
            ctx.modified(key);
        }
        Ok(Reply::Int(n))
    })())
}

fn hlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(h) => Reply::Int(h.map_or(0, |h| h.map.len()) as i64),
        Err(e) => e,
    }
}

fn hstrlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(h) => Reply::Int(
            h.and_then(|h| h.map.get(&args[2][..]))
                .map_or(0, |v| v.len()) as i64,
        ),
        Err(e) => e,
    }
}

fn hexists(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(h) => Reply::Int(h.is_some_and(|h| h.map.contains_key(&args[2][..])) as i64),
        Err(e) => e,
    }
}

fn hkeys(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(Some(h)) => Reply::Array(
            h.map
                .iter()
                .map(|(k, _)| k)
                .map(|k| Reply::Bulk(k.clone()))
                .collect(),
        ),
        Ok(None) => Reply::Array(Vec::new()),
        Err(e) => e,
    }
}

fn hvals(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(Some(h)) => Reply::Array(
            h.map
                .iter()
                .map(|(_, v)| v)
                .map(|v| Reply::Bulk(v.clone()))
                .collect(),
        ),
        Ok(None) => Reply::Array(Vec::new()),
        Err(e) => e,
    }
}

fn hgetall(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_hash(ctx, &args[1]) {
        Ok(Some(h)) => Reply::Map(
            h.map
                .iter()
                .map(|(k, v)| (Reply::Bulk(k.clone()), Reply::Bulk(v.clone())))
                .collect(),
        ),
        Ok(None) => Reply::Map(Vec::new()),
        Err(e) => e,
    }
}

fn hincrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let incr = arg_i64(&args[3])?;
        let max_value = ctx.ex.config.hash_max_listpack_value;
        let max_entries = ctx.ex.config.hash_max_listpack_entries;
        let old = match get_hash(ctx, &args[1])?.and_then(|h| h.map.get(&args[2][..])) {
            Some(v) => {
                parse_i64(v).ok_or_else(|| Reply::err("ERR hash value is not an integer"))?
            }
            None => 0,
        };
        let new = old
            .checked_add(incr)
            .ok_or_else(|| Reply::err("ERR increment or decrement would overflow"))?;
        ctx.with_or_create(&args[1], |h| {
            set_field(h, &args[2], new.to_string().as_bytes(), max_value);
            convert_for_len(h, max_entries);
        })?;
        ctx.modified(&args[1]);
        Ok(Reply::Int(new))
    })())
}

fn hincrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let incr = &args[3];
        // Redis reads the increment as a long double: 1e400 is finite there
        // though not as a double, and hex floats parse. Only when the double
        // parse is not conclusive does the long double parser judge.
        if !crate::util::parse_f64(incr).is_some_and(f64::is_finite) {
            match crate::longdouble::add(b"0", incr) {
                Ok(_) => {}
                Err(e) if e == super::not_float() => return Err(e),
                Err(_) => return Err(Reply::err("ERR value is NaN or Infinity")),
            }
        }
        let max_value = ctx.ex.config.hash_max_listpack_value;
        let max_entries = ctx.ex.config.hash_max_listpack_entries;
        let old = get_hash(ctx, &args[1])?
            .and_then(|h| h.map.get(&args[2][..]))
            .cloned();
        let base: &[u8] = old.as_deref().unwrap_or(b"0");
        let new = match crate::longdouble::add(base, incr) {
            Ok(v) => v,
            // The increment parsed above, so a parse failure is the value's.
            Err(e) if e == super::not_float() => {
                return Err(Reply::err("ERR hash value is not a float"))
            }
            Err(e) => return Err(e),
        };
        let new = Bytes::from(new);
        ctx.with_or_create(&args[1], |h| {
            // The field and the result count toward promotion, not the
            // increment as written.
            set_field(h, &args[2], &new, max_value);
            convert_for_len(h, max_entries);
        })?;
        ctx.modified(&args[1]);
        // Logged as the value it produced, so replay does not redo the
        // float arithmetic.
        ctx.propagate_as(vec![vec![
            Bytes::from_static(b"HSET"),
            args[1].clone(),
            args[2].clone(),
            new.clone(),
        ]]);
        Ok(Reply::Bulk(new))
    })())
}

/// Encodes one bulk straight into a raw reply buffer.
fn raw_bulk(out: &mut BytesMut, b: &Bytes, proto: u8) {
    encode(&Reply::Bulk(b.clone()), proto, out);
}

fn hrandfield(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let proto = ctx.client.resp;
        if args.len() == 2 {
            let Some(h) = get_hash(ctx, &args[1])? else {
                return Ok(Reply::Nil);
            };
            let i = ctx_rng_index(h.map.len());
            return Ok(match h.map.get_index(i) {
                Some((k, _)) => Reply::Bulk(k.clone()),
                None => Reply::Nil,
            });
        }
        let count = parse_i64(&args[2]).ok_or_else(not_integer)?;
        if count == i64::MIN {
            return Err(Reply::err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
        }
        let withvalues = match args.len() {
            3 => false,
            4 if eq_ic(&args[3], "withvalues") => true,
            _ => return Err(syntax_error()),
        };
        // Twice the count must fit in a long (Redis's overflow guard).
        if withvalues && count < -(i64::MAX / 2) {
            return Err(Reply::err("ERR value is out of range"));
        }
        let Some(h) = get_hash(ctx, &args[1])? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let len = h.map.len();
        if len == 0 || count == 0 {
            return Ok(Reply::Array(Vec::new()));
        }
        if count < 0 {
            // Repetitions allowed: the reply can be far larger than the
            // hash, so it is encoded as it is produced (about what Redis
            // buffers for it) rather than as a vector of replies.
            let n = count.unsigned_abs();
            let mut out = BytesMut::new();
            let header = if withvalues && proto < 3 {
                n.saturating_mul(2)
            } else {
                n
            };
            out.extend_from_slice(format!("*{header}\r\n").as_bytes());
            let mut rng = rand::thread_rng();
            for _ in 0..n {
                let Some((k, v)) = h.map.get_index(rng.gen_range(0..len)) else {
                    break;
                };
                if withvalues && proto >= 3 {
                    out.extend_from_slice(b"*2\r\n");
                }
                raw_bulk(&mut out, k, proto);
                if withvalues {
                    raw_bulk(&mut out, v, proto);
                }
            }
            return Ok(Reply::Raw(out.freeze()));
        }
        let n = count as u64;
        // Distinct fields: the whole hash when asked for at least as many,
        // else a random sample kept in the hash's order.
        let picked: Vec<usize> = if n >= len as u64 {
            (0..len).collect()
        } else {
            let mut idx =
                rand::seq::index::sample(&mut rand::thread_rng(), len, n as usize).into_vec();
            idx.sort_unstable();
            idx
        };
        let mut out =
            Vec::with_capacity(picked.len() * if withvalues && proto < 3 { 2 } else { 1 });
        for (k, v) in pairs_at(&h.map, &picked) {
            if !withvalues {
                out.push(Reply::Bulk(k.clone()));
            } else if proto >= 3 {
                out.push(Reply::Array(vec![
                    Reply::Bulk(k.clone()),
                    Reply::Bulk(v.clone()),
                ]));
            } else {
                out.push(Reply::Bulk(k.clone()));
                out.push(Reply::Bulk(v.clone()));
            }
        }
        Ok(Reply::Array(out))
    })())
}

/// The pairs at the ascending positions `picked`. Positional access into
/// a table costs a walk over its shard lengths, so past a few picks one
/// pass over the table is cheaper.
fn pairs_at<'a>(m: &'a HashFields, picked: &[usize]) -> Vec<(&'a Bytes, &'a Bytes)> {
    if !m.is_table() || picked.len() <= 64 {
        return picked.iter().filter_map(|&i| m.get_index(i)).collect();
    }
    let mut want = picked.iter().copied().peekable();
    let mut out = Vec::with_capacity(picked.len());
    for (i, kv) in m.iter().enumerate() {
        if want.peek().is_none() {
            break;
        }
        if want.peek() == Some(&i) {
            want.next();
            out.push(kv);
        }
    }
    out
}

/// A uniformly random index below `len` (0 when empty).
fn ctx_rng_index(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..len)
    }
}

/// A SCAN-family cursor, read as Redis reads it (C's strtoul: an optional
/// sign, a minus wrapping around, an empty string meaning 0).
pub fn parse_cursor(a: &[u8]) -> Result<u64, Reply> {
    let invalid = || Reply::err("ERR invalid cursor");
    let (neg, digits) = match a.first() {
        Some(b'-') => (true, &a[1..]),
        Some(b'+') => (false, &a[1..]),
        _ => (false, a),
    };
    if a.is_empty() {
        return Ok(0);
    }
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(invalid());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if neg { v.wrapping_neg() } else { v })
}

/// SCAN-family options: MATCH pattern and COUNT (at least 1).
pub fn parse_scan_opts(args: &[Bytes]) -> Result<(Option<Bytes>, usize), Reply> {
    let mut pattern = None;
    let mut count = 10usize;
    let mut i = 0;
    while i < args.len() {
        let Some(val) = args.get(i + 1) else {
            return Err(syntax_error());
        };
        if eq_ic(&args[i], "match") {
            // "*" matches everything: skip the matching altogether.
            pattern = (val.as_ref() != b"*").then(|| val.clone());
        } else if eq_ic(&args[i], "count") {
            let n = arg_i64(val)?;
            if n < 1 {
                return Err(syntax_error());
            }
            count = n as usize;
        } else {
            return Err(syntax_error());
        }
        i += 2;
    }
    Ok((pattern, count))
}

/// The hash that orders elements for HSCAN and SSCAN: one per process, so
/// a cursor stays meaningful however the collection is changed or rehashed.
fn scan_hasher() -> &'static hashbrown::DefaultHashBuilder {
    static H: OnceLock<hashbrown::DefaultHashBuilder> = OnceLock::new();
    H.get_or_init(Default::default)
}

/// One step of a hash-range scan over a collection of `len` elements:
/// the elements whose [`scan_hasher`] hash lies in `[cursor, end)` are
/// this call's, and the next cursor is `end` (0 once the range space is
/// done). Every element present for the whole scan falls in exactly one
/// range, so it is returned once whatever is added or removed meanwhile.
/// The collections offer no ordered access, so each call looks at every
/// element; ranges are sized to at least 1/64 of the collection so a full
/// scan costs O(64n) rather than O(n²/COUNT).
pub struct HashRange {
    start: u128,
    end: u128,
}

impl HashRange {
    pub fn new(cursor: u64, count: usize, len: usize) -> HashRange {
        let len = len.max(1) as u128;
        let batch = (count as u128).max(len / 64).max(1);
        let width = ((1u128 << 64) * batch / len).max(1);
        let start = cursor as u128;
        HashRange {
            start,
            end: start + width,
        }
    }

    /// Whether `elem` belongs to this step.
    #[inline]
    pub fn contains(&self, elem: &[u8]) -> bool {
        let x = scan_hasher().hash_one(elem) as u128;
        x >= self.start && x < self.end
    }

    /// The cursor to reply with.
    pub fn next_cursor(&self) -> u64 {
        if self.end >= 1u128 << 64 {
            0
        } else {
            self.end as u64
        }
    }
}

/// HSCAN. A listpack hash is returned whole with cursor 0, as Redis does;
/// a hashtable hash is walked by ranges of field hashes (see [`HashRange`]).
fn hscan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let cursor = parse_cursor(&args[2])?;
        let Some(h) = get_hash(ctx, &args[1])? else {
            return Ok(scan_reply(0, Vec::new()));
        };
        let (pattern, count) = parse_scan_opts(&args[3..])?;
        let keep = |k: &Bytes| pattern.as_ref().is_none_or(|p| glob_match(p, k, false));
        let mut out = Vec::new();
        if !h.is_hashtable() {
            for (k, v) in &h.map {
                if keep(k) {
                    out.push(Reply::Bulk(k.clone()));
                    out.push(Reply::Bulk(v.clone()));
                }
            }
            return Ok(scan_reply(0, out));
        }
        let range = HashRange::new(cursor, count, h.map.len());
        for (k, v) in &h.map {
            if range.contains(k) && keep(k) {
                out.push(Reply::Bulk(k.clone()));
                out.push(Reply::Bulk(v.clone()));
            }
        }
        Ok(scan_reply(range.next_cursor(), out))
    })())
}

/// `[cursor, [items]]`.
pub fn scan_reply(cursor: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![
        Reply::bulk_str(&cursor.to_string()),
        Reply::Array(items),
    ])
}
