//! Point-in-time snapshots without `fork()`.
//!
//! A snapshot installs a hook in every database ([`SnapHook`]). From then on
//! each key is handed over exactly once, in its state at the snapshot's
//! point in time, by whichever comes first:
//! - the walker ([`Snapshot::step`]), which the executor runs in short paced
//!   slices between commands and which copies a few hundred buckets of a
//!   segment's table at a time, or
//! - the executor itself, just before a command changes a key the walker
//!   has not reached: that one key is copied, then changed.
//!
//! The executor only copies (a small string's key and value bytes go into a
//! flat batch buffer, see the `flat` module; other values are shared with
//! a new entry); encoding and compression run on a background encoder
//! thread, which keeps to a share of a CPU while clients keep the
//! executor busy, small while few copies wait and growing with them up to
//! half the copy budget (see [`Pacer`]) and leaving the core to the event
//! loop when the loop waits for it ([`sched::yield_point`]), and a writer thread
//! moves the bytes to a temp file through [`Storage`] (past the page cache
//! where it can, [`Storage::create_bulk`]), fsyncs it, renames it
//! over the target and fsyncs the directory, so the old dump stays intact
//! until the new one is complete and durable. No executor path waits for
//! either thread: the executor's messages go through an unbounded channel
//! (bounded in bytes by the budgets below) and the only lock (the
//! executor-side feeder) is never taken by them. The encoder's output goes
//! through a bounded one: the encoder waits for the disk rather than hold
//! the file in memory.
//!
//! Memory kept alive for the snapshot is bounded: the walker copies only
//! while fewer than [`WALK_BUDGET`] bytes of copies wait for the encoder;
//! past [`COPY_BUDGET`] (both scaled down for small datasets by
//! [`Snapshot::size_budgets`]), pre-images are encoded on the executor instead of
//! copied (a few microseconds for a small key) so they cost only their
//! encoded bytes, except a chunked collection's, whose copy is a few
//! pointers a chunk (`Feeder::copies`). [`SaveReport::peak_pending`] is the
//! most held at once.

use crate::aof::record::{encode_annotation, encode_command};
use crate::aof::rewrite::write_entry as resp_entry;
use crate::cpus::CpuList;
use crate::entry::EntryBox;
use crate::keyspace::{Entry, Keyspace, SegmentSink, SnapHook};
use crate::rdb::{RdbError, RdbWriter, SaveOptions};
use crate::storage::{parent_dir, Storage};
use crate::Value;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod flat;
pub mod sched;
use flat::FlatBatch;

/// The AUX field recording the LSN a snapshot corresponds to. Redis ignores
/// unknown AUX fields, so files carrying it still load in Redis.
pub const LSN_AUX: &str = "redoubt-lsn";

/// Serialized bytes are handed to the writer thread in chunks of this size.
const CHUNK: usize = 256 * 1024;

/// The writer starts the disk write of every this many bytes as it goes
/// (`sync_file_range`), as Redis's `rdb-save-incremental-fsync` flushes its
/// file every few MB: left to the final fsync, hundreds of MB of dirty
/// pages were written back in one go, on the writer's thread in kernel
/// stretches of 1-2.4 ms that a woken executor sharing its core waited out
/// (`perf sched`, end of a loaded 2M-key save). Nothing to do where the
/// file is written past the page cache ([`Storage::create_bulk`]).
const WRITEBACK_STEP: u64 = 4 << 20;

/// Chunks that may wait for the writer thread: past them the encoder waits
/// for the disk instead of running ahead of it with the file in memory.
const WRITE_QUEUE_CHUNKS: usize = 16;
/// Strings up to this size are copied byte for byte into a [`FlatBatch`]
/// when handed to the encoder (see the `flat` module for why not a block
/// per key). Sharing them instead would also make the key's own `Bytes`
/// allocate a shared header on the first clone that stays with the key
/// after the snapshot (32 bytes a key: 64 MiB for 2M keys after one BGSAVE).
const DEEP_COPY_MAX: usize = 1024;

/// Pre-images are copied while the copies waiting for the encoder take less
/// than this; past it they are encoded on the spot.
pub const COPY_BUDGET: u64 = 48 << 20;
/// The walker copies another segment only while the copies waiting for the
/// encoder take less than this: it goes at the encoder's pace. It is
/// [`paced_below`] the copy budget's pacing limit, so the walk alone never
/// raises the encoder's share of the CPU: only pre-images do.
pub const WALK_BUDGET: u64 = paced_below(unpaced_above(COPY_BUDGET));
/// The smallest copy budget [`Snapshot::size_budgets`] sets.
const MIN_COPY_BUDGET: u64 = 4 << 20;
/// Copies are sent to the encoder in batches of about this many bytes.
const BATCH_BYTES: u64 = 256 * 1024;
/// A flat batch's buffer grows to at most this (a record is at most 1 KiB
/// plus its key), so that a full one is sent without slack.
const FLAT_CAPACITY: usize = BATCH_BYTES as usize + 4096;
/// The buckets a walker step visits (see [`Snapshot::step`]): a few
/// hundred keys at the tables' usual load (between 7/16 and 7/8 full), a
/// fraction of a segment past about 500 keys.
pub const WALK_STEP: usize = 512;
/// A walker step this long (wall time) is logged at debug level with the
/// CPU time it used.
const LONG_STEP: Duration = Duration::from_millis(2);
/// While clients keep the executor busy, the encoder runs in bursts of
/// this much CPU time (a write that arrives meanwhile may wait for the
/// rest of one on a shared core)...
const BURST: Duration = Duration::from_micros(500);
/// ...and sleeps between them so that, while few copies wait for it, it
/// uses this share (in %) of a CPU, leaving the rest of a core it shares
/// with the executor to the writes. The share grows with the copies
/// waiting (see [`duty_percent`]) and with the time the event loop leaves
/// its CPU idle (see [`Pacer::pace`]). With no client load it runs flat
/// out.
///
/// Whatever the pacing, the encoder must take every key once, so it spends
/// the same CPU on a save: the share decides over how long. Under the
/// bench's `-P 16` overwrite load (server on one core, saturated) a share
/// of 8% made the save take 4-5 s with SET throughput during it at 85% of
/// the rate without a save; at 1%, 11-12 s and 90-95% (single loaded
/// saves, alternating, throughput counted over the save alone; the
/// bench's figures are in `BENCHMARKS.md`). Writes then hand most keys
/// over as pre-images (1.88M of 2M), whose flow raises the share itself.
const BUSY_DUTY_PERCENT: u32 = 1;
/// The longest sleep between two bursts: below the share a
/// [`BURST`] and this give, bursts get shorter instead. The encoder looks
/// at the copies waiting only between bursts, and a flood of pre-images
/// must not wait long for it to speed up.
const MAX_REST: Duration = Duration::from_millis(10);
/// Of the share of time the event loop leaves its CPU idle, the encoder
/// takes all but this many points (see [`Pacer::pace`]).
const IDLE_MARGIN_PERCENT: u32 = 5;

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
    /// The most bytes the snapshot kept alive at once: copies waiting for
    /// the encoder, encoded bytes waiting for the disk, and the keys it
    /// must skip in segments not reached yet (INFO: rdb_last_cow_size).
    pub peak_pending: u64,
    /// Keys whose pre-image the executor copied, and encoded on the spot
    /// (over [`COPY_BUDGET`]); segments the walker copied.
    pub preimages_copied: u64,
    pub preimages_encoded: u64,
    /// Copies (by the walker or of pre-images) of small strings, made into
    /// flat batches, and of other keys, each an entry of its own.
    pub flat_copies: u64,
    pub boxed_copies: u64,
    /// Times a flat batch's buffer had to grow while filled.
    pub flat_grows: u64,
    /// The longest the executor spent on the snapshot in one walker step,
    /// or on one pre-image of a collection, in microseconds.
    pub longest_executor_us: u64,
    /// The executor's CPU time in the longest walker step, in
    /// microseconds: well under that step's wall time means the walker
    /// was preempted rather than busy.
    pub longest_step_cpu_us: u64,
    /// The executor's CPU time in walker steps, in microseconds.
    pub walker_cpu_us: u64,
    /// CPU time the encoder and writer threads used, in microseconds (the
    /// cost of a save to the core the executor shares with them).
    pub encoder_cpu_us: u64,
    pub writer_cpu_us: u64,
    /// Under client load: the encoder's sleeps while paced, and the pacing
    /// points (one per 64 keys) it passed unpaced.
    pub encoder_sleeps: u64,
    pub encoder_unpaced: u64,
    /// Times the encoder and the writer left their core to an event loop
    /// waiting for it ([`sched::yield_point`]).
    pub encoder_yields: u64,
    pub writer_yields: u64,
    /// Times the writer started the disk write of what it had written
    /// (every [`WRITEBACK_STEP`] bytes), ahead of the final fsync.
    pub writebacks: u64,
}

