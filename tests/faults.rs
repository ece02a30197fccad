//! Fault tests at the HTTP level (feature `redis`): two instances of the example server
//! (`examples/server`, real processes) share one real `redis-server` (append-only file,
//! `appendfsync always`), and Redis is killed and restarted, frozen and resumed, or not
//! there at all when an instance starts.
//!
//! What every scenario asserts:
//!
//! - every request is answered within its bound (each HTTP call has a client time limit,
//!   and hitting it fails the test): checks never wait on Redis, logouts wait at most
//!   the command timeout;
//! - while Redis is away, `/me` is answered from the mirror within the staleness window,
//!   then refused with 503 (fail closed);
//! - a logout is answered 503 (never 204) when Redis cannot confirm it; a logout answered
//!   204 is refused on both instances within the propagation window, and then forever
//!   (a prober keeps trying every such token on both instances throughout);
//! - both instances recover by themselves once Redis is back;
//! - an instance paused for longer than the window (SIGSTOP) does not accept a token
//!   logged out meanwhile once it resumes: 503 until it has caught up, then 401.
//!
//! The example server is the `server` binary Cargo builds for this test (feature
//! `example-server`, `CARGO_BIN_EXE_server`), configured through its environment, with a
//! short staleness window and command timeout so the whole file takes well under two
//! minutes. The scenarios run one at a time: their timing bounds assume they do not
//! compete with each other for the CPU.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use support::example_server::ExampleServer;
use support::http::{Failure, Http, Reply, access_token};
use support::ports::free_port;
use support::redis_server::RedisServer;
use support::tokens::claims_of;

const SECRET: &str = "faults-test-secret-shared-by-both-instances";
/// `REDIS_COMMAND_TIMEOUT_MS`: the longest a logout waits for Redis.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(400);
/// `REDIS_MAX_STALENESS_MS`: how long checks are answered from the mirror without Redis.
const STALENESS: Duration = Duration::from_millis(2000);
/// The store confirms its mirror current at least this often (staleness / 5), so at
/// the start of an outage the mirror may already be up to this old.
const HEARTBEAT: Duration = Duration::from_millis(400);
/// Answers that never wait on Redis (checks, logins): well under the command timeout.
const FAST: Duration = Duration::from_millis(300);
/// Scheduling slack on top of the command timeout for a logout (debug build, 2 CPUs).
const SLACK: Duration = Duration::from_millis(600);
/// The client's limit on every HTTP call: hitting it means the server hung.
const HTTP_LIMIT: Duration = Duration::from_secs(5);
/// How soon a logout answered 204 must be refused by the other instance.
const PROPAGATION: Duration = Duration::from_secs(1);
/// How soon both instances must be back once Redis is.
const RECOVERY: Duration = Duration::from_secs(15);

/// Runs the scenarios one at a time: their timing bounds assume they do not compete
/// with each other for the CPU.
async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// The environment of an instance on `redis`.
fn env(redis_url: &str, addr: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ADDR", addr.to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("COOKIE_SECURE", "0".to_owned()),
        ("REDIS_URL", redis_url.to_owned()),
        ("REDIS_MAX_STALENESS_MS", STALENESS.as_millis().to_string()),
        (
            "REDIS_COMMAND_TIMEOUT_MS",
            COMMAND_TIMEOUT.as_millis().to_string(),
        ),
    ]
}

fn start_instance(name: &str, redis: &RedisServer) -> ExampleServer {
    ExampleServer::start(name, &env(&redis.url(), "127.0.0.1:0"))
}

/// The answer to a call that must be answered within `bound` (and the client's limit).
#[track_caller]
fn answered(what: &str, result: Result<Reply, Failure>, bound: Duration) -> Reply {
    match result {
        Ok(reply) => {
            assert!(
                reply.elapsed <= bound,
                "{what}: answered {} after {:?}, over the bound {bound:?}",
                reply.status,
                reply.elapsed
            );
            reply
        }
        Err(Failure::TimedOut(after)) => {
            panic!("{what}: no answer within the client's limit ({after:?}): the server hung")
        }
        Err(Failure::Error(e)) => panic!("{what}: {e}"),
    }
}

/// Two instances on one Redis, a client, and the record of every logout answered 204.
struct Cluster {
    redis: RedisServer,
    a: ExampleServer,
    b: ExampleServer,
    http: Http,
    /// Tokens whose logout (or logout-all) was answered 204 and which were then seen
    /// refused on both instances. The prober tries them throughout.
    revoked: Arc<Mutex<Vec<String>>>,
}

