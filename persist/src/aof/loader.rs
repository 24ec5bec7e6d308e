//! Loading an AOF: a multi-part directory (manifest -> base -> incrs) or a
//! legacy single file, each possibly starting with an RDB image.
//!
//! The RDB part is handed to a caller-supplied [`RdbLoader`], so the RDB
//! codec plugs in without this module knowing it. Commands go to a
//! caller-supplied [`Replay`] (the server replays them through its executor).

use super::dir::AofDir;
use super::manifest::Manifest;
use super::reader::{AofReader, FormatError, ProblemKind, ReadError, Unit};
use std::io::{self, Read};
use std::path::Path;

/// Where the commands go.
pub trait Replay {
    /// One command outside a transaction.
    fn command(&mut self, args: Vec<Vec<u8>>) -> Result<(), String>;
    /// A complete MULTI ... EXEC block (without the MULTI and EXEC).
    fn transaction(&mut self, cmds: Vec<Vec<Vec<u8>>>) -> Result<(), String>;
    /// About how many more commands the current file holds, estimated
    /// once per file from the first [`HINT_AFTER`] commands: lets the
    /// replay pre-size its tables instead of growing them step by step.
    fn size_hint(&mut self, _more_commands: u64) {}
}

/// Commands read from a file before its [`Replay::size_hint`] is given.
pub const HINT_AFTER: u64 = 256;

/// Loads an RDB image from the reader and returns the image's length
/// (through its trailing checksum). A buffering decoder may read past the
/// image: the AOF reader reads what lies after it from a second handle.
/// `name` is the file name, for messages.
pub type RdbLoader<'a> = &'a mut dyn FnMut(&mut dyn Read, &str) -> Result<u64, String>;

#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// `aof-load-truncated`.
    pub load_truncated: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Dir(#[from] super::dir::DirError),
    #[error("Unable to obtain the AOF file {name} length. stat: {source}")]
    Missing { name: String, source: io::Error },
    #[error("Bad file format reading the append only file {name}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest> ({err})")]
    Corrupt { name: String, err: FormatError },
    #[error("Fatal error: the truncated file is not the last file ({err})")]
    TruncatedNotLast { name: String, err: FormatError },
    #[error("Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server. ({err})")]
    TruncatedRefused { name: String, err: FormatError },
    #[error("Error reading the RDB base file {name}, AOF loading aborted: {msg}")]
    Rdb { name: String, msg: String },
    #[error("{name} starts with an RDB image, but no RDB loader is available")]
    NoRdbLoader { name: String },
    #[error("{msg} reading the append only file {name} at offset {offset}")]
    Replay {
        name: String,
        offset: u64,
        msg: String,
    },
    #[error("error reading AOF {name}: {source}")]
    Io { name: String, source: io::Error },
}

/// What loading one file did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileReport {
    pub name: String,
    pub size: u64,
    pub rdb_preamble: bool,
    pub commands: u64,
    /// Set when a torn tail was cut off: the new length.
    pub truncated_to: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub files: Vec<FileReport>,
    /// Commands replayed from incr files (for rdb_changes_since_last_save).
    pub incr_commands: u64,
    pub total_size: u64,
    pub base_size: u64,
}

/// Counts the bytes an RDB loader pulls through.
struct Counting<'a, R: Read> {
    inner: &'a mut R,
    n: u64,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// True when the data starts with the RDB magic.
pub fn is_rdb(head: &[u8]) -> bool {
    head.starts_with(b"REDIS")
}

