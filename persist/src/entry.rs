//! Keyspace entries: one allocation per key, holding the value, the
//! metadata and the key bytes, behind a one-word pointer.
//!
//! With 100-byte values a key's memory is dominated by fixed costs: the
//! entry, the key, the table slot. Keeping the key inside the entry's
//! allocation saves the key's own allocation (and its size-class rounding)
//! and one dependent pointer load on every lookup; keeping the table slot a
//! thin pointer keeps the empty slots a hash table carries at 8 bytes.
//!
//! Layout of the allocation (8-byte aligned):
//!
//! ```text
//! [key length: usize]   only for keys of LONG_KEY bytes or more
//! value | expire_at | access | mark, encoding + key_len: u16 | key bytes ... | pad to 8
//! ```
//!
//! The header is [`Entry`]'s sized part; [`Entry`] itself is a dynamically
//! sized type whose tail is the key, so a `&Entry` covers the whole key and
//! fields are accessed as with any struct.

use crate::value::Value;
use std::alloc::{self, Layout};
use std::ptr::{self, NonNull};

/// One key with its value and metadata.
#[repr(C)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in Unix ms; 0 means the key does not expire.
    pub expire_at: u64,
    /// Last access, in seconds of the server's LRU clock (for OBJECT IDLETIME
    /// and the RDB IDLE opcode).
    pub access: u32,
    /// Low 13 bits: the key's length, or LONG_KEY when the length is stored
    /// in the word before the header. Bits 13-14: the [`StrEncoding`]. Top
    /// bit ([`MARK`]): a running snapshot has taken this key (see
    /// `keyspace`), a bit where a set of keys per segment would cost tens
    /// of bytes a key. Free room: no byte of the entry grows for either.
    key_len: u16,
    /// The key. Public so `&e.key` reads as it always has; changing its
    /// bytes in place would leave the entry in the wrong hash slot, so
    /// nothing does.
    pub key: [u8],
}

/// The sized part of [`Entry`]; same fields, same `repr(C)` order, so its
/// field offsets are the entry's.
#[repr(C)]
struct Header {
    value: Value,
    expire_at: u64,
    access: u32,
    key_len: u16,
}

/// Keys this long or longer keep their length in a word before the header.
const LONG_KEY: u16 = 0x1fff;
/// The bits of `key_len` that hold the length (or LONG_KEY).
const LEN_MASK: u16 = 0x1fff;
/// Where the [`StrEncoding`] sits in `key_len`.
const ENC_SHIFT: u32 = 13;
const ENC_MASK: u16 = 0x3 << ENC_SHIFT;
/// The snapshot mark in `key_len`.
const MARK: u16 = 0x8000;

/// How a string value came to be, which decides the encoding Redis 7.0
/// would report for it (OBJECT ENCODING, DEBUG OBJECT): Redis keeps a
/// string as an `int`, a short `embstr` or a `raw` buffer depending on the
/// command that made it, not on its bytes alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrEncoding {
    /// Stored as given (SET and friends, loads): `int` when it is an
    /// integer, `embstr` up to 44 bytes, else `raw`.
    Auto,
    /// Built from a buffer without the integer check (INCRBYFLOAT):
    /// `embstr` up to 44 bytes, else `raw`.
    NoInt,
    /// Changed in place (APPEND, SETRANGE): always `raw`.
    Raw,
}

impl StrEncoding {
    fn bits(self) -> u16 {
        (match self {
            StrEncoding::Auto => 0u16,
            StrEncoding::NoInt => 1,
            StrEncoding::Raw => 2,
        }) << ENC_SHIFT
    }

    fn from_bits(key_len: u16) -> StrEncoding {
        match (key_len & ENC_MASK) >> ENC_SHIFT {
            1 => StrEncoding::NoInt,
            2 => StrEncoding::Raw,
            _ => StrEncoding::Auto,
        }
    }
}
/// Offset of the key bytes from the header: right after `key_len`.
const KEY_OFFSET: usize = std::mem::offset_of!(Header, key_len) + 2;
const ALIGN: usize = std::mem::align_of::<Header>();
const PREFIX: usize = std::mem::size_of::<usize>();

// The prefix word must keep the header aligned.
const _: () = assert!(PREFIX.is_multiple_of(ALIGN));

impl Entry {
    /// The key's bytes.
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    /// Whether a running snapshot has marked this key as taken.
    #[inline]
    pub(crate) fn snap_marked(&self) -> bool {
        self.key_len & MARK != 0
    }

    #[inline]
    pub(crate) fn set_snap_mark(&mut self, on: bool) {
        if on {
            self.key_len |= MARK;
        } else {
            self.key_len &= !MARK;
        }
    }

    /// How a string value was made (meaningless for other types).
    pub fn str_encoding(&self) -> StrEncoding {
        StrEncoding::from_bits(self.key_len)
    }

