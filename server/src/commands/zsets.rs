//! Sorted-set commands (the set-algebra ones live in `zset_store.rs`).
//!
//! Replies follow Redis 7.0 exactly: scores are doubles (`%.17g` bulk strings
//! in RESP2), and with WITHSCORES RESP3 clients get `[member, score]` pairs
//! where RESP2 clients get a flat array.
//!
//! Known differences from Redis 7.0:
//! - Score range bounds are parsed like strtod except for hex floats
//!   ("0x1p3"), which Redis accepts and we refuse.
//! - ZRANDMEMBER with a negative count above 2^27 answers "ERR value is out
//!   of range" instead of trying to build a reply that large.
//! - ZSCAN of a skiplist-encoded set walks it in score order with a
//!   score-based cursor (Redis walks its hash table); the SCAN guarantees
//!   hold, only the batches differ. Listpack-encoded sets are returned whole,
//!   as Redis does.
//! - Lex ranges over members with different scores (unspecified in Redis)
//!   follow Redis's listpack walk; a skiplist-encoded set in Redis may
//!   answer differently, as its walk depends on its random node levels.

use super::flags::*;
use super::keys::parse_cursor;
use super::streams::RERUN;
use super::{arg_i64, not_float, reply, syntax_error, CommandSpec, Ctx};
use crate::resp::Reply;
use crate::util::{eq_ic, glob_match, parse_f64};
use bytes::Bytes;
use rand::Rng;
use redoubt_persist::zset::ZSet;
use redoubt_persist::{Value, ValueType};
use std::cmp::Ordering;

const G: &str = "sorted-set";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("zadd", -4, WRITE | DENYOOM | FAST, (1, 1, 1), G, zadd),
    CommandSpec::new("zincrby", 4, WRITE | DENYOOM | FAST, (1, 1, 1), G, zincrby),
    CommandSpec::new("zrem", -3, WRITE | FAST, (1, 1, 1), G, zrem),
    CommandSpec::new("zcard", 2, READONLY | FAST, (1, 1, 1), G, zcard),
    CommandSpec::new("zscore", 3, READONLY | FAST, (1, 1, 1), G, zscore),
    CommandSpec::new("zmscore", -3, READONLY | FAST, (1, 1, 1), G, zmscore),
    CommandSpec::new("zrank", 3, READONLY | FAST, (1, 1, 1), G, zrank),
    CommandSpec::new("zrevrank", 3, READONLY | FAST, (1, 1, 1), G, zrevrank),
    CommandSpec::new("zcount", 4, READONLY | FAST, (1, 1, 1), G, zcount),
    CommandSpec::new("zlexcount", 4, READONLY | FAST, (1, 1, 1), G, zlexcount),
    CommandSpec::new("zrange", -4, READONLY, (1, 1, 1), G, zrange),
    CommandSpec::new(
        "zrangestore",
        -5,
        WRITE | DENYOOM,
        (1, 2, 1),
        G,
        zrangestore,
    ),
    CommandSpec::new("zrangebyscore", -4, READONLY, (1, 1, 1), G, zrangebyscore),
    CommandSpec::new(
        "zrevrangebyscore",
        -4,
        READONLY,
        (1, 1, 1),
        G,
        zrevrangebyscore,
    ),
    CommandSpec::new("zrangebylex", -4, READONLY, (1, 1, 1), G, zrangebylex),
    CommandSpec::new("zrevrangebylex", -4, READONLY, (1, 1, 1), G, zrevrangebylex),
    CommandSpec::new("zrevrange", -4, READONLY, (1, 1, 1), G, zrevrange),
    CommandSpec::new("zremrangebyrank", 4, WRITE, (1, 1, 1), G, zremrangebyrank),
    CommandSpec::new("zremrangebyscore", 4, WRITE, (1, 1, 1), G, zremrangebyscore),
    CommandSpec::new("zremrangebylex", 4, WRITE, (1, 1, 1), G, zremrangebylex),
    CommandSpec::new("zpopmin", -2, WRITE | FAST, (1, 1, 1), G, zpopmin),
    CommandSpec::new("zpopmax", -2, WRITE | FAST, (1, 1, 1), G, zpopmax),
    CommandSpec::new(
        "bzpopmin",
        -3,
        WRITE | NOSCRIPT | FAST | BLOCKING,
        (1, -2, 1),
        G,
        bzpopmin,
    ),
    CommandSpec::new(
        "bzpopmax",
        -3,
        WRITE | NOSCRIPT | FAST | BLOCKING,
        (1, -2, 1),
        G,
        bzpopmax,
    ),
    // ZMPOP/BZMPOP take their keys after a count (movable keys).
    CommandSpec::new("zmpop", -4, WRITE, (0, 0, 0), G, zmpop),
    CommandSpec::new("bzmpop", -5, WRITE | BLOCKING, (0, 0, 0), G, bzmpop),
    CommandSpec::new("zrandmember", -2, READONLY, (1, 1, 1), G, zrandmember),
    CommandSpec::new("zscan", -3, READONLY, (1, 1, 1), G, zscan),
];

// ---- shared helpers -------------------------------------------------------

