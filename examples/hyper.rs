//! The same layer around a plain hyper service, no axum: the crate is framework-agnostic.
//!
//! ```text
//! cargo run --example hyper
//! ```
//!
//! Routes: `GET /health`; `POST /login` with `{"username":"alice","password":"wonderland"}`
//! answers `{"access_token": .., "token_type": "Bearer", "expires_in": ..}`; `GET /me` and
//! `POST /logout` need `Authorization: Bearer <token>`. `ADDR` (default
//! `127.0.0.1:3000`) and `JWT_SECRET` (random when unset) as for the server example.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tower::{Layer, ServiceExt, service_fn};
use tower_jwt_auth::{
    Claims, JwtAuthLayer, MemoryStore, Revoker, TokenInfo, TokenIssuer, VerificationKey,
};

type Body = Full<Bytes>;

fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, description: &str) -> Response<Body> {
    json_response(status, &json!({ "error_description": description }))
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// The one demo user, compared in constant time (fixed-length hashes, no short-circuit).
fn authenticate(c: &Credentials) -> bool {
    let user = Sha256::digest(c.username.as_bytes()).ct_eq(&Sha256::digest(b"alice"));
    let pass = Sha256::digest(c.password.as_bytes()).ct_eq(&Sha256::digest(b"wonderland"));
    (user & pass).into()
}

/// `POST /login`: a token for alice.
async fn login(req: Request<Incoming>, issuer: &TokenIssuer) -> Response<Body> {
    let Ok(body) = Limited::new(req.into_body(), 4096).collect().await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    };
    let Ok(credentials) = serde_json::from_slice::<Credentials>(&body.to_bytes()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "expected JSON {\"username\": \"...\", \"password\": \"...\"}",
        );
    };
    if !authenticate(&credentials) {
        return error(StatusCode::UNAUTHORIZED, "wrong username or password");
    }
    match issuer.issue(&credentials.username) {
        Ok(token) => json_response(
            StatusCode::OK,
            &json!({
                "access_token": token.as_str(),
                "token_type": "Bearer",
                "expires_in": token.expires_in(),
            }),
        ),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "could not issue a token"),
    }
}

/// The routes behind the layer: the claims and the token handle are in the extensions.
async fn protected(req: Request<Incoming>, revoker: Revoker) -> Result<Response<Body>, Infallible> {
    let ext = req.extensions();
    let (Some(claims), Some(token)) = (ext.get::<Claims>(), ext.get::<TokenInfo>()) else {
        return Ok(error(StatusCode::INTERNAL_SERVER_ERROR, "no auth layer"));
    };
    Ok(match (req.method(), req.uri().path()) {
        (&Method::GET, "/me") => json_response(
            StatusCode::OK,
            &serde_json::to_value(claims).unwrap_or_default(),
        ),
        (&Method::POST, "/logout") => match revoker.revoke(token).await {
            Ok(()) => {
                let mut response = Response::new(Body::default());
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
            }
            Err(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the logout could not be recorded",
            ),
        },
        _ => error(StatusCode::NOT_FOUND, "not found"),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let secret = match std::env::var("JWT_SECRET") {
        Ok(secret) => secret.into_bytes(),
        Err(_) => {
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret)?;
            eprintln!("JWT_SECRET is not set: generated a random secret for this run");
            secret
        }
    };

    let issuer = TokenIssuer::hs256(&secret)?;
    let auth = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(&secret)?)
        .build()?;
    let revoker = auth.revoker();
    // The layer wraps any tower service whose responses have a `Default` body.
    let protected = auth.layer(service_fn(move |req| protected(req, revoker.clone())));

    let app = service_fn(move |req: Request<Incoming>| {
        let issuer = issuer.clone();
        let protected = protected.clone();
        async move {
            match (req.method(), req.uri().path()) {
                (&Method::GET, "/health") => {
                    Ok::<_, Infallible>(json_response(StatusCode::OK, &json!({ "status": "ok" })))
                }
                (&Method::POST, "/login") => Ok(login(req, &issuer).await),
                (_, "/me" | "/logout") => protected.oneshot(req).await,
                _ => Ok(error(StatusCode::NOT_FOUND, "not found")),
            }
        }
    });

    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            // A client that hangs up mid-request is not our error.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    Ok(())
}
