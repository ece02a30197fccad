//! The local mirror and how fresh it is: the state shared by the store's handles and its
//! feed task.
//!
//! Checks read the mirror and [`Shared::age`] only: an in-memory lookup and an atomic
//! load, no I/O and no allocation. The feed task writes to the mirror and calls
//! [`Shared::mark_synced`] each time it knows the mirror holds everything Redis holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::entry::Entry;
use crate::store::memory::MemoryStore;

/// The mirror and when it was last known to be current.
pub(super) struct Shared {
    /// Every revocation known to this instance; entries expire by themselves.
    pub(super) mirror: MemoryStore,
    epoch: Instant,
    /// When the mirror was last known to hold everything in Redis (µs after `epoch`).
    synced_at: AtomicU64,
}

impl Shared {
    /// An empty mirror, never synced (its age grows from now).
    pub(super) fn new() -> Self {
        Self {
            mirror: MemoryStore::new(),
            epoch: Instant::now(),
            synced_at: AtomicU64::new(0),
        }
    }

    /// Records that the mirror holds everything Redis held a moment ago. Never moves
    /// the mark backwards.
    pub(super) fn mark_synced(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.synced_at.fetch_max(now, Ordering::Release);
    }

    /// How long ago the mirror was last known to be current.
    pub(super) fn age(&self) -> Duration {
        let synced = Duration::from_micros(self.synced_at.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(synced)
    }

    /// Applies one feed entry (applying it again changes nothing).
    pub(super) fn apply(&self, entry: &Entry<'_>) {
        match entry {
            Entry::Token(token) => self.mirror.insert_token(token),
            Entry::Cutoff(cutoff) => self.mirror.insert_cutoff(cutoff),
        }
    }
}
