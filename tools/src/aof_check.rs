//! `aof-check`: redis-check-aof's arguments, messages and exit codes, plus
//! a fuller diagnosis (torn tail or damage in the middle, what truncating
//! would lose, a hex excerpt), `--json` and `--stats`.
//!
//! The Redis-compatible lines come first and unchanged; our extra lines are
//! indented by two spaces so scripts that parse Redis's output keep working.

use redoubt_persist::aof::{AofReader, FormatError, Manifest, ProblemKind, ReadError, Unit};
use redoubt_persist::storage::Storage;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// Skips (and checks) an RDB image at the start of a file; must consume
/// exactly the image. Returns text lines to print. TODO(rdb): the RDB
/// codec provides this; without it RDB-preamble files cannot be checked.
pub type RdbSkip<'a> = &'a mut dyn FnMut(&mut dyn Read, &str) -> Result<Vec<String>, String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub fix: bool,
    pub yes: bool,
    pub json: bool,
    pub stats: bool,
    pub truncate_to: Option<u64>,
    pub path: PathBuf,
}

pub fn usage(argv0: &str) -> String {
    format!("Usage: {argv0} [--fix|--truncate-to-timestamp $timestamp] <file.manifest|file.aof>\n       extensions: [--yes] [--json] [--stats]")
}

/// Parses arguments; Err is (text to print, exit code).
pub fn parse_args(argv0: &str, args: &[String]) -> Result<Options, (String, i32)> {
    let mut o = Options::default();
    let mut i = 0;
    let mut file = None;
    while i < args.len() {
        match args[i].as_str() {
            "--fix" => o.fix = true,
            "--yes" => o.yes = true,
            "--json" => o.json = true,
            "--stats" => o.stats = true,
            "-v" | "--version" => {
                return Err((
                    format!(
                        "aof-check {} (redis-check-aof 7.0.15 compatible)",
                        env!("CARGO_PKG_VERSION")
                    ),
                    0,
                ))
            }
            "--truncate-to-timestamp" => {
                i += 1;
                let Some(v) = args.get(i) else {
                    return Err((usage(argv0), 1));
                };
                match v.parse::<u64>() {
                    Ok(t) => o.truncate_to = Some(t),
                    Err(_) => return Err(("Invalid timestamp, aborting...".into(), 1)),
                }
            }
            s if s.starts_with("--") => return Err((usage(argv0), 1)),
            s => {
                if file.is_some() {
                    return Err((usage(argv0), 1));
                }
                file = Some(PathBuf::from(s));
            }
        }
        i += 1;
    }
    let Some(f) = file else {
        return Err((usage(argv0), 1));
    };
    if o.fix && o.truncate_to.is_some() || o.json && (o.fix || o.truncate_to.is_some()) {
        return Err((usage(argv0), 1));
    }
    o.path = f;
    Ok(o)
}

/// The first problem of a file, fully described.
#[derive(Debug, Clone)]
pub struct Problem {
    pub err: FormatError,
    /// 1-based number of the command that failed (in this file).
    pub command_number: u64,
    pub excerpt_at: u64,
    pub excerpt: Vec<u8>,
    /// Complete commands found after the damage (lost by truncating).
    pub commands_after: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub commands: BTreeMap<String, u64>,
    pub keys: BTreeSet<Vec<u8>>,
    pub first_ts: Option<u64>,
    pub last_ts: Option<u64>,
    pub bytes_per_db: BTreeMap<u64, u64>,
    db: u64,
}

#[derive(Debug, Clone)]
pub struct FileCheck {
    pub name: String,
    pub kind: &'static str,
    pub size: u64,
    pub rdb: bool,
    pub ok_up_to: u64,
    pub line: u64,
    pub commands: u64,
    pub problem: Option<Problem>,
    /// `--truncate-to-timestamp`: offset of the first later annotation.
    pub ts_cut: Option<u64>,
    pub bad_ts: bool,
}

