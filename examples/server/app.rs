//! The example server's configuration and routes.
//!
//! `main.rs` reads the configuration from the environment and serves [`router`]; the
//! end-to-end tests (`tests/e2e.rs`) include this file and serve the very same router on
//! a real TCP port.
//!
//! The router is generic over the [`RevocationStore`]: the server passes a
//! [`MemoryStore`](tower_jwt_auth::MemoryStore); a shared store (Redis) plugs in by
//! passing another store, with no other change.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_jwt_auth::{
    ConfigError, DEFAULT_MAX_TOKEN_LIFETIME, DEFAULT_SESSION_LIFETIME, IssuedToken, JwtAuthLayer,
    RefreshCookie, Rejection, Revoker, SessionErrorKind, SessionStore, SessionTokens, Sessions,
    TokenCookie, TokenInfo, TokenIssuer, VerificationKey,
};

/// The cookie that carries the access token, and the layer's second token source.
pub(crate) const COOKIE_NAME: &str = "access_token";

/// The cookie that carries the refresh token (on `Path=/refresh` only).
pub(crate) const REFRESH_COOKIE_NAME: &str = "refresh_token";

/// How long a login waits for the store to record its refresh token before it answers
/// with an access token only: a store outage never makes logins slow (a record that
/// lands later belongs to a token nobody holds, and expires).
const LOGIN_REFRESH_BUDGET: Duration = Duration::from_millis(150);

/// The largest `/refresh` body accepted.
const MAX_REFRESH_BODY: usize = 2 * 1024;

/// The demo users: `(username, password)`. A real application stores password hashes
/// (argon2, scrypt), never passwords.
const USERS: [(&str, &str); 2] = [("alice", "wonderland"), ("bob", "builder")];

/// The largest `/login` body accepted.
const MAX_LOGIN_BODY: usize = 4 * 1024;

/// The page served at `/`.
const PAGE: &str = include_str!("index.html");

/// The HS256 secret. Its `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Secret(Vec<u8>);