/// The sorted set at `key`: Ok(None) when missing, Err(WRONGTYPE) otherwise.
pub fn zset_mut<'a>(ctx: &'a mut Ctx, key: &[u8]) -> Result<Option<&'a mut ZSet>, Reply> {
    Ok(match ctx.lookup_typed(key, ValueType::ZSet)? {
        Some(e) => match &mut e.value {
            Value::ZSet(z) => Some(&mut **z),
            _ => None,
        },
        None => None,
    })
}

/// zset-max-listpack-entries / -value.
pub fn limits(ctx: &Ctx) -> (u64, u64) {
    let c = &ctx.ex.config;
    (c.zset_max_listpack_entries, c.zset_max_listpack_value)
}

/// Promotes a sorted set built from scratch (a store destination) to
/// skiplist when it is too big for a listpack, as Redis converts it.
pub fn set_encoding_for_new(z: &mut ZSet, limits: (u64, u64)) {
    if z.len() as u64 > limits.0 || z.iter().any(|x| x.member.len() as u64 > limits.1) {
        z.skiplist = true;
    }
}

/// Stores `z` at `dst` (replacing any value, clearing its TTL) or deletes
/// `dst` when `z` is empty; returns the reply store commands give.
pub fn store_result(ctx: &mut Ctx, dst: &[u8], mut z: ZSet) -> Reply {
    let n = z.len();
    if n == 0 {
        if ctx.lookup(dst).is_some() {
            ctx.db().remove(dst);
            ctx.modified(dst);
        }
        return Reply::Int(0);
    }
    set_encoding_for_new(&mut z, limits(ctx));
    if !z.skiplist {
        let negzero: Vec<Bytes> = z
            .iter()
            .filter(|x| x.score == 0.0 && x.score.is_sign_negative())
            .map(|x| x.member.clone())
            .collect();
        for m in negzero {
            z.update(&m, 0.0);
        }
    }
    ctx.set_value(dst, Value::ZSet(Box::new(z)));
    ctx.modified(dst);
    Reply::Int(n as i64)
}

/// (member, score) pairs as a reply: flat in RESP2 (and without scores),
/// `[member, score]` pairs in RESP3.
pub fn pairs_reply(ctx: &Ctx, items: Vec<(Bytes, f64)>, withscores: bool) -> Reply {
    let resp3 = ctx.client.resp >= 3;
    let mut out = Vec::with_capacity(items.len() * if withscores && !resp3 { 2 } else { 1 });
    for (m, s) in items {
        if !withscores {
            out.push(Reply::Bulk(m));
        } else if resp3 {
            out.push(Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]));
        } else {
            out.push(Reply::Bulk(m));
            out.push(Reply::Double(s));
        }
    }
    Reply::Array(out)
}

/// A score argument: Redis's float rules, plus its refusal of literals that
/// underflow to zero (strtod's ERANGE), e.g. "1e-400".
pub fn parse_score(a: &[u8]) -> Option<f64> {
    let v = parse_f64(a)?;
    if v == 0.0 {
        let mantissa = a
            .iter()
            .take_while(|c| !matches!(c, b'e' | b'E'))
            .any(|c| (b'1'..=b'9').contains(c));
        if mantissa {
            return None;
        }
    }
    Some(v)
}

/// A listpack keeps scores as text, and Redis writes a -0 score as "0":
/// in a listpack-encoded set -0 reads back as 0 (a skiplist keeps -0).
fn listpack_score(z: &ZSet, score: f64) -> f64 {
    if !z.skiplist && score == 0.0 {
        0.0
    } else {
        score
    }
}

fn nan_error() -> Reply {
    Reply::err("ERR resulting score is not a number (NaN)")
}

/// Parses a double the way `strtod` + "whole string consumed" does, which is
/// what Redis's range parsing uses: leading spaces and a lone sign are
/// accepted and the empty string is 0 (hex floats are not supported).
fn strtod_whole(s: &[u8]) -> Option<f64> {
    let start = s
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))
        .unwrap_or(s.len());
    let t = &s[start..];
    if t.is_empty() {
        // strtod consumed nothing: its end pointer is the start of the string.
        return if start == 0 { Some(0.0) } else { None };
    }
    let v: f64 = std::str::from_utf8(t).ok()?.parse().ok()?;
    (!v.is_nan()).then_some(v)
}

#[derive(Debug, Clone, Copy)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Result<ScoreRange, Reply> {
        let item = |a: &[u8]| -> Option<(f64, bool)> {
            match a.first() {
                Some(b'(') => strtod_whole(&a[1..]).map(|v| (v, true)),
                _ => strtod_whole(a).map(|v| (v, false)),
            }
        };
        match (item(min), item(max)) {
            (Some((min, minex)), Some((max, maxex))) => Ok(ScoreRange {
                min,
                max,
                minex,
                maxex,
            }),
            _ => Err(Reply::err("ERR min or max is not a float")),
        }
    }

    fn above_min(&self, s: f64) -> bool {
        if self.minex {
            s > self.min
        } else {
            s >= self.min
        }
    }

    fn below_max(&self, s: f64) -> bool {
        if self.maxex {
            s < self.max
        } else {
            s <= self.max
        }
    }

    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }

    /// The positions `lo..hi` of the members in range.
    pub fn positions(&self, z: &ZSet) -> (usize, usize) {
        if self.is_empty() {
            return (0, 0);
        }
        let lo = z.index().partition_point(|x| !self.above_min(x.score));
        let hi = z.index().partition_point(|x| self.below_max(x.score));
        (lo, hi.max(lo))
    }
}

