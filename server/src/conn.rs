//! One task per connection: read, parse, execute a batch, wait for the
//! durability watermark, write the replies.

use crate::busy_poll::BusyPoll;
use crate::client::{Client, Outgoing};
use crate::durability::{Deferred, Durability, Release};
use crate::exec::{BatchClock, Executor};
use crate::prefetch;
use crate::resp::{encode, Reply, RequestParser};
use bytes::{Buf, BytesMut};
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Notify};

/// Write out once this much reply data is pending, even mid-batch.
const FLUSH_AT: usize = 64 * 1024;

/// The room each read from a client gets (Redis reads 16 KiB at a time
/// too). Without it a read took what was left at the end of the buffer,
/// and every few batches a pipelined batch of 4.8 KB came in two reads
/// (2,626 bytes, then 2,174): the executor ran the batch in two passes and
/// wrote two replies, each a loopback delivery and a wake-up of the
/// client. The buffer's batches line up across the clients of one load,
/// so one event-loop round in three or four did that for every client, and
/// took up to three times as long as the others (`perf` syscall traces of
/// a loaded save: 5.3-5.7 ms against a median of 1.7 ms).
const READ_ROOM: usize = 16 * 1024;

const DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Shared by all connection tasks on the event-loop thread.
pub struct Shared {
    pub ex: Rc<RefCell<Executor>>,
    /// Signalled when a command asked the server to shut down.
    pub shutdown: Rc<Notify>,
    /// Told of every read, to keep the event loop polling for a while.
    pub busy_poll: Rc<BusyPoll>,
}

// The executor borrow in the admission block is dropped before each await;
// the lint cannot see the explicit drop().
#[allow(clippy::await_holding_refcell_ref)]
pub async fn serve(shared: Rc<Shared>, mut stream: TcpStream, peer: SocketAddr, local: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let is_local = peer.ip().is_loopback();
    let (tx, rx) = mpsc::unbounded_channel();
    let refusal = {
        let mut ex = shared.ex.borrow_mut();
        if ex.clients.len() as u64 >= ex.config.maxclients {
            ex.stats.rejected_connections += 1;
            Some("-ERR max number of clients reached\r\n")
        } else if ex.config.protected_mode && ex.config.requirepass.is_empty() && !is_local {
            Some(DENIED)
        } else {
            None
        }
    };
    if let Some(msg) = refusal {
        let _ = stream.write_all(msg.as_bytes()).await;
        return;
    }
    let (client, watermark, max_bulk) = {
        let mut ex = shared.ex.borrow_mut();
        let authenticated = ex.config.requirepass.is_empty();
        let client = ex.register_client(|id| {
            let mut c = Client::new(id, peer.to_string(), local.to_string(), is_local, tx);
            c.authenticated = authenticated;
            c
        });
        (
            client,
            Watermark::of(ex.durability.as_ref()),
            ex.config.proto_max_bulk_len as usize,
        )
    };
    // The write half goes with the outbox, which may be sending deferred
    // replies while this task reads.
    let (reader, writer) = stream.into_split();
    let outbox = Rc::new(Outbox {
        writer,
        buf: RefCell::new(BytesMut::new()),
        stuck: Cell::new(false),
        waker: Cell::new(None),
    });
    let mut conn = Conn {
        shared: shared.clone(),
        client: client.clone(),
        rx,
        watermark,
        outbox,
        deferred_lsn: 0,
        parser: RequestParser::new(max_bulk),
        rbuf: BytesMut::with_capacity(READ_ROOM),
        wbuf: BytesMut::with_capacity(16 * 1024),
        reader,
    };
    if let Err(e) = conn.run().await {
        tracing::debug!("client {peer} closed: {e}");
    }
    let mut ex = shared.ex.borrow_mut();
    ex.unregister_client(&mut client.borrow_mut());
}

struct Conn {
    shared: Rc<Shared>,
    client: Rc<RefCell<Client>>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    watermark: Watermark,
    /// The socket's write half, and the replies left with the [`Release`]
    /// to be sent after the AOF write covering them (only with a
    /// [`Watermark::Local`]).
    outbox: Rc<Outbox>,
    /// The LSN the outbox's replies wait for.
    deferred_lsn: u64,
    parser: RequestParser,
    rbuf: BytesMut,
    wbuf: BytesMut,
    reader: OwnedReadHalf,
}

