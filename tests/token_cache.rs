//! The verified-token cache (issue 13): a repeat token is answered from the cache, and
//! the cache never changes an answer. Every test runs the same requests through a layer
//! with the cache and one without it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Request, Response, StatusCode, header};
use jsonwebtoken::{EncodingKey, Header, encode};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};
use tower::{ServiceExt, service_fn};
use tower_jwt_auth::{
    Claims, JwtAuthLayer, MemoryStore, Rejection, RejectionKind, VerificationKey,
};

const SECRET: &[u8] = b"a token-cache test secret of 32+ bytes";

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn mint(claims: &Value) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

fn claims(sub: &str, jti: &str, exp_offset: f64) -> Value {
    let now = now().floor();
    json!({ "sub": sub, "jti": jti, "iat": now as u64, "exp": now + exp_offset })
}

fn layer(store: Arc<MemoryStore>, cache: u64) -> JwtAuthLayer<Arc<MemoryStore>> {
    JwtAuthLayer::builder(store)
        .key(VerificationKey::hs256(SECRET).unwrap())
        .token_cache(cache)
        .build()
        .unwrap()
}

/// Status, rejection kind and description, and the subject the handler saw.
type Answer = (
    StatusCode,
    Option<(RejectionKind, &'static str)>,
    Option<String>,
);

async fn send(layer: &JwtAuthLayer<Arc<MemoryStore>>, token: &str) -> Answer {
    let app = tower::ServiceBuilder::new()
        .layer(layer.clone())
        .service(service_fn(|req: Request<String>| async move {
            let sub = req
                .extensions()
                .get::<Claims>()
                .map(|c| c.subject().to_owned());
            Ok::<_, Infallible>(Response::new(sub.unwrap_or_default()))
        }));
    let req = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let rejection = res
        .extensions()
        .get::<Rejection>()
        .map(|r| (r.kind(), r.description()));
    let sub = (res.status() == StatusCode::OK).then(|| res.body().clone());
    (res.status(), rejection, sub)
}

#[tokio::test]
async fn a_repeat_token_is_cached_and_still_answered_the_same() {
    let store = Arc::new(MemoryStore::new());
    let cached = layer(Arc::clone(&store), 100);
    let token = mint(&claims("alice", "t1", 600.0));
    assert_eq!(cached.token_cache_len(), 0);
    for _ in 0..3 {
        assert_eq!(
            send(&cached, &token).await,
            (StatusCode::OK, None, Some("alice".into()))
        );
    }
    assert_eq!(cached.token_cache_len(), 1);
    // Off means off.
    let uncached = layer(store, 0);
    send(&uncached, &token).await;
    assert_eq!(uncached.token_cache_len(), 0);
}

#[tokio::test]
async fn a_revoked_token_in_the_cache_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let cached = layer(Arc::clone(&store), 100);
    let token = mint(&claims("alice", "t2", 600.0));
    for _ in 0..3 {
        assert_eq!(send(&cached, &token).await.0, StatusCode::OK);
    }
    assert_eq!(cached.token_cache_len(), 1);
    cached.revoker().revoke_token(&token).await.unwrap();
    let answer = send(&cached, &token).await;
    assert_eq!(answer.0, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.1.map(|r| r.0), Some(RejectionKind::RevokedToken));
    // A logout-everywhere too.
    let other = mint(&claims("bob", "t3", 600.0));
    for _ in 0..3 {
        assert_eq!(send(&cached, &other).await.0, StatusCode::OK);
    }
    cached.revoker().revoke_subject(None, "bob").await.unwrap();
    assert_eq!(
        send(&cached, &other).await.1.map(|r| r.0),
        Some(RejectionKind::RevokedToken)
    );
}

#[tokio::test]
async fn an_expired_token_in_the_cache_is_refused() {
    let store = Arc::new(MemoryStore::new());
    let strict = JwtAuthLayer::builder(Arc::clone(&store))
        .key(VerificationKey::hs256(SECRET).unwrap())
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    // Expires at the start of the next second but one.
    let exp = now().floor() + 2.0;
    let token = mint(&json!({ "sub": "alice", "jti": "t4", "iat": exp as u64 - 2, "exp": exp }));
    for _ in 0..3 {
        assert_eq!(send(&strict, &token).await.0, StatusCode::OK);
    }
    assert_eq!(strict.token_cache_len(), 1);
    while now() < exp + 1.0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = send(&strict, &token).await;
    assert_eq!(
        answer.1,
        Some((RejectionKind::ExpiredToken, "the token has expired"))
    );
}

