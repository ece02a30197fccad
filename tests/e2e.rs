//! End-to-end tests of the example server (`cargo run --features example-server --bin server`).
//!
//! Each test serves the example's own router (`examples/server/app.rs`, included below)
//! on a real TCP port on 127.0.0.1 and drives it with a real HTTP client (hyper-util's),
//! exactly as an outside client would. Tokens are minted relative to now.

#[path = "../examples/server/app.rs"]
mod app;
mod support;

use std::error::Error;
use std::fmt;
use std::future::Ready;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::clock::{now, start_of_a_second, uid};
use support::http::{Http, Reply, password, serve};
use support::tokens::{
    OTHER_SECRET, RSA_PRIVATE, SECRET, b64, claims_of, hs256, mint, sign, sign_with,
};
use tower_jwt_auth::{
    Check, MemoryStore, RevocationStatus, RevocationStore, RevokedToken, SubjectCutoff, TokenInfo,
};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// The longest one request may take before the test fails (rather than hangs).
const HTTP_LIMIT: Duration = Duration::from_secs(10);

/// The example server on a real port, and an HTTP client.
struct Server {
    addr: SocketAddr,
    http: Http,
}

/// A login's result.
struct Login {
    token: String,
    /// The `Set-Cookie` header.
    set_cookie: String,
    expires_in: u64,
}

impl Login {
    /// The `Cookie` header a browser would send back.
    fn cookie(&self) -> String {
        format!("{}={}", app::COOKIE_NAME, self.token)
    }

    fn claims(&self) -> Value {
        claims_of(&self.token)
    }

    fn iat(&self) -> u64 {
        self.claims()["iat"].as_u64().unwrap()
    }
}

fn config() -> app::Config {
    app::Config::new(app::Secret::new(SECRET))
}

async fn start() -> Server {
    start_with(MemoryStore::new(), config()).await
}

async fn start_with<R: tower_jwt_auth::SessionStore>(store: R, config: app::Config) -> Server {
    let router = app::router(store, &config).expect("the router builds");
    Server {
        addr: serve(router).await,
        http: Http::new(HTTP_LIMIT),
    }
}

impl Server {
    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn request(&self, method: Method, path: &str) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.origin()))
    }

    async fn send(&self, request: http::request::Builder, body: impl Into<Bytes>) -> Reply {
        self.http
            .send(request.body(Full::new(body.into())).unwrap())
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path), Bytes::new())
            .await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.send(
            self.request(Method::POST, path)
                .header(header::CONTENT_TYPE, "application/json"),
            body.to_string(),
        )
        .await
    }

    async fn try_login(&self, username: &str, password: &str) -> Reply {
        self.post_json(
            "/login",
            &json!({ "username": username, "password": password }),
        )
        .await
    }

    async fn login(&self, username: &str) -> Login {
        let reply = self.try_login(username, password(username)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let body = reply.json();
        Login {
            token: body["access_token"].as_str().unwrap().to_owned(),
            set_cookie: reply.header(header::SET_COOKIE).unwrap().to_owned(),
            expires_in: body["expires_in"].as_u64().unwrap(),
        }
    }

    /// `method path` with `Authorization: Bearer token`.
    async fn bearer(&self, method: Method, path: &str, token: &str) -> Reply {
        self.send(
            self.request(method, path)
                .header(header::AUTHORIZATION, format!("Bearer {token}")),
            Bytes::new(),
        )
        .await
    }

    /// `method path` with the token in the cookie, as a same-origin browser request
    /// would (for unsafe methods a browser sends `Origin` and `Sec-Fetch-Site`).
    async fn cookie(&self, method: Method, path: &str, cookie: &str) -> Reply {
        let mut request = self
            .request(method.clone(), path)
            .header(header::COOKIE, cookie);
        if method != Method::GET {
            request = request
                .header(header::ORIGIN, self.origin())
                .header("sec-fetch-site", "same-origin");
        }
        self.send(request, Bytes::new()).await
    }

    async fn me(&self, token: &str) -> Reply {
        self.bearer(Method::GET, "/me", token).await
    }
}

// ---------------------------------------------------------------------------------------
// Open routes, the page, unknown paths
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn health_is_open() {
    let server = start().await;
    let reply = server.get("/health").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({ "status": "ok" }));
}

#[tokio::test]
async fn unknown_paths_are_404_not_401() {
    let server = start().await;
    for path in ["/nope", "/me/extra", "/admin", "/logout/x"] {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.header(header::WWW_AUTHENTICATE).is_none(), "{path}");
    }
    // Also with a valid token: the layer is on the routes only.
    let alice = server.login("alice").await;
    let reply = server.bearer(Method::GET, "/nope", &alice.token).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_protected_path_with_another_method_is_405_not_401() {
    let server = start().await;
    let alice = server.login("alice").await;
    let (wrong, protected) = (StatusCode::METHOD_NOT_ALLOWED, StatusCode::UNAUTHORIZED);
    for (method, path, without_token) in [
        (Method::POST, "/me", wrong),
        (Method::GET, "/logout", wrong),
        (Method::GET, "/logout-all", wrong),
        (Method::GET, "/me", protected),
        (Method::POST, "/logout", protected),
        (Method::POST, "/logout-all", protected),
    ] {
        let reply = server
            .send(server.request(method.clone(), path), Bytes::new())
            .await;
        assert_eq!(reply.status, without_token, "{method} {path}");
        if without_token == wrong {
            // No challenge, and the token is not what decides it either.
            assert!(
                reply.header(header::WWW_AUTHENTICATE).is_none(),
                "{method} {path}"
            );
            let reply = server.bearer(method.clone(), path, &alice.token).await;
            assert_eq!(reply.status, wrong, "{method} {path}");
        }
    }
}

