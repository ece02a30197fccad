//! The Redis store against a real `redis-server` (feature `redis`): the conformance
//! suite, propagation between instances, start-up loading and cutoff races.

#![cfg(feature = "redis")]

mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use redis_server::RedisServer;
use tower_jwt_auth::{RedisConfig, RedisStore};

/// A store on the binary's shared server, under a prefix no other test uses.
async fn fresh_redis_store() -> RedisStore {
    let prefix = format!("{}:", conformance::unique("conformance"));
    RedisStore::connect(RedisConfig::new(RedisServer::shared().url()).prefix(prefix))
        .await
        .expect("connect to the test redis-server")
}

conformance::suite!(fresh_redis_store);
