//! JWT authentication for [tower] services (axum, hyper, tonic), with a logout that
//! really works.
//!
//! A JWT is valid until its `exp`, so "logging out" means the server must remember what
//! it no longer accepts. [`JwtAuthLayer`] verifies each request's token and checks it
//! against a [`RevocationStore`]: a denylist of revoked token ids (`jti`), each kept only
//! until its token would have expired, and per-subject "logout everywhere" cutoffs. The
//! check is answered from memory, so it costs no network round trip.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response, StatusCode, header};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_jwt_auth::{Claims, JwtAuthLayer, MemoryStore, TokenIssuer, VerificationKey};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let secret = b"an example secret of at least 32 bytes!";
//! let issuer = TokenIssuer::hs256(secret)?;
//! let auth = JwtAuthLayer::builder(MemoryStore::new())
//!     .key(VerificationKey::hs256(secret)?)
//!     .build()?;
//! let revoker = auth.revoker();
//!
//! // Any tower service; here the handler reads the verified claims.
//! let app = ServiceBuilder::new().layer(auth).service(service_fn(|req: Request<String>| async move {
//!     let claims = req.extensions().get::<Claims>().expect("set by the layer");
//!     Ok::<_, Infallible>(Response::new(format!("hello {}", claims.subject())))
//! }));
//! let request = |token: &str| {
//!     Request::get("/me")
//!         .header(header::AUTHORIZATION, format!("Bearer {token}"))
//!         .body(String::new())
//! };
//!
//! // Log in: sign a token.
//! let token = issuer.issue("alice")?;
//! let response = app.clone().oneshot(request(token.as_str())?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.body(), "hello alice");
//!
//! // No token: 401 with an RFC 6750 challenge.
//! let response = app.clone().oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
//!
//! // Log out: the same token is refused from now on.
//! revoker.revoke_token(token.as_str()).await?;
//! let response = app.clone().oneshot(request(token.as_str())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # Ok(())
//! # }
//! ```
//!
//! # What the layer does
//!
//! For each request, the [`JwtAuth`] service that [`JwtAuthLayer`] builds:
//!
//! 1. **finds the token** in the configured sources, in order: the `Authorization: Bearer`
//!    header by default; [`cookie`](JwtAuthLayerBuilder::cookie) adds a cookie source
//!    after the existing ones, [`sources`](JwtAuthLayerBuilder::sources) replaces the whole
//!    list. When several sources hold a token, the first in the list wins;
//! 2. for a token from a cookie on an unsafe method, **checks the request's origin**
//!    (same origin, or a [`trusted_origin`](JwtAuthLayerBuilder::trusted_origin));
//! 3. **verifies** the signature with the [`VerificationKey`] that the token's `kid` names,
//!    in that key's one algorithm (several keys allow rotation), and the registered claims
//!    (`exp`, `nbf`, `iat`, `sub`, `jti`, and `iss`, `aud`, `typ` when configured);
//! 4. **asks the [`RevocationStore`]** whether the token's `jti` was revoked, its
//!    session (`sid`) ended, or its subject logged out everywhere after the token was
//!    issued.
//!
//! The exact rules of each step, what a revocation guarantees with each store, how a login
//! is ordered against a logout-everywhere, what holds when clocks are skewed or stepped
//! and instances run different settings ([SECURITY.md, Clocks][clocks]: each store keeps
//! a revocation as long as the layers on it could accept the token, judged on the wall
//! clock and elapsed time together), what is not guaranteed, and the hardening defaults
//! are in [SECURITY.md].
//!
//! [clocks]: https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/SECURITY.md#clocks
//!
//! To log out, get a [`Revoker`] from [`JwtAuthLayer::revoker`] and keep it in the
//! application's state (its type names no store): [`Revoker::revoke`] revokes the
//! request's [`TokenInfo`], [`Revoker::revoke_token`] a token held as a string (verified
//! first), [`Revoker::revoke_all`] every token issued to its subject up to now. Tokens
//! issued in a login session ([`TokenIssuer::issue_in_session`], the `sid` claim) are
//! refused together once the session ends: [`Revoker::end_session`], or a logout of any
//! one of them.
//! [`JwtAuthLayer::verify`] checks a token string with the layer's rules.
//!
//! # Answers
//!
//! On success the layer inserts [`Claims<C>`](Claims) and [`TokenInfo`] into the request's
//! extensions and calls the inner service. It never fails with an error of its own: every
//! refusal is a response.
//!
//! | status | when |
//! | --- | --- |
//! | 401 with `WWW-Authenticate: Bearer` | no token was presented (unless the layer is [`optional`](JwtAuthLayerBuilder::optional)) |
//! | 400 `invalid_request` | a malformed request, such as two `Authorization` headers |
//! | 401 `invalid_token` | a bad, expired, not-yet-valid or revoked token |
//! | 403 | a token from a cookie on a cross-origin unsafe request |
//! | 503 with `Retry-After` | the store cannot answer, or (feature `oidc`) the token's identity provider's keys cannot be had |
//!
//! A gRPC call (a `content-type` starting with `application/grpc`, as tonic sends) is
//! refused the gRPC way instead: `200 OK` with `grpc-status` 16 `UNAUTHENTICATED` (for
//! the 401s and the 400), 7 `PERMISSION_DENIED` (403) or 14 `UNAVAILABLE` (503), and
//! the description as `grpc-message`; see [`Rejection::to_response`].
//!
//! The [`Rejection`] is in the response's extensions, with a stable reason
//! [`code`](Rejection::code) (`missing`, `expired`, `revoked`, ...), so outer layers can
//! count or log refusals by reason, and the response is pluggable
//! ([`on_rejection`](JwtAuthLayerBuilder::on_rejection), [`OnRejection`]).
//!
//! # Features
//!
//! - `rust_crypto` (default): jsonwebtoken's pure-Rust crypto backend.
//! - `aws_lc_rs`: jsonwebtoken's aws-lc-rs backend, much faster for RSA and ECDSA
//!   ([BENCHMARKS.md]); used when both are enabled. With neither, building a layer fails
//!   with [`ConfigErrorKind::NoCryptoBackend`], never a panic at the first request
//!   (unless the application installed a `jsonwebtoken` `CryptoProvider` itself).
//! - `axum`: [`Claims`] and [`TokenInfo`] (and `Option` of them) are axum extractors;
//!   depends on `axum-core` only.
//! - `redis`: `RedisStore`, revocations shared by every instance through Redis and
//!   answered from a local mirror ([REDIS.md]).
//! - `tracing`: a `debug` event for each refused request, target `tower_jwt_auth`,
//!   message `request refused`, with the fields `code` (the stable
//!   [`Rejection::code`]), `kind` and `grpc`; never the token, its claims or a key. It is
//!   emitted while the request is handled, so it lands inside the request's span (such
//!   as tower-http's `TraceLayer`'s), and only when refusing: an accepted request emits
//!   nothing. With `redis`, the store also reports its health at `warn` and `info` (the
//!   link lost and back, the mirror stale, a resync and its size and time, a logout not
//!   recorded); the events are listed in [REDIS.md]. With `oidc`, a key-set fetch
//!   failing at `warn` (once per outage) and its recovery at `info`.
//! - `oidc`: tokens from identity providers (Keycloak, Auth0, Entra ID, ...): key sets
//!   fetched from a JWKS URL or through OpenID Connect Discovery and kept fresh, and
//!   the OpenID Connect Back-Channel Logout endpoint; see [`oidc`] and [OIDC.md].
//!   The built-in HTTP client speaks plain `http://`; plug your own
//!   ([`oidc::HttpClient`]) or enable
//! - `oidc-rustls`: `https://` for the built-in client, with rustls on aws-lc-rs (this
//!   turns on `aws_lc_rs`, so one crypto library does TLS and token signatures).
//!
//! [tower]: https://docs.rs/tower
//! [SECURITY.md]: https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/SECURITY.md
//! [BENCHMARKS.md]: https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/BENCHMARKS.md
//! [REDIS.md]: https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/REDIS.md
//! [OIDC.md]: https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/docs/oidc.md

