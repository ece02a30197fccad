//! Cross-origin protection for cookie-carried tokens.
//!
//! A browser attaches cookies to requests other sites make, so a cookie token alone does
//! not prove the user meant the request (CSRF). For unsafe methods this applies the
//! algorithm of Go 1.25's `net/http.CrossOriginProtection`:
//!
//! 1. `GET`, `HEAD` and `OPTIONS` pass.
//! 2. `Sec-Fetch-Site: same-origin` or `none` passes; any other value (`cross-site`,
//!    `same-site`) is refused unless the `Origin` is trusted.
//! 3. Without `Sec-Fetch-Site`: no `Origin` header passes (not a browser, or a same-origin
//!    request from an old browser); an `Origin` whose host equals the request's `Host`
//!    passes; a trusted `Origin` passes; anything else is refused.
//!
//! Tokens from the `Authorization` header are not affected: a browser never adds that
//! header to another site's request.

use http::{HeaderMap, Method, Uri, header};

use crate::rejection::{Rejection, reasons};

const SEC_FETCH_SITE: &str = "sec-fetch-site";

pub(crate) fn check(
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    trusted: &[String],
) -> Result<(), Rejection> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or(""));
    let is_trusted = || origin.is_some_and(|o| trusted.iter().any(|t| t.eq_ignore_ascii_case(o)));
    if let Some(site) = headers.get(SEC_FETCH_SITE) {
        let site = site.as_bytes();
        if site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none") {
            return Ok(());
        }
        return if is_trusted() {
            Ok(())
        } else {
            Err(reasons::CROSS_ORIGIN)
        };
    }
    let Some(origin) = origin else {
        return Ok(());
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(http::uri::Authority::as_str));
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    if let (Some(host), Some(origin_host)) = (host, origin_host)
        && !host.is_empty()
        && origin_host.eq_ignore_ascii_case(host)
    {
        return Ok(());
    }
    if is_trusted() {
        Ok(())
    } else {
        Err(reasons::CROSS_ORIGIN)
    }
}

/// Checks a trusted origin's form: `scheme://host[:port]`, nothing after.
pub(crate) fn valid_origin(origin: &str) -> bool {
    match origin.split_once("://") {
        Some((scheme, host)) => {
            !scheme.is_empty()
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !host.is_empty()
                && !host.contains(['/', '?', '#', ' ', '@'])
        }
        None => false,
    }
}
