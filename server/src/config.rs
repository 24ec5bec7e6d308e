//! Configuration: redis.conf syntax, command-line `--directive value`, and
//! CONFIG GET/SET, all driven by one parameter table so that a name, its
//! default, its parsing and its runtime mutability are written once.

use crate::resp::split_args;
use crate::util::glob_match;
use redoubt_persist::cpus::{CpuList, CpuListError};
use std::fmt;

/// Parameter flags.
pub const IMMUTABLE: u8 = 1;
/// Settable at runtime only with `enable-protected-configs yes`.
pub const PROTECTED: u8 = 2;
/// Not shown by `CONFIG GET *` style patterns beyond its exact name (aliases).
pub const HIDDEN: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendFsync {
    Always,
    EverySec,
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Verbose,
    Notice,
    Warning,
    Nothing,
}

/// Who may run DEBUG (and other guarded commands): Redis's enable-*-command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enable {
    No,
    Yes,
    Local,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub port: u16,
    pub bind: Vec<String>,
    pub protected_mode: bool,
    pub requirepass: String,
    pub databases: usize,
    pub dir: String,
    pub dbfilename: String,
    pub maxclients: u64,
    pub timeout: u64,
    pub loglevel: LogLevel,
    pub logfile: String,
    pub enable_debug_command: Enable,
    pub enable_protected_configs: Enable,
    pub hz: u64,
    pub daemonize: bool,
    pub pidfile: String,
    pub tcp_backlog: u64,
    pub tcp_keepalive: u64,
    pub proto_max_bulk_len: u64,
    pub client_query_buffer_limit: u64,
    pub maxmemory: u64,
    pub maxmemory_policy: String,
    // Persistence (used by the RDB, snapshot and AOF work).
    pub save: Vec<(u64, u64)>,
    pub rdbcompression: bool,
    pub rdbchecksum: bool,
    pub rdb_version: u64,
    pub stop_writes_on_bgsave_error: bool,
    pub rdb_del_sync_files: bool,
    pub sanitize_dump_payload: String,
    pub appendonly: bool,
    pub appendfsync: AppendFsync,
    pub appenddirname: String,
    pub appendfilename: String,
    pub aof_use_rdb_preamble: bool,
    pub aof_load_truncated: bool,
    pub aof_timestamp_enabled: bool,
    pub auto_aof_rewrite_percentage: u64,
    pub auto_aof_rewrite_min_size: u64,
    pub no_appendfsync_on_rewrite: bool,
    pub aof_rewrite_incremental_fsync: bool,
    pub rdb_save_incremental_fsync: bool,
    // Encodings (what OBJECT ENCODING and the RDB writer follow).
    pub hash_max_listpack_entries: u64,
    pub hash_max_listpack_value: u64,
    pub zset_max_listpack_entries: u64,
    pub zset_max_listpack_value: u64,
    pub set_max_intset_entries: u64,
    pub list_max_listpack_size: i64,
    pub list_compress_depth: u64,
    pub stream_node_max_bytes: u64,
    pub stream_node_max_entries: u64,
    pub lazyfree_lazy_user_flush: bool,
    pub slowlog_log_slower_than: i64,
    pub slowlog_max_len: u64,
    pub latency_monitor_threshold: u64,
    pub notify_keyspace_events: String,
    pub appendonly_dir_fsync: bool,
    /// Redoubt's own: how long the event loop keeps polling after the
    /// last read before it sleeps (see [`crate::busy_poll`]); 0 = never.
    pub busy_poll_us: u64,
    /// CPU affinity, as Redis's settings of the same names: the event
    /// loop's thread (and the threads it starts after), and the encoder and
    /// writer of a BGSAVE (or SAVE) and of an AOF rewrite. `None`: the
    /// affinity of the thread that starts them.
    pub server_cpulist: Option<CpuList>,
    pub bgsave_cpulist: Option<CpuList>,
    pub aof_rewrite_cpulist: Option<CpuList>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 6379,
            bind: vec!["127.0.0.1".into(), "-::1".into()],
            protected_mode: true,
            requirepass: String::new(),
            databases: 16,
            dir: ".".into(),
            dbfilename: "dump.rdb".into(),
            maxclients: 10000,
            timeout: 0,
            loglevel: LogLevel::Notice,
            logfile: String::new(),
            enable_debug_command: Enable::No,
            enable_protected_configs: Enable::No,
            hz: 10,
            daemonize: false,
            pidfile: String::new(),
            tcp_backlog: 511,
            tcp_keepalive: 300,
            proto_max_bulk_len: 512 * 1024 * 1024,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            maxmemory: 0,
            maxmemory_policy: "noeviction".into(),
            save: vec![(3600, 1), (300, 100), (60, 10000)],
            rdbcompression: true,
            rdbchecksum: true,
            rdb_version: 10,
            stop_writes_on_bgsave_error: true,
            rdb_del_sync_files: false,
            sanitize_dump_payload: "no".into(),
            appendonly: false,
            appendfsync: AppendFsync::EverySec,
            appenddirname: "appendonlydir".into(),
            appendfilename: "appendonly.aof".into(),
            aof_use_rdb_preamble: true,
            aof_load_truncated: true,
            aof_timestamp_enabled: false,
            auto_aof_rewrite_percentage: 100,
            auto_aof_rewrite_min_size: 64 * 1024 * 1024,
            no_appendfsync_on_rewrite: false,
            aof_rewrite_incremental_fsync: true,
            rdb_save_incremental_fsync: true,
            hash_max_listpack_entries: 512,
            hash_max_listpack_value: 64,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            set_max_intset_entries: 512,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
            stream_node_max_bytes: 4096,
            stream_node_max_entries: 100,
            lazyfree_lazy_user_flush: false,
            slowlog_log_slower_than: 10000,
            slowlog_max_len: 128,
            latency_monitor_threshold: 0,
            notify_keyspace_events: String::new(),
            appendonly_dir_fsync: true,
            busy_poll_us: 50,
            server_cpulist: None,
            bgsave_cpulist: None,
            aof_rewrite_cpulist: None,
        }
    }
}

