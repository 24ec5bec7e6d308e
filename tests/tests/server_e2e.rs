//! End-to-end tests: the real `redoubt-server` binary driven over TCP by the
//! `redis` crate, a raw RESP client and `redis-cli`. Where an exact reply
//! matters and real Redis is installed, the same commands are also sent to
//! Redis 7 and the replies compared.

use redoubt_tests::resp::{encode_command, RawClient, Resp};
use redoubt_tests::{redis_cli_bin, run_redoubt_expecting_exit, wait_until, Server};
use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

fn ok() -> Resp {
    Resp::Simple(b"OK".to_vec())
}

fn bulk(s: &str) -> Resp {
    Resp::Bulk(s.as_bytes().to_vec())
}

fn err(s: &str) -> Resp {
    Resp::Error(s.as_bytes().to_vec())
}

/// Runs the same command lines on Redoubt and (when installed) on Redis 7
/// with the same extra arguments; asserts identical replies and returns
/// Redoubt's.
fn same_as_redis(extra: &[&str], lines: &[&[&str]]) -> Vec<Resp> {
    let redoubt = Server::redoubt_with(extra);
    let mut c = redoubt.raw();
    let ours: Vec<Resp> = lines.iter().map(|l| c.cmd(l).expect("reply")).collect();
    if let Some(redis) = Server::redis_with(extra) {
        let mut r = redis.raw();
        for (l, mine) in lines.iter().zip(&ours) {
            let theirs = r.cmd(l).expect("redis reply");
            assert!(
                mine == &theirs,
                "reply to {l:?} differs from Redis 7\n  redoubt: {mine}\n  redis 7: {theirs}"
            );
        }
    }
    ours
}

/// Sends raw bytes on a fresh connection and returns everything the server
/// sends back until it closes (or 5 s pass).
fn raw_exchange(port: u16, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (out, closed)
}

fn assert_alive(s: &Server) {
    let mut c = s.raw();
    assert_eq!(c.cmd(&["PING"]).unwrap(), Resp::Simple(b"PONG".to_vec()));
}

// ---- protocol ---------------------------------------------------------------

#[test]
fn pipelining_keeps_order() {
    let s = Server::redoubt();
    // The redis crate's pipeline.
    let mut con = s.conn();
    let mut p = redis::pipe();
    for i in 0..1000 {
        p.cmd("INCR")
            .arg("ctr")
            .cmd("SET")
            .arg(format!("k{i}"))
            .arg(i);
    }
    let replies: Vec<redis::Value> = p.query(&mut con).expect("pipeline");
    assert_eq!(replies.len(), 2000);
    assert_eq!(replies[1998], redis::Value::Int(1000));
    // 10 000 commands in one write, read back in order.
    let mut raw = s.raw();
    let mut batch = Vec::new();
    for i in 0..10_000 {
        batch.extend(encode_command(&["ECHO", &i.to_string()]));
    }
    raw.send_raw(&batch).unwrap();
    for i in 0..10_000 {
        assert_eq!(raw.read().unwrap(), bulk(&i.to_string()));
    }
}

#[test]
fn inline_commands() {
    let s = Server::redoubt();
    let mut c = s.raw();
    c.send_raw(
        b"SET greeting \"hello world\"\r\nGET greeting\r\nPING\nEXISTS greeting 'x'\r\n\r\n",
    )
    .unwrap();
    let replies: Vec<Resp> = (0..4).map(|_| c.read().unwrap()).collect();
    assert_eq!(
        replies,
        vec![
            ok(),
            bulk("hello world"),
            Resp::Simple(b"PONG".to_vec()),
            Resp::Int(1)
        ]
    );
}

