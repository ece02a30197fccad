//! Redis Cluster: which node holds the store's slot, asked again each time a connection
//! is opened.
//!
//! Every key of a store in cluster mode shares one hash tag (see `keys.rs`), so they
//! all live in one slot, on one primary at a time. The store needs no cluster client:
//! each of its connections (the feed's, the sweep's, the writer's) goes to the node that
//! holds that slot, found by asking the configured seed nodes (then the nodes they
//! named) for `CLUSTER SLOTS`, and checked with `ROLE` to be a master. Like Sentinel's,
//! the answer is asked again on every reconnection, so a failover (the dead primary's
//! connections fail) and a reshard (the old owner answers `MOVED`) are followed without a
//! restart. A `MOVED` reply names the new owner, which the next connection tries first.
//! An `ASK` reply (the slot is being migrated and the key is already on the target) is
//! followed by the writer on a one-off connection to the target, with `ASKING`.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ::redis::aio::MultiplexedConnection;
use ::redis::{Client, ConnectionInfo, Value};

use super::error::{RedisStoreError, RedisStoreErrorKind};
use super::sentinel::{at_address, connect_master};
use super::timing::{self, Timing, bounded};

/// How many nodes learnt from the cluster's map are remembered beside the seeds.
const MAX_LEARNT: usize = 64;

/// A Redis Cluster and the slot of one store.
pub(super) struct Cluster {
    /// `(host, port)` of each configured seed node.
    seeds: Vec<(String, u16)>,
    /// The other nodes the last map named (asked after the seeds).
    learnt: Mutex<Vec<(String, u16)>>,
    /// The credentials and TLS settings of every node; the address is replaced.
    node: ConnectionInfo,
    /// The store's slot.
    slot: u16,
    /// Where the last `MOVED` pointed: the next connection tries it first.
    moved_to: Mutex<Option<(String, u16)>>,
    /// The node asked first: the last one that answered.
    first: AtomicUsize,
}

impl Cluster {
    /// The cluster reached through `seeds`, for the keys of `slot`.
    pub(super) fn new(seeds: Vec<(String, u16)>, node: ConnectionInfo, slot: u16) -> Self {
        Self {
            seeds,
            learnt: Mutex::new(Vec::new()),
            node,
            slot,
            moved_to: Mutex::new(None),
            first: AtomicUsize::new(0),
        }
    }

    /// Opens a connection to the primary that holds the slot.
    pub(super) async fn connect(
        &self,
        timing: &Timing,
    ) -> Result<MultiplexedConnection, RedisStoreError> {
        let moved_to = self.moved_to.lock().ok().and_then(|mut m| m.take());
        if let Some((host, port)) = moved_to
            && let Ok(conn) = self.open(host, port, timing).await
        {
            return Ok(conn);
        }
        let (host, port) = self.resolve(timing).await?;
        self.open(host, port, timing).await
    }

    /// Opens a connection to the node at `host:port` and checks that it is a master.
    pub(super) async fn open(
        &self,
        host: String,
        port: u16,
        timing: &Timing,
    ) -> Result<MultiplexedConnection, RedisStoreError> {
        connect_master(
            &self.node,
            host,
            port,
            timing,
            "the node that holds the slot is not a master (yet)",
        )
        .await
    }

    /// Notes where a `MOVED` reply in `error` points, for the next connection.
    pub(super) fn redirected(&self, error: &RedisStoreError) {
        if let Some((host, port)) = error.moved_to()
            && let Ok(mut moved_to) = self.moved_to.lock()
        {
            *moved_to = Some((host, port));
        }
    }