type Getter = fn(&Config) -> String;
type Setter = fn(&mut Config, &[String]) -> Result<(), String>;

/// One configuration parameter.
pub struct Param {
    pub name: &'static str,
    pub alias: Option<&'static str>,
    pub flags: u8,
    pub get: Getter,
    pub set: Setter,
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.into()
}

fn one(v: &[String]) -> Result<&str, String> {
    match v {
        [x] => Ok(x.as_str()),
        _ => Err("wrong number of arguments".into()),
    }
}

fn parse_bool(v: &[String]) -> Result<bool, String> {
    match one(v)?.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err("argument must be 'yes' or 'no'".into()),
    }
}

fn parse_int(v: &[String], min: i64, max: i64) -> Result<i64, String> {
    let s = one(v)?;
    let n: i64 = s
        .parse()
        .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
    if n < min || n > max {
        return Err(format!(
            "argument must be between {min} and {max} inclusive"
        ));
    }
    Ok(n)
}

/// Parses a memory value: "100", "1k" (1000), "1kb" (1024), "1gb" ...
pub fn parse_memory(s: &str) -> Option<u64> {
    let lower = s.to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1u64 << 30),
        ("mb", 1 << 20),
        ("kb", 1 << 10),
        ("g", 1_000_000_000),
        ("m", 1_000_000),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suf, mul)| lower.strip_suffix(suf).map(|n| (n.to_string(), *mul)))
    .unwrap_or((lower.clone(), 1));
    num.parse::<u64>().ok()?.checked_mul(mul)
}

fn parse_mem(v: &[String]) -> Result<u64, String> {
    parse_memory(one(v)?).ok_or_else(|| "argument must be a memory value".to_string())
}

fn parse_enum<T: Copy>(v: &[String], choices: &[(&str, T)]) -> Result<T, String> {
    let s = one(v)?.to_ascii_lowercase();
    choices
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
            format!(
                "argument(s) must be one of the following: {}",
                names.join(", ")
            )
        })
}

