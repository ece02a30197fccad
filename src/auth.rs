//! The per-request decision, top to bottom: find the token, ask the verified-token cache,
//! apply the cross-origin check, verify the token (or judge a cached one's time rules),
//! ask the store whether it was revoked, and put the claims in the request.
//!
//! Everything a request costs is here. [`JwtAuth::call`](crate::JwtAuth) acts on the
//! [`Decision`]; the response future only finishes a store check that was not answered
//! at once.

use std::sync::Arc;

use http::{HeaderMap, Request, Response};
use serde::de::DeserializeOwned;

use crate::cache::{Hash as CacheHash, TokenCache};
use crate::claims::{Claims, Registered, TokenInfo, TokenLocation};
use crate::cross_origin;
use crate::rejection::{OnRejection, Rejection, reasons};
use crate::source::{self, Presented, TokenSource};
use crate::store::{Check, RevocationStatus, RevocationStore};
use crate::verify::{KeyWait, Refused, Verifier};

/// Marks a request that passed an optional [`JwtAuthLayer`](crate::JwtAuthLayer) without
/// a token, so extractors can tell "no token" from "no layer".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

/// What the layer does with a request.
pub(crate) enum Decision<F> {
    /// Call the inner service: the claims (or [`Anonymous`]) are in the extensions.
    Proceed,
    /// Answer with this rejection; the inner service is not called.
    Reject(Rejection),
    /// The store is still looking the token up: the claims are in the extensions, and
    /// the request proceeds once the check answers [`RevocationStatus::Active`].
    Check(F),
    /// The token's provider is fetching its key set: decide again once this resolves
    /// (without waiting a second time).
    AwaitKeys(KeyWait),
}

/// Everything a request is checked against, built once and shared by every service
/// clone behind one `Arc`.
pub(crate) struct Auth<R, F> {
    pub(crate) verifier: Arc<Verifier>,
    pub(crate) sources: Vec<TokenSource>,
    pub(crate) trusted_origins: Vec<String>,
    pub(crate) optional: bool,
    pub(crate) store: Arc<R>,
    pub(crate) on_rejection: F,
    /// Tokens verified before; `None` when turned off. Shared with the identity
    /// providers, which empty it when a key leaves their set.
    pub(crate) cache: Option<Arc<TokenCache>>,
}

