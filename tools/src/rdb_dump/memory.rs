//! `memory`: one CSV row per key, as rdbtools' memory report:
//! `database,type,key,size_in_bytes,encoding,num_elements,len_largest_element,expiry`.
//!
//! # Size model
//!
//! The estimate follows rdbtools' `MemoryCallback` (64-bit, Redis ≥ 4.0,
//! jemalloc size classes), so figures are comparable with its reports:
//!
//! - every key: dict entry (24) + robj (16) + the key's sds; with a TTL,
//!   another dict entry plus 8 bytes;
//! - sds of length l: jemalloc class of `l + header + 2` (header 1/2/4/8/16
//!   bytes for l < 2^5/2^8/2^16/2^32/…); strings that parse as integers
//!   cost nothing (they live in the robj);
//! - lists: quicklist (32 bytes + 40 per node, nodes split at 8 KiB of
//!   entries) + 11 bytes of header per node + each entry's ziplist size
//!   (prevlen + header + data, integers by their width);
//! - compact hashes/sets/zsets (listpack, ziplist, intset, zipmap): the
//!   blob size. rdbtools takes it from the file; we rebuild it from the
//!   elements (listpack / ziplist / intset entry sizes), which can differ
//!   from the stored blob by a few bytes (e.g. a zset score stored as text
//!   where we would store an integer);
//! - hashtable hashes and sets: dict (4 + 7·8 + 4·8 + 1.5·8·next_pow2(n)) +
//!   per element a dict entry plus the sds of field (and value);
//! - skiplist zsets: dict + skiplist header + per member 8 (score) + sds +
//!   dict entry + skiplist node with rdbtools' random level replaced by its
//!   mean (4/3 levels), so results are deterministic;
//! - streams: stream and rax structs + listpack bytes (rebuilt: 100 entries
//!   per node, each entry its fields, values and 4 small integers) + rdbtools'
//!   radix-tree estimate + consumer groups, PEL entries (NACKs) and consumers;
//! - modules: the serialized body plus 9 bytes.
//!
//! Encodings are the on-disk ones as `OBJECT ENCODING` names them
//! (`listpack`, `quicklist`, `hashtable`, `intset`, `skiplist`, `ziplist`,
//! …); types use rdbtools' names (`string`, `list`, `set`, `sortedset`,
//! `hash`, `stream`, `module`). `expiry` is ISO 8601 UTC like rdbtools'.
//! Keys are CSV-escaped (see [`super::text`]).

use super::text::{csv_field, display, iso8601_ms};
use super::{open_rdb, werr, DumpError, Filters, Kind, Result};
use redoubt_persist::rdb::{type_encoding_name, DecodeOptions, Decoded, EntryRecord, Item};
use redoubt_persist::Value;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::path::Path;

const PTR: f64 = 8.0;
const LONG: f64 = 8.0;

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub size: u64,
    pub db: u64,
    pub key: Vec<u8>,
    pub kind: &'static str,
    pub encoding: &'static str,
    pub num_elements: u64,
    pub len_largest: u64,
    pub expiry: Option<i64>,
}

const CLASSES: &[u64] = &[
    8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640,
    768, 896, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240,
    12288, 14336, 16384,
];

/// jemalloc 4 size class holding `n` bytes (rdbtools' table; above 16 KiB
/// classes are spaced four per power of two).
pub fn malloc_size(n: u64) -> u64 {
    if n <= 16384 {
        return CLASSES[CLASSES.partition_point(|&c| c < n)];
    }
    let p = 63 - (n - 1).leading_zeros(); // 2^p < n <= 2^(p+1)
    let step = 1u64 << (p - 2);
    n.div_ceil(step) * step
}

fn is_int(s: &[u8]) -> bool {
    !s.is_empty()
        && s.len() <= 20
        && std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .is_some()
}

/// rdbtools' `sizeof_string`.
pub fn sizeof_string(s: &[u8]) -> f64 {
    if is_int(s) {
        return 0.0;
    }
    let l = s.len() as u64;
    let h = if l < 1 << 5 {
        1
    } else if l < 1 << 8 {
        3
    } else if l < 1 << 16 {
        5
    } else if l < 1 << 32 {
        9
    } else {
        17
    };
    malloc_size(l + h + 1) as f64
}

fn dict_entry() -> f64 {
    2.0 * PTR + 8.0
}

fn robj() -> f64 {
    PTR + 8.0
}

fn next_power(n: usize) -> f64 {
    let mut p: u64 = 1;
    while p <= n as u64 {
        p <<= 1;
    }
    p as f64
}

fn hashtable(n: usize) -> f64 {
    4.0 + 7.0 * LONG + 4.0 * PTR + next_power(n) * PTR * 1.5
}

fn skiplist(n: usize) -> f64 {
    2.0 * PTR + hashtable(n) + (2.0 * PTR + 16.0)
}

fn skiplist_entry() -> f64 {
    dict_entry() + 2.0 * PTR + 8.0 + (PTR + 8.0) * (4.0 / 3.0)
}