#[derive(Debug, Clone)]
enum LexBound {
    Min,
    Max,
    Incl(Bytes),
    Excl(Bytes),
}

#[derive(Debug, Clone)]
pub struct LexRange {
    min: LexBound,
    max: LexBound,
}

impl LexRange {
    pub fn parse(min: &[u8], max: &[u8]) -> Result<LexRange, Reply> {
        fn item(a: &[u8]) -> Option<LexBound> {
            match a.first()? {
                b'+' if a.len() == 1 => Some(LexBound::Max),
                b'-' if a.len() == 1 => Some(LexBound::Min),
                b'(' => Some(LexBound::Excl(Bytes::copy_from_slice(&a[1..]))),
                b'[' => Some(LexBound::Incl(Bytes::copy_from_slice(&a[1..]))),
                _ => None,
            }
        }
        match (item(min), item(max)) {
            (Some(min), Some(max)) => Ok(LexRange { min, max }),
            _ => Err(Reply::err("ERR min or max not valid string range item")),
        }
    }

    fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::Incl(b) => m >= b.as_ref(),
            LexBound::Excl(b) => m > b.as_ref(),
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::Incl(b) => m <= b.as_ref(),
            LexBound::Excl(b) => m < b.as_ref(),
        }
    }

    fn is_empty(&self) -> bool {
        // The infinities count as exclusive, as in Redis.
        let key = |b: &LexBound| -> (u8, Bytes, bool) {
            match b {
                LexBound::Min => (0, Bytes::new(), true),
                LexBound::Incl(x) => (1, x.clone(), false),
                LexBound::Excl(x) => (1, x.clone(), true),
                LexBound::Max => (2, Bytes::new(), true),
            }
        };
        let (a, b) = (key(&self.min), key(&self.max));
        match (a.0, &a.1).cmp(&(b.0, &b.1)) {
            Ordering::Greater => true,
            Ordering::Equal => a.2 || b.2,
            Ordering::Less => false,
        }
    }

    /// The positions ZLEXCOUNT and ZREMRANGEBYLEX cover: a forward walk
    /// with no LIMIT.
    pub fn positions(&self, z: &ZSet) -> (usize, usize) {
        self.walk(z, false, 0, -1)
    }

    /// The positions a lex range selects, walking the set as Redis walks a
    /// listpack (the encoding a set has whenever lex ranges over mixed
    /// scores are reproducible at all): from the first member (the last,
    /// for `rev`) that passes the near bound, skip `offset`, then take
    /// members while they pass the far bound. With one score throughout the
    /// members are sorted and a binary search finds the same positions.
    pub fn walk(&self, z: &ZSet, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
        let n = z.len();
        let (Some(first), Some(last)) = (z.get_by_rank(0), z.get_by_rank(n.wrapping_sub(1))) else {
            return (0, 0);
        };
        // Redis's "can anything be in range" test looks only at the ends.
        if self.is_empty() || !self.above_min(&last.member) || !self.below_max(&first.member) {
            return (0, 0);
        }
        if first.score == last.score {
            let lo = z.index().partition_point(|x| !self.above_min(&x.member));
            let hi = z.index().partition_point(|x| self.below_max(&x.member));
            return apply_limit(lo, hi.max(lo), rev, offset, limit);
        }
        // A negative offset skips everything (Redis counts it down forever).
        if offset < 0 {
            return (0, 0);
        }
        let offset = offset as u64;
        let within = |taken: usize| limit < 0 || (taken as u64) < limit as u64;
        if !rev {
            // Exists: the last member passes the min bound.
            let start = z
                .iter()
                .position(|x| self.above_min(&x.member))
                .unwrap_or(n);
            if !z
                .get_by_rank(start)
                .is_some_and(|x| self.below_max(&x.member))
            {
                return (0, 0);
            }
            if offset >= (n - start) as u64 {
                return (0, 0);
            }
            let start = start + offset as usize;
            let taken = z
                .range(start, n)
                .enumerate()
                .take_while(|(i, x)| within(*i) && self.below_max(&x.member))
                .count();
            (start, start + taken)
        } else {
            // Exists: the first member passes the max bound.
            let from_end = z
                .iter()
                .rev()
                .position(|x| self.below_max(&x.member))
                .unwrap_or(n);
            if from_end >= n {
                return (0, 0);
            }
            let top = n - 1 - from_end;
            if !z
                .get_by_rank(top)
                .is_some_and(|x| self.above_min(&x.member))
            {
                return (0, 0);
            }
            if offset > top as u64 {
                return (0, 0);
            }
            let end = top + 1 - offset as usize;
            let taken = z
                .range(0, end)
                .rev()
                .enumerate()
                .take_while(|(i, x)| within(*i) && self.above_min(&x.member))
                .count();
            (end - taken, end)
        }
    }
}

/// Clamps Redis-style rank arguments (negative from the end) to positions
/// `lo..hi`, or None for an empty range.
fn rank_positions(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 {
        len.saturating_add(start)
    } else {
        start
    };
    let mut end = if end < 0 {
        len.saturating_add(end)
    } else {
        end
    };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, end as usize + 1))
}

