//! An identity provider's key set: fetched, refreshed in the background, fetched again
//! on demand (single-flight, with a cooldown) when a token names a key the set lacks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use serde::Deserialize;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::client::{self, FetchError, HttpClient, HyperClient};
use super::jwk::{self, RemoteKey, SetError};
use crate::cache::TokenCache;
use crate::error::{ConfigError, ConfigErrorKind};

/// Default [`IdentityProviderBuilder::refresh_cooldown`]: 30 seconds.
pub const DEFAULT_REFRESH_COOLDOWN: Duration = Duration::from_secs(30);
/// Default [`IdentityProviderBuilder::max_stale`]: 24 hours.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// Default [`IdentityProviderBuilder::max_wait`]: 3 seconds.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(3);
/// Default [`IdentityProviderBuilder::fetch_timeout`]: 5 seconds.
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`IdentityProviderBuilder::max_document_len`]: 256 KiB.
pub const DEFAULT_MAX_DOCUMENT_LEN: usize = 256 * 1024;
/// How often the key set is fetched when the provider gives no `max-age`: 5 minutes
/// (within the refresh bounds).
const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// Default longest refresh interval: 1 hour, whatever `max-age` says.
const DEFAULT_REFRESH_CEILING: Duration = Duration::from_secs(3600);
/// While fetches fail, the background retries start at this interval and double up to
/// [`MAX_RETRY`], so a provider that comes back is caught up with within seconds.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// An OpenID provider (or any JWT issuer publishing a JWK Set) whose tokens a
/// [`JwtAuthLayer`](crate::JwtAuthLayer) accepts beside its own keys; see
/// [`JwtAuthLayerBuilder::provider`](crate::JwtAuthLayerBuilder::provider).
///
/// Built with [`discover`](Self::discover) (the key set's URL from
/// `{issuer}/.well-known/openid-configuration`) or [`jwks`](Self::jwks) (a JWKS URL
/// given directly). [`build`](IdentityProviderBuilder::build) starts a Tokio task that
/// fetches the key set at once and keeps it fresh; the task stops when the last clone
/// of the handle (the layers hold clones) is dropped.
///
/// A token is checked against the keys of the provider whose issuer is exactly its
/// `iss`, each key pinned to one algorithm (the JWK's `alg`, else its `kty`/`crv`),
/// never the token header's. Cloning is cheap.
#[derive(Clone)]
pub struct IdentityProvider {
    pub(crate) inner: Arc<Inner>,
    _task: Arc<TaskGuard>,
}

impl fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.inner.current();
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.inner.issuer)
            .field("audiences", &self.inner.audiences)
            .field("keys", &set.keys.len())
            .field("fetched", &set.usable_until.is_some())
            .finish_non_exhaustive()
    }
}

/// Aborts the refresh task when the last handle goes.
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Configures an [`IdentityProvider`]; finish with [`build`](Self::build).
#[must_use]
pub struct IdentityProviderBuilder {
    issuer: String,
    jwks: Option<String>,
    audiences: Vec<String>,
    cooldown: Duration,
    floor: Option<Duration>,
    ceiling: Duration,
    max_stale: Duration,
    max_wait: Duration,
    fetch_timeout: Duration,
    max_document_len: usize,
    logout_typ: bool,
    client: Option<Arc<dyn HttpClient>>,
}

impl fmt::Debug for IdentityProviderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityProviderBuilder")
            .field("issuer", &self.issuer)
            .field("jwks", &self.jwks)
            .field("audiences", &self.audiences)
            .field("cooldown", &self.cooldown)
            .field("max_stale", &self.max_stale)
            .finish_non_exhaustive()
    }
}

impl IdentityProvider {
    /// A provider found through OpenID Connect Discovery: its key set's URL is the
    /// `jwks_uri` of `{issuer}/.well-known/openid-configuration`, whose `issuer` must
    /// equal `issuer` exactly (OpenID Connect Discovery 1.0 §4.3), or the document is
    /// refused.
    pub fn discover(issuer: impl Into<String>) -> IdentityProviderBuilder {
        IdentityProviderBuilder::new(issuer.into(), None)
    }

