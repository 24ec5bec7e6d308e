//! List commands, blocking pops included.
//!
//! A list is a [`ChunkList`]: O(1) pushes and pops at both ends, indexed
//! access for LINDEX/LSET/LRANGE that walks node lengths (not elements)
//! from the nearer end, and nodes shared copy-on-write so that a snapshot's
//! copy of a big list is cheap. Redis 7.0 reports every list as
//! `quicklist`, so there is no encoding to track.
//!
//! Blocking commands first try to run as their non-blocking form; when every
//! key is empty they park the client with [`Ctx::block`]. When one of the keys
//! is changed the executor re-runs the command with [`Ctx::serving_key`] set:
//! then only that key is looked at, and anything but a non-empty list there
//! means "keep waiting" (Redis 7.0 serves a blocked client from the key that
//! became ready, and ignores ready keys of another type).

use super::flags::*;
use super::{arg_i64, no_such_key, reply, syntax_error, wrongtype, CommandSpec, Ctx};
use crate::resp::{put_bulk, put_header, Reply};
use crate::util::{eq_ic, parse_f64};
use bytes::{Bytes, BytesMut};
use redoubt_persist::value::{ChunkList, ListValue};
use redoubt_persist::Value;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "lpush",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        lpush,
    ),
    CommandSpec::new(
        "rpush",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        rpush,
    ),
    CommandSpec::new(
        "lpushx",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        lpushx,
    ),
    CommandSpec::new(
        "rpushx",
        -3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "list",
        rpushx,
    ),
    CommandSpec::new("lpop", -2, WRITE | FAST, (1, 1, 1), "list", lpop),
    CommandSpec::new("rpop", -2, WRITE | FAST, (1, 1, 1), "list", rpop),
    CommandSpec::new("llen", 2, READONLY | FAST, (1, 1, 1), "list", llen),
    CommandSpec::new("lrange", 4, READONLY, (1, 1, 1), "list", lrange),
    CommandSpec::new("lindex", 3, READONLY, (1, 1, 1), "list", lindex),
    CommandSpec::new("lset", 4, WRITE | DENYOOM, (1, 1, 1), "list", lset),
    CommandSpec::new("linsert", 5, WRITE | DENYOOM, (1, 1, 1), "list", linsert),
    CommandSpec::new("lrem", 4, WRITE, (1, 1, 1), "list", lrem),
    CommandSpec::new("ltrim", 4, WRITE, (1, 1, 1), "list", ltrim),
    CommandSpec::new("lpos", -3, READONLY, (1, 1, 1), "list", lpos),
    CommandSpec::new("lmove", 5, WRITE | DENYOOM, (1, 2, 1), "list", lmove),
    CommandSpec::new(
        "rpoplpush",
        3,
        WRITE | DENYOOM,
        (1, 2, 1),
        "list",
        rpoplpush,
    ),
    CommandSpec::new("lmpop", -4, WRITE, (0, 0, 0), "list", lmpop),
    CommandSpec::new("blpop", -3, WRITE | BLOCKING, (1, -2, 1), "list", blpop),
    CommandSpec::new("brpop", -3, WRITE | BLOCKING, (1, -2, 1), "list", brpop),
    CommandSpec::new(
        "blmove",
        6,
        WRITE | DENYOOM | BLOCKING,
        (1, 2, 1),
        "list",
        blmove,
    ),
    CommandSpec::new(
        "brpoplpush",
        4,
        WRITE | DENYOOM | BLOCKING,
        (1, 2, 1),
        "list",
        brpoplpush,
    ),
    CommandSpec::new("blmpop", -5, WRITE | BLOCKING, (0, 0, 0), "list", blmpop),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    fn parse(a: &[u8]) -> Option<End> {
        if eq_ic(a, "left") {
            Some(End::Left)
        } else if eq_ic(a, "right") {
            Some(End::Right)
        } else {
            None
        }
    }

    fn pop_cmd(self) -> &'static [u8] {
        match self {
            End::Left => b"LPOP",
            End::Right => b"RPOP",
        }
    }

    fn name(self) -> &'static [u8] {
        match self {
            End::Left => b"LEFT",
            End::Right => b"RIGHT",
        }
    }
}

fn pop_end(items: &mut ChunkList<Bytes>, end: End) -> Option<Bytes> {
    match end {
        End::Left => items.pop_front(),
        End::Right => items.pop_back(),
    }
}

