//! Per-connection state the executor needs: selected db, protocol, auth,
//! transaction queue, watched keys, subscriptions, blocking state.

use crate::resp::Reply;
use bytes::Bytes;
use std::collections::HashSet;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// What the executor sends a connection outside the request/reply flow.
#[derive(Debug)]
pub enum Outgoing {
    /// The reply to a blocked command, with the LSN it must wait for.
    Reply(Reply, u64),
    /// A pub/sub message (a push in RESP3).
    Push(Reply),
    /// CLIENT KILL or shutdown: close the connection.
    Close,
}

/// A client blocked in BLPOP and friends.
#[derive(Debug, Clone)]
pub struct BlockState {
    pub db: usize,
    pub keys: Vec<Bytes>,
    /// The command to run again when one of the keys is ready.
    pub args: Vec<Bytes>,
    /// What to reply on timeout (a null of the command's kind).
    pub timeout_reply: Reply,
    /// None = block forever.
    pub deadline: Option<Instant>,
}

#[derive(Debug)]
pub struct Client {
    pub id: u64,
    pub addr: String,
    pub laddr: String,
    pub name: Option<Bytes>,
    pub db: usize,
    /// RESP protocol version, 2 or 3.
    pub resp: u8,
    pub authenticated: bool,
    /// Whether the peer is on a loopback address (protected mode, DEBUG local).
    pub is_local: bool,
    /// Commands queued after MULTI.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A command failed to queue: EXEC answers EXECABORT.
    pub multi_error: bool,
    /// Keys under WATCH, as (db, key).
    pub watched: Vec<(usize, Bytes)>,
    /// A watched key changed: EXEC answers null.
    pub watch_dirty: bool,
    pub channels: HashSet<Bytes>,
    pub patterns: HashSet<Bytes>,
    pub blocked: Option<BlockState>,
    pub tx: UnboundedSender<Outgoing>,
    pub created: Instant,
    pub last_interaction: Instant,
    pub last_cmd: &'static str,
    /// Set by CLIENT KILL / QUIT: the connection closes after its reply.
    pub close_after_reply: bool,
    /// Bytes waiting in the query buffer (for CLIENT LIST qbuf).
    pub qbuf: usize,
    /// Pushes for this client produced by its own command (a RESP3 client
    /// publishing to a channel it listens to); sent before the reply.
    pub pending_pushes: Vec<Reply>,
}

impl Client {
    pub fn new(
        id: u64,
        addr: String,
        laddr: String,
        is_local: bool,
        tx: UnboundedSender<Outgoing>,
    ) -> Client {
        let now = Instant::now();
        Client {
            id,
            addr,
            laddr,
            name: None,
            db: 0,
            resp: 2,
            authenticated: false,
            is_local,
            multi: None,
            multi_error: false,
            watched: Vec::new(),
            watch_dirty: false,
            channels: HashSet::new(),
            patterns: HashSet::new(),
            blocked: None,
            tx,
            created: now,
            last_interaction: now,
            last_cmd: "NULL",
            close_after_reply: false,
            qbuf: 0,
            pending_pushes: Vec::new(),
        }
    }

    /// Number of channel and pattern subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// In RESP2, a subscribed client may only run the pub/sub commands.
    pub fn in_pubsub_mode(&self) -> bool {
        self.resp < 3 && self.subscription_count() > 0
    }

    /// One line of CLIENT LIST / CLIENT INFO, in Redis's field order.
    pub fn info_line(&self) -> String {
        let now = Instant::now();
        let mut flags = String::new();
        if self.multi.is_some() {
            flags.push('x');
        }
        if self.blocked.is_some() {
            flags.push('b');
        }
        if self.subscription_count() > 0 {
            flags.push('P');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub=0 multi={} qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=16384 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp={}",
            self.id,
            self.addr,
            self.laddr,
            self.name
                .as_ref()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
            now.duration_since(self.created).as_secs(),
            now.duration_since(self.last_interaction).as_secs(),
            flags,
            self.db,
            self.channels.len(),
            self.patterns.len(),
            self.multi.as_ref().map(|m| m.len() as i64).unwrap_or(-1),
            self.qbuf,
            self.last_cmd,
            self.resp,
        )
    }
}
