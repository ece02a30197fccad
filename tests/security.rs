//! The security suite: hostile tokens, hostile requests and hostile store usage, each
//! case a named test through the public API (issue 6, part 1).
//!
//! Every case asserts the exact answer (status, `RejectionKind`, description) where the
//! crate defines one, so a regression that turns a refusal into another refusal is seen
//! too. Tokens are minted relative to now.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use http::{Request, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use support::{clock::*, service::*, tokens::*};
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::{
    Check, Claims, JwtAuthLayer, MemoryStore, RejectionKind, RevocationStatus, RevocationStore,
    RevokedToken, SubjectCutoff, TokenInfo, TokenIssuer, VerificationKey,
};

// The fixed descriptions of the rejections, as a client sees them.
const MALFORMED: &str = "the token is malformed";
const BAD_ALGORITHM: &str = "the token's algorithm is not accepted for its key";
const UNKNOWN_KEY: &str = "the token's key is unknown";
const BAD_SIGNATURE: &str = "the token's signature is invalid";
const BAD_CLAIMS: &str = "the token's claims are missing or malformed";
const BAD_ISSUER: &str = "the token's issuer is not accepted";
const BAD_AUDIENCE: &str = "the token's audience is not accepted";
const BAD_TYPE: &str = "the token's type is not accepted";
const FUTURE_IAT: &str = "the token was issued in the future";
const TOO_LONG_LIVED: &str = "the token's lifetime is longer than allowed";
const TOO_LONG: &str = "the token is longer than allowed";
const TWO_AUTHORIZATION: &str = "more than one Authorization header was sent";
const BAD_AUTHORIZATION: &str = "the Authorization header is not valid Bearer credentials";

/// Asserts a 401 `invalid_token` with exactly this description.
#[track_caller]
fn assert_refused(seen: &Seen, description: &str, case: &str) {
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{case}: {seen:?}");
    assert_eq!(seen.kind(), Some(RejectionKind::InvalidToken), "{case}");
    assert_eq!(
        seen.rejection.as_ref().map(|r| r.description()),
        Some(description),
        "{case}"
    );
    assert!(seen.subject.is_none(), "{case}");
    assert!(
        seen.www_authenticate
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer error=\"invalid_token\"")),
        "{case}: {seen:?}"
    );
}

/// Asserts a 401 `invalid_token` with one of these descriptions, where two checks can
/// fire first (e.g. a header that is not JSON is "malformed" when the key is looked up
/// by `kid` first, and "claims malformed" when a single key decodes the whole token).
#[track_caller]
fn assert_refused_as_one_of(seen: &Seen, descriptions: &[&str], case: &str) {
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{case}: {seen:?}");
    assert_eq!(seen.kind(), Some(RejectionKind::InvalidToken), "{case}");
    let why = seen.rejection.as_ref().unwrap().description();
    assert!(descriptions.contains(&why), "{case}: {why}");
    assert!(seen.subject.is_none(), "{case}");
}

/// Asserts a 400 `invalid_request` with exactly this description.
#[track_caller]
fn assert_bad_request(seen: &Seen, description: &str, case: &str) {
    assert_eq!(seen.status, StatusCode::BAD_REQUEST, "{case}: {seen:?}");
    assert_eq!(seen.kind(), Some(RejectionKind::InvalidRequest), "{case}");
    assert_eq!(
        seen.rejection.as_ref().map(|r| r.description()),
        Some(description),
        "{case}"
    );
    assert!(seen.subject.is_none(), "{case}");
}

#[track_caller]
fn assert_ok(seen: &Seen, subject: &str, case: &str) {
    assert_eq!(seen.status, StatusCode::OK, "{case}: {seen:?}");
    assert_eq!(seen.subject.as_deref(), Some(subject), "{case}");
}

/// A layer with two named HS256 keys (`k1` = `SECRET`, `k2` = `OTHER_SECRET`) and one
/// unnamed key (`SECRET`), so that `kid` lookup is exercised for real.
fn keyed_layer() -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap().kid("k1"))
        .key(VerificationKey::hs256(OTHER_SECRET).unwrap().kid("k2"))
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap()
}

/// Valid claims as JSON text, with `extra` spliced in before the closing brace.
fn payload_with(extra: &str) -> String {
    let now = now();
    let jti = uid();
    let sep = if extra.is_empty() { "" } else { "," };
    format!(
        r#"{{"sub":"alice","iat":{now},"exp":{},"jti":"{jti}"{sep}{extra}}}"#,
        now + 600
    )
}

fn request_with(headers: &[(header::HeaderName, &str)]) -> Request<String> {
    let mut b = Request::get("http://app.example/");
    for (name, value) in headers {
        b = b.header(name, *value);
    }
    b.body(String::new()).unwrap()
}

// ---------------------------------------------------------------------------------------
// alg: none
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn alg_none_is_refused_in_every_spelling_with_and_without_a_signature() {
    let app = app(&keyed_layer());
    let payload = b64(payload_with("").as_bytes());
    let headers = |alg: &str| {
        [
            format!(r#"{{"alg":"{alg}"}}"#),
            format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            format!(r#"{{"alg":"{alg}","kid":"k1"}}"#),
            format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k2"}}"#),
        ]
    };
    let real_sig = hs256(&claims("alice"));
    let real_sig = real_sig.rsplit('.').next().unwrap();
    for alg in ["none", "None", "NONE", "nOnE", "", " none", "none\u{0}"] {
        for h in headers(alg) {
            let h = b64(h.as_bytes());
            for token in [
                format!("{h}.{payload}"),
                format!("{h}.{payload}."),
                format!("{h}.{payload}.e30"),
                format!("{h}.{payload}.AAAA"),
                format!("{h}.{payload}.{real_sig}"),
            ] {
                let seen = send(&app, bearer(&token)).await;
                assert_refused(&seen, MALFORMED, &format!("alg {alg:?}: {token}"));
            }
        }
    }
}

#[tokio::test]
async fn alg_none_is_refused_from_a_cookie_too() {
    let app = app(&keyed_layer_with_cookie());
    let token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(payload_with("").as_bytes())
    );
    let seen = send(&app, with_cookie("GET", &token)).await;
    assert_refused(&seen, MALFORMED, "cookie");
}

fn keyed_layer_with_cookie() -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap().kid("k1"))
        .key(VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Key confusion: HS256 with the RSA public key as the HMAC secret
// ---------------------------------------------------------------------------------------

/// The DER (SubjectPublicKeyInfo) inside the test RSA public key PEM.
fn rsa_public_der() -> Vec<u8> {
    let pem = std::str::from_utf8(RSA_PUBLIC).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn rs256_layers() -> [JwtAuthLayer<MemoryStore>; 2] {
    [
        // One key, no kid.
        JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC).unwrap())
            .build()
            .unwrap(),
        // The RSA key named `rsa` beside an HMAC key: the header's alg still never picks.
        JwtAuthLayer::builder(MemoryStore::new())
            .key(
                VerificationKey::rsa_pem(Algorithm::RS256, RSA_PUBLIC)
                    .unwrap()
                    .kid("rsa"),
            )
            .key(VerificationKey::hs256(SECRET).unwrap().kid("hmac"))
            .build()
            .unwrap(),
    ]
}