fn push_end(items: &mut ChunkList<Bytes>, end: End, v: Bytes) {
    match end {
        End::Left => items.push_front(v),
        End::Right => items.push_back(v),
    }
}

/// The list at `key`: Ok(None) if missing, Err(WRONGTYPE) if not a list.
fn get_list<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut ChunkList<Bytes>>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::List(l) => Ok(Some(&mut l.items)),
            _ => Err(wrongtype()),
        },
    }
}

/// Whether `key` holds a list (or is missing): Err(WRONGTYPE) otherwise.
fn check_list(ctx: &mut Ctx, key: &[u8]) -> Result<bool, Reply> {
    get_list(ctx, key).map(|l| l.is_some())
}

/// Deletes `key` if its list became empty (Redis never keeps empty lists).
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    if matches!(get_list(ctx, key), Ok(Some(l)) if l.is_empty()) {
        ctx.db().remove(key);
    }
}

// ---- pushes ---------------------------------------------------------------

fn push_generic(ctx: &mut Ctx, args: &[Bytes], end: End, only_existing: bool) -> Reply {
    let key = &args[1];
    let values = &args[2..];
    let len = match get_list(ctx, key) {
        Err(e) => return e,
        Ok(Some(items)) => {
            for v in values {
                push_end(items, end, Bytes::copy_from_slice(v));
            }
            items.len()
        }
        Ok(None) => {
            if only_existing {
                return Reply::Int(0);
            }
            let mut items = ChunkList::new();
            for v in values {
                push_end(&mut items, end, Bytes::copy_from_slice(v));
            }
            let len = items.len();
            ctx.set_value(key, Value::List(Box::new(ListValue { items })));
            len
        }
    };
    ctx.modified(key);
    Reply::Int(len as i64)
}

fn lpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Left, false)
}

fn rpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Right, false)
}

fn lpushx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Left, true)
}

fn rpushx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    push_generic(ctx, args, End::Right, true)
}

// ---- pops -----------------------------------------------------------------

/// A positive count argument, with the message Redis gives for any bad one.
fn positive_count(a: &[u8]) -> Result<i64, Reply> {
    match crate::util::parse_i64(a) {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(Reply::err("ERR value is out of range, must be positive")),
    }
}

/// Pops one element from one end; deletes the key when emptied.
fn pop_one(ctx: &mut Ctx, key: &[u8], end: End) -> Option<Bytes> {
    let items = get_list(ctx, key).ok()??;
    let v = pop_end(items, end)?;
    if items.is_empty() {
        ctx.db().remove(key);
    }
    ctx.modified(key);
    Some(v)
}

/// Pops up to `count` elements from one end; deletes the key when emptied.
fn pop_many(ctx: &mut Ctx, key: &[u8], end: End, count: usize) -> Vec<Reply> {
    let mut out = Vec::new();
    if let Ok(Some(items)) = get_list(ctx, key) {
        let n = count.min(items.len());
        out.reserve_exact(n);
        for _ in 0..n {
            if let Some(v) = pop_end(items, end) {
                out.push(Reply::Bulk(v));
            }
        }
    }
    if !out.is_empty() {
        delete_if_empty(ctx, key);
        ctx.modified(key);
    }
    out
}

fn pop_generic(ctx: &mut Ctx, args: &[Bytes], end: End) -> Reply {
    reply((|| {
        if args.len() > 3 {
            return Err(super::wrong_args(if end == End::Left {
                "lpop"
            } else {
                "rpop"
            }));
        }
        let count = match args.get(2) {
            Some(a) => Some(positive_count(a)?),
            None => None,
        };
        let key = &args[1];
        if !check_list(ctx, key)? {
            return Ok(if count.is_some() {
                Reply::NilArray
            } else {
                Reply::Nil
            });
        }
        match count {
            None => Ok(pop_one(ctx, key, end).map_or(Reply::Nil, Reply::Bulk)),
            Some(n) => Ok(Reply::Array(pop_many(ctx, key, end, n as usize))),
        }
    })())
}

fn lpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop_generic(ctx, args, End::Left)
}

fn rpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    pop_generic(ctx, args, End::Right)
}

// ---- reads ----------------------------------------------------------------

fn llen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_list(ctx, &args[1]) {
        Ok(l) => Reply::Int(l.map_or(0, |l| l.len()) as i64),
        Err(e) => e,
    }
}

