//! The streaming RDB decoder.
//!
//! [`Decoder::next_item`] returns one top-level item at a time: an AUX
//! field, a SELECTDB, a whole key with its metadata, ... Memory use is
//! constant apart from the value being decoded. Everything read from the
//! input is bounds-checked before it sizes an allocation.

use super::blobs::{self, BlobResult, Elem};
use super::error::{ErrorKind, RdbError, Result};
use super::input::Input;
use super::lzf;
use super::types::*;
use crate::value::{
    ChunkList, Consumer, ConsumerGroup, HashValue, ListValue, PendingEntry, SetValue, Stream,
    StreamId, Value, ZSet, ENTRIES_READ_UNKNOWN,
};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap};
use std::io::Read;

/// Decoder settings.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// Check the CRC-64 trailer (a stored 0 always means "not computed").
    pub verify_checksum: bool,
    /// Accept RDB version 13 files (Redis 8 stream IDMP metadata is not
    /// decoded, so only files without such streams load).
    pub accept_v13: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            verify_checksum: true,
            accept_v13: true,
        }
    }
}

/// How the trailer checksum turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// Stored and computed values agree.
    Verified(u64),
    /// The file was saved with `rdbchecksum no` (stored value 0).
    NotComputed,
    /// Checking was disabled by the caller; the stored value is reported.
    Ignored { stored: u64, computed: u64 },
    /// RDB versions below 5 have no trailer.
    Absent,
}

/// A module value kept opaque: its type id, and its tagged body re-encoded
/// canonically (opcode/value pairs up to and including the EOF opcode).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleValue {
    pub module_id: u64,
    /// The 9-character module type name (e.g. `ReJSON-RL`).
    pub name: String,
    pub encver: u32,
    pub body: Vec<u8>,
}

/// A decoded value: data we model, or a module value we cannot interpret.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Value(Value),
    Module(ModuleValue),
}

/// One key as stored in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryRecord {
    pub key: Vec<u8>,
    /// The RDB object type byte (tells the on-disk encoding).
    pub rdb_type: u8,
    pub value: Decoded,
    /// Absolute unix ms (EXPIRETIME seconds are converted).
    pub expire_ms: Option<i64>,
    /// LRU idle seconds (IDLE opcode).
    pub idle: Option<u64>,
    /// LFU counter (FREQ opcode).
    pub freq: Option<u8>,
}

/// A top-level item of an RDB file.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Aux {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    SelectDb(u64),
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    SlotInfo {
        slot: u64,
        slot_size: u64,
        expires_slot_size: u64,
    },
    /// A function library. Pre-GA (7.0-rc) records are rebuilt into the
    /// `#!<engine> name=<name>\n<code>` form 7.0 uses.
    Function {
        code: Vec<u8>,
        pre_ga: bool,
    },
    ModuleAux {
        module_id: u64,
        name: String,
        when: u64,
        body: Vec<u8>,
    },
    Entry(EntryRecord),
    End(ChecksumStatus),
}

/// Streams items out of an RDB file.
pub struct Decoder<R> {
    inp: Input<R>,
    version: u32,
    opts: DecodeOptions,
    done: bool,
    expire: Option<i64>,
    idle: Option<u64>,
    freq: Option<u8>,
}

