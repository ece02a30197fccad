//! The usual design, for `scripts/bench-http` to load side by side with the example
//! server: verify the HS256 token, then ask Redis whether its `jti` is on the denylist
//! (one `EXISTS` per authenticated request), in front of the same kind of `/me` handler.
//!
//! A fair, straightforward implementation of the common advice, not a straw man: the
//! decoding key and `Validation` are built once, Redis is reached through one
//! multiplexed `ConnectionManager` (reconnects by itself, no pool to exhaust), nothing is
//! cached, and a Redis error fails closed (503). The non-auth stack is the example
//! server's: the same tracing set-up and request-logging middleware on every route, the
//! same `/health` and the same `/me` body.
//!
//! ```sh
//! cargo build --release --features redis --example baseline_server
//! ADDR=127.0.0.1:3100 JWT_SECRET=... REDIS_URL=redis://127.0.0.1:6379/ \
//!     target/release/examples/baseline_server
//! ```
//!
//! Prints `listening on http://ADDR` on stdout once bound. `POST /logout` records the
//! token's `jti` with `SET baseline:revoked:<jti> 1 EX <seconds to exp + leeway>`.
//! `GET /me-open` is the control: the example server's `/me` handler and body (a clone of
//! claims of the same shape, rendered by `Claims::write_json`) with no authentication at
//! all, so that the cost of a bigger request and response can be told apart from the cost
//! of checking the token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing_subscriber::EnvFilter;

/// The leeway on `exp`, as the layer's default.
const LEEWAY_SECS: u64 = 60;
/// The denylist's key prefix.
const PREFIX: &str = "baseline:revoked:";

/// The claims of the example server's tokens.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Claims {
    sub: String,
    exp: u64,
    iat: u64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat_us: Option<u64>,
}

struct Auth {
    key: DecodingKey,
    validation: Validation,
    redis: ConnectionManager,
    /// Claims shaped like the example server's tokens (`sid` included), for `/me-open`.
    sample: tower_jwt_auth::Claims,
}

fn unauthorized(description: &'static str) -> Response {
    let value = format!("Bearer error=\"invalid_token\", error_description=\"{description}\"");
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            HeaderValue::try_from(value).unwrap_or(HeaderValue::from_static("Bearer")),
        )],
    )
        .into_response()
}

/// Verify, then one `EXISTS` on Redis, then the handler.
async fn authenticate(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let Some(token) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        )
            .into_response();
    };
    let claims = match jsonwebtoken::decode::<Claims>(token, &auth.key, &auth.validation) {
        Ok(data) => data.claims,
        Err(_) => return unauthorized("the token is invalid"),
    };
    let mut redis = auth.redis.clone();
    let key = format!("{PREFIX}{}", claims.jti);
    match redis.exists::<_, bool>(&key).await {
        Ok(false) => {}
        Ok(true) => return unauthorized("the token has been revoked"),
        Err(e) => {
            tracing::error!(error = %e, "denylist lookup failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    request.extensions_mut().insert(claims);
    next.run(request).await
}

/// The example server's request log (debug level), so both servers do the same work
/// around the auth step.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
    response
}

const NO_STORE: (header::HeaderName, HeaderValue) =
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn me(Extension(claims): Extension<Claims>) -> Response {
    ([NO_STORE], Json(claims)).into_response()
}

/// The example server's `/me` handler, line for line, on claims of the same shape.
async fn me_open(State(auth): State<Arc<Auth>>) -> Response {
    // A clone, as the `Extension` extractor hands the example server's handler one.
    let claims = auth.sample.clone();
    let mut body = Vec::with_capacity(512);
    match claims.write_json(&mut body) {
        Ok(()) => ([NO_STORE, JSON_CONTENT], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

const JSON_CONTENT: (header::HeaderName, HeaderValue) = (
    header::CONTENT_TYPE,
    HeaderValue::from_static("application/json"),
);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn logout(State(auth): State<Arc<Auth>>, Extension(claims): Extension<Claims>) -> Response {
    let now = now();
    let ttl = (claims.exp + LEEWAY_SECS).saturating_sub(now).max(1);
    let mut redis = auth.redis.clone();
    let key = format!("{PREFIX}{}", claims.jti);
    match redis.set_ex::<_, _, ()>(&key, 1, ttl).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not record the logout");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} must be set"))
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = env("ADDR")?.parse()?;
    let secret = env("JWT_SECRET")?;
    let client = redis::Client::open(env("REDIS_URL")?)?;
    let redis = client.get_connection_manager().await?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp", "sub", "jti"]);
    let auth = Arc::new(Auth {
        key: DecodingKey::from_secret(secret.as_bytes())?,
        validation,
        redis,
        sample: tower_jwt_auth::TokenInfo::with_micros(
            None,
            "alice",
            "oo7BdP-FQUSnyDjyvyeVVw",
            now() * 1_000_000,
            now() + 900,
        )
        .with_session("Ax9t9wJmrFQ3C7H6U1UtlA")
        .into(),
    });
    let protected = Router::new()
        .route("/me", get(me))
        .route("/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(auth.clone(), authenticate));
    let app = Router::new()
        .route("/health", get(health))
        .route("/me-open", get(me_open))
        .merge(protected)
        .layer(middleware::from_fn(log_request))
        .with_state(auth);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match serve().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline_server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
