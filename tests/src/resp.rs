//! A raw RESP client whose replies keep every RESP2/RESP3 distinction (a
//! null bulk is not a null array is not a RESP3 null; a double keeps the
//! exact text the server sent), so two servers' replies can be compared
//! structurally.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One reply, as sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resp {
    /// `+...`
    Simple(Vec<u8>),
    /// `-...`
    Error(Vec<u8>),
    /// `:n`
    Int(i64),
    /// `$n` with data.
    Bulk(Vec<u8>),
    /// `$-1`
    NullBulk,
    /// `*n`
    Array(Vec<Resp>),
    /// `*-1`
    NullArray,
    /// RESP3 `_`
    Null,
    /// RESP3 `#t` / `#f`
    Bool(bool),
    /// RESP3 `,` with the text exactly as sent.
    Double(Vec<u8>),
    /// RESP3 `(`
    BigNumber(Vec<u8>),
    /// RESP3 `!`
    BlobError(Vec<u8>),
    /// RESP3 `=`: format (3 bytes) and text.
    Verbatim(Vec<u8>, Vec<u8>),
    /// RESP3 `%`
    Map(Vec<(Resp, Resp)>),
    /// RESP3 `~`
    Set(Vec<Resp>),
    /// RESP3 `>`
    Push(Vec<Resp>),
    /// RESP3 `|` attributes followed by the reply they annotate.
    Attribute(Vec<(Resp, Resp)>, Box<Resp>),
}

impl Resp {
    pub fn is_error(&self) -> bool {
        matches!(self, Resp::Error(_) | Resp::BlobError(_))
    }

