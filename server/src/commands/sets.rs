//! Set commands.
//!
//! A set is a hash set of members plus Redis 7.0's encoding flag: `intset`
//! while every member is an integer (as Redis's string2ll reads it) and there
//! are at most set-max-intset-entries of them, `hashtable` from then on (never
//! back). An intset is sorted, so replies that walk an intset-encoded set
//! (SMEMBERS, SSCAN, the set operations whose result would be an intset)
//! list members in ascending numeric order, as Redis does. Hashtable order
//! is unspecified in Redis too.

use super::flags::*;
use super::hashes::{parse_cursor, parse_scan_opts, scan_reply, HashRange};
use super::{not_integer, reply, syntax_error, wrongtype, CommandSpec, Ctx};
use crate::resp::{encode, Reply};
use crate::util::{eq_ic, glob_match, parse_i64};
use bytes::{Bytes, BytesMut};
use hashbrown::HashSet;
use rand::Rng;
use redoubt_persist::value::SetValue;
use redoubt_persist::Value;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("sadd", -3, WRITE | DENYOOM | FAST, (1, 1, 1), "set", sadd),
    CommandSpec::new("srem", -3, WRITE | FAST, (1, 1, 1), "set", srem),
    CommandSpec::new("scard", 2, READONLY | FAST, (1, 1, 1), "set", scard),
    CommandSpec::new("sismember", 3, READONLY | FAST, (1, 1, 1), "set", sismember),
    CommandSpec::new(
        "smismember",
        -3,
        READONLY | FAST,
        (1, 1, 1),
        "set",
        smismember,
    ),
    CommandSpec::new("smembers", 2, READONLY, (1, 1, 1), "set", smembers),
    CommandSpec::new("spop", -2, WRITE | FAST, (1, 1, 1), "set", spop),
    CommandSpec::new("srandmember", -2, READONLY, (1, 1, 1), "set", srandmember),
    CommandSpec::new("smove", 4, WRITE | FAST, (1, 2, 1), "set", smove),
    CommandSpec::new("sinter", -2, READONLY, (1, -1, 1), "set", sinter),
    CommandSpec::new("sintercard", -3, READONLY, (0, 0, 0), "set", sintercard),
    CommandSpec::new("sunion", -2, READONLY, (1, -1, 1), "set", sunion),
    CommandSpec::new("sdiff", -2, READONLY, (1, -1, 1), "set", sdiff),
    CommandSpec::new(
        "sinterstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        "set",
        sinterstore,
    ),
    CommandSpec::new(
        "sunionstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        "set",
        sunionstore,
    ),
    CommandSpec::new(
        "sdiffstore",
        -3,
        WRITE | DENYOOM,
        (1, -1, 1),
        "set",
        sdiffstore,
    ),
    CommandSpec::new("sscan", -3, READONLY, (1, 1, 1), "set", sscan),
];

/// Whether a member could live in an intset.
fn is_int(m: &[u8]) -> bool {
    parse_i64(m).is_some()
}

/// The set at `key`: Ok(None) if missing, Err(WRONGTYPE) if not a set.
fn get_set<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut SetValue>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Set(s) => Ok(Some(s)),
            _ => Err(wrongtype()),
        },
    }
}

/// Adds one member (copied); true when it was new. Promotes to hashtable
/// as Redis would on this insertion.
fn add_member(s: &mut SetValue, m: &[u8], max_intset: u64) -> bool {
    let before = s.members.len();
    s.members.get_or_insert_with(m, Bytes::copy_from_slice);
    if s.members.len() == before {
        return false;
    }
    if !s.hashtable && (s.members.len() as u64 > max_intset || !is_int(m)) {
        s.hashtable = true;
    }
    true
}

/// A set built from scratch (a *STORE result): what Redis ends up with when
/// it adds the members one by one to a new intset.
fn build_set(members: Vec<Bytes>, max_intset: u64) -> SetValue {
    let hashtable = members.len() as u64 > max_intset || !members.iter().all(|m| is_int(m));
    SetValue {
        members: members.into_iter().collect(),
        hashtable,
    }
}

/// Sorts members numerically when they would sit in an intset (every one
/// an integer, few enough), which is the order Redis lists them in.
fn intset_order(members: &mut [Bytes], max_intset: u64) {
    if members.len() as u64 > max_intset {
        return;
    }
    let mut keyed: Vec<(i64, Bytes)> = Vec::with_capacity(members.len());
    for m in members.iter() {
        match parse_i64(m) {
            Some(v) => keyed.push((v, m.clone())),
            None => return,
        }
    }
    keyed.sort_unstable_by_key(|(v, _)| *v);
    for (slot, (_, m)) in members.iter_mut().zip(keyed) {
        *slot = m;
    }
}

