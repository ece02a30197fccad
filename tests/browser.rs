//! A real browser against the example server (`cargo run --features example-server --bin server`).
//!
//! Headless Chromium, driven through chromedriver's W3C WebDriver HTTP API (plain JSON
//! over HTTP on loopback), uses the example's own page (`examples/server/index.html`) as
//! a person would: it types into `#username` and `#password`, presses `#login`, `#me`
//! and `#logout`, and reads `#status` and `#output`. The token cookie is `HttpOnly`, so
//! the page's script cannot see it: the test reads the browser's cookie jar through
//! WebDriver's cookie API and through the DevTools protocol, and calls the server with
//! its own HTTP client. A recording layer around the example's router shows what the
//! browser really sent (`Sec-Fetch-Site`, `Origin`, the cookie) and what it got back.
//!
//! These tests need Chromium and chromedriver (Debian: `chromium` and `chromium-driver`),
//! so a plain `cargo test` skips them. Run them with
//!
//! ```text
//! scripts/browser-test                      # installs the packages when missing, then:
//! cargo test --test browser -- --ignored
//! ```
//!
//! `CHROMIUM` and `CHROMEDRIVER` name the binaries when they are not on `PATH`.

// The test serves the example's router; the environment parsing is `main.rs`'s.
#[allow(dead_code)]
#[path = "../examples/server/app.rs"]
mod app;

use std::fs::{self, File};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::middleware::{self, Next};
use axum::response::Html;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::{sleep, timeout};
use tower_jwt_auth::{MemoryStore, Rejection, RejectionKind};

const SECRET: &[u8] = b"browser-test-secret-that-is-at-least-32-bytes";

/// The longest a whole test may take; the browser is shut down when it is exceeded.
const TEST_TIMEOUT: Duration = Duration::from_secs(45);
/// The longest chromedriver may take to start and to start Chromium.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest one WebDriver command or one HTTP request may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest the page may take to show an answer.
const UI_TIMEOUT: Duration = Duration::from_secs(5);

/// Chromium's flags: headless, and able to run as root in a container.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

// ---------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------

