//! Where revocations live: the [`RevocationStore`] trait and its implementations.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::TokenInfo;
use crate::clock;

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;
pub(crate) mod refresh;

/// Whether a verified token has been revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationStatus {
    /// Neither the token nor its subject has been revoked: the request may go on.
    Active,
    /// The token's `jti` is on the denylist, or it was issued at or before its subject's
    /// logout-everywhere cutoff.
    Revoked,
}

/// The answer of [`RevocationStore::check`]: known at once, or still being looked up.
///
/// A store that answers from memory returns [`Check::Ready`], and the request goes on
/// with no future boxed, nothing allocated and nothing awaited. A store that must do I/O
/// returns [`Check::Pending`] with a future the layer drives to completion.
#[derive(Debug)]
pub enum Check<F: Future> {
    /// The answer, known synchronously.
    Ready(F::Output),
    /// A lookup still in flight.
    Pending(F),
}

/// A token to put on the denylist: its issuer, `jti` and `exp`, and when the entry may
/// go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedToken<'a> {
    issuer: Option<&'a str>,
    jti: &'a str,
    expires_at: u64,
    keep_until: u64,
}

impl<'a> RevokedToken<'a> {
    /// A denylist entry for the token `jti` from `issuer` that expires at `expires_at`
    /// (its `exp`, Unix seconds), to be kept until `keep_until` (Unix seconds): the first
    /// second at which the token can no longer pass verification (its `exp` plus the
    /// leeway, plus one).
    ///
    /// A check finds the entry by the token's issuer, `jti` **and** `exp`, so `expires_at`
    /// must be the `exp` the layer reads from the token ([`TokenInfo::expires_at`]):
    /// [`for_token`](Self::for_token) takes it from there.
    pub fn new(issuer: Option<&'a str>, jti: &'a str, expires_at: u64, keep_until: u64) -> Self {
        Self {
            issuer,
            jti,
            expires_at,
            keep_until,
        }
    }

    /// The denylist entry for `token`, kept until `keep_until`.
    pub fn for_token(token: &'a TokenInfo, keep_until: u64) -> Self {
        Self::new(token.issuer(), token.jti(), token.expires_at(), keep_until)
    }

    /// The token's `iss`, if it has one. A `jti` is unique only per issuer.
    pub fn issuer(&self) -> Option<&'a str> {
        self.issuer
    }

    /// The token's `jti`.
    pub fn jti(&self) -> &'a str {
        self.jti
    }

    /// The token's `exp`, in Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// When the entry no longer matters, in Unix seconds.
    pub fn keep_until(&self) -> u64 {
        self.keep_until
    }

    /// [`keep_until`](Self::keep_until) as a `SystemTime`.
    pub fn keep_until_time(&self) -> SystemTime {
        clock::system_time(self.keep_until)
    }
}

/// A "log out everywhere": every token of `subject` (from `issuer`) whose issue stamp is
/// at or before `cutoff` is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectCutoff<'a> {
    issuer: Option<&'a str>,
    subject: &'a str,
    cutoff_micros: u64,
    keep_until: u64,
}

impl<'a> SubjectCutoff<'a> {
    /// A cutoff at `cutoff_micros` (microseconds since the Unix epoch) for `subject` of
    /// `issuer`, to be kept until `keep_until` (Unix seconds): when every token issued
    /// before the cutoff has expired.
    pub fn new(
        issuer: Option<&'a str>,
        subject: &'a str,
        cutoff_micros: u64,
        keep_until: u64,
    ) -> Self {
        Self {
            issuer,
            subject,
            cutoff_micros,
            keep_until,
        }
    }

    /// The subject's issuer, if any: a `sub` is unique only per issuer.
    pub fn issuer(&self) -> Option<&'a str> {
        self.issuer
    }

    /// The subject (`sub` claim).
    pub fn subject(&self) -> &'a str {
        self.subject
    }

    /// The cutoff, in microseconds since the Unix epoch.
    pub fn cutoff_micros(&self) -> u64 {
        self.cutoff_micros
    }

    /// When the cutoff no longer matters, in Unix seconds.
    pub fn keep_until(&self) -> u64 {
        self.keep_until
    }

    /// [`keep_until`](Self::keep_until) as a `SystemTime`.
    pub fn keep_until_time(&self) -> SystemTime {
        clock::system_time(self.keep_until)
    }
}

/// An ended login session: every token whose `sid` is `sid` (from `issuer`) is revoked,
/// whenever it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedSession<'a> {
    issuer: Option<&'a str>,
    sid: &'a str,
    ended_micros: u64,
    keep_until: u64,
}

impl<'a> RevokedSession<'a> {
    /// The session `sid` of `issuer`, ended at `ended_micros` (microseconds since the
    /// Unix epoch), to be kept until `keep_until` (Unix seconds): when every token of the
    /// session issued up to its end has expired.
    pub fn new(issuer: Option<&'a str>, sid: &'a str, ended_micros: u64, keep_until: u64) -> Self {
        Self {
            issuer,
            sid,
            ended_micros,
            keep_until,
        }
    }

    /// The issuer of the session's tokens.
    pub fn issuer(&self) -> Option<&'a str> {
        self.issuer
    }

    /// The session id (the tokens' `sid`).
    pub fn sid(&self) -> &'a str {
        self.sid
    }

    /// When the session ended, in microseconds since the Unix epoch.
    pub fn ended_micros(&self) -> u64 {
        self.ended_micros
    }

    /// When the entry no longer matters, in Unix seconds.
    pub fn keep_until(&self) -> u64 {
        self.keep_until
    }
}

