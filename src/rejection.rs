//! Why a request was refused, the RFC 6750 and gRPC default responses, and the pluggable
//! hook.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

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
    /// The token's identity provider has no usable key set: none fetched yet, the last
    /// one older than its `max_stale`, or the fetch its unknown `kid` needed failed
    /// (503: the server cannot tell whether the token is good).
    KeysUnavailable,
}

/// A refused request: the kind, a stable reason [`code`](Self::code), a fixed
/// human-readable description (never token data), whether the request was a gRPC call
/// and, for store failures, the underlying error.
///
/// The layer puts it in the rejection response's extensions, so outer layers (logging,
/// metrics) can tell rejections apart.
///
/// # Reason codes
///
/// [`code`](Self::code) names the precise reason, for metrics labels and log fields. The
/// codes are **stable**: a code is never renamed or given another meaning (a new reason
/// may add a new code in a minor release, so match with a fallback arm).
///
/// | code | kind | reason |
/// | --- | --- | --- |
/// | `missing` | [`MissingToken`](RejectionKind::MissingToken) | no token was presented |
/// | `two_authorization` | [`InvalidRequest`](RejectionKind::InvalidRequest) | more than one `Authorization` header |
/// | `bad_authorization` | [`InvalidRequest`](RejectionKind::InvalidRequest) | `Authorization` is not `Bearer <token>` |
/// | `two_cookies` | [`InvalidRequest`](RejectionKind::InvalidRequest) | the token cookie was sent more than once |
/// | `too_long` | [`InvalidToken`](RejectionKind::InvalidToken) | the token is longer than [`max_token_len`](crate::JwtAuthLayerBuilder::max_token_len) |
/// | `malformed` | [`InvalidToken`](RejectionKind::InvalidToken) | the token is not a well-formed JWT |
/// | `bad_algorithm` | [`InvalidToken`](RejectionKind::InvalidToken) | the token's `alg` is not its key's algorithm |
/// | `unknown_key` | [`InvalidToken`](RejectionKind::InvalidToken) | no key for the token's `kid` (or lack of one) |
/// | `bad_signature` | [`InvalidToken`](RejectionKind::InvalidToken) | the signature does not verify |
/// | `bad_claims` | [`InvalidToken`](RejectionKind::InvalidToken) | a required claim is missing or malformed |
/// | `bad_issuer` | [`InvalidToken`](RejectionKind::InvalidToken) | `iss` is not accepted |
/// | `bad_audience` | [`InvalidToken`](RejectionKind::InvalidToken) | `aud` is not accepted |
/// | `bad_type` | [`InvalidToken`](RejectionKind::InvalidToken) | `typ` is not accepted |
/// | `future_iat` | [`InvalidToken`](RejectionKind::InvalidToken) | `iat` is in the future |
/// | `too_long_lived` | [`InvalidToken`](RejectionKind::InvalidToken) | `exp - iat` is over the longest lifetime |
/// | `expired` | [`ExpiredToken`](RejectionKind::ExpiredToken) | `exp` has passed |
/// | `immature` | [`ImmatureToken`](RejectionKind::ImmatureToken) | `nbf` is in the future |
/// | `revoked` | [`RevokedToken`](RejectionKind::RevokedToken) | logged out, or its subject logged out everywhere |
/// | `cross_origin` | [`CrossOrigin`](RejectionKind::CrossOrigin) | a cookie token on a cross-origin unsafe request |
/// | `store_unavailable` | [`StoreUnavailable`](RejectionKind::StoreUnavailable) | the revocation store could not answer |
/// | `keys_unavailable` | [`KeysUnavailable`](RejectionKind::KeysUnavailable) | the token's identity provider's keys cannot be had (feature `oidc`) |
///
/// # gRPC
///
/// A request whose `content-type` starts with `application/grpc` (gRPC, and gRPC-Web)
/// is a gRPC call ([`is_grpc`](Self::is_grpc)), and [`to_response`](Self::to_response)
/// refuses it the gRPC way; see there.
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    code: &'static str,
    description: &'static str,
    protocol: Protocol,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

