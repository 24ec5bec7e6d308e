//! The seam between execution and persistence.
//!
//! Every command that changes the dataset gets the next log sequence number
//! (LSN) and is handed to the [`Durability`] sink in execution order. Every
//! reply carries the LSN of the state it observed, and a connection sends it
//! only once the sink's watermark covers that LSN: under `appendfsync always`
//! the AOF writer advances the watermark after an fsync, under everysec/no
//! after the write. With persistence off the watermark is always open.

use bytes::Bytes;
use tokio::sync::watch;

pub trait Durability {
    /// A command that changed the dataset, in execution order.
    fn append(&mut self, lsn: u64, db: usize, args: &[Bytes]);

    /// [`Durability::append`] for a command logged as the client sent it:
    /// `frame` is the request frame the parser found canonical (see
    /// [`crate::resp::RequestParser::take_frame`]). A sink may copy it
    /// instead of encoding `args`, once [`crate::resp::frame_holds`] shows
    /// that `args` came from it.
    fn append_request(&mut self, lsn: u64, db: usize, args: &[Bytes], frame: &[u8]) {
        let _ = frame;
        self.append(lsn, db, args);
    }

    /// End of a batch of commands (one read's worth): a chance to hand the
    /// batch to the writer in one piece.
    fn flush(&mut self) {}

    /// Whether the commands handed over are kept. False for a sink that
    /// drops them, so a command may skip building the form it would be
    /// logged as (see [`crate::commands::Ctx::logs_effects`]).
    fn records(&self) -> bool {
        true
    }

    /// The watermark replies wait for; None means replies never wait.
    fn watermark(&self) -> Option<watch::Receiver<u64>>;

    /// The same watermark kept on the event-loop thread, for sinks that
    /// move it there (see [`Release`]). When Some, connections wait on it
    /// instead of [`Durability::watermark`].
    fn release(&self) -> Option<std::rc::Rc<Release>> {
        None
    }

    /// Set while the log cannot be written: write commands are refused with
    /// `-MISCONF Errors writing to the AOF file: <this>`.
    fn write_error(&self) -> Option<String> {
        None
    }

    /// For reaching the concrete sink (INFO, BGREWRITEAOF, DEBUG LOADAOF).
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }

    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        None
    }
}

/// No persistence: nothing is logged and replies never wait.
pub struct Volatile;

impl Durability for Volatile {
    fn append(&mut self, _lsn: u64, _db: usize, _args: &[Bytes]) {}

    fn records(&self) -> bool {
        false
    }

    fn watermark(&self) -> Option<watch::Receiver<u64>> {
        None
    }
}

/// What a [`Gate`] recorded: (lsn, db, command) in order.
pub type GateLog = std::rc::Rc<std::cell::RefCell<Vec<(u64, usize, Vec<Bytes>)>>>;

/// A sink whose watermark is moved by hand: records what it is given and
/// releases replies only when told. Tests use it to prove the seam holds.
pub struct Gate {
    pub log: GateLog,
    tx: watch::Sender<u64>,
}

impl Gate {
    pub fn new() -> (Gate, watch::Sender<u64>) {
        let (tx, _rx) = watch::channel(0);
        let g = Gate {
            log: Default::default(),
            tx: tx.clone(),
        };
        (g, tx)
    }
}

impl Durability for Gate {
    fn append(&mut self, lsn: u64, db: usize, args: &[Bytes]) {
        self.log.borrow_mut().push((lsn, db, args.to_vec()));
    }

    fn watermark(&self) -> Option<watch::Receiver<u64>> {
        Some(self.tx.subscribe())
    }
}

/// The watermark as seen on the event-loop thread, with the connections
/// waiting on it: each waiter is one waker, kept in LSN order, and a new
/// watermark wakes only the waiters it covers, in that order. Cheaper than
/// every connection awaiting a [`watch`] channel (a lock and a wake of
/// every waiter per published watermark), and the sink can move it in the
/// same turn of the loop as its write, so a reply leaves without another
/// task having to run first. Single-threaded: a watermark published from
/// another thread reaches it through a relay (see
/// [`crate::aof::spawn_flusher`]).
#[derive(Default)]
pub struct Release {
    mark: std::cell::Cell<u64>,
    closed: std::cell::Cell<bool>,
    /// (lsn, waker), sorted by LSN; equal LSNs in registration order.
    waiters: std::cell::RefCell<Vec<(u64, std::task::Waker)>>,
    /// Replies left to be sent when the watermark covers them, sorted as
    /// `waiters` (see [`Release::defer`]).
    deferred: std::cell::RefCell<Vec<(u64, std::rc::Rc<dyn Deferred>)>>,
    /// Bytes the deferred sends wrote, for the server's output statistics.
    sent: std::cell::Cell<u64>,
}

