//! A real identity provider on loopback for the `oidc` tests: an HTTP server serving an
//! OpenID discovery document and a JWK Set of keys generated for the test (with the
//! `openssl` command), which a test rotates, breaks (down, slow, 500, garbage, an
//! enormous body, a discovery document naming another issuer) and counts fetches of.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;

use super::clock::{now, temp_path, uid};

/// The path of the provider's key set (as Keycloak's).
pub const JWKS_PATH: &str = "/protocol/openid-connect/certs";
/// The audience (client id) the provider's tokens are issued to.
pub const AUDIENCE: &str = "test-client";

/// A signing key generated for one test, and its public JWK.
#[derive(Clone)]
pub struct KeyPair {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn generate(genpkey: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let path = temp_path("key");
    let path = path.to_str().unwrap();
    let mut args = vec!["genpkey"];
    args.extend_from_slice(genpkey);
    args.extend_from_slice(&["-out", path]);
    openssl(&args);
    let private = std::fs::read(path).unwrap();
    let der = openssl(&["pkey", "-in", path, "-pubout", "-outform", "DER"]);
    let _ = std::fs::remove_file(Path::new(path));
    (private, der)
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The INTEGER contents at `der[at..]` and the index after it.
fn der_integer(der: &[u8], at: usize) -> (&[u8], usize) {
    assert_eq!(der[at], 0x02, "an INTEGER");
    let (len, start) = der_len(der, at + 1);
    let mut value = &der[start..start + len];
    while value.len() > 1 && value[0] == 0 {
        value = &value[1..];
    }
    (value, start + len)
}

fn der_len(der: &[u8], at: usize) -> (usize, usize) {
    let first = der[at] as usize;
    if first < 0x80 {
        return (first, at + 1);
    }
    let n = first & 0x7f;
    let len = der[at + 1..at + 1 + n]
        .iter()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    (len, at + 1 + n)
}

impl KeyPair {
    /// A 2048-bit RSA key for `algorithm` (RS256, PS256, ...).
    pub fn rsa(kid: &str, algorithm: Algorithm) -> Self {
        let (private, der) = generate(&["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
        // SubjectPublicKeyInfo: the RSAPublicKey SEQUENCE sits in the BIT STRING, after
        // its unused-bits byte; find it from the end: ... 03 len 00 30 len 02 n 02 e.
        let bitstring = der
            .windows(2)
            .rposition(|w| w == [0x03, 0x82] || w == [0x03, 0x81])
            .unwrap();
        let (_, body) = der_len(&der, bitstring + 1);
        let seq = body + 1;
        assert_eq!(der[seq], 0x30);
        let (_, first) = der_len(&der, seq + 1);
        let (n, next) = der_integer(&der, first);
        let (e, _) = der_integer(&der, next);
        Self {
            kid: kid.to_owned(),
            algorithm,
            encoding: EncodingKey::from_rsa_pem(&private).unwrap(),
            jwk: json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": format!("{algorithm:?}"),
                         "n": b64(n), "e": b64(e) }),
        }
    }

    /// A P-256 key for ES256.
    pub fn ec(kid: &str) -> Self {
        let (private, der) = generate(&["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
        let point = &der[der.len() - 64..];
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(&private).unwrap(),
            // No `alg`: pinned from the curve.
            jwk: json!({ "kty": "EC", "kid": kid, "crv": "P-256",
                         "x": b64(&point[..32]), "y": b64(&point[32..]) }),
        }
    }

    /// An Ed25519 key for EdDSA.
    pub fn ed(kid: &str) -> Self {
        let (private, der) = generate(&["-algorithm", "ed25519"]);
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_pem(&private).unwrap(),
            jwk: json!({ "kty": "OKP", "kid": kid, "crv": "Ed25519", "alg": "EdDSA",
                         "x": b64(&der[der.len() - 32..]) }),
        }
    }

    /// Signs `claims` with this key, its `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(Header::new(self.algorithm), claims)
    }

    /// Signs `claims` under `header` (its `kid` set to this key's unless already set).
    pub fn sign_with_header(&self, mut header: Header, claims: &Value) -> String {
        super::tokens::crypto();
        if header.kid.is_none() {
            header.kid = Some(self.kid.clone());
        }
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

/// What the provider does with requests.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Serves the documents.
    Up,
    /// Answers every request with this status.
    Status(u16),
    /// Answers `200` with a body that is not JSON.
    Garbage,
    /// Answers `200` with an endless stream of bytes (no `Content-Length`).
    Enormous,
    /// Waits this long before answering.
    Slow(Duration),
}

struct State {
    keys: Vec<Value>,
    mode: Mode,
    /// The `issuer` the discovery document names (the real one by default).
    discovery_issuer: Option<String>,
    cache_control: Option<String>,
}

/// The provider: a server on a loopback port, its state, and its fetch counters.
pub struct Provider {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    jwks_fetches: Arc<AtomicUsize>,
    discovery_fetches: Arc<AtomicUsize>,
    server: Option<JoinHandle<()>>,
}

impl Provider {
    /// A provider serving `keys`, listening now.
    pub async fn start(keys: &[&KeyPair]) -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], super::ports::free_port()));
        let mut provider = Self::unstarted(addr, keys);
        provider.up().await;
        provider
    }

    /// A provider on `addr` that does not listen yet ([`up`](Self::up) starts it).
    pub fn unstarted(addr: SocketAddr, keys: &[&KeyPair]) -> Self {
        Self {
            addr,
            state: Arc::new(Mutex::new(State {
                keys: keys.iter().map(|k| k.jwk.clone()).collect(),
                mode: Mode::Up,
                discovery_issuer: None,
                cache_control: None,
            })),
            jwks_fetches: Arc::new(AtomicUsize::new(0)),
            discovery_fetches: Arc::new(AtomicUsize::new(0)),
            server: None,
        }
    }

    /// The issuer: a Keycloak-like realm URL on the loopback port.
    pub fn issuer(&self) -> String {
        format!("http://{}/realms/test", self.addr)
    }

    /// The key set's URL.
    pub fn jwks_url(&self) -> String {
        format!("{}{JWKS_PATH}", self.issuer())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening (again).
    pub async fn up(&mut self) {
        if self.server.is_some() {
            return;
        }
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).expect("bind the provider's port");
        let listener = socket.listen(64).unwrap();
        let issuer = self.issuer();
        let state = Arc::clone(&self.state);
        let jwks = Arc::clone(&self.jwks_fetches);
        let discovery = Arc::clone(&self.discovery_fetches);
        self.server = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (issuer, state, jwks, discovery) = (
                    issuer.clone(),
                    Arc::clone(&state),
                    Arc::clone(&jwks),
                    Arc::clone(&discovery),
                );
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (issuer, state, jwks, discovery) = (
                        issuer.clone(),
                        Arc::clone(&state),
                        Arc::clone(&jwks),
                        Arc::clone(&discovery),
                    );
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            answer(req, &issuer, &state, &jwks, &discovery).await,
                        )
                    }
                });
                // Aborted with the accept loop: a provider that goes down drops its
                // open connections too.
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }));
    }

    /// Stops listening and drops every open connection: connections are refused.
    pub fn down(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    /// Replaces the key set.
    pub fn set_keys(&self, keys: &[&KeyPair]) {
        self.state.lock().unwrap().keys = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// Replaces the key set with raw JWK values (bad keys among good ones).
    pub fn set_raw_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().keys = keys;
    }

    /// The discovery document names `issuer` instead of the real one.
    pub fn set_discovery_issuer(&self, issuer: &str) {
        self.state.lock().unwrap().discovery_issuer = Some(issuer.to_owned());
    }

    /// The key set's `Cache-Control` header.
    pub fn set_cache_control(&self, value: &str) {
        self.state.lock().unwrap().cache_control = Some(value.to_owned());
    }

    /// How many times the key set was requested.
    pub fn jwks_fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many times the discovery document was requested.
    pub fn discovery_fetches(&self) -> usize {
        self.discovery_fetches.load(Ordering::SeqCst)
    }

    /// Claims for an access token of `sub` from this provider, valid for 5 minutes.
    pub fn claims(&self, sub: &str) -> Value {
        let now = now();
        json!({ "iss": self.issuer(), "aud": AUDIENCE, "sub": sub, "iat": now,
                "exp": now + 300, "jti": uid() })
    }

    /// Claims of a back-channel logout token (OpenID Connect Back-Channel Logout 1.0).
    pub fn logout_claims(&self, sub: Option<&str>, sid: Option<&str>) -> Value {
        let now = now();
        let mut claims = json!({ "iss": self.issuer(), "aud": AUDIENCE, "iat": now,
            "exp": now + 120, "jti": uid(),
            "events": { "http://schemas.openid.net/event/backchannel-logout": {} } });
        if let Some(sub) = sub {
            claims["sub"] = sub.into();
        }
        if let Some(sid) = sid {
            claims["sid"] = sid.into();
        }
        claims
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.down();
    }
}

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

