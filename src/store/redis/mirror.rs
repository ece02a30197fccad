//! The local mirror and how fresh it is: the state shared by the store's handles and its
//! feed task.
//!
//! Checks read the mirror and [`Shared::age`] only: an in-memory lookup and an atomic
//! load, no I/O and no allocation. The feed task writes to the mirror and calls
//! [`Shared::mark_synced`] each time it knows the mirror holds everything Redis holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::entry::Entry;
use crate::store::memory::MemoryStore;
use crate::store::{Acceptance, RevocationStatus, RevokedSession, RevokedToken, SubjectCutoff};
use crate::{TokenInfo, clock};

/// The most writes the feed task may owe Redis at once (see [`Owned`]); more are
/// dropped, which only loses a retention extension or a lowering, never a revocation.
const MAX_OWED: usize = 10_000;

/// [`Shared::feed_lag`] before any feed entry was applied.
const NO_LAG: u64 = u64::MAX;

/// The mirror and when it was last known to be current.
pub(super) struct Shared {
    /// Every revocation known to this instance; entries expire by themselves. Private:
    /// the methods below are the only ways in, so the one O(n) walk ([`Shared::len`])
    /// is the one a test can watch.
    mirror: MemoryStore,
    epoch: Instant,
    /// When the mirror was last known to hold everything in Redis (µs after `epoch`).
    synced_at: AtomicU64,
    /// Whether the mirror's going stale was reported and not yet its recovery.
    stale_reported: AtomicBool,
    /// Full loads from the sets after the start-up load.
    resyncs: AtomicU64,
    /// Times the feed's connection was re-established after a failure.
    reconnects: AtomicU64,
    /// Feed entries applied.
    entries_applied: AtomicU64,
    /// The last applied feed entry's delay in µs (`NO_LAG`: none applied yet).
    feed_lag: AtomicU64,
    /// Entries read before any layer told its rules that were past their `keep_until`:
    /// applied once the rules are known (they may need them for longer).
    parked: Mutex<Vec<Owned>>,
    /// Writes the feed task owes Redis: entries this instance needs kept longer than
    /// they were recorded for, and cutoffs it took as earlier ones.
    owed: Mutex<Vec<Owned>>,
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
            stale_reported: AtomicBool::new(false),
            resyncs: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            entries_applied: AtomicU64::new(0),
            feed_lag: AtomicU64::new(NO_LAG),
            parked: Mutex::default(),
            owed: Mutex::default(),
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

    /// How many ended sessions the mirror holds (walks them).
    pub(super) fn sessions_len(&self) -> u64 {
        self.mirror.sessions_len()
    }

    /// How many times [`len`](Self::len) was called.
    #[cfg(test)]
    pub(super) fn len_calls(&self) -> u64 {
        self.len_calls.load(Ordering::Relaxed)
    }

