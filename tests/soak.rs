//! Load and soak (feature `redis`): mixed traffic from many concurrent clients against
//! two instances of the example server (real processes) sharing one real `redis-server`,
//! for a bounded time, at the highest rate the machine sustains (a closed loop: every
//! client sends its next request as soon as it has the answer).
//!
//! Ignored by a plain `cargo test`; run it with `scripts/soak` (about 60 s, release
//! build) or `scripts/soak --short` (10 s, the CI size). Settings, from the environment:
//!
//! | variable | default | what |
//! | --- | --- | --- |
//! | `SOAK_SECS` | 60 | how long the load runs |
//! | `SOAK_CLIENTS` | 64 | concurrent clients |
//! | `SOAK_TTL` | 10 | `ACCESS_TOKEN_TTL` of the instances, seconds |
//! | `SOAK_LEEWAY` | 5 | `JWT_LEEWAY` of the instances, seconds (a revocation is kept until `exp` + this) |
//! | `SOAK_WINDOW_MS` | 50 | the propagation allowance after a 204 |
//! | `SOAK_SAMPLE_SECS` | 5 | how often memory is sampled |
//! | `SOAK_LOGOUT_PERMILLE` | 600 | sessions that end with a logout |
//! | `SOAK_LOGOUT_ALL_PERMILLE` | 3 | sessions that end with a logout-all instead |
//! | `SOAK_APPENDFSYNC` | `everysec` | Redis's `appendfsync` (`always` makes every reply wait for an fsync; see RELIABILITY.md) |
//! | `SOAK_REPORT` | unset | also write the report (Markdown) to this file |
//!
//! Each client runs sessions: log in (alice or bob) on either instance, call `/me` one to
//! eight times on either instance, then log out (60 %), log out everywhere (0.3 %) or
//! drop the token; a quarter of the sessions also try a token revoked earlier on both
//! instances. The driver records when every logout and logout-all was sent and answered,
//! and judges every answer against that record:
//!
//! - a 200 for a token whose logout (or an earlier logout-all of its user) was answered
//!   204 more than the window before the request was sent: a revoked token accepted;
//! - a 401 for a token that no logout could have covered and that has not expired: a
//!   valid token refused;
//! - any 5xx, or no answer within 5 s.
//!
//! All must be zero. After each logout the next request goes to the other instance and
//! is repeated until refused: the time from the 204 to that refusal is the observed
//! propagation. The resident memory of both servers (and Redis's) is sampled over the
//! run and over a drain of `ttl + leeway + 2` s after it; it must be flat once
//! revocations start expiring (the first ones after `ttl + leeway`).

mod support;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use support::clock::now_micros;
use support::example_server::{ExampleServer, rss_kib};
use support::http::{Failure, Http, Reply, access_token};
use support::redis_server::RedisServer;
use support::tokens::claims_of;

const SECRET: &str = "soak-test-secret-shared-by-both-instances";
const USERS: [&str; 2] = ["alice", "bob"];
/// The client's limit on every call: hitting it counts as a failure.
const HTTP_LIMIT: Duration = Duration::from_secs(5);
/// How many revoked tokens are kept for probing.
const POOL: usize = 10_000;
/// How long a logout may take to be refused by the other instance before it counts as
/// a violation (the window is the allowance; this bounds the wait).
const PROPAGATION_LIMIT: Duration = Duration::from_secs(2);

fn setting<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not valid")),
        Err(_) => default,
    }
}

#[derive(Debug, Clone)]
struct Settings {
    secs: u64,
    clients: usize,
    ttl: u64,
    leeway: u64,
    window: Duration,
    sample: Duration,
    logout_permille: u32,
    logout_all_permille: u32,
    appendfsync: String,
}

impl Settings {
    fn from_env() -> Self {
        Self {
            secs: setting("SOAK_SECS", 60),
            clients: setting("SOAK_CLIENTS", 64),
            ttl: setting("SOAK_TTL", 10),
            leeway: setting("SOAK_LEEWAY", 5),
            window: Duration::from_millis(setting("SOAK_WINDOW_MS", 50)),
            sample: Duration::from_secs(setting("SOAK_SAMPLE_SECS", 5)),
            logout_permille: setting("SOAK_LOGOUT_PERMILLE", 600),
            logout_all_permille: setting("SOAK_LOGOUT_ALL_PERMILLE", 3),
            appendfsync: setting("SOAK_APPENDFSYNC", "everysec".to_owned()),
        }
    }
}