/// Applies LIMIT offset/count to positions `lo..hi` read in the given
/// direction; returns the positions to read (still ascending).
fn apply_limit(lo: usize, hi: usize, rev: bool, offset: i64, limit: i64) -> (usize, usize) {
    // A negative offset skips everything (Redis counts it down forever); a
    // negative count means no limit.
    if offset < 0 {
        return (lo, lo);
    }
    let n = hi - lo;
    let off = (offset as u64).min(n as u64) as usize;
    let take = if limit < 0 {
        n - off
    } else {
        (limit as u64).min((n - off) as u64) as usize
    };
    if rev {
        (hi - off - take, hi - off)
    } else {
        (lo + off, lo + off + take)
    }
}

fn collect(z: &ZSet, lo: usize, hi: usize, rev: bool) -> Vec<(Bytes, f64)> {
    let it = z.range(lo, hi).map(|x| (x.member.clone(), x.score));
    if rev {
        it.rev().collect()
    } else {
        it.collect()
    }
}

// ---- ZADD / ZINCRBY ----------------------------------------------------------

fn zadd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zadd_generic(ctx, args, false))
}

fn zincrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zadd_generic(ctx, args, true))
}

fn zadd_generic(ctx: &mut Ctx, args: &[Bytes], zincrby: bool) -> Result<Reply, Reply> {
    let key = &args[1];
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, zincrby);
    let mut i = 2;
    if !zincrby {
        while i < args.len() {
            let a = &args[i];
            if eq_ic(a, "nx") {
                nx = true;
            } else if eq_ic(a, "xx") {
                xx = true;
            } else if eq_ic(a, "gt") {
                gt = true;
            } else if eq_ic(a, "lt") {
                lt = true;
            } else if eq_ic(a, "ch") {
                ch = true;
            } else if eq_ic(a, "incr") {
                incr = true;
            } else {
                break;
            }
            i += 1;
        }
    }
    let rest = &args[i..];
    if rest.is_empty() || rest.len() & 1 != 0 {
        return Err(syntax_error());
    }
    if nx && xx {
        return Err(Reply::err(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(Reply::err(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && rest.len() > 2 {
        return Err(Reply::err(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    // Every score is checked before anything changes: all or nothing.
    let mut scores = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks_exact(2) {
        scores.push(parse_score(&pair[0]).ok_or_else(not_float)?);
    }
    let (max_entries, max_value) = limits(ctx);
    let nil = Reply::Nil;
    let exists = match ctx.lookup_typed(key, ValueType::ZSet)? {
        Some(_) => true,
        None if xx => return Ok(if incr { nil } else { Reply::Int(0) }),
        None => false,
    };
    if !exists {
        ctx.db().insert(key, Value::ZSet(Box::new(ZSet::new())), 0);
    }
    let Some(z) = zset_mut(ctx, key)? else {
        return Ok(Reply::Int(0));
    };
    let (mut added, mut updated, mut processed) = (0i64, 0i64, 0i64);
    let mut last_score = 0.0;
    for (pair, &score) in rest.chunks_exact(2).zip(&scores) {
        let member = &pair[1];
        let mut score = score;
        match z.score(member) {
            Some(cur) => {
                if nx {
                    continue;
                }
                if incr {
                    score += cur;
                    if score.is_nan() {
                        return Err(nan_error());
                    }
                }
                if (lt && score >= cur) || (gt && score <= cur) {
                    continue;
                }
                last_score = score;
                processed += 1;
                // -0.0 == 0.0: Redis leaves such a member alone.
                if score != cur {
                    z.update(member, listpack_score(z, score));
                    updated += 1;
                }
            }
            None => {
                if xx {
                    continue;
                }
                // Redis converts before inserting the member that does
                // not fit, so that member is stored as given.
                if z.len() as u64 + 1 > max_entries || member.len() as u64 > max_value {
                    z.skiplist = true;
                }
                z.insert(Bytes::copy_from_slice(member), listpack_score(z, score));
                last_score = score;
                added += 1;
                processed += 1;
            }
        }
    }
    if added + updated > 0 {
        ctx.modified(key);
    }
    Ok(if incr {
        if processed > 0 {
            Reply::Double(last_score)
        } else {
            nil
        }
    } else {
        Reply::Int(if ch { added + updated } else { added })
    })
}

// ---- simple reads and removal ------------------------------------------------

fn zrem(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let Some(z) = zset_mut(ctx, key)? else {
            return Ok(Reply::Int(0));
        };
        let mut n = 0;
        for m in &args[2..] {
            if z.remove(m).is_some() {
                n += 1;
                if z.is_empty() {
                    break;
                }
            }
        }
        let empty = z.is_empty();
        if empty {
            ctx.db().remove(key);
        }
        if n > 0 {
            ctx.modified(key);
        }
        Ok(Reply::Int(n))
    })())
}

fn zcard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match zset_mut(ctx, &args[1]) {
        Ok(z) => Reply::Int(z.map_or(0, |z| z.len() as i64)),
        Err(e) => e,
    }
}

fn zscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match zset_mut(ctx, &args[1]) {
        Ok(z) => z
            .and_then(|z| z.score(&args[2]))
            .map_or(Reply::Nil, Reply::Double),
        Err(e) => e,
    }
}

fn zmscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match zset_mut(ctx, &args[1]) {
        Ok(z) => Reply::Array(
            args[2..]
                .iter()
                .map(|m| {
                    z.as_ref()
                        .and_then(|z| z.score(m))
                        .map_or(Reply::Nil, Reply::Double)
                })
                .collect(),
        ),
        Err(e) => e,
    }
}

fn zrank_generic(ctx: &mut Ctx, args: &[Bytes], rev: bool) -> Reply {
    match zset_mut(ctx, &args[1]) {
        Ok(Some(z)) => match z.rank(&args[2]) {
            Some(r) if rev => Reply::Int((z.len() - 1 - r) as i64),
            Some(r) => Reply::Int(r as i64),
            None => Reply::Nil,
        },
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

fn zrank(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrank_generic(ctx, args, false)
}

fn zrevrank(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    zrank_generic(ctx, args, true)
}

fn zcount(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let r = ScoreRange::parse(&args[2], &args[3])?;
        Ok(match zset_mut(ctx, &args[1])? {
            Some(z) => {
                let (lo, hi) = r.positions(z);
                Reply::Int((hi - lo) as i64)
            }
            None => Reply::Int(0),
        })
    })())
}