#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod trace;

mod auth;
mod cache;
mod claims;
mod clock;
mod cross_origin;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod issue;
mod layer;
#[cfg(feature = "oidc")]
pub mod oidc;
mod rejection;
mod revoke;
mod service;
mod sessions;
mod source;
mod store;
mod verify;

pub use claims::{Claims, TokenInfo, TokenLocation};
pub use error::{
    ConfigError, ConfigErrorKind, IssueError, IssueErrorKind, RevokeError, RevokeErrorKind,
};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use extract::ClaimsRejection;
pub use future::ResponseFuture;
pub use issue::{DEFAULT_TOKEN_LIFETIME, IssuedToken, TokenCookie, TokenIssuer};
pub use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
pub use layer::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_TOKEN_LIFETIME,
    DEFAULT_TOKEN_CACHE_CAPACITY, JwtAuthLayer, JwtAuthLayerBuilder,
};
pub use rejection::{DefaultRejection, OnRejection, Rejection, RejectionKind};
pub use revoke::Revoker;
pub use service::JwtAuth;
pub use sessions::{
    DEFAULT_REFRESH_LIFETIME, DEFAULT_SESSION_LIFETIME, MAX_REFRESH_TOKEN_LEN, RefreshCookie,
    RefreshToken, SessionError, SessionErrorKind, SessionTokens, Sessions,
};
pub use source::TokenSource;
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::redis::{
    RedisConfig, RedisStore, RedisStoreError, RedisStoreErrorKind, RedisStoreStats,
};
pub use store::refresh::{
    RefreshHash, RefreshRecord, RefreshSession, RotateOutcome, Rotation, SessionStore,
};
pub use store::{
    Acceptance, Check, RevocationStatus, RevocationStore, RevokedSession, RevokedToken,
    SubjectCutoff,
};
pub use verify::VerificationKey;

/// The README's Rust examples, compiled as doc tests so they stay true (with the `axum`
/// feature, which its axum example needs: `cargo test --all-features` runs them).
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
