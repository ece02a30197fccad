//! The Redis store against a real `redis-server` (feature `redis`): the conformance
//! suite, propagation between instances, start-up loading and cutoff races.

#![cfg(feature = "redis")]

mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use conformance::{now_micros, now_secs, status, token, unique};
use redis_server::{RedisServer, connect, ready};
use tower_jwt_auth::RevocationStatus::{Active, Revoked};
use tower_jwt_auth::{
    JwtAuthLayer, RedisConfig, RedisStore, RevocationStatus, RevocationStore, SubjectCutoff,
    TokenInfo, TokenIssuer, VerificationKey,
};

/// A store on the binary's shared server, under a prefix no other test uses.
async fn fresh_redis_store() -> RedisStore {
    let prefix = format!("{}:", unique("conformance"));
    RedisStore::connect(RedisConfig::new(RedisServer::shared().url()).prefix(prefix))
        .await
        .expect("connect to the test redis-server")
}

conformance::suite!(fresh_redis_store);
mod refresh {
    use super::*;
    conformance::session_suite!(fresh_redis_store);
}

/// Polls `store` until `t` has `want`; returns how long that took, or panics after 5 s.
async fn wait_for(store: &RedisStore, t: &TokenInfo, want: RevocationStatus) -> Duration {
    let start = Instant::now();
    while ready(store, t) != want {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{t:?} never became {want:?}"
        );
        tokio::task::yield_now().await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_instance_loads_every_current_revocation_before_connect_returns() {
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("restart"));
    let exp = now_secs() + 600;
    let revoked: Vec<TokenInfo> = (0..500)
        .map(|i| {
            token(
                if i % 2 == 0 { Some("iss") } else { None },
                "s",
                &unique("jti"),
            )
        })
        .collect();
    let sub = unique("sub");
    let cut = now_micros();
    {
        let first = connect(server, &prefix).await;
        for t in &revoked {
            conformance::revoke(&first, t, exp).await;
        }
        conformance::cutoff(&first, Some("iss"), &sub, cut, exp).await;
        // An expired entry is not loaded.
        let gone = token(None, "s", "expired-jti");
        conformance::revoke(&first, &gone, now_secs() + 1).await;
        // `first` is dropped: its instance "restarts".
    }
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let second = connect(server, &prefix).await;
    // No waiting: everything is there as soon as `connect` returns.
    for t in &revoked {
        assert_eq!(ready(&second, t), Revoked);
    }
    let before = TokenInfo::with_micros(Some("iss"), &sub, "j", cut, exp);
    let after = TokenInfo::with_micros(Some("iss"), &sub, "j", cut + 1, exp);
    assert_eq!(ready(&second, &before), Revoked);
    assert_eq!(ready(&second, &after), Active);
    assert_eq!(ready(&second, &token(None, "s", "expired-jti")), Active);
    assert_eq!(second.mirror_len().1, 1);
    // Another prefix sees none of it.
    let other = connect(server, &format!("{}:", unique("other"))).await;
    assert_eq!(ready(&other, &revoked[0]), Active);
    assert_eq!(other.mirror_len(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cutoff_races_between_instances_keep_the_latest_everywhere() {
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("race"));
    let a = connect(server, &prefix).await;
    let b = connect(server, &prefix).await;
    let sub = unique("sub");
    let base = now_micros();
    let keep = now_secs() + 600;
    let mut tasks = Vec::new();
    for i in 0..64u64 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let sub = sub.clone();
        // Scrambled order; retention also scrambled (a later cutoff may ask for less).
        let at = base + (i * 7919) % 64;
        let keep = keep - (i * 31) % 64;
        tasks.push(tokio::spawn(async move {
            store
                .revoke_subject(&SubjectCutoff::new(Some("iss"), &sub, at, keep))
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let at_max = TokenInfo::with_micros(Some("iss"), &sub, "j", base + 63, keep);
    let after = TokenInfo::with_micros(Some("iss"), &sub, "j", base + 64, keep);
    for store in [&a, &b] {
        wait_for(store, &at_max, Revoked).await;
        assert_eq!(status(store, &after).await, Active);
    }
    // Redis itself holds the maximum cutoff and the longest retention.
    let c = connect(server, &prefix).await;
    assert_eq!(ready(&c, &at_max), Revoked);
    assert_eq!(ready(&c, &after), Active);
    let field = format!("+3:iss{sub}");
    let value = server.command(&["HGET", &format!("{prefix}cutoffs"), &field]);
    assert_eq!(
        String::from_utf8(value).unwrap(),
        format!("{}:{keep}", base + 63)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_entries_expire_with_their_revocations() {
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("expiry"));
    // No clock tolerance: entries leave Redis at their keep_until exactly.
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .prefix(&prefix)
            .clock_tolerance(Duration::ZERO),
    )
    .await
    .unwrap();
    let soon = now_secs() + 2;
    conformance::revoke(&store, &token(Some("iss"), "s", "short"), soon).await;
    conformance::cutoff(&store, Some("iss"), "s", now_micros(), soon).await;
    let ttl = |key: &str| {
        let reply = server.command(&["TTL", &format!("{prefix}{key}")]);
        String::from_utf8(reply)
            .unwrap()
            .trim()
            .trim_start_matches(':')
            .parse::<i64>()
            .unwrap()
    };
    for key in ["denylist", "cutoffs", "cutoffs:expiry"] {
        let t = ttl(key);
        assert!((0..=2).contains(&t), "{key} TTL {t}");
    }
    // A longer-lived entry extends the key's life; the sweep removes the short one.
    conformance::revoke(&store, &token(Some("iss"), "s", "long"), now_secs() + 600).await;
    assert!(ttl("denylist") > 500);
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let card = server.command(&["ZCARD", &format!("{prefix}denylist")]);
    assert_eq!(
        String::from_utf8(card).unwrap().trim(),
        ":1",
        "the expired entry was swept"
    );
    for key in ["cutoffs", "cutoffs:expiry"] {
        assert_eq!(ttl(key), -2, "{key} outlived its last entry");
    }
}

/// With a clock tolerance (default 5 minutes), Redis keeps every entry that much past
/// its keep_until: its own clock, or one instance's, running ahead cannot drop it early.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_keeps_entries_a_clock_tolerance_past_their_time() {
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("tolerance"));
    let store = connect(server, &prefix).await;
    let soon = now_secs() + 1;
    conformance::revoke(&store, &token(None, "s", "short"), soon).await;
    conformance::cutoff(&store, None, "s", now_micros(), soon).await;
    for key in ["denylist", "cutoffs", "cutoffs:expiry"] {
        let reply = server.command(&["TTL", &format!("{prefix}{key}")]);
        let ttl: i64 = String::from_utf8(reply)
            .unwrap()
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap();
        assert!((290..=301).contains(&ttl), "{key} TTL {ttl}");
    }
    tokio::time::sleep(Duration::from_millis(2_500)).await; // past keep_until, two sweeps
    let card = server.command(&["ZCARD", &format!("{prefix}denylist")]);
    assert_eq!(
        String::from_utf8(card).unwrap().trim(),
        ":1",
        "not swept yet"
    );
}

/// Zero Redis commands per authenticated request, counted by the server itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticated_requests_send_no_redis_command() {
    use http::{Request, Response, StatusCode, header};
    use tower::{ServiceExt, service_fn};

    let server = RedisServer::start();
    let store = connect(&server, "count:").await;
    let secret = b"an example secret of at least 32 bytes!";
    let issuer = TokenIssuer::hs256(secret).unwrap();
    let auth = JwtAuthLayer::builder(store)
        .key(VerificationKey::hs256(secret).unwrap())
        .build()
        .unwrap();
    let app =
        tower::ServiceBuilder::new()
            .layer(auth)
            .service(service_fn(|_: Request<String>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            }));
    let token = issuer.issue("alice").unwrap();
    let processed = || {
        let info = String::from_utf8(server.command(&["INFO", "stats"])).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    const REQUESTS: u64 = 5_000;
    // Let the background task finish its start (first sweep, script loading) first.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let before = processed();
    let start = Instant::now();
    for _ in 0..REQUESTS {
        let req = Request::get("/")
            .header(header::AUTHORIZATION, format!("Bearer {}", token.as_str()))
            .body(String::new())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    let elapsed = start.elapsed();
    // Minus this INFO itself; what is left is the background task's heartbeat reads and
    // sweeps (a few per second), whatever the number of requests.
    let delta = processed() - before - 1;
    let background = 4 * (elapsed.as_secs() + 2) + 4;
    eprintln!(
        "{REQUESTS} authenticated requests in {elapsed:?}: {delta} Redis commands in total (background heartbeat and sweep)"
    );
    assert!(
        delta <= background,
        "{delta} Redis commands for {REQUESTS} requests"
    );
}

/// The background tasks (and every connection) go with the last clone of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_clone_stops_the_background_tasks() {
    let server = RedisServer::start();
    let connections = || {
        let list = String::from_utf8(server.command(&["CLIENT", "LIST"])).unwrap();
        // Not counting the connection asking.
        list.lines()
            .filter(|l| !l.contains("cmd=client|list"))
            .count()
    };
    assert_eq!(connections(), 0);
    let store = connect(&server, "drop:").await;
    let clone = store.clone();
    assert_eq!(
        connections(),
        3,
        "one for the feed, one for the sweep, one for writes"
    );
    drop(store);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(connections(), 3, "a clone still uses them");
    let t = token(None, "s", &unique("jti"));
    conformance::revoke(&clone, &t, now_secs() + 600).await;
    drop(clone);
    let start = Instant::now();
    while connections() != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "connections left open after the last clone was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn the_store_and_its_error_fit_axum_and_tower() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn error<E: std::error::Error + Send + Sync + 'static>() {}
    shareable::<RedisStore>();
    shareable::<RedisConfig>();
    error::<tower_jwt_auth::RedisStoreError>();
}

#[tokio::test]
async fn bad_settings_and_an_unreachable_redis_are_errors_at_connect() {
    use std::error::Error as _;
    use tower_jwt_auth::RedisStoreErrorKind;

    let err = RedisStore::connect(RedisConfig::new("not a url"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), RedisStoreErrorKind::Config);
    assert!(err.source().is_some(), "the parser's error is kept");

    let err = RedisStore::connect(
        RedisConfig::new("redis://127.0.0.1:1/").command_timeout(Duration::ZERO),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), RedisStoreErrorKind::Config);

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let err = RedisStore::connect(
        RedisConfig::new(format!("redis://127.0.0.1:{port}/"))
            .connect_timeout(Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(err.kind(), RedisStoreErrorKind::Connection, "{err:?}");
    assert!(err.source().is_some());

    // The URL may carry a password: never printed.
    let config = RedisConfig::new("redis://user:s3cret@127.0.0.1:6379/");
    assert!(!format!("{config:?}").contains("s3cret"));
}

/// `Debug` shows the store's settings and the mirror's age, never the mirror's size:
/// counting it walks every revocation group, too slow for a log line on a big mirror.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_does_not_depend_on_the_mirror_s_size() {
    const N: u64 = 20_000;
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("debug"));
    // N revocations, written server-side in the store's encoding as N logouts would.
    let fill = "for i = 1, tonumber(ARGV[1]) do \
        redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3] .. '.+3:issjti-' .. i) end return 1";
    let exp = now_secs() + 600;
    let reply = server.command(&[
        "EVAL",
        fill,
        "1",
        &format!("{prefix}denylist"),
        &N.to_string(),
        &(exp + 60).to_string(),
        &exp.to_string(),
    ]);
    assert_eq!(reply, b":1\r\n", "{}", String::from_utf8_lossy(&reply));
    let big = connect(server, &prefix).await;
    assert_eq!(big.mirror_len().0, N);
    let empty = connect(server, &prefix.replace("debug", "debug-empty")).await;
    assert_eq!(empty.mirror_len(), (0, 0));

    // Everything but the mirror's age, which moves.
    let shown = |store: &RedisStore| {
        let debug = format!("{store:?}");
        let (settings, age) = debug.split_once("mirror_age: ").expect(&debug);
        assert!(age.ends_with(", .. }"), "{debug}");
        settings.to_owned()
    };
    let big_shown = shown(&big);
    assert_eq!(
        big_shown,
        format!("RedisStore {{ prefix: {prefix:?}, command_timeout: 1s, max_staleness: 5s, ")
    );
    assert!(!big_shown.contains(&N.to_string()), "{big_shown}");
    assert_eq!(
        shown(&empty),
        big_shown.replace("debug", "debug-empty"),
        "the same fields whatever the mirror holds"
    );
}

/// Every value under `prefix`, as text: what a dump of Redis would show.
fn dump(server: &RedisServer, prefix: &str) -> String {
    let mut out = String::new();
    let keys = server.query(&["KEYS", &format!("{prefix}*")]);
    for key in keys.items() {
        let key = key.text().unwrap();
        let kind = server.query(&["TYPE", &key]).text().unwrap();
        let value = match kind.as_str() {
            "hash" => server.query(&["HGETALL", &key]),
            "set" => server.query(&["SMEMBERS", &key]),
            "zset" => server.query(&["ZRANGE", &key, "0", "-1", "WITHSCORES"]),
            "stream" => server.query(&["XRANGE", &key, "-", "+"]),
            _ => server.query(&["GET", &key]),
        };
        out.push_str(&format!("{key} {value:?}\n"));
    }
    out
}

fn layer(store: RedisStore) -> JwtAuthLayer<RedisStore> {
    JwtAuthLayer::builder(store)
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap()
}

const SECRET: &[u8] = b"an example secret of at least 32 bytes!";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_only_hashes_of_refresh_tokens() {
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("dump"));
    let auth = layer(connect(server, &prefix).await);
    let sessions = auth.sessions(TokenIssuer::hs256(SECRET).unwrap());
    let first = sessions.start("alice").await.unwrap();
    let next = sessions.refresh(first.refresh.as_str()).await.unwrap();
    let dump = dump(server, &prefix);
    assert!(dump.contains("refresh:t:"), "{dump}");
    for t in [first.refresh.as_str(), next.refresh.as_str()] {
        assert!(!dump.contains(t), "raw refresh token in Redis: {dump}");
    }
    assert!(dump.contains(&tower_jwt_auth::RefreshHash::of(next.refresh.as_str()).to_hex()));
}

