//! The crash-injection harness: a seeded workload run in-process on an
//! [`Executor`] over a [`SimStorage`] disk, crashed at a chosen I/O
//! operation, recovered, and checked against the durability contract of
//! DESIGN.md.
//!
//! Everything is deterministic: the AOF writer runs inline on the executor's
//! thread with a manual clock (`aof::WriterEnv`), snapshots (BGSAVE,
//! BGREWRITEAOF) run to completion before the next command, so the n-th I/O
//! operation is the same one in every run of a (seed, mode) workload.
//!
//! A crash at operation k: every operation from k on fails (the disk is
//! frozen as a process stopped at that instant left it), the workload stops
//! after the command during which that happened, then either `crash(seed)`
//! (power loss: unsynced data and undurable directory entries may vanish)
//! or `kill()` (process kill: the OS keeps what was written).

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use redoubt_persist::aof::{Clock, ManualClock, Policy};
use redoubt_persist::storage::{Fault, SimStorage, Storage};
use redoubt_server::aof::{self, WriterEnv};
use redoubt_server::client::Client;
use redoubt_server::config::{AppendFsync, Config};
use redoubt_server::durability::Volatile;
use redoubt_server::exec::Executor;
use redoubt_server::resp::Reply;
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The persistence configuration a workload runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Always,
    EverySec,
    No,
    /// AOF off; BGSAVEs stand in for save points (those fire on wall-clock
    /// time, which the simulation does not use).
    Rdb,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Always, Mode::EverySec, Mode::No, Mode::Rdb];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Always => "always",
            Mode::EverySec => "everysec",
            Mode::No => "no",
            Mode::Rdb => "rdb",
        }
    }

    pub fn parse(s: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == s)
    }

    pub fn config(self) -> Config {
        let mut cfg = Config::default();
        cfg.save.clear();
        cfg.appendonly = self != Mode::Rdb;
        cfg.appendfsync = match self {
            Mode::Always => AppendFsync::Always,
            Mode::No => AppendFsync::No,
            _ => AppendFsync::EverySec,
        };
        cfg
    }
}

/// Power loss or process kill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Power,
    Kill,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Power => "power",
            Kind::Kill => "kill",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "power" => Some(Kind::Power),
            "kill" => Some(Kind::Kill),
            _ => None,
        }
    }
}

/// One command of a workload, with the simulated time that passes before it.
#[derive(Debug, Clone)]
pub struct Step {
    pub args: Vec<String>,
    pub advance_ms: u64,
}

impl Step {
    fn is_admin(&self) -> bool {
        let c = self.args[0].to_ascii_uppercase();
        c == "BGSAVE" || c == "BGREWRITEAOF" || c == "CONFIG"
    }
}

/// Far in the future (2100-01-01) so wall-clock time never expires a key.
const FAR: u64 = 4_102_444_800_000;

/// A seeded workload over every data type, with transactions, expiries,
/// BGSAVE, BGREWRITEAOF and appendfsync changes.
pub fn workload(seed: u64, mode: Mode, len: usize) -> Vec<Step> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5eed_c4a5);
    let mut out = Vec::with_capacity(len + 8);
    let mut stream_id = 1u64;
    let mut in_multi = 0usize;
    while out.len() < len || in_multi > 0 {
        let advance_ms = match rng.gen_range(0..10) {
            0 => rng.gen_range(500..1500),
            _ => rng.gen_range(0..120),
        };
        let mut args: Vec<String> = if in_multi == 1 {
            in_multi = 0;
            vec!["EXEC".into()]
        } else {
            if in_multi > 1 {
                in_multi -= 1;
            }
            data_command(&mut rng, &mut stream_id, in_multi > 0)
        };
        if in_multi == 0 && args[0] != "EXEC" {
            match rng.gen_range(0..100) {
                0..=3 => {
                    in_multi = rng.gen_range(2..5);
                    args = vec!["MULTI".into()];
                }
                4..=5 => args = vec!["BGSAVE".into()],
                6 if mode == Mode::Rdb => args = vec!["BGSAVE".into()],
                7..=8 if mode != Mode::Rdb => args = vec!["BGREWRITEAOF".into()],
                9 if mode != Mode::Rdb => {
                    let p = ["always", "everysec", "no"][rng.gen_range(0..3)];
                    args = vec![
                        "CONFIG".into(),
                        "SET".into(),
                        "appendfsync".into(),
                        p.into(),
                    ]
                }
                _ => {}
            }
        }
        out.push(Step { args, advance_ms });
    }
    out
}

