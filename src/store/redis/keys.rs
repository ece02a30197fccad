//! Redis key names and the encoding of (issuer, id) pairs as set members.

/// The Redis keys of one store, all under the configured prefix.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    /// Sorted set: member = encoded (`exp`, issuer, jti), score = `keep_until`.
    pub(super) denylist: String,
    /// Hash: field = encoded (issuer, sub), value = `"<cutoff_micros>:<keep_until>"`.
    pub(super) cutoffs: String,
    /// Sorted set: member = encoded (issuer, sub), score = `keep_until` (the sweep's index).
    pub(super) cutoff_expiry: String,
    /// Hash: field = encoded (issuer, sid), value = `"<ended_micros>:<keep_until>"`.
    pub(super) sessions: String,
    /// Sorted set: member = encoded (issuer, sid), score = `keep_until`.
    pub(super) session_expiry: String,
    /// Stream: the change feed, one entry per write.
    pub(super) feed: String,
    /// The prefix of the refresh-token keys (see [`Keys::refresh_session`],
    /// [`Keys::refresh_token`], [`Keys::refresh_subject`]).
    pub(super) refresh: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            denylist: format!("{prefix}denylist"),
            cutoffs: format!("{prefix}cutoffs"),
            cutoff_expiry: format!("{prefix}cutoffs:expiry"),
            sessions: format!("{prefix}sessions"),
            session_expiry: format!("{prefix}sessions:expiry"),
            feed: format!("{prefix}feed"),
            refresh: format!("{prefix}refresh:"),
        }
    }

    /// Hash, one per login session with refresh tokens: `sub`, `iss` (when there is
    /// one), `sid`, `sm` and `um` ([`member`] of (issuer, sid) and of (issuer, sub)),
    /// `started` (µs), `deadline` (s), `current` (the current token's key), `previous`
    /// and `rotated` (ms, Redis's clock). Expires at the deadline.
    pub(super) fn refresh_session(&self, issuer: Option<&str>, sid: &str) -> Vec<u8> {
        let mut key = format!("{}s:", self.refresh).into_bytes();
        key.extend_from_slice(&member(issuer, sid));
        key
    }

    /// Hash, one per refresh token, by its SHA-256 (hex; never the token): `s` (its
    /// session's key) and `used`. Expires with the token, or once used at the session's
    /// deadline (so a reuse is recognised while the session lives).
    pub(super) fn refresh_token(&self, hash_hex: &str) -> String {
        format!("{}t:{hash_hex}", self.refresh)
    }

    /// Set, one per subject: the keys of its refresh sessions, which a logout
    /// everywhere ends. Expires with the latest of them.
    pub(super) fn refresh_subject(&self, issuer: Option<&str>, subject: &str) -> Vec<u8> {
        let mut key = format!("{}u:", self.refresh).into_bytes();
        key.extend_from_slice(&member(issuer, subject));
        key
    }
}

/// Encodes `(issuer, id)` unambiguously: `-<id>` without an issuer, `+<len>:<issuer><id>`
/// with one (`len` in bytes, decimal). Any byte may appear in either part.
pub(super) fn member(issuer: Option<&str>, id: &str) -> Vec<u8> {
    match issuer {
        None => {
            let mut out = Vec::with_capacity(1 + id.len());
            out.push(b'-');
            out.extend_from_slice(id.as_bytes());
            out
        }
        Some(iss) => {
            let len = iss.len().to_string();
            let mut out = Vec::with_capacity(2 + len.len() + iss.len() + id.len());
            out.push(b'+');
            out.extend_from_slice(len.as_bytes());
            out.push(b':');
            out.extend_from_slice(iss.as_bytes());
            out.extend_from_slice(id.as_bytes());
            out
        }
    }
}

/// A denylist member: the token's `exp` in decimal, `.`, then [`member`] of (issuer,
/// jti). The mirror groups revoked tokens by `exp`, so every copy must carry it.
pub(super) fn token_member(expires_at: u64, issuer: Option<&str>, jti: &str) -> Vec<u8> {
    let mut out = expires_at.to_string().into_bytes();
    out.push(b'.');
    out.extend_from_slice(&member(issuer, jti));
    out
}

/// The inverse of [`token_member`].
pub(super) fn parse_token_member(raw: &[u8]) -> Option<(u64, Option<&str>, &str)> {
    let dot = raw.iter().position(|&b| b == b'.')?;
    let digits = &raw[..dot];
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let exp = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let (iss, jti) = parse_member(&raw[dot + 1..])?;
    Some((exp, iss, jti))
}

/// The inverse of [`member`]; `None` for anything it did not produce (or not UTF-8, which
/// no token claim can be).
pub(super) fn parse_member(raw: &[u8]) -> Option<(Option<&str>, &str)> {
    match raw.split_first()? {
        (b'-', id) => Some((None, std::str::from_utf8(id).ok()?)),
        (b'+', rest) => {
            let colon = rest.iter().position(|&b| b == b':')?;
            let digits = &rest[..colon];
            if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
            let body = &rest[colon + 1..];
            if body.len() < len {
                return None;
            }
            let (iss, id) = body.split_at(len);
            Some((
                Some(std::str::from_utf8(iss).ok()?),
                std::str::from_utf8(id).ok()?,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip_and_never_collide() {
        let cases: &[(Option<&str>, &str)] = &[
            (None, ""),
            (None, "abc"),
            (None, "+3:abc"),
            (Some(""), ""),
            (Some(""), "x"),
            (Some("a"), "bc"),
            (Some("ab"), "c"),
            (Some("a:b"), "c:d"),
            (Some("https://issuer.example/"), "0f:1e"),
            (Some("é"), "ü"),
        ];
        let mut seen = std::collections::HashSet::new();
        for &(iss, id) in cases {
            let m = member(iss, id);
            assert!(seen.insert(m.clone()), "collision for {iss:?} {id:?}");
            assert_eq!(parse_member(&m), Some((iss, id)));
        }
    }

    #[test]
    fn token_members_carry_the_expiry() {
        for &(exp, iss, jti) in &[
            (0u64, None, "a"),
            (1_795_944_846, Some("https://issuer.example/"), "x.y"),
            (u64::MAX, Some("1.2"), ""),
        ] {
            let m = token_member(exp, iss, jti);
            assert_eq!(parse_token_member(&m), Some((exp, iss, jti)));
        }
        for raw in [
            &b"-a"[..],
            b".-a",
            b"12",
            b"1x.-a",
            b"123456789012345678901.-a",
        ] {
            assert_eq!(parse_token_member(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn garbage_is_rejected() {
        for raw in [
            &b""[..],
            b"x",
            b"+",
            b"+:",
            b"+5:abc",
            b"+a:b",
            b"-\xff",
            b"+99999999999:a",
        ] {
            assert_eq!(parse_member(raw), None, "{raw:?}");
        }
    }
}
