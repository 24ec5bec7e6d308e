//! `convert`: between RDB versions, RDB to AOF (one RESP file or a Redis 7
//! multi-part directory), and AOF back to RDB.
//!
//! - RDB → RDB streams key by key through the codec's writer
//!   (`--rdb-version` 10, 11 or 12). What the target cannot hold is refused
//!   with the key named (hash field TTLs below 12); a set listpack or a v3
//!   stream is re-encoded for 10 (intset/hashtable; consumer active time
//!   dropped, as Redis 7.0 has none). LRU/LFU hints are not carried over.
//!   Module values cannot be re-encoded: refused, or dropped with
//!   `--skip-modules`.
//! - RDB → AOF writes what `resp` writes (plus `FUNCTION LOAD` per library);
//!   `--to aof-dir` writes `appendonly.aof.1.base.rdb` (or `.base.aof` with
//!   `--aof-base resp`), an empty `appendonly.aof.1.incr.aof` and
//!   `appendonly.aof.manifest` into the output directory: start Redis with
//!   `--dir <parent> --appenddirname <name> --appendonly yes`.
//! - AOF → anything: the AOF (single file, directory or manifest) is read
//!   with `persist::aof`'s loader; an RDB preamble/base is loaded by the
//!   codec, and commands are applied by a small built-in applier
//!   ([`super::apply`]) that knows the common write commands and refuses
//!   any other with its name and offset. (Replaying through the server's
//!   executor was considered: it would tie the tool to the server's
//!   command coverage and runtime; the applier is self-contained.)
//!   Replaying needs the whole keyspace in memory: this is the one
//!   conversion that is not constant-memory.
//!
//! Outputs are written to `<output>.partial` and renamed when complete, so
//! a refused conversion leaves nothing behind.

use super::apply::Applier;
use super::cli::{BaseFormat, Source, Target};
use super::text::display;
use super::{check_output_path, open_rdb, DumpError, Filters, Result};
use redoubt_persist::aof::{self, AofDir, AofInfo, FileType, Manifest, Replay};
use redoubt_persist::rdb::{
    self, DecodeOptions, Decoded, EntryRecord, ErrorKind, Item, RdbWriter, SaveOptions,
};
use redoubt_persist::storage::FileStorage;
use redoubt_persist::Value;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub to: Target,
    pub from: Option<Source>,
    pub rdb_version: u32,
    pub aof_base: BaseFormat,
    pub skip_modules: bool,
    pub force: bool,
}

/// What a conversion did.
#[derive(Debug, Default)]
pub struct Summary {
    pub keys: u64,
    pub skipped_modules: u64,
}

/// Where converted keys go.
enum Sink {
    Rdb {
        w: Option<Box<RdbWriter<File>>>,
        opts: SaveOptions,
        db: Option<u64>,
    },
    Resp {
        w: BufWriter<File>,
        buf: Vec<u8>,
        db: Option<u64>,
    },
}

impl Sink {
    fn rdb(path: &Path, version: u32, aof_base: bool) -> Result<Sink> {
        if !(10..=12).contains(&version) {
            return Err(DumpError::Refused(format!(
                "RDB version {version} cannot be written (supported: 10, 11, 12)"
            )));
        }
        let _ = path;
        Ok(Sink::Rdb {
            w: None,
            opts: SaveOptions {
                version,
                aof_base,
                ..SaveOptions::default()
            },
            db: None,
        })
    }

    fn resp(path: &Path) -> Result<Sink> {
        let f = File::create(path).map_err(DumpError::io(path))?;
        Ok(Sink::Resp {
            w: BufWriter::with_capacity(256 * 1024, f),
            buf: Vec::with_capacity(64 * 1024),
            db: None,
        })
    }

    /// Starts the output; `extra_aux`/`functions` go into an RDB header.
    fn begin(
        &mut self,
        path: &Path,
        extra_aux: Vec<(Vec<u8>, Vec<u8>)>,
        functions: Vec<Vec<u8>>,
    ) -> Result<()> {
        match self {
            Sink::Rdb { w, opts, .. } => {
                if w.is_none() {
                    let mut o = opts.clone();
                    o.extra_aux = extra_aux;
                    o.functions = functions;
                    let f = File::create(path).map_err(DumpError::io(path))?;
                    *w = Some(Box::new(
                        RdbWriter::new(f, o).map_err(DumpError::rdb(path))?,
                    ));
                }
            }
            Sink::Resp { buf, .. } => {
                for code in functions {
                    aof::encode_command(buf, &[b"FUNCTION".as_slice(), b"LOAD", &code]);
                }
            }
        }
        Ok(())
    }

