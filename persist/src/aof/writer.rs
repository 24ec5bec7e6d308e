//! The AOF writer thread.
//!
//! The executor hands it batches of encoded records tagged with the LSN of
//! their last record. The writer `write()`s everything it has received as
//! one batch (group commit: a batch drains every message already queued),
//! then, per policy:
//!
//! * `always`: fsync, then publish the synced LSN as the watermark. One
//!   fsync covers every record received so far, however many clients sent
//!   them.
//! * `everysec`: publish the written LSN; an fsync runs in the background
//!   at most once a second. Writes go on while it runs: replies wait for
//!   the write, so holding a write back behind an ordinary fsync would stall
//!   every client for the fsync's duration, while write() itself does not
//!   wait for an fsync of the same file. Only once an fsync has run for
//!   longer than the everysec period (the disk is behind) are writes held
//!   back, as Redis holds them, for up to 2 seconds; after that they proceed
//!   and `aof_delayed_fsync` is counted. Holding back keeps the data
//!   acknowledged but not yet synced near the 2 seconds everysec promises.
//! * `no`: publish the written LSN, never fsync (except on rotate/stop).
//!
//! Errors follow Redis: under `always` a failed write or fsync is fatal (the
//! watermark never covers the failed records; the `on_fatal` hook decides,
//! the server exits). Under everysec/no the data stays buffered, the status
//! becomes `err` (the server answers writes with -MISCONF), and the write is
//! retried every tick until it succeeds.
//!
//! Time comes from a [`Clock`], so tests drive it; [`WriterCore`] is the
//! thread's logic without the thread, for deterministic tests.

use crate::storage::{Storage, StorageFile};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Always,
    EverySec,
    No,
}

/// Milliseconds on some monotonic scale.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock(std::time::Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(std::time::Instant::now())
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
}

/// A clock moved by hand (tests).
#[derive(Default)]
pub struct ManualClock(pub AtomicU64);

impl ManualClock {
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Counters shared with the server (INFO, MISCONF).
#[derive(Debug, Default)]
pub struct WriterStats {
    pub written_lsn: AtomicU64,
    pub synced_lsn: AtomicU64,
    pub delayed_fsync: AtomicU64,
    /// Bytes in the current incr file.
    pub file_size: AtomicU64,
    /// Bytes received but not yet written.
    pub buffer_len: AtomicU64,
    pub fsync_pending: AtomicBool,
    write_err: AtomicBool,
    fsync_err: AtomicBool,
    last_error: Mutex<Option<String>>,
    pub fatal: AtomicBool,
}

impl WriterStats {
    /// None when writes are fine; else the error text for -MISCONF.
    /// Inlined into the server: it runs before every write command, and the
    /// usual answer (no error) is two loads.
    #[inline]
    pub fn error(&self) -> Option<String> {
        if self.write_err.load(Ordering::Acquire) || self.fsync_err.load(Ordering::Acquire) {
            Some(self.error_text())
        } else {
            None
        }
    }

    #[cold]
    fn error_text(&self) -> String {
        self.last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
            .unwrap_or_else(|| "I/O error".into())
    }

    fn set_error(&self, e: &io::Error) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = Some(strerror(e));
        }
    }
}

/// The C library's wording for an errno ("No space left on device").
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

pub enum Msg {
    Batch {
        data: Vec<u8>,
        lsn: u64,
    },
    SetPolicy(Policy),
    /// Write everything, fsync the current file, switch to `file`.
    Rotate {
        file: Box<dyn StorageFile>,
        path: PathBuf,
        size: u64,
        reply: Sender<io::Result<()>>,
    },
    /// Write everything and fsync.
    Sync {
        reply: Sender<io::Result<()>>,
    },
    /// Like Sync, then the thread ends.
    Stop {
        reply: Sender<io::Result<()>>,
    },
    /// The thread ends and hands its state back, buffer included (the
    /// server moves the writer between its own thread and the executor's
    /// when appendfsync changes).
    Detach {
        reply: Sender<WriterCore>,
    },
}

type SyncHandle = Arc<Mutex<Box<dyn StorageFile>>>;

/// How everysec fsyncs run.
pub enum FsyncMode {
    /// On a background thread, like Redis's bio thread.
    Background,
    /// Inside `tick` (deterministic tests).
    Inline,
    /// Started, then completed by the test with `complete_fsync` (to model a
    /// stuck disk).
    Manual,
}

enum Fsyncer {
    Background { tx: Sender<(SyncHandle, u64)> },
    Inline,
    Manual { job: Option<u64> },
}

