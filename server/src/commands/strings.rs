//! String commands.

use super::flags::*;
use super::{arg_i64, not_integer, reply, syntax_error, wrongtype, CommandSpec, Ctx};
use crate::resp::Reply;
use crate::util::{eq_ic, parse_i64};
use bytes::Bytes;
use redoubt_persist::entry::StrEncoding;
use redoubt_persist::{Value, ValueType};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("get", 2, READONLY | FAST, (1, 1, 1), "string", get),
    CommandSpec::new("set", -3, WRITE | DENYOOM, (1, 1, 1), "string", set),
    CommandSpec::new(
        "setnx",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        setnx,
    ),
    CommandSpec::new("setex", 4, WRITE | DENYOOM, (1, 1, 1), "string", setex),
    CommandSpec::new("psetex", 4, WRITE | DENYOOM, (1, 1, 1), "string", psetex),
    CommandSpec::new(
        "getset",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        getset,
    ),
    CommandSpec::new("getdel", 2, WRITE | FAST, (1, 1, 1), "string", getdel),
    CommandSpec::new("getex", -2, WRITE | FAST, (1, 1, 1), "string", getex),
    CommandSpec::new("mget", -2, READONLY | FAST, (1, -1, 1), "string", mget),
    CommandSpec::new("mset", -3, WRITE | DENYOOM, (1, -1, 2), "string", mset),
    CommandSpec::new("msetnx", -3, WRITE | DENYOOM, (1, -1, 2), "string", msetnx),
    CommandSpec::new(
        "append",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        append,
    ),
    CommandSpec::new("strlen", 2, READONLY | FAST, (1, 1, 1), "string", strlen),
    CommandSpec::new("getrange", 4, READONLY, (1, 1, 1), "string", getrange),
    CommandSpec::new("substr", 4, READONLY, (1, 1, 1), "string", getrange),
    CommandSpec::new(
        "setrange",
        4,
        WRITE | DENYOOM,
        (1, 1, 1),
        "string",
        setrange,
    ),
    CommandSpec::new("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", incr),
    CommandSpec::new("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1), "string", decr),
    CommandSpec::new(
        "incrby",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        incrby,
    ),
    CommandSpec::new(
        "decrby",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        decrby,
    ),
    CommandSpec::new(
        "incrbyfloat",
        3,
        WRITE | DENYOOM | FAST,
        (1, 1, 1),
        "string",
        incrbyfloat,
    ),
];

/// The string at `key`: Ok(None) if missing, Err(WRONGTYPE) if not a string.
fn get_str(ctx: &mut Ctx, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    match ctx.lookup_ro(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(s.clone())),
            _ => Err(wrongtype()),
        },
    }
}

fn get(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_str(ctx, &args[1]) {
        Ok(Some(s)) => {
            ctx.ex.stats.keyspace_hits += 1;
            Reply::Bulk(s)
        }
        Ok(None) => {
            ctx.ex.stats.keyspace_misses += 1;
            Reply::Nil
        }
        Err(e) => e,
    }
}

/// Expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq)]
enum ExpireOpt {
    None,
    /// Absolute Unix ms.
    At(u64),
    KeepTtl,
    Persist,
}

fn is_time_opt(a: &[u8]) -> bool {
    eq_ic(a, "ex") || eq_ic(a, "px") || eq_ic(a, "exat") || eq_ic(a, "pxat")
}

/// Whether time option `a` may follow what was parsed so far: Redis refuses
/// two different ones (EX with PX, KEEPTTL, PERSIST) but lets the same one
/// repeat, the last one winning.
fn may_repeat(exp: &ExpireOpt, prev: Option<&Bytes>, a: &[u8]) -> bool {
    match exp {
        ExpireOpt::None => true,
        ExpireOpt::At(_) => prev.is_some_and(|p| p.eq_ignore_ascii_case(a)),
        _ => false,
    }
}

/// Parses EX/PX/EXAT/PXAT `value` into an absolute ms time.
fn expire_at(ctx: &Ctx, kind: &[u8], val: &[u8], cmd: &str) -> Result<u64, Reply> {
    let invalid = || Reply::Error(format!("ERR invalid expire time in '{cmd}' command"));
    let n = arg_i64(val)?;
    if n <= 0 {
        return Err(invalid());
    }
    let (mul, relative) = match kind.to_ascii_lowercase().as_slice() {
        b"ex" => (1000, true),
        b"px" => (1, true),
        b"exat" => (1000, false),
        _ => (1, false),
    };
    let mut at = n.checked_mul(mul).ok_or_else(invalid)?;
    if relative {
        at = at.checked_add(ctx.now as i64).ok_or_else(invalid)?;
    }
    Ok(at as u64)
}

