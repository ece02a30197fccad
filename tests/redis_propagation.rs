//! How fast a revocation on one instance reaches another (feature `redis`), measured
//! against a real `redis-server` on loopback. One test in its own binary, so nothing else
//! competes for the CPU while it measures.

#![cfg(feature = "redis")]

#[allow(unused_imports)] // the suite macro is not used here
mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use conformance::{now_micros, now_secs, token, unique};
use redis_server::{RedisServer, connect, ready};
use tower_jwt_auth::RevocationStatus::{Active, Revoked};
use tower_jwt_auth::{
    RedisStore, RevocationStatus, RevocationStore, RevokedToken, SubjectCutoff, TokenInfo,
};

const SAMPLES: usize = 500;

/// Polls `store` every 10 µs until `t` has `want`; returns how long that took, or panics
/// after 5 s. The poller sleeps between checks (rather than spinning) so that it does not
/// take the CPU from the feed task and Redis it is measuring.
async fn wait_for(store: &RedisStore, t: &TokenInfo, want: RevocationStatus) -> Duration {
    let start = Instant::now();
    tokio::task::block_in_place(|| {
        while ready(store, t) != want {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "{t:?} never became {want:?}"
            );
            std::thread::sleep(Duration::from_micros(10));
        }
    });
    start.elapsed()
}

struct Summary {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summary(v: &mut [Duration]) -> Summary {
    v.sort();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        max: v[v.len() - 1],
    }
}

/// Revokes on A, polls B; returns (A's revoke start -> B has it, write confirmed -> B
/// has it).
async fn measure(server: &RedisServer, label: &str) -> (Summary, Summary) {
    let prefix = format!("{}:", unique("propagation"));
    let a = connect(server, &prefix).await;
    let b = connect(server, &prefix).await;

    // Warm up (script cache, connections).
    for _ in 0..20 {
        let warm = token(Some("iss"), "s", &unique("jti"));
        conformance::revoke(&a, &warm, now_secs() + 600).await;
        wait_for(&b, &warm, Revoked).await;
    }

    let (mut total, mut writes, mut feed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        let t = token(Some("iss"), &unique("sub"), &unique("jti"));
        assert_eq!(ready(&b, &t), Active);
        let start = Instant::now();
        a.revoke(&RevokedToken::for_token(&t, now_secs() + 600))
            .await
            .unwrap();
        writes.push(start.elapsed());
        feed.push(wait_for(&b, &t, Revoked).await);
        total.push(start.elapsed());
    }
    let (total, writes, feed) = (
        summary(&mut total),
        summary(&mut writes),
        summary(&mut feed),
    );
    for (name, s) in [
        ("A.revoke start -> B sees it", &total),
        ("  A's write until Redis confirmed", &writes),
        ("  write confirmed -> B sees it", &feed),
    ] {
        eprintln!(
            "[{label}] {name:<34} over {SAMPLES}: p50 {:>10.3?}  p99 {:>10.3?}  max {:>10.3?}",
            s.p50, s.p99, s.max
        );
    }

    // Cutoffs travel the same way, in both directions.
    let sub = unique("sub");
    let before = TokenInfo::with_micros(None, &sub, "j", now_micros(), now_secs() + 600);
    b.revoke_subject(&SubjectCutoff::new(
        None,
        &sub,
        now_micros(),
        now_secs() + 600,
    ))
    .await
    .unwrap();
    wait_for(&a, &before, Revoked).await;
    let after = TokenInfo::with_micros(None, &sub, "j", now_micros() + 1_000_000, now_secs() + 600);
    assert_eq!(ready(&a, &after), Active);
    (total, feed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_on_one_instance_reaches_the_other_within_milliseconds() {
    // Redis's default durability: the append-only file is fsynced every second.
    let everysec = RedisServer::start_with(&["--appendfsync", "everysec"]);
    let (total, feed) = measure(&everysec, "appendfsync everysec").await;
    assert!(
        total.p99 < Duration::from_millis(10),
        "p99 propagation {:?} is over the 10 ms target",
        total.p99
    );
    assert!(feed.p99 < Duration::from_millis(10));
    drop(everysec);

    // Every write waits for its fsync: the write is slower, the feed is not.
    let always = RedisServer::start();
    let (_, feed) = measure(&always, "appendfsync always").await;
    assert!(
        feed.p99 < Duration::from_millis(10),
        "p99 propagation after the write {:?} is over the 10 ms target",
        feed.p99
    );
}