/// The protocol of a refused request, from its `content-type`: it decides the shape of
/// the default response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http,
    /// `application/grpc`, `application/grpc+proto`, ...
    Grpc,
    /// `application/grpc-web`, `application/grpc-web+proto`, ...
    GrpcWeb,
    /// `application/grpc-web-text`, `application/grpc-web-text+proto`, ...
    GrpcWebText,
}

impl Protocol {
    fn of(headers: &HeaderMap) -> Self {
        const GRPC: &[u8] = b"application/grpc";
        let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
            return Self::Http;
        };
        let value = content_type.as_bytes();
        if value.len() < GRPC.len() || !value[..GRPC.len()].eq_ignore_ascii_case(GRPC) {
            return Self::Http;
        }
        let rest = &value[GRPC.len()..];
        let starts = |prefix: &[u8]| {
            rest.len() >= prefix.len() && rest[..prefix.len()].eq_ignore_ascii_case(prefix)
        };
        if starts(b"-web-text") {
            Self::GrpcWebText
        } else if starts(b"-web") {
            Self::GrpcWeb
        } else {
            // `application/grpc`, `+proto`, `;charset=..`, and the odd suffix alike: the
            // client asked for gRPC.
            Self::Grpc
        }
    }

    fn content_type(self) -> Option<HeaderValue> {
        Some(HeaderValue::from_static(match self {
            Self::Http => return None,
            Self::Grpc => "application/grpc",
            Self::GrpcWeb => "application/grpc-web",
            Self::GrpcWebText => "application/grpc-web-text",
        }))
    }
}

/// gRPC status codes (`google.rpc.Code`) that a rejection maps to.
mod grpc_code {
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const UNAVAILABLE: i32 = 14;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

impl Rejection {
    pub(crate) const fn new(
        kind: RejectionKind,
        code: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            kind,
            code,
            description,
            protocol: Protocol::Http,
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Records the protocol of the refused request, read from its `content-type`. Called
    /// on refusals only, so an accepted request never pays for it.
    pub(crate) fn for_request(mut self, headers: &HeaderMap) -> Self {
        self.protocol = Protocol::of(headers);
        self
    }

    /// Emits the refusal's `debug` event (feature `tracing`): the reason code, the kind
    /// and whether it was a gRPC call; never the token, its claims or a key.
    #[inline]
    pub(crate) fn trace(&self) {
        #[cfg(feature = "tracing")]
        tracing::debug!(
            target: "tower_jwt_auth",
            code = self.code,
            kind = ?self.kind,
            grpc = self.is_grpc(),
            "request refused"
        );
    }

    /// The category of the rejection.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The stable, machine-readable reason, such as `"expired"` or `"revoked"`: one of
    /// the codes in the [table above](Self#reason-codes). Meant for metrics labels and
    /// log fields; it never contains token data.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// A short description, safe to show to the client.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// Whether the refused request was a gRPC call: its `content-type` starts with
    /// `application/grpc` (which includes gRPC-Web). Always `false` for a rejection that
    /// did not come from a request, such as the error of
    /// [`JwtAuthLayer::verify`](crate::JwtAuthLayer::verify).
    pub fn is_grpc(&self) -> bool {
        self.protocol != Protocol::Http
    }

    /// The gRPC status code of the rejection, as in `google.rpc.Code` (convert it with
    /// `tonic::Code::from(rejection.grpc_status())`):
    ///
    /// | code | when | HTTP answer |
    /// | --- | --- | --- |
    /// | 16 `UNAUTHENTICATED` | a missing, malformed, bad, expired, not-yet-valid or revoked token, and a malformed `Authorization` | 401, 400 |
    /// | 7 `PERMISSION_DENIED` | a cookie token on a cross-origin unsafe request | 403 |
    /// | 14 `UNAVAILABLE` | the revocation store, or the token's identity provider's keys, could not be had (retryable) | 503 |
    ///
    /// A malformed request (HTTP's 400 `invalid_request`: two `Authorization` headers,
    /// or one that is not `Bearer <token>`) is 16 `UNAUTHENTICATED`, not 3
    /// `INVALID_ARGUMENT`: what is malformed are the call's credentials, not the
    /// arguments of the method, and gRPC clients treat 16 as "(re)authenticate", which is
    /// what the caller has to do.
    pub fn grpc_status(&self) -> i32 {
        match self.kind {
            RejectionKind::CrossOrigin => grpc_code::PERMISSION_DENIED,
            RejectionKind::StoreUnavailable | RejectionKind::KeysUnavailable => {
                grpc_code::UNAVAILABLE
            }
            RejectionKind::MissingToken
            | RejectionKind::InvalidRequest
            | RejectionKind::InvalidToken
            | RejectionKind::ExpiredToken
            | RejectionKind::ImmatureToken
            | RejectionKind::RevokedToken => grpc_code::UNAUTHENTICATED,
        }
    }

    /// The HTTP status of the default response to a plain HTTP request (a gRPC call is
    /// answered `200 OK` with a [`grpc_status`](Self::grpc_status)).
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::InvalidRequest => StatusCode::BAD_REQUEST,
            RejectionKind::CrossOrigin => StatusCode::FORBIDDEN,
            RejectionKind::StoreUnavailable | RejectionKind::KeysUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
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
            RejectionKind::CrossOrigin
            | RejectionKind::StoreUnavailable
            | RejectionKind::KeysUnavailable => return None,
        };
        // Descriptions are fixed ASCII strings without quotes or backslashes.
        HeaderValue::try_from(format!(
            "Bearer error=\"{error}\", error_description=\"{}\"",
            self.description
        ))
        .ok()
    }

