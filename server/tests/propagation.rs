//! What list, hash and set commands hand to the durability sink (the AOF
//! form): run in-process against the executor with a recording sink.

use bytes::Bytes;
use redoubt_server::client::{Client, Outgoing};
use redoubt_server::config::Config;
use redoubt_server::durability::Gate;
use redoubt_server::exec::Executor;
use redoubt_server::resp::Reply;
use std::cell::RefCell;
use std::rc::Rc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

type Log = Rc<RefCell<Vec<(u64, usize, Vec<Bytes>)>>>;

struct Harness {
    ex: Executor,
    log: Log,
}

impl Harness {
    fn new() -> Harness {
        let mut ex = Executor::new(Config::default());
        let (gate, _tx) = Gate::new();
        let log = gate.log.clone();
        ex.durability = Box::new(gate);
        Harness { ex, log }
    }

    fn client(&mut self) -> (Rc<RefCell<Client>>, UnboundedReceiver<Outgoing>) {
        let (tx, rx) = unbounded_channel();
        let c = self.ex.register_client(|id| {
            let mut c = Client::new(id, "127.0.0.1:1".into(), "127.0.0.1:2".into(), true, tx);
            c.authenticated = true;
            c
        });
        (c, rx)
    }

    fn run(&mut self, c: &Rc<RefCell<Client>>, args: &[&str]) -> Reply {
        let args: Vec<Bytes> = args
            .iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        self.ex.execute(&mut c.borrow_mut(), &args).0
    }

    /// The logged commands since the last call, as space-joined strings.
    fn take_log(&mut self) -> Vec<String> {
        self.log
            .borrow_mut()
            .drain(..)
            .map(|(_, _, args)| {
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }
}

#[test]
fn blocking_pops_are_logged_as_plain_pops() {
    let mut h = Harness::new();
    let (a, mut a_rx) = h.client();
    let (b, mut b_rx) = h.client();
    let (c, _c_rx) = h.client();
    assert_eq!(h.run(&a, &["blpop", "k", "0"]), Reply::Blocked);
    assert_eq!(
        h.run(&b, &["blmove", "k", "d", "right", "left", "0"]),
        Reply::Blocked
    );
    h.run(&c, &["rpush", "k", "1", "2"]);
    match a_rx.try_recv() {
        Ok(Outgoing::Reply(r, _)) => {
            assert_eq!(r, Reply::Array(vec![Reply::bulk(b"k"), Reply::bulk(b"1")]))
        }
        other => panic!("a not served: {other:?}"),
    }
    match b_rx.try_recv() {
        Ok(Outgoing::Reply(r, _)) => assert_eq!(r, Reply::bulk(b"2")),
        other => panic!("b not served: {other:?}"),
    }
    assert_eq!(
        h.take_log(),
        ["rpush k 1 2", "LPOP k", "LMOVE k d RIGHT LEFT"]
    );
    // Served at once, the same forms.
    h.run(&c, &["rpush", "k", "1", "2", "3"]);
    h.run(&c, &["brpop", "k", "0"]);
    h.run(&c, &["brpoplpush", "k", "d", "0"]);
    h.run(&c, &["blmpop", "0", "1", "k", "left", "count", "5"]);
    h.run(&c, &["lmpop", "1", "d", "right"]);
    assert_eq!(
        h.take_log(),
        [
            "rpush k 1 2 3",
            "RPOP k",
            "LMOVE k d RIGHT LEFT",
            "LPOP k 5",
            "RPOP d 1"
        ]
    );
    // Nothing to pop: nothing logged.
    h.run(&c, &["lpop", "nokey"]);
    h.run(&c, &["multi"]);
    h.run(&c, &["blpop", "nokey", "0"]);
    h.run(&c, &["exec"]);
    assert!(h.take_log().is_empty());
}

#[test]
fn spop_and_hincrbyfloat_are_logged_as_effects() {
    let mut h = Harness::new();
    let (c, _rx) = h.client();
    h.run(&c, &["sadd", "s", "a", "b", "c"]);
    let Reply::Bulk(m) = h.run(&c, &["spop", "s"]) else {
        panic!()
    };
    let m = String::from_utf8_lossy(&m).into_owned();
    assert_eq!(
        h.take_log(),
        ["sadd s a b c".to_string(), format!("SREM s {m}")]
    );
    h.run(&c, &["spop", "s", "1"]);
    let log = h.take_log();
    assert_eq!(log.len(), 1);
    assert!(log[0].starts_with("SREM s "), "{log:?}");
    h.run(&c, &["spop", "s", "5"]);
    assert_eq!(h.take_log(), ["DEL s"]);
    h.run(&c, &["hincrbyfloat", "h", "f", "0.1"]);
    h.run(&c, &["hincrbyfloat", "h", "f", "0.2"]);
    assert_eq!(h.take_log(), ["HSET h f 0.1", "HSET h f 0.3"]);
    // Failed or no-op writes log nothing.
    h.run(&c, &["srem", "s", "x"]);
    h.run(&c, &["hdel", "h", "nope"]);
    h.run(&c, &["sadd", "t", "1"]);
    h.run(&c, &["sadd", "t", "1"]);
    assert_eq!(h.take_log(), ["sadd t 1"]);
}

#[test]
fn xadd_is_logged_with_its_id_and_an_exact_trim() {
    let mut h = Harness::new();
    let (c, _rx) = h.client();
    h.run(&c, &["xadd", "s", "5-1", "f", "v"]);
    h.run(&c, &["xadd", "s", "maxlen", "1", "*", "f", "w"]);
    let log = h.take_log();
    assert_eq!(log[0], "xadd s 5-1 f v");
    // The automatic id is logged as the one chosen, the trim as exact.
    let second = &log[1];
    assert!(
        second.starts_with("XADD s MAXLEN = 1 ") && second.ends_with(" f w"),
        "{second}"
    );
    assert!(!second.contains('*'), "{second}");
}

#[test]
fn without_a_log_xadd_still_takes_one_lsn() {
    // With the AOF off nothing keeps the logged form, so XADD skips
    // building it; the LSN (which replies wait on) moves all the same.
    let mut ex = Executor::new(Config::default());
    let (tx, _rx) = unbounded_channel();
    let c = ex.register_client(|id| {
        let mut c = Client::new(id, "127.0.0.1:1".into(), "127.0.0.1:2".into(), true, tx);
        c.authenticated = true;
        c
    });
    let args: Vec<Bytes> = ["xadd", "s", "maxlen", "~", "10", "*", "f", "v"]
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let before = ex.lsn;
    ex.execute(&mut c.borrow_mut(), &args);
    assert_eq!(ex.lsn, before + 1);
}
