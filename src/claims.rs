//! The verified claims and the token handle put into request extensions.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Where a request's token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenLocation {
    /// The `Authorization: Bearer` header.
    Header,
    /// A cookie.
    Cookie,
}

/// The registered claims of a verified token, shared by [`Claims`] and [`TokenInfo`],
/// and the application's own claims once decoded.
#[derive(Deserialize)]
pub(crate) struct Registered {
    #[serde(default)]
    pub(crate) iss: Option<String>,
    pub(crate) sub: String,
    #[serde(default)]
    pub(crate) aud: Audience,
    #[serde(deserialize_with = "exp_date")]
    pub(crate) exp: Date,
    #[serde(default, deserialize_with = "opt_nbf_date")]
    pub(crate) nbf: Option<Date>,
    #[serde(deserialize_with = "numeric_date")]
    pub(crate) iat: u64,
    pub(crate) jti: String,
    #[serde(default)]
    pub(crate) iat_us: Option<u64>,
    /// The login session the token belongs to (OpenID's `sid`).
    #[serde(default)]
    pub(crate) sid: Option<String>,
    /// Whether the token has an `events` claim: a security event token, such as a
    /// back-channel logout token, which is never an access token.
    #[serde(default, deserialize_with = "present")]
    pub(crate) events: bool,
    /// The application's claims `C` of [`Claims<C>`] (none for `C = ()`), set by the
    /// verifier; kept here so a cached token hands them out with one reference count.
    #[serde(skip)]
    pub(crate) custom: Option<Box<dyn Any + Send + Sync>>,
}

/// A NumericDate as this crate reads it (`value`) and as `jsonwebtoken` validates it
/// (`nearest`: fractions rounded to the nearest second). A cached token is judged by
/// `nearest`, exactly as `jsonwebtoken` would judge it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Date {
    pub(crate) value: u64,
    pub(crate) nearest: u64,
}

impl Date {
    /// A whole-second date.
    pub(crate) fn whole(secs: u64) -> Self {
        Self {
            value: secs,
            nearest: secs,
        }
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
#[derive(Default)]
pub(crate) struct Audience(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(a) => Audience(vec![a]),
            OneOrMany::Many(v) => Audience(v),
        })
    }
}

/// `true` for a claim that is there, whatever its value.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A NumericDate (RFC 7519 §2): a non-negative JSON number of seconds; fractions are
/// truncated (an earlier `iat` is the conservative side for cutoffs). Anything else (a
/// string, a negative number, `null`) is an error, never "absent".
fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(V(f64::trunc))
}

/// `exp` as a NumericDate with fractions rounded **up**. jsonwebtoken rounds a fraction
/// to the nearest second when it checks `exp`; truncating here would end a revoked
/// token's denylist entry (kept until `exp` plus the leeway) up to a second before the
/// token stops passing, and the revoked token would pass again in that second.
fn exp_date<'de, D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
    d.deserialize_any(DateV(f64::ceil))
}

/// `nbf` as a NumericDate, fractions truncated (as `iat`), with its nearest second.
fn opt_nbf_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    d.deserialize_any(DateV(f64::trunc)).map(Some)
}

/// The NumericDate visitor that also keeps the nearest second.
struct DateV(fn(f64) -> f64);

impl Visitor<'_> for DateV {
    type Value = Date;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative NumericDate")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Date, E> {
        Ok(Date::whole(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Date, E> {
        V(self.0).visit_i64(v).map(Date::whole)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Date, E> {
        Ok(Date {
            value: V(self.0).visit_f64(v)?,
            nearest: V(f64::round).visit_f64(v)?,
        })
    }
}

/// The NumericDate visitor; its function rounds fractions.
struct V(fn(f64) -> f64);

impl Visitor<'_> for V {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative NumericDate")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom("negative NumericDate"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        if (0.0..1.8e19).contains(&v) {
            // Rounded, a value in range is a whole number that fits: the cast is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok((self.0)(v) as u64)
        } else {
            Err(E::custom("NumericDate out of range"))
        }
    }
}

