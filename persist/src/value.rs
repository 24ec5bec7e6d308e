//! The value model: one variant per Redis type.
//!
//! Values own their bytes (`Bytes` built from exact-size copies, never slices of
//! a socket buffer, so a stored value never pins a read buffer). Collections are
//! boxed so that a string key, by far the most common, costs only the string.
//!
//! Each collection remembers whether it has been promoted to its "big"
//! encoding, because Redis 7.0 never converts back on its own: `OBJECT
//! ENCODING` and the RDB writer both follow that flag.

use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub use crate::chunklist::ChunkList;
pub use crate::hashfields::HashFields;
pub use crate::sharded::ShardedSet;
pub use crate::zset::ZSet;

/// The Redis type of a value, as `TYPE` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    String,
    List,
    Hash,
    Set,
    ZSet,
    Stream,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::List => "list",
            ValueType::Hash => "hash",
            ValueType::Set => "set",
            ValueType::ZSet => "zset",
            ValueType::Stream => "stream",
        }
    }

    /// Parses a `TYPE` name (as `SCAN ... TYPE` takes it), case-insensitively.
    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        let t = match name.to_ascii_lowercase().as_slice() {
            b"string" => ValueType::String,
            b"list" => ValueType::List,
            b"hash" => ValueType::Hash,
            b"set" => ValueType::Set,
            b"zset" => ValueType::ZSet,
            b"stream" => ValueType::Stream,
            _ => return None,
        };
        Some(t)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(Bytes),
    List(Box<ListValue>),
    Hash(Box<HashValue>),
    Set(Box<SetValue>),
    ZSet(Box<ZSet>),
    Stream(Box<Stream>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::Str(_) => ValueType::String,
            Value::List(_) => ValueType::List,
            Value::Hash(_) => ValueType::Hash,
            Value::Set(_) => ValueType::Set,
            Value::ZSet(_) => ValueType::ZSet,
            Value::Stream(_) => ValueType::Stream,
        }
    }

    /// A string value from a borrowed slice (always an exact-size copy).
    pub fn str_from(b: &[u8]) -> Value {
        Value::Str(Bytes::copy_from_slice(b))
    }

    /// Drops the value a chunk at a time, calling `between` after each, when
    /// it is made of chunks shared copy-on-write (see
    /// [`crate::cow::drop_chunks`]); at once otherwise.
    pub fn drop_by_chunk(self, between: &mut dyn FnMut()) {
        match self {
            Value::List(l) => l.items.drop_by_chunk(between),
            Value::Set(s) => s.members.drop_by_chunk(between),
            Value::ZSet(z) => z.drop_by_chunk(between),
            Value::Hash(h) => {
                if let HashFields::Table(m) = h.map {
                    m.drop_by_chunk(between)
                }
            }
            Value::Str(_) | Value::Stream(_) => {}
        }
    }
}

/// Lists: a deque of elements in nodes shared copy-on-write (see
/// [`ChunkList`]). Redis 7.0 reports every list as `quicklist`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListValue {
    pub items: ChunkList<Bytes>,
}

/// Hashes keep insertion order while small, as a listpack does, so replies
/// match Redis element for element; big ones are shared copy-on-write by
/// shard (see [`HashFields`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HashValue {
    /// The fields; the variant is the encoding (`hashtable` once promoted,
    /// never demoted while the key lives).
    pub map: HashFields,
    /// Per-field absolute expiry in ms (Redis 7.4 hash-field expiry, kept so
    /// such dumps load and convert; the 7.0 command set never sets it).
    pub field_expiry: Option<Box<HashMap<Bytes, u64>>>,
}

impl HashValue {
    /// True in the `hashtable` encoding.
    pub fn is_hashtable(&self) -> bool {
        self.map.is_table()
    }

    /// Moves to the `hashtable` encoding (no-op if already there).
    pub fn promote(&mut self) {
        self.map.promote();
    }

    /// Sets `field` to a copy of `value`; true when the field is new.
    pub fn set_field(&mut self, field: &[u8], value: &[u8]) -> bool {
        self.map.set_field(field, value)
    }
}

/// Sets: `intset` while every member is an integer and the set is small,
/// `hashtable` after that.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetValue {
    /// Shared copy-on-write by shard (see [`ShardedSet`]).
    pub members: ShardedSet<Bytes>,
    /// Promoted to `hashtable` (never demoted while the key lives).
    pub hashtable: bool,
}

/// A stream entry id, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Everything an RDB stream holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    /// Entries in id order, packed (see [`crate::stream_entries`]).
    pub entries: crate::stream_entries::StreamEntries,
    pub last_id: StreamId,
    /// First id still in the stream (0-0 when empty), as RDB v10+ records it.
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    /// Count of entries ever added (RDB v10+; derived from length for older files).
    pub entries_added: u64,
    /// Consumer groups by name (Redis keeps them in a radix tree, so name order).
    pub groups: BTreeMap<Bytes, ConsumerGroup>,
    /// How Redis would have packed the entries into radix-tree nodes (for
    /// approximate trimming and XINFO). Derived data: rebuilt from
    /// `entries` when it does not match them, and ignored by `==`.
    pub nodes: crate::stream_nodes::StreamNodes,
}

impl Stream {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `entries_read` value meaning "not known" (Redis's SCG_INVALID_ENTRIES_READ).
pub const ENTRIES_READ_UNKNOWN: i64 = -1;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConsumerGroup {
    pub last_id: StreamId,
    pub entries_read: i64,
    /// The group's pending entries list.
    pub pel: BTreeMap<StreamId, PendingEntry>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    /// Unix time in ms of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
    /// Name of the consumer owning the entry.
    pub consumer: Bytes,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consumer {
    /// Unix ms of the last interaction of any kind.
    pub seen_time: u64,
    /// Unix ms of the last successful read or claim (RDB v11+; older files: seen_time).
    pub active_time: u64,
    /// Ids this consumer owns in the group's PEL.
    pub pel: BTreeSet<StreamId>,
}

/// The hasher used by every map in the value model: fast, and seeded per
/// process so that hostile keys cannot be aimed at one bucket.
pub mod foldhash_state {
    pub type State = hashbrown::DefaultHashBuilder;
}