/// A connection's replies waiting in the [`Release`] for their write.
/// Sent without blocking by whoever moves the watermark; what does not fit
/// in the socket is left for the connection, which is woken for it.
struct Outbox {
    writer: OwnedWriteHalf,
    buf: RefCell<BytesMut>,
    /// Set when a send could not finish: the connection sends the rest.
    stuck: Cell<bool>,
    /// The connection's task while it reads with replies in the outbox.
    waker: Cell<Option<std::task::Waker>>,
}

impl Deferred for Outbox {
    fn send(&self) -> u64 {
        let mut buf = self.buf.borrow_mut();
        let mut sent = 0;
        while !buf.is_empty() {
            match self.writer.try_write(&buf) {
                Ok(n) => {
                    buf.advance(n);
                    sent += n as u64;
                }
                // A full socket or an error: the connection's own write
                // waits for room or reports the error.
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            self.stuck.set(true);
            if let Some(w) = self.waker.take() {
                w.wake();
            }
        }
        sent
    }
}

/// Resolves when the outbox holds replies its sender could not finish.
fn stuck(outbox: &Outbox) -> impl std::future::Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| {
        if outbox.stuck.get() {
            return std::task::Poll::Ready(());
        }
        outbox.waker.set(Some(cx.waker().clone()));
        std::task::Poll::Pending
    })
}