impl Secret {
    pub(crate) fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    /// 32 random bytes.
    fn random() -> Result<Self, String> {
        let mut bytes = vec![0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for JWT_SECRET: {e}"))?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The server's configuration (see [`Config::from_lookup`]).
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// `ADDR`: where to listen.
    pub(crate) addr: SocketAddr,
    /// `JWT_SECRET`: the HS256 secret.
    pub(crate) secret: Secret,
    /// Whether the secret was generated because `JWT_SECRET` was unset.
    pub(crate) secret_generated: bool,
    /// `ACCESS_TOKEN_TTL`: the lifetime of issued tokens.
    pub(crate) token_ttl: Duration,
    /// `COOKIE_SECURE`: whether the login cookie is `Secure`.
    pub(crate) cookie_secure: bool,
    /// `REDIS_URL`: the shared Redis store, when set (the in-process store otherwise).
    pub(crate) redis_url: Option<RedisUrl>,
    /// `REDIS_PREFIX`: the prefix of the store's Redis keys.
    // Read by main.rs only; the tests that include this file do not.
    #[allow(dead_code)]
    pub(crate) redis_prefix: Option<String>,
    /// `REDIS_MAX_STALENESS_MS`: the Redis store's staleness window, when set.
    #[allow(dead_code)]
    pub(crate) redis_max_staleness: Option<Duration>,
    /// `REDIS_COMMAND_TIMEOUT_MS`: the Redis store's command timeout, when set.
    #[allow(dead_code)]
    pub(crate) redis_command_timeout: Option<Duration>,
    /// `REDIS_SENTINELS` and `REDIS_SENTINEL_MASTER`: the sentinels (`host:port`) and
    /// the master name they watch, when the primary is found through Redis Sentinel.
    pub(crate) redis_sentinel: Option<(Vec<String>, String)>,
    /// `REDIS_CLUSTER_NODES`: some nodes (`host:port`) of a Redis Cluster, when the store
    /// runs on one.
    pub(crate) redis_cluster: Option<Vec<String>>,
    /// `REDIS_MIN_REPLICAS`: how many replicas must confirm a logout (default 0).
    pub(crate) redis_min_replicas: u32,
    /// `REDIS_WAIT_TIMEOUT_MS`: how long a logout waits for those replicas, when set.
    pub(crate) redis_wait_timeout: Option<Duration>,
    /// `JWT_LEEWAY`: the clock skew allowed on `exp`/`nbf`/`iat`, which is also how long
    /// a revoked token stays on the denylist after its `exp`.
    pub(crate) leeway: Duration,
    /// `JWT_MAX_TOKEN_LIFETIME`: the longest `exp - iat` the layer accepts (and so how
    /// long a logout-everywhere is kept); `None`: the token lifetime or the core's
    /// default (a day), whichever is longer.
    pub(crate) max_token_lifetime: Option<Duration>,
    /// `JWT_TOKEN_CACHE`: how many verified tokens the layer remembers; 0 turns the
    /// verified-token cache off.
    pub(crate) token_cache: u64,
    /// `REFRESH_TOKEN_TTL`: the refresh tokens' (sliding) lifetime.
    pub(crate) refresh_ttl: Duration,
    /// `REFRESH_REUSE_INTERVAL_MS`: how long a just-used refresh token may be exchanged
    /// again without counting as a reuse (default 0).
    pub(crate) refresh_reuse_interval: Duration,
    /// `OIDC_ISSUER` and the settings beside it: an identity provider whose tokens are
    /// accepted beside this server's own.
    // Read only with feature `oidc` (main.rs has it; the tests that include this file
    // may not).
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    pub(crate) oidc: Option<OidcConfig>,
}

/// `OIDC_ISSUER`, `OIDC_AUDIENCE`, `JWKS_REFRESH_COOLDOWN_MS` and `JWKS_MAX_STALE_S`.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "oidc"), allow(dead_code))]
pub(crate) struct OidcConfig {
    /// `OIDC_ISSUER`: the provider's issuer; its keys are found through discovery.
    pub(crate) issuer: String,
    /// `OIDC_AUDIENCE`: the audience its tokens (and logout tokens) must name.
    pub(crate) audience: String,
    /// `JWKS_REFRESH_COOLDOWN_MS`: the shortest time between fetches an unknown `kid`
    /// starts (default 30000).
    pub(crate) refresh_cooldown: Duration,
    /// `JWKS_MAX_STALE_S`: how long the last key set serves while the provider is down
    /// (default a day).
    pub(crate) max_stale: Option<Duration>,
}

/// A Redis URL; it may hold a password, so `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct RedisUrl(pub(crate) String);

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisUrl(..)")
    }
}

