//! Tokens from identity providers (feature `oidc`): remote key sets found through
//! OpenID Connect Discovery or given as a JWKS URL, refreshed in the background and on
//! demand, and OpenID Connect Back-Channel Logout.
//!
//! [`IdentityProvider`] is a provider's key set; give it to
//! [`JwtAuthLayerBuilder::provider`](crate::JwtAuthLayerBuilder::provider) (several
//! providers and the layer's own keys work side by side: each token is checked against
//! the keys of its own `iss`). [`BackchannelLogout`] is the endpoint a provider calls
//! when a user logs out there; build it with
//! [`JwtAuthLayer::backchannel_logout`](crate::JwtAuthLayer::backchannel_logout).

mod backchannel;
pub(crate) mod client;
mod jwk;
pub(crate) mod provider;

use std::borrow::Cow;

use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub use backchannel::{BACKCHANNEL_LOGOUT_EVENT, BackchannelLogout, BackchannelLogoutFuture};
pub use client::{
    BoxError, DEFAULT_CONNECT_TIMEOUT, HttpBody, HttpClient, HttpFuture, HyperClient,
};
pub use provider::{
    DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_DOCUMENT_LEN, DEFAULT_MAX_STALE, DEFAULT_MAX_WAIT,
    DEFAULT_REFRESH_COOLDOWN, IdentityProvider, IdentityProviderBuilder,
};

use crate::claims::Wire;
use crate::error::{ConfigError, ConfigErrorKind};
use crate::rejection::reasons;
use crate::verify::{Refused, map_error};
use provider::{Lookup, Unknown};

/// The algorithms a provider's keys may be pinned to (see `jwk.rs`).
const REMOTE_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A provider as one layer checks its tokens: the provider's keys, with the layer's
/// leeway, the provider's exact issuer and its audiences.
pub(crate) struct Route {
    pub(crate) provider: IdentityProvider,
    /// One validation per algorithm a key can have, built once.
    validations: Vec<(Algorithm, Validation)>,
}

impl Route {
    /// The routes of a layer's providers; `local_issuers` are the layer's own accepted
    /// issuers, which no provider may share (a token's `iss` picks its keys).
    pub(crate) fn all(
        providers: Vec<IdentityProvider>,
        local_issuers: Option<&[String]>,
        leeway: u64,
    ) -> Result<Vec<Self>, ConfigError> {
        let mut routes: Vec<Self> = Vec::with_capacity(providers.len());
        for provider in providers {
            let issuer = provider.issuer().to_owned();
            if routes.iter().any(|r| r.provider.issuer() == issuer)
                || local_issuers.is_some_and(|l| l.contains(&issuer))
            {
                return Err(ConfigError::new(
                    ConfigErrorKind::AmbiguousKeys,
                    format!("the issuer {issuer:?} is configured twice"),
                ));
            }
            let validations = REMOTE_ALGORITHMS
                .iter()
                .map(|&alg| {
                    let mut v = Validation::new(alg);
                    v.leeway = leeway;
                    v.validate_exp = true;
                    v.validate_nbf = true;
                    v.set_issuer(&[&issuer]);
                    v.set_audience(&provider.inner.audiences);
                    v.set_required_spec_claims(&["exp", "iss", "aud"]);
                    (alg, v)
                })
                .collect();
            routes.push(Self {
                provider,
                validations,
            });
        }
        Ok(routes)
    }

    fn validation(&self, alg: Algorithm) -> &Validation {
        // Every algorithm a remote key can have is in the list.
        &self
            .validations
            .iter()
            .find(|(a, _)| *a == alg)
            .unwrap_or(&self.validations[0])
            .1
    }

