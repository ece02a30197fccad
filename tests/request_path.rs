//! Regressions in the request path (issue 9): cookies the layer does not read never
//! change a request's outcome, setters never discard earlier ones, and an optional
//! layer's anonymous request meets a handler that needs claims with a 401.

use std::convert::Infallible;

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{ServiceExt, service_fn};
use tower_jwt_auth::{
    Claims, JwtAuthLayer, MemoryStore, Rejection, RejectionKind, TokenIssuer, TokenSource,
    VerificationKey,
};

const SECRET: &[u8] = b"a request-path test secret of 32+ bytes";

fn layer() -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .build()
        .unwrap()
}

fn token() -> String {
    TokenIssuer::hs256(SECRET)
        .unwrap()
        .issue("alice")
        .unwrap()
        .into_string()
}

/// The status and, when refused, the rejection kind of one request.
async fn send(
    layer: &JwtAuthLayer<MemoryStore>,
    req: Request<String>,
) -> (StatusCode, Option<RejectionKind>) {
    let app = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|req: Request<String>| async move {
            let who = req
                .extensions()
                .get::<Claims>()
                .map(|c| c.subject().to_owned());
            Ok::<_, Infallible>(Response::new(who.unwrap_or_default()))
        }));
    let res = app.oneshot(req).await.unwrap();
    let kind = res.extensions().get::<Rejection>().map(Rejection::kind);
    (res.status(), kind)
}

/// Cookies that other applications on the same site may set: any bytes a `HeaderValue`
/// can carry (UTF-8, Latin-1, obs-text), malformed pairs, very long values.
fn foreign_cookies() -> Vec<Vec<u8>> {
    vec![
        "theme=dunkel-grün".as_bytes().to_vec(),
        b"prefs=\xff\xfe\x80; lang=fr".to_vec(),
        b"no_equals_sign; ; =; ==; a==b".to_vec(),
        format!("big={}", "x".repeat(64 * 1024)).into_bytes(),
        "emoji=🍪; other=\"quoted value\"".as_bytes().to_vec(),
        b"access_token_other=\xe9".to_vec(),
    ]
}

fn with_cookie(mut req: Request<String>, cookie: &[u8]) -> Request<String> {
    req.headers_mut()
        .append(header::COOKIE, HeaderValue::from_bytes(cookie).unwrap());
    req
}

#[tokio::test]
async fn foreign_cookies_never_change_a_bearer_request() {
    let layer = layer();
    let token = token();
    for cookie in foreign_cookies() {
        let req = Request::get("/")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        let seen = send(&layer, with_cookie(req, &cookie)).await;
        assert_eq!(
            seen,
            (StatusCode::OK, None),
            "{}",
            String::from_utf8_lossy(&cookie)
        );
    }
}

#[tokio::test]
async fn foreign_cookies_never_change_a_cookie_request() {
    let layer = layer();
    let token = token();
    for cookie in foreign_cookies() {
        // The foreign cookie in its own header and in the token's header.
        let req = Request::get("/")
            .header(header::COOKIE, format!("access_token={token}"))
            .body(String::new())
            .unwrap();
        let seen = send(&layer, with_cookie(req, &cookie)).await;
        assert_eq!(
            seen,
            (StatusCode::OK, None),
            "{}",
            String::from_utf8_lossy(&cookie)
        );
        let mut both = cookie.clone();
        both.extend_from_slice(format!("; access_token={token}").as_bytes());
        let req = with_cookie(Request::get("/").body(String::new()).unwrap(), &both);
        assert_eq!(send(&layer, req).await, (StatusCode::OK, None));
    }
}

#[tokio::test]
async fn foreign_cookies_never_change_an_anonymous_request() {
    let layer = layer();
    for cookie in foreign_cookies() {
        let req = with_cookie(Request::get("/").body(String::new()).unwrap(), &cookie);
        let seen = send(&layer, req).await;
        assert_eq!(
            seen,
            (StatusCode::UNAUTHORIZED, Some(RejectionKind::MissingToken)),
            "{}",
            String::from_utf8_lossy(&cookie)
        );
    }
}

#[tokio::test]
async fn cookie_after_sources_adds_a_source() {
    // `cookie()` used to replace the list `sources()` set: the cookie-only layer below
    // then also read the bearer header, and the second cookie was the only one read.
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .sources([TokenSource::cookie("first")])
        .cookie("second")
        .build()
        .unwrap();
    let token = token();
    for name in ["first", "second"] {
        let req = Request::get("/")
            .header(header::COOKIE, format!("{name}={token}"))
            .body(String::new())
            .unwrap();
        assert_eq!(send(&layer, req).await, (StatusCode::OK, None), "{name}");
    }
    let bearer = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    assert_eq!(
        send(&layer, bearer).await,
        (StatusCode::UNAUTHORIZED, Some(RejectionKind::MissingToken))
    );
}

#[test]
fn a_source_configured_twice_is_a_config_error() {
    let err = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .cookie("access_token")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), tower_jwt_auth::ConfigErrorKind::InvalidSetting);
    assert!(err.to_string().contains("twice"), "{err}");
}

#[cfg(feature = "axum")]
mod axum_optional {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode, header};
    use tower::ServiceExt;
    use tower_jwt_auth::{
        Claims, JwtAuthLayer, MemoryStore, Rejection, RejectionKind, TokenInfo, VerificationKey,
    };

    #[tokio::test]
    async fn optional_layer_and_required_claims_answer_401_not_500() {
        let auth = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(super::SECRET).unwrap())
            .optional(true)
            .build()
            .unwrap();
        let app = Router::new()
            .route(
                "/claims",
                get(|c: Claims| async move { c.subject().to_owned() }),
            )
            .route(
                "/info",
                get(|t: TokenInfo| async move { t.jti().to_owned() }),
            )
            .route_layer(auth);
        for path in ["/claims", "/info"] {
            let res = app
                .clone()
                .oneshot(Request::get(path).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Bearer", "{path}");
            assert_eq!(
                res.extensions().get::<Rejection>().map(Rejection::kind),
                Some(RejectionKind::MissingToken)
            );
        }
        // With a token the same handlers answer.
        let token = super::token();
        let res = app
            .oneshot(
                Request::get("/claims")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn no_layer_is_still_a_500_naming_the_layer() {
        let app: Router =
            Router::new().route("/", get(|c: Claims| async move { c.subject().to_owned() }));
        let res = app
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
