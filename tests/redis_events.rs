//! What an operator sees of a `RedisStore` against a real `redis-server` (features
//! `redis` and `tracing`): the `warn` and `info` events of an outage, a stale mirror and
//! a resync, and the figures of [`RedisStore::stats`], with no token data in any event.

#![cfg(all(feature = "redis", feature = "tracing"))]

mod support;

use std::time::{Duration, Instant};

use support::clock::{now, uid};
use support::redis_server::RedisServer;
use support::trace::{Captured, capture};
use tower_jwt_auth::{
    Check, RedisConfig, RedisStore, RedisStoreErrorKind, RevocationStatus, RevocationStore,
    RevokedToken, TokenInfo,
};
use tracing::Level;

const STALENESS: Duration = Duration::from_millis(400);

fn config(server: &RedisServer, prefix: &str) -> RedisConfig {
    RedisConfig::new(server.url())
        .prefix(prefix)
        .command_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .max_staleness(STALENESS)
        .max_reconnect_delay(Duration::from_millis(1500))
}

fn token(jti: &str) -> TokenInfo {
    TokenInfo::new(None, "alice", jti, now(), now() + 600)
}

fn check(store: &RedisStore, t: &TokenInfo) -> Result<RevocationStatus, RedisStoreErrorKind> {
    match store.check(t) {
        Check::Ready(answer) => answer.map_err(|e| e.kind()),
        Check::Pending(_) => panic!("the Redis store answers checks synchronously"),
    }
}

/// Waits up to 10 s for `done`, polling while the store's tasks run.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn messages(events: &[Captured]) -> Vec<(Level, String)> {
    events
        .iter()
        .filter(|e| e.target == "tower_jwt_auth")
        .map(|e| (e.level, e.field("message").unwrap_or_default().to_owned()))
        .collect()
}

fn count(events: &[Captured], level: Level, message: &str) -> usize {
    messages(events)
        .iter()
        .filter(|(l, m)| *l == level && m == message)
        .count()
}

const LOST: &str = "revocation feed lost its Redis connection; reconnecting";
const STALE: &str = "revocation mirror stale: checks refused until it catches up";
const NOT_RECORDED: &str = "revocation not recorded in Redis; reported as failed";
const MISSED: &str = "revocation feed missed entries (trimmed or lost): full resync";
const LOADED: &str = "revocations loaded from Redis";
const RECONNECTED: &str = "revocation feed reconnected and caught up";
const CURRENT: &str = "revocation mirror current again";
const SWEEP_FAILED: &str = "revocation sweep failed; expired entries stay in Redis until it works";
const SWEEP_OK: &str = "revocation sweep working again";