struct Ctx<'a, 'b> {
    out: &'a mut dyn Write,
    storage: &'a dyn Storage,
    opts: &'a Options,
    stats: Stats,
    rdb: Option<RdbSkip<'b>>,
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_range(storage: &dyn Storage, path: &Path, from: u64, max: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(f) = storage.open(path) {
        let mut f = f;
        if io::copy(&mut (&mut f).take(from), &mut io::sink()).is_ok() {
            let _ = f.take(max).read_to_end(&mut out);
        }
    }
    out
}

/// Counts complete commands after a damaged spot: resync at the next
/// "\r\n*" and parse from there.
fn commands_after(data: &[u8]) -> u64 {
    let mut best = 0;
    for i in 1..data.len() {
        if data[i] == b'*' && data[i - 1] == b'\n' {
            let mut r = AofReader::new(&data[i..], "", 0);
            let mut n = 0;
            while let Ok(Some(_)) = r.next_record() {
                n += 1;
            }
            best = n;
            break;
        }
    }
    best
}

impl Ctx<'_, '_> {
    fn say(&mut self, s: impl AsRef<str>) {
        if !self.opts.json {
            let _ = writeln!(self.out, "{}", s.as_ref());
        }
    }

    fn note(&mut self, u: &Unit, bytes: u64) {
        let st = &mut self.stats;
        let cmd = |a: &Vec<Vec<u8>>, st: &mut Stats| {
            let name = String::from_utf8_lossy(&a[0]).to_ascii_lowercase();
            if name == "select" {
                if let Some(d) = a
                    .get(1)
                    .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
                {
                    st.db = d;
                }
            } else if let Some(k) = a.get(1) {
                st.keys.insert(k.clone());
            }
            *st.commands.entry(name).or_default() += 1;
        };
        match u {
            Unit::Annotation(a) => {
                if let Some(t) = redoubt_persist::aof::reader::parse_timestamp(a) {
                    st.first_ts.get_or_insert(t);
                    st.last_ts = Some(t);
                }
                return;
            }
            Unit::Command(a) => cmd(a, st),
            Unit::Transaction(c) => {
                *st.commands.entry("multi".into()).or_default() += 1;
                *st.commands.entry("exec".into()).or_default() += 1;
                for a in c {
                    cmd(a, st);
                }
            }
        }
        *st.bytes_per_db.entry(st.db).or_default() += bytes;
    }