impl Config {
    /// The defaults with this secret: `127.0.0.1:3000`, 900 s tokens, `Secure` cookies.
    pub(crate) fn new(secret: Secret) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            secret,
            secret_generated: false,
            token_ttl: Duration::from_secs(900),
            cookie_secure: true,
            redis_url: None,
            redis_prefix: None,
            redis_max_staleness: None,
            redis_command_timeout: None,
            redis_sentinel: None,
            redis_cluster: None,
            redis_min_replicas: 0,
            redis_wait_timeout: None,
            leeway: tower_jwt_auth::DEFAULT_LEEWAY,
            max_token_lifetime: None,
            token_cache: tower_jwt_auth::DEFAULT_TOKEN_CACHE_CAPACITY,
            refresh_ttl: tower_jwt_auth::DEFAULT_REFRESH_LIFETIME,
            refresh_reuse_interval: Duration::ZERO,
            oidc: None,
        }
    }

    /// Reads `ADDR`, `JWT_SECRET`, `ACCESS_TOKEN_TTL`, `JWT_LEEWAY`,
    /// `JWT_MAX_TOKEN_LIFETIME`, `JWT_TOKEN_CACHE`, `COOKIE_SECURE`,
    /// `REDIS_URL`, `REDIS_PREFIX`, `REDIS_MAX_STALENESS_MS`, `REDIS_COMMAND_TIMEOUT_MS`,
    /// `REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`, `REDIS_MIN_REPLICAS`,
    /// `REDIS_WAIT_TIMEOUT_MS`, `REDIS_CLUSTER_NODES`, `REFRESH_TOKEN_TTL`,
    /// `REFRESH_REUSE_INTERVAL_MS`, `OIDC_ISSUER`, `OIDC_AUDIENCE`,
    /// `JWKS_REFRESH_COOLDOWN_MS` and `JWKS_MAX_STALE_S` through `get`, which returns a
    /// variable's value or `None` when it is unset.
    /// Messages name the variable but never show the secret.
    pub(crate) fn from_lookup(
        get: impl Fn(&str) -> Result<Option<String>, String>,
    ) -> Result<Self, String> {
        let addr = match get("ADDR")? {
            Some(addr) => addr
                .parse()
                .map_err(|_| format!("ADDR={addr:?} is not an address like 127.0.0.1:3000"))?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let (secret, secret_generated) = match get("JWT_SECRET")? {
            Some(secret) => {
                if secret.len() < 32 {
                    return Err(format!(
                        "JWT_SECRET is {} bytes long; HS256 needs at least 32",
                        secret.len()
                    ));
                }
                (Secret::new(secret), false)
            }
            None => (Secret::random()?, true),
        };
        let token_ttl = match get("ACCESS_TOKEN_TTL")? {
            Some(ttl) => match ttl.trim().parse::<u64>() {
                Ok(secs) if secs > 0 => Duration::from_secs(secs),
                _ => {
                    return Err(format!(
                        "ACCESS_TOKEN_TTL={ttl:?} is not a positive number of seconds"
                    ));
                }
            },
            None => Duration::from_secs(900),
        };
        let leeway = match get("JWT_LEEWAY")? {
            Some(secs) => match secs.trim().parse::<u64>() {
                Ok(secs) if secs <= 24 * 3600 => Duration::from_secs(secs),
                _ => {
                    return Err(format!(
                        "JWT_LEEWAY={secs:?} is not a number of seconds up to 86400"
                    ));
                }
            },
            None => tower_jwt_auth::DEFAULT_LEEWAY,
        };
        let max_token_lifetime = match get("JWT_MAX_TOKEN_LIFETIME")? {
            Some(secs) => match secs.trim().parse::<u64>() {
                Ok(secs) if secs > 0 => Some(Duration::from_secs(secs)),
                _ => {
                    return Err(format!(
                        "JWT_MAX_TOKEN_LIFETIME={secs:?} is not a positive number of seconds"
                    ));
                }
            },
            None => None,
        };
        if let Some(max) = max_token_lifetime
            && max < token_ttl
        {
            return Err(format!(
                "JWT_MAX_TOKEN_LIFETIME ({} s) is shorter than ACCESS_TOKEN_TTL ({} s): \
                 this server would refuse its own tokens",
                max.as_secs(),
                token_ttl.as_secs()
            ));
        }
        let token_cache = match get("JWT_TOKEN_CACHE")? {
            Some(n) => n.trim().parse::<u64>().map_err(|_| {
                format!("JWT_TOKEN_CACHE={n:?} is not a number of tokens (0 turns the cache off)")
            })?,
            None => tower_jwt_auth::DEFAULT_TOKEN_CACHE_CAPACITY,
        };
        let cookie_secure = match get("COOKIE_SECURE")?.as_deref().map(str::trim) {
            None | Some("" | "1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(other) => {
                return Err(format!("COOKIE_SECURE={other:?} is not 0 or 1"));
            }
        };
        let redis_url = get("REDIS_URL")?
            .filter(|url| !url.trim().is_empty())
            .map(RedisUrl);
        let redis_prefix = get("REDIS_PREFIX")?.filter(|p| !p.is_empty());
        let millis = |name: &str| -> Result<Option<Duration>, String> {
            match get(name)? {
                Some(ms) => match ms.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Some(Duration::from_millis(ms))),
                    _ => Err(format!(
                        "{name}={ms:?} is not a positive number of milliseconds"
                    )),
                },
                None => Ok(None),
            }
        };
        let redis_max_staleness = millis("REDIS_MAX_STALENESS_MS")?;
        let redis_command_timeout = millis("REDIS_COMMAND_TIMEOUT_MS")?;
        let redis_cluster = match get("REDIS_CLUSTER_NODES")?.filter(|n| !n.trim().is_empty()) {
            None => None,
            Some(list) => {
                let mut addrs = Vec::new();
                for addr in list.split(',').map(str::trim) {
                    if !is_host_port(addr) {
                        return Err(format!(
                            "REDIS_CLUSTER_NODES={list:?}: {addr:?} is not host:port (a \
                             comma-separated list like 10.0.0.1:6379,10.0.0.2:6379)"
                        ));
                    }
                    addrs.push(addr.to_owned());
                }
                Some(addrs)
            }
        };
        if redis_cluster.is_some() && redis_url.is_some() {
            return Err(
                "REDIS_URL and REDIS_CLUSTER_NODES are both set: use one (the \
                        cluster's nodes say where the store's keys are)"
                    .to_owned(),
            );
        }
        let sentinels = get("REDIS_SENTINELS")?.filter(|s| !s.trim().is_empty());
        let master = get("REDIS_SENTINEL_MASTER")?.filter(|m| !m.trim().is_empty());
        let redis_sentinel = match (sentinels, master) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(
                    "REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER, the name \
                            the sentinels watch the primary under"
                        .to_owned(),
                );
            }
            (None, Some(_)) => {
                return Err("REDIS_SENTINEL_MASTER is set without REDIS_SENTINELS, the \
                            sentinels' host:port addresses (comma-separated)"
                    .to_owned());
            }
            (Some(list), Some(master)) => {
                if redis_url.is_some() {
                    return Err("REDIS_URL and REDIS_SENTINELS are both set: use one (the \
                                sentinels find the primary)"
                        .to_owned());
                }
                let mut addrs = Vec::new();
                for addr in list.split(',').map(str::trim) {
                    if !is_host_port(addr) {
                        return Err(format!(
                            "REDIS_SENTINELS={list:?}: {addr:?} is not host:port (a comma-separated \
                             list like 10.0.0.1:26379,10.0.0.2:26379)"
                        ));
                    }
                    addrs.push(addr.to_owned());
                }
                Some((addrs, master.trim().to_owned()))
            }
        };
        let redis_min_replicas = match get("REDIS_MIN_REPLICAS")? {
            Some(n) => n.trim().parse::<u32>().map_err(|_| {
                format!("REDIS_MIN_REPLICAS={n:?} is not a number of replicas (0 or more)")
            })?,
            None => 0,
        };
        let redis_wait_timeout = millis("REDIS_WAIT_TIMEOUT_MS")?;
        let refresh_ttl = match get("REFRESH_TOKEN_TTL")? {
            Some(ttl) => match ttl.trim().parse::<u64>() {
                Ok(secs) if secs > 0 => Duration::from_secs(secs),
                _ => {
                    return Err(format!(
                        "REFRESH_TOKEN_TTL={ttl:?} is not a positive number of seconds"
                    ));
                }
            },
            None => tower_jwt_auth::DEFAULT_REFRESH_LIFETIME,
        };
        let refresh_reuse_interval = match get("REFRESH_REUSE_INTERVAL_MS")? {
            Some(ms) => match ms.trim().parse::<u64>() {
                Ok(ms) if ms <= 60_000 => Duration::from_millis(ms),
                _ => {
                    return Err(format!(
                        "REFRESH_REUSE_INTERVAL_MS={ms:?} is not a number of milliseconds up \
                         to 60000"
                    ));
                }
            },
            None => Duration::ZERO,
        };
        let oidc = match (
            get("OIDC_ISSUER")?.filter(|i| !i.trim().is_empty()),
            get("OIDC_AUDIENCE")?.filter(|a| !a.trim().is_empty()),
        ) {
            (None, _) => None,
            (Some(issuer), None) => {
                return Err(format!(
                    "OIDC_ISSUER={issuer:?} is set without OIDC_AUDIENCE, the audience (client \
                     id) the provider's tokens must name: without it, a token the provider \
                     issued to any other client would pass"
                ));
            }
            (Some(issuer), Some(audience)) => Some(OidcConfig {
                issuer: issuer.trim().to_owned(),
                audience: audience.trim().to_owned(),
                refresh_cooldown: match get("JWKS_REFRESH_COOLDOWN_MS")? {
                    Some(ms) => Duration::from_millis(ms.trim().parse::<u64>().map_err(|_| {
                        format!("JWKS_REFRESH_COOLDOWN_MS={ms:?} is not a number of milliseconds")
                    })?),
                    None => Duration::from_millis(30_000),
                },
                max_stale: match get("JWKS_MAX_STALE_S")? {
                    Some(secs) => match secs.trim().parse::<u64>() {
                        Ok(secs) if secs > 0 => Some(Duration::from_secs(secs)),
                        _ => {
                            return Err(format!(
                                "JWKS_MAX_STALE_S={secs:?} is not a positive number of seconds"
                            ));
                        }
                    },
                    None => None,
                },
            }),
        };
        if redis_cluster.is_some() && redis_sentinel.is_some() {
            return Err(
                "REDIS_SENTINELS and REDIS_CLUSTER_NODES are both set: use one \
                        (Sentinel watches a primary and its replicas; a cluster has no \
                        sentinels)"
                    .to_owned(),
            );
        }
        if redis_min_replicas > 0
            && redis_url.is_none()
            && redis_sentinel.is_none()
            && redis_cluster.is_none()
        {
            return Err(
                "REDIS_MIN_REPLICAS is set without REDIS_URL, REDIS_SENTINELS or \
                 REDIS_CLUSTER_NODES: there are no replicas to wait for"
                    .to_owned(),
            );
        }
        Ok(Self {
            addr,
            secret_generated,
            token_ttl,
            cookie_secure,
            redis_url,
            redis_prefix,
            redis_max_staleness,
            redis_command_timeout,
            redis_sentinel,
            redis_cluster,
            redis_min_replicas,
            redis_wait_timeout,
            leeway,
            max_token_lifetime,
            token_cache,
            refresh_ttl,
            refresh_reuse_interval,
            oidc,
            ..Self::new(secret)
        })
    }
}