// Choices are listed in Redis's order: its error message names them so.
const FSYNC: &[(&str, AppendFsync)] = &[
    ("everysec", AppendFsync::EverySec),
    ("always", AppendFsync::Always),
    ("no", AppendFsync::No),
];
const MAXMEMORY_POLICIES: &[(&str, &str)] = &[
    ("volatile-lru", "volatile-lru"),
    ("volatile-lfu", "volatile-lfu"),
    ("volatile-random", "volatile-random"),
    ("volatile-ttl", "volatile-ttl"),
    ("allkeys-lru", "allkeys-lru"),
    ("allkeys-lfu", "allkeys-lfu"),
    ("allkeys-random", "allkeys-random"),
    ("noeviction", "noeviction"),
];
const LOGLEVEL: &[(&str, LogLevel)] = &[
    ("debug", LogLevel::Debug),
    ("verbose", LogLevel::Verbose),
    ("notice", LogLevel::Notice),
    ("warning", LogLevel::Warning),
    ("nothing", LogLevel::Nothing),
];
const ENABLE: &[(&str, Enable)] = &[
    ("no", Enable::No),
    ("yes", Enable::Yes),
    ("local", Enable::Local),
];

fn name_of<T: PartialEq + Copy>(choices: &[(&'static str, T)], v: T) -> String {
    choices
        .iter()
        .find(|(_, t)| *t == v)
        .map(|(n, _)| n.to_string())
        .unwrap_or_default()
}

macro_rules! p_bool {
    ($name:literal, $f:ident) => {
        p_bool!($name, $f, 0)
    };
    ($name:literal, $f:ident, $flags:expr) => {
        Param {
            name: $name,
            alias: None,
            flags: $flags,
            get: |c| yes_no(c.$f),
            set: |c, v| {
                c.$f = parse_bool(v)?;
                Ok(())
            },
        }
    };
}

macro_rules! p_int {
    ($name:literal, $f:ident, $t:ty, $min:expr, $max:expr) => {
        p_int!($name, None, $f, $t, $min, $max, 0)
    };
    ($name:literal, $alias:expr, $f:ident, $t:ty, $min:expr, $max:expr, $flags:expr) => {
        Param {
            name: $name,
            alias: $alias,
            flags: $flags,
            get: |c| c.$f.to_string(),
            set: |c, v| {
                c.$f = parse_int(v, $min, $max)? as $t;
                Ok(())
            },
        }
    };
}

macro_rules! p_mem {
    ($name:literal, $f:ident) => {
        Param {
            name: $name,
            alias: None,
            flags: 0,
            get: |c| c.$f.to_string(),
            set: |c, v| {
                c.$f = parse_mem(v)?;
                Ok(())
            },
        }
    };
}

macro_rules! p_str {
    ($name:literal, $f:ident, $flags:expr) => {
        Param {
            name: $name,
            alias: None,
            flags: $flags,
            get: |c| c.$f.clone(),
            set: |c, v| {
                c.$f = one(v)?.to_string();
                Ok(())
            },
        }
    };
}

macro_rules! p_enum {
    ($name:literal, $f:ident, $choices:expr, $flags:expr) => {
        Param {
            name: $name,
            alias: None,
            flags: $flags,
            get: |c| name_of($choices, c.$f),
            set: |c, v| {
                c.$f = parse_enum(v, $choices)?;
                Ok(())
            },
        }
    };
}

/// A CPU list setting: empty (the default) for none.
macro_rules! p_cpus {
    ($name:literal, $f:ident) => {
        Param {
            name: $name,
            alias: None,
            flags: IMMUTABLE,
            get: |c| c.$f.as_ref().map(CpuList::to_string).unwrap_or_default(),
            set: |c, v| {
                let s = one(v)?;
                c.$f = match s {
                    "" => None,
                    _ => Some(s.parse().map_err(|e: CpuListError| e.to_string())?),
                };
                Ok(())
            },
        }
    };
}

/// Every parameter Redoubt knows, in the order CONFIG GET * lists them.
pub static PARAMS: &[Param] = &[
    p_int!("port", None, port, u16, 0, 65535, IMMUTABLE),
    Param {
        name: "bind",
        alias: None,
        flags: IMMUTABLE,
        get: |c| c.bind.join(" "),
        set: |c, v| {
            let list: Vec<String> = v
                .iter()
                .flat_map(|s| s.split_whitespace().map(str::to_string))
                .collect();
            if list.is_empty() {
                return Err("wrong number of arguments".into());
            }
            c.bind = list;
            Ok(())
        },
    },
    p_bool!("protected-mode", protected_mode),
    p_str!("requirepass", requirepass, 0),
    p_int!(
        "databases",
        None,
        databases,
        usize,
        1,
        i32::MAX as i64,
        IMMUTABLE
    ),
    p_str!("dir", dir, PROTECTED),
    p_str!("dbfilename", dbfilename, PROTECTED),
    p_int!("maxclients", None, maxclients, u64, 1, u32::MAX as i64, 0),
    p_int!("timeout", None, timeout, u64, 0, i32::MAX as i64, 0),
    p_enum!("loglevel", loglevel, LOGLEVEL, 0),
    p_str!("logfile", logfile, IMMUTABLE),
    p_enum!(
        "enable-debug-command",
        enable_debug_command,
        ENABLE,
        IMMUTABLE
    ),
    p_enum!(
        "enable-protected-configs",
        enable_protected_configs,
        ENABLE,
        IMMUTABLE
    ),
    // Redis takes any non-negative value and keeps it clamped to 1..=500.
    Param {
        name: "hz",
        alias: None,
        flags: 0,
        get: |c| c.hz.to_string(),
        set: |c, v| {
            c.hz = parse_int(v, 0, i32::MAX as i64)?.clamp(1, 500) as u64;
            Ok(())
        },
    },
    p_bool!("daemonize", daemonize, IMMUTABLE),
    p_str!("pidfile", pidfile, IMMUTABLE),
    p_int!(
        "tcp-backlog",
        None,
        tcp_backlog,
        u64,
        0,
        i32::MAX as i64,
        IMMUTABLE
    ),
    p_int!("tcp-keepalive", tcp_keepalive, u64, 0, i32::MAX as i64),
    p_mem!("proto-max-bulk-len", proto_max_bulk_len),
    p_mem!("client-query-buffer-limit", client_query_buffer_limit),
    p_mem!("maxmemory", maxmemory),
    Param {
        name: "maxmemory-policy",
        alias: None,
        flags: 0,
        get: |c| c.maxmemory_policy.clone(),
        set: |c, v| {
            c.maxmemory_policy = parse_enum(v, MAXMEMORY_POLICIES)?.to_string();
            Ok(())
        },
    },
    Param {
        name: "save",
        alias: None,
        flags: 0,
        get: |c| {
            c.save
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
        set: |c, v| {
            let words: Vec<&str> = v.iter().flat_map(|s| s.split_whitespace()).collect();
            if !words.len().is_multiple_of(2) {
                return Err("Invalid save parameters".into());
            }
            let mut points = Vec::new();
            for pair in words.chunks(2) {
                let secs = pair[0]
                    .parse()
                    .map_err(|_| "Invalid save parameters".to_string())?;
                let changes = pair[1]
                    .parse()
                    .map_err(|_| "Invalid save parameters".to_string())?;
                points.push((secs, changes));
            }
            c.save = points;
            Ok(())
        },
    },
    p_bool!("rdbcompression", rdbcompression),
    p_bool!("rdbchecksum", rdbchecksum),
    p_int!("rdb-version", rdb_version, u64, 10, 12),
    p_bool!("stop-writes-on-bgsave-error", stop_writes_on_bgsave_error),
    p_bool!("rdb-del-sync-files", rdb_del_sync_files),
    p_str!("sanitize-dump-payload", sanitize_dump_payload, 0),
    p_bool!("appendonly", appendonly),
    p_enum!("appendfsync", appendfsync, FSYNC, 0),
    p_str!("appenddirname", appenddirname, IMMUTABLE),
    p_str!("appendfilename", appendfilename, IMMUTABLE),
    p_bool!("aof-use-rdb-preamble", aof_use_rdb_preamble),
    p_bool!("aof-load-truncated", aof_load_truncated),
    p_bool!("aof-timestamp-enabled", aof_timestamp_enabled),
    p_int!(
        "auto-aof-rewrite-percentage",
        auto_aof_rewrite_percentage,
        u64,
        0,
        i32::MAX as i64
    ),
    p_mem!("auto-aof-rewrite-min-size", auto_aof_rewrite_min_size),
    p_bool!("no-appendfsync-on-rewrite", no_appendfsync_on_rewrite),
    p_bool!(
        "aof-rewrite-incremental-fsync",
        aof_rewrite_incremental_fsync
    ),
    p_bool!("rdb-save-incremental-fsync", rdb_save_incremental_fsync),
    p_int!(
        "hash-max-listpack-entries",
        Some("hash-max-ziplist-entries"),
        hash_max_listpack_entries,
        u64,
        0,
        i64::MAX,
        0
    ),
    p_int!(
        "hash-max-listpack-value",
        Some("hash-max-ziplist-value"),
        hash_max_listpack_value,
        u64,
        0,
        i64::MAX,
        0
    ),
    p_int!(
        "zset-max-listpack-entries",
        Some("zset-max-ziplist-entries"),
        zset_max_listpack_entries,
        u64,
        0,
        i64::MAX,
        0
    ),
    p_int!(
        "zset-max-listpack-value",
        Some("zset-max-ziplist-value"),
        zset_max_listpack_value,
        u64,
        0,
        i64::MAX,
        0
    ),
    p_int!(
        "set-max-intset-entries",
        set_max_intset_entries,
        u64,
        0,
        i64::MAX
    ),
    p_int!(
        "list-max-listpack-size",
        Some("list-max-ziplist-size"),
        list_max_listpack_size,
        i64,
        i32::MIN as i64,
        i32::MAX as i64,
        0
    ),
    p_int!(
        "list-compress-depth",
        list_compress_depth,
        u64,
        0,
        i32::MAX as i64
    ),
    p_mem!("stream-node-max-bytes", stream_node_max_bytes),
    p_int!(
        "stream-node-max-entries",
        stream_node_max_entries,
        u64,
        0,
        i64::MAX
    ),
    p_bool!("lazyfree-lazy-user-flush", lazyfree_lazy_user_flush),
    p_int!(
        "slowlog-log-slower-than",
        slowlog_log_slower_than,
        i64,
        -1,
        i64::MAX
    ),
    p_int!("slowlog-max-len", slowlog_max_len, u64, 0, i64::MAX),
    p_int!(
        "latency-monitor-threshold",
        latency_monitor_threshold,
        u64,
        0,
        i64::MAX
    ),
    p_str!("notify-keyspace-events", notify_keyspace_events, 0),
    // Redoubt's own (Redis has no such setting); at most a second.
    p_int!("busy-poll-us", busy_poll_us, u64, 0, 1_000_000),
    p_cpus!("server_cpulist", server_cpulist),
    p_cpus!("bgsave_cpulist", bgsave_cpulist),
    p_cpus!("aof_rewrite_cpulist", aof_rewrite_cpulist),
];

/// Looks a parameter up by name or alias, case-insensitively.
pub fn find(name: &str) -> Option<&'static Param> {
    let lower = name.to_ascii_lowercase();
    PARAMS
        .iter()
        .find(|p| p.name == lower || p.alias == Some(lower.as_str()))
}

/// A start-up configuration error, rendered as Redis renders it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigFileError {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub reason: String,
}

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\n*** FATAL CONFIG FILE ERROR (Redoubt {}) ***",
            crate::VERSION
        )?;
        writeln!(
            f,
            "Reading the configuration file {}, at line {}",
            self.file, self.line
        )?;
        writeln!(f, ">>> '{}'", self.text)?;
        write!(f, "{}", self.reason)
    }
}

