//! Stream commands end to end: ids, ranges, trimming (against Redis's node
//! layout), consumer groups, blocking reads, and a comparison with Redis.

mod common_dt2;
use common_dt2::*;
use std::time::Duration;

fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

const TRICKY: &str = r#"
xadd s 1-1 a 1
xadd s 1-1 a 1
xadd s 1-* b 2
xadd s 0-0 a 1
xadd s 0 a 1
xadd s 2 a 1 b
xadd s maxlen -1 * a 1
xadd s maxlen ~ 5 limit 10 3-* a 1
xadd s maxlen 5 limit 10 3-* a 1
xadd s limit 10 3-* a 1
xadd s maxlen 1 minid 1 3-* a 1
xadd s nomkstream 3-1 a 1
xadd nokey nomkstream 3-1 a 1
xadd s 18446744073709551615-18446744073709551615 a 1
xadd s 18446744073709551616-0 a 1
xadd s2 +1-01 a 1
xadd s2 -1 a 1
xadd s2 5-* a 1
xadd s2 5-18446744073709551615 a 1
xadd s2 5-* a 1
xlen s
xrange s - +
xrange s2 - + count 2
xrevrange s2 + - count 1
xrange s2 (5-1 +
xrange s2 - (5-1
xrange s2 (- +
xrange s2 (18446744073709551615-18446744073709551615 +
xrange s2 - (0-0
xrange s2 5 5
xrange s2 + -
xrange s2 - + count 0
xrange s2 - + count -3
xrange s2 - + foo 1
xrange s2 abc +
xdel s2 5-1 9-9
xdel s2 abc
xinfo stream s2
xtrim s2 maxlen 0
xinfo stream s2
xtrim nokey foo
xtrim s2 foo
xsetid s2 10-1
xsetid s2 0-1
xsetid s2 20-1 entriesadded 0
xsetid s2 20-1 maxdeletedid 30-0
xsetid s2 20-1 entriesadded 10 maxdeletedid 15-0
xinfo stream s2
xsetid nokey 1-1
xgroup create s g 0
xgroup create s g 0
xgroup create s g2 $ entriesread 1
xgroup create s g3 0 entriesread -2
xgroup createconsumer s g c1
xgroup createconsumer s nog c1
xinfo groups s
xreadgroup group g c1 count 1 streams s >
xinfo groups s
xreadgroup group g c2 streams s >
xreadgroup group g c2 streams s >
xreadgroup group g c1 streams s 0
xreadgroup group g c1 streams s 0-0 s
xreadgroup group g c1 streams s $
xreadgroup group nog c1 streams s >
xreadgroup group g c1 streams nokey >
xread streams s >
xread count 1 streams s 0
xread streams s s2 0 0
xread streams s $
xread group g c streams s 0
xack s g 1-1 abc
xack s g 1-1 1-2 1-1
xdel s 1-2
xinfo groups s
xreadgroup group g c2 streams s 0
xpending s g - + 10 c9
xpending s nog
xpending s g x
xpending s g - + abc
xgroup delconsumer s g c2
xgroup destroy s g2
xgroup destroy s g2
xgroup setid s g 1-1 entriesread 5
xinfo groups s
xgroup setid s g $
xinfo groups s
xgroup create s gx 0 mkstream foo
xgroup create nokey2 gx $ mkstream
xinfo stream nokey2
xgroup create k
xgroup foo k g
xinfo stream
xinfo foo k
xinfo stream k full count
xadd c 5-1 a 1
xadd c 7-1 a 1
xadd c 8-1 a 1
xgroup create c g 0
xreadgroup group g c noack streams c >
xpending c g
xadd c 9-1 a 1
xreadgroup group g c streams c >
xclaim c g c2 0 9-1 5-1 justid
xclaim c g c2 0 9-1 retrycount 7 justid
xclaim c g c2 0 9-1 idle abc
xclaim c g c2 0 9-1 foo
xclaim c g c2 abc 9-1
xclaim c nog c2 0 9-1
xclaim c g c3 0 7-1 force justid
xclaim c g c3 0 1-1 force
xdel c 7-1
xclaim c g c3 0 7-1
xautoclaim c g c4 0 0 count 1 justid
xautoclaim c g c4 0 0 count 0
xautoclaim c g c4 0 0 justid foo
xautoclaim c g c4 abc 0
xautoclaim c nog c4 0 0
xclaim c g c5 0 8-1 force lastid 100-0 justid
xadd c 101-1 a 1
xadd c 102-1 a 1
xdel c 101-1
xinfo groups c
xreadgroup group g c count 1 streams c >
xinfo groups c
xinfo stream c
xadd w 1-1 a 1
xgroup create w g0 0
watch w
xsetid w 5-1
xgroup create w g 0
xgroup setid w g0 0
xreadgroup group g0 c streams w >
xack w g0 1-1
xgroup createconsumer w g0 zz
xgroup destroy w g
xclaim w g0 c 0 1-1 force
xautoclaim w g0 d 0 0
xgroup delconsumer w g0 zz
multi
ping
exec
watch w
xdel w 9-9
xtrim w maxlen 5
multi
ping
exec
watch w
xtrim w maxlen 0
multi
ping
exec
xadd h 1-1 a 1
xadd h 2-1 b 2
xadd h 3-1 c 3
xgroup create h g 0
xreadgroup group g c1 streams h >
xdel h 2-1
xreadgroup group g c1 streams h 0
xreadgroup group g c1 count 1 streams h 1-1
xautoclaim h g c2 0 0 count 10
xautoclaim h g c2 0 (1-1 count 1
xpending h g
xack h g 1-1 3-1
xpending h g
xreadgroup group g c1 noack streams h 0
xinfo groups h
xadd h 4-1 d 4
xreadgroup group g c3 noack streams h >
xpending h g
xinfo groups h
xgroup setid h g 0 entriesread 0
xinfo groups h
xreadgroup group g c3 count 1 streams h >
xinfo groups h
xadd h maxlen 1 5-1 e 5
xinfo groups h
xinfo stream h
"#;

#[test]
fn tricky_sequences_match_redis() {
    compare_with_redis("stream resp2", 2, &lines(TRICKY));
    compare_with_redis("stream resp3", 3, &lines(TRICKY));
}

/// A deterministic mix of XADD with `~` and exact trims, XDEL and XTRIM,
/// with entries of varied sizes so nodes split by bytes as well as by
/// count: XLEN and XINFO STREAM (node counts included) must match Redis.
#[test]
fn approximate_trimming_matches_redis() {
    compare_with_redis(
        "stream trimming",
        2,
        &trim_workload(0x9e3779b97f4a7c15, &[]),
    );
    // Small nodes: splits by count and by bytes happen all the time.
    let small = [
        "config set stream-node-max-entries 7",
        "config set stream-node-max-bytes 300",
    ];
    compare_with_redis(
        "stream trimming, small nodes",
        2,
        &trim_workload(42, &small),
    );
}

fn trim_workload(seed: u64, prelude: &[&str]) -> Vec<String> {
    let mut seed = seed;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut out: Vec<String> = prelude.iter().map(|s| s.to_string()).collect();
    let mut ms = 1u64;
    for i in 0..900 {
        let nf = 1 + rnd(3);
        let mut fields = String::new();
        for j in 0..nf {
            let v = match rnd(5) {
                0 => "1".to_string(),
                1 => "abc".to_string(),
                2 => "x".repeat(1 + rnd(300) as usize),
                3 => "12345678901".to_string(),
                _ => "-5".to_string(),
            };
            fields.push_str(&format!(" f{j} {v}"));
        }
        ms += rnd(3);
        let line = match rnd(100) {
            0..=4 => format!("xadd s maxlen ~ {} {ms}-*{fields}", rnd(400)),
            5..=7 => format!(
                "xadd s minid ~ {}-0 {ms}-*{fields}",
                ms.saturating_sub(rnd(300))
            ),
            8..=9 => format!("xdel s {}-0 {}-1", 1 + rnd(ms), 1 + rnd(ms)),
            10 => format!("xtrim s maxlen ~ {} limit {}", rnd(300), rnd(300)),
            11 => format!("xtrim s maxlen {}", 100 + rnd(300)),
            12 => format!("xtrim s minid {}", ms.saturating_sub(rnd(300))),
            _ => format!("xadd s {ms}-*{fields}"),
        };
        out.push(line);
        if i % 60 == 0 {
            out.push("xlen s".into());
            out.push("xinfo stream s".into());
        }
    }
    out.push("xinfo stream s".into());
    out
}

#[test]
fn ids_and_errors() {
    let s = start();
    let mut c = Client::new(s.port);
    let id = c.line("xadd s * a 1").text();
    let (ms, seq) = id.split_once('-').unwrap();
    assert!(ms.parse::<u64>().unwrap() > 1_600_000_000_000);
    assert_eq!(seq, "0");
    assert_eq!(
        c.line("xadd s 1-1 a 1").err_text(),
        "ERR The ID specified in XADD is equal or smaller than the target stream top item"
    );
    assert_eq!(
        c.line("xrange s 1-x +").err_text(),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        c.line("xadd s 99999999999999999999-1 a 1").err_text(),
        "ERR Invalid stream ID specified as stream command argument"
    );
    assert_eq!(
        c.line("xadd s a").err_text(),
        "ERR wrong number of arguments for 'xadd' command"
    );
    assert_eq!(c.line("xlen s"), V::Int(1));
    // Hostile counts and ranges.
    for l in [
        "xrange s - + count 9223372036854775807",
        "xrevrange s - + count -9223372036854775808",
        "xread count 9223372036854775807 streams s 0",
        "xpending s g - + 9223372036854775807",
        "xautoclaim s g c 0 0 count 9223372036854775807",
        "xinfo stream s full count 9223372036854775807",
        "xtrim s maxlen ~ 0 limit 9223372036854775807",
    ] {
        let _ = c.line(l);
    }
    assert_eq!(c.line("ping"), V::Status("PONG".into()));
}

#[test]
fn blocking_reads() {
    let s = start();
    let mut a = Client::new(s.port);
    let mut b = Client::new(s.port);
    let mut w = Client::new(s.port);
    w.line("xadd s 1-1 old 1");
    // `$` means "after what is there now", even if more arrives before
    // the waiter is served.
    a.send_line("xread block 0 streams s $");
    b.send_line("xread count 1 block 0 streams s 1-1");
    std::thread::sleep(Duration::from_millis(100));
    w.line("xadd s 2-1 new 2");
    let want = V::Array(vec![V::Array(vec![
        V::s("s"),
        V::Array(vec![V::Array(vec![V::s("2-1"), V::arr(&["new", "2"])])]),
    ])]);
    assert_eq!(a.read(), want);
    assert_eq!(b.read(), want);
    // RESP3 gets a map.
    a.line("hello 3");
    a.send_line("xread block 0 streams s $");
    std::thread::sleep(Duration::from_millis(100));
    w.line("xadd s 3-1 x 3");
    assert!(matches!(a.read(), V::Map(m) if m.len() == 1));
    a.line("hello 2");
    // Timeout.
    assert_eq!(w.line("xread block 100 streams s $"), V::NilArray);
    // XREADGROUP: served when entries arrive; fails when the group or the
    // key goes away.
    w.line("xgroup create s g $");
    a.send_line("xreadgroup group g alice block 0 streams s >");
    std::thread::sleep(Duration::from_millis(100));
    w.line("xadd s 4-1 y 4");
    let r = a.read();
    assert_eq!(r.items()[0].items()[1].items()[0].items()[0], V::s("4-1"));
    assert_eq!(w.line("xpending s g").items()[0], V::Int(1));
    a.send_line("xreadgroup group g alice block 0 streams s >");
    std::thread::sleep(Duration::from_millis(100));
    w.line("xgroup destroy s g");
    assert_eq!(
        a.read().err_text(),
        "NOGROUP the consumer group this client was blocked on no longer exists"
    );
    w.line("xgroup create s g $");
    a.send_line("xreadgroup group g alice block 0 streams s >");
    std::thread::sleep(Duration::from_millis(100));
    w.line("del s");
    assert_eq!(
        a.read().err_text(),
        "UNBLOCKED the stream key no longer exists"
    );
}

mod propagation {
    //! What goes to the AOF/replicas, checked in-process with a recording
    //! durability sink.

    use bytes::Bytes;
    use redoubt_server::client::Client;
    use redoubt_server::config::Config;
    use redoubt_server::durability::Durability;
    use redoubt_server::exec::Executor;
    use redoubt_server::resp::Reply;
    use std::cell::RefCell;
    use std::rc::Rc;

    type Log = Rc<RefCell<Vec<Vec<String>>>>;

    struct Recorder(Log);

    impl Durability for Recorder {
        fn append(&mut self, _lsn: u64, _db: usize, args: &[Bytes]) {
            self.0.borrow_mut().push(
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            );
        }
        fn watermark(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
            None
        }
    }

    struct Rig {
        ex: Executor,
        c: Client,
        log: Log,
    }

    impl Rig {
        fn new() -> Rig {
            let log: Log = Default::default();
            let mut ex = Executor::new(Config::default());
            ex.durability = Box::new(Recorder(log.clone()));
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            // The receiver is dropped: nothing in these tests blocks.
            let c = Client::new(1, "127.0.0.1:1".into(), "127.0.0.1:2".into(), true, tx);
            Rig { ex, c, log }
        }

        fn run(&mut self, line: &str) -> Reply {
            let args: Vec<Bytes> = line
                .split_whitespace()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect();
            self.ex.execute(&mut self.c, &args).0
        }

        fn take(&mut self) -> Vec<String> {
            self.log
                .borrow_mut()
                .drain(..)
                .map(|c| c.join(" "))
                .collect()
        }
    }

    #[test]
    fn effects_are_logged_as_redis_logs_them() {
        let mut r = Rig::new();
        r.run("xadd s 5-* a 1");
        assert_eq!(r.take(), vec!["XADD s 5-0 a 1"]);
        for i in 0..250 {
            r.run(&format!("xadd s {}-1 a 1", 10 + i));
        }
        r.take();
        r.run("xadd s maxlen ~ 10 1000-1 a 1 b 2");
        // Whole nodes of 100 went; the trim is logged as what it did.
        assert_eq!(r.take(), vec!["XADD s MAXLEN = 52 1000-1 a 1 b 2"]);
        r.run("xtrim s minid ~ 600-1");
        assert_eq!(r.take(), Vec::<String>::new());
        r.run("xgroup create s g 0");
        assert_eq!(r.take(), vec!["xgroup create s g 0"]);
        r.run("xreadgroup group g alice count 2 streams s >");
        let log = r.take();
        assert_eq!(log.len(), 4, "{log:?}");
        assert_eq!(log[0], "XGROUP CREATECONSUMER s g alice");
        assert!(
            log[1].starts_with("XCLAIM s g alice 0 209-1 TIME "),
            "{log:?}"
        );
        assert!(
            log[1].ends_with("RETRYCOUNT 1 FORCE JUSTID LASTID 209-1"),
            "{log:?}"
        );
        assert_eq!(log[3], "XGROUP SETID s g 210-1 ENTRIESREAD 202");
        r.run("xreadgroup group g alice streams s 0");
        assert_eq!(r.take(), Vec::<String>::new());
        r.run("xclaim s g bob 0 210-1 justid");
        let log = r.take();
        assert!(
            log[0].starts_with("XCLAIM s g bob 0 210-1 TIME "),
            "{log:?}"
        );
        r.run("zadd z 1 a 2 b 3 c");
        r.take();
        r.run("bzpopmax z 0");
        assert_eq!(r.take(), vec!["ZPOPMAX z"]);
        r.run("zmpop 1 z min count 5");
        assert_eq!(r.take(), vec!["ZPOPMIN z 5"]);
        r.run("bzmpop 0 1 z min");
        assert_eq!(r.take(), Vec::<String>::new());
    }
}
