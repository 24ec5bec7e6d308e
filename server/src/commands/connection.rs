//! Connection commands (PING, ECHO, QUIT, HELLO, AUTH, SELECT, RESET) and
//! transactions (MULTI, EXEC, DISCARD, WATCH, UNWATCH).

use super::flags::*;
use super::{arg_i64, reply, syntax_error, CommandSpec, Ctx};
use crate::resp::Reply;
use crate::util::eq_ic;
use bytes::Bytes;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "ping",
        -1,
        FAST | STALE | PUBSUB_CONTEXT,
        (0, 0, 0),
        "connection",
        ping,
    ),
    CommandSpec::new("echo", 2, FAST | STALE, (0, 0, 0), "connection", echo),
    CommandSpec::new(
        "quit",
        -1,
        NO_AUTH | STALE | FAST | NO_QUEUE | PUBSUB_CONTEXT,
        (0, 0, 0),
        "connection",
        quit,
    ),
    CommandSpec::new(
        "hello",
        -1,
        NO_AUTH | STALE | FAST,
        (0, 0, 0),
        "connection",
        hello,
    ),
    CommandSpec::new(
        "auth",
        -2,
        NO_AUTH | STALE | FAST | NO_MULTI,
        (0, 0, 0),
        "connection",
        auth,
    ),
    CommandSpec::new(
        "select",
        2,
        LOADING | STALE | FAST,
        (0, 0, 0),
        "connection",
        select,
    ),
    CommandSpec::new(
        "reset",
        1,
        NO_AUTH | STALE | FAST | NO_QUEUE | PUBSUB_CONTEXT,
        (0, 0, 0),
        "connection",
        reset,
    ),
    CommandSpec::new(
        "multi",
        1,
        FAST | NO_QUEUE | LOADING | STALE,
        (0, 0, 0),
        "transactions",
        multi,
    ),
    CommandSpec::new(
        "exec",
        1,
        NO_QUEUE | LOADING | STALE,
        (0, 0, 0),
        "transactions",
        exec,
    ),
    CommandSpec::new(
        "discard",
        1,
        FAST | NO_QUEUE | LOADING | STALE,
        (0, 0, 0),
        "transactions",
        discard,
    ),
    CommandSpec::new(
        "watch",
        -2,
        FAST | NO_QUEUE | LOADING | STALE,
        (1, -1, 1),
        "transactions",
        watch,
    ),
    CommandSpec::new(
        "unwatch",
        1,
        FAST | LOADING | STALE,
        (0, 0, 0),
        "transactions",
        unwatch,
    ),
];

fn ping(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if args.len() > 2 {
        return super::wrong_args("ping");
    }
    if ctx.client.in_pubsub_mode() {
        let payload = args.get(1).cloned().unwrap_or_default();
        return Reply::Array(vec![Reply::bulk(b"pong"), Reply::Bulk(payload)]);
    }
    match args.get(1) {
        Some(m) => Reply::Bulk(m.clone()),
        None => Reply::Status("PONG"),
    }
}

fn echo(_ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    Reply::Bulk(args[1].clone())
}

fn quit(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.client.close_after_reply = true;
    Reply::ok()
}

fn select(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let idx = arg_i64(&args[1])?;
        if idx < 0 || idx as usize >= ctx.ex.ks.dbs.len() {
            return Err(Reply::err("ERR DB index is out of range"));
        }
        ctx.client.db = idx as usize;
        Ok(Reply::ok())
    })())
}

