//! All file I/O of the engine goes through [`Storage`], so the same code runs
//! on the real file system ([`FileStorage`]) and on a simulated disk
//! ([`SimStorage`]) that loses what was not made durable when it "crashes".
//!
//! The durability rules modelled are those of POSIX file systems as crash
//! testing tools (ALICE, LazyFS) model them: file data is durable only after
//! an fsync of the file; a create, rename or remove is durable only after an
//! fsync of the directory that holds the name.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[cfg(target_os = "linux")]
mod direct;

/// A file open for writing (appending at the end).
pub trait StorageFile: Write + Send {
    /// Makes every byte written so far durable (fsync).
    fn sync(&mut self) -> io::Result<()>;

    /// Starts writing `len` bytes from `offset` to the disk without
    /// waiting for them, so that a later [`StorageFile::sync`] finds little
    /// left to do. Makes nothing durable; where it cannot be done it does
    /// nothing.
    fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
}

pub trait Storage: Send + Sync {
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// As [`Storage::create`], for a file written once from front to back
    /// in large pieces and synced at the end, whose bytes are not read
    /// back meanwhile (a snapshot). The real file system writes it past
    /// the page cache where it can (see the `direct` module).
    fn create_bulk(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.create(path)
    }
    /// Opens an existing file (or creates it) to append to it.
    fn append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>>;
    /// Opens a file for reading.
    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>>;
    /// Atomically replaces `to` with `from` (durable after `fsync_dir`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creates, renames, removes) durable.
    fn fsync_dir(&self, dir: &Path) -> io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names (not paths) of the entries of a directory, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    fn len(&self, path: &Path) -> io::Result<u64>;
    /// Cuts a file to `len` bytes (durable after a sync of the file).
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;

    /// Reads a whole file.
    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open(path)?.read_to_end(&mut out)?;
        Ok(out)
    }
}

/// The parent directory of a path ("." for a bare name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

// ---- the real file system -----------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
pub struct FileStorage;

struct RealFile(fs::File);

impl Write for RealFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl StorageFile for RealFile {
    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
        start_writeback(&self.0, offset, len)
    }
}

