//! Where tokens come from: the `Authorization: Bearer` header and cookies.
//!
//! Sources are tried in the configured order and the first one that holds a token wins.
//! Every configured source is inspected first, though, so a malformed one (two
//! `Authorization` headers, a token cookie sent twice) refuses the request whatever the
//! order. The query string is never a source.

use std::fmt;

use http::{HeaderMap, header};

use crate::claims::TokenLocation;
use crate::rejection::{Rejection, reasons};

/// One place a token may be presented.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSource(Kind);

#[derive(Clone, PartialEq, Eq)]
enum Kind {
    Bearer,
    Cookie(String),
}

impl TokenSource {
    /// The `Authorization` header with the `Bearer` scheme (RFC 6750 §2.1); the scheme is
    /// matched case-insensitively (RFC 7235).
    pub fn bearer() -> Self {
        Self(Kind::Bearer)
    }

    /// The cookie named `name` (RFC 6265), read from every `Cookie` header.
    pub fn cookie(name: impl Into<String>) -> Self {
        Self(Kind::Cookie(name.into()))
    }

    pub(crate) fn cookie_name(&self) -> Option<&str> {
        match &self.0 {
            Kind::Cookie(name) => Some(name),
            Kind::Bearer => None,
        }
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Bearer => f.write_str("TokenSource::Bearer"),
            Kind::Cookie(name) => write!(f, "TokenSource::Cookie({name:?})"),
        }
    }
}

/// The token of a request, if any, and where it was found. Its length is judged by the
/// verifier, the one place that bounds a token.
pub(crate) fn find<'a>(
    sources: &[TokenSource],
    headers: &'a HeaderMap,
) -> Result<Option<(&'a str, TokenLocation)>, Rejection> {
    let mut found = None;
    for source in sources {
        let token = match &source.0 {
            Kind::Bearer => bearer(headers)?.map(|t| (t, TokenLocation::Header)),
            Kind::Cookie(name) => cookie(headers, name)?.map(|t| (t, TokenLocation::Cookie)),
        };
        if found.is_none() {
            found = token;
        }
    }
    Ok(found)
}

/// The token of the one `Authorization: Bearer` header, `None` if there is no such
/// header or it uses another scheme.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, Rejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(reasons::TWO_AUTHORIZATION);
    }
    let value = value.as_bytes();
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    let token = rest.trim_ascii();
    if !is_token68(token) {
        return Err(reasons::BAD_AUTHORIZATION);
    }
    // token68 is ASCII, so this cannot fail.
    std::str::from_utf8(token)
        .map(Some)
        .map_err(|_| reasons::BAD_AUTHORIZATION)
}

/// Whether `b` is one of the bytes RFC 7235 token68 allows before its `=` padding:
/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`. Written without branches or a
/// table so that [`is_token68`] compiles to vector compares: the check runs on every
/// request, over the whole token.
#[inline(always)]
fn token68_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter
        | digit
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

/// RFC 7235 token68: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_token68(s: &[u8]) -> bool {
    let end = s.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    // A fold without an early exit, so the compiler checks many bytes at once.
    end > 0 && s[..end].iter().fold(true, |ok, &b| ok & token68_byte(b))
}

/// The value of the cookie `name`, `None` if absent or empty (a cleared cookie).
///
/// Other applications on the same site set cookies of their own, with any bytes: only
/// this cookie's own value is judged. The `Cookie` header is read as bytes (RFC 6265
/// §4.2.1: `name=value` pairs separated by `; `), pairs without `=` are skipped, and
/// nothing of another cookie can refuse the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Rejection> {
    let mut found = None;
    for header in headers.get_all(header::COOKIE) {
        for pair in header.as_bytes().split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Err(reasons::TWO_COOKIES);
            }
            // Quotes stay part of the value: a quoted token is not a token.
            let value = pair[eq + 1..].trim_ascii();
            found = Some(std::str::from_utf8(value).map_err(|_| reasons::MALFORMED)?);
        }
    }
    Ok(found.filter(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookie_values_are_slices_of_the_header() {
        let h = headers(&[("cookie", "a=1; access_token=xyz.abc; b=2")]);
        assert_eq!(cookie(&h, "access_token").unwrap(), Some("xyz.abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "access_token=q")]);
        assert_eq!(cookie(&h, "access_token").unwrap(), Some("q"));
        let h = headers(&[("cookie", "access_token=")]);
        assert_eq!(cookie(&h, "access_token").unwrap(), None);
    }

    #[test]
    fn token68_bytes_are_exactly_the_rfc_7235_set() {
        for b in 0..=u8::MAX {
            let rfc = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(token68_byte(b), rfc, "byte {b:#04x}");
        }
    }

    #[test]
    fn token68() {
        assert!(is_token68(b"abc.DEF-_~+/=="));
        assert!(!is_token68(b"a b"));
        assert!(!is_token68(b"==="));
        assert!(!is_token68(b"a\"b"));
        assert!(!is_token68(b""));
        assert!(!is_token68(b"a=b"));
    }
}
