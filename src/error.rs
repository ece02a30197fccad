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

/// A revocation (logout) that was **not** recorded: the store failed or timed out.
///
/// A handler must not report the logout as done; the example server answers 503 and
/// leaves the cookie in place. The store's error is the [`source`](StdError::source).
#[derive(Debug)]
pub struct RevokeError {
    source: BoxError,
}

impl RevokeError {
    pub(crate) fn new(source: impl Into<BoxError>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for RevokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the revocation could not be recorded by the revocation store")
    }
}

impl StdError for RevokeError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// A token could not be issued: the claims could not be serialized, collide with a
/// registered claim, or the signing failed.
#[derive(Debug)]
pub struct IssueError {
    message: &'static str,
    source: Option<BoxError>,
}

impl IssueError {
    pub(crate) fn new(message: &'static str) -> Self {
        Self {
            message,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
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
