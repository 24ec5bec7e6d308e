//! Process-level crash tests: the real `redoubt-server` in a directory the
//! test chooses (so it can be killed and restarted on the same files), a
//! write load whose acknowledged writes are known, and the checks that
//! compare what came back after a restart with what was acknowledged.
//!
//! Keys of the write load are `<prefix><client>:<n>` with n = 1, 2, ... in
//! order per client, so "the recovered state is a prefix of the history"
//! becomes "each client's keys are 1..=m with no hole", and "no acknowledged
//! write is lost" becomes "m >= the last n that got +OK".

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Limits applied to the child before it runs the server (for the
/// unprivileged full-disk variant: a file-size limit stands in for a full
/// disk, as writes past it fail with EFBIG).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChildLimits {
    /// RLIMIT_FSIZE soft limit in bytes (the hard limit stays unlimited so
    /// the test can raise it later with [`DirServer::set_fsize_limit`]).
    pub fsize: Option<u64>,
}

/// A `redoubt-server` (or `redis-server`) process running in `dir`, killed
/// on Drop. Unlike [`crate::Server`], the directory belongs to the test and
/// outlives the process.
pub struct DirServer {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
}

impl DirServer {
    /// Spawns `bin --port P --bind 127.0.0.1 --dir dir <args>` without
    /// waiting for it to answer; output goes to `log`.
    pub fn spawn(bin: &Path, dir: &Path, log: &Path, args: &[&str], limits: ChildLimits) -> Self {
        let port = crate::free_port();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("log {}: {e}", log.display()));
        let mut cmd = Command::new(bin);
        cmd.arg("--port")
            .arg(port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup log"))
            .stderr(out);
        if bin.file_name().is_some_and(|n| n == "redis-server") {
            cmd.args(["--daemonize", "no", "--logfile", ""]);
        }
        if let Some(limit) = limits.fsize {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls (signal, setrlimit)
            // between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    // Ignored dispositions survive exec: a write past the
                    // limit then fails with EFBIG instead of killing the
                    // process with SIGXFSZ.
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        DirServer {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            log: log.to_path_buf(),
        }
    }

    /// Spawns and waits until it answers PING (loading done). A process
    /// that exits during start-up is retried on a new port, twice: another
    /// process may have taken the free port in between.
    pub fn start(bin: &Path, dir: &Path, log: &Path, args: &[&str]) -> Result<Self, String> {
        let mut last = String::new();
        for _ in 0..3 {
            let mut s = DirServer::spawn(bin, dir, log, args, ChildLimits::default());
            match s.wait_ready(Duration::from_secs(60)) {
                Ok(()) => return Ok(s),
                Err(e) if s.child.is_none() => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// Waits until the server answers PING with PONG, and INFO with its
    /// own pid: a port picked free can be taken by another test's server
    /// before this one binds it, and that one answers PING too while this
    /// one exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.try_exit() {
                return Err(format!(
                    "server exited during start-up ({st}); log:\n{}",
                    self.log()
                ));
            }
            if let Ok(mut c) = crate::RawClient::connect(self.port) {
                let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
                if let Ok(r) = c.cmd(&["PING"]) {
                    if r == crate::Resp::Simple(b"PONG".to_vec()) && self.answers_as_itself(&mut c)
                    {
                        return Ok(());
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "server on port {} not ready; log:\n{}",
            self.port,
            self.log()
        ))
    }

    /// Whether INFO on `c` reports this server's pid.
    fn answers_as_itself(&self, c: &mut crate::RawClient) -> bool {
        let (Some(pid), Ok(crate::Resp::Bulk(info))) = (self.pid(), c.cmd(&["INFO", "server"]))
        else {
            return false;
        };
        let want = format!("process_id:{pid}");
        String::from_utf8_lossy(&info)
            .lines()
            .any(|l| l.trim_end() == want)
    }

    /// True once the listening socket accepts connections (Redoubt binds
    /// before it loads, so this is true during loading too).
    pub fn accepts(&self) -> bool {
        listening(self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// What the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A `redis` crate connection with a generous read timeout; panics if
    /// the server does not answer (see [`DirServer::try_conn`]).
    pub fn conn(&self) -> redis::Connection {
        self.try_conn(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("connecting to port {}: {e}", self.port))
    }

    /// A `redis` crate connection whose handshake and replies each wait at
    /// most `timeout`. The crate reads its handshake's replies (CLIENT
    /// SETINFO) with no timeout of its own, so the handshake runs on a
    /// thread, left behind if the server never answers: a server that
    /// holds its replies fails the test instead of hanging it.
    pub fn try_conn(&self, timeout: Duration) -> Result<redis::Connection, String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .map_err(|e| e.to_string())?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(client.get_connection_with_timeout(timeout));
        });
        let c = rx
            .recv_timeout(timeout)
            .map_err(|_| format!("no answer to the connection handshake in {timeout:?}"))?
            .map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// One field of INFO (all sections); None if the server does not
    /// answer within 10 s.
    pub fn info(&self, field: &str) -> Option<String> {
        let mut c = self.try_conn(Duration::from_secs(10)).ok()?;
        let info: String = redis::cmd("INFO").query(&mut c).ok()?;
        info_field(&info, field)
    }

    /// Polls INFO until `field` has `value`.
    pub fn wait_info(&self, field: &str, value: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.info(field).as_deref() == Some(value))
    }

    /// SIGKILL, then reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (SIGTERM, SIGINT) without waiting.
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid as libc::pid_t, sig);
            }
        }
    }

    /// Sets the soft RLIMIT_FSIZE of the running process (the hard limit
    /// set at spawn is unlimited, so raising it needs no privilege).
    pub fn set_fsize_limit(&self, bytes: u64) -> std::io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| std::io::Error::other("not running"))?;
        let lim = libc::rlimit {
            rlim_cur: bytes,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: prlimit on our own child with a valid struct.
        let r = unsafe {
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_FSIZE,
                &lim,
                std::ptr::null_mut(),
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn try_exit(&mut self) -> Option<ExitStatus> {
        let st = self.child.as_mut()?.try_wait().ok().flatten()?;
        self.child = None;
        Some(st)
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DirServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The value of `field` in an INFO text.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(|v| v.trim().to_string())
    })
}

