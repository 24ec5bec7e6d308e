//! Persistence commands: SAVE, BGSAVE, LASTSAVE, DUMP, RESTORE.

use super::flags::*;
use super::{arg_i64, reply, syntax_error, CommandSpec, Ctx};
use crate::resp::Reply;
use crate::util::eq_ic;
use bytes::Bytes;
use redoubt_persist::rdb::{dump_payload, restore_payload};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "save",
        1,
        ADMIN | NOSCRIPT | NO_MULTI,
        (0, 0, 0),
        "server",
        save,
    ),
    CommandSpec::new("bgsave", -1, ADMIN | NOSCRIPT, (0, 0, 0), "server", bgsave),
    CommandSpec::new(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        (0, 0, 0),
        "server",
        lastsave,
    ),
    CommandSpec::new("dump", 2, READONLY, (1, 1, 1), "generic", dump),
    CommandSpec::new(
        "restore",
        -4,
        WRITE | DENYOOM,
        (1, 1, 1),
        "generic",
        restore,
    ),
];

fn save(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    match ctx.ex.save_now() {
        Ok(_) => Reply::ok(),
        Err(e) => Reply::Error(e),
    }
}

fn bgsave(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let schedule = match args.len() {
        1 => false,
        2 if eq_ic(&args[1], "schedule") => true,
        _ => return syntax_error(),
    };
    match ctx.ex.start_bgsave(schedule) {
        Ok(status) => Reply::Status(status),
        Err(e) => e,
    }
}

fn lastsave(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::Int(ctx.ex.lastsave as i64)
}

fn dump(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let version = ctx.ex.config.rdb_version as u32;
    match ctx.lookup(&args[1]) {
        None => Reply::Nil,
        Some(e) => match dump_payload(&e.value, version) {
            Ok(p) => Reply::Bulk(Bytes::from(p)),
            Err(e) => Reply::Error(format!("ERR {e}")),
        },
    }
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].
fn restore(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let mut replace = false;
        let mut absttl = false;
        let mut i = 4;
        while i < args.len() {
            let has_next = i + 1 < args.len();
            if eq_ic(&args[i], "replace") {
                replace = true;
            } else if eq_ic(&args[i], "absttl") {
                absttl = true;
            } else if eq_ic(&args[i], "idletime") && has_next {
                if arg_i64(&args[i + 1])? < 0 {
                    return Err(Reply::err("ERR Invalid IDLETIME value, must be >= 0"));
                }
                i += 1;
            } else if eq_ic(&args[i], "freq") && has_next {
                let f = arg_i64(&args[i + 1])?;
                if !(0..=255).contains(&f) {
                    return Err(Reply::err(
                        "ERR Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
                i += 1;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        let ttl = arg_i64(&args[2])?;
        if ttl < 0 {
            return Err(Reply::err("ERR Invalid TTL value, must be >= 0"));
        }
        if !replace && ctx.exists(key) {
            return Err(Reply::err("BUSYKEY Target key name already exists."));
        }
        let value = restore_payload(&args[3]).map_err(|e| Reply::Error(format!("ERR {e}")))?;
        let expire_at = match (ttl, absttl) {
            (0, _) => 0,
            (t, true) => t as u64,
            (t, false) => ctx.now.saturating_add(t as u64),
        };
        if expire_at != 0 && expire_at <= ctx.now {
            // Already expired: the key ends up absent, as in Redis.
            if ctx.db().remove(key).is_some() {
                ctx.modified(key);
                ctx.propagate_as(vec![vec![Bytes::from_static(b"DEL"), key.clone()]]);
            }
            return Ok(Reply::ok());
        }
        ctx.db().insert(key, value, expire_at);
        ctx.modified(key);
        // Logged with an absolute TTL, so replay does not depend on when.
        let mut cmd = vec![
            Bytes::from_static(b"RESTORE"),
            key.clone(),
            Bytes::from(expire_at.to_string()),
            args[3].clone(),
            Bytes::from_static(b"REPLACE"),
        ];
        if expire_at != 0 {
            cmd.push(Bytes::from_static(b"ABSTTL"));
        }
        ctx.propagate_as(vec![cmd]);
        Ok(Reply::ok())
    })())
}