/// Converts Redis's (start, stop) range, negatives counting from the end,
/// into an inclusive index range; None when it selects nothing.
fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

fn lrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let start = arg_i64(&args[2])?;
        let stop = arg_i64(&args[3])?;
        let Some(items) = get_list(ctx, &args[1])? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let Some((s, e)) = clamp_range(start, stop, items.len()) else {
            return Ok(Reply::Array(Vec::new()));
        };
        Ok(bulk_array(items.range(s..=e)))
    })())
}

/// An array of bulks, encoded at once (the same bytes in RESP2 and RESP3):
/// one exact-size buffer instead of a reply per element, and no reference
/// count traffic on the elements. LRANGE is a hot path.
fn bulk_array<'a>(items: impl ExactSizeIterator<Item = &'a Bytes> + Clone) -> Reply {
    let n = items.len();
    let size = 16 + items.clone().map(|v| v.len() + 16).sum::<usize>();
    let mut out = BytesMut::with_capacity(size);
    put_header(&mut out, b'*', n);
    for v in items {
        put_bulk(&mut out, v);
    }
    Reply::Raw(out.freeze())
}

/// An index into a list of `len`, negatives from the end; None if outside.
fn list_index(idx: i64, len: usize) -> Option<usize> {
    let i = if idx < 0 { len as i64 + idx } else { idx };
    (i >= 0 && (i as u64) < len as u64).then_some(i as usize)
}

fn lindex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        // The key is looked at before the index is parsed, as in Redis.
        let Some(items) = get_list(ctx, &args[1])? else {
            return Ok(Reply::Nil);
        };
        let idx = arg_i64(&args[2])?;
        Ok(match list_index(idx, items.len()) {
            Some(i) => Reply::Bulk(items[i].clone()),
            None => Reply::Nil,
        })
    })())
}

fn lset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let Some(items) = get_list(ctx, &args[1])? else {
            return Err(no_such_key());
        };
        let idx = arg_i64(&args[2])?;
        let Some(i) = list_index(idx, items.len()) else {
            return Err(Reply::err("ERR index out of range"));
        };
        if let Some(slot) = items.get_mut(i) {
            *slot = Bytes::copy_from_slice(&args[3]);
        }
        ctx.modified(&args[1]);
        Ok(Reply::ok())
    })())
}

fn linsert(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let after = if eq_ic(&args[2], "after") {
            true
        } else if eq_ic(&args[2], "before") {
            false
        } else {
            return Err(syntax_error());
        };
        let Some(items) = get_list(ctx, &args[1])? else {
            return Ok(Reply::Int(0));
        };
        let Some(pos) = items.iter().position(|v| v == &args[3]) else {
            return Ok(Reply::Int(-1));
        };
        let at = if after { pos + 1 } else { pos };
        items.insert(at, Bytes::copy_from_slice(&args[4]));
        let len = items.len();
        ctx.modified(&args[1]);
        Ok(Reply::Int(len as i64))
    })())
}

fn lrem(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let count = arg_i64(&args[2])?;
        let elem = &args[3];
        let Some(items) = get_list(ctx, &args[1])? else {
            return Ok(Reply::Int(0));
        };
        let before = items.len();
        if count == 0 {
            items.retain(|v| v != elem);
        } else {
            let limit = count.unsigned_abs();
            // From the tail: keep the first (matches - limit) matches.
            let mut skip = if count < 0 {
                let matches = items.iter().filter(|v| *v == elem).count() as u64;
                matches.saturating_sub(limit)
            } else {
                0
            };
            let mut removed = 0u64;
            items.retain(|v| {
                if v != elem || removed >= limit {
                    return true;
                }
                if skip > 0 {
                    skip -= 1;
                    return true;
                }
                removed += 1;
                false
            });
        }
        let removed = before - items.len();
        if removed > 0 {
            delete_if_empty(ctx, &args[1]);
            ctx.modified(&args[1]);
        }
        Ok(Reply::Int(removed as i64))
    })())
}

fn ltrim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let start = arg_i64(&args[2])?;
        let stop = arg_i64(&args[3])?;
        let key = &args[1];
        let Some(items) = get_list(ctx, key)? else {
            return Ok(Reply::ok());
        };
        let before = items.len();
        match clamp_range(start, stop, before) {
            Some((s, e)) => {
                items.truncate(e + 1);
                items.drop_front(s);
            }
            None => items.clear(),
        }
        if items.len() != before {
            delete_if_empty(ctx, key);
            ctx.modified(key);
        } else {
            // Redis signals the key even when nothing was trimmed (WATCH
            // sees it), but counts no change.
            let db = ctx.client.db;
            ctx.ex.key_modified(db, key);
        }
        Ok(Reply::ok())
    })())
}