/// [`StorageFile::start_writeback`] of a real file.
#[cfg(target_os = "linux")]
fn start_writeback(file: &fs::File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: a plain syscall on a file descriptor the caller owns.
    let r = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Files at least this big are closed on a background thread after their
/// unlink (see [`FileStorage`]'s `remove`).
const BACKGROUND_UNLINK_MIN: u64 = 64 << 20;

impl Storage for FileStorage {
    #[cfg(target_os = "linux")]
    fn create_bulk(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        direct::create(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        // Append mode, as the simulated disk behaves: every write lands at
        // the end of the file, so after a short write is cut off with
        // `truncate` the next write continues where the file now ends
        // instead of at the old offset (which would leave a hole of zeros
        // in the middle of an AOF).
        // (std refuses `append` with `truncate`, hence the raw flag.)
        use std::os::unix::fs::OpenOptionsExt;
        let f = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .custom_flags(libc::O_APPEND)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Box::new(RealFile(f)))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(fs::File::open(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        // Unlinking a big file frees its blocks inside the call, which takes
        // long for gigabytes (an AOF history file) and would stall the
        // executor. Unlinked while open, the blocks are freed when the last
        // descriptor closes: that close goes to a thread of its own.
        let held = match fs::metadata(path) {
            Ok(m) if m.len() >= BACKGROUND_UNLINK_MIN => fs::File::open(path).ok(),
            _ => None,
        };
        fs::remove_file(path)?;
        if let Some(f) = held {
            // If no thread can be made, the file closes here instead.
            let _ = std::thread::Builder::new()
                .name("unlink".into())
                .spawn(move || drop(f));
        }
        Ok(())
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        fs::File::open(dir)?.sync_all()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        fs::OpenOptions::new().write(true).open(path)?.set_len(len)
    }
}

// ---- the simulated disk ---------------------------------------------------

/// Which operation a fault is injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Write,
    Sync,
    Rename,
    Remove,
    FsyncDir,
    Other,
}

/// A fault to inject at the n-th operation (counted over all operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with "No space left on device".
    NoSpace,
    /// The operation fails with an I/O error.
    Io,
    /// A write stores only half of its bytes and reports that.
    ShortWrite,
}

#[derive(Debug, Clone, Default)]
struct Inode {
    /// What a reader sees now.
    data: Vec<u8>,
    /// What survives a crash for sure (differs from a prefix of `data`
    /// only after a truncate and rewrite).
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct SimState {
    inodes: Vec<Inode>,
    /// Directory -> (name -> inode), as a reader sees it now.
    dirs: BTreeMap<PathBuf, BTreeMap<String, usize>>,
    /// The same, as it survives a crash.
    durable_dirs: BTreeMap<PathBuf, BTreeMap<String, usize>>,
    ops: u64,
    faults: HashMap<u64, Fault>,
    /// Every operation from this index on fails (a process that stopped).
    fail_from: Option<(u64, Fault)>,
    /// Every operation with its kind, for reproducing failures.
    log: Vec<(u64, Op, String)>,
}

/// An in-memory disk. Cloning shares the same disk.
#[derive(Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<SimState>>,
}

fn split(path: &Path) -> (PathBuf, String) {
    (
        parent_dir(path),
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

fn err(fault: Fault) -> io::Error {
    match fault {
        Fault::NoSpace => io::Error::from_raw_os_error(28),
        _ => io::Error::from_raw_os_error(5),
    }
}

impl SimStorage {
    pub fn new() -> SimStorage {
        let s = SimStorage::default();
        {
            let mut st = s.lock();
            st.dirs.insert(PathBuf::from("."), BTreeMap::new());
            st.durable_dirs.insert(PathBuf::from("."), BTreeMap::new());
        }
        s
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        // A panic while holding the lock cannot leave the disk model
        // half-updated in a way later readers rely on; recover the guard.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the n-th operation from now (0 = the next one) fail with `fault`.
    pub fn inject(&self, nth_from_now: u64, fault: Fault) {
        let mut st = self.lock();
        let at = st.ops + nth_from_now;
        st.faults.insert(at, fault);
    }

    /// Makes every operation from the n-th from now on fail with `fault`:
    /// the disk freezes as a process that stopped at that instant left it
    /// (crash tests). `crash` and `kill` lift it.
    pub fn fail_from(&self, nth_from_now: u64, fault: Fault) {
        let mut st = self.lock();
        let at = st.ops + nth_from_now;
        st.fail_from = Some((at, fault));
    }

    /// Number of operations performed so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The operation log (index, kind, path).
    pub fn op_log(&self) -> Vec<(u64, Op, String)> {
        self.lock().log.clone()
    }

    /// Simulates power loss: every file keeps its durable content plus,
    /// chosen by `seed`, a prefix of its unsynced bytes cut at a 512-byte
    /// sector boundary (or a torn sector); every directory keeps its durable
    /// entries plus, chosen by `seed`, some of its undurable changes.
    pub fn crash(&self, seed: u64) {
        let mut rng = SplitMix(seed);
        let mut st = self.lock();
        for ino in st.inodes.iter_mut() {
            let mut kept = ino.durable.clone();
            if ino.data.len() > kept.len() && ino.data.starts_with(&kept) {
                let extra = ino.data.len() - kept.len();
                let choice = rng.next() % 4;
                let keep = match choice {
                    0 => 0,
                    1 => extra,
                    2 => (rng.next() as usize % (extra + 1)) / 512 * 512,
                    // A torn write: any byte count, not sector aligned.
                    _ => rng.next() as usize % (extra + 1),
                };
                kept.extend_from_slice(&ino.data[ino.durable.len()..ino.durable.len() + keep]);
            }
            ino.data = kept.clone();
            ino.durable = kept;
        }
        let dirs: Vec<PathBuf> = st.dirs.keys().cloned().collect();
        for d in dirs {
            let now = st.dirs.get(&d).cloned().unwrap_or_default();
            let mut durable = st.durable_dirs.get(&d).cloned().unwrap_or_default();
            // Each undurable difference survives with probability 1/2.
            let names: Vec<String> = now.keys().chain(durable.keys()).cloned().collect();
            for name in names {
                let a = now.get(&name).copied();
                let b = durable.get(&name).copied();
                if a != b && rng.next().is_multiple_of(2) {
                    match a {
                        Some(ino) => {
                            durable.insert(name, ino);
                        }
                        None => {
                            durable.remove(&name);
                        }
                    }
                }
            }
            st.dirs.insert(d.clone(), durable.clone());
            st.durable_dirs.insert(d, durable);
        }
        st.faults.clear();
        st.fail_from = None;
    }

    /// Simulates a process kill (not power loss): nothing is lost, since
    /// the OS keeps what was written. Pending faults are dropped.
    pub fn kill(&self) {
        let mut st = self.lock();
        st.faults.clear();
        st.fail_from = None;
    }

    /// Counts an operation and returns the fault injected into it, if any.
    fn step(st: &mut SimState, op: Op, path: &Path) -> Option<Fault> {
        let n = st.ops;
        st.ops += 1;
        st.log.push((n, op, path.display().to_string()));
        match st.fail_from {
            Some((at, f)) if n >= at => Some(f),
            _ => st.faults.remove(&n),
        }
    }

    fn lookup(st: &SimState, path: &Path) -> Option<usize> {
        let (dir, name) = split(path);
        st.dirs.get(&dir)?.get(&name).copied()
    }

    fn no_entry(path: &Path) -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such file", path.display()),
        )
    }
}

struct SimFile {
    disk: SimStorage,
    ino: usize,
    path: PathBuf,
}

impl Write for SimFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.disk.lock();
        let n = match SimStorage::step(&mut st, Op::Write, &self.path) {
            Some(Fault::ShortWrite) => buf.len().div_ceil(2),
            Some(f) => return Err(err(f)),
            None => buf.len(),
        };
        st.inodes[self.ino].data.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl StorageFile for SimFile {
    fn sync(&mut self) -> io::Result<()> {
        let mut st = self.disk.lock();
        if let Some(f) = SimStorage::step(&mut st, Op::Sync, &self.path) {
            return Err(err(f));
        }
        let ino = &mut st.inodes[self.ino];
        ino.durable = ino.data.clone();
        Ok(())
    }
}

impl Storage for SimStorage {
    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let mut st = self.lock();
        if let Some(f) = Self::step(&mut st, Op::Create, path) {
            return Err(err(f));
        }
        let (dir, name) = split(path);
        if !st.dirs.contains_key(&dir) {
            return Err(Self::no_entry(&dir));
        }
        // A new inode: the old file (if any) stays intact for whoever holds
        // it durably until the directory entry change is made durable.
        st.inodes.push(Inode::default());
        let ino = st.inodes.len() - 1;
        st.dirs.entry(dir).or_default().insert(name, ino);
        drop(st);
        Ok(Box::new(SimFile {
            disk: self.clone(),
            ino,
            path: path.to_path_buf(),
        }))
    }

    fn append(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        let existing = Self::lookup(&self.lock(), path);
        match existing {
            Some(ino) => Ok(Box::new(SimFile {
                disk: self.clone(),
                ino,
                path: path.to_path_buf(),
            })),
            None => self.create(path),
        }
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let st = self.lock();
        let ino = Self::lookup(&st, path).ok_or_else(|| Self::no_entry(path))?;
        Ok(Box::new(io::Cursor::new(st.inodes[ino].data.clone())))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = Self::step(&mut st, Op::Rename, to) {
            return Err(err(f));
        }
        let (fdir, fname) = split(from);
        let (tdir, tname) = split(to);
        let ino = st
            .dirs
            .get_mut(&fdir)
            .and_then(|d| d.remove(&fname))
            .ok_or_else(|| Self::no_entry(from))?;
        st.dirs.entry(tdir).or_default().insert(tname, ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = Self::step(&mut st, Op::Remove, path) {
            return Err(err(f));
        }
        let (dir, name) = split(path);
        st.dirs
            .get_mut(&dir)
            .and_then(|d| d.remove(&name))
            .map(|_| ())
            .ok_or_else(|| Self::no_entry(path))
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = Self::step(&mut st, Op::FsyncDir, dir) {
            return Err(err(f));
        }
        let entries = st
            .dirs
            .get(dir)
            .cloned()
            .ok_or_else(|| Self::no_entry(dir))?;
        st.durable_dirs.insert(dir.to_path_buf(), entries);
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = Self::step(&mut st, Op::Other, dir) {
            return Err(err(f));
        }
        // Directories themselves are modelled as always durable: the engine
        // creates them once, before any data goes in.
        st.dirs.entry(dir.to_path_buf()).or_default();
        st.durable_dirs.entry(dir.to_path_buf()).or_default();
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        let d = st.dirs.get(dir).ok_or_else(|| Self::no_entry(dir))?;
        Ok(d.keys().cloned().collect())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.lock();
        Self::lookup(&st, path).is_some() || st.dirs.contains_key(path)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        let st = self.lock();
        let ino = Self::lookup(&st, path).ok_or_else(|| Self::no_entry(path))?;
        Ok(st.inodes[ino].data.len() as u64)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.lock();
        if let Some(f) = Self::step(&mut st, Op::Write, path) {
            return Err(err(f));
        }
        let ino = Self::lookup(&st, path).ok_or_else(|| Self::no_entry(path))?;
        let inode = &mut st.inodes[ino];
        inode.data.truncate(len as usize);
        Ok(())
    }
}

/// A tiny deterministic generator for crash choices (no dependency needed).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_file(s: &SimStorage, p: &str, data: &[u8], sync: bool) {
        let mut f = s.create(Path::new(p)).unwrap();
        f.write_all(data).unwrap();
        if sync {
            f.sync().unwrap();
        }
    }

    /// Starting the write-back of written bytes succeeds on a real file,
    /// leaves its contents alone, and the fsync after it still works.
    #[test]
    fn write_back_of_a_real_file_starts() {
        let dir = std::env::temp_dir().join(format!("redoubt-wb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        let data = vec![5u8; 3 << 20];
        let mut f = FileStorage.create(&p).unwrap();
        f.write_all(&data).unwrap();
        f.start_writeback(0, 1 << 20).unwrap();
        f.start_writeback(1 << 20, 2 << 20).unwrap();
        f.sync().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), data);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A big file goes through the background close: its name must be gone
    /// when `remove` returns, and a missing file is still an error.
    #[test]
    fn removing_a_big_file_unlinks_it_at_once() {
        let dir = std::env::temp_dir().join(format!("redoubt-unlink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("big");
        // Sparse: the size counts, not the blocks.
        std::fs::File::create(&p)
            .unwrap()
            .set_len(BACKGROUND_UNLINK_MIN)
            .unwrap();
        FileStorage.remove(&p).unwrap();
        assert!(!p.exists());
        assert!(FileStorage.remove(&p).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// After a short write is cut off, the next write must continue at the
    /// new end of the file (a created file writes in append mode), as on
    /// the simulated disk: otherwise the AOF gets a hole of zeros.
    #[test]
    fn created_file_writes_at_the_end_after_truncate() {
        let dir = std::env::temp_dir().join(format!("redoubt-storage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f");
        for s in [&FileStorage as &dyn Storage, &SimStorage::new()] {
            s.create_dir_all(&dir).unwrap();
            let mut f = s.create(&p).unwrap();
            f.write_all(b"good;half-writ").unwrap();
            s.truncate(&p, 5).unwrap();
            f.write_all(b"next;").unwrap();
            f.sync().unwrap();
            assert_eq!(s.read_all(&p).unwrap(), b"good;next;");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unsynced_create_may_vanish_synced_survives() {
        let mut lost = 0;
        for seed in 0..32 {
            let s = SimStorage::new();
            write_file(&s, "a", b"hello", true);
            s.fsync_dir(Path::new(".")).unwrap();
            write_file(&s, "b", b"world", true);
            s.crash(seed);
            assert_eq!(s.read_all(Path::new("a")).unwrap(), b"hello");
            if !s.exists(Path::new("b")) {
                lost += 1;
            }
        }
        assert!(lost > 0 && lost < 32, "lost {lost} of 32");
    }

    #[test]
    fn unsynced_data_is_a_prefix_after_crash() {
        for seed in 0..64 {
            let s = SimStorage::new();
            let mut f = s.create(Path::new("log")).unwrap();
            f.write_all(b"durable|").unwrap();
            f.sync().unwrap();
            s.fsync_dir(Path::new(".")).unwrap();
            f.write_all(&[7u8; 2000]).unwrap();
            s.crash(seed);
            let data = s.read_all(Path::new("log")).unwrap();
            assert!(data.starts_with(b"durable|"));
            assert!(data.len() <= 8 + 2000);
            assert!(data[8..].iter().all(|&b| b == 7));
        }
    }

    #[test]
    fn rename_without_dir_fsync_can_be_undone() {
        let mut undone = 0;
        for seed in 0..32 {
            let s = SimStorage::new();
            write_file(&s, "dump.rdb", b"old", true);
            s.fsync_dir(Path::new(".")).unwrap();
            write_file(&s, "temp.rdb", b"new", true);
            s.rename(Path::new("temp.rdb"), Path::new("dump.rdb"))
                .unwrap();
            s.crash(seed);
            let d = s.read_all(Path::new("dump.rdb")).unwrap();
            assert!(d == b"old" || d == b"new");
            if d == b"old" {
                undone += 1;
            }
        }
        assert!(undone > 0);
    }

    #[test]
    fn injected_faults_fire_once() {
        let s = SimStorage::new();
        s.inject(1, Fault::NoSpace);
        let mut f = s.create(Path::new("x")).unwrap();
        let e = f.write_all(b"abc").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(28));
        f.write_all(b"abc").unwrap();
        s.inject(0, Fault::ShortWrite);
        assert_eq!(f.write(b"abcd").unwrap(), 2);
    }
}
