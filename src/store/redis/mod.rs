//! The Redis-backed store (feature `redis`): [`RedisStore`] and its [`RedisConfig`].
//!
//! Redis is the shared source of truth; every instance answers checks from a local
//! mirror kept current by a change feed. The design, the failure policy and the measured
//! results are stated once, in [REDIS.md]. Each file here documents its own part:
//!
//! - `mirror.rs`: the mirror and how fresh it is (all a check reads);
//! - `feed.rs`: the follower task that keeps the mirror current;
//! - `load.rs`: the full load from the sets, at start-up and on resync;
//! - `sweep.rs`: the task that removes expired entries from Redis;
//! - `sentinel.rs`: where the primary is (one address, Redis Sentinel's answer, or the
//!   cluster node that holds the store's slot, asked again on every reconnection, which
//!   is how a failover is followed);
//! - `cluster.rs`: finding that node in a Redis Cluster (`CLUSTER SLOTS`), and the
//!   redirections (`MOVED`, `ASK`) after a reshard or a failover;
//! - `writer.rs`: the write path, its connection, and the replicas' confirmation
//!   (`WAIT`);
//! - `scripts.rs`: the Lua scripts every write and sweep runs;
//! - `entry.rs`, `keys.rs`, `reply.rs`: the feed entries, the key names and member
//!   encoding, and the decoding of Redis's replies;
//! - `timing.rs`, `error.rs`: the timings and bounds of every call, and the error type.
//!
//! [REDIS.md]: https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/REDIS.md

mod cluster;
mod entry;
mod error;
mod feed;
mod keys;
mod load;
mod mirror;
mod reply;
mod scripts;
mod sentinel;
mod sweep;
mod timing;
mod writer;

use std::fmt;
use std::future::Ready;
use std::sync::Arc;
use std::time::Duration;

use ::redis::ScriptInvocation;

use self::entry::Entry;
pub use self::error::{RedisStoreError, RedisStoreErrorKind};
use self::feed::Feed;
use self::keys::Keys;
use self::mirror::Shared;
use self::sentinel::{Primary, Topology};
use self::sweep::Sweeper;
use self::timing::Timing;
use self::writer::Writer;
use super::refresh::{RefreshRecord, RefreshSession, RotateOutcome, Rotation, SessionStore};
use super::{
    Acceptance, Check, RevocationStatus, RevocationStore, RevokedSession, RevokedToken,
    SubjectCutoff,
};
use crate::{TokenInfo, clock};

/// [`RedisConfig::clock_tolerance`]'s default.
const DEFAULT_CLOCK_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// How to reach Redis and how the [`RedisStore`] behaves when it cannot.
///
/// ```
/// use std::time::Duration;
/// use tower_jwt_auth::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379")
///     .prefix("my-app:revocations:")
///     .command_timeout(Duration::from_millis(500))
///     .max_staleness(Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    url: String,
    prefix: String,
    command_timeout: Duration,
    connect_timeout: Duration,
    max_staleness: Duration,
    feed_retention: Duration,
    max_reconnect_delay: Duration,
    clock_tolerance: Duration,
    /// `(sentinels, master name)`, when the primary is found through Redis Sentinel.
    sentinel: Option<(Vec<String>, String)>,
    /// The seed nodes, when the store runs on a Redis Cluster.
    cluster: Option<Vec<String>>,
    min_replicas: u32,
    replica_wait_timeout: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisConfig")
            .field("url", &"<redacted>")
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_staleness", &self.max_staleness)
            .field("feed_retention", &self.feed_retention)
            .field("max_reconnect_delay", &self.max_reconnect_delay)
            .field("clock_tolerance", &self.clock_tolerance)
            .field("sentinel", &self.sentinel)
            .field("cluster", &self.cluster)
            .field("min_replicas", &self.min_replicas)
            .field("replica_wait_timeout", &self.replica_wait_timeout)
            .finish()
    }
}

