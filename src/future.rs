//! The response future of [`JwtAuth`](crate::JwtAuth).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::auth::{Auth, Decision, store_answer};
use crate::rejection::{OnRejection, reasons};
use crate::store::RevocationStore;
use crate::verify::KeyWait;

/// The layer's decision for a request, named without its claims type: what a request
/// that waited for a key-set fetch runs again.
pub(crate) type Redo<R, F, B> =
    fn(&Auth<R, F>, &mut Request<B>, bool) -> Decision<<R as RevocationStore>::CheckFuture>;

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
    /// flight, or a wait for an identity provider's key set (feature `oidc`), has a
    /// state of its own. Nothing is boxed but that wait.
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
        AwaitingKeys {
            #[pin]
            wait: KeyWait,
            waiting: Option<Waiting<S, R, F, ReqBody>>,
            redo: Redo<R, F, ReqBody>,
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

impl<S, R, F, ReqBody, ResBody> ResponseFuture<S, R, F, ReqBody, ResBody>
where
    S: Service<Request<ReqBody>>,
    R: RevocationStore,
{
    pub(crate) fn awaiting_keys(
        wait: KeyWait,
        inner: S,
        request: Request<ReqBody>,
        auth: Arc<Auth<R, F>>,
        redo: Redo<R, F, ReqBody>,
    ) -> Self {
        Self {
            state: State::AwaitingKeys {
                wait,
                waiting: Some(Waiting {
                    inner,
                    request,
                    auth,
                }),
                redo,
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
                StateProj::AwaitingKeys {
                    wait,
                    waiting,
                    redo,
                } => {
                    ready!(wait.poll(cx));
                    let Waiting {
                        mut inner,
                        mut request,
                        auth,
                    } = waiting
                        .take()
                        .expect("ResponseFuture polled after completion");
                    // Decided again, now without waiting: the fetch has answered (or the
                    // wait bound passed, and the token is answered as the keys are).
                    let next = match redo(&auth, &mut request, false) {
                        Decision::Proceed => State::Inner {
                            future: inner.call(request),
                        },
                        Decision::Reject(rejection) => State::Rejected {
                            response: Some(auth.respond(rejection, request.headers())),
                        },
                        Decision::Check(check) => State::Checking {
                            check,
                            waiting: Some(Waiting {
                                inner,
                                request,
                                auth,
                            }),
                        },
                        Decision::AwaitKeys(_) => State::Rejected {
                            response: Some(
                                auth.respond(reasons::KEYS_UNAVAILABLE, request.headers()),
                            ),
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
