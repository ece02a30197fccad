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
//! Subject cutoffs (logout everywhere) are rarer and keep one moka entry each, reachable
//! the same way through an index of their own.
//!
//! Refresh tokens ([`SessionStore`]) are off the request path: their sessions and token
//! records (by SHA-256 hash, never the token) sit in plain maps under one mutex, so a
//! rotation is atomic; expired records are swept once as many writes as there are
//! records have passed. Ending a session or a cutoff kills the refresh sessions it
//! covers at once (a cutoff finds them through a per-subject index).
//!
//! # Time
//!
//! Tokens are judged against the wall clock, so entries are too. An entry is due only
//! once the wall clock has passed the second it is needed until **and** as much time
//! has elapsed (on the monotonic clock) since it was recorded. moka's per-entry
//! time-to-live is the elapsed half; when it fires, the eviction listener drops the entry
//! from the index only if the wall clock agrees, and otherwise (the wall clock was
//! stepped back) puts it back into moka with the time that remains. A check that finds a
//! key looks at both clocks itself. So a wall clock stepped back, by any amount, never
//! revives a revoked token, and one stepped forward and back again neither.
//!
//! How long an entry is needed: the latest of the `keep_until` it was recorded with and
//! what the widest [`Acceptance`] of the layers built on this store needs
//! ([`Acceptance::token_needed_until`] of its `exp`, [`Acceptance::cutoff_needed_until`]
//! of its cutoff), so an instance with a larger leeway than the revoking one keeps the
//! entry as long as it could accept the token.
//!
//! A cutoff further ahead of the wall clock than half the leeway (written by an instance
//! whose clock runs ahead, or on purpose) is recorded as "now plus that lead": it still
//! revokes every token issued before it was recorded, and the tokens issued here after
//! it are ordered after it (see `clock.rs`) with an `iat` every instance accepts.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::future::Ready;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use moka::Expiry;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::refresh::{
    RefreshHash, RefreshRecord, RefreshSession, RotateOutcome, Rotation, SessionStore,
};
use super::{
    Acceptance, Check, RevocationStatus, RevocationStore, RevokedSession, RevokedToken,
    SubjectCutoff,
};
use crate::layer::DEFAULT_LEEWAY;
use crate::{TokenInfo, clock};

/// Longest time an entry is kept, whatever it asks for (moka's timer wheel has a limit).
const MAX_KEEP: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The time left until `until` (Unix seconds) on the wall clock, as a time-to-live.
fn remaining(until: u64) -> Duration {
    clock::system_time(until)
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .min(MAX_KEEP)
}

/// Whether the wall clock is still before `until` (Unix seconds).
fn wall_before(until: u64) -> bool {
    SystemTime::now() < clock::system_time(until)
}

/// The widest rules told by the layers on this store; none until the first one.
#[derive(Default)]
struct Rules {
    told: AtomicBool,
    leeway: AtomicU64,
    max_lifetime: AtomicU64,
}

impl Rules {
    fn widen(&self, acceptance: &Acceptance) {
        self.leeway.fetch_max(acceptance.leeway(), Ordering::AcqRel);
        self.max_lifetime
            .fetch_max(acceptance.max_lifetime(), Ordering::AcqRel);
        self.told.store(true, Ordering::Release);
    }

    /// The widest rules told, if any.
    fn acceptance(&self) -> Option<Acceptance> {
        self.told.load(Ordering::Acquire).then(|| {
            Acceptance::from_secs(
                self.leeway.load(Ordering::Acquire),
                self.max_lifetime.load(Ordering::Acquire),
            )
        })
    }

    /// How far ahead of the wall clock a cutoff is taken as it is (µs): half the widest
    /// leeway, or half the default leeway before any layer told its own.
    fn lead_micros(&self) -> u64 {
        let leeway = match self.acceptance() {
            Some(a) => a.leeway(),
            None => DEFAULT_LEEWAY.as_secs(),
        };
        leeway.saturating_mul(1_000_000) / 2
    }
}

/// An entry that knows until when it is needed (Unix seconds), given its key.
trait Kept: Send + Sync + 'static {
    fn needed_until(&self, key: u64, rules: &Rules) -> u64;
}

/// moka's per-entry time-to-live: the wall-clock time left until the entry is needed
/// no more, recomputed on update.
struct UntilExpiry<V> {
    rules: Arc<Rules>,
    _kind: std::marker::PhantomData<fn(V)>,
}