#[test]
fn protocol_errors_reply_and_close() {
    let s = Server::redoubt();
    let redis = Server::redis();
    let cases: &[(&[u8], &str)] = &[
        (
            b"*1\r\n$x\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*abc\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nfoo\r\n",
            "-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
        (
            b"SET \"a b\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$600000000\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (input, want) in cases {
        let (out, closed) = raw_exchange(s.port, input);
        assert_eq!(
            String::from_utf8_lossy(&out),
            *want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(closed, "connection must close after {want:?}");
        if let Some(r) = &redis {
            let (theirs, _) = raw_exchange(r.port, input);
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&theirs),
                "differs from Redis for {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
    // A line longer than 64 KiB without a newline.
    let long = vec![b'a'; 70 * 1024];
    let (out, closed) = raw_exchange(s.port, &long);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR Protocol error: too big inline request\r\n"
    );
    assert!(closed);
    assert_alive(&s);
}

#[test]
fn huge_claimed_lengths_do_not_allocate() {
    let s = Server::redoubt();
    let before = s.rss_bytes().expect("rss");
    let mut conns = Vec::new();
    for _ in 0..10 {
        // A multibulk claiming 2^31-1 arguments and a bulk claiming 500 MB,
        // neither sent.
        let mut a = s.raw();
        a.send_raw(b"*2147483647\r\n$3\r\nfoo\r\n").unwrap();
        let mut b = s.raw();
        b.send_raw(b"*2\r\n$3\r\nSET\r\n$500000000\r\nabc").unwrap();
        conns.push(a);
        conns.push(b);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_alive(&s);
    let after = s.rss_bytes().expect("rss");
    assert!(
        after < before + 64 * 1024 * 1024,
        "RSS grew from {before} to {after} bytes for claimed-but-unsent lengths"
    );
    drop(conns);
    assert_alive(&s);
}

#[test]
fn query_buffer_limit_closes_the_client() {
    let s = Server::redoubt();
    let mut admin = s.raw();
    assert_eq!(
        admin
            .cmd(&["CONFIG", "SET", "client-query-buffer-limit", "1mb"])
            .unwrap(),
        ok()
    );
    let mut c = s.raw();
    // An inline "command" that never ends is cut at 64 KiB anyway; a bulk
    // argument that keeps growing hits the query buffer limit.
    c.send_raw(b"*2\r\n$4\r\nECHO\r\n$3000000\r\n").unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < 3_000_000 {
        if c.send_raw(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(
        c.is_closed(),
        "client over the query buffer limit not closed"
    );
    assert_alive(&s);
    // Under the limit, a big argument is fine.
    let big = "y".repeat(500_000);
    let mut d = s.raw();
    assert_eq!(d.cmd(&["ECHO", &big]).unwrap(), bulk(&big));
}

// ---- limits, auth, config ---------------------------------------------------

#[test]
fn maxclients_rejects_extra_clients() {
    let s = Server::redoubt_with(&["--maxclients", "2"]);
    let mut a = s.raw();
    let mut b = s.raw();
    assert_eq!(a.cmd(&["PING"]).unwrap(), Resp::Simple(b"PONG".to_vec()));
    assert_eq!(b.cmd(&["PING"]).unwrap(), Resp::Simple(b"PONG".to_vec()));
    let (out, closed) = raw_exchange(s.port, b"PING\r\n");
    assert_eq!(
        String::from_utf8_lossy(&out),
        "-ERR max number of clients reached\r\n"
    );
    assert!(closed);
    drop(b);
    // A slot frees up once a client leaves.
    assert!(wait_until(Duration::from_secs(5), || {
        let (out, _) = raw_exchange(s.port, b"PING\r\nQUIT\r\n");
        out.starts_with(b"+PONG")
    }));
}

#[test]
fn requirepass_auth_and_hello_auth() {
    let extra = ["--requirepass", "s3cret"];
    let replies = same_as_redis(
        &extra,
        &[
            &["GET", "k"],
            &["HELLO", "3"],
            &["AUTH", "wrong"],
            &["AUTH", "default", "wrong"],
            &["AUTH", "a", "b", "c"],
            &["PING"],
            &["AUTH", "s3cret"],
            &["SET", "k", "v"],
            &["GET", "k"],
        ],
    );
    assert_eq!(replies[0], err("NOAUTH Authentication required."));
    assert!(replies[1].text().unwrap_or_default().starts_with("NOAUTH"));
    assert_eq!(
        replies[2],
        err("WRONGPASS invalid username-password pair or user is disabled.")
    );
    assert_eq!(replies[6], ok());
    assert_eq!(replies[8], bulk("v"));

    // HELLO AUTH authenticates and switches protocol in one go.
    let s = Server::redoubt_with(&extra);
    let mut c = s.raw();
    let r = c.cmd(&["HELLO", "3", "AUTH", "default", "s3cret"]).unwrap();
    match r {
        Resp::Map(m) => assert!(m.contains(&(bulk("proto"), Resp::Int(3)))),
        other => panic!("HELLO 3 AUTH: {other}"),
    }
    assert_eq!(c.cmd(&["GET", "missing"]).unwrap(), Resp::Null);
    let mut d = s.raw();
    assert!(d
        .cmd(&["HELLO", "3", "AUTH", "default", "nope"])
        .unwrap()
        .is_error());
    assert_eq!(
        d.cmd(&["GET", "k"]).unwrap(),
        err("NOAUTH Authentication required.")
    );
}

#[test]
fn config_get_set_and_protected_params() {
    let replies = same_as_redis(
        &[],
        &[
            &["CONFIG", "SET", "dir", "/tmp"],
            &["CONFIG", "SET", "databases", "4"],
            &["CONFIG", "SET", "maxmemory", "10mb"],
            &["CONFIG", "GET", "maxmemory"],
            &["CONFIG", "SET", "hz", "abc"],
            &["CONFIG", "SET", "nosuchparam", "1"],
            &["CONFIG", "GET", "nosuchparam"],
            &["CONFIG", "SET", "appendfsync", "sometimes"],
            &["CONFIG", "SET", "maxmemory-policy", "sometimes"],
            &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
            &["CONFIG", "GET", "maxmemory-policy"],
            &["CONFIG", "GET", "save"],
            &["CONFIG", "GET", "hash-max-ziplist-entries"],
            &["CONFIG", "SET", "hash-max-ziplist-entries", "abc"],
            &["CONFIG", "SET", "hz", "abc", "hz", "5"],
            &["CONFIG", "SET", "hz", "5", "databases", "2"],
            &["CONFIG", "SET", "hz", "0"],
            &["CONFIG", "GET", "hz"],
            &["CONFIG", "SET", "hz", "501"],
            &["CONFIG", "GET", "hz"],
            &["CONFIG", "SET", "hz", "10", "maxmemory"],
        ],
    );
    assert_eq!(
        replies[0],
        err("ERR CONFIG SET failed (possibly related to argument 'dir') - can't set protected config")
    );
    assert_eq!(
        replies[1],
        err("ERR CONFIG SET failed (possibly related to argument 'databases') - can't set immutable config")
    );
    assert_eq!(replies[2], ok());
    assert_eq!(
        replies[3],
        Resp::Array(vec![bulk("maxmemory"), bulk("10485760")])
    );
    let s = Server::redoubt_with(&["--enable-protected-configs", "yes"]);
    let mut c = s.raw();
    let dir = s.dir().to_string_lossy().into_owned();
    assert_eq!(c.cmd(&["CONFIG", "SET", "dir", &dir]).unwrap(), ok());
    match c.cmd(&["CONFIG", "GET", "*"]).unwrap() {
        Resp::Array(v) => {
            assert!(v.len() > 40 && v.len() % 2 == 0);
            let port = v
                .chunks(2)
                .find(|p| p[0] == bulk("port"))
                .map(|p| p[1].clone());
            assert_eq!(port, Some(bulk(&s.port.to_string())));
        }
        other => panic!("CONFIG GET *: {other}"),
    }
}

#[test]
fn unknown_directive_in_config_file_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("redoubt.conf");
    std::fs::write(&conf, "port 0\n# comment\nbogus-directive yes\nsave \"\"\n").unwrap();
    let conf_s = conf.to_string_lossy().into_owned();
    let (status, out) = run_redoubt_expecting_exit(&[&conf_s], Duration::from_secs(10));
    assert!(!status.success(), "exit status {status}; output:\n{out}");
    assert!(out.contains("FATAL CONFIG FILE ERROR"), "{out}");
    assert!(out.contains(&conf_s), "file name missing:\n{out}");
    assert!(out.contains("line 3"), "line number missing:\n{out}");
    assert!(
        out.contains("bogus-directive yes"),
        "directive missing:\n{out}"
    );
    assert!(
        out.contains("Bad directive or wrong number of arguments"),
        "{out}"
    );
    // Same on the command line.
    let (status, out) =
        run_redoubt_expecting_exit(&["--port", "0", "--nosuch", "1"], Duration::from_secs(10));
    assert!(!status.success());
    assert!(out.contains("nosuch"), "{out}");
}

#[test]
fn debug_needs_enable_debug_command() {
    let replies = same_as_redis(&[], &[&["DEBUG", "SLEEP", "0"]]);
    assert!(replies[0]
        .text()
        .unwrap_or_default()
        .starts_with("ERR DEBUG command not allowed."));
    let s = Server::redoubt_with(&["--enable-debug-command", "yes"]);
    let mut c = s.raw();
    assert_eq!(c.cmd(&["DEBUG", "POPULATE", "100"]).unwrap(), ok());
    assert_eq!(c.cmd(&["DBSIZE"]).unwrap(), Resp::Int(100));
}

#[test]
fn debug_object_reports_the_list_nodes() {
    let s = Server::redoubt_with(&["--enable-debug-command", "yes"]);
    let mut c = s.raw();
    let items: Vec<String> = (0..300).map(|i| format!("item{i}")).collect();
    let mut args = vec!["RPUSH", "l"];
    args.extend(items.iter().map(String::as_str));
    assert_eq!(c.cmd(&args).unwrap(), Resp::Int(300));
    let out = c.cmd(&["DEBUG", "OBJECT", "l"]).unwrap().text().unwrap();
    let field = |name: &str| -> f64 {
        let v = out
            .split(' ')
            .find_map(|f| f.strip_prefix(name))
            .unwrap_or_else(|| panic!("{name} missing in {out}"));
        v.parse().unwrap()
    };
    let (nodes, avg) = (field("ql_nodes:"), field("ql_avg_node:"));
    // 300 elements do not fit one node; the average is over the real nodes.
    assert!(nodes >= 2.0, "{out}");
    assert!((nodes * avg - 300.0).abs() < nodes * 0.01, "{out}");
}

#[test]
fn shutdown_stops_the_process() {
    let mut s = Server::redoubt();
    let mut c = s.raw();
    c.send(&["SHUTDOWN", "NOSAVE"]).unwrap();
    assert!(c.is_closed(), "SHUTDOWN must close the connection");
    let status = s
        .wait_exit(Duration::from_secs(10))
        .expect("process exits after SHUTDOWN");
    assert!(status.success(), "exit status {status}");
}

// ---- clients and databases --------------------------------------------------

fn client_id(c: &mut RawClient) -> i64 {
    c.cmd(&["CLIENT", "ID"]).unwrap().int().expect("CLIENT ID")
}

#[test]
fn client_list_kill_setname() {
    let s = Server::redoubt();
    let mut a = s.raw();
    let mut b = s.raw();
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "alpha"]).unwrap(), ok());
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]).unwrap(), bulk("alpha"));
    assert!(a
        .cmd(&["CLIENT", "SETNAME", "has space"])
        .unwrap()
        .is_error());
    let id_a = client_id(&mut a);
    // The harness's start-up PING connection may still be closing: wait
    // (briefly) until the server has seen it go.
    let mut list = String::new();
    for _ in 0..100 {
        list = b.cmd(&["CLIENT", "LIST"]).unwrap().text().unwrap();
        if list.lines().count() == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let line = list
        .lines()
        .find(|l| l.contains("name=alpha"))
        .unwrap_or_else(|| panic!("alpha missing from CLIENT LIST:\n{list}"));
    assert!(
        line.starts_with(&format!("id={id_a} addr=127.0.0.1:")),
        "{line}"
    );
    assert_eq!(list.lines().count(), 2, "{list}");
    assert_eq!(
        b.cmd(&["CLIENT", "KILL", "ID", &id_a.to_string()]).unwrap(),
        Resp::Int(1)
    );
    assert!(a.is_closed(), "killed client still connected");
    assert_eq!(
        b.cmd(&["CLIENT", "KILL", "ID", "999999"]).unwrap(),
        Resp::Int(0)
    );
    assert_eq!(
        b.cmd(&["CLIENT", "KILL", "127.0.0.1:1"]).unwrap(),
        err("ERR No such client")
    );
}

