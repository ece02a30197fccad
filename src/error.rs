//! Errors a user can cause while configuring the crate, issuing tokens or revoking them.

use std::error::Error as StdError;
use std::fmt;

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What kind of configuration mistake a [`ConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// No verification key was configured.
    NoKeys,
    /// A key could not be read (bad PEM, wrong format).
    InvalidKey,
    /// A key's algorithm does not match the key's type (for example `RS256` with an HMAC
    /// secret).
    AlgorithmMismatch,
    /// An HMAC secret is shorter than its hash output (RFC 7518 §3.2).
    WeakSecret,
    /// Two keys have the same `kid`, or more than one key has no `kid`.
    AmbiguousKeys,
    /// No usable `jsonwebtoken` crypto backend (enable feature `rust_crypto` or
    /// `aws_lc_rs`).
    NoCryptoBackend,
    /// A cookie name, domain, path, origin or other setting is not valid.
    InvalidSetting,
}

/// A configuration mistake found while building a layer, key, issuer or cookie.
///
/// Every misconfiguration is reported here, when the application starts, never as a
/// panic or a failure on the first request.
#[derive(Debug)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl ConfigError {
    pub(crate) fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// What kind of failure a [`RevokeError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeErrorKind {
    /// The store failed or timed out: the revocation was **not** recorded. The store's
    /// error is the [`source`](StdError::source). Answer 503; the client may retry.
    Unrecorded,
    /// The token given to [`Revoker::revoke_token`](crate::Revoker::revoke_token) does
    /// not verify, so there is nothing to revoke; the
    /// [`Rejection`](crate::Rejection) says why.
    InvalidToken,
}

/// A revocation (logout) that was **not** done.
///
/// A handler must not report the logout as done; the example server answers 503 for
/// [`RevokeErrorKind::Unrecorded`] and leaves the cookie in place.
#[derive(Debug)]
pub struct RevokeError {
    kind: RevokeErrorKind,
    source: BoxError,
}

impl RevokeError {
    pub(crate) fn unrecorded(source: impl Into<BoxError>) -> Self {
        Self {
            kind: RevokeErrorKind::Unrecorded,
            source: source.into(),
        }
    }

    pub(crate) fn invalid_token(rejection: crate::Rejection) -> Self {
        Self {
            kind: RevokeErrorKind::InvalidToken,
            source: Box::new(rejection),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> RevokeErrorKind {
        self.kind
    }

    /// For [`RevokeErrorKind::InvalidToken`], why the token was refused.
    pub fn rejection(&self) -> Option<&crate::Rejection> {
        self.source.downcast_ref()
    }
}

impl fmt::Display for RevokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            RevokeErrorKind::Unrecorded => {
                "the revocation could not be recorded by the revocation store"
            }
            RevokeErrorKind::InvalidToken => "the token to revoke is not valid",
        })
    }
}

impl StdError for RevokeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// What kind of failure an [`IssueError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssueErrorKind {
    /// The custom claims do not serialize to a JSON object, or use a registered claim
    /// name.
    InvalidClaims,
    /// The configured lifetime would make the token dead on arrival: under one second,
    /// or over the [`max_lifetime`](crate::TokenIssuer::max_lifetime) that the layer
    /// accepts.
    InvalidLifetime,
    /// No randomness was available for the token id.
    NoRandomness,
    /// The signing itself failed.
    Signing,
}

/// A token could not be issued; [`kind`](Self::kind) says why.
#[derive(Debug)]
pub struct IssueError {
    kind: IssueErrorKind,
    message: &'static str,
    source: Option<BoxError>,
}

impl IssueError {
    pub(crate) fn new(kind: IssueErrorKind, message: &'static str) -> Self {
        Self {
            kind,
            message,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> IssueErrorKind {
        self.kind
    }
}

impl fmt::Display for IssueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl StdError for IssueError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