/// Checks a password against requirepass (the "default" user).
fn check_password(ctx: &mut Ctx, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Reply> {
    let configured = ctx.ex.config.requirepass.as_bytes();
    let user_ok = user.map(|u| u == b"default").unwrap_or(true);
    if configured.is_empty() {
        // The default user has no password: any password works with an
        // explicit "default" username, as in Redis 6+.
        if user.is_some() && user_ok {
            return Ok(());
        }
        return Err(Reply::err(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    if user_ok && pass == configured {
        Ok(())
    } else {
        Err(Reply::err(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

fn auth(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let res = match args.len() {
        2 => check_password(ctx, None, &args[1]),
        3 => check_password(ctx, Some(&args[1]), &args[2]),
        _ => return syntax_error(),
    };
    match res {
        Ok(()) => {
            ctx.client.authenticated = true;
            Reply::ok()
        }
        Err(e) => e,
    }
}

fn hello(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut proto = ctx.client.resp;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        match crate::util::parse_i64(v) {
            Some(2) => proto = 2,
            Some(3) => proto = 3,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
            None => {
                return Reply::err("ERR Protocol version is not an integer or out of range");
            }
        }
        i = 2;
    }
    while i < args.len() {
        let more = args.len() - i - 1;
        if eq_ic(&args[i], "auth") && more >= 2 {
            if let Err(e) = check_password(ctx, Some(&args[i + 1]), &args[i + 2]) {
                return e;
            }
            ctx.client.authenticated = true;
            i += 3;
        } else if eq_ic(&args[i], "setname") && more >= 1 {
            // Applied at once, as Redis does: a later bad option or a
            // missing AUTH does not undo it.
            let name = &args[i + 1];
            if let Err(e) = super::server::validate_client_name(name) {
                return e;
            }
            ctx.client.name = (!name.is_empty()).then(|| name.clone());
            i += 2;
        } else {
            return Reply::Error(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            ));
        }
    }
    if !ctx.client.authenticated && !ctx.ex.config.requirepass.is_empty() {
        return Reply::err("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time");
    }
    ctx.client.resp = proto;
    Reply::Map(vec![
        (Reply::bulk(b"server"), Reply::bulk(b"redis")),
        (
            Reply::bulk(b"version"),
            Reply::bulk_str(crate::REDIS_VERSION),
        ),
        (Reply::bulk(b"proto"), Reply::Int(proto as i64)),
        (Reply::bulk(b"id"), Reply::Int(ctx.client.id as i64)),
        (Reply::bulk(b"mode"), Reply::bulk(b"standalone")),
        (Reply::bulk(b"role"), Reply::bulk(b"master")),
        (Reply::bulk(b"modules"), Reply::Array(vec![])),
    ])
}

fn reset(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.client.multi = None;
    ctx.client.multi_error = false;
    ctx.ex.unwatch_all(ctx.client);
    ctx.ex.unblock(ctx.client);
    ctx.client.db = 0;
    ctx.client.resp = 2;
    ctx.client.name = None;
    ctx.ex.pubsub.forget(ctx.client);
    if !ctx.ex.config.requirepass.is_empty() {
        ctx.client.authenticated = false;
    }
    Reply::Status("RESET")
}

fn multi(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR MULTI calls can not be nested");
    }
    ctx.client.multi = Some(Vec::new());
    ctx.client.multi_error = false;
    Reply::ok()
}

fn discard(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    if ctx.client.multi.take().is_none() {
        return Reply::err("ERR DISCARD without MULTI");
    }
    ctx.client.multi_error = false;
    ctx.ex.unwatch_all(ctx.client);
    Reply::ok()
}

fn exec(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let Some(queue) = ctx.client.multi.take() else {
        return Reply::err("ERR EXEC without MULTI");
    };
    let aborted = std::mem::take(&mut ctx.client.multi_error);
    if aborted {
        ctx.ex.unwatch_all(ctx.client);
        return Reply::err("EXECABORT Transaction discarded because of previous errors.");
    }
    let dirty = ctx.ex.watch_dirty.contains(&ctx.client.id) || watched_key_expired(ctx);
    ctx.ex.unwatch_all(ctx.client);
    if dirty {
        return Reply::NilArray;
    }
    // run_exec logs the transaction itself, wrapped in MULTI ... EXEC.
    ctx.propagate = crate::commands::Propagate::Never;
    ctx.ex.run_exec(ctx.client, queue)
}

/// A watched key that has expired since WATCH counts as changed (Redis's
/// isWatchedKeyExpired): checked without deleting it.
fn watched_key_expired(ctx: &mut Ctx) -> bool {
    let now = ctx.now;
    ctx.client.watched.iter().any(|(db, key)| {
        ctx.ex.ks.dbs[*db]
            .peek(key)
            .map(|e| e.is_expired(now))
            .unwrap_or(false)
    })
}

fn watch(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR WATCH inside MULTI is not allowed");
    }
    for key in &args[1..] {
        // A key already expired at WATCH time is watched as absent.
        let _ = ctx.lookup(key);
        ctx.ex.watch(ctx.client, key.clone());
    }
    Reply::ok()
}

fn unwatch(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    ctx.ex.unwatch_all(ctx.client);
    Reply::ok()
}
