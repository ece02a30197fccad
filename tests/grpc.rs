//! The layer in front of a tonic server (`examples/tonic.rs`, included below), driven
//! by a real tonic client over HTTP/2 on a real port: accepted calls, each refusal's gRPC
//! status and message, a token refused after `Logout`, server-streaming calls, and the
//! same port answering a plain (non-gRPC) HTTP request the RFC 6750 way.

mod support;

#[path = "../examples/tonic.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

#[path = "grpc/countdown.rs"]
#[allow(unreachable_pub, missing_docs)]
mod countdown;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{StatusCode, header};
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, Header};
use support::clock::now;
use support::tokens::{OTHER_SECRET, SECRET, claims, hs256, sign};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::Stream;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Response, Status};
use tower::ServiceExt;
use tower_jwt_auth::{
    Check, JwtAuthLayer, MemoryStore, RevocationStatus, RevocationStore, RevokedToken,
    SubjectCutoff, TokenInfo, TokenIssuer, VerificationKey,
};

use countdown::countdown_client::CountdownClient;
use countdown::countdown_server::{Countdown, CountdownServer};
use countdown::{CountRequest, Tick};
use example::helloworld::greeter_client::GreeterClient;
use example::helloworld::{HelloRequest, LogoutRequest};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// A streaming service added beside the example's Greeter, behind the same layer. It
/// counts the calls that reach it.
#[derive(Clone, Default)]
struct Counter {
    calls: Arc<AtomicUsize>,
}

type Ticks = Pin<Box<dyn Stream<Item = Result<Tick, Status>> + Send>>;

#[tonic::async_trait]
impl Countdown for Counter {
    type CountStream = Ticks;

    async fn count(&self, request: Request<CountRequest>) -> Result<Response<Ticks>, Status> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let from = request.into_inner().from.min(100);
        let ticks = (1..=from).rev().map(|value| Ok(Tick { value }));
        Ok(Response::new(Box::pin(tokio_stream::iter(ticks))))
    }
}

/// The example's server, plus the [`Counter`], on 127.0.0.1 with a free port; shut down
/// when dropped.
struct Server {
    addr: SocketAddr,
    counter: Counter,
    _shutdown: oneshot::Sender<()>,
}

impl Server {
    async fn start<R: RevocationStore>(auth: JwtAuthLayer<R>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counter = Counter::default();
        let (shutdown, stopped) = oneshot::channel::<()>();
        let router = example::router(auth).add_service(CountdownServer::new(counter.clone()));
        tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Self {
            addr,
            counter,
            _shutdown: shutdown,
        }
    }

    /// The example's layer (HS256 with `SECRET`) on a fresh in-memory store.
    async fn example() -> Self {
        Self::start(example::auth_layer(MemoryStore::new(), SECRET).unwrap()).await
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    async fn greeter(&self) -> GreeterClient<Channel> {
        GreeterClient::new(self.channel().await)
    }

    async fn countdown(&self) -> CountdownClient<Channel> {
        CountdownClient::new(self.channel().await)
    }
}

/// A request carrying `authorization: <value>` metadata, when given.
fn with_authorization<T>(message: T, authorization: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", MetadataValue::try_from(value).unwrap());
    }
    request
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn hello(authorization: Option<&str>) -> Request<HelloRequest> {
    with_authorization(
        HelloRequest {
            name: "ignored".into(),
        },
        authorization,
    )
}

/// A token as the example server issues it: `TokenIssuer::hs256` with its defaults.
fn issued(subject: &str) -> String {
    TokenIssuer::hs256(SECRET)
        .unwrap()
        .issue(subject)
        .unwrap()
        .as_str()
        .to_owned()
}

#[track_caller]
fn assert_status(status: &Status, code: Code, message: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}

// ---------------------------------------------------------------------------------------
// Unary calls
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_accepted_call_greets_the_tokens_subject() {
    let server = Server::example().await;
    let mut client = server.greeter().await;
    let reply = client
        .say_hello(hello(Some(&bearer(&issued("alice")))))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello alice");
    let reply = client
        .say_hello(hello(Some(&bearer(&issued("bob")))))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello bob");
}

#[tokio::test]
async fn each_refusal_is_a_grpc_status_with_its_message() {
    let server = Server::example().await;
    let mut client = server.greeter().await;
    let expired = {
        let mut c = claims("alice");
        c["iat"] = (now() - 7200).into();
        c["exp"] = (now() - 3600).into();
        hs256(&c)
    };
    let other_key = sign(
        &Header::new(Algorithm::HS256),
        &claims("alice"),
        OTHER_SECRET,
    );
    let cases: [(&[String], &str); 7] = [
        (&[], "no token was presented"),
        (&[bearer(&other_key)], "the token's signature is invalid"),
        (&[bearer(&expired)], "the token has expired"),
        (&[bearer("not-a-jwt")], "the token is malformed"),
        (
            &[bearer(&"a".repeat(9000))],
            "the token is longer than allowed",
        ),
        // HTTP's 400 invalid_request: malformed credentials, still UNAUTHENTICATED.
        (
            &["Bearer not a token68".into()],
            "the Authorization header is not valid Bearer credentials",
        ),
        (
            &[bearer(&issued("alice")), bearer(&issued("bob"))],
            "more than one Authorization header was sent",
        ),
    ];
    for (authorization, message) in cases {
        let mut request = hello(None);
        for value in authorization {
            request
                .metadata_mut()
                .append("authorization", MetadataValue::try_from(value).unwrap());
        }
        let status = client.say_hello(request).await.unwrap_err();
        assert_status(&status, Code::Unauthenticated, message);
    }
    // The connection stays usable after refusals.
    let reply = client
        .say_hello(hello(Some(&bearer(&issued("alice")))))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().message, "Hello alice");
}