#[tokio::test]
async fn the_page_is_self_contained_with_stable_ids() {
    let server = start().await;
    let reply = server.get("/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header(header::CONTENT_TYPE)
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(reply.body.to_vec()).unwrap();
    for id in [
        "username",
        "password",
        "login",
        "me",
        "logout",
        "logout-all",
        "status",
        "output",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "#{id} missing");
    }
    assert!(page.contains("credentials: \"same-origin\""));
    // No external assets, one inline script and style, allowed by hash in the CSP.
    assert!(!page.contains("src=") && !page.contains("href="));
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert_eq!(page.matches("<script").count(), 1);
    assert_eq!(page.matches("<style").count(), 1);
    let csp = reply.header(header::CONTENT_SECURITY_POLICY).unwrap();
    let script = &page[page.find("<script>").unwrap() + 8..page.find("</script>").unwrap()];
    let hash = STANDARD.encode(Sha256::digest(script.as_bytes()));
    assert!(
        csp.contains(&format!("script-src 'sha256-{hash}'")),
        "{csp}"
    );
    assert!(csp.contains("connect-src 'self'") && csp.contains("frame-ancestors 'none'"));
}

// ---------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn login_answers_a_token_and_sets_the_cookie() {
    let server = start().await;
    let reply = server.try_login("alice", "wonderland").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .header(header::CONTENT_TYPE)
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    let body = reply.json();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    // access_token, token_type, expires_in, refresh_token, refresh_expires_in.
    assert_eq!(body.as_object().unwrap().len(), 5);

    let claims = claims_of(token);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    // Each login is a session of its own.
    let sid = claims["sid"]
        .as_str()
        .expect("the access token carries a sid");
    assert_eq!(sid.len(), 22);
    let again = claims_of(server.login("alice").await.token.as_str());
    assert_ne!(again["sid"].as_str(), Some(sid));

    let cookie = reply.header(header::SET_COOKIE).unwrap();
    let mut parts = cookie.split("; ");
    assert_eq!(parts.next(), Some(format!("access_token={token}").as_str()));
    let mut attributes: Vec<&str> = parts.collect();
    attributes.sort_unstable();
    assert_eq!(
        attributes,
        [
            "HttpOnly",
            "Max-Age=900",
            "Path=/",
            "SameSite=Lax",
            "Secure"
        ]
    );
    // The access-token cookie, then the refresh-token cookie.
    assert_eq!(reply.headers.get_all(header::SET_COOKIE).iter().count(), 2);
}

#[tokio::test]
async fn cookie_secure_off_and_a_custom_lifetime() {
    let mut config = config();
    config.cookie_secure = false;
    config.token_ttl = Duration::from_secs(120);
    let server = start_with(MemoryStore::new(), config).await;
    let bob = server.login("bob").await;
    assert_eq!(bob.expires_in, 120);
    assert!(!bob.set_cookie.contains("Secure"), "{}", bob.set_cookie);
    assert!(bob.set_cookie.contains("Max-Age=120"));
    let claims = bob.claims();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        120
    );
    server.me(&bob.token).await.assert_ok_subject("bob");
}

#[tokio::test]
async fn wrong_credentials_are_401_with_a_json_error() {
    let server = start().await;
    for (user, pass) in [
        ("alice", "wrong"),
        ("alice", "builder"),
        ("bob", "wonderland"),
        ("mallory", "wonderland"),
        ("", ""),
        ("alice", ""),
        ("Alice", "wonderland"),
        ("alice ", "wonderland"),
        ("alice", "wonderland "),
    ] {
        let reply = server.try_login(user, pass).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{user:?}/{pass:?}");
        let body = reply.json();
        assert_eq!(body["error"], "invalid_credentials");
        assert!(body["error_description"].as_str().is_some());
        assert!(reply.header(header::SET_COOKIE).is_none());
    }
}

