//! Logging out: revoking one token, or every token of a subject.

use std::fmt;
use std::sync::Arc;

use crate::TokenInfo;
use crate::clock;
use crate::error::RevokeError;
use crate::store::{RevocationStore, RevokedToken, SubjectCutoff};

/// Revokes tokens in a layer's store, with the layer's leeway and lifetime settings.
///
/// Get one from [`JwtAuthLayer::revoker`](crate::JwtAuthLayer::revoker) and keep it in
/// your application state; cloning is cheap.
///
/// Every method returns `Err` when the store did not record the revocation: the handler
/// must then not report the logout as done.
pub struct Revoker<R> {
    store: Arc<R>,
    leeway: u64,
    max_lifetime: u64,
}

impl<R> Clone for Revoker<R> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
        }
    }
}

impl<R> fmt::Debug for Revoker<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revoker")
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .finish_non_exhaustive()
    }
}

impl<R> Revoker<R> {
    pub(crate) fn new(store: Arc<R>, leeway: u64, max_lifetime: u64) -> Self {
        Self {
            store,
            leeway,
            max_lifetime,
        }
    }

    /// The store revocations go to.
    pub fn store(&self) -> &R {
        &self.store
    }
}

impl<R: RevocationStore> Revoker<R> {
    /// Revokes exactly this token ("log out"): its `jti` (per issuer) goes on the
    /// denylist until the token's `exp` plus the leeway, when it could no longer pass
    /// anyway.
    ///
    /// # Errors
    ///
    /// [`RevokeError`] when the store did not record it.
    pub async fn revoke(&self, token: &TokenInfo) -> Result<(), RevokeError> {
        let keep_until = token
            .expires_at()
            .saturating_add(self.leeway)
            .saturating_add(1);
        let entry = RevokedToken::for_token(token, keep_until);
        self.store.revoke(&entry).await.map_err(RevokeError::new)
    }

    /// Revokes every token of this token's subject issued up to now ("log out
    /// everywhere"), this one included.
    ///
    /// # Errors
    ///
    /// [`RevokeError`] when the store did not record it.
    pub async fn revoke_all(&self, token: &TokenInfo) -> Result<(), RevokeError> {
        self.revoke_subject(token.issuer(), token.subject()).await
    }

    /// Revokes every token of `subject` (from `issuer`) issued up to now, e.g. from an
    /// admin action or after a password change.
    ///
    /// The cutoff is a stamp of the crate's strictly increasing microsecond clock: a
    /// token this process issues after the call is accepted, one issued before it is
    /// refused, even within the same millisecond. Whole-second tokens from other issuers
    /// are refused when issued in the cutoff's second (see the crate docs).
    ///
    /// # Errors
    ///
    /// [`RevokeError`] when the store did not record it.
    pub async fn revoke_subject(
        &self,
        issuer: Option<&str>,
        subject: &str,
    ) -> Result<(), RevokeError> {
        let cutoff = clock::stamp();
        let keep_until = (cutoff / 1_000_000)
            .saturating_add(self.max_lifetime)
            .saturating_add(self.leeway)
            .saturating_add(1);
        let entry = SubjectCutoff::new(issuer, subject, cutoff, keep_until);
        self.store
            .revoke_subject(&entry)
            .await
            .map_err(RevokeError::new)
    }
}
