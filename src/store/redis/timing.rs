//! The timings the store works with, derived from its [`RedisConfig`], and the bound put
//! on every Redis call: a frozen Redis is detected, never waited on.

use std::time::Duration;

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
