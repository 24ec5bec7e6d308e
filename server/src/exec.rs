//! The executor: owns the keyspace and runs commands one at a time, in one
//! total order. Every change gets the next LSN and goes to the durability
//! sink in that order; every reply carries the LSN of the state it saw.
//!
//! It runs on the event-loop thread: connection tasks parse a batch of
//! commands and call [`Executor::execute`] for each, without awaiting in
//! between, so commands never interleave. Nothing here blocks on disk.

use crate::client::{BlockState, Client, Outgoing};
use crate::commands::{self, flags, CommandSpec, Ctx, Propagate};
use crate::config::Config;
use crate::durability::{Durability, Volatile};
use crate::resp::Reply;
use crate::util::now_ms;
use bytes::Bytes;
use hashbrown::HashMap;
use rand::SeedableRng;
use redoubt_persist::Keyspace;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Per-command counters for INFO commandstats.
#[derive(Debug, Default, Clone)]
pub struct CmdStat {
    pub calls: u64,
    pub usec: u64,
    pub rejected: u64,
    pub failed: u64,
}

/// Server-wide counters for INFO stats.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub total_connections: u64,
    pub rejected_connections: u64,
    pub total_commands: u64,
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    pub total_error_replies: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Save if save points are configured (plain SHUTDOWN, SIGTERM).
    Default,
    Save,
    NoSave,
}

pub struct Executor {
    pub config: Config,
    pub ks: Keyspace,
    pub clients: HashMap<u64, Rc<RefCell<Client>>>,
    next_client_id: u64,
    /// LSN of the last logged change.
    pub lsn: u64,
    /// Changes since the last successful save (rdb_changes_since_last_save).
    pub dirty: u64,
    /// True while EXEC runs its queue (blocking commands must not block).
    pub in_exec: bool,
    exec_log: Vec<(usize, Vec<Bytes>)>,
    /// The request frame of the command a connection is running, when the
    /// parser found it canonical: logged as it is if the command is.
    pub request_frame: Option<Bytes>,
    table: HashMap<Vec<u8>, usize>,
    pub specs: Vec<&'static CommandSpec>,
    pub cmdstats: Vec<CmdStat>,
    pub stats: Stats,
    /// Clients blocked per (db, key), in arrival order.
    blocked_on: Vec<HashMap<Bytes, VecDeque<u64>>>,
    ready: Vec<(usize, Bytes)>,
    /// Clients watching each key, per db.
    watchers: Vec<HashMap<Bytes, Vec<u64>>>,
    /// Clients whose watched keys changed since WATCH.
    pub watch_dirty: hashbrown::HashSet<u64>,
    pub durability: Box<dyn Durability>,
    pub started: Instant,
    pub rng: rand::rngs::SmallRng,
    pub shutdown: Option<ShutdownMode>,
    /// FUNCTION libraries, kept as (name, code) until scripting arrives.
    pub functions: Vec<(Bytes, Bytes)>,
    /// Unix seconds of the last successful save.
    pub lastsave: u64,
    pub active_expire_enabled: bool,
    pub run_id: String,
    pub blocked_clients: usize,
    pub pubsub: crate::pubsub::PubSub,
    pub save: crate::persistence::SaveState,
    /// What a snapshot's threads know of the event loop (its thread, its
    /// sleeps), kept by the runtime's park hooks (see [`crate::run::run`]):
    /// they give their core back to it. `None` where the runtime has no
    /// such hooks (tests).
    pub event_loop: Option<redoubt_persist::snapshot::sched::EventLoopState>,
    /// While a blocked client's command is re-run by [`Executor::serve_ready`]:
    /// the key that became ready. Handlers serve from that key only (as
    /// Redis does), and blocking again leaves the client where it was queued.
    pub serving: Option<Bytes>,
    /// The clock of the batch being executed (see [`Executor::execute_at`]).
    clock: Option<BatchClock>,
    /// Per command: whether it may look keys up outside its client's
    /// database (and so expire them there).
    cross_db: Vec<bool>,
    /// Per command: whether it is a container command (CONFIG, OBJECT,
    /// XINFO...) whose subcommand is checked before it runs, so the other
    /// commands skip the search of [`SUBCOMMANDS`] by name.
    has_subcommands: Vec<bool>,
    /// Per command: whether it is one of [`SEES_NO_DATA`].
    sees_no_data: Vec<bool>,
    /// Whether the command being executed ran something that reads or
    /// changes the dataset (see [`Executor::execute_at`]).
    saw_data: bool,
}

