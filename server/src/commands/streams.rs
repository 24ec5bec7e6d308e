//! Stream commands: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XREAD,
//! XREADGROUP, XSETID, XINFO. Consumer-group commands are in
//! `stream_groups.rs`.
//!
//! Trimming follows Redis's node layout (see `redoubt_persist::stream_nodes`)
//! so that `~` trims exactly what Redis 7.0 trims for the same inserts
//! (entry counts and listpack bytes both; XINFO's radix-tree numbers come
//! from the same model). A stream whose layout is unknown (built by a loader
//! that did not record it) is laid out as if its entries had been appended
//! in order, which can differ from Redis after XDEL or exact trims.
//!
//! Blocked XREAD/XREADGROUP clients re-run the command with [`RERUN`] as
//! first argument, the ids resolved at block time and a COUNT, so a woken
//! client sees what Redis would serve it.

use super::flags::*;
use super::stream_groups::{self, serve_group, GroupServe};
use super::{arg_i64, no_such_key, reply, syntax_error, CommandSpec, Ctx};
use crate::resp::{put_bulk, put_header, Reply};
use crate::util::{eq_ic, parse_i64};
use bytes::{BufMut, Bytes, BytesMut};
use redoubt_persist::stream_entries::EntryRef;
use redoubt_persist::value::{Stream, StreamId};
use redoubt_persist::{Value, ValueType};

const G: &str = "stream";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xadd", -5, WRITE | DENYOOM | FAST, (1, 1, 1), G, xadd),
    CommandSpec::new("xlen", 2, READONLY | FAST, (1, 1, 1), G, xlen),
    CommandSpec::new("xrange", -4, READONLY, (1, 1, 1), G, xrange),
    CommandSpec::new("xrevrange", -4, READONLY, (1, 1, 1), G, xrevrange),
    CommandSpec::new("xdel", -3, WRITE | FAST, (1, 1, 1), G, xdel),
    CommandSpec::new("xtrim", -4, WRITE, (1, 1, 1), G, xtrim),
    // Keys follow STREAMS (movable keys).
    CommandSpec::new("xread", -4, READONLY | BLOCKING, (0, 0, 0), G, xread),
    CommandSpec::new("xreadgroup", -7, WRITE | BLOCKING, (0, 0, 0), G, xreadgroup),
    CommandSpec::new("xsetid", -3, WRITE | DENYOOM | FAST, (1, 1, 1), G, xsetid),
    CommandSpec::new("xinfo", -2, READONLY, (2, 2, 1), G, xinfo),
];

// ---- ids ----------------------------------------------------------------------

pub fn invalid_id() -> Reply {
    Reply::err("ERR Invalid stream ID specified as stream command argument")
}

/// Redis's string2ull: a strict integer first, else what strtoull accepts
/// whole (leading spaces, '+', leading zeros; a '-' wraps around).
fn string2ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = parse_i64(s) {
        return (v >= 0).then_some(v as u64);
    }
    let start = s
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    let mut t = &s[start..];
    let mut neg = false;
    if let Some(&c) = t.first() {
        if c == b'+' || c == b'-' {
            neg = c == b'-';
            t = &t[1..];
        }
    }
    if t.is_empty() || !t.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in t {
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Parses an id. `missing_seq` fills in a bare `ms`; `strict` refuses `-`
/// and `+`; `allow_auto_seq` accepts `ms-*` (XADD). Returns the id and
/// whether the sequence was given.
pub fn parse_id_full(
    a: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_auto_seq: bool,
) -> Result<(StreamId, bool), Reply> {
    if a.len() > 127 {
        return Err(invalid_id());
    }
    if a == b"-" || a == b"+" {
        if strict {
            return Err(invalid_id());
        }
        return Ok((
            if a == b"-" {
                StreamId::MIN
            } else {
                StreamId::MAX
            },
            true,
        ));
    }
    match a.iter().position(|&c| c == b'-') {
        Some(dash) => {
            let ms = string2ull(&a[..dash]).ok_or_else(invalid_id)?;
            let rest = &a[dash + 1..];
            if allow_auto_seq && rest == b"*" {
                return Ok((StreamId::new(ms, 0), false));
            }
            let seq = string2ull(rest).ok_or_else(invalid_id)?;
            Ok((StreamId::new(ms, seq), true))
        }
        None => {
            let ms = string2ull(a).ok_or_else(invalid_id)?;
            Ok((StreamId::new(ms, missing_seq), true))
        }
    }
}

pub fn parse_id(a: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_full(a, missing_seq, false, false).map(|x| x.0)
}

pub fn parse_strict_id(a: &[u8]) -> Result<StreamId, Reply> {
    parse_id_full(a, 0, true, false).map(|x| x.0)
}

fn incr_id(id: StreamId) -> Option<StreamId> {
    if id.seq == u64::MAX {
        if id.ms == u64::MAX {
            None
        } else {
            Some(StreamId::new(id.ms + 1, 0))
        }
    } else {
        Some(StreamId::new(id.ms, id.seq + 1))
    }
}

fn decr_id(id: StreamId) -> Option<StreamId> {
    if id.seq == 0 {
        if id.ms == 0 {
            None
        } else {
            Some(StreamId::new(id.ms - 1, u64::MAX))
        }
    } else {
        Some(StreamId::new(id.ms, id.seq - 1))
    }
}

/// Parses a range bound, where `(` makes it exclusive.
pub fn parse_interval(a: &[u8], missing_seq: u64, is_start: bool) -> Result<StreamId, Reply> {
    if a.len() > 1 && a[0] == b'(' {
        let id = parse_id_full(&a[1..], missing_seq, true, false)?.0;
        let moved = if is_start { incr_id(id) } else { decr_id(id) };
        moved.ok_or_else(|| {
            Reply::err(if is_start {
                "ERR invalid start ID for the interval"
            } else {
                "ERR invalid end ID for the interval"
            })
        })
    } else {
        parse_id(a, missing_seq)
    }
}

pub fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id_arg(id))
}

