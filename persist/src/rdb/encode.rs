//! The RDB writer. Chooses encodings the way Redis 7.0 does so files are as
//! small as Redis's and load back with the same `OBJECT ENCODING`.
//!
//! Records are serialized straight into the writer's buffer, which is
//! checksummed and written out whenever it fills, so
//! [`RdbWriter::write_entry`] can be called key by key (the snapshotter
//! walks segments that way) at no cost per key beyond the encoding. A big
//! value's record goes out in pieces as it is encoded ([`Spill`]), so no
//! record is ever whole in memory.

use super::blobs::{self, parse_i64_strict};
use super::crc::crc64;
use super::error::{ErrorKind, RdbError, Result};
use super::load::EncodingLimits;
use super::lzf;
use super::types::*;
use crate::keyspace::Keyspace;
use crate::snapshot::sched::{element_point, yield_point};
use crate::value::{HashValue, ListValue, SetValue, Stream, StreamId, Value, ZSet};
use std::io::Write;

/// Writer settings.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// 10 (Redis 7.0, default), 11 (7.2) or 12 (7.4).
    pub version: u32,
    /// `rdbcompression`: LZF for strings longer than 20 bytes when it helps.
    pub compression: bool,
    /// String values are compressed with [`lzf::compress_into_quick`],
    /// which gives up early on bytes without repeats (random or already
    /// compressed values) after a check of their first 64 bytes, and the
    /// file is still one Redis loads. Off, every string is compressed
    /// exactly as Redis would (DUMP, tools).
    pub quick_lzf: bool,
    /// `rdbchecksum`: write the CRC-64 trailer (else 0).
    pub checksum: bool,
    /// Thresholds deciding compact encodings (Redis 7.0 defaults).
    pub limits: EncodingLimits,
    /// `ctime` aux field (unix seconds); `None` = now.
    pub ctime: Option<u64>,
    /// `used-mem` aux field.
    pub used_mem: u64,
    /// `aof-base` aux field (1 when the file is an AOF base).
    pub aof_base: bool,
    /// Extra AUX fields written after the standard ones (e.g. `redoubt-lsn`).
    pub extra_aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Function libraries (FUNCTION2 records), written before the keyspace.
    pub functions: Vec<Vec<u8>>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            version: RDB_VERSION_DEFAULT,
            compression: true,
            quick_lzf: false,
            checksum: true,
            limits: EncodingLimits::default(),
            ctime: None,
            used_mem: 0,
            aof_base: false,
            extra_aux: Vec::new(),
            functions: Vec::new(),
        }
    }
}

/// Redis 7.0's quicklist node size target (`list-max-listpack-size -2`).
const LIST_NODE_MAX_BYTES: usize = 8192;
/// Elements at least this big get a PLAIN quicklist node (7.0's default
/// `packed_threshold`, 1 GiB).
const LIST_PLAIN_THRESHOLD: usize = 1 << 30;
/// `stream-node-max-bytes` / `stream-node-max-entries` defaults.
const STREAM_NODE_MAX_BYTES: usize = 4096;
const STREAM_NODE_MAX_ENTRIES: i64 = 100;
/// The version string we announce: tools then treat the file as 7.0's.
pub const REDIS_VER_AUX: &str = "7.0.15";

/// The writer's buffer is written out when it holds this much.
const BUF_BYTES: usize = 256 * 1024;

/// What a collection's encoder does with the record so far between two of
/// its elements. Whole, a million-element sorted set's record is ~25 MB:
/// the buffer grew to it and was freed after it, and the allocator hands
/// an allocation that big back to the kernel at once, in one system call
/// of 1-1.6 ms that a snapshot's encoder cannot break to give its core back
/// to the event loop (`perf sched`, loaded BGSAVE with the big collections
/// being written). The writer's [`Spill`] writes the buffer out as soon as
/// it is full, mid-record. It is called only once a record can no longer
/// fail (encoding errors are found before the first element).
pub(crate) trait Spill {
    /// May write `b` out and clear it.
    fn spill(&mut self, b: &mut Vec<u8>) -> Result<()>;
}

/// Keeps the record whole in its buffer: a DUMP payload, records encoded
/// ahead of their writer.
struct Whole;

impl Spill for Whole {
    fn spill(&mut self, _: &mut Vec<u8>) -> Result<()> {
        Ok(())
    }
}

/// The writer's output seen from inside a record (see [`RdbWriter::record`]).
struct Out<'a, W> {
    out: &'a mut W,
    crc: &'a mut u64,
    /// Bytes written out by [`Spill::spill`].
    spilled: u64,
}

impl<W: Write> Spill for Out<'_, W> {
    fn spill(&mut self, b: &mut Vec<u8>) -> Result<()> {
        if b.len() >= BUF_BYTES {
            write_out(self.out, self.crc, b)?;
            self.spilled += b.len() as u64;
            b.clear();
        }
        Ok(())
    }
}

/// Checksums `bytes` and writes them out, [`BUF_BYTES`] at a time: a
/// snapshot's encoder may leave its core to the event loop between pieces,
/// in its writer (milliseconds of checksum and copy otherwise ran in one
/// go for a big string).
fn write_out<W: Write>(out: &mut W, crc: &mut u64, bytes: &[u8]) -> Result<()> {
    for piece in bytes.chunks(BUF_BYTES) {
        *crc = crc64(*crc, piece);
        out.write_all(piece)?;
    }
    Ok(())
}

