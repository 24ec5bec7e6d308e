//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! PUBLISH, PUBSUB. Confirmations and messages are pushes in RESP3.

use super::flags::*;
use super::{unknown_subcommand, wrong_args, CommandSpec, Ctx};
use crate::resp::Reply;
use crate::util::eq_ic;
use bytes::Bytes;

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_CONTEXT,
        (0, 0, 0),
        "pubsub",
        subscribe,
    ),
    CommandSpec::new(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_CONTEXT,
        (0, 0, 0),
        "pubsub",
        unsubscribe,
    ),
    CommandSpec::new(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_CONTEXT,
        (0, 0, 0),
        "pubsub",
        psubscribe,
    ),
    CommandSpec::new(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE | PUBSUB_CONTEXT,
        (0, 0, 0),
        "pubsub",
        punsubscribe,
    ),
    CommandSpec::new(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST,
        (0, 0, 0),
        "pubsub",
        publish,
    ),
    CommandSpec::new(
        "pubsub",
        -2,
        PUBSUB | LOADING | STALE,
        (0, 0, 0),
        "pubsub",
        pubsub,
    ),
];

/// One confirmation: [kind, name, subscription count].
fn confirm(kind: &'static [u8], name: Option<Bytes>, count: usize) -> Reply {
    Reply::Push(vec![
        Reply::Bulk(Bytes::from_static(kind)),
        name.map(Reply::Bulk).unwrap_or(Reply::Nil),
        Reply::Int(count as i64),
    ])
}

fn subscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR SUBSCRIBE isn't allowed for a DISCARD/MULTI context");
    }
    let mut out = Vec::new();
    for ch in &args[1..] {
        let ch = Bytes::copy_from_slice(ch);
        ctx.ex.pubsub.subscribe(ctx.client, ch.clone());
        out.push(confirm(
            b"subscribe",
            Some(ch),
            ctx.client.subscription_count(),
        ));
    }
    Reply::Multi(out)
}

fn psubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    if ctx.client.multi.is_some() {
        return Reply::err("ERR PSUBSCRIBE isn't allowed for a DISCARD/MULTI context");
    }
    let mut out = Vec::new();
    for p in &args[1..] {
        let p = Bytes::copy_from_slice(p);
        ctx.ex.pubsub.psubscribe(ctx.client, p.clone());
        out.push(confirm(
            b"psubscribe",
            Some(p),
            ctx.client.subscription_count(),
        ));
    }
    Reply::Multi(out)
}

fn unsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ctx.client.channels.iter().cloned().collect()
    };
    if targets.is_empty() {
        return Reply::Multi(vec![confirm(
            b"unsubscribe",
            None,
            ctx.client.subscription_count(),
        )]);
    }
    let out = targets
        .into_iter()
        .map(|ch| {
            ctx.ex.pubsub.unsubscribe(ctx.client, &ch);
            confirm(b"unsubscribe", Some(ch), ctx.client.subscription_count())
        })
        .collect();
    Reply::Multi(out)
}

fn punsubscribe(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let targets: Vec<Bytes> = if args.len() > 1 {
        args[1..].to_vec()
    } else {
        ctx.client.patterns.iter().cloned().collect()
    };
    if targets.is_empty() {
        return Reply::Multi(vec![confirm(
            b"punsubscribe",
            None,
            ctx.client.subscription_count(),
        )]);
    }
    let out = targets
        .into_iter()
        .map(|p| {
            ctx.ex.pubsub.punsubscribe(ctx.client, &p);
            confirm(b"punsubscribe", Some(p), ctx.client.subscription_count())
        })
        .collect();
    Reply::Multi(out)
}

fn publish(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let deliveries = ctx.ex.pubsub.deliveries(&args[1], &args[2]);
    let n = deliveries.len();
    for (id, msg) in deliveries {
        if id == ctx.client.id {
            // A RESP3 client subscribed to the channel it publishes to gets
            // the message before the PUBLISH reply, as in Redis.
            ctx.client.pending_pushes.push(msg);
        } else if let Some(c) = ctx.ex.clients.get(&id) {
            if let Ok(c) = c.try_borrow() {
                crate::pubsub::send(&c, msg);
            }
        }
    }
    Reply::Int(n as i64)
}

fn pubsub(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = &args[1];
    if eq_ic(sub, "channels") {
        if args.len() > 3 {
            return wrong_args("pubsub|channels");
        }
        let chans = ctx
            .ex
            .pubsub
            .active_channels(args.get(2).map(|a| a.as_ref()));
        Reply::Array(chans.into_iter().map(Reply::Bulk).collect())
    } else if eq_ic(sub, "numsub") {
        let mut out = Vec::new();
        for ch in &args[2..] {
            out.push(Reply::Bulk(ch.clone()));
            out.push(Reply::Int(ctx.ex.pubsub.subscribers(ch) as i64));
        }
        Reply::Array(out)
    } else if eq_ic(sub, "numpat") {
        if args.len() != 2 {
            return wrong_args("pubsub|numpat");
        }
        Reply::Int(ctx.ex.pubsub.pattern_count() as i64)
    } else if eq_ic(sub, "shardchannels") {
        Reply::Array(vec![])
    } else if eq_ic(sub, "shardnumsub") {
        let mut out = Vec::new();
        for ch in &args[2..] {
            out.push(Reply::Bulk(ch.clone()));
            out.push(Reply::Int(0));
        }
        Reply::Array(out)
    } else if eq_ic(sub, "help") {
        super::server::help_reply(&[
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "NUMPAT",
            "NUMSUB [<channel> ...]",
            "HELP",
        ])
    } else {
        unknown_subcommand("pubsub", sub)
    }
}
