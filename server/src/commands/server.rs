//! Server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB, TIME, INFO, CONFIG,
//! CLIENT, COMMAND, SHUTDOWN, DEBUG, FUNCTION, MEMORY, LASTSAVE.

use super::flags::*;
use super::{arg_i64, reply, syntax_error, unknown_subcommand, wrong_args, CommandSpec, Ctx};
use crate::client::Outgoing;
use crate::config::{self, Enable};
use crate::exec::ShutdownMode;
use crate::resp::Reply;
use crate::util::{eq_ic, glob_match};
use bytes::Bytes;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("dbsize", 1, READONLY | FAST, (0, 0, 0), "server", dbsize),
    CommandSpec::new("flushdb", -1, WRITE, (0, 0, 0), "server", flushdb),
    CommandSpec::new("flushall", -1, WRITE, (0, 0, 0), "server", flushall),
    CommandSpec::new("swapdb", 3, WRITE | FAST, (0, 0, 0), "server", swapdb),
    CommandSpec::new("time", 1, LOADING | STALE | FAST, (0, 0, 0), "server", time),
    CommandSpec::new(
        "info",
        -1,
        LOADING | STALE,
        (0, 0, 0),
        "server",
        crate::info::info,
    ),
    CommandSpec::new(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "server",
        config_cmd,
    ),
    CommandSpec::new(
        "client",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "connection",
        client,
    ),
    CommandSpec::new("command", -1, LOADING | STALE, (0, 0, 0), "server", command),
    CommandSpec::new(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE | NO_MULTI,
        (0, 0, 0),
        "server",
        shutdown,
    ),
    CommandSpec::new(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "server",
        debug,
    ),
    CommandSpec::new("function", -2, NOSCRIPT, (0, 0, 0), "scripting", function),
    CommandSpec::new("memory", -2, READONLY, (0, 0, 0), "server", memory),
];

fn dbsize(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    Reply::Int(ctx.db().len() as i64)
}

/// FLUSHDB / FLUSHALL take an optional ASYNC or SYNC.
fn flush_mode_ok(args: &[Bytes]) -> bool {
    match args.len() {
        1 => true,
        2 => eq_ic(&args[1], "async") || eq_ic(&args[1], "sync"),
        _ => false,
    }
}

fn flushdb(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if !flush_mode_ok(args) {
        return syntax_error();
    }
    let db = ctx.client.db;
    flush_one(ctx, db);
    Reply::ok()
}

fn flush_one(ctx: &mut Ctx, db: usize) {
    ctx.ex.touch_all_watched(db);
    let n = ctx.ex.ks.dbs[db].len() as u64;
    ctx.ex.ks.dbs[db].clear();
    // A flush is logged even when the db was empty, as Redis does.
    ctx.add_dirty(n.max(1));
}

fn flushall(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if !flush_mode_ok(args) {
        return syntax_error();
    }
    ctx.ex.kill_bgsave();
    for db in 0..ctx.ex.ks.dbs.len() {
        flush_one(ctx, db);
    }
    // As Redis: with save points configured, FLUSHALL writes an empty dump
    // at once (the change still counts, so it is logged and saved again).
    if !ctx.ex.config.save.is_empty() {
        let dirty = ctx.ex.dirty;
        let _ = ctx.ex.save_now();
        ctx.ex.dirty = dirty;
    }
    Reply::ok()
}

fn swapdb(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let parse = |a: &[u8], which: &str| {
        crate::util::parse_i64(a)
            .ok_or_else(|| Reply::Error(format!("ERR invalid {which} DB index")))
    };
    reply((|| {
        let a = parse(&args[1], "first")?;
        let b = parse(&args[2], "second")?;
        let n = ctx.ex.ks.dbs.len() as i64;
        if a < 0 || a >= n || b < 0 || b >= n {
            return Err(Reply::err("ERR DB index is out of range"));
        }
        let (a, b) = (a as usize, b as usize);
        if a != b {
            ctx.ex.touch_all_watched(a);
            ctx.ex.touch_all_watched(b);
            ctx.ex.ks.dbs.swap(a, b);
            ctx.ex.touch_all_watched(a);
            ctx.ex.touch_all_watched(b);
        }
        ctx.add_dirty(1);
        Ok(Reply::ok())
    })())
}

fn time(_ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    let us = crate::util::now_us();
    Reply::Array(vec![
        Reply::bulk_str(&(us / 1_000_000).to_string()),
        Reply::bulk_str(&(us % 1_000_000).to_string()),
    ])
}

