//! Shared helpers for the integration tests: start a server process (ours,
//! or a real redis-server as an oracle), talk RESP to it, and render replies
//! in a compact text form that keeps every type distinction:
//!
//! `+OK`, `-ERR msg`, `:1`, `"bulk"`, `$-1` (null bulk), `*-1` (null array),
//! `_` (RESP3 null), `[a, b]` (array), `~[a, b]` (set), `{k: v}` (map),
//! `,1.5` (double), `#t` (bool).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
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
        .expect("no free port")
}

/// Whether process `pid` listens on `port` of 127.0.0.1. A connection whose
/// two ends are the same address is TCP's self-connect (the port is in the
/// ephemeral range and nobody listens yet): it would hold the port and
/// keep the server from binding it, so it does not count.
///
/// Tests run in parallel, and another test's server can bind the port
/// picked for this one first: this one then fails to bind and exits, and
/// the other answers on the port until its test ends (which would explain
/// `sets::pop_random_move` once getting "connection refused" on its second
/// connection). So the listener must also say, in INFO, that it is
/// process `pid`.
fn listening_as(port: u16, pid: u32) -> bool {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if s.local_addr().ok() == s.peer_addr().ok() {
        return false;
    }
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if (&s)
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .is_err()
    {
        return false;
    }
    let mut r = BufReader::new(&s);
    let mut header = String::new();
    if r.read_line(&mut header).is_err() {
        return false;
    }
    let Some(len) = header
        .trim_end()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
    else {
        return false;
    };
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return false;
    }
    let want = format!("process_id:{pid}");
    String::from_utf8_lossy(&body)
        .lines()
        .any(|l| l.trim_end() == want)
}

fn spawn(program: &str, extra: &[&str]) -> Option<Server> {
    // A port picked this way can be taken by someone else before the
    // server binds it; try a few.
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new(program);
        cmd.args(["--port", &port.to_string(), "--save", ""])
            .args(["--bind", "127.0.0.1"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().ok()?;
        let mut server = Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if listening_as(port, server.child.id()) {
                return Some(server);
            }
            if let Ok(Some(_)) = server.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    None
}

impl Server {
    /// Starts our server.
    pub fn start() -> Server {
        spawn(env!("CARGO_BIN_EXE_redoubt-server"), &[]).expect("redoubt-server did not start")
    }

    /// Starts a real redis-server if one is on PATH.
    pub fn redis() -> Option<Server> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            eprintln!("redis-server not on PATH: skipping the comparison with Redis");
            return None;
        }
        let server = spawn("redis-server", &["--appendonly", "no"]);
        assert!(
            server.is_some(),
            "redis-server is on PATH but did not start"
        );
        server
    }

    pub fn conn(&self) -> Conn {
        Conn::new(self.port)
    }
}

pub struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    pub fn new(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        }
    }

    /// Sends a command without waiting for the reply.
    pub fn send(&mut self, args: &[&str]) {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send_bytes(&args);
    }

    pub fn send_bytes(&mut self, args: &[&[u8]]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).unwrap();
    }

    /// Sends a command and returns its reply in the compact form.
    pub fn cmd(&mut self, args: &[&str]) -> String {
        self.send(args);
        self.read()
    }

    /// Reads one reply in the compact form.
    pub fn read(&mut self) -> String {
        let mut out = String::new();
        self.read_into(&mut out);
        out
    }

    /// Waits at most `ms` for a reply; None if none came.
    pub fn read_within(&mut self, ms: u64) -> Option<String> {
        self.w
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .unwrap();
        let got = self.r.fill_buf().map(|b| !b.is_empty()).unwrap_or(false);
        self.w
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        got.then(|| self.read())
    }

    /// Asserts that no reply arrives within `ms`.
    pub fn assert_no_reply(&mut self, ms: u64) {
        if let Some(r) = self.read_within(ms) {
            panic!("unexpected reply: {r}");
        }
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).expect("read");
        assert!(l.ends_with("\r\n"), "truncated reply line {l:?}");
        l.truncate(l.len() - 2);
        l
    }

    fn read_into(&mut self, out: &mut String) {
        let l = self.line();
        let (t, rest) = l.split_at(1);
        match t {
            "+" | "-" | ":" | "," | "#" => {
                out.push_str(t);
                out.push_str(rest);
            }
            "_" => out.push('_'),
            "$" | "=" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    out.push_str("$-1");
                    return;
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut buf).unwrap();
                buf.truncate(n as usize);
                out.push_str(&format!("{:?}", String::from_utf8_lossy(&buf)));
            }
            "*" | "~" | ">" | "%" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    out.push_str("*-1");
                    return;
                }
                let (open, close) = match t {
                    "~" => ("~[", "]"),
                    ">" => (">[", "]"),
                    "%" => ("{", "}"),
                    _ => ("[", "]"),
                };
                out.push_str(open);
                for i in 0..n {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    self.read_into(out);
                    if t == "%" {
                        out.push_str(": ");
                        self.read_into(out);
                    }
                }
                out.push_str(close);
            }
            _ => panic!("bad reply type {l:?}"),
        }
    }
}

/// Splits a compact flat array `["a", "b"]` into its items, sorted (for
/// replies whose order Redis leaves unspecified).
pub fn sorted(reply: &str) -> Vec<String> {
    let inner = reply
        .trim_start_matches('~')
        .trim_start_matches('[')
        .trim_end_matches(']');
    let mut v: Vec<String> = if inner.is_empty() {
        Vec::new()
    } else {
        inner.split(", ").map(str::to_string).collect()
    };
    v.sort();
    v
}

/// Runs every command on both servers and asserts the replies are equal
/// (HELLO's reply carries the client id, so it is not compared).
pub fn compare(ours: &mut Conn, redis: &mut Conn, script: &[&[&str]]) {
    for args in script {
        let a = ours.cmd(args);
        let b = redis.cmd(args);
        if !args[0].eq_ignore_ascii_case("hello") {
            assert_eq!(a, b, "reply to {args:?} differs from Redis");
        }
    }
}