/// `ms-seq` as one exact-size allocation. Every XADD replies with its id
/// and logs it, so this avoids `fmt` and a growing `String`.
pub fn id_arg(id: StreamId) -> Bytes {
    // Two u64s of at most 20 digits each and the dash.
    let mut buf = [0u8; 41];
    let mut at = push_digits_back(&mut buf, 41, id.seq);
    at -= 1;
    buf[at] = b'-';
    at = push_digits_back(&mut buf, at, id.ms);
    Bytes::copy_from_slice(&buf[at..])
}

/// The decimal digits of `n` as one exact-size allocation.
fn u64_arg(n: u64) -> Bytes {
    let mut buf = [0u8; 20];
    let at = push_digits_back(&mut buf, 20, n);
    Bytes::copy_from_slice(&buf[at..])
}

/// Writes the decimal digits of `n` so they end just before `end`; returns
/// where they start. The caller leaves room for 20 digits.
fn push_digits_back(buf: &mut [u8], mut end: usize, mut n: u64) -> usize {
    loop {
        end -= 1;
        buf[end] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return end;
        }
    }
}

/// One entry as `[id, [field, value, ...]]`, encoded at once (the same
/// bytes in RESP2 and RESP3) from the packed entry: one buffer per reply
/// instead of a reply and a string per field and value.
pub fn entry_reply(e: EntryRef<'_>) -> Reply {
    entries_reply(std::iter::once(e)).single()
}

/// Entries encoded as an array at once, or as one entry (see [`Encoded`]).
pub fn entries_reply<'a>(entries: impl Iterator<Item = EntryRef<'a>>) -> Encoded {
    let entries: Vec<EntryRef<'a>> = entries.collect();
    let size = 16
        + entries
            .iter()
            .map(|e| {
                64 + e
                    .fields()
                    .map(|(f, v)| f.len() + v.len() + 32)
                    .sum::<usize>()
            })
            .sum::<usize>();
    let mut out = BytesMut::with_capacity(size);
    put_header(&mut out, b'*', entries.len());
    let body = out.len();
    for e in &entries {
        put_entry(&mut out, e);
    }
    Encoded { out, body }
}

/// An encoded array of entries; `single` gives its only element instead.
pub struct Encoded {
    out: BytesMut,
    /// Where the first entry starts (after the array header).
    body: usize,
}

impl Encoded {
    pub fn array(self) -> Reply {
        Reply::Raw(self.out.freeze())
    }

    pub fn single(self) -> Reply {
        Reply::Raw(self.out.freeze().slice(self.body..))
    }
}

fn put_entry(out: &mut BytesMut, e: &EntryRef<'_>) {
    let mut buf = [0u8; 41];
    let mut at = push_digits_back(&mut buf, 41, e.id.seq);
    at -= 1;
    buf[at] = b'-';
    at = push_digits_back(&mut buf, at, e.id.ms);
    out.put_slice(b"*2\r\n");
    put_bulk(out, &buf[at..]);
    put_header(out, b'*', 2 * e.len());
    for (f, v) in e.fields() {
        put_bulk(out, f);
        put_bulk(out, v);
    }
}

