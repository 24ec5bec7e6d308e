//! The append-only file in the server: the [`Durability`] sink that feeds
//! the writer thread, start-up loading (replay through the executor with a
//! pseudo-client), the legacy upgrade, CONFIG SET appendonly/appendfsync,
//! BGREWRITEAOF, DEBUG LOADAOF and the INFO fields.
//!
//! Under appendfsync everysec and no the writer runs on the executor's
//! thread and a flusher task writes once per turn of the event loop; under
//! always it has its own thread (group commit). Rewrites, and switching AOF
//! on at runtime, write the base with the fork-free snapshot walker while
//! the server keeps serving.

use crate::client::Client;
use crate::commands::flags::*;
use crate::commands::{CommandSpec, Ctx};
use crate::config::{AppendFsync, Config};
use crate::durability::{Durability, Release, Volatile};
use crate::exec::Executor;
use crate::resp::Reply;
use bytes::Bytes;
use redoubt_persist::aof::{
    self, loader, rewrite, AofDir, Clock, FsyncMode, LoadOptions, Manifest, Msg, Policy,
    RecordEncoder, Replay, SystemClock, WriterCore, WriterHandle, WriterParts, WriterStats,
};
use redoubt_persist::snapshot::{Snapshot, SnapshotFormat, SnapshotSpec};
use redoubt_persist::storage::{FileStorage, Storage};
use std::any::Any;
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{watch, Notify};

/// Loads an RDB image into the executor's keyspace.
/// Returns the length of the image (the reader may have read ahead).
pub type RdbLoadFn = fn(&mut Executor, &mut dyn Read, &str, BaseHint) -> Result<u64, String>;

/// What the AOF loader knows about an RDB base before decoding it.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaseHint {
    /// Size of the file holding the image.
    pub file_len: Option<u64>,
    /// Keys the incr files may add after it (an estimate).
    pub extra_keys: u64,
}
/// Writes the keyspace as an RDB image.
pub type RdbWriteFn = fn(&Executor, &mut dyn Write) -> io::Result<()>;
/// Loads dump.rdb at start-up.
pub type RdbStartupFn = fn(&mut Executor) -> Result<(), String>;

/// Plug-in points for the RDB codec and the snapshot walker.
pub struct PersistHooks {
    /// Loads an RDB image (AOF base / legacy preamble) into the executor's
    /// keyspace. Must consume exactly the image. TODO(rdb): set by the RDB codec.
    pub rdb_loader: Option<RdbLoadFn>,
    /// Writes the keyspace as an RDB image (`aof-use-rdb-preamble yes`
    /// bases). TODO(rdb): until set, bases are RESP (`.base.aof`).
    pub rdb_base_writer: Option<RdbWriteFn>,
    /// Loads dump.rdb at start-up when AOF is off. TODO(rdb).
    pub rdb_startup: Option<RdbStartupFn>,
}

pub fn hooks() -> PersistHooks {
    PersistHooks {
        rdb_loader: Some(load_rdb_base),
        rdb_base_writer: Some(crate::persistence::write_rdb_base),
        rdb_startup: Some(|ex| ex.load_rdb().map(|_| ()).map_err(|e| e.to_string())),
    }
}

fn policy(f: AppendFsync) -> Policy {
    match f {
        AppendFsync::Always => Policy::Always,
        AppendFsync::EverySec => Policy::EverySec,
        AppendFsync::No => Policy::No,
    }
}

fn unix_secs() -> u64 {
    crate::util::now_ms() / 1000
}

/// Rewrite bookkeeping for INFO.
#[derive(Debug, Clone)]
pub struct RewriteStats {
    pub rewrites: u64,
    pub last_ok: bool,
    pub last_time_sec: i64,
    pub consecutive_failures: u64,
    pub base_size: u64,
    /// aof_last_cow_size: the most bytes the last successful rewrite's
    /// snapshot kept alive at once (pre-images and encoded bytes waiting
    /// for the disk), the fork-free counterpart of a child's copy-on-write.
    pub last_cow: u64,
}

impl Default for RewriteStats {
    fn default() -> Self {
        RewriteStats {
            rewrites: 0,
            last_ok: true,
            last_time_sec: -1,
            consecutive_failures: 0,
            base_size: 0,
            last_cow: 0,
        }
    }
}

/// How the AOF writer runs. The default is the server's: a thread, the
/// system clock, background everysec fsyncs, exit on a fatal write error.
/// The crash-injection suite runs it inline on a manual clock instead, so
/// every I/O operation happens at a deterministic point.
#[derive(Clone)]
pub struct WriterEnv {
    /// None: the system clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Run the writer on the executor's thread (with inline fsyncs).
    pub inline: bool,
    /// Exit the process on a fatal error under `always` (Redis does).
    pub exit_on_fatal: bool,
}

impl Default for WriterEnv {
    fn default() -> Self {
        WriterEnv {
            clock: None,
            inline: false,
            exit_on_fatal: true,
        }
    }
}

/// The durability sink. Installed for the server's whole life, so every
/// connection holds the same watermark; with AOF off it releases each batch
/// as soon as it is executed.
pub struct Aof {
    pub storage: Arc<dyn Storage>,
    pub dir: AofDir,
    pub manifest: Manifest,
    writer: Option<WriterHandle>,
    pub stats: Option<Arc<WriterStats>>,
    current_incr: Option<String>,
    encoder: RecordEncoder,
    buf: Vec<u8>,
    buf_lsn: u64,
    last_lsn: u64,
    /// The last LSN handed to a writer. Only replies covering LSNs up to
    /// this one can ever wait on the watermark (with no writer it is moved
    /// before any reply checks it).
    logged_lsn: u64,
    tx: watch::Sender<u64>,
    pub rewrite: RewriteStats,
    /// Size of the incr files before the current one (aof_current_size).
    older_incrs_size: u64,
    pub env: WriterEnv,
    /// Set when the event loop runs a flusher task (see [`spawn_flusher`]):
    /// `flush` then only wakes it, so one write covers every connection
    /// served in the same turn of the loop.
    flusher: Option<Arc<Notify>>,
    /// The flusher was woken and has not run yet: the other connections
    /// served in the same turn need not wake it again.
    flush_asked: bool,
    /// Set while the writer runs on the event loop's thread: it then moves
    /// the channel's value without waking its receivers, since the sink
    /// advances the [`Release`] itself right after each write (see
    /// [`Aof::release_published`]); only a writer on its own thread needs
    /// the relay woken. Waking it every turn would cost a task poll and a
    /// watch notification per write for nothing.
    quiet_publish: Arc<AtomicBool>,
    /// Wakes the flusher task; also rung from the fsync thread when a
    /// background fsync ends, so a write still in the writer's buffer (one
    /// that failed) is retried then (every client waits on it, so no new
    /// command would trigger it).
    kick: Arc<Notify>,
    /// Set between CONFIG SET appendonly yes and the end of its first
    /// rewrite (Redis's AOF_WAIT_REWRITE): the manifest to commit with the
    /// new base. It lists the incr the writer appends to meanwhile, a file
    /// no manifest on disk names yet.
    base_pending: Option<Manifest>,
    /// A rewrite waits for the background fsync of the current incr before
    /// it switches files (see [`defer_for_fsync`]).
    prestart: bool,
    /// The watermark on the event-loop thread, which connections wait on:
    /// moved right after a write made there, and by a relay from `tx` for
    /// a watermark published by the writer's thread.
    release: Rc<Release>,
}

impl Aof {
    pub fn new(cfg: &Config, storage: Arc<dyn Storage>) -> Aof {
        let (tx, _) = watch::channel(0);
        Aof {
            dir: AofDir::new(
                storage.clone(),
                ".",
                &cfg.appenddirname,
                &cfg.appendfilename,
            ),
            storage,
            manifest: Manifest::default(),
            writer: None,
            stats: None,
            current_incr: None,
            encoder: RecordEncoder::new(cfg.aof_timestamp_enabled),
            buf: Vec::new(),
            buf_lsn: 0,
            last_lsn: 0,
            logged_lsn: 0,
            tx,
            rewrite: RewriteStats::default(),
            older_incrs_size: 0,
            env: WriterEnv::default(),
            flusher: None,
            flush_asked: false,
            quiet_publish: Arc::new(AtomicBool::new(false)),
            kick: Arc::new(Notify::new()),
            base_pending: None,
            prestart: false,
            release: Rc::new(Release::new()),
        }
    }

    /// Brings the connections' watermark up to the published one, waking
    /// the replies it now covers. Called after every write made on this
    /// thread, so those replies leave in the same turn of the loop.
    fn release_published(&self) {
        self.release.advance(*self.tx.borrow());
    }

    /// Logs one command: its request frame as it came when the frame holds
    /// exactly these arguments (copying it saves formatting the command
    /// again, a measurable share of a pipelined SET under everysec), else
    /// the arguments formatted.
    fn log_command(&mut self, lsn: u64, db: usize, args: &[Bytes], frame: Option<&[u8]>) {
        self.last_lsn = lsn;
        if self.writer.is_none() {
            return;
        }
        // A clock read per logged command is measurable at pipelined
        // rates: only annotations need it.
        let now = if self.encoder.timestamps() {
            unix_secs()
        } else {
            0
        };
        match frame.filter(|f| crate::resp::frame_holds(f, args)) {
            // `frame_holds` is false for no arguments: `args[0]` exists.
            Some(f) => self
                .encoder
                .encode_record(&mut self.buf, db, &args[0], f, now),
            None => self.encoder.encode(&mut self.buf, db, args, now),
        }
        self.buf_lsn = lsn;
        self.logged_lsn = lsn;
    }

    pub fn enabled(&self) -> bool {
        self.writer.is_some()
    }

