//! Login sessions (issue 11, first part): tokens carrying a `sid`, and ending a session
//! so that every token of it is refused, through the layer with the memory store and
//! across two instances on a real `redis-server`.

mod support;

use http::StatusCode;
use support::service::{app, bearer, send};
use tower_jwt_auth::{
    IssueErrorKind, JwtAuthLayer, MemoryStore, RejectionKind, TokenIssuer, VerificationKey,
};

const SECRET: &[u8] = b"a sessions test secret of 32+ bytes!!!";

fn layer() -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap()
}

fn issuer() -> TokenIssuer {
    TokenIssuer::hs256(SECRET).unwrap()
}

#[test]
fn a_session_token_carries_its_sid_and_the_layer_reads_it() {
    let layer = layer();
    let sid = TokenIssuer::new_session_id().unwrap();
    assert_eq!(sid.len(), 22, "128 bits, URL-safe base64");
    assert_ne!(sid, TokenIssuer::new_session_id().unwrap());
    let issued = issuer().issue_in_session("alice", &sid, &()).unwrap();
    assert_eq!(issued.info().session_id(), Some(sid.as_str()));
    let read = layer.verify(issued.as_str()).unwrap();
    assert_eq!(read.session_id(), Some(sid.as_str()));
    // A token outside any session names none.
    let plain = issuer().issue("alice").unwrap();
    assert_eq!(layer.verify(plain.as_str()).unwrap().session_id(), None);
}

#[test]
fn a_bad_session_id_is_refused_when_issuing() {
    for sid in [String::new(), "x".repeat(256)] {
        let err = issuer().issue_in_session("alice", &sid, &()).unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidClaims);
    }
    let err = issuer()
        .issue_in_session("alice", "s", &serde_json::json!({ "sid": "other" }))
        .unwrap_err();
    assert_eq!(
        err.kind(),
        IssueErrorKind::InvalidClaims,
        "sid is registered"
    );
}

#[tokio::test]
async fn a_token_with_an_empty_sid_is_refused() {
    let layer = layer();
    let app = app(&layer);
    let mut claims = support::tokens::claims("alice");
    claims["sid"] = "".into();
    let token = support::tokens::sign(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        SECRET,
    );
    let seen = send(&app, bearer(&token)).await;
    assert_eq!(seen.status, StatusCode::UNAUTHORIZED);
    assert_eq!(seen.rejection.map(|r| r.code()), Some("bad_claims"));
    // The same claims with a real sid pass: the signature was fine.
    claims["sid"] = "s-1".into();
    let token = support::tokens::sign(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        SECRET,
    );
    assert_eq!(send(&app, bearer(&token)).await.status, StatusCode::OK);
}