#[tokio::test]
async fn malformed_login_bodies_are_clear_4xx_but_not_401() {
    let server = start().await;
    let json_type = Some("application/json");
    let cases: Vec<(Option<&str>, Vec<u8>, StatusCode)> = vec![
        (
            None,
            br#"{"username":"alice","password":"wonderland"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Some("text/plain"),
            br#"{"username":"alice","password":"wonderland"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            Some("application/x-www-form-urlencoded"),
            b"username=alice&password=wonderland".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (json_type, b"not json".to_vec(), StatusCode::BAD_REQUEST),
        (json_type, b"".to_vec(), StatusCode::BAD_REQUEST),
        (
            json_type,
            br#"{"username":"alice","password":"wonderland""#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            json_type,
            br#"{"username":"alice"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json_type,
            br#"{"username":"alice","password":5}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json_type, b"[]".to_vec(), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json_type,
            b"null".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json_type,
            format!(
                r#"{{"username":"alice","password":"{}"}}"#,
                "x".repeat(64 * 1024)
            )
            .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (content_type, body, expected) in cases {
        let mut request = server.request(Method::POST, "/login");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let reply = server.send(request, body).await;
        assert_eq!(reply.status, expected, "{content_type:?} {shown:?}");
        let error = reply.json();
        assert_eq!(error["error"], "invalid_request", "{shown:?}");
        let description = error["error_description"].as_str().unwrap();
        assert!(
            description.contains("\"username\"") && description.len() > 40,
            "{description}"
        );
        assert!(reply.header(header::SET_COOKIE).is_none());
    }
}

// ---------------------------------------------------------------------------------------
// /me, sources, RFC 6750
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn me_by_bearer_and_by_cookie() {
    let server = start().await;
    let alice = server.login("alice").await;

    let reply = server.me(&alice.token).await;
    reply.assert_ok_subject("alice");
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(reply.header(header::CONTENT_TYPE), Some("application/json"));
    let me = reply.json();
    let claims = alice.claims();
    for claim in ["sub", "jti", "iat", "exp"] {
        assert_eq!(me[claim], claims[claim], "{claim}");
    }

    let reply = server.cookie(Method::GET, "/me", &alice.cookie()).await;
    reply.assert_ok_subject("alice");
    assert_eq!(reply.json()["jti"], claims["jti"]);

    // The cookie among others, as a browser sends it.
    let cookies = format!("theme=dark; {}; lang=en", alice.cookie());
    server
        .cookie(Method::GET, "/me", &cookies)
        .await
        .assert_ok_subject("alice");
}

#[tokio::test]
async fn no_token_is_a_bare_bearer_challenge() {
    let server = start().await;
    for (method, path) in [
        (Method::GET, "/me"),
        (Method::POST, "/logout"),
        (Method::POST, "/logout-all"),
    ] {
        let reply = server
            .send(server.request(method, path), Bytes::new())
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
        assert!(reply.header(header::SET_COOKIE).is_none());
    }
    // An empty (cleared) cookie is no token either.
    let reply = server.cookie(Method::GET, "/me", "access_token=").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header(header::WWW_AUTHENTICATE), Some("Bearer"));
}

#[tokio::test]
async fn bearer_wins_over_the_cookie() {
    let server = start().await;
    let alice = server.login("alice").await;
    let bob = server.login("bob").await;
    let both = |bearer: &str| {
        server
            .request(Method::GET, "/me")
            .header(header::AUTHORIZATION, format!("Bearer {bearer}"))
            .header(header::COOKIE, bob.cookie())
    };
    server
        .send(both(&alice.token), Bytes::new())
        .await
        .assert_ok_subject("alice");
    // A bad bearer token is refused even with a good cookie: no fallback.
    server
        .send(both("not.a.token"), Bytes::new())
        .await
        .assert_invalid_token();
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let server = start().await;
    let alice = server.login("alice").await;
    let request = server
        .request(Method::GET, "/me")
        .header(header::AUTHORIZATION, format!("Bearer {}", alice.token))
        .header(header::AUTHORIZATION, format!("Bearer {}", alice.token));
    let reply = server.send(request, Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .header(header::WWW_AUTHENTICATE)
            .unwrap()
            .contains("error=\"invalid_request\"")
    );
}

#[tokio::test]
async fn other_issuers_tokens_with_only_sub_iat_exp_jti_are_accepted() {
    let server = start().await;
    let now = now();
    let token = mint("carol", now, now + 600);
    let reply = server.me(&token).await;
    reply.assert_ok_subject("carol");
    let me = reply.json();
    assert_eq!(me["iat"], now);
    assert_eq!(me["exp"], now + 600);
    assert!(me.get("iat_us").is_none());
    // Also in the cookie, and without a `typ` header.
    let mut header = Header::new(Algorithm::HS256);
    header.typ = None;
    let token = sign(
        &header,
        &json!({ "sub": "carol", "iat": now, "exp": now + 60, "jti": uid() }),
        SECRET,
    );
    server
        .cookie(Method::GET, "/me", &format!("access_token={token}"))
        .await
        .assert_ok_subject("carol");
    // And they can log out like anyone.
    let reply = server.bearer(Method::POST, "/logout", &token).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    server.me(&token).await.assert_invalid_token();
}

#[tokio::test]
async fn hostile_tokens_are_refused() {
    let server = start().await;
    let now = now();
    let b64 = |v: &Value| b64(v.to_string().as_bytes());
    let claims = json!({ "sub": "alice", "iat": now, "exp": now + 600, "jti": uid() });
    let alice = server.login("alice").await;
    let parts: Vec<&str> = alice.token.split('.').collect();
    let rsa_key = EncodingKey::from_rsa_pem(RSA_PRIVATE).expect("test key");

    let hostile: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&claims)
            ),
        ),
        (
            "alg None, signature kept",
            format!("{}.{}.{}", b64(&json!({"alg": "None"})), parts[1], parts[2]),
        ),
        (
            "signed with another secret",
            sign(&Header::new(Algorithm::HS256), &claims, OTHER_SECRET),
        ),
        (
            "payload changed to bob",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&json!({"sub": "bob", "iat": now, "exp": now + 600, "jti": "x"})),
                parts[2]
            ),
        ),
        ("signature stripped", format!("{}.{}.", parts[0], parts[1])),
        (
            "HS512 with the same secret",
            sign(&Header::new(Algorithm::HS512), &claims, SECRET),
        ),
        (
            "RS256 (algorithm confusion)",
            sign_with(&Header::new(Algorithm::RS256), &claims, &rsa_key),
        ),
        ("expired", mint("alice", now - 1000, now - 120)),
        (
            "issued in the future",
            mint("alice", now + 3600, now + 4000),
        ),
        (
            "living longer than a day",
            mint("alice", now, now + 3 * 24 * 3600),
        ),
        (
            "no jti",
            hs256(&json!({ "sub": "alice", "iat": now, "exp": now + 600 })),
        ),
        (
            "no exp",
            hs256(&json!({ "sub": "alice", "iat": now, "jti": uid() })),
        ),
        (
            "exp as a string",
            hs256(
                &json!({ "sub": "alice", "iat": now, "exp": (now + 600).to_string(), "jti": uid() }),
            ),
        ),
        (
            "unknown kid",
            sign(
                &Header {
                    kid: Some("other".into()),
                    ..Header::new(Algorithm::HS256)
                },
                &claims,
                SECRET,
            ),
        ),
        ("garbage", "garbage".into()),
        ("three dots of nothing", "..".into()),
        (
            "oversized",
            format!("{}.{}", alice.token, "A".repeat(9 * 1024)),
        ),
    ];
    for (what, token) in &hostile {
        let reply = server.me(token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "bearer: {what}");
        assert!(
            reply
                .header(header::WWW_AUTHENTICATE)
                .is_some_and(|c| c.contains("error=\"invalid_token\"")),
            "bearer: {what}"
        );
        let reply = server
            .cookie(Method::GET, "/me", &format!("access_token={token}"))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "cookie: {what}");
        // A hostile token cannot log anyone out either.
        let reply = server.bearer(Method::POST, "/logout-all", token).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "logout-all: {what}");
    }
    // Not a token68 at all: a malformed request.
    let reply = server.me("has spaces in it").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Alice's real token was never affected.
    server.me(&alice.token).await.assert_ok_subject("alice");
}