#[tokio::test]
#[ignore = "needs chromium and chromium-driver: see scripts/browser-test"]
async fn log_in_see_the_user_log_out_and_the_old_token_is_refused() {
    within_time_limit(async {
        let app = App::start().await;
        let browser = Browser::start().await;
        browser.goto(&app.url("/")).await;

        // Not logged in yet: no cookie, and the page's "Who am I?" is refused.
        assert_eq!(browser.token_cookie().await, None);
        let shown = browser.press("me").await;
        assert_eq!(shown.status, 401, "{shown:?}");

        let token = browser.log_in("alice", "wonderland").await;
        assert_eq!(claims_of(&token)["sub"], "alice");
        // The page's own script cannot read the HttpOnly cookie.
        assert_eq!(browser.execute("return document.cookie").await, json!(""));

        // See the user: the page and the test's own client.
        let shown = browser.press("me").await;
        assert_eq!(shown.status, 200, "{shown:?}");
        let me: Value = serde_json::from_str(&shown.output).expect("#output shows JSON");
        assert_eq!(me["sub"], "alice");
        assert_eq!(me["jti"], claims_of(&token)["jti"]);
        app.me_bearer(&token).await.assert_subject("alice");

        // Log out through the page.
        let mark = app.recorder.len();
        let shown = browser.press("logout").await;
        assert_eq!(shown.status, 204, "{shown:?}");
        assert!(shown.line.starts_with("POST /logout"), "{shown:?}");
        let seen = app.recorder.posts_since(mark);
        assert_eq!(seen.len(), 1, "{seen:#?}");
        assert_eq!(seen[0].path, "/logout");
        assert_eq!(seen[0].sec_fetch_site.as_deref(), Some("same-origin"));
        assert_eq!(seen[0].cookie_token.as_deref(), Some(token.as_str()));
        assert_eq!(seen[0].status, StatusCode::NO_CONTENT);

        // The cookie is gone from the browser's jar (both views of it)...
        assert_eq!(browser.token_cookie().await, None);
        assert_eq!(browser.devtools_token_cookie(&app.origin).await, None);
        // ...and the old token is refused, even when presented by someone who kept it.
        app.me_bearer(&token).await.assert_invalid_token();
        app.me_cookie(&token).await.assert_invalid_token();
        let shown = browser.press("me").await;
        assert_eq!(shown.status, 401, "{shown:?}");
    })
    .await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver: see scripts/browser-test"]
async fn a_same_site_page_on_another_port_cannot_log_the_user_out() {
    within_time_limit(async {
        let app = App::start().await;
        let other = start_other_origin(&app.origin).await;
        let browser = Browser::start().await;
        browser.goto(&app.url("/")).await;
        let token = browser.log_in("alice", "wonderland").await;

        // Another origin of the same site (same host, another port) posts to /logout
        // twice: a no-cors fetch with credentials as it loads, then a form the user
        // submits. The browser attaches the SameSite=Lax cookie to both.
        let mark = app.recorder.len();
        browser.goto(&format!("{other}/evil.html")).await;
        let fetched = wait_for("the other origin's fetch to finish", async || {
            let done = browser.attribute("#fetch", "data-done").await?;
            (!done.is_empty()).then_some(done)
        })
        .await;
        assert_eq!(
            fetched,
            "answered",
            "{}",
            browser.text("#fetch").await.unwrap_or_default()
        );
        browser.click("#submit").await;
        let logout_url = app.url("/logout");
        wait_for("the form's navigation to /logout", async || {
            (browser.current_url().await == logout_url).then_some(())
        })
        .await;

        // The server saw both, with the cookie, and refused both as cross-origin.
        let posts = wait_for("both posts to reach the server", async || {
            let posts = app.recorder.posts_since(mark);
            (posts.len() >= 2).then_some(posts)
        })
        .await;
        assert_eq!(posts.len(), 2, "{posts:#?}");
        for post in &posts {
            assert_eq!(post.path, "/logout", "{post:?}");
            assert_eq!(
                post.sec_fetch_site.as_deref(),
                Some("same-site"),
                "{post:?}"
            );
            assert_eq!(post.origin.as_deref(), Some(other.as_str()), "{post:?}");
            assert_eq!(
                post.cookie_token.as_deref(),
                Some(token.as_str()),
                "the browser sent the cookie: {post:?}"
            );
            assert_eq!(post.status, StatusCode::FORBIDDEN, "{post:?}");
            assert_eq!(post.rejection, Some(RejectionKind::CrossOrigin), "{post:?}");
            assert!(!post.set_cookie, "a refused logout clears no cookie");
        }
        let modes: Vec<Option<&str>> = posts.iter().map(|p| p.sec_fetch_mode.as_deref()).collect();
        assert_eq!(modes, [Some("no-cors"), Some("navigate")]);

        // The user is still logged in with the same token: it is still in the jar, the
        // page still shows alice, and the token was not revoked.
        assert_eq!(
            browser.devtools_token_cookie(&app.origin).await.as_deref(),
            Some(token.as_str())
        );
        browser.goto(&app.url("/")).await;
        assert_eq!(
            browser.token_cookie().await.map(|c| c.value),
            Some(token.clone())
        );
        let shown = browser.press("me").await;
        assert_eq!(shown.status, 200, "{shown:?}");
        let me: Value = serde_json::from_str(&shown.output).expect("#output shows JSON");
        assert_eq!(me["sub"], "alice");
        assert_eq!(me["jti"], claims_of(&token)["jti"]);
        app.me_bearer(&token).await.assert_subject("alice");
        app.me_cookie(&token).await.assert_subject("alice");

        // The same post from the page's own origin is accepted: the refusal above was the
        // cross-origin rule, not a broken logout.
        let shown = browser.press("logout").await;
        assert_eq!(shown.status, 204, "{shown:?}");
        assert_eq!(browser.token_cookie().await, None);
        app.me_bearer(&token).await.assert_invalid_token();
    })
    .await;
}

/// Runs a test body, failing it (and so shutting the browser down) after
/// [`TEST_TIMEOUT`].
async fn within_time_limit(test: impl Future<Output = ()>) {
    if timeout(TEST_TIMEOUT, test).await.is_err() {
        panic!("the test did not finish within {TEST_TIMEOUT:?}");
    }
}

/// Polls `probe` every 50 ms until it answers, for at most [`UI_TIMEOUT`].
async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + UI_TIMEOUT;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {UI_TIMEOUT:?} waiting for {what}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// The payload of a compact JWT, unverified.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a compact JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
        .expect("JSON claims")
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An answer: status, headers and the whole body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    #[track_caller]
    fn assert_subject(&self, subject: &str) {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        let claims: Value = serde_json::from_slice(&self.body).expect("JSON claims");
        assert_eq!(claims["sub"], subject);
    }

    /// A 401 with `error="invalid_token"` in the RFC 6750 challenge.
    #[track_caller]
    fn assert_invalid_token(&self) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{:?}", self.body);
        let challenge = self
            .headers
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .expect("a WWW-Authenticate challenge");
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{challenge}"
        );
    }
}