/// Two instances on one Redis: many simultaneous exchanges of one token, half on each,
/// exactly one succeeds; a reuse on one ends the session on the other, whose access
/// tokens are then refused there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_exchange_succeeds_and_reuse_is_seen_everywhere() {
    use tower_jwt_auth::SessionErrorKind;
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("two"));
    let a = layer(connect(server, &prefix).await);
    let b = layer(connect(server, &prefix).await);
    let issuer = TokenIssuer::hs256(SECRET).unwrap();
    let (sa, sb) = (a.sessions(issuer.clone()), b.sessions(issuer));
    let login = sa.start("alice").await.unwrap();
    let token = login.refresh.as_str().to_owned();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let s = if i % 2 == 0 { sa.clone() } else { sb.clone() };
            let token = token.clone();
            tokio::spawn(async move { s.refresh(&token).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    SessionErrorKind::Reused | SessionErrorKind::Invalid
                ),
                "{e:?}"
            ),
        }
    }
    assert_eq!(ok, 1);

    // Rotate on one, reuse on the other.
    let login = sa.start("bob").await.unwrap();
    let next = sa.refresh(login.refresh.as_str()).await.unwrap();
    let reused = sb.refresh(login.refresh.as_str()).await.unwrap_err();
    assert_eq!(reused.kind(), SessionErrorKind::Reused);
    assert_eq!(
        sa.refresh(next.refresh.as_str()).await.unwrap_err().kind(),
        SessionErrorKind::Invalid
    );
    // The session's access tokens are refused on both instances.
    wait_for(a.store(), next.access.info(), Revoked).await;
    wait_for(b.store(), next.access.info(), Revoked).await;

    // Logout on one (end the session): the refresh token is dead on the other.
    let login = sa.start("carol").await.unwrap();
    b.revoker().revoke(login.access.info()).await.unwrap();
    assert_eq!(
        sa.refresh(login.refresh.as_str()).await.unwrap_err().kind(),
        SessionErrorKind::Invalid
    );
    // Logout everywhere on one: every session of the subject dies.
    let one = sa.start("dave").await.unwrap();
    let two = sb.start("dave").await.unwrap();
    a.revoker().revoke_all(one.access.info()).await.unwrap();
    for s in [&one, &two] {
        let e = sb.refresh(s.refresh.as_str()).await.unwrap_err();
        assert!(
            matches!(
                e.kind(),
                SessionErrorKind::Invalid | SessionErrorKind::Revoked
            ),
            "{e:?}"
        );
    }
}

