//! Working with a token held as a string (issue 9): `JwtAuthLayer::verify`,
//! `Revoker::revoke_token`, `IssuedToken::info`, a `Revoker` that names no store, and
//! the error kinds of issuing and revoking.

use std::time::Duration;

use tower_jwt_auth::{
    Check, IssueErrorKind, JwtAuthLayer, MemoryStore, RejectionKind, RevocationStatus,
    RevocationStore, RevokeErrorKind, Revoker, TokenInfo, TokenIssuer, VerificationKey,
};

const SECRET: &[u8] = b"a token-api test secret of 32+ bytes!!";

fn layer() -> JwtAuthLayer<MemoryStore> {
    JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap()
}

fn issuer() -> TokenIssuer {
    TokenIssuer::hs256(SECRET).unwrap()
}

fn status(layer: &JwtAuthLayer<MemoryStore>, info: &TokenInfo) -> RevocationStatus {
    match layer.store().check(info) {
        Check::Ready(answer) => answer.unwrap(),
        Check::Pending(_) => unreachable!("the memory store answers at once"),
    }
}

#[test]
fn verify_returns_the_token_info_or_the_rejection() {
    let layer = layer();
    let issued = issuer().issue("alice").unwrap();
    let info = layer.verify(issued.as_str()).unwrap();
    assert_eq!(info.subject(), "alice");
    assert_eq!(info.jti(), issued.jti());
    assert_eq!(info.expires_at(), issued.expires_at());

    let err = layer.verify("not.a.token").unwrap_err();
    assert_eq!(err.kind(), RejectionKind::InvalidToken);
    let other = TokenIssuer::hs256(b"another secret that is 32 bytes long!!")
        .unwrap()
        .issue("alice")
        .unwrap();
    assert_eq!(
        layer.verify(other.as_str()).unwrap_err().description(),
        "the token's signature is invalid"
    );
    let long = "a".repeat(9 * 1024);
    assert_eq!(
        layer.verify(&long).unwrap_err().description(),
        "the token is longer than allowed"
    );
}

#[test]
fn issued_token_info_matches_what_the_layer_reads() {
    let layer = layer();
    let issued = issuer()
        .issuer("https://auth.example")
        .audience("api")
        .issue("bob")
        .unwrap();
    let verifying = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .issuer("https://auth.example")
        .audience("api")
        .build()
        .unwrap();
    let read = verifying.verify(issued.as_str()).unwrap();
    let info = issued.info();
    assert_eq!(info.subject(), read.subject());
    assert_eq!(info.issuer(), read.issuer());
    assert_eq!(info.jti(), read.jti());
    assert_eq!(info.issued_at(), read.issued_at());
    assert_eq!(info.issued_at_micros(), read.issued_at_micros());
    assert_eq!(info.expires_at(), read.expires_at());
    assert_eq!(info.audience(), read.audience());
    assert_eq!(info.issue_stamp(), read.issue_stamp());
    drop(layer);
}

#[tokio::test]
async fn revoke_token_verifies_then_revokes() {
    let layer = layer();
    let revoker = layer.revoker();
    let issued = issuer().issue("alice").unwrap();
    let info = layer.verify(issued.as_str()).unwrap();
    assert_eq!(status(&layer, &info), RevocationStatus::Active);
    let revoked = revoker.revoke_token(issued.as_str()).await.unwrap();
    assert_eq!(revoked.jti(), issued.jti());
    assert_eq!(status(&layer, &info), RevocationStatus::Revoked);
}

#[tokio::test]
async fn revoke_token_refuses_a_token_that_does_not_verify() {
    let layer = layer();
    let revoker = layer.revoker();
    let forged = TokenIssuer::hs256(b"another secret that is 32 bytes long!!")
        .unwrap()
        .issue("alice")
        .unwrap();
    let err = revoker.revoke_token(forged.as_str()).await.unwrap_err();
    assert_eq!(err.kind(), RevokeErrorKind::InvalidToken);
    assert_eq!(
        err.rejection().map(|r| r.kind()),
        Some(RejectionKind::InvalidToken)
    );
    assert!(std::error::Error::source(&err).is_some());
    // Nothing was written: the store is still empty.
    assert!(layer.store().is_empty());
    let err = revoker.revoke_token("").await.unwrap_err();
    assert_eq!(err.kind(), RevokeErrorKind::InvalidToken);
}

