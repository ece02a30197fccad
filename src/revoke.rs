//! Logging out: revoking one token, every token of a subject, or a token held as a
//! string.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::claims::{TokenInfo, TokenLocation};
use crate::clock;
use crate::error::RevokeError;
use crate::store::{RevocationStore, RevokedSession, RevokedToken, SubjectCutoff};
use crate::verify::Verifier;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;
type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>;

/// The writing half of a [`RevocationStore`], with its type erased so that [`Revoker`]
/// names no store. Logouts are rare: one boxed future each is off the hot path.
trait DynStore: Send + Sync {
    fn revoke<'a>(&'a self, token: RevokedToken<'a>) -> BoxFuture<'a>;
    fn revoke_subject<'a>(&'a self, cutoff: SubjectCutoff<'a>) -> BoxFuture<'a>;
    fn revoke_session<'a>(&'a self, session: RevokedSession<'a>) -> BoxFuture<'a>;
}

impl<R: RevocationStore> DynStore for R {
    fn revoke<'a>(&'a self, token: RevokedToken<'a>) -> BoxFuture<'a> {
        Box::pin(async move {
            RevocationStore::revoke(self, &token)
                .await
                .map_err(BoxError::from)
        })
    }

    fn revoke_subject<'a>(&'a self, cutoff: SubjectCutoff<'a>) -> BoxFuture<'a> {
        Box::pin(async move {
            RevocationStore::revoke_subject(self, &cutoff)
                .await
                .map_err(BoxError::from)
        })
    }

    fn revoke_session<'a>(&'a self, session: RevokedSession<'a>) -> BoxFuture<'a> {
        Box::pin(async move {
            RevocationStore::revoke_session(self, &session)
                .await
                .map_err(BoxError::from)
        })
    }
}

/// Revokes tokens in a layer's store, with the layer's rules.
///
/// Get one from [`JwtAuthLayer::revoker`](crate::JwtAuthLayer::revoker) and keep it in
/// your application state (axum's `State` or `Extension`); cloning is cheap. Its type
/// names no store, so a logout handler is the same whatever store the layer uses.
///
/// Every method returns `Err` when the revocation was not recorded: the handler must
/// then not report the logout as done.
///
/// ```
/// use tower_jwt_auth::{JwtAuthLayer, MemoryStore, TokenIssuer, VerificationKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = b"an example secret of at least 32 bytes!";
/// let auth = JwtAuthLayer::builder(MemoryStore::new())
///     .key(VerificationKey::hs256(secret)?)
///     .build()?;
/// let token = TokenIssuer::hs256(secret)?.issue("alice")?;
///
/// // A logout endpoint that receives the token as a string, like jwt-redis's `destroy`.
/// let revoker = auth.revoker();
/// let info = revoker.revoke_token(token.as_str()).await?;
/// assert_eq!(info.subject(), "alice");
/// # use tower_jwt_auth::{Check, RevocationStatus, RevocationStore};
/// assert!(matches!(auth.store().check(&info), Check::Ready(Ok(RevocationStatus::Revoked))));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Revoker {
    store: Arc<dyn DynStore>,
    verifier: Arc<Verifier>,
}

impl fmt::Debug for Revoker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revoker")
            .field("leeway", &self.verifier.leeway())
            .field("max_lifetime", &self.verifier.max_lifetime())
            .finish_non_exhaustive()
    }
}

impl Revoker {
    pub(crate) fn new<R: RevocationStore>(store: Arc<R>, verifier: Arc<Verifier>) -> Self {
        Self { store, verifier }
    }

    /// Revokes exactly this token ("log out"): its `jti` (per issuer) goes on the
    /// denylist until the token's `exp` plus the leeway, when it could no longer pass
    /// anyway. A token that belongs to a login session (its `sid`,
    /// [`TokenInfo::session_id`]) ends that session too, as
    /// [`end_session`](Self::end_session) does: every token of the session is refused.
    ///
    /// # Errors
    ///
    /// [`RevokeError`] of kind [`RevokeErrorKind::Unrecorded`](crate::RevokeErrorKind::Unrecorded) when the store did not
    /// record it (or, for a session's token, did not record the session's end).
    pub async fn revoke(&self, token: &TokenInfo) -> Result<(), RevokeError> {
        let keep_until = token
            .expires_at()
            .saturating_add(self.verifier.leeway())
            .saturating_add(1);
        let entry = RevokedToken::for_token(token, keep_until);
        self.store
            .revoke(entry)
            .await
            .map_err(RevokeError::unrecorded)?;
        match token.session_id() {
            Some(sid) => self.end_session(token.issuer(), sid).await,
            None => Ok(()),
        }
    }

