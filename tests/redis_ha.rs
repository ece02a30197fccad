//! The Redis store with replication (feature `redis`), against real processes: a
//! primary and a replica (`--replicaof`), and three sentinels (`redis-server <conf>
//! --sentinel`) that fail the primary over.
//!
//! - `min_replicas`: a revocation is reported done only once a replica confirmed it
//!   (`WAIT`); with the replica frozen (`SIGSTOP`), every revoke fails within the
//!   command timeout plus the replica wait, and none reports success.
//! - Sentinel: the store finds the primary through the sentinels; when the primary is
//!   killed (`SIGKILL`) and the replica promoted, the writes, the feed and the sweep of
//!   every store move to it without a restart, and no revocation confirmed with
//!   `min_replicas(1)` is lost.
//! - Settings that cannot work are refused with a configuration error.

#![cfg(feature = "redis")]

#[allow(unused_imports)] // the suite macro is not used here
mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use conformance::{now_secs, token, unique};
use redis_server::{RedisServer, eventually};
use tower_jwt_auth::RevocationStatus::Revoked;
use tower_jwt_auth::{
    Check, RedisConfig, RedisStore, RedisStoreError, RedisStoreErrorKind, RevocationStatus,
    RevocationStore, RevokedToken, TokenInfo,
};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
const REPLICA_WAIT: Duration = Duration::from_millis(300);
/// Scheduling slack on top of a revoke's bound (debug build, 2 shared CPUs).
const SLACK: Duration = Duration::from_millis(300);
const MASTER: &str = "revocations";

fn tuned(config: RedisConfig) -> RedisConfig {
    config
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .max_staleness(Duration::from_secs(5))
        .max_reconnect_delay(Duration::from_millis(100))
        .replica_wait_timeout(REPLICA_WAIT)
}

fn check(store: &RedisStore, t: &TokenInfo) -> Result<RevocationStatus, RedisStoreError> {
    match store.check(t) {
        Check::Ready(result) => result,
        Check::Pending(_) => panic!("the Redis store must answer checks synchronously"),
    }
}

async fn revoke(store: &RedisStore, t: &TokenInfo) -> Result<(), RedisStoreError> {
    store
        .revoke(&RevokedToken::for_token(t, now_secs() + 600))
        .await
}

fn fresh_token() -> TokenInfo {
    token(Some("iss"), &unique("sub"), &unique("jti"))
}

/// Whether `server` holds `t` on its denylist under `prefix`.
fn holds(server: &RedisServer, prefix: &str, t: &TokenInfo) -> bool {
    let member = format!(
        "{}.+{}:{}{}",
        t.expires_at(),
        t.issuer().unwrap().len(),
        t.issuer().unwrap(),
        t.jti()
    );
    let score = server.command(&["ZSCORE", &format!("{prefix}denylist"), &member]);
    !score.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_is_done_only_once_a_replica_confirmed_it() {
    let primary = RedisServer::start();
    let replica = RedisServer::start_replica(&primary);
    let prefix = "wait:";
    let store =
        RedisStore::connect(tuned(RedisConfig::new(primary.url()).prefix(prefix)).min_replicas(1))
            .await
            .unwrap();
    let first = fresh_token();
    revoke(&store, &first).await.expect("the replica confirms");
    assert!(
        holds(&replica, prefix, &first),
        "done before the replica had it"
    );

    // A frozen replica confirms nothing: every revoke fails in time, none succeeds.
    replica.freeze();
    let bound = COMMAND_TIMEOUT + REPLICA_WAIT + SLACK;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let started = Instant::now();
        let result = revoke(&store, &fresh_token()).await;
        let took = started.elapsed();
        slowest = slowest.max(took);
        let e = result.expect_err("reported done without the replica");
        assert_eq!(e.kind(), RedisStoreErrorKind::NotReplicated, "{e}");
        assert!(took >= REPLICA_WAIT - Duration::from_millis(20), "{took:?}");
        assert!(took <= bound, "a revoke took {took:?}, over {bound:?}");
    }
    eprintln!("replica frozen: every revoke failed, the slowest after {slowest:?}");
    // Concurrent ones too (they share the writer's connection).
    let tokens: Vec<TokenInfo> = (0..4).map(|_| fresh_token()).collect();
    let started = Instant::now();
    let results = futures_join(&store, &tokens).await;
    assert!(
        results.iter().all(Result::is_err),
        "a concurrent revoke reported done without the replica"
    );
    eprintln!(
        "replica frozen: 4 concurrent revokes all failed within {:?}",
        started.elapsed()
    );
    // Checks go on meanwhile.
    assert_eq!(check(&store, &first).unwrap(), Revoked);

    replica.thaw();
    let back = Instant::now();
    loop {
        if revoke(&store, &fresh_token()).await.is_ok() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "revokes still fail"
        );
    }
    eprintln!(
        "replica resumed: revokes done again after {:?}",
        back.elapsed()
    );

    // Two replicas asked of one: never done.
    let strict =
        RedisStore::connect(tuned(RedisConfig::new(primary.url()).prefix(prefix)).min_replicas(2))
            .await
            .unwrap();
    let e = revoke(&strict, &fresh_token())
        .await
        .expect_err("only one replica");
    assert_eq!(e.kind(), RedisStoreErrorKind::NotReplicated);
}

