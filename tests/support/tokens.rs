//! The test keys and secrets, and tokens minted relative to now.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::clock::{now, uid};

/// The HS256 secret of the test layers and of the example server under test.
pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";
/// Another HS256 secret: a token signed with it is a forgery.
pub const OTHER_SECRET: &[u8] = b"another-secret-that-is-long-enough-0123456";

pub const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../keys/rsa_public.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec_private.pem");
pub const EC_PUBLIC: &[u8] = include_bytes!("../keys/ec_public.pem");
pub const ED_PRIVATE: &[u8] = include_bytes!("../keys/ed_private.pem");
pub const ED_PUBLIC: &[u8] = include_bytes!("../keys/ed_public.pem");

/// Makes sure jsonwebtoken has a crypto backend before a test signs anything (the crate
/// installs one when a layer or issuer is built; tests may sign first).
pub fn crypto() {
    let _ = tower_jwt_auth::TokenIssuer::hs256(SECRET).unwrap();
}

/// Standard claims valid for ten minutes from now.
pub fn claims(sub: &str) -> Value {
    let now = now();
    json!({ "sub": sub, "iat": now, "exp": now + 600, "jti": uid() })
}

/// A token as another library would mint it: `sub`, `iat`, `exp` and a fresh `jti`,
/// whole seconds, HS256 with [`SECRET`].
pub fn mint(sub: &str, iat: u64, exp: u64) -> String {
    hs256(&json!({ "sub": sub, "iat": iat, "exp": exp, "jti": uid() }))
}

/// Signs `claims` with HS256 and [`SECRET`] (no `kid`).
pub fn hs256(claims: &Value) -> String {
    sign(&Header::new(Algorithm::HS256), claims, SECRET)
}

/// Signs `claims` with an HMAC `secret` under `header`.
pub fn sign(header: &Header, claims: &Value, secret: &[u8]) -> String {
    sign_with(header, claims, &EncodingKey::from_secret(secret).unwrap())
}

pub fn sign_with(header: &Header, claims: &Value, key: &EncodingKey) -> String {
    crypto();
    jsonwebtoken::encode(header, claims, key).unwrap()
}

/// base64url without padding, for hand-made tokens.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with arbitrary header and payload JSON, signed with HS256 [`SECRET`] over
/// exactly those bytes (so malformed claims still carry a valid signature).
pub fn raw_hs256(header_json: &str, payload_json: &str) -> String {
    raw_hs256_with(header_json, payload_json, SECRET)
}

/// [`raw_hs256`] with another secret.
pub fn raw_hs256_with(header_json: &str, payload_json: &str, secret: &[u8]) -> String {
    crypto();
    let signing_input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(payload_json.as_bytes())
    );
    let sig = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(secret).unwrap(),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{sig}")
}

/// The payload of a compact JWT, unverified.
///
/// # Panics
///
/// When `token` has no base64url JSON payload.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a compact JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}