    /// A provider whose tokens carry `iss` = `issuer` and whose keys are the JWK Set at
    /// `jwks_url` (no discovery).
    pub fn jwks(issuer: impl Into<String>, jwks_url: impl Into<String>) -> IdentityProviderBuilder {
        IdentityProviderBuilder::new(issuer.into(), Some(jwks_url.into()))
    }

    /// The issuer (`iss`) of this provider's tokens.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// How many keys the current key set holds (0 before the first successful fetch).
    pub fn key_count(&self) -> usize {
        self.inner.current().keys.len()
    }

    /// Whether a key set was fetched and is still within
    /// [`max_stale`](IdentityProviderBuilder::max_stale) of its last successful fetch:
    /// the provider's tokens can be checked.
    pub fn is_usable(&self) -> bool {
        self.inner.current().usable(Instant::now())
    }
}

impl IdentityProviderBuilder {
    fn new(issuer: String, jwks: Option<String>) -> Self {
        Self {
            issuer,
            jwks,
            audiences: Vec::new(),
            cooldown: DEFAULT_REFRESH_COOLDOWN,
            floor: None,
            ceiling: DEFAULT_REFRESH_CEILING,
            max_stale: DEFAULT_MAX_STALE,
            max_wait: DEFAULT_MAX_WAIT,
            fetch_timeout: DEFAULT_FETCH_TIMEOUT,
            max_document_len: DEFAULT_MAX_DOCUMENT_LEN,
            logout_typ: false,
            client: None,
        }
    }

    /// Accepts this provider's tokens whose `aud` contains `audience` (call again to
    /// accept several): your client id, or the API's identifier. At least one is
    /// required: a provider signs tokens for all its clients, and one meant for another
    /// client must not pass here. Back-channel logout tokens are checked against the
    /// same audiences.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The shortest time between two fetches that a token with an unknown `kid` starts
    /// (default 30 s, counted from the last such fetch's start). Within it, tokens
    /// naming a key the set lacks are refused at once (401 `unknown_key`, or 503 when
    /// the provider's last fetch failed), so no stream of tokens can make the server
    /// fetch more often. It is also the shortest background refresh interval unless
    /// [`refresh_bounds`](Self::refresh_bounds) says otherwise.
    pub fn refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The background refresh interval's bounds: the provider's `Cache-Control:
    /// max-age` (5 minutes without one) clamped to `floor..=ceiling`. Default: the
    /// [`refresh_cooldown`](Self::refresh_cooldown) and 1 hour.
    pub fn refresh_bounds(mut self, floor: Duration, ceiling: Duration) -> Self {
        self.floor = Some(floor);
        self.ceiling = ceiling;
        self
    }