fn int_of(s: &[u8]) -> Option<i64> {
    if is_int(s) {
        std::str::from_utf8(s).ok()?.parse().ok()
    } else {
        None
    }
}

/// rdbtools' `ziplist_entry_overhead`.
fn ziplist_entry(s: &[u8]) -> f64 {
    let (header, size) = match int_of(s) {
        Some(v) => {
            let size = if v < 12 {
                0
            } else if v < 1 << 8 {
                1
            } else if v < 1 << 16 {
                2
            } else if v < 1 << 24 {
                3
            } else if v < 1 << 32 {
                4
            } else {
                8
            };
            (1, size)
        }
        None => {
            let size = s.len() as u64;
            let h = if size <= 63 {
                1
            } else if size <= 16383 {
                2
            } else {
                5
            };
            (h, size)
        }
    };
    let prev = if size < 254 { 1 } else { 5 };
    (prev + header + size) as f64
}

/// Bytes of one listpack entry (encoding + data + backlen).
fn lp_entry(s: &[u8]) -> u64 {
    let body = match int_of(s) {
        Some(v) if (0..=127).contains(&v) => 1,
        Some(v) if (-4096..=4095).contains(&v) => 2,
        Some(v) if (-32768..=32767).contains(&v) => 3,
        Some(v) if (-(1 << 23)..(1 << 23)).contains(&v) => 4,
        Some(v) if (-(1 << 31)..(1 << 31)).contains(&v) => 5,
        Some(_) => 9,
        None => {
            let l = s.len() as u64;
            l + if l < 64 {
                1
            } else if l < 4096 {
                2
            } else {
                5
            }
        }
    };
    let back = if body <= 127 {
        1
    } else if body < 16383 {
        2
    } else if body < 2097151 {
        3
    } else if body < 268435455 {
        4
    } else {
        5
    };
    body + back
}

fn elem_len(s: &[u8]) -> u64 {
    if is_int(s) {
        LONG as u64
    } else {
        s.len() as u64
    }
}

/// Estimates one key.
pub fn estimate(db: u64, e: &EntryRecord) -> Row {
    let mut size = dict_entry() + sizeof_string(&e.key) + robj();
    if e.expire_ms.is_some() {
        size += dict_entry() + 8.0;
    }
    let t = e.rdb_type;
    let encoding = type_encoding_name(t);
    let compact = matches!(encoding, "listpack" | "listpackex" | "ziplist" | "zipmap");
    let mut largest = 0u64;
    let n: u64;
    let mut seen = |s: &[u8]| {
        largest = largest.max(elem_len(s));
    };
    let kind = match Kind::of(t) {
        Kind::String => "string",
        Kind::List => "list",
        Kind::Set => "set",
        Kind::Zset => "sortedset",
        Kind::Hash => "hash",
        Kind::Stream => "stream",
        Kind::Module => "module",
    };
    match &e.value {
        Decoded::Module(m) => {
            size += 9.0 + m.body.len() as f64;
            n = 1;
        }
        Decoded::Value(v) => match v {
            Value::Str(s) => {
                size += sizeof_string(s);
                n = elem_len(s);
                seen(s);
            }
            Value::List(l) => {
                let (mut zips, mut cur, mut items) = (1.0, 0.0, 0.0);
                for x in &l.items {
                    seen(x);
                    let z = ziplist_entry(x);
                    if cur + z > 8192.0 {
                        cur = z;
                        zips += 1.0;
                    } else {
                        cur += z;
                    }
                    items += z;
                }
                n = l.items.len() as u64;
                let quicklist = 2.0 * PTR + LONG + 8.0 + zips * (4.0 * PTR + LONG + 8.0);
                size += quicklist + 11.0 * zips + items;
            }
            Value::Set(s) => {
                n = s.members.len() as u64;
                if encoding == "intset" {
                    let mut width = 2u64;
                    for m in &s.members {
                        seen(m);
                        let v = int_of(m).unwrap_or(0);
                        if i32::try_from(v).is_err() {
                            width = 8;
                        } else if i16::try_from(v).is_err() {
                            width = width.max(4);
                        }
                    }
                    size += (8 + n * width) as f64;
                } else if compact {
                    let mut lp = 7;
                    for m in &s.members {
                        seen(m);
                        lp += lp_entry(m);
                    }
                    size += lp as f64;
                } else {
                    size += hashtable(s.members.len());
                    for m in &s.members {
                        seen(m);
                        size += sizeof_string(m) + dict_entry();
                    }
                }
            }
            Value::ZSet(z) => {
                n = z.len() as u64;
                if compact {
                    let mut blob = if encoding == "ziplist" { 11.0 } else { 7.0 };
                    for e in z.iter() {
                        seen(&e.member);
                        let sc = redoubt_persist::aof::rewrite::score_text(e.score);
                        if encoding == "ziplist" {
                            blob += ziplist_entry(&e.member) + ziplist_entry(sc.as_bytes());
                        } else {
                            blob += (lp_entry(&e.member) + lp_entry(sc.as_bytes())) as f64;
                        }
                    }
                    size += blob;
                } else {
                    size += skiplist(z.len());
                    for e in z.iter() {
                        seen(&e.member);
                        size += 8.0 + sizeof_string(&e.member) + skiplist_entry();
                    }
                }
            }
            Value::Hash(h) => {
                n = h.map.len() as u64;
                if compact {
                    let mut blob = if encoding == "listpack" || encoding == "listpackex" {
                        7.0
                    } else {
                        11.0
                    };
                    for (k, v) in &h.map {
                        seen(k);
                        seen(v);
                        if encoding.starts_with("listpack") {
                            blob += (lp_entry(k) + lp_entry(v)) as f64;
                            if encoding == "listpackex" {
                                blob += 9.0;
                            }
                        } else {
                            blob += ziplist_entry(k) + ziplist_entry(v);
                        }
                    }
                    size += blob;
                } else {
                    size += hashtable(h.map.len());
                    for (k, v) in &h.map {
                        seen(k);
                        seen(v);
                        size += sizeof_string(k) + sizeof_string(v) + dict_entry();
                    }
                }
            }
            Value::Stream(s) => {
                n = 1;
                size += PTR * 2.0 + 8.0 + 16.0 + PTR + 16.0;
                let mut nodes = 0usize;
                let mut lp = 0u64;
                for (i, e) in s.entries.iter().enumerate() {
                    let fields = e.fields();
                    if i % 100 == 0 {
                        if i > 0 {
                            size += malloc_size(lp) as f64;
                        }
                        nodes += 1;
                        lp = 7 + 4 + fields.len() as u64 * 2 + 1;
                    }
                    lp += 4 + 2;
                    for (k, v) in fields {
                        lp += lp_entry(k) + lp_entry(v);
                    }
                }
                if nodes > 0 {
                    size += malloc_size(lp) as f64;
                    largest = lp.max(largest);
                }
                size += rax(nodes);
                for (name, g) in &s.groups {
                    let _ = name;
                    size += PTR * 2.0 + 16.0;
                    size += rax(g.pel.len());
                    size += g.pel.len() as f64 * (PTR + 8.0 + 8.0);
                    for (cname, c) in &g.consumers {
                        size += PTR * 2.0 + 8.0 + sizeof_string(cname) + rax(c.pel.len());
                    }
                }
            }
        },
    }
    Row {
        size: size as u64,
        db,
        key: e.key.clone(),
        kind,
        encoding,
        num_elements: n,
        len_largest: largest,
        expiry: e.expire_ms,
    }
}