    fn key(
        &mut self,
        path: &Path,
        db: u64,
        key: &[u8],
        v: &Value,
        expire: Option<i64>,
    ) -> Result<()> {
        match self {
            Sink::Rdb { w, db: cur, .. } => {
                let w = w.as_mut().expect("begin() before key()");
                if *cur != Some(db) {
                    w.select_db(db as usize, 0, 0)
                        .map_err(DumpError::rdb(path))?;
                    *cur = Some(db);
                }
                let exp = expire.map_or(0, |x| x.max(1) as u64);
                w.write_entry(key, v, exp).map_err(|e| match e.kind {
                    ErrorKind::Unrepresentable { what, version } => DumpError::Refused(format!(
                        "key '{}' in db {db}: RDB version {version} cannot hold {what}",
                        display(key)
                    )),
                    _ => DumpError::Rdb {
                        file: path.display().to_string(),
                        err: e,
                    },
                })
            }
            Sink::Resp { w, buf, db: cur } => {
                if *cur != Some(db) {
                    aof::encode_command(buf, &[b"SELECT".as_slice(), db.to_string().as_bytes()]);
                    *cur = Some(db);
                }
                super::resp::value_commands(buf, key, v);
                if let Some(x) = expire {
                    let at = x.to_string();
                    aof::encode_command(buf, &[b"PEXPIREAT".as_slice(), key, at.as_bytes()]);
                }
                if buf.len() >= 64 * 1024 {
                    w.write_all(buf).map_err(DumpError::io(path))?;
                    buf.clear();
                }
                Ok(())
            }
        }
    }

    fn finish(self, path: &Path) -> Result<()> {
        match self {
            Sink::Rdb { w, .. } => {
                let w = w.expect("begin() before finish()");
                let f = w.finish().map_err(DumpError::rdb(path))?;
                f.sync_all().map_err(DumpError::io(path))
            }
            Sink::Resp { mut w, buf, .. } => {
                w.write_all(&buf).map_err(DumpError::io(path))?;
                let f = w
                    .into_inner()
                    .map_err(|e| DumpError::io(path)(e.into_error()))?;
                f.sync_all().map_err(DumpError::io(path))
            }
        }
    }
}

/// Aux fields the writer produces itself (not copied from the input).
const OWN_AUX: [&[u8]; 6] = [
    b"redis-ver",
    b"redis-bits",
    b"ctime",
    b"used-mem",
    b"aof-base",
    b"aof-preamble",
];

/// Streams an RDB input into a sink.
fn from_rdb(
    input: &Path,
    f: &Filters,
    opts: &ConvertOptions,
    sink: &mut Sink,
    out: &Path,
) -> Result<Summary> {
    let mut dec = open_rdb(input, DecodeOptions::default())?;
    let mut sum = Summary::default();
    let mut aux = Vec::new();
    let mut functions = Vec::new();
    let mut begun = false;
    let mut db = 0u64;
    while let Some(item) = dec.next_item().map_err(DumpError::rdb(input))? {
        match item {
            Item::Aux { key, value } => {
                if !begun && !OWN_AUX.contains(&key.as_slice()) {
                    aux.push((key, value));
                }
            }
            Item::Function { code, .. } => {
                if begun {
                    return Err(DumpError::Refused(
                        "a function library after the keyspace cannot be carried over".into(),
                    ));
                }
                functions.push(code);
            }
            Item::ModuleAux { name, .. } => {
                if !opts.skip_modules {
                    return Err(DumpError::Refused(format!(
                        "module aux data of '{name}' cannot be re-encoded (use --skip-modules to drop it)"
                    )));
                }
            }
            Item::SelectDb(n) => db = n,
            Item::ResizeDb { .. } | Item::SlotInfo { .. } => {}
            Item::End(_) => {}
            Item::Entry(e) => {
                if !begun {
                    sink.begin(
                        out,
                        std::mem::take(&mut aux),
                        std::mem::take(&mut functions),
                    )?;
                    begun = true;
                }
                if !f.matches(db, &e.key, e.rdb_type) {
                    continue;
                }
                let EntryRecord {
                    key,
                    value,
                    expire_ms,
                    ..
                } = e;
                match value {
                    Decoded::Value(v) => {
                        sink.key(out, db, &key, &v, expire_ms)?;
                        sum.keys += 1;
                    }
                    Decoded::Module(m) => {
                        if !opts.skip_modules {
                            return Err(DumpError::Refused(format!(
                                "key '{}' in db {db} is a module value ({}) that cannot be re-encoded (use --skip-modules to drop it)",
                                display(&key),
                                m.name
                            )));
                        }
                        sum.skipped_modules += 1;
                    }
                }
            }
        }
    }
    if !begun {
        sink.begin(out, aux, functions)?;
    }
    Ok(sum)
}