    /// Checks one file; `line` continues across the files of a manifest.
    fn check_file(
        &mut self,
        path: &Path,
        name: &str,
        kind: &'static str,
        line: u64,
    ) -> Result<FileCheck, String> {
        let size = self.storage.len(path).map_err(|e| {
            format!(
                "Cannot open file {}: {}, aborting...",
                path.display(),
                strip_os(&e)
            )
        })?;
        let mut fc = FileCheck {
            name: name.into(),
            kind,
            size,
            rdb: false,
            ok_up_to: 0,
            line,
            commands: 0,
            problem: None,
            ts_cut: None,
            bad_ts: false,
        };
        if size == 0 {
            return Ok(fc);
        }
        let f = self.storage.open(path).map_err(|e| {
            format!(
                "Cannot open file {}: {}, aborting...",
                path.display(),
                strip_os(&e)
            )
        })?;
        let head = read_range(self.storage, path, 0, 5);
        let mut input: Box<dyn Read> = Box::new(f);
        let mut start = 0;
        if size >= 8 && head == b"REDIS" {
            fc.rdb = true;
            let Some(skip) = self.rdb.as_mut() else {
                return Err(format!(
                    "{name} starts with an RDB preamble; checking it needs the RDB codec (not built into this aof-check yet), aborting..."
                ));
            };
            let mut counting = Counting(&mut input, 0);
            match skip(&mut counting, name) {
                Ok(lines) => {
                    start = counting.1;
                    for l in lines {
                        self.say(l);
                    }
                    self.say("RDB preamble is OK, proceeding with AOF tail...");
                }
                Err(e) => {
                    self.say(e);
                    return Err("RDB preamble of AOF file is not sane, aborting.".into());
                }
            }
        }
        let mut r = AofReader::new(input, name, start).with_line(line);
        fc.ok_up_to = start;
        loop {
            match r.next_unit() {
                Ok(Some((u, at, end))) => {
                    if let (Some(t), Unit::Annotation(a)) = (self.opts.truncate_to, &u) {
                        match redoubt_persist::aof::reader::parse_timestamp(a) {
                            None => {
                                fc.bad_ts = true;
                                break;
                            }
                            Some(ts) if ts > t => {
                                fc.ts_cut = Some(at);
                                break;
                            }
                            _ => {}
                        }
                    }
                    // Per-command statistics (a set of every key touched)
                    // cost more than the check itself: only with --stats.
                    if self.opts.stats {
                        self.note(&u, end - at);
                    }
                    fc.ok_up_to = end;
                }
                Ok(None) => break,
                Err(ReadError::Io { source, .. }) => {
                    return Err(format!("Error reading {name}: {source}"))
                }
                Err(ReadError::Format(err)) => {
                    fc.ok_up_to = err.record_start;
                    let excerpt_at = err.offset.saturating_sub(16);
                    let excerpt = read_range(self.storage, path, excerpt_at, 40);
                    let after = read_range(self.storage, path, err.offset, 64 << 20);
                    fc.problem = Some(Problem {
                        command_number: r.commands() + 1,
                        excerpt_at,
                        excerpt,
                        commands_after: if err.kind == ProblemKind::Corrupt {
                            commands_after(&after)
                        } else {
                            0
                        },
                        err,
                    });
                    break;
                }
            }
        }
        fc.commands = r.commands();
        fc.line = fc
            .problem
            .as_ref()
            .map(|p| p.err.line)
            .unwrap_or_else(|| r.line());
        Ok(fc)
    }

    fn report_problem(&mut self, fc: &FileCheck) {
        let Some(p) = &fc.problem else { return };
        if p.err.what == "format error" {
            self.say(format!("AOF {} format error", fc.name));
        } else {
            self.say(format!("0x{:16x}: {}", p.err.offset, p.err.what));
        }
        let diff = fc.size.saturating_sub(fc.ok_up_to);
        let what = match p.err.kind {
            ProblemKind::TornTail => "torn tail: the last command is incomplete (a crash mid-write); truncating is safe".to_string(),
            ProblemKind::Corrupt => format!(
                "damage in the middle: truncating at offset {} would also drop {} complete command(s) found after the damage",
                fc.ok_up_to, p.commands_after
            ),
        };
        self.say(format!(
            "  problem in {} at offset {} (0x{:x}), command #{}: {}",
            fc.name, p.err.offset, p.err.offset, p.command_number, p.err.what
        ));
        self.say(format!(
            "  {what}; {diff} byte(s) after offset {} would be lost",
            fc.ok_up_to
        ));
        self.say(format!(
            "  bytes at 0x{:x}: {}",
            p.excerpt_at,
            hex(&p.excerpt)
        ));
    }

    fn analyzed(&mut self, fc: &FileCheck) {
        self.say(format!(
            "AOF analyzed: filename={}, size={}, ok_up_to={}, ok_up_to_line={}, diff={}",
            fc.name,
            fc.size,
            fc.ok_up_to,
            fc.line,
            fc.size.saturating_sub(fc.ok_up_to)
        ));
    }

    /// Backs the file up, then truncates it (both through Storage).
    fn truncate(&mut self, path: &Path, len: u64) -> io::Result<PathBuf> {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut bak = path.as_os_str().to_owned();
        bak.push(format!(".bak-{secs}"));
        let bak = PathBuf::from(bak);
        let data = self.storage.read_all(path)?;
        let mut f = self.storage.create(&bak)?;
        f.write_all(&data)?;
        f.sync()?;
        drop(f);
        self.storage
            .fsync_dir(&redoubt_persist::storage::parent_dir(&bak))?;
        self.storage.truncate(path, len)?;
        self.storage.append(path)?.sync()?;
        Ok(bak)
    }
}

fn strip_os(e: &io::Error) -> String {
    redoubt_persist::aof::writer::strerror(e)
}

struct Counting<'a>(&'a mut Box<dyn Read>, u64);

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.0.read(buf)?;
        self.1 += k as u64;
        Ok(k)
    }
}