/// Sends `request`, failing after [`COMMAND_TIMEOUT`].
async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Reply {
    let what = format!("{} {}", request.method(), request.uri());
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match timeout(COMMAND_TIMEOUT, exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: no answer within {COMMAND_TIMEOUT:?}"),
    }
}

/// Serves `router` on a free port of 127.0.0.1.
async fn serve(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serving") });
    addr
}

// ---------------------------------------------------------------------------------------
// The example server, with a record of what it saw
// ---------------------------------------------------------------------------------------

/// One request the example server answered.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    sec_fetch_site: Option<String>,
    sec_fetch_mode: Option<String>,
    origin: Option<String>,
    /// The `access_token` cookie the request carried.
    cookie_token: Option<String>,
    status: StatusCode,
    /// The auth layer's reason, when it refused the request.
    rejection: Option<RejectionKind>,
    /// Whether the answer set a cookie.
    set_cookie: bool,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The `POST`s seen after the first `mark` requests (the browser may also fetch
    /// `/favicon.ico` at any time).
    fn posts_since(&self, mark: usize) -> Vec<Seen> {
        self.0.lock().unwrap()[mark..]
            .iter()
            .filter(|seen| seen.method == Method::POST)
            .cloned()
            .collect()
    }

    fn push(&self, seen: Seen) {
        self.0.lock().unwrap().push(seen);
    }
}

/// The example server on a real port, wrapped in a recording layer.
struct App {
    origin: String,
    recorder: Recorder,
    client: HttpClient,
}

impl App {
    /// The example's router with its defaults (`Secure`, `HttpOnly`, `SameSite=Lax`
    /// cookie; Chromium keeps `Secure` cookies from `http://127.0.0.1`).
    async fn start() -> Self {
        let config = app::Config::new(app::Secret::new(SECRET));
        let recorder = Recorder::default();
        let record = recorder.clone();
        let router = app::router(MemoryStore::new(), &config)
            .expect("the example's router builds")
            .layer(middleware::from_fn(
                move |request: axum::extract::Request, next: Next| {
                    let record = record.clone();
                    async move {
                        let headers = request.headers();
                        let text = |name: &str| {
                            headers
                                .get(name)
                                .map(|v| v.to_str().unwrap_or("(not ASCII)").to_owned())
                        };
                        let mut seen = Seen {
                            method: request.method().clone(),
                            path: request.uri().path().to_owned(),
                            sec_fetch_site: text("sec-fetch-site"),
                            sec_fetch_mode: text("sec-fetch-mode"),
                            origin: text("origin"),
                            cookie_token: cookie_token(headers),
                            status: StatusCode::IM_A_TEAPOT,
                            rejection: None,
                            set_cookie: false,
                        };
                        let response = next.run(request).await;
                        seen.status = response.status();
                        seen.rejection = response.extensions().get::<Rejection>().map(|r| r.kind());
                        seen.set_cookie = response.headers().contains_key(header::SET_COOKIE);
                        record.push(seen);
                        response
                    }
                },
            ));
        let addr = serve(router).await;
        Self {
            origin: format!("http://{addr}"),
            recorder,
            client: http_client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// `GET /me` with `Authorization: Bearer token`, from the test's own client.
    async fn me_bearer(&self, token: &str) -> Reply {
        let request = Request::get(self.url("/me"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Full::default())
            .unwrap();
        send(&self.client, request).await
    }

    /// `GET /me` with the token in the cookie, from the test's own client.
    async fn me_cookie(&self, token: &str) -> Reply {
        let request = Request::get(self.url("/me"))
            .header(header::COOKIE, format!("{}={token}", app::COOKIE_NAME))
            .body(Full::default())
            .unwrap();
        send(&self.client, request).await
    }
}

/// The `access_token` cookie's value in a request's `Cookie` headers.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == app::COOKIE_NAME).then(|| value.to_owned())
        })
}