    /// Records that the mirror holds everything Redis held at `at` (when the read that
    /// showed it was sent, so the staleness bound is exact). Never moves the mark
    /// backwards. Reports the end of a stale spell, if one was reported.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(super) fn mark_synced(&self, at: Instant) {
        let now =
            u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        let before = self.synced_at.fetch_max(now, Ordering::Release);
        if self.stale_reported.load(Ordering::Relaxed)
            && self.stale_reported.swap(false, Ordering::Relaxed)
        {
            info_event!(
                unsynced_for = ?Duration::from_micros(now.saturating_sub(before)),
                "revocation mirror current again"
            );
        }
    }

    /// Reports, once per stale spell, that checks are being refused because the mirror
    /// is older than `max_staleness`. Called on the failure path only (a refused check,
    /// the feed's failure loop): a healthy check never touches the flag.
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(super) fn report_stale(&self, max_staleness: Duration) {
        if !self.stale_reported.load(Ordering::Relaxed)
            && !self.stale_reported.swap(true, Ordering::Relaxed)
        {
            warn_event!(
                age = ?self.age(),
                max_staleness = ?max_staleness,
                "revocation mirror stale: checks refused until it catches up"
            );
        }
    }

    /// Counts a full resync (not the start-up load).
    pub(super) fn count_resync(&self) {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a re-established feed connection.
    pub(super) fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// Records feed entries just applied, the newest appended by Redis at `newest_ms`
    /// (its id's time, on Redis's clock).
    pub(super) fn record_applied(&self, count: u64, newest_ms: u64) {
        if count == 0 {
            return;
        }
        self.entries_applied.fetch_add(count, Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let lag_us = now_ms.saturating_sub(newest_ms).saturating_mul(1_000);
        self.feed_lag
            .store(lag_us.min(NO_LAG - 1), Ordering::Relaxed);
    }

    /// The counters behind [`RedisStore::stats`](super::RedisStore::stats), each one
    /// atomic load.
    pub(super) fn counters(&self) -> Counters {
        let lag = self.feed_lag.load(Ordering::Relaxed);
        Counters {
            resyncs: self.resyncs.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            entries_applied: self.entries_applied.load(Ordering::Relaxed),
            feed_lag: (lag != NO_LAG).then(|| Duration::from_micros(lag)),
        }
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
    /// (applying it again changes nothing), and notes what Redis should then be told:
    /// a longer retention that this instance's rules need, or a cutoff it took as an
    /// earlier one (both written by the feed task).
    pub(super) fn apply(&self, entry: &Entry<'_>) {
        let Some(acceptance) = self.mirror.acceptance() else {
            if entry.keep_until() <= clock::now_secs() {
                // Maybe needed by rules not known yet.
                push_bounded(&self.parked, Owned::of(entry));
                return;
            }
            self.record(entry, None);
            return;
        };
        self.record(entry, Some(acceptance));
    }

    /// Applies many revoked tokens at once, as [`apply`](Self::apply) would one by one
    /// (a load's page): the mirror takes them with one write per `exp` second.
    pub(super) fn apply_tokens(&self, tokens: &[RevokedToken<'_>]) {
        let Some(acceptance) = self.mirror.acceptance() else {
            let now = clock::now_secs();
            if tokens.iter().all(|t| t.keep_until() > now) {
                self.record_tokens(tokens, None);
                return;
            }
            // Maybe needed by rules not known yet.
            let mut live = Vec::with_capacity(tokens.len());
            for &token in tokens {
                if token.keep_until() <= now {
                    push_bounded(&self.parked, Owned::of(&Entry::Token(token)));
                } else {
                    live.push(token);
                }
            }
            self.record_tokens(&live, None);
            return;
        };
        self.record_tokens(tokens, Some(acceptance));
    }

    /// Puts `tokens` into the mirror and notes the longer retention owed for those that
    /// this instance's rules need kept longer than they were recorded for.
    fn record_tokens(&self, tokens: &[RevokedToken<'_>], acceptance: Option<Acceptance>) {
        self.mirror.insert_tokens(tokens);
        let Some(a) = acceptance else {
            return;
        };
        for token in tokens {
            if a.token_needed_until(token.expires_at()) > token.keep_until() {
                push_bounded(
                    &self.owed,
                    Owned::of(&Entry::Token(self.widened_token(token))),
                );
            }
        }
    }

    fn record(&self, entry: &Entry<'_>, acceptance: Option<Acceptance>) {
        match entry {
            Entry::Token(token) => self.record_tokens(std::slice::from_ref(token), acceptance),
            Entry::Cutoff(cutoff) => {
                let taken = self.mirror.insert_cutoff(cutoff);
                if taken < cutoff.cutoff_micros() {
                    let lowered = SubjectCutoff::new(
                        cutoff.issuer(),
                        cutoff.subject(),
                        taken,
                        cutoff.keep_until(),
                    );
                    push_bounded(
                        &self.owed,
                        Owned::of(&Entry::Lowered(lowered, cutoff.cutoff_micros())),
                    );
                } else if let Some(a) = acceptance
                    && a.cutoff_needed_until(cutoff.cutoff_micros()) > cutoff.keep_until()
                {
                    push_bounded(
                        &self.owed,
                        Owned::of(&Entry::Cutoff(self.widened_cutoff(cutoff))),
                    );
                }
            }
            Entry::Lowered(cutoff, from) => self.mirror.lower_cutoff(cutoff, *from),
            Entry::Session(session) => {
                self.mirror.insert_session(session);
                if let Some(a) = acceptance
                    && a.session_needed_until(session.ended_micros()) > session.keep_until()
                {
                    push_bounded(
                        &self.owed,
                        Owned::of(&Entry::Session(self.widened_session(session))),
                    );
                }
            }
        }
    }

    /// `session`, kept at least as long as this instance's layers need it.
    pub(super) fn widened_session<'a>(&self, session: &RevokedSession<'a>) -> RevokedSession<'a> {
        let keep = match self.mirror.acceptance() {
            Some(a) => session
                .keep_until()
                .max(a.session_needed_until(session.ended_micros())),
            None => session.keep_until(),
        };
        RevokedSession::new(
            session.issuer(),
            session.sid(),
            session.ended_micros(),
            keep,
        )
    }

    /// Takes the rules of a layer built on this store; applies the entries parked
    /// until rules were known.
    pub(super) fn retain_for(&self, acceptance: &Acceptance) {
        crate::store::RevocationStore::retain_for(&self.mirror, acceptance);
        let parked =
            std::mem::take(&mut *self.parked.lock().unwrap_or_else(PoisonError::into_inner));
        for owned in &parked {
            self.apply(&owned.entry());
        }
    }

    /// `token`, kept at least as long as this instance's layers need it.
    pub(super) fn widened_token<'a>(&self, token: &RevokedToken<'a>) -> RevokedToken<'a> {
        let keep = match self.mirror.acceptance() {
            Some(a) => token
                .keep_until()
                .max(a.token_needed_until(token.expires_at())),
            None => token.keep_until(),
        };
        RevokedToken::new(token.issuer(), token.jti(), token.expires_at(), keep)
    }

    /// `cutoff`, kept at least as long as this instance's layers need it.
    pub(super) fn widened_cutoff<'a>(&self, cutoff: &SubjectCutoff<'a>) -> SubjectCutoff<'a> {
        let keep = match self.mirror.acceptance() {
            Some(a) => cutoff
                .keep_until()
                .max(a.cutoff_needed_until(cutoff.cutoff_micros())),
            None => cutoff.keep_until(),
        };
        SubjectCutoff::new(
            cutoff.issuer(),
            cutoff.subject(),
            cutoff.cutoff_micros(),
            keep,
        )
    }

    /// The writes owed to Redis, taken (give back what could not be written).
    pub(super) fn take_owed(&self) -> Vec<Owned> {
        std::mem::take(&mut *self.owed.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Gives back owed writes that could not be written, to try again later.
    pub(super) fn give_back(&self, owed: impl IntoIterator<Item = Owned>) {
        for o in owed {
            push_bounded(&self.owed, o);
        }
    }
}

fn push_bounded(list: &Mutex<Vec<Owned>>, owned: Owned) {
    let mut list = list.lock().unwrap_or_else(PoisonError::into_inner);
    if list.len() < MAX_OWED {
        list.push(owned);
    }
}

/// A feed entry, owned: to apply later, or to write to Redis.
pub(super) enum Owned {
    /// A denylist entry.
    Token {
        issuer: Option<Box<str>>,
        jti: Box<str>,
        exp: u64,
        keep: u64,
    },
    /// An ended session.
    Session {
        issuer: Option<Box<str>>,
        sid: Box<str>,
        ended: u64,
        keep: u64,
    },
    /// A subject cutoff; `lowered_from` when it lowered another one.
    Cutoff {
        issuer: Option<Box<str>>,
        subject: Box<str>,
        cutoff: u64,
        keep: u64,
        lowered_from: Option<u64>,
    },
}

impl Owned {
    pub(super) fn of(entry: &Entry<'_>) -> Self {
        match entry {
            Entry::Token(t) => Self::Token {
                issuer: t.issuer().map(Into::into),
                jti: t.jti().into(),
                exp: t.expires_at(),
                keep: t.keep_until(),
            },
            Entry::Session(s) => Self::Session {
                issuer: s.issuer().map(Into::into),
                sid: s.sid().into(),
                ended: s.ended_micros(),
                keep: s.keep_until(),
            },
            Entry::Cutoff(c) | Entry::Lowered(c, _) => Self::Cutoff {
                issuer: c.issuer().map(Into::into),
                subject: c.subject().into(),
                cutoff: c.cutoff_micros(),
                keep: c.keep_until(),
                lowered_from: match entry {
                    Entry::Lowered(_, from) => Some(*from),
                    _ => None,
                },
            },
        }
    }

    pub(super) fn entry(&self) -> Entry<'_> {
        match self {
            Self::Token {
                issuer,
                jti,
                exp,
                keep,
            } => Entry::Token(RevokedToken::new(issuer.as_deref(), jti, *exp, *keep)),
            Self::Session {
                issuer,
                sid,
                ended,
                keep,
            } => Entry::Session(RevokedSession::new(issuer.as_deref(), sid, *ended, *keep)),
            Self::Cutoff {
                issuer,
                subject,
                cutoff,
                keep,
                lowered_from,
            } => {
                let c = SubjectCutoff::new(issuer.as_deref(), subject, *cutoff, *keep);
                match lowered_from {
                    Some(from) => Entry::Lowered(c, *from),
                    None => Entry::Cutoff(c),
                }
            }
        }
    }
}

