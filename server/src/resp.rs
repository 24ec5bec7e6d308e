//! RESP: the request parser (multibulk and inline) and the reply encoder
//! (RESP2 and RESP3).
//!
//! The parser is incremental: it keeps the arguments of a half-received
//! command between reads, so a command with many arguments arriving over many
//! reads is parsed once, not once per read. Bulk arguments are split off the
//! read buffer without copying; whoever stores one copies it, so a stored
//! value never pins a read buffer.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Longest header line or inline command accepted (Redis's PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Most arguments one multibulk may announce (Redis accepts up to INT_MAX,
/// but never allocates for them up front; neither do we).
pub const MULTIBULK_MAX: i64 = i32::MAX as i64;

/// A protocol error: the connection gets `-ERR Protocol error: <text>` and closes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

impl ProtocolError {
    pub fn new(msg: &str) -> ProtocolError {
        ProtocolError(msg.to_string())
    }
}

#[derive(Debug)]
pub struct RequestParser {
    /// Arguments of the multibulk being read.
    args: Vec<Bytes>,
    /// Arguments still expected in the current multibulk (0 = between commands).
    pending: usize,
    /// Length of the bulk whose header was read but whose data has not arrived.
    bulk_len: Option<usize>,
    /// proto-max-bulk-len.
    pub max_bulk_len: usize,
    /// The whole request frame of the command last returned, when it came
    /// in canonical form (see [`RequestParser::take_frame`]).
    frame: Option<Bytes>,
    /// (start, end) of each argument inside the frame being split: reused,
    /// so the one-pass parse allocates only the argument list.
    spans: Vec<(usize, usize)>,
}

impl RequestParser {
    pub fn new(max_bulk_len: usize) -> RequestParser {
        RequestParser {
            args: Vec::new(),
            pending: 0,
            bulk_len: None,
            max_bulk_len,
            frame: None,
            spans: Vec::new(),
        }
    }

    /// The request frame of the command `parse` returned last, if it was
    /// a multibulk in canonical form: every line ends in `\r\n` and every
    /// length is written as [`crate::util::parse_i64`] demands (no sign, no
    /// leading zero). Such a frame is byte for byte what encoding its
    /// arguments as a RESP array gives, so the AOF can log it as it came.
    pub fn take_frame(&mut self) -> Option<Bytes> {
        self.frame.take()
    }

