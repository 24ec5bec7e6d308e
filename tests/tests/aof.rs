//! AOF end-to-end: cross-compatibility with Redis 7.0.15 in both directions,
//! RDB-preamble detection, and kill -9 durability of the real binary in each
//! fsync mode. Tests skip (saying so) when a binary they need is missing.

use redoubt_tests::process::{check_acked_prefix, WriteLoad};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn redoubt_bin() -> Option<PathBuf> {
    let mut cands = Vec::new();
    if let Ok(p) = std::env::var("REDOUBT_SERVER") {
        cands.push(PathBuf::from(p));
    }
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        cands.push(Path::new(&t).join("debug/redoubt-server"));
    }
    cands.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/redoubt-server"));
    cands.into_iter().find(|p| p.exists())
}

fn on_path(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

macro_rules! need {
    ($cond:expr, $why:expr) => {
        if !$cond {
            eprintln!("skipped: {}", $why);
            return;
        }
    };
}

fn port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A fresh directory for one test, removed when the test ends (after the
/// servers in it, which are declared after it and so dropped first).
fn tmpdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("redoubt-aof-{tag}-"))
        .tempdir()
        .unwrap()
}

struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(bin: &Path, dir: &Path, extra: &[&str]) -> Server {
        let port = port();
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            dir.display().to_string(),
            "--appendonly".into(),
            "yes".into(),
            "--save".into(),
            "".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = std::fs::File::create(dir.join(format!(
            "{}.log",
            bin.file_name().unwrap().to_string_lossy()
        )))
        .unwrap();
        let child = Command::new(bin)
            .args(&args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let s = Server { child, port };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(mut c) = s.conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return s;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "server {} did not start in {}",
            bin.display(),
            dir.display()
        );
    }

    fn conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?.get_connection()
    }

    fn shutdown(mut self) {
        if let Ok(mut c) = self.conn() {
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut c);
        }
        let _ = self.child.wait();
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small dataset using commands both servers have, over several dbs.
fn write_dataset(c: &mut redis::Connection) {
    for db in [0, 3] {
        let _: () = redis::cmd("SELECT").arg(db).query(c).unwrap();
        for i in 0..50 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg(format!("v{i}-{db}\r\n\x00"))
                .query(c)
                .unwrap();
        }
        let _: i64 = redis::cmd("INCR").arg("counter").query(c).unwrap();
        let _: () = redis::cmd("SET")
            .arg("ttl")
            .arg("x")
            .arg("EX")
            .arg(1000)
            .query(c)
            .unwrap();
        let _: i64 = redis::cmd("DEL").arg("k7").query(c).unwrap();
        let _: Vec<redis::Value> = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg("tx")
            .arg("1")
            .cmd("INCR")
            .arg("tx")
            .query(c)
            .unwrap();
    }
}

fn dump(c: &mut redis::Connection) -> Vec<(i64, String, Option<Vec<u8>>, bool)> {
    let mut out = Vec::new();
    for db in [0, 3] {
        let _: () = redis::cmd("SELECT").arg(db).query(c).unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).unwrap();
        keys.sort();
        for k in keys {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query(c).unwrap();
            let ttl: i64 = redis::cmd("TTL").arg(&k).query(c).unwrap();
            out.push((db, k, v, ttl > 0));
        }
    }
    out
}

#[test]
fn redis_loads_a_directory_redoubt_wrote() {
    let Some(bin) = redoubt_bin() else {
        eprintln!("skipped: redoubt-server not built");
        return;
    };
    need!(on_path("redis-server"), "redis-server not on PATH");
    let tmp = tmpdir("r2r");
    let d = tmp.path();
    let s = Server::start(&bin, d, &["--aof-use-rdb-preamble", "no"]);
    let mut c = s.conn().unwrap();
    write_dataset(&mut c);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    let _: () = redis::cmd("SET")
        .arg("after-rewrite")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let want = dump(&mut c);
    drop(c);
    s.shutdown();
    let r = Server::start(Path::new("redis-server"), d, &[]);
    let got = dump(&mut r.conn().unwrap());
    r.shutdown();
    assert_eq!(got, want);
    assert!(want.len() > 90);
}

