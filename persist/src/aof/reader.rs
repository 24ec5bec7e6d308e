//! Incremental reader of the RESP part of an AOF file.
//!
//! It follows the structure checks of Redis's loader and redis-check-aof
//! (same limits, same messages) and classifies every failure: a failure
//! caused by reaching the end of the input is a *torn tail* (the process
//! died mid-write; truncating is safe), anything else is *corruption*.
//! Nothing read from the file is used as an allocation size: payloads are
//! read in bounded chunks, so a bogus `$9999999999` costs nothing.

use std::fmt;
use std::io::{self, Read};

/// Longest count / length line, as Redis's `fgets` buffer (127 bytes + NUL).
const NUM_LINE_MAX: usize = 128;
/// Longest annotation line.
pub const ANNOTATION_MAX: usize = 1024;
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The input ended inside a record (or inside MULTI ... EXEC).
    TornTail,
    /// Bytes that are not a valid record.
    Corrupt,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProblemKind::TornTail => "truncated tail",
            ProblemKind::Corrupt => "corruption",
        })
    }
}

/// A structural problem, with everything needed to report or repair it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{kind} in AOF {file} at offset {offset} (record starting at offset {record_start}): {what}"
)]
pub struct FormatError {
    pub file: String,
    pub kind: ProblemKind,
    /// Where the failing read began (redis-check-aof's `epos`).
    pub offset: u64,
    /// Start of the first record (or of the MULTI block) that is not
    /// complete: the safe truncation point (redis-check-aof's `ok_up_to`).
    pub record_start: u64,
    /// What was expected, in redis-check-aof's words.
    pub what: String,
    /// 1 + CRLF-terminated lines consumed, including the failed record's.
    pub line: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Format(#[from] FormatError),
    #[error("error reading AOF {file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
}

/// One element of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Command(Vec<Vec<u8>>),
    /// An annotation line without its `#` and CRLF, e.g. `TS:1700000000`.
    Annotation(Vec<u8>),
}

/// An item with its byte range in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub item: Item,
    pub start: u64,
    pub end: u64,
}

/// A loadable unit: a single command, a whole transaction, or an annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    Command(Vec<Vec<u8>>),
    /// The commands between MULTI and EXEC (both excluded).
    Transaction(Vec<Vec<Vec<u8>>>),
    Annotation(Vec<u8>),
}

pub struct AofReader<R> {
    inner: R,
    name: String,
    buf: Vec<u8>,
    head: usize,
    /// Absolute offset of `buf[head]`.
    pos: u64,
    eof: bool,
    line: u64,
    /// Where the last primitive read began (what redis-check-aof reports for
    /// an EOF inside MULTI).
    epos: u64,
    /// Commands returned so far (transactions count their inner commands and
    /// MULTI/EXEC).
    commands: u64,
}

/// Why a primitive read stopped.
enum Fail {
    Eof(String),
    Bad(String),
}

impl<R: Read> AofReader<R> {
    /// `start_offset` is the absolute offset of the first byte `inner` yields
    /// (non-zero after an RDB preamble).
    pub fn new(inner: R, name: impl Into<String>, start_offset: u64) -> AofReader<R> {
        AofReader {
            inner,
            name: name.into(),
            buf: Vec::new(),
            head: 0,
            pos: start_offset,
            eof: false,
            line: 1,
            epos: start_offset,
            commands: 0,
        }
    }

    /// Continue the line count of a previous file (redis-check-aof does not
    /// reset it between the files of a manifest).
    pub fn with_line(mut self, line: u64) -> Self {
        self.line = line;
        self
    }

    pub fn offset(&self) -> u64 {
        self.pos
    }

    pub fn line(&self) -> u64 {
        self.line
    }

    pub fn commands(&self) -> u64 {
        self.commands
    }

    fn avail(&self) -> usize {
        self.buf.len() - self.head
    }

