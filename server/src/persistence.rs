//! RDB persistence on the executor side: loading at start-up, SAVE, BGSAVE
//! (the fork-free snapshot of `redoubt_persist::snapshot`), save points,
//! the shutdown save and the MISCONF write refusal.

use crate::exec::Executor;
use crate::resp::Reply;
use crate::util::now_ms;
use redoubt_persist::rdb::{load_keyspace, EncodingLimits, LoadOptions, SaveOptions};
use redoubt_persist::snapshot::{SaveReport, Snapshot, SnapshotSpec};
use redoubt_persist::storage::{FileStorage, Storage};
use redoubt_persist::Keyspace;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// More commands than this between two snapshot ticks means client load.
const BUSY_COMMANDS: u64 = 16;
/// How long client load is assumed to last after it was last seen.
const BUSY_LINGER: Duration = Duration::from_millis(100);

/// How often a running snapshot logs its memory at debug level.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Redis waits this long before retrying a failed automatic BGSAVE.
const BGSAVE_RETRY_DELAY: Duration = Duration::from_secs(5);

pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Persistence state the executor keeps.
pub struct SaveState {
    pub storage: Arc<dyn Storage>,
    pub bgsave: Option<Snapshot>,
    /// Epoch of the last snapshot started (hooks compare against it).
    epoch: u64,
    /// `dirty` when the running snapshot started: on success the changes
    /// made since then are what remains unsaved.
    dirty_at_start: u64,
    pub last_bgsave_ok: bool,
    pub last_bgsave_time_sec: i64,
    last_attempt: Option<Instant>,
    pub saves: u64,
    /// Bytes the last snapshot kept alive at its peak.
    pub last_cow: u64,
    pub last_load_keys: u64,
    pub last_load_expired: u64,
    /// LSN of the state in the last loaded or saved dump.
    pub last_lsn: u64,
    /// A running BGREWRITEAOF (it shares the snapshot machinery, so it and
    /// a BGSAVE never run at once; each schedules behind the other).
    pub aof_rewrite: Option<crate::aof::RewriteJob>,
    pub aof_rewrite_scheduled: bool,
    pub bgsave_scheduled: bool,
    /// `total_commands` at the last snapshot tick, and when the ticks last
    /// saw client load.
    commands_at_tick: u64,
    last_busy: Option<Instant>,
    /// When the running snapshot last logged its progress.
    last_progress: Option<Instant>,
    /// The allocator keeps its freed pages while a snapshot runs.
    freed_pages: crate::alloc::FreedPages,
}

impl Default for SaveState {
    fn default() -> Self {
        SaveState {
            storage: Arc::new(FileStorage),
            bgsave: None,
            epoch: 0,
            dirty_at_start: 0,
            last_bgsave_ok: true,
            last_bgsave_time_sec: -1,
            last_attempt: None,
            saves: 0,
            last_cow: 0,
            last_load_keys: 0,
            last_load_expired: 0,
            last_lsn: 0,
            aof_rewrite: None,
            aof_rewrite_scheduled: false,
            bgsave_scheduled: false,
            commands_at_tick: 0,
            last_busy: None,
            last_progress: None,
            freed_pages: Default::default(),
        }
    }
}

/// A start-up load failure: the server refuses to start.
#[derive(Debug, thiserror::Error)]
#[error("Fatal error loading the DB ({path}): {source}. Exiting.")]
pub struct LoadError {
    pub path: String,
    #[source]
    pub source: redoubt_persist::rdb::RdbError,
}

impl Executor {
    /// The dump file, relative to the working directory (`dir`).
    pub fn rdb_path(&self) -> PathBuf {
        PathBuf::from(&self.config.dbfilename)
    }

    pub fn encoding_limits(&self) -> EncodingLimits {
        let c = &self.config;
        EncodingLimits {
            hash_max_listpack_entries: c.hash_max_listpack_entries as usize,
            hash_max_listpack_value: c.hash_max_listpack_value as usize,
            zset_max_listpack_entries: c.zset_max_listpack_entries as usize,
            zset_max_listpack_value: c.zset_max_listpack_value as usize,
            set_max_intset_entries: c.set_max_intset_entries as usize,
            ..EncodingLimits::default()
        }
    }

