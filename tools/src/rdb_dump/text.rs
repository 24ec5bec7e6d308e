//! Text renderings of binary-safe byte strings.
//!
//! JSON (`json`, `stats`): a byte string that is valid UTF-8 is written as a
//! JSON string (with JSON's own escapes for `"`, `\` and control
//! characters). Any other byte string is written as an object
//! `{"bytes":"..."}` whose string is the bytes with Rust's / Python's
//! byte-literal escaping: printable ASCII as is, `\t \r \n \\ \' \"`, and
//! every other byte as `\xNN` (this is exactly Python's `repr(bytes)`
//! body, so `ast.literal_eval("b'" + s + "'")` gets the bytes back). A reader
//! therefore never confuses a string that happens to contain `\x` with an
//! escaped one.
//!
//! CSV (`memory`) and plain text lines: UTF-8 is kept, other bytes use the
//! same `\xNN` escaping; CSV fields containing `,`, `"` or a line break are
//! quoted with `"` doubled, as RFC 4180 says.

use std::io::{self, Write};

/// Writes `s` as a JSON string (or `{"bytes":...}` when not UTF-8).
pub fn json_bytes(out: &mut Vec<u8>, s: &[u8]) {
    match std::str::from_utf8(s) {
        Ok(t) => json_str(out, t),
        Err(_) => {
            out.extend_from_slice(b"{\"bytes\":");
            let esc = s.escape_ascii().to_string();
            json_str(out, &esc);
            out.push(b'}');
        }
    }
}

/// Per byte: its JSON escape (padded to 6 bytes) and the escape's length
/// (0 = no escape needed).
const ESCAPES: ([[u8; 6]; 256], [u8; 256]) = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut esc = [[0u8; 6]; 256];
    let mut len = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let (e, l): ([u8; 6], u8) = match c as u8 {
            b'"' => (*b"\\\"    ", 2),
            b'\\' => (*b"\\\\    ", 2),
            b'\n' => (*b"\\n    ", 2),
            b'\r' => (*b"\\r    ", 2),
            b'\t' => (*b"\\t    ", 2),
            0..=0x1f | 0x7f => (
                [b'\\', b'u', b'0', b'0', HEX[(c >> 4) & 15], HEX[c & 15]],
                6,
            ),
            _ => ([0; 6], 0),
        };
        esc[c] = e;
        len[c] = l;
        c += 1;
    }
    (esc, len)
};

/// Writes a JSON string literal. Runs of plain bytes are copied in one
/// piece; runs of one byte needing an escape are written once and doubled
/// (a padded dump value is mostly NULs, so this is the hot loop of `json`).
pub fn json_str(out: &mut Vec<u8>, s: &str) {
    let (esc, len) = &ESCAPES;
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut i = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && len[usize::from(b[i])] == 0 {
            i += 1;
        }
        out.extend_from_slice(&b[start..i]);
        if i == b.len() {
            break;
        }
        // A run of one byte needing an escape: write its escape once, then
        // double the written text in place.
        let c = b[i];
        let k = i + 1 + same_run(&b[i + 1..], c);
        let (e, l) = (&esc[usize::from(c)], usize::from(len[usize::from(c)]));
        let w = out.len();
        out.extend_from_slice(&e[..l]);
        let total = (k - i) * l;
        while out.len() - w < total {
            let n = (out.len() - w).min(total - (out.len() - w));
            out.extend_from_within(w..w + n);
        }
        i = k;
    }
    out.push(b'"');
}

/// How many bytes at the start of `s` equal `c` (8 at a time).
fn same_run(s: &[u8], c: u8) -> usize {
    let pat = u64::from_ne_bytes([c; 8]);
    let mut n = 0;
    while let Some(w) = s.get(n..n + 8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        if u64::from_ne_bytes(a) != pat {
            break;
        }
        n += 8;
    }
    while n < s.len() && s[n] == c {
        n += 1;
    }
    n
}

/// A JSON number for a score; infinities and NaN (not JSON numbers) as
/// the strings `"inf"`, `"-inf"`, `"nan"`.
pub fn json_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"\"nan\"");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"\"inf\"" } else { b"\"-inf\"" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Human text: UTF-8 kept, other bytes `\xNN`-escaped.
pub fn display(s: &[u8]) -> String {
    match std::str::from_utf8(s) {
        Ok(t) if !t.chars().any(|c| c.is_control()) => t.to_string(),
        _ => s.escape_ascii().to_string(),
    }
}

/// One CSV field.
pub fn csv_field(out: &mut dyn Write, s: &str) -> io::Result<()> {
    if s.contains([',', '"', '\n', '\r']) {
        write!(out, "\"{}\"", s.replace('"', "\"\""))
    } else {
        out.write_all(s.as_bytes())
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` (UTC) as Python's `datetime.isoformat()`
/// prints it (rdbtools' expiry column).
pub fn iso8601_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let base = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if frac == 0 {
        base
    } else {
        format!("{base}.{:06}", frac * 1000)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        let mut o = Vec::new();
        json_str(&mut o, "a\0\0\0\n\n\"x\u{1}\u{1}b");
        assert_eq!(o, br#""a\u0000\u0000\u0000\n\n\"x\u0001\u0001b""#);
        let mut o = Vec::new();
        json_bytes(&mut o, b"a\"b\\\n\x01");
        assert_eq!(o, br#""a\"b\\\n\u0001""#);
        o.clear();
        json_bytes(&mut o, b"\xff\\x");
        assert_eq!(o, br#"{"bytes":"\\xff\\\\x"}"#);
        assert_eq!(iso8601_ms(4102444800000), "2100-01-01T00:00:00");
        assert_eq!(iso8601_ms(1645136129180), "2022-02-17T22:15:29.180000");
    }
}