#[test]
fn select_and_sixteen_databases() {
    let s = Server::redoubt();
    let mut c = s.raw();
    for db in 0..16 {
        assert_eq!(c.cmd(&["SELECT", &db.to_string()]).unwrap(), ok());
        assert_eq!(c.cmd(&["SET", "k", &format!("db{db}")]).unwrap(), ok());
    }
    assert_eq!(
        c.cmd(&["SELECT", "16"]).unwrap(),
        err("ERR DB index is out of range")
    );
    for db in 0..16 {
        c.cmd(&["SELECT", &db.to_string()]).unwrap();
        assert_eq!(c.cmd(&["GET", "k"]).unwrap(), bulk(&format!("db{db}")));
    }
    assert_eq!(c.cmd(&["SWAPDB", "0", "15"]).unwrap(), ok());
    c.cmd(&["SELECT", "0"]).unwrap();
    assert_eq!(c.cmd(&["GET", "k"]).unwrap(), bulk("db15"));
    let four = Server::redoubt_with(&["--databases", "4"]);
    let mut d = four.raw();
    assert_eq!(d.cmd(&["SELECT", "3"]).unwrap(), ok());
    assert_eq!(
        d.cmd(&["SELECT", "4"]).unwrap(),
        err("ERR DB index is out of range")
    );
}