/// A small fast PRNG (xorshift64*), seeded from the OS.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        Self(getrandom::u64().unwrap_or(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// One logout-all: when it was sent, and when it was answered 204 (`None`: in flight,
/// or failed, in which case it may still land and is never relied on).
#[derive(Clone, Copy)]
struct LogoutAll {
    sent: Instant,
    done: Option<Instant>,
    /// The wall clock when it was sent, in µs (diagnostics).
    sent_wall_us: u64,
    /// The instance that answered it (diagnostics).
    side: usize,
}

fn iat_us(token: &str) -> u64 {
    claims_of(token)["iat_us"].as_u64().unwrap_or(0)
}

/// A token and what the driver knows of it.
#[derive(Clone)]
struct Token {
    token: Arc<str>,
    user: usize,
    login_sent: Instant,
    login_done: Instant,
    /// When its own logout was sent, and answered 204, by which instance.
    logout_sent: Option<Instant>,
    logout_done: Option<Instant>,
    logout_side: usize,
}

/// What every client shares: the record of logout-alls per user, and revoked tokens.
struct Shared {
    logout_alls: [Mutex<Vec<LogoutAll>>; 2],
    pool: Mutex<VecDeque<Token>>,
    requests: AtomicU64,
    settings: Settings,
    start: Instant,
    /// The longest propagation since the last sample (µs).
    max_propagation_us: AtomicU64,
    /// Requests that got a revoked token accepted past the window, so far.
    late_accepts: AtomicU64,
    /// The distinct tokens accepted past the window.
    late_tokens: Mutex<std::collections::HashSet<Arc<str>>>,
}

impl Shared {
    /// From when the token is certainly revoked: its own logout's 204, or the 204 of a
    /// logout-all sent after the token was issued; the first from any instance, and the
    /// first from `instance`.
    fn revoked_since(&self, t: &Token, instance: usize) -> (Option<Instant>, Option<Instant>) {
        let earliest = |a: Option<Instant>, b: Instant| Some(a.map_or(b, |a| a.min(b)));
        let (mut any, mut here) = (None, None);
        if let Some(done) = t.logout_done {
            any = Some(done);
            if t.logout_side == instance {
                here = Some(done);
            }
        }
        let alls = self.logout_alls[t.user].lock().unwrap();
        // In the order they were sent: only those sent after the login's answer count.
        for all in alls.iter().rev() {
            if all.sent <= t.login_done {
                break;
            }
            if let Some(done) = all.done {
                any = earliest(any, done);
                if all.side == instance {
                    here = earliest(here, done);
                }
            }
        }
        (any, here)
    }

    /// Whether a revocation sent before `by` could cover the token: its own logout, or a
    /// logout-all of its user not answered before the token's login was sent.
    fn may_be_revoked(&self, t: &Token, by: Instant) -> bool {
        if t.logout_sent.is_some_and(|s| s < by) {
            return true;
        }
        let alls = self.logout_alls[t.user].lock().unwrap();
        // Any call ends within HTTP_LIMIT: older logout-alls ended before this login.
        let horizon = t.login_sent.checked_sub(HTTP_LIMIT * 2);
        for all in alls.iter().rev() {
            if horizon.is_some_and(|h| all.sent < h) {
                break;
            }
            if all.sent < by && all.done.is_none_or(|d| t.login_sent < d) {
                return true;
            }
        }
        false
    }

    fn explain(&self, t: &Token, since: Instant) -> String {
        if t.logout_done == Some(since) {
            return "its own logout".to_owned();
        }
        let alls = self.logout_alls[t.user].lock().unwrap();
        let all = alls.iter().find(|a| a.done == Some(since));
        match all {
            Some(a) => format!(
                "logout-all answered by {} sent at wall {} µs, token iat_us {} ({} µs before)",
                a.side,
                a.sent_wall_us,
                iat_us(&t.token),
                a.sent_wall_us as i64 - iat_us(&t.token) as i64
            ),
            None => "?".to_owned(),
        }
    }

