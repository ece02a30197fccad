//! Header and claims parsing behind a valid signature: the input is the header JSON and
//! the payload JSON (separated by a 0xFF byte, which valid JSON never contains; without
//! one, the input is the payload under `{"alg":"HS256","typ":"JWT"}`), signed with the
//! test secret, so the fuzzer gets past the signature and exercises claim validation.
//! `@N` in the input is replaced by the current time and `@E` by ten minutes later, so
//! inputs can describe tokens that are valid now whenever they run.
//!
//! Invariants: never a panic, only 200 or 401, and a 200 only for claims that really
//! are valid: `sub` and `jti` non-empty strings equal to what an independent reading
//! gives (no duplicated registered claim), `exp` not past, `iat`/`nbf` not in the future.

#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_jwt_auth::{JwtAuth, JwtAuthLayer, MemoryStore, TokenInfo, VerificationKey};
use tower_jwt_auth_fuzz::{Echo, SECRET, call, now};
use tower_layer::Layer;

/// Typed application claims, to exercise the flattened custom-claims path too.
#[derive(serde::Deserialize, Clone)]
#[allow(dead_code)]
struct Custom {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    level: Option<u32>,
    #[serde(flatten)]
    rest: HashMap<String, Value>,
}

struct Setup {
    plain: JwtAuth<Echo<()>, MemoryStore>,
    typed: JwtAuth<Echo<Custom>, MemoryStore, Custom>,
    key: EncodingKey,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let plain = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .build()
            .unwrap();
        let typed = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap().kid("k1"))
            .key(VerificationKey::hs256(SECRET).unwrap())
            .issuer("https://iss.example")
            .audience("api")
            .claims::<Custom>()
            .build()
            .unwrap();
        Setup {
            plain: plain.layer(Echo::new()),
            typed: typed.layer(Echo::new()),
            key: EncodingKey::from_secret(SECRET).unwrap(),
        }
    })
}

fn expand(part: &[u8], now: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(part.len() + 16);
    let mut i = 0;
    while i < part.len() {
        match (part[i], part.get(i + 1)) {
            (b'@', Some(b'N')) => {
                out.extend_from_slice(now.to_string().as_bytes());
                i += 2;
            }
            (b'@', Some(b'E')) => {
                out.extend_from_slice((now + 600).to_string().as_bytes());
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let now = now();
    let (header, payload) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (expand(&data[..i], now), expand(&data[i + 1..], now)),
        None => (
            br#"{"alg":"HS256","typ":"JWT"}"#.to_vec(),
            expand(data, now),
        ),
    };
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header),
        URL_SAFE_NO_PAD.encode(&payload)
    );
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &s.key, Algorithm::HS256).unwrap();
    let token = format!("{input}.{sig}");
    let req = || {
        let mut req = Request::new(());
        req.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {token}")).unwrap(),
        );
        req
    };
    let plain = call(&mut s.plain.clone(), req());
    let typed = call(&mut s.typed.clone(), req());
    for res in [&plain, &typed] {
        assert!(
            matches!(res.status(), StatusCode::OK | StatusCode::UNAUTHORIZED),
            "{}",
            res.status()
        );
        if res.status() == StatusCode::OK {
            check_accepted(res.extensions().get::<TokenInfo>().unwrap(), &payload, now);
        }
    }
});

/// What an independent reading of the registered claims sees. A derived struct, like
/// the crate's own: unknown members are skipped without being validated (serde_json does
/// not check UTF-8 or surrogate escapes in what it skips, so an accepted payload is not
/// necessarily valid JSON text as a whole; see SECURITY.md), and a duplicated member is
/// an error, so an accepted token with a duplicated registered claim fails here.
#[derive(serde::Deserialize)]
struct Oracle {
    sub: Value,
    jti: Value,
    exp: Value,
    iat: Value,
    #[serde(default)]
    nbf: Option<Value>,
}

/// An independent reading of an accepted payload must agree with what the layer decoded.
fn check_accepted(info: &TokenInfo, payload: &[u8], now: u64) {
    let o: Oracle = serde_json::from_slice(payload).expect("an accepted payload reads");
    assert_eq!(o.sub.as_str(), Some(info.subject()));
    assert_eq!(o.jti.as_str(), Some(info.jti()));
    assert!(!info.subject().is_empty() && !info.jti().is_empty());
    let exp = o.exp.as_f64().expect("a numeric exp");
    assert!(exp + 61.0 >= now as f64, "accepted an expired token");
    let iat = o.iat.as_f64().expect("a numeric iat");
    assert!(iat <= (now + 61) as f64, "accepted a token from the future");
    if let Some(nbf) = o.nbf {
        let nbf = nbf.as_f64().expect("a numeric nbf");
        assert!(nbf <= (now + 61) as f64, "accepted a token not valid yet");
    }
}
