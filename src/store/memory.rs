//! The embedded in-process store.
//!
//! # Layout
//!
//! Revoked tokens are grouped by their `exp` second: one moka entry per second holds a
//! compact set of 64-bit keys (a keyed hash of issuer and `jti`) for the tokens that
//! expire in it, and the entry's time-to-live is the latest `keep_until` of its tokens.
//! Every token in a group is kept exactly as long as the group, and tokens of one group
//! share their `keep_until` whenever they were revoked with one leeway (the usual case:
//! `keep_until = exp + leeway + 1`). A revoked token costs about 10–20 bytes instead of
//! the ~350 of a moka entry of its own, and a million of them fit in ~20 MiB.
//!
//! A check knows the token's `exp`, so it looks at one group and one set: no scan. The
//! groups are also reachable through a plain index (`exp` → group) that moka's eviction
//! listener prunes, so a check that finds nothing never enters moka (whose reads record
//! an access and read the clock); only a key found in a set asks moka whether its group
//! is still live, which keeps expiry exact.
//!
//! Subject cutoffs (logout everywhere) are rarer and keep one moka entry each.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::future::Ready;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::sync::Cache;

use super::{Check, RevocationStatus, RevocationStore, RevokedToken, SubjectCutoff};
use crate::{TokenInfo, clock};

/// Longest time an entry is kept, whatever it asks for (moka's timer wheel has a limit).
const MAX_KEEP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

fn remaining(until: SystemTime) -> Duration {
    until
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .min(MAX_KEEP)
}

/// Entries that say themselves when they go.
trait Until {
    fn until(&self) -> SystemTime;
}

/// moka's per-entry time-to-live: until the entry's own `until`, recomputed on update.
struct UntilExpiry;

impl<V: Until> Expiry<u64, V> for UntilExpiry {
    fn expire_after_create(&self, _: &u64, value: &V, _: Instant) -> Option<Duration> {
        Some(remaining(value.until()))
    }

    fn expire_after_update(
        &self,
        _: &u64,
        value: &V,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(value.until()))
    }
}

/// A subject cutoff: the stamp, and when it goes.
#[derive(Clone, Copy, Debug)]
struct Cutoff {
    until: SystemTime,
    cutoff: u64,
}

impl Until for Cutoff {
    fn until(&self) -> SystemTime {
        self.until
    }
}

/// The keys are already uniformly distributed keyed hashes: the set uses them as they
/// are instead of hashing them again.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; fold anything else.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The revoked tokens that expire in one second.
struct Group {
    /// Unix seconds: the latest `keep_until` of the group's tokens.
    until: AtomicU64,
    keys: RwLock<HashSet<u64, BuildHasherDefault<Identity>>>,
}

impl Until for Arc<Group> {
    fn until(&self) -> SystemTime {
        clock::system_time(self.until.load(Ordering::Acquire))
    }
}

impl Group {
    fn contains(&self, key: u64) -> bool {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
    }
}

/// Hashes (issuer, id) into a 64-bit key with a per-process random SipHash key.
///
/// A fixed-size key makes a lookup allocation-free and an entry small. A collision can
/// only make a token look revoked (fail closed), never accepted; it needs two tokens
/// with the same `exp` second among 2^32 revocations of that second.
#[derive(Clone)]
struct KeyHasher(RandomState);

impl KeyHasher {
    fn new() -> Self {
        Self(RandomState::new())
    }

    fn key(&self, issuer: Option<&str>, id: &str) -> u64 {
        let mut h = self.0.build_hasher();
        match issuer {
            // The 0xff terminator keeps ("ab", "c") apart from ("a", "bc"): 0xff never
            // occurs in UTF-8.
            Some(iss) => {
                h.write_u8(1);
                h.write(iss.as_bytes());
                h.write_u8(0xff);
            }
            None => h.write_u8(0),
        }
        h.write(id.as_bytes());
        h.finish()
    }
}

/// Mixes a `u64` with one multiplication (Fibonacci hashing): `exp` seconds are
/// consecutive integers, which would cluster as they are.
#[derive(Default)]
struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// `exp` second → its group, as moka holds it.
type Index = RwLock<HashMap<u64, Arc<Group>, BuildHasherDefault<Mix>>>;