    /// Starts the writer on `incr` (already listed in the manifest).
    fn start_writer(
        &mut self,
        name: String,
        file: Box<dyn redoubt_persist::storage::StorageFile>,
        size: u64,
        start_lsn: u64,
        p: Policy,
    ) -> io::Result<()> {
        let tx = self.tx.clone();
        let quiet = self.quiet_publish.clone();
        let core = WriterCore::new(WriterParts {
            storage: self.storage.clone(),
            path: self.dir.path(&name),
            file,
            size,
            start_lsn,
            policy: p,
            clock: self
                .env
                .clock
                .clone()
                .unwrap_or_else(|| Arc::new(SystemClock::default())),
            publish: Box::new(move |lsn| {
                let wake = !quiet.load(Ordering::Acquire);
                tx.send_if_modified(|v| {
                    if lsn > *v {
                        *v = lsn;
                        wake
                    } else {
                        false
                    }
                });
            }),
            on_fatal: if self.env.exit_on_fatal {
                Box::new(|msg| {
                    // Redis exits rather than acknowledge a write it could not
                    // make durable under appendfsync always.
                    tracing::error!("{msg}. Exiting...");
                    std::process::exit(1);
                })
            } else {
                Box::new(|msg| tracing::error!("{msg}"))
            },
            fsync: if self.env.inline {
                FsyncMode::Inline
            } else {
                FsyncMode::Background
            },
        });
        let mut core = core;
        let kick = self.kick.clone();
        let stats = core.stats.clone();
        // Only a write left in the buffer (one that failed) needs the
        // flusher; otherwise waking the event loop from the fsync thread
        // once a second buys nothing.
        core.on_fsync_done(Arc::new(move || {
            if stats.buffer_len.load(Ordering::Acquire) > 0 {
                kick.notify_one();
            }
        }));
        let h = self.wrap(core, p)?;
        // Everything before `start_lsn` is either in the files already or
        // was never logged: replies waiting on it must not wait for the
        // next write.
        self.tx.send_if_modified(|v| {
            if start_lsn > *v {
                *v = start_lsn;
                true
            } else {
                false
            }
        });
        self.release_published();
        self.stats = Some(h.stats.clone());
        self.writer = Some(h);
        self.current_incr = Some(name);
        self.encoder.reset_db();
        self.last_lsn = start_lsn;
        self.older_incrs_size = self.incrs_size_except_current();
        Ok(())
    }

    /// Where the writer runs for policy `p`. Under everysec and no, on the
    /// executor's thread, as Redis writes its AOF buffer from the event loop
    /// before it sends replies: a write() there costs less than handing the
    /// batch to another thread and being woken by it (the fsync still runs
    /// in the background). Under always on its own thread, so that the
    /// executor keeps executing while an fsync runs and the next fsync
    /// covers everything that arrived meanwhile (group commit).
    fn runs_inline(&self, p: Policy) -> bool {
        self.env.inline || p != Policy::Always
    }

    fn wrap(&self, core: WriterCore, p: Policy) -> io::Result<WriterHandle> {
        self.quiet_publish
            .store(self.runs_inline(p), Ordering::Release);
        if self.runs_inline(p) {
            Ok(WriterHandle::inline(core))
        } else {
            WriterHandle::spawn(core)
        }
    }

    fn incrs_size_except_current(&self) -> u64 {
        self.manifest
            .incrs
            .iter()
            .filter(|ai| Some(&ai.name) != self.current_incr.as_ref())
            .map(|ai| self.storage.len(&self.dir.path(&ai.name)).unwrap_or(0))
            .sum()
    }

    /// Writes the buffer, fsyncs, stops the writer (shutdown, appendonly no).
    pub fn stop(&mut self) -> io::Result<()> {
        // The last writes wake every receiver: once the writer is gone no
        // later write will.
        self.quiet_publish.store(false, Ordering::Release);
        self.flush_now();
        self.current_incr = None;
        self.stats = None;
        match self.writer.take() {
            Some(w) => w.stop(),
            None => Ok(()),
        }
    }

    /// Forces everything handed over so far to disk (DEBUG LOADAOF).
    pub fn sync(&mut self) -> io::Result<()> {
        self.flush_now();
        match &self.writer {
            Some(w) => w.call(|reply| Msg::Sync { reply }),
            None => Ok(()),
        }
    }

    /// The writer's periodic work, for an inline writer (crash tests): a
    /// threaded writer ticks by itself.
    pub fn tick(&self) {
        if let Some(w) = &self.writer {
            w.tick();
        }
        self.release_published();
    }

    pub fn set_policy(&mut self, p: Policy) {
        self.flush_now();
        let Some(w) = self.writer.take() else { return };
        if w.is_inline() == self.runs_inline(p) {
            w.send(Msg::SetPolicy(p));
            self.writer = Some(w);
            self.release_published();
            return;
        }
        // Move the writer (and whatever it has not written yet) between the
        // executor's thread and its own.
        let moved = w.into_core().and_then(|mut core| {
            core.set_policy(p);
            self.wrap(core, p)
        });
        // The switch may have published quietly (a sync under the old
        // policy): bring the connections' watermark up to it.
        self.release_published();
        match moved {
            Ok(h) => self.writer = Some(h),
            Err(e) => {
                // Without a writer nothing can be acknowledged any more:
                // replies waiting on the watermark end their connections.
                tracing::error!("Can't restart the AOF writer after appendfsync changed: {e}");
                self.stats = None;
                self.current_incr = None;
            }
        }
    }

    /// Hands the buffered records to the writer now (inline: writes them).
    /// With AOF off, releases the replies waiting on the LSNs executed.
    pub fn flush_now(&mut self) {
        self.flush_asked = false;
        match &self.writer {
            Some(w) => {
                if !self.buf.is_empty() {
                    w.write_batch(&mut self.buf, self.buf_lsn);
                } else if w.is_inline() && w.stats.buffer_len.load(Ordering::Acquire) > 0 {
                    // A write that failed: retry it now rather than at the
                    // next cron tick.
                    w.tick();
                }
            }
            None => {
                let lsn = self.last_lsn;
                // Receivers are woken only when a reply may be waiting: one
                // from while a writer ran. Otherwise the value moves
                // silently (every connection reads it before waiting), which
                // spares waking every connection's watch on every batch.
                let wake = *self.tx.borrow() < self.logged_lsn;
                self.tx.send_if_modified(|v| {
                    if lsn > *v {
                        *v = lsn;
                        wake
                    } else {
                        false
                    }
                });
                // What the channel holds, without reading it back.
                self.release.advance(lsn);
                return;
            }
        }
        // An inline writer has published by now: its replies leave in this
        // turn of the loop, with no wake of another task in between.
        self.release_published();
    }

    pub fn set_timestamps(&mut self, on: bool) {
        self.encoder.set_timestamps(on);
    }

    /// aof_current_size, aof_base_size.
    pub fn sizes(&self) -> (u64, u64) {
        let base = self
            .manifest
            .base
            .as_ref()
            .map(|b| self.storage.len(&self.dir.path(&b.name)).unwrap_or(0))
            .unwrap_or(0);
        let cur = self
            .stats
            .as_ref()
            .map(|s| s.file_size.load(Ordering::Acquire))
            .unwrap_or(0);
        (base + self.older_incrs_size + cur, self.rewrite.base_size)
    }
}

impl Durability for Aof {
    fn append(&mut self, lsn: u64, db: usize, args: &[Bytes]) {
        self.log_command(lsn, db, args, None);
    }

    fn append_request(&mut self, lsn: u64, db: usize, args: &[Bytes], frame: &[u8]) {
        self.log_command(lsn, db, args, Some(frame));
    }

    fn flush(&mut self) {
        match &self.flusher {
            Some(n) if self.writer.is_some() => {
                if self.buf.is_empty() {
                    // Nothing to write, but a quiet publish (a sync or a
                    // switch of files, which write what the buffer held)
                    // may lie ahead of the connections' watermark: catch up
                    // before a connection waits on it.
                    if self.release.mark() < self.logged_lsn {
                        self.release_published();
                    }
                } else if !self.flush_asked {
                    self.flush_asked = true;
                    n.notify_one();
                }
            }
            _ => self.flush_now(),
        }
    }

    fn watermark(&self) -> Option<watch::Receiver<u64>> {
        Some(self.tx.subscribe())
    }

    fn release(&self) -> Option<Rc<Release>> {
        Some(self.release.clone())
    }

    fn write_error(&self) -> Option<String> {
        self.stats.as_ref().and_then(|s| s.error())
    }

    fn as_any(&self) -> Option<&dyn Any> {
        Some(self)
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn Any> {
        Some(self)
    }
}

/// The executor's Aof, if installed.
pub fn get(ex: &mut Executor) -> Option<&mut Aof> {
    ex.durability
        .as_any_mut()
        .and_then(|a| a.downcast_mut::<Aof>())
}

pub fn get_ref(ex: &Executor) -> Option<&Aof> {
    ex.durability.as_any().and_then(|a| a.downcast_ref::<Aof>())
}

// ---- replay -------------------------------------------------------------

/// Replays commands through the executor as Redis's fake AOF client does:
/// no replies, nothing logged (the sink is swapped out meanwhile).
struct ExecReplay<'a> {
    ex: &'a mut Executor,
    client: Client,
    /// The last command looked up: consecutive records mostly repeat it,
    /// and comparing the name beats hashing it.
    last: Option<(Vec<u8>, usize)>,
    /// One clock for the whole replay, advanced command by command.
    clock: crate::exec::BatchClock,
}

impl ExecReplay<'_> {
    fn lookup(&mut self, name: &[u8]) -> Option<usize> {
        if let Some((n, idx)) = &self.last {
            if n.eq_ignore_ascii_case(name) {
                return Some(*idx);
            }
        }
        let idx = self.ex.lookup_command(name)?;
        self.last = Some((name.to_vec(), idx));
        Some(idx)
    }

    fn run(&mut self, args: Vec<Vec<u8>>) -> Result<(), String> {
        let Some(idx) = self.lookup(&args[0]) else {
            return Err(format!(
                "Unknown command '{}'",
                String::from_utf8_lossy(&args[0])
            ));
        };
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        let spec = self.ex.specs[idx];
        // A plain, well-formed command runs the way Redis's loader runs it,
        // straight to the command (the client checks of a connection mean
        // nothing for the log). Anything else, transactions included, takes
        // the connection's path, which also rejects what is malformed.
        let direct = spec.arity_ok(args.len())
            && !matches!(spec.name, "multi" | "exec" | "config")
            && self.client.multi.is_none()
            && crate::exec::check_subcommand(spec.name, &args).is_none();
        if direct {
            self.ex
                .call_at(&mut self.client, idx, &args, &mut self.clock);
        } else {
            self.ex.execute(&mut self.client, &args);
        }
        Ok(())
    }
}