impl<R: Read> Decoder<R> {
    /// Reads and checks the 9-byte header. `total_len`, when known (a file's
    /// size), lets every length be checked against the remaining input.
    pub fn new(r: R, total_len: Option<u64>, opts: DecodeOptions) -> Result<Decoder<R>> {
        let mut inp = Input::new(r, total_len);
        let magic: [u8; 9] = inp.read_array("the 9-byte RDB header")?;
        if &magic[..5] != b"REDIS" {
            return Err(RdbError::new(0, ErrorKind::BadMagic));
        }
        // atoi of the 4 digits, as Redis does.
        let mut version: u32 = 0;
        for &c in &magic[5..] {
            if !c.is_ascii_digit() {
                break;
            }
            version = version * 10 + u32::from(c - b'0');
        }
        let max = if opts.accept_v13 { 13 } else { RDB_VERSION_MAX };
        if version < 1 || version > max {
            return Err(RdbError::new(5, ErrorKind::UnsupportedVersion(version)));
        }
        Ok(Decoder {
            inp,
            version,
            opts,
            done: false,
            expire: None,
            idle: None,
            freq: None,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// Offset of the next byte to be read.
    pub fn offset(&self) -> u64 {
        self.inp.offset()
    }

    /// Next top-level item; `Ok(None)` after [`Item::End`].
    pub fn next_item(&mut self) -> Result<Option<Item>> {
        if self.done {
            return Ok(None);
        }
        loop {
            let op = self.inp.read_u8("an opcode or type byte")?;
            match op {
                OP_EOF => {
                    self.done = true;
                    return self.finish().map(|s| Some(Item::End(s)));
                }
                OP_SELECTDB => {
                    let db = read_len(&mut self.inp)?;
                    return Ok(Some(Item::SelectDb(db)));
                }
                OP_RESIZEDB => {
                    let db_size = read_len(&mut self.inp)?;
                    let expires_size = read_len(&mut self.inp)?;
                    return Ok(Some(Item::ResizeDb {
                        db_size,
                        expires_size,
                    }));
                }
                OP_SLOT_INFO => {
                    let slot = read_len(&mut self.inp)?;
                    let slot_size = read_len(&mut self.inp)?;
                    let expires_slot_size = read_len(&mut self.inp)?;
                    return Ok(Some(Item::SlotInfo {
                        slot,
                        slot_size,
                        expires_slot_size,
                    }));
                }
                OP_AUX => {
                    let key = read_string(&mut self.inp, "an AUX key")?;
                    let value = read_string(&mut self.inp, "an AUX value")?;
                    return Ok(Some(Item::Aux { key, value }));
                }
                OP_EXPIRETIME => {
                    let b: [u8; 4] = self.inp.read_array("an EXPIRETIME value")?;
                    self.expire = Some(i64::from(i32::from_le_bytes(b)) * 1000);
                }
                OP_EXPIRETIME_MS => {
                    let b: [u8; 8] = self.inp.read_array("an EXPIRETIME_MS value")?;
                    self.expire = Some(i64::from_le_bytes(b));
                }
                OP_IDLE => {
                    self.idle = Some(read_len(&mut self.inp)?);
                }
                OP_FREQ => {
                    self.freq = Some(self.inp.read_u8("a FREQ value")?);
                }
                OP_FUNCTION2 => {
                    let code = read_string(&mut self.inp, "a function library")?;
                    return Ok(Some(Item::Function {
                        code,
                        pre_ga: false,
                    }));
                }
                OP_FUNCTION_PRE_GA => {
                    let name = read_string(&mut self.inp, "a function name")?;
                    let engine = read_string(&mut self.inp, "a function engine")?;
                    let has_desc = read_len(&mut self.inp)?;
                    if has_desc != 0 {
                        read_string(&mut self.inp, "a function description")?;
                    }
                    let body = read_string(&mut self.inp, "a function body")?;
                    let mut code = Vec::with_capacity(body.len() + name.len() + engine.len() + 10);
                    code.extend_from_slice(b"#!");
                    code.extend_from_slice(&engine);
                    code.extend_from_slice(b" name=");
                    code.extend_from_slice(&name);
                    code.push(b'\n');
                    code.extend_from_slice(&body);
                    return Ok(Some(Item::Function { code, pre_ga: true }));
                }
                OP_MODULE_AUX => {
                    let module_id = read_len(&mut self.inp)?;
                    let (name, _) = module_type_name(module_id);
                    let when_op = read_len(&mut self.inp)?;
                    if when_op != 2 {
                        return Err(self
                            .inp
                            .corrupt("MODULE_AUX 'when' to be tagged as an unsigned integer"));
                    }
                    let when = read_len(&mut self.inp)?;
                    let body = read_module_body(&mut self.inp)?;
                    return Ok(Some(Item::ModuleAux {
                        module_id,
                        name,
                        when,
                        body,
                    }));
                }
                t if is_object_type(t) => {
                    let key = read_string(&mut self.inp, "a key")?;
                    let value = read_object(&mut self.inp, self.version, t)
                        .map_err(|e| e.with_key(&key))?;
                    let rec = EntryRecord {
                        key,
                        rdb_type: t,
                        value,
                        expire_ms: self.expire.take(),
                        idle: self.idle.take(),
                        freq: self.freq.take(),
                    };
                    return Ok(Some(Item::Entry(rec)));
                }
                other => {
                    let off = self.inp.offset() - 1;
                    return Err(RdbError::new(off, ErrorKind::UnknownType(other)));
                }
            }
        }
    }

    fn finish(&mut self) -> Result<ChecksumStatus> {
        if self.version < 5 {
            return Ok(ChecksumStatus::Absent);
        }
        let computed = self.inp.crc();
        let stored = u64::from_le_bytes(self.inp.read_array("the 8-byte CRC-64 trailer")?);
        if stored == 0 {
            return Ok(ChecksumStatus::NotComputed);
        }
        if !self.opts.verify_checksum {
            return Ok(ChecksumStatus::Ignored { stored, computed });
        }
        if stored != computed {
            return Err(RdbError::new(
                self.inp.offset() - 8,
                ErrorKind::Checksum {
                    expected: stored,
                    got: computed,
                },
            ));
        }
        Ok(ChecksumStatus::Verified(stored))
    }
}

// ------------------------------------------------------------ primitives

/// Reads a length, or the special-encoding flag of a string.
#[inline]
pub(crate) fn read_len_enc<R: Read>(inp: &mut Input<R>) -> Result<(u64, bool)> {
    let b = inp.read_u8("a length")?;
    match b >> 6 {
        0 => Ok((u64::from(b & 0x3f), false)),
        1 => {
            let b2 = inp.read_u8("a 14-bit length")?;
            Ok(((u64::from(b & 0x3f) << 8) | u64::from(b2), false))
        }
        3 => Ok((u64::from(b & 0x3f), true)),
        _ => match b {
            0x80 => Ok((
                u64::from(u32::from_be_bytes(inp.read_array("a 32-bit length")?)),
                false,
            )),
            0x81 => Ok((
                u64::from_be_bytes(inp.read_array("a 64-bit length")?),
                false,
            )),
            _ => Err(inp.err(ErrorKind::UnknownLength(b))),
        },
    }
}

#[inline]
pub(crate) fn read_len<R: Read>(inp: &mut Input<R>) -> Result<u64> {
    match read_len_enc(inp)? {
        (v, false) => Ok(v),
        (_, true) => Err(inp.corrupt("a length, found a string encoding marker")),
    }
}

/// Reads an RDB string (raw, integer-encoded or LZF).
pub(crate) fn read_string<R: Read>(inp: &mut Input<R>, what: &'static str) -> Result<Vec<u8>> {
    let (len, enc) = read_len_enc(inp)?;
    if !enc {
        return inp.read_vec(len, what);
    }
    match len {
        0 => Ok((inp.read_u8(what)? as i8).to_string().into_bytes()),
        1 => Ok(i16::from_le_bytes(inp.read_array(what)?)
            .to_string()
            .into_bytes()),
        2 => Ok(i32::from_le_bytes(inp.read_array(what)?)
            .to_string()
            .into_bytes()),
        3 => {
            let clen = read_len(inp)?;
            let ulen = read_len(inp)?;
            let compressed = inp.read_vec(clen, what)?;
            // LZF expands at most ~88x (a 3-byte back-reference yields 264
            // bytes), so a larger declared size is corrupt, and we never
            // allocate from an unchecked length.
            if ulen > clen.saturating_mul(90).saturating_add(64) {
                return Err(inp.err(ErrorKind::Lzf));
            }
            let mut out = vec![0u8; ulen as usize];
            lzf::decompress_into(&compressed, &mut out).map_err(|_| inp.err(ErrorKind::Lzf))?;
            Ok(out)
        }
        other => Err(inp.err(ErrorKind::UnknownStringEncoding(other as u8))),
    }
}

#[inline]
fn read_bytes<R: Read>(inp: &mut Input<R>, what: &'static str) -> Result<Bytes> {
    read_string(inp, what).map(Bytes::from)
}

fn read_u64_le<R: Read>(inp: &mut Input<R>, what: &'static str) -> Result<u64> {
    Ok(u64::from_le_bytes(inp.read_array(what)?))
}

fn read_stream_id_raw<R: Read>(inp: &mut Input<R>) -> Result<StreamId> {
    let b: [u8; 16] = inp.read_array("a 16-byte stream ID")?;
    Ok(id_from_be(&b))
}

fn id_from_be(b: &[u8; 16]) -> StreamId {
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..]);
    StreamId {
        ms: u64::from_be_bytes(ms),
        seq: u64::from_be_bytes(seq),
    }
}

fn read_stream_id_len<R: Read>(inp: &mut Input<R>) -> Result<StreamId> {
    let ms = read_len(inp)?;
    let seq = read_len(inp)?;
    Ok(StreamId { ms, seq })
}

/// A capacity hint for `n` elements read from the input: never more than
/// the input can hold (each element takes at least a byte) and bounded, so
/// corrupt counts cannot trigger a huge allocation.
fn cap<R: Read>(inp: &Input<R>, n: u64) -> usize {
    let bound = inp.remaining().unwrap_or(1 << 16).min(1 << 20);
    n.min(bound) as usize
}

/// Reads a module value / module AUX tagged body, re-encoding it
/// canonically so it can be kept as opaque bytes.
fn read_module_body<R: Read>(inp: &mut Input<R>) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let op = read_len(inp)?;
        super::encode::put_len(&mut body, op);
        match op {
            0 => return Ok(body),
            1 | 2 => {
                let v = read_len(inp)?;
                super::encode::put_len(&mut body, v);
            }
            3 => body.extend_from_slice(&inp.read_array::<4>("a module float")?),
            4 => body.extend_from_slice(&inp.read_array::<8>("a module double")?),
            5 => {
                let s = read_string(inp, "a module string")?;
                super::encode::put_len(&mut body, s.len() as u64);
                body.extend_from_slice(&s);
            }
            _ => return Err(inp.corrupt(format!("a module value opcode 0..=5, got {op}"))),
        }
    }
}