fn lpos(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let mut rank: i64 = 1;
        let mut count: Option<u64> = None;
        let mut maxlen: u64 = 0;
        let mut i = 3;
        while i < args.len() {
            let Some(val) = args.get(i + 1) else {
                return Err(syntax_error());
            };
            if eq_ic(&args[i], "rank") {
                rank = arg_i64(val)?;
                if rank == 0 {
                    return Err(Reply::err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
                }
            } else if eq_ic(&args[i], "count") {
                // Any bad COUNT or MAXLEN gets the option's own message.
                match crate::util::parse_i64(val) {
                    Some(n) if n >= 0 => count = Some(n as u64),
                    _ => return Err(Reply::err("ERR COUNT can't be negative")),
                }
            } else if eq_ic(&args[i], "maxlen") {
                match crate::util::parse_i64(val) {
                    Some(n) if n >= 0 => maxlen = n as u64,
                    _ => return Err(Reply::err("ERR MAXLEN can't be negative")),
                }
            } else {
                return Err(syntax_error());
            }
            i += 2;
        }
        let empty = || {
            if count.is_some() {
                Reply::Array(Vec::new())
            } else {
                Reply::Nil
            }
        };
        let Some(items) = get_list(ctx, &args[1])? else {
            return Ok(empty());
        };
        let elem = &args[2];
        let len = items.len();
        // COUNT 0 means "all matches"; without COUNT only the first counts.
        let want = match count {
            None => 1,
            Some(0) => u64::MAX,
            // Redis negates RANK in a C long: -i64::MIN stays i64::MIN, so
            // every match qualifies and its COUNT test never holds.
            Some(_) if rank == i64::MIN => u64::MAX,
            Some(n) => n,
        };
        let mut skip = if rank == i64::MIN {
            0
        } else {
            rank.unsigned_abs() - 1
        };
        let scan = if maxlen == 0 {
            len
        } else {
            len.min(maxlen as usize)
        };
        let mut found = Vec::new();
        let mut check = |i: usize, v: &Bytes| -> bool {
            if v == elem {
                if skip > 0 {
                    skip -= 1;
                } else {
                    found.push(Reply::Int(i as i64));
                    if found.len() as u64 >= want {
                        return true;
                    }
                }
            }
            false
        };
        if rank > 0 {
            for (i, v) in items.iter().enumerate().take(scan) {
                if check(i, v) {
                    break;
                }
            }
        } else {
            for (i, v) in items.iter().enumerate().rev().take(scan) {
                if check(i, v) {
                    break;
                }
            }
        }
        Ok(match count {
            Some(_) => Reply::Array(found),
            None => found.pop().unwrap_or(Reply::Nil),
        })
    })())
}

// ---- moves ----------------------------------------------------------------

/// LMOVE's body: pops from `src` and pushes onto `dst`. The caller checked
/// that `src` is a non-empty list. Returns the moved element.
fn move_one(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Result<Reply, Reply> {
    // The destination's type is checked before anything is popped.
    check_list(ctx, dst)?;
    let Some(value) = get_list(ctx, src)?.and_then(|l| pop_end(l, from)) else {
        return Ok(Reply::Nil);
    };
    match get_list(ctx, dst)? {
        Some(items) => push_end(items, to, value.clone()),
        None => {
            let items = ChunkList::from(vec![value.clone()]);
            ctx.set_value(dst, Value::List(Box::new(ListValue { items })));
        }
    }
    // Destination first, as Redis signals it: a client blocked on it is
    // served before anything waiting on the source.
    ctx.modified(dst);
    delete_if_empty(ctx, src);
    ctx.modified(src);
    Ok(Reply::Bulk(value))
}

fn lmove_generic(ctx: &mut Ctx, src: &Bytes, dst: &Bytes, from: End, to: End) -> Reply {
    reply((|| {
        match get_list(ctx, src)? {
            Some(l) if !l.is_empty() => {}
            _ => return Ok(Reply::Nil),
        }
        move_one(ctx, src, dst, from, to)
    })())
}

fn lmove(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (Some(from), Some(to)) = (End::parse(&args[3]), End::parse(&args[4])) else {
        return syntax_error();
    };
    lmove_generic(ctx, &args[1], &args[2], from, to)
}

fn rpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    lmove_generic(ctx, &args[1], &args[2], End::Right, End::Left)
}

