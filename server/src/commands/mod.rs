//! The command table. Each family of commands lives in its own module and
//! lists its commands in a `COMMANDS` slice; adding a command is one handler
//! and one entry there.

use crate::client::Client;
use crate::exec::Executor;
use crate::resp::Reply;
use bytes::Bytes;
use redoubt_persist::{Db, Entry, Value, ValueType};

pub mod connection;
pub mod getkeys;
pub mod hashes;
pub mod keys;
pub mod lists;
pub mod persistence;
pub mod pubsub;
pub mod server;
pub mod sets;
pub mod stream_groups;
pub mod streams;
pub mod strings;
pub mod zset_store;
pub mod zsets;

/// Command flags (a subset of Redis's, with the same meaning).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const PUBSUB: u32 = 1 << 4;
    pub const NOSCRIPT: u32 = 1 << 5;
    pub const BLOCKING: u32 = 1 << 6;
    pub const LOADING: u32 = 1 << 7;
    pub const STALE: u32 = 1 << 8;
    pub const FAST: u32 = 1 << 9;
    /// Allowed before AUTH.
    pub const NO_AUTH: u32 = 1 << 10;
    /// Runs at once inside MULTI instead of being queued (MULTI, EXEC, ...).
    pub const NO_QUEUE: u32 = 1 << 11;
    /// Refused inside MULTI.
    pub const NO_MULTI: u32 = 1 << 12;
    /// Allowed in RESP2 subscribed mode.
    pub const PUBSUB_CONTEXT: u32 = 1 << 13;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (NO_MULTI, "no_multi"),
    ];
}

pub type Handler = fn(&mut Ctx, &[Bytes]) -> Reply;

/// One command: name (lowercase), arity as Redis counts it (negative = at
/// least), flags, key positions (first, last, step; 0 = no keys), handler.
pub struct CommandSpec {
    pub name: &'static str,
    pub arity: i32,
    pub flags: u32,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub handler: Handler,
}

impl CommandSpec {
    pub const fn new(
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: (i32, i32, i32),
        group: &'static str,
        handler: Handler,
    ) -> CommandSpec {
        CommandSpec {
            name,
            arity,
            flags,
            first_key: keys.0,
            last_key: keys.1,
            step: keys.2,
            group,
            handler,
        }
    }

    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let a = self.arity;
        (a >= 0 && argc == a as usize) || (a < 0 && argc >= (-a) as usize)
    }

    /// The key arguments of one invocation, from the key positions.
    pub fn keys<'a>(&self, args: &'a [Bytes]) -> Vec<&'a Bytes> {
        if self.first_key <= 0 {
            return Vec::new();
        }
        let last = if self.last_key < 0 {
            args.len() as i32 + self.last_key
        } else {
            self.last_key
        };
        let mut out = Vec::new();
        let mut i = self.first_key;
        while i <= last && (i as usize) < args.len() {
            out.push(&args[i as usize]);
            i += self.step.max(1);
        }
        out
    }
}

/// Every command family, in the order COMMAND lists them.
pub fn families() -> Vec<&'static [CommandSpec]> {
    vec![
        connection::COMMANDS,
        server::COMMANDS,
        keys::COMMANDS,
        strings::COMMANDS,
        pubsub::COMMANDS,
        persistence::COMMANDS,
        crate::aof::COMMANDS,
        lists::COMMANDS,
        hashes::COMMANDS,
        sets::COMMANDS,
        zsets::COMMANDS,
        zset_store::COMMANDS,
        streams::COMMANDS,
        stream_groups::COMMANDS,
    ]
}

/// What a handler works with: the executor (keyspace, config, registries),
/// the calling client, and the time the command started (Redis fixes the
/// clock for the duration of one command, so every key in it sees one "now").
pub struct Ctx<'a> {
    pub ex: &'a mut Executor,
    pub client: &'a mut Client,
    pub now: u64,
    /// How this command is written to the AOF; see [`Propagate`].
    pub propagate: Propagate,
}

/// How the executed command is logged when it changed the dataset.
#[derive(Debug, Clone, PartialEq)]
pub enum Propagate {
    /// As received.
    AsIs,
    /// Replaced by these commands (e.g. SET EX as SET PXAT, SPOP as SREM).
    As(Vec<Vec<Bytes>>),
    /// Not at all, even though it changed something.
    Never,
}

impl<'a> Ctx<'a> {
    /// The client's selected database.
    pub fn db(&mut self) -> &mut Db {
        let idx = self.client.db;
        &mut self.ex.ks.dbs[idx]
    }

    /// Looks a key up in the selected db, expiring it lazily.
    pub fn lookup(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let now = self.now;
        self.db().get(key, now)
    }

    /// Looks a key up for a command that only reads it: a running
    /// snapshot is not handed a copy of a key that does not change.
    pub fn lookup_ro(&mut self, key: &[u8]) -> Option<&Entry> {
        let now = self.now;
        self.db().get_ro(key, now)
    }

    /// Looks a key up and checks its type: Ok(None) when missing,
    /// Err(WRONGTYPE reply) when of another type.
    pub fn lookup_typed(&mut self, key: &[u8], t: ValueType) -> Result<Option<&mut Entry>, Reply> {
        match self.lookup(key) {
            None => Ok(None),
            Some(e) if e.value.value_type() == t => Ok(Some(e)),
            Some(_) => Err(wrongtype()),
        }
    }

    /// Records that `key` in the selected db changed: WATCHers are dirtied,
    /// blocked clients waiting on it are woken, and the change counts toward
    /// save points and AOF propagation.
    pub fn modified(&mut self, key: &[u8]) {
        let db = self.client.db;
        self.ex.key_modified(db, key);
        self.ex.dirty += 1;
    }

