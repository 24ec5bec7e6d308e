//! List commands over the wire.

mod common;
use common::{compare, Server};

#[test]
fn push_pop_range_and_nulls() {
    let s = Server::start();
    let mut c = s.conn();
    assert_eq!(c.cmd(&["rpush", "l", "a", "b", "c"]), ":3");
    assert_eq!(c.cmd(&["lpush", "l", "x", "y"]), ":5");
    assert_eq!(
        c.cmd(&["lrange", "l", "0", "-1"]),
        r#"["y", "x", "a", "b", "c"]"#
    );
    assert_eq!(c.cmd(&["lrange", "l", "-2", "100"]), r#"["b", "c"]"#);
    assert_eq!(c.cmd(&["lrange", "l", "3", "1"]), "[]");
    assert_eq!(c.cmd(&["lrange", "nokey", "0", "-1"]), "[]");
    assert_eq!(c.cmd(&["llen", "l"]), ":5");
    assert_eq!(c.cmd(&["lpushx", "nokey", "a"]), ":0");
    assert_eq!(c.cmd(&["rpushx", "l", "z"]), ":6");
    assert_eq!(c.cmd(&["lpop", "l"]), r#""y""#);
    assert_eq!(c.cmd(&["rpop", "l", "2"]), r#"["z", "c"]"#);
    assert_eq!(c.cmd(&["lpop", "l", "0"]), "[]");
    assert_eq!(
        c.cmd(&["lpop", "l", "-1"]),
        "-ERR value is out of range, must be positive"
    );
    assert_eq!(
        c.cmd(&["lpop", "l", "1", "2"]),
        "-ERR wrong number of arguments for 'lpop' command"
    );
    // Null forms: bulk without a count, array with one; RESP3 null for both.
    assert_eq!(c.cmd(&["lpop", "nokey"]), "$-1");
    assert_eq!(c.cmd(&["lpop", "nokey", "2"]), "*-1");
    assert_eq!(c.cmd(&["rpop", "l", "10"]), r#"["b", "a", "x"]"#);
    assert_eq!(c.cmd(&["exists", "l"]), ":0", "an emptied list is deleted");
    assert!(c.cmd(&["hello", "3"]).starts_with('{'));
    assert_eq!(c.cmd(&["lpop", "nokey"]), "_");
    assert_eq!(c.cmd(&["lpop", "nokey", "2"]), "_");
    assert_eq!(c.cmd(&["set", "str", "v"]), "+OK");
    assert_eq!(
        c.cmd(&["lpush", "str", "a"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(c.cmd(&["rpush", "q", "1"]), ":1");
    assert_eq!(c.cmd(&["object", "encoding", "q"]), r#""quicklist""#);
}

#[test]
fn index_set_insert_rem_trim_pos() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd(&["rpush", "l", "a", "b", "a", "c", "a"]);
    assert_eq!(c.cmd(&["lindex", "l", "-1"]), r#""a""#);
    assert_eq!(c.cmd(&["lindex", "l", "5"]), "$-1");
    assert_eq!(
        c.cmd(&["lindex", "l", "x"]),
        "-ERR value is not an integer or out of range"
    );
    assert_eq!(c.cmd(&["lset", "l", "1", "B"]), "+OK");
    assert_eq!(c.cmd(&["lset", "l", "9", "B"]), "-ERR index out of range");
    assert_eq!(c.cmd(&["lset", "nokey", "0", "B"]), "-ERR no such key");
    assert_eq!(c.cmd(&["linsert", "l", "before", "c", "X"]), ":6");
    assert_eq!(c.cmd(&["linsert", "l", "AFTER", "nope", "X"]), ":-1");
    assert_eq!(c.cmd(&["linsert", "nokey", "after", "a", "X"]), ":0");
    assert_eq!(
        c.cmd(&["linsert", "l", "middle", "a", "X"]),
        "-ERR syntax error"
    );
    assert_eq!(
        c.cmd(&["lrange", "l", "0", "-1"]),
        r#"["a", "B", "a", "X", "c", "a"]"#
    );
    assert_eq!(c.cmd(&["lpos", "l", "a"]), ":0");
    assert_eq!(c.cmd(&["lpos", "l", "a", "rank", "-1"]), ":5");
    assert_eq!(c.cmd(&["lpos", "l", "a", "count", "0"]), "[:0, :2, :5]");
    assert_eq!(
        c.cmd(&["lpos", "l", "a", "rank", "2", "count", "1"]),
        "[:2]"
    );
    assert_eq!(
        c.cmd(&["lpos", "l", "a", "rank", "-1", "count", "2", "maxlen", "3"]),
        "[:5]"
    );
    assert_eq!(c.cmd(&["lpos", "l", "zz"]), "$-1");
    assert_eq!(c.cmd(&["lpos", "nokey", "a", "count", "0"]), "[]");
    // Redis 7.0.15 negates RANK in a C long, where -LLONG_MIN stays
    // negative: it searches from the tail, every match qualifies, and a COUNT
    // is never reached (checked against redis-server).
    assert_eq!(
        c.cmd(&["lpos", "l", "a", "rank", "-9223372036854775808"]),
        ":5"
    );
    assert_eq!(
        c.cmd(&[
            "lpos",
            "l",
            "a",
            "rank",
            "-9223372036854775808",
            "count",
            "1"
        ]),
        "[:5, :2, :0]"
    );
    assert!(c
        .cmd(&["lpos", "l", "a", "rank", "0"])
        .starts_with("-ERR RANK can't be zero"));
    assert_eq!(
        c.cmd(&["lpos", "l", "a", "count", "-1"]),
        "-ERR COUNT can't be negative"
    );
    assert_eq!(
        c.cmd(&["lpos", "l", "a", "maxlen", "-1"]),
        "-ERR MAXLEN can't be negative"
    );
    assert_eq!(c.cmd(&["lpos", "l", "a", "rank"]), "-ERR syntax error");
    assert_eq!(c.cmd(&["lrem", "l", "-1", "a"]), ":1");
    assert_eq!(
        c.cmd(&["lrange", "l", "0", "-1"]),
        r#"["a", "B", "a", "X", "c"]"#
    );
    assert_eq!(c.cmd(&["lrem", "l", "1", "a"]), ":1");
    assert_eq!(
        c.cmd(&["lrange", "l", "0", "-1"]),
        r#"["B", "a", "X", "c"]"#
    );
    assert_eq!(c.cmd(&["lrem", "l", "0", "a"]), ":1");
    assert_eq!(c.cmd(&["ltrim", "l", "1", "-1"]), "+OK");
    assert_eq!(c.cmd(&["lrange", "l", "0", "-1"]), r#"["X", "c"]"#);
    assert_eq!(c.cmd(&["ltrim", "l", "5", "10"]), "+OK");
    assert_eq!(c.cmd(&["exists", "l"]), ":0");
    assert_eq!(c.cmd(&["ltrim", "nokey", "0", "1"]), "+OK");
}

#[test]
fn moves_and_mpop() {
    let s = Server::start();
    let mut c = s.conn();
    c.cmd(&["rpush", "src", "1", "2", "3"]);
    assert_eq!(c.cmd(&["lmove", "src", "dst", "left", "right"]), r#""1""#);
    assert_eq!(c.cmd(&["rpoplpush", "src", "dst"]), r#""3""#);
    assert_eq!(c.cmd(&["lrange", "dst", "0", "-1"]), r#"["3", "1"]"#);
    assert_eq!(c.cmd(&["lmove", "src", "src", "left", "right"]), r#""2""#);
    assert_eq!(c.cmd(&["lmove", "nokey", "dst", "left", "right"]), "$-1");
    assert_eq!(
        c.cmd(&["lmove", "src", "dst", "up", "right"]),
        "-ERR syntax error"
    );
    c.cmd(&["set", "str", "x"]);
    assert_eq!(
        c.cmd(&["lmove", "src", "str", "left", "right"]),
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(
        c.cmd(&["llen", "src"]),
        ":1",
        "nothing popped on a bad destination"
    );
    assert_eq!(
        c.cmd(&["lmpop", "2", "nokey", "dst", "right", "count", "5"]),
        r#"["dst", ["1", "3"]]"#
    );
    assert_eq!(c.cmd(&["lmpop", "1", "nokey", "left"]), "*-1");
    assert_eq!(
        c.cmd(&["lmpop", "0", "src", "left"]),
        "-ERR numkeys should be greater than 0"
    );
    assert_eq!(c.cmd(&["lmpop", "2", "src", "left"]), "-ERR syntax error");
    assert_eq!(
        c.cmd(&["lmpop", "1", "src", "left", "count", "0"]),
        "-ERR count should be greater than 0"
    );
    assert_eq!(
        c.cmd(&["lmpop", "1", "src", "left", "count", "1", "count", "1"]),
        "-ERR syntax error"
    );
    assert_eq!(c.cmd(&["lmpop", "1", "src", "left"]), r#"["src", ["2"]]"#);
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
            &["rpush", "l", "a", "b", "c", "b", "a"],
            &["lpos", "l", "b", "rank", "-2", "count", "0"],
            &["lpos", "l", "b", "count", "1", "maxlen", "2"],
            &["lpos", "l", "b", "count", "x"],
            &["lpos", "l", "b", "maxlen", "x"],
            &["lpos", "l", "b", "rank", "x"],
            &["lrange", "l", "-100", "-3"],
            &["lrem", "l", "-5", "a"],
            &["ltrim", "l", "-2", "-1"],
            &["lrange", "l", "0", "-1"],
            &["lpop", "l", "abc"],
            // The key is checked before the index is parsed.
            &["lindex", "nokey", "x"],
            &["lset", "nokey", "x", "v"],
            &["set", "str", "v"],
            &["lindex", "str", "x"],
            &["lset", "str", "x", "v"],
            &["blpop", "l", "abc"],
            &["blpop", "l", "-0.5"],
            &["blpop", "l", "inf"],
            &["blpop", "l", "0.001"],
            &["blpop", "nokey", "0.001"],
            &["blmove", "nokey", "x", "left", "left", "0.001"],
            &["blmpop", "0.001", "1", "nokey", "left"],
            &["blmpop", "x", "1", "nokey", "left"],
            &["blmpop", "0", "0", "nokey", "left"],
            &["multi"],
            &["blpop", "nokey", "0"],
            &["blmove", "nokey", "x", "left", "left", "0"],
            &["brpoplpush", "nokey", "x", "0"],
            &["blmpop", "0", "1", "nokey", "left"],
            &["exec"],
            &["hello", "3"],
            &["lpop", "nokey", "1"],
            &["blpop", "nokey", "0.001"],
            &["lmpop", "1", "l", "right", "count", "9"],
        ],
    );
}
