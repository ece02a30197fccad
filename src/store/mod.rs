//! Where revocations live: the [`RevocationStore`] trait and its implementations.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use crate::TokenInfo;
use crate::clock;

pub(crate) mod memory;
#[cfg(feature = "redis")]
pub(crate) mod redis;

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

/// Where revocations are recorded and checked.
///
/// Implementations must keep a denylist entry until its
/// [`keep_until`](RevokedToken::keep_until) (not longer, never evicted earlier), and a
/// subject cutoff must only ever move forward: recording an older cutoff than the one
/// held leaves the newer one in place.
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
}
