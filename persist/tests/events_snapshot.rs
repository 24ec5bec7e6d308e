//! Snapshot of the event listing for small fixtures (what an `rdb-dump`
//! style tool would print).

use redoubt_persist::rdb::{self, DecodeOptions, Element, Event};
use std::fmt::Write;

fn show(b: &[u8]) -> String {
    format!("\"{}\"", b.escape_ascii())
}

fn listing(file: &str) -> String {
    let path = format!(
        "{}/../fixtures/redis-7.0.15/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(path).unwrap();
    let mut out = String::new();
    rdb::decode_events(&bytes[..], Some(bytes.len() as u64), DecodeOptions::default(), |ev| {
        let line = match ev {
            Event::Start { version } => format!("start version={version}"),
            Event::Aux { key, value } => format!("aux {}={}", show(key), show(value)),
            Event::Function { code, pre_ga } => format!("function pre_ga={pre_ga} {}", show(code)),
            Event::SelectDb(n) => format!("select-db {n}"),
            Event::ResizeDb { db_size, expires_size } => {
                format!("resize-db keys={db_size} expires={expires_size}")
            }
            Event::SlotInfo { slot, slot_size, expires_slot_size } => {
                format!("slot-info {slot} {slot_size} {expires_slot_size}")
            }
            Event::ModuleAux { name, when, .. } => format!("module-aux {name} when={when}"),
            Event::KeyStart { key, rdb_type, encoding, expire_ms, idle, freq, len } => format!(
                "key {} type={rdb_type} encoding={encoding} len={len} expire={expire_ms:?} idle={idle:?} freq={freq:?}",
                show(key)
            ),
            Event::Element(e) => match e {
                Element::Str(s) => format!("  string {}", show(s)),
                Element::ListItem(s) => format!("  item {}", show(s)),
                Element::SetMember(s) => format!("  member {}", show(s)),
                Element::ZSetMember { member, score } => format!("  member {} score={score}", show(member)),
                Element::HashField { field, value, expire_ms } => {
                    format!("  field {}={} expire={expire_ms:?}", show(field), show(value))
                }
                Element::StreamEntry { id, fields } => {
                    let f: Vec<String> = fields.iter().map(|(k, v)| format!("{}={}", show(k), show(v))).collect();
                    format!("  entry {id} {}", f.join(" "))
                }
                Element::StreamMeta { length, last_id, first_id, max_deleted_id, entries_added, groups } => format!(
                    "  stream length={length} last={last_id} first={first_id} max-deleted={max_deleted_id} added={entries_added} groups={groups}"
                ),
                Element::StreamGroup { name, last_id, entries_read, pel_len, consumers } => format!(
                    "  group {} last={last_id} entries-read={entries_read} pel={pel_len} consumers={consumers}",
                    show(name)
                ),
                Element::StreamPending { group, id, delivery_time, delivery_count, consumer } => format!(
                    "  pending {} {id} time={delivery_time} count={delivery_count} consumer={}",
                    show(group),
                    show(consumer)
                ),
                Element::StreamConsumer { group, name, seen_time, active_time, pel_len } => format!(
                    "  consumer {} {} seen={seen_time} active={active_time} pel={pel_len}",
                    show(group),
                    show(name)
                ),
                Element::Module { name, encver, body, .. } => {
                    format!("  module {name} encver={encver} body={} bytes", body.len())
                }
            },
            Event::KeyEnd { .. } => "end-key".to_string(),
            Event::End { checksum } => format!("end checksum={checksum:?}"),
        };
        let _ = writeln!(out, "{line}");
    })
    .unwrap();
    out
}

#[test]
fn small_fixture_events() {
    insta::assert_snapshot!(listing("small.rdb"));
}

#[test]
fn lfu_fixture_events() {
    insta::assert_snapshot!(listing("lfu.rdb"));
}

#[test]
fn lru_fixture_events() {
    insta::assert_snapshot!(listing("lru.rdb"));
}
