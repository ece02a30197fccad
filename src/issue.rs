//! Issuing tokens at login, and the login and logout cookies.

use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use http::HeaderValue;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::claims::TokenInfo;
use crate::clock;
use crate::error::{ConfigError, ConfigErrorKind, IssueError, IssueErrorKind};
use crate::layer::DEFAULT_MAX_TOKEN_LIFETIME;
use crate::verify::{check_secret, ensure_crypto_backend};

/// Claim names this crate sets itself; custom claims may not use them.
const REGISTERED: [&str; 9] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "iat_us", "sid",
];

/// Signs tokens at login: `sub`, a fresh random `jti`, `iat`, `iat_us` (the issue time in
/// microseconds, which orders a login against a logout-everywhere in the same second),
/// `exp` from the configured lifetime, and `iss`/`aud` when configured.
#[derive(Clone)]
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    lifetime: Duration,
    max_lifetime: Duration,
    issuer: Option<String>,
    audience: Vec<String>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("algorithm", &self.header.alg)
            .field("kid", &self.header.kid)
            .field("lifetime", &self.lifetime)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// The default token lifetime: 15 minutes.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

impl TokenIssuer {
    /// An issuer signing with `key` and `algorithm`.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::AlgorithmMismatch`] when the key does not fit the algorithm;
    /// [`ConfigErrorKind::NoCryptoBackend`] without a usable crypto backend.
    pub fn new(algorithm: Algorithm, key: EncodingKey) -> Result<Self, ConfigError> {
        ensure_crypto_backend()?;
        if key.family() != algorithm.family() {
            return Err(ConfigError::new(
                ConfigErrorKind::AlgorithmMismatch,
                format!("a {:?} key cannot sign {algorithm:?}", key.family()),
            ));
        }
        let mut header = Header::new(algorithm);
        header.typ = Some("JWT".into());
        Ok(Self {
            key,
            header,
            lifetime: DEFAULT_TOKEN_LIFETIME,
            max_lifetime: DEFAULT_MAX_TOKEN_LIFETIME,
            issuer: None,
            audience: Vec::new(),
        })
    }

    /// An `HS256` issuer from a secret of at least 32 bytes.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::WeakSecret`] for a shorter secret.
    pub fn hs256(secret: &[u8]) -> Result<Self, ConfigError> {
        check_secret(Algorithm::HS256, secret)?;
        let key = EncodingKey::from_secret(secret).map_err(|e| {
            ConfigError::new(ConfigErrorKind::InvalidKey, "the secret could not be used")
                .with_source(e)
        })?;
        Self::new(Algorithm::HS256, key)
    }

