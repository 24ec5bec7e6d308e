//! Generic key commands: DEL, EXISTS, TYPE, RENAME, COPY, MOVE, KEYS, SCAN,
//! RANDOMKEY, the EXPIRE family, TTL family, PERSIST, TOUCH, OBJECT.

use super::flags::*;
use super::{arg_i64, no_such_key, reply, syntax_error, CommandSpec, Ctx};
use crate::config::Config;
use crate::resp::Reply;
use crate::util::{eq_ic, glob_match, parse_i64};
use bytes::Bytes;
use redoubt_persist::entry::StrEncoding;
use redoubt_persist::{Db, Entry, Value, ValueType};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("del", -2, WRITE, (1, -1, 1), "generic", del),
    CommandSpec::new("unlink", -2, WRITE | FAST, (1, -1, 1), "generic", del),
    CommandSpec::new("exists", -2, READONLY | FAST, (1, -1, 1), "generic", exists),
    CommandSpec::new("type", 2, READONLY | FAST, (1, 1, 1), "generic", type_cmd),
    CommandSpec::new("rename", 3, WRITE, (1, 2, 1), "generic", rename),
    CommandSpec::new("renamenx", 3, WRITE | FAST, (1, 2, 1), "generic", renamenx),
    CommandSpec::new("copy", -3, WRITE | DENYOOM, (1, 2, 1), "generic", copy),
    CommandSpec::new("move", 3, WRITE | FAST, (1, 1, 1), "generic", move_cmd),
    CommandSpec::new("keys", 2, READONLY, (0, 0, 0), "generic", keys),
    CommandSpec::new("scan", -2, READONLY, (0, 0, 0), "generic", scan),
    CommandSpec::new("randomkey", 1, READONLY, (0, 0, 0), "generic", randomkey),
    CommandSpec::new("expire", -3, WRITE | FAST, (1, 1, 1), "generic", expire),
    CommandSpec::new("pexpire", -3, WRITE | FAST, (1, 1, 1), "generic", pexpire),
    CommandSpec::new("expireat", -3, WRITE | FAST, (1, 1, 1), "generic", expireat),
    CommandSpec::new(
        "pexpireat",
        -3,
        WRITE | FAST,
        (1, 1, 1),
        "generic",
        pexpireat,
    ),
    CommandSpec::new("ttl", 2, READONLY | FAST, (1, 1, 1), "generic", ttl),
    CommandSpec::new("pttl", 2, READONLY | FAST, (1, 1, 1), "generic", pttl),
    CommandSpec::new(
        "expiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        "generic",
        expiretime,
    ),
    CommandSpec::new(
        "pexpiretime",
        2,
        READONLY | FAST,
        (1, 1, 1),
        "generic",
        pexpiretime,
    ),
    CommandSpec::new("persist", 2, WRITE | FAST, (1, 1, 1), "generic", persist),
    CommandSpec::new("touch", -2, READONLY | FAST, (1, -1, 1), "generic", touch),
    CommandSpec::new("object", -2, READONLY, (2, 2, 1), "generic", object),
];

fn del(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &args[1..] {
        if ctx.lookup(key).is_some() {
            ctx.db().remove(key);
            ctx.modified(key);
            n += 1;
        }
    }
    Reply::Int(n)
}

fn exists(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let n = args[1..].iter().filter(|k| ctx.exists(k)).count();
    Reply::Int(n as i64)
}

fn type_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    match ctx.lookup(&args[1]) {
        Some(e) => Reply::Status(e.value.value_type().name()),
        None => Reply::Status("none"),
    }
}

fn rename_generic(ctx: &mut Ctx, args: &[Bytes], nx: bool) -> Reply {
    let (src, dst) = (&args[1], &args[2]);
    let Some(e) = ctx.lookup(src) else {
        return no_such_key();
    };
    let (expire, enc) = (e.expire_at, e.str_encoding());
    if src == dst {
        return if nx { Reply::Int(0) } else { Reply::ok() };
    }
    if nx && ctx.exists(dst) {
        return Reply::Int(0);
    }
    let Some(old) = ctx.db().remove(src) else {
        return no_such_key();
    };
    ctx.db().insert(dst, old.value, expire);
    let now = ctx.now;
    keep_str_encoding(ctx.db(), dst, enc, now);
    ctx.modified(src);
    ctx.modified(dst);
    if nx {
        Reply::Int(1)
    } else {
        Reply::ok()
    }
}

