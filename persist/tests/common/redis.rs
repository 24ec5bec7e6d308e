//! A throwaway real redis-server for differential tests, and a minimal
//! RESP client. Servers bind 127.0.0.1 on a free port in a temp dir and are
//! killed when the guard drops.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(Vec<u8>),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    pub fn bulk(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) | Reply::Simple(b) => b.clone(),
            other => panic!("not a bulk: {other:?}"),
        }
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bulk()).into_owned()
    }
    pub fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("not an int: {other:?}"),
        }
    }
    pub fn array(&self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(a)) => a.clone(),
            other => panic!("not an array: {other:?}"),
        }
    }
}

pub struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    pub fn connect(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        Ok(Conn {
            w: s.try_clone()?,
            r: BufReader::new(s),
        })
    }

    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&out).unwrap();
        self.read()
    }

    fn line(&mut self) -> Vec<u8> {
        let mut l = Vec::new();
        self.r.read_until(b'\n', &mut l).unwrap();
        l.truncate(l.len().saturating_sub(2));
        l
    }

    fn read(&mut self) -> Reply {
        let l = self.line();
        let (t, rest) = l.split_first().expect("empty reply line");
        let rest_s = String::from_utf8_lossy(rest).into_owned();
        match t {
            b'+' => Reply::Simple(rest.to_vec()),
            b'-' => Reply::Error(rest_s),
            b':' => Reply::Int(rest_s.parse().unwrap()),
            b'$' => {
                let n: i64 = rest_s.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut b = vec![0u8; n as usize + 2];
                self.r.read_exact(&mut b).unwrap();
                b.truncate(n as usize);
                Reply::Bulk(Some(b))
            }
            b'*' => {
                let n: i64 = rest_s.parse().unwrap();
                if n < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..n).map(|_| self.read()).collect()))
            }
            _ => panic!("bad reply {l:?}"),
        }
    }
}

/// A running redis-server, killed on drop.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `redis-server` is on PATH (prints a SKIP message when not).
pub fn redis_available() -> bool {
    let ok = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: redis-server not on PATH");
    }
    ok
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "redoubt-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts redis-server in `dir` loading `dbfilename` (if it exists).
pub fn start(dir: &Path, dbfilename: &str) -> Server {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args([
            "--dbfilename",
            dbfilename,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let server = Server {
        child,
        port,
        dir: dir.to_path_buf(),
    };
    for _ in 0..100 {
        if let Ok(mut c) = Conn::connect(port) {
            // PING answers LOADING while the dump loads; wait for PONG.
            if c.cmd(&["PING"]) == Reply::Simple(b"PONG".to_vec()) {
                return server;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
    panic!("redis-server did not come up:\n{log}");
}

fn hx(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn pairs(r: &Reply) -> Vec<(String, Reply)> {
    let a = r.array();
    a.chunks(2).map(|c| (c[0].text(), c[1].clone())).collect()
}

fn field<'a>(p: &'a [(String, Reply)], name: &str) -> &'a Reply {
    &p.iter().find(|(k, _)| k == name).unwrap().1
}

/// Every key of every db, in the `.expect` format (as dump_expect.py).
pub fn describe_live(c: &mut Conn) -> Vec<String> {
    let mut out = Vec::new();
    for db in 0..16 {
        c.cmd(&["SELECT", &db.to_string()]);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut cursor = b"0".to_vec();
        loop {
            let r = c.cmd(&[&b"SCAN"[..], &cursor, b"COUNT", b"1000"]).array();
            cursor = r[0].bulk();
            keys.extend(r[1].array().iter().map(Reply::bulk));
            if cursor == b"0" {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        for k in keys {
            describe_live_key(c, db, &k, &mut out);
        }
    }
    out
}

fn describe_live_key(c: &mut Conn, db: usize, key: &[u8], out: &mut Vec<String>) {
    let t = c.cmd(&[&b"TYPE"[..], key]).text();
    let enc = c.cmd(&[&b"OBJECT"[..], b"ENCODING", key]).text();
    let ttl = c.cmd(&[&b"PEXPIRETIME"[..], key]).int();
    out.push(format!("K {db} {} {t} {enc} {ttl}", hx(key)));
    match t.as_str() {
        "string" => out.push(format!("S {}", hx(&c.cmd(&[&b"GET"[..], key]).bulk()))),
        "list" => {
            for e in c.cmd(&[&b"LRANGE"[..], key, b"0", b"-1"]).array() {
                out.push(format!("L {}", hx(&e.bulk())));
            }
        }
        "set" => {
            let mut m: Vec<Vec<u8>> = c
                .cmd(&[&b"SMEMBERS"[..], key])
                .array()
                .iter()
                .map(Reply::bulk)
                .collect();
            m.sort();
            out.extend(m.iter().map(|x| format!("M {}", hx(x))));
        }
        "zset" => {
            let r = c
                .cmd(&[&b"ZRANGE"[..], key, b"0", b"-1", b"WITHSCORES"])
                .array();
            for p in r.chunks(2) {
                let s: f64 = p[1].text().parse().unwrap();
                out.push(format!("Z {} {:016x}", hx(&p[0].bulk()), s.to_bits()));
            }
        }
        "hash" => {
            let r = c.cmd(&[&b"HGETALL"[..], key]).array();
            let mut p: Vec<(Vec<u8>, Vec<u8>)> =
                r.chunks(2).map(|x| (x[0].bulk(), x[1].bulk())).collect();
            p.sort();
            out.extend(p.iter().map(|(f, v)| format!("H {} {}", hx(f), hx(v))));
        }
        "stream" => {
            for e in c.cmd(&[&b"XRANGE"[..], key, b"-", b"+"]).array() {
                let e = e.array();
                let fv = e[1].array();
                let kv: Vec<String> = fv
                    .chunks(2)
                    .map(|x| format!("{}={}", hx(&x[0].bulk()), hx(&x[1].bulk())))
                    .collect();
                out.push(
                    format!("X {} {}", e[0].text(), kv.join(" "))
                        .trim_end()
                        .to_string(),
                );
            }
            let info = pairs(&c.cmd(&[&b"XINFO"[..], b"STREAM", key, b"FULL", b"COUNT", b"0"]));
            out.push(format!(
                "XI {} {} {} {} {}",
                field(&info, "length").int(),
                field(&info, "last-generated-id").text(),
                field(&info, "max-deleted-entry-id").text(),
                field(&info, "entries-added").int(),
                field(&info, "recorded-first-entry-id").text()
            ));
            for g in field(&info, "groups").array() {
                let g = pairs(&g);
                let name = field(&g, "name").bulk();
                let er = match field(&g, "entries-read") {
                    Reply::Int(i) => i.to_string(),
                    _ => "nil".into(),
                };
                out.push(format!(
                    "G {} {} {er} {}",
                    hx(&name),
                    field(&g, "last-delivered-id").text(),
                    field(&g, "pel-count").int()
                ));
                for p in field(&g, "pending").array() {
                    let p = p.array();
                    out.push(format!(
                        "P {} {} {} {} {}",
                        hx(&name),
                        p[0].text(),
                        hx(&p[1].bulk()),
                        p[2].int(),
                        p[3].int()
                    ));
                }
                for cinfo in field(&g, "consumers").array() {
                    let ci = pairs(&cinfo);
                    out.push(format!(
                        "C {} {} {} {}",
                        hx(&name),
                        hx(&field(&ci, "name").bulk()),
                        field(&ci, "seen-time").int(),
                        field(&ci, "pel-count").int()
                    ));
                }
            }
        }
        other => panic!("unexpected type {other}"),
    }
    out.push("E".into());
}