impl<V: Kept> Expiry<u64, Arc<V>> for UntilExpiry<V> {
    fn expire_after_create(&self, key: &u64, value: &Arc<V>, _: Instant) -> Option<Duration> {
        Some(remaining(value.needed_until(*key, &self.rules)))
    }

    fn expire_after_update(
        &self,
        key: &u64,
        value: &Arc<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(remaining(value.needed_until(*key, &self.rules)))
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

/// Entries moka expired while the wall clock said they were still needed.
type Requeue<V> = Arc<Mutex<Vec<(u64, Arc<V>)>>>;

/// Entries by key in moka (which owns their lifetime on the elapsed clock) and in a
/// plain index (which checks read, and which loses an entry only once the wall clock
/// says it is due too).
struct Table<V, H> {
    cache: Cache<u64, Arc<V>>,
    index: Arc<RwLock<HashMap<u64, Arc<V>, H>>>,
    /// Entries moka expired while the wall clock said they were still needed, to be
    /// put back into moka by the next write (never from inside moka's listener).
    requeue: Requeue<V>,
    rules: Arc<Rules>,
}

impl<V: Kept, H: BuildHasher + Default + Send + Sync + 'static> Table<V, H> {
    fn new(rules: &Arc<Rules>) -> Self {
        let index: Arc<RwLock<HashMap<u64, Arc<V>, H>>> = Arc::default();
        let requeue: Requeue<V> = Arc::default();
        let (pruned, held, judge) = (Arc::clone(&index), Arc::clone(&requeue), Arc::clone(rules));
        let cache = Cache::builder()
            .expire_after(UntilExpiry {
                rules: Arc::clone(rules),
                _kind: std::marker::PhantomData,
            })
            .eviction_listener(move |key: Arc<u64>, value: Arc<V>, cause| {
                if cause != RemovalCause::Expired {
                    return; // replaced by itself on upsert: still live
                }
                let mut index = pruned.write().unwrap_or_else(PoisonError::into_inner);
                // A newer entry for the same key stays.
                if !index.get(&*key).is_some_and(|v| Arc::ptr_eq(v, &value)) {
                    return;
                }
                if wall_before(value.needed_until(*key, &judge)) {
                    held.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((*key, value));
                } else {
                    index.remove(&*key);
                }
            })
            .build_with_hasher(RandomState::new());
        Self {
            cache,
            index,
            requeue,
            rules: Arc::clone(rules),
        }
    }

    /// Whether `value`, found in the index under `key`, is still needed: by the wall
    /// clock, or because moka (the elapsed clock) still holds it.
    fn live(&self, key: u64, value: &V) -> bool {
        wall_before(value.needed_until(key, &self.rules)) || self.cache.contains_key(&key)
    }

    /// Inserts or updates the entry under `key`: `update` gets the entry held (in moka
    /// or, after a wall-clock step back, only in the index) and returns the one to hold.
    fn upsert(&self, key: u64, update: impl FnOnce(Option<Arc<V>>) -> Arc<V>) -> Arc<V> {
        self.put_back();
        let indexed = self
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        let value = self
            .cache
            .entry(key)
            .and_upsert_with(|held| update(held.map(moka::Entry::into_value).or(indexed)))
            .into_value();
        let mut index = self.index.write().unwrap_or_else(PoisonError::into_inner);
        match index.get(&key) {
            Some(current) if Arc::ptr_eq(current, &value) => {}
            // New, or a new entry after the old one was dropped.
            _ => {
                index.insert(key, Arc::clone(&value));
            }
        }
        value
    }

    /// Puts the entries moka expired too early (by the wall clock) back into moka.
    fn put_back(&self) {
        let held =
            std::mem::take(&mut *self.requeue.lock().unwrap_or_else(PoisonError::into_inner));
        for (key, value) in held {
            let current = self
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .is_some_and(|v| Arc::ptr_eq(v, &value));
            if current && !self.cache.contains_key(&key) {
                self.cache.insert(key, value);
            }
        }
    }

    /// Runs moka's pending maintenance and puts back what it expired too early.
    fn settle(&self) {
        self.cache.run_pending_tasks();
        self.put_back();
    }

    /// The live entries (walks the index).
    fn live_values(&self) -> Vec<(u64, Arc<V>)> {
        self.settle();
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index
            .iter()
            .filter(|(k, v)| self.live(**k, v))
            .map(|(k, v)| (*k, Arc::clone(v)))
            .collect()
    }
}

/// A subject's cutoff (µs) and the `keep_until` it was recorded with.
struct Subject {
    cutoff: AtomicU64,
    until: AtomicU64,
}

impl Kept for Subject {
    fn needed_until(&self, _: u64, rules: &Rules) -> u64 {
        let until = self.until.load(Ordering::Acquire);
        match rules.acceptance() {
            Some(a) => until.max(a.cutoff_needed_until(self.cutoff.load(Ordering::Acquire))),
            None => until,
        }
    }
}

/// An ended session: when it ended (µs) and the `keep_until` it was recorded with.
struct Session {
    ended: AtomicU64,
    until: AtomicU64,
}

impl Kept for Session {
    fn needed_until(&self, _: u64, rules: &Rules) -> u64 {
        let until = self.until.load(Ordering::Acquire);
        match rules.acceptance() {
            Some(a) => until.max(a.session_needed_until(self.ended.load(Ordering::Acquire))),
            None => until,
        }
    }
}

/// The revoked tokens that expire in one second.
struct Group {
    /// Unix seconds: the latest `keep_until` of the group's tokens.
    until: AtomicU64,
    keys: RwLock<HashSet<u64, BuildHasherDefault<Identity>>>,
}

impl Kept for Group {
    /// `key` is the group's `exp` second.
    fn needed_until(&self, exp: u64, rules: &Rules) -> u64 {
        let until = self.until.load(Ordering::Acquire);
        match rules.acceptance() {
            Some(a) => until.max(a.token_needed_until(exp)),
            None => until,
        }
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

/// A session's refresh state in memory, by (issuer, sid).
struct RefreshEntry {
    subject: String,
    started: u64,
    deadline: u64,
    current: RefreshHash,
    previous: Option<(RefreshHash, u64)>,
}

/// One refresh token's record: its session and whether it was exchanged.
struct TokenEntry {
    session: SessionKey,
    used: bool,
    expires_at: u64,
}

type SessionKey = (Option<String>, String);

/// Every refresh session and token, under one lock: exchanges are rare next to checks,
/// and one lock makes every rotation trivially atomic. Expired records are swept once
/// as many writes as there are records have passed, so memory stays bounded by expiry.
#[derive(Default)]
struct Refresh {
    sessions: HashMap<SessionKey, RefreshEntry>,
    tokens: HashMap<RefreshHash, TokenEntry>,
    /// The sessions of each (issuer, subject), for a logout everywhere; pruned by the
    /// sweep.
    subjects: HashMap<SessionKey, HashSet<SessionKey>>,
    writes: usize,
}

impl Refresh {
    fn sweep_if_due(&mut self, now: u64) {
        self.writes += 1;
        if self.writes < (self.sessions.len() + self.tokens.len()).max(1024) {
            return;
        }
        self.writes = 0;
        self.sessions.retain(|_, s| s.deadline > now);
        let sessions = &self.sessions;
        self.tokens
            .retain(|_, t| t.expires_at > now && sessions.contains_key(&t.session));
        self.subjects.retain(|_, set| {
            set.retain(|k| sessions.contains_key(k));
            !set.is_empty()
        });
    }

    /// Kills the sessions of `subject` (from `issuer`) started at or before `cutoff`.
    fn cut(&mut self, issuer: Option<&str>, subject: &str, cutoff: u64) {
        let key = (issuer.map(str::to_owned), subject.to_owned());
        let Some(set) = self.subjects.get_mut(&key) else {
            return;
        };
        let sessions = &mut self.sessions;
        set.retain(|k| match sessions.get(k) {
            Some(s) if s.started <= cutoff => {
                sessions.remove(k);
                false
            }
            Some(_) => true,
            None => false,
        });
        if set.is_empty() {
            self.subjects.remove(&key);
        }
    }

    /// Kills the session's refresh tokens (its records go with the next sweep, and
    /// none maps to a live session any more).
    fn kill(&mut self, key: &SessionKey) {
        self.sessions.remove(key);
    }
}

struct Inner {
    /// Refresh tokens ([`SessionStore`]).
    refresh: Mutex<Refresh>,
    /// Set before the first denylist entry is written: until then checks skip the
    /// lookup. Never reset (a stale `true` only costs a lookup).
    any_tokens: AtomicBool,
    /// The same for subject cutoffs.
    any_cutoffs: AtomicBool,
    /// Revoked tokens, grouped by `exp` second (the table's key).
    tokens: Table<Group, BuildHasherDefault<Mix>>,
    /// Subject cutoffs, by the keyed hash of (issuer, subject).
    subjects: Table<Subject, BuildHasherDefault<Identity>>,
    /// The same for ended sessions.
    any_sessions: AtomicBool,
    /// Ended sessions, by the keyed hash of (issuer, sid).
    sessions: Table<Session, BuildHasherDefault<Identity>>,
    rules: Arc<Rules>,
    token_keys: KeyHasher,
    subject_keys: KeyHasher,
    session_keys: KeyHasher,
}

/// The embedded revocation store: revoked `jti`s and logout-everywhere cutoffs in this
/// process, in moka caches whose entries each have their own time-to-live.
///
/// Entries are never evicted for capacity, only when they expire: a denylist entry when
/// its token could no longer pass verification, a cutoff when every token it revokes has
/// expired, each judged against the rules of the layers built on the store
/// ([`RevocationStore::retain_for`]) and on the wall clock that tokens are judged by (a
/// clock stepped back never revives a revoked token). Memory therefore grows with the
/// number of revocations made within one token lifetime, and shrinks as they expire:
/// about 10–20 bytes per revoked token (tokens are grouped by their `exp` second, see the
/// module source), and a few hundred bytes per subject cutoff.
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
            .field("expiry_groups", &self.inner.tokens.cache.entry_count())
            .field("subject_cutoffs", &self.inner.subjects.cache.entry_count())
            .field("refresh_sessions", &self.refresh_len().0)
            .field("refresh_tokens", &self.refresh_len().1)
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        let rules = Arc::new(Rules::default());
        Self {
            inner: Arc::new(Inner {
                refresh: Mutex::default(),
                any_tokens: AtomicBool::new(false),
                any_cutoffs: AtomicBool::new(false),
                tokens: Table::new(&rules),
                subjects: Table::new(&rules),
                any_sessions: AtomicBool::new(false),
                sessions: Table::new(&rules),
                rules,
                token_keys: KeyHasher::new(),
                subject_keys: KeyHasher::new(),
                session_keys: KeyHasher::new(),
            }),
        }
    }