/// Whether `addr` is `host:port` (`[v6]:port`), the port from 1 to 65535.
fn is_host_port(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    !host.is_empty() && !host.contains(['/', '@', ' ']) && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// What the handlers share.
struct AppState {
    issuer: TokenIssuer,
    cookie: TokenCookie,
    refresh_cookie: RefreshCookie,
    revoker: Revoker,
    sessions: Sessions,
}

/// The whole application: `/health`, `/`, `/login`, `/refresh` in the open; `/me`, `/logout` and
/// `/logout-all` behind a [`JwtAuthLayer`] that records revocations in `store`.
///
/// The layer takes `Authorization: Bearer` first, then the `access_token` cookie, with
/// the core's defaults: HS256 with the configured secret and no `kid`, no `iss`/`aud`
/// requirement, RFC 6750 rejections; the leeway is `JWT_LEEWAY` (60 s by default).
///
/// # Errors
///
/// A [`ConfigError`] when the secret is too short or no crypto backend is usable.
pub(crate) fn router<R: SessionStore>(store: R, config: &Config) -> Result<Router, ConfigError> {
    let secret = &config.secret.0;
    // Accept every token this server issues, and other issuers' tokens up to the core's
    // default longest lifetime, unless told otherwise.
    let max_lifetime = config
        .max_token_lifetime
        .unwrap_or_else(|| config.token_ttl.max(DEFAULT_MAX_TOKEN_LIFETIME));
    let builder = JwtAuthLayer::builder(store)
        .key(VerificationKey::hs256(secret)?)
        .cookie(COOKIE_NAME)
        .leeway(config.leeway)
        .max_token_lifetime(max_lifetime)
        .token_cache(config.token_cache);
    #[cfg(feature = "oidc")]
    let builder = match &config.oidc {
        Some(oidc) => builder.provider(provider(oidc)?),
        None => builder,
    };
    let auth = builder.build()?;
    // The provider's logouts, recorded in the same store (`POST /backchannel-logout`).
    #[cfg(feature = "oidc")]
    let backchannel = config.oidc.as_ref().map(|_| auth.backchannel_logout());
    let issuer = TokenIssuer::hs256(secret)?
        .lifetime(config.token_ttl)
        .max_lifetime(max_lifetime);
    let state = Arc::new(AppState {
        issuer: issuer.clone(),
        cookie: TokenCookie::new(COOKIE_NAME)?.secure(config.cookie_secure),
        refresh_cookie: RefreshCookie::new(REFRESH_COOKIE_NAME)?.secure(config.cookie_secure),
        revoker: auth.revoker(),
        sessions: auth
            .sessions(issuer)
            .refresh_lifetime(config.refresh_ttl)
            .session_lifetime(config.refresh_ttl.max(DEFAULT_SESSION_LIFETIME))
            .reuse_interval(config.refresh_reuse_interval),
    });
    // Each protected handler wrapped by the layer itself (`Handler::layer`), not the
    // routes (`route_layer`): an unknown path stays a 404 and another method a 405 either
    // way, but a layered route is boxed once more by axum, three more allocations per
    // request (a clone of the inner route, its call's clone and its boxed future).
    let protected = Router::new()
        .route("/me", get(me.layer(auth.clone())))
        .route("/logout", post(logout.layer(auth.clone())))
        .route("/logout-all", post(logout_all.layer(auth)));
    let app = Router::new()
        .route("/", get(page))
        .route("/health", get(health))
        .route(
            "/login",
            post(login).layer(DefaultBodyLimit::max(MAX_LOGIN_BODY)),
        )
        .route(
            "/refresh",
            post(refresh).layer(DefaultBodyLimit::max(MAX_REFRESH_BODY)),
        )
        .merge(protected);
    #[cfg(feature = "oidc")]
    let app = match backchannel {
        Some(endpoint) => app.route_service("/backchannel-logout", endpoint),
        None => app,
    };
    Ok(app
        .layer(middleware::from_fn(log_request))
        .with_state(state))
}

/// The identity provider of `OIDC_ISSUER`, found through discovery. Its key set is
/// fetched in the background: the server starts while the provider is unreachable, and
/// answers its tokens 503 until the first key set arrives.
#[cfg(feature = "oidc")]
fn provider(oidc: &OidcConfig) -> Result<tower_jwt_auth::oidc::IdentityProvider, ConfigError> {
    let mut provider = tower_jwt_auth::oidc::IdentityProvider::discover(oidc.issuer.clone())
        .audience(oidc.audience.clone())
        .refresh_cooldown(oidc.refresh_cooldown);
    if let Some(max_stale) = oidc.max_stale {
        provider = provider.max_stale(max_stale);
    }
    provider.build()
}

/// Logs each request at debug level: method, path (never the query), status, and the
/// layer's reason for a rejection. Never a token, a cookie or a body.
async fn log_request(request: Request, next: Next) -> Response {
    // Nothing is copied for a line that would not be written (the default filter is
    // `info`): this runs on every request.
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    match response.extensions().get::<Rejection>() {
        Some(rejection) => tracing::debug!(
            %method, %path, status = response.status().as_u16(),
            kind = ?rejection.kind(), reason = rejection.description(),
            "request refused by the auth layer"
        ),
        None => tracing::debug!(%method, %path, status = response.status().as_u16(), "request"),
    }
    response
}

/// A JSON error body: `{"error": code, "error_description": description}` (the shape of
/// OAuth 2 errors).
fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// The demo user these credentials name, compared in constant time: both inputs are
/// hashed to a fixed length first (so not even the lengths leak), every user is checked,
/// and username and password are combined without short-circuiting.
fn authenticate(username: &str, password: &str) -> Option<&'static str> {
    let username = Sha256::digest(username.as_bytes());
    let password = Sha256::digest(password.as_bytes());
    let mut found = None;
    for (name, pass) in USERS {
        let name_ok = username
            .as_slice()
            .ct_eq(Sha256::digest(name.as_bytes()).as_slice());
        let pass_ok = password
            .as_slice()
            .ct_eq(Sha256::digest(pass.as_bytes()).as_slice());
        if bool::from(name_ok & pass_ok) {
            found = Some(name);
        }
    }
    found
}

