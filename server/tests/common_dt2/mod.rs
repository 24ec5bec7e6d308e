//! Test helpers for the sorted-set and stream suites: a server process per
//! test (killed on drop), an optional real Redis to compare against, and a
//! small RESP client that returns replies both parsed and as raw bytes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A reply as it came off the wire (RESP2 and RESP3 kinds kept apart).
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Status(String),
    Err(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    NilArray,
    Null,
    Array(Vec<V>),
    Map(Vec<(V, V)>),
    Set(Vec<V>),
    Double(String),
    Bool(bool),
}

impl V {
    pub fn s(x: &str) -> V {
        V::Bulk(x.as_bytes().to_vec())
    }
    pub fn arr(items: &[&str]) -> V {
        V::Array(items.iter().map(|x| V::s(x)).collect())
    }
    pub fn is_err(&self) -> bool {
        matches!(self, V::Err(_))
    }
    pub fn err_text(&self) -> &str {
        match self {
            V::Err(e) => e,
            _ => "",
        }
    }
    pub fn items(&self) -> &[V] {
        match self {
            V::Array(v) | V::Set(v) => v,
            _ => &[],
        }
    }
    pub fn text(&self) -> String {
        match self {
            V::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            V::Status(s) | V::Double(s) | V::Err(s) => s.clone(),
            V::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        }
    }
}

pub struct Server {
    child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Whether a server listens on `port` of 127.0.0.1. A connection whose
/// two ends are the same address is TCP's self-connect (the port is in the
/// ephemeral range and nobody listens yet): it would hold the port and
/// keep the server from binding it, so it does not count.
fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}

/// Waits until `child` listens on `port`. False if it exited first: a
/// test running alongside took the port between [`free_port`] and the
/// child's bind. The port may then answer for that other test's server,
/// so the child must still be running a moment after it answers (a
/// server that cannot bind exits at once).
fn wait_up(port: u16, child: &mut Child) -> bool {
    let exited = |c: &mut Child| c.try_wait().ok().flatten().is_some();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if exited(child) {
            return false;
        }
        if listening(port) {
            std::thread::sleep(Duration::from_millis(50));
            return !exited(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server on port {port} did not start");
}

/// Starts a server with `spawn(port)` on a free port, on another one if
/// it could not bind (see [`wait_up`]). None if `spawn` fails.
fn start_on_free_port(mut spawn: impl FnMut(u16) -> Option<Child>) -> Option<Server> {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port)?;
        if wait_up(port, &mut child) {
            return Some(Server { child, port });
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no server could bind a free port in 5 tries");
}

/// Starts Redoubt with extra `--directive value` arguments.
pub fn start_with(extra: &[&str]) -> Server {
    start_on_free_port(|port| {
        let child = Command::new(env!("CARGO_BIN_EXE_redoubt-server"))
            .args(["--port", &port.to_string(), "--save", ""])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redoubt-server");
        Some(child)
    })
    .expect("redoubt-server")
}

pub fn start() -> Server {
    start_with(&[])
}

/// Starts the real Redis for differential checks, if it is installed.
pub fn start_redis() -> Option<Server> {
    start_on_free_port(|port| {
        Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
    })
}

pub struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
    raw: Vec<u8>,
}

impl Client {
    pub fn new(port: u16) -> Client {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).ok();
        Client {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
            raw: Vec::new(),
        }
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).expect("write");
    }

    /// Reads one reply.
    pub fn read(&mut self) -> V {
        self.raw.clear();
        self.value()
    }

    /// The raw bytes of the last reply read.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Sends a command given as words and reads its reply.
    pub fn cmd(&mut self, words: &[&str]) -> V {
        let a: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
        self.send(&a);
        self.read()
    }

    /// Splits a line on spaces (no quoting) and runs it.
    pub fn line(&mut self, line: &str) -> V {
        let w: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&w)
    }

    /// Sends a line without waiting for the reply (for blocking commands).
    pub fn send_line(&mut self, line: &str) {
        let w: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.send(&w);
    }

    pub fn set_timeout(&mut self, d: Duration) {
        self.w.set_read_timeout(Some(d)).ok();
    }

    fn read_line(&mut self) -> String {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).expect("read line");
        self.raw.extend_from_slice(&l);
        assert!(
            l.ends_with(b"\r\n"),
            "bad line {:?}",
            String::from_utf8_lossy(&l)
        );
        l.truncate(l.len() - 2);
        String::from_utf8_lossy(&l).into_owned()
    }

    fn value(&mut self) -> V {
        let l = self.read_line();
        let (t, rest) = l.split_at(1);
        let n = || rest.parse::<i64>().expect("length");
        match t {
            "+" => V::Status(rest.into()),
            "-" => V::Err(rest.into()),
            ":" => V::Int(n()),
            "," => V::Double(rest.into()),
            "#" => V::Bool(rest == "t"),
            "_" => V::Null,
            "$" => {
                if n() < 0 {
                    return V::Nil;
                }
                let mut b = vec![0u8; n() as usize + 2];
                self.r.read_exact(&mut b).expect("bulk");
                self.raw.extend_from_slice(&b);
                b.truncate(b.len() - 2);
                V::Bulk(b)
            }
            "*" | "~" | ">" => {
                if n() < 0 {
                    return V::NilArray;
                }
                let v = (0..n()).map(|_| self.value()).collect();
                if t == "~" {
                    V::Set(v)
                } else {
                    V::Array(v)
                }
            }
            "%" => V::Map((0..n()).map(|_| (self.value(), self.value())).collect()),
            other => panic!("unexpected reply type {other}"),
        }
    }
}

/// Runs `lines` on Redoubt and on the real Redis (when installed) with the
/// given protocol, and asserts byte-identical replies. Lines whose replies
/// depend on timing or randomness must not be included.
pub fn compare_with_redis(name: &str, proto: u8, lines: &[String]) {
    let Some(redis) = start_redis() else {
        eprintln!("{name}: redis-server not found on PATH; skipping the comparison");
        return;
    };
    let ours = start();
    let mut a = Client::new(redis.port);
    let mut b = Client::new(ours.port);
    if proto == 3 {
        a.cmd(&["HELLO", "3"]);
        b.cmd(&["HELLO", "3"]);
    }
    for l in lines {
        let w: Vec<&str> = l.split_whitespace().collect();
        a.cmd(&w);
        b.cmd(&w);
        assert_eq!(
            String::from_utf8_lossy(b.raw()),
            String::from_utf8_lossy(a.raw()),
            "{name}: reply to `{l}` differs from Redis (left: Redoubt, right: Redis)"
        );
    }
}