#[test]
fn redoubt_loads_a_directory_redis_wrote() {
    let Some(bin) = redoubt_bin() else {
        eprintln!("skipped: redoubt-server not built");
        return;
    };
    need!(on_path("redis-server"), "redis-server not on PATH");
    let tmp = tmpdir("r2d");
    let d = tmp.path();
    let r = Server::start(
        Path::new("redis-server"),
        d,
        &["--aof-use-rdb-preamble", "no"],
    );
    let mut c = r.conn().unwrap();
    write_dataset(&mut c);
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _: () = redis::cmd("SET")
        .arg("after-rewrite")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let want = dump(&mut c);
    drop(c);
    r.shutdown();
    let s = Server::start(&bin, d, &[]);
    let got = dump(&mut s.conn().unwrap());
    s.shutdown();
    assert_eq!(got, want);
}

#[test]
fn rdb_preamble_base_is_detected() {
    need!(on_path("redis-server"), "redis-server not on PATH");
    use redoubt_persist::aof::{load_dir, AofDir, LoadError, LoadOptions, Replay};
    let tmp = tmpdir("pre");
    let d = tmp.path();
    let r = Server::start(
        Path::new("redis-server"),
        d,
        &["--aof-use-rdb-preamble", "yes"],
    );
    let mut c = r.conn().unwrap();
    let _: () = redis::cmd("SET").arg("a").arg("1").query(&mut c).unwrap();
    drop(c);
    r.shutdown();
    struct Nop;
    impl Replay for Nop {
        fn command(&mut self, _: Vec<Vec<u8>>) -> Result<(), String> {
            Ok(())
        }
        fn transaction(&mut self, _: Vec<Vec<Vec<u8>>>) -> Result<(), String> {
            Ok(())
        }
    }
    let dir = AofDir::new(
        std::sync::Arc::new(redoubt_persist::storage::FileStorage),
        d,
        "appendonlydir",
        "appendonly.aof",
    );
    let m = dir.load_manifest().unwrap().unwrap();
    assert!(m.base.as_ref().unwrap().name.ends_with(".base.rdb"));
    let e = load_dir(
        &dir,
        &m,
        LoadOptions {
            load_truncated: true,
        },
        None,
        &mut Nop,
    )
    .unwrap_err();
    assert!(matches!(e, LoadError::NoRdbLoader { .. }), "{e}");
    // With a plug-in, the RDB part goes to it and the incr is read after.
    // The real RDB decoder reads ahead; it reports the image length.
    let mut called = false;
    let mut ks = redoubt_persist::Keyspace::new(16);
    let mut plug = |r: &mut dyn std::io::Read, _: &str| -> Result<u64, String> {
        called = true;
        let opts = redoubt_persist::rdb::LoadOptions::new(0);
        let stats = redoubt_persist::rdb::load_keyspace(r, None, &mut ks, &opts)
            .map_err(|e| e.to_string())?;
        Ok(stats.bytes_read)
    };
    load_dir(
        &dir,
        &m,
        LoadOptions {
            load_truncated: true,
        },
        Some(&mut plug),
        &mut Nop,
    )
    .unwrap();
    assert!(called);
    // Redis wrote its base at start-up, when the dataset was empty.
    assert_eq!(ks.total_keys(), 0);
}

/// kill -9 under a write workload: every acknowledged write is back after
/// restart, and what came back is a prefix per client.
fn kill9(mode: &str) {
    let Some(bin) = redoubt_bin() else {
        eprintln!("skipped: redoubt-server not built");
        return;
    };
    let tmp = tmpdir(&format!("k9-{mode}"));
    let d = tmp.path();
    let s = Server::start(&bin, d, &["--appendfsync", mode]);
    let load = WriteLoad::start(s.port, 4, "t");
    std::thread::sleep(Duration::from_millis(800));
    s.kill9();
    let acked = load.stop();
    for (t, &n) in acked.iter().enumerate() {
        assert!(n > 0, "{mode}: client {t} got nothing acknowledged");
    }
    let s = Server::start(&bin, d, &["--appendfsync", mode]);
    let mut c = s.conn().unwrap();
    check_acked_prefix(&mut c, "t", &acked).unwrap_or_else(|e| panic!("{mode}: {e}"));
    drop(c);
    s.shutdown();
}

#[test]
fn kill9_always() {
    kill9("always");
}

#[test]
fn kill9_everysec() {
    kill9("everysec");
}

#[test]
fn kill9_no() {
    kill9("no");
}