/// RENAME, MOVE and COPY keep the string's Redis encoding (Redis moves or
/// duplicates the object as it is); an insert starts a new one as
/// [`StrEncoding::Auto`].
fn keep_str_encoding(db: &mut Db, key: &[u8], enc: StrEncoding, now: u64) {
    if enc != StrEncoding::Auto {
        if let Some(e) = db.get(key, now) {
            e.set_str_encoding(enc);
        }
    }
}

fn rename(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    rename_generic(ctx, args, false)
}

fn renamenx(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    rename_generic(ctx, args, true)
}

fn db_index(ctx: &Ctx, arg: &[u8]) -> Result<usize, Reply> {
    let idx =
        parse_i64(arg).ok_or_else(|| Reply::err("ERR value is not an integer or out of range"))?;
    if idx < 0 || idx as usize >= ctx.ex.ks.dbs.len() {
        return Err(Reply::err("ERR DB index is out of range"));
    }
    Ok(idx as usize)
}

fn copy(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let (src, dst) = (&args[1], &args[2]);
        let mut target_db = ctx.client.db;
        let mut replace = false;
        let mut i = 3;
        while i < args.len() {
            if eq_ic(&args[i], "replace") {
                replace = true;
            } else if eq_ic(&args[i], "db") && i + 1 < args.len() {
                target_db = db_index(ctx, &args[i + 1])?;
                i += 1;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        if target_db == ctx.client.db && src == dst {
            return Err(Reply::err(
                "ERR source and destination objects are the same",
            ));
        }
        let Some(e) = ctx.lookup(src) else {
            return Ok(Reply::Int(0));
        };
        let (value, expire, enc) = (e.value.clone(), e.expire_at, e.str_encoding());
        let now = ctx.now;
        let target = &mut ctx.ex.ks.dbs[target_db];
        if target.get(dst, now).is_some() {
            if !replace {
                return Ok(Reply::Int(0));
            }
            target.remove(dst);
        }
        target.insert(dst, value, expire);
        keep_str_encoding(target, dst, enc, now);
        ctx.modified_in(target_db, dst);
        Ok(Reply::Int(1))
    })())
}

fn move_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let target_db = db_index(ctx, &args[2])?;
        if target_db == ctx.client.db {
            return Err(Reply::err(
                "ERR source and destination objects are the same",
            ));
        }
        let Some(enc) = ctx.lookup(key).map(|e| e.str_encoding()) else {
            return Ok(Reply::Int(0));
        };
        let now = ctx.now;
        if ctx.ex.ks.dbs[target_db].get(key, now).is_some() {
            return Ok(Reply::Int(0));
        }
        let Some(e) = ctx.db().remove(key) else {
            return Ok(Reply::Int(0));
        };
        ctx.ex.ks.dbs[target_db].insert(key, e.value, e.expire_at);
        keep_str_encoding(&mut ctx.ex.ks.dbs[target_db], key, enc, now);
        ctx.modified(key);
        ctx.modified_in(target_db, key);
        Ok(Reply::Int(1))
    })())
}

fn keys(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let pattern = &args[1];
    let now = ctx.now;
    let all = pattern.as_ref() == b"*";
    let out: Vec<Reply> = ctx
        .db()
        .iter()
        .filter(|e| !e.is_expired(now) && (all || glob_match(pattern, &e.key, false)))
        .map(|e| Reply::bulk(&e.key))
        .collect();
    Reply::Array(out)
}

/// Parses a SCAN cursor as Redis does (an unsigned 64-bit integer).
pub fn parse_cursor(a: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(a)
        .ok()
        .filter(|s| !s.starts_with('+') && !s.is_empty())
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("ERR invalid cursor"))
}

