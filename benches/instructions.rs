//! Instruction counts per request, deterministic whatever else the machine is doing.
//!
//! Not a criterion bench: run it under callgrind, once per mode, and divide:
//!
//! ```sh
//! cargo bench --bench instructions --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/instructions-* decode 20000
//! ```
//!
//! `scripts/bench` does this for `decode` (bare `jsonwebtoken::decode`), `layer` (the
//! whole layer through `Service::call`, a verified-token cache hit), `layer-uncached`
//! (the cache off), and `miss` / `miss-uncached` (a new token every request, cache on and
//! off) at two counts, so setup cancels out.

mod support;

use std::convert::Infallible;
use std::hint::black_box;

use http::{HeaderValue, Request, Response, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::json;
use support::{SECRET, Typical, now, ready};
use tower::{Layer, Service, service_fn};
use tower_jwt_auth::{JwtAuthLayer, MemoryStore, TokenIssuer, VerificationKey};

fn noop(_: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    // `cargo bench` runs every bench binary with `--bench`: do nothing then.
    let Ok(n) = args.next().unwrap_or_default().parse::<u64>() else {
        return;
    };
    let _ = TokenIssuer::hs256(SECRET).unwrap();
    let now = now();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "user-1234", "iat": now, "exp": now + 900, "jti": "bench-jti"}),
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    let bearer = HeaderValue::try_from(format!("Bearer {token}")).unwrap();
    match mode.as_str() {
        "decode" => {
            let key = DecodingKey::from_secret(SECRET).unwrap();
            let validation = Validation::new(Algorithm::HS256);
            for _ in 0..n {
                // Build and drop a request too, as the layer's run does.
                let mut req = Request::new(());
                req.headers_mut()
                    .insert(header::AUTHORIZATION, bearer.clone());
                black_box(
                    jsonwebtoken::decode::<Typical>(black_box(&token), &key, &validation).unwrap(),
                );
                black_box(req);
            }
        }
        // `layer`: the default layer, so every request after the first is a hit of the
        // verified-token cache; `layer-uncached`: the cache off, every request verified.
        "layer" | "layer-uncached" => {
            let cache = if mode == "layer" { 10_000 } else { 0 };
            let layer = JwtAuthLayer::builder(MemoryStore::new())
                .key(VerificationKey::hs256(SECRET).unwrap())
                .token_cache(cache)
                .build()
                .unwrap();
            let mut svc = layer.layer(service_fn(noop));
            for _ in 0..n {
                let mut req = Request::new(());
                req.headers_mut()
                    .insert(header::AUTHORIZATION, bearer.clone());
                let res = ready(svc.call(black_box(req))).unwrap();
                assert!(res.status().is_success());
            }
        }
        // `miss` / `miss-uncached`: every request a token never seen before (the worst
        // stream), with the cache on and off. The tokens are minted before counting
        // starts only in the sense that both modes mint the same ones: the difference of
        // the two is the cache's cost on a miss.
        "miss" | "miss-uncached" => {
            let cache = if mode == "miss" { 10_000 } else { 0 };
            let layer = JwtAuthLayer::builder(MemoryStore::new())
                .key(VerificationKey::hs256(SECRET).unwrap())
                .token_cache(cache)
                .build()
                .unwrap();
            let mut svc = layer.layer(service_fn(noop));
            let key = EncodingKey::from_secret(SECRET).unwrap();
            for i in 0..n {
                let token = jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &json!({"sub": "user-1234", "iat": now, "exp": now + 900, "jti": format!("jti-{i:012}")}),
                    &key,
                )
                .unwrap();
                let mut req = Request::new(());
                req.headers_mut().insert(
                    header::AUTHORIZATION,
                    HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
                );
                let res = ready(svc.call(black_box(req))).unwrap();
                assert!(res.status().is_success());
            }
        }
        other => panic!(
            "unknown mode {other:?}: use decode, layer, layer-uncached, miss or miss-uncached"
        ),
    }
}
