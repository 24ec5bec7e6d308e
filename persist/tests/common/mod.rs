//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod redis;

use std::path::PathBuf;

/// The shared corpus: `$REDOUBT_CORPUS` or `../shared/corpus` next to the
/// workspace. `None` (with a message) when absent, so tests skip.
pub fn corpus_dir() -> Option<PathBuf> {
    let p = match std::env::var_os("REDOUBT_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => {
            let main = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/corpus"));
            // A git worktree sits one level deeper than the main checkout.
            let wt = PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/corpus"
            ));
            if main.exists() || !wt.exists() {
                main
            } else {
                wt
            }
        }
    };
    if p.join("INDEX.md").exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: corpus not found at {} (set REDOUBT_CORPUS)",
            p.display()
        );
        None
    }
}

/// One row of INDEX.md's persistence-file table.
#[derive(Debug, Clone)]
pub struct Row {
    pub path: String,
    pub kind: String,
    pub notes: String,
    pub corrupt: String,
}

impl Row {
    pub fn is_corrupt(&self) -> bool {
        self.corrupt.starts_with("YES")
    }
    pub fn is_rdb(&self) -> bool {
        self.kind.starts_with("RDB v") && !self.kind.contains("VALKEY")
    }
    pub fn is_preamble_aof(&self) -> bool {
        self.kind.starts_with("AOF (RDB preamble")
    }
}

/// Splits a markdown table row on unescaped pipes.
fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_string())
        .collect()
}

pub fn index_rows(dir: &std::path::Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("INDEX.md")).unwrap_or_default();
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("## Persistence files") {
            in_table = true;
            continue;
        }
        if in_table && line.starts_with("## ") {
            break;
        }
        if !in_table || !line.starts_with("| `") {
            continue;
        }
        let c = cells(line);
        if c.len() < 7 {
            continue;
        }
        rows.push(Row {
            path: c[0].trim_matches('`').to_string(),
            kind: c[2].clone(),
            notes: c[5].clone(),
            corrupt: c[c.len() - 1].clone(),
        });
    }
    rows
}

use redoubt_persist::value::{StreamId, Value};
use redoubt_persist::{Entry, Keyspace};

fn hx(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The encoding Redis 7.0 reports for a value of our model.
pub fn encoding_of(v: &Value) -> &'static str {
    match v {
        Value::Str(s) => {
            if s.len() <= 20 && redoubt_persist::rdb::blobs::parse_i64_strict(s).is_some() {
                "int"
            } else if s.len() <= 44 {
                "embstr"
            } else {
                "raw"
            }
        }
        Value::List(_) => "quicklist",
        Value::Set(s) => {
            if s.hashtable {
                "hashtable"
            } else {
                "intset"
            }
        }
        Value::ZSet(z) => {
            if z.skiplist {
                "skiplist"
            } else {
                "listpack"
            }
        }
        Value::Hash(h) => {
            if h.is_hashtable() {
                "hashtable"
            } else {
                "listpack"
            }
        }
        Value::Stream(_) => "stream",
    }
}

fn sid(id: StreamId) -> String {
    id.to_string()
}

/// One key in the `.expect` format written by fixtures/dump_expect.py.
pub fn describe(db: usize, e: &Entry, out: &mut Vec<String>) {
    let ttl = if e.expire_at == 0 {
        -1
    } else {
        e.expire_at as i64
    };
    out.push(format!(
        "K {db} {} {} {} {ttl}",
        hx(&e.key),
        e.value.value_type().name(),
        encoding_of(&e.value)
    ));
    match &e.value {
        Value::Str(s) => out.push(format!("S {}", hx(s))),
        Value::List(l) => out.extend(l.items.iter().map(|i| format!("L {}", hx(i)))),
        Value::Set(s) => {
            let mut m: Vec<_> = s.members.iter().collect();
            m.sort();
            out.extend(m.into_iter().map(|i| format!("M {}", hx(i))));
        }
        Value::ZSet(z) => out.extend(
            z.iter()
                .map(|m| format!("Z {} {:016x}", hx(&m.member), m.score.to_bits())),
        ),
        Value::Hash(h) => {
            let mut p: Vec<_> = h.map.iter().collect();
            p.sort();
            out.extend(p.into_iter().map(|(f, v)| format!("H {} {}", hx(f), hx(v))));
        }
        Value::Stream(s) => {
            for e in s.entries.iter() {
                let id = &e.id;
                let kv: Vec<String> = e
                    .fields()
                    .map(|(f, v)| format!("{}={}", hx(f), hx(v)))
                    .collect();
                out.push(
                    format!("X {} {}", sid(*id), kv.join(" "))
                        .trim_end()
                        .to_string(),
                );
            }
            out.push(format!(
                "XI {} {} {} {} {}",
                s.len(),
                sid(s.last_id),
                sid(s.max_deleted_id),
                s.entries_added,
                sid(s.first_id)
            ));
            for (name, g) in &s.groups {
                let er = if g.entries_read < 0 {
                    "nil".to_string()
                } else {
                    g.entries_read.to_string()
                };
                out.push(format!(
                    "G {} {} {er} {}",
                    hx(name),
                    sid(g.last_id),
                    g.pel.len()
                ));
                for (id, pe) in &g.pel {
                    out.push(format!(
                        "P {} {} {} {} {}",
                        hx(name),
                        sid(*id),
                        hx(&pe.consumer),
                        pe.delivery_time,
                        pe.delivery_count
                    ));
                }
                for (cname, c) in &g.consumers {
                    out.push(format!(
                        "C {} {} {} {}",
                        hx(name),
                        hx(cname),
                        c.seen_time,
                        c.pel.len()
                    ));
                }
            }
        }
    }
    out.push("E".into());
}

/// The whole keyspace in `.expect` form (keys sorted per db).
pub fn describe_keyspace(ks: &Keyspace) -> Vec<String> {
    let mut out = Vec::new();
    for (i, db) in ks.dbs.iter().enumerate() {
        let mut entries: Vec<&Entry> = db.iter().collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        for e in entries {
            describe(i, e, &mut out);
        }
    }
    out
}

/// The fixtures directory at the workspace root.
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/redis-7.0.15"
    ))
}

/// Compares two listings line by line with a readable first difference.
pub fn assert_same_listing(what: &str, got: &[String], want: &[String]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{what}: first difference at line {i}");
    }
    assert_eq!(got.len(), want.len(), "{what}: listing lengths differ");
}