/// Replies a connection left with the [`Release`] instead of waiting for
/// the watermark itself.
pub trait Deferred {
    /// Sends what it can without blocking, returning the bytes written.
    /// Whatever it cannot send, its connection sends later itself.
    fn send(&self) -> u64;
}

/// The sink can no longer acknowledge anything (its writer is gone).
#[derive(Debug, thiserror::Error)]
#[error("the durability sink is closed")]
pub struct Closed;

impl Release {
    pub fn new() -> Release {
        Release::default()
    }

    /// The highest LSN a reply may carry and leave now.
    pub fn mark(&self) -> u64 {
        self.mark.get()
    }

    pub fn covers(&self, lsn: u64) -> bool {
        self.mark.get() >= lsn
    }

    /// How many wakers wait (tests, INFO-style checks).
    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }

    /// Moves the watermark up to `lsn` (never down) and wakes, in LSN
    /// order, the waiters it now covers.
    pub fn advance(&self, lsn: u64) {
        if lsn <= self.mark.get() {
            return;
        }
        self.mark.set(lsn);
        // The common case with AOF off: nobody waits.
        if self.deferred.borrow().is_empty() && self.waiters.borrow().is_empty() {
            return;
        }
        let due = Self::take_covered(&self.deferred, lsn);
        // Outside the borrows: a send or a waker may register again.
        for (_, d) in due {
            self.sent.set(self.sent.get() + d.send());
        }
        for (_, waker) in Self::take_covered(&self.waiters, lsn) {
            waker.wake();
        }
    }

    fn take_covered<T>(list: &std::cell::RefCell<Vec<(u64, T)>>, lsn: u64) -> Vec<(u64, T)> {
        let mut l = list.borrow_mut();
        if l.is_empty() {
            return Vec::new();
        }
        let n = l.partition_point(|(x, _)| *x <= lsn);
        l.drain(..n).collect()
    }

    /// Leaves replies to be sent as soon as the watermark covers `lsn`, by
    /// whoever moves it (on the event loop, right after the AOF write): the
    /// connection goes back to reading instead of waiting to be woken, as
    /// Redis writes its clients' replies right after its AOF buffer. Sent at
    /// once if `lsn` is covered already.
    pub fn defer(&self, lsn: u64, d: std::rc::Rc<dyn Deferred>) {
        if self.covers(lsn) {
            self.sent.set(self.sent.get() + d.send());
            return;
        }
        insert_sorted(&mut self.deferred.borrow_mut(), lsn, d);
    }

    /// Bytes the deferred sends wrote since the last call.
    pub fn take_sent(&self) -> u64 {
        self.sent.replace(0)
    }

    /// Ends every wait with [`Closed`]: nothing will be acknowledged again.
    pub fn close(&self) {
        self.closed.set(true);
        // Nothing they hold will be acknowledged: drop them unsent.
        drop(std::mem::take(&mut *self.deferred.borrow_mut()));
        let woken = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in woken {
            waker.wake();
        }
    }

    /// Resolves once the watermark covers `lsn`.
    pub fn wait(&self, lsn: u64) -> Wait<'_> {
        Wait {
            release: self,
            lsn,
            registered: false,
        }
    }

    fn register(&self, lsn: u64, waker: std::task::Waker) {
        insert_sorted(&mut self.waiters.borrow_mut(), lsn, waker);
    }
}

/// Inserts after every entry with an LSN up to `lsn`, so the list stays in
/// LSN order and equal LSNs keep their arrival order. Connections defer in
/// execution order, so the entry almost always goes at the end: that case
/// skips the search.
fn insert_sorted<T>(list: &mut Vec<(u64, T)>, lsn: u64, item: T) {
    if list.last().is_none_or(|(x, _)| *x <= lsn) {
        list.push((lsn, item));
        return;
    }
    let at = list.partition_point(|(x, _)| *x <= lsn);
    list.insert(at, (lsn, item));
}

/// Future of [`Release::wait`].
pub struct Wait<'a> {
    release: &'a Release,
    lsn: u64,
    registered: bool,
}