    /// Parses one command from `buf`, consuming its bytes. Returns Ok(None)
    /// when more input is needed. Empty commands (a blank inline line, `*0`)
    /// are skipped.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        self.frame = None;
        loop {
            if self.pending == 0 {
                if buf.is_empty() {
                    return Ok(None);
                }
                if let Some(args) = self.parse_whole(buf) {
                    return Ok(Some(args));
                }
                if buf[0] != b'*' {
                    match self.parse_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
                let Some((end, used)) = find_line(buf, "too big mbulk count string")? else {
                    return Ok(None);
                };
                let n = buf
                    .get(1..end)
                    .and_then(parse_len)
                    .ok_or(ProtocolError::new("invalid multibulk length"))?;
                buf.advance(used);
                if n > MULTIBULK_MAX {
                    return Err(ProtocolError::new("invalid multibulk length"));
                }
                if n <= 0 {
                    continue;
                }
                self.pending = n as usize;
                self.args = Vec::with_capacity(self.pending.min(1024));
            }
            while self.pending > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        if buf[0] != b'$' {
                            return Err(ProtocolError(expected_dollar(buf[0])));
                        }
                        let Some((end, used)) = find_line(buf, "too big bulk count string")? else {
                            return Ok(None);
                        };
                        let len = buf
                            .get(1..end)
                            .and_then(parse_len)
                            .filter(|&l| l >= 0 && l as u64 <= self.max_bulk_len as u64)
                            .ok_or(ProtocolError::new("invalid bulk length"))?
                            as usize;
                        buf.advance(used);
                        self.bulk_len = Some(len);
                        // Reserve for a big bulk once, so it arrives in one
                        // allocation instead of through repeated doubling.
                        if len >= 32 * 1024 {
                            buf.reserve(len + 2);
                        }
                        len
                    }
                };
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                let data = buf.split_to(len).freeze();
                buf.advance(2);
                self.bulk_len = None;
                self.args.push(data);
                self.pending -= 1;
            }
            return Ok(Some(std::mem::take(&mut self.args)));
        }
    }

    /// The common case in one pass: a multibulk that has fully arrived, in
    /// canonical form. It is split off as one frame (kept for
    /// [`RequestParser::take_frame`]) and the arguments are slices of it.
    /// Anything else (input still coming, an error to report, a length
    /// written another way, a bare `\n`) returns None without consuming
    /// anything, for the incremental parser to handle as before.
    fn parse_whole(&mut self, buf: &mut BytesMut) -> Option<Vec<Bytes>> {
        let b = &buf[..];
        let (n, mut pos) = canonical_header(b, 0, b'*')?;
        if n == 0 || n > MULTIBULK_MAX as u64 {
            return None;
        }
        self.spans.clear();
        for _ in 0..n {
            let (len, at) = canonical_header(b, pos, b'$')?;
            if len > self.max_bulk_len as u64 {
                return None;
            }
            let end = at.checked_add(len as usize)?;
            if b.get(end..end.checked_add(2)?)? != b"\r\n" {
                return None;
            }
            self.spans.push((at, end));
            pos = end + 2;
        }
        let frame = buf.split_to(pos).freeze();
        let args = self.spans.iter().map(|&(a, e)| frame.slice(a..e)).collect();
        self.frame = Some(frame);
        Some(args)
    }

    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(line) = take_line(buf, "too big inline request")? else {
            return Ok(None);
        };
        let mut line = &line[..];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        split_args(line)
            .map(Some)
            .ok_or(ProtocolError::new("unbalanced quotes in request"))
    }
}

/// Whether `args` are exactly the arguments the parser split off `frame`
/// (a frame from [`RequestParser::take_frame`]), in order and all of them:
/// then `frame` is the RESP array encoding of `args`, byte for byte. Each
/// argument must sit where that encoding puts it, so arguments from
/// anywhere else (a rewritten command, a queued one, an expiry's DEL)
/// never match.
pub fn frame_holds(frame: &[u8], args: &[Bytes]) -> bool {
    let base = frame.as_ptr() as usize;
    let mut pos = dec_len(args.len()) + 3;
    for a in args {
        pos += dec_len(a.len()) + 3;
        if a.as_ptr() as usize != base + pos {
            return false;
        }
        pos += a.len() + 2;
    }
    !args.is_empty() && pos == frame.len()
}