async fn login(
    State(app): State<Arc<AppState>>,
    body: Result<Json<Credentials>, JsonRejection>,
) -> Response {
    let credentials = match body {
        Ok(Json(credentials)) => credentials,
        // 415 (not JSON), 400 (bad JSON) or 422 (wrong fields), with a clear message.
        Err(rejection) => {
            return error(
                rejection.status(),
                "invalid_request",
                &format!(
                    "{}. Send {{\"username\": \"...\", \"password\": \"...\"}} as JSON \
                     (Content-Type: application/json).",
                    rejection.body_text()
                ),
            );
        }
    };
    let Some(user) = authenticate(&credentials.username, &credentials.password) else {
        tracing::info!("login refused: wrong username or password");
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong username or password",
        );
    };
    // Each login is a session of its own (the token's `sid`), with its refresh token:
    // logging out ends it.
    let started = tokio::time::timeout(LOGIN_REFRESH_BUDGET, app.sessions.start(user)).await;
    match started {
        Ok(Ok(tokens)) => {
            tracing::info!(user, "logged in");
            token_response(&app, &tokens)
        }
        failed => {
            // The store could not record the refresh token (in time): log in all the
            // same, with an access token only (a session that cannot be refreshed), so
            // that a store outage never locks users out nor makes logins slow.
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "the store did not answer in time".to_owned(),
            };
            tracing::warn!(error = why, "refresh token not recorded; login without one");
            match TokenIssuer::new_session_id()
                .and_then(|sid| app.issuer.issue_in_session(user, &sid, &()))
            {
                Ok(access) => access_only_response(&app, &access),
                Err(e) => {
                    tracing::error!(error = %e, "could not issue a token");
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "server_error",
                        "the token could not be issued",
                    )
                }
            }
        }
    }
}