// ------------------------------------------------------------ objects

/// Reads one object of RDB type `t` (the key has already been read).
pub(crate) fn read_object<R: Read>(inp: &mut Input<R>, version: u32, t: u8) -> Result<Decoded> {
    let v = match t {
        TYPE_STRING => Value::Str(read_bytes(inp, "a string value")?),
        TYPE_LIST => {
            let n = read_len(inp)?;
            let mut items = ChunkList::new();
            for _ in 0..n {
                items.push_back(read_bytes(inp, "a list element")?);
            }
            Value::List(Box::new(ListValue { items }))
        }
        TYPE_SET => {
            let n = read_len(inp)?;
            let mut s = SetValue {
                members: crate::sharded::ShardedSet::new(),
                hashtable: false,
            };
            for _ in 0..n {
                let m = read_bytes(inp, "a set member")?;
                if !s.members.insert(m) {
                    return Err(inp.corrupt("unique set members (duplicate set member)"));
                }
            }
            Value::Set(Box::new(s))
        }
        TYPE_ZSET | TYPE_ZSET_2 => {
            let n = read_len(inp)?;
            let mut z = ZSet::new();
            for _ in 0..n {
                let m = read_bytes(inp, "a zset member")?;
                let score = if t == TYPE_ZSET_2 {
                    f64::from_le_bytes(inp.read_array("a binary zset score")?)
                } else {
                    read_text_double(inp)?
                };
                if score.is_nan() {
                    return Err(inp.corrupt("a zset score that is not NaN"));
                }
                if z.insert(m, score).is_some() {
                    return Err(inp.corrupt("unique zset members (duplicate zset member)"));
                }
            }
            Value::ZSet(Box::new(z))
        }
        TYPE_HASH => {
            let n = read_len(inp)?;
            let mut h = new_hash(cap(inp, n));
            for _ in 0..n {
                let f = read_bytes(inp, "a hash field")?;
                let v = read_bytes(inp, "a hash value")?;
                if h.map.insert(f, v).is_some() {
                    return Err(inp.corrupt("unique hash fields (duplicate hash field)"));
                }
            }
            Value::Hash(Box::new(h))
        }
        TYPE_MODULE_PRE_GA => {
            let id = read_len(inp)?;
            let (name, _) = module_type_name(id);
            return Err(inp.err(ErrorKind::ModuleValue(format!(
                "{name}' (pre-GA module format, cannot be skipped"
            ))));
        }
        TYPE_MODULE_2 => {
            let module_id = read_len(inp)?;
            let (name, encver) = module_type_name(module_id);
            let body = read_module_body(inp)?;
            return Ok(Decoded::Module(ModuleValue {
                module_id,
                name,
                encver,
                body,
            }));
        }
        TYPE_HASH_ZIPMAP => {
            let blob = read_string(inp, "a zipmap")?;
            let mut h = new_hash(0);
            let r = blobs::zipmap_for_each(&blob, |f, v| {
                if h.map
                    .insert(Bytes::copy_from_slice(f), Bytes::copy_from_slice(v))
                    .is_some()
                {
                    return Err("unique zipmap fields".into());
                }
                Ok(())
            });
            blob_ok(inp, r)?;
            Value::Hash(Box::new(h))
        }
        TYPE_LIST_ZIPLIST => {
            let blob = read_string(inp, "a ziplist")?;
            let mut items = ChunkList::new();
            let r = blobs::ziplist_for_each(&blob, |e| {
                items.push_back(e.to_bytes());
                Ok(())
            });
            blob_ok(inp, r)?;
            Value::List(Box::new(ListValue { items }))
        }
        TYPE_SET_INTSET => {
            let blob = read_string(inp, "an intset")?;
            let mut s = SetValue::default();
            let r = blobs::intset_for_each(&blob, |i| {
                s.members.insert(Bytes::from(i.to_string()));
                Ok(())
            });
            blob_ok(inp, r)?;
            Value::Set(Box::new(s))
        }
        TYPE_SET_LISTPACK => {
            let blob = read_string(inp, "a set listpack")?;
            let mut s = SetValue::default();
            let r = blobs::listpack_for_each(&blob, |e| {
                if !s.members.insert(e.to_bytes()) {
                    return Err("unique set members".into());
                }
                Ok(())
            });
            blob_ok(inp, r)?;
            Value::Set(Box::new(s))
        }
        TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => {
            let blob = read_string(inp, "a zset ziplist/listpack")?;
            let mut z = ZSet::new();
            let mut member: Option<Bytes> = None;
            let f = |e: Elem<'_>| -> BlobResult<()> {
                match member.take() {
                    None => member = Some(e.to_bytes()),
                    Some(m) => {
                        let score = e.as_score()?;
                        if z.insert(m, score).is_some() {
                            return Err("unique zset members".into());
                        }
                    }
                }
                Ok(())
            };
            let r = if t == TYPE_ZSET_ZIPLIST {
                blobs::ziplist_for_each(&blob, f)
            } else {
                blobs::listpack_for_each(&blob, f)
            };
            blob_ok(inp, r)?;
            if member.is_some() {
                return Err(inp.corrupt("an even number of zset blob elements"));
            }
            Value::ZSet(Box::new(z))
        }
        TYPE_HASH_ZIPLIST | TYPE_HASH_LISTPACK => {
            let blob = read_string(inp, "a hash ziplist/listpack")?;
            let mut h = new_hash(0);
            let mut field: Option<Bytes> = None;
            let f = |e: Elem<'_>| -> BlobResult<()> {
                match field.take() {
                    None => field = Some(e.to_bytes()),
                    Some(k) => {
                        if h.map.insert(k, e.to_bytes()).is_some() {
                            return Err("unique hash fields".into());
                        }
                    }
                }
                Ok(())
            };
            let r = if t == TYPE_HASH_ZIPLIST {
                blobs::ziplist_for_each(&blob, f)
            } else {
                blobs::listpack_for_each(&blob, f)
            };
            blob_ok(inp, r)?;
            if field.is_some() {
                return Err(inp.corrupt("an even number of hash blob elements"));
            }
            Value::Hash(Box::new(h))
        }
        TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
            let n = read_len(inp)?;
            let mut items = ChunkList::new();
            for _ in 0..n {
                let container = if t == TYPE_LIST_QUICKLIST_2 {
                    read_len(inp)?
                } else {
                    QUICKLIST_NODE_PACKED
                };
                let blob = read_string(inp, "a quicklist node")?;
                match container {
                    // Plain nodes exist only for huge elements; an empty
                    // one is corrupt (Redis refuses it too).
                    QUICKLIST_NODE_PLAIN if blob.is_empty() => {
                        return Err(inp.corrupt("a non-empty plain quicklist node"));
                    }
                    QUICKLIST_NODE_PLAIN => items.push_back(Bytes::from(blob)),
                    QUICKLIST_NODE_PACKED => {
                        // Empty nodes are skipped, as Redis does; an all-empty
                        // list then counts as an empty key.
                        let push = |e: Elem<'_>| {
                            items.push_back(e.to_bytes());
                            Ok(())
                        };
                        let r = if t == TYPE_LIST_QUICKLIST {
                            blobs::ziplist_for_each(&blob, push)
                        } else {
                            blobs::listpack_for_each(&blob, push)
                        };
                        blob_ok(inp, r)?;
                    }
                    _ => {
                        return Err(inp.corrupt(format!(
                            "quicklist node container 1 (plain) or 2 (packed), got {container}"
                        )))
                    }
                }
            }
            Value::List(Box::new(ListValue { items }))
        }
        TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
            Value::Stream(Box::new(read_stream(inp, t)?))
        }
        TYPE_HASH_METADATA | TYPE_HASH_METADATA_PRE_GA => {
            let min_expire = if t == TYPE_HASH_METADATA {
                read_u64_le(inp, "a hash minimum expire time")?
            } else {
                0
            };
            let n = read_len(inp)?;
            let mut h = new_hash(cap(inp, n));
            let mut ttls = HashMap::new();
            for _ in 0..n {
                let ttl = read_len(inp)?;
                let f = read_bytes(inp, "a hash field")?;
                let v = read_bytes(inp, "a hash value")?;
                if ttl != 0 {
                    let at = if t == TYPE_HASH_METADATA {
                        min_expire.checked_add(ttl - 1)
                    } else {
                        Some(ttl)
                    };
                    match at {
                        Some(at) if at <= HFE_MAX_EXPIRE => {
                            ttls.insert(f.clone(), at);
                        }
                        _ => return Err(inp.corrupt("a hash field expire time <= 2^48-1")),
                    }
                }
                if h.map.insert(f, v).is_some() {
                    return Err(inp.corrupt("unique hash fields (duplicate hash field)"));
                }
            }
            if !ttls.is_empty() {
                h.field_expiry = Some(Box::new(ttls));
            }
            Value::Hash(Box::new(h))
        }
        TYPE_HASH_LISTPACK_EX | TYPE_HASH_LISTPACK_EX_PRE_GA => {
            if t == TYPE_HASH_LISTPACK_EX {
                read_u64_le(inp, "a hash minimum expire time")?;
            }
            let blob = read_string(inp, "a hash listpack with TTLs")?;
            let h = blob_ok(inp, hash_lpex(&blob))?;
            Value::Hash(Box::new(h))
        }
        other => return Err(inp.err(ErrorKind::UnknownType(other))),
    };
    let _ = version;
    Ok(Decoded::Value(v))
}

