//! Clocks (issue #10): no skewed, stepped or differently configured instance may bring a
//! revoked token back or lock users out.
//!
//! Every scenario runs real processes: the example server (the `server` binary Cargo
//! builds for this test, `CARGO_BIN_EXE_server`) and, where the store is shared, a real
//! `redis-server`. A process's wall clock is put off, and stepped while it runs, by an
//! `LD_PRELOAD` shim ([`support::shifted_clock`]) that shifts `CLOCK_REALTIME` and
//! `gettimeofday` but leaves the monotonic clocks alone, as NTP stepping a machine's
//! clock (or a machine whose clock is simply wrong) would. Each scenario first checks
//! that the shift really is in force (the `iat` of a token the shifted server issues,
//! or Redis's `TIME`), so a shim that did not load fails the test rather than passing it
//! vacuously.
//!
//! A refusal that the scenario is about must be for the right reason: a token that the
//! checking instance would otherwise accept must be refused as revoked
//! (`error_description="the token has been revoked"`), not, say, as issued in the
//! future. Lifetimes and leeways are short so that each scenario takes a few seconds;
//! the scenarios run one at a time, since their timing assumes they do not compete for
//! the two CPUs.
//!
//! Linux only (the shim is an `LD_PRELOAD` library, built with the C compiler at test
//! time).

#![cfg(all(feature = "example-server", feature = "redis", target_os = "linux"))]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use http::{StatusCode, header};
use support::clock::{now, now_micros, uid};
use support::example_server::ExampleServer;
use support::http::{Http, Reply, access_token};
use support::ports::free_port;
use support::redis_server::RedisServer;
use support::shifted_clock::ShiftedClock;
use support::tokens::claims_of;

/// The HS256 secret of every instance.
const SECRET: &str = "clocks-test-secret-shared-by-every-instance";
/// The client's limit on every HTTP call: hitting it means the server hung.
const HTTP_LIMIT: Duration = Duration::from_secs(5);
/// How soon a revocation recorded by one instance must be refused by another.
const PROPAGATION: Duration = Duration::from_secs(1);
/// How far (in seconds) a clock read in another process may be from what the test
/// expects: the two readings are not simultaneous, and `iat` is truncated to seconds.
const CLOCK_SLACK: i64 = 2;
/// The `error_description` of a refusal because the token was revoked.
const REVOKED: &str = "the token has been revoked";

/// Runs the scenarios one at a time: their timing assumes they do not compete for the
/// CPU (debug builds, two cores).
async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