fn data_command(rng: &mut SmallRng, stream_id: &mut u64, in_multi: bool) -> Vec<String> {
    let s = |x: &str| x.to_string();
    let n = |r: &mut SmallRng, k: u32| r.gen_range(0..k).to_string();
    let key_of = |r: &mut SmallRng| {
        let p = ["s", "c", "l", "h", "t", "z", "x"][r.gen_range(0..7)];
        format!("{p}{}", r.gen_range(0..3))
    };
    let v = format!("v{}", rng.gen::<u16>());
    match rng.gen_range(0..30) {
        0..=2 => vec![s("SET"), format!("s{}", n(rng, 4)), v],
        3 => vec![
            s("SET"),
            format!("s{}", n(rng, 4)),
            v,
            s("PXAT"),
            (FAR + rng.gen_range(0..1000)).to_string(),
        ],
        4 => vec![s("APPEND"), format!("s{}", n(rng, 4)), v],
        5 => vec![s("INCRBY"), format!("c{}", n(rng, 2)), n(rng, 100)],
        6 | 7 => vec![
            s(["RPUSH", "LPUSH"][rng.gen_range(0..2)]),
            format!("l{}", n(rng, 3)),
            v,
            format!("w{}", n(rng, 9)),
        ],
        8 => vec![s("LPOP"), format!("l{}", n(rng, 3))],
        9 => vec![s("LTRIM"), format!("l{}", n(rng, 3)), s("0"), s("6")],
        10 | 11 => vec![
            s("HSET"),
            format!("h{}", n(rng, 3)),
            format!("f{}", n(rng, 8)),
            v,
        ],
        12 => vec![
            s("HDEL"),
            format!("h{}", n(rng, 3)),
            format!("f{}", n(rng, 8)),
        ],
        13 => vec![s("HINCRBY"), format!("h{}", n(rng, 3)), s("n"), n(rng, 9)],
        14 | 15 => vec![
            s("SADD"),
            format!("t{}", n(rng, 3)),
            format!("m{}", n(rng, 12)),
            format!("m{}", n(rng, 12)),
        ],
        16 => vec![
            s("SREM"),
            format!("t{}", n(rng, 3)),
            format!("m{}", n(rng, 12)),
        ],
        17 | 18 => vec![
            s("ZADD"),
            format!("z{}", n(rng, 3)),
            format!("{}.5", rng.gen_range(-50..50)),
            format!("m{}", n(rng, 12)),
        ],
        19 => vec![
            s("ZINCRBY"),
            format!("z{}", n(rng, 3)),
            s("2.25"),
            format!("m{}", n(rng, 12)),
        ],
        20 => vec![
            s("ZREM"),
            format!("z{}", n(rng, 3)),
            format!("m{}", n(rng, 12)),
        ],
        21 | 22 => {
            *stream_id += rng.gen_range(1..4);
            vec![
                s("XADD"),
                format!("x{}", n(rng, 2)),
                format!("{}-1", *stream_id),
                s("f"),
                v,
            ]
        }
        23 => vec![s("XTRIM"), format!("x{}", n(rng, 2)), s("MAXLEN"), s("4")],
        24 => vec![s("DEL"), key_of(rng)],
        25 => vec![
            s("PEXPIREAT"),
            key_of(rng),
            (FAR + rng.gen_range(0..1000)).to_string(),
        ],
        // An expiry in the past: the key goes at once (logged as a DEL).
        26 => vec![s("PEXPIREAT"), key_of(rng), s("1000")],
        27 => vec![s("PERSIST"), key_of(rng)],
        28 if !in_multi => vec![s("SELECT"), n(rng, 2)],
        _ => vec![s("INCR"), format!("c{}", n(rng, 2))],
    }
}

fn bytes_args(args: &[String]) -> Vec<Bytes> {
    args.iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect()
}

fn new_client(ex: &mut Executor) -> Rc<RefCell<Client>> {
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let c = ex.register_client(|id| Client::new(id, "sim".into(), "sim".into(), true, tx));
    c.borrow_mut().authenticated = true;
    c
}

/// Flattens a reply into strings.
fn flat(r: &Reply, out: &mut Vec<String>) {
    match r {
        Reply::Bulk(b) => out.push(String::from_utf8_lossy(b).into_owned()),
        Reply::Array(v) | Reply::Set(v) | Reply::Push(v) | Reply::Multi(v) => {
            v.iter().for_each(|x| flat(x, out))
        }
        Reply::Map(v) => v.iter().for_each(|(a, b)| {
            flat(a, out);
            flat(b, out)
        }),
        other => out.push(format!("{other:?}")),
    }
}