struct ApplyReplay<'a>(&'a std::cell::RefCell<Applier>);

impl Replay for ApplyReplay<'_> {
    fn command(&mut self, args: Vec<Vec<u8>>) -> std::result::Result<(), String> {
        self.0.borrow_mut().apply(&args)
    }

    fn transaction(&mut self, cmds: Vec<Vec<Vec<u8>>>) -> std::result::Result<(), String> {
        let mut g = self.0.borrow_mut();
        for c in cmds {
            g.apply(&c)?;
        }
        Ok(())
    }
}

/// A representative RDB type byte for filtering a replayed value.
fn type_byte(v: &Value) -> u8 {
    match v {
        Value::Str(_) => rdb::TYPE_STRING,
        Value::List(_) => rdb::TYPE_LIST_QUICKLIST_2,
        Value::Set(_) => rdb::TYPE_SET,
        Value::ZSet(_) => rdb::TYPE_ZSET_2,
        Value::Hash(_) => rdb::TYPE_HASH,
        Value::Stream(_) => rdb::TYPE_STREAM_LISTPACKS_2,
    }
}

/// Finds the manifest of an AOF directory (or takes the given one).
fn manifest_of(input: &Path) -> Result<Option<PathBuf>> {
    if input.is_dir() {
        let rd = fs::read_dir(input).map_err(DumpError::io(input))?;
        let mut found: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "manifest")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("temp-"))
            })
            .collect();
        found.sort();
        return match found.len() {
            1 => Ok(found.pop()),
            0 => Err(DumpError::Aof(format!(
                "{}: no *.manifest file in the directory",
                input.display()
            ))),
            _ => Err(DumpError::Aof(format!(
                "{}: several manifest files; name one",
                input.display()
            ))),
        };
    }
    if input.extension().is_some_and(|x| x == "manifest") {
        return Ok(Some(input.to_path_buf()));
    }
    Ok(None)
}

fn from_aof(input: &Path, f: &Filters, sink: &mut Sink, out: &Path) -> Result<Summary> {
    let cell = std::cell::RefCell::new(Applier::new(16, super::now_ms() as u64));
    let mut rdb_loader =
        |r: &mut dyn std::io::Read, _name: &str| -> std::result::Result<u64, String> {
            let mut g = cell.borrow_mut();
            let mut lo = rdb::LoadOptions::new(0);
            lo.keep_expired = true;
            let st = rdb::load_keyspace(r, None, &mut g.ks, &lo).map_err(|e| e.to_string())?;
            g.functions.extend(st.functions);
            // The decoder buffers ahead; the AOF loader needs the image length.
            Ok(st.bytes_read)
        };
    let mut replay = ApplyReplay(&cell);
    let lopts = aof::LoadOptions {
        load_truncated: false,
    };
    let storage = Arc::new(FileStorage);
    let res = match manifest_of(input)? {
        Some(mpath) => {
            let dir = mpath.parent().unwrap_or(Path::new(".")).to_path_buf();
            let fname = mpath
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_end_matches(".manifest")
                        .to_string()
                })
                .unwrap_or_default();
            let data = fs::read(&mpath).map_err(DumpError::io(&mpath))?;
            let m = Manifest::parse(&data).map_err(|e| DumpError::Aof(e.to_string()))?;
            let workdir = dir.parent().unwrap_or(Path::new(".")).to_path_buf();
            let dirname = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let ad = AofDir::new(storage, workdir, &dirname, &fname);
            aof::load_dir(&ad, &m, lopts, Some(&mut rdb_loader), &mut replay).map(|_| ())
        }
        None => {
            let name = input.display().to_string();
            aof::load_file(
                &*storage,
                input,
                &name,
                true,
                lopts,
                &mut Some(&mut rdb_loader),
                &mut replay,
            )
            .map(|_| ())
        }
    };
    res.map_err(|e| DumpError::Aof(e.to_string()))?;
    let g = cell.borrow();
    let mut sum = Summary::default();
    sink.begin(out, Vec::new(), g.functions.clone())?;
    for (i, db) in g.ks.dbs.iter().enumerate() {
        // Key order: sorted, so outputs do not depend on hash seeds.
        let mut entries: Vec<_> = db.iter().collect();
        entries.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        for e in entries {
            if !f.matches(i as u64, &e.key, type_byte(&e.value)) {
                continue;
            }
            let exp = (e.expire_at != 0).then_some(e.expire_at as i64);
            sink.key(out, i as u64, &e.key, &e.value, exp)?;
            sum.keys += 1;
        }
    }
    Ok(sum)
}