/// True if the file is a manifest: the first line that is not a comment
/// starts with `file` (Redis 7.2+'s rule; 7.0.15 accepted such a line
/// anywhere, which misdetects AOFs holding a key named `file...`).
fn is_manifest(storage: &dyn Storage, path: &Path) -> bool {
    let head = read_range(storage, path, 0, 4096);
    for l in head.split(|&b| b == b'\n') {
        if l.starts_with(b"#") {
            continue;
        }
        return l.starts_with(b"file");
    }
    false
}

/// Redis's log line layout (pid:role date level msg).
fn log_line(msg: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, mo, d) = civil(secs.div_euclid(86400));
    let t = secs.rem_euclid(86400);
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}:C {:02} {} {} {:02}:{:02}:{:02}.{:03} # {msg}\n",
        std::process::id(),
        d,
        MON[(mo - 1) as usize],
        y,
        t / 3600,
        t % 3600 / 60,
        t % 60,
        now.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day).
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_report(
    path: &Path,
    multi: bool,
    files: &[FileCheck],
    stats: Option<&Stats>,
    error: Option<&str>,
) -> String {
    let mut o = format!(
        "{{\"input\":{},\"layout\":{},\"files\":[",
        json_str(&path.display().to_string()),
        json_str(if multi { "multi-part" } else { "single" })
    );
    for (i, f) in files.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push_str(&format!(
            "{{\"name\":{},\"kind\":{},\"format\":{},\"size\":{},\"ok_up_to\":{},\"ok_up_to_line\":{},\"diff\":{},\"commands\":{},\"valid\":{}",
            json_str(&f.name),
            json_str(f.kind),
            json_str(if f.rdb { "rdb-preamble" } else { "resp" }),
            f.size,
            f.ok_up_to,
            f.line,
            f.size.saturating_sub(f.ok_up_to),
            f.commands,
            f.problem.is_none()
        ));
        if let Some(p) = &f.problem {
            o.push_str(&format!(
                ",\"problem\":{{\"kind\":{},\"offset\":{},\"record_start\":{},\"command_number\":{},\"expected\":{},\"excerpt_offset\":{},\"excerpt_hex\":{},\"bytes_lost_by_truncating\":{},\"commands_after_damage\":{}}}",
                json_str(match p.err.kind {
                    ProblemKind::TornTail => "torn-tail",
                    ProblemKind::Corrupt => "corrupt",
                }),
                p.err.offset,
                p.err.record_start,
                p.command_number,
                json_str(&p.err.what),
                p.excerpt_at,
                json_str(&hex(&p.excerpt)),
                f.size.saturating_sub(f.ok_up_to),
                p.commands_after
            ));
        }
        o.push('}');
    }
    o.push(']');
    let valid = error.is_none() && files.iter().all(|f| f.problem.is_none());
    o.push_str(&format!(",\"valid\":{valid}"));
    if let Some(e) = error {
        o.push_str(&format!(",\"error\":{}", json_str(e)));
    }
    if let Some(s) = stats {
        o.push_str(",\"stats\":");
        o.push_str(&stats_json(s));
    }
    o.push_str("}\n");
    o
}

fn stats_json(s: &Stats) -> String {
    let cmds: Vec<String> = s
        .commands
        .iter()
        .map(|(k, v)| format!("{}:{v}", json_str(k)))
        .collect();
    let dbs: Vec<String> = s
        .bytes_per_db
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    let opt = |v: Option<u64>| v.map(|x| x.to_string()).unwrap_or_else(|| "null".into());
    format!(
        "{{\"commands\":{{{}}},\"keys_touched\":{},\"first_timestamp\":{},\"last_timestamp\":{},\"bytes_per_db\":{{{}}}}}",
        cmds.join(","),
        s.keys.len(),
        opt(s.first_ts),
        opt(s.last_ts),
        dbs.join(",")
    )
}