/// Decimal digits of `n`.
#[inline]
fn dec_len(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// Reads `<tag><digits>\r\n` at `pos` of `b`, digits in canonical form
/// (`0`, or no leading zero), up to 18 of them (so no overflow, and more
/// than any buffer can hold). Returns the number and the position after
/// the line, or None for anything else, including a line not yet complete.
#[inline]
fn canonical_header(b: &[u8], pos: usize, tag: u8) -> Option<(u64, usize)> {
    if *b.get(pos)? != tag {
        return None;
    }
    let mut i = pos + 1;
    let first = *b.get(i)?;
    if !first.is_ascii_digit() {
        return None;
    }
    let mut v = (first - b'0') as u64;
    i += 1;
    loop {
        let c = *b.get(i)?;
        if !c.is_ascii_digit() {
            break;
        }
        if v == 0 || i - pos > 18 {
            return None;
        }
        v = v * 10 + (c - b'0') as u64;
        i += 1;
    }
    if b.get(i..i + 2)? != b"\r\n" {
        return None;
    }
    Some((v, i + 2))
}

fn expected_dollar(got: u8) -> String {
    format!("expected '$', got '{}'", got as char)
}

/// Finds the `\n`-terminated line at the start of `buf`, or None if it is
/// incomplete: the length of its content (without `\r\n`) and of the whole
/// line. Header lines are parsed in place and skipped with `advance`:
/// splitting each off would cost a reference-count round trip per line.
/// A line longer than INLINE_MAX is a protocol error.
fn find_line(buf: &[u8], too_big: &str) -> Result<Option<(usize, usize)>, ProtocolError> {
    match memchr(b'\n', buf) {
        Some(pos) => {
            if pos > INLINE_MAX {
                return Err(ProtocolError::new(too_big));
            }
            let end = if pos > 0 && buf[pos - 1] == b'\r' {
                pos - 1
            } else {
                pos
            };
            Ok(Some((end, pos + 1)))
        }
        None if buf.len() > INLINE_MAX => Err(ProtocolError::new(too_big)),
        None => Ok(None),
    }
}

/// Splits off one `\n`-terminated line (without `\r\n`), or None if the line
/// is incomplete. A line longer than INLINE_MAX is a protocol error.
fn take_line(buf: &mut BytesMut, too_big: &str) -> Result<Option<BytesMut>, ProtocolError> {
    match memchr(b'\n', buf) {
        Some(pos) => {
            if pos > INLINE_MAX {
                return Err(ProtocolError::new(too_big));
            }
            let mut line = buf.split_to(pos + 1);
            line.truncate(pos);
            if line.last() == Some(&b'\r') {
                line.truncate(pos - 1);
            }
            Ok(Some(line))
        }
        None if buf.len() > INLINE_MAX => Err(ProtocolError::new(too_big)),
        None => Ok(None),
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

fn parse_len(s: &[u8]) -> Option<i64> {
    // Redis reads these with its strict string2ll: no '+', no leading
    // zeros. Also the cheap path: no UTF-8 check, no generic parse.
    crate::util::parse_i64(s)
}

/// Splits an inline command line into arguments, honouring "double" quotes
/// (with \n, \xHH ... escapes) and 'single' quotes, as redis-cli and telnet
/// users expect. Returns None on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Bytes>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        // NUL ends a token below, so it must be skipped here too: otherwise
        // a NUL byte yields empty arguments forever (a hang and unbounded
        // memory on one inline line).
        while i < n && (line[i].is_ascii_whitespace() || line[i] == 0) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && is_hex(line[i + 2])
                    && is_hex(line[i + 3])
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // A closing quote must be followed by a space or the end.
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(Bytes::from(cur));
    }
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

/// A reply, independent of protocol version; [`encode`] renders it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`-style status.
    Status(&'static str),
    /// A status built at run time (rare: CLIENT LIST-like, TYPE).
    StatusOwned(String),
    /// An error line, given without the leading '-' (e.g. "ERR syntax error").
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// Null bulk string (`$-1` in RESP2).
    Nil,
    /// Null array (`*-1` in RESP2).
    NilArray,
    Array(Vec<Reply>),
    /// A map: flattened into an array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// A set: an array in RESP2.
    Set(Vec<Reply>),
    /// A double: a bulk string in RESP2.
    Double(f64),
    /// A boolean: 1/0 in RESP2.
    Bool(bool),
    /// A verbatim string (`=` in RESP3), a bulk in RESP2; the format is "txt".
    Verbatim(String),
    /// An out-of-band push (pub/sub): an array in RESP2.
    Push(Vec<Reply>),
    /// Bytes already encoded (for pre-rendered replies such as long arrays).
    Raw(Bytes),
    /// Several replies to one command, sent one after the other
    /// (SUBSCRIBE confirms each channel separately).
    Multi(Vec<Reply>),
    /// The command blocked the client; the real reply comes later.
    Blocked,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status("OK")
    }

    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    pub fn bulk(b: &[u8]) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(b))
    }

    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

