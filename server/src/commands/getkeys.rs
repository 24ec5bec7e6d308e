//! COMMAND GETKEYS: the key arguments of a command line, found as Redis 7.0
//! finds them. Fixed positions come from the command table; commands whose
//! keys move (a numkeys argument, a STREAMS keyword) and the keyed
//! subcommands of container commands get their own rules here.

use super::CommandSpec;
use bytes::Bytes;

/// Why no keys could be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GetKeysError {
    #[error("ERR Invalid command specified")]
    InvalidCommand,
    #[error("ERR The command has no key arguments")]
    NoKeys,
    #[error("ERR Invalid number of arguments specified for command")]
    Arity,
    #[error("ERR Invalid arguments specified for command")]
    InvalidArguments,
}

/// Where a command with moving keys keeps them.
enum Movable {
    /// `numkeys` at `at`, the keys right after it; `dest` is a key before
    /// it (the STORE commands).
    NumKeys { at: usize, dest: bool },
    /// The keys follow the first `STREAMS` searched from `from`, then as
    /// many ids.
    Streams { from: usize },
}

fn movable(name: &str) -> Option<Movable> {
    let m = match name {
        "zunionstore" | "zinterstore" | "zdiffstore" => Movable::NumKeys { at: 2, dest: true },
        "zunion" | "zinter" | "zdiff" | "zintercard" | "sintercard" | "lmpop" | "zmpop" => {
            Movable::NumKeys { at: 1, dest: false }
        }
        "blmpop" | "bzmpop" => Movable::NumKeys { at: 2, dest: false },
        "xread" => Movable::Streams { from: 1 },
        "xreadgroup" => Movable::Streams { from: 4 },
        _ => return None,
    };
    Some(m)
}

/// The container subcommands that name a key (always their third argument).
const KEYED_SUBCOMMANDS: &[(&str, &[&str])] = &[
    ("object", &["encoding", "freq", "idletime", "refcount"]),
    ("xinfo", &["stream", "groups", "consumers"]),
    (
        "xgroup",
        &[
            "create",
            "createconsumer",
            "delconsumer",
            "destroy",
            "setid",
        ],
    ),
    ("memory", &["usage"]),
];

/// The keys of `args` (a whole command line) for `spec`, the command it
/// names. `sub_arity` gives a container command's subcommand arity: None
/// for a command without subcommands, Some(None) for an unknown one.
pub fn command_keys<'a>(
    spec: &CommandSpec,
    args: &'a [Bytes],
    sub_arity: Option<Option<i32>>,
) -> Result<Vec<&'a Bytes>, GetKeysError> {
    let arity_ok = |arity: i32| {
        (arity >= 0 && args.len() == arity as usize)
            || (arity < 0 && args.len() >= arity.unsigned_abs() as usize)
    };
    if let Some(sub_arity) = sub_arity {
        // Redis looks a container's subcommand up as a command of its own.
        let (Some(arity), Some(sub)) = (sub_arity, args.get(1)) else {
            return Err(GetKeysError::InvalidCommand);
        };
        let keyed = KEYED_SUBCOMMANDS
            .iter()
            .find(|(n, _)| *n == spec.name)
            .is_some_and(|(_, subs)| subs.iter().any(|s| s.as_bytes().eq_ignore_ascii_case(sub)));
        if !keyed {
            return Err(GetKeysError::NoKeys);
        }
        if !arity_ok(arity) {
            return Err(GetKeysError::Arity);
        }
        return Ok(vec![&args[2]]);
    }
    let moving = movable(spec.name);
    if moving.is_none() && spec.first_key <= 0 {
        return Err(GetKeysError::NoKeys);
    }
    if !spec.arity_ok(args.len()) {
        return Err(GetKeysError::Arity);
    }
    let keys = match moving {
        None => spec.keys(args),
        Some(Movable::NumKeys { at, dest }) => numkeys(args, at, dest),
        Some(Movable::Streams { from }) => streams(args, from),
    };
    if keys.is_empty() {
        return Err(GetKeysError::InvalidArguments);
    }
    Ok(keys)
}