    fn remember(&self, t: Token) {
        let mut pool = self.pool.lock().unwrap();
        if pool.len() == POOL {
            pool.pop_front();
        }
        pool.push_back(t);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Login,
    Me,
    Logout,
    LogoutAll,
    /// `/me` with a revoked token (from the pool).
    Probe,
}

const OPS: [Op; 5] = [Op::Login, Op::Me, Op::Logout, Op::LogoutAll, Op::Probe];

/// What one client saw.
#[derive(Default)]
struct Stats {
    statuses: BTreeMap<(Op, u16), u64>,
    latency_us: BTreeMap<Op, Vec<u32>>,
    failures: u64,
    server_errors: u64,
    revoked_accepted: u64,
    /// The latest after its 204 a revoked token was accepted (past the window).
    max_violation_lag: Duration,
    /// Revoked tokens accepted past the window, per second of the run.
    violations_per_sec: BTreeMap<u64, u64>,
    accepted_in_window: u64,
    /// The latest a request sent after a 204 was still accepted.
    max_accepted_lag: Duration,
    valid_refused: u64,
    own_instance_accepted: u64,
    propagation_us: Vec<u32>,
    propagation_over_limit: u64,
    examples: Vec<String>,
}

impl Stats {
    fn merge(&mut self, other: Self) {
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, mut v) in other.latency_us {
            self.latency_us.entry(k).or_default().append(&mut v);
        }
        self.failures += other.failures;
        self.server_errors += other.server_errors;
        self.revoked_accepted += other.revoked_accepted;
        self.max_violation_lag = self.max_violation_lag.max(other.max_violation_lag);
        for (k, v) in other.violations_per_sec {
            *self.violations_per_sec.entry(k).or_default() += v;
        }
        self.accepted_in_window += other.accepted_in_window;
        self.max_accepted_lag = self.max_accepted_lag.max(other.max_accepted_lag);
        self.valid_refused += other.valid_refused;
        self.own_instance_accepted += other.own_instance_accepted;
        self.propagation_us.extend(other.propagation_us);
        self.propagation_over_limit += other.propagation_over_limit;
        for e in other.examples {
            if self.examples.len() < 10 {
                self.examples.push(e);
            }
        }
    }

    fn example(&mut self, what: String) {
        if self.examples.len() < 10 {
            self.examples.push(what);
        }
    }

    /// Records one call; `None` when it got no answer.
    fn record(&mut self, op: Op, result: Result<Reply, Failure>) -> Option<Reply> {
        match result {
            Ok(reply) => {
                *self
                    .statuses
                    .entry((op, reply.status.as_u16()))
                    .or_default() += 1;
                self.latency_us
                    .entry(op)
                    .or_default()
                    .push(u32::try_from(reply.elapsed.as_micros()).unwrap_or(u32::MAX));
                if reply.status.is_server_error() {
                    self.server_errors += 1;
                    self.example(format!("{op:?}: {} {:?}", reply.status, reply.body));
                }
                Some(reply)
            }
            Err(e) => {
                self.failures += 1;
                self.example(format!("{op:?}: {e:?}"));
                None
            }
        }
    }

    /// Judges an answer to `/me` with `t`, sent at `sent`.
    fn judge(&mut self, shared: &Shared, t: &Token, sent: Instant, reply: &Reply, instance: usize) {
        let window = shared.settings.window;
        match reply.status {
            StatusCode::OK => {
                let (any, here) = shared.revoked_since(t, instance);
                if let Some(since) = here
                    && sent > since
                {
                    // The instance that answered 204 had it in its mirror before.
                    self.own_instance_accepted += 1;
                    self.example(format!(
                        "instance {instance} accepted a token {:?} after its own 204",
                        sent - since
                    ));
                } else if let Some(since) = any
                    && sent > since
                {
                    let lag = sent - since;
                    if lag > window {
                        self.revoked_accepted += 1;
                        shared.late_accepts.fetch_add(1, Ordering::Relaxed);
                        shared
                            .late_tokens
                            .lock()
                            .unwrap()
                            .insert(Arc::clone(&t.token));
                        self.max_violation_lag = self.max_violation_lag.max(lag);
                        *self
                            .violations_per_sec
                            .entry(shared.start.elapsed().as_secs())
                            .or_default() += 1;
                        let detail = shared.explain(t, since);
                        self.example(format!(
                            "revoked token accepted {lag:?} after its 204 by {instance}: {detail}"
                        ));
                    } else {
                        self.accepted_in_window += 1;
                        self.max_accepted_lag = self.max_accepted_lag.max(lag);
                    }
                }
            }
            StatusCode::UNAUTHORIZED => {
                let young = t.login_sent.elapsed()
                    < Duration::from_secs(shared.settings.ttl)
                        .saturating_sub(Duration::from_secs(1));
                if young && !shared.may_be_revoked(t, Instant::now()) {
                    self.valid_refused += 1;
                    self.example(format!("valid token refused: {:?}", reply.body));
                }
            }
            _ => {}
        }
    }
}