#[tokio::test]
async fn hs256_signed_with_the_rsa_public_key_pem_or_der_is_refused() {
    let pem_trimmed = std::str::from_utf8(RSA_PUBLIC).unwrap().trim().as_bytes();
    let der = rsa_public_der();
    let secrets: [(&str, &[u8]); 3] = [
        ("pem", RSA_PUBLIC),
        ("pem without the final newline", pem_trimmed),
        ("der", &der),
    ];
    for (i, layer) in rs256_layers().iter().enumerate() {
        let app = app(layer);
        let kid = (i == 1).then(|| "rsa".to_owned());
        for (name, secret) in secrets {
            // alg HS256 in the header: the RSA key accepts only RS256.
            let mut h = Header::new(Algorithm::HS256);
            h.kid.clone_from(&kid);
            let seen = send(&app, bearer(&sign(&h, &claims("mallory"), secret))).await;
            assert_refused(&seen, BAD_ALGORITHM, &format!("layer {i}, {name}"));
            // alg RS256 in the header over an HMAC: not an RSA signature.
            let mut h = Header::new(Algorithm::RS256);
            h.kid.clone_from(&kid);
            let hs = sign(&Header::new(Algorithm::HS256), &claims("mallory"), secret);
            let forged = format!(
                "{}.{}.{}",
                b64(serde_json::to_string(&h).unwrap().as_bytes()),
                hs.split('.').nth(1).unwrap(),
                hs.rsplit('.').next().unwrap()
            );
            let seen = send(&app, bearer(&forged)).await;
            assert_refused(&seen, BAD_SIGNATURE, &format!("layer {i}, {name}, RS256"));
        }
        // The genuine RS256 token passes, so the refusals above are not accidents.
        let mut h = Header::new(Algorithm::RS256);
        h.kid = kid;
        let good = sign_with(
            &h,
            &claims("alice"),
            &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
        );
        assert_ok(&send(&app, bearer(&good)).await, "alice", "genuine RS256");
    }
}

#[tokio::test]
async fn the_hmac_key_named_by_kid_never_verifies_an_rsa_kid_token() {
    // A token naming the RSA kid but signed with the HMAC key's secret and alg.
    let [_, layer] = rs256_layers();
    let app = app(&layer);
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rsa".into());
    let seen = send(&app, bearer(&sign(&h, &claims("mallory"), SECRET))).await;
    assert_refused(&seen, BAD_ALGORITHM, "HS256 under the RSA kid");
    // And an RS256 token naming the HMAC kid.
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("hmac".into());
    let token = sign_with(
        &h,
        &claims("mallory"),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    );
    let seen = send(&app, bearer(&token)).await;
    assert_refused(&seen, BAD_ALGORITHM, "RS256 under the HMAC kid");
}

// ---------------------------------------------------------------------------------------
// kid
// ---------------------------------------------------------------------------------------

fn with_kid_json(kid_json: &str, secret: &[u8]) -> String {
    raw_hs256_with(
        &format!(r#"{{"alg":"HS256","typ":"JWT","kid":{kid_json}}}"#),
        &payload_with(""),
        secret,
    )
}

#[tokio::test]
async fn unknown_empty_path_like_and_injection_kids_are_unknown_keys() {
    let app = app(&keyed_layer());
    for kid in [
        "k3",
        "",
        "K1",
        "k1 ",
        " k1",
        "k1\u{0}",
        "../../dev/null",
        "/dev/null",
        "../../../../../../etc/passwd",
        "file:///etc/passwd",
        "https://evil.example/key",
        "' OR '1'='1",
        "k1' --",
        "k1; DROP TABLE keys; --",
        "${jndi:ldap://evil.example/a}",
        "%6b%31",
        "\u{212a}1", // KELVIN SIGN, which lowercases to `k`
    ] {
        // Signed with a configured secret: only the kid can make it fail.
        let kid_json = serde_json::to_string(kid).unwrap();
        let seen = send(&app, bearer(&with_kid_json(&kid_json, SECRET))).await;
        assert_refused(&seen, UNKNOWN_KEY, &format!("kid {kid:?}"));
    }
    // The named keys themselves work.
    for (kid, secret) in [("k1", SECRET), ("k2", OTHER_SECRET)] {
        let seen = send(&app, bearer(&with_kid_json(&format!("\"{kid}\""), secret))).await;
        assert_ok(&seen, "alice", kid);
    }
}

#[tokio::test]
async fn a_kid_just_under_the_length_limit_is_an_unknown_key_and_over_it_too_long() {
    let app = app(&keyed_layer());
    let len_with = |kid_len: usize| with_kid_json(&format!("\"{}\"", "k".repeat(kid_len)), SECRET);
    // base64 grows by 4/3: find the longest kid whose token still fits in 8 KiB.
    let base = len_with(0).len();
    let mut kid_len = (8 * 1024 - base) * 3 / 4;
    while len_with(kid_len + 1).len() <= 8 * 1024 {
        kid_len += 1;
    }
    while len_with(kid_len).len() > 8 * 1024 {
        kid_len -= 1;
    }
    let fits = len_with(kid_len);
    assert!(fits.len() <= 8 * 1024 && fits.len() > 8 * 1024 - 8);
    assert_refused(
        &send(&app, bearer(&fits)).await,
        UNKNOWN_KEY,
        "kid under the limit",
    );
    let over = len_with(kid_len + 3);
    assert!(over.len() > 8 * 1024);
    assert_refused(
        &send(&app, bearer(&over)).await,
        TOO_LONG,
        "kid over the limit",
    );
}

#[tokio::test]
async fn a_kid_that_is_not_a_string_is_malformed() {
    let app = app(&keyed_layer());
    for kid_json in [
        "1",
        "1.5",
        "-1",
        "true",
        "[\"k1\"]",
        "{\"k1\":1}",
        "{}",
        "[]",
    ] {
        let seen = send(&app, bearer(&with_kid_json(kid_json, SECRET))).await;
        assert_refused(&seen, MALFORMED, &format!("kid {kid_json}"));
    }
}

#[tokio::test]
async fn a_null_kid_is_the_same_as_no_kid() {
    // `"kid": null` deserializes as an absent kid: the unnamed key verifies it. With
    // only named keys, it is an unknown key. Deterministic, and the signature decides.
    let app = app(&keyed_layer());
    assert_ok(
        &send(&app, bearer(&with_kid_json("null", SECRET))).await,
        "alice",
        "null kid, unnamed key",
    );
    assert_refused(
        &send(&app, bearer(&with_kid_json("null", OTHER_SECRET))).await,
        BAD_SIGNATURE,
        "null kid, other secret",
    );
    let named_only = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap().kid("k1"))
        .key(VerificationKey::hs256(OTHER_SECRET).unwrap().kid("k2"))
        .build()
        .unwrap();
    assert_refused(
        &send(
            &support::service::app(&named_only),
            bearer(&with_kid_json("null", SECRET)),
        )
        .await,
        UNKNOWN_KEY,
        "null kid, named keys only",
    );
}

#[tokio::test]
async fn duplicate_header_members_are_malformed() {
    let app = app(&keyed_layer());
    let payload = payload_with("");
    for header in [
        r#"{"alg":"HS256","alg":"none"}"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","kid":"k1","kid":"k2"}"#,
        r#"{"alg":"HS256","kid":"zz","kid":"k1"}"#,
    ] {
        let seen = send(&app, bearer(&raw_hs256_with(header, &payload, SECRET))).await;
        assert_refused(&seen, MALFORMED, header);
    }
}

// ---------------------------------------------------------------------------------------
// Key-bearing headers: jku, x5u, jwk, x5c
// ---------------------------------------------------------------------------------------

/// Counts the connections made to a loopback listener, from a thread of its own, so that
/// a connection made at any time (a fetch on another thread or task, after the request
/// was answered) is counted.
struct ConnectionWatch {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectionWatch {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (accepted, stop) = (Arc::clone(&accepted), Arc::clone(&stop));
            move || {
                // Kept open until the end: a fetch that connected waits for an answer.
                let mut held = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted.fetch_add(1, Ordering::SeqCst);
                            held.push(stream);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            }
        });
        Self {
            addr,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for ConnectionWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test]