/// The commands that look keys up in a database other than their client's
/// (MOVE's and COPY's targets, SWAPDB, DEBUG RELOAD, a transaction that
/// SELECTs): after them every database is checked for expired keys.
const CROSS_DB: &[&str] = &[
    "move", "copy", "swapdb", "flushall", "debug", "exec", "select",
];

/// The commands whose reply shows nothing of the dataset: connection
/// state, configuration, server status. Their replies wait for no log
/// write, so while the log cannot be written (a full disk) INFO, CONFIG and
/// CLIENT still answer and PING gets its MISCONF error, as with Redis.
/// Every other command's reply waits for the log to hold the writes it
/// observed (see [`Executor::execute_at`]).
const SEES_NO_DATA: &[&str] = &[
    "auth",
    "bgrewriteaof",
    "bgsave",
    "client",
    "command",
    "config",
    "discard",
    "echo",
    "hello",
    "info",
    "lastsave",
    "multi",
    "ping",
    "quit",
    "reset",
    "select",
    "time",
    "unwatch",
    "watch",
];

/// Clock readings shared by the commands of one batch (one read from a
/// connection): the wall clock is read once per batch, and each command
/// then costs one monotonic reading, which both ends its duration (for
/// commandstats) and starts the next one's. Commands see the wall clock as
/// the batch's reading plus the monotonic time elapsed since, so time
/// still moves within a long batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchClock {
    base: Instant,
    /// End of the previous command (or the batch's start).
    mark: Instant,
    /// The wall clock (since the Unix epoch) at `mark`: advanced by each
    /// command's measured duration, so no further clock arithmetic.
    mark_wall: Duration,
}

thread_local! {
    /// A wall-clock reading paired with the monotonic instant it was taken
    /// at: batches derive their wall time from it, so a batch costs one
    /// clock read instead of two. Both clocks advance at the same (slewed)
    /// rate; [`BatchClock::resync`] takes a fresh pair from the cron, so a
    /// step of the wall clock shows within one cron period, as Redis's
    /// cached time does.
    static WALL: std::cell::Cell<(Instant, Duration)> = std::cell::Cell::new(wall_pair());
}

/// The monotonic and the wall clock, read back to back.
fn wall_pair() -> (Instant, Duration) {
    let at = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (at, wall)
}

impl BatchClock {
    pub fn now() -> BatchClock {
        let base = Instant::now();
        let (at, wall) = WALL.with(|w| w.get());
        BatchClock {
            base,
            mark: base,
            mark_wall: wall + base.saturating_duration_since(at),
        }
    }

    /// Re-reads the wall clock (from the cron).
    pub fn resync() {
        WALL.with(|w| w.set(wall_pair()));
    }

    /// When the batch started (monotonic).
    pub fn started(&self) -> Instant {
        self.base
    }

    /// Unix ms as of the last mark.
    fn now_ms(&self) -> u64 {
        self.mark_wall.as_millis() as u64
    }

    /// Moves the mark to `ended`, `elapsed` after the previous one.
    fn advance(&mut self, ended: Instant, elapsed: Duration) {
        self.mark = ended;
        self.mark_wall += elapsed;
    }
}