// ---- expiry -------------------------------------------------------------------

#[test]
fn expiry_lazy_and_active() {
    let s = Server::redoubt();
    let mut c = s.raw();
    // Lazy: an expired key is gone when read.
    c.cmd(&["SET", "lazy", "v", "PX", "50"]).unwrap();
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(c.cmd(&["GET", "lazy"]).unwrap(), Resp::NullBulk);
    // Active: keys nobody touches disappear (DBSIZE counts expired keys
    // until they are removed, so it only drops through active expiry).
    for i in 0..200 {
        c.cmd(&["SET", &format!("short:{i}"), "v", "PX", "100"])
            .unwrap();
    }
    for i in 0..10 {
        c.cmd(&["SET", &format!("long:{i}"), "v"]).unwrap();
    }
    assert_eq!(c.cmd(&["DBSIZE"]).unwrap(), Resp::Int(210));
    let start = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || c.cmd(&["DBSIZE"]).unwrap()
            == Resp::Int(10)),
        "active expiry did not remove the short-lived keys"
    );
    eprintln!("active expiry removed 200 keys in {:?}", start.elapsed());
    assert_eq!(c.cmd(&["TTL", "long:1"]).unwrap(), Resp::Int(-1));
    c.cmd(&["SET", "t", "v", "EX", "100"]).unwrap();
    assert_eq!(c.cmd(&["TTL", "t"]).unwrap(), Resp::Int(100));
}