#[tokio::test]
async fn issued_token_info_revokes_without_the_token_coming_back() {
    let layer = layer();
    let issued = issuer().issue("alice").unwrap();
    layer.revoker().revoke(issued.info()).await.unwrap();
    let read = layer.verify(issued.as_str()).unwrap();
    assert_eq!(status(&layer, &read), RevocationStatus::Revoked);
}

/// A handler that takes a `Revoker` compiles and works for every store: the type names
/// none.
async fn logout(revoker: &Revoker, token: &str) -> Result<TokenInfo, tower_jwt_auth::RevokeError> {
    revoker.revoke_token(token).await
}

#[tokio::test]
async fn one_revoker_type_for_every_store() {
    let memory = layer();
    let shared = JwtAuthLayer::builder(std::sync::Arc::new(MemoryStore::new()))
        .key(VerificationKey::hs256(SECRET).unwrap())
        .build()
        .unwrap();
    let revokers: Vec<Revoker> = vec![memory.revoker(), shared.revoker()];
    for revoker in &revokers {
        let issued = issuer().issue("carol").unwrap();
        logout(revoker, issued.as_str()).await.unwrap();
    }
    assert!(!memory.store().is_empty());
    assert!(!shared.store().is_empty());
}

#[test]
fn a_lifetime_under_a_second_is_refused() {
    for lifetime in [Duration::ZERO, Duration::from_millis(999)] {
        let err = issuer().lifetime(lifetime).issue("alice").unwrap_err();
        assert_eq!(err.kind(), IssueErrorKind::InvalidLifetime, "{lifetime:?}");
        assert!(err.to_string().contains("under one second"), "{err}");
    }
    assert!(
        issuer()
            .lifetime(Duration::from_secs(1))
            .issue("alice")
            .is_ok()
    );
}

#[test]
fn a_lifetime_over_the_layers_maximum_is_refused() {
    // Default: the layer's default maximum, 24 h.
    let err = issuer()
        .lifetime(Duration::from_secs(24 * 3600 + 1))
        .issue("alice")
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidLifetime);
    assert!(
        issuer()
            .lifetime(Duration::from_secs(24 * 3600))
            .issue("alice")
            .is_ok()
    );
    // With the layer's own maximum: what the issuer accepts the layer accepts.
    let max = Duration::from_secs(600);
    let layer = JwtAuthLayer::builder(MemoryStore::new())
        .key(VerificationKey::hs256(SECRET).unwrap())
        .max_token_lifetime(max)
        .build()
        .unwrap();
    let issuer = issuer().max_lifetime(max);
    let err = issuer
        .clone()
        .lifetime(max + Duration::from_secs(1))
        .issue("a")
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidLifetime);
    let ok = issuer.lifetime(max).issue("a").unwrap();
    assert!(layer.verify(ok.as_str()).is_ok());
}

#[test]
fn bad_custom_claims_have_their_kind() {
    let err = issuer().issue_with("alice", &42).unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidClaims);
    let err = issuer()
        .issue_with("alice", &serde_json::json!({ "sub": "mallory" }))
        .unwrap_err();
    assert_eq!(err.kind(), IssueErrorKind::InvalidClaims);
}

#[tokio::test]
async fn logout_everywhere_covers_the_token_that_asks_for_it_even_when_stamped_ahead() {
    // A token stamped 30 s ahead of this machine's clock (another instance's clock runs
    // ahead; the leeway accepts it) asks to log out everywhere: it must be refused
    // afterwards. The cutoff used to be this machine's stamp, before the token's.
    let layer = layer();
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
        + 30_000_000;
    let token = TokenInfo::with_micros(None, "alice", "ahead", ahead, ahead / 1_000_000 + 600);
    assert_eq!(status(&layer, &token), RevocationStatus::Active);
    layer.revoker().revoke_all(&token).await.unwrap();
    assert_eq!(status(&layer, &token), RevocationStatus::Revoked);
}