// ---------------------------------------------------------------------------------------
// Logout and logout-all
// ---------------------------------------------------------------------------------------

#[track_caller]
fn assert_clearing_cookie(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    assert!(reply.body.is_empty());
    let cookie = reply.header(header::SET_COOKIE).expect("a clearing cookie");
    assert!(cookie.starts_with("access_token=;"), "{cookie}");
    assert!(
        cookie.contains("Max-Age=0") && cookie.contains("Path=/"),
        "{cookie}"
    );
}

#[tokio::test]
async fn logout_revokes_exactly_the_presented_token() {
    let server = start().await;
    let first = server.login("alice").await;
    let second = server.login("alice").await;

    let reply = server.bearer(Method::POST, "/logout", &first.token).await;
    assert_clearing_cookie(&reply);

    let reply = server.me(&first.token).await;
    reply.assert_invalid_token();
    assert!(
        reply
            .header(header::WWW_AUTHENTICATE)
            .unwrap()
            .contains("revoked")
    );
    server
        .cookie(Method::GET, "/me", &first.cookie())
        .await
        .assert_invalid_token();
    // Logging out twice: the token is already refused.
    server
        .bearer(Method::POST, "/logout", &first.token)
        .await
        .assert_invalid_token();
    // Alice's other session goes on.
    server.me(&second.token).await.assert_ok_subject("alice");
}

#[tokio::test]
async fn logout_by_cookie_from_the_same_origin() {
    let server = start().await;
    let alice = server.login("alice").await;
    let reply = server
        .cookie(Method::POST, "/logout", &alice.cookie())
        .await;
    assert_clearing_cookie(&reply);
    server
        .cookie(Method::GET, "/me", &alice.cookie())
        .await
        .assert_invalid_token();
    server.me(&alice.token).await.assert_invalid_token();
}

#[tokio::test]
async fn logout_all_revokes_every_token_of_the_subject_only() {
    let server = start().await;
    let alice: Vec<Login> = [
        server.login("alice").await,
        server.login("alice").await,
        server.login("alice").await,
    ]
    .into();
    let bob = server.login("bob").await;

    let reply = server
        .cookie(Method::POST, "/logout-all", &alice[1].cookie())
        .await;
    assert_clearing_cookie(&reply);

    for login in &alice {
        server.me(&login.token).await.assert_invalid_token();
        server
            .cookie(Method::GET, "/me", &login.cookie())
            .await
            .assert_invalid_token();
    }
    server.me(&bob.token).await.assert_ok_subject("bob");
    // A new login works again.
    let again = server.login("alice").await;
    server.me(&again.token).await.assert_ok_subject("alice");
    // And bob's own logout-all by bearer leaves alice's new session alone.
    let reply = server.bearer(Method::POST, "/logout-all", &bob.token).await;
    assert_clearing_cookie(&reply);
    server.me(&bob.token).await.assert_invalid_token();
    server.me(&again.token).await.assert_ok_subject("alice");
}

/// A token issued before a logout-all in the same second is refused; one issued right
/// after it in the same second works. The tokens come from the login route, and the
/// test makes sure their `iat` really is the same second (retrying otherwise).
#[tokio::test]
async fn same_second_logins_around_a_logout_all() {
    let server = start().await;
    for _ in 0..10 {
        start_of_a_second().await;
        let before = server.login("alice").await;
        let actor = server.login("alice").await;
        let reply = server
            .bearer(Method::POST, "/logout-all", &actor.token)
            .await;
        assert_clearing_cookie(&reply);
        let after = server.login("alice").await;
        if !(before.iat() == actor.iat() && actor.iat() == after.iat()) {
            continue; // crossed a second boundary: try again
        }
        server.me(&before.token).await.assert_invalid_token();
        server.me(&actor.token).await.assert_invalid_token();
        server.me(&after.token).await.assert_ok_subject("alice");
        server
            .cookie(Method::GET, "/me", &after.cookie())
            .await
            .assert_ok_subject("alice");
        return;
    }
    panic!("never managed three logins and a logout-all within one second");
}

