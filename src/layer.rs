//! [`JwtAuthLayer`] and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use crate::auth::Auth;
use crate::cache::TokenCache;
use crate::claims::{TokenInfo, TokenLocation};
use crate::cross_origin;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::rejection::{DefaultRejection, Rejection};
use crate::revoke::Revoker;
use crate::service::JwtAuth;
use crate::source::TokenSource;
use crate::store::{Acceptance, RevocationStore};
use crate::verify::{VerificationKey, Verifier, VerifierConfig};

/// Default leeway for `exp`, `nbf` and `iat` checks: 60 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default longest accepted token lifetime (`exp - iat`): 24 hours.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The largest leeway accepted: one day. It is a clock-skew allowance; more is a
/// configuration mistake (and jsonwebtoken's `now - leeway` must not underflow).
const MAX_LEEWAY: Duration = Duration::from_secs(24 * 3600);
/// Default capacity of the verified-token cache: 10 000 tokens (see
/// [`JwtAuthLayerBuilder::token_cache`]).
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;
/// Default longest accepted token: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// A tower [`Layer`] that authenticates requests with JWTs and enforces revocations.
///
/// Built with [`JwtAuthLayer::builder`]. For every request it:
///
/// 1. finds the token in the configured [`TokenSource`]s (default: the `Authorization:
///    Bearer` header);
/// 2. for a cookie token on an unsafe method, applies the cross-origin check;
/// 3. verifies it: the key named by `kid`, that key's one algorithm, `exp`, `nbf`, `iat`,
///    `iss`, `aud`, `typ`, a `jti` and a `sub`;
/// 4. asks the [`RevocationStore`](crate::RevocationStore) whether it was revoked;
/// 5. on success inserts [`Claims<C>`](crate::Claims) and [`TokenInfo`](crate::TokenInfo) into
///    the request's extensions and calls the inner service; otherwise answers with the
///    rejection response (RFC 6750 by default), never an error.
///
/// `R` is the revocation store, `C` the application's own claims type and `F` the
/// rejection response builder. Cloning is cheap (one `Arc`).
pub struct JwtAuthLayer<R, C = (), F = DefaultRejection> {
    auth: Arc<Auth<R, F>>,
    _claims: PhantomData<fn() -> C>,
}

impl<R, C, F> Clone for JwtAuthLayer<R, C, F> {
    fn clone(&self) -> Self {
        Self {
            auth: Arc::clone(&self.auth),
            _claims: PhantomData,
        }
    }
}

impl<R, C, F> fmt::Debug for JwtAuthLayer<R, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("sources", &self.auth.sources)
            .field("optional", &self.auth.optional)
            .field("token_cache", &self.auth.cache)
            .finish_non_exhaustive()
    }
}

impl<R> JwtAuthLayer<R> {
    /// Starts configuring a layer that records revocations in `store`.
    pub fn builder(store: R) -> JwtAuthLayerBuilder<R> {
        JwtAuthLayerBuilder {
            store,
            settings: Settings::default(),
            on_rejection: DefaultRejection,
            _claims: PhantomData,
        }
    }
}

impl<R: RevocationStore, C, F> JwtAuthLayer<R, C, F> {
    /// A handle to revoke tokens (log out) in this layer's store, with this layer's
    /// rules: the same leeway and lifetime settings, and the same verification for
    /// [`Revoker::revoke_token`]. Keep it in your application state; its type does not
    /// name the store, so handlers need not be generic.
    pub fn revoker(&self) -> Revoker {
        Revoker::new(
            Arc::clone(&self.auth.store) as _,
            Arc::clone(&self.auth.verifier),
        )
    }
}

#[cfg(feature = "oidc")]
impl<R: RevocationStore, C, F> JwtAuthLayer<R, C, F> {
    /// The back-channel logout endpoint (OpenID Connect Back-Channel Logout 1.0) of
    /// this layer's identity providers (feature `oidc`): logout tokens are checked
    /// with their keys and audiences and this layer's leeway, and the logouts they ask
    /// for are recorded in this layer's store. Mount it without the layer in front:
    ///
    /// ```ignore
    /// let app = Router::new()
    ///     .route("/me", get(me).route_layer(auth.clone()))
    ///     .route_service("/backchannel-logout", auth.backchannel_logout());
    /// ```
    pub fn backchannel_logout(&self) -> crate::oidc::BackchannelLogout {
        crate::oidc::BackchannelLogout::new(Arc::clone(&self.auth.verifier), self.revoker())
    }
}

