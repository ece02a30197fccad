//! Verification keys, pinned algorithms, and the verification of one token.

use std::fmt;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::de::DeserializeOwned;

use crate::claims::{Claims, Registered, TokenInfo, TokenLocation, Wire};
use crate::clock;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::rejection::{Rejection, reasons};

/// A key that verifies tokens, pinned to exactly one algorithm, optionally named by a
/// `kid`.
///
/// The token's header never chooses the key type: a token is checked only with the key
/// its `kid` names (or the one key without a `kid`, for tokens without one), and only
/// with that key's algorithm. `alg: none` never passes.
#[derive(Clone)]
pub struct VerificationKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The shortest HMAC secret RFC 7518 §3.2 allows for `alg`: the hash output size.
pub(crate) fn min_hmac_len(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

fn pem_error(e: jsonwebtoken::errors::Error) -> ConfigError {
    ConfigError::new(ConfigErrorKind::InvalidKey, "the key could not be read").with_source(e)
}

impl VerificationKey {
    /// A key for `algorithm` from a `jsonwebtoken` [`DecodingKey`].
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::AlgorithmMismatch`] when the key's type does not fit the
    /// algorithm (e.g. an RSA key for `HS256`).
    pub fn new(algorithm: Algorithm, key: DecodingKey) -> Result<Self, ConfigError> {
        if key.family() != algorithm.family() {
            return Err(ConfigError::new(
                ConfigErrorKind::AlgorithmMismatch,
                format!("a {:?} key cannot verify {algorithm:?}", key.family()),
            ));
        }
        Ok(Self {
            kid: None,
            algorithm,
            key,
        })
    }

    /// An HMAC key (`HS256`, `HS384` or `HS512`) from a secret.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::WeakSecret`] when the secret is shorter than the hash output
    /// (32 bytes for `HS256`); [`ConfigErrorKind::AlgorithmMismatch`] for a non-HMAC
    /// algorithm.
    pub fn hmac(algorithm: Algorithm, secret: &[u8]) -> Result<Self, ConfigError> {
        check_secret(algorithm, secret)?;
        let key = DecodingKey::from_secret(secret).map_err(pem_error)?;
        Self::new(algorithm, key)
    }

    /// An `HS256` key from a secret of at least 32 bytes.
    ///
    /// # Errors
    ///
    /// As [`hmac`](Self::hmac).
    pub fn hs256(secret: &[u8]) -> Result<Self, ConfigError> {
        Self::hmac(Algorithm::HS256, secret)
    }

    /// An RSA public key in PEM for `RS256`/`RS384`/`RS512`/`PS256`/`PS384`/`PS512`.
    ///
    /// # Errors
    ///
    /// [`ConfigErrorKind::InvalidKey`] if the PEM cannot be read;
    /// [`ConfigErrorKind::AlgorithmMismatch`] for a non-RSA algorithm.
    pub fn rsa_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        Self::new(
            algorithm,
            DecodingKey::from_rsa_pem(pem).map_err(pem_error)?,
        )
    }

    /// An EC public key in PEM for `ES256`/`ES384`.
    ///
    /// # Errors
    ///
    /// As [`rsa_pem`](Self::rsa_pem).
    pub fn ec_pem(algorithm: Algorithm, pem: &[u8]) -> Result<Self, ConfigError> {
        Self::new(algorithm, DecodingKey::from_ec_pem(pem).map_err(pem_error)?)
    }

    /// An Ed25519 public key in PEM for `EdDSA`.
    ///
    /// # Errors
    ///
    /// As [`rsa_pem`](Self::rsa_pem).
    pub fn ed_pem(pem: &[u8]) -> Result<Self, ConfigError> {
        Self::new(
            Algorithm::EdDSA,
            DecodingKey::from_ed_pem(pem).map_err(pem_error)?,
        )
    }

    /// Names the key: tokens whose header carries this `kid` are verified with it.
    #[must_use]
    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// The one algorithm this key accepts.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

pub(crate) fn check_secret(algorithm: Algorithm, secret: &[u8]) -> Result<(), ConfigError> {
    if !matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(ConfigError::new(
            ConfigErrorKind::AlgorithmMismatch,
            format!("{algorithm:?} is not an HMAC algorithm"),
        ));
    }
    let min = min_hmac_len(algorithm);
    if secret.len() < min {
        return Err(ConfigError::new(
            ConfigErrorKind::WeakSecret,
            format!(
                "the {algorithm:?} secret is {} bytes; RFC 7518 requires at least {min}",
                secret.len()
            ),
        ));
    }
    Ok(())
}