impl Config {
    /// Applies configuration text (a redis.conf, or directives built from
    /// the command line). `file` names the source in errors.
    pub fn apply_text(&mut self, text: &str, file: &str) -> Result<(), ConfigFileError> {
        let mut save_reset = false;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |reason: String| ConfigFileError {
                file: file.to_string(),
                line: i + 1,
                text: line.to_string(),
                reason,
            };
            let args = split_args(line.as_bytes())
                .ok_or_else(|| err("Unbalanced quotes in configuration line".into()))?;
            let args: Vec<String> = args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let Some((name, values)) = args.split_first() else {
                continue;
            };
            let Some(param) = find(name) else {
                return Err(err("Bad directive or wrong number of arguments".into()));
            };
            if values.is_empty() {
                return Err(err("Bad directive or wrong number of arguments".into()));
            }
            // `save` lines accumulate in a file; the first one replaces the defaults.
            if param.name == "save" {
                if !save_reset {
                    self.save.clear();
                    save_reset = true;
                }
                let mut tmp = self.clone();
                (param.set)(&mut tmp, values).map_err(err)?;
                self.save.extend(tmp.save);
                continue;
            }
            if param.name == "bind" {
                self.bind = values.to_vec();
                continue;
            }
            (param.set)(self, values).map_err(err)?;
        }
        Ok(())
    }

    /// Builds the configuration from `redoubt-server [file] [--name value ...]`.
    pub fn from_args(args: &[String]) -> Result<Config, String> {
        let mut cfg = Config::default();
        let mut rest = args;
        if let Some(first) = args.first() {
            if !first.starts_with("--") {
                let text = std::fs::read_to_string(first)
                    .map_err(|e| format!("Fatal error, can't open config file '{first}': {e}"))?;
                cfg.apply_text(&text, first).map_err(|e| e.to_string())?;
                rest = &args[1..];
            }
        }
        // Each --name starts a directive; the words after it are its values.
        let mut text = String::new();
        for a in rest {
            if let Some(name) = a.strip_prefix("--") {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(name);
            } else {
                text.push(' ');
                text.push_str(&quote(a));
            }
        }
        cfg.apply_text(&text, "(command line)")
            .map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// CONFIG GET: every (name, value) whose name or alias matches one of the
    /// patterns, each parameter once.
    pub fn get_matching(&self, patterns: &[&[u8]]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for p in PARAMS {
            for name in std::iter::once(p.name).chain(p.alias) {
                if patterns
                    .iter()
                    .any(|pat| glob_match(pat, name.as_bytes(), true))
                    && !out.iter().any(|(n, _)| n == name)
                {
                    out.push((name.to_string(), (p.get)(self)));
                }
            }
        }
        out
    }
}