    /// Tries to have `n` bytes buffered; fewer only at end of input.
    fn fill(&mut self, n: usize) -> Result<(), ReadError> {
        while self.avail() < n && !self.eof {
            if self.head > 0 && self.head >= self.buf.len() / 2 {
                self.buf.drain(..self.head);
                self.head = 0;
            }
            let old = self.buf.len();
            self.buf.resize(old + CHUNK, 0);
            let r = loop {
                match self.inner.read(&mut self.buf[old..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    r => break r,
                }
            };
            match r {
                Ok(0) => {
                    self.buf.truncate(old);
                    self.eof = true;
                }
                Ok(k) => self.buf.truncate(old + k),
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(ReadError::Io {
                        file: self.name.clone(),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.head += n;
        self.pos += n as u64;
    }

    /// Reads like `fgets`: through `\n`, or `max - 1` bytes, or to EOF.
    fn gets(&mut self, max: usize) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        loop {
            self.fill(1)?;
            if self.avail() == 0 {
                return Ok(out);
            }
            let room = max - 1 - out.len();
            let window = &self.buf[self.head..self.head + self.avail().min(room)];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                out.extend_from_slice(&window[..=i]);
                self.consume(i + 1);
                return Ok(out);
            }
            let k = window.len();
            out.extend_from_slice(window);
            self.consume(k);
            if out.len() >= max - 1 {
                return Ok(out);
            }
        }
    }

    /// `<prefix><number>\r\n`; the number as `strtol` reads it.
    fn read_number(&mut self, prefix: u8) -> Result<Result<i64, Fail>, ReadError> {
        self.epos = self.pos;
        // Fast path, the shape every well-formed record has: prefix, up to
        // 18 digits, CRLF, already buffered. Parsed in place; anything else
        // takes the general path below, which reports problems as Redis.
        self.fill(NUM_LINE_MAX)?;
        let w = &self.buf[self.head..];
        if w.first() == Some(&prefix) {
            let digits = w[1..]
                .iter()
                .take(19)
                .take_while(|b| b.is_ascii_digit())
                .count();
            if (1..=18).contains(&digits) && w.get(1 + digits..3 + digits) == Some(b"\r\n") {
                let n = w[1..1 + digits]
                    .iter()
                    .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
                self.consume(digits + 3);
                self.line += 1;
                return Ok(Ok(n));
            }
        }
        let line = self.gets(NUM_LINE_MAX)?;
        if line.is_empty() {
            return Ok(Err(Fail::Eof("Unexpected end of file".into())));
        }
        if line[0] != prefix {
            return Ok(Err(Fail::Bad(format!(
                "Expected prefix '{}', got: '{}'",
                prefix as char,
                String::from_utf8_lossy(&line[..1])
            ))));
        }
        let (n, used) = strtol(&line[1..]);
        let rest = &line[1 + used..];
        if rest.len() < 2 || &rest[..2] != b"\r\n" {
            let b0 = rest.first().copied().unwrap_or(0);
            let b1 = rest.get(1).copied().unwrap_or(0);
            let what = format!("Expected \\r\\n, got: {b0:02x}{b1:02x}");
            // Cut short by the end of the input: a torn tail.
            return Ok(Err(
                if line.last() != Some(&b'\n') && self.avail() == 0 && self.eof {
                    Fail::Eof(what)
                } else {
                    Fail::Bad(what)
                },
            ));
        }
        self.line += 1;
        Ok(Ok(n))
    }

    /// `len` payload bytes then CRLF, read in bounded chunks. Like Redis,
    /// payload and CRLF are one read of `len + 2` bytes.
    fn read_payload(&mut self, len: i64) -> Result<Result<Vec<u8>, (u64, Fail)>, ReadError> {
        let start = self.pos;
        self.epos = start;
        if !(0..=i64::MAX - 2).contains(&len) {
            return Ok(Err((
                start,
                Fail::Bad(format!(
                    "Expected to read string of {len} bytes, which is not in the suitable range"
                )),
            )));
        }
        let want = len as u64 + 2;
        if want <= CHUNK as u64 {
            // Fast path: payload and CRLF buffered; one exact allocation.
            let n = len as usize;
            self.fill(n + 2)?;
            if self.avail() >= n + 2 && &self.buf[self.head + n..self.head + n + 2] == b"\r\n" {
                let out = self.buf[self.head..self.head + n].to_vec();
                self.consume(n + 2);
                self.line += 1;
                return Ok(Ok(out));
            }
        }
        let mut out = Vec::new();
        while (out.len() as u64) < want {
            let chunk = ((want - out.len() as u64).min(CHUNK as u64)) as usize;
            self.fill(chunk)?;
            let k = self.avail().min(chunk);
            if k == 0 {
                return Ok(Err((
                    start,
                    Fail::Eof(format!(
                        "Expected to read {want} bytes, got {} bytes",
                        out.len()
                    )),
                )));
            }
            out.extend_from_slice(&self.buf[self.head..self.head + k]);
            self.consume(k);
        }
        let tail = out.split_off(len as usize);
        if tail != b"\r\n" {
            let what = format!("Expected \\r\\n, got: {:02x}{:02x}", tail[0], tail[1]);
            return Ok(Err((start, Fail::Bad(what))));
        }
        self.line += 1;
        Ok(Ok(out))
    }

    fn problem(
        &self,
        kind: ProblemKind,
        offset: u64,
        record_start: u64,
        what: String,
    ) -> ReadError {
        ReadError::Format(FormatError {
            file: self.name.clone(),
            kind,
            offset,
            record_start,
            what,
            line: self.line,
        })
    }

    fn fail(&self, f: Fail, offset: u64, record_start: u64) -> ReadError {
        match f {
            Fail::Eof(w) => self.problem(ProblemKind::TornTail, offset, record_start, w),
            Fail::Bad(w) => self.problem(ProblemKind::Corrupt, offset, record_start, w),
        }
    }

    /// The next record, None at a clean end of input.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        self.next_record_from(None)
    }

    /// `unit_start`: start of the enclosing MULTI, reported as the safe
    /// truncation point.
    fn next_record_from(&mut self, unit_start: Option<u64>) -> Result<Option<Record>, ReadError> {
        self.fill(1)?;
        if self.avail() == 0 {
            return Ok(None);
        }
        let start = self.pos;
        let rs = unit_start.unwrap_or(start);
        if self.buf[self.head] == b'#' {
            let line = self.gets(ANNOTATION_MAX)?;
            if line.last() != Some(&b'\n') {
                if line.len() >= ANNOTATION_MAX - 1 {
                    return Err(self.problem(
                        ProblemKind::Corrupt,
                        start,
                        rs,
                        "Annotation line too long".into(),
                    ));
                }
                return Err(self.problem(
                    ProblemKind::TornTail,
                    start,
                    rs,
                    "Unexpected end of file in annotation".into(),
                ));
            }
            let mut text = &line[1..line.len() - 1];
            if text.last() == Some(&b'\r') {
                text = &text[..text.len() - 1];
            }
            return Ok(Some(Record {
                item: Item::Annotation(text.to_vec()),
                start,
                end: self.pos,
            }));
        }
        if self.buf[self.head] != b'*' {
            // redis-check-aof's words for a record starting with neither
            // '*' nor '#'.
            return Err(self.problem(ProblemKind::Corrupt, start, rs, "format error".into()));
        }
        let argc = match self.read_number(b'*')? {
            Ok(n) => n,
            Err(f) => return Err(self.fail(f, start, rs)),
        };
        if argc < 1 {
            return Err(self.problem(
                ProblemKind::Corrupt,
                start,
                rs,
                format!("Expected a command with at least one argument, got {argc}"),
            ));
        }
        let mut args = Vec::new();
        for _ in 0..argc {
            let at = self.pos;
            let len = match self.read_number(b'$')? {
                Ok(n) => n,
                Err(f) => return Err(self.fail(f, at, rs)),
            };
            match self.read_payload(len)? {
                Ok(a) => args.push(a),
                Err((at, f)) => return Err(self.fail(f, at, rs)),
            }
        }
        self.commands += 1;
        Ok(Some(Record {
            item: Item::Command(args),
            start,
            end: self.pos,
        }))
    }

    /// The next unit: a command, a whole MULTI ... EXEC block, or an
    /// annotation. EOF inside a block is a torn tail whose truncation point is
    /// the MULTI; a nested MULTI or a lone EXEC is corruption.
    pub fn next_unit(&mut self) -> Result<Option<(Unit, u64, u64)>, ReadError> {
        let Some(rec) = self.next_record()? else {
            return Ok(None);
        };
        let args = match rec.item {
            Item::Annotation(a) => return Ok(Some((Unit::Annotation(a), rec.start, rec.end))),
            Item::Command(args) => args,
        };
        if args[0].eq_ignore_ascii_case(b"exec") {
            return Err(self.problem(
                ProblemKind::Corrupt,
                rec.start,
                rec.start,
                format!("Unexpected EXEC in AOF {}", self.name),
            ));
        }
        if !args[0].eq_ignore_ascii_case(b"multi") {
            return Ok(Some((Unit::Command(args), rec.start, rec.end)));
        }
        let mut inner = Vec::new();
        loop {
            let Some(r) = self.next_record_from(Some(rec.start))? else {
                return Err(self.problem(
                    ProblemKind::TornTail,
                    self.epos,
                    rec.start,
                    "Reached EOF before reading EXEC for MULTI".into(),
                ));
            };
            match r.item {
                Item::Annotation(_) => {}
                Item::Command(a) if a[0].eq_ignore_ascii_case(b"exec") => {
                    return Ok(Some((Unit::Transaction(inner), rec.start, r.end)));
                }
                Item::Command(a) if a[0].eq_ignore_ascii_case(b"multi") => {
                    return Err(self.problem(
                        ProblemKind::Corrupt,
                        r.start,
                        rec.start,
                        format!("Unexpected MULTI in AOF {}", self.name),
                    ));
                }
                Item::Command(a) => inner.push(a),
            }
        }
    }
}

/// `strtol` base 10: optional whitespace and sign, digits; saturates.
/// Returns the value and the number of bytes used (0 if no digits).
fn strtol(s: &[u8]) -> (i64, usize) {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut v: i128 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = (v * 10 + (s[i] - b'0') as i128).min(i64::MAX as i128 + 1);
        i += 1;
    }
    if i == digits_start {
        return (0, 0);
    }
    let v = if neg { -v } else { v };
    (v.clamp(i64::MIN as i128, i64::MAX as i128) as i64, i)
}

/// Parses a `TS:<digits>` annotation body.
pub fn parse_timestamp(annotation: &[u8]) -> Option<u64> {
    let d = annotation.strip_prefix(b"TS:")?;
    if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(d).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aof::record::encode_command;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        encode_command(&mut v, &["SELECT", "0"]);
        v.extend_from_slice(b"#TS:1700000000\r\n");
        encode_command(&mut v, &["set", "k", "v"]);
        encode_command(&mut v, &["MULTI"]);
        encode_command(&mut v, &["incr", "n"]);
        encode_command(&mut v, &["EXEC"]);
        v
    }

