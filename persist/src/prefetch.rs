//! Software prefetch: asking the CPU for lines that will be read soon.
//!
//! A walk over a big keyspace misses the caches on every key (its entry
//! and its value are separate allocations), and a loop that handles one
//! key at a time waits for each miss in turn. Asking for the lines of keys
//! a few positions ahead lets those misses overlap with the work on the
//! current one. A hint only: it never faults and changes nothing.

use crate::entry::Entry;
use crate::Value;

/// Most bytes of a string value asked for: enough for a typical small
/// value, not so many that a big one evicts what the walk still needs.
const VALUE_BYTES: usize = 512;

/// Asks for the cache line holding `p`.
#[inline]
pub fn line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it never faults, whatever the
    // address, and reads nothing the program can observe.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks for the first lines of `bytes`, up to `max` bytes.
#[inline]
pub fn bytes(bytes: &[u8], max: usize) {
    let p = bytes.as_ptr();
    for off in (0..bytes.len().min(max)).step_by(64) {
        line(p.wrapping_add(off));
    }
}

/// Asks for an entry's header and key.
#[inline]
pub fn entry(e: &Entry) {
    line((e as *const Entry).cast::<u8>());
    line(e.key().as_ptr());
}

/// Asks for a string value's bytes (the entry itself should be in cache
/// already: this reads its value's pointer). Other types are left alone:
/// a collection is walked chunk by chunk by whoever encodes it.
#[inline]
pub fn value(e: &Entry) {
    if let Value::Str(b) = &e.value {
        bytes(b, VALUE_BYTES);
    }
}

/// Yields `entries` in order, asking for the entry [`ENTRY_AHEAD`]
/// positions ahead and for the value of the one [`VALUE_AHEAD`] ahead (by
/// then its entry has arrived, so reading the value's pointer does not
/// wait).
pub fn ahead<'a>(entries: &'a [&'a Entry]) -> impl Iterator<Item = &'a Entry> + 'a {
    entries.iter().enumerate().map(move |(i, e)| {
        if let Some(next) = entries.get(i + ENTRY_AHEAD) {
            entry(next);
        }
        if let Some(next) = entries.get(i + VALUE_AHEAD) {
            value(next);
        }
        *e
    })
}

/// How far ahead [`ahead`] asks for entries: far enough to cover a miss
/// with the work on a few keys, near enough that the lines are still
/// cached when used (32 measured the same as 16).
pub const ENTRY_AHEAD: usize = 16;
/// How far ahead [`ahead`] asks for string values: half as far as for
/// entries, so that the entry holding the value's pointer has arrived.
pub const VALUE_AHEAD: usize = 8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryBox;

    #[test]
    fn ahead_yields_every_entry_in_order() {
        let boxes: Vec<EntryBox> = (0..50)
            .map(|i| {
                let v = if i % 3 == 0 {
                    Value::str_from(&vec![b'v'; i * 40])
                } else {
                    Value::str_from(b"x")
                };
                EntryBox::new(format!("k{i}").as_bytes(), v, 0, 0)
            })
            .collect();
        let refs: Vec<&Entry> = boxes.iter().map(|b| &**b).collect();
        let keys: Vec<&[u8]> = ahead(&refs).map(|e| e.key()).collect();
        let want: Vec<&[u8]> = boxes.iter().map(|b| b.key()).collect();
        assert_eq!(keys, want);
        assert_eq!(ahead(&[]).count(), 0);
    }
}