    /// The default response, with an empty body.
    ///
    /// - To a plain HTTP request, RFC 6750's: the [`status`](Self::status), the
    ///   [`WWW-Authenticate`](Self::www_authenticate) challenge, and `Retry-After: 1`
    ///   when the store or the identity provider's keys could not be had.
    /// - To a gRPC call ([`is_grpc`](Self::is_grpc)), gRPC's "Trailers-Only" answer,
    ///   which every gRPC client reads as the call's status: `200 OK`, `content-type:
    ///   application/grpc` (`application/grpc-web` or `application/grpc-web-text` to a
    ///   gRPC-Web call), `grpc-status` set to [`grpc_status`](Self::grpc_status), and
    ///   `grpc-message` set to the [`description`](Self::description), percent-encoded
    ///   as gRPC requires. No tonic dependency is involved: these are plain headers.
    pub fn to_response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        if let Some(content_type) = self.protocol.content_type() {
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, content_type);
            headers.insert("grpc-status", HeaderValue::from(self.grpc_status()));
            headers.insert("grpc-message", grpc_message(self.description));
            return response;
        }
        *response.status_mut() = self.status();
        if let Some(challenge) = self.www_authenticate() {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if matches!(
            self.kind,
            RejectionKind::StoreUnavailable | RejectionKind::KeysUnavailable
        ) {
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
            .field("code", &self.code)
            .field("description", &self.description)
            .field("grpc", &self.is_grpc())
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

/// `message` percent-encoded for a `grpc-message` header (gRPC's PROTOCOL-HTTP2): every
/// byte outside `0x20..=0x7E`, and `%` itself, becomes `%XX`.
fn grpc_message(message: &'static str) -> HeaderValue {
    let plain = |b: u8| (0x20..=0x7E).contains(&b) && b != b'%';
    if message.bytes().all(plain) {
        // The fixed descriptions: no allocation, and `from_static` cannot panic on them.
        return HeaderValue::from_static(message);
    }
    let mut encoded = String::with_capacity(message.len() * 3);
    for b in message.bytes() {
        if plain(b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    // Only visible ASCII and spaces are left, which a header value always accepts.
    HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Builds the response for a refused request.
///
/// Implemented for [`DefaultRejection`] and for any `Fn(&Rejection) -> Response<B>`
/// closure. Whatever it returns, the layer adds the [`Rejection`] to the response's
/// extensions.
///
/// A hook that writes its own HTTP answers should leave gRPC calls to the default, which
/// gRPC clients understand:
///
/// ```
/// use http::{Response, StatusCode};
/// use tower_jwt_auth::Rejection;
///
/// let on_rejection = |rejection: &Rejection| -> Response<String> {
///     if rejection.is_grpc() {
///         return rejection.to_response();
///     }
///     let mut response = Response::new(format!("{{\"error\":\"{}\"}}", rejection.code()));
///     *response.status_mut() = rejection.status();
///     response
/// };
/// # let _ = on_rejection;
/// ```
pub trait OnRejection<B> {
    /// The response for `rejection`.
    fn on_rejection(&self, rejection: &Rejection) -> Response<B>;
}

/// The response of [`Rejection::to_response`]: RFC 6750's (status, `WWW-Authenticate`,
/// empty body) to an HTTP request, gRPC's Trailers-Only answer to a gRPC call.
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

    pub(crate) const MISSING: Rejection =
        Rejection::new(MissingToken, "missing", "no token was presented");
    pub(crate) const TWO_AUTHORIZATION: Rejection = Rejection::new(
        InvalidRequest,
        "two_authorization",
        "more than one Authorization header was sent",
    );
    pub(crate) const BAD_AUTHORIZATION: Rejection = Rejection::new(
        InvalidRequest,
        "bad_authorization",
        "the Authorization header is not valid Bearer credentials",
    );
    pub(crate) const TWO_COOKIES: Rejection = Rejection::new(
        InvalidRequest,
        "two_cookies",
        "the token cookie was sent more than once",
    );
    pub(crate) const TOO_LONG: Rejection =
        Rejection::new(InvalidToken, "too_long", "the token is longer than allowed");
    pub(crate) const MALFORMED: Rejection =
        Rejection::new(InvalidToken, "malformed", "the token is malformed");
    pub(crate) const BAD_ALGORITHM: Rejection = Rejection::new(
        InvalidToken,
        "bad_algorithm",
        "the token's algorithm is not accepted for its key",
    );
    pub(crate) const UNKNOWN_KEY: Rejection =
        Rejection::new(InvalidToken, "unknown_key", "the token's key is unknown");
    pub(crate) const BAD_SIGNATURE: Rejection = Rejection::new(
        InvalidToken,
        "bad_signature",
        "the token's signature is invalid",
    );
    pub(crate) const BAD_CLAIMS: Rejection = Rejection::new(
        InvalidToken,
        "bad_claims",
        "the token's claims are missing or malformed",
    );
    pub(crate) const BAD_ISSUER: Rejection = Rejection::new(
        InvalidToken,
        "bad_issuer",
        "the token's issuer is not accepted",
    );
    pub(crate) const BAD_AUDIENCE: Rejection = Rejection::new(
        InvalidToken,
        "bad_audience",
        "the token's audience is not accepted",
    );
    pub(crate) const BAD_TYPE: Rejection =
        Rejection::new(InvalidToken, "bad_type", "the token's type is not accepted");
    pub(crate) const FUTURE_IAT: Rejection = Rejection::new(
        InvalidToken,
        "future_iat",
        "the token was issued in the future",
    );
    pub(crate) const TOO_LONG_LIVED: Rejection = Rejection::new(
        InvalidToken,
        "too_long_lived",
        "the token's lifetime is longer than allowed",
    );
    pub(crate) const EXPIRED: Rejection =
        Rejection::new(ExpiredToken, "expired", "the token has expired");
    pub(crate) const IMMATURE: Rejection =
        Rejection::new(ImmatureToken, "immature", "the token is not valid yet");
    pub(crate) const REVOKED: Rejection =
        Rejection::new(RevokedToken, "revoked", "the token has been revoked");
    pub(crate) const CROSS_ORIGIN: Rejection = Rejection::new(
        CrossOrigin,
        "cross_origin",
        "cross-origin request with a cookie token refused",
    );
    pub(crate) const STORE_DOWN: Rejection = Rejection::new(
        StoreUnavailable,
        "store_unavailable",
        "the revocation store is unavailable",
    );
    pub(crate) const KEYS_UNAVAILABLE: Rejection = Rejection::new(
        KeysUnavailable,
        "keys_unavailable",
        "the token's identity provider keys are unavailable",
    );
}

#[cfg(test)]
mod tests {
    use super::reasons::*;
    use super::*;

    /// Every `reasons` constant, so a new one cannot go without a code.
    const ALL: [Rejection; 21] = [
        MISSING,
        TWO_AUTHORIZATION,
        BAD_AUTHORIZATION,
        TWO_COOKIES,
        TOO_LONG,
        MALFORMED,
        BAD_ALGORITHM,
        UNKNOWN_KEY,
        BAD_SIGNATURE,
        BAD_CLAIMS,
        BAD_ISSUER,
        BAD_AUDIENCE,
        BAD_TYPE,
        FUTURE_IAT,
        TOO_LONG_LIVED,
        EXPIRED,
        IMMATURE,
        REVOKED,
        CROSS_ORIGIN,
        STORE_DOWN,
        KEYS_UNAVAILABLE,
    ];

    fn headers(content_type: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers
    }

    #[test]
    fn every_reason_has_its_own_snake_case_code() {
        for (i, r) in ALL.iter().enumerate() {
            assert!(
                r.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                r.code()
            );
            assert!(
                ALL[..i].iter().all(|other| other.code() != r.code()),
                "{} twice",
                r.code()
            );
        }
        assert_eq!(STORE_DOWN.code(), "store_unavailable");
        assert_eq!(EXPIRED.code(), "expired");
    }

    #[test]
    fn the_protocol_is_read_from_the_content_type() {
        for (content_type, protocol) in [
            ("application/grpc", Protocol::Grpc),
            ("application/grpc+proto", Protocol::Grpc),
            ("Application/GRPC+json", Protocol::Grpc),
            ("application/grpc-web", Protocol::GrpcWeb),
            ("application/grpc-web+proto", Protocol::GrpcWeb),
            ("application/grpc-web-text+proto", Protocol::GrpcWebText),
            ("application/json", Protocol::Http),
            ("application/grp", Protocol::Http),
            ("text/plain; application/grpc", Protocol::Http),
        ] {
            assert_eq!(
                Protocol::of(&headers(content_type)),
                protocol,
                "{content_type}"
            );
        }
        assert_eq!(Protocol::of(&HeaderMap::new()), Protocol::Http);
        let mut opaque = HeaderMap::new();
        opaque.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_bytes(b"application/grpc\xff").unwrap(),
        );
        assert_eq!(Protocol::of(&opaque), Protocol::Grpc);
    }

    #[test]
    fn every_reason_maps_to_a_grpc_status() {
        for r in ALL {
            let expected = match r.status() {
                StatusCode::FORBIDDEN => 7,
                StatusCode::SERVICE_UNAVAILABLE => 14,
                // 400 invalid_request and 401 alike.
                _ => 16,
            };
            assert_eq!(r.grpc_status(), expected, "{}", r.code());
        }
    }

    #[test]
    fn a_grpc_call_gets_a_trailers_only_answer() {
        for r in ALL {
            let r = r.for_request(&headers("application/grpc+proto"));
            assert!(r.is_grpc());
            let response = r.to_response::<String>();
            assert_eq!(response.status(), StatusCode::OK);
            let h = response.headers();
            assert_eq!(h[header::CONTENT_TYPE], "application/grpc");
            assert_eq!(h["grpc-status"], r.grpc_status().to_string().as_str());
            // The fixed descriptions need no percent-encoding: they go out as they are.
            assert_eq!(h["grpc-message"], r.description());
            assert!(h.get(header::WWW_AUTHENTICATE).is_none());
            assert!(h.get(header::RETRY_AFTER).is_none());
            assert!(response.body().is_empty());
        }
        let web = CROSS_ORIGIN.for_request(&headers("application/grpc-web-text"));
        let response = web.to_response::<String>();
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/grpc-web-text"
        );
        assert_eq!(response.headers()["grpc-status"], "7");
    }

    #[test]
    fn an_http_request_keeps_the_rfc_6750_answer() {
        let r = EXPIRED.for_request(&headers("application/json"));
        assert!(!r.is_grpc());
        let response = r.to_response::<String>();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("grpc-status").is_none());
        assert!(response.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[test]
    fn grpc_messages_are_percent_encoded() {
        assert_eq!(grpc_message("plain text, ok!"), "plain text, ok!");
        assert_eq!(grpc_message("100% sure"), "100%25 sure");
        assert_eq!(grpc_message("tab\there"), "tab%09here");
        assert_eq!(grpc_message("caf\u{e9}"), "caf%C3%A9");
        assert_eq!(grpc_message("del\u{7f}"), "del%7F");
    }
}
