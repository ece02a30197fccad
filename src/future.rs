//! The response future of [`JwtAuth`](crate::JwtAuth).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::auth::{Auth, store_answer};
use crate::rejection::OnRejection;
use crate::store::RevocationStore;

/// What a pending revocation check holds until it answers.
struct Waiting<S, R, F, ReqBody> {
    inner: S,
    request: Request<ReqBody>,
    auth: Arc<Auth<R, F>>,
}

pin_project! {
    /// The response future of [`JwtAuth`](crate::JwtAuth).
    ///
    /// A rejection known synchronously is returned as is; a store check that answered at
    /// once goes straight to the inner service's future; only a store check still in
    /// flight has a state of its own. Nothing is boxed.
    pub struct ResponseFuture<S, R, F, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
        R: RevocationStore,
    {
        #[pin]
        state: State<S, R, F, ReqBody, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, R, F, ReqBody, ResBody>
    where
        S: Service<Request<ReqBody>>,
        R: RevocationStore,
    {
        Inner { #[pin] future: S::Future },
        Rejected { response: Option<Response<ResBody>> },
        Checking {
            #[pin]
            check: R::CheckFuture,
            waiting: Option<Waiting<S, R, F, ReqBody>>,
        },
    }
}

impl<S, R, F, ReqBody, ResBody> ResponseFuture<S, R, F, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
    R: RevocationStore,
{
    pub(crate) fn inner(future: S::Future) -> Self {
        Self {
            state: State::Inner { future },
        }
    }

    pub(crate) fn rejected(response: Response<ResBody>) -> Self {
        Self {
            state: State::Rejected {
                response: Some(response),
            },
        }
    }

    pub(crate) fn checking(
        check: R::CheckFuture,
        inner: S,
        request: Request<ReqBody>,
        auth: Arc<Auth<R, F>>,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                waiting: Some(Waiting {
                    inner,
                    request,
                    auth,
                }),
            },
        }
    }
}

impl<S, R, F, ReqBody, ResBody> Future for ResponseFuture<S, R, F, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    R: RevocationStore,
    F: OnRejection<ResBody>,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Inner { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
                StateProj::Checking { check, waiting } => {
                    let result = ready!(check.poll(cx));
                    let Waiting {
                        mut inner,
                        request,
                        auth,
                    } = waiting
                        .take()
                        .expect("ResponseFuture polled after completion");
                    let next = match store_answer(result) {
                        Ok(()) => State::Inner {
                            future: inner.call(request),
                        },
                        // The request was not handed on: its headers are still here.
                        Err(rejection) => State::Rejected {
                            response: Some(auth.respond(rejection, request.headers())),
                        },
                    };
                    this.state.set(next);
                }
            }
        }
    }
}

impl<S, R, F, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, R, F, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
    R: RevocationStore,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
