//! ZUNION, ZINTER, ZDIFF (and their STORE forms) and ZINTERCARD.
//!
//! Inputs may be sorted sets or plain sets (members scoring 1), as in Redis.
//! Inputs are visited smallest first for union and intersection because the
//! order decides how floating-point sums round, and Redis sorts them so.

use super::flags::*;
use super::zsets::{pairs_reply, store_result};
use super::{arg_i64, reply, syntax_error, wrongtype, CommandSpec, Ctx};
use crate::resp::Reply;
use crate::util::{eq_ic, parse_i64};
use bytes::Bytes;
use hashbrown::HashMap;
use redoubt_persist::zset::ZSet;
use redoubt_persist::Value;

const G: &str = "sorted-set";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "zunionstore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        G,
        zunionstore,
    ),
    CommandSpec::new(
        "zinterstore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        G,
        zinterstore,
    ),
    CommandSpec::new("zdiffstore", -4, WRITE | DENYOOM, (1, 1, 1), G, zdiffstore),
    CommandSpec::new("zunion", -3, READONLY, (0, 0, 0), G, zunion),
    CommandSpec::new("zinter", -3, READONLY, (0, 0, 0), G, zinter),
    CommandSpec::new("zdiff", -3, READONLY, (0, 0, 0), G, zdiff),
    CommandSpec::new("zintercard", -3, READONLY, (0, 0, 0), G, zintercard),
];

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Clone, Copy)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

fn aggregate(target: &mut f64, v: f64, how: Aggregate) {
    match how {
        Aggregate::Sum => {
            *target += v;
            // inf + -inf: Redis settles on 0 rather than store NaN.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if v < *target {
                *target = v;
            }
        }
        Aggregate::Max => {
            if v > *target {
                *target = v;
            }
        }
    }
}

/// One input: its value (None = missing key) and weight.
struct Src<'a> {
    value: Option<&'a Value>,
    weight: f64,
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self.value {
            Some(Value::ZSet(z)) => z.len(),
            Some(Value::Set(s)) => s.members.len(),
            _ => 0,
        }
    }

    fn score(&self, m: &[u8]) -> Option<f64> {
        match self.value {
            Some(Value::ZSet(z)) => z.score(m),
            Some(Value::Set(s)) => s.members.contains(m).then_some(1.0),
            _ => None,
        }
    }

    fn for_each(&self, mut f: impl FnMut(&Bytes, f64) -> bool) {
        match self.value {
            Some(Value::ZSet(z)) => {
                for x in z.iter() {
                    if !f(&x.member, x.score) {
                        return;
                    }
                }
            }
            Some(Value::Set(s)) => {
                for m in s.members.iter() {
                    if !f(m, 1.0) {
                        return;
                    }
                }
            }
            _ => {}
        }
    }

    fn same(&self, other: &Src) -> bool {
        match (self.value, other.value) {
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            _ => false,
        }
    }
}

struct Parsed {
    keys: Vec<Bytes>,
    weights: Vec<f64>,
    how: Aggregate,
    withscores: bool,
    limit: usize,
}