    pub fn save_options(&self) -> SaveOptions {
        SaveOptions {
            version: self.config.rdb_version as u32,
            compression: self.config.rdbcompression,
            // Snapshots only: DUMP keeps the exact compressor.
            quick_lzf: true,
            checksum: self.config.rdbchecksum,
            limits: self.encoding_limits(),
            used_mem: crate::info::used_memory() as u64,
            functions: self
                .functions
                .iter()
                .map(|(_, code)| code.to_vec())
                .collect(),
            ..SaveOptions::default()
        }
    }

    /// Loads the dump at start-up if there is one. Returns the number of keys.
    pub fn load_rdb(&mut self) -> Result<Option<u64>, LoadError> {
        let path = self.rdb_path();
        let storage = self.save.storage.clone();
        if !storage.exists(&path) {
            return Ok(None);
        }
        let started = Instant::now();
        let err = |source| LoadError {
            path: path.display().to_string(),
            source,
        };
        let len = storage.len(&path).ok();
        let file = storage.open(&path).map_err(|e| err(e.into()))?;
        let mut opts = LoadOptions::new(now_ms());
        opts.limits = self.encoding_limits();
        let mut ks = Keyspace::new(self.config.databases);
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let stats = load_keyspace(reader, len, &mut ks, &opts).map_err(err)?;
        self.ks = ks;
        self.functions = stats
            .functions
            .iter()
            .map(|code| (library_name(code), bytes::Bytes::copy_from_slice(code)))
            .collect();
        self.save.last_load_keys = stats.keys_loaded;
        self.save.last_load_expired = stats.expired_skipped;
        self.save.last_lsn = stats.lsn.unwrap_or(0);
        tracing::info!(
            "Done loading RDB, keys loaded: {}, keys expired: {}.",
            stats.keys_loaded,
            stats.expired_skipped
        );
        tracing::info!(
            "DB loaded from disk: {:.3} seconds",
            started.elapsed().as_secs_f64()
        );
        Ok(Some(stats.keys_loaded))
    }