/// Tokens from other issuers have whole-second `iat` only: one issued in the second of
/// the logout-all is refused (it may have been issued before it), one from a later
/// second is accepted.
#[tokio::test]
async fn same_second_external_tokens_around_a_logout_all() {
    let server = start().await;
    for _ in 0..10 {
        start_of_a_second().await;
        let second = now();
        let earlier = mint("alice", second - 5, second + 600);
        let actor = server.login("alice").await;
        let reply = server
            .bearer(Method::POST, "/logout-all", &actor.token)
            .await;
        assert_clearing_cookie(&reply);
        if now() != second || actor.iat() != second {
            continue; // the logout-all's second is not known for sure: try again
        }
        let same_second = mint("alice", second, second + 600);
        server.me(&earlier.clone()).await.assert_invalid_token();
        server.me(&same_second).await.assert_invalid_token();
        // A later second: minted once the clock has moved on.
        while now() == second {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let later = mint("alice", now(), now() + 600);
        server.me(&later).await.assert_ok_subject("alice");
        // Other subjects were never affected.
        server
            .me(&mint("bob", second, second + 600))
            .await
            .assert_ok_subject("bob");
        return;
    }
    panic!("never managed a logout-all within one known second");
}

// ---------------------------------------------------------------------------------------
// Cross-origin cookie requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn cross_site_cookie_posts_are_refused_but_bearer_posts_pass() {
    let server = start().await;
    let alice = server.login("alice").await;
    let cross_site = |path: &str| {
        server
            .request(Method::POST, path)
            .header(header::COOKIE, alice.cookie())
            .header("sec-fetch-site", "cross-site")
            .header(header::ORIGIN, "https://evil.example")
    };
    let origin_mismatch = |path: &str| {
        server
            .request(Method::POST, path)
            .header(header::COOKIE, alice.cookie())
            .header(header::ORIGIN, "https://evil.example")
    };
    let same_site_other_port = |path: &str| {
        server
            .request(Method::POST, path)
            .header(header::COOKIE, alice.cookie())
            .header("sec-fetch-site", "same-site")
    };
    for path in ["/logout", "/logout-all"] {
        for request in [
            cross_site(path),
            origin_mismatch(path),
            same_site_other_port(path),
        ] {
            let reply = server.send(request, Bytes::new()).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}");
            assert!(reply.header(header::SET_COOKIE).is_none());
        }
    }
    // Nothing was logged out.
    server.me(&alice.token).await.assert_ok_subject("alice");
    // A cross-site GET is not refused (safe method).
    let reply = server
        .send(
            server
                .request(Method::GET, "/me")
                .header(header::COOKIE, alice.cookie())
                .header("sec-fetch-site", "cross-site"),
            Bytes::new(),
        )
        .await;
    reply.assert_ok_subject("alice");

    // The same cross-site request carrying the token in the Authorization header passes:
    // a browser never adds that header to another site's request.
    let reply = server
        .send(
            server
                .request(Method::POST, "/logout")
                .header(header::AUTHORIZATION, format!("Bearer {}", alice.token))
                .header("sec-fetch-site", "cross-site")
                .header(header::ORIGIN, "https://evil.example"),
            Bytes::new(),
        )
        .await;
    assert_clearing_cookie(&reply);
    server.me(&alice.token).await.assert_invalid_token();
}

#[tokio::test]
async fn same_origin_and_non_browser_cookie_posts_pass() {
    let server = start().await;
    // Origin equal to the Host, no Sec-Fetch-Site (an older browser).
    let alice = server.login("alice").await;
    let request = server
        .request(Method::POST, "/logout")
        .header(header::COOKIE, alice.cookie())
        .header(header::ORIGIN, server.origin());
    assert_clearing_cookie(&server.send(request, Bytes::new()).await);
    // Neither Origin nor Sec-Fetch-Site: not a browser (curl).
    let bob = server.login("bob").await;
    let request = server
        .request(Method::POST, "/logout")
        .header(header::COOKIE, bob.cookie());
    assert_clearing_cookie(&server.send(request, Bytes::new()).await);
    server.me(&bob.token).await.assert_invalid_token();
}

// ---------------------------------------------------------------------------------------
// Concurrency
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_get_their_own_answers() {
    let server = std::sync::Arc::new(start().await);
    let mut logins = Vec::new();
    for i in 0..20 {
        let user = if i % 2 == 0 { "alice" } else { "bob" };
        logins.push((user, server.login(user).await));
    }
    let logins = std::sync::Arc::new(logins);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let server = std::sync::Arc::clone(&server);
        let logins = std::sync::Arc::clone(&logins);
        tasks.spawn(async move {
            let (user, login) = &logins[i % logins.len()];
            let reply = if i % 3 == 0 {
                server.cookie(Method::GET, "/me", &login.cookie()).await
            } else {
                server.me(&login.token).await
            };
            reply.assert_ok_subject(user);
            assert_eq!(reply.json()["jti"], login.claims()["jti"]);
        });
    }
    let mut done = 0;
    while let Some(result) = tasks.join_next().await {
        result.expect("a request task failed");
        done += 1;
    }
    assert_eq!(done, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_and_logouts() {
    let server = std::sync::Arc::new(start().await);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let server = std::sync::Arc::clone(&server);
        tasks.spawn(async move {
            let user = if i % 2 == 0 { "alice" } else { "bob" };
            let login = server.login(user).await;
            server.me(&login.token).await.assert_ok_subject(user);
            let reply = server.bearer(Method::POST, "/logout", &login.token).await;
            assert_clearing_cookie(&reply);
            server.me(&login.token).await.assert_invalid_token();
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("a login/logout task failed");
    }
}

// ---------------------------------------------------------------------------------------
// A store that cannot record a logout
// ---------------------------------------------------------------------------------------

/// A store that answers checks but fails every revocation: a fake for the fault path.
struct FailingStore;

#[derive(Debug)]
struct StoreDown;

impl fmt::Display for StoreDown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the store is down")
    }
}

impl Error for StoreDown {}

