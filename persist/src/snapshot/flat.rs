//! Small strings handed to the snapshot encoder as bytes in one flat buffer.
//!
//! A copy per key (an entry block and a value block, made on the executor
//! and freed on the encoder thread) interleaves short-lived blocks with the
//! values the executor allocates meanwhile. Under an overwrite load that
//! left the allocator's small-object pages part full and its freed pages
//! waiting for decay: RSS grew by about 40% of the dataset during a save
//! while the copies alive at any instant were a few MiB. Copied into one
//! buffer of a few hundred KiB instead, the same bytes are one large block,
//! given back whole once encoded, and the executor's small-object traffic
//! during a save stays what it is without one.

/// db (4), expiry (8), key length (4), value length (4).
const HEADER: usize = 20;

/// Records of small string keys: database, expiry, key and value bytes.
#[derive(Debug, Default)]
pub(super) struct FlatBatch {
    buf: Vec<u8>,
    keys: u64,
    /// The buffer grows by doubling up to this, then only as needed.
    max_capacity: usize,
    /// What the first push reserves (see [`FlatBatch::next`]).
    first_capacity: usize,
    /// Times a non-empty buffer had to grow (each one copies it).
    grows: u32,
}

/// One record read back from a [`FlatBatch`]; key and value borrow the
/// batch's buffer (no reference count to touch per key).
#[derive(Debug, PartialEq)]
pub(super) struct FlatRecord<'a> {
    pub db: u32,
    pub expire_at: u64,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl FlatBatch {
    /// An empty batch whose buffer grows up to `max_capacity` bytes
    /// without slack past it. It starts small: a batch the executor sends
    /// after a few writes costs what those took, not a whole buffer.
    pub fn new(max_capacity: usize) -> FlatBatch {
        FlatBatch {
            buf: Vec::new(),
            keys: 0,
            max_capacity,
            first_capacity: 0,
            grows: 0,
        }
    }

    /// An empty batch to fill after this one, sized from it. The executor
    /// sends a batch at the end of each walker step, so under a steady load
    /// successive batches are about the same size: growing each from 4 KiB
    /// by doubling copied every batch about once more (about 1.5% of the
    /// executor's CPU during a save under an overwrite load, in
    /// `finish_grow`/`rallocx`). Starting at this batch's size plus an
    /// eighth usually needs one allocation, and a smaller next batch
    /// leaves at most that much unused.
    pub fn next(&self) -> FlatBatch {
        let hint = self.buf.len() + self.buf.len() / 8;
        FlatBatch {
            first_capacity: hint.min(self.max_capacity),
            ..FlatBatch::new(self.max_capacity)
        }
    }

    /// Gives back the unused part of the buffer when more than an eighth
    /// of it is unused (a batch sized from a bigger last one): the queue
    /// to the encoder is bounded by the bytes of its batches, so slack
    /// must not ride along. A large buffer shrinks in place.
    pub fn trim(&mut self) {
        if self.buf.capacity() - self.buf.len() > self.buf.len() / 8 {
            self.buf.shrink_to_fit();
        }
    }

    /// Times this batch's buffer was grown after its first allocation.
    pub fn grows(&self) -> u32 {
        self.grows
    }

    /// What a record of `key` and `value` takes in a batch.
    pub fn record_bytes(key: &[u8], value: &[u8]) -> u64 {
        (HEADER + key.len() + value.len()) as u64
    }

    pub fn push(&mut self, db: u32, key: &[u8], value: &[u8], expire_at: u64) {
        let need = HEADER + key.len() + value.len();
        if self.buf.capacity() - self.buf.len() < need {
            if self.buf.capacity() > 0 {
                self.grows += 1;
            }
            let floor = self.first_capacity.max(4096);
            let cap = (self.buf.capacity() * 2)
                .clamp(floor, self.max_capacity.max(floor))
                .max(self.buf.len() + need);
            self.buf.reserve_exact(cap - self.buf.len());
        }
        // Lengths fit: keys and strings are at most 512 MB.
        self.buf.extend_from_slice(&db.to_le_bytes());
        self.buf.extend_from_slice(&expire_at.to_le_bytes());
        self.buf
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&(value.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        self.buf.extend_from_slice(value);
        self.keys += 1;
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn keys(&self) -> u64 {
        self.keys
    }

    /// The records in the order they were pushed.
    pub fn records(&self) -> FlatRecords<'_> {
        FlatRecords {
            buf: &self.buf,
            pos: 0,
        }
    }
}

pub(super) struct FlatRecords<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl FlatRecords<'_> {
    fn u32_at(&self, at: usize) -> Option<u32> {
        let b = self.buf.get(at..at + 4)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
}

impl<'a> Iterator for FlatRecords<'a> {
    type Item = FlatRecord<'a>;

    fn next(&mut self) -> Option<FlatRecord<'a>> {
        let p = self.pos;
        let db = self.u32_at(p)?;
        let expire = self.buf.get(p + 4..p + 12)?;
        let expire_at = u64::from_le_bytes(expire.try_into().ok()?);
        let klen = self.u32_at(p + 12)? as usize;
        let vlen = self.u32_at(p + 16)? as usize;
        let kstart = p + HEADER;
        let vstart = kstart.checked_add(klen)?;
        let end = vstart.checked_add(vlen)?;
        if end > self.buf.len() {
            return None;
        }
        self.pos = end;
        Some(FlatRecord {
            db,
            expire_at,
            key: &self.buf[kstart..vstart],
            value: &self.buf[vstart..end],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_order_with_their_bytes() {
        let big = vec![7u8; 70_000];
        let mut b = FlatBatch::new(16);
        b.push(0, b"", b"", 0);
        b.push(3, b"key", b"value", 1_700_000_000_000);
        b.push(15, &big, b"v", u64::MAX);
        b.push(1, b"k", &big, 0);
        assert_eq!(b.keys(), 4);
        let expected = FlatBatch::record_bytes(b"", b"")
            + FlatBatch::record_bytes(b"key", b"value")
            + 2 * FlatBatch::record_bytes(&big, b"v");
        assert_eq!(b.len() as u64, expected);
        let got: Vec<FlatRecord> = b.records().collect();
        let rec = |db, expire_at, key, value| FlatRecord {
            db,
            expire_at,
            key,
            value,
        };
        assert_eq!(
            got,
            vec![
                rec(0, 0, b"", b""),
                rec(3, 1_700_000_000_000, b"key", b"value"),
                rec(15, u64::MAX, &big, b"v"),
                rec(1, 0, b"k", &big),
            ]
        );
    }

    /// A batch filled like the one before it is built in one allocation;
    /// the first of a series, grown from 4 KiB, is not.
    #[test]
    fn a_batch_sized_from_the_last_one_does_not_grow() {
        let fill = |b: &mut FlatBatch, n: usize| {
            for i in 0..n {
                let key = format!("key:{i:012}");
                b.push(0, key.as_bytes(), &[b'v'; 256], 0);
            }
        };
        let mut first = FlatBatch::new(256 * 1024 + 4096);
        fill(&mut first, 900);
        assert!(first.grows() >= 3, "grows {}", first.grows());
        let mut second = first.next();
        fill(&mut second, 900);
        assert_eq!(second.grows(), 0);
        // A somewhat bigger one still fits.
        let mut third = second.next();
        fill(&mut third, 905);
        assert_eq!(third.grows(), 0);
        let mut fourth = third.next();
        fill(&mut fourth, 10);
        assert!(fourth.buf.capacity() > 10 * fourth.len());
        // Sent, it keeps no more than an eighth unused.
        fourth.trim();
        assert!(fourth.buf.capacity() <= fourth.len() + fourth.len() / 8);
        third.trim();
        assert_eq!(third.buf.capacity(), 266_240);
        // Never past the largest batch.
        let mut big = FlatBatch::new(8192);
        fill(&mut big, 100);
        assert!(big.next().first_capacity <= 8192);
    }

    #[test]
    fn a_cut_buffer_ends_the_records_without_a_panic() {
        let mut b = FlatBatch::new(64);
        b.push(2, b"key", b"value", 0);
        b.push(2, b"other", b"value", 0);
        let whole = b.buf.clone();
        for cut in 0..whole.len() {
            let part = FlatBatch {
                buf: whole[..cut].to_vec(),
                keys: 0,
                max_capacity: 0,
                first_capacity: 0,
                grows: 0,
            };
            let n = part.records().count();
            assert!(n <= 1 || cut == whole.len(), "cut {cut}: {n}");
        }
    }
}