    /// How many revoked tokens and subject cutoffs are held. Expired entries are not
    /// counted; this walks every group, so it is for tests and metrics, not for the
    /// request path.
    pub fn len(&self) -> (u64, u64) {
        let tokens = self
            .inner
            .tokens
            .live_values()
            .iter()
            .map(|(_, group)| {
                group
                    .keys
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .len() as u64
            })
            .sum();
        (tokens, self.inner.subjects.live_values().len() as u64)
    }

    /// Whether the store holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// The widest rules told by the layers on this store, if any told them.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn acceptance(&self) -> Option<Acceptance> {
        self.inner.rules.acceptance()
    }

    /// The answer for `token`, from memory.
    pub(crate) fn status(&self, token: &TokenInfo) -> RevocationStatus {
        let inner = &*self.inner;
        if inner.any_tokens.load(Ordering::Acquire) {
            let exp = token.expires_at();
            let found = inner
                .tokens
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&exp)
                .filter(|group| group.contains(inner.token_keys.key(token.issuer(), token.jti())))
                .cloned();
            // Found: revoked unless its group is due on both clocks.
            if let Some(group) = found
                && inner.tokens.live(exp, &group)
            {
                return RevocationStatus::Revoked;
            }
        }
        if inner.any_cutoffs.load(Ordering::Acquire) {
            let key = inner.subject_keys.key(token.issuer(), token.subject());
            let found = inner
                .subjects
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .filter(|s| token.issue_stamp() <= s.cutoff.load(Ordering::Acquire))
                .cloned();
            if let Some(subject) = found
                && inner.subjects.live(key, &subject)
            {
                return RevocationStatus::Revoked;
            }
        }
        if let Some(sid) = token.session_id()
            && inner.any_sessions.load(Ordering::Acquire)
        {
            let key = inner.session_keys.key(token.issuer(), sid);
            let found = inner
                .sessions
                .index
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&key)
                .cloned();
            if let Some(session) = found
                && inner.sessions.live(key, &session)
            {
                return RevocationStatus::Revoked;
            }
        }
        RevocationStatus::Active
    }

    /// Records an ended session; one no longer needed is not stored.
    pub(crate) fn insert_session(&self, session: &RevokedSession<'_>) {
        let inner = &*self.inner;
        inner
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .kill(&(
                session.issuer().map(str::to_owned),
                session.sid().to_owned(),
            ));
        let until = session.keep_until();
        let needed = match inner.rules.acceptance() {
            Some(a) => until.max(a.session_needed_until(session.ended_micros())),
            None => until,
        };
        if !wall_before(needed) {
            return;
        }
        inner.any_sessions.store(true, Ordering::Release);
        let key = inner.session_keys.key(session.issuer(), session.sid());
        inner.sessions.upsert(key, |held| match held {
            Some(s) => {
                s.ended.fetch_max(session.ended_micros(), Ordering::AcqRel);
                s.until.fetch_max(until, Ordering::AcqRel);
                s
            }
            None => Arc::new(Session {
                ended: AtomicU64::new(session.ended_micros()),
                until: AtomicU64::new(until),
            }),
        });
    }

    /// How many ended sessions are held (expired ones not counted; walks them all).
    pub fn sessions_len(&self) -> u64 {
        self.inner.sessions.live_values().len() as u64
    }

    /// Records a denylist entry; one no longer needed is not stored.
    pub(crate) fn insert_token(&self, token: &RevokedToken<'_>) {
        let inner = &*self.inner;
        let (exp, until) = (token.expires_at(), token.keep_until());
        if !wall_before(self.token_needed_until(token)) {
            return;
        }
        let key = inner.token_keys.key(token.issuer(), token.jti());
        self.token_group(exp, until)
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
    }

    /// Records many denylist entries, as [`insert_token`](Self::insert_token) would one
    /// by one, with one upsert and one write lock per `exp` second among them instead of
    /// one of each per token: a load of a million revocations spends most of its time
    /// in these. Entries no longer needed are not stored.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn insert_tokens(&self, tokens: &[RevokedToken<'_>]) {
        let inner = &*self.inner;
        let now = SystemTime::now();
        // (exp, key, keep_until) of the tokens still needed, then in runs of one `exp`.
        let mut live: Vec<(u64, u64, u64)> = tokens
            .iter()
            .filter(|t| now < clock::system_time(self.token_needed_until(t)))
            .map(|t| {
                let key = inner.token_keys.key(t.issuer(), t.jti());
                (t.expires_at(), key, t.keep_until())
            })
            .collect();
        live.sort_unstable_by_key(|&(exp, _, _)| exp);
        for run in live.chunk_by(|a, b| a.0 == b.0) {
            let until = run.iter().map(|&(_, _, until)| until).max().unwrap_or(0);
            let group = self.token_group(run[0].0, until);
            let mut keys = group.keys.write().unwrap_or_else(PoisonError::into_inner);
            keys.reserve(run.len());
            keys.extend(run.iter().map(|&(_, key, _)| key));
        }
    }

    /// Until when `token` must be held: its `keep_until`, or longer if the rules told
    /// need it longer.
    fn token_needed_until(&self, token: &RevokedToken<'_>) -> u64 {
        let until = token.keep_until();
        match self.inner.rules.acceptance() {
            Some(a) => until.max(a.token_needed_until(token.expires_at())),
            None => until,
        }
    }

    /// The live group of the tokens that expire at `exp`, created if there is none, and
    /// kept at least until `until`; its keys go in once it is live.
    fn token_group(&self, exp: u64, until: u64) -> Arc<Group> {
        let inner = &*self.inner;
        inner.any_tokens.store(true, Ordering::Release);
        // The upsert (serialized per group by moka) extends the group's life if needed
        // and makes moka recompute its expiry.
        inner.tokens.upsert(exp, |held| match held {
            Some(group) => {
                group.until.fetch_max(until, Ordering::AcqRel);
                group
            }
            None => Arc::new(Group {
                until: AtomicU64::new(until),
                keys: RwLock::default(),
            }),
        })
    }

    /// Lowers the cutoff of `cutoff`'s subject to `cutoff.cutoff_micros()` if it is
    /// held at or below `from`: another instance took the cutoff `from`, recorded too
    /// far ahead of its clock, as this earlier one ([`insert_cutoff`](Self::insert_cutoff)),
    /// and every instance follows the first to do so. A later cutoff (above `from`) stays.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn lower_cutoff(&self, cutoff: &SubjectCutoff<'_>, from: u64) {
        let inner = &*self.inner;
        let key = inner.subject_keys.key(cutoff.issuer(), cutoff.subject());
        let held = inner
            .subjects
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        match held {
            Some(subject) => {
                let to = cutoff.cutoff_micros();
                let _ = subject
                    .cutoff
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                        (c <= from && c > to).then_some(to)
                    });
                clock::observe(to, 0);
            }
            None => {
                self.insert_cutoff(cutoff);
            }
        }
    }

    /// Records a cutoff, keeping the later one (and the later expiry) atomically per
    /// subject, and returns the cutoff recorded. A cutoff further ahead of the wall clock
    /// than the lead is recorded as now plus the lead (module docs); the crate's stamp
    /// clock moves past what is recorded, so tokens issued here afterwards are not
    /// covered.
    pub(crate) fn insert_cutoff(&self, cutoff: &SubjectCutoff<'_>) -> u64 {
        let inner = &*self.inner;
        let until = cutoff.keep_until();
        let taken = clock::observe(cutoff.cutoff_micros(), inner.rules.lead_micros());
        inner
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .cut(cutoff.issuer(), cutoff.subject(), taken);
        let needed = match inner.rules.acceptance() {
            Some(a) => until.max(a.cutoff_needed_until(taken)),
            None => until,
        };
        if !wall_before(needed) {
            return taken;
        }
        inner.any_cutoffs.store(true, Ordering::Release);
        let key = inner.subject_keys.key(cutoff.issuer(), cutoff.subject());
        inner.subjects.upsert(key, |held| match held {
            Some(subject) => {
                subject.cutoff.fetch_max(taken, Ordering::AcqRel);
                subject.until.fetch_max(until, Ordering::AcqRel);
                subject
            }
            None => Arc::new(Subject {
                cutoff: AtomicU64::new(taken),
                until: AtomicU64::new(until),
            }),
        });
        taken
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
        let _recorded = self.insert_cutoff(cutoff);
        Ok(())
    }

    async fn revoke_session(&self, session: &RevokedSession<'_>) -> Result<(), Infallible> {
        self.insert_session(session);
        Ok(())
    }

    fn retain_for(&self, acceptance: &Acceptance) {
        self.inner.rules.widen(acceptance);
    }
}

