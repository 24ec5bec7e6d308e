//! Consumer groups: XGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, and the
//! group side of XREADGROUP.
//!
//! Group state changes are propagated as Redis 7.0 propagates them: reads
//! and claims as `XCLAIM ... FORCE JUSTID LASTID` plus `XGROUP SETID ...
//! ENTRIESREAD`, so a replay reproduces the PEL without re-delivering. They
//! count as changes but, as in Redis, do not touch WATCHed keys.

use super::flags::*;
use super::streams::{
    entries_read_reply, entry_reply, id_arg, id_reply, parse_interval, parse_strict_id, stream_mut,
};
use super::{arg_i64, reply, syntax_error, CommandSpec, Ctx, Propagate};
use crate::resp::Reply;
use crate::util::{eq_ic, parse_i64};
use bytes::Bytes;
use redoubt_persist::value::{
    Consumer, ConsumerGroup, PendingEntry, Stream, StreamId, ENTRIES_READ_UNKNOWN,
};
use redoubt_persist::Value;

const G: &str = "stream";

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new("xgroup", -2, WRITE, (2, 2, 1), G, xgroup),
    CommandSpec::new("xack", -4, WRITE | FAST, (1, 1, 1), G, xack),
    CommandSpec::new("xpending", -3, READONLY, (1, 1, 1), G, xpending),
    CommandSpec::new("xclaim", -6, WRITE | FAST, (1, 1, 1), G, xclaim),
    CommandSpec::new("xautoclaim", -6, WRITE | FAST, (1, 1, 1), G, xautoclaim),
];

/// The stream-wide numbers that lag and read-counter estimates need.
#[derive(Clone, Copy)]
pub struct Meta {
    len: u64,
    first_id: StreamId,
    last_id: StreamId,
    max_deleted_id: StreamId,
    entries_added: u64,
}

impl Meta {
    pub fn of(s: &Stream) -> Meta {
        Meta {
            len: s.len() as u64,
            first_id: s.first_id,
            last_id: s.last_id,
            max_deleted_id: s.max_deleted_id,
            entries_added: s.entries_added,
        }
    }

    /// Whether an entry at or after `start` was deleted (XDEL) while the
    /// stream still holds entries around it (Redis's streamRangeHasTombstones).
    fn tombstones_from(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted_id == StreamId::MIN {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// How many entries had been added up to `id`, when knowable (Redis's
    /// streamEstimateDistanceFromFirstEverEntry); -1 otherwise.
    fn estimate_read(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.len == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return ENTRIES_READ_UNKNOWN;
        }
        if self.max_deleted_id == StreamId::MIN || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return added - self.len as i64;
            }
            if id == self.first_id {
                return added - self.len as i64 + 1;
            }
        }
        ENTRIES_READ_UNKNOWN
    }
}

/// XINFO's `lag` of a group: entries not yet read, or null when unknowable.
pub fn lag_reply(s: &Stream, g: &ConsumerGroup) -> Reply {
    let m = Meta::of(s);
    if m.entries_added == 0 {
        return Reply::Int(0);
    }
    if g.entries_read != ENTRIES_READ_UNKNOWN && !m.tombstones_from(g.last_id) {
        return Reply::Int(m.entries_added as i64 - g.entries_read);
    }
    let read = m.estimate_read(g.last_id);
    if read != ENTRIES_READ_UNKNOWN {
        Reply::Int(m.entries_added as i64 - read)
    } else {
        Reply::Nil
    }
}

fn bs(s: &'static str) -> Reply {
    Reply::Bulk(Bytes::from_static(s.as_bytes()))
}