fn set(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let (key, val) = (&args[1], &args[2]);
        let (mut nx, mut xx, mut get) = (false, false, false);
        let mut exp = ExpireOpt::None;
        let mut exp_arg = None;
        let mut i = 3;
        while i < args.len() {
            let a = &args[i];
            let has_next = i + 1 < args.len();
            if eq_ic(a, "nx") && !xx {
                nx = true;
            } else if eq_ic(a, "xx") && !nx {
                xx = true;
            } else if eq_ic(a, "get") {
                get = true;
            } else if eq_ic(a, "keepttl") && matches!(exp, ExpireOpt::None | ExpireOpt::KeepTtl) {
                exp = ExpireOpt::KeepTtl;
            } else if is_time_opt(a) && may_repeat(&exp, exp_arg.map(|j| &args[j]), a) && has_next {
                // Validated once every option is parsed, as Redis does.
                exp_arg = Some(i);
                exp = ExpireOpt::At(0);
                i += 1;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        if let Some(j) = exp_arg {
            exp = ExpireOpt::At(expire_at(ctx, &args[j], &args[j + 1], "set")?);
        }
        // A plain SET overwrites whatever is there: one hash lookup, not two.
        if !nx && !xx && !get && exp == ExpireOpt::None {
            ctx.db().set(key, Value::str_from(val), 0);
            ctx.modified(key);
            return Ok(Reply::ok());
        }
        let old = get_str_any(ctx, key);
        if get {
            if let Some(Err(e)) = old {
                return Err(e);
            }
        }
        let exists = old.is_some();
        let old_reply = || match &old {
            Some(Ok(s)) => Reply::Bulk(s.clone()),
            _ => Reply::Nil,
        };
        if (nx && exists) || (xx && !exists) {
            return Ok(if get { old_reply() } else { Reply::Nil });
        }
        let keep = match exp {
            ExpireOpt::KeepTtl => ctx.lookup(key).map(|e| e.expire_at).unwrap_or(0),
            ExpireOpt::At(t) => t,
            _ => 0,
        };
        ctx.db().set(key, Value::str_from(val), keep);
        ctx.modified(key);
        if let ExpireOpt::At(t) = exp {
            // Relative expiries are logged as absolute times.
            ctx.propagate_as(vec![vec![
                Bytes::from_static(b"SET"),
                key.clone(),
                val.clone(),
                Bytes::from_static(b"PXAT"),
                Bytes::from(t.to_string()),
            ]]);
        } else if nx || xx || get {
            let mut cmd = vec![Bytes::from_static(b"SET"), key.clone(), val.clone()];
            if exp == ExpireOpt::KeepTtl {
                cmd.push(Bytes::from_static(b"KEEPTTL"));
            }
            ctx.propagate_as(vec![cmd]);
        }
        Ok(if get { old_reply() } else { Reply::ok() })
    })())
}

/// The old value for SET ... GET: None if missing, Some(Err) if wrong type.
fn get_str_any(ctx: &mut Ctx, key: &[u8]) -> Option<Result<Bytes, Reply>> {
    match get_str(ctx, key) {
        Ok(Some(s)) => Some(Ok(s)),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

fn setnx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if ctx.exists(&args[1]) {
        return Reply::Int(0);
    }
    ctx.set_value(&args[1], Value::str_from(&args[2]));
    ctx.modified(&args[1]);
    Reply::Int(1)
}

fn setex_generic(ctx: &mut Ctx, args: &[Bytes], unit: &[u8], cmd: &str) -> Reply {
    reply((|| {
        let at = expire_at(ctx, unit, &args[2], cmd)?;
        let key = &args[1];
        ctx.db().set(key, Value::str_from(&args[3]), at);
        ctx.modified(key);
        ctx.propagate_as(vec![vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            args[3].clone(),
            Bytes::from_static(b"PXAT"),
            Bytes::from(at.to_string()),
        ]]);
        Ok(Reply::ok())
    })())
}

fn setex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    setex_generic(ctx, args, b"ex", "setex")
}

fn psetex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    setex_generic(ctx, args, b"px", "psetex")
}

fn getset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let old = match get_str(ctx, &args[1]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    ctx.set_value(&args[1], Value::str_from(&args[2]));
    ctx.modified(&args[1]);
    ctx.propagate_as(vec![vec![
        Bytes::from_static(b"SET"),
        args[1].clone(),
        args[2].clone(),
    ]]);
    old.map(Reply::Bulk).unwrap_or(Reply::Nil)
}