/// A handle on the verified token of the current request: who it belongs to, its id and
/// lifetime, and where it came from. A logout handler passes it to
/// [`Revoker::revoke`](crate::Revoker::revoke) or
/// [`Revoker::revoke_all`](crate::Revoker::revoke_all).
///
/// It is cheap to clone (one reference count). The raw token is not kept.
#[derive(Clone)]
pub struct TokenInfo {
    pub(crate) reg: Arc<Registered>,
    pub(crate) location: TokenLocation,
}

impl TokenInfo {
    /// Describes a token by its claims, with a whole-second issue time.
    ///
    /// The layer builds these itself from verified tokens; this constructor is for store
    /// tests and custom integrations (e.g. revoking a token known only by its claims).
    pub fn new(
        issuer: Option<&str>,
        subject: &str,
        jti: &str,
        issued_at: u64,
        expires_at: u64,
    ) -> Self {
        Self::build(issuer, subject, jti, issued_at, None, expires_at)
    }

    /// Like [`new`](Self::new), with the issue time in microseconds (as `iat_us`).
    pub fn with_micros(
        issuer: Option<&str>,
        subject: &str,
        jti: &str,
        issued_at_micros: u64,
        expires_at: u64,
    ) -> Self {
        Self::build(
            issuer,
            subject,
            jti,
            issued_at_micros / 1_000_000,
            Some(issued_at_micros),
            expires_at,
        )
    }

    /// The handle of a token [`TokenIssuer`](crate::TokenIssuer) just signed.
    pub(crate) fn issued(
        iss: Option<String>,
        sub: &str,
        jti: String,
        iat_us: u64,
        exp: u64,
        aud: &[String],
        sid: Option<&str>,
    ) -> Self {
        Self {
            reg: Arc::new(Registered {
                iss,
                sub: sub.to_owned(),
                aud: Audience(aud.to_vec()),
                exp: Date::whole(exp),
                nbf: None,
                iat: iat_us / 1_000_000,
                jti,
                iat_us: Some(iat_us),
                sid: sid.map(str::to_owned),
                events: false,
                custom: None,
            }),
            location: TokenLocation::Header,
        }
    }

    fn build(
        issuer: Option<&str>,
        subject: &str,
        jti: &str,
        iat: u64,
        iat_us: Option<u64>,
        exp: u64,
    ) -> Self {
        Self {
            reg: Arc::new(Registered {
                iss: issuer.map(str::to_owned),
                sub: subject.to_owned(),
                aud: Audience::default(),
                exp: Date::whole(exp),
                nbf: None,
                iat,
                jti: jti.to_owned(),
                iat_us,
                sid: None,
                events: false,
                custom: None,
            }),
            location: TokenLocation::Header,
        }
    }

    /// The same token, in the login session `sid` (the `sid` claim): for store tests
    /// and custom integrations, like [`new`](Self::new).
    #[must_use]
    pub fn with_session(self, sid: &str) -> Self {
        let r = &self.reg;
        Self {
            reg: Arc::new(Registered {
                iss: r.iss.clone(),
                sub: r.sub.clone(),
                aud: Audience(r.aud.0.clone()),
                exp: r.exp,
                nbf: r.nbf,
                iat: r.iat,
                jti: r.jti.clone(),
                iat_us: r.iat_us,
                sid: Some(sid.to_owned()),
                events: false,
                custom: None,
            }),
            location: self.location,
        }
    }

    /// The `iss` claim, if the token has one.
    pub fn issuer(&self) -> Option<&str> {
        self.reg.iss.as_deref()
    }

    /// The `sid` claim: the login session the token belongs to, if it names one. Ending
    /// the session ([`Revoker::end_session`](crate::Revoker::end_session)) refuses every
    /// token that carries it.
    pub fn session_id(&self) -> Option<&str> {
        self.reg.sid.as_deref()
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.reg.sub
    }

    /// The `jti` claim: the token's id.
    pub fn jti(&self) -> &str {
        &self.reg.jti
    }