// ---- LMPOP ----------------------------------------------------------------

struct MpopArgs<'a> {
    keys: &'a [Bytes],
    end: End,
    count: i64,
}

/// Parses `numkeys key... LEFT|RIGHT [COUNT n]` starting at `args[first]`.
fn parse_mpop(args: &[Bytes], first: usize) -> Result<MpopArgs<'_>, Reply> {
    let numkeys = match crate::util::parse_i64(&args[first]) {
        Some(n) if n > 0 => n as u64,
        _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
    };
    let keys_start = first + 1;
    // numkeys keys, then at least the direction.
    if numkeys >= (args.len() - keys_start) as u64 {
        return Err(syntax_error());
    }
    let keys_end = keys_start + numkeys as usize;
    let keys = &args[keys_start..keys_end];
    let end = End::parse(&args[keys_end]).ok_or_else(syntax_error)?;
    let mut count = None;
    let mut i = keys_end + 1;
    while i < args.len() {
        if eq_ic(&args[i], "count") && count.is_none() && i + 1 < args.len() {
            match crate::util::parse_i64(&args[i + 1]) {
                Some(n) if n > 0 => count = Some(n),
                _ => return Err(Reply::err("ERR count should be greater than 0")),
            }
            i += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok(MpopArgs {
        keys,
        end,
        count: count.unwrap_or(1),
    })
}

/// Pops from `key` (a non-empty list) for [B]LMPOP: `[key, [elements]]`,
/// logged as LPOP/RPOP with the count.
fn mpop_from(ctx: &mut Ctx, key: &Bytes, end: End, count: i64) -> Reply {
    let popped = pop_many(ctx, key, end, count as usize);
    ctx.propagate_as(vec![vec![
        Bytes::from_static(end.pop_cmd()),
        key.clone(),
        Bytes::from(count.to_string()),
    ]]);
    Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Array(popped)])
}

/// The first key of `keys` holding a non-empty list; WRONGTYPE stops the
/// search as in Redis.
fn first_nonempty<'a>(ctx: &mut Ctx, keys: &'a [Bytes]) -> Result<Option<&'a Bytes>, Reply> {
    for k in keys {
        if let Some(l) = get_list(ctx, k)? {
            if !l.is_empty() {
                return Ok(Some(k));
            }
        }
    }
    Ok(None)
}

fn lmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let p = parse_mpop(args, 1)?;
        Ok(match first_nonempty(ctx, p.keys)? {
            Some(k) => mpop_from(ctx, k, p.end, p.count),
            None => Reply::NilArray,
        })
    })())
}

// ---- blocking -------------------------------------------------------------

/// Parses a blocking timeout in seconds (a float, as C's strtold reads it)
/// into milliseconds, 0 meaning forever; Redis's errors otherwise.
pub fn parse_timeout(a: &[u8]) -> Result<u64, Reply> {
    let Some(secs) = parse_f64(a).or_else(|| parse_hex_float(a)) else {
        // Redis reads a long double: 1e400 is one, too big for a double and
        // for the conversion below alike.
        return Err(match crate::longdouble::add(b"0", a) {
            Ok(_) => Reply::err("ERR timeout is negative"),
            Err(_) => Reply::err("ERR timeout is not a float or out of range"),
        });
    };
    let ms = (secs * 1000.0).ceil();
    // Redis converts to a C long long: out-of-range values (infinity
    // included) come out as LLONG_MIN there, which it then calls negative.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if !(-LIMIT..LIMIT).contains(&ms) || ms < 0.0 {
        return Err(Reply::err("ERR timeout is negative"));
    }
    Ok(ms as u64)
}