    /// The route of `token`'s `iss`, if a provider has it. With a single provider and
    /// no keys of the layer's own, every token goes to that provider unread (its `iss`
    /// is then checked by the signature verification).
    pub(crate) fn find<'r>(routes: &'r [Self], token: &str, only_remote: bool) -> Option<&'r Self> {
        if let ([only], true) = (routes, only_remote) {
            return Some(only);
        }
        peek_issuer(token, |iss| {
            routes.iter().find(|r| r.provider.inner.issuer == iss)
        })
        .flatten()
    }

    /// Verifies `token` with this provider's key for its `kid`, returning its header's
    /// `typ` and its claims.
    pub(crate) fn verify<C: DeserializeOwned + Clone + 'static>(
        &self,
        token: &str,
        may_wait: bool,
    ) -> Result<(Option<String>, Wire<C>), Refused> {
        let (set, i) = self.key(token, may_wait)?;
        let key = &set.keys[i];
        let data = jsonwebtoken::decode::<Wire<C>>(token, &key.key, self.validation(key.algorithm))
            .map_err(|e| map_error(e.kind()))?;
        Ok((data.header.typ, data.claims))
    }

    /// The key of `token` in the provider's set, its `alg` checked against the key's.
    fn key(
        &self,
        token: &str,
        may_wait: bool,
    ) -> Result<(std::sync::Arc<provider::KeySet>, usize), Refused> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| reasons::MALFORMED)?;
        let inner = &self.provider.inner;
        let (set, i) = match inner.lookup(header.kid.as_deref()) {
            Lookup::Found(set, i) => (set, i),
            Lookup::NoKid => return Err(reasons::UNKNOWN_KEY.into()),
            Lookup::Stale => return Err(reasons::KEYS_UNAVAILABLE.into()),
            Lookup::Missing => {
                return Err(match inner.unknown_key(may_wait) {
                    Unknown::Wait(wait) => Refused::Wait(wait),
                    Unknown::Refuse => reasons::UNKNOWN_KEY.into(),
                    Unknown::Unavailable => reasons::KEYS_UNAVAILABLE.into(),
                });
            }
        };
        if header.alg != set.keys[i].algorithm {
            return Err(reasons::BAD_ALGORITHM.into());
        }
        Ok((set, i))
    }
}

/// Calls `f` with the `iss` of `token`'s payload, read without verifying anything (it
/// only picks the keys to verify with); `None` when the payload cannot be read or has
/// no `iss` (the verification then says what is wrong). A payload up to 1.5 KiB is
/// decoded on the stack.
fn peek_issuer<T>(token: &str, f: impl FnOnce(&str) -> T) -> Option<T> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, default)]
        iss: Option<Cow<'a, str>>,
    }
    let mut parts = token.split('.');
    let payload = parts.nth(1)?;
    let mut stack = [0u8; 1536];
    let heap: Vec<u8>;
    let decoded: &[u8] = if base64::decoded_len_estimate(payload.len()) <= stack.len() {
        let n = URL_SAFE_NO_PAD.decode_slice(payload, &mut stack).ok()?;
        &stack[..n]
    } else {
        heap = URL_SAFE_NO_PAD.decode(payload).ok()?;
        &heap
    };
    let peek: Peek<'_> = serde_json::from_slice(decoded).ok()?;
    Some(f(&peek.iss?))
}

#[cfg(test)]
mod tests {
    use super::peek_issuer;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn token(payload: &str) -> String {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.sig",
            URL_SAFE_NO_PAD.encode(payload)
        )
    }

    #[test]
    fn the_issuer_is_peeked_from_small_and_large_payloads() {
        let got = |t: &str| peek_issuer(t, str::to_owned);
        assert_eq!(
            got(&token(r#"{"iss":"https://idp","sub":"a"}"#)).as_deref(),
            Some("https://idp")
        );
        // Escapes are decoded (a borrowed `&str` would refuse them).
        assert_eq!(
            got(&token(r#"{"iss":"https:\/\/idp"}"#)).as_deref(),
            Some("https://idp")
        );
        let big = format!(r#"{{"pad":"{}","iss":"big"}}"#, "x".repeat(4000));
        assert_eq!(got(&token(&big)).as_deref(), Some("big"));
        assert_eq!(got(&token(r#"{"sub":"a"}"#)), None);
        assert_eq!(got(&token("not json")), None);
        assert_eq!(got(&token(r#"{"iss":5}"#)), None);
        assert_eq!(got("no-dots"), None);
        assert_eq!(got("a.!!!.c"), None);
    }
}