    /// Asks each known node in turn (the last one that answered first) which node holds
    /// the slot; each attempt is bounded by the connect and command timeouts.
    async fn resolve(&self, timing: &Timing) -> Result<(String, u16), RedisStoreError> {
        let mut nodes = self.seeds.clone();
        if let Ok(learnt) = self.learnt.lock() {
            nodes.extend(learnt.iter().filter(|n| !self.seeds.contains(n)).cloned());
        }
        let n = nodes.len();
        let start = self.first.load(Ordering::Relaxed) % n.max(1);
        let mut last_error = None;
        for i in 0..n {
            let index = (start + i) % n;
            let (host, port) = &nodes[index];
            match self.ask(host, *port, timing).await {
                Ok(map) => {
                    if index < self.seeds.len() {
                        self.first.store(index, Ordering::Relaxed);
                    }
                    self.learn(&map.nodes);
                    match map.owner {
                        Some(owner) => return Ok(owner),
                        None => {
                            last_error = Some(RedisStoreError::with_source(
                                RedisStoreErrorKind::Connection,
                                ::redis::RedisError::from((
                                    ::redis::ErrorKind::Io,
                                    "no node of the cluster holds the store's slot",
                                )),
                            ));
                        }
                    }
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| RedisStoreError::new(RedisStoreErrorKind::Connection)))
    }

    /// Remembers the nodes a map named, so that they can be asked when every seed is
    /// down.
    fn learn(&self, nodes: &[(String, u16)]) {
        if let Ok(mut learnt) = self.learnt.lock() {
            for node in nodes {
                if !learnt.contains(node) && !self.seeds.contains(node) {
                    if learnt.len() >= MAX_LEARNT {
                        learnt.remove(0);
                    }
                    learnt.push(node.clone());
                }
            }
        }
    }

    /// One node's `CLUSTER SLOTS`.
    async fn ask(&self, host: &str, port: u16, timing: &Timing) -> Result<Map, RedisStoreError> {
        let client = Client::open(at_address(&self.node, host.to_owned(), port))
            .map_err(RedisStoreError::config)?;
        let mut conn = timing::connect(&client, timing).await?;
        let reply: Value = bounded(
            timing.command,
            ::redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut conn),
        )
        .await?;
        parse_slots(reply, self.slot, host).ok_or_else(super::reply::unexpected)
    }
}

/// What one node's `CLUSTER SLOTS` says.
#[derive(Debug, PartialEq, Eq)]
struct Map {
    /// The primary of the slot, if any node holds it.
    owner: Option<(String, u16)>,
    /// Every node named (primaries and replicas).
    nodes: Vec<(String, u16)>,
}

/// Reads `CLUSTER SLOTS` (`[[start, end, [host, port, id, ...], replicas...], ...]`):
/// who holds `slot`, and every node named. An empty host, or `?`, means the node that
/// answered (`asked`). `None` for a reply of another shape.
fn parse_slots(reply: Value, slot: u16, asked: &str) -> Option<Map> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let endpoint = |v: &Value| -> Option<(String, u16)> {
        let Value::Array(parts) = v else {
            return None;
        };
        let host = match parts.first()? {
            Value::BulkString(b) => std::str::from_utf8(b).ok()?.to_owned(),
            Value::SimpleString(s) => s.clone(),
            Value::Nil => String::new(),
            _ => return None,
        };
        let host = if host.is_empty() || host == "?" {
            asked.to_owned()
        } else {
            host
        };
        let port = u16::try_from(int(parts.get(1)?)?).ok()?;
        Some((host, port))
    };
    let mut map = Map {
        owner: None,
        nodes: Vec::new(),
    };
    for range in ranges {
        let Value::Array(parts) = range else {
            return None;
        };
        let start = int(parts.first()?)?;
        let end = int(parts.get(1)?)?;
        let mut endpoints = parts.iter().skip(2).filter_map(endpoint);
        if let Some(primary) = endpoints.next() {
            if (start..=end).contains(&i64::from(slot)) {
                map.owner = Some(primary.clone());
            }
            for node in std::iter::once(primary).chain(endpoints) {
                if !map.nodes.contains(&node) {
                    map.nodes.push(node);
                }
            }
        }
    }
    Some(map)
}

/// Whether a `ROLE` reply says master.
pub(super) fn is_master(role: &Value) -> bool {
    match role {
        Value::Array(parts) => parts.first().is_some_and(|r| {
            matches!(r, Value::BulkString(b) if b == b"master")
                || matches!(r, Value::SimpleString(s) if s == "master")
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![bulk(host), Value::Int(port), bulk("0123abcd")])
    }

    #[test]
    fn the_slot_owner_is_read_from_cluster_slots() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
                node("10.0.0.4", 7003),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(10922),
                node("", 7001),
                node("10.0.0.5", 7004),
            ]),
        ]);
        let map = parse_slots(reply.clone(), 6000, "seed").unwrap();
        assert_eq!(map.owner, Some(("seed".to_owned(), 7001)));
        assert_eq!(map.nodes.len(), 4);
        let map = parse_slots(reply.clone(), 0, "seed").unwrap();
        assert_eq!(map.owner, Some(("10.0.0.1".to_owned(), 7000)));
        let map = parse_slots(reply, 16000, "seed").unwrap();
        assert_eq!(map.owner, None, "an uncovered slot has no owner");
        assert_eq!(parse_slots(Value::Int(1), 0, "seed"), None);
        assert_eq!(
            parse_slots(Value::Array(vec![Value::Int(1)]), 0, "seed"),
            None
        );
    }
}