#[test]
fn runtime_switch_on_then_loadaof_and_restart() {
    let Some(bin) = redoubt_bin() else {
        eprintln!("skipped: redoubt-server not built");
        return;
    };
    let tmp = tmpdir("switch");
    let d = tmp.path();
    let s = Server::start(
        &bin,
        d,
        &["--appendonly", "no", "--enable-debug-command", "yes"],
    );
    let mut c = s.conn().unwrap();
    let _: () = redis::cmd("SET")
        .arg("before")
        .arg("1")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut c)
        .unwrap();
    // The base is written in the background, as Redis does.
    wait_rewrite_done(&mut c);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("2")
        .query(&mut c)
        .unwrap();
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(
        info.contains("aof_enabled:1") && info.contains("aof_last_write_status:ok"),
        "{info}"
    );
    let mut names: Vec<String> = std::fs::read_dir(d.join("appendonlydir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "appendonly.aof.1.base.rdb",
            "appendonly.aof.1.incr.aof",
            "appendonly.aof.manifest"
        ]
    );
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut c).unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 2);
    drop(c);
    s.shutdown();
    let s = Server::start(&bin, d, &[]);
    let mut c = s.conn().unwrap();
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg("before")
        .arg("after")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, [Some("1".to_string()), Some("2".to_string())]);
    drop(c);
    s.shutdown();
}

fn info_field(c: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .to_string()
}

fn wait_rewrite_done(c: &mut redis::Connection) {
    let t = Instant::now();
    while info_field(c, "aof_rewrite_in_progress") != "0"
        || info_field(c, "aof_rewrite_scheduled") != "0"
    {
        assert!(t.elapsed() < Duration::from_secs(30), "rewrite never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// CONFIG SET appendonly yes answers at once and the server keeps serving
/// while the first base is written; writes made meanwhile survive a kill -9
/// after the switch completed.
#[test]
fn runtime_switch_on_is_background_and_loses_no_write() {
    let Some(bin) = redoubt_bin() else {
        eprintln!("skipped: redoubt-server not built");
        return;
    };
    let tmp = tmpdir("switch-bg");
    let d = tmp.path();
    let s = Server::start(
        &bin,
        d,
        &["--appendonly", "no", "--enable-debug-command", "yes"],
    );
    let mut c = s.conn().unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(200_000)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("yes")
        .query(&mut c)
        .unwrap();
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    let mut during = 0;
    let mut saw_in_progress = false;
    loop {
        let busy = info_field(&mut c, "aof_rewrite_in_progress") == "1";
        saw_in_progress |= busy;
        if !busy && info_field(&mut c, "aof_rewrite_scheduled") == "0" {
            break;
        }
        for _ in 0..50 {
            during += 1;
            let _: () = redis::cmd("SET")
                .arg(format!("during:{during}"))
                .arg(during)
                .query(&mut c)
                .unwrap();
            let _: i64 = redis::cmd("INCR").arg("counter").query(&mut c).unwrap();
        }
        assert!(during < 5_000_000, "rewrite never ended");
    }
    assert!(saw_in_progress, "the switch did not run in the background");
    assert_eq!(info_field(&mut c, "aof_last_bgrewrite_status"), "ok");
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut c)
        .unwrap();
    drop(c);
    s.kill9();
    let s = Server::start(&bin, d, &[]);
    let mut c = s.conn().unwrap();
    let n: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(n, 200_000 + during + 2);
    let counter: i64 = redis::cmd("GET").arg("counter").query(&mut c).unwrap();
    assert_eq!(counter, during);
    let v: i64 = redis::cmd("GET")
        .arg(format!("during:{during}"))
        .query(&mut c)
        .unwrap();
    assert_eq!(v, during);
    drop(c);
    s.shutdown();
}

#[test]
fn legacy_single_file_is_upgraded() {
    let Some(bin) = redoubt_bin() else {
        eprintln!("skipped: redoubt-server not built");
        return;
    };
    let tmp = tmpdir("legacy");
    let d = tmp.path();
    let mut aof = Vec::new();
    redoubt_persist::aof::encode_command(&mut aof, &["SELECT", "0"]);
    redoubt_persist::aof::encode_command(&mut aof, &["SET", "old", "style"]);
    aof.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$4\r\ntorn"); // a torn tail, truncated on load
    std::fs::write(d.join("appendonly.aof"), &aof).unwrap();
    let s = Server::start(&bin, d, &[]);
    let mut c = s.conn().unwrap();
    let v: Option<String> = redis::cmd("GET").arg("old").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("style"));
    drop(c);
    s.shutdown();
    assert!(!d.join("appendonly.aof").exists());
    let m = std::fs::read_to_string(d.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert_eq!(
        m,
        "file appendonly.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
    );
}