impl RedisConfig {
    /// A configuration for the Redis server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// `rediss://` with TLS if the `redis` crate is built with a TLS feature, or
    /// `redis+unix:///path`), with every setting at its default.
    ///
    /// The URL is parsed by [`RedisStore::connect`].
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "tower-jwt-auth:".to_owned(),
            command_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(2),
            max_staleness: Duration::from_secs(5),
            feed_retention: Duration::from_secs(600),
            max_reconnect_delay: Duration::from_secs(1),
            clock_tolerance: DEFAULT_CLOCK_TOLERANCE,
            sentinel: None,
            cluster: None,
            min_replicas: 0,
            replica_wait_timeout: Duration::from_millis(500),
        }
    }

    /// A configuration that finds the primary through Redis Sentinel: `sentinels` are
    /// their `host:port` addresses (`[v6]:port` for IPv6), `master_name` the name they
    /// monitor the primary under (`sentinel monitor <name> ...`).
    ///
    /// The store asks the sentinels, one after the other, where the primary is each time
    /// it opens a connection, and uses the node only once it says it is a master
    /// (`ROLE`). Every connection is reopened after a failure, a write refused with
    /// `READONLY` included, so a failover is followed without a restart: the feed, the
    /// sweep and the writes move to the promoted replica. Combine with
    /// [`min_replicas`](Self::min_replicas) so that a logout reported done survives the
    /// primary's death.
    ///
    /// The sentinels are reached without a password; the data nodes' credentials,
    /// database and TLS come from [`node_url`](Self::node_url). The addresses are
    /// checked by [`RedisStore::connect`].
    ///
    /// ```
    /// use tower_jwt_auth::RedisConfig;
    ///
    /// let config = RedisConfig::sentinel(
    ///     ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"].map(String::from),
    ///     "revocations",
    /// )
    /// .min_replicas(1);
    /// ```
    pub fn sentinel(
        sentinels: impl IntoIterator<Item = String>,
        master_name: impl Into<String>,
    ) -> Self {
        let mut config = Self::new("redis://127.0.0.1/");
        config.sentinel = Some((sentinels.into_iter().collect(), master_name.into()));
        config
    }

    /// A configuration for a Redis Cluster: `nodes` are the `host:port` addresses
    /// (`[v6]:port` for IPv6) of some of its nodes, asked where the store's keys are.
    ///
    /// Every key of the store then carries one hash tag, so all of them live in one slot,
    /// on one primary (and its replicas): the [`prefix`](Self::prefix) is used as is when
    /// it holds a hash tag of its own (`{my-app}:`), and is otherwise wrapped in braces
    /// (the default prefix gives keys such as `{tower-jwt-auth:}denylist`). Instances
    /// that must see each other's revocations use the same prefix; a single server or
    /// Sentinel deployment keeps its key names, so moving one to a cluster means copying
    /// its keys to the new names (or choosing a prefix with a hash tag from the start).
    ///
    /// The store asks the nodes, one after the other, which node holds that slot each
    /// time it opens a connection (`CLUSTER SLOTS`), and uses the node only once it says
    /// it is a master (`ROLE`). Every connection is reopened after a failure, a reply
    /// `MOVED` (the slot was moved by a reshard, or its primary failed over) included,
    /// so the feed, the sweep and the writes follow the slot without a restart; a write
    /// answered `ASK` (the slot is being migrated) is sent to the node the slot is
    /// migrating to. Combine with [`min_replicas`](Self::min_replicas) so that a logout
    /// reported done survives the failover of the slot's primary. Whether the cluster is
    /// a self-hosted one or a managed service's cluster mode does not matter; the nodes
    /// must be reachable at the addresses the cluster announces.
    ///
    /// The data nodes' credentials and TLS come from [`node_url`](Self::node_url) (a
    /// cluster has no databases but 0). The addresses are checked by
    /// [`RedisStore::connect`].
    ///
    /// ```
    /// use tower_jwt_auth::RedisConfig;
    ///
    /// let config = RedisConfig::cluster(
    ///     ["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"].map(String::from),
    /// )
    /// .prefix("{my-app}:revocations:")
    /// .min_replicas(1);
    /// ```
    pub fn cluster(nodes: impl IntoIterator<Item = String>) -> Self {
        let mut config = Self::new("redis://127.0.0.1/");
        config.cluster = Some(nodes.into_iter().collect());
        config
    }

    /// With [`sentinel`](Self::sentinel) or [`cluster`](Self::cluster): the data nodes'
    /// credentials, database and scheme (`rediss://` for TLS), as a URL whose host and
    /// port are not used (the sentinels or the cluster give them), such as
    /// `redis://:password@primary/2`. Otherwise, this is the server's URL, as given to
    /// [`new`](Self::new).
    #[must_use]
    pub fn node_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// How many replicas must confirm a revocation before it is reported done (default
    /// 0: the primary's confirmation is enough). With `n > 0`, each write script is
    /// followed, in the same pipeline, by `WAIT n`; when fewer than `n` replicas confirm
    /// within [`replica_wait_timeout`](Self::replica_wait_timeout), the revoke returns
    /// [`RedisStoreErrorKind::NotReplicated`] (the logout answers 503). A revocation
    /// reported done is then on the primary and `n` replicas, so it survives a failover
    /// to any of them.
    ///
    /// With exactly `n` replicas, losing one makes every logout fail until it is back:
    /// run at least `n + 1`.
    #[must_use]
    pub fn min_replicas(mut self, n: u32) -> Self {
        self.min_replicas = n;
        self
    }

    /// How long a revocation waits for [`min_replicas`](Self::min_replicas) to confirm
    /// it (`WAIT`'s timeout; default 500 ms). A revoke then takes at most
    /// [`command_timeout`](Self::command_timeout) plus this.
    #[must_use]
    pub fn replica_wait_timeout(mut self, timeout: Duration) -> Self {
        self.replica_wait_timeout = timeout;
        self
    }

    /// The prefix of every key the store uses (default `tower-jwt-auth:`), so several
    /// applications can share one Redis. Instances that must see each other's
    /// revocations use the same prefix. With [`cluster`](Self::cluster), it is wrapped
    /// in braces unless it holds a hash tag already (see there).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest a revoke waits for Redis to confirm the write, including any wait for
    /// a reconnection (default 1 s); it then returns an error. Also bounds every command
    /// of the background task, except the reads of a (re)load, which may carry tens of
    /// thousands of entries each and get at least 5 s.
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The longest one connection attempt may take (default 2 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long checks keep being answered from the mirror after it was last confirmed
    /// up to date with Redis (default 5 s). Past it, checks fail closed (the layer
    /// answers 503) until the mirror has caught up again.
    ///
    /// This is how late a revocation made on another instance may be enforced here while
    /// the link is down; a longer window trades that for availability during a Redis
    /// outage.
    #[must_use]
    pub fn max_staleness(mut self, window: Duration) -> Self {
        self.max_staleness = window;
        self
    }

    /// How long entries stay in the change feed (default 10 minutes). An instance
    /// disconnected for less catches up from the feed; one disconnected for longer
    /// reloads everything from the sets (correct, but heavier).
    #[must_use]
    pub fn feed_retention(mut self, retention: Duration) -> Self {
        self.feed_retention = retention;
        self
    }

    /// The longest delay between two reconnection attempts (default 1 s); delays start
    /// at 50 ms and double, with jitter.
    #[must_use]
    pub fn max_reconnect_delay(mut self, delay: Duration) -> Self {
        self.max_reconnect_delay = delay;
        self
    }

    /// How far Redis's clock and the instances' may disagree (default 5 minutes, at
    /// most a day). Redis's key expiry and the sweep of expired entries run on clocks
    /// the instances do not control, so every entry stays in Redis this much longer
    /// than its `keep_until`, and the sweep removes an entry only once both Redis's
    /// clock and the sweeping instance's say so: an entry leaves Redis early only if
    /// both clocks run ahead by more than this.
    #[must_use]
    pub fn clock_tolerance(mut self, tolerance: Duration) -> Self {
        self.clock_tolerance = tolerance;
        self
    }
}