    /// The text of a simple string, bulk string, verbatim string or error.
    pub fn text(&self) -> Option<String> {
        match self {
            Resp::Simple(s)
            | Resp::Error(s)
            | Resp::Bulk(s)
            | Resp::BlobError(s)
            | Resp::Verbatim(_, s)
            | Resp::Double(s)
            | Resp::BigNumber(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    /// The integer of an integer reply.
    pub fn int(&self) -> Option<i64> {
        match self {
            Resp::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The elements of an array, set or push reply.
    pub fn items(&self) -> Option<&[Resp]> {
        match self {
            Resp::Array(v) | Resp::Set(v) | Resp::Push(v) => Some(v),
            _ => None,
        }
    }

    /// A one-word name of the reply's type (for shape comparisons).
    pub fn kind(&self) -> &'static str {
        match self {
            Resp::Simple(_) => "simple",
            Resp::Error(_) => "error",
            Resp::Int(_) => "integer",
            Resp::Bulk(_) => "bulk",
            Resp::NullBulk => "null-bulk",
            Resp::Array(_) => "array",
            Resp::NullArray => "null-array",
            Resp::Null => "null",
            Resp::Bool(_) => "bool",
            Resp::Double(_) => "double",
            Resp::BigNumber(_) => "big-number",
            Resp::BlobError(_) => "blob-error",
            Resp::Verbatim(..) => "verbatim",
            Resp::Map(_) => "map",
            Resp::Set(_) => "set",
            Resp::Push(_) => "push",
            Resp::Attribute(..) => "attribute",
        }
    }
}

fn quote(b: &[u8]) -> String {
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// Renders arguments as one redis-cli-style line, quoting where needed.
pub fn format_args(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.iter()
                    .all(|&c| c.is_ascii_graphic() && c != b'"' && c != b'\'' && c != b'\\');
            if plain {
                String::from_utf8_lossy(a).into_owned()
            } else {
                quote(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Resp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, open: &str, v: &[Resp]) -> fmt::Result {
            write!(f, "{open}")?;
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{x}")?;
            }
            write!(f, "]")
        }
        fn pairs(f: &mut fmt::Formatter<'_>, open: &str, v: &[(Resp, Resp)]) -> fmt::Result {
            write!(f, "{open}")?;
            for (i, (k, x)) in v.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{k} => {x}")?;
            }
            write!(f, "}}")
        }
        match self {
            Resp::Simple(s) => write!(f, "+{}", String::from_utf8_lossy(s)),
            Resp::Error(s) => write!(f, "-{}", String::from_utf8_lossy(s)),
            Resp::Int(n) => write!(f, ":{n}"),
            Resp::Bulk(b) => write!(f, "{}", quote(b)),
            Resp::NullBulk => write!(f, "(nil bulk)"),
            Resp::Array(v) => list(f, "[", v),
            Resp::NullArray => write!(f, "(nil array)"),
            Resp::Null => write!(f, "(null)"),
            Resp::Bool(b) => write!(f, "#{}", if *b { 't' } else { 'f' }),
            Resp::Double(d) => write!(f, ",{}", String::from_utf8_lossy(d)),
            Resp::BigNumber(d) => write!(f, "({}", String::from_utf8_lossy(d)),
            Resp::BlobError(s) => write!(f, "!{}", quote(s)),
            Resp::Verbatim(fmt_, s) => {
                write!(f, "={}:{}", String::from_utf8_lossy(fmt_), quote(s))
            }
            Resp::Map(v) => pairs(f, "%{", v),
            Resp::Set(v) => list(f, "~[", v),
            Resp::Push(v) => list(f, ">[", v),
            Resp::Attribute(a, r) => {
                pairs(f, "|{", a)?;
                write!(f, " {r}")
            }
        }
    }
}

/// Encodes a command as a RESP multibulk.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply from a buffered stream.
pub fn read_reply<R: BufRead>(r: &mut R) -> io::Result<Resp> {
    let line = read_line(r)?;
    if line.is_empty() {
        return Err(bad("empty reply line"));
    }
    let (t, rest) = (line[0], &line[1..]);
    let num = |s: &[u8]| -> io::Result<i64> {
        std::str::from_utf8(s)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                bad(&format!(
                    "bad length/integer {:?}",
                    String::from_utf8_lossy(s)
                ))
            })
    };
    Ok(match t {
        b'+' => Resp::Simple(rest.to_vec()),
        b'-' => Resp::Error(rest.to_vec()),
        b':' => Resp::Int(num(rest)?),
        b'$' => match num(rest)? {
            -1 => Resp::NullBulk,
            n if n >= 0 => Resp::Bulk(read_blob(r, n as usize)?),
            _ => return Err(bad("negative bulk length")),
        },
        b'!' => Resp::BlobError(read_blob(r, num(rest)? as usize)?),
        b'=' => {
            let b = read_blob(r, num(rest)? as usize)?;
            if b.len() < 4 || b[3] != b':' {
                return Err(bad("bad verbatim string"));
            }
            Resp::Verbatim(b[..3].to_vec(), b[4..].to_vec())
        }
        b'*' => match num(rest)? {
            -1 => Resp::NullArray,
            n => Resp::Array(read_n(r, n)?),
        },
        b'~' => Resp::Set(read_n(r, num(rest)?)?),
        b'>' => Resp::Push(read_n(r, num(rest)?)?),
        b'%' => Resp::Map(read_pairs(r, num(rest)?)?),
        b'|' => {
            let attrs = read_pairs(r, num(rest)?)?;
            Resp::Attribute(attrs, Box::new(read_reply(r)?))
        }
        b'_' => Resp::Null,
        b'#' => match rest {
            b"t" => Resp::Bool(true),
            b"f" => Resp::Bool(false),
            _ => return Err(bad("bad boolean")),
        },
        b',' => Resp::Double(rest.to_vec()),
        b'(' => Resp::BigNumber(rest.to_vec()),
        _ => {
            return Err(bad(&format!(
                "unknown reply type {:?} in line {:?}",
                t as char,
                String::from_utf8_lossy(&line)
            )))
        }
    })
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn read_line<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    if !line.ends_with(b"\r\n") {
        return Err(bad(&format!(
            "reply line not terminated by CRLF: {:?}",
            String::from_utf8_lossy(&line)
        )));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

fn read_blob<R: BufRead>(r: &mut R, n: usize) -> io::Result<Vec<u8>> {
    let mut b = vec![0; n + 2];
    r.read_exact(&mut b)?;
    if &b[n..] != b"\r\n" {
        return Err(bad("bulk not terminated by CRLF"));
    }
    b.truncate(n);
    Ok(b)
}

fn read_n<R: BufRead>(r: &mut R, n: i64) -> io::Result<Vec<Resp>> {
    if n < 0 {
        return Err(bad("negative aggregate length"));
    }
    (0..n).map(|_| read_reply(r)).collect()
}

fn read_pairs<R: BufRead>(r: &mut R, n: i64) -> io::Result<Vec<(Resp, Resp)>> {
    if n < 0 {
        return Err(bad("negative map length"));
    }
    (0..n)
        .map(|_| Ok((read_reply(r)?, read_reply(r)?)))
        .collect()
}

/// A blocking RESP connection.
pub struct RawClient {
    reader: BufReader<TcpStream>,
}

impl RawClient {
    pub fn connect(port: u16) -> io::Result<RawClient> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        Ok(RawClient {
            reader: BufReader::new(s),
        })
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.reader.get_ref().set_read_timeout(t)
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.reader.get_mut().write_all(bytes)
    }

    /// Sends one command without reading its reply.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<()> {
        self.send_raw(&encode_command(args))
    }

    pub fn read(&mut self) -> io::Result<Resp> {
        read_reply(&mut self.reader)
    }

    /// Sends a command and reads its reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> io::Result<Resp> {
        self.send(args)?;
        self.read()
    }

