//! Helpers shared by the integration tests.
#![allow(dead_code)]

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
