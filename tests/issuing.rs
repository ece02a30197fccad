//! Issuing tokens, the login and logout cookies, and configuration errors.

mod support;

use std::time::Duration;

use http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use serde_json::{Value, json};
use support::{clock::*, service::*, tokens::*};
use tower_jwt_auth::{
    ConfigErrorKind, JwtAuthLayer, MemoryStore, TokenCookie, TokenIssuer, VerificationKey,
};

fn decode(token: &str) -> Value {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp"]);
    v.validate_aud = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(SECRET).unwrap(), &v)
        .unwrap()
        .claims
}

#[tokio::test]
async fn issued_tokens_carry_fresh_ids_and_the_configured_claims() {
    let issuer = TokenIssuer::hs256(SECRET)
        .unwrap()
        .lifetime(Duration::from_secs(300))
        .issuer("https://auth.example")
        .audience("api");
    let a = issuer.issue("alice").unwrap();
    let b = issuer.issue("alice").unwrap();
    assert_ne!(a.jti(), b.jti());
    assert!(a.jti().len() >= 22, "128 bits of randomness");
    assert!(a.issued_at_micros() < b.issued_at_micros());
    let c = decode(a.as_str());
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["iss"], "https://auth.example");
    assert_eq!(c["aud"], json!(["api"]));
    assert_eq!(c["jti"], a.jti());
    let iat = c["iat"].as_u64().unwrap();
    assert_eq!(c["exp"].as_u64().unwrap(), iat + 300);
    assert_eq!(c["iat_us"].as_u64().unwrap() / 1_000_000, iat);
    assert_eq!(a.expires_in(), 300);
    assert_eq!(a.expires_at(), iat + 300);
    assert!(iat.abs_diff(now()) <= 1);
    // The layer accepts them.
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .issuer("https://auth.example")
        .audience("api")
        .build()
        .unwrap();
    assert_eq!(
        send(&app(&layer), bearer(a.as_str())).await.status,
        StatusCode::OK
    );
    // Debug never shows the token.
    assert!(!format!("{a:?}").contains(a.as_str()));
}

#[test]
fn custom_claims_are_added_but_cannot_shadow_registered_ones() {
    let issuer = TokenIssuer::hs256(SECRET).unwrap();
    let t = issuer
        .issue_with("alice", &json!({"role": "admin", "tenant": 7}))
        .unwrap();
    let c = decode(t.as_str());
    assert_eq!(c["role"], "admin");
    assert_eq!(c["tenant"], 7);
    for bad in ["sub", "exp", "jti", "iat", "iss", "aud", "nbf", "iat_us"] {
        let err = issuer.issue_with("alice", &json!({ bad: 1 })).unwrap_err();
        assert!(err.to_string().contains("registered claim"), "{bad}: {err}");
    }
    assert!(issuer.issue_with("alice", &json!([1, 2])).is_err());
    assert!(issuer.issue_with("alice", &42).is_err());
}

#[test]
fn kid_and_typ_go_into_the_header() {
    let t = TokenIssuer::hs256(SECRET)
        .unwrap()
        .kid("2026")
        .typ("at+jwt")
        .issue("a")
        .unwrap();
    let h = jsonwebtoken::decode_header(t.as_str()).unwrap();
    assert_eq!(h.kid.as_deref(), Some("2026"));
    assert_eq!(h.typ.as_deref(), Some("at+jwt"));
    assert_eq!(h.alg, Algorithm::HS256);
}

#[test]
fn rsa_issuer_signs_what_an_rsa_key_verifies() {
    let issuer = TokenIssuer::new(
        Algorithm::RS256,
        EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap();
    let t = issuer.issue("alice").unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(t.as_str()).unwrap().alg,
        Algorithm::RS256
    );
    // An RSA key cannot sign HS256.
    let err = TokenIssuer::new(
        Algorithm::HS256,
        EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::AlgorithmMismatch);
}

#[test]
fn login_cookie_has_the_safe_attributes() {
    let issuer = TokenIssuer::hs256(SECRET)
        .unwrap()
        .lifetime(Duration::from_secs(900));
    let t = issuer.issue("alice").unwrap();
    let cookie = TokenCookie::new("access_token").unwrap();
    let v = cookie.login(&t);
    let v = v.to_str().unwrap();
    assert!(
        v.starts_with(&format!("access_token={}", t.as_str())),
        "{v}"
    );
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
        "Max-Age=900",
    ] {
        assert!(v.split("; ").any(|a| a == attr), "{attr} missing in {v}");
    }
    let insecure = TokenCookie::new("access_token")
        .unwrap()
        .secure(false)
        .login(&t);
    assert!(!insecure.to_str().unwrap().contains("Secure"));
}