fn getdel(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_str(ctx, &args[1]) {
        Ok(Some(s)) => {
            ctx.db().remove(&args[1]);
            ctx.modified(&args[1]);
            ctx.propagate_as(vec![vec![Bytes::from_static(b"DEL"), args[1].clone()]]);
            Reply::Bulk(s)
        }
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

fn getex(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let mut exp = ExpireOpt::None;
        let mut exp_arg = None;
        let mut i = 2;
        while i < args.len() {
            let a = &args[i];
            if is_time_opt(a)
                && may_repeat(&exp, exp_arg.map(|j| &args[j]), a)
                && i + 1 < args.len()
            {
                exp_arg = Some(i);
                exp = ExpireOpt::At(0);
                i += 1;
            } else if eq_ic(a, "persist") && matches!(exp, ExpireOpt::None | ExpireOpt::Persist) {
                exp = ExpireOpt::Persist;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        let Some(val) = get_str(ctx, key)? else {
            return Ok(Reply::Nil);
        };
        // Redis validates the time only once the key is known to be a string.
        if let Some(j) = exp_arg {
            exp = ExpireOpt::At(expire_at(ctx, &args[j], &args[j + 1], "getex")?);
        }
        match exp {
            ExpireOpt::At(t) if t <= ctx.now => {
                ctx.db().remove(key);
                ctx.modified(key);
                ctx.propagate_as(vec![vec![Bytes::from_static(b"DEL"), key.clone()]]);
            }
            ExpireOpt::At(t) => {
                ctx.db().set_expire(key, t);
                ctx.modified(key);
                ctx.propagate_as(vec![vec![
                    Bytes::from_static(b"PEXPIREAT"),
                    key.clone(),
                    Bytes::from(t.to_string()),
                ]]);
            }
            ExpireOpt::Persist if ctx.lookup(key).is_some_and(|e| e.expire_at != 0) => {
                ctx.db().set_expire(key, 0);
                ctx.modified(key);
                ctx.propagate_as(vec![vec![Bytes::from_static(b"PERSIST"), key.clone()]]);
            }
            _ => {}
        }
        Ok(Reply::Bulk(val))
    })())
}

fn mget(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let out = args[1..]
        .iter()
        .map(|k| match ctx.lookup_ro(k) {
            Some(e) => match &e.value {
                Value::Str(s) => Reply::Bulk(s.clone()),
                _ => Reply::Nil,
            },
            None => Reply::Nil,
        })
        .collect();
    Reply::Array(out)
}

fn mset(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return super::wrong_args("mset");
    }
    for pair in args[1..].chunks(2) {
        ctx.set_value(&pair[0], Value::str_from(&pair[1]));
        ctx.modified(&pair[0]);
    }
    Reply::ok()
}

fn msetnx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len().is_multiple_of(2) {
        return super::wrong_args("msetnx");
    }
    if args[1..].chunks(2).any(|p| ctx.exists(&p[0])) {
        return Reply::Int(0);
    }
    for pair in args[1..].chunks(2) {
        ctx.set_value(&pair[0], Value::str_from(&pair[1]));
        ctx.modified(&pair[0]);
    }
    Reply::Int(1)
}

/// Refuses a string that would exceed proto-max-bulk-len.
fn check_size(ctx: &Ctx, len: u64) -> Result<(), Reply> {
    if len > ctx.ex.config.proto_max_bulk_len {
        return Err(Reply::err(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    Ok(())
}

fn append(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let new_len = match ctx.lookup_typed(key, ValueType::String)? {
            None => {
                ctx.set_value(key, Value::str_from(&args[2]));
                args[2].len()
            }
            Some(e) => {
                let Value::Str(s) = &mut e.value else {
                    return Err(wrongtype());
                };
                let total = s.len() as u64 + args[2].len() as u64;
                if total > ctx.ex.config.proto_max_bulk_len {
                    return Err(Reply::err(
                        "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
                    ));
                }
                // Re-borrow after the config check.
                let e = ctx.lookup(key).ok_or_else(wrongtype)?;
                let Value::Str(s) = &mut e.value else {
                    return Err(wrongtype());
                };
                let mut v = Vec::with_capacity(total as usize);
                v.extend_from_slice(s);
                v.extend_from_slice(&args[2]);
                *s = Bytes::from(v);
                // Redis appends to its own copy of the value: a raw string.
                e.set_str_encoding(StrEncoding::Raw);
                total as usize
            }
        };
        ctx.modified(key);
        Ok(Reply::Int(new_len as i64))
    })())
}

