//! The layer around a small inner service that reports what it received, called
//! in-process (no sockets): requests in, what the inner service and the client saw out.

use std::convert::Infallible;

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_jwt_auth::{
    Claims, JwtAuth, JwtAuthLayer, MemoryStore, Rejection, RejectionKind, TokenInfo,
};

use super::tokens::SECRET;

/// The default test layer: HS256 `SECRET`, bearer then `access_token` cookie.
pub fn layer() -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .key(tower_jwt_auth::VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .build()
        .unwrap()
}
/// What the inner service saw.
#[derive(Debug)]
pub struct Seen {
    pub status: StatusCode,
    pub subject: Option<String>,
    pub info: Option<TokenInfo>,
    pub rejection: Option<Rejection>,
    pub www_authenticate: Option<String>,
}

impl Seen {
    pub fn kind(&self) -> Option<RejectionKind> {
        self.rejection.as_ref().map(Rejection::kind)
    }
}

/// The inner test service: answers with the subject of the claims it received.
pub type Inner = tower::util::ServiceFn<
    fn(Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>>,
>;

fn inner(req: Request<String>) -> std::future::Ready<Result<Response<String>, Infallible>> {
    let sub = req
        .extensions()
        .get::<Claims>()
        .map(|c| c.subject().to_owned())
        .unwrap_or_default();
    let mut res = Response::new(sub);
    if let Some(info) = req.extensions().get::<TokenInfo>() {
        res.extensions_mut().insert(info.clone());
    }
    std::future::ready(Ok(res))
}

/// The layer around a service that reports the claims it received.
pub fn app<R>(layer: &JwtAuthLayer<R>) -> JwtAuth<Inner, R> {
    layer.layer(service_fn(inner as fn(_) -> _))
}

pub async fn send<S>(svc: &S, req: Request<String>) -> Seen
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
{
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let www_authenticate = res
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let rejection = res.extensions().get::<Rejection>().cloned();
    let info = res.extensions().get::<TokenInfo>().cloned();
    let body = res.into_body();
    Seen {
        status,
        subject: (status == StatusCode::OK && !body.is_empty()).then_some(body),
        info,
        rejection,
        www_authenticate,
    }
}

pub fn bearer(token: &str) -> Request<String> {
    Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(String::new())
        .unwrap()
}

pub fn with_cookie(method: &str, token: &str) -> Request<String> {
    Request::builder()
        .method(method)
        .uri("http://app.example/logout")
        .header(header::HOST, "app.example")
        .header(header::COOKIE, format!("theme=dark; access_token={token}"))
        .body(String::new())
        .unwrap()
}

pub fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap()
}

/// Asserts an RFC 6750 `invalid_token` rejection of the given kind.
pub fn assert_invalid_token(seen: &Seen, kind: RejectionKind) {
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED, "{seen:?}");
    assert_eq!(seen.kind(), Some(kind), "{seen:?}");
    let challenge = seen.www_authenticate.as_deref().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(seen.subject.is_none());
}