fn new_hash(cap: usize) -> HashValue {
    HashValue {
        map: crate::value::HashFields::with_capacity(cap),
        field_expiry: None,
    }
}

fn blob_ok<R: Read, T>(inp: &Input<R>, r: BlobResult<T>) -> Result<T> {
    r.map_err(|what| inp.corrupt(what))
}

/// Type 3 zset scores: a length byte then ASCII (253/254/255 = nan/inf/-inf).
fn read_text_double<R: Read>(inp: &mut Input<R>) -> Result<f64> {
    let n = inp.read_u8("a text zset score")?;
    match n {
        253 => Ok(f64::NAN),
        254 => Ok(f64::INFINITY),
        255 => Ok(f64::NEG_INFINITY),
        n => {
            let buf = inp.read_vec(u64::from(n), "a text zset score")?;
            blobs::parse_f64(&buf).ok_or_else(|| inp.corrupt("a parseable text zset score"))
        }
    }
}

/// Hash listpack with TTL triples (types 23/25): fields with a TTL first,
/// in ascending TTL order, then fields without (TTL 0).
fn hash_lpex(blob: &[u8]) -> BlobResult<HashValue> {
    let mut lp = blobs::listpack(blob)?;
    let mut h = new_hash(0);
    let mut ttls = HashMap::new();
    let mut last_ttl = 0u64;
    let mut seen_no_ttl = false;
    while let Some(f) = lp.next_elem()? {
        let v = lp.must("a hash value")?;
        let ttl = match lp.must("a hash field TTL")? {
            Elem::Int(i) if i >= 0 => i as u64,
            _ => return Err("an integer hash field TTL".into()),
        };
        if ttl > HFE_MAX_EXPIRE {
            return Err("a hash field TTL <= 2^48-1".into());
        }
        let fb = f.to_bytes();
        if ttl == 0 {
            seen_no_ttl = true;
        } else {
            if seen_no_ttl || ttl < last_ttl {
                return Err("hash fields with TTL first, in ascending TTL order".into());
            }
            last_ttl = ttl;
            ttls.insert(fb.clone(), ttl);
        }
        if h.map.insert(fb, v.to_bytes()).is_some() {
            return Err("unique hash fields".into());
        }
    }
    if !ttls.is_empty() {
        h.field_expiry = Some(Box::new(ttls));
    }
    Ok(h)
}

