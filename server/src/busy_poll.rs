//! Keeping the event loop awake for a moment after requests arrive, polling
//! the sockets instead of sleeping in epoll at once (`busy-poll-us`).
//!
//! When the event loop sleeps between requests, each request that finds it
//! asleep must wake it, and the wake-up is paid on the sender's side: the
//! client's CPU runs it, and in a virtual machine it costs an interrupt to
//! the halted core. With many clients that do not pipeline, the client is
//! usually the busier side, so that cost sets the rate. Measured on 2 cores
//! (`redis-benchmark -t lpush -P 1 -c 50`, server and client pinned apart):
//! polling for 50 µs after the last read took the client's CPU per request
//! from 11.0 to 10.0 µs and the rate up by about 9%, for about 20% more
//! server CPU per request. An idle server still sleeps: the poll ends when
//! the window passes with nothing read.
//!
//! Polling pays only when the next read comes within the window, so it
//! turns itself off when it keeps missing, as the halt-polling of KVM and
//! of Linux's `haltpoll` idle governor shrink theirs. A miss is a read that
//! finds the loop asleep more than `busy-poll-us` after the read before:
//! a longer poll would not have caught it either. After
//! [`MISSES_TO_STOP`] misses in a row, reads no longer start a poll, and
//! every [`RETRY_EVERY`]th read that finds the loop asleep tries one again.
//! A light load (one client paced at 5,000 SETs a second) cost the server
//! 314 ms of CPU a second with the poll always on against 160 ms with it
//! off, for nothing: each request came after the window had passed. The
//! one client that sends its next request when the reply comes is the case
//! to keep: polling catches it every time (32k SETs a second against 18k
//! with the poll off, `redis-benchmark -c 1`). A window that halves at
//! each miss and grows when a sleeping loop's next read came within
//! `busy-poll-us`, as `haltpoll` does, lost that client: the gap a sleeping
//! loop sees includes its own wake-up, so it went on shrinking, and the
//! rate fell to 20-25k.
//!
//! The poll also stops while another of the server's threads needs the
//! core: while a snapshot or AOF rewrite runs (its encoder and writer are
//! paced around the executor's idle time), and while an AOF write is in
//! flight (under `appendfsync always` a polling loop delayed the writer's
//! wake-ups and cost about 10% of the rate).