struct Inner {
    /// Set before the first denylist entry is written: until then checks skip the
    /// lookup. Never reset (a stale `true` only costs a lookup).
    any_tokens: AtomicBool,
    /// The same for subject cutoffs.
    any_cutoffs: AtomicBool,
    /// Revoked tokens, grouped by `exp` second: moka owns their lifetime.
    tokens: Cache<u64, Arc<Group>>,
    /// The same groups for lookups; pruned when moka expires a group.
    index: Arc<Index>,
    subjects: Cache<u64, Cutoff>,
    token_keys: KeyHasher,
    subject_keys: KeyHasher,
}

/// The embedded revocation store: revoked `jti`s and logout-everywhere cutoffs in this
/// process, in moka caches whose entries each have their own time-to-live.
///
/// Entries are never evicted for capacity, only when they expire: a denylist entry when
/// its token could no longer pass verification, a cutoff when every token it revokes has
/// expired. Memory therefore grows with the number of revocations made within one token
/// lifetime, and shrinks as they expire: about 10–20 bytes per revoked token (tokens are
/// grouped by their `exp` second, see the module source), and a few hundred bytes per
/// subject cutoff.
///
/// Cloning is cheap and clones share the same entries. Revocations live only in this
/// process: several server instances need a shared store (feature `redis`).
///
/// `check` answers synchronously ([`Check::Ready`]), so it costs no allocation and no
/// await on the request path; revoking never fails.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("expiry_groups", &self.inner.tokens.entry_count())
            .field("subject_cutoffs", &self.inner.subjects.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let index = Arc::new(Index::default());
        let pruned = Arc::clone(&index);
        Self {
            inner: Arc::new(Inner {
                any_tokens: AtomicBool::new(false),
                any_cutoffs: AtomicBool::new(false),
                tokens: Cache::builder()
                    .expire_after(UntilExpiry)
                    .eviction_listener(move |exp: Arc<u64>, group: Arc<Group>, cause| {
                        if !cause.was_evicted() {
                            return; // replaced by itself on upsert: still live
                        }
                        let mut index = pruned.write().unwrap_or_else(PoisonError::into_inner);
                        // A newer group for the same second stays.
                        if index.get(&*exp).is_some_and(|g| Arc::ptr_eq(g, &group)) {
                            index.remove(&*exp);
                        }
                    })
                    .build_with_hasher(RandomState::new()),
                index,
                subjects: Cache::builder()
                    .expire_after(UntilExpiry)
                    .build_with_hasher(RandomState::new()),
                token_keys: KeyHasher::new(),
                subject_keys: KeyHasher::new(),
            }),
        }
    }

    /// How many revoked tokens and subject cutoffs are held. Expired entries are not
    /// counted; this walks every group, so it is for tests and metrics, not for the
    /// request path.
    pub fn len(&self) -> (u64, u64) {
        self.inner.tokens.run_pending_tasks();
        self.inner.subjects.run_pending_tasks();
        let tokens = self
            .inner
            .tokens
            .iter()
            .map(|(_, group)| {
                group
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len() as u64
            })
            .sum();
        (tokens, self.inner.subjects.entry_count())
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// The answer for `token`, from memory.
    pub(crate) fn status(&self, token: &TokenInfo) -> RevocationStatus {
        let inner = &*self.inner;
        if inner.any_tokens.load(Ordering::Acquire) {
            let exp = token.expires_at();
            let found = inner
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&exp)
                .is_some_and(|group| {
                    group.contains(inner.token_keys.key(token.issuer(), token.jti()))
                });
            // Found: revoked if its group has not expired (moka decides, to the instant).
            if found && inner.tokens.contains_key(&exp) {
                return RevocationStatus::Revoked;
            }
        }
        if inner.any_cutoffs.load(Ordering::Acquire)
            && let Some(entry) = inner
                .subjects
                .get(&inner.subject_keys.key(token.issuer(), token.subject()))
            && token.issue_stamp() <= entry.cutoff
        {
            return RevocationStatus::Revoked;
        }
        RevocationStatus::Active
    }

    /// Records a denylist entry; one already past its time is not stored.
    pub(crate) fn insert_token(&self, token: &RevokedToken<'_>) {
        let until = token.keep_until();
        if clock::system_time(until) <= SystemTime::now() {
            return;
        }
        let inner = &*self.inner;
        let key = inner.token_keys.key(token.issuer(), token.jti());
        inner.any_tokens.store(true, Ordering::Release);
        // The upsert (serialized per group by moka) extends the group's life if needed
        // and makes moka recompute its expiry; the key goes in once the group is live.
        let group = inner
            .tokens
            .entry(token.expires_at())
            .and_upsert_with(|old| match old {
                Some(entry) => {
                    let group = entry.into_value();
                    group.until.fetch_max(until, Ordering::AcqRel);
                    group
                }
                None => Arc::new(Group {
                    until: AtomicU64::new(until),
                    keys: RwLock::default(),
                }),
            })
            .into_value();
        {
            let mut index = inner.index.write().unwrap_or_else(PoisonError::into_inner);
            match index.get(&token.expires_at()) {
                Some(current) if Arc::ptr_eq(current, &group) => {}
                // New, or a new group after the old one expired.
                _ => {
                    index.insert(token.expires_at(), Arc::clone(&group));
                }
            }
        }
        group
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
    }

    /// Records a cutoff, keeping the later one (and the later expiry) atomically per
    /// subject.
    pub(crate) fn insert_cutoff(&self, cutoff: &SubjectCutoff<'_>) {
        let until = cutoff.keep_until_time();
        if until <= SystemTime::now() {
            return;
        }
        clock::observe(cutoff.cutoff_micros());
        let inner = &*self.inner;
        inner.any_cutoffs.store(true, Ordering::Release);
        let key = inner.subject_keys.key(cutoff.issuer(), cutoff.subject());
        inner.subjects.entry(key).and_upsert_with(|old| {
            let new = Cutoff {
                until,
                cutoff: cutoff.cutoff_micros(),
            };
            match old.map(moka::Entry::into_value) {
                Some(old) => Cutoff {
                    until: old.until.max(new.until),
                    cutoff: old.cutoff.max(new.cutoff),
                },
                None => new,
            }
        });
    }
}