/// Every member, in the order Redis would list them.
fn all_members(s: &SetValue) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = s.members.iter().cloned().collect();
    if !s.hashtable {
        intset_order(&mut out, u64::MAX);
    }
    out
}

fn bulks(v: Vec<Bytes>) -> Vec<Reply> {
    v.into_iter().map(Reply::Bulk).collect()
}

/// A random member (None when empty). O(n) in the worst case: the hash set
/// offers no random access.
fn random_member(s: &SetValue) -> Option<Bytes> {
    if s.members.is_empty() {
        return None;
    }
    let i = rand::thread_rng().gen_range(0..s.members.len());
    s.members.iter().nth(i).cloned()
}

fn sadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let max = ctx.ex.config.set_max_intset_entries;
        let added = ctx.with_or_create(&args[1], |s| {
            let mut added = 0;
            for m in &args[2..] {
                if add_member(s, m, max) {
                    added += 1;
                }
            }
            added
        })?;
        if added > 0 {
            ctx.modified(&args[1]);
        }
        Ok(Reply::Int(added))
    })())
}

/// Deletes `key` if its set became empty.
fn delete_if_empty(ctx: &mut Ctx, key: &[u8]) {
    if matches!(get_set(ctx, key), Ok(Some(s)) if s.members.is_empty()) {
        ctx.db().remove(key);
    }
}

fn srem(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let Some(s) = get_set(ctx, &args[1])? else {
            return Ok(Reply::Int(0));
        };
        let removed = args[2..]
            .iter()
            .filter(|m| s.members.remove(&m[..]))
            .count();
        if removed > 0 {
            delete_if_empty(ctx, &args[1]);
            ctx.modified(&args[1]);
        }
        Ok(Reply::Int(removed as i64))
    })())
}

fn scard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_set(ctx, &args[1]) {
        Ok(s) => Reply::Int(s.map_or(0, |s| s.members.len()) as i64),
        Err(e) => e,
    }
}

fn sismember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_set(ctx, &args[1]) {
        Ok(s) => Reply::Int(s.is_some_and(|s| s.members.contains(&args[2][..])) as i64),
        Err(e) => e,
    }
}

fn smismember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_set(ctx, &args[1]) {
        Ok(s) => Reply::Array(
            args[2..]
                .iter()
                .map(|m| Reply::Int(s.as_ref().is_some_and(|s| s.members.contains(&m[..])) as i64))
                .collect(),
        ),
        Err(e) => e,
    }
}

fn smembers(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_set(ctx, &args[1]) {
        Ok(Some(s)) => Reply::Set(bulks(all_members(s))),
        Ok(None) => Reply::Set(Vec::new()),
        Err(e) => e,
    }
}

/// Members removed by SPOP are logged as SREMs of at most this many.
const SREM_BATCH: usize = 1024;

fn spop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        if args.len() > 3 {
            return Err(syntax_error());
        }
        let Some(count) = args.get(2) else {
            let Some(s) = get_set(ctx, key)? else {
                return Ok(Reply::Nil);
            };
            let Some(m) = random_member(s) else {
                return Ok(Reply::Nil);
            };
            s.members.remove(&m);
            delete_if_empty(ctx, key);
            ctx.modified(key);
            ctx.propagate_as(vec![vec![
                Bytes::from_static(b"SREM"),
                key.clone(),
                m.clone(),
            ]]);
            return Ok(Reply::Bulk(m));
        };
        let count = match parse_i64(count) {
            Some(n) if n >= 0 => n as u64,
            _ => return Err(Reply::err("ERR value is out of range, must be positive")),
        };
        let Some(s) = get_set(ctx, key)? else {
            return Ok(Reply::Set(Vec::new()));
        };
        if count == 0 {
            return Ok(Reply::Set(Vec::new()));
        }
        let len = s.members.len();
        if count >= len as u64 {
            // Everything goes: logged as a DEL, as Redis does.
            let all = all_members(s);
            ctx.db().remove(key);
            ctx.modified(key);
            ctx.propagate_as(vec![vec![Bytes::from_static(b"DEL"), key.clone()]]);
            return Ok(Reply::Set(bulks(all)));
        }
        // count < len, so the sample is bounded by the set's size.
        let mut idx =
            rand::seq::index::sample(&mut rand::thread_rng(), len, count as usize).into_vec();
        idx.sort_unstable();
        let mut picked = Vec::with_capacity(idx.len());
        let mut want = idx.into_iter().peekable();
        for (i, m) in s.members.iter().enumerate() {
            match want.peek() {
                Some(&w) if w == i => {
                    picked.push(m.clone());
                    want.next();
                }
                Some(_) => {}
                None => break,
            }
        }
        for m in &picked {
            s.members.remove(m);
        }
        ctx.modified(key);
        let cmds = picked
            .chunks(SREM_BATCH)
            .map(|chunk| {
                let mut c = Vec::with_capacity(chunk.len() + 2);
                c.push(Bytes::from_static(b"SREM"));
                c.push(key.clone());
                c.extend(chunk.iter().cloned());
                c
            })
            .collect();
        ctx.propagate_as(cmds);
        Ok(Reply::Set(bulks(picked)))
    })())
}