async fn jku_x5u_jwk_and_x5c_headers_are_ignored_and_never_fetched() {
    let watch = ConnectionWatch::start();
    let url = format!("http://{}", watch.addr);
    let app = app(&keyed_layer());
    let payload = payload_with("");
    let evil = b"attacker-controlled-secret-0123456789ab";
    let evil_k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(evil);
    for extra in [
        format!(r#""jku":"{url}/jwks.json""#),
        format!(r#""x5u":"{url}/cert.pem""#),
        format!(r#""jku":"{url}/jwks.json","kid":"evil""#),
        format!(r#""x5u":"{url}/cert.pem","kid":"k1""#),
        format!(r#""jwk":{{"kty":"oct","k":"{evil_k}"}}"#),
        format!(r#""jwk":{{"kty":"oct","k":"{evil_k}","kid":"k1"}},"kid":"k1""#),
        r#""x5c":["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]"#.to_owned(),
        format!(r#""jku":"{url}/a","x5u":"{url}/b","x5c":["AAAA"],"x5t":"AAAA""#),
    ] {
        let header = format!(r#"{{"alg":"HS256",{extra}}}"#);
        // Signed with the attacker's key that the header points at: refused. With a
        // kid the lookup fails or the named key's signature check does.
        let seen = send(&app, bearer(&raw_hs256_with(&header, &payload, evil))).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{extra}");
        let why = seen.rejection.as_ref().unwrap().description();
        assert!(why == BAD_SIGNATURE || why == UNKNOWN_KEY, "{extra}: {why}");
        // Signed with our key: the extra members change nothing (a kid still names
        // the key, so an unknown one is still an unknown key).
        let seen = send(&app, bearer(&raw_hs256_with(&header, &payload, SECRET))).await;
        if extra.contains(r#""kid":"evil""#) {
            assert_refused(&seen, UNKNOWN_KEY, &extra);
        } else {
            assert_ok(&seen, "alice", &extra);
        }
    }
    // Nothing connected to the URLs in the headers, neither while the requests were
    // answered nor for a while after (a fetch in the background, on this runtime's tasks
    // or on another thread, has that long to show up).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        watch.accepted(),
        0,
        "the layer connected to a URL from a token header"
    );
    // The watch does see a connection: the zero above is not the watch failing.
    let _ours = std::net::TcpStream::connect(watch.addr).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while watch.accepted() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never saw a connection"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(watch.accepted(), 1);
}

// ---------------------------------------------------------------------------------------
// crit
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_or_malformed_crit_is_refused() {
    let app = app(&keyed_layer());
    let payload = payload_with("");
    for header in [
        r#"{"alg":"HS256","crit":["exp-ext"],"exp-ext":1}"#,
        r#"{"alg":"HS256","crit":["exp-ext"]}"#,
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":["b64"]}"#,
        r#"{"alg":"HS256","crit":["b64","b64"],"b64":true}"#,
        r#"{"alg":"HS256","crit":["b64","x"],"b64":true}"#,
        r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","b64":false}"#,
        r#"{"alg":"HS256","b64":"yes"}"#,
        r#"{"alg":"HS256","crit":"b64","b64":true}"#,
        r#"{"alg":"HS256","crit":[1]}"#,
    ] {
        let seen = send(&app, bearer(&raw_hs256_with(header, &payload, SECRET))).await;
        assert_refused(&seen, MALFORMED, header);
    }
    // RFC 7797 with b64 true is the ordinary encoding: understood, so accepted.
    let header = r#"{"alg":"HS256","crit":["b64"],"b64":true}"#;
    let seen = send(&app, bearer(&raw_hs256_with(header, &payload, SECRET))).await;
    assert_ok(&seen, "alice", header);
}

// ---------------------------------------------------------------------------------------
// exp / nbf / iat of the wrong JSON type (the advisory: malformed treated as absent)
// ---------------------------------------------------------------------------------------

/// JSON values that are not a NumericDate.
const NOT_NUMERIC_DATES: &[&str] = &[
    "\"@\"", // replaced by the right number, as a string
    "\"1\"",
    "\"\"",
    "true",
    "false",
    "null",
    "[]",
    "[@]",
    "{}",
    "{\"$numberLong\":\"@\"}",
    "-1",
    "-9223372036854775808",
    "-1.5",
    "1e300",
    "1.7976931348623157e308",
    "18446744073709551616",
    "\"NaN\"",
    "\"Infinity\"",
    "\"-Infinity\"",
    "\"1e999\"",
    "\"0x7fffffff\"",
];

#[tokio::test]
async fn exp_nbf_and_iat_of_the_wrong_type_are_refused_never_treated_as_absent() {
    let app = app(&layer());
    let now = now();
    for claim in ["exp", "nbf", "iat"] {
        // The right value for the claim, so that only its type is wrong.
        let right = match claim {
            "exp" => now + 600,
            _ => now - 10,
        };
        for bad in NOT_NUMERIC_DATES {
            let bad = bad.replace('@', &right.to_string());
            let mut fields = vec![
                r#""sub":"alice""#.to_owned(),
                format!(r#""jti":"{}""#, uid()),
                format!(r#""iat":{}"#, now - 10),
                format!(r#""exp":{}"#, now + 600),
            ];
            fields.retain(|f| !f.starts_with(&format!("\"{claim}\"")));
            fields.push(format!(r#""{claim}":{bad}"#));
            let payload = format!("{{{}}}", fields.join(","));
            let token = raw_hs256(r#"{"alg":"HS256","typ":"JWT"}"#, &payload);
            let seen = send(&app, bearer(&token)).await;
            assert_refused(&seen, BAD_CLAIMS, &payload);
        }
    }
}

#[tokio::test]
async fn json_that_no_parser_accepts_in_a_date_is_refused() {
    // Not JSON at all (NaN, Infinity, 1e999 out of range, leading +, hex): the payload
    // does not parse, so it is refused whatever the claim.
    let app = app(&layer());
    let now = now();
    for bad in [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e999",
        "+1",
        "0x10",
        "01",
        ".5",
    ] {
        let payload = format!(
            r#"{{"sub":"alice","iat":{now},"exp":{bad},"jti":"{}"}}"#,
            uid()
        );
        let seen = send(&app, bearer(&raw_hs256(r#"{"alg":"HS256"}"#, &payload))).await;
        assert_refused(&seen, BAD_CLAIMS, &payload);
    }
}

#[tokio::test]
async fn huge_numeric_dates_are_refused_by_the_lifetime_and_future_checks() {
    let app = app(&layer());
    let now = now();
    let cases = [
        // A far exp: a lifetime longer than the 24 h maximum.
        (
            format!(r#""iat":{now},"exp":18446744073709551615"#),
            TOO_LONG_LIVED,
        ),
        (format!(r#""iat":{now},"exp":1.7e19"#), TOO_LONG_LIVED),
        // At or past the end of the u64 range: not a NumericDate at all.
        (format!(r#""iat":{now},"exp":1.8e19"#), BAD_CLAIMS),
        (
            format!(r#""iat":{now},"exp":9007199254740993"#),
            TOO_LONG_LIVED,
        ),
        // A far iat: issued in the future.
        (
            format!(r#""iat":18446744073709551615,"exp":{}"#, now + 600),
            FUTURE_IAT,
        ),
        // A microsecond stamp that does not match iat.
        (
            format!(
                r#""iat":{now},"iat_us":18446744073709551615,"exp":{}"#,
                now + 600
            ),
            BAD_CLAIMS,
        ),
        (
            format!(r#""iat":{now},"iat_us":-1,"exp":{}"#, now + 600),
            BAD_CLAIMS,
        ),
        (
            format!(r#""iat":{now},"iat_us":"{now}000000","exp":{}"#, now + 600),
            BAD_CLAIMS,
        ),
    ];
    for (times, why) in cases {
        let payload = format!(r#"{{"sub":"alice","jti":"{}",{times}}}"#, uid());
        let seen = send(&app, bearer(&raw_hs256(r#"{"alg":"HS256"}"#, &payload))).await;
        assert_refused(&seen, why, &payload);
    }
}

#[tokio::test]
async fn huge_numbers_in_custom_claims_never_panic() {
    let app = app(&layer());
    let long_digits = "9".repeat(400);
    for n in [
        long_digits.as_str(),
        "1e308",
        "-1e308",
        "1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890e-300",
    ] {
        let token = raw_hs256(r#"{"alg":"HS256"}"#, &payload_with(&format!(r#""n":{n}"#)));
        // `C = ()`: the member is skipped (accepted), or refused when it is buffered
        // and out of f64 range.
        let seen = send(&app, bearer(&token)).await;
        if seen.status == StatusCode::OK {
            assert_ok(&seen, "alice", n);
        } else {
            assert_refused(&seen, BAD_CLAIMS, n);
        }
        // A claims type that reads numbers: serde_json reads them as f64, and a
        // number out of f64 range is an error.
        let (status, claims) = custom_claims::<Value>(&token).await;
        if n == long_digits || n == "1e400" {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{n}");
        } else {
            assert_eq!(status, StatusCode::OK, "{n}");
            assert!(claims.unwrap()["n"].is_number(), "{n}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// iss / aud / typ
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_issuer_audience_or_type_is_refused() {
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .issuer("https://auth.example")
        .audience("api")
        .typ("at+jwt")
        .build()
        .unwrap();
    let app = app(&layer);
    let ok_iss = r#""iss":"https://auth.example""#;
    let ok_aud = r#""aud":"api""#;
    let at = r#"{"alg":"HS256","typ":"at+jwt"}"#;
    let ok = raw_hs256(at, &payload_with(&format!("{ok_iss},{ok_aud}")));
    assert_ok(&send(&app, bearer(&ok)).await, "alice", "baseline");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "iss other",
            format!(r#""iss":"https://evil.example",{ok_aud}"#),
            BAD_ISSUER,
        ),
        (
            "iss case",
            format!(r#""iss":"HTTPS://AUTH.EXAMPLE",{ok_aud}"#),
            BAD_ISSUER,
        ),
        (
            "iss slash",
            format!(r#""iss":"https://auth.example/",{ok_aud}"#),
            BAD_ISSUER,
        ),
        (
            "iss prefix",
            format!(r#""iss":"https://auth.example.evil",{ok_aud}"#),
            BAD_ISSUER,
        ),
        ("iss empty", format!(r#""iss":"",{ok_aud}"#), BAD_ISSUER),
        ("iss missing", ok_aud.to_owned(), BAD_CLAIMS),
        ("iss null", format!(r#""iss":null,{ok_aud}"#), BAD_CLAIMS),
        ("iss number", format!(r#""iss":1,{ok_aud}"#), BAD_CLAIMS),
        // An array holding the right issuer: jsonwebtoken would accept it, the crate's
        // claims are a single string, so it is refused.
        (
            "iss array",
            format!(r#""iss":["https://auth.example"],{ok_aud}"#),
            BAD_CLAIMS,
        ),
        (
            "aud other",
            format!(r#"{ok_iss},"aud":"web""#),
            BAD_AUDIENCE,
        ),
        ("aud case", format!(r#"{ok_iss},"aud":"API""#), BAD_AUDIENCE),
        (
            "aud empty array",
            format!(r#"{ok_iss},"aud":[]"#),
            BAD_AUDIENCE,
        ),
        (
            "aud others",
            format!(r#"{ok_iss},"aud":["web","app"]"#),
            BAD_AUDIENCE,
        ),
        ("aud missing", ok_iss.to_owned(), BAD_CLAIMS),
        ("aud number", format!(r#"{ok_iss},"aud":5"#), BAD_CLAIMS),
        (
            "aud object",
            format!(r#"{ok_iss},"aud":{{"api":true}}"#),
            BAD_CLAIMS,
        ),
        (
            "aud nested",
            format!(r#"{ok_iss},"aud":[["api"]]"#),
            BAD_CLAIMS,
        ),
    ];
    for (name, extra, why) in cases {
        let seen = send(&app, bearer(&raw_hs256(at, &payload_with(&extra)))).await;
        assert_refused(&seen, why, name);
    }
    let good_claims = payload_with(&format!("{ok_iss},{ok_aud}"));
    for header in [
        r#"{"alg":"HS256"}"#,
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"alg":"HS256","typ":"at+jwt "}"#,
        r#"{"alg":"HS256","typ":"at+jwt\u0000"}"#,
        r#"{"alg":"HS256","typ":"application/jwt"}"#,
        r#"{"alg":"HS256","typ":""}"#,
    ] {
        let seen = send(&app, bearer(&raw_hs256(header, &good_claims))).await;
        assert_refused(&seen, BAD_TYPE, header);
    }
    for header in [
        r#"{"alg":"HS256","typ":5}"#,
        r#"{"alg":"HS256","typ":["at+jwt"]}"#,
    ] {
        let seen = send(&app, bearer(&raw_hs256(header, &good_claims))).await;
        assert_refused_as_one_of(&seen, &[MALFORMED, BAD_CLAIMS], header);
    }
}

// ---------------------------------------------------------------------------------------
// Token syntax
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_with_too_many_dots_or_empty_parts_are_malformed() {
    let app = app(&layer());
    let good = hs256(&claims("alice"));
    let [h, p, s]: [&str; 3] = good.split('.').collect::<Vec<_>>().try_into().unwrap();
    let thousand_dots = ".".repeat(1000);
    let cases = [
        format!("{h}.{p}.{s}.{s}"),
        format!("{h}.{h}.{p}.{s}"),
        format!("{h}.{p}.{s}."),
        format!(".{h}.{p}.{s}"),
        format!("{h}..{p}.{s}"),
        format!("{h}.{p}"),
        format!(".{p}.{s}"),
        format!("{h}..{s}"),
        "..".to_owned(),
        "...".to_owned(),
        thousand_dots,
        format!("{h}{}", ".".repeat(500)),
    ];
    for token in cases {
        let seen = send(&app, bearer(&token)).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{token}");
        let why = seen.rejection.as_ref().unwrap().description();
        // Which check fires first depends on where the extra dot sits (an empty or
        // shifted header is unreadable JSON: "malformed", or "claims malformed" when
        // one key decodes the whole token); the token never passes, never a 5xx.
        assert!(
            [MALFORMED, BAD_SIGNATURE, BAD_CLAIMS].contains(&why),
            "{token}: {why}"
        );
    }
    // The original still passes.
    assert_ok(&send(&app, bearer(&good)).await, "alice", "original");
}

#[tokio::test]
async fn signature_stripping_is_refused() {
    let app = app(&layer());
    let good = hs256(&claims("alice"));
    let (input, sig) = good.rsplit_once('.').unwrap();
    // The empty signature decodes to no bytes: a signature mismatch.
    assert_refused(
        &send(&app, bearer(&format!("{input}."))).await,
        BAD_SIGNATURE,
        "empty signature",
    );
    // Two parts only: malformed.
    assert_refused(
        &send(&app, bearer(input)).await,
        MALFORMED,
        "no signature part",
    );
    // Truncated signatures: a shorter MAC, or base64 of an impossible length.
    for keep in [1usize, 2, 3, 10, 40, 41, 42] {
        let token = format!("{input}.{}", &sig[..keep]);
        let seen = send(&app, bearer(&token)).await;
        // A length of 4n+1 is never base64; other cuts are a wrong MAC, or refused as
        // base64 when their last symbol is not canonical.
        let case = format!("signature cut to {keep}");
        if keep % 4 == 1 {
            assert_refused(&seen, MALFORMED, &case);
        } else {
            assert_refused_as_one_of(&seen, &[MALFORMED, BAD_SIGNATURE], &case);
        }
    }
    // An RS256 token without its signature, against the RSA key.
    let [rsa, _] = rs256_layers();
    let rs = sign_with(
        &Header::new(Algorithm::RS256),
        &claims("alice"),
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    );
    let (rs_input, _) = rs.rsplit_once('.').unwrap();
    assert_refused(
        &send(
            &support::service::app(&rsa),
            bearer(&format!("{rs_input}.")),
        )
        .await,
        BAD_SIGNATURE,
        "RS256 empty signature",
    );
}

#[tokio::test]
async fn padded_standard_alphabet_and_non_canonical_base64_are_refused() {
    let app = app(&layer());
    // A token whose signature contains `-` or `_`, so the standard alphabet differs.
    let good = (0..200)
        .map(|_| hs256(&claims("alice")))
        .find(|t| t.rsplit('.').next().unwrap().contains(['-', '_']))
        .expect("some signature contains - or _");
    let (input, sig) = good.rsplit_once('.').unwrap();
    let standard = sig.replace('-', "+").replace('_', "/");
    let (h, p) = input.split_once('.').unwrap();
    for (name, token) in [
        ("signature padded", format!("{input}.{sig}=")),
        ("signature padded twice", format!("{input}.{sig}==")),
        ("standard alphabet", format!("{input}.{standard}")),
        ("standard alphabet padded", format!("{input}.{standard}=")),
    ] {
        let seen = send(&app, bearer(&token)).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(seen.subject.is_none(), "{name}");
        let why = seen.rejection.as_ref().unwrap().description();
        assert!(why == MALFORMED || why == BAD_SIGNATURE, "{name}: {why}");
    }
    // `=` inside the token is not token68: the request is malformed.
    for (name, token) in [
        ("header padded", format!("{h}=.{p}.{sig}")),
        ("payload padded", format!("{h}.{p}=.{sig}")),
    ] {
        assert_bad_request(&send(&app, bearer(&token)).await, BAD_AUTHORIZATION, name);
    }
    // Non-canonical base64: the last character of a 32-byte MAC carries 4 bits and two
    // must-be-zero bits. Setting those bits gives another string for the same bytes: a
    // lenient decoder would accept it (signature malleability). It is refused.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = sig.as_bytes()[sig.len() - 1];
    let idx = ALPHABET.iter().position(|&c| c == last).unwrap();
    assert_eq!(
        idx & 0b11,
        0,
        "a canonical 43-character MAC ends on a multiple of 4"
    );
    for low in 1..4 {
        let mut s = sig.as_bytes().to_vec();
        *s.last_mut().unwrap() = ALPHABET[idx | low];
        let token = format!("{input}.{}", String::from_utf8(s).unwrap());
        assert_refused(
            &send(&app, bearer(&token)).await,
            MALFORMED,
            "non-canonical last symbol",
        );
    }
    assert_ok(&send(&app, bearer(&good)).await, "alice", "original");
}

#[tokio::test]
async fn whitespace_around_or_inside_a_bearer_token() {
    let app = app(&layer());
    let t = hs256(&claims("alice"));
    // Spaces and tabs around the token are optional whitespace (RFC 9110 OWS): the
    // token is found.
    for value in [
        format!("Bearer  {t}"),
        format!("Bearer {t} "),
        format!("Bearer   {t}   "),
        format!("Bearer {t}\t"),
        format!("Bearer \t{t} \t"),
    ] {
        assert_ok(
            &send(&app, request_with(&[(header::AUTHORIZATION, &value)])).await,
            "alice",
            &value,
        );
    }
    // Anything else is not token68: an invalid request, never decoded.
    let (h, rest) = t.split_once('.').unwrap();
    for value in [
        format!("Bearer {h}. {rest}"),
        format!("Bearer {h} .{rest}"),
        format!("Bearer {t} {t}"),
        format!("Bearer {t},{t}"),
        format!("Bearer \"{t}\""),
        "Bearer ".to_owned(),
        "Bearer      ".to_owned(),
        "Bearer =".to_owned(),
    ] {
        let seen = send(&app, request_with(&[(header::AUTHORIZATION, &value)])).await;
        assert_bad_request(&seen, BAD_AUTHORIZATION, &value);
    }
    // A scheme glued to the token, or another scheme, is not a bearer token at all.
    // (A tab after the scheme makes the scheme `Bearer<TAB><token>`, not `Bearer`.)
    for value in [
        format!("Bearer{t}"),
        format!("Bearer-{t}"),
        format!("Token {t}"),
        format!("Bearer\t{t}"),
    ] {
        let seen = send(&app, request_with(&[(header::AUTHORIZATION, &value)])).await;
        assert_eq!(seen.kind(), Some(RejectionKind::MissingToken), "{value}");
    }
}

#[tokio::test]
async fn non_ascii_control_and_percent_encoded_bearer_tokens_are_invalid_requests() {
    let app = app(&layer());
    let t = hs256(&claims("alice"));
    let (h, rest) = t.split_once('.').unwrap();
    let percent = format!("{h}%2E{rest}");
    // Bytes a HeaderValue accepts (obs-text, tab) but that are not text or token68.
    for bytes in [
        format!("Bearer {t}\u{e9}").into_bytes(),
        [b"Bearer ".as_slice(), t.as_bytes(), &[0xff]].concat(),
        [b"Bearer ".as_slice(), &[0x80, 0x81], t.as_bytes()].concat(),
        [b"Bearer ".as_slice(), h.as_bytes(), b".\t", rest.as_bytes()].concat(),
        format!("Bearer {percent}").into_bytes(),
        format!("Bearer {h}.{rest}%00").into_bytes(),
    ] {
        let mut req = request_with(&[]);
        req.headers_mut().insert(
            header::AUTHORIZATION,
            http::HeaderValue::from_bytes(&bytes).unwrap(),
        );
        let seen = send(&app, req).await;
        assert_bad_request(&seen, BAD_AUTHORIZATION, &String::from_utf8_lossy(&bytes));
    }
    // Control characters other than tab cannot even be sent: HeaderValue refuses them.
    for c in [0u8, 1, b'\n', b'\r', 0x1b, 0x7f] {
        assert!(http::HeaderValue::from_bytes(&[b'B', c]).is_err(), "{c}");
    }
}

#[tokio::test]
async fn odd_token_cookies_are_refused_or_ignored_never_decoded_leniently() {
    let app = app(&layer());
    let t = hs256(&claims("alice"));
    let (h, rest) = t.split_once('.').unwrap();
    // Text the cookie parser hands over as the value, which is then not a valid token.
    for cookie in [
        format!("access_token={h}%2E{rest}"),
        format!("access_token=\"{t}\""),
        format!("access_token={t}="),
        format!("access_token={h}. {rest}"),
        format!("access_token={t}\t{t}"),
        "access_token=e30".to_owned(),
    ] {
        let seen = send(&app, request_with(&[(header::COOKIE, &cookie)])).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{cookie}: {seen:?}");
        assert_eq!(seen.kind(), Some(RejectionKind::InvalidToken), "{cookie}");
    }
    // Whitespace around the value is not part of it (RFC 6265 §5.2): found as is.
    for cookie in [
        format!("access_token= {t}"),
        format!("access_token={t} ; a=b"),
        format!(" access_token = {t}"),
    ] {
        assert_ok(
            &send(&app, request_with(&[(header::COOKIE, &cookie)])).await,
            "alice",
            &cookie,
        );
    }
    // A token cookie whose own value is not ASCII is an invalid token (only the token
    // cookie's value is judged; other cookies' bytes never matter).
    for value in [
        format!("{t}\u{e9}").into_bytes(),
        [t.as_bytes(), b"\xff"].concat(),
    ] {
        let mut req = request_with(&[]);
        let mut cookie = b"access_token=".to_vec();
        cookie.extend_from_slice(&value);
        req.headers_mut().insert(
            header::COOKIE,
            http::HeaderValue::from_bytes(&cookie).unwrap(),
        );
        let seen = send(&app, req).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
        assert_eq!(seen.kind(), Some(RejectionKind::InvalidToken));
    }
    // A cookie with a similar name is not the token cookie.
    for cookie in [
        format!("Access_Token={t}"),
        format!("access_token2={t}"),
        format!("xaccess_token={t}"),
        format!("access-token={t}"),
        format!("access_token%3D={t}"),
    ] {
        let seen = send(&app, request_with(&[(header::COOKIE, &cookie)])).await;
        assert_eq!(seen.kind(), Some(RejectionKind::MissingToken), "{cookie}");
    }
}

// ---------------------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn oversized_bearer_tokens_are_refused_before_decoding() {
    let app = app(&layer());
    let over = format!("{}.{}.{}", "a".repeat(4096), "b".repeat(4096), "c");
    assert_eq!(over.len(), 8 * 1024 + 3);
    let mib = "a".repeat(1 << 20);
    let mib_dots = format!("{}.{}.{}", "e".repeat(1 << 19), "e".repeat(1 << 19), "e");
    for token in [over.as_str(), &mib, &mib_dots] {
        assert_refused(&send(&app, bearer(token)).await, TOO_LONG, "long bearer");
    }
    // Exactly at the limit: decoded (and malformed), not refused for its length.
    let at = format!("{}.{}.{}", "a".repeat(4095), "b".repeat(4094), "c");
    assert_eq!(at.len(), 8 * 1024);
    assert_refused_as_one_of(
        &send(&app, bearer(&at)).await,
        &[MALFORMED, BAD_CLAIMS],
        "at the limit",
    );
    // One MiB of another scheme is simply no bearer token.
    let basic = format!("Basic {mib}");
    let seen = send(&app, request_with(&[(header::AUTHORIZATION, &basic)])).await;
    assert_eq!(seen.kind(), Some(RejectionKind::MissingToken));
}

#[tokio::test]
async fn oversized_cookies_are_refused_and_huge_cookie_headers_do_not_hurt() {
    let app = app(&layer());
    let t = hs256(&claims("alice"));
    // The token cookie over the limit, and a 1 MiB token cookie.
    for len in [8 * 1024 + 1, 1 << 20] {
        let cookie = format!("a=1; access_token={}", "x".repeat(len));
        assert_refused(
            &send(&app, request_with(&[(header::COOKIE, &cookie)])).await,
            TOO_LONG,
            "long cookie",
        );
    }
    // 1 MiB of other cookies around a valid token: the token is still found.
    let noise: String = (0..40_000).map(|i| format!("c{i}=v{i}; ")).collect();
    assert!(noise.len() > 500_000);
    let cookie = format!("{noise}access_token={t}; {noise}");
    assert_ok(
        &send(&app, request_with(&[(header::COOKIE, &cookie)])).await,
        "alice",
        "token among 1 MiB of cookies",
    );
    // Many Cookie headers.
    let mut req = request_with(&[]);
    for i in 0..2000 {
        req.headers_mut().append(
            header::COOKIE,
            http::HeaderValue::from_str(&format!("c{i}=v")).unwrap(),
        );
    }
    req.headers_mut().append(
        header::COOKIE,
        http::HeaderValue::from_str(&format!("access_token={t}")).unwrap(),
    );
    assert_ok(&send(&app, req).await, "alice", "2000 Cookie headers");
}

// ---------------------------------------------------------------------------------------
// Request shape
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_authorization_headers_are_refused_whatever_they_hold() {
    let app = app(&layer());
    let good = format!("Bearer {}", hs256(&claims("alice")));
    for second in [
        good.clone(),
        "Bearer garbage".to_owned(),
        "Basic YWxpY2U6d29uZGVybGFuZA==".to_owned(),
        String::new(),
    ] {
        let seen = send(
            &app,
            request_with(&[
                (header::AUTHORIZATION, &good),
                (header::AUTHORIZATION, &second),
            ]),
        )
        .await;
        assert_bad_request(&seen, TWO_AUTHORIZATION, &second);
        // In the other order too.
        let seen = send(
            &app,
            request_with(&[
                (header::AUTHORIZATION, &second),
                (header::AUTHORIZATION, &good),
            ]),
        )
        .await;
        assert_bad_request(&seen, TWO_AUTHORIZATION, &second);
    }
    // Even with a valid cookie beside them.
    let t = hs256(&claims("alice"));
    let cookie = format!("access_token={t}");
    let seen = send(
        &app,
        request_with(&[
            (header::COOKIE, &cookie),
            (header::AUTHORIZATION, &good),
            (header::AUTHORIZATION, &good),
        ]),
    )
    .await;
    assert_bad_request(&seen, TWO_AUTHORIZATION, "with a cookie");
}

#[tokio::test]
async fn a_token_in_the_query_string_is_ignored() {
    let app = app(&layer());
    let t = hs256(&claims("alice"));
    for uri in [
        format!("/?access_token={t}"),
        format!("/me?token={t}&x=1"),
        format!("/?jwt={t}"),
        format!("/?authorization=Bearer%20{t}"),
        format!("/?Authorization=Bearer+{t}"),
    ] {
        let seen = send(&app, Request::get(&uri).body(String::new()).unwrap()).await;
        assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(seen.kind(), Some(RejectionKind::MissingToken), "{uri}");
    }
    // A valid header decides even if the query holds a garbage or revoked token.
    let req = Request::get(format!("/?access_token=garbage.{t}"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(String::new())
        .unwrap();
    assert_ok(&send(&app, req).await, "alice", "header with query");
}

// ---------------------------------------------------------------------------------------
// Duplicate keys and deep nesting in the payload
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_registered_claims_are_refused() {
    let app = app(&layer());
    let now = now();
    let jti = uid();
    let base = [
        ("sub", "\"alice\"".to_owned()),
        ("iat", now.to_string()),
        ("exp", (now + 600).to_string()),
        ("jti", format!("\"{jti}\"")),
    ];
    let second = |claim: &str| match claim {
        "sub" => "\"admin\"".to_owned(),
        "iat" => (now - 5).to_string(),
        "exp" => (now + 60_000).to_string(),
        "jti" => "\"other\"".to_owned(),
        "iss" => "\"https://b.example\"".to_owned(),
        "nbf" => (now + 3600).to_string(),
        "aud" => "\"x\"".to_owned(),
        _ => "1".to_owned(),
    };
    for dup in ["sub", "iat", "exp", "jti", "iss", "nbf", "iat_us", "aud"] {
        // The duplicate both after and before the original member.
        for after in [true, false] {
            let mut members: Vec<String> =
                base.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            let first = match dup {
                "iss" => "\"https://a.example\"".to_owned(),
                "nbf" => (now - 10).to_string(),
                "iat_us" => format!("{now}000000"),
                "aud" => "\"y\"".to_owned(),
                _ => String::new(),
            };
            if !first.is_empty() {
                members.push(format!("\"{dup}\":{first}"));
            }
            let extra = format!("\"{dup}\":{}", second(dup));
            if after {
                members.push(extra);
            } else {
                members.insert(0, extra);
            }
            let payload = format!("{{{}}}", members.join(","));
            let seen = send(&app, bearer(&raw_hs256(r#"{"alg":"HS256"}"#, &payload))).await;
            // Never accepted with either value: the JSON is refused as a whole.
            assert_refused(&seen, BAD_CLAIMS, &payload);
        }
    }
}

#[derive(serde::Deserialize, Clone, Debug)]
struct Role {
    #[allow(dead_code)]
    role: String,
}

/// A layer decoding custom claims `C`, and a service answering with them: the status
/// and the claims the service saw.
async fn custom_claims<C>(token: &str) -> (StatusCode, Option<C>)
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    custom_claims_up_to(token, None).await
}

/// [`custom_claims`], with `max_token_len` when given.
async fn custom_claims_up_to<C>(token: &str, max_len: Option<usize>) -> (StatusCode, Option<C>)
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    let mut builder =
        JwtAuthLayer::builder(MemoryStore::new()).key(VerificationKey::hs256(SECRET).unwrap());
    if let Some(max_len) = max_len {
        builder = builder.max_token_len(max_len);
    }
    let layer = builder.claims::<C>().build().unwrap();
    let svc = layer.layer(service_fn(|req: Request<String>| async move {
        let c = req
            .extensions()
            .get::<Claims<C>>()
            .unwrap()
            .custom()
            .clone();
        let mut res = Response::new(String::new());
        res.extensions_mut().insert(c);
        Ok::<_, Infallible>(res)
    }));
    let res = svc.oneshot(bearer(token)).await.unwrap();
    (res.status(), res.extensions().get::<C>().cloned())
}

#[tokio::test]
async fn duplicate_custom_claims_are_refused_by_typed_claims_and_last_wins_in_maps() {
    let payload = payload_with(r#""role":"user","role":"admin""#);
    let token = raw_hs256(r#"{"alg":"HS256"}"#, &payload);
    // A struct (serde derive) refuses a duplicate field: the token is refused.
    let (status, claims) = custom_claims::<Role>(&token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(claims.is_none());
    // A map or a serde_json Value keeps the last member, as serde_json does: the
    // application sees one, deterministic value.
    let (status, claims) = custom_claims::<HashMap<String, Value>>(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(claims.unwrap()["role"], "admin");
    let (status, claims) = custom_claims::<Value>(&token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(claims.unwrap()["role"], "admin");
    // With `C = ()` (custom claims ignored), the duplicate is not looked at.
    let seen = send(&app(&layer()), bearer(&token)).await;
    assert_ok(&seen, "alice", "C = ()");
}

/// A token over exactly these payload bytes (not necessarily UTF-8), HS256 with `SECRET`.
fn raw_payload_token(payload: &[u8]) -> String {
    crypto();
    let input = format!("{}.{}", b64(br#"{"alg":"HS256"}"#), b64(payload));
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &EncodingKey::from_secret(SECRET).unwrap(),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{sig}")
}

#[tokio::test]
async fn invalid_utf8_and_lone_surrogates_in_claims() {
    // Found by the `signed_claims` fuzz target: serde_json does not validate what it
    // skips, so with `C = ()` invalid UTF-8 or a lone surrogate escape inside an
    // *unknown* member does not refuse a correctly signed token (the issuer signed those
    // bytes; nothing the crate reads is affected). Any claim that is read, registered or
    // custom, must be valid: then the token is refused.
    let app = app(&layer());
    let n = now();
    let with = |extra: &[u8]| {
        let head = format!(
            r#"{{"sub":"alice","iat":{n},"exp":{},"jti":"{}","#,
            n + 600,
            uid()
        );
        [head.as_bytes(), extra, b"}"].concat()
    };
    for extra in [&b"\"x\":\"\xe1d\""[..], b"\"x\":\"\\ud800\"", b"\"\xff\":1"] {
        let token = raw_payload_token(&with(extra));
        let seen = send(&app, bearer(&token)).await;
        let case = String::from_utf8_lossy(extra).into_owned();
        if seen.status == StatusCode::OK {
            assert_ok(&seen, "alice", &case);
        } else {
            assert_refused(&seen, BAD_CLAIMS, &case);
        }
        assert_eq!(
            custom_claims::<Value>(&token).await.0,
            StatusCode::UNAUTHORIZED,
            "{case}: a claims type that reads the member refuses it"
        );
    }
    // In a registered claim: always refused.
    for payload in [
        format!(
            r#"{{"sub":"al\ud800ice","iat":{n},"exp":{},"jti":"j"}}"#,
            n + 600
        )
        .into_bytes(),
        [
            br#"{"sub":"al"#.as_slice(),
            &[0xe1, b'x'],
            format!(r#"ice","iat":{n},"exp":{},"jti":"j"}}"#, n + 600).as_bytes(),
        ]
        .concat(),
        [
            format!(r#"{{"sub":"alice","iat":{n},"exp":{},"jti":""#, n + 600).as_bytes(),
            &[0xc0, 0x80],
            br#""}"#.as_slice(),
        ]
        .concat(),
    ] {
        let seen = send(&app, bearer(&raw_payload_token(&payload))).await;
        assert_refused(&seen, BAD_CLAIMS, &String::from_utf8_lossy(&payload));
    }
}

fn deep(open: &str, close: &str, depth: usize) -> String {
    format!("{}{}", open.repeat(depth), close.repeat(depth))
}

#[tokio::test]
async fn deeply_nested_claims_are_refused_without_overflowing_the_stack() {
    // Long tokens are allowed here so the nesting reaches the JSON parser.
    let big = || {
        JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .max_token_len(1 << 20)
    };
    let plain = big().build().unwrap();
    for (name, nested) in [
        ("arrays", deep("[", "]", 10_000)),
        ("objects", deep("{\"a\":", "}", 10_000)),
        ("mixed", deep("[{\"a\":", "}]", 5_000)),
        ("arrays, 100k", deep("[", "]", 100_000)),
    ] {
        let payload = payload_with(&format!("\"deep\":{nested}"));
        let token = raw_hs256(r#"{"alg":"HS256"}"#, &payload);
        // With `C = ()` unknown members are skipped without being built (serde_json
        // skips iteratively), so the token may pass; or, when they are buffered, the
        // recursion limit refuses it. Either way no stack overflow and no panic.
        let seen = send(&app(&plain), bearer(&token)).await;
        if seen.status == StatusCode::OK {
            assert_ok(&seen, "alice", name);
        } else {
            assert_refused(&seen, BAD_CLAIMS, name);
        }
        // Claims types that build the value hit serde_json's recursion limit (128).
        let (status, _) = custom_claims_big::<Value>(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}, Value");
        let (status, _) = custom_claims_big::<HashMap<String, Value>>(&token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}, map");
    }
    // Nesting within the limit is fine, for every claims type.
    let payload = payload_with(&format!("\"deep\":{}", deep("[", "]", 100)));
    let seen = send(
        &app(&plain),
        bearer(&raw_hs256(r#"{"alg":"HS256"}"#, &payload)),
    )
    .await;
    assert_ok(&seen, "alice", "depth 100");
    let token = raw_hs256(r#"{"alg":"HS256"}"#, &payload);
    assert_eq!(custom_claims_big::<Value>(&token).await.0, StatusCode::OK);
    // Deep nesting in the header (kept in the header's `extras` map) is refused.
    let header = format!(r#"{{"alg":"HS256","x":{}}}"#, deep("[", "]", 10_000));
    let seen = send(&app(&plain), bearer(&raw_hs256(&header, &payload_with("")))).await;
    assert_refused_as_one_of(&seen, &[MALFORMED, BAD_CLAIMS], "deep header");
}

/// [`custom_claims`] with tokens up to 1 MiB.
async fn custom_claims_big<C>(token: &str) -> (StatusCode, Option<C>)
where
    C: serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
{
    custom_claims_up_to(token, Some(1 << 20)).await
}

// ---------------------------------------------------------------------------------------
// Revocation: per-issuer keys, monotonic cutoffs, no eviction
// ---------------------------------------------------------------------------------------

async fn status_of(store: &MemoryStore, token: &TokenInfo) -> RevocationStatus {
    match store.check(token) {
        Check::Ready(r) => r.unwrap(),
        Check::Pending(f) => f.await.unwrap(),
    }
}

#[tokio::test]
async fn the_same_jti_from_two_issuers_is_revoked_independently() {
    let jti = uid();
    let token = |iss: Option<&str>| {
        let mut c = claims("alice");
        c["jti"] = json!(jti);
        if let Some(iss) = iss {
            c["iss"] = json!(iss);
        }
        hs256(&c)
    };
    let issuers = [
        None,
        Some(""),
        Some("https://a.example"),
        Some("https://b.example"),
    ];
    let tokens: Vec<String> = issuers.iter().map(|i| token(*i)).collect();
    for (i, revoked) in tokens.iter().enumerate() {
        // Revoke the i-th issuer's token (in a fresh store each round).
        let layer = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .build()
            .unwrap();
        let app = app(&layer);
        let info = send(&app, bearer(revoked)).await.info.unwrap();
        layer.revoker().revoke(&info).await.unwrap();
        for (j, t) in tokens.iter().enumerate() {
            let seen = send(&app, bearer(t)).await;
            if i == j {
                assert_eq!(seen.kind(), Some(RejectionKind::RevokedToken), "{i}");
            } else {
                assert_ok(&seen, "alice", &format!("revoked {i}, checked {j}"));
            }
        }
    }
    // Issuer and jti never run together: ("ab", "c") is not ("a", "bc").
    let store = &MemoryStore::new();
    let n = now();
    let keep = n + 600;
    store
        .revoke(&RevokedToken::new(Some("ab"), "c", n + 600, keep))
        .await
        .unwrap();
    for (iss, jti, expected) in [
        (Some("ab"), "c", RevocationStatus::Revoked),
        (Some("a"), "bc", RevocationStatus::Active),
        (Some("abc"), "", RevocationStatus::Active),
        (None, "abc", RevocationStatus::Active),
        (None, "c", RevocationStatus::Active),
    ] {
        let t = TokenInfo::new(iss, "s", jti, n, n + 600);
        assert_eq!(status_of(store, &t).await, expected, "{iss:?} {jti}");
    }
}

#[tokio::test]
async fn a_cutoff_is_never_lowered() {
    let store = MemoryStore::new();
    let now_us = now() * 1_000_000;
    let keep = now() + 3600;
    let later = now_us - 1_000_000;
    let earlier = now_us - 60_000_000;
    let between = TokenInfo::with_micros(None, "alice", &uid(), now_us - 30_000_000, now() + 600);
    let after = TokenInfo::with_micros(None, "alice", &uid(), now_us - 500_000, now() + 600);
    store
        .revoke_subject(&SubjectCutoff::new(None, "alice", later, keep))
        .await
        .unwrap();
    assert_eq!(status_of(&store, &between).await, RevocationStatus::Revoked);
    // An older cutoff recorded afterwards (a replayed or delayed logout-everywhere).
    for older in [earlier, 0, later - 1] {
        store
            .revoke_subject(&SubjectCutoff::new(None, "alice", older, keep))
            .await
            .unwrap();
        assert_eq!(status_of(&store, &between).await, RevocationStatus::Revoked);
        assert_eq!(status_of(&store, &after).await, RevocationStatus::Active);
    }
    // A shorter keep_until does not shorten the life of the newer cutoff either.
    store
        .revoke_subject(&SubjectCutoff::new(None, "alice", earlier, now() + 1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(status_of(&store, &between).await, RevocationStatus::Revoked);
    // Through the layer: a logout-everywhere then an older cutoff.
    let layer = JwtAuthLayer::builder(store.clone())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let issuer = TokenIssuer::hs256(SECRET).unwrap();
    let token = issuer.issue("bob").unwrap();
    let app = app(&layer);
    let info = send(&app, bearer(token.as_str())).await.info.unwrap();
    layer.revoker().revoke_all(&info).await.unwrap();
    store
        .revoke_subject(&SubjectCutoff::new(None, "bob", 1, keep))
        .await
        .unwrap();
    assert_eq!(
        send(&app, bearer(token.as_str())).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
    // A login after the logout-everywhere works.
    let fresh = issuer.issue("bob").unwrap();
    assert_ok(
        &send(&app, bearer(fresh.as_str())).await,
        "bob",
        "fresh login",
    );
}

#[test]
fn revocations_are_never_evicted_under_memory_pressure() {
    // 300k live denylist entries and 20k cutoffs: no capacity bound evicts any of them.
    // Written from two threads, checked in full. The tokens' `exp` is spread over 5 000
    // seconds, so a store that groups entries by expiry holds thousands of groups.
    const TOKENS: u32 = 300_000;
    const SUBJECTS: u32 = 20_000;
    let exp_of = |i: u32, n: u64| n + 600 + u64::from(i % 5_000);
    let store = MemoryStore::new();
    let n = now();
    let keep = n + 3600;
    let cutoff = n * 1_000_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for half in 0..2u32 {
            let store = store.clone();
            s.spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for i in (half..TOKENS).step_by(2) {
                        let jti = format!("j{i}");
                        let exp = exp_of(i, n);
                        store
                            .revoke(&RevokedToken::new(Some("iss"), &jti, exp, exp + 61))
                            .await
                            .unwrap();
                    }
                    for i in (half..SUBJECTS).step_by(2) {
                        let sub = format!("s{i}");
                        store
                            .revoke_subject(&SubjectCutoff::new(Some("iss"), &sub, cutoff, keep))
                            .await
                            .unwrap();
                    }
                });
            });
        }
    });
    assert_eq!(store.len(), (u64::from(TOKENS), u64::from(SUBJECTS)));
    rt.block_on(async {
        for i in 0..TOKENS {
            let t = TokenInfo::new(Some("iss"), "nobody", &format!("j{i}"), n, exp_of(i, n));
            assert_eq!(
                status_of(&store, &t).await,
                RevocationStatus::Revoked,
                "j{i}"
            );
        }
        for i in 0..SUBJECTS {
            let t = TokenInfo::with_micros(Some("iss"), &format!("s{i}"), "x", cutoff - 1, n + 600);
            assert_eq!(
                status_of(&store, &t).await,
                RevocationStatus::Revoked,
                "s{i}"
            );
        }
        // And an unrelated token is still active.
        let t = TokenInfo::new(Some("iss"), "nobody", "not-revoked", n, n + 600);
        assert_eq!(status_of(&store, &t).await, RevocationStatus::Active);
    });
}

// ---------------------------------------------------------------------------------------
// Findings of this suite (each was a failing test before its fix in src/)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_revoked_token_with_a_fractional_exp_stays_revoked_while_it_would_pass() {
    // jsonwebtoken rounds a fractional `exp` to the nearest second (x.5 up); the denylist
    // entry must live at least until that rounded `exp` plus the leeway. A token whose
    // `exp` is `t - 61 + 0.5` passes during second `t` (rounded: `t - 60`, leeway 60),
    // so revoking it then must hold for the rest of that second.
    for _attempt in 0..10 {
        start_of_a_second().await;
        let layer = layer();
        let app = app(&layer);
        let t = now();
        let c = json!({"sub":"alice","iat":t - 100,"exp":(t - 61) as f64 + 0.5,"jti":uid()});
        let token = hs256(&c);
        let seen = send(&app, bearer(&token)).await;
        if now() != t {
            continue; // the second ended (a very loaded machine): try again
        }
        assert_ok(&seen, "alice", "before the logout");
        layer.revoker().revoke(&seen.info.unwrap()).await.unwrap();
        let after = send(&app, bearer(&token)).await;
        if now() != t {
            continue;
        }
        assert_eq!(
            after.kind(),
            Some(RejectionKind::RevokedToken),
            "a revoked token passed again: {after:?}"
        );
        return;
    }
    panic!("could not run the case within one second in ten attempts");
}

#[tokio::test]
async fn a_huge_leeway_is_a_configuration_error_not_a_panic_per_request() {
    // jsonwebtoken computes `now - leeway`: a leeway beyond the current time overflowed
    // (a panic on every request in debug builds, every token "expired" in release).
    for secs in [u64::MAX, 1 << 40, 100 * 365 * 24 * 3600] {
        let built = JwtAuthLayer::builder(MemoryStore::new())
            .key(VerificationKey::hs256(SECRET).unwrap())
            .leeway(Duration::from_secs(secs))
            .build();
        let err = built.expect_err("an absurd leeway is refused at start-up");
        assert_eq!(err.kind(), tower_jwt_auth::ConfigErrorKind::InvalidSetting);
    }
    // A day is still accepted (and tokens pass).
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .leeway(Duration::from_secs(24 * 3600))
        .build()
        .unwrap();
    assert_ok(
        &send(&app(&layer), bearer(&hs256(&claims("alice")))).await,
        "alice",
        "one day of leeway",
    );
}

#[tokio::test]
async fn logging_out_with_an_unbounded_lifetime_or_a_far_exp_does_not_panic() {
    // `max_token_lifetime(Duration::MAX)` ("no limit") made every revocation time
    // overflow `SystemTime` (a panic in the logout handler, in every build).
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .max_token_lifetime(Duration::MAX)
        .build()
        .unwrap();
    let app = app(&layer);
    let n = now();
    let far = raw_hs256(
        r#"{"alg":"HS256"}"#,
        &format!(
            r#"{{"sub":"alice","iat":{n},"exp":1.7e19,"jti":"{}"}}"#,
            uid()
        ),
    );
    let info = send(&app, bearer(&far)).await.info.expect("accepted");
    layer.revoker().revoke(&info).await.unwrap();
    assert_eq!(
        send(&app, bearer(&far)).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
    let token = hs256(&claims("bob"));
    let info = send(&app, bearer(&token)).await.info.expect("accepted");
    layer.revoker().revoke_all(&info).await.unwrap();
    assert_eq!(
        send(&app, bearer(&token)).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
    // The public conversions saturate too.
    let _ = RevokedToken::new(None, "j", u64::MAX, u64::MAX).keep_until_time();
    let _ = SubjectCutoff::new(None, "s", u64::MAX, u64::MAX).keep_until_time();
}
