//! HTTP over real sockets: a client (hyper-util's) whose every call has a time limit, so
//! that a server that hangs is an error the test reports, never a test that hangs; the
//! answer it reads; and serving a router on a free loopback port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A whole answer, and how long it took.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub elapsed: Duration,
}

impl Reply {
    /// A header's value as text.
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// The body as JSON.
    ///
    /// # Panics
    ///
    /// When it is not JSON.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{}: body is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A 200 whose JSON body has this `sub` (the example server's `/me`).
    #[track_caller]
    pub fn assert_ok_subject(&self, subject: &str) {
        assert_eq!(self.status, StatusCode::OK, "{:?}", self.body);
        assert_eq!(self.json()["sub"], subject);
    }

    /// A 401 with `error="invalid_token"` in the RFC 6750 challenge.
    #[track_caller]
    pub fn assert_invalid_token(&self) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{:?}", self.body);
        let challenge = self
            .header(header::WWW_AUTHENTICATE)
            .expect("a WWW-Authenticate challenge");
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{challenge}"
        );
    }
}

/// Why a call got no answer.
#[derive(Debug)]
pub enum Failure {
    /// The time limit was hit: the server did not answer in time.
    TimedOut(Duration),
    /// The connection failed (refused, reset).
    Error(String),
}

/// A pooled HTTP/1 client with a per-call time limit.
#[derive(Clone, Debug)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    limit: Duration,
}

impl Http {
    /// A client whose every call gives up after `limit`.
    pub fn new(limit: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(limit));
        connector.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            limit,
        }
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Sends `request` and reads the whole answer within the limit.
    pub async fn try_send(&self, request: Request<Full<Bytes>>) -> Result<Reply, Failure> {
        let start = Instant::now();
        let call = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| Failure::Error(format!("{e:?}")))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| Failure::Error(format!("{e:?}")))?
                .to_bytes();
            Ok((parts, body))
        };
        match tokio::time::timeout(self.limit, call).await {
            Ok(Ok((parts, body))) => Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
                elapsed: start.elapsed(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Failure::TimedOut(start.elapsed())),
        }
    }

    /// [`try_send`](Self::try_send), failing the test when there is no answer.
    #[track_caller]
    pub fn send(&self, request: Request<Full<Bytes>>) -> impl Future<Output = Reply> + Send {
        let what = format!("{} {}", request.method(), request.uri());
        let caller = std::panic::Location::caller();
        async move {
            match self.try_send(request).await {
                Ok(reply) => reply,
                Err(e) => panic!("{what} ({caller}): no answer: {e:?}"),
            }
        }
    }

    /// `method path` on `addr`, with a bearer token and a JSON body when given.
    pub async fn call(
        &self,
        addr: SocketAddr,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        json: Option<String>,
    ) -> Result<Reply, Failure> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path}"));
        if let Some(token) = bearer {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match json {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(json)
            }
            None => Bytes::new(),
        };
        self.try_send(request.body(Full::new(body)).expect("a valid request"))
            .await
    }

    /// `POST /login` for a demo user (`alice` or `bob`).
    pub async fn login(&self, addr: SocketAddr, user: &str) -> Result<Reply, Failure> {
        let json = serde_json::json!({ "username": user, "password": password(user) });
        self.call(addr, Method::POST, "/login", None, Some(json.to_string()))
            .await
    }

    /// `GET /me` with the token.
    pub async fn me(&self, addr: SocketAddr, token: &str) -> Result<Reply, Failure> {
        self.call(addr, Method::GET, "/me", Some(token), None).await
    }

    /// `POST /logout` with the token.
    pub async fn logout(&self, addr: SocketAddr, token: &str) -> Result<Reply, Failure> {
        self.call(addr, Method::POST, "/logout", Some(token), None)
            .await
    }

    /// `POST /logout-all` with the token.
    pub async fn logout_all(&self, addr: SocketAddr, token: &str) -> Result<Reply, Failure> {
        self.call(addr, Method::POST, "/logout-all", Some(token), None)
            .await
    }
}

/// The password of a demo user of the example server.
///
/// # Panics
///
/// For another user.
pub fn password(user: &str) -> &'static str {
    match user {
        "alice" => "wonderland",
        "bob" => "builder",
        other => panic!("no demo user {other}"),
    }
}

/// The `access_token` of a login answer.
#[track_caller]
pub fn access_token(reply: &Reply) -> String {
    reply.json()["access_token"]
        .as_str()
        .expect("an access_token")
        .to_owned()
}

/// Serves `router` on a free port of 127.0.0.1, in this runtime, until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("the bound address");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serving") });
    addr
}
