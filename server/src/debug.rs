//! DEBUG subcommands that Redis's own tests and ours lean on.

use crate::commands::keys::object_encoding;
use crate::commands::{arg_i64, syntax_error, unknown_subcommand, Ctx};
use crate::resp::Reply;
use crate::util::eq_ic;
use bytes::Bytes;
use redoubt_persist::{Entry, Value};
use std::hash::{Hash, Hasher};

pub fn debug(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("reload", _) => reload(ctx, &args[2..]),
        ("sleep", 3) => {
            let secs = crate::util::parse_f64(&args[2])
                .unwrap_or(0.0)
                .clamp(0.0, 3600.0);
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
            Reply::ok()
        }
        ("set-active-expire", 3) => {
            ctx.ex.active_expire_enabled = args[2].as_ref() != b"0";
            Reply::ok()
        }
        ("object", 3) => debug_object(ctx, &args[2]),
        ("loadaof", 2) => crate::aof::debug_loadaof(ctx.ex),
        ("digest", 2) => Reply::bulk_str(&dataset_digest(ctx)),
        ("digest-value", _) => {
            let out = args[2..]
                .iter()
                .map(|k| {
                    let d = ctx
                        .lookup(k)
                        .map(|e| value_digest(&e.value))
                        .unwrap_or([0; 20]);
                    Reply::bulk_str(&hex(&d))
                })
                .collect();
            Reply::Array(out)
        }
        ("protocol", 3) => protocol(&args[2]),
        ("populate", 3..=5) => populate(ctx, args),
        ("change-repl-id", 2) | ("quicklist-packed-threshold", 3) => Reply::ok(),
        ("help", _) => crate::commands::server::help_reply(&[
            "DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DIGEST",
            "LOADAOF",
            "DIGEST-VALUE <key> [<key> ...]",
            "OBJECT <key>",
            "POPULATE <count> [<prefix>] [<size>]",
            "PROTOCOL <type>",
            "SET-ACTIVE-EXPIRE <0|1>",
            "SLEEP <seconds>",
            "HELP",
        ]),
        _ => unknown_subcommand("debug", &args[1]),
    }
}

/// DEBUG RELOAD [NOSAVE] [NOFLUSH]: save, empty the keyspace, load the dump
/// back (what Redis's tests use to check that a value survives a reload).
fn reload(ctx: &mut Ctx, opts: &[Bytes]) -> Reply {
    let mut save = true;
    for o in opts {
        if eq_ic(o, "nosave") {
            save = false;
        } else if !eq_ic(o, "noflush") && !eq_ic(o, "merge") {
            return syntax_error();
        }
    }
    if save {
        if let Err(e) = ctx.ex.save_now() {
            return Reply::Error(e);
        }
    }
    match ctx.ex.load_rdb() {
        Ok(_) => Reply::ok(),
        Err(e) => {
            tracing::warn!("{e}");
            Reply::err("ERR Error trying to load the RDB dump, check server logs.")
        }
    }
}

fn debug_object(ctx: &mut Ctx, key: &[u8]) -> Reply {
    let clock = (ctx.now / 1000) as u32;
    let cfg = ctx.ex.config.clone();
    let Some(e) = ctx.lookup(key) else {
        return Reply::err("ERR no such key");
    };
    let mut s = format!(
        "Value at:0x{:x} refcount:1 encoding:{} serializedlength:{} lru:{} lru_seconds_idle:{}",
        e as *const Entry as *const u8 as usize,
        object_encoding(e, &cfg),
        serialized_len_estimate(&e.value),
        e.access & 0xFFFFFF,
        clock.saturating_sub(e.access)
    );
    if let Value::List(l) = &e.value {
        // Redoubt's own nodes (ChunkList), as Redis reports its quicklist's.
        let nodes = l.items.node_count().max(1);
        s.push_str(&format!(
            " ql_nodes:{nodes} ql_avg_node:{:.2} ql_listpack_max:-2 ql_compressed:0 ql_uncompressed_size:0",
            l.items.len() as f64 / nodes as f64
        ));
    }
    Reply::StatusOwned(s)
}

fn serialized_len_estimate(v: &Value) -> usize {
    match v {
        Value::Str(s) => s.len() + 1,
        Value::List(l) => l.items.iter().map(|i| i.len() + 2).sum::<usize>() + 8,
        Value::Hash(h) => {
            h.map
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
                + 8
        }
        Value::Set(s) => s.members.iter().map(|m| m.len() + 2).sum::<usize>() + 8,
        Value::ZSet(z) => z.iter().map(|m| m.member.len() + 10).sum::<usize>() + 8,
        Value::Stream(s) => s.len() * 16 + 32,
    }
}

