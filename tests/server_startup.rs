//! The example server's binary at start-up: without Redis it listens and answers
//! `/health` (the README's first command); when it cannot start it exits with status 1
//! before it listens, and its error names what it was doing and then every cause, one
//! `caused by:` line each (the cause is what an operator acts on).

mod support;

use std::net::TcpListener;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;
use support::example_server::ExampleServer;
use support::http::Http;
use support::ports::free_port;

/// How long a server that cannot start may take to exit.
const EXIT_LIMIT: Duration = Duration::from_secs(15);

/// Starts the server with `env`, waits for it to exit, and returns its log (stderr).
fn refused_start(name: &str, env: &[(&str, String)]) -> String {
    let mut server = ExampleServer::spawn(name, env);
    let code = server
        .wait_exit(EXIT_LIMIT)
        .unwrap_or_else(|()| panic!("{name}: still running:\n{}", server.log()));
    let log = server.log();
    assert_eq!(code, Some(1), "{name}: {log}");
    assert!(!server.listened(), "{name}: it said it listens: {log}");
    log
}

/// The `caused by:` lines of a log, without the prefix.
fn causes(log: &str) -> Vec<&str> {
    log.lines()
        .filter_map(|line| line.strip_prefix("caused by: "))
        .collect()
}

#[tokio::test]
async fn without_redis_it_listens_and_answers_health() {
    let server = ExampleServer::start("in-memory", &[("ADDR", "127.0.0.1:0".into())]);
    let reply = Http::new(Duration::from_secs(5))
        .call(server.addr(), Method::GET, "/health", None, None)
        .await
        .expect("an answer");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({ "status": "ok" }));
}

#[test]
fn a_taken_port_is_reported_with_the_os_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let log = refused_start(
        "port-taken",
        &[
            ("ADDR", addr.to_string()),
            ("JWT_SECRET", "startup-test-secret-0123456789abcdef".into()),
        ],
    );
    assert!(log.contains(&format!("cannot listen on {addr}")), "{log}");
    let causes = causes(&log);
    assert!(
        causes.iter().any(|c| c.contains("in use")),
        "no cause line naming the taken address: {log}"
    );
}

#[test]
fn an_unreachable_redis_is_reported_with_every_cause_and_never_the_password() {
    // Nothing listens on this port.
    let url = format!("redis://:never-shown-password@127.0.0.1:{}/", free_port());
    let log = refused_start(
        "redis-unreachable",
        &[
            ("ADDR", format!("127.0.0.1:{}", free_port())),
            ("JWT_SECRET", "startup-test-secret-0123456789abcdef".into()),
            ("REDIS_URL", url),
        ],
    );
    assert!(
        log.contains("cannot use the Redis store at REDIS_URL"),
        "{log}"
    );
    let causes = causes(&log);
    // The store's error, then what the Redis client said (the refused connection).
    assert!(
        causes
            .first()
            .is_some_and(|c| c.contains("could not reach Redis")),
        "{log}"
    );
    assert!(
        causes.len() >= 2,
        "the Redis client's error is missing: {log}"
    );
    assert!(!log.contains("never-shown-password"), "{log}");
}

/// `REDIS_CLUSTER_NODES` beside `REDIS_URL` is refused, by name, before the server
/// listens: neither is silently ignored.
#[test]
fn redis_cluster_nodes_with_redis_url_is_refused_not_ignored() {
    let log = refused_start(
        "cluster-nodes",
        &[
            ("ADDR", "127.0.0.1:0".into()),
            ("JWT_SECRET", "startup-test-secret-0123456789abcdef".into()),
            ("REDIS_URL", "redis://:never-shown@127.0.0.1:1/".into()),
            (
                "REDIS_CLUSTER_NODES",
                "127.0.0.1:7000,127.0.0.1:7001".into(),
            ),
        ],
    );
    assert!(log.contains("REDIS_CLUSTER_NODES"), "{log}");
    assert!(
        log.contains("REDIS_URL and REDIS_CLUSTER_NODES are both set"),
        "{log}"
    );
    assert!(!log.contains("never-shown"), "{log}");
}