/// A [`RevocationStore`] shared through Redis by every instance of an application:
/// a logout on one instance is enforced by all of them, with no Redis round trip per
/// request.
///
/// Checks are answered synchronously ([`Check::Ready`]) from a local mirror that a
/// background task keeps current; [`connect`](Self::connect) loads every current
/// revocation before it returns. A revoke returns `Err` unless Redis confirmed it within
/// [`command_timeout`](RedisConfig::command_timeout) (and, with
/// [`min_replicas`](RedisConfig::min_replicas), that many replicas within
/// [`replica_wait_timeout`](RedisConfig::replica_wait_timeout)): never report such a
/// logout as done. With [`RedisConfig::sentinel`] or [`RedisConfig::cluster`], the store
/// follows a failover (and, on a cluster, a reshard) by itself.
/// Once the mirror has not been confirmed current for
/// [`max_staleness`](RedisConfig::max_staleness), checks fail closed
/// ([`RedisStoreErrorKind::Stale`], a 503 from the layer) until it has caught up.
///
/// Cloning is cheap; clones share the mirror, the connections and the background tasks,
/// which stop when the last clone is dropped. Requires a Tokio runtime and Redis 6.2 or
/// later. How it works, what happens in each failure, the Redis settings revocations
/// need to survive a restart, and the measured results:
/// [REDIS.md](https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/REDIS.md).
///
/// ```no_run
/// use tower_jwt_auth::{JwtAuthLayer, RedisConfig, RedisStore, VerificationKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect(
///     RedisConfig::new("redis://127.0.0.1:6379").prefix("my-app:revocations:"),
/// )
/// .await?;
/// let auth = JwtAuthLayer::builder(store)
///     .key(VerificationKey::hs256(b"an example secret of at least 32 bytes!")?)
///     .build()?;
/// # let _ = auth;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// What [`RedisStore::stats`] reports: the figures to export as gauges and counters.
///
/// The counters start at zero when the store connects and only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStoreStats {
    /// How long ago the mirror was last confirmed up to date with Redis
    /// ([`RedisStore::mirror_age`]); checks fail once it exceeds
    /// [`max_staleness`](RedisConfig::max_staleness). A gauge.
    pub mirror_age: Duration,
    /// Revoked tokens the mirror holds (expired ones not counted). A gauge.
    pub revoked_tokens: u64,
    /// Subject cutoffs ("log out everywhere") the mirror holds. A gauge.
    pub subject_cutoffs: u64,
    /// Ended login sessions the mirror holds. A gauge.
    pub ended_sessions: u64,
    /// Full reloads from Redis's sets after the start-up load, each because the feed
    /// could no longer be caught up from (entries trimmed or lost). A counter.
    pub resyncs: u64,
    /// Times the feed's connection was re-established after a failure. A counter.
    pub reconnects: u64,
    /// Feed entries applied to the mirror (revocations made on any instance, this one
    /// included). A counter.
    pub feed_entries: u64,
    /// For the last feed entry applied: the time from its append in Redis (its id's
    /// time, on Redis's clock) to its application here (this instance's clock), so it
    /// includes any difference between the two clocks; `None` before the first entry.
    pub feed_lag: Option<Duration>,
}

