//! Refresh tokens across two example-server processes sharing one real `redis-server`
//! (feature `example-server`): a rotation on one and a reuse on the other is detected,
//! and a session ended on one cannot be refreshed on the other.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::Value;
use support::example_server::ExampleServer;
use support::http::{Http, Reply};
use support::redis_server::RedisServer;
use support::tokens::claims_of;

const SECRET: &str = "refresh-test-secret-shared-by-both-instances";

fn start_instance(name: &str, redis: &RedisServer) -> ExampleServer {
    ExampleServer::start(
        name,
        &[
            ("ADDR", "127.0.0.1:0".to_owned()),
            ("JWT_SECRET", SECRET.to_owned()),
            ("COOKIE_SECURE", "0".to_owned()),
            ("REDIS_URL", redis.url()),
        ],
    )
}

async fn ok(result: Result<Reply, support::http::Failure>) -> Value {
    let reply = result.expect("answered");
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()
}

async fn refresh(http: &Http, addr: SocketAddr, token: &str) -> Reply {
    let body = serde_json::json!({ "refresh_token": token }).to_string();
    http.call(addr, Method::POST, "/refresh", None, Some(body))
        .await
        .expect("answered")
}

fn assert_invalid_grant(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_grant");
}

/// Polls `/me` on `addr` until `token` is refused (401), or panics after 5 s.
async fn refused_soon(http: &Http, addr: SocketAddr, token: &str) {
    let start = Instant::now();
    loop {
        let reply = http.me(addr, token).await.expect("answered");
        if reply.status == StatusCode::UNAUTHORIZED {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{token} never refused on {addr}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_on_one_instance_reuse_on_the_other() {
    let redis = RedisServer::start();
    let (a, b) = (start_instance("a", &redis), start_instance("b", &redis));
    let (a, b) = (a.addr(), b.addr());
    let http = Http::new(Duration::from_secs(5));

    let login = ok(http.login(a, "alice").await).await;
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let sid = claims_of(login["access_token"].as_str().unwrap())["sid"].clone();

    // Rotate on a, then again on b with the new token: one session across instances.
    let next = refresh(&http, a, &first).await;
    assert_eq!(next.status, StatusCode::OK);
    let next = next.json();
    assert_eq!(
        claims_of(next["access_token"].as_str().unwrap())["sid"],
        sid
    );
    let third = refresh(&http, b, next["refresh_token"].as_str().unwrap()).await;
    assert_eq!(third.status, StatusCode::OK);
    let third = third.json();
    let access = third["access_token"].as_str().unwrap().to_owned();

    // The first token again, on b: reuse. The session is over on both instances.
    assert_invalid_grant(&refresh(&http, b, &first).await);
    assert_invalid_grant(&refresh(&http, a, third["refresh_token"].as_str().unwrap()).await);
    refused_soon(&http, a, &access).await;
    refused_soon(&http, b, &access).await;

    // End a session on one (logout): its refresh token is refused on the other.
    let login = ok(http.login(b, "bob").await).await;
    let out = http
        .logout(b, login["access_token"].as_str().unwrap())
        .await
        .expect("answered");
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_invalid_grant(&refresh(&http, a, login["refresh_token"].as_str().unwrap()).await);

    // Log out everywhere on a: every session of the subject, on b too.
    let one = ok(http.login(a, "alice").await).await;
    let two = ok(http.login(b, "alice").await).await;
    let out = http
        .logout_all(a, one["access_token"].as_str().unwrap())
        .await
        .expect("answered");
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    for s in [&one, &two] {
        assert_invalid_grant(&refresh(&http, b, s["refresh_token"].as_str().unwrap()).await);
    }
}
