//! The sweep: a background task of its own that removes expired entries from Redis.
//!
//! Expired entries are already ignored by every reader (each mirror expires its own, and
//! a load skips them); the sweep only frees Redis's memory. Every instance runs it once
//! a second, on its own connection, apart from the feed: a mass expiry (hundreds of
//! thousands of entries kept until the same second, after a mass logout, say) takes
//! Redis seconds to remove, and none of that time may delay the feed that keeps the
//! mirror fresh. Each script call removes a bounded batch, on Redis's clock, so other
//! clients are served in between.
//!
//! Failures are not fatal and not retried in a hurry: a lost connection is reopened at
//! the next tick; a Redis that refuses writes (out of memory) is asked again at the next
//! tick, on the same connection, except a replica (`READONLY`: a failover demoted it)
//! or a cluster node that no longer holds the slot (`MOVED`), which is left for a new
//! connection to the primary (see `sentinel.rs`).

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use tokio::time::MissedTickBehavior;

use super::error::{RedisStoreError, RedisStoreErrorKind};
use super::keys::Keys;
use super::scripts;
use super::sentinel::Primary;
use super::timing::{Timing, bounded};

/// How often each instance sweeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// How many expired entries of each kind one script call removes at most.
const SWEEP_LIMIT: usize = 1_000;

/// The background sweeper of one store.
pub(super) struct Sweeper {
    primary: Arc<Primary>,
    keys: Arc<Keys>,
    timing: Timing,
}

impl Sweeper {
    /// A sweeper of `keys`; nothing runs until [`run`](Self::run).
    pub(super) fn new(primary: Arc<Primary>, keys: Arc<Keys>, timing: Timing) -> Self {
        Self {
            primary,
            keys,
            timing,
        }
    }

    /// Opens the sweeper's connection.
    pub(super) async fn connect(&self) -> Result<MultiplexedConnection, RedisStoreError> {
        self.primary.connect(&self.timing).await
    }

    /// Sweeps now and then every interval, forever. Dropping the future stops it.
    pub(super) async fn run(self, mut conn: Option<MultiplexedConnection>) {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        // After a long sweep, the next one starts a full interval later, not at once.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            ticks.tick().await;
            let swept = match conn.take() {
                Some(c) => Ok(c),
                None => self.connect().await,
            };
            let swept = match swept {
                Ok(mut c) => match sweep(&mut c, &self.keys, &self.timing).await {
                    Ok(()) => {
                        conn = Some(c);
                        Ok(())
                    }
                    Err(e) => {
                        // Lost, timed out (a reply may still be on its way) or garbled:
                        // a new connection next time. A refusal: the same one, unless
                        // the node is no longer the primary.
                        if e.kind() == RedisStoreErrorKind::Server
                            && !e.is_read_only()
                            && !e.is_redirect()
                        {
                            conn = Some(c);
                        } else {
                            self.primary.failed(&e);
                        }
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            };
            match swept {
                Ok(()) if failing => {
                    failing = false;
                    info_event!("revocation sweep working again");
                }
                Ok(()) => {}
                Err(e) => report(&mut failing, &e),
            }
        }
    }
}

/// Reports a failed sweep: at `warn` for the first of a streak, at `debug` after.
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn report(failing: &mut bool, error: &RedisStoreError) {
    if std::mem::replace(failing, true) {
        debug_event!(kind = ?error.kind(), error = %error, "revocation sweep still failing");
    } else {
        warn_event!(
            kind = ?error.kind(),
            error = %error,
            "revocation sweep failed; expired entries stay in Redis until it works"
        );
    }
}

/// Removes every expired entry, a bounded batch per script call.
async fn sweep(
    c: &mut MultiplexedConnection,
    keys: &Keys,
    timing: &Timing,
) -> Result<(), RedisStoreError> {
    loop {
        let removed: usize = bounded(
            timing.command,
            scripts::SWEEP
                .key(&keys.denylist)
                .key(&keys.cutoffs)
                .key(&keys.cutoff_expiry)
                .key(&keys.sessions)
                .key(&keys.session_expiry)
                .arg(SWEEP_LIMIT)
                .arg(crate::clock::now_secs())
                .arg(timing.clock_tolerance_secs)
                .invoke_async(c),
        )
        .await?;
        if removed < SWEEP_LIMIT {
            return Ok(());
        }
    }
}