/// Parses `numkeys key... [WEIGHTS ...] [AGGREGATE ...] [WITHSCORES]
/// [LIMIT n]` from `at` (the index of numkeys).
fn parse(
    ctx: &mut Ctx,
    args: &[Bytes],
    at: usize,
    op: Op,
    store: bool,
    card: bool,
    name: &str,
) -> Result<Parsed, Reply> {
    let setnum = arg_i64(&args[at])?;
    if setnum < 1 {
        return Err(Reply::Error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if setnum as u64 > (args.len() - at - 1) as u64 {
        return Err(syntax_error());
    }
    let setnum = setnum as usize;
    let keys: Vec<Bytes> = args[at + 1..at + 1 + setnum].to_vec();
    // Types are checked before the options are, as in Redis.
    for k in &keys {
        if let Some(e) = ctx.lookup(k) {
            if !matches!(e.value, Value::ZSet(_) | Value::Set(_)) {
                return Err(wrongtype());
            }
        }
    }
    let mut p = Parsed {
        keys,
        weights: vec![1.0; setnum],
        how: Aggregate::Sum,
        withscores: false,
        limit: 0,
    };
    let mut j = at + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != Op::Diff && !card && remaining > setnum && eq_ic(a, "weights") {
            for i in 0..setnum {
                p.weights[i] = super::zsets::parse_score(&args[j + 1 + i])
                    .ok_or_else(|| Reply::err("ERR weight value is not a float"))?;
            }
            j += 1 + setnum;
        } else if op != Op::Diff && !card && remaining >= 2 && eq_ic(a, "aggregate") {
            let v = &args[j + 1];
            p.how = if eq_ic(v, "sum") {
                Aggregate::Sum
            } else if eq_ic(v, "min") {
                Aggregate::Min
            } else if eq_ic(v, "max") {
                Aggregate::Max
            } else {
                return Err(syntax_error());
            };
            j += 2;
        } else if !store && !card && eq_ic(a, "withscores") {
            p.withscores = true;
            j += 1;
        } else if card && remaining >= 2 && eq_ic(a, "limit") {
            let n =
                parse_i64(&args[j + 1]).ok_or_else(|| Reply::err("ERR LIMIT can't be negative"))?;
            if n < 0 {
                return Err(Reply::err("ERR LIMIT can't be negative"));
            }
            p.limit = n as usize;
            j += 2;
        } else {
            return Err(syntax_error());
        }
    }
    Ok(p)
}

/// Computes the result set. `limit` (> 0) stops an intersection early.
fn compute(ctx: &mut Ctx, p: &Parsed, op: Op, limit: usize) -> ZSet {
    let db = &ctx.ex.ks.dbs[ctx.client.db];
    let mut srcs: Vec<Src> = p
        .keys
        .iter()
        .zip(&p.weights)
        .map(|(k, &w)| Src {
            value: db.peek(k).map(|e| &e.value),
            weight: w,
        })
        .collect();
    let mut out = ZSet::new();
    match op {
        Op::Union => {
            srcs.sort_by_key(|s| s.len());
            let cap = srcs.last().map_or(0, |s| s.len());
            let mut acc: HashMap<Bytes, f64> = HashMap::with_capacity(cap);
            for s in &srcs {
                s.for_each(|m, score| {
                    let mut v = s.weight * score;
                    if v.is_nan() {
                        v = 0.0;
                    }
                    match acc.get_mut(m.as_ref()) {
                        Some(t) => aggregate(t, v, p.how),
                        None => {
                            acc.insert(m.clone(), v);
                        }
                    }
                    true
                });
            }
            for (m, s) in acc {
                out.insert(m, s);
            }
        }
        Op::Inter => {
            srcs.sort_by_key(|s| s.len());
            if srcs.first().map_or(0, |s| s.len()) == 0 {
                return out;
            }
            let (first, rest) = srcs.split_at(1);
            let first = &first[0];
            first.for_each(|m, score0| {
                let mut score = first.weight * score0;
                if score.is_nan() {
                    score = 0.0;
                }
                for s in rest {
                    let v = if s.same(first) {
                        Some(score0)
                    } else {
                        s.score(m)
                    };
                    match v {
                        Some(v) => aggregate(&mut score, v * s.weight, p.how),
                        None => return true,
                    }
                }
                out.insert(m.clone(), score);
                limit == 0 || out.len() < limit
            });
        }
        Op::Diff => {
            let (first, rest) = srcs.split_at(1);
            first[0].for_each(|m, score| {
                if !rest.iter().any(|s| s.score(m).is_some()) {
                    out.insert(m.clone(), score);
                }
                true
            });
        }
    }
    out
}

fn generic(ctx: &mut Ctx, args: &[Bytes], op: Op, store: bool, name: &str) -> Reply {
    reply((|| {
        let at = if store { 2 } else { 1 };
        let p = parse(ctx, args, at, op, store, false, name)?;
        let z = compute(ctx, &p, op, 0);
        if store {
            return Ok(store_result(ctx, &args[1], z));
        }
        let items = z.iter().map(|x| (x.member.clone(), x.score)).collect();
        Ok(pairs_reply(ctx, items, p.withscores))
    })())
}

fn zunionstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    generic(ctx, args, Op::Union, true, "zunionstore")
}

fn zinterstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    generic(ctx, args, Op::Inter, true, "zinterstore")
}

fn zdiffstore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    generic(ctx, args, Op::Diff, true, "zdiffstore")
}

fn zunion(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    generic(ctx, args, Op::Union, false, "zunion")
}

fn zinter(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    generic(ctx, args, Op::Inter, false, "zinter")
}

fn zdiff(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    generic(ctx, args, Op::Diff, false, "zdiff")
}

fn zintercard(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let p = parse(ctx, args, 1, Op::Inter, false, true, "zintercard")?;
        let z = compute(ctx, &p, Op::Inter, p.limit);
        Ok(Reply::Int(z.len() as i64))
    })())
}
