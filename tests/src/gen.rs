//! Seeded random command sequences for the differential test, one generator
//! per command family, and the per-command rules that say how two replies
//! are compared where Redis leaves the order unspecified or the value
//! depends on the clock.
//!
//! Adding a family: a variant in [`Family`], a generator function in
//! [`Generator::family_command`], rules for its commands in [`rule_for`],
//! and (once the server implements it) an entry in [`ENABLED_BY_DEFAULT`].

use crate::resp::Resp;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Strings,
    Keys,
    Server,
    Transactions,
    Resp3,
    Lists,
    Hashes,
    Sets,
    Zsets,
    Streams,
}

impl Family {
    pub const ALL: &'static [Family] = &[
        Family::Strings,
        Family::Keys,
        Family::Server,
        Family::Transactions,
        Family::Resp3,
        Family::Lists,
        Family::Hashes,
        Family::Sets,
        Family::Zsets,
        Family::Streams,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Strings => "strings",
            Family::Keys => "keys",
            Family::Server => "server",
            Family::Transactions => "transactions",
            Family::Resp3 => "resp3",
            Family::Lists => "lists",
            Family::Hashes => "hashes",
            Family::Sets => "sets",
            Family::Zsets => "zsets",
            Family::Streams => "streams",
        }
    }

    pub fn from_name(s: &str) -> Option<Family> {
        Family::ALL.iter().copied().find(|f| f.name() == s)
    }

    /// How often the family's commands are drawn, relative to the others.
    fn weight(self) -> u32 {
        match self {
            Family::Strings | Family::Keys => 10,
            Family::Server => 4,
            Family::Transactions => 3,
            Family::Resp3 => 1,
            _ => 10,
        }
    }
}

/// Families compared by default: all of them.
pub const ENABLED_BY_DEFAULT: &[Family] = &[
    Family::Strings,
    Family::Keys,
    Family::Server,
    Family::Transactions,
    Family::Resp3,
    Family::Lists,
    Family::Hashes,
    Family::Sets,
    Family::Zsets,
    Family::Streams,
];

/// The families to run: `REDOUBT_DIFF_FAMILIES` (comma-separated names, or
/// `all`) when set, else [`ENABLED_BY_DEFAULT`].
pub fn enabled_families() -> Result<Vec<Family>, String> {
    match std::env::var("REDOUBT_DIFF_FAMILIES") {
        Ok(v) if v.trim() == "all" => Ok(Family::ALL.to_vec()),
        Ok(v) => v
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                Family::from_name(s).ok_or_else(|| {
                    let names: Vec<_> = Family::ALL.iter().map(|f| f.name()).collect();
                    format!("unknown family {s:?}; known: {}", names.join(", "))
                })
            })
            .collect(),
        Err(_) => Ok(ENABLED_BY_DEFAULT.to_vec()),
    }
}

/// One generated command and the connection that sends it.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub conn: usize,
    pub args: Vec<Vec<u8>>,
}

/// The small key space: few names, so commands collide on the same keys
/// and types (WRONGTYPE paths, RENAME onto existing keys, ...).
const KEYS: &[&str] = &["a", "b", "c", "d", "k:1", "k:2", "{t}x", "\u{e9}"];
const VALUES: &[&str] = &[
    "",
    "v",
    "hello",
    "0",
    "1",
    "-1",
    "42",
    "007",
    "3.14",
    "-2.5e3",
    "1e400",
    "inf",
    " 1",
    "9223372036854775807",
    "-9223372036854775808",
    "nan",
    "x y",
    "\u{0}bin\u{7f}",
];
const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "10",
    "-7",
    "100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "1.5",
    "abc",
    "",
    "+1",
    "01",
    " 2",
];
const FLOATS: &[&str] = &[
    "0", "1", "-1", "0.1", "1.5", "-3.25", "1e3", "5.0e-3", "inf", "-inf", "+inf", "nan", "abc",
    "", "1e400", "3", "0x10",
];
const PATTERNS: &[&str] = &[
    "*", "k*", "?", "[ab]", "[^a]*", "k:?", "\\{t\\}*", "nomatch", "*:*",
];
const DBS: &[&str] = &["0", "1", "2", "0", "1", "15", "16", "-1", "x"];

/// Differences from Redis that are known and not fixed yet. The generator
/// leaves these commands out unless `REDOUBT_DIFF_STRICT=1` is set (then the
/// differential test shows them).
pub const KNOWN_DIFFERENCES: &[(&str, &str)] = &[];

/// Whether to generate the commands listed in [`KNOWN_DIFFERENCES`].
pub fn strict() -> bool {
    std::env::var_os("REDOUBT_DIFF_STRICT").is_some_and(|v| v != "0")
}

/// Restores every parameter the generators change (run before each seed).
pub const CONFIG_DEFAULTS: [&str; 10] = [
    "CONFIG",
    "SET",
    "maxmemory-policy",
    "noeviction",
    "hz",
    "10",
    "maxmemory",
    "0",
    "set-max-intset-entries",
    "512",
];

pub struct Generator {
    rng: SmallRng,
    families: Vec<Family>,
    conns: usize,
    in_multi: Vec<bool>,
    /// Next explicit stream id per key index, so XADD ids mostly grow.
    stream_ms: u64,
}