pub struct WriterCore {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    file: Box<dyn StorageFile>,
    /// Second handle on the same file, fsynced off the writer's path.
    sync_handle: Option<SyncHandle>,
    size: u64,
    policy: Policy,
    pending: Vec<u8>,
    pending_lsn: u64,
    written_lsn: u64,
    published: u64,
    last_fsync_ms: Option<u64>,
    /// While a background fsync runs long: when the last write counted
    /// in `aof_delayed_fsync` went out (or the fsync started).
    delayed_since: Option<u64>,
    clock: Arc<dyn Clock>,
    pub stats: Arc<WriterStats>,
    publish: Box<dyn Fn(u64) + Send>,
    on_fatal: Box<dyn Fn(&str) + Send>,
    fsyncer: Fsyncer,
    /// Last LSN a (background) fsync was started for.
    fsync_target: u64,
    /// Run when a background fsync ends, shared with the fsync thread.
    fsync_done: Arc<Mutex<Option<FsyncDone>>>,
}

pub struct WriterParts {
    pub storage: Arc<dyn Storage>,
    pub path: PathBuf,
    pub file: Box<dyn StorageFile>,
    /// Current length of the file (where a failed write is cut back to).
    pub size: u64,
    /// LSN already durable in the file (records before it are on disk).
    pub start_lsn: u64,
    pub policy: Policy,
    pub clock: Arc<dyn Clock>,
    pub publish: Box<dyn Fn(u64) + Send>,
    pub on_fatal: Box<dyn Fn(&str) + Send>,
    pub fsync: FsyncMode,
}

impl WriterCore {
    pub fn new(p: WriterParts) -> WriterCore {
        let stats = Arc::new(WriterStats::default());
        let fsync_done: Arc<Mutex<Option<FsyncDone>>> = Arc::default();
        stats.written_lsn.store(p.start_lsn, Ordering::Release);
        stats.synced_lsn.store(p.start_lsn, Ordering::Release);
        stats.file_size.store(p.size, Ordering::Release);
        let fsyncer = match p.fsync {
            FsyncMode::Inline => Fsyncer::Inline,
            FsyncMode::Manual => Fsyncer::Manual { job: None },
            FsyncMode::Background => {
                let (tx, rx) = mpsc::channel::<(SyncHandle, u64)>();
                let st = stats.clone();
                let done = fsync_done.clone();
                let spawned =
                    std::thread::Builder::new()
                        .name("aof-fsync".into())
                        .spawn(move || {
                            for (h, lsn) in rx {
                                let t = std::time::Instant::now();
                                let r = h
                                    .lock()
                                    .map_err(|_| io::Error::other("poisoned"))
                                    .and_then(|mut f| f.sync());
                                tracing::debug!(
                                    fsync_ms = t.elapsed().as_secs_f64() * 1e3,
                                    "background AOF fsync"
                                );
                                finish_fsync(&st, lsn, r);
                                let hook = done.lock().ok().and_then(|g| g.clone());
                                if let Some(f) = hook {
                                    f();
                                }
                            }
                        });
                match spawned {
                    Ok(_) => Fsyncer::Background { tx },
                    Err(e) => {
                        tracing::warn!("can't start the AOF fsync thread ({e}); fsyncing inline");
                        Fsyncer::Inline
                    }
                }
            }
        };
        let mut w = WriterCore {
            sync_handle: None,
            storage: p.storage,
            path: p.path,
            file: p.file,
            size: p.size,
            policy: p.policy,
            pending: Vec::new(),
            pending_lsn: p.start_lsn,
            written_lsn: p.start_lsn,
            published: p.start_lsn,
            last_fsync_ms: None,
            delayed_since: None,
            clock: p.clock,
            stats,
            publish: p.publish,
            on_fatal: p.on_fatal,
            fsyncer,
            fsync_target: p.start_lsn,
            fsync_done,
        };
        w.open_sync_handle();
        w
    }