/// Appends the encoding of `reply` for protocol version `proto` (2 or 3).
pub fn encode(reply: &Reply, proto: u8, out: &mut BytesMut) {
    let resp3 = proto >= 3;
    match reply {
        Reply::Status(s) => line(out, b'+', s.as_bytes()),
        Reply::StatusOwned(s) => line(out, b'+', s.as_bytes()),
        Reply::Error(s) => {
            out.extend_from_slice(b"-");
            // An error must stay on one line.
            for &c in s.as_bytes() {
                out.extend_from_slice(&[if c == b'\r' || c == b'\n' { b' ' } else { c }]);
            }
            out.extend_from_slice(b"\r\n");
        }
        Reply::Int(i) => {
            let mut b = itoa_buf(*i);
            line(out, b':', b.as_bytes_mut())
        }
        Reply::Bulk(b) => put_bulk(out, b),
        Reply::Nil => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"$-1\r\n" }),
        Reply::NilArray => out.extend_from_slice(if resp3 { b"_\r\n" } else { b"*-1\r\n" }),
        Reply::Array(items) => {
            put_header(out, b'*', items.len());
            for r in items {
                encode(r, proto, out);
            }
        }
        Reply::Set(items) => {
            put_header(out, if resp3 { b'~' } else { b'*' }, items.len());
            for r in items {
                encode(r, proto, out);
            }
        }
        Reply::Push(items) => {
            put_header(out, if resp3 { b'>' } else { b'*' }, items.len());
            for r in items {
                encode(r, proto, out);
            }
        }
        Reply::Map(pairs) => {
            if resp3 {
                put_header(out, b'%', pairs.len());
            } else {
                put_header(out, b'*', pairs.len() * 2);
            }
            for (k, v) in pairs {
                encode(k, proto, out);
                encode(v, proto, out);
            }
        }
        Reply::Double(d) => {
            let s = crate::util::fmt_double(*d);
            if resp3 {
                line(out, b',', s.as_bytes());
            } else {
                put_bulk(out, s.as_bytes());
            }
        }
        Reply::Bool(b) => {
            if resp3 {
                out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
            } else {
                out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" });
            }
        }
        Reply::Verbatim(s) => {
            if resp3 {
                put_header(out, b'=', s.len() + 4);
                out.extend_from_slice(b"txt:");
                out.extend_from_slice(s.as_bytes());
                out.extend_from_slice(b"\r\n");
            } else {
                put_bulk(out, s.as_bytes());
            }
        }
        Reply::Raw(b) => out.extend_from_slice(b),
        Reply::Multi(items) => {
            for r in items {
                encode(r, proto, out);
            }
        }
        Reply::Blocked => {}
    }
}

fn line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.extend_from_slice(&[prefix]);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

/// `<prefix><n>\r\n`: an array, map, set or bulk header.
pub(crate) fn put_header(out: &mut BytesMut, prefix: u8, n: usize) {
    let mut b = itoa_buf(n as i64);
    line(out, prefix, b.as_bytes_mut());
}

/// A bulk string, RESP2 and RESP3 alike.
pub(crate) fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    put_header(out, b'$', data.len());
    out.reserve(data.len() + 2);
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// A small stack buffer holding the decimal form of an integer.
pub(crate) struct ItoaBuf {
    buf: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_bytes_mut(&mut self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// The decimal text of `v`, without going through `fmt`.
pub(crate) fn itoa_buf(v: i64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        i -= 1;
        buf[i] = b'-';
    }
    ItoaBuf { buf, start: i }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = RequestParser::new(512 * 1024 * 1024);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(c) = p.parse(&mut buf)? {
            out.push(c);
        }
        Ok(out)
    }

    #[test]
    fn inline_nul_byte_terminates() {
        let args = split_args(b"SET\0k v").unwrap();
        assert_eq!(
            args,
            vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")]
        );
        assert_eq!(split_args(b"\0").unwrap(), Vec::<Bytes>::new());
    }