// ------------------------------------------------------------ streams

fn read_stream<R: Read>(inp: &mut Input<R>, t: u8) -> Result<Stream> {
    let mut s = Stream::default();
    let nodes = read_len(inp)?;
    let mut last_seen: Option<StreamId> = None;
    let mut live_total = 0u64;
    for _ in 0..nodes {
        let nodekey = read_string(inp, "a stream node key")?;
        let key16: [u8; 16] = nodekey
            .as_slice()
            .try_into()
            .map_err(|_| inp.corrupt("a stream node key of 16 bytes (the size of a stream ID)"))?;
        let master = id_from_be(&key16);
        let blob = read_string(inp, "a stream listpack")?;
        let r = parse_stream_node(&blob, master, &mut s, &mut last_seen);
        live_total += blob_ok(inp, r)?;
    }
    let length = read_len(inp)?;
    s.last_id = read_stream_id_len(inp)?;
    if t >= TYPE_STREAM_LISTPACKS_2 {
        s.first_id = read_stream_id_len(inp)?;
        s.max_deleted_id = read_stream_id_len(inp)?;
        s.entries_added = read_len(inp)?;
    } else {
        s.first_id = s.entries.first_id().unwrap_or_default();
        s.max_deleted_id = StreamId::MIN;
        s.entries_added = length;
    }
    // Redis trusts the stored length (old 5.0 XTRIM left files where it
    // differs from the live entries); only a length without nodes is
    // refused. Our model derives the length from the entries.
    if length > 0 && nodes == 0 {
        return Err(inp.corrupt("stream nodes for a non-empty stream"));
    }
    let _ = live_total;
    if let Some(last) = s.entries.last_id() {
        if last > s.last_id {
            return Err(inp.corrupt("stream last ID not below its newest entry"));
        }
    }
    let ngroups = read_len(inp)?;
    for _ in 0..ngroups {
        let name = read_bytes(inp, "a consumer group name")?;
        let mut g = ConsumerGroup {
            last_id: read_stream_id_len(inp)?,
            ..ConsumerGroup::default()
        };
        g.entries_read = if t >= TYPE_STREAM_LISTPACKS_2 {
            read_len(inp)? as i64
        } else {
            estimate_entries_read(&s, g.last_id)
        };
        let npel = read_len(inp)?;
        for _ in 0..npel {
            let id = read_stream_id_raw(inp)?;
            let delivery_time = read_u64_le(inp, "a PEL delivery time")?;
            let delivery_count = read_len(inp)?;
            let pe = PendingEntry {
                delivery_time,
                delivery_count,
                consumer: Bytes::new(),
            };
            if g.pel.insert(id, pe).is_some() {
                return Err(inp.corrupt("unique IDs in a group PEL (duplicated PEL entry)"));
            }
        }
        let nconsumers = read_len(inp)?;
        let mut owned = 0u64;
        for _ in 0..nconsumers {
            let cname = read_bytes(inp, "a consumer name")?;
            let seen_time = read_u64_le(inp, "a consumer seen time")?;
            let active_time = if t >= TYPE_STREAM_LISTPACKS_3 {
                read_u64_le(inp, "a consumer active time")?
            } else {
                seen_time
            };
            let mut c = Consumer {
                seen_time,
                active_time,
                pel: BTreeSet::new(),
            };
            let n = read_len(inp)?;
            for _ in 0..n {
                let id = read_stream_id_raw(inp)?;
                let Some(pe) = g.pel.get_mut(&id) else {
                    return Err(inp.corrupt("a consumer PEL entry present in the group PEL"));
                };
                if !pe.consumer.is_empty() || !c.pel.insert(id) {
                    return Err(inp.corrupt("a PEL entry owned by a single consumer"));
                }
                pe.consumer = cname.clone();
                owned += 1;
            }
            if g.consumers.insert(cname, c).is_some() {
                return Err(inp.corrupt("unique consumer names (duplicate stream consumer)"));
            }
        }
        if owned != g.pel.len() as u64 {
            return Err(inp.corrupt("every group PEL entry to be owned by a consumer"));
        }
        if s.groups.insert(name, g).is_some() {
            return Err(inp.corrupt("unique consumer group names"));
        }
    }
    Ok(s)
}

