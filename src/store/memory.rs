//! The embedded in-process store.

use std::convert::Infallible;
use std::fmt;
use std::future::Ready;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::sync::Cache;

use super::{Check, RevocationStatus, RevocationStore, RevokedToken, SubjectCutoff};
use crate::{TokenInfo, clock};

/// Longest time an entry is kept, whatever it asks for (moka's timer wheel has a limit).
const MAX_KEEP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A denylist or cutoff entry: when it goes, and (for cutoffs) the cutoff stamp.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) until: SystemTime,
    pub(crate) cutoff: u64,
}

struct UntilExpiry;

fn remaining(until: SystemTime) -> Duration {
    until
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .min(MAX_KEEP)
}

impl Expiry<u64, Entry> for UntilExpiry {
    fn expire_after_create(&self, _: &u64, value: &Entry, _: Instant) -> Option<Duration> {
        Some(remaining(value.until))
    }

    fn expire_after_update(
        &self,
        _: &u64,
        value: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(value.until))
    }
}

/// Hashes (issuer, id) into a 64-bit key with a per-process random SipHash key.
///
/// A fixed-size key makes a lookup allocation-free and an entry small. A collision can
/// only make a token look revoked (fail closed), never accepted; with a million entries
/// its chance per check is about 2^-44.
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

struct Inner {
    /// Set before the first denylist entry is written: until then checks skip the
    /// lookup. Never reset (a stale `true` only costs a lookup).
    any_tokens: AtomicBool,
    /// The same for subject cutoffs.
    any_cutoffs: AtomicBool,
    tokens: Cache<u64, Entry>,
    subjects: Cache<u64, Entry>,
    token_keys: KeyHasher,
    subject_keys: KeyHasher,
}

/// The embedded revocation store: two moka caches in this process, one for revoked
/// `jti`s and one for logout-everywhere cutoffs, each entry with its own time-to-live.
///
/// Entries are never evicted for capacity, only when they expire: a denylist entry when
/// its token could no longer pass verification, a cutoff when every token it revokes has
/// expired. Memory therefore grows with the number of revocations made within one token
/// lifetime, and shrinks as they expire.
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
            .field("revoked_tokens", &self.inner.tokens.entry_count())
            .field("subject_cutoffs", &self.inner.subjects.entry_count())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let cache = || {
            Cache::builder()
                .expire_after(UntilExpiry)
                .build_with_hasher(RandomState::new())
        };
        Self {
            inner: Arc::new(Inner {
                any_tokens: AtomicBool::new(false),
                any_cutoffs: AtomicBool::new(false),
                tokens: cache(),
                subjects: cache(),
                token_keys: KeyHasher::new(),
                subject_keys: KeyHasher::new(),
            }),
        }
    }

    /// How many denylist entries and subject cutoffs are held, including expired ones not
    /// yet swept (moka sweeps them in the background of later operations).
    pub fn len(&self) -> (u64, u64) {
        self.inner.tokens.run_pending_tasks();
        self.inner.subjects.run_pending_tasks();
        (
            self.inner.tokens.entry_count(),
            self.inner.subjects.entry_count(),
        )
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// The answer for `token`, from memory.
    pub(crate) fn status(&self, token: &TokenInfo) -> RevocationStatus {
        let inner = &*self.inner;
        if inner.any_tokens.load(Ordering::Acquire)
            && inner
                .tokens
                .contains_key(&inner.token_keys.key(token.issuer(), token.jti()))
        {
            return RevocationStatus::Revoked;
        }
        if inner.any_cutoffs.load(Ordering::Acquire) {
            let sub = inner.subject_keys.key(token.issuer(), token.subject());
            if let Some(entry) = inner.subjects.get(&sub)
                && token.issue_stamp() <= entry.cutoff
            {
                return RevocationStatus::Revoked;
            }
        }
        RevocationStatus::Active
    }

    /// Records a denylist entry; one already past its time is not stored.
    pub(crate) fn insert_token(&self, token: &RevokedToken<'_>) {
        let until = token.keep_until_time();
        if until <= SystemTime::now() {
            return;
        }
        let key = self.inner.token_keys.key(token.issuer(), token.jti());
        self.inner.any_tokens.store(true, Ordering::Release);
        self.inner.tokens.entry(key).and_upsert_with(|old| {
            let until = old.map_or(until, |e| e.into_value().until.max(until));
            Entry { until, cutoff: 0 }
        });
    }

    /// Records a cutoff, keeping the later one (and the later expiry) atomically per
    /// subject.
    pub(crate) fn insert_cutoff(&self, cutoff: &SubjectCutoff<'_>) {
        let until = cutoff.keep_until_time();
        if until <= SystemTime::now() {
            return;
        }
        clock::observe(cutoff.cutoff_micros());
        self.inner.any_cutoffs.store(true, Ordering::Release);
        let key = self
            .inner
            .subject_keys
            .key(cutoff.issuer(), cutoff.subject());
        self.inner.subjects.entry(key).and_upsert_with(|old| {
            let new = Entry {
                until,
                cutoff: cutoff.cutoff_micros(),
            };
            match old.map(moka::Entry::into_value) {
                Some(old) => Entry {
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