// ---- CONFIG -----------------------------------------------------------

fn config_cmd(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ic(sub, "get") {
        if args.len() < 3 {
            return wrong_args("config|get");
        }
        let pats: Vec<&[u8]> = args[2..].iter().map(|a| a.as_ref()).collect();
        let pairs = ctx.ex.config.get_matching(&pats);
        Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (Reply::bulk_str(&k), Reply::bulk_str(&v)))
                .collect(),
        )
    } else if eq_ic(sub, "set") {
        if args.len() < 4 {
            return wrong_args("config|set");
        }
        if !args.len().is_multiple_of(2) {
            return syntax_error();
        }
        config_set(ctx, &args[2..])
    } else if eq_ic(sub, "resetstat") {
        if args.len() != 2 {
            return wrong_args("config|resetstat");
        }
        ctx.ex.stats = Default::default();
        for s in ctx.ex.cmdstats.iter_mut() {
            *s = Default::default();
        }
        Reply::ok()
    } else if eq_ic(sub, "rewrite") {
        Reply::err("ERR The server is running without a config file")
    } else if eq_ic(sub, "help") {
        help_reply(&[
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their values.",
            "SET <directive> <value>",
            "    Set the configuration <directive> to <value>.",
            "RESETSTAT",
            "    Reset statistics reported by the INFO command.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Prints this help.",
        ])
    } else {
        unknown_subcommand("config", sub)
    }
}

/// CONFIG SET name value [name value ...], all or nothing.
fn config_set(ctx: &mut Ctx, pairs: &[Bytes]) -> Reply {
    let fail = |name: &str, why: &str| {
        Reply::Error(format!(
            "ERR CONFIG SET failed (possibly related to argument '{name}') - {why}"
        ))
    };
    let mut new = ctx.ex.config.clone();
    let mut seen: Vec<&'static str> = Vec::new();
    let protected_ok = match ctx.ex.config.enable_protected_configs {
        Enable::Yes => true,
        Enable::Local => ctx.client.is_local,
        Enable::No => false,
    };
    // As Redis: check every name first (the first problem wins), then set
    // the values.
    let mut params = Vec::new();
    for pair in pairs.chunks(2) {
        let name = String::from_utf8_lossy(&pair[0]).into_owned();
        let Some(param) = config::find(&name) else {
            return Reply::Error(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
            ));
        };
        if param.flags & config::IMMUTABLE != 0 {
            return fail(&name, "can't set immutable config");
        }
        if param.flags & config::PROTECTED != 0 && !protected_ok {
            return fail(&name, "can't set protected config");
        }
        if seen.contains(&param.name) {
            return fail(&name, "duplicate parameter");
        }
        seen.push(param.name);
        params.push((name, param, String::from_utf8_lossy(&pair[1]).into_owned()));
    }
    for (name, param, value) in params {
        if let Err(why) = (param.set)(&mut new, &[value]) {
            return fail(&name, &why);
        }
    }
    if new.dir != ctx.ex.config.dir {
        if let Err(e) = std::env::set_current_dir(&new.dir) {
            return fail("dir", &e.to_string());
        }
    }
    ctx.ex.config = new;
    Reply::ok()
}

pub fn help_reply(lines: &[&str]) -> Reply {
    Reply::Array(
        lines
            .iter()
            .map(|s| Reply::StatusOwned(s.to_string()))
            .collect(),
    )
}

// ---- CLIENT -----------------------------------------------------------

/// Client names may not contain spaces or special characters.
pub fn validate_client_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn client(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    let sub_l = String::from_utf8_lossy(sub).to_ascii_lowercase();
    match sub_l.as_str() {
        "id" if args.len() == 2 => Reply::Int(ctx.client.id as i64),
        "getname" if args.len() == 2 => match &ctx.client.name {
            Some(n) => Reply::Bulk(n.clone()),
            None => Reply::Nil,
        },
        "setname" if args.len() == 3 => {
            if let Err(e) = validate_client_name(&args[2]) {
                return e;
            }
            ctx.client.name = (!args[2].is_empty()).then(|| args[2].clone());
            Reply::ok()
        }
        "info" if args.len() == 2 => Reply::Verbatim(format!("{}\n", ctx.client.info_line())),
        "list" => client_list(ctx, args),
        "kill" => client_kill(ctx, args),
        "unblock" if args.len() == 3 || args.len() == 4 => client_unblock(ctx, args),
        "no-evict" | "no-touch" if args.len() == 3 => Reply::ok(),
        "reply" if args.len() == 3 => Reply::ok(),
        "help" => help_reply(&[
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "ID",
            "INFO",
            "KILL <ip:port> | <option> <value> [...]",
            "LIST [options ...]",
            "SETNAME <name>",
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "HELP",
        ]),
        "id" | "getname" | "setname" | "info" | "unblock" | "no-evict" | "no-touch" | "reply" => {
            wrong_args(&format!("client|{sub_l}"))
        }
        _ => unknown_subcommand("client", sub),
    }
}