/// One client: sessions until the deadline.
async fn client(
    http: Http,
    addrs: [SocketAddr; 2],
    shared: Arc<Shared>,
    deadline: Instant,
) -> Stats {
    let mut stats = Stats::default();
    let mut rng = Rng::new();
    let settings = &shared.settings;
    while Instant::now() < deadline {
        let user = rng.below(2) as usize;
        let login_sent = Instant::now();
        let at = addrs[rng.below(2) as usize];
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let Some(reply) = stats.record(Op::Login, http.login(at, USERS[user]).await) else {
            continue;
        };
        if reply.status != StatusCode::OK {
            continue;
        }
        let mut t = Token {
            token: access_token(&reply).into(),
            user,
            login_sent,
            login_done: Instant::now(),
            logout_sent: None,
            logout_done: None,
            logout_side: 0,
        };
        let mut alive = true;
        for _ in 0..=rng.below(8) {
            let i = rng.below(2) as usize;
            let at = addrs[i];
            let sent = Instant::now();
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let Some(reply) = stats.record(Op::Me, http.me(at, &t.token).await) else {
                continue;
            };
            stats.judge(&shared, &t, sent, &reply, i);
            if reply.status == StatusCode::UNAUTHORIZED {
                // Logged out everywhere by another client: the session is over.
                alive = false;
                break;
            }
        }
        let roll = rng.below(1000) as u32;
        if alive && roll < settings.logout_all_permille + settings.logout_permille {
            let all = roll < settings.logout_all_permille;
            let side = rng.below(2) as usize;
            let record = all.then(|| {
                let mut alls = shared.logout_alls[user].lock().unwrap();
                alls.push(LogoutAll {
                    sent: Instant::now(),
                    done: None,
                    sent_wall_us: now_micros(),
                    side,
                });
                alls.len() - 1
            });
            t.logout_sent = Some(Instant::now());
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let (op, result) = if all {
                (Op::LogoutAll, http.logout_all(addrs[side], &t.token).await)
            } else {
                (Op::Logout, http.logout(addrs[side], &t.token).await)
            };
            let done = Instant::now();
            if let Some(reply) = stats.record(op, result)
                && reply.status == StatusCode::NO_CONTENT
            {
                match record {
                    Some(i) => shared.logout_alls[user].lock().unwrap()[i].done = Some(done),
                    None => {
                        t.logout_done = Some(done);
                        t.logout_side = side;
                    }
                }
                propagation(&http, addrs, side, &t, done, &shared, &mut stats).await;
                shared.remember(t);
            }
        }
        if rng.below(4) == 0 {
            let pick = {
                let pool = shared.pool.lock().unwrap();
                (!pool.is_empty()).then(|| pool[rng.below(pool.len() as u64) as usize].clone())
            };
            if let Some(old) = pick {
                for (i, at) in addrs.into_iter().enumerate() {
                    let sent = Instant::now();
                    shared.requests.fetch_add(1, Ordering::Relaxed);
                    if let Some(reply) = stats.record(Op::Probe, http.me(at, &old.token).await) {
                        stats.judge(&shared, &old, sent, &reply, i);
                    }
                }
            }
        }
    }
    stats
}

