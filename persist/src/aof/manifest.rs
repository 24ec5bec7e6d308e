//! The Redis 7 AOF manifest: parse and write it byte for byte as Redis does.
//!
//! ```text
//! file appendonly.aof.1.base.rdb seq 1 type b
//! file appendonly.aof.1.incr.aof seq 1 type i
//! ```

use std::fmt;

/// Longest manifest line Redis reads (its buffer is this plus the NUL).
const LINE_MAX: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Base,
    History,
    Incr,
}

impl FileType {
    fn letter(self) -> char {
        match self {
            FileType::Base => 'b',
            FileType::History => 'h',
            FileType::Incr => 'i',
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AofInfo {
    pub name: String,
    pub seq: u64,
    pub ty: FileType,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofInfo>,
    pub incrs: Vec<AofInfo>,
    pub history: Vec<AofInfo>,
    /// Sequence of the last base created (resumes from the manifest).
    pub curr_base_seq: u64,
    /// Sequence of the last incr created.
    pub curr_incr_seq: u64,
}

/// A manifest Redis would refuse, with Redis's message and the offending
/// line. `Display` renders the log lines Redis prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ManifestError {
    /// (1-based line number, trimmed line) when a line was being parsed.
    pub line: Option<(usize, String)>,
    pub msg: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "*** FATAL AOF MANIFEST FILE ERROR ***")?;
        if let Some((n, l)) = &self.line {
            writeln!(f, "Reading the manifest file, at line {n}")?;
            writeln!(f, ">>> '{l}'")?;
        }
        write!(f, "{}", self.msg)
    }
}

impl ManifestError {
    fn at(line: usize, text: &str, msg: &str) -> ManifestError {
        ManifestError {
            line: Some((line, text.to_string())),
            msg: msg.to_string(),
        }
    }
}

impl Manifest {
    /// Parses manifest bytes with Redis's rules and messages.
    pub fn parse(data: &[u8]) -> Result<Manifest, ManifestError> {
        let mut m = Manifest::default();
        let mut rest = data;
        let mut linenum = 0usize;
        let mut last_incr = 0u64;
        while !rest.is_empty() {
            let window = &rest[..rest.len().min(LINE_MAX)];
            let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                return Err(ManifestError {
                    line: None,
                    msg: "The AOF manifest file contains too long line".into(),
                });
            };
            let raw = &rest[..nl + 1];
            rest = &rest[nl + 1..];
            linenum += 1;
            if raw[0] == b'#' {
                continue;
            }
            let trimmed = trim(raw);
            let text = String::from_utf8_lossy(trimmed).into_owned();
            let bad = |msg: &str| ManifestError::at(linenum, &text, msg);
            if trimmed.is_empty() {
                return Err(bad("Invalid AOF manifest file format"));
            }
            let toks =
                split_args(trimmed).ok_or_else(|| bad("Invalid AOF manifest file format"))?;
            if toks.len() < 6 || toks.len() % 2 != 0 {
                return Err(bad("Invalid AOF manifest file format"));
            }
            let (mut name, mut seq, mut ty) = (None, 0u64, None);
            for kv in toks.chunks(2) {
                let k = &kv[0];
                if k.eq_ignore_ascii_case(b"file") {
                    if kv[1].contains(&b'/') {
                        return Err(bad("File can't be a path, just a filename"));
                    }
                    name = Some(String::from_utf8_lossy(&kv[1]).into_owned());
                } else if k.eq_ignore_ascii_case(b"seq") {
                    seq = atoll(&kv[1]);
                } else if k.eq_ignore_ascii_case(b"type") {
                    ty = kv[1].first().copied();
                }
                // Unknown keys are ignored: newer versions may add fields.
            }
            let (Some(name), Some(t)) = (name, ty) else {
                return Err(bad("Invalid AOF manifest file format"));
            };
            if seq == 0 {
                return Err(bad("Invalid AOF manifest file format"));
            }
            match t {
                b'b' => {
                    if m.base.is_some() {
                        return Err(bad("Found duplicate base file information"));
                    }
                    m.curr_base_seq = seq;
                    m.base = Some(AofInfo {
                        name,
                        seq,
                        ty: FileType::Base,
                    });
                }
                b'h' => m.history.push(AofInfo {
                    name,
                    seq,
                    ty: FileType::History,
                }),
                b'i' => {
                    if seq <= last_incr {
                        return Err(bad("Found a non-monotonic sequence number"));
                    }
                    last_incr = seq;
                    m.curr_incr_seq = seq;
                    m.incrs.push(AofInfo {
                        name,
                        seq,
                        ty: FileType::Incr,
                    });
                }
                _ => return Err(bad("Unknown AOF file type")),
            }
        }
        if linenum == 0 {
            return Err(ManifestError {
                line: None,
                msg: "Found an empty AOF manifest".into(),
            });
        }
        Ok(m)
    }

    /// The manifest text Redis writes: base, history, incrs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        let all = self
            .base
            .iter()
            .chain(self.history.iter())
            .chain(self.incrs.iter());
        for ai in all {
            out.push_str(&format!(
                "file {} seq {} type {}\n",
                repr_name(&ai.name),
                ai.seq,
                ai.ty.letter()
            ));
        }
        out.into_bytes()
    }

    /// Every file named (base, incrs, history).
    pub fn all_files(&self) -> impl Iterator<Item = &AofInfo> {
        self.base
            .iter()
            .chain(self.incrs.iter())
            .chain(self.history.iter())
    }

    /// Files to load, in order: base then incrs.
    pub fn load_order(&self) -> Vec<&AofInfo> {
        self.base.iter().chain(self.incrs.iter()).collect()
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let is = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = s.iter().position(|b| !is(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !is(b))
        .map(|i| i + 1)
        .unwrap_or(start);
    &s[start..end.max(start)]
}

/// `atoll`: leading whitespace, sign, digits; 0 when none (negative values
/// are kept as 0, which the caller rejects as Redis does for seq 0).
fn atoll(s: &[u8]) -> u64 {
    let mut i = 0;
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    if i < s.len() && s[i] == b'-' {
        return 0;
    }
    if i < s.len() && s[i] == b'+' {
        i += 1;
    }
    let mut v: u64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add((s[i] - b'0') as u64);
        i += 1;
    }
    v
}

