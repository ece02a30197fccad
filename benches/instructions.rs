//! Instruction counts per request, deterministic whatever else the machine is doing.
//!
//! Not a criterion bench: run it under callgrind, once per mode, and divide:
//!
//! ```sh
//! cargo bench --bench instructions --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/deps/instructions-* decode 20000
//! ```
//!
//! `scripts/bench` does this for `decode` (bare `jsonwebtoken::decode`) and `layer` (the
//! whole layer through `Service::call`) at two counts, so setup cancels out.

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
        "layer" => {
            let layer = JwtAuthLayer::builder(MemoryStore::new())
                .key(VerificationKey::hs256(SECRET).unwrap())
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
        other => panic!("unknown mode {other:?}: use decode or layer"),
    }
}
