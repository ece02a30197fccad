//! The [`JwtAuth`] service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::Shared;
use crate::rejection::{OnRejection, Rejection, reasons};
use crate::store::{Check, RevocationStatus, RevocationStore};

/// Marks a request that passed an optional [`JwtAuthLayer`](crate::JwtAuthLayer) without
/// a token, so extractors can tell "no token" from "no layer".
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anonymous;

/// The service built by [`JwtAuthLayer`](crate::JwtAuthLayer); see there.
pub struct JwtAuth<S, R, C = (), F = crate::DefaultRejection> {
    inner: S,
    shared: Arc<Shared<R, F>>,
    _claims: PhantomData<fn() -> C>,
}

impl<S, R, C, F> JwtAuth<S, R, C, F> {
    pub(crate) fn new(inner: S, shared: Arc<Shared<R, F>>) -> Self {
        Self {
            inner,
            shared,
            _claims: PhantomData,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: Clone, R, C, F> Clone for JwtAuth<S, R, C, F> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            _claims: PhantomData,
        }
    }
}

impl<S: fmt::Debug, R, C, F> fmt::Debug for JwtAuth<S, R, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The response for `rejection`, with the rejection in its extensions.
pub(crate) fn reject<B, F: OnRejection<B>>(on_rejection: &F, rejection: Rejection) -> Response<B> {
    let mut response = on_rejection.on_rejection(&rejection);
    response.extensions_mut().insert(rejection);
    response
}

impl<S, R, C, F, ReqBody, ResBody> Service<Request<ReqBody>> for JwtAuth<S, R, C, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    R: RevocationStore,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    F: OnRejection<ResBody>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, R, F, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let shared = &*self.shared;
        let claims = match shared.authenticate::<C, _>(&req) {
            Ok(Some(claims)) => claims,
            Ok(None) if shared.optional => {
                req.extensions_mut().insert(Anonymous);
                return ResponseFuture::inner(self.take_ready().call(req));
            }
            Ok(None) => {
                return ResponseFuture::rejected(reject(&shared.on_rejection, reasons::MISSING));
            }
            Err(rejection) => {
                return ResponseFuture::rejected(reject(&shared.on_rejection, rejection));
            }
        };
        match shared.store.check(claims.token()) {
            Check::Ready(result) => match status_rejection(result) {
                None => {
                    insert(&mut req, claims);
                    ResponseFuture::inner(self.take_ready().call(req))
                }
                Some(rejection) => {
                    ResponseFuture::rejected(reject(&shared.on_rejection, rejection))
                }
            },
            Check::Pending(check) => {
                insert(&mut req, claims);
                let inner = self.take_ready();
                ResponseFuture::checking(check, inner, req, Arc::clone(&self.shared))
            }
        }
    }
}

impl<S: Clone, R, C, F> JwtAuth<S, R, C, F> {
    /// The service `poll_ready` made ready, leaving a fresh clone in its place.
    fn take_ready(&mut self) -> S {
        let clone = self.inner.clone();
        std::mem::replace(&mut self.inner, clone)
    }
}

fn insert<B, C: Clone + Send + Sync + 'static>(req: &mut Request<B>, claims: crate::Claims<C>) {
    let ext = req.extensions_mut();
    ext.insert(claims.token.clone());
    ext.insert(claims);
}

/// The rejection a store's answer calls for, if any.
pub(crate) fn status_rejection<E: std::error::Error + Send + Sync + 'static>(
    result: Result<RevocationStatus, E>,
) -> Option<Rejection> {
    match result {
        Ok(RevocationStatus::Active) => None,
        Ok(RevocationStatus::Revoked) => Some(reasons::REVOKED),
        Err(e) => Some(reasons::STORE_DOWN.with_source(e)),
    }
}