impl Generator {
    pub fn new(seed: u64, families: Vec<Family>, conns: usize) -> Generator {
        assert!(!families.is_empty(), "no family enabled");
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            families,
            conns: conns.max(1),
            in_multi: vec![false; conns.max(1)],
            stream_ms: 1,
        }
    }

    pub fn next_cmd(&mut self) -> Cmd {
        let conn = if self.rng.gen_ratio(1, 6) {
            self.rng.gen_range(0..self.conns)
        } else {
            0
        };
        let total: u32 = self.families.iter().map(|f| f.weight()).sum();
        let mut pick = self.rng.gen_range(0..total);
        let mut family = self.families[0];
        for f in &self.families {
            if pick < f.weight() {
                family = *f;
                break;
            }
            pick -= f.weight();
        }
        let mut args = self.family_command(family, conn);
        // Now and then break the command: a missing or an extra argument
        // compares arity checks and argument-parsing errors. (Not SPOP:
        // without its count it pops a random member.)
        if self.rng.gen_ratio(1, 25) && args[0] != "SPOP" {
            if args.len() > 1 && self.rng.gen_bool(0.5) {
                args.pop();
            } else {
                let junk = self.pick(&["x", "1", "EX", "NX", ""]).to_string();
                args.push(junk);
            }
        }
        let args: Vec<Vec<u8>> = args.into_iter().map(String::into_bytes).collect();
        match args[0].to_ascii_uppercase().as_slice() {
            b"MULTI" => self.in_multi[conn] = true,
            b"EXEC" | b"DISCARD" | b"RESET" => self.in_multi[conn] = false,
            _ => {}
        }
        Cmd { conn, args }
    }

    fn family_command(&mut self, f: Family, conn: usize) -> Vec<String> {
        match f {
            Family::Strings => self.strings(),
            Family::Keys => self.keys(),
            Family::Server => self.server(),
            Family::Transactions => self.transactions(conn),
            Family::Resp3 => self.resp3(),
            Family::Lists => self.lists(),
            Family::Hashes => self.hashes(),
            Family::Sets => self.sets(),
            Family::Zsets => self.zsets(),
            Family::Streams => self.streams(),
        }
    }

    // ---- helpers -----------------------------------------------------------

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.gen_range(0..xs.len())]
    }

    /// [`Generator::pick`] for any copyable choice.
    fn pick2<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.rng.gen_range(0..xs.len())]
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    fn key(&mut self) -> String {
        self.pick(KEYS).to_string()
    }

    fn keys_n(&mut self, min: usize, max: usize) -> Vec<String> {
        let n = self.rng.gen_range(min..=max);
        (0..n).map(|_| self.key()).collect()
    }

    fn val(&mut self) -> String {
        self.pick(VALUES).to_string()
    }

    fn int(&mut self) -> String {
        if self.chance(0.7) {
            self.rng.gen_range(-5..=20).to_string()
        } else {
            self.pick(INTS).to_string()
        }
    }

    fn small_index(&mut self) -> String {
        if self.chance(0.9) {
            self.rng.gen_range(-6..=8).to_string()
        } else {
            self.pick(&["abc", "9223372036854775807", "-9223372036854775808", ""])
                .to_string()
        }
    }

    /// A blocking command's timeout: short (an empty key answers null
    /// after 10 ms on both servers) or invalid, never 0 (forever).
    fn timeout(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self.pick(&["-1", "abc", "", "inf", "1e400"]).to_string(),
            _ => self.pick(&["0.01", "0.01", "0.02", "0.005"]).to_string(),
        }
    }

    fn lex_bound(&mut self) -> String {
        self.pick(&[
            "-", "+", "[m1", "(m2", "[m4", "(x", "[", "(", "m", "[1", "[-3",
        ])
        .to_string()
    }

    fn float(&mut self) -> String {
        self.pick(FLOATS).to_string()
    }

    fn member(&mut self) -> String {
        self.pick(&["m1", "m2", "m3", "m4", "1", "2", "-3", "x", ""])
            .to_string()
    }

    fn now_s() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Seconds for EX-style options: far enough that nothing expires while
    /// the sequence runs, or invalid, or zero/negative (immediate delete
    /// for EXPIRE, an error for SET EX).
    fn secs(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self
                .pick(&["0", "-1", "abc", "9223372036854775807", "1.5", ""])
                .to_string(),
            _ => self.rng.gen_range(1000..100_000u64).to_string(),
        }
    }

    fn millis(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self
                .pick(&["0", "-1", "abc", "9223372036854775807", "1.5"])
                .to_string(),
            _ => self.rng.gen_range(1_000_000..100_000_000u64).to_string(),
        }
    }

    /// Absolute unix seconds: the future, the past, or bad. Past times are
    /// only used where Redis deletes the key at once (EXPIREAT, GETEX): a SET
    /// with a past EXAT leaves an expired key that DBSIZE counts until the
    /// server's active expiry, whose timing is not deterministic.
    fn unix_s_or_past(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self.pick(&["1", "0", "-5", "abc"]).to_string(),
            1 => (Self::now_s() - 100).to_string(),
            _ => (Self::now_s() + self.rng.gen_range(1000..100_000u64)).to_string(),
        }
    }

    fn unix_ms_or_past(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self.pick(&["1", "0", "-5", "abc"]).to_string(),
            1 => ((Self::now_s() - 100) * 1000).to_string(),
            _ => ((Self::now_s() + self.rng.gen_range(1000..100_000u64)) * 1000).to_string(),
        }
    }

    /// Absolute unix seconds in the future, or invalid.
    fn unix_s(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self.pick(&["0", "-5", "abc"]).to_string(),
            _ => (Self::now_s() + self.rng.gen_range(1000..100_000u64)).to_string(),
        }
    }

    fn unix_ms(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self.pick(&["0", "-5", "abc"]).to_string(),
            _ => ((Self::now_s() + self.rng.gen_range(1000..100_000u64)) * 1000).to_string(),
        }
    }

    fn cmd(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    // ---- families ----------------------------------------------------------

    fn strings(&mut self) -> Vec<String> {
        let k = self.key();
        match self.rng.gen_range(0..26) {
            0 | 1 => vec!["GET".into(), k],
            2..=4 => {
                let mut c = vec!["SET".into(), k, self.val()];
                for _ in 0..self.rng.gen_range(0..3) {
                    match self.rng.gen_range(0..9) {
                        0 => c.push("NX".into()),
                        1 => c.push("XX".into()),
                        2 => c.push("GET".into()),
                        3 => c.extend(["EX".into(), self.secs()]),
                        4 => c.extend(["PX".into(), self.millis()]),
                        5 => c.extend(["EXAT".into(), self.unix_s()]),
                        6 => c.extend(["PXAT".into(), self.unix_ms()]),
                        7 => c.push("KEEPTTL".into()),
                        _ => c.push(self.pick(&["ex", "nx", "get", "BOGUS"]).into()),
                    }
                }
                c
            }
            5 => vec!["SETNX".into(), k, self.val()],
            6 => vec!["SETEX".into(), k, self.secs(), self.val()],
            7 => vec!["PSETEX".into(), k, self.millis(), self.val()],
            8 => vec!["GETSET".into(), k, self.val()],
            9 => vec!["GETDEL".into(), k],
            10 => {
                let mut c = vec!["GETEX".into(), k];
                match self.rng.gen_range(0..7) {
                    0 => c.extend(["EX".into(), self.secs()]),
                    1 => c.extend(["PX".into(), self.millis()]),
                    2 => c.extend(["EXAT".into(), self.unix_s_or_past()]),
                    3 => c.extend(["PXAT".into(), self.unix_ms_or_past()]),
                    4 => c.push("PERSIST".into()),
                    5 => c.extend(["EX".into(), "100".into(), "PERSIST".into()]),
                    _ => {}
                }
                c
            }
            11 => {
                let mut c = vec!["MGET".to_string()];
                c.extend(self.keys_n(1, 4));
                c
            }
            12 | 13 => {
                let mut c = vec![self.pick(&["MSET", "MSETNX"]).to_string()];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.key());
                    c.push(self.val());
                }
                c
            }
            14 => vec!["APPEND".into(), k, self.val()],
            15 => vec!["STRLEN".into(), k],
            16 => vec![
                self.pick(&["GETRANGE", "SUBSTR"]).into(),
                k,
                self.small_index(),
                self.small_index(),
            ],
            17 => {
                let off = match self.rng.gen_range(0..8) {
                    0 => self
                        .pick(&["-1", "abc", "536870912", "536870911"])
                        .to_string(),
                    _ => self.rng.gen_range(0..30).to_string(),
                };
                let v = if off == "536870911" {
                    String::new()
                } else {
                    self.val()
                };
                vec!["SETRANGE".into(), k, off, v]
            }
            18 | 19 => vec![self.pick(&["INCR", "DECR"]).into(), k],
            20 | 21 => vec![self.pick(&["INCRBY", "DECRBY"]).into(), k, self.int()],
            22 | 23 => vec!["INCRBYFLOAT".into(), k, self.float()],
            24 => vec![
                "SET".into(),
                k,
                self.pick(&["1", "10", "-3", "2.5", "1e2"]).into(),
            ],
            _ => vec!["OBJECT".into(), "ENCODING".into(), k],
        }
    }

    fn keys(&mut self) -> Vec<String> {
        let k = self.key();
        match self.rng.gen_range(0..24) {
            0 | 1 => {
                let mut c = vec![self.pick(&["DEL", "UNLINK"]).to_string()];
                c.extend(self.keys_n(1, 3));
                c
            }
            2 | 3 => {
                let mut c = vec!["EXISTS".to_string()];
                c.extend(self.keys_n(1, 4));
                c
            }
            4 => vec!["TYPE".into(), k],
            5 | 6 => vec![self.pick(&["RENAME", "RENAMENX"]).into(), k, self.key()],
            7 => {
                let mut c = vec!["COPY".into(), k, self.key()];
                if self.chance(0.4) {
                    c.extend(["DB".into(), self.pick(DBS).into()]);
                }
                if self.chance(0.4) {
                    c.push("REPLACE".into());
                }
                c
            }
            8 => vec!["MOVE".into(), k, self.pick(DBS).into()],
            9 => vec!["KEYS".into(), self.pick(PATTERNS).into()],
            10 => {
                let mut c = Self::cmd(&["SCAN", "0", "COUNT", "1000"]);
                if self.chance(0.4) {
                    c.extend(["MATCH".into(), self.pick(PATTERNS).into()]);
                }
                if self.chance(0.3) {
                    let t =
                        self.pick(&["string", "list", "hash", "set", "zset", "stream", "nosuch"]);
                    c.extend(["TYPE".into(), t.into()]);
                }
                c
            }
            11 | 12 => {
                let (name, t) = match self.rng.gen_range(0..4) {
                    0 => ("EXPIRE", self.secs()),
                    1 => ("PEXPIRE", self.millis()),
                    2 => ("EXPIREAT", self.unix_s_or_past()),
                    _ => ("PEXPIREAT", self.unix_ms_or_past()),
                };
                let mut c = vec![name.to_string(), k, t];
                if self.chance(0.3) {
                    c.push(self.pick(&["NX", "XX", "GT", "LT", "nx", "BAD"]).into());
                }
                if self.chance(0.05) {
                    c.push(self.pick(&["NX", "XX", "GT", "LT"]).into());
                }
                c
            }
            13 | 14 => vec![
                self.pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"])
                    .into(),
                k,
            ],
            15 => vec!["PERSIST".into(), k],
            16 => {
                let mut c = vec!["TOUCH".to_string()];
                c.extend(self.keys_n(1, 3));
                c
            }
            17 => {
                let sub = self.pick(&["ENCODING", "REFCOUNT", "FREQ", "NOSUCH", "encoding"]);
                vec!["OBJECT".into(), sub.into(), k]
            }
            18 => Self::cmd(&["RANDOMKEY"]),
            19 => vec!["SET".into(), k, self.val(), "EX".into(), self.secs()],
            20 => vec!["EXPIRE".into(), k, "0".into()],
            21 => vec!["RENAME".into(), k.clone(), k],
            _ => vec!["SET".into(), k, self.val()],
        }
    }

    /// COMMAND GETKEYS over the commands whose keys move (numkeys,
    /// STREAMS), keyed subcommands and plain key positions, with counts
    /// that do and do not match the arguments.
    fn getkeys(&mut self) -> Vec<String> {
        let mut c = vec![
            "COMMAND".to_string(),
            self.pick(&["GETKEYS", "getkeys"]).into(),
        ];
        let numkeys = self
            .pick(&[
                "1",
                "2",
                "3",
                "0",
                "-1",
                "x",
                "1x",
                " 2",
                "99999999999999999999",
            ])
            .to_string();
        let nkeys = self.rng.gen_range(0..4);
        match self.rng.gen_range(0..8) {
            0 => {
                c.push(
                    self.pick(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])
                        .into(),
                );
                c.push(self.key());
                c.push(numkeys);
                c.extend(self.keys_n(nkeys, nkeys));
                if self.chance(0.3) {
                    c.extend(["WEIGHTS".into(), "1".into()]);
                }
            }
            1 => {
                c.push(
                    self.pick(&["ZUNION", "ZINTER", "ZDIFF", "ZINTERCARD", "SINTERCARD"])
                        .into(),
                );
                c.push(numkeys);
                c.extend(self.keys_n(nkeys, nkeys));
            }
            2 => {
                let (name, end) = self.pick2(&[("LMPOP", "LEFT"), ("ZMPOP", "MIN")]);
                c.extend([name.into(), numkeys]);
                c.extend(self.keys_n(nkeys, nkeys));
                c.push(end.into());
            }
            3 => {
                let (name, end) = self.pick2(&[("BLMPOP", "RIGHT"), ("BZMPOP", "MAX")]);
                c.extend([name.into(), "0".into(), numkeys]);
                c.extend(self.keys_n(nkeys, nkeys));
                c.push(end.into());
            }
            4 | 5 => {
                if self.chance(0.5) {
                    c.push("XREAD".into());
                    if self.chance(0.4) {
                        c.extend(["COUNT".into(), "2".into()]);
                    }
                } else {
                    c.extend(Self::cmd(&["XREADGROUP", "GROUP", "g", "c"]));
                    if self.chance(0.4) {
                        c.push("NOACK".into());
                    }
                }
                if self.chance(0.9) {
                    c.push(self.pick(&["STREAMS", "streams"]).into());
                }
                c.extend(self.keys_n(nkeys, nkeys));
                for _ in 0..self.rng.gen_range(0..4) {
                    c.push(self.pick(&["0", "$", ">"]).into());
                }
            }
            6 => {
                let k = self.key();
                let line: &[&str] = self.pick2(&[
                    &["OBJECT", "ENCODING"][..],
                    &["OBJECT", "HELP"],
                    &["OBJECT", "NOSUCH"],
                    &["XINFO", "STREAM"],
                    &["XINFO", "HELP"],
                    &["XGROUP", "CREATE"],
                    &["MEMORY", "USAGE"],
                    &["CONFIG", "GET"],
                ]);
                c.extend(line.iter().map(|s| s.to_string()));
                c.push(k);
            }
            _ => {
                c.push(
                    self.pick(&[
                        "GET", "SET", "MSET", "DEL", "RENAME", "PING", "NOSUCH", "XADD", "KEYS",
                        "SMOVE", "BLPOP", "EXISTS",
                    ])
                    .into(),
                );
                c.extend(self.keys_n(nkeys, nkeys));
            }
        }
        c
    }

    fn server(&mut self) -> Vec<String> {
        match self.rng.gen_range(0..23) {
            22 => self.getkeys(),
            0..=3 => vec!["SELECT".into(), self.pick(DBS).into()],
            4 | 5 => Self::cmd(&["DBSIZE"]),
            6 => {
                let mut c = Self::cmd(&["FLUSHDB"]);
                if self.chance(0.3) {
                    c.push(self.pick(&["ASYNC", "SYNC", "sync", "LAZY"]).into());
                }
                c
            }
            7 => {
                if self.chance(0.3) {
                    Self::cmd(&["FLUSHALL"])
                } else {
                    Self::cmd(&["DBSIZE"])
                }
            }
            8 | 9 => vec![
                "SWAPDB".into(),
                self.pick(DBS).into(),
                self.pick(DBS).into(),
            ],
            10 => match self.rng.gen_range(0..8) {
                0 => Self::cmd(&["TIME"]),
                1 => Self::cmd(&["LASTSAVE"]),
                2 => Self::cmd(&["OBJECT", "HELP"]),
                3 => Self::cmd(&["FLUSHALL", "BOGUS"]),
                // Nobody subscribes in these sequences: the counts are 0.
                4 => vec!["PUBLISH".into(), self.key(), self.val()],
                5 => match self.rng.gen_range(0..4) {
                    0 => Self::cmd(&["PUBSUB", "CHANNELS"]),
                    1 => vec!["PUBSUB".into(), "NUMSUB".into(), self.key()],
                    2 => Self::cmd(&["PUBSUB", "NUMPAT"]),
                    _ => Self::cmd(&["PUBSUB", "NOSUCH"]),
                },
                _ => Self::cmd(&["PING"]),
            },
            11 => vec!["PING".into(), self.val()],
            12 => vec!["ECHO".into(), self.val()],
            13 => vec![
                "CLIENT".into(),
                "SETNAME".into(),
                self.pick(&["conn1", "", "bad name", "x\ny", "ok-name"])
                    .into(),
            ],
            14 => Self::cmd(&["CLIENT", "GETNAME"]),
            15 => vec![
                self.pick(&["NOSUCHCMD", "GETT", "foo"]).into(),
                self.key(),
                self.val(),
            ],
            16 => vec![
                "CONFIG".into(),
                "GET".into(),
                self.pick(&[
                    "databases",
                    "maxmemory-policy",
                    "hash-max-listpack-entries",
                    "hash-max-ziplist-entries",
                    "appendonly",
                    "nosuch",
                    "set-max-intset-entries",
                ])
                .into(),
            ],
            17 => {
                // Parameters whose value cannot make replies diverge (no LFU
                // policy: its counters are probabilistic; no small maxmemory).
                let (name, values): (&str, &[&str]) = match self.rng.gen_range(0..5) {
                    0 => (
                        "maxmemory-policy",
                        &["noeviction", "allkeys-lru", "volatile-ttl", "bogus", ""],
                    ),
                    1 => ("hz", &["10", "20", "0", "501", "abc", "-1"]),
                    2 => ("maxmemory", &["0", "1gb", "abc", "-1", "2GB"]),
                    3 => ("set-max-intset-entries", &["512", "1", "abc"]),
                    _ => ("nosuch-param", &["1"]),
                };
                let mut c = vec!["CONFIG".to_string(), "SET".into(), name.into()];
                c.push(self.pick(values).into());
                if self.chance(0.2) {
                    c.extend(["hz".into(), "10".into()]);
                }
                c
            }
            18 => vec!["TYPE".into(), self.key()],
            19 => vec!["MOVE".into(), self.key(), self.pick(DBS).into()],
            20 => {
                let mut c = vec!["COPY".into(), self.key(), self.key(), "DB".into()];
                c.push(self.pick(DBS).into());
                c
            }
            _ => vec!["RENAME".into(), self.key(), self.key()],
        }
    }

    fn transactions(&mut self, conn: usize) -> Vec<String> {
        if self.in_multi[conn] {
            return match self.rng.gen_range(0..10) {
                0..=3 => Self::cmd(&["EXEC"]),
                4 => Self::cmd(&["DISCARD"]),
                5 => Self::cmd(&["MULTI"]),
                6 => vec!["WATCH".into(), self.key()],
                7 => Self::cmd(&["UNWATCH"]),
                _ => vec!["INCR".into(), self.key()],
            };
        }
        match self.rng.gen_range(0..10) {
            0..=3 => Self::cmd(&["MULTI"]),
            4..=6 => {
                let mut c = vec!["WATCH".to_string()];
                c.extend(self.keys_n(1, 3));
                c
            }
            7 => Self::cmd(&["UNWATCH"]),
            8 => Self::cmd(&["EXEC"]),
            _ => Self::cmd(&["DISCARD"]),
        }
    }

    fn resp3(&mut self) -> Vec<String> {
        match self.rng.gen_range(0..8) {
            0 | 1 => Self::cmd(&["HELLO", "3"]),
            2 => Self::cmd(&["HELLO", "2"]),
            3 => Self::cmd(&["HELLO"]),
            4 => vec!["HELLO".into(), self.pick(&["4", "1", "abc", "0"]).into()],
            5 => Self::cmd(&["HELLO", "3", "SETNAME", "r3"]),
            6 => Self::cmd(&["HELLO", "3", "AUTH", "default", "nopass"]),
            _ => Self::cmd(&["RESET"]),
        }
    }

    fn lists(&mut self) -> Vec<String> {
        let k = self.key();
        match self.rng.gen_range(0..22) {
            0..=3 => {
                let mut c = vec![
                    self.pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"])
                        .to_string(),
                    k,
                ];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.member());
                }
                c
            }
            4 | 5 => {
                let mut c = vec![self.pick(&["LPOP", "RPOP"]).to_string(), k];
                if self.chance(0.4) {
                    c.push(self.int());
                }
                c
            }
            6..=8 => vec!["LRANGE".into(), k, self.small_index(), self.small_index()],
            9 => vec!["LLEN".into(), k],
            10 => vec!["LINDEX".into(), k, self.small_index()],
            11 => vec!["LSET".into(), k, self.small_index(), self.member()],
            12 => vec!["LREM".into(), k, self.small_index(), self.member()],
            13 => vec![
                "LINSERT".into(),
                k,
                self.pick(&["BEFORE", "AFTER", "MIDDLE"]).into(),
                self.member(),
                self.member(),
            ],
            14 => vec!["LTRIM".into(), k, self.small_index(), self.small_index()],
            15 => {
                let mut c = vec!["LPOS".into(), k, self.member()];
                if self.chance(0.5) {
                    c.extend(["RANK".into(), self.small_index()]);
                }
                if self.chance(0.5) {
                    c.extend(["COUNT".into(), self.small_index()]);
                }
                c
            }
            16 => vec![
                "LMOVE".into(),
                k,
                self.key(),
                self.pick(&["LEFT", "RIGHT"]).into(),
                self.pick(&["LEFT", "RIGHT", "UP"]).into(),
            ],
            17 => vec!["RPOPLPUSH".into(), k, self.key()],
            18 => {
                let mut c = vec![self.pick(&["BLPOP", "BRPOP"]).to_string(), k];
                if self.chance(0.5) {
                    c.push(self.key());
                }
                c.push(self.timeout());
                c
            }
            19 => match self.rng.gen_range(0..3) {
                0 => vec![
                    "BLMOVE".into(),
                    k,
                    self.key(),
                    self.pick(&["LEFT", "RIGHT"]).into(),
                    self.pick(&["LEFT", "RIGHT"]).into(),
                    self.timeout(),
                ],
                1 => vec!["BRPOPLPUSH".into(), k, self.key(), self.timeout()],
                _ => {
                    let mut c = vec!["BLMPOP".into(), self.timeout(), "2".into(), k];
                    c.push(self.key());
                    c.push(self.pick(&["LEFT", "RIGHT"]).into());
                    if self.chance(0.5) {
                        c.extend(["COUNT".into(), self.int()]);
                    }
                    c
                }
            },
            _ => {
                let mut c = vec!["LMPOP".into(), "2".into(), k, self.key()];
                c.push(self.pick(&["LEFT", "RIGHT"]).into());
                if self.chance(0.5) {
                    c.extend(["COUNT".into(), self.int()]);
                }
                c
            }
        }
    }

    fn hashes(&mut self) -> Vec<String> {
        let k = self.key();
        let f = self.pick(&["f1", "f2", "f3", "f4", "1", ""]).to_string();
        match self.rng.gen_range(0..18) {
            0..=3 => {
                let mut c = vec![self.pick(&["HSET", "HMSET"]).to_string(), k];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.pick(&["f1", "f2", "f3", "f4", "1"]).into());
                    c.push(self.val());
                }
                c
            }
            4 => vec!["HSETNX".into(), k, f, self.val()],
            5 => vec!["HGET".into(), k, f],
            6 => vec!["HMGET".into(), k, f, "f2".into(), "nosuch".into()],
            7 => vec!["HDEL".into(), k, f, "f2".into()],
            8 => vec!["HLEN".into(), k],
            9 => vec!["HEXISTS".into(), k, f],
            10 => vec!["HINCRBY".into(), k, f, self.int()],
            11 => vec!["HINCRBYFLOAT".into(), k, f, self.float()],
            12 | 13 => vec![self.pick(&["HGETALL", "HKEYS", "HVALS"]).into(), k],
            14 => vec!["HSTRLEN".into(), k, f],
            15 => {
                let mut c = Self::cmd(&["HSCAN"]);
                c.extend([k, "0".into(), "COUNT".into(), "1000".into()]);
                if self.chance(0.4) {
                    c.extend(["MATCH".into(), self.pick(&["f*", "?", "*1", "x"]).into()]);
                }
                c
            }
            _ => {
                let mut c = vec![
                    "HRANDFIELD".into(),
                    k,
                    self.pick(&["1", "-2", "5", "0"]).into(),
                ];
                if self.chance(0.3) {
                    c.push("WITHVALUES".into());
                }
                c
            }
        }
    }

    fn sets(&mut self) -> Vec<String> {
        let k = self.key();
        match self.rng.gen_range(0..18) {
            0..=3 => {
                let mut c = vec![self.pick(&["SADD", "SADD", "SREM"]).to_string(), k];
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.member());
                }
                c
            }
            4 => vec!["SISMEMBER".into(), k, self.member()],
            5 => vec!["SMISMEMBER".into(), k, self.member(), self.member()],
            6 => vec!["SCARD".into(), k],
            7 | 8 => vec!["SMEMBERS".into(), k],
            9 | 10 => vec![
                self.pick(&["SINTER", "SUNION", "SDIFF"]).into(),
                k,
                self.key(),
            ],
            11 | 12 => vec![
                self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])
                    .into(),
                k,
                self.key(),
                self.key(),
            ],
            13 => vec!["SMOVE".into(), k, self.key(), self.member()],
            14 => {
                let mut c = vec!["SINTERCARD".into(), "2".into(), k, self.key()];
                if self.chance(0.3) {
                    c.extend(["LIMIT".into(), self.pick(&["0", "1", "-1", "x"]).into()]);
                }
                c
            }
            // SPOP is random unless it takes the whole set (or nothing).
            15 => vec!["SPOP".into(), k, self.pick(&["100", "0", "-1", "x"]).into()],
            16 => {
                let mut c = vec!["SSCAN".into(), k, "0".into(), "COUNT".into()];
                c.push("1000".into());
                if self.chance(0.4) {
                    c.extend(["MATCH".into(), self.pick(&["m*", "?", "-*", "x"]).into()]);
                }
                c
            }
            _ => vec![
                "SRANDMEMBER".into(),
                k,
                self.pick(&["1", "-3", "10", "0"]).into(),
            ],
        }
    }

    fn zsets(&mut self) -> Vec<String> {
        let k = self.key();
        match self.rng.gen_range(0..29) {
            0..=3 => {
                let mut c = vec!["ZADD".to_string(), k];
                if self.chance(0.3) {
                    c.push(self.pick(&["NX", "XX", "GT", "LT", "CH", "INCR"]).into());
                }
                for _ in 0..self.rng.gen_range(1..4) {
                    c.push(self.float());
                    c.push(self.member());
                }
                c
            }
            4 => vec!["ZREM".into(), k, self.member(), self.member()],
            5 => vec!["ZSCORE".into(), k, self.member()],
            6 => vec!["ZINCRBY".into(), k, self.float(), self.member()],
            7 => vec!["ZCARD".into(), k],
            8..=10 => {
                let mut c = vec!["ZRANGE".into(), k];
                match self.rng.gen_range(0..3) {
                    0 => {
                        c.push(self.small_index());
                        c.push(self.small_index());
                    }
                    1 => {
                        c.push(self.pick(&["-inf", "0", "(1", "1.5"]).into());
                        c.push(self.pick(&["+inf", "3", "(2", "x"]).into());
                        c.push("BYSCORE".into());
                    }
                    _ => {
                        c.push(self.pick(&["-", "[m1", "(m2"]).into());
                        c.push(self.pick(&["+", "[m3", "(m4", "m"]).into());
                        c.push("BYLEX".into());
                    }
                }
                if self.chance(0.3) {
                    c.push("REV".into());
                }
                if self.chance(0.5) {
                    c.push("WITHSCORES".into());
                }
                if self.chance(0.2) {
                    c.extend(["LIMIT".into(), self.small_index(), self.small_index()]);
                }
                c
            }
            11 => vec![
                self.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]).into(),
                k,
                self.pick(&["-inf", "+inf", "0", "(1", "5"]).into(),
                self.pick(&["-inf", "+inf", "3", "(2"]).into(),
                "WITHSCORES".into(),
            ],
            12 => vec![self.pick(&["ZRANK", "ZREVRANK"]).into(), k, self.member()],
            13 => vec![
                "ZCOUNT".into(),
                k,
                self.pick(&["-inf", "0", "(1"]).into(),
                self.pick(&["+inf", "3", "(2"]).into(),
            ],
            14 => {
                let mut c = vec![self.pick(&["ZPOPMIN", "ZPOPMAX"]).to_string(), k];
                if self.chance(0.5) {
                    c.push(self.int());
                }
                c
            }
            15 => vec!["ZMSCORE".into(), k, self.member(), self.member()],
            16 | 17 => {
                let name = self.pick(&[
                    "ZUNIONSTORE",
                    "ZINTERSTORE",
                    "ZDIFFSTORE",
                    "ZUNION",
                    "ZINTER",
                    "ZDIFF",
                ]);
                let mut c = vec![name.to_string()];
                if name.ends_with("STORE") {
                    c.push(k);
                    c.extend(["2".into(), self.key(), self.key()]);
                } else {
                    c.extend(["2".into(), k, self.key()]);
                }
                if self.chance(0.3) && !name.starts_with("ZDIFF") {
                    let w = self.pick(&["1", "2", "-1", "0.5", "inf", "x"]);
                    c.extend(["WEIGHTS".into(), w.into(), self.float()]);
                }
                if self.chance(0.3) && !name.starts_with("ZDIFF") {
                    c.extend(["AGGREGATE".into(), self.pick(&["SUM", "MIN", "MAX"]).into()]);
                }
                if self.chance(0.4) && !name.ends_with("STORE") {
                    c.push("WITHSCORES".into());
                }
                c
            }
            18 => vec!["ZLEXCOUNT".into(), k, self.lex_bound(), self.lex_bound()],
            19 | 20 => {
                let mut c = vec![
                    self.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX"]).to_string(),
                    k,
                    self.lex_bound(),
                    self.lex_bound(),
                ];
                if self.chance(0.3) {
                    c.extend(["LIMIT".into(), self.small_index(), self.small_index()]);
                }
                c
            }
            21 => {
                let mut c = vec![
                    "ZREVRANGE".into(),
                    k,
                    self.small_index(),
                    self.small_index(),
                ];
                if self.chance(0.5) {
                    c.push("WITHSCORES".into());
                }
                c
            }
            22 => match self.rng.gen_range(0..3) {
                0 => vec![
                    "ZREMRANGEBYRANK".into(),
                    k,
                    self.small_index(),
                    self.small_index(),
                ],
                1 => vec![
                    "ZREMRANGEBYSCORE".into(),
                    k,
                    self.pick(&["-inf", "0", "(1", "1.5", "x"]).into(),
                    self.pick(&["+inf", "3", "(2", "0"]).into(),
                ],
                _ => vec![
                    "ZREMRANGEBYLEX".into(),
                    k,
                    self.lex_bound(),
                    self.lex_bound(),
                ],
            },
            23 => {
                let mut c = vec![self.pick(&["BZPOPMIN", "BZPOPMAX"]).to_string(), k];
                if self.chance(0.5) {
                    c.push(self.key());
                }
                c.push(self.timeout());
                c
            }
            24 => {
                let blocking = self.chance(0.5);
                let mut c = if blocking {
                    vec!["BZMPOP".to_string(), self.timeout()]
                } else {
                    vec!["ZMPOP".to_string()]
                };
                c.extend(["2".into(), k, self.key()]);
                c.push(self.pick(&["MIN", "MAX", "min", "UP"]).into());
                if self.chance(0.5) {
                    c.extend(["COUNT".into(), self.int()]);
                }
                c
            }
            25 => {
                let mut c = vec!["ZRANGESTORE".into(), k, self.key()];
                match self.rng.gen_range(0..3) {
                    0 => {
                        c.push(self.small_index());
                        c.push(self.small_index());
                    }
                    1 => {
                        c.push(self.pick(&["-inf", "0", "(1", "1.5"]).into());
                        c.push(self.pick(&["+inf", "3", "(2", "x"]).into());
                        c.push("BYSCORE".into());
                    }
                    _ => {
                        c.push(self.lex_bound());
                        c.push(self.lex_bound());
                        c.push("BYLEX".into());
                    }
                }
                if self.chance(0.3) {
                    c.push("REV".into());
                }
                if self.chance(0.2) {
                    c.extend(["LIMIT".into(), self.small_index(), self.small_index()]);
                }
                c
            }
            26 => {
                let mut c = vec!["ZINTERCARD".into(), "2".into(), k, self.key()];
                if self.chance(0.3) {
                    c.extend(["LIMIT".into(), self.pick(&["0", "1", "-1", "x"]).into()]);
                }
                c
            }
            27 => {
                let mut c = vec!["ZRANDMEMBER".into(), k];
                if self.chance(0.7) {
                    c.push(self.pick(&["1", "-3", "10", "0", "x"]).into());
                    if self.chance(0.4) {
                        c.push("WITHSCORES".into());
                    }
                }
                c
            }
            _ => {
                let mut c = vec!["ZSCAN".into(), k, "0".into(), "COUNT".into()];
                c.push("1000".into());
                if self.chance(0.4) {
                    c.extend(["MATCH".into(), self.pick(&["m*", "?", "-*", "x"]).into()]);
                }
                c
            }
        }
    }

    fn streams(&mut self) -> Vec<String> {
        let k = self.key();
        match self.rng.gen_range(0..23) {
            0..=4 => {
                let id = match self.rng.gen_range(0..8) {
                    0 => self.pick(&["0-0", "0-1", "1-1", "abc", "5-"]).to_string(),
                    1 => format!("{}-*", self.stream_ms),
                    _ => {
                        self.stream_ms += self.rng.gen_range(0..3);
                        format!("{}-{}", self.stream_ms, self.rng.gen_range(0..3))
                    }
                };
                let mut c = vec!["XADD".to_string(), k];
                if self.chance(0.1) {
                    c.push("NOMKSTREAM".into());
                }
                if self.chance(0.2) {
                    c.push(self.pick(&["MAXLEN", "MAXLEN", "MINID"]).into());
                    if self.chance(0.3) {
                        c.push(self.pick(&["=", "~"]).into());
                    }
                    c.push(self.pick(&["3", "0", "-1", "2-0"]).into());
                }
                c.push(id);
                for _ in 0..self.rng.gen_range(1..3) {
                    c.push(self.pick(&["f1", "f2", "x"]).into());
                    c.push(self.val());
                }
                c
            }
            5 => vec!["XLEN".into(), k],
            6 | 7 => {
                let mut c = vec![
                    "XRANGE".into(),
                    k,
                    self.pick(&["-", "0", "2", "(1-1"]).into(),
                ];
                c.push(self.pick(&["+", "5", "3-0", "x"]).into());
                if self.chance(0.3) {
                    c.extend(["COUNT".into(), self.small_index()]);
                }
                c
            }
            8 => vec!["XREVRANGE".into(), k, "+".into(), "-".into()],
            9 => vec![
                "XDEL".into(),
                k,
                format!("{}-0", self.rng.gen_range(1..=self.stream_ms)),
            ],
            10 => {
                let mut c = vec!["XTRIM".into(), k, self.pick(&["MAXLEN", "MINID"]).into()];
                if self.chance(0.3) {
                    c.push(self.pick(&["=", "~"]).into());
                }
                c.push(self.pick(&["2", "0", "3-0", "-1", "x"]).into());
                if self.chance(0.1) {
                    c.extend(["LIMIT".into(), self.pick(&["10", "0", "-1"]).into()]);
                }
                c
            }
            11 => self.xread(k),
            12 | 13 => self.xgroup(k),
            14 | 15 => self.xreadgroup(k),
            16 => {
                let mut c = vec!["XACK".into(), k, self.group()];
                for _ in 0..self.rng.gen_range(1..3) {
                    c.push(self.stream_id());
                }
                c
            }
            17 => {
                let mut c = vec!["XPENDING".into(), k, self.group()];
                if self.chance(0.6) {
                    if self.chance(0.3) {
                        c.extend(["IDLE".into(), self.pick(&["0", "100000000", "x"]).into()]);
                    }
                    c.extend(["-".into(), "+".into()]);
                    c.push(self.pick(&["10", "1", "0", "-1"]).into());
                    if self.chance(0.5) {
                        c.push(self.consumer());
                    }
                }
                c
            }
            18 => {
                let mut c = vec![
                    "XCLAIM".into(),
                    k,
                    self.group(),
                    self.consumer(),
                    self.pick(&["0", "0", "100000000", "-1", "x"]).into(),
                ];
                for _ in 0..self.rng.gen_range(1..3) {
                    c.push(self.stream_id());
                }
                for _ in 0..self.rng.gen_range(0..3) {
                    match self.rng.gen_range(0..5) {
                        0 => c.push("JUSTID".into()),
                        1 => c.push("FORCE".into()),
                        2 => c.extend(["RETRYCOUNT".into(), self.pick(&["3", "-1"]).into()]),
                        3 => c.extend(["IDLE".into(), self.pick(&["5000", "-1", "x"]).into()]),
                        _ => c.extend(["LASTID".into(), self.stream_id()]),
                    }
                }
                c
            }
            19 => {
                let mut c = vec![
                    "XAUTOCLAIM".into(),
                    k,
                    self.group(),
                    self.consumer(),
                    self.pick(&["0", "0", "100000000", "-1"]).into(),
                    self.pick(&["0-0", "0", "2-0", "(1", "-"]).into(),
                ];
                if self.chance(0.5) {
                    c.extend([
                        "COUNT".into(),
                        self.pick(&["1", "2", "100", "0", "-1"]).into(),
                    ]);
                }
                if self.chance(0.3) {
                    c.push("JUSTID".into());
                }
                c
            }
            20 => match self.rng.gen_range(0..5) {
                0 => vec!["XINFO".into(), "STREAM".into(), k],
                1 => {
                    let mut c = vec!["XINFO".into(), "STREAM".into(), k, "FULL".into()];
                    if self.chance(0.5) {
                        c.extend(["COUNT".into(), self.pick(&["1", "0", "5"]).into()]);
                    }
                    c
                }
                2 => vec!["XINFO".into(), "GROUPS".into(), k],
                3 => vec!["XINFO".into(), "CONSUMERS".into(), k, self.group()],
                _ => vec!["XINFO".into(), self.pick(&["HELP", "NOSUCH"]).into()],
            },
            21 => {
                let mut c = vec!["XSETID".into(), k, self.stream_id()];
                if self.chance(0.3) {
                    c.extend(["ENTRIESADDED".into(), self.pick(&["100", "0", "-1"]).into()]);
                }
                if self.chance(0.3) {
                    c.extend(["MAXDELETEDID".into(), self.stream_id()]);
                }
                c
            }
            _ => vec!["TYPE".into(), k],
        }
    }

    fn group(&mut self) -> String {
        self.pick(&["g1", "g1", "g2", "nosuch"]).to_string()
    }

    fn consumer(&mut self) -> String {
        self.pick(&["c1", "c1", "c2", "c3"]).to_string()
    }

    /// An id near the ones XADD has produced, or a special or bad one.
    fn stream_id(&mut self) -> String {
        match self.rng.gen_range(0..10) {
            0 => self.pick(&["0", "0-0", "abc", "-", "+", "$"]).to_string(),
            _ => format!(
                "{}-{}",
                self.rng.gen_range(0..=self.stream_ms + 1),
                self.rng.gen_range(0..3)
            ),
        }
    }

    fn xread(&mut self, k: String) -> Vec<String> {
        let mut c = vec!["XREAD".to_string()];
        if self.chance(0.4) {
            c.extend(["COUNT".into(), self.pick(&["1", "2", "0", "-1"]).into()]);
        }
        let block = self.chance(0.3);
        if block {
            c.extend(["BLOCK".into(), self.pick(&["10", "20", "-1", "x"]).into()]);
        }
        c.push("STREAMS".into());
        let two = self.chance(0.3);
        let k2 = self.key();
        c.push(k);
        if two {
            c.push(k2);
        }
        for _ in 0..(1 + usize::from(two)) {
            let id = if block && self.chance(0.5) {
                "$".to_string()
            } else {
                self.pick(&["0", "0-0", "1-0", "2", "$", "x"]).to_string()
            };
            c.push(id);
        }
        c
    }

    fn xgroup(&mut self, k: String) -> Vec<String> {
        let g = self.group();
        match self.rng.gen_range(0..8) {
            0..=2 => {
                let id = self.pick(&["0", "$", "1-0", "0-0", "x"]);
                let mut c = vec!["XGROUP".into(), "CREATE".into(), k, g, id.into()];
                if self.chance(0.5) {
                    c.push("MKSTREAM".into());
                }
                if self.chance(0.2) {
                    c.extend([
                        "ENTRIESREAD".into(),
                        self.pick(&["0", "2", "-1", "x"]).into(),
                    ]);
                }
                c
            }
            3 => {
                let id = self.pick(&["0", "$", "1-0", "x"]);
                let mut c = vec!["XGROUP".into(), "SETID".into(), k, g, id.into()];
                if self.chance(0.3) {
                    c.extend([
                        "ENTRIESREAD".into(),
                        self.pick(&["0", "2", "-1", "x"]).into(),
                    ]);
                }
                c
            }
            4 => vec!["XGROUP".into(), "DESTROY".into(), k, g],
            5 | 6 => vec![
                "XGROUP".into(),
                "CREATECONSUMER".into(),
                k,
                g,
                self.consumer(),
            ],
            _ => vec!["XGROUP".into(), "DELCONSUMER".into(), k, g, self.consumer()],
        }
    }

    fn xreadgroup(&mut self, k: String) -> Vec<String> {
        let mut c = vec![
            "XREADGROUP".to_string(),
            "GROUP".into(),
            self.group(),
            self.consumer(),
        ];
        if self.chance(0.4) {
            c.extend(["COUNT".into(), self.pick(&["1", "2", "0", "-1"]).into()]);
        }
        if self.chance(0.2) {
            c.extend(["BLOCK".into(), self.pick(&["10", "-1"]).into()]);
        }
        if self.chance(0.2) {
            c.push("NOACK".into());
        }
        c.extend(["STREAMS".into(), k]);
        c.push(self.pick(&[">", ">", ">", "0", "0-0", "1-0", "$"]).into());
        c
    }
}