    /// Starts a background save (or, with `schedule`, queues it behind a
    /// running AOF rewrite). Returns the status reply.
    pub fn start_bgsave(&mut self, schedule: bool) -> Result<&'static str, Reply> {
        if self.save.bgsave.is_some() {
            return Err(Reply::err("ERR Background save already in progress"));
        }
        if self.aof_rewrite_running() {
            if schedule {
                self.save.bgsave_scheduled = true;
                return Ok("Background saving scheduled");
            }
            return Err(Reply::err("ERR An AOF log rewriting in progress: can't BGSAVE right now. Use BGSAVE SCHEDULE in order to schedule a BGSAVE whenever possible."));
        }
        self.save.bgsave_scheduled = false;
        let snap = self.begin_snapshot()?;
        self.save.bgsave = Some(snap);
        tracing::info!("Background saving started");
        Ok("Background saving started")
    }

    /// Whether an AOF rewrite runs, counting one already answered "started"
    /// that waits for its fsync before it switches files: to clients (INFO,
    /// BGSAVE) it is in progress, as Redis's is from its fork on.
    pub fn aof_rewrite_running(&self) -> bool {
        self.save.aof_rewrite.is_some() || crate::aof::rewrite_starting(self)
    }

    /// The next snapshot epoch (each snapshot's hooks compare against it).
    pub fn next_snapshot_epoch(&mut self) -> u64 {
        self.save.epoch += 1;
        self.save.epoch
    }

    /// Advances whichever snapshot runs (BGSAVE or AOF rewrite) and starts
    /// a scheduled one when the other ends. Returns true while one runs.
    pub fn snapshot_tick(&mut self, budget: Duration) -> bool {
        // Client load makes the snapshot's encoder pace itself; it counts
        // as load for a while after the last busy tick, so the encoder does
        // not flip between paced and flat out within one burst of requests.
        let commands = self.stats.total_commands;
        if commands.saturating_sub(self.save.commands_at_tick) > BUSY_COMMANDS {
            self.save.last_busy = Some(Instant::now());
        }
        self.save.commands_at_tick = commands;
        let busy = self
            .save
            .last_busy
            .is_some_and(|t| t.elapsed() < BUSY_LINGER);
        if let Some(s) = &self.save.bgsave {
            s.set_busy(busy);
        }
        if let Some(j) = &self.save.aof_rewrite {
            j.snap.set_busy(busy);
        }
        let running = self.save.bgsave.is_some() || self.save.aof_rewrite.is_some();
        self.save.freed_pages.hold(running);
        self.size_snapshot_budgets();
        self.log_snapshot_progress();
        if self.save.bgsave.is_some() {
            return self.bgsave_tick(budget);
        }
        if self.save.aof_rewrite.is_some() {
            return crate::aof::rewrite_tick(self, budget);
        }
        if self.save.aof_rewrite_scheduled {
            return crate::aof::start_rewrite(self).is_ok();
        }
        if self.save.bgsave_scheduled {
            return self.start_bgsave(false).is_ok();
        }
        false
    }

    /// Whether the running snapshots (BGSAVE, AOF rewrite) have nothing
    /// for the executor to do now (see `Snapshot::executor_idle`): every
    /// one of them, so one that is idle does not slow the other's walk.
    pub fn snapshot_idle(&self) -> bool {
        let bgsave = self.save.bgsave.as_ref();
        let rewrite = self.save.aof_rewrite.as_ref().map(|j| &j.snap);
        let mut running = bgsave.into_iter().chain(rewrite).peekable();
        running.peek().is_some() && running.all(|s| s.executor_idle())
    }

    /// Once per snapshot (BGSAVE or AOF rewrite), scales the bytes it may
    /// keep waiting for its encoder to the memory the dataset uses.
    fn size_snapshot_budgets(&mut self) {
        let rewrite = self.save.aof_rewrite.as_mut().map(|j| &mut j.snap);
        for snap in [self.save.bgsave.as_mut(), rewrite].into_iter().flatten() {
            if !snap.budgets_sized() {
                snap.size_budgets(crate::info::used_memory() as u64);
            }
        }
    }

    /// Every [`PROGRESS_EVERY`] while a snapshot runs, a debug line with
    /// the bytes it keeps alive, by kind, next to the allocator's view of
    /// the process: extra RSS that these do not explain is elsewhere.
    fn log_snapshot_progress(&mut self) {
        let snap = match (&self.save.bgsave, &self.save.aof_rewrite) {
            (Some(s), _) => s,
            (None, Some(j)) => &j.snap,
            (None, None) => {
                self.save.last_progress = None;
                return;
            }
        };
        if !tracing::enabled!(tracing::Level::DEBUG)
            || self
                .save
                .last_progress
                .is_some_and(|t| t.elapsed() < PROGRESS_EVERY)
        {
            return;
        }
        self.save.last_progress = Some(Instant::now());
        let p = snap.progress();
        let mem = crate::info::allocator_stats();
        let arena = |name: &[u8]| {
            // SAFETY: the names are NUL-terminated jemalloc statistics of
            // type size_t.
            unsafe { tikv_jemalloc_ctl::raw::read::<usize>(name) }.unwrap_or(0)
        };
        tracing::debug!(
            pdirty = arena(b"stats.arenas.4096.pdirty\0"),
            pmuzzy = arena(b"stats.arenas.4096.pmuzzy\0"),
            pactive = arena(b"stats.arenas.4096.pactive\0"),
            small = arena(b"stats.arenas.4096.small.allocated\0"),
            large = arena(b"stats.arenas.4096.large.allocated\0"),
            metadata = arena(b"stats.metadata\0"),
            mapped = arena(b"stats.mapped\0"),
            keys = p.keys,
            copies = p.copies,
            encoded_pending = p.encoded_pending,
            preimages_copied = p.preimages_copied,
            preimages_encoded = p.preimages_encoded,
            allocated = mem.allocated,
            active = mem.active,
            resident = mem.resident,
            retained = mem.retained,
            rss = crate::info::rss_bytes(),
            "snapshot progress"
        );
    }

    fn begin_snapshot(&mut self) -> Result<Snapshot, Reply> {
        self.next_snapshot_epoch();
        self.save.last_attempt = Some(Instant::now());
        self.save.dirty_at_start = self.dirty;
        let spec = SnapshotSpec {
            storage: self.save.storage.clone(),
            target: self.rdb_path(),
            format: redoubt_persist::snapshot::SnapshotFormat::Rdb(self.save_options()),
            lsn: self.lsn,
            epoch: self.save.epoch,
            incremental_fsync: self.config.rdb_save_incremental_fsync,
            event_loop: self.event_loop.clone(),
            cpus: self.config.bgsave_cpulist.clone(),
        };
        Snapshot::start(&mut self.ks, spec).map_err(|e| {
            tracing::warn!("Failed opening the temp RDB file for saving: {e}");
            self.save.last_bgsave_ok = false;
            Reply::err("ERR Background save failed")
        })
    }

    /// SAVE: a snapshot run to completion on the spot.
    pub fn save_now(&mut self) -> Result<SaveReport, String> {
        if self.save.bgsave.is_some() {
            return Err("ERR Background save already in progress".into());
        }
        // The snapshot threads must not leave the core to this thread: it
        // runs the save itself and serves no one meanwhile.
        let _foreground = self.event_loop.as_ref().map(|l| l.in_foreground());
        // One snapshot at a time: a running AOF rewrite is finished first
        // (SAVE blocks the server anyway).
        crate::aof::finish_rewrite_now(self);
        let mut snap = self.begin_snapshot().map_err(|_| "ERR".to_string())?;
        let result = snap.run_to_end(&mut self.ks);
        self.finish_save(result.as_ref().map_err(|e| e.to_string()).cloned(), false)
            .map_err(|_| "ERR".to_string())
    }

    /// Advances a running BGSAVE for about `budget`, and takes its result
    /// when the writer is done. Returns true while a save is running.
    pub fn bgsave_tick(&mut self, budget: Duration) -> bool {
        let Some(mut snap) = self.save.bgsave.take() else {
            return false;
        };
        let started = Instant::now();
        let mut failed = None;
        while started.elapsed() < budget {
            match snap.step(&mut self.ks, redoubt_persist::snapshot::WALK_STEP) {
                Ok(true) => break,
                // The encoder is behind: nothing to do until it catches up.
                Ok(false) if snap.waiting() => break,
                Ok(false) => {}
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(e) = failed {
            snap.abort(&mut self.ks);
            let _ = self.finish_save(Err(e), true);
            return false;
        }
        match snap.poll() {
            None => {
                self.save.bgsave = Some(snap);
                true
            }
            Some(r) => {
                let r = r.map_err(|e| e.to_string());
                let _ = self.finish_save(r, true);
                false
            }
        }
    }

    fn finish_save(
        &mut self,
        r: Result<SaveReport, String>,
        background: bool,
    ) -> Result<SaveReport, ()> {
        match r {
            Ok(rep) => {
                self.dirty -= self.save.dirty_at_start.min(self.dirty);
                self.lastsave = now_ms() / 1000;
                self.save.last_bgsave_ok = true;
                self.save.saves += 1;
                self.save.last_cow = rep.peak_pending;
                self.save.last_lsn = rep.lsn;
                tracing::info!(
                    keys = rep.keys,
                    bytes = rep.bytes,
                    kept_alive_peak = rep.peak_pending,
                    preimages_copied = rep.preimages_copied,
                    preimages_encoded = rep.preimages_encoded,
                    longest_executor_us = rep.longest_executor_us,
                    longest_step_cpu_us = rep.longest_step_cpu_us,
                    walker_cpu_ms = rep.walker_cpu_us / 1000,
                    encoder_cpu_ms = rep.encoder_cpu_us / 1000,
                    writer_cpu_ms = rep.writer_cpu_us / 1000,
                    encoder_sleeps = rep.encoder_sleeps,
                    encoder_yields = rep.encoder_yields,
                    writer_yields = rep.writer_yields,
                    encoder_unpaced = rep.encoder_unpaced,
                    writebacks = rep.writebacks,
                    flat_grows = rep.flat_grows,
                    "snapshot done in {:.3} s",
                    rep.duration.as_secs_f64()
                );
                if background {
                    self.save.last_bgsave_time_sec = rep.duration.as_secs() as i64;
                    tracing::info!("Background saving terminated with success");
                } else {
                    tracing::info!("DB saved on disk");
                }
                Ok(rep)
            }
            Err(e) => {
                self.save.last_bgsave_ok = false;
                if background {
                    tracing::warn!("Background saving error: {e}");
                } else {
                    tracing::warn!("Failed saving the DB: {e}");
                }
                Err(())
            }
        }
    }

    /// Stops a running BGSAVE (FLUSHALL does this, as Redis kills its child).
    pub fn kill_bgsave(&mut self) {
        if let Some(mut snap) = self.save.bgsave.take() {
            snap.abort(&mut self.ks);
            tracing::warn!("Background saving terminated by FLUSHALL");
        }
    }

    /// Save points: start a BGSAVE when one of them is reached.
    pub fn check_save_points(&mut self) {
        if self.save.bgsave.is_some() || self.save.bgsave_scheduled || self.config.save.is_empty() {
            return;
        }
        let now = now_ms() / 1000;
        let since = now.saturating_sub(self.lastsave);
        let retry_ok = self.save.last_bgsave_ok
            || self
                .save
                .last_attempt
                .map(|t| t.elapsed() >= BGSAVE_RETRY_DELAY)
                .unwrap_or(true);
        let hit = self
            .config
            .save
            .iter()
            .find(|(secs, changes)| self.dirty >= *changes && since >= *secs);
        if let (Some((secs, changes)), true) = (hit, retry_ok) {
            tracing::info!("{changes} changes in {secs} seconds. Saving...");
            let _ = self.start_bgsave(true);
        }
    }

    /// The MISCONF reply for writes, when the last background save failed
    /// and `stop-writes-on-bgsave-error` is on.
    pub fn write_refusal(&self) -> Option<Reply> {
        if self.config.stop_writes_on_bgsave_error
            && !self.config.save.is_empty()
            && !self.save.last_bgsave_ok
        {
            return Some(Reply::err(MISCONF));
        }
        None
    }

    /// The save done on SHUTDOWN / SIGTERM. Err means the shutdown must not
    /// proceed (Redis refuses to exit when the final save fails).
    pub fn shutdown_save(&mut self, mode: crate::exec::ShutdownMode) -> Result<(), String> {
        use crate::exec::ShutdownMode::*;
        self.kill_bgsave_quietly();
        let wanted = match mode {
            NoSave => false,
            Save => true,
            Default => !self.config.save.is_empty(),
        };
        if !wanted {
            return Ok(());
        }
        tracing::info!("Saving the final RDB snapshot before exiting.");
        self.save_now().map(|_| ())
    }

    fn kill_bgsave_quietly(&mut self) {
        if let Some(mut snap) = self.save.bgsave.take() {
            snap.abort(&mut self.ks);
        }
    }
}

/// Writes the keyspace as the RDB image of an AOF base (`aof-base` = 1).
pub fn write_rdb_base(ex: &Executor, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let mut opts = ex.save_options();
    opts.aof_base = true;
    redoubt_persist::rdb::write_keyspace(&ex.ks, w, opts)
        .map(|_| ())
        .map_err(std::io::Error::other)
}

/// The library name from a FUNCTION's code ("#!lua name=mylib ...").
pub fn library_name(code: &[u8]) -> bytes::Bytes {
    let first = code.split(|&c| c == b'\n').next().unwrap_or_default();
    let name = first
        .split(|&c| c == b' ')
        .find_map(|w| w.strip_prefix(b"name="))
        .unwrap_or_default();
    bytes::Bytes::copy_from_slice(name)
}