/// The mirror's counters, read together.
pub(super) struct Counters {
    pub(super) resyncs: u64,
    pub(super) reconnects: u64,
    pub(super) entries_applied: u64,
    pub(super) feed_lag: Option<Duration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens a list owes or parks, as (jti, exp, keep_until), in order.
    fn tokens_of(list: &[Owned]) -> Vec<(String, u64, u64)> {
        list.iter()
            .filter_map(|owned| match owned.entry() {
                Entry::Token(t) => Some((t.jti().to_owned(), t.expires_at(), t.keep_until())),
                _ => None,
            })
            .collect()
    }

    fn statuses(shared: &Shared, n: u64) -> Vec<RevocationStatus> {
        (0..4)
            .map(|i| shared.status(&TokenInfo::new(None, "s", &format!("j{i}"), n - 60, n + i)))
            .collect()
    }

    /// A load's batch parks, stores and owes exactly what applying its tokens one by
    /// one does, before any layer told its rules and after.
    #[test]
    fn a_batch_applies_as_its_tokens_one_by_one() {
        let n = clock::now_secs();
        let jtis: Vec<String> = (0..4).map(|i| format!("j{i}")).collect();
        // j0, j1: past their keep_until (parked until the rules are known); j2, j3: kept
        // until exp + 1, shorter than a 30 s leeway needs (owed a longer retention).
        let tokens: Vec<RevokedToken<'_>> = (0..4u64)
            .map(|i| {
                let keep = if i < 2 { n - 1 } else { n + i + 1 };
                RevokedToken::new(None, &jtis[i as usize], n + i, keep)
            })
            .collect();
        let rules = Acceptance::new(Duration::from_secs(30), Duration::from_secs(600));
        for told_first in [false, true] {
            let (one, batch) = (Shared::new(), Shared::new());
            if told_first {
                one.retain_for(&rules);
                batch.retain_for(&rules);
            }
            for token in &tokens {
                one.apply(&Entry::Token(*token));
            }
            batch.apply_tokens(&tokens);
            let parked = |s: &Shared| tokens_of(&s.parked.lock().unwrap());
            assert_eq!(parked(&one), parked(&batch));
            assert_eq!(parked(&batch).len(), if told_first { 0 } else { 2 });
            assert_eq!(statuses(&one, n), statuses(&batch, n));
            if !told_first {
                one.retain_for(&rules);
                batch.retain_for(&rules);
            }
            assert_eq!(statuses(&batch, n), vec![RevocationStatus::Revoked; 4]);
            assert_eq!(statuses(&one, n), statuses(&batch, n));
            let owed = tokens_of(&batch.take_owed());
            assert_eq!(tokens_of(&one.take_owed()), owed);
            // Told first, every token is owed exp + 30; told after, the parked ones
            // (applied then) are.
            let expected = if told_first { 4 } else { 2 };
            assert_eq!(owed.len(), expected, "{owed:?}");
        }
    }
}