async fn futures_join(
    store: &RedisStore,
    tokens: &[TokenInfo],
) -> Vec<Result<(), RedisStoreError>> {
    let mut handles = Vec::new();
    for t in tokens {
        let (store, t) = (store.clone(), t.clone());
        handles.push(tokio::spawn(async move { revoke(&store, &t).await }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Three sentinels watching `primary`, once they know its replica and each other.
fn sentinels(primary: &RedisServer, replicas: usize) -> Vec<RedisServer> {
    let sentinels: Vec<RedisServer> = (0..3)
        .map(|_| RedisServer::start_sentinel(primary, MASTER, 2, 500, 2_000))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in &sentinels {
        loop {
            let (known_replicas, others) = s.sentinel_knows(MASTER);
            if known_replicas >= replicas && others >= 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "sentinel {} knows {known_replicas} replicas and {others} sentinels",
                s.port()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    sentinels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_follow_a_sentinel_failover_without_a_restart() {
    let mut primary = RedisServer::start_restartable();
    let replica = RedisServer::start_replica(&primary);
    let sentinels = sentinels(&primary, 1);
    let addrs: Vec<String> = sentinels.iter().map(RedisServer::addr).collect();
    let prefix = "sentinel:";
    let config = || {
        tuned(RedisConfig::sentinel(
            // A sentinel that is not there first: the next ones are asked.
            std::iter::once(format!("127.0.0.1:{}", redis_server_free_port()))
                .chain(addrs.iter().cloned()),
            MASTER,
        ))
        .prefix(prefix)
    };
    let a = RedisStore::connect(config().min_replicas(1)).await.unwrap();
    let b = RedisStore::connect(config()).await.unwrap();
    let before = fresh_token();
    revoke(&a, &before).await.unwrap();
    eventually(Duration::from_secs(2), "b learns of it", || {
        check(&b, &before).is_ok_and(|s| s == Revoked)
    })
    .await;
    assert!(holds(&replica, prefix, &before));

    primary.stop();
    let killed = Instant::now();
    // a (min_replicas 1) and b write until the promoted replica takes their writes.
    let mut done_a = Vec::new();
    let mut failed = 0;
    let recovered = loop {
        let t = fresh_token();
        let started = Instant::now();
        let result = revoke(&b, &t).await;
        assert!(
            started.elapsed() <= COMMAND_TIMEOUT + SLACK,
            "a revoke took {:?}",
            started.elapsed()
        );
        match result {
            Ok(()) => break killed.elapsed(),
            Err(_) => failed += 1,
        }
        assert!(
            killed.elapsed() < Duration::from_secs(20),
            "no failover within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(replica.is_master(), "the replica was not promoted");
    eprintln!(
        "primary killed: writes through the sentinels done again after {recovered:?} \
         ({failed} failed before)"
    );
    // The new primary has no replica: with min_replicas(1), a's revokes fail (never done).
    let t = fresh_token();
    let e = revoke(&a, &t).await.expect_err("no replica is left");
    assert_eq!(e.kind(), RedisStoreErrorKind::NotReplicated);

    // Both feeds moved: a write on the new primary reaches both stores.
    let after = fresh_token();
    revoke(&b, &after).await.unwrap();
    for (name, store) in [("a", &a), ("b", &b)] {
        eventually(Duration::from_secs(5), "the feed moved", || {
            check(store, &after).is_ok_and(|s| s == Revoked)
        })
        .await;
        assert_eq!(check(store, &before).unwrap(), Revoked, "{name}");
    }
    // And a store started now, through the sentinels, loads what the new primary has.
    let c = RedisStore::connect(config()).await.unwrap();
    for t in [&before, &after] {
        assert_eq!(check(&c, t).unwrap(), Revoked);
    }
    // The old primary comes back as a replica of the new one: a's revokes are done again.
    primary.become_replica_on_restart(&replica);
    primary.restart();
    primary.wait_replicating();
    let back = Instant::now();
    loop {
        let t = fresh_token();
        if revoke(&a, &t).await.is_ok() {
            done_a.push(t);
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "a's revokes still fail"
        );
    }
    for t in &done_a {
        assert!(
            holds(&primary, prefix, t),
            "done before the new replica had it"
        );
    }
    drop(sentinels);
}

fn redis_server_free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

#[tokio::test]
async fn unusable_sentinel_settings_are_refused() {
    for (sentinels, master) in [
        (vec![], "m"),
        (vec!["127.0.0.1".to_owned()], "m"),
        (vec!["127.0.0.1:0".to_owned()], "m"),
        (vec!["redis://127.0.0.1:26379".to_owned()], "m"),
        (vec!["127.0.0.1:26379".to_owned()], " "),
    ] {
        let e = RedisStore::connect(RedisConfig::sentinel(sentinels.clone(), master))
            .await
            .expect_err("refused");
        assert_eq!(
            e.kind(),
            RedisStoreErrorKind::Config,
            "{sentinels:?} {master:?}"
        );
    }
    let e = RedisStore::connect(
        RedisConfig::new("redis://127.0.0.1:1/")
            .min_replicas(1)
            .replica_wait_timeout(Duration::ZERO),
    )
    .await
    .expect_err("refused");
    assert_eq!(e.kind(), RedisStoreErrorKind::Config);
    // No sentinel answers: a connection error within the connect timeout, per sentinel.
    let started = Instant::now();
    let e = RedisStore::connect(
        RedisConfig::sentinel(
            [
                format!("127.0.0.1:{}", redis_server_free_port()),
                format!("127.0.0.1:{}", redis_server_free_port()),
            ],
            "m",
        )
        .connect_timeout(Duration::from_millis(300)),
    )
    .await
    .expect_err("nothing there");
    assert_eq!(e.kind(), RedisStoreErrorKind::Connection, "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// A sentinel that does not know the master name is not an answer: a connection error.
#[tokio::test]
async fn a_master_name_no_sentinel_knows_is_an_error() {
    let primary = RedisServer::start();
    let sentinel = RedisServer::start_sentinel(&primary, MASTER, 1, 500, 2_000);
    let e = RedisStore::connect(RedisConfig::sentinel([sentinel.addr()], "unknown"))
        .await
        .expect_err("unknown master name");
    assert_eq!(e.kind(), RedisStoreErrorKind::Connection, "{e}");
    // The right name works.
    let store = RedisStore::connect(RedisConfig::sentinel([sentinel.addr()], MASTER))
        .await
        .unwrap();
    revoke(&store, &fresh_token()).await.unwrap();
}
