//! The timings the store works with, derived from its [`RedisConfig`], and the bound put
//! on every Redis call (connecting included): a frozen Redis is detected, never waited
//! on.

use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{AsyncConnectionConfig, Client};

use super::RedisConfig;
use super::error::RedisStoreError;

/// The timings the background tasks and the writers work with.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// Bounds every command (and a revoke, retries included).
    pub(super) command: Duration,
    /// Bounds each read of a (re)load, which may carry tens of thousands of entries.
    pub(super) load: Duration,
    /// Bounds one connection attempt.
    pub(super) connect: Duration,
    /// How long a feed read blocks in Redis when nothing happens: the heartbeat.
    pub(super) block: Duration,
    /// The longest delay between two reconnection attempts of the feed.
    pub(super) max_backoff: Duration,
    /// How long entries stay in the feed, in milliseconds (an argument of the scripts).
    pub(super) retention_ms: u64,
    /// How long checks are answered from a mirror not confirmed current.
    pub(super) max_staleness: Duration,
    /// How far the clocks of Redis and of the instances may disagree (seconds): entries
    /// stay in Redis that much past their `keep_until`.
    pub(super) clock_tolerance_secs: u64,
    /// How many replicas must confirm each write (`WAIT`); 0: none asked.
    pub(super) min_replicas: u32,
    /// How long a write waits for those replicas (`WAIT`'s timeout).
    pub(super) replica_wait: Duration,
}

impl Timing {
    /// The configured timings, each clamped to a day (so that sums cannot overflow; the
    /// feed's retention to a year), the reconnect delay to at least 10 ms.
    pub(super) fn new(config: &RedisConfig) -> Self {
        let day = Duration::from_secs(24 * 3600);
        let command = config.command_timeout.min(day);
        Self {
            command,
            load: command.max(Duration::from_secs(5)),
            connect: config.connect_timeout.min(day),
            block: (config.max_staleness / 5)
                .clamp(Duration::from_millis(10), Duration::from_secs(1)),
            max_backoff: config
                .max_reconnect_delay
                .clamp(Duration::from_millis(10), day),
            retention_ms: u64::try_from(config.feed_retention.min(365 * day).as_millis())
                .unwrap_or(u64::MAX),
            max_staleness: config.max_staleness,
            clock_tolerance_secs: config.clock_tolerance.min(day).as_secs(),
            min_replicas: config.min_replicas,
            replica_wait: config.replica_wait_timeout.min(day),
        }
    }
}

/// Runs `fut` with a time limit, mapping both failures to a store error.
pub(super) async fn bounded<T>(
    limit: Duration,
    fut: impl Future<Output = ::redis::RedisResult<T>>,
) -> Result<T, RedisStoreError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(RedisStoreError::from),
        Err(_) => Err(RedisStoreError::timeout()),
    }
}

impl Timing {
    /// The longest a revoke may take: the command timeout, plus the wait for replicas
    /// when some are required.
    pub(super) fn write_limit(&self) -> Duration {
        if self.min_replicas == 0 {
            self.command
        } else {
            self.command + self.replica_wait
        }
    }
}

/// Opens a connection for a background task. No response timeout at the client level:
/// a feed read blocks on purpose; every call is bounded by its caller instead.
pub(super) async fn connect(
    client: &Client,
    timing: &Timing,
) -> Result<MultiplexedConnection, RedisStoreError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timing.connect))
        .set_response_timeout(None);
    bounded(
        timing.connect + timing.command,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
}