struct Inner {
    shared: Arc<Shared>,
    writer: Writer,
    keys: Arc<Keys>,
    timing: Timing,
    max_staleness: Duration,
    prefix: String,
    /// Dropped with the last handle, which stops the feed task.
    _feed_task: StopOnDrop,
    /// Dropped with the last handle, which stops the sweep task.
    _sweep_task: StopOnDrop,
}

/// Stops a background task when dropped.
struct StopOnDrop {
    /// Dropping the sender wakes the task's `select!`, which then ends.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Runs `task` in the background until the returned guard is dropped.
fn spawn_until_dropped(task: impl Future<Output = ()> + Send + 'static) -> StopOnDrop {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tokio::select! {
            _ = stopped => {}
            () = task => {}
        }
    });
    StopOnDrop { _stop: stop }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        Summary {
            prefix: &inner.prefix,
            command_timeout: inner.timing.command,
            max_staleness: inner.max_staleness,
            shared: &inner.shared,
        }
        .fmt(f)
    }
}

/// What a store's `Debug` shows: its settings and the mirror's age, each read in
/// constant time. Never the mirror's size ([`RedisStore::mirror_len`] walks every
/// revocation group) nor the URL (it may carry a password; the store does not keep it).
struct Summary<'a> {
    prefix: &'a str,
    command_timeout: Duration,
    max_staleness: Duration,
    shared: &'a Shared,
}

