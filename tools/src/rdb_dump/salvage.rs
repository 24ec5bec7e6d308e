//! `salvage`: copy every readable record of a damaged dump into a new,
//! valid dump, and report what was lost.
//!
//! The input is decoded record by record. A record that decodes cleanly is
//! copied byte for byte (so module values, LRU/LFU hints and encodings
//! survive; the output keeps the input's RDB version; RESIZEDB hints are
//! dropped and SELECTDB is re-emitted before the first key of each db).
//! When a record fails, the decoder resynchronises: it scans forward from
//! the byte after the failed record's start for a position where
//!
//! 1. a type byte (or an EXPIRETIME_MS / SELECTDB / AUX opcode) is followed
//!    by a plausible, non-empty key string that fits in the file, and
//! 2. a fresh decoder started there reads that record *and the next one*
//!    cleanly (or that record is followed exactly by the EOF marker and
//!    checksum at the end of the file, or, when the next record is damaged
//!    too, that record's key is text (UTF-8, no control characters) and it
//!    ends exactly where another plausible record starts),
//!
//! and carries on from there. Keys whose records exceed 16 MiB cannot be
//! resynchronisation points (candidate decoding is capped so the scan stays
//! fast); the next key after them can. A key named "" is treated as damage
//! (a zeroed range decodes as a run of empty string keys). A checksum
//! mismatch with every record readable recovers everything, but the report
//! says values may hold undetected damage. The input is only read.

use super::text::display;
use super::{check_output_path, DumpError, Filters, Result};
use redoubt_persist::rdb::crc::crc64;
use redoubt_persist::rdb::encode::put_len;
use redoubt_persist::rdb::{
    is_object_type, DecodeOptions, Decoder, ErrorKind, Item, OP_AUX, OP_EOF, OP_EXPIRETIME_MS,
    OP_SELECTDB,
};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Largest record a resynchronisation candidate may span.
const CANDIDATE_CAP: u64 = 16 << 20;
/// Version assumed when the header itself is damaged.
const ASSUMED_VERSION: u32 = 10;

/// One damaged stretch of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// Start of the record that failed.
    pub start: u64,
    /// Where the decoder noticed.
    pub error_offset: u64,
    pub error: String,
    /// The key being read, when its name was readable.
    pub key: Option<Vec<u8>>,
    /// Where reading resumed (None: nothing readable after it).
    pub resumed_at: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub input: String,
    pub output: String,
    pub file_len: u64,
    pub version: u32,
    pub header_damaged: bool,
    /// Keys written, per db.
    pub recovered: BTreeMap<u64, u64>,
    /// Keys read but left out by the filters.
    pub filtered: u64,
    /// Other records copied (aux fields, functions, module aux).
    pub meta_records: u64,
    pub lost: Vec<Lost>,
    /// True when the EOF marker was read.
    pub eof_reached: bool,
    /// Some(false) on a checksum mismatch, None when not checked.
    pub checksum_ok: Option<bool>,
    pub written_bytes: u64,
}

impl Report {
    pub fn keys(&self) -> u64 {
        self.recovered.values().sum()
    }

    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.eof_reached
            && self.checksum_ok != Some(false)
            && !self.header_damaged
    }

    pub fn print(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(
            out,
            "salvage of {} ({} bytes, RDB version {}{})",
            self.input,
            self.file_len,
            self.version,
            if self.header_damaged {
                ", header damaged: version assumed"
            } else {
                ""
            }
        )?;
        let per: Vec<String> = self
            .recovered
            .iter()
            .map(|(db, n)| format!("db {db}: {n}"))
            .collect();
        writeln!(out, "recovered keys: {} ({})", self.keys(), per.join(", "))?;
        if self.meta_records > 0 {
            writeln!(out, "recovered other records: {}", self.meta_records)?;
        }
        if self.filtered > 0 {
            writeln!(out, "left out by filters: {}", self.filtered)?;
        }
        let mut lost_bytes = 0;
        for (i, l) in self.lost.iter().enumerate() {
            let end = l.resumed_at.unwrap_or(self.file_len);
            lost_bytes += end - l.start;
            write!(
                out,
                "lost region {}: bytes {}..{} ({} bytes): {} at offset {}",
                i + 1,
                l.start,
                end,
                end - l.start,
                l.error,
                l.error_offset
            )?;
            if let Some(k) = &l.key {
                write!(out, ", key '{}'", display(k))?;
            }
            match l.resumed_at {
                Some(p) => writeln!(out, "; resumed at {p}")?,
                None => writeln!(out, "; nothing readable after it")?,
            }
        }
        writeln!(
            out,
            "lost: {} region(s), {} bytes (at least {} key(s))",
            self.lost.len(),
            lost_bytes,
            self.lost.len()
        )?;
        writeln!(
            out,
            "end of file: {}",
            if self.eof_reached {
                "EOF marker read"
            } else {
                "no EOF marker (truncated or damaged tail)"
            }
        )?;
        writeln!(
            out,
            "checksum: {}",
            match self.checksum_ok {
                Some(true) => "ok",
                Some(false) =>
                    "MISMATCH (every record decoded, but values may hold undetected damage)",
                None => "not checked",
            }
        )?;
        writeln!(
            out,
            "written: {} ({} bytes)",
            self.output, self.written_bytes
        )?;
        writeln!(
            out,
            "status: {}",
            if self.is_clean() {
                "input was intact"
            } else {
                "damaged input, partial recovery"
            }
        )
    }
}

