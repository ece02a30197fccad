//! The layer through its public API: token sources, RFC 6750 answers, optional mode,
//! pluggable rejections, custom claims, readiness and auto traits.

mod support;

use std::convert::Infallible;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use serde::Deserialize;
use serde_json::json;
use support::{service::*, tokens::*};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_jwt_auth::{
    Claims, JwtAuth, JwtAuthLayer, MemoryStore, Rejection, RejectionKind, TokenLocation,
    TokenSource, VerificationKey,
};

#[tokio::test]
async fn bearer_token_is_accepted_and_claims_reach_the_handler() {
    let app = app(&layer());
    let seen = send(&app, bearer(&hs256(&claims("alice")))).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.subject.as_deref(), Some("alice"));
    let info = seen.info.unwrap();
    assert_eq!(info.subject(), "alice");
    assert_eq!(info.location(), TokenLocation::Header);
    assert!(seen.rejection.is_none());
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive() {
    let app = app(&layer());
    let token = hs256(&claims("alice"));
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let req = Request::get("/")
            .header(header::AUTHORIZATION, format!("{scheme} {token}"))
            .body(String::new())
            .unwrap();
        assert_eq!(send(&app, req).await.status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn no_credentials_is_401_with_a_bare_challenge() {
    let app = app(&layer());
    let seen = send(&app, Request::new(String::new())).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.www_authenticate.as_deref(), Some("Bearer"));
    assert_eq!(seen.kind(), Some(RejectionKind::MissingToken));
}

#[tokio::test]
async fn another_scheme_counts_as_no_token() {
    let app = app(&layer());
    let req = Request::get("/")
        .header(header::AUTHORIZATION, "Basic YWxpY2U6d29uZGVybGFuZA==")
        .body(String::new())
        .unwrap();
    let seen = send(&app, req).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.www_authenticate.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let app = app(&layer());
    let token = hs256(&claims("alice"));
    let req = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let seen = send(&app, req).await;
    assert_eq!(seen.status, StatusCode::BAD_REQUEST);
    assert_eq!(seen.kind(), Some(RejectionKind::InvalidRequest));
    assert!(
        seen.www_authenticate
            .unwrap()
            .starts_with("Bearer error=\"invalid_request\"")
    );
}

#[tokio::test]
async fn malformed_bearer_credentials_are_an_invalid_request() {
    let app = app(&layer());
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer \"quoted\"",
        "Bearer ====",
    ] {
        let req = Request::get("/")
            .header(header::AUTHORIZATION, value)
            .body(String::new())
            .unwrap();
        let seen = send(&app, req).await;
        assert_eq!(seen.status, StatusCode::BAD_REQUEST, "{value:?}");
        assert_eq!(
            seen.kind(),
            Some(RejectionKind::InvalidRequest),
            "{value:?}"
        );
    }
    // Non-ASCII bytes in the header.
    let req = Request::get("/")
        .header(
            header::AUTHORIZATION,
            http::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
        )
        .body(String::new())
        .unwrap();
    assert_eq!(send(&app, req).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn cookie_token_is_accepted_on_safe_methods() {
    let app = app(&layer());
    let seen = send(&app, with_cookie("GET", &hs256(&claims("bob")))).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.subject.as_deref(), Some("bob"));
    assert_eq!(seen.info.unwrap().location(), TokenLocation::Cookie);
}

#[tokio::test]
async fn cookie_in_a_second_cookie_header_is_found() {
    let app = app(&layer());
    let req = Request::get("/")
        .header(header::COOKIE, "a=1")
        .header(
            header::COOKIE,
            format!("access_token={}", hs256(&claims("bob"))),
        )
        .body(String::new())
        .unwrap();
    assert_eq!(send(&app, req).await.subject.as_deref(), Some("bob"));
}

#[tokio::test]
async fn token_cookie_sent_twice_is_an_invalid_request() {
    let app = app(&layer());
    let t = hs256(&claims("bob"));
    let req = Request::get("/")
        .header(
            header::COOKIE,
            format!("access_token={t}; access_token={t}"),
        )
        .body(String::new())
        .unwrap();
    let seen = send(&app, req).await;
    assert_eq!(seen.status, StatusCode::BAD_REQUEST);
    assert_eq!(seen.kind(), Some(RejectionKind::InvalidRequest));
}

#[tokio::test]
async fn empty_cookie_counts_as_no_token() {
    let app = app(&layer());
    let req = Request::get("/")
        .header(header::COOKIE, "access_token=")
        .body(String::new())
        .unwrap();
    let seen = send(&app, req).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.kind(), Some(RejectionKind::MissingToken));
}

