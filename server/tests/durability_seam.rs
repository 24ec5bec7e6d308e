//! The durability seam: the executor hands every write to the durability
//! sink with an LSN, and a reply leaves only once the sink's watermark
//! covers the LSN of the state it saw. Run in process with a `Gate` sink
//! whose watermark the test moves by hand.

use bytes::Bytes;
use redoubt_server::config::Config;
use redoubt_server::durability::Gate;
use redoubt_server::exec::Executor;
use redoubt_server::run::serve_with;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

/// Reads exactly `want.len()` bytes and checks them.
async fn expect(s: &mut TcpStream, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("reply within 5 s")
        .expect("read");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(want),
        "reply"
    );
}

/// Asserts nothing arrives for a while.
async fn expect_silence(s: &mut TcpStream, what: &str) {
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_millis(300), s.read(&mut b)).await;
    assert!(
        r.is_err(),
        "{what}: a reply arrived before the watermark: {r:?}"
    );
}

type Log = Vec<(u64, usize, Vec<Bytes>)>;

fn entries(log: &Log) -> Vec<(u64, usize, String)> {
    log.iter()
        .map(|(lsn, db, args)| {
            let words: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            (*lsn, *db, words.join(" "))
        })
        .collect()
}

#[test]
fn replies_wait_for_the_durability_watermark() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cfg = Config {
            port,
            ..Config::default()
        };
        let mut ex = Executor::new(cfg);
        let (gate, watermark) = Gate::new();
        let log = gate.log.clone();
        ex.durability = Box::new(gate);
        let server = tokio::task::spawn_local(serve_with(ex, vec![listener]));

        let mut a = TcpStream::connect(("127.0.0.1", port)).await.expect("a");
        let mut b = TcpStream::connect(("127.0.0.1", port)).await.expect("b");

        // A write is executed at once but not acknowledged.
        a.write_all(&cmd(&["SET", "k", "v1"])).await.expect("write");
        expect_silence(&mut a, "SET").await;
        assert_eq!(entries(&log.borrow()), vec![(1, 0, "SET k v1".into())]);

        // A read that saw the write waits for it too.
        b.write_all(&cmd(&["GET", "k"])).await.expect("write");
        expect_silence(&mut b, "GET after SET").await;

        // Replies that show no data wait for nothing (a log that cannot be
        // written does not silence them)...
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.expect("c");
        c.write_all(&[cmd(&["PING"]), cmd(&["ECHO", "hi"]), cmd(&["NOPE"])].concat())
            .await
            .expect("write");
        expect(
            &mut c,
            b"+PONG\r\n$2\r\nhi\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n",
        )
        .await;
        // ... but leave after the replies sent before them on their
        // connection.
        a.write_all(&cmd(&["PING"])).await.expect("write");
        expect_silence(&mut a, "PING after a waiting SET").await;

        watermark.send_replace(1);
        expect(&mut a, b"+OK\r\n+PONG\r\n").await;
        expect(&mut b, b"$2\r\nv1\r\n").await;

        // A pipelined batch: logged in execution order with increasing
        // LSNs; its replies go out when the watermark covers the batch.
        let mut batch = Vec::new();
        for c in [
            &["SET", "n", "1"][..],
            &["INCR", "n"],
            &["GET", "n"],
            &["SELECT", "3"],
            &["DEL", "k"],
            &["SET", "k", "in3"],
        ] {
            batch.extend(cmd(c));
        }
        a.write_all(&batch).await.expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            entries(&log.borrow()),
            vec![
                (1, 0, "SET k v1".into()),
                (2, 0, "SET n 1".into()),
                (3, 0, "INCR n".into()),
                (4, 3, "SET k in3".into()),
            ],
            "DEL of a missing key changes nothing and is not logged"
        );
        watermark.send_replace(3);
        expect_silence(&mut a, "batch with the watermark at 3 of 4").await;
        watermark.send_replace(4);
        expect(&mut a, b"+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n:0\r\n+OK\r\n").await;

        // A transaction is logged whole, between MULTI and EXEC.
        b.write_all(&[cmd(&["MULTI"]), cmd(&["INCR", "n"]), cmd(&["EXEC"])].concat())
            .await
            .expect("write");
        expect_silence(&mut b, "EXEC").await;
        let tail: Vec<_> = entries(&log.borrow()).into_iter().skip(4).collect();
        assert_eq!(
            tail,
            vec![
                (5, 0, "MULTI".into()),
                (6, 0, "INCR n".into()),
                (7, 0, "EXEC".into())
            ]
        );
        watermark.send_replace(7);
        expect(&mut b, b"+OK\r\n+QUEUED\r\n*1\r\n:3\r\n").await;
        server.abort();
    });
}