/// rdbtools' `sizeof_stream_radix_tree`.
fn rax(n: usize) -> f64 {
    let nodes = (n as f64 * 2.5) as u64 as f64;
    16.0 * n as f64 + nodes * 4.0 + nodes * 30.0 * LONG
}

fn write_row(out: &mut dyn Write, r: &Row) -> std::io::Result<()> {
    write!(out, "{},{},", r.db, r.kind)?;
    csv_field(out, &display(&r.key))?;
    writeln!(
        out,
        ",{},{},{},{},{}",
        r.size,
        r.encoding,
        r.num_elements,
        r.len_largest,
        r.expiry.map(iso8601_ms).unwrap_or_default()
    )
}

pub fn run(
    path: &Path,
    f: &Filters,
    largest: Option<usize>,
    min_bytes: Option<u64>,
    out: &mut dyn Write,
) -> Result<()> {
    let mut dec = open_rdb(path, DecodeOptions::default())?;
    writeln!(
        out,
        "database,type,key,size_in_bytes,encoding,num_elements,len_largest_element,expiry"
    )
    .map_err(werr)?;
    let mut db = 0;
    // --largest N: a min-heap of the N biggest rows (memory bounded by N).
    let mut heap: BinaryHeap<Reverse<(u64, u64, Row)>> = BinaryHeap::new();
    let mut seq = 0u64;
    while let Some(item) = dec.next_item().map_err(DumpError::rdb(path))? {
        match item {
            Item::SelectDb(n) => db = n,
            Item::Entry(e) => {
                if !f.matches(db, &e.key, e.rdb_type) {
                    continue;
                }
                let r = estimate(db, &e);
                if min_bytes.is_some_and(|m| r.size < m) {
                    continue;
                }
                match largest {
                    None => write_row(out, &r).map_err(werr)?,
                    Some(0) => {}
                    Some(k) => {
                        seq += 1;
                        // Ties: the earlier key wins (larger Reverse(seq)).
                        heap.push(Reverse((r.size, u64::MAX - seq, r)));
                        if heap.len() > k {
                            heap.pop();
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut rows: Vec<(u64, u64, Row)> = heap.into_iter().map(|Reverse(x)| x).collect();
    rows.sort_by(|a, b| b.cmp(a));
    for (_, _, r) in rows {
        write_row(out, &r).map_err(werr)?;
    }
    Ok(())
}
