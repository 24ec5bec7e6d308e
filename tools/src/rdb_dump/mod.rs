//! `rdb-dump`: inspect, convert, compare and salvage Redis dump files.
//!
//! One module per subcommand; this module holds what they share: the
//! filters (`--db`, `--key`, `--type`), opening inputs and outputs (an output
//! never overwrites an existing file without `--force`, and never an input),
//! the error type, and the escaping rules for binary-safe text.
//!
//! Every subcommand streams: the decoder yields one key at a time and only
//! that key's value is held in memory. The documented exceptions are `diff`
//! (a 16-byte digest per key of the first file) and AOF-to-RDB conversion
//! (replaying commands needs the whole keyspace).

pub mod apply;
pub mod check;
pub mod cli;
pub mod convert;
pub mod diff;
pub mod json;
pub mod memory;
pub mod resp;
pub mod salvage;
pub mod stats;
pub mod text;

pub use cli::run;

use redoubt_persist::rdb::{
    DecodeOptions, Decoded, Decoder, RdbError, TYPE_HASH, TYPE_HASH_LISTPACK,
    TYPE_HASH_LISTPACK_EX, TYPE_HASH_LISTPACK_EX_PRE_GA, TYPE_HASH_METADATA,
    TYPE_HASH_METADATA_PRE_GA, TYPE_HASH_ZIPLIST, TYPE_HASH_ZIPMAP, TYPE_LIST, TYPE_LIST_QUICKLIST,
    TYPE_LIST_QUICKLIST_2, TYPE_LIST_ZIPLIST, TYPE_MODULE_2, TYPE_MODULE_PRE_GA, TYPE_SET,
    TYPE_SET_INTSET, TYPE_SET_LISTPACK, TYPE_STREAM_LISTPACKS, TYPE_STREAM_LISTPACKS_2,
    TYPE_STREAM_LISTPACKS_3, TYPE_STRING, TYPE_ZSET, TYPE_ZSET_2, TYPE_ZSET_LISTPACK,
    TYPE_ZSET_ZIPLIST,
};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Everything that can stop a subcommand.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}: output exists; pass --force to overwrite it")]
    OutputExists(PathBuf),
    #[error("{0}: refusing to write over an input file")]
    OutputIsInput(PathBuf),
    #[error("{file}: {err}")]
    Rdb { file: String, err: RdbError },
    #[error("bad --key regular expression: {0}")]
    Regex(#[from] regex::Error),
    #[error("{0}")]
    Aof(String),
    /// The requested conversion cannot represent the data.
    #[error("refused: {0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
}

impl DumpError {
    pub fn io(path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> DumpError {
        let path = path.as_ref().display().to_string();
        move |source| DumpError::Io { path, source }
    }

    pub fn rdb(path: &Path) -> impl FnOnce(RdbError) -> DumpError + '_ {
        move |err| DumpError::Rdb {
            file: path.display().to_string(),
            err,
        }
    }
}

pub type Result<T, E = DumpError> = std::result::Result<T, E>;

/// The Redis type of a key, from its RDB type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Kind {
    String,
    List,
    Set,
    Zset,
    Hash,
    Stream,
    Module,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::String,
        Kind::List,
        Kind::Set,
        Kind::Zset,
        Kind::Hash,
        Kind::Stream,
        Kind::Module,
    ];

    pub fn of(rdb_type: u8) -> Kind {
        match rdb_type {
            TYPE_STRING => Kind::String,
            TYPE_LIST | TYPE_LIST_ZIPLIST | TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                Kind::List
            }
            TYPE_SET | TYPE_SET_INTSET | TYPE_SET_LISTPACK => Kind::Set,
            TYPE_ZSET | TYPE_ZSET_2 | TYPE_ZSET_ZIPLIST | TYPE_ZSET_LISTPACK => Kind::Zset,
            TYPE_HASH
            | TYPE_HASH_ZIPMAP
            | TYPE_HASH_ZIPLIST
            | TYPE_HASH_LISTPACK
            | TYPE_HASH_METADATA_PRE_GA
            | TYPE_HASH_LISTPACK_EX_PRE_GA
            | TYPE_HASH_METADATA
            | TYPE_HASH_LISTPACK_EX => Kind::Hash,
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 | TYPE_STREAM_LISTPACKS_3 => {
                Kind::Stream
            }
            TYPE_MODULE_PRE_GA | TYPE_MODULE_2 => Kind::Module,
            _ => Kind::Module,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::Zset => "zset",
            Kind::Hash => "hash",
            Kind::Stream => "stream",
            Kind::Module => "module",
        }
    }
}