/// Streams RDB records into a writer.
pub struct RdbWriter<W: Write> {
    out: W,
    /// Records not written to `out` yet. Their CRC is taken when they are,
    /// a whole buffer at a time: the CRC's fast path wants long inputs, and
    /// taking it per record cost more than the records' copy (a snapshot
    /// writes millions of ~300-byte records).
    buf: Vec<u8>,
    crc: u64,
    opts: SaveOptions,
    /// Bytes written so far (buffered ones included).
    written: u64,
}

impl<W: Write> RdbWriter<W> {
    /// Writes the header and the AUX fields (and function libraries).
    pub fn new(w: W, opts: SaveOptions) -> Result<RdbWriter<W>> {
        if !(10..=RDB_VERSION_MAX).contains(&opts.version) {
            return Err(RdbError::encode(ErrorKind::UnsupportedVersion(
                opts.version,
            )));
        }
        let mut wr = RdbWriter {
            out: w,
            buf: Vec::with_capacity(BUF_BYTES),
            crc: 0,
            opts,
            written: 0,
        };
        let ctime = wr.opts.ctime.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
        let mut b = Vec::with_capacity(4096);
        b.extend_from_slice(format!("REDIS{:04}", wr.opts.version).as_bytes());
        let comp = wr.opts.compression;
        let aux = |b: &mut Vec<u8>, k: &[u8], v: &[u8]| {
            b.push(OP_AUX);
            put_string(b, k, comp);
            put_string(b, v, comp);
        };
        aux(&mut b, b"redis-ver", REDIS_VER_AUX.as_bytes());
        aux(&mut b, b"redis-bits", b"64");
        aux(&mut b, b"ctime", ctime.to_string().as_bytes());
        aux(&mut b, b"used-mem", wr.opts.used_mem.to_string().as_bytes());
        aux(
            &mut b,
            b"aof-base",
            if wr.opts.aof_base { b"1" } else { b"0" },
        );
        for (k, v) in &wr.opts.extra_aux {
            aux(&mut b, k, v);
        }
        for f in &wr.opts.functions {
            b.push(OP_FUNCTION2);
            put_string(&mut b, f, comp);
        }
        wr.emit(&b)?;
        Ok(wr)
    }