/// A running snapshot's memory and progress at one instant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Bytes of copies (and records encoded on the executor) waiting for
    /// the encoder.
    pub copies: u64,
    /// Encoded bytes waiting for the writer.
    pub encoded_pending: u64,
    /// Keys encoded so far.
    pub keys: u64,
    pub preimages_copied: u64,
    pub preimages_encoded: u64,
}

enum Msg {
    Data(Vec<u8>),
    Finish,
}

/// A `Write` that batches bytes into chunks for the writer thread.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: mpsc::SyncSender<Msg>,
    shared: Arc<Shared>,
}

impl ChunkWriter {
    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.shared
            .pending
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
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
        // The encoders write in pieces of up to a chunk (a big record too,
        // see `RdbWriter`): the encoder may leave its core between them.
        sched::yield_point();
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
    fn write_entry(&mut self, e: &Entry) -> Result<(), SnapshotError> {
        self.write_kv(&e.key, &e.value, e.expire_at)
    }
    fn write_kv(&mut self, key: &[u8], value: &Value, expire_at: u64) -> Result<(), SnapshotError>;
    /// Writes a string key from its bytes.
    fn write_str(&mut self, key: &[u8], value: &[u8], expire_at: u64) -> Result<(), SnapshotError> {
        let value = Value::Str(bytes::Bytes::copy_from_slice(value));
        self.write_kv(key, &value, expire_at)
    }
    /// Writes records made by [`Fragments::encode`].
    fn write_encoded(&mut self, records: &[u8]) -> Result<(), SnapshotError>;
    /// Writes the trailer and hands back the byte sink.
    fn finish(self: Box<Self>) -> Result<ChunkWriter, SnapshotError>;
}

impl Encoder for RdbWriter<ChunkWriter> {
    fn select_db(&mut self, db: usize, keys: u64, volatile: u64) -> Result<(), SnapshotError> {
        Ok(RdbWriter::select_db(self, db, keys, volatile)?)
    }

    fn write_kv(&mut self, key: &[u8], value: &Value, expire_at: u64) -> Result<(), SnapshotError> {
        Ok(RdbWriter::write_entry(self, key, value, expire_at)?)
    }

    fn write_str(&mut self, key: &[u8], value: &[u8], expire_at: u64) -> Result<(), SnapshotError> {
        Ok(RdbWriter::write_str_entry(self, key, value, expire_at)?)
    }

    fn write_encoded(&mut self, records: &[u8]) -> Result<(), SnapshotError> {
        Ok(RdbWriter::write_encoded(self, records)?)
    }

    fn finish(self: Box<Self>) -> Result<ChunkWriter, SnapshotError> {
        Ok(RdbWriter::finish(*self)?)
    }
}

/// The commands that recreate one key (nothing for a key already expired).
fn resp_record(buf: &mut Vec<u8>, e: &Entry, now_ms: u64) {
    resp_kv(buf, &e.key, &e.value, e.expire_at, now_ms);
}