/// CLIENT LIST lines for every client (the caller's own state included).
fn client_lines(ctx: &Ctx, filter: impl Fn(u64) -> bool) -> String {
    let mut ids: Vec<u64> = ctx.ex.clients.keys().copied().collect();
    ids.sort_unstable();
    let mut out = String::new();
    for id in ids.into_iter().filter(|id| filter(*id)) {
        if id == ctx.client.id {
            out.push_str(&ctx.client.info_line());
        } else if let Some(c) = ctx.ex.clients.get(&id) {
            match c.try_borrow() {
                Ok(c) => out.push_str(&c.info_line()),
                Err(_) => continue,
            }
        }
        out.push('\n');
    }
    out
}

fn client_list(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while i < args.len() {
        if eq_ic(&args[i], "type") && i + 1 < args.len() {
            let t = String::from_utf8_lossy(&args[i + 1]).to_ascii_lowercase();
            if !["normal", "master", "replica", "slave", "pubsub"].contains(&t.as_str()) {
                return Reply::Error(format!("ERR Unknown client type '{t}'"));
            }
            if t != "normal" && t != "pubsub" {
                return Reply::Verbatim(String::new());
            }
            i += 2;
        } else if eq_ic(&args[i], "id") && i + 1 < args.len() {
            let mut v = Vec::new();
            for a in &args[i + 1..] {
                match crate::util::parse_i64(a) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Reply::err("ERR Invalid client ID"),
                }
            }
            ids = Some(v);
            break;
        } else {
            return syntax_error();
        }
    }
    let lines = client_lines(ctx, |id| {
        ids.as_ref().map(|v| v.contains(&id)).unwrap_or(true)
    });
    Reply::Verbatim(lines)
}