// ---- comparison rules ------------------------------------------------------

/// How one command's replies are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Identical replies.
    Exact,
    /// An array (or set) whose order is unspecified: sorted first.
    Sorted,
    /// A flat field/value array or a map whose order is unspecified: pairs sorted.
    SortedPairs,
    /// SCAN-style `[cursor, [elements]]`: elements sorted, cursor compared
    /// only as zero or not.
    Scan,
    /// Integers within this tolerance (clock-derived: PTTL, EXPIRETIME);
    /// negative sentinels (-1, -2) must match exactly.
    Near(i64),
    /// Only the reply's type, and the length of an aggregate.
    Shape,
    /// HELLO: everything but the connection id.
    Hello,
    /// XPENDING's extended form: each entry's idle time (the clock) is
    /// ignored.
    PendingIdle,
    /// XINFO: idle times, last-seen times and delivery timestamps (the
    /// clock) are ignored.
    StreamClock,
}

/// The rule for a command (by name and subcommand).
pub fn rule_for(args: &[Vec<u8>]) -> Rule {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let sub = args
        .get(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_uppercase())
        .unwrap_or_default();
    match name.as_str() {
        "KEYS" | "SMEMBERS" | "SINTER" | "SUNION" | "SDIFF" | "HKEYS" | "HVALS" => Rule::Sorted,
        "HGETALL" => Rule::SortedPairs,
        "SCAN" | "SSCAN" | "HSCAN" | "ZSCAN" => Rule::Scan,
        "TTL" | "EXPIRETIME" => Rule::Near(1),
        "PTTL" | "PEXPIRETIME" => Rule::Near(1000),
        "RANDOMKEY" | "SRANDMEMBER" | "HRANDFIELD" | "ZRANDMEMBER" | "TIME" | "LASTSAVE" => {
            Rule::Shape
        }
        // Idle time is the clock; reference counts are Redis internals (a
        // value queued in MULTI is referenced twice, small integers are shared).
        "OBJECT" if sub == "IDLETIME" || sub == "REFCOUNT" => Rule::Shape,
        "HELLO" => Rule::Hello,
        "XPENDING" => Rule::PendingIdle,
        "XINFO" => Rule::StreamClock,
        // Whole-set pops and random picks: membership, not order.
        "SPOP" => Rule::Sorted,
        _ => Rule::Exact,
    }
}