impl fmt::Debug for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("command_timeout", &self.command_timeout)
            .field("max_staleness", &self.max_staleness)
            .field("mirror_age", &self.shared.age())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to Redis, loads every current revocation into the local mirror, and
    /// starts following the change feed.
    ///
    /// Call it before serving requests: when it returns, checks see every revocation
    /// that Redis held.
    ///
    /// # Errors
    ///
    /// [`RedisStoreError`] when the URL or a setting is invalid (a zero timeout or
    /// window, a sentinel or cluster node address that is not `host:port`, with a
    /// cluster a prefix no hash tag can be made of, such as an empty one), Redis (or,
    /// with sentinels, a primary they name; with a cluster, the node that holds the
    /// store's slot) cannot be reached within
    /// [`connect_timeout`](RedisConfig::connect_timeout), or the load fails or times out.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisStoreError> {
        let zero = [
            config.command_timeout,
            config.connect_timeout,
            config.max_staleness,
            config.feed_retention,
        ]
        .contains(&Duration::ZERO)
            || (config.min_replicas > 0 && config.replica_wait_timeout.is_zero());
        if zero {
            return Err(RedisStoreError::new(RedisStoreErrorKind::Config));
        }
        let prefix = match &config.cluster {
            Some(_) => keys::cluster_prefix(&config.prefix).ok_or_else(|| {
                sentinel::config_error("no hash tag can be made of this prefix (empty?)")
            })?,
            None => config.prefix.clone(),
        };
        let keys = Arc::new(Keys::new(&prefix));
        let topology = match (&config.sentinel, &config.cluster) {
            (Some((sentinels, master)), _) => Topology::Sentinel(sentinels, master),
            (None, Some(nodes)) => Topology::Cluster(nodes, keys::key_slot(keys.feed.as_bytes())),
            (None, None) => Topology::Direct,
        };
        let primary = Arc::new(Primary::new(&config.url, topology)?);
        let timing = Timing::new(&config);
        let shared = Arc::new(Shared::new());

        let mut feed = Feed::new(
            Arc::clone(&shared),
            Arc::clone(&primary),
            Arc::clone(&keys),
            timing,
        );
        let sweeper = Sweeper::new(Arc::clone(&primary), Arc::clone(&keys), timing);
        let mut conn = feed.connect().await?;
        feed.load(&mut conn).await?;
        feed.catch_up(&mut conn).await?;

        let writer = Writer::new(primary.clone(), timing, primary.connect(&timing).await?);

        // Not fatal: the sweep only frees memory, and its task reconnects by itself.
        let sweep_conn = sweeper.connect().await.ok();
        let feed_task = spawn_until_dropped(feed.run(Some(conn)));
        let sweep_task = spawn_until_dropped(sweeper.run(sweep_conn));

        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                writer,
                keys,
                timing,
                max_staleness: config.max_staleness,
                prefix,
                _feed_task: feed_task,
                _sweep_task: sweep_task,
            }),
        })
    }

    /// How long ago the local mirror was last confirmed up to date with Redis. Checks
    /// fail once this exceeds [`max_staleness`](RedisConfig::max_staleness); a readiness
    /// probe can report it.
    pub fn mirror_age(&self) -> Duration {
        self.inner.shared.age()
    }

    /// How many denylist entries and subject cutoffs the local mirror holds (expired
    /// ones not counted).
    ///
    /// This walks every revocation group, so its cost grows with the mirror: call it
    /// for tests or an occasional metric, not per request (`Debug` does not call it).
    pub fn mirror_len(&self) -> (u64, u64) {
        self.inner.shared.len()
    }

    /// The numbers an operator watches, for a metrics exporter or a readiness probe:
    /// the mirror's age, the revocations it holds, resyncs, reconnections and the feed's
    /// lag.
    ///
    /// Counting the revocations walks every revocation group, like
    /// [`mirror_len`](Self::mirror_len) (about a millisecond per 100 000 groups; tokens
    /// that expire in the same second share one group): call it at a scrape interval,
    /// not per request.
    pub fn stats(&self) -> RedisStoreStats {
        let shared = &*self.inner.shared;
        let (revoked_tokens, subject_cutoffs) = shared.len();
        let counters = shared.counters();
        RedisStoreStats {
            mirror_age: shared.age(),
            revoked_tokens,
            subject_cutoffs,
            ended_sessions: shared.sessions_len(),
            resyncs: counters.resyncs,
            reconnects: counters.reconnects,
            feed_entries: counters.entries_applied,
            feed_lag: counters.feed_lag,
        }
    }

    /// Runs a write script within the command timeout (plus the wait for replicas, with
    /// [`RedisConfig::min_replicas`]); see `writer.rs`. Reports a failure.
    async fn write(&self, script: &ScriptInvocation<'_>) -> Result<(), RedisStoreError> {
        reported(self.inner.writer.write(script).await)
    }
}