    /// How long the last key set fetched keeps verifying tokens while the provider
    /// cannot be reached (default 24 h, counted from the last successful fetch). After
    /// it, and before any key set was fetched, the provider's tokens are answered 503
    /// (the server cannot tell), never 401.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.max_stale = max_stale;
        self
    }

    /// The longest a request waits for a fetch its unknown `kid` started (default 3 s);
    /// then it is answered as if the fetch had failed (503). Requests never wait for a
    /// fetch otherwise.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The deadline of one fetch, connection, headers and body together (default 5 s).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// The largest discovery document or key set accepted, in bytes (default 256 KiB).
    pub fn max_document_len(mut self, len: usize) -> Self {
        self.max_document_len = len;
        self
    }

    /// Requires back-channel logout tokens from this provider to carry `typ:
    /// logout+jwt` in their header (default: accepted with or without it, as OpenID
    /// Connect Back-Channel Logout 1.0 §2.4 allows, but never an access token's
    /// `at+jwt`).
    pub fn require_logout_typ(mut self, require: bool) -> Self {
        self.logout_typ = require;
        self
    }

    /// Fetches with `client` instead of the built-in [`HyperClient`].
    pub fn client(mut self, client: impl HttpClient) -> Self {
        self.client = Some(Arc::new(client));
        self
    }

    /// Checks the configuration and starts the refresh task, which fetches the key set
    /// at once. Returns immediately: the server may start while the provider is
    /// unreachable, and catches up when it comes back.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidSetting`] when the issuer or JWKS URL is not an
    /// absolute `http(s)` URL without query or fragment, no audience is set, a duration
    /// or limit is zero, or there is no Tokio runtime to run the task on.
    pub fn build(self) -> Result<IdentityProvider, ConfigError> {
        let invalid = |msg: String| ConfigError::new(ConfigErrorKind::InvalidSetting, msg);
        if parse_url(&self.issuer).is_none() {
            return Err(invalid(format!(
                "the issuer {:?} is not an http(s) URL",
                self.issuer
            )));
        }
        let source =
            match &self.jwks {
                Some(url) => Source::Jwks(parse_url(url).ok_or_else(|| {
                    invalid(format!("the JWKS URL {url:?} is not an http(s) URL"))
                })?),
                None => {
                    // OpenID Connect Discovery §4: a terminating `/` is removed first.
                    let base = self.issuer.strip_suffix('/').unwrap_or(&self.issuer);
                    let url = format!("{base}/.well-known/openid-configuration");
                    Source::Discovery(parse_url(&url).ok_or_else(|| {
                        invalid(format!(
                            "the issuer {:?} is not an http(s) URL",
                            self.issuer
                        ))
                    })?)
                }
            };
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(invalid(format!(
                "the provider {:?} has no audience: set the client id or API identifier \
                 its tokens must name with `audience`",
                self.issuer
            )));
        }
        if self.max_stale.is_zero()
            || self.fetch_timeout.is_zero()
            || self.max_wait.is_zero()
            || self.max_document_len == 0
            || self.ceiling.is_zero()
        {
            return Err(invalid(
                "max_stale, max_wait, fetch_timeout, the refresh ceiling and \
                 max_document_len must be positive"
                    .into(),
            ));
        }
        let handle = tokio::runtime::Handle::try_current().map_err(|e| {
            invalid("an identity provider needs a Tokio runtime: build it inside one".into())
                .with_source(e)
        })?;
        let floor = self.floor.unwrap_or(self.cooldown);
        let inner = Arc::new(Inner {
            issuer: self.issuer,
            audiences: self.audiences,
            logout_typ: self.logout_typ,
            settings: Settings {
                cooldown: self.cooldown,
                floor: floor.min(self.ceiling),
                ceiling: self.ceiling,
                max_stale: self.max_stale,
                max_wait: self.max_wait,
                fetch_timeout: self.fetch_timeout,
                max_document_len: self.max_document_len,
            },
            client: self
                .client
                .unwrap_or_else(|| Arc::new(HyperClient::default())),
            source,
            keys: RwLock::new(Arc::new(KeySet {
                keys: Vec::new(),
                usable_until: None,
            })),
            fetch: Mutex::new(FetchState {
                in_flight: true,
                last_on_demand: None,
                last_failed: false,
                jwks_uri: None,
            }),
            wake: Notify::new(),
            attempts: watch::Sender::new(0),
            caches: Mutex::new(Vec::new()),
        });
        let task = handle.spawn(run(Arc::clone(&inner)));
        Ok(IdentityProvider {
            inner,
            _task: Arc::new(TaskGuard(task)),
        })
    }
}

/// An absolute `http`/`https` URL with a host and no fragment or query.
fn parse_url(url: &str) -> Option<Uri> {
    let uri: Uri = url.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let query_free = uri.query().is_none() && !url.contains('#');
    (scheme_ok && uri.host().is_some_and(|h| !h.is_empty()) && query_free).then_some(uri)
}

enum Source {
    Discovery(Uri),
    Jwks(Uri),
}

struct Settings {
    cooldown: Duration,
    floor: Duration,
    ceiling: Duration,
    max_stale: Duration,
    max_wait: Duration,
    fetch_timeout: Duration,
    max_document_len: usize,
}

