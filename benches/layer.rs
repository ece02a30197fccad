//! What every request costs: the full layer (a verified-token cache hit, and with the
//! cache off) against a bare `jsonwebtoken::decode` of the same token, per algorithm; the
//! cache's hit cost with 1 and 100 000 live tokens and its cost on the worst stream; the
//! rejection paths; and the revocation check at 0, 10k and 1M revoked entries.
//!
//! `cargo bench --bench layer` measures the `rust_crypto` backend;
//! `cargo bench --bench layer --no-default-features --features aws_lc_rs` the other.
//! Run `scripts/bench` for both and the HTTP load test.

mod support;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use support::{SECRET, Typical, now, ready};
use tower::{Layer, Service, service_fn};
use tower_jwt_auth::{
    Check, JwtAuthLayer, MemoryStore, RevocationStore, RevokedToken, TokenInfo, TokenIssuer,
    VerificationKey,
};

const RSA_PRIVATE: &[u8] = include_bytes!("../tests/keys/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../tests/keys/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../tests/keys/ec_private.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../tests/keys/ec_public.pem");
const ED_PRIVATE: &[u8] = include_bytes!("../tests/keys/ed_private.pem");
const ED_PUBLIC: &[u8] = include_bytes!("../tests/keys/ed_public.pem");

fn claims(jti: &str) -> serde_json::Value {
    let now = now();
    json!({"sub": "user-1234", "iat": now, "exp": now + 900, "jti": jti})
}

fn request(token: &str) -> Request<()> {
    let mut req = Request::new(());
    req.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    req
}

fn noop(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

struct Case {
    name: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    key: VerificationKey,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "HS256",
            alg: Algorithm::HS256,
            encoding: EncodingKey::from_secret(SECRET).unwrap(),
            decoding: DecodingKey::from_secret(SECRET).unwrap(),
            key: VerificationKey::hs256(SECRET).unwrap(),
        },
        Case {
            name: "RS256",
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            decoding: DecodingKey::from_rsa_pem(RSA_PUBLIC).unwrap(),
            key: VerificationKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC).unwrap(),
        },
        Case {
            name: "ES256",
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(EC_PRIVATE).unwrap(),
            decoding: DecodingKey::from_ec_pem(EC_PUBLIC).unwrap(),
            key: VerificationKey::ec_pem(Algorithm::ES256, EC_PUBLIC).unwrap(),
        },
        Case {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
            decoding: DecodingKey::from_ed_pem(ED_PUBLIC).unwrap(),
            key: VerificationKey::ed_pem(ED_PUBLIC).unwrap(),
        },
    ]
}

fn backend() -> &'static str {
    if cfg!(feature = "aws_lc_rs") {
        "aws_lc_rs"
    } else {
        "rust_crypto"
    }
}

