//! Start-up load of many revocations (feature `redis`), against a real `redis-server`.

#![cfg(feature = "redis")]

#[allow(unused_imports)] // the suite macro is not used here
mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use conformance::now_secs;
use redis_server::RedisServer;
use tower_jwt_auth::{
    Check, RedisConfig, RedisStore, RevocationStatus, RevocationStore, TokenInfo,
};

/// Fills the denylist server-side (a script per 100 000 entries), as `n` logouts would:
/// entry `i` is issuer `iss`'s token `jti-<i>` expiring at `exp + i % spread`, encoded as
/// the store does (`<exp>.+3:issjti-<i>`), kept until `keep_until + i % spread`.
fn fill(server: &RedisServer, prefix: &str, n: u64, exp: u64, keep_until: u64, spread: u64) {
    const FILL: &str = "for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do \
        local offset = i % tonumber(ARGV[4]) \
        redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + offset, \
            string.format('%d', tonumber(ARGV[5]) + offset) .. '.+3:issjti-' .. i) \
        end return 1";
    let key = format!("{prefix}denylist");
    let mut start = 0;
    while start < n {
        let end = (start + 100_000).min(n) - 1;
        let reply = server.command(&[
            "EVAL",
            FILL,
            "1",
            &key,
            &start.to_string(),
            &end.to_string(),
            &keep_until.to_string(),
            &spread.to_string(),
            &exp.to_string(),
        ]);
        assert_eq!(reply, b":1\r\n", "{}", String::from_utf8_lossy(&reply));
        start = end + 1;
    }
}

fn revoked(store: &RedisStore, jti: &str, exp: u64) -> bool {
    let t = TokenInfo::new(Some("iss"), "s", jti, now_secs(), exp);
    match store.check(&t) {
        Check::Ready(r) => r.unwrap() == RevocationStatus::Revoked,
        Check::Pending(_) => unreachable!(),
    }
}

/// How many entries: `TJA_LOAD_ENTRIES`, by default 100 000 (ten load windows, two
/// round trips) so that a debug build stays quick. The 1M figure:
/// `TJA_LOAD_ENTRIES=1000000 cargo test --release --features redis --test redis_load -- --nocapture`.
fn entries() -> u64 {
    std::env::var("TJA_LOAD_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// Loads `n` revocations expiring (and kept) over `spread` distinct seconds; returns the
/// time taken.
async fn load(n: u64, spread: u64) -> Duration {
    let server = RedisServer::start_with(&["--appendonly", "no"]);
    let prefix = "load:";
    let exp = now_secs() + 600;
    fill(&server, prefix, n, exp, now_secs() + 3600, spread);

    let start = Instant::now();
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .prefix(prefix)
            .command_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let took = start.elapsed();
    eprintln!(
        "connect loaded {n} revocations ({spread} distinct expiry seconds) in {took:?} ({:.0} per second)",
        n as f64 / took.as_secs_f64()
    );
    assert_eq!(store.mirror_len().0, n);
    for i in (0..n).step_by(9_973).chain([n - 1]) {
        assert!(
            revoked(&store, &format!("jti-{i}"), exp + i % spread),
            "jti-{i} was not loaded"
        );
    }
    assert!(!revoked(&store, &format!("jti-{n}"), exp));
    took
}

/// One test, so that the two measurements do not compete for the CPU. Each load must
/// hold every entry (checked in `load`); its time goes to stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_loads_many_revocations_quickly() {
    let n = entries();
    // Tokens of a 24 h lifetime revoked over a day: expiry seconds spread out.
    // The time is reported (BENCHMARKS.md), not asserted: this machine is shared.
    load(n, 86_400).await;
    // Every revoked token expiring in the same second: one score shared by all.
    load(n, 1).await;
}