#[tokio::test]
async fn after_logout_the_same_token_is_refused() {
    let server = Server::example().await;
    let mut client = server.greeter().await;
    let token = bearer(&issued("alice"));
    let other = bearer(&issued("alice"));

    client.say_hello(hello(Some(&token))).await.unwrap();
    client
        .logout(with_authorization(LogoutRequest {}, Some(&token)))
        .await
        .unwrap();

    let status = client.say_hello(hello(Some(&token))).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "the token has been revoked");
    let status = client
        .logout(with_authorization(LogoutRequest {}, Some(&token)))
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "the token has been revoked");
    // Only that token was logged out.
    let reply = client.say_hello(hello(Some(&other))).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello alice");
}

/// A store that cannot answer: at once (`Check::Ready`), or after a round trip
/// (`Check::Pending`, the response future's path).
#[derive(Clone, Copy)]
struct Down {
    pending: bool,
}

#[derive(Debug)]
struct Unreachable;

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store is unreachable")
    }
}

impl std::error::Error for Unreachable {}

/// Pending once (waking itself), then the error.
struct Later(bool);

impl Future for Later {
    type Output = Result<RevocationStatus, Unreachable>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.0 {
            self.0 = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Err(Unreachable))
    }
}

impl RevocationStore for Down {
    type Error = Unreachable;
    type CheckFuture = Later;

    fn check(&self, _: &TokenInfo) -> Check<Later> {
        if self.pending {
            Check::Pending(Later(false))
        } else {
            Check::Ready(Err(Unreachable))
        }
    }

    async fn revoke(&self, _: &RevokedToken<'_>) -> Result<(), Unreachable> {
        Err(Unreachable)
    }

    async fn revoke_subject(&self, _: &SubjectCutoff<'_>) -> Result<(), Unreachable> {
        Err(Unreachable)
    }

    async fn revoke_session(
        &self,
        _: &tower_jwt_auth::RevokedSession<'_>,
    ) -> Result<(), Unreachable> {
        Err(Unreachable)
    }
}