impl RevocationStore for RedisStore {
    type Error = RedisStoreError;
    type CheckFuture = Ready<Result<RevocationStatus, RedisStoreError>>;

    fn check(&self, token: &TokenInfo) -> Check<Self::CheckFuture> {
        let inner = &*self.inner;
        if inner.shared.age() > inner.max_staleness {
            inner.shared.report_stale(inner.max_staleness);
            return Check::Ready(Err(RedisStoreError::new(RedisStoreErrorKind::Stale)));
        }
        Check::Ready(Ok(inner.shared.status(token)))
    }

    async fn revoke(&self, token: &RevokedToken<'_>) -> Result<(), RedisStoreError> {
        let inner = &*self.inner;
        // Kept at least as long as this instance's own layers need it.
        let token = inner.shared.widened_token(token);
        if token.keep_until() <= clock::now_secs() {
            // Could no longer pass verification: nothing to record.
            return Ok(());
        }
        self.write(&scripts::revoke_token(&inner.keys, &inner.timing, &token))
            .await?;
        inner.shared.apply(&Entry::Token(token));
        Ok(())
    }

    async fn revoke_subject(&self, cutoff: &SubjectCutoff<'_>) -> Result<(), RedisStoreError> {
        let inner = &*self.inner;
        let cutoff = inner.shared.widened_cutoff(cutoff);
        if cutoff.keep_until() <= clock::now_secs() {
            return Ok(());
        }
        reported(self.record_cutoff(&cutoff).await)?;
        inner.shared.apply(&Entry::Cutoff(cutoff));
        Ok(())
    }

    async fn revoke_session(&self, session: &RevokedSession<'_>) -> Result<(), RedisStoreError> {
        let inner = &*self.inner;
        let session = inner.shared.widened_session(session);
        if session.keep_until() <= clock::now_secs() {
            return Ok(());
        }
        self.write(&scripts::revoke_session(
            &inner.keys,
            &inner.timing,
            &session,
        ))
        .await?;
        inner.shared.apply(&Entry::Session(session));
        Ok(())
    }

