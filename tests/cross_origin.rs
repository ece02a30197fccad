//! Cross-origin protection for cookie-carried tokens (Go 1.25 `CrossOriginProtection`).

mod support;

use http::{Request, StatusCode, header};
use support::{service::*, tokens::*};
use tower_jwt_auth::{JwtAuthLayer, MemoryStore, RejectionKind, VerificationKey};

fn cookie_request(method: &str, headers: &[(&str, &str)]) -> Request<String> {
    let mut req = with_cookie(method, &hs256(&claims("alice")));
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            header_value(v),
        );
    }
    req
}

async fn status(layer: &JwtAuthLayer<MemoryStore>, req: Request<String>) -> StatusCode {
    let seen = send(&app(layer), req).await;
    if seen.status == StatusCode::FORBIDDEN {
        assert_eq!(seen.kind(), Some(RejectionKind::CrossOrigin));
    }
    seen.status
}

#[tokio::test]
async fn safe_methods_always_pass() {
    let layer = layer();
    for method in ["GET", "HEAD", "OPTIONS"] {
        let req = cookie_request(
            method,
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example"),
            ],
        );
        assert_eq!(status(&layer, req).await, StatusCode::OK, "{method}");
    }
}

#[tokio::test]
async fn sec_fetch_site_decides_when_present() {
    let layer = layer();
    for (site, expected) in [
        ("same-origin", StatusCode::OK),
        ("none", StatusCode::OK),
        ("cross-site", StatusCode::FORBIDDEN),
        ("same-site", StatusCode::FORBIDDEN),
    ] {
        for method in ["POST", "PUT", "PATCH", "DELETE"] {
            let req = cookie_request(method, &[("sec-fetch-site", site)]);
            assert_eq!(status(&layer, req).await, expected, "{method} {site}");
        }
    }
    // Sec-Fetch-Site wins over a matching Origin.
    let req = cookie_request(
        "POST",
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://app.example"),
        ],
    );
    assert_eq!(status(&layer, req).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_sec_fetch_site_the_origin_must_match_the_host() {
    let layer = layer();
    let cases = [
        (Some("http://app.example"), StatusCode::OK),
        (Some("https://app.example"), StatusCode::OK),
        (Some("http://APP.example"), StatusCode::OK),
        (Some("https://evil.example"), StatusCode::FORBIDDEN),
        (Some("http://app.example:8080"), StatusCode::FORBIDDEN),
        (
            Some("http://app.example.evil.example"),
            StatusCode::FORBIDDEN,
        ),
        (Some("null"), StatusCode::FORBIDDEN),
        (Some(""), StatusCode::FORBIDDEN),
        // Neither header: not a browser (curl, a server), passes.
        (None, StatusCode::OK),
    ];
    for (origin, expected) in cases {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        let req = cookie_request("POST", &headers);
        assert_eq!(status(&layer, req).await, expected, "{origin:?}");
    }
}

#[tokio::test]
async fn trusted_origins_are_allowed() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .trusted_origin("https://admin.example")
        .build()
        .unwrap();
    let req = cookie_request(
        "POST",
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://admin.example"),
        ],
    );
    assert_eq!(status(&layer, req).await, StatusCode::OK);
    let req = cookie_request("POST", &[("origin", "https://admin.example")]);
    assert_eq!(status(&layer, req).await, StatusCode::OK);
    let req = cookie_request(
        "POST",
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ],
    );
    assert_eq!(status(&layer, req).await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bearer_header_requests_are_not_affected() {
    let layer = layer();
    let mut req = bearer(&hs256(&claims("alice")));
    *req.method_mut() = http::Method::POST;
    req.headers_mut()
        .insert("sec-fetch-site", header_value("cross-site"));
    req.headers_mut()
        .insert(header::ORIGIN, header_value("https://evil.example"));
    assert_eq!(status(&layer, req).await, StatusCode::OK);
}

#[tokio::test]
async fn the_check_runs_before_the_token_is_even_verified() {
    // A cross-site POST with a garbage cookie is a 403, not a 401: nothing is decoded.
    let layer = layer();
    let mut req = with_cookie("POST", "garbage");
    req.headers_mut()
        .insert("sec-fetch-site", header_value("cross-site"));
    assert_eq!(status(&layer, req).await, StatusCode::FORBIDDEN);
}

#[test]
fn malformed_trusted_origins_are_configuration_errors() {
    for origin in [
        "admin.example",
        "https://admin.example/path",
        "https://",
        "://x",
    ] {
        let err = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .trusted_origin(origin)
            .build()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            tower_jwt_auth::ConfigErrorKind::InvalidSetting,
            "{origin}"
        );
    }
}