/// Redis 7's estimate of a group's entries_read for v1 streams.
fn estimate_entries_read(s: &Stream, id: StreamId) -> i64 {
    if s.entries_added == 0 {
        return 0;
    }
    if s.entries.is_empty() && id <= s.last_id {
        return s.entries_added as i64;
    }
    if id == s.last_id {
        return s.entries_added as i64;
    }
    if id > s.last_id {
        return ENTRIES_READ_UNKNOWN;
    }
    if s.max_deleted_id == StreamId::MIN || s.max_deleted_id < s.first_id {
        // Wrapping: the counters come from the file and may be absurd.
        let base = (s.entries_added as i64).wrapping_sub(s.entries.len() as i64);
        if id < s.first_id {
            return base;
        }
        if id == s.first_id {
            return base.wrapping_add(1);
        }
    }
    ENTRIES_READ_UNKNOWN
}

/// Appends an element's text (integers in decimal) to `text`, and where it
/// lies to `spans`.
fn put_text(text: &mut Vec<u8>, spans: &mut Vec<(usize, usize)>, e: Elem<'_>) {
    let start = text.len();
    match e {
        Elem::Str(s) => text.extend_from_slice(s),
        Elem::Int(i) => {
            use std::io::Write;
            // Writing to a Vec cannot fail.
            let _ = write!(text, "{i}");
        }
    }
    spans.push((start, text.len()));
}

