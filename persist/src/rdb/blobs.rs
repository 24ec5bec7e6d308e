//! Readers for the compact blobs nested inside RDB strings: listpack,
//! ziplist, intset and zipmap. Every reader validates as it walks (header
//! sizes, entry bounds, back-lengths, counts), the way Redis's deep
//! "sanitize-dump-payload" check does, so a blob that iterates without
//! error is structurally sound. Errors are plain strings naming what was
//! expected; the caller adds offset and key.

use bytes::Bytes;

pub type BlobResult<T> = std::result::Result<T, String>;

/// One element of a listpack or ziplist: bytes or an integer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// The element as Redis returns it: integers as decimal text.
    pub fn to_bytes(self) -> Bytes {
        match self {
            Elem::Str(s) => Bytes::copy_from_slice(s),
            Elem::Int(i) => Bytes::from(i.to_string()),
        }
    }

    pub fn as_int(self) -> Option<i64> {
        match self {
            Elem::Int(i) => Some(i),
            Elem::Str(s) => parse_i64_strict(s),
        }
    }

    pub fn len(self) -> usize {
        match self {
            Elem::Str(s) => s.len(),
            Elem::Int(i) => decimal_len(i),
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// A zset score stored in a blob (integer or text double).
    pub fn as_score(self) -> BlobResult<f64> {
        let d = match self {
            Elem::Int(i) => i as f64,
            Elem::Str(s) => parse_f64(s).ok_or_else(|| "a numeric zset score".to_string())?,
        };
        if d.is_nan() {
            return Err("a score that is not NaN".into());
        }
        Ok(d)
    }
}

fn decimal_len(i: i64) -> usize {
    let mut n = if i < 0 { 2 } else { 1 };
    let mut v = i.unsigned_abs();
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// Parses a canonical integer the way Redis's `string2ll` does: optional
/// '-', no leading zeros (except "0"), no '+', no spaces, fits in i64.
pub fn parse_i64_strict(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v <= i64::MAX as u64 + 1 {
            Some((v as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(v).ok()
    }
}

/// Parses a double as `strtod` would for the forms Redis writes (decimal,
/// exponent, inf/-inf, nan). Trailing garbage is refused.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let t = std::str::from_utf8(s).ok()?;
    let t = t.trim_start();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

// ---------------------------------------------------------------- listpack

/// Size of the back-length field for an entry of `l` bytes.
pub fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2_097_151 {
        3
    } else if l < 268_435_455 {
        4
    } else {
        5
    }
}

/// Iterator over a validated listpack.
pub struct Listpack<'a> {
    data: &'a [u8],
    pos: usize,
    declared: u16,
    seen: usize,
    done: bool,
}

/// Checks a listpack header and returns an iterator over its entries.
pub fn listpack(data: &[u8]) -> BlobResult<Listpack<'_>> {
    if data.len() < 7 {
        return Err("a listpack of at least 7 bytes".into());
    }
    let total = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if total != data.len() {
        return Err(format!(
            "listpack total bytes {total} to equal its size {}",
            data.len()
        ));
    }
    if data[data.len() - 1] != 0xFF {
        return Err("listpack to end with 0xFF".into());
    }
    let declared = u16::from_le_bytes([data[4], data[5]]);
    Ok(Listpack {
        data,
        pos: 6,
        declared,
        seen: 0,
        done: false,
    })
}

impl<'a> Listpack<'a> {
    /// Declared element count (65535 = unknown).
    pub fn declared(&self) -> u16 {
        self.declared
    }

    fn entry(&mut self) -> BlobResult<Option<Elem<'a>>> {
        let d = self.data;
        let p = self.pos;
        let b = *d.get(p).ok_or("listpack entry inside the blob")?;
        if b == 0xFF {
            if p + 1 != d.len() {
                return Err("listpack terminator at the end of the blob".into());
            }
            if self.declared != u16::MAX && self.declared as usize != self.seen {
                return Err(format!(
                    "listpack element count {} to match header {}",
                    self.seen, self.declared
                ));
            }
            return Ok(None);
        }
        let need = |n: usize| -> BlobResult<&'a [u8]> {
            d.get(p..p.checked_add(n).ok_or("entry size")?)
                .ok_or_else(|| "listpack entry inside the blob".to_string())
        };
        let (elem, size) = if b & 0x80 == 0 {
            (Elem::Int(i64::from(b & 0x7f)), 1)
        } else if b & 0xC0 == 0x80 {
            let len = (b & 0x3f) as usize;
            let s = need(1 + len)?;
            (Elem::Str(&s[1..]), 1 + len)
        } else if b & 0xE0 == 0xC0 {
            let s = need(2)?;
            let u = (((b & 0x1f) as u16) << 8) | s[1] as u16;
            let v = if u >= 1 << 12 {
                i64::from(u) - (1 << 13)
            } else {
                i64::from(u)
            };
            (Elem::Int(v), 2)
        } else if b & 0xF0 == 0xE0 {
            let s = need(2)?;
            let len = (((b & 0x0f) as usize) << 8) | s[1] as usize;
            let s = need(2 + len)?;
            (Elem::Str(&s[2..]), 2 + len)
        } else {
            match b {
                0xF0 => {
                    let s = need(5)?;
                    let len = u32::from_le_bytes([s[1], s[2], s[3], s[4]]) as usize;
                    let s = need(5usize.checked_add(len).ok_or("entry size")?)?;
                    (Elem::Str(&s[5..]), 5 + len)
                }
                0xF1 => {
                    let s = need(3)?;
                    (Elem::Int(i64::from(i16::from_le_bytes([s[1], s[2]]))), 3)
                }
                0xF2 => {
                    let s = need(4)?;
                    let v = i32::from_le_bytes([0, s[1], s[2], s[3]]) >> 8;
                    (Elem::Int(i64::from(v)), 4)
                }
                0xF3 => {
                    let s = need(5)?;
                    (
                        Elem::Int(i64::from(i32::from_le_bytes([s[1], s[2], s[3], s[4]]))),
                        5,
                    )
                }
                0xF4 => {
                    let s = need(9)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(&s[1..9]);
                    (Elem::Int(i64::from_le_bytes(a)), 9)
                }
                _ => return Err(format!("a valid listpack encoding, got {b:#04x}")),
            }
        };
        let bl = backlen_size(size);
        let back = d
            .get(p + size..p + size + bl)
            .ok_or("listpack back-length inside the blob")?;
        if !backlen_matches(back, size) {
            return Err("listpack back-length to match the entry size".into());
        }
        self.pos = p + size + bl;
        self.seen += 1;
        Ok(Some(elem))
    }

    /// Next element, `Ok(None)` at the (validated) end.
    pub fn next_elem(&mut self) -> BlobResult<Option<Elem<'a>>> {
        if self.done {
            return Ok(None);
        }
        let r = self.entry();
        if !matches!(r, Ok(Some(_))) {
            self.done = true;
        }
        r
    }

    /// Next element, erroring at the end (for fixed-shape content).
    pub fn must(&mut self, what: &str) -> BlobResult<Elem<'a>> {
        self.next_elem()?
            .ok_or_else(|| format!("{what} in listpack, found its end"))
    }

    pub fn must_int(&mut self, what: &str) -> BlobResult<i64> {
        self.must(what)?
            .as_int()
            .ok_or_else(|| format!("an integer {what} in listpack"))
    }
}