    fn retain_for(&self, acceptance: &Acceptance) {
        self.inner.shared.retain_for(acceptance);
    }
}

impl SessionStore for RedisStore {
    async fn create_refresh(&self, record: &RefreshRecord<'_>) -> Result<(), RedisStoreError> {
        let inner = &*self.inner;
        let created = async {
            let deadline = inner.writer.deadline();
            let sample = inner
                .writer
                .read(
                    &scripts::subject_sessions(
                        &inner.keys,
                        record.issuer(),
                        record.subject(),
                        Some(scripts::CREATE_SAMPLE),
                    ),
                    deadline,
                )
                .await?;
            let sample =
                scripts::session_keys(&inner.keys, sample).ok_or_else(reply::unexpected)?;
            let script = scripts::create_refresh(&inner.keys, record, &sample);
            inner
                .writer
                .write_returning(&script, deadline)
                .await
                .map(drop)
        };
        reported(created.await)
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    async fn rotate_refresh(
        &self,
        rotation: &Rotation<'_>,
    ) -> Result<RotateOutcome, RedisStoreError> {
        let rotated = self.rotate(rotation).await;
        if let Err(e) = &rotated {
            warn_event!(
                kind = ?e.kind(),
                error = %e,
                "refresh-token rotation not recorded in Redis; reported as failed"
            );
        }
        rotated
    }
}

impl RedisStore {
    /// Records a subject cutoff: reads the subject's refresh sessions, then runs
    /// `REVOKE_SUBJECT` with them, again if a login added one in between; all within
    /// one write limit.
    async fn record_cutoff(&self, cutoff: &SubjectCutoff<'_>) -> Result<(), RedisStoreError> {
        let inner = &*self.inner;
        let deadline = inner.writer.deadline();
        loop {
            let read =
                scripts::subject_sessions(&inner.keys, cutoff.issuer(), cutoff.subject(), None);
            let sessions =
                scripts::session_keys(&inner.keys, inner.writer.read(&read, deadline).await?)
                    .ok_or_else(reply::unexpected)?;
            let script = scripts::revoke_subject(&inner.keys, &inner.timing, cutoff, &sessions);
            match inner.writer.write_returning(&script, deadline).await? {
                // The set changed since it was read: nothing was written.
                ::redis::Value::Int(0) => {}
                _ => return Ok(()),
            }
        }
    }

    /// Exchanges a refresh token: reads the presented token's session, then runs
    /// `ROTATE_REFRESH` with it, again with the keys the script names if they changed
    /// meanwhile; all within one write limit.
    async fn rotate(&self, rotation: &Rotation<'_>) -> Result<RotateOutcome, RedisStoreError> {
        let inner = &*self.inner;
        let deadline = inner.writer.deadline();
        let mut session = match inner
            .writer
            .read(&scripts::token_session(&inner.keys, rotation), deadline)
            .await?
        {
            ::redis::Value::Nil => return Ok(RotateOutcome::Invalid),
            ::redis::Value::BulkString(key) => key,
            _ => return Err(reply::unexpected()),
        };
        let mut current: Option<Vec<u8>> = None;
        loop {
            if !session.starts_with(inner.keys.refresh_session_prefix().as_bytes()) {
                // Not a session of this store: the record is not one it wrote.
                return Ok(RotateOutcome::Invalid);
            }
            let script =
                scripts::rotate_refresh(&inner.keys, rotation, &session, current.as_deref());
            let reply = inner.writer.write_returning(&script, deadline).await?;
            match named_key(&reply) {
                Some((b"session", key)) => session = key,
                Some((b"current", key)) if key.starts_with(inner.keys.refresh.as_bytes()) => {
                    current = Some(key);
                }
                Some(_) => return Err(reply::unexpected()),
                None => return rotate_outcome(reply).ok_or_else(reply::unexpected),
            }
        }
    }
}

/// Reports a revocation (or refresh-session write) that failed, and returns it as is.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn reported<T>(written: Result<T, RedisStoreError>) -> Result<T, RedisStoreError> {
    match &written {
        Err(e) if e.kind() == RedisStoreErrorKind::NotReplicated => {
            warn_event!(
                kind = ?e.kind(),
                error = %e,
                "revocation not confirmed by enough replicas; reported as failed"
            );
        }
        Err(e) => {
            warn_event!(
                kind = ?e.kind(),
                error = %e,
                "revocation not recorded in Redis; reported as failed"
            );
        }
        Ok(_) => {}
    }
    written
}