#[tokio::test]
async fn cookie_is_ignored_unless_configured() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let seen = send(&app(&layer), with_cookie("GET", &hs256(&claims("bob")))).await;
    assert_eq!(seen.kind(), Some(RejectionKind::MissingToken));
}

#[tokio::test]
async fn configured_order_decides_which_source_wins() {
    let header_first = layer();
    let cookie_first = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .sources([TokenSource::cookie("access_token"), TokenSource::bearer()])
        .build()
        .unwrap();
    let req = || {
        Request::get("/")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", hs256(&claims("from-header"))),
            )
            .header(
                header::COOKIE,
                format!("access_token={}", hs256(&claims("from-cookie"))),
            )
            .body(String::new())
            .unwrap()
    };
    let seen = send(&app(&header_first), req()).await;
    assert_eq!(seen.subject.as_deref(), Some("from-header"));
    let seen = send(&app(&cookie_first), req()).await;
    assert_eq!(seen.subject.as_deref(), Some("from-cookie"));
}

#[tokio::test]
async fn a_malformed_source_refuses_whatever_the_order() {
    let cookie_first = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .sources([TokenSource::cookie("access_token"), TokenSource::bearer()])
        .build()
        .unwrap();
    let t = hs256(&claims("bob"));
    let req = Request::get("/")
        .header(header::COOKIE, format!("access_token={t}"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(String::new())
        .unwrap();
    assert_eq!(
        send(&app(&cookie_first), req).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn query_string_is_never_a_source() {
    let app = app(&layer());
    let t = hs256(&claims("alice"));
    for uri in [
        format!("/?access_token={t}"),
        format!("/?token={t}"),
        format!("/?jwt={t}"),
    ] {
        let seen = send(&app, Request::get(uri).body(String::new()).unwrap()).await;
        assert_eq!(seen.kind(), Some(RejectionKind::MissingToken));
    }
}

#[tokio::test]
async fn token_over_the_limit_is_refused_before_decoding() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .max_token_len(64)
        .build()
        .unwrap();
    // A valid token, just too long for this layer.
    let seen = send(&app(&layer), bearer(&hs256(&claims("alice")))).await;
    assert_invalid_token(&seen, RejectionKind::InvalidToken);
    assert_eq!(
        seen.rejection.unwrap().description(),
        "the token is longer than allowed"
    );
    // The default limit is 8 KiB.
    let huge = "a".repeat(8 * 1024 + 1);
    let seen = send(&app(&support::service::layer()), bearer(&huge)).await;
    assert_eq!(
        seen.rejection.unwrap().description(),
        "the token is longer than allowed"
    );
}

#[tokio::test]
async fn optional_mode_passes_anonymous_requests_but_not_bad_tokens() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .optional(true)
        .build()
        .unwrap();
    let app = app(&layer);
    let seen = send(&app, Request::new(String::new())).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.subject, None);
    let seen = send(&app, bearer(&hs256(&claims("alice")))).await;
    assert_eq!(seen.subject.as_deref(), Some("alice"));
    let seen = send(&app, bearer("garbage.token.here")).await;
    assert_invalid_token(&seen, RejectionKind::InvalidToken);
}

#[tokio::test]
async fn rejection_response_is_pluggable_and_carries_the_reason() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .on_rejection(|r: &Rejection| {
            let mut res = r.to_response::<String>();
            *res.body_mut() = format!("{{\"error\":\"{}\"}}", r.description());
            res
        })
        .build()
        .unwrap();
    let svc = layer.layer(service_fn(|_req: Request<String>| async {
        Ok::<_, Infallible>(Response::new("inner".to_owned()))
    }));
    let res = svc.oneshot(bearer("x.y.z")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    assert_eq!(
        res.extensions().get::<Rejection>().unwrap().kind(),
        RejectionKind::InvalidToken
    );
    assert_eq!(res.body(), "{\"error\":\"the token is malformed\"}");
}

#[derive(Clone, Deserialize, serde::Serialize, PartialEq, Debug)]
struct MyClaims {
    role: String,
    #[serde(default)]
    tenant: Option<u32>,
}

#[tokio::test]
async fn custom_claims_are_decoded_beside_the_registered_ones() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .claims::<MyClaims>()
        .build()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let svc = layer.layer(service_fn(move |req: Request<String>| {
        let tx = tx.clone();
        async move {
            tx.send(req.extensions().get::<Claims<MyClaims>>().cloned())
                .unwrap();
            Ok::<_, Infallible>(Response::new(String::new()))
        }
    }));
    let mut c = claims("carol");
    c["role"] = json!("admin");
    c["tenant"] = json!(7);
    let res = svc.clone().oneshot(bearer(&hs256(&c))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let got = rx.recv().unwrap().unwrap();
    assert_eq!(got.subject(), "carol");
    assert_eq!(
        got.custom(),
        &MyClaims {
            role: "admin".into(),
            tenant: Some(7)
        }
    );
    // Serializes back to one flat object.
    let v = serde_json::to_value(&got).unwrap();
    assert_eq!(v["sub"], "carol");
    assert_eq!(v["role"], "admin");
    assert_eq!(v["jti"], c["jti"]);

    // A token missing the application's required claim is refused.
    let res = svc.oneshot(bearer(&hs256(&claims("dave")))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn readiness_is_forwarded_and_the_ready_service_is_called() {
    let (mock, mut handle) = tower_test::mock::pair::<Request<String>, Response<String>>();
    let mut svc = layer().layer(mock);

    // Not ready while the inner service is not.
    handle.allow(0);
    assert!(
        futures_poll_ready(&mut svc).is_pending(),
        "poll_ready must forward the inner service's readiness"
    );
    handle.allow(1);
    let ready = svc.ready().await.unwrap();
    let fut = ready.call(bearer(&hs256(&claims("alice"))));
    let (req, send_response) = handle.next_request().await.unwrap();
    assert_eq!(req.extensions().get::<Claims>().unwrap().subject(), "alice");
    send_response.send_response(Response::new("done".into()));
    assert_eq!(fut.await.unwrap().into_body(), "done");

    // A rejected request does not reach the inner service.
    handle.allow(1);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(bearer("bad.token.x"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), handle.next_request())
            .await
            .is_err()
    );
}

fn futures_poll_ready<S: Service<Request<String>>>(svc: &mut S) -> std::task::Poll<()> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    svc.poll_ready(&mut cx).map(|_| ())
}

#[test]
fn layer_service_and_future_are_send_sync_clone() {
    fn send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send>() {}
    send_sync_clone::<JwtAuthLayer<MemoryStore>>();
    send_sync_clone::<JwtAuthLayer<MemoryStore, MyClaims>>();
    send_sync_clone::<JwtAuth<Inner, MemoryStore>>();
    send_sync_clone::<tower_jwt_auth::Revoker>();
    send_sync_clone::<MemoryStore>();
    send_sync_clone::<Claims<MyClaims>>();
    send_sync_clone::<tower_jwt_auth::TokenInfo>();
    send_sync_clone::<Rejection>();
    send::<<JwtAuth<Inner, MemoryStore> as Service<Request<String>>>::Future>();
}