/// A page of another origin of the same site: it posts to `TARGET/logout` with the
/// cookie as it loads (a no-cors fetch), and again when `#submit` is pressed (a form).
const OTHER_ORIGIN_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>another origin</title></head>
<body>
<p>Same host, another port: same site, another origin.</p>
<form method="POST" action="TARGET/logout">
  <button id="submit" type="submit">Win a prize</button>
</form>
<div id="fetch" data-done="">pending</div>
<script>
"use strict";
const out = document.getElementById("fetch");
fetch("TARGET/logout", { method: "POST", credentials: "include", mode: "no-cors" }).then(
  (response) => { out.textContent = "answered: " + response.type; out.dataset.done = "answered"; },
  (error) => { out.textContent = "network error: " + error; out.dataset.done = "error"; });
</script>
</body>
</html>
"#;

/// Serves [`OTHER_ORIGIN_PAGE`] at `/evil.html` on another port; returns its origin.
async fn start_other_origin(target: &str) -> String {
    let page = OTHER_ORIGIN_PAGE.replace("TARGET", target);
    let router = Router::new().route("/evil.html", get(move || async move { Html(page) }));
    format!("http://{}", serve(router).await)
}

// ---------------------------------------------------------------------------------------
// The browser: chromedriver and Chromium
// ---------------------------------------------------------------------------------------

/// Where Chromium and chromedriver are.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

/// Finds the binaries (`$CHROMIUM` / `$CHROMEDRIVER`, else on `PATH`) or fails saying how
/// to install them.
fn tools() -> Tools {
    fn find(variable: &str, names: &[&str]) -> Option<PathBuf> {
        if let Some(path) = std::env::var_os(variable) {
            let path = PathBuf::from(path);
            return path.is_file().then_some(path);
        }
        let dirs = std::env::var_os("PATH")?;
        std::env::split_paths(&dirs)
            .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
            .find(|path| path.is_file())
    }
    let chromium = find("CHROMIUM", &["chromium", "chromium-browser"]);
    let chromedriver = find("CHROMEDRIVER", &["chromedriver"]);
    match (chromium, chromedriver) {
        (Some(chromium), Some(chromedriver)) => Tools {
            chromium,
            chromedriver,
        },
        (chromium, chromedriver) => {
            let missing: Vec<&str> = [
                chromium.is_none().then_some("chromium"),
                chromedriver.is_none().then_some("chromedriver"),
            ]
            .into_iter()
            .flatten()
            .collect();
            panic!(
                "this test drives a real browser, but could not find {}.\n\
                 Install Chromium and chromedriver (Debian or Ubuntu, as root):\n    \
                 apt-get update && apt-get install -y chromium chromium-driver\n\
                 or run scripts/browser-test, which installs them when missing and then runs \
                 these tests. $CHROMIUM and $CHROMEDRIVER name the binaries when they are \
                 not on PATH.",
                missing.join(" and ")
            )
        }
    }
}

/// A chromedriver process with one Chromium session. Dropping it ends the session,
/// kills whatever is left of chromedriver and Chromium, and removes the profile.
struct Browser {
    driver: Child,
    port: u16,
    session: Option<String>,
    /// The temporary directory: Chromium's profile and chromedriver's log.
    dir: PathBuf,
    client: HttpClient,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // chromedriver closes Chromium and waits for it.
            delete_session(self.port, &session);
        }
        // chromedriver leads its own process group, which Chromium's processes join:
        // kill the group (anything left), then chromedriver itself, and reap it. The
        // group id cannot be reused before chromedriver is reaped.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `DELETE /session/{id}` over a plain blocking socket (this runs in `Drop`), bounded.
fn delete_session(port: u16, session: &str) {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(1),
    ) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return;
    }
    // Until the whole answer is in (chromedriver may keep the connection open).
    let mut answer = Vec::new();
    let mut buffer = [0; 1024];
    while let Ok(n @ 1..) = stream.read(&mut buffer) {
        answer.extend_from_slice(&buffer[..n]);
        if answered(&answer) {
            break;
        }
    }
}

/// Whether `answer` holds a whole HTTP response with a `Content-Length`.
fn answered(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    length.is_some_and(|length| answer.len() >= end + 4 + length)
}

