//! The identity provider's `tracing` events (features `oidc` and `tracing`): a key-set
//! fetch failing is reported once per outage at `warn`, its recovery at `info`, never
//! with a token or key. In a binary of its own: `tracing` caches each event's interest
//! per callsite, and another test hitting these callsites at the same moment without a
//! subscriber can race the capture's registration.
#![cfg(all(feature = "oidc", feature = "tracing"))]

mod support;

use std::time::Duration;

use http::StatusCode;
use support::provider::{AUDIENCE, KeyPair, Provider};
use support::service::{app, bearer, send};
use tower_jwt_auth::oidc::IdentityProvider;
use tower_jwt_auth::{JwtAuthLayer, MemoryStore};

const PATIENCE: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_failing_key_set_fetch_is_reported_once_per_outage_and_so_is_its_recovery() {
    // Current-thread runtime: the provider's task runs on this thread, where the
    // capturing subscriber is installed.
    let (capture, _guard) = support::trace::capture();
    let key = KeyPair::ec("k");
    let mut provider = Provider::start(&[&key]).await;
    let idp = IdentityProvider::discover(provider.issuer())
        .audience(AUDIENCE)
        .refresh_bounds(Duration::from_millis(200), Duration::from_millis(200))
        .build()
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !idp.is_usable() {
        assert!(tokio::time::Instant::now() < deadline, "no key set fetched");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .provider(idp.clone())
        .build()
        .unwrap();
    let svc = app(&layer);
    let token = key.sign(&provider.claims("alice"));
    assert_eq!(send(&svc, bearer(&token)).await.status, StatusCode::OK);
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
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery event: {:#?}",
            ours()
        );
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
