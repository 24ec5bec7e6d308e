//! Encoding logged commands as AOF records: RESP arrays of bulk strings, a
//! `SELECT` whenever the db changes, and `#TS:` annotations when enabled.

/// Appends one command as a RESP array of bulk strings.
///
/// Runs for every logged write, so it is written for short commands: the
/// record's length is computed first, the buffer grown once, and the
/// record filled in place. Pushing it piece by piece (a capacity check and
/// a tiny copy per digit run, tag and CRLF) cost more than the bytes.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let mut total = header_len(args.len() as u64);
    for a in args {
        let n = a.as_ref().len();
        total += header_len(n as u64) + n + 2;
    }
    let start = out.len();
    out.resize(start + total, 0);
    let mut w = &mut out[start..];
    put_header(&mut w, b'*', args.len() as u64);
    for a in args {
        let a = a.as_ref();
        put_header(&mut w, b'$', a.len() as u64);
        put(&mut w, a);
        put(&mut w, b"\r\n");
    }
    debug_assert!(w.is_empty());
}

/// Decimal digits of `n`.
#[inline(always)]
fn digits(n: u64) -> usize {
    if n < 10 {
        1
    } else if n < 100 {
        2
    } else if n < 1000 {
        3
    } else {
        let mut d = 4;
        let mut v = n / 10_000;
        while v > 0 {
            v /= 10;
            d += 1;
        }
        d
    }
}

/// Length of `<tag><n>\r\n`.
#[inline(always)]
fn header_len(n: u64) -> usize {
    digits(n) + 3
}

/// Copies `bytes` to the front of `w` and moves `w` past them.
#[inline(always)]
fn put(w: &mut &mut [u8], bytes: &[u8]) {
    let (head, rest) = std::mem::take(w).split_at_mut(bytes.len());
    head.copy_from_slice(bytes);
    *w = rest;
}

/// Writes `<tag><n>\r\n` to the front of `w` and moves `w` past it.
#[inline(always)]
fn put_header(w: &mut &mut [u8], tag: u8, n: u64) {
    if n < 10 {
        put(w, &[tag, b'0' + n as u8, b'\r', b'\n']);
    } else if n < 100 {
        put(
            w,
            &[
                tag,
                b'0' + (n / 10) as u8,
                b'0' + (n % 10) as u8,
                b'\r',
                b'\n',
            ],
        );
    } else {
        // Formatted backwards into a stack buffer: no allocation.
        let mut buf = [0u8; 23];
        let mut i = buf.len() - 2;
        buf[i] = b'\r';
        buf[i + 1] = b'\n';
        let mut v = n;
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        i -= 1;
        buf[i] = tag;
        put(w, &buf[i..]);
    }
}

