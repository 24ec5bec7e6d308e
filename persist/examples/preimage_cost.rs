//! Times what a snapshot's pre-image of a big collection costs the
//! executor: the copy itself (`Value::clone`, chunk pointers only), the
//! first writes after it (each copies the chunk it touches) and dropping
//! the copy, with the chunks cache-cold as they are when a write reaches a
//! key that has been idle for a while. A million-element sorted set's copy
//! (about 20,000 chunk and shard pointers) took 0.3-0.4 ms, a list's (7,813
//! nodes) 0.15 ms; the first write into a shared chunk 25-100 µs (sorted
//! set: a shard and an index chunk) or 5-9 µs (list). A write stall of
//! several milliseconds during a save is not this copy.
//! Prefetching the reference counts ahead of the increments gained at most
//! a fifth here and nothing measurable in the server, so copies still
//! clone the pointers plainly.
//!
//! `cargo run --release -p redoubt-persist --example preimage_cost -- [N] [ROUNDS]`
//! (`WARM=1`: without evicting the caches between passes).

use bytes::Bytes;
use redoubt_persist::value::{ListValue, ZSet};
use redoubt_persist::Value;
use std::hint::black_box;
use std::time::{Duration, Instant};

// The server's allocator: where the chunks land decides the cache and TLB
// misses being measured.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Writes through a buffer bigger than the caches' share this process
/// gets, so the next pass finds the collections' chunks cold.
fn evict(buf: &mut [u64]) {
    if std::env::var_os("WARM").is_some() {
        return;
    }
    for (i, x) in buf.iter_mut().enumerate().step_by(8) {
        *x = x.wrapping_add(i as u64);
    }
    black_box(&buf);
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    // Built interleaved, as the two writers of the bench build them, so
    // neighbouring chunks do not sit in neighbouring memory.
    let mut z = ZSet::new();
    let mut l = ListValue::default();
    for i in 0..n {
        let m = Bytes::from(format!("m:{i:012}"));
        z.insert(m.clone(), i as f64);
        l.items.push_back(m);
    }
    println!(
        "zset: {} index chunks + shards; list: {} nodes",
        z.chunk_count(),
        l.items.node_count()
    );
    let mut zset = Value::ZSet(Box::new(z));
    let mut list = Value::List(Box::new(l));
    let mut buf = vec![0u64; 512 << 20 >> 3];
    for round in 0..rounds {
        for (name, v) in [("zset", &mut zset), ("list", &mut list)] {
            evict(&mut buf);
            let t = Instant::now();
            let copy = v.clone();
            let clone_us = micros(t.elapsed());
            // Writes spread over the collection, each into a chunk the copy
            // shares: what the first writes after the pre-image pay.
            let t = Instant::now();
            let writes = 64;
            for w in 0..writes {
                let i = (w * 7919 * 131) % n;
                match v {
                    Value::ZSet(z) => {
                        z.insert(Bytes::from(format!("m:{i:012}")), (i + round + 1) as f64);
                    }
                    Value::List(l) => {
                        if let Some(x) = l.items.get_mut(i) {
                            *x = Bytes::from_static(b"x");
                        }
                    }
                    _ => {}
                }
            }
            let write_us = micros(t.elapsed()) / writes as f64;
            evict(&mut buf);
            let t = Instant::now();
            drop(copy);
            let drop_us = micros(t.elapsed());
            println!(
                "round {round} {name}: clone {clone_us:.0} us, first writes {write_us:.1} us each, drop {drop_us:.0} us"
            );
        }
    }
}