impl MemoryStore {
    /// How many refresh sessions and refresh-token records are held (expired ones not
    /// yet swept included). For tests and metrics.
    pub fn refresh_len(&self) -> (usize, usize) {
        let refresh = self
            .inner
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (refresh.sessions.len(), refresh.tokens.len())
    }

    /// Whether the session `key`, started at `started`, was ended or cut off (the
    /// revocation tables, which outlive a refresh session killed by them only when the
    /// kill raced its creation).
    fn refresh_revoked(&self, key: &SessionKey, subject: &str, started: u64) -> bool {
        let inner = &*self.inner;
        let (issuer, sid) = (key.0.as_deref(), key.1.as_str());
        let skey = inner.session_keys.key(issuer, sid);
        let ended = inner
            .sessions
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&skey)
            .cloned()
            .is_some_and(|s| inner.sessions.live(skey, &s));
        let ckey = inner.subject_keys.key(issuer, subject);
        let cut = inner
            .subjects
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&ckey)
            .cloned()
            .is_some_and(|s| {
                started <= s.cutoff.load(Ordering::Acquire) && inner.subjects.live(ckey, &s)
            });
        ended || cut
    }

    fn rotate(&self, rotation: &Rotation<'_>) -> RotateOutcome {
        let now = rotation.now_millis() / 1000;
        let presented = *rotation.presented();
        let new = *rotation.new_hash();
        let mut guard = self
            .inner
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let refresh = &mut *guard;
        refresh.sweep_if_due(now);
        let Some(token) = refresh.tokens.get(&presented) else {
            return RotateOutcome::Invalid;
        };
        let (key, used) = (token.session.clone(), token.used);
        if token.expires_at <= now {
            return RotateOutcome::Invalid;
        }
        let Some(session) = refresh.sessions.get_mut(&key) else {
            return RotateOutcome::Invalid;
        };
        if session.deadline <= now {
            refresh.kill(&key);
            return RotateOutcome::Invalid;
        }
        if self.refresh_revoked(&key, &session.subject, session.started) {
            refresh.kill(&key);
            return RotateOutcome::Revoked;
        }
        let named = RefreshSession {
            issuer: key.0.clone(),
            subject: session.subject.clone(),
            sid: key.1.clone(),
        };
        let expires_at = rotation.new_expires_at().min(session.deadline);
        let interval = u64::try_from(rotation.reuse_interval().as_millis()).unwrap_or(u64::MAX);
        if session.current == new {
            // A repeated call that already succeeded.
            return RotateOutcome::Rotated {
                session: named,
                expires_at,
            };
        }
        let overlap = session.previous.is_some_and(|(prev, at)| {
            prev == presented
                && interval > 0
                && rotation.now_millis().saturating_sub(at) <= interval
        });
        if session.current == presented && !used {
            session.previous = Some((presented, rotation.now_millis()));
            session.current = new;
            if let Some(t) = refresh.tokens.get_mut(&presented) {
                t.used = true;
                t.expires_at = session.deadline;
            }
        } else if overlap {
            let superseded = std::mem::replace(&mut session.current, new);
            refresh.tokens.remove(&superseded);
        } else if used {
            refresh.kill(&key);
            return RotateOutcome::Reused { session: named };
        } else {
            return RotateOutcome::Invalid;
        }
        refresh.tokens.insert(
            new,
            TokenEntry {
                session: key,
                used: false,
                expires_at,
            },
        );
        RotateOutcome::Rotated {
            session: named,
            expires_at,
        }
    }
}