/// Quotes a command-line value so the config parser reads it back as one word.
fn quote(s: &str) -> String {
    if !s.is_empty() && !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        return s.to_string();
    }
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            _ => q.push(c),
        }
    }
    q.push('"');
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_redis() {
        let c = Config::default();
        assert_eq!(c.get_matching(&[b"save"])[0].1, "3600 1 300 100 60 10000");
        assert_eq!(c.get_matching(&[b"bind"])[0].1, "127.0.0.1 -::1");
        assert_eq!(c.get_matching(&[b"appendfsync"])[0].1, "everysec");
    }

    #[test]
    fn file_and_command_line() {
        let mut c = Config::default();
        c.apply_text(
            "port 7000\n# comment\nsave 10 1\nsave 20 2\nhash-max-ziplist-entries 5\n",
            "x.conf",
        )
        .unwrap();
        assert_eq!(c.port, 7000);
        assert_eq!(c.save, vec![(10, 1), (20, 2)]);
        assert_eq!(c.hash_max_listpack_entries, 5);
        let c = Config::from_args(&["--port".into(), "7001".into(), "--save".into(), "".into()])
            .unwrap();
        assert_eq!(c.port, 7001);
        assert!(c.save.is_empty());
    }

    #[test]
    fn errors_name_line_and_directive() {
        let mut c = Config::default();
        let e = c.apply_text("port 1\nfoo bar\n", "my.conf").unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(e.text, "foo bar");
        assert!(e.to_string().contains("my.conf"));
        let e = c
            .apply_text("appendfsync sometimes\n", "my.conf")
            .unwrap_err();
        assert!(e.reason.contains("everysec, always, no"), "{}", e.reason);
    }

    #[test]
    fn cpu_lists_are_checked_at_start_and_shown_as_written() {
        let c = Config::default();
        assert_eq!(c.get_matching(&[b"bgsave_cpulist"])[0].1, "");
        let c = Config::from_args(&[
            "--bgsave_cpulist".into(),
            "1,2-5:2".into(),
            "--aof_rewrite_cpulist".into(),
            "".into(),
        ])
        .unwrap();
        assert_eq!(c.bgsave_cpulist.as_ref().unwrap().cpus(), [1, 2, 4]);
        assert_eq!(c.get_matching(&[b"bgsave_cpulist"])[0].1, "1,2-5:2");
        assert_eq!(c.aof_rewrite_cpulist, None);
        let mut c = Config::default();
        let e = c.apply_text("server_cpulist 0-x\n", "my.conf").unwrap_err();
        assert!(e.reason.contains("'0-x' is not a CPU list"), "{}", e.reason);
        assert!(find("bgsave_cpulist").unwrap().flags & IMMUTABLE != 0);
    }

    #[test]
    fn memory_values() {
        assert_eq!(parse_memory("1gb"), Some(1 << 30));
        assert_eq!(parse_memory("512mb"), Some(512 << 20));
        assert_eq!(parse_memory("1k"), Some(1000));
        assert_eq!(parse_memory("12"), Some(12));
        assert_eq!(parse_memory("x"), None);
    }
}