/// A canonical text of the whole dataset (order-independent where the
/// type is unordered), read through commands so it does not depend on the
/// engine's internal layout.
pub fn digest(ex: &mut Executor) -> String {
    let c = new_client(ex);
    let mut out = String::new();
    for db in 0..ex.ks.dbs.len() {
        if ex.ks.dbs[db].is_empty() {
            continue;
        }
        let mut keys: Vec<Vec<u8>> = ex.ks.dbs[db].iter().map(|e| e.key.to_vec()).collect();
        keys.sort();
        ex.execute(
            &mut c.borrow_mut(),
            &bytes_args(&["SELECT".into(), db.to_string()]),
        );
        for k in keys {
            let exp = ex.ks.dbs[db].peek(&k).map(|e| e.expire_at).unwrap_or(0);
            let key = String::from_utf8_lossy(&k).into_owned();
            let run = |ex: &mut Executor, a: &[&str]| {
                let args: Vec<Bytes> = a
                    .iter()
                    .map(|x| Bytes::copy_from_slice(x.as_bytes()))
                    .collect();
                let mut v = Vec::new();
                flat(&ex.execute(&mut c.borrow_mut(), &args).0, &mut v);
                v
            };
            let ty = run(ex, &["TYPE", &key]).join("");
            let mut body = if ty.contains("string") {
                run(ex, &["GET", &key])
            } else if ty.contains("list") {
                run(ex, &["LRANGE", &key, "0", "-1"])
            } else if ty.contains("hash") {
                let v = run(ex, &["HGETALL", &key]);
                let mut pairs: Vec<String> = v.chunks(2).map(|p| p.join("=")).collect();
                pairs.sort();
                pairs
            } else if ty.contains("set") && !ty.contains("zset") {
                let mut v = run(ex, &["SMEMBERS", &key]);
                v.sort();
                v
            } else if ty.contains("zset") {
                run(ex, &["ZRANGE", &key, "0", "-1", "WITHSCORES"])
            } else {
                let mut v = run(ex, &["XRANGE", &key, "-", "+"]);
                v.extend(run(ex, &["XLEN", &key]));
                v
            };
            body.insert(0, ty);
            out.push_str(&format!("{db}|{key}|{exp}|{}\n", body.join(",")));
        }
    }
    out
}

/// The model: the state after each prefix of a workload's data commands,
/// replayed into a fresh executor with no persistence.
pub struct Model {
    /// `states[n]` = digest after the first n steps.
    pub states: Vec<String>,
    /// The reply each step got from the model (admin steps: None).
    pub replies: Vec<Option<Reply>>,
}

impl Model {
    pub fn build(steps: &[Step]) -> Model {
        let mut ex = Executor::new(Mode::Rdb.config());
        ex.durability = Box::new(Volatile);
        let c = new_client(&mut ex);
        let mut states = vec![digest(&mut ex)];
        let mut replies = Vec::with_capacity(steps.len());
        for s in steps {
            if s.is_admin() {
                replies.push(None);
                states.push(states.last().cloned().unwrap_or_default());
                continue;
            }
            let r = ex.execute(&mut c.borrow_mut(), &bytes_args(&s.args)).0;
            replies.push(Some(r));
            states.push(digest(&mut ex));
        }
        Model { states, replies }
    }
}

/// Where and how to crash.
#[derive(Debug, Clone, Copy)]
pub struct CrashAt {
    pub k: u64,
    pub kind: Kind,
    /// Seed of `SimStorage::crash`'s choices.
    pub disk_seed: u64,
}

/// What one run did before it stopped.
#[derive(Debug, Default)]
pub struct RunResult {
    /// Steps executed (in memory) before the process stopped.
    pub executed: usize,
    /// I/O operations performed.
    pub ops: u64,
    /// Whether the injected crash point was reached.
    pub crashed: bool,
    /// Prefix length (in steps) that must survive a power loss / a kill.
    pub required_power: usize,
    pub required_kill: usize,
    /// RDB mode: prefix lengths whose snapshot may be what is on disk
    /// (the last completed one, and one in flight at the crash).
    pub snapshots: Vec<usize>,
    /// Harness-level problem found during the run (not a recovery check).
    pub problem: Option<String>,
}

fn env() -> (WriterEnv, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    (
        WriterEnv {
            clock: Some(clock.clone()),
            inline: true,
            exit_on_fatal: false,
        },
        clock,
    )
}