async fn answer(
    req: Request<Incoming>,
    issuer: &str,
    state: &Mutex<State>,
    jwks: &AtomicUsize,
    discovery: &AtomicUsize,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let is_jwks = path == format!("/realms/test{JWKS_PATH}");
    let is_discovery = path == "/realms/test/.well-known/openid-configuration";
    if is_jwks {
        jwks.fetch_add(1, Ordering::SeqCst);
    } else if is_discovery {
        discovery.fetch_add(1, Ordering::SeqCst);
    }
    let (mode, keys, discovery_issuer, cache_control) = {
        let s = state.lock().unwrap();
        (
            s.mode.clone(),
            s.keys.clone(),
            s.discovery_issuer.clone(),
            s.cache_control.clone(),
        )
    };
    match mode {
        Mode::Up => {}
        Mode::Status(code) => return full(StatusCode::from_u16(code).unwrap(), "{}"),
        Mode::Garbage => return full(StatusCode::OK, "<html>not json</html>"),
        Mode::Enormous => {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let stream = futures_stream(chunk);
            let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
            return response;
        }
        Mode::Slow(delay) => tokio::time::sleep(delay).await,
    }
    let mut response = if is_discovery {
        full(
            StatusCode::OK,
            json!({
                "issuer": discovery_issuer.unwrap_or_else(|| issuer.to_owned()),
                "jwks_uri": format!("{issuer}{JWKS_PATH}"),
                "authorization_endpoint": format!("{issuer}/protocol/openid-connect/auth"),
                "backchannel_logout_supported": true,
                "backchannel_logout_session_supported": true,
            })
            .to_string(),
        )
    } else if is_jwks {
        let mut response = full(StatusCode::OK, json!({ "keys": keys }).to_string());
        if let Some(cc) = cache_control {
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, cc.parse().unwrap());
        }
        response
    } else {
        return full(StatusCode::NOT_FOUND, "{}");
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    response
}

/// An endless stream of `chunk`s.
fn futures_stream(
    chunk: Bytes,
) -> impl tokio_stream::Stream<Item = Result<Frame<Bytes>, std::convert::Infallible>> + Send + Sync
{
    tokio_stream::iter(std::iter::repeat_with(move || {
        Ok(Frame::data(chunk.clone()))
    }))
}