    /// Like [`Ctx::modified`] for a key in another db (MOVE, COPY ... DB).
    pub fn modified_in(&mut self, db: usize, key: &[u8]) {
        self.ex.key_modified(db, key);
        self.ex.dirty += 1;
    }

    /// Counts changes that touched no single key (FLUSHALL, SWAPDB).
    pub fn add_dirty(&mut self, n: u64) {
        self.ex.dirty += n;
    }

    /// Logs this command as `cmds` instead of as received.
    pub fn propagate_as(&mut self, cmds: Vec<Vec<Bytes>>) {
        self.propagate = Propagate::As(cmds);
    }

    /// Whether what this command logs is kept (the AOF is on). When it is
    /// not, a command whose logged form costs work to build (XADD's) may
    /// skip it: the LSN is taken either way.
    pub fn logs_effects(&self) -> bool {
        self.ex.durability.records()
    }

    /// Blocks the client on `keys` until one is ready or `timeout_ms` (0 =
    /// forever) passes; returns the reply to give meanwhile. Inside MULTI a
    /// blocking command does not block: it answers `timeout_reply` at once.
    /// When the command is being re-run for a ready key (see
    /// [`Ctx::serving_key`]) the client is still queued where it was, so this
    /// only says "not yet".
    pub fn block(
        &mut self,
        keys: Vec<Bytes>,
        timeout_ms: u64,
        args: &[Bytes],
        timeout_reply: Reply,
    ) -> Reply {
        if self.ex.serving.is_some() {
            return Reply::Blocked;
        }
        if self.ex.in_exec {
            return timeout_reply;
        }
        // A timeout too far away to represent is as good as forever (and
        // must not overflow `Instant`).
        let deadline = (timeout_ms > 0)
            .then(|| {
                std::time::Instant::now().checked_add(std::time::Duration::from_millis(timeout_ms))
            })
            .flatten();
        // Kept for as long as the client waits: own copies, so the wait does
        // not pin the connection's read buffer the arguments were cut from.
        let keys = keys.iter().map(|k| Bytes::copy_from_slice(k)).collect();
        let args = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        self.ex
            .block_client(self.client, keys, args, timeout_reply, deadline);
        Reply::Blocked
    }

    /// While a blocked client's command is re-run because one of its keys
    /// became ready: that key. Blocking handlers then serve from that key
    /// only, and a key of another type means "keep waiting", not WRONGTYPE.
    pub fn serving_key(&self) -> Option<Bytes> {
        self.ex.serving.clone()
    }

    /// Whether the keyspace holds a live key (any type).
    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.lookup_ro(key).is_some()
    }

    /// Inserts or replaces a value, clearing any expiry (SET semantics).
    pub fn set_value(&mut self, key: &[u8], value: Value) {
        self.db().set(key, value, 0);
    }

    /// Runs `f` on the `T` at `key`, created empty if missing
    /// (WRONGTYPE for another type). An existing value (every HSET or SADD
    /// but a key's first) costs one keyspace lookup; a new one is built
    /// aside and inserted once `f` has filled it.
    pub fn with_or_create<T: Container, R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&mut T) -> R,
    ) -> Result<R, Reply> {
        if let Some(e) = self.lookup(key) {
            return T::of(&mut e.value).map(f).ok_or_else(wrongtype);
        }
        let mut v = Box::<T>::default();
        let r = f(&mut v);
        self.set_value(key, T::into_value(v));
        Ok(r)
    }
}

/// A value type [`Ctx::with_or_create`] can create.
pub trait Container: Default {
    /// The value as this type, if it is one.
    fn of(v: &mut Value) -> Option<&mut Self>;
    fn into_value(b: Box<Self>) -> Value;
}

impl Container for redoubt_persist::value::HashValue {
    fn of(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Hash(h) => Some(h),
            _ => None,
        }
    }

    fn into_value(b: Box<Self>) -> Value {
        Value::Hash(b)
    }
}

impl Container for redoubt_persist::value::SetValue {
    fn of(v: &mut Value) -> Option<&mut Self> {
        match v {
            Value::Set(s) => Some(s),
            _ => None,
        }
    }

    fn into_value(b: Box<Self>) -> Value {
        Value::Set(b)
    }
}

// ---- Redis's standard error replies -------------------------------------

pub fn wrongtype() -> Reply {
    Reply::err("WRONGTYPE Operation against a key holding the wrong kind of value")
}

pub fn syntax_error() -> Reply {
    Reply::err("ERR syntax error")
}

pub fn not_integer() -> Reply {
    Reply::err("ERR value is not an integer or out of range")
}

pub fn not_float() -> Reply {
    Reply::err("ERR value is not a valid float")
}

pub fn wrong_args(name: &str) -> Reply {
    Reply::Error(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub fn no_such_key() -> Reply {
    Reply::err("ERR no such key")
}

/// An integer argument, or the standard error reply.
pub fn arg_i64(a: &[u8]) -> Result<i64, Reply> {
    crate::util::parse_i64(a).ok_or_else(not_integer)
}

/// A float argument, or the standard error reply.
pub fn arg_f64(a: &[u8]) -> Result<f64, Reply> {
    crate::util::parse_f64(a).ok_or_else(not_float)
}

/// Unwraps a `Result<Reply, Reply>`-returning body: handlers use `?` on
/// argument parsing and return the error reply as is.
pub fn reply(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

/// Renders an unknown-subcommand error as Redis 7 does.
pub fn unknown_subcommand(cmd: &str, sub: &[u8]) -> Reply {
    Reply::Error(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        String::from_utf8_lossy(sub),
        cmd.to_ascii_uppercase()
    ))
}
