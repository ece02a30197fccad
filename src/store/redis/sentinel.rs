//! How the store reaches the primary: one fixed address, the address Redis Sentinel
//! gives for a master name, or the node of a Redis Cluster that holds the store's slot
//! (`cluster.rs`), asked again each time a connection is opened.
//!
//! Every connection of the store (the feed's, the sweep's, the writer's) is opened
//! through [`Primary::connect`], and each of them is reopened after any failure. With
//! Sentinel, reopening means asking the sentinels again, so a failover is followed by
//! itself: the connections to a dead primary fail, a demoted one refuses writes
//! (`READONLY`) or closes them (Sentinel kills a reconfigured node's clients), and the
//! next connection goes to whatever node the sentinels now name. A sentinel's answer can
//! be stale (a failover in progress), so the node must also say it is a master (`ROLE`)
//! before it is used; otherwise the connection fails and is tried again with backoff.

use std::sync::atomic::{AtomicUsize, Ordering};

use ::redis::aio::MultiplexedConnection;
use ::redis::{Client, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Value};

use super::cluster::{Cluster, is_master};
use super::error::{RedisStoreError, RedisStoreErrorKind};
use super::timing::{self, Timing, bounded};

/// Where the primary is.
pub(super) enum Primary {
    /// Always at this address (`RedisConfig::new`).
    Direct(Client),
    /// Wherever the sentinels say (`RedisConfig::sentinel`).
    Sentinel(Sentinels),
    /// On the node of a Redis Cluster that holds the store's slot
    /// (`RedisConfig::cluster`).
    Cluster(Cluster),
}

/// How the primary is to be found, as configured.
pub(super) enum Topology<'a> {
    /// One server.
    Direct,
    /// Sentinels and the master name they watch.
    Sentinel(&'a [String], &'a str),
    /// Seed nodes of a cluster, and the store's slot.
    Cluster(&'a [String], u16),
}

/// A set of sentinels watching one master name.
pub(super) struct Sentinels {
    /// `(host, port)` of each sentinel.
    sentinels: Vec<(String, u16)>,
    master: String,
    /// The credentials, database and TLS settings of the data nodes; the address is
    /// replaced by the primary's.
    node: ConnectionInfo,
    /// The sentinel asked first: the last one that answered.
    first: AtomicUsize,
}

/// Parses `host:port` (`[v6]:port` for an IPv6 address).
pub(super) fn parse_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.trim().rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    if host.is_empty() || port == 0 || host.contains(['/', '@', ' ']) {
        return None;
    }
    Some((host.to_owned(), port))
}

/// `node`'s settings (credentials, database, TLS) at `host:port`.
pub(super) fn at_address(node: &ConnectionInfo, host: String, port: u16) -> ConnectionInfo {
    let addr = match node.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    node.clone().set_addr(addr)
}

/// The error of a node that is not (or no longer) a master.
/// Opens a connection to the node at `host:port` (with `node`'s credentials and TLS)
/// and checks with `ROLE` that it is a master; `not_yet` says which node it should have
/// been, when it is not.
pub(super) async fn connect_master(
    node: &ConnectionInfo,
    host: String,
    port: u16,
    timing: &Timing,
    not_yet: &'static str,
) -> Result<MultiplexedConnection, RedisStoreError> {
    let client = Client::open(at_address(node, host, port)).map_err(RedisStoreError::config)?;
    let mut conn = timing::connect(&client, timing).await?;
    let role: Value = bounded(timing.command, ::redis::cmd("ROLE").query_async(&mut conn)).await?;
    if !is_master(&role) {
        return Err(not_master(not_yet));
    }
    Ok(conn)
}

pub(super) fn not_master(what: &'static str) -> RedisStoreError {
    RedisStoreError::with_source(
        RedisStoreErrorKind::Connection,
        ::redis::RedisError::from((ErrorKind::Io, what)),
    )
}

/// Parses a list of `host:port` addresses; `None` if any is not one.
fn parse_addresses(addresses: &[String]) -> Option<Vec<(String, u16)>> {
    addresses.iter().map(|s| parse_host_port(s)).collect()
}

/// A configuration error with a static description (never the URL).
pub(super) fn config_error(what: &'static str) -> RedisStoreError {
    RedisStoreError::with_source(
        RedisStoreErrorKind::Config,
        ::redis::RedisError::from((ErrorKind::InvalidClientConfig, what)),
    )
}

impl Primary {
    /// The primary as configured: `url` alone, or `url`'s settings at the address the
    /// sentinels give, or at the cluster node that holds the slot.
    pub(super) fn new(url: &str, topology: Topology<'_>) -> Result<Self, RedisStoreError> {
        let (sentinels, master) = match topology {
            Topology::Direct => {
                return Ok(Self::Direct(
                    Client::open(url).map_err(RedisStoreError::config)?,
                ));
            }
            Topology::Cluster(seeds, slot) => {
                if seeds.is_empty() {
                    return Err(config_error("no cluster node address given"));
                }
                let seeds = parse_addresses(seeds)
                    .ok_or_else(|| config_error("a cluster node address is not host:port"))?;
                let node = tcp_node(url, "a Unix socket URL cannot be used with a cluster")?;
                if node.redis_settings().db() != 0 {
                    // A cluster node refuses `SELECT`: every connection would fail.
                    return Err(config_error("a cluster has no database but 0"));
                }
                return Ok(Self::Cluster(Cluster::new(seeds, node, slot)));
            }
            Topology::Sentinel(sentinels, master) => (sentinels, master),
        };
        if sentinels.is_empty() {
            return Err(config_error("no sentinel address given"));
        }
        if master.trim().is_empty() {
            return Err(config_error("the sentinels' master name is empty"));
        }
        let sentinels = parse_addresses(sentinels)
            .ok_or_else(|| config_error("a sentinel address is not host:port"))?;
        let node = tcp_node(url, "a Unix socket URL cannot be used with sentinels")?;
        Ok(Self::Sentinel(Sentinels {
            sentinels,
            master: master.to_owned(),
            node,
            first: AtomicUsize::new(0),
        }))
    }

