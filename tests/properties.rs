//! Property tests of token extraction and the layer's answers (issue 6, part 2).
//!
//! For arbitrary `Authorization` and `Cookie` headers (any bytes a `HeaderValue`
//! accepts, several of each), arbitrary tokens, methods, origins and `Sec-Fetch-Site`
//! values, the layer always answers 200, 400, 401 or 403 (never a panic, never a 5xx),
//! a 200 only for a genuinely valid token that was in the request, and a well-formed
//! bearer header or cookie list yields exactly the token that was put in.

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use http::{HeaderName, HeaderValue, Method, Request, StatusCode, header};
use proptest::prelude::*;
use proptest::sample::select;
use support::{service::*, tokens::*};
use tower_jwt_auth::{JwtAuth, JwtAuthLayer, MemoryStore, RejectionKind, TokenLocation};

/// Polls a future that must be ready at once: `MemoryStore` answers from memory and the
/// inner test service is synchronous, so the whole request path never waits.
fn now_or_never<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("the MemoryStore request path was pending"),
    }
}

/// Valid tokens (subject, token), minted once; they live ten minutes, longer than a run.
fn valid_tokens() -> &'static [(String, String)] {
    static TOKENS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        (0..4)
            .map(|i| {
                let sub = format!("user-{i}");
                let token = hs256(&claims(&sub));
                (sub, token)
            })
            .collect()
    })
}

/// The layer under test (bearer, then the `access_token` cookie), with one trusted
/// origin, shared by every case.
fn service() -> &'static JwtAuth<Inner, MemoryStore> {
    static SVC: OnceLock<JwtAuth<Inner, MemoryStore>> = OnceLock::new();
    SVC.get_or_init(|| {
        let layer = JwtAuthLayer::builder(MemoryStore::new())
            .key(tower_jwt_auth::VerificationKey::hs256(SECRET).unwrap())
            .cookie("access_token")
            .trusted_origin("https://trusted.example")
            .build()
            .unwrap();
        app(&layer)
    })
}

fn respond(req: Request<String>) -> Seen {
    now_or_never(send(service(), req))
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Any bytes `HeaderValue::from_bytes` accepts: visible ASCII, space, tab, obs-text.
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            8 => 0x20u8..=0x7e,
            1 => Just(b'\t'),
            1 => 0x80u8..=0xff,
        ],
        0..max,
    )
}

/// Text that looks like a token: base64url, dots, padding, and a few strangers.
fn token_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            10 => select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".to_vec()),
            2 => Just(b'.'),
            1 => select(b"=+/~ \t%\",;".to_vec()),
        ],
        0..120,
    )
    .prop_map(|v| String::from_utf8(v).unwrap())
}

/// A bearer token: a valid one (with its subject), or token-like garbage.
fn any_token() -> impl Strategy<Value = (Option<String>, String)> {
    prop_oneof![
        (0..valid_tokens().len()).prop_map(|i| {
            let (sub, t) = &valid_tokens()[i];
            (Some(sub.clone()), t.clone())
        }),
        token_like().prop_map(|t| (None, t)),
    ]
}

/// An `Authorization` header value: arbitrary bytes, or a bearer (or other) scheme with
/// a token.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        header_bytes(150),
        (
            select(vec!["Bearer", "bearer", "BEARER", "Basic", "Bearer\t", ""]),
            any_token()
        )
            .prop_map(|(scheme, (_, t))| format!("{scheme} {t}").into_bytes()),
    ]
}

/// A cookie name (RFC 6265 token), never `access_token` itself.
fn cookie_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}".prop_filter("not the token cookie", |n| n != "access_token")
}

/// A cookie value (RFC 6265 cookie-octets).
fn cookie_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'()*+./:<=>?@\\[\\]^_`{|}~-]{0,20}"
}