fn backlen_matches(back: &[u8], l: usize) -> bool {
    let mut enc = [0u8; 5];
    let n = encode_backlen(l, &mut enc);
    back == &enc[..n]
}

/// Encodes a listpack back-length; returns the number of bytes used.
pub fn encode_backlen(l: usize, out: &mut [u8; 5]) -> usize {
    let n = backlen_size(l);
    let mut v = l;
    for i in (0..n).rev() {
        let bits = (v & 0x7f) as u8;
        out[i] = if i == 0 { bits } else { bits | 0x80 };
        v >>= 7;
    }
    n
}

/// Collects every element of a listpack (validating it).
pub fn listpack_for_each<'a>(
    data: &'a [u8],
    mut f: impl FnMut(Elem<'a>) -> BlobResult<()>,
) -> BlobResult<usize> {
    let mut lp = listpack(data)?;
    let mut n = 0;
    while let Some(e) = lp.next_elem()? {
        f(e)?;
        n += 1;
    }
    Ok(n)
}

// ---------------------------------------------------------------- ziplist

/// Walks a ziplist, validating header, prevlens, tail and count.
pub fn ziplist_for_each<'a>(
    data: &'a [u8],
    mut f: impl FnMut(Elem<'a>) -> BlobResult<()>,
) -> BlobResult<usize> {
    if data.len() < 11 {
        return Err("a ziplist of at least 11 bytes".into());
    }
    let zlbytes = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let zltail = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    let zllen = u16::from_le_bytes([data[8], data[9]]);
    if zlbytes != data.len() {
        return Err(format!(
            "ziplist zlbytes {zlbytes} to equal its size {}",
            data.len()
        ));
    }
    if data[data.len() - 1] != 0xFF {
        return Err("ziplist to end with 0xFF".into());
    }
    if zltail > data.len() - 1 {
        return Err("ziplist tail offset inside the blob".into());
    }
    let mut p = 10usize;
    let mut prev_size = 0usize;
    let mut last_start = 10usize;
    let mut count = 0usize;
    loop {
        let b = *data.get(p).ok_or("ziplist entry inside the blob")?;
        if b == 0xFF {
            if p + 1 != data.len() {
                return Err("ziplist end marker at the end of the blob".into());
            }
            break;
        }
        let start = p;
        // prevlen
        let prevlen = if b < 254 {
            p += 1;
            b as usize
        } else if b == 254 {
            let s = data
                .get(p + 1..p + 5)
                .ok_or("ziplist prevlen inside the blob")?;
            p += 5;
            u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize
        } else {
            return Err("a ziplist prevlen".into());
        };
        if prevlen != prev_size {
            return Err(format!(
                "ziplist prevlen {prevlen} to equal the previous entry size {prev_size}"
            ));
        }
        let e = *data.get(p).ok_or("ziplist encoding inside the blob")?;
        let get = |a: usize, n: usize| -> BlobResult<&'a [u8]> {
            data.get(a..a.checked_add(n).ok_or("entry size")?)
                .ok_or_else(|| "ziplist entry inside the blob".to_string())
        };
        let elem = match e >> 6 {
            0 => {
                let len = (e & 0x3f) as usize;
                let s = get(p + 1, len)?;
                p += 1 + len;
                Elem::Str(s)
            }
            1 => {
                let h = get(p, 2)?;
                let len = (((h[0] & 0x3f) as usize) << 8) | h[1] as usize;
                let s = get(p + 2, len)?;
                p += 2 + len;
                Elem::Str(s)
            }
            2 => {
                let h = get(p + 1, 4)?;
                let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let s = get(p + 5, len)?;
                p += 5usize.checked_add(len).ok_or("entry size")?;
                Elem::Str(s)
            }
            _ => {
                let (v, n) = match e {
                    0xC0 => {
                        let s = get(p + 1, 2)?;
                        (i64::from(i16::from_le_bytes([s[0], s[1]])), 2)
                    }
                    0xD0 => {
                        let s = get(p + 1, 4)?;
                        (i64::from(i32::from_le_bytes([s[0], s[1], s[2], s[3]])), 4)
                    }
                    0xE0 => {
                        let s = get(p + 1, 8)?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(s);
                        (i64::from_le_bytes(a), 8)
                    }
                    0xF0 => {
                        let s = get(p + 1, 3)?;
                        (i64::from(i32::from_le_bytes([0, s[0], s[1], s[2]]) >> 8), 3)
                    }
                    0xFE => {
                        let s = get(p + 1, 1)?;
                        (i64::from(s[0] as i8), 1)
                    }
                    0xF1..=0xFD => (i64::from(e & 0x0f) - 1, 0),
                    _ => return Err(format!("a valid ziplist encoding, got {e:#04x}")),
                };
                p += 1 + n;
                Elem::Int(v)
            }
        };
        if p >= data.len() {
            return Err("ziplist entry to end before the end marker".into());
        }
        prev_size = p - start;
        last_start = start;
        count += 1;
        f(elem)?;
    }
    if zltail != last_start {
        return Err(format!(
            "ziplist tail offset {zltail} to point at the last entry {last_start}"
        ));
    }
    if zllen != u16::MAX && zllen as usize != count {
        return Err(format!("ziplist count {count} to match header {zllen}"));
    }
    Ok(count)
}