fn scan(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let cursor = parse_cursor(&args[1])?;
        let mut pattern: Option<&Bytes> = None;
        let mut count = 10usize;
        let mut type_filter: Option<Option<ValueType>> = None;
        let mut i = 2;
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
            } else if eq_ic(&args[i], "type") && has_val {
                type_filter = Some(ValueType::from_name(&args[i + 1]));
            } else {
                return Err(syntax_error());
            }
            i += 2;
        }
        let now = ctx.now;
        let mut keys = Vec::new();
        let next = ctx.db().scan(cursor, count, |e| {
            if e.is_expired(now) {
                return;
            }
            if let Some(p) = pattern {
                if !glob_match(p, &e.key, false) {
                    return;
                }
            }
            if let Some(t) = type_filter {
                if t != Some(e.value.value_type()) {
                    return;
                }
            }
            keys.push(Reply::bulk(&e.key));
        });
        Ok(Reply::Array(vec![
            Reply::bulk_str(&next.to_string()),
            Reply::Array(keys),
        ]))
    })())
}

fn randomkey(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let now = ctx.now;
    let db = ctx.client.db;
    let ex = &mut *ctx.ex;
    match ex.ks.dbs[db].random_key(now, &mut ex.rng) {
        Some(k) => Reply::bulk(&k),
        None => Reply::Nil,
    }
}

/// EXPIRE-family flags.
#[derive(Default)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

fn parse_expire_flags(args: &[Bytes]) -> Result<ExpireFlags, Reply> {
    let mut f = ExpireFlags::default();
    for a in args {
        if eq_ic(a, "nx") {
            f.nx = true;
        } else if eq_ic(a, "xx") {
            f.xx = true;
        } else if eq_ic(a, "gt") {
            f.gt = true;
        } else if eq_ic(a, "lt") {
            f.lt = true;
        } else {
            return Err(Reply::Error(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Reply::err(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Reply::err(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT: `unit_ms` is 1000 for seconds;
/// `relative` adds the current time. Propagated as PEXPIREAT (absolute), or
/// as DEL when the time is already past.
fn expire_generic(ctx: &mut Ctx, args: &[Bytes], unit_ms: i64, relative: bool) -> Reply {
    reply((|| {
        let key = &args[1];
        let flags = parse_expire_flags(&args[3..])?;
        let when = arg_i64(&args[2])?;
        let invalid = || {
            Reply::Error(format!(
                "ERR invalid expire time in '{}' command",
                String::from_utf8_lossy(&args[0]).to_ascii_lowercase()
            ))
        };
        let mut at = when.checked_mul(unit_ms).ok_or_else(invalid)?;
        if relative {
            at = at.checked_add(ctx.now as i64).ok_or_else(invalid)?;
        }
        let Some(e) = ctx.lookup(key) else {
            return Ok(Reply::Int(0));
        };
        let current = e.expire_at;
        if flags.nx && current != 0 || flags.xx && current == 0 {
            return Ok(Reply::Int(0));
        }
        // A key without expiry has an infinite TTL: never "greater", always "less".
        if flags.gt && (current == 0 || at <= current as i64) {
            return Ok(Reply::Int(0));
        }
        if flags.lt && current != 0 && at >= current as i64 {
            return Ok(Reply::Int(0));
        }
        if at <= ctx.now as i64 {
            ctx.db().remove(key);
            ctx.modified(key);
            ctx.propagate_as(vec![vec![Bytes::from_static(b"DEL"), key.clone()]]);
            return Ok(Reply::Int(1));
        }
        ctx.db().set_expire(key, at as u64);
        ctx.modified(key);
        ctx.propagate_as(vec![vec![
            Bytes::from_static(b"PEXPIREAT"),
            key.clone(),
            Bytes::from(at.to_string()),
        ]]);
        Ok(Reply::Int(1))
    })())
}

fn expire(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, 1000, true)
}

fn pexpire(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, 1, true)
}

fn expireat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, 1000, false)
}

fn pexpireat(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    expire_generic(ctx, args, 1, false)
}

/// TTL family: `remaining` selects relative (TTL) or absolute (EXPIRETIME),
/// `ms` the unit.
fn ttl_generic(ctx: &mut Ctx, key: &[u8], remaining: bool, ms: bool) -> Reply {
    let now = ctx.now;
    let Some(e) = ctx.lookup(key) else {
        return Reply::Int(-2);
    };
    if e.expire_at == 0 {
        return Reply::Int(-1);
    }
    let v = if remaining {
        e.expire_at.saturating_sub(now)
    } else {
        e.expire_at
    };
    Reply::Int(if ms {
        v as i64
    } else if remaining {
        v.div_ceil(1000) as i64
    } else {
        (v / 1000) as i64
    })
}

fn ttl(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], true, false)
}

fn pttl(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], true, true)
}

