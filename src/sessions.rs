//! Login sessions with refresh tokens: rotation on every exchange, and reuse detection
//! (RFC 9700 §4.14.2) that ends the whole session.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cookie::SameSite;
use http::HeaderValue;

use crate::clock;
use crate::error::ConfigError;
use crate::issue::{CookieAttrs, IssuedToken, TokenIssuer, random_base64};
use crate::revoke::Revoker;
use crate::store::refresh::{RefreshHash, RefreshRecord, RotateOutcome, Rotation, SessionStore};

type BoxError = Box<dyn StdError + Send + Sync + 'static>;
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;

/// [`Sessions::refresh_lifetime`]'s default: 14 days.
pub const DEFAULT_REFRESH_LIFETIME: Duration = Duration::from_secs(14 * 24 * 3600);

/// [`Sessions::session_lifetime`]'s default: 30 days.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest refresh token [`Sessions::refresh`] looks at; anything longer is
/// [`SessionErrorKind::Invalid`] without a store lookup.
pub const MAX_REFRESH_TOKEN_LEN: usize = 512;

/// The refresh half of a [`SessionStore`], with its type erased so that [`Sessions`]
/// names no store. Refreshes are rare next to checks: one boxed future each is fine.
trait DynSessionStore: Send + Sync {
    fn create<'a>(&'a self, record: RefreshRecord<'a>) -> BoxFuture<'a, ()>;
    fn rotate<'a>(&'a self, rotation: Rotation<'a>) -> BoxFuture<'a, RotateOutcome>;
}

impl<S: SessionStore> DynSessionStore for S {
    fn create<'a>(&'a self, record: RefreshRecord<'a>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            SessionStore::create_refresh(self, &record)
                .await
                .map_err(BoxError::from)
        })
    }

    fn rotate<'a>(&'a self, rotation: Rotation<'a>) -> BoxFuture<'a, RotateOutcome> {
        Box::pin(async move {
            SessionStore::rotate_refresh(self, &rotation)
                .await
                .map_err(BoxError::from)
        })
    }
}

/// A refresh token as handed to the client: 256 random bits, URL-safe base64 (43
/// characters). Only its hash is stored. Its `Debug` never shows it.
#[derive(Clone)]
pub struct RefreshToken {
    token: String,
    expires_at: u64,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// The token, to send to the client.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// When it expires, in Unix seconds (never after the session's absolute deadline).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// Seconds until it expires, from now (0 once expired).
    pub fn expires_in(&self) -> u64 {
        self.expires_at.saturating_sub(clock::now_secs())
    }
}

/// What kind of failure a [`SessionError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionErrorKind {
    /// Unknown, expired, superseded or malformed: answer 401 `invalid_grant`.
    Invalid,
    /// The token had already been exchanged: the session is ended (its refresh tokens
    /// and its access tokens are refused). Answer 401 `invalid_grant`.
    Reused,
    /// The session was ended (logout) or its subject logged out everywhere. Answer 401
    /// `invalid_grant`.
    Revoked,
    /// The store failed or timed out, or no token could be made: nothing was handed
    /// out (and for a reuse, the session's end may not be recorded). Answer 503.
    Unavailable,
}

/// A session start or refresh that handed out no token.
#[derive(Debug)]
pub struct SessionError {
    kind: SessionErrorKind,
    source: Option<BoxError>,
}

impl SessionError {
    fn new(kind: SessionErrorKind) -> Self {
        Self { kind, source: None }
    }

    fn unavailable(source: impl Into<BoxError>) -> Self {
        Self {
            kind: SessionErrorKind::Unavailable,
            source: Some(source.into()),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> SessionErrorKind {
        self.kind
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            SessionErrorKind::Invalid => "the refresh token is not valid",
            SessionErrorKind::Reused => {
                "the refresh token was already used: its session has been ended"
            }
            SessionErrorKind::Revoked => "the refresh token's session has ended",
            SessionErrorKind::Unavailable => "the session store could not record the exchange",
        })
    }
}

impl StdError for SessionError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// A new access token and refresh token of one session.
#[derive(Debug, Clone)]
pub struct SessionTokens {
    /// The access token, carrying the session's `sid`.
    pub access: IssuedToken,
    /// The refresh token, to exchange for the next pair.
    pub refresh: RefreshToken,
}