#[test]
fn logout_cookie_clears_the_same_cookie() {
    let cookie = TokenCookie::new("access_token")
        .unwrap()
        .path("/app")
        .unwrap()
        .domain("example.com")
        .unwrap();
    let v = cookie.logout();
    let v = v.to_str().unwrap();
    assert!(v.starts_with("access_token=;"), "{v}");
    for attr in ["Max-Age=0", "Path=/app", "Domain=example.com", "HttpOnly"] {
        assert!(v.split("; ").any(|a| a == attr), "{attr} missing in {v}");
    }
}

#[test]
fn cookie_settings_are_validated() {
    for name in ["", "a b", "a;b", "a=b", "tök"] {
        assert_eq!(
            TokenCookie::new(name).unwrap_err().kind(),
            ConfigErrorKind::InvalidSetting,
            "{name:?}"
        );
    }
    let c = TokenCookie::new("t").unwrap();
    assert!(c.clone().path("no-slash").is_err());
    assert!(c.clone().path("/a;b").is_err());
    assert!(c.clone().domain("a b").is_err());
    assert!(c.domain("").is_err());
    let err = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .cookie("bad name")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ConfigErrorKind::InvalidSetting);
}

#[test]
fn configuration_mistakes_are_errors_not_panics() {
    let kind =
        |r: Result<JwtAuthLayer<MemoryStore>, tower_jwt_auth::ConfigError>| r.unwrap_err().kind();
    assert_eq!(
        kind(JwtAuthLayer::builder(MemoryStore::new()).build()),
        ConfigErrorKind::NoKeys
    );
    assert_eq!(
        VerificationKey::hs256(b"short").unwrap_err().kind(),
        ConfigErrorKind::WeakSecret
    );
    assert_eq!(
        VerificationKey::hmac(Algorithm::HS512, &[7u8; 48])
            .unwrap_err()
            .kind(),
        ConfigErrorKind::WeakSecret
    );
    assert_eq!(
        TokenIssuer::hs256(b"short").unwrap_err().kind(),
        ConfigErrorKind::WeakSecret
    );
    assert_eq!(
        VerificationKey::new(Algorithm::RS256, DecodingKey::from_secret(SECRET).unwrap())
            .unwrap_err()
            .kind(),
        ConfigErrorKind::AlgorithmMismatch
    );
    assert_eq!(
        VerificationKey::rsa_pem(Algorithm::RS256, b"not a pem")
            .unwrap_err()
            .kind(),
        ConfigErrorKind::InvalidKey
    );
    assert_eq!(
        VerificationKey::rsa_pem(Algorithm::ES256, RSA_PUBLIC)
            .unwrap_err()
            .kind(),
        ConfigErrorKind::AlgorithmMismatch
    );
    assert_eq!(
        kind(
            JwtAuthLayer::builder(MemoryStore::new())
                .key(VerificationKey::hs256(SECRET).unwrap())
                .key(VerificationKey::hs256(OTHER_SECRET).unwrap())
                .build()
        ),
        ConfigErrorKind::AmbiguousKeys
    );
    assert_eq!(
        kind(
            JwtAuthLayer::builder(MemoryStore::new())
                .key(VerificationKey::hs256(SECRET).unwrap().kid("k"))
                .key(VerificationKey::hs256(OTHER_SECRET).unwrap().kid("k"))
                .build()
        ),
        ConfigErrorKind::AmbiguousKeys
    );
    assert_eq!(
        kind(
            JwtAuthLayer::builder(MemoryStore::new())
                .key(VerificationKey::hs256(SECRET).unwrap())
                .sources([])
                .build()
        ),
        ConfigErrorKind::InvalidSetting
    );
    // The message says what to do.
    let err = JwtAuthLayer::builder(MemoryStore::new())
        .build()
        .unwrap_err();
    assert!(
        err.to_string().contains("JwtAuthLayerBuilder::key"),
        "{err}"
    );
}