    /// Records how the string value was made; every new entry and every
    /// replaced value starts as [`StrEncoding::Auto`]. Leaves the length and
    /// the snapshot mark alone.
    pub fn set_str_encoding(&mut self, enc: StrEncoding) {
        self.key_len = (self.key_len & !ENC_MASK) | enc.bits();
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &&self.key)
            .field("value", &self.value)
            .field("expire_at", &self.expire_at)
            .field("access", &self.access)
            .finish()
    }
}

/// An entry taken out of the keyspace (removed, or replaced by an insert).
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    pub value: Value,
    pub expire_at: u64,
    pub access: u32,
}

/// The owning, one-word pointer to an [`Entry`] that a table slot holds.
pub struct EntryBox(NonNull<u8>);

// SAFETY: an EntryBox owns its entry exclusively, as a Box<Entry> would; the
// entry's parts (Value, integers, bytes) are Send and Sync.
unsafe impl Send for EntryBox {}
// SAFETY: as above; shared access only hands out `&Entry`.
unsafe impl Sync for EntryBox {}

const fn assert_send_sync<T: Send + Sync>() {}
const _: () = assert_send_sync::<Value>();

/// Bytes of the header plus key, rounded up to the alignment.
fn body_size(key_len: usize) -> usize {
    (KEY_OFFSET + key_len).next_multiple_of(ALIGN)
}

/// The allocation's layout and the header's offset in it.
fn layout(key_len: usize) -> (Layout, usize) {
    let prefix = if key_len >= LONG_KEY as usize {
        PREFIX
    } else {
        0
    };
    // A key is bounded by proto-max-bulk-len (at most isize::MAX here), so
    // this cannot fail for any key that exists in memory.
    let layout = Layout::from_size_align(prefix + body_size(key_len), ALIGN)
        .unwrap_or_else(|_| panic!("key of {key_len} bytes exceeds the address space"));
    (layout, prefix)
}

impl EntryBox {
    /// Allocates an entry holding a copy of `key`.
    pub fn new(key: &[u8], value: Value, expire_at: u64, access: u32) -> EntryBox {
        let n = key.len();
        let (layout, prefix) = layout(n);
        // SAFETY: the layout has a non-zero size (KEY_OFFSET > 0). The
        // header is written at an ALIGN-aligned offset inside the
        // allocation (prefix is 0 or PREFIX, a multiple of ALIGN); the key
        // follows at KEY_OFFSET and ends within body_size(n). The header
        // write covers its trailing padding, which the key then overwrites.
        unsafe {
            let base = alloc::alloc(layout);
            if base.is_null() {
                alloc::handle_alloc_error(layout);
            }
            if prefix != 0 {
                base.cast::<usize>().write(n);
            }
            let h = base.add(prefix);
            h.cast::<Header>().write(Header {
                value,
                expire_at,
                access,
                key_len: if n >= LONG_KEY as usize {
                    LONG_KEY
                } else {
                    n as u16
                },
            });
            ptr::copy_nonoverlapping(key.as_ptr(), h.add(KEY_OFFSET), n);
            EntryBox(NonNull::new_unchecked(h))
        }
    }

    fn key_len(&self) -> usize {
        // SAFETY: the header is initialized for the box's whole life; a
        // LONG_KEY length means the prefix word exists and holds the length.
        unsafe {
            let h = self.0.as_ptr();
            let short = h
                .add(std::mem::offset_of!(Header, key_len))
                .cast::<u16>()
                .read()
                & LEN_MASK;
            if short == LONG_KEY {
                h.sub(PREFIX).cast::<usize>().read()
            } else {
                short as usize
            }
        }
    }

    fn fat(&self) -> *mut Entry {
        // A slice pointer cast to a struct with a slice tail keeps the length
        // as the tail's length.
        ptr::slice_from_raw_parts_mut(self.0.as_ptr(), self.key_len()) as *mut Entry
    }

    /// Takes the value and metadata out, freeing the allocation.
    pub fn into_removed(self) -> Removed {
        let n = self.key_len();
        let (layout, prefix) = layout(n);
        let h = self.0.as_ptr();
        std::mem::forget(self);
        // SAFETY: the header is initialized; the value is moved out exactly
        // once and the allocation, made with this layout, is freed without
        // dropping it again.
        unsafe {
            let header = h.cast::<Header>().read();
            alloc::dealloc(h.sub(prefix), layout);
            Removed {
                value: header.value,
                expire_at: header.expire_at,
                access: header.access,
            }
        }
    }
}

impl std::ops::Deref for EntryBox {
    type Target = Entry;
    #[inline]
    fn deref(&self) -> &Entry {
        // SAFETY: the allocation holds an initialized header and key_len()
        // key bytes; `size_of_val` of the result is body_size(key_len).
        unsafe { &*self.fat() }
    }
}