/// XINFO STREAM FULL's `groups` section.
pub fn full_groups(s: &Stream, limit: usize) -> Reply {
    Reply::Array(
        s.groups
            .iter()
            .map(|(name, g)| {
                let pending: Vec<Reply> = g
                    .pel
                    .iter()
                    .take(limit)
                    .map(|(id, p)| {
                        Reply::Array(vec![
                            id_reply(*id),
                            Reply::Bulk(p.consumer.clone()),
                            Reply::Int(p.delivery_time as i64),
                            Reply::Int(p.delivery_count as i64),
                        ])
                    })
                    .collect();
                let consumers: Vec<Reply> = g
                    .consumers
                    .iter()
                    .map(|(cname, c)| {
                        let pend: Vec<Reply> = c
                            .pel
                            .iter()
                            .take(limit)
                            .filter_map(|id| {
                                let p = g.pel.get(id)?;
                                Some(Reply::Array(vec![
                                    id_reply(*id),
                                    Reply::Int(p.delivery_time as i64),
                                    Reply::Int(p.delivery_count as i64),
                                ]))
                            })
                            .collect();
                        Reply::Map(vec![
                            (bs("name"), Reply::Bulk(cname.clone())),
                            (bs("seen-time"), Reply::Int(c.seen_time as i64)),
                            (bs("pel-count"), Reply::Int(c.pel.len() as i64)),
                            (bs("pending"), Reply::Array(pend)),
                        ])
                    })
                    .collect();
                Reply::Map(vec![
                    (bs("name"), Reply::Bulk(name.clone())),
                    (bs("last-delivered-id"), id_reply(g.last_id)),
                    (bs("entries-read"), entries_read_reply(g.entries_read)),
                    (bs("lag"), lag_reply(s, g)),
                    (bs("pel-count"), Reply::Int(g.pel.len() as i64)),
                    (bs("pending"), Reply::Array(pending)),
                    (bs("consumers"), Reply::Array(consumers)),
                ])
            })
            .collect(),
    )
}

fn xclaim_effect(
    key: &Bytes,
    group: &Bytes,
    id: StreamId,
    p: &PendingEntry,
    last: StreamId,
) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XCLAIM"),
        key.clone(),
        group.clone(),
        p.consumer.clone(),
        Bytes::from_static(b"0"),
        id_arg(id),
        Bytes::from_static(b"TIME"),
        Bytes::from(p.delivery_time.to_string()),
        Bytes::from_static(b"RETRYCOUNT"),
        Bytes::from(p.delivery_count.to_string()),
        Bytes::from_static(b"FORCE"),
        Bytes::from_static(b"JUSTID"),
        Bytes::from_static(b"LASTID"),
        id_arg(last),
    ]
}

fn setid_effect(key: &Bytes, group: &Bytes, g: &ConsumerGroup) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"XGROUP"),
        Bytes::from_static(b"SETID"),
        key.clone(),
        group.clone(),
        id_arg(g.last_id),
        Bytes::from_static(b"ENTRIESREAD"),
        Bytes::from(g.entries_read.to_string()),
    ]
}

/// Finds a consumer, creating it (and recording the change) if needed; its
/// seen time becomes `now`.
fn touch_consumer<'a>(
    g: &'a mut ConsumerGroup,
    name: &[u8],
    now: u64,
    created: &mut bool,
) -> &'a mut Consumer {
    if !g.consumers.contains_key(name) {
        g.consumers.insert(
            Bytes::copy_from_slice(name),
            Consumer {
                seen_time: now,
                active_time: now,
                pel: Default::default(),
            },
        );
        *created = true;
    }
    let c = g.consumers.get_mut(name).expect("consumer just ensured");
    c.seen_time = now;
    c
}

/// One stream of an XREADGROUP.
pub struct GroupServe<'a> {
    pub key: &'a Bytes,
    pub group: &'a Bytes,
    pub consumer: &'a Bytes,
    /// Some(id): the consumer's own history after `id`; None: new entries (">").
    pub history_from: Option<StreamId>,
    /// 0 = no limit.
    pub count: u64,
    pub noack: bool,
}

