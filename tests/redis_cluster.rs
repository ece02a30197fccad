//! The Redis store on a real Redis Cluster (issue 14): three primaries
//! (`redis-server --cluster-enabled yes`, joined with `redis-cli --cluster create`),
//! started by this binary on loopback.
//!
//! - the conformance suite and the refresh-session suite pass (each test under its own
//!   prefix, so their slots, and the primaries holding them, differ);
//! - every key sits under the prefix's hash tag, on the node that holds its slot;
//! - a reshard of the store's slot to another primary is followed while two stores
//!   write and read: a write during the migration is sent on with `ASKING` (`ASK`), and
//!   once the slot has moved both stores follow `MOVED` without a restart, losing
//!   nothing;
//! - settings no hash tag can be made of, or seed addresses that are not `host:port`,
//!   are refused.
//!
//! A failover of the slot's primary, at the HTTP level, is in `tests/failover.rs`.

#![cfg(feature = "redis")]

mod conformance;
mod support;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use conformance::{now_secs, token, unique};
use support::redis_cluster::RedisCluster;
use support::redis_server::{Resp, eventually, ready};
use tower_jwt_auth::RevocationStatus::{Active, Revoked};
use tower_jwt_auth::{RedisConfig, RedisStore, RedisStoreErrorKind};

/// The binary's cluster: three primaries, no replicas (the failover test has its own).
fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start(3, 0))
}

async fn store(prefix: &str) -> RedisStore {
    RedisStore::connect(RedisConfig::cluster(cluster().seeds()).prefix(prefix))
        .await
        .expect("connect to the test cluster")
}

/// A store on the binary's cluster, under a prefix no other test uses.
async fn fresh_cluster_store() -> RedisStore {
    store(&format!("{}:", unique("conformance"))).await
}