impl Executor {
    pub fn new(config: Config) -> Executor {
        let dbs = config.databases;
        let mut table = HashMap::new();
        let mut specs = Vec::new();
        for family in commands::families() {
            for spec in family {
                table.insert(spec.name.as_bytes().to_vec(), specs.len());
                specs.push(spec);
            }
        }
        let mut rng = rand::rngs::SmallRng::from_entropy();
        let run_id: String = (0..40)
            .map(|_| char::from_digit(rand::Rng::gen_range(&mut rng, 0..16), 16).unwrap_or('0'))
            .collect();
        let cross_db = specs.iter().map(|s| CROSS_DB.contains(&s.name)).collect();
        let has_subcommands = specs
            .iter()
            .map(|s| SUBCOMMANDS.iter().any(|(n, _)| *n == s.name))
            .collect();
        let sees_no_data = specs
            .iter()
            .map(|s| SEES_NO_DATA.contains(&s.name))
            .collect();
        Executor {
            config,
            ks: Keyspace::new(dbs),
            clients: HashMap::new(),
            next_client_id: 1,
            lsn: 0,
            dirty: 0,
            in_exec: false,
            exec_log: Vec::new(),
            request_frame: None,
            cmdstats: vec![CmdStat::default(); specs.len()],
            table,
            specs,
            stats: Stats::default(),
            blocked_on: (0..dbs).map(|_| HashMap::new()).collect(),
            ready: Vec::new(),
            watchers: (0..dbs).map(|_| HashMap::new()).collect(),
            watch_dirty: Default::default(),
            durability: Box::new(Volatile),
            started: Instant::now(),
            rng,
            shutdown: None,
            functions: Vec::new(),
            lastsave: now_ms() / 1000,
            active_expire_enabled: true,
            run_id,
            blocked_clients: 0,
            pubsub: Default::default(),
            save: Default::default(),
            event_loop: None,
            serving: None,
            clock: None,
            cross_db,
            has_subcommands,
            sees_no_data,
            saw_data: false,
        }
    }

    // ---- clients ----------------------------------------------------------

    pub fn register_client(&mut self, mk: impl FnOnce(u64) -> Client) -> Rc<RefCell<Client>> {
        let id = self.next_client_id;
        self.next_client_id += 1;
        let c = Rc::new(RefCell::new(mk(id)));
        self.clients.insert(id, c.clone());
        self.stats.total_connections += 1;
        c
    }

    pub fn unregister_client(&mut self, client: &mut Client) {
        self.unwatch_all(client);
        self.unblock(client);
        self.pubsub_forget(client);
        self.clients.remove(&client.id);
    }

    // ---- dispatch ---------------------------------------------------------

