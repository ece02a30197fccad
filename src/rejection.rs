//! Why a request was refused, the RFC 6750 default response, and the pluggable hook.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Response, StatusCode, header};

/// The reason a request was refused, as a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No token was presented (401, `WWW-Authenticate: Bearer`, no error code).
    MissingToken,
    /// The request is malformed, e.g. two `Authorization` headers or `Bearer` with no
    /// token (400, `error="invalid_request"`).
    InvalidRequest,
    /// The token is malformed, badly signed, from an unknown key, or has wrong or missing
    /// claims (401, `error="invalid_token"`).
    InvalidToken,
    /// The token has expired (401, `error="invalid_token"`).
    ExpiredToken,
    /// The token is not valid yet (`nbf` in the future) (401, `error="invalid_token"`).
    ImmatureToken,
    /// The token was revoked: logged out, or its subject logged out everywhere (401,
    /// `error="invalid_token"`).
    RevokedToken,
    /// A cookie-carried token on an unsafe cross-origin request (403).
    CrossOrigin,
    /// The revocation store could not answer (503).
    StoreUnavailable,
}

/// A refused request: the kind, a fixed human-readable description (never token data)
/// and, for store failures, the underlying error.
///
/// The layer puts a clone of it in the rejection response's extensions, so outer layers
/// (logging, metrics) can tell rejections apart.
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    description: &'static str,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl Rejection {
    pub(crate) const fn new(kind: RejectionKind, description: &'static str) -> Self {
        Self {
            kind,
            description,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The category of the rejection.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// A short description, safe to show to the client.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The HTTP status of the default response.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::InvalidRequest => StatusCode::BAD_REQUEST,
            RejectionKind::CrossOrigin => StatusCode::FORBIDDEN,
            RejectionKind::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::MissingToken
            | RejectionKind::InvalidToken
            | RejectionKind::ExpiredToken
            | RejectionKind::ImmatureToken
            | RejectionKind::RevokedToken => StatusCode::UNAUTHORIZED,
        }
    }

    /// The `WWW-Authenticate` challenge of the default response (RFC 6750 §3), if any.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let error = match self.kind {
            RejectionKind::MissingToken => return Some(HeaderValue::from_static("Bearer")),
            RejectionKind::InvalidRequest => "invalid_request",
            RejectionKind::InvalidToken
            | RejectionKind::ExpiredToken
            | RejectionKind::ImmatureToken
            | RejectionKind::RevokedToken => "invalid_token",
            RejectionKind::CrossOrigin | RejectionKind::StoreUnavailable => return None,
        };
        // Descriptions are fixed ASCII strings without quotes or backslashes.
        HeaderValue::try_from(format!(
            "Bearer error=\"{error}\", error_description=\"{}\"",
            self.description
        ))
        .ok()
    }

    /// The default response: the status, the challenge and an empty body.
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = self.status();
        if let Some(challenge) = self.www_authenticate() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if self.kind == RejectionKind::StoreUnavailable {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description)
    }
}

impl StdError for Rejection {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// Builds the response for a refused request.
///
/// Implemented for [`DefaultRejection`] and for any `Fn(&Rejection) -> Response<B>`
/// closure. Whatever it returns, the layer adds the [`Rejection`] to the response's
/// extensions.
pub trait OnRejection<B> {
    /// The response for `rejection`.
    fn on_rejection(&self, rejection: &Rejection) -> Response<B>;
}

/// The RFC 6750 response of [`Rejection::to_response`]: status, `WWW-Authenticate`,
/// empty body.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl<B: Default> OnRejection<B> for DefaultRejection {
    fn on_rejection(&self, rejection: &Rejection) -> Response<B> {
        rejection.to_response()
    }
}

impl<B, F> OnRejection<B> for F
where
    F: Fn(&Rejection) -> Response<B>,
{
    fn on_rejection(&self, rejection: &Rejection) -> Response<B> {
        self(rejection)
    }
}

/// The fixed rejections, so the request path builds them without allocating.
pub(crate) mod reasons {
    use super::{Rejection, RejectionKind::*};

    pub(crate) const MISSING: Rejection = Rejection::new(MissingToken, "no token was presented");
    pub(crate) const TWO_AUTHORIZATION: Rejection = Rejection::new(
        InvalidRequest,
        "more than one Authorization header was sent",
    );
    pub(crate) const BAD_AUTHORIZATION: Rejection = Rejection::new(
        InvalidRequest,
        "the Authorization header is not valid Bearer credentials",
    );
    pub(crate) const TWO_COOKIES: Rejection =
        Rejection::new(InvalidRequest, "the token cookie was sent more than once");
    pub(crate) const TOO_LONG: Rejection =
        Rejection::new(InvalidToken, "the token is longer than allowed");
    pub(crate) const MALFORMED: Rejection = Rejection::new(InvalidToken, "the token is malformed");
    pub(crate) const BAD_ALGORITHM: Rejection = Rejection::new(
        InvalidToken,
        "the token's algorithm is not accepted for its key",
    );
    pub(crate) const UNKNOWN_KEY: Rejection =
        Rejection::new(InvalidToken, "the token's key is unknown");
    pub(crate) const BAD_SIGNATURE: Rejection =
        Rejection::new(InvalidToken, "the token's signature is invalid");
    pub(crate) const BAD_CLAIMS: Rejection =
        Rejection::new(InvalidToken, "the token's claims are missing or malformed");
    pub(crate) const BAD_ISSUER: Rejection =
        Rejection::new(InvalidToken, "the token's issuer is not accepted");
    pub(crate) const BAD_AUDIENCE: Rejection =
        Rejection::new(InvalidToken, "the token's audience is not accepted");
    pub(crate) const BAD_TYPE: Rejection =
        Rejection::new(InvalidToken, "the token's type is not accepted");
    pub(crate) const FUTURE_IAT: Rejection =
        Rejection::new(InvalidToken, "the token was issued in the future");
    pub(crate) const TOO_LONG_LIVED: Rejection =
        Rejection::new(InvalidToken, "the token's lifetime is longer than allowed");
    pub(crate) const EXPIRED: Rejection = Rejection::new(ExpiredToken, "the token has expired");
    pub(crate) const IMMATURE: Rejection =
        Rejection::new(ImmatureToken, "the token is not valid yet");
    pub(crate) const REVOKED: Rejection =
        Rejection::new(RevokedToken, "the token has been revoked");
    pub(crate) const CROSS_ORIGIN: Rejection = Rejection::new(
        CrossOrigin,
        "cross-origin request with a cookie token refused",
    );
    pub(crate) const STORE_DOWN: Rejection =
        Rejection::new(StoreUnavailable, "the revocation store is unavailable");
}