fn decode_vs_layer(c: &mut Criterion) {
    // Building an issuer installs the crypto backend before anything signs.
    let _ = TokenIssuer::hs256(SECRET).unwrap();
    for case in cases() {
        let token =
            jsonwebtoken::encode(&Header::new(case.alg), &claims("bench-jti"), &case.encoding)
                .unwrap();
        let validation = Validation::new(case.alg);
        let layer = JwtAuthLayer::builder(MemoryStore::new())
            .key(case.key.clone())
            .build()
            .unwrap();
        let mut svc = layer.layer(service_fn(noop));
        assert_eq!(
            ready(svc.call(request(&token))).unwrap().status(),
            http::StatusCode::OK
        );
        let uncached = JwtAuthLayer::builder(MemoryStore::new())
            .key(case.key.clone())
            .token_cache(0)
            .build()
            .unwrap();
        let mut uncached = uncached.layer(service_fn(noop));

        let mut g = c.benchmark_group(format!("verify/{}/{}", backend(), case.name));
        // Both sides get (and drop) the same request, so only the work differs.
        g.bench_function("jsonwebtoken::decode", |b| {
            b.iter_batched(
                || request(&token),
                |req| {
                    let claims = jsonwebtoken::decode::<Typical>(
                        black_box(&token),
                        &case.decoding,
                        &validation,
                    )
                    .unwrap();
                    drop(black_box(req));
                    claims
                },
                BatchSize::SmallInput,
            )
        });
        // The default layer: after the first request, a verified-token cache hit.
        g.bench_function("layer", |b| {
            b.iter_batched(
                || request(&token),
                |req| ready(svc.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        // The cache off: every request verified.
        g.bench_function("layer, cache off", |b| {
            b.iter_batched(
                || request(&token),
                |req| ready(uncached.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

/// The verified-token cache: a hit with 1 and 100 000 distinct live tokens cached, and
/// the worst stream (every request a token never seen), cache on against cache off.
fn token_cache(c: &mut Criterion) {
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let mint = |i: usize| {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(&format!("jti-{i:012}")),
            &key,
        )
        .unwrap()
    };
    let mut g = c.benchmark_group("token_cache/HS256");
    for live in [1usize, 100_000] {
        let tokens: Vec<String> = (0..live).map(mint).collect();
        let layer = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .token_cache(2 * live as u64)
            .build()
            .unwrap();
        let mut svc = layer.layer(service_fn(noop));
        // Three times each: the cache takes a token from its second verification on, and
        // a doorkeeper slot shared by two tokens may need a third.
        for t in tokens.iter().chain(&tokens).chain(&tokens) {
            ready(svc.call(request(t))).unwrap();
        }
        assert!(
            layer.token_cache_len() * 10 >= live as u64 * 9,
            "{}",
            layer.token_cache_len()
        );
        let mut i = 0;
        g.bench_function(format!("hit, {live} live"), |b| {
            b.iter_batched(
                || {
                    i = (i + 7919) % live;
                    request(&tokens[i])
                },
                |req| ready(svc.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    // The worst stream: a pool larger than the cache, each token seen once per lap.
    let pool: Vec<String> = (0..200_000).map(|i| mint(1_000_000 + i)).collect();
    for (name, capacity) in [
        ("new token every request, cache on", 10_000),
        ("new token every request, cache off", 0),
    ] {
        let layer = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .token_cache(capacity)
            .build()
            .unwrap();
        let mut svc = layer.layer(service_fn(noop));
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    i = (i + 1) % pool.len();
                    request(&pool[i])
                },
                |req| ready(svc.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn rejections(c: &mut Criterion) {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(noop));
    let key = EncodingKey::from_secret(SECRET).unwrap();
    let bad_sig = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("x"),
        &EncodingKey::from_secret(b"another-secret-0123456789abcdef-0123456").unwrap(),
    )
    .unwrap();
    let now = now();
    let expired = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub":"u","iat":now - 2000,"exp":now - 1000,"jti":"e"}),
        &key,
    )
    .unwrap();
    let revoked_claims = claims("revoked");
    let revoked =
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &revoked_claims, &key).unwrap();
    let revoked_exp = revoked_claims["exp"].as_u64().unwrap();
    ready(layer.store().revoke(&RevokedToken::new(
        None,
        "revoked",
        revoked_exp,
        revoked_exp + 61,
    )))
    .unwrap();

    let mut g = c.benchmark_group("reject/HS256");
    for (name, token) in [
        ("bad signature", &bad_sig),
        ("expired", &expired),
        ("revoked", &revoked),
        ("garbage", &"not-a-token".to_owned()),
    ] {
        assert_eq!(
            ready(svc.call(request(token))).unwrap().status(),
            http::StatusCode::UNAUTHORIZED
        );
        g.bench_function(name, |b| {
            b.iter_batched(
                || request(token),
                |req| ready(svc.call(req)).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn revocation_check(c: &mut Criterion) {
    let now = now();
    for n in [0usize, 10_000, 1_000_000] {
        // Built on first use, so a filtered run does not pay for a million inserts.
        let cell = std::cell::OnceCell::new();
        let store = || {
            cell.get_or_init(|| {
                let store = MemoryStore::new();
                // Spread over a 15-minute lifetime, as real logouts would be.
                for i in 0..n {
                    let jti = format!("revoked-{i}");
                    let exp = now + (i as u64 % 900);
                    ready(store.revoke(&RevokedToken::new(
                        Some("https://issuer.example"),
                        &jti,
                        exp,
                        exp + 61,
                    )))
                    .unwrap();
                }
                store
            })
        };
        let hit = TokenInfo::new(
            Some("https://issuer.example"),
            "user-1",
            &format!("revoked-{}", n / 2),
            now,
            now + ((n / 2) as u64 % 900),
        );
        // In a populated expiry second, so the miss looks into a set, the slower case.
        let miss = TokenInfo::new(
            Some("https://issuer.example"),
            "user-1",
            "not-revoked",
            now,
            now + 450,
        );
        let mut g = c.benchmark_group(format!("check/{n}"));
        g.bench_function("miss", |b| {
            let store = store();
            b.iter(|| match store.check(black_box(&miss)) {
                Check::Ready(r) => r.unwrap(),
                Check::Pending(_) => unreachable!(),
            })
        });
        if n > 0 {
            g.bench_function("hit", |b| {
                let store = store();
                b.iter(|| match store.check(black_box(&hit)) {
                    Check::Ready(r) => r.unwrap(),
                    Check::Pending(_) => unreachable!(),
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = decode_vs_layer, token_cache, rejections, revocation_check
}
criterion_main!(benches);