impl RevocationStore for FailingStore {
    type Error = StoreDown;
    type CheckFuture = Ready<Result<RevocationStatus, StoreDown>>;

    fn check(&self, _: &TokenInfo) -> Check<Self::CheckFuture> {
        Check::Ready(Ok(RevocationStatus::Active))
    }

    async fn revoke(&self, _: &RevokedToken<'_>) -> Result<(), StoreDown> {
        Err(StoreDown)
    }

    async fn revoke_subject(&self, _: &SubjectCutoff<'_>) -> Result<(), StoreDown> {
        Err(StoreDown)
    }

    async fn revoke_session(
        &self,
        _: &tower_jwt_auth::RevokedSession<'_>,
    ) -> Result<(), StoreDown> {
        Err(StoreDown)
    }
}

impl tower_jwt_auth::SessionStore for FailingStore {
    async fn create_refresh(&self, _: &tower_jwt_auth::RefreshRecord<'_>) -> Result<(), StoreDown> {
        Err(StoreDown)
    }

    async fn rotate_refresh(
        &self,
        _: &tower_jwt_auth::Rotation<'_>,
    ) -> Result<tower_jwt_auth::RotateOutcome, StoreDown> {
        Err(StoreDown)
    }
}

#[tokio::test]
async fn a_logout_the_store_cannot_record_is_503_and_keeps_the_cookie() {
    let server = start_with(FailingStore, config()).await;
    let alice = server.login("alice").await;
    for path in ["/logout", "/logout-all"] {
        for reply in [
            server.bearer(Method::POST, path, &alice.token).await,
            server.cookie(Method::POST, path, &alice.cookie()).await,
        ] {
            assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
            assert!(reply.header(header::SET_COOKIE).is_none(), "{path}");
            assert_eq!(reply.header(header::RETRY_AFTER), Some("1"));
            let body = reply.json();
            assert_eq!(body["error"], "temporarily_unavailable");
            assert!(body["error_description"].as_str().is_some());
        }
    }
    // The logout did not happen, and the server says so: the token still works.
    server.me(&alice.token).await.assert_ok_subject("alice");
}

// ---------------------------------------------------------------------------------------
// Configuration from the environment
// ---------------------------------------------------------------------------------------

fn env(vars: &[(&str, &str)]) -> Result<app::Config, String> {
    app::Config::from_lookup(|name| {
        Ok(vars
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned()))
    })
}

#[test]
fn configuration_defaults() {
    let config = env(&[]).unwrap();
    assert_eq!(config.addr, "127.0.0.1:3000".parse().unwrap());
    assert!(config.secret_generated);
    assert_eq!(config.token_ttl, Duration::from_secs(900));
    assert!(config.cookie_secure);
    assert!(config.redis_url.is_none());
    assert_eq!(
        config.token_cache,
        tower_jwt_auth::DEFAULT_TOKEN_CACHE_CAPACITY
    );
}

#[test]
fn configuration_from_variables() {
    let secret = "a-secret-from-the-environment-0123456789";
    let config = env(&[
        ("ADDR", "0.0.0.0:8080"),
        ("JWT_SECRET", secret),
        ("ACCESS_TOKEN_TTL", "60"),
        ("COOKIE_SECURE", "0"),
        ("REDIS_URL", "redis://:password@127.0.0.1:6379"),
    ])
    .unwrap();
    assert_eq!(config.addr, "0.0.0.0:8080".parse().unwrap());
    assert!(!config.secret_generated);
    assert_eq!(config.token_ttl, Duration::from_secs(60));
    assert!(!config.cookie_secure);
    assert_eq!(
        config.redis_url.as_ref().map(|u| u.0.as_str()),
        Some("redis://:password@127.0.0.1:6379")
    );
    let debug = format!("{config:?}");
    assert!(
        !debug.contains(secret) && !debug.contains("password"),
        "{debug}"
    );
    assert!(env(&[("COOKIE_SECURE", "1")]).unwrap().cookie_secure);
    assert_eq!(env(&[("JWT_TOKEN_CACHE", "0")]).unwrap().token_cache, 0);
    assert_eq!(
        env(&[("JWT_TOKEN_CACHE", " 500 ")]).unwrap().token_cache,
        500
    );
}

#[test]
fn bad_configuration_is_refused_without_showing_the_secret() {
    for vars in [
        &[("ADDR", "localhost")][..],
        &[("ACCESS_TOKEN_TTL", "0")],
        &[("ACCESS_TOKEN_TTL", "15m")],
        &[("COOKIE_SECURE", "maybe")],
        &[("JWT_SECRET", "short-secret")],
        &[("JWT_TOKEN_CACHE", "-1")],
        &[("JWT_TOKEN_CACHE", "lots")],
    ] {
        let message = env(vars).expect_err("refused");
        assert!(message.contains(vars[0].0), "{message}");
        assert!(!message.contains("short-secret"), "{message}");
    }
}