/// Starts login sessions and exchanges their refresh tokens, in a layer's store.
///
/// Get one from [`JwtAuthLayer::sessions`](crate::JwtAuthLayer::sessions); cloning is
/// cheap and its type names no store.
///
/// Every exchange rotates: the presented refresh token is used up and a new one is
/// handed out with a new access token of the same session. Presenting a used token
/// again ends the whole session ([`SessionErrorKind::Reused`]): whoever holds the newer
/// token (the user, or a thief) is logged out, on every instance the store reaches.
/// Logging out ([`Revoker::revoke`], [`Revoker::end_session`]) or logging out everywhere
/// ([`Revoker::revoke_all`], [`Revoker::revoke_subject`]) kills the refresh tokens too.
///
/// ```
/// use tower_jwt_auth::{JwtAuthLayer, MemoryStore, SessionErrorKind, TokenIssuer, VerificationKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let secret = b"an example secret of at least 32 bytes!";
/// let auth = JwtAuthLayer::builder(MemoryStore::new())
///     .key(VerificationKey::hs256(secret)?)
///     .build()?;
/// let sessions = auth.sessions(TokenIssuer::hs256(secret)?);
///
/// let login = sessions.start("alice").await?;
/// let next = sessions.refresh(login.refresh.as_str()).await?;
/// assert_eq!(next.access.info().session_id(), login.access.info().session_id());
///
/// // The first refresh token again: reuse, the session is over.
/// let reused = sessions.refresh(login.refresh.as_str()).await.unwrap_err();
/// assert_eq!(reused.kind(), SessionErrorKind::Reused);
/// let gone = sessions.refresh(next.refresh.as_str()).await.unwrap_err();
/// assert_eq!(gone.kind(), SessionErrorKind::Invalid);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Sessions {
    store: Arc<dyn DynSessionStore>,
    issuer: Arc<TokenIssuer>,
    revoker: Revoker,
    refresh_lifetime: Duration,
    session_lifetime: Duration,
    reuse_interval: Duration,
}

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sessions")
            .field("issuer", &self.issuer)
            .field("refresh_lifetime", &self.refresh_lifetime)
            .field("session_lifetime", &self.session_lifetime)
            .field("reuse_interval", &self.reuse_interval)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    pub(crate) fn new<S: SessionStore>(
        store: Arc<S>,
        issuer: TokenIssuer,
        revoker: Revoker,
    ) -> Self {
        Self {
            store,
            issuer: Arc::new(issuer),
            revoker,
            refresh_lifetime: DEFAULT_REFRESH_LIFETIME,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            reuse_interval: Duration::ZERO,
        }
    }

    /// How long a refresh token lives unless exchanged (default 14 days); each exchange
    /// hands out a token with a fresh lifetime (sliding), never past the session's
    /// absolute lifetime. Whole seconds, at least one.
    #[must_use]
    pub fn refresh_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// How long a session can be refreshed after it started, whatever the exchanges
    /// (default 30 days). Whole seconds, at least one.
    #[must_use]
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.session_lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// How long after an exchange the token it used up may be exchanged again without
    /// counting as a reuse (two tabs refreshing at once; Auth0's "rotation overlap").
    /// Default zero: any second exchange is a reuse. Millisecond resolution.
    #[must_use]
    pub fn reuse_interval(mut self, interval: Duration) -> Self {
        self.reuse_interval = interval;
        self
    }

    /// The configured refresh-token lifetime.
    pub fn refresh_lifetime_secs(&self) -> u64 {
        self.refresh_lifetime.as_secs()
    }

    /// Starts a login session for `subject`: a new session id, an access token in it
    /// and its first refresh token, recorded in the store.
    ///
    /// # Errors
    ///
    /// [`SessionErrorKind::Unavailable`] when the store did not record the refresh
    /// token or no token could be made.
    pub async fn start(&self, subject: &str) -> Result<SessionTokens, SessionError> {
        let sid = TokenIssuer::new_session_id().map_err(SessionError::unavailable)?;
        let access = self
            .issuer
            .issue_in_session(subject, &sid, &())
            .map_err(SessionError::unavailable)?;
        let (token, hash) = new_refresh()?;
        let started = access.issued_at_micros();
        let deadline = (started / 1_000_000).saturating_add(self.session_lifetime.as_secs());
        let expires_at = (started / 1_000_000)
            .saturating_add(self.refresh_lifetime.as_secs())
            .min(deadline);
        let record = RefreshRecord::new(
            access.info().issuer(),
            subject,
            &sid,
            &hash,
            started,
            deadline,
            expires_at,
        );
        self.store
            .create(record)
            .await
            .map_err(SessionError::unavailable)?;
        Ok(SessionTokens {
            access,
            refresh: RefreshToken { token, expires_at },
        })
    }

    /// Exchanges `refresh_token` for a new access token (same session) and a new
    /// refresh token; the presented one is used up.
    ///
    /// A token that is empty, longer than [`MAX_REFRESH_TOKEN_LEN`] or not URL-safe
    /// base64 (an access token, say) is [`SessionErrorKind::Invalid`] without a store
    /// lookup.
    ///
    /// # Errors
    ///
    /// [`SessionErrorKind::Invalid`], [`Reused`](SessionErrorKind::Reused) (the session
    /// has been ended), [`Revoked`](SessionErrorKind::Revoked), or
    /// [`Unavailable`](SessionErrorKind::Unavailable) when the store did not record the
    /// exchange: no token is handed out whose rotation was not recorded.
    pub async fn refresh(&self, refresh_token: &str) -> Result<SessionTokens, SessionError> {
        if !plausible(refresh_token) {
            return Err(SessionError::new(SessionErrorKind::Invalid));
        }
        let presented = RefreshHash::of(refresh_token);
        let (token, hash) = new_refresh()?;
        let now = clock::now_micros();
        let rotation = Rotation::new(
            &presented,
            &hash,
            now / 1000,
            (now / 1_000_000).saturating_add(self.refresh_lifetime.as_secs()),
            self.reuse_interval,
        );
        let outcome = self
            .store
            .rotate(rotation)
            .await
            .map_err(SessionError::unavailable)?;
        match outcome {
            RotateOutcome::Rotated {
                session,
                expires_at,
            } => {
                let access = self
                    .issuer
                    .issue_in_session(&session.subject, &session.sid, &())
                    .map_err(SessionError::unavailable)?;
                Ok(SessionTokens {
                    access,
                    refresh: RefreshToken { token, expires_at },
                })
            }
            RotateOutcome::Reused { session } => {
                self.revoker
                    .end_session(session.issuer.as_deref(), &session.sid)
                    .await
                    .map_err(SessionError::unavailable)?;
                Err(SessionError::new(SessionErrorKind::Reused))
            }
            RotateOutcome::Revoked => Err(SessionError::new(SessionErrorKind::Revoked)),
            _ => Err(SessionError::new(SessionErrorKind::Invalid)),
        }
    }
}

