//! Holding the allocator's freed pages while a snapshot runs.
//!
//! jemalloc's background thread gives freed pages back to the OS on its
//! decay schedule (10 s by default): `madvise` calls on the server's
//! threads, and pages that the next allocations fault in again. A save
//! under load frees and allocates more than the load alone (pre-images,
//! encoder batches, dropped copies), all of it on the server's core.
//! Single loaded saves of 2M keys (`bench/snapshot.sh`'s load, the probe
//! and a real-time watcher on each core alongside, alternating):
//! - the process's purging off altogether (`_RJEM_MALLOC_CONF=
//!   dirty_decay_ms:-1`), four runs each way: probe maxima 2.8-4.6 ms
//!   against 4.0-7.7 ms, and the pauses of the server's core added up to
//!   0-3.9 ms per run against 0-13.1 ms;
//! - purging held during the save only (this module), five runs each way,
//!   three without and two with the big collections: probe maxima
//!   3.1-4.4 ms against 3.4-6.5 ms, replies over 4 ms 4 against 7, p99
//!   1.8-2.4 ms against 2.2-3.0 ms; the save's peak extra memory 3.3-4.3%
//!   of the RSS before it against 2.4-2.5% (6.4-6.8% against 5.6-5.9%
//!   with the big collections).
//!
//! So while a snapshot runs, every arena keeps its freed pages
//! (`dirty_decay_ms` -1): the allocator reuses them for the next
//! allocations instead of returning them and faulting new ones in. When no
//! snapshot runs, the decay each arena had comes back, and the background
//! thread returns what is left over it. The setting is the process's: holds
//! are counted, so that executors sharing a process (tests) restore it
//! only when the last one ends.

use std::sync::Mutex;
use tikv_jemalloc_ctl::raw;

/// One executor's hold on the process's freed pages.
#[derive(Debug, Default)]
pub struct FreedPages {
    holding: bool,
}

/// The holds of every executor in the process, and what to restore after
/// the last one.
static HOLDS: Mutex<(usize, Option<Held>)> = Mutex::new((0, None));

#[derive(Debug)]
struct Held {
    /// The default for arenas created from now on.
    default_ms: isize,
    /// Each initialised arena's own setting.
    arenas: Vec<(u32, isize)>,
}

const DEFAULT_DECAY: &[u8] = b"arenas.dirty_decay_ms\0";
const NARENAS: &[u8] = b"arenas.narenas\0";

fn arena_decay(index: u32) -> Vec<u8> {
    format!("arena.{index}.dirty_decay_ms\0").into_bytes()
}

impl FreedPages {
    /// Takes (`hold`) or gives up this executor's hold: the first hold in
    /// the process keeps freed pages, and the end of the last one restores
    /// each arena's decay.
    pub fn hold(&mut self, hold: bool) {
        if hold == self.holding {
            return;
        }
        self.holding = hold;
        let mut holds = HOLDS.lock().unwrap_or_else(|p| p.into_inner());
        if hold {
            holds.0 += 1;
            if holds.0 == 1 {
                holds.1 = Some(Self::start());
            }
        } else {
            holds.0 -= 1;
            if holds.0 == 0 {
                if let Some(h) = holds.1.take() {
                    Self::end(h);
                }
            }
        }
    }

    /// Whether this executor holds freed pages now.
    pub fn is_held(&self) -> bool {
        self.holding
    }

    fn start() -> Held {
        // SAFETY: the names are NUL-terminated jemalloc controls of the
        // types read and written (ssize_t and unsigned).
        let default_ms = unsafe { raw::read::<isize>(DEFAULT_DECAY) }.unwrap_or(10_000);
        let narenas = unsafe { raw::read::<u32>(NARENAS) }.unwrap_or(0);
        let mut arenas = Vec::new();
        for i in 0..narenas {
            let name = arena_decay(i);
            // An arena not created yet has no setting: it takes the
            // default, set below.
            if let Ok(ms) = unsafe { raw::read::<isize>(&name) } {
                if unsafe { raw::write::<isize>(&name, -1) }.is_ok() {
                    arenas.push((i, ms));
                }
            }
        }
        if let Err(e) = unsafe { raw::write::<isize>(DEFAULT_DECAY, -1) } {
            tracing::debug!("arenas.dirty_decay_ms not set: {e}");
        }
        tracing::debug!(arenas = arenas.len(), "allocator keeps freed pages");
        Held { default_ms, arenas }
    }

    fn end(h: Held) {
        // SAFETY: as in `start`.
        let _ = unsafe { raw::write::<isize>(DEFAULT_DECAY, h.default_ms) };
        let narenas = unsafe { raw::read::<u32>(NARENAS) }.unwrap_or(0);
        for i in 0..narenas {
            let ms = h
                .arenas
                .iter()
                .find(|(a, _)| *a == i)
                .map_or(h.default_ms, |(_, ms)| *ms);
            // Arenas created during the hold took -1 from the default.
            let _ = unsafe { raw::write::<isize>(&arena_decay(i), ms) };
        }
        tracing::debug!("allocator returns freed pages again");
    }
}

impl Drop for FreedPages {
    fn drop(&mut self) {
        self.hold(false);
    }
}