/// A provider's shared state: the task writes the key set, requests read it.
pub(crate) struct Inner {
    pub(crate) issuer: String,
    pub(crate) audiences: Vec<String>,
    pub(crate) logout_typ: bool,
    settings: Settings,
    client: Arc<dyn HttpClient>,
    source: Source,
    keys: RwLock<Arc<KeySet>>,
    fetch: Mutex<FetchState>,
    /// Wakes the task for a fetch on demand.
    wake: Notify,
    /// Counts finished fetch attempts; a request waiting for a fetch watches it.
    attempts: watch::Sender<u64>,
    /// The verified-token caches of the layers using this provider: emptied when a key
    /// leaves the set or the set goes stale.
    caches: Mutex<Vec<Weak<TokenCache>>>,
}

/// One fetched key set.
pub(crate) struct KeySet {
    pub(crate) keys: Vec<RemoteKey>,
    /// `None` before the first successful fetch.
    usable_until: Option<Instant>,
}

impl KeySet {
    fn usable(&self, now: Instant) -> bool {
        self.usable_until.is_some_and(|t| now <= t)
    }
}

struct FetchState {
    /// A fetch is running (the task sets it, or a request that woke it).
    in_flight: bool,
    /// When a request last started a fetch.
    last_on_demand: Option<Instant>,
    /// The last fetch failed.
    last_failed: bool,
    /// The discovered JWKS URL, forgotten when a fetch of it fails.
    jwks_uri: Option<Uri>,
}

/// What the key set says about a token's key.
pub(crate) enum Lookup {
    /// The key, in this set, at this index.
    Found(Arc<KeySet>, usize),
    /// The set has no key for the token's `kid`: see [`Inner::unknown_key`].
    Missing,
    /// A token without a `kid` and a set of several keys: no fetch would help.
    NoKid,
    /// The set is older than `max_stale`: the provider's tokens cannot be checked.
    Stale,
}

/// What to do with a token whose key is not in the set.
pub(crate) enum Unknown {
    /// Wait for the fetch in flight.
    Wait(KeyWait),
    /// The set is current and has no such key: 401.
    Refuse,
    /// The set cannot be trusted to be complete (never fetched, last fetch failed, or a
    /// fetch is still in flight): 503.
    Unavailable,
}

/// A request's wait for a key-set fetch: resolves when the fetch finishes or the wait
/// bound passes, whichever is first. Only a request whose `kid` started or joined a
/// fetch holds one (boxed: the rare path pays for it, not the response future's size).
pub(crate) struct KeyWait(Pin<Box<dyn Future<Output = ()> + Send + Sync>>);

impl Future for KeyWait {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inner {
    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The key for a token's `kid`: a read lock and a reference count, nothing else.
    pub(crate) fn lookup(&self, kid: Option<&str>) -> Lookup {
        let set = self.current();
        match set.usable_until {
            None => return Lookup::Missing,
            Some(t) if Instant::now() > t => return Lookup::Stale,
            Some(_) => {}
        }
        let found = match kid {
            Some(kid) => set.keys.iter().position(|k| k.kid.as_deref() == Some(kid)),
            None if set.keys.len() == 1 => Some(0),
            None => return Lookup::NoKid,
        };
        match found {
            Some(i) => Lookup::Found(set, i),
            None => Lookup::Missing,
        }
    }

    /// A token names a key the set lacks: join the fetch in flight, start one if the
    /// cooldown allows (and `may_wait`), or answer at once.
    pub(crate) fn unknown_key(&self, may_wait: bool) -> Unknown {
        let fetched = self.current().usable_until.is_some();
        let mut state = lock(&self.fetch);
        if state.in_flight {
            return if may_wait {
                Unknown::Wait(self.wait())
            } else {
                Unknown::Unavailable
            };
        }
        let now = Instant::now();
        let cooled = state
            .last_on_demand
            .is_none_or(|t| now.duration_since(t) >= self.settings.cooldown);
        if cooled && may_wait {
            state.in_flight = true;
            state.last_on_demand = Some(now);
            // Subscribed under the lock, before the task can finish the fetch.
            let wait = self.wait();
            self.wake.notify_one();
            return Unknown::Wait(wait);
        }
        if !fetched || state.last_failed {
            Unknown::Unavailable
        } else {
            Unknown::Refuse
        }
    }

