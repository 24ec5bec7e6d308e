//! Offline tools for Redis dump and append-only files.

pub mod aof_check;
pub mod rdb_dump;