/// Serves one stream of an XREADGROUP; Ok(None) when there is nothing to
/// give (new entries only). Effects to propagate are appended to `effects`.
pub fn serve_group(
    ctx: &mut Ctx,
    req: &GroupServe,
    effects: &mut Vec<Vec<Bytes>>,
) -> Result<Option<Reply>, Reply> {
    let now = ctx.now;
    let Some(s) = stream_mut(ctx, req.key)? else {
        return Ok(None);
    };
    let meta = Meta::of(s);
    let Stream {
        entries, groups, ..
    } = s;
    let Some(g) = groups.get_mut(req.group) else {
        return Ok(None);
    };
    let mut created = false;
    let limit = if req.count == 0 {
        usize::MAX
    } else {
        req.count as usize
    };
    let mut out = Vec::new();
    let mut changed = 0u64;
    // Redis creates (or marks as seen) the consumer only when it serves the
    // read now: history always, ">" only when there are entries past the
    // group's last id.
    let serves =
        req.history_from.is_some() || entries.last_id().is_some_and(|maxid| maxid > g.last_id);
    if !serves {
        return finish(ctx, req, false, None, effects);
    }
    touch_consumer(g, req.consumer, now, &mut created);
    match req.history_from {
        Some(gt) => {
            let ConsumerGroup { pel, consumers, .. } = g;
            let c = consumers.get_mut(req.consumer.as_ref()).expect("ensured");
            if let Some(start) = incr(gt) {
                for id in c.pel.range(start..).take(limit) {
                    match entries.get(*id) {
                        Some(e) => {
                            out.push(entry_reply(e));
                            if let Some(p) = pel.get_mut(id) {
                                p.delivery_time = now;
                                p.delivery_count += 1;
                            }
                        }
                        None => out.push(Reply::Array(vec![id_reply(*id), Reply::NilArray])),
                    }
                }
            }
            changed += 1;
        }
        None => {
            let Some(maxid) = entries.last_id() else {
                return finish(ctx, req, created, None, effects);
            };
            if maxid <= g.last_id {
                return finish(ctx, req, created, None, effects);
            }
            let Some(start) = incr(g.last_id) else {
                return finish(ctx, req, created, None, effects);
            };
            let mut moved_last = false;
            let consumer_name = Bytes::copy_from_slice(req.consumer);
            for e in entries.range(start, StreamId::MAX).take(limit) {
                let id = e.id;
                if id > g.last_id {
                    if g.entries_read != ENTRIES_READ_UNKNOWN && !meta.tombstones_from(id) {
                        g.entries_read += 1;
                    } else if meta.entries_added != 0 {
                        g.entries_read = meta.estimate_read(id);
                    }
                    g.last_id = id;
                    moved_last = true;
                }
                out.push(entry_reply(e));
                if !req.noack {
                    let ConsumerGroup {
                        pel,
                        consumers,
                        last_id,
                        ..
                    } = &mut *g;
                    let p = pel.entry(id).or_insert_with(|| PendingEntry {
                        delivery_time: now,
                        delivery_count: 1,
                        consumer: consumer_name.clone(),
                    });
                    if p.consumer != consumer_name {
                        if let Some(old) = consumers.get_mut(&p.consumer) {
                            old.pel.remove(&id);
                        }
                        p.consumer = consumer_name.clone();
                    }
                    p.delivery_time = now;
                    p.delivery_count = 1;
                    if let Some(c) = consumers.get_mut(&consumer_name) {
                        c.pel.insert(id);
                        c.active_time = now;
                    }
                    effects.push(xclaim_effect(req.key, req.group, id, p, *last_id));
                }
                changed += 1;
            }
            if moved_last {
                effects.push(setid_effect(req.key, req.group, g));
            }
        }
    }
    if changed > 0 {
        ctx.add_dirty(1);
    }
    finish(ctx, req, created, Some(Reply::Array(out)), effects)
}

fn finish(
    ctx: &mut Ctx,
    req: &GroupServe,
    created: bool,
    r: Option<Reply>,
    effects: &mut Vec<Vec<Bytes>>,
) -> Result<Option<Reply>, Reply> {
    if created {
        ctx.add_dirty(1);
        effects.insert(
            0,
            vec![
                Bytes::from_static(b"XGROUP"),
                Bytes::from_static(b"CREATECONSUMER"),
                req.key.clone(),
                req.group.clone(),
                req.consumer.clone(),
            ],
        );
    }
    Ok(r)
}

fn incr(id: StreamId) -> Option<StreamId> {
    if id.seq == u64::MAX {
        (id.ms != u64::MAX).then(|| StreamId::new(id.ms + 1, 0))
    } else {
        Some(StreamId::new(id.ms, id.seq + 1))
    }
}