/// After a 204 from instance `side`: that instance refuses the token at once; the other
/// is asked until it refuses, and the time from the 204 is the observed propagation.
async fn propagation(
    http: &Http,
    addrs: [SocketAddr; 2],
    side: usize,
    t: &Token,
    done: Instant,
    shared: &Shared,
    stats: &mut Stats,
) {
    let other = addrs[1 - side];
    loop {
        let sent = Instant::now();
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let Some(reply) = stats.record(Op::Me, http.me(other, &t.token).await) else {
            return;
        };
        stats.judge(shared, t, sent, &reply, 1 - side);
        if reply.status != StatusCode::OK {
            let us = u32::try_from((sent - done).as_micros()).unwrap_or(u32::MAX);
            stats.propagation_us.push(us);
            shared
                .max_propagation_us
                .fetch_max(u64::from(us), Ordering::Relaxed);
            break;
        }
        if done.elapsed() > PROPAGATION_LIMIT {
            stats.propagation_over_limit += 1;
            stats.example(format!(
                "still accepted by the other instance {:?} after the 204",
                done.elapsed()
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let sent = Instant::now();
    shared.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(reply) = stats.record(Op::Me, http.me(addrs[side], &t.token).await) {
        stats.judge(shared, t, sent, &reply, side);
    }
}

/// One memory sample.
#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    requests: u64,
    rss_a: u64,
    rss_b: u64,
    rss_redis: u64,
    denylist: u64,
    feed: u64,
    phase: &'static str,
    /// CPU time used so far by both servers, Redis and the driver (clock ticks).
    cpu_ticks: u64,
    /// The host's one-minute load average.
    load: f64,
    /// The longest propagation since the previous sample.
    max_propagation: Duration,
    late_accepts: u64,
}

/// A RESP reply, as far as the report needs one.
#[derive(Debug)]
enum Resp {
    Int(i64),
    Text(String),
    Array(Vec<Resp>),
    Nil,
}

fn read_resp(r: &mut impl std::io::BufRead) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end();
    let (kind, rest) = line.split_at(line.len().min(1));
    let bad = || std::io::Error::other(format!("unexpected reply {line:?}"));
    Ok(match kind {
        ":" => Resp::Int(rest.parse().map_err(|_| bad())?),
        "+" | "-" => Resp::Text(rest.to_owned()),
        "$" => {
            let len: i64 = rest.parse().map_err(|_| bad())?;
            if len < 0 {
                return Ok(Resp::Nil);
            }
            let mut body = vec![0; usize::try_from(len).map_err(|_| bad())? + 2];
            r.read_exact(&mut body)?;
            body.truncate(body.len() - 2);
            Resp::Text(String::from_utf8_lossy(&body).into_owned())
        }
        "*" => {
            let n: i64 = rest.parse().map_err(|_| bad())?;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                items.push(read_resp(r)?);
            }
            Resp::Array(items)
        }
        _ => return Err(bad()),
    })
}

/// One command over a connection of its own.
fn redis_query(port: u16, args: &[&str]) -> std::io::Result<Resp> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        let _ = write!(request, "${}\r\n{a}\r\n", a.len());
    }
    s.write_all(request.as_bytes())?;
    read_resp(&mut std::io::BufReader::new(s))
}

