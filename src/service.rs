//! The [`JwtAuth`] service.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_service::Service;

use crate::auth::{Auth, Decision};
use crate::future::ResponseFuture;
use crate::rejection::OnRejection;
use crate::store::RevocationStore;

/// The service built by [`JwtAuthLayer`](crate::JwtAuthLayer); see there.
pub struct JwtAuth<S, R, C = (), F = crate::DefaultRejection> {
    inner: S,
    auth: Arc<Auth<R, F>>,
    _claims: PhantomData<fn() -> C>,
}

impl<S, R, C, F> JwtAuth<S, R, C, F> {
    pub(crate) fn new(inner: S, auth: Arc<Auth<R, F>>) -> Self {
        Self {
            inner,
            auth,
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
            auth: Arc::clone(&self.auth),
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
        match self.auth.decide::<C, _>(&mut req, true) {
            // Decided now: the service made ready is called in place. Only a decision
            // still pending takes it along (and leaves a clone), as tower's services do.
            Decision::Proceed => ResponseFuture::inner(self.inner.call(req)),
            Decision::Reject(rejection) => {
                ResponseFuture::rejected(self.auth.respond(rejection, req.headers()))
            }
            Decision::Check(check) => {
                ResponseFuture::checking(check, self.take_ready(), req, Arc::clone(&self.auth))
            }
            Decision::AwaitKeys(wait) => ResponseFuture::awaiting_keys(
                wait,
                self.take_ready(),
                req,
                Arc::clone(&self.auth),
                Auth::decide::<C, ReqBody>,
            ),
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