fn strlen(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match get_str(ctx, &args[1]) {
        Ok(s) => Reply::Int(s.map(|s| s.len() as i64).unwrap_or(0)),
        Err(e) => e,
    }
}

fn getrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let start = arg_i64(&args[2])?;
        let end = arg_i64(&args[3])?;
        let Some(s) = get_str(ctx, &args[1])? else {
            return Ok(Reply::bulk(b""));
        };
        let len = s.len() as i64;
        if start < 0 && end < 0 && start > end {
            return Ok(Reply::bulk(b""));
        }
        let mut start = if start < 0 { len + start } else { start };
        let mut end = if end < 0 { len + end } else { end };
        start = start.max(0);
        end = end.max(0);
        if end >= len {
            end = len - 1;
        }
        if start > end || len == 0 {
            return Ok(Reply::bulk(b""));
        }
        Ok(Reply::Bulk(s.slice(start as usize..=end as usize)))
    })())
}

fn setrange(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let offset = arg_i64(&args[2])?;
        if offset < 0 {
            return Err(Reply::err("ERR offset is out of range"));
        }
        let value = &args[3];
        let current = get_str(ctx, key)?;
        let cur_len = current.as_ref().map(|s| s.len()).unwrap_or(0);
        if value.is_empty() {
            return Ok(Reply::Int(cur_len as i64));
        }
        check_size(ctx, offset as u64 + value.len() as u64)?;
        let offset = offset as usize;
        let mut v = current.map(|s| s.to_vec()).unwrap_or_default();
        if v.len() < offset + value.len() {
            v.resize(offset + value.len(), 0);
        }
        v[offset..offset + value.len()].copy_from_slice(value);
        let len = v.len();
        if ctx.lookup(key).is_none() {
            ctx.set_value(key, Value::Str(Bytes::new()));
        }
        // Redis writes into a buffer of its own, new or copied: raw.
        if let Some(e) = ctx.lookup(key) {
            e.value = Value::Str(Bytes::from(v));
            e.set_str_encoding(StrEncoding::Raw);
        }
        ctx.modified(key);
        Ok(Reply::Int(len as i64))
    })())
}

fn incr_generic(ctx: &mut Ctx, key: &Bytes, by: i64) -> Reply {
    reply((|| {
        let overflow = || Reply::err("ERR increment or decrement would overflow");
        // One lookup: the value is parsed and replaced where it lies.
        let new = match ctx.lookup(key) {
            Some(e) => {
                let Value::Str(s) = &mut e.value else {
                    return Err(wrongtype());
                };
                let cur = parse_i64(s).ok_or_else(not_integer)?;
                let new = cur.checked_add(by).ok_or_else(overflow)?;
                *s = int_bytes(new);
                // The result is an integer object, whatever the value was.
                e.set_str_encoding(StrEncoding::Auto);
                new
            }
            None => {
                let new = by;
                ctx.set_value(key, Value::Str(int_bytes(new)));
                new
            }
        };
        ctx.modified(key);
        Ok(Reply::Int(new))
    })())
}

/// The decimal text of `n` as an exact-size string value.
fn int_bytes(n: i64) -> Bytes {
    Bytes::copy_from_slice(crate::resp::itoa_buf(n).as_bytes())
}

fn incr(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    incr_generic(ctx, &args[1], 1)
}

fn decr(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    incr_generic(ctx, &args[1], -1)
}

fn incrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match arg_i64(&args[2]) {
        Ok(by) => incr_generic(ctx, &args[1], by),
        Err(e) => e,
    }
}

fn decrby(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match arg_i64(&args[2]) {
        Ok(i64::MIN) => Reply::err("ERR decrement would overflow"),
        Ok(by) => incr_generic(ctx, &args[1], -by),
        Err(e) => e,
    }
}

fn incrbyfloat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let cur = get_str(ctx, key)?.unwrap_or_else(|| Bytes::from_static(b"0"));
        let text = crate::longdouble::add(&cur, &args[2])?;
        let text = Bytes::from(text);
        if ctx.lookup(key).is_none() {
            ctx.set_value(key, Value::Str(Bytes::new()));
        }
        // Redis makes the result from its text, without the integer check
        // a SET of the same text gets.
        if let Some(e) = ctx.lookup(key) {
            e.value = Value::Str(text.clone());
            e.set_str_encoding(StrEncoding::NoInt);
        }
        ctx.modified(key);
        // Logged as the result, so replay does not depend on float rounding.
        ctx.propagate_as(vec![vec![
            Bytes::from_static(b"SET"),
            key.clone(),
            text.clone(),
            Bytes::from_static(b"KEEPTTL"),
        ]]);
        Ok(Reply::Bulk(text))
    })())
}
