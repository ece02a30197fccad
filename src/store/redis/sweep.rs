//! Removing expired entries from Redis.
//!
//! Expired entries are already ignored by every reader (the mirror expires its own, and
//! a load skips nothing that matters by reading them); the sweep only frees Redis's
//! memory. Each script call removes a bounded batch, on Redis's clock.

use ::redis::aio::MultiplexedConnection;

use super::error::RedisStoreError;
use super::keys::Keys;
use super::scripts;
use super::timing::{Timing, bounded};

/// How many expired entries of each kind one script call removes at most (keeps each
/// call short, so other clients are served in between).
const SWEEP_LIMIT: usize = 1_000;

/// Removes every expired entry, a bounded batch per script call; returns how many.
pub(super) async fn sweep(
    c: &mut MultiplexedConnection,
    keys: &Keys,
    timing: &Timing,
) -> Result<usize, RedisStoreError> {
    let mut total = 0;
    loop {
        let removed: usize = bounded(
            timing.command,
            scripts::SWEEP
                .key(&keys.denylist)
                .key(&keys.cutoffs)
                .key(&keys.cutoff_expiry)
                .arg(SWEEP_LIMIT)
                .invoke_async(c),
        )
        .await?;
        total += removed;
        if removed < SWEEP_LIMIT {
            return Ok(total);
        }
    }
}
