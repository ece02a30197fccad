//! The example server: log in, see who you are, log out, log out everywhere.
//!
//! ```text
//! cargo run --features example-server --bin server
//! ```
//!
//! Configuration (environment):
//!
//! - `ADDR`: listen address, default `127.0.0.1:3000`.
//! - `JWT_SECRET`: the HS256 secret (at least 32 bytes). When unset, a random one is
//!   generated at start, so tokens do not survive a restart.
//! - `ACCESS_TOKEN_TTL`: token lifetime in seconds, default 900.
//! - `JWT_LEEWAY`: clock skew allowed on `exp`, `nbf` and `iat`, in seconds, default 60.
//!   A revoked token stays on the denylist until its `exp` plus this leeway.
//! - `JWT_MAX_TOKEN_LIFETIME`: the longest lifetime (`exp - iat`) accepted, in seconds,
//!   default the larger of `ACCESS_TOKEN_TTL` and a day; a logout-everywhere is kept
//!   this long plus the leeway. It may not be shorter than `ACCESS_TOKEN_TTL`.
//! - `JWT_TOKEN_CACHE`: how many verified tokens the layer remembers, default 10000; `0`
//!   turns the verified-token cache off (every request then checks the signature).
//! - `COOKIE_SECURE`: the login cookie is `Secure` unless this is `0`.
//! - `REDIS_URL`: when set, revocations go to this Redis server, shared by every instance
//!   that uses it; `REDIS_PREFIX` sets the key prefix.
//!   Without Redis the server does not start: it exits with an error rather than serve
//!   requests it cannot check (run it under a supervisor that restarts it).
//! - `REDIS_MAX_STALENESS_MS`: how long checks are answered from the local mirror while
//!   the link to Redis is down, before they are refused with 503 (default 5000).
//! - `REDIS_COMMAND_TIMEOUT_MS`: the longest a logout waits for Redis before it is
//!   answered with 503 (default 1000).
//! - `REDIS_SENTINELS` (comma-separated `host:port`) and `REDIS_SENTINEL_MASTER` (the
//!   master name): instead of `REDIS_URL`, find the primary through Redis Sentinel and
//!   follow its failovers without a restart.
//! - `REDIS_MIN_REPLICAS`: how many replicas must confirm a logout before it is
//!   answered 204 (default 0); fewer in time, and it is answered 503. With 1 or more, a
//!   logout answered 204 survives a failover.
//! - `REDIS_WAIT_TIMEOUT_MS`: how long a logout waits for those replicas (default 500);
//!   a logout then waits at most `REDIS_COMMAND_TIMEOUT_MS` plus this.
//! - `REDIS_CLUSTER_NODES` (comma-separated `host:port`): instead of `REDIS_URL`, use a
//!   Redis Cluster through these nodes; every key carries one hash tag (the prefix is
//!   wrapped in braces unless it holds one), and the store follows the slot's primary
//!   through failovers and reshards without a restart. Not with `REDIS_SENTINELS`.
//! - `OIDC_ISSUER`: an OpenID provider (e.g. `https://keycloak.example/realms/app`)
//!   whose access tokens `/me` accepts beside this server's own (RS256, ES256, EdDSA
//!   and the other asymmetric algorithms, each key pinned by the provider's JWK Set,
//!   found through discovery). It needs `OIDC_AUDIENCE`, the audience (client id) its
//!   tokens must name. `POST /backchannel-logout` is then the provider's back-channel
//!   logout endpoint. The server starts while the provider is unreachable; its tokens
//!   are answered 503 until the first key set arrives. The built-in client speaks
//!   `http://` and, with feature `oidc-rustls`, `https://`.
//! - `JWKS_REFRESH_COOLDOWN_MS`: the shortest time between two key-set fetches that
//!   tokens with an unknown `kid` start (default 30000).
//! - `JWKS_MAX_STALE_S`: how long the last key set fetched keeps serving while the
//!   provider is down (default 86400); then the provider's tokens are answered 503.
//! - `RUST_LOG`: log filter, default `info`. Logs go to stderr and never contain tokens.
//!
//! Without `REDIS_URL`, `REDIS_SENTINELS` or `REDIS_CLUSTER_NODES`, revocations are kept
//! in this process ([`MemoryStore`]).

mod app;

use std::error::Error;
use std::fmt;
use std::process::ExitCode;