/// Splits a line like a shell (Redis's `sdssplitargs`): double quotes with
/// escapes, single quotes, a closing quote must be followed by a space.
/// None on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    cur.push(h(line[i + 2]) * 16 + h(line[i + 3]));
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Quotes a file name as Redis does when it has spaces, quotes, backslashes
/// or unprintable bytes.
pub fn repr_name(name: &str) -> String {
    let b = name.as_bytes();
    let needs = b.iter().any(|&c| {
        matches!(c, b'\\' | b'"' | b'\n' | b'\r' | b'\t' | 7 | 8)
            || !(0x20..0x7f).contains(&c)
            || c == b' '
    });
    if !needs {
        return name.to_string();
    }
    let mut s = String::from("\"");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_redis_manifest() {
        let text = b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.1.incr.aof seq 1 type h\nfile appendonly.aof.1.base.rdb seq 1 type h\nfile appendonly.aof.2.incr.aof seq 2 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.curr_base_seq, 2);
        assert_eq!(m.curr_incr_seq, 2);
        assert_eq!(m.history.len(), 2);
        assert_eq!(m.to_bytes(), text.to_vec());
    }

    #[test]
    fn quoting() {
        let mut m = Manifest::default();
        m.incrs.push(AofInfo {
            name: "a b\"\\\x01.aof".into(),
            seq: 1,
            ty: FileType::Incr,
        });
        let b = m.to_bytes();
        assert_eq!(b, b"file \"a b\\\"\\\\\\x01.aof\" seq 1 type i\n".to_vec());
        let back = Manifest::parse(&b).unwrap();
        assert_eq!(back.incrs[0].name, "a b\"\\\x01.aof");
    }

    #[test]
    fn errors_as_redis() {
        let e = |t: &[u8]| Manifest::parse(t).unwrap_err().msg;
        assert_eq!(e(b""), "Found an empty AOF manifest");
        assert_eq!(
            e(b"file a seq 1 type b"),
            "The AOF manifest file contains too long line"
        );
        assert_eq!(e(b"\n"), "Invalid AOF manifest file format");
        assert_eq!(e(b"file a seq 1\n"), "Invalid AOF manifest file format");
        assert_eq!(
            e(b"file a/b seq 1 type b\n"),
            "File can't be a path, just a filename"
        );
        assert_eq!(
            e(b"file a seq 0 type b\n"),
            "Invalid AOF manifest file format"
        );
        assert_eq!(e(b"file a seq 1 type x\n"), "Unknown AOF file type");
        assert_eq!(
            e(b"file a seq 1 type b\nfile b seq 2 type b\n"),
            "Found duplicate base file information"
        );
        assert_eq!(
            e(b"file a seq 2 type i\nfile b seq 2 type i\n"),
            "Found a non-monotonic sequence number"
        );
        assert_eq!(
            e(b"file \"a seq 1 type i\n"),
            "Invalid AOF manifest file format"
        );
        let m = Manifest::parse(b"# c\nFILE a SEQ 3 TYPE incr extra x\n").unwrap();
        assert_eq!(m.incrs[0].seq, 3);
        let err = Manifest::parse(b"file a seq 1 type x\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "*** FATAL AOF MANIFEST FILE ERROR ***\nReading the manifest file, at line 1\n>>> 'file a seq 1 type x'\nUnknown AOF file type");
    }
}
