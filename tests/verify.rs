//! Verification against hostile and malformed tokens, keys, algorithms and claims.

mod support;

use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use support::{clock::*, service::*, tokens::*};
use tower_jwt_auth::{JwtAuthLayer, MemoryStore, RejectionKind, VerificationKey};

fn layer_with(keys: Vec<VerificationKey>) -> JwtAuthLayer<MemoryStore> {
    let mut b = JwtAuthLayer::builder(MemoryStore::new());
    for k in keys {
        b = b.key(k);
    }
    b.build().unwrap()
}

async fn description(layer: &JwtAuthLayer<MemoryStore>, token: &str) -> Option<&'static str> {
    send(&app(layer), bearer(token))
        .await
        .rejection
        .map(|r| r.description())
}

#[tokio::test]
async fn alg_none_never_passes_in_any_spelling() {
    let app = app(&layer());
    let payload = claims("mallory").to_string();
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        for sig in ["", "e30", "AAAA"] {
            let token = format!(
                "{}.{}.{sig}",
                b64(header.as_bytes()),
                b64(payload.as_bytes())
            );
            let seen = send(&app, bearer(&token)).await;
            assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{alg} {sig}");
            assert!(seen.subject.is_none());
            // An unknown `alg` makes the header unreadable, whatever the key setup.
            assert_eq!(
                seen.rejection.unwrap().description(),
                "the token is malformed",
                "{alg} {sig}"
            );
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_is_refused() {
    // Key confusion: the attacker uses the (public) RSA key bytes as an HMAC secret.
    let layer = layer_with(vec![
        VerificationKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC).unwrap(),
    ]);
    let token = sign(
        &Header::new(Algorithm::HS256),
        &claims("mallory"),
        RSA_PUBLIC,
    );
    let seen = send(&app(&layer), bearer(&token)).await;
    assert_invalid_token(&seen, RejectionKind::InvalidToken);
    // The real RS256 token passes.
    let good = sign_with(
        &Header::new(Algorithm::RS256),
        &claims("alice"),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    );
    assert_eq!(
        send(&app(&layer), bearer(&good)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn each_key_accepts_exactly_its_algorithm() {
    let layer = layer_with(vec![
        VerificationKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC).unwrap(),
    ]);
    // Same RSA key, another RSA algorithm: refused.
    for alg in [Algorithm::RS384, Algorithm::PS256] {
        let token = sign_with(
            &Header::new(alg),
            &claims("alice"),
            &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        );
        assert_eq!(
            description(&layer, &token).await,
            Some("the token's algorithm is not accepted for its key"),
            "{alg:?}"
        );
    }
}

#[tokio::test]
async fn es256_and_eddsa_tokens_verify_with_their_keys() {
    let layer = layer_with(vec![
        VerificationKey::ec_pem(Algorithm::ES256, EC_PUBLIC)
            .unwrap()
            .kid("ec"),
        VerificationKey::ed_pem(ED_PUBLIC).unwrap().kid("ed"),
    ]);
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("ec".into());
    let es = sign_with(
        &h,
        &claims("ec-user"),
        &EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
    );
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("ed".into());
    let ed = sign_with(
        &h,
        &claims("ed-user"),
        &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
    );
    let app = app(&layer);
    assert_eq!(
        send(&app, bearer(&es)).await.subject.as_deref(),
        Some("ec-user")
    );
    assert_eq!(
        send(&app, bearer(&ed)).await.subject.as_deref(),
        Some("ed-user")
    );
    // The EdDSA token under the EC kid: the key's algorithm wins, refused.
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some("ec".into());
    let confused = sign_with(
        &h,
        &claims("x"),
        &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
    );
    assert_eq!(
        send(&app, bearer(&confused)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn keys_are_chosen_by_kid_for_rotation() {
    let layer = layer_with(vec![
        VerificationKey::hs256(SECRET).unwrap().kid("2025"),
        VerificationKey::hs256(OTHER_SECRET).unwrap().kid("2026"),
    ]);
    let app = app(&layer);
    let with_kid = |kid: &str, secret: &[u8]| {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(kid.into());
        sign(&h, &claims("rotating-user"), secret)
    };
    assert_eq!(
        send(&app, bearer(&with_kid("2025", SECRET))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, bearer(&with_kid("2026", OTHER_SECRET)))
            .await
            .status,
        StatusCode::OK
    );
    // Right secret, wrong kid: the signature does not match the named key.
    let seen = send(&app, bearer(&with_kid("2026", SECRET))).await;
    assert_eq!(
        seen.rejection.unwrap().description(),
        "the token's signature is invalid"
    );
    // Unknown, empty, path-like and huge kids.
    for kid in ["2027", "", "../../etc/passwd", &"k".repeat(4000)] {
        let seen = send(&app, bearer(&with_kid(kid, SECRET))).await;
        assert_invalid_token(&seen, RejectionKind::InvalidToken);
        assert_eq!(
            seen.rejection.unwrap().description(),
            "the token's key is unknown"
        );
    }
    // No kid while every key is named.
    let seen = send(&app, bearer(&hs256(&claims("x")))).await;
    assert_eq!(
        seen.rejection.unwrap().description(),
        "the token's key is unknown"
    );
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    let token = sign(&Header::new(Algorithm::HS256), &claims("x"), OTHER_SECRET);
    assert_eq!(
        description(&layer(), &token).await,
        Some("the token's signature is invalid")
    );
    // Tampered payload, original signature.
    let good = hs256(&claims("alice"));
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims("admin").to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        send(&app(&layer()), bearer(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn garbage_tokens_are_invalid_tokens_never_errors() {
    let app = app(&layer());
    let long_dots = ".".repeat(100);
    for token in [
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "...",
        long_dots.as_str(),
        "e30.e30.e30",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0",
        "eyJhbGciOiJIUzI1NiJ9..",
        "%%%.%%%.%%%",
    ] {
        let seen = send(&app, bearer(token)).await;
        // Either a malformed request (bad token68 syntax) or an invalid token.
        assert!(
            seen.status == StatusCode::UNAUTHORIZED || seen.status == StatusCode::BAD_REQUEST,
            "{token}: {seen:?}"
        );
        assert!(seen.subject.is_none());
    }
}

#[tokio::test]
async fn registered_claims_are_required_and_typed() {
    let app = app(&layer());
    let now = now();
    let cases = [
        ("missing exp", json!({"sub":"a","iat":now,"jti":"j"})),
        ("missing jti", json!({"sub":"a","iat":now,"exp":now+600})),
        ("missing sub", json!({"iat":now,"exp":now+600,"jti":"j"})),
        ("missing iat", json!({"sub":"a","exp":now+600,"jti":"j"})),
        (
            "empty jti",
            json!({"sub":"a","iat":now,"exp":now+600,"jti":""}),
        ),
        (
            "empty sub",
            json!({"sub":"","iat":now,"exp":now+600,"jti":"j"}),
        ),
        (
            "exp as string",
            json!({"sub":"a","iat":now,"exp":(now+600).to_string(),"jti":"j"}),
        ),
        (
            "exp null",
            json!({"sub":"a","iat":now,"exp":null,"jti":"j"}),
        ),
        (
            "exp negative",
            json!({"sub":"a","iat":now,"exp":-1,"jti":"j"}),
        ),
        (
            "exp bool",
            json!({"sub":"a","iat":now,"exp":true,"jti":"j"}),
        ),
        (
            "iat as string",
            json!({"sub":"a","iat":now.to_string(),"exp":now+600,"jti":"j"}),
        ),
        (
            "nbf as string",
            json!({"sub":"a","iat":now,"exp":now+600,"nbf":"0","jti":"j"}),
        ),
        (
            "jti as number",
            json!({"sub":"a","iat":now,"exp":now+600,"jti":5}),
        ),
        (
            "sub as object",
            json!({"sub":{},"iat":now,"exp":now+600,"jti":"j"}),
        ),
        (
            "iat_us inconsistent",
            json!({"sub":"a","iat":now,"iat_us":(now-10)*1_000_000,"exp":now+600,"jti":"j"}),
        ),
    ];
    for (name, c) in cases {
        let seen = send(&app, bearer(&hs256(&c))).await;
        assert_invalid_token(&seen, RejectionKind::InvalidToken);
        assert_eq!(
            seen.rejection.unwrap().description(),
            "the token's claims are missing or malformed",
            "{name}"
        );
    }
    // A NumericDate with a fraction is valid (RFC 7519 §2).
    let c = json!({"sub":"a","iat":now as f64 + 0.25,"exp":now as f64 + 600.5,"jti":"j"});
    assert_eq!(send(&app, bearer(&hs256(&c))).await.status, StatusCode::OK);
    // Payload that is not an object / not JSON, with a valid signature.
    for payload in ["[]", "null", "42", "not json", "{\"sub\":\"a\""] {
        let token = raw_hs256(r#"{"alg":"HS256"}"#, payload);
        assert_eq!(
            send(&app, bearer(&token)).await.status,
            StatusCode::UNAUTHORIZED,
            "{payload}"
        );
    }
}

#[tokio::test]
async fn expiry_and_not_before_honour_the_leeway() {
    let app = app(&layer());
    let now = now();
    let at = |exp: u64, nbf: Option<u64>| {
        let mut c = json!({"sub":"a","iat":now - 100,"exp":exp,"jti":uid()});
        if let Some(nbf) = nbf {
            c["nbf"] = json!(nbf);
        }
        hs256(&c)
    };
    // Default leeway 60 s.
    assert_invalid_token(
        &send(&app, bearer(&at(now - 120, None))).await,
        RejectionKind::ExpiredToken,
    );
    assert_eq!(
        send(&app, bearer(&at(now - 30, None))).await.status,
        StatusCode::OK
    );
    assert_invalid_token(
        &send(&app, bearer(&at(now + 600, Some(now + 300)))).await,
        RejectionKind::ImmatureToken,
    );
    assert_eq!(
        send(&app, bearer(&at(now + 600, Some(now + 30))))
            .await
            .status,
        StatusCode::OK
    );

    // Zero leeway.
    let strict = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .leeway(std::time::Duration::ZERO)
        .build()
        .unwrap();
    assert_invalid_token(
        &send(&support::service::app(&strict), bearer(&at(now - 5, None))).await,
        RejectionKind::ExpiredToken,
    );
}

#[tokio::test]
async fn tokens_from_the_future_or_living_too_long_are_refused() {
    let app = app(&layer());
    let now = now();
    let future = hs256(&json!({"sub":"a","iat":now + 3600,"exp":now + 4000,"jti":"j"}));
    assert_eq!(
        description(&layer(), &future).await,
        Some("the token was issued in the future")
    );
    let long = hs256(&json!({"sub":"a","iat":now,"exp":now + 2 * 24 * 3600,"jti":"j"}));
    assert_eq!(
        send(&app, bearer(&long))
            .await
            .rejection
            .unwrap()
            .description(),
        "the token's lifetime is longer than allowed"
    );
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .issuer("https://auth.example")
        .audience("api")
        .build()
        .unwrap();
    let app = app(&layer);
    let with = |iss: Option<&str>, aud: Option<serde_json::Value>| {
        let mut c = claims("a");
        if let Some(iss) = iss {
            c["iss"] = json!(iss);
        }
        if let Some(aud) = aud {
            c["aud"] = aud;
        }
        hs256(&c)
    };
    assert_eq!(
        send(
            &app,
            bearer(&with(Some("https://auth.example"), Some(json!("api"))))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(
            &app,
            bearer(&with(
                Some("https://auth.example"),
                Some(json!(["other", "api"]))
            ))
        )
        .await
        .status,
        StatusCode::OK
    );
    for (name, token, why) in [
        (
            "wrong iss",
            with(Some("https://evil.example"), Some(json!("api"))),
            "the token's issuer is not accepted",
        ),
        (
            "missing iss",
            with(None, Some(json!("api"))),
            "the token's claims are missing or malformed",
        ),
        (
            "wrong aud",
            with(Some("https://auth.example"), Some(json!("web"))),
            "the token's audience is not accepted",
        ),
        (
            "missing aud",
            with(Some("https://auth.example"), None),
            "the token's claims are missing or malformed",
        ),
        (
            "aud wrong type",
            with(Some("https://auth.example"), Some(json!(5))),
            "the token's claims are missing or malformed",
        ),
    ] {
        let seen = send(&app, bearer(&token)).await;
        assert_invalid_token(&seen, RejectionKind::InvalidToken);
        assert_eq!(seen.rejection.unwrap().description(), why, "{name}");
    }
    // Without a configured audience, a token that names one is not for us.
    let mut c = claims("a");
    c["aud"] = json!("somebody-else");
    assert_eq!(
        description(&support::service::layer(), &hs256(&c)).await,
        Some("the token's audience is not accepted")
    );
}

#[tokio::test]
async fn typ_is_checked_when_configured() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .typ("at+jwt")
        .build()
        .unwrap();
    let app = app(&layer);
    let with_typ = |typ: Option<&str>| {
        let mut h = Header::new(Algorithm::HS256);
        h.typ = typ.map(Into::into);
        sign(&h, &claims("a"), SECRET)
    };
    assert_eq!(
        send(&app, bearer(&with_typ(Some("at+jwt")))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, bearer(&with_typ(Some("application/at+JWT"))))
            .await
            .status,
        StatusCode::OK
    );
    for typ in [Some("JWT"), None, Some("at+jwt2")] {
        let seen = send(&app, bearer(&with_typ(typ))).await;
        assert_eq!(
            seen.rejection.unwrap().description(),
            "the token's type is not accepted",
            "{typ:?}"
        );
    }
}

#[tokio::test]
async fn unknown_crit_and_key_bearing_headers_do_not_help_an_attacker() {
    let app = app(&layer());
    let payload = claims("a").to_string();
    // Unknown critical extension: must be refused (RFC 7515 §4.1.11).
    let token = raw_hs256(
        r#"{"alg":"HS256","crit":["exp-ext"],"exp-ext":1}"#,
        &payload,
    );
    assert_eq!(
        send(&app, bearer(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // jku / x5u / jwk never select a key: a token signed with the attacker's own secret
    // and pointing at it is refused, and one signed with ours passes (header ignored).
    let evil_secret = b"attacker-controlled-secret-0123456789ab";
    for extra in [
        r#""jku":"http://127.0.0.1:9/jwks.json""#,
        r#""x5u":"http://127.0.0.1:9/cert.pem""#,
        r#""jwk":{"kty":"oct","k":"YXR0YWNrZXItY29udHJvbGxlZC1zZWNyZXQtMDEyMzQ1Njc4OWFi"}"#,
    ] {
        let header = format!(r#"{{"alg":"HS256",{extra}}}"#);
        let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &EncodingKey::from_secret(evil_secret).unwrap(),
            Algorithm::HS256,
        )
        .unwrap();
        let seen = send(&app, bearer(&format!("{signing_input}.{sig}"))).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{extra}");
        let ours = raw_hs256(&header, &payload);
        assert_eq!(
            send(&app, bearer(&ours)).await.status,
            StatusCode::OK,
            "{extra}"
        );
    }
}