#[tokio::test]
async fn a_store_that_cannot_answer_is_unavailable() {
    for pending in [false, true] {
        let server = Server::start(example::auth_layer(Down { pending }, SECRET).unwrap()).await;
        let mut client = server.greeter().await;
        let status = client
            .say_hello(hello(Some(&bearer(&issued("alice")))))
            .await
            .unwrap_err();
        assert_status(
            &status,
            Code::Unavailable,
            "the revocation store is unavailable",
        );
        // The store's error is not sent to the client.
        assert!(!format!("{status:?}").contains("unreachable"), "{status:?}");
        let status = server
            .countdown()
            .await
            .count(with_authorization(
                CountRequest { from: 3 },
                Some(&bearer(&issued("alice"))),
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "pending: {pending}");
        assert_eq!(server.counter.calls.load(Ordering::Relaxed), 0);
    }
}

#[tokio::test]
async fn a_cross_origin_cookie_call_is_permission_denied() {
    // A layer that also takes the token from a cookie: a cookie token on a request from
    // another origin is refused (403 over HTTP), which gRPC calls PERMISSION_DENIED.
    let auth = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .cookie("access_token")
        .build()
        .unwrap();
    let server = Server::start(auth).await;
    let mut client = server.greeter().await;
    let cookie = format!("access_token={}", issued("alice"));
    let with_cookie = |origin: Option<&str>| {
        let mut request = hello(None);
        let metadata = request.metadata_mut();
        metadata.insert("cookie", MetadataValue::try_from(cookie.as_str()).unwrap());
        if let Some(origin) = origin {
            metadata.insert("origin", MetadataValue::try_from(origin).unwrap());
        }
        request
    };

    let status = client
        .say_hello(with_cookie(Some("https://evil.example")))
        .await
        .unwrap_err();
    assert_status(
        &status,
        Code::PermissionDenied,
        "cross-origin request with a cookie token refused",
    );
    // The same cookie without a foreign origin is accepted.
    let reply = client.say_hello(with_cookie(None)).await.unwrap();
    assert_eq!(reply.into_inner().message, "Hello alice");
}

// ---------------------------------------------------------------------------------------
// Streaming calls
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn streaming_calls_are_accepted_and_refused_the_same_way() {
    let server = Server::example().await;
    let mut client = server.countdown().await;
    let token = bearer(&issued("alice"));
    let count =
        |authorization: Option<&str>| with_authorization(CountRequest { from: 3 }, authorization);

    let mut stream = client
        .count(count(Some(&token)))
        .await
        .unwrap()
        .into_inner();
    let mut values = Vec::new();
    while let Some(tick) = stream.message().await.unwrap() {
        values.push(tick.value);
    }
    assert_eq!(values, [3, 2, 1]);
    assert_eq!(server.counter.calls.load(Ordering::Relaxed), 1);

    let status = client.count(count(None)).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "no token was presented");
    let status = client
        .count(count(Some(&bearer("not-a-jwt"))))
        .await
        .unwrap_err();
    assert_status(&status, Code::Unauthenticated, "the token is malformed");

    // Revoked through the Greeter's Logout: the streaming service refuses it too.
    server
        .greeter()
        .await
        .logout(with_authorization(LogoutRequest {}, Some(&token)))
        .await
        .unwrap();
    let status = client.count(count(Some(&token))).await.unwrap_err();
    assert_status(&status, Code::Unauthenticated, "the token has been revoked");
    // No refused call reached the service.
    assert_eq!(server.counter.calls.load(Ordering::Relaxed), 1);
}

// ---------------------------------------------------------------------------------------
// The answers on the wire
// ---------------------------------------------------------------------------------------

/// Sends a raw HTTP/2 request over the same connection kind a tonic client uses.
async fn raw(
    server: &Server,
    content_type: &str,
) -> (http::response::Parts, Vec<Vec<u8>>, Option<http::HeaderMap>) {
    let request = http::Request::post(format!(
        "http://{}/helloworld.Greeter/SayHello",
        server.addr
    ))
    .header(header::CONTENT_TYPE, content_type)
    .header(header::TE, "trailers")
    .body(tonic::body::Body::empty())
    .unwrap();
    let response = server.channel().await.oneshot(request).await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(bytes) => data.push(bytes.to_vec()),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    (parts, data, trailers)
}

#[tokio::test]
async fn a_refused_grpc_call_gets_a_trailers_only_answer() {
    let server = Server::example().await;
    let (parts, data, trailers) = raw(&server, "application/grpc+proto").await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/grpc");
    assert_eq!(parts.headers["grpc-status"], "16");
    assert_eq!(parts.headers["grpc-message"], "no token was presented");
    assert!(parts.headers.get(header::WWW_AUTHENTICATE).is_none());
    // Trailers-Only: the status is in the headers, no message and no trailers follow.
    assert!(data.iter().all(Vec::is_empty), "{data:?}");
    assert!(trailers.is_none(), "{trailers:?}");
}

#[tokio::test]
async fn a_plain_http_request_to_the_same_server_gets_rfc_6750_answers() {
    let server = Server::example().await;
    let (parts, _, _) = raw(&server, "application/json").await;
    assert_eq!(parts.status, StatusCode::UNAUTHORIZED);
    assert_eq!(parts.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert!(parts.headers.get("grpc-status").is_none());

    // And a gRPC-looking path does not make it gRPC: only the content-type does.
    let request = http::Request::post(format!(
        "http://{}/helloworld.Greeter/SayHello",
        server.addr
    ))
    .header(header::AUTHORIZATION, bearer("not-a-jwt"))
    .body(tonic::body::Body::empty())
    .unwrap();
    let response = server.channel().await.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        "Bearer error=\"invalid_token\", error_description=\"the token is malformed\""
    );
}

// The layer must be usable in `Server::builder().layer(..)` with any store: this only
// has to compile.
#[allow(dead_code)]
fn layers_with_any_store<R: RevocationStore>(auth: JwtAuthLayer<R>) {
    let _ = example::router(auth);
}
