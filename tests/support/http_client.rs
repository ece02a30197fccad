//! A small HTTP client for the example server's routes (hyper-util's), where every call
//! has a time limit: a call that hits it is an error the caller asserts on, never a
//! hang.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// An answer and how long it took.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
    pub elapsed: Duration,
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

    /// Sends one request and reads the whole answer within the limit.
    pub async fn send(
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
        let request = request.body(Full::new(body)).expect("a valid request");
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
            Ok((parts.status, body))
        };
        match tokio::time::timeout(self.limit, call).await {
            Ok(Ok((status, body))) => Ok(Reply {
                status,
                body,
                elapsed: start.elapsed(),
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Failure::TimedOut(start.elapsed())),
        }
    }

    /// `POST /login` for a demo user (`alice` or `bob`).
    pub async fn login(&self, addr: SocketAddr, user: &str) -> Result<Reply, Failure> {
        let password = match user {
            "alice" => "wonderland",
            "bob" => "builder",
            other => panic!("no demo user {other}"),
        };
        let json = format!(r#"{{"username":"{user}","password":"{password}"}}"#);
        self.send(addr, Method::POST, "/login", None, Some(json))
            .await
    }

    /// `GET /me` with the token.
    pub async fn me(&self, addr: SocketAddr, token: &str) -> Result<Reply, Failure> {
        self.send(addr, Method::GET, "/me", Some(token), None).await
    }

    /// `POST /logout` with the token.
    pub async fn logout(&self, addr: SocketAddr, token: &str) -> Result<Reply, Failure> {
        self.send(addr, Method::POST, "/logout", Some(token), None)
            .await
    }

    /// `POST /logout-all` with the token.
    pub async fn logout_all(&self, addr: SocketAddr, token: &str) -> Result<Reply, Failure> {
        self.send(addr, Method::POST, "/logout-all", Some(token), None)
            .await
    }
}

/// The `access_token` of a login answer.
pub fn access_token(reply: &Reply) -> String {
    let body: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| {
        panic!(
            "{}: not a JSON login answer ({e}): {:?}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )
    });
    body["access_token"]
        .as_str()
        .expect("an access_token")
        .to_owned()
}
