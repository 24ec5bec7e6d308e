//! Sorted-set commands end to end: replies, errors, RESP3 forms, score
//! formatting, encodings, blocking pops, and a comparison with real Redis.

mod common_dt2;
use common_dt2::*;
use std::time::{Duration, Instant};

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

const TRICKY: &str = r#"
zadd z 1 a 2.5 b inf c 4 d 5 e 6 f 0.1 g -0 h 1e-5 i 123456789012345678 j
zrange z 0 -1 withscores
zrange z 0 1 withscores
zpopmin z
zpopmin z 1
zpopmax z 2
zmpop 1 z min
zmpop 1 z max count 10
zadd z 1 a 2.5 b inf c 4 d 5 e 6 f
zunion 1 z withscores
zscore z f
zmscore z f nope
zincrby z 1 e
zrangestore d z 0 -1 withscores
zrangestore d z 0 -1
zrange d 0 -1
zintercard 0 z
zintercard 2 z
zintercard 1 z limit -1
zintercard 1 z limit 1
zunionstore d 0 z
zrandmember z -9223372036854775807 withscores
zrandmember z -9223372036854775808
zrange z 0 -1 limit 0 -1
zrange z 0 -1 limit 0 1
zrange z (1 2 byscore
zadd z 1e-400 a
zrangebyscore z ( 5
zpopmin z -1
zscan z 0 noscores
zscan z 0
zrange z [a + bylex withscores
zrange z 0 1 byscore rev
zadd z incr 1 a 2 b
zadd z nx xx 1 a
zadd z gt lt 1 a
zadd z nx gt 1 a
zmpop 0 z min
zmpop 2 z min
zmpop 1 z min count 0
zmpop 1 z min count 1 count 1
zdiff 1 z weights 1
bzpopmin z -1
bzpopmin z abc
bzmpop 1 1 z max count 2
zpopmin nokey
zmpop 1 nokey min
zrank z nope
zrandmember nokey
zrandmember nokey 5
zadd s 1 a 2 b 3 c 4 d 5 e 6 f 7 g
zrangebyscore s -inf +inf withscores limit 1 2
zrevrangebyscore s +inf -inf withscores limit 1 2
zrevrangebyscore s 5 (2
zrangebyscore s (2 5 limit -1 2
zrangebyscore s (2 5 limit 1 -1
zrangebylex s - +
zrangebylex s [b (e
zrevrangebylex s (e [b limit 1 1
zrangebylex s + -
zrangebylex s a b
zlexcount s - +
zlexcount s [c +
zcount s (1 3
zcount s abc 3
zrevrange s 0 2 withscores
zrevrange s -100 100
zrange s 5 2
zrange s -2 -1
zrange s 3 1000000000000
zrange s 0 9223372036854775807
zrange s -9223372036854775808 -1
zrank s c
zrevrank s c
zremrangebyrank s 0 1
zremrangebyscore s (3 4
zremrangebylex s [f +
zrange s 0 -1 withscores
zadd s xx ch 10 c 1 zz
zadd s ch gt 1 c 20 e
zadd s lt incr 100 e
zadd s incr -inf e
zadd s incr +inf e
zincrby s abc e
zadd s nan x
zadd s 1 x 2
zadd s xx 1 q
zadd s xx incr 1 q
zcard s
zcard nokey
zrem s c e nope
zrange s 0 -1 withscores
set str x
zadd str 1 a
zrange str 0 -1
zunion 2 s str
zrandmember s 0
zrandmember s 1 withscores junk
object encoding s
zadd big 1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
object encoding big
zrange s 0 -1 limit 1 1 byscore
zrange s 0 -1 byscore byscore
zrange s 0 -1 rev rev
zrange s 1 0 bylex
zadd w1 1 a 2 b 3 c
zadd w2 10 b 20 c 30 d
zadd plain 1 a 1 d 1 x
zunion 3 w1 w2 plain withscores
zinter 3 w1 w2 plain withscores
zunion 2 w1 w2 weights 2 0.5 aggregate max withscores
zinter 2 w1 w2 weights 2 0.5 aggregate min withscores
zunion 2 w1 w2 weights 2 withscores
zunion 2 w1 w2 aggregate foo
zunion 2 w1 w2 weights 1 abc
zdiff 2 w2 w1 withscores
zdiffstore out 2 w2 w1
zrange out 0 -1 withscores
zinterstore out 2 w1 nokey
exists out
zunionstore out 2 w1 w2
object encoding out
zinterstore out 2 w1 w2 weights inf 0
zrange out 0 -1 withscores
zadd n 1 a
zunionstore out 2 w1 w1 weights inf -inf
zrange out 0 -1 withscores
zadd ninf inf a
zincrby ninf -inf a
zrange w1 0 -1 withscores rev
zrevrangebyscore w1 (3 (1
zinter 0 w1
zinter 2 w1
zintercard 2 w1 w2
zintercard 2 w1 w2 limit 1
zrangestore d2 w1 (1 +inf byscore limit 0 1
zrange d2 0 -1 withscores
zrangestore d2 nokey 0 -1
exists d2
zadd wz 1 a
watch wz
zadd wz nx 5 a
zadd wz xx 1 a
zincrby wz 0 a
zrem wz nope
zremrangebyscore wz 5 6
zpopmin wz 0
multi
ping
exec
watch wz
zincrby wz 1 a
multi
ping
exec
"#;

#[test]
fn tricky_sequences_match_redis() {
    compare_with_redis("zset resp2", 2, &lines(TRICKY));
    compare_with_redis("zset resp3", 3, &lines(TRICKY));
}

#[test]
fn encodings_follow_the_listpack_limits() {
    let cfg = lines(
        "config set zset-max-listpack-entries 4
         config set zset-max-listpack-value 8
         zadd a 1 a 2 b 3 c 4 d
         object encoding a
         zadd a 5 e
         object encoding a
         zrem a a b c d
         object encoding a
         zadd b 1 123456789
         object encoding b
         zadd c 1 x
         zadd c 1 longer-than-eight
         object encoding c
         zunionstore u 2 a c
         object encoding u
         zrangestore r b 0 -1
         object encoding r
         config set zset-max-listpack-entries 0
         zadd e 1 x
         object encoding e",
    );
    compare_with_redis("zset encodings", 2, &cfg);
}

#[test]
fn replies_scores_and_resp3_forms() {
    let s = start();
    let mut c = Client::new(s.port);
    assert_eq!(c.line("zadd z 1.1 a 0.1 b inf c -inf d"), V::Int(4));
    assert_eq!(c.line("zscore z a"), V::s("1.1000000000000001"));
    assert_eq!(c.line("zscore z c"), V::s("inf"));
    assert_eq!(
        c.line("zrange z 0 -1 withscores"),
        V::arr(&[
            "d",
            "-inf",
            "b",
            "0.10000000000000001",
            "a",
            "1.1000000000000001",
            "c",
            "inf"
        ])
    );
    assert_eq!(
        c.line("zincrby z -inf c").err_text(),
        "ERR resulting score is not a number (NaN)"
    );
    c.line("hello 3");
    assert_eq!(
        c.line("zscore z b"),
        V::Double("0.10000000000000001".into())
    );
    let r = c.line("zrange z 0 1 withscores");
    assert_eq!(
        r,
        V::Array(vec![
            V::Array(vec![V::s("d"), V::Double("-inf".into())]),
            V::Array(vec![V::s("b"), V::Double("0.10000000000000001".into())]),
        ])
    );
    // ZPOPMIN without COUNT stays flat in RESP3; with COUNT it nests.
    assert_eq!(
        c.line("zpopmin z"),
        V::Array(vec![V::s("d"), V::Double("-inf".into())])
    );
    assert_eq!(
        c.line("zpopmin z 1"),
        V::Array(vec![V::Array(vec![
            V::s("b"),
            V::Double("0.10000000000000001".into())
        ])])
    );
    assert_eq!(c.line("zrank z nope"), V::Null);
    assert_eq!(c.line("zmpop 1 nokey min"), V::Null);
}

#[test]
fn rank_and_index_queries_on_a_big_set() {
    let s = start();
    let mut c = Client::new(s.port);
    let n = 5000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut w: Vec<String> = vec!["zadd".into(), "big".into()];
        for i in chunk {
            w.push(((i * 7919) % n).to_string());
            w.push(format!("m{i:05}"));
        }
        let r: Vec<&str> = w.iter().map(String::as_str).collect();
        assert_eq!(c.cmd(&r), V::Int(chunk.len() as i64));
    }
    assert_eq!(c.line("object encoding big"), V::s("skiplist"));
    // Scores are a permutation of 0..n: rank == score.
    for i in [0usize, 1, 77, 2500, 4999] {
        let m = format!("m{i:05}");
        let score = (i * 7919) % n;
        assert_eq!(c.cmd(&["zrank", "big", &m]), V::Int(score as i64));
        assert_eq!(
            c.cmd(&["zrevrank", "big", &m]),
            V::Int((n - 1 - score) as i64)
        );
        let r = c.cmd(&["zrange", "big", &score.to_string(), &score.to_string()]);
        assert_eq!(r, V::Array(vec![V::s(&m)]));
    }
    assert_eq!(c.line("zcount big 100 (200"), V::Int(100));
    assert_eq!(c.line("zremrangebyrank big 0 999"), V::Int(1000));
    assert_eq!(c.line("zcard big"), V::Int(4000));
    assert_eq!(c.line("zrange big 0 0 withscores").items()[1], V::s("1000"));
    // ZSCAN over a skiplist visits every member exactly once.
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let r = c.cmd(&["zscan", "big", &cursor, "count", "97"]);
        let items = r.items();
        cursor = items[0].text();
        for pair in items[1].items().chunks(2) {
            assert!(seen.insert(pair[0].text()), "duplicate {:?}", pair[0]);
        }
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(seen.len(), 4000);
    // Random members: distinct for a positive count, right size for negative.
    let r = c.line("zrandmember big 50");
    let set: std::collections::HashSet<_> = r.items().iter().map(V::text).collect();
    assert_eq!(set.len(), 50);
    assert_eq!(c.line("zrandmember big -7000").items().len(), 7000);
    assert_eq!(
        c.line("zrandmember big 9000 withscores").items().len(),
        8000
    );
}

#[test]
fn hostile_arguments_do_not_break_anything() {
    let s = start();
    let mut c = Client::new(s.port);
    c.line("zadd z 1 a 2 b 3 c");
    for l in [
        "zrange z -9223372036854775808 9223372036854775807",
        "zrange z 0 -1 byscore limit 9223372036854775807 9223372036854775807",
        "zrange z +inf -inf byscore rev limit 1 -5",
        "zrangebylex z + - limit -9223372036854775808 1",
        "zpopmin z 9223372036854775807",
        "zmpop 9223372036854775807 z min",
        "bzmpop 0.01 9223372036854775807 z min",
        "zunion 9223372036854775807 z",
        "zrandmember z -9223372036854775807",
        "zscan z 18446744073709551615 count 9223372036854775807",
        "zremrangebyrank z 5 -100",
    ] {
        let _ = c.line(l);
    }
    assert_eq!(c.line("ping"), V::Status("PONG".into()));
}

#[test]
fn blocking_pops_serve_clients_in_order() {
    let s = start();
    let mut a = Client::new(s.port);
    let mut b = Client::new(s.port);
    let mut w = Client::new(s.port);
    a.send_line("bzpopmin k1 k2 0");
    std::thread::sleep(Duration::from_millis(100));
    b.send_line("bzmpop 0 1 k2 max count 5");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(w.line("zadd k2 1 x 2 y 3 z"), V::Int(3));
    assert_eq!(a.read(), V::Array(vec![V::s("k2"), V::s("x"), V::s("1")]));
    assert_eq!(
        b.read(),
        V::Array(vec![
            V::s("k2"),
            V::Array(vec![V::arr(&["z", "3"]), V::arr(&["y", "2"])]),
        ])
    );
    assert_eq!(w.line("exists k2"), V::Int(0));
    // Timeouts answer a null array.
    let t = Instant::now();
    assert_eq!(w.line("bzpopmax nokey 0.2"), V::NilArray);
    assert!(t.elapsed() >= Duration::from_millis(150));
    // Inside MULTI a blocking pop does not block.
    w.line("multi");
    w.line("bzpopmin nokey 0");
    assert_eq!(w.line("exec"), V::Array(vec![V::NilArray]));
    // A write of the wrong type leaves the waiter blocked; a zset wakes it.
    a.send_line("bzpopmax k3 0");
    std::thread::sleep(Duration::from_millis(100));
    w.line("set k3 x");
    w.line("del k3");
    w.line("zadd k3 5 five");
    assert_eq!(
        a.read(),
        V::Array(vec![V::s("k3"), V::s("five"), V::s("5")])
    );
}

/// Random operations on big sorted sets (past the listpack limit, many
/// equal scores so member order matters) compared with Redis.
#[test]
fn random_workload_matches_redis() {
    let mut seed: u64 = 0x2545f4914f6cdd1d;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut out = Vec::new();
    for i in 0..1500 {
        let m = format!("m{}", rnd(400));
        let sc = match rnd(4) {
            0 => format!("{}", rnd(20)),
            1 => format!("{}.{}", rnd(20), rnd(1000)),
            2 => format!("-{}", rnd(5)),
            _ => "7".to_string(),
        };
        let line = match rnd(40) {
            0..=17 => format!("zadd z {sc} {m} {} m{}", rnd(9), rnd(400)),
            // Lex ranges are only defined when all scores are equal.
            18..=19 => format!("zadd lx 0 {m} 0 m{}", rnd(400)),
            20..=22 => format!("zincrby z {sc} {m}"),
            23..=25 => format!("zrem z {m} m{}", rnd(400)),
            26 => format!(
                "zrangebyscore z ({} {} withscores limit {} {}",
                rnd(10),
                rnd(20),
                rnd(5),
                rnd(8)
            ),
            27 => format!("zrevrangebyscore z {} -inf limit {} 5", rnd(20), rnd(10)),
            28 => format!(
                "zrangebylex lx [m{} (m{} limit {} 9",
                rnd(400),
                rnd(400),
                rnd(3)
            ),
            29 => format!("zrank z {m}"),
            30 => format!("zrevrank z {m}"),
            31 => format!("zrange z {} {} withscores", rnd(300), rnd(300)),
            32 => format!("zrange z -{} -{} rev", 1 + rnd(300), 1 + rnd(50)),
            33 => format!("zcount z ({} {}", rnd(10), rnd(20)),
            34 => format!("zremrangebyscore z {} ({}", rnd(20), rnd(20)),
            35 => format!("zremrangebyrank z {} {}", rnd(100), rnd(100)),
            36 => format!("zpopmin z {}", rnd(3)),
            37 => format!("zpopmax z {}", rnd(3)),
            38 => format!("zlexcount lx - [m{}", rnd(400)),
            _ => format!("zmscore z {m} m{}", rnd(400)),
        };
        out.push(line);
        if i % 100 == 0 {
            out.push("zrange z 0 -1 withscores".into());
            out.push("object encoding z".into());
        }
    }
    out.push("zrange z 0 -1 withscores".into());
    compare_with_redis("zset workload", 2, &out);
}