impl std::future::Future for Wait<'_> {
    type Output = Result<(), Closed>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.release.covers(self.lsn) {
            return std::task::Poll::Ready(Ok(()));
        }
        if self.release.closed.get() {
            return std::task::Poll::Ready(Err(Closed));
        }
        // Polled again before being woken (a spurious wake): the waker
        // registered first is still listed and wakes the same task.
        if !self.registered {
            self.registered = true;
            let lsn = self.lsn;
            self.release.register(lsn, cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll, Wake, Waker};

    /// A waker that records its name when woken.
    struct Named(&'static str, Arc<Mutex<Vec<&'static str>>>);

    impl Wake for Named {
        fn wake(self: Arc<Self>) {
            self.1.lock().unwrap().push(self.0);
        }
    }

    fn waker(name: &'static str, log: &Arc<Mutex<Vec<&'static str>>>) -> Waker {
        Waker::from(Arc::new(Named(name, log.clone())))
    }

    fn poll(w: &mut Wait<'_>, waker: &Waker) -> Poll<Result<(), Closed>> {
        std::pin::Pin::new(w).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn waiters_are_woken_in_lsn_order_and_only_when_covered() {
        let r = Release::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (wa, wb, wc, wd) = (
            waker("a", &log),
            waker("b", &log),
            waker("c", &log),
            waker("d", &log),
        );
        // Registered out of LSN order, as a read-only reply can carry an
        // older LSN than a write registered before it.
        let mut a = r.wait(3);
        let mut b = r.wait(1);
        let mut c = r.wait(2);
        let mut d = r.wait(2);
        for (f, w) in [(&mut a, &wa), (&mut b, &wb), (&mut c, &wc), (&mut d, &wd)] {
            assert!(poll(f, w).is_pending());
        }
        assert_eq!(r.waiting(), 4);

        r.advance(2);
        assert_eq!(*log.lock().unwrap(), ["b", "c", "d"]);
        assert_eq!(r.waiting(), 1);
        assert!(poll(&mut b, &wb).is_ready());
        assert!(poll(&mut c, &wc).is_ready());
        assert!(poll(&mut a, &wa).is_pending());
        // A spurious poll does not list the waiter twice.
        assert_eq!(r.waiting(), 1);

        // Never backwards; an equal mark wakes nobody.
        r.advance(1);
        r.advance(2);
        assert_eq!(r.mark(), 2);
        assert_eq!(log.lock().unwrap().len(), 3);

        r.advance(5);
        assert_eq!(*log.lock().unwrap(), ["b", "c", "d", "a"]);
        assert!(poll(&mut a, &wa).is_ready());
        assert_eq!(r.waiting(), 0);
        // Covered already: ready at once, nothing registered.
        assert!(poll(&mut r.wait(4), &wa).is_ready());
        assert_eq!(r.waiting(), 0);
    }

    /// A deferred reply that counts its sends.
    struct Reply(&'static str, Arc<Mutex<Vec<&'static str>>>);

    impl Deferred for Reply {
        fn send(&self) -> u64 {
            self.1.lock().unwrap().push(self.0);
            10
        }
    }

    #[test]
    fn deferred_replies_are_sent_in_lsn_order_once_covered_and_before_waiters_wake() {
        let r = Release::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reply = |name| std::rc::Rc::new(Reply(name, log.clone()));
        r.defer(4, reply("late"));
        r.defer(2, reply("early"));
        let w = waker("waiter", &log);
        let mut wait = r.wait(2);
        assert!(poll(&mut wait, &w).is_pending());
        assert!(log.lock().unwrap().is_empty());
        r.advance(3);
        assert_eq!(*log.lock().unwrap(), ["early", "waiter"]);
        assert_eq!(r.take_sent(), 10);
        r.advance(4);
        assert_eq!(*log.lock().unwrap(), ["early", "waiter", "late"]);
        // Covered already: sent on the spot.
        r.defer(1, reply("now"));
        assert_eq!(log.lock().unwrap().last(), Some(&"now"));
        assert_eq!(r.take_sent(), 20);
        assert_eq!(r.take_sent(), 0);
    }

    /// Deferrals arrive in execution order (the end of the list) except
    /// when a connection defers an older batch late: both keep LSN order,
    /// and equal LSNs leave in the order they came.
    #[test]
    fn deferrals_keep_lsn_order_whether_they_come_in_order_or_not() {
        let r = Release::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let reply = |name| std::rc::Rc::new(Reply(name, log.clone()));
        r.defer(2, reply("a2"));
        r.defer(3, reply("b3"));
        r.defer(3, reply("c3"));
        r.defer(1, reply("d1"));
        r.defer(2, reply("e2"));
        r.defer(5, reply("f5"));
        r.advance(3);
        assert_eq!(*log.lock().unwrap(), ["d1", "a2", "e2", "b3", "c3"]);
        r.advance(5);
        assert_eq!(log.lock().unwrap().last(), Some(&"f5"));
        assert_eq!(r.take_sent(), 60);
    }

    #[test]
    fn close_ends_every_wait() {
        let r = Release::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let w = waker("a", &log);
        let mut a = r.wait(7);
        assert!(poll(&mut a, &w).is_pending());
        r.close();
        assert_eq!(*log.lock().unwrap(), ["a"]);
        assert!(matches!(poll(&mut a, &w), Poll::Ready(Err(Closed))));
    }
}