    pub fn lookup_command(&self, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; 32];
        if name.len() <= buf.len() {
            let lower = &mut buf[..name.len()];
            lower.copy_from_slice(name);
            lower.make_ascii_lowercase();
            self.table.get(&*lower).copied()
        } else {
            None
        }
    }

    /// Runs one command for `client`. Returns the reply and the LSN it must
    /// wait for before it is sent: the last one executed, or 0 for a reply
    /// that shows nothing of the dataset (a command refused before it ran,
    /// or one of [`SEES_NO_DATA`]).
    pub fn execute(&mut self, client: &mut Client, args: &[Bytes]) -> (Reply, u64) {
        self.execute_at(client, args, &mut BatchClock::now())
    }

    /// As [`Executor::execute`], for one command of a batch that shares
    /// `clock` (advanced past this command on return).
    pub fn execute_at(
        &mut self,
        client: &mut Client,
        args: &[Bytes],
        clock: &mut BatchClock,
    ) -> (Reply, u64) {
        self.clock = Some(*clock);
        // CONFIG SET may switch the AOF on or off or change its fsync
        // policy; apply that once the new config is in place.
        let old_config = crate::util::eq_ic(&args[0], "config").then(|| self.config.clone());
        self.saw_data = false;
        let mut reply = self.dispatch(client, args);
        if let Some(old) = old_config {
            if reply == Reply::ok() {
                if let Some(err) = crate::aof::on_config_change(self, &old) {
                    reply = err;
                }
            }
        }
        self.after_command(client);
        if reply.is_error() {
            self.stats.total_error_replies += 1;
        }
        if let Some(c) = self.clock.take() {
            *clock = c;
        }
        let lsn = if self.saw_data { self.lsn } else { 0 };
        (reply, lsn)
    }

    fn dispatch(&mut self, client: &mut Client, args: &[Bytes]) -> Reply {
        let Some(idx) = self.lookup_command(&args[0]) else {
            if client.multi.is_some() {
                client.multi_error = true;
            }
            return unknown_command(args);
        };
        let spec = self.specs[idx];
        client.last_cmd = spec.name;
        if !spec.arity_ok(args.len()) {
            self.cmdstats[idx].rejected += 1;
            if spec.name == "exec" {
                // A rejected EXEC discards the transaction and the WATCHes,
                // in MULTI or not (Redis's execCommandAbort).
                client.multi = None;
                client.multi_error = false;
                self.unwatch_all(client);
                return Reply::err(
                    "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command",
                );
            }
            if client.multi.is_some() {
                client.multi_error = true;
            }
            return commands::wrong_args(spec.name);
        }
        if let Some(err) = self.has_subcommands[idx]
            .then(|| check_subcommand(spec.name, args))
            .flatten()
        {
            // Redis 7 looks subcommands up like commands: an unknown one or
            // a wrong arity is rejected before queueing or running.
            if client.multi.is_some() {
                client.multi_error = true;
            }
            self.cmdstats[idx].rejected += 1;
            return err;
        }
        if !client.authenticated && !self.config.requirepass.is_empty() && !spec.has(flags::NO_AUTH)
        {
            if client.multi.is_some() {
                client.multi_error = true;
            }
            return Reply::err("NOAUTH Authentication required.");
        }
        if spec.has(flags::WRITE) || spec.name == "ping" {
            if let Some(e) = self.durability.write_error() {
                if client.multi.is_some() {
                    client.multi_error = true;
                }
                return Reply::Error(format!("MISCONF Errors writing to the AOF file: {e}"));
            }
        }
        if client.multi.is_some() && !spec.has(flags::NO_QUEUE) {
            if spec.has(flags::NO_MULTI) {
                client.multi_error = true;
                return Reply::err("ERR Command not allowed inside a transaction");
            }
            if let Some(q) = client.multi.as_mut() {
                q.push(args.to_vec());
            }
            return Reply::Status("QUEUED");
        }
        if spec.has(flags::WRITE) || spec.name == "ping" {
            if let Some(refusal) = self.write_refusal() {
                return refusal;
            }
        }
        if client.in_pubsub_mode() && !spec.has(flags::PUBSUB_CONTEXT) {
            return Reply::Error(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                spec.name
            ));
        }
        self.call(client, idx, args)
    }

    /// Runs a command known to be valid for this client, with stats and
    /// propagation. EXEC calls it for each queued command.
    pub fn call(&mut self, client: &mut Client, idx: usize, args: &[Bytes]) -> Reply {
        let spec = self.specs[idx];
        self.saw_data |= !self.sees_no_data[idx];
        let dirty_before = self.dirty;
        let (now, started) = match &self.clock {
            Some(c) => (c.now_ms(), c.mark),
            None => (now_ms(), Instant::now()),
        };
        let mut ctx = Ctx {
            ex: self,
            client,
            now,
            propagate: Propagate::AsIs,
        };
        let reply = (spec.handler)(&mut ctx, args);
        let propagate = std::mem::replace(&mut ctx.propagate, Propagate::AsIs);
        let db = ctx.client.db;
        let st = &mut self.cmdstats[idx];
        // A blocking command counts as one call, made when it first ran;
        // re-running it to serve the client (see serve_ready) is not another.
        if self.serving.is_none() {
            st.calls += 1;
            self.stats.total_commands += 1;
        }
        let ended = Instant::now();
        let elapsed = ended.saturating_duration_since(started);
        st.usec += elapsed.as_micros() as u64;
        if let Some(c) = self.clock.as_mut() {
            c.advance(ended, elapsed);
        }
        if reply.is_error() {
            st.failed += 1;
        }
        // Keys the command expired on its way are deleted before its own
        // effect. Most commands only look at their client's database: one
        // check instead of one per database on every command.
        if self.cross_db[idx] {
            self.propagate_expired();
        } else {
            self.propagate_expired_in(db);
        }
        // EXEC's own effect is the MULTI ... EXEC block run_exec logged;
        // logging the EXEC command again would leave a lone EXEC in the AOF.
        if self.dirty != dirty_before && spec.name != "exec" {
            match propagate {
                Propagate::AsIs => self.log_args(db, args),
                Propagate::As(cmds) => {
                    for c in cmds {
                        self.log(db, c);
                    }
                }
                Propagate::Never => {}
            }
        }
        reply
    }

    /// [`Executor::call`] for one command of a run sharing `clock` (the AOF
    /// replay): one clock read per command instead of three.
    pub fn call_at(
        &mut self,
        client: &mut Client,
        idx: usize,
        args: &[Bytes],
        clock: &mut BatchClock,
    ) -> Reply {
        self.clock = Some(*clock);
        let reply = self.call(client, idx, args);
        if let Some(c) = self.clock.take() {
            *clock = c;
        }
        reply
    }

    /// Hands one change to the durability sink (buffered inside EXEC so the
    /// transaction is logged whole, between MULTI and EXEC).
    pub fn log(&mut self, db: usize, args: Vec<Bytes>) {
        if self.in_exec {
            self.exec_log.push((db, args));
            return;
        }
        self.log_args(db, &args);
    }

    /// [`Executor::log`] for a command logged as it ran: the arguments are
    /// copied only when a transaction must hold them.
    fn log_args(&mut self, db: usize, args: &[Bytes]) {
        if self.in_exec {
            self.exec_log.push((db, args.to_vec()));
            return;
        }
        self.lsn += 1;
        match &self.request_frame {
            Some(f) => self.durability.append_request(self.lsn, db, args, f),
            None => self.durability.append(self.lsn, db, args),
        }
    }

    /// Runs a transaction's queue: MULTI/EXEC semantics, logged atomically.
    pub fn run_exec(&mut self, client: &mut Client, queue: Vec<Vec<Bytes>>) -> Reply {
        self.in_exec = true;
        let mut replies = Vec::with_capacity(queue.len());
        // The protocol each reply was made under: a HELLO inside the
        // transaction changes it midway, and Redis encodes every reply in
        // the protocol in force when its command finished.
        let mut protos = Vec::with_capacity(queue.len());
        for args in &queue {
            let r = match self.lookup_command(&args[0]) {
                Some(idx) => self.call(client, idx, args),
                None => unknown_command(args),
            };
            replies.push(r);
            // HELLO's own reply is already in the protocol it selects.
            protos.push(client.resp);
        }
        self.in_exec = false;
        if protos.iter().any(|&p| p != client.resp) {
            for (r, &p) in replies.iter_mut().zip(&protos) {
                if p != client.resp {
                    let mut buf = bytes::BytesMut::new();
                    crate::resp::encode(r, p, &mut buf);
                    *r = Reply::Raw(buf.freeze());
                }
            }
        }
        let logged = std::mem::take(&mut self.exec_log);
        if !logged.is_empty() {
            let db = logged[0].0;
            self.lsn += 1;
            self.durability
                .append(self.lsn, db, &[Bytes::from_static(b"MULTI")]);
            for (db, args) in logged {
                self.lsn += 1;
                self.durability.append(self.lsn, db, &args);
            }
            self.lsn += 1;
            self.durability
                .append(self.lsn, db, &[Bytes::from_static(b"EXEC")]);
        }
        Reply::Array(replies)
    }

    /// Work after each top-level command: wake blocked clients whose keys
    /// became ready.
    fn after_command(&mut self, current: &mut Client) {
        if !self.ready.is_empty() {
            self.serve_ready(current);
        }
    }

    /// Logs a DEL for every key removed by expiry since the last call.
    pub fn propagate_expired(&mut self) {
        for db in 0..self.ks.dbs.len() {
            self.propagate_expired_in(db);
        }
    }

    /// [`Executor::propagate_expired`] for one database.
    fn propagate_expired_in(&mut self, db: usize) {
        let Some(d) = self.ks.dbs.get_mut(db) else {
            return;
        };
        if !d.has_expired() {
            return;
        }
        for key in d.take_expired() {
            let key = Bytes::from(Vec::from(key));
            self.key_modified(db, &key);
            self.log(db, vec![Bytes::from_static(b"DEL"), key]);
        }
    }

    // ---- watch ------------------------------------------------------------

    /// A key changed: dirty its WATCHers and mark it ready for blocked clients.
    pub fn key_modified(&mut self, db: usize, key: &[u8]) {
        if let Some(ids) = self.watchers[db].get(key) {
            self.watch_dirty.extend(ids.iter().copied());
        }
        if self.blocked_on[db].contains_key(key)
            && !self.ready.iter().any(|(d, k)| *d == db && k == key)
        {
            self.ready.push((db, Bytes::copy_from_slice(key)));
        }
    }

    /// Wakes clients blocked on `key` without dirtying its WATCHers (Redis's
    /// signalKeyAsReady alone: XGROUP DESTROY must fail blocked readers).
    pub fn signal_key_ready(&mut self, db: usize, key: &[u8]) {
        if self.blocked_on[db].contains_key(key)
            && !self.ready.iter().any(|(d, k)| *d == db && k == key)
        {
            self.ready.push((db, Bytes::copy_from_slice(key)));
        }
    }

    /// Every watched key of `db` that exists is dirtied (FLUSHDB, SWAPDB).
    pub fn touch_all_watched(&mut self, db: usize) {
        let keys: Vec<Bytes> = self.watchers[db].keys().cloned().collect();
        for k in keys {
            if self.ks.dbs[db].peek(&k).is_some() {
                if let Some(ids) = self.watchers[db].get(&k) {
                    self.watch_dirty.extend(ids.iter().copied());
                }
            }
        }
    }

    pub fn watch(&mut self, client: &mut Client, key: Bytes) {
        let db = client.db;
        if client.watched.iter().any(|(d, k)| *d == db && *k == key) {
            return;
        }
        self.watchers[db]
            .entry(key.clone())
            .or_default()
            .push(client.id);
        client.watched.push((db, key));
    }

    pub fn unwatch_all(&mut self, client: &mut Client) {
        for (db, key) in client.watched.drain(..) {
            if let Some(ids) = self.watchers[db].get_mut(&key) {
                ids.retain(|&i| i != client.id);
                if ids.is_empty() {
                    self.watchers[db].remove(&key);
                }
            }
        }
        self.watch_dirty.remove(&client.id);
    }

    // ---- blocking ---------------------------------------------------------

    pub fn block_client(
        &mut self,
        client: &mut Client,
        keys: Vec<Bytes>,
        args: Vec<Bytes>,
        timeout_reply: Reply,
        deadline: Option<Instant>,
    ) {
        let db = client.db;
        for k in &keys {
            self.blocked_on[db]
                .entry(k.clone())
                .or_default()
                .push_back(client.id);
        }
        client.blocked = Some(BlockState {
            db,
            keys,
            args,
            timeout_reply,
            deadline,
        });
        self.blocked_clients += 1;
    }

    /// Removes a client from every wait queue; returns its block state.
    pub fn unblock(&mut self, client: &mut Client) -> Option<BlockState> {
        let st = client.blocked.take()?;
        for k in &st.keys {
            if let Some(q) = self.blocked_on[st.db].get_mut(k) {
                q.retain(|&i| i != client.id);
                if q.is_empty() {
                    self.blocked_on[st.db].remove(k);
                }
            }
        }
        self.blocked_clients -= 1;
        Some(st)
    }

    /// The client's block timed out: its timeout reply, if it was still blocked.
    pub fn unblock_on_timeout(&mut self, client: &mut Client) -> Option<Reply> {
        self.unblock(client).map(|st| st.timeout_reply)
    }

    /// Serves blocked clients on ready keys, oldest first. A served command
    /// may make more keys ready (BLMOVE), so loop until nothing is ready.
    ///
    /// Each waiter's command is re-run with [`Executor::serving`] set to the
    /// ready key. If it still cannot proceed (the key is empty, gone, or of
    /// another type) it answers `Reply::Blocked` and stays blocked in its
    /// place in every queue; the next waiter is tried, since it may wait for
    /// another type on the same key. Waiters stop being tried once the key
    /// no longer exists.
    fn serve_ready(&mut self, current: &mut Client) {
        let mut rounds = 0;
        while !self.ready.is_empty() && rounds < 10_000 {
            rounds += 1;
            let ready = std::mem::take(&mut self.ready);
            for (db, key) in ready {
                let waiters: Vec<u64> = match self.blocked_on[db].get(&key) {
                    Some(q) => q.iter().copied().collect(),
                    None => continue,
                };
                for cid in waiters {
                    // Every waiter runs again, even once the key is gone: a
                    // list pop then simply blocks again, while a stream group
                    // reader must learn that its key was deleted.
                    // The running client cannot be waiting (it is running);
                    // and it is already borrowed.
                    if cid == current.id {
                        continue;
                    }
                    let Some(rc) = self.clients.get(&cid).cloned() else {
                        continue;
                    };
                    let Ok(mut c) = rc.try_borrow_mut() else {
                        continue;
                    };
                    let Some((bdb, args)) = c.blocked.as_ref().map(|b| (b.db, b.args.clone()))
                    else {
                        continue;
                    };
                    let saved_db = c.db;
                    c.db = bdb;
                    self.serving = Some(key.clone());
                    let reply = match self.lookup_command(&args[0]) {
                        Some(idx) => self.call(&mut c, idx, &args),
                        None => unknown_command(&args),
                    };
                    self.serving = None;
                    c.db = saved_db;
                    if reply == Reply::Blocked {
                        continue;
                    }
                    self.unblock(&mut c);
                    let _ = c.tx.send(Outgoing::Reply(reply, self.lsn));
                }
            }
        }
    }

    // ---- pub/sub hooks ------------------------------------------------------

    /// Drops a closing client's subscriptions.
    fn pubsub_forget(&mut self, client: &mut Client) {
        self.pubsub.forget(client);
    }

    // ---- periodic work ----------------------------------------------------

    /// Runs `hz` times a second: active expiry, save points.
    pub fn cron(&mut self) {
        BatchClock::resync();
        let clock = (now_ms() / 1000) as u32;
        for db in self.ks.dbs.iter_mut() {
            db.lru_clock = clock;
        }
        if self.active_expire_enabled {
            self.active_expire_cycle(Duration::from_micros(1000));
        }
        self.check_save_points();
    }

    /// Removes expired keys, a few segments at a time, until a pass finds
    /// few expired keys or the time budget is spent (Redis's adaptive cycle).
    pub fn active_expire_cycle(&mut self, budget: Duration) {
        let start = Instant::now();
        let now = now_ms();
        for db in 0..self.ks.dbs.len() {
            loop {
                let (checked, removed) = self.ks.dbs[db].active_expire(now, 16);
                if checked == 0 || removed * 10 < checked || start.elapsed() > budget {
                    break;
                }
            }
        }
        self.propagate_expired();
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Redis 7.0's subcommands and their arities, for the container commands.
const SUBCOMMANDS: &[(&str, &[(&str, i32)])] = &[
    (
        "object",
        &[
            ("encoding", 3),
            ("freq", 3),
            ("help", 2),
            ("idletime", 3),
            ("refcount", 3),
        ],
    ),
    (
        "config",
        &[
            ("get", -3),
            ("set", -4),
            ("resetstat", 2),
            ("rewrite", 2),
            ("help", 2),
        ],
    ),
    (
        "client",
        &[
            ("caching", 3),
            ("getname", 2),
            ("getredir", 2),
            ("help", 2),
            ("id", 2),
            ("info", 2),
            ("kill", -3),
            ("list", -2),
            ("no-evict", 3),
            ("pause", -3),
            ("reply", 3),
            ("setname", 3),
            ("tracking", -3),
            ("trackinginfo", 2),
            ("unblock", -3),
            ("unpause", 2),
        ],
    ),
    (
        "memory",
        &[
            ("doctor", 2),
            ("help", 2),
            ("malloc-stats", 2),
            ("purge", 2),
            ("stats", 2),
            ("usage", -3),
        ],
    ),
    (
        "command",
        &[
            ("count", 2),
            ("docs", -2),
            ("getkeys", -4),
            ("getkeysandflags", -4),
            ("help", 2),
            ("info", -2),
            ("list", -2),
        ],
    ),
    (
        "function",
        &[
            ("delete", 3),
            ("dump", 2),
            ("flush", -2),
            ("help", 2),
            ("kill", 2),
            ("list", -2),
            ("load", -3),
            ("restore", -3),
            ("stats", 2),
        ],
    ),
    (
        "pubsub",
        &[
            ("channels", -2),
            ("help", 2),
            ("numpat", 2),
            ("numsub", -2),
            ("shardchannels", -2),
            ("shardnumsub", -2),
        ],
    ),
    (
        "xgroup",
        &[
            ("create", -5),
            ("createconsumer", 5),
            ("delconsumer", 5),
            ("destroy", 4),
            ("help", 2),
            ("setid", -5),
        ],
    ),
    (
        "xinfo",
        &[("consumers", 4), ("groups", 3), ("help", 2), ("stream", -3)],
    ),
];

/// A container command's subcommand arity: None when `name` has no
/// subcommands, Some(None) when `sub` is not one of them (or is missing).
pub(crate) fn subcommand_arity(name: &str, sub: Option<&Bytes>) -> Option<Option<i32>> {
    let (_, subs) = SUBCOMMANDS.iter().find(|(n, _)| *n == name)?;
    Some(sub.and_then(|sub| {
        subs.iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(sub))
            .map(|(_, a)| *a)
    }))
}

