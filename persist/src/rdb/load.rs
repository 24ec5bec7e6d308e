//! Loading a whole RDB file into a [`Keyspace`], as a Redis 7.0 master does
//! at startup: expired keys are skipped, empty collections are skipped,
//! compact-encoding flags follow the configured thresholds, module values
//! are refused.

use super::decode::{ChecksumStatus, DecodeOptions, Decoded, Decoder, Item};
use super::error::{ErrorKind, RdbError, Result};
use crate::keyspace::{Keyspace, NewEntry};
use crate::value::Value;
use std::io::Read;
use std::path::Path;

/// Thresholds of Redis's compact encodings. Defaults are what Redis 7.0.15
/// reports by CONFIG GET (note hash-max-listpack-entries is 512 there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodingLimits {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    /// Redis 7.2's set listpack (used only when writing v11+).
    pub set_max_listpack_entries: usize,
    pub set_max_listpack_value: usize,
}

impl Default for EncodingLimits {
    fn default() -> Self {
        EncodingLimits {
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
            set_max_listpack_entries: 128,
            set_max_listpack_value: 64,
        }
    }
}

impl EncodingLimits {
    /// Sets the "promoted" flags of a freshly loaded value the way Redis 7.0
    /// decides the encoding of a loaded object from its contents.
    pub fn apply(&self, v: &mut Value) {
        match v {
            Value::Hash(h) => {
                let table = h.map.len() > self.hash_max_listpack_entries
                    || h.map.iter().any(|(f, v)| {
                        f.len() > self.hash_max_listpack_value
                            || v.len() > self.hash_max_listpack_value
                    });
                if table {
                    h.map.promote();
                } else {
                    h.map.demote();
                }
            }
            Value::ZSet(z) => {
                z.skiplist = z.len() > self.zset_max_listpack_entries
                    || z.iter()
                        .any(|e| e.member.len() > self.zset_max_listpack_value);
            }
            Value::Set(s) => {
                s.hashtable = s.members.len() > self.set_max_intset_entries
                    || s.members
                        .iter()
                        .any(|m| super::blobs::parse_i64_strict(m).is_none());
            }
            Value::Str(_) | Value::List(_) | Value::Stream(_) => {}
        }
    }
}

/// Keys decoded before being inserted as one batch (grouped by segment).
const BATCH: usize = 1 << 16;

/// Loader settings.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub decode: DecodeOptions,
    pub limits: EncodingLimits,
    /// Current unix time in ms: keys that expired before it are skipped.
    pub now_ms: u64,
    /// Load expired keys anyway (what a replica does).
    pub keep_expired: bool,
    /// Keys expected on top of the image's own, from commands replayed
    /// right after it (the incr files of an AOF with an RDB base): added to
    /// each RESIZEDB hint, at most doubling it, so the tables are sized
    /// once instead of being rehashed, with every key re-read, by the
    /// replay.
    pub reserve_extra: u64,
}

impl LoadOptions {
    pub fn new(now_ms: u64) -> LoadOptions {
        LoadOptions {
            decode: DecodeOptions::default(),
            limits: EncodingLimits::default(),
            now_ms,
            keep_expired: false,
            reserve_extra: 0,
        }
    }
}

/// What a load found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadStats {
    pub rdb_version: u32,
    pub keys_loaded: u64,
    pub expired_skipped: u64,
    pub empty_skipped: u64,
    /// Hash fields dropped because their own TTL had passed.
    pub expired_fields_skipped: u64,
    /// Every AUX field in file order (redis-ver, ctime, ...).
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    pub redis_ver: Option<String>,
    /// Our snapshot LSN (`redoubt-lsn` AUX), when present and numeric.
    pub lsn: Option<u64>,
    /// Function libraries found (FUNCTION2 / pre-GA FUNCTION).
    pub functions: Vec<Vec<u8>>,
    pub checksum: Option<ChecksumStatus>,
    pub bytes_read: u64,
}