impl Cluster {
    fn start() -> Self {
        let redis = RedisServer::start_restartable();
        let a = start_instance("a", &redis);
        let b = start_instance("b", &redis);
        Self {
            redis,
            a,
            b,
            http: Http::new(HTTP_LIMIT),
            revoked: Arc::default(),
        }
    }

    fn both(&self) -> [(&'static str, SocketAddr); 2] {
        [("a", self.a.addr()), ("b", self.b.addr())]
    }

    async fn login(&self, addr: SocketAddr, user: &str) -> String {
        let reply = answered("login", self.http.login(addr, user).await, FAST);
        assert_eq!(reply.status, StatusCode::OK, "login: {:?}", reply.body);
        access_token(&reply)
    }

    async fn me(&self, addr: SocketAddr, token: &str) -> StatusCode {
        answered("/me", self.http.me(addr, token).await, FAST).status
    }

    /// `/me` on both instances.
    async fn me_both(&self, token: &str) -> [StatusCode; 2] {
        [
            self.me(self.a.addr(), token).await,
            self.me(self.b.addr(), token).await,
        ]
    }

    /// A logout (or logout-all) must be answered within the command timeout (and slack).
    async fn logout(&self, addr: SocketAddr, token: &str, all: bool) -> Reply {
        let (what, result) = if all {
            ("/logout-all", self.http.logout_all(addr, token).await)
        } else {
            ("/logout", self.http.logout(addr, token).await)
        };
        let reply = answered(what, result, COMMAND_TIMEOUT + SLACK);
        assert!(
            reply.status == StatusCode::NO_CONTENT
                || reply.status == StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {} {:?}",
            reply.status,
            reply.body
        );
        reply
    }

    /// A logout that must be done: 204, and then `gone` (the token itself, or every
    /// token of the subject for a logout-all) refused on both instances within the
    /// propagation window. Returns the longest time it took to be refused.
    async fn logout_done(
        &self,
        addr: SocketAddr,
        token: &str,
        all: bool,
        gone: &[&str],
    ) -> Duration {
        let reply = self.logout(addr, token, all).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
        let mut slowest = Duration::ZERO;
        for t in gone {
            slowest = slowest.max(self.refused_everywhere(t).await);
        }
        self.revoked
            .lock()
            .unwrap()
            .extend(gone.iter().map(|t| (*t).to_owned()));
        slowest
    }

    /// Polls both instances until the token is refused (401) by each, within the
    /// propagation window; never accepted once refused.
    async fn refused_everywhere(&self, token: &str) -> Duration {
        let start = Instant::now();
        for (name, addr) in self.both() {
            loop {
                match self.me(addr, token).await {
                    StatusCode::UNAUTHORIZED => break,
                    StatusCode::OK => assert!(
                        start.elapsed() < PROPAGATION,
                        "a token logged out (204) is still accepted by {name} after {:?}",
                        start.elapsed()
                    ),
                    other => panic!("/me on {name} with a revoked token: {other}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let took = start.elapsed();
        for (name, addr) in self.both() {
            assert_eq!(
                self.me(addr, token).await,
                StatusCode::UNAUTHORIZED,
                "refused once on {name}, then accepted"
            );
        }
        took
    }

    /// Polls until `/me` with `token` is answered 200 by both instances.
    async fn both_recover(&self, token: &str, since: Instant) -> Duration {
        for (name, addr) in self.both() {
            loop {
                let status = self.me(addr, token).await;
                if status == StatusCode::OK {
                    break;
                }
                assert_eq!(
                    status,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{name} while recovering"
                );
                assert!(
                    since.elapsed() < RECOVERY,
                    "{name} did not recover within {RECOVERY:?} after Redis came back"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        since.elapsed()
    }

    /// Polls `/me` on `addr` until it fails closed (503); returns when, after `since`.
    /// Every answer until then must be a 200 (from the mirror).
    fn closes(&self, addr: SocketAddr, token: String, since: Instant) -> FailsClosed {
        let http = self.http.clone();
        tokio::spawn(async move {
            loop {
                let status = answered("/me", http.me(addr, &token).await, FAST).status;
                match status {
                    StatusCode::SERVICE_UNAVAILABLE => return since.elapsed(),
                    StatusCode::OK => {}
                    other => panic!("/me while Redis is away: {other}"),
                }
                assert!(
                    since.elapsed() < STALENESS * 3,
                    "still answering from the mirror {:?} after Redis went away",
                    since.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }

    /// Starts the prober: every revoked token on both instances, again and again.
    fn probe(&self) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let (http, revoked, both) = (self.http.clone(), Arc::clone(&self.revoked), self.both());
        let flag = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut report = ProbeReport::default();
            while !flag.load(Ordering::Relaxed) {
                let tokens = revoked.lock().unwrap().clone();
                for token in &tokens {
                    for (name, addr) in both {
                        let reply = answered("/me (prober)", http.me(addr, token).await, FAST);
                        assert_ne!(
                            reply.status,
                            StatusCode::OK,
                            "a revoked token was accepted by {name}"
                        );
                        assert!(
                            reply.status == StatusCode::UNAUTHORIZED
                                || reply.status == StatusCode::SERVICE_UNAVAILABLE,
                            "prober: {name} answered {}",
                            reply.status
                        );
                        report.requests += 1;
                        report.refused_503 += u64::from(reply.status.as_u16() == 503);
                        report.slowest = report.slowest.max(reply.elapsed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            report
        });
        Prober { stop, task }
    }
}

type FailsClosed = tokio::task::JoinHandle<Duration>;

struct Prober {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<ProbeReport>,
}

#[derive(Debug, Default)]
struct ProbeReport {
    requests: u64,
    refused_503: u64,
    slowest: Duration,
}

impl Prober {
    async fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        match self.task.await {
            Ok(report) => report,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Joins a fail-closed poller, re-raising its panic.
async fn closed_after(poller: FailsClosed) -> Duration {
    match poller.await {
        Ok(after) => after,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[track_caller]
fn assert_closed_in_time(name: &str, after: Duration) {
    // The mirror may have been confirmed up to one heartbeat before Redis went away.
    let earliest = STALENESS.saturating_sub(HEARTBEAT + Duration::from_millis(100));
    assert!(
        after >= earliest && after <= STALENESS + Duration::from_secs(1),
        "{name} failed closed {after:?} after Redis went away (window {STALENESS:?})"
    );
}

/// What is true before every outage: a token logged out on A is refused on B, and
/// another instance's tokens work on both.
async fn healthy(c: &Cluster) -> (String, String, String) {
    let alice = c.login(c.a.addr(), "alice").await;
    let bob = c.login(c.b.addr(), "bob").await;
    assert_eq!(c.me_both(&alice).await, [StatusCode::OK; 2]);
    assert_eq!(c.me_both(&bob).await, [StatusCode::OK; 2]);
    let gone = c.login(c.a.addr(), "alice").await;
    let took = c.logout_done(c.a.addr(), &gone, false, &[&gone]).await;
    eprintln!("before the outage: a logout on a is refused by both in {took:?}");
    (alice, bob, gone)
}

/// After an outage: logouts work again on both instances, and propagate both ways.
async fn logouts_work_again(c: &Cluster, since: Instant) {
    // The writer may still be reconnecting: a 503 is allowed for a while (and such a
    // token is never counted as logged out).
    for (name, addr, other) in [("a", c.a.addr(), c.b.addr()), ("b", c.b.addr(), c.a.addr())] {
        let mut failed = 0;
        let token = loop {
            let token = c.login(other, "alice").await;
            let reply = c.logout(addr, &token, false).await;
            if reply.status == StatusCode::NO_CONTENT {
                break token;
            }
            failed += 1;
            assert!(
                since.elapsed() < RECOVERY,
                "logouts on {name} still fail {:?} after Redis came back",
                since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let took = c.refused_everywhere(&token).await;
        c.revoked.lock().unwrap().push(token);
        eprintln!(
            "after the outage: a logout on {name} answered 204 {:?} after Redis came back \
             ({failed} answered 503 before it), refused by both in {took:?}",
            since.elapsed()
        );
    }
}

/// Redis is killed (SIGKILL) and restarted on the same port with its append-only file
/// while both instances run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() {
    let _one_at_a_time = exclusive().await;
    let mut c = Cluster::start();
    let (alice, bob, gone) = healthy(&c).await;
    let bob_on_a = c.login(c.a.addr(), "bob").await;
    let prober = c.probe();

    c.redis.stop();
    let down = Instant::now();
    // Within the window: answered from the mirror, revoked tokens still refused.
    assert_eq!(c.me_both(&alice).await, [StatusCode::OK; 2]);
    assert_eq!(c.me_both(&bob).await, [StatusCode::OK; 2]);
    assert_eq!(c.me_both(&gone).await, [StatusCode::UNAUTHORIZED; 2]);
    let login = c.login(c.b.addr(), "alice").await;
    assert_eq!(c.me_both(&login).await, [StatusCode::OK; 2]);
    assert!(
        down.elapsed() < STALENESS - HEARTBEAT - Duration::from_millis(200),
        "the in-window checks took {:?}: too slow to show anything",
        down.elapsed()
    );
    let closes_a = c.closes(c.a.addr(), alice.clone(), down);
    let closes_b = c.closes(c.b.addr(), alice.clone(), down);

    // Logouts cannot be recorded: 503 within the command timeout, never 204.
    let failed = c.logout(c.a.addr(), &alice, false).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    let failed_all = c.logout(c.b.addr(), &bob, true).await;
    assert_eq!(failed_all.status, StatusCode::SERVICE_UNAVAILABLE);
    eprintln!(
        "Redis killed: logout answered 503 in {:?}, logout-all in {:?}",
        failed.elapsed, failed_all.elapsed
    );

    // Past the window: fail closed, at once, for every token.
    let (after_a, after_b) = (closed_after(closes_a).await, closed_after(closes_b).await);
    eprintln!("Redis killed: a failed closed after {after_a:?}, b after {after_b:?}");
    assert_closed_in_time("a", after_a);
    assert_closed_in_time("b", after_b);
    for token in [&alice, &bob, &gone, &login] {
        assert_eq!(c.me_both(token).await, [StatusCode::SERVICE_UNAVAILABLE; 2]);
    }
    let refused = c.logout(c.b.addr(), &login, false).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);

    // Back on the same port, from its append-only file.
    c.redis.restart();
    let back = Instant::now();
    let recovered = c.both_recover(&alice, back).await;
    eprintln!("Redis restarted: both instances answer again after {recovered:?}");
    // The revocation from before the outage still holds; the logouts answered 503 did
    // not happen (Redis refused the connection, so none of them reached it).
    assert_eq!(c.me_both(&gone).await, [StatusCode::UNAUTHORIZED; 2]);
    for token in [&alice, &bob, &bob_on_a, &login] {
        assert_eq!(c.me_both(token).await, [StatusCode::OK; 2]);
    }
    assert!(
        !in_denylist(&c.redis, &alice),
        "a logout answered 503 is in Redis"
    );
    assert!(
        in_denylist(&c.redis, &gone),
        "the append-only file lost a logout"
    );
    logouts_work_again(&c, back).await;
    // A logout-all on b reaches a: every earlier bob token is refused by both.
    let took = c
        .logout_done(c.b.addr(), &bob, true, &[&bob, &bob_on_a])
        .await;
    eprintln!("after the outage: a logout-all on b is refused by both in {took:?}");
    // A new instance loads what Redis kept through the restart (it has no mirror).
    let c3 = start_instance("c", &c.redis);
    let revoked = c.revoked.lock().unwrap().clone();
    for token in revoked {
        let status = c.me(c3.addr(), &token).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a new instance accepts a revoked token"
        );
    }
    assert_eq!(c.me(c3.addr(), &login).await, StatusCode::OK);

    let report = prober.finish().await;
    eprintln!("prober: {report:?}");
    assert!(report.requests > 0 && report.refused_503 > 0, "{report:?}");
}

/// Redis is frozen (SIGSTOP) with every connection open, then resumed (SIGCONT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_and_resumed() {
    let _one_at_a_time = exclusive().await;
    let c = Cluster::start();
    let (alice, bob, gone) = healthy(&c).await;
    let prober = c.probe();

    c.redis.freeze();
    let frozen = Instant::now();
    assert_eq!(c.me_both(&alice).await, [StatusCode::OK; 2]);
    assert_eq!(c.me_both(&gone).await, [StatusCode::UNAUTHORIZED; 2]);
    let login = c.login(c.a.addr(), "alice").await;
    assert_eq!(c.me_both(&login).await, [StatusCode::OK; 2]);
    assert!(
        frozen.elapsed() < STALENESS - HEARTBEAT - Duration::from_millis(200),
        "the in-window checks took {:?}: too slow to show anything",
        frozen.elapsed()
    );
    let closes_a = c.closes(c.a.addr(), alice.clone(), frozen);
    let closes_b = c.closes(c.b.addr(), alice.clone(), frozen);

    // A frozen Redis answers nothing: the logout gives up after the command timeout.
    let failed = c.logout(c.a.addr(), &login, false).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        failed.elapsed >= COMMAND_TIMEOUT - Duration::from_millis(50),
        "a logout to a frozen Redis answered after {:?}, before the command timeout",
        failed.elapsed
    );
    let failed_all = c.logout(c.b.addr(), &bob, true).await;
    assert_eq!(failed_all.status, StatusCode::SERVICE_UNAVAILABLE);
    eprintln!(
        "Redis frozen: logout answered 503 in {:?}, logout-all in {:?}",
        failed.elapsed, failed_all.elapsed
    );

    let (after_a, after_b) = (closed_after(closes_a).await, closed_after(closes_b).await);
    eprintln!("Redis frozen: a failed closed after {after_a:?}, b after {after_b:?}");
    assert_closed_in_time("a", after_a);
    assert_closed_in_time("b", after_b);
    for token in [&alice, &bob, &gone, &login] {
        assert_eq!(c.me_both(token).await, [StatusCode::SERVICE_UNAVAILABLE; 2]);
    }

    c.redis.thaw();
    let back = Instant::now();
    let recovered = c.both_recover(&alice, back).await;
    eprintln!("Redis resumed: both instances answer again after {recovered:?}");
    assert_eq!(c.me_both(&gone).await, [StatusCode::UNAUTHORIZED; 2]);
    // The writes answered 503 were in the frozen Redis's socket: REDIS.md says such a
    // write may still land once Redis wakes up, and then reaches every instance. So each
    // token is either accepted by both instances or refused by both, as Redis says.
    tokio::time::sleep(PROPAGATION).await;
    for (token, what) in [(&login, "logout"), (&bob, "logout-all")] {
        let statuses = c.me_both(token).await;
        assert_eq!(
            statuses[0], statuses[1],
            "the instances disagree after a {what} answered 503"
        );
        assert!(
            statuses[0] == StatusCode::OK || statuses[0] == StatusCode::UNAUTHORIZED,
            "{statuses:?}"
        );
        eprintln!(
            "the {what} answered 503 while frozen landed later: {}",
            statuses[0] != StatusCode::OK
        );
    }
    let landed = c.me(c.a.addr(), &login).await == StatusCode::UNAUTHORIZED;
    assert_eq!(
        landed,
        in_denylist(&c.redis, &login),
        "the instances and Redis disagree"
    );
    assert_eq!(c.me_both(&alice).await, [StatusCode::OK; 2]);
    logouts_work_again(&c, back).await;

    let report = prober.finish().await;
    eprintln!("prober: {report:?}");
    assert!(report.requests > 0 && report.refused_503 > 0, "{report:?}");
}

/// Whether Redis holds the token's `jti` on its denylist (default prefix). Matched as a
/// suffix of the members, so the test does not depend on how the store encodes them.
fn in_denylist(redis: &RedisServer, token: &str) -> bool {
    let claims = claims_of(token);
    let jti = claims["jti"].as_str().expect("a jti");
    let script = "local n = 0 \
        for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do \
          if string.sub(m, -#ARGV[1]) == ARGV[1] then n = n + 1 end \
        end \
        return n";
    let reply = redis.command(&["EVAL", script, "1", "tower-jwt-auth:denylist", jti]);
    match reply.as_slice() {
        b":0\r\n" => false,
        b":1\r\n" => true,
        other => panic!("EVAL: {}", String::from_utf8_lossy(other)),
    }
}

/// Redis is not there when an instance starts: the instance exits with a clear error
/// (naming `REDIS_URL` but never showing it) before it listens, rather than serve
/// requests it cannot check; once Redis is up, a (re)started instance works and holds
/// every revocation made before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_refusing_connections_at_start_up() {
    let _one_at_a_time = exclusive().await;
    let mut redis = RedisServer::start_restartable();
    let http = Http::new(HTTP_LIMIT);
    // One revocation made before, by an instance that then goes away.
    let gone = {
        let first = start_instance("first", &redis);
        let token = access_token(&answered(
            "login",
            http.login(first.addr(), "bob").await,
            FAST,
        ));
        let reply = answered(
            "/logout",
            http.logout(first.addr(), &token).await,
            FAST + SLACK,
        );
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        token
    };

    // Nothing listens on Redis's port.
    redis.stop();
    let addr = format!("127.0.0.1:{}", free_port());
    let url = format!("redis://:never-shown-password@127.0.0.1:{}/", redis.port());
    let start = Instant::now();
    let mut refused = ExampleServer::spawn("no-redis", &env(&url, &addr));
    let code = refused
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|()| panic!("still running without Redis:\n{}", refused.log()));
    let took = start.elapsed();
    let log = refused.log();
    eprintln!(
        "without Redis the instance exits ({code:?}) after {took:?}: {}",
        log.trim()
    );
    assert_eq!(code, Some(1), "{log}");
    assert!(!refused.listened(), "it said it listens without Redis");
    assert!(
        TcpStream::connect(&addr).is_err(),
        "something accepts connections on {addr}"
    );
    assert!(
        log.contains("cannot use the Redis store at REDIS_URL"),
        "not a clear error: {log}"
    );
    assert!(
        !log.contains("never-shown-password"),
        "the log shows the password: {log}"
    );
    // `connect` fails at once on a refused connection, well within its own timeout.
    assert!(took < Duration::from_secs(5), "took {took:?} to give up");

    // Frozen rather than gone: the connection is accepted but nothing is answered. The
    // instance gives up too, within its connect and load timeouts.
    redis.restart();
    redis.freeze();
    let start = Instant::now();
    let mut frozen = ExampleServer::spawn("frozen-redis", &env(&redis.url(), "127.0.0.1:0"));
    let code = frozen
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|()| panic!("still running on a frozen Redis:\n{}", frozen.log()));
    eprintln!(
        "on a frozen Redis the instance exits ({code:?}) after {:?}",
        start.elapsed()
    );
    assert_eq!(code, Some(1), "{}", frozen.log());
    assert!(!frozen.listened(), "it said it listens on a frozen Redis");
    redis.thaw();

    // Redis is back: instances start, and hold what was revoked before.
    let a = ExampleServer::start("a", &env(&redis.url(), &addr));
    let b = start_instance("b", &redis);
    for server in [&a, &b] {
        let reply = answered("/me", http.me(server.addr(), &gone).await, FAST);
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", server.name());
    }
    let token = access_token(&answered(
        "login",
        http.login(a.addr(), "alice").await,
        FAST,
    ));
    for server in [&a, &b] {
        let reply = answered("/me", http.me(server.addr(), &token).await, FAST);
        assert_eq!(reply.status, StatusCode::OK, "{}", server.name());
    }
    let reply = answered("/logout", http.logout(b.addr(), &token).await, FAST + SLACK);
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let start = Instant::now();
    loop {
        let reply = answered("/me", http.me(a.addr(), &token).await, FAST);
        if reply.status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            start.elapsed() < PROPAGATION,
            "a logout on b not refused on a"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let reply = answered("/me", http.me(b.addr(), &token).await, FAST);
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

/// An instance paused (SIGSTOP, as a VM pause or a swapped-out process would) for longer
/// than the staleness window while the other logs a token out: once resumed, it must not
/// accept that token, neither from a mirror it had not confirmed for that long nor
/// afterwards. (A request that arrived during the pause is answered once it resumes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_paused_longer_than_the_window_does_not_accept_what_it_missed() {
    let _one_at_a_time = exclusive().await;
    let c = Cluster::start();
    let (alice, _bob, _gone) = healthy(&c).await;
    const PROBES: usize = 100;
    let mut accepted = 0;
    for round in 0..2 {
        let token = c.login(c.a.addr(), "alice").await;
        assert_eq!(c.me_both(&token).await, [StatusCode::OK; 2]);
        c.b.signal("-STOP");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reply = c.logout(c.a.addr(), &token, false).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
        // b cannot have it: it is stopped. Its mirror is now older than the window.
        tokio::time::sleep(STALENESS + Duration::from_millis(500)).await;
        // Asked while stopped, answered once resumed; and asked again and again as it
        // catches up.
        let http = c.http.clone();
        let (addr, t) = (c.b.addr(), token.clone());
        let pending = tokio::spawn(async move { http.me(addr, &t).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.b.signal("-CONT");
        let mut statuses = vec![answered("/me", pending.await.unwrap(), HTTP_LIMIT).status];
        for _ in 0..PROBES {
            statuses.push(c.me(c.b.addr(), &token).await);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let unavailable = statuses.iter().filter(|s| s.as_u16() == 503).count();
        eprintln!(
            "round {round}: once resumed, b answered {ok} × 200, {unavailable} × 503, the rest 401"
        );
        accepted += ok;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED
                || *s == StatusCode::SERVICE_UNAVAILABLE
                || *s == StatusCode::OK),
            "{statuses:?}"
        );
        c.both_recover(&alice, Instant::now()).await;
        c.refused_everywhere(&token).await;
    }
    assert_eq!(accepted, 0);
}
