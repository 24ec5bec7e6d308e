//! Command-line parsing (clap derive) and dispatch.

use super::{DumpError, Filters, Kind, Output};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// Inspect, convert, compare and salvage Redis dump (RDB) files.
///
/// Every subcommand streams the input key by key; outputs go to stdout or
/// `-o FILE` (an existing file is only replaced with `--force`, an input
/// never). Exit status: 0 success, 1 damaged input / refused conversion /
/// differences found (diff), 2 usage error.
#[derive(Parser, Debug)]
#[command(name = "rdb-dump", version)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only keys of this database.
    #[arg(long, global = true)]
    pub db: Option<u64>,
    /// Only keys matching this regular expression (unanchored; bytes).
    #[arg(long, global = true)]
    pub key: Option<String>,
    /// Only keys of this type.
    #[arg(long = "type", value_enum, global = true)]
    pub kind: Option<Kind>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct OutArgs {
    /// Output file (default: stdout).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// An RDB file (`--rdb-version`, default 10 = Redis 7.0).
    Rdb,
    /// One RESP append-only file.
    Aof,
    /// A Redis 7 multi-part AOF directory (manifest + base + incr).
    AofDir,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Rdb,
    Aof,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseFormat {
    Rdb,
    Resp,
}

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Check structure and checksum (like redis-check-rdb) and summarize.
    Check {
        file: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        /// "Now" for the already-expired count (unix ms; default: the clock).
        #[arg(long, hide = true)]
        now_ms: Option<i64>,
    },
    /// The keyspace as JSON: an array with one object per db, or JSON lines.
    ///
    /// Each key: {"key","type","encoding","expire_ms"?,"value"}. Byte
    /// strings that are valid UTF-8 are JSON strings; any other is
    /// {"bytes":"..."} holding Python's bytes-literal escaping (\xNN, \n,
    /// \\, ...). Sets are sorted; zsets are [member, score] pairs (scores
    /// "inf"/"-inf" as strings); hashes [field, value(, expire_ms)] pairs.
    Json {
        file: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        out: OutArgs,
        /// One JSON object per key and line instead of one object per db.
        #[arg(long)]
        lines: bool,
    },
    /// The keyspace as RESP commands for `redis-cli --pipe`.
    Resp {
        file: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        out: OutArgs,
        /// Emit `RESTORE key ttl payload REPLACE [ABSTTL]` per key.
        #[arg(long)]
        restore: bool,
        /// RDB version of RESTORE payloads (10 = Redis 7.0).
        #[arg(long, default_value_t = 10)]
        rdb_version: u32,
    },
    /// One CSV row per key with its estimated memory (rdbtools' report).
    ///
    /// database,type,key,size_in_bytes,encoding,num_elements,
    /// len_largest_element,expiry. Sizes follow rdbtools' model (64-bit,
    /// jemalloc size classes, per-object overheads; compact encodings by
    /// their blob size; skiplist levels at their mean); see the module
    /// documentation of `rdb_dump::memory`.
    Memory {
        file: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        out: OutArgs,
        /// Only the N biggest keys (largest first).
        #[arg(long)]
        largest: Option<usize>,
        /// Only keys of at least this many (estimated) bytes.
        #[arg(long)]
        bytes: Option<u64>,
    },
    /// Counts and sizes per db and type, biggest keys, expiries, encodings.
    Stats {
        file: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        out: OutArgs,
        /// How many biggest keys to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        #[arg(long, hide = true)]
        now_ms: Option<i64>,
    },
    /// RDB -> AOF (file or directory), AOF -> RDB, RDB version N -> M.
    Convert {
        /// An RDB file, an AOF file, an AOF directory or its manifest.
        input: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        out: OutArgs,
        /// What to write.
        #[arg(long, value_enum)]
        to: Target,
        /// Input kind (default: a directory, manifest or `*.aof` is an AOF,
        /// anything else an RDB).
        #[arg(long, value_enum)]
        from: Option<Source>,
        /// RDB version to write (10, 11 or 12; default 10, Redis 7.0).
        #[arg(long, default_value_t = 10)]
        rdb_version: u32,
        /// Base file format of an AOF directory.
        #[arg(long, value_enum, default_value = "rdb")]
        aof_base: BaseFormat,
        /// Drop module values instead of refusing (they cannot be re-encoded).
        #[arg(long)]
        skip_modules: bool,
    },
    /// Recover every readable key of a damaged dump into a new valid dump.
    Salvage {
        file: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        /// The recovered dump (required).
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Keys only in A, only in B, and changed (exit 1 when different).
    Diff {
        a: PathBuf,
        b: PathBuf,
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        out: OutArgs,
    },
}

fn filters(f: &FilterArgs) -> Result<Filters, DumpError> {
    Filters::new(f.db, f.key.as_deref(), f.kind)
}

/// Runs `rdb-dump` with `argv` (including the program name); returns the
/// exit status.
pub fn run<I, T>(argv: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = e.exit_code();
            let text = e.render().to_string();
            let _ = if e.use_stderr() {
                stderr.write_all(text.as_bytes())
            } else {
                stdout.write_all(text.as_bytes())
            };
            return code;
        }
    };
    match dispatch(cli.cmd, stdout, stderr) {
        Ok(code) => code,
        Err(DumpError::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            // The reader went away (`rdb-dump json | head`): quietly, with
            // the status a SIGPIPE death would give.
            141
        }
        Err(e) => {
            let _ = writeln!(stderr, "rdb-dump: {e}");
            match e {
                DumpError::Usage(_) => 2,
                _ => 1,
            }
        }
    }
}