// ---- transactions and RESP3 -------------------------------------------------

#[test]
fn multi_exec_watch() {
    let s = Server::redoubt();
    let mut con = s.conn();
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("n")
        .cmd("INCRBY")
        .arg("n")
        .arg(10)
        .query(&mut con)
        .expect("transaction");
    assert_eq!((a, b), (1, 11));

    let mut c = s.raw();
    let mut other = s.raw();
    assert_eq!(c.cmd(&["WATCH", "n"]).unwrap(), ok());
    assert_eq!(c.cmd(&["MULTI"]).unwrap(), ok());
    assert_eq!(
        c.cmd(&["INCR", "n"]).unwrap(),
        Resp::Simple(b"QUEUED".to_vec())
    );
    assert_eq!(other.cmd(&["SET", "n", "100"]).unwrap(), ok());
    assert_eq!(c.cmd(&["EXEC"]).unwrap(), Resp::NullArray);
    assert_eq!(c.cmd(&["GET", "n"]).unwrap(), bulk("100"));
    // Without interference EXEC runs.
    c.cmd(&["WATCH", "n"]).unwrap();
    c.cmd(&["MULTI"]).unwrap();
    c.cmd(&["INCR", "n"]).unwrap();
    assert_eq!(c.cmd(&["EXEC"]).unwrap(), Resp::Array(vec![Resp::Int(101)]));
    // A queueing error aborts the whole transaction.
    c.cmd(&["MULTI"]).unwrap();
    assert!(c.cmd(&["INCR"]).unwrap().is_error());
    c.cmd(&["INCR", "n"]).unwrap();
    assert_eq!(
        c.cmd(&["EXEC"]).unwrap(),
        err("EXECABORT Transaction discarded because of previous errors.")
    );
    assert_eq!(c.cmd(&["GET", "n"]).unwrap(), bulk("101"));
}

#[test]
fn resp3_via_hello() {
    let s = Server::redoubt();
    let mut c = s.raw();
    match c.cmd(&["HELLO", "3"]).unwrap() {
        Resp::Map(m) => {
            assert!(m.contains(&(bulk("proto"), Resp::Int(3))));
            assert!(m.contains(&(bulk("version"), bulk("7.0.15"))));
        }
        other => panic!("HELLO 3 must answer a map: {other}"),
    }
    assert_eq!(c.cmd(&["GET", "nothing"]).unwrap(), Resp::Null);
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxmemory"]).unwrap(),
        Resp::Map(vec![(bulk("maxmemory"), bulk("0"))])
    );
    c.cmd(&["SET", "f", "1.5"]).unwrap();
    assert_eq!(c.cmd(&["INCRBYFLOAT", "f", "1"]).unwrap(), bulk("2.5"));
    assert!(matches!(
        c.cmd(&["HELLO", "4"]).unwrap(),
        Resp::Error(e) if e.starts_with(b"NOPROTO")
    ));
    // Back to RESP2.
    assert!(matches!(c.cmd(&["HELLO", "2"]).unwrap(), Resp::Array(_)));
    assert_eq!(c.cmd(&["GET", "nothing"]).unwrap(), Resp::NullBulk);
}