/// The token response without a refresh token (the store could not record one).
fn access_only_response(app: &AppState, access: &IssuedToken) -> Response {
    (
        [
            (header::SET_COOKIE, app.cookie.login(access)),
            NO_STORE,
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(json!({
            "access_token": access.as_str(),
            "token_type": "Bearer",
            "expires_in": access.expires_in(),
        })),
    )
        .into_response()
}

/// 503 with `Retry-After: 1`.
fn unavailable(description: &str) -> Response {
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        description,
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The OAuth 2 token response (RFC 6749 §5.1), never cached, with both cookies.
fn token_response(app: &AppState, tokens: &SessionTokens) -> Response {
    #[derive(Serialize)]
    struct TokenResponse<'a> {
        access_token: &'a str,
        token_type: &'static str,
        expires_in: u64,
        refresh_token: &'a str,
        refresh_expires_in: u64,
    }
    let access: &IssuedToken = &tokens.access;
    let mut response = (
        [
            NO_STORE,
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(TokenResponse {
            access_token: access.as_str(),
            token_type: "Bearer",
            expires_in: access.expires_in(),
            refresh_token: tokens.refresh.as_str(),
            refresh_expires_in: tokens.refresh.expires_in(),
        }),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, app.cookie.login(access));
    headers.append(
        header::SET_COOKIE,
        app.refresh_cookie.login(&tokens.refresh),
    );
    response
}

/// `POST /refresh`: the refresh token from a JSON body `{"refresh_token": "…"}`, else
/// from the `refresh_token` cookie (same-origin requests only).
async fn refresh(
    State(app): State<Arc<AppState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    #[derive(Deserialize)]
    struct RefreshRequest {
        refresh_token: String,
    }
    let token = if body.iter().all(u8::is_ascii_whitespace) {
        let from_cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .find(|(name, _)| *name == REFRESH_COOKIE_NAME)
            .map(|(_, value)| value.to_owned());
        let Some(token) = from_cookie else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "send {\"refresh_token\": \"...\"} as JSON, or the refresh_token cookie",
            );
        };
        if !app.refresh_cookie.same_origin(&method, &uri, &headers) {
            tracing::info!("refresh refused: cross-origin request with the refresh cookie");
            return error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "cross-origin request with a refresh cookie refused",
            );
        }
        token
    } else {
        match serde_json::from_slice::<RefreshRequest>(&body) {
            Ok(request) => request.refresh_token,
            Err(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "send {\"refresh_token\": \"...\"} as JSON (Content-Type: application/json)",
                );
            }
        }
    };
    match app.sessions.refresh(&token).await {
        Ok(tokens) => {
            tracing::info!(user = tokens.access.info().subject(), "refreshed");
            token_response(&app, &tokens)
        }
        Err(e) if e.kind() == SessionErrorKind::Unavailable => {
            let source = std::error::Error::source(&e).map(ToString::to_string);
            tracing::error!(error = %e, source, "refresh failed: not recorded");
            unavailable("the refresh could not be recorded; try again")
        }
        Err(e) => {
            if e.kind() == SessionErrorKind::Reused {
                tracing::warn!("refresh token reused: its session was ended");
            } else {
                tracing::info!(kind = ?e.kind(), "refresh refused");
            }
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "invalid_grant",
                "the refresh token is invalid, expired, used or revoked",
            );
            let headers = response.headers_mut();
            headers.insert(NO_STORE.0, NO_STORE.1);
            headers.append(header::SET_COOKIE, app.refresh_cookie.logout());
            response
        }
    }
}