impl Replay for ExecReplay<'_> {
    fn command(&mut self, args: Vec<Vec<u8>>) -> Result<(), String> {
        self.run(args)
    }

    fn transaction(&mut self, cmds: Vec<Vec<Vec<u8>>>) -> Result<(), String> {
        self.run(vec![b"MULTI".to_vec()])?;
        for c in cmds {
            self.run(c)?;
        }
        self.run(vec![b"EXEC".to_vec()])
    }

    /// Pre-sizes the current database, so loading does not rehash every
    /// segment at each doubling. Into a database that was empty when the
    /// file began (a RESP base holds about one key per command) the
    /// estimate is taken whole; into one that holds keys already (incrs,
    /// which may only overwrite) it is capped at the keys there, at most
    /// what growing by doubling would reserve anyway.
    fn size_hint(&mut self, more: u64) {
        let db = &mut self.ex.ks.dbs[self.client.db];
        let len = db.len() as u64;
        let more = if len <= loader::HINT_AFTER {
            more
        } else {
            more.min(len)
        };
        db.reserve(usize::try_from(more).unwrap_or(usize::MAX));
    }
}

fn pseudo_client() -> Client {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let mut c = Client::new(u64::MAX, "aof".into(), "aof".into(), true, tx);
    c.authenticated = true;
    c
}

/// Loads the directory named by `m` into the executor. The sink is
/// detached during the replay and the LSN restored after it, so nothing
/// replayed is logged again and no reply waits on it.
pub fn load_into(
    ex: &mut Executor,
    dir: &AofDir,
    m: &Manifest,
) -> Result<loader::LoadReport, loader::LoadError> {
    let opts = LoadOptions {
        load_truncated: ex.config.aof_load_truncated,
    };
    let sink = std::mem::replace(&mut ex.durability, Box::new(Volatile));
    let lsn = ex.lsn;
    let h = hooks();
    let res = {
        // The RDB plug-in and the replay both need the executor, one after
        // the other: share it through a RefCell.
        let cell = std::cell::RefCell::new(ExecReplay {
            ex: &mut *ex,
            client: pseudo_client(),
            last: None,
            clock: crate::exec::BatchClock::now(),
        });
        let mut replay = CellReplay(&cell);
        match h.rdb_loader {
            Some(f) => {
                let extra_keys = incr_keys_estimate(dir, m);
                let mut plug = |r: &mut dyn Read, name: &str| -> Result<u64, String> {
                    let hint = BaseHint {
                        file_len: dir.storage.len(&dir.path(name)).ok(),
                        extra_keys,
                    };
                    let mut g = cell.borrow_mut();
                    f(g.ex, r, name, hint)
                };
                aof::load_dir(dir, m, opts, Some(&mut plug), &mut replay)
            }
            None => aof::load_dir(dir, m, opts, None, &mut replay),
        }
    };
    ex.durability = sink;
    ex.lsn = lsn;
    res
}

/// At most how many keys the incr files of `m` can add: one per command at
/// best, and a command takes at least [`MIN_RECORD_BYTES`].
fn incr_keys_estimate(dir: &AofDir, m: &Manifest) -> u64 {
    let bytes: u64 = m
        .incrs
        .iter()
        .map(|ai| dir.storage.len(&dir.path(&ai.name)).unwrap_or(0))
        .sum();
    bytes / MIN_RECORD_BYTES
}

/// A short SET (`*3 $3 SET $1 k $1 v`) is 27 bytes; most records are longer.
const MIN_RECORD_BYTES: u64 = 27;

/// The RDB base loader: decodes straight into the keyspace, with the
/// tables sized once from RESIZEDB plus what the incr files may add (the
/// decoder caps that at doubling), and the file's size as its bound.
pub fn load_rdb_base(
    ex: &mut Executor,
    r: &mut dyn Read,
    name: &str,
    hint: BaseHint,
) -> Result<u64, String> {
    let mut opts = redoubt_persist::rdb::LoadOptions::new(crate::util::now_ms());
    opts.limits = ex.encoding_limits();
    opts.reserve_extra = hint.extra_keys;
    let stats = redoubt_persist::rdb::load_keyspace(r, hint.file_len, &mut ex.ks, &opts)
        .map_err(|e| format!("{name}: {e}"))?;
    ex.functions.extend(stats.functions.iter().map(|code| {
        (
            crate::persistence::library_name(code),
            Bytes::copy_from_slice(code),
        )
    }));
    Ok(stats.bytes_read)
}

struct CellReplay<'a, 'b>(&'a std::cell::RefCell<ExecReplay<'b>>);

impl Replay for CellReplay<'_, '_> {
    fn command(&mut self, args: Vec<Vec<u8>>) -> Result<(), String> {
        self.0.borrow_mut().command(args)
    }

    fn transaction(&mut self, cmds: Vec<Vec<Vec<u8>>>) -> Result<(), String> {
        self.0.borrow_mut().transaction(cmds)
    }

    fn size_hint(&mut self, more: u64) {
        self.0.borrow_mut().size_hint(more)
    }
}

/// Start-up: with `appendonly yes` load (or create) the AOF directory and
/// start the writer; otherwise load dump.rdb through the RDB hook.
pub fn startup(ex: &mut Executor, storage: Arc<dyn Storage>) -> Result<(), String> {
    startup_with(ex, storage, WriterEnv::default())
}