    /// Like [`RawClient::cmd`] with space-separated words (no quoting).
    pub fn cmd_str(&mut self, line: &str) -> io::Result<Resp> {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&args)
    }

    /// True when the server closed the connection: reads until EOF (or an
    /// error such as a reset), within the read timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Resp {
        read_reply(&mut &s[..]).unwrap()
    }

    #[test]
    fn keeps_resp3_types_apart() {
        assert_eq!(parse(b"$-1\r\n"), Resp::NullBulk);
        assert_eq!(parse(b"*-1\r\n"), Resp::NullArray);
        assert_eq!(parse(b"_\r\n"), Resp::Null);
        assert_eq!(parse(b",1.50\r\n"), Resp::Double(b"1.50".to_vec()));
        assert_ne!(parse(b",1.5\r\n"), parse(b",1.50\r\n"));
        assert_eq!(
            parse(b"%1\r\n+a\r\n:1\r\n"),
            Resp::Map(vec![(Resp::Simple(b"a".to_vec()), Resp::Int(1))])
        );
        assert_eq!(
            parse(b"~2\r\n$1\r\nx\r\n#t\r\n"),
            Resp::Set(vec![Resp::Bulk(b"x".to_vec()), Resp::Bool(true)])
        );
        assert_eq!(
            parse(b"=8\r\ntxt:abcd\r\n"),
            Resp::Verbatim(b"txt".to_vec(), b"abcd".to_vec())
        );
        assert_eq!(
            parse(b">2\r\n+m\r\n(123\r\n"),
            Resp::Push(vec![
                Resp::Simple(b"m".to_vec()),
                Resp::BigNumber(b"123".to_vec())
            ])
        );
        assert_eq!(parse(b"-ERR x y\r\n"), Resp::Error(b"ERR x y".to_vec()));
        assert!(read_reply(&mut &b"$3\r\nab\r\n"[..]).is_err());
        assert!(read_reply(&mut &b"?\r\n"[..]).is_err());
    }

    #[test]
    fn encodes_commands() {
        assert_eq!(
            encode_command(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
        assert_eq!(
            format_args(&[b"SET".to_vec(), b"a b".to_vec(), vec![]]),
            "SET \"a b\" \"\""
        );
    }
}
