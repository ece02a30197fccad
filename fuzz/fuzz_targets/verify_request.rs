//! The request path through the public API: arbitrary bytes as the bearer token, as the
//! token cookie, as the raw `Authorization` and `Cookie` headers, on safe and unsafe
//! methods, either alone or spliced into a valid (or a revoked) token so the fuzzer
//! starts next to the tokens that pass.
//!
//! Invariants: never a panic, never pending, only 200/400/401/403, and a 200 only for
//! the one live token this target minted (never for the revoked one, never for anything
//! forged).

#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use http::{HeaderValue, Method, Request, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tower_jwt_auth::{JwtAuth, JwtAuthLayer, MemoryStore, TokenInfo, TokenIssuer, VerificationKey};
use tower_jwt_auth_fuzz::{Echo, SECRET, call, now_or_never};
use tower_layer::Layer;

struct Setup {
    svc: JwtAuth<Echo<()>, MemoryStore>,
    live: String,
    live_jti: String,
    revoked: String,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let layer = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .cookie("access_token")
            .trusted_origin("https://trusted.example")
            .build()
            .unwrap();
        // Minted relative to now, living long enough for any fuzzing session.
        let issuer = TokenIssuer::hs256(SECRET)
            .unwrap()
            .lifetime(Duration::from_secs(23 * 3600));
        let live = issuer.issue("fuzz-user").unwrap();
        let revoked = issuer.issue("fuzz-user").unwrap();
        let mut svc = layer.layer(Echo::new());
        let res = call(&mut svc, bearer(revoked.as_str().as_bytes()).unwrap());
        assert_eq!(res.status(), StatusCode::OK);
        let info = res.extensions().get::<TokenInfo>().unwrap().clone();
        now_or_never(layer.revoker().revoke(&info)).unwrap();
        Setup {
            svc,
            live_jti: live.jti().to_owned(),
            live: live.as_str().to_owned(),
            revoked: revoked.as_str().to_owned(),
        }
    })
}

fn bearer(token: &[u8]) -> Option<Request<()>> {
    let mut v = b"Bearer ".to_vec();
    v.extend_from_slice(token);
    with_header(header::AUTHORIZATION, &v)
}

fn with_header(name: header::HeaderName, value: &[u8]) -> Option<Request<()>> {
    let value = HeaderValue::from_bytes(value).ok()?;
    let mut req = Request::new(());
    req.headers_mut().insert(name, value);
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    let s = setup();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // The token: the input itself, or the input spliced into a minted token.
    let token: Vec<u8> = match mode & 0b11 {
        0 => rest.to_vec(),
        base => {
            let t = if base == 2 { &s.revoked } else { &s.live };
            let mut t = t.as_bytes().to_vec();
            let (pos, ins) = rest.split_first().map_or((0, &[][..]), |(p, r)| (*p, r));
            let at = usize::from(pos) * t.len() / 256;
            if base == 3 {
                let end = (at + ins.len()).min(t.len());
                t.splice(at..end, ins.iter().copied());
            } else {
                t.splice(at..at, ins.iter().copied());
            }
            t
        }
    };
    let req = match (mode >> 2) & 0b11 {
        0 => bearer(&token),
        1 => {
            let mut v = b"theme=dark; access_token=".to_vec();
            v.extend_from_slice(&token);
            v.extend_from_slice(b"; lang=en");
            with_header(header::COOKIE, &v)
        }
        2 => with_header(header::AUTHORIZATION, &token),
        _ => with_header(header::COOKIE, &token),
    };
    let Some(mut req) = req else {
        return;
    };
    *req.method_mut() = match (mode >> 4) & 0b11 {
        0 => Method::GET,
        1 => Method::POST,
        2 => Method::DELETE,
        _ => Method::PUT,
    };
    if mode & 0x40 != 0 {
        let h = req.headers_mut();
        h.insert(header::HOST, HeaderValue::from_static("app.example"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
    }
    if mode & 0x80 != 0 {
        req.headers_mut()
            .insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
    }
    let mut svc = s.svc.clone();
    let res = call(&mut svc, req);
    if res.status() == StatusCode::OK {
        let info = res
            .extensions()
            .get::<TokenInfo>()
            .expect("claims on a 200");
        assert_eq!(
            info.jti(),
            s.live_jti,
            "a 200 for a token that is not the live one"
        );
        assert_eq!(res.body(), "fuzz-user");
    }
});