// ---------------------------------------------------------------- intset

/// Walks an intset: width 2/4/8, non-empty, exact size, strictly ascending.
pub fn intset_for_each(data: &[u8], mut f: impl FnMut(i64) -> BlobResult<()>) -> BlobResult<usize> {
    if data.len() < 8 {
        return Err("an intset header of 8 bytes".into());
    }
    let width = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let len = u32::from_le_bytes([data[4], data[5], data[6], data[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(format!("intset encoding 2, 4 or 8, got {width}"));
    }
    if len == 0 {
        return Err("a non-empty intset".into());
    }
    if (data.len() - 8) as u64 != (len as u64) * (width as u64) {
        return Err("intset size to match its header".into());
    }
    let mut prev: Option<i64> = None;
    for c in data[8..].chunks_exact(width) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        };
        if prev.is_some_and(|p| p >= v) {
            return Err("intset members in strictly ascending order".into());
        }
        prev = Some(v);
        f(v)?;
    }
    Ok(len)
}

// ---------------------------------------------------------------- zipmap

/// Walks a zipmap (Redis 2.4 small hash), calling `f(field, value)`.
pub fn zipmap_for_each<'a>(
    data: &'a [u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]) -> BlobResult<()>,
) -> BlobResult<usize> {
    let zmlen = *data.first().ok_or("a zipmap header")?;
    let mut p = 1usize;
    let mut pairs = 0usize;
    let read_len = |p: &mut usize| -> BlobResult<Option<usize>> {
        let b = *data.get(*p).ok_or("zipmap length inside the blob")?;
        match b {
            255 => Ok(None),
            254 => {
                let s = data
                    .get(*p + 1..*p + 5)
                    .ok_or("zipmap length inside the blob")?;
                *p += 5;
                Ok(Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize))
            }
            n => {
                *p += 1;
                Ok(Some(n as usize))
            }
        }
    };
    loop {
        let Some(klen) = read_len(&mut p)? else {
            if p + 1 != data.len() {
                return Err("zipmap end marker at the end of the blob".into());
            }
            break;
        };
        let key = data
            .get(p..p.checked_add(klen).ok_or("size")?)
            .ok_or("zipmap field inside the blob")?;
        p += klen;
        let vlen = read_len(&mut p)?.ok_or("a zipmap value length")?;
        let free = *data.get(p).ok_or("zipmap free byte")? as usize;
        p += 1;
        let val = data
            .get(p..p.checked_add(vlen).ok_or("size")?)
            .ok_or("zipmap value inside the blob")?;
        p += vlen + free;
        if p > data.len() {
            return Err("zipmap free space inside the blob".into());
        }
        pairs += 1;
        f(key, val)?;
    }
    if pairs == 0 {
        return Err("a non-empty zipmap".into());
    }
    if zmlen < 254 && zmlen as usize != pairs {
        return Err(format!("zipmap count {pairs} to match header {zmlen}"));
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_ints() {
        assert_eq!(parse_i64_strict(b"0"), Some(0));
        assert_eq!(parse_i64_strict(b"-12"), Some(-12));
        assert_eq!(parse_i64_strict(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64_strict(b"9223372036854775808"), None);
        for bad in [&b"007"[..], b"-0", b"+1", b" 1", b"", b"-", b"1a"] {
            assert_eq!(parse_i64_strict(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn backlen_roundtrip() {
        for l in [
            1usize,
            127,
            128,
            16382,
            16383,
            2_097_150,
            2_097_151,
            268_435_455,
        ] {
            let mut b = [0u8; 5];
            let n = encode_backlen(l, &mut b);
            assert_eq!(n, backlen_size(l));
            assert!(backlen_matches(&b[..n], l));
        }
    }

    #[test]
    fn spec_listpack_hash() {
        // f1=v1, f2=12 from the spec's worked example.
        let lp = [
            0x15, 0, 0, 0, 4, 0, 0x82, b'f', b'1', 3, 0x82, b'v', b'1', 3, 0x82, b'f', b'2', 3,
            0x0C, 1, 0xFF,
        ];
        let mut out = Vec::new();
        listpack_for_each(&lp, |e| {
            out.push(e.to_bytes());
            Ok(())
        })
        .unwrap();
        assert_eq!(out, vec!["f1", "v1", "f2", "12"]);
    }
}