    /// Resolves after the next finished fetch, or after `max_wait`.
    fn wait(&self) -> KeyWait {
        let mut attempts = self.attempts.subscribe();
        let max_wait = self.settings.max_wait;
        KeyWait(Box::pin(async move {
            let _ = tokio::time::timeout(max_wait, attempts.changed()).await;
        }))
    }

    /// Waits (asynchronously, for the back-channel endpoint) until the key for `kid`
    /// can be decided on: the set's answer after at most one fetch.
    pub(crate) async fn lookup_or_fetch(&self, kid: Option<&str>) -> Lookup {
        match self.lookup(kid) {
            Lookup::Missing => {}
            other => return other,
        }
        if let Unknown::Wait(wait) = self.unknown_key(true) {
            wait.await;
        }
        self.lookup(kid)
    }

    /// Whether a token whose key is still missing after [`unknown_key`](Self::unknown_key)
    /// answered should be refused (401) rather than answered 503.
    pub(crate) fn missing_is_final(&self) -> bool {
        matches!(self.unknown_key(false), Unknown::Refuse)
    }

    pub(crate) fn register_cache(&self, cache: &Arc<TokenCache>) {
        let mut caches = lock(&self.caches);
        caches.retain(|c| c.strong_count() > 0);
        caches.push(Arc::downgrade(cache));
    }

    fn clear_caches(&self) {
        for cache in lock(&self.caches).iter().filter_map(Weak::upgrade) {
            cache.clear();
        }
    }

    /// Discovery (when configured and not done yet), then the key set.
    async fn fetch_keys(&self) -> Result<(jwk::ParsedSet, Option<Duration>), KeysError> {
        let s = &self.settings;
        let jwks_uri = match &self.source {
            Source::Jwks(uri) => uri.clone(),
            Source::Discovery(url) => match self.discovered() {
                Some(uri) => uri,
                None => {
                    let doc =
                        client::fetch(&*self.client, url, s.fetch_timeout, s.max_document_len)
                            .await
                            .map_err(KeysError::Discovery)?;
                    let uri = self.read_discovery(&doc.body)?;
                    lock(&self.fetch).jwks_uri = Some(uri.clone());
                    uri
                }
            },
        };
        let fetched = client::fetch(
            &*self.client,
            &jwks_uri,
            s.fetch_timeout,
            s.max_document_len,
        )
        .await
        .map_err(|e| {
            lock(&self.fetch).jwks_uri = None;
            KeysError::Jwks(e)
        })?;
        let parsed = jwk::parse_set(&fetched.body).map_err(|e| {
            lock(&self.fetch).jwks_uri = None;
            KeysError::Set(e)
        })?;
        Ok((parsed, client::max_age(&fetched.headers)))
    }

    fn discovered(&self) -> Option<Uri> {
        lock(&self.fetch).jwks_uri.clone()
    }

    fn read_discovery(&self, body: &[u8]) -> Result<Uri, KeysError> {
        #[derive(Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let doc: Discovery =
            serde_json::from_slice(body).map_err(|_| KeysError::DiscoveryDocument)?;
        if doc.issuer != self.issuer {
            return Err(KeysError::IssuerMismatch);
        }
        parse_url(&doc.jwks_uri).ok_or(KeysError::DiscoveryDocument)
    }