impl std::ops::DerefMut for EntryBox {
    #[inline]
    fn deref_mut(&mut self) -> &mut Entry {
        // SAFETY: as deref; `&mut self` makes the access exclusive. The key
        // and its length are private, so callers can change only the value
        // and the metadata.
        unsafe { &mut *self.fat() }
    }
}

impl Drop for EntryBox {
    fn drop(&mut self) {
        let (layout, prefix) = layout(self.key_len());
        // SAFETY: the value is initialized and dropped once; the allocation
        // was made with this layout.
        unsafe {
            ptr::drop_in_place(ptr::addr_of_mut!((*self.fat()).value));
            alloc::dealloc(self.0.as_ptr().sub(prefix), layout);
        }
    }
}

impl EntryBox {
    /// An owned copy of an entry (a string value shares its bytes).
    pub fn copy_of(e: &Entry) -> EntryBox {
        EntryBox::new(e.key(), e.value.clone(), e.expire_at, e.access)
    }
}

impl Clone for EntryBox {
    fn clone(&self) -> EntryBox {
        EntryBox::copy_of(self)
    }
}

impl std::fmt::Debug for EntryBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &[u8]) -> EntryBox {
        EntryBox::new(key, Value::str_from(b"value"), 7, 3)
    }

    #[test]
    fn key_and_fields_round_trip_for_all_lengths() {
        for n in (0..70).chain([
            254, 255, 256, 8190, 8191, 8192, 16383, 32767, 65535, 65536, 100_000,
        ]) {
            let key: Vec<u8> = (0..n).map(|i| (i * 31 % 251) as u8).collect();
            let mut e = entry(&key);
            assert_eq!(e.key(), &key[..], "key of {n} bytes");
            assert_eq!(e.str_encoding(), StrEncoding::Auto);
            for enc in [StrEncoding::Raw, StrEncoding::NoInt, StrEncoding::Auto] {
                e.set_str_encoding(enc);
                assert_eq!(e.str_encoding(), enc);
                assert_eq!(e.key(), &key[..], "the encoding bits keep the length");
            }
            e.set_str_encoding(StrEncoding::Raw);
            assert_eq!(e.value, Value::str_from(b"value"));
            assert_eq!((e.expire_at, e.access), (7, 3));
            e.value = Value::str_from(b"other");
            e.expire_at = 9;
            assert_eq!(e.key(), &key[..], "writes to fields keep the key");
            let c = e.clone();
            assert_eq!(c.key(), &key[..]);
            assert_eq!(c.value, Value::str_from(b"other"));
            let r = e.into_removed();
            assert_eq!(r.value, Value::str_from(b"other"));
            assert_eq!((r.expire_at, r.access), (9, 3));
        }
    }

    #[test]
    fn key_follows_the_header_and_fits_the_allocation() {
        let e = entry(b"key:123456");
        let base = &*e as *const Entry as *const u8 as usize;
        let key = e.key().as_ptr() as usize;
        assert_eq!(key - base, KEY_OFFSET);
        assert_eq!(std::mem::size_of_val(&*e), body_size(10));
        assert_eq!(layout(10).0.size(), body_size(10));
    }

    #[test]
    fn the_snapshot_mark_leaves_the_key_alone() {
        for n in [0, 10, 8190, 8191, 32767, 70_000] {
            let key: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
            let mut e = entry(&key);
            assert!(!e.snap_marked());
            e.set_snap_mark(true);
            assert!(e.snap_marked());
            assert_eq!(e.key(), &key[..], "key of {n} bytes");
            // The string encoding shares the word: neither disturbs the other.
            e.set_str_encoding(StrEncoding::Raw);
            assert!(e.snap_marked());
            assert_eq!(e.str_encoding(), StrEncoding::Raw);
            assert_eq!(e.key(), &key[..], "key of {n} bytes");
            e.set_snap_mark(false);
            assert_eq!(e.str_encoding(), StrEncoding::Raw);
            e.set_str_encoding(StrEncoding::NoInt);
            assert_eq!(e.str_encoding(), StrEncoding::NoInt);
            assert!(!e.snap_marked());
            assert_eq!(e.key(), &key[..], "key of {n} bytes");
            e.set_snap_mark(true);
            // Freed with the marked length word: the layout must match.
            drop(e);
        }
    }

    /// The point of this layout: a typical key ("key:" plus up to six
    /// digits) and its entry fit one 64-byte allocation.
    #[test]
    fn typical_entry_is_one_64_byte_allocation() {
        assert_eq!(std::mem::size_of::<EntryBox>(), 8);
        const { assert!(KEY_OFFSET <= 54, "the header grew") };
        assert_eq!(layout(b"key:999999".len()).0.size(), 64);
    }
}