fn zlexcount(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let r = LexRange::parse(&args[2], &args[3])?;
        Ok(match zset_mut(ctx, &args[1])? {
            Some(z) => {
                let (lo, hi) = r.positions(z);
                Reply::Int((hi - lo) as i64)
            }
            None => Reply::Int(0),
        })
    })())
}

// ---- ZRANGE and friends --------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Rank,
    Score,
    Lex,
}

/// ZRANGE's generic form. `key_at` is the source key's index; `store` the
/// destination of ZRANGESTORE; `kind`/`rev` are fixed by the legacy forms.
fn zrange_generic(
    ctx: &mut Ctx,
    args: &[Bytes],
    key_at: usize,
    store: Option<&Bytes>,
    kind: Option<Kind>,
    rev: Option<bool>,
) -> Result<Reply, Reply> {
    let (mut kind_opt, mut rev_opt) = (kind, rev);
    let mut withscores = false;
    let (mut offset, mut limit) = (0i64, -1i64);
    let mut j = key_at + 3;
    while j < args.len() {
        let left = args.len() - j - 1;
        let a = &args[j];
        if store.is_none() && eq_ic(a, "withscores") {
            withscores = true;
        } else if eq_ic(a, "limit") && left >= 2 {
            offset = arg_i64(&args[j + 1])?;
            limit = arg_i64(&args[j + 2])?;
            j += 2;
        } else if rev_opt.is_none() && eq_ic(a, "rev") {
            rev_opt = Some(true);
        } else if kind_opt.is_none() && eq_ic(a, "bylex") {
            kind_opt = Some(Kind::Lex);
        } else if kind_opt.is_none() && eq_ic(a, "byscore") {
            kind_opt = Some(Kind::Score);
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    let kind = kind_opt.unwrap_or(Kind::Rank);
    let rev = rev_opt.unwrap_or(false);
    // Redis tests the count against its "unset" value, so LIMIT x -1 slips
    // through with a rank range; keep that.
    if limit != -1 && kind == Kind::Rank {
        return Err(Reply::err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if withscores && kind == Kind::Lex {
        return Err(Reply::err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ));
    }
    let (mut a, mut b) = (&args[key_at + 1], &args[key_at + 2]);
    if rev && kind != Kind::Rank {
        std::mem::swap(&mut a, &mut b);
    }
    enum Parsed {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let parsed = match kind {
        Kind::Rank => Parsed::Rank(arg_i64(a)?, arg_i64(b)?),
        Kind::Score => Parsed::Score(ScoreRange::parse(a, b)?),
        Kind::Lex => Parsed::Lex(LexRange::parse(a, b)?),
    };
    let items = match zset_mut(ctx, &args[key_at])? {
        None => Vec::new(),
        Some(z) => {
            let (lo, hi) = match &parsed {
                Parsed::Rank(s, e) => {
                    let len = z.len();
                    match rank_positions(*s, *e, len) {
                        None => (0, 0),
                        Some((lo, hi)) if rev => (len - hi, len - lo),
                        Some(p) => p,
                    }
                }
                Parsed::Score(r) => {
                    let (lo, hi) = r.positions(z);
                    apply_limit(lo, hi, rev, offset, limit)
                }
                Parsed::Lex(r) => r.walk(z, rev, offset, limit),
            };
            collect(z, lo, hi, rev)
        }
    };
    match store {
        Some(dst) => {
            let mut z = ZSet::new();
            for (m, s) in items {
                z.insert(m, s);
            }
            Ok(store_result(ctx, dst, z))
        }
        None => Ok(pairs_reply(ctx, items, withscores)),
    }
}

fn zrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zrange_generic(ctx, args, 1, None, None, None))
}

fn zrangestore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let dst = args[1].clone();
    reply(zrange_generic(ctx, args, 2, Some(&dst), None, None))
}

fn zrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zrange_generic(
        ctx,
        args,
        1,
        None,
        Some(Kind::Score),
        Some(false),
    ))
}

