//! Helpers shared by the integration tests: start the real `redoubt-server`
//! binary and, where it is installed, the real `redis-server` on free
//! loopback ports; talk to them with a raw RESP client ([`resp::RawClient`])
//! or the `redis` crate.
//!
//! Finding the server binary: `REDOUBT_SERVER_BIN` if set; otherwise
//! `redoubt-server` next to the test executable's profile directory
//! (`target/<profile>/redoubt-server`), built first with the same cargo and
//! profile that runs the tests (`cargo build -p redoubt-server`, a no-op
//! when it is up to date), so `cargo test -p redoubt-tests` never runs a
//! stale or missing binary. Set `REDOUBT_NO_BUILD=1` to skip that build.

pub mod crash;
pub mod gen;
pub mod process;
pub mod resp;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub use resp::{RawClient, Resp};

/// The `redoubt-server` binary the tests run (see the crate docs).
pub fn redoubt_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("REDOUBT_SERVER_BIN") {
            return PathBuf::from(p);
        }
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test binary>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary under target/<profile>/deps")
            .to_path_buf();
        let bin = profile_dir.join("redoubt-server");
        if std::env::var_os("REDOUBT_NO_BUILD").is_none() {
            build_server(&profile_dir);
        }
        assert!(
            bin.exists(),
            "{} not found: build it (cargo build -p redoubt-server) or set REDOUBT_SERVER_BIN",
            bin.display()
        );
        bin
    })
    .clone()
}

fn build_server(profile_dir: &Path) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_string(),
        Some(p) => p.to_string(),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "redoubt-server",
        "--bin",
        "redoubt-server",
    ])
    .arg("--profile")
    .arg(&profile)
    .arg("--manifest-path")
    .arg(&manifest);
    if let Some(target) = profile_dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("building redoubt-server failed: {s}"),
        Err(e) => {
            eprintln!("could not run cargo to build redoubt-server ({e}); using what is there")
        }
    }
}

/// The `redis-server` on PATH, if any.
pub fn redis_bin() -> Option<PathBuf> {
    find_on_path("redis-server")
}

/// The `redis-cli` on PATH, if any.
pub fn redis_cli_bin() -> Option<PathBuf> {
    find_on_path("redis-cli")
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Prints the standard skip message when redis-server is missing.
pub fn skip_without_redis(test: &str) {
    eprintln!("skipping {test}: redis-server not found on PATH");
}

/// A free loopback port (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redoubt,
    Redis,
}

/// A running server process, killed (and its directory removed) on Drop.
pub struct Server {
    pub kind: Kind,
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl Server {
    /// Redoubt with default test settings.
    pub fn redoubt() -> Server {
        Server::redoubt_with(&[])
    }

    /// Redoubt with extra `--directive value` arguments (each a separate
    /// word: `&["--requirepass", "pw"]`).
    pub fn redoubt_with(extra: &[&str]) -> Server {
        Server::start(Kind::Redoubt, &redoubt_bin(), extra).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Redis 7 with default test settings, or None (after printing why) when
    /// redis-server is not installed.
    pub fn redis() -> Option<Server> {
        Server::redis_with(&[])
    }

    pub fn redis_with(extra: &[&str]) -> Option<Server> {
        let Some(bin) = redis_bin() else {
            eprintln!("skipping: redis-server not found on PATH");
            return None;
        };
        Some(Server::start(Kind::Redis, &bin, extra).unwrap_or_else(|e| panic!("{e}")))
    }

    /// Starts `bin` on a free port with a temporary --dir and waits until it
    /// answers. A few attempts, in case another process takes the port.
    pub fn start(kind: Kind, bin: &Path, extra: &[&str]) -> Result<Server, String> {
        let mut last = String::new();
        for _ in 0..3 {
            match Server::start_once(kind, bin, extra) {
                Ok(s) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn start_once(kind: Kind, bin: &Path, extra: &[&str]) -> Result<Server, String> {
        let dir = tempfile::Builder::new()
            .prefix("redoubt-test-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log"))
            .map_err(|e| format!("log file: {e}"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir.path())
            .args(["--save", "", "--appendonly", "no"]);
        if kind == Kind::Redis {
            cmd.args(["--daemonize", "no", "--logfile", ""]);
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", bin.display()))?;
        let mut s = Server {
            kind,
            port,
            child: Some(child),
            dir,
        };
        s.wait_ready()?;
        Ok(s)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "{:?} exited during start-up ({st}); log:\n{}",
                    self.kind,
                    self.log()
                ));
            }
            if let Ok(mut c) = RawClient::connect(self.port) {
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                if let Ok(r) = c.cmd(&["PING"]) {
                    // PONG, or NOAUTH when a password is required: it answers.
                    if r == Resp::Simple(b"PONG".to_vec()) || r.is_error() {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "{:?} did not answer PING on port {}; log:\n{}",
            self.kind,
            self.port,
            self.log()
        ))
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A `redis` crate connection.
    pub fn conn(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("client");
        let conn = client.get_connection().expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        conn
    }

    /// A raw RESP connection.
    pub fn raw(&self) -> RawClient {
        RawClient::connect(self.port).expect("connect")
    }

    /// A plain TCP connection (for protocol tests).
    pub fn tcp(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        s
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident set size in bytes (Linux /proc).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.pid()?;
        let mut s = String::new();
        std::fs::File::open(format!("/proc/{pid}/status"))
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the server binary with `args` and waits for it to exit (for
/// start-up failures); returns the status and everything it printed.
pub fn run_redoubt_expecting_exit(args: &[&str], timeout: Duration) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out.log");
    let f = std::fs::File::create(&out).expect("log");
    let mut child = Command::new(redoubt_bin())
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup"))
        .stderr(f)
        .spawn()
        .expect("spawn redoubt-server");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "redoubt-server {args:?} did not exit within {timeout:?}; output:\n{}",
                std::fs::read_to_string(&out).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, std::fs::read_to_string(&out).unwrap_or_default())
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