#[test]
fn redis_high_availability_settings() {
    let config = env(&[
        (
            "REDIS_SENTINELS",
            "127.0.0.1:26379, sentinel-2.internal:26380,[::1]:26381",
        ),
        ("REDIS_SENTINEL_MASTER", "revocations"),
        ("REDIS_MIN_REPLICAS", "1"),
        ("REDIS_WAIT_TIMEOUT_MS", "250"),
    ])
    .unwrap();
    assert!(config.redis_url.is_none());
    assert_eq!(
        config.redis_sentinel,
        Some((
            vec![
                "127.0.0.1:26379".to_owned(),
                "sentinel-2.internal:26380".to_owned(),
                "[::1]:26381".to_owned()
            ],
            "revocations".to_owned()
        ))
    );
    assert_eq!(config.redis_min_replicas, 1);
    assert_eq!(config.redis_wait_timeout, Some(Duration::from_millis(250)));
    assert!(config.redis_cluster.is_none());
    let plain = env(&[("REDIS_URL", "redis://127.0.0.1:6379")]).unwrap();
    assert_eq!(plain.redis_min_replicas, 0);
    assert!(plain.redis_sentinel.is_none() && plain.redis_wait_timeout.is_none());
    assert!(plain.redis_cluster.is_none());
    let cluster = env(&[
        (
            "REDIS_CLUSTER_NODES",
            "127.0.0.1:7000, node-2.internal:7001,[::1]:7002",
        ),
        ("REDIS_MIN_REPLICAS", "1"),
    ])
    .unwrap();
    assert!(cluster.redis_url.is_none() && cluster.redis_sentinel.is_none());
    assert_eq!(
        cluster.redis_cluster,
        Some(vec![
            "127.0.0.1:7000".to_owned(),
            "node-2.internal:7001".to_owned(),
            "[::1]:7002".to_owned()
        ])
    );
    assert_eq!(cluster.redis_min_replicas, 1);
}

#[test]
fn bad_redis_high_availability_settings_are_refused_clearly() {
    let sentinel = ("REDIS_SENTINELS", "127.0.0.1:26379");
    let master = ("REDIS_SENTINEL_MASTER", "revocations");
    for (vars, names) in [
        (
            &[sentinel][..],
            &["REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"][..],
        ),
        (&[master], &["REDIS_SENTINEL_MASTER", "REDIS_SENTINELS"]),
        (
            &[("REDIS_SENTINELS", "127.0.0.1"), master],
            &["REDIS_SENTINELS", "host:port"],
        ),
        (
            &[("REDIS_SENTINELS", "127.0.0.1:26379,,"), master],
            &["REDIS_SENTINELS"],
        ),
        (
            &[("REDIS_SENTINELS", "redis://127.0.0.1:26379"), master],
            &["REDIS_SENTINELS"],
        ),
        (
            &[
                sentinel,
                master,
                ("REDIS_URL", "redis://:password@127.0.0.1:6379"),
            ],
            &["REDIS_URL", "REDIS_SENTINELS"],
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("REDIS_MIN_REPLICAS", "-1"),
            ],
            &["REDIS_MIN_REPLICAS"],
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("REDIS_MIN_REPLICAS", "one"),
            ],
            &["REDIS_MIN_REPLICAS"],
        ),
        (
            &[("REDIS_MIN_REPLICAS", "1")],
            &["REDIS_MIN_REPLICAS", "REDIS_URL"],
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("REDIS_WAIT_TIMEOUT_MS", "0"),
            ],
            &["REDIS_WAIT_TIMEOUT_MS"],
        ),
        (
            &[
                ("REDIS_URL", "redis://127.0.0.1:6379"),
                ("REDIS_WAIT_TIMEOUT_MS", "1s"),
            ],
            &["REDIS_WAIT_TIMEOUT_MS"],
        ),
        (
            &[
                ("REDIS_URL", "redis://:password@127.0.0.1:6379"),
                ("REDIS_CLUSTER_NODES", "127.0.0.1:7000,127.0.0.1:7001"),
            ],
            &["REDIS_CLUSTER_NODES", "REDIS_URL", "both set"],
        ),
        (
            &[
                sentinel,
                master,
                ("REDIS_CLUSTER_NODES", "127.0.0.1:7000,127.0.0.1:7001"),
            ],
            &["REDIS_CLUSTER_NODES", "REDIS_SENTINELS", "both set"],
        ),
        (
            &[(
                "REDIS_CLUSTER_NODES",
                "127.0.0.1:7000,redis://127.0.0.1:7001",
            )],
            &["REDIS_CLUSTER_NODES", "host:port"],
        ),
    ] {
        let message = env(vars).expect_err("refused");
        for name in names {
            assert!(message.contains(name), "{vars:?}: {message}");
        }
        assert!(!message.contains("password"), "{message}");
    }
}

#[tokio::test]
async fn a_token_from_one_secret_is_refused_by_a_server_with_another() {
    // Two servers with random secrets (JWT_SECRET unset) do not accept each other's tokens.
    let one = start_with(MemoryStore::new(), env(&[]).unwrap()).await;
    let two = start_with(MemoryStore::new(), env(&[]).unwrap()).await;
    let alice = one.login("alice").await;
    one.me(&alice.token).await.assert_ok_subject("alice");
    two.me(&alice.token).await.assert_invalid_token();
}

// ---------------------------------------------------------------------------------------
// Sessions and refresh tokens
// ---------------------------------------------------------------------------------------

/// The `Set-Cookie` header for `name`, if the reply sets it.
fn set_cookie<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(&format!("{name}=")))
}

impl Server {
    async fn refresh_json(&self, token: &str) -> Reply {
        self.post_json("/refresh", &json!({ "refresh_token": token }))
            .await
    }
}

fn assert_invalid_grant(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().is_some());
}

