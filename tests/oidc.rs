//! Identity providers' key sets (feature `oidc`), against a real provider on loopback
//! (tests/support/provider.rs): discovery, mixed key types, rotation, single-flight
//! fetches under streams of unknown `kid`s and concurrent requests, a provider that is
//! down, slow, failing or hostile, pinned algorithms, and several issuers side by side.
#![cfg(feature = "oidc")]

mod support;

use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::clock::uid;
use support::provider::{AUDIENCE, KeyPair, Mode, Provider};
use support::service::{Seen, app, bearer, send};
use tower_jwt_auth::oidc::{IdentityProvider, IdentityProviderBuilder};
use tower_jwt_auth::{JwtAuthLayer, MemoryStore, VerificationKey};

/// How long a test waits for something that should happen within seconds.
const PATIENCE: Duration = Duration::from_secs(15);

fn code(seen: &Seen) -> Option<&'static str> {
    seen.rejection.as_ref().map(|r| r.code())
}

/// A provider handle for `provider` through discovery, configured by `tune`.
fn idp(
    provider: &Provider,
    tune: impl FnOnce(IdentityProviderBuilder) -> IdentityProviderBuilder,
) -> IdentityProvider {
    tune(IdentityProvider::discover(provider.issuer()).audience(AUDIENCE))
        .build()
        .unwrap()
}

fn layer(idp: &IdentityProvider) -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .provider(idp.clone())
        .build()
        .unwrap()
}