#[tokio::test]
async fn tokens_differing_in_one_byte_never_share_an_entry() {
    let store = Arc::new(MemoryStore::new());
    let cached = layer(store, 100);
    let token = mint(&claims("alice", "t5", 600.0));
    for _ in 0..3 {
        assert_eq!(send(&cached, &token).await.0, StatusCode::OK);
    }
    let bytes = token.as_bytes();
    let mut refused = 0;
    for i in 0..bytes.len() {
        let mut changed = bytes.to_vec();
        changed[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).unwrap();
        let answer = send(&cached, &changed).await;
        // A changed header or payload byte may still decode; none may pass as the cached
        // token, and none with a changed signature may pass at all.
        assert_ne!(
            answer,
            (StatusCode::OK, None, Some("alice".into())),
            "byte {i}"
        );
        refused += 1;
    }
    assert_eq!(refused, bytes.len());
    // Truncated and extended tokens too.
    for changed in [&token[..token.len() - 1], &format!("{token}A")[..]] {
        assert_eq!(send(&cached, changed).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        cached.token_cache_len(),
        1,
        "only the genuine token is cached"
    );
}

/// A hit is found by the bytes as sent, before their syntax is checked: nothing a hit
/// skips may change an answer.
#[tokio::test]
async fn a_cache_hit_changes_no_answer_about_the_request() {
    let store = Arc::new(MemoryStore::new());
    let cached = JwtAuthLayer::builder(Arc::clone(&store))
        .key(VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .build()
        .unwrap();
    let token = mint(&claims("alice", "t-syntax", 600.0));
    for _ in 0..3 {
        assert_eq!(send(&cached, &token).await.0, StatusCode::OK);
    }
    assert_eq!(cached.token_cache_len(), 1);
    // The cached token with bytes token68 forbids, or with padding it allows: refused
    // as malformed or invalid, never taken for the cached one.
    let uncached = layer(store, 0);
    for (changed, kind) in [
        (format!("{token}\""), RejectionKind::InvalidRequest),
        (format!("\"{token}\""), RejectionKind::InvalidRequest),
        (format!("{token},{token}"), RejectionKind::InvalidRequest),
        (format!("{token}="), RejectionKind::InvalidToken),
    ] {
        let answer = send(&cached, &changed).await;
        assert_eq!(answer.1.map(|(k, _)| k), Some(kind), "{changed}");
        assert_eq!(answer, send(&uncached, &changed).await, "{changed}");
    }
    // Surrounding blanks are not part of the token: still the cached one.
    let answer = send(&cached, &format!(" {token}  ")).await;
    assert_eq!(answer.2.as_deref(), Some("alice"));
    // A malformed cookie beside the cached bearer token refuses the request, as it does
    // without the cache.
    let app = tower::ServiceBuilder::new()
        .layer(cached.clone())
        .service(service_fn(|_req: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let mut req = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    req.headers_mut().insert(
        header::COOKIE,
        http::HeaderValue::from_bytes(b"access_token=\xff\xfe").unwrap(),
    );
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let code = res.extensions().get::<Rejection>().map(Rejection::code);
    assert_eq!(code, Some("malformed"));
}

#[tokio::test]
async fn the_bound_holds_under_a_stream_of_distinct_tokens() {
    let store = Arc::new(MemoryStore::new());
    let cached = layer(store, 64);
    let hot = mint(&claims("hot", "hot", 600.0));
    for i in 0..3_000 {
        // Twice each, so every one is inserted.
        let token = mint(&claims("user", &format!("stream-{i}"), 600.0));
        for _ in 0..2 {
            assert_eq!(
                send(&cached, &token).await,
                (StatusCode::OK, None, Some("user".into()))
            );
        }
        if i % 10 == 0 {
            assert_eq!(send(&cached, &hot).await.0, StatusCode::OK);
        }
        let len = cached.token_cache_len();
        assert!(len <= 64, "{len} entries for a capacity of 64");
    }
    assert_eq!(cached.token_cache_len(), 64, "full, never over");
    // Garbage is never cached at all.
    let garbage = layer(Arc::new(MemoryStore::new()), 64);
    for i in 0..500 {
        let token = mint(&claims("user", &format!("g{i}"), 600.0));
        let forged = format!("{}x", &token[..token.len() - 1]);
        send(&garbage, &forged).await;
    }
    assert_eq!(garbage.token_cache_len(), 0);
}

#[tokio::test]
async fn a_token_seen_once_is_not_cached() {
    let cached = layer(Arc::new(MemoryStore::new()), 64);
    for i in 0..200 {
        let token = mint(&claims("user", &format!("once-{i}"), 600.0));
        assert_eq!(send(&cached, &token).await.0, StatusCode::OK);
    }
    assert_eq!(cached.token_cache_len(), 0);
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
struct Custom {
    role: String,
}

#[tokio::test]
async fn custom_claims_come_out_of_the_cache_intact() {
    let store = Arc::new(MemoryStore::new());
    let cached = JwtAuthLayer::builder(store)
        .key(VerificationKey::hs256(SECRET).unwrap())
        .claims::<Custom>()
        .build()
        .unwrap();
    let mut c = claims("alice", "t6", 600.0);
    c["role"] = json!("admin");
    let token = mint(&c);
    for _ in 0..3 {
        let app = tower::ServiceBuilder::new()
            .layer(cached.clone())
            .service(service_fn(|req: Request<String>| async move {
                let claims = req.extensions().get::<Claims<Custom>>().unwrap();
                Ok::<_, Infallible>(Response::new(claims.custom().role.clone()))
            }));
        let req = Request::get("/")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(String::new())
            .unwrap();
        assert_eq!(app.oneshot(req).await.unwrap().body(), "admin");
    }
    assert_eq!(cached.token_cache_len(), 1);
}

/// The tokens a random stream draws from: valid, within the leeway, expired, not yet
/// valid, fractional dates, a future `iat`, bad signatures, missing claims.
fn pool() -> Vec<String> {
    let n = now().floor();
    let mut tokens = vec![
        mint(&json!({ "sub": "a", "jti": "p1", "iat": n as u64, "exp": n + 600.0 })),
        mint(&json!({ "sub": "b", "jti": "p2", "iat": n as u64 - 100, "exp": n - 30.0 })),
        mint(&json!({ "sub": "c", "jti": "p3", "iat": n as u64 - 200, "exp": n - 90.0 })),
        mint(
            &json!({ "sub": "d", "jti": "p4", "iat": n as u64, "exp": n + 600.0, "nbf": n + 300.0 }),
        ),
        mint(
            &json!({ "sub": "e", "jti": "p5", "iat": n as u64, "exp": n + 600.0, "nbf": n + 30.4 }),
        ),
        mint(&json!({ "sub": "f", "jti": "p6", "iat": n as u64 - 100, "exp": n - 30.6 })),
        mint(&json!({ "sub": "g", "jti": "p7", "iat": n as u64 - 200, "exp": n - 80.4 })),
        mint(&json!({ "sub": "h", "jti": "p8", "iat": n as u64 + 600, "exp": n + 900.0 })),
        mint(&json!({ "sub": "i", "jti": "p9", "iat": n as u64, "exp": n + 600.5 })),
        mint(&json!({ "sub": "j", "iat": n as u64, "exp": n + 600.0 })),
        mint(&json!({ "sub": "k", "jti": "p11", "iat": n as u64 - 90_000, "exp": n + 600.0 })),
    ];
    let forged = format!("{}A", &tokens[0][..tokens[0].len() - 1]);
    tokens.push(forged);
    // The first token with bytes the header's syntax refuses, or allows.
    let quoted = format!("{}\"", tokens[0]);
    let padded = format!("{}=", tokens[0]);
    tokens.extend([quoted, padded]);
    tokens
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Cached and uncached layers on one store give identical answers to every request
    /// of a random stream with repeats and revocations in between.
    #[test]
    fn cached_and_uncached_answers_are_identical(
        steps in prop::collection::vec((0usize..14, prop::bool::weighted(0.1)), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let store = Arc::new(MemoryStore::new());
            let cached = layer(Arc::clone(&store), 8);
            let uncached = layer(store, 0);
            let pool = pool();
            for (i, revoke) in steps {
                let token = &pool[i];
                if revoke {
                    // Only a genuine token can be revoked; both layers share the store.
                    let _ = uncached.revoker().revoke_token(token).await;
                }
                let a = send(&cached, token).await;
                let b = send(&uncached, token).await;
                prop_assert_eq!(a, b, "token {}", i);
            }
            Ok(())
        })?;
    }
}