fn srandmember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let proto = ctx.client.resp;
        if args.len() > 3 {
            return Err(syntax_error());
        }
        let Some(count) = args.get(2) else {
            return Ok(
                match get_set(ctx, &args[1])?.and_then(|s| random_member(s)) {
                    Some(m) => Reply::Bulk(m),
                    None => Reply::Nil,
                },
            );
        };
        let count = parse_i64(count).ok_or_else(not_integer)?;
        if count == i64::MIN {
            return Err(Reply::err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
        }
        let Some(s) = get_set(ctx, &args[1])? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let len = s.members.len();
        if count == 0 || len == 0 {
            return Ok(Reply::Array(Vec::new()));
        }
        if count < 0 {
            // Repetitions allowed, so the reply may dwarf the set: index the
            // members once, then encode picks as they are made (about what
            // Redis buffers) instead of holding a reply per pick.
            let n = count.unsigned_abs();
            let members: Vec<&Bytes> = s.members.iter().collect();
            let mut out = BytesMut::new();
            out.extend_from_slice(format!("*{n}\r\n").as_bytes());
            let mut rng = rand::thread_rng();
            for _ in 0..n {
                let m = members[rng.gen_range(0..members.len())];
                encode(&Reply::Bulk(m.clone()), proto, &mut out);
            }
            return Ok(Reply::Raw(out.freeze()));
        }
        if count as u64 >= len as u64 {
            return Ok(Reply::Array(bulks(all_members(s))));
        }
        let idx = rand::seq::index::sample(&mut rand::thread_rng(), len, count as usize);
        let mut idx = idx.into_vec();
        idx.sort_unstable();
        let mut want = idx.into_iter().peekable();
        let mut out = Vec::with_capacity(count as usize);
        for (i, m) in s.members.iter().enumerate() {
            match want.peek() {
                Some(&w) if w == i => {
                    out.push(Reply::Bulk(m.clone()));
                    want.next();
                }
                Some(_) => {}
                None => break,
            }
        }
        Ok(Reply::Array(out))
    })())
}

fn smove(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let (src, dst, m) = (&args[1], &args[2], &args[3]);
        let max = ctx.ex.config.set_max_intset_entries;
        if get_set(ctx, src)?.is_none() {
            return Ok(Reply::Int(0));
        }
        get_set(ctx, dst)?;
        if src == dst {
            let present = get_set(ctx, src)?.is_some_and(|s| s.members.contains(&m[..]));
            return Ok(Reply::Int(present as i64));
        }
        let removed = get_set(ctx, src)?.is_some_and(|s| s.members.remove(&m[..]));
        if !removed {
            return Ok(Reply::Int(0));
        }
        delete_if_empty(ctx, src);
        ctx.modified(src);
        ctx.with_or_create(dst, |d| add_member(d, m, max))?;
        ctx.modified(dst);
        Ok(Reply::Int(1))
    })())
}

// ---- set algebra ----------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// Looks up every key (expiring lazily, checking types: WRONGTYPE on any
/// key fails the command even after a missing one, as in Redis), then runs
/// `f` over the sets, None standing for a missing key.
fn with_sets<T>(
    ctx: &mut Ctx,
    keys: &[Bytes],
    f: impl FnOnce(&[Option<&SetValue>]) -> T,
) -> Result<T, Reply> {
    for k in keys {
        get_set(ctx, k)?;
    }
    let db = &ctx.ex.ks.dbs[ctx.client.db];
    let sets: Vec<Option<&SetValue>> = keys
        .iter()
        .map(|k| match db.peek(k).map(|e| &e.value) {
            Some(Value::Set(s)) => Some(&**s),
            _ => None,
        })
        .collect();
    Ok(f(&sets))
}

