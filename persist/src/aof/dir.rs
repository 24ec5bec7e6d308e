//! The multi-part AOF directory: file names, manifest persistence (atomic
//! swap), history cleanup and the legacy single-file upgrade. All I/O goes
//! through [`Storage`], and every name change that must survive a crash is
//! followed by an fsync of the directory holding it.

use super::manifest::{AofInfo, FileType, Manifest, ManifestError};
use crate::storage::Storage;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("Fatal error: can't open the AOF manifest file {path} for reading: {source}")]
    OpenManifest { path: String, source: io::Error },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: io::Error,
    },
    /// The new manifest was renamed into place but the directory fsync
    /// after it failed: the new manifest is in force (and may or may not
    /// survive a power loss), so the files it names must be kept.
    #[error("Fail to fsync AOF directory {path} after the manifest swap: {source}")]
    ManifestNotDurable { path: String, source: io::Error },
}

impl DirError {
    /// True when a new manifest may be in force despite the error: the
    /// caller must not delete what it names.
    pub fn manifest_swapped(&self) -> bool {
        matches!(self, DirError::ManifestNotDurable { .. })
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DirError + 'a {
    move |source| DirError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// Names and locations of one AOF directory.
#[derive(Clone)]
pub struct AofDir {
    pub storage: Arc<dyn Storage>,
    /// The server's working directory (`dir`), where legacy files live.
    pub workdir: PathBuf,
    /// `appenddirname`.
    pub dirname: String,
    /// `appendfilename`.
    pub filename: String,
}

impl AofDir {
    pub fn new(
        storage: Arc<dyn Storage>,
        workdir: impl Into<PathBuf>,
        dirname: &str,
        filename: &str,
    ) -> AofDir {
        AofDir {
            storage,
            workdir: workdir.into(),
            dirname: dirname.into(),
            filename: filename.into(),
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.workdir.join(&self.dirname)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    pub fn manifest_name(&self) -> String {
        format!("{}.manifest", self.filename)
    }

    pub fn temp_manifest_name(&self) -> String {
        format!("temp-{}.manifest", self.filename)
    }

    pub fn temp_incr_name(&self) -> String {
        format!("temp-{}.incr", self.filename)
    }

    pub fn base_name(&self, seq: u64, rdb: bool) -> String {
        format!(
            "{}.{seq}.base.{}",
            self.filename,
            if rdb { "rdb" } else { "aof" }
        )
    }

    pub fn incr_name(&self, seq: u64) -> String {
        format!("{}.{seq}.incr.aof", self.filename)
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.path(&self.manifest_name())
    }

    /// Reads the manifest; None when the directory or manifest is absent
    /// (then there is no AOF, or a legacy file to upgrade).
    pub fn load_manifest(&self) -> Result<Option<Manifest>, DirError> {
        let p = self.manifest_path();
        if !self.storage.exists(&p) {
            return Ok(None);
        }
        let data = self
            .storage
            .read_all(&p)
            .map_err(|source| DirError::OpenManifest {
                path: p.display().to_string(),
                source,
            })?;
        Ok(Some(Manifest::parse(&data)?))
    }

    /// Writes the manifest atomically: temp file, write, fsync, rename over
    /// the real one, fsync the directory. On failure the old manifest stays.
    pub fn persist_manifest(&self, m: &Manifest) -> Result<(), DirError> {
        let tmp = self.path(&self.temp_manifest_name());
        let dst = self.manifest_path();
        let res = (|| {
            let mut f = self
                .storage
                .create(&tmp)
                .map_err(io_err("Can't open the AOF manifest file", &tmp))?;
            f.write_all(&m.to_bytes())
                .map_err(io_err("Can't write the AOF manifest file", &tmp))?;
            f.sync()
                .map_err(io_err("Can't fsync the AOF manifest file", &tmp))?;
            drop(f);
            self.storage.rename(&tmp, &dst).map_err(io_err(
                "Error trying to rename the temporary AOF manifest file",
                &tmp,
            ))
        })();
        if res.is_err() {
            let _ = self.storage.remove(&tmp);
        }
        res?;
        let d = self.dir();
        // PLANTED BUG (SkipDirFsync): the manifest swap is never made durable.
        if crate::planted::on(crate::planted::Bug::SkipDirFsync) {
            return Ok(());
        }
        self.storage
            .fsync_dir(&d)
            .map_err(|source| DirError::ManifestNotDurable {
                path: d.display().to_string(),
                source,
            })
    }

    /// Creates the directory if missing.
    pub fn ensure_dir(&self) -> Result<(), DirError> {
        let d = self.dir();
        if !self.storage.exists(&d) {
            self.storage
                .create_dir_all(&d)
                .map_err(io_err("Can't create the append-only file directory", &d))?;
            let _ = self.storage.fsync_dir(&self.workdir);
        }
        Ok(())
    }

    /// Deletes history files and persists the manifest without them. A
    /// failure to unlink leaves a stray file, never a broken manifest:
    /// the manifest drops the names only after the files are gone.
    pub fn delete_history(&self, m: &mut Manifest) -> Result<(), DirError> {
        if m.history.is_empty() {
            return Ok(());
        }
        for h in &m.history {
            let p = self.path(&h.name);
            tracing::info!("Removing the history file {} in the background", h.name);
            if let Err(e) = self.storage.remove(&p) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!("can't remove history file {}: {e}", h.name);
                }
            }
        }
        let mut next = m.clone();
        next.history.clear();
        self.persist_manifest(&next)?;
        *m = next;
        Ok(())
    }

    /// Upgrades a legacy `<dir>/<appendfilename>` into the directory as
    /// Redis 7 does (manifest first, then the move, so a crash in between
    /// is redone at the next start). Returns the manifest to use, if an
    /// upgrade happened.
    pub fn upgrade_legacy(&self, current: Option<&Manifest>) -> Result<Option<Manifest>, DirError> {
        let legacy = self.workdir.join(&self.filename);
        if !self.storage.exists(&legacy) {
            return Ok(None);
        }
        let needed = match current {
            None => true,
            Some(m) if m.base.is_none() && m.incrs.is_empty() => true,
            Some(m) => {
                m.incrs.is_empty()
                    && m.base.as_ref().is_some_and(|b| b.name == self.filename)
                    && !self.storage.exists(&self.path(&self.filename))
            }
        };
        if !needed {
            return Ok(None);
        }
        self.ensure_dir()?;
        let m = Manifest {
            base: Some(AofInfo {
                name: self.filename.clone(),
                seq: 1,
                ty: FileType::Base,
            }),
            curr_base_seq: 1,
            ..Default::default()
        };
        self.persist_manifest(&m)?;
        let dst = self.path(&self.filename);
        self.storage
            .rename(&legacy, &dst)
            .map_err(io_err("Error trying to move the old AOF file", &legacy))?;
        self.storage
            .fsync_dir(&self.dir())
            .map_err(io_err("Fail to fsync AOF directory", &self.dir()))?;
        let _ = self.storage.fsync_dir(&self.workdir);
        tracing::info!(
            "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
            self.filename,
            self.dirname
        );
        Ok(Some(m))
    }

    /// Sum of the sizes of base and incr files (aof_current_size).
    pub fn sizes(&self, m: &Manifest) -> (u64, u64) {
        let len = |ai: &AofInfo| self.storage.len(&self.path(&ai.name)).unwrap_or(0);
        let base = m.base.as_ref().map(len).unwrap_or(0);
        let incr: u64 = m.incrs.iter().map(len).sum();
        (base + incr, base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    fn dir(s: &SimStorage) -> AofDir {
        AofDir::new(Arc::new(s.clone()), ".", "appendonlydir", "appendonly.aof")
    }

    #[test]
    fn names() {
        let d = dir(&SimStorage::new());
        assert_eq!(d.base_name(2, true), "appendonly.aof.2.base.rdb");
        assert_eq!(d.base_name(1, false), "appendonly.aof.1.base.aof");
        assert_eq!(d.incr_name(3), "appendonly.aof.3.incr.aof");
        assert_eq!(d.temp_manifest_name(), "temp-appendonly.aof.manifest");
    }

    #[test]
    fn manifest_swap_is_atomic_under_crash() {
        for seed in 0..40 {
            let s = SimStorage::new();
            let d = dir(&s);
            d.ensure_dir().unwrap();
            let mut m1 = Manifest::default();
            m1.incrs.push(AofInfo {
                name: d.incr_name(1),
                seq: 1,
                ty: FileType::Incr,
            });
            d.persist_manifest(&m1).unwrap();
            m1.curr_incr_seq = 1;
            let mut m2 = m1.clone();
            m2.incrs.push(AofInfo {
                name: d.incr_name(2),
                seq: 2,
                ty: FileType::Incr,
            });
            m2.curr_incr_seq = 2;
            // Crash at every step of the second swap.
            let start = s.ops();
            s.inject(seed % 4, crate::storage::Fault::Io);
            let _ = d.persist_manifest(&m2);
            let _ = start;
            s.crash(seed);
            let got = d.load_manifest().unwrap().unwrap();
            assert!(got == m1 || got == m2, "seed {seed}");
        }
    }

    #[test]
    fn legacy_upgrade() {
        let s = SimStorage::new();
        let d = dir(&s);
        let mut f = s.create(Path::new("./appendonly.aof")).unwrap();
        f.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        f.sync().unwrap();
        let m = d.upgrade_legacy(None).unwrap().unwrap();
        assert_eq!(m.to_bytes(), b"file appendonly.aof seq 1 type b\n".to_vec());
        assert!(s.exists(&d.path("appendonly.aof")));
        assert!(!s.exists(Path::new("./appendonly.aof")));
        assert_eq!(d.load_manifest().unwrap().unwrap(), m);
    }
}