/// [`startup`] with a writer set up as `env` says (crash tests).
pub fn startup_with(
    ex: &mut Executor,
    storage: Arc<dyn Storage>,
    env: WriterEnv,
) -> Result<(), String> {
    let mut a = Aof::new(&ex.config, storage);
    a.env = env;
    if !ex.config.appendonly {
        if let Some(f) = hooks().rdb_startup {
            f(ex)?;
        }
        ex.durability = Box::new(a);
        return Ok(());
    }
    let started = Instant::now();
    let mut m = a.dir.load_manifest().map_err(|e| e.to_string())?;
    if let Some(up) = a
        .dir
        .upgrade_legacy(m.as_ref())
        .map_err(|e| e.to_string())?
    {
        m = Some(up);
    }
    let mut m = m.unwrap_or_default();
    if m.base.is_some() || !m.incrs.is_empty() {
        let rep = load_into(ex, &a.dir, &m).map_err(|e| e.to_string())?;
        a.rewrite.base_size = rep.base_size;
        tracing::info!(
            "DB loaded from append only file: {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
    }
    if m.base.is_none() && m.incrs.is_empty() {
        let name = a.dir.base_name(m.curr_base_seq + 1, false);
        tracing::info!("Creating AOF base file {name} on server start");
        let tmp = rewrite::write_temp_base(&a.dir, &mut |w| base_writer(ex, w))
            .map_err(|e| e.to_string())?;
        rewrite::commit(&a.dir, &mut m, &tmp, false, None).map_err(|e| e.to_string())?;
        a.rewrite.base_size = a.dir.sizes(&m).1;
    }
    let (name, file, size) = match m.incrs.last() {
        Some(ai) => {
            tracing::info!("Opening AOF incr file {} on server start", ai.name);
            let p = a.dir.path(&ai.name);
            let f = a
                .storage
                .append(&p)
                .map_err(|e| format!("Can't open the append-only file {}: {e}", ai.name))?;
            (ai.name.clone(), f, a.storage.len(&p).unwrap_or(0))
        }
        None => {
            let (ai, f) = rewrite::open_next_incr(&a.dir, &mut m).map_err(|e| e.to_string())?;
            tracing::info!("Creating AOF incr file {} on server start", ai.name);
            (ai.name, f, 0)
        }
    };
    a.dir.delete_history(&mut m).map_err(|e| e.to_string())?;
    a.manifest = m;
    a.start_writer(name, file, size, ex.lsn, policy(ex.config.appendfsync))
        .map_err(|e| e.to_string())?;
    ex.durability = Box::new(a);
    Ok(())
}

/// The base writer: RDB through the hook when configured and available,
/// else RESP. Returns whether the base is RDB.
fn base_writer(ex: &Executor, w: &mut dyn Write) -> io::Result<()> {
    match (ex.config.aof_use_rdb_preamble, hooks().rdb_base_writer) {
        (true, Some(f)) => f(ex, w),
        _ => {
            let ts = ex.config.aof_timestamp_enabled.then(unix_secs);
            aof::rewrite::write_keyspace_resp(&ex.ks, w, crate::util::now_ms(), ts)
        }
    }
}

fn base_is_rdb(ex: &Executor) -> bool {
    ex.config.aof_use_rdb_preamble && hooks().rdb_base_writer.is_some()
}

/// A BGREWRITEAOF in progress. The writer already appends to the new incr
/// file (listed in `manifest`, which is on disk); the snapshot writes the
/// base, the dataset as of that switch, into `temp`. The commit then makes
/// that base and the new incr the whole log.
pub struct RewriteJob {
    pub snap: Snapshot,
    manifest: Manifest,
    current_incr: Option<String>,
    temp: std::path::PathBuf,
    rdb: bool,
    started: Instant,
}

/// What BGREWRITEAOF answers.
#[derive(Debug, PartialEq)]
pub enum RewriteStart {
    Started,
    /// A BGSAVE is running: the rewrite starts when it ends.
    Scheduled,
}

/// Starts a background rewrite: switch the writer to a fresh incr, then
/// start a fork-free snapshot of the keyspace into the new base. Works with
/// AOF off too (then only a base and a manifest are written).
pub fn start_rewrite(ex: &mut Executor) -> Result<RewriteStart, String> {
    start_rewrite_with(ex, true)
}

/// Whether a rewrite waits for a background fsync before it starts.
pub fn rewrite_starting(ex: &Executor) -> bool {
    get_ref(ex).is_some_and(|a| a.prestart)
}

/// Before a rewrite switches incr files the current one must be synced:
/// no manifest may list a newer incr after a file with an unsynced tail (a
/// power loss that tore it would leave a truncated file that is not the
/// last, which no loader accepts). Up to a second of writes under everysec
/// (and more under no) is a long fsync to make inline, with every client
/// waiting. So the first call starts it on the fsync thread and the rewrite
/// stays scheduled; the snapshot driver calls again, and once that fsync
/// has ended the switch makes the inline one, over what came meanwhile.
/// Returns the reply for a call that deferred the start.
fn defer_for_fsync(ex: &mut Executor) -> Option<RewriteStart> {
    let a = get(ex)?;
    if !a.enabled() || a.base_pending.is_some() {
        a.prestart = false;
        return None;
    }
    a.flush_now();
    let w = a.writer.as_ref()?;
    if a.prestart {
        if w.stats.fsync_pending.load(Ordering::Acquire) {
            return Some(RewriteStart::Scheduled);
        }
        a.prestart = false;
        return None;
    }
    if w.fsync_in_background_now() {
        a.prestart = true;
        return Some(RewriteStart::Started);
    }
    None
}

/// [`start_rewrite`]; `defer`: may wait for a background fsync first (see
/// [`defer_for_fsync`]), else starts on the spot.
fn start_rewrite_with(ex: &mut Executor, defer: bool) -> Result<RewriteStart, String> {
    if ex.save.aof_rewrite.is_some() {
        return Err("ERR Background append only file rewriting already in progress".into());
    }
    if ex.save.bgsave.is_some() {
        ex.save.aof_rewrite_scheduled = true;
        return Ok(RewriteStart::Scheduled);
    }
    ex.save.aof_rewrite_scheduled = false;
    if defer {
        if let Some(r) = defer_for_fsync(ex) {
            ex.save.aof_rewrite_scheduled = true;
            return Ok(r);
        }
    } else if let Some(a) = get(ex) {
        a.prestart = false;
    }
    let rdb = base_is_rdb(ex);
    let format = if rdb {
        let mut opts = ex.save_options();
        opts.aof_base = true;
        SnapshotFormat::Rdb(opts)
    } else {
        SnapshotFormat::Resp {
            now_ms: crate::util::now_ms(),
            timestamp: ex.config.aof_timestamp_enabled.then(unix_secs),
        }
    };
    let lsn = ex.lsn;
    let epoch = ex.next_snapshot_epoch();
    let fsync = policy(ex.config.appendfsync);
    let Some(a) = get(ex) else {
        return Err("no AOF sink".into());
    };
    a.flush_now();
    let on = a.enabled();
    // With AOF off the in-memory manifest may be stale: start from the one on
    // disk so the new base's sequence number never reuses a listed name.
    let mut m = if on {
        a.manifest.clone()
    } else {
        match a.dir.load_manifest() {
            Ok(Some(m)) => m,
            _ => a.manifest.clone(),
        }
    };
    let dir = a.dir.clone();
    let fail = |a: &mut Aof, e: String| {
        a.rewrite.last_ok = false;
        a.rewrite.consecutive_failures += 1;
        tracing::warn!("Background AOF rewrite failed to start: {e}");
        e
    };
    if let Err(e) = dir.ensure_dir() {
        return Err(fail(a, e.to_string()));
    }
    let mut current_incr = None;
    if let Some(pending) = a.base_pending.clone() {
        match first_base_incr(a, pending, lsn, fsync) {
            Ok((name, next)) => {
                m = next;
                current_incr = Some(name);
            }
            Err(e) => return Err(fail(a, e)),
        }
    } else if on {
        // The current incr must be durable before a manifest lists a newer
        // one after it: a power loss that tore its unsynced tail would
        // otherwise leave a truncated file that is not the last, which no
        // loader accepts (the server would not start).
        let t_sync = Instant::now();
        if let Some(w) = &a.writer {
            if let Err(e) = w.call(|reply| Msg::Sync { reply }) {
                return Err(fail(a, e.to_string()));
            }
        }
        let sync_ms = t_sync.elapsed().as_secs_f64() * 1e3;
        let t_switch = Instant::now();
        let (ai, file) = match aof::rewrite::open_next_incr(&dir, &mut m) {
            Ok(x) => x,
            Err(e) => return Err(fail(a, e.to_string())),
        };
        let path = dir.path(&ai.name);
        if let Some(w) = &a.writer {
            if let Err(e) = w.call(|reply| Msg::Rotate {
                file,
                path,
                size: 0,
                reply,
            }) {
                return Err(fail(a, e.to_string()));
            }
        }
        a.current_incr = Some(ai.name.clone());
        a.encoder.reset_db();
        a.manifest = m.clone();
        a.older_incrs_size = a.incrs_size_except_current();
        tracing::info!(
            sync_ms,
            switch_ms = t_switch.elapsed().as_secs_f64() * 1e3,
            "New incr file {} for the rewrite",
            ai.name
        );
        current_incr = Some(ai.name);
    }
    let temp = dir
        .workdir
        .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let spec = SnapshotSpec {
        storage: a.storage.clone(),
        target: temp.clone(),
        format,
        lsn,
        epoch,
        incremental_fsync: ex.config.aof_rewrite_incremental_fsync,
        event_loop: ex.event_loop.clone(),
        cpus: ex.config.aof_rewrite_cpulist.clone(),
    };
    let snap = match Snapshot::start(&mut ex.ks, spec) {
        Ok(s) => s,
        Err(e) => {
            let a = get(ex).expect("the AOF sink was found above");
            return Err(fail(a, e.to_string()));
        }
    };
    tracing::info!("Background append only file rewriting started");
    ex.save.aof_rewrite = Some(RewriteJob {
        snap,
        manifest: m,
        current_incr,
        temp,
        rdb,
        started: Instant::now(),
    });
    Ok(RewriteStart::Started)
}

/// AOF switched on at runtime, its first rewrite starting: the writer gets
/// a fresh incr that only the manifest committed with the new base will
/// list. A previous attempt's incr is dropped: the new base covers it.
/// Returns the incr's name and the manifest to commit.
fn first_base_incr(
    a: &mut Aof,
    mut next: Manifest,
    lsn: u64,
    fsync: Policy,
) -> Result<(String, Manifest), String> {
    let old = a.current_incr.clone();
    next.incrs.retain(|ai| Some(&ai.name) != old.as_ref());
    let seq = next.curr_incr_seq + 1;
    let name = a.dir.incr_name(seq);
    let path = a.dir.path(&name);
    // No directory fsync here: the commit's makes this name durable
    // together with the base's, before the manifest names either.
    let file = a.storage.create(&path).map_err(|e| e.to_string())?;
    match &a.writer {
        Some(w) => {
            let p = path.clone();
            if let Err(e) = w.call(|reply| Msg::Rotate {
                file,
                path: p,
                size: 0,
                reply,
            }) {
                let _ = a.storage.remove(&path);
                return Err(e.to_string());
            }
            a.current_incr = Some(name.clone());
            a.encoder.reset_db();
        }
        None => {
            if let Err(e) = a.start_writer(name.clone(), file, 0, lsn, fsync) {
                let _ = a.storage.remove(&path);
                return Err(e.to_string());
            }
        }
    }
    if let Some(o) = old {
        let _ = a.storage.remove(&a.dir.path(&o));
    }
    next.incrs.push(aof::AofInfo {
        name: name.clone(),
        seq,
        ty: aof::FileType::Incr,
    });
    next.curr_incr_seq = seq;
    a.base_pending = Some(next.clone());
    Ok((name, next))
}

/// Advances a running rewrite for about `budget`; commits it when its base
/// is durable. Returns true while it is still running.
pub fn rewrite_tick(ex: &mut Executor, budget: std::time::Duration) -> bool {
    let Some(mut job) = ex.save.aof_rewrite.take() else {
        return false;
    };
    let started = Instant::now();
    let mut failed = None;
    while started.elapsed() < budget {
        match job
            .snap
            .step(&mut ex.ks, redoubt_persist::snapshot::WALK_STEP)
        {
            Ok(true) => break,
            // The encoder is behind: nothing to do until it catches up.
            Ok(false) if job.snap.waiting() => break,
            Ok(false) => {}
            Err(e) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    let outcome = match failed {
        Some(e) => {
            job.snap.abort(&mut ex.ks);
            Err(e)
        }
        None => match job.snap.poll() {
            None => {
                ex.save.aof_rewrite = Some(job);
                return true;
            }
            Some(r) => r.map(|rep| rep.peak_pending).map_err(|e| e.to_string()),
        },
    };
    finish_rewrite(ex, job, outcome);
    false
}

/// Runs a started rewrite to its end on the spot (SAVE, shutdown, tests).
pub fn finish_rewrite_now(ex: &mut Executor) {
    // See `save_now`: the rewrite's threads must not wait for this thread.
    let _foreground = ex.event_loop.as_ref().map(|l| l.in_foreground());
    while rewrite_tick(ex, std::time::Duration::from_secs(3600)) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// `outcome` carries the snapshot's peak of bytes kept alive.
fn finish_rewrite(ex: &mut Executor, mut job: RewriteJob, outcome: Result<u64, String>) {
    let Some(a) = get(ex) else { return };
    let first_base = a.base_pending.is_some();
    let mut cow = 0;
    let res = outcome.and_then(|peak| {
        cow = peak;
        aof::rewrite::commit(
            &a.dir,
            &mut job.manifest,
            &job.temp,
            job.rdb,
            job.current_incr.as_deref(),
        )
        .map_err(|e| e.to_string())
    });
    a.rewrite.rewrites += 1;
    a.rewrite.last_time_sec = job.started.elapsed().as_secs() as i64;
    match res {
        Ok(()) => {
            a.manifest = job.manifest;
            a.rewrite.last_ok = true;
            a.rewrite.consecutive_failures = 0;
            a.rewrite.last_cow = cow;
            a.older_incrs_size = a.incrs_size_except_current();
            a.rewrite.base_size = a.sizes().0;
            a.base_pending = None;
            tracing::info!("Background AOF rewrite terminated with success");
        }
        Err(e) => {
            let _ = a.storage.remove(&job.temp);
            a.rewrite.last_ok = false;
            a.rewrite.consecutive_failures += 1;
            tracing::warn!("Background AOF rewrite failed: {e}");
            // AOF switched on waits for its first base: try again (as
            // Redis schedules one), a few times, then leave it to
            // BGREWRITEAOF.
            if first_base && a.rewrite.consecutive_failures < 3 {
                ex.save.aof_rewrite_scheduled = true;
            }
        }
    }
}

/// A whole rewrite, waited for (the synchronous form tests and DEBUG use).
pub fn rewrite_now(ex: &mut Executor) -> Result<(), String> {
    if ex.save.bgsave.is_some() {
        return Err("ERR Background save already in progress".into());
    }
    start_rewrite_with(ex, false)?;
    finish_rewrite_now(ex);
    match get_ref(ex) {
        Some(a) if a.rewrite.last_ok => Ok(()),
        _ => Err("AOF rewrite failed".into()),
    }
}

/// CONFIG SET appendonly yes, as Redis does it: a background rewrite
/// writes the first base while the server keeps serving. The writer starts
/// with the rewrite, on an incr no manifest names yet, and the commit of
/// the base lists it: a crash before that leaves the directory as it was.
/// Until then INFO shows aof_enabled:1 with the rewrite in progress (or
/// scheduled behind a BGSAVE, in which case the writer starts with it).
pub fn turn_on(ex: &mut Executor) -> Result<(), String> {
    // A rewrite with AOF off (only a base) would not cover the writes to
    // come: start over, as Redis kills that child.
    if let Some(mut job) = ex.save.aof_rewrite.take() {
        job.snap.abort(&mut ex.ks);
        if let Some(a) = get(ex) {
            let _ = a.storage.remove(&job.temp);
        }
    }
    let Some(a) = get(ex) else {
        return Err("no AOF sink".into());
    };
    a.dir.ensure_dir().map_err(|e| e.to_string())?;
    let m = match a.dir.load_manifest() {
        Ok(Some(m)) => m,
        _ => a.manifest.clone(),
    };
    a.manifest = m.clone();
    a.base_pending = Some(m);
    a.rewrite.consecutive_failures = 0;
    match start_rewrite(ex) {
        Ok(_) => Ok(()),
        Err(e) => {
            drop_pending(ex);
            Err(e)
        }
    }
}

/// Leaves the wait for a first base (appendonly no, failed start): the
/// rewrite and the unlisted incr go.
fn drop_pending(ex: &mut Executor) {
    let waiting = get_ref(ex).is_some_and(|a| a.base_pending.is_some());
    if !waiting {
        return;
    }
    let mut job = ex.save.aof_rewrite.take();
    if let Some(job) = &mut job {
        job.snap.abort(&mut ex.ks);
    }
    ex.save.aof_rewrite_scheduled = false;
    let Some(a) = get(ex) else { return };
    if let Some(job) = job {
        let _ = a.storage.remove(&job.temp);
    }
    let incr = a.current_incr.clone();
    if let Err(e) = a.stop() {
        tracing::warn!("error closing the AOF: {e}");
    }
    if let Some(n) = incr {
        let _ = a.storage.remove(&a.dir.path(&n));
    }
    a.base_pending = None;
}

/// Applies CONFIG SET changes that concern the AOF. Returns an error reply
/// for CONFIG SET appendonly yes that could not be honoured.
pub fn on_config_change(ex: &mut Executor, old: &Config) -> Option<Reply> {
    let new = ex.config.clone();
    if let Some(a) = get(ex) {
        if new.appendfsync != old.appendfsync {
            a.set_policy(policy(new.appendfsync));
        }
        if new.aof_timestamp_enabled != old.aof_timestamp_enabled {
            a.set_timestamps(new.aof_timestamp_enabled);
        }
    }
    if new.appendonly != old.appendonly {
        if new.appendonly {
            if let Err(e) = turn_on(ex) {
                tracing::warn!("Unable to turn on AOF: {e}");
                ex.config.appendonly = false;
                return Some(Reply::err(
                    "ERR CONFIG SET failed (possibly related to argument 'appendonly') - Unable to turn on AOF. Check server logs.",
                ));
            }
        } else if get_ref(ex).is_some_and(|a| a.base_pending.is_some()) {
            drop_pending(ex);
        } else if let Some(a) = get(ex) {
            if let Err(e) = a.stop() {
                tracing::warn!("error closing the AOF: {e}");
            }
        }
    }
    None
}

/// Shutdown: flush and fsync ("Calling fsync() on the AOF file."). A
/// rewrite still running is abandoned: the manifest on disk already names a
/// complete log (old base, old incrs, the new incr).
pub fn shutdown(ex: &mut Executor) {
    // AOF switched on and its first base still being written: no manifest
    // names the writes since, so finish it rather than lose them.
    if get_ref(ex).is_some_and(|a| a.base_pending.is_some()) && ex.save.aof_rewrite.is_some() {
        tracing::warn!("Writing initial AOF before exiting.");
        finish_rewrite_now(ex);
    }
    if let Some(mut job) = ex.save.aof_rewrite.take() {
        job.snap.abort(&mut ex.ks);
        if let Some(a) = get(ex) {
            let _ = a.storage.remove(&job.temp);
        }
    }
    if let Some(a) = get(ex) {
        if a.enabled() {
            tracing::info!("Calling fsync() on the AOF file.");
            if let Err(e) = a.stop() {
                tracing::warn!("error flushing the AOF at shutdown: {e}");
            }
        }
    }
}

/// DEBUG LOADAOF: flush the log, empty the keyspace, reload from disk.
pub fn debug_loadaof(ex: &mut Executor) -> Reply {
    let Some(a) = get(ex) else {
        return Reply::err("ERR Error trying to load the AOF files, check server logs.");
    };
    if a.enabled() {
        if let Err(e) = a.sync() {
            tracing::warn!("DEBUG LOADAOF: flush failed: {e}");
            return Reply::err("ERR Error trying to load the AOF files, check server logs.");
        }
    }
    let dir = a.dir.clone();
    let m = match dir.load_manifest() {
        Ok(m) => m.unwrap_or_default(),
        Err(e) => {
            tracing::warn!("{e}");
            return Reply::err("ERR Error trying to load the AOF files, check server logs.");
        }
    };
    ex.ks.flush_all();
    match load_into(ex, &dir, &m) {
        Ok(_) => {
            ex.dirty = 0;
            Reply::ok()
        }
        Err(e) => {
            tracing::warn!("{e}");
            Reply::err("ERR Error trying to load the AOF files, check server logs.")
        }
    }
}

/// Automatic rewrite on growth (called from the timer).
pub fn cron(ex: &mut Executor) {
    let (pct, min) = (
        ex.config.auto_aof_rewrite_percentage,
        ex.config.auto_aof_rewrite_min_size,
    );
    let busy = ex.aof_rewrite_running() || ex.save.bgsave.is_some();
    let Some(a) = get(ex) else { return };
    a.flush_now();
    // An inline writer's periodic work: retry a failed write, start the
    // once-a-second fsync. This must go on during a BGSAVE or a rewrite: a
    // failed write with every client waiting on it is retried
    // only from here, and everysec owes its fsync whatever else runs.
    a.tick();
    if busy || !a.enabled() || pct == 0 || a.rewrite.consecutive_failures >= 3 {
        return;
    }
    let (cur, base) = a.sizes();
    let base = base.max(1);
    if cur > min && cur.saturating_mul(100) / base >= 100 + pct {
        let growth = cur.saturating_mul(100) / base - 100;
        tracing::info!("Starting automatic rewriting of AOF on {growth}% growth");
        let _ = start_rewrite(ex);
    }
}

// ---- commands -----------------------------------------------------------

pub static COMMANDS: &[CommandSpec] = &[CommandSpec::new(
    "bgrewriteaof",
    1,
    ADMIN | NOSCRIPT | NO_MULTI,
    (0, 0, 0),
    "server",
    bgrewriteaof,
)];

fn bgrewriteaof(ctx: &mut Ctx, _args: &[Bytes]) -> Reply {
    // Already answered "started": the switch waits for its fsync.
    if rewrite_starting(ctx.ex) {
        return Reply::err("ERR Background append only file rewriting already in progress");
    }
    match start_rewrite(ctx.ex) {
        Ok(RewriteStart::Started) => Reply::Status("Background append only file rewriting started"),
        Ok(RewriteStart::Scheduled) => Reply::Status("Background append only file rewriting scheduled"),
        Err(e) if e.starts_with("ERR") => Reply::Error(e),
        Err(_) => Reply::err(
            "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.",
        ),
    }
}

/// Starts the task that writes the AOF buffer once per turn of the event
/// loop (Redis does it in beforeSleep). A connection that ran commands
/// wakes it and waits for the watermark; the task runs after the
/// connections already woken in the same turn, so one write() covers all
/// of them. Call inside the server's `LocalSet`; without it (tests that
/// drive an executor by hand) `flush` writes on the spot.
///
/// Also starts the relay that carries a watermark published by the
/// writer's own thread (under always, after its fsync) to the connections'
/// [`Release`]; when the sink goes away it ends their waits.
pub fn spawn_flusher(ex: &Rc<RefCell<Executor>>) {
    let (notify, mut published, release) = {
        let mut e = ex.borrow_mut();
        let Some(a) = get(&mut e) else { return };
        a.flusher = Some(a.kick.clone());
        (a.kick.clone(), a.tx.subscribe(), a.release.clone())
    };
    let relay_ex = ex.clone();
    tokio::task::spawn_local(async move {
        while published.changed().await.is_ok() {
            let lsn = *published.borrow_and_update();
            release.advance(lsn);
            relay_ex.borrow_mut().stats.net_output_bytes += release.take_sent();
        }
        release.close();
    });
    let ex = ex.clone();
    tokio::task::spawn_local(async move {
        loop {
            notify.notified().await;
            let mut e = ex.borrow_mut();
            // The write also sends the replies it covers (Release::defer).
            let sent = match get(&mut e) {
                Some(a) => {
                    a.flush_now();
                    a.release.take_sent()
                }
                None => 0,
            };
            e.stats.net_output_bytes += sent;
        }
    });
}

/// The default storage for the server.
pub fn file_storage() -> Arc<dyn Storage> {
    Arc::new(FileStorage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redoubt_persist::storage::{Fault, SimStorage};
    use std::cell::Cell;

    fn exec(cfg: &Config, s: &SimStorage) -> Executor {
        let mut ex = Executor::new(cfg.clone());
        startup(&mut ex, Arc::new(s.clone())).unwrap();
        ex
    }

    fn run(ex: &mut Executor, c: &mut Client, args: &[&str]) -> Reply {
        let a: Vec<Bytes> = args
            .iter()
            .map(|x| Bytes::copy_from_slice(x.as_bytes()))
            .collect();
        ex.execute(c, &a).0
    }

    fn cfg(fsync: AppendFsync) -> Config {
        Config {
            appendonly: true,
            appendfsync: fsync,
            ..Config::default()
        }
    }

    /// The reply contract under everysec, through the event loop's own
    /// pieces (flusher task, [`Release`]): a reply waiting on a write is
    /// released only once the file holds that write, and waiting replies
    /// are released in LSN order, whatever order they started waiting in.
    #[test]
    fn under_everysec_replies_wait_for_their_write_and_leave_in_lsn_order() {
        let s = SimStorage::new();
        let ex = Rc::new(RefCell::new(exec(&cfg(AppendFsync::EverySec), &s)));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            spawn_flusher(&ex);
            let release = ex.borrow().durability.release().unwrap();
            let path = {
                let mut e = ex.borrow_mut();
                let a = get(&mut e).unwrap();
                a.dir.path(a.current_incr.as_ref().unwrap())
            };
            let file_len = {
                let s = s.clone();
                move || s.len(&path).unwrap()
            };
            let before = file_len();
            let mut cl = pseudo_client();
            let (lsn1, lsn2) = {
                let mut e = ex.borrow_mut();
                run(&mut e, &mut cl, &["SET", "k1", "v"]);
                let lsn1 = e.lsn;
                run(&mut e, &mut cl, &["SET", "k2", "v"]);
                (lsn1, e.lsn)
            };
            assert!(lsn2 > lsn1 && lsn1 > release.mark());
            // Two replies start waiting, the later LSN first; each notes the
            // file's length when it is released.
            let log: Rc<RefCell<Vec<(&str, u64)>>> = Default::default();
            let mut tasks = Vec::new();
            for (name, lsn) in [("second", lsn2), ("first", lsn1)] {
                let (release, log, file_len) = (release.clone(), log.clone(), file_len.clone());
                tasks.push(tokio::task::spawn_local(async move {
                    release.wait(lsn).await.unwrap();
                    log.borrow_mut().push((name, file_len()));
                }));
            }
            for _ in 0..100 {
                if release.waiting() == 2 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(release.waiting(), 2);
            // End of the batch: the records go to the flusher, which has not
            // run yet, so nothing is written and nobody is released.
            ex.borrow_mut().durability.flush();
            assert_eq!(file_len(), before);
            assert!(!release.covers(lsn1));
            assert!(log.borrow().is_empty());
            for t in tasks {
                t.await.unwrap();
            }
            let after = file_len();
            assert!(after > before);
            assert_eq!(*log.borrow(), [("first", after), ("second", after)]);
            assert_eq!(release.waiting(), 0);

            // A reply left with the release (a connection's outbox) is
            // sent by the flusher right after the write covering it, and
            // not before.
            let lsn3 = {
                let mut e = ex.borrow_mut();
                run(&mut e, &mut cl, &["SET", "k3", "v"]);
                e.lsn
            };
            let sent = Rc::new(Sent {
                file_len: Box::new(file_len.clone()),
                at: Cell::new(None),
            });
            release.defer(lsn3, sent.clone());
            ex.borrow_mut().durability.flush();
            assert_eq!(sent.at.get(), None);
            assert_eq!(file_len(), after);
            for _ in 0..100 {
                if sent.at.get().is_some() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let written = file_len();
            assert!(written > after);
            assert_eq!(sent.at.get(), Some(written));
            // The flusher counted what the send wrote for INFO.
            assert_eq!(release.take_sent(), 0);
        });
    }

    /// The connections served in one turn wake the flusher once; its run
    /// writes all their records, and the next turn wakes it again.
    #[test]
    fn one_turn_wakes_the_flusher_once_and_the_next_turn_again() {
        let s = SimStorage::new();
        let mut ex = exec(&cfg(AppendFsync::EverySec), &s);
        let notify = Arc::new(Notify::new());
        get(&mut ex).unwrap().flusher = Some(notify.clone());
        let permit = |n: &Notify| {
            use std::future::Future;
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            std::pin::pin!(n.notified()).poll(&mut cx).is_ready()
        };
        let mut cl = pseudo_client();
        let asked = |ex: &mut Executor| get(ex).unwrap().flush_asked;
        // Nothing logged: nothing to wake for.
        ex.durability.flush();
        assert!(!asked(&mut ex) && !permit(&notify));
        for round in 0..2 {
            for k in ["a", "b", "c"] {
                run(&mut ex, &mut cl, &["SET", k, "v"]);
                ex.durability.flush();
            }
            assert!(asked(&mut ex), "round {round}");
            assert!(permit(&notify), "round {round}");
            let lsn = ex.lsn;
            let release = ex.durability.release().unwrap();
            assert!(!release.covers(lsn));
            // The flusher's run.
            get(&mut ex).unwrap().flush_now();
            assert!(release.covers(lsn) && !asked(&mut ex), "round {round}");
        }
    }

    /// A deferred reply that notes the AOF file's length when it is sent.
    struct Sent {
        file_len: Box<dyn Fn() -> u64>,
        at: Cell<Option<u64>>,
    }

    impl crate::durability::Deferred for Sent {
        fn send(&self) -> u64 {
            self.at.set(Some((self.file_len)()));
            5
        }
    }

    #[test]
    fn log_survives_restart_and_crash_under_always() {
        let s = SimStorage::new();
        let c = cfg(AppendFsync::Always);
        let mut ex = exec(&c, &s);
        let mut cl = pseudo_client();
        run(&mut ex, &mut cl, &["SET", "a", "1"]);
        run(&mut ex, &mut cl, &["SELECT", "2"]);
        run(&mut ex, &mut cl, &["SET", "b", "2"]);
        run(&mut ex, &mut cl, &["MULTI"]);
        run(&mut ex, &mut cl, &["INCR", "n"]);
        run(&mut ex, &mut cl, &["EXEC"]);
        get(&mut ex).unwrap().sync().unwrap();
        // Power loss after an acknowledged (synced) write: all of it is back.
        s.crash(7);
        let mut ex2 = Executor::new(c.clone());
        startup(&mut ex2, Arc::new(s.clone())).unwrap();
        assert!(ex2.ks.dbs[0].peek(b"a").is_some());
        assert!(ex2.ks.dbs[2].peek(b"b").is_some());
        assert!(ex2.ks.dbs[2].peek(b"n").is_some());
        let (cur, _) = get_ref(&ex2).unwrap().sizes();
        assert!(cur > 0);
    }

    #[test]
    fn bgrewriteaof_syncs_the_old_incr_in_the_background_before_it_switches() {
        for seed in 0..8 {
            let s = SimStorage::new();
            let c = cfg(AppendFsync::EverySec);
            let mut ex = exec(&c, &s);
            let mut cl = pseudo_client();
            // Bigger than one sector, so a power loss can tear the tail.
            let v = "x".repeat(700);
            // The first write starts everysec's fsync at once; the next
            // ones come within its second, so they stay unsynced.
            run(&mut ex, &mut cl, &["SET", "first", "1"]);
            get(&mut ex).unwrap().flush_now();
            let stats = get_ref(&ex).unwrap().stats.clone().unwrap();
            while stats.fsync_pending.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            for i in 0..20 {
                run(&mut ex, &mut cl, &["SET", &format!("k{i}"), &v]);
            }
            get(&mut ex).unwrap().flush_now();
            let r = run(&mut ex, &mut cl, &["BGREWRITEAOF"]);
            assert_eq!(
                r,
                Reply::Status("Background append only file rewriting started")
            );
            // Answered, but the files switch only once the fsync is over.
            assert!(ex.save.aof_rewrite.is_none());
            assert!(ex.save.aof_rewrite_scheduled);
            assert_eq!(get_ref(&ex).unwrap().manifest.incrs.len(), 1);
            let again = run(&mut ex, &mut cl, &["BGREWRITEAOF"]);
            assert!(
                matches!(&again, Reply::Error(e) if e.contains("already in progress")),
                "{again:?}"
            );
            // To clients it is in progress, as Redis's is from its fork on.
            let info = run(&mut ex, &mut cl, &["INFO", "persistence"]);
            let info = format!("{info:?}");
            assert!(info.contains("aof_rewrite_in_progress:1"), "{info}");
            assert!(info.contains("aof_rewrite_scheduled:0"), "{info}");
            let bgsave = run(&mut ex, &mut cl, &["BGSAVE"]);
            assert!(
                matches!(&bgsave, Reply::Error(e) if e.contains("AOF log rewriting in progress")),
                "{bgsave:?}"
            );
            let t = Instant::now();
            while ex.save.aof_rewrite.is_none() {
                assert!(t.elapsed() < std::time::Duration::from_secs(10));
                ex.snapshot_tick(std::time::Duration::from_millis(1));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(!rewrite_starting(&ex));
            assert_eq!(get_ref(&ex).unwrap().manifest.incrs.len(), 2);
            // Power loss with the rewrite running: the manifest on disk may
            // list the new incr, so the old one must be whole.
            s.crash(seed);
            let mut ex2 = Executor::new(c.clone());
            startup(&mut ex2, Arc::new(s.clone())).unwrap();
            assert_eq!(ex2.ks.dbs[0].len(), 21, "seed {seed}");
        }
    }

    #[test]
    fn a_power_loss_at_any_step_of_the_switch_leaves_a_directory_that_loads() {
        let v = "x".repeat(700);
        for step in 0..16 {
            for seed in 0..4 {
                let s = SimStorage::new();
                let c = cfg(AppendFsync::EverySec);
                let mut ex = exec(&c, &s);
                let mut cl = pseudo_client();
                run(&mut ex, &mut cl, &["SET", "first", "1"]);
                get(&mut ex).unwrap().flush_now();
                let stats = get_ref(&ex).unwrap().stats.clone().unwrap();
                let settle = |stats: &WriterStats| {
                    while stats.fsync_pending.load(Ordering::Acquire) {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                };
                settle(&stats);
                for i in 0..10 {
                    run(&mut ex, &mut cl, &["SET", &format!("k{i}"), &v]);
                }
                get(&mut ex).unwrap().flush_now();
                assert_eq!(start_rewrite(&mut ex), Ok(RewriteStart::Started));
                settle(&stats);
                // Written after the background fsync: only the inline one
                // of the switch covers these before the manifest moves on.
                for i in 0..10 {
                    run(&mut ex, &mut cl, &["SET", &format!("late{i}"), &v]);
                }
                get(&mut ex).unwrap().flush_now();
                s.fail_from(step, Fault::Io);
                let _ = start_rewrite(&mut ex);
                s.crash(seed);
                let mut ex2 = Executor::new(c.clone());
                startup(&mut ex2, Arc::new(s.clone()))
                    .unwrap_or_else(|e| panic!("step {step} seed {seed}: {e}"));
                // Synced before the rewrite was answered.
                for i in 0..10 {
                    assert!(
                        ex2.ks.dbs[0].peek(format!("k{i}").as_bytes()).is_some(),
                        "step {step} seed {seed}: k{i}"
                    );
                }
            }
        }
    }

    #[test]
    fn rewrite_then_reload() {
        let s = SimStorage::new();
        let c = cfg(AppendFsync::EverySec);
        let mut ex = exec(&c, &s);
        let mut cl = pseudo_client();
        for i in 0..20 {
            run(&mut ex, &mut cl, &["SET", &format!("k{i}"), "v"]);
        }
        rewrite_now(&mut ex).unwrap();
        run(&mut ex, &mut cl, &["SET", "after", "1"]);
        let m = get(&mut ex).unwrap().manifest.to_bytes();
        // aof-use-rdb-preamble yes (the default): the new base is an RDB.
        assert_eq!(m, b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n".to_vec());
        get(&mut ex).unwrap().sync().unwrap();
        let r = debug_loadaof(&mut ex);
        assert_eq!(r, Reply::ok());
        assert_eq!(ex.ks.dbs[0].len(), 21);
    }

    #[test]
    fn rewrite_reports_the_bytes_its_snapshot_kept_alive() {
        let s = SimStorage::new();
        let c = cfg(AppendFsync::EverySec);
        let mut ex = exec(&c, &s);
        let mut cl = pseudo_client();
        for i in 0..200 {
            run(
                &mut ex,
                &mut cl,
                &["SET", &format!("k{i}"), &"v".repeat(100)],
            );
        }
        assert_eq!(get_ref(&ex).unwrap().rewrite.last_cow, 0);
        rewrite_now(&mut ex).unwrap();
        let cow = get_ref(&ex).unwrap().rewrite.last_cow;
        // The encoded base passes through the snapshot's buffers on its way
        // to the disk: at least one record was held.
        assert!(cow > 0, "aof_last_cow_size stayed 0");
        let mut info = String::new();
        crate::persistence_info::render(&ex, &mut info).unwrap();
        assert!(
            info.contains(&format!("aof_last_cow_size:{cow}\r\n")),
            "{info}"
        );
    }

    #[test]
    fn write_error_under_everysec_refuses_writes_then_recovers() {
        let s = SimStorage::new();
        let c = cfg(AppendFsync::EverySec);
        let mut ex = exec(&c, &s);
        let mut cl = pseudo_client();
        s.inject(0, Fault::NoSpace);
        // Under everysec the writer runs on the executor's thread: the
        // failed write() happens in this flush, before any reply would go.
        run(&mut ex, &mut cl, &["SET", "a", "1"]);
        ex.durability.flush();
        let wm = ex.durability.watermark().unwrap();
        assert!(
            *wm.borrow() < ex.lsn,
            "a write that failed was acknowledged"
        );
        let r = run(&mut ex, &mut cl, &["SET", "b", "2"]);
        assert_eq!(
            r,
            Reply::err("MISCONF Errors writing to the AOF file: No space left on device")
        );
        // Reads still answer.
        assert!(!run(&mut ex, &mut cl, &["GET", "a"]).is_error());
        // The cron's tick retries the buffered write; the fault was one-shot.
        get(&mut ex).unwrap().tick();
        assert_eq!(ex.durability.write_error(), None);
        assert_eq!(*wm.borrow(), ex.lsn);
        assert!(!run(&mut ex, &mut cl, &["SET", "c", "3"]).is_error());
        get(&mut ex).unwrap().sync().unwrap();
        let mut ex2 = Executor::new(c);
        startup(&mut ex2, Arc::new(s.clone())).unwrap();
        assert!(ex2.ks.dbs[0].peek(b"a").is_some());
        assert!(ex2.ks.dbs[0].peek(b"b").is_none());
        assert!(ex2.ks.dbs[0].peek(b"c").is_some());
    }

    /// The cron retries a failed write while a rewrite runs:
    /// with every client waiting for its reply, nothing else would, and the
    /// server would stall until the rewrite ended.
    #[test]
    fn cron_retries_a_failed_write_while_a_rewrite_runs() {
        let s = SimStorage::new();
        let c = cfg(AppendFsync::EverySec);
        let mut ex = exec(&c, &s);
        let mut cl = pseudo_client();
        for i in 0..50 {
            run(&mut ex, &mut cl, &["SET", &format!("k{i}"), "v"]);
        }
        ex.durability.flush();
        // Started on the spot: whether BGREWRITEAOF first waits for a
        // background fsync depends on the timing of everysec's fsync, and
        // this test needs the rewrite running.
        assert_eq!(
            start_rewrite_with(&mut ex, false),
            Ok(RewriteStart::Started)
        );
        // The rewrite's walker is not driven here, so its threads have
        // nothing to write: the next disk operation is the AOF's.
        std::thread::sleep(std::time::Duration::from_millis(50));
        s.inject(0, Fault::NoSpace);
        run(&mut ex, &mut cl, &["SET", "a", "1"]);
        ex.durability.flush();
        let wm = ex.durability.watermark().unwrap();
        assert!(
            *wm.borrow() < ex.lsn,
            "a write that failed was acknowledged"
        );
        assert!(ex.save.aof_rewrite.is_some());
        cron(&mut ex);
        assert_eq!(
            *wm.borrow(),
            ex.lsn,
            "the cron left the failed write for after the rewrite"
        );
    }

    /// A writer on the event loop's thread (everysec, no) moves the
    /// connections' watermark itself and leaves the channel's receivers
    /// asleep: no relay wake per write. A writer on its own thread
    /// (always) wakes them, since the relay carries its watermark over.
    #[test]
    fn only_a_writer_on_its_own_thread_wakes_the_watermark_channel() {
        let s = SimStorage::new();
        let mut ex = exec(&cfg(AppendFsync::EverySec), &s);
        let mut cl = pseudo_client();
        let mut wm = ex.durability.watermark().unwrap();
        let release = ex.durability.release().unwrap();
        let mut write = |ex: &mut Executor, key: &str| {
            run(ex, &mut cl, &["SET", key, "v"]);
            get(ex).unwrap().flush_now();
            ex.lsn
        };
        for (round, p) in [Policy::EverySec, Policy::Always, Policy::No]
            .into_iter()
            .enumerate()
        {
            get(&mut ex).unwrap().set_policy(p);
            wm.borrow_and_update();
            let lsn = write(&mut ex, &format!("k{round}"));
            if p == Policy::Always {
                // Published by the writer's thread after its fsync.
                for _ in 0..1000 {
                    if wm.has_changed().unwrap() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                assert!(wm.has_changed().unwrap());
                assert!(*wm.borrow() >= lsn);
            } else {
                assert!(release.covers(lsn), "{p:?}");
                assert_eq!(*wm.borrow(), lsn, "{p:?}");
                assert!(!wm.has_changed().unwrap(), "{p:?}");
            }
        }
    }

    #[test]
    fn appendfsync_switch_moves_the_writer_and_keeps_its_buffer() {
        let s = SimStorage::new();
        let c = cfg(AppendFsync::EverySec);
        let mut ex = exec(&c, &s);
        let mut cl = pseudo_client();
        run(&mut ex, &mut cl, &["SET", "a", "1"]);
        // Not flushed yet: the switch must carry it over.
        get(&mut ex).unwrap().set_policy(Policy::Always);
        assert!(!get(&mut ex).unwrap().writer.as_ref().unwrap().is_inline());
        run(&mut ex, &mut cl, &["SET", "b", "2"]);
        get(&mut ex).unwrap().set_policy(Policy::No);
        assert!(get(&mut ex).unwrap().writer.as_ref().unwrap().is_inline());
        run(&mut ex, &mut cl, &["SET", "c", "3"]);
        get(&mut ex).unwrap().sync().unwrap();
        s.crash(3);
        let mut ex2 = Executor::new(c);
        startup(&mut ex2, Arc::new(s.clone())).unwrap();
        for k in [b"a", b"b", b"c"] {
            assert!(ex2.ks.dbs[0].peek(k).is_some());
        }
    }

    #[test]
    fn appendonly_yes_at_runtime_writes_the_base_in_the_background() {
        let s = SimStorage::new();
        let off = Config::default();
        let mut ex = exec(&off, &s);
        let mut cl = pseudo_client();
        for i in 0..2000 {
            run(&mut ex, &mut cl, &["SET", &format!("k{i}"), "v"]);
        }
        run(&mut ex, &mut cl, &["CONFIG", "SET", "appendonly", "yes"]);
        assert!(ex.config.appendonly);
        assert!(
            ex.save.aof_rewrite.is_some(),
            "the base is written in the background"
        );
        // Nothing names the new incr on disk yet.
        let disk = get(&mut ex).unwrap().dir.load_manifest().unwrap();
        assert!(disk.is_none_or(|m| m.base.is_none()));
        // Writes meanwhile go to the incr the commit will list.
        run(&mut ex, &mut cl, &["SET", "during", "1"]);
        run(&mut ex, &mut cl, &["INCR", "k0n"]);
        ex.durability.flush();
        finish_rewrite_now(&mut ex);
        assert!(get_ref(&ex).unwrap().base_pending.is_none());
        run(&mut ex, &mut cl, &["INCR", "k0n"]);
        get(&mut ex).unwrap().sync().unwrap();
        let m = get(&mut ex).unwrap().dir.load_manifest().unwrap().unwrap();
        assert_eq!(
            m.to_bytes(),
            b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n".to_vec()
        );
        let mut ex2 = Executor::new(cfg(AppendFsync::EverySec));
        startup(&mut ex2, Arc::new(s.clone())).unwrap();
        assert_eq!(ex2.ks.dbs[0].len(), 2002);
        let mut cl2 = pseudo_client();
        assert_eq!(
            run(&mut ex2, &mut cl2, &["GET", "k0n"]),
            Reply::Bulk(Bytes::from_static(b"2"))
        );
    }

    #[test]
    fn with_no_writer_the_watermark_wakes_receivers_only_for_logged_lsns() {
        let s = SimStorage::new();
        let mut ex = exec(&Config::default(), &s);
        let mut cl = pseudo_client();
        let mut wm = ex.durability.watermark().unwrap();
        run(&mut ex, &mut cl, &["SET", "a", "1"]);
        ex.durability.flush();
        // Nobody can be waiting: the value moves without a wake-up.
        assert!(*wm.borrow() >= ex.lsn);
        assert!(!wm.has_changed().unwrap());
        // A write logged while a writer runs, not yet covered, then AOF off:
        // a reply may wait on it, so the receivers are woken.
        run(&mut ex, &mut cl, &["CONFIG", "SET", "appendonly", "yes"]);
        finish_rewrite_now(&mut ex);
        wm.borrow_and_update();
        run(&mut ex, &mut cl, &["SET", "b", "2"]);
        let lsn = ex.lsn;
        get(&mut ex).unwrap().stop().unwrap();
        ex.durability.flush();
        assert!(*wm.borrow() >= lsn);
        assert!(wm.has_changed().unwrap(), "a waiting reply must be woken");
    }

    #[test]
    fn appendonly_no_while_the_first_base_is_written_leaves_the_dir_alone() {
        let s = SimStorage::new();
        let mut ex = exec(&Config::default(), &s);
        let mut cl = pseudo_client();
        for i in 0..500 {
            run(&mut ex, &mut cl, &["SET", &format!("k{i}"), "v"]);
        }
        run(&mut ex, &mut cl, &["CONFIG", "SET", "appendonly", "yes"]);
        run(&mut ex, &mut cl, &["SET", "during", "1"]);
        run(&mut ex, &mut cl, &["CONFIG", "SET", "appendonly", "no"]);
        assert!(ex.save.aof_rewrite.is_none());
        assert!(!get_ref(&ex).unwrap().enabled());
        let d = get(&mut ex).unwrap().dir.clone();
        assert!(d.load_manifest().unwrap().is_none());
        assert!(!s.exists(&d.path("appendonly.aof.1.incr.aof")));
        // And on again works from scratch.
        run(&mut ex, &mut cl, &["CONFIG", "SET", "appendonly", "yes"]);
        finish_rewrite_now(&mut ex);
        get(&mut ex).unwrap().sync().unwrap();
        assert!(d.load_manifest().unwrap().unwrap().base.is_some());
    }
}

#[cfg(test)]
mod off_tests {
    use super::*;
    use redoubt_persist::storage::SimStorage;

    #[test]
    fn bgrewriteaof_with_aof_off_never_reuses_a_listed_name() {
        let s = SimStorage::new();
        let on = Config {
            appendonly: true,
            ..Config::default()
        };
        let mut ex = Executor::new(on.clone());
        startup(&mut ex, Arc::new(s.clone())).unwrap();
        shutdown(&mut ex);
        let mut off = Executor::new(Config::default());
        startup(&mut off, Arc::new(s.clone())).unwrap();
        rewrite_now(&mut off).unwrap();
        let m = AofDir::new(Arc::new(s.clone()), ".", "appendonlydir", "appendonly.aof")
            .load_manifest()
            .unwrap()
            .unwrap();
        assert_eq!(
            m.to_bytes(),
            b"file appendonly.aof.2.base.rdb seq 2 type b\n".to_vec()
        );
    }
}

#[cfg(test)]
mod frame_log_tests {
    use super::*;
    use crate::resp::RequestParser;
    use proptest::prelude::*;
    use redoubt_persist::aof::record::encode_command;
    use redoubt_persist::storage::SimStorage;
    use std::io::Read;

    fn incr_bytes(ex: &mut Executor, s: &SimStorage) -> Vec<u8> {
        let a = get(ex).unwrap();
        a.sync().unwrap();
        let path = a.dir.path(a.current_incr.as_ref().unwrap());
        let mut out = Vec::new();
        s.open(&path).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    fn new_exec(s: &SimStorage) -> Executor {
        let cfg = Config {
            appendonly: true,
            appendfsync: AppendFsync::No,
            ..Config::default()
        };
        let mut ex = Executor::new(cfg);
        startup(&mut ex, Arc::new(s.clone())).unwrap();
        ex
    }

    fn word() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..12),
            proptest::collection::vec(b'a'..=b'c', 1..3),
            proptest::collection::vec(any::<u8>(), 98..104),
        ]
    }

    /// Commands whose log record does not depend on the clock: logged as
    /// sent (any case of the name) or rewritten (INCRBYFLOAT, SET with
    /// GET), transactions, db changes, reads that log nothing.
    fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let name = |n: &'static str| {
            prop_oneof![Just(n.to_uppercase()), Just(n.to_lowercase())].prop_map(String::into_bytes)
        };
        let key = proptest::collection::vec(b'a'..=b'd', 1..3);
        prop_oneof![
            (name("set"), key.clone(), word()).prop_map(|(n, k, v)| vec![n, k, v]),
            (name("set"), key.clone(), word()).prop_map(|(n, k, v)| vec![n, k, v, b"GET".to_vec()]),
            (name("incrbyfloat"), key.clone()).prop_map(|(n, k)| vec![n, k, b"1.5".to_vec()]),
            (name("del"), key.clone(), key.clone()).prop_map(|(n, a, b)| vec![n, a, b]),
            (name("append"), key.clone(), word()).prop_map(|(n, k, v)| vec![n, k, v]),
            (name("hset"), key.clone(), word(), word()).prop_map(|(n, k, f, v)| vec![n, k, f, v]),
            (name("rpush"), key.clone(), word(), word()).prop_map(|(n, k, a, b)| vec![n, k, a, b]),
            (name("pexpireat"), key.clone()).prop_map(|(n, k)| vec![
                n,
                k,
                b"99999999999999".to_vec()
            ]),
            (name("get"), key).prop_map(|(n, k)| vec![n, k]),
            (0..3u8).prop_map(|d| vec![b"SELECT".to_vec(), vec![b'0' + d]]),
            Just(vec![b"MULTI".to_vec()]),
            Just(vec![b"exec".to_vec()]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Logging a request frame as it came writes the same bytes as
        /// formatting the command, whatever the commands (rewritten ones and
        /// transactions included) and whether or not each came in canonical
        /// form.
        #[test]
        fn request_frames_log_the_bytes_formatting_would(
            cmds in proptest::collection::vec((command(), any::<bool>()), 1..40),
        ) {
            let (s1, s2) = (SimStorage::new(), SimStorage::new());
            let (mut framed, mut formatted) = (new_exec(&s1), new_exec(&s2));
            let (mut c1, mut c2) = (pseudo_client(), pseudo_client());
            let mut input = bytes::BytesMut::new();
            for (c, canonical) in &cmds {
                let mut one = Vec::new();
                encode_command(&mut one, c);
                if !canonical {
                    // A bare \n after the count: parsed the same, no frame.
                    let at = one.iter().position(|&b| b == b'\r').unwrap();
                    one.remove(at);
                }
                input.extend_from_slice(&one);
            }
            let mut parser = RequestParser::new(1 << 20);
            let mut frames = 0;
            for (c, canonical) in &cmds {
                let args = parser.parse(&mut input).unwrap().unwrap();
                framed.request_frame = parser.take_frame();
                prop_assert_eq!(framed.request_frame.is_some(), *canonical);
                frames += usize::from(*canonical);
                let r1 = framed.execute(&mut c1, &args).0;
                framed.request_frame = None;
                let args: Vec<Bytes> = c.iter().map(|a| Bytes::copy_from_slice(a)).collect();
                let r2 = formatted.execute(&mut c2, &args).0;
                prop_assert_eq!(r1, r2);
            }
            prop_assert_eq!(frames, cmds.iter().filter(|(_, c)| *c).count());
            let (a, b) = (incr_bytes(&mut framed, &s1), incr_bytes(&mut formatted, &s2));
            prop_assert_eq!(a, b);
        }
    }
}