async fn write_all(stream: &OwnedWriteHalf, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.writable().await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What a connection's replies wait for.
enum Watermark {
    /// Persistence that never holds replies back.
    Open,
    /// The sink's watermark on the event-loop thread (the AOF sink).
    Local(Rc<Release>),
    /// A sink that only publishes a channel (test sinks).
    Channel(watch::Receiver<u64>),
}

impl Watermark {
    fn of(d: &dyn Durability) -> Watermark {
        match (d.release(), d.watermark()) {
            (Some(r), _) => Watermark::Local(r),
            (None, Some(rx)) => Watermark::Channel(rx),
            (None, None) => Watermark::Open,
        }
    }
}

/// Why a connection ends.
#[derive(Debug, thiserror::Error)]
enum ConnEnd {
    #[error("peer closed")]
    Eof,
    #[error("closed by the server")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Conn {
    async fn run(&mut self) -> Result<(), ConnEnd> {
        loop {
            // Once the commands read are done with, their bytes are no
            // longer shared and this moves what is left of the input (a
            // partial command, usually nothing) to the buffer's start
            // instead of allocating.
            self.rbuf.reserve(READ_ROOM);
            // The socket first: on the request path the executor has
            // nothing queued, and polling the channel first would cost a
            // pop and a waker registration per request.
            tokio::select! {
                biased;
                n = self.reader.read_buf(&mut self.rbuf) => {
                    if n? == 0 {
                        return Err(ConnEnd::Eof);
                    }
                    self.process_input().await?;
                    // A client that keeps its socket readable would never
                    // let the other branch run: deliver what the executor
                    // queued meanwhile (an atomic load when nothing is).
                    while !self.rx.is_empty() {
                        let msg = self.rx.recv().await;
                        let lsn = self.on_message(msg)?;
                        self.write_out(lsn).await?;
                    }
                }
                msg = self.rx.recv() => {
                    let lsn = self.on_message(msg)?;
                    self.write_out(lsn).await?;
                }
                // Only a send can set it, and only while replies wait.
                _ = stuck(&self.outbox), if !self.outbox.buf.borrow().is_empty() => {
                    self.settle().await?
                }
            }
        }
    }

    fn proto(&self) -> u8 {
        self.client.borrow().resp
    }

    /// Handles a message from the executor while not blocked; returns the
    /// LSN the reply must wait for.
    fn on_message(&mut self, msg: Option<Outgoing>) -> Result<u64, ConnEnd> {
        match msg {
            Some(Outgoing::Push(r)) => {
                let proto = self.proto();
                encode(&r, proto, &mut self.wbuf);
                Ok(0)
            }
            Some(Outgoing::Reply(r, lsn)) => {
                let proto = self.proto();
                encode(&r, proto, &mut self.wbuf);
                Ok(lsn)
            }
            Some(Outgoing::Close) | None => Err(ConnEnd::Closed),
        }
    }

    /// Parses and runs every complete command in the read buffer.
    async fn process_input(&mut self) -> Result<(), ConnEnd> {
        let mut max_lsn = 0;
        // Once per read, not per command: a clock read is not free. Renewed
        // after every wait, so no command sees a stale time.
        let mut clock = BatchClock::now();
        self.client.borrow_mut().last_interaction = clock.started();
        let max_us = self.shared.ex.borrow().config.busy_poll_us;
        self.shared.busy_poll.on_read(clock.started(), max_us);
        let mut first = true;
        loop {
            let limit = self.shared.ex.borrow().config.client_query_buffer_limit as usize;
            if self.rbuf.len() > limit {
                tracing::warn!("closing client that reached max query buffer length");
                return Err(ConnEnd::Closed);
            }
            let args = match self.parser.parse(&mut self.rbuf) {
                Ok(Some(args)) => {
                    // Input left after the first command is a pipelined
                    // batch: warm its keys. Without pipelining (the common
                    // case) there is nothing left and nothing to scan.
                    if first && !self.rbuf.is_empty() {
                        self.warm_keyspace();
                    }
                    first = false;
                    args
                }
                Ok(None) => break,
                Err(e) => {
                    let proto = self.proto();
                    encode(&Reply::Error(format!("ERR {e}")), proto, &mut self.wbuf);
                    self.write_out(max_lsn).await?;
                    return Err(ConnEnd::Closed);
                }
            };
            let (reply, lsn, close, shutdown) = {
                let mut ex = self.shared.ex.borrow_mut();
                let mut c = self.client.borrow_mut();
                ex.request_frame = self.parser.take_frame();
                let (reply, lsn) = ex.execute_at(&mut c, &args, &mut clock);
                ex.request_frame = None;
                (reply, lsn, c.close_after_reply, ex.shutdown.is_some())
            };
            max_lsn = max_lsn.max(lsn);
            self.take_pending_pushes();
            if reply == Reply::Blocked {
                self.write_out(max_lsn).await?;
                let (r, lsn) = self.wait_unblocked().await?;
                let proto = self.proto();
                encode(&r, proto, &mut self.wbuf);
                max_lsn = max_lsn.max(lsn);
                clock = BatchClock::now();
            } else {
                let proto = self.proto();
                encode(&reply, proto, &mut self.wbuf);
            }
            if shutdown {
                self.shared.shutdown.notify_one();
            }
            if close {
                self.write_out(max_lsn).await?;
                return Err(ConnEnd::Closed);
            }
            if self.wbuf.len() >= FLUSH_AT {
                self.write_out(max_lsn).await?;
                clock = BatchClock::now();
            }
        }
        self.shared.ex.borrow_mut().durability.flush();
        self.write_or_defer(max_lsn).await
    }

    /// Before the rest of a pipelined batch runs, looks its keys up in one
    /// tight loop so their cache misses overlap (see [`crate::prefetch`]).
    fn warm_keyspace(&self) {
        let mut keys: [&[u8]; prefetch::MAX_KEYS] = [&[]; prefetch::MAX_KEYS];
        let mut targets = [prefetch::Target::default(); prefetch::MAX_KEYS];
        let mut n = 0;
        let mut members = 0;
        for t in prefetch::targets(&self.rbuf) {
            keys[n] = t.key;
            targets[n] = t;
            members += t.member.is_some() as usize;
            n += 1;
        }
        // One command gains nothing: its lookup would miss either way.
        if n < 2 {
            return;
        }
        let ex = self.shared.ex.borrow();
        if let Some(db) = ex.ks.dbs.get(self.client.borrow().db) {
            prefetch::warm(db, &keys[..n]);
            if members >= 2 {
                prefetch::warm_members(db, &targets[..n]);
            }
        }
    }

    /// Encodes pushes the client's own command produced for it.
    fn take_pending_pushes(&mut self) {
        let mut c = self.client.borrow_mut();
        if c.pending_pushes.is_empty() {
            return;
        }
        let proto = c.resp;
        for p in c.pending_pushes.drain(..) {
            encode(&p, proto, &mut self.wbuf);
        }
    }

    /// Waits while the client is blocked: for the executor to serve it, for
    /// the timeout, or for the peer to go away. Input that arrives meanwhile
    /// is kept for after the block, as Redis does.
    async fn wait_unblocked(&mut self) -> Result<(Reply, u64), ConnEnd> {
        let deadline = self
            .client
            .borrow()
            .blocked
            .as_ref()
            .and_then(|b| b.deadline)
            .map(tokio::time::Instant::from_std);
        loop {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Outgoing::Reply(r, lsn)) => return Ok((r, lsn)),
                    Some(Outgoing::Push(r)) => {
                        let proto = self.proto();
                        encode(&r, proto, &mut self.wbuf);
                        self.write_out(0).await?;
                    }
                    Some(Outgoing::Close) | None => return Err(ConnEnd::Closed),
                },
                _ = sleep => {
                    let mut ex = self.shared.ex.borrow_mut();
                    let r = ex.unblock_on_timeout(&mut self.client.borrow_mut());
                    let lsn = ex.lsn;
                    if let Some(r) = r {
                        return Ok((r, lsn));
                    }
                    // Served just before the timeout: the reply is queued.
                }
                n = self.reader.read_buf(&mut self.rbuf) => {
                    if n? == 0 {
                        return Err(ConnEnd::Eof);
                    }
                }
            }
        }
    }

    /// Waits until the durability watermark covers `lsn`, then writes every
    /// pending reply.
    async fn write_out(&mut self, lsn: u64) -> Result<(), ConnEnd> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        // Replies go out in order: deferred ones first.
        if !self.outbox.buf.borrow().is_empty() {
            self.settle().await?;
        }
        match &mut self.watermark {
            Watermark::Open => {}
            Watermark::Local(r) => {
                if !r.covers(lsn) {
                    // The records may still sit in the sink's batch buffer
                    // (a mid-batch flush of replies, a reply to a served
                    // blocked client): hand them to the writer before
                    // waiting. With AOF off this releases them at once.
                    self.shared.ex.borrow_mut().durability.flush();
                    if r.wait(lsn).await.is_err() {
                        // The writer is gone: the write can never be
                        // acknowledged.
                        return Err(ConnEnd::Closed);
                    }
                }
            }
            Watermark::Channel(wm) => {
                if *wm.borrow() < lsn {
                    self.shared.ex.borrow_mut().durability.flush();
                }
                while *wm.borrow_and_update() < lsn {
                    if wm.changed().await.is_err() {
                        return Err(ConnEnd::Closed);
                    }
                }
            }
        }
        let n = self.wbuf.len() as u64;
        // One try first, outside an awaited future: the socket almost
        // always takes the whole reply.
        let done = match self.outbox.writer.try_write(&self.wbuf) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e.into()),
        };
        if done < self.wbuf.len() {
            write_all(&self.outbox.writer, &self.wbuf[done..]).await?;
        }
        self.wbuf.clear();
        self.shared.ex.borrow_mut().stats.net_output_bytes += n;
        Ok(())
    }

    /// At the end of a batch: when the replies must wait for the AOF write,
    /// leaves them in the outbox for the [`Release`] to send after that
    /// write and goes back to reading, so the connection is not woken just
    /// to send them. Otherwise as [`Conn::write_out`].
    async fn write_or_defer(&mut self, lsn: u64) -> Result<(), ConnEnd> {
        if let Watermark::Local(r) = &self.watermark {
            let ob = &self.outbox;
            if !self.wbuf.is_empty() && !r.covers(lsn) && ob.buf.borrow().is_empty() {
                std::mem::swap(&mut self.wbuf, &mut *ob.buf.borrow_mut());
                self.deferred_lsn = lsn;
                let d: Rc<dyn Deferred> = ob.clone();
                r.clone().defer(lsn, d);
                return Ok(());
            }
        }
        self.write_out(lsn).await
    }

    /// Waits until the outbox's replies are sent: by the [`Release`] once
    /// the watermark covers them, or here if that send could not finish.
    async fn settle(&mut self) -> Result<(), ConnEnd> {
        let ob = self.outbox.clone();
        if ob.buf.borrow().is_empty() {
            return Ok(());
        }
        if let Watermark::Local(r) = &self.watermark {
            if !r.covers(self.deferred_lsn) {
                self.shared.ex.borrow_mut().durability.flush();
                if r.wait(self.deferred_lsn).await.is_err() {
                    return Err(ConnEnd::Closed);
                }
            }
        }
        // Covered, so the release tried to send it: what is left did not fit.
        let rest = std::mem::take(&mut *ob.buf.borrow_mut());
        ob.stuck.set(false);
        if !rest.is_empty() {
            write_all(&self.outbox.writer, &rest).await?;
            self.shared.ex.borrow_mut().stats.net_output_bytes += rest.len() as u64;
        }
        Ok(())
    }
}
