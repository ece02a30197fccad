//! The layer in front of a tonic gRPC server: the standard `helloworld.Greeter`, whose
//! `SayHello` greets the caller by the token's subject, plus a `Logout` that revokes the
//! caller's token.
//!
//! ```text
//! cargo run --example tonic
//! ```
//!
//! Configuration (environment), as for the example server (`examples/server`):
//!
//! - `ADDR`: listen address, default `127.0.0.1:50051`.
//! - `JWT_SECRET`: the HS256 secret (at least 32 bytes). When unset, a random one is
//!   generated at start, and no token from elsewhere is accepted.
//!
//! It accepts the tokens the example server issues with the same `JWT_SECRET` (HS256, no
//! `kid`), sent as `authorization: Bearer <token>` metadata:
//!
//! ```text
//! export JWT_SECRET=an-example-secret-of-at-least-32-bytes
//! cargo run --example server &
//! cargo run --example tonic &
//! TOKEN=$(curl -s 127.0.0.1:3000/login -H 'content-type: application/json' \
//!     -d '{"username":"alice","password":"wonderland"}' | jq -r .access_token)
//! grpcurl -plaintext -import-path examples/tonic -proto helloworld.proto \
//!     -H "authorization: Bearer $TOKEN" 127.0.0.1:50051 helloworld.Greeter/SayHello
//! # {"message": "Hello alice"}
//! grpcurl -plaintext -import-path examples/tonic -proto helloworld.proto \
//!     -H "authorization: Bearer $TOKEN" 127.0.0.1:50051 helloworld.Greeter/Logout
//! # The same call again: "Code: Unauthenticated, Message: the token has been revoked".
//! ```
//!
//! A refused call never reaches the service: the layer answers it with a gRPC status
//! (`UNAUTHENTICATED`, `PERMISSION_DENIED` or `UNAVAILABLE`) that every gRPC client reads.
//! The code generated from `examples/tonic/helloworld.proto` is checked in
//! (`examples/tonic/helloworld.rs`), so building this needs no `protoc`.

/// The messages, server and client generated from `helloworld.proto`.
#[path = "tonic/helloworld.rs"]
#[allow(missing_docs)]
pub mod helloworld;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::{Router, TcpIncoming};
use tonic::{Request, Response, Status};
use tower::layer::util::{Identity, Stack};
use tower_jwt_auth::{
    Claims, ConfigError, JwtAuthLayer, MemoryStore, RevocationStore, Revoker, TokenInfo,
    VerificationKey,
};

use helloworld::greeter_server::{Greeter, GreeterServer};
use helloworld::{HelloReply, HelloRequest, LogoutReply, LogoutRequest};

/// The `helloworld.Greeter` service. It sits behind the layer, so every call it sees
/// carries verified, unrevoked [`Claims`] and [`TokenInfo`] in its extensions.
#[derive(Debug)]
pub struct AuthGreeter {
    revoker: Revoker,
}

impl AuthGreeter {
    /// The service, logging tokens out through `revoker`.
    pub fn new(revoker: Revoker) -> Self {
        Self { revoker }
    }
}

#[tonic::async_trait]
impl Greeter for AuthGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        // tonic hands the HTTP request's extensions over to the gRPC request.
        let claims = request
            .extensions()
            .get::<Claims>()
            .ok_or_else(|| Status::internal("no auth layer in front of the service"))?;
        Ok(Response::new(HelloReply {
            message: format!("Hello {}", claims.subject()),
        }))
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutReply>, Status> {
        let token = request
            .extensions()
            .get::<TokenInfo>()
            .ok_or_else(|| Status::internal("no auth layer in front of the service"))?;
        match self.revoker.revoke(token).await {
            Ok(()) => Ok(Response::new(LogoutReply {})),
            Err(_) => Err(Status::unavailable("the logout could not be recorded")),
        }
    }
}

/// The layer: HS256 with `secret` and no `kid`, tokens in the `authorization` metadata,
/// the core's defaults otherwise (the same rules as the example server's), revocations
/// recorded in `store`.
///
/// # Errors
///
/// A [`ConfigError`] when the secret is too short or no crypto backend is usable.
pub fn auth_layer<R: RevocationStore>(
    store: R,
    secret: &[u8],
) -> Result<JwtAuthLayer<R>, ConfigError> {
    JwtAuthLayer::builder(store)
        .key(VerificationKey::hs256(secret)?)
        .build()
}

/// The server: the Greeter behind `auth`, logging out through `auth`'s revoker. Every
/// service added to it (`.add_service(..)`) is behind the layer too.
pub fn router<R: RevocationStore>(
    auth: JwtAuthLayer<R>,
) -> Router<Stack<JwtAuthLayer<R>, Identity>> {
    let greeter = GreeterServer::new(AuthGreeter::new(auth.revoker()));
    Server::builder().layer(auth).add_service(greeter)
}

/// `JWT_SECRET`, checked as the example server checks it, or 32 random bytes.
fn secret() -> Result<Vec<u8>, String> {
    match std::env::var("JWT_SECRET") {
        Ok(secret) if secret.len() < 32 => Err(format!(
            "JWT_SECRET is {} bytes long; HS256 needs at least 32",
            secret.len()
        )),
        Ok(secret) => Ok(secret.into_bytes()),
        Err(std::env::VarError::NotUnicode(_)) => Err("JWT_SECRET is not valid UTF-8".into()),
        Err(std::env::VarError::NotPresent) => {
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
            eprintln!(
                "JWT_SECRET is not set: generated a random secret for this run \
                 (no token from elsewhere is accepted)"
            );
            Ok(secret)
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::var("ADDR") {
        Ok(addr) => addr
            .parse()
            .map_err(|_| format!("ADDR={addr:?} is not an address like 127.0.0.1:50051"))?,
        Err(_) => SocketAddr::from(([127, 0, 0, 1], 50051)),
    };
    let auth = auth_layer(MemoryStore::new(), &secret()?)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    // On stdout, alone, so scripts can wait for it.
    println!("listening on http://{}", listener.local_addr()?);
    router(auth)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