/// Clients that each SET `<prefix><t>:<n>` for n = 1, 2, ... and remember
/// the last n that was acknowledged. An error reply (MISCONF, a failed AOF
/// write) is retried with the same n after a pause, so the history has no
/// holes; a broken connection ends the client.
pub struct WriteLoad {
    stop: Arc<AtomicBool>,
    acked: Vec<Arc<AtomicU64>>,
    errors: Arc<AtomicU64>,
    handles: Vec<JoinHandle<()>>,
    pub prefix: String,
}

impl WriteLoad {
    pub fn start(port: u16, clients: usize, prefix: &str) -> WriteLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let mut acked = Vec::new();
        let mut handles = Vec::new();
        for t in 0..clients {
            let a = Arc::new(AtomicU64::new(0));
            acked.push(a.clone());
            let stop = stop.clone();
            let errors = errors.clone();
            let prefix = prefix.to_string();
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
            let mut c = client.get_connection().expect("connect");
            let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
            handles.push(std::thread::spawn(move || {
                let mut n = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    let r: redis::RedisResult<redis::Value> = redis::cmd("SET")
                        .arg(format!("{prefix}{t}:{n}"))
                        .arg(n)
                        .query(&mut c);
                    match r {
                        Ok(_) => {
                            a.store(n, Ordering::SeqCst);
                            n += 1;
                        }
                        Err(e) if e.is_io_error() || e.is_connection_dropped() => break,
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
            }));
        }
        WriteLoad {
            stop,
            acked,
            errors,
            handles,
            prefix: prefix.to_string(),
        }
    }

    /// The last acknowledged n of each client so far.
    pub fn acked(&self) -> Vec<u64> {
        self.acked
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect()
    }

    /// Sum of acknowledged writes so far.
    pub fn total(&self) -> u64 {
        self.acked().iter().sum()
    }

    /// Error replies seen (and retried) so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Stops the clients (call after the server is gone or they may keep
    /// writing) and returns the last acknowledged n of each.
    pub fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            let _ = h.join();
        }
        self.acked
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect()
    }
}

/// How many of `<prefix><t>:1..` exist in a row (pipelined EXISTS).
pub fn recovered_prefix(c: &mut redis::Connection, prefix: &str, t: usize) -> Result<u64, String> {
    const CHUNK: u64 = 1000;
    let mut base = 0u64;
    loop {
        let mut p = redis::pipe();
        for n in base + 1..=base + CHUNK {
            p.cmd("EXISTS").arg(format!("{prefix}{t}:{n}"));
        }
        let got: Vec<i64> = p.query(c).map_err(|e| e.to_string())?;
        match got.iter().position(|&e| e == 0) {
            Some(i) => return Ok(base + i as u64),
            None => base += CHUNK,
        }
    }
}

/// Checks a restarted server against a write load's acknowledgements: each
/// client's keys are a prefix 1..=m (no key in the 64 after m) and m covers
/// every acknowledged n. Returns the recovered m per client.
pub fn check_acked_prefix(
    c: &mut redis::Connection,
    prefix: &str,
    acked: &[u64],
) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for (t, &n) in acked.iter().enumerate() {
        let m = recovered_prefix(c, prefix, t)?;
        if m < n {
            return Err(format!(
                "client {prefix}{t}: acknowledged up to {n}, recovered only 1..={m}"
            ));
        }
        let mut p = redis::pipe();
        for k in m + 2..m + 66 {
            p.cmd("EXISTS").arg(format!("{prefix}{t}:{k}"));
        }
        let after: Vec<i64> = p.query(c).map_err(|e| e.to_string())?;
        if let Some(i) = after.iter().position(|&e| e != 0) {
            return Err(format!(
                "client {prefix}{t}: hole: 1..={m} present, {} missing, {} present",
                m + 1,
                m + 2 + i as u64
            ));
        }
        out.push(m);
    }
    Ok(out)
}

/// Every regular file under `dir` (recursively) with its bytes, sorted by
/// relative path: to show a directory was not modified.
pub fn snapshot_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let rel = p.strip_prefix(root).unwrap_or(&p).display().to_string();
                out.push((rel, bytes));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// File names under `dir` (recursively), sorted, relative.
pub fn file_names(dir: &Path) -> Vec<String> {
    snapshot_files(dir).into_iter().map(|(n, _)| n).collect()
}

/// Loads an RDB file in process with checksum verification: a torn or
/// damaged dump is an error here.
pub fn load_rdb(path: &Path) -> Result<redoubt_persist::Keyspace, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut ks = redoubt_persist::Keyspace::new(16);
    let opts = redoubt_persist::rdb::LoadOptions::new(0);
    redoubt_persist::rdb::load_keyspace(&bytes[..], Some(bytes.len() as u64), &mut ks, &opts)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(ks)
}

/// Whether a server listens on `port` of 127.0.0.1. A connection whose
/// two ends are the same address is TCP's self-connect (the port is in the
/// ephemeral range and nobody listens yet): it would hold the port and
/// keep the server from binding it, so it does not count.
fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}