/// One outage, as an operator lives it: Redis dies, the mirror goes stale, a logout
/// fails, Redis comes back without the feed, the store resyncs and recovers. Each step
/// is one event at its level (repeats at `debug`), and the stats count it.
#[tokio::test(flavor = "current_thread")]
async fn an_outage_and_a_resync_are_reported_once_each_and_counted() {
    let (capture, _guard) = capture();
    let mut server = RedisServer::start_restartable();
    let prefix = format!("events-{}:", uid());
    let secret_jti = format!("jti-{}", uid());

    // Three revocations before this instance starts: its load reads them.
    let other = RedisStore::connect(config(&server, &prefix)).await.unwrap();
    let early: Vec<TokenInfo> = (0..3)
        .map(|i| token(&format!("{secret_jti}-{i}")))
        .collect();
    for t in &early {
        other
            .revoke(&RevokedToken::for_token(t, now() + 600))
            .await
            .unwrap();
    }
    capture.take();
    let store = RedisStore::connect(config(&server, &prefix)).await.unwrap();
    let events = capture.take();
    assert_eq!(messages(&events), [(Level::INFO, LOADED.to_owned())]);
    assert_eq!(events[0].field("entries"), Some("3"));
    assert!(events[0].field("took").is_some());

    let stats = store.stats();
    assert_eq!((stats.revoked_tokens, stats.subject_cutoffs), (3, 0));
    assert_eq!(
        (stats.resyncs, stats.reconnects, stats.feed_entries),
        (0, 0, 0)
    );
    assert_eq!(stats.feed_lag, None);
    assert!(stats.mirror_age < STALENESS);

    // A revocation on the other instance arrives through the feed.
    let t = token(&format!("{secret_jti}-feed"));
    other
        .revoke(&RevokedToken::for_token(&t, now() + 600))
        .await
        .unwrap();
    until("the feed entry is applied", || {
        store.stats().feed_entries == 1
    })
    .await;
    let stats = store.stats();
    assert_eq!(stats.revoked_tokens, 4);
    let lag = stats.feed_lag.expect("a lag once an entry was applied");
    assert!(lag < Duration::from_secs(5), "{lag:?}");
    drop(other);

    // Redis dies.
    server.stop();
    until("the lost feed is reported", || {
        count(&capture.events(), Level::WARN, LOST) == 1
    })
    .await;
    tokio::time::sleep(STALENESS).await;
    let fresh = token(&format!("{secret_jti}-fresh"));
    for _ in 0..50 {
        assert_eq!(check(&store, &fresh), Err(RedisStoreErrorKind::Stale));
    }
    let logout = store
        .revoke(&RevokedToken::for_token(&fresh, now() + 600))
        .await;
    assert!(logout.is_err(), "a logout Redis never saw is not done");

    // Redis comes back empty (as after a failover to a replica that never had the
    // data): the follower must notice that the feed it read is gone, and reload.
    server.restart_empty();
    until("checks are answered again", || {
        check(&store, &fresh).is_ok()
    })
    .await;
    until("the recovery is reported", || {
        count(&capture.events(), Level::INFO, CURRENT) == 1
    })
    .await;

    let events = capture.take();
    for (level, message) in [
        (Level::WARN, LOST),
        (Level::WARN, STALE),
        (Level::WARN, NOT_RECORDED),
        (Level::WARN, MISSED),
        (Level::INFO, LOADED),
        (Level::INFO, RECONNECTED),
        (Level::INFO, CURRENT),
    ] {
        assert_eq!(
            count(&events, level, message),
            1,
            "{level} {message:?} once in {:#?}",
            messages(&events)
        );
    }
    // The sweep, on its own connection, may have failed in the outage too: then once,
    // with its recovery.
    let sweep_failed = count(&events, Level::WARN, SWEEP_FAILED);
    assert!(sweep_failed <= 1, "{:#?}", messages(&events));
    assert!(count(&events, Level::INFO, SWEEP_OK) <= sweep_failed);
    let order: Vec<&str> = messages(&events)
        .iter()
        .filter(|(l, _)| *l != Level::DEBUG)
        .map(|(_, m)| match m.as_str() {
            LOST => "lost",
            STALE => "stale",
            NOT_RECORDED => "not recorded",
            MISSED => "missed",
            LOADED => "loaded",
            RECONNECTED => "reconnected",
            CURRENT => "current",
            SWEEP_FAILED | SWEEP_OK => "sweep",
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    // The stale warning may come from the feed's loop or a check, and the failed write
    // after it; what follows the restart comes in this order.
    let order: Vec<&str> = order.into_iter().filter(|&m| m != "sweep").collect();
    assert_eq!(
        order[order.len() - 4..],
        ["missed", "loaded", "current", "reconnected"],
        "{order:?}"
    );
    let loaded = events
        .iter()
        .find(|e| e.field("message") == Some(LOADED))
        .unwrap();
    assert_eq!(loaded.field("entries"), Some("0"), "the new, empty sets");

    let stats = store.stats();
    assert_eq!((stats.resyncs, stats.reconnects), (1, 1));
    assert_eq!(
        stats.revoked_tokens, 4,
        "a reload never forgets what the mirror held"
    );
    assert_eq!(check(&store, &early[0]), Ok(RevocationStatus::Revoked));

    // Nothing an event carries names a token, the URL or the prefix's members.
    for event in &events {
        let text = event.text();
        assert!(!text.contains(&secret_jti), "{text}");
        assert!(!text.contains("alice"), "{text}");
        assert!(!text.contains(&server.url()), "{text}");
    }
}

/// A healthy store says nothing after its start-up load, however many checks it answers
/// and revocations it records.
#[tokio::test(flavor = "current_thread")]
async fn a_healthy_store_is_quiet() {
    let (capture, _guard) = capture();
    let server = RedisServer::shared();
    let store = RedisStore::connect(config(server, &format!("quiet-{}:", uid())))
        .await
        .unwrap();
    capture.take();
    for i in 0..20 {
        let t = token(&format!("quiet-{i}"));
        store
            .revoke(&RevokedToken::for_token(&t, now() + 600))
            .await
            .unwrap();
        assert_eq!(check(&store, &t), Ok(RevocationStatus::Revoked));
    }
    tokio::time::sleep(Duration::from_millis(1200)).await; // a sweep and many feed reads
    assert_eq!(messages(&capture.take()), []);
    assert_eq!(
        store.stats().feed_entries,
        20,
        "its own writes come back through the feed"
    );
}
