//! The axum extractors (feature `axum`).

#![cfg(feature = "axum")]

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use support::{service::*, tokens::*};
use tower::ServiceExt;
use tower_jwt_auth::{Claims, JwtAuthLayer, MemoryStore, TokenInfo, VerificationKey};

async fn me(claims: Claims) -> String {
    claims.subject().to_owned()
}

async fn handle(info: TokenInfo) -> String {
    info.jti().to_owned()
}

async fn maybe(claims: Option<Claims>) -> String {
    claims.map_or_else(|| "anonymous".to_owned(), |c| c.subject().to_owned())
}

async fn body(res: axum::response::Response) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn get_req(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn claims_and_token_info_extract_behind_the_layer() {
    let app = Router::new()
        .route("/me", get(me))
        .route("/jti", get(handle))
        .route_layer(layer());
    let c = claims("alice");
    let t = hs256(&c);
    let res = app.clone().oneshot(get_req("/me", Some(&t))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "alice");
    let res = app
        .clone()
        .oneshot(get_req("/jti", Some(&t)))
        .await
        .unwrap();
    assert_eq!(body(res).await, c["jti"].as_str().unwrap());
    // The layer answers before the handler runs.
    let res = app.clone().oneshot(get_req("/me", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // route_layer keeps unknown paths 404.
    let res = app.oneshot(get_req("/nope", None)).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn optional_claims_are_none_for_anonymous_requests() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .optional(true)
        .build()
        .unwrap();
    let app = Router::new().route("/", get(maybe)).layer(layer);
    let res = app.clone().oneshot(get_req("/", None)).await.unwrap();
    assert_eq!(body(res).await, "anonymous");
    let res = app
        .oneshot(get_req("/", Some(&hs256(&claims("bob")))))
        .await
        .unwrap();
    assert_eq!(body(res).await, "bob");
}

#[tokio::test]
async fn a_forgotten_layer_is_a_500_that_names_it() {
    let app = Router::new()
        .route("/me", get(me))
        .route("/maybe", get(maybe));
    for uri in ["/me", "/maybe"] {
        let res = app.clone().oneshot(get_req(uri, None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        assert!(body(res).await.contains("JwtAuthLayer"), "{uri}");
    }
}