/// A `Cookie` header value: arbitrary bytes, or a cookie list that may hold a token.
fn cookie_header() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        header_bytes(150),
        (
            prop::collection::vec((cookie_name(), cookie_value()), 0..5),
            prop::option::of(any_token()),
        )
            .prop_map(|(others, token)| {
                let mut parts: Vec<String> =
                    others.iter().map(|(n, v)| format!("{n}={v}")).collect();
                if let Some((_, t)) = token {
                    parts.push(format!("access_token={t}"));
                }
                parts.join("; ").into_bytes()
            }),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        select(vec![
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::TRACE,
            Method::CONNECT,
        ]),
        "[A-Z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn origin() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop_oneof![
        select(vec![
            "https://app.example",
            "http://app.example",
            "https://APP.example",
            "https://trusted.example",
            "https://evil.example",
            "null",
            "",
        ])
        .prop_map(|o| o.as_bytes().to_vec()),
        header_bytes(40),
    ])
}

fn sec_fetch_site() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::of(prop_oneof![
        select(vec![
            "same-origin",
            "none",
            "same-site",
            "cross-site",
            "SAME-ORIGIN",
            ""
        ])
        .prop_map(|o| o.as_bytes().to_vec()),
        header_bytes(20),
    ])
}

fn host() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(select(vec![
        "app.example",
        "APP.EXAMPLE",
        "evil.example",
        "",
    ]))
}

/// An arbitrary request: several `Authorization` and `Cookie` headers, method, origin,
/// `Sec-Fetch-Site` and `Host`.
#[derive(Debug, Clone)]
struct Arbitrary {
    authorization: Vec<Vec<u8>>,
    cookies: Vec<Vec<u8>>,
    method: Method,
    origin: Option<Vec<u8>>,
    sec_fetch_site: Option<Vec<u8>>,
    host: Option<&'static str>,
    query_token: bool,
}

fn arbitrary_request() -> impl Strategy<Value = Arbitrary> {
    (
        prop::collection::vec(authorization(), 0..3),
        prop::collection::vec(cookie_header(), 0..3),
        method(),
        origin(),
        sec_fetch_site(),
        host(),
        any::<bool>(),
    )
        .prop_map(
            |(authorization, cookies, method, origin, sec_fetch_site, host, query_token)| {
                Arbitrary {
                    authorization,
                    cookies,
                    method,
                    origin,
                    sec_fetch_site,
                    host,
                    query_token,
                }
            },
        )
}

impl Arbitrary {
    fn build(&self) -> Request<String> {
        let uri = if self.query_token {
            format!("http://app.example/x?access_token={}", valid_tokens()[0].1)
        } else {
            "http://app.example/x".to_owned()
        };
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .body(String::new())
            .unwrap();
        let h = req.headers_mut();
        let mut add = |name: HeaderName, v: &[u8]| {
            h.append(name, HeaderValue::from_bytes(v).unwrap());
        };
        for v in &self.authorization {
            add(header::AUTHORIZATION, v);
        }
        for v in &self.cookies {
            add(header::COOKIE, v);
        }
        if let Some(v) = &self.origin {
            add(header::ORIGIN, v);
        }
        if let Some(v) = &self.sec_fetch_site {
            add(HeaderName::from_static("sec-fetch-site"), v);
        }
        if let Some(v) = self.host {
            add(header::HOST, v.as_bytes());
        }
        req
    }

