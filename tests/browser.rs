//! A real browser against the example server (`cargo run --features example-server --bin server`).
//!
//! Headless Chromium, driven through chromedriver's W3C WebDriver API (with the
//! fantoccini client), uses the example's own page (`examples/server/index.html`) as a
//! person would: it types into `#username` and `#password`, presses `#login`, `#me` and
//! `#logout`, and reads `#status` and `#output`. The token cookie is `HttpOnly`, so the
//! page's script cannot see it: the test reads the browser's cookie jar through
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
mod support;

use std::fs::{self, File};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::middleware::{self, Next};
use axum::response::Html;
use axum::routing::get;
use fantoccini::error::CmdError;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use support::clock::temp_path;
use support::http::{Http, Reply, serve};
use support::ports::free_port;
use support::tokens::{SECRET, claims_of};
use tokio::time::{sleep, timeout};
use tower_jwt_auth::{MemoryStore, Rejection, RejectionKind};

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
        app.me_bearer(&token).await.assert_ok_subject("alice");

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
        browser.close().await;
    })
    .await;
}

#[tokio::test]
#[ignore = "needs chromium and chromium-driver: see scripts/browser-test"]
async fn the_page_refreshes_the_access_token_before_it_expires() {
    within_time_limit(async {
        let mut config = app::Config::new(app::Secret::new(SECRET));
        config.token_ttl = std::time::Duration::from_secs(3);
        let app = App::start_with(config).await;
        let browser = Browser::start().await;
        browser.goto(&app.url("/")).await;
        let mark = app.recorder.len();
        let token = browser.log_in("alice", "wonderland").await;
        let expiry = browser.text("#expiry").await.unwrap_or_default();
        assert!(expiry.contains("refreshed before then"), "{expiry}");
        // The page exchanges the refresh cookie (same-origin, on /refresh) before expiry.
        let refreshed = wait_for("the page's POST /refresh", async || {
            app.recorder
                .posts_since(mark)
                .into_iter()
                .find(|s| s.path == "/refresh")
        })
        .await;
        assert_eq!(refreshed.status, StatusCode::OK, "{refreshed:?}");
        assert_eq!(refreshed.sec_fetch_site.as_deref(), Some("same-origin"));
        let fresh = wait_for("a new access token in the jar", async || {
            browser.token_cookie().await.filter(|c| c.value != token)
        })
        .await;
        assert_eq!(claims_of(&fresh.value)["sid"], claims_of(&token)["sid"]);
        app.me_bearer(&fresh.value).await.assert_ok_subject("alice");
        browser.close().await;
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
        app.me_bearer(&token).await.assert_ok_subject("alice");
        app.me_cookie(&token).await.assert_ok_subject("alice");

        // The same post from the page's own origin is accepted: the refusal above was the
        // cross-origin rule, not a broken logout.
        let shown = browser.press("logout").await;
        assert_eq!(shown.status, 204, "{shown:?}");
        assert_eq!(browser.token_cookie().await, None);
        app.me_bearer(&token).await.assert_invalid_token();
        browser.close().await;
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
    http: Http,
}

impl App {
    /// The example's router with its defaults (`Secure`, `HttpOnly`, `SameSite=Lax`
    /// cookie; Chromium keeps `Secure` cookies from `http://127.0.0.1`).
    async fn start() -> Self {
        Self::start_with(app::Config::new(app::Secret::new(SECRET))).await
    }

    /// The example's router with `config`, recorded the same way.
    async fn start_with(config: app::Config) -> Self {
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
            http: Http::new(COMMAND_TIMEOUT),
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
        self.http.send(request).await
    }

    /// `GET /me` with the token in the cookie, from the test's own client.
    async fn me_cookie(&self, token: &str) -> Reply {
        let request = Request::get(self.url("/me"))
            .header(header::COOKIE, format!("{}={token}", app::COOKIE_NAME))
            .body(Full::default())
            .unwrap();
        self.http.send(request).await
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

/// A chromedriver process with one Chromium session. [`close`](Self::close) ends the
/// session; dropping it (also when a test fails) kills whatever is left of chromedriver
/// and Chromium, and removes the profile.
struct Browser {
    client: Client,
    driver: Child,
    /// The temporary directory: Chromium's profile and chromedriver's log.
    dir: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
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

/// The last lines of a log file, for failure messages.
fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// One WebDriver command, bounded by [`COMMAND_TIMEOUT`]; fails the test on an error.
async fn wd<T>(what: &str, command: impl Future<Output = Result<T, CmdError>>) -> T {
    match timeout(COMMAND_TIMEOUT, command).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("WebDriver {what}: {e}"),
        Err(_) => panic!("WebDriver {what}: no answer within {COMMAND_TIMEOUT:?}"),
    }
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

/// chromedriver's DevTools passthrough (`POST /session/{id}/goog/cdp/execute`), which
/// WebDriver itself has no command for.
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a session");
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.cmd, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

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
        let dir = temp_path("browser");
        fs::create_dir_all(dir.join("profile")).map_err(|e| format!("{}: {e}", dir.display()))?;
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
        let mut driver = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", tools.chromedriver.display()))?;

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|&f| f.to_owned()).collect();
        args.push(format!("--user-data-dir={}", dir.join("profile").display()));
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "implicit": 0, "pageLoad": 10_000, "script": 5_000 },
            "goog:chromeOptions": { "binary": tools.chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let url = format!("http://127.0.0.1:{port}");

        let fail = |what: String, mut driver: Child| {
            let _ = driver.kill();
            let _ = driver.wait();
            let log = tail(&log_path);
            let _ = fs::remove_dir_all(&dir);
            Err(format!("{what}:\n{log}"))
        };
        // Ready once it listens (or given up on when it exits or takes too long).
        let deadline = Instant::now() + START_TIMEOUT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = driver.try_wait() {
                return fail(format!("chromedriver exited ({status})"), driver);
            }
            if Instant::now() > deadline {
                let what = format!("chromedriver did not listen within {START_TIMEOUT:?}");
                return fail(what, driver);
            }
            sleep(Duration::from_millis(50)).await;
        }
        let client = match timeout(START_TIMEOUT, builder.connect(&url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                let what = format!(
                    "chromedriver could not start {}: {e}",
                    tools.chromium.display()
                );
                return fail(what, driver);
            }
            Err(_) => {
                return fail(
                    format!("no browser session within {START_TIMEOUT:?}"),
                    driver,
                );
            }
        };
        Ok(Self {
            client,
            driver,
            dir,
        })
    }

    /// Ends the session (chromedriver closes Chromium and waits for it), then drops the
    /// rest.
    async fn close(self) {
        let _ = timeout(COMMAND_TIMEOUT, self.client.clone().close()).await;
    }

    async fn goto(&self, url: &str) {
        wd(&format!("goto {url}"), self.client.goto(url)).await;
    }

    async fn current_url(&self) -> String {
        wd("current url", self.client.current_url()).await.into()
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        wd(&format!("find {css}"), self.client.find(Locator::Css(css))).await
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        wd(&format!("clear {css}"), element.clear()).await;
        wd(&format!("type into {css}"), element.send_keys(text)).await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        wd(&format!("click {css}"), element.click()).await;
    }

    /// An attribute of the element `css` selects; `None` when there is no such element
    /// or attribute (for polling).
    async fn attribute(&self, css: &str, name: &str) -> Option<String> {
        let find = self.client.find(Locator::Css(css));
        let element = timeout(COMMAND_TIMEOUT, find).await.ok()?.ok()?;
        timeout(COMMAND_TIMEOUT, element.attr(name))
            .await
            .ok()?
            .ok()?
    }

    /// The rendered text of the element `css` selects.
    async fn text(&self, css: &str) -> Option<String> {
        let element = self.find(css).await;
        Some(wd(&format!("text of {css}"), element.text()).await)
    }

    /// Runs `script` in the page and returns its result.
    async fn execute(&self, script: &str) -> Value {
        wd("execute", self.client.execute(script, Vec::new())).await
    }

    /// The `access_token` cookie, through WebDriver's cookie API (the cookies the
    /// current page's URL would be sent, `HttpOnly` ones included).
    async fn token_cookie(&self) -> Option<Cookie> {
        let cookies = wd("get cookies", self.client.get_all_cookies()).await;
        let cookie = cookies.iter().find(|c| c.name() == app::COOKIE_NAME)?;
        Some(Cookie {
            value: cookie.value().to_owned(),
            http_only: cookie.http_only() == Some(true),
            secure: cookie.secure() == Some(true),
            same_site: cookie
                .same_site()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            path: cookie.path().unwrap_or_default().to_owned(),
        })
    }

    /// The `access_token` cookie's value for `url`, through the DevTools protocol's
    /// `Network.getCookies` (the browser's jar, whatever page is shown).
    async fn devtools_token_cookie(&self, url: &str) -> Option<String> {
        let command = Cdp {
            cmd: "Network.getCookies",
            params: json!({ "urls": [url] }),
        };
        let answer = wd("Network.getCookies", self.client.issue_cmd(command)).await;
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
