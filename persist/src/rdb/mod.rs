//! The RDB codec: Redis's snapshot format, versions 1 to 12 (see
//! `shared/spec/RDB.md`).
//!
//! - [`decode::Decoder`] streams items (aux fields, db switches, whole keys)
//!   out of any `Read`; [`events::decode_events`] flattens them into
//!   per-element events for tools; [`load::load_keyspace`] fills a
//!   [`Keyspace`](crate::Keyspace) the way Redis 7.0 loads a dump.
//! - [`encode::RdbWriter`] writes entries one by one (for the snapshotter);
//!   [`encode::write_keyspace`] writes a whole keyspace.
//! - [`payload`] is DUMP / RESTORE.

pub mod blobs;
pub mod crc;
pub mod decode;
pub mod encode;
pub mod error;
pub mod events;
mod input;
pub mod load;
pub mod lzf;
pub mod payload;
#[cfg(test)]
mod tests;
mod types;

pub use decode::{ChecksumStatus, DecodeOptions, Decoded, Decoder, EntryRecord, Item, ModuleValue};
pub use encode::{write_keyspace, RdbWriter, SaveOptions};
pub use error::{ErrorKind, PayloadError, RdbError};
pub use events::{decode_events, Element, Event};
pub use load::{load_file, load_keyspace, EncodingLimits, LoadOptions, LoadStats};
pub use payload::{dump_payload, restore_payload, restore_payload_unchecked};
pub use types::*;