use crate::exec::Executor;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How often a poll task kept off (by `busy-poll-us 0`, or while a
/// snapshot or rewrite runs) looks again. Meanwhile reads do not wake it.
const RECHECK_HELD: Duration = Duration::from_millis(100);

/// Misses in a row that turn polling off (see the module's comment).
const MISSES_TO_STOP: u32 = 4;
/// While polling is off, every this many reads that find the loop asleep
/// one tries it again.
const RETRY_EVERY: u32 = 64;

/// Shared by the connections (which report their reads) and the poll task.
pub struct BusyPoll {
    last_read: Cell<Instant>,
    /// Whether a read starts a poll.
    on: Cell<bool>,
    /// While on, the misses in a row; while off, the reads since.
    count: Cell<u32>,
    /// Set while the poll task waits for a read to start polling again.
    parked: Cell<bool>,
    wake: Notify,
}

impl Default for BusyPoll {
    fn default() -> Self {
        BusyPoll {
            last_read: Cell::new(Instant::now()),
            on: Cell::new(true),
            count: Cell::new(0),
            parked: Cell::new(false),
            wake: Notify::new(),
        }
    }
}

impl BusyPoll {
    /// A connection read requests at `at` (the time its batch started, so
    /// no clock is read here), with `busy-poll-us` at `max_us`.
    pub fn on_read(&self, at: Instant, max_us: u64) {
        let last = self.last_read.replace(at);
        if !self.parked.get() {
            // Caught by a poll, or the loop had work anyway.
            if self.on.get() {
                self.count.set(0);
            }
            return;
        }
        if self.on.get() {
            if at.saturating_duration_since(last) > Duration::from_micros(max_us) {
                let misses = self.count.get() + 1;
                if misses >= MISSES_TO_STOP {
                    self.on.set(false);
                    self.count.set(0);
                    return;
                }
                self.count.set(misses);
            }
        } else {
            let reads = self.count.get() + 1;
            if reads < RETRY_EVERY {
                self.count.set(reads);
                return;
            }
            // One try: a miss turns it off again.
            self.on.set(true);
            self.count.set(MISSES_TO_STOP - 1);
        }
        self.parked.set(false);
        self.wake.notify_one();
    }

    /// Whether the event loop should keep polling now.
    fn should_poll(&self, ex: &Executor) -> bool {
        self.on.get()
            && !held(ex)
            && self.last_read.get().elapsed() < Duration::from_micros(ex.config.busy_poll_us)
            && ex.durability.release().is_none_or(|r| r.covers(ex.lsn))
    }
}

/// Whether polling is off for longer than a batch: turned off, or a
/// snapshot or AOF rewrite runs.
fn held(ex: &Executor) -> bool {
    ex.config.busy_poll_us == 0 || ex.save.bgsave.is_some() || ex.aof_rewrite_running()
}

/// The poll task: while [`BusyPoll::should_poll`] holds, yields at once,
/// which makes the runtime poll the sockets without blocking (tokio's
/// current-thread scheduler checks for I/O without waiting when a task has
/// yielded); otherwise waits for the next read. While polling is held off
/// for longer (see [`held`]) it sleeps instead, so reads do not wake it.
pub async fn run(ex: Rc<RefCell<Executor>>, bp: Rc<BusyPoll>) {
    loop {
        if held(&ex.borrow()) {
            tokio::time::sleep(RECHECK_HELD).await;
            continue;
        }
        bp.parked.set(true);
        bp.wake.notified().await;
        loop {
            tokio::task::yield_now().await;
            if !bp.should_poll(&ex.borrow()) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Client;
    use crate::config::{AppendFsync, Config};
    use bytes::Bytes;
    use redoubt_persist::storage::SimStorage;
    use std::sync::Arc;

    fn executor(cfg: Config) -> Executor {
        let mut ex = Executor::new(cfg);
        let storage = Arc::new(SimStorage::new());
        ex.save.storage = storage.clone();
        crate::aof::startup(&mut ex, storage).unwrap();
        ex
    }

    fn command(ex: &mut Executor, args: &[&str]) -> crate::resp::Reply {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let mut c = Client::new(1, "test".into(), "test".into(), true, tx);
        c.authenticated = true;
        let a: Vec<Bytes> = args.iter().map(|x| Bytes::from(x.to_string())).collect();
        ex.execute(&mut c, &a).0
    }

    fn window(us: u64) -> Config {
        Config {
            busy_poll_us: us,
            ..Config::default()
        }
    }

    #[test]
    fn polls_only_within_the_window_after_a_read() {
        let mut ex = executor(window(200_000));
        let bp = BusyPoll::default();
        bp.on_read(Instant::now(), 200_000);
        assert!(bp.should_poll(&ex));
        bp.on_read(Instant::now() - Duration::from_millis(300), 200_000);
        assert!(!bp.should_poll(&ex));
        ex.config.busy_poll_us = 0;
        bp.on_read(Instant::now(), 200_000);
        assert!(!bp.should_poll(&ex));
    }

    /// The poll task's part, for the tests: it went to sleep.
    fn sleep(bp: &BusyPoll) {
        bp.parked.set(true);
    }

    #[test]
    fn polling_stops_after_misses_in_a_row_and_is_tried_again() {
        let ex = executor(window(50));
        let bp = BusyPoll::default();
        let mut t = Instant::now();
        let mut read = |bp: &BusyPoll, gap_us: u64| {
            t += Duration::from_micros(gap_us);
            bp.on_read(t, 50);
        };
        // Reads 200 µs apart: each finds the loop asleep, past the window.
        for _ in 0..MISSES_TO_STOP - 1 {
            sleep(&bp);
            read(&bp, 200);
            assert!(bp.on.get());
            assert!(!bp.parked.get(), "woken to poll");
        }
        // A read caught by the poll starts the count again.
        read(&bp, 20);
        for _ in 0..MISSES_TO_STOP - 1 {
            sleep(&bp);
            read(&bp, 200);
        }
        assert!(bp.on.get());
        // A sleeping loop's read within busy-poll-us is no miss (the poll
        // had stopped for an AOF write, say).
        sleep(&bp);
        read(&bp, 30);
        assert!(bp.on.get());
        sleep(&bp);
        read(&bp, 200);
        assert!(!bp.on.get(), "the fourth miss in a row");
        assert!(bp.parked.get(), "the task is not woken");
        bp.on_read(Instant::now(), 50);
        assert!(!bp.should_poll(&ex), "off: no poll right after a read");
        // Off: reads do not wake the task until the try.
        for _ in 0..RETRY_EVERY - 2 {
            read(&bp, 200);
            assert!(bp.parked.get());
        }
        read(&bp, 200);
        assert!(bp.on.get() && !bp.parked.get(), "tried again");
        // The try misses: off again at once.
        sleep(&bp);
        read(&bp, 200);
        assert!(!bp.on.get());
        // The next try catches a read: it stays on.
        for _ in 0..RETRY_EVERY {
            read(&bp, 200);
        }
        assert!(bp.on.get());
        read(&bp, 20);
        sleep(&bp);
        read(&bp, 200);
        assert!(bp.on.get(), "one miss after a catch");
    }

    #[test]
    fn does_not_poll_while_an_aof_write_is_in_flight() {
        let mut ex = executor(Config {
            appendonly: true,
            appendfsync: AppendFsync::EverySec,
            ..window(200_000)
        });
        let bp = BusyPoll::default();
        bp.on_read(Instant::now(), 200_000);
        assert!(bp.should_poll(&ex));
        command(&mut ex, &["SET", "k", "v"]);
        assert!(!bp.should_poll(&ex), "the SET's write has not been done");
        crate::aof::get(&mut ex).unwrap().flush_now();
        assert!(bp.should_poll(&ex), "the write is done");
    }

    #[test]
    fn does_not_poll_while_a_snapshot_runs() {
        let mut ex = executor(window(200_000));
        let bp = BusyPoll::default();
        command(&mut ex, &["SET", "k", "v"]);
        // The end of the connection's batch.
        ex.durability.flush();
        bp.on_read(Instant::now(), 200_000);
        assert!(bp.should_poll(&ex));
        let r = command(&mut ex, &["BGSAVE"]);
        assert!(ex.save.bgsave.is_some(), "{r:?}");
        assert!(!bp.should_poll(&ex));
    }

    /// The task polls after a read, goes back to sleep once the window has
    /// passed with nothing read, and wakes at the next read; while a
    /// snapshot runs, reads do not wake it.
    #[test]
    fn the_task_sleeps_when_reads_stop_and_wakes_at_the_next() {
        // A window long enough that a descheduled test thread does not see
        // it pass between a read and the check that follows it.
        let ex = Rc::new(RefCell::new(executor(window(200_000))));
        let bp = Rc::new(BusyPoll::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let local = tokio::task::LocalSet::new();
        local.block_on(&rt, async {
            tokio::task::spawn_local(super::run(ex.clone(), bp.clone()));
            for _ in 0..2 {
                // Let the task reach its wait.
                tokio::time::sleep(Duration::from_millis(400)).await;
                assert!(bp.parked.get(), "asleep with nothing read");
                bp.on_read(Instant::now(), 200_000);
                assert!(!bp.parked.get());
                tokio::task::yield_now().await;
                tokio::task::yield_now().await;
                assert!(!bp.parked.get(), "polling within the window");
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
            assert!(bp.parked.get());
            command(&mut ex.borrow_mut(), &["BGSAVE"]);
            assert!(ex.borrow().save.bgsave.is_some());
            // The read that finds the snapshot running sends the task to
            // its timer, not back to waiting for reads.
            bp.on_read(Instant::now(), 200_000);
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert!(!bp.parked.get(), "waiting on its timer, not on reads");
        });
    }
}