impl<R: RevocationStore, F> Auth<R, F> {
    /// Decides what to do with `req`, inserting [`Claims<C>`](Claims) and
    /// [`TokenInfo`](crate::TokenInfo) (or [`Anonymous`]) into its extensions when it
    /// may go on. With `may_wait`, a token whose provider must fetch its key set first
    /// is answered [`Decision::AwaitKeys`].
    pub(crate) fn decide<C, B>(
        &self,
        req: &mut Request<B>,
        may_wait: bool,
    ) -> Decision<R::CheckFuture>
    where
        C: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        // 1. Where is the token?
        let presented = match source::find(&self.sources, req.headers()) {
            Ok(Some(found)) => found,
            Ok(None) if self.optional => {
                req.extensions_mut().insert(Anonymous);
                return Decision::Proceed;
            }
            Ok(None) => return Decision::Reject(reasons::MISSING),
            Err(rejection) => return Decision::Reject(rejection),
        };
        // 2. Verified before? (Asked by the bytes as sent: the cache keeps only
        // well-formed tokens, so only a miss has its syntax checked.)
        let lookup = match self.lookup(presented) {
            Ok(lookup) => lookup,
            Err(rejection) => return Decision::Reject(rejection),
        };
        // 3. A cookie rides along on other sites' requests: is this one ours?
        if presented.location() == TokenLocation::Cookie
            && let Err(rejection) = cross_origin::check(
                req.method(),
                req.uri(),
                req.headers(),
                &self.trusted_origins,
            )
        {
            return Decision::Reject(rejection);
        }
        // 4. Is it a valid token? (On a hit, only the time rules again.)
        let claims = match self.verify::<C>(presented, lookup, may_wait) {
            Ok(claims) => claims,
            Err(Refused::Reject(rejection)) => return Decision::Reject(rejection),
            Err(Refused::Wait(wait)) => return Decision::AwaitKeys(wait),
        };
        // 5. Was it revoked? 6. Hand the claims to the inner service.
        match self.store.check(claims.token()) {
            Check::Ready(answer) => match store_answer(answer) {
                Ok(()) => {
                    insert(req, claims);
                    Decision::Proceed
                }
                Err(rejection) => Decision::Reject(rejection),
            },
            Check::Pending(check) => {
                insert(req, claims);
                Decision::Check(check)
            }
        }
    }

    /// What the cache knows of `presented`; on a miss (or without a cache), its text,
    /// its syntax checked.
    fn lookup<'a>(&self, presented: Presented<'a>) -> Result<Lookup<'a>, Rejection> {
        let hash = match self
            .cache
            .as_deref()
            .map(|cache| cache.get(presented.bytes()))
        {
            Some((Some(reg), hash)) => return Ok(Lookup::Hit(reg, hash)),
            Some((None, hash)) => Some(hash),
            None => None,
        };
        Ok(Lookup::Miss(presented.text()?, hash))
    }

    /// The claims of `presented`: from the cache on a hit, its time rules judged again;
    /// else verified, and offered to the cache.
    fn verify<C>(
        &self,
        presented: Presented<'_>,
        lookup: Lookup<'_>,
        may_wait: bool,
    ) -> Result<Claims<C>, Refused>
    where
        C: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let location = presented.location();
        let (token, hash) = match lookup {
            Lookup::Hit(reg, hash) => {
                self.verifier.check_times(&reg)?;
                if let Some(claims) = Claims::from_token(TokenInfo { reg, location }) {
                    return Ok(claims);
                }
                // Cached with other custom claims than `C`: verified afresh.
                (presented.text().map_err(Refused::Reject)?, Some(hash))
            }
            Lookup::Miss(token, hash) => (token, hash),
        };
        let claims = self
            .verifier
            .verify_or_wait::<C>(token, location, may_wait)?;
        if let (Some(cache), Some(hash)) = (&self.cache, hash) {
            cache.insert(hash, token, &claims.token.reg);
        }
        Ok(claims)
    }

    /// The response for `rejection` of the request whose headers are `headers`, with the
    /// rejection in its extensions.
    ///
    /// Only a refusal comes here, so what it costs (reading the `content-type` to answer
    /// a gRPC call the gRPC way, the `tracing` event) is never paid by an accepted
    /// request.
    pub(crate) fn respond<B>(&self, rejection: Rejection, headers: &HeaderMap) -> Response<B>
    where
        F: OnRejection<B>,
    {
        let rejection = rejection.for_request(headers);
        rejection.trace();
        let mut response = self.on_rejection.on_rejection(&rejection);
        response.extensions_mut().insert(rejection);
        response
    }
}

/// What the verified-token cache knows of a token.
enum Lookup<'a> {
    /// Verified before: its claims, and the hash to insert under should it be verified
    /// again.
    Hit(Arc<Registered>, CacheHash),
    /// Not cached, or no cache: the token's text, its syntax checked, and the hash to
    /// insert under when there is a cache.
    Miss(&'a str, Option<CacheHash>),
}

/// `Ok` when the store's answer lets the request go on, else the rejection it calls for.
pub(crate) fn store_answer<E>(answer: Result<RevocationStatus, E>) -> Result<(), Rejection>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match answer {
        Ok(RevocationStatus::Active) => Ok(()),
        Ok(RevocationStatus::Revoked) => Err(reasons::REVOKED),
        Err(e) => Err(reasons::STORE_DOWN.with_source(e)),
    }
}

fn insert<B, C: Clone + Send + Sync + 'static>(req: &mut Request<B>, claims: Claims<C>) {
    let extensions = req.extensions_mut();
    extensions.insert(claims.token.clone());
    extensions.insert(claims);
}