impl<R: crate::SessionStore, C, F> JwtAuthLayer<R, C, F> {
    /// A handle to start login sessions and exchange their refresh tokens
    /// ([`Sessions`](crate::Sessions)) in this layer's store, issuing access tokens
    /// with `issuer`. Ending a session on reuse uses this layer's rules, as
    /// [`revoker`](Self::revoker) does.
    pub fn sessions(&self, issuer: crate::TokenIssuer) -> crate::Sessions {
        crate::Sessions::new(Arc::clone(&self.auth.store), issuer, self.revoker())
    }
}

impl<R, C, F> JwtAuthLayer<R, C, F> {
    /// Verifies a token string with this layer's rules (key and algorithm, `exp`, `nbf`,
    /// `iat`, lifetime, `iss`, `aud`, `typ`, `sub` and `jti`, length), as if it had come
    /// in a request's `Authorization` header.
    ///
    /// The revocation store is **not** consulted: this says whether the token is
    /// genuine, not whether it was logged out. Use it to read a token handed over
    /// outside a request (a WebSocket message, a logout body); to log such a token out,
    /// [`Revoker::revoke_token`] verifies it the same way.
    ///
    /// # Errors
    ///
    /// The [`Rejection`] a request with this token would get.
    pub fn verify(&self, token: &str) -> Result<TokenInfo, Rejection> {
        self.auth
            .verifier
            .verify::<()>(token, TokenLocation::Header)
            .map(|claims| claims.token)
    }

    /// How many verified tokens the layer's cache holds (0 when it is off); for an
    /// operator's gauge, not for every request.
    pub fn token_cache_len(&self) -> u64 {
        self.auth.cache.as_deref().map_or(0, TokenCache::len)
    }

    /// The revocation store.
    pub fn store(&self) -> &R {
        &self.auth.store
    }
}

impl<S, R, C, F> Layer<S> for JwtAuthLayer<R, C, F> {
    type Service = JwtAuth<S, R, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::new(inner, Arc::clone(&self.auth))
    }
}

/// Configures a [`JwtAuthLayer`]; finish with [`build`](Self::build).
///
/// Setters that name one thing (`key`, `issuer`, `audience`, `source`, `cookie`,
/// `trusted_origin`) add to what was configured before; the others set a value.
/// [`sources`](Self::sources) is the one setter that replaces a list, the default
/// included, and says so.
#[must_use]
pub struct JwtAuthLayerBuilder<R, C = (), F = DefaultRejection> {
    store: R,
    settings: Settings,
    on_rejection: F,
    _claims: PhantomData<fn() -> C>,
}

/// The builder's settings that do not depend on its type parameters, so the
/// type-changing methods move one value.
#[derive(Debug)]
struct Settings {
    keys: Vec<VerificationKey>,
    issuers: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    typ: Option<String>,
    leeway: Duration,
    max_lifetime: Duration,
    max_token_len: usize,
    sources: Vec<TokenSource>,
    trusted_origins: Vec<String>,
    optional: bool,
    token_cache: u64,
    #[cfg(feature = "oidc")]
    providers: Vec<crate::oidc::IdentityProvider>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            issuers: None,
            audiences: None,
            typ: None,
            leeway: DEFAULT_LEEWAY,
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            sources: vec![TokenSource::bearer()],
            trusted_origins: Vec::new(),
            optional: false,
            token_cache: DEFAULT_TOKEN_CACHE_CAPACITY,
            #[cfg(feature = "oidc")]
            providers: Vec::new(),
        }
    }
}

impl<R, C, F> fmt::Debug for JwtAuthLayerBuilder<R, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayerBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<R, C, F> JwtAuthLayerBuilder<R, C, F> {
    /// Adds a verification key. Several keys (with distinct `kid`s) allow rotating keys
    /// without logging everyone out; at most one key may have no `kid`, and it verifies
    /// tokens whose header has no `kid`.
    pub fn key(mut self, key: VerificationKey) -> Self {
        self.settings.keys.push(key);
        self
    }