    /// Opens a connection to the primary, for a background task or the writer (no
    /// response timeout at the client level: every call is bounded by its caller).
    /// With sentinels: asks them where it is, and checks that the node is a master.
    pub(super) async fn connect(
        &self,
        timing: &Timing,
    ) -> Result<MultiplexedConnection, RedisStoreError> {
        match self {
            Self::Direct(client) => timing::connect(client, timing).await,
            Self::Sentinel(sentinels) => sentinels.connect(timing).await,
            Self::Cluster(cluster) => cluster.connect(timing).await,
        }
    }

    /// Takes note of a failed call's error: with a cluster, a `MOVED` reply names the
    /// node the next connection tries first.
    pub(super) fn failed(&self, error: &RedisStoreError) {
        if let Self::Cluster(cluster) = self {
            cluster.redirected(error);
        }
    }

    /// With a cluster: a connection to the node an `ASK` reply named (a slot being
    /// migrated to it), checked to be a master. `None` without a cluster.
    pub(super) async fn connect_asked(
        &self,
        (host, port): (String, u16),
        timing: &Timing,
    ) -> Option<Result<MultiplexedConnection, RedisStoreError>> {
        match self {
            Self::Cluster(cluster) => Some(cluster.open(host, port, timing).await),
            _ => None,
        }
    }
}

/// The connection settings of `url`, which must not be a Unix socket (`refused` says
/// why).
fn tcp_node(url: &str, refused: &'static str) -> Result<ConnectionInfo, RedisStoreError> {
    let node = url
        .into_connection_info()
        .map_err(RedisStoreError::config)?;
    if matches!(node.addr(), ConnectionAddr::Unix(_)) {
        return Err(config_error(refused));
    }
    Ok(node)
}

impl Sentinels {
    async fn connect(&self, timing: &Timing) -> Result<MultiplexedConnection, RedisStoreError> {
        let (host, port) = self.resolve(timing).await?;
        connect_master(
            &self.node,
            host,
            port,
            timing,
            "the node the sentinels named is not a master (yet)",
        )
        .await
    }

    /// Asks each sentinel in turn (the last one that answered first) for the primary's
    /// address; each attempt is bounded by the connect and command timeouts.
    async fn resolve(&self, timing: &Timing) -> Result<(String, u16), RedisStoreError> {
        let n = self.sentinels.len();
        let start = self.first.load(Ordering::Relaxed) % n;
        let mut last_error = None;
        for i in 0..n {
            let index = (start + i) % n;
            match self.ask(index, timing).await {
                Ok(Some(addr)) => {
                    self.first.store(index, Ordering::Relaxed);
                    return Ok(addr);
                }
                Ok(None) => {
                    last_error = Some(RedisStoreError::with_source(
                        RedisStoreErrorKind::Connection,
                        ::redis::RedisError::from((
                            ErrorKind::MasterNameNotFoundBySentinel,
                            "a sentinel does not know the master name",
                        )),
                    ));
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| RedisStoreError::new(RedisStoreErrorKind::Connection)))
    }

    /// One sentinel's answer: the address, or `None` when it does not know the name.
    async fn ask(
        &self,
        index: usize,
        timing: &Timing,
    ) -> Result<Option<(String, u16)>, RedisStoreError> {
        let (host, port) = &self.sentinels[index];
        let client = Client::open(ConnectionAddr::Tcp(host.clone(), *port))
            .map_err(RedisStoreError::config)?;
        let mut conn = timing::connect(&client, timing).await?;
        let reply: Value = bounded(
            timing.command,
            ::redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async(&mut conn),
        )
        .await?;
        let Value::Array(parts) = reply else {
            return Ok(None);
        };
        let text = |v: &Value| match v {
            Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            Value::SimpleString(s) => Some(s.clone()),
            _ => None,
        };
        match (parts.first().and_then(text), parts.get(1).and_then(text)) {
            (Some(host), Some(port)) => match port.parse() {
                Ok(port) => Ok(Some((host, port))),
                Err(_) => Err(RedisStoreError::new(RedisStoreErrorKind::UnexpectedReply)),
            },
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port() {
        assert_eq!(
            parse_host_port("127.0.0.1:26379"),
            Some(("127.0.0.1".to_owned(), 26379))
        );
        assert_eq!(
            parse_host_port(" sentinel-1.internal:5000 "),
            Some(("sentinel-1.internal".to_owned(), 5000))
        );
        assert_eq!(
            parse_host_port("[::1]:26379"),
            Some(("::1".to_owned(), 26379))
        );
        for bad in [
            "",
            "host",
            ":26379",
            "host:",
            "host:0",
            "host:99999",
            "redis://h:1",
        ] {
            assert_eq!(parse_host_port(bad), None, "{bad:?}");
        }
    }
}