impl LoadStats {
    /// Value of an AUX field.
    pub fn aux_value(&self, key: &[u8]) -> Option<&[u8]> {
        self.aux
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

/// Loads an RDB stream into `ks`, which should be empty (the caller
/// flushes first): a key already present counts as a duplicate, which is
/// an error as in Redis. `total_len` is the input size when
/// known, which tightens corruption checks.
pub fn load_keyspace<R: Read>(
    r: R,
    total_len: Option<u64>,
    ks: &mut Keyspace,
    opts: &LoadOptions,
) -> Result<LoadStats> {
    let mut dec = Decoder::new(r, total_len, opts.decode.clone())?;
    let mut st = LoadStats {
        rdb_version: dec.version(),
        ..LoadStats::default()
    };
    let mut db = 0usize;
    let mut batch = Vec::new();
    while let Some(item) = dec.next_item()? {
        match item {
            Item::Aux { key, value } => {
                if key == b"redis-ver" {
                    st.redis_ver = Some(String::from_utf8_lossy(&value).into_owned());
                } else if key == b"redoubt-lsn" {
                    st.lsn = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|s| s.parse().ok());
                }
                st.aux.push((key, value));
            }
            Item::SelectDb(n) => {
                flush(ks, db, &mut batch, dec.offset())?;
                let off = dec.offset();
                db = usize::try_from(n)
                    .ok()
                    .filter(|&n| n < ks.dbs.len())
                    .ok_or_else(|| RdbError::new(off, ErrorKind::TooManyDbs(ks.dbs.len())))?;
            }
            Item::ResizeDb { db_size, .. } => {
                // A hint only: bounded by what the input could hold (a key
                // takes at least ~3 bytes), so a corrupt value cannot make
                // us allocate a huge table.
                let max = total_len.map_or(1 << 20, |t| t / 3);
                let hint = db_size.min(max).min(1 << 28);
                let hint = hint + opts.reserve_extra.min(hint);
                ks.db(db).reserve(hint as usize);
            }
            Item::SlotInfo { .. } => {}
            Item::Function { code, .. } => st.functions.push(code),
            Item::ModuleAux { name, .. } => {
                return Err(RdbError::new(dec.offset(), ErrorKind::ModuleAux(name)));
            }
            Item::Entry(rec) => {
                let mut value = match rec.value {
                    Decoded::Value(v) => v,
                    Decoded::Module(m) => {
                        return Err(RdbError::new(dec.offset(), ErrorKind::ModuleValue(m.name))
                            .with_key(&rec.key));
                    }
                };
                let expire = rec.expire_ms.map_or(0, |e| e.max(0) as u64);
                // Redis keeps a key whose expire is exactly 0? No: a stored
                // expire of 0 ms is "1970", long expired; treat as volatile 1.
                let expire = if rec.expire_ms.is_some() && expire == 0 {
                    1
                } else {
                    expire
                };
                if expire != 0 && expire <= opts.now_ms && !opts.keep_expired {
                    st.expired_skipped += 1;
                    continue;
                }
                if let Value::Hash(h) = &mut value {
                    if let Some(ttls) = h.field_expiry.as_mut() {
                        if !opts.keep_expired {
                            let now = opts.now_ms;
                            let before = h.map.len();
                            h.map.retain(|f, _| ttls.get(f).is_none_or(|&t| t > now));
                            ttls.retain(|_, t| *t > now);
                            st.expired_fields_skipped += (before - h.map.len()) as u64;
                        }
                        if ttls.is_empty() {
                            h.field_expiry = None;
                        }
                    }
                }
                if is_empty_collection(&value) {
                    st.empty_skipped += 1;
                    continue;
                }
                opts.limits.apply(&mut value);
                batch.push((rec.key.into_boxed_slice(), value, expire));
                if batch.len() >= BATCH {
                    flush(ks, db, &mut batch, dec.offset())?;
                }
                st.keys_loaded += 1;
            }
            Item::End(status) => st.checksum = Some(status),
        }
    }
    flush(ks, db, &mut batch, dec.offset())?;
    st.bytes_read = dec.offset();
    Ok(st)
}

/// Inserts a batch of loaded keys. A key present twice in one file is
/// corruption (Redis stops with "Duplicated key found in RDB file").
fn flush(ks: &mut Keyspace, db: usize, batch: &mut Vec<NewEntry>, offset: u64) -> Result<()> {
    if ks.db(db).insert_batch(batch) > 0 {
        return Err(RdbError::new(
            offset,
            ErrorKind::Corrupt(format!(
                "unique keys in db {db} (duplicated key in RDB file)"
            )),
        ));
    }
    Ok(())
}

/// Loads an RDB file from disk (buffered, size-checked).
pub fn load_file(path: &Path, ks: &mut Keyspace, opts: &LoadOptions) -> Result<LoadStats> {
    let f = std::fs::File::open(path)?;
    let len = f.metadata().ok().map(|m| m.len());
    load_keyspace(f, len, ks, opts)
}

/// Collections with no elements: Redis skips such keys on load and RESTORE
/// refuses them. (An empty stream is legitimate.)
pub fn is_empty_collection(v: &Value) -> bool {
    match v {
        Value::Str(_) | Value::Stream(_) => false,
        Value::List(l) => l.items.is_empty(),
        Value::Hash(h) => h.map.is_empty(),
        Value::Set(s) => s.members.is_empty(),
        Value::ZSet(z) => z.is_empty(),
    }
}
