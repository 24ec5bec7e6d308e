//! Differential test: seeded random command sequences run against real
//! Redis 7.0 and against Redoubt; every reply must match (after the
//! normalisation rules in `redoubt_tests::gen`).
//!
//! Knobs (environment):
//! - `REDOUBT_DIFF_SEED`: one seed or a comma-separated list (default 1,2,3)
//! - `REDOUBT_DIFF_CMDS`: commands per seed (default 2000)
//! - `REDOUBT_DIFF_FAMILIES`: comma-separated families or `all` (default:
//!   `gen::ENABLED_BY_DEFAULT`)

use redoubt_tests::gen::{self, Family, Generator, Rule};
use redoubt_tests::resp::{format_args, RawClient, Resp};
use redoubt_tests::Server;

const DEFAULT_SEEDS: &[u64] = &[1, 2, 3];
const DEFAULT_CMDS: usize = 2000;
/// Connections per server (a second client makes WATCH meaningful).
const CONNS: usize = 2;
/// Commands shown before the failing one (REDOUBT_DIFF_CONTEXT overrides).
fn context() -> usize {
    std::env::var("REDOUBT_DIFF_CONTEXT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

fn env_seeds() -> Vec<u64> {
    match std::env::var("REDOUBT_DIFF_SEED") {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().parse().expect("REDOUBT_DIFF_SEED: integers"))
            .collect(),
        Err(_) => DEFAULT_SEEDS.to_vec(),
    }
}

fn env_cmds() -> usize {
    std::env::var("REDOUBT_DIFF_CMDS")
        .map(|v| v.trim().parse().expect("REDOUBT_DIFF_CMDS: an integer"))
        .unwrap_or(DEFAULT_CMDS)
}

fn rerun_line(seed: u64, cmds: usize, families: &[Family]) -> String {
    let fams: Vec<&str> = families.iter().map(|f| f.name()).collect();
    format!(
        "REDOUBT_DIFF_SEED={seed} REDOUBT_DIFF_CMDS={cmds} REDOUBT_DIFF_FAMILIES={} \
         cargo test -p redoubt-tests --test differential -- --nocapture",
        fams.join(",")
    )
}

struct Side {
    conns: Vec<RawClient>,
}

impl Side {
    fn open(s: &Server) -> Side {
        let mut conns: Vec<RawClient> = (0..CONNS).map(|_| s.raw()).collect();
        // Every seed starts from the same state, so that a seed rerun alone
        // replays exactly: no data, and the parameters the generator sets
        // back at their defaults.
        let r = conns[0].cmd(&["FLUSHALL"]).expect("FLUSHALL");
        assert_eq!(r, Resp::Simple(b"OK".to_vec()), "FLUSHALL on {:?}", s.kind);
        let r = conns[0]
            .cmd(&gen::CONFIG_DEFAULTS)
            .expect("CONFIG SET defaults");
        assert_eq!(
            r,
            Resp::Simple(b"OK".to_vec()),
            "CONFIG SET on {:?}",
            s.kind
        );
        Side { conns }
    }

    fn run(&mut self, conn: usize, args: &[Vec<u8>]) -> Result<Resp, String> {
        self.conns[conn]
            .cmd(args)
            .map_err(|e| format!("<connection error: {e}>"))
    }
}

/// Runs one seed; Err carries the report of the first mismatch.
fn run_seed(
    redis: &Server,
    redoubt: &Server,
    seed: u64,
    n: usize,
    families: &[Family],
) -> Result<(), String> {
    let mut gen = Generator::new(seed, families.to_vec(), CONNS);
    let mut a = Side::open(redis);
    let mut b = Side::open(redoubt);
    // Rules of the commands queued in MULTI, per connection, to compare the
    // EXEC array element by element.
    let mut queued: Vec<Vec<Rule>> = vec![Vec::new(); CONNS];
    let mut history: Vec<String> = Vec::new();
    for i in 0..n {
        let cmd = gen.next_cmd();
        let line = format!("[conn {}] {}", cmd.conn, format_args(&cmd.args));
        let ra = a.run(cmd.conn, &cmd.args);
        let rb = b.run(cmd.conn, &cmd.args);
        let rule = gen::rule_for(&cmd.args);
        let name = String::from_utf8_lossy(&cmd.args[0]).to_ascii_uppercase();
        let (ok, shown_a, shown_b) = match (&ra, &rb) {
            (Ok(x), Ok(y)) => {
                let ok = if name == "EXEC" {
                    exec_match(&queued[cmd.conn], x, y)
                } else {
                    gen::replies_match(rule, x, y)
                };
                (ok, x.to_string(), y.to_string())
            }
            (x, y) => (false, show(x), show(y)),
        };
        if !ok {
            let from = history.len().saturating_sub(context());
            // The keys each side holds now (in this connection's db) help
            // to see how the states diverged.
            let keys = [b"KEYS".to_vec(), b"*".to_vec()];
            let norm = |r: Result<Resp, String>| match r {
                Ok(r) => gen::normalise(Rule::Sorted, &r).to_string(),
                Err(e) => e,
            };
            let keys_a = norm(a.run(cmd.conn, &keys));
            let keys_b = norm(b.run(cmd.conn, &keys));
            return Err(format!(
                "seed {seed}: mismatch at command #{i} (rule {rule:?})\n\
                 preceding commands:\n  {}\n\
                 command: {line}\n  redis 7: {shown_a}\n  redoubt: {shown_b}\n\
                 KEYS * afterwards:\n  redis 7: {keys_a}\n  redoubt: {keys_b}\n\
                 rerun: {}",
                history[from..].join("\n  "),
                rerun_line(seed, i + 1, families),
            ));
        }
        // Track what Redis queued: EXEC in any form ends a transaction; a
        // DISCARD, RESET or MULTI only when it succeeds.
        let simple =
            |r: &Result<Resp, String>, want: &[u8]| matches!(r, Ok(Resp::Simple(s)) if s == want);
        match name.as_str() {
            "EXEC" => queued[cmd.conn].clear(),
            "DISCARD" | "MULTI" if simple(&ra, b"OK") => queued[cmd.conn].clear(),
            "RESET" if simple(&ra, b"RESET") => queued[cmd.conn].clear(),
            _ if simple(&ra, b"QUEUED") => queued[cmd.conn].push(rule),
            _ => {}
        }
        history.push(line);
    }
    Ok(())
}

fn show(r: &Result<Resp, String>) -> String {
    match r {
        Ok(x) => x.to_string(),
        Err(e) => e.clone(),
    }
}

/// EXEC's array compared element by element with the queued commands' rules.
fn exec_match(rules: &[Rule], a: &Resp, b: &Resp) -> bool {
    match (a, b) {
        (Resp::Array(x), Resp::Array(y)) if x.len() == rules.len() && y.len() == rules.len() => {
            rules
                .iter()
                .zip(x.iter().zip(y))
                .all(|(r, (p, q))| gen::replies_match(*r, p, q))
        }
        _ => a == b,
    }
}

#[test]
fn replies_match_redis() {
    let families = gen::enabled_families().unwrap_or_else(|e| panic!("{e}"));
    let Some(redis) = Server::redis() else {
        redoubt_tests::skip_without_redis("replies_match_redis");
        return;
    };
    let redoubt = Server::redoubt();
    let seeds = env_seeds();
    let n = env_cmds();
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    eprintln!(
        "differential: seeds {seeds:?} x {n} commands, families {}",
        names.join(",")
    );
    let mut failures = Vec::new();
    for &seed in &seeds {
        if let Err(report) = run_seed(&redis, &redoubt, seed, n, &families) {
            eprintln!("{report}\n");
            failures.push(report);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds differ from Redis:\n\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n\n")
    );
}

/// The harness itself must notice a difference: Redis against a Redis with
/// 32 databases instead of 16 (SELECT 16 and CONFIG GET databases differ)
/// has to fail, with a report that says how to rerun.
#[test]
fn harness_detects_a_difference() {
    let (Some(r16), Some(r32)) = (Server::redis(), Server::redis_with(&["--databases", "32"]))
    else {
        redoubt_tests::skip_without_redis("harness_detects_a_difference");
        return;
    };
    let families = vec![Family::Server];
    let same = Server::redis().expect("redis");
    assert_eq!(run_seed(&r16, &same, 5, 500, &families), Ok(()));
    let report = run_seed(&r16, &r32, 5, 2000, &families).expect_err("must differ");
    assert!(report.contains("seed 5: mismatch at command #"), "{report}");
    assert!(report.contains("REDOUBT_DIFF_SEED=5"), "{report}");
}

/// Every family's generator and comparison rules hold against Redis itself:
/// two Redis servers given the same sequence must agree. This checks the
/// families not yet enabled against Redoubt too, so they are ready when
/// their commands land.
#[test]
fn all_families_are_deterministic_on_redis() {
    let (Some(r1), Some(r2)) = (Server::redis(), Server::redis()) else {
        redoubt_tests::skip_without_redis("all_families_are_deterministic_on_redis");
        return;
    };
    let all = Family::ALL.to_vec();
    for seed in [101, 102] {
        if let Err(report) = run_seed(&r1, &r2, seed, 3000, &all) {
            panic!("Redis disagrees with itself; fix the generator or its rule:\n{report}");
        }
    }
}

/// Fixed sequences for what random ones reach rarely: the string encodings
/// each command leaves (int / embstr / raw) and COMMAND GETKEYS on the
/// commands whose keys move, compared reply by reply with Redis.
#[test]
fn encodings_and_getkeys_match_redis() {
    let Some(redis) = Server::redis() else {
        redoubt_tests::skip_without_redis("encodings_and_getkeys_match_redis");
        return;
    };
    let redoubt = Server::redoubt();
    let lines: &[&[&str]] = &[
        &["SET", "s1", "abc"],
        &["SET", "s2", "123"],
        &["SET", "s3", "12345678901234567890"],
        &["SET", "s4", &"a".repeat(44)],
        &["SET", "s5", &"a".repeat(45)],
        &["SET", "s6", "-0"],
        &["SET", "s7", "007"],
        &["APPEND", "s1", "x"],
        &["APPEND", "s2", ""],
        &["APPEND", "new", "12"],
        &["SETRANGE", "r1", "0", "12"],
        &["SETRANGE", "r2", "0", ""],
        &["SET", "r3", "5"],
        &["SETRANGE", "r3", "0", ""],
        &["INCRBYFLOAT", "f1", "3"],
        &["SET", "f2", "2"],
        &["INCRBYFLOAT", "f2", "1"],
        &["MSET", "m1", "10", "m2", "abc"],
        &["SETEX", "e1", "100", "42"],
        &["GETSET", "s7", "9"],
        &["SET", "c1", "1"],
        &["APPEND", "c1", "1"],
        &["COPY", "c1", "c2"],
        &["RENAME", "c1", "c3"],
        &["SET", "i1", "100000"],
        &["APPEND", "i1", "1"],
    ];
    let keys = [
        "s1", "s2", "s3", "s4", "s5", "s6", "s7", "new", "r1", "r2", "r3", "f1", "f2", "m1", "m2",
        "e1", "c2", "c3", "i1",
    ];
    let getkeys: &[&[&str]] = &[
        &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
        &["ZUNIONSTORE", "d", "5", "a", "b"],
        &["ZINTERSTORE", "d", "1x", "a"],
        &["ZDIFFSTORE", "d", "0", "a"],
        &["ZUNION", "3", "a", "b"],
        &["ZINTER", "2", "a", "b"],
        &["SINTERCARD", "-1", "a"],
        &["ZINTERCARD", "99999999999999999999", "a"],
        &["LMPOP", "3", "a", "b", "LEFT"],
        &["ZMPOP", "1", "a", "MIN"],
        &["BLMPOP", "0", "2", "a", "b", "LEFT"],
        &["BZMPOP", "0", "2", "a"],
        &["XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "0"],
        &["XREAD", "STREAMS", "a", "b", "0"],
        &["XREAD", "COUNT", "2", "a", "b"],
        &["XREAD", "streams"],
        &["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", ">"],
        &["XREADGROUP", "STREAMS", "a", "b", "c", "d", "e", "f"],
        &["OBJECT", "ENCODING", "k"],
        &["OBJECT", "HELP"],
        &["OBJECT", "NOSUCH", "k"],
        &["XINFO", "STREAM"],
        &["MEMORY", "USAGE", "k"],
        &["CONFIG", "GET", "x"],
        &["GET", "a"],
        &["SET", "a"],
        &["PING"],
        &["NOSUCH", "a"],
        &["MSET", "a", "1", "b"],
    ];
    let mut a = Side::open(&redis);
    let mut b = Side::open(&redoubt);
    let mut check = |args: Vec<Vec<u8>>| {
        let ra = a.run(0, &args);
        let rb = b.run(0, &args);
        assert_eq!(show(&rb), show(&ra), "{}", format_args(&args));
    };
    let bytes = |l: &[&str]| l.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    for l in lines {
        check(bytes(l));
    }
    for k in keys {
        check(bytes(&["OBJECT", "ENCODING", k]));
    }
    for &k in &["s2", "f1", "i1"] {
        check(bytes(&["INCR", k]));
        check(bytes(&["OBJECT", "ENCODING", k]));
    }
    for l in getkeys {
        let mut args = bytes(&["COMMAND", "GETKEYS"]);
        args.extend(bytes(l));
        check(args);
    }
}

/// Streams long enough to span many packed chunks and many Redis nodes:
/// explicit ids (auto ids follow each server's clock), field shapes that do
/// and do not match a node's first entry, deletions at chunk edges, exact
/// and approximate trims, and reads in both directions, compared reply by
/// reply with Redis.
#[test]
fn long_streams_match_redis() {
    let Some(redis) = Server::redis() else {
        redoubt_tests::skip_without_redis("long_streams_match_redis");
        return;
    };
    let redoubt = Server::redoubt();
    let mut a = Side::open(&redis);
    let mut b = Side::open(&redoubt);
    let mut check = |args: Vec<String>| {
        let args: Vec<Vec<u8>> = args.into_iter().map(String::into_bytes).collect();
        let ra = a.run(0, &args);
        let rb = b.run(0, &args);
        assert_eq!(show(&rb), show(&ra), "{}", format_args(&args));
    };
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // A fixed linear congruential sequence: the same commands every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move |n: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    };
    for key in ["s1", "s2", "s3"] {
        let mut ms = 1u64;
        let mut ids = Vec::new();
        for i in 0..1500u64 {
            ms += rnd(3);
            let id = format!("{ms}-{i}");
            ids.push(id.clone());
            let mut c = v(&["XADD", key, &id]);
            match rnd(10) {
                0 => c.extend(v(&["other", "x", "f2", &i.to_string()])),
                1 => c.extend(v(&["field", &"w".repeat(300 + i as usize % 700)])),
                2 => c.extend(v(&["field", ""])),
                _ => c.extend(v(&["field", &format!("value{i}")])),
            }
            check(c);
            if key == "s2" && i % 97 == 0 {
                check(v(&["XTRIM", key, "MAXLEN", "~", "700"]));
            }
            if key == "s3" && i % 50 == 49 {
                check(v(&["XTRIM", key, "MINID", &format!("{}", ms / 3)]));
            }
        }
        // Single ids (some already gone), then a run that empties whole
        // chunks and nodes.
        for _ in 0..200 {
            let id = ids[rnd(ids.len() as u64) as usize].clone();
            check(v(&["XDEL", key, &id]));
        }
        let from = 700 + rnd(100) as usize;
        for id in &ids[from..from + 300] {
            check(v(&["XDEL", key, id]));
        }
        for _ in 0..60 {
            let lo = format!("{}", rnd(3000));
            let hi = format!("{}", rnd(3000));
            let count = format!("{}", rnd(40) + 1);
            check(v(&["XRANGE", key, &lo, &hi, "COUNT", &count]));
            check(v(&["XREVRANGE", key, &hi, &lo, "COUNT", &count]));
            check(v(&["XREAD", "COUNT", &count, "STREAMS", key, &lo]));
        }
        check(v(&["XRANGE", key, "-", "+"]));
        check(v(&["XREVRANGE", key, "+", "-"]));
        check(v(&["XLEN", key]));
        check(v(&["XINFO", "STREAM", key]));
        check(v(&["XINFO", "STREAM", key, "FULL", "COUNT", "0"]));
        check(v(&["XTRIM", key, "MAXLEN", "=", "333"]));
        check(v(&["XINFO", "STREAM", key]));
        check(v(&["XTRIM", key, "MAXLEN", "~", "100"]));
        check(v(&["XINFO", "STREAM", key]));
        check(v(&["XRANGE", key, "-", "+"]));
        check(v(&["XGROUP", "CREATE", key, "g", "0"]));
        check(v(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "50",
            "STREAMS",
            key,
            ">",
        ]));
        check(v(&[
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "COUNT",
            "20",
            "STREAMS",
            key,
            "0",
        ]));
        check(v(&["XINFO", "GROUPS", key]));
    }
}
