//! The pub/sub registry: who listens to which channel and pattern.

use crate::client::{Client, Outgoing};
use crate::resp::Reply;
use crate::util::glob_match;
use bytes::Bytes;
use hashbrown::HashMap;

#[derive(Default)]
pub struct PubSub {
    /// Channel -> subscribed client ids, in subscription order.
    channels: HashMap<Bytes, Vec<u64>>,
    /// Pattern -> subscribed client ids, in subscription order.
    patterns: HashMap<Bytes, Vec<u64>>,
}

impl PubSub {
    pub fn subscribe(&mut self, client: &mut Client, channel: Bytes) -> bool {
        if !client.channels.insert(channel.clone()) {
            return false;
        }
        self.channels.entry(channel).or_default().push(client.id);
        true
    }

    pub fn unsubscribe(&mut self, client: &mut Client, channel: &Bytes) -> bool {
        if !client.channels.remove(channel) {
            return false;
        }
        remove_id(&mut self.channels, channel, client.id);
        true
    }

    pub fn psubscribe(&mut self, client: &mut Client, pattern: Bytes) -> bool {
        if !client.patterns.insert(pattern.clone()) {
            return false;
        }
        self.patterns.entry(pattern).or_default().push(client.id);
        true
    }

    pub fn punsubscribe(&mut self, client: &mut Client, pattern: &Bytes) -> bool {
        if !client.patterns.remove(pattern) {
            return false;
        }
        remove_id(&mut self.patterns, pattern, client.id);
        true
    }

    /// Drops every subscription of a client (on disconnect or RESET).
    pub fn forget(&mut self, client: &mut Client) {
        for ch in client.channels.drain() {
            remove_id(&mut self.channels, &ch, client.id);
        }
        for p in client.patterns.drain() {
            remove_id(&mut self.patterns, &p, client.id);
        }
    }

    /// Channels with at least one subscriber, optionally matching a pattern.
    pub fn active_channels(&self, pattern: Option<&[u8]>) -> Vec<Bytes> {
        self.channels
            .keys()
            .filter(|c| pattern.map(|p| glob_match(p, c, false)).unwrap_or(true))
            .cloned()
            .collect()
    }

    pub fn subscribers(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map(Vec::len).unwrap_or(0)
    }

    pub fn pattern_count(&self) -> usize {
        self.patterns.len()
    }

    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The deliveries a PUBLISH makes: (client id, message), channel
    /// subscribers first, then pattern subscribers.
    pub fn deliveries(&self, channel: &Bytes, payload: &Bytes) -> Vec<(u64, Reply)> {
        let mut out = Vec::new();
        if let Some(ids) = self.channels.get(channel) {
            for &id in ids {
                out.push((
                    id,
                    Reply::Push(vec![
                        Reply::bulk(b"message"),
                        Reply::Bulk(channel.clone()),
                        Reply::Bulk(payload.clone()),
                    ]),
                ));
            }
        }
        for (pattern, ids) in &self.patterns {
            if !glob_match(pattern, channel, false) {
                continue;
            }
            for &id in ids {
                out.push((
                    id,
                    Reply::Push(vec![
                        Reply::bulk(b"pmessage"),
                        Reply::Bulk(pattern.clone()),
                        Reply::Bulk(channel.clone()),
                        Reply::Bulk(payload.clone()),
                    ]),
                ));
            }
        }
        out
    }
}

fn remove_id(map: &mut HashMap<Bytes, Vec<u64>>, key: &Bytes, id: u64) {
    if let Some(ids) = map.get_mut(key) {
        ids.retain(|&i| i != id);
        if ids.is_empty() {
            map.remove(key);
        }
    }
}

/// Sends a message to a client other than the one executing.
pub fn send(client: &Client, msg: Reply) {
    let _ = client.tx.send(Outgoing::Push(msg));
}
