//! The append-only file: record encoding, an incremental reader, the Redis 7
//! manifest, the multi-part directory, the loader, the writer thread, and
//! the rewrite protocol (new base + fresh incr + atomic manifest swap).
//!
//! Plug-in points (so the RDB codec and the snapshot walker attach without
//! this module knowing them):
//! - [`loader::RdbLoader`]: `FnMut(&mut dyn Read, file_name) -> Result<(), String>`,
//!   called for any file that starts with `REDIS`; it must consume exactly
//!   the RDB image (through its checksum), the rest is read as RESP.
//! - the base writer of [`rewrite::rewrite`] / [`rewrite::write_temp_base`]:
//!   `FnMut(&mut dyn Write) -> io::Result<()>` writing the dataset as of the
//!   writer switch (RDB image or RESP). [`rewrite::write_keyspace_resp`] is
//!   the synchronous stepping stone until the fork-free walker lands.
//!
//! Durability rules (DESIGN.md): every file write goes through
//! [`crate::storage::Storage`]; a new name (incr, base, manifest) is made
//! durable by an fsync of the AOF directory before anything that depends on
//! it; the manifest is replaced by temp + fsync + rename + dir fsync.

pub mod dir;
pub mod loader;
pub mod manifest;
pub mod reader;
pub mod record;
pub mod rewrite;
pub mod writer;

pub use dir::{AofDir, DirError};
pub use loader::{load_dir, load_file, LoadError, LoadOptions, LoadReport, RdbLoader, Replay};
pub use manifest::{AofInfo, FileType, Manifest, ManifestError};
pub use reader::{AofReader, FormatError, Item, ProblemKind, ReadError, Record, Unit};
pub use record::{encode_command, RecordEncoder};
pub use writer::{
    Clock, FsyncMode, ManualClock, Msg, Policy, SystemClock, WriterCore, WriterHandle, WriterParts,
    WriterStats,
};