/// Redis down: an exchange answers Unavailable, and hands out nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_with_redis_down_is_unavailable() {
    use tower_jwt_auth::SessionErrorKind;
    let mut server = RedisServer::start_restartable();
    let prefix = format!("{}:", unique("down"));
    let store = RedisStore::connect(
        RedisConfig::new(server.url())
            .prefix(prefix)
            .command_timeout(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let auth = layer(store);
    let sessions = auth.sessions(TokenIssuer::hs256(SECRET).unwrap());
    let login = sessions.start("alice").await.unwrap();
    server.stop();
    let e = sessions.refresh(login.refresh.as_str()).await.unwrap_err();
    assert_eq!(e.kind(), SessionErrorKind::Unavailable);
    server.restart();
    // Nothing was rotated: the token still works once Redis is back (AOF/RDB kept).
    let mut again = None;
    for _ in 0..50 {
        match sessions.refresh(login.refresh.as_str()).await {
            Ok(t) => {
                again = Some(t);
                break;
            }
            Err(e) if e.kind() == SessionErrorKind::Unavailable => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(again.is_some());
}

/// Watches every command `server` runs (`MONITOR`) from now on, on a thread of its own.
struct Monitor {
    lines: std::sync::mpsc::Receiver<String>,
}

impl Monitor {
    fn start(server: &RedisServer) -> Self {
        use std::io::{BufRead, BufReader, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
        stream
            .write_all(b"*1\r\n$7\r\nMONITOR\r\n")
            .expect("MONITOR");
        let mut reader = BufReader::new(stream);
        let mut ok = String::new();
        reader.read_line(&mut ok).expect("MONITOR's +OK");
        assert_eq!(ok.trim(), "+OK");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { lines }
    }

    /// The arguments (from the command's name on) of the first `name` command seen
    /// whose arguments include `marker` exactly.
    fn call_with(&self, name: &str, marker: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the command was not seen");
            let args = monitor_args(&line);
            if args.first().is_some_and(|c| c.eq_ignore_ascii_case(name))
                && args.iter().any(|a| a == marker)
            {
                return args;
            }
        }
    }
}

/// The quoted arguments of a `MONITOR` line (`+<time> [<db> <addr>] "CMD" "arg" ...`),
/// unescaped (`\"` and `\\`; the test's arguments have no other escapes).
fn monitor_args(line: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut chars = line.chars().skip_while(|&c| c != '"');
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => arg.extend(chars.next()),
                '"' => break,
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
    args
}

/// The logout-everywhere script is given the subject's refresh sessions as keys, read
/// just before it runs (every key a script touches is declared, as Redis Cluster
/// requires). A login between that read and the script leaves a session the script was
/// not given: it must then write nothing and answer 0 (the store reads again and calls
/// it anew), never record the cutoff while leaving that session alive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_everywhere_given_stale_sessions_writes_nothing() {
    let server = RedisServer::shared();
    let prefix = format!("{}:", unique("stale-sessions"));
    let store = connect(server, &prefix).await;
    let sub = unique("sub");
    let session_key = |sid: &str| format!("{prefix}refresh:s:+3:iss{sid}");
    let subject_set = format!("{prefix}refresh:u:+3:iss{sub}");
    let cutoffs = format!("{prefix}cutoffs");
    let member = format!("+3:iss{sub}");
    let first = conformance::create(&store, &sub, &conformance::refresh_hash()).await;

    // The call as the store makes it: its sha, keys and arguments.
    let monitor = Monitor::start(server);
    let cut = now_micros();
    conformance::cutoff(&store, Some("iss"), &sub, cut, now_secs() + 600).await;
    let call = monitor.call_with("EVALSHA", &subject_set);
    let numkeys: usize = call[2].parse().unwrap();
    let (keys, args) = call[3..].split_at(numkeys);
    assert_eq!(keys[3], subject_set);
    assert_eq!(
        keys[4..],
        [session_key(&first)],
        "the session read first is declared"
    );
    assert_eq!(
        server.query(&["EXISTS", &session_key(&first)]),
        redis_server::Resp::Int(0),
        "the session started before the cutoff is ended"
    );

    // A login after that read; the same call (with a later cutoff) now lacks its session.
    let second = conformance::create(&store, &sub, &conformance::refresh_hash()).await;
    let later = now_micros().to_string();
    let replay = |declared: &[String]| {
        let mut cmd: Vec<String> = vec![
            "EVALSHA".into(),
            call[1].clone(),
            (4 + declared.len()).to_string(),
        ];
        cmd.extend(keys[..4].iter().cloned());
        cmd.extend(declared.iter().cloned());
        cmd.extend(args.iter().cloned());
        cmd[3 + 4 + declared.len() + 1] = later.clone();
        let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
        server.query(&refs)
    };
    let recorded = || server.query(&["HGET", &cutoffs, &member]).text().unwrap();
    let before = recorded();
    assert!(before.starts_with(&format!("{cut}:")), "{before}");
    assert_eq!(replay(&[]), redis_server::Resp::Int(0), "stale: answers 0");
    assert_eq!(recorded(), before, "stale: the cutoff is not recorded");
    assert_eq!(
        server.query(&["EXISTS", &session_key(&second)]),
        redis_server::Resp::Int(1)
    );
    // Given the set as it now is, it records the cutoff and ends the session.
    assert!(
        matches!(
            replay(&[session_key(&second)]),
            redis_server::Resp::Bulk(Some(_))
        ),
        "a feed entry's id"
    );
    assert!(recorded().starts_with(&format!("{later}:")));
    assert_eq!(
        server.query(&["EXISTS", &session_key(&second)]),
        redis_server::Resp::Int(0)
    );
    // Through the store, a cutoff after yet another login ends that one too.
    let third = conformance::create(&store, &sub, &conformance::refresh_hash()).await;
    conformance::cutoff(&store, Some("iss"), &sub, now_micros(), now_secs() + 600).await;
    assert_eq!(
        server.query(&["EXISTS", &session_key(&third)]),
        redis_server::Resp::Int(0)
    );
}