fn stats_text(s: &Stats) -> Vec<String> {
    let mut v = vec!["Stats:".to_string()];
    for (k, n) in &s.commands {
        v.push(format!("  command {k}: {n}"));
    }
    v.push(format!("  keys touched: {}", s.keys.len()));
    let opt = |x: Option<u64>| x.map(|t| t.to_string()).unwrap_or_else(|| "none".into());
    v.push(format!("  first timestamp annotation: {}", opt(s.first_ts)));
    v.push(format!("  last timestamp annotation: {}", opt(s.last_ts)));
    for (db, b) in &s.bytes_per_db {
        v.push(format!("  db {db}: {b} bytes"));
    }
    v
}

/// Runs the check. Returns the exit code.
pub fn run(
    opts: &Options,
    out: &mut dyn Write,
    stdin: &mut dyn BufRead,
    storage: &dyn Storage,
    rdb: Option<RdbSkip<'_>>,
) -> i32 {
    let mut cx = Ctx {
        out,
        storage,
        opts,
        stats: Stats::default(),
        rdb,
    };
    let mut files = Vec::new();
    let multi = is_manifest(storage, &opts.path);
    let res = run_inner(&mut cx, multi, &mut files, stdin);
    if opts.stats && !opts.json {
        for l in stats_text(&cx.stats) {
            cx.say(l);
        }
    }
    let code = match &res {
        Ok(c) => *c,
        Err(msg) => {
            cx.say(msg);
            1
        }
    };
    if opts.json {
        let err = res.as_ref().err().map(|s| s.as_str());
        let stats = opts.stats.then_some(&cx.stats);
        let _ = cx
            .out
            .write_all(json_report(&opts.path, multi, &files, stats, err).as_bytes());
    }
    code
}

fn run_inner(
    cx: &mut Ctx,
    multi: bool,
    files: &mut Vec<FileCheck>,
    stdin: &mut dyn BufRead,
) -> Result<i32, String> {
    let path = cx.opts.path.clone();
    if !multi {
        cx.say("Start checking Old-Style AOF");
        let name = path.display().to_string();
        let fc = cx.check_file(&path, &name, "AOF", 1)?;
        files.push(fc.clone());
        return finish_file(cx, &path, fc, true, stdin);
    }
    cx.say("Start checking Multi Part AOF");
    let data = storage_read(cx.storage, &path)?;
    let m = match Manifest::parse(&data) {
        Ok(m) => m,
        Err(e) => {
            let mut s = log_line("\n*** FATAL AOF MANIFEST FILE ERROR ***\n");
            if let Some((n, l)) = &e.line {
                s.push_str(&log_line(&format!(
                    "Reading the manifest file, at line {n}\n"
                )));
                s.push_str(&log_line(&format!(">>> '{l}'\n")));
            }
            s.push_str(&log_line(&format!("{}\n", e.msg)));
            if cx.opts.json {
                return Err(e.to_string());
            }
            let _ = cx.out.write_all(s.as_bytes());
            return Ok(1);
        }
    };
    let dir = redoubt_persist::storage::parent_dir(&path);
    let order = m.load_order();
    let mut line = 1;
    let mut incr_started = false;
    for (i, ai) in order.iter().enumerate() {
        let p = dir.join(&ai.name);
        let is_base = m.base.as_ref() == Some(*ai);
        let last = i + 1 == order.len();
        if is_base {
            let head = read_range(cx.storage, &p, 0, 5);
            let rdb = head == b"REDIS" && cx.storage.len(&p).unwrap_or(0) >= 8;
            cx.say(format!(
                "Start to check BASE AOF ({} format).",
                if rdb { "RDB" } else { "RESP" }
            ));
        } else if !incr_started {
            incr_started = true;
            cx.say("Start to check INCR files.");
        }
        let kind = if is_base { "BASE AOF" } else { "INCR AOF" };
        let fc = cx.check_file(&p, &ai.name, kind, line)?;
        line = fc.line;
        files.push(fc.clone());
        let code = finish_file(cx, &p, fc, last, stdin)?;
        if code != 0
            || cx.opts.truncate_to.is_some() && files.last().is_some_and(|f| f.ts_cut.is_some())
        {
            return Ok(code);
        }
    }
    cx.say("All AOF files and manifest are valid");
    Ok(0)
}