    /// Whether a valid token appears verbatim in a header of the request.
    fn holds_valid_token_for(&self, subject: &str) -> bool {
        let token = &valid_tokens()
            .iter()
            .find(|(s, _)| s == subject)
            .expect("a minted subject")
            .1;
        let contains = |v: &Vec<u8>| v.windows(token.len()).any(|w| w == token.as_bytes());
        self.authorization.iter().any(contains) || self.cookies.iter().any(contains)
    }
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    /// Whatever the request, the layer answers 200/400/401/403 with the matching
    /// rejection; a 200 only with a valid token from a header (never from the query),
    /// and two `Authorization` headers always a 400.
    #[test]
    fn every_request_gets_a_defined_answer(req in arbitrary_request()) {
        let seen = respond(req.build());
        match seen.status {
            StatusCode::OK => {
                prop_assert!(seen.rejection.is_none());
                let subject = seen.subject.clone().expect("a 200 carries the subject");
                prop_assert!(
                    req.holds_valid_token_for(&subject),
                    "accepted without a valid token in a header: {req:?}"
                );
            }
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                let r = seen.rejection.as_ref().expect("a refusal carries its reason");
                prop_assert_eq!(r.status(), seen.status);
                prop_assert!(seen.subject.is_none());
            }
            other => prop_assert!(false, "unexpected status {other} for {req:?}"),
        }
        if req.authorization.len() >= 2 {
            prop_assert_eq!(seen.status, StatusCode::BAD_REQUEST);
            prop_assert_eq!(
                seen.rejection.unwrap().description(),
                "more than one Authorization header was sent"
            );
        } else if req.authorization.is_empty() && req.cookies.is_empty() {
            // Nothing presented (a query-string token does not count).
            prop_assert_eq!(seen.kind(), Some(RejectionKind::MissingToken));
        }
    }

    /// A well-formed bearer header (scheme in any case, optional whitespace around the
    /// token) yields exactly its token, whatever cookies come along.
    #[test]
    fn a_well_formed_bearer_header_yields_exactly_its_token(
        i in 0..4usize,
        scheme in "[bB][eE][aA][rR][eE][rR]",
        before in "[ \t]{0,3}",
        after in "[ \t]{0,3}",
        cookies in prop::collection::vec((cookie_name(), cookie_value()), 0..4),
        method in method(),
    ) {
        let (sub, token) = &valid_tokens()[i];
        let mut b = Request::builder()
            .method(method)
            .uri("/")
            .header(header::AUTHORIZATION, format!("{scheme} {before}{token}{after}"));
        if !cookies.is_empty() {
            let list: Vec<String> = cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
            b = b.header(header::COOKIE, list.join("; "));
        }
        let seen = respond(b.body(String::new()).unwrap());
        prop_assert_eq!(seen.status, StatusCode::OK, "{:?}", seen);
        prop_assert_eq!(seen.subject.as_deref(), Some(sub.as_str()));
        prop_assert_eq!(seen.info.unwrap().location(), TokenLocation::Header);
    }

    /// A well-formed cookie list, split over one to three `Cookie` headers with other
    /// cookies anywhere around it, yields exactly the token cookie's value.
    #[test]
    fn a_token_cookie_among_other_cookies_is_found_exactly(
        i in 0..4usize,
        others in prop::collection::vec((cookie_name(), cookie_value()), 0..8),
        position in any::<prop::sample::Index>(),
        split in prop::collection::vec(any::<bool>(), 8),
        spaces in "[ ]{0,2}",
    ) {
        let (sub, token) = &valid_tokens()[i];
        let mut cookies: Vec<String> = others.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let at = position.index(cookies.len() + 1);
        cookies.insert(at, format!("access_token={spaces}{token}{spaces}"));
        // Split the list into several Cookie headers at random places.
        let mut headers = vec![Vec::new()];
        for (k, c) in cookies.into_iter().enumerate() {
            if k > 0 && split[k % split.len()] && headers.len() < 3 {
                headers.push(Vec::new());
            }
            headers.last_mut().unwrap().push(c);
        }
        let mut b = Request::get("/");
        for h in &headers {
            b = b.header(header::COOKIE, h.join("; "));
        }
        let seen = respond(b.body(String::new()).unwrap());
        prop_assert_eq!(seen.status, StatusCode::OK, "{:?} {:?}", headers, seen);
        prop_assert_eq!(seen.subject.as_deref(), Some(sub.as_str()));
        prop_assert_eq!(seen.info.unwrap().location(), TokenLocation::Cookie);
    }

    /// Any change to a valid token (a symbol replaced, inserted or removed) is refused.
    #[test]
    fn a_valid_token_changed_anywhere_is_refused(
        i in 0..4usize,
        at in any::<prop::sample::Index>(),
        symbol in select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".to_vec()),
        edit in 0..3u8,
        in_cookie in any::<bool>(),
    ) {
        let token = valid_tokens()[i].1.as_bytes();
        let mut changed = token.to_vec();
        let at = at.index(token.len());
        match edit {
            0 => changed[at] = symbol,
            1 => changed.insert(at, symbol),
            _ => { changed.remove(at); }
        }
        prop_assume!(changed != token);
        let changed = String::from_utf8(changed).unwrap();
        let req = if in_cookie {
            Request::get("/")
                .header(header::COOKIE, format!("access_token={changed}"))
                .body(String::new())
                .unwrap()
        } else {
            bearer(&changed)
        };
        let seen = respond(req);
        prop_assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{} {:?}", changed, seen);
        prop_assert_eq!(seen.kind(), Some(RejectionKind::InvalidToken));
    }

    /// Bearer-header requests are never subject to the cross-origin check.
    #[test]
    fn bearer_requests_ignore_origin_and_sec_fetch_site(
        i in 0..4usize,
        method in method(),
        origin in origin(),
        site in sec_fetch_site(),
        host in host(),
    ) {
        let req = Arbitrary {
            authorization: vec![format!("Bearer {}", valid_tokens()[i].1).into_bytes()],
            cookies: vec![],
            method,
            origin,
            sec_fetch_site: site,
            host,
            query_token: false,
        };
        let seen = respond(req.build());
        prop_assert_eq!(seen.status, StatusCode::OK, "{:?}", req);
    }

    /// Cookie-token requests get 200 or 403, exactly as Go's `CrossOriginProtection`
    /// (the reference algorithm, modelled here) decides.
    #[test]
    fn cookie_requests_follow_the_cross_origin_algorithm(
        i in 0..4usize,
        method in method(),
        origin in origin(),
        site in sec_fetch_site(),
        host in host(),
    ) {
        let req = Arbitrary {
            authorization: vec![],
            cookies: vec![format!("access_token={}", valid_tokens()[i].1).into_bytes()],
            method: method.clone(),
            origin: origin.clone(),
            sec_fetch_site: site.clone(),
            host,
            query_token: false,
        };
        let seen = respond(req.build());
        let allowed = cross_origin_model(&method, origin.as_deref(), site.as_deref(), host);
        if allowed {
            prop_assert_eq!(seen.status, StatusCode::OK, "{:?}", req);
        } else {
            prop_assert_eq!(seen.status, StatusCode::FORBIDDEN, "{:?}", req);
            prop_assert_eq!(seen.kind(), Some(RejectionKind::CrossOrigin));
        }
    }
}

/// Go 1.25 `net/http.CrossOriginProtection.Check`, for a layer trusting
/// `https://trusted.example`; the request URI's authority is `app.example`.
fn cross_origin_model(
    method: &Method,
    origin: Option<&[u8]>,
    site: Option<&[u8]>,
    host: Option<&str>,
) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let origin = origin.map(|o| std::str::from_utf8(o).unwrap_or(""));
    let trusted = origin.is_some_and(|o| o.eq_ignore_ascii_case("https://trusted.example"));
    if let Some(site) = site {
        return site.eq_ignore_ascii_case(b"same-origin")
            || site.eq_ignore_ascii_case(b"none")
            || trusted;
    }
    let Some(origin) = origin else {
        return true;
    };
    let host = host.unwrap_or("app.example");
    let same = origin
        .split_once("://")
        .is_some_and(|(_, h)| !host.is_empty() && h.eq_ignore_ascii_case(host));
    same || trusted
}