    /// Sets the `kid` header, naming the key that verifies these tokens.
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.header.kid = Some(kid.into());
        self
    }

    /// Sets the `typ` header (default `JWT`; RFC 9068 access tokens use `at+jwt`).
    #[must_use]
    pub fn typ(mut self, typ: impl Into<String>) -> Self {
        self.header.typ = Some(typ.into());
        self
    }

    /// Sets the token lifetime (default 15 minutes), in whole seconds. It must be at
    /// least one second and at most [`max_lifetime`](Self::max_lifetime), or
    /// [`issue`](Self::issue) refuses to sign tokens that would be dead on arrival.
    #[must_use]
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The longest lifetime the verifying layers accept (default 24 h, the layer's
    /// default): set it to the layer's
    /// [`max_token_lifetime`](crate::JwtAuthLayerBuilder::max_token_lifetime) when that
    /// is changed, so that a lifetime the layer would refuse is caught here.
    #[must_use]
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// Sets the `iss` claim.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Adds an audience to the `aud` claim.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// Signs a token for `subject` with no custom claims.
    ///
    /// # Errors
    ///
    /// [`IssueError`] if the lifetime is out of bounds, no randomness is available or
    /// signing fails.
    pub fn issue(&self, subject: &str) -> Result<IssuedToken, IssueError> {
        self.issue_with(subject, &())
    }

    /// Signs a token for `subject` with the application's own claims `custom`, which must
    /// serialize to a JSON object (or to nothing) and must not use a registered claim name
    /// (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`, `jti`, `iat_us`, `sid`).
    ///
    /// # Errors
    ///
    /// [`IssueError`] if the custom claims are not an object or collide with a registered
    /// claim ([`IssueErrorKind::InvalidClaims`]), the lifetime is under a second or over
    /// the [`max_lifetime`](Self::max_lifetime) ([`IssueErrorKind::InvalidLifetime`]),
    /// no randomness is available, or signing fails.
    pub fn issue_with<C: Serialize>(
        &self,
        subject: &str,
        custom: &C,
    ) -> Result<IssuedToken, IssueError> {
        self.sign(subject, None, custom)
    }

    /// Signs a token for `subject` in the login session `sid` (the `sid` claim, as
    /// OpenID names it), so that ending the session
    /// ([`Revoker::end_session`](crate::Revoker::end_session)) refuses every token of it
    /// at once; [`new_session_id`](Self::new_session_id) makes a fresh id at login.
    ///
    /// # Errors
    ///
    /// As [`issue_with`](Self::issue_with), and [`IssueErrorKind::InvalidClaims`] for an
    /// empty `sid` or one over 255 bytes.
    pub fn issue_in_session<C: Serialize>(
        &self,
        subject: &str,
        sid: &str,
        custom: &C,
    ) -> Result<IssuedToken, IssueError> {
        if sid.is_empty() || sid.len() > 255 {
            return Err(IssueError::new(
                IssueErrorKind::InvalidClaims,
                "a session id must be 1 to 255 bytes long",
            ));
        }
        self.sign(subject, Some(sid), custom)
    }

    /// A fresh session id: 128 random bits, URL-safe base64 (22 characters).
    ///
    /// # Errors
    ///
    /// [`IssueErrorKind::NoRandomness`] when the system has no randomness to give.
    pub fn new_session_id() -> Result<String, IssueError> {
        random_id("no randomness for the session id")
    }

    fn sign<C: Serialize>(
        &self,
        subject: &str,
        sid: Option<&str>,
        custom: &C,
    ) -> Result<IssuedToken, IssueError> {
        let lifetime = self.lifetime.as_secs();
        if lifetime == 0 {
            return Err(IssueError::new(
                IssueErrorKind::InvalidLifetime,
                "the token lifetime is under one second: the token would be expired when issued",
            ));
        }
        if self.lifetime > self.max_lifetime {
            return Err(IssueError::new(
                IssueErrorKind::InvalidLifetime,
                "the token lifetime is over max_lifetime: the layer would refuse the token",
            ));
        }
        let custom = match serde_json::to_value(custom) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(serde_json::Value::Null) => serde_json::Map::new(),
            Ok(_) => {
                return Err(IssueError::new(
                    IssueErrorKind::InvalidClaims,
                    "custom claims must serialize to a JSON object",
                ));
            }
            Err(e) => {
                return Err(IssueError::new(
                    IssueErrorKind::InvalidClaims,
                    "custom claims could not be serialized",
                )
                .with_source(e));
            }
        };
        if custom.keys().any(|k| REGISTERED.contains(&k.as_str())) {
            return Err(IssueError::new(
                IssueErrorKind::InvalidClaims,
                "custom claims use a registered claim name (iss, sub, aud, exp, nbf, iat, jti, iat_us, sid)",
            ));
        }
        let jti = random_id("no randomness for the token id")?;
        let iat_us = clock::stamp();
        let iat = iat_us / 1_000_000;
        let exp = iat.saturating_add(lifetime);

        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            iss: Option<&'a str>,
            sub: &'a str,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            aud: &'a [String],
            exp: u64,
            iat: u64,
            iat_us: u64,
            jti: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            sid: Option<&'a str>,
            #[serde(flatten)]
            custom: &'a serde_json::Map<String, serde_json::Value>,
        }
        let claims = Out {
            iss: self.issuer.as_deref(),
            sub: subject,
            aud: &self.audience,
            exp,
            iat,
            iat_us,
            jti: &jti,
            sid,
            custom: &custom,
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|e| {
            IssueError::new(IssueErrorKind::Signing, "the token could not be signed").with_source(e)
        })?;
        let info = TokenInfo::issued(
            self.issuer.clone(),
            subject,
            jti,
            iat_us,
            exp,
            &self.audience,
            sid,
        );
        Ok(IssuedToken {
            token,
            info,
            lifetime,
        })
    }
}

/// 128 random bits, URL-safe base64 without padding.
fn random_id(why: &'static str) -> Result<String, IssueError> {
    random_base64::<16>(why)
}

/// `N` random bytes, URL-safe base64 without padding.
pub(crate) fn random_base64<const N: usize>(why: &'static str) -> Result<String, IssueError> {
    let mut id = [0u8; N];
    getrandom::fill(&mut id)
        .map_err(|e| IssueError::new(IssueErrorKind::NoRandomness, why).with_source(e))?;
    Ok(URL_SAFE_NO_PAD.encode(id))
}

/// A freshly signed token and what a login response needs to say about it.
#[derive(Clone)]
pub struct IssuedToken {
    token: String,
    info: TokenInfo,
    lifetime: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the token itself.
        f.debug_struct("IssuedToken")
            .field("jti", &self.jti())
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}

impl IssuedToken {
    /// The compact JWT.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// Takes the compact JWT out.
    pub fn into_string(self) -> String {
        self.token
    }

    /// The token's handle, as the layer puts it in a request's extensions: for
    /// example to revoke the token without receiving it back.
    pub fn info(&self) -> &TokenInfo {
        &self.info
    }

    /// The token's `jti`.
    pub fn jti(&self) -> &str {
        self.info.jti()
    }