fn zrevrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zrange_generic(
        ctx,
        args,
        1,
        None,
        Some(Kind::Score),
        Some(true),
    ))
}

fn zrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zrange_generic(
        ctx,
        args,
        1,
        None,
        Some(Kind::Lex),
        Some(false),
    ))
}

fn zrevrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zrange_generic(
        ctx,
        args,
        1,
        None,
        Some(Kind::Lex),
        Some(true),
    ))
}

fn zrevrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zrange_generic(
        ctx,
        args,
        1,
        None,
        Some(Kind::Rank),
        Some(true),
    ))
}

// ---- ZREMRANGEBY* ----------------------------------------------------------------

fn zremrange_generic(ctx: &mut Ctx, args: &[Bytes], kind: Kind) -> Result<Reply, Reply> {
    enum Parsed {
        Rank(i64, i64),
        Score(ScoreRange),
        Lex(LexRange),
    }
    let parsed = match kind {
        Kind::Rank => Parsed::Rank(arg_i64(&args[2])?, arg_i64(&args[3])?),
        Kind::Score => Parsed::Score(ScoreRange::parse(&args[2], &args[3])?),
        Kind::Lex => Parsed::Lex(LexRange::parse(&args[2], &args[3])?),
    };
    let key = &args[1];
    let Some(z) = zset_mut(ctx, key)? else {
        return Ok(Reply::Int(0));
    };
    let (lo, hi) = match &parsed {
        Parsed::Rank(s, e) => rank_positions(*s, *e, z.len()).unwrap_or((0, 0)),
        Parsed::Score(r) => r.positions(z),
        Parsed::Lex(r) => r.positions(z),
    };
    let gone: Vec<Bytes> = z.range(lo, hi).map(|x| x.member.clone()).collect();
    for m in &gone {
        z.remove(m);
    }
    let empty = z.is_empty();
    if empty {
        ctx.db().remove(key);
    }
    if !gone.is_empty() {
        ctx.modified(key);
    }
    Ok(Reply::Int(gone.len() as i64))
}

fn zremrangebyrank(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zremrange_generic(ctx, args, Kind::Rank))
}

fn zremrangebyscore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zremrange_generic(ctx, args, Kind::Score))
}

fn zremrangebylex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zremrange_generic(ctx, args, Kind::Lex))
}

// ---- pops ------------------------------------------------------------------------

/// Pops up to `count` members from the low (or high) end of the sorted set
/// at `key`, deleting the key when it empties. The caller checked the type.
fn pop_members(ctx: &mut Ctx, key: &[u8], max: bool, count: usize) -> Vec<(Bytes, f64)> {
    let Ok(Some(z)) = zset_mut(ctx, key) else {
        return Vec::new();
    };
    let n = count.min(z.len());
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let pos = if max { z.len() - 1 } else { 0 };
        let Some(x) = z.get_by_rank(pos) else { break };
        let (m, s) = (x.member.clone(), x.score);
        z.remove(&m);
        out.push((m, s));
    }
    let empty = z.is_empty();
    if empty {
        ctx.db().remove(key);
    }
    if !out.is_empty() {
        ctx.modified(key);
    }
    out
}

fn zpop_generic(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Result<Reply, Reply> {
    if args.len() > 3 {
        return Err(syntax_error());
    }
    let count = match args.get(2) {
        // Redis answers a non-number and a negative count alike here.
        Some(a) => match crate::util::parse_i64(a) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => return Err(Reply::err("ERR value is out of range, must be positive")),
        },
        None => None,
    };
    let key = &args[1];
    if zset_mut(ctx, key)?.is_none() {
        return Ok(Reply::Array(Vec::new()));
    }
    let items = pop_members(ctx, key, max, count.unwrap_or(1));
    // Without COUNT the reply is one flat pair even in RESP3.
    if count.is_none() {
        let mut out = Vec::with_capacity(2);
        for (m, s) in items {
            out.push(Reply::Bulk(m));
            out.push(Reply::Double(s));
        }
        return Ok(Reply::Array(out));
    }
    Ok(pairs_reply(ctx, items, true))
}

fn zpopmin(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zpop_generic(ctx, args, false))
}

fn zpopmax(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zpop_generic(ctx, args, true))
}

/// A blocking timeout in seconds (a float), as milliseconds (0 = forever);
/// parsed as the list commands parse theirs.
pub fn parse_timeout_secs(a: &[u8]) -> Result<u64, Reply> {
    super::lists::parse_timeout(a)
}

/// A woken client re-runs its command with [`RERUN`] as the first argument:
/// it then blocks again instead of timing out, and skips keys that now hold
/// another type (Redis only serves it from a sorted set).
fn strip_rerun(args: &[Bytes]) -> (bool, Vec<Bytes>) {
    if args.get(1).is_some_and(|a| a.as_ref() == RERUN) {
        let mut v = Vec::with_capacity(args.len() - 1);
        v.push(args[0].clone());
        v.extend(args[2..].iter().cloned());
        (true, v)
    } else {
        (false, args.to_vec())
    }
}