    /// Appends bytes already encoded.
    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > BUF_BYTES {
            self.flush_buf()?;
            if bytes.len() >= BUF_BYTES {
                // Big enough to go out as they are, without a copy.
                write_out(&mut self.out, &mut self.crc, bytes)?;
                self.written += bytes.len() as u64;
                return Ok(());
            }
        }
        self.buf.extend_from_slice(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Encodes one record at the end of the buffer with `encode`, which may
    /// write the buffer out as the record grows (see [`Spill`]). On an
    /// encoding error the buffer is left as it was; an I/O error while
    /// spilling leaves the output cut mid-record, as any write error does.
    fn record(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>, &SaveOptions, &mut dyn Spill) -> Result<()>,
    ) -> Result<()> {
        let start = self.buf.len();
        let mut out = Out {
            out: &mut self.out,
            crc: &mut self.crc,
            spilled: 0,
        };
        let r = encode(&mut self.buf, &self.opts, &mut out);
        let spilled = out.spilled;
        if let Err(e) = r {
            if spilled == 0 {
                self.buf.truncate(start);
            }
            return Err(e);
        }
        // A spill wrote out the records before this one too.
        self.written += spilled + self.buf.len() as u64 - start as u64;
        if self.buf.len() >= BUF_BYTES {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Checksums the buffer and writes it out.
    fn flush_buf(&mut self) -> Result<()> {
        write_out(&mut self.out, &mut self.crc, &self.buf)?;
        self.buf.clear();
        // A big string grew it: do not keep that much for the small ones.
        if self.buf.capacity() > 4 * BUF_BYTES {
            self.buf = Vec::with_capacity(BUF_BYTES);
        }
        Ok(())
    }

    pub fn version(&self) -> u32 {
        self.opts.version
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// SELECTDB + RESIZEDB; call before the keys of each non-empty db.
    pub fn select_db(&mut self, db: usize, db_size: u64, expires_size: u64) -> Result<()> {
        self.record(|b, _, _| {
            b.push(OP_SELECTDB);
            put_len(b, db as u64);
            b.push(OP_RESIZEDB);
            put_len(b, db_size);
            put_len(b, expires_size);
            Ok(())
        })
    }

    /// Writes one key. `expire_ms` is absolute unix ms, 0 = no expiry.
    pub fn write_entry(&mut self, key: &[u8], value: &Value, expire_ms: u64) -> Result<()> {
        self.record(|b, opts, spill| encode_entry_with(b, key, value, expire_ms, opts, spill))
    }

    /// Writes one string key from its bytes (what [`RdbWriter::write_entry`]
    /// writes for a `Value::Str` of them).
    pub fn write_str_entry(&mut self, key: &[u8], value: &[u8], expire_ms: u64) -> Result<()> {
        self.record(|b, opts, _| {
            encode_str_entry(b, key, value, expire_ms, opts);
            Ok(())
        })
    }

    /// Writes keys already encoded by [`encode_entry`] with this writer's
    /// options (a snapshot encodes some keys away from its writer).
    pub fn write_encoded(&mut self, records: &[u8]) -> Result<()> {
        self.emit(records)
    }

    /// Writes EOF and the checksum, flushes, and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.emit(&[OP_EOF])?;
        self.flush_buf()?;
        let crc = if self.opts.checksum { self.crc } else { 0 };
        self.out.write_all(&crc.to_le_bytes())?;
        self.written += 8;
        Ok(self.out)
    }
}

/// Appends one key's record (expiry, type, key, value) to `b`, as
/// [`RdbWriter::write_entry`] writes it. `expire_ms` 0 = no expiry.
pub fn encode_entry(
    b: &mut Vec<u8>,
    key: &[u8],
    value: &Value,
    expire_ms: u64,
    opts: &SaveOptions,
) -> Result<()> {
    encode_entry_with(b, key, value, expire_ms, opts, &mut Whole)
}

fn encode_entry_with(
    b: &mut Vec<u8>,
    key: &[u8],
    value: &Value,
    expire_ms: u64,
    opts: &SaveOptions,
    spill: &mut dyn Spill,
) -> Result<()> {
    put_expiry(b, expire_ms);
    let type_pos = b.len();
    b.push(0);
    put_string(b, key, opts.compression);
    // The type byte is known before the first element, hence before any
    // spill could write it out.
    let t = value_type_byte(value, opts).map_err(|e| e.with_key(key))?;
    b[type_pos] = t;
    encode_value_with(b, value, t, opts, spill)
}

/// [`encode_entry`] for a string key given as bytes.
pub fn encode_str_entry(
    b: &mut Vec<u8>,
    key: &[u8],
    value: &[u8],
    expire_ms: u64,
    opts: &SaveOptions,
) {
    put_expiry(b, expire_ms);
    b.push(TYPE_STRING);
    put_string(b, key, opts.compression);
    put_value_string(b, value, opts);
}

/// A key's expiry opcode, when it has one (`expire_ms` 0 = none).
fn put_expiry(b: &mut Vec<u8>, expire_ms: u64) {
    if expire_ms != 0 {
        b.push(OP_EXPIRETIME_MS);
        b.extend_from_slice(&(expire_ms as i64).to_le_bytes());
    }
}

/// Writes a whole keyspace: every non-empty db, every key (expired keys
/// included, as Redis's SAVE does).
pub fn write_keyspace<W: Write>(ks: &Keyspace, w: W, opts: SaveOptions) -> Result<W> {
    let mut wr = RdbWriter::new(w, opts)?;
    for (i, db) in ks.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        wr.select_db(i, db.len() as u64, db.volatile_len() as u64)?;
        for e in db.iter() {
            wr.write_entry(&e.key, &e.value, e.expire_at)?;
        }
    }
    wr.finish()
}

// ------------------------------------------------------------ primitives

/// Appends an RDB length in its shortest form.
pub fn put_len(b: &mut Vec<u8>, v: u64) {
    let mut t = [0u8; 9];
    let n = len_into(&mut t, v);
    b.extend_from_slice(&t[..n]);
}

/// Writes the RDB length `v` in its shortest form into the front of `out`
/// (at least 9 bytes) and returns how many bytes that took.
fn len_into(out: &mut [u8], v: u64) -> usize {
    if v < 64 {
        out[0] = v as u8;
        1
    } else if v < 16384 {
        out[0] = 0x40 | (v >> 8) as u8;
        out[1] = v as u8;
        2
    } else if v <= u64::from(u32::MAX) {
        out[0] = 0x80;
        out[1..5].copy_from_slice(&(v as u32).to_be_bytes());
        5
    } else {
        out[0] = 0x81;
        out[1..9].copy_from_slice(&v.to_be_bytes());
        9
    }
}

/// Appends an RDB string as Redis's `rdbSaveRawString` would: integer
/// encoding for short canonical int32 text, LZF for long strings when it
/// saves at least 4 bytes, raw otherwise.
pub fn put_string(b: &mut Vec<u8>, s: &[u8], compress: bool) {
    put_string_with(b, s, compress, lzf::compress_into);
}

/// A string value: as [`put_string`], with the quick compressor when
/// [`SaveOptions::quick_lzf`] asks for it.
fn put_value_string(b: &mut Vec<u8>, s: &[u8], opts: &SaveOptions) {
    if opts.quick_lzf {
        put_string_with(b, s, opts.compression, lzf::compress_into_quick);
    } else {
        put_string(b, s, opts.compression);
    }
}

#[inline]
fn put_string_with(
    b: &mut Vec<u8>,
    s: &[u8],
    compress: bool,
    lzf_into: fn(&[u8], usize, &mut Vec<u8>) -> bool,
) {
    if s.len() <= 11 {
        if let Some(i) = parse_i64_strict(s) {
            if let Ok(v) = i8::try_from(i) {
                b.push(0xC0);
                b.push(v as u8);
                return;
            } else if let Ok(v) = i16::try_from(i) {
                b.push(0xC1);
                b.extend_from_slice(&v.to_le_bytes());
                return;
            } else if let Ok(v) = i32::try_from(i) {
                b.push(0xC2);
                b.extend_from_slice(&v.to_le_bytes());
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        // Compressed in place at the end of `b`, then the header (which
        // holds the compressed length) moved in front: no buffer per string.
        let start = b.len();
        if lzf_into(s, s.len() - 4, b) {
            let clen = b.len() - start;
            let mut header = [0u8; 19];
            header[0] = 0xC3;
            let mut hlen = 1;
            hlen += len_into(&mut header[hlen..], clen as u64);
            hlen += len_into(&mut header[hlen..], s.len() as u64);
            b.splice(start..start, header[..hlen].iter().copied());
            return;
        }
    }
    put_len(b, s.len() as u64);
    b.extend_from_slice(s);
}

fn put_id_be(b: &mut Vec<u8>, id: StreamId) {
    b.extend_from_slice(&id.ms.to_be_bytes());
    b.extend_from_slice(&id.seq.to_be_bytes());
}

fn put_id_len(b: &mut Vec<u8>, id: StreamId) {
    put_len(b, id.ms);
    put_len(b, id.seq);
}

// ------------------------------------------------------------ listpack

/// Builds a listpack, choosing entry encodings as Redis does.
pub struct LpBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for LpBuilder {
    fn default() -> Self {
        LpBuilder::new()
    }
}

impl LpBuilder {
    pub fn new() -> LpBuilder {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        LpBuilder { buf, count: 0 }
    }

    /// Current size including the terminator byte.
    pub fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn count(&self) -> usize {
        self.count
    }

    fn backlen(&mut self, l: usize) {
        let mut enc = [0u8; 5];
        let n = blobs::encode_backlen(l, &mut enc);
        self.buf.extend_from_slice(&enc[..n]);
        self.count += 1;
    }

    /// Appends a string; canonical integers become integer entries.
    pub fn push(&mut self, s: &[u8]) {
        if s.len() < 21 {
            if let Some(i) = parse_i64_strict(s) {
                self.push_int(i);
                return;
            }
        }
        let len = s.len();
        let start = self.buf.len();
        if len < 64 {
            self.buf.push(0x80 | len as u8);
        } else if len < 4096 {
            self.buf.push(0xE0 | (len >> 8) as u8);
            self.buf.push(len as u8);
        } else {
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(len as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        let l = self.buf.len() - start;
        self.backlen(l);
    }

    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        if (0..=127).contains(&v) {
            self.buf.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u16) & 0x1fff;
            self.buf.push(0xC0 | (u >> 8) as u8);
            self.buf.push(u as u8);
        } else if let Ok(x) = i16::try_from(v) {
            self.buf.push(0xF1);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else if (-(1 << 23)..(1 << 23)).contains(&v) {
            self.buf.push(0xF2);
            self.buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if let Ok(x) = i32::try_from(v) {
            self.buf.push(0xF3);
            self.buf.extend_from_slice(&x.to_le_bytes());
        } else {
            self.buf.push(0xF4);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
        let l = self.buf.len() - start;
        self.backlen(l);
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xFF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let n = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[4..6].copy_from_slice(&n.to_le_bytes());
        self.buf
    }
}

/// Formats a double as C's `%.17g` (Redis 7.0's `d2string` for
/// non-integers), with d2string's special cases.
pub fn d2string(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v < 0.0 { "-inf".into() } else { "inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    if v > -4_503_599_627_370_495.0 && v < 4_503_599_627_370_496.0 && v == (v as i64) as f64 {
        return (v as i64).to_string();
    }
    let e = format!("{v:.16e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let mant = strip_zeros(mant);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        let prec = (16 - exp).max(0) as usize;
        strip_zeros(&format!("{v:.prec$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

// ------------------------------------------------------------ values

/// Appends the body of `v` and returns its RDB type byte.
pub(crate) fn encode_value(b: &mut Vec<u8>, v: &Value, opts: &SaveOptions) -> Result<u8> {
    let t = value_type_byte(v, opts)?;
    encode_value_with(b, v, t, opts, &mut Whole)?;
    Ok(t)
}

/// The RDB type `v` is written as: the encoding Redis 7.0 would have for
/// it, which the body's layout then follows. Fails for what the version
/// cannot hold.
fn value_type_byte(v: &Value, opts: &SaveOptions) -> Result<u8> {
    let lim = &opts.limits;
    let version = opts.version;
    Ok(match v {
        Value::Str(_) => TYPE_STRING,
        Value::List(_) => TYPE_LIST_QUICKLIST_2,
        Value::Set(s) => {
            let n = s.members.len();
            if !s.hashtable
                && n > 0
                && n <= lim.set_max_intset_entries
                && s.members.iter().all(|m| parse_i64_strict(m).is_some())
            {
                TYPE_SET_INTSET
            } else if version >= 11
                && n <= lim.set_max_listpack_entries
                && s.members
                    .iter()
                    .all(|m| m.len() <= lim.set_max_listpack_value)
            {
                TYPE_SET_LISTPACK
            } else {
                TYPE_SET
            }
        }
        Value::ZSet(z) => {
            if !z.skiplist
                && z.len() <= lim.zset_max_listpack_entries
                && z.iter()
                    .all(|e| e.member.len() <= lim.zset_max_listpack_value)
            {
                TYPE_ZSET_LISTPACK
            } else {
                TYPE_ZSET_2
            }
        }
        Value::Hash(h) => {
            let small = !h.is_hashtable()
                && h.map.len() <= lim.hash_max_listpack_entries
                && h.map.iter().all(|(f, v)| {
                    f.len() <= lim.hash_max_listpack_value && v.len() <= lim.hash_max_listpack_value
                });
            match (field_ttls(h).is_some(), small) {
                (true, _) if version < 12 => {
                    return Err(RdbError::encode(ErrorKind::Unrepresentable {
                        what: "hash field expiration",
                        version,
                    }))
                }
                (true, true) => TYPE_HASH_LISTPACK_EX,
                (true, false) => TYPE_HASH_METADATA,
                (false, true) => TYPE_HASH_LISTPACK,
                (false, false) => TYPE_HASH,
            }
        }
        Value::Stream(_) if version >= 11 => TYPE_STREAM_LISTPACKS_3,
        Value::Stream(_) => TYPE_STREAM_LISTPACKS_2,
    })
}

/// Appends the body of `v` as type `t` (from [`value_type_byte`]), spilling
/// between the elements of a collection.
fn encode_value_with(
    b: &mut Vec<u8>,
    v: &Value,
    t: u8,
    opts: &SaveOptions,
    spill: &mut dyn Spill,
) -> Result<()> {
    let comp = opts.compression;
    match v {
        Value::Str(s) => {
            put_value_string(b, s, opts);
            Ok(())
        }
        Value::List(l) => encode_list(b, l, comp, spill),
        Value::Set(s) => encode_set(b, s, t, comp, spill),
        Value::ZSet(z) => encode_zset(b, z, t, comp, spill),
        Value::Hash(h) => encode_hash(b, h, t, comp, spill),
        Value::Stream(s) => encode_stream(b, s, opts.version, comp, spill),
    }
}

/// A hash's field expiry times, when it has any.
fn field_ttls(h: &HashValue) -> Option<&std::collections::HashMap<bytes::Bytes, u64>> {
    h.field_expiry.as_deref().filter(|t| !t.is_empty())
}

fn encode_list(b: &mut Vec<u8>, l: &ListValue, comp: bool, spill: &mut dyn Spill) -> Result<()> {
    // Group elements into nodes as 7.0's quicklist push does.
    enum Node {
        Plain(usize),
        Packed(LpBuilder),
    }
    let mut nodes: Vec<Node> = Vec::new();
    for (i, item) in l.items.iter().enumerate() {
        element_point(i);
        let sz = item.len();
        if sz >= LIST_PLAIN_THRESHOLD {
            nodes.push(Node::Plain(i));
            continue;
        }
        let overhead = if sz < 254 { 1 } else { 5 }
            + if sz < 64 {
                1
            } else if sz < 16384 {
                2
            } else {
                5
            };
        let fits = match nodes.last() {
            Some(Node::Packed(lp)) => lp.bytes() + sz + overhead <= LIST_NODE_MAX_BYTES,
            _ => false,
        };
        if !fits {
            nodes.push(Node::Packed(LpBuilder::new()));
        }
        if let Some(Node::Packed(lp)) = nodes.last_mut() {
            lp.push(item);
        }
    }
    put_len(b, nodes.len() as u64);
    for n in nodes {
        // A node is up to 8 KiB of elements.
        yield_point();
        spill.spill(b)?;
        match n {
            Node::Plain(i) => {
                put_len(b, QUICKLIST_NODE_PLAIN);
                put_string(b, &l.items[i], comp);
            }
            Node::Packed(lp) => {
                put_len(b, QUICKLIST_NODE_PACKED);
                put_string(b, &lp.finish(), comp);
            }
        }
    }
    Ok(())
}

fn encode_set(
    b: &mut Vec<u8>,
    s: &SetValue,
    t: u8,
    comp: bool,
    spill: &mut dyn Spill,
) -> Result<()> {
    match t {
        TYPE_SET_INTSET => {
            let mut ints: Vec<i64> = s
                .members
                .iter()
                .filter_map(|m| parse_i64_strict(m))
                .collect();
            ints.sort_unstable();
            let width: usize = if ints.iter().all(|&i| i16::try_from(i).is_ok()) {
                2
            } else if ints.iter().all(|&i| i32::try_from(i).is_ok()) {
                4
            } else {
                8
            };
            let mut blob = Vec::with_capacity(8 + ints.len() * width);
            blob.extend_from_slice(&(width as u32).to_le_bytes());
            blob.extend_from_slice(&(ints.len() as u32).to_le_bytes());
            for i in ints {
                blob.extend_from_slice(&i.to_le_bytes()[..width]);
            }
            put_string(b, &blob, comp);
        }
        TYPE_SET_LISTPACK => {
            let mut lp = LpBuilder::new();
            for m in &s.members {
                lp.push(m);
            }
            put_string(b, &lp.finish(), comp);
        }
        _ => {
            put_len(b, s.members.len() as u64);
            for (i, m) in s.members.iter().enumerate() {
                element_point(i);
                spill.spill(b)?;
                put_string(b, m, comp);
            }
        }
    }
    Ok(())
}

fn encode_zset(b: &mut Vec<u8>, z: &ZSet, t: u8, comp: bool, spill: &mut dyn Spill) -> Result<()> {
    if t == TYPE_ZSET_LISTPACK {
        let mut lp = LpBuilder::new();
        for e in z.iter() {
            lp.push(&e.member);
            lp.push(d2string(e.score).as_bytes());
        }
        put_string(b, &lp.finish(), comp);
        return Ok(());
    }
    // Highest score first, as Redis writes skiplists (so loading inserts at
    // the head).
    put_len(b, z.len() as u64);
    for (i, e) in z.iter().rev().enumerate() {
        element_point(i);
        spill.spill(b)?;
        put_string(b, &e.member, comp);
        b.extend_from_slice(&e.score.to_le_bytes());
    }
    Ok(())
}

fn encode_hash(
    b: &mut Vec<u8>,
    h: &HashValue,
    t: u8,
    comp: bool,
    spill: &mut dyn Spill,
) -> Result<()> {
    if let Some(ttls) = field_ttls(h) {
        let min = ttls.values().copied().min().unwrap_or(0);
        b.extend_from_slice(&min.to_le_bytes());
        if t == TYPE_HASH_LISTPACK_EX {
            // Fields with TTL first, ascending TTL, then the others.
            let mut with: Vec<(&[u8], &[u8], u64)> = Vec::new();
            let mut without: Vec<(&[u8], &[u8])> = Vec::new();
            for (f, v) in &h.map {
                match ttls.get(f) {
                    Some(&t) => with.push((f, v, t)),
                    None => without.push((f, v)),
                }
            }
            with.sort_by_key(|x| x.2);
            let mut lp = LpBuilder::new();
            for (f, v, t) in with {
                lp.push(f);
                lp.push(v);
                lp.push_int(t as i64);
            }
            for (f, v) in without {
                lp.push(f);
                lp.push(v);
                lp.push_int(0);
            }
            put_string(b, &lp.finish(), comp);
            return Ok(());
        }
        put_len(b, h.map.len() as u64);
        for (i, (f, v)) in h.map.iter().enumerate() {
            element_point(i);
            spill.spill(b)?;
            let rel = ttls.get(f).map_or(0, |&t| t - min + 1);
            put_len(b, rel);
            put_string(b, f, comp);
            put_string(b, v, comp);
        }
        return Ok(());
    }
    if t == TYPE_HASH_LISTPACK {
        let mut lp = LpBuilder::new();
        for (f, v) in &h.map {
            lp.push(f);
            lp.push(v);
        }
        put_string(b, &lp.finish(), comp);
        return Ok(());
    }
    put_len(b, h.map.len() as u64);
    for (i, (f, v)) in h.map.iter().enumerate() {
        element_point(i);
        spill.spill(b)?;
        put_string(b, f, comp);
        put_string(b, v, comp);
    }
    Ok(())
}

/// A stream node under construction.
struct StreamNode<'a> {
    master: StreamId,
    master_fields: Vec<&'a [u8]>,
    lp: LpBuilder,
    count: i64,
}

impl StreamNode<'_> {
    fn finish(self) -> Vec<u8> {
        // The live count is the node's first element; rebuild the header
        // now that it is known (Redis patches it in place).
        let mut lp = LpBuilder::new();
        lp.push_int(self.count);
        lp.push_int(0);
        lp.push_int(self.master_fields.len() as i64);
        for f in &self.master_fields {
            lp.push(f);
        }
        lp.push_int(0);
        let n = self.lp_total_count();
        let mut head = lp.finish();
        head.pop(); // terminator
        let body = self.lp.finish();
        let mut out = head;
        out.extend_from_slice(&body[6..]);
        let total = out.len() as u32;
        out[0..4].copy_from_slice(&total.to_le_bytes());
        out[4..6].copy_from_slice(&n.to_le_bytes());
        out
    }

    fn lp_total_count(&self) -> u16 {
        let n = 4 + self.master_fields.len() + self.lp.count();
        u16::try_from(n).unwrap_or(u16::MAX)
    }
}

fn encode_stream(
    b: &mut Vec<u8>,
    s: &Stream,
    version: u32,
    comp: bool,
    spill: &mut dyn Spill,
) -> Result<()> {
    let mut nodes: Vec<StreamNode> = Vec::new();
    for (i, e) in s.entries.iter().enumerate() {
        element_point(i);
        let id = &e.id;
        let fields = e.fields();
        let totelelen: usize = fields.clone().map(|(f, v)| f.len() + v.len()).sum();
        let need_new = match nodes.last() {
            None => true,
            Some(n) => {
                // Approximate node size: header + body built so far.
                let bytes =
                    n.lp.bytes() + 16 + n.master_fields.iter().map(|f| f.len() + 2).sum::<usize>();
                bytes + totelelen >= STREAM_NODE_MAX_BYTES || n.count >= STREAM_NODE_MAX_ENTRIES
            }
        };
        if need_new {
            nodes.push(StreamNode {
                master: *id,
                master_fields: fields.clone().map(|(f, _)| f).collect(),
                lp: LpBuilder::new(),
                count: 0,
            });
        }
        let Some(node) = nodes.last_mut() else {
            continue;
        };
        let same = node.master_fields.len() == fields.len()
            && node
                .master_fields
                .iter()
                .zip(fields.clone())
                .all(|(m, (f, _))| *m == f);
        let nf = fields.len();
        let lp = &mut node.lp;
        lp.push_int(if same { 2 } else { 0 });
        lp.push_int(id.ms.wrapping_sub(node.master.ms) as i64);
        lp.push_int(id.seq.wrapping_sub(node.master.seq) as i64);
        if same {
            for (_, v) in fields {
                lp.push(v);
            }
            lp.push_int(nf as i64 + 3);
        } else {
            lp.push_int(nf as i64);
            for (f, v) in fields {
                lp.push(f);
                lp.push(v);
            }
            lp.push_int(2 * nf as i64 + 4);
        }
        node.count += 1;
    }
    put_len(b, nodes.len() as u64);
    for n in nodes {
        yield_point();
        spill.spill(b)?;
        let mut key = Vec::with_capacity(16);
        put_id_be(&mut key, n.master);
        put_string(b, &key, comp);
        put_string(b, &n.finish(), comp);
    }
    put_len(b, s.entries.len() as u64);
    put_id_len(b, s.last_id);
    put_id_len(b, s.first_id);
    put_id_len(b, s.max_deleted_id);
    put_len(b, s.entries_added);
    put_len(b, s.groups.len() as u64);
    for (name, g) in &s.groups {
        put_string(b, name, comp);
        put_id_len(b, g.last_id);
        put_len(b, g.entries_read as u64);
        put_len(b, g.pel.len() as u64);
        for (i, (id, pe)) in g.pel.iter().enumerate() {
            element_point(i);
            spill.spill(b)?;
            put_id_be(b, *id);
            b.extend_from_slice(&pe.delivery_time.to_le_bytes());
            put_len(b, pe.delivery_count);
        }
        put_len(b, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            put_string(b, cname, comp);
            b.extend_from_slice(&c.seen_time.to_le_bytes());
            if version >= 11 {
                b.extend_from_slice(&c.active_time.to_le_bytes());
            }
            put_len(b, c.pel.len() as u64);
            for (i, id) in c.pel.iter().enumerate() {
                element_point(i);
                spill.spill(b)?;
                put_id_be(b, *id);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g17_formatting() {
        assert_eq!(d2string(0.1), "0.10000000000000001");
        assert_eq!(d2string(2.5), "2.5");
        assert_eq!(d2string(1.0), "1");
        assert_eq!(d2string(-0.0), "-0");
        assert_eq!(d2string(1e20), "1e+20");
        assert_eq!(d2string(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(d2string(f64::INFINITY), "inf");
        assert_eq!(d2string(123456.789), "123456.789");
    }

    #[test]
    fn string_encodings() {
        let mut b = Vec::new();
        put_string(&mut b, b"12345", false);
        assert_eq!(b, [0xC1, 0x39, 0x30]);
        b.clear();
        put_string(&mut b, b"007", false);
        assert_eq!(b, [3, b'0', b'0', b'7']);
        b.clear();
        put_string(&mut b, b"4294967296", false);
        assert_eq!(b[0], 10);
    }

    /// Records around and past the buffer's size (small strings, a string
    /// bigger than the buffer, pre-encoded records bigger than it) come
    /// out whole and in order, the trailer is the CRC of everything before
    /// it, and the file loads back.
    #[test]
    fn the_file_is_its_records_and_one_checksum() {
        let opts = SaveOptions {
            ctime: Some(1_700_000_000),
            version: 11,
            ..SaveOptions::default()
        };
        let mut w = RdbWriter::new(Vec::new(), opts.clone()).unwrap();
        w.select_db(0, 3001, 0).unwrap();
        let mut want = Keyspace::new(16);
        let mut put = |w: &mut RdbWriter<Vec<u8>>, key: String, v: Vec<u8>| {
            w.write_str_entry(key.as_bytes(), &v, 0).unwrap();
            want.dbs[0].insert(key.as_bytes(), Value::str_from(&v), 0);
        };
        for i in 0..1000u32 {
            put(
                &mut w,
                format!("small:{i}"),
                (i * 7).to_le_bytes().repeat(70),
            );
        }
        put(
            &mut w,
            "big".into(),
            (0..300_000u32).map(|i| (i % 251) as u8).collect(),
        );
        let mut encoded = Vec::new();
        let mut x = 1u32;
        for i in 0..2000u32 {
            let key = format!("pre:{i}");
            // Bytes without repeats: kept as they are, 200 bytes a value.
            let bytes: Vec<u8> = (0..200)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let v = Value::str_from(&bytes);
            encode_entry(&mut encoded, key.as_bytes(), &v, 0, &opts).unwrap();
            want.dbs[0].insert(key.as_bytes(), v, 0);
        }
        assert!(encoded.len() > BUF_BYTES);
        w.write_encoded(&encoded).unwrap();
        // Collections whose records are bigger than the buffer, written out
        // while they are encoded (see the next test).
        for (key, v) in big_collections() {
            let before = w.bytes_written();
            w.write_entry(key.as_bytes(), &v, 0).unwrap();
            assert!(w.bytes_written() - before > BUF_BYTES as u64, "{key}");
            want.dbs[0].insert(key.as_bytes(), v, 0);
        }
        // A record that cannot be written (hash field expiry before RDB 12)
        // fails and leaves nothing of itself behind.
        let mut h = HashValue::default();
        h.set_field(b"f", b"v");
        h.field_expiry = Some(Box::new([(bytes::Bytes::from_static(b"f"), 5)].into()));
        let before = w.bytes_written();
        assert!(w.write_entry(b"ttl", &Value::Hash(Box::new(h)), 0).is_err());
        assert_eq!(w.bytes_written(), before);
        w.write_entry(b"last", &Value::str_from(b"1234567"), 0)
            .unwrap();
        want.dbs[0].insert(b"last", Value::str_from(b"1234567"), 0);
        let written = w.bytes_written();
        let file = w.finish().unwrap();
        assert_eq!(file.len() as u64, written + 9, "EOF and checksum");
        let (body, trailer) = file.split_at(file.len() - 8);
        assert_eq!(trailer, crc64(0, body).to_le_bytes());
        let mut got = Keyspace::new(16);
        let opts = crate::rdb::LoadOptions::new(0);
        crate::rdb::load_keyspace(&file[..], Some(file.len() as u64), &mut got, &opts).unwrap();
        assert_eq!(got.dbs[0].len(), want.dbs[0].len());
        for e in want.dbs[0].iter() {
            assert_eq!(got.dbs[0].peek(e.key()).map(|g| &g.value), Some(&e.value));
        }
    }

    /// A sorted set, hash, set and list of 40,000 elements each (members
    /// that LZF cannot shrink much).
    fn big_collections() -> Vec<(&'static str, Value)> {
        let n = 40_000u64;
        let member = |i: u64| {
            bytes::Bytes::from(format!("m:{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        };
        let mut z = ZSet::new();
        let mut h = HashValue::default();
        h.promote();
        let mut set = SetValue {
            members: crate::sharded::ShardedSet::new(),
            hashtable: true,
        };
        for i in 0..n {
            z.insert(member(i), i as f64 / 3.0);
            h.set_field(&member(i), b"value");
            set.members.insert(member(i));
        }
        let list = ListValue {
            items: (0..n).map(member).collect(),
        };
        vec![
            ("zset", Value::ZSet(Box::new(z))),
            ("hash", Value::Hash(Box::new(h))),
            ("set", Value::Set(Box::new(set))),
            ("list", Value::List(Box::new(list))),
        ]
    }

    /// A collection's encoder offers its record to the spill between
    /// elements, so a writer can take it out of the buffer as soon as it
    /// fills: the buffer never holds much more than that.
    #[test]
    fn a_big_record_is_never_whole_in_the_buffer() {
        struct Taken {
            spills: usize,
            most: usize,
        }
        impl Spill for Taken {
            fn spill(&mut self, b: &mut Vec<u8>) -> Result<()> {
                self.most = self.most.max(b.len());
                if b.len() >= BUF_BYTES {
                    self.spills += 1;
                    b.clear();
                }
                Ok(())
            }
        }
        let opts = SaveOptions {
            compression: false,
            ..SaveOptions::default()
        };
        for (key, v) in big_collections() {
            let mut b = Vec::new();
            let mut taken = Taken { spills: 0, most: 0 };
            encode_entry_with(&mut b, key.as_bytes(), &v, 0, &opts, &mut taken).unwrap();
            assert!(taken.spills >= 2, "{key}: {} spills", taken.spills);
            // One element (a list node: up to 8 KiB) past the buffer at most.
            let most = taken.most.max(b.len());
            assert!(
                most < BUF_BYTES + LIST_NODE_MAX_BYTES + 64,
                "{key}: {most} bytes held"
            );
        }
    }

    /// A compressed string's header in front of its LZF bytes, and the
    /// string record written from bytes equal to the one from a value.
    #[test]
    fn compressed_strings_and_string_records_from_bytes() {
        for n in [21, 63, 64, 300, 16_384, 70_000] {
            let s = vec![b'x'; n];
            let mut b = vec![0xAA];
            put_string(&mut b, &s, true);
            let c = lzf::compress(&s, n - 4).unwrap();
            let mut want = vec![0xAA, 0xC3];
            put_len(&mut want, c.len() as u64);
            put_len(&mut want, n as u64);
            want.extend_from_slice(&c);
            assert_eq!(b, want, "len {n}");
        }
        let opts = SaveOptions::default();
        for (key, value, exp) in [
            (&b"k"[..], &b"123"[..], 0),
            (b"key:000000000001", &[b'x'; 256][..], 1_700_000_000_000),
            (b"", b"not compressible at all, 0123456789", 0),
        ] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            encode_entry(&mut a, key, &Value::str_from(value), exp, &opts).unwrap();
            encode_str_entry(&mut b, key, value, exp, &opts);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn spec_listpack_example() {
        let mut lp = LpBuilder::new();
        for s in [&b"f1"[..], b"v1", b"f2", b"12"] {
            lp.push(s);
        }
        assert_eq!(
            lp.finish(),
            [
                0x15, 0, 0, 0, 4, 0, 0x82, b'f', b'1', 3, 0x82, b'v', b'1', 3, 0x82, b'f', b'2', 3,
                0x0C, 1, 0xFF
            ]
        );
    }
}