impl RevocationStore for MemoryStore {
    type Error = Infallible;
    type CheckFuture = Ready<Result<RevocationStatus, Infallible>>;

    fn check(&self, token: &TokenInfo) -> Check<Self::CheckFuture> {
        Check::Ready(Ok(self.status(token)))
    }

    async fn revoke(&self, token: &RevokedToken<'_>) -> Result<(), Infallible> {
        self.insert_token(token);
        Ok(())
    }

    async fn revoke_subject(&self, cutoff: &SubjectCutoff<'_>) -> Result<(), Infallible> {
        self.insert_cutoff(cutoff);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        clock::now_secs()
    }

    #[test]
    fn expired_groups_leave_the_index() {
        let store = MemoryStore::new();
        let n = now();
        for i in 0..50u64 {
            let jti = format!("j{i}");
            store.insert_token(&RevokedToken::new(None, &jti, n + i, n + 1));
        }
        assert_eq!(store.inner.index.read().unwrap().len(), 50);
        std::thread::sleep(Duration::from_millis(2_100));
        // Expired: invisible at once, and pruned from the index by moka's maintenance.
        let t = TokenInfo::new(None, "s", "j3", n, n + 3);
        assert_eq!(store.status(&t), RevocationStatus::Active);
        store.inner.tokens.run_pending_tasks();
        assert_eq!(store.inner.index.read().unwrap().len(), 0);
        assert_eq!(store.len(), (0, 0));
    }

    #[test]
    fn a_group_recreated_after_expiry_is_indexed_again() {
        let store = MemoryStore::new();
        let n = now();
        store.insert_token(&RevokedToken::new(None, "old", n + 600, n + 1));
        std::thread::sleep(Duration::from_millis(2_100));
        store.insert_token(&RevokedToken::new(None, "new", n + 600, n + 661));
        store.inner.tokens.run_pending_tasks();
        let t = |jti: &str| TokenInfo::new(None, "s", jti, n, n + 600);
        assert_eq!(store.status(&t("new")), RevocationStatus::Revoked);
        assert_eq!(store.status(&t("old")), RevocationStatus::Active);
    }
}
