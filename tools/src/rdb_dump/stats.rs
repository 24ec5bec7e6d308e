//! `stats`: counts and sizes per database and type, the biggest keys,
//! an expiry histogram and the encodings used.
//!
//! "disk" bytes are the bytes a key's record takes in the file (expiry
//! opcode, type, key and value, as stored: LZF-compressed when it was);
//! "mem" bytes are the [`super::memory`] estimate. The biggest keys are the
//! top N by disk bytes, kept in a bounded heap.

use super::memory::estimate;
use super::text::display;
use super::{open_rdb, rdb_type_name, werr, DumpError, Filters, Kind, Result};
use redoubt_persist::rdb::{DecodeOptions, Item};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

#[derive(Default, Clone, Copy)]
struct Agg {
    keys: u64,
    disk: u64,
    mem: u64,
    elements: u64,
}

impl Agg {
    fn add(&mut self, disk: u64, mem: u64, elements: u64) {
        self.keys += 1;
        self.disk += disk;
        self.mem += mem;
        self.elements += elements;
    }
}

/// (disk bytes, tie-breaker, db, key, type) of one of the biggest keys.
type BigKey = (u64, u64, u64, Vec<u8>, Kind);

const BUCKETS: [(&str, i64); 7] = [
    ("already expired", 0),
    ("< 1 hour", 3_600_000),
    ("< 1 day", 86_400_000),
    ("< 1 week", 7 * 86_400_000),
    ("< 30 days", 30 * 86_400_000),
    ("< 1 year", 365 * 86_400_000),
    (">= 1 year", i64::MAX),
];

pub fn run(path: &Path, f: &Filters, top: usize, now: i64, out: &mut dyn Write) -> Result<()> {
    let mut dec = open_rdb(path, DecodeOptions::default())?;
    let version = dec.version();
    let mut db = 0;
    let mut per: BTreeMap<(u64, Kind), Agg> = BTreeMap::new();
    let mut total = Agg::default();
    let mut enc: BTreeMap<u8, u64> = BTreeMap::new();
    let mut hist = [0u64; BUCKETS.len()];
    let mut no_expiry = 0u64;
    let mut aux = Vec::new();
    let mut functions = 0;
    let mut heap: BinaryHeap<Reverse<BigKey>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut before = dec.offset();
    while let Some(item) = dec.next_item().map_err(DumpError::rdb(path))? {
        let after = dec.offset();
        let disk = after - before;
        before = after;
        match item {
            Item::SelectDb(n) => db = n,
            Item::Aux { key, value } => aux.push((key, value)),
            Item::Function { .. } => functions += 1,
            Item::Entry(e) => {
                if !f.matches(db, &e.key, e.rdb_type) {
                    continue;
                }
                let row = estimate(db, &e);
                let kind = Kind::of(e.rdb_type);
                let elems = super::element_count(&e.value) as u64;
                per.entry((db, kind))
                    .or_default()
                    .add(disk, row.size, elems);
                total.add(disk, row.size, elems);
                *enc.entry(e.rdb_type).or_default() += 1;
                match e.expire_ms {
                    None => no_expiry += 1,
                    Some(x) => {
                        let left = x.saturating_sub(now);
                        let i = if x <= now {
                            0
                        } else {
                            BUCKETS.iter().position(|b| left < b.1).unwrap_or(6)
                        };
                        hist[i] += 1;
                    }
                }
                if top > 0 {
                    seq += 1;
                    heap.push(Reverse((disk, u64::MAX - seq, db, e.key, kind)));
                    if heap.len() > top {
                        heap.pop();
                    }
                }
            }
            _ => {}
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "file: {}", path.display());
    let _ = writeln!(s, "rdb version: {version}");
    for (k, v) in &aux {
        let _ = writeln!(s, "aux {} = {}", display(k), display(v));
    }
    if functions > 0 {
        let _ = writeln!(s, "function libraries: {functions}");
    }
    let _ = writeln!(
        s,
        "keys: {}  elements: {}  disk bytes: {}  estimated memory: {}",
        total.keys, total.elements, total.disk, total.mem
    );
    let _ = writeln!(s, "\nper db and type:");
    let _ = writeln!(
        s,
        "{:>4} {:<8} {:>10} {:>12} {:>14} {:>14}",
        "db", "type", "keys", "elements", "disk_bytes", "mem_bytes"
    );
    for ((db, k), a) in &per {
        let _ = writeln!(
            s,
            "{db:>4} {:<8} {:>10} {:>12} {:>14} {:>14}",
            k.name(),
            a.keys,
            a.elements,
            a.disk,
            a.mem
        );
    }
    let _ = writeln!(s, "\nencodings:");
    for (t, n) in &enc {
        let _ = writeln!(s, "  {:<30} {n}", format!("{} [{t}]", rdb_type_name(*t)));
    }
    let _ = writeln!(s, "\nexpiries:");
    let _ = writeln!(s, "  {:<16} {no_expiry}", "none");
    for (i, (label, _)) in BUCKETS.iter().enumerate() {
        let _ = writeln!(s, "  {label:<16} {}", hist[i]);
    }
    let mut big: Vec<_> = heap.into_iter().map(|Reverse(x)| x).collect();
    big.sort_by(|a, b| b.cmp(a));
    let _ = writeln!(s, "\nbiggest keys (disk bytes):");
    for (disk, _, db, key, kind) in big {
        let _ = writeln!(
            s,
            "  {disk:>12}  db {db} {:<7} {}",
            kind.name(),
            display(&key)
        );
    }
    out.write_all(s.as_bytes()).map_err(werr)
}
