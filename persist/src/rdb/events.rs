//! A flat event API for tools (dumpers, checkers, converters): the decoder's
//! items exploded into per-element events, in file order.

use super::decode::{ChecksumStatus, DecodeOptions, Decoded, Decoder, Item};
use super::error::Result;
use super::types::type_encoding_name;
use crate::value::{StreamId, Value};
use bytes::Bytes;
use std::io::Read;

/// One element of a key's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Element<'a> {
    /// A string value.
    Str(&'a [u8]),
    ListItem(&'a [u8]),
    SetMember(&'a [u8]),
    ZSetMember {
        member: &'a [u8],
        score: f64,
    },
    HashField {
        field: &'a [u8],
        value: &'a [u8],
        /// Per-field absolute expiry (7.4 hash field expiration).
        expire_ms: Option<u64>,
    },
    StreamEntry {
        id: StreamId,
        fields: &'a [(Bytes, Bytes)],
    },
    StreamMeta {
        length: usize,
        last_id: StreamId,
        first_id: StreamId,
        max_deleted_id: StreamId,
        entries_added: u64,
        groups: usize,
    },
    StreamGroup {
        name: &'a [u8],
        last_id: StreamId,
        entries_read: i64,
        pel_len: usize,
        consumers: usize,
    },
    StreamPending {
        group: &'a [u8],
        id: StreamId,
        delivery_time: u64,
        delivery_count: u64,
        consumer: &'a [u8],
    },
    StreamConsumer {
        group: &'a [u8],
        name: &'a [u8],
        seen_time: u64,
        active_time: u64,
        pel_len: usize,
    },
    /// A module value, kept opaque.
    Module {
        module_id: u64,
        name: &'a str,
        encver: u32,
        body: &'a [u8],
    },
}

/// One decoding event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    Start {
        version: u32,
    },
    Aux {
        key: &'a [u8],
        value: &'a [u8],
    },
    Function {
        code: &'a [u8],
        pre_ga: bool,
    },
    SelectDb(u64),
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    SlotInfo {
        slot: u64,
        slot_size: u64,
        expires_slot_size: u64,
    },
    ModuleAux {
        module_id: u64,
        name: &'a str,
        when: u64,
        body: &'a [u8],
    },
    KeyStart {
        key: &'a [u8],
        rdb_type: u8,
        /// The on-disk encoding (`listpack`, `ziplist`, `intset`, ...).
        encoding: &'static str,
        expire_ms: Option<i64>,
        idle: Option<u64>,
        freq: Option<u8>,
        /// Number of elements (entries for streams, 1 for strings).
        len: usize,
    },
    Element(Element<'a>),
    KeyEnd {
        key: &'a [u8],
    },
    End {
        checksum: ChecksumStatus,
    },
}

/// Decodes an RDB stream, calling `f` for every event. Stops at the first
/// error (events already delivered stay valid).
pub fn decode_events<R: Read>(
    r: R,
    total_len: Option<u64>,
    opts: DecodeOptions,
    mut f: impl FnMut(&Event<'_>),
) -> Result<()> {
    let mut dec = Decoder::new(r, total_len, opts)?;
    f(&Event::Start {
        version: dec.version(),
    });
    while let Some(item) = dec.next_item()? {
        match &item {
            Item::Aux { key, value } => f(&Event::Aux { key, value }),
            Item::SelectDb(n) => f(&Event::SelectDb(*n)),
            Item::ResizeDb {
                db_size,
                expires_size,
            } => f(&Event::ResizeDb {
                db_size: *db_size,
                expires_size: *expires_size,
            }),
            Item::SlotInfo {
                slot,
                slot_size,
                expires_slot_size,
            } => f(&Event::SlotInfo {
                slot: *slot,
                slot_size: *slot_size,
                expires_slot_size: *expires_slot_size,
            }),
            Item::Function { code, pre_ga } => f(&Event::Function {
                code,
                pre_ga: *pre_ga,
            }),
            Item::ModuleAux {
                module_id,
                name,
                when,
                body,
            } => f(&Event::ModuleAux {
                module_id: *module_id,
                name,
                when: *when,
                body,
            }),
            Item::End(s) => f(&Event::End { checksum: *s }),
            Item::Entry(rec) => {
                let len = match &rec.value {
                    Decoded::Module(_) => 1,
                    Decoded::Value(v) => value_len(v),
                };
                f(&Event::KeyStart {
                    key: &rec.key,
                    rdb_type: rec.rdb_type,
                    encoding: type_encoding_name(rec.rdb_type),
                    expire_ms: rec.expire_ms,
                    idle: rec.idle,
                    freq: rec.freq,
                    len,
                });
                match &rec.value {
                    Decoded::Module(m) => f(&Event::Element(Element::Module {
                        module_id: m.module_id,
                        name: &m.name,
                        encver: m.encver,
                        body: &m.body,
                    })),
                    Decoded::Value(v) => value_elements(v, &mut f),
                }
                f(&Event::KeyEnd { key: &rec.key });
            }
        }
    }
    Ok(())
}

fn value_len(v: &Value) -> usize {
    match v {
        Value::Str(_) => 1,
        Value::List(l) => l.items.len(),
        Value::Hash(h) => h.map.len(),
        Value::Set(s) => s.members.len(),
        Value::ZSet(z) => z.len(),
        Value::Stream(s) => s.len(),
    }
}

/// Emits the elements of a value. Set members are sorted so listings are
/// deterministic (the in-memory set has no order).
pub fn value_elements(v: &Value, f: &mut impl FnMut(&Event<'_>)) {
    match v {
        Value::Str(s) => f(&Event::Element(Element::Str(s))),
        Value::List(l) => {
            for i in &l.items {
                f(&Event::Element(Element::ListItem(i)));
            }
        }
        Value::Set(s) => {
            let mut m: Vec<&Bytes> = s.members.iter().collect();
            m.sort();
            for i in m {
                f(&Event::Element(Element::SetMember(i)));
            }
        }
        Value::ZSet(z) => {
            for e in z.iter() {
                f(&Event::Element(Element::ZSetMember {
                    member: &e.member,
                    score: e.score,
                }));
            }
        }
        Value::Hash(h) => {
            for (k, val) in &h.map {
                let expire_ms = h.field_expiry.as_ref().and_then(|t| t.get(k).copied());
                f(&Event::Element(Element::HashField {
                    field: k,
                    value: val,
                    expire_ms,
                }));
            }
        }
        Value::Stream(s) => {
            for e in s.entries.iter() {
                let fields = e.to_vec();
                f(&Event::Element(Element::StreamEntry {
                    id: e.id,
                    fields: &fields,
                }));
            }
            f(&Event::Element(Element::StreamMeta {
                length: s.len(),
                last_id: s.last_id,
                first_id: s.first_id,
                max_deleted_id: s.max_deleted_id,
                entries_added: s.entries_added,
                groups: s.groups.len(),
            }));
            for (name, g) in &s.groups {
                f(&Event::Element(Element::StreamGroup {
                    name,
                    last_id: g.last_id,
                    entries_read: g.entries_read,
                    pel_len: g.pel.len(),
                    consumers: g.consumers.len(),
                }));
                for (id, pe) in &g.pel {
                    f(&Event::Element(Element::StreamPending {
                        group: name,
                        id: *id,
                        delivery_time: pe.delivery_time,
                        delivery_count: pe.delivery_count,
                        consumer: &pe.consumer,
                    }));
                }
                for (cname, c) in &g.consumers {
                    f(&Event::Element(Element::StreamConsumer {
                        group: name,
                        name: cname,
                        seen_time: c.seen_time,
                        active_time: c.active_time,
                        pel_len: c.pel.len(),
                    }));
                }
            }
        }
    }
}
