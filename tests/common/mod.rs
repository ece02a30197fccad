//! Shared helpers for the integration tests: keys, token minting relative to now, and a
//! small app behind the layer.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Request, Response, StatusCode, header};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_jwt_auth::{
    Claims, JwtAuth, JwtAuthLayer, MemoryStore, Rejection, RejectionKind, TokenInfo,
};

pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";
pub const OTHER_SECRET: &[u8] = b"another-secret-that-is-long-enough-0123456";

pub const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa_public.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec_private.pem");
pub const EC_PUBLIC: &[u8] = include_bytes!("../keys/ec_public.pem");
pub const ED_PRIVATE: &[u8] = include_bytes!("../keys/ed_private.pem");
pub const ED_PUBLIC: &[u8] = include_bytes!("../keys/ed_public.pem");

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn uid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("id-{}-{}", now(), N.fetch_add(1, Ordering::Relaxed))
}

/// Standard claims valid for ten minutes from now.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({ "sub": sub, "iat": now, "exp": now + 600, "jti": uid() })
}

/// Signs `claims` with HS256 and `SECRET` (no `kid`).
pub fn hs256(claims: &Value) -> String {
    sign(&Header::new(Algorithm::HS256), claims, SECRET)
}

/// Makes sure jsonwebtoken has a crypto backend before a test signs anything (the crate
/// installs one when a layer or issuer is built; tests may sign first).
pub fn crypto() {
    let _ = tower_jwt_auth::TokenIssuer::hs256(SECRET).unwrap();
}

pub fn sign(header: &Header, claims: &Value, secret: &[u8]) -> String {
    crypto();
    jsonwebtoken::encode(header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

pub fn sign_with(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    crypto();
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// base64url without padding, for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with arbitrary header and payload JSON, signed with HS256 `SECRET` over
/// exactly those bytes (so malformed claims still carry a valid signature).
pub fn raw_hs256(header_json: &str, payload_json: &str) -> String {
    crypto();
    let signing_input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(payload_json.as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET).unwrap(),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{sig}")
}

/// The default test layer: HS256 `SECRET`, bearer then `access_token` cookie.
pub fn layer() -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .key(tower_jwt_auth::VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .build()
        .unwrap()
}

/// What the inner service saw.
#[derive(Debug)]
pub struct Seen {
    pub status: StatusCode,
    pub subject: Option<String>,
    pub info: Option<TokenInfo>,
    pub rejection: Option<Rejection>,
    pub www_authenticate: Option<String>,
}

impl Seen {
    pub fn kind(&self) -> Option<RejectionKind> {
        self.rejection.as_ref().map(Rejection::kind)
    }
}

/// The inner test service: answers with the subject of the claims it received.
pub type Inner = tower::util::ServiceFn<
    fn(Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>>,
>;

fn inner(req: Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>> {
    let sub = req
        .extensions()
        .get::<Claims>()
        .map(|c| c.subject().to_owned())
        .unwrap_or_default();
    let mut res = Response::new(sub);
    if let Some(info) = req.extensions().get::<TokenInfo>() {
        res.extensions_mut().insert(info.clone());
    }
    std::future::ready(Ok(res))
}

/// The layer around a service that reports the claims it received.
pub fn app<R>(layer: &JwtAuthLayer<R>) -> JwtAuth<Inner, R> {
    layer.layer(service_fn(inner as fn(_) -> _))
}

pub async fn send<S>(svc: &S, req: Request<String>) -> Seen
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
{
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let www_authenticate = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let rejection = res.extensions().get::<Rejection>().cloned();
    let info = res.extensions().get::<TokenInfo>().cloned();
    let body = res.into_body();
    Seen {
        status,
        subject: (status == StatusCode::OK && !body.is_empty()).then_some(body),
        info,
        rejection,
        www_authenticate,
    }
}

pub fn bearer(token: &str) -> Request<String> {
    Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

pub fn with_cookie(method: &str, token: &str) -> Request<String> {
    Request::builder()
        .method(method)
        .uri("http://app.example/logout")
        .header(header::HOST, "app.example")
        .header(header::COOKIE, format!("theme=dark; access_token={token}"))
        .body(String::new())
        .unwrap()
}

pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

/// Asserts an RFC 6750 `invalid_token` rejection of the given kind.
pub fn assert_invalid_token(seen: &Seen, kind: RejectionKind) {
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    assert_eq!(seen.kind(), Some(kind), "{seen:?}");
    let challenge = seen.www_authenticate.as_deref().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(seen.subject.is_none());
}
