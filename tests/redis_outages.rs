//! The Redis store's failure policy against a real `redis-server` (feature `redis`):
//! a frozen Redis, a Redis killed and restarted from its append-only file, and one
//! instance cut off from Redis while the others carry on.

#![cfg(feature = "redis")]

#[allow(unused_imports)] // the suite macro is not used here
mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use conformance::{now_micros, now_secs, token, unique};
use redis_server::{RedisServer, eventually};
use tower_jwt_auth::RevocationStatus::{Active, Revoked};
use tower_jwt_auth::{
    Check, JwtAuthLayer, RedisConfig, RedisStore, RedisStoreError, RedisStoreErrorKind,
    RevocationStatus, RevocationStore, RevokedToken, SubjectCutoff, TokenInfo, TokenIssuer,
    VerificationKey,
};

const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
const STALENESS: Duration = Duration::from_secs(1);

/// Short timeouts so that the tests are quick.
fn config(url: String, prefix: &str) -> RedisConfig {
    RedisConfig::new(url)
        .prefix(prefix)
        .command_timeout(COMMAND_TIMEOUT)
        .connect_timeout(Duration::from_millis(300))
        .max_staleness(STALENESS)
        .max_reconnect_delay(Duration::from_millis(200))
}

async fn connect(url: String, prefix: &str) -> RedisStore {
    RedisStore::connect(config(url, prefix))
        .await
        .expect("connect to the test redis-server")
}

/// A check, which must come back synchronously and at once, whatever Redis is doing.
fn check(store: &RedisStore, t: &TokenInfo) -> Result<RevocationStatus, RedisStoreError> {
    let start = Instant::now();
    let answer = match store.check(t) {
        Check::Ready(result) => result,
        Check::Pending(_) => panic!("the Redis store must answer checks synchronously"),
    };
    assert!(
        start.elapsed() < Duration::from_millis(5),
        "a check took {:?}",
        start.elapsed()
    );
    answer
}

fn ready(store: &RedisStore, t: &TokenInfo) -> RevocationStatus {
    check(store, t).expect("check failed")
}

async fn revoke(store: &RedisStore, t: &TokenInfo) -> Result<(), RedisStoreError> {
    store
        .revoke(&RevokedToken::for_token(t, now_secs() + 600))
        .await
}

