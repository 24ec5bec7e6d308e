//! AOF rewrite: a new base plus a fresh incr file, committed by one atomic
//! manifest swap, then history cleanup.
//!
//! The base's content comes from a caller-supplied *base writer*. The
//! snapshot walker (fork-free, copy-on-write segments) will be that writer;
//! until it lands the server passes [`write_keyspace_resp`], a synchronous
//! serialization of the keyspace as RESP commands.
//!
//! Crash safety, step by step (see the tests): until the commit the old
//! manifest names a complete set (old base + every incr, including the new
//! one, which is listed before any write goes to it); the new base is
//! fsynced before it is renamed into the directory; the commit is the
//! manifest swap (temp + fsync + rename + dir fsync); history files are
//! deleted only after it.

use super::dir::{AofDir, DirError};
use super::manifest::{AofInfo, FileType, Manifest};
use super::record::{encode_annotation, encode_command};
use crate::keyspace::Keyspace;
use crate::storage::StorageFile;
use crate::value::Value;
use std::io::{self, Write};
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RewriteError {
    #[error(transparent)]
    Dir(#[from] DirError),
    #[error("Error writing the AOF base {path}: {source}")]
    Base { path: String, source: io::Error },
    #[error("Can't switch the AOF writer to the new incr file: {0}")]
    Rotate(io::Error),
}

/// Step 1 (AOF on): opens the next incr file and persists a manifest that
/// lists it after the current ones. The caller switches its writer to the
/// returned file; nothing is lost whatever happens next.
pub fn open_next_incr(
    dir: &AofDir,
    m: &mut Manifest,
) -> Result<(AofInfo, Box<dyn StorageFile>), DirError> {
    dir.ensure_dir()?;
    let seq = m.curr_incr_seq + 1;
    let ai = AofInfo {
        name: dir.incr_name(seq),
        seq,
        ty: FileType::Incr,
    };
    let path = dir.path(&ai.name);
    let file = dir.storage.create(&path).map_err(|source| DirError::Io {
        what: "Can't open the append-only file",
        path: path.display().to_string(),
        source,
    })?;
    // The new name must be durable before a manifest naming it can be.
    let d = dir.dir();
    if let Err(source) = dir.storage.fsync_dir(&d) {
        let _ = dir.storage.remove(&path);
        return Err(DirError::Io {
            what: "Fail to fsync AOF directory",
            path: d.display().to_string(),
            source,
        });
    }
    let mut next = m.clone();
    next.incrs.push(ai.clone());
    next.curr_incr_seq = seq;
    if let Err(e) = dir.persist_manifest(&next) {
        // A manifest in force may name the new incr: keep it then.
        if !e.manifest_swapped() {
            let _ = dir.storage.remove(&path);
        }
        return Err(e);
    }
    *m = next;
    Ok((ai, file))
}

/// Step 2: writes a base through `base_writer` into a temp file in the
/// working directory, fsyncs it. Returns its path.
pub fn write_temp_base(
    dir: &AofDir,
    base_writer: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<PathBuf, RewriteError> {
    let tmp = dir
        .workdir
        .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let res = (|| {
        let mut f = dir.storage.create(&tmp)?;
        {
            let mut bw = io::BufWriter::with_capacity(256 * 1024, &mut f);
            base_writer(&mut bw)?;
            bw.flush()?;
        }
        f.sync()
    })();
    if let Err(source) = res {
        let _ = dir.storage.remove(&tmp);
        return Err(RewriteError::Base {
            path: tmp.display().to_string(),
            source,
        });
    }
    Ok(tmp)
}

/// Step 3: the commit. The temp base becomes the next base; the old base and
/// every incr except `current_incr` become history; the manifest swap makes
/// it so; history is then deleted. On failure the old manifest stays in
/// force and the new base is removed.
pub fn commit(
    dir: &AofDir,
    m: &mut Manifest,
    temp_base: &std::path::Path,
    rdb: bool,
    current_incr: Option<&str>,
) -> Result<(), DirError> {
    dir.ensure_dir()?;
    let seq = m.curr_base_seq + 1;
    let name = dir.base_name(seq, rdb);
    let dst = dir.path(&name);
    let mut next = m.clone();
    if let Some(mut old) = next.base.take() {
        old.ty = FileType::History;
        next.history.push(old);
    }
    next.base = Some(AofInfo {
        name: name.clone(),
        seq,
        ty: FileType::Base,
    });
    next.curr_base_seq = seq;
    let (keep, old): (Vec<AofInfo>, Vec<AofInfo>) = next
        .incrs
        .drain(..)
        .partition(|ai| Some(ai.name.as_str()) == current_incr);
    next.incrs = keep;
    for mut ai in old {
        ai.ty = FileType::History;
        next.history.push(ai);
    }
    let res = dir
        .storage
        .rename(temp_base, &dst)
        .map_err(|source| DirError::Io {
            what: "Error trying to rename the temporary AOF base file",
            path: temp_base.display().to_string(),
            source,
        })
        // The base's name must be durable before the manifest naming it.
        .and_then(|_| {
            dir.storage
                .fsync_dir(&dir.dir())
                .map_err(|source| DirError::Io {
                    what: "Fail to fsync AOF directory",
                    path: dir.dir().display().to_string(),
                    source,
                })
        })
        .and_then(|_| dir.persist_manifest(&next));
    if let Err(e) = res {
        // A manifest in force may name the new base: keep it then.
        if !e.manifest_swapped() {
            let _ = dir.storage.remove(&dst);
        }
        let _ = dir.storage.remove(temp_base);
        return Err(e);
    }
    *m = next;
    tracing::info!("Background AOF rewrite finished successfully");
    if let Err(e) = dir.delete_history(m) {
        // The commit stands; stale history entries are retried next time.
        tracing::warn!("can't clean the AOF history: {e}");
    }
    Ok(())
}

/// The whole rewrite, synchronously: `rotate` switches the writer to the new
/// incr (AOF on) and must have made everything before it durable;
/// `base_writer` then writes the dataset as of that switch.
pub fn rewrite(
    dir: &AofDir,
    m: &mut Manifest,
    aof_on: bool,
    rdb: bool,
    rotate: &mut dyn FnMut(Box<dyn StorageFile>, PathBuf) -> io::Result<()>,
    base_writer: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
) -> Result<(), RewriteError> {
    dir.ensure_dir()?;
    let current = if aof_on {
        let (ai, file) = open_next_incr(dir, m)?;
        rotate(file, dir.path(&ai.name)).map_err(RewriteError::Rotate)?;
        Some(ai.name)
    } else {
        None
    };
    let tmp = write_temp_base(dir, base_writer)?;
    commit(dir, m, &tmp, rdb, current.as_deref())?;
    Ok(())
}

/// Items per command when rewriting collections (Redis's AOF_REWRITE_ITEMS_PER_CMD).
pub const ITEMS_PER_CMD: usize = 64;

/// Serializes a keyspace as RESP commands (a RESP base, as Redis writes
/// with `aof-use-rdb-preamble no`). Keys already expired at `now_ms` are
/// skipped. TODO(snapshot walker): the fork-free walker replaces this
/// synchronous copy for BGREWRITEAOF and CONFIG SET appendonly yes.
pub fn write_keyspace_resp(
    ks: &Keyspace,
    out: &mut dyn Write,
    now_ms: u64,
    timestamp: Option<u64>,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(64 * 1024);
    if let Some(ts) = timestamp {
        encode_annotation(&mut buf, ts);
    }
    for (i, db) in ks.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        let dbs = i.to_string();
        encode_command(&mut buf, &[b"SELECT".as_slice(), dbs.as_bytes()]);
        for e in db.iter() {
            if e.is_expired(now_ms) {
                continue;
            }
            write_entry(&mut buf, &e.key, &e.value);
            if e.expire_at != 0 {
                let at = e.expire_at.to_string();
                encode_command(&mut buf, &[b"PEXPIREAT".as_slice(), &e.key, at.as_bytes()]);
            }
            if buf.len() >= 64 * 1024 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    out.write_all(&buf)
}

/// `head` followed by the items' arguments, [`ITEMS_PER_CMD`] items per
/// command.
pub fn chunked<'a>(buf: &mut Vec<u8>, head: &[&[u8]], items: impl Iterator<Item = Vec<&'a [u8]>>) {
    let mut args: Vec<&[u8]> = head.to_vec();
    let mut n = 0;
    for it in items {
        args.extend(it);
        n += 1;
        if n == ITEMS_PER_CMD {
            encode_command(buf, &args);
            args.truncate(head.len());
            n = 0;
        }
    }
    if n > 0 {
        encode_command(buf, &args);
    }
}

/// Appends the commands that recreate one key (without its expiry), as
/// Redis's AOF rewrite does. Sets come out in their own order, and hash
/// field TTLs (Redis 7.4) are not written: this server has no command for
/// them.
pub fn write_entry(buf: &mut Vec<u8>, key: &[u8], v: &Value) {
    match v {
        Value::Str(s) => encode_command(buf, &[b"SET".as_slice(), key, s]),
        Value::List(l) => chunked(
            buf,
            &[b"RPUSH", key],
            l.items.iter().map(|x| vec![x.as_ref()]),
        ),
        Value::Set(s) => chunked(
            buf,
            &[b"SADD", key],
            s.members.iter().map(|x| vec![x.as_ref()]),
        ),
        Value::Hash(h) => chunked(
            buf,
            &[b"HMSET", key],
            h.map.iter().map(|(f, v)| vec![f.as_ref(), v.as_ref()]),
        ),
        Value::ZSet(z) => {
            let scores: Vec<(String, &[u8])> = z
                .iter()
                .map(|m| (score_text(m.score), m.member.as_ref()))
                .collect();
            chunked(
                buf,
                &[b"ZADD", key],
                scores.iter().map(|(s, m)| vec![s.as_bytes(), *m]),
            );
        }
        Value::Stream(st) => write_stream(buf, key, st),
    }
}

/// Shortest text that reads back as the same double (what Redis 7.2+ writes).
pub fn score_text(f: f64) -> String {
    if f.is_infinite() {
        if f > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{f}")
    }
}

fn write_stream(buf: &mut Vec<u8>, key: &[u8], st: &crate::value::Stream) {
    if st.entries.is_empty() {
        encode_command(
            buf,
            &[b"XADD".as_slice(), key, b"MAXLEN", b"0", b"0-1", b"x", b"y"],
        );
    }
    for e in st.entries.iter() {
        let ids = e.id.to_string();
        let mut args: Vec<&[u8]> = vec![b"XADD", key, ids.as_bytes()];
        for (f, v) in e.fields() {
            args.push(f);
            args.push(v);
        }
        encode_command(buf, &args);
    }
    let last = st.last_id.to_string();
    let added = st.entries_added.to_string();
    let maxdel = st.max_deleted_id.to_string();
    encode_command(
        buf,
        &[
            b"XSETID".as_slice(),
            key,
            last.as_bytes(),
            b"ENTRIESADDED",
            added.as_bytes(),
            b"MAXDELETEDID",
            maxdel.as_bytes(),
        ],
    );
    for (gname, g) in &st.groups {
        let gid = g.last_id.to_string();
        let read = g.entries_read.to_string();
        encode_command(
            buf,
            &[
                b"XGROUP".as_slice(),
                b"CREATE",
                key,
                gname,
                gid.as_bytes(),
                b"ENTRIESREAD",
                read.as_bytes(),
            ],
        );
        for (id, pe) in &g.pel {
            let ids = id.to_string();
            let t = pe.delivery_time.to_string();
            let c = pe.delivery_count.to_string();
            encode_command(
                buf,
                &[
                    b"XCLAIM".as_slice(),
                    key,
                    gname,
                    &pe.consumer,
                    b"0",
                    ids.as_bytes(),
                    b"TIME",
                    t.as_bytes(),
                    b"RETRYCOUNT",
                    c.as_bytes(),
                    b"JUSTID",
                    b"FORCE",
                ],
            );
        }
        for (cname, c) in &g.consumers {
            if c.pel.is_empty() {
                encode_command(
                    buf,
                    &[b"XGROUP".as_slice(), b"CREATECONSUMER", key, gname, cname],
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aof::loader::{load_dir, LoadOptions, Replay};
    use crate::storage::{Op, SimStorage, Storage};
    use std::sync::Arc;

    /// Applies SET / DEL only (enough for the crash tests).
    #[derive(Default, Clone, PartialEq, Debug)]
    struct Kv(std::collections::BTreeMap<Vec<u8>, Vec<u8>>);
    impl Replay for Kv {
        fn command(&mut self, a: Vec<Vec<u8>>) -> Result<(), String> {
            if a[0].eq_ignore_ascii_case(b"set") {
                self.0.insert(a[1].clone(), a[2].clone());
            }
            Ok(())
        }
        fn transaction(&mut self, c: Vec<Vec<Vec<u8>>>) -> Result<(), String> {
            for a in c {
                self.command(a)?;
            }
            Ok(())
        }
    }

    fn set(i: u32) -> Vec<u8> {
        let mut v = Vec::new();
        encode_command(
            &mut v,
            &[b"SET".to_vec(), format!("k{i}").into_bytes(), b"v".to_vec()],
        );
        v
    }

    /// Builds dir with base + incr holding k1..k10, all durable.
    fn setup(s: &SimStorage) -> (AofDir, Manifest, Box<dyn StorageFile>) {
        let d = AofDir::new(Arc::new(s.clone()), ".", "appendonlydir", "appendonly.aof");
        d.ensure_dir().unwrap();
        let mut m = Manifest::default();
        let tmp = write_temp_base(&d, &mut |w| w.write_all(&set(1))).unwrap();
        commit(&d, &mut m, &tmp, false, None).unwrap();
        let (_ai, mut f) = open_next_incr(&d, &mut m).unwrap();
        for i in 2..=10 {
            f.write_all(&set(i)).unwrap();
        }
        f.sync().unwrap();
        (d, m, f)
    }

    /// A storage that dies after `budget` operations: every later
    /// operation fails, as if the machine stopped right there.
    struct Dying {
        inner: SimStorage,
        budget: u64,
    }
    impl Dying {
        fn alive(&self) -> io::Result<()> {
            if self.inner.ops() >= self.budget {
                Err(io::Error::other("dead"))
            } else {
                Ok(())
            }
        }
    }
    struct DyingFile(Box<dyn StorageFile>, SimStorage, u64);
    impl Write for DyingFile {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.1.ops() >= self.2 {
                return Err(io::Error::other("dead"));
            }
            self.0.write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl StorageFile for DyingFile {
        fn sync(&mut self) -> io::Result<()> {
            if self.1.ops() >= self.2 {
                return Err(io::Error::other("dead"));
            }
            self.0.sync()
        }
    }
    impl Storage for Dying {
        fn create(&self, p: &std::path::Path) -> io::Result<Box<dyn StorageFile>> {
            self.alive()?;
            Ok(Box::new(DyingFile(
                self.inner.create(p)?,
                self.inner.clone(),
                self.budget,
            )))
        }
        fn append(&self, p: &std::path::Path) -> io::Result<Box<dyn StorageFile>> {
            self.alive()?;
            Ok(Box::new(DyingFile(
                self.inner.append(p)?,
                self.inner.clone(),
                self.budget,
            )))
        }
        fn open(&self, p: &std::path::Path) -> io::Result<Box<dyn io::Read + Send>> {
            self.inner.open(p)
        }
        fn rename(&self, a: &std::path::Path, b: &std::path::Path) -> io::Result<()> {
            self.alive()?;
            self.inner.rename(a, b)
        }
        fn remove(&self, p: &std::path::Path) -> io::Result<()> {
            self.alive()?;
            self.inner.remove(p)
        }
        fn fsync_dir(&self, d: &std::path::Path) -> io::Result<()> {
            self.alive()?;
            self.inner.fsync_dir(d)
        }
        fn create_dir_all(&self, d: &std::path::Path) -> io::Result<()> {
            self.alive()?;
            self.inner.create_dir_all(d)
        }
        fn list(&self, d: &std::path::Path) -> io::Result<Vec<String>> {
            self.inner.list(d)
        }
        fn exists(&self, p: &std::path::Path) -> bool {
            self.inner.exists(p)
        }
        fn len(&self, p: &std::path::Path) -> io::Result<u64> {
            self.inner.len(p)
        }
        fn truncate(&self, p: &std::path::Path, l: u64) -> io::Result<()> {
            self.alive()?;
            self.inner.truncate(p, l)
        }
    }

    #[test]
    fn rewrite_is_crash_safe_at_every_io_step() {
        let expected: Vec<u32> = (1..=12).collect();
        let mut steps_seen = 0;
        for budget_extra in 0..40u64 {
            for seed in 0..6u64 {
                let s = SimStorage::new();
                let (d0, mut m, mut f) = setup(&s);
                let dying = Dying {
                    inner: s.clone(),
                    budget: s.ops() + budget_extra,
                };
                let d = AofDir {
                    storage: Arc::new(dying),
                    ..d0.clone()
                };
                let mut current: Option<Box<dyn StorageFile>> = None;
                let r = rewrite(
                    &d,
                    &mut m,
                    true,
                    false,
                    &mut |file, _path| {
                        f.sync()?;
                        current = Some(file);
                        Ok(())
                    },
                    &mut |w| {
                        for i in 1..=10 {
                            w.write_all(&set(i))?;
                        }
                        Ok(())
                    },
                );
                if r.is_ok() && seed == 0 {
                    steps_seen = budget_extra;
                }
                // Writes after the switch go to the new incr (or, if the
                // switch never happened, to the old one), durable.
                let target = current.as_mut().unwrap_or(&mut f);
                let tail_ok = target
                    .write_all(&set(11))
                    .and_then(|_| target.write_all(&set(12)))
                    .and_then(|_| target.sync())
                    .is_ok();
                s.crash(seed);
                let m2 = d0.load_manifest().unwrap().unwrap();
                let mut kv = Kv::default();
                load_dir(
                    &d0,
                    &m2,
                    LoadOptions {
                        load_truncated: true,
                    },
                    None,
                    &mut kv,
                )
                .unwrap_or_else(|e| panic!("budget {budget_extra} seed {seed}: {e}"));
                let mut keys: Vec<u32> =
                    kv.0.keys()
                        .map(|k| String::from_utf8_lossy(&k[1..]).parse().unwrap())
                        .collect();
                keys.sort();
                // Everything up to k10 was durable before the rewrite began.
                assert!(
                    keys.starts_with(&expected[..10]),
                    "budget {budget_extra} seed {seed}: {keys:?}"
                );
                if tail_ok {
                    assert_eq!(keys, expected, "budget {budget_extra} seed {seed}");
                }
            }
        }
        assert!(
            steps_seen > 0 && steps_seen < 40,
            "the rewrite never completed within the budgets"
        );
        let _ = Op::Sync;
    }

    #[test]
    fn successful_rewrite_layout() {
        let s = SimStorage::new();
        let (d, mut m, mut f) = setup(&s);
        rewrite(&d, &mut m, true, false, &mut |_, _| f.sync(), &mut |w| {
            w.write_all(&set(1))
        })
        .unwrap();
        assert_eq!(m.to_bytes(), b"file appendonly.aof.2.base.aof seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n".to_vec());
        let names = s.list(&d.dir()).unwrap();
        assert_eq!(
            names,
            vec![
                "appendonly.aof.2.base.aof",
                "appendonly.aof.2.incr.aof",
                "appendonly.aof.manifest"
            ]
        );
    }

    #[test]
    fn keyspace_as_resp() {
        let mut ks = Keyspace::new(2);
        ks.db(0).insert(b"s", Value::str_from(b"v"), 0);
        ks.db(1).insert(b"t", Value::str_from(b"w"), 5000);
        ks.db(1).insert(b"gone", Value::str_from(b"w"), 10);
        let mut out = Vec::new();
        write_keyspace_resp(&ks, &mut out, 100, None).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("$3\r\nSET\r\n$1\r\ns\r\n$1\r\nv\r\n"));
        assert!(s.contains("$6\r\nSELECT\r\n$1\r\n1\r\n"));
        assert!(s.contains("PEXPIREAT\r\n$1\r\nt\r\n$4\r\n5000\r\n"));
        assert!(!s.contains("gone"));
    }
}
