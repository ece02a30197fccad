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

/// A token as the request presents it, its syntax not judged yet: [`text`](Self::text)
/// judges it. The layer asks the verified-token cache first, by these bytes: a token
/// equal byte for byte to a cached one was verified before (and the cache keeps only
/// well-formed tokens), so a hit needs no second look.
#[derive(Clone, Copy)]
pub(crate) struct Presented<'a> {
    bytes: &'a [u8],
    location: TokenLocation,
}

impl<'a> Presented<'a> {
    /// The token's bytes, as sent.
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Where the token was found.
    pub(crate) fn location(&self) -> TokenLocation {
        self.location
    }

    /// The token as text once its syntax is checked: RFC 7235 token68 in the
    /// `Authorization` header, UTF-8 in a cookie.
    pub(crate) fn text(&self) -> Result<&'a str, Rejection> {
        match self.location {
            TokenLocation::Header if !is_token68(self.bytes) => Err(reasons::BAD_AUTHORIZATION),
            // token68 is ASCII, so this cannot fail for the header.
            TokenLocation::Header => {
                std::str::from_utf8(self.bytes).map_err(|_| reasons::BAD_AUTHORIZATION)
            }
            TokenLocation::Cookie => {
                std::str::from_utf8(self.bytes).map_err(|_| reasons::MALFORMED)
            }
        }
    }
}

/// The token of a request, if any, and where it was found. Its length is judged by the
/// verifier, the one place that bounds a token; its syntax by [`Presented::text`]: here
/// for every source but the one used, and for that one by the layer on a cache miss.
pub(crate) fn find<'a>(
    sources: &[TokenSource],
    headers: &'a HeaderMap,
) -> Result<Option<Presented<'a>>, Rejection> {
    let mut found = None;
    for source in sources {
        let token = match &source.0 {
            Kind::Bearer => bearer(headers)?.map(|bytes| Presented {
                bytes,
                location: TokenLocation::Header,
            }),
            Kind::Cookie(name) => cookie(headers, name)?.map(|bytes| Presented {
                bytes,
                location: TokenLocation::Cookie,
            }),
        };
        match (found, token) {
            (None, token) => found = token,
            // Not the token used, but a malformed one refuses the request all the same.
            (Some(_), Some(other)) => {
                other.text()?;
            }
            (Some(_), None) => {}
        }
    }
    Ok(found)
}

/// The token bytes of the one `Authorization: Bearer` header, `None` if there is no
/// such header or it uses another scheme.
fn bearer(headers: &HeaderMap) -> Result<Option<&[u8]>, Rejection> {
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
    Ok(Some(rest.trim_ascii()))
}

/// Whether `b` is one of the bytes RFC 7235 token68 allows before its `=` padding:
/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`. Written without branches or a
/// table so that [`is_token68`] compiles to vector compares: the check runs over the
/// whole token on every cache miss, and on every request with the cache off.
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
pub(crate) fn is_token68(s: &[u8]) -> bool {
    let end = s.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    // A fold without an early exit, so the compiler checks many bytes at once.
    end > 0 && s[..end].iter().fold(true, |ok, &b| ok & token68_byte(b))
}

/// The value bytes of the cookie `name`, `None` if absent or empty (a cleared cookie).
///
/// Other applications on the same site set cookies of their own, with any bytes: only
/// this cookie's own value is judged. The `Cookie` header is read as bytes (RFC 6265
/// §4.2.1: `name=value` pairs separated by `; `), pairs without `=` are skipped, and
/// nothing of another cookie can refuse the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a [u8]>, Rejection> {
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
            found = Some(pair[eq + 1..].trim_ascii());
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
        assert_eq!(cookie(&h, "access_token").unwrap(), Some(&b"xyz.abc"[..]));
        let h = headers(&[("cookie", "a=1"), ("cookie", "access_token=q")]);
        assert_eq!(cookie(&h, "access_token").unwrap(), Some(&b"q"[..]));
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
