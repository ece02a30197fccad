//! A store that answers asynchronously (`Check::Pending`) and one that fails: the layer's
//! response future drives the lookup, then the inner service or the rejection.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::StatusCode;
use support::{clock::*, service::*, tokens::*};
use tower_jwt_auth::{
    Check, JwtAuthLayer, RejectionKind, RevocationStatus, RevocationStore, RevokedSession,
    RevokedToken, SubjectCutoff, TokenInfo, VerificationKey,
};

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the store is down")
    }
}

impl std::error::Error for Down {}

/// A future that is pending once (and wakes itself), then answers.
struct Later {
    answer: Option<Result<RevocationStatus, Down>>,
    polled: bool,
}

impl Future for Later {
    type Output = Result<RevocationStatus, Down>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.polled {
            self.polled = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(self.answer.take().expect("polled after completion"))
    }
}

/// Answers every check after a round trip: "revoked" for the jti `revoked`, an error
/// for the jti `down`, "active" otherwise.
#[derive(Clone, Default)]
struct Remote {
    checks: Arc<AtomicUsize>,
}

impl RevocationStore for Remote {
    type Error = Down;
    type CheckFuture = Later;

    fn check(&self, token: &TokenInfo) -> Check<Later> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let answer = match token.jti() {
            "revoked" => Ok(RevocationStatus::Revoked),
            "down" => Err(Down),
            _ => Ok(RevocationStatus::Active),
        };
        Check::Pending(Later {
            answer: Some(answer),
            polled: false,
        })
    }

    async fn revoke(&self, _: &RevokedToken<'_>) -> Result<(), Down> {
        Err(Down)
    }

    async fn revoke_subject(&self, _: &SubjectCutoff<'_>) -> Result<(), Down> {
        Err(Down)
    }

    async fn revoke_session(&self, _: &RevokedSession<'_>) -> Result<(), Down> {
        Err(Down)
    }
}

fn token(jti: &str) -> String {
    let mut c = claims("alice");
    c["jti"] = jti.into();
    hs256(&c)
}

#[tokio::test]
async fn pending_checks_are_driven_to_the_inner_service_or_a_rejection() {
    let store = Remote::default();
    let layer = JwtAuthLayer::builder(store.clone())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let app = app(&layer);

    let seen = send(&app, bearer(&token("fine"))).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.subject.as_deref(), Some("alice"));

    let seen = send(&app, bearer(&token("revoked"))).await;
    assert_invalid_token(&seen, RejectionKind::RevokedToken);

    let seen = send(&app, bearer(&token("down"))).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(seen.kind(), Some(RejectionKind::StoreUnavailable));
    // The store's error is kept as the rejection's source.
    let rejection = seen.rejection.unwrap();
    let source = std::error::Error::source(&rejection).unwrap();
    assert_eq!(source.to_string(), "the store is down");

    // A bad token never reaches the store.
    let before = store.checks.load(Ordering::Relaxed);
    send(&app, bearer("bad.token.here")).await;
    assert_eq!(store.checks.load(Ordering::Relaxed), before);
}

#[tokio::test]
async fn a_logout_the_store_did_not_record_is_an_error() {
    let layer = JwtAuthLayer::builder(Remote::default())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let info = TokenInfo::new(None, "alice", "j", now(), now() + 600);
    let err = layer.revoker().revoke(&info).await.unwrap_err();
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "the store is down"
    );
    assert!(layer.revoker().revoke_all(&info).await.is_err());
}
