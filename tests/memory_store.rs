//! The store conformance suite against `MemoryStore`.

mod conformance;

use tower_jwt_auth::MemoryStore;

async fn fresh() -> MemoryStore {
    MemoryStore::new()
}

conformance::suite!(fresh);

#[test]
fn many_live_revocations_are_never_evicted() {
    // No capacity bound: 200k live entries all stay.
    use tower_jwt_auth::{RevocationStore, RevokedToken};
    let store = MemoryStore::new();
    let keep = conformance::now_secs() + 600;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..200_000u32 {
            let jti = format!("j{i}");
            store
                .revoke(&RevokedToken::new(None, &jti, keep))
                .await
                .unwrap();
        }
        assert_eq!(store.len().0, 200_000);
        for i in (0..200_000u32).step_by(997) {
            let t = conformance::token(None, "s", &format!("j{i}"));
            assert_eq!(
                conformance::status(&store, &t).await,
                tower_jwt_auth::RevocationStatus::Revoked
            );
        }
    });
}
