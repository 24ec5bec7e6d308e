//! A small command applier for AOF → RDB conversion.
//!
//! It applies the write commands an AOF holds in practice — everything
//! Redis's own AOF rewrite emits, what `rdb-dump resp` emits, and the
//! common write commands Redis propagates verbatim — to an in-memory
//! [`Keyspace`]. Any other command stops the conversion with an error
//! naming it (a wrong result is worse than none). Relative expiries
//! (`EXPIRE`, `SET ... EX`) are made absolute with the clock at conversion
//! time; expired keys are kept (the output is a faithful copy, Redis drops
//! them when it loads).
//!
//! Supported: SELECT, SET (EX/PX/EXAT/PXAT/KEEPTTL/NX/XX/GET), SETEX,
//! PSETEX, SETNX, MSET, APPEND, INCR/DECR/INCRBY/DECRBY, GETSET, GETDEL,
//! DEL/UNLINK, EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT, PERSIST, RENAME,
//! FLUSHDB/FLUSHALL, RPUSH/LPUSH, LPOP/RPOP (with count), SADD/SREM,
//! ZADD (plain pairs; NX/XX/GT/LT/CH), ZREM, ZINCRBY, HSET/HMSET/HSETNX/HDEL,
//! HINCRBY, HPEXPIREAT (FIELDS), XADD (explicit ids, MAXLEN 0), XSETID,
//! XDEL, XGROUP CREATE/CREATECONSUMER/SETID/DESTROY/DELCONSUMER, XCLAIM
//! (explicit TIME/RETRYCOUNT/FORCE/JUSTID), XACK, FUNCTION LOAD (kept for
//! the RDB header), PING (ignored).

use bytes::Bytes;
use redoubt_persist::value::{
    Consumer, ConsumerGroup, HashValue, ListValue, PendingEntry, SetValue, Stream, StreamId,
};
use redoubt_persist::{Keyspace, Value};

pub struct Applier {
    pub ks: Keyspace,
    pub db: usize,
    pub functions: Vec<Vec<u8>>,
    now_ms: u64,
}

type R<T = ()> = Result<T, String>;

fn up(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_uppercase()
}

fn int(a: &[u8]) -> R<i64> {
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("value is not an integer: '{}'", String::from_utf8_lossy(a)))
}

fn float(a: &[u8]) -> R<f64> {
    let s = std::str::from_utf8(a).map_err(|_| "bad float".to_string())?;
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        t => t
            .parse::<f64>()
            .ok()
            .filter(|v| !v.is_nan())
            .ok_or_else(|| format!("value is not a valid float: '{s}'")),
    }
}

fn sid(a: &[u8]) -> R<StreamId> {
    let s = std::str::from_utf8(a).map_err(|_| "bad stream id".to_string())?;
    let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
    match (ms.parse(), seq.parse()) {
        (Ok(ms), Ok(seq)) => Ok(StreamId::new(ms, seq)),
        _ => Err(format!(
            "invalid stream ID '{s}' (the applier needs explicit ids)"
        )),
    }
}

fn b(a: &[u8]) -> Bytes {
    Bytes::copy_from_slice(a)
}

fn wrongtype() -> String {
    "WRONGTYPE Operation against a key holding the wrong kind of value".into()
}

impl Applier {
    pub fn new(databases: usize, now_ms: u64) -> Applier {
        Applier {
            ks: Keyspace::new(databases),
            db: 0,
            functions: Vec::new(),
            now_ms,
        }
    }

    fn get(&mut self, key: &[u8]) -> Option<&mut Value> {
        self.ks.db(self.db).get(key, 0).map(|e| &mut e.value)
    }

    fn expire_of(&mut self, key: &[u8]) -> u64 {
        self.ks.db(self.db).peek(key).map_or(0, |e| e.expire_at)
    }

    fn set(&mut self, key: &[u8], v: Value, expire: u64) {
        self.ks.db(self.db).insert(key, v, expire);
    }

    /// Gets or creates a collection; `mk` builds the empty value, `is`
    /// checks the type.
    fn coll(&mut self, key: &[u8], mk: fn() -> Value, is: fn(&Value) -> bool) -> R<&mut Value> {
        let exists = match self.ks.db(self.db).get(key, 0) {
            Some(e) => {
                if !is(&e.value) {
                    return Err(wrongtype());
                }
                true
            }
            None => false,
        };
        if !exists {
            self.set(key, mk(), 0);
        }
        Ok(self.get(key).expect("just inserted"))
    }

