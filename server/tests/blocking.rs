//! Blocking list commands with several clients. Each scenario runs against
//! our server and, when redis-server is on PATH, against Redis too: the
//! transcripts must be identical.

mod common;
use common::{Conn, Server};
use std::time::{Duration, Instant};

/// Waits until the server reports `n` blocked clients, so that the order in
/// which clients blocked is the order the test sent their commands in.
fn wait_blocked(c: &mut Conn, n: usize) {
    let want = format!("blocked_clients:{n}\\r\\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if c.cmd(&["info", "clients"]).contains(&want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("never saw {n} blocked clients");
}

/// Runs `scenario` on our server, and on Redis when available; returns our
/// transcript after checking Redis's is the same.
fn run(scenario: fn(u16, &mut Vec<String>)) -> Vec<String> {
    let ours = Server::start();
    let mut t = Vec::new();
    scenario(ours.port, &mut t);
    if let Some(redis) = Server::redis() {
        let mut r = Vec::new();
        scenario(redis.port, &mut r);
        assert_eq!(t, r, "transcript differs from Redis");
    }
    t
}

fn fifo(port: u16, t: &mut Vec<String>) {
    let mut c0 = Conn::new(port);
    let mut c1 = Conn::new(port);
    let mut c2 = Conn::new(port);
    let mut c3 = Conn::new(port);
    c1.send(&["blpop", "k", "0"]);
    wait_blocked(&mut c0, 1);
    c2.send(&["blpop", "other", "k", "0"]);
    wait_blocked(&mut c0, 2);
    c3.send(&["brpop", "k", "0"]);
    wait_blocked(&mut c0, 3);
    t.push(c0.cmd(&["rpush", "k", "a", "b"]));
    t.push(c1.read());
    t.push(c2.read());
    c3.assert_no_reply(50);
    t.push(c0.cmd(&["exists", "k"]));
    t.push(c0.cmd(&["lpush", "k", "c", "d"]));
    t.push(c3.read());
    t.push(c0.cmd(&["lrange", "k", "0", "-1"]));
    // Each blocking call counts once, however often it was retried.
    let stats = c0.cmd(&["info", "commandstats"]);
    for cmd in ["blpop", "brpop"] {
        let calls = stats
            .split(&format!("cmdstat_{cmd}:calls="))
            .nth(1)
            .and_then(|r| r.split(',').next())
            .unwrap_or("?");
        t.push(format!("{cmd} calls={calls}"));
    }
}

#[test]
fn served_in_arrival_order() {
    let t = run(fifo);
    assert_eq!(
        t,
        [
            ":2",
            r#"["k", "a"]"#,
            r#"["k", "b"]"#,
            ":0",
            ":2",
            r#"["k", "c"]"#,
            r#"["d"]"#,
            "blpop calls=2",
            "brpop calls=1"
        ]
    );
}

fn timeouts(port: u16, t: &mut Vec<String>) {
    let mut c = Conn::new(port);
    let start = Instant::now();
    t.push(c.cmd(&["blpop", "k", "0.2"]));
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(150), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    t.push(c.cmd(&["blmove", "k", "d", "left", "left", "0.05"]));
    t.push(c.cmd(&["blmpop", "0.05", "2", "k", "j", "left", "count", "3"]));
    c.cmd(&["hello", "3"]);
    t.push(c.cmd(&["brpop", "k", "0.05"]));
    t.push(c.cmd(&["brpoplpush", "k", "d", "0.05"]));
    // Input sent while blocked is answered after the block.
    c.send(&["blpop", "k", "0.05"]);
    c.send(&["ping"]);
    t.push(c.read());
    t.push(c.read());
}

#[test]
fn timeouts_give_null_replies() {
    let t = run(timeouts);
    assert_eq!(t, ["*-1", "*-1", "*-1", "_", "_", "_", "+PONG"]);
}

fn multi_push(port: u16, t: &mut Vec<String>) {
    let mut c0 = Conn::new(port);
    let mut c1 = Conn::new(port);
    let mut c2 = Conn::new(port);
    c1.send(&["blpop", "k", "0"]);
    wait_blocked(&mut c0, 1);
    // Pushed and deleted in one transaction: nothing to serve.
    c0.cmd(&["multi"]);
    c0.cmd(&["rpush", "k", "a"]);
    c0.cmd(&["del", "k"]);
    t.push(c0.cmd(&["exec"]));
    c1.assert_no_reply(50);
    c2.send(&["blpop", "k", "0"]);
    wait_blocked(&mut c0, 2);
    c0.cmd(&["multi"]);
    c0.cmd(&["rpush", "k", "x"]);
    c0.cmd(&["rpush", "k", "y"]);
    c0.cmd(&["rpush", "k", "z"]);
    t.push(c0.cmd(&["exec"]));
    t.push(c1.read());
    t.push(c2.read());
    t.push(c0.cmd(&["lrange", "k", "0", "-1"]));
}

#[test]
fn push_inside_multi_serves_after_exec() {
    let t = run(multi_push);
    assert_eq!(
        t,
        [
            "[:1, :1]",
            "[:1, :2, :3]",
            r#"["k", "x"]"#,
            r#"["k", "y"]"#,
            r#"["z"]"#
        ]
    );
}

fn type_changes(port: u16, t: &mut Vec<String>) {
    let mut c0 = Conn::new(port);
    let mut c1 = Conn::new(port);
    c1.send(&["blpop", "k1", "k2", "0"]);
    wait_blocked(&mut c0, 1);
    t.push(c0.cmd(&["set", "k1", "str"]));
    c1.assert_no_reply(50);
    t.push(c0.cmd(&["rpush", "k2", "v"]));
    t.push(c1.read());
    // Two keys ready in one transaction: the first made ready wins.
    c1.send(&["blpop", "a", "b", "0"]);
    wait_blocked(&mut c0, 1);
    c0.cmd(&["multi"]);
    c0.cmd(&["rpush", "b", "1"]);
    c0.cmd(&["rpush", "a", "2"]);
    t.push(c0.cmd(&["exec"]));
    t.push(c1.read());
    // A BLMOVE whose destination turned into a string gets WRONGTYPE.
    c1.send(&["blmove", "src", "k1", "left", "left", "0"]);
    wait_blocked(&mut c0, 1);
    t.push(c0.cmd(&["rpush", "src", "e"]));
    t.push(c1.read());
    t.push(c0.cmd(&["lrange", "src", "0", "-1"]));
    // A key replaced by a string, then deleted and pushed again.
    c1.send(&["blpop", "k3", "0"]);
    wait_blocked(&mut c0, 1);
    t.push(c0.cmd(&["set", "k3", "again"]));
    c1.assert_no_reply(50);
    t.push(c0.cmd(&["del", "k3"]));
    t.push(c0.cmd(&["rpush", "k3", "w"]));
    t.push(c1.read());
}

#[test]
fn key_type_changes_while_blocked() {
    let t = run(type_changes);
    assert_eq!(
        t,
        [
            "+OK",
            ":1",
            r#"["k2", "v"]"#,
            "[:1, :1]",
            r#"["b", "1"]"#,
            ":1",
            "-WRONGTYPE Operation against a key holding the wrong kind of value",
            r#"["e"]"#,
            "+OK",
            ":1",
            ":1",
            r#"["k3", "w"]"#
        ]
    );
}

fn chain(port: u16, t: &mut Vec<String>) {
    let mut c0 = Conn::new(port);
    let mut c1 = Conn::new(port);
    let mut c2 = Conn::new(port);
    let mut c3 = Conn::new(port);
    c1.send(&["blmove", "a", "b", "left", "right", "0"]);
    wait_blocked(&mut c0, 1);
    c2.send(&["brpoplpush", "b", "c", "0"]);
    wait_blocked(&mut c0, 2);
    c3.send(&["blmpop", "0", "1", "c", "left", "count", "5"]);
    wait_blocked(&mut c0, 3);
    t.push(c0.cmd(&["rpush", "a", "x"]));
    t.push(c1.read());
    t.push(c2.read());
    t.push(c3.read());
    t.push(c0.cmd(&["exists", "a", "b", "c"]));
}

#[test]
fn blmove_chains() {
    let t = run(chain);
    assert_eq!(t, [":1", r#""x""#, r#""x""#, r#"["c", ["x"]]"#, ":0"]);
}

fn unblock(port: u16, t: &mut Vec<String>) {
    let mut c0 = Conn::new(port);
    let mut c1 = Conn::new(port);
    let id = c1.cmd(&["client", "id"]);
    let id = id.trim_start_matches(':').to_string();
    c1.send(&["blpop", "k", "0"]);
    wait_blocked(&mut c0, 1);
    t.push(c0.cmd(&["client", "unblock", &id]));
    t.push(c1.read());
    c1.send(&["blmove", "k", "j", "left", "left", "0"]);
    wait_blocked(&mut c0, 1);
    t.push(c0.cmd(&["client", "unblock", &id, "error"]));
    t.push(c1.read());
    t.push(c0.cmd(&["client", "unblock", &id]));
    // Still usable, and no longer queued on k.
    t.push(c0.cmd(&["rpush", "k", "v"]));
    t.push(c0.cmd(&["llen", "k"]));
}

#[test]
fn client_unblock() {
    let t = run(unblock);
    assert_eq!(
        t,
        [
            ":1",
            "*-1",
            ":1",
            "-UNBLOCKED client unblocked via CLIENT UNBLOCK",
            ":0",
            ":1",
            ":1"
        ]
    );
}