/// The verified claims (`sub`, `jti`, `iat`, `exp`, and `iat_us` for this server's
/// tokens).
async fn me(Extension(claims): Extension<tower_jwt_auth::Claims>) -> Response {
    // Rendered into one buffer big enough for this server's claims, so the body costs one
    // allocation (`Json` starts at 128 bytes and grows), by `Claims::write_json`: the
    // bytes `serde_json` would write, without escaping each name and value byte by byte.
    let mut body = Vec::with_capacity(ME_BODY_CAPACITY);
    match claims.write_json(&mut body) {
        Ok(()) => ([NO_STORE, JSON_CONTENT], body).into_response(),
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the claims could not be rendered",
        ),
    }
}

/// Room for `/me`'s body: this server's claims render to about 140 bytes, a provider's
/// (with `iss`, `aud` and its own names) to a few hundred.
const ME_BODY_CAPACITY: usize = 512;

const JSON_CONTENT: (header::HeaderName, HeaderValue) = (
    header::CONTENT_TYPE,
    HeaderValue::from_static("application/json"),
);

/// The answer to a logout: 204 and the clearing cookie once the store recorded it; 503
/// and the cookie left alone when it did not.
fn logged_out(
    app: &AppState,
    what: &str,
    token: &TokenInfo,
    result: Result<(), tower_jwt_auth::RevokeError>,
) -> Response {
    match result {
        Ok(()) => {
            tracing::info!(user = token.subject(), "{what}");
            let mut response = StatusCode::NO_CONTENT.into_response();
            let headers = response.headers_mut();
            headers.append(header::SET_COOKIE, app.cookie.logout());
            headers.append(header::SET_COOKIE, app.refresh_cookie.logout());
            response
        }
        Err(e) => {
            let source = std::error::Error::source(&e).map(ToString::to_string);
            tracing::error!(error = %e, source, "{what} failed: the revocation was not recorded");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "the logout could not be recorded, so the token is still valid; try again",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

async fn logout(
    State(app): State<Arc<AppState>>,
    Extension(token): Extension<TokenInfo>,
) -> Response {
    let result = app.revoker.revoke(&token).await;
    logged_out(&app, "logged out", &token, result)
}

async fn logout_all(
    State(app): State<Arc<AppState>>,
    Extension(token): Extension<TokenInfo>,
) -> Response {
    let result = app.revoker.revoke_all(&token).await;
    logged_out(&app, "logged out everywhere", &token, result)
}

/// The page, with a Content-Security-Policy that allows only its own inline script and
/// style (by hash) and requests to this origin.
async fn page() -> Response {
    static CSP: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
        let hash = |open: &str, close: &str| {
            let start = PAGE.find(open).map_or(0, |i| i + open.len());
            let end = PAGE[start..].find(close).map_or(start, |i| start + i);
            STANDARD.encode(Sha256::digest(&PAGE.as_bytes()[start..end]))
        };
        let policy = format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; \
             connect-src 'self'; img-src 'self'; form-action 'none'; \
             frame-ancestors 'none'; base-uri 'none'",
            hash("<script>", "</script>"),
            hash("<style>", "</style>"),
        );
        HeaderValue::try_from(policy)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
    });
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP.clone()),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}