fn nogroup(key: &[u8], group: &[u8]) -> Reply {
    Reply::Error(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

// ---- XGROUP ------------------------------------------------------------------------------

fn xgroup(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xgroup_inner(ctx, args))
}

fn xgroup_inner(ctx: &mut Ctx, args: &[Bytes]) -> Result<Reply, Reply> {
    let sub = &args[1];
    let subs: [(&str, i32); 6] = [
        ("create", -5),
        ("setid", -5),
        ("destroy", 4),
        ("createconsumer", 5),
        ("delconsumer", 5),
        ("help", 2),
    ];
    let Some(&(name, arity)) = subs.iter().find(|(n, _)| eq_ic(sub, n)) else {
        return Err(super::unknown_subcommand("xgroup", sub));
    };
    let n = args.len() as i32;
    if (arity >= 0 && n != arity) || (arity < 0 && n < -arity) {
        return Err(Reply::Error(format!(
            "ERR wrong number of arguments for 'xgroup|{name}' command"
        )));
    }
    let sub_syntax = || {
        Reply::Error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try XGROUP HELP.",
            String::from_utf8_lossy(sub)
        ))
    };
    if name == "help" {
        let lines = [
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
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
    let (create, setid) = (name == "create", name == "setid");
    let mut mkstream = false;
    let mut entries_read = ENTRIES_READ_UNKNOWN;
    let mut i = 5;
    while i < args.len() {
        if create && eq_ic(&args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && eq_ic(&args[i], "entriesread") && i + 1 < args.len() {
            entries_read = arg_i64(&args[i + 1])?;
            if entries_read < 0 && entries_read != ENTRIES_READ_UNKNOWN {
                return Err(Reply::err(
                    "ERR value for ENTRIESREAD must be positive or -1",
                ));
            }
            i += 2;
        } else {
            return Err(sub_syntax());
        }
    }
    let key = &args[2];
    let gname = &args[3];
    let exists = stream_mut(ctx, key)?.is_some();
    if !mkstream {
        if !exists {
            return Err(Reply::err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically."));
        }
        let has_group = stream_mut(ctx, key)?.is_some_and(|s| s.groups.contains_key(gname));
        if !has_group && (setid || name == "createconsumer" || name == "delconsumer") {
            return Err(Reply::Error(format!(
                "NOGROUP No such consumer group '{}' for key name '{}'",
                String::from_utf8_lossy(gname),
                String::from_utf8_lossy(key)
            )));
        }
    }
    let now = ctx.now;
    match name {
        "create" => {
            if args.len() > 8 {
                return Err(sub_syntax());
            }
            let id = if args[4].as_ref() == b"$" {
                stream_mut(ctx, key)?.map_or(StreamId::MIN, |s| s.last_id)
            } else {
                parse_strict_id(&args[4])?
            };
            if !exists {
                ctx.db().insert(key, Value::Stream(Box::default()), 0);
                ctx.modified(key);
            }
            let Some(s) = stream_mut(ctx, key)? else {
                return Ok(Reply::Nil);
            };
            if s.groups.contains_key(gname) {
                return Err(Reply::err("BUSYGROUP Consumer Group name already exists"));
            }
            s.groups.insert(
                Bytes::copy_from_slice(gname),
                ConsumerGroup {
                    last_id: id,
                    entries_read,
                    ..Default::default()
                },
            );
            ctx.add_dirty(1);
            Ok(Reply::ok())
        }
        "setid" => {
            if args.len() != 5 && args.len() != 7 {
                return Err(sub_syntax());
            }
            let Some(s) = stream_mut(ctx, key)? else {
                return Err(nogroup(key, gname));
            };
            let id = if args[4].as_ref() == b"$" {
                s.last_id
            } else {
                super::streams::parse_id(&args[4], 0)?
            };
            if let Some(g) = s.groups.get_mut(gname) {
                g.last_id = id;
                g.entries_read = entries_read;
            }
            ctx.add_dirty(1);
            Ok(Reply::ok())
        }
        "destroy" => {
            let Some(s) = stream_mut(ctx, key)? else {
                return Ok(Reply::Int(0));
            };
            if s.groups.remove(gname).is_none() {
                return Ok(Reply::Int(0));
            }
            ctx.add_dirty(1);
            // Wakes XREADGROUP clients blocked on the group so they fail.
            let db = ctx.client.db;
            ctx.ex.signal_key_ready(db, key);
            Ok(Reply::Int(1))
        }
        "createconsumer" => {
            let Some(g) = stream_mut(ctx, key)?.and_then(|s| s.groups.get_mut(gname)) else {
                return Ok(Reply::Int(0));
            };
            if g.consumers.contains_key(&args[4]) {
                return Ok(Reply::Int(0));
            }
            g.consumers.insert(
                Bytes::copy_from_slice(&args[4]),
                Consumer {
                    seen_time: now,
                    active_time: now,
                    pel: Default::default(),
                },
            );
            ctx.add_dirty(1);
            Ok(Reply::Int(1))
        }
        _ => {
            // delconsumer
            let Some(g) = stream_mut(ctx, key)?.and_then(|s| s.groups.get_mut(gname)) else {
                return Ok(Reply::Int(0));
            };
            let pending = match g.consumers.remove(&args[4]) {
                Some(c) => {
                    for id in &c.pel {
                        g.pel.remove(id);
                    }
                    c.pel.len() as i64
                }
                None => 0,
            };
            ctx.add_dirty(1);
            Ok(Reply::Int(pending))
        }
    }
}

// ---- XACK / XPENDING --------------------------------------------------------------------

fn xack(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let key = &args[1];
        let has = stream_mut(ctx, key)?.is_some_and(|s| s.groups.contains_key(&args[2]));
        if !has {
            return Ok(Reply::Int(0));
        }
        let ids = args[3..]
            .iter()
            .map(|a| parse_strict_id(a))
            .collect::<Result<Vec<_>, _>>()?;
        let Some(g) = stream_mut(ctx, key)?.and_then(|s| s.groups.get_mut(&args[2])) else {
            return Ok(Reply::Int(0));
        };
        let mut n = 0;
        for id in ids {
            if let Some(p) = g.pel.remove(&id) {
                if let Some(c) = g.consumers.get_mut(&p.consumer) {
                    c.pel.remove(&id);
                }
                n += 1;
            }
        }
        if n > 0 {
            ctx.add_dirty(n as u64);
        }
        Ok(Reply::Int(n))
    })())
}