#[test]
fn quit_closes_after_ok() {
    let s = Server::redoubt();
    let (out, closed) = raw_exchange(s.port, b"PING\r\nQUIT\r\nPING\r\n");
    assert_eq!(String::from_utf8_lossy(&out), "+PONG\r\n+OK\r\n");
    assert!(closed);
}

// ---- redis-cli ----------------------------------------------------------------

#[test]
fn redis_cli_talks_to_redoubt() {
    let Some(cli) = redis_cli_bin() else {
        eprintln!("skipping redis_cli_talks_to_redoubt: redis-cli not found on PATH");
        return;
    };
    let s = Server::redoubt();
    let port = s.port.to_string();
    let run = |args: &[&str]| -> String {
        let out = Command::new(&cli)
            .args(["-h", "127.0.0.1", "-p", &port])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run(&["SET", "name", "redoubt"]), "OK\n");
    assert_eq!(run(&["GET", "name"]), "redoubt\n");
    assert_eq!(run(&["--no-raw", "INCR", "n"]), "(integer) 1\n");
    assert_eq!(run(&["-3", "--no-raw", "GET", "missing"]), "(nil)\n");
    // Mass insertion with --pipe.
    let mut input = Vec::new();
    for i in 0..5000 {
        input.extend(encode_command(&["SET", &format!("bulk:{i}"), "v"]));
    }
    let mut child = Command::new(&cli)
        .args(["-h", "127.0.0.1", "-p", &port, "--pipe"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli --pipe");
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("errors: 0, replies: 5000"), "{text}");
    assert_eq!(run(&["DBSIZE"]), "5002\n");
}

#[test]
fn scan_visits_every_key() {
    let s = Server::redoubt();
    let mut c = s.raw();
    let mut p = Vec::new();
    for i in 0..3000 {
        p.extend(encode_command(&["SET", &format!("key:{i}"), "v"]));
    }
    c.send_raw(&p).unwrap();
    for _ in 0..3000 {
        assert_eq!(c.read().unwrap(), ok());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut rounds = 0;
    loop {
        let r = c
            .cmd(&["SCAN", &cursor, "COUNT", "25", "MATCH", "key:1*"])
            .unwrap();
        let items = r.items().expect("SCAN reply").to_vec();
        cursor = items[0].text().expect("cursor");
        for k in items[1].items().expect("keys") {
            seen.insert(k.text().unwrap());
        }
        rounds += 1;
        assert!(rounds < 10_000, "SCAN does not terminate");
        if cursor == "0" {
            break;
        }
    }
    let want: std::collections::BTreeSet<String> = (0..3000)
        .map(|i| format!("key:{i}"))
        .filter(|k| k.starts_with("key:1"))
        .collect();
    assert_eq!(seen, want);
    assert!(rounds > 1, "COUNT 25 over 3000 keys takes several calls");
}

/// A thread's `Cpus_allowed_list` (the kernel's own CPU-list text).
fn cpus_allowed(status: &str) -> String {
    let text = std::fs::read_to_string(status).expect("status");
    let line = text
        .lines()
        .find(|l| l.starts_with("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list");
    line["Cpus_allowed_list:".len()..].trim().to_string()
}

#[test]
fn cpu_lists_pin_the_server_and_answer_as_redis() {
    // The last CPU this test may use: a server that ignored the setting
    // would have all of them.
    let ours = cpus_allowed("/proc/self/status");
    let last = ours.rsplit([',', '-']).next().unwrap().to_string();
    let args = ["--server_cpulist", &last, "--bgsave_cpulist", &last];
    let replies = same_as_redis(
        &args,
        &[
            &["CONFIG", "GET", "server_cpulist"],
            &["CONFIG", "GET", "aof_rewrite_cpulist"],
            &["CONFIG", "SET", "bgsave_cpulist", "0"],
        ],
    );
    assert_eq!(
        replies[0],
        Resp::Array(vec![bulk("server_cpulist"), bulk(&last)])
    );
    assert_eq!(
        replies[2],
        err("ERR CONFIG SET failed (possibly related to argument 'bgsave_cpulist') - can't set immutable config")
    );
    let s = Server::redoubt_with(&args);
    let pid = s.pid().expect("pid");
    assert_eq!(
        cpus_allowed(&format!("/proc/{pid}/task/{pid}/status")),
        last
    );
    assert_alive(&s);
}