/// The stream at `key`: Ok(None) when missing, Err(WRONGTYPE) otherwise.
pub fn stream_mut<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut Stream>, Reply> {
    Ok(match ctx.lookup_typed(key, ValueType::Stream)? {
        Some(e) => match &mut e.value {
            Value::Stream(s) => Some(&mut **s),
            _ => None,
        },
        None => None,
    })
}

fn node_limits(ctx: &Ctx) -> (u64, u64) {
    let c = &ctx.ex.config;
    (c.stream_node_max_bytes, c.stream_node_max_entries)
}

// ---- trimming --------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Strategy {
    None,
    MaxLen(u64),
    MinId(StreamId),
}

#[derive(Debug, Clone)]
struct TrimArgs {
    strategy: Strategy,
    approx: bool,
    /// Most entries one trim may remove (0 = no limit).
    limit: u64,
    nomkstream: bool,
    /// XADD: index of the id argument, whether an id was given and whether
    /// its sequence was.
    id_at: usize,
    id: Option<(StreamId, bool)>,
}

/// Parses XADD's or XTRIM's options starting at `i`, as Redis does.
fn parse_trim_args(ctx: &Ctx, args: &[Bytes], mut i: usize, xadd: bool) -> Result<TrimArgs, Reply> {
    let mut t = TrimArgs {
        strategy: Strategy::None,
        approx: false,
        limit: 0,
        nomkstream: false,
        id_at: 0,
        id: None,
    };
    let mut limit_given = false;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if xadd && a.as_ref() == b"*" {
            break;
        } else if (eq_ic(a, "maxlen") || eq_ic(a, "minid")) && more > 0 {
            let maxlen = eq_ic(a, "maxlen");
            if t.strategy != Strategy::None {
                return Err(Reply::err(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            t.approx = false;
            let next = &args[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            let v = &args[i + 1];
            t.strategy = if maxlen {
                let n = arg_i64(v)?;
                if n < 0 {
                    return Err(Reply::err("ERR The MAXLEN argument must be >= 0."));
                }
                Strategy::MaxLen(n as u64)
            } else {
                Strategy::MinId(parse_strict_id(v)?)
            };
            i += 2;
            continue;
        } else if eq_ic(a, "limit") && more > 0 {
            let n = arg_i64(&args[i + 1])?;
            if n < 0 {
                return Err(Reply::err("ERR The LIMIT argument must be >= 0."));
            }
            t.limit = n as u64;
            limit_given = true;
            i += 2;
            continue;
        } else if xadd && eq_ic(a, "nomkstream") {
            t.nomkstream = true;
        } else if xadd {
            t.id = Some(parse_id_full(a, 0, true, true)?);
            break;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    t.id_at = i;
    if t.limit != 0 && t.strategy == Strategy::None {
        return Err(Reply::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && t.strategy == Strategy::None {
        return Err(Reply::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !t.approx {
            return Err(Reply::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if t.approx {
        t.limit = 100u64.saturating_mul(ctx.ex.config.stream_node_max_entries);
        if t.limit == 0 || t.limit > 1 << 30 {
            t.limit = 10_000;
        }
    } else {
        t.limit = 0;
    }
    Ok(t)
}

/// Trims as Redis's streamTrim does: whole nodes from the head while they
/// fit the condition; then, unless approximate, entries inside the next
/// node. Returns how many entries were removed.
fn trim(s: &mut Stream, t: &TrimArgs, limits: (u64, u64)) -> u64 {
    if t.strategy == Strategy::None {
        return 0;
    }
    s.nodes.sync(&s.entries, limits.0, limits.1);
    let mut deleted = 0u64;
    loop {
        if let Strategy::MaxLen(m) = t.strategy {
            if s.len() as u64 <= m {
                break;
            }
        }
        let Some(front) = s.nodes.nodes.front() else {
            break;
        };
        let entries = front.count;
        if t.limit != 0 && deleted + entries > t.limit {
            break;
        }
        let remove = match t.strategy {
            Strategy::MaxLen(m) => s.len() as u64 - entries >= m,
            Strategy::MinId(id) => front.last < id,
            Strategy::None => false,
        };
        if remove {
            deleted += drop_front_node(s);
            continue;
        }
        if t.approx {
            break;
        }
        // Inside the first node: entries from the head while over the cap
        // or below the minimum id, at most the node's.
        let k = match t.strategy {
            Strategy::MaxLen(m) => {
                let over = (s.len() as u64).saturating_sub(m).min(entries);
                s.entries.remove_first_while(over as usize, |_| true)
            }
            Strategy::MinId(min) => s
                .entries
                .remove_first_while(entries as usize, |id| id < min),
            Strategy::None => 0,
        } as u64;
        s.nodes.delete_in_front(k);
        deleted += k;
        break;
    }
    // Only a deletion moves the first entry (as in Redis); an XADD whose
    // cap is not reached skips the walk down the tree's left edge.
    if deleted > 0 {
        s.first_id = s.entries.first_id().unwrap_or(StreamId::MIN);
    }
    deleted
}

/// Removes the first node and its entries: those before the second node's
/// master id (every id in a node is at least its master). Past a `MAXLEN ~`
/// cap, every 100th XADD does this; the packed entries drop whole chunks
/// and cut into at most one. Returns how many entries went.
fn drop_front_node(s: &mut Stream) -> u64 {
    let gone = match s.nodes.nodes.get(1) {
        Some(next) => s.entries.remove_before(next.master),
        None => {
            let n = s.entries.len();
            s.entries.clear();
            n
        }
    };
    s.nodes.pop_front();
    gone as u64
}

/// Rewrites an approximate trim as the exact one it turned out to be, so a
/// replica or AOF replay trims the same entries.
fn exact_trim_args(s: &Stream, t: &TrimArgs) -> Vec<Bytes> {
    match t.strategy {
        Strategy::MaxLen(_) => vec![
            Bytes::from_static(b"MAXLEN"),
            Bytes::from_static(b"="),
            u64_arg(s.len() as u64),
        ],
        Strategy::MinId(min) => {
            let first = s.entries.first_id().unwrap_or(min);
            vec![
                Bytes::from_static(b"MINID"),
                Bytes::from_static(b"="),
                id_arg(first),
            ]
        }
        Strategy::None => Vec::new(),
    }
}

// ---- XADD / XLEN / XRANGE / XDEL / XTRIM -------------------------------------------

fn xadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xadd_inner(ctx, args))
}

fn xadd_inner(ctx: &mut Ctx, args: &[Bytes]) -> Result<Reply, Reply> {
    let key = &args[1];
    let t = parse_trim_args(ctx, args, 2, true)?;
    let rest = args.len() - t.id_at;
    if rest < 3 || rest & 1 == 0 {
        return Err(super::wrong_args("xadd"));
    }
    if let Some((id, true)) = t.id {
        if id == StreamId::MIN {
            return Err(Reply::err(
                "ERR The ID specified in XADD must be greater than 0-0",
            ));
        }
    }
    let limits = node_limits(ctx);
    let now = ctx.now;
    // One lookup for an existing stream: the entry is added where it lies.
    // A new stream is built aside and inserted once the entry is in it, so
    // a refused id creates no key.
    let added = match stream_mut(ctx, key)? {
        Some(s) => Some(add_entry(s, &t, args, now, limits)?),
        None => None,
    };
    let (id, rewrite_trim) = match added {
        Some(added) => added,
        None if t.nomkstream => return Ok(Reply::Nil),
        None => {
            let mut s = Box::<Stream>::default();
            let added = add_entry(&mut s, &t, args, now, limits)?;
            ctx.db().insert(key, Value::Stream(s), 0);
            added
        }
    };
    let id_bytes = id_arg(id);
    ctx.modified(key);
    if ctx.logs_effects() && (rewrite_trim.is_some() || !matches!(t.id, Some((_, true)))) {
        // XADD key [NOMKSTREAM] [strategy = n] id field value ...: sized
        // once, as this runs for every XADD with an automatic id.
        let mut cmd = Vec::with_capacity(6 + args.len() - t.id_at);
        cmd.extend([Bytes::from_static(b"XADD"), key.clone()]);
        if t.nomkstream {
            cmd.push(Bytes::from_static(b"NOMKSTREAM"));
        }
        match rewrite_trim {
            Some(tr) => cmd.extend(tr),
            None => match t.strategy {
                Strategy::MaxLen(n) => cmd.extend([
                    Bytes::from_static(b"MAXLEN"),
                    Bytes::from_static(b"="),
                    u64_arg(n),
                ]),
                Strategy::MinId(m) => cmd.extend([
                    Bytes::from_static(b"MINID"),
                    Bytes::from_static(b"="),
                    id_arg(m),
                ]),
                Strategy::None => {}
            },
        }
        cmd.push(id_bytes.clone());
        cmd.extend(args[t.id_at + 1..].iter().cloned());
        ctx.propagate_as(vec![cmd]);
    }
    Ok(Reply::Bulk(id_bytes))
}

/// XADD's work on the stream: picks the id, appends the entry, trims.
/// Returns the id and, for an approximate trim, the exact trim it became
/// (the AOF logs that instead).
fn add_entry(
    s: &mut Stream,
    t: &TrimArgs,
    args: &[Bytes],
    now: u64,
    limits: (u64, u64),
) -> Result<(StreamId, Option<Vec<Bytes>>), Reply> {
    let last = s.last_id;
    if last == StreamId::MAX {
        return Err(Reply::err(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let too_small = || {
        Reply::err(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item",
        )
    };
    let id = match t.id {
        Some((id, true)) => id,
        Some((id, false)) => {
            if last.ms == id.ms {
                if last.seq == u64::MAX {
                    // Redis 7.0 reports this overflow with this text.
                    return Err(Reply::err("ERR Elements are too large to be stored"));
                }
                StreamId::new(id.ms, last.seq + 1)
            } else {
                id
            }
        }
        None => {
            if now > last.ms {
                StreamId::new(now, 0)
            } else {
                incr_id(last).ok_or_else(too_small)?
            }
        }
    };
    if id <= last {
        return Err(too_small());
    }
    s.nodes.sync(&s.entries, limits.0, limits.1);
    let fields = args[t.id_at + 1..]
        .chunks_exact(2)
        .map(|p| (&p[0][..], &p[1][..]));
    s.nodes.append(id, fields.clone(), limits.0, limits.1);
    s.entries.insert(id, fields);
    s.last_id = id;
    s.entries_added += 1;
    if s.len() == 1 {
        s.first_id = id;
    }
    trim(s, t, limits);
    // Logged with the id it got and, for `~`, the trim it turned into.
    let rewrite_trim = t.approx.then(|| exact_trim_args(s, t));
    Ok((id, rewrite_trim))
}

fn xlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match stream_mut(ctx, &args[1]) {
        Ok(s) => Reply::Int(s.map_or(0, |s| s.len() as i64)),
        Err(e) => e,
    }
}

fn xrange_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> Result<Reply, Reply> {
    let (sa, ea) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = parse_interval(sa, 0, true)?;
    let end = parse_interval(ea, u64::MAX, false)?;
    let mut count: i64 = -1;
    let mut j = 4;
    while j < args.len() {
        if eq_ic(&args[j], "count") && j + 1 < args.len() {
            count = arg_i64(&args[j + 1])?.max(0);
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    let Some(s) = stream_mut(ctx, &args[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::NilArray);
    }
    let limit = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    if start > end {
        return Ok(Reply::Array(Vec::new()));
    }
    Ok(if rev {
        entries_reply(s.entries.range_rev(start, end).take(limit)).array()
    } else {
        entries_reply(s.entries.range(start, end).take(limit)).array()
    })
}

fn xrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xrange_generic(ctx, args, false))
}

fn xrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xrange_generic(ctx, args, true))
}

fn xdel(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let limits = node_limits(ctx);
        if stream_mut(ctx, key)?.is_none() {
            return Ok(Reply::Int(0));
        }
        // Every id is checked before anything is deleted.
        let ids = args[2..]
            .iter()
            .map(|a| parse_strict_id(a))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(s) = stream_mut(ctx, key)? else {
            return Ok(Reply::Int(0));
        };
        s.nodes.sync(&s.entries, limits.0, limits.1);
        let mut deleted = 0;
        let mut first_gone = false;
        for id in ids {
            if s.entries.remove(id) {
                s.nodes.mark_deleted(id);
                if id == s.first_id {
                    first_gone = true;
                }
                if id > s.max_deleted_id {
                    s.max_deleted_id = id;
                }
                deleted += 1;
            }
        }
        if deleted > 0 {
            if s.is_empty() {
                s.first_id = StreamId::MIN;
            } else if first_gone {
                s.first_id = s.entries.first_id().unwrap_or(StreamId::MIN);
            }
            ctx.modified(key);
        }
        Ok(Reply::Int(deleted))
    })())
}

fn xtrim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        // Redis parses the options before it looks at the key.
        let t = parse_trim_args(ctx, args, 2, false)?;
        let limits = node_limits(ctx);
        let Some(s) = stream_mut(ctx, key)? else {
            return Ok(Reply::Int(0));
        };
        let deleted = trim(s, &t, limits);
        if deleted > 0 {
            let exact = t.approx.then(|| exact_trim_args(s, &t));
            ctx.modified(key);
            if let Some(tr) = exact {
                let mut cmd = vec![Bytes::from_static(b"XTRIM"), key.clone()];
                cmd.extend(tr);
                ctx.propagate_as(vec![cmd]);
            }
        }
        Ok(Reply::Int(deleted as i64))
    })())
}

// ---- XREAD / XREADGROUP ----------------------------------------------------------------

/// Marks the command a blocked client re-runs when woken (second argument),
/// so that it blocks again instead of answering null, and reports a vanished
/// key or group as Redis reports it to a blocked client.
pub const RERUN: &[u8] = b"\x00redoubt-rerun";

/// How many entries a blocked XREAD without COUNT gets at most (Redis's
/// XREAD_BLOCKED_DEFAULT_COUNT).
const BLOCKED_DEFAULT_COUNT: i64 = 1000;

fn xread(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xread_generic(ctx, args, false))
}

fn xreadgroup(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xread_generic(ctx, args, true))
}