fn rerun_args(args: &[Bytes]) -> Vec<Bytes> {
    let mut v = Vec::with_capacity(args.len() + 1);
    v.push(args[0].clone());
    v.push(Bytes::from_static(RERUN));
    v.extend(args[1..].iter().cloned());
    v
}

/// Whether `key` holds a sorted set; a wrong type is an error, except for a
/// re-run blocked command, which just skips the key.
fn has_zset(ctx: &mut Ctx, key: &[u8], rerun: bool) -> Result<bool, Reply> {
    match zset_mut(ctx, key) {
        Ok(z) => Ok(z.is_some()),
        Err(_) if rerun => Ok(false),
        Err(e) => Err(e),
    }
}

fn bzpop_generic(ctx: &mut Ctx, args: &[Bytes], max: bool) -> Result<Reply, Reply> {
    let (rerun, args) = strip_rerun(args);
    let args = &args[..];
    let timeout = parse_timeout_secs(&args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    for key in keys {
        if !has_zset(ctx, key, rerun)? {
            continue;
        }
        let items = pop_members(ctx, key, max, 1);
        let Some((m, s)) = items.into_iter().next() else {
            continue;
        };
        let cmd = if max { "ZPOPMAX" } else { "ZPOPMIN" };
        ctx.propagate_as(vec![vec![Bytes::from_static(cmd.as_bytes()), key.clone()]]);
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Bulk(m),
            Reply::Double(s),
        ]));
    }
    Ok(ctx.block(keys.to_vec(), timeout, &rerun_args(args), Reply::NilArray))
}

fn bzpopmin(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(bzpop_generic(ctx, args, false))
}

fn bzpopmax(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(bzpop_generic(ctx, args, true))
}

/// ZMPOP and BZMPOP; `at` is the index of numkeys.
fn zmpop_generic(ctx: &mut Ctx, args: &[Bytes], at: usize, block: bool) -> Result<Reply, Reply> {
    let (rerun, args) = strip_rerun(args);
    let args = &args[..];
    let numkeys_err = || Reply::err("ERR numkeys should be greater than 0");
    let numkeys = crate::util::parse_i64(&args[at]).ok_or_else(numkeys_err)?;
    if numkeys < 1 {
        return Err(numkeys_err());
    }
    let where_at = (at as u64).saturating_add(numkeys as u64).saturating_add(1);
    if where_at >= args.len() as u64 {
        return Err(syntax_error());
    }
    let where_at = where_at as usize;
    let max = if eq_ic(&args[where_at], "min") {
        false
    } else if eq_ic(&args[where_at], "max") {
        true
    } else {
        return Err(syntax_error());
    };
    let mut count: Option<i64> = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && eq_ic(&args[j], "count") && j + 1 < args.len() {
            let err = || Reply::err("ERR count should be greater than 0");
            let n = crate::util::parse_i64(&args[j + 1]).ok_or_else(err)?;
            if n < 1 {
                return Err(err());
            }
            count = Some(n);
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    let count = count.unwrap_or(1);
    let timeout = if block {
        parse_timeout_secs(&args[1])?
    } else {
        0
    };
    let keys = &args[at + 1..where_at];
    for key in keys {
        if !has_zset(ctx, key, rerun)? {
            continue;
        }
        let items = pop_members(ctx, key, max, count as usize);
        if items.is_empty() {
            continue;
        }
        let cmd = if max { "ZPOPMAX" } else { "ZPOPMIN" };
        ctx.propagate_as(vec![vec![
            Bytes::from_static(cmd.as_bytes()),
            key.clone(),
            Bytes::from(count.to_string()),
        ]]);
        let pairs: Vec<Reply> = items
            .into_iter()
            .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::Array(pairs),
        ]));
    }
    if block {
        return Ok(ctx.block(keys.to_vec(), timeout, &rerun_args(args), Reply::NilArray));
    }
    Ok(Reply::NilArray)
}

fn zmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zmpop_generic(ctx, args, 1, false))
}

fn bzmpop(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(zmpop_generic(ctx, args, 2, true))
}

// ---- ZRANDMEMBER / ZSCAN ---------------------------------------------------------

/// Most elements a negative-count ZRANDMEMBER builds. Redis streams such a
/// reply without bound; we refuse rather than exhaust memory on a typo.
const RANDMEMBER_MAX: u64 = 1 << 27;

fn zrandmember(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let Some(count_arg) = args.get(2) else {
            let Some(z) = zset_mut(ctx, key)? else {
                return Ok(Reply::Nil);
            };
            let pick = ctx_rng_index(z.len());
            return Ok(z
                .get_by_rank(pick)
                .map_or(Reply::Nil, |x| Reply::Bulk(x.member.clone())));
        };
        let l = arg_i64(count_arg)?;
        if l == i64::MIN {
            return Err(Reply::err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        let withscores = match args.len() {
            3 => false,
            4 if eq_ic(&args[3], "withscores") => true,
            _ => return Err(syntax_error()),
        };
        let (count, uniq) = (l.unsigned_abs(), l >= 0);
        if withscores && count > (i64::MAX / 2) as u64 {
            return Err(Reply::err("ERR value is out of range"));
        }
        let Some(z) = zset_mut(ctx, key)? else {
            return Ok(Reply::Array(Vec::new()));
        };
        let len = z.len();
        if count == 0 {
            return Ok(Reply::Array(Vec::new()));
        }
        let mut rng = rand::thread_rng();
        let items: Vec<(Bytes, f64)> = if !uniq {
            if count > RANDMEMBER_MAX {
                return Err(Reply::err("ERR value is out of range"));
            }
            (0..count)
                .filter_map(|_| z.get_by_rank(rng.gen_range(0..len)))
                .map(|x| (x.member.clone(), x.score))
                .collect()
        } else if count >= len as u64 {
            z.iter().map(|x| (x.member.clone(), x.score)).collect()
        } else {
            // Distinct positions, chosen without materialising the set.
            let count = count as usize;
            let picks = rand::seq::index::sample(&mut rng, len, count);
            picks
                .iter()
                .filter_map(|p| z.get_by_rank(p))
                .map(|x| (x.member.clone(), x.score))
                .collect()
        };
        Ok(pairs_reply(ctx, items, withscores))
    })())
}