fn protocol(kind: &[u8]) -> Reply {
    let k = String::from_utf8_lossy(kind).to_ascii_lowercase();
    match k.as_str() {
        "string" => Reply::bulk(b"Hello World"),
        "integer" => Reply::Int(12345),
        // The literal Redis's DEBUG PROTOCOL replies, not an approximation of pi.
        #[allow(clippy::approx_constant)]
        "double" => Reply::Double(3.141),
        "bignum" => Reply::bulk(b"1234567999999999999999999999999999999"),
        "null" => Reply::Nil,
        "array" => Reply::Array((0..3).map(Reply::Int).collect()),
        "set" => Reply::Set((0..3).map(Reply::Int).collect()),
        "map" => Reply::Map((0..3).map(|i| (Reply::Int(i), Reply::Bool(i == 1))).collect()),
        "true" => Reply::Bool(true),
        "false" => Reply::Bool(false),
        "verbatim" => Reply::Verbatim("This is a verbatim\nstring".into()),
        _ => Reply::err(
            "ERR Wrong protocol type name. Please use one of the following: string|integer|double|bignum|null|array|set|map|attrib|push|verbatim|true|false",
        ),
    }
}

/// DEBUG POPULATE count [prefix] [size]: keys prefix:N with values value:N
/// (padded with zeros or cut to `size`), skipping keys that exist.
fn populate(ctx: &mut Ctx, args: &[Bytes]) -> Reply {
    let count = match arg_i64(&args[2]) {
        Ok(n) if n >= 0 => n,
        Ok(_) => return Reply::err("ERR positive count needed"),
        Err(e) => return e,
    };
    let prefix = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| Bytes::from_static(b"key"));
    let size = match args.get(4).map(|a| arg_i64(a)) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(Ok(_)) => return syntax_error(),
        Some(Err(e)) => return e,
    };
    for i in 0..count {
        let mut key = prefix.to_vec();
        key.extend_from_slice(format!(":{i}").as_bytes());
        if ctx.exists(&key) {
            continue;
        }
        let mut val = format!("value:{i}").into_bytes();
        if let Some(sz) = size {
            val.resize(sz, 0);
        }
        ctx.set_value(&key, Value::Str(Bytes::from(val)));
        ctx.add_dirty(1);
    }
    // A test-only bulk load: counted for save points, never logged.
    ctx.propagate = crate::commands::Propagate::Never;
    Reply::ok()
}

/// A deterministic 20-byte digest, stable across runs of the same build.
struct Digest([u8; 20]);

fn h64(salt: u64, parts: &[&[u8]]) -> u64 {
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(salt, 0x5265646f756274);
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

impl Digest {
    fn of(parts: &[&[u8]]) -> Digest {
        let mut out = [0u8; 20];
        let a = h64(1, parts).to_le_bytes();
        let b = h64(2, parts).to_le_bytes();
        let c = h64(3, parts).to_le_bytes();
        out[..8].copy_from_slice(&a);
        out[8..16].copy_from_slice(&b);
        out[16..].copy_from_slice(&c[..4]);
        Digest(out)
    }

    fn xor(&mut self, other: &[u8; 20]) {
        for (a, b) in self.0.iter_mut().zip(other) {
            *a ^= b;
        }
    }

    /// Order-sensitive mixing: digest(self || other).
    fn chain(&mut self, other: &[u8; 20]) {
        let d = Digest::of(&[&self.0, other]);
        self.0 = d.0;
    }
}

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The digest of one value: order matters for lists and streams, not for
/// hashes, sets and sorted sets.
pub fn value_digest(v: &Value) -> [u8; 20] {
    let mut d = Digest([0; 20]);
    match v {
        Value::Str(s) => d = Digest::of(&[b"string", s]),
        Value::List(l) => {
            for item in &l.items {
                d.chain(&Digest::of(&[item]).0);
            }
        }
        Value::Hash(h) => {
            for (k, v) in &h.map {
                d.xor(&Digest::of(&[k, v]).0);
            }
        }
        Value::Set(s) => {
            for m in &s.members {
                d.xor(&Digest::of(&[m]).0);
            }
        }
        Value::ZSet(z) => {
            for m in z.iter() {
                let score = crate::util::fmt_double(m.score);
                d.xor(&Digest::of(&[&m.member, score.as_bytes()]).0);
            }
        }
        Value::Stream(s) => {
            for e in s.entries.iter() {
                d.chain(&Digest::of(&[e.id.to_string().as_bytes()]).0);
                for (f, v) in e.fields() {
                    d.chain(&Digest::of(&[f, v]).0);
                }
            }
            for (name, g) in &s.groups {
                d.chain(&Digest::of(&[name, g.last_id.to_string().as_bytes()]).0);
            }
        }
    }
    d.0
}

/// DEBUG DIGEST: 40 zeros for an empty dataset, else an order-independent
/// mix of every key, value and expiry in every db.
pub fn dataset_digest(ctx: &mut Ctx) -> String {
    let mut total = Digest([0; 20]);
    let now = ctx.now;
    for (i, db) in ctx.ex.ks.dbs.iter().enumerate() {
        let dbid = (i as u64).to_le_bytes();
        for e in db.iter().filter(|e| !e.is_expired(now)) {
            let mut kd = Digest::of(&[&dbid, &e.key]);
            kd.chain(&value_digest(&e.value));
            if e.expire_at != 0 {
                kd.chain(&Digest::of(&[&e.expire_at.to_le_bytes()]).0);
            }
            total.xor(&kd.0);
        }
    }
    hex(&total.0)
}