fn xread_generic(ctx: &mut Ctx, args: &[Bytes], group_cmd: bool) -> Result<Reply, Reply> {
    let rerun = args.get(1).is_some_and(|a| a.as_ref() == RERUN);
    let owned: Vec<Bytes>;
    let args: &[Bytes] = if rerun {
        owned = std::iter::once(args[0].clone())
            .chain(args[2..].iter().cloned())
            .collect();
        &owned
    } else {
        args
    };
    let mut timeout: Option<u64> = None;
    let mut count: i64 = 0;
    let mut streams_at = 0;
    let mut group: Option<(Bytes, Bytes)> = None;
    let mut noack = false;
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let a = &args[i];
        if eq_ic(a, "block") && more > 0 {
            i += 1;
            let ms = parse_i64(&args[i])
                .ok_or_else(|| Reply::err("ERR timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(Reply::err("ERR timeout is negative"));
            }
            timeout = Some(ms as u64);
        } else if eq_ic(a, "count") && more > 0 {
            i += 1;
            count = arg_i64(&args[i])?.max(0);
        } else if eq_ic(a, "streams") && more > 0 {
            streams_at = i + 1;
            if (args.len() - streams_at) & 1 != 0 {
                // Redis 7.0 words this the same for XREADGROUP.
                return Err(Reply::err(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            break;
        } else if eq_ic(a, "group") && more >= 2 {
            if !group_cmd {
                return Err(Reply::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 2;
        } else if eq_ic(a, "noack") {
            if !group_cmd {
                return Err(Reply::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            noack = true;
        } else {
            return Err(syntax_error());
        }
        i += 1;
    }
    if streams_at == 0 {
        return Err(syntax_error());
    }
    if group_cmd && group.is_none() {
        return Err(Reply::err("ERR Missing GROUP option for XREADGROUP"));
    }
    let n = (args.len() - streams_at) / 2;
    let keys = &args[streams_at..streams_at + n];
    let id_args = &args[streams_at + n..];
    // None stands for ">".
    let mut ids: Vec<Option<StreamId>> = Vec::with_capacity(n);
    for (key, ida) in keys.iter().zip(id_args) {
        // A woken XREAD skips a key that now holds another type (Redis
        // leaves it blocked); XREADGROUP reports the stream as gone.
        let s = match stream_mut(ctx, key) {
            Err(_) if rerun && group.is_none() => None,
            r => r?,
        };
        if let Some((g, _)) = &group {
            let found = s.as_ref().is_some_and(|s| s.groups.contains_key(g));
            if !found {
                if rerun {
                    return Err(match s {
                        None => Reply::err("UNBLOCKED the stream key no longer exists"),
                        Some(_) => Reply::err(
                            "NOGROUP the consumer group this client was blocked on no longer exists",
                        ),
                    });
                }
                return Err(Reply::Error(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(g)
                )));
            }
        }
        if ida.as_ref() == b"$" {
            if group_cmd {
                return Err(Reply::err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."));
            }
            ids.push(Some(s.map_or(StreamId::MIN, |s| s.last_id)));
        } else if ida.as_ref() == b">" {
            if !group_cmd {
                return Err(Reply::err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
            }
            ids.push(None);
        } else {
            ids.push(Some(parse_strict_id(ida)?));
        }
    }
    let resp3 = ctx.client.resp >= 3;
    let mut served: Vec<(Bytes, Reply)> = Vec::new();
    let mut effects: Vec<Vec<Bytes>> = Vec::new();
    for (key, gt) in keys.iter().zip(&ids) {
        match &group {
            None => {
                let Some(s) = stream_mut(ctx, key).ok().flatten() else {
                    continue;
                };
                let gt = gt.unwrap_or(StreamId::MAX);
                let Some(maxid) = s.entries.last_id() else {
                    continue;
                };
                if maxid <= gt {
                    continue;
                }
                let Some(start) = incr_id(gt) else { continue };
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count as usize
                };
                let items = entries_reply(s.entries.range(start, StreamId::MAX).take(limit));
                served.push((key.clone(), items.array()));
            }
            Some((g, consumer)) => {
                let req = GroupServe {
                    key,
                    group: g,
                    consumer,
                    history_from: *gt,
                    count: count as u64,
                    noack,
                };
                if let Some(r) = serve_group(ctx, &req, &mut effects)? {
                    served.push((key.clone(), r));
                }
            }
        }
    }
    if !effects.is_empty() {
        ctx.propagate_as(effects);
    } else if group_cmd {
        ctx.propagate = super::Propagate::Never;
    }
    if !served.is_empty() {
        return Ok(if resp3 {
            Reply::Map(
                served
                    .into_iter()
                    .map(|(k, v)| (Reply::Bulk(k), v))
                    .collect(),
            )
        } else {
            Reply::Array(
                served
                    .into_iter()
                    .map(|(k, v)| Reply::Array(vec![Reply::Bulk(k), v]))
                    .collect(),
            )
        });
    }
    if timeout.is_none() && !rerun {
        return Ok(Reply::NilArray);
    }
    // Blocks on the keys; when woken, the command runs again with the ids
    // resolved now ("$" means "after what is there at block time") and a
    // bounded COUNT.
    let mut again = vec![args[0].clone(), Bytes::from_static(RERUN)];
    if let Some((g, c)) = &group {
        again.extend([Bytes::from_static(b"GROUP"), g.clone(), c.clone()]);
    }
    let c = if count == 0 {
        BLOCKED_DEFAULT_COUNT
    } else {
        count
    };
    again.extend([Bytes::from_static(b"COUNT"), Bytes::from(c.to_string())]);
    if noack {
        again.push(Bytes::from_static(b"NOACK"));
    }
    again.push(Bytes::from_static(b"STREAMS"));
    again.extend(keys.iter().cloned());
    for id in &ids {
        again.push(match id {
            Some(id) => id_arg(*id),
            None => Bytes::from_static(b">"),
        });
    }
    Ok(ctx.block(keys.to_vec(), timeout.unwrap_or(0), &again, Reply::NilArray))
}

// ---- XSETID -----------------------------------------------------------------------------

fn xsetid(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let id = parse_strict_id(&args[2])?;
        let mut entries_added: i64 = -1;
        let mut max_xdel = StreamId::MIN;
        let mut i = 3;
        while i < args.len() {
            let more = args.len() - 1 - i;
            if eq_ic(&args[i], "entriesadded") && more > 0 {
                entries_added = arg_i64(&args[i + 1])?;
                if entries_added < 0 {
                    return Err(Reply::err("ERR entries_added must be positive"));
                }
                i += 2;
            } else if eq_ic(&args[i], "maxdeletedid") && more > 0 {
                max_xdel = parse_strict_id(&args[i + 1])?;
                if id < max_xdel {
                    return Err(Reply::err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
                }
                i += 2;
            } else {
                return Err(syntax_error());
            }
        }
        let key = &args[1];
        let Some(s) = stream_mut(ctx, key)? else {
            return Err(no_such_key());
        };
        if let Some(maxid) = s.entries.last_id() {
            if id < maxid {
                return Err(Reply::err(
                    "ERR The ID specified in XSETID is smaller than the target stream top item",
                ));
            }
            if entries_added != -1 && s.len() as u64 > entries_added as u64 {
                return Err(Reply::err("ERR The entries_added specified in XSETID is smaller than the target stream length"));
            }
        }
        s.last_id = id;
        if entries_added != -1 {
            s.entries_added = entries_added as u64;
        }
        if max_xdel != StreamId::MIN {
            s.max_deleted_id = max_xdel;
        }
        // Redis counts the change but does not signal the key (WATCH stays clean).
        ctx.add_dirty(1);
        Ok(Reply::ok())
    })())
}

// ---- XINFO ------------------------------------------------------------------------------

fn xinfo(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xinfo_inner(ctx, args))
}

fn sub_syntax(sub: &[u8], cmd: &str) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        cmd
    ))
}

fn bs(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

fn xinfo_inner(ctx: &mut Ctx, args: &[Bytes]) -> Result<Reply, Reply> {
    let sub = &args[1];
    let arity_ok = |name: &str, arity: i32| -> Result<(), Reply> {
        let n = args.len() as i32;
        if (arity >= 0 && n != arity) || (arity < 0 && n < -arity) {
            return Err(Reply::Error(format!(
                "ERR wrong number of arguments for 'xinfo|{name}' command"
            )));
        }
        Ok(())
    };
    if eq_ic(sub, "help") {
        arity_ok("help", 2)?;
        let lines = [
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
            "HELP",
            "    Prints this help.",
        ];
        return Ok(Reply::Array(
            lines
                .iter()
                .map(|l| Reply::StatusOwned(l.to_string()))
                .collect(),
        ));
    }
    let which = if eq_ic(sub, "stream") {
        arity_ok("stream", -3)?;
        0
    } else if eq_ic(sub, "groups") {
        arity_ok("groups", 3)?;
        1
    } else if eq_ic(sub, "consumers") {
        arity_ok("consumers", 4)?;
        2
    } else {
        return Err(super::unknown_subcommand("xinfo", sub));
    };
    let key = &args[2];
    let now = ctx.now;
    let limits = node_limits(ctx);
    let Some(s) = stream_mut(ctx, key)? else {
        return Err(no_such_key());
    };
    match which {
        2 => {
            let Some(g) = s.groups.get(&args[3]) else {
                return Err(Reply::Error(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    String::from_utf8_lossy(&args[3]),
                    String::from_utf8_lossy(key)
                )));
            };
            Ok(Reply::Array(
                g.consumers
                    .iter()
                    .map(|(name, c)| {
                        Reply::Map(vec![
                            (bs("name"), Reply::Bulk(name.clone())),
                            (bs("pending"), Reply::Int(c.pel.len() as i64)),
                            (
                                bs("idle"),
                                Reply::Int(now.saturating_sub(c.seen_time) as i64),
                            ),
                        ])
                    })
                    .collect(),
            ))
        }
        1 => Ok(Reply::Array(
            s.groups
                .iter()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        (bs("name"), Reply::Bulk(name.clone())),
                        (bs("consumers"), Reply::Int(g.consumers.len() as i64)),
                        (bs("pending"), Reply::Int(g.pel.len() as i64)),
                        (bs("last-delivered-id"), id_reply(g.last_id)),
                        (bs("entries-read"), entries_read_reply(g.entries_read)),
                        (bs("lag"), stream_groups::lag_reply(s, g)),
                    ])
                })
                .collect(),
        )),
        _ => {
            let full = match args.len() {
                3 => None,
                4 if eq_ic(&args[3], "full") => Some(10i64),
                6 if eq_ic(&args[3], "full") && eq_ic(&args[4], "count") => {
                    Some(arg_i64(&args[5])?.max(0))
                }
                _ => return Err(sub_syntax(sub, "XINFO")),
            };
            s.nodes.sync(&s.entries, limits.0, limits.1);
            let mut m = vec![
                (bs("length"), Reply::Int(s.len() as i64)),
                (bs("radix-tree-keys"), Reply::Int(s.nodes.len() as i64)),
                (
                    bs("radix-tree-nodes"),
                    Reply::Int(s.nodes.rax_nodes() as i64),
                ),
                (bs("last-generated-id"), id_reply(s.last_id)),
                (bs("max-deleted-entry-id"), id_reply(s.max_deleted_id)),
                (bs("entries-added"), Reply::Int(s.entries_added as i64)),
                (bs("recorded-first-entry-id"), id_reply(s.first_id)),
            ];
            match full {
                None => {
                    m.push((bs("groups"), Reply::Int(s.groups.len() as i64)));
                    let edge = |e: Option<EntryRef<'_>>| e.map_or(Reply::Nil, entry_reply);
                    m.push((bs("first-entry"), edge(s.entries.first())));
                    m.push((bs("last-entry"), edge(s.entries.last())));
                }
                Some(count) => {
                    let limit = if count == 0 {
                        usize::MAX
                    } else {
                        count as usize
                    };
                    m.push((
                        bs("entries"),
                        entries_reply(s.entries.iter().take(limit)).array(),
                    ));
                    m.push((bs("groups"), stream_groups::full_groups(s, limit)));
                }
            }
            Ok(Reply::Map(m))
        }
    }
}

pub fn entries_read_reply(v: i64) -> Reply {
    if v == redoubt_persist::value::ENTRIES_READ_UNKNOWN {
        Reply::Nil
    } else {
        Reply::Int(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_numbers_format_as_decimal_text() {
        assert_eq!(id_arg(StreamId::new(0, 0)), "0-0");
        assert_eq!(id_arg(StreamId::new(1700000000123, 7)), "1700000000123-7");
        assert_eq!(
            id_arg(StreamId::MAX),
            "18446744073709551615-18446744073709551615"
        );
        assert_eq!(u64_arg(0), "0");
        assert_eq!(u64_arg(1000000), "1000000");
        assert_eq!(u64_arg(u64::MAX), "18446744073709551615");
    }
}