/// An instance's configuration: `(variable, value)` pairs for its environment.
type Settings = Vec<(&'static str, String)>;

/// `ACCESS_TOKEN_TTL`, and `JWT_LEEWAY` / `JWT_MAX_TOKEN_LIFETIME` when given (the
/// server's defaults otherwise: 60 s, and the larger of the TTL and a day).
fn lifetimes(ttl: u64, leeway: Option<u64>, max_lifetime: Option<u64>) -> Settings {
    let mut settings = vec![("ACCESS_TOKEN_TTL", ttl.to_string())];
    if let Some(leeway) = leeway {
        settings.push(("JWT_LEEWAY", leeway.to_string()));
    }
    if let Some(max) = max_lifetime {
        settings.push(("JWT_MAX_TOKEN_LIFETIME", max.to_string()));
    }
    settings
}

/// `settings` on the shared Redis store `redis`, under `prefix`.
fn on_redis(redis: &RedisServer, prefix: &str, mut settings: Settings) -> Settings {
    settings.push(("REDIS_URL", redis.url()));
    settings.push(("REDIS_PREFIX", prefix.to_owned()));
    settings
}

/// A key prefix no other scenario uses.
fn fresh_prefix() -> String {
    format!("clocks-{}:", uid())
}

/// A status, the challenge and the body, for assertion messages.
fn describe(reply: &Reply) -> String {
    format!(
        "{} (WWW-Authenticate: {:?}) {:?}",
        reply.status,
        reply.header(header::WWW_AUTHENTICATE),
        String::from_utf8_lossy(&reply.body)
    )
}

/// Whether `reply` is a 401 refusing the token as revoked.
fn is_revoked(reply: &Reply) -> bool {
    reply.status == StatusCode::UNAUTHORIZED
        && reply
            .header(header::WWW_AUTHENTICATE)
            .is_some_and(|c| c.contains(&format!("error_description=\"{REVOKED}\"")))
}

/// Asserts that `token` was issued `offset` seconds off the real clock (its `iat`): the
/// issuing process's clock is shifted as the scenario means it to be.
#[track_caller]
fn assert_issued_at(token: &str, offset: i64, what: &str) {
    let iat = claims_of(token)["iat"].as_i64().expect("an iat claim");
    let expected = i64::try_from(now()).expect("now fits") + offset;
    assert!(
        (iat - expected).abs() <= CLOCK_SLACK,
        "{what}: iat {iat} is {} s off the real clock, not {offset} s: the clock shim is \
         not in force",
        iat - expected + offset
    );
}

/// Sleeps until the real wall clock reads `unix_micros`.
async fn sleep_until_real(unix_micros: u64) {
    let left = unix_micros.saturating_sub(now_micros());
    tokio::time::sleep(Duration::from_micros(left)).await;
}

/// One example server process, restartable with the same environment (its address
/// included), and a client for it.
struct Instance {
    name: String,
    env: Settings,
    server: ExampleServer,
    http: Http,
}

impl Instance {
    /// Starts an instance with `settings`, on a free port, under `clock` when given.
    fn start(name: &str, settings: Settings, clock: Option<&ShiftedClock>) -> Self {
        let mut env: Settings = vec![
            ("ADDR", format!("127.0.0.1:{}", free_port())),
            ("JWT_SECRET", SECRET.to_owned()),
            ("COOKIE_SECURE", "0".to_owned()),
        ];
        env.extend(settings);
        if let Some(clock) = clock {
            env.extend(clock.env());
        }
        let server = ExampleServer::start(name, &env);
        Self {
            name: name.to_owned(),
            env,
            server,
            http: Http::new(HTTP_LIMIT),
        }
    }

    /// Kills the process (SIGKILL) and starts it again with the same environment.
    fn restart(&mut self) {
        self.server.kill();
        self.server = ExampleServer::start(&self.name, &self.env);
        // A fresh client: no pooled connection to the old process.
        self.http = Http::new(HTTP_LIMIT);
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Logs `user` in; the access token.
    async fn login(&self, user: &str) -> String {
        let reply = self
            .http
            .login(self.addr(), user)
            .await
            .unwrap_or_else(|e| panic!("{}: POST /login as {user}: no answer: {e:?}", self.name));
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{}: POST /login as {user}: {}\n{}",
            self.name,
            describe(&reply),
            self.server.log()
        );
        access_token(&reply)
    }

    /// `GET /me` with `token`.
    async fn me(&self, token: &str) -> Reply {
        self.http
            .me(self.addr(), token)
            .await
            .unwrap_or_else(|e| panic!("{}: GET /me: no answer: {e:?}", self.name))
    }

    /// `POST /logout` with `token`, which must be answered 204.
    async fn logout(&self, token: &str) {
        let reply = self
            .http
            .logout(self.addr(), token)
            .await
            .unwrap_or_else(|e| panic!("{}: POST /logout: no answer: {e:?}", self.name));
        assert_eq!(
            reply.status,
            StatusCode::NO_CONTENT,
            "{}: POST /logout: {}",
            self.name,
            describe(&reply)
        );
    }

    /// `POST /logout-all` with `token`, which must be answered 204.
    async fn logout_all(&self, token: &str) {
        let reply = self
            .http
            .logout_all(self.addr(), token)
            .await
            .unwrap_or_else(|e| panic!("{}: POST /logout-all: no answer: {e:?}", self.name));
        assert_eq!(
            reply.status,
            StatusCode::NO_CONTENT,
            "{}: POST /logout-all: {}",
            self.name,
            describe(&reply)
        );
    }

    /// Asserts that `/me` accepts `token` as `user`'s.
    async fn assert_accepted(&self, token: &str, user: &str, what: &str) {
        let reply = self.me(token).await;
        assert!(
            reply.status == StatusCode::OK && reply.json()["sub"] == user,
            "{what}: GET /me on {} must accept {user}'s token, got {}",
            self.name,
            describe(&reply)
        );
    }

    /// Asserts that `/me` refuses `token` with 401, for any reason.
    async fn assert_refused(&self, token: &str, what: &str) {
        let reply = self.me(token).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{what}: GET /me on {} must refuse the token, got {}",
            self.name,
            describe(&reply)
        );
    }

    /// Asserts that `/me` refuses `token` as revoked, now.
    async fn assert_revoked(&self, token: &str, what: &str) {
        let reply = self.me(token).await;
        assert!(
            is_revoked(&reply),
            "{what}: GET /me on {} must refuse the token as revoked (401, \"{REVOKED}\"), \
             got {}",
            self.name,
            describe(&reply)
        );
    }

    /// Asserts that `/me` refuses `token` as revoked within `within` (a revocation
    /// another instance recorded reaches this one through Redis), and from then on.
    async fn assert_revoked_within(&self, token: &str, within: Duration, what: &str) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let reply = self.me(token).await;
            if is_revoked(&reply) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: GET /me on {} must refuse the token as revoked (401, \
                 \"{REVOKED}\") within {within:?}, still got {}",
                self.name,
                describe(&reply)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The shim itself
// ---------------------------------------------------------------------------------------

/// A process started under the shim reads the shifted clock (`date +%s`), and a new
/// offset is in force at once.
#[tokio::test]
async fn the_shim_shifts_a_process_wall_clock() {
    let _one = exclusive().await;
    let date = |clock: &ShiftedClock| -> i64 {
        let out = Command::new("date")
            .arg("+%s")
            .envs(clock.env())
            .output()
            .expect("run date");
        assert!(out.status.success(), "date: {out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .expect("date +%s prints a number")
    };
    let real = || i64::try_from(now()).unwrap();
    let clock = ShiftedClock::new(-3600);
    let shifted = date(&clock);
    assert!(
        (shifted - (real() - 3600)).abs() <= CLOCK_SLACK,
        "date under a clock 1 h behind: {shifted}, real {}",
        real()
    );
    clock.set(86_400);
    assert_eq!(clock.offset_micros(), 86_400_000_000);
    let stepped = date(&clock);
    assert!(
        (stepped - (real() + 86_400)).abs() <= CLOCK_SLACK,
        "date under a clock a day ahead: {stepped}, real {}",
        real()
    );
    clock.set(0);
    assert!((date(&clock) - real()).abs() <= CLOCK_SLACK);
}

/// `redis-server` under the shim: its `TIME` follows the offset, and stepping the clock
/// of the running server shows in its next `TIME`.
#[tokio::test]
async fn the_shim_shifts_redis_time() {
    let _one = exclusive().await;
    let clock = ShiftedClock::new(300);
    let redis = RedisServer::start_with_env(&clock.env());
    let off = |redis: &RedisServer| {
        (i128::from(redis.time_micros()) - i128::from(now_micros())) as f64 / 1e6
    };
    let ahead = off(&redis);
    assert!(
        (ahead - 300.0).abs() < 2.0,
        "Redis TIME is {ahead} s off the real clock, not 300 s"
    );
    clock.set(-120);
    let behind = off(&redis);
    assert!(
        (behind + 120.0).abs() < 2.0,
        "Redis TIME is {behind} s off the real clock after a step to -120 s"
    );
}

/// The example server under the shim issues tokens on the shifted clock (`iat`), checks
/// them on it (its own token is accepted), and follows a step while it runs. (Forward:
/// the crate's issue stamps never go back, so a step back does not show in `iat`.)
#[tokio::test]
async fn the_shim_shifts_the_example_server() {
    let _one = exclusive().await;
    let clock = ShiftedClock::new(-1000);
    let server = Instance::start("shifted", lifetimes(900, None, None), Some(&clock));
    let behind = server.login("alice").await;
    assert_issued_at(&behind, -1000, "a token issued 1000 s behind");
    server
        .assert_accepted(&behind, "alice", "its own token, on its own clock")
        .await;
    clock.set(1000);
    let ahead = server.login("bob").await;
    assert_issued_at(&ahead, 1000, "a token issued after a step to +1000 s");
    server
        .assert_accepted(&ahead, "bob", "its own token after the step")
        .await;
}

// ---------------------------------------------------------------------------------------
// The scenarios of issue #10
// ---------------------------------------------------------------------------------------

/// Issue #10, case a: memory store, the clock stepped back never revives a revoked
/// token.
///
/// One server without Redis, `JWT_LEEWAY=0`, 3 s tokens. alice logs in and out; then the
/// server's clock is stepped back, and the check comes once the token's `exp` + leeway
/// + 1 s has passed in elapsed (monotonic) time, when the stepped-back wall clock reads
/// a moment inside the token's lifetime (`iat` + 1.5 s): by the server's own clock the
/// token is unexpired, and not issued in the future either (with no leeway, a step of
/// more than a few seconds would put `iat` in the future, and the token would be refused
/// for that, whatever the store holds). It must still be refused as revoked.
#[tokio::test]
async fn a_memory_store_clock_stepped_back_never_revives_a_revoked_token() {
    let _one = exclusive().await;
    let clock = ShiftedClock::new(0);
    let server = Instance::start("a-memory", lifetimes(3, Some(0), None), Some(&clock));
    let token = server.login("alice").await;
    assert_issued_at(&token, 0, "alice's token");
    let iat = claims_of(&token)["iat"].as_u64().unwrap();
    server.logout(&token).await;
    server
        .assert_revoked(&token, "alice's token after her logout")
        .await;

    // Step back 4 s; checked 5.5 s after the `iat` second began, the server's clock reads
    // iat + 1.5 s: inside [iat, exp = iat + 3]. (Were the step not in force, the token
    // would be refused as expired, not as revoked.)
    clock.set(-4);
    sleep_until_real(iat * 1_000_000 + 5_500_000).await;
    server
        .assert_revoked(
            &token,
            "alice's logged-out token, past exp + leeway + 1 s in elapsed time, unexpired \
             on the stepped-back clock",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server
        .assert_revoked(&token, "alice's logged-out token, 0.5 s later")
        .await;
}

/// Issue #10, case b: memory store, the clock stepped forward then back never revives a
/// revoked token.
///
/// One server without Redis, `JWT_LEEWAY=0`, 20 s tokens. alice logs out; the clock is
/// stepped an hour ahead (her token is now expired: 401), and bob logs in and out at the
/// shifted time (a write to the store while it reads an hour ahead). About 4 s later
/// the clock is stepped back: alice's token is again inside its lifetime, and must
/// still be refused as revoked.
#[tokio::test]
async fn b_memory_store_clock_stepped_forward_then_back_never_revives_a_revoked_token() {
    let _one = exclusive().await;
    let clock = ShiftedClock::new(0);
    let server = Instance::start("b-memory", lifetimes(20, Some(0), None), Some(&clock));
    let token = server.login("alice").await;
    assert_issued_at(&token, 0, "alice's token");
    server.logout(&token).await;
    server
        .assert_revoked(&token, "alice's token after her logout")
        .await;

    clock.set(3600);
    server
        .assert_refused(
            &token,
            "alice's token with the clock an hour ahead (expired)",
        )
        .await;
    let bob = server.login("bob").await;
    assert_issued_at(&bob, 3600, "bob's token, issued an hour ahead");
    server.logout(&bob).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    server
        .assert_refused(&token, "alice's token, still an hour ahead")
        .await;

    clock.set(0);
    server
        .assert_revoked(
            &token,
            "alice's logged-out token once the clock is stepped back (unexpired again)",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    server
        .assert_revoked(&token, "alice's logged-out token, 1 s later")
        .await;
}

/// Issue #10, case c: one instance ahead must not lock everyone out.
///
/// Two servers on one Redis (unshifted), same prefix, default leeway (60 s): A's clock is
/// 600 s ahead, B's is right. bob logs out everywhere through A, so the cutoff carries
/// A's clock. Logins on B afterwards, bob's and alice's, must be accepted on B, and
/// again after B restarts (and reloads the cutoff from Redis); a bob token B issued
/// before the logout-everywhere stays refused.
#[tokio::test]
async fn c_one_instance_ahead_does_not_lock_everyone_out() {
    let _one = exclusive().await;
    let redis = RedisServer::start();
    let prefix = fresh_prefix();
    let ahead = ShiftedClock::new(600);
    let a = Instance::start(
        "c-a-ahead",
        on_redis(&redis, &prefix, lifetimes(900, None, None)),
        Some(&ahead),
    );
    let mut b = Instance::start(
        "c-b",
        on_redis(&redis, &prefix, lifetimes(900, None, None)),
        None,
    );

    let bob_before = b.login("bob").await;
    assert_issued_at(&bob_before, 0, "bob's token from B");
    b.assert_accepted(
        &bob_before,
        "bob",
        "bob's token from B, before the logout-everywhere",
    )
    .await;
    let bob_on_a = a.login("bob").await;
    assert_issued_at(&bob_on_a, 600, "bob's token from A");
    a.logout_all(&bob_on_a).await;
    // B has seen the cutoff once it refuses the earlier token.
    b.assert_revoked_within(
        &bob_before,
        PROPAGATION,
        "bob's token from B issued before the logout-everywhere on A",
    )
    .await;

    let bob_after = b.login("bob").await;
    b.assert_accepted(
        &bob_after,
        "bob",
        "bob's token from B issued after the logout-everywhere on A (600 s ahead)",
    )
    .await;
    let alice = b.login("alice").await;
    b.assert_accepted(&alice, "alice", "alice's token from B, after bob's cutoff")
        .await;

    b.restart();
    b.assert_accepted(&bob_after, "bob", "bob's later token, on restarted B")
        .await;
    b.assert_accepted(&alice, "alice", "alice's token, on restarted B")
        .await;
    let bob_again = b.login("bob").await;
    b.assert_accepted(&bob_again, "bob", "bob's token from restarted B")
        .await;
    let alice_again = b.login("alice").await;
    b.assert_accepted(&alice_again, "alice", "alice's token from restarted B")
        .await;
    b.assert_revoked(
        &bob_before,
        "bob's token from B issued before the logout-everywhere, on restarted B",
    )
    .await;
}

/// Issue #10, case d: logout-everywhere never spares the token that asked for it.
///
/// Two servers on Redis, default leeway (60 s): A's clock 30 s ahead, B's right. bob's
/// token T from A carries an `iat` 30 s ahead of B, within the leeway, so B accepts it.
/// A logout-everywhere on B with T (cut off at B's clock, before T's `iat`) must still
/// revoke T, on B and on A, at once and 2 s later.
#[tokio::test]
async fn d_logout_everywhere_never_spares_the_token_that_asked_for_it() {
    let _one = exclusive().await;
    let redis = RedisServer::start();
    let prefix = fresh_prefix();
    let ahead = ShiftedClock::new(30);
    let a = Instance::start(
        "d-a-ahead",
        on_redis(&redis, &prefix, lifetimes(900, None, None)),
        Some(&ahead),
    );
    let b = Instance::start(
        "d-b",
        on_redis(&redis, &prefix, lifetimes(900, None, None)),
        None,
    );

    let token = a.login("bob").await;
    assert_issued_at(&token, 30, "bob's token from A");
    b.assert_accepted(&token, "bob", "bob's token from A (30 s ahead), on B")
        .await;
    b.logout_all(&token).await;
    b.assert_revoked(&token, "the token that logged out everywhere on B, on B")
        .await;
    a.assert_revoked_within(
        &token,
        PROPAGATION,
        "the token that logged out everywhere on B, on A",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.assert_revoked(
        &token,
        "the token that logged out everywhere, on B, 2 s later",
    )
    .await;
    a.assert_revoked(
        &token,
        "the token that logged out everywhere, on A, 2 s later",
    )
    .await;
}

/// Issue #10, case e: retention follows the checking instance's rules, not the
/// revoker's (leeway).
///
/// Two servers on Redis with 2 s tokens: A with `JWT_LEEWAY=0`, B with `JWT_LEEWAY=30`.
/// alice logs out on A. About 5 s after her login her token is past `exp` but inside
/// B's leeway, so B would accept it but for the revocation: B must refuse it as
/// revoked, and so must B after a restart (Redis must still hold the entry).
#[tokio::test]
async fn e_retention_follows_the_checking_instances_leeway() {
    let _one = exclusive().await;
    let redis = RedisServer::start();
    let prefix = fresh_prefix();
    let a = Instance::start(
        "e-a-leeway-0",
        on_redis(&redis, &prefix, lifetimes(2, Some(0), None)),
        None,
    );
    let mut b = Instance::start(
        "e-b-leeway-30",
        on_redis(&redis, &prefix, lifetimes(2, Some(30), None)),
        None,
    );

    let login = now_micros();
    let token = a.login("alice").await;
    a.logout(&token).await;
    b.assert_revoked_within(&token, PROPAGATION, "alice's token logged out on A, on B")
        .await;
    sleep_until_real(login + 5_000_000).await;
    b.assert_revoked(
        &token,
        "alice's logged-out token 5 s after login (past exp, inside B's 30 s leeway), on B",
    )
    .await;
    b.restart();
    b.assert_revoked(&token, "alice's logged-out token, on restarted B")
        .await;
}

/// Issue #10, case f: retention follows the checking instance's rules, not the
/// revoker's (token lifetime).
///
/// Two servers on Redis, no leeway: A issues 1 s tokens and caps lifetimes at 1 s; B
/// issues 20 s tokens and caps them at an hour. bob's token TB from B, then a
/// logout-everywhere for bob on A: TB must be refused on B at once, 5 s later (long
/// after A's own tokens could have lived), and after B restarts.
#[tokio::test]
async fn f_retention_follows_the_checking_instances_token_lifetime() {
    let _one = exclusive().await;
    let redis = RedisServer::start();
    let prefix = fresh_prefix();
    let a = Instance::start(
        "f-a-1s",
        on_redis(&redis, &prefix, lifetimes(1, Some(0), Some(1))),
        None,
    );
    let mut b = Instance::start(
        "f-b-20s",
        on_redis(&redis, &prefix, lifetimes(20, Some(0), Some(3600))),
        None,
    );

    let tb = b.login("bob").await;
    b.assert_accepted(&tb, "bob", "bob's 20 s token from B")
        .await;
    let ta = a.login("bob").await;
    a.logout_all(&ta).await;
    b.assert_revoked_within(
        &tb,
        PROPAGATION,
        "bob's 20 s token from B after a logout-everywhere on A",
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    b.assert_revoked(
        &tb,
        "bob's 20 s token from B, 5 s after the logout-everywhere",
    )
    .await;
    b.restart();
    b.assert_revoked(&tb, "bob's 20 s token from B, on restarted B")
        .await;
}

/// Issue #10, case g: Redis's own clock ahead does not drop entries early.
///
/// Redis's clock is 300 s ahead; the two servers' clocks are right; default leeway
/// (60 s), 60 s tokens. alice logs out on A. Some 3 s later (the store sweeps expired
/// entries once a second, on Redis's clock), B restarts and reloads from Redis: it must
/// refuse the token as revoked, and the entry must still be in Redis.
#[tokio::test]
async fn g_redis_clock_ahead_does_not_drop_entries_early() {
    let _one = exclusive().await;
    let redis_clock = ShiftedClock::new(300);
    let redis = RedisServer::start_with_env(&redis_clock.env());
    let skew = (i128::from(redis.time_micros()) - i128::from(now_micros())) / 1_000_000;
    assert!(
        (i128::from(300 - CLOCK_SLACK)..=i128::from(300 + CLOCK_SLACK)).contains(&skew),
        "Redis TIME is {skew} s off the real clock, not 300 s: the clock shim is not in force"
    );
    let prefix = fresh_prefix();
    let a = Instance::start(
        "g-a",
        on_redis(&redis, &prefix, lifetimes(60, None, None)),
        None,
    );
    let mut b = Instance::start(
        "g-b",
        on_redis(&redis, &prefix, lifetimes(60, None, None)),
        None,
    );

    let token = a.login("alice").await;
    a.logout(&token).await;
    b.assert_revoked_within(&token, PROPAGATION, "alice's token logged out on A, on B")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    b.restart();
    b.assert_revoked(
        &token,
        "alice's logged-out token, on B restarted 3 s later (reloaded from Redis)",
    )
    .await;
    a.assert_revoked(&token, "alice's logged-out token, on A, 3 s later")
        .await;
    let key = format!("{prefix}denylist");
    let reply = redis.command(&["ZCARD", &key]);
    let held: u64 = std::str::from_utf8(&reply)
        .ok()
        .and_then(|r| r.trim().strip_prefix(':'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ZCARD {key}: {:?}", String::from_utf8_lossy(&reply)));
    assert_eq!(
        held, 1,
        "ZCARD {key}: the revoked token's entry must still be in Redis"
    );
}

/// Issue #10 ("no stepped instance may lock users out"), beyond the cases listed in the
/// issue: memory store, default leeway (60 s). The server's clock starts 600 s ahead and
/// alice logs in; then the clock is stepped back to the right time (as NTP would). A
/// login after the step must give a token the server accepts, rather than one stamped
/// at the pre-step time, 600 s ahead of the corrected clock and so "issued in the
/// future" until the clock catches up.
#[tokio::test]
async fn h_memory_store_clock_stepped_back_does_not_lock_out_new_logins() {
    let _one = exclusive().await;
    let clock = ShiftedClock::new(600);
    let server = Instance::start("h-memory", lifetimes(900, None, None), Some(&clock));
    let before = server.login("alice").await;
    assert_issued_at(&before, 600, "alice's token, issued 600 s ahead");
    server
        .assert_accepted(&before, "alice", "alice's token before the step back")
        .await;

    clock.set(0);
    let after = server.login("bob").await;
    server
        .assert_accepted(
            &after,
            "bob",
            "bob's token issued after the clock was stepped back",
        )
        .await;
}