    /// Ends the login session `sid` of `issuer` (`None` for this crate's own tokens
    /// unless the issuer sets `iss`): every token carrying that `sid` is refused from
    /// now on, on every instance the store reaches, for as long as one could still pass
    /// (the end plus the lifetime cap and the leeway).
    ///
    /// # Errors
    ///
    /// [`RevokeErrorKind::Unrecorded`](crate::RevokeErrorKind::Unrecorded) when the store did not record it.
    pub async fn end_session(&self, issuer: Option<&str>, sid: &str) -> Result<(), RevokeError> {
        let ended = clock::stamp();
        let keep_until = (ended / 1_000_000)
            .saturating_add(self.verifier.max_lifetime())
            .saturating_add(self.verifier.leeway())
            .saturating_add(1);
        self.store
            .revoke_session(RevokedSession::new(issuer, sid, ended, keep_until))
            .await
            .map_err(RevokeError::unrecorded)
    }

    /// Verifies `token` with the layer's rules (as
    /// [`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify)), then revokes it as
    /// [`revoke`](Self::revoke) does, and returns what it revoked. Only a genuine token
    /// can be revoked this way: nobody can fill the denylist with made-up ids.
    ///
    /// # Errors
    ///
    /// [`RevokeErrorKind::InvalidToken`](crate::RevokeErrorKind::InvalidToken) when the token does not verify (the
    /// [`Rejection`](crate::Rejection) is the error's source and
    /// [`rejection`](RevokeError::rejection)); [`RevokeErrorKind::Unrecorded`](crate::RevokeErrorKind::Unrecorded) when the
    /// store did not record it.
    pub async fn revoke_token(&self, token: &str) -> Result<TokenInfo, RevokeError> {
        let info = self
            .verifier
            .verify::<()>(token, TokenLocation::Header)
            .map_err(RevokeError::invalid_token)?
            .token;
        self.revoke(&info).await?;
        Ok(info)
    }

    /// Revokes every token of this token's subject issued up to now ("log out
    /// everywhere"), this one included: the token itself goes on the denylist, and the
    /// cutoff is never before its issue stamp, even when that stamp is ahead of this
    /// machine's clock (within the leeway, or stamped by an instance whose clock runs
    /// ahead). Stores take a cutoff far ahead of their clock as "now plus half the
    /// leeway" (SECURITY.md, clocks): the denylist entry keeps this token refused
    /// whatever its stamp.
    ///
    /// # Errors
    ///
    /// [`RevokeErrorKind::Unrecorded`](crate::RevokeErrorKind::Unrecorded) when the store did not record both.
    pub async fn revoke_all(&self, token: &TokenInfo) -> Result<(), RevokeError> {
        self.revoke(token).await?;
        self.revoke_subject_at(token.issuer(), token.subject(), token.issue_stamp())
            .await
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
    /// [`RevokeErrorKind::Unrecorded`](crate::RevokeErrorKind::Unrecorded) when the store did not record it.
    pub async fn revoke_subject(
        &self,
        issuer: Option<&str>,
        subject: &str,
    ) -> Result<(), RevokeError> {
        self.revoke_subject_at(issuer, subject, 0).await
    }

    /// A cutoff at a fresh stamp, and at least at `covers` (a token's issue stamp).
    async fn revoke_subject_at(
        &self,
        issuer: Option<&str>,
        subject: &str,
        covers: u64,
    ) -> Result<(), RevokeError> {
        let cutoff = clock::stamp().max(covers);
        let keep_until = (cutoff / 1_000_000)
            .saturating_add(self.verifier.max_lifetime())
            .saturating_add(self.verifier.leeway())
            .saturating_add(1);
        let entry = SubjectCutoff::new(issuer, subject, cutoff, keep_until);
        self.store
            .revoke_subject(entry)
            .await
            .map_err(RevokeError::unrecorded)
    }
}