/// Reads a file from a position (pread), up to a limit.
struct PosReader<'a> {
    f: &'a File,
    pos: u64,
    end: u64,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let n = buf.len().min((self.end - self.pos) as usize);
        let k = self.f.read_at(&mut buf[..n], self.pos)?;
        self.pos += k as u64;
        Ok(k)
    }
}

type Dec<'a> = Decoder<io::Chain<io::Cursor<Vec<u8>>, PosReader<'a>>>;

/// A decoder reading the file from `pos` as if a header of `version`
/// preceded it. Its offsets are shifted by `pos - 9`.
fn decoder_at(f: &File, pos: u64, end: u64, version: u32, verify: bool) -> Option<Dec<'_>> {
    let header = format!("REDIS{version:04}").into_bytes();
    let r = io::Cursor::new(header).chain(PosReader { f, pos, end });
    let opts = DecodeOptions {
        verify_checksum: verify,
        accept_v13: true,
    };
    Decoder::new(r, Some(end - pos + 9), opts).ok()
}

/// Writes raw records with a running CRC.
struct RawWriter<W: Write> {
    w: BufWriter<W>,
    crc: u64,
    n: u64,
}

impl<W: Write> RawWriter<W> {
    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.crc = crc64(self.crc, b);
        self.n += b.len() as u64;
        self.w.write_all(b)
    }
}

/// Quick test of the bytes at a candidate position (before decoding).
fn plausible_start(b: &[u8]) -> bool {
    let Some(&t) = b.first() else { return false };
    let rest = &b[1..];
    match t {
        OP_EXPIRETIME_MS => rest.len() > 9 && is_object_type(rest[8]) && plausible_key(&rest[9..]),
        OP_SELECTDB => rest.first().is_some_and(|&l| l < 64),
        OP_AUX => plausible_key(rest),
        t if is_object_type(t) => plausible_key(rest),
        _ => false,
    }
}

/// A non-empty key string header.
fn plausible_key(b: &[u8]) -> bool {
    let Some(&first) = b.first() else {
        return false;
    };
    match first >> 6 {
        0 => first & 0x3f != 0,
        1 => b.len() > 1 && (u16::from(first & 0x3f) << 8 | u16::from(b[1])) >= 64,
        3 => (first & 0x3f) <= 3,
        _ => {
            first == 0x80 && b.len() > 4 && {
                let l = u32::from_be_bytes([b[1], b[2], b[3], b[4]]);
                (16384..(CANDIDATE_CAP as u32)).contains(&l)
            }
        }
    }
}

/// UTF-8 without control characters: what keys look like in practice.
fn text_like(k: &[u8]) -> bool {
    std::str::from_utf8(k).is_ok_and(|t| !t.chars().any(char::is_control))
}

fn item_ok(it: &Item) -> bool {
    match it {
        Item::Entry(e) => !e.key.is_empty(),
        Item::SelectDb(n) => *n < 1 << 20,
        Item::Aux { key, .. } => !key.is_empty(),
        _ => true,
    }
}

/// Finds the next position from which two records decode cleanly.
fn resync(f: &File, from: u64, len: u64, version: u32) -> Option<u64> {
    const WIN: usize = 64 * 1024;
    let mut buf = vec![0u8; WIN + 32];
    let mut base = from;
    while base < len {
        let want = ((len - base) as usize).min(buf.len());
        let got = f.read_at(&mut buf[..want], base).ok()?;
        if got == 0 {
            return None;
        }
        let scan = got.min(WIN);
        for i in 0..scan {
            if !plausible_start(&buf[i..got]) {
                continue;
            }
            let p = base + i as u64;
            let end = len.min(p + CANDIDATE_CAP);
            let Some(mut d) = decoder_at(f, p, end, version, false) else {
                continue;
            };
            let first = match d.next_item() {
                Ok(Some(it)) if item_ok(&it) && !matches!(it, Item::End(_)) => it,
                _ => continue,
            };
            let readable = match &first {
                Item::Entry(e) => text_like(&e.key),
                Item::Aux { key, .. } => text_like(key),
                _ => true,
            };
            drop(first);
            let after_first = d.offset() - 9 + p;
            match d.next_item() {
                Ok(Some(Item::End(_))) if d.offset() - 9 + p == len => return Some(p),
                Ok(Some(it)) if item_ok(&it) => return Some(p),
                Err(_) if after_first == len => return Some(p),
                Err(_) if readable => {
                    // The next record is damaged too: accept when this one
                    // ends exactly where a plausible record starts (that
                    // one will fail and resynchronise in turn).
                    let mut nb = [0u8; 32];
                    let k = f.read_at(&mut nb, after_first).unwrap_or(0);
                    if plausible_start(&nb[..k]) {
                        return Some(p);
                    }
                }
                _ => {}
            }
        }
        base += scan as u64;
    }
    None
}

