//! The local mirror and how fresh it is: the state shared by the store's handles and its
//! feed task.
//!
//! Checks read the mirror and [`Shared::age`] only: an in-memory lookup and an atomic
//! load, no I/O and no allocation. The feed task writes to the mirror and calls
//! [`Shared::mark_synced`] each time it knows the mirror holds everything Redis holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::entry::Entry;
use crate::TokenInfo;
use crate::store::RevocationStatus;
use crate::store::memory::MemoryStore;

/// The mirror and when it was last known to be current.
pub(super) struct Shared {
    /// Every revocation known to this instance; entries expire by themselves. Private:
    /// the methods below are the only ways in, so the one O(n) walk ([`Shared::len`])
    /// is the one a test can watch.
    mirror: MemoryStore,
    epoch: Instant,
    /// When the mirror was last known to hold everything in Redis (µs after `epoch`).
    synced_at: AtomicU64,
    /// How many times [`Shared::len`] walked the mirror (tests assert what does not).
    #[cfg(test)]
    len_calls: AtomicU64,
}

impl Shared {
    /// An empty mirror, never synced (its age grows from now).
    pub(super) fn new() -> Self {
        Self {
            mirror: MemoryStore::new(),
            epoch: Instant::now(),
            synced_at: AtomicU64::new(0),
            #[cfg(test)]
            len_calls: AtomicU64::new(0),
        }
    }

    /// How many revoked tokens and subject cutoffs the mirror holds. Walks every
    /// revocation group: O(n), never on a check's path nor in `Debug`.
    pub(super) fn len(&self) -> (u64, u64) {
        #[cfg(test)]
        self.len_calls.fetch_add(1, Ordering::Relaxed);
        self.mirror.len()
    }

    /// How many times [`len`](Self::len) was called.
    #[cfg(test)]
    pub(super) fn len_calls(&self) -> u64 {
        self.len_calls.load(Ordering::Relaxed)
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

    /// A check's answer, from memory: no I/O, no allocation.
    #[inline]
    pub(super) fn status(&self, token: &TokenInfo) -> RevocationStatus {
        self.mirror.status(token)
    }

    /// Applies one revocation, from the feed, a load or this instance's own write
    /// (applying it again changes nothing).
    pub(super) fn apply(&self, entry: &Entry<'_>) {
        match entry {
            Entry::Token(token) => self.mirror.insert_token(token),
            Entry::Cutoff(cutoff) => self.mirror.insert_cutoff(cutoff),
        }
    }
}