/// The members of the intersection, walking the smallest set; stops after
/// `limit` members (0 = no limit).
fn inter(sets: &[Option<&SetValue>], limit: usize) -> Vec<Bytes> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&SetValue>>>() else {
        return Vec::new();
    };
    sets.sort_by_key(|s| s.members.len());
    let Some((first, rest)) = sets.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for m in &first.members {
        if rest.iter().all(|s| s.members.contains(m)) {
            out.push(m.clone());
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

fn set_op(sets: &[Option<&SetValue>], op: Op) -> Vec<Bytes> {
    match op {
        Op::Inter => inter(sets, 0),
        Op::Union => {
            let mut seen: HashSet<&Bytes> = HashSet::new();
            let mut out = Vec::new();
            for s in sets.iter().flatten() {
                for m in &s.members {
                    if seen.insert(m) {
                        out.push(m.clone());
                    }
                }
            }
            out
        }
        Op::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Vec::new();
            };
            let rest = &sets[1..];
            first
                .members
                .iter()
                .filter(|m| !rest.iter().flatten().any(|s| s.members.contains(*m)))
                .cloned()
                .collect()
        }
    }
}

fn set_op_reply(ctx: &mut Ctx, keys: &[Bytes], op: Op) -> Reply {
    let max = ctx.ex.config.set_max_intset_entries;
    reply(with_sets(ctx, keys, |sets| set_op(sets, op)).map(|mut v| {
        intset_order(&mut v, max);
        Reply::Set(bulks(v))
    }))
}

fn set_op_store(ctx: &mut Ctx, args: &[Bytes], op: Op) -> Reply {
    reply((|| {
        let max = ctx.ex.config.set_max_intset_entries;
        let dst = &args[1];
        let result = with_sets(ctx, &args[2..], |sets| set_op(sets, op))?;
        let n = result.len();
        if n == 0 {
            if ctx.lookup(dst).is_some() {
                ctx.db().remove(dst);
                ctx.modified(dst);
            }
        } else {
            ctx.set_value(dst, Value::Set(Box::new(build_set(result, max))));
            ctx.modified(dst);
        }
        Ok(Reply::Int(n as i64))
    })())
}

fn sinter(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_reply(ctx, &args[1..], Op::Inter)
}

fn sunion(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_reply(ctx, &args[1..], Op::Union)
}

fn sdiff(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_reply(ctx, &args[1..], Op::Diff)
}

fn sinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, Op::Inter)
}

fn sunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, Op::Union)
}

fn sdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    set_op_store(ctx, args, Op::Diff)
}

fn sintercard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let numkeys = match parse_i64(&args[1]) {
            Some(n) if n > 0 => n as u64,
            _ => return Err(Reply::err("ERR numkeys should be greater than 0")),
        };
        if numkeys > (args.len() - 2) as u64 {
            return Err(Reply::err(
                "ERR Number of keys can't be greater than number of args",
            ));
        }
        let keys_end = 2 + numkeys as usize;
        let mut limit = 0u64;
        let mut i = keys_end;
        while i < args.len() {
            if eq_ic(&args[i], "limit") && i + 1 < args.len() {
                limit = match parse_i64(&args[i + 1]) {
                    Some(n) if n >= 0 => n as u64,
                    _ => return Err(Reply::err("ERR LIMIT can't be negative")),
                };
                i += 2;
            } else {
                return Err(syntax_error());
            }
        }
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let n = with_sets(ctx, &args[2..keys_end], |sets| inter(sets, limit).len())?;
        Ok(Reply::Int(n as i64))
    })())
}

// ---- SSCAN ----------------------------------------------------------------

/// SSCAN. An intset is returned whole, sorted, with cursor 0, as Redis does.
/// A hashtable set is walked by ranges of member hashes (see [`HashRange`]).
fn sscan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let cursor = parse_cursor(&args[2])?;
        let Some(s) = get_set(ctx, &args[1])? else {
            return Ok(scan_reply(0, Vec::new()));
        };
        let (pattern, count) = parse_scan_opts(&args[3..])?;
        let keep = |m: &Bytes| pattern.as_ref().is_none_or(|p| glob_match(p, m, false));
        if !s.hashtable {
            let mut all = all_members(s);
            all.retain(|m| keep(m));
            return Ok(scan_reply(0, bulks(all)));
        }
        let range = HashRange::new(cursor, count, s.members.len());
        let mut out = Vec::new();
        for m in &s.members {
            if range.contains(m) && keep(m) {
                out.push(Reply::Bulk(m.clone()));
            }
        }
        Ok(scan_reply(range.next_cursor(), out))
    })())
}