    /// The `aud` claim: empty when absent.
    pub fn audience(&self) -> &[String] {
        &self.reg.aud.0
    }

    /// The `iat` claim, in seconds since the Unix epoch.
    pub fn issued_at(&self) -> u64 {
        self.reg.iat
    }

    /// The issue time in microseconds when the token carries it (tokens from
    /// [`TokenIssuer`](crate::TokenIssuer) do, as the `iat_us` claim).
    pub fn issued_at_micros(&self) -> Option<u64> {
        self.reg.iat_us
    }

    /// The `exp` claim, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.reg.exp.value
    }

    /// The `nbf` claim, if the token has one.
    pub fn not_before(&self) -> Option<u64> {
        self.reg.nbf.map(|d| d.value)
    }

    /// Where the token was found.
    pub fn location(&self) -> TokenLocation {
        self.location
    }

    /// The earliest microsecond at which the token may have been issued: `iat_us` when
    /// present, else the start of the `iat` second. A subject cutoff at or after this
    /// stamp revokes the token; for a whole-second token this is conservative (a token
    /// issued in the same second as a logout-everywhere is treated as issued before it).
    pub fn issue_stamp(&self) -> u64 {
        self.reg
            .iat_us
            .unwrap_or_else(|| self.reg.iat.saturating_mul(1_000_000))
    }
}

impl fmt::Debug for TokenInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenInfo")
            .field("issuer", &self.issuer())
            .field("subject", &self.subject())
            .field("jti", &self.jti())
            .field("issued_at", &self.issued_at())
            .field("expires_at", &self.expires_at())
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// The verified claims of the current request: the registered claims and the
/// application's own claims `C`.
///
/// `C` is any `serde::de::DeserializeOwned` type; it is deserialized from the same JSON
/// object as the registered claims (`#[serde(flatten)]`), so its fields sit beside `sub`
/// and `exp`. The default `C = ()` ignores every other claim.
///
/// `Claims` serializes back to one flat JSON object, which is handy for a "who am I"
/// endpoint.
///
/// Cloning is one reference count: the claims are decoded once per token and shared.
pub struct Claims<C = ()> {
    pub(crate) token: TokenInfo,
    _custom: PhantomData<fn() -> C>,
}

impl<C> Clone for Claims<C> {
    fn clone(&self) -> Self {
        Self {
            token: self.token.clone(),
            _custom: PhantomData,
        }
    }
}

/// The claims of a token known only by its handle, with no custom claims: for testing a
/// handler that takes [`Claims`] without the layer in front of it, or for rendering
/// claims of the same shape ([`write_json`](Claims::write_json)).
impl From<TokenInfo> for Claims {
    fn from(token: TokenInfo) -> Self {
        Self::verified(token)
    }
}

impl<C: Send + Sync + 'static> Claims<C> {
    /// The claims of a token whose [`Registered::custom`] holds a `C` (none for `()`),
    /// or `None` when it holds another type.
    pub(crate) fn from_token(token: TokenInfo) -> Option<Self> {
        let holds_c = match token.reg.custom.as_deref() {
            None => is_unit::<C>(),
            Some(custom) => custom.is::<C>(),
        };
        holds_c.then_some(Self {
            token,
            _custom: PhantomData,
        })
    }

    /// The claims of a token just verified with `C` (its `custom` set by
    /// [`boxed_custom`](Self::boxed_custom)).
    pub(crate) fn verified(token: TokenInfo) -> Self {
        Self {
            token,
            _custom: PhantomData,
        }
    }

    /// Boxes `custom` for [`Registered::custom`]: nothing for `()`.
    pub(crate) fn boxed_custom(custom: C) -> Option<Box<dyn Any + Send + Sync>> {
        if is_unit::<C>() {
            None
        } else {
            Some(Box::new(custom))
        }
    }
}

fn is_unit<C: 'static>() -> bool {
    std::any::TypeId::of::<C>() == std::any::TypeId::of::<()>()
}