/// redis-check-rdb's name for an RDB type byte (the snapshot's table).
pub fn rdb_type_name(t: u8) -> &'static str {
    match t {
        0 => "string",
        1 => "list-linked",
        2 => "set-hashtable",
        3 => "zset-v1",
        4 => "hash-hashtable",
        5 => "zset-v2",
        6 => "module-pre-release",
        7 => "module-value",
        9 => "hash-zipmap",
        10 => "list-ziplist",
        11 => "set-intset",
        12 => "zset-ziplist",
        13 => "hash-ziplist",
        14 => "quicklist",
        15 => "stream",
        16 => "hash-listpack",
        17 => "zset-listpack",
        18 => "quicklist-v2",
        19 => "stream-v2",
        20 => "set-listpack",
        21 => "stream-v3",
        22 => "hash-hashtable-md-pre-release",
        23 => "hash-listpack-md-pre-release",
        24 => "hash-hashtable-md",
        25 => "hash-listpack-md",
        _ => "unknown",
    }
}

/// `--db`, `--key`, `--type`.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub db: Option<u64>,
    pub key: Option<regex::bytes::Regex>,
    pub kind: Option<Kind>,
}

impl Filters {
    pub fn new(db: Option<u64>, key: Option<&str>, kind: Option<Kind>) -> Result<Filters> {
        let key = key.map(regex::bytes::Regex::new).transpose()?;
        Ok(Filters { db, key, kind })
    }

    pub fn db_ok(&self, db: u64) -> bool {
        self.db.is_none_or(|d| d == db)
    }

    pub fn matches(&self, db: u64, key: &[u8], rdb_type: u8) -> bool {
        self.db_ok(db)
            && self.kind.is_none_or(|k| k == Kind::of(rdb_type))
            && self.key.as_ref().is_none_or(|r| r.is_match(key))
    }

    pub fn is_empty(&self) -> bool {
        self.db.is_none() && self.key.is_none() && self.kind.is_none()
    }
}

/// An opened RDB input: the file and its size.
pub fn open_rdb(path: &Path, opts: DecodeOptions) -> Result<Decoder<io::BufReader<File>>> {
    let f = File::open(path).map_err(DumpError::io(path))?;
    let len = f.metadata().map_err(DumpError::io(path))?.len();
    // The decoder buffers by itself; a small BufReader only avoids an
    // extra copy path for tiny reads.
    Decoder::new(io::BufReader::with_capacity(8192, f), Some(len), opts)
        .map_err(DumpError::rdb(path))
}

/// Where a subcommand writes: a new file (`-o`) or stdout.
pub struct Output<'a> {
    pub w: Box<dyn Write + 'a>,
    path: Option<PathBuf>,
}

impl<'a> Output<'a> {
    /// Opens `-o FILE` (refusing an existing file unless `force`, and any
    /// of the `inputs`), or falls back to `stdout`.
    pub fn open(
        path: Option<&Path>,
        force: bool,
        inputs: &[&Path],
        stdout: &'a mut dyn Write,
    ) -> Result<Output<'a>> {
        match path {
            // Buffered: stdout is line-buffered, and row-by-row writers
            // (memory, diff) would otherwise make a system call per line.
            None => Ok(Output {
                w: Box::new(BufWriter::with_capacity(64 * 1024, stdout)),
                path: None,
            }),
            Some(p) => {
                check_output_path(p, force, inputs)?;
                let f = File::create(p).map_err(DumpError::io(p))?;
                Ok(Output {
                    w: Box::new(BufWriter::with_capacity(256 * 1024, f)),
                    path: Some(p.to_path_buf()),
                })
            }
        }
    }

    pub fn finish(mut self) -> Result<()> {
        let p = self
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("<stdout>"));
        self.w.flush().map_err(DumpError::io(p))
    }

    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<stdout>".into())
    }
}

/// Refuses to overwrite an input in any case, and an existing file unless
/// `force`.
pub fn check_output_path(p: &Path, force: bool, inputs: &[&Path]) -> Result<()> {
    if let Ok(out) = p.canonicalize() {
        for i in inputs {
            if let Ok(i) = i.canonicalize() {
                if i == out || out.starts_with(&i) && i.is_dir() {
                    return Err(DumpError::OutputIsInput(p.to_path_buf()));
                }
            }
        }
    }
    if p.exists() && !force {
        return Err(DumpError::OutputExists(p.to_path_buf()));
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Number of elements of a decoded value (1 for strings and modules).
pub fn element_count(v: &Decoded) -> usize {
    use redoubt_persist::Value;
    match v {
        Decoded::Module(_) => 1,
        Decoded::Value(v) => match v {
            Value::Str(_) => 1,
            Value::List(l) => l.items.len(),
            Value::Hash(h) => h.map.len(),
            Value::Set(s) => s.members.len(),
            Value::ZSet(z) => z.len(),
            Value::Stream(s) => s.len(),
        },
    }
}

pub(crate) fn werr(e: io::Error) -> DumpError {
    DumpError::Io {
        path: "<output>".into(),
        source: e,
    }
}