/// Whether `token` could be one of ours: 1 to 512 bytes of URL-safe base64.
fn plausible(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= MAX_REFRESH_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new refresh token (256 random bits) and its hash.
fn new_refresh() -> Result<(String, RefreshHash), SessionError> {
    let token = random_base64::<32>("no randomness for the refresh token")
        .map_err(SessionError::unavailable)?;
    let hash = RefreshHash::of(&token);
    Ok((token, hash))
}

/// The refresh-token cookie: `Set-Cookie` values for login (and each refresh) and
/// logout.
///
/// `HttpOnly`, `Secure` unless turned off (plain-HTTP development), `SameSite=Strict`
/// (never sent on a cross-site request), `Path=/refresh` unless changed (never sent to
/// the rest of the application), `Max-Age` equal to the token's remaining lifetime. The
/// clearing cookie has the same name and `Path`, an empty value and `Max-Age=0`.
#[derive(Clone, Debug)]
pub struct RefreshCookie {
    attrs: CookieAttrs,
}

impl RefreshCookie {
    /// A cookie named `name` (for example `refresh_token`), on `Path=/refresh`.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidSetting`](crate::ConfigErrorKind::InvalidSetting) if
    /// `name` is not a valid cookie name.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            attrs: CookieAttrs::new(name.into(), "/refresh", SameSite::Strict)?,
        })
    }

    /// Whether to mark the cookie `Secure`. Default `true`.
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.attrs.set_secure(secure);
        self
    }

    /// Sets the cookie's `Path` (default `/refresh`): the refresh endpoint's path.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidSetting`](crate::ConfigErrorKind::InvalidSetting) for a
    /// path that is empty, does not start with `/`, or holds `;`, spaces or control
    /// characters.
    pub fn path(mut self, path: impl Into<String>) -> Result<Self, ConfigError> {
        self.attrs.set_path(path.into())?;
        Ok(self)
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        self.attrs.name()
    }

    /// The `Set-Cookie` value that stores `token`.
    pub fn login(&self, token: &RefreshToken) -> HeaderValue {
        self.attrs.header(token.as_str(), token.expires_in())
    }

    /// The `Set-Cookie` value that deletes the cookie.
    pub fn logout(&self) -> HeaderValue {
        self.attrs.header("", 0)
    }

    /// Whether a request that carries this cookie may be answered: the cross-origin
    /// check the layer applies to cookie-carried access tokens (`Sec-Fetch-Site`, else
    /// `Origin` against `Host`; `GET`, `HEAD` and `OPTIONS` pass), so that another site
    /// cannot make the browser exchange the user's refresh token.
    pub fn same_origin(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> bool {
        crate::cross_origin::check(method, uri, headers, &[]).is_ok()
    }
}
