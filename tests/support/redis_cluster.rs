//! A real Redis Cluster for tests: `redis-server --cluster-enabled yes` processes on
//! loopback, joined with `redis-cli --cluster create` (three primaries, and a replica
//! of each with `replicas = 1`), with a short node timeout so that a failover takes
//! about a second. Never a mock.
//!
//! Each node is a [`RedisServer`] (restartable: its `nodes.conf` and data survive a
//! restart, so a killed primary comes back as a replica of the node promoted in its
//! place). The cluster bus port of each node is chosen free (`--cluster-port`), not the
//! data port plus 10000.

#![allow(dead_code, unreachable_pub)]

use std::process::Command;
use std::time::{Duration, Instant};

use super::redis_server::{RedisServer, Resp, query_port};

/// `cluster-node-timeout`: how long a primary may be unreachable before its replica is
/// promoted.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

fn free_port() -> u16 {
    super::ports::free_port()
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each, creates the cluster
    /// and waits until every node says `cluster_state:ok`. The nodes are never
    /// restarted, and their directories go with them (a cluster kept in a `static`).
    pub fn start(primaries: usize, replicas: usize) -> Self {
        Self::launch(primaries, replicas, false)
    }

    /// Like [`start`](Self::start), with nodes that tests may stop and restart on the
    /// same port, data and `nodes.conf`.
    pub fn start_restartable(primaries: usize, replicas: usize) -> Self {
        Self::launch(primaries, replicas, true)
    }

    fn launch(primaries: usize, replicas: usize, restartable: bool) -> Self {
        require_redis_cli();
        let timeout = NODE_TIMEOUT_MS.to_string();
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                let bus = free_port().to_string();
                let start = if restartable {
                    RedisServer::start_restartable_with
                } else {
                    RedisServer::start_with
                };
                start(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    &timeout,
                    "--cluster-port",
                    &bus,
                    // A replica is promoted however long its link was down.
                    "--cluster-replica-validity-factor",
                    "0",
                ])
            })
            .collect();
        let addrs: Vec<String> = nodes.iter().map(RedisServer::addr).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok(Duration::from_secs(20));
        cluster
    }

    /// The nodes' `host:port`, as seeds for the store.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::addr).collect()
    }

    /// Waits until every running node says `cluster_state:ok` and names, for every
    /// slot range, a primary that says it is one.
    pub fn wait_ok(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let ok = self.nodes.iter().filter(|n| n.is_running()).all(|n| {
                let info = query_port(n.port(), &["CLUSTER", "INFO"], Duration::from_secs(1))
                    .ok()
                    .and_then(|r| r.text())
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the cluster is not ok");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> u16 {
        let node = self.nodes.iter().find(|n| n.is_running()).expect("a node");
        match node.query(&["CLUSTER", "KEYSLOT", key]) {
            Resp::Int(n) => n as u16,
            other => panic!("CLUSTER KEYSLOT: {other:?}"),
        }
    }

    /// The index of the node that holds `slot`, as the node itself says: a running
    /// master whose own `CLUSTER SLOTS` names itself for the slot.
    pub fn owner(&self, slot: u16) -> Option<usize> {
        self.nodes.iter().position(|n| {
            n.is_running()
                && n.is_master()
                && owner_port(n, slot).is_some_and(|port| port == n.port())
        })
    }

    /// The indices of the replicas of the node at `index` (`CLUSTER REPLICAS`).
    pub fn replicas_of(&self, index: usize) -> Vec<usize> {
        let id = self.nodes[index].cluster_id();
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_running() && n.replica_of().as_deref() == Some(id.as_str()))
            .map(|(i, _)| i)
            .collect()
    }

    /// Runs `redis-cli --cluster <args>` against the first running node.
    pub fn cli(&self, args: &[&str]) -> String {
        let node = self.nodes.iter().find(|n| n.is_running()).expect("a node");
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .args(args.iter().map(|a| a.replace("{node}", &node.addr())))
            .output()
            .expect("run redis-cli --cluster");
        assert!(
            out.status.success(),
            "redis-cli --cluster {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The port of the primary `node` names for `slot` in its `CLUSTER SLOTS`.
fn owner_port(node: &RedisServer, slot: u16) -> Option<u16> {
    let reply = query_port(node.port(), &["CLUSTER", "SLOTS"], Duration::from_secs(1)).ok()?;
    for range in reply.items() {
        let items = range.items();
        let (Some(Resp::Int(start)), Some(Resp::Int(end))) = (items.first(), items.get(1)) else {
            continue;
        };
        if (*start..=*end).contains(&i64::from(slot)) {
            return match items.get(2)?.items().get(1)? {
                Resp::Int(port) => Some(*port as u16),
                _ => None,
            };
        }
    }
    None
}

fn require_redis_cli() {
    match Command::new("redis-cli").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "redis-cli is not installed, and the Redis Cluster tests need it to create a \
             cluster: install it with `apt-get install -y redis-tools` (Debian/Ubuntu) or \
             `brew install redis` (macOS), then run the tests again"
        ),
    }
}