    fn open_sync_handle(&mut self) {
        self.sync_handle = match self.fsyncer {
            Fsyncer::Background { .. } => match self.storage.append(&self.path) {
                Ok(h) => Some(Arc::new(Mutex::new(h))),
                Err(e) => {
                    tracing::warn!("can't open a second handle on {}: {e}", self.path.display());
                    None
                }
            },
            _ => None,
        };
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Sets what runs (on the fsync thread) when a background fsync ends:
    /// a write still pending (one that failed) is retried then, instead of
    /// at the next periodic tick, with every waiting client stalled until
    /// it happens.
    pub fn on_fsync_done(&mut self, f: FsyncDone) {
        if let Ok(mut g) = self.fsync_done.lock() {
            *g = Some(f);
        }
    }

    pub fn written_lsn(&self) -> u64 {
        self.written_lsn
    }

    fn publish_lsn(&mut self, lsn: u64) {
        if lsn > self.published {
            self.published = lsn;
            (self.publish)(lsn);
        }
    }

    fn fatal(&mut self, what: &str, e: &io::Error) {
        self.stats.set_error(e);
        self.stats.write_err.store(true, Ordering::Release);
        self.stats.fatal.store(true, Ordering::Release);
        let msg = format!(
            "{what} on the AOF file {} (appendfsync always): {}",
            self.path.display(),
            strerror(e)
        );
        tracing::error!("{msg}");
        (self.on_fatal)(&msg);
    }

    /// Adds a batch to the buffer (written on the next `flush`).
    pub fn push(&mut self, data: &[u8], lsn: u64) {
        self.pending.extend_from_slice(data);
        self.pending_lsn = self.pending_lsn.max(lsn);
        self.stats
            .buffer_len
            .store(self.pending.len() as u64, Ordering::Release);
    }

    /// [`WriterCore::push`] that takes the caller's buffer instead of
    /// copying it when nothing is pending (the usual case), and leaves
    /// `data` empty with the old buffer's capacity for the next batch.
    pub fn push_swap(&mut self, data: &mut Vec<u8>, lsn: u64) {
        if self.pending.is_empty() {
            std::mem::swap(&mut self.pending, data);
            self.pending_lsn = self.pending_lsn.max(lsn);
            self.stats
                .buffer_len
                .store(self.pending.len() as u64, Ordering::Release);
        } else {
            self.push(data, lsn);
        }
        data.clear();
    }

    pub fn set_policy(&mut self, p: Policy) {
        let was = self.policy;
        self.policy = p;
        if p == Policy::Always && was != Policy::Always {
            // From now on the watermark means "synced": make it true for
            // everything written so far.
            let _ = self.sync_now();
        }
    }

    /// Counts a write made behind a long background fsync in
    /// `aof_delayed_fsync`: one per [`DELAYED_FSYNC_MS`] the fsync runs,
    /// as Redis counts one per write it stops postponing after that long.
    fn note_write_behind_fsync(&mut self) {
        if !self.fsync_busy() {
            self.delayed_since = None;
            return;
        }
        let now = self.clock.now_ms();
        let since = *self
            .delayed_since
            .get_or_insert(self.last_fsync_ms.unwrap_or(now));
        if now.saturating_sub(since) >= DELAYED_FSYNC_MS {
            self.stats.delayed_fsync.fetch_add(1, Ordering::AcqRel);
            self.delayed_since = Some(now);
            tracing::warn!("Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF buffer without waiting for fsync to complete, this may slow down Redis.");
        }
    }

    fn fsync_busy(&self) -> bool {
        match &self.fsyncer {
            Fsyncer::Manual { job } => job.is_some(),
            Fsyncer::Background { .. } => self.stats.fsync_pending.load(Ordering::Acquire),
            Fsyncer::Inline => false,
        }
    }

    /// Writes the buffer. `force`: a write the caller makes whatever runs
    /// (rotate, stop), never counted as delayed. Returns false if the
    /// write failed.
    pub fn flush(&mut self, force: bool) -> bool {
        if self.stats.fatal.load(Ordering::Acquire) {
            return false;
        }
        if !self.pending.is_empty() {
            // Redis postpones an everysec write while a background fsync
            // runs (for up to 2 s), because write() can wait for an
            // fdatasync of the same file. Here replies wait for the write,
            // so a postponed write stalls every writing client for as long;
            // and on ext4 a write() made during an fdatasync waits tens of
            // ms at worst, never for the whole fsync (measured with
            // bench/fsync_write_latency.py). So the write always goes out.
            if self.policy == Policy::EverySec && !force {
                self.note_write_behind_fsync();
            }
            let t = std::time::Instant::now();
            if !self.write_pending() {
                return false;
            }
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if ms >= 5.0 {
                tracing::debug!(write_ms = ms, "slow AOF write()");
            }
        }
        match self.policy {
            Policy::Always => {
                // PLANTED BUG (EarlyWatermark): acknowledge before the fsync.
                if crate::planted::on(crate::planted::Bug::EarlyWatermark) {
                    self.publish_lsn(self.written_lsn);
                }
                if self.stats.synced_lsn.load(Ordering::Acquire) < self.written_lsn {
                    if let Err(e) = self.file.sync() {
                        self.fatal("Can't persist AOF for fsync error", &e);
                        return false;
                    }
                    self.stats
                        .synced_lsn
                        .store(self.written_lsn, Ordering::Release);
                    self.last_fsync_ms = Some(self.clock.now_ms());
                }
                self.publish_lsn(self.written_lsn);
            }
            Policy::EverySec => {
                self.publish_lsn(self.written_lsn);
                self.maybe_background_fsync();
            }
            Policy::No => self.publish_lsn(self.written_lsn),
        }
        true
    }

    /// One write() loop over the buffer, with Redis's short-write handling.
    fn write_pending(&mut self) -> bool {
        let mut done = 0usize;
        let mut failure = None;
        while done < self.pending.len() {
            match self.file.write(&self.pending[done..]) {
                Ok(0) => {
                    failure = Some(io::Error::from_raw_os_error(28));
                    break;
                }
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            if self.policy == Policy::Always {
                self.fatal("Can't recover from AOF write error", &e);
                return false;
            }
            if done > 0 {
                // Cut the partial record off so no half command stays; if
                // that fails, the part written is dropped from the buffer
                // (never written twice) and the loader's torn-tail rule
                // covers the rest.
                if let Err(te) = self.storage.truncate(&self.path, self.size) {
                    tracing::warn!("Could not remove short write from the append-only file. Redis may refuse to load the AOF the next time it starts. ftruncate: {te}");
                    self.size += done as u64;
                    self.pending.drain(..done);
                }
            }
            if !self.stats.write_err.swap(true, Ordering::AcqRel) {
                tracing::warn!("Error writing to the AOF file: {}", strerror(&e));
            }
            self.stats.set_error(&e);
            self.stats
                .buffer_len
                .store(self.pending.len() as u64, Ordering::Release);
            return false;
        }
        self.size += done as u64;
        self.pending.clear();
        self.written_lsn = self.pending_lsn;
        self.stats
            .written_lsn
            .store(self.written_lsn, Ordering::Release);
        self.stats.file_size.store(self.size, Ordering::Release);
        self.stats.buffer_len.store(0, Ordering::Release);
        if self.stats.write_err.swap(false, Ordering::AcqRel) {
            tracing::warn!("AOF write error looks solved, Redis can write again.");
        }
        true
    }

    /// Starts a background fsync of everything written so far now, without
    /// waiting for the everysec interval. True when one is running on the
    /// fsync thread (started here or before); false when there is nothing
    /// to sync or no fsync thread (inline and manual writers sync inline).
    /// A switch to a new incr file calls it first, so that the fsync the
    /// switch must make inline only covers what was written meanwhile.
    pub fn fsync_in_background_now(&mut self) -> bool {
        let Fsyncer::Background { tx } = &self.fsyncer else {
            return false;
        };
        let Some(h) = &self.sync_handle else {
            return false;
        };
        if self.stats.fsync_pending.load(Ordering::Acquire) {
            return true;
        }
        if self.written_lsn <= self.stats.synced_lsn.load(Ordering::Acquire) {
            return false;
        }
        let lsn = self.written_lsn;
        self.stats.fsync_pending.store(true, Ordering::Release);
        if tx.send((h.clone(), lsn)).is_err() {
            self.stats.fsync_pending.store(false, Ordering::Release);
            return false;
        }
        self.last_fsync_ms = Some(self.clock.now_ms());
        self.fsync_target = lsn;
        true
    }

    fn maybe_background_fsync(&mut self) {
        if self.written_lsn <= self.fsync_target || self.fsync_busy() {
            return;
        }
        let now = self.clock.now_ms();
        if self
            .last_fsync_ms
            .is_some_and(|t| now.saturating_sub(t) < 1000)
        {
            return;
        }
        self.last_fsync_ms = Some(now);
        self.fsync_target = self.written_lsn;
        let lsn = self.written_lsn;
        match &mut self.fsyncer {
            Fsyncer::Inline => {
                let r = self.file.sync();
                finish_fsync(&self.stats, lsn, r);
            }
            Fsyncer::Manual { job } => {
                *job = Some(lsn);
                self.stats.fsync_pending.store(true, Ordering::Release);
            }
            Fsyncer::Background { tx } => match &self.sync_handle {
                Some(h) => {
                    self.stats.fsync_pending.store(true, Ordering::Release);
                    if tx.send((h.clone(), lsn)).is_err() {
                        self.stats.fsync_pending.store(false, Ordering::Release);
                    }
                }
                None => {
                    let r = self.file.sync();
                    finish_fsync(&self.stats, lsn, r);
                }
            },
        }
    }

    /// Completes a `FsyncMode::Manual` fsync (tests).
    pub fn complete_fsync(&mut self) {
        if let Fsyncer::Manual { job } = &mut self.fsyncer {
            if let Some(lsn) = job.take() {
                let r = self.file.sync();
                finish_fsync(&self.stats, lsn, r);
            }
        }
    }

    /// Periodic work: retry a failed write; start the everysec
    /// fsync when a second has passed.
    pub fn tick(&mut self) {
        self.flush(false);
        if self.policy == Policy::EverySec {
            self.maybe_background_fsync();
        }
    }

    /// Forced write plus fsync (rotate, stop, DEBUG LOADAOF, shutdown).
    pub fn sync_now(&mut self) -> io::Result<()> {
        if !self.flush(true) && !self.pending.is_empty() {
            return Err(io::Error::other(
                self.stats
                    .error()
                    .unwrap_or_else(|| "AOF write failed".into()),
            ));
        }
        self.wait_background_fsync();
        self.file.sync()?;
        self.stats
            .synced_lsn
            .store(self.written_lsn, Ordering::Release);
        self.stats.fsync_err.store(false, Ordering::Release);
        Ok(())
    }

    fn wait_background_fsync(&self) {
        if matches!(self.fsyncer, Fsyncer::Background { .. }) {
            for _ in 0..10_000 {
                if !self.stats.fsync_pending.load(Ordering::Acquire) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// Switches to a new file after making the old one durable.
    pub fn rotate(
        &mut self,
        file: Box<dyn StorageFile>,
        path: PathBuf,
        size: u64,
    ) -> io::Result<()> {
        self.sync_now()?;
        self.file = file;
        self.path = path;
        self.size = size;
        self.stats.file_size.store(size, Ordering::Release);
        self.open_sync_handle();
        Ok(())
    }

    /// Handles one message; false when the thread should end.
    pub fn handle(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Batch { data, lsn } => self.push(&data, lsn),
            Msg::SetPolicy(p) => self.set_policy(p),
            Msg::Rotate {
                file,
                path,
                size,
                reply,
            } => {
                let r = self.rotate(file, path, size);
                let _ = reply.send(r);
            }
            Msg::Sync { reply } => {
                let _ = reply.send(self.sync_now());
            }
            Msg::Stop { reply } => {
                let _ = reply.send(self.sync_now());
                return false;
            }
            // Only the thread can give itself away (see `run`); handled
            // inline there is nothing to hand over.
            Msg::Detach { .. } => {}
        }
        true
    }
}

fn finish_fsync(st: &WriterStats, lsn: u64, r: io::Result<()>) {
    match r {
        Ok(()) => {
            st.synced_lsn.fetch_max(lsn, Ordering::AcqRel);
            st.fsync_err.store(false, Ordering::Release);
        }
        Err(e) => {
            tracing::warn!("Fail to fsync the AOF file: {}", strerror(&e));
            st.set_error(&e);
            st.fsync_err.store(true, Ordering::Release);
        }
    }
    st.fsync_pending.store(false, Ordering::Release);
}

/// The running writer thread, or (for deterministic simulation) the same
/// logic run inline on the caller's thread.
pub struct WriterHandle {
    tx: Option<Sender<Msg>>,
    /// `inline`: every message is handled on the spot, then the buffer is
    /// written as the thread would after a group (crash tests).
    inline: Option<Mutex<WriterCore>>,
    pub stats: Arc<WriterStats>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How often the thread wakes without messages (retries, everysec fsync).
const TICK: Duration = Duration::from_millis(100);

/// How long a background fsync runs before a write made behind it counts
/// in `aof_delayed_fsync` (Redis's postponement limit).
pub const DELAYED_FSYNC_MS: u64 = 2000;

/// Called on the fsync thread when a background fsync ends.
pub type FsyncDone = Arc<dyn Fn() + Send + Sync>;

impl WriterHandle {
    pub fn spawn(core: WriterCore) -> io::Result<WriterHandle> {
        let (tx, rx) = mpsc::channel();
        let stats = core.stats.clone();
        let thread = std::thread::Builder::new()
            .name("aof-writer".into())
            .spawn(move || run(core, rx))?;
        Ok(WriterHandle {
            tx: Some(tx),
            inline: None,
            stats,
            thread: Some(thread),
        })
    }

    /// No thread: each message is handled by the caller (deterministic
    /// simulation). Use with `FsyncMode::Inline` and drive time with
    /// [`WriterHandle::tick`].
    pub fn inline(core: WriterCore) -> WriterHandle {
        WriterHandle {
            tx: None,
            stats: core.stats.clone(),
            inline: Some(Mutex::new(core)),
            thread: None,
        }
    }

    pub fn send(&self, msg: Msg) -> bool {
        if let Some(core) = &self.inline {
            let mut core = core.lock().unwrap_or_else(|p| p.into_inner());
            if core.handle(msg) {
                core.flush(false);
                if core.policy() == Policy::EverySec {
                    core.maybe_background_fsync();
                }
            }
            return true;
        }
        self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok())
    }

    /// Hands a batch over and clears `data`, keeping its capacity when the
    /// writer is inline (the executor reuses the buffer for the next batch).
    /// Inline, the batch is written before this returns.
    pub fn write_batch(&self, data: &mut Vec<u8>, lsn: u64) -> bool {
        if let Some(core) = &self.inline {
            let mut core = core.lock().unwrap_or_else(|p| p.into_inner());
            core.push_swap(data, lsn);
            core.flush(false);
            if core.policy() == Policy::EverySec {
                core.maybe_background_fsync();
            }
            return true;
        }
        let data = std::mem::take(data);
        self.send(Msg::Batch { data, lsn })
    }

    /// [`WriterCore::fsync_in_background_now`] for a writer on the
    /// caller's thread; false for a writer thread (under always, where
    /// everything written is synced already).
    pub fn fsync_in_background_now(&self) -> bool {
        match &self.inline {
            Some(core) => core
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .fsync_in_background_now(),
            None => false,
        }
    }

    /// Whether the writer runs on the caller's thread.
    pub fn is_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// Ends the handle and returns the writer's state (unwritten buffer
    /// included), to be run in another handle.
    pub fn into_core(mut self) -> io::Result<WriterCore> {
        if let Some(core) = self.inline.take() {
            return Ok(core.into_inner().unwrap_or_else(|p| p.into_inner()));
        }
        let (rtx, rrx) = mpsc::channel();
        if !self.send(Msg::Detach { reply: rtx }) {
            return Err(io::Error::other("the AOF writer thread is gone"));
        }
        let core = rrx
            .recv()
            .map_err(|_| io::Error::other("the AOF writer thread is gone"))?;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(core)
    }

    /// The periodic work the thread does when idle (inline mode only; the
    /// thread ticks by itself).
    pub fn tick(&self) {
        if let Some(core) = &self.inline {
            core.lock().unwrap_or_else(|p| p.into_inner()).tick();
        }
    }

    /// Sends a message carrying a reply channel and waits for the answer.
    pub fn call(&self, mk: impl FnOnce(Sender<io::Result<()>>) -> Msg) -> io::Result<()> {
        let (rtx, rrx) = mpsc::channel();
        if !self.send(mk(rtx)) {
            return Err(io::Error::other("the AOF writer thread is gone"));
        }
        rrx.recv()
            .unwrap_or_else(|_| Err(io::Error::other("the AOF writer thread is gone")))
    }

    /// Flushes, fsyncs and joins the thread.
    pub fn stop(mut self) -> io::Result<()> {
        let r = self.call(|reply| Msg::Stop { reply });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        r
    }
}

fn run(mut core: WriterCore, rx: Receiver<Msg>) {
    loop {
        let first = match rx.recv_timeout(TICK) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                let _ = core.sync_now();
                return;
            }
        };
        match first {
            None => core.tick(),
            Some(m) => {
                // Group commit: take every batch already queued, then write
                // and fsync once for all of them.
                let mut next = Some(m);
                while let Some(m) = next.take() {
                    if let Msg::Detach { reply } = m {
                        let _ = reply.send(core);
                        return;
                    }
                    let is_batch = matches!(m, Msg::Batch { .. });
                    if !core.handle(m) {
                        return;
                    }
                    if !is_batch {
                        break;
                    }
                    next = rx.try_recv().ok();
                }
                core.flush(false);
                if core.policy() == Policy::EverySec {
                    core.maybe_background_fsync();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aof::reader::{AofReader, Unit};
    use crate::aof::record::RecordEncoder;
    use crate::storage::{Fault, SimStorage};
    use std::path::Path;

    fn core(
        s: &SimStorage,
        policy: Policy,
        clock: Arc<ManualClock>,
        mode: FsyncMode,
    ) -> (WriterCore, Arc<AtomicU64>) {
        let wm = Arc::new(AtomicU64::new(0));
        let w2 = wm.clone();
        let path = PathBuf::from("./a.aof");
        let file = s.create(&path).unwrap();
        s.fsync_dir(Path::new(".")).unwrap();
        let c = WriterCore::new(WriterParts {
            storage: Arc::new(s.clone()),
            path,
            file,
            size: 0,
            start_lsn: 0,
            policy,
            clock,
            publish: Box::new(move |l| w2.store(l, Ordering::SeqCst)),
            on_fatal: Box::new(|_| {}),
            fsync: mode,
        });
        (c, wm)
    }

    fn rec(i: u64) -> Vec<u8> {
        let mut out = Vec::new();
        RecordEncoder::new(false).encode(
            &mut out,
            0,
            &[b"SET".to_vec(), format!("k{i}").into_bytes(), b"v".to_vec()],
            0,
        );
        // Drop the SELECT so that records are uniform.
        out.split_off(23)
    }

    fn recovered(s: &SimStorage) -> Vec<u64> {
        let data = s.read_all(Path::new("./a.aof")).unwrap_or_default();
        let mut r = AofReader::new(&data[..], "a.aof", 0);
        let mut out = Vec::new();
        while let Ok(Some((Unit::Command(a), _, _))) = r.next_unit() {
            out.push(String::from_utf8_lossy(&a[1][1..]).parse().unwrap());
        }
        out
    }

    #[test]
    fn always_acknowledged_records_survive_any_crash() {
        for seed in 0..60u64 {
            let s = SimStorage::new();
            let clock = Arc::new(ManualClock::default());
            let (mut w, wm) = core(&s, Policy::Always, clock, FsyncMode::Inline);
            let crash_at = 1 + seed % 17;
            let mut acked = 0;
            for i in 1..=20u64 {
                w.push(&rec(i), i);
                if i % 3 == 0 || i == crash_at {
                    w.flush(false);
                    acked = wm.load(Ordering::SeqCst);
                }
                if i == crash_at {
                    // Written but not flushed records may be torn.
                    w.push(&rec(i + 1), i + 1);
                    let _ = w.write_pending();
                    break;
                }
            }
            s.crash(seed);
            let got = recovered(&s);
            assert!(
                got.len() as u64 >= acked,
                "seed {seed}: acked {acked}, got {got:?}"
            );
            assert_eq!(
                got,
                (1..=got.len() as u64).collect::<Vec<_>>(),
                "not a prefix"
            );
        }
    }

    #[test]
    fn everysec_loses_at_most_two_seconds() {
        for seed in 0..40u64 {
            let s = SimStorage::new();
            let clock = Arc::new(ManualClock::default());
            let (mut w, wm) = core(&s, Policy::EverySec, clock.clone(), FsyncMode::Inline);
            // One record every 100 ms of simulated time, ticking as the thread does.
            let mut acked_at = Vec::new();
            let n = 30 + seed % 40;
            for i in 1..=n {
                w.push(&rec(i), i);
                w.flush(false);
                w.tick();
                acked_at.push((wm.load(Ordering::SeqCst), clock.now_ms()));
                clock.advance(100);
            }
            let now = clock.now_ms();
            s.crash(seed);
            let got = recovered(&s);
            assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
            for (lsn, t) in acked_at {
                if now - t > 2000 {
                    assert!(
                        got.len() as u64 >= lsn,
                        "seed {seed}: lost lsn {lsn} acked {} ms before the crash",
                        now - t
                    );
                }
            }
        }
    }

    #[test]
    fn everysec_writes_behind_a_stuck_fsync_and_counts_delay() {
        let s = SimStorage::new();
        let clock = Arc::new(ManualClock::default());
        let (mut w, wm) = core(&s, Policy::EverySec, clock.clone(), FsyncMode::Manual);
        w.push(&rec(1), 1);
        assert!(w.flush(false));
        w.tick(); // starts the (stuck) fsync
        assert!(w.fsync_busy());
        // Replies wait for the write, and write() does not wait for the
        // fsync: nothing is held back, however long the fsync runs.
        let mut lsn = 1;
        let mut write = |w: &mut WriterCore, advance: u64| {
            clock.advance(advance);
            lsn += 1;
            w.push(&rec(lsn), lsn);
            assert!(w.flush(false));
            assert_eq!(wm.load(Ordering::SeqCst), lsn);
            w.stats.delayed_fsync.load(Ordering::SeqCst)
        };
        assert_eq!(write(&mut w, 0), 0);
        assert_eq!(write(&mut w, 1999), 0);
        // From 2 s into the fsync, one delayed write per 2 s (Redis counts
        // one per 2 s postponement).
        assert_eq!(write(&mut w, 1), 1);
        assert_eq!(write(&mut w, 1999), 1);
        assert_eq!(write(&mut w, 1), 2);
        w.complete_fsync();
        assert_eq!(w.stats.synced_lsn.load(Ordering::SeqCst), 1);
        assert_eq!(write(&mut w, 5000), 2);
        // A forced write (rotate, stop) is not counted.
        w.tick(); // the next fsync, stuck again
        clock.advance(3000);
        w.push(&rec(100), 100);
        assert!(w.flush(true));
        assert_eq!(w.stats.delayed_fsync.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_held_back_write_is_retried_when_the_fsync_ends() {
        let s = SimStorage::new();
        let clock = Arc::new(ManualClock::default());
        let (mut w, _wm) = core(&s, Policy::EverySec, clock, FsyncMode::Background);
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        w.on_fsync_done(Arc::new(move || {
            let _ = tx.lock().map(|t| t.send(()));
        }));
        w.push(&rec(1), 1);
        assert!(w.flush(false));
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the end of the background fsync was not signalled");
        assert_eq!(w.stats.synced_lsn.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn everysec_write_error_keeps_data_and_recovers() {
        let s = SimStorage::new();
        let clock = Arc::new(ManualClock::default());
        let (mut w, wm) = core(&s, Policy::EverySec, clock, FsyncMode::Inline);
        w.push(&rec(1), 1);
        s.inject(0, Fault::NoSpace);
        assert!(!w.flush(false));
        assert_eq!(w.stats.error().as_deref(), Some("No space left on device"));
        assert_eq!(wm.load(Ordering::SeqCst), 0);
        w.tick();
        assert_eq!(w.stats.error(), None);
        assert_eq!(wm.load(Ordering::SeqCst), 1);
        // A short write is cut back and rewritten whole.
        w.push(&rec(2), 2);
        s.inject(0, Fault::ShortWrite);
        s.inject(1, Fault::Io);
        assert!(!w.flush(false));
        w.tick();
        assert_eq!(recovered(&s), vec![1, 2]);
    }

    #[test]
    fn always_write_error_is_fatal_and_never_acknowledged() {
        let s = SimStorage::new();
        let clock = Arc::new(ManualClock::default());
        let (mut w, wm) = core(&s, Policy::Always, clock, FsyncMode::Inline);
        w.push(&rec(1), 1);
        s.inject(1, Fault::Io); // the fsync after the write
        assert!(!w.flush(false));
        assert!(w.stats.fatal.load(Ordering::SeqCst));
        assert_eq!(wm.load(Ordering::SeqCst), 0);
        w.push(&rec(2), 2);
        assert!(!w.flush(false));
        assert_eq!(wm.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn thread_group_commit() {
        let s = SimStorage::new();
        let wm = Arc::new(AtomicU64::new(0));
        let w2 = wm.clone();
        let path = PathBuf::from("./a.aof");
        let file = s.create(&path).unwrap();
        let c = WriterCore::new(WriterParts {
            storage: Arc::new(s.clone()),
            path,
            file,
            size: 0,
            start_lsn: 0,
            policy: Policy::Always,
            clock: Arc::new(SystemClock::default()),
            publish: Box::new(move |l| w2.store(l, Ordering::SeqCst)),
            on_fatal: Box::new(|_| {}),
            fsync: FsyncMode::Background,
        });
        let h = WriterHandle::spawn(c).unwrap();
        for i in 1..=100 {
            h.send(Msg::Batch {
                data: rec(i),
                lsn: i,
            });
        }
        h.call(|reply| Msg::Sync { reply }).unwrap();
        assert_eq!(wm.load(Ordering::SeqCst), 100);
        let syncs = s
            .op_log()
            .iter()
            .filter(|(_, op, _)| *op == crate::storage::Op::Sync)
            .count();
        assert!(syncs < 100, "{syncs} fsyncs for 100 records");
        h.stop().unwrap();
        assert_eq!(recovered(&s).len(), 100);
    }
}