/// Puts a reply in the canonical form its rule compares.
pub fn normalise(rule: Rule, r: &Resp) -> Resp {
    match (rule, r) {
        (Rule::Sorted, Resp::Array(v)) => {
            let mut v = v.clone();
            v.sort();
            Resp::Array(v)
        }
        (Rule::Sorted, Resp::Set(v)) => {
            let mut v = v.clone();
            v.sort();
            Resp::Set(v)
        }
        (Rule::SortedPairs, Resp::Array(v)) if v.len() % 2 == 0 => {
            let mut pairs: Vec<(Resp, Resp)> =
                v.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect();
            pairs.sort();
            Resp::Array(pairs.into_iter().flat_map(|(a, b)| [a, b]).collect())
        }
        (Rule::SortedPairs, Resp::Map(m)) => {
            let mut m = m.clone();
            m.sort();
            Resp::Map(m)
        }
        (Rule::Scan, Resp::Array(v)) if v.len() == 2 => {
            let cursor = match &v[0] {
                Resp::Bulk(c) if c == b"0" => Resp::Bulk(b"0".to_vec()),
                Resp::Bulk(_) => Resp::Bulk(b"<nonzero>".to_vec()),
                other => other.clone(),
            };
            Resp::Array(vec![cursor, normalise(Rule::Sorted, &v[1])])
        }
        (Rule::Hello, Resp::Map(m)) => Resp::Map(
            m.iter()
                .map(|(k, v)| {
                    if k.text().as_deref() == Some("id") {
                        (k.clone(), Resp::Int(0))
                    } else {
                        (k.clone(), v.clone())
                    }
                })
                .collect(),
        ),
        (Rule::PendingIdle, Resp::Array(v)) => Resp::Array(
            v.iter()
                .map(|e| match e {
                    Resp::Array(f) if f.len() == 4 => {
                        let mut f = f.clone();
                        f[2] = Resp::Int(0);
                        Resp::Array(f)
                    }
                    other => other.clone(),
                })
                .collect(),
        ),
        (Rule::StreamClock, r) => without_clock(r),
        (Rule::Hello, Resp::Array(v)) => {
            let mut v = v.clone();
            for i in (0..v.len().saturating_sub(1)).step_by(2) {
                if v[i].text().as_deref() == Some("id") {
                    v[i + 1] = Resp::Int(0);
                }
            }
            Resp::Array(v)
        }
        _ => r.clone(),
    }
}