fn xpending(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply((|| {
        let argc = args.len();
        let justinfo = argc == 3;
        if argc != 3 && !(6..=9).contains(&argc) {
            return Err(syntax_error());
        }
        let mut range = None;
        let mut consumer: Option<&Bytes> = None;
        let mut minidle = 0i64;
        if argc >= 6 {
            let mut at = 3;
            if eq_ic(&args[3], "idle") {
                minidle = arg_i64(&args[4])?;
                if argc < 8 {
                    return Err(syntax_error());
                }
                at += 2;
            }
            let count = arg_i64(&args[at + 2])?.max(0);
            let start = parse_interval(&args[at], 0, true)?;
            let end = parse_interval(&args[at + 1], u64::MAX, false)?;
            if at + 3 < argc {
                consumer = Some(&args[at + 3]);
            }
            range = Some((start, end, count));
        }
        let now = ctx.now;
        let key = &args[1];
        let gname = &args[2];
        let Some(g) = stream_mut(ctx, key)?.and_then(|s| s.groups.get(gname)) else {
            return Err(nogroup(key, gname));
        };
        if justinfo {
            if g.pel.is_empty() {
                return Ok(Reply::Array(vec![
                    Reply::Int(0),
                    Reply::Nil,
                    Reply::Nil,
                    Reply::NilArray,
                ]));
            }
            let first = g.pel.keys().next().copied().unwrap_or_default();
            let last = g.pel.keys().next_back().copied().unwrap_or_default();
            let per: Vec<Reply> = g
                .consumers
                .iter()
                .filter(|(_, c)| !c.pel.is_empty())
                .map(|(n, c)| {
                    Reply::Array(vec![
                        Reply::Bulk(n.clone()),
                        Reply::Bulk(Bytes::from(c.pel.len().to_string())),
                    ])
                })
                .collect();
            return Ok(Reply::Array(vec![
                Reply::Int(g.pel.len() as i64),
                id_reply(first),
                id_reply(last),
                Reply::Array(per),
            ]));
        }
        let Some((start, end, mut count)) = range else {
            return Ok(Reply::Array(Vec::new()));
        };
        let ids: Box<dyn Iterator<Item = &StreamId>> = match consumer {
            Some(name) => match g.consumers.get(name) {
                Some(c) if start <= end => Box::new(c.pel.range(start..=end)),
                Some(_) => Box::new(std::iter::empty()),
                None => return Ok(Reply::Array(Vec::new())),
            },
            None if start <= end => Box::new(g.pel.range(start..=end).map(|(id, _)| id)),
            None => Box::new(std::iter::empty()),
        };
        let mut out = Vec::new();
        for id in ids {
            if count == 0 {
                break;
            }
            let Some(p) = g.pel.get(id) else { continue };
            let idle = (now as i64).saturating_sub(p.delivery_time as i64);
            if minidle != 0 && idle < minidle {
                continue;
            }
            count -= 1;
            out.push(Reply::Array(vec![
                id_reply(*id),
                Reply::Bulk(p.consumer.clone()),
                Reply::Int(idle.max(0)),
                Reply::Int(p.delivery_count as i64),
            ]));
        }
        Ok(Reply::Array(out))
    })())
}