/// Logging out one token of a session ends the session: its other tokens (another
/// device's, or one refreshed later) are refused too; other sessions of the same user
/// are not.
#[tokio::test]
async fn logging_out_a_session_token_ends_its_session() {
    let layer = layer();
    let app = app(&layer);
    let (sid, other_sid) = (
        TokenIssuer::new_session_id().unwrap(),
        TokenIssuer::new_session_id().unwrap(),
    );
    let first = issuer().issue_in_session("alice", &sid, &()).unwrap();
    let second = issuer().issue_in_session("alice", &sid, &()).unwrap();
    let elsewhere = issuer().issue_in_session("alice", &other_sid, &()).unwrap();
    for t in [&first, &second, &elsewhere] {
        assert_eq!(send(&app, bearer(t.as_str())).await.status, StatusCode::OK);
    }
    layer.revoker().revoke_token(first.as_str()).await.unwrap();
    for t in [&first, &second] {
        let seen = send(&app, bearer(t.as_str())).await;
        assert_eq!(seen.kind(), Some(RejectionKind::RevokedToken));
    }
    // Issued in the ended session after its end: refused as well.
    let late = issuer().issue_in_session("alice", &sid, &()).unwrap();
    assert_eq!(
        send(&app, bearer(late.as_str())).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
    assert_eq!(
        send(&app, bearer(elsewhere.as_str())).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn end_session_refuses_the_session_without_a_token_in_hand() {
    let layer = layer();
    let app = app(&layer);
    let sid = TokenIssuer::new_session_id().unwrap();
    let token = issuer().issue_in_session("bob", &sid, &()).unwrap();
    layer.revoker().end_session(None, &sid).await.unwrap();
    assert_eq!(
        send(&app, bearer(token.as_str())).await.kind(),
        Some(RejectionKind::RevokedToken)
    );
    assert_eq!(layer.store().sessions_len(), 1);
}

#[cfg(feature = "redis")]
mod redis {
    use std::time::{Duration, Instant};

    use super::support::redis_server::{RedisServer, connect, ready};
    use super::*;
    use tower_jwt_auth::RevocationStatus;

    /// A session ended on one instance is refused on another within the propagation
    /// delay, and by an instance started afterwards (it loads the ended sessions).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ended_session_reaches_every_instance_and_survives_a_restart() {
        let server = RedisServer::shared();
        let prefix = format!("sessions-{}:", support::clock::uid());
        let a = JwtAuthLayer::builder(connect(server, &prefix).await)
            .key(VerificationKey::hs256(SECRET).unwrap())
            .build()
            .unwrap();
        let b = connect(server, &prefix).await;
        let sid = TokenIssuer::new_session_id().unwrap();
        let token = issuer().issue_in_session("carol", &sid, &()).unwrap();
        let info = a.verify(token.as_str()).unwrap();
        assert_eq!(ready(&b, &info), RevocationStatus::Active);

        a.revoker().end_session(None, &sid).await.unwrap();
        let start = Instant::now();
        while ready(&b, &info) != RevocationStatus::Revoked {
            assert!(start.elapsed() < Duration::from_secs(2), "never reached b");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let later = connect(server, &prefix).await;
        assert_eq!(ready(&later, &info), RevocationStatus::Revoked);
        // Another session of the same user is untouched everywhere.
        let other = issuer()
            .issue_in_session("carol", &TokenIssuer::new_session_id().unwrap(), &())
            .unwrap();
        let other = a.verify(other.as_str()).unwrap();
        assert_eq!(ready(&b, &other), RevocationStatus::Active);
        assert_eq!(ready(&later, &other), RevocationStatus::Active);
    }
}

// ---- Refresh tokens through `Sessions` ----

use std::time::Duration;
use tower_jwt_auth::{Check, RefreshCookie, RevocationStatus, RevocationStore, SessionErrorKind};

fn refused(layer: &JwtAuthLayer<MemoryStore>, token: &tower_jwt_auth::IssuedToken) -> bool {
    matches!(
        layer.store().check(token.info()),
        Check::Ready(Ok(RevocationStatus::Revoked))
    )
}

#[tokio::test]
async fn start_and_refresh_keep_the_session_and_rotate_the_token() {
    let layer = layer();
    let sessions = layer.sessions(issuer());
    let login = sessions.start("alice").await.unwrap();
    let sid = login.access.info().session_id().unwrap().to_owned();
    assert_eq!(
        login.refresh.as_str().len(),
        43,
        "256 bits, URL-safe base64"
    );
    assert!(
        login
            .refresh
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(login.refresh.expires_in(), 14 * 24 * 3600);
    assert!(!format!("{:?}", login.refresh).contains(login.refresh.as_str()));
    let next = sessions.refresh(login.refresh.as_str()).await.unwrap();
    assert_eq!(next.access.info().session_id(), Some(sid.as_str()));
    assert_eq!(next.access.info().subject(), "alice");
    assert_ne!(next.refresh.as_str(), login.refresh.as_str());
    assert!(layer.verify(next.access.as_str()).is_ok());
}

#[tokio::test]
async fn a_reuse_ends_the_session_and_refuses_its_access_tokens() {
    let layer = layer();
    let sessions = layer.sessions(issuer());
    let login = sessions.start("alice").await.unwrap();
    let next = sessions.refresh(login.refresh.as_str()).await.unwrap();
    let e = sessions.refresh(login.refresh.as_str()).await.unwrap_err();
    assert_eq!(e.kind(), SessionErrorKind::Reused);
    assert!(refused(&layer, &login.access));
    assert!(refused(&layer, &next.access));
    let e = sessions.refresh(next.refresh.as_str()).await.unwrap_err();
    assert_eq!(e.kind(), SessionErrorKind::Invalid);
}

#[tokio::test]
async fn the_reuse_interval_lets_two_tabs_refresh_at_once() {
    let layer = layer();
    let sessions = layer
        .sessions(issuer())
        .reuse_interval(Duration::from_secs(2));
    let login = sessions.start("alice").await.unwrap();
    let tab1 = sessions.refresh(login.refresh.as_str()).await.unwrap();
    let tab2 = sessions.refresh(login.refresh.as_str()).await.unwrap();
    assert!(!refused(&layer, &tab1.access));
    // The second tab's token is the current one.
    sessions.refresh(tab2.refresh.as_str()).await.unwrap();
}

#[tokio::test]
async fn lifetimes_are_configurable_and_capped_by_the_session() {
    let layer = layer();
    let sessions = layer
        .sessions(issuer())
        .refresh_lifetime(Duration::from_secs(60))
        .session_lifetime(Duration::from_secs(30));
    let login = sessions.start("alice").await.unwrap();
    assert!(login.refresh.expires_in() <= 30);
    let sessions = layer
        .sessions(issuer())
        .refresh_lifetime(Duration::from_secs(1));
    let login = sessions.start("bob").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let e = sessions.refresh(login.refresh.as_str()).await.unwrap_err();
    assert_eq!(e.kind(), SessionErrorKind::Invalid);
}

#[tokio::test]
async fn hostile_refresh_tokens_are_invalid_without_touching_the_store() {
    let layer = layer();
    let sessions = layer.sessions(issuer());
    let login = sessions.start("alice").await.unwrap();
    let before = layer.store().refresh_len();
    let long = "a".repeat(513);
    for token in [
        "",
        long.as_str(),
        "é",
        "a b",
        "a.b.c",
        login.access.as_str(),
        "\0",
    ] {
        let e = sessions.refresh(token).await.unwrap_err();
        assert_eq!(e.kind(), SessionErrorKind::Invalid, "{token:?}");
    }
    assert_eq!(layer.store().refresh_len(), before);
    // The real token still works.
    sessions.refresh(login.refresh.as_str()).await.unwrap();
}

#[tokio::test]
async fn logout_and_logout_everywhere_kill_refresh_tokens() {
    let layer = layer();
    let sessions = layer.sessions(issuer());
    let revoker = layer.revoker();
    let one = sessions.start("alice").await.unwrap();
    let two = sessions.start("alice").await.unwrap();
    let bob = sessions.start("bob").await.unwrap();
    revoker.revoke(one.access.info()).await.unwrap();
    assert!(sessions.refresh(one.refresh.as_str()).await.is_err());
    let two = sessions.refresh(two.refresh.as_str()).await.unwrap();
    revoker.revoke_all(two.access.info()).await.unwrap();
    assert!(sessions.refresh(two.refresh.as_str()).await.is_err());
    sessions.refresh(bob.refresh.as_str()).await.unwrap();
    // A session started after the logout everywhere is not affected.
    let three = sessions.start("alice").await.unwrap();
    sessions.refresh(three.refresh.as_str()).await.unwrap();
}

#[test]
fn the_refresh_cookie_is_strict_and_scoped_to_refresh() {
    let cookie = RefreshCookie::new("refresh_token").unwrap();
    let cleared = cookie.logout();
    let cleared = cleared.to_str().unwrap();
    for part in [
        "refresh_token=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/refresh",
        "Max-Age=0",
    ] {
        assert!(cleared.contains(part), "{cleared}");
    }
    assert!(RefreshCookie::new("bad name").is_err());
    assert!(cookie.path("no-slash").is_err());
}