/// The error for an unknown subcommand or a subcommand's wrong arity.
pub(crate) fn check_subcommand(name: &str, args: &[Bytes]) -> Option<Reply> {
    let (_, subs) = SUBCOMMANDS.iter().find(|(n, _)| *n == name)?;
    let sub = args.get(1)?;
    let Some((sub_name, arity)) = subs
        .iter()
        .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(sub))
    else {
        let shown: String = String::from_utf8_lossy(sub).chars().take(128).collect();
        return Some(commands::unknown_subcommand(name, shown.as_bytes()));
    };
    let ok = (*arity >= 0 && args.len() == *arity as usize)
        || (*arity < 0 && args.len() >= arity.unsigned_abs() as usize);
    (!ok).then(|| {
        Reply::Error(format!(
            "ERR wrong number of arguments for '{name}|{sub_name}' command"
        ))
    })
}

/// Redis 7's unknown-command error, quoting the first arguments. Redis
/// formats them with `%.*s`, so each stops at a NUL byte and the limits
/// count bytes.
pub fn unknown_command(args: &[Bytes]) -> Reply {
    fn c_str(b: &[u8]) -> &[u8] {
        match b.iter().position(|&c| c == 0) {
            Some(p) => &b[..p],
            None => b,
        }
    }
    let name = c_str(&args[0]);
    let name = &name[..name.len().min(128)];
    let mut rest: Vec<u8> = Vec::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let a = c_str(a);
        rest.push(b'\'');
        rest.extend_from_slice(&a[..a.len().min(room)]);
        rest.extend_from_slice(b"' ");
    }
    Reply::Error(format!(
        "ERR unknown command '{}', with args beginning with: {}",
        String::from_utf8_lossy(name),
        String::from_utf8_lossy(&rest)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A misspelt name would leave that command's replies waiting.
    #[test]
    fn the_commands_that_see_no_data_exist() {
        let ex = Executor::new(Config::default());
        for name in SEES_NO_DATA {
            assert!(ex.table.contains_key(name.as_bytes()), "{name}");
        }
    }
}
