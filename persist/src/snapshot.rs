//! Point-in-time snapshots without `fork()`.
//!
//! A snapshot installs a hook in every database ([`SnapHook`]). From then on
//! each segment is serialized exactly once, at the snapshot's point in time,
//! by whichever comes first:
//! - the walker ([`Snapshot::step`]), which the executor runs in small
//!   paced slices between commands, or
//! - the executor itself, just before a command changes a segment the walker
//!   has not reached (the segment is serialized, then changed).
//!
//! Nothing is copied: the memory a snapshot keeps alive is the serialized
//! bytes not yet written to disk (bounded by pacing the walker on them) and
//! the segments of a database flushed mid-snapshot. A separate writer thread
//! moves the bytes to a temp file through [`Storage`], fsyncs it, renames it
//! over the target and fsyncs the directory, so the old dump stays intact
//! until the new one is complete and durable.

use crate::aof::record::{encode_annotation, encode_command};
use crate::aof::rewrite::write_entry as resp_entry;
use crate::keyspace::{Entry, Keyspace, SegmentSink, SnapHook};
use crate::rdb::{RdbError, RdbWriter, SaveOptions};
use crate::storage::{parent_dir, Storage};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The AUX field recording the LSN a snapshot corresponds to. Redis ignores
/// unknown AUX fields, so files carrying it still load in Redis.
pub const LSN_AUX: &str = "redoubt-lsn";

/// Serialized bytes are handed to the writer thread in chunks of this size.
const CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Encode(#[from] RdbError),
    #[error("snapshot aborted")]
    Aborted,
}

/// What a finished snapshot reports.
#[derive(Debug, Clone, Default)]
pub struct SaveReport {
    pub bytes: u64,
    pub keys: u64,
    pub lsn: u64,
    pub duration: Duration,
    /// The most serialized-but-unwritten bytes held at once (the memory the
    /// snapshot kept alive; INFO reports it as rdb_last_cow_size).
    pub peak_pending: u64,
}

enum Msg {
    Data(Vec<u8>),
    Finish,
}

/// A `Write` that batches bytes into chunks for the writer thread.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::Sender<Msg>,
    pending: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
}

impl ChunkWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let n = self
            .pending
            .fetch_add(chunk.len() as u64, Ordering::Relaxed)
            + chunk.len() as u64;
        self.peak.fetch_max(n, Ordering::Relaxed);
        self.tx
            .send(Msg::Data(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "snapshot writer stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buf()
    }
}

/// What a snapshot is written as.
pub enum SnapshotFormat {
    /// An RDB file (a dump, or the RDB base of an AOF).
    Rdb(SaveOptions),
    /// RESP commands (an AOF base with `aof-use-rdb-preamble no`); keys
    /// already expired at `now_ms` are left out, as Redis's rewrite does.
    Resp { now_ms: u64, timestamp: Option<u64> },
}

/// One output format of the serializer.
trait Encoder: Send {
    fn select_db(&mut self, db: usize, keys: u64, volatile: u64) -> Result<(), SnapshotError>;
    fn write_entry(&mut self, e: &Entry) -> Result<(), SnapshotError>;
    /// Writes the trailer and hands back the byte sink.
    fn finish(self: Box<Self>) -> Result<ChunkWriter, SnapshotError>;
}

impl Encoder for RdbWriter<ChunkWriter> {
    fn select_db(&mut self, db: usize, keys: u64, volatile: u64) -> Result<(), SnapshotError> {
        Ok(RdbWriter::select_db(self, db, keys, volatile)?)
    }

    fn write_entry(&mut self, e: &Entry) -> Result<(), SnapshotError> {
        Ok(RdbWriter::write_entry(self, &e.key, &e.value, e.expire_at)?)
    }

    fn finish(self: Box<Self>) -> Result<ChunkWriter, SnapshotError> {
        Ok(RdbWriter::finish(*self)?)
    }
}

struct RespEncoder {
    out: ChunkWriter,
    buf: Vec<u8>,
    now_ms: u64,
}

