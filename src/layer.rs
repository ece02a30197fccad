//! [`JwtAuthLayer`] and its builder.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use serde::de::DeserializeOwned;
use tower_layer::Layer;

use crate::claims::Claims;
use crate::cross_origin;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::rejection::{DefaultRejection, Rejection};
use crate::revoke::Revoker;
use crate::service::JwtAuth;
use crate::source::{self, TokenSource};
use crate::verify::{VerificationKey, Verifier, VerifierConfig};

/// Default leeway for `exp`, `nbf` and `iat` checks: 60 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default longest accepted token lifetime (`exp - iat`): 24 hours.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The largest leeway accepted: one day. It is a clock-skew allowance; more is a
/// configuration mistake (and jsonwebtoken's `now - leeway` must not underflow).
const MAX_LEEWAY: Duration = Duration::from_secs(24 * 3600);
/// Default longest accepted token: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

/// The configuration every service clone shares, behind one `Arc`.
pub(crate) struct Shared<R, F> {
    pub(crate) verifier: Verifier,
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) trusted_origins: Vec<String>,
    pub(crate) optional: bool,
    pub(crate) store: Arc<R>,
    pub(crate) on_rejection: F,
}

impl<R, F> Shared<R, F> {
    /// Finds, checks and verifies the request's token: `Ok(None)` when none was presented.
    pub(crate) fn authenticate<C: DeserializeOwned + Clone + 'static, B>(
        &self,
        req: &Request<B>,
    ) -> Result<Option<Claims<C>>, Rejection> {
        let Some((token, location)) =
            source::find(&self.sources, req.headers(), self.verifier.max_token_len)?
        else {
            return Ok(None);
        };
        if location == crate::TokenLocation::Cookie {
            cross_origin::check(
                req.method(),
                req.uri(),
                req.headers(),
                &self.trusted_origins,
            )?;
        }
        self.verifier.verify(token, location).map(Some)
    }
}

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
/// 5. on success inserts [`Claims<C>`](Claims) and [`TokenInfo`](crate::TokenInfo) into
///    the request's extensions and calls the inner service; otherwise answers with the
///    rejection response (RFC 6750 by default), never an error.
///
/// `R` is the revocation store, `C` the application's own claims type and `F` the
/// rejection response builder. Cloning is cheap (one `Arc`).
pub struct JwtAuthLayer<R, C = (), F = DefaultRejection> {
    shared: Arc<Shared<R, F>>,
    _claims: PhantomData<fn() -> C>,
}

impl<R, C, F> Clone for JwtAuthLayer<R, C, F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
            _claims: PhantomData,
        }
    }
}

impl<R, C, F> fmt::Debug for JwtAuthLayer<R, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayer")
            .field("sources", &self.shared.sources)
            .field("optional", &self.shared.optional)
            .finish_non_exhaustive()
    }
}

impl<R> JwtAuthLayer<R> {
    /// Starts configuring a layer that records revocations in `store`.
    pub fn builder(store: R) -> JwtAuthLayerBuilder<R> {
        JwtAuthLayerBuilder {
            store,
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
            on_rejection: DefaultRejection,
            _claims: PhantomData,
        }
    }
}

impl<R, C, F> JwtAuthLayer<R, C, F> {
    /// A handle to revoke tokens (log out) with the same store and the same leeway and
    /// lifetime settings as this layer. Keep it in your application state.
    pub fn revoker(&self) -> Revoker<R> {
        Revoker::new(
            Arc::clone(&self.shared.store),
            self.shared.verifier.leeway(),
            self.shared.verifier.max_lifetime(),
        )
    }

    /// The revocation store.
    pub fn store(&self) -> &R {
        &self.shared.store
    }
}

impl<S, R, C, F> Layer<S> for JwtAuthLayer<R, C, F> {
    type Service = JwtAuth<S, R, C, F>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuth::new(inner, Arc::clone(&self.shared))
    }
}

/// Configures a [`JwtAuthLayer`]; finish with [`build`](Self::build).
#[must_use]
pub struct JwtAuthLayerBuilder<R, C = (), F = DefaultRejection> {
    store: R,
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
    on_rejection: F,
    _claims: PhantomData<fn() -> C>,
}