impl<C: 'static> Claims<C> {
    /// The application's own claims.
    pub fn custom(&self) -> &C {
        if let Some(unit) = (&() as &dyn Any).downcast_ref::<C>() {
            return unit;
        }
        // `from_token` checked that `custom` holds a `C`; the claims are immutable.
        match self
            .token
            .reg
            .custom
            .as_deref()
            .and_then(|c| c.downcast_ref::<C>())
        {
            Some(custom) => custom,
            None => unreachable!("Claims<C> is only built around a C"),
        }
    }

    /// The application's own claims, cloned out (they are shared with every clone of
    /// these claims, and with the verified-token cache).
    pub fn into_custom(self) -> C
    where
        C: Clone,
    {
        self.custom().clone()
    }
}

impl<C> Claims<C> {
    /// The token handle (issuer, subject, `jti`, times, location).
    pub fn token(&self) -> &TokenInfo {
        &self.token
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        self.token.subject()
    }

    /// The `iss` claim, if the token has one.
    pub fn issuer(&self) -> Option<&str> {
        self.token.issuer()
    }

    /// The `jti` claim.
    pub fn jti(&self) -> &str {
        self.token.jti()
    }

    /// The `iat` claim, in seconds.
    pub fn issued_at(&self) -> u64 {
        self.token.issued_at()
    }

    /// The `exp` claim, in seconds.
    pub fn expires_at(&self) -> u64 {
        self.token.expires_at()
    }
}

impl<C> fmt::Debug for Claims<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Claims may hold personal data: print only the handle.
        f.debug_struct("Claims")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl<C: Serialize + 'static> Serialize for Claims<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Aud<'a> {
            One(&'a str),
            Many(&'a [String]),
        }
        #[derive(Serialize)]
        struct Flat<'a, C> {
            #[serde(skip_serializing_if = "Option::is_none")]
            iss: Option<&'a str>,
            sub: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            aud: Option<Aud<'a>>,
            exp: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            nbf: Option<u64>,
            iat: u64,
            jti: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            iat_us: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            sid: Option<&'a str>,
            #[serde(flatten)]
            custom: &'a C,
        }
        let r = &self.token.reg;
        Flat {
            iss: r.iss.as_deref(),
            sub: &r.sub,
            aud: match r.aud.0.as_slice() {
                [] => None,
                [one] => Some(Aud::One(one)),
                many => Some(Aud::Many(many)),
            },
            exp: r.exp.value,
            nbf: r.nbf.map(|d| d.value),
            iat: r.iat,
            jti: &r.jti,
            iat_us: r.iat_us,
            sid: r.sid.as_deref(),
            custom: self.custom(),
        }
        .serialize(serializer)
    }
}