/// `#TS:<secs>\r\n`.
pub fn encode_annotation(out: &mut Vec<u8>, unix_secs: u64) {
    out.extend_from_slice(b"#TS:");
    out.extend_from_slice(unix_secs.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Stateful encoder: remembers the db of the last command written (so a
/// `SELECT` is inserted only on change) and the last annotation second.
#[derive(Debug, Clone, Default)]
pub struct RecordEncoder {
    last_db: Option<usize>,
    timestamps: bool,
    last_ts: u64,
    in_multi: bool,
}

impl RecordEncoder {
    pub fn new(timestamps: bool) -> RecordEncoder {
        RecordEncoder {
            timestamps,
            ..Default::default()
        }
    }

    pub fn set_timestamps(&mut self, on: bool) {
        self.timestamps = on;
    }

    /// Whether `#TS:` annotations are written: without them the caller
    /// need not read the clock for every command.
    pub fn timestamps(&self) -> bool {
        self.timestamps
    }

    /// Forgets the db, so the next command starts with a `SELECT`: done when
    /// a new incr file is opened, because every file must stand on its own
    /// after the files before it are rewritten away.
    pub fn reset_db(&mut self) {
        self.last_db = None;
    }

    /// Encodes one logged command executed against `db`.
    ///
    /// Transactions arrive as `MULTI`, the commands, `EXEC`. Like Redis 7.0
    /// the `SELECT` (if needed) goes before `MULTI`; a db change inside the
    /// block gets its own `SELECT` inside; `EXEC` never gets one. No
    /// annotation is put inside a block, so cutting at an annotation
    /// (`--truncate-to-timestamp`) never splits a transaction.
    pub fn encode<A: AsRef<[u8]>>(
        &mut self,
        out: &mut Vec<u8>,
        db: usize,
        args: &[A],
        now_secs: u64,
    ) {
        let name = args.first().map(|a| a.as_ref()).unwrap_or(b"");
        let block = self.before(out, db, name, now_secs);
        encode_command(out, args);
        self.after(block);
    }

    /// [`RecordEncoder::encode`] for a command whose encoding the caller
    /// already holds: `record` must be the RESP array of bulk strings
    /// `encode_command` would write for it (a request frame as the client
    /// sent it, in canonical form), and `name` its first argument.
    pub fn encode_record(
        &mut self,
        out: &mut Vec<u8>,
        db: usize,
        name: &[u8],
        record: &[u8],
        now_secs: u64,
    ) {
        let block = self.before(out, db, name, now_secs);
        out.extend_from_slice(record);
        self.after(block);
    }

    /// The annotation and the `SELECT` that go before a command; returns
    /// whether the command opens or closes a transaction block.
    fn before(&mut self, out: &mut Vec<u8>, db: usize, name: &[u8], now_secs: u64) -> Block {
        let block = if name.eq_ignore_ascii_case(b"multi") {
            Block::Opens
        } else if name.eq_ignore_ascii_case(b"exec") {
            Block::Closes
        } else {
            Block::Neither
        };
        if self.timestamps && !self.in_multi && now_secs > self.last_ts {
            encode_annotation(out, now_secs);
            self.last_ts = now_secs;
        }
        if block != Block::Closes && self.last_db != Some(db) {
            let dbs = db.to_string();
            encode_command(out, &[b"SELECT".as_slice(), dbs.as_bytes()]);
            self.last_db = Some(db);
        }
        block
    }

    fn after(&mut self, block: Block) {
        match block {
            Block::Opens => self.in_multi = true,
            Block::Closes => self.in_multi = false,
            Block::Neither => {}
        }
    }
}

/// Where a command stands in a `MULTI` ... `EXEC` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Opens,
    Closes,
    Neither,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_resp_with_select_on_change() {
        let mut e = RecordEncoder::new(false);
        let mut out = Vec::new();
        e.encode(&mut out, 0, &["set", "k", "v"], 0);
        e.encode(&mut out, 0, &["del", "k"], 0);
        e.encode(&mut out, 3, &["set", "a", ""], 0);
        assert_eq!(
            out,
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\ndel\r\n$1\r\nk\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*3\r\n$3\r\nset\r\n$1\r\na\r\n$0\r\n\r\n"
        );
        e.reset_db();
        let mut out = Vec::new();
        e.encode(&mut out, 3, &["del", "a"], 0);
        assert!(out.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
    }

    #[test]
    fn headers_of_every_width_match_the_reference_format() {
        for n in [0usize, 1, 9, 10, 99, 100, 999, 1000, 65_536, 1 << 20] {
            let arg = vec![b'x'; n];
            let args: Vec<&[u8]> = vec![b"SET", b"k", &arg];
            let mut out = Vec::new();
            encode_command(&mut out, &args);
            let mut want = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${n}\r\n").into_bytes();
            want.extend_from_slice(&arg);
            want.extend_from_slice(b"\r\n");
            assert_eq!(out, want, "argument of {n} bytes");
        }
        let many: Vec<&[u8]> = vec![b"a"; 12_345];
        let mut out = Vec::new();
        encode_command(&mut out, &many);
        assert!(out.starts_with(b"*12345\r\n$1\r\na\r\n"));
        assert_eq!(out.len(), 8 + 12_345 * 7);
        for n in [
            0u64,
            9,
            10,
            99,
            100,
            999,
            1000,
            9999,
            10_000,
            99_999,
            u64::MAX,
        ] {
            let mut h = vec![0u8; header_len(n)];
            let mut w = &mut h[..];
            put_header(&mut w, b'$', n);
            assert!(w.is_empty(), "header_len({n})");
            assert_eq!(h, format!("${n}\r\n").into_bytes());
        }
    }

    #[test]
    fn annotations_once_per_second_never_inside_multi() {
        let mut e = RecordEncoder::new(true);
        let mut out = Vec::new();
        e.encode(&mut out, 0, &["set", "k", "v"], 100);
        e.encode(&mut out, 0, &["set", "k", "v"], 100);
        e.encode(&mut out, 0, &["MULTI"], 100);
        e.encode(&mut out, 0, &["incr", "n"], 101);
        e.encode(&mut out, 0, &["EXEC"], 101);
        e.encode(&mut out, 0, &["set", "k", "v"], 101);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.matches("#TS:100\r\n").count(), 1);
        assert_eq!(s.matches("#TS:101\r\n").count(), 1);
        assert!(s.find("#TS:101").unwrap() > s.find("EXEC").unwrap());
    }
}
