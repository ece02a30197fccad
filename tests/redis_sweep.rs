//! A mass expiry in Redis (feature `redis`), against a real `redis-server`: the sweep that
//! removes the expired entries must never hold up the feed that keeps the mirrors fresh.
//! One test in its own binary, so nothing else competes for the CPU while it runs.

#![cfg(feature = "redis")]

#[allow(unused_imports)] // the suite macro is not used here
mod conformance;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use conformance::{now_micros, now_secs, token, unique};
use redis_server::RedisServer;
use tower_jwt_auth::RevocationStatus::{Active, Revoked};
use tower_jwt_auth::{
    Check, RedisConfig, RedisStore, RevocationStatus, RevocationStore, RevokedToken, TokenInfo,
};

/// Revoked tokens that all stop being kept in the same second.
const TOKENS: u64 = 500_000;
/// Logout-everywhere cutoffs that stop being kept in that same second.
const CUTOFFS: u64 = 250_000;
/// The instances' staleness window (so a 200 ms heartbeat). Sweeping all of the above
/// keeps Redis busy for longer (about 2 s on a 2-vCPU machine), so a sweep that held up
/// the feed would let the mirrors go stale.
const STALENESS: Duration = Duration::from_secs(1);
/// How long a logout may take to reach the other instance, generously.
const PROPAGATION: Duration = Duration::from_secs(2);

/// Writes `tokens` denylist entries and `cutoffs` subject cutoffs server-side, as that
/// many logouts would (in the store's encoding, with a 22-byte issuer, 32-character
/// `jti`s and 32-character subjects), every one kept until `keep_until`, a second already
/// past. A debug build would take minutes to make that many logouts one by one.
///
/// The entries are written to keys of their own first (the sweep does not look there),
/// however long that takes on a busy machine, then renamed into place at once, in one
/// script: the next sweep finds all of them expired, as the first sweep after a mass
/// expiry does. The store's keys must not exist yet.
fn fill(server: &RedisServer, prefix: &str, tokens: u64, cutoffs: u64, keep_until: u64) {
    // ZADD/HSET with 1 000 members a call: far quicker than one call per member.
    const TOKENS: &str = "for i = tonumber(ARGV[1]), tonumber(ARGV[2]), 1000 do \
        local args = {} \
        for j = i, math.min(i + 999, tonumber(ARGV[2])) do \
            args[#args + 1] = ARGV[3] \
            args[#args + 1] = ARGV[4] .. '.+22:https://issuer.example' .. string.format('%032x', j) \
        end \
        redis.call('ZADD', KEYS[1], unpack(args)) \
        end return 1";
    const CUTOFFS: &str = "for i = tonumber(ARGV[1]), tonumber(ARGV[2]), 1000 do \
        local fields, scores = {}, {} \
        for j = i, math.min(i + 999, tonumber(ARGV[2])) do \
            local f = '+22:https://issuer.example' .. string.format('user-%027d', j) \
            fields[#fields + 1] = f \
            fields[#fields + 1] = ARGV[4] .. ':' .. ARGV[3] \
            scores[#scores + 1] = ARGV[3] \
            scores[#scores + 1] = f \
        end \
        redis.call('HSET', KEYS[1], unpack(fields)) \
        redis.call('ZADD', KEYS[2], unpack(scores)) \
        end return 1";
    // KEYS: the staged keys, then the store's.
    const IN_PLACE: &str = "for i = 1, 3 do redis.call('RENAME', KEYS[i], KEYS[i + 3]) end \
        return 1";
    // Small enough that each script call is short even on a busy machine.
    const BATCH: u64 = 20_000;
    let in_batches = |total: u64, run: &mut dyn FnMut(&str, &str) -> Vec<u8>| {
        let mut start = 0;
        while start < total {
            let end = (start + BATCH).min(total) - 1;
            let reply = run(&start.to_string(), &end.to_string());
            assert_eq!(reply, b":1\r\n", "{}", String::from_utf8_lossy(&reply));
            start = end + 1;
        }
    };
    let keep = keep_until.to_string();
    let key = |name: &str| format!("{prefix}{name}");
    let staged = [
        key("staged:denylist"),
        key("staged:cutoffs"),
        key("staged:cutoffs:expiry"),
    ];
    let [staged_denylist, staged_hash, staged_index] = &staged;
    let exp = (keep_until - 1).to_string();
    in_batches(tokens, &mut |a, b| {
        server.command(&["EVAL", TOKENS, "1", staged_denylist, a, b, &keep, &exp])
    });
    let cut = now_micros().to_string();
    in_batches(cutoffs, &mut |a, b| {
        server.command(&[
            "EVAL",
            CUTOFFS,
            "2",
            staged_hash,
            staged_index,
            a,
            b,
            &keep,
            &cut,
        ])
    });
    assert_eq!(count(server, &["ZCARD", staged_denylist]), tokens);
    assert_eq!(count(server, &["ZCARD", staged_index]), cutoffs);
    let store_keys = [key("denylist"), key("cutoffs"), key("cutoffs:expiry")];
    for k in &store_keys {
        assert_eq!(count(server, &["EXISTS", k]), 0, "{k} exists");
    }
    let mut args = vec!["EVAL", IN_PLACE, "6"];
    args.extend(staged.iter().chain(&store_keys).map(String::as_str));
    let reply = server.command(&args);
    assert_eq!(reply, b":1\r\n", "{}", String::from_utf8_lossy(&reply));
}

