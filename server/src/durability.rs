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

    /// The watermark replies wait for; None means replies never wait.
    fn watermark(&self) -> Option<watch::Receiver<u64>>;

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