/// `ROTATE_REFRESH`'s `{'session', key}` and `{'current', key}` (the key to pass on the
/// next call); `None` for any other reply.
fn named_key(reply: &::redis::Value) -> Option<(&[u8], Vec<u8>)> {
    let ::redis::Value::Array(items) = reply else {
        return None;
    };
    let [::redis::Value::BulkString(what), rest @ ..] = items.as_slice() else {
        return None;
    };
    if what != b"session" && what != b"current" {
        return None;
    }
    match rest {
        [::redis::Value::BulkString(key)] => Some((what.as_slice(), key.clone())),
        _ => Some((b"".as_slice(), Vec::new())),
    }
}

/// Decodes `ROTATE_REFRESH`'s reply.
fn rotate_outcome(reply: ::redis::Value) -> Option<RotateOutcome> {
    let ::redis::Value::Array(items) = reply else {
        return None;
    };
    let text = |v: &::redis::Value| -> Option<String> {
        match v {
            ::redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
            ::redis::Value::SimpleString(s) => Some(s.clone()),
            ::redis::Value::Int(n) => Some(n.to_string()),
            _ => None,
        }
    };
    let fields: Vec<String> = items.iter().map(text).collect::<Option<_>>()?;
    let session = |f: &[String]| -> Option<RefreshSession> {
        let issuer = match f.first()?.as_str() {
            "-" => None,
            iss => Some(iss.strip_prefix('+')?.to_owned()),
        };
        Some(RefreshSession {
            issuer,
            subject: f.get(1)?.clone(),
            sid: f.get(2)?.clone(),
        })
    };
    match fields.first()?.as_str() {
        "rotated" if fields.len() == 5 => Some(RotateOutcome::Rotated {
            session: session(&fields[1..4])?,
            expires_at: fields[4].parse().ok()?,
        }),
        "reused" if fields.len() == 4 => Some(RotateOutcome::Reused {
            session: session(&fields[1..4])?,
        }),
        "revoked" => Some(RotateOutcome::Revoked),
        "invalid" => Some(RotateOutcome::Invalid),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RevokedToken;

    fn summary(shared: &Shared) -> String {
        let timing = Timing::new(&RedisConfig::new("redis://user:s3cret@localhost/"));
        let shown = format!(
            "{:?}",
            Summary {
                prefix: "p:",
                command_timeout: timing.command,
                max_staleness: Duration::from_secs(5),
                shared,
            }
        );
        // Everything but the mirror's age, which moves.
        shown.split_once("mirror_age: ").unwrap().0.to_owned()
    }

    #[test]
    fn debug_never_counts_the_mirror() {
        let empty = Shared::new();
        let big = Shared::new();
        let exp = crate::clock::now_secs() + 600;
        for i in 0..50_000 {
            let jti = format!("jti-{i}");
            big.apply(&Entry::Token(RevokedToken::new(
                None,
                &jti,
                exp + i % 7,
                exp + 60,
            )));
        }
        let shown = summary(&big);
        assert_eq!(shown, summary(&empty), "independent of the mirror's size");
        assert_eq!(
            shown,
            "RedisStore { prefix: \"p:\", command_timeout: 1s, max_staleness: 5s, "
        );
        assert_eq!(big.len_calls(), 0, "Debug walked the mirror");
        assert_eq!(big.len(), (50_000, 0));
        assert_eq!(
            big.len_calls(),
            1,
            "the count is the only walk, and is counted"
        );
    }
}
