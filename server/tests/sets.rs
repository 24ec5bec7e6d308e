//! Set commands over the wire.

mod common;
use common::{compare, sorted, Server};

#[test]
fn basic_commands_and_intset_order() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.cmd(&["sadd", "s", "10", "-3", "2", "10"]), ":3");
    assert_eq!(c.cmd(&["smembers", "s"]), r#"["-3", "2", "10"]"#);
    assert_eq!(c.cmd(&["object", "encoding", "s"]), r#""intset""#);
    assert_eq!(c.cmd(&["sscan", "s", "0"]), r#"["0", ["-3", "2", "10"]]"#);
    assert_eq!(
        c.cmd(&["sscan", "s", "0", "match", "1*"]),
        r#"["0", ["10"]]"#
    );
    assert_eq!(c.cmd(&["scard", "s"]), ":3");
    assert_eq!(c.cmd(&["sismember", "s", "2"]), ":1");
    assert_eq!(c.cmd(&["smismember", "s", "2", "7"]), "[:1, :0]");
    assert_eq!(c.cmd(&["smismember", "nokey", "2"]), "[:0]");
    assert_eq!(c.cmd(&["srem", "s", "2", "99"]), ":1");
    assert_eq!(c.cmd(&["srem", "s", "10", "-3"]), ":2");
    assert_eq!(c.cmd(&["exists", "s"]), ":0");
    // Not integers as string2ll reads them: "+1", "01", "-0", " 1".
    for m in ["+1", "01", "-0", "1.0", "abc"] {
        c.cmd(&["del", "t"]);
        c.cmd(&["sadd", "t", "1", m]);
        assert_eq!(c.cmd(&["object", "encoding", "t"]), r#""hashtable""#, "{m}");
    }
    c.cmd(&["del", "t"]);
    c.cmd(&["sadd", "t", "9223372036854775807", "-9223372036854775808"]);
    assert_eq!(c.cmd(&["object", "encoding", "t"]), r#""intset""#);
    c.cmd(&["sadd", "t", "x"]);
    c.cmd(&["srem", "t", "x"]);
    assert_eq!(
        c.cmd(&["object", "encoding", "t"]),
        r#""hashtable""#,
        "never back"
    );
    c.cmd(&["config", "set", "set-max-intset-entries", "3"]);
    c.cmd(&["sadd", "u", "1", "2", "3"]);
    assert_eq!(c.cmd(&["object", "encoding", "u"]), r#""intset""#);
    c.cmd(&["sadd", "u", "4"]);
    assert_eq!(c.cmd(&["object", "encoding", "u"]), r#""hashtable""#);
    c.cmd(&["set", "str", "x"]);
    assert_eq!(
        c.cmd(&["sadd", "str", "a"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    c.cmd(&["hello", "3"]);
    assert_eq!(c.cmd(&["smembers", "nokey"]), "~[]");
    assert!(c.cmd(&["smembers", "u"]).starts_with("~["));
}

#[test]
fn pop_random_move() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd(&["sadd", "s", "a", "b", "c", "d", "e"]);
    assert_eq!(c.cmd(&["spop", "nokey"]), "$-1");
    assert_eq!(c.cmd(&["spop", "nokey", "2"]), "[]");
    assert_eq!(c.cmd(&["spop", "s", "0"]), "[]");
    assert_eq!(
        c.cmd(&["spop", "s", "-1"]),
        "-ERR value is out of range, must be positive"
    );
    assert_eq!(c.cmd(&["spop", "s", "1", "2"]), "-ERR syntax error");
    let one = c.cmd(&["spop", "s"]);
    let two = sorted(&c.cmd(&["spop", "s", "2"]));
    assert_eq!(two.len(), 2);
    assert!(!two.contains(&one));
    assert_eq!(c.cmd(&["scard", "s"]), ":2");
    assert_eq!(sorted(&c.cmd(&["spop", "s", "10"])).len(), 2);
    assert_eq!(c.cmd(&["exists", "s"]), ":0");

    c.cmd(&["sadd", "s", "3", "1", "2"]);
    assert_eq!(c.cmd(&["srandmember", "nokey"]), "$-1");
    assert_eq!(c.cmd(&["srandmember", "nokey", "5"]), "[]");
    assert_eq!(c.cmd(&["srandmember", "s", "5"]), r#"["1", "2", "3"]"#);
    assert_eq!(sorted(&c.cmd(&["srandmember", "s", "-7"])).len(), 7);
    let two = sorted(&c.cmd(&["srandmember", "s", "2"]));
    assert_eq!(two.len(), 2);
    assert_ne!(two[0], two[1]);
    assert_eq!(
        c.cmd(&["srandmember", "s", "-9223372036854775808"]),
        "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    );
    // A huge negative count on a tiny set must not allocate for it up
    // front; the reply itself is what Redis would send, so ask for a
    // moderately large one only.
    let big = c.cmd(&["srandmember", "s", "-100000"]);
    assert_eq!(sorted(&big).len(), 100000);

    assert_eq!(c.cmd(&["smove", "s", "d", "1"]), ":1");
    assert_eq!(c.cmd(&["smove", "s", "d", "9"]), ":0");
    assert_eq!(c.cmd(&["smove", "nokey", "d", "1"]), ":0");
    assert_eq!(c.cmd(&["smove", "s", "s", "2"]), ":1");
    assert_eq!(c.cmd(&["smove", "s", "s", "9"]), ":0");
    c.cmd(&["set", "str", "x"]);
    assert_eq!(
        c.cmd(&["smove", "s", "str", "2"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    c.cmd(&["smove", "s", "d", "2"]);
    c.cmd(&["smove", "s", "d", "3"]);
    assert_eq!(c.cmd(&["exists", "s"]), ":0");
    assert_eq!(c.cmd(&["smembers", "d"]), r#"["1", "2", "3"]"#);
    c.cmd(&["hello", "3"]);
    assert_eq!(c.cmd(&["spop", "nokey", "2"]), "~[]");
    assert_eq!(c.cmd(&["srandmember", "d", "5"]), r#"["1", "2", "3"]"#);
}

#[test]
fn algebra() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd(&["sadd", "a", "1", "2", "3", "4", "x"]);
    c.cmd(&["sadd", "b", "4", "3", "5"]);
    c.cmd(&["sadd", "c", "3", "4", "6"]);
    assert_eq!(c.cmd(&["sinter", "a", "b", "c"]), r#"["3", "4"]"#);
    assert_eq!(c.cmd(&["sinter", "a", "nokey"]), "[]");
    assert_eq!(c.cmd(&["sunion", "b", "c"]), r#"["3", "4", "5", "6"]"#);
    assert_eq!(c.cmd(&["sdiff", "b", "c"]), r#"["5"]"#);
    assert_eq!(
        sorted(&c.cmd(&["sdiff", "a", "b"])),
        [r#""1""#, r#""2""#, r#""x""#]
    );
    assert_eq!(c.cmd(&["sdiff", "nokey", "a"]), "[]");
    assert_eq!(c.cmd(&["sintercard", "3", "a", "b", "c"]), ":2");
    assert_eq!(c.cmd(&["sintercard", "2", "a", "b", "limit", "1"]), ":1");
    assert_eq!(c.cmd(&["sintercard", "2", "a", "b", "limit", "0"]), ":2");
    assert_eq!(
        c.cmd(&["sintercard", "3", "a", "b"]),
        "-ERR Number of keys can't be greater than number of args"
    );
    assert_eq!(
        c.cmd(&["sintercard", "0", "a"]),
        "-ERR numkeys should be greater than 0"
    );
    assert_eq!(
        c.cmd(&["sintercard", "1", "a", "limit", "-1"]),
        "-ERR LIMIT can't be negative"
    );
    assert_eq!(
        c.cmd(&["sintercard", "1", "a", "foo", "1"]),
        "-ERR syntax error"
    );
    assert_eq!(c.cmd(&["sinterstore", "d", "a", "b"]), ":2");
    assert_eq!(c.cmd(&["object", "encoding", "d"]), r#""intset""#);
    assert_eq!(c.cmd(&["sunionstore", "d", "a", "b"]), ":6");
    assert_eq!(c.cmd(&["object", "encoding", "d"]), r#""hashtable""#);
    assert_eq!(c.cmd(&["sdiffstore", "d", "a", "b"]), ":3");
    assert_eq!(c.cmd(&["sdiffstore", "a", "a", "a"]), ":0");
    assert_eq!(
        c.cmd(&["exists", "a"]),
        ":0",
        "an empty result deletes the destination"
    );
    c.cmd(&["set", "str", "x"]);
    assert_eq!(
        c.cmd(&["sinter", "nokey", "str"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        c.cmd(&["sunionstore", "d", "str"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    c.cmd(&["hello", "3"]);
    assert_eq!(c.cmd(&["sinter", "b", "c"]), r#"~["3", "4"]"#);
}

#[test]
fn sscan_on_a_hashtable_returns_everything_under_churn() {
    let s = Server::start();
    let mut c = s.conn();
    let mut args = vec!["sadd".to_string(), "s".to_string()];
    for i in 0..2000 {
        args.push(format!("m{i}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.cmd(&args);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut calls = 0;
    loop {
        let r = c.cmd(&["sscan", "s", &cursor]);
        calls += 1;
        let (cur, rest) = r[2..].split_once("\", [").unwrap();
        cursor = cur.to_string();
        for item in rest.trim_end_matches("]]").split(", ") {
            if !item.is_empty() {
                seen.insert(item.trim_matches('"').to_string());
            }
        }
        // Churn, enough to make the table grow and rehash.
        let mut add = vec!["sadd".to_string(), "s".to_string()];
        for i in 0..100 {
            add.push(format!("n{calls}-{i}"));
        }
        let add: Vec<&str> = add.iter().map(String::as_str).collect();
        c.cmd(&add);
        c.cmd(&["srem", "s", &format!("m{}", 1900 + calls)]);
        if cursor == "0" {
            break;
        }
        assert!(calls < 10000);
    }
    for i in 0..1900 {
        assert!(seen.contains(&format!("m{i}")), "m{i} missed");
    }
    assert!(calls > 10, "a big set is scanned in steps");
}

#[test]
fn same_replies_as_redis() {
    let Some(r) = Server::redis() else { return };
    let s = Server::start();
    let (mut a, mut b) = (s.conn(), r.conn());
    compare(
        &mut a,
        &mut b,
        &[
            &["sadd", "a", "5", "-1", "100", "7"],
            &["sadd", "b", "7", "5", "8"],
            &["smembers", "a"],
            &["sinter", "a", "b"],
            &["sunion", "a", "b"],
            &["sdiff", "a", "b"],
            &["sinterstore", "c", "a", "b"],
            &["smembers", "c"],
            &["object", "encoding", "c"],
            &["sscan", "a", "0", "count", "1"],
            &["srandmember", "a", "10"],
            &["spop", "a", "abc"],
            &["sintercard", "x", "a"],
            &["sintercard", "1", "a", "limit"],
            &["sintercard", "1", "a", "limit", "x"],
            &["smove", "a", "b", "-1"],
            &["smembers", "b"],
            &["hello", "3"],
            &["smembers", "a"],
            &["sunion", "nokey"],
            &["spop", "nokey", "1"],
            &["srandmember", "b", "9"],
            &["sscan", "nokey", "0"],
            &["smismember", "b", "8", "9"],
        ],
    );
}

/// Every write that may create its set (built aside, then inserted), on a
/// missing key, an expired one, an existing one and one of another type.
#[test]
fn writes_creating_the_set_match_redis() {
    let Some(r) = Server::redis() else { return };
    let s = Server::start();
    let (mut a, mut b) = (s.conn(), r.conn());
    compare(
        &mut a,
        &mut b,
        &[
            &["sadd", "ints", "3", "1", "2", "1"],
            &["object", "encoding", "ints"],
            &["smembers", "ints"],
            &["sadd", "strs", "b", "a"],
            &["object", "encoding", "strs"],
            &["scard", "strs"],
            &["smove", "ints", "moved", "2"],
            &["smembers", "moved"],
            &["object", "encoding", "moved"],
            &["smove", "strs", "moved2", "a"],
            &["object", "encoding", "moved2"],
            &["set", "str", "x"],
            &["sadd", "str", "a"],
            &["smove", "strs", "str", "b"],
            &["get", "str"],
            &["sadd", "gone", "old"],
            &["pexpire", "gone", "1"],
        ],
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    compare(
        &mut a,
        &mut b,
        &[
            &["sadd", "gone", "new"],
            &["smembers", "gone"],
            &["ttl", "gone"],
            &["dbsize"],
        ],
    );
}