/// Parses one stream node listpack; returns its live entry count.
fn parse_stream_node(
    blob: &[u8],
    master: StreamId,
    s: &mut Stream,
    last_seen: &mut Option<StreamId>,
) -> BlobResult<u64> {
    let mut lp = blobs::listpack(blob)?;
    let count = lp
        .next_elem()?
        .ok_or("a non-empty stream listpack")?
        .as_int()
        .ok_or("an integer entry count")?;
    let deleted = lp.must_int("deleted count")?;
    let nfields = lp.must_int("master field count")?;
    if count < 0 || deleted < 0 || nfields < 0 || nfields as usize > blob.len() {
        return Err("sane stream node counts".into());
    }
    let mut master_fields = Vec::with_capacity(nfields as usize);
    for _ in 0..nfields {
        master_fields.push(lp.must("a master field")?.to_bytes());
    }
    // Each entry's strings go back to back into one buffer reused from
    // entry to entry (`spans` marks them), and from there into the packed
    // stream: no allocation per entry or string.
    let mut text: Vec<u8> = Vec::new();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    if lp.must_int("the master entry terminator")? != 0 {
        return Err("a 0 master entry terminator".into());
    }
    let (mut live, mut dead) = (0i64, 0i64);
    while let Some(flags) = lp.next_elem()? {
        let flags = flags.as_int().ok_or("integer entry flags")?;
        let ms = lp.must_int("entry ms delta")?;
        let seq = lp.must_int("entry seq delta")?;
        let id = StreamId {
            ms: master.ms.wrapping_add(ms as u64),
            seq: master.seq.wrapping_add(seq as u64),
        };
        let same = flags & 2 != 0;
        let n = if same {
            master_fields.len()
        } else {
            let n = lp.must_int("entry field count")?;
            if n < 0 || n as usize > blob.len() {
                return Err("a sane entry field count".into());
            }
            n as usize
        };
        text.clear();
        spans.clear();
        for i in 0..n {
            match master_fields.get(i).filter(|_| same) {
                Some(f) => put_text(&mut text, &mut spans, Elem::Str(f)),
                None => put_text(&mut text, &mut spans, lp.must("an entry field")?),
            }
            put_text(&mut text, &mut spans, lp.must("an entry value")?);
        }
        let lp_count = lp.must_int("entry lp-count")?;
        let expect = if same { n as i64 + 3 } else { 2 * n as i64 + 4 };
        if lp_count != expect {
            return Err(format!("entry lp-count {expect}, got {lp_count}"));
        }
        if last_seen.is_some_and(|l| id <= l) {
            return Err("stream entry IDs in ascending order".into());
        }
        *last_seen = Some(id);
        if flags & 1 != 0 {
            dead += 1;
        } else {
            live += 1;
            let at = |(a, b): (usize, usize)| &text[a..b];
            s.entries
                .insert(id, spans.chunks_exact(2).map(|p| (at(p[0]), at(p[1]))));
        }
    }
    if live != count || dead != deleted {
        return Err(format!(
            "stream node counts {count}/{deleted} to match its entries {live}/{dead}"
        ));
    }
    if live == 0 {
        return Err("a stream node with at least one live entry".into());
    }
    Ok(live as u64)
}