    /// The issue time in microseconds (`iat_us`).
    pub fn issued_at_micros(&self) -> u64 {
        self.info.issue_stamp()
    }

    /// The `exp` claim, in Unix seconds.
    pub fn expires_at(&self) -> u64 {
        self.info.expires_at()
    }

    /// Seconds from issue to expiry: the OAuth `expires_in` and the cookie's `Max-Age`.
    pub fn expires_in(&self) -> u64 {
        self.lifetime
    }
}

/// Whether `name` is an RFC 6265 cookie name (an RFC 7230 token).
pub(crate) fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn valid_attribute(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b';')
}

/// A `Set-Cookie` cookie's validated attributes, shared by [`TokenCookie`] and
/// [`RefreshCookie`](crate::RefreshCookie): always `HttpOnly`, with its own `SameSite`.
#[derive(Clone, Debug)]
pub(crate) struct CookieAttrs {
    name: String,
    path: String,
    domain: Option<String>,
    secure: bool,
    same_site: SameSite,
}

impl CookieAttrs {
    /// `Secure`, no `Domain`, the given `Path` and `SameSite`.
    pub(crate) fn new(name: String, path: &str, same_site: SameSite) -> Result<Self, ConfigError> {
        if !valid_cookie_name(&name) {
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidSetting,
                format!("{name:?} is not a valid cookie name"),
            ));
        }
        Ok(Self {
            name,
            path: path.to_owned(),
            domain: None,
            secure: true,
            same_site,
        })
    }

    pub(crate) fn set_secure(&mut self, secure: bool) {
        self.secure = secure;
    }

    pub(crate) fn set_path(&mut self, path: String) -> Result<(), ConfigError> {
        if !valid_attribute(&path) || !path.starts_with('/') {
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidSetting,
                format!("{path:?} is not a valid cookie path"),
            ));
        }
        self.path = path;
        Ok(())
    }

    pub(crate) fn set_domain(&mut self, domain: String) -> Result<(), ConfigError> {
        if !valid_attribute(&domain) {
            return Err(ConfigError::new(
                ConfigErrorKind::InvalidSetting,
                format!("{domain:?} is not a valid cookie domain"),
            ));
        }
        self.domain = Some(domain);
        Ok(())
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The `Set-Cookie` value holding `value` for `max_age` seconds; `0` deletes it.
    pub(crate) fn header(&self, value: &str, max_age: u64) -> HeaderValue {
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        let mut c = Cookie::build((self.name.as_str(), value))
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .path(self.path.as_str())
            .max_age(cookie::time::Duration::seconds(max_age));
        if let Some(domain) = &self.domain {
            c = c.domain(domain.as_str());
        }
        if max_age == 0 {
            c = c.expires(cookie::time::OffsetDateTime::UNIX_EPOCH);
        }
        // Name, path and domain were validated and tokens are base64url: always valid.
        HeaderValue::try_from(c.build().to_string())
            .unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The token cookie: `Set-Cookie` values for login and logout.
///
/// The login cookie is `HttpOnly` (scripts cannot read it), `Secure` unless turned off
/// (for plain-HTTP development), `SameSite=Lax`, `Path=/` unless changed, with `Max-Age`
/// equal to the token lifetime. The logout cookie has the same name, `Path` and `Domain`,
/// an empty value and `Max-Age=0`, so the browser deletes it.
#[derive(Clone, Debug)]
pub struct TokenCookie {
    attrs: CookieAttrs,
}

impl TokenCookie {
    /// A cookie named `name` (for example `access_token`).
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidSetting`] if `name` is not a valid cookie name.
    pub fn new(name: impl Into<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            attrs: CookieAttrs::new(name.into(), "/", SameSite::Lax)?,
        })
    }

    /// Whether to mark the cookie `Secure` (sent over HTTPS only). Default `true`; turn it
    /// off only for plain-HTTP development.
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.attrs.set_secure(secure);
        self
    }

    /// Sets the cookie's `Path` (default `/`).
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidSetting`] for an empty path or one with `;`, spaces or
    /// control characters.
    pub fn path(mut self, path: impl Into<String>) -> Result<Self, ConfigError> {
        self.attrs.set_path(path.into())?;
        Ok(self)
    }

    /// Sets the cookie's `Domain` (default: none, a host-only cookie).
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidSetting`] for an empty domain or one with `;`, spaces or
    /// control characters.
    pub fn domain(mut self, domain: impl Into<String>) -> Result<Self, ConfigError> {
        self.attrs.set_domain(domain.into())?;
        Ok(self)
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        self.attrs.name()
    }

    /// The `Set-Cookie` value that stores `token` at login.
    pub fn login(&self, token: &IssuedToken) -> HeaderValue {
        self.attrs.header(token.as_str(), token.expires_in())
    }

    /// The `Set-Cookie` value that deletes the cookie at logout.
    pub fn logout(&self) -> HeaderValue {
        self.attrs.header("", 0)
    }
}
