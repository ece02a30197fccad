//! OpenID Connect Back-Channel Logout 1.0: the endpoint a provider calls when a user
//! logs out there.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tower_service::Service;

use super::Route;
use super::client::BoxError;
use super::provider::Lookup;
use crate::clock;
use crate::revoke::Revoker;
use crate::verify::{LOGOUT_TYP, Verifier, typ_matches};

/// The member of a logout token's `events` claim that makes it one (OpenID Connect
/// Back-Channel Logout 1.0 §2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The largest request body read: a logout token is well under 8 KiB.
const MAX_BODY: usize = 64 * 1024;
/// How long a logout token's `jti` is remembered, to refuse a replay.
const JTI_MEMORY: Duration = Duration::from_secs(10 * 60);

/// The back-channel logout endpoint (OpenID Connect Back-Channel Logout 1.0), a tower
/// [`Service`] for an axum route (`Router::route_service`) or a plain hyper server.
///
/// It takes the provider's `POST` with a form-encoded `logout_token` and validates it
/// as §2.6 says: the signature with the provider's keys (the issuer's, pinned
/// algorithms, so never `alg: none`), `iss`, `aud` (the provider's
/// [`audience`](super::IdentityProviderBuilder::audience)s), `iat`, `exp`, a `jti`, an
/// `events` object with the [`BACKCHANNEL_LOGOUT_EVENT`] member, a `sub` or a `sid`, no
/// `nonce`, and `typ` `logout+jwt` when the provider
/// [requires it](super::IdentityProviderBuilder::require_logout_typ). A `jti` seen in
/// the last 10 minutes is refused (a replay). Then:
///
/// - with a `sid`, the provider's session `(iss, sid)` is ended
///   ([`Revoker::end_session`]): every access token carrying that `sid` is refused;
/// - with only a `sub`, every token of `(iss, sub)` issued up to now is refused
///   ([`Revoker::revoke_subject`]);
///
/// recorded in the layer's store, so with a shared store it holds on every instance.
///
/// Answers: `200` once recorded; `400` with an RFC 6749 §5.2 JSON body
/// (`{"error":"invalid_request","error_description":...}`) for a request or token that
/// fails a rule; `503` when the store could not record it or the provider's keys cannot
/// be had (the provider may retry); `405` to a method other than `POST`. Every answer
/// carries `Cache-Control: no-store`.
#[derive(Clone)]
pub struct BackchannelLogout {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: Arc<Verifier>,
    revoker: Revoker,
    /// `(iss, jti)` of recently accepted logout tokens.
    seen: moka::sync::Cache<(String, String), ()>,
}

impl fmt::Debug for BackchannelLogout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackchannelLogout").finish_non_exhaustive()
    }
}

impl BackchannelLogout {
    pub(crate) fn new(verifier: Arc<Verifier>, revoker: Revoker) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier,
                revoker,
                seen: moka::sync::Cache::builder()
                    .max_capacity(100_000)
                    .time_to_live(JTI_MEMORY)
                    .build(),
            }),
        }
    }
}

/// The response future of [`BackchannelLogout`].
pub struct BackchannelLogoutFuture(
    Pin<Box<dyn Future<Output = Result<Response<String>, Infallible>> + Send>>,
);

impl Future for BackchannelLogoutFuture {
    type Output = Result<Response<String>, Infallible>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx)
    }
}

impl fmt::Debug for BackchannelLogoutFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackchannelLogoutFuture")
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for BackchannelLogout
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<String>;
    type Error = Infallible;
    type Future = BackchannelLogoutFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        BackchannelLogoutFuture(Box::pin(async move {
            Ok(match inner.handle(request).await {
                Ok(()) => answer(StatusCode::OK, String::new()),
                Err(Failure::Invalid(why)) => {
                    debug_event!(reason = why, "back-channel logout refused");
                    invalid(why)
                }
                Err(Failure::Unavailable(why)) => {
                    warn_event!(reason = why, "back-channel logout not recorded");
                    let mut response = answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        error_body("temporarily_unavailable", why),
                    );
                    response
                        .headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    response
                }
                Err(Failure::Method) => {
                    let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, String::new());
                    response
                        .headers_mut()
                        .insert(header::ALLOW, HeaderValue::from_static("POST"));
                    response
                }
            })
        }))
    }
}