#[tokio::test]
async fn login_hands_out_a_refresh_token_and_its_cookie() {
    let server = start().await;
    let reply = server.try_login("alice", password("alice")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let body = reply.json();
    let refresh = body["refresh_token"].as_str().unwrap();
    assert!(refresh.len() >= 22, "at least 128 bits");
    assert_eq!(body["refresh_expires_in"].as_u64(), Some(1_209_600));
    let cookie = set_cookie(&reply, app::REFRESH_COOKIE_NAME).unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/refresh",
        "Max-Age=1209600",
        "Secure",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(cookie.contains(refresh));
    let access = claims_of(body["access_token"].as_str().unwrap());
    assert!(access["sid"].as_str().is_some());
}

#[tokio::test]
async fn refresh_rotates_and_a_reuse_ends_the_session() {
    let server = start().await;
    let login = server.try_login("alice", password("alice")).await.json();
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let sid = claims_of(login["access_token"].as_str().unwrap())["sid"].clone();

    let reply = server.refresh_json(&first).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert!(set_cookie(&reply, app::COOKIE_NAME).is_some());
    assert!(set_cookie(&reply, app::REFRESH_COOKIE_NAME).is_some());
    let body = reply.json();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().is_some());
    assert!(body["refresh_expires_in"].as_u64().is_some());
    assert_eq!(claims_of(&access)["sid"], sid);
    server.me(&access).await.assert_ok_subject("alice");

    // The old refresh token again: reuse. 401, and the whole session is over.
    let reused = server.refresh_json(&first).await;
    assert_invalid_grant(&reused);
    server.me(&access).await.assert_invalid_token();
    assert_invalid_grant(&server.refresh_json(&second).await);
}

#[tokio::test]
async fn refresh_from_the_cookie_same_origin_only() {
    let server = start().await;
    let login = server.try_login("bob", password("bob")).await.json();
    let token = login["refresh_token"].as_str().unwrap().to_owned();
    let cookie = format!("{}={token}", app::REFRESH_COOKIE_NAME);
    // Another site's request carrying the cookie: refused, the token left alone.
    let cross = server
        .send(
            server
                .request(Method::POST, "/refresh")
                .header(header::COOKIE, &cookie)
                .header(header::ORIGIN, "https://evil.example")
                .header("sec-fetch-site", "cross-site"),
            Bytes::new(),
        )
        .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let same = server.cookie(Method::POST, "/refresh", &cookie).await;
    assert_eq!(same.status, StatusCode::OK, "{:?}", same.body);
    assert!(same.json()["refresh_token"].as_str().is_some());
}

#[tokio::test]
async fn logout_and_logout_all_kill_refresh_tokens_and_clear_the_cookie() {
    let server = start().await;
    let login = server.try_login("alice", password("alice")).await.json();
    let other = server.try_login("alice", password("alice")).await.json();
    let access = login["access_token"].as_str().unwrap();
    let reply = server.bearer(Method::POST, "/logout", access).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let cleared = set_cookie(&reply, app::REFRESH_COOKIE_NAME).unwrap();
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Path=/refresh"),
        "{cleared}"
    );
    assert_invalid_grant(
        &server
            .refresh_json(login["refresh_token"].as_str().unwrap())
            .await,
    );
    // The other session lives on, until a logout everywhere.
    let next = server
        .refresh_json(other["refresh_token"].as_str().unwrap())
        .await
        .json();
    let third = server.try_login("alice", password("alice")).await.json();
    let reply = server
        .bearer(
            Method::POST,
            "/logout-all",
            next["access_token"].as_str().unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(set_cookie(&reply, app::REFRESH_COOKIE_NAME).is_some());
    for t in [&next, &third] {
        assert_invalid_grant(
            &server
                .refresh_json(t["refresh_token"].as_str().unwrap())
                .await,
        );
    }
}

#[tokio::test]
async fn hostile_refresh_input_is_4xx() {
    let server = start().await;
    let alice = server.login("alice").await;
    let long = "a".repeat(600);
    for token in [
        "",
        "not a token",
        "é",
        long.as_str(),
        alice.token.as_str(),
        "AAAA",
    ] {
        assert_invalid_grant(&server.refresh_json(token).await);
    }
    for body in [
        "{",
        "[]",
        "{\"refresh_token\": 5}",
        "\"x\"",
        "{\"other\": \"x\"}",
    ] {
        let reply = server
            .send(
                server
                    .request(Method::POST, "/refresh")
                    .header(header::CONTENT_TYPE, "application/json"),
                body,
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.json()["error"], "invalid_request");
    }
    // No body and no cookie.
    let reply = server
        .send(server.request(Method::POST, "/refresh"), Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // A body over the limit.
    let reply = server
        .send(
            server
                .request(Method::POST, "/refresh")
                .header(header::CONTENT_TYPE, "application/json"),
            format!("{{\"refresh_token\": \"{}\"}}", "a".repeat(10_000)),
        )
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    // Still serving.
    server.me(&alice.token).await.assert_ok_subject("alice");
}

#[tokio::test]
async fn a_refresh_the_store_cannot_record_is_503() {
    let server = start_with(FailingStore, config()).await;
    // Login still works (access token only, no refresh token recorded).
    let reply = server.try_login("alice", password("alice")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json()["refresh_token"].is_null());
    let reply = server
        .refresh_json("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.json()["error"], "temporarily_unavailable");
}

#[test]
fn refresh_settings_from_the_environment() {
    let c = env(&[]).unwrap();
    assert_eq!(c.refresh_ttl, Duration::from_secs(1_209_600));
    assert_eq!(c.refresh_reuse_interval, Duration::ZERO);
    let c = env(&[
        ("REFRESH_TOKEN_TTL", "60"),
        ("REFRESH_REUSE_INTERVAL_MS", "250"),
    ])
    .unwrap();
    assert_eq!(c.refresh_ttl, Duration::from_secs(60));
    assert_eq!(c.refresh_reuse_interval, Duration::from_millis(250));
    assert!(env(&[("REFRESH_TOKEN_TTL", "0")]).is_err());
    assert!(env(&[("REFRESH_REUSE_INTERVAL_MS", "x")]).is_err());
}