use tokio::net::TcpListener;
use tower_jwt_auth::MemoryStore;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", with_causes(&*e));
            ExitCode::FAILURE
        }
    }
}

/// The error and each of its causes (`source()`), one a line: the cause is what an
/// operator needs (the port taken, the connection refused), and it is in the chain. A
/// cause that reads like the one before it (an error that shows its source's text as
/// its own) is not repeated.
fn with_causes(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut last = text.clone();
    let mut cause = error.source();
    while let Some(e) = cause {
        let line = e.to_string();
        if line != last {
            text.push_str("\ncaused by: ");
            text.push_str(&line);
        }
        last = line;
        cause = e.source();
    }
    text
}

/// What the server was doing when `source` failed: shown first, with `source` as its
/// cause.
#[derive(Debug)]
struct Context {
    doing: String,
    source: Box<dyn Error + Send + Sync>,
}

impl Context {
    fn wrap<E: Into<Box<dyn Error + Send + Sync>>>(
        doing: impl Into<String>,
    ) -> impl FnOnce(E) -> Self {
        let doing = doing.into();
        move |source| Self {
            doing,
            source: source.into(),
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.doing)
    }
}

impl Error for Context {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let config = app::Config::from_lookup(|name| match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    })?;
    if config.secret_generated {
        tracing::info!(
            "JWT_SECRET is not set: generated a random secret for this run \
             (tokens will not survive a restart)"
        );
    }
    if !config.cookie_secure {
        tracing::warn!("COOKIE_SECURE=0: the login cookie is sent over plain HTTP too");
    }
    tracing::info!(
        token_ttl_secs = config.token_ttl.as_secs(),
        leeway_secs = config.leeway.as_secs(),
        cookie_secure = config.cookie_secure,
        "configured"
    );

    let router = match (&config.redis_url, &config.redis_sentinel) {
        (None, None) if config.redis_cluster.is_some() => {
            let nodes = config.redis_cluster.clone().unwrap_or_default();
            let redis = tower_jwt_auth::RedisConfig::cluster(nodes);
            redis_router(
                redis,
                "cannot use the Redis store through REDIS_CLUSTER_NODES",
                &config,
            )
            .await?
        }
        (None, None) => {
            tracing::info!("revocations are kept in this process (MemoryStore)");
            app::router(MemoryStore::new(), &config)?
        }
        (Some(url), _) => {
            let redis = tower_jwt_auth::RedisConfig::new(url.0.clone());
            redis_router(redis, "cannot use the Redis store at REDIS_URL", &config).await?
        }
        (None, Some((sentinels, master))) => {
            let redis = tower_jwt_auth::RedisConfig::sentinel(sentinels.clone(), master.clone());
            redis_router(
                redis,
                "cannot use the Redis store through REDIS_SENTINELS",
                &config,
            )
            .await?
        }
    };
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(Context::wrap(format!("cannot listen on {}", config.addr)))?;
    let addr = listener.local_addr()?;
    // On stdout, alone, so scripts can wait for it.
    println!("listening on http://{addr}");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("shut down");
    Ok(())
}

/// The router on the shared Redis store. `connect` returns once every current revocation
/// is loaded, so the first request is already checked against them.
async fn redis_router(
    mut redis: tower_jwt_auth::RedisConfig,
    doing: &str,
    config: &app::Config,
) -> Result<axum::Router, Box<dyn Error>> {
    use tower_jwt_auth::RedisStore;
    redis = redis.min_replicas(config.redis_min_replicas);
    if let Some(timeout) = config.redis_wait_timeout {
        redis = redis.replica_wait_timeout(timeout);
    }
    if let Some(prefix) = &config.redis_prefix {
        redis = redis.prefix(prefix.clone());
    }
    if let Some(window) = config.redis_max_staleness {
        redis = redis.max_staleness(window);
    }
    if let Some(timeout) = config.redis_command_timeout {
        redis = redis.command_timeout(timeout);
    }
    // The URL may hold a password: never print it.
    let store = RedisStore::connect(redis)
        .await
        .map_err(Context::wrap(doing))?;
    let (revoked_tokens, subject_cutoffs) = store.mirror_len();
    tracing::info!(
        revoked_tokens,
        subject_cutoffs,
        "revocations are shared through Redis (RedisStore)"
    );
    Ok(app::router(store, config)?)
}

/// Completes on Ctrl-C (and on SIGTERM on Unix).
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