fn client_kill(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    // Old form: CLIENT KILL addr:port -> +OK or error.
    if args.len() == 3 {
        let addr = String::from_utf8_lossy(&args[2]).into_owned();
        let n = kill_where(ctx, |c| c.addr == addr, false);
        return if n > 0 {
            Reply::ok()
        } else {
            Reply::err("ERR No such client")
        };
    }
    if !args.len().is_multiple_of(2) {
        return syntax_error();
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut skipme = true;
    for pair in args[2..].chunks(2) {
        let v = String::from_utf8_lossy(&pair[1]).into_owned();
        if eq_ic(&pair[0], "id") {
            match v.parse::<u64>() {
                Ok(n) if n > 0 => id = Some(n),
                _ => return Reply::err("ERR client-id should be greater than 0"),
            }
        } else if eq_ic(&pair[0], "addr") {
            addr = Some(v);
        } else if eq_ic(&pair[0], "laddr") {
            laddr = Some(v);
        } else if eq_ic(&pair[0], "skipme") {
            skipme = match v.to_ascii_lowercase().as_str() {
                "yes" => true,
                "no" => false,
                _ => return syntax_error(),
            };
        } else if eq_ic(&pair[0], "type") || eq_ic(&pair[0], "user") || eq_ic(&pair[0], "maxage") {
            // Accepted filters that match every normal client.
        } else {
            return syntax_error();
        }
    }
    let n = kill_where(
        ctx,
        |c| {
            id.map(|i| c.id == i).unwrap_or(true)
                && addr.as_ref().map(|a| &c.addr == a).unwrap_or(true)
                && laddr.as_ref().map(|a| &c.laddr == a).unwrap_or(true)
        },
        skipme,
    );
    Reply::Int(n as i64)
}

/// Closes every client matching `pred`; returns how many.
fn kill_where(ctx: &mut Ctx, pred: impl Fn(&crate::client::Client) -> bool, skipme: bool) -> usize {
    let mut n = 0;
    if !skipme && pred(ctx.client) {
        ctx.client.close_after_reply = true;
        n += 1;
    }
    let others: Vec<_> = ctx
        .ex
        .clients
        .iter()
        .filter(|(id, _)| **id != ctx.client.id)
        .map(|(_, c)| c.clone())
        .collect();
    for c in others {
        let Ok(c) = c.try_borrow() else { continue };
        if pred(&c) {
            let _ = c.tx.send(Outgoing::Close);
            n += 1;
        }
    }
    n
}

fn client_unblock(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let Some(id) = crate::util::parse_i64(&args[2]) else {
        return Reply::err("ERR value is not an integer or out of range");
    };
    let as_error = match args.get(3) {
        None => false,
        Some(a) if eq_ic(a, "timeout") => false,
        Some(a) if eq_ic(a, "error") => true,
        Some(_) => return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let Some(rc) = ctx.ex.clients.get(&(id as u64)).cloned() else {
        return Reply::Int(0);
    };
    if id as u64 == ctx.client.id {
        return Reply::Int(0);
    }
    let Ok(mut c) = rc.try_borrow_mut() else {
        return Reply::Int(0);
    };
    let Some(st) = ctx.ex.unblock(&mut c) else {
        return Reply::Int(0);
    };
    let reply = if as_error {
        Reply::err("UNBLOCKED client unblocked via CLIENT UNBLOCK")
    } else {
        st.timeout_reply
    };
    let _ = c.tx.send(Outgoing::Reply(reply, ctx.ex.lsn));
    Reply::Int(1)
}

// ---- COMMAND ----------------------------------------------------------

fn command_info(spec: &CommandSpec) -> Reply {
    let flags: Vec<Reply> = config_flag_names(spec.flags)
        .into_iter()
        .map(Reply::Status)
        .collect();
    Reply::Array(vec![
        Reply::bulk_str(spec.name),
        Reply::Int(spec.arity as i64),
        Reply::Set(flags),
        Reply::Int(spec.first_key as i64),
        Reply::Int(spec.last_key as i64),
        Reply::Int(spec.step as i64),
        Reply::Set(vec![Reply::Status(acl_category(spec.group))]),
        Reply::Set(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn acl_category(group: &str) -> &'static str {
    match group {
        "string" => "@string",
        "list" => "@list",
        "hash" => "@hash",
        "set" => "@set",
        "sorted-set" => "@sortedset",
        "stream" => "@stream",
        "pubsub" => "@pubsub",
        "transactions" => "@transaction",
        "connection" => "@connection",
        "scripting" => "@scripting",
        "generic" => "@keyspace",
        _ => "@admin",
    }
}

fn config_flag_names(f: u32) -> Vec<&'static str> {
    crate::commands::flags::NAMES
        .iter()
        .filter(|(bit, _)| f & bit != 0)
        .map(|(_, n)| *n)
        .collect()
}

fn command(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let specs = &ctx.ex.specs;
    if args.len() == 1 {
        return Reply::Array(specs.iter().map(|s| command_info(s)).collect());
    }
    let sub = &args[1];
    let find = |name: &[u8]| ctx.ex.lookup_command(name).map(|i| ctx.ex.specs[i]);
    if eq_ic(sub, "count") {
        Reply::Int(specs.len() as i64)
    } else if eq_ic(sub, "info") {
        if args.len() == 2 {
            return Reply::Array(specs.iter().map(|s| command_info(s)).collect());
        }
        Reply::Array(
            args[2..]
                .iter()
                .map(|n| find(n).map(command_info).unwrap_or(Reply::NilArray))
                .collect(),
        )
    } else if eq_ic(sub, "docs") {
        let chosen: Vec<&CommandSpec> = if args.len() == 2 {
            specs.to_vec()
        } else {
            args[2..].iter().filter_map(|n| find(n)).collect()
        };
        Reply::Map(
            chosen
                .into_iter()
                .map(|s| {
                    (
                        Reply::bulk_str(s.name),
                        Reply::Map(vec![
                            (Reply::bulk(b"summary"), Reply::bulk(b"")),
                            (Reply::bulk(b"since"), Reply::bulk(b"1.0.0")),
                            (Reply::bulk(b"group"), Reply::bulk_str(s.group)),
                        ]),
                    )
                })
                .collect(),
        )
    } else if eq_ic(sub, "list") {
        let pattern =
            if args.len() == 5 && eq_ic(&args[2], "filterby") && eq_ic(&args[3], "pattern") {
                Some(args[4].clone())
            } else {
                None
            };
        Reply::Array(
            specs
                .iter()
                .filter(|s| {
                    pattern
                        .as_ref()
                        .map(|p| glob_match(p, s.name.as_bytes(), true))
                        .unwrap_or(true)
                })
                .map(|s| Reply::bulk_str(s.name))
                .collect(),
        )
    } else if eq_ic(sub, "getkeys") {
        let Some(spec) = find(&args[2]) else {
            return Reply::err("ERR Invalid command specified");
        };
        let line = &args[2..];
        let sub_arity = crate::exec::subcommand_arity(spec.name, line.get(1));
        match super::getkeys::command_keys(spec, line, sub_arity) {
            Ok(keys) => Reply::Array(keys.into_iter().map(|k| Reply::Bulk(k.clone())).collect()),
            Err(e) => Reply::Error(e.to_string()),
        }
    } else if eq_ic(sub, "help") {
        help_reply(&[
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "COUNT",
            "DOCS [<command-name> ...]",
            "GETKEYS <full-command>",
            "INFO [<command-name> ...]",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "HELP",
        ])
    } else {
        unknown_subcommand("command", sub)
    }
}

// ---- SHUTDOWN ----------------------------------------------------------

fn shutdown(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let mut mode = ShutdownMode::Default;
    for a in &args[1..] {
        if eq_ic(a, "nosave") {
            mode = ShutdownMode::NoSave;
        } else if eq_ic(a, "save") {
            mode = ShutdownMode::Save;
        } else if eq_ic(a, "now") || eq_ic(a, "force") {
        } else if eq_ic(a, "abort") {
            return Reply::err("ERR No shutdown in progress.");
        } else {
            return syntax_error();
        }
    }
    // The final save happens here, so a failure can be answered.
    if let Err(e) = ctx.ex.shutdown_save(mode) {
        tracing::warn!("Error trying to save the DB, can't exit: {e}");
        return Reply::err("ERR Errors trying to SHUTDOWN. Check logs.");
    }
    ctx.ex.shutdown = Some(ShutdownMode::NoSave);
    // The connection closes without a reply, as Redis's does on success.
    ctx.client.close_after_reply = true;
    Reply::Raw(Bytes::new())
}

// ---- DEBUG ----------------------------------------------------------------

fn debug(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let allowed = match ctx.ex.config.enable_debug_command {
        Enable::Yes => true,
        Enable::Local => ctx.client.is_local,
        Enable::No => false,
    };
    if !allowed {
        return Reply::err("ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it from a local connection, otherwise you need to set this option in the configuration file, and then restart the server.");
    }
    crate::debug::debug(ctx, args)
}

// ---- FUNCTION (opaque libraries until scripting arrives) -----------------

fn function(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ic(sub, "flush") {
        if args.len() > 3
            || (args.len() == 3 && !eq_ic(&args[2], "async") && !eq_ic(&args[2], "sync"))
        {
            return syntax_error();
        }
        ctx.ex.functions.clear();
        ctx.add_dirty(1);
        Reply::ok()
    } else if eq_ic(sub, "list") {
        let libs = ctx
            .ex
            .functions
            .iter()
            .map(|(name, _)| {
                Reply::Map(vec![
                    (Reply::bulk(b"library_name"), Reply::Bulk(name.clone())),
                    (Reply::bulk(b"engine"), Reply::bulk(b"LUA")),
                    (Reply::bulk(b"functions"), Reply::Array(vec![])),
                ])
            })
            .collect();
        Reply::Array(libs)
    } else if eq_ic(sub, "help") {
        help_reply(&[
            "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "LIST",
            "FLUSH [ASYNC|SYNC]",
            "HELP",
        ])
    } else {
        unknown_subcommand("function", sub)
    }
}

// ---- MEMORY -----------------------------------------------------------------

fn memory(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ic(sub, "usage") {
        if args.len() != 3 && !(args.len() == 5 && eq_ic(&args[3], "samples")) {
            return syntax_error();
        }
        if args.len() == 5 {
            if let Err(e) = arg_i64(&args[4]) {
                return e;
            }
        }
        match ctx.lookup(&args[2]) {
            Some(e) => Reply::Int(crate::info::entry_memory(e) as i64),
            None => Reply::Nil,
        }
    } else if eq_ic(sub, "help") {
        help_reply(&[
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "USAGE <key> [SAMPLES <count>]",
            "HELP",
        ])
    } else {
        unknown_subcommand("memory", sub)
    }
}