impl<R, C, F> fmt::Debug for JwtAuthLayerBuilder<R, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuthLayerBuilder")
            .field("keys", &self.keys)
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl<R, C, F> JwtAuthLayerBuilder<R, C, F> {
    /// Adds a verification key. Several keys (with distinct `kid`s) allow rotating keys
    /// without logging everyone out; at most one key may have no `kid`, and it verifies
    /// tokens whose header has no `kid`.
    pub fn key(mut self, key: VerificationKey) -> Self {
        self.keys.push(key);
        self
    }

    /// Accepts tokens whose `iss` is `issuer` (call again to accept several). Once set,
    /// `iss` is required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers
            .get_or_insert_with(Vec::new)
            .push(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` contains `audience` (call again to accept several).
    /// Once set, `aud` is required. Without it, tokens that carry an `aud` are refused
    /// (RFC 7519 §4.1.3).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences
            .get_or_insert_with(Vec::new)
            .push(audience.into());
        self
    }

    /// Requires the token header's `typ` to be `typ` (e.g. `at+jwt`, RFC 9068), compared
    /// case-insensitively with the `application/` prefix optional.
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 60 s, whole seconds, at
    /// most one day). A revoked token stays on the denylist until its `exp` plus this
    /// leeway.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The longest token lifetime (`exp - iat`) accepted (default 24 h). Longer-lived
    /// tokens are refused, so that a logout-everywhere cutoff can be forgotten once this
    /// long has passed.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    /// The longest token accepted, in bytes (default 8 KiB). Longer ones are refused
    /// before any decoding.
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Where tokens are looked for, in order of precedence: when a request carries
    /// tokens in several sources, the first source in this list wins. Default:
    /// `[TokenSource::bearer()]`.
    pub fn sources(mut self, sources: impl IntoIterator<Item = TokenSource>) -> Self {
        self.sources = sources.into_iter().collect();
        self
    }

    /// Shorthand for `sources([TokenSource::bearer(), TokenSource::cookie(name)])`: the
    /// `Authorization` header first, then the cookie.
    pub fn cookie(self, name: impl Into<String>) -> Self {
        self.sources([TokenSource::bearer(), TokenSource::cookie(name)])
    }

    /// An origin (`scheme://host[:port]`) whose cross-origin requests with a cookie token
    /// are allowed.
    pub fn trusted_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted_origins.push(origin.into());
        self
    }

    /// When `true`, requests without any token pass through without claims; a presented
    /// but bad token is still refused. Default `false`.
    pub fn optional(mut self, optional: bool) -> Self {
        self.optional = optional;
        self
    }

    /// Decodes the application's own claims as `C2` into [`Claims<C2>`](Claims).
    pub fn claims<C2>(self) -> JwtAuthLayerBuilder<R, C2, F> {
        JwtAuthLayerBuilder {
            store: self.store,
            keys: self.keys,
            issuers: self.issuers,
            audiences: self.audiences,
            typ: self.typ,
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
            max_token_len: self.max_token_len,
            sources: self.sources,
            trusted_origins: self.trusted_origins,
            optional: self.optional,
            on_rejection: self.on_rejection,
            _claims: PhantomData,
        }
    }

    /// Builds rejection responses with `on_rejection` (see
    /// [`OnRejection`](crate::OnRejection)) instead of the RFC 6750 default.
    pub fn on_rejection<F2>(self, on_rejection: F2) -> JwtAuthLayerBuilder<R, C, F2> {
        JwtAuthLayerBuilder {
            store: self.store,
            keys: self.keys,
            issuers: self.issuers,
            audiences: self.audiences,
            typ: self.typ,
            leeway: self.leeway,
            max_lifetime: self.max_lifetime,
            max_token_len: self.max_token_len,
            sources: self.sources,
            trusted_origins: self.trusted_origins,
            optional: self.optional,
            on_rejection,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the layer.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when there is no key, keys are ambiguous, no crypto backend is
    /// usable, no token source is set, a cookie name or trusted origin is malformed, a
    /// limit is zero, or the leeway is over one day.
    pub fn build(self) -> Result<JwtAuthLayer<R, C, F>, ConfigError> {
        let invalid = |msg: String| Err(ConfigError::new(ConfigErrorKind::InvalidSetting, msg));
        if self.sources.is_empty() {
            return invalid("no token source: configure at least one".into());
        }
        for s in &self.sources {
            if let Some(name) = s.cookie_name()
                && !crate::issue::valid_cookie_name(name)
            {
                return invalid(format!("{name:?} is not a valid cookie name"));
            }
        }
        for o in &self.trusted_origins {
            if !cross_origin::valid_origin(o) {
                return invalid(format!(
                    "{o:?} is not an origin of the form scheme://host[:port]"
                ));
            }
        }
        if self.max_token_len == 0 {
            return invalid("max_token_len must be positive".into());
        }
        if self.max_lifetime.is_zero() {
            return invalid("max_token_lifetime must be positive".into());
        }
        if self.leeway > MAX_LEEWAY {
            return invalid("the leeway must be at most one day".into());
        }
        let verifier = Verifier::new(VerifierConfig {
            keys: self.keys,
            issuers: self.issuers,
            audiences: self.audiences,
            typ: self.typ,
            leeway: self.leeway.as_secs(),
            max_lifetime: self.max_lifetime.as_secs(),
            max_token_len: self.max_token_len,
        })?;
        Ok(JwtAuthLayer {
            shared: Arc::new(Shared {
                verifier,
                sources: self.sources,
                trusted_origins: self.trusted_origins,
                optional: self.optional,
                store: Arc::new(self.store),
                on_rejection: self.on_rejection,
            }),
            _claims: PhantomData,
        })
    }
}
