//! Memory per revoked token: the resident set size before and after recording one
//! million revocations in a `MemoryStore`, spread over a 15-minute token lifetime; and
//! the verified-token cache at its default capacity (10 000 tokens), filled with typical
//! tokens.
//!
//! `cargo bench --bench memory` (prints one line per figure; no criterion).

mod support;

use support::{now, ready};
use tower_jwt_auth::{MemoryStore, RevocationStore, RevokedToken};

const N: u64 = 1_000_000;

/// Resident set size in bytes, from /proc/self/statm.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn main() {
    // The cache is measured in a process of its own: memory freed by the store would be
    // reused and hide the cache's growth.
    if std::env::args().nth(1).as_deref() == Some("token-cache") {
        token_cache(now());
        return;
    }
    // `cargo bench` passes `--bench`; any other argument is a filter we ignore.
    let now = now();
    let store = MemoryStore::new();
    // Warm up the allocator and moka's own structures with one entry.
    ready(store.revoke(&RevokedToken::new(
        Some("iss"),
        "warm-up",
        now + 3600,
        now + 3661,
    )))
    .unwrap();
    let before = rss();
    let mut jti = String::with_capacity(32);
    for i in 0..N {
        use std::fmt::Write;
        jti.clear();
        // 22 characters, like a 128-bit base64url jti.
        write!(jti, "{i:0>22}").unwrap();
        // Tokens expire over 15 minutes; kept until exp + 60 s leeway + 1.
        let exp = now + (i % 900);
        ready(store.revoke(&RevokedToken::new(
            Some("https://issuer.example"),
            &jti,
            exp,
            exp + 61,
        )))
        .unwrap();
    }
    let (tokens, _) = store.len();
    let after = rss();
    assert_eq!(tokens, N + 1, "every revocation is held");
    let per = (after - before) as f64 / N as f64;
    println!("revocations: {N}");
    println!("rss before: {:.1} MiB", before as f64 / 1048576.0);
    println!("rss after:  {:.1} MiB", after as f64 / 1048576.0);
    println!("bytes per revoked token: {per:.0}");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("token-cache")
        .status()
        .unwrap();
    assert!(status.success());
}

/// The verified-token cache filled to its default capacity with typical HS256 tokens
/// (the example server's claims, about 250 bytes each), then a stream of twice as many
/// more: the resident set grows to the capacity's worth and stays there.
fn token_cache(now: u64) {
    use http::{HeaderValue, Request, Response, header};
    use std::convert::Infallible;
    use tower::{Layer, Service, service_fn};
    use tower_jwt_auth::{DEFAULT_TOKEN_CACHE_CAPACITY, JwtAuthLayer, VerificationKey};

    use support::SECRET;
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let mut svc = layer.layer(service_fn(|_: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap();
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    // Each token is sent twice: the cache takes a token from its second verification on.
    let mut send = |i: u64| {
        let token = jsonwebtoken::encode(
            &header,
            &serde_json::json!({
                "sub": "user-1234", "iat": now, "iat_us": now * 1_000_000 + i % 1_000_000,
                "exp": now + 900, "jti": format!("{i:0>22}"),
            }),
            &key,
        )
        .unwrap();
        let mut req = Request::new(());
        req.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
        );
        assert!(ready(svc.call(req.clone())).unwrap().status().is_success());
        assert!(ready(svc.call(req)).unwrap().status().is_success());
        token.len()
    };
    send(0);
    let before = rss();
    let cap = DEFAULT_TOKEN_CACHE_CAPACITY;
    let mut len = 0;
    for i in 1..=cap {
        len = send(i);
    }
    let full = rss();
    let held = layer.token_cache_len();
    for i in cap + 1..=3 * cap {
        send(i);
    }
    let after_stream = rss();
    let held_after = layer.token_cache_len();
    println!("token cache capacity: {cap} (tokens of {len} bytes)");
    println!(
        "token cache held: {held} full, {held_after} after {} more",
        2 * cap
    );
    println!(
        "token cache rss at capacity: {:.1} MiB ({:.0} bytes per token)",
        (full - before) as f64 / 1048576.0,
        (full - before) as f64 / held.max(1) as f64
    );
    println!(
        "token cache rss after the stream: {:.1} MiB",
        (after_stream - before) as f64 / 1048576.0
    );
}
