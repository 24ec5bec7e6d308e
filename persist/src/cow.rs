//! Chunks shared between a live collection and a snapshot's pre-image of it.
//!
//! Big collections keep their elements in chunks behind `Arc`, so a copy of
//! the value (the pre-image a snapshot keeps when a write reaches a key it
//! has not saved yet) copies only chunk pointers. A later write to the live
//! value clones the one chunk it touches ([`make_mut`]); the old chunk then
//! lives on only for the pre-image, until the snapshot has encoded it.
//!
//! Those replaced chunks are the memory a snapshot keeps alive for big
//! collections. Each one records what it holds when it is replaced and
//! gives it back when it is dropped, so [`kept_alive_bytes`] is the live
//! total, process-wide (one snapshot runs at a time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

static KEPT_ALIVE: AtomicU64 = AtomicU64::new(0);

/// Bytes held by chunks that a live value has replaced and that only a
/// pre-image still references.
pub fn kept_alive_bytes() -> u64 {
    KEPT_ALIVE.load(Ordering::Relaxed)
}

/// What a chunk's contents cost in memory, roughly (element headers plus
/// the bytes they point to): what dropping it would give back.
pub trait ChunkBytes {
    fn chunk_bytes(&self) -> u64;
}

/// A chunk's contents plus its kept-alive record.
#[derive(Debug, Default)]
pub struct Chunk<T> {
    data: T,
    /// Bytes this chunk counts in [`KEPT_ALIVE`] (0 while a live value
    /// owns it).
    kept: AtomicU64,
}

impl<T> Chunk<T> {
    pub fn new(data: T) -> Chunk<T> {
        Chunk {
            data,
            kept: AtomicU64::new(0),
        }
    }

    pub fn get(&self) -> &T {
        &self.data
    }
}

impl<T: Clone> Clone for Chunk<T> {
    /// The copy belongs to the live value: it starts uncounted.
    fn clone(&self) -> Chunk<T> {
        Chunk::new(self.data.clone())
    }
}

impl<T> Drop for Chunk<T> {
    fn drop(&mut self) {
        let k = *self.kept.get_mut();
        if k > 0 {
            KEPT_ALIVE.fetch_sub(k, Ordering::Relaxed);
        }
    }
}

impl<T: PartialEq> PartialEq for Chunk<T> {
    fn eq(&self, other: &Self) -> bool {
        self.data == other.data
    }
}

/// A chunk pointer; cloning it shares the chunk.
pub type Shared<T> = Arc<Chunk<T>>;

pub fn shared<T>(data: T) -> Shared<T> {
    Arc::new(Chunk::new(data))
}

/// Mutable access to a chunk for the live value: when a pre-image shares
/// it, the live value takes a private copy and the old chunk is counted as
/// kept alive until the pre-image drops it.
#[inline]
pub fn make_mut<T: Clone + ChunkBytes>(c: &mut Shared<T>) -> &mut T {
    if Arc::get_mut(c).is_none() {
        mark(c);
    }
    let chunk = Arc::make_mut(c);
    // The pre-image may have dropped its reference between the check and
    // the copy: then the live value kept the chunk, which is not kept
    // alive for anyone else.
    let k = std::mem::take(chunk.kept.get_mut());
    if k > 0 {
        KEPT_ALIVE.fetch_sub(k, Ordering::Relaxed);
    }
    &mut chunk.data
}

/// Drops the live value's reference to a chunk; when a pre-image still
/// shares it, the chunk now lives on for the pre-image alone.
pub fn release<T: ChunkBytes>(c: Shared<T>) {
    if Arc::strong_count(&c) > 1 {
        mark(&c);
    }
}

fn mark<T: ChunkBytes>(c: &Chunk<T>) {
    let bytes = c.data.chunk_bytes().max(1);
    // Only the first replacement of a chunk counts it.
    if c.kept
        .compare_exchange(0, bytes, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        KEPT_ALIVE.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Drops chunks one at a time, calling `between` after each. By the end of
/// its encoding, a snapshot's copy of a big value is the only owner of
/// every chunk the live value replaced meanwhile: dropped in one go, the
/// thousands of chunks a million-element sorted set being written leaves
/// it held the encoder for 2 ms with no point where it could give its core
/// back to the event loop (`perf sched`, loaded BGSAVE).
pub fn drop_chunks<T>(chunks: impl IntoIterator<Item = Shared<T>>, between: &mut dyn FnMut()) {
    for c in chunks {
        drop(c);
        between();
    }
}

/// Bytes of the chunks in `chunks` that nothing else references: what a
/// copy holding them keeps alive on its own.
pub fn unshared_bytes<'a, T: ChunkBytes + 'a>(
    chunks: impl IntoIterator<Item = &'a Shared<T>>,
) -> u64 {
    chunks
        .into_iter()
        .filter(|c| Arc::strong_count(c) == 1)
        .map(|c| c.data.chunk_bytes())
        .sum()
}