/// Revokes `t`, retrying failed attempts (each bounded by the command timeout) for up to
/// 5 s: for a Redis that is back but may still be catching up on a busy machine.
async fn revoke_until_done(store: &RedisStore, t: &TokenInfo, what: &str) {
    let start = Instant::now();
    while let Err(e) = revoke(store, t).await {
        assert!(start.elapsed() < Duration::from_secs(5), "{what}: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fresh_token() -> TokenInfo {
    token(Some("iss"), &unique("sub"), &unique("jti"))
}

fn zscore(server: &RedisServer, prefix: &str, t: &TokenInfo) -> Vec<u8> {
    let member = format!(
        "{}.+{}:{}{}",
        t.expires_at(),
        t.issuer().unwrap().len(),
        t.issuer().unwrap(),
        t.jti()
    );
    server.command(&["ZSCORE", &format!("{prefix}denylist"), &member])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_fails_revokes_in_time_and_checks_closed_after_the_window() {
    use http::{Request, Response, StatusCode, header};
    use tower::{ServiceExt, service_fn};

    let server = RedisServer::start();
    let prefix = "frozen:";
    let a = connect(server.url(), prefix).await;
    let b = connect(server.url(), prefix).await;
    let known = fresh_token();
    revoke(&a, &known).await.unwrap();
    eventually(Duration::from_secs(2), "b learns of the revocation", || {
        ready(&b, &known) == Revoked
    })
    .await;

    // A layer on b: requests are answered from b's mirror, then refused with 503.
    let secret = b"an example secret of at least 32 bytes!";
    let issuer = TokenIssuer::hs256(secret).unwrap();
    let app = tower::ServiceBuilder::new()
        .layer(
            JwtAuthLayer::builder(b.clone())
                .key(VerificationKey::hs256(secret).unwrap())
                .build()
                .unwrap(),
        )
        .service(service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    let bearer = issuer.issue("alice").unwrap();
    let request = || {
        Request::get("/")
            .header(header::AUTHORIZATION, format!("Bearer {}", bearer.as_str()))
            .body(String::new())
            .unwrap()
    };
    assert_eq!(
        app.clone().oneshot(request()).await.unwrap().status(),
        StatusCode::OK
    );

    server.freeze();
    let frozen_at = Instant::now();

    // A logout while Redis is frozen fails within the bound, and is not applied.
    let lost = fresh_token();
    let start = Instant::now();
    let err = revoke(&a, &lost).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.kind(), RedisStoreErrorKind::Timeout, "{err}");
    assert!(
        took >= COMMAND_TIMEOUT - Duration::from_millis(20)
            && took < COMMAND_TIMEOUT + Duration::from_millis(200),
        "revoke returned after {took:?}"
    );
    let err = b
        .revoke_subject(&SubjectCutoff::new(
            None,
            "s",
            now_micros(),
            now_secs() + 600,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), RedisStoreErrorKind::Timeout);

    // Within the window, checks are answered from the mirror.
    assert_eq!(
        ready(&a, &lost),
        Active,
        "an unconfirmed revoke is not applied"
    );
    assert_eq!(ready(&b, &known), Revoked);
    assert_eq!(ready(&b, &fresh_token()), Active);
    assert_eq!(
        app.clone().oneshot(request()).await.unwrap().status(),
        StatusCode::OK
    );

    // Past it, they fail closed, without waiting on Redis.
    let t = fresh_token();
    eventually(Duration::from_secs(3), "checks fail closed", || {
        check(&b, &t).is_err()
    })
    .await;
    let closed_after = frozen_at.elapsed();
    assert!(
        closed_after > STALENESS - STALENESS / 4
            && closed_after < STALENESS + Duration::from_millis(500),
        "checks failed closed {closed_after:?} after the freeze"
    );
    let err = check(&b, &t).unwrap_err();
    assert_eq!(err.kind(), RedisStoreErrorKind::Stale);
    // a's last heartbeat may have come up to one block time (staleness / 5) after b's.
    eventually(Duration::from_millis(400), "a fails closed too", || {
        check(&a, &known).is_err()
    })
    .await;
    assert!(b.mirror_age() > STALENESS);
    let start = Instant::now();
    let res = app.clone().oneshot(request()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < Duration::from_millis(50));
    // Still frozen a while later: still refused, still at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(check(&b, &t).is_err());

    server.thaw();
    for store in [&a, &b] {
        eventually(
            Duration::from_secs(5),
            "checks recover after the thaw",
            || check(store, &t).is_ok(),
        )
        .await;
    }
    assert_eq!(
        app.clone().oneshot(request()).await.unwrap().status(),
        StatusCode::OK
    );

    // Revokes work again and propagate (the first ones may still time out while Redis
    // works through what queued up during the freeze: each is reported failed then).
    let after = fresh_token();
    revoke_until_done(&a, &after, "a revoke succeeds after the thaw").await;
    eventually(Duration::from_secs(2), "b learns of it", || {
        ready(&b, &after) == Revoked
    })
    .await;

    // The write that timed out may still have reached Redis once it woke up (it was in
    // the socket); if it did, every mirror has it too. Never the other way round.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let in_redis = !zscore(&server, prefix, &lost).is_empty();
    assert_eq!(ready(&b, &lost) == Revoked, in_redis);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_survive_a_redis_restart_and_catch_up() {
    let mut server = RedisServer::start_restartable();
    let prefix = "restart:";
    let a = connect(server.url(), prefix).await;
    let b = connect(server.url(), prefix).await;
    let before = fresh_token();
    revoke(&a, &before).await.unwrap();
    let sub = unique("sub");
    let cut = now_micros();
    a.revoke_subject(&SubjectCutoff::new(
        Some("iss"),
        &sub,
        cut,
        now_secs() + 600,
    ))
    .await
    .unwrap();
    let cut_token = TokenInfo::with_micros(Some("iss"), &sub, "j", cut, now_secs() + 600);
    eventually(Duration::from_secs(2), "b learns of both", || {
        ready(&b, &before) == Revoked && ready(&b, &cut_token) == Revoked
    })
    .await;

    // Redis dies (SIGKILL).
    server.stop();
    let start = Instant::now();
    let err = revoke(&a, &fresh_token()).await.unwrap_err();
    assert!(start.elapsed() < COMMAND_TIMEOUT + Duration::from_millis(200));
    assert!(
        matches!(
            err.kind(),
            RedisStoreErrorKind::Connection | RedisStoreErrorKind::Timeout
        ),
        "{err:?}"
    );
    assert_eq!(
        ready(&b, &before),
        Revoked,
        "answered from the mirror meanwhile"
    );

    // It comes back on the same port, from its append-only file.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();

    // A revocation made on `a` as soon as it can write again reaches `b`.
    let meanwhile = fresh_token();
    let mut tries = 0;
    while revoke(&a, &meanwhile).await.is_err() {
        tries += 1;
        assert!(tries < 50, "a never managed to write after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t = fresh_token();
    for store in [&a, &b] {
        eventually(Duration::from_secs(5), "reconnected and caught up", || {
            check(store, &t).is_ok() && ready(store, &meanwhile) == Revoked
        })
        .await;
    }
    // What was revoked before the restart is still in Redis: a new instance loads it.
    let c = connect(server.url(), prefix).await;
    assert_eq!(ready(&c, &before), Revoked);
    assert_eq!(ready(&c, &cut_token), Revoked);
    assert_eq!(ready(&c, &meanwhile), Revoked);
    // And the feed carries on across the restart, in every direction.
    let last = fresh_token();
    revoke(&b, &last).await.unwrap();
    for store in [&a, &c] {
        eventually(Duration::from_secs(2), "the feed carries on", || {
            ready(store, &last) == Revoked
        })
        .await;
    }
}

/// An instance whose user is disabled and disconnected: cut off while the others write.
struct CutOff<'a> {
    server: &'a RedisServer,
    user: String,
}

impl<'a> CutOff<'a> {
    fn create(server: &'a RedisServer, user: &str) -> Self {
        let ok = server.command(&["ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all"]);
        assert!(ok.starts_with(b"+OK"), "{}", String::from_utf8_lossy(&ok));
        Self {
            server,
            user: user.to_owned(),
        }
    }

    fn url(&self) -> String {
        format!("redis://{}:pw@127.0.0.1:{}/", self.user, self.server.port())
    }

    fn cut(&self) {
        self.server.command(&["ACL", "SETUSER", &self.user, "off"]);
        self.server.command(&["CLIENT", "KILL", "USER", &self.user]);
    }

    fn restore(&self) {
        self.server.command(&["ACL", "SETUSER", &self.user, "on"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_instance_catches_up_from_the_feed() {
    let server = RedisServer::start();
    let user = CutOff::create(&server, "b");
    let prefix = "cut:";
    let a = connect(server.url(), prefix).await;
    let b = connect(user.url(), prefix).await;
    let known = fresh_token();
    revoke(&a, &known).await.unwrap();
    eventually(Duration::from_secs(2), "b learns of it", || {
        ready(&b, &known) == Revoked
    })
    .await;

    user.cut();
    let cut_at = Instant::now();
    let missed = fresh_token();
    revoke(&a, &missed).await.unwrap();
    let sub = unique("sub");
    let cut = now_micros();
    a.revoke_subject(&SubjectCutoff::new(None, &sub, cut, now_secs() + 600))
        .await
        .unwrap();
    let cut_token = TokenInfo::with_micros(None, &sub, "j", cut, now_secs() + 600);
    // b does not know yet, and says so only after the window.
    assert_eq!(ready(&b, &missed), Active);
    assert!(
        revoke(&b, &fresh_token()).await.is_err(),
        "b cannot write either"
    );
    eventually(Duration::from_secs(3), "b fails closed", || {
        check(&b, &missed).is_err()
    })
    .await;
    assert!(cut_at.elapsed() >= STALENESS - STALENESS / 4);

    user.restore();
    eventually(
        Duration::from_secs(5),
        "b reconnects and catches up",
        || check(&b, &missed).is_ok_and(|s| s == Revoked) && ready(&b, &cut_token) == Revoked,
    )
    .await;
    assert_eq!(ready(&b, &known), Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_instance_resyncs_when_the_feed_was_trimmed_past_it() {
    let server = RedisServer::start();
    let user = CutOff::create(&server, "b");
    let prefix = "trimmed:";
    let a = connect(server.url(), prefix).await;
    let b = connect(user.url(), prefix).await;
    let known = fresh_token();
    revoke(&a, &known).await.unwrap();
    eventually(Duration::from_secs(2), "b learns of it", || {
        ready(&b, &known) == Revoked
    })
    .await;

    user.cut();
    let missed: Vec<TokenInfo> = (0..50).map(|_| fresh_token()).collect();
    for t in &missed {
        revoke(&a, t).await.unwrap();
    }
    // Everything b has not read is trimmed away but the newest entry, as an outage
    // longer than the feed's retention would: b can no longer catch up from the feed.
    let trimmed = server.command(&["XTRIM", &format!("{prefix}feed"), "MAXLEN", "1"]);
    assert_ne!(trimmed, b":0\r\n", "nothing was trimmed");

    user.restore();
    eventually(Duration::from_secs(5), "b resyncs every revocation", || {
        missed
            .iter()
            .all(|t| check(&b, t).is_ok_and(|s| s == Revoked))
    })
    .await;
    assert_eq!(ready(&b, &known), Revoked);
    // And follows the feed again afterwards.
    let after = fresh_token();
    revoke(&a, &after).await.unwrap();
    eventually(Duration::from_secs(2), "b follows the feed again", || {
        ready(&b, &after) == Revoked
    })
    .await;
}

/// A full Redis (`maxmemory`, `noeviction`) refuses logouts, but the feed goes on, so
/// checks keep being answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_logouts_but_checks_go_on() {
    let server = RedisServer::start();
    let prefix = "full:";
    let a = connect(server.url(), prefix).await;
    let b = connect(server.url(), prefix).await;
    let known = fresh_token();
    revoke(&a, &known).await.unwrap();

    server.command(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    server.command(&["CONFIG", "SET", "maxmemory", "1"]);
    let err = revoke(&a, &fresh_token()).await.unwrap_err();
    assert_eq!(err.kind(), RedisStoreErrorKind::Server, "{err}");
    // Longer than the staleness window: still answering, and still knowing.
    tokio::time::sleep(STALENESS + STALENESS / 2).await;
    for store in [&a, &b] {
        assert_eq!(check(store, &known).unwrap(), Revoked);
    }

    server.command(&["CONFIG", "SET", "maxmemory", "0"]);
    let after = fresh_token();
    revoke_until_done(&a, &after, "a revoke succeeds once Redis has room").await;
    eventually(Duration::from_secs(2), "b learns of it", || {
        ready(&b, &after) == Revoked
    })
    .await;
}

/// A quiet spell longer than the feed's retention, then one write while an instance is
/// cut off: that write's append trims everything the instance had read (and nothing it
/// had not). Reconnected, it reads on from the feed: no full resync (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_after_a_quiet_spell_does_not_resync_when_nothing_was_missed() {
    let server = RedisServer::start();
    let user = CutOff::create(&server, "b");
    let prefix = "quiet:";
    let feed = format!("{prefix}feed");
    let a = connect(server.url(), prefix).await;
    let b = connect(user.url(), prefix).await;
    let known = fresh_token();
    revoke(&a, &known).await.unwrap();
    eventually(Duration::from_secs(2), "b learns of it", || {
        ready(&b, &known) == Revoked
    })
    .await;

    // Only the write made while b is away is left in the feed, as the append after a
    // quiet spell longer than the retention leaves it.
    user.cut();
    let after_quiet = fresh_token();
    revoke(&a, &after_quiet).await.unwrap();
    let trimmed = server.command(&["XTRIM", &feed, "MAXLEN", "1"]);
    assert_ne!(trimmed, b":0\r\n", "nothing was trimmed");
    user.restore();
    eventually(Duration::from_secs(5), "b catches up", || {
        check(&b, &after_quiet).is_ok_and(|s| s == Revoked)
    })
    .await;
    assert_eq!(b.stats().resyncs, 0, "b resynced though it missed nothing");

    // The same with nothing written at all while b is away, and the feed trimmed empty.
    user.cut();
    let emptied = server.command(&["XTRIM", &feed, "MAXLEN", "0"]);
    assert_ne!(emptied, b":0\r\n", "nothing was trimmed");
    user.restore();
    let back = Instant::now();
    eventually(Duration::from_secs(5), "b reconnects", || {
        b.stats().reconnects >= 2 && b.mirror_age() < back.elapsed()
    })
    .await;
    assert_eq!(b.stats().resyncs, 0, "b resynced though it missed nothing");
    let next = fresh_token();
    revoke(&a, &next).await.unwrap();
    eventually(Duration::from_secs(2), "b follows the feed", || {
        ready(&b, &next) == Revoked
    })
    .await;
    assert_eq!(b.stats().resyncs, 0);

    // But when something b had not read was trimmed away, it does resync.
    user.cut();
    let lost = fresh_token();
    revoke(&a, &lost).await.unwrap();
    revoke(&a, &fresh_token()).await.unwrap();
    server.command(&["XTRIM", &feed, "MAXLEN", "1"]);
    user.restore();
    eventually(Duration::from_secs(5), "b resyncs", || {
        check(&b, &lost).is_ok_and(|s| s == Revoked)
    })
    .await;
    assert_eq!(b.stats().resyncs, 1);
}

/// The feed b reconnects to ends before the last entry b read, as after a failover to a
/// replica that had not received it, and the sets hold a revocation whose feed entry b
/// never sees. b must notice and resync instead of waiting for ids that will never
/// come (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feed_behind_what_an_instance_read_makes_it_resync() {
    let server = RedisServer::start();
    let user = CutOff::create(&server, "b");
    let prefix = "behind:";
    let feed = format!("{prefix}feed");
    let a = connect(server.url(), prefix).await;
    let b = connect(user.url(), prefix).await;
    let known = fresh_token();
    revoke(&a, &known).await.unwrap();
    eventually(Duration::from_secs(2), "b learns of it", || {
        ready(&b, &known) == Revoked
    })
    .await;

    user.cut();
    drop(a);
    // Another history: an older feed, and a revocation in the set only.
    server.command(&["DEL", &feed]);
    let added = server.command(&["XADD", &feed, "1-1", "x", "y"]);
    assert!(
        added.starts_with(b"$") || added.starts_with(b"1-1"),
        "{added:?}"
    );
    let only_in_sets = fresh_token();
    let member = format!(
        "{}.+{}:{}{}",
        only_in_sets.expires_at(),
        only_in_sets.issuer().unwrap().len(),
        only_in_sets.issuer().unwrap(),
        only_in_sets.jti()
    );
    let keep = (now_secs() + 600).to_string();
    server.command(&["ZADD", &format!("{prefix}denylist"), &keep, &member]);
    user.restore();
    eventually(Duration::from_secs(5), "b resyncs", || {
        check(&b, &only_in_sets).is_ok_and(|s| s == Revoked)
    })
    .await;
    assert_eq!(b.stats().resyncs, 1);
    assert_eq!(ready(&b, &known), Revoked, "the mirror forgot what it knew");

    // The same when the other history goes back past b's last id without it.
    user.cut();
    server.command(&["DEL", &feed]);
    // b's last id is now 1-1 (the newest entry when it resynced): this history has an
    // entry before it and one after it, but not it.
    let later = format!("{}-0", now_micros() / 1000 + 60_000);
    server.command(&["XADD", &feed, "0-5", "x", "y"]);
    server.command(&["XADD", &feed, &later, "x", "y"]);
    let second = fresh_token();
    let member = format!(
        "{}.+{}:{}{}",
        second.expires_at(),
        second.issuer().unwrap().len(),
        second.issuer().unwrap(),
        second.jti()
    );
    server.command(&["ZADD", &format!("{prefix}denylist"), &keep, &member]);
    user.restore();
    eventually(Duration::from_secs(5), "b resyncs again", || {
        check(&b, &second).is_ok_and(|s| s == Revoked)
    })
    .await;
    assert_eq!(b.stats().resyncs, 2);
}

/// The mirror is confirmed current as of when the read that showed it was sent, not
/// when its reply is processed: an instance whose reply sat unread while it was paused
/// (longer than the window), during which another instance revoked a token, must not
/// take the old empty reply as proof that it is current (issue 14).
#[test]
fn the_freshness_stamp_is_when_the_read_was_sent() {
    let server = RedisServer::start();
    let url = server.url();
    let prefix = "stamp:";
    let token = fresh_token();
    // The writer: another instance, on its own thread and runtime.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (done, written) = std::sync::mpsc::channel::<()>();
    let writer = {
        let (url, token) = (url.clone(), token.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async {
                let a = connect(url, prefix).await;
                wait.recv().unwrap();
                revoke(&a, &token).await.unwrap();
                done.send(()).unwrap();
            });
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // A window shorter than one blocking read's bound (block + command timeout),
        // so the read sent before the pause is answered, not timed out.
        let b = RedisStore::connect(
            config(url, prefix)
                .max_staleness(Duration::from_secs(1))
                .command_timeout(Duration::from_secs(2)),
        )
        .await
        .unwrap();
        // Let a blocking read be sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Paused: nothing of b runs. Its read's empty reply arrives meanwhile; then the
        // token is revoked by the other instance.
        std::thread::sleep(Duration::from_millis(400));
        go.send(()).unwrap();
        written.recv().unwrap();
        std::thread::sleep(Duration::from_millis(1_100));
        let mut answers = Vec::new();
        loop {
            let answer = check(&b, &token);
            let revoked = matches!(answer, Ok(Revoked));
            answers.push(answer.map_err(|e| e.kind()));
            if revoked {
                break;
            }
            assert!(answers.len() < 100_000, "never learnt: {answers:?}");
            tokio::task::yield_now().await;
        }
        assert!(
            !answers.contains(&Ok(Active)),
            "a token revoked elsewhere was accepted from a mirror not known to be current: \
             {answers:?}"
        );
    });
    writer.join().unwrap();
}