    /// Accepts tokens signed by an identity provider (feature `oidc`), beside the keys
    /// given with [`key`](Self::key) and other providers: a token whose `iss` is the
    /// provider's issuer is checked against that provider's key set and audiences, and
    /// only those; any other token against the layer's own keys and settings. The
    /// provider's tokens need `sub`, `exp`, `iat` and `jti` like any other; their `sid`,
    /// when present, is their session, which the provider's back-channel logout ends
    /// ([`JwtAuthLayer::backchannel_logout`]).
    ///
    /// A token naming a key its provider's set lacks makes the provider fetch the set
    /// again (one fetch at a time, at most one per cooldown); only such a request
    /// waits, for at most the provider's `max_wait`. Tokens the provider's keys cannot
    /// decide on (no set fetched yet, or the last one too old) are answered 503.
    #[cfg(feature = "oidc")]
    pub fn provider(mut self, provider: crate::oidc::IdentityProvider) -> Self {
        self.settings.providers.push(provider);
        self
    }

    /// Accepts tokens whose `iss` is `issuer` (call again to accept several). Once set,
    /// `iss` is required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.settings
            .issuers
            .get_or_insert_with(Vec::new)
            .push(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` contains `audience` (call again to accept several).
    /// Once set, `aud` is required. Without it, tokens that carry an `aud` are refused
    /// (RFC 7519 §4.1.3).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.settings
            .audiences
            .get_or_insert_with(Vec::new)
            .push(audience.into());
        self
    }

    /// Requires the token header's `typ` to be `typ` (e.g. `at+jwt`, RFC 9068), compared
    /// case-insensitively with the `application/` prefix optional.
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.settings.typ = Some(typ.into());
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 60 s, whole seconds, at
    /// most one day). A revoked token stays on the denylist until its `exp` plus this
    /// leeway.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.settings.leeway = leeway;
        self
    }

    /// The longest token lifetime (`exp - iat`) accepted (default 24 h). Longer-lived
    /// tokens are refused, so that a logout-everywhere cutoff can be forgotten once this
    /// long has passed. Give a [`TokenIssuer`](crate::TokenIssuer) the same bound with
    /// its [`max_lifetime`](crate::TokenIssuer::max_lifetime).
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.max_lifetime = lifetime;
        self
    }

    /// The longest token accepted, in bytes (default 8 KiB). Longer ones are refused
    /// before any decoding.
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.settings.max_token_len = len;
        self
    }

    /// Adds a place to look for tokens, after those configured so far (by default the
    /// `Authorization: Bearer` header). When a request carries tokens in several
    /// sources, the first source in the list wins.
    pub fn source(mut self, source: TokenSource) -> Self {
        self.settings.sources.push(source);
        self
    }

    /// Adds the cookie `name` as a token source: shorthand for
    /// `source(TokenSource::cookie(name))`. With the default sources this reads the
    /// `Authorization` header first, then the cookie.
    pub fn cookie(self, name: impl Into<String>) -> Self {
        self.source(TokenSource::cookie(name))
    }

    /// **Replaces** the list of token sources, the default `Authorization` header
    /// included, with `sources`, in order of precedence. Use it for a cookie-only layer:
    /// `sources([TokenSource::cookie("access_token")])`.
    pub fn sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.settings.sources = sources.into_iter().collect();
        self
    }

    /// Adds an origin (`scheme://host[:port]`) whose cross-origin requests with a cookie
    /// token are allowed.
    pub fn trusted_origin(mut self, origin: impl Into<String>) -> Self {
        self.settings.trusted_origins.push(origin.into());
        self
    }

    /// When `true`, requests without any token pass through without claims; a presented
    /// but bad token is still refused. Default `false`.
    pub fn optional(mut self, optional: bool) -> Self {
        self.settings.optional = optional;
        self
    }

    /// How many verified tokens the layer remembers (default
    /// [`DEFAULT_TOKEN_CACHE_CAPACITY`]); `0` turns the cache off.
    ///
    /// A request whose token was verified before costs a lookup instead of a signature
    /// check and the claims' parsing: for RS256 or ES256 tokens that is most of a
    /// request's cost. A hit still applies the time rules (`exp`, `nbf`, `iat` with the
    /// leeway) and the revocation check, exactly as a fresh verification would; only
    /// successful verifications of tokens up to 2 KiB are kept, from their second
    /// verification on (a token seen once is never inserted). A full cache replaces the
    /// least recently useful entry, an expired one first. Memory: about the token's
    /// length plus its claims per entry ([BENCHMARKS.md] has the measured figures).
    /// Each thread also keeps weak references to the last few entries it found, so a
    /// client's repeat served on the same thread takes no shared lock; they keep no
    /// token or claims alive and are answered only while the entry is in the cache.
    ///
    /// [BENCHMARKS.md]: https://github.com/tower-jwt-auth/tower-jwt-auth/blob/main/BENCHMARKS.md
    pub fn token_cache(mut self, capacity: u64) -> Self {
        self.settings.token_cache = capacity;
        self
    }

    /// Decodes the application's own claims as `C2` into [`Claims<C2>`](crate::Claims).
    pub fn claims<C2>(self) -> JwtAuthLayerBuilder<R, C2, F> {
        JwtAuthLayerBuilder {
            store: self.store,
            settings: self.settings,
            on_rejection: self.on_rejection,
            _claims: PhantomData,
        }
    }

    /// Builds rejection responses with `on_rejection` (see
    /// [`OnRejection`](crate::OnRejection)) instead of the RFC 6750 default.
    pub fn on_rejection<F2>(self, on_rejection: F2) -> JwtAuthLayerBuilder<R, C, F2> {
        JwtAuthLayerBuilder {
            store: self.store,
            settings: self.settings,
            on_rejection,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the layer.
    ///
    /// The store is told the layer's leeway and lifetime cap
    /// ([`RevocationStore::retain_for`]), so it keeps every revocation as long as this
    /// layer could accept a token it covers.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when there is no key, keys are ambiguous, no crypto backend is
    /// usable, no token source is set or one is set twice, a cookie name or trusted
    /// origin is malformed, a limit is zero, or the leeway is over one day.
    pub fn build(self) -> Result<JwtAuthLayer<R, C, F>, ConfigError>
    where
        R: RevocationStore,
    {
        let s = self.settings;
        let invalid = |msg: String| Err(ConfigError::new(ConfigErrorKind::InvalidSetting, msg));
        if s.sources.is_empty() {
            return invalid("no token source: configure at least one".into());
        }
        for (i, source) in s.sources.iter().enumerate() {
            if s.sources[..i].contains(source) {
                return invalid(format!("the token source {source:?} is configured twice"));
            }
            if let Some(name) = source.cookie_name()
                && !crate::issue::valid_cookie_name(name)
            {
                return invalid(format!("{name:?} is not a valid cookie name"));
            }
        }
        for o in &s.trusted_origins {
            if !cross_origin::valid_origin(o) {
                return invalid(format!(
                    "{o:?} is not an origin of the form scheme://host[:port]"
                ));
            }
        }
        if s.max_token_len == 0 {
            return invalid("max_token_len must be positive".into());
        }
        if s.max_lifetime.is_zero() {
            return invalid("max_token_lifetime must be positive".into());
        }
        if s.leeway > MAX_LEEWAY {
            return invalid("the leeway must be at most one day".into());
        }
        let verifier = Verifier::new(VerifierConfig {
            keys: s.keys,
            #[cfg(feature = "oidc")]
            providers: s.providers,
            issuers: s.issuers,
            audiences: s.audiences,
            typ: s.typ,
            leeway: s.leeway.as_secs(),
            max_lifetime: s.max_lifetime.as_secs(),
            max_token_len: s.max_token_len,
        })?;
        self.store
            .retain_for(&Acceptance::new(s.leeway, s.max_lifetime));
        let cache = (s.token_cache > 0)
            .then(|| Arc::new(TokenCache::new(s.token_cache, s.leeway.as_secs())));
        #[cfg(feature = "oidc")]
        if let Some(cache) = &cache {
            for route in verifier.providers() {
                route.provider.inner.register_cache(cache);
            }
        }
        Ok(JwtAuthLayer {
            auth: Arc::new(Auth {
                verifier: Arc::new(verifier),
                sources: s.sources,
                trusted_origins: s.trusted_origins,
                optional: s.optional,
                store: Arc::new(self.store),
                on_rejection: self.on_rejection,
                cache,
            }),
            _claims: PhantomData,
        })
    }
}
