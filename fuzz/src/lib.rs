//! Helpers shared by the fuzz targets: an inner service that echoes what the layer
//! decided, and a one-poll executor (every future here is ready at once: the inner
//! service is synchronous and `MemoryStore` answers from memory).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::marker::PhantomData;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::{Request, Response, StatusCode};
use tower_jwt_auth::{Claims, Rejection, TokenInfo};
use tower_service::Service;

/// The test secret (the same as the integration tests').
pub const SECRET: &[u8] = b"integration-test-secret-0123456789abcdef";

/// Answers 200 with the subject of the claims the layer inserted, and copies the
/// `TokenInfo` into the response so the target can check which token passed.
pub struct Echo<C>(PhantomData<fn() -> C>);

impl<C> Echo<C> {
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

impl<C> Default for Echo<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C> Clone for Echo<C> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<C: Send + Sync + 'static, B> Service<Request<B>> for Echo<C> {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let claims = req
            .extensions()
            .get::<Claims<C>>()
            .expect("a request the layer let through carries its claims");
        let info = req.extensions().get::<TokenInfo>().cloned();
        let mut res = Response::new(claims.subject().to_owned());
        if let Some(info) = info {
            res.extensions_mut().insert(info);
        }
        ready(Ok(res))
    }
}

/// Polls `fut` once: everything on these paths must be ready at once.
pub fn now_or_never<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a MemoryStore request path must never be pending"),
    }
}

/// Sends `req` through `svc` and checks the invariants every answer must keep: one of
/// 200/400/401/403, a `Rejection` in the extensions of every refusal and of no success.
pub fn call<S, B>(svc: &mut S, req: Request<B>) -> Response<String>
where
    S: Service<Request<B>, Response = Response<String>, Error = Infallible>,
{
    now_or_never(std::future::poll_fn(|cx| svc.poll_ready(cx))).unwrap();
    let res = now_or_never(svc.call(req)).unwrap();
    let status = res.status();
    let rejection = res.extensions().get::<Rejection>();
    match status {
        StatusCode::OK => assert!(rejection.is_none(), "a 200 carries a rejection"),
        StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            let r = rejection.expect("a refusal carries its rejection");
            assert_eq!(r.status(), status);
        }
        other => panic!("unexpected status {other}"),
    }
    res
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
