//! The append-only file: record encoding, an incremental reader, the Redis 7
//! manifest, the multi-part directory, the loader, the writer thread, and
//! the rewrite protocol (new base + fresh incr + atomic manifest swap).

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