fn ctx_rng_index(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        rand::thread_rng().gen_range(0..len)
    }
}

/// Maps a score to a u64 whose order is the score order (-0.0 and 0.0 alike),
/// so a ZSCAN cursor can name "every score from here on".
fn score_key(s: f64) -> u64 {
    let s = if s == 0.0 { 0.0 } else { s };
    let b = s.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

fn zscan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let cursor = parse_cursor(&args[2])?;
        // Redis looks the key up before it parses the options: a missing
        // key answers an empty scan whatever follows.
        if zset_mut(ctx, &args[1])?.is_none() {
            return Ok(Reply::Array(vec![
                Reply::bulk(b"0"),
                Reply::Array(Vec::new()),
            ]));
        }
        let mut pattern: Option<&Bytes> = None;
        let mut count = 10usize;
        let mut i = 3;
        while i < args.len() {
            let has_val = i + 1 < args.len();
            if eq_ic(&args[i], "match") && has_val {
                pattern = Some(&args[i + 1]);
            } else if eq_ic(&args[i], "count") && has_val {
                let n = arg_i64(&args[i + 1])?;
                if n < 1 {
                    return Err(syntax_error());
                }
                count = n as usize;
            } else {
                return Err(syntax_error());
            }
            i += 2;
        }
        let Some(z) = zset_mut(ctx, &args[1])? else {
            return Ok(Reply::Array(vec![
                Reply::bulk(b"0"),
                Reply::Array(Vec::new()),
            ]));
        };
        // A listpack-encoded set is returned whole, as Redis does. A big one
        // is walked in score order: the cursor is (key of the next score
        // to return) + 1, and a batch never splits a run of equal scores, so
        // members present for the whole scan are returned, and at most once
        // unless their score changes.
        let (lo, hi) = if !z.skiplist {
            (0, z.len())
        } else {
            let lo = if cursor == 0 {
                0
            } else {
                let k = cursor - 1;
                z.index().partition_point(|x| score_key(x.score) < k)
            };
            let mut hi = lo.saturating_add(count).min(z.len());
            if hi < z.len() && hi > lo {
                let edge = z.get_by_rank(hi - 1).map_or(0.0, |x| x.score);
                hi = z.index().partition_point(|x| {
                    x.score.partial_cmp(&edge).unwrap_or(Ordering::Equal) != Ordering::Greater
                });
            }
            (lo, hi)
        };
        let next = if hi >= z.len() {
            0
        } else {
            z.get_by_rank(hi)
                .map_or(0, |x| score_key(x.score).wrapping_add(1))
        };
        let mut out = Vec::new();
        for x in z.range(lo, hi) {
            if let Some(p) = pattern {
                if !glob_match(p, &x.member, false) {
                    continue;
                }
            }
            out.push(Reply::Bulk(x.member.clone()));
            out.push(Reply::Bulk(Bytes::from(crate::util::fmt_double(x.score))));
        }
        Ok(Reply::Array(vec![
            Reply::Bulk(Bytes::from(next.to_string())),
            Reply::Array(out),
        ]))
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members out of lex order across scores: the answers are Redis
    /// 7.0.15's for `ZADD z 1 b 2 a 3 d 4 c`.
    #[test]
    fn lex_ranges_over_mixed_scores_walk_as_redis() {
        let mut z = ZSet::new();
        for (s, m) in [(1.0, "b"), (2.0, "a"), (3.0, "d"), (4.0, "c")] {
            z.insert(Bytes::from(m), s);
        }
        let r = |a: &str, b: &str| LexRange::parse(a.as_bytes(), b.as_bytes()).unwrap();
        // ZRANGEBYLEX z [b [c -> b a
        assert_eq!(r("[b", "[c").walk(&z, false, 0, -1), (0, 2));
        // ZREVRANGEBYLEX z [d [a -> c d a b
        assert_eq!(r("[a", "[d").walk(&z, true, 0, -1), (0, 4));
        // ZLEXCOUNT z - [b -> 2
        assert_eq!(r("-", "[b").positions(&z), (0, 2));
        // ZRANGEBYLEX z [a + LIMIT 1 2 -> a d
        assert_eq!(r("[a", "+").walk(&z, false, 1, 2), (1, 3));
        // A negative offset skips everything.
        assert_eq!(r("-", "+").walk(&z, false, -1, 2), (0, 0));
    }
}