pub fn run(input: &Path, output: &Path, force: bool, flt: &Filters) -> Result<Report> {
    check_output_path(output, force, &[input])?;
    let f = File::open(input).map_err(DumpError::io(input))?;
    let len = f.metadata().map_err(DumpError::io(input))?.len();
    let mut rep = Report {
        input: input.display().to_string(),
        output: output.display().to_string(),
        file_len: len,
        ..Report::default()
    };
    let mut head = [0u8; 9];
    let got = f.read_at(&mut head, 0).unwrap_or(0);
    let version = if got == 9 && &head[..5] == b"REDIS" {
        std::str::from_utf8(&head[5..])
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .filter(|v| (1..=13).contains(v))
    } else {
        None
    };
    let version = version.unwrap_or_else(|| {
        rep.header_damaged = true;
        ASSUMED_VERSION
    });
    rep.version = version;
    let out = File::create(output).map_err(DumpError::io(output))?;
    let mut w = RawWriter {
        w: BufWriter::with_capacity(256 * 1024, out),
        crc: 0,
        n: 0,
    };
    let wio = DumpError::io(output);
    let res = (|| -> io::Result<()> {
        w.put(format!("REDIS{version:04}").as_bytes())?;
        let mut pos = 9u64;
        if rep.header_damaged {
            pos = match resync(&f, 0, len, version) {
                Some(p) => p,
                None => len,
            };
            rep.lost.push(Lost {
                start: 0,
                error_offset: 0,
                error: "damaged RDB header".into(),
                key: None,
                resumed_at: (pos < len).then_some(pos),
            });
        }
        let mut db = 0u64;
        let mut written_db: Option<u64> = None;
        let mut rec = Vec::new();
        'outer: while pos < len {
            let first = pos == 9;
            let Some(mut d) = decoder_at(&f, pos, len, version, first) else {
                break;
            };
            let shift = pos - 9;
            loop {
                let start = d.offset() + shift;
                let item = d.next_item();
                let end = d.offset() + shift;
                let err = match item {
                    Ok(None) => break 'outer,
                    Ok(Some(Item::End(_))) => {
                        rep.eof_reached = true;
                        if first {
                            rep.checksum_ok = Some(true);
                        }
                        break 'outer;
                    }
                    Ok(Some(it)) if item_ok(&it) => {
                        let copy = match &it {
                            Item::SelectDb(n) => {
                                db = *n;
                                false
                            }
                            Item::ResizeDb { .. } | Item::SlotInfo { .. } => false,
                            Item::Entry(e) => {
                                if flt.matches(db, &e.key, e.rdb_type) {
                                    if written_db != Some(db) {
                                        let mut b = vec![OP_SELECTDB];
                                        put_len(&mut b, db);
                                        w.put(&b)?;
                                        written_db = Some(db);
                                    }
                                    *rep.recovered.entry(db).or_default() += 1;
                                    true
                                } else {
                                    rep.filtered += 1;
                                    false
                                }
                            }
                            _ => {
                                rep.meta_records += 1;
                                true
                            }
                        };
                        if copy {
                            rec.resize((end - start) as usize, 0);
                            f.read_exact_at(&mut rec, start)?;
                            w.put(&rec)?;
                        }
                        continue;
                    }
                    Ok(Some(Item::Entry(e))) => (
                        start,
                        "a key named \"\" (treated as damage)".to_string(),
                        Some(e.key),
                    ),
                    Ok(Some(_)) => (start, "implausible record".to_string(), None),
                    Err(e) => {
                        if first && matches!(e.kind, ErrorKind::Checksum { .. }) {
                            rep.eof_reached = true;
                            rep.checksum_ok = Some(false);
                            break 'outer;
                        }
                        let off = e.offset + shift;
                        (off, e.kind.to_string(), e.key)
                    }
                };
                let (error_offset, error, key) = err;
                let resumed = resync(&f, start + 1, len, version);
                rep.lost.push(Lost {
                    start,
                    error_offset,
                    error,
                    key,
                    resumed_at: resumed,
                });
                match resumed {
                    Some(p) => {
                        pos = p;
                        continue 'outer;
                    }
                    None => break 'outer,
                }
            }
        }
        w.put(&[OP_EOF])?;
        if version >= 5 {
            let crc = w.crc;
            w.put(&crc.to_le_bytes())?;
        }
        w.w.flush()
    })();
    res.map_err(wio)?;
    rep.written_bytes = w.n;
    Ok(rep)
}