    fn units(data: &[u8]) -> Result<Vec<Unit>, ReadError> {
        let mut r = AofReader::new(data, "t.aof", 0);
        let mut out = Vec::new();
        while let Some((u, _, _)) = r.next_unit()? {
            out.push(u);
        }
        Ok(out)
    }

    #[test]
    fn reads_commands_annotations_and_transactions() {
        let u = units(&sample()).unwrap();
        assert_eq!(u.len(), 4);
        assert_eq!(u[1], Unit::Annotation(b"TS:1700000000".to_vec()));
        assert_eq!(
            u[3],
            Unit::Transaction(vec![vec![b"incr".to_vec(), b"n".to_vec()]])
        );
    }

    #[test]
    fn every_truncation_is_a_torn_tail_at_a_record_boundary() {
        let full = sample();
        let mut bounds = vec![0u64];
        let mut r = AofReader::new(&full[..], "t", 0);
        while let Some((_, _, end)) = r.next_unit().unwrap() {
            bounds.push(end);
        }
        for cut in 0..full.len() {
            match units(&full[..cut]) {
                Ok(_) => assert!(bounds.contains(&(cut as u64)), "cut {cut} accepted"),
                Err(ReadError::Format(e)) => {
                    assert_eq!(e.kind, ProblemKind::TornTail, "cut {cut}: {e}");
                    let expect = bounds
                        .iter()
                        .copied()
                        .filter(|&b| b <= cut as u64)
                        .max()
                        .unwrap();
                    assert_eq!(e.record_start, expect, "cut {cut}");
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn corruption_in_the_middle_is_not_a_torn_tail() {
        let mut d = sample();
        d[43] = b'X'; // the '$' of the set command's first argument
        let e = match units(&d) {
            Err(ReadError::Format(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.kind, ProblemKind::Corrupt);
        let mut d = sample();
        d.extend_from_slice(b"garbage");
        let e = match units(&d) {
            Err(ReadError::Format(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.kind, ProblemKind::Corrupt);
        assert_eq!(e.what, "format error");
    }

    #[test]
    fn huge_lengths_do_not_allocate() {
        let d = b"*1\r\n$9223372036854775000\r\nabc";
        let e = match units(d) {
            Err(ReadError::Format(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(e.kind, ProblemKind::TornTail);
        let d = b"*1\r\n$-5\r\nabc\r\n";
        assert!(matches!(
            units(d),
            Err(ReadError::Format(FormatError {
                kind: ProblemKind::Corrupt,
                ..
            }))
        ));
    }

    #[test]
    fn nested_multi_and_lone_exec_are_corrupt() {
        let mut d = Vec::new();
        encode_command(&mut d, &["EXEC"]);
        assert!(matches!(
            units(&d),
            Err(ReadError::Format(FormatError {
                kind: ProblemKind::Corrupt,
                ..
            }))
        ));
        let mut d = Vec::new();
        encode_command(&mut d, &["MULTI"]);
        encode_command(&mut d, &["MULTI"]);
        assert!(matches!(
            units(&d),
            Err(ReadError::Format(FormatError {
                kind: ProblemKind::Corrupt,
                ..
            }))
        ));
    }

    #[test]
    fn timestamps_parse() {
        assert_eq!(parse_timestamp(b"TS:12"), Some(12));
        assert_eq!(parse_timestamp(b"TS:1a"), None);
        assert_eq!(parse_timestamp(b"X"), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = units(&data);
        }

        #[test]
        fn never_panics_on_mutated_records(pos in 0usize..200, byte in proptest::prelude::any::<u8>(), cut in 0usize..200) {
            let mut d = sample();
            let p = pos % d.len();
            d[p] = byte;
            d.truncate(cut.max(1).min(d.len()));
            let _ = units(&d);
        }
    }

    #[test]
    fn manifest_parser_never_panics() {
        for b in 0..=255u8 {
            let mut t = b"file a seq 1 type b\n".to_vec();
            for i in 0..t.len() {
                let old = t[i];
                t[i] = b;
                let _ = crate::aof::Manifest::parse(&t);
                t[i] = old;
            }
        }
    }
}