fn dispatch(cmd: Cmd, stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<i32, DumpError> {
    match cmd {
        Cmd::Check {
            file,
            filters: f,
            now_ms,
        } => {
            let ok = super::check::run(&file, &filters(&f)?, now_ms, stdout)?;
            Ok(if ok { 0 } else { 1 })
        }
        Cmd::Json {
            file,
            filters: f,
            out,
            lines,
        } => {
            let flt = filters(&f)?;
            let mut o = Output::open(out.output.as_deref(), out.force, &[&file], stdout)?;
            super::json::run(&file, &flt, lines, &mut *o.w)?;
            o.finish()?;
            Ok(0)
        }
        Cmd::Resp {
            file,
            filters: f,
            out,
            restore,
            rdb_version,
        } => {
            let flt = filters(&f)?;
            let mut o = Output::open(out.output.as_deref(), out.force, &[&file], stdout)?;
            let opts = super::resp::RespOptions {
                restore,
                rdb_version,
            };
            let skipped = super::resp::run(&file, &flt, &opts, &mut *o.w, stderr)?;
            o.finish()?;
            Ok(if skipped > 0 { 1 } else { 0 })
        }
        Cmd::Memory {
            file,
            filters: f,
            out,
            largest,
            bytes,
        } => {
            let flt = filters(&f)?;
            let mut o = Output::open(out.output.as_deref(), out.force, &[&file], stdout)?;
            super::memory::run(&file, &flt, largest, bytes, &mut *o.w)?;
            o.finish()?;
            Ok(0)
        }
        Cmd::Stats {
            file,
            filters: f,
            out,
            top,
            now_ms,
        } => {
            let flt = filters(&f)?;
            let mut o = Output::open(out.output.as_deref(), out.force, &[&file], stdout)?;
            let now = now_ms.unwrap_or_else(super::now_ms);
            super::stats::run(&file, &flt, top, now, &mut *o.w)?;
            o.finish()?;
            Ok(0)
        }
        Cmd::Convert {
            input,
            filters: f,
            out,
            to,
            from,
            rdb_version,
            aof_base,
            skip_modules,
        } => {
            let flt = filters(&f)?;
            let opts = super::convert::ConvertOptions {
                to,
                from,
                rdb_version,
                aof_base,
                skip_modules,
                force: out.force,
            };
            super::convert::run(&input, out.output.as_deref(), &flt, &opts, stdout, stderr)?;
            Ok(0)
        }
        Cmd::Salvage {
            file,
            filters: f,
            output,
            force,
        } => {
            let flt = filters(&f)?;
            let rep = super::salvage::run(&file, &output, force, &flt)?;
            rep.print(stdout).map_err(super::werr)?;
            Ok(if rep.is_clean() { 0 } else { 1 })
        }
        Cmd::Diff {
            a,
            b,
            filters: f,
            out,
        } => {
            let flt = filters(&f)?;
            let mut o = Output::open(out.output.as_deref(), out.force, &[&a, &b], stdout)?;
            let n = super::diff::run(&a, &b, &flt, &mut *o.w)?;
            o.finish()?;
            Ok(if n > 0 { 1 } else { 0 })
        }
    }
}