    fn drop_if_empty(&mut self, key: &[u8]) {
        let empty = match self.get(key) {
            Some(Value::List(l)) => l.items.is_empty(),
            Some(Value::Set(s)) => s.members.is_empty(),
            Some(Value::ZSet(z)) => z.is_empty(),
            Some(Value::Hash(h)) => h.map.is_empty(),
            _ => false,
        };
        if empty {
            self.ks.db(self.db).remove(key);
        }
    }

    fn stream(&mut self, key: &[u8], create: bool) -> R<&mut Stream> {
        if create {
            self.coll(
                key,
                || Value::Stream(Box::default()),
                |v| matches!(v, Value::Stream(_)),
            )?;
        }
        match self.get(key) {
            Some(Value::Stream(s)) => Ok(s),
            Some(_) => Err(wrongtype()),
            None => Err("no such key".into()),
        }
    }

    pub fn apply(&mut self, a: &[Vec<u8>]) -> R {
        let Some(name) = a.first() else {
            return Err("empty command".into());
        };
        let cmd = up(name);
        let arity = |n: usize| -> R {
            if a.len() < n {
                Err(format!("wrong number of arguments for '{cmd}'"))
            } else {
                Ok(())
            }
        };
        match cmd.as_str() {
            "PING" => Ok(()),
            "SELECT" => {
                arity(2)?;
                let n = int(&a[1])?;
                if n < 0 || n as usize >= self.ks.dbs.len() {
                    return Err("DB index is out of range".into());
                }
                self.db = n as usize;
                Ok(())
            }
            "FLUSHALL" => {
                self.ks.flush_all();
                Ok(())
            }
            "FLUSHDB" => {
                self.ks.db(self.db).clear();
                Ok(())
            }
            "FUNCTION" => {
                arity(2)?;
                if up(&a[1]) == "LOAD" {
                    let code = a.last().cloned().unwrap_or_default();
                    self.functions.push(code);
                    Ok(())
                } else {
                    Err(format!("unsupported command 'FUNCTION {}'", up(&a[1])))
                }
            }
            "SET" => {
                arity(3)?;
                let mut expire = 0u64;
                let (mut nx, mut xx, mut keep) = (false, false, false);
                let mut i = 3;
                while i < a.len() {
                    let o = up(&a[i]);
                    let arg = |i: usize| a.get(i + 1).ok_or_else(|| "syntax error".to_string());
                    match o.as_str() {
                        "NX" => nx = true,
                        "XX" => xx = true,
                        "GET" => {}
                        "KEEPTTL" => keep = true,
                        "EX" | "PX" | "EXAT" | "PXAT" => {
                            let v = int(arg(i)?)?.max(0) as u64;
                            expire = match o.as_str() {
                                "EX" => self.now_ms + v * 1000,
                                "PX" => self.now_ms + v,
                                "EXAT" => v * 1000,
                                _ => v,
                            };
                            i += 1;
                        }
                        _ => return Err(format!("syntax error in SET option '{o}'")),
                    }
                    i += 1;
                }
                let exists = self.get(&a[1]).is_some();
                if (nx && exists) || (xx && !exists) {
                    return Ok(());
                }
                if keep {
                    expire = self.expire_of(&a[1]);
                }
                self.set(&a[1], Value::str_from(&a[2]), expire);
                Ok(())
            }
            "SETEX" | "PSETEX" => {
                arity(4)?;
                let v = int(&a[2])?.max(0) as u64;
                let at = self.now_ms + if cmd == "SETEX" { v * 1000 } else { v };
                self.set(&a[1], Value::str_from(&a[3]), at);
                Ok(())
            }
            "SETNX" => {
                arity(3)?;
                if self.get(&a[1]).is_none() {
                    self.set(&a[1], Value::str_from(&a[2]), 0);
                }
                Ok(())
            }
            "MSET" => {
                for kv in a[1..].chunks(2) {
                    if kv.len() == 2 {
                        self.set(&kv[0], Value::str_from(&kv[1]), 0);
                    }
                }
                Ok(())
            }
            "GETSET" => {
                arity(3)?;
                self.set(&a[1], Value::str_from(&a[2]), 0);
                Ok(())
            }
            "APPEND" => {
                arity(3)?;
                let exp = self.expire_of(&a[1]);
                let mut cur = match self.get(&a[1]) {
                    Some(Value::Str(s)) => s.to_vec(),
                    Some(_) => return Err(wrongtype()),
                    None => Vec::new(),
                };
                cur.extend_from_slice(&a[2]);
                self.set(&a[1], Value::Str(cur.into()), exp);
                Ok(())
            }
            "INCR" | "DECR" | "INCRBY" | "DECRBY" => {
                let by = match cmd.as_str() {
                    "INCR" => 1,
                    "DECR" => -1,
                    "INCRBY" => int(a.get(2).ok_or("syntax error")?)?,
                    _ => -int(a.get(2).ok_or("syntax error")?)?,
                };
                arity(2)?;
                let exp = self.expire_of(&a[1]);
                let cur = match self.get(&a[1]) {
                    Some(Value::Str(s)) => int(s)?,
                    Some(_) => return Err(wrongtype()),
                    None => 0,
                };
                let n = cur.checked_add(by).ok_or("increment or decrement would overflow")?;
                self.set(&a[1], Value::Str(n.to_string().into()), exp);
                Ok(())
            }
            "DEL" | "UNLINK" | "GETDEL" => {
                for k in &a[1..] {
                    self.ks.db(self.db).remove(k);
                }
                Ok(())
            }
            "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => {
                arity(3)?;
                let v = int(&a[2])?;
                let at = match cmd.as_str() {
                    "EXPIRE" => self.now_ms as i64 + v.saturating_mul(1000),
                    "PEXPIRE" => self.now_ms as i64 + v,
                    "EXPIREAT" => v.saturating_mul(1000),
                    _ => v,
                };
                self.ks.db(self.db).set_expire(&a[1], at.max(1) as u64);
                Ok(())
            }
            "PERSIST" => {
                arity(2)?;
                self.ks.db(self.db).set_expire(&a[1], 0);
                Ok(())
            }
            "RENAME" => {
                arity(3)?;
                let e = self.ks.db(self.db).remove(&a[1]).ok_or("no such key")?;
                self.set(&a[2], e.value, e.expire_at);
                Ok(())
            }
            "RPUSH" | "LPUSH" => {
                arity(3)?;
                let v = self.coll(
                    &a[1],
                    || Value::List(Box::<ListValue>::default()),
                    |v| matches!(v, Value::List(_)),
                )?;
                let Value::List(l) = v else { unreachable!() };
                for x in &a[2..] {
                    if cmd == "RPUSH" {
                        l.items.push_back(b(x));
                    } else {
                        l.items.push_front(b(x));
                    }
                }
                Ok(())
            }
            "LPOP" | "RPOP" => {
                arity(2)?;
                let n = match a.get(2) {
                    Some(c) => int(c)?.max(0) as usize,
                    None => 1,
                };
                if let Some(Value::List(l)) = self.get(&a[1]) {
                    for _ in 0..n {
                        if cmd == "LPOP" {
                            l.items.pop_front();
                        } else {
                            l.items.pop_back();
                        }
                    }
                }
                self.drop_if_empty(&a[1]);
                Ok(())
            }
            "SADD" => {
                arity(3)?;
                let v = self.coll(
                    &a[1],
                    || Value::Set(Box::<SetValue>::default()),
                    |v| matches!(v, Value::Set(_)),
                )?;
                let Value::Set(s) = v else { unreachable!() };
                for x in &a[2..] {
                    s.members.insert(b(x));
                }
                Ok(())
            }
            "SREM" => {
                arity(3)?;
                if let Some(Value::Set(s)) = self.get(&a[1]) {
                    for x in &a[2..] {
                        s.members.remove(x.as_slice());
                    }
                }
                self.drop_if_empty(&a[1]);
                Ok(())
            }
            "ZADD" | "ZINCRBY" => {
                arity(4)?;
                let mut i = 2;
                let (mut nx, mut xx, mut gt, mut lt, mut incr) = (false, false, false, false, cmd == "ZINCRBY");
                if cmd == "ZADD" {
                    while i < a.len() {
                        match up(&a[i]).as_str() {
                            "NX" => nx = true,
                            "XX" => xx = true,
                            "GT" => gt = true,
                            "LT" => lt = true,
                            "CH" => {}
                            "INCR" => incr = true,
                            _ => break,
                        }
                        i += 1;
                    }
                }
                let pairs = &a[i..];
                if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
                    return Err("syntax error".into());
                }
                let mut parsed = Vec::with_capacity(pairs.len() / 2);
                for p in pairs.chunks(2) {
                    parsed.push((float(&p[0])?, b(&p[1])));
                }
                let v = self.coll(
                    &a[1],
                    || Value::ZSet(Box::default()),
                    |v| matches!(v, Value::ZSet(_)),
                )?;
                let Value::ZSet(z) = v else { unreachable!() };
                for (score, m) in parsed {
                    let old = z.score(&m);
                    if (nx && old.is_some()) || (xx && old.is_none()) {
                        continue;
                    }
                    let new = if incr { old.unwrap_or(0.0) + score } else { score };
                    if let Some(o) = old {
                        if (gt && new <= o) || (lt && new >= o) {
                            continue;
                        }
                    }
                    if new.is_nan() {
                        return Err("resulting score is not a number (NaN)".into());
                    }
                    z.insert(m, new);
                }
                self.drop_if_empty(&a[1]);
                Ok(())
            }
            "ZREM" => {
                arity(3)?;
                if let Some(Value::ZSet(z)) = self.get(&a[1]) {
                    for x in &a[2..] {
                        z.remove(x);
                    }
                }
                self.drop_if_empty(&a[1]);
                Ok(())
            }
            "HSET" | "HMSET" | "HSETNX" => {
                arity(4)?;
                if !(a.len() - 2).is_multiple_of(2) {
                    return Err(format!("wrong number of arguments for '{cmd}'"));
                }
                let v = self.coll(
                    &a[1],
                    || Value::Hash(Box::<HashValue>::default()),
                    |v| matches!(v, Value::Hash(_)),
                )?;
                let Value::Hash(h) = v else { unreachable!() };
                for kv in a[2..].chunks(2) {
                    if cmd == "HSETNX" && h.map.contains_key(kv[0].as_slice()) {
                        continue;
                    }
                    h.map.insert(b(&kv[0]), b(&kv[1]));
                    if let Some(t) = h.field_expiry.as_mut() {
                        t.remove(kv[0].as_slice());
                    }
                }
                Ok(())
            }
            "HDEL" => {
                arity(3)?;
                if let Some(Value::Hash(h)) = self.get(&a[1]) {
                    for x in &a[2..] {
                        h.map.remove(x.as_slice());
                        if let Some(t) = h.field_expiry.as_mut() {
                            t.remove(x.as_slice());
                        }
                    }
                }
                self.drop_if_empty(&a[1]);
                Ok(())
            }
            "HINCRBY" => {
                arity(4)?;
                let by = int(&a[3])?;
                let v = self.coll(
                    &a[1],
                    || Value::Hash(Box::<HashValue>::default()),
                    |v| matches!(v, Value::Hash(_)),
                )?;
                let Value::Hash(h) = v else { unreachable!() };
                let cur = match h.map.get(a[2].as_slice()) {
                    Some(x) => int(x)?,
                    None => 0,
                };
                let n = cur.checked_add(by).ok_or("increment or decrement would overflow")?;
                h.map.insert(b(&a[2]), Bytes::from(n.to_string()));
                Ok(())
            }
            "HPEXPIREAT" => {
                // HPEXPIREAT key ms FIELDS n f...
                arity(6)?;
                let at = int(&a[2])?.max(1) as u64;
                if let Some(Value::Hash(h)) = self.get(&a[1]) {
                    for f in &a[5..] {
                        if h.map.contains_key(f.as_slice()) {
                            h.field_expiry.get_or_insert_with(Default::default).insert(b(f), at);
                        }
                    }
                }
                Ok(())
            }
            "XADD" => self.xadd(a),
            "XSETID" => {
                arity(3)?;
                let id = sid(&a[2])?;
                let mut i = 3;
                let (mut added, mut maxdel) = (None, None);
                while i + 1 < a.len() {
                    match up(&a[i]).as_str() {
                        "ENTRIESADDED" => added = Some(int(&a[i + 1])?.max(0) as u64),
                        "MAXDELETEDID" => maxdel = Some(sid(&a[i + 1])?),
                        o => return Err(format!("syntax error in XSETID option '{o}'")),
                    }
                    i += 2;
                }
                let s = self.stream(&a[1], false)?;
                s.last_id = id;
                if let Some(n) = added {
                    s.entries_added = n;
                }
                if let Some(m) = maxdel {
                    s.max_deleted_id = m;
                }
                Ok(())
            }
            "XDEL" => {
                arity(3)?;
                let ids: Vec<StreamId> = a[2..].iter().map(|x| sid(x)).collect::<R<_>>()?;
                let s = self.stream(&a[1], false)?;
                for id in ids {
                    if s.entries.remove(id) && id > s.max_deleted_id {
                        s.max_deleted_id = id;
                    }
                }
                s.first_id = s.entries.first_id().unwrap_or_default();
                Ok(())
            }
            "XGROUP" => self.xgroup(a),
            "XCLAIM" => self.xclaim(a),
            "XACK" => {
                arity(4)?;
                let ids: Vec<StreamId> = a[3..].iter().map(|x| sid(x)).collect::<R<_>>()?;
                let s = self.stream(&a[1], false)?;
                if let Some(g) = s.groups.get_mut(a[2].as_slice()) {
                    for id in ids {
                        if let Some(pe) = g.pel.remove(&id) {
                            if let Some(c) = g.consumers.get_mut(&pe.consumer) {
                                c.pel.remove(&id);
                            }
                        }
                    }
                }
                Ok(())
            }
            _ => Err(format!(
                "unsupported command '{cmd}' (the AOF-to-RDB applier handles the common write commands; see `rdb-dump convert --help`)"
            )),
        }
    }

    fn xadd(&mut self, a: &[Vec<u8>]) -> R {
        if a.len() < 5 {
            return Err("wrong number of arguments for 'XADD'".into());
        }
        let mut i = 2;
        let mut maxlen: Option<u64> = None;
        let mut nomk = false;
        loop {
            match up(&a[i]).as_str() {
                "NOMKSTREAM" => nomk = true,
                "MAXLEN" => {
                    i += 1;
                    if matches!(a.get(i).map(|x| x.as_slice()), Some(b"=") | Some(b"~")) {
                        i += 1;
                    }
                    maxlen = Some(int(a.get(i).ok_or("syntax error")?)?.max(0) as u64);
                }
                _ => break,
            }
            i += 1;
            if i >= a.len() {
                return Err("syntax error".into());
            }
        }
        let id = sid(&a[i])?;
        let fields = &a[i + 1..];
        if fields.is_empty() || !fields.len().is_multiple_of(2) {
            return Err("wrong number of arguments for 'XADD'".into());
        }
        if nomk && self.get(&a[1]).is_none() {
            return Ok(());
        }
        let s = self.stream(&a[1], true)?;
        if id <= s.last_id {
            return Err(
                "The ID specified in XADD is equal or smaller than the target stream top item"
                    .into(),
            );
        }
        s.entries
            .insert(id, fields.chunks_exact(2).map(|p| (&p[0][..], &p[1][..])));
        s.last_id = id;
        s.entries_added += 1;
        if let Some(m) = maxlen {
            while s.entries.len() as u64 > m {
                if let Some(first) = s.entries.pop_first() {
                    if first > s.max_deleted_id {
                        s.max_deleted_id = first;
                    }
                }
            }
        }
        s.first_id = s.entries.first_id().unwrap_or_default();
        Ok(())
    }

    fn xgroup(&mut self, a: &[Vec<u8>]) -> R {
        if a.len() < 4 {
            return Err("wrong number of arguments for 'XGROUP'".into());
        }
        let sub = up(&a[1]);
        let key = &a[2];
        let group = b(&a[3]);
        match sub.as_str() {
            "CREATE" | "SETID" => {
                let id_arg = a.get(4).ok_or("syntax error")?;
                let (mut mk, mut er) = (false, None);
                let mut i = 5;
                while i < a.len() {
                    match up(&a[i]).as_str() {
                        "MKSTREAM" => mk = true,
                        "ENTRIESREAD" => {
                            er = Some(int(a.get(i + 1).ok_or("syntax error")?)?);
                            i += 1;
                        }
                        o => return Err(format!("syntax error in XGROUP option '{o}'")),
                    }
                    i += 1;
                }
                let s = self.stream(key, mk)?;
                let id = if id_arg.as_slice() == b"$" {
                    s.last_id
                } else {
                    sid(id_arg)?
                };
                let g = s.groups.entry(group).or_insert_with(|| ConsumerGroup {
                    entries_read: -1,
                    ..Default::default()
                });
                g.last_id = id;
                g.entries_read = er.unwrap_or(-1);
                Ok(())
            }
            "CREATECONSUMER" => {
                let c = b(a.get(4).ok_or("syntax error")?);
                let now = self.now_ms;
                let s = self.stream(key, false)?;
                let g = s
                    .groups
                    .get_mut(&group)
                    .ok_or("NOGROUP no such consumer group")?;
                g.consumers.entry(c).or_insert_with(|| Consumer {
                    seen_time: now,
                    active_time: now,
                    pel: Default::default(),
                });
                Ok(())
            }
            "DESTROY" => {
                let s = self.stream(key, false)?;
                s.groups.remove(&group);
                Ok(())
            }
            "DELCONSUMER" => {
                let c = b(a.get(4).ok_or("syntax error")?);
                let s = self.stream(key, false)?;
                if let Some(g) = s.groups.get_mut(&group) {
                    if let Some(cons) = g.consumers.remove(&c) {
                        for id in cons.pel {
                            g.pel.remove(&id);
                        }
                    }
                }
                Ok(())
            }
            o => Err(format!("unsupported command 'XGROUP {o}'")),
        }
    }

    /// `XCLAIM key group consumer min-idle id... [TIME ms] [RETRYCOUNT n]
    /// [FORCE] [JUSTID] [LASTID id]` as Redis propagates it.
    fn xclaim(&mut self, a: &[Vec<u8>]) -> R {
        if a.len() < 6 {
            return Err("wrong number of arguments for 'XCLAIM'".into());
        }
        let consumer = b(&a[3]);
        let mut ids = Vec::new();
        let mut i = 5;
        while i < a.len() {
            match sid(&a[i]) {
                Ok(id) => ids.push(id),
                Err(_) => break,
            }
            i += 1;
        }
        let (mut time, mut count, mut force, mut justid) = (self.now_ms, None, false, false);
        let mut lastid = None;
        while i < a.len() {
            match up(&a[i]).as_str() {
                "TIME" => {
                    time = int(a.get(i + 1).ok_or("syntax error")?)?.max(0) as u64;
                    i += 1;
                }
                "IDLE" => {
                    let idle = int(a.get(i + 1).ok_or("syntax error")?)?.max(0) as u64;
                    time = self.now_ms.saturating_sub(idle);
                    i += 1;
                }
                "RETRYCOUNT" => {
                    count = Some(int(a.get(i + 1).ok_or("syntax error")?)?.max(0) as u64);
                    i += 1;
                }
                "LASTID" => {
                    lastid = Some(sid(a.get(i + 1).ok_or("syntax error")?)?);
                    i += 1;
                }
                "FORCE" => force = true,
                "JUSTID" => justid = true,
                o => return Err(format!("syntax error in XCLAIM option '{o}'")),
            }
            i += 1;
        }
        let s = self.stream(&a[1], false)?;
        let has = |id: &StreamId| s.entries.contains(*id);
        let present: Vec<bool> = ids.iter().map(has).collect();
        let g = s
            .groups
            .get_mut(a[2].as_slice())
            .ok_or("NOGROUP no such consumer group")?;
        if let Some(l) = lastid {
            if l > g.last_id {
                g.last_id = l;
            }
        }
        for (id, present) in ids.into_iter().zip(present) {
            let old = g.pel.get(&id).cloned();
            if old.is_none() && !(force && present) {
                continue;
            }
            if let Some(o) = &old {
                if let Some(c) = g.consumers.get_mut(&o.consumer) {
                    c.pel.remove(&id);
                }
            }
            let prev_count = old.as_ref().map_or(0, |o| o.delivery_count);
            let dc = count.unwrap_or(if justid { prev_count } else { prev_count + 1 });
            g.pel.insert(
                id,
                PendingEntry {
                    delivery_time: time,
                    delivery_count: dc,
                    consumer: consumer.clone(),
                },
            );
            let c = g
                .consumers
                .entry(consumer.clone())
                .or_insert_with(|| Consumer {
                    seen_time: time,
                    active_time: time,
                    pel: Default::default(),
                });
            c.pel.insert(id);
        }
        Ok(())
    }
}