/// Keys counted by a numkeys argument. A well-formed count that the line
/// holds gives the destination (if any) then the sources; anything else
/// is read as C's atoi reads it and, if the line holds that many, gives
/// the sources then the destination (Redis's fallback key finder).
fn numkeys(args: &[Bytes], at: usize, dest: bool) -> Vec<&Bytes> {
    let first = at + 1;
    let Some(arg) = args.get(at) else {
        return Vec::new();
    };
    let avail = args.len().saturating_sub(first);
    if let Some(n) = crate::util::parse_i64(arg) {
        if n >= 1 && n as u64 <= avail as u64 {
            let mut keys: Vec<&Bytes> = Vec::new();
            if dest {
                keys.push(&args[1]);
            }
            keys.extend(&args[first..first + n as usize]);
            return keys;
        }
    }
    let n = atoi(arg);
    if n < 1 || n as usize > avail {
        return Vec::new();
    }
    let mut keys: Vec<&Bytes> = args[first..first + n as usize].iter().collect();
    if dest {
        keys.push(&args[1]);
    }
    keys
}

/// C's `atoi` as glibc has it: `(int) strtol(s, NULL, 10)`: leading white
/// space, an optional sign, digits up to the first other byte; a long out
/// of range saturates before the cast to int.
fn atoi(s: &[u8]) -> i32 {
    let mut i = 0;
    while i < s.len() && matches!(s[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let neg = s.get(i) == Some(&b'-');
    if matches!(s.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut v: i64 = 0;
    while let Some(d) = s.get(i).filter(|c| c.is_ascii_digit()) {
        let d = i64::from(d - b'0');
        v = if neg {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
        i += 1;
    }
    v as i32
}

/// XREAD / XREADGROUP: the first `STREAMS` from `from` (not the last
/// argument), then half of what follows it.
fn streams(args: &[Bytes], from: usize) -> Vec<&Bytes> {
    let end = args.len().saturating_sub(1);
    let Some(pos) = (from..end).find(|&i| args[i].eq_ignore_ascii_case(b"streams")) else {
        return Vec::new();
    };
    let first = pos + 1;
    let n = (args.len() - first) / 2;
    args[first..first + n].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_reads_as_c_does() {
        assert_eq!(atoi(b"12"), 12);
        assert_eq!(atoi(b" 1x"), 1);
        assert_eq!(atoi(b"x"), 0);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"+4"), 4);
        // strtol saturates to LONG_MAX, which is -1 as an int.
        assert_eq!(atoi(b"99999999999999999999"), -1);
        assert_eq!(atoi(b"4294967297"), 1);
    }

    fn line(s: &str) -> Vec<Bytes> {
        s.split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    fn strs(v: Vec<&Bytes>) -> Vec<&str> {
        v.into_iter()
            .map(|b| std::str::from_utf8(b).unwrap_or("?"))
            .collect()
    }

    #[test]
    fn numkeys_orders_as_redis() {
        let a = line("zunionstore dst 2 a b weights 1 2");
        assert_eq!(strs(numkeys(&a, 2, true)), ["dst", "a", "b"]);
        let a = line("zunionstore dst 1x a");
        assert_eq!(strs(numkeys(&a, 2, true)), ["a", "dst"]);
        for bad in [
            "zunionstore dst 5 a b",
            "zunionstore dst 0 a",
            "zunionstore dst -1 a",
        ] {
            assert!(numkeys(&line(bad), 2, true).is_empty(), "{bad}");
        }
        let a = line("lmpop 3 a b left");
        assert_eq!(strs(numkeys(&a, 1, false)), ["a", "b", "left"]);
    }

    #[test]
    fn streams_keyword() {
        let a = line("xread count 2 streams a b 0 0");
        assert_eq!(strs(streams(&a, 1)), ["a", "b"]);
        let a = line("xread streams a b 0");
        assert_eq!(strs(streams(&a, 1)), ["a"]);
        assert!(streams(&line("xread count 2 streams"), 1).is_empty());
        assert!(streams(&line("xreadgroup streams a b c d e f"), 4).is_empty());
    }
}
