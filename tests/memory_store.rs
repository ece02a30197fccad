//! The store conformance suite against `MemoryStore`.

mod conformance;

use tower_jwt_auth::MemoryStore;

async fn fresh() -> MemoryStore {
    MemoryStore::new()
}

conformance::suite!(fresh);
mod refresh {
    use super::*;
    conformance::session_suite!(fresh);
}

#[tokio::test]
async fn memory_store_holds_only_hashes_and_its_debug_shows_no_token() {
    use tower_jwt_auth::{JwtAuthLayer, TokenIssuer, VerificationKey};
    let secret = b"an example secret of at least 32 bytes!";
    let store = MemoryStore::new();
    let auth = JwtAuthLayer::builder(store.clone())
        .key(VerificationKey::hs256(secret).unwrap())
        .build()
        .unwrap();
    let sessions = auth.sessions(TokenIssuer::hs256(secret).unwrap());
    let first = sessions.start("alice").await.unwrap();
    let next = sessions.refresh(first.refresh.as_str()).await.unwrap();
    let dump = format!(
        "{store:?} {sessions:?} {:?} {:?}",
        first.refresh, next.refresh
    );
    for t in [first.refresh.as_str(), next.refresh.as_str()] {
        assert!(!dump.contains(t), "{dump}");
    }
    assert_eq!(store.refresh_len(), (1, 2));
}

#[test]
fn many_live_revocations_are_never_evicted() {
    // No capacity bound: 200k live entries, spread over 900 expiry seconds, all stay.
    use tower_jwt_auth::{RevocationStore, RevokedToken, TokenInfo};
    let store = MemoryStore::new();
    let base = conformance::now_secs();
    let exp = |i: u32| base + 60 + u64::from(i % 900);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..200_000u32 {
            let jti = format!("j{i}");
            store
                .revoke(&RevokedToken::new(None, &jti, exp(i), exp(i) + 61))
                .await
                .unwrap();
        }
        assert_eq!(store.len().0, 200_000);
        for i in (0..200_000u32).step_by(997) {
            let jti = format!("j{i}");
            let t = TokenInfo::new(None, "s", &jti, base, exp(i));
            assert_eq!(
                conformance::status(&store, &t).await,
                tower_jwt_auth::RevocationStatus::Revoked
            );
            // The same jti with another exp is another token.
            let other = TokenInfo::new(None, "s", &jti, base, exp(i) + 1);
            assert_eq!(
                conformance::status(&store, &other).await,
                tower_jwt_auth::RevocationStatus::Active
            );
        }
    });
}