/// Makes sure `jsonwebtoken` has a crypto backend, installing the one our features name
/// when it cannot pick one by itself (both or neither of its backends enabled).
pub(crate) fn ensure_crypto_backend() -> Result<(), ConfigError> {
    use jsonwebtoken::crypto::CryptoProvider;
    if CryptoProvider::try_get_default().is_some() {
        return Ok(());
    }
    #[cfg(feature = "aws_lc_rs")]
    {
        // Losing a race to another installer is fine: some backend is then installed.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    }
    #[cfg(all(feature = "rust_crypto", not(feature = "aws_lc_rs")))]
    {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    }
    match CryptoProvider::try_get_default() {
        Some(_) => Ok(()),
        None => Err(ConfigError::new(
            ConfigErrorKind::NoCryptoBackend,
            "jsonwebtoken has no crypto backend: enable the `rust_crypto` or `aws_lc_rs` \
             feature of tower-jwt-auth, or install a jsonwebtoken CryptoProvider first",
        )),
    }
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// Why a token did not verify: a rejection, or a key-set fetch to wait for first.
pub(crate) enum Refused {
    Reject(Rejection),
    /// The token names a key its provider's set lacks, and a fetch that may bring it
    /// is under way: verify again once this resolves.
    #[cfg_attr(not(feature = "oidc"), allow(dead_code))]
    Wait(KeyWait),
}

impl From<Rejection> for Refused {
    fn from(rejection: Rejection) -> Self {
        Self::Reject(rejection)
    }
}

#[cfg(feature = "oidc")]
pub(crate) use crate::oidc::provider::KeyWait;

/// A wait for a key-set fetch; without feature `oidc` there are none.
#[cfg(not(feature = "oidc"))]
pub(crate) enum KeyWait {}

#[cfg(not(feature = "oidc"))]
impl std::future::Future for KeyWait {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match *self {}
    }
}

/// Everything needed to verify a token, built once.
pub(crate) struct Verifier {
    keys: Vec<Key>,
    /// Identity providers' key sets, by issuer.
    #[cfg(feature = "oidc")]
    providers: Vec<crate::oidc::Route>,
    /// The key for tokens without a `kid`.
    unnamed: Option<usize>,
    typ: Option<String>,
    leeway: u64,
    max_lifetime: u64,
    max_token_len: usize,
}

pub(crate) struct VerifierConfig {
    pub(crate) keys: Vec<VerificationKey>,
    #[cfg(feature = "oidc")]
    pub(crate) providers: Vec<crate::oidc::IdentityProvider>,
    pub(crate) issuers: Option<Vec<String>>,
    pub(crate) audiences: Option<Vec<String>>,
    pub(crate) typ: Option<String>,
    pub(crate) leeway: u64,
    pub(crate) max_lifetime: u64,
    pub(crate) max_token_len: usize,
}

impl Verifier {
    pub(crate) fn new(config: VerifierConfig) -> Result<Self, ConfigError> {
        ensure_crypto_backend()?;
        #[cfg(feature = "oidc")]
        let providers =
            crate::oidc::Route::all(config.providers, config.issuers.as_deref(), config.leeway)?;
        #[cfg(feature = "oidc")]
        let remote = !providers.is_empty();
        #[cfg(not(feature = "oidc"))]
        let remote = false;
        if config.keys.is_empty() && !remote {
            return Err(ConfigError::new(
                ConfigErrorKind::NoKeys,
                "no verification key: add one with `JwtAuthLayerBuilder::key` (or an \
                 identity provider with `JwtAuthLayerBuilder::provider`)",
            ));
        }
        let mut keys = Vec::with_capacity(config.keys.len());
        let mut unnamed = None;
        for (i, k) in config.keys.into_iter().enumerate() {
            match &k.kid {
                None if unnamed.is_some() => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::AmbiguousKeys,
                        "more than one key has no `kid`: name all but one with `kid`",
                    ));
                }
                None => unnamed = Some(i),
                Some(kid) if keys.iter().any(|o: &Key| o.kid.as_ref() == Some(kid)) => {
                    return Err(ConfigError::new(
                        ConfigErrorKind::AmbiguousKeys,
                        format!("two keys have the kid {kid:?}"),
                    ));
                }
                Some(_) => {}
            }
            let mut validation = Validation::new(k.algorithm);
            validation.leeway = config.leeway;
            validation.validate_exp = true;
            validation.validate_nbf = true;
            let mut required = vec!["exp"];
            if let Some(iss) = &config.issuers {
                validation.set_issuer(iss);
                required.push("iss");
            }
            if let Some(aud) = &config.audiences {
                validation.set_audience(aud);
                required.push("aud");
            }
            validation.set_required_spec_claims(&required);
            keys.push(Key {
                kid: k.kid,
                key: k.key,
                validation,
            });
        }
        Ok(Self {
            keys,
            #[cfg(feature = "oidc")]
            providers,
            unnamed,
            typ: config.typ,
            leeway: config.leeway,
            max_lifetime: config.max_lifetime,
            max_token_len: config.max_token_len,
        })
    }

    pub(crate) fn leeway(&self) -> u64 {
        self.leeway
    }

    #[cfg(feature = "oidc")]
    pub(crate) fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    #[cfg(feature = "oidc")]
    pub(crate) fn providers(&self) -> &[crate::oidc::Route] {
        &self.providers
    }

    pub(crate) fn max_lifetime(&self) -> u64 {
        self.max_lifetime
    }

    /// The time rules, for a token verified before (from the cache): judged as
    /// `jsonwebtoken` and [`verify`](Self::verify) judge them, in the same order, so a
    /// cached token gets the answer a fresh verification would give.
    pub(crate) fn check_times(&self, reg: &Registered) -> Result<(), Rejection> {
        let now = clock::now_secs();
        if reg.exp.nearest < now.saturating_sub(self.leeway) {
            return Err(reasons::EXPIRED);
        }
        if let Some(nbf) = reg.nbf
            && nbf.nearest > now.saturating_add(self.leeway)
        {
            return Err(reasons::IMMATURE);
        }
        if reg.iat > now.saturating_add(self.leeway) {
            return Err(reasons::FUTURE_IAT);
        }
        Ok(())
    }

    /// Verifies `token` and decodes its claims; a token whose provider's key set must
    /// be fetched first is answered as the provider's keys allow now (503 while a fetch
    /// is under way), never waited for.
    pub(crate) fn verify<C: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        token: &str,
        location: TokenLocation,
    ) -> Result<Claims<C>, Rejection> {
        match self.verify_or_wait(token, location, false) {
            Ok(claims) => Ok(claims),
            Err(Refused::Reject(rejection)) => Err(rejection),
            Err(Refused::Wait(_)) => Err(reasons::KEYS_UNAVAILABLE),
        }
    }

    /// Verifies `token` and decodes its claims. With `may_wait`, a token naming a key
    /// its provider's set lacks may start (or join) a fetch and be answered
    /// [`Refused::Wait`].
    pub(crate) fn verify_or_wait<C: DeserializeOwned + Clone + Send + Sync + 'static>(
        &self,
        token: &str,
        location: TokenLocation,
        may_wait: bool,
    ) -> Result<Claims<C>, Refused> {
        if token.len() > self.max_token_len {
            return Err(reasons::TOO_LONG.into());
        }
        #[cfg(not(feature = "oidc"))]
        let _ = may_wait;
        #[cfg(feature = "oidc")]
        if !self.providers.is_empty()
            && let Some(route) =
                crate::oidc::Route::find(&self.providers, token, self.keys.is_empty())
        {
            let (header, wire) = route.verify::<C>(token, may_wait)?;
            return self.finish(header, wire, location).map_err(Refused::Reject);
        }
        let (header, wire) = match self.keys.as_slice() {
            // Only identity providers, and the token's `iss` is none of theirs.
            [] => return Err(reasons::BAD_ISSUER.into()),
            // One key: verify with it directly and check the `kid` afterwards, which
            // saves parsing the header twice. The result is the same: a token naming
            // another key never passes.
            [only] => {
                let data = jsonwebtoken::decode::<Wire<C>>(token, &only.key, &only.validation)
                    .map_err(|e| match e.kind() {
                        // Say which part was unreadable, as the several-keys path does:
                        // only an error path pays for the second look at the header.
                        ErrorKind::Json(_) | ErrorKind::Base64(_) | ErrorKind::Utf8(_)
                            if jsonwebtoken::decode_header(token).is_err() =>
                        {
                            reasons::MALFORMED
                        }
                        kind => map_error(kind),
                    })?;
                if data.header.kid != only.kid {
                    return Err(reasons::UNKNOWN_KEY.into());
                }
                (data.header.typ, data.claims)
            }
            keys => {
                let header = jsonwebtoken::decode_header(token).map_err(|_| reasons::MALFORMED)?;
                let key = match header.kid.as_deref() {
                    Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)),
                    None => self.unnamed.map(|i| &keys[i]),
                }
                .ok_or(reasons::UNKNOWN_KEY)?;
                let data = jsonwebtoken::decode::<Wire<C>>(token, &key.key, &key.validation)
                    .map_err(|e| map_error(e.kind()))?;
                (data.header.typ, data.claims)
            }
        };
        self.finish(header, wire, location).map_err(Refused::Reject)
    }

    /// The checks after the signature, the same for every key: `typ`, the claims this
    /// crate requires, `iat` and the lifetime cap.
    fn finish<C: Clone + Send + Sync + 'static>(
        &self,
        typ: Option<String>,
        wire: Wire<C>,
        location: TokenLocation,
    ) -> Result<Claims<C>, Rejection> {
        if let Some(expected) = &self.typ
            && !typ.as_deref().is_some_and(|t| typ_matches(t, expected))
        {
            return Err(reasons::BAD_TYPE);
        }
        // A back-channel logout token is never an access token (OpenID Connect
        // Back-Channel Logout 1.0 §2.4): refused by its `typ` or its `events` claim.
        if typ.as_deref().is_some_and(|t| typ_matches(t, LOGOUT_TYP)) {
            return Err(reasons::BAD_TYPE);
        }
        let Wire { mut reg, custom } = wire;
        if reg.events || reg.jti.is_empty() || reg.sub.is_empty() || reg.sid.as_deref() == Some("")
        {
            return Err(reasons::BAD_CLAIMS);
        }
        if let Some(us) = reg.iat_us
            && us / 1_000_000 != reg.iat
        {
            return Err(reasons::BAD_CLAIMS);
        }
        if reg.iat > clock::now_secs().saturating_add(self.leeway) {
            return Err(reasons::FUTURE_IAT);
        }
        if reg.exp.value.saturating_sub(reg.iat) > self.max_lifetime {
            return Err(reasons::TOO_LONG_LIVED);
        }
        reg.custom = Claims::boxed_custom(custom);
        Ok(Claims::verified(TokenInfo {
            reg: Arc::new(reg),
            location,
        }))
    }
}