fn is_aof_input(input: &Path, from: Option<Source>) -> bool {
    match from {
        Some(Source::Aof) => true,
        Some(Source::Rdb) => false,
        None => {
            input.is_dir()
                || input
                    .extension()
                    .is_some_and(|x| x == "aof" || x == "manifest")
        }
    }
}

fn partial(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

/// Converts `input` into `output` (required).
pub fn run(
    input: &Path,
    output: Option<&Path>,
    f: &Filters,
    opts: &ConvertOptions,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<Summary> {
    let Some(output) = output else {
        return Err(DumpError::Usage("convert needs -o OUTPUT".into()));
    };
    check_output_path(output, opts.force, &[input])?;
    let aof_in = is_aof_input(input, opts.from);
    let run_into = |sink: &mut Sink, path: &Path| -> Result<Summary> {
        if aof_in {
            from_aof(input, f, sink, path)
        } else {
            from_rdb(input, f, opts, sink, path)
        }
    };
    let sum = match opts.to {
        Target::Rdb | Target::Aof => {
            let tmp = partial(output);
            let mut sink = if opts.to == Target::Rdb {
                Sink::rdb(&tmp, opts.rdb_version, false)?
            } else {
                Sink::resp(&tmp)?
            };
            let r = run_into(&mut sink, &tmp).and_then(|s| sink.finish(&tmp).map(|_| s));
            match r {
                Ok(s) => {
                    fs::rename(&tmp, output).map_err(DumpError::io(output))?;
                    s
                }
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        Target::AofDir => {
            if output.exists() && !output.is_dir() {
                return Err(DumpError::OutputExists(output.to_path_buf()));
            }
            fs::create_dir_all(output).map_err(DumpError::io(output))?;
            let fname = "appendonly.aof";
            let rdb_base = opts.aof_base == BaseFormat::Rdb;
            let base = format!("{fname}.1.base.{}", if rdb_base { "rdb" } else { "aof" });
            let incr = format!("{fname}.1.incr.aof");
            let manifest = format!("{fname}.manifest");
            let tmp = partial(&output.join(&base));
            let mut sink = if rdb_base {
                Sink::rdb(&tmp, opts.rdb_version, true)?
            } else {
                Sink::resp(&tmp)?
            };
            let r = run_into(&mut sink, &tmp).and_then(|s| sink.finish(&tmp).map(|_| s));
            let s = match r {
                Ok(s) => s,
                Err(e) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            let m = Manifest {
                base: Some(AofInfo {
                    name: base.clone(),
                    seq: 1,
                    ty: FileType::Base,
                }),
                incrs: vec![AofInfo {
                    name: incr.clone(),
                    seq: 1,
                    ty: FileType::Incr,
                }],
                history: Vec::new(),
                curr_base_seq: 1,
                curr_incr_seq: 1,
            };
            let w = |name: &str, data: &[u8]| -> Result<()> {
                let p = output.join(name);
                fs::write(&p, data).map_err(DumpError::io(&p))
            };
            fs::rename(&tmp, output.join(&base)).map_err(DumpError::io(output))?;
            w(&incr, b"")?;
            w(&manifest, &m.to_bytes())?;
            s
        }
    };
    let _ = writeln!(
        stdout,
        "converted {} keys from {} to {} ({})",
        sum.keys,
        input.display(),
        output.display(),
        match opts.to {
            Target::Rdb => format!("RDB version {}", opts.rdb_version),
            Target::Aof => "RESP AOF".to_string(),
            Target::AofDir => "multi-part AOF directory".to_string(),
        }
    );
    if sum.skipped_modules > 0 {
        let _ = writeln!(
            stderr,
            "rdb-dump: warning: {} module values dropped",
            sum.skipped_modules
        );
    }
    Ok(sum)
}