    /// Puts a freshly fetched set in place; a key that left empties the caches.
    fn install(&self, parsed: jwk::ParsedSet, now: Instant) -> (usize, bool) {
        let new = Arc::new(KeySet {
            keys: parsed.keys,
            usable_until: Some(now + self.settings.max_stale),
        });
        let count = new.keys.len();
        let old = std::mem::replace(
            &mut *self.keys.write().unwrap_or_else(PoisonError::into_inner),
            new,
        );
        let current = self.current();
        let removed = old.keys.iter().any(|o| {
            !current
                .keys
                .iter()
                .any(|k| k.kid == o.kid && k.algorithm == o.algorithm && k.material == o.material)
        });
        if removed {
            self.clear_caches();
        }
        (count, removed)
    }
}

/// Why a key-set fetch failed (for the operator's log; never a document's content).
#[derive(Debug)]
enum KeysError {
    Discovery(FetchError),
    DiscoveryDocument,
    IssuerMismatch,
    Jwks(FetchError),
    Set(SetError),
}

impl fmt::Display for KeysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discovery(e) => write!(f, "discovery document: {e}"),
            Self::DiscoveryDocument => f.write_str(
                "the discovery document is not JSON with an `issuer` and an http(s) `jwks_uri`",
            ),
            Self::IssuerMismatch => f.write_str(
                "the discovery document's `issuer` is not the configured issuer (refused, \
                 OpenID Connect Discovery §4.3)",
            ),
            Self::Jwks(e) => write!(f, "key set: {e}"),
            Self::Set(SetError::NotASet) => f.write_str("the key set is not a JWK Set"),
            Self::Set(SetError::NoUsableKey) => {
                f.write_str("the key set has no key usable for verifying signatures")
            }
        }
    }
}

impl KeysError {
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    fn code(&self) -> &'static str {
        match self {
            Self::Discovery(_) | Self::Jwks(_) => "fetch_failed",
            Self::DiscoveryDocument => "bad_discovery_document",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::Set(SetError::NotASet) => "not_a_key_set",
            Self::Set(SetError::NoUsableKey) => "no_usable_key",
        }
    }
}

/// The provider's task: fetch, install, sleep until the next refresh (or a request's
/// wake-up), and on failures retry with a short backoff, keeping the last good set.
async fn run(inner: Arc<Inner>) {
    let s = &inner.settings;
    let mut next = Instant::now();
    let mut failures: u32 = 0;
    let mut stale_cleared = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = inner.wake.notified() => {}
        }
        let set = inner.current();
        let now = Instant::now();
        if set.usable_until.is_some_and(|t| now > t) && !stale_cleared {
            // The set is past max_stale: what it verified must be verified again (and
            // is then answered 503) rather than answered from the caches.
            inner.clear_caches();
            stale_cleared = true;
        }
        lock(&inner.fetch).in_flight = true;
        let started = Instant::now();
        let result = inner.fetch_keys().await;
        let now = Instant::now();
        let failed = result.is_err();
        match result {
            Ok((parsed, max_age)) => {
                let skipped = parsed.skipped.len();
                let (keys, removed) = inner.install(parsed, now);
                stale_cleared = false;
                if failures > 0 {
                    info_event!(
                        issuer = %inner.issuer, keys, skipped, failures,
                        "key set fetched again: the provider is reachable"
                    );
                } else {
                    debug_event!(
                        issuer = %inner.issuer, keys, skipped, removed,
                        elapsed_ms = u64::try_from(now.duration_since(started).as_millis()).unwrap_or(u64::MAX),
                        "key set fetched"
                    );
                }
                let _ = (keys, skipped, removed, started);
                failures = 0;
                // Refreshed well before the set could go stale while the provider is up.
                let interval = max_age
                    .unwrap_or(DEFAULT_REFRESH)
                    .clamp(s.floor, s.ceiling)
                    .min(s.max_stale / 2);
                next = now + interval;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures == 1 {
                    warn_event!(
                        issuer = %inner.issuer, code = e.code(), error = %e,
                        "key set fetch failing: the last good key set is kept"
                    );
                } else {
                    debug_event!(
                        issuer = %inner.issuer, code = e.code(), error = %e, failures,
                        "key set fetch failed again"
                    );
                }
                let _ = &e;
                let backoff = FIRST_RETRY
                    .saturating_mul(1 << (failures - 1).min(8))
                    .min(MAX_RETRY);
                next = now + backoff;
                // Wake when the set goes stale, to empty the caches on time.
                if let Some(t) = set.usable_until
                    && t > now
                {
                    next = next.min(t + Duration::from_millis(1));
                }
            }
        }
        {
            let mut state = lock(&inner.fetch);
            state.in_flight = false;
            state.last_failed = failed;
        }
        inner.attempts.send_modify(|n| *n += 1);
    }
}