// ---- XCLAIM / XAUTOCLAIM ------------------------------------------------------------------

/// Moves a pending entry to `consumer` (creating it), as both claim
/// commands do; returns the updated entry.
fn claim_to(g: &mut ConsumerGroup, id: StreamId, consumer: &Bytes, now: u64, created: &mut bool) {
    touch_consumer(g, consumer, now, created);
    let ConsumerGroup { pel, consumers, .. } = g;
    let Some(p) = pel.get_mut(&id) else { return };
    if p.consumer != *consumer {
        if let Some(old) = consumers.get_mut(&p.consumer) {
            old.pel.remove(&id);
        }
        p.consumer = consumer.clone();
    }
    if let Some(c) = consumers.get_mut(consumer) {
        c.pel.insert(id);
        c.active_time = now;
    }
}

fn xclaim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xclaim_inner(ctx, args))
}

fn xclaim_inner(ctx: &mut Ctx, args: &[Bytes]) -> Result<Reply, Reply> {
    let (key, gname) = (&args[1], &args[2]);
    let has = stream_mut(ctx, key)?.is_some_and(|s| s.groups.contains_key(gname));
    if !has {
        return Err(nogroup(key, gname));
    }
    let minidle = parse_i64(&args[4])
        .ok_or_else(|| Reply::err("ERR Invalid min-idle-time argument for XCLAIM"))?
        .max(0);
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match parse_strict_id(&args[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = ctx.now as i64;
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut deliverytime: i64 = -1;
    let mut lastid = StreamId::MIN;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let o = &args[j];
        let num = |a: &[u8], what: &str| {
            parse_i64(a).ok_or_else(|| {
                Reply::Error(format!("ERR Invalid {what} option argument for XCLAIM"))
            })
        };
        if eq_ic(o, "force") {
            force = true;
        } else if eq_ic(o, "justid") {
            justid = true;
        } else if eq_ic(o, "idle") && more > 0 {
            j += 1;
            deliverytime = now.wrapping_sub(num(&args[j], "IDLE")?);
        } else if eq_ic(o, "time") && more > 0 {
            j += 1;
            deliverytime = num(&args[j], "TIME")?;
        } else if eq_ic(o, "retrycount") && more > 0 {
            j += 1;
            retrycount = num(&args[j], "RETRYCOUNT")?;
        } else if eq_ic(o, "lastid") && more > 0 {
            j += 1;
            lastid = parse_strict_id(&args[j])?;
        } else {
            return Err(Reply::Error(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                String::from_utf8_lossy(o)
            )));
        }
        j += 1;
    }
    if deliverytime < 0 || deliverytime > now {
        deliverytime = now;
    }
    let consumer = Bytes::copy_from_slice(&args[3]);
    let Some(s) = stream_mut(ctx, key)? else {
        return Err(nogroup(key, gname));
    };
    let Stream {
        entries, groups, ..
    } = s;
    let Some(g) = groups.get_mut(gname) else {
        return Err(nogroup(key, gname));
    };
    let mut propagate_last = false;
    if lastid > g.last_id {
        g.last_id = lastid;
        propagate_last = true;
    }
    let mut effects = Vec::new();
    let mut out = Vec::new();
    let mut created = false;
    let mut changes = 0u64;
    for id in ids {
        if !entries.contains(id) {
            if let Some(p) = g.pel.remove(&id) {
                effects.push(xclaim_effect(key, gname, id, &p, g.last_id));
                propagate_last = false;
                if let Some(c) = g.consumers.get_mut(&p.consumer) {
                    c.pel.remove(&id);
                }
                changes += 1;
            }
            continue;
        }
        let forced = force && !g.pel.contains_key(&id);
        if forced {
            g.pel.insert(
                id,
                PendingEntry {
                    delivery_time: now as u64,
                    delivery_count: 1,
                    // Owned by nobody yet: claim_to hands it over.
                    consumer: Bytes::new(),
                },
            );
        }
        let Some(p) = g.pel.get(&id) else { continue };
        if !forced && minidle > 0 && now.saturating_sub(p.delivery_time as i64) < minidle {
            continue;
        }
        claim_to(g, id, &consumer, now as u64, &mut created);
        let last = g.last_id;
        let Some(p) = g.pel.get_mut(&id) else {
            continue;
        };
        p.delivery_time = deliverytime as u64;
        if retrycount >= 0 {
            p.delivery_count = retrycount as u64;
        } else if !justid {
            p.delivery_count += 1;
        }
        out.push(if justid {
            id_reply(id)
        } else {
            entries.get(id).map_or(Reply::Nil, entry_reply)
        });
        effects.push(xclaim_effect(key, gname, id, p, last));
        propagate_last = false;
        changes += 1;
    }
    if propagate_last {
        effects.push(setid_effect(key, gname, g));
        changes += 1;
    }
    if created {
        changes += 1;
    }
    if changes > 0 {
        ctx.add_dirty(changes);
    }
    if effects.is_empty() {
        ctx.propagate = Propagate::Never;
    } else {
        ctx.propagate_as(effects);
    }
    Ok(Reply::Array(out))
}