conformance::suite!(fresh_cluster_store);
mod refresh {
    use super::*;
    conformance::session_suite!(fresh_cluster_store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_carries_the_prefix_hash_tag_on_the_slot_owner() {
    let c = cluster();
    let prefix = format!("{}:", unique("tagged"));
    let s = store(&prefix).await;
    let t = token(Some("iss"), "sub", &unique("jti"));
    conformance::revoke(&s, &t, now_secs() + 600).await;
    conformance::cutoff(&s, None, "sub", conformance::now_micros(), now_secs() + 600).await;
    let tagged = format!("{{{prefix}}}");
    let slot = c.slot_of(&format!("{tagged}denylist"));
    let owner = &c.nodes[c.owner(slot).expect("an owner")];
    for key in ["denylist", "feed", "cutoffs", "cutoffs:expiry"] {
        let name = format!("{tagged}{key}");
        assert_eq!(c.slot_of(&name), slot, "{name}");
        assert_eq!(owner.query(&["EXISTS", &name]), Resp::Int(1), "{name}");
    }
    let untagged = format!("{prefix}denylist");
    let elsewhere = &c.nodes[c.owner(c.slot_of(&untagged)).expect("an owner")];
    assert_eq!(
        elsewhere.query(&["EXISTS", &untagged]),
        Resp::Int(0),
        "the single-node name is not used on a cluster"
    );
    // A prefix with a hash tag of its own is kept as it is.
    let own = format!("{{{}}}:", unique("own"));
    let s = store(&own).await;
    conformance::revoke(&s, &t, now_secs() + 600).await;
    let slot = c.slot_of(&format!("{own}denylist"));
    let owner = &c.nodes[c.owner(slot).expect("an owner")];
    assert_eq!(
        owner.query(&["EXISTS", &format!("{own}denylist")]),
        Resp::Int(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_cluster_settings_are_refused() {
    let seeds = cluster().seeds();
    for config in [
        RedisConfig::cluster(seeds.clone()).prefix(""),
        RedisConfig::cluster(seeds.clone()).prefix("}x"),
        RedisConfig::cluster(Vec::<String>::new()),
        RedisConfig::cluster(["127.0.0.1".to_owned()]),
        RedisConfig::cluster(["redis://127.0.0.1:7000".to_owned()]),
        RedisConfig::cluster(seeds.clone()).node_url("redis+unix:///tmp/redis.sock"),
        RedisConfig::cluster(seeds.clone()).node_url("redis://127.0.0.1/2"),
    ] {
        let shown = format!("{config:?}");
        let e = RedisStore::connect(config).await.expect_err(&shown);
        assert_eq!(e.kind(), RedisStoreErrorKind::Config, "{shown}: {e}");
    }
    // Seeds that are all down: a connection error within the connect timeout.
    let started = Instant::now();
    let e = RedisStore::connect(
        RedisConfig::cluster([format!("127.0.0.1:{}", support::ports::free_port())])
            .connect_timeout(Duration::from_millis(300)),
    )
    .await
    .expect_err("no node answers");
    assert!(
        matches!(
            e.kind(),
            RedisStoreErrorKind::Connection | RedisStoreErrorKind::Timeout
        ),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

/// The ids of the primaries (`CLUSTER MYID`) and their indices, but `skip`.
fn other_primary(c: &RedisCluster, skip: usize) -> usize {
    (0..c.nodes.len())
        .find(|&i| i != skip && c.nodes[i].is_master())
        .expect("another primary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reshard_of_the_slot_is_followed_through_ask_and_moved() {
    let c = cluster();
    let prefix = format!("{{{}}}:", unique("reshard"));
    let config = || {
        RedisConfig::cluster(c.seeds())
            .prefix(prefix.clone())
            .max_staleness(Duration::from_secs(5))
    };
    let a = RedisStore::connect(config()).await.expect("store a");
    let b = RedisStore::connect(config()).await.expect("store b");
    let exp = now_secs() + 600;
    let before = token(None, "s", &unique("before"));
    conformance::revoke(&a, &before, exp).await;
    eventually(
        Duration::from_secs(5),
        "b sees the first revocation",
        || ready(&b, &before) == Revoked,
    )
    .await;

    let slot = c.slot_of(&format!("{prefix}feed"));
    let src = c.owner(slot).expect("an owner");
    let dst = other_primary(c, src);
    let (src_node, dst_node) = (&c.nodes[src], &c.nodes[dst]);
    let (src_id, dst_id) = (src_node.cluster_id(), dst_node.cluster_id());
    let slot_arg = slot.to_string();
    // Open the migration, and move every key of the slot (all of the store's).
    assert_eq!(
        dst_node.query(&["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &src_id]),
        Resp::Simple("OK".into())
    );
    assert_eq!(
        src_node.query(&["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &dst_id]),
        Resp::Simple("OK".into())
    );
    let keys: Vec<String> = src_node
        .query(&["CLUSTER", "GETKEYSINSLOT", &slot_arg, "1000"])
        .items()
        .iter()
        .filter_map(Resp::text)
        .collect();
    assert!(keys.len() >= 2, "the store's keys: {keys:?}");
    let port = dst_node.port().to_string();
    let mut migrate = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    migrate.extend(keys.iter().map(String::as_str));
    assert_eq!(src_node.query(&migrate), Resp::Simple("OK".into()));

    // The slot is still the source's, its keys on the target: the source answers ASK,
    // and the write is sent on to the target with ASKING.
    let during = token(None, "s", &unique("during"));
    conformance::revoke(&a, &during, exp).await;
    assert_eq!(ready(&a, &during), Revoked);
    assert_eq!(
        src_node.query(&["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]),
        Resp::Int(0),
        "the write went to the target, not the source"
    );

    // The slot moves: every node is told (as `redis-cli --cluster reshard` does).
    for node in &c.nodes {
        assert_eq!(
            node.query(&["CLUSTER", "SETSLOT", &slot_arg, "NODE", &dst_id]),
            Resp::Simple("OK".into())
        );
    }
    let moved = Instant::now();
    // Both stores follow MOVED: b reads the feed from the target, a writes there.
    let after = token(None, "s", &unique("after"));
    conformance::revoke(&a, &after, exp).await;
    let caught_up = eventually(
        Duration::from_secs(5),
        "b follows the slot to its new owner",
        || ready(&b, &during) == Revoked && ready(&b, &after) == Revoked,
    )
    .await;
    let from_b = token(None, "s", &unique("from-b"));
    conformance::revoke(&b, &from_b, exp).await;
    eventually(Duration::from_secs(5), "a reads the moved feed", || {
        ready(&a, &from_b) == Revoked
    })
    .await;
    eprintln!(
        "reshard: b caught up {caught_up:?} after the slot moved ({:?} since)",
        moved.elapsed()
    );
    for t in [&before, &during, &after, &from_b] {
        assert_eq!(ready(&a, t), Revoked);
        assert_eq!(ready(&b, t), Revoked);
    }
    assert_eq!(ready(&a, &token(None, "s", "never")), Active);
    // Everything is on the target now, nothing left on the source.
    let denylist = format!("{prefix}denylist");
    assert_eq!(dst_node.query(&["ZCARD", &denylist]), Resp::Int(4));
    assert_eq!(
        src_node.query(&["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]),
        Resp::Int(0)
    );
    // A fresh instance finds the slot where it now is.
    let c2 = RedisStore::connect(config()).await.expect("a new store");
    assert_eq!(ready(&c2, &during), Revoked);
}
