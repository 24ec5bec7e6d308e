//! Encoding logged commands as AOF records: RESP arrays of bulk strings, a
//! `SELECT` whenever the db changes, and `#TS:` annotations when enabled.

/// Appends one command as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    push_num(out, args.len() as u64);
    for a in args {
        let a = a.as_ref();
        out.push(b'$');
        push_num(out, a.len() as u64);
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_num(out: &mut Vec<u8>, n: u64) {
    let mut buf = itoa_buf(n);
    out.append(&mut buf);
    out.extend_from_slice(b"\r\n");
}

fn itoa_buf(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
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
        let is_multi = name.eq_ignore_ascii_case(b"multi");
        let is_exec = name.eq_ignore_ascii_case(b"exec");
        if self.timestamps && !self.in_multi && now_secs > self.last_ts {
            encode_annotation(out, now_secs);
            self.last_ts = now_secs;
        }
        if !is_exec && self.last_db != Some(db) {
            let dbs = db.to_string();
            encode_command(out, &[b"SELECT".as_slice(), dbs.as_bytes()]);
            self.last_db = Some(db);
        }
        encode_command(out, args);
        if is_multi {
            self.in_multi = true;
        } else if is_exec {
            self.in_multi = false;
        }
    }
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