/// Zeroes the clock-derived parts of an XINFO reply: the values of the
/// `idle` and `seen-time` fields, and millisecond timestamps (delivery
/// times in XINFO STREAM FULL's pending lists).
fn without_clock(r: &Resp) -> Resp {
    const CLOCK_FIELDS: &[&str] = &["idle", "seen-time", "active-time", "inactive"];
    let is_clock = |k: &Resp| k.text().is_some_and(|t| CLOCK_FIELDS.contains(&t.as_str()));
    match r {
        Resp::Int(n) if *n > 1_000_000_000_000 => Resp::Int(0),
        Resp::Map(m) => Resp::Map(
            m.iter()
                .map(|(k, v)| {
                    let v = if is_clock(k) {
                        Resp::Int(0)
                    } else {
                        without_clock(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Resp::Array(v) => {
            let mut out: Vec<Resp> = v.iter().map(without_clock).collect();
            for i in 1..out.len() {
                if is_clock(&v[i - 1]) && matches!(v[i], Resp::Int(_)) {
                    out[i] = Resp::Int(0);
                }
            }
            Resp::Array(out)
        }
        other => other.clone(),
    }
}

/// Whether two replies agree under `rule`.
pub fn replies_match(rule: Rule, a: &Resp, b: &Resp) -> bool {
    match rule {
        Rule::Near(tol) => match (a, b) {
            (Resp::Int(x), Resp::Int(y)) if *x >= 0 && *y >= 0 => (x - y).abs() <= tol,
            _ => a == b,
        },
        Rule::Shape => {
            a.kind() == b.kind()
                && a.items().map(<[Resp]>::len) == b.items().map(<[Resp]>::len)
                && (!a.is_error() || a == b)
        }
        _ => normalise(rule, a) == normalise(rule, b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Resp {
        Resp::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn same_seed_same_sequence() {
        let fams = Family::ALL.to_vec();
        let mut a = Generator::new(7, fams.clone(), 2);
        let mut b = Generator::new(7, fams.clone(), 2);
        let mut c = Generator::new(8, fams, 2);
        let sa: Vec<_> = (0..200).map(|_| a.next_cmd().args).collect();
        let sb: Vec<_> = (0..200).map(|_| b.next_cmd().args).collect();
        let sc: Vec<_> = (0..200).map(|_| c.next_cmd().args).collect();
        assert_eq!(sa, sb);
        assert_ne!(sa, sc);
    }

    #[test]
    fn only_enabled_families_are_drawn() {
        let mut g = Generator::new(1, vec![Family::Strings], 1);
        for _ in 0..500 {
            let c = g.next_cmd();
            let name = String::from_utf8_lossy(&c.args[0]).to_ascii_uppercase();
            assert!(
                !["LPUSH", "HSET", "SADD", "ZADD", "XADD", "MULTI", "HELLO", "SELECT"]
                    .contains(&name.as_str()),
                "{name}"
            );
        }
    }

    #[test]
    fn rules_normalise_only_what_they_should() {
        let a = Resp::Array(vec![bulk("b"), bulk("a")]);
        let b = Resp::Array(vec![bulk("a"), bulk("b")]);
        assert!(replies_match(Rule::Sorted, &a, &b));
        assert!(!replies_match(Rule::Exact, &a, &b));
        let c = Resp::Array(vec![bulk("a"), bulk("c")]);
        assert!(!replies_match(Rule::Sorted, &a, &c));
        // Pairs stay pairs: swapping values between fields is a mismatch.
        let h1 = Resp::Array(vec![bulk("f1"), bulk("1"), bulk("f2"), bulk("2")]);
        let h2 = Resp::Array(vec![bulk("f2"), bulk("2"), bulk("f1"), bulk("1")]);
        let h3 = Resp::Array(vec![bulk("f2"), bulk("1"), bulk("f1"), bulk("2")]);
        assert!(replies_match(Rule::SortedPairs, &h1, &h2));
        assert!(!replies_match(Rule::SortedPairs, &h1, &h3));
        assert!(replies_match(
            Rule::Near(1000),
            &Resp::Int(5000),
            &Resp::Int(5400)
        ));
        assert!(!replies_match(
            Rule::Near(1000),
            &Resp::Int(-1),
            &Resp::Int(-2)
        ));
        assert!(!replies_match(
            Rule::Near(1),
            &Resp::Int(10),
            &Resp::Int(12)
        ));
        assert!(replies_match(Rule::Shape, &bulk("x"), &bulk("y")));
        assert!(!replies_match(Rule::Shape, &bulk("x"), &Resp::NullBulk));
        assert!(!replies_match(Rule::Exact, &Resp::NullBulk, &Resp::Null));
        assert_eq!(rule_for(&[b"keys".to_vec(), b"*".to_vec()]), Rule::Sorted);
        assert_eq!(rule_for(&[b"get".to_vec(), b"k".to_vec()]), Rule::Exact);
    }
}