/// Why a logout request was not done; each reason is a fixed text (never token data).
enum Failure {
    Method,
    Invalid(&'static str),
    Unavailable(&'static str),
}

fn answer(status: StatusCode, body: String) -> Response<String> {
    let json = !body.is_empty();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if json {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

fn error_body(error: &str, description: &str) -> String {
    serde_json::json!({ "error": error, "error_description": description }).to_string()
}

fn invalid(why: &'static str) -> Response<String> {
    answer(StatusCode::BAD_REQUEST, error_body("invalid_request", why))
}

/// A logout token's claims (§2.4); what `jsonwebtoken` checks itself (`exp`, `iss`,
/// `aud`) is checked there.
#[derive(Deserialize)]
struct LogoutClaims {
    iss: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    iat: f64,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    events: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    nonce: Option<IgnoredAny>,
}

impl Inner {
    async fn handle<B>(&self, request: Request<B>) -> Result<(), Failure>
    where
        B: http_body::Body,
        B::Error: Into<BoxError>,
    {
        if request.method() != Method::POST {
            return Err(Failure::Method);
        }
        let form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(Failure::Invalid(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let body: Bytes = Limited::new(request.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|_| Failure::Invalid("the body could not be read or is too large"))?
            .to_bytes();
        let mut token = None;
        for (name, value) in form_urlencoded::parse(&body) {
            if name == "logout_token" {
                if token.is_some() {
                    return Err(Failure::Invalid("logout_token is given more than once"));
                }
                token = Some(value);
            }
        }
        let token = token.ok_or(Failure::Invalid("the logout_token parameter is missing"))?;
        let claims = self.validate(&token).await?;
        let issuer = Some(claims.iss.as_str());
        let recorded = if let Some(sid) = &claims.sid {
            self.revoker.end_session(issuer, sid).await
        } else if let Some(sub) = &claims.sub {
            self.revoker.revoke_subject(issuer, sub).await
        } else {
            return Err(Failure::Invalid("the logout token has neither sub nor sid"));
        };
        recorded.map_err(|_| Failure::Unavailable("the logout could not be recorded; retry"))?;
        if let Some(jti) = claims.jti {
            self.seen.insert((claims.iss, jti), ());
        }
        Ok(())
    }

    /// Validates a logout token as §2.6 says.
    async fn validate(&self, token: &str) -> Result<LogoutClaims, Failure> {
        if token.len() > self.verifier.max_token_len() {
            return Err(Failure::Invalid("the logout token is too long"));
        }
        let route = Route::find(self.verifier.providers(), token, true).ok_or(Failure::Invalid(
            "the logout token's issuer is not a configured provider",
        ))?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            Failure::Invalid("the logout token is malformed or its alg is not accepted")
        })?;
        let inner = &route.provider.inner;
        let (set, i) = match inner.lookup_or_fetch(header.kid.as_deref()).await {
            Lookup::Found(set, i) => (set, i),
            Lookup::NoKid => return Err(Failure::Invalid("the logout token's key is unknown")),
            Lookup::Stale => {
                return Err(Failure::Unavailable(
                    "the provider's keys cannot be fetched",
                ));
            }
            Lookup::Missing if inner.missing_is_final() => {
                return Err(Failure::Invalid("the logout token's key is unknown"));
            }
            Lookup::Missing => {
                return Err(Failure::Unavailable(
                    "the provider's keys cannot be fetched",
                ));
            }
        };
        let key = &set.keys[i];
        if header.alg != key.algorithm {
            return Err(Failure::Invalid("the logout token's alg is not its key's"));
        }
        let typ = header.typ.as_deref();
        let typ_ok = match typ {
            None => !inner.logout_typ,
            Some(t) => typ_matches(t, LOGOUT_TYP) || (!inner.logout_typ && typ_matches(t, "JWT")),
        };
        if !typ_ok {
            return Err(Failure::Invalid("the logout token's typ is not accepted"));
        }
        let mut validation = route.validation(key.algorithm).clone();
        validation.set_required_spec_claims(&["exp", "iss", "aud", "iat"]);
        let claims = jsonwebtoken::decode::<LogoutClaims>(token, &key.key, &validation)
            .map_err(|e| Failure::Invalid(describe(e.kind())))?
            .claims;
        let event = claims
            .events
            .as_ref()
            .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT));
        if !event.is_some_and(serde_json::Value::is_object) {
            return Err(Failure::Invalid(
                "the logout token's events claim has no back-channel logout event",
            ));
        }
        if claims.nonce.is_some() {
            return Err(Failure::Invalid("a logout token must not have a nonce"));
        }
        let filled = |c: &Option<String>| c.as_deref().is_some_and(|v| !v.is_empty());
        if !filled(&claims.sub) && !filled(&claims.sid) {
            return Err(Failure::Invalid("the logout token has neither sub nor sid"));
        }
        if claims.sid.as_deref() == Some("") || claims.sub.as_deref() == Some("") {
            return Err(Failure::Invalid("the logout token has an empty sub or sid"));
        }
        let leeway = self.verifier.leeway();
        #[allow(clippy::cast_precision_loss)]
        let latest = clock::now_secs().saturating_add(leeway) as f64;
        if !(0.0..=latest).contains(&claims.iat) {
            return Err(Failure::Invalid(
                "the logout token's iat is in the future or invalid",
            ));
        }
        match &claims.jti {
            Some(jti) if !jti.is_empty() => {
                if self.seen.contains_key(&(claims.iss.clone(), jti.clone())) {
                    return Err(Failure::Invalid("this logout token was already used"));
                }
            }
            _ => return Err(Failure::Invalid("the logout token has no jti")),
        }
        Ok(claims)
    }
}

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::InvalidSignature => "the logout token's signature is invalid",
        ErrorKind::ExpiredSignature => "the logout token has expired",
        ErrorKind::ImmatureSignature => "the logout token is not valid yet",
        ErrorKind::InvalidIssuer => "the logout token's iss is not the provider's",
        ErrorKind::InvalidAudience => "the logout token's aud is not this client",
        ErrorKind::MissingRequiredClaim(_) => {
            "the logout token lacks a required claim (iss, aud, iat, exp)"
        }
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "the logout token's alg is not its key's"
        }
        _ => "the logout token is malformed",
    }
}
