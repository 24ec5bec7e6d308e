//! Warming the keyspace for a pipelined batch.
//!
//! With a large keyspace nearly every lookup misses the CPU caches, and the
//! misses of one lookup depend on each other (table group, slot, entry,
//! value). When a read brings many commands, looking their keys up first in
//! a tight loop of independent lookups lets the CPU overlap those misses;
//! the commands then find their data in cache. This is only a hint: it
//! reads, never changes anything, and whatever it mis-parses merely warms
//! the wrong line. The real parser still decides what the commands are.

use redoubt_persist::{Db, Value};

/// At most this many keys are warmed per read: enough to cover a deep
/// pipeline, few enough that the warmed lines are still cached when used.
pub const MAX_KEYS: usize = 32;

/// The first key (second argument) of each complete multibulk command at
/// the start of `buf`, up to MAX_KEYS. Stops at anything unexpected.
pub fn first_keys(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (key, next) = scan_command(buf, pos)?;
        pos = next;
        Some(key)
    })
    .take(MAX_KEYS)
}

/// Scans one `*N\r\n$len\r\n...` command at `pos`: its second argument
/// (empty when it has one argument) and the position after it.
fn scan_command(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    if buf.get(pos) != Some(&b'*') {
        return None;
    }
    let (n, mut p) = scan_number(buf, pos + 1)?;
    let mut key: &[u8] = &[];
    for i in 0..n {
        if buf.get(p) != Some(&b'$') {
            return None;
        }
        let (len, start) = scan_number(buf, p + 1)?;
        let end = start.checked_add(len)?;
        if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        if i == 1 {
            key = &buf[start..end];
        }
        p = end + 2;
    }
    Some((key, p))
}

/// A small decimal number ending in `\r\n` at `pos`, and the position after.
fn scan_number(buf: &[u8], pos: usize) -> Option<(usize, usize)> {
    let mut n: usize = 0;
    let mut p = pos;
    while let Some(&c) = buf.get(p) {
        match c {
            b'0'..=b'9' if p - pos < 10 => n = n * 10 + (c - b'0') as usize,
            b'\r' if p > pos && buf.get(p + 1) == Some(&b'\n') => return Some((n, p + 2)),
            _ => return None,
        }
        p += 1;
    }
    None
}

/// Looks every key up (without side effects) so that the commands that
/// follow find the table, the entries and string values in cache. Returns
/// a checksum only so that the reads are not optimised away.
pub fn warm(db: &Db, keys: &[&[u8]]) -> usize {
    let mut sum = 0usize;
    for k in keys {
        if let Some(e) = db.peek(k) {
            sum = sum.wrapping_add(match &e.value {
                Value::Str(s) => s.first().copied().unwrap_or(0) as usize,
                _ => 1,
            });
        }
    }
    std::hint::black_box(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_key_of_each_complete_command() {
        let buf = b"*3\r\n$3\r\nSET\r\n$2\r\nk1\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$3\r\nk22\r\n*2\r\n$3\r\nGET\r\n$2\r\nk3";
        let keys: Vec<&[u8]> = first_keys(buf).collect();
        assert_eq!(keys, vec![&b"k1"[..], b"", b"k22"]);
    }

    #[test]
    fn stops_at_anything_unexpected() {
        assert_eq!(first_keys(b"PING\r\n").count(), 0);
        assert_eq!(first_keys(b"*2\r\n$99999999999\r\n").count(), 0);
        assert_eq!(first_keys(b"*2\r\n$-1\r\n").count(), 0);
        assert_eq!(first_keys(b"*x\r\n").count(), 0);
        assert_eq!(first_keys(b"*1\r\n$3\r\nGETxx").count(), 0);
        // Huge announced counts end at the buffer's end, not in a long loop.
        assert_eq!(first_keys(b"*999999999\r\n$1\r\na\r\n").count(), 0);
    }

    #[test]
    fn is_bounded() {
        let one = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
        let buf: Vec<u8> = one.iter().copied().cycle().take(one.len() * 100).collect();
        assert_eq!(first_keys(&buf).count(), MAX_KEYS);
    }

    #[test]
    fn warm_reads_without_changing() {
        let mut db = Db::new();
        db.insert(b"a", Value::str_from(b"x"), 0);
        assert_eq!(warm(&db, &[b"a", b"missing"]), b'x' as usize);
        assert_eq!(db.len(), 1);
    }
}