impl RespEncoder {
    fn spill(&mut self) -> Result<(), SnapshotError> {
        if self.buf.len() >= CHUNK {
            self.out
                .write_all(&self.buf)
                .map_err(|source| SnapshotError::Io {
                    op: "write",
                    path: "AOF base".into(),
                    source,
                })?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl Encoder for RespEncoder {
    fn select_db(&mut self, db: usize, _keys: u64, _volatile: u64) -> Result<(), SnapshotError> {
        let db = db.to_string();
        encode_command(&mut self.buf, &[b"SELECT".as_slice(), db.as_bytes()]);
        Ok(())
    }

    fn write_entry(&mut self, e: &Entry) -> Result<(), SnapshotError> {
        if e.is_expired(self.now_ms) {
            return Ok(());
        }
        resp_entry(&mut self.buf, &e.key, &e.value);
        if e.expire_at != 0 {
            let at = e.expire_at.to_string();
            encode_command(
                &mut self.buf,
                &[b"PEXPIREAT".as_slice(), &e.key, at.as_bytes()],
            );
        }
        self.spill()
    }

    fn finish(mut self: Box<Self>) -> Result<ChunkWriter, SnapshotError> {
        let buf = std::mem::take(&mut self.buf);
        self.out
            .write_all(&buf)
            .map_err(|source| SnapshotError::Io {
                op: "write",
                path: "AOF base".into(),
                source,
            })?;
        Ok(self.out)
    }
}

/// The serializer side: receives segments from the keyspace hooks.
struct Sink {
    writer: Option<Box<dyn Encoder>>,
    /// Database whose SELECTDB was written last.
    current_db: Option<usize>,
    /// (keys, volatile keys) per db at the start, for RESIZEDB hints.
    sizes: Vec<(u64, u64)>,
    keys: u64,
    error: Option<SnapshotError>,
}

impl SegmentSink for Sink {
    fn save_segment(&mut self, db: usize, entries: &mut dyn Iterator<Item = &Entry>) {
        if self.error.is_some() {
            return;
        }
        let Some(w) = self.writer.as_mut() else {
            return;
        };
        if self.current_db != Some(db) {
            let (n, v) = self.sizes.get(db).copied().unwrap_or((0, 0));
            if let Err(e) = w.select_db(db, n, v) {
                self.error = Some(e);
                return;
            }
            self.current_db = Some(db);
        }
        for e in entries {
            if let Err(e) = w.write_entry(e) {
                self.error = Some(e);
                return;
            }
            self.keys += 1;
        }
    }
}

/// A running background snapshot.
pub struct Snapshot {
    pub epoch: u64,
    pub lsn: u64,
    pub started: Instant,
    pub target: PathBuf,
    sink: Arc<Mutex<Sink>>,
    pending: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
    result: mpsc::Receiver<Result<u64, SnapshotError>>,
    /// Databases still being walked.
    next_db: usize,
    walk_done: bool,
}

/// Options for one snapshot.
pub struct SnapshotSpec {
    pub storage: Arc<dyn Storage>,
    /// Final file path (dir/dbfilename, or an AOF base).
    pub target: PathBuf,
    pub format: SnapshotFormat,
    pub lsn: u64,
    pub epoch: u64,
}

impl Snapshot {
    /// Starts a snapshot of `ks` at this instant: hooks every database and
    /// starts the writer thread. The temp file is created before returning,
    /// so a directory that cannot be written fails here.
    pub fn start(ks: &mut Keyspace, spec: SnapshotSpec) -> Result<Snapshot, SnapshotError> {
        let dir = parent_dir(&spec.target);
        let temp = dir.join(format!("temp-{}-{}.rdb", std::process::id(), spec.epoch));
        let file = spec
            .storage
            .create(&temp)
            .map_err(|source| SnapshotError::Io {
                op: "create",
                path: temp.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::channel();
        let (res_tx, res_rx) = mpsc::channel();
        let pending = Arc::new(AtomicU64::new(0));
        let peak = Arc::new(AtomicU64::new(0));
        let chunk_writer = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
            pending: pending.clone(),
            peak: peak.clone(),
        };
        let writer: Box<dyn Encoder> = match spec.format {
            SnapshotFormat::Rdb(mut opts) => {
                opts.extra_aux.push((
                    LSN_AUX.as_bytes().to_vec(),
                    spec.lsn.to_string().into_bytes(),
                ));
                Box::new(RdbWriter::new(chunk_writer, opts)?)
            }
            SnapshotFormat::Resp { now_ms, timestamp } => {
                let mut buf = Vec::with_capacity(CHUNK);
                if let Some(ts) = timestamp {
                    encode_annotation(&mut buf, ts);
                }
                Box::new(RespEncoder {
                    out: chunk_writer,
                    buf,
                    now_ms,
                })
            }
        };
        let storage = spec.storage.clone();
        let target = spec.target.clone();
        let pend = pending.clone();
        std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                let r = write_file(&*storage, file, &temp, &target, rx, &pend);
                if r.is_err() {
                    let _ = storage.remove(&temp);
                }
                let _ = res_tx.send(r);
            })
            .map_err(|source| SnapshotError::Io {
                op: "spawn writer for",
                path: spec.target.display().to_string(),
                source,
            })?;
        let sink = Arc::new(Mutex::new(Sink {
            writer: Some(writer),
            current_db: None,
            sizes: ks
                .dbs
                .iter()
                .map(|d| (d.len() as u64, d.volatile_len() as u64))
                .collect(),
            keys: 0,
            error: None,
        }));
        let dyn_sink: Arc<Mutex<dyn SegmentSink>> = sink.clone();
        for (i, db) in ks.dbs.iter_mut().enumerate() {
            db.begin_snapshot(SnapHook {
                epoch: spec.epoch,
                db: i,
                sink: dyn_sink.clone(),
            });
        }
        Ok(Snapshot {
            epoch: spec.epoch,
            lsn: spec.lsn,
            started: Instant::now(),
            target: spec.target,
            sink,
            pending,
            peak,
            result: res_rx,
            next_db: 0,
            walk_done: false,
        })
    }

    /// Bytes serialized but not yet written to the file.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    pub fn peak_pending(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Keys serialized so far.
    pub fn keys_done(&self) -> u64 {
        self.sink.lock().map(|s| s.keys).unwrap_or(0)
    }

    /// Walks up to `max_segments` segments. When the walk completes, the
    /// file is finished (EOF and checksum) and handed to the writer to make
    /// durable. Returns true once the walk is complete.
    pub fn step(&mut self, ks: &mut Keyspace, max_segments: usize) -> Result<bool, SnapshotError> {
        if self.walk_done {
            return Ok(true);
        }
        let mut budget = max_segments.max(1);
        while self.next_db < ks.dbs.len() && budget > 0 {
            // Spend the budget one segment at a time so the step stays short.
            if ks.dbs[self.next_db].snapshot_step(1) {
                self.next_db += 1;
            }
            budget -= 1;
        }
        if let Some(e) = self.sink.lock().ok().and_then(|mut s| s.error.take()) {
            self.abort(ks);
            return Err(e);
        }
        if self.next_db < ks.dbs.len() {
            return Ok(false);
        }
        // A SWAPDB may have moved an unfinished db below the cursor.
        if ks.dbs.iter().any(|d| d.snapshot_active()) {
            self.next_db = 0;
            return Ok(false);
        }
        self.walk_done = true;
        let writer = self.sink.lock().ok().and_then(|mut s| s.writer.take());
        if let Some(w) = writer {
            let mut cw = w.finish()?;
            cw.flush().map_err(|source| SnapshotError::Io {
                op: "write",
                path: self.target.display().to_string(),
                source,
            })?;
            let _ = cw.tx.send(Msg::Finish);
        }
        Ok(true)
    }

    /// The writer's verdict, once it has one: Some(Ok(report)) when the new
    /// file is durable under its final name.
    pub fn poll(&mut self) -> Option<Result<SaveReport, SnapshotError>> {
        let r = self.result.try_recv().ok()?;
        Some(r.map(|bytes| self.report(bytes)))
    }

    /// Blocks until the writer finishes (SAVE, shutdown).
    pub fn wait(&mut self) -> Result<SaveReport, SnapshotError> {
        match self.result.recv() {
            Ok(r) => r.map(|bytes| self.report(bytes)),
            Err(_) => Err(SnapshotError::Aborted),
        }
    }

    fn report(&self, bytes: u64) -> SaveReport {
        SaveReport {
            bytes,
            keys: self.keys_done(),
            lsn: self.lsn,
            duration: self.started.elapsed(),
            peak_pending: self.peak_pending(),
        }
    }

    /// Stops the snapshot: hooks removed, writer told to give up (it
    /// removes the temp file).
    pub fn abort(&mut self, ks: &mut Keyspace) {
        for db in ks.dbs.iter_mut() {
            db.abort_snapshot();
        }
        if let Ok(mut s) = self.sink.lock() {
            // Dropping the writer drops the channel: the thread sees the
            // disconnect before any Finish and discards the temp file.
            s.writer = None;
        }
        self.walk_done = true;
    }
}

/// The writer thread: appends chunks to the temp file, then on Finish
/// fsyncs it, renames it over the target and fsyncs the directory.
fn write_file(
    storage: &dyn Storage,
    mut file: Box<dyn crate::storage::StorageFile>,
    temp: &Path,
    target: &Path,
    rx: mpsc::Receiver<Msg>,
    pending: &AtomicU64,
) -> Result<u64, SnapshotError> {
    let io_err = |op: &'static str, p: &Path| {
        let path = p.display().to_string();
        move |source| SnapshotError::Io { op, path, source }
    };
    let mut written = 0u64;
    loop {
        match rx.recv() {
            Ok(Msg::Data(chunk)) => {
                let n = chunk.len() as u64;
                let r = file.write_all(&chunk);
                pending.fetch_sub(n, Ordering::Relaxed);
                r.map_err(io_err("write", temp))?;
                written += n;
            }
            Ok(Msg::Finish) => break,
            Err(_) => return Err(SnapshotError::Aborted),
        }
    }
    // PLANTED BUG (RenameBeforeFsync): the rename comes before the fsync.
    let early_rename = crate::planted::on(crate::planted::Bug::RenameBeforeFsync);
    if early_rename {
        storage
            .rename(temp, target)
            .map_err(io_err("rename", target))?;
    }
    file.sync().map_err(io_err("fsync", temp))?;
    drop(file);
    if !early_rename {
        storage
            .rename(temp, target)
            .map_err(io_err("rename", target))?;
    }
    // PLANTED BUG (SkipDirFsync): the rename is never made durable.
    if !crate::planted::on(crate::planted::Bug::SkipDirFsync) {
        storage
            .fsync_dir(&parent_dir(target))
            .map_err(io_err("fsync directory of", target))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rdb::{load_keyspace, LoadOptions};
    use crate::storage::{Fault, SimStorage};
    use crate::Value;

    fn spec(storage: Arc<dyn Storage>, lsn: u64, epoch: u64) -> SnapshotSpec {
        SnapshotSpec {
            storage,
            target: PathBuf::from("dump.rdb"),
            format: SnapshotFormat::Rdb(SaveOptions::default()),
            lsn,
            epoch,
        }
    }

    fn load(storage: &dyn Storage) -> Keyspace {
        let bytes = storage.read_all(Path::new("dump.rdb")).unwrap();
        let mut ks = Keyspace::new(16);
        load_keyspace(
            &bytes[..],
            Some(bytes.len() as u64),
            &mut ks,
            &LoadOptions::new(0),
        )
        .unwrap();
        ks
    }

    fn snapshot_of(ks: &Keyspace) -> Vec<(usize, Vec<u8>, Value)> {
        let mut v: Vec<_> = ks
            .dbs
            .iter()
            .enumerate()
            .flat_map(|(i, db)| db.iter().map(move |e| (i, e.key.to_vec(), e.value.clone())))
            .collect();
        v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        v
    }

    #[test]
    fn writes_during_the_walk_do_not_change_the_snapshot() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        for i in 0..5000 {
            ks.dbs[i % 3].insert(format!("k{i}").as_bytes(), Value::str_from(b"before"), 0);
        }
        let expected = snapshot_of(&ks);
        let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 7, 1)).unwrap();
        let mut i = 0;
        loop {
            // Interleave writes, deletes, flushes and swaps with walker steps.
            for _ in 0..20 {
                let k = format!("k{}", i % 6000);
                ks.dbs[i % 3].insert(k.as_bytes(), Value::str_from(b"after"), 0);
                ks.dbs[(i + 1) % 3].remove(format!("k{}", (i * 7) % 5000).as_bytes());
                i += 1;
            }
            if i == 400 {
                ks.dbs[2].clear();
            }
            if i == 800 {
                ks.dbs.swap(0, 1);
            }
            if snap.step(&mut ks, 3).unwrap() {
                break;
            }
        }
        let report = snap.wait().unwrap();
        assert_eq!(report.lsn, 7);
        assert_eq!(snapshot_of(&load(&*storage)), expected);
    }

    #[test]
    fn failed_write_keeps_the_old_dump_and_removes_the_temp_file() {
        for fault_at in 0..6u64 {
            let disk = SimStorage::new();
            let storage: Arc<dyn Storage> = Arc::new(disk.clone());
            let mut old = storage.create(Path::new("dump.rdb")).unwrap();
            old.write_all(b"old dump").unwrap();
            old.sync().unwrap();
            let mut ks = Keyspace::new(16);
            for i in 0..3000 {
                ks.dbs[0].insert(
                    format!("key:{i}").as_bytes(),
                    Value::str_from(&[b'x'; 200]),
                    0,
                );
            }
            disk.inject(fault_at, Fault::NoSpace);
            let res = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).and_then(|mut s| {
                while !s.step(&mut ks, 64)? {}
                s.wait()
            });
            if res.is_ok() {
                continue;
            }
            // Before the rename the old dump is untouched; a failure after
            // it (the directory fsync) leaves the new, complete dump.
            let dump = storage.read_all(Path::new("dump.rdb")).unwrap();
            let old_or_complete = dump == b"old dump" || load(&*storage).dbs[0].len() == 3000;
            assert!(
                old_or_complete,
                "fault at op {fault_at}: dump is neither old nor complete"
            );
            let names = storage.list(Path::new(".")).unwrap();
            assert_eq!(
                names,
                vec!["dump.rdb".to_string()],
                "fault at op {fault_at}"
            );
        }
    }

    fn save(
        ks: &mut Keyspace,
        storage: &Arc<dyn Storage>,
        lsn: u64,
        epoch: u64,
    ) -> Result<SaveReport, SnapshotError> {
        let mut s = Snapshot::start(ks, spec(storage.clone(), lsn, epoch))?;
        while !s.step(ks, 64)? {}
        s.wait()
    }

    #[test]
    fn crash_at_any_step_leaves_a_complete_dump() {
        let mut ks = Keyspace::new(16);
        for i in 0..2000 {
            ks.dbs[0].insert(format!("key:{i}").as_bytes(), Value::str_from(b"v1"), 0);
        }
        let probe = SimStorage::new();
        let probe_storage: Arc<dyn Storage> = Arc::new(probe.clone());
        save(&mut ks.clone(), &probe_storage, 1, 1).unwrap();
        let ops_per_save = probe.ops();
        let mut failures = 0;
        // Stop the save at each of its I/O operations in turn (the failing
        // operation and everything after it never reach the disk), then
        // lose power: the directory must hold the old or the new dump, whole.
        for fail_at in 0..=ops_per_save {
            for seed in 0..8 {
                let disk = SimStorage::new();
                let storage: Arc<dyn Storage> = Arc::new(disk.clone());
                let mut prev = Keyspace::new(16);
                prev.dbs[0].insert(b"old", Value::str_from(b"old"), 0);
                save(&mut prev, &storage, 0, 1).unwrap();
                disk.inject(fail_at, Fault::Io);
                if save(&mut ks.clone(), &storage, 1, 2).is_err() {
                    failures += 1;
                }
                disk.crash(seed);
                let n = load(&*storage).dbs[0].len();
                assert!(
                    n == 1 || n == 2000,
                    "fail at op {fail_at}, seed {seed}: {n} keys"
                );
            }
        }
        assert!(failures > 0);
    }
}
