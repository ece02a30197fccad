//! Refresh tokens in a store: the [`SessionStore`] trait and the values it takes and
//! returns.
//!
//! A store never sees a refresh token, only its SHA-256 hash ([`RefreshHash`]): a dump of
//! the store yields nothing that can be exchanged.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::RevocationStore;

/// The SHA-256 hash of a refresh token: all a store keeps of it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefreshHash([u8; 32]);

impl RefreshHash {
    /// The hash of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The hash's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash in lowercase hexadecimal (64 characters).
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        let mut out = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

impl fmt::Debug for RefreshHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a secret, but a prefix is enough to tell two apart.
        write!(f, "RefreshHash({}..)", &self.to_hex()[..8])
    }
}

/// A new refresh token to record: the first of a login session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshRecord<'a> {
    issuer: Option<&'a str>,
    subject: &'a str,
    sid: &'a str,
    hash: &'a RefreshHash,
    started_micros: u64,
    session_expires_at: u64,
    expires_at: u64,
}

impl<'a> RefreshRecord<'a> {
    /// The refresh token hashed as `hash` of the session `sid` of `subject` (from
    /// `issuer`), started at `started_micros` (the issue stamp of its first access
    /// token: a logout-everywhere cutoff at or after it ends the session), that cannot
    /// be refreshed after `session_expires_at` (Unix seconds, the absolute lifetime)
    /// and whose token expires at `expires_at` (Unix seconds, at most the former).
    pub fn new(
        issuer: Option<&'a str>,
        subject: &'a str,
        sid: &'a str,
        hash: &'a RefreshHash,
        started_micros: u64,
        session_expires_at: u64,
        expires_at: u64,
    ) -> Self {
        Self {
            issuer,
            subject,
            sid,
            hash,
            started_micros,
            session_expires_at,
            expires_at: expires_at.min(session_expires_at),
        }
    }

    /// The issuer of the session's tokens.
    pub fn issuer(&self) -> Option<&'a str> {
        self.issuer
    }

    /// The session's subject.
    pub fn subject(&self) -> &'a str {
        self.subject
    }

    /// The session id.
    pub fn sid(&self) -> &'a str {
        self.sid
    }

    /// The token's hash.
    pub fn hash(&self) -> &'a RefreshHash {
        self.hash
    }

    /// When the session started, in microseconds since the Unix epoch.
    pub fn started_micros(&self) -> u64 {
        self.started_micros
    }

    /// The session's absolute deadline, in Unix seconds.
    pub fn session_expires_at(&self) -> u64 {
        self.session_expires_at
    }

    /// When this token expires, in Unix seconds (never after the session's deadline).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// An exchange of a presented refresh token for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation<'a> {
    presented: &'a RefreshHash,
    new: &'a RefreshHash,
    now_millis: u64,
    new_expires_at: u64,
    reuse_interval: Duration,
}

impl<'a> Rotation<'a> {
    /// Exchange the token hashed as `presented` for the one hashed as `new`, which
    /// expires at `new_expires_at` (Unix seconds; the store caps it at the session's
    /// deadline), at `now_millis` (milliseconds since the Unix epoch); the token replaced
    /// last may be exchanged again within `reuse_interval` of its exchange.
    pub fn new(
        presented: &'a RefreshHash,
        new: &'a RefreshHash,
        now_millis: u64,
        new_expires_at: u64,
        reuse_interval: Duration,
    ) -> Self {
        Self {
            presented,
            new,
            now_millis,
            new_expires_at,
            reuse_interval,
        }
    }

    /// The presented token's hash.
    pub fn presented(&self) -> &'a RefreshHash {
        self.presented
    }

    /// The new token's hash.
    pub fn new_hash(&self) -> &'a RefreshHash {
        self.new
    }

    /// The time of the exchange, in milliseconds since the Unix epoch. A store shared by
    /// several instances may use its own clock instead, so that they agree.
    pub fn now_millis(&self) -> u64 {
        self.now_millis
    }

    /// When the new token expires, in Unix seconds, before the session's cap.
    pub fn new_expires_at(&self) -> u64 {
        self.new_expires_at
    }

    /// How long the previous token may be exchanged again.
    pub fn reuse_interval(&self) -> Duration {
        self.reuse_interval
    }
}

/// The session a refresh token belongs to, as [`RotateOutcome`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSession {
    /// The issuer of the session's tokens.
    pub issuer: Option<String>,
    /// The session's subject.
    pub subject: String,
    /// The session id.
    pub sid: String,
}

/// What [`SessionStore::rotate_refresh`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotateOutcome {
    /// The new token is the session's current one, and expires at `expires_at` (Unix
    /// seconds).
    Rotated {
        /// The session.
        session: RefreshSession,
        /// When the new token expires (Unix seconds).
        expires_at: u64,
    },
    /// The presented token had already been exchanged: the session's refresh tokens are
    /// dead. The caller must end the session ([`RevocationStore::revoke_session`]) so
    /// that its access tokens are refused too.
    Reused {
        /// The session.
        session: RefreshSession,
    },
    /// The session was ended or its subject logged out everywhere since it started: its
    /// refresh tokens are dead.
    Revoked,
    /// Unknown, expired, or superseded: nothing was changed.
    Invalid,
}

/// A [`RevocationStore`] that also keeps refresh tokens, so that login sessions can be
/// refreshed ([`Sessions`](crate::Sessions)).
///
/// Implementations keep only hashes; a rotation is one atomic step (two concurrent
/// exchanges of one token never both succeed, on one instance or several); ending a
/// session ([`RevocationStore::revoke_session`]) or a cutoff of its subject at or after
/// its start ([`RevocationStore::revoke_subject`]) kills its refresh tokens; records leave
/// the store by themselves once expired.
pub trait SessionStore: RevocationStore {
    /// Records the first refresh token of a session.
    fn create_refresh(
        &self,
        record: &RefreshRecord<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Exchanges a refresh token, atomically:
    ///
    /// - the session's current token, in a live session → the new token becomes
    ///   current, the presented one is used up and kept as the previous one →
    ///   [`RotateOutcome::Rotated`];
    /// - the previous token, within the reuse interval of its exchange → the same (the
    ///   new token replaces the current one, which dies);
    /// - any other used token of the session → the session's refresh tokens die →
    ///   [`RotateOutcome::Reused`];
    /// - a session ended or cut off → [`RotateOutcome::Revoked`];
    /// - anything else → [`RotateOutcome::Invalid`].
    ///
    /// Repeating a call that succeeded (the same presented and new hashes, say after a
    /// lost reply) answers `Rotated` again.
    fn rotate_refresh(
        &self,
        rotation: &Rotation<'_>,
    ) -> impl Future<Output = Result<RotateOutcome, Self::Error>> + Send;
}

impl<S: SessionStore> SessionStore for Arc<S> {
    fn create_refresh(
        &self,
        record: &RefreshRecord<'_>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        (**self).create_refresh(record)
    }

    fn rotate_refresh(
        &self,
        rotation: &Rotation<'_>,
    ) -> impl Future<Output = Result<RotateOutcome, Self::Error>> + Send {
        (**self).rotate_refresh(rotation)
    }
}
