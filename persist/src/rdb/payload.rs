//! DUMP / RESTORE payloads: `type byte + value + u16 LE version + CRC-64`.
//!
//! Restoring validates deeply (every nested listpack/ziplist/intset entry,
//! duplicates, counts, NaN scores, stream consistency) as Redis does with
//! `sanitize-dump-payload yes`: a payload either yields a sound value or an
//! error, never a panic.

use super::crc::crc64;
use super::decode::{read_object, Decoded};
use super::encode::{encode_value, SaveOptions};
use super::error::{ErrorKind, PayloadError, RdbError, Result};
use super::input::Input;
use super::load::{is_empty_collection, EncodingLimits};
use super::types::*;
use crate::value::Value;

/// Serializes a value as `DUMP` does for an RDB `version` (10 for 7.0).
/// Fails only when the version cannot hold the value (e.g. hash field TTLs
/// below 12).
pub fn dump_payload(v: &Value, rdb_version: u32) -> Result<Vec<u8>> {
    if !(10..=RDB_VERSION_MAX).contains(&rdb_version) {
        return Err(RdbError::encode(ErrorKind::UnsupportedVersion(rdb_version)));
    }
    let opts = SaveOptions {
        version: rdb_version,
        ..SaveOptions::default()
    };
    let mut b = Vec::with_capacity(64);
    b.push(0);
    let t = encode_value(&mut b, v, &opts)?;
    b[0] = t;
    b.extend_from_slice(&(rdb_version as u16).to_le_bytes());
    let crc = crc64(0, &b);
    b.extend_from_slice(&crc.to_le_bytes());
    Ok(b)
}

/// Decodes a `RESTORE` payload, checking version and CRC first.
pub fn restore_payload(p: &[u8]) -> Result<Value, PayloadError> {
    restore(p, true)
}

/// As [`restore_payload`] without the CRC check (Redis's
/// `DEBUG SET-SKIP-CHECKSUM-VALIDATION 1`). The value is still validated.
pub fn restore_payload_unchecked(p: &[u8]) -> Result<Value, PayloadError> {
    restore(p, false)
}

fn restore(p: &[u8], check_crc: bool) -> Result<Value, PayloadError> {
    if p.len() < 10 {
        return Err(PayloadError::VersionOrChecksum);
    }
    let footer = p.len() - 10;
    let version = u16::from_le_bytes([p[footer], p[footer + 1]]);
    if u32::from(version) > RDB_VERSION_MAX {
        return Err(PayloadError::VersionOrChecksum);
    }
    if check_crc {
        let mut stored = [0u8; 8];
        stored.copy_from_slice(&p[footer + 2..]);
        if crc64(0, &p[..footer + 2]) != u64::from_le_bytes(stored) {
            return Err(PayloadError::VersionOrChecksum);
        }
    }
    let body = &p[..footer];
    let bad = |kind| PayloadError::BadData(RdbError::new(0, kind));
    let (&t, rest) = body
        .split_first()
        .ok_or_else(|| bad(ErrorKind::Truncated("a type byte")))?;
    if !is_object_type(t) {
        return Err(bad(ErrorKind::UnknownType(t)));
    }
    let mut inp = Input::new(rest, Some(rest.len() as u64));
    let decoded = read_object(&mut inp, u32::from(version), t).map_err(PayloadError::BadData)?;
    let mut v = match decoded {
        Decoded::Value(v) => v,
        Decoded::Module(m) => return Err(bad(ErrorKind::ModuleValue(m.name))),
    };
    if is_empty_collection(&v) {
        return Err(bad(ErrorKind::EmptyKey));
    }
    EncodingLimits::default().apply(&mut v);
    Ok(v)
}
