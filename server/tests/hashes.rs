//! Hash commands over the wire.

mod common;
use common::{compare, sorted, Server};

#[test]
fn basic_commands_and_listpack_order() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.cmd(&["hset", "h", "b", "1", "a", "2", "c", "3"]), ":3");
    assert_eq!(c.cmd(&["hset", "h", "b", "10", "d", "4"]), ":1");
    assert_eq!(c.cmd(&["hmset", "h", "e", "5"]), "+OK");
    assert_eq!(
        c.cmd(&["hset", "h", "x"]),
        "-ERR wrong number of arguments for 'hset' command"
    );
    assert_eq!(
        c.cmd(&["hmset", "h", "x", "1", "y"]),
        "-ERR wrong number of arguments for 'hmset' command"
    );
    assert_eq!(c.cmd(&["hkeys", "h"]), r#"["b", "a", "c", "d", "e"]"#);
    assert_eq!(c.cmd(&["hdel", "h", "a", "zz", "a"]), ":1");
    assert_eq!(c.cmd(&["hvals", "h"]), r#"["10", "3", "4", "5"]"#);
    assert_eq!(
        c.cmd(&["hgetall", "h"]),
        r#"["b", "10", "c", "3", "d", "4", "e", "5"]"#
    );
    assert_eq!(c.cmd(&["hget", "h", "c"]), r#""3""#);
    assert_eq!(c.cmd(&["hget", "h", "zz"]), "$-1");
    assert_eq!(c.cmd(&["hmget", "h", "c", "zz"]), r#"["3", $-1]"#);
    assert_eq!(c.cmd(&["hmget", "nokey", "c"]), "[$-1]");
    assert_eq!(c.cmd(&["hlen", "h"]), ":4");
    assert_eq!(c.cmd(&["hstrlen", "h", "b"]), ":2");
    assert_eq!(c.cmd(&["hexists", "h", "b"]), ":1");
    assert_eq!(c.cmd(&["hexists", "h", "a"]), ":0");
    assert_eq!(c.cmd(&["hsetnx", "h", "b", "x"]), ":0");
    assert_eq!(c.cmd(&["hsetnx", "h", "f", "6"]), ":1");
    assert_eq!(c.cmd(&["object", "encoding", "h"]), r#""listpack""#);
    assert_eq!(
        c.cmd(&["hscan", "h", "0"]),
        r#"["0", ["b", "10", "c", "3", "d", "4", "e", "5", "f", "6"]]"#
    );
    assert_eq!(
        c.cmd(&["hscan", "h", "0", "match", "[bc]", "count", "1"]),
        r#"["0", ["b", "10", "c", "3"]]"#
    );
    assert_eq!(
        c.cmd(&["hscan", "h", "0", "count", "0"]),
        "-ERR syntax error"
    );
    assert_eq!(c.cmd(&["hscan", "h", "x"]), "-ERR invalid cursor");
    assert_eq!(c.cmd(&["hdel", "h", "b", "c", "d", "e", "f"]), ":5");
    assert_eq!(c.cmd(&["exists", "h"]), ":0");
    c.cmd(&["hset", "h", "a", "1"]);
    assert!(c.cmd(&["hello", "3"]).starts_with('{'));
    assert_eq!(c.cmd(&["hgetall", "h"]), r#"{"a": "1"}"#);
    assert_eq!(c.cmd(&["hgetall", "nokey"]), "{}");
    c.cmd(&["set", "s", "x"]);
    assert_eq!(
        c.cmd(&["hget", "s", "a"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
}

#[test]
fn increments() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.cmd(&["hincrby", "h", "n", "5"]), ":5");
    assert_eq!(c.cmd(&["hincrby", "h", "n", "-7"]), ":-2");
    assert_eq!(
        c.cmd(&["hincrby", "h", "n", "x"]),
        "-ERR value is not an integer or out of range"
    );
    c.cmd(&["hset", "h", "s", "abc", "big", "9223372036854775807"]);
    assert_eq!(
        c.cmd(&["hincrby", "h", "s", "1"]),
        "-ERR hash value is not an integer"
    );
    assert_eq!(
        c.cmd(&["hincrby", "h", "big", "1"]),
        "-ERR increment or decrement would overflow"
    );
    assert_eq!(c.cmd(&["hincrbyfloat", "h", "f", "0.1"]), r#""0.1""#);
    assert_eq!(c.cmd(&["hincrbyfloat", "h", "f", "0.2"]), r#""0.3""#);
    assert_eq!(c.cmd(&["hincrbyfloat", "h", "n", "1.5e3"]), r#""1498""#);
    assert_eq!(
        c.cmd(&["hincrbyfloat", "h", "s", "1"]),
        "-ERR hash value is not a float"
    );
    assert_eq!(
        c.cmd(&["hincrbyfloat", "h", "f", "x"]),
        "-ERR value is not a valid float"
    );
    assert_eq!(
        c.cmd(&["hincrbyfloat", "h", "f", "inf"]),
        "-ERR value is NaN or Infinity"
    );
}

#[test]
fn encoding_promotion() {
    let s = Server::start();
    let mut c = s.conn();
    let long = "x".repeat(65);
    c.cmd(&["hset", "a", "f", &"v".repeat(64)]);
    assert_eq!(c.cmd(&["object", "encoding", "a"]), r#""listpack""#);
    c.cmd(&["hset", "a", "g", &long]);
    assert_eq!(c.cmd(&["object", "encoding", "a"]), r#""hashtable""#);
    c.cmd(&["hdel", "a", "g"]);
    assert_eq!(
        c.cmd(&["object", "encoding", "a"]),
        r#""hashtable""#,
        "never back"
    );
    c.cmd(&["hincrby", "b", &long, "1"]);
    assert_eq!(c.cmd(&["object", "encoding", "b"]), r#""hashtable""#);
    c.cmd(&["hsetnx", "b2", &long, "1"]);
    assert_eq!(c.cmd(&["object", "encoding", "b2"]), r#""hashtable""#);
    // Redis 7.0.15's default hash-max-listpack-entries is 512.
    for i in 0..512 {
        c.cmd(&["hset", "c", &format!("f{i}"), "v"]);
    }
    assert_eq!(c.cmd(&["object", "encoding", "c"]), r#""listpack""#);
    c.cmd(&["hset", "c", "one-more", "v"]);
    assert_eq!(c.cmd(&["object", "encoding", "c"]), r#""hashtable""#);
    c.cmd(&["config", "set", "hash-max-listpack-entries", "2"]);
    c.cmd(&["hset", "d", "1", "1", "2", "2"]);
    assert_eq!(c.cmd(&["object", "encoding", "d"]), r#""listpack""#);
    c.cmd(&["hset", "d", "3", "3"]);
    assert_eq!(c.cmd(&["object", "encoding", "d"]), r#""hashtable""#);
}

#[test]
fn hscan_on_a_hashtable_returns_everything_under_churn() {
    let s = Server::start();
    let mut c = s.conn();
    for chunk in 0..10 {
        let mut args = vec!["hset".to_string(), "h".to_string()];
        for i in chunk * 100..(chunk + 1) * 100 {
            args.push(format!("f{i}"));
            args.push(i.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        c.cmd(&args);
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let r = c.cmd(&["hscan", "h", &cursor, "count", "20"]);
        calls += 1;
        // ["cursor", ["f", "v", ...]]
        let (cur, rest) = r[2..].split_once("\", [").unwrap();
        cursor = cur.to_string();
        for (i, item) in rest.trim_end_matches("]]").split(", ").enumerate() {
            if i % 2 == 0 && !item.is_empty() {
                seen.insert(item.trim_matches('"').to_string());
            }
        }
        // Churn: delete fields that will never count, add new ones.
        c.cmd(&["hdel", "h", &format!("f{}", 900 + calls)]);
        c.cmd(&["hset", "h", &format!("new{calls}"), "x"]);
        if cursor == "0" {
            break;
        }
        assert!(calls < 1000);
    }
    for i in 0..900 {
        assert!(seen.contains(&format!("f{i}")), "f{i} missed");
    }
    assert!(calls > 10, "a big hash is scanned in steps");
}

#[test]
fn hrandfield() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd(&["hset", "h", "a", "1", "b", "2", "c", "3"]);
    assert_eq!(c.cmd(&["hrandfield", "nokey"]), "$-1");
    assert_eq!(c.cmd(&["hrandfield", "nokey", "3"]), "[]");
    assert_eq!(c.cmd(&["hrandfield", "h", "0"]), "[]");
    let one = c.cmd(&["hrandfield", "h"]);
    assert!([r#""a""#, r#""b""#, r#""c""#].contains(&one.as_str()));
    assert_eq!(
        c.cmd(&["hrandfield", "h", "5", "withvalues"]),
        r#"["a", "1", "b", "2", "c", "3"]"#
    );
    let two = sorted(&c.cmd(&["hrandfield", "h", "2"]));
    assert_eq!(two.len(), 2);
    assert_ne!(two[0], two[1]);
    let many = c.cmd(&["hrandfield", "h", "-20"]);
    assert_eq!(sorted(&many).len(), 20);
    let wv = c.cmd(&["hrandfield", "h", "-2", "withvalues"]);
    assert_eq!(sorted(&wv).len(), 4);
    assert_eq!(
        c.cmd(&["hrandfield", "h", "1", "withvalue"]),
        "-ERR syntax error"
    );
    assert_eq!(
        c.cmd(&["hrandfield", "h", "x"]),
        "-ERR value is not an integer or out of range"
    );
    c.cmd(&["hello", "3"]);
    let r3 = c.cmd(&["hrandfield", "h", "-2", "withvalues"]);
    assert!(r3.starts_with("[[") && r3.matches('[').count() == 3, "{r3}");
    let r3 = c.cmd(&["hrandfield", "h", "1", "withvalues"]);
    assert!(r3.starts_with("[[") && r3.matches('[').count() == 2, "{r3}");
}

#[test]
fn hrandfield_on_a_hashtable() {
    let s = Server::start();
    let mut c = s.conn();
    let mut args = vec!["hset".to_string(), "h".to_string()];
    for i in 0..1000 {
        args.push(format!("f{i}"));
        args.push(format!("v{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.cmd(&args);
    assert_eq!(c.cmd(&["object", "encoding", "h"]), r#""hashtable""#);
    // Distinct picks, few (by position) and many (one pass).
    for n in [10, 500] {
        let picked = sorted(&c.cmd(&["hrandfield", "h", &n.to_string()]));
        let mut distinct = picked.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), n, "{n} distinct fields");
        assert!(picked.iter().all(|f| f.starts_with("\"f")));
    }
    assert_eq!(sorted(&c.cmd(&["hrandfield", "h", "5000"])).len(), 1000);
    // Repetitions allowed: every value belongs to its field.
    let r = c.cmd(&["hrandfield", "h", "-300", "withvalues"]);
    let items: Vec<&str> = r
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(", ")
        .collect();
    assert_eq!(items.len(), 600);
    for pair in items.chunks(2) {
        assert_eq!(pair[0].replace('f', "v"), pair[1]);
    }
    let one = c.cmd(&["hrandfield", "h"]);
    assert!(one.starts_with("\"f"), "{one}");
}

#[test]
fn same_replies_as_redis() {
    let Some(r) = Server::redis() else { return };
    let s = Server::start();
    let (mut a, mut b) = (s.conn(), r.conn());
    let long = "y".repeat(70);
    compare(
        &mut a,
        &mut b,
        &[
            &["hset", "h", "z", "1", "y", "2", "x", "3", "w", "4"],
            &["hdel", "h", "y"],
            &["hset", "h", "y", "5"],
            &["hgetall", "h"],
            &["hscan", "h", "0", "match", "*"],
            &["hincrbyfloat", "h", "z", "10.5"],
            &["hincrbyfloat", "h", "z", "-1e2"],
            &["hincrbyfloat", "h", "z", "0x10"],
            &["hincrbyfloat", "h", "x", "1.23456789012345678"],
            &["hrandfield", "h", "-9223372036854775808"],
            &["hrandfield", "h", "-9223372036854775807", "withvalues"],
            &["hrandfield", "h", "-4611686018427387904", "withvalues"],
            &["hrandfield", "h", "10"],
            &["hincrbyfloat", "h2", &long, "1"],
            &["object", "encoding", "h2"],
            &["hset", "h3", "a", &long],
            &["object", "encoding", "h3"],
            // The increment's length does not count, the result's does.
            &["hset", "h4", "a", "1", "b", "1"],
            &["hincrbyfloat", "h4", "a", &format!("1.{}1", "0".repeat(70))],
            &["object", "encoding", "h4"],
            &["hincrbyfloat", "h4", "b", &format!("1{}", "0".repeat(70))],
            &["object", "encoding", "h4"],
            &["hscan", "h", "-1"],
            &["hscan", "h", "+0"],
            &["hscan", "h", ""],
            &["hscan", "h", "-"],
            &["hscan", "h", "18446744073709551616"],
            &["hello", "3"],
            &["hrandfield", "h", "10", "withvalues"],
            &["hgetall", "h"],
            &["hscan", "h", "0"],
            &["hscan", "nokey", "0", "count", "0"],
        ],
    );
}

/// Every write that may create its hash (built aside, then inserted), on a
/// missing key, an expired one, an existing one and one of another type.
#[test]
fn writes_creating_the_hash_match_redis() {
    let Some(r) = Server::redis() else { return };
    let s = Server::start();
    let (mut a, mut b) = (s.conn(), r.conn());
    let long = "v".repeat(70);
    let script: &[&[&str]] = &[
        &["hset", "h1", "a", "1", "b", "2"],
        &["hgetall", "h1"],
        &["object", "encoding", "h1"],
        &["hset", "h2", "a", &long],
        &["object", "encoding", "h2"],
        &["hmset", "h3", "x", "1"],
        &["hsetnx", "h4", "x", "1"],
        &["hsetnx", "h4", "x", "2"],
        &["hincrby", "h5", "n", "7"],
        &["hincrbyfloat", "h6", "n", "1.5"],
        &["hgetall", "h4"],
        &["hgetall", "h5"],
        &["hgetall", "h6"],
        &["set", "str", "x"],
        &["hset", "str", "a", "1"],
        &["hsetnx", "str", "a", "1"],
        &["hincrby", "str", "a", "1"],
        &["hincrbyfloat", "str", "a", "1"],
        &["get", "str"],
        &["hset", "gone", "old", "1"],
        &["pexpire", "gone", "1"],
    ];
    compare(&mut a, &mut b, script);
    std::thread::sleep(std::time::Duration::from_millis(20));
    compare(
        &mut a,
        &mut b,
        &[
            &["hset", "gone", "new", "2"],
            &["hgetall", "gone"],
            &["ttl", "gone"],
            &["dbsize"],
        ],
    );
}
