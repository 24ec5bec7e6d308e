//! Warming the keyspace for a pipelined batch.
//!
//! With a large keyspace nearly every lookup misses the CPU caches, and the
//! misses of one lookup depend on each other (table group, slot, entry,
//! value). When a read brings many commands, looking their keys up first in
//! a tight loop of independent lookups lets the CPU overlap those misses;
//! the commands then find their data in cache. This is only a hint: it
//! reads, never changes anything, and whatever it mis-parses merely warms
//! the wrong line. The real parser still decides what the commands are.
//!
//! A big set, hash or sorted set is a second hash table inside the key:
//! looking a member up misses again (its control bytes, its slot, the
//! member's bytes), one miss after the other. For the commands that name a
//! member right after the key (SADD, HSET, SISMEMBER, ZSCORE, ...) those
//! members are looked up the same way, in a second loop once the keys are
//! warm.

use redoubt_persist::hashfields::HashFields;
use redoubt_persist::{Db, Value};

/// At most this many keys are warmed per read: enough to cover a deep
/// pipeline, few enough that the warmed lines are still cached when used.
pub const MAX_KEYS: usize = 32;

/// What one command of the batch will look up: its first key and, for a
/// command that names a member of a set, hash or sorted set right after
/// the key, that member.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Target<'a> {
    pub key: &'a [u8],
    pub member: Option<&'a [u8]>,
}

/// The first key (second argument) of each complete multibulk command at
/// the start of `buf`, up to MAX_KEYS. Stops at anything unexpected.
pub fn first_keys(buf: &[u8]) -> impl Iterator<Item = &[u8]> {
    targets(buf).map(|t| t.key)
}

/// [`first_keys`] with the member of each member command.
pub fn targets(buf: &[u8]) -> impl Iterator<Item = Target<'_>> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let (t, next) = scan_command(buf, pos)?;
        pos = next;
        Some(t)
    })
    .take(MAX_KEYS)
}

/// Commands whose third argument is a member (set), a field (hash) or a
/// member (sorted set) of the key.
const MEMBER_COMMANDS: &[&[u8]] = &[
    b"sadd",
    b"srem",
    b"sismember",
    b"smismember",
    b"hset",
    b"hsetnx",
    b"hmset",
    b"hget",
    b"hmget",
    b"hdel",
    b"hexists",
    b"hincrby",
    b"hincrbyfloat",
    b"hstrlen",
    b"zscore",
    b"zmscore",
    b"zrem",
    b"zrank",
    b"zrevrank",
    b"zincrby",
];

/// Where the member is in a command named `name` (0: not a member
/// command). Runs once per command of every batch, so most names leave at
/// the first byte.
fn member_index(name: &[u8]) -> usize {
    if !matches!(name.first(), Some(b's' | b'S' | b'h' | b'H' | b'z' | b'Z')) {
        return 0;
    }
    if !MEMBER_COMMANDS
        .iter()
        .any(|c| c.len() == name.len() && c.eq_ignore_ascii_case(name))
    {
        return 0;
    }
    // ZINCRBY's member follows its increment.
    if name.eq_ignore_ascii_case(b"zincrby") {
        3
    } else {
        2
    }
}

/// Scans one `*N\r\n$len\r\n...` command at `pos`: its target (an empty
/// key when it has one argument) and the position after it.
fn scan_command(buf: &[u8], pos: usize) -> Option<(Target<'_>, usize)> {
    if buf.get(pos) != Some(&b'*') {
        return None;
    }
    let (n, mut p) = scan_number(buf, pos + 1)?;
    let mut member_at = 0;
    let mut t = Target::default();
    for i in 0..n {
        if buf.get(p) != Some(&b'$') {
            return None;
        }
        let (len, start) = scan_number(buf, p + 1)?;
        let end = start.checked_add(len)?;
        if buf.get(end..end.checked_add(2)?)? != b"\r\n" {
            return None;
        }
        match i {
            0 => member_at = member_index(&buf[start..end]),
            1 => t.key = &buf[start..end],
            _ if i == member_at => t.member = Some(&buf[start..end]),
            _ => {}
        }
        p = end + 2;
    }
    Some((t, p))
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
        if let Some(e) = db.peek_warm(k) {
            sum = sum.wrapping_add(match &e.value {
                Value::Str(s) => s.first().copied().unwrap_or(0) as usize,
                _ => 1,
            });
        }
    }
    std::hint::black_box(sum)
}

/// Warms the lookups of the batch's members in their key's table (see
/// `ShardedMap::warm_batch`): the members of the commands on the first key
/// that has any, which in a pipeline of SADDs or HSETs is every command's.
/// Only hash-table encodings: a small listpack-like value is a few lines
/// that the key's lookup already brought in.
pub fn warm_members(db: &Db, targets: &[Target<'_>]) -> usize {
    let Some(key) = targets.iter().find(|t| t.member.is_some()).map(|t| t.key) else {
        return 0;
    };
    let mut members: [&[u8]; MAX_KEYS] = [&[]; MAX_KEYS];
    let mut n = 0;
    for t in targets.iter().take(MAX_KEYS) {
        if let (Some(m), true) = (t.member, t.key == key) {
            members[n] = m;
            n += 1;
        }
    }
    let members = &members[..n];
    let Some(e) = db.peek(key) else { return 0 };
    match &e.value {
        Value::Set(s) if s.hashtable => s.members.as_map().warm_batch(members),
        Value::Hash(h) => match &h.map {
            HashFields::Table(t) => t.warm_batch(members),
            HashFields::Listpack(_) => 0,
        },
        Value::ZSet(z) if z.skiplist => z.warm_members(members),
        _ => 0,
    }
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
    fn finds_the_member_of_member_commands() {
        let buf = b"*3\r\n$4\r\nSADD\r\n$1\r\ns\r\n$2\r\nm1\r\n\
*4\r\n$4\r\nhset\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n\
*4\r\n$7\r\nZINCRBY\r\n$1\r\nz\r\n$1\r\n2\r\n$1\r\nm\r\n\
*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n\
*2\r\n$4\r\nSADD\r\n$1\r\ns\r\n";
        let got: Vec<Target> = targets(buf).collect();
        let t = |key: &'static [u8], member: Option<&'static [u8]>| Target { key, member };
        assert_eq!(
            got,
            vec![
                t(b"s", Some(b"m1")),
                t(b"h", Some(b"f")),
                t(b"z", Some(b"m")),
                t(b"k", None),
                t(b"s", None),
            ]
        );
    }

    #[test]
    fn warm_members_reads_big_tables_only() {
        use redoubt_persist::value::SetValue;
        let mut db = Db::new();
        let mut big = SetValue {
            hashtable: true,
            ..Default::default()
        };
        big.members.insert(bytes::Bytes::from_static(b"m"));
        db.insert(b"big", Value::Set(Box::new(big)), 0);
        let mut small = SetValue::default();
        small.members.insert(bytes::Bytes::from_static(b"m"));
        db.insert(b"small", Value::Set(Box::new(small)), 0);
        let t = |key: &'static [u8], member: &'static [u8]| Target {
            key,
            member: Some(member),
        };
        // The big set's table is read (its checksum is not 0); the small
        // one and a missing key are left alone.
        assert_ne!(warm_members(&db, &[t(b"big", b"m"), t(b"big", b"x")]), 0);
        assert_eq!(warm_members(&db, &[t(b"small", b"m"), t(b"big", b"m")]), 0);
        assert_eq!(warm_members(&db, &[t(b"none", b"m")]), 0);
        assert_eq!(db.len(), 2);
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