/// Loads one file. `last`: whether a torn tail may be truncated here.
pub fn load_file(
    storage: &dyn crate::storage::Storage,
    path: &Path,
    name: &str,
    last: bool,
    opts: LoadOptions,
    rdb: &mut Option<RdbLoader<'_>>,
    replay: &mut dyn Replay,
) -> Result<FileReport, LoadError> {
    let size = storage.len(path).map_err(|source| LoadError::Missing {
        name: name.into(),
        source,
    })?;
    let mut rep = FileReport {
        name: name.into(),
        size,
        ..Default::default()
    };
    if size == 0 {
        return Ok(rep);
    }
    let mut f = storage.open(path).map_err(|source| LoadError::Io {
        name: name.into(),
        source,
    })?;
    let mut head = [0u8; 5];
    let mut got = 0;
    while got < 5 {
        match f.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(LoadError::Io {
                    name: name.into(),
                    source,
                })
            }
        }
    }
    let mut chained = io::Cursor::new(head[..got].to_vec()).chain(f);
    let mut start = 0u64;
    if is_rdb(&head[..got]) {
        rep.rdb_preamble = true;
        let Some(loader) = rdb.as_mut() else {
            return Err(LoadError::NoRdbLoader { name: name.into() });
        };
        tracing::info!("Reading RDB base file on AOF loading...");
        let mut c = Counting {
            inner: &mut chained,
            n: 0,
        };
        let image_len = loader(&mut c, name).map_err(|msg| LoadError::Rdb {
            name: name.into(),
            msg,
        })?;
        if image_len > c.n || image_len > size {
            return Err(LoadError::Rdb {
                name: name.into(),
                msg: format!(
                    "the RDB reader reported an image of {image_len} bytes after reading {}",
                    c.n
                ),
            });
        }
        drop(chained);
        start = image_len;
        if image_len == size {
            // A base Redis 7 writes: the image alone.
            let r = AofReader::new(Box::new(io::empty()) as Box<dyn Read>, name, start);
            return read_commands(storage, path, r, name, last, opts, replay, rep);
        }
        // Commands after the image (an old single-file AOF with a
        // preamble): the decoder may have read ahead past the image, so
        // read them from a second handle, positioned after it. Reading the
        // image twice costs less, in this rare case, than keeping a copy of
        // everything the decoder reads in the common one.
        let mut again = storage.open(path).map_err(|source| LoadError::Io {
            name: name.into(),
            source,
        })?;
        let skipped =
            io::copy(&mut (&mut again).take(image_len), &mut io::sink()).map_err(|source| {
                LoadError::Io {
                    name: name.into(),
                    source,
                }
            })?;
        if skipped != image_len {
            return Err(LoadError::Rdb {
                name: name.into(),
                msg: format!("the file ended {skipped} bytes into an image of {image_len}"),
            });
        }
        let r = AofReader::new(Box::new(again) as Box<dyn Read>, name, start);
        return read_commands(storage, path, r, name, last, opts, replay, rep);
    }
    let rest: Box<dyn Read + '_> = Box::new(chained);
    let r = AofReader::new(rest, name, start);
    read_commands(storage, path, r, name, last, opts, replay, rep)
}

/// Replays the commands of one file from `r` (after any RDB part).
#[allow(clippy::too_many_arguments)]
fn read_commands<R: Read>(
    storage: &dyn crate::storage::Storage,
    path: &Path,
    mut r: AofReader<R>,
    name: &str,
    last: bool,
    opts: LoadOptions,
    replay: &mut dyn Replay,
    mut rep: FileReport,
) -> Result<FileReport, LoadError> {
    let first = r.offset();
    let mut hinted = false;
    loop {
        if !hinted && rep.commands >= HINT_AFTER {
            hinted = true;
            let read = r.offset().saturating_sub(first).max(1);
            let left = rep.size.saturating_sub(r.offset());
            replay.size_hint(left.saturating_mul(rep.commands) / read);
        }
        let unit = match r.next_unit() {
            Ok(Some((u, at, _))) => (u, at),
            Ok(None) => break,
            Err(ReadError::Io { source, .. }) => {
                return Err(LoadError::Io {
                    name: name.into(),
                    source,
                })
            }
            Err(ReadError::Format(err)) => {
                if err.kind == ProblemKind::Corrupt {
                    return Err(LoadError::Corrupt {
                        name: name.into(),
                        err,
                    });
                }
                if !opts.load_truncated {
                    return Err(LoadError::TruncatedRefused {
                        name: name.into(),
                        err,
                    });
                }
                if !last {
                    return Err(LoadError::TruncatedNotLast {
                        name: name.into(),
                        err,
                    });
                }
                if err.what.starts_with("Reached EOF before reading EXEC") {
                    tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
                }
                tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
                tracing::warn!(
                    "!!! Truncating the AOF {name} at offset {} !!!",
                    err.record_start
                );
                storage
                    .truncate(path, err.record_start)
                    .and_then(|_| storage.append(path)?.sync())
                    .map_err(|source| LoadError::Io {
                        name: name.into(),
                        source,
                    })?;
                tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
                rep.truncated_to = Some(err.record_start);
                break;
            }
        };
        let (u, at) = unit;
        let res = match u {
            Unit::Annotation(_) => continue,
            Unit::Command(args) => {
                rep.commands += 1;
                replay.command(args)
            }
            Unit::Transaction(cmds) => {
                rep.commands += cmds.len() as u64 + 2;
                replay.transaction(cmds)
            }
        };
        res.map_err(|msg| LoadError::Replay {
            name: name.into(),
            offset: at,
            msg,
        })?;
    }
    Ok(rep)
}