    #[test]
    fn multibulk_and_pipelining() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(cmds[1], vec![Bytes::from("PING")]);
    }

    #[test]
    fn lengths_are_read_strictly_as_redis_does() {
        for bad in [
            &b"*01\r\n$4\r\nPING\r\n"[..],
            b"*+1\r\n$4\r\nPING\r\n",
            b"*-0\r\n",
            b"*1\r\n$04\r\nPING\r\n",
            b"*1\r\n$+4\r\nPING\r\n",
        ] {
            assert!(
                parse_all(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_all(b"*0\r\n*-1\r\n").unwrap().len(), 0);
    }

    #[test]
    fn byte_at_a_time_is_the_same() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n";
        let mut p = RequestParser::new(1 << 20);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(c) = p.parse(&mut buf).unwrap() {
                out.push(c);
            }
        }
        assert_eq!(out.len(), 2);
        assert_eq!(out[0][2], Bytes::from("hello"));
        assert_eq!(out[1], vec![Bytes::from("PING")]);
    }

    #[test]
    fn inline_with_quotes() {
        let cmds = parse_all(b"set \"a b\" 'c d'\r\n\r\nget \"\\x41\\n\"\n").unwrap();
        assert_eq!(
            cmds[0],
            vec![Bytes::from("set"), Bytes::from("a b"), Bytes::from("c d")]
        );
        assert_eq!(cmds[1], vec![Bytes::from("get"), Bytes::from("A\n")]);
        assert_eq!(
            parse_all(b"set \"abc\r\n").unwrap_err(),
            ProtocolError::new("unbalanced quotes in request")
        );
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").unwrap_err(),
            ProtocolError::new("invalid bulk length")
        );
        assert_eq!(
            parse_all(b"*abc\r\n").unwrap_err(),
            ProtocolError::new("invalid multibulk length")
        );
        assert!(parse_all(b"*1\r\n+x\r\n").is_err());
        let mut p = RequestParser::new(10);
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf).unwrap_err(),
            ProtocolError::new("invalid bulk length")
        );
    }

    #[test]
    fn huge_claims_allocate_nothing_up_front() {
        // Announces 2^31-1 arguments but sends none: must just wait for more.
        let mut p = RequestParser::new(512 << 20);
        let mut buf = BytesMut::from(&b"*2147483647\r\n"[..]);
        assert_eq!(p.parse(&mut buf).unwrap(), None);
        assert!(p.args.capacity() <= 1024);
        assert!(parse_all(b"*2147483648\r\n").is_err());
    }

    #[test]
    fn long_inline_line_is_an_error() {
        let big = vec![b'a'; INLINE_MAX + 10];
        assert_eq!(
            parse_all(&big).unwrap_err(),
            ProtocolError::new("too big inline request")
        );
    }

    #[test]
    fn encode_resp2_and_resp3() {
        let r = Reply::Map(vec![(Reply::bulk(b"a"), Reply::Int(1))]);
        let mut b = BytesMut::new();
        encode(&r, 2, &mut b);
        assert_eq!(&b[..], b"*2\r\n$1\r\na\r\n:1\r\n");
        b.clear();
        encode(&r, 3, &mut b);
        assert_eq!(&b[..], b"%1\r\n$1\r\na\r\n:1\r\n");
        b.clear();
        encode(&Reply::Nil, 2, &mut b);
        encode(&Reply::Nil, 3, &mut b);
        encode(&Reply::NilArray, 2, &mut b);
        encode(&Reply::Double(1.5), 2, &mut b);
        encode(&Reply::Double(1.5), 3, &mut b);
        encode(&Reply::Int(-42), 3, &mut b);
        assert_eq!(&b[..], b"$-1\r\n_\r\n*-1\r\n$3\r\n1.5\r\n,1.5\r\n:-42\r\n");
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;
    use proptest::prelude::*;
    use redoubt_persist::aof::record::encode_command;

    fn encoded(cmds: &[Vec<Vec<u8>>]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            encode_command(&mut out, c);
        }
        out
    }

    #[test]
    fn a_whole_canonical_multibulk_is_its_own_frame() {
        let mut p = RequestParser::new(1 << 20);
        let mut buf =
            BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$12\r\nhello\r\nworld\r\n"[..]);
        let args = p.parse(&mut buf).unwrap().unwrap();
        let frame = p.take_frame().unwrap();
        assert_eq!(
            &frame[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$12\r\nhello\r\nworld\r\n"
        );
        assert!(frame_holds(&frame, &args));
        assert!(p.take_frame().is_none(), "taken once");
        // Not the same arguments: a copy, a rewritten one, a part.
        let copies: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        assert!(!frame_holds(&frame, &copies));
        let mut rewritten = args.clone();
        rewritten[2] = Bytes::from_static(b"hello\r\nworld");
        assert!(!frame_holds(&frame, &rewritten));
        assert!(!frame_holds(&frame, &args[..2]));
        assert!(!frame_holds(&frame, &args[1..]));
        assert!(!frame_holds(&frame, &[]));
    }

    #[test]
    fn other_forms_parse_as_before_without_a_frame() {
        for input in [
            &b"*3\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"[..],
            b"*3\r\n$3\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
            b"*3\r\n$3\r\nSETxx$1\r\nk\r\n$1\r\nv\r\n",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\n\n",
            b"SET k v\r\n",
        ] {
            let mut p = RequestParser::new(1 << 20);
            let mut buf = BytesMut::from(input);
            let args = p.parse(&mut buf).unwrap().unwrap();
            assert_eq!(
                args,
                vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")]
            );
            assert!(p.take_frame().is_none(), "{input:?}");
            assert!(buf.is_empty());
        }
        // Errors are still the incremental parser's.
        for (input, err) in [
            (&b"*3\r\n$03\r\nSET\r\n"[..], "invalid bulk length"),
            (b"*3\r\n$-1\r\n", "invalid bulk length"),
            (b"*3\r\n:1\r\n", "expected '$', got ':'"),
        ] {
            let mut p = RequestParser::new(1 << 20);
            let e = p.parse(&mut BytesMut::from(input)).unwrap_err();
            assert_eq!(e.0, err);
        }
        // Over proto-max-bulk-len.
        let mut p = RequestParser::new(4);
        let e = p
            .parse(&mut BytesMut::from(&b"*1\r\n$5\r\nhello\r\n"[..]))
            .unwrap_err();
        assert_eq!(e.0, "invalid bulk length");
    }

    fn arg() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4),
            proptest::collection::vec(
                prop_oneof![
                    Just(b'\r'),
                    Just(b'\n'),
                    Just(b'$'),
                    Just(b'*'),
                    any::<u8>()
                ],
                0..40
            ),
            proptest::collection::vec(any::<u8>(), 95..130),
        ]
    }

    proptest! {
        /// However the input is cut into reads, the commands are the same,
        /// and a frame, when there is one, is the encoding of its command.
        #[test]
        fn frames_are_the_encoding_of_their_commands(
            cmds in proptest::collection::vec(proptest::collection::vec(arg(), 1..6), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let input = encoded(&cmds);
            // All at once: every command comes with its frame.
            let mut p = RequestParser::new(1 << 20);
            let mut buf = BytesMut::from(&input[..]);
            for c in &cmds {
                let args = p.parse(&mut buf).unwrap().unwrap();
                prop_assert_eq!(&args, c);
                let frame = p.take_frame().unwrap();
                prop_assert!(frame_holds(&frame, &args));
                let mut want = Vec::new();
                encode_command(&mut want, c);
                prop_assert_eq!(&frame[..], &want[..]);
            }
            prop_assert!(p.parse(&mut buf).unwrap().is_none());
            // In pieces.
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
            at.push(input.len());
            at.sort_unstable();
            let mut p = RequestParser::new(1 << 20);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            let mut from = 0;
            for to in at {
                buf.extend_from_slice(&input[from..to]);
                from = to;
                while let Some(args) = p.parse(&mut buf).unwrap() {
                    if let Some(frame) = p.take_frame() {
                        prop_assert!(frame_holds(&frame, &args));
                        let mut want = Vec::new();
                        encode_command(&mut want, &args);
                        prop_assert_eq!(&frame[..], &want[..]);
                    }
                    got.push(args);
                }
            }
            prop_assert_eq!(got, cmds);
        }
    }
}
