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
//!
//! // Log in: sign a token.
//! let token = issuer.issue("alice")?;
//! let request = |token: &str| {
//!     Request::get("/me")
//!         .header(header::AUTHORIZATION, format!("Bearer {token}"))
//!         .body(String::new())
//!         .unwrap()
//! };
//! let response = app.clone().oneshot(request(token.as_str())).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.body(), "hello alice");
//!
//! // No token: 401 with an RFC 6750 challenge.
//! let response = app.clone().oneshot(Request::new(String::new())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
//!
//! // Log out: the same token is refused from now on.
//! let info = response_token_info(&app, token.as_str()).await;
//! revoker.revoke(&info).await?;
//! let response = app.clone().oneshot(request(token.as_str())).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! # async fn response_token_info<S>(app: &S, token: &str) -> tower_jwt_auth::TokenInfo
//! # where S: tower::Service<Request<String>, Response = Response<String>> + Clone, S::Error: std::fmt::Debug {
//! #     // In a real handler the `TokenInfo` comes from the request extensions.
//! #     let (tx, rx) = std::sync::mpsc::channel();
//! #     let probe = ServiceBuilder::new().layer(JwtAuthLayer::builder(MemoryStore::new())
//! #         .key(VerificationKey::hs256(b"an example secret of at least 32 bytes!").unwrap()).build().unwrap())
//! #         .service(service_fn(move |req: Request<String>| { let tx = tx.clone(); async move {
//! #             tx.send(req.extensions().get::<tower_jwt_auth::TokenInfo>().cloned().unwrap()).unwrap();
//! #             Ok::<_, Infallible>(Response::new(String::new())) } }));
//! #     probe.oneshot(Request::get("/").header(header::AUTHORIZATION, format!("Bearer {token}")).body(String::new()).unwrap()).await.unwrap();
//! #     let _ = app;
//! #     rx.recv().unwrap()
//! # }
//! # Ok(())
//! # }
//! ```
//!
//! # What the layer checks
//!
//! - **Sources.** The `Authorization: Bearer` header by default; optionally a cookie
//!   ([`JwtAuthLayerBuilder::cookie`]). The first configured source that holds a token
//!   wins. Two `Authorization` headers, a token cookie sent twice, or a token over 8 KiB
//!   are refused before any decoding. The query string is never read.
//! - **Keys and algorithms.** Keys are chosen by the header's `kid`; each key accepts
//!   exactly one algorithm, so the token's header never picks the key type and
//!   `alg: none` never passes. Several keys allow rotation.
//! - **Claims.** `exp`, `iat`, `sub` and `jti` are required; `nbf` is honoured; `iss`,
//!   `aud` and the header `typ` are checked when configured; the leeway is 60 s by
//!   default. A token issued in the future, or living longer than
//!   [`max_token_lifetime`](JwtAuthLayerBuilder::max_token_lifetime) (24 h by default), is
//!   refused.
//! - **Revocation.** The [`RevocationStore`] says whether the token's `jti` (per issuer)
//!   was revoked, or whether its subject logged out everywhere after it was issued.
//! - **Cross-origin.** A cookie-carried token on an unsafe method must come from the same
//!   origin or a trusted one (the algorithm of Go's `CrossOriginProtection`).
//!
//! On success the layer inserts [`Claims<C>`](Claims) and [`TokenInfo`] into the
//! request's extensions. On failure it answers (never errors): 401 with
//! `WWW-Authenticate: Bearer` when no token was presented, 400 `invalid_request` for a
//! malformed request, 401 `invalid_token` for a bad, expired, not-yet-valid or revoked
//! token, 403 for a cross-origin cookie request, 503 when the store cannot answer. The
//! [`Rejection`] is in the response's extensions, and the response is pluggable
//! ([`OnRejection`]).
//!
//! # Ordering a login against a logout-everywhere
//!
//! `iat` has one-second resolution, so it cannot tell whether a token issued in the same
//! second as a logout-everywhere came before or after it. Tokens from [`TokenIssuer`]
//! also carry `iat_us`, their issue time in microseconds, and the cutoff is recorded in
//! microseconds. Both come from one process-wide clock that is **strictly increasing**:
//! no two stamps are equal, so within a process a login and a logout-everywhere are
//! always ordered exactly, even in the same millisecond or microsecond. A token is
//! revoked when its stamp is at or before the cutoff. Across instances, stamps are
//! ordered by the machines' clocks (and each instance moves its clock past every cutoff
//! it learns of). Tokens from other issuers carry whole-second `iat` only and are judged
//! conservatively: one issued in the same second as the cutoff counts as issued before
//! it, so it is refused.
//!
//! # Features
//!
//! - `rust_crypto` (default): jsonwebtoken's pure-Rust crypto backend.
//! - `aws_lc_rs`: jsonwebtoken's aws-lc-rs backend, much faster for RSA and ECDSA; used
//!   when both are enabled. With neither, building a layer fails with
//!   [`ConfigErrorKind::NoCryptoBackend`] (unless the application installed a
//!   `jsonwebtoken` `CryptoProvider` itself).
//! - `axum`: extractors for [`Claims`] and [`TokenInfo`] (and their `Option` forms).
//!
//! [tower]: https://docs.rs/tower

#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod claims;
mod clock;
mod cross_origin;
mod error;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod issue;
mod layer;
mod rejection;
mod revoke;
mod service;
mod source;
mod store;
mod verify;

pub use claims::{Claims, TokenInfo, TokenLocation};
pub use error::{
    ConfigError, ConfigErrorKind, IssueError, IssueErrorKind, RevokeError, RevokeErrorKind,
};
#[cfg(feature = "axum")]
pub use extract::ClaimsRejection;
pub use future::ResponseFuture;
pub use issue::{DEFAULT_TOKEN_LIFETIME, IssuedToken, TokenCookie, TokenIssuer};
pub use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
pub use layer::{
    DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN, DEFAULT_MAX_TOKEN_LIFETIME, JwtAuthLayer,
    JwtAuthLayerBuilder,
};
pub use rejection::{DefaultRejection, OnRejection, Rejection, RejectionKind};
pub use revoke::Revoker;
pub use service::JwtAuth;
pub use source::TokenSource;
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use store::redis::{RedisConfig, RedisStore, RedisStoreError, RedisStoreErrorKind};
pub use store::{Check, RevocationStatus, RevocationStore, RevokedToken, SubjectCutoff};
pub use verify::VerificationKey;

/// The README's Rust examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