impl<C: Serialize + 'static> Claims<C> {
    /// Appends these claims to `out` as one JSON object: the same bytes as
    /// `serde_json::to_writer(out, &claims)`, for a "who am I" endpoint.
    ///
    /// Without custom claims (`C = ()`) the registered claims are written directly: each
    /// name as one constant, each string checked eight bytes at a time and copied whole
    /// unless it needs escaping, where `serde_json`'s serializer escapes every name and
    /// value byte by byte. With custom claims it is `serde_json::to_writer`.
    ///
    /// ```
    /// # fn render(claims: &tower_jwt_auth::Claims) -> Vec<u8> {
    /// let mut body = Vec::with_capacity(256);
    /// claims.write_json(&mut body).expect("registered claims always render");
    /// # body }
    /// ```
    ///
    /// # Errors
    ///
    /// Only what `C`'s `Serialize` reports (a map with non-string keys, say); never for
    /// `C = ()`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        if !is_unit::<C>() {
            return serde_json::to_writer(out, self);
        }
        let r = &self.token.reg;
        match &r.iss {
            Some(iss) => {
                out.extend_from_slice(br#"{"iss":"#);
                json_str(out, iss)?;
                out.extend_from_slice(br#","sub":"#);
            }
            None => out.extend_from_slice(br#"{"sub":"#),
        }
        json_str(out, &r.sub)?;
        match r.aud.0.as_slice() {
            [] => {}
            [one] => {
                out.extend_from_slice(br#","aud":"#);
                json_str(out, one)?;
            }
            many => {
                out.extend_from_slice(br#","aud":["#);
                for (i, aud) in many.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_str(out, aud)?;
                }
                out.push(b']');
            }
        }
        out.extend_from_slice(br#","exp":"#);
        json_u64(out, r.exp.value);
        if let Some(nbf) = r.nbf {
            out.extend_from_slice(br#","nbf":"#);
            json_u64(out, nbf.value);
        }
        out.extend_from_slice(br#","iat":"#);
        json_u64(out, r.iat);
        out.extend_from_slice(br#","jti":"#);
        json_str(out, &r.jti)?;
        if let Some(iat_us) = r.iat_us {
            out.extend_from_slice(br#","iat_us":"#);
            json_u64(out, iat_us);
        }
        if let Some(sid) = &r.sid {
            out.extend_from_slice(br#","sid":"#);
            json_str(out, sid)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// A JSON string: copied whole between quotes when no byte needs escaping, else
/// `serde_json`'s escaping.
#[inline]
fn json_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if needs_escape(s.as_bytes()) {
        return serde_json::to_writer(out, s);
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

/// Whether `s` holds a byte that `serde_json` escapes in a string: a control character
/// (below `0x20`), `"` or `\`. Eight bytes at a time: a claim is tens of bytes, and a
/// byte-by-byte check cost more than copying it.
fn needs_escape(s: &[u8]) -> bool {
    let mut chunks = s.chunks_exact(8);
    let mut found = 0;
    for chunk in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        found |= escapes_in(u64::from_le_bytes(word));
    }
    // The last bytes, padded with a byte that needs no escaping.
    let rest = chunks.remainder();
    let mut word = [b'a'; 8];
    word[..rest.len()].copy_from_slice(rest);
    found |= escapes_in(u64::from_le_bytes(word));
    found != 0
}

/// Non-zero when a byte of `x` is below `0x20`, `"` or `\` (the word-at-a-time tests
/// "has a byte less than n" and "has a zero byte", exact as to whether there is one).
#[inline(always)]
fn escapes_in(x: u64) -> u64 {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    control | has_zero(x ^ (ONES * u64::from(b'"'))) | has_zero(x ^ (ONES * u64::from(b'\\')))
}

/// A JSON number: the decimal digits of `n`.
#[inline]
fn json_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// What `jsonwebtoken` deserializes the payload into: registered and custom claims from
/// one JSON object.
pub(crate) struct Wire<C> {
    pub(crate) reg: Registered,
    pub(crate) custom: C,
}

impl<'de, C> Deserialize<'de> for Wire<C>
where
    C: serde::de::DeserializeOwned + Clone + 'static,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Without custom claims (`C = ()`, the common case) the registered claims are
        // read straight from the payload, with no intermediate buffer.
        if let Some(unit) = (&() as &dyn std::any::Any).downcast_ref::<C>() {
            return Ok(Wire {
                reg: Registered::deserialize(d)?,
                custom: unit.clone(),
            });
        }
        // Otherwise both views read the same JSON text, so `C` sees the whole object
        // (registered claims included), as with `#[serde(flatten)]`.
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        let reg = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
        let custom = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
        Ok(Wire { reg, custom })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claims(reg: Registered) -> Claims {
        Claims::verified(TokenInfo {
            reg: Arc::new(reg),
            location: TokenLocation::Header,
        })
    }

    /// Strings of every kind: plain ASCII, the bytes JSON escapes, and any character.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_.-]{0,24}",
            "[\u{0}-\u{1f}\"\\\\a\u{7f}]{0,8}",
            any::<String>(),
            // One byte to escape at any place of a longer plain string.
            (
                "[a-zA-Z0-9é_.-]{0,40}",
                any::<prop::sample::Index>(),
                "[\u{0}-\u{1f}\"\\\\]"
            )
                .prop_map(|(plain, at, special)| {
                    let cut = plain
                        .char_indices()
                        .map(|(i, _)| i)
                        .chain([plain.len()])
                        .nth(at.index(plain.chars().count() + 1))
                        .unwrap_or(0);
                    format!("{}{special}{}", &plain[..cut], &plain[cut..])
                }),
        ]
    }

    #[test]
    fn needs_escape_finds_each_escaped_byte_at_each_place() {
        for len in 0..20 {
            assert!(!needs_escape(&vec![b'a'; len]));
            assert!(!needs_escape("é".repeat(len).as_bytes()));
            for at in 0..len {
                for b in 0..=u8::MAX {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let escaped = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&s), escaped, "byte {b:#04x} at {at} of {len}");
                }
            }
        }
    }

    /// The registered claims as plain values (`Registered` has no `Debug`, so that the
    /// claims never print): `(iss, sub, aud)`, `(exp, nbf, iat)`, `(jti, iat_us, sid)`.
    type Parts = (
        (Option<String>, String, Vec<String>),
        (u64, Option<u64>, u64),
        (String, Option<u64>, Option<String>),
    );

    fn parts() -> impl Strategy<Value = Parts> {
        (
            (
                proptest::option::of(text()),
                text(),
                proptest::collection::vec(text(), 0..4),
            ),
            (
                any::<u64>(),
                proptest::option::of(any::<u64>()),
                any::<u64>(),
            ),
            (
                text(),
                proptest::option::of(any::<u64>()),
                proptest::option::of(text()),
            ),
        )
    }

    fn registered(((iss, sub, aud), (exp, nbf, iat), (jti, iat_us, sid)): Parts) -> Registered {
        Registered {
            iss,
            sub,
            aud: Audience(aud),
            exp: Date::whole(exp),
            nbf: nbf.map(Date::whole),
            iat,
            jti,
            iat_us,
            sid,
            events: false,
            custom: None,
        }
    }

    proptest! {
        #[test]
        fn write_json_renders_what_serde_json_renders(parts in parts()) {
            let claims = claims(registered(parts));
            let mut fast = b"prefix".to_vec();
            claims.write_json(&mut fast).unwrap();
            let mut serde = b"prefix".to_vec();
            serde_json::to_writer(&mut serde, &claims).unwrap();
            prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(serde).unwrap());
        }
    }

    #[test]
    fn write_json_escapes_and_keeps_every_claim() {
        let claims = claims(Registered {
            iss: Some("https://idp.example/".into()),
            sub: "a\"b\\c\nd\u{1}é".into(),
            aud: Audience(vec!["api".into(), "web".into()]),
            exp: Date::whole(u64::MAX),
            nbf: Some(Date::whole(0)),
            iat: 10,
            jti: "j".into(),
            iat_us: Some(10_000_001),
            sid: Some("s".into()),
            events: false,
            custom: None,
        });
        let mut out = Vec::new();
        claims.write_json(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"iss":"https://idp.example/","sub":"a\"b\\c\nd\u0001é","aud":["api","web"],"exp":18446744073709551615,"nbf":0,"iat":10,"jti":"j","iat_us":10000001,"sid":"s"}"#
        );
    }

    #[test]
    fn write_json_with_custom_claims_is_serde_json() {
        #[derive(Clone, Serialize)]
        struct Extra {
            role: &'static str,
        }
        let token = TokenInfo {
            reg: Arc::new(Registered {
                iss: None,
                sub: "u".into(),
                aud: Audience(vec!["one".into()]),
                exp: Date::whole(2),
                nbf: None,
                iat: 1,
                jti: "j".into(),
                iat_us: None,
                sid: None,
                events: false,
                custom: Claims::<Extra>::boxed_custom(Extra { role: "admin" }),
            }),
            location: TokenLocation::Cookie,
        };
        let claims = Claims::<Extra>::verified(token);
        let mut out = Vec::new();
        claims.write_json(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"sub":"u","aud":"one","exp":2,"iat":1,"jti":"j","role":"admin"}"#
        );
    }
}