/// strtold also reads hexadecimal floats ("0x1p3", "0x10"); so does Redis.
fn parse_hex_float(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?;
    let (neg, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let s = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    let (mant, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    Some(if neg { -v } else { v })
}

/// BLPOP / BRPOP.
fn bpop_generic(ctx: &mut Ctx, args: &[Bytes], end: End) -> Reply {
    reply((|| {
        let keys = &args[1..args.len() - 1];
        let timeout = parse_timeout(&args[args.len() - 1])?;
        let served = if let Some(k) = ctx.serving_key() {
            // Re-run for a ready key: only that key, and only if a list.
            match get_list(ctx, &k) {
                Ok(Some(l)) if !l.is_empty() => keys.iter().find(|x| **x == k),
                _ => None,
            }
        } else {
            first_nonempty(ctx, keys)?
        };
        if let Some(k) = served {
            let v = pop_one(ctx, k, end).map_or(Reply::Nil, Reply::Bulk);
            ctx.propagate_as(vec![vec![Bytes::from_static(end.pop_cmd()), k.clone()]]);
            return Ok(Reply::Array(vec![Reply::Bulk(k.clone()), v]));
        }
        Ok(ctx.block(keys.to_vec(), timeout, args, Reply::NilArray))
    })())
}

fn blpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bpop_generic(ctx, args, End::Left)
}

fn brpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bpop_generic(ctx, args, End::Right)
}

/// BLMOVE / BRPOPLPUSH.
fn bmove_generic(ctx: &mut Ctx, args: &[Bytes], from: End, to: End, timeout: &[u8]) -> Reply {
    reply((|| {
        let timeout = parse_timeout(timeout)?;
        let (src, dst) = (&args[1], &args[2]);
        let serving = ctx.serving_key().is_some();
        let ready = match get_list(ctx, src) {
            Ok(Some(l)) => !l.is_empty(),
            Ok(None) => false,
            // Waiting: a source of another type is just not ready yet.
            Err(_) if serving => false,
            Err(e) => return Err(e),
        };
        if ready {
            let r = move_one(ctx, src, dst, from, to)?;
            ctx.propagate_as(vec![vec![
                Bytes::from_static(b"LMOVE"),
                src.clone(),
                dst.clone(),
                Bytes::from_static(from.name()),
                Bytes::from_static(to.name()),
            ]]);
            return Ok(r);
        }
        // Inside MULTI Redis answers a null bulk here, but a null array when
        // a real block times out.
        if ctx.ex.in_exec && !serving {
            return Ok(Reply::Nil);
        }
        Ok(ctx.block(vec![src.clone()], timeout, args, Reply::NilArray))
    })())
}

fn blmove(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let (Some(from), Some(to)) = (End::parse(&args[3]), End::parse(&args[4])) else {
        return syntax_error();
    };
    bmove_generic(ctx, args, from, to, &args[5])
}

fn brpoplpush(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    bmove_generic(ctx, args, End::Right, End::Left, &args[3])
}

fn blmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let p = parse_mpop(args, 2)?;
        let timeout = parse_timeout(&args[1])?;
        let served = if let Some(k) = ctx.serving_key() {
            match get_list(ctx, &k) {
                Ok(Some(l)) if !l.is_empty() => p.keys.iter().find(|x| **x == k),
                _ => None,
            }
        } else {
            first_nonempty(ctx, p.keys)?
        };
        if let Some(k) = served {
            return Ok(mpop_from(ctx, k, p.end, p.count));
        }
        Ok(ctx.block(p.keys.to_vec(), timeout, args, Reply::NilArray))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some((0, 2)));
        assert_eq!(clamp_range(-100, 100, 3), Some((0, 2)));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(3, 5, 3), None);
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 3), Some((0, 2)));
        assert_eq!(clamp_range(0, 0, 0), None);
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(b"0").unwrap(), 0);
        assert_eq!(parse_timeout(b"1.5").unwrap(), 1500);
        assert_eq!(parse_timeout(b"1e-10").unwrap(), 1);
        assert_eq!(parse_timeout(b"0x10").unwrap(), 16000);
        assert!(parse_timeout(b"-1").is_err());
        assert!(parse_timeout(b"inf").is_err());
        assert!(parse_timeout(b"1e300").is_err());
        assert_eq!(
            parse_timeout(b"1e400"),
            Err(Reply::err("ERR timeout is negative"))
        );
        assert_eq!(
            parse_timeout(b"1e5000"),
            Err(Reply::err("ERR timeout is not a float or out of range"))
        );
        assert!(parse_timeout(b"abc").is_err());
        assert!(parse_timeout(b"0x").is_err());
        // Past LLONG_MAX milliseconds Redis sees a negative number.
        assert!(parse_timeout(b"0x7FFFFFFFFFFFFF").is_err());
        assert!(parse_timeout(b"9223372036854").is_ok());
    }
}
