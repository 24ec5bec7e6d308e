//! Redoubt's persistence engine: the value model, the keyspace, and (as they
//! land) the RDB codec, the append-only file, the snapshotter and the
//! `Storage` abstraction that all file I/O goes through.

pub mod aof;
pub mod chunklist;
pub mod cow;
pub mod cpus;
pub mod entry;
pub mod hashfields;
pub mod keyspace;
pub mod planted;
pub(crate) mod prefetch;
pub mod rdb;
pub mod sharded;
pub mod snapshot;
pub mod storage;
pub mod stream_entries;
pub mod stream_nodes;
pub mod value;
pub mod zset;

pub use keyspace::{Db, Entry, Keyspace};
pub use value::{Value, ValueType};