/// Loads every file of a manifest: base, then incrs in order.
pub fn load_dir(
    dir: &AofDir,
    m: &Manifest,
    opts: LoadOptions,
    mut rdb: Option<RdbLoader<'_>>,
    replay: &mut dyn Replay,
) -> Result<LoadReport, LoadError> {
    let order = m.load_order();
    let mut report = LoadReport::default();
    for (i, ai) in order.iter().enumerate() {
        let last = i + 1 == order.len();
        let path = dir.path(&ai.name);
        let started = std::time::Instant::now();
        let fr = load_file(&*dir.storage, &path, &ai.name, last, opts, &mut rdb, replay)?;
        let kind = if m.base.as_ref() == Some(*ai) {
            "base"
        } else {
            "incr"
        };
        if kind == "incr" {
            report.incr_commands += fr.commands;
        }
        tracing::info!(
            "DB loaded from {kind} file {}: {:.3} seconds",
            ai.name,
            started.elapsed().as_secs_f64()
        );
        report.files.push(fr);
    }
    let (total, base) = dir.sizes(m);
    report.total_size = total;
    report.base_size = base;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aof::manifest::{AofInfo, FileType};
    use crate::aof::record::encode_command;
    use crate::storage::{SimStorage, Storage};
    use std::io::Write;
    use std::sync::Arc;

    #[derive(Default)]
    struct Collect(Vec<String>);
    impl Replay for Collect {
        fn command(&mut self, args: Vec<Vec<u8>>) -> Result<(), String> {
            self.0.push(
                args.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            Ok(())
        }
        fn transaction(&mut self, cmds: Vec<Vec<Vec<u8>>>) -> Result<(), String> {
            self.0.push("MULTI".into());
            for c in cmds {
                self.command(c)?;
            }
            self.0.push("EXEC".into());
            Ok(())
        }
    }

    fn put(s: &SimStorage, p: &Path, data: &[u8]) {
        let mut f = s.create(p).unwrap();
        f.write_all(data).unwrap();
        f.sync().unwrap();
    }

    fn setup(base: &[u8], incr: &[u8]) -> (SimStorage, AofDir, Manifest) {
        let s = SimStorage::new();
        let d = AofDir::new(Arc::new(s.clone()), ".", "appendonlydir", "appendonly.aof");
        d.ensure_dir().unwrap();
        let m = Manifest {
            base: Some(AofInfo {
                name: d.base_name(1, false),
                seq: 1,
                ty: FileType::Base,
            }),
            incrs: vec![AofInfo {
                name: d.incr_name(1),
                seq: 1,
                ty: FileType::Incr,
            }],
            history: vec![],
            curr_base_seq: 1,
            curr_incr_seq: 1,
        };
        put(&s, &d.path(&d.base_name(1, false)), base);
        put(&s, &d.path(&d.incr_name(1)), incr);
        d.persist_manifest(&m).unwrap();
        (s, d, m)
    }

    fn cmds(list: &[&[&str]]) -> Vec<u8> {
        let mut v = Vec::new();
        for c in list {
            encode_command(&mut v, c);
        }
        v
    }

    const OPTS: LoadOptions = LoadOptions {
        load_truncated: true,
    };

    #[test]
    fn each_file_gives_one_size_hint_near_its_command_count() {
        #[derive(Default)]
        struct Hints {
            commands: u64,
            hints: Vec<u64>,
        }
        impl Replay for Hints {
            fn command(&mut self, _args: Vec<Vec<u8>>) -> Result<(), String> {
                self.commands += 1;
                Ok(())
            }
            fn transaction(&mut self, _cmds: Vec<Vec<Vec<u8>>>) -> Result<(), String> {
                Ok(())
            }
            fn size_hint(&mut self, more: u64) {
                self.hints.push(more);
            }
        }
        let set = |n: usize| -> Vec<u8> {
            let mut v = Vec::new();
            for i in 0..n {
                encode_command(&mut v, &["SET", &format!("key:{i:08}"), "value"]);
            }
            v
        };
        // A base of 2000 commands, an incr too short to be hinted.
        let (_s, d, m) = setup(&set(2000), &set(100));
        let mut h = Hints::default();
        load_dir(&d, &m, OPTS, None, &mut h).unwrap();
        assert_eq!(h.commands, 2100);
        assert_eq!(h.hints, vec![2000 - HINT_AFTER]);
    }

    #[test]
    fn loads_base_then_incr_and_truncates_torn_tail() {
        let base = cmds(&[&["SET", "a", "1"]]);
        let mut incr = cmds(&[&["SET", "b", "2"], &["MULTI"], &["INCR", "a"]]);
        incr.extend_from_slice(b"*2\r\n$4\r\nIN");
        let (s, d, m) = setup(&base, &incr);
        let mut c = Collect::default();
        let rep = load_dir(&d, &m, OPTS, None, &mut c).unwrap();
        assert_eq!(c.0, vec!["SET a 1", "SET b 2"]);
        let cut = cmds(&[&["SET", "b", "2"]]).len() as u64;
        assert_eq!(rep.files[1].truncated_to, Some(cut));
        assert_eq!(s.len(&d.path(&d.incr_name(1))).unwrap(), cut);
    }

    #[test]
    fn refuses_corruption_and_torn_non_last() {
        let base = cmds(&[&["SET", "a", "1"]]);
        let mut incr = cmds(&[&["SET", "b", "2"]]);
        incr[5] = b'X';
        incr.extend(cmds(&[&["SET", "c", "3"]]));
        let (_, d, m) = setup(&base, &incr);
        let e = load_dir(&d, &m, OPTS, None, &mut Collect::default()).unwrap_err();
        assert!(matches!(e, LoadError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("appendonly.aof.1.incr.aof"));

        let mut base = cmds(&[&["SET", "a", "1"]]);
        base.truncate(base.len() - 1);
        let (_, d, m) = setup(&base, &cmds(&[&["SET", "b", "2"]]));
        let e = load_dir(&d, &m, OPTS, None, &mut Collect::default()).unwrap_err();
        assert!(matches!(e, LoadError::TruncatedNotLast { .. }), "{e}");
        let e = load_dir(
            &d,
            &m,
            LoadOptions {
                load_truncated: false,
            },
            None,
            &mut Collect::default(),
        )
        .unwrap_err();
        assert!(matches!(e, LoadError::TruncatedRefused { .. }), "{e}");
    }

    #[test]
    fn rdb_preamble_goes_to_the_plugin() {
        // A stub "RDB": magic, one length byte, payload.
        let mut base = b"REDIS0011".to_vec();
        base.push(3);
        base.extend_from_slice(b"xyz");
        base.extend(cmds(&[&["SET", "tail", "1"]]));
        let (_, d, m) = setup(&base, &cmds(&[&["SET", "b", "2"]]));
        let mut seen = Vec::new();
        // The stub reads greedily, as a buffering decoder does: the loader
        // must hand the bytes after the image back to the AOF reader.
        let mut stub = |r: &mut dyn Read, name: &str| -> Result<u64, String> {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map_err(|e| e.to_string())?;
            let len = all[9] as usize;
            seen.push((name.to_string(), all[10..10 + len].to_vec()));
            Ok(10 + len as u64)
        };
        let mut c = Collect::default();
        let rep = load_dir(&d, &m, OPTS, Some(&mut stub), &mut c).unwrap();
        assert_eq!(c.0, vec!["SET tail 1", "SET b 2"]);
        assert!(rep.files[0].rdb_preamble);
        assert_eq!(
            seen,
            vec![("appendonly.aof.1.base.aof".to_string(), b"xyz".to_vec())]
        );
        let e = load_dir(&d, &m, OPTS, None, &mut Collect::default()).unwrap_err();
        assert!(matches!(e, LoadError::NoRdbLoader { .. }));
    }

    #[test]
    fn an_image_that_fills_its_file_leaves_no_commands_and_a_bad_length_is_refused() {
        let mut base = b"REDIS0011".to_vec();
        base.push(2);
        base.extend_from_slice(b"ok");
        let (_, d, m) = setup(&base, &cmds(&[&["SET", "b", "2"]]));
        let mut claimed = base.len() as u64;
        let mut stub = |r: &mut dyn Read, _: &str| -> Result<u64, String> {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map_err(|e| e.to_string())?;
            Ok(claimed)
        };
        let mut c = Collect::default();
        let rep = load_dir(&d, &m, OPTS, Some(&mut stub), &mut c).unwrap();
        assert_eq!(c.0, vec!["SET b 2"]);
        assert_eq!(rep.files[0].commands, 0);
        // A reader claiming more than the file holds is a broken base, not
        // an empty tail.
        claimed += 1;
        let mut stub = |r: &mut dyn Read, _: &str| -> Result<u64, String> {
            let mut all = Vec::new();
            r.read_to_end(&mut all).map_err(|e| e.to_string())?;
            Ok(claimed)
        };
        let e = load_dir(&d, &m, OPTS, Some(&mut stub), &mut Collect::default()).unwrap_err();
        assert!(matches!(e, LoadError::Rdb { .. }), "{e}");
    }
}