/// Waits until the provider's first key set is in.
async fn fetched(idp: &IdentityProvider) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !idp.is_usable() {
        assert!(tokio::time::Instant::now() < deadline, "no key set fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `token` to `svc` with a time limit: a hang is a failure, not a stuck test.
async fn call<S>(svc: &S, token: &str) -> Seen
where
    S: tower::Service<
            http::Request<String>,
            Response = http::Response<String>,
            Error = std::convert::Infallible,
        > + Clone,
{
    tokio::time::timeout(PATIENCE, send(svc, bearer(token)))
        .await
        .expect("an answer in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_rsa_ec_and_eddsa_keys_verify_their_own_tokens_and_bad_keys_are_skipped() {
    let (rsa, ec, ed) = (
        KeyPair::rsa("rsa", Algorithm::RS256),
        KeyPair::ec("ec"),
        KeyPair::ed("ed"),
    );
    let provider = Provider::start(&[]).await;
    let mut keys = vec![
        // A Keycloak realm's encryption key, an HMAC key and an unknown curve come
        // first: each is skipped, the rest of the set is kept.
        json!({ "kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP",
                "n": rsa.jwk["n"], "e": "AQAB" }),
        json!({ "kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0" }),
        json!({ "kty": "EC", "kid": "k1", "crv": "secp256k1", "x": "AA", "y": "AA" }),
    ];
    keys.extend([rsa.jwk.clone(), ec.jwk.clone(), ed.jwk.clone()]);
    provider.set_raw_keys(keys);
    let idp = idp(&provider, |b| b);
    fetched(&idp).await;
    assert_eq!(idp.key_count(), 3);
    let svc = app(&layer(&idp));
    for key in [&rsa, &ec, &ed] {
        let seen = call(&svc, &key.sign(&provider.claims("alice"))).await;
        assert_eq!(seen.status, StatusCode::OK, "{:?} {seen:?}", key.algorithm);
        let info = seen.info.unwrap();
        assert_eq!(info.issuer(), Some(provider.issuer().as_str()));
        assert_eq!(info.subject(), "alice");
    }
    // An HMAC token naming the skipped `oct` key is not verified with it.
    let forged = support::tokens::sign(
        &Header {
            kid: Some("hmac".into()),
            ..Header::new(Algorithm::HS256)
        },
        &provider.claims("mallory"),
        b"secret-secret-secret-secret",
    );
    assert_eq!(call(&svc, &forged).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(provider.discovery_fetches(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_kid_is_accepted_after_one_fetch_and_a_removed_key_is_refused_cached_or_not() {
    let (old, new) = (KeyPair::rsa("old", Algorithm::RS256), KeyPair::ec("new"));
    let provider = Provider::start(&[&old]).await;
    let idp = idp(&provider, |b| {
        b.refresh_cooldown(Duration::from_millis(300))
    });
    fetched(&idp).await;
    let layer = layer(&idp);
    let svc = app(&layer);
    let old_token = old.sign(&provider.claims("alice"));
    // Twice: the second verification puts it in the verified-token cache.
    for _ in 0..3 {
        assert_eq!(call(&svc, &old_token).await.status, StatusCode::OK);
    }
    assert_eq!(layer.token_cache_len(), 1);
    assert_eq!(provider.jwks_fetches(), 1);

    // The provider rotates: the new key in, the old one out.
    provider.set_keys(&[&new]);
    let seen = call(&svc, &new.sign(&provider.claims("bob"))).await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
    assert_eq!(provider.jwks_fetches(), 2, "one fetch brought the new key");
    // The old key left the set: its token is refused, although it was cached.
    let seen = call(&svc, &old_token).await;
    assert_eq!(code(&seen), Some("unknown_key"), "{seen:?}");
    assert_eq!(layer.token_cache_len(), 0);
    // Past the cooldown, its kid may start one more fetch, which changes nothing.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(code(&call(&svc, &old_token).await), Some("unknown_key"));
    assert_eq!(provider.jwks_fetches(), 3);
    assert_eq!(code(&call(&svc, &old_token).await), Some("unknown_key"));
    assert_eq!(provider.jwks_fetches(), 3, "within the cooldown: no fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_of_unknown_kids_makes_one_fetch_per_cooldown() {
    let key = KeyPair::rsa("real", Algorithm::RS256);
    let provider = Provider::start(&[&key]).await;
    // The default cooldown: 30 s.
    let idp = idp(&provider, |b| b);
    fetched(&idp).await;
    let svc = app(&layer(&idp));
    for i in 0..300 {
        let header = Header {
            kid: Some(format!("made-up-{i}-{}", uid())),
            ..Header::new(Algorithm::RS256)
        };
        let seen = call(&svc, &key.sign_with_header(header, &provider.claims("eve"))).await;
        assert_eq!(code(&seen), Some("unknown_key"), "{seen:?}");
    }
    assert_eq!(
        provider.jwks_fetches(),
        2,
        "the first fetch, and one for the whole stream"
    );
    // Known keys kept working throughout.
    assert_eq!(
        call(&svc, &key.sign(&provider.claims("alice")))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_for_a_new_kid_share_one_fetch() {
    let (a, b) = (KeyPair::rsa("a", Algorithm::RS256), KeyPair::ed("b"));
    let provider = Provider::start(&[&a]).await;
    let idp = idp(&provider, |b| b);
    fetched(&idp).await;
    let svc = app(&layer(&idp));
    provider.set_keys(&[&a, &b]);
    // Slow enough that every request below arrives while the fetch is in flight.
    provider.set_mode(Mode::Slow(Duration::from_millis(500)));
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..64 {
        let svc = svc.clone();
        let token = b.sign(&provider.claims(&format!("user-{i}")));
        requests.spawn(async move { call(&svc, &token).await.status });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_eq!(provider.jwks_fetches(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_any_key_set_tokens_are_503_and_accepted_once_the_provider_comes_up() {
    let key = KeyPair::ec("k");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], support::ports::free_port()));
    let mut provider = Provider::unstarted(addr, &[&key]);
    // Built while the provider is unreachable: no error, the layer serves at once.
    let idp = idp(&provider, |b| b);
    let svc = app(&layer(&idp));
    let token = key.sign(&provider.claims("alice"));
    for _ in 0..5 {
        let seen = call(&svc, &token).await;
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE, "{seen:?}");
        assert_eq!(code(&seen), Some("keys_unavailable"));
    }
    provider.up().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let seen = call(&svc, &token).await;
        if seen.status == StatusCode::OK {
            break;
        }
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_good_set_serves_while_the_provider_is_down_until_max_stale() {
    let key = KeyPair::rsa("k", Algorithm::RS256);
    let mut provider = Provider::start(&[&key]).await;
    let idp = idp(&provider, |b| b.max_stale(Duration::from_secs(2)));
    fetched(&idp).await;
    let layer = layer(&idp);
    let svc = app(&layer);
    let cached = key.sign(&provider.claims("alice"));
    for _ in 0..2 {
        assert_eq!(call(&svc, &cached).await.status, StatusCode::OK);
    }
    provider.down();
    // Within max_stale the last good set keeps verifying, cached token or not.
    assert_eq!(call(&svc, &cached).await.status, StatusCode::OK);
    let fresh = key.sign(&provider.claims("bob"));
    assert_eq!(call(&svc, &fresh).await.status, StatusCode::OK);
    // Past it, nothing from this provider can be checked: 503, cached or not.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    for token in [&cached, &fresh] {
        let seen = call(&svc, token).await;
        assert_eq!(code(&seen), Some("keys_unavailable"), "{seen:?}");
        assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(!idp.is_usable());
    provider.up().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while call(&svc, &cached).await.status != StatusCode::OK {
        assert!(tokio::time::Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_500_garbage_an_enormous_body_or_slowly_is_503_never_a_hang() {
    let key = KeyPair::ec("k");
    for mode in [
        Mode::Status(500),
        Mode::Status(302),
        Mode::Garbage,
        Mode::Enormous,
        Mode::Slow(Duration::from_secs(30)),
    ] {
        let provider = Provider::start(&[&key]).await;
        provider.set_mode(mode.clone());
        let idp = idp(&provider, |b| {
            b.fetch_timeout(Duration::from_secs(1))
                .max_wait(Duration::from_millis(1500))
        });
        let svc = app(&layer(&idp));
        let token = key.sign(&provider.claims("alice"));
        let started = std::time::Instant::now();
        for _ in 0..3 {
            let seen = call(&svc, &token).await;
            assert_eq!(
                seen.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{mode:?}: {seen:?}"
            );
            assert_eq!(code(&seen), Some("keys_unavailable"));
        }
        // Bounded: not a measurement, a check that nothing waited for the 30 s answer.
        assert!(started.elapsed() < Duration::from_secs(10), "{mode:?}");
        assert!(!idp.is_usable());
        // Once the provider serves the set again, its tokens pass.
        provider.set_mode(Mode::Up);
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while call(&svc, &token).await.status != StatusCode::OK {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{mode:?}: never caught up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_naming_another_issuer_is_refused() {
    let key = KeyPair::ec("k");
    let provider = Provider::start(&[&key]).await;
    provider.set_discovery_issuer("http://evil.example/realms/test");
    let idp = idp(&provider, |b| b);
    let svc = app(&layer(&idp));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = call(&svc, &key.sign(&provider.claims("alice"))).await;
    assert_eq!(code(&seen), Some("keys_unavailable"), "{seen:?}");
    assert!(provider.discovery_fetches() >= 1);
    assert_eq!(provider.jwks_fetches(), 0, "its jwks_uri is never used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_verifies_only_its_own_algorithm() {
    let rsa = KeyPair::rsa("rsa", Algorithm::RS256);
    let provider = Provider::start(&[&rsa]).await;
    let idp = idp(&provider, |b| b);
    fetched(&idp).await;
    let svc = app(&layer(&idp));
    let claims = provider.claims("mallory");
    // The same RSA key, another RSA algorithm named by the header.
    let ps256 = jsonwebtoken::encode(
        &Header {
            kid: Some("rsa".into()),
            ..Header::new(Algorithm::PS256)
        },
        &claims,
        &rsa.encoding,
    )
    .unwrap();
    assert_eq!(code(&call(&svc, &ps256).await), Some("bad_algorithm"));
    // Key confusion: HS256 keyed with the public key's modulus.
    let modulus = rsa.jwk["n"].as_str().unwrap().as_bytes().to_vec();
    let hs = jsonwebtoken::encode(
        &Header {
            kid: Some("rsa".into()),
            ..Header::new(Algorithm::HS256)
        },
        &claims,
        &EncodingKey::from_secret(&modulus).unwrap(),
    )
    .unwrap();
    assert_eq!(code(&call(&svc, &hs).await), Some("bad_algorithm"));
    // `alg: none`.
    let b64 = support::tokens::b64;
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"rsa"}"#),
        b64(claims.to_string().as_bytes())
    );
    assert_eq!(call(&svc, &none).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_providers_and_the_layers_own_keys_work_side_by_side() {
    let (k1, k2) = (
        KeyPair::rsa("shared-kid", Algorithm::RS256),
        KeyPair::ec("shared-kid"),
    );
    let (p1, p2) = (Provider::start(&[&k1]).await, Provider::start(&[&k2]).await);
    let (idp1, idp2) = (idp(&p1, |b| b), idp(&p2, |b| b));
    fetched(&idp1).await;
    fetched(&idp2).await;
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(support::tokens::SECRET).unwrap())
        .provider(idp1.clone())
        .provider(idp2.clone())
        .build()
        .unwrap();
    let svc = app(&layer);
    let ok = |seen: &Seen| seen.status == StatusCode::OK;
    assert!(ok(&call(&svc, &k1.sign(&p1.claims("one"))).await));
    assert!(ok(&call(&svc, &k2.sign(&p2.claims("two"))).await));
    assert!(ok(&call(
        &svc,
        &support::tokens::hs256(&support::tokens::claims("own"))
    )
    .await));
    // Signed by provider 1's key, claiming provider 2: checked against provider 2's
    // keys only (the same kid there is an EC key), so refused.
    let mut claims = p2.claims("mallory");
    claims["aud"] = AUDIENCE.into();
    let seen = call(&svc, &k1.sign(&claims)).await;
    assert_eq!(code(&seen), Some("bad_algorithm"), "{seen:?}");
    // The layer's own secret signing a token that claims a provider's issuer.
    let seen = call(&svc, &support::tokens::hs256(&p1.claims("mallory"))).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    // Two providers with one issuer are a configuration error.
    let twice = JwtAuthLayer::builder(MemoryStore::new())
        .provider(idp1.clone())
        .provider(idp1)
        .build();
    assert!(twice.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audiences_are_required_and_a_logout_token_is_never_an_access_token() {
    let key = KeyPair::rsa("k", Algorithm::RS256);
    let provider = Provider::start(&[&key]).await;
    assert!(
        IdentityProvider::discover(provider.issuer())
            .build()
            .is_err()
    );
    let idp = idp(&provider, |b| b);
    fetched(&idp).await;
    let svc = app(&layer(&idp));
    let mut other = provider.claims("alice");
    other["aud"] = "another-client".into();
    assert_eq!(
        code(&call(&svc, &key.sign(&other)).await),
        Some("bad_audience")
    );
    let mut none = provider.claims("alice");
    none.as_object_mut().unwrap().remove("aud");
    assert_eq!(
        call(&svc, &key.sign(&none)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // A logout token with everything an access token needs (sub, jti, exp, aud).
    let mut logout = provider.logout_claims(Some("alice"), None);
    logout["exp"] = (support::clock::now() + 300).into();
    assert_eq!(
        code(&call(&svc, &key.sign(&logout)).await),
        Some("bad_claims")
    );
    let typed = key.sign_with_header(
        Header {
            typ: Some("logout+jwt".into()),
            ..Header::new(Algorithm::RS256)
        },
        &provider.claims("alice"),
    );
    assert_eq!(code(&call(&svc, &typed).await), Some("bad_type"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_refresh_follows_cache_control_within_its_bounds() {
    let key = KeyPair::ec("k");
    let provider = Provider::start(&[&key]).await;
    provider.set_cache_control("public, max-age=0");
    let idp = idp(&provider, |b| {
        b.refresh_bounds(Duration::from_millis(400), Duration::from_secs(3600))
    });
    fetched(&idp).await;
    // max-age=0 is clamped to the 400 ms floor: a few refreshes within 3 s, not hundreds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fetches = provider.jwks_fetches();
    assert!((3..=9).contains(&fetches), "{fetches} fetches");
    // A rotated key is then picked up by the refresh alone.
    let next = KeyPair::ed("next");
    provider.set_keys(&[&next]);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while idp.key_count() != 1 || provider.jwks_fetches() == fetches {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(feature = "tracing")]
#[tokio::test]
async fn a_failing_key_set_fetch_is_reported_once_per_outage_and_so_is_its_recovery() {
    // Current-thread runtime: the provider's task runs on this thread, where the
    // capturing subscriber is installed.
    let (capture, _guard) = support::trace::capture();
    let key = KeyPair::ec("k");
    let mut provider = Provider::start(&[&key]).await;
    let idp = idp(&provider, |b| {
        b.refresh_bounds(Duration::from_millis(200), Duration::from_millis(200))
    });
    fetched(&idp).await;
    let svc = app(&layer(&idp));
    let token = key.sign(&provider.claims("alice"));
    assert_eq!(call(&svc, &token).await.status, StatusCode::OK);
    provider.down();
    // Refreshes every 200 ms, then retries from 0.5 s: several failures in 2.5 s.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    provider.up().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let ours = || -> Vec<support::trace::Captured> {
        capture
            .events()
            .into_iter()
            .filter(|e| e.target == "tower_jwt_auth")
            .collect()
    };
    let message = |e: &support::trace::Captured| e.field("message").unwrap_or("").to_owned();
    while !ours()
        .iter()
        .any(|e| message(e).starts_with("key set fetched again"))
    {
        assert!(tokio::time::Instant::now() < deadline, "no recovery event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = ours();
    let failing: Vec<_> = events
        .iter()
        .filter(|e| message(e).starts_with("key set fetch failing"))
        .collect();
    assert_eq!(failing.len(), 1, "{events:#?}");
    assert_eq!(failing[0].level, tracing::Level::WARN);
    assert_eq!(failing[0].field("code"), Some("fetch_failed"));
    assert_eq!(failing[0].field("issuer"), Some(provider.issuer().as_str()));
    let again = events
        .iter()
        .filter(|e| message(e).starts_with("key set fetch failed again"))
        .count();
    assert!(again >= 1, "{events:#?}");
    let recovered: Vec<_> = events
        .iter()
        .filter(|e| message(e).starts_with("key set fetched again"))
        .collect();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].level, tracing::Level::INFO);
    // Never a token, a claim or key material.
    let x = key.jwk["x"].as_str().unwrap();
    for e in &events {
        let text = e.text();
        assert!(
            !text.contains(&token) && !text.contains(x) && !text.contains("alice"),
            "{text}"
        );
    }
}

/// A client of the application's own: here the built-in one, counting its requests.
struct Counting(
    tower_jwt_auth::oidc::HyperClient,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
);

impl tower_jwt_auth::oidc::HttpClient for Counting {
    fn get(&self, request: http::Request<()>) -> tower_jwt_auth::oidc::HttpFuture {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.get(request)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_url_without_discovery_through_the_applications_own_client() {
    let key = KeyPair::rsa("k", Algorithm::RS384);
    let provider = Provider::start(&[&key]).await;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let idp = IdentityProvider::jwks(provider.issuer(), provider.jwks_url())
        .audience(AUDIENCE)
        .client(Counting(Default::default(), sent.clone()))
        .build()
        .unwrap();
    fetched(&idp).await;
    let svc = app(&layer(&idp));
    let seen = call(&svc, &key.sign(&provider.claims("alice"))).await;
    assert_eq!(seen.status, StatusCode::OK, "{seen:?}");
    assert_eq!(provider.discovery_fetches(), 0);
    assert_eq!(provider.jwks_fetches(), 1);
    assert_eq!(sent.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Not URLs: refused when the provider is built, never at the first request.
    for (issuer, jwks) in [
        ("not a url", "http://x/jwks"),
        ("http://x", "ftp://x/jwks"),
        ("http://x", "http://x/jwks?q#f"),
    ] {
        let built = IdentityProvider::jwks(issuer, jwks)
            .audience(AUDIENCE)
            .build();
        assert!(built.is_err(), "{issuer} {jwks}");
    }
}