impl SessionStore for MemoryStore {
    async fn create_refresh(&self, record: &RefreshRecord<'_>) -> Result<(), Infallible> {
        let key: SessionKey = (record.issuer().map(str::to_owned), record.sid().to_owned());
        let mut refresh = self
            .inner
            .refresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        refresh.sweep_if_due(clock::now_secs());
        refresh
            .subjects
            .entry((
                record.issuer().map(str::to_owned),
                record.subject().to_owned(),
            ))
            .or_default()
            .insert(key.clone());
        refresh.sessions.insert(
            key.clone(),
            RefreshEntry {
                subject: record.subject().to_owned(),
                started: record.started_micros(),
                deadline: record.session_expires_at(),
                current: *record.hash(),
                previous: None,
            },
        );
        refresh.tokens.insert(
            *record.hash(),
            TokenEntry {
                session: key,
                used: false,
                expires_at: record.expires_at(),
            },
        );
        Ok(())
    }

    async fn rotate_refresh(&self, rotation: &Rotation<'_>) -> Result<RotateOutcome, Infallible> {
        Ok(self.rotate(rotation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        clock::now_secs()
    }

    fn index_len(store: &MemoryStore) -> usize {
        store.inner.tokens.index.read().unwrap().len()
    }

    /// Random denylist entries: (jti number, `exp` and `keep_until` as offsets from now;
    /// a `keep_until` in the past is not stored).
    fn entries() -> impl proptest::strategy::Strategy<Value = Vec<(u8, u64, i64)>> {
        proptest::collection::vec((0u8..24, 0u64..6, -3i64..8), 0..64)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A batch gives the answers that the same entries inserted one by one give,
        /// with and without rules that keep entries longer.
        #[test]
        fn a_batch_holds_what_one_by_one_inserts_hold(
            entries in entries(),
            told in proptest::prelude::any::<bool>(),
        ) {
            let n = now();
            let (one, batch) = (MemoryStore::new(), MemoryStore::new());
            if told {
                let rules = Acceptance::new(Duration::from_secs(4), Duration::from_secs(60));
                one.retain_for(&rules);
                batch.retain_for(&rules);
            }
            let jtis: Vec<String> = (0..24).map(|i| format!("j{i}")).collect();
            let tokens: Vec<RevokedToken<'_>> = entries
                .iter()
                .map(|&(j, exp, keep)| {
                    let keep = n.checked_add_signed(keep).unwrap();
                    RevokedToken::new(Some("iss"), &jtis[usize::from(j)], n + exp, keep)
                })
                .collect();
            for token in &tokens {
                one.insert_token(token);
            }
            batch.insert_tokens(&tokens);
            proptest::prop_assert_eq!(one.len(), batch.len());
            for jti in &jtis {
                for exp in 0..6 {
                    let t = TokenInfo::new(Some("iss"), "s", jti, n, n + exp);
                    proptest::prop_assert_eq!(one.status(&t), batch.status(&t), "{} {}", jti, exp);
                }
            }
            // Each group lives as long as its latest entry.
            for exp in 0..6 {
                let until = |store: &MemoryStore| {
                    let index = store.inner.tokens.index.read().unwrap();
                    index.get(&(n + exp)).map(|g| g.until.load(Ordering::Acquire))
                };
                proptest::prop_assert_eq!(until(&one), until(&batch));
            }
        }
    }

    #[test]
    fn expired_groups_leave_the_index() {
        let store = MemoryStore::new();
        let n = now();
        for i in 0..50u64 {
            let jti = format!("j{i}");
            store.insert_token(&RevokedToken::new(None, &jti, n + i, n + 1));
        }
        assert_eq!(index_len(&store), 50);
        std::thread::sleep(Duration::from_millis(2_100));
        // Due on both clocks: invisible at once, and pruned from the index by moka's
        // maintenance.
        let t = TokenInfo::new(None, "s", "j3", n, n + 3);
        assert_eq!(store.status(&t), RevocationStatus::Active);
        store.inner.tokens.settle();
        assert_eq!(index_len(&store), 0);
        assert_eq!(store.len(), (0, 0));
    }

    #[test]
    fn a_group_recreated_after_expiry_is_indexed_again() {
        let store = MemoryStore::new();
        let n = now();
        store.insert_token(&RevokedToken::new(None, "old", n + 600, n + 1));
        std::thread::sleep(Duration::from_millis(2_100));
        store.inner.tokens.settle();
        store.insert_token(&RevokedToken::new(None, "new", n + 600, n + 661));
        store.inner.tokens.settle();
        let t = |jti: &str| TokenInfo::new(None, "s", jti, n, n + 600);
        assert_eq!(store.status(&t("new")), RevocationStatus::Revoked);
        assert_eq!(store.status(&t("old")), RevocationStatus::Active);
    }

    #[test]
    fn a_layer_with_a_larger_leeway_keeps_entries_longer() {
        let store = MemoryStore::new();
        let n = now();
        // Recorded by an instance with no leeway: kept until exp + 1 by itself.
        store.insert_token(&RevokedToken::new(None, "j", n, n + 1));
        store.retain_for(&Acceptance::new(
            Duration::from_secs(30),
            Duration::from_secs(60),
        ));
        std::thread::sleep(Duration::from_millis(2_100));
        store.inner.tokens.settle();
        let t = TokenInfo::new(None, "s", "j", n - 10, n);
        assert_eq!(
            store.status(&t),
            RevocationStatus::Revoked,
            "this store's layer accepts the token until exp + 30"
        );
        // A cutoff the same way: needed while a token issued before it could pass.
        store.insert_cutoff(&SubjectCutoff::new(None, "bob", (n - 1) * 1_000_000, n + 1));
        std::thread::sleep(Duration::from_millis(1_100));
        store.inner.subjects.settle();
        let before = TokenInfo::with_micros(None, "bob", "k", (n - 2) * 1_000_000, n + 50);
        assert_eq!(store.status(&before), RevocationStatus::Revoked);
        assert_eq!(store.len(), (1, 1));
    }

    #[test]
    fn a_far_future_cutoff_is_taken_as_now_plus_the_lead() {
        let store = MemoryStore::new();
        store.retain_for(&Acceptance::new(
            Duration::from_secs(10),
            Duration::from_secs(600),
        ));
        let n = now();
        let far = (n + 600) * 1_000_000;
        store.insert_cutoff(&SubjectCutoff::new(None, "bob", far, n + 1_300));
        // Issued before the cutoff was recorded (even 5 s ahead of this clock): revoked.
        let before = TokenInfo::with_micros(None, "bob", "a", (n + 4) * 1_000_000, n + 60);
        assert_eq!(store.status(&before), RevocationStatus::Revoked);
        // Issued here afterwards: not covered, and not far ahead either.
        let fresh = clock::stamp();
        assert!(fresh <= clock::now_micros() + 5_000_000 + 1_000_000);
        let after = TokenInfo::with_micros(None, "bob", "b", fresh, n + 60);
        assert_eq!(store.status(&after), RevocationStatus::Active);
    }
}
