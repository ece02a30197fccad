//! Redis key names and the encoding of (issuer, id) pairs as set members.
//!
//! Every key of a store starts with its prefix. With Redis Cluster the prefix carries a
//! hash tag ([`cluster_prefix`]), so every key of the store, refresh-token keys
//! included, hashes to one slot ([`key_slot`]) and every script can touch all of them.

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

    /// The start of every [`refresh_session`](Self::refresh_session) key.
    pub(super) fn refresh_session_prefix(&self) -> String {
        format!("{}s:", self.refresh)
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

/// The prefix a store uses with Redis Cluster for the configured `prefix`: `prefix`
/// itself when it holds a hash tag of its own (a `{`, then a `}` with at least one byte
/// between them, the first such pair Redis would see), else `prefix` wrapped in braces
/// (`tower-jwt-auth:` becomes `{tower-jwt-auth:}`). The hash tag then lies inside the
/// prefix, so whatever follows it (a refresh token's hash, an encoded subject) never
/// moves a key to another slot. `None` when no hash tag can be made (an empty prefix,
/// or one whose braces would enclose nothing, such as `}x`).
pub(super) fn cluster_prefix(prefix: &str) -> Option<String> {
    if own_tag(prefix.as_bytes()).is_some() {
        return Some(prefix.to_owned());
    }
    let wrapped = format!("{{{prefix}}}");
    own_tag(wrapped.as_bytes()).is_some().then_some(wrapped)
}

/// The hash tag Redis would take from any key that starts with `prefix`, when it lies
/// entirely inside `prefix`: the bytes between the first `{` and the first `}` after
/// it, if there are any.
fn own_tag(prefix: &[u8]) -> Option<&[u8]> {
    let open = prefix.iter().position(|&b| b == b'{')?;
    let close = prefix[open + 1..].iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &prefix[open + 1..open + 1 + close])
}

/// The cluster slot of `key` (0 to 16383), as Redis computes it: CRC16 (XMODEM) of the
/// key's hash tag if it has one, of the whole key otherwise, modulo 16384.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(close) if close > 0 => &key[open + 1..open + 1 + close],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & 0x3fff
}

/// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as Redis Cluster uses.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
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
    fn slots_are_redis_slots() {
        // Redis's own figures (CLUSTER KEYSLOT).
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}".as_slice()));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn cluster_prefixes_put_every_key_in_one_slot() {
        for (prefix, want) in [
            ("tower-jwt-auth:", Some("{tower-jwt-auth:}")),
            ("{app}:", Some("{app}:")),
            ("a{b}c:", Some("a{b}c:")),
            ("a{b:", Some("{a{b:}")),
            ("x}y:", Some("{x}y:}")),
            ("{}", Some("{{}}")),
            ("", None),
            ("}x", None),
        ] {
            assert_eq!(cluster_prefix(prefix).as_deref(), want, "{prefix:?}");
        }
        for prefix in ["tower-jwt-auth:", "{app}:", "a{b:", "x}y:", "{}"] {
            let keys = Keys::new(&cluster_prefix(prefix).unwrap());
            let slot = key_slot(keys.feed.as_bytes());
            let hostile = "}{x}";
            for key in [
                keys.denylist.into_bytes(),
                keys.cutoffs.into_bytes(),
                keys.cutoff_expiry.into_bytes(),
                keys.sessions.into_bytes(),
                keys.session_expiry.into_bytes(),
                Keys::new(&cluster_prefix(prefix).unwrap()).refresh_session(Some(hostile), hostile),
                Keys::new(&cluster_prefix(prefix).unwrap()).refresh_subject(None, hostile),
                Keys::new(&cluster_prefix(prefix).unwrap())
                    .refresh_token("{ab}")
                    .into_bytes(),
            ] {
                assert_eq!(key_slot(&key), slot, "{prefix:?}: {key:?}");
            }
        }
    }

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
