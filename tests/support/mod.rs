//! The integration tests' helpers, one home for each concern. A test file says
//! `mod support;` and uses the modules it needs:
//!
//! - [`clock`]: the wall clock (`now`), a fresh second, unique ids and temporary names;
//! - [`ports`]: a free loopback port;
//! - [`tokens`]: the test keys and secrets, and minting tokens relative to now;
//! - [`service`]: the layer around a small inner service, called in-process;
//! - [`http`]: a real HTTP client with a time limit on every call, the answer it reads,
//!   and serving a router on a free port;
//! - [`example_server`] (feature `example-server`): the example server's binary as a
//!   process;
//! - [`provider`] (feature `oidc`): a real identity provider on loopback (discovery
//!   document and JWK Set of keys the test generates), which a test rotates and breaks;
//! - [`redis_server`] (feature `redis`): a real `redis-server` process;
//! - [`redis_cluster`] (feature `redis`): a real Redis Cluster of such processes;
//! - [`shifted_clock`] (Linux): a wall clock off by a chosen, steppable offset for the
//!   processes a test starts (an `LD_PRELOAD` shim);
//! - [`trace`] (feature `tracing`): capturing the crate's `tracing` events.

// Each test binary uses some of these helpers, never all of them.
#![allow(dead_code, unreachable_pub)]

pub mod clock;
#[cfg(feature = "example-server")]
pub mod example_server;
pub mod http;
pub mod ports;
#[cfg(feature = "oidc")]
pub mod provider;
#[cfg(feature = "redis")]
pub mod redis_cluster;
#[cfg(feature = "redis")]
pub mod redis_server;
pub mod service;
#[cfg(target_os = "linux")]
pub mod shifted_clock;
pub mod tokens;
#[cfg(feature = "tracing")]
pub mod trace;