/// How long a layer accepts tokens, which is what a store needs to know to keep each
/// revocation exactly as long as that layer could still accept a token it covers.
///
/// Every [`JwtAuthLayer`](crate::JwtAuthLayer) tells its store its own rules when it is
/// built ([`RevocationStore::retain_for`]), so that retention is judged where tokens are
/// checked: an instance with a larger leeway or a longer lifetime cap than the one that
/// recorded a logout keeps the entry for as long as it needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acceptance {
    leeway: u64,
    max_lifetime: u64,
}

impl Acceptance {
    /// The rules of a layer with this leeway (on `exp`, `nbf` and `iat`) and this cap
    /// on a token's lifetime (`exp - iat`), both counted in whole seconds.
    pub fn new(leeway: Duration, max_lifetime: Duration) -> Self {
        Self {
            leeway: leeway.as_secs(),
            max_lifetime: max_lifetime.as_secs(),
        }
    }

    pub(crate) fn from_secs(leeway: u64, max_lifetime: u64) -> Self {
        Self {
            leeway,
            max_lifetime,
        }
    }

    /// The leeway, in seconds.
    pub fn leeway(&self) -> u64 {
        self.leeway
    }

    /// The longest accepted `exp - iat`, in seconds.
    pub fn max_lifetime(&self) -> u64 {
        self.max_lifetime
    }

    /// The first second (Unix time) at which a token expiring at `exp` can no longer
    /// pass this layer's verification: how long its denylist entry is needed.
    pub fn token_needed_until(&self, exp: u64) -> u64 {
        exp.saturating_add(self.leeway).saturating_add(1)
    }

    /// The first second at which no token issued at or before `cutoff_micros` can pass
    /// this layer's verification (its `exp` is at most `iat` plus the lifetime cap):
    /// how long a logout-everywhere cutoff is needed.
    pub fn cutoff_needed_until(&self, cutoff_micros: u64) -> u64 {
        (cutoff_micros / 1_000_000)
            .saturating_add(self.max_lifetime)
            .saturating_add(self.leeway)
            .saturating_add(1)
    }

    /// The first second at which no token of a session ended at `ended_micros` can pass
    /// (the last was issued at its end at the latest): how long the ended session is
    /// needed. The same rule as [`cutoff_needed_until`](Self::cutoff_needed_until).
    pub fn session_needed_until(&self, ended_micros: u64) -> u64 {
        self.cutoff_needed_until(ended_micros)
    }

    /// The rules that accept whatever either accepts.
    #[must_use]
    pub fn widest(self, other: Self) -> Self {
        Self {
            leeway: self.leeway.max(other.leeway),
            max_lifetime: self.max_lifetime.max(other.max_lifetime),
        }
    }
}

/// Where revocations are recorded and checked.
///
/// Implementations must keep a denylist entry until its
/// [`keep_until`](RevokedToken::keep_until) and a cutoff until its
/// [`keep_until`](SubjectCutoff::keep_until) (never evicted earlier), and a subject
/// cutoff must only ever move forward: recording an older cutoff than the one held
/// leaves the newer one in place; an ended session is kept until its
/// [`keep_until`](RevokedSession::keep_until). A store that serves several instances should also keep
/// entries for as long as each instance's [`Acceptance`] needs them
/// ([`retain_for`](Self::retain_for)), and judge expiry on the wall clock that tokens are
/// judged by.
///
/// [`check`](Self::check) runs on every authenticated request. A store should answer it
/// from memory ([`Check::Ready`]); [`MemoryStore`](crate::MemoryStore) and the Redis store
/// do.
pub trait RevocationStore: Send + Sync + 'static {
    /// Why the store could not answer or record. Its `source()` chain is kept.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The future of a check that is not answered at once.
    type CheckFuture: Future<Output = Result<RevocationStatus, Self::Error>> + Send + 'static;

    /// Whether `token` (already verified) has been revoked.
    fn check(&self, token: &TokenInfo) -> Check<Self::CheckFuture>;

    /// Puts one token on the denylist.
    fn revoke(
        &self,
        token: &RevokedToken<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Records a logout-everywhere cutoff for a subject, keeping the later of the new and
    /// any existing cutoff.
    fn revoke_subject(
        &self,
        cutoff: &SubjectCutoff<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Ends a login session: every token carrying its `sid` is refused from now on
    /// (checks look at a token's session only when it names one).
    fn revoke_session(
        &self,
        session: &RevokedSession<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Told by each layer built on this store how long it accepts tokens: from then on,
    /// keep every entry at least until [`Acceptance::token_needed_until`] (denylist) or
    /// [`Acceptance::cutoff_needed_until`] (cutoffs) of the widest rules told, even when
    /// the entry was recorded with a shorter `keep_until` by an instance with narrower
    /// rules. The default does nothing: the writers' `keep_until` then decides alone.
    fn retain_for(&self, acceptance: &Acceptance) {
        let _ = acceptance;
    }
}

impl<R: RevocationStore> RevocationStore for Arc<R> {
    type Error = R::Error;
    type CheckFuture = R::CheckFuture;

    fn check(&self, token: &TokenInfo) -> Check<Self::CheckFuture> {
        (**self).check(token)
    }

    fn revoke(
        &self,
        token: &RevokedToken<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).revoke(token)
    }

    fn revoke_subject(
        &self,
        cutoff: &SubjectCutoff<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).revoke_subject(cutoff)
    }

    fn revoke_session(
        &self,
        session: &RevokedSession<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).revoke_session(session)
    }

    fn retain_for(&self, acceptance: &Acceptance) {
        (**self).retain_for(acceptance);
    }
}