/// The `typ` of a back-channel logout token.
pub(crate) const LOGOUT_TYP: &str = "logout+jwt";

/// `typ` comparison per RFC 7515 §4.1.9: case-insensitive, `application/` optional.
pub(crate) fn typ_matches(got: &str, expected: &str) -> bool {
    fn strip(t: &str) -> &str {
        match t.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    }
    strip(got).eq_ignore_ascii_case(strip(expected))
}

pub(crate) fn map_error(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::ExpiredSignature => reasons::EXPIRED,
        ErrorKind::ImmatureSignature => reasons::IMMATURE,
        ErrorKind::InvalidSignature => reasons::BAD_SIGNATURE,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => reasons::BAD_ALGORITHM,
        ErrorKind::InvalidIssuer => reasons::BAD_ISSUER,
        ErrorKind::InvalidAudience => reasons::BAD_AUDIENCE,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::Json(_) => reasons::BAD_CLAIMS,
        _ => reasons::MALFORMED,
    }
}

#[cfg(test)]
mod tests {
    use super::typ_matches;

    #[test]
    fn typ_is_case_insensitive_and_prefix_optional() {
        assert!(typ_matches("at+jwt", "at+jwt"));
        assert!(typ_matches("application/AT+JWT", "at+jwt"));
        assert!(typ_matches("at+jwt", "application/at+jwt"));
        assert!(!typ_matches("JWT", "at+jwt"));
        assert!(!typ_matches("", "at+jwt"));
    }
}
