//! `check`: structure and checksum, with redis-check-rdb's progress lines
//! and summary, plus counts per type, per db and per encoding.
//!
//! Decoding is complete (every listpack/ziplist/intset walked, streams
//! checked) and streaming. The first error stops the check and is printed
//! with its offset, the key being read and what was expected there.

use super::text::display;
use super::{open_rdb, rdb_type_name, werr, DumpError, Filters, Kind, Result};
use redoubt_persist::rdb::{ChecksumStatus, DecodeOptions, Item};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Default)]
struct Counts {
    keys: u64,
    expires: u64,
    expired: u64,
    per_kind: BTreeMap<Kind, u64>,
    per_db: BTreeMap<u64, (u64, u64)>,
    per_type: BTreeMap<u8, u64>,
    functions: u64,
    module_aux: u64,
    skipped: u64,
}

/// Returns whether the file is sane.
pub fn run(path: &Path, f: &Filters, now_ms: Option<i64>, out: &mut dyn Write) -> Result<bool> {
    let now = now_ms.unwrap_or_else(super::now_ms);
    let name = path.display().to_string();
    writeln!(out, "[offset 0] Checking RDB file {name}").map_err(werr)?;
    let file_len = std::fs::metadata(path).map(|m| m.len()).ok();
    let mut c = Counts::default();
    let mut dec = match open_rdb(path, DecodeOptions::default()) {
        Ok(d) => d,
        Err(DumpError::Rdb { err, .. }) => {
            print_error(out, err.offset, &err.kind.to_string(), None, 0, &c)?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let version = dec.version();
    let mut db = 0u64;
    let mut last_good = dec.offset();
    loop {
        let item = match dec.next_item() {
            Ok(Some(i)) => i,
            Ok(None) => break,
            Err(err) => {
                let key = err.key.clone();
                let kind = err.kind.to_string();
                print_error(out, err.offset, &kind, key.as_deref(), last_good, &c)?;
                if key.is_some() {
                    if let Some(t) = type_at(path, last_good) {
                        writeln!(
                            out,
                            "[additional info] Reading type {t} ({})",
                            rdb_type_name(t)
                        )
                        .map_err(werr)?;
                    }
                }
                summary(out, version, &c)?;
                return Ok(false);
            }
        };
        let off = dec.offset();
        match item {
            Item::Aux { key, value } => writeln!(
                out,
                "[offset {off}] AUX FIELD {} = '{}'",
                display(&key),
                display(&value)
            )
            .map_err(werr)?,
            Item::SelectDb(n) => {
                db = n;
                writeln!(out, "[offset {off}] Selecting DB ID {n}").map_err(werr)?;
            }
            Item::ResizeDb { .. } | Item::SlotInfo { .. } => {}
            Item::Function { .. } => c.functions += 1,
            Item::ModuleAux { name, .. } => {
                c.module_aux += 1;
                writeln!(out, "[offset {off}] MODULE AUX for: {name}").map_err(werr)?;
            }
            Item::Entry(e) => {
                if !f.matches(db, &e.key, e.rdb_type) {
                    c.skipped += 1;
                } else {
                    c.keys += 1;
                    let d = c.per_db.entry(db).or_default();
                    d.0 += 1;
                    if let Some(x) = e.expire_ms {
                        c.expires += 1;
                        d.1 += 1;
                        if x < now {
                            c.expired += 1;
                        }
                    }
                    *c.per_kind.entry(Kind::of(e.rdb_type)).or_default() += 1;
                    *c.per_type.entry(e.rdb_type).or_default() += 1;
                }
            }
            Item::End(cs) => {
                let msg = match cs {
                    ChecksumStatus::Verified(_) => "Checksum OK".to_string(),
                    ChecksumStatus::NotComputed => {
                        "RDB file was saved with checksum disabled: no check performed.".into()
                    }
                    ChecksumStatus::Ignored { stored, computed } => format!(
                        "Checksum not verified (stored {stored:#018x}, computed {computed:#018x})"
                    ),
                    ChecksumStatus::Absent => {
                        format!("No checksum (RDB version {version} has none)")
                    }
                };
                writeln!(out, "[offset {off}] {msg}").map_err(werr)?;
            }
        }
        last_good = off;
    }
    let end = dec.offset();
    writeln!(out, "[offset {end}] \\o/ RDB looks OK! \\o/").map_err(werr)?;
    if let Some(len) = file_len {
        if len > end {
            writeln!(
                out,
                "[info] {} trailing bytes after the checksum (ignored, as Redis does)",
                len - end
            )
            .map_err(werr)?;
        }
    }
    summary(out, version, &c)?;
    Ok(true)
}

fn print_error(
    out: &mut dyn Write,
    offset: u64,
    msg: &str,
    key: Option<&[u8]>,
    last_good: u64,
    _c: &Counts,
) -> Result<()> {
    writeln!(out, "--- RDB ERROR DETECTED ---").map_err(werr)?;
    writeln!(out, "[offset {offset}] {msg}").map_err(werr)?;
    if let Some(k) = key {
        writeln!(out, "[additional info] Reading key '{}'", display(k)).map_err(werr)?;
    }
    writeln!(
        out,
        "[additional info] Last complete record ended at offset {last_good}"
    )
    .map_err(werr)
}

fn summary(out: &mut dyn Write, version: u32, c: &Counts) -> Result<()> {
    let mut s = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(s, "[info] {} keys read", c.keys);
    let _ = writeln!(s, "[info] {} expires", c.expires);
    let _ = writeln!(s, "[info] {} already expired", c.expired);
    let _ = writeln!(s, "[info] RDB version {version}");
    if c.skipped > 0 {
        let _ = writeln!(s, "[info] {} keys not selected by the filters", c.skipped);
    }
    if c.functions > 0 {
        let _ = writeln!(s, "[info] {} function libraries", c.functions);
    }
    if c.module_aux > 0 {
        let _ = writeln!(s, "[info] {} module aux records", c.module_aux);
    }
    for (db, (n, e)) in &c.per_db {
        let _ = writeln!(s, "[info] db {db}: {n} keys, {e} with expiry");
    }
    if !c.per_kind.is_empty() {
        let parts: Vec<String> = c
            .per_kind
            .iter()
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        let _ = writeln!(s, "[info] keys per type: {}", parts.join(" "));
        let parts: Vec<String> = c
            .per_type
            .iter()
            .map(|(t, n)| format!("{}={n}", rdb_type_name(*t)))
            .collect();
        let _ = writeln!(s, "[info] encodings: {}", parts.join(" "));
    }
    out.write_all(s.as_bytes()).map_err(werr)
}

/// The type byte of the record starting at `off` (after an expiry, IDLE or
/// FREQ prefix), read back from the file for the error report.
fn type_at(path: &Path, mut off: u64) -> Option<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).ok()?;
    for _ in 0..4 {
        let mut b = [0u8; 2];
        f.read_at(&mut b, off).ok()?;
        match b[0] {
            252 => off += 9,
            253 => off += 5,
            249 => off += 2,
            248 => {
                // IDLE: a length (1, 2, 5 or 9 bytes).
                off += 1 + match b[1] >> 6 {
                    0 => 1,
                    1 => 2,
                    _ if b[1] == 0x80 => 5,
                    _ => 9,
                };
            }
            t if redoubt_persist::rdb::is_object_type(t) => return Some(t),
            _ => return None,
        }
    }
    None
}
