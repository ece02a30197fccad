//! An identity provider's tokens and back-channel logouts on two example-server
//! processes sharing one real `redis-server` (feature `example-server`), with the
//! provider on loopback (tests/support/provider.rs): every back-channel rule of OpenID
//! Connect Back-Channel Logout 1.0 §2.6, a logout on one instance refused on both, a
//! logout the store cannot record answered 503, and a server that starts while the
//! provider is unreachable.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Method, Request, StatusCode, header};
use http_body_util::Full;
use hyper::body::Bytes;
use jsonwebtoken::{Algorithm, Header};
use serde_json::Value;
use support::example_server::ExampleServer;
use support::http::{Http, Reply};
use support::provider::{AUDIENCE, KeyPair, Provider};
use support::redis_server::RedisServer;

const SECRET: &str = "oidc-test-secret-shared-by-both-instances";

fn start_instance(name: &str, provider: &Provider, redis: Option<&RedisServer>) -> ExampleServer {
    let mut env = vec![
        ("ADDR", "127.0.0.1:0".to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("COOKIE_SECURE", "0".to_owned()),
        ("OIDC_ISSUER", provider.issuer()),
        ("OIDC_AUDIENCE", AUDIENCE.to_owned()),
        ("JWKS_REFRESH_COOLDOWN_MS", "200".to_owned()),
        ("REDIS_COMMAND_TIMEOUT_MS", "500".to_owned()),
    ];
    if let Some(redis) = redis {
        env.push(("REDIS_URL", redis.url()));
    }
    ExampleServer::start(name, &env)
}

/// `POST /backchannel-logout` with `body` as `content_type`.
async fn post_raw(http: &Http, addr: SocketAddr, content_type: &str, body: String) -> Reply {
    let request = Request::post(format!("http://{addr}/backchannel-logout"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    http.send(request).await
}

/// `POST /backchannel-logout` with `logout_token=token`, as a provider sends it.
async fn backchannel(http: &Http, addr: SocketAddr, token: &str) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("logout_token", token)
        .finish();
    post_raw(http, addr, "application/x-www-form-urlencoded", body).await
}

#[track_caller]
fn assert_done(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
}

#[track_caller]
fn assert_invalid_request(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "{what}: {:?}",
        reply.body
    );
    assert_eq!(
        reply.header(header::CACHE_CONTROL),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(reply.json()["error"], "invalid_request", "{what}");
    assert!(reply.json()["error_description"].is_string(), "{what}");
}

async fn me(http: &Http, addr: SocketAddr, token: &str) -> Reply {
    http.me(addr, token).await.expect("answered")
}

/// Polls `/me` until `token` gets `status`, or panics after 5 s.
async fn soon(http: &Http, addr: SocketAddr, token: &str, status: StatusCode) {
    let start = Instant::now();
    loop {
        let reply = me(http, addr, token).await;
        if reply.status == status {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{addr}: still {} ({:?}), not {status}",
            reply.status,
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn with_sid(provider: &Provider, sub: &str, sid: &str) -> Value {
    let mut claims = provider.claims(sub);
    claims["sid"] = sid.into();
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backchannel_logout_on_one_instance_is_refused_on_both() {
    let (rsa, ec, ed) = (
        KeyPair::rsa("rsa", Algorithm::RS256),
        KeyPair::ec("ec"),
        KeyPair::ed("ed"),
    );
    let provider = Provider::start(&[&rsa, &ec, &ed]).await;
    let redis = RedisServer::start();
    let (a, b) = (
        start_instance("oidc-a", &provider, Some(&redis)),
        start_instance("oidc-b", &provider, Some(&redis)),
    );
    let (a, b) = (a.addr(), b.addr());
    let http = Http::new(Duration::from_secs(10));

    // The provider's tokens, each algorithm, on both instances, beside the server's own.
    let session = support::clock::uid();
    let tokens: Vec<String> = [&rsa, &ec, &ed]
        .iter()
        .map(|k| k.sign(&with_sid(&provider, "alice", &session)))
        .collect();
    for addr in [a, b] {
        for token in &tokens {
            let reply = me(&http, addr, token).await;
            reply.assert_ok_subject("alice");
            assert_eq!(reply.json()["iss"], provider.issuer());
            assert_eq!(reply.json()["sid"], session.as_str());
        }
    }
    let own = http.login(a, "alice").await.unwrap().json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    me(&http, b, &own).await.assert_ok_subject("alice");
    let other_session = rsa.sign(&with_sid(&provider, "alice", "another-session"));
    let bob = ec.sign(&with_sid(&provider, "bob", "bob-session"));

    // The provider ends the session: every token of it is refused, on both instances.
    let logout = rsa.sign_with_header(
        Header {
            typ: Some("logout+jwt".into()),
            ..Header::new(Algorithm::RS256)
        },
        &provider.logout_claims(Some("alice"), Some(&session)),
    );
    assert_done(&backchannel(&http, a, &logout).await);
    for addr in [a, b] {
        for token in &tokens {
            soon(&http, addr, token, StatusCode::UNAUTHORIZED).await;
        }
        // Only that session: another of alice's, bob's, and the server's own tokens pass.
        me(&http, addr, &other_session)
            .await
            .assert_ok_subject("alice");
        me(&http, addr, &bob).await.assert_ok_subject("bob");
        me(&http, addr, &own).await.assert_ok_subject("alice");
    }
    // The same logout token again is a replay.
    assert_invalid_request(&backchannel(&http, a, &logout).await, "replay");

    // With only `sub`: every token of (iss, sub) issued up to now, on both instances.
    let logout = ed.sign(&provider.logout_claims(Some("bob"), None));
    assert_done(&backchannel(&http, b, &logout).await);
    for addr in [a, b] {
        soon(&http, addr, &bob, StatusCode::UNAUTHORIZED).await;
        me(&http, addr, &other_session)
            .await
            .assert_ok_subject("alice");
    }
    // The server's own `bob` is another subject (no issuer): untouched.
    let own_bob = http.login(a, "bob").await.unwrap().json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    me(&http, b, &own_bob).await.assert_ok_subject("bob");
    // A token bob gets after the logout (in a later second) passes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let fresh = ec.sign(&provider.claims("bob"));
    me(&http, a, &fresh).await.assert_ok_subject("bob");

    // The provider rotates: a token of a new key passes on both after one fetch each.
    let next = KeyPair::rsa("next", Algorithm::RS256);
    provider.set_keys(&[&rsa, &ec, &ed, &next]);
    let before = provider.jwks_fetches();
    let rotated = next.sign(&provider.claims("carol"));
    for addr in [a, b] {
        me(&http, addr, &rotated).await.assert_ok_subject("carol");
    }
    assert_eq!(provider.jwks_fetches(), before + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_backchannel_rule_is_enforced_and_a_refused_logout_revokes_nothing() {
    let key = KeyPair::rsa("k", Algorithm::RS256);
    let stranger = KeyPair::rsa("stranger", Algorithm::RS256);
    let provider = Provider::start(&[&key]).await;
    let redis = RedisServer::start();
    let (a, b) = (
        start_instance("rules-a", &provider, Some(&redis)),
        start_instance("rules-b", &provider, Some(&redis)),
    );
    let (a, b) = (a.addr(), b.addr());
    let http = Http::new(Duration::from_secs(10));
    let sid = "the-session";
    let access = key.sign(&with_sid(&provider, "alice", sid));
    me(&http, a, &access).await.assert_ok_subject("alice");

    let good = || provider.logout_claims(Some("alice"), Some(sid));
    let mut cases: Vec<(&str, String)> = Vec::new();
    let mut edit = |what: &'static str, f: &dyn Fn(&mut Value)| {
        let mut claims = good();
        f(&mut claims);
        cases.push((what, key.sign(&claims)));
    };
    edit("no events", &|c| {
        c.as_object_mut().unwrap().remove("events");
    });
    edit("events without the logout event", &|c| {
        c["events"] = serde_json::json!({ "http://schemas.openid.net/event/other": {} });
    });
    edit("the event is not an object", &|c| {
        c["events"] =
            serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": "yes" });
    });
    edit("a nonce", &|c| c["nonce"] = "n-0S6_WzA2Mj".into());
    edit("neither sub nor sid", &|c| {
        let o = c.as_object_mut().unwrap();
        o.remove("sub");
        o.remove("sid");
    });
    edit("another audience", &|c| c["aud"] = "another-client".into());
    edit("no audience", &|c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    edit("another issuer", &|c| {
        c["iss"] = "http://elsewhere.example/realms/test".into()
    });
    edit("expired", &|c| {
        let now = support::clock::now();
        c["iat"] = (now - 600).into();
        c["exp"] = (now - 300).into();
    });
    edit("no exp", &|c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    edit("no iat", &|c| {
        c.as_object_mut().unwrap().remove("iat");
    });
    edit("iat in the future", &|c| {
        c["iat"] = (support::clock::now() + 3600).into()
    });
    edit("no jti", &|c| {
        c.as_object_mut().unwrap().remove("jti");
    });
    // Signed by a key the provider does not publish (its kid starts one fetch).
    cases.push(("an unknown key", stranger.sign(&good())));
    // The right claims, signed with the provider's kid but another algorithm's header.
    let b64 = support::tokens::b64;
    cases.push((
        "alg none",
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","kid":"k"}"#),
            b64(good().to_string().as_bytes())
        ),
    ));
    cases.push((
        "typ at+jwt",
        key.sign_with_header(
            Header {
                typ: Some("at+jwt".into()),
                ..Header::new(Algorithm::RS256)
            },
            &good(),
        ),
    ));
    // An access token is not a logout token.
    cases.push((
        "an access token",
        key.sign(&with_sid(&provider, "alice", sid)),
    ));
    cases.push(("the server's own token", support::tokens::hs256(&good())));
    cases.push(("garbage", "not.a.token".to_owned()));
    for (what, token) in &cases {
        assert_invalid_request(&backchannel(&http, a, token).await, what);
    }

    // The request itself.
    let token = key.sign(&good());
    let form = |body: String| post_raw(&http, a, "application/x-www-form-urlencoded", body);
    assert_invalid_request(&form(String::new()).await, "no logout_token");
    assert_invalid_request(
        &form(format!("logout_token={token}&logout_token={token}")).await,
        "logout_token twice",
    );
    assert_invalid_request(
        &form(format!(
            "logout_token={token}&pad={}",
            "x".repeat(100 * 1024)
        ))
        .await,
        "a body over the limit",
    );
    assert_invalid_request(
        &post_raw(
            &http,
            a,
            "application/json",
            serde_json::json!({ "logout_token": token }).to_string(),
        )
        .await,
        "a JSON body",
    );
    let get = http
        .call(a, Method::GET, "/backchannel-logout", None, None)
        .await
        .unwrap();
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);

    // Nothing above revoked anything: the session's token still passes on both.
    for addr in [a, b] {
        me(&http, addr, &access).await.assert_ok_subject("alice");
    }
    // The good token, which the refusals did not consume, still works.
    assert_done(&backchannel(&http, a, &token).await);
    soon(&http, b, &access, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_the_store_cannot_record_is_503_and_the_retry_is_done() {
    let key = KeyPair::ec("k");
    let provider = Provider::start(&[&key]).await;
    let mut redis = RedisServer::start_restartable();
    let a = start_instance("down-a", &provider, Some(&redis));
    let a = a.addr();
    let http = Http::new(Duration::from_secs(10));
    let access = key.sign(&with_sid(&provider, "alice", "s1"));
    me(&http, a, &access).await.assert_ok_subject("alice");
    let logout = key.sign(&provider.logout_claims(Some("alice"), Some("s1")));

    redis.stop();
    let reply = backchannel(&http, a, &logout).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    assert_eq!(reply.json()["error"], "temporarily_unavailable");

    // The provider retries once the store is back: the same token is accepted (a
    // failed logout does not count as a use).
    redis.restart();
    let start = Instant::now();
    loop {
        let reply = backchannel(&http, a, &logout).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{:?}",
            reply.body
        );
        assert!(start.elapsed() < Duration::from_secs(15), "never recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    soon(&http, a, &access, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_starts_while_the_provider_is_unreachable_and_catches_up() {
    let key = KeyPair::ed("k");
    let addr = SocketAddr::from(([127, 0, 0, 1], support::ports::free_port()));
    let mut provider = Provider::unstarted(addr, &[&key]);
    let server = start_instance("no-provider", &provider, None);
    let server = server.addr();
    let http = Http::new(Duration::from_secs(10));
    let token = key.sign(&provider.claims("alice"));
    // The server cannot tell: 503, never 401, and never a hang.
    let reply = me(&http, server, &token).await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        reply.body
    );
    assert!(reply.header(header::WWW_AUTHENTICATE).is_none());
    // The server's own logins work meanwhile.
    let own = http.login(server, "bob").await.unwrap().json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    me(&http, server, &own).await.assert_ok_subject("bob");
    provider.up().await;
    let start = Instant::now();
    loop {
        let reply = me(&http, server, &token).await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(start.elapsed() < Duration::from_secs(15), "never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