/// An integer reply.
fn count(server: &RedisServer, command: &[&str]) -> u64 {
    let reply = String::from_utf8(server.command(command)).unwrap();
    reply.trim().trim_start_matches(':').parse().unwrap()
}

/// One instance, watched: every look at it asserts that its mirror is fresh and that its
/// checks are answered.
struct Watched {
    store: RedisStore,
    name: &'static str,
    oldest: Duration,
}

impl Watched {
    fn check(&mut self, t: &TokenInfo) -> RevocationStatus {
        let age = self.store.mirror_age();
        self.oldest = self.oldest.max(age);
        assert!(
            age < STALENESS,
            "instance {}'s mirror was {age:?} old during the mass expiry (window {STALENESS:?})",
            self.name
        );
        match self.store.check(t) {
            Check::Ready(Ok(status)) => status,
            Check::Ready(Err(e)) => panic!("instance {} refused a check: {e}", self.name),
            Check::Pending(_) => panic!("the Redis store must answer checks synchronously"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mass_expiry_never_delays_the_feed() {
    // Persistence as REDIS.md recommends: the sweep's deletions go to the append-only
    // file too.
    let server = RedisServer::start_with(&["--appendfsync", "everysec"]);
    let prefix = format!("{}:", unique("sweep"));
    let config = || {
        RedisConfig::new(server.url())
            .prefix(prefix.clone())
            .max_staleness(STALENESS)
            // Sweep at keep_until itself, not a tolerance later.
            .clock_tolerance(Duration::ZERO)
    };
    let mut a = Watched {
        store: RedisStore::connect(config()).await.unwrap(),
        name: "a",
        oldest: Duration::ZERO,
    };
    let mut b = Watched {
        store: RedisStore::connect(config()).await.unwrap(),
        name: "b",
        oldest: Duration::ZERO,
    };
    // Everything was kept until the same second, now past.
    let doomed_at = now_secs();
    fill(&server, &prefix, TOKENS, CUTOFFS, doomed_at);
    let filled = Instant::now();
    // But for one long-lived revocation, checked throughout.
    let kept = token(Some("iss"), "s", &unique("kept"));
    a.store
        .revoke(&RevokedToken::for_token(&kept, now_secs() + 600))
        .await
        .unwrap();
    let (denylist, cutoffs) = (format!("{prefix}denylist"), format!("{prefix}cutoffs"));
    let doomed = doomed_at.to_string();
    let doomed_left = || {
        count(&server, &["ZCOUNT", &denylist, "-inf", &doomed])
            + count(&server, &["HLEN", &cutoffs])
    };

    // Logouts, one after the other, alternately on each instance, until everything
    // expired has been swept.
    let start = Instant::now();
    let (mut logouts, mut mid_sweep, mut slowest) = (0u64, 0u64, Duration::ZERO);
    loop {
        let left = doomed_left();
        if left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{left} expired entries still not swept"
        );
        let (from, to) = if logouts % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let t = token(Some("iss"), "s", &unique("jti"));
        assert_eq!(to.check(&t), Active);
        let logout = Instant::now();
        from.store
            .revoke(&RevokedToken::for_token(&t, now_secs() + 600))
            .await
            .expect("a logout during the mass expiry was not recorded");
        while to.check(&t) != Revoked {
            assert_eq!(from.check(&kept), Revoked);
            assert_eq!(to.check(&kept), Revoked);
            assert!(
                logout.elapsed() < PROPAGATION,
                "a logout during the mass expiry did not reach instance {} within {PROPAGATION:?}",
                to.name
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        slowest = slowest.max(logout.elapsed());
        logouts += 1;
        mid_sweep += u64::from(left < TOKENS + CUTOFFS);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!(
        "{TOKENS} tokens and {CUTOFFS} cutoffs expired at once and were all swept \
         {:?} after they were in place; {logouts} logouts meanwhile, {mid_sweep} of them while the \
         sweep was under way; the slowest reached the other instance in {slowest:?}; the \
         oldest mirrors seen: a {:?}, b {:?}",
        filled.elapsed(),
        a.oldest,
        b.oldest
    );
    assert!(
        mid_sweep >= 10,
        "only {mid_sweep} logouts were made while the sweep was under way"
    );
    assert_eq!(a.check(&kept), Revoked);
    assert_eq!(b.check(&kept), Revoked);
}