/// Redis's `LATENCY LATEST`: the slowest of each kind of event (ms), e.g. `aof-fsync-always`.
fn redis_latency(port: u16) -> Vec<(String, i64)> {
    let Ok(Resp::Array(events)) = redis_query(port, &["LATENCY", "LATEST"]) else {
        return Vec::new();
    };
    events
        .into_iter()
        .filter_map(|e| match e {
            Resp::Array(fields) => match fields.as_slice() {
                [Resp::Text(name), _, _, Resp::Int(max), ..] => Some((name.clone(), *max)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|f| f.parse().ok()))
        .unwrap_or(0.0)
}

/// A command with an integer reply (0 on any failure).
fn redis_integer(port: u16, args: &[&str]) -> u64 {
    match redis_query(port, args) {
        Ok(Resp::Int(n)) => u64::try_from(n).unwrap_or(0),
        _ => 0,
    }
}

/// Samples memory every `every` on a thread of its own, until `stop`.
fn sampler(
    pids: [u32; 3],
    redis_port: u16,
    shared: Arc<Shared>,
    start: Instant,
    every: Duration,
    stop: Arc<AtomicBool>,
    phase: [Arc<AtomicBool>; 2],
) -> std::thread::JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let mut samples = Vec::new();
        let mut next = start;
        while !stop.load(Ordering::Relaxed) {
            if Instant::now() >= next {
                samples.push(sample(pids, redis_port, &shared, start, &phase));
                next += every;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        samples.push(sample(pids, redis_port, &shared, start, &phase));
        samples
    })
}

fn sample(
    pids: [u32; 3],
    redis_port: u16,
    shared: &Shared,
    start: Instant,
    phase: &[Arc<AtomicBool>; 2],
) -> Sample {
    let denylist = redis_integer(redis_port, &["ZCARD", "tower-jwt-auth:denylist"]);
    let feed = redis_integer(redis_port, &["XLEN", "tower-jwt-auth:feed"]);
    Sample {
        at: start.elapsed(),
        requests: shared.requests.load(Ordering::Relaxed),
        rss_a: rss_kib(pids[0]).unwrap_or(0),
        rss_b: rss_kib(pids[1]).unwrap_or(0),
        rss_redis: rss_kib(pids[2]).unwrap_or(0),
        denylist,
        feed,
        cpu_ticks: pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>() + cpu_ticks(std::process::id()),
        load: load_average(),
        max_propagation: Duration::from_micros(
            shared.max_propagation_us.swap(0, Ordering::Relaxed),
        ),
        late_accepts: shared.late_accepts.load(Ordering::Relaxed),
        phase: if phase[1].load(Ordering::Relaxed) {
            "drain"
        } else if phase[0].load(Ordering::Relaxed) {
            "check"
        } else {
            "load"
        },
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

#[test]
#[ignore = "soak: run scripts/soak"]
fn soak() {
    let settings = Settings::from_env();
    // Redis records how long its fsyncs (and other slow events) take, for the report.
    let redis = RedisServer::start_with(&[
        "--appendfsync",
        &settings.appendfsync,
        "--latency-monitor-threshold",
        "5",
    ]);
    let env = |name: &str| {
        ExampleServer::start(
            name,
            &[
                ("ADDR", "127.0.0.1:0".to_owned()),
                ("JWT_SECRET", SECRET.to_owned()),
                ("COOKIE_SECURE", "0".to_owned()),
                ("ACCESS_TOKEN_TTL", settings.ttl.to_string()),
                ("JWT_LEEWAY", settings.leeway.to_string()),
                ("REDIS_URL", redis.url()),
            ],
        )
    };
    let (a, b) = (env("a"), env("b"));
    let addrs = [a.addr(), b.addr()];
    let shared = Arc::new(Shared {
        logout_alls: [Mutex::default(), Mutex::default()],
        pool: Mutex::default(),
        requests: AtomicU64::new(0),
        settings: settings.clone(),
        start: Instant::now(),
        max_propagation_us: AtomicU64::new(0),
        late_accepts: AtomicU64::new(0),
        late_tokens: Mutex::default(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let draining = Arc::new(AtomicBool::new(false));
    let checking = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let samples = sampler(
        [a.pid(), b.pid(), redis.pid()],
        redis.port(),
        Arc::clone(&shared),
        start,
        settings.sample,
        Arc::clone(&stop),
        [Arc::clone(&checking), Arc::clone(&draining)],
    );
    let deadline = start + Duration::from_secs(settings.secs);
    let http = Http::new(HTTP_LIMIT);
    let mut stats = runtime.block_on(async {
        let tasks: Vec<_> = (0..settings.clients)
            .map(|_| tokio::spawn(client(http.clone(), addrs, Arc::clone(&shared), deadline)))
            .collect();
        let mut stats = Stats::default();
        for task in tasks {
            stats.merge(task.await.expect("a client panicked"));
        }
        stats
    });
    let load_time = start.elapsed();
    let total = shared.requests.load(Ordering::Relaxed);

    // Every revoked token kept for probing, once more on both instances.
    checking.store(true, Ordering::Relaxed);
    let pool: Arc<Vec<Token>> = Arc::new(shared.pool.lock().unwrap().iter().cloned().collect());
    let late = runtime.block_on(async {
        let workers = settings.clients.clamp(1, 32);
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                let (http, pool) = (http.clone(), Arc::clone(&pool));
                tokio::spawn(async move {
                    let mut accepted = 0u64;
                    for t in pool.iter().skip(w).step_by(workers) {
                        for at in addrs {
                            match http.me(at, &t.token).await {
                                Ok(reply) if reply.status == StatusCode::OK => accepted += 1,
                                Ok(_) => {}
                                Err(e) => panic!("the final check got no answer: {e:?}"),
                            }
                        }
                    }
                    accepted
                })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            accepted += task.await.expect("a final check panicked");
        }
        accepted
    });

    // Drain: no traffic for ttl + leeway + 2 s, so every revocation expires.
    checking.store(false, Ordering::Relaxed);
    draining.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(settings.ttl + settings.leeway + 2));
    stop.store(true, Ordering::Relaxed);
    let samples = samples.join().expect("the sampler");

    let outcome = Outcome {
        load_time,
        total,
        pool: pool.len(),
        late,
        late_tokens: shared.late_tokens.lock().unwrap().len(),
        redis_latency: redis_latency(redis.port()),
    };
    let report = report(&settings, &mut stats, &samples, &outcome);
    println!("{report}");
    if let Ok(path) = std::env::var("SOAK_REPORT") {
        std::fs::write(&path, &report).expect("write the report");
    }

    // The verdict.
    let problems = [
        ("answers with a 5xx", stats.server_errors),
        ("calls without an answer (5 s limit)", stats.failures),
        (
            "revoked tokens accepted after the window",
            stats.revoked_accepted,
        ),
        ("valid tokens refused", stats.valid_refused),
        (
            "tokens accepted by the instance that answered 204",
            stats.own_instance_accepted,
        ),
        (
            "logouts not refused by the other instance within 2 s",
            stats.propagation_over_limit,
        ),
        ("revoked tokens accepted at the final check", late),
    ];
    let failed: Vec<_> = problems.iter().filter(|(_, n)| *n > 0).collect();
    assert!(
        failed.is_empty(),
        "{failed:?}\nexamples: {:#?}",
        stats.examples
    );
    let logouts = stats.statuses.get(&(Op::Logout, 204)).copied().unwrap_or(0);
    assert!(logouts > 0, "no logout was made");
    assert_memory_flat(&settings, &samples);
}

/// Once revocations expire (from `ttl + leeway` after the start, plus one sample),
/// neither server grows: the largest later sample is within 10 % (and 4 MiB) of the
/// first steady one.
fn assert_memory_flat(settings: &Settings, samples: &[Sample]) {
    let steady_from = Duration::from_secs(settings.ttl + settings.leeway) + settings.sample;
    let steady: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.phase == "load" && s.at >= steady_from)
        .collect();
    let Some(first) = steady.first() else {
        eprintln!("the run is too short to see revocations expire: memory not judged");
        return;
    };
    for name in ["a", "b"] {
        let rss = |s: &Sample| if name == "a" { s.rss_a } else { s.rss_b };
        let base = rss(first);
        let top = steady.iter().map(|s| rss(s)).max().unwrap_or(base);
        let allowed = base + (base / 10).max(4 * 1024);
        assert!(
            top <= allowed,
            "server {name} grew from {base} KiB to {top} KiB after revocations started expiring"
        );
    }
}

/// The run's totals besides the clients' statistics.
struct Outcome {
    load_time: Duration,
    total: u64,
    /// Revoked tokens checked at the end, and how many of them were accepted.
    pool: usize,
    late: u64,
    /// Distinct tokens accepted past the window.
    late_tokens: usize,
    /// The slowest event of each kind Redis recorded (ms).
    redis_latency: Vec<(String, i64)>,
}

fn report(settings: &Settings, stats: &mut Stats, samples: &[Sample], outcome: &Outcome) -> String {
    let Outcome {
        load_time,
        total,
        pool,
        late,
        late_tokens,
        ref redis_latency,
    } = *outcome;
    let secs = load_time.as_secs_f64();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Soak: {} s, {} clients, ACCESS_TOKEN_TTL={} s, JWT_LEEWAY={} s, appendfsync {}\n",
        settings.secs, settings.clients, settings.ttl, settings.leeway, settings.appendfsync
    );
    let _ = writeln!(
        out,
        "{total} requests in {secs:.1} s: **{:.0} requests/s** over both instances.\n",
        total as f64 / secs
    );
    let _ = writeln!(
        out,
        "| request | count | per second | statuses | p50 ms | p99 ms | max ms |"
    );
    let _ = writeln!(out, "| --- | ---: | ---: | --- | ---: | ---: | ---: |");
    for op in OPS {
        let count: u64 = stats
            .statuses
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|(_, n)| n)
            .sum();
        let statuses: Vec<String> = stats
            .statuses
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|((_, s), n)| format!("{s}: {n}"))
            .collect();
        let lat = stats.latency_us.entry(op).or_default();
        lat.sort_unstable();
        let name = match op {
            Op::Login => "POST /login",
            Op::Me => "GET /me (live tokens)",
            Op::Logout => "POST /logout",
            Op::LogoutAll => "POST /logout-all",
            Op::Probe => "GET /me (revoked tokens)",
        };
        let _ = writeln!(
            out,
            "| {name} | {count} | {:.0} | {} | {:.2} | {:.2} | {:.2} |",
            count as f64 / secs,
            statuses.join(", "),
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            percentile(lat, 1.0),
        );
    }
    stats.propagation_us.sort_unstable();
    let p = &stats.propagation_us;
    let _ = writeln!(out);
    let _ = writeln!(out, "| check | result |");
    let _ = writeln!(out, "| --- | ---: |");
    for (what, n) in [
        ("5xx answers", stats.server_errors),
        ("calls without an answer within 5 s", stats.failures),
        (
            "valid (unrevoked, unexpired) tokens refused",
            stats.valid_refused,
        ),
        (
            "tokens accepted by the instance that answered 204, after it",
            stats.own_instance_accepted,
        ),
        (
            "revoked tokens accepted at the final check (of the last kept)",
            late,
        ),
    ] {
        let _ = writeln!(out, "| {what} | {n} |");
    }
    let _ = writeln!(
        out,
        "| requests that got a revoked token accepted later than the window after the 204 | {} ({late_tokens} tokens; latest sent {:.1} ms after the 204) |",
        stats.revoked_accepted,
        stats.max_violation_lag.as_secs_f64() * 1000.0
    );
    let _ = writeln!(
        out,
        "| requests accepted within the {:?} window after a 204 (latest sent after the 204) | {} ({:.3} ms) |",
        settings.window,
        stats.accepted_in_window,
        stats.max_accepted_lag.as_secs_f64() * 1000.0
    );
    let _ = writeln!(
        out,
        "| propagation, 204 on one instance to refused on the other ({} logouts): p50 / p99 / max | {:.3} / {:.3} / {:.3} ms |",
        p.len(),
        percentile(p, 0.5),
        percentile(p, 0.99),
        percentile(p, 1.0)
    );
    let _ = writeln!(
        out,
        "| revoked tokens checked at the end | {pool} on both instances |"
    );
    let events: Vec<String> = redis_latency
        .iter()
        .map(|(name, ms)| format!("{name} {ms} ms"))
        .collect();
    let _ = writeln!(
        out,
        "| Redis's slowest events (`LATENCY LATEST`, over 5 ms) | {} |",
        if events.is_empty() {
            "none".to_owned()
        } else {
            events.join(", ")
        }
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| t (s) | phase | requests/s | CPU used (of {} CPUs) | load avg | max propagation (ms) | late accepts | RSS a (MiB) | RSS b (MiB) | RSS redis (MiB) | denylist in Redis | feed entries |",
        cpus()
    );
    let _ = writeln!(
        out,
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut previous: Option<&Sample> = None;
    for s in samples {
        let (rate, cpu, late) = previous.map_or((0.0, 0.0, 0), |p| {
            let secs = (s.at - p.at).as_secs_f64().max(1e-3);
            (
                (s.requests - p.requests) as f64 / secs,
                // Clock ticks are 1/100 s on Linux.
                (s.cpu_ticks.saturating_sub(p.cpu_ticks)) as f64 / secs,
                s.late_accepts - p.late_accepts,
            )
        });
        let _ = writeln!(
            out,
            "| {:.0} | {} | {:.0} | {:.0} % | {:.1} | {:.1} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            s.at.as_secs_f64(),
            s.phase,
            rate,
            cpu,
            s.load,
            s.max_propagation.as_secs_f64() * 1000.0,
            late,
            s.rss_a as f64 / 1024.0,
            s.rss_b as f64 / 1024.0,
            s.rss_redis as f64 / 1024.0,
            s.denylist,
            s.feed
        );
        previous = Some(s);
    }
    out
}