fn expiretime(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], false, false)
}

fn pexpiretime(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    ttl_generic(ctx, &args[1], false, true)
}

fn persist(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let key = &args[1];
    match ctx.lookup(key) {
        Some(e) if e.expire_at != 0 => {
            ctx.db().set_expire(key, 0);
            ctx.modified(key);
            Reply::Int(1)
        }
        _ => Reply::Int(0),
    }
}

fn touch(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    exists(ctx, args)
}

/// The encoding Redis 7.0 reports for a key's value with the given
/// configuration.
pub fn object_encoding(e: &Entry, cfg: &Config) -> &'static str {
    match &e.value {
        Value::Str(s) => {
            // Redis's tryObjectEncoding (what SET and loads apply) and
            // createStringObject (what INCRBYFLOAT uses) rules.
            let enc = e.str_encoding();
            if enc == StrEncoding::Auto && s.len() <= 20 && parse_i64(s).is_some() {
                "int"
            } else if enc != StrEncoding::Raw && s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::List(_) => "quicklist",
        Value::Hash(h) => {
            if h.is_hashtable() {
                "hashtable"
            } else {
                "listpack"
            }
        }
        Value::Set(s) => {
            if s.hashtable || s.members.len() as u64 > cfg.set_max_intset_entries {
                "hashtable"
            } else {
                "intset"
            }
        }
        Value::ZSet(z) => {
            if z.skiplist {
                "skiplist"
            } else {
                "listpack"
            }
        }
        Value::Stream(_) => "stream",
    }
}

fn object(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ic(sub, "help") {
        return Reply::Array(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "    Return the kind of internal representation used in order to store the value",
                "    associated with a <key>.",
                "FREQ <key>",
                "    Return the access frequency index of the <key>. The returned integer is",
                "    proportional to the logarithm of the recent access frequency of the key.",
                "IDLETIME <key>",
                "    Return the idle time of the <key>, that is the approximated number of",
                "    seconds elapsed since the last access to the key.",
                "REFCOUNT <key>",
                "    Return the number of references of the value associated with the specified",
                "    <key>.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Reply::StatusOwned(s.to_string()))
            .collect(),
        );
    }
    if args.len() != 3 {
        return super::unknown_subcommand("object", sub);
    }
    let now = ctx.now;
    let clock = (now / 1000) as u32;
    let policy_lfu = ctx.ex.config.maxmemory_policy.contains("lfu");
    let db = ctx.client.db;
    // OBJECT does not count as an access: peek, after expiring lazily.
    let _ = ctx.ex.ks.dbs[db].get(&args[2], now).map(|_| ());
    let Some(e) = ctx.ex.ks.dbs[db].peek(&args[2]) else {
        return Reply::Nil;
    };
    if eq_ic(sub, "encoding") {
        Reply::bulk_str(object_encoding(e, &ctx.ex.config))
    } else if eq_ic(sub, "refcount") {
        Reply::Int(1)
    } else if eq_ic(sub, "idletime") {
        if policy_lfu {
            return Reply::err("ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
        }
        Reply::Int(clock.saturating_sub(e.access) as i64)
    } else if eq_ic(sub, "freq") {
        if !policy_lfu {
            return Reply::err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.");
        }
        Reply::Int(0)
    } else {
        super::unknown_subcommand("object", sub)
    }
}