/// Starts an executor on `disk` the way the server does.
pub fn boot(mode: Mode, disk: &SimStorage) -> Result<(Executor, Arc<ManualClock>), String> {
    let mut ex = Executor::new(mode.config());
    ex.save.storage = Arc::new(disk.clone());
    let (env, clock) = env();
    aof::startup_with(&mut ex, Arc::new(disk.clone()), env)?;
    Ok((ex, clock))
}

fn policy_of(args: &[String]) -> Option<Policy> {
    if args.len() == 4 && args[0] == "CONFIG" {
        return match args[3].as_str() {
            "always" => Some(Policy::Always),
            "everysec" => Some(Policy::EverySec),
            _ => Some(Policy::No),
        };
    }
    None
}

/// Runs a workload on `disk`, crashing as `crash` says (None: no crash).
pub fn run(
    mode: Mode,
    steps: &[Step],
    model: &Model,
    disk: &SimStorage,
    crash: Option<CrashAt>,
) -> RunResult {
    run_keep(mode, steps, model, disk, crash).0
}

/// [`run`], handing back the executor (when it started).
pub fn run_keep(
    mode: Mode,
    steps: &[Step],
    model: &Model,
    disk: &SimStorage,
    crash: Option<CrashAt>,
) -> (RunResult, Option<Executor>) {
    let mut res = RunResult::default();
    if let Some(c) = crash {
        disk.fail_from(c.k, Fault::Io);
    }
    let fired = |d: &SimStorage| crash.is_some_and(|c| d.ops() > c.k);
    let (mut ex, clock) = match boot(mode, disk) {
        Ok(x) => x,
        Err(e) => {
            res.ops = disk.ops();
            res.crashed = fired(disk);
            if !res.crashed {
                res.problem = Some(format!("start-up failed with no fault: {e}"));
            }
            return (res, None);
        }
    };
    let wm = ex
        .durability
        .watermark()
        .expect("the AOF sink has a watermark");
    let c = new_client(&mut ex);
    let mut policy = match mode {
        Mode::Always => Policy::Always,
        Mode::No => Policy::No,
        _ => Policy::EverySec,
    };
    // (lsn, time, policy) of each acknowledged reply, with its step index.
    let mut acks: Vec<(usize, u64, u64, Policy)> = Vec::new();
    let mut last_snapshot = 0usize;
    // Last simulated time at which `appendfsync no` was in force (no
    // fsyncs then: an everysec promise only holds across time without it).
    let mut last_no: Option<u64> = (policy == Policy::No).then_some(0);
    for (i, s) in steps.iter().enumerate() {
        clock.advance(s.advance_ms);
        if let Some(a) = aof::get(&mut ex) {
            a.tick();
        }
        if fired(disk) {
            break;
        }
        let (reply, lsn) = ex.execute(&mut c.borrow_mut(), &bytes_args(&s.args));
        ex.durability.flush();
        let mut snap_ok = true;
        if s.is_admin() && !s.args[0].eq_ignore_ascii_case("CONFIG") {
            while ex.snapshot_tick(Duration::from_millis(5)) {
                std::thread::yield_now();
            }
            snap_ok = if s.args[0] == "BGSAVE" {
                ex.save.last_bgsave_ok
            } else {
                aof::get_ref(&ex).is_some_and(|a| a.rewrite.last_ok)
            };
        }
        res.executed = i + 1;
        if let Some(p) = policy_of(&s.args) {
            if policy == Policy::No {
                last_no = Some(clock.now_ms());
            }
            policy = p;
        }
        // A reply is acknowledged once the watermark covers it, even in the
        // step the process died in: the client may have it by then.
        if *wm.borrow() >= lsn {
            acks.push((i + 1, lsn, clock.now_ms(), policy));
        }
        if fired(disk) {
            if mode == Mode::Rdb && s.args[0] == "BGSAVE" {
                res.snapshots.push(i + 1);
            }
            res.crashed = true;
            break;
        }
        // No fault yet: the run must match the model exactly.
        if let Some(Some(want)) = model.replies.get(i) {
            if &reply != want {
                res.problem = Some(format!(
                    "step {i} {:?}: reply {reply:?}, model {want:?} (nondeterministic run?)",
                    s.args
                ));
                return (res, None);
            }
        } else if !snap_ok {
            res.problem = Some(format!("step {i} {:?} failed with no fault", s.args));
            return (res, None);
        }
        if mode == Mode::Rdb && s.args[0] == "BGSAVE" {
            last_snapshot = i + 1;
        }
    }
    res.ops = disk.ops();
    let now = clock.now_ms();
    if policy == Policy::No {
        last_no = Some(now);
    }
    if mode == Mode::Rdb {
        res.snapshots.insert(0, last_snapshot);
    } else {
        for &(n, _lsn, t, p) in &acks {
            res.required_kill = res.required_kill.max(n);
            let must = match p {
                Policy::Always => true,
                // Written more than 2 s before the crash, with fsyncs
                // running (not `no`) all that time.
                Policy::EverySec => now.saturating_sub(t) > 2000 && last_no.is_none_or(|n| n < t),
                Policy::No => false,
            };
            if must {
                res.required_power = res.required_power.max(n);
            }
        }
    }
    (res, Some(ex))
}