/// A fresh temporary directory for one browser.
fn temp_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tower-jwt-auth-browser-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(dir.join("profile")).expect("a temporary directory");
    dir
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A cookie in the browser's jar, as WebDriver shows it.
#[derive(Debug, PartialEq, Eq)]
struct Cookie {
    value: String,
    http_only: bool,
    secure: bool,
    same_site: String,
    path: String,
}

/// What the page shows after a call.
#[derive(Debug)]
struct Shown {
    /// `#status`'s `data-status`: the HTTP status.
    status: u16,
    /// `#status`'s text, e.g. `POST /logout → 204 No Content`.
    line: String,
    /// `#output`'s text: the answer's body, or its challenge.
    output: String,
}

/// The key of a web element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session.
    async fn start() -> Self {
        let tools = tools();
        let mut attempt = 1;
        loop {
            match Self::try_start(&tools).await {
                Ok(browser) => return browser,
                // Another process may have taken the port between the check and the start.
                Err(e) if attempt < 3 => {
                    eprintln!("chromedriver did not start (attempt {attempt}): {e}");
                    attempt += 1;
                }
                Err(e) => panic!("{e}"),
            }
        }
    }

    async fn try_start(tools: &Tools) -> Result<Self, String> {
        let dir = temp_dir();
        let log_path = dir.join("chromedriver.log");
        let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let port = free_port();
        let mut command = Command::new(&tools.chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", tools.chromedriver.display()))?;
        let mut browser = Self {
            driver,
            port,
            session: None,
            dir,
            client: http_client(),
        };

        // Ready when `GET /status` says so.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = browser.driver.try_wait() {
                return Err(format!(
                    "chromedriver exited ({status}):\n{}",
                    tail(&log_path)
                ));
            }
            let request = Request::get(format!("{}/status", browser.base()))
                .body(Full::default())
                .unwrap();
            let ready = timeout(Duration::from_secs(1), browser.client.request(request)).await;
            if let Ok(Ok(response)) = ready
                && let Ok(Ok(body)) = timeout(Duration::from_secs(1), response.collect()).await
                && serde_json::from_slice::<Value>(&body.to_bytes())
                    .is_ok_and(|status| status["value"]["ready"] == true)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "chromedriver was not ready within {START_TIMEOUT:?}:\n{}",
                    tail(&log_path)
                ));
            }
            sleep(Duration::from_millis(50)).await;
        }

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|&f| f.to_owned()).collect();
        args.push(format!(
            "--user-data-dir={}",
            browser.dir.join("profile").display()
        ));
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "implicit": 0, "pageLoad": 10_000, "script": 5_000 },
            "goog:chromeOptions": { "binary": tools.chromium, "args": args },
        }}});
        let session = browser
            .call(Method::POST, "/session", Some(capabilities), START_TIMEOUT)
            .await
            .map_err(|e| {
                format!(
                    "chromedriver could not start {}: {e}\n{}",
                    tools.chromium.display(),
                    tail(&log_path)
                )
            })?;
        let id = session["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {session}"))?;
        browser.session = Some(id.to_owned());
        Ok(browser)
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One WebDriver command: its `value`, or the WebDriver error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        limit: Duration,
    ) -> Result<Value, String> {
        let what = format!("WebDriver {method} {path}");
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base()))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(
                body.map_or_else(Bytes::new, |b| b.to_string().into()),
            ))
            .unwrap();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let mut json: Value = serde_json::from_slice(&body)
                .map_err(|e| format!("{status}, not JSON ({e}): {body:?}"))?;
            if status.is_success() {
                Ok(json["value"].take())
            } else {
                let error = &json["value"];
                Err(format!(
                    "{status}: {}: {}",
                    error["error"], error["message"]
                ))
            }
        };
        match timeout(limit, exchange).await {
            Ok(result) => result.map_err(|e| format!("{what}: {e}")),
            Err(_) => Err(format!("{what}: no answer within {limit:?}")),
        }
    }

    /// A command in this session; fails the test on an error.
    async fn command(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let session = self.session.as_deref().expect("a session");
        self.call(
            method,
            &format!("/session/{session}{path}"),
            body,
            COMMAND_TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }

    async fn goto(&self, url: &str) {
        self.command(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn current_url(&self) -> String {
        let url = self.command(Method::GET, "/url", None).await;
        url.as_str().unwrap_or_default().to_owned()
    }

    /// The element `css` selects (it must exist).
    async fn find(&self, css: &str) -> String {
        let found = self
            .command(
                Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css}: {found}"))
            .to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let path = format!("/element/{element}");
        self.command(Method::POST, &format!("{path}/clear"), Some(json!({})))
            .await;
        self.command(
            Method::POST,
            &format!("{path}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.command(
            Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// An attribute of the element `css` selects; `None` when there is no such element
    /// or attribute (for polling).
    async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let session = self.session.as_deref()?;
        let found = self
            .call(
                Method::POST,
                &format!("/session/{session}/element"),
                Some(json!({ "using": "css selector", "value": css })),
                COMMAND_TIMEOUT,
            )
            .await
            .ok()?;
        let element = found[ELEMENT].as_str()?;
        let value = self
            .call(
                Method::GET,
                &format!("/session/{session}/element/{element}/attribute/{name}"),
                None,
                COMMAND_TIMEOUT,
            )
            .await
            .ok()?;
        value.as_str().map(str::to_owned)
    }

    /// The rendered text of the element `css` selects.
    async fn text(&self, css: &str) -> Option<String> {
        let element = self.find(css).await;
        let text = self
            .command(Method::GET, &format!("/element/{element}/text"), None)
            .await;
        text.as_str().map(str::to_owned)
    }

    /// Runs `script` in the page and returns its result.
    async fn execute(&self, script: &str) -> Value {
        self.command(
            Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
    }

    /// The `access_token` cookie, through WebDriver's cookie API (the cookies the
    /// current page's URL would be sent, `HttpOnly` ones included).
    async fn token_cookie(&self) -> Option<Cookie> {
        let cookies = self.command(Method::GET, "/cookie", None).await;
        let cookie = cookies
            .as_array()
            .expect("a cookie list")
            .iter()
            .find(|c| c["name"] == app::COOKIE_NAME)?;
        Some(Cookie {
            value: cookie["value"].as_str().unwrap_or_default().to_owned(),
            http_only: cookie["httpOnly"] == true,
            secure: cookie["secure"] == true,
            same_site: cookie["sameSite"].as_str().unwrap_or_default().to_owned(),
            path: cookie["path"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// The `access_token` cookie's value for `url`, through the DevTools protocol's
    /// `Network.getCookies` (the browser's jar, whatever page is shown).
    async fn devtools_token_cookie(&self, url: &str) -> Option<String> {
        let answer = self
            .command(
                Method::POST,
                "/goog/cdp/execute",
                Some(json!({ "cmd": "Network.getCookies", "params": { "urls": [url] } })),
            )
            .await;
        answer["cookies"]
            .as_array()
            .expect("a cookie list")
            .iter()
            .find(|c| c["name"] == app::COOKIE_NAME)
            .map(|c| c["value"].as_str().unwrap_or_default().to_owned())
    }

    /// Presses the page's button `#id` and waits for the page to show the answer.
    async fn press(&self, id: &str) -> Shown {
        // Forget the previous answer, so that the next one is recognised.
        self.execute(
            "const s = document.getElementById('status'); \
             s.dataset.status = ''; s.dataset.ok = ''; \
             document.getElementById('output').textContent = '';",
        )
        .await;
        self.click(&format!("#{id}")).await;
        wait_for(&format!("the page's answer to #{id}"), async || {
            let ok = self.attribute("#status", "data-ok").await?;
            (!ok.is_empty()).then_some(())
        })
        .await;
        let line = self.text("#status").await.unwrap_or_default();
        let output = self.text("#output").await.unwrap_or_default();
        let status = self
            .attribute("#status", "data-status")
            .await
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("#{id}: no HTTP answer: {line}: {output}"));
        Shown {
            status,
            line,
            output,
        }
    }

    /// Logs in through the page and returns the token the browser keeps in its jar.
    async fn log_in(&self, username: &str, password: &str) -> String {
        self.type_into("#username", username).await;
        self.type_into("#password", password).await;
        let shown = self.press("login").await;
        assert_eq!(shown.status, 200, "{shown:?}");
        assert!(shown.line.starts_with("POST /login"), "{shown:?}");
        let cookie = self
            .token_cookie()
            .await
            .expect("the login set the access_token cookie");
        assert!(cookie.http_only && cookie.secure, "{cookie:?}");
        assert_eq!((&*cookie.same_site, &*cookie.path), ("Lax", "/"));
        // The page never shows the token (it says the browser keeps it).
        assert!(!shown.output.contains(&cookie.value), "{shown:?}");
        cookie.value
    }
}
