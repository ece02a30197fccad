//! The `tracing` feature: one `debug` event per refusal, with its reason code, inside the
//! request's span, and never a token, a claim or a key. Captured with a
//! tracing-subscriber layer that records every field of every event.

#![cfg(feature = "tracing")]

mod support;

use http::{Request, StatusCode, header};
use jsonwebtoken::{Algorithm, Header};
use support::service::{app, bearer, layer, send};
use support::tokens::{OTHER_SECRET, SECRET, claims, hs256, sign};
use support::trace::{Captured, capture};
use tracing::{Instrument, Level};

/// The token, its three parts and the secrets must appear nowhere in `event`.
#[track_caller]
fn assert_no_secrets(event: &Captured, token: &str) {
    let text = event.text();
    assert!(!text.contains(token), "{text}");
    for part in token.split('.').filter(|p| p.len() > 4) {
        assert!(!text.contains(part), "{text}");
    }
    for secret in [SECRET, OTHER_SECRET] {
        assert!(
            !text.contains(std::str::from_utf8(secret).unwrap()),
            "{text}"
        );
    }
    // The subject is a claim.
    assert!(!text.contains("alice"), "{text}");
}

#[tokio::test]
async fn a_refusal_is_one_debug_event_with_its_code_and_no_token() {
    let (capture, _guard) = capture();
    let layer = layer();
    let app = app(&layer);
    let token = sign(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        OTHER_SECRET,
    );

    let seen = send(&app, bearer(&token))
        .instrument(tracing::info_span!("request"))
        .await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);

    let events = capture.take();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.target, "tower_jwt_auth");
    assert_eq!(event.level, Level::DEBUG);
    assert_eq!(event.field("code"), Some("bad_signature"));
    assert_eq!(event.field("kind"), Some("InvalidToken"));
    assert_eq!(event.field("grpc"), Some("false"));
    assert_eq!(event.field("message"), Some("request refused"));
    // Inside the request's span, as tower-http's TraceLayer would have it.
    assert_eq!(event.span.as_deref(), Some("request"));
    assert_no_secrets(event, &token);
}

#[tokio::test]
async fn a_revoked_or_grpc_refusal_says_so_without_the_claims() {
    let (capture, _guard) = capture();
    let layer = layer();
    let app = app(&layer);
    let token = hs256(&claims("alice"));
    layer.revoker().revoke_token(&token).await.unwrap();
    capture.take();

    send(&app, bearer(&token)).await;
    let mut grpc = bearer(&token);
    grpc.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    send(&app, grpc).await;
    send(&app, Request::new(String::new())).await;

    let events = capture.take();
    let codes: Vec<_> = events
        .iter()
        .map(|e| (e.field("code"), e.field("grpc")))
        .collect();
    assert_eq!(
        codes,
        [
            (Some("revoked"), Some("false")),
            (Some("revoked"), Some("true")),
            (Some("missing"), Some("false")),
        ]
    );
    for event in &events {
        assert_no_secrets(event, &token);
        // The token's id is not logged either.
        let jti = layer.verify(&token).unwrap().jti().to_owned();
        assert!(!event.text().contains(&jti), "{event:?}");
    }
}

#[tokio::test]
async fn an_accepted_request_emits_nothing() {
    let (capture, _guard) = capture();
    let layer = layer();
    let app = app(&layer);
    let seen = send(&app, bearer(&hs256(&claims("alice")))).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert!(capture.take().is_empty());
}