/// A contract violation, with what reproduces it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub mode: Mode,
    pub kind: Kind,
    pub k: u64,
    pub what: String,
}

/// `Violation::k` of a finding that is not a crash point (fault injection,
/// corruption): reproduced by its phase.
pub const NOT_A_CRASH: u64 = u64::MAX;

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.k == NOT_A_CRASH {
            return write!(
                f,
                "{}\n  reproduce: REDOUBT_CRASH_PHASES=faults,corruption cargo test --release -p redoubt-tests --test crash_injection crash_injection_suite -- --nocapture",
                self.what
            );
        }
        write!(
            f,
            "{} (seed {}, mode {}, {} at op {})\n  reproduce: REDOUBT_CRASH_SEED={} REDOUBT_CRASH_K={} REDOUBT_CRASH_MODE={} REDOUBT_CRASH_KIND={} cargo test --release -p redoubt-tests --test crash_injection crash_injection_suite -- --nocapture",
            self.what,
            self.seed,
            self.mode.name(),
            self.kind.name(),
            self.k,
            self.seed,
            self.k,
            self.mode.name(),
            self.kind.name()
        )
    }
}

/// Crashes one run at `at`, recovers and checks the contract. Returns
/// Ok(false) when the crash point was past the end of the run.
pub fn crash_and_check(
    seed: u64,
    mode: Mode,
    steps: &[Step],
    model: &Model,
    at: CrashAt,
) -> Result<bool, Violation> {
    let v = |what: String| Violation {
        seed,
        mode,
        kind: at.kind,
        k: at.k,
        what,
    };
    let disk = SimStorage::new();
    let r = run(mode, steps, model, &disk, Some(at));
    if let Some(p) = r.problem {
        return Err(v(p));
    }
    if !r.crashed {
        return Ok(false);
    }
    match at.kind {
        Kind::Power => disk.crash(at.disk_seed),
        Kind::Kill => disk.kill(),
    }
    let (mut ex, _clock) =
        boot(mode, &disk).map_err(|e| v(format!("the server does not start: {e}")))?;
    let got = digest(&mut ex);
    let prefix: Vec<usize> = (0..=r.executed)
        .filter(|&n| model.states[n] == got)
        .collect();
    if mode == Mode::Rdb {
        if !r.snapshots.iter().any(|n| prefix.contains(n)) {
            return Err(v(format!(
                "recovered state is not the last completed snapshot (after step {:?}); it matches prefixes {prefix:?} of {} steps",
                r.snapshots, r.executed
            )));
        }
    } else {
        let required = match at.kind {
            Kind::Power => r.required_power,
            Kind::Kill => r.required_kill,
        };
        if prefix.is_empty() {
            return Err(v(format!(
                "recovered state is no prefix of the {} executed steps:\n{}",
                r.executed,
                got.lines().take(12).collect::<Vec<_>>().join("\n")
            )));
        }
        if !prefix.iter().any(|&n| n >= required) {
            return Err(v(format!(
                "acknowledged writes lost: recovered the first {} steps, {required} were acknowledged durable",
                prefix.last().copied().unwrap_or(0)
            )));
        }
    }
    // A later save or rewrite succeeds.
    let later = if mode == Mode::Rdb {
        ex.save_now().map(|_| ())
    } else {
        aof::rewrite_now(&mut ex)
    };
    later.map_err(|e| v(format!("save/rewrite after recovery failed: {e}")))?;
    Ok(true)
}

/// Total I/O operations of an uncrashed run (the crash points to sweep).
pub fn total_ops(mode: Mode, steps: &[Step], model: &Model) -> Result<u64, String> {
    let disk = SimStorage::new();
    let r = run(mode, steps, model, &disk, None);
    match r.problem {
        Some(p) => Err(p),
        None => Ok(r.ops),
    }
}

/// A deterministic per-point disk seed.
pub fn disk_seed(seed: u64, k: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ k.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

/// Reads the storage (for corruption tests).
pub fn read(disk: &SimStorage, p: &str) -> Option<Vec<u8>> {
    disk.read_all(std::path::Path::new(p)).ok()
}