fn resp_kv(buf: &mut Vec<u8>, key: &[u8], value: &Value, expire_at: u64, now_ms: u64) {
    if expire_at != 0 && expire_at <= now_ms {
        return;
    }
    resp_entry(buf, key, value);
    if expire_at != 0 {
        let at = expire_at.to_string();
        encode_command(buf, &[b"PEXPIREAT".as_slice(), key, at.as_bytes()]);
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

    fn write_kv(&mut self, key: &[u8], value: &Value, expire_at: u64) -> Result<(), SnapshotError> {
        resp_kv(&mut self.buf, key, value, expire_at, self.now_ms);
        self.spill()
    }

    fn write_encoded(&mut self, records: &[u8]) -> Result<(), SnapshotError> {
        self.buf.extend_from_slice(records);
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

/// Work for the encoder thread, in the order the executor produced it.
enum Work {
    /// Copies of entries, each with its database; `bytes` is what they were
    /// counted as in `copies`.
    Entries {
        items: Vec<(u32, EntryBox)>,
        bytes: u64,
    },
    /// Small strings copied into one buffer, counted as `bytes`.
    Flat { batch: FlatBatch, bytes: u64 },
    /// Records already encoded on the executor (`keys` of them).
    Encoded {
        db: u32,
        records: Vec<u8>,
        keys: u64,
    },
    /// Wakes an idle encoder: [`Shared::urgent`] has work.
    Urgent,
    /// The walk is complete: write the trailer and finish the file.
    Finish,
}

/// A copy the encoder takes ahead of the queue, with what it was counted
/// as in `copies`.
type UrgentCopy = (u32, EntryBox, u64);

/// Switches the encoder's output to a database when it is not the current one.
type SelectDb<'a> = dyn FnMut(&mut Box<dyn Encoder>, u32) -> Result<(), SnapshotError> + 'a;

/// Encodes one key on the executor, in the snapshot's format.
#[derive(Clone)]
enum Fragments {
    Rdb(SaveOptions),
    Resp { now_ms: u64 },
}

impl Fragments {
    fn encode(&self, buf: &mut Vec<u8>, e: &Entry) -> Result<(), SnapshotError> {
        match self {
            Fragments::Rdb(opts) => Ok(crate::rdb::encode::encode_entry(
                buf,
                &e.key,
                &e.value,
                e.expire_at,
                opts,
            )?),
            Fragments::Resp { now_ms } => {
                resp_record(buf, e, *now_ms);
                Ok(())
            }
        }
    }
}

/// Counters shared by the executor and the background threads.
#[derive(Default)]
struct Shared {
    /// Bytes of copies (and of records encoded on the executor) waiting
    /// for the encoder.
    copies: AtomicU64,
    /// Encoded bytes waiting for the writer.
    pending: AtomicU64,
    /// Keys encoded so far.
    keys: AtomicU64,
    /// The executor has client load: the encoder paces itself...
    busy: AtomicBool,
    /// ...while fewer than this many bytes of copies wait for it.
    unpaced_above: AtomicU64,
    /// Copies of big chunked collections, encoded ahead of the queue and
    /// unpaced: until encoded, such a copy keeps alive every chunk the live
    /// value replaces ([`crate::cow::kept_alive_bytes`]).
    urgent: Mutex<Vec<UrgentCopy>>,
    /// Urgent copies encoded so far.
    urgent_done: AtomicU64,
    /// CPU time of the encoder and writer threads once they are done (µs).
    encoder_cpu_us: AtomicU64,
    writer_cpu_us: AtomicU64,
    encoder_sleeps: AtomicU64,
    encoder_yields: AtomicU64,
    writer_yields: AtomicU64,
    encoder_unpaced: AtomicU64,
    /// Early write-backs the writer started ([`WRITEBACK_STEP`]).
    writebacks: AtomicU64,
    /// Set by the encoder when it failed; the error is in `error`.
    failed: AtomicBool,
    error: Mutex<Option<SnapshotError>>,
}

/// What a value copy keeps alive, roughly: a string's bytes (shared until
/// the executor overwrites the key, then kept alive by the copy alone), or
/// a collection's element headers. Lists, sets and sorted sets share their
/// chunks with the live value: the copy costs its chunk pointers, and the
/// chunks the live value replaces later are counted apart
/// ([`crate::cow::kept_alive_bytes`]).
fn copy_cost(e: &Entry) -> u64 {
    let v = match &e.value {
        Value::Str(b) => b.len(),
        Value::List(l) => 64 + l.items.node_count() * 24,
        Value::Hash(h) => match h.map.as_table() {
            Some(t) => 64 + t.shard_count() * 24,
            None => h.map.len() * 80,
        },
        Value::Set(s) => 64 + s.members.as_map().shard_count() * 24,
        Value::ZSet(z) => 64 + z.chunk_count() * 24,
        Value::Stream(s) => s.len() * 96,
    };
    (e.key.len() + 64 + v) as u64
}

/// Whether a value is made of chunks shared copy-on-write: its copy is a
/// few pointers a chunk, whatever its size.
fn is_chunked(v: &Value) -> bool {
    match v {
        Value::List(_) | Value::ZSet(_) | Value::Set(_) => true,
        Value::Hash(h) => h.map.is_table(),
        Value::Str(_) | Value::Stream(_) => false,
    }
}

/// The bytes of a string small enough to be copied into a [`FlatBatch`].
fn flat_str(e: &Entry) -> Option<&[u8]> {
    match &e.value {
        Value::Str(b) if b.len() <= DEEP_COPY_MAX => Some(b),
        _ => None,
    }
}

/// The executor side of a snapshot: copies entries, batches them and hands
/// them to the encoder thread. Never blocks.
struct Feeder {
    tx: Option<mpsc::Sender<Work>>,
    batch: Vec<(u32, EntryBox)>,
    batch_bytes: u64,
    /// Small strings, copied byte for byte.
    flat: FlatBatch,
    flat_bytes: u64,
    shared: Arc<Shared>,
    fragments: Fragments,
    /// Pre-images encoded on the spot, per database, not sent yet.
    encoded: Vec<u8>,
    encoded_db: u32,
    encoded_keys: u64,
    error: Option<SnapshotError>,
    preimages_copied: u64,
    preimages_encoded: u64,
    /// Keys copied into flat batches, and as entries of their own.
    flat_copies: u64,
    boxed_copies: u64,
    /// Times a flat batch's buffer grew (and was copied) while filled.
    flat_grows: u64,
    copy_budget: u64,
    /// Longest pre-image of a collection (strings are not timed).
    longest_preimage: Duration,
}

impl Feeder {
    /// Whether a pre-image of `v` is copied (else encoded on the spot):
    /// while the copies waiting take less than the copy budget, and always
    /// for a chunked collection. Encoded here, a million-element one would
    /// hold the executor for the whole of its encoding (tens of ms); its
    /// copy costs a few pointers a chunk, and the encoder takes it first.
    fn copies(&self, v: &Value) -> bool {
        self.shared.copies.load(Ordering::Relaxed) < self.copy_budget || is_chunked(v)
    }

    fn send(&mut self, w: Work) {
        if let Some(tx) = &self.tx {
            // A closed channel means the encoder stopped on an error, which
            // `Snapshot::step` reports.
            let _ = tx.send(w);
        }
    }

    fn flush_encoded(&mut self) {
        if self.encoded_keys > 0 {
            let records = std::mem::take(&mut self.encoded);
            let (db, keys) = (self.encoded_db, self.encoded_keys);
            self.encoded_keys = 0;
            // Counted with the copies until the encoder has taken them.
            self.shared
                .copies
                .fetch_add(records.len() as u64, Ordering::Relaxed);
            self.send(Work::Encoded { db, records, keys });
        }
    }

    fn flush_batch(&mut self) {
        if !self.batch.is_empty() {
            let items = std::mem::take(&mut self.batch);
            let bytes = std::mem::take(&mut self.batch_bytes);
            self.send(Work::Entries { items, bytes });
        }
    }

    fn flush_flat(&mut self) {
        if self.flat.keys() > 0 {
            let next = self.flat.next();
            let mut batch = std::mem::replace(&mut self.flat, next);
            batch.trim();
            self.flat_grows += u64::from(batch.grows());
            let bytes = std::mem::take(&mut self.flat_bytes);
            self.send(Work::Flat { batch, bytes });
        }
    }

    /// Sends everything buffered. Each key is handed over once, so the
    /// order between the buffers does not matter to the file's contents.
    fn flush(&mut self) {
        // Copies and encoded records never wait in both buffers at once:
        // switching from one to the other flushes the first.
        self.flush_batch();
        self.flush_flat();
        self.flush_encoded();
    }

    /// Queues a copy of `e` that leaves it as it was: small strings are
    /// copied into the flat batch, larger values shared.
    fn push_copy(&mut self, db: usize, e: &Entry) {
        let Some(value) = flat_str(e) else {
            self.push_owned(db, EntryBox::copy_of(e));
            return;
        };
        let cost = FlatBatch::record_bytes(e.key(), value);
        self.shared.copies.fetch_add(cost, Ordering::Relaxed);
        self.flat.push(db as u32, e.key(), value, e.expire_at);
        self.flat_bytes += cost;
        self.flat_copies += 1;
        if self.flat.len() as u64 >= BATCH_BYTES {
            self.flush_flat();
        }
    }

    /// Queues an entry the live keyspace no longer shares anything with
    /// but what [`detached_copy`] allows.
    fn push_owned(&mut self, db: usize, e: EntryBox) {
        self.boxed_copies += 1;
        let cost = copy_cost(&e);
        self.shared.copies.fetch_add(cost, Ordering::Relaxed);
        // A chunked collection's copy pins every chunk the live value
        // replaces from now on: it goes ahead of the queued copies.
        if is_chunked(&e.value) && self.tx.is_some() {
            self.shared
                .urgent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((db as u32, e, cost));
            self.send(Work::Urgent);
            return;
        }
        self.flush_encoded();
        self.batch.push((db as u32, e));
        self.batch_bytes += cost;
        if self.batch_bytes >= BATCH_BYTES {
            self.flush_batch();
        }
    }

    fn push_encoded(&mut self, db: usize, e: &Entry) {
        self.flush_batch();
        if self.encoded_keys > 0 && self.encoded_db != db as u32 {
            self.flush_encoded();
        }
        self.encoded_db = db as u32;
        if let Err(err) = self.fragments.encode(&mut self.encoded, e) {
            self.error.get_or_insert(err);
            return;
        }
        self.encoded_keys += 1;
        if self.encoded.len() >= CHUNK {
            self.flush_encoded();
        }
    }
}

impl SegmentSink for Feeder {
    fn save_entry(&mut self, db: usize, e: &Entry) {
        if self.tx.is_none() {
            return;
        }
        let started = (!matches!(e.value, crate::Value::Str(_))).then(Instant::now);
        if self.copies(&e.value) {
            self.preimages_copied += 1;
            self.push_copy(db, e);
        } else {
            self.preimages_encoded += 1;
            self.push_encoded(db, e);
        }
        if let Some(t) = started {
            self.longest_preimage = self.longest_preimage.max(t.elapsed());
        }
    }

    fn takes_owned(&self, e: &Entry) -> bool {
        // A small string is copied into the flat batch and its old value
        // freed by the executor, as a write without a snapshot frees it.
        flat_str(e).is_none() && self.tx.is_some() && self.copies(&e.value)
    }

    fn save_owned(&mut self, db: usize, entry: EntryBox) {
        if self.tx.is_none() {
            return;
        }
        if self.copies(&entry.value) {
            self.preimages_copied += 1;
            self.push_owned(db, entry);
        } else {
            // The encoder is behind: encoded here, the pre-image is freed
            // now rather than queued.
            self.preimages_encoded += 1;
            self.push_encoded(db, &entry);
        }
    }

    fn save_segment(&mut self, db: usize, entries: &mut dyn Iterator<Item = &Entry>) {
        if self.tx.is_none() {
            return;
        }
        for e in entries {
            self.push_copy(db, e);
        }
    }
}

/// A running background snapshot.
pub struct Snapshot {
    pub epoch: u64,
    pub lsn: u64,
    pub started: Instant,
    pub target: PathBuf,
    feeder: Arc<Mutex<Feeder>>,
    shared: Arc<Shared>,
    peak: u64,
    walk_budget: u64,
    /// The budgets were set for this snapshot ([`Snapshot::size_budgets`]).
    budgets_sized: bool,
    longest_executor: Duration,
    /// The executor's CPU time in the longest step.
    longest_step_cpu: Duration,
    /// The executor's CPU time in walker steps, all told.
    walker_cpu: Duration,
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
    /// Start the disk write of every [`WRITEBACK_STEP`] bytes as the file
    /// is written (`rdb-save-incremental-fsync` for a BGSAVE,
    /// `aof-rewrite-incremental-fsync` for an AOF base); off, the final
    /// fsync writes the whole file back.
    pub incremental_fsync: bool,
    /// The event loop the encoder gives its core to when the loop waits
    /// for it ([`sched::yield_point`]); `None`: it never does.
    pub event_loop: Option<sched::EventLoopState>,
    /// The CPUs the encoder and writer run on (`bgsave_cpulist`,
    /// `aof_rewrite_cpulist`); `None`: those of the thread that starts the
    /// snapshot.
    pub cpus: Option<CpuList>,
}

/// Pins a snapshot thread to `cpus`, if given. A list the thread cannot
/// run on is logged and left: the save goes on where it would have run.
fn pin_to(cpus: Option<&CpuList>) {
    if let Some(list) = cpus {
        if let Err(e) = list.pin_current_thread() {
            tracing::warn!("Can't set the snapshot threads' CPU affinity to {list}: {e}");
        }
    }
}

/// CPU time the calling thread has used (Linux); elsewhere wall time.
fn thread_cpu() -> Duration {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec for the duration of
        // the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        }
    }
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

/// Bytes of copies waiting past which the encoder stops pacing itself:
/// half the copy budget, so that it catches up before the executor has to
/// encode pre-images itself.
const fn unpaced_above(copy_budget: u64) -> u64 {
    copy_budget / 2
}

/// Bytes of copies waiting up to which the encoder keeps to
/// [`BUSY_DUTY_PERCENT`], of `unpaced_above` (see [`duty_percent`]).
const fn paced_below(unpaced_above: u64) -> u64 {
    unpaced_above / 4
}

/// The encoder's share of a CPU (in %) while `copies` bytes wait for it,
/// of `unpaced_above` past which it runs flat out: [`BUSY_DUTY_PERCENT`]
/// up to a quarter of that, then rising linearly to 100%.
///
/// An overwrite load hands the encoder pre-images at its own rate, so the
/// encoder must keep up on average whatever its pacing; what the pacing
/// decides is how smoothly. With one fixed share below the limit and none
/// above it, the queue sat at the limit and the encoder ran unpaced for
/// most keys (20,000 of 21,000 pacing points in a loaded 2M-key save), in
/// stretches of many milliseconds in which the executor had half its core:
/// one write in a hundred then waited 7 ms. Rising with the queue, the
/// share settles where it matches the load, in 0.5 ms bursts.
fn duty_percent(copies: u64, unpaced_above: u64) -> u32 {
    let floor = paced_below(unpaced_above);
    if copies <= floor {
        return BUSY_DUTY_PERCENT;
    }
    let span = (unpaced_above - floor).max(1);
    let over = (copies - floor).min(span);
    BUSY_DUTY_PERCENT + ((100 - BUSY_DUTY_PERCENT) as u64 * over / span) as u32
}

/// A burst of CPU time and the sleep after it that give the encoder
/// `duty`% of a CPU: [`BURST`]s, or shorter ones where the sleep would be
/// longer than [`MAX_REST`].
fn burst_and_rest(duty: u32) -> (Duration, Duration) {
    let duty = duty.clamp(1, 100);
    let rest = BURST * (100 - duty) / duty;
    if rest <= MAX_REST {
        return (BURST, rest);
    }
    (MAX_REST * duty / (100 - duty), MAX_REST)
}

/// Keeps the encoder to its [`duty_percent`] of a CPU while the executor
/// reports client load ([`Snapshot::set_busy`]).
struct Pacer {
    burst_start: Duration,
    /// CPU time of the current burst.
    burst: Duration,
    /// Sleeps taken while paced, and pacing points passed unpaced.
    sleeps: u64,
    unpaced: u64,
}

impl Pacer {
    fn new() -> Pacer {
        Pacer {
            burst_start: thread_cpu(),
            burst: BURST,
            sleeps: 0,
            unpaced: 0,
        }
    }

    fn pace(&mut self, shared: &Shared) {
        if !shared.busy.load(Ordering::Relaxed) {
            return;
        }
        // Past the limit the encoder runs flat out, writes or not: the
        // bytes waiting for it are what bounds the snapshot's memory, and
        // the executor keeps producing pre-images whatever its pace. (It
        // used to yield the CPU every 0.25 ms then: the queue outgrew the
        // copy budget and the save's extra RSS doubled, 6% -> 10-12%.)
        let copies = shared.copies.load(Ordering::Relaxed);
        let limit = shared.unpaced_above.load(Ordering::Relaxed);
        if copies >= limit {
            self.unpaced += 1;
            return;
        }
        let ran = thread_cpu().saturating_sub(self.burst_start);
        if ran >= self.burst {
            // Client load does not mean a saturated core: what the event
            // loop leaves idle, the encoder takes (less a margin), so that
            // a light load does not stretch a save as a heavy one does.
            let idle = sched::loop_idle_percent().unwrap_or(0);
            let duty = duty_percent(copies, limit).max(idle.saturating_sub(IDLE_MARGIN_PERCENT));
            let (burst, rest) = burst_and_rest(duty);
            if !rest.is_zero() {
                std::thread::sleep(rest);
                self.sleeps += 1;
            }
            self.burst = burst;
            self.burst_start = thread_cpu();
        }
    }
}

impl Snapshot {
    /// Starts a snapshot of `ks` at this instant: hooks every database and
    /// starts the encoder and writer threads. The temp file is created
    /// before returning, so a directory that cannot be written fails here.
    pub fn start(ks: &mut Keyspace, spec: SnapshotSpec) -> Result<Snapshot, SnapshotError> {
        let dir = parent_dir(&spec.target);
        let temp = dir.join(format!("temp-{}-{}.rdb", std::process::id(), spec.epoch));
        let file = spec
            .storage
            .create_bulk(&temp)
            .map_err(|source| SnapshotError::Io {
                op: "create",
                path: temp.display().to_string(),
                source,
            })?;
        let (tx, rx) = mpsc::sync_channel(WRITE_QUEUE_CHUNKS);
        let (res_tx, res_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            unpaced_above: AtomicU64::new(unpaced_above(COPY_BUDGET)),
            ..Shared::default()
        });
        let chunk_writer = ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
            shared: shared.clone(),
        };
        let writer_shared = shared.clone();
        let (encoder, fragments): (Box<dyn Encoder>, Fragments) = match spec.format {
            SnapshotFormat::Rdb(mut opts) => {
                opts.extra_aux.push((
                    LSN_AUX.as_bytes().to_vec(),
                    spec.lsn.to_string().into_bytes(),
                ));
                let fragments = Fragments::Rdb(opts.clone());
                (Box::new(RdbWriter::new(chunk_writer, opts)?), fragments)
            }
            SnapshotFormat::Resp { now_ms, timestamp } => {
                let mut buf = Vec::with_capacity(CHUNK);
                if let Some(ts) = timestamp {
                    encode_annotation(&mut buf, ts);
                }
                (
                    Box::new(RespEncoder {
                        out: chunk_writer,
                        buf,
                        now_ms,
                    }),
                    Fragments::Resp { now_ms },
                )
            }
        };
        let storage = spec.storage.clone();
        let target = spec.target.clone();
        let incremental_fsync = spec.incremental_fsync;
        let spawn_err = |source| SnapshotError::Io {
            op: "spawn writer for",
            path: spec.target.display().to_string(),
            source,
        };
        let writer_loop = spec.event_loop.clone();
        let writer_cpus = spec.cpus.clone();
        std::thread::Builder::new()
            .name("snapshot-writer".into())
            .spawn(move || {
                pin_to(writer_cpus.as_ref());
                if let Some(event_loop) = writer_loop {
                    sched::yield_to(event_loop);
                }
                let r = write_file(
                    &*storage,
                    file,
                    &temp,
                    &target,
                    rx,
                    &writer_shared.pending,
                    incremental_fsync.then_some(&writer_shared.writebacks),
                );
                let cpu = thread_cpu().as_micros() as u64;
                writer_shared.writer_cpu_us.store(cpu, Ordering::Relaxed);
                writer_shared
                    .writer_yields
                    .store(sched::yields(), Ordering::Relaxed);
                if r.is_err() {
                    let _ = storage.remove(&temp);
                }
                let _ = res_tx.send(r);
            })
            .map_err(spawn_err)?;
        let sizes: Vec<(u64, u64)> = ks
            .dbs
            .iter()
            .map(|d| (d.len() as u64, d.volatile_len() as u64))
            .collect();
        let (work_tx, work_rx) = mpsc::channel();
        let enc_shared = shared.clone();
        let event_loop = spec.event_loop.clone();
        let encoder_cpus = spec.cpus.clone();
        std::thread::Builder::new()
            .name("snapshot-encoder".into())
            .spawn(move || {
                pin_to(encoder_cpus.as_ref());
                if let Some(event_loop) = event_loop {
                    sched::yield_to(event_loop);
                }
                encode_loop(encoder, &sizes, work_rx, &enc_shared);
            })
            .map_err(spawn_err)?;
        let feeder = Arc::new(Mutex::new(Feeder {
            tx: Some(work_tx),
            batch: Vec::new(),
            batch_bytes: 0,
            flat: FlatBatch::new(FLAT_CAPACITY),
            flat_bytes: 0,
            shared: shared.clone(),
            fragments,
            encoded: Vec::new(),
            encoded_db: 0,
            encoded_keys: 0,
            error: None,
            preimages_copied: 0,
            preimages_encoded: 0,
            flat_copies: 0,
            boxed_copies: 0,
            flat_grows: 0,
            copy_budget: COPY_BUDGET,
            longest_preimage: Duration::ZERO,
        }));
        let dyn_sink: Arc<Mutex<dyn SegmentSink>> = feeder.clone();
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
            feeder,
            shared,
            peak: 0,
            walk_budget: WALK_BUDGET,
            budgets_sized: false,
            longest_executor: Duration::ZERO,
            longest_step_cpu: Duration::ZERO,
            walker_cpu: Duration::ZERO,
            result: res_rx,
            next_db: 0,
            walk_done: false,
        })
    }

    /// Bytes the snapshot holds now outside the keyspace: copies waiting
    /// for the encoder and encoded bytes waiting for the disk.
    pub fn pending_bytes(&self) -> u64 {
        self.shared.copies.load(Ordering::Relaxed)
            + self.shared.pending_bytes()
            + crate::cow::kept_alive_bytes()
    }

    pub fn peak_pending(&self) -> u64 {
        self.peak
    }

    /// Where the snapshot's memory is now (for progress logs and INFO).
    pub fn progress(&self) -> Progress {
        let (copied, encoded) = self
            .feeder
            .lock()
            .map(|f| (f.preimages_copied, f.preimages_encoded))
            .unwrap_or_default();
        Progress {
            copies: self.shared.copies.load(Ordering::Relaxed),
            encoded_pending: self.shared.pending_bytes(),
            keys: self.keys_done(),
            preimages_copied: copied,
            preimages_encoded: encoded,
        }
    }

    /// Keys serialized so far.
    pub fn keys_done(&self) -> u64 {
        self.shared.keys.load(Ordering::Relaxed)
    }

    /// Whether the walker is waiting for the encoder to catch up (calling
    /// [`Snapshot::step`] again right away would do nothing).
    pub fn waiting(&self) -> bool {
        !self.walk_done && self.shared.copies.load(Ordering::Relaxed) >= self.walk_budget
    }

    /// Whether the executor has nothing to do for the snapshot now: the
    /// walker waits for the encoder, or the walk is over and the encoder
    /// and writer are finishing the file. Polling it then only takes CPU
    /// from them when they share a core with the executor.
    pub fn executor_idle(&self) -> bool {
        self.walk_done || self.waiting()
    }

    /// Tells the encoder whether clients keep the executor busy (it then
    /// paces itself, see [`Pacer`]) or not (flat out).
    pub fn set_busy(&self, busy: bool) {
        self.shared.busy.store(busy, Ordering::Relaxed);
    }

    /// Scales the budgets to a dataset of `dataset_bytes`: the copies
    /// waiting for the encoder stay within about a tenth of it (a twentieth
    /// before the encoder stops pacing itself), between [`MIN_COPY_BUDGET`]
    /// and the defaults. The defaults alone were a quarter of a 180 MiB
    /// dataset.
    pub fn size_budgets(&mut self, dataset_bytes: u64) {
        let copy = (dataset_bytes / 10).clamp(MIN_COPY_BUDGET, COPY_BUDGET);
        self.set_budgets(paced_below(unpaced_above(copy)), copy);
    }

    /// Whether the budgets were set for this snapshot.
    pub fn budgets_sized(&self) -> bool {
        self.budgets_sized
    }

    /// Overrides [`WALK_BUDGET`] and [`COPY_BUDGET`] (tests use tiny ones
    /// to drive every path).
    pub fn set_budgets(&mut self, walk: u64, copy: u64) {
        self.budgets_sized = true;
        self.walk_budget = walk;
        self.shared
            .unpaced_above
            .store(unpaced_above(copy), Ordering::Relaxed);
        if let Ok(mut f) = self.feeder.lock() {
            f.copy_budget = copy;
        }
    }

    /// Walks up to `max_buckets` buckets of the keyspace's tables (see
    /// [`WALK_STEP`]), copying their entries for the encoder while it keeps
    /// up. When the walk completes, the encoder is told to finish the file
    /// (EOF and checksum) and hand it to the writer to make durable.
    /// Returns true once the walk is complete.
    pub fn step(&mut self, ks: &mut Keyspace, max_buckets: usize) -> Result<bool, SnapshotError> {
        let started = Instant::now();
        let cpu = thread_cpu();
        let r = self.step_inner(ks, max_buckets);
        let took = started.elapsed();
        let cpu = thread_cpu().saturating_sub(cpu);
        self.walker_cpu += cpu;
        if took > self.longest_executor {
            self.longest_executor = took;
            // Wall time counts preemption by other threads too: the CPU
            // time says how much of the step was the walker's own work.
            self.longest_step_cpu = cpu;
        }
        if took >= LONG_STEP {
            tracing::debug!(
                wall_us = took.as_micros() as u64,
                cpu_us = cpu.as_micros() as u64,
                "long snapshot step"
            );
        }
        self.peak = self.peak.max(self.pending_bytes());
        r
    }

    fn step_inner(&mut self, ks: &mut Keyspace, max_buckets: usize) -> Result<bool, SnapshotError> {
        if self.walk_done {
            return Ok(true);
        }
        let feeder_error = self.feeder.lock().ok().and_then(|mut f| f.error.take());
        if let Some(e) = feeder_error.or_else(|| self.shared.take_error()) {
            self.abort(ks);
            return Err(e);
        }
        let mut budget = max_buckets.max(1);
        while self.next_db < ks.dbs.len() && budget > 0 && !self.waiting() {
            if ks.dbs[self.next_db].snapshot_step(&mut budget) {
                self.next_db += 1;
            }
        }
        if let Ok(mut f) = self.feeder.lock() {
            f.flush();
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
        if let Ok(mut f) = self.feeder.lock() {
            f.flush();
            f.send(Work::Finish);
            // The encoder needs nothing more from the executor.
            f.tx = None;
        }
        Ok(true)
    }

    /// Runs the snapshot to its end on the calling thread (SAVE, shutdown,
    /// tests): walks, sleeping briefly whenever the encoder is behind, then
    /// waits for the file to be durable.
    pub fn run_to_end(&mut self, ks: &mut Keyspace) -> Result<SaveReport, SnapshotError> {
        while !self.step(ks, usize::MAX)? {
            if self.waiting() {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        self.wait()
    }

    /// The writer's verdict, once it has one: Some(Ok(report)) when the new
    /// file is durable under its final name.
    pub fn poll(&mut self) -> Option<Result<SaveReport, SnapshotError>> {
        // After the walk the encoder and writer still hold bytes.
        self.peak = self.peak.max(self.pending_bytes());
        let r = self.result.try_recv().ok()?;
        Some(self.verdict(r))
    }

    /// Blocks until the writer finishes (SAVE, shutdown).
    pub fn wait(&mut self) -> Result<SaveReport, SnapshotError> {
        match self.result.recv() {
            Ok(r) => self.verdict(r),
            Err(_) => Err(self.shared.take_error().unwrap_or(SnapshotError::Aborted)),
        }
    }

    fn verdict(&mut self, r: Result<u64, SnapshotError>) -> Result<SaveReport, SnapshotError> {
        match r {
            Ok(bytes) => Ok(self.report(bytes)),
            // The writer only sees a closed channel when the encoder failed.
            Err(SnapshotError::Aborted) => {
                Err(self.shared.take_error().unwrap_or(SnapshotError::Aborted))
            }
            Err(e) => Err(e),
        }
    }

    fn report(&self, bytes: u64) -> SaveReport {
        let (copied, encoded, flat, boxed, flat_grows, longest_preimage) = self
            .feeder
            .lock()
            .map(|f| {
                (
                    f.preimages_copied,
                    f.preimages_encoded,
                    f.flat_copies,
                    f.boxed_copies,
                    f.flat_grows,
                    f.longest_preimage,
                )
            })
            .unwrap_or_default();
        SaveReport {
            bytes,
            keys: self.keys_done(),
            lsn: self.lsn,
            duration: self.started.elapsed(),
            peak_pending: self.peak,
            preimages_copied: copied,
            preimages_encoded: encoded,
            flat_copies: flat,
            boxed_copies: boxed,
            flat_grows,
            longest_executor_us: self.longest_executor.max(longest_preimage).as_micros() as u64,
            longest_step_cpu_us: self.longest_step_cpu.as_micros() as u64,
            walker_cpu_us: self.walker_cpu.as_micros() as u64,
            encoder_cpu_us: self.shared.encoder_cpu_us.load(Ordering::Relaxed),
            writer_cpu_us: self.shared.writer_cpu_us.load(Ordering::Relaxed),
            encoder_sleeps: self.shared.encoder_sleeps.load(Ordering::Relaxed),
            encoder_yields: self.shared.encoder_yields.load(Ordering::Relaxed),
            writer_yields: self.shared.writer_yields.load(Ordering::Relaxed),
            encoder_unpaced: self.shared.encoder_unpaced.load(Ordering::Relaxed),
            writebacks: self.shared.writebacks.load(Ordering::Relaxed),
        }
    }

    /// Stops the snapshot: hooks removed, encoder and writer told to give
    /// up (the writer removes the temp file).
    pub fn abort(&mut self, ks: &mut Keyspace) {
        for db in ks.dbs.iter_mut() {
            db.abort_snapshot();
        }
        if let Ok(mut f) = self.feeder.lock() {
            // Dropping the channel stops the encoder, which drops its byte
            // sink: the writer sees the disconnect before any Finish and
            // discards the temp file.
            f.tx = None;
            f.batch.clear();
            f.flat = FlatBatch::new(0);
            f.encoded.clear();
        }
        self.walk_done = true;
    }
}

impl Shared {
    fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    fn take_error(&self) -> Option<SnapshotError> {
        if !self.failed.load(Ordering::Acquire) {
            return None;
        }
        self.error.lock().ok().and_then(|mut e| e.take())
    }

    fn fail(&self, e: SnapshotError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
        self.failed.store(true, Ordering::Release);
    }
}

/// The encoder thread: turns copies into file bytes in the order the
/// executor produced them, and finishes the file on [`Work::Finish`].
fn encode_loop(
    mut enc: Box<dyn Encoder>,
    sizes: &[(u64, u64)],
    rx: mpsc::Receiver<Work>,
    shared: &Shared,
) {
    let mut pacer = Pacer::new();
    let mut current_db: Option<u32> = None;
    let mut select = |enc: &mut Box<dyn Encoder>, db: u32| -> Result<(), SnapshotError> {
        if current_db != Some(db) {
            let (n, v) = sizes.get(db as usize).copied().unwrap_or((0, 0));
            enc.select_db(db as usize, n, v)?;
            current_db = Some(db);
        }
        Ok(())
    };
    // Encodes the urgent copies waiting, without pacing.
    let urgent = |enc: &mut Box<dyn Encoder>, select: &mut SelectDb| -> Result<(), SnapshotError> {
        loop {
            let next = shared
                .urgent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop();
            let Some((db, mut e, cost)) = next else {
                return Ok(());
            };
            let r = select(enc, db).and_then(|()| enc.write_entry(&e));
            // A big copy's chunks go one at a time, with yield points.
            let value = std::mem::replace(&mut e.value, Value::Str(bytes::Bytes::new()));
            drop(e);
            value.drop_by_chunk(&mut sched::yield_point);
            shared.copies.fetch_sub(cost, Ordering::Relaxed);
            shared.keys.fetch_add(1, Ordering::Relaxed);
            shared.urgent_done.fetch_add(1, Ordering::Relaxed);
            r?;
        }
    };
    loop {
        if let Err(e) = urgent(&mut enc, &mut select) {
            shared.fail(e);
            return;
        }
        let r = match rx.recv() {
            Ok(Work::Urgent) => Ok(()),
            Ok(Work::Entries { items, bytes }) => {
                let (r, n) = encode_batch(
                    &items,
                    &mut enc,
                    &mut select,
                    &urgent,
                    &mut pacer,
                    shared,
                    |enc, select, (db, e)| select(enc, *db).and_then(|()| enc.write_entry(e)),
                );
                drop(items);
                shared.copies.fetch_sub(bytes, Ordering::Relaxed);
                shared.keys.fetch_add(n, Ordering::Relaxed);
                r
            }
            Ok(Work::Flat { batch, bytes }) => {
                let (r, n) = encode_batch(
                    batch.records(),
                    &mut enc,
                    &mut select,
                    &urgent,
                    &mut pacer,
                    shared,
                    |enc, select, rec| {
                        select(enc, rec.db)
                            .and_then(|()| enc.write_str(rec.key, rec.value, rec.expire_at))
                    },
                );
                drop(batch);
                shared.copies.fetch_sub(bytes, Ordering::Relaxed);
                shared.keys.fetch_add(n, Ordering::Relaxed);
                r
            }
            Ok(Work::Encoded { db, records, keys }) => {
                let r = select(&mut enc, db).and_then(|()| enc.write_encoded(&records));
                shared
                    .copies
                    .fetch_sub(records.len() as u64, Ordering::Relaxed);
                shared.keys.fetch_add(keys, Ordering::Relaxed);
                r
            }
            Ok(Work::Finish) => {
                // Everything sent before Finish, urgent copies included.
                let r = urgent(&mut enc, &mut select).and_then(|()| enc.finish());
                let r = r.and_then(|mut cw| {
                    cw.flush().map_err(|source| SnapshotError::Io {
                        op: "write",
                        path: "snapshot".into(),
                        source,
                    })?;
                    // Before the writer can report the save done.
                    let cpu = thread_cpu().as_micros() as u64;
                    shared.encoder_cpu_us.store(cpu, Ordering::Relaxed);
                    shared.encoder_sleeps.store(pacer.sleeps, Ordering::Relaxed);
                    shared
                        .encoder_yields
                        .store(sched::yields(), Ordering::Relaxed);
                    shared
                        .encoder_unpaced
                        .store(pacer.unpaced, Ordering::Relaxed);
                    let _ = cw.tx.send(Msg::Finish);
                    Ok(())
                });
                if let Err(e) = r {
                    shared.fail(e);
                }
                return;
            }
            // The snapshot was aborted: dropping `enc` drops the writer's
            // channel, and the writer discards the temp file.
            Err(_) => return,
        };
        if let Err(e) = r {
            shared.fail(e);
            return;
        }
        pacer.pace(shared);
    }
}

/// Encodes a batch of copies one key at a time with `write`; every 64 keys
/// it serves the urgent copies first and paces itself. Returns the outcome
/// and the number of keys written.
fn encode_batch<T>(
    items: impl IntoIterator<Item = T>,
    enc: &mut Box<dyn Encoder>,
    select: &mut SelectDb,
    urgent: &impl Fn(&mut Box<dyn Encoder>, &mut SelectDb) -> Result<(), SnapshotError>,
    pacer: &mut Pacer,
    shared: &Shared,
    mut write: impl FnMut(&mut Box<dyn Encoder>, &mut SelectDb, T) -> Result<(), SnapshotError>,
) -> (Result<(), SnapshotError>, u64) {
    let mut n = 0;
    for item in items {
        if let Err(e) = write(enc, select, item) {
            return (Err(e), n);
        }
        n += 1;
        if n % 64 == 0 {
            if let Err(e) = urgent(enc, select) {
                return (Err(e), n);
            }
            pacer.pace(shared);
            // 64 small keys take tens of µs; the writes of the encoded
            // bytes, the other yield points, come only every 256 KiB.
            sched::yield_point();
        }
    }
    (Ok(()), n)
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
    // With incremental fsync: where the early write-backs are counted.
    writebacks: Option<&AtomicU64>,
) -> Result<u64, SnapshotError> {
    let io_err = |op: &'static str, p: &Path| {
        let path = p.display().to_string();
        move |source| SnapshotError::Io { op, path, source }
    };
    let mut written = 0u64;
    // Bytes handed to the disk so far by `start_writeback`.
    let mut kicked = 0u64;
    loop {
        match rx.recv() {
            Ok(Msg::Data(chunk)) => {
                let n = chunk.len() as u64;
                let r = file.write_all(&chunk);
                pending.fetch_sub(n, Ordering::Relaxed);
                r.map_err(io_err("write", temp))?;
                written += n;
                if let Some(writebacks) = writebacks.filter(|_| written - kicked >= WRITEBACK_STEP)
                {
                    // Only an early start: the fsync below is what makes
                    // the file durable, and reports any error.
                    if let Err(e) = file.start_writeback(kicked, written - kicked) {
                        tracing::debug!("snapshot write-back of {}: {e}", temp.display());
                    }
                    writebacks.fetch_add(1, Ordering::Relaxed);
                    kicked = written;
                }
                // With chunks queued the writer would write them back to
                // back: perf sched showed runs of 1-2 ms of such writes
                // while the executor sharing its core was runnable. After
                // each chunk it may leave the core to the event loop, as
                // the encoder does (`sched::yield_point`).
                sched::yield_point();
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
            incremental_fsync: true,
            event_loop: None,
            cpus: None,
        }
    }

    /// The encoder's share is the floor while a quarter of the limit or
    /// less waits, then rises with the queue, never falling, to all of a
    /// CPU at the limit.
    #[test]
    fn the_encoder_share_rises_with_the_copies_waiting() {
        let limit = 24 << 20;
        assert_eq!(duty_percent(0, limit), BUSY_DUTY_PERCENT);
        assert_eq!(duty_percent(limit / 4, limit), BUSY_DUTY_PERCENT);
        assert_eq!(duty_percent(limit, limit), 100);
        assert_eq!(duty_percent(2 * limit, limit), 100);
        let mid = duty_percent(limit / 4 + (limit - limit / 4) / 2, limit);
        assert_eq!(mid, BUSY_DUTY_PERCENT + (100 - BUSY_DUTY_PERCENT) / 2);
        let shares: Vec<u32> = (0..=64)
            .map(|i| duty_percent(limit * i / 64, limit))
            .collect();
        assert!(shares.windows(2).all(|w| w[0] <= w[1]), "{shares:?}");
        // A limit too small to split still gives a share in range.
        assert_eq!(duty_percent(1, 1), 100);
        assert_eq!(duty_percent(0, 0), BUSY_DUTY_PERCENT);
    }

    /// Bursts and sleeps give the share asked for; below what a full burst
    /// and the longest sleep give, the bursts shrink.
    #[test]
    fn bursts_and_rests_give_the_share() {
        assert_eq!(burst_and_rest(100), (BURST, Duration::ZERO));
        assert_eq!(burst_and_rest(200), (BURST, Duration::ZERO));
        for duty in [0u32, 1, 2, 4, 5, 8, 20, 50, 99] {
            let (burst, rest) = burst_and_rest(duty);
            assert!(rest <= MAX_REST, "{duty}%: rest {rest:?}");
            assert!(
                burst <= BURST && !burst.is_zero(),
                "{duty}%: burst {burst:?}"
            );
            let share = burst.as_secs_f64() / (burst + rest).as_secs_f64() * 100.0;
            let want = duty.max(1) as f64;
            assert!(
                (share - want).abs() < 0.01 * want,
                "{duty}%: got {share:.3}%"
            );
        }
        assert_eq!(burst_and_rest(1).1, MAX_REST);
        assert_eq!(burst_and_rest(8).0, BURST);
    }

    /// `len` bytes LZF cannot shrink, from the xorshift state `x`.
    fn noise(len: usize, x: &mut u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                *x as u8
            })
            .collect()
    }

    fn load(storage: &dyn Storage) -> Keyspace {
        decode(&storage.read_all(Path::new("dump.rdb")).unwrap())
    }

    fn decode(bytes: &[u8]) -> Keyspace {
        let mut ks = Keyspace::new(16);
        load_keyspace(
            bytes,
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

    /// The writer starts the disk write once per [`WRITEBACK_STEP`] bytes
    /// instead of leaving the whole file to the final fsync.
    #[test]
    fn the_writer_starts_write_back_as_it_goes() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        // About 10 MiB that LZF cannot shrink.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2500 {
            let value = noise(4000, &mut x);
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(&value), 0);
        }
        let expected = snapshot_of(&ks);
        let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
        let report = snap.run_to_end(&mut ks).unwrap();
        assert!(report.bytes > 2 * WRITEBACK_STEP, "{}", report.bytes);
        assert_eq!(report.writebacks, report.bytes / WRITEBACK_STEP);
        assert_eq!(snapshot_of(&load(&*storage)), expected);
    }

    /// Through the real file system (past the page cache on Linux, see
    /// `storage::direct`): the file is all the bytes the save reports, of
    /// an unaligned length, it loads back as the keyspace was, and the
    /// temp file is gone.
    #[test]
    fn a_snapshot_on_the_real_file_system_loads_back() {
        let dir = std::env::temp_dir().join(format!("redoubt-snap-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let storage: Arc<dyn Storage> = Arc::new(crate::storage::FileStorage);
        let mut ks = Keyspace::new(16);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..1500 {
            let value = noise(1000 + i % 7, &mut x);
            ks.dbs[i % 3].insert(format!("k{i}").as_bytes(), Value::str_from(&value), 0);
        }
        let expected = snapshot_of(&ks);
        let mut on_disk = spec(storage.clone(), 1, 1);
        on_disk.target = dir.join("dump.rdb");
        let mut snap = Snapshot::start(&mut ks, on_disk).unwrap();
        let report = snap.run_to_end(&mut ks).unwrap();
        let bytes = std::fs::read(dir.join("dump.rdb")).unwrap();
        assert_eq!(bytes.len() as u64, report.bytes);
        assert_ne!(bytes.len() % 4096, 0);
        assert_eq!(snapshot_of(&decode(&bytes)), expected);
        assert_eq!(storage.list(&dir).unwrap(), vec!["dump.rdb".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// With incremental fsync off (`rdb-save-incremental-fsync no`) the
    /// writer leaves the whole file to the final fsync.
    #[test]
    fn without_incremental_fsync_the_writer_starts_no_write_back() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        let value = vec![7u8; 4000];
        for i in 0..5000 {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(&value), 0);
        }
        let expected = snapshot_of(&ks);
        let mut off = spec(storage.clone(), 1, 1);
        off.format = SnapshotFormat::Rdb(SaveOptions {
            compression: false,
            ..SaveOptions::default()
        });
        off.incremental_fsync = false;
        let mut snap = Snapshot::start(&mut ks, off).unwrap();
        let report = snap.run_to_end(&mut ks).unwrap();
        assert!(report.bytes > 2 * WRITEBACK_STEP, "{}", report.bytes);
        assert_eq!(report.writebacks, 0);
        assert_eq!(snapshot_of(&load(&*storage)), expected);
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

    /// Every key with its value and expiry, sorted.
    fn state_of(ks: &Keyspace) -> Vec<(usize, Vec<u8>, Value, u64)> {
        let mut v: Vec<_> = ks
            .dbs
            .iter()
            .enumerate()
            .flat_map(|(i, db)| {
                db.iter()
                    .map(move |e| (i, e.key.to_vec(), e.value.clone(), e.expire_at))
            })
            .collect();
        v.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        v
    }

    fn big_list(n: usize) -> Value {
        let mut l = crate::value::ListValue::default();
        l.items
            .extend((0..n).map(|i| bytes::Bytes::from(format!("item:{i}"))));
        Value::List(Box::new(l))
    }

    fn big_zset(n: usize) -> Value {
        let mut z = crate::zset::ZSet::default();
        for i in 0..n {
            z.insert(bytes::Bytes::from(format!("m:{i}")), i as f64);
        }
        Value::ZSet(Box::new(z))
    }

    /// Point in time with every kind of change to keys the walker has not
    /// reached (overwrite, delete, new key, expiry, in-place changes of big
    /// collections, flush), with pre-images copied, encoded on the spot
    /// (tiny copy budget) or both.
    #[test]
    fn every_change_path_keeps_the_point_in_time() {
        for (walk, copy) in [(u64::MAX, u64::MAX), (1, 0), (64 << 10, 16 << 10)] {
            let disk = SimStorage::new();
            let storage: Arc<dyn Storage> = Arc::new(disk.clone());
            let mut ks = Keyspace::new(16);
            for i in 0..6000 {
                let exp = if i % 5 == 0 {
                    4_000_000_000_000 + i as u64
                } else {
                    0
                };
                ks.dbs[i % 2].insert(format!("k{i}").as_bytes(), Value::str_from(b"before"), exp);
            }
            ks.dbs[0].insert(b"biglist", big_list(5000), 0);
            ks.dbs[1].insert(b"bigzset", big_zset(5000), 0);
            ks.dbs[3].insert(b"flushed", Value::str_from(b"x"), 0);
            let expected = state_of(&ks);
            let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 3, 1)).unwrap();
            snap.set_budgets(walk, copy);
            let mut i = 0usize;
            let mut steps = 0;
            loop {
                for _ in 0..30 {
                    let db = i % 2;
                    let k = format!("k{}", (i * 7919) % 7000);
                    match i % 8 {
                        0 => {
                            ks.dbs[db].insert(k.as_bytes(), Value::str_from(b"after"), 0);
                        }
                        1 => {
                            ks.dbs[db].remove(k.as_bytes());
                        }
                        2 => {
                            ks.dbs[db].set_expire(k.as_bytes(), 5_000_000_000_000);
                        }
                        3 => {
                            if let Some(e) = ks.dbs[0].get(b"biglist", 0) {
                                if let Value::List(l) = &mut e.value {
                                    l.items.pop_front();
                                    l.items.push_back(bytes::Bytes::from_static(b"new"));
                                }
                            }
                        }
                        4 => {
                            if let Some(e) = ks.dbs[1].get(b"bigzset", 0) {
                                if let Value::ZSet(z) = &mut e.value {
                                    z.insert(bytes::Bytes::from(format!("m:{i}")), -1.0);
                                }
                            }
                        }
                        6 => {
                            // The old value moves into the snapshot.
                            let exp = if i % 16 == 6 { 6_000_000_000_000 } else { 0 };
                            ks.dbs[db].set(k.as_bytes(), Value::str_from(b"set"), exp);
                        }
                        7 => {
                            // A read hands over nothing, except a key it
                            // finds expired and removes.
                            let now = 4_000_000_003_000;
                            if let Some(e) = ks.dbs[db].get_ro(k.as_bytes(), now) {
                                assert!(!e.is_expired(now));
                            }
                        }
                        _ => {
                            // Removed then created again: the new key is
                            // not the one at the snapshot's start.
                            ks.dbs[db].remove(k.as_bytes());
                            ks.dbs[db].insert(k.as_bytes(), Value::str_from(b"again"), 0);
                        }
                    }
                    i += 1;
                }
                if steps == 5 {
                    ks.dbs[3].clear();
                }
                steps += 1;
                if snap.step(&mut ks, 2).unwrap() {
                    break;
                }
                if snap.waiting() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let report = snap.wait().unwrap();
            assert_eq!(
                state_of(&load(&*storage)),
                expected,
                "budgets walk {walk} copy {copy}"
            );
            if copy == 0 {
                // Only the big collections' pre-images are copied.
                assert!(report.preimages_encoded > 0 && report.preimages_copied <= 2);
            }
            if copy == u64::MAX {
                assert!(report.preimages_copied > 0 && report.preimages_encoded == 0);
            }
            assert!(report.peak_pending > 0);
            // The walker cleared every mark on its way.
            assert!(ks.dbs.iter().all(|d| d.snapshot_marks() == 0));
        }
    }

    /// Past the copy budget a pre-image is encoded on the executor, but
    /// not a big collection's: it is copied, changed in place or replaced
    /// whole, and the file still holds the state at the snapshot's start.
    #[test]
    fn big_collections_are_copied_past_the_copy_budget() {
        for replace in [false, true] {
            let disk = SimStorage::new();
            let storage: Arc<dyn Storage> = Arc::new(disk.clone());
            let mut ks = Keyspace::new(16);
            ks.dbs[0].insert(b"biglist", big_list(5000), 0);
            ks.dbs[0].insert(b"bigzset", big_zset(5000), 0);
            ks.dbs[0].insert(b"small", Value::str_from(b"before"), 0);
            let expected = state_of(&ks);
            let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 3, 1)).unwrap();
            snap.set_budgets(1, 0);
            if replace {
                ks.dbs[0].insert(b"biglist", Value::str_from(b"after"), 0);
                ks.dbs[0].remove(b"bigzset");
            } else {
                if let Some(e) = ks.dbs[0].get(b"biglist", 0) {
                    if let Value::List(l) = &mut e.value {
                        l.items.pop_front();
                    }
                }
                if let Some(e) = ks.dbs[0].get(b"bigzset", 0) {
                    if let Value::ZSet(z) = &mut e.value {
                        z.insert(bytes::Bytes::from_static(b"m:new"), -1.0);
                    }
                }
            }
            ks.dbs[0].insert(b"small", Value::str_from(b"after"), 0);
            while !snap.step(&mut ks, 2).unwrap() {}
            let report = snap.wait().unwrap();
            assert_eq!(state_of(&load(&*storage)), expected, "replace {replace}");
            assert_eq!(
                (report.preimages_copied, report.preimages_encoded),
                (2, 1),
                "replace {replace}"
            );
        }
    }

    /// A snapshot stopped halfway leaves marks in the segments its walker
    /// had not reached; the next one must neither skip those keys nor
    /// keep any mark once done.
    #[test]
    fn marks_of_an_aborted_snapshot_do_not_leak_into_the_next() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        for i in 0..20_000 {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v0"), 0);
        }
        let mut first = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
        first.step(&mut ks, 10).unwrap();
        // Overwrites and new keys all over: marks in unvisited segments.
        for i in (0..25_000).step_by(3) {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v1"), 0);
        }
        assert!(ks.dbs[0].snapshot_marks() > 0);
        first.abort(&mut ks);
        let expected = state_of(&ks);
        let mut second = Snapshot::start(&mut ks, spec(storage.clone(), 2, 2)).unwrap();
        // Touch a few keys again: stale segments are cleared before use.
        for i in (0..25_000).step_by(7) {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v2"), 0);
        }
        while !second.step(&mut ks, 16).unwrap() {
            if second.waiting() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        second.wait().unwrap();
        assert_eq!(state_of(&load(&*storage)), expected);
        assert_eq!(ks.dbs[0].snapshot_marks(), 0);
    }

    /// Reads of keys the walker has not reached hand nothing over, and
    /// SET hands over the old value once: one pre-image each.
    #[test]
    fn reads_take_nothing_and_set_moves_the_old_value() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        for i in 0..20_000 {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v"), 0);
        }
        let expected = state_of(&ks);
        let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
        for i in 0..1000 {
            assert!(ks.dbs[0].get_ro(format!("k{i}").as_bytes(), 0).is_some());
            assert!(ks.dbs[0].contains(format!("k{i}").as_bytes(), 0));
        }
        assert_eq!(snap.feeder.lock().unwrap().preimages_copied, 0);
        for i in 0..1000 {
            assert!(ks.dbs[0].set(format!("k{i}").as_bytes(), Value::str_from(b"w"), 0));
            // A second write to the same key takes nothing more.
            assert!(ks.dbs[0].set(format!("k{i}").as_bytes(), Value::str_from(b"x"), 0));
        }
        assert!(!ks.dbs[0].set(b"new", Value::str_from(b"n"), 0));
        assert_eq!(snap.feeder.lock().unwrap().preimages_copied, 1000);
        while !snap.step(&mut ks, 64).unwrap() {}
        snap.wait().unwrap();
        assert_eq!(state_of(&load(&*storage)), expected);
        assert_eq!(ks.dbs[0].snapshot_marks(), 0);
        assert_eq!(
            ks.dbs[0].peek(b"k1").map(|e| e.value.clone()),
            Some(Value::str_from(b"x"))
        );
    }

    /// Small strings, copied by the walker or as pre-images of writes, go
    /// to the encoder as flat batches, not as an entry allocation each; a
    /// SET frees the old small value on the spot instead of moving it into
    /// the snapshot. Other values are still handed over as entries.
    #[test]
    fn small_strings_are_copied_flat() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        for i in 0..20_000 {
            let exp = if i % 3 == 0 { 4_000_000_000_000 } else { 0 };
            ks.dbs[i % 2].insert(format!("k{i}").as_bytes(), Value::str_from(b"small"), exp);
        }
        ks.dbs[0].insert(b"big", Value::str_from(&[b'b'; DEEP_COPY_MAX + 1]), 0);
        ks.dbs[1].insert(b"list", big_list(100), 0);
        let expected = state_of(&ks);
        let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
        for i in 0..1000 {
            ks.dbs[i % 2].set(format!("k{i}").as_bytes(), Value::str_from(b"w"), 0);
            if let Some(e) = ks.dbs[i % 2].get(format!("k{}", 10_000 + i).as_bytes(), 0) {
                e.value = Value::str_from(b"changed in place");
            }
        }
        ks.dbs[0].set(b"big", Value::str_from(b"now small"), 0);
        assert_eq!(snap.feeder.lock().unwrap().preimages_copied, 2001);
        while !snap.step(&mut ks, 64).unwrap() {
            if snap.waiting() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let report = snap.wait().unwrap();
        assert_eq!(state_of(&load(&*storage)), expected);
        assert_eq!(report.keys, 20_002);
        assert_eq!(report.flat_copies, 20_000);
        assert_eq!(report.boxed_copies, 2);
    }

    /// The pre-image of a big chunked collection is encoded ahead of the
    /// copies already queued (while it waits it keeps alive every chunk the
    /// live value replaces), and the file still holds every key once.
    #[test]
    fn big_preimages_go_ahead_of_the_queue() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        for i in 0..200_000 {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v"), 0);
        }
        ks.dbs[1].insert(b"biglist", big_list(20_000), 0);
        let expected = state_of(&ks);
        let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
        // Paced encoder, and the whole of db 0 queued for it.
        snap.set_busy(true);
        snap.set_budgets(u64::MAX, u64::MAX);
        while snap.next_db == 0 && !snap.step(&mut ks, 64).unwrap() {}
        if let Some(e) = ks.dbs[1].get(b"biglist", 0) {
            if let Value::List(l) = &mut e.value {
                l.items.pop_front();
            }
        }
        let copies = || snap.shared.copies.load(Ordering::Relaxed);
        let queued = copies();
        let deadline = Instant::now() + Duration::from_secs(20);
        while snap.shared.urgent_done.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "urgent copy not taken");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Taken while most of the queue still waits.
        assert!(copies() > queued / 2, "{} of {queued}", copies());
        snap.set_busy(false);
        while !snap.step(&mut ks, 64).unwrap() {}
        snap.wait().unwrap();
        assert_eq!(state_of(&load(&*storage)), expected);
    }

    /// Under client load the encoder sleeps between bursts while paced, and
    /// never once it runs unpaced.
    #[test]
    fn a_busy_encoder_sleeps_while_paced_and_not_while_unpaced() {
        for unpaced in [false, true] {
            let disk = SimStorage::new();
            let storage: Arc<dyn Storage> = Arc::new(disk.clone());
            let mut ks = Keyspace::new(16);
            for i in 0..40_000 {
                let v = format!("{i:0>64}{}", i * 7919);
                ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(v.as_bytes()), 0);
            }
            let expected = state_of(&ks);
            let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
            snap.set_busy(true);
            // A copy budget of 0 makes any queue "over half of it".
            let copy = if unpaced { 0 } else { u64::MAX };
            snap.set_budgets(u64::MAX, copy);
            while !snap.step(&mut ks, 64).unwrap() {}
            let report = snap.wait().unwrap();
            assert_eq!(state_of(&load(&*storage)), expected);
            if unpaced {
                assert!(report.encoder_unpaced > 0, "{report:?}");
                assert_eq!(report.encoder_sleeps, 0, "{report:?}");
            } else {
                assert!(report.encoder_sleeps > 0, "{report:?}");
                assert_eq!(report.encoder_unpaced, 0, "{report:?}");
            }
            assert!(report.encoder_cpu_us > 0, "{report:?}");
            assert!(report.walker_cpu_us > 0, "{report:?}");
        }
    }

    /// The executor has nothing to do for a snapshot whose walker waits
    /// for the encoder, nor for one whose walk is over.
    #[test]
    fn executor_is_idle_while_the_walker_waits_and_after_the_walk() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        for i in 0..20_000 {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v"), 0);
        }
        let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
        assert!(!snap.executor_idle());
        // A walk budget of 0: one segment queued, then the walker waits.
        snap.set_budgets(0, u64::MAX);
        snap.step(&mut ks, 1).unwrap();
        assert!(snap.waiting() && snap.executor_idle());
        snap.set_budgets(u64::MAX, u64::MAX);
        assert!(!snap.executor_idle());
        while !snap.step(&mut ks, 64).unwrap() {}
        assert!(snap.executor_idle());
        snap.wait().unwrap();
    }

    /// A write to a key of an unvisited segment hands over that key only:
    /// the executor's work does not grow with the segment.
    #[test]
    fn a_write_copies_one_key_not_its_segment() {
        let disk = SimStorage::new();
        let storage: Arc<dyn Storage> = Arc::new(disk.clone());
        let mut ks = Keyspace::new(16);
        for i in 0..200_000 {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"v"), 0);
        }
        let mut snap = Snapshot::start(&mut ks, spec(storage.clone(), 1, 1)).unwrap();
        for i in 0..1000 {
            ks.dbs[0].insert(format!("k{i}").as_bytes(), Value::str_from(b"w"), 0);
        }
        let copied = snap.feeder.lock().unwrap().preimages_copied;
        assert_eq!(copied, 1000);
        assert!(
            snap.pending_bytes() < 1000 * 200,
            "{}",
            snap.pending_bytes()
        );
        while !snap.step(&mut ks, 64).unwrap() {}
        let report = snap.wait().unwrap();
        assert_eq!(report.keys, 200_000);
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