fn storage_read(storage: &dyn Storage, path: &Path) -> Result<Vec<u8>, String> {
    storage.read_all(path).map_err(|e| {
        format!(
            "Cannot open file {}: {}, aborting...",
            path.display(),
            strip_os(&e)
        )
    })
}

/// Prints a file's verdict, applies --fix / --truncate-to-timestamp.
fn finish_file(
    cx: &mut Ctx,
    path: &Path,
    fc: FileCheck,
    last: bool,
    stdin: &mut dyn BufRead,
) -> Result<i32, String> {
    if fc.size == 0 {
        cx.say(format!("{} {} is empty", fc.kind, fc.name));
        return Ok(0);
    }
    if fc.bad_ts {
        return Err("Invalid timestamp annotation".into());
    }
    if let (Some(t), Some(cut)) = (cx.opts.truncate_to, fc.ts_cut) {
        if cut == 0 {
            return Err(format!(
                "AOF {} has nothing before timestamp {t}, aborting...",
                path.display()
            ));
        }
        if !last {
            cx.say(format!("Failed to truncate AOF {} to timestamp {t} to offset {cut} because it is not the last file.", path.display()));
            return Err("If you insist, please delete all files after this file according to the manifest file and delete the corresponding records in manifest file manually. Then re-run redis-check-aof.".into());
        }
        cx.truncate(path, cut)
            .map_err(|e| format!("Failed to truncate AOF {}: {}", fc.name, strip_os(&e)))?;
        cx.say(format!(
            "Successfully truncated AOF {} to timestamp {t}",
            fc.name
        ));
        return Ok(0);
    }
    cx.report_problem(&fc);
    cx.analyzed(&fc);
    let diff = fc.size.saturating_sub(fc.ok_up_to);
    if diff == 0 {
        if let Some(t) = cx.opts.truncate_to {
            if last {
                cx.say(format!(
                    "Truncate nothing in AOF {} to timestamp {t}",
                    fc.name
                ));
                return Ok(0);
            }
        }
        cx.say(format!("{} {} is valid", fc.kind, fc.name));
        return Ok(0);
    }
    if !cx.opts.fix {
        cx.say(format!(
            "AOF {} is not valid. Use the --fix option to try fixing it.",
            fc.name
        ));
        return Ok(1);
    }
    if !last {
        cx.say(format!(
            "Failed to truncate AOF {} because it is not the last file",
            fc.name
        ));
        return Ok(1);
    }
    cx.say(format!(
        "This will shrink the AOF {} from {} bytes, with {} bytes, to {} bytes",
        fc.name, fc.size, diff, fc.ok_up_to
    ));
    if !cx.opts.yes {
        let _ = write!(cx.out, "Continue? [y/N]: ");
        let _ = cx.out.flush();
        let mut answer = String::new();
        let _ = stdin.read_line(&mut answer);
        if !answer.starts_with(['y', 'Y']) {
            cx.say("Aborting...");
            return Ok(1);
        }
    }
    let bak = cx
        .truncate(path, fc.ok_up_to)
        .map_err(|_| format!("Failed to truncate AOF {}", fc.name))?;
    cx.say(format!("Successfully truncated AOF {}", fc.name));
    cx.say(format!("  original kept as {}", bak.display()));
    // Re-check the result.
    let again = cx.check_file(path, &fc.name, fc.kind, 1)?;
    if again.problem.is_some() {
        return Err(format!(
            "AOF {} still has problems after truncation",
            fc.name
        ));
    }
    Ok(0)
}