fn xautoclaim(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    reply(xautoclaim_inner(ctx, args))
}

fn xautoclaim_inner(ctx: &mut Ctx, args: &[Bytes]) -> Result<Reply, Reply> {
    let (key, gname) = (&args[1], &args[2]);
    let minidle = parse_i64(&args[4])
        .ok_or_else(|| Reply::err("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = parse_interval(&args[5], 0, true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if eq_ic(&args[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            let err = || Reply::err("ERR COUNT must be > 0");
            count = parse_i64(&args[j + 1]).ok_or_else(err)?;
            if count < 1 || count > max {
                return Err(err());
            }
            j += 1;
        } else if eq_ic(&args[j], "justid") {
            justid = true;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    let now = ctx.now;
    let consumer = Bytes::copy_from_slice(&args[3]);
    let Some(s) = stream_mut(ctx, key)? else {
        return Err(nogroup(key, gname));
    };
    let Stream {
        entries, groups, ..
    } = s;
    let Some(g) = groups.get_mut(gname) else {
        return Err(nogroup(key, gname));
    };
    let mut attempts = count.saturating_mul(10);
    let mut effects = Vec::new();
    let mut out = Vec::new();
    let mut deleted = Vec::new();
    let mut created = false;
    let mut cursor = start;
    let mut next: Option<StreamId> = None;
    while let Some(id) = g.pel.range(cursor..).next().map(|(id, _)| *id) {
        if attempts == 0 || count == 0 {
            next = Some(id);
            break;
        }
        attempts -= 1;
        cursor = match incr(id) {
            Some(c) => c,
            None => StreamId::MAX,
        };
        let last_possible = id == StreamId::MAX;
        if !entries.contains(id) {
            if let Some(p) = g.pel.remove(&id) {
                effects.push(xclaim_effect(key, gname, id, &p, g.last_id));
                if let Some(c) = g.consumers.get_mut(&p.consumer) {
                    c.pel.remove(&id);
                }
            }
            deleted.push(id_reply(id));
            count -= 1;
        } else {
            let idle =
                (now as i64).saturating_sub(g.pel.get(&id).map_or(0, |p| p.delivery_time as i64));
            if minidle == 0 || idle >= minidle {
                claim_to(g, id, &consumer, now, &mut created);
                let last = g.last_id;
                if let Some(p) = g.pel.get_mut(&id) {
                    p.delivery_time = now;
                    if !justid {
                        p.delivery_count += 1;
                    }
                    out.push(if justid {
                        id_reply(id)
                    } else {
                        entries.get(id).map_or(Reply::Nil, entry_reply)
                    });
                    effects.push(xclaim_effect(key, gname, id, p, last));
                }
                count -= 1;
            }
        }
        if last_possible {
            break;
        }
    }
    let changes = effects.len() as u64 + u64::from(created);
    if changes > 0 {
        ctx.add_dirty(changes);
    }
    if effects.is_empty() {
        ctx.propagate = Propagate::Never;
    } else {
        ctx.propagate_as(effects);
    }
    Ok(Reply::Array(vec![
        id_reply(next.unwrap_or(StreamId::MIN)),
        Reply::Array(out),
        Reply::Array(deleted),
    ]))
}
